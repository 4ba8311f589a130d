
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Requests encrypted to an RA certificate that the CA no longer uses.
 * After an RA certificate is renewed, devices that still hold the old
 * one encrypt their requests to it, and NDES answers them with an HTTP
 * 500.  The health probes fetch GetCACert from every back end; what
 * identifies each certificate of the answer is kept in the back end's
 * record in the shared zone, and a PKIOperation whose envelope names
 * none of the certificates of the healthy back ends of its upstream is
 * refused here, with an answer that says what happened.
 */


#include "ngx_http_scep_module.h"


#define NGX_HTTP_SCEP_RCP_MATCH     0
#define NGX_HTTP_SCEP_RCP_NONE      1    /* data, and no certificate named */
#define NGX_HTTP_SCEP_RCP_NO_DATA   2


typedef struct {
    ngx_uint_t                 kind;     /* SCEP_RECIPIENT_* */
    u_char                     id[SCEP_CERT_ID_LEN];
} ngx_http_scep_rcp_id_t;


static ngx_int_t ngx_http_scep_recipient_id(ngx_http_request_t *r,
    scep_recipient_t *rcp, u_char *id);
static ngx_uint_t ngx_http_scep_recipient_match(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_rcp_id_t *ids, ngx_uint_t n, ngx_uint_t canonical);
static void ngx_http_scep_recipient_log(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_upstream_t *hc);


/*
 * The upstream of a location is proxy_pass's: its configuration starts
 * with the ngx_http_upstream_conf_t of the location, as in every nginx
 * version supported.  The proxy module is found by name, so that the
 * module still loads into an nginx built without it.
 */

void
ngx_http_scep_recipient_init(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    smcf->proxy_index = NGX_CONF_UNSET_UINT;

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (cf->cycle->modules[i]->type == NGX_HTTP_MODULE
            && ngx_strcmp(cf->cycle->modules[i]->name,
                          "ngx_http_proxy_module")
               == 0)
        {
            smcf->proxy_index = cf->cycle->modules[i]->ctx_index;
            break;
        }
    }
}


/*
 * This module's configuration of the upstream block that the location
 * proxies to, or NULL (no proxy_pass, one with variables, an address)
 */

ngx_http_scep_srv_conf_t *
ngx_http_scep_location_upstream(ngx_http_request_t *r)
{
    ngx_http_upstream_conf_t      *ucf;
    ngx_http_scep_main_conf_t     *smcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (smcf->proxy_index == NGX_CONF_UNSET_UINT) {
        return NULL;
    }

    ucf = r->loc_conf[smcf->proxy_index];

    if (ucf == NULL || ucf->upstream == NULL) {
        /* no proxy_pass, or one with variables */
        return NULL;
    }

    uscf = ucf->upstream;

    if (uscf->srv_conf == NULL) {
        /* an address, not an upstream block */
        return NULL;
    }

    return ngx_http_conf_upstream_srv_conf(uscf, ngx_http_scep_module);
}


ngx_http_scep_upstream_t *
ngx_http_scep_location_health(ngx_http_request_t *r)
{
    ngx_http_scep_srv_conf_t  *sscf;

    sscf = ngx_http_scep_location_upstream(r);

    if (sscf == NULL || sscf->health == NULL
        || sscf->health->shm_zone == NULL)
    {
        return NULL;
    }

    return sscf->health;
}


/*
 * NGX_OK when the message may go on: its envelope names a certificate
 * of a healthy back end's last GetCACert answer, or nothing is known
 * (no health checks, no answer yet, no healthy back end, a recipient
 * not named by a certificate, more recipients than kept).  NGX_DECLINED
 * when it names certificates only, and none of them is there.
 */

