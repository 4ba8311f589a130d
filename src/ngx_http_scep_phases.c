
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A SCEP request's way through nginx's phases, one handler a phase:
 *
 *   rewrite     the query string is parsed, and a GET's message but for
 *               its signature, so that limit_req, limit_conn and map can
 *               key on the $scep_* variables (a POST's body too, with
 *               "scep_body_before_limits on"); nothing is answered here
 *   preaccess   nginx's limit_req and limit_conn
 *   access      nginx's allow/deny, auth_basic, auth_request
 *   precontent  a POST's body is read and checked, signatures verified,
 *               the replay window consulted, a CertPoll pinned to the
 *               server that holds its request; then the module answers
 *               the browser test (a bare GET of the SCEP URL), what it
 *               refuses and what the CA cache holds, or strips
 *               the client's credentials, has a PKIOperation wait while
 *               every server is at its scep_backend_limit, and lets
 *               proxy_pass go on
 *   log         the replay window and the counters
 *
 * The request's context survives internal redirects (error_page, named
 * locations, X-Accel-Redirect): nginx forgets the modules' contexts
 * then, and ngx_http_scep_get_ctx() finds it again through the pool
 * cleanup that holds it, as the realip module does.
 */


#include "ngx_http_scep_module.h"


#define ngx_http_scep_has_body(r, ctx)                                       \
    ((r)->method == NGX_HTTP_POST                                            \
     && (ctx)->op == NGX_HTTP_SCEP_OP_PKIOPERATION)


static ngx_http_scep_ctx_t *ngx_http_scep_create_ctx(ngx_http_request_t *r,
    ngx_http_scep_loc_conf_t *slcf);
static void ngx_http_scep_ctx_cleanup(void *data);
static ngx_uint_t ngx_http_scep_passes_on(ngx_http_request_t *r);
static ngx_uint_t ngx_http_scep_browser_here(ngx_http_request_t *r);


