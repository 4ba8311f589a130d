
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A back end's answer to a PKIOperation, read as a CertRep: NDES
 * answers HTTP 200 whether it issued a certificate or refused, and only
 * the CertRep's signed attributes tell which.  The answer is held (it
 * is small), read without decrypting anything, checked against the
 * request (scep_check_response), counted per back end, and then passed
 * on byte for byte, or refused with 502 under "scep_check_response on".
 */


#include "ngx_http_scep_module.h"


static ngx_int_t ngx_http_scep_response_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_response_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_scep_response_keep(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_buf_t *b);
static ngx_int_t ngx_http_scep_response_pass(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_chain_t *rest, ngx_uint_t last);
static ngx_int_t ngx_http_scep_response_refuse(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static scep_response_t ngx_http_scep_response_check(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_signer_key(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_scep_find_key(ngx_http_scep_sh_peer_t *sp,
    scep_certrep_t *rep, u_char *id, ngx_uint_t canonical, ngx_pool_t *pool,
    ngx_str_t *key);
static ngx_http_scep_peer_t *ngx_http_scep_answering_peer(
    ngx_http_request_t *r);
static void ngx_http_scep_refusals(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/* the part of a back end's answer read so far, in the request's ctx */

typedef struct {
    u_char   *start;
    u_char   *pos;
    u_char   *end;
} ngx_http_scep_answer_buf_t;


void
ngx_http_scep_response_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_scep_response_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_scep_response_body_filter;
}


static ngx_int_t
ngx_http_scep_response_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t            status;
    ngx_http_scep_ctx_t  *ctx;

    /*
     * a back end's answer arrives while its connection is open: not an
     * error page, nor what an X-Accel-Redirect or proxy_intercept_errors
     * put in its place
     */

    if (r != r->main || r->upstream == NULL
        || r->upstream->peer.connection == NULL)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL
        || ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION
        || ctx->response != NGX_HTTP_SCEP_ANSWER_NONE
        || ctx->conf->check_response == NGX_HTTP_SCEP_RESP_OFF)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->response = NGX_HTTP_SCEP_ANSWER_DONE;
    ctx->peer = ngx_http_scep_answering_peer(r);

    /*
     * An HTTP error of the back end (IIS's 500 page, say) is no CertRep
     * and goes on as it came: the device sees an error either way, and
     * its status is what the admin looks up.  Every 2xx is read.
     */

    status = r->headers_out.status;

    if (status < NGX_HTTP_OK || status >= NGX_HTTP_SPECIAL_RESPONSE
        || status == NGX_HTTP_NO_CONTENT)
    {
        ctx->response_check = SCEP_RESPONSE_NOT_CERTREP + 1;
        return ngx_http_next_header_filter(r);
    }

    if (r->header_only) {
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.content_length_n > NGX_HTTP_SCEP_MAX_ANSWER) {
        return ngx_http_scep_response_pass(r, ctx, NULL, 0);
    }

    /* the header waits for the whole answer, which the body filter reads */

    ctx->response = NGX_HTTP_SCEP_ANSWER_BUFFERING;

    r->main_filter_need_in_memory = 1;
    r->allow_ranges = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_response_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t             rc;
    ngx_uint_t            last, cut;
    ngx_chain_t          *cl;
    scep_response_t       check;
    ngx_http_scep_ctx_t  *ctx;

    if (in == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_scep_module);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->response == NGX_HTTP_SCEP_ANSWER_REFUSED) {
        /* what the back end still sends after the gateway's 502 */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return NGX_OK;
    }

    if (ctx->response != NGX_HTTP_SCEP_ANSWER_BUFFERING) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;
    cut = 0;

    for (cl = in; cl; cl = cl->next) {

        rc = ngx_http_scep_response_keep(r, ctx, cl->buf);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            /* too large or not in memory: no CertRep, pass it all on */
            return ngx_http_scep_response_pass(r, ctx, cl, 0);
        }

        if (cl->buf->last_buf) {
            last = 1;
            break;
        }

        /*
         * the back end broke off: nginx closed its connection and
         * flushes what was sent, which is nothing yet
         */

        if (cl->buf->flush && r->upstream
            && r->upstream->peer.connection == NULL)
        {
            cut = 1;
        }
    }

    if (cut && !last) {
        ctx->response_check = SCEP_RESPONSE_NOT_CERTREP + 1;
        ngx_http_scep_outcome(r, ctx);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: the answer of %V to a PKIOperation broke off,"
                      " refused with 502",
                      ctx->peer ? &ctx->peer->name
                                : r->upstream->peer.name);

        return ngx_http_scep_response_refuse(r, ctx);
    }

    if (!last) {
        return NGX_OK;
    }

    check = ngx_http_scep_response_check(r, ctx);

    ngx_http_scep_outcome(r, ctx);

    if (check != SCEP_RESPONSE_OK
        && ctx->conf->check_response == NGX_HTTP_SCEP_RESP_ON)
    {
        /* nothing of the answer reaches the device */
        return ngx_http_scep_response_refuse(r, ctx);
    }

    /* PENDING keeps the server for the CertPolls (scep_pending_zone) */

    ngx_http_scep_pending_update(r, ctx);

    return ngx_http_scep_response_pass(r, ctx, NULL, 1);
}


