
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Streaming BER forwarded as DER (scep_forward_der): a pkiMessage that
 * passed its checks in BER is re-encoded by scep_der.c, and the back end
 * gets the DER form, in the canonical query of a GET or as the body of
 * a POST.  A message in DER already goes on as it came, uncopied.
 *
 * A GET PKIOperation forwarded as a POST (scep_forward_method): the
 * back end gets "POST uri?operation=PKIOperation" with the message in
 * DER as the body, and no URL of up to 64 KB for IIS to hold.
 */


#include "ngx_http_scep_module.h"
#include "scep_der.h"


static ngx_int_t ngx_http_scep_replace_body(ngx_http_request_t *r,
    u_char *body, size_t len);
static ngx_uint_t ngx_http_scep_upstream_takes_post(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_set_content_type(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_save_header(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_table_elt_t *h);
static ngx_uint_t ngx_http_scep_query_in_use(ngx_http_request_t *r);


static ngx_str_t  ngx_http_scep_post_method = ngx_string("POST");
static ngx_str_t  ngx_http_scep_post_args =
    ngx_string("operation=PKIOperation");
static ngx_str_t  ngx_http_scep_pki_type =
    ngx_string("application/x-pki-message");


ngx_int_t
ngx_http_scep_forward_der(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    int        rc;
    void      *work;
    size_t     len, worklen;
    u_char    *out;

    rc = scep_der_size(ctx->der, ctx->der_len, &len, &worklen);

    if (rc == SCEP_DER_SAME) {
        return NGX_OK;
    }

    if (rc == SCEP_DER_ERROR) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "scep: PKIOperation in a BER form that is not"
                      " re-encoded, forwarded as it came");
        return NGX_OK;
    }

    out = ngx_pnalloc(r->pool, len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    work = ngx_palloc(r->pool, worklen);
    if (work == NULL) {
        return NGX_ERROR;
    }

    rc = scep_der_encode(ctx->der, ctx->der_len, out, len, work, worklen);

    (void) ngx_pfree(r->pool, work);

    if (rc != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "scep: scep_der_encode() failed, PKIOperation"
                      " forwarded as it came");
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep: BER PKIOperation of %uz bytes forwarded as %uz"
                   " bytes of DER", ctx->der_len, len);

    ctx->fwd = out;
    ctx->fwd_len = len;

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_scep_replace_body(r, ctx->fwd, ctx->fwd_len);
    }

    /* a GET: the canonical query is made of ctx->fwd */

    return NGX_OK;
}


/*
 * Whether a GET PKIOperation that passed its checks goes on as a POST:
 * always with "post"; with "auto" while every healthy back end of the
 * upstream said POSTPKIOperation in its last GetCACaps.  A GET that
 * carries a body of its own stays a GET: nginx reads or discards that
 * body by its Content-Length, which the message's would replace.
 */

ngx_uint_t
ngx_http_scep_forward_as_post(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_http_scep_loc_conf_t  *slcf;

    if (r->method != NGX_HTTP_GET
        || ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION
        || !ctx->has_message
        || ctx->reject != NGX_HTTP_SCEP_REJECT_NONE
        || r->headers_in.content_length_n > 0)
    {
        return 0;
    }

    /* the location that passes it on, after a redirect too */

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    if (r->headers_in.chunked) {
        /*
         * HTTP/2 and HTTP/3 mark so a GET whose HEADERS frame did not
         * end the stream: a body may still come, nginx reads it
         */

        if (slcf->forward_method != NGX_HTTP_SCEP_FWD_GET
            && !ctx->stream_logged)
        {
            ctx->stream_logged = 1;
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "scep: GET with a request body stream:"
                          " forwarded as GET");
        }

        return 0;
    }

    switch (slcf->forward_method) {

    case NGX_HTTP_SCEP_FWD_POST:
        return 1;

    case NGX_HTTP_SCEP_FWD_AUTO:
        return ngx_http_scep_upstream_takes_post(r);

    default:
        return 0;
    }
}


