
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Reading a SCEP request: the query string, the POST body, and the
 * answers to requests that are not SCEP.
 */


#include "ngx_http_scep_module.h"


/* a GetCACert "message" is a short CA identifier, not a pkiMessage */
#define NGX_HTTP_SCEP_MAX_CA_IDENT  255

/* room for the details of a rejection: a refused algorithm's */
#define NGX_HTTP_SCEP_DETAIL_LEN    256

/* the shortest GET message checked by its first byte before decoding */
#define NGX_HTTP_SCEP_HEAD_CHECK_MIN  1024

/* a constructed SEQUENCE's identifier octet */
#define NGX_HTTP_SCEP_SEQUENCE_OCTET  0x30


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 op;
} ngx_http_scep_op_t;


typedef struct {
    ngx_str_t                  token;
    ngx_uint_t                 status;
    ngx_str_t                  text;
} ngx_http_scep_reject_t;


static ngx_int_t ngx_http_scep_decode_message(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static void ngx_http_scep_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_body_message(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_check_message(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_canonical_ca_query(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_uint_t nmsg);
static ngx_int_t ngx_http_scep_canonical_post_query(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_reject(ngx_http_scep_ctx_t *ctx,
    ngx_uint_t reject);
static u_char *ngx_http_scep_algorithm_detail(ngx_http_scep_ctx_t *ctx,
    uint32_t allowed, u_char *p, u_char *last);
static ngx_uint_t ngx_http_scep_hop_header(ngx_table_elt_t *h,
    ngx_array_t *connection);
static ngx_uint_t ngx_http_scep_connection_names(ngx_table_elt_t *h,
    ngx_str_t *connection);


static ngx_http_scep_op_t  ngx_http_scep_ops[] = {
    { ngx_string("GetCACert"), NGX_HTTP_SCEP_OP_GETCACERT },
    { ngx_string("GetCACaps"), NGX_HTTP_SCEP_OP_GETCACAPS },
    { ngx_string("GetNextCACert"), NGX_HTTP_SCEP_OP_GETNEXTCACERT },
    { ngx_string("PKIOperation"), NGX_HTTP_SCEP_OP_PKIOPERATION },
    { ngx_null_string, 0 }
};


static u_char  ngx_http_scep_query_prefix[] =
    "operation=PKIOperation&message=";

static u_char  ngx_http_scep_post_query[] = "operation=PKIOperation";


/* NDES's own operations belong to trusted networks only */

static ngx_str_t  ngx_http_scep_ndes_ops[] = {
    ngx_string("NDESGenerateChallenge"),
    ngx_string("NDESGetCACertThumbprint"),
    ngx_null_string
};


/* indexed by ngx_http_scep_reject_e */

static ngx_http_scep_reject_t  ngx_http_scep_rejects[] = {
    { ngx_null_string, 0, ngx_null_string },

    { ngx_string("method_not_allowed"), NGX_HTTP_NOT_ALLOWED,
      ngx_string("method not allowed for this SCEP operation") },

    { ngx_string("missing_operation"), NGX_HTTP_BAD_REQUEST,
      ngx_string("no SCEP operation in the query string") },

    { ngx_string("repeated_operation"), NGX_HTTP_BAD_REQUEST,
      ngx_string("more than one SCEP operation in the query string") },

    { ngx_string("unknown_operation"), NGX_HTTP_BAD_REQUEST,
      ngx_string("unknown SCEP operation") },

    { ngx_string("ndes_operation"), NGX_HTTP_FORBIDDEN,
      ngx_string("NDES administrative operation not available here") },

    { ngx_string("missing_message"), NGX_HTTP_BAD_REQUEST,
      ngx_string("PKIOperation without a message") },

    { ngx_string("repeated_message"), NGX_HTTP_BAD_REQUEST,
      ngx_string("more than one message in the query string") },

    { ngx_string("message_too_large"), NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
      ngx_string("SCEP message larger than allowed") },

    { ngx_string("bad_base64"), NGX_HTTP_BAD_REQUEST,
      ngx_string("message is not valid base64") },

    { ngx_string("bad_ca_identifier"), NGX_HTTP_BAD_REQUEST,
      ngx_string("CA identifier too long or not printable") },

    { ngx_string("bad_escape"), NGX_HTTP_BAD_REQUEST,
      ngx_string("%u escape in the query string") },

    { ngx_string("unknown_recipient"), NGX_HTTP_BAD_REQUEST,
      ngx_string("message encrypted to a certificate that the CA no longer"
                 " uses: fetch GetCACert again and encrypt to its RA"
                 " certificate") },

    { ngx_string("replayed_message"), NGX_HTTP_BAD_REQUEST,
      ngx_string("this transactionID and senderNonce were sent already;"
                 " a new message needs a fresh senderNonce") },

    { ngx_string("bad_response"), NGX_HTTP_BAD_GATEWAY,
      ngx_string("the SCEP server's answer failed the gateway's checks;"
                 " its administrator can see why in the gateway's log") },

    { ngx_string("pending_server_down"), NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("the SCEP server that holds this pending request is"
                 " down; poll again later") },

    { ngx_string("untrusted_renewal_signer"), NGX_HTTP_BAD_REQUEST,
      ngx_string("renewal signed with a certificate that this CA did not"
                 " issue: renew with the certificate the CA issued, or"
                 " enroll anew with a self-signed certificate and a"
                 " challenge password") },

    { ngx_string("expired_renewal_signer"), NGX_HTTP_BAD_REQUEST,
      ngx_string("renewal signed with a certificate that has expired or"
                 " is not yet valid: check the device's clock, or enroll"
                 " anew with a self-signed certificate and a challenge"
                 " password") },

    { ngx_string("revoked_renewal_signer"), NGX_HTTP_BAD_REQUEST,
      ngx_string("renewal signed with a certificate that the CA revoked:"
                 " ask the CA's administrator why, and enroll anew with a"
                 " self-signed certificate and a challenge password") },

    { ngx_string("backend_busy"), NGX_HTTP_SERVICE_UNAVAILABLE,
      ngx_string("every SCEP server is at its limit of requests and the"
                 " queue is full or the wait too long; retry after the"
                 " time in Retry-After") },

    /* token and text by ctx->reason */
    { ngx_null_string, NGX_HTTP_BAD_REQUEST, ngx_null_string }
};


/* what each failed pkiMessage check tells the client, by scep_reason_t */

static ngx_str_t  ngx_http_scep_reason_texts[] = {
    ngx_null_string,
    ngx_string("message is not a DER-encoded CMS structure"),
    ngx_string("message is not CMS SignedData"),
    ngx_string("message must have exactly one signer"),
    ngx_string("signed content is not of type data"),
    ngx_string("signed content is not a CMS EnvelopedData"),
    ngx_string("messageType missing or not one a client may send"),
    ngx_string("transactionID missing or not a PrintableString of 1 to 128"
               " characters"),
    ngx_string("senderNonce missing or not 16 bytes"),
    ngx_string("digest algorithm not allowed"),
    ngx_string("content-encryption algorithm not allowed"),
    ngx_string("signer certificate not in the message"),
    ngx_string("signature does not verify"),
    ngx_string("internal error")
};


void
ngx_http_scep_reject_token(ngx_http_scep_ctx_t *ctx, ngx_str_t *token)
{
    if (ctx->browser) {
        ngx_str_set(token, "browser_test");
        return;
    }

    if (ctx->reject == NGX_HTTP_SCEP_REJECT_MESSAGE) {
        token->data = (u_char *) scep_reason_token(ctx->reason);
        token->len = ngx_strlen(token->data);
        return;
    }

    *token = ngx_http_scep_rejects[ctx->reject].token;
}


/*
 * NDES's SCEP endpoint is anonymous: client credentials are not passed
 * on (they would invite NTLM relay), nor hop-by-hop headers, nor
 * forwarding headers the client made up.  The headers list is rebuilt
 * without them.
 */

static ngx_str_t  ngx_http_scep_dropped_headers[] = {
    ngx_string("Authorization"),
    ngx_string("Cookie"),
    ngx_string("Forwarded"),
    ngx_string("X-Forwarded-For"),
    ngx_string("X-Forwarded-Host"),
    ngx_string("X-Forwarded-Proto"),
    ngx_string("X-Real-IP"),
    ngx_string("Keep-Alive"),
    ngx_string("TE"),
    ngx_string("Trailer"),
    ngx_string("Upgrade"),
    ngx_null_string
};


ngx_int_t
ngx_http_scep_strip_headers(ngx_http_request_t *r)
{
    ngx_str_t        *c;
    ngx_uint_t        i, n;
    ngx_list_t        old;
    ngx_array_t       connection;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    /* the headers named in every "Connection" header are hop-by-hop */

    if (ngx_array_init(&connection, r->pool, 2, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == sizeof("Connection") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Connection",
                                   sizeof("Connection") - 1)
                   == 0)
            {
                c = ngx_array_push(&connection);
                if (c == NULL) {
                    return NGX_ERROR;
                }

                *c = h[i].value;
            }
        }

        n += part->nelts;
    }

    /*
     * The request gets a new list, made in place: its "last" must point
     * to its own first part, since other modules push request headers
     * onto it later (ngx.req.set_header, more_set_input_headers).  The
     * old elements stay where they are, and so stay valid for whatever
     * points to them.
     */

    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, n ? n : 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (part = &old.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_scep_hop_header(&h[i], &connection)) {
                continue;
            }

            nh = ngx_list_push(&r->headers_in.headers);
            if (nh == NULL) {
                return NGX_ERROR;
            }

            *nh = h[i];
        }
    }

    r->headers_in.authorization = NULL;
    r->headers_in.keep_alive = NULL;
    r->headers_in.te = NULL;
    r->headers_in.upgrade = NULL;
    r->headers_in.user.len = 0;
    r->headers_in.passwd.len = 0;

    /* nginx 1.23.0 made the lists of these headers linked elements */

#if (nginx_version >= 1023000)
    r->headers_in.cookie = NULL;
#else
    r->headers_in.cookies.nelts = 0;
#endif

#if (NGX_HTTP_X_FORWARDED_FOR)
#if (nginx_version >= 1023000)
    r->headers_in.x_forwarded_for = NULL;
#else
    r->headers_in.x_forwarded_for.nelts = 0;
#endif
#endif

#if (NGX_HTTP_REALIP)
    r->headers_in.x_real_ip = NULL;
#endif

    return NGX_OK;
}


