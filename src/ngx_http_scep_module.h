
/*
 * Copyright (C) ngx_http_scep_module authors
 */


#ifndef _NGX_HTTP_SCEP_MODULE_H_INCLUDED_
#define _NGX_HTTP_SCEP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "scep_message.h"


#define NGX_HTTP_SCEP_MODULE_VERSION  "0.1.0"

/*
 * NDES (IIS request filtering, HTTP.sys) accepts query strings of up to
 * 65534 bytes; the request line adds the method, the path and the
 * protocol, so one header buffer must hold a little more than that.
 */
#define NGX_HTTP_SCEP_MAX_QUERY       65534
#define NGX_HTTP_SCEP_MIN_HDR_BUFFER  (65 * 1024)

#define NGX_HTTP_SCEP_MAX_MESSAGE     (2 * 1024 * 1024)


typedef enum {
    NGX_HTTP_SCEP_OP_UNKNOWN = 0,
    NGX_HTTP_SCEP_OP_GETCACERT,
    NGX_HTTP_SCEP_OP_GETCACAPS,
    NGX_HTTP_SCEP_OP_GETNEXTCACERT,
    NGX_HTTP_SCEP_OP_PKIOPERATION
} ngx_http_scep_op_e;


typedef enum {
    NGX_HTTP_SCEP_REJECT_NONE = 0,
    NGX_HTTP_SCEP_REJECT_METHOD,
    NGX_HTTP_SCEP_REJECT_NO_OPERATION,
    NGX_HTTP_SCEP_REJECT_REPEATED_OPERATION,
    NGX_HTTP_SCEP_REJECT_UNKNOWN_OPERATION,
    NGX_HTTP_SCEP_REJECT_NDES_OPERATION,
    NGX_HTTP_SCEP_REJECT_NO_MESSAGE,
    NGX_HTTP_SCEP_REJECT_REPEATED_MESSAGE,
    NGX_HTTP_SCEP_REJECT_TOO_LARGE,
    NGX_HTTP_SCEP_REJECT_BAD_BASE64,
    NGX_HTTP_SCEP_REJECT_BAD_CA_IDENT,
    NGX_HTTP_SCEP_REJECT_MESSAGE       /* scep_message_check(): ctx->reason */
} ngx_http_scep_reject_e;


typedef struct {
    ngx_flag_t                 enable;
    size_t                     max_message;
    ngx_uint_t                 log_level;
    time_t                     retry_after;
    ngx_uint_t                 algorithms;    /* SCEP_ALG_* */
} ngx_http_scep_loc_conf_t;


typedef struct {
    /* "scep on" appears somewhere in this server */
    ngx_uint_t                 used;
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_scep_srv_conf_t;


typedef struct {
    /* "scep on" on the http level */
    ngx_uint_t                 used;
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_scep_main_conf_t;


typedef struct {
    ngx_str_t                  operation;     /* as sent */
    ngx_str_t                  message;       /* raw query value */
    ngx_uint_t                 op;            /* ngx_http_scep_op_e */
    ngx_uint_t                 reject;        /* ngx_http_scep_reject_e */

    u_char                    *der;           /* decoded pkiMessage */
    size_t                     der_len;

    scep_reason_t              reason;
    scep_result_t              result;

    ngx_int_t                  status;        /* body handler result */

    unsigned                   done:1;
    unsigned                   has_message:1;
    unsigned                   checked:1;     /* result is valid */
    unsigned                   reading_body:1;
} ngx_http_scep_ctx_t;


ngx_int_t ngx_http_scep_handler(ngx_http_request_t *r);
void ngx_http_scep_reject_token(ngx_http_scep_ctx_t *ctx, ngx_str_t *token);
ngx_int_t ngx_http_scep_retry_after_init(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_scep_module;


#endif /* _NGX_HTTP_SCEP_MODULE_H_INCLUDED_ */
