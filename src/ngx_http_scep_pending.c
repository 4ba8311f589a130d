
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Pending requests stay on the server that holds them
 * (scep_pending_zone).  A CertRep of PENDING means that this NDES server
 * keeps the request, and a CertPoll for it succeeds only there; "hash
 * $scep_transaction_id consistent" picks another server as soon as the
 * set of healthy ones changes.  So the gateway remembers, for every
 * PENDING answer, which server gave it, and sends the CertPolls of that
 * request there whatever the balancer would choose; while that server is
 * down, a CertPoll is answered 503 pending_server_down with Retry-After
 * rather than sent to a server that cannot know it.  A SUCCESS or a
 * FAILURE ends the request, and the record with it.
 *
 * A record is keyed by the transactionID and the SHA-256 of the signer's
 * public key: a CertPoll is signed with the key of the request it polls,
 * so that nobody else can move a device's request, nor learn where it is.
 * Its value is the upstream's name and the server's address, which a
 * reload finds again; the records live in a zone of records
 * (ngx_http_scep_records.c), the oldest forgotten first when it is full.
 *
 * Pinning needs the balancer wrapper of scep_health_check
 * (ngx_http_scep_upstream.c), which knows the servers and their health.
 */


#include "ngx_http_scep_module.h"


/* transactionID and the signer's key hash */
#define NGX_HTTP_SCEP_PENDING_KEY_MAX                                         \
    (SCEP_TRANSACTION_ID_MAX + SCEP_KEY_HASH_LEN)

/* the timeout's default and the longest one the msec clock keeps */
#define NGX_HTTP_SCEP_PENDING_TIMEOUT  86400
#define NGX_HTTP_SCEP_PENDING_MAX      (7 * 86400)

/* messageType (RFC 8894 3.2.1.2) of the enrolments and their polls */
#define NGX_HTTP_SCEP_RENEWALREQ       17
#define NGX_HTTP_SCEP_PKCSREQ          19
#define NGX_HTTP_SCEP_CERTPOLL         20

/* an upstream's name and an address are far shorter */
#define NGX_HTTP_SCEP_PENDING_VALUE_MAX  1024


static size_t ngx_http_scep_pending_key(ngx_http_scep_ctx_t *ctx,
    u_char *key, uint32_t *hash);
static ngx_http_scep_peer_t *ngx_http_scep_pending_peer(
    ngx_http_scep_main_conf_t *smcf, ngx_http_scep_record_t *rn);
static void ngx_http_scep_pending_forget(ngx_http_request_t *r,
    ngx_http_scep_main_conf_t *smcf, ngx_http_scep_ctx_t *ctx);
static void ngx_http_scep_pending_keep(ngx_http_request_t *r,
    ngx_http_scep_main_conf_t *smcf, ngx_http_scep_ctx_t *ctx);


static ngx_str_t  ngx_http_scep_pending_zone_name =
    ngx_string("ngx_http_scep_pending");


char *
ngx_http_scep_pending_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_main_conf_t *smcf = conf;

    time_t           timeout;
    ngx_str_t       *value, s;
    ngx_uint_t       i;
    ngx_shm_zone_t  *shm_zone;

    if (smcf->pending_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    timeout = NGX_HTTP_SCEP_PENDING_TIMEOUT;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            timeout = ngx_parse_time(&s, 1);

            if (timeout == (time_t) NGX_ERROR || timeout == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in"
                                   " \"scep_pending_zone\": give a time"
                                   " such as \"timeout=1d\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (timeout > NGX_HTTP_SCEP_PENDING_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" of \"scep_pending_zone\" is too"
                                   " long: make it at most 7d", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_http_scep_records_zone(cf, cmd, &value[1],
                                          &ngx_http_scep_pending_zone_name,
                                          smcf);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    smcf->pending_size = shm_zone->shm.size;
    smcf->pending_timeout = timeout;
    smcf->pending_zone = shm_zone;

    return NGX_CONF_OK;
}


/*
 * A zone without any scep_health_check cannot pin anything: the balancer
 * wrapper that pins is theirs.  Said, not refused: an include may bring
 * the upstreams later in an admin's plan.
 */

ngx_int_t
ngx_http_scep_pending_init(ngx_conf_t *cf)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (smcf->pending_zone && smcf->upstreams.nelts == 0) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"scep_pending_zone\" keeps pending requests only"
                      " for upstreams with \"scep_health_check\": add it"
                      " to the upstreams of the NDES servers");
    }

    return NGX_OK;
}


/* the record's key: the transactionID and the signer's key hash */