static ngx_uint_t
ngx_http_scep_hop_header(ngx_table_elt_t *h, ngx_array_t *connection)
{
    ngx_str_t   *d;
    ngx_uint_t   i;

    if (h->key.len > 6
        && ngx_strncasecmp(h->key.data, (u_char *) "Proxy-", 6) == 0)
    {
        /* Proxy-Authorization, Proxy-Connection, ... */
        return 1;
    }

    for (d = ngx_http_scep_dropped_headers; d->len; d++) {
        if (d->len == h->key.len
            && ngx_strncasecmp(d->data, h->key.data, d->len) == 0)
        {
            return 1;
        }
    }

    /* the headers that a "Connection" header names are hop-by-hop too */

    d = connection->elts;

    for (i = 0; i < connection->nelts; i++) {
        if (ngx_http_scep_connection_names(h, &d[i])) {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_scep_connection_names(ngx_table_elt_t *h, ngx_str_t *connection)
{
    u_char  *p, *last, *start;

    p = connection->data;
    last = p + connection->len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == ',' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < last && *p != ' ' && *p != ',' && *p != '\t') {
            p++;
        }

        if ((size_t) (p - start) == h->key.len
            && ngx_strncasecmp(start, h->key.data, h->key.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Counters of rejections are indexed from 0: first the gateway's own
 * reasons, then scep_message_check()'s.
 */

ngx_uint_t
ngx_http_scep_reject_index(ngx_http_scep_ctx_t *ctx)
{
    if (ctx->reject == NGX_HTTP_SCEP_REJECT_MESSAGE) {
        return NGX_HTTP_SCEP_REJECT_MESSAGE - 1 + ctx->reason - 1;
    }

    return ctx->reject - 1;
}


void
ngx_http_scep_reject_index_token(ngx_uint_t index, ngx_str_t *token)
{
    ngx_http_scep_ctx_t  ctx;

    ngx_memzero(&ctx, sizeof(ngx_http_scep_ctx_t));

    if (index < NGX_HTTP_SCEP_REJECT_MESSAGE - 1) {
        ctx.reject = index + 1;

    } else {
        ctx.reject = NGX_HTTP_SCEP_REJECT_MESSAGE;
        ctx.reason = index - (NGX_HTTP_SCEP_REJECT_MESSAGE - 1) + 1;
    }

    ngx_http_scep_reject_token(&ctx, token);
}


/*
 * The query string, and a GET's message but for its signature: what the
 * $scep_* variables need before limit_req.  A rejection is only kept in
 * the context here; the precontent phase answers it, after access
 * control.  Returns NGX_OK, or NGX_ERROR.
 */

ngx_int_t
ngx_http_scep_parse(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t                 i, noper, nmsg;
    scep_query_t               q;
    ngx_http_scep_op_t        *op;

    /*
     * A bare GET or HEAD is the browser test, answered in the precontent
     * phase (ngx_http_scep_browser.c).  It is parsed as any request all
     * the same: where the test is not answered, the rejection found here
     * is (missing_operation, or method_not_allowed for HEAD).
     */

    if (ctx->conf->browser_test && ngx_http_scep_browser_bare(r)) {
        ctx->browser = 1;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_METHOD);
    }

    scep_query_scan(r->args.data, r->args.len, &q);

    if (q.u_escapes) {
        /*
         * IIS decodes "%uXXXX" in names and values; no SCEP client sends
         * it, and the gateway reads no name differently from NDES
         */
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_BAD_ESCAPE);
    }

    noper = q.operations;
    nmsg = q.messages;

    ctx->operation.data = (u_char *) q.operation;
    ctx->operation.len = q.operation_len;
    ctx->message.data = (u_char *) q.message;
    ctx->message.len = q.message_len;

    if (noper == 0) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_NO_OPERATION);
    }

    if (noper > 1) {
        return ngx_http_scep_reject(ctx,
                                    NGX_HTTP_SCEP_REJECT_REPEATED_OPERATION);
    }

    for (op = ngx_http_scep_ops; op->name.len; op++) {
        if (op->name.len == ctx->operation.len
            && ngx_strncmp(op->name.data, ctx->operation.data,
                           op->name.len)
               == 0)
        {
            ctx->op = op->op;
            break;
        }
    }

    if (ctx->op == NGX_HTTP_SCEP_OP_UNKNOWN) {

        for (i = 0; ngx_http_scep_ndes_ops[i].len; i++) {
            if (ngx_http_scep_ndes_ops[i].len == ctx->operation.len
                && ngx_strncasecmp(ngx_http_scep_ndes_ops[i].data,
                                   ctx->operation.data, ctx->operation.len)
                   == 0)
            {
                return ngx_http_scep_reject(ctx,
                                         NGX_HTTP_SCEP_REJECT_NDES_OPERATION);
            }
        }

        return ngx_http_scep_reject(ctx,
                                    NGX_HTTP_SCEP_REJECT_UNKNOWN_OPERATION);
    }

    if (r->method == NGX_HTTP_POST
        && ctx->op == NGX_HTTP_SCEP_OP_PKIOPERATION)
    {
        if (nmsg) {
            /* a POST carries the message in its body only */
            return ngx_http_scep_reject(ctx,
                                       NGX_HTTP_SCEP_REJECT_REPEATED_MESSAGE);
        }

        /* the body is read later: ngx_http_scep_read_body() */

        return ngx_http_scep_canonical_post_query(r, ctx);
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_METHOD);
    }

    if (nmsg > 1) {
        return ngx_http_scep_reject(ctx,
                                    NGX_HTTP_SCEP_REJECT_REPEATED_MESSAGE);
    }

    if (ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION) {

        /* an optional CA identifier: short and printable */

        if (!scep_ca_ident_ok(ctx->message.data, ctx->message.len,
                              NGX_HTTP_SCEP_MAX_CA_IDENT))
        {
            return ngx_http_scep_reject(ctx,
                                        NGX_HTTP_SCEP_REJECT_BAD_CA_IDENT);
        }

        return ngx_http_scep_canonical_ca_query(r, ctx, nmsg);
    }

    if (nmsg == 0 || ctx->message.len == 0) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_NO_MESSAGE);
    }

    return ngx_http_scep_decode_message(r, ctx);
}