ngx_int_t
ngx_http_scep_recipient_check(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t                 i, n, rc;
    scep_result_t             *res;
    scep_recipient_t          *rcp;
    ngx_http_scep_rcp_id_t     ids[SCEP_RECIPIENTS_MAX];
    ngx_http_scep_upstream_t  *hc;

    hc = ngx_http_scep_location_health(r);

    if (hc == NULL) {
        return NGX_OK;
    }

    res = &ctx->result;

    if (res->recipients == 0 || res->recipients > SCEP_RECIPIENTS_MAX) {
        return NGX_OK;
    }

    n = res->recipients;

    for (i = 0; i < n; i++) {
        rcp = &res->recipient[i];
        ids[i].kind = rcp->kind;

        if (rcp->kind != SCEP_RECIPIENT_ISSUER_SERIAL
            && rcp->kind != SCEP_RECIPIENT_KEY_ID)
        {
            /* a key not named by a certificate: NDES will judge */
            return NGX_OK;
        }

        if (ngx_http_scep_recipient_id(r, rcp, ids[i].id) != NGX_OK) {
            return NGX_OK;
        }
    }

    rc = ngx_http_scep_recipient_match(hc, ids, n, 0);

    if (rc != NGX_HTTP_SCEP_RCP_NONE) {
        return NGX_OK;
    }

    /* the rare issuer that is encoded otherwise than in the certificate */

    for (i = 0; i < n; i++) {
        rcp = &res->recipient[i];

        if (rcp->kind == SCEP_RECIPIENT_ISSUER_SERIAL
            && scep_cert_id(rcp->issuer, rcp->issuer_len, rcp->serial,
                            rcp->serial_len, 1, ids[i].id)
               != 0)
        {
            return NGX_OK;
        }
    }

    rc = ngx_http_scep_recipient_match(hc, ids, n, 1);

    if (rc != NGX_HTTP_SCEP_RCP_NONE) {
        return NGX_OK;
    }

    ngx_http_scep_recipient_log(r, ctx, hc);

    return NGX_DECLINED;
}


/*
 * The identifier of a recipient as encoded: the one kept with the same
 * octets, or made (a SHA-256 through OpenSSL's EVP) and kept in place of
 * the oldest.  The identifier is a function of those octets alone.
 */

