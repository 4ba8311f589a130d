
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A SCEP request's way through nginx's phases, one handler a phase:
 *
 *   rewrite     the query string is parsed, and a GET's message but for
 *               its signature, so that limit_req, limit_conn and map can
 *               key on the $scep_* variables; nothing is answered here
 *   preaccess   nginx's limit_req and limit_conn
 *   access      nginx's allow/deny, auth_basic, auth_request
 *   precontent  a POST's body is read and checked, signatures verified,
 *               the replay window consulted; then the module answers
 *               what it refuses and what the CA cache holds, or strips
 *               the client's credentials and lets proxy_pass go on
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
static ngx_uint_t ngx_http_scep_body_early(ngx_http_request_t *r);
static ngx_uint_t ngx_http_scep_has_limits(ngx_http_request_t *r,
    ngx_uint_t index);
static ngx_uint_t ngx_http_scep_module_index(ngx_conf_t *cf, char *name);


/* the $scep_* variables that a POST has once its body is read */

static ngx_str_t  ngx_http_scep_message_vars[] = {
    ngx_string("scep_message_type"),
    ngx_string("scep_transaction_id"),
    ngx_string("scep_sender_nonce"),
    ngx_string("scep_message_length"),
    ngx_string("scep_reject_reason"),
    ngx_null_string
};


ngx_http_scep_ctx_t *
ngx_http_scep_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_scep_module);

    if (ctx || r != r->main) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_scep_ctx_cleanup) {
            ctx = cln->data;
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


ngx_int_t
ngx_http_scep_rewrite_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_scep_ctx_t       *ctx;
    ngx_http_scep_loc_conf_t  *slcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL) {
        slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

        if (!slcf->enable) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_scep_create_ctx(r, slcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (!ctx->parsed) {
        ctx->parsed = 1;

        if (ngx_http_scep_parse(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /*
     * A POST's body is read before limit_req and limit_conn only where
     * they may key on a variable of its message; a rejection found then
     * waits for the precontent phase like any other.
     */

    if (ctx->body == NGX_HTTP_SCEP_BODY_NONE
        && ctx->reject == NGX_HTTP_SCEP_REJECT_NONE
        && !r->error_page
        && ngx_http_scep_has_body(r, ctx)
        && ngx_http_scep_body_early(r))
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

    if (ctx == NULL || ctx->done) {
        return NGX_DECLINED;
    }

    if (r->error_page && !ngx_http_scep_passes_on(r)) {
        /*
         * the page of an error_page, of a request that deny or limit_req
         * refused, say: the answer is nginx's, and the module reads,
         * checks and answers nothing of it.  Where error_page hands the
         * request to a location that passes it on (proxy_pass), it is
         * checked there as anywhere else.
         */

        ctx->done = 1;
        return NGX_DECLINED;
    }

    if (ctx->body == NGX_HTTP_SCEP_BODY_NONE
        && ctx->reject == NGX_HTTP_SCEP_REJECT_NONE
        && ngx_http_scep_has_body(r, ctx))
    {
        rc = ngx_http_scep_read_body(r, ctx);

        if (rc != NGX_OK) {
            /* NGX_DONE: this handler runs again once the body is in */
            return rc;
        }
    }

    ctx->done = 1;

    if (ctx->status != NGX_OK) {
        return ctx->status;
    }

    ngx_http_scep_verify(r, ctx);

    if (ctx->reject != NGX_HTTP_SCEP_REJECT_NONE) {
        rc = ngx_http_scep_send_reject(r, ctx);

        /* a generic phase goes on to the content phase on NGX_OK */

        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    rc = ngx_http_scep_cache_handler(r, ctx);

    if (rc != NGX_DECLINED) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    if (!ctx->conf->pass_credentials
        && ngx_http_scep_strip_headers(r) != NGX_OK)
    {
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


/*
 * Whether limit_req or limit_conn of this location may ask for a
 * variable of the message.  Their keys are theirs to know; what the
 * module can see is whether the configuration uses a message variable
 * anywhere (ngx_http_scep_body_early_init()), and whether the location
 * has limits at all.
 */

static ngx_uint_t
ngx_http_scep_body_early(ngx_http_request_t *r)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (!smcf->message_vars) {
        return 0;
    }

    return ngx_http_scep_has_limits(r, smcf->limit_req_index)
           || ngx_http_scep_has_limits(r, smcf->limit_conn_index);
}


/*
 * The location configurations of limit_req and limit_conn begin with
 * the array of the location's limits, in every nginx since 1.7; an
 * empty one means none.
 */

static ngx_uint_t
ngx_http_scep_has_limits(ngx_http_request_t *r, ngx_uint_t index)
{
    ngx_array_t  *limits;

    if (index == NGX_CONF_UNSET_UINT) {
        return 0;
    }

    limits = r->loc_conf[index];

    return limits != NULL && limits->nelts != 0;
}


ngx_int_t
ngx_http_scep_body_early_init(ngx_conf_t *cf)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i;
    ngx_http_variable_t        *v;
    ngx_http_scep_main_conf_t  *smcf;
    ngx_http_core_main_conf_t  *cmcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    smcf->limit_req_index = ngx_http_scep_module_index(cf,
                                                "ngx_http_limit_req_module");
    smcf->limit_conn_index = ngx_http_scep_module_index(cf,
                                               "ngx_http_limit_conn_module");

    /* the variables that something in the configuration uses */

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        for (name = ngx_http_scep_message_vars; name->len; name++) {
            if (v[i].name.len == name->len
                && ngx_strncmp(v[i].name.data, name->data, name->len) == 0)
            {
                smcf->message_vars = 1;
                return NGX_OK;
            }
        }
    }

    return NGX_OK;
}


/* a module of the http block, by name: it may not be built in */

static ngx_uint_t
ngx_http_scep_module_index(ngx_conf_t *cf, char *name)
{
    ngx_uint_t     i;
    ngx_module_t  *m;

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];

        if (m->type == NGX_HTTP_MODULE && ngx_strcmp(m->name, name) == 0) {
            return m->ctx_index;
        }
    }

    return NGX_CONF_UNSET_UINT;
}
