
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Retry-After on the 429 and 503 answers of SCEP locations, whoever
 * made them (limit_req, the back end, the gateway), so that devices
 * back off instead of retrying at once.
 */


#include "ngx_http_scep_module.h"


static ngx_int_t ngx_http_scep_retry_after_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_replaced_body(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_scep_no_healthy_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_http_scep_no_healthy_text =
    ngx_string("no_healthy_backend: no SCEP server is available now,"
               " try again later\n");


ngx_int_t
ngx_http_scep_retry_after_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_scep_retry_after_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_scep_no_healthy_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_retry_after_filter(ngx_http_request_t *r)
{
    u_char                    *p;
    ngx_str_t                  body, value;
    ngx_uint_t                 i;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_http_scep_ctx_t       *ctx;
    ngx_http_scep_loc_conf_t  *slcf;

    static ngx_str_t  retry_after = ngx_string("Retry-After");

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    /*
     * A request of a "scep on" location, wherever an internal redirect
     * (error_page) took it since: the settings are its location's
     */

    ctx = ngx_http_scep_get_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_header_filter(r);
    }

    slcf = ctx->conf;

    /*
     * nginx answers 502 when the balancer has no peer; when the health
     * checks took them all out, or scep_backend_limit found them all
     * full, a SCEP client is better told 503 and when to come back
     */

    if (r->headers_out.status == NGX_HTTP_BAD_GATEWAY
        && (ctx->no_healthy || ctx->backend_full))
    {

        r->headers_out.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        r->headers_out.status_line.len = 0;

        if (r->err_status) {
            /* what $status and the counters read */
            r->err_status = NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        /* the page of an error_page stays; nginx's own is replaced */

        if (!r->error_page) {
            ctx->replace_body = 1;

            if (ngx_http_scep_replaced_body(r, ctx, &body) != NGX_OK) {
                return NGX_ERROR;
            }

            r->headers_out.content_length_n = body.len;
            ngx_str_set(&r->headers_out.content_type, "text/plain");
            r->headers_out.content_type_len =
                                         r->headers_out.content_type.len;
            r->headers_out.content_type_lowcase = NULL;
            r->headers_out.charset.len = 0;

            if (r->headers_out.content_length) {
                r->headers_out.content_length->hash = 0;
                r->headers_out.content_length = NULL;
            }
        }
    }

    if ((r->headers_out.status != NGX_HTTP_TOO_MANY_REQUESTS
         && r->headers_out.status != NGX_HTTP_SERVICE_UNAVAILABLE)
        || slcf->retry_after == 0)
    {
        return ngx_http_next_header_filter(r);
    }

    /* keep a Retry-After that the back end sent */

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0
            && h[i].key.len == sizeof("Retry-After") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               sizeof("Retry-After") - 1)
               == 0)
        {
            return ngx_http_next_header_filter(r);
        }
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;
    value.len = ngx_sprintf(p, "%T", slcf->retry_after) - p;

    if (ngx_http_scep_add_header(r, &retry_after, &value) == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* the text that replaces nginx's 502 page: why there is no server */

static ngx_int_t
ngx_http_scep_replaced_body(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_str_t *body)
{
    u_char     *p;
    ngx_str_t   token, text;

    if (!ctx->backend_full) {
        *body = ngx_http_scep_no_healthy_text;
        return NGX_OK;
    }

    ngx_http_scep_reject_token(ctx, &token);
    (void) ngx_http_scep_reject_text(ctx, &text);

    p = ngx_pnalloc(r->pool, token.len + text.len + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = ngx_sprintf(p, "%V: %V\n", &token, &text) - p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_no_healthy_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_str_t             body;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_http_scep_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_scep_module);

    if (ctx == NULL || !ctx->replace_body) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's own 502 page is dropped for the 503 text, sent once */

    ctx->replace_body = 0;

    if (r->header_only) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_scep_replaced_body(r, ctx, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    b->pos = body.data;
    b->last = b->pos + body.len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
