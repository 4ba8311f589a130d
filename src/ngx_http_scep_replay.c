
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The replay window (scep_replay_window, scep_replay_zone): a
 * PKIOperation whose (transactionID, senderNonce) pair was passed on
 * within the window, signed by the same key, is answered 400
 * replayed_message.  The pairs live in a shared zone of records
 * (ngx_http_scep_records.c); when the zone is full, the oldest pairs are
 * forgotten first, counted and logged at most once a minute, and the
 * request passes.
 *
 * A pair is kept only once the message's signature has verified, in the
 * precontent phase, so that a forged message cannot block a device's
 * real one.  It is bound to the signer's public key (the SHA-256 that
 * the checks make of it): a PKCSReq is signed with a key its sender
 * makes up, so anyone who learnt a device's pair (from a log of request
 * lines, say) could otherwise sign it first with a key of their own and
 * have the device's real message refused.  And a pair is forgotten again
 * when the request reached no back end (none healthy, connect errors and
 * timeouts), so that a device may send the same message again after such
 * a 502, 503 or 504.
 */


#include "ngx_http_scep_module.h"


/* transactionID, senderNonce and the signer's key hash */
#define NGX_HTTP_SCEP_REPLAY_KEY_MAX                                          \
    (SCEP_TRANSACTION_ID_MAX + 16 + SCEP_KEY_HASH_LEN)


static size_t ngx_http_scep_replay_key(ngx_http_scep_ctx_t *ctx,
    u_char *key, uint32_t *hash);


static ngx_str_t  ngx_http_scep_replay_zone_name =
    ngx_string("ngx_http_scep_replay");


char *
ngx_http_scep_replay_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_main_conf_t *smcf = conf;

    ngx_str_t       *value;
    ngx_shm_zone_t  *shm_zone;

    if (smcf->replay_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    shm_zone = ngx_http_scep_records_zone(cf, cmd, &value[1],
                                          &ngx_http_scep_replay_zone_name,
                                          smcf);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    smcf->replay_size = shm_zone->shm.size;
    smcf->replay_zone = shm_zone;

    return NGX_CONF_OK;
}


char *
ngx_http_scep_replay_window(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    ngx_str_t                  *value;
    ngx_msec_t                  ms;
    ngx_http_scep_main_conf_t  *smcf;

    if (slcf->replay_window != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        slcf->replay_window = 0;
        return NGX_CONF_OK;
    }

    ms = ngx_parse_time(&value[1], 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"scep_replay_window\":"
                           " give a time such as \"10m\", or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ms > 7 * 86400 * 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scep_replay_window\" of \"%V\" is too long:"
                           " make it at most 7d", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->replay_window = ms;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (smcf->replay_file == NULL) {
        smcf->replay_file = cf->conf_file->file.name.data;
        smcf->replay_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_scep_replay_init(ngx_conf_t *cf)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (smcf->replay_file && smcf->replay_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep_replay_window\" in %s:%ui needs a zone to"
                      " keep the pairs in: add \"scep_replay_zone 1m;\""
                      " to the http block", smcf->replay_file,
                      smcf->replay_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The pair as bytes: transactionID, the 16-byte senderNonce, and the
 * SHA-256 of the signer's public key, there once the signature verified.
 */

static size_t
ngx_http_scep_replay_key(ngx_http_scep_ctx_t *ctx, u_char *key,
    uint32_t *hash)
{
    size_t  len;

    len = ctx->result.transaction_id_len;

    ngx_memcpy(key, ctx->result.transaction_id, len);
    ngx_memcpy(key + len, ctx->result.sender_nonce,
               sizeof(ctx->result.sender_nonce));

    len += sizeof(ctx->result.sender_nonce);

    ngx_memcpy(key + len, ctx->result.signer_key_hash, SCEP_KEY_HASH_LEN);

    len += SCEP_KEY_HASH_LEN;

    *hash = ngx_crc32_short(key, len);

    return len;
}


/*
 * The precontent phase, once the signature has verified: NGX_BUSY for a
 * pair passed on within the window with the same signer's key, else
 * NGX_OK (the pair is kept).
 */

ngx_int_t
ngx_http_scep_replay_check(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                      key[NGX_HTTP_SCEP_REPLAY_KEY_MAX];
    size_t                      len;
    uint32_t                    hash;
    ngx_msec_t                  now;
    ngx_uint_t                  evicted, log;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_record_t     *rn;
    ngx_http_scep_records_t    *rs;
    ngx_http_scep_loc_conf_t   *slcf;
    ngx_http_scep_main_conf_t  *smcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);
    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (slcf->replay_window == 0 || smcf->replay_zone == NULL
        || ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION
        || ctx->result.transaction_id_len == 0)
    {
        return NGX_OK;
    }

    len = ngx_http_scep_replay_key(ctx, key, &hash);

    shpool = (ngx_slab_pool_t *) smcf->replay_zone->shm.addr;
    rs = shpool->data;
    now = ngx_current_msec;
    evicted = 0;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_records_find(rs, hash, key, len);

    if (rn && (ngx_msec_int_t) (rn->expires - now) > 0) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_BUSY;
    }

    if (rn) {
        /* seen before the window: a new window from now */
        ngx_http_scep_records_touch(rs, rn);

    } else {
        /* full: the oldest pairs make room, the request is never refused */
        rn = ngx_http_scep_records_add(shpool, rs, hash, key, len, 0,
                                       &evicted);
    }

    if (rn) {
        rn->expires = now + slcf->replay_window;
        ctx->replay_kept = 1;
    }

    log = ngx_http_scep_records_log_full(rs, evicted);

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_scep_records_evicted(r, evicted, log,
                           offsetof(ngx_http_scep_counters_t, replay_evicted),
                           "scep_replay_zone", smcf->replay_size,
                           "the oldest pairs are forgotten before their"
                           " window ends");

    return NGX_OK;
}


/*
 * The log phase: a pair kept for a request that reached no back end
 * (none healthy, connect errors and timeouts) is forgotten, so that the
 * device may send the same message again.  Once a back end took the
 * connection, it may have the message, whatever became of the answer.
 */

void
ngx_http_scep_replay_log(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                      key[NGX_HTTP_SCEP_REPLAY_KEY_MAX];
    size_t                      len;
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_http_upstream_state_t  *state;
    ngx_http_scep_main_conf_t  *smcf;

    if (!ctx->replay_kept) {
        return;
    }

    if (r->upstream_states) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer && state[i].connect_time != (ngx_msec_t) -1) {
                return;
            }
        }
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    len = ngx_http_scep_replay_key(ctx, key, &hash);

    ngx_http_scep_records_delete(smcf->replay_zone, hash, key, len);

    ctx->replay_kept = 0;
}


ngx_uint_t
ngx_http_scep_replay_entries(ngx_http_scep_main_conf_t *smcf)
{
    return ngx_http_scep_records_entries(smcf->replay_zone);
}
