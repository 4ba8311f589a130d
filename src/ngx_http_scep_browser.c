
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The browser test of Microsoft's NDES troubleshooting: an admin opens
 * the SCEP URL in a browser, a GET without a query string, and NDES
 * with the Intune Certificate Connector answers 403.  The gateway
 * answers it itself, after access control, with what it knows of the
 * back ends: 403 while one of them is up, 503 (and Retry-After, from
 * the header filter) when none is.  Nothing of it reaches a back end.
 */


#include "ngx_http_scep_module.h"


static ngx_str_t  ngx_http_scep_browser_up =
    ngx_string("browser_test: a SCEP endpoint behind a gateway; NDES"
               " answers 403 here when all is well");

static ngx_str_t  ngx_http_scep_browser_down =
    ngx_string("browser_test: a SCEP endpoint behind a gateway; no SCEP"
               " server behind it is up now");


/*
 * "Bare": a GET or HEAD without a query string, or with an empty one
 * ("mscep.dll?").  A query string without "operation" stays
 * missing_operation, and so does a POST.
 */

ngx_uint_t
ngx_http_scep_browser_bare(ngx_http_request_t *r)
{
    return (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) && r->args.len == 0;
}


ngx_int_t
ngx_http_scep_browser_answer(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    size_t                     len;
    ngx_str_t                  page, *text;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, up, status;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_upstream_t  *hc;
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ctx->conf;

    /*
     * The location's upstream under scep_health_check, if it has one.
     * A server marked "down" is probed as the others, but nginx sends
     * it nothing: it is never up.
     */

    hc = ngx_http_scep_location_health(r);
    up = 0;

    if (hc) {
        peer = hc->peers.elts;

        for (i = 0; i < hc->peers.nelts; i++) {
            if (!peer[i].down && ngx_http_scep_peer_healthy(&peer[i])) {
                up++;
            }
        }
    }

    if (hc && up == 0) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        text = &ngx_http_scep_browser_down;

    } else {
        status = NGX_HTTP_FORBIDDEN;
        text = &ngx_http_scep_browser_up;
    }

    page.len = 0;

    if (slcf->status_page
        && ngx_http_complex_value(r, slcf->status_page, &page) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->rejected = 1;

    if (hc) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "scep: browser test answered %ui, %ui of %ui back"
                      " ends up", status, up, hc->peers.nelts);

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "scep: browser test answered %ui, back ends not"
                      " health-checked", status);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* room for the first line, either form of the second, the third */

    len = text->len + 1
          + sizeof("back ends: not health-checked by the gateway\n") - 1
          + sizeof("back ends up:  of \n") - 1 + 2 * NGX_INT_T_LEN
          + sizeof("status page: \n") - 1 + page.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "%V\n", text);

    if (hc) {
        b->last = ngx_sprintf(b->last, "back ends up: %ui of %ui\n",
                              up, hc->peers.nelts);

    } else {
        b->last = ngx_sprintf(b->last, "back ends: not health-checked by"
                              " the gateway\n");
    }

    if (page.len) {
        b->last = ngx_sprintf(b->last, "status page: %V\n", &page);
    }

    return ngx_http_scep_send_text(r, status, b);
}