static ngx_int_t
ngx_http_scep_decode_message(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    int                        c, rc, canonical;
    size_t                     max, n;
    ngx_http_scep_loc_conf_t  *slcf;

    slcf = ctx->conf;

    /*
     * A long message whose first byte is no SEQUENCE is refused as the
     * parse would refuse it (bad_der), before the rest is decoded: junk
     * costs no more than its first characters.  Only where it cannot be
     * too large, and not for short values, which keep their bad_base64.
     */

    if (ctx->message.len >= NGX_HTTP_SCEP_HEAD_CHECK_MIN
        && scep_base64_decoded_max(ctx->message.len) <= slcf->max_message)
    {
        c = scep_base64_first_byte(ctx->message.data, ctx->message.len);

        if (c >= 0 && c != NGX_HTTP_SCEP_SEQUENCE_OCTET && (c & 0x1f) != 0x1f) {
            ctx->reason = SCEP_REASON_BAD_DER;
            ctx->checked = 1;

            return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_MESSAGE);
        }
    }

    max = ngx_min(slcf->max_message,
                  scep_base64_decoded_max(ctx->message.len));

    ctx->der = ngx_pnalloc(r->pool, max);
    if (ctx->der == NULL) {
        return NGX_ERROR;
    }

    ctx->der_allocated = 1;

    rc = scep_base64_decode(ctx->message.data, ctx->message.len, ctx->der,
                            max, &n, &canonical);

    if (rc == SCEP_TOO_LARGE) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_TOO_LARGE);
    }

    if (rc != SCEP_OK || n == 0) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_BAD_BASE64);
    }

    ctx->der_len = n;
    ctx->has_message = 1;

    if (ngx_http_scep_check_message(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->reject) {
        return NGX_OK;
    }

    if (canonical
        && ctx->fwd == NULL
        && r->args.len == sizeof(ngx_http_scep_query_prefix) - 1
                          + ctx->message.len
        && ngx_strncmp(r->args.data, ngx_http_scep_query_prefix,
                       sizeof(ngx_http_scep_query_prefix) - 1)
           == 0)
    {
        /* already in the form back ends get */
        return NGX_OK;
    }

    return ngx_http_scep_canonical_query(r, ctx);
}