/*
 * Nothing known is a GET: no health checks, no healthy back end, or one
 * without a record in the zone, whose GetCACaps nobody has kept.
 */

static ngx_uint_t
ngx_http_scep_upstream_takes_post(ngx_http_request_t *r)
{
    ngx_uint_t                 i, healthy;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;

    hc = ngx_http_scep_location_health(r);

    if (hc == NULL) {
        return 0;
    }

    healthy = 0;

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    peer = hc->peers.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < hc->peers.nelts; i++) {
        sp = peer[i].sh;

        if (sp == NULL) {
            healthy = 0;
            break;
        }

        if (sp->state != NGX_HTTP_SCEP_PEER_UP) {
            continue;
        }

        if (!(sp->caps & SCEP_CAP_POSTPKIOPERATION)) {
            healthy = 0;
            break;
        }

        healthy++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return healthy > 0;
}


/*
 * The GET goes on as "POST uri?operation=PKIOperation" with the message
 * in DER as its body, a Content-Length and the Content-Type of RFC 8894.
 * r->method stays GET, for this module and for proxy_next_upstream (a
 * GET is retried on the next server, as it was before); what proxy_pass
 * sends is r->method_name, which $request_method shows from here on.
 * The device's request line stays in $request.
 */

ngx_int_t
ngx_http_scep_forward_post(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char  *der;
    size_t   len;

    der = ctx->fwd ? ctx->fwd : ctx->der;
    len = ctx->fwd ? ctx->fwd_len : ctx->der_len;

    if (der == NULL) {
        return NGX_ERROR;
    }

    ctx->fwd_saved = ngx_array_create(r->pool, 2,
                                      sizeof(ngx_http_scep_saved_t));
    if (ctx->fwd_saved == NULL) {
        return NGX_ERROR;
    }

    ctx->fwd_pushed = NULL;
    ctx->fwd_length_n = r->headers_in.content_length_n;

    if (r->headers_in.content_length
        && ngx_http_scep_save_header(r, ctx, r->headers_in.content_length)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (r->request_body == NULL) {
        r->request_body = ngx_pcalloc(r->pool,
                                      sizeof(ngx_http_request_body_t));
        if (r->request_body == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_scep_replace_body(r, der, len) != NGX_OK
        || ngx_http_scep_set_content_type(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * The canonical query goes back to the allocator now (a large
     * allocation): the back end gets the DER, which an internal
     * redirect makes a query of again.  Not while a variable evaluated
     * before ($args, $arg_message in a map or limit_req key) still
     * points into it for the access log.
     */

    if (ctx->query_allocated) {
        if (!ngx_http_scep_query_in_use(r)) {
            (void) ngx_pfree(r->pool, r->args.data);
        }

        ctx->query_allocated = 0;
    }

    ngx_str_null(&ctx->message);

    r->args = ngx_http_scep_post_args;

    /* make proxy_pass build the request line from r->uri and r->args */
    r->valid_unparsed_uri = 0;

    r->method_name = ngx_http_scep_post_method;

    ctx->converted = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep: GET PKIOperation forwarded as a POST of %uz bytes",
                   len);

    return NGX_OK;
}


/*
 * An internal redirect (error_page, X-Accel-Redirect, a named location)
 * after the GET was made a POST: nginx takes it on as a GET, so it is
 * one again, with no body, the device's Content-Length and Content-Type
 * and the message in the canonical query, unless the redirect gave the
 * request a query of its own.  A location that passes it on converts it
 * anew (scep_forward_method there).
 */

ngx_int_t
ngx_http_scep_forward_undo(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t              i;
    ngx_list_part_t        *part, *prev;
    ngx_http_scep_saved_t  *saved;

    ctx->converted = 0;

    r->request_body = NULL;
    r->headers_in.content_length_n = ctx->fwd_length_n;

    saved = ctx->fwd_saved->elts;

    for (i = 0; i < ctx->fwd_saved->nelts; i++) {
        saved[i].header->value = saved[i].value;
    }

    if (ctx->fwd_pushed) {
        part = r->headers_in.headers.last;

        if (part->nelts
            && ctx->fwd_pushed == (ngx_table_elt_t *) part->elts
                                  + part->nelts - 1)
        {
            part->nelts--;

            if (part->nelts == 0 && part != &r->headers_in.headers.part) {
                /*
                 * nginx's loops over a list (proxy_pass's among them)
                 * read the first element of a part they step to
                 * unchecked: an empty part goes from the list
                 */

                for (prev = &r->headers_in.headers.part;
                     prev->next != part;
                     prev = prev->next)
                {
                    /* void */
                }

                prev->next = NULL;
                r->headers_in.headers.last = prev;
            }

        } else {
            /* not the last one: it stays, as the body's type */
            ctx->fwd_pushed->hash = 0;
        }

        if (r->headers_in.content_type == ctx->fwd_pushed) {
            r->headers_in.content_type = NULL;
        }

        ctx->fwd_pushed = NULL;
    }

    if (r->method != NGX_HTTP_HEAD) {
        r->method_name = ngx_http_core_get_method;
    }

    if (r->args.len == 0
        || (r->args.len == ngx_http_scep_post_args.len
            && ngx_strncmp(r->args.data, ngx_http_scep_post_args.data,
                           r->args.len)
               == 0))
    {
        /* the query the conversion made, or none */

        if (ngx_http_scep_canonical_query(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep: a GET forwarded as a POST is a GET again"
                   " after an internal redirect");

    return NGX_OK;
}


/* whether a variable's kept value points into the query */

static ngx_uint_t
ngx_http_scep_query_in_use(ngx_http_request_t *r)
{
    u_char                     *start, *end;
    ngx_uint_t                  i;
    ngx_http_variable_value_t  *v;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    start = r->args.data;
    end = start + r->args.len;
    v = r->variables;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].valid && v[i].len
            && v[i].data < end && v[i].data + v[i].len > start)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_scep_save_header(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_table_elt_t *h)
{
    ngx_http_scep_saved_t  *saved;

    saved = ngx_array_push(ctx->fwd_saved);
    if (saved == NULL) {
        return NGX_ERROR;
    }

    saved->header = h;
    saved->value = h->value;

    return NGX_OK;
}


/* every Content-Type the device sent with its GET says the body's */

static ngx_int_t
ngx_http_scep_set_content_type(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == sizeof("Content-Type") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Type",
                                   sizeof("Content-Type") - 1)
                   == 0)
            {
                if (ngx_http_scep_save_header(r, ctx, &h[i]) != NGX_OK) {
                    return NGX_ERROR;
                }

                h[i].value = ngx_http_scep_pki_type;
            }
        }
    }

    if (r->headers_in.content_type) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    /*
     * the hash of its lowercase name, as nginx gives the headers it
     * parsed: proxy_set_header Content-Type replaces it then
     */

    ngx_str_set(&h->key, "Content-Type");
    h->value = ngx_http_scep_pki_type;
    h->lowcase_key = (u_char *) "content-type";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    r->headers_in.content_type = h;
    ctx->fwd_pushed = h;

    return NGX_OK;
}


/*
 * The body that proxy_pass sends is r->request_body->bufs, and the
 * Content-Length it sends is r->headers_in.content_length_n (the
 * client's, or what a chunked body came to).
 */

static ngx_int_t
ngx_http_scep_replace_body(ngx_http_request_t *r, u_char *body, size_t len)
{
    u_char       *p;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->start = body;
    b->pos = body;
    b->last = body + len;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    r->request_body->bufs = cl;

    r->headers_in.content_length_n = len;

    if (r->headers_in.content_length) {
        p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        r->headers_in.content_length->value.data = p;
        r->headers_in.content_length->value.len =
                                  ngx_sprintf(p, "%uz", len) - p;
    }

    return NGX_OK;
}
