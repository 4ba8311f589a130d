
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Renewals checked before they reach the CA.  A RenewalReq, or a
 * PKCSReq signed with a certificate that is not self-signed (Cisco IOS,
 * certmonger's rekey), proves its right to a certificate with the one it
 * holds: that one must be issued by a CA certificate of the back ends'
 * GetCACert answers (the probes keep them in the shared zone) or of
 * scep_trusted_ca, be within its validity (scep_renewal_grace after
 * notAfter allowed) and not be on the CRL of scep_crl.  Where nothing of
 * the CA is known, its issuer is left for NDES to judge; its validity
 * and the CRL need no CA certificate and are checked all the same.
 */


#include "ngx_http_scep_module.h"


/* the CA keys that may have issued one certificate: a few at most */
#define NGX_HTTP_SCEP_RENEWAL_KEYS  8


typedef struct {
    ngx_uint_t                 n;
    ngx_uint_t                 known;    /* a healthy back end's answer */
    ngx_uint_t                 keyless;  /* a CA of the name, its key not
                                            kept */
    ngx_str_t                  keys[NGX_HTTP_SCEP_RENEWAL_KEYS];
} ngx_http_scep_renewal_keys_t;


static ngx_int_t ngx_http_scep_renewal_trusted(ngx_http_request_t *r,
    scep_result_t *res, scep_signer_t *signer, ngx_uint_t *known);
static ngx_uint_t ngx_http_scep_renewal_known(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_renewal_keys(ngx_http_request_t *r,
    ngx_http_scep_upstream_t *hc, uint32_t hash,
    ngx_http_scep_renewal_keys_t *found);
static ngx_uint_t ngx_http_scep_self_signed_known(ngx_http_request_t *r,
    scep_result_t *res);
static void ngx_http_scep_self_signed_keep(ngx_http_request_t *r,
    scep_result_t *res);
static void ngx_http_scep_crl_cleanup(void *data);


/*
 * Which rejection a renewal's signer earns, or NGX_HTTP_SCEP_REJECT_NONE.
 * Called once the message's signature verified, while its DER is held
 * (the signer certificate points into it).  Its validity and the CRL are
 * checked whenever scep_check_renewal is on; who issued it only where a
 * CA certificate is known to judge by.
 */

ngx_http_scep_reject_e
ngx_http_scep_renewal_check(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    int                        nomem;
    char                       issuer[SCEP_CERT_NAME_MAX];
    char                       serial[SCEP_CERT_SERIAL_MAX];
    const char                *what;
    ngx_int_t                  rc;
    ngx_uint_t                 known;
    scep_result_t             *res;
    scep_signer_t             *signer;
    ngx_http_scep_reject_e     reject;
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ctx->conf;
    res = &ctx->result;

    if (!slcf->check_renewal
        || res->signer_cert == NULL
        || (res->message_type != 17 && res->message_type != 19))
    {
        return NGX_HTTP_SCEP_REJECT_NONE;
    }

    /*
     * A first enrollment, the common case, signed with a certificate
     * this worker found self-signed before: decoding it (OpenSSL 3
     * decodes its key through the provider decoders) and verifying its
     * signature cost more than the message's own checks.
     */

    if (res->message_type == 19
        && res->signer_self_issued
        && ngx_http_scep_self_signed_known(r, res))
    {
        return NGX_HTTP_SCEP_REJECT_NONE;
    }

    signer = scep_signer_new(res->signer_cert, res->signer_cert_len, &nomem);

    if (signer == NULL) {

        if (nomem) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "scep: %s not checked: out of memory reading its"
                          " signer certificate (d2i_X509() failed)",
                          scep_message_type_name(res->message_type));

            ctx->reason = SCEP_REASON_INTERNAL;
            return NGX_HTTP_SCEP_REJECT_MESSAGE;
        }

        /*
         * the core read it, OpenSSL did not: a certificate that cannot
         * be shown to be the CA's is not one, where the CA is known
         */

        if (!ngx_http_scep_renewal_known(r)) {
            return NGX_HTTP_SCEP_REJECT_NONE;
        }

        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: %s refused: its signer certificate does not"
                      " parse (d2i_X509() failed)",
                      scep_message_type_name(res->message_type));

        return NGX_HTTP_SCEP_REJECT_UNTRUSTED_RENEWAL;
    }

    /*
     * a PKCSReq signed with a self-signed certificate is a first
     * enrollment; the names alone do not say so, a CA may issue a
     * certificate to its own name
     */

    if (res->message_type == 19
        && res->signer_self_issued
        && scep_signer_self_signed(signer) == 1)
    {
        scep_signer_free(signer);
        ngx_http_scep_self_signed_keep(r, res);
        return NGX_HTTP_SCEP_REJECT_NONE;
    }

    reject = NGX_HTTP_SCEP_REJECT_NONE;
    what = NULL;

    rc = ngx_http_scep_renewal_trusted(r, res, signer, &known);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "scep: %s issuer not checked: X509_NAME_hash_ex()"
                      " failed or out of memory",
                      scep_message_type_name(res->message_type));
        known = 0;
    }

    if (known && rc != NGX_OK) {
        reject = NGX_HTTP_SCEP_REJECT_UNTRUSTED_RENEWAL;
        what = "is not issued by a CA certificate of the back ends'"
               " GetCACert answers or of scep_trusted_ca";

    } else if (!scep_signer_valid(signer, ngx_time(), slcf->renewal_grace)) {
        reject = NGX_HTTP_SCEP_REJECT_EXPIRED_RENEWAL;
        what = "is outside its validity (scep_renewal_grace included)";

    } else if (scep_signer_revoked(signer, slcf->crl)) {
        reject = NGX_HTTP_SCEP_REJECT_REVOKED_RENEWAL;
        what = "is on the CRL of scep_crl";
    }

    if (what) {
        scep_signer_text(signer, issuer, sizeof(issuer), serial,
                         sizeof(serial));

        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: %s refused: its signer certificate (issuer"
                      " \"%s\", serial %s) %s",
                      scep_message_type_name(res->message_type), issuer,
                      serial, what);
    }

    scep_signer_free(signer);

    return reject;
}