/*
 * Back ends get one dialect: standard base64, padded and percent-encoded,
 * in "operation=PKIOperation&message=...".  A query already in that form
 * is passed on as it came.
 */

ngx_int_t
ngx_http_scep_canonical_query(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char  *p, *q, *der;
    size_t   len, der_len;

    /* the DER form of a BER message (scep_forward_der), if it has one */

    der = ctx->fwd ? ctx->fwd : ctx->der;
    der_len = ctx->fwd ? ctx->fwd_len : ctx->der_len;

    len = sizeof(ngx_http_scep_query_prefix) - 1
          + scep_base64_encoded_max(der_len);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(p, ngx_http_scep_query_prefix,
                   sizeof(ngx_http_scep_query_prefix) - 1);
    q += scep_base64_encode_query(der, der_len, q);

    len = q - p;

    r->args.data = p;
    r->args.len = len;
    ctx->query_allocated = 1;

    /* make proxy_pass build the request line from r->uri and r->args */
    r->valid_unparsed_uri = 0;

    ctx->message.data = p + sizeof(ngx_http_scep_query_prefix) - 1;
    ctx->message.len = len - (sizeof(ngx_http_scep_query_prefix) - 1);

    return NGX_OK;
}


/*
 * The other operations reach the back end as exactly what was checked,
 * "operation=OP" and "&message=..." if there was one, so that no other
 * parameter, however spelled, is read there differently.
 */