ngx_http_scep_ctx_t *
ngx_http_scep_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_scep_module);

    if (ctx || r != r->main || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_scep_ctx_cleanup) {
            ctx = cln->data;
            ctx->redirected = 1;
            ngx_http_set_ctx(r, ctx, ngx_http_scep_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_http_scep_ctx_t *
ngx_http_scep_create_ctx(ngx_http_request_t *r, ngx_http_scep_loc_conf_t *slcf)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_scep_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_scep_ctx_cleanup;
    cln->data = ctx;

    ctx->conf = slcf;

    ngx_http_set_ctx(r, ctx, ngx_http_scep_module);

    return ctx;
}


/* what a parsed message holds, if it was never verified */

static void
ngx_http_scep_ctx_cleanup(void *data)
{
    ngx_http_scep_ctx_t  *ctx = data;

    if (ctx->pending) {
        scep_pending_free(ctx->pending);
        ctx->pending = NULL;
    }
}


/*
 * An internal redirect to a URI re-enters the server rewrite phase, and
 * nginx's find-config phase applies client_max_body_size of the new
 * location to the request's Content-Length: a GET that was made a POST
 * is a GET again before that.
 */

ngx_int_t
ngx_http_scep_server_rewrite_handler(ngx_http_request_t *r)
{
    ngx_http_scep_ctx_t  *ctx;

    if (r != r->main || !r->internal) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx && ctx->converted
        && ngx_http_scep_forward_undo(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_scep_rewrite_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_scep_ctx_t       *ctx;
    ngx_http_scep_loc_conf_t  *slcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    if (!slcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_scep_create_ctx(r, slcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* a named location: no server rewrite phase on the way here */

    if (ctx->converted && ngx_http_scep_forward_undo(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->parsed) {
        if (ngx_http_scep_parse(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->parsed = 1;
    }

    /*
     * A POST's body is read before limit_req and limit_conn only where
     * the admin says that their keys need its message
     * ("scep_body_before_limits on"); a rejection found then waits for
     * the precontent phase like any other.
     */

    if (ctx->body == NGX_HTTP_SCEP_BODY_NONE
        && ctx->reject == NGX_HTTP_SCEP_REJECT_NONE
        && !ctx->redirected
        && slcf->body_before_limits
        && ngx_http_scep_has_body(r, ctx))
    {
        rc = ngx_http_scep_read_body(r, ctx);

        if (rc != NGX_OK) {
            /* NGX_DONE: this handler runs again once the body is in */
            return rc;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_scep_precontent_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_http_scep_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    if (ctx->converted && ngx_http_scep_forward_undo(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->done) {
        /*
         * a GET made a POST, and a GET again by an internal redirect:
         * a location that passes it on converts it anew
         */

        if (ctx->forward_post && ctx->redirected
            && ngx_http_scep_passes_on(r)
            && ngx_http_scep_forward_as_post(r, ctx)
            && ngx_http_scep_forward_post(r, ctx) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* back from waiting for a server (scep_backend_limit) */

        if (ctx->forward_post && !ctx->redirected && !ctx->converted
            && ngx_http_scep_forward_post(r, ctx) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    if (ctx->redirected && !ngx_http_scep_passes_on(r)) {
        /*
         * An internal redirect before this phase: deny or limit_req
         * refused the request and error_page shows a page, say.  The
         * answer is nginx's: the module reads, checks and answers
         * nothing of it.  Where the redirect hands the request to a
         * location that passes it on (error_page 418 = @proxy, rewrite
         * ... last), what goes on is checked there first.
         */

        ctx->done = 1;
        return NGX_DECLINED;
    }

    if (ctx->browser
        && (!ngx_http_scep_browser_here(r)
            || (ctx->redirected && (r->error_page || r->err_status))))
    {
        /*
         * The browser test answers in a "scep on" location with the test
         * on, the one the request is in now (rewrite ... last keeps the
         * context), and not for a request that deny, limit_req or
         * auth_request sent to an error_page.  Where such a bare GET
         * goes on to a location that passes it on, it is what it was
         * before the browser test: a request without an operation,
         * refused there as ngx_http_scep_parse() found, like
         * "?message=abc".  Nothing of it reaches a back end unchecked.
         */

        ctx->browser = 0;
    }

    if (ngx_http_scep_has_body(r, ctx)
        && ctx->reject == NGX_HTTP_SCEP_REJECT_NONE)
    {
        if (ctx->body == NGX_HTTP_SCEP_BODY_NONE) {
            rc = ngx_http_scep_read_body(r, ctx);

            if (rc != NGX_OK) {
                /* NGX_DONE: this handler runs again once the body is in */
                return rc;
            }

        } else if (ctx->body == NGX_HTTP_SCEP_BODY_READING) {
            /*
             * nginx refused the body while it was read (a bad chunk,
             * client_max_body_size) and an error_page took the request
             * here: what arrived of it was never checked
             */

            ctx->done = 1;
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    ctx->done = 1;

    if (ctx->status != NGX_OK) {
        return ctx->status;
    }

    if (ctx->browser) {
        ngx_http_finalize_request(r, ngx_http_scep_browser_answer(r, ctx));
        return NGX_DONE;
    }

    ctx->forward_post = ngx_http_scep_forward_as_post(r, ctx);

    ngx_http_scep_verify(r, ctx);

    /*
     * A CertPoll goes to the server that holds its pending request, or
     * is refused while that one is down (scep_pending_zone)
     */

    if (ctx->reject == NGX_HTTP_SCEP_REJECT_NONE) {
        (void) ngx_http_scep_pending_route(r, ctx);
    }

    if (ctx->reject != NGX_HTTP_SCEP_REJECT_NONE) {
        rc = ngx_http_scep_send_reject(r, ctx);

        /* a generic phase goes on to the content phase on NGX_OK */

        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    /* the cache answers requests of its own location only */

    rc = ctx->redirected ? NGX_DECLINED : ngx_http_scep_cache_handler(r, ctx);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    if (!ctx->conf->pass_credentials
        && ngx_http_scep_strip_headers(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * scep_backend_limit: a PKIOperation that finds every server full
     * waits here, before proxy_pass takes an upstream connection; it
     * comes back to this handler (ctx->done) when it may go on.  One
     * that an internal redirect brought to a location that passes it on
     * (error_page 418 = @proxy) is counted there, unless its first
     * location counted it already (ctx->limited)
     */

    rc = ngx_http_scep_limit_handler(r, ctx);

    if (rc == NGX_AGAIN) {
        return rc;
    }

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    if (ctx->forward_post && ngx_http_scep_forward_post(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_scep_log_handler(ngx_http_request_t *r)
{
    ngx_http_scep_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL) {
        /* not a request of a "scep on" location */
        return NGX_OK;
    }

    if (ctx->response == NGX_HTTP_SCEP_ANSWER_BUFFERING) {
        /* the back end's answer never ended: no CertRep reached anyone */
        ctx->response = NGX_HTTP_SCEP_ANSWER_DONE;
        ctx->response_check = SCEP_RESPONSE_NOT_CERTREP + 1;
        ngx_http_scep_outcome(r, ctx);
    }

    ngx_http_scep_replay_log(r, ctx);
    ngx_http_scep_stats_log(r, ctx);

    return NGX_OK;
}


/* a location with a content handler of its own: proxy_pass, say */

static ngx_uint_t
ngx_http_scep_passes_on(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    return clcf->handler != NULL;
}


/* a location that answers the browser test: "scep on", the test on */

static ngx_uint_t
ngx_http_scep_browser_here(ngx_http_request_t *r)
{
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    return slcf->enable && slcf->browser_test;
}


/*
 * A variable of a POST's message asked for before the body was read:
 * by limit_req, limit_conn or a rewrite-phase directive of a location
 * without "scep_body_before_limits on", where it is empty.  Said at warn,
 * at most once a minute for all workers.
 */

void
ngx_http_scep_body_wanted(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    time_t                      now;
    ngx_atomic_uint_t           last;
    ngx_http_scep_sh_t         *sh;
    ngx_http_scep_main_conf_t  *smcf;

    /* the access log of a refused request asks too, after its answer */

    if (ctx->body != NGX_HTTP_SCEP_BODY_NONE
        || ctx->done
        || r->header_sent
        || !ngx_http_scep_has_body(r, ctx))
    {
        return;
    }

    now = ngx_time();

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
    sh = ngx_http_scep_shared(smcf);

    if (sh) {
        last = sh->body_late_logged;

        if ((time_t) last + 60 > now
            || !ngx_atomic_cmp_set(&sh->body_late_logged, last,
                                   (ngx_atomic_uint_t) now))
        {
            return;
        }
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "scep: a variable of a POST's message was asked for"
                  " before its body was read, and is empty there: a"
                  " limit_req or limit_conn keyed on it needs"
                  " \"scep_body_before_limits on;\" in the location");
}
