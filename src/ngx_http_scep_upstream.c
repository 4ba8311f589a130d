
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The scep_health_check directive, and the balancer wrapper that keeps
 * requests away from unhealthy back ends: it wraps whatever balancer
 * the upstream uses (round robin, hash, least_conn), as the keepalive
 * module does, without touching nginx's core.
 */


#include "ngx_http_scep_module.h"


typedef struct {
    ngx_http_scep_upstream_t         *health;
    ngx_http_request_t               *request;
    void                             *data;
    ngx_event_get_peer_pt             original_get_peer;
    ngx_event_free_peer_pt            original_free_peer;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt     original_set_session;
    ngx_event_save_peer_session_pt    original_save_session;
#endif
} ngx_http_scep_balancer_t;


static ngx_int_t ngx_http_scep_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_scep_init_ssl(ngx_conf_t *cf,
    ngx_http_scep_upstream_t *hc);
#endif
#if (nginx_version >= 1027003 && NGX_HTTP_UPSTREAM_ZONE)
static ngx_int_t ngx_http_scep_refuse_resolve(ngx_conf_t *cf,
    ngx_http_scep_upstream_t *hc, ngx_http_upstream_srv_conf_t *us);
#endif
static ngx_int_t ngx_http_scep_add_peers(ngx_conf_t *cf,
    ngx_http_scep_upstream_t *hc, ngx_http_upstream_rr_peers_t *peers);
static ngx_int_t ngx_http_scep_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_scep_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_scep_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static ngx_http_scep_peer_t *ngx_http_scep_pinned(
    ngx_http_scep_balancer_t *bp);
static void ngx_http_scep_skip_peer(ngx_http_scep_balancer_t *bp,
    ngx_peer_connection_t *pc);
static void ngx_http_scep_close_cached(ngx_connection_t *c);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_scep_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_scep_save_session(ngx_peer_connection_t *pc,
    void *data);
#endif


char *
ngx_http_scep_health_check(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_srv_conf_t *sscf = conf;

    time_t                         warn;
    ngx_int_t                      n;
    ngx_str_t                     *value, s;
    ngx_msec_t                     ms;
    ngx_uint_t                     i;
    ngx_http_scep_upstream_t      *hc, **hcp;
    ngx_http_scep_main_conf_t     *smcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    if (sscf->health) {
        return "is duplicate";
    }

    hc = ngx_pcalloc(cf->pool, sizeof(ngx_http_scep_upstream_t));
    if (hc == NULL) {
        return NGX_CONF_ERROR;
    }

    hc->interval = 5000;
    hc->jitter = 0;
    hc->timeout = 2000;
    hc->fails = 2;
    hc->passes = 2;
    ngx_str_set(&hc->uri, "/certsrv/mscep/mscep.dll");
    ngx_str_set(&hc->ca_ident, "default");
    ngx_str_set(&hc->ca_ident_arg, "&message=default");
    hc->ra_expiry_warn = 30 * 86400;
    hc->refusal_hold = 60;
    hc->file = cf->conf_file->file.name.data;
    hc->line = cf->conf_file->line;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0
            || ngx_strncmp(value[i].data, "jitter=", 7) == 0
            || ngx_strncmp(value[i].data, "timeout=", 8) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR
                || (ms == 0 && value[i].data[0] != 'j'))
            {
                goto invalid;
            }

            switch (value[i].data[0]) {
            case 'i':
                hc->interval = ms;
                break;
            case 'j':
                hc->jitter = ms;
                break;
            default:
                hc->timeout = ms;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "fails=", 6) == 0
            || ngx_strncmp(value[i].data, "passes=", 7) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            n = ngx_atoi(s.data, s.len);

            if (n == NGX_ERROR || n == 0 || n > 100) {
                goto invalid;
            }

            if (value[i].data[0] == 'f') {
                hc->fails = n;

            } else {
                hc->passes = n;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "uri=", 4) == 0) {
            hc->uri.data = value[i].data + 4;
            hc->uri.len = value[i].len - 4;

            if (hc->uri.len == 0 || hc->uri.data[0] != '/'
                || ngx_strlchr(hc->uri.data, hc->uri.data + hc->uri.len, '?')
                || ngx_strlchr(hc->uri.data, hc->uri.data + hc->uri.len, ' '))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"uri\" of \"scep_health_check\" must be"
                                   " a path starting with \"/\", without a"
                                   " query or spaces: \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "refusals=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n == NGX_ERROR || n > 10000) {
                goto invalid;
            }

            hc->refusals = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "refusal_hold=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            warn = ngx_parse_time(&s, 1);

            if (warn == (time_t) NGX_ERROR || warn == 0) {
                goto invalid;
            }

            hc->refusal_hold = warn;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ra_expiry_warn=", 15) == 0) {
            s.data = value[i].data + 15;
            s.len = value[i].len - 15;

            warn = ngx_parse_time(&s, 1);

            if (warn == (time_t) NGX_ERROR) {
                goto invalid;
            }

            hc->ra_expiry_warn = warn;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ca_ident=", 9) == 0) {
            if (ngx_http_scep_ca_ident(cf, hc, &value[i]) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "intune") == 0) {
            if (hc->intune) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"intune\" of \"scep_health_check\""
                                   " is given twice");
                return NGX_CONF_ERROR;
            }

            hc->intune = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "intune=", 7) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"intune\" of \"scep_health_check\" is a"
                               " flag and takes no value: \"%V\"; write"
                               " \"intune\" to check as Intune does, or"
                               " leave it out", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (ngx_strcmp(value[i].data, "mandatory") == 0) {
            hc->mandatory = 1;
            continue;
        }