static ngx_int_t
ngx_http_scep_canonical_ca_query(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_uint_t nmsg)
{
    u_char  *p, *q;
    size_t   len;

    len = sizeof("operation=") - 1 + ctx->operation.len;

    if (nmsg) {
        len += sizeof("&message=") - 1 + ctx->message.len;
    }

    if (r->args.len == len
        && ngx_strncmp(r->args.data, "operation=", 10) == 0
        && ctx->operation.data == r->args.data + 10
        && (nmsg == 0
            || ctx->message.data == r->args.data + 10 + ctx->operation.len
                                    + sizeof("&message=") - 1))
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(p, "operation=", 10);
    q = ngx_cpymem(q, ctx->operation.data, ctx->operation.len);

    if (nmsg) {
        q = ngx_cpymem(q, "&message=", sizeof("&message=") - 1);
        q = ngx_cpymem(q, ctx->message.data, ctx->message.len);
    }

    ctx->operation.data = p + 10;
    ctx->message.data = q - ctx->message.len;

    r->args.data = p;
    r->args.len = q - p;
    r->valid_unparsed_uri = 0;

    return NGX_OK;
}


/*
 * A POST PKIOperation reaches the back end as "operation=PKIOperation"
 * and nothing else, however the client spelled its query.
 */

static ngx_int_t
ngx_http_scep_canonical_post_query(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx)
{
    u_char  *p;

    if (r->args.len != sizeof(ngx_http_scep_post_query) - 1
        || ngx_strncmp(r->args.data, ngx_http_scep_post_query,
                       sizeof(ngx_http_scep_post_query) - 1)
           != 0)
    {
        p = ngx_pnalloc(r->pool, sizeof(ngx_http_scep_post_query) - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, ngx_http_scep_post_query,
                   sizeof(ngx_http_scep_post_query) - 1);

        r->args.data = p;
        r->args.len = sizeof(ngx_http_scep_post_query) - 1;

        /* make proxy_pass build the request line from r->uri and r->args */
        r->valid_unparsed_uri = 0;
    }

    ctx->operation.data = r->args.data + sizeof("operation=") - 1;

    return NGX_OK;
}


