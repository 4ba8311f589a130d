
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

/* the third line: whether the probes check the Intune connector */

static ngx_str_t  ngx_http_scep_browser_intune =
    ngx_string("intune: the Intune connector's answer is checked by the"
               " gateway's probes");

static ngx_str_t  ngx_http_scep_browser_no_intune =
    ngx_string("intune: the gateway's probes do not check the Intune"
               " connector (scep_health_check ... intune)");


static u_char *ngx_http_scep_browser_escape(u_char *dst, ngx_str_t *src);


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
    size_t                     len, n;
    ngx_int_t                  rc;
    ngx_str_t                  page, *text, *probes;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, up, status;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_upstream_t  *hc;
    ngx_http_scep_loc_conf_t  *slcf;

    /* after an internal redirect: the location that answers, as health */

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    /*
     * The location's upstream under scep_health_check, if it has one.
     * A server marked "down" is probed as the others, but nginx sends
     * it nothing: it is never up.
     */

    hc = ngx_http_scep_location_health(r);
    up = 0;
    probes = NULL;

    if (hc) {
        peer = hc->peers.elts;

        for (i = 0; i < hc->peers.nelts; i++) {
            if (!peer[i].down && ngx_http_scep_peer_healthy(&peer[i])) {
                up++;
            }
        }

        probes = hc->intune ? &ngx_http_scep_browser_intune
                            : &ngx_http_scep_browser_no_intune;
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

    /* what the escapes of ngx_http_scep_browser_escape() add */

    for (i = 0, n = 0; i < page.len; i++) {
        if (page.data[i] < 0x20 || page.data[i] >= 0x7f) {
            n++;
        }
    }

    /* a body nginx refuses (a bad chunk) gets nginx's answer, 400 */

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    /* the answer is the gateway's from here: $scep_reject_reason, stats */

    ctx->rejected = 1;

    if (hc) {
        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: browser test (%V) answered %ui, %ui of %ui"
                      " back ends up, Intune connector %s",
                      &r->method_name, status, up, hc->peers.nelts,
                      hc->intune ? "probed" : "not probed");

    } else {
        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: browser test (%V) answered %ui, back ends"
                      " not health-checked", &r->method_name, status);
    }

    /* room for the first line, either form of the second, the third */

    len = text->len + 1
          + sizeof("back ends: not health-checked by the gateway\n") - 1
          + sizeof("back ends up:  of \n") - 1 + 2 * NGX_INT_T_LEN
          + ngx_http_scep_browser_no_intune.len + 1
          + sizeof("status page: \n") - 1 + page.len + 2 * n;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "%V\n", text);

    if (hc) {
        b->last = ngx_sprintf(b->last, "back ends up: %ui of %ui\n%V\n",
                              up, hc->peers.nelts, probes);

    } else {
        b->last = ngx_sprintf(b->last, "back ends: not health-checked by"
                              " the gateway\n");
    }

    if (page.len) {
        b->last = ngx_cpymem(b->last, "status page: ",
                             sizeof("status page: ") - 1);
        b->last = ngx_http_scep_browser_escape(b->last, &page);
        *b->last++ = '\n';
    }

    return ngx_http_scep_send_text(r, status, b);
}


/*
 * The status page's URL as the body's line: what its variables hold may
 * come from the client ($host, $uri decoded, $arg_...).  Control
 * characters, CR and LF among them, and bytes that are not ASCII are
 * percent-encoded, so that no value adds a line or a byte a terminal
 * reads as a command.
 */

static u_char *
ngx_http_scep_browser_escape(u_char *dst, ngx_str_t *src)
{
    u_char      c;
    ngx_uint_t  i;

    static u_char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < src->len; i++) {
        c = src->data[i];

        if (c < 0x20 || c >= 0x7f) {
            *dst++ = '%';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
            continue;
        }

        *dst++ = c;
    }

    return dst;
}
