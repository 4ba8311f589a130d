
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * GetCACaps and GetCACert answered at the edge (scep_ca_cache): the
 * health probes keep each back end's last good answers in the shared
 * zone, and a "scep on" location whose proxy_pass names that upstream
 * answers these two operations itself, byte for byte, with the back
 * end's Content-Type, without a request to any back end.
 *
 * With scep_trusted_ca, every answer kept chains to its certificates
 * (the probes fail others), and of several healthy back ends the answer
 * of the one whose RA certificate was issued last (latest notBefore) is
 * served.  Without it, an answer is served only when every healthy back
 * end has the same: while they disagree, CA requests pass to the back
 * ends as through a plain proxy ($scep_cache BYPASS), so that no one
 * back end chooses the CA chain every device gets.  Healthy back ends
 * whose answers differ are flagged, and logged once per change.  With
 * no healthy back end the answers are served until scep_ca_cache_valid
 * after their last good probe.
 */


#include <ngx_md5.h>

#include "ngx_http_scep_module.h"

/* after nginx's headers: ngx_config.h must come first */
#include <openssl/evp.h>


#define NGX_HTTP_SCEP_CA_IDENT_MAX  255


static ngx_http_scep_upstream_t *ngx_http_scep_cache_upstream(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_scep_cache_ident(ngx_str_t *message,
    ngx_str_t *ident);
static ngx_http_scep_sh_answer_t *ngx_http_scep_cache_pick(
    ngx_http_scep_upstream_t *hc, ngx_uint_t healthy, time_t since,
    ngx_uint_t *differ, ngx_uint_t *missing);
static ngx_uint_t ngx_http_scep_cache_same(ngx_http_scep_sh_answer_t *a,
    ngx_http_scep_sh_answer_t *b);
static ngx_uint_t ngx_http_scep_cache_compare(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_sh_answer_t **served);
static void ngx_http_scep_cache_ra(scep_ca_answer_t *ca, time_t *not_before,
    time_t *not_after);
static void ngx_http_scep_anchors_cleanup(void *data);
static ngx_int_t ngx_http_scep_cache_digest(ngx_http_scep_answers_t *answers,
    u_char *digest);


static ngx_str_t  ngx_http_scep_cache_values[] = {
    ngx_null_string,
    ngx_string("HIT"),
    ngx_string("MISS"),
    ngx_string("BYPASS")
};


ngx_int_t
ngx_http_scep_cache_init(ngx_conf_t *cf)
{
    u_char                          *p;
    u_char                           digest[SCEP_ANCHORS_DIGEST_LEN];
    u_char                           ident[16];
    ngx_md5_t                        md5;
    ngx_uint_t                       i;
    ngx_http_scep_upstream_t        *hc, **hcp;
    ngx_http_scep_srv_conf_t        *sscf;
    ngx_http_scep_main_conf_t       *smcf;
    ngx_http_upstream_srv_conf_t   **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    /* scep_trusted_ca is for the probes to check answers against */

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        sscf = ngx_http_conf_upstream_srv_conf(uscfp[i], ngx_http_scep_module);

        if (sscf && sscf->trusted_ca && sscf->health == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"scep_trusted_ca\" in %s:%ui needs"
                          " \"scep_health_check\" in upstream \"%V\": its"
                          " probes check the back ends' GetCACert answers"
                          " against the certificates",
                          sscf->trusted_file, sscf->trusted_line,
                          &uscfp[i]->host);
            return NGX_ERROR;
        }
    }

    /* the probes keep their answers only where a location may serve them */

    hcp = smcf->upstreams.elts;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        hc = hcp[i];
        hc->cache = smcf->cache_used ? 1 : 0;

        sscf = ngx_http_conf_upstream_srv_conf(hc->uscf,
                                               ngx_http_scep_module);
        hc->trusted_ca = sscf->trusted_ca;

        /*
         * The back ends' records in the zone are found again after a
         * reload by this key too: a reload that changes what the probes
         * ask for (ca_ident=) or what they check the answers against
         * (scep_trusted_ca) gets records of its own, and never serves
         * answers kept under the other, nor uses their certificates for
         * scep_check_recipient.  Both as digests: the record with its
         * key fits the 2k of slab that scep_zone is sized by.
         */

        hc->answers_key.len = sizeof("ca= ident=") - 1
                              + 2 * SCEP_ANCHORS_DIGEST_LEN
                              + 2 * sizeof(ident);

        p = ngx_pnalloc(cf->pool, hc->answers_key.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        hc->answers_key.data = p;

        p = ngx_cpymem(p, "ca=", sizeof("ca=") - 1);

        if (hc->trusted_ca) {
            scep_anchors_digest(hc->trusted_ca, digest);
            p = ngx_hex_dump(p, digest, SCEP_ANCHORS_DIGEST_LEN);

        } else {
            p = ngx_cpymem(p, "-", 1);
            hc->answers_key.len -= 2 * SCEP_ANCHORS_DIGEST_LEN - 1;
        }

        ngx_md5_init(&md5);
        ngx_md5_update(&md5, hc->ca_ident.data, hc->ca_ident.len);
        ngx_md5_final(ident, &md5);

        p = ngx_cpymem(p, " ident=", sizeof(" ident=") - 1);
        (void) ngx_hex_dump(p, ident, sizeof(ident));
    }

    return NGX_OK;
}