/*
 * Every check of the message but its signature, which the precontent
 * phase verifies (ngx_http_scep_verify()): a request that limit_req or
 * access control refuses costs no digest of the content and no
 * public-key operation.  A failed check is kept in ctx->reject.
 */

static ngx_int_t
ngx_http_scep_check_message(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    scep_policy_t               policy;
    scep_pending_t             *pending;
    ngx_http_scep_loc_conf_t   *slcf;
    ngx_http_scep_main_conf_t  *smcf;

    slcf = ctx->conf;
    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    policy.algorithms = (uint32_t) slcf->algorithms;
    policy.crypto = smcf->crypto;

    pending = ngx_palloc(r->pool, scep_pending_size());
    if (pending == NULL) {
        return NGX_ERROR;
    }

    ctx->reason = scep_message_parse(ctx->der, ctx->der_len, &policy,
                                     &ctx->result, pending);
    ctx->checked = 1;

    if (ctx->reason != SCEP_REASON_OK) {
        scep_pending_free(pending);
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_MESSAGE);
    }

    /*
     * what the parse holds is released by the verification, or with the
     * request (ngx_http_scep_ctx_cleanup())
     */

    ctx->pending = pending;

    if (slcf->check_recipient
        && ngx_http_scep_recipient_check(r, ctx) != NGX_OK)
    {
        return ngx_http_scep_reject(ctx,
                                    NGX_HTTP_SCEP_REJECT_UNKNOWN_RECIPIENT);
    }

    if (slcf->forward_der && ngx_http_scep_forward_der(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The signature of a message that passed every other check, and then
 * the replay window: the most costly steps, run in the precontent phase,
 * after limit_req and access control.  A failure is kept in ctx->reject.
 */

void
ngx_http_scep_verify(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_http_scep_reject_e  renewal;

    if (ctx->pending == NULL) {
        return;
    }

    if (ctx->reject != NGX_HTTP_SCEP_REJECT_NONE) {
        /* refused already (unknown_recipient): no public-key operation */
        scep_pending_free(ctx->pending);
        ctx->pending = NULL;
        return;
    }

    ctx->reason = scep_message_verify(ctx->pending);

    /* a renewal's signer certificate is in the message, held till here */

    renewal = NGX_HTTP_SCEP_REJECT_NONE;

    if (ctx->reason == SCEP_REASON_OK) {
        renewal = ngx_http_scep_renewal_check(r, ctx);
    }

    /*
     * The decoded message is not needed any more: what the check holds
     * and a GET's decoded message go back to the allocator now, not with
     * the request, which may wait long for its back end (a large
     * allocation; a small one stays in the pool).
     */

    scep_pending_free(ctx->pending);
    ctx->pending = NULL;

    /* the signer certificate pointed into what was freed */

    ctx->result.signer_cert = NULL;
    ctx->result.signer_cert_len = 0;

    /*
     * but a GET's that goes on as a POST, whose body it becomes, unless
     * its DER form (ctx->fwd) does
     */

    if (ctx->der_allocated && (!ctx->forward_post || ctx->fwd)) {
        (void) ngx_pfree(r->pool, ctx->der);
        ctx->der = NULL;
        ctx->der_allocated = 0;
    }

    if (ctx->reason != SCEP_REASON_OK) {
        (void) ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_MESSAGE);
        return;
    }

    if (renewal != NGX_HTTP_SCEP_REJECT_NONE) {
        (void) ngx_http_scep_reject(ctx, renewal);
        return;
    }

    if (ngx_http_scep_replay_check(r, ctx) == NGX_BUSY) {
        (void) ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_REPLAYED);
    }
}