/*
 * Whether the signer certificate is, octet for octet, one this worker
 * found self-signed: being self-signed is a property of those octets
 * alone, so the answer is the one that decoding and verifying it gives.
 */

static ngx_uint_t
ngx_http_scep_self_signed_known(ngx_http_request_t *r, scep_result_t *res)
{
    ngx_uint_t                    i;
    ngx_http_scep_main_conf_t    *smcf;
    ngx_http_scep_self_signed_t  *ss;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
    ss = smcf->self_signed;

    if (ss == NULL) {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_SCEP_SELF_SIGNED; i++) {
        if (ss[i].len == res->signer_cert_len
            && ngx_memcmp(ss[i].der, res->signer_cert, ss[i].len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Keeps a certificate found self-signed, in place of the oldest kept.
 * The slots are allocated from the cycle's pool at the first one, once
 * in a worker's life, and go with the cycle; a certificate larger than
 * a slot is not kept.
 */

static void
ngx_http_scep_self_signed_keep(ngx_http_request_t *r, scep_result_t *res)
{
    u_char                       *p;
    ngx_uint_t                    i;
    ngx_http_scep_main_conf_t    *smcf;
    ngx_http_scep_self_signed_t  *ss;

    if (res->signer_cert_len == 0
        || res->signer_cert_len > NGX_HTTP_SCEP_SELF_SIGNED_MAX)
    {
        return;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (smcf->self_signed == NULL) {
        ss = ngx_pcalloc(ngx_cycle->pool, NGX_HTTP_SCEP_SELF_SIGNED
                                 * sizeof(ngx_http_scep_self_signed_t));
        p = ngx_palloc(ngx_cycle->pool, NGX_HTTP_SCEP_SELF_SIGNED
                                        * NGX_HTTP_SCEP_SELF_SIGNED_MAX);

        if (ss == NULL || p == NULL) {
            /* not kept: checked again next time */
            return;
        }

        for (i = 0; i < NGX_HTTP_SCEP_SELF_SIGNED; i++) {
            ss[i].der = p + i * NGX_HTTP_SCEP_SELF_SIGNED_MAX;
        }

        smcf->self_signed = ss;
    }

    ss = &smcf->self_signed[smcf->self_signed_next];
    smcf->self_signed_next = (smcf->self_signed_next + 1)
                             % NGX_HTTP_SCEP_SELF_SIGNED;

    ngx_memcpy(ss->der, res->signer_cert, res->signer_cert_len);
    ss->len = res->signer_cert_len;
}


/*
 * NGX_OK when an anchor of scep_trusted_ca or a CA certificate of a
 * healthy back end's GetCACert answer issued the signer, NGX_DECLINED
 * when none did; *known says whether any was there to ask
 */

static ngx_int_t
ngx_http_scep_renewal_trusted(ngx_http_request_t *r, scep_result_t *res,
    scep_signer_t *signer, ngx_uint_t *known)
{
    int                            ok;
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_http_scep_srv_conf_t      *sscf;
    ngx_http_scep_renewal_keys_t   found;

    *known = 0;

    sscf = ngx_http_scep_location_upstream(r);

    if (sscf == NULL) {
        return NGX_DECLINED;
    }

    if (sscf->trusted_ca) {
        *known = 1;

        if (scep_anchors_issued(sscf->trusted_ca, res->signer_cert,
                                res->signer_cert_len)
            == 1)
        {
            return NGX_OK;
        }
    }

    if (sscf->health == NULL || sscf->health->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    hash = scep_signer_issuer_hash(signer, &ok);

    if (!ok) {
        return NGX_ERROR;
    }

    if (ngx_http_scep_renewal_keys(r, sscf->health, hash, &found)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (found.known) {
        *known = 1;
    }

    /* the signatures are checked outside the zone's mutex */

    for (i = 0; i < found.n; i++) {
        if (scep_signer_issued_by(signer, found.keys[i].data,
                                  found.keys[i].len)
            == 1)
        {
            return NGX_OK;
        }
    }

    /*
     * a CA certificate of the issuer's name whose key was not kept (no
     * room in the zone, an answer not in DER) cannot be ruled out; where
     * scep_trusted_ca is set, its anchors have decided
     */

    if (found.keyless && sscf->trusted_ca == NULL) {
        *known = 0;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: %s issuer not checked: the key of a CA"
                      " certificate of its name was not kept (the zone"
                      " of scep_health_check is full or the GetCACert"
                      " answer is not DER); scep_trusted_ca would decide",
                      scep_message_type_name(res->message_type));
    }

    return NGX_DECLINED;
}


/*
 * Whether a CA certificate is known to judge a signer's issuer by:
 * scep_trusted_ca, or a healthy back end's GetCACert answer
 */

static ngx_uint_t
ngx_http_scep_renewal_known(ngx_http_request_t *r)
{
    ngx_uint_t                 i, known;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;
    ngx_http_scep_srv_conf_t  *sscf;

    sscf = ngx_http_scep_location_upstream(r);

    if (sscf == NULL) {
        return 0;
    }

    if (sscf->trusted_ca) {
        return 1;
    }

    hc = sscf->health;

    if (hc == NULL || hc->shm_zone == NULL) {
        return 0;
    }

    known = 0;

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    peer = hc->peers.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < hc->peers.nelts; i++) {
        sp = peer[i].sh;

        if (sp && sp->state == NGX_HTTP_SCEP_PEER_UP && sp->nrids) {
            known = 1;
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return known;
}


/*
 * The keys of the CA certificates whose subject has the hash of the
 * signer's issuer, of every healthy back end, each once, copied out of
 * the zone into the request's pool
 */

static ngx_int_t
ngx_http_scep_renewal_keys(ngx_http_request_t *r,
    ngx_http_scep_upstream_t *hc, uint32_t hash,
    ngx_http_scep_renewal_keys_t *found)
{
    u_char                   *key, *p;
    ngx_int_t                 rc;
    ngx_uint_t                i, j, k, dup;
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_peer_t     *peer;
    ngx_http_scep_sh_rid_t   *rid;
    ngx_http_scep_sh_peer_t  *sp;

    found->n = 0;
    found->known = 0;
    found->keyless = 0;

    rc = NGX_OK;

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

        found->known = 1;

        for (j = 0; j < sp->nrids; j++) {
            rid = &sp->rids[j];

            /* a single certificate is the CA; of more, RAs issue none */

            if (rid->subject_hash != hash
                || (sp->nrids > 1 && !rid->is_ca))
            {
                continue;
            }

            if (sp->keys == NULL || rid->key_len == 0) {
                found->keyless = 1;
                continue;
            }

            key = sp->keys + rid->key_off;

            dup = 0;

            for (k = 0; k < found->n; k++) {
                if (found->keys[k].len == rid->key_len
                    && ngx_memcmp(found->keys[k].data, key, rid->key_len)
                       == 0)
                {
                    dup = 1;
                    break;
                }
            }

            if (dup || found->n == NGX_HTTP_SCEP_RENEWAL_KEYS) {
                continue;
            }

            p = ngx_pnalloc(r->pool, rid->key_len);
            if (p == NULL) {
                rc = NGX_ERROR;
                goto done;
            }

            ngx_memcpy(p, key, rid->key_len);

            found->keys[found->n].data = p;
            found->keys[found->n].len = rid->key_len;
            found->n++;
        }
    }

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * scep_crl: the CRLs are read when the configuration is, as ssl_crl's,
 * and freed with its cycle; a reload reads the file again
 */

char *
ngx_http_scep_crl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    char                 err[NGX_HTTP_SCEP_REASON_LEN];
    ngx_str_t           *value, file;
    ngx_pool_cleanup_t  *cln;

    if (slcf->crl != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    slcf->crl = scep_crl_read((char *) file.data, err, sizeof(err));

    if (slcf->crl == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scep_crl\" \"%s\": %s: give a file of the"
                           " CA's CRLs, PEM or DER, as for ssl_crl",
                           file.data, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_scep_crl_cleanup;
    cln->data = slcf->crl;

    return NGX_CONF_OK;
}


static void
ngx_http_scep_crl_cleanup(void *data)
{
    scep_crl_free(data);
}
