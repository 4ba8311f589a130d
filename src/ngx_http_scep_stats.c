
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Counting: every request of a "scep on" location is counted once, in
 * the log phase, in the shared zone's atomic counters, and so are the
 * answers of each back end under health checks.
 */


#include "ngx_http_scep_module.h"


static void ngx_http_scep_count_upstream(ngx_http_request_t *r);
static ngx_uint_t ngx_http_scep_type_index(int message_type);


static ngx_str_t  ngx_http_scep_limit_req_status =
    ngx_string("limit_req_status");


ngx_int_t
ngx_http_scep_stats_init(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_hash_key_t             *key;
    ngx_http_scep_main_conf_t  *smcf;
    ngx_http_core_main_conf_t  *cmcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    smcf->limit_req_status = NGX_ERROR;

    if (smcf->shm_zone == NULL) {
        return NGX_OK;
    }

    /* limit_req's verdict, where nginx is built with limit_req */

    key = cmcf->variables_keys->keys.elts;

    for (i = 0; i < cmcf->variables_keys->keys.nelts; i++) {
        if (key[i].key.len == ngx_http_scep_limit_req_status.len
            && ngx_strncmp(key[i].key.data,
                           ngx_http_scep_limit_req_status.data,
                           key[i].key.len)
               == 0)
        {
            smcf->limit_req_status = ngx_http_get_variable_index(cf,
                                              &ngx_http_scep_limit_req_status);
            if (smcf->limit_req_status == NGX_ERROR) {
                return NGX_ERROR;
            }

            break;
        }
    }

    return NGX_OK;
}


/* the log phase (ngx_http_scep_log_handler()) */

void
ngx_http_scep_stats_log(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t                  status, idx;
    ngx_http_scep_sh_t         *sh;
    ngx_http_variable_value_t  *vv;
    ngx_http_scep_counters_t   *cn;
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
    sh = ngx_http_scep_shared(smcf);

    if (sh == NULL) {
        return;
    }

    cn = &sh->counters;

    (void) ngx_atomic_fetch_add(&cn->total, 1);

    idx = (ctx->op == NGX_HTTP_SCEP_OP_UNKNOWN) ? NGX_HTTP_SCEP_NOPS - 1
                                                : ctx->op - 1;
    (void) ngx_atomic_fetch_add(&cn->ops[idx], 1);

    idx = ngx_http_scep_type_index(ctx->result.message_type);

    if (idx < NGX_HTTP_SCEP_NTYPES) {
        (void) ngx_atomic_fetch_add(&cn->types[idx], 1);
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status >= 100 && status < 600) {
        (void) ngx_atomic_fetch_add(&cn->responses[status / 100 - 1], 1);
    }

    if (ctx->rejected && ctx->browser) {
        /* not a rejection: counted apart */
        (void) ngx_atomic_fetch_add(&cn->browser_tests, 1);

    } else if (ctx->rejected) {
        idx = ngx_http_scep_reject_index(ctx);
        (void) ngx_atomic_fetch_add(&cn->rejects[idx], 1);
    }

    if (ctx->no_healthy) {
        (void) ngx_atomic_fetch_add(&cn->no_healthy, 1);
    }

    if (smcf->limit_req_status != NGX_ERROR) {
        vv = ngx_http_get_indexed_variable(r, smcf->limit_req_status);

        if (vv && !vv->not_found && vv->len == sizeof("REJECTED") - 1
            && ngx_strncmp(vv->data, "REJECTED", vv->len) == 0)
        {
            (void) ngx_atomic_fetch_add(&cn->rate_limited, 1);
        }
    }

    ngx_http_scep_count_upstream(r);
}


/* the answers of each back end this request was sent to */

static void
ngx_http_scep_count_upstream(ngx_http_request_t *r)
{
    ngx_uint_t                     i, status;
    ngx_http_scep_peer_t          *peer;
    ngx_http_scep_srv_conf_t      *sscf;
    ngx_http_upstream_state_t     *state;
    ngx_http_upstream_rr_peer_t   *rr;
    ngx_http_upstream_rr_peers_t  *peers;

    /* an upstream of proxy_pass's own, made for an address, has no confs */

    if (r->upstream == NULL || r->upstream->upstream == NULL
        || r->upstream->upstream->srv_conf == NULL
        || r->upstream_states == NULL)
    {
        return;
    }

    sscf = ngx_http_conf_upstream_srv_conf(r->upstream->upstream,
                                           ngx_http_scep_module);

    if (sscf == NULL || sscf->health == NULL) {
        return;
    }

    state = r->upstream_states->elts;

    for (i = 0; i < r->upstream_states->nelts; i++) {
        status = state[i].status;

        if (state[i].peer == NULL || status < 100 || status >= 600) {
            continue;
        }

        /*
         * by address: the state names the balancer's round-robin peer,
         * which with "zone" is a copy in shared memory
         */

        rr = ngx_http_scep_rr_peer(sscf->health, state[i].peer, &peers);

        if (rr == NULL) {
            continue;
        }

        peer = ngx_http_scep_find_peer(sscf->health, NULL, rr->sockaddr,
                                       rr->socklen);

        if (peer == NULL || peer->sh == NULL) {
            continue;
        }

        (void) ngx_atomic_fetch_add(&peer->sh->responses[status / 100 - 1],
                                    1);
    }
}


static ngx_uint_t
ngx_http_scep_type_index(int message_type)
{
    switch (message_type) {
    case 19:
        return 0;   /* PKCSReq */
    case 17:
        return 1;   /* RenewalReq */
    case 20:
        return 2;   /* CertPoll */
    case 21:
        return 3;   /* GetCert */
    case 22:
        return 4;   /* GetCRL */
    default:
        return NGX_HTTP_SCEP_NTYPES;
    }
}