#if (NGX_HTTP_SSL)
        if (ngx_strcmp(value[i].data, "ssl") == 0) {
            hc->ssl = NGX_CONF_UNSET_PTR;
            continue;
        }

        if (ngx_strcmp(value[i].data, "ssl_verify=on") == 0) {
            hc->ssl_verify = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "ssl_verify=off") == 0) {
            hc->ssl_verify = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ssl_trusted_certificate=", 24) == 0) {
            hc->ssl_trusted.data = value[i].data + 24;
            hc->ssl_trusted.len = value[i].len - 24;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ssl_name=", 9) == 0) {
            hc->ssl_name.data = value[i].data + 9;
            hc->ssl_name.len = value[i].len - 9;
            continue;
        }
#endif

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

#if (NGX_HTTP_SSL)
    if (hc->ssl == NULL
        && (hc->ssl_verify || hc->ssl_trusted.len || hc->ssl_name.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ssl_verify\", \"ssl_trusted_certificate\" and"
                           " \"ssl_name\" of \"scep_health_check\" need"
                           " its \"ssl\" parameter");
        return NGX_CONF_ERROR;
    }

    if (hc->ssl_verify && hc->ssl_trusted.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"ssl_verify=on\" of \"scep_health_check\""
                           " needs \"ssl_trusted_certificate=\" with the CA"
                           " certificates that sign the back ends'"
                           " certificates");
        return NGX_CONF_ERROR;
    }

    if (hc->ssl && ngx_http_scep_init_ssl(cf, hc) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
#endif

    if (hc->timeout >= hc->interval) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"timeout\" of \"scep_health_check\" must be"
                           " shorter than its \"interval\"");
        return NGX_CONF_ERROR;
    }

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    hc->uscf = uscf;
    hc->original_init_upstream = uscf->peer.init_upstream
                                 ? uscf->peer.init_upstream
                                 : ngx_http_upstream_init_round_robin;

    uscf->peer.init_upstream = ngx_http_scep_init_upstream;

    sscf->health = hc;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    hcp = ngx_array_push(&smcf->upstreams);
    if (hcp == NULL) {
        return NGX_CONF_ERROR;
    }

    *hcp = hc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"scep_health_check\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_scep_init_ssl(ngx_conf_t *cf, ngx_http_scep_upstream_t *hc)
{
    ngx_pool_cleanup_t  *cln;

    hc->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (hc->ssl == NULL) {
        return NGX_ERROR;
    }

    hc->ssl->log = cf->log;

    if (ngx_ssl_create(hc->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(hc->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = hc->ssl;

    if (hc->ssl_trusted.len
        && ngx_ssl_trusted_certificate(cf, hc->ssl, &hc->ssl_trusted, 3)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}

#endif


/*
 * After the configuration is read: an upstream whose balancing method
 * ("hash", "least_conn", ...) came after scep_health_check has replaced
 * the wrapper, and would get no health checks.
 */

ngx_int_t
ngx_http_scep_health_postconf(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_http_scep_upstream_t  **hcp;
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (ngx_http_scep_shm_reload_single(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    hcp = smcf->upstreams.elts;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        if (!hcp[i]->initialized) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"scep_health_check\" in %s:%ui must come after"
                          " the load balancing method (\"hash\","
                          " \"least_conn\", \"random\") of upstream \"%V\"",
                          hcp[i]->file, hcp[i]->line, &hcp[i]->uscf->host);
            return NGX_ERROR;
        }
    }

    if (smcf->upstreams.nelts == 0 && !smcf->any) {
        return NGX_OK;
    }

    return ngx_http_scep_shm_init(cf, smcf);
}


static ngx_int_t
ngx_http_scep_init_upstream(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_scep_upstream_t      *hc;
    ngx_http_scep_srv_conf_t      *sscf;
    ngx_http_upstream_rr_peers_t  *peers;

    sscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_scep_module);
    hc = sscf->health;

#if (nginx_version >= 1027003 && NGX_HTTP_UPSTREAM_ZONE)
    if (ngx_http_scep_refuse_resolve(cf, hc, us) != NGX_OK) {
        return NGX_ERROR;
    }
#endif

    if (hc->original_init_upstream(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    hc->original_init_peer = us->peer.init;
    us->peer.init = ngx_http_scep_init_peer;

    if (ngx_array_init(&hc->peers, cf->pool, 4, sizeof(ngx_http_scep_peer_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* every balancer of nginx keeps round-robin peers in us->peer.data */

    for (peers = us->peer.data; peers; peers = peers->next) {
        if (ngx_http_scep_add_peers(cf, hc, peers) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    hc->initialized = 1;

    return NGX_OK;
}


#if (nginx_version >= 1027003 && NGX_HTTP_UPSTREAM_ZONE)

/*
 * A "server ... resolve" (nginx 1.27.3) gets its addresses from DNS at
 * run time, in peers the health checks do not know: refused rather than
 * left unchecked and always taken for healthy.
 */

static ngx_int_t
ngx_http_scep_refuse_resolve(ngx_conf_t *cf, ngx_http_scep_upstream_t *hc,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_uint_t                   i;
    ngx_http_upstream_server_t  *server;

    if (us->servers == NULL) {
        return NGX_OK;
    }

    server = us->servers->elts;

    for (i = 0; i < us->servers->nelts; i++) {
        if (server[i].host.len == 0) {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep_health_check\" in %s:%ui cannot check"
                      " \"server %V resolve\" in upstream \"%V\":"
                      " name its back ends by address or by a name resolved"
                      " at start (without \"resolve\")",
                      hc->file, hc->line, &server[i].name, &us->host);
        return NGX_ERROR;
    }

    return NGX_OK;
}

#endif


static ngx_int_t
ngx_http_scep_add_peers(ngx_conf_t *cf, ngx_http_scep_upstream_t *hc,
    ngx_http_upstream_rr_peers_t *peers)
{
    ngx_http_scep_peer_t         *p;
    ngx_http_upstream_rr_peer_t  *rr;

    for (rr = peers->peer; rr; rr = rr->next) {
        p = ngx_array_push(&hc->peers);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(p, sizeof(ngx_http_scep_peer_t));

        p->name = rr->name;
        p->rr_name = rr->name.data;
        p->sockaddr = rr->sockaddr;
        p->socklen = rr->socklen;
        p->upstream = hc;

        /* probed as the others, but never counted up: nginx skips it */
        p->down = rr->down ? 1 : 0;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_scep_upstream_t  *hc;
    ngx_http_scep_balancer_t  *bp;
    ngx_http_scep_srv_conf_t  *sscf;

    sscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_scep_module);
    hc = sscf->health;

    bp = ngx_palloc(r->pool, sizeof(ngx_http_scep_balancer_t));
    if (bp == NULL) {
        return NGX_ERROR;
    }

    if (hc->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    bp->health = hc;
    bp->request = r;
    bp->data = r->upstream->peer.data;
    bp->original_get_peer = r->upstream->peer.get;
    bp->original_free_peer = r->upstream->peer.free;

    r->upstream->peer.data = bp;
    r->upstream->peer.get = ngx_http_scep_get_peer;
    r->upstream->peer.free = ngx_http_scep_free_peer;

#if (NGX_HTTP_SSL)
    bp->original_set_session = r->upstream->peer.set_session;
    bp->original_save_session = r->upstream->peer.save_session;
    r->upstream->peer.set_session = ngx_http_scep_set_session;
    r->upstream->peer.save_session = ngx_http_scep_save_session;
#endif

    return NGX_OK;
}


/*
 * Asks the original balancer for a peer; an unhealthy one is handed
 * back as not failed (so nginx's passive fail counters are untouched)
 * and the balancer, which has marked it tried, is asked again.  A
 * CertPoll pinned to the server that holds its request
 * (scep_pending_zone) skips every other peer the same way.
 */

static ngx_int_t
ngx_http_scep_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_scep_balancer_t *bp = data;

    ngx_int_t              rc;
    ngx_uint_t             skipped, full, tries;
    ngx_http_scep_ctx_t   *ctx;
    ngx_http_scep_peer_t  *peer, *pinned;

    skipped = 0;
    full = 0;
    pinned = ngx_http_scep_pinned(bp);
    ctx = ngx_http_scep_get_ctx(bp->request);

    for ( ;; ) {

        rc = bp->original_get_peer(pc, bp->data);

        if (rc != NGX_OK && rc != NGX_DONE) {
            break;
        }

        peer = ngx_http_scep_find_peer(bp->health, pc->name, pc->sockaddr,
                                       pc->socklen);

        if (peer == NULL && pinned == NULL) {
            return rc;
        }

        /* a full server (scep_backend_limit) is skipped as a sick one */

        if (peer && (pinned == NULL || peer == pinned)
            && ngx_http_scep_peer_healthy(peer))
        {
            if (!ngx_http_scep_limit_take(bp->request, ctx, peer)) {
                full++;
                goto skip;
            }

            if (peer->sh) {
                (void) ngx_atomic_fetch_add(&peer->sh->requests, 1);
            }

            if (pinned) {
                /* one try: no other server can answer this CertPoll */
                pc->tries = 1;

                /*
                 * and a fresh connection: a cached one that the server
                 * closed meanwhile would cost that one try
                 */

                if (pc->connection) {
                    ngx_http_scep_close_cached(pc->connection);
                    pc->connection = NULL;
                    pc->cached = 0;
                    rc = NGX_OK;    /* not NGX_DONE: nothing cached now */
                }
            }

            return rc;
        }

    skip:

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "scep balancer: skipping %V", pc->name);

        /* give the peer back without counting a failure against it */

        tries = pc->tries;

        ngx_http_scep_skip_peer(bp, pc);

        if (pc->connection) {
            /* a cached keepalive connection to it */
            ngx_http_scep_close_cached(pc->connection);
            pc->connection = NULL;
            pc->cached = 0;
        }

        /* skipping is not a try: keep proxy_next_upstream's budget */
        pc->tries = tries;

        if (++skipped >= bp->health->peers.nelts) {
            rc = NGX_BUSY;
            break;
        }
    }

    if (rc == NGX_BUSY && skipped) {

        /*
         * every peer it offered was handed back already: nginx must not
         * free one again, nor count a failure against it
         */

        pc->sockaddr = NULL;
        pc->socklen = 0;
        pc->name = &bp->health->uscf->host;

        if (ctx && full == skipped) {
            /* healthy, all of them, but full */
            ngx_http_scep_limit_full(bp->request, ctx, bp->health);
            return rc;
        }

        if (ctx) {
            ctx->no_healthy = 1;
        }

        ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                      "scep: no healthy back end in upstream \"%V\"",
                      &bp->health->uscf->host);
    }

    return rc;
}


static void
ngx_http_scep_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_scep_balancer_t *bp = data;

    ngx_http_scep_ctx_t   *ctx;
    ngx_http_scep_peer_t  *peer;

    bp->original_free_peer(pc, bp->data, state);

    /* a PKIOperation's slot of scep_backend_limit, on any way out */

    ctx = ngx_http_scep_get_ctx(bp->request);
    ngx_http_scep_limit_give(ctx);

    /*
     * The server that holds a CertPoll's request failed: no other one
     * can answer it, so nginx must not try them; the 502 becomes a 503
     * with Retry-After, as when no server is healthy
     */

    if (pc->sockaddr && ngx_http_scep_pinned(bp)) {
        pc->tries = 0;

        if (state & NGX_PEER_FAILED) {
            ctx = ngx_http_scep_get_ctx(bp->request);

            if (ctx) {
                ctx->no_healthy = 1;
            }

            ngx_log_error(NGX_LOG_ERR, pc->log, 0,
                          "scep: %V, the server that holds a pending"
                          " request, failed: its CertPoll is not passed on"
                          " to another", pc->name);
        }

        return;
    }

    /* a failure with tries left: the request goes on to another server */

    if ((state & NGX_PEER_FAILED) && pc->tries && pc->sockaddr) {
        peer = ngx_http_scep_find_peer(bp->health, pc->name, pc->sockaddr,
                                       pc->socklen);

        if (peer && peer->sh) {
            (void) ngx_atomic_fetch_add(&peer->sh->failovers, 1);
        }
    }
}


/* the server of this upstream that a CertPoll is pinned to, or NULL */

static ngx_http_scep_peer_t *
ngx_http_scep_pinned(ngx_http_scep_balancer_t *bp)
{
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(bp->request);

    if (ctx == NULL || ctx->pinned == NULL
        || ctx->pinned->upstream != bp->health)
    {
        return NULL;
    }

    return ctx->pinned;
}


/*
 * Hands a skipped peer back to the balancer as not failed.  The
 * round-robin code that every balancer of nginx shares takes that for a
 * success, and a success after fail_timeout clears the peer's passive
 * failures (max_fails): the peer was not used, so they are put back.
 */

static void
ngx_http_scep_skip_peer(ngx_http_scep_balancer_t *bp,
    ngx_peer_connection_t *pc)
{
    ngx_uint_t                     fails;
    ngx_http_upstream_rr_peer_t   *rr;
    ngx_http_upstream_rr_peers_t  *peers;

    rr = ngx_http_scep_rr_peer(bp->health, pc->name, &peers);

    if (rr == NULL) {
        bp->original_free_peer(pc, bp->data, 0);
        return;
    }

    ngx_http_upstream_rr_peers_rlock(peers);
    ngx_http_upstream_rr_peer_lock(peers, rr);

    fails = rr->fails;

    ngx_http_upstream_rr_peer_unlock(peers, rr);
    ngx_http_upstream_rr_peers_unlock(peers);

    bp->original_free_peer(pc, bp->data, 0);

    ngx_http_upstream_rr_peers_rlock(peers);
    ngx_http_upstream_rr_peer_lock(peers, rr);

    if (rr->fails < fails) {
        rr->fails = fails;
    }

    ngx_http_upstream_rr_peer_unlock(peers, rr);
    ngx_http_upstream_rr_peers_unlock(peers);
}


/* closes a cached keepalive connection as the keepalive module does */

static void
ngx_http_scep_close_cached(ngx_connection_t *c)
{
    /* the request that found it may be gone when a shutdown ends */

    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

#if (NGX_HTTP_SSL)

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_scep_close_cached;
            return;
        }
    }

#endif

    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }

    ngx_close_connection(c);
}


/*
 * The round-robin peer that a balancer named: hash, least_conn and
 * random keep round-robin peers too, and point pc->name, and so the
 * upstream state's peer, at the name in it.  With "zone" in the upstream
 * they are copies in shared memory.
 */

ngx_http_upstream_rr_peer_t *
ngx_http_scep_rr_peer(ngx_http_scep_upstream_t *hc, ngx_str_t *name,
    ngx_http_upstream_rr_peers_t **owner)
{
    ngx_http_upstream_rr_peer_t   *rr;
    ngx_http_upstream_rr_peers_t  *peers;

    if (name == NULL) {
        return NULL;
    }

    for (peers = hc->uscf->peer.data; peers; peers = peers->next) {

        ngx_http_upstream_rr_peers_rlock(peers);

        for (rr = peers->peer; rr; rr = rr->next) {
            if (&rr->name == name) {
                ngx_http_upstream_rr_peers_unlock(peers);

                *owner = peers;
                return rr;
            }
        }

        ngx_http_upstream_rr_peers_unlock(peers);
    }

    return NULL;
}


ngx_http_scep_peer_t *
ngx_http_scep_find_peer(ngx_http_scep_upstream_t *hc, ngx_str_t *name,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_uint_t             i;
    ngx_http_scep_peer_t  *peer;

    peer = hc->peers.elts;

    /* the balancers point pc->name at the peer's own name */

    if (name) {
        for (i = 0; i < hc->peers.nelts; i++) {
            if (peer[i].rr_name == name->data) {
                return &peer[i];
            }
        }
    }

    if (sockaddr == NULL) {
        return NULL;
    }

    for (i = 0; i < hc->peers.nelts; i++) {
        if (ngx_cmp_sockaddr(peer[i].sockaddr, peer[i].socklen,
                             sockaddr, socklen, 1)
            == NGX_OK)
        {
            return &peer[i];
        }
    }

    return NULL;
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_scep_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_scep_balancer_t *bp = data;

    return bp->original_set_session(pc, bp->data);
}


static void
ngx_http_scep_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_scep_balancer_t *bp = data;

    bp->original_save_session(pc, bp->data);
}

#endif
