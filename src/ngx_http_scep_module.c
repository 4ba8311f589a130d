
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Directives, configuration, the buffer check and the variables.
 */


#include "ngx_http_scep_module.h"


static ngx_int_t ngx_http_scep_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_scep_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_scep_check_buffers(ngx_conf_t *cf);
static ngx_int_t ngx_http_scep_check_buffer(ngx_conf_t *cf,
    ngx_http_core_srv_conf_t *cscf, ngx_str_t *addr,
    ngx_http_scep_srv_conf_t *used);
static void *ngx_http_scep_create_main_conf(ngx_conf_t *cf);
static ngx_int_t ngx_http_scep_crypto_init(ngx_conf_t *cf);
static void ngx_http_scep_crypto_cleanup(void *data);
static void *ngx_http_scep_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_scep_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_scep_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_scep_check_body_buffer(ngx_conf_t *cf,
    ngx_http_scep_loc_conf_t *slcf);
static u_char *ngx_http_scep_size(u_char *buf, size_t size);
static char *ngx_http_scep(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_scep_algorithms(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_scep_ca_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_scep_init_process(ngx_cycle_t *cycle);

static void ngx_http_scep_variable_set(ngx_http_variable_value_t *v,
    u_char *data, size_t len);
static ngx_int_t ngx_http_scep_operation_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_scep_message_length_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_scep_reject_reason_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_scep_message_type_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_scep_transaction_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_scep_sender_nonce_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static char *ngx_http_scep_check_max_message(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_t  ngx_http_scep_max_message_post = {
    ngx_http_scep_check_max_message
};


static ngx_conf_enum_t  ngx_http_scep_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_scep_check_responses[] = {
    { ngx_string("off"), NGX_HTTP_SCEP_RESP_OFF },
    { ngx_string("log"), NGX_HTTP_SCEP_RESP_LOG },
    { ngx_string("on"), NGX_HTTP_SCEP_RESP_ON },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_scep_forward_methods[] = {
    { ngx_string("get"), NGX_HTTP_SCEP_FWD_GET },
    { ngx_string("post"), NGX_HTTP_SCEP_FWD_POST },
    { ngx_string("auto"), NGX_HTTP_SCEP_FWD_AUTO },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_scep_ca_cache_idents[] = {
    { ngx_string("any"), NGX_HTTP_SCEP_IDENT_ANY },
    { ngx_string("probe"), NGX_HTTP_SCEP_IDENT_PROBE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_scep_commands[] = {

    { ngx_string("scep"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_scep,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, enable),
      NULL },

    { ngx_string("scep_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, max_message),
      &ngx_http_scep_max_message_post },

    { ngx_string("scep_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, log_level),
      &ngx_http_scep_log_levels },

    { ngx_string("scep_retry_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, retry_after),
      NULL },

    { ngx_string("scep_browser_test"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, browser_test),
      NULL },

    { ngx_string("scep_status_page"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, status_page),
      NULL },

    { ngx_string("scep_algorithms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_scep_algorithms,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, algorithms),
      NULL },

    { ngx_string("scep_body_before_limits"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, body_before_limits),
      NULL },

    { ngx_string("scep_pass_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, pass_credentials),
      NULL },

    { ngx_string("scep_check_recipient"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, check_recipient),
      NULL },

    { ngx_string("scep_check_renewal"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, check_renewal),
      NULL },

    { ngx_string("scep_renewal_grace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, renewal_grace),
      NULL },

    { ngx_string("scep_crl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_scep_crl,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_check_response"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, check_response),
      &ngx_http_scep_check_responses },

    { ngx_string("scep_forward_der"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, forward_der),
      NULL },

    { ngx_string("scep_forward_method"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, forward_method),
      &ngx_http_scep_forward_methods },

    { ngx_string("scep_health_check"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_scep_health_check,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_backend_limit"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE123,
      ngx_http_scep_backend_limit,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_trusted_ca"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_scep_trusted_ca,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_scep_status,
      0,
      0,
      NULL },

    { ngx_string("scep_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_scep_main_conf_t, zone_size),
      NULL },

    { ngx_string("scep_ca_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_scep_ca_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, ca_cache),
      NULL },

    { ngx_string("scep_ca_cache_valid"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, ca_cache_valid),
      NULL },

    { ngx_string("scep_ca_cache_ident"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_scep_loc_conf_t, ca_cache_ident),
      &ngx_http_scep_ca_cache_idents },

    { ngx_string("scep_replay_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_scep_replay_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_replay_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_scep_replay_window,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scep_pending_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_scep_pending_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_scep_module_ctx = {
    ngx_http_scep_add_variables,           /* preconfiguration */
    ngx_http_scep_init,                    /* postconfiguration */

    ngx_http_scep_create_main_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_scep_create_srv_conf,         /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_scep_create_loc_conf,         /* create location configuration */
    ngx_http_scep_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_scep_module = {
    NGX_MODULE_V1,
    &ngx_http_scep_module_ctx,             /* module context */
    ngx_http_scep_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_scep_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_scep_vars[] = {

    { ngx_string("scep_operation"), NULL,
      ngx_http_scep_operation_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_message_length"), NULL,
      ngx_http_scep_message_length_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_reject_reason"), NULL,
      ngx_http_scep_reject_reason_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_message_type"), NULL,
      ngx_http_scep_message_type_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_transaction_id"), NULL,
      ngx_http_scep_transaction_id_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_sender_nonce"), NULL,
      ngx_http_scep_sender_nonce_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_cache"), NULL,
      ngx_http_scep_cache_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_pki_status"), NULL,
      ngx_http_scep_response_variable, NGX_HTTP_SCEP_VAR_PKI_STATUS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_fail_info"), NULL,
      ngx_http_scep_response_variable, NGX_HTTP_SCEP_VAR_FAIL_INFO,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("scep_response_check"), NULL,
      ngx_http_scep_response_variable, NGX_HTTP_SCEP_VAR_RESPONSE_CHECK,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_scep_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_scep_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (ngx_http_scep_check_buffers(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_scep_crypto_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * A request's steps, one handler a phase (ngx_http_scep_phases.c).
     * Handlers added here run before nginx's own of the same phase.
     *
     * Rewrite: the query string, and a GET's message but its signature,
     * for the $scep_* variables that limit_req, limit_conn, map and the
     * balancers use.  Nothing is answered here.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_scep_rewrite_handler;

    /*
     * Server rewrite: after an internal redirect to a URI, a GET that
     * was forwarded as a POST is a GET again, before the new location's
     * client_max_body_size sees the Content-Length of its message.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_scep_server_rewrite_handler;

    /*
     * Preaccess and access are nginx's: limit_req, limit_conn,
     * allow/deny, auth_basic, auth_request.  A request they refuse gets
     * their answer, and costs no POST body and no signature.
     *
     * Precontent: the POST body, the signature, the replay window, then
     * every answer the module gives itself: the browser test, rejections
     * and the CA cache.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_scep_precontent_handler;

    /* Log: the replay window forgets what no back end got; counters */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_scep_log_handler;

    if (ngx_http_scep_limit_postconf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_scep_health_postconf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_scep_cache_init(cf) != NGX_OK
        || ngx_http_scep_replay_init(cf) != NGX_OK
        || ngx_http_scep_pending_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_scep_stats_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_scep_recipient_init(cf);

    /* the back ends' answers to PKIOperations: read, checked, counted */

    ngx_http_scep_response_init(cf);

    return ngx_http_scep_retry_after_init(cf);
}


/*
 * The digests and the RSA key maker that the message checks use are
 * fetched from OpenSSL once a configuration, not at every check; the
 * workers inherit them, each its own copy, and they go with the cycle.
 */

static ngx_int_t
ngx_http_scep_crypto_init(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (!smcf->any) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    smcf->crypto = scep_crypto_new();
    if (smcf->crypto == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "scep: scep_crypto_new() failed: out of memory");
        return NGX_ERROR;
    }

    cln->handler = ngx_http_scep_crypto_cleanup;
    cln->data = smcf->crypto;

    return NGX_OK;
}


static void
ngx_http_scep_crypto_cleanup(void *data)
{
    scep_crypto_t  *crypto = data;

    scep_crypto_free(crypto);
}


/*
 * nginx reads the request line with the header buffers of the server
 * that the connection starts in: the default server of the listen
 * address, or the one chosen by SNI.  A SCEP query string of 65534
 * bytes needs one large header buffer bigger than that in both.
 */

#define ngx_http_scep_srv_conf(cscf)                                        \
    ((ngx_http_scep_srv_conf_t *)                                             \
        (cscf)->ctx->srv_conf[ngx_http_scep_module.ctx_index])


static ngx_int_t
ngx_http_scep_check_buffers(ngx_conf_t *cf)
{
    ngx_uint_t                   s, p, a;
    ngx_http_conf_port_t        *port;
    ngx_http_conf_addr_t        *addr;
    ngx_http_core_srv_conf_t   **cscfp, **servers;
    ngx_http_scep_srv_conf_t    *sscf, *used;
    ngx_http_scep_main_conf_t   *smcf;
    ngx_http_core_main_conf_t   *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        sscf = ngx_http_scep_srv_conf(cscfp[s]);

        if (smcf->used && !sscf->used) {
            sscf->used = 1;
            sscf->file = smcf->file;
            sscf->line = smcf->line;
        }

        if (sscf->used
            && ngx_http_scep_check_buffer(cf, cscfp[s], NULL, sscf)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (cmcf->ports == NULL) {
        return NGX_OK;
    }

    port = cmcf->ports->elts;

    for (p = 0; p < cmcf->ports->nelts; p++) {

        addr = port[p].addrs.elts;

        for (a = 0; a < port[p].addrs.nelts; a++) {

            servers = addr[a].servers.elts;
            used = NULL;

            for (s = 0; s < addr[a].servers.nelts; s++) {
                sscf = ngx_http_scep_srv_conf(servers[s]);

                if (sscf->used) {
                    used = sscf;
                    break;
                }
            }

            if (used == NULL) {
                continue;
            }

            if (ngx_http_scep_check_buffer(cf, addr[a].default_server,
                                           &addr[a].opt.addr_text, used)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_check_buffer(ngx_conf_t *cf, ngx_http_core_srv_conf_t *cscf,
    ngx_str_t *addr, ngx_http_scep_srv_conf_t *used)
{
    if (cscf->large_client_header_buffers.size >= NGX_HTTP_SCEP_MIN_HDR_BUFFER)
    {
        return NGX_OK;
    }

    if (addr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep\" in %s:%ui needs \"large_client_header_buffers\""
                      " of at least %uzk in the default server of %V, which"
                      " reads the request line of every connection to it,"
                      " but it has %uz bytes: SCEP query strings are up to"
                      " %d bytes long; add \"large_client_header_buffers"
                      " 4 72k;\" to the http block or to that server",
                      used->file, used->line,
                      (size_t) NGX_HTTP_SCEP_MIN_HDR_BUFFER / 1024, addr,
                      cscf->large_client_header_buffers.size,
                      NGX_HTTP_SCEP_MAX_QUERY);

    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep\" in %s:%ui needs \"large_client_header_buffers\""
                      " of at least %uzk in its server, but it has %uz"
                      " bytes: SCEP query strings are up to %d bytes long;"
                      " add \"large_client_header_buffers 4 72k;\" to the"
                      " http block or to that server",
                      used->file, used->line,
                      (size_t) NGX_HTTP_SCEP_MIN_HDR_BUFFER / 1024,
                      cscf->large_client_header_buffers.size,
                      NGX_HTTP_SCEP_MAX_QUERY);
    }

    return NGX_ERROR;
}


static void *
ngx_http_scep_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_scep_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->used = 0;
     *     smcf->file = NULL;
     *     smcf->line = 0;
     *     smcf->shm_zone = NULL;
     *     smcf->dashboard_csp = { 0, NULL };
     */

    if (ngx_array_init(&smcf->upstreams, cf->pool, 4,
                       sizeof(ngx_http_scep_upstream_t *))
        != NGX_OK)
    {
        return NULL;
    }

    smcf->zone_size = NGX_CONF_UNSET_SIZE;

    return smcf;
}


static void *
ngx_http_scep_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_scep_srv_conf_t  *sscf;

    sscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_scep_srv_conf_t));
    if (sscf == NULL) {
        return NULL;
    }

    return sscf;
}


static void *
ngx_http_scep_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_scep_loc_conf_t));
    if (slcf == NULL) {
        return NULL;
    }

    slcf->enable = NGX_CONF_UNSET;
    slcf->max_message = NGX_CONF_UNSET_SIZE;
    slcf->log_level = NGX_CONF_UNSET_UINT;
    slcf->retry_after = NGX_CONF_UNSET;
    slcf->algorithms = NGX_CONF_UNSET_UINT;
    slcf->pass_credentials = NGX_CONF_UNSET;
    slcf->body_before_limits = NGX_CONF_UNSET;
    slcf->check_recipient = NGX_CONF_UNSET;
    slcf->forward_der = NGX_CONF_UNSET;
    slcf->forward_method = NGX_CONF_UNSET_UINT;
    slcf->ca_cache = NGX_CONF_UNSET;
    slcf->ca_cache_valid = NGX_CONF_UNSET;
    slcf->ca_cache_ident = NGX_CONF_UNSET_UINT;
    slcf->replay_window = NGX_CONF_UNSET_MSEC;
    slcf->check_response = NGX_CONF_UNSET_UINT;
    slcf->check_renewal = NGX_CONF_UNSET;
    slcf->renewal_grace = NGX_CONF_UNSET;
    slcf->crl = NGX_CONF_UNSET_PTR;
    slcf->status_page = NGX_CONF_UNSET_PTR;
    slcf->browser_test = NGX_CONF_UNSET;

    return slcf;
}


static char *
ngx_http_scep_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_scep_loc_conf_t *prev = parent;
    ngx_http_scep_loc_conf_t *conf = child;

    if (conf->enable == NGX_CONF_UNSET) {
        conf->file = prev->file;
        conf->line = prev->line;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_size_value(conf->max_message, prev->max_message,
                              64 * 1024);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_INFO);
    ngx_conf_merge_sec_value(conf->retry_after, prev->retry_after, 30);
    ngx_conf_merge_uint_value(conf->algorithms, prev->algorithms,
                              SCEP_ALG_DEFAULT);
    ngx_conf_merge_value(conf->pass_credentials, prev->pass_credentials, 0);
    ngx_conf_merge_value(conf->body_before_limits, prev->body_before_limits,
                         0);
    ngx_conf_merge_value(conf->check_recipient, prev->check_recipient, 1);
    ngx_conf_merge_value(conf->forward_der, prev->forward_der, 1);
    ngx_conf_merge_uint_value(conf->forward_method, prev->forward_method,
                              NGX_HTTP_SCEP_FWD_GET);
    ngx_conf_merge_value(conf->ca_cache, prev->ca_cache, 0);
    ngx_conf_merge_sec_value(conf->ca_cache_valid, prev->ca_cache_valid,
                             3600);
    ngx_conf_merge_uint_value(conf->ca_cache_ident, prev->ca_cache_ident,
                              NGX_HTTP_SCEP_IDENT_ANY);
    ngx_conf_merge_msec_value(conf->replay_window, prev->replay_window, 0);
    ngx_conf_merge_uint_value(conf->check_response, prev->check_response,
                              NGX_HTTP_SCEP_RESP_LOG);
    ngx_conf_merge_value(conf->check_renewal, prev->check_renewal, 1);
    ngx_conf_merge_sec_value(conf->renewal_grace, prev->renewal_grace, 0);
    ngx_conf_merge_ptr_value(conf->crl, prev->crl, NULL);
    ngx_conf_merge_ptr_value(conf->status_page, prev->status_page, NULL);
    ngx_conf_merge_value(conf->browser_test, prev->browser_test, 1);

    if (conf->enable) {
        return ngx_http_scep_check_body_buffer(cf, conf);
    }

    return NGX_CONF_OK;
}


/*
 * A POSTed pkiMessage must be read into memory: reading back a body that
 * nginx spooled to a temporary file would block the worker.  nginx
 * spools a body whose length it does not know (chunked, or HTTP/2
 * without a length) as soon as it fills the buffer before the end of
 * the stream is seen, so the buffer must be larger than the largest
 * message, not just as large.  The core module's location configuration
 * is merged before this module's (the http modules are merged in turn),
 * and while a location is merged cf->ctx holds its configurations.
 */

static char *
ngx_http_scep_check_body_buffer(ngx_conf_t *cf, ngx_http_scep_loc_conf_t *slcf)
{
    u_char                    have[NGX_SIZE_T_LEN + 2];
    u_char                    max[NGX_SIZE_T_LEN + 2];
    u_char                    need[NGX_SIZE_T_LEN + 2];
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->client_body_in_file_only) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"client_body_in_file_only\" is not off in a"
                      " \"scep on\" location (\"scep on\" in %s:%ui): a"
                      " POSTed pkiMessage is read in memory; set"
                      " client_body_in_file_only off there",
                      slcf->file, slcf->line);
        return NGX_CONF_ERROR;
    }

    if (clcf->client_body_buffer_size > slcf->max_message) {
        return NGX_CONF_OK;
    }

    *ngx_http_scep_size(have, clcf->client_body_buffer_size) = '\0';
    *ngx_http_scep_size(max, slcf->max_message) = '\0';

    /* the next kilobyte above */
    *ngx_http_scep_size(need, (slcf->max_message / 1024 + 1) * 1024) = '\0';

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "\"client_body_buffer_size\" %s must be larger than"
                  " \"scep_max_message\" %s in a \"scep on\" location"
                  " (\"scep on\" in %s:%ui): set client_body_buffer_size %s"
                  " or more, so that a POSTed pkiMessage is read in memory",
                  have, max, slcf->file, slcf->line, need);

    return NGX_CONF_ERROR;
}


/* a size as nginx's configuration writes it: "64k", "2m" or bytes */

static u_char *
ngx_http_scep_size(u_char *buf, size_t size)
{
    if (size && size % (1024 * 1024) == 0) {
        return ngx_sprintf(buf, "%uzm", size / (1024 * 1024));
    }

    if (size && size % 1024 == 0) {
        return ngx_sprintf(buf, "%uzk", size / 1024);
    }

    return ngx_sprintf(buf, "%uz", size);
}


static char *
ngx_http_scep(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    char                       *rv;
    ngx_http_scep_srv_conf_t   *sscf;
    ngx_http_scep_main_conf_t  *smcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK || !slcf->enable) {
        return rv;
    }

    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
    smcf->any = 1;

    /* remember where SCEP is served, for the buffer check */

    if (cf->cmd_type == NGX_HTTP_MAIN_CONF) {

        if (!smcf->used) {
            smcf->used = 1;
            smcf->file = cf->conf_file->file.name.data;
            smcf->line = cf->conf_file->line;
        }

        return NGX_CONF_OK;
    }

    sscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_scep_module);

    if (!sscf->used) {
        sscf->used = 1;
        sscf->file = cf->conf_file->file.name.data;
        sscf->line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


/* the probes keep their answers only where some location serves them */

static char *
ngx_http_scep_ca_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    char                       *rv;
    ngx_http_scep_main_conf_t  *smcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK && slcf->ca_cache) {
        smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
        smcf->cache_used = 1;
    }

    return rv;
}


static ngx_int_t
ngx_http_scep_init_process(ngx_cycle_t *cycle)
{
    ngx_http_scep_limit_init_process(cycle);

    return ngx_http_scep_check_init_process(cycle);
}


static char *
ngx_http_scep_algorithms(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    uint32_t    bits;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (slcf->algorithms != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    slcf->algorithms = 0;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        bits = scep_algorithm_bits((char *) value[i].data, value[i].len);

        if (bits == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown algorithm \"%V\" in"
                               " \"scep_algorithms\", use md5, sha1, sha224,"
                               " sha256, sha384, sha512, des, des3, aes128,"
                               " aes192, aes256 or aes", &value[i]);
            return NGX_CONF_ERROR;
        }

        slcf->algorithms |= bits;
    }

    if (!(slcf->algorithms & (SCEP_ALG_MD5|SCEP_ALG_SHA1|SCEP_ALG_SHA224
                              |SCEP_ALG_SHA256|SCEP_ALG_SHA384
                              |SCEP_ALG_SHA512)))
    {
        return "allows no digest algorithm: name at least one of"
               " sha1, sha224, sha256, sha384, sha512 or md5";
    }

    if (!(slcf->algorithms & (SCEP_ALG_DES|SCEP_ALG_DES3|SCEP_ALG_AES128
                              |SCEP_ALG_AES192|SCEP_ALG_AES256)))
    {
        return "allows no content-encryption algorithm: name at least one"
               " of aes, aes128, aes192, aes256, des3 or des";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_scep_check_max_message(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp == 0 || *sp > NGX_HTTP_SCEP_MAX_MESSAGE) {
        return "must be between 1 and 2m: a pkiMessage is a few kilobytes,"
               " and SCEP servers refuse bodies over 2 MiB";
    }

    return NGX_CONF_OK;
}


/* a found, cacheable value of one of the variables */

static void
ngx_http_scep_variable_set(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}


static ngx_int_t
ngx_http_scep_operation_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    if (ctx == NULL || ctx->operation.data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_scep_variable_set(v, ctx->operation.data, ctx->operation.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_message_length_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p, *last;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    if (ctx == NULL || !ctx->has_message) {
        if (ctx) {
            ngx_http_scep_body_wanted(r->main, ctx);
        }

        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_sprintf(p, "%uz", ctx->der_len);

    ngx_http_scep_variable_set(v, p, last - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_reject_reason_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             token;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    if (ctx == NULL || !ctx->rejected) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_scep_reject_token(ctx, &token);

    ngx_http_scep_variable_set(v, token.data, token.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_message_type_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char           *name;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    name = ctx ? scep_message_type_name(ctx->result.message_type) : NULL;

    if (name == NULL) {
        if (ctx) {
            ngx_http_scep_body_wanted(r->main, ctx);
        }

        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_scep_variable_set(v, (u_char *) name, ngx_strlen(name));

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_transaction_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    if (ctx == NULL || ctx->result.transaction_id_len == 0) {
        if (ctx) {
            ngx_http_scep_body_wanted(r->main, ctx);
        }

        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_scep_variable_set(v, (u_char *) ctx->result.transaction_id,
                               ctx->result.transaction_id_len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_sender_nonce_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p, *last;
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r->main);

    /* the checks run in order: the nonce is known once they passed it */

    if (ctx == NULL
        || !ctx->checked
        || (ctx->reason != SCEP_REASON_OK
            && ctx->reason <= SCEP_REASON_BAD_SENDER_NONCE))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 2 * sizeof(ctx->result.sender_nonce));
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_hex_dump(p, ctx->result.sender_nonce,
                        sizeof(ctx->result.sender_nonce));

    ngx_http_scep_variable_set(v, p, last - p);

    return NGX_OK;
}