static size_t
ngx_http_scep_pending_key(ngx_http_scep_ctx_t *ctx, u_char *key,
    uint32_t *hash)
{
    size_t  len;

    len = ctx->result.transaction_id_len;

    ngx_memcpy(key, ctx->result.transaction_id, len);
    ngx_memcpy(key + len, ctx->result.signer_key_hash, SCEP_KEY_HASH_LEN);

    len += SCEP_KEY_HASH_LEN;

    *hash = ngx_crc32_short(key, len);

    return len;
}


/* a request the records can be about: a verified PKIOperation */

#define ngx_http_scep_pending_on(smcf, ctx)                                  \
    ((smcf)->pending_zone != NULL                                            \
     && (ctx)->checked                                                       \
     && (ctx)->op == NGX_HTTP_SCEP_OP_PKIOPERATION                           \
     && (ctx)->result.transaction_id_len != 0                                \
     && (ctx)->result.signer_key_hashed)


/*
 * The precontent phase, once a message passed its checks: a CertPoll of
 * a request that a server keeps is pinned to that server (ctx->pinned,
 * which the balancer honours).  NGX_BUSY with the rejection
 * pending_server_down kept when the server is down, else NGX_OK.
 */

ngx_int_t
ngx_http_scep_pending_route(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                      key[NGX_HTTP_SCEP_PENDING_KEY_MAX];
    size_t                      len;
    uint32_t                    hash;
    ngx_str_t                   tid;
    ngx_uint_t                  gone;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_record_t     *rn;
    ngx_http_scep_records_t    *rs;
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (!ngx_http_scep_pending_on(smcf, ctx)
        || ctx->result.message_type != NGX_HTTP_SCEP_CERTPOLL)
    {
        return NGX_OK;
    }

    len = ngx_http_scep_pending_key(ctx, key, &hash);

    shpool = (ngx_slab_pool_t *) smcf->pending_zone->shm.addr;
    rs = shpool->data;
    peer = NULL;
    gone = 0;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_records_find(rs, hash, key, len);

    if (rn && (ngx_msec_int_t) (rn->expires - ngx_current_msec) <= 0) {
        ngx_http_scep_records_remove(shpool, rs, rn);
        rn = NULL;
    }

    if (rn) {
        peer = ngx_http_scep_pending_peer(smcf, rn);

        if (peer == NULL) {
            /* its server left the configuration: nowhere to pin it */
            ngx_http_scep_records_remove(shpool, rs, rn);
            gone = 1;

        } else {
            ngx_http_scep_records_touch(rs, rn);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    tid.len = ctx->result.transaction_id_len;
    tid.data = (u_char *) ctx->result.transaction_id;

    if (gone) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: the server that holds the pending request of"
                      " transactionID \"%V\" is no longer configured: its"
                      " CertPoll goes where the balancer sends it", &tid);
    }

    if (peer == NULL) {
        return NGX_OK;
    }

    ctx->pinned = peer;

    if (!ngx_http_scep_peer_healthy(peer)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "scep: %V, the server that holds the pending request"
                      " of transactionID \"%V\", is down",
                      &peer->name, &tid);

        if (ctx->reject == NGX_HTTP_SCEP_REJECT_NONE) {
            ctx->reject = NGX_HTTP_SCEP_REJECT_PENDING_DOWN;
        }

        return NGX_BUSY;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep pending: CertPoll \"%V\" pinned to %V",
                   &tid, &peer->name);

    return NGX_OK;
}


/*
 * The server of a record in this configuration: its value is the
 * upstream's name, a space and the server's address.  Under the mutex.
 */

static ngx_http_scep_peer_t *
ngx_http_scep_pending_peer(ngx_http_scep_main_conf_t *smcf,
    ngx_http_scep_record_t *rn)
{
    u_char                     *v, *sp, *last;
    ngx_str_t                  *host;
    ngx_uint_t                  i, j;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_upstream_t  **hcp;

    v = rn->data + rn->len;
    last = v + rn->value_len;

    sp = ngx_strlchr(v, last, ' ');

    if (sp == NULL) {
        return NULL;
    }

    hcp = smcf->upstreams.elts;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        host = &hcp[i]->uscf->host;

        if (host->len != (size_t) (sp - v)
            || ngx_memcmp(host->data, v, host->len) != 0)
        {
            continue;
        }

        peer = hcp[i]->peers.elts;

        for (j = 0; j < hcp[i]->peers.nelts; j++) {
            if (peer[j].name.len == (size_t) (last - sp - 1)
                && ngx_memcmp(peer[j].name.data, sp + 1, peer[j].name.len)
                   == 0)
            {
                return &peer[j];
            }
        }
    }

    return NULL;
}