static ngx_int_t
ngx_http_scep_recipient_id(ngx_http_request_t *r, scep_recipient_t *rcp,
    u_char *id)
{
    int                         rc;
    size_t                      a_len, b_len;
    ngx_uint_t                  i;
    const u_char               *a, *b;
    ngx_http_scep_rcp_memo_t   *m;
    ngx_http_scep_main_conf_t  *smcf;

    if (rcp->kind == SCEP_RECIPIENT_ISSUER_SERIAL) {
        a = rcp->issuer;
        a_len = rcp->issuer_len;
        b = rcp->serial;
        b_len = rcp->serial_len;

    } else {
        a = rcp->key_id;
        a_len = rcp->key_id_len;
        b = NULL;
        b_len = 0;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
    m = smcf->rcp_memo;

    if (m) {
        for (i = 0; i < NGX_HTTP_SCEP_RCP_MEMO; i++) {
            if (m[i].kind == (ngx_uint_t) rcp->kind
                && m[i].a_len == a_len
                && m[i].b_len == b_len
                && ngx_memcmp(m[i].octets, a, a_len) == 0
                && (b_len == 0
                    || ngx_memcmp(m[i].octets + a_len, b, b_len) == 0))
            {
                ngx_memcpy(id, m[i].id, SCEP_CERT_ID_LEN);
                return NGX_OK;
            }
        }
    }

    if (rcp->kind == SCEP_RECIPIENT_ISSUER_SERIAL) {
        rc = scep_cert_id(a, a_len, b, b_len, 0, id);

    } else {
        rc = scep_key_id(a, a_len, id);
    }

    if (rc != 0) {
        return NGX_ERROR;
    }

    if (a_len + b_len > NGX_HTTP_SCEP_RCP_MEMO_MAX) {
        return NGX_OK;
    }

    if (m == NULL) {
        /* once in a worker's life; it goes with the cycle */

        m = ngx_pcalloc(ngx_cycle->pool, NGX_HTTP_SCEP_RCP_MEMO
                                         * sizeof(ngx_http_scep_rcp_memo_t));
        if (m == NULL) {
            return NGX_OK;
        }

        smcf->rcp_memo = m;
    }

    m = &m[smcf->rcp_memo_next];
    smcf->rcp_memo_next = (smcf->rcp_memo_next + 1) % NGX_HTTP_SCEP_RCP_MEMO;

    m->kind = rcp->kind;
    m->a_len = a_len;
    m->b_len = b_len;
    ngx_memcpy(m->octets, a, a_len);

    if (b_len) {
        ngx_memcpy(m->octets + a_len, b, b_len);
    }

    ngx_memcpy(m->id, id, SCEP_CERT_ID_LEN);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_scep_recipient_match(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_rcp_id_t *ids, ngx_uint_t n, ngx_uint_t canonical)
{
    u_char                   *id;
    ngx_uint_t                i, j, k, rc;
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_peer_t     *peer;
    ngx_http_scep_sh_rid_t   *rid;
    ngx_http_scep_sh_peer_t  *sp;

    rc = NGX_HTTP_SCEP_RCP_NO_DATA;

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    peer = hc->peers.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < hc->peers.nelts; i++) {
        sp = peer[i].sh;

        if (sp == NULL || sp->state != NGX_HTTP_SCEP_PEER_UP
            || sp->nrids == 0)
        {
            continue;
        }

        rc = NGX_HTTP_SCEP_RCP_NONE;

        for (j = 0; j < sp->nrids; j++) {
            rid = &sp->rids[j];

            for (k = 0; k < n; k++) {
                if (ids[k].kind == SCEP_RECIPIENT_KEY_ID) {
                    if (!rid->has_key_id) {
                        continue;
                    }

                    id = rid->key_id;

                } else {
                    id = canonical ? rid->id_canonical : rid->id;
                }

                if (ngx_memcmp(id, ids[k].id, SCEP_CERT_ID_LEN) == 0) {
                    rc = NGX_HTTP_SCEP_RCP_MATCH;
                    goto done;
                }
            }
        }
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


static void
ngx_http_scep_recipient_log(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_http_scep_upstream_t *hc)
{
    char                       name[SCEP_CERT_NAME_MAX];
    char                       hex[SCEP_CERT_SERIAL_MAX];
    size_t                     k;
    scep_recipient_t          *rcp;
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    /* the first recipient: SCEP clients encrypt to one certificate */

    rcp = &ctx->result.recipient[0];

    if (rcp->kind == SCEP_RECIPIENT_ISSUER_SERIAL) {
        scep_issuer_serial_text(rcp->issuer, rcp->issuer_len, rcp->serial,
                                rcp->serial_len, name, sizeof(name), hex,
                                sizeof(hex));

        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: PKIOperation encrypted to a certificate that"
                      " no healthy back end of upstream \"%V\" sent in"
                      " GetCACert: issuer \"%s\", serial %s",
                      &hc->uscf->host, name, hex);
        return;
    }

    k = ngx_min(rcp->key_id_len, (sizeof(hex) - 1) / 2);

    *ngx_hex_dump((u_char *) hex, (u_char *) rcp->key_id, k) = '\0';

    ngx_log_error(slcf->log_level, r->connection->log, 0,
                  "scep: PKIOperation encrypted to a certificate that no"
                  " healthy back end of upstream \"%V\" sent in GetCACert:"
                  " subjectKeyIdentifier %s", &hc->uscf->host, hex);
}


/*
 * Called by the probe that passed, with the zone locked: the
 * identifiers of every certificate of the answer.  An answer with more
 * certificates than kept, or whose identifiers OpenSSL failed to make,
 * leaves none, so that no request is refused on what is not known.
 */

void
ngx_http_scep_recipient_save(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp, scep_ca_answer_t *ca)
{
    int                      i;
    u_char                  *p;
    size_t                   len;
    scep_cert_info_t        *ci;
    ngx_http_scep_sh_rid_t  *rid;

    sp->nrids = 0;

    ngx_http_scep_recipient_free_locked(shpool, sp);

    if (ca->truncated || ca->ncerts > SCEP_CERTS_MAX) {
        return;
    }

    len = 0;

    for (i = 0; i < ca->ncerts; i++) {
        if (!ca->certs[i].has_id) {
            return;
        }

        len += ca->certs[i].spki_len;
    }

    /*
     * the public keys check the signatures of CertReps
     * (ngx_http_scep_response.c); without room for them, no signature
     * is checked, which the status of the check says
     */

    p = (len > 0) ? ngx_slab_alloc_locked(shpool, len) : NULL;

    if (p == NULL && len > 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep: \"scep_zone\" has no room for the GetCACert"
                      " keys of %V: the signatures of its CertReps are not"
                      " checked; make \"scep_zone\" larger", &sp->key);
    }

    sp->keys = p;

    for (i = 0; i < ca->ncerts; i++) {
        ci = &ca->certs[i];
        rid = &sp->rids[i];

        ngx_memcpy(rid->id, ci->id, SCEP_CERT_ID_LEN);
        ngx_memcpy(rid->id_canonical, ci->id_canonical, SCEP_CERT_ID_LEN);
        ngx_memcpy(rid->key_id, ci->key_id, SCEP_CERT_ID_LEN);
        rid->has_key_id = ci->has_key_id ? 1 : 0;
        rid->is_ca = ci->is_ca ? 1 : 0;
        rid->subject_hash = ci->subject_hash;

        rid->key_len = 0;

        if (p && ci->spki_len) {
            rid->key_off = p - sp->keys;
            rid->key_len = ci->spki_len;
            p = ngx_cpymem(p, ci->spki, ci->spki_len);
        }
    }

    sp->nrids = ca->ncerts;
}


void
ngx_http_scep_recipient_free_locked(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp)
{
    if (sp->keys) {
        ngx_slab_free_locked(shpool, sp->keys);
        sp->keys = NULL;
    }
}