/* "ca_ident=" of scep_health_check: the CA identifier the probes send */

char *
ngx_http_scep_ca_ident(ngx_conf_t *cf, ngx_http_scep_upstream_t *hc,
    ngx_str_t *value)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   i;

    hc->ca_ident.data = value->data + sizeof("ca_ident=") - 1;
    hc->ca_ident.len = value->len - (sizeof("ca_ident=") - 1);

    if (hc->ca_ident.len > NGX_HTTP_SCEP_CA_IDENT_MAX) {
        goto invalid;
    }

    for (i = 0; i < hc->ca_ident.len; i++) {
        if (hc->ca_ident.data[i] < 0x20 || hc->ca_ident.data[i] > 0x7e) {
            goto invalid;
        }
    }

    if (hc->ca_ident.len == 0) {
        /* the probes send no "message" */
        ngx_str_null(&hc->ca_ident_arg);
        return NGX_CONF_OK;
    }

    /* "&message=" and the identifier, all but letters and digits escaped */

    len = sizeof("&message=") - 1 + 3 * hc->ca_ident.len;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    hc->ca_ident_arg.data = p;
    last = ngx_cpymem(p, "&message=", sizeof("&message=") - 1);

    for (i = 0; i < hc->ca_ident.len; i++) {
        if (isalnum(hc->ca_ident.data[i])
            || ngx_strlchr((u_char *) "-._~", (u_char *) "-._~" + 4,
                           hc->ca_ident.data[i]))
        {
            *last++ = hc->ca_ident.data[i];

        } else {
            last = ngx_sprintf(last, "%%%02XD", hc->ca_ident.data[i]);
        }
    }

    hc->ca_ident_arg.len = last - p;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"ca_ident\" of \"scep_health_check\" must be up to"
                       " %d printable ASCII characters, as a CA identifier"
                       " is: \"%V\"", NGX_HTTP_SCEP_CA_IDENT_MAX, value);

    return NGX_CONF_ERROR;
}


/*
 * scep_trusted_ca: the certificates are read when the configuration is,
 * and freed with its cycle
 */