/*
 * Reads the body of a POST PKIOperation and checks its message; the
 * phases go on from the handler that called it once the body is in.
 * Returns NGX_DONE while it is read, NGX_OK when there is nothing to
 * read (a rejection kept), or an HTTP status.
 */

ngx_int_t
ngx_http_scep_read_body(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->body = NGX_HTTP_SCEP_BODY_READ;

    if (r->headers_in.content_length_n > (off_t) ctx->conf->max_message) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_TOO_LARGE);
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_NO_MESSAGE);
    }

    r->request_body_in_single_buf = 1;

    ctx->body = NGX_HTTP_SCEP_BODY_READING;
    ctx->status = NGX_OK;

    rc = ngx_http_read_client_request_body(r, ngx_http_scep_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->body = NGX_HTTP_SCEP_BODY_READ;
        return rc;
    }

    /*
     * the body may have been read at once, and the request run its
     * course and been freed: the caller touches nothing of it
     */

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_scep_body_handler(ngx_http_request_t *r)
{
    ngx_http_scep_ctx_t  *ctx;

    ctx = ngx_http_scep_get_ctx(r);

    ctx->body = NGX_HTTP_SCEP_BODY_READ;

    if (ngx_http_scep_body_message(r, ctx) != NGX_OK) {
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->preserve_body = 1;

    /* back to the phase handler that started reading */

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_http_scep_body_message(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    off_t         len;
    u_char       *p;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_NO_MESSAGE);
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len == 0) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_NO_MESSAGE);
    }

    if (len > (off_t) ctx->conf->max_message) {
        return ngx_http_scep_reject(ctx, NGX_HTTP_SCEP_REJECT_TOO_LARGE);
    }

    ctx->der_len = (size_t) len;
    ctx->has_message = 1;

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        /* the usual case: the body is in one memory buffer */
        ctx->der = cl->buf->pos;
        return ngx_http_scep_check_message(r, ctx);
    }

    ctx->der = ngx_pnalloc(r->pool, ctx->der_len);
    if (ctx->der == NULL) {
        return NGX_ERROR;
    }

    ctx->der_allocated = 1;

    p = ctx->der;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            /*
             * nginx -t refuses a client_body_buffer_size not larger
             * than scep_max_message, and client_body_in_file_only, so
             * that a message is never read back from a file, which
             * would block the worker
             */
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "scep: POST body of %O bytes in a temporary file",
                          len);
            return NGX_ERROR;
        }

        if (b->last != b->pos) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    return ngx_http_scep_check_message(r, ctx);
}


/* a rejection is kept, to be answered after access control */

static ngx_int_t
ngx_http_scep_reject(ngx_http_scep_ctx_t *ctx, ngx_uint_t reject)
{
    if (ctx->reject == NGX_HTTP_SCEP_REJECT_NONE) {
        ctx->reject = reject;
    }

    return NGX_OK;
}


/* the status and explanation of a rejection but a message check's */

ngx_uint_t
ngx_http_scep_reject_text(ngx_http_scep_ctx_t *ctx, ngx_str_t *text)
{
    *text = ngx_http_scep_rejects[ctx->reject].text;

    return ngx_http_scep_rejects[ctx->reject].status;
}


/* the answer to a kept rejection, logged; returns what finalizes it */