/*
 * Copies a buffer of the answer to the request's own, and marks it
 * consumed, so that the upstream can read on into it.  NGX_DECLINED
 * leaves it untouched: the answer is too large for a CertRep, or a part
 * of it is in a temporary file.
 */

static ngx_int_t
ngx_http_scep_response_keep(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_buf_t *b)
{
    u_char                      *p;
    size_t                       size, have, want;
    ngx_http_scep_answer_buf_t  *ab;

    ab = (ngx_http_scep_answer_buf_t *) ctx->answer;

    if (ab == NULL) {
        ab = ngx_pcalloc(r->pool, sizeof(ngx_http_scep_answer_buf_t));
        if (ab == NULL) {
            return NGX_ERROR;
        }

        ctx->answer = ab;
    }

    if (!ngx_buf_in_memory(b) && ngx_buf_size(b) != 0) {
        return NGX_DECLINED;
    }

    size = b->last - b->pos;

    if (size == 0) {
        return NGX_OK;
    }

    have = ab->pos - ab->start;

    if (have + size > NGX_HTTP_SCEP_MAX_ANSWER) {
        return NGX_DECLINED;
    }

    if ((size_t) (ab->end - ab->pos) < size) {
        want = ngx_max(2 * (size_t) (ab->end - ab->start), have + size);

        if (r->headers_out.content_length_n > 0
            && (size_t) r->headers_out.content_length_n > want)
        {
            want = r->headers_out.content_length_n;
        }

        want = ngx_min(want, NGX_HTTP_SCEP_MAX_ANSWER);

        p = ngx_pnalloc(r->pool, want);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (have) {
            ngx_memcpy(p, ab->start, have);
        }

        if (ab->start) {
            /* a large allocation of the pool, freed at once */
            (void) ngx_pfree(r->pool, ab->start);
        }

        ab->start = p;
        ab->pos = p + have;
        ab->end = p + want;
    }

    ab->pos = ngx_cpymem(ab->pos, b->pos, size);
    b->pos = b->last;

    return NGX_OK;
}


/*
 * Sends the header that waited, then the answer read so far and "rest",
 * the part of it not read, or the end of it ("last"): the answer goes on
 * unchanged.
 */