char *
ngx_http_scep_trusted_ca(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_srv_conf_t *sscf = conf;

    char                 err[NGX_HTTP_SCEP_REASON_LEN];
    ngx_str_t           *value, file;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    if (sscf->trusted_ca) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(file.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"scep_trusted_ca\" cannot read \"%s\"",
                           file.data);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    sscf->trusted_ca = scep_anchors_read((char *) file.data, err,
                                         sizeof(err));

    if (sscf->trusted_ca == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scep_trusted_ca\" \"%s\": %s: give a PEM file"
                           " of the CA certificates that the back ends'"
                           " GetCACert answers must hold or be issued by",
                           file.data, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_scep_anchors_cleanup;
    cln->data = sscf->trusted_ca;

    sscf->trusted_file = cf->conf_file->file.name.data;
    sscf->trusted_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static void
ngx_http_scep_anchors_cleanup(void *data)
{
    scep_anchors_free(data);
}


/*
 * The rewrite phase, for a GetCACaps or GetCACert that passed its checks:
 * NGX_DECLINED passes it on to the back end, anything else has answered.
 */

ngx_int_t
ngx_http_scep_cache_handler(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                     *type, *body;
    size_t                      type_len, body_len;
    time_t                      now;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_uint_t                  part, stale, differ, missing;
    ngx_chain_t                 out;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_sh_t         *sh;
    ngx_http_scep_upstream_t   *hc;
    ngx_http_scep_loc_conf_t   *slcf;
    ngx_http_scep_sh_answer_t  *a;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    if (!slcf->ca_cache) {
        return NGX_DECLINED;
    }

    switch (ctx->op) {
    case NGX_HTTP_SCEP_OP_GETCACAPS:
        part = 0;
        break;
    case NGX_HTTP_SCEP_OP_GETCACERT:
        part = 2;
        break;
    default:
        return NGX_DECLINED;
    }

    hc = ngx_http_scep_cache_upstream(r);

    if (hc == NULL || hc->shm_zone == NULL) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    sh = shpool->data;

    ctx->cache = NGX_HTTP_SCEP_CACHE_MISS;

    if (slcf->ca_cache_ident == NGX_HTTP_SCEP_IDENT_PROBE
        && !ngx_http_scep_cache_ident(&ctx->message, &hc->ca_ident))
    {
        /* another CA's answers: the back end knows them */
        (void) ngx_atomic_fetch_add(&sh->counters.cache_misses, 1);
        return NGX_DECLINED;
    }

    now = ngx_time();
    type = NULL;
    body = NULL;
    type_len = 0;
    body_len = 0;

    ngx_shmtx_lock(&shpool->mutex);

    stale = 0;
    a = ngx_http_scep_cache_pick(hc, 1, 0, &differ, &missing);

    /* without an anchor, not while a healthy one's answers are unknown */

    if (a == NULL && (hc->trusted_ca || !missing)) {
        stale = 1;
        a = ngx_http_scep_cache_pick(hc, 0, now - slcf->ca_cache_valid,
                                     &differ, &missing);
    }

    /*
     * Without an anchor, only what all the back ends in question agree
     * on.  With one, GetCACert is the trusted answer whose RA
     * certificate is newest; GetCACaps, which no anchor vouches for
     * (one back end's could take AES or POST from every device), only
     * what they all agree on.
     */

    if ((hc->trusted_ca == NULL || part == 0) && (differ || missing)) {
        a = NULL;
    }

    if (a) {
        type_len = a->len[part];
        body_len = a->len[part + 1];

        type = ngx_pnalloc(r->pool, type_len + body_len);

        if (type) {
            body = type + type_len;
            ngx_memcpy(type, a->data + (part ? a->len[0] + a->len[1] : 0),
                       type_len + body_len);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (a == NULL && differ && (hc->trusted_ca == NULL || part == 0)) {
        ctx->cache = NGX_HTTP_SCEP_CACHE_BYPASS;
        (void) ngx_atomic_fetch_add(&sh->counters.cache_bypassed, 1);
        return NGX_DECLINED;
    }

    if (a == NULL) {
        (void) ngx_atomic_fetch_add(&sh->counters.cache_misses, 1);
        return NGX_DECLINED;
    }

    if (type == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->cache = NGX_HTTP_SCEP_CACHE_HIT;

    (void) ngx_atomic_fetch_add(&sh->counters.cache_hits[part / 2], 1);

    if (stale) {
        (void) ngx_atomic_fetch_add(&sh->counters.cache_stale, 1);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = body_len;
    r->headers_out.content_type.data = type;
    r->headers_out.content_type.len = type_len;
    r->headers_out.content_type_len = type_len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + body_len;
    b->memory = body_len ? 1 : 0;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The upstream with health checks that proxy_pass names, or NULL: the
 * proxy module's location configuration begins with the upstream
 * module's public ngx_http_upstream_conf_t, whose first member is the
 * upstream (the proxy module is found by ngx_http_scep_recipient_init()).
 */

static ngx_http_scep_upstream_t *
ngx_http_scep_cache_upstream(ngx_http_request_t *r)
{
    ngx_http_upstream_conf_t      *ucf;
    ngx_http_scep_srv_conf_t      *sscf;
    ngx_http_scep_main_conf_t     *smcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (smcf->proxy_index == NGX_CONF_UNSET_UINT) {
        return NULL;
    }

    ucf = r->loc_conf[smcf->proxy_index];

    /* NULL where proxy_pass has variables, or there is none */
    uscf = ucf ? ucf->upstream : NULL;

    if (uscf == NULL || uscf->srv_conf == NULL) {
        return NULL;
    }

    sscf = ngx_http_conf_upstream_srv_conf(uscf, ngx_http_scep_module);

    return sscf ? sscf->health : NULL;
}


/*
 * Whether a request's CA identifier, as sent (percent escapes, "+" for
 * a space), is the probes' one; no "message" is an empty identifier.
 */

static ngx_uint_t
ngx_http_scep_cache_ident(ngx_str_t *message, ngx_str_t *ident)
{
    u_char      c, *p, *last;
    ngx_uint_t  i, hi, lo;

    if (message->len == 0) {
        return ident->len == 0;
    }

    p = message->data;
    last = p + message->len;
    i = 0;

    while (p < last) {
        c = *p++;

        if (c == '+') {
            c = ' ';

        } else if (c == '%' && last - p >= 2) {
            hi = ngx_hextoi(p, 1);
            lo = ngx_hextoi(p + 1, 1);

            if (hi == (ngx_uint_t) NGX_ERROR || lo == (ngx_uint_t) NGX_ERROR) {
                return 0;
            }

            c = (u_char) (hi * 16 + lo);
            p += 2;
        }

        if (i == ident->len || ident->data[i] != c) {
            return 0;
        }

        i++;
    }

    return i == ident->len;
}


/*
 * Of the back ends that are up (healthy), or else of those whose last
 * good probe was at "since" or later, the answer whose RA certificate is
 * newest; *differ is whether their answers differ, *missing whether one
 * that is up has none kept.  The zone is locked.
 */

static ngx_http_scep_sh_answer_t *
ngx_http_scep_cache_pick(ngx_http_scep_upstream_t *hc, ngx_uint_t healthy,
    time_t since, ngx_uint_t *differ, ngx_uint_t *missing)
{
    ngx_uint_t                  i;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_sh_peer_t    *sp;
    ngx_http_scep_sh_answer_t  *a, *best;

    best = NULL;
    peer = hc->peers.elts;

    *differ = 0;
    *missing = 0;

    for (i = 0; i < hc->peers.nelts; i++) {
        sp = peer[i].sh;

        if (sp == NULL) {
            continue;
        }

        if (healthy && sp->state != NGX_HTTP_SCEP_PEER_UP) {
            continue;
        }

        a = sp->answer;

        if (a == NULL) {
            *missing |= healthy;
            continue;
        }

        if (!healthy && a->last_good < since) {
            continue;
        }

        if (best && !*differ && !ngx_http_scep_cache_same(best, a)) {
            *differ = 1;
        }

        if (best == NULL
            || a->ra_not_before > best->ra_not_before
            || (a->ra_not_before == best->ra_not_before
                && a->ra_not_after > best->ra_not_after))
        {
            best = a;
        }
    }

    return best;
}


/* a request compares the back ends' answers: by their digests */

static ngx_uint_t
ngx_http_scep_cache_same(ngx_http_scep_sh_answer_t *a,
    ngx_http_scep_sh_answer_t *b)
{
    return ngx_memcmp(a->len, b->len, sizeof(a->len)) == 0
           && ngx_memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}


static ngx_int_t
ngx_http_scep_cache_digest(ngx_http_scep_answers_t *answers, u_char *digest)
{
    ngx_int_t    rc;
    ngx_uint_t   i;
    EVP_MD_CTX  *md;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    rc = (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) ? NGX_OK
                                                           : NGX_ERROR;

    for (i = 0; rc == NGX_OK && i < 4; i++) {
        if (answers->part[i].len
            && EVP_DigestUpdate(md, answers->part[i].data,
                                answers->part[i].len)
               != 1)
        {
            rc = NGX_ERROR;
        }
    }

    if (rc == NGX_OK && EVP_DigestFinal_ex(md, digest, NULL) != 1) {
        rc = NGX_ERROR;
    }

    EVP_MD_CTX_free(md);

    return rc;
}


/*
 * Flags the healthy back ends whose answers are not the one served;
 * returns whether any is.  The zone is locked.
 */

static ngx_uint_t
ngx_http_scep_cache_compare(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_sh_answer_t **served)
{
    ngx_uint_t                  i, differ, missing;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_sh_peer_t    *sp;
    ngx_http_scep_sh_answer_t  *best;

    best = ngx_http_scep_cache_pick(hc, 1, 0, &differ, &missing);
    differ = 0;
    peer = hc->peers.elts;

    for (i = 0; i < hc->peers.nelts; i++) {
        sp = peer[i].sh;

        if (sp == NULL || sp->answer == NULL) {
            continue;
        }

        sp->answer->differs = (best
                               && sp->state == NGX_HTTP_SCEP_PEER_UP
                               && !ngx_http_scep_cache_same(best,
                                                            sp->answer));
        if (sp->answer->differs) {
            differ = 1;
        }
    }

    *served = best;

    return differ;
}


/*
 * After every probe of a back end of an upstream whose answers may be
 * served: a passing probe's answers (answers not NULL) replace the kept
 * ones when they changed, and the healthy back ends are compared.
 */

void
ngx_http_scep_cache_probe_done(ngx_http_scep_peer_t *peer,
    ngx_http_scep_answers_t *answers, scep_ca_answer_t *ca)
{
    u_char                     *p;
    u_char                      digest[32];
    size_t                      len;
    time_t                      not_before, not_after;
    ngx_str_t                   served;
    ngx_uint_t                  i, before, after, nomem;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_sh_t         *sh;
    ngx_http_scep_peer_t       *pp;
    ngx_http_scep_sh_peer_t    *sp;
    ngx_http_scep_upstream_t   *hc;
    ngx_http_scep_sh_answer_t  *a, *best;

    hc = peer->upstream;
    sp = peer->sh;

    if (sp == NULL || hc->shm_zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    sh = shpool->data;

    if (!hc->cache) {
        /*
         * answers kept before a reload that turned scep_ca_cache off are
         * not kept up to date: they must not be served when it is on again
         */

        if (sp->answer) {
            ngx_shmtx_lock(&shpool->mutex);
            ngx_http_scep_cache_free_locked(shpool, sp);
            ngx_shmtx_unlock(&shpool->mutex);
        }

        return;
    }
    nomem = 0;
    len = 0;
    not_before = 0;
    not_after = 0;

    if (answers
        && ngx_http_scep_cache_digest(answers, digest) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "scep_ca_cache: EVP_Digest*() of the answers of %V"
                      " in upstream \"%V\" failed: they are not kept",
                      &peer->name, &hc->uscf->host);
        answers = NULL;
    }

    if (answers) {
        for (i = 0; i < 4; i++) {
            len += answers->part[i].len;
        }

        ngx_http_scep_cache_ra(ca, &not_before, &not_after);
    }

    ngx_shmtx_lock(&shpool->mutex);

    before = 0;
    pp = hc->peers.elts;

    for (i = 0; i < hc->peers.nelts; i++) {
        if (pp[i].sh && pp[i].sh->answer && pp[i].sh->answer->differs) {
            before = 1;
        }
    }

    a = sp->answer;

    if (answers && a) {
        /* unchanged answers stay where they are */

        for (i = 0, p = a->data; i < 4; i++) {
            if (a->len[i] != answers->part[i].len
                || ngx_memcmp(p, answers->part[i].data, a->len[i]) != 0)
            {
                break;
            }

            p += a->len[i];
        }

        if (i < 4) {
            ngx_slab_free_locked(shpool, a);
            sp->answer = NULL;
            a = NULL;
        }
    }

    if (answers && a == NULL) {

        /*
         * Without room the back end keeps no answers: requests for them
         * go to the back ends, as without scep_ca_cache.
         */

        a = ngx_slab_alloc_locked(shpool,
                                  offsetof(ngx_http_scep_sh_answer_t, data)
                                  + len);
        if (a == NULL) {
            nomem = !sh->answer_nomem;
            sh->answer_nomem = 1;

        } else {
            ngx_memzero(a, offsetof(ngx_http_scep_sh_answer_t, data));

            for (i = 0, p = a->data; i < 4; i++) {
                a->len[i] = answers->part[i].len;

                if (a->len[i]) {
                    p = ngx_cpymem(p, answers->part[i].data, a->len[i]);
                }
            }

            ngx_memcpy(a->digest, digest, sizeof(a->digest));

            sp->answer = a;
        }
    }

    if (answers && a) {
        a->last_good = ngx_time();
        a->ra_not_before = not_before;
        a->ra_not_after = not_after;
    }

    after = ngx_http_scep_cache_compare(hc, &best);

    ngx_str_null(&served);

    if (after != before && best) {
        for (i = 0; i < hc->peers.nelts; i++) {
            if (pp[i].sh && pp[i].sh->answer == best) {
                served = pp[i].name;
                break;
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (nomem) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep_ca_cache: \"scep_zone\" has no room for the"
                      " answers of %V in upstream \"%V\" (%uz bytes):"
                      " requests for them go to the back ends; make"
                      " \"scep_zone\" larger", &peer->name, &hc->uscf->host,
                      len);
    }

    if (after && !before && hc->trusted_ca) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep_ca_cache: healthy back ends of upstream \"%V\""
                      " disagree on GetCACaps or GetCACert (an RA"
                      " certificate renewed on some only?): serving the"
                      " answers of %V, whose RA certificate is newest",
                      &hc->uscf->host, &served);

    } else if (after && !before) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep_ca_cache: healthy back ends of upstream \"%V\""
                      " disagree on GetCACaps or GetCACert (an RA"
                      " certificate renewed on some only?): passing CA"
                      " requests to the back ends until they agree; with"
                      " \"scep_trusted_ca\" the answers whose RA"
                      " certificate is newest (now %V's) would be served",
                      &hc->uscf->host, &served);

    } else if (before && !after) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep_ca_cache: healthy back ends of upstream \"%V\""
                      " agree on GetCACaps and GetCACert again",
                      &hc->uscf->host);
    }
}


/* a back end's record is freed: its answers with it; the zone is locked */

void
ngx_http_scep_cache_free_locked(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp)
{
    if (sp->answer) {
        ngx_slab_free_locked(shpool, sp->answer);
        sp->answer = NULL;
    }
}


/*
 * The RA certificate of a GetCACert answer: of the certificates that are
 * not a CA's, the one issued last; the CA certificate when it is alone.
 */

static void
ngx_http_scep_cache_ra(scep_ca_answer_t *ca, time_t *not_before,
    time_t *not_after)
{
    int                i;
    scep_cert_info_t  *ci, *ra;

    ra = NULL;

    for (i = 0; i < ca->ncerts; i++) {
        ci = &ca->certs[i];

        if (ci->is_ca) {
            continue;
        }

        if (ra == NULL || ci->not_before > ra->not_before) {
            ra = ci;
        }
    }

    if (ra == NULL && ca->ncerts) {
        ra = &ca->certs[ca->ca >= 0 ? ca->ca : 0];
    }

    *not_before = ra ? ra->not_before : 0;
    *not_after = ra ? ra->not_after : 0;
}


/* copies a probe's answer into its pool: the next step reuses the buffer */

ngx_int_t
ngx_http_scep_answers_keep(ngx_pool_t *pool, ngx_str_t *part,
    ngx_str_t *type, ngx_str_t *body)
{
    part[0].len = type->len;
    part[1].len = body->len;

    part[0].data = ngx_pnalloc(pool, type->len + body->len + 1);
    if (part[0].data == NULL) {
        return NGX_ERROR;
    }

    part[1].data = part[0].data + type->len;

    if (type->len) {
        ngx_memcpy(part[0].data, type->data, type->len);
    }

    if (body->len) {
        ngx_memcpy(part[1].data, body->data, body->len);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_scep_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    if (ctx == NULL || ctx->cache == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_http_scep_cache_values[ctx->cache].data;
    v->len = ngx_http_scep_cache_values[ctx->cache].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