ngx_int_t
ngx_http_scep_send_reject(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                     buf[NGX_HTTP_SCEP_DETAIL_LEN];
    ngx_str_t                  token, text, tid, detail, *methods;
    ngx_buf_t                 *b;
    ngx_uint_t                 status, reject;
    ngx_http_scep_reject_t    *rj;
    ngx_http_scep_loc_conf_t  *slcf;

    static ngx_str_t  allow = ngx_string("Allow");
    static ngx_str_t  get_post = ngx_string("GET, POST");
    static ngx_str_t  get = ngx_string("GET");

    slcf = ctx->conf;
    reject = ctx->reject;

    rj = &ngx_http_scep_rejects[reject];

    ctx->rejected = 1;

    ngx_http_scep_reject_token(ctx, &token);

    if (reject == NGX_HTTP_SCEP_REJECT_MESSAGE) {
        text = ngx_http_scep_reason_texts[ctx->reason];
        status = (ctx->reason == SCEP_REASON_INTERNAL)
                 ? NGX_HTTP_INTERNAL_SERVER_ERROR : rj->status;

    } else {
        text = rj->text;
        status = rj->status;
    }

    detail.data = buf;
    detail.len = 0;

    if (reject == NGX_HTTP_SCEP_REJECT_MESSAGE
        && (ctx->reason == SCEP_REASON_BAD_DIGEST_ALGORITHM
            || ctx->reason == SCEP_REASON_BAD_CIPHER_ALGORITHM))
    {
        detail.len = ngx_http_scep_algorithm_detail(ctx,
                                                    (uint32_t) slcf->algorithms,
                                                    buf, buf + sizeof(buf))
                     - buf;
    }

    if (ctx->result.transaction_id_len) {
        tid.len = ctx->result.transaction_id_len;
        tid.data = (u_char *) ctx->result.transaction_id;

        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: rejected %V \"%V\", transactionID \"%V\": %V%V",
                      &r->method_name, &ctx->operation, &tid, &token,
                      &detail);

    } else {
        ngx_log_error(slcf->log_level, r->connection->log, 0,
                      "scep: rejected %V \"%V\": %V%V",
                      &r->method_name, &ctx->operation, &token, &detail);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        methods = (ctx->op == NGX_HTTP_SCEP_OP_UNKNOWN
                   || ctx->op == NGX_HTTP_SCEP_OP_PKIOPERATION)
                  ? &get_post : &get;

        if (ngx_http_scep_add_header(r, &allow, methods) == NULL) {
            return NGX_ERROR;
        }
    }

    b = ngx_create_temp_buf(r->pool, token.len + text.len + detail.len + 3);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last, "%V: %V%V\n", &token, &text, &detail);

    return ngx_http_scep_send_text(r, status, b);
}


/* a header of the answer, key and value kept as they are (not copied) */

ngx_table_elt_t *
ngx_http_scep_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key = *key;
    h->value = *value;

    return h;
}


/*
 * An answer of the module's own: status, and b as a text/plain body,
 * neither sniffed as something else by a browser nor kept by a cache:
 * it says what holds now
 */

ngx_int_t
ngx_http_scep_send_text(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_uint_t   i;
    ngx_chain_t  out;

    static ngx_str_t  headers[] = {
        ngx_string("X-Content-Type-Options"), ngx_string("nosniff"),
        ngx_string("Cache-Control"), ngx_string("no-store")
    };

    for (i = 0; i < sizeof(headers) / sizeof(ngx_str_t); i += 2) {
        if (ngx_http_scep_add_header(r, &headers[i], &headers[i + 1])
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * What an admin needs to act on a refused algorithm, for the answer and
 * the log: the algorithm the message used, by name and OID, and the
 * "scep_algorithms" line that would allow it in this location.
 */

static u_char *
ngx_http_scep_algorithm_detail(ngx_http_scep_ctx_t *ctx, uint32_t allowed,
    u_char *p, u_char *last)
{
    char         list[NGX_HTTP_SCEP_DETAIL_LEN / 2];
    uint32_t     bits;
    const char  *name, *oid;

    if (ctx->reason == SCEP_REASON_BAD_DIGEST_ALGORITHM) {
        bits = ctx->result.digest;
        name = ctx->result.digest_name;
        oid = ctx->result.digest_oid;

    } else {
        bits = ctx->result.cipher;
        name = ctx->result.cipher_name;
        oid = ctx->result.cipher_oid;
    }

    if (name == NULL) {
        return ngx_slprintf(p, last, ": %s, an algorithm the gateway does"
                            " not know", oid);
    }

    if (bits & allowed) {
        /* allowed, but not among the SignedData's digestAlgorithms */
        return ngx_slprintf(p, last, ": %s (%s), not listed in the"
                            " SignedData's digestAlgorithms", name, oid);
    }

    (void) scep_algorithms_text(allowed | bits, list, sizeof(list));

    return ngx_slprintf(p, last, ": %s (%s); to allow it, set"
                        " \"scep_algorithms %s;\"", name, oid, list);
}