/*
 * A back end's CertRep that matched its request
 * (ngx_http_scep_response.c): PENDING keeps the server that gave it,
 * SUCCESS and FAILURE end the request and forget it.
 */

void
ngx_http_scep_pending_update(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (ctx->certrep == NULL || !ngx_http_scep_pending_on(smcf, ctx)) {
        return;
    }

    /*
     * Only an answer to this request: its transactionID and nonce
     * matched; a signature that did not verify is the server's answer
     * still, passed on under "scep_check_response log"
     */

    switch (ctx->response_check) {
    case SCEP_RESPONSE_OK + 1:
    case SCEP_RESPONSE_UNKNOWN_SIGNER + 1:
    case SCEP_RESPONSE_BAD_SIGNATURE + 1:
        break;
    default:
        return;
    }

    /* only enrolments are held for approval */

    switch (ctx->result.message_type) {
    case NGX_HTTP_SCEP_PKCSREQ:
    case NGX_HTTP_SCEP_RENEWALREQ:
    case NGX_HTTP_SCEP_CERTPOLL:
        break;
    default:
        return;
    }

    switch (ctx->certrep->pki_status) {

    case SCEP_PKI_PENDING:
        ngx_http_scep_pending_keep(r, smcf, ctx);
        break;

    case SCEP_PKI_SUCCESS:
    case SCEP_PKI_FAILURE:
        ngx_http_scep_pending_forget(r, smcf, ctx);
        break;

    default:
        break;
    }
}


static void
ngx_http_scep_pending_keep(ngx_http_request_t *r,
    ngx_http_scep_main_conf_t *smcf, ngx_http_scep_ctx_t *ctx)
{
    u_char                      key[NGX_HTTP_SCEP_PENDING_KEY_MAX];
    u_char                     *v;
    size_t                      len, vlen;
    uint32_t                    hash;
    ngx_str_t                  *host, tid;
    ngx_uint_t                  evicted, log;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_record_t     *rn;
    ngx_http_scep_records_t    *rs;

    peer = ctx->peer;

    tid.len = ctx->result.transaction_id_len;
    tid.data = (u_char *) ctx->result.transaction_id;

    if (peer == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "scep: PENDING for transactionID \"%V\" from an"
                      " upstream without \"scep_health_check\": its"
                      " CertPolls go where the balancer sends them", &tid);
        return;
    }

    host = &peer->upstream->uscf->host;
    vlen = host->len + 1 + peer->name.len;

    if (vlen > NGX_HTTP_SCEP_PENDING_VALUE_MAX) {
        return;
    }

    len = ngx_http_scep_pending_key(ctx, key, &hash);

    shpool = (ngx_slab_pool_t *) smcf->pending_zone->shm.addr;
    rs = shpool->data;
    evicted = 0;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_records_find(rs, hash, key, len);

    if (rn && rn->value_len != vlen) {
        /* another server now holds it: a value of another length */
        ngx_http_scep_records_remove(shpool, rs, rn);
        rn = NULL;
    }

    if (rn) {
        ngx_http_scep_records_touch(rs, rn);

    } else {
        rn = ngx_http_scep_records_add(shpool, rs, hash, key, len, vlen,
                                       &evicted);
    }

    if (rn) {
        rn->expires = ngx_current_msec
                      + (ngx_msec_t) smcf->pending_timeout * 1000;

        v = ngx_cpymem(rn->data + rn->len, host->data, host->len);
        *v++ = ' ';
        ngx_memcpy(v, peer->name.data, peer->name.len);
    }

    log = ngx_http_scep_records_log_full(rs, evicted);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_scep_records_evicted(r, evicted, log,
                          offsetof(ngx_http_scep_counters_t, pending_evicted),
                          "scep_pending_zone", smcf->pending_size,
                          "the oldest pending requests are forgotten, and"
                          " their CertPolls may reach a server that does not"
                          " hold them");

    if (rn == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: no room in scep_pending_zone for the pending"
                      " request of transactionID \"%V\"", &tid);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep pending: \"%V\" kept on %V", &tid, &peer->name);
}


static void
ngx_http_scep_pending_forget(ngx_http_request_t *r,
    ngx_http_scep_main_conf_t *smcf, ngx_http_scep_ctx_t *ctx)
{
    u_char    key[NGX_HTTP_SCEP_PENDING_KEY_MAX];
    size_t    len;
    uint32_t  hash;

    len = ngx_http_scep_pending_key(ctx, key, &hash);

    ngx_http_scep_records_delete(smcf->pending_zone, hash, key, len);
}


ngx_uint_t
ngx_http_scep_pending_entries(ngx_http_scep_main_conf_t *smcf)
{
    return ngx_http_scep_records_entries(smcf->pending_zone);
}
