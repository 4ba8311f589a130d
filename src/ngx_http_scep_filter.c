
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Retry-After on the 429 and 503 answers of SCEP locations, whoever
 * made them (limit_req, the back end, the gateway), so that devices
 * back off instead of retrying at once.
 */


#include "ngx_http_scep_module.h"


static ngx_int_t ngx_http_scep_retry_after_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


ngx_int_t
ngx_http_scep_retry_after_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_scep_retry_after_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_retry_after_filter(ngx_http_request_t *r)
{
    u_char                    *p;
    ngx_uint_t                 i;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_http_scep_loc_conf_t  *slcf;

    if (r != r->main
        || (r->headers_out.status != NGX_HTTP_TOO_MANY_REQUESTS
            && r->headers_out.status != NGX_HTTP_SERVICE_UNAVAILABLE))
    {
        return ngx_http_next_header_filter(r);
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);

    if (!slcf->enable || slcf->retry_after == 0) {
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

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%T", slcf->retry_after) - p;

    return ngx_http_next_header_filter(r);
}
