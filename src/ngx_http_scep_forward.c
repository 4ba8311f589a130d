
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Streaming BER forwarded as DER (scep_forward_der): a pkiMessage that
 * passed its checks in BER is re-encoded by scep_der.c, and the back end
 * gets the DER form, in the canonical query of a GET or as the body of
 * a POST.  A message in DER already goes on as it came, uncopied.
 */


#include "ngx_http_scep_module.h"
#include "scep_der.h"


static ngx_int_t ngx_http_scep_replace_body(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);


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
        return ngx_http_scep_replace_body(r, ctx);
    }

    /* a GET: the canonical query is made of ctx->fwd */

    return NGX_OK;
}


/*
 * The body that proxy_pass sends is r->request_body->bufs, and the
 * Content-Length it sends is r->headers_in.content_length_n (the
 * client's, or what a chunked body came to).
 */

static ngx_int_t
ngx_http_scep_replace_body(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char       *p;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->start = ctx->fwd;
    b->pos = ctx->fwd;
    b->last = ctx->fwd + ctx->fwd_len;
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

    r->headers_in.content_length_n = ctx->fwd_len;

    if (r->headers_in.content_length) {
        p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        r->headers_in.content_length->value.data = p;
        r->headers_in.content_length->value.len =
                                  ngx_sprintf(p, "%uz", ctx->fwd_len) - p;
    }

    return NGX_OK;
}