static ngx_int_t
ngx_http_scep_response_pass(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_chain_t *rest, ngx_uint_t last)
{
    ngx_int_t                    rc;
    ngx_buf_t                   *b;
    ngx_chain_t                  out;
    ngx_http_scep_answer_buf_t  *ab;

    ctx->response = NGX_HTTP_SCEP_ANSWER_DONE;

    if (ctx->response_check == 0) {
        /* too large or in a file: no CertRep */
        ctx->response_check = SCEP_RESPONSE_NOT_CERTREP + 1;

        ngx_http_scep_outcome(r, ctx);

        if (ctx->conf->check_response == NGX_HTTP_SCEP_RESP_ON) {
            return ngx_http_scep_response_refuse(r, ctx);
        }
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ab = (ngx_http_scep_answer_buf_t *) ctx->answer;

    if ((ab == NULL || ab->pos == ab->start) && (rest || !last)) {
        return rest ? ngx_http_next_body_filter(r, rest) : NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (ab && ab->pos != ab->start) {
        b->pos = ab->start;
        b->last = ab->pos;
        b->memory = 1;
    }

    b->last_buf = last;
    b->last_in_chain = last;

    out.buf = b;
    out.next = rest;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * The gateway's own 502 in place of the answer held, whose header was
 * not sent: "bad_response: ..." as the module's other rejections, and
 * nothing of the back end's, headers included
 */

static ngx_int_t
ngx_http_scep_response_refuse(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_str_t     token, text;
    ngx_buf_t    *b;
    ngx_uint_t    status;
    ngx_chain_t   out;

    ctx->response = NGX_HTTP_SCEP_ANSWER_REFUSED;
    ctx->reject = NGX_HTTP_SCEP_REJECT_BAD_RESPONSE;
    ctx->rejected = 1;

    ngx_http_scep_reject_token(ctx, &token);
    status = ngx_http_scep_reject_text(ctx, &text);

    b = ngx_create_temp_buf(r->pool, token.len + text.len + 3);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "%V: %V\n", &token, &text);
    b->last_buf = 1;
    b->last_in_chain = 1;

    /* the back end's headers go, as nginx's own error pages drop them */

    ngx_memzero(&r->headers_out.status,
                sizeof(ngx_http_headers_out_t)
                - offsetof(ngx_http_headers_out_t, status));

    r->headers_out.headers.part.nelts = 0;
    r->headers_out.headers.part.next = NULL;
    r->headers_out.headers.last = &r->headers_out.headers.part;

    r->headers_out.trailers.part.nelts = 0;
    r->headers_out.trailers.part.next = NULL;
    r->headers_out.trailers.last = &r->headers_out.trailers.part;

    r->headers_out.last_modified_time = -1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/* reads and checks the answer held, and logs a failed check */

static scep_response_t
ngx_http_scep_response_check(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    size_t                       len;
    u_char                      *der;
    ngx_str_t                    key, tid, peer;
    ngx_uint_t                   level;
    scep_certrep_t              *rep;
    scep_response_t              check;
    ngx_http_scep_answer_buf_t  *ab;
    ngx_http_scep_main_conf_t   *smcf;

    ab = (ngx_http_scep_answer_buf_t *) ctx->answer;

    der = ab ? ab->start : NULL;
    len = ab ? (size_t) (ab->pos - ab->start) : 0;

    rep = ngx_pcalloc(r->pool, sizeof(scep_certrep_t));
    if (rep == NULL) {
        check = SCEP_RESPONSE_INTERNAL;
        goto done;
    }

    check = (len > 0) ? scep_certrep_parse(der, len, rep)
                      : SCEP_RESPONSE_NOT_CERTREP;

    if (check != SCEP_RESPONSE_OK) {
        goto done;
    }

    ctx->certrep = rep;

    if (ctx->checked) {
        check = scep_certrep_match(rep, &ctx->result);

        if (check != SCEP_RESPONSE_OK) {
            goto done;
        }
    }

    /*
     * The signature, with a key of the back end's last GetCACert answer:
     * where the probes have none, the check stops here.
     */

    switch (ngx_http_scep_signer_key(r, ctx, &key)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        check = SCEP_RESPONSE_UNKNOWN_SIGNER;
        goto done;

    case NGX_DONE:
        goto done;

    default:
        check = SCEP_RESPONSE_INTERNAL;
        goto done;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    check = scep_certrep_verify(der, len, key.data, key.len, smcf->crypto);

done:

    ctx->response_check = check + 1;

    if (check == SCEP_RESPONSE_OK) {
        return check;
    }

    tid.data = (u_char *) ctx->result.transaction_id;
    tid.len = ctx->result.transaction_id_len;

    if (ctx->peer) {
        peer = ctx->peer->name;

    } else if (r->upstream && r->upstream->peer.name) {
        peer = *r->upstream->peer.name;

    } else {
        ngx_str_set(&peer, "?");
    }

    level = (check == SCEP_RESPONSE_INTERNAL) ? NGX_LOG_ALERT : NGX_LOG_WARN;

    ngx_log_error(level, r->connection->log, 0,
                  "scep: the answer of %V to transactionID \"%V\" failed"
                  " its check: %s%s", &peer, &tid, scep_response_token(check),
                  ctx->conf->check_response == NGX_HTTP_SCEP_RESP_ON
                  ? ", refused with 502" : ", passed on (scep_check_response"
                                           " log)");

    return check;
}


/*
 * The public key of the certificate that signed the CertRep, found by
 * the SignerInfo's name among the certificates of the back end's last
 * GetCACert answer.  NGX_DONE: nothing known to check with (no probes,
 * or none passed yet); NGX_DECLINED: none of them signed it.
 */

static ngx_int_t
ngx_http_scep_signer_key(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_int_t                  rc;
    ngx_slab_pool_t           *shpool;
    scep_certrep_t            *rep;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;
    u_char                     id[SCEP_CERT_ID_LEN];

    if (ctx->peer == NULL || ctx->peer->sh == NULL) {
        return NGX_DONE;
    }

    rep = ctx->certrep;
    sp = ctx->peer->sh;
    hc = ctx->peer->upstream;
    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;

    if (!rep->has_signer_id) {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_http_scep_find_key(sp, rep, rep->signer_id, 0, r->pool, key);
    ngx_shmtx_unlock(&shpool->mutex);

    if (rc != NGX_DECLINED
        || rep->signer_kind != SCEP_RECIPIENT_ISSUER_SERIAL)
    {
        return rc;
    }

    /* an issuer encoded otherwise than in the certificate */

    if (scep_cert_id(rep->signer_issuer, rep->signer_issuer_len,
                     rep->signer_serial, rep->signer_serial_len, 1, id)
        != 0)
    {
        return NGX_DECLINED;
    }

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_http_scep_find_key(sp, rep, id, 1, r->pool, key);
    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* the zone is locked */

static ngx_int_t
ngx_http_scep_find_key(ngx_http_scep_sh_peer_t *sp, scep_certrep_t *rep,
    u_char *id, ngx_uint_t canonical, ngx_pool_t *pool, ngx_str_t *key)
{
    u_char                  *rid_id;
    ngx_uint_t               i;
    ngx_http_scep_sh_rid_t  *rid;

    if (sp->nrids == 0 || sp->keys == NULL) {
        return NGX_DONE;
    }

    for (i = 0; i < sp->nrids; i++) {
        rid = &sp->rids[i];

        if (rep->signer_kind == SCEP_RECIPIENT_KEY_ID) {
            if (!rid->has_key_id) {
                continue;
            }

            rid_id = rid->key_id;

        } else {
            rid_id = canonical ? rid->id_canonical : rid->id;
        }

        if (ngx_memcmp(rid_id, id, SCEP_CERT_ID_LEN) != 0
            || rid->key_len == 0)
        {
            continue;
        }

        key->data = ngx_pnalloc(pool, rid->key_len);
        if (key->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(key->data, sp->keys + rid->key_off, rid->key_len);
        key->len = rid->key_len;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* the back end that answered, when its upstream has scep_health_check */

static ngx_http_scep_peer_t *
ngx_http_scep_answering_peer(ngx_http_request_t *r)
{
    ngx_http_upstream_t           *u;
    ngx_http_scep_srv_conf_t      *sscf;
    ngx_http_upstream_srv_conf_t  *uscf;

    u = r->upstream;
    uscf = u->upstream;

    if (uscf == NULL || uscf->srv_conf == NULL || u->peer.name == NULL
        || u->peer.sockaddr == NULL)
    {
        return NULL;
    }

    sscf = ngx_http_conf_upstream_srv_conf(uscf, ngx_http_scep_module);

    if (sscf == NULL || sscf->health == NULL) {
        return NULL;
    }

    return ngx_http_scep_find_peer(sscf->health, u->peer.name,
                                   u->peer.sockaddr, u->peer.socklen);
}


/*
 * Counts what the back end answered, per back end, and takes out one
 * that refuses everything while another issues (refusals=)
 */

void
ngx_http_scep_outcome(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    time_t                     now, minute;
    ngx_int_t                  status, info;
    ngx_uint_t                 slot, issued, refused;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_outcomes_t  *o;

    if (ctx->peer == NULL || ctx->peer->sh == NULL) {
        return;
    }

    o = &ctx->peer->sh->outcomes;

    if (ctx->response_check > 1) {
        (void) ngx_atomic_fetch_add(&o->checks[ctx->response_check - 1], 1);
    }

    /*
     * only a CertRep that passed its check tells an outcome: one that
     * answers another request, or that its back end did not sign, is
     * counted above and nowhere else
     */

    if (ctx->certrep == NULL || ctx->response_check != SCEP_RESPONSE_OK + 1) {
        return;
    }

    status = ctx->certrep->pki_status;
    info = ctx->certrep->fail_info;

    issued = 0;
    refused = 0;

    switch (status) {

    case SCEP_PKI_SUCCESS:
        if (ctx->result.message_type == 19
            || ctx->result.message_type == 17
            || ctx->result.message_type == 20)
        {
            (void) ngx_atomic_fetch_add(&o->issued, 1);
            issued = 1;

        } else {
            (void) ngx_atomic_fetch_add(&o->success, 1);
        }

        break;

    case SCEP_PKI_FAILURE:
        (void) ngx_atomic_fetch_add(&o->refused[(info >= 0
                                                 && info < SCEP_FAIL_N)
                                                ? info : SCEP_FAIL_N], 1);
        refused = 1;
        break;

    case SCEP_PKI_PENDING:
        (void) ngx_atomic_fetch_add(&o->pending, 1);
        break;
    }

    now = ngx_time();
    minute = now / 60;
    slot = minute % NGX_HTTP_SCEP_RECENT;

    shpool = (ngx_slab_pool_t *) ctx->peer->upstream->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (o->minute[slot] != minute) {
        o->minute[slot] = minute;
        o->recent_issued[slot] = 0;
        o->recent_refused[slot] = 0;
    }

    o->recent_issued[slot] += issued;
    o->recent_refused[slot] += refused;

    if (issued) {
        ctx->peer->sh->last_issued = now;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_scep_refusals(r, ctx);
}


/*
 * An NDES whose policy module or connector broke answers every probe
 * well and refuses every enrollment.  After "refusals" FAILUREs in a
 * row, while another healthy back end of the upstream issued since the
 * first of them, it goes down for refusal_hold.  A device's own bad
 * challenge is refused everywhere, and never trips this alone.
 */

static void
ngx_http_scep_refusals(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    time_t                     now;
    uint32_t                   crc;
    ngx_int_t                  status, fail_info;
    ngx_str_t                 *other;
    const char                *info;
    ngx_uint_t                 i, count, type;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_peer_t      *q, *peer;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;

    peer = ctx->peer;
    hc = peer->upstream;
    sp = peer->sh;

    type = ctx->result.message_type;

    /* enrollments only: GetCert and GetCRL are refused for other causes */

    if (hc->refusals == 0 || (type != 19 && type != 17 && type != 20)) {
        return;
    }

    status = ctx->certrep->pki_status;
    fail_info = ctx->certrep->fail_info;

    crc = ngx_crc32_short((u_char *) ctx->result.transaction_id,
                          ctx->result.transaction_id_len);

    other = NULL;
    info = NULL;
    count = 0;

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (status != SCEP_PKI_FAILURE) {
        sp->refusals = 0;
        goto done;
    }

    /*
     * a device that retries its request (the same transactionID, refused
     * for its own challenge, say) counts once: N refusals in a row are
     * those of N transactionIDs, at least of the last 8
     */

    for (i = 0; i < ngx_min(sp->refusals, 8); i++) {
        if (sp->refused_tids[i] == crc) {
            goto done;
        }
    }

    if (sp->refusals == 0) {
        sp->refusals_since = ngx_time();
    }

    sp->refused_tids[sp->refusals % 8] = crc;
    sp->refusals++;
    sp->refusal_info = fail_info;

    if (sp->refusals < hc->refusals
        || sp->state != NGX_HTTP_SCEP_PEER_UP)
    {
        goto done;
    }

    /*
     * Requests that every server refuses can be sent so that one server
     * gets them all (hash on a transactionID of the sender's choice): the
     * other server must refuse less than it issues, and one server of an
     * upstream at a time is out for its refusals.
     */

    now = ngx_time();
    q = hc->peers.elts;

    for (i = 0; i < hc->peers.nelts; i++) {
        if (&q[i] == peer || q[i].sh == NULL) {
            continue;
        }

        if (q[i].sh->refused_until > now) {
            other = NULL;
            break;
        }

        if (other == NULL
            && q[i].sh->state == NGX_HTTP_SCEP_PEER_UP
            && q[i].sh->last_issued >= sp->refusals_since
            && ngx_http_scep_recent(&q[i].sh->outcomes, now, 1)
               > ngx_http_scep_recent(&q[i].sh->outcomes, now, 0))
        {
            other = &q[i].name;
        }
    }

    if (other == NULL) {
        goto done;
    }

    info = scep_fail_info_name(fail_info);
    count = sp->refusals;

    (void) ngx_snprintf(sp->reason, sizeof(sp->reason) - 1,
                        "%ui refusals in a row (%s) while %V issued%Z",
                        count, info ? info : "no failInfo", other);

    sp->state = NGX_HTTP_SCEP_PEER_DOWN;
    sp->last_change = now;
    sp->refused_until = now + hc->refusal_hold;
    sp->refusals = 0;
    sp->passes = 0;

done:

    ngx_shmtx_unlock(&shpool->mutex);

    if (other) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: %V in upstream \"%V\" is down for %T s: %ui"
                      " refusals in a row (%s) while %V issued",
                      &peer->name, &hc->uscf->host, hc->refusal_hold, count,
                      info ? info : "no failInfo", other);
    }
}


/* issued (or refused) in the last NGX_HTTP_SCEP_RECENT minutes */

ngx_uint_t
ngx_http_scep_recent(ngx_http_scep_outcomes_t *o, time_t now,
    ngx_uint_t issued)
{
    time_t      since;
    ngx_uint_t  i, n;

    since = now / 60 - NGX_HTTP_SCEP_RECENT;
    n = 0;

    for (i = 0; i < NGX_HTTP_SCEP_RECENT; i++) {
        if (o->minute[i] > since) {
            n += issued ? o->recent_issued[i] : o->recent_refused[i];
        }
    }

    return n;
}


ngx_int_t
ngx_http_scep_response_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char           *s;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r);

    s = NULL;

    if (ctx == NULL) {
        goto none;
    }

    switch (data) {

    case NGX_HTTP_SCEP_VAR_PKI_STATUS:
        if (ctx->certrep) {
            s = scep_pki_status_name(ctx->certrep->pki_status);
        }
        break;

    case NGX_HTTP_SCEP_VAR_FAIL_INFO:
        if (ctx->certrep
            && ctx->certrep->pki_status == SCEP_PKI_FAILURE)
        {
            s = scep_fail_info_name(ctx->certrep->fail_info);
        }
        break;

    default: /* NGX_HTTP_SCEP_VAR_RESPONSE_CHECK */
        if (ctx->response_check) {
            s = scep_response_token(ctx->response_check - 1);
        }
    }

    if (s == NULL) {
        goto none;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;

none:

    v->not_found = 1;

    return NGX_OK;
}
