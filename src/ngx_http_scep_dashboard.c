
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * scep_status in a browser: "?format=html" answers one self-contained
 * page (no external script, style or font: DMZ consoles often have no
 * internet) whose script reads the JSON of the same location every few
 * seconds and draws the gateway, its back ends and its traffic.
 *
 * The page's one inline style sheet and one inline script are allowed by
 * their SHA-256 hashes in a Content-Security-Policy that allows nothing
 * else: no other script, no event handler attribute, no style attribute,
 * no connection but to this origin, no framing; Trusted Types forbid
 * markup from strings.  The script writes every value from the gateway
 * with textContent, so a back end's reason that holds markup is shown
 * as text.
 *
 * Hashes rather than a second URL for the script: the page stays one
 * response, and the policy admits exactly this script, where 'self'
 * would admit anything the origin serves.  They are computed from the
 * bytes served when the configuration is read, so the page can be
 * edited with no hash to keep in step, and a request only sends the
 * policy made then.
 *
 * The page's sources are src/dashboard/: index.html, dashboard.css and
 * dashboard.js.  The build turns them into ngx_http_scep_dashboard_page.h
 * (src/dashboard/embed, run by the rule of config.make), the page in
 * five byte arrays: the head, the style sheet, the body, the script and
 * the tail.
 */


#include "ngx_http_scep_module.h"

/* after nginx's headers: ngx_config.h must come first */
#include <openssl/evp.h>

/* made at build time from src/dashboard/ */
#include <ngx_http_scep_dashboard_page.h>


/* "'sha256-" base64 of 32 bytes "'" */
#define NGX_HTTP_SCEP_DASHBOARD_HASH_LEN  (sizeof("'sha256-'") - 1 + 44)


static void ngx_http_scep_dashboard_hash(u_char *md, u_char *out);


/*
 * The page's Content-Security-Policy, made once per configuration with
 * a scep_status location, in the configuration's pool.
 */

ngx_int_t
ngx_http_scep_dashboard_init(ngx_conf_t *cf, ngx_http_scep_main_conf_t *smcf)
{
    u_char        *csp, *p;
    u_char         js_md[EVP_MAX_MD_SIZE], css_md[EVP_MAX_MD_SIZE];
    size_t         len;
    unsigned int   js_len, css_len;

    static const char  csp_script[] = "default-src 'none'; script-src ";
    static const char  csp_style[] = "; style-src ";
    static const char  csp_rest[] = "; connect-src 'self'; img-src 'none';"
                                    " base-uri 'none'; form-action 'none';"
                                    " frame-ancestors 'none';"
                                    " require-trusted-types-for 'script';"
                                    " trusted-types 'none'";

    if (smcf->dashboard_csp.len) {
        return NGX_OK;
    }

    if (EVP_Digest(ngx_http_scep_dashboard_js,
                   sizeof(ngx_http_scep_dashboard_js), js_md, &js_len,
                   EVP_sha256(), NULL)
        != 1
        || EVP_Digest(ngx_http_scep_dashboard_css,
                      sizeof(ngx_http_scep_dashboard_css), css_md, &css_len,
                      EVP_sha256(), NULL)
           != 1
        || js_len != 32 || css_len != 32)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "scep_status: EVP_Digest(SHA-256) failed");
        return NGX_ERROR;
    }

    len = sizeof(csp_script) - 1 + NGX_HTTP_SCEP_DASHBOARD_HASH_LEN
          + sizeof(csp_style) - 1 + NGX_HTTP_SCEP_DASHBOARD_HASH_LEN
          + sizeof(csp_rest) - 1;

    csp = ngx_pnalloc(cf->pool, len);
    if (csp == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(csp, csp_script, sizeof(csp_script) - 1);

    ngx_http_scep_dashboard_hash(js_md, p);

    p += NGX_HTTP_SCEP_DASHBOARD_HASH_LEN;
    p = ngx_cpymem(p, csp_style, sizeof(csp_style) - 1);

    ngx_http_scep_dashboard_hash(css_md, p);

    p += NGX_HTTP_SCEP_DASHBOARD_HASH_LEN;
    p = ngx_cpymem(p, csp_rest, sizeof(csp_rest) - 1);

    smcf->dashboard_csp.data = csp;
    smcf->dashboard_csp.len = p - csp;

    return NGX_OK;
}


ngx_int_t
ngx_http_scep_dashboard(ngx_http_request_t *r)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_uint_t                  i;
    ngx_chain_t                 out[5];
    ngx_str_t                   parts[5];
    ngx_http_scep_main_conf_t  *smcf;

    static ngx_str_t  csp = ngx_string("Content-Security-Policy");
    static ngx_str_t  headers[] = {
        ngx_string("X-Content-Type-Options"), ngx_string("nosniff"),
        ngx_string("Referrer-Policy"), ngx_string("no-referrer"),
        ngx_string("Cache-Control"), ngx_string("no-store")
    };

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (ngx_http_scep_add_header(r, &csp, &smcf->dashboard_csp) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < sizeof(headers) / sizeof(ngx_str_t); i += 2) {
        if (ngx_http_scep_add_header(r, &headers[i], &headers[i + 1])
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* read-only data: the buffers are memory, never written */
    parts[0].data = (u_char *) ngx_http_scep_dashboard_head;
    parts[0].len = sizeof(ngx_http_scep_dashboard_head);
    parts[1].data = (u_char *) ngx_http_scep_dashboard_css;
    parts[1].len = sizeof(ngx_http_scep_dashboard_css);
    parts[2].data = (u_char *) ngx_http_scep_dashboard_body;
    parts[2].len = sizeof(ngx_http_scep_dashboard_body);
    parts[3].data = (u_char *) ngx_http_scep_dashboard_js;
    parts[3].len = sizeof(ngx_http_scep_dashboard_js);
    parts[4].data = (u_char *) ngx_http_scep_dashboard_tail;
    parts[4].len = sizeof(ngx_http_scep_dashboard_tail);

    len = 0;

    for (i = 0; i < 5; i++) {
        len += parts[i].len;
    }

    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    for (i = 0; i < 5; i++) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = parts[i].data;
        b->last = parts[i].data + parts[i].len;
        b->memory = 1;

        out[i].buf = b;
        out[i].next = (i < 4) ? &out[i + 1] : NULL;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    return ngx_http_output_filter(r, &out[0]);
}


/* writes 'sha256-BASE64' of a digest, NGX_HTTP_SCEP_DASHBOARD_HASH_LEN bytes */

static void
ngx_http_scep_dashboard_hash(u_char *md, u_char *out)
{
    ngx_str_t  digest, b64;

    digest.data = md;
    digest.len = 32;

    out = ngx_cpymem(out, "'sha256-", 8);
    b64.data = out;
    ngx_encode_base64(&b64, &digest);
    out[b64.len] = '\'';
}
