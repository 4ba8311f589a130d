
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Active health checks that understand SCEP: each probe asks a back end
 * for GetCACaps and GetCACert on nginx's event loop and judges the
 * answers; with "intune", it first opens the SCEP URL as Microsoft's
 * troubleshooting does in a browser, and reads NDES's answer as that
 * guide does.  Every worker has a timer per back end; the one that claims
 * the back end's record in the shared zone runs the probe, so there is
 * one probe per back end per interval, whichever worker runs it.
 */


#include "ngx_http_scep_module.h"


#define NGX_HTTP_SCEP_PROBE_CAPS     0
#define NGX_HTTP_SCEP_PROBE_CACERT   1
#define NGX_HTTP_SCEP_PROBE_BARE     2    /* "intune": no query string */

#define NGX_HTTP_SCEP_PROBE_MAX      (64 * 1024)


typedef struct {
    ngx_pool_t                *pool;
    ngx_log_t                  log;
    ngx_cycle_t               *cycle;        /* the one it started in */
    ngx_http_scep_peer_t      *peer;
    ngx_peer_connection_t      pc;

    ngx_uint_t                 step;
    ngx_buf_t                 *request;
    ngx_buf_t                 *response;
    ngx_msec_t                 start;
    ngx_uint_t                 claim;        /* sp->checks when claimed */

    uint32_t                   caps;
    scep_ca_answer_t           ca;
    ngx_http_scep_answers_t    answers;      /* for scep_ca_cache */
    u_char                     warning[NGX_HTTP_SCEP_REASON_LEN];

    unsigned                   connected:1;
    unsigned                   untrusted:1;  /* not scep_trusted_ca's */
} ngx_http_scep_probe_t;


/* the timer of a back end, in the cycle whose configuration it has */
typedef struct {
    ngx_event_t                event;
    ngx_cycle_t               *cycle;
    ngx_http_scep_peer_t      *peer;
} ngx_http_scep_check_t;


static void ngx_http_scep_check_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_scep_claim(ngx_http_scep_peer_t *peer,
    ngx_msec_t *delay, ngx_uint_t *claim);
static void ngx_http_scep_probe_start(ngx_http_scep_peer_t *peer,
    ngx_uint_t claim);
static ngx_int_t ngx_http_scep_probe_connect(ngx_http_scep_probe_t *pr);
static void ngx_http_scep_probe_write(ngx_event_t *wev);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_scep_probe_ssl(ngx_http_scep_probe_t *pr,
    ngx_connection_t *c);
static void ngx_http_scep_probe_ssl_done(ngx_connection_t *c);
#endif
static void ngx_http_scep_probe_read(ngx_event_t *rev);
static void ngx_http_scep_probe_answer(ngx_http_scep_probe_t *pr);
static void ngx_http_scep_probe_bare(ngx_http_scep_probe_t *pr,
    ngx_uint_t status, ngx_str_t *body);
static void ngx_http_scep_probe_next(ngx_http_scep_probe_t *pr,
    ngx_uint_t step);
static ngx_int_t ngx_http_scep_probe_parse(ngx_http_scep_probe_t *pr,
    ngx_uint_t *status, ngx_str_t *type, ngx_str_t *body);
static void ngx_http_scep_probe_close(ngx_http_scep_probe_t *pr);
static void ngx_http_scep_probe_done(ngx_http_scep_probe_t *pr,
    const char *fmt, ...);
static void ngx_http_scep_probe_save(ngx_http_scep_probe_t *pr,
    ngx_slab_pool_t *shpool, ngx_http_scep_sh_peer_t *sp);
static void ngx_http_scep_dummy_handler(ngx_event_t *ev);
static size_t ngx_http_scep_warning_len(u_char *warning);


static const char  *ngx_http_scep_probe_ops[] = {
    "GetCACaps", "GetCACert", "bare GET"
};


/* what NDES shows where the Intune Certificate Connector is missing */

static ngx_str_t  ngx_http_scep_ndes_page =
    ngx_string("Network Device Enrollment Service");


ngx_int_t
ngx_http_scep_check_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i, j;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_check_t      *ck;
    ngx_http_scep_upstream_t  **hcp;
    ngx_http_scep_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_scep_module);

    if (smcf == NULL) {
        return NGX_OK;
    }

    ngx_http_scep_shm_running(smcf);

    hcp = smcf->upstreams.elts;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        peer = hcp[i]->peers.elts;

        for (j = 0; j < hcp[i]->peers.nelts; j++) {
            ck = ngx_pcalloc(cycle->pool, sizeof(ngx_http_scep_check_t));
            if (ck == NULL) {
                return NGX_ERROR;
            }

            ck->cycle = cycle;
            ck->peer = &peer[j];

            ck->event.handler = ngx_http_scep_check_timer;
            ck->event.data = ck;
            ck->event.log = cycle->log;
            ck->event.cancelable = 1;

            peer[j].timer = &ck->event;

            /* spread the first probes over the first interval */
            ngx_add_timer(&ck->event, ngx_random() % 200);
        }
    }

    return NGX_OK;
}


static void
ngx_http_scep_check_timer(ngx_event_t *ev)
{
    ngx_uint_t              claim;
    ngx_msec_t              delay;
    ngx_http_scep_peer_t   *peer;
    ngx_http_scep_check_t  *ck;

    ck = ev->data;
    peer = ck->peer;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /*
     * this process has gone on to another cycle: the timer's
     * configuration no longer runs, and its zone may be gone.  Only
     * one process (master_process off) reloads in place, and the
     * module refuses that reload but to a configuration without the
     * module: see ngx_http_scep_shm_reload_single()
     */

    if (ck->cycle != (ngx_cycle_t *) ngx_cycle) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                       "scep health check: %V: the timer of an older"
                       " configuration stops", &peer->name);
        return;
    }

    if (ngx_http_scep_claim(peer, &delay, &claim) == NGX_OK) {
        ngx_http_scep_probe_start(peer, claim);
    }

    ngx_add_timer(ev, delay);
}


/*
 * A probe is due when the record's next_check has come and no probe
 * holds its lease; the worker that takes the lease runs it.  *delay is
 * when this worker should look again, *claim the probe's number.
 *
 * The lease outlasts the longest probe: two steps (three with
 * "intune"), each with a timer for connecting (with the TLS handshake
 * and the request) and one for the answer, so 4 x timeout (6 x), and a
 * second for the event loop.  Should a worker stall beyond that and
 * another worker take the lease, the late probe's result is dropped
 * (ngx_http_scep_probe_done()): one probe at a time counts for a back
 * end.
 */

static ngx_int_t
ngx_http_scep_claim(ngx_http_scep_peer_t *peer, ngx_msec_t *delay,
    ngx_uint_t *claim)
{
    ngx_msec_t                 now;
    ngx_msec_int_t             wait;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;

    hc = peer->upstream;
    sp = peer->sh;

    if (sp == NULL) {
        *delay = hc->interval;
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    wait = (ngx_msec_int_t) (sp->next_check - now);

    if (sp->checks && wait > 0) {
        ngx_shmtx_unlock(&shpool->mutex);

        /* come back just after it is due, the workers race for it */
        *delay = (ngx_msec_t) wait + ngx_random() % 50;
        return NGX_DECLINED;
    }

    if (sp->lease && (ngx_msec_int_t) (sp->lease - now) > 0) {
        ngx_shmtx_unlock(&shpool->mutex);

        *delay = hc->timeout;
        return NGX_DECLINED;
    }

    sp->checks++;
    sp->owner = ngx_pid;
    sp->lease = now + (hc->intune ? 6 : 4) * hc->timeout + 1000;
    sp->next_check = now + hc->interval
                     + (hc->jitter ? ngx_random() % (hc->jitter + 1) : 0);

    *claim = sp->checks;

    ngx_shmtx_unlock(&shpool->mutex);

    *delay = hc->interval;

    return NGX_OK;
}


static void
ngx_http_scep_probe_start(ngx_http_scep_peer_t *peer, ngx_uint_t claim)
{
    ngx_pool_t             *pool;
    ngx_http_scep_probe_t  *pr;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    pr = ngx_pcalloc(pool, sizeof(ngx_http_scep_probe_t));
    if (pr == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    pr->pool = pool;
    pr->cycle = (ngx_cycle_t *) ngx_cycle;
    pr->peer = peer;
    pr->claim = claim;
    pr->start = ngx_current_msec;
    pr->step = peer->upstream->intune ? NGX_HTTP_SCEP_PROBE_BARE
                                      : NGX_HTTP_SCEP_PROBE_CAPS;

    /*
     * the probe reports failures itself, once per state change: keep
     * the connect() errors of every probe out of the error log
     */

    pr->log = *ngx_cycle->log;

    if (pr->log.log_level < NGX_LOG_DEBUG) {
        pr->log.log_level = NGX_LOG_CRIT;
    }

    pr->log.next = NULL;

    pr->response = ngx_create_temp_buf(pool, NGX_HTTP_SCEP_PROBE_MAX + 1);
    if (pr->response == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    if (ngx_http_scep_probe_connect(pr) != NGX_OK) {
        return;
    }
}


static ngx_int_t
ngx_http_scep_probe_connect(ngx_http_scep_probe_t *pr)
{
    size_t                     len;
    ngx_int_t                  rc;
    ngx_err_t                  err;
    ngx_connection_t          *c;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_upstream_t  *hc;

    peer = pr->peer;
    hc = peer->upstream;

    if (pr->cycle != (ngx_cycle_t *) ngx_cycle) {
        ngx_http_scep_probe_done(pr, "%s: nginx runs another cycle",
                                 ngx_http_scep_probe_ops[pr->step]);
        return NGX_ERROR;
    }

    len = sizeof("GET ?operation=GetCACert HTTP/1.0" CRLF) - 1 + hc->uri.len
          + hc->ca_ident_arg.len
          + sizeof("Host: " CRLF) - 1 + hc->uscf->host.len
          + sizeof("User-Agent: nginx-scep-health-check" CRLF) - 1
          + sizeof("Connection: close" CRLF CRLF) - 1;

    pr->request = ngx_create_temp_buf(pr->pool, len);
    if (pr->request == NULL) {
        ngx_http_scep_probe_done(pr, "out of memory");
        return NGX_ERROR;
    }

    pr->request->last = ngx_sprintf(pr->request->last, "GET %V", &hc->uri);

    /* the bare GET is the SCEP URL alone, as a browser opens it */

    if (pr->step != NGX_HTTP_SCEP_PROBE_BARE) {
        pr->request->last = ngx_sprintf(pr->request->last, "?operation=%s%V",
                                        ngx_http_scep_probe_ops[pr->step],
                                        &hc->ca_ident_arg);
    }

    pr->request->last = ngx_sprintf(pr->request->last,
                                    " HTTP/1.0" CRLF
                                    "Host: %V" CRLF
                                    "User-Agent: nginx-scep-health-check" CRLF
                                    "Connection: close" CRLF CRLF,
                                    &hc->uscf->host);

    pr->response->pos = pr->response->start;
    pr->response->last = pr->response->start;
    pr->connected = 0;

    ngx_memzero(&pr->pc, sizeof(ngx_peer_connection_t));

    pr->pc.sockaddr = peer->sockaddr;
    pr->pc.socklen = peer->socklen;
    pr->pc.name = &peer->name;
    pr->pc.get = ngx_event_get_peer;
    pr->pc.log = &pr->log;
    pr->pc.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&pr->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        err = ngx_socket_errno;
        ngx_http_scep_probe_done(pr, "%s: connect() failed%s",
                                 ngx_http_scep_probe_ops[pr->step],
                                 err == NGX_ECONNREFUSED
                                 ? " (connection refused)" : "");
        return NGX_ERROR;
    }

    c = pr->pc.connection;
    c->data = pr;
    c->pool = pr->pool;
    c->log = &pr->log;
    c->read->log = &pr->log;
    c->write->log = &pr->log;
    c->read->handler = ngx_http_scep_probe_read;
    c->write->handler = ngx_http_scep_probe_write;

    ngx_add_timer(c->write, hc->timeout);

    if (rc == NGX_OK) {
        ngx_http_scep_probe_write(c->write);
    }

    return NGX_OK;
}


static void
ngx_http_scep_probe_write(ngx_event_t *wev)
{
    int                     err;
    ssize_t                 n;
    socklen_t               len;
    ngx_buf_t              *b;
    ngx_connection_t       *c;
    ngx_http_scep_probe_t  *pr;

    c = wev->data;
    pr = c->data;
    b = pr->request;

    if (wev->timedout) {
        ngx_http_scep_probe_done(pr, pr->connected
                                     ? "%s: timed out sending the request"
                                     : "%s: connect() timed out",
                                 ngx_http_scep_probe_ops[pr->step]);
        return;
    }

    if (!pr->connected) {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_http_scep_probe_done(pr, "%s: connect() failed%s",
                                     ngx_http_scep_probe_ops[pr->step],
                                     err == NGX_ECONNREFUSED
                                     ? " (connection refused)" : "");
            return;
        }

        pr->connected = 1;

#if (NGX_HTTP_SSL)
        if (pr->peer->upstream->ssl && c->ssl == NULL) {
            (void) ngx_http_scep_probe_ssl(pr, c);
            return;
        }
#endif
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_scep_probe_done(pr, "%s: internal error",
                                         ngx_http_scep_probe_ops[pr->step]);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_scep_probe_done(pr, "%s: %s",
                                     ngx_http_scep_probe_ops[pr->step],
                                     ngx_socket_errno == NGX_ECONNREFUSED
                                     ? "connect() failed (connection refused)"
                                     : "send() failed");
            return;
        }

        b->pos += n;
    }

    /* the request is out: wait for the answer */

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->handler = ngx_http_scep_dummy_handler;

    ngx_add_timer(c->read, pr->peer->upstream->timeout);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_scep_probe_done(pr, "%s: internal error",
                                 ngx_http_scep_probe_ops[pr->step]);
        return;
    }

    if (c->read->ready) {
        ngx_http_scep_probe_read(c->read);
    }
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_scep_probe_ssl(ngx_http_scep_probe_t *pr, ngx_connection_t *c)
{
    ngx_int_t                  rc;
    ngx_str_t                 *name;
    ngx_http_scep_upstream_t  *hc;

    hc = pr->peer->upstream;

    if (ngx_ssl_create_connection(hc->ssl, c, NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_scep_probe_done(pr, "%s: TLS: internal error",
                                 ngx_http_scep_probe_ops[pr->step]);
        return NGX_ERROR;
    }

    name = hc->ssl_name.len ? &hc->ssl_name : &hc->uscf->host;

    if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
        == 0)
    {
        ngx_http_scep_probe_done(pr, "%s: TLS: cannot set server name",
                                 ngx_http_scep_probe_ops[pr->step]);
        return NGX_ERROR;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_scep_probe_ssl_done;
        return NGX_AGAIN;
    }

    ngx_http_scep_probe_ssl_done(c);

    return NGX_OK;
}


static void
ngx_http_scep_probe_ssl_done(ngx_connection_t *c)
{
    long                       rc;
    ngx_str_t                 *name;
    ngx_http_scep_probe_t     *pr;
    ngx_http_scep_upstream_t  *hc;

    pr = c->data;
    hc = pr->peer->upstream;

    if (!c->ssl->handshaked) {
        ngx_http_scep_probe_done(pr, "%s: TLS handshake failed",
                                 ngx_http_scep_probe_ops[pr->step]);
        return;
    }

    if (hc->ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_http_scep_probe_done(pr, "%s: TLS: certificate verify failed"
                                     " (%l: %s)",
                                     ngx_http_scep_probe_ops[pr->step], rc,
                                     X509_verify_cert_error_string(rc));
            return;
        }

        name = hc->ssl_name.len ? &hc->ssl_name : &hc->uscf->host;

        if (ngx_ssl_check_host(c, name) != NGX_OK) {
            ngx_http_scep_probe_done(pr, "%s: TLS: certificate does not"
                                     " match \"%V\"",
                                     ngx_http_scep_probe_ops[pr->step], name);
            return;
        }
    }

    c->read->handler = ngx_http_scep_probe_read;
    c->write->handler = ngx_http_scep_probe_write;

    ngx_http_scep_probe_write(c->write);
}

#endif


static void
ngx_http_scep_probe_read(ngx_event_t *rev)
{
    ssize_t                 n;
    ngx_buf_t              *b;
    ngx_connection_t       *c;
    ngx_http_scep_probe_t  *pr;

    c = rev->data;
    pr = c->data;
    b = pr->response;

    if (rev->timedout) {
        ngx_http_scep_probe_done(pr, "%s: timed out waiting for the answer",
                                 ngx_http_scep_probe_ops[pr->step]);
        return;
    }

    for ( ;; ) {

        if (b->last == b->end) {
            ngx_http_scep_probe_done(pr, "%s: answer larger than %uzk",
                                     ngx_http_scep_probe_ops[pr->step],
                                     (size_t) NGX_HTTP_SCEP_PROBE_MAX / 1024);
            return;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_scep_probe_done(pr, "%s: internal error",
                                         ngx_http_scep_probe_ops[pr->step]);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_scep_probe_done(pr, "%s: %s",
                                     ngx_http_scep_probe_ops[pr->step],
                                     ngx_socket_errno == NGX_ECONNREFUSED
                                     ? "connect() failed (connection refused)"
                                     : "connection reset");
            return;
        }

        if (n == 0) {
            break;
        }

        b->last += n;
    }

    /* HTTP/1.0 with "Connection: close": the answer ends with the stream */

    ngx_http_scep_probe_answer(pr);
}


static void
ngx_http_scep_probe_answer(ngx_http_scep_probe_t *pr)
{
    char                       err[NGX_HTTP_SCEP_REASON_LEN];
    u_char                    *ct;
    ngx_str_t                  type, body;
    ngx_uint_t                 status;
    ngx_http_scep_upstream_t  *hc;

    hc = pr->peer->upstream;

    if (ngx_http_scep_probe_parse(pr, &status, &type, &body) != NGX_OK) {
        ngx_http_scep_probe_done(pr, "%s: not an HTTP answer",
                                 ngx_http_scep_probe_ops[pr->step]);
        return;
    }

    if (pr->step == NGX_HTTP_SCEP_PROBE_BARE) {
        ngx_http_scep_probe_bare(pr, status, &body);
        return;
    }

    if (status != NGX_HTTP_OK) {
        ngx_http_scep_probe_done(pr, "%s: HTTP %ui",
                                 ngx_http_scep_probe_ops[pr->step], status);
        return;
    }

    /*
     * the edge cache sends the Content-Type on to devices: a value that
     * nginx's own proxy would refuse, or one that is no media type,
     * fails the probe, and nothing of the answer is kept
     */

    if (hc->cache
        && scep_content_type_check(type.data, type.len,
                                   ngx_http_scep_probe_ops[pr->step], err,
                                   sizeof(err))
           != 0)
    {
        ngx_http_scep_probe_done(pr, "%s", err);
        return;
    }

    if (pr->step == NGX_HTTP_SCEP_PROBE_CAPS) {

        if (scep_caps_parse(body.data, body.len, &pr->caps, err, sizeof(err))
            != 0)
        {
            ngx_http_scep_probe_done(pr, "%s", err);
            return;
        }

        if (hc->cache
            && ngx_http_scep_answers_keep(pr->pool, &pr->answers.part[0],
                                          &type, &body)
               != NGX_OK)
        {
            ngx_http_scep_probe_done(pr, "out of memory");
            return;
        }

        ngx_http_scep_probe_next(pr, NGX_HTTP_SCEP_PROBE_CACERT);
        return;
    }

    ct = NULL;

    if (type.len) {
        ct = ngx_pnalloc(pr->pool, type.len + 1);
        if (ct == NULL) {
            ngx_http_scep_probe_done(pr, "out of memory");
            return;
        }

        (void) ngx_cpystrn(ct, type.data, type.len + 1);
    }

    if (scep_cacert_parse(body.data, body.len, (char *) ct, &pr->ca, err,
                          sizeof(err))
        != 0)
    {
        ngx_http_scep_probe_done(pr, "%s", err);
        return;
    }

    /*
     * a CA chain that is not the admin's: the back end is down at once,
     * and nothing of the answer is kept or compared with requests
     */

    if (hc->trusted_ca
        && scep_cacert_trusted(body.data, body.len, hc->trusted_ca, err,
                               sizeof(err))
           != 0)
    {
        pr->untrusted = 1;
        ngx_http_scep_probe_done(pr, "%s", err);
        return;
    }

    switch (scep_cacert_check(&pr->ca, ngx_time(), hc->ra_expiry_warn, err,
                              sizeof(err)))
    {
    case SCEP_CERTS_EXPIRED:
        ngx_http_scep_probe_done(pr, "%s", err);
        return;

    case SCEP_CERTS_EXPIRING:
        (void) ngx_cpystrn(pr->warning, (u_char *) err, sizeof(pr->warning));
        break;

    default:
        break;
    }

    if (hc->cache
        && ngx_http_scep_answers_keep(pr->pool, &pr->answers.part[2],
                                      &type, &body)
           != NGX_OK)
    {
        ngx_http_scep_probe_done(pr, "out of memory");
        return;
    }

    ngx_http_scep_probe_done(pr, NULL);
}


/*
 * "intune": the answer to the bare GET, read as Microsoft's
 * troubleshooting of NDES reads it in a browser.  403 is NDES's
 * mscep.dll with the Intune Certificate Connector in place; its generic
 * page says the connector is not installed; 503 is a stopped SCEP
 * application pool.  Anything else fails, named.
 */

static void
ngx_http_scep_probe_bare(ngx_http_scep_probe_t *pr, ngx_uint_t status,
    ngx_str_t *body)
{
    if (status == NGX_HTTP_FORBIDDEN) {
        ngx_http_scep_probe_next(pr, NGX_HTTP_SCEP_PROBE_CAPS);
        return;
    }

    if (status == NGX_HTTP_OK
        && body->len >= ngx_http_scep_ndes_page.len
        && ngx_strlcasestrn(body->data, body->data + body->len,
                            ngx_http_scep_ndes_page.data,
                            ngx_http_scep_ndes_page.len - 1)
           != NULL)
    {
        ngx_http_scep_probe_done(pr, "NDES answers its generic page: the"
                                 " Intune Certificate Connector is not"
                                 " installed correctly (SetupMsi.log)");
        return;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ngx_http_scep_probe_done(pr, "SCEP application pool stopped (HTTP"
                                 " 503): intermediate CAs in the Trusted"
                                 " Root store, unreachable CRL URLs, or"
                                 " Windows authentication on"
                                 " CertificateRegistrationSvc");
        return;
    }

    ngx_http_scep_probe_done(pr, "%s: HTTP %ui, where NDES with the Intune"
                             " Certificate Connector answers 403",
                             ngx_http_scep_probe_ops[pr->step], status);
}


/* a step passed: the next one, on a new connection */

static void
ngx_http_scep_probe_next(ngx_http_scep_probe_t *pr, ngx_uint_t step)
{
    ngx_http_scep_probe_close(pr);

    pr->step = step;

    (void) ngx_http_scep_probe_connect(pr);
}


static ngx_int_t
ngx_http_scep_probe_parse(ngx_http_scep_probe_t *pr, ngx_uint_t *status,
    ngx_str_t *type, ngx_str_t *body)
{
    u_char     *p, *last, *eol, *hdrs;
    ngx_buf_t  *b;

    b = pr->response;
    p = b->pos;
    last = b->last;

    /* "HTTP/1.x NNN ..." */

    if (last - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[8] != ' '
        || p[9] < '1' || p[9] > '5'
        || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9')
    {
        return NGX_ERROR;
    }

    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    hdrs = ngx_strlchr(p, last, '\n');
    if (hdrs == NULL) {
        return NGX_ERROR;
    }

    hdrs++;

    type->len = 0;
    type->data = NULL;

    for (p = hdrs; p < last; p = eol + 1) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            return NGX_ERROR;
        }

        if (eol == p || (eol == p + 1 && *p == '\r')) {
            body->data = eol + 1;
            body->len = last - body->data;
            return NGX_OK;
        }

        if (eol - p > 13 && ngx_strncasecmp(p, (u_char *) "Content-Type:", 13)
                            == 0)
        {
            type->data = p + 13;

            while (type->data < eol && *type->data == ' ') {
                type->data++;
            }

            type->len = eol - type->data;

            while (type->len && (type->data[type->len - 1] == '\r'
                                 || type->data[type->len - 1] == ' '))
            {
                type->len--;
            }
        }
    }

    return NGX_ERROR;
}


static void
ngx_http_scep_probe_close(ngx_http_scep_probe_t *pr)
{
    ngx_connection_t  *c;

    c = pr->pc.connection;

    if (c == NULL) {
        return;
    }

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }
#endif

    ngx_close_connection(c);
    pr->pc.connection = NULL;
}


/* records the outcome: NULL fmt for a pass, else the reason it failed */

static void
ngx_http_scep_probe_done(ngx_http_scep_probe_t *pr, const char *fmt, ...)
{
    u_char                     reason[NGX_HTTP_SCEP_REASON_LEN], *p;
    va_list                    args;
    ngx_uint_t                 old, ok, warn;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_peer_t      *peer;
    ngx_http_scep_sh_peer_t   *sp;
    ngx_http_scep_upstream_t  *hc;

    ngx_http_scep_probe_close(pr);

    if (pr->cycle != (ngx_cycle_t *) ngx_cycle) {
        /* see ngx_http_scep_check_timer(): its zone may be gone */
        ngx_destroy_pool(pr->pool);
        return;
    }

    peer = pr->peer;
    hc = peer->upstream;
    sp = peer->sh;
    ok = (fmt == NULL);

    reason[0] = '\0';

    if (!ok) {
        va_start(args, fmt);
        p = ngx_vslprintf(reason, reason + sizeof(reason) - 1, fmt, args);
        va_end(args);
        *p = '\0';
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (sp->checks != pr->claim || sp->owner != ngx_pid) {
        /* the lease ran out and another probe has it: this one is late */
        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "scep health check: %V in upstream \"%V\": a probe"
                      " that outlived its lease is not counted",
                      &peer->name, &hc->uscf->host);

        ngx_destroy_pool(pr->pool);
        return;
    }

    old = sp->state;
    warn = 0;

    sp->last_check = ngx_time();
    sp->latency = ngx_current_msec - pr->start;
    sp->last_ok = ok;
    sp->lease = 0;

    if (ok) {
        sp->passes++;
        sp->fails = 0;

        /*
         * a back end taken out for its refusals (scep_health_check
         * refusals=) answers probes well: it waits out refusal_hold
         */

        if (sp->refused_until > ngx_time()) {
            /* void */

        } else if (sp->state != NGX_HTTP_SCEP_PEER_UP
                   && (sp->passes >= hc->passes
                       || sp->state == NGX_HTTP_SCEP_PEER_CHECKING))
        {
            sp->state = NGX_HTTP_SCEP_PEER_UP;
            sp->refused_until = 0;
        }

        ngx_http_scep_probe_save(pr, shpool, sp);

        /*
         * the same certificate's warning is logged once, although its
         * "(in N days)" counts down from probe to probe
         */

        if (ngx_http_scep_warning_len(sp->warning)
            != ngx_http_scep_warning_len(pr->warning)
            || ngx_strncmp(sp->warning, pr->warning,
                           ngx_http_scep_warning_len(pr->warning))
               != 0)
        {
            warn = (pr->warning[0] != '\0');
        }

        (void) ngx_cpystrn(sp->warning, pr->warning, sizeof(sp->warning));

    } else {
        sp->fails++;
        sp->passes = 0;

        (void) ngx_cpystrn(sp->reason, reason, sizeof(sp->reason));

        if ((sp->state == NGX_HTTP_SCEP_PEER_UP && sp->fails >= hc->fails)
            || pr->untrusted)
        {
            sp->state = NGX_HTTP_SCEP_PEER_DOWN;
        }
    }

    if (sp->state != old) {
        sp->last_change = ngx_time();
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (sp->state != old && sp->state == NGX_HTTP_SCEP_PEER_DOWN) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep health check: %V in upstream \"%V\" is down: %s",
                      &peer->name, &hc->uscf->host, reason);

    } else if (sp->state != old && sp->state == NGX_HTTP_SCEP_PEER_UP) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep health check: %V in upstream \"%V\" is up",
                      &peer->name, &hc->uscf->host);
    }

    if (warn) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "scep health check: %V in upstream \"%V\": %s",
                      &peer->name, &hc->uscf->host, pr->warning);
    }

    ngx_http_scep_cache_probe_done(peer, ok ? &pr->answers : NULL, &pr->ca);

    ngx_destroy_pool(pr->pool);
}


/* what the status page shows of a passing back end; the zone is locked */

static void
ngx_http_scep_probe_save(ngx_http_scep_probe_t *pr, ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp)
{
    int                       i, n;
    scep_cert_info_t         *ci;
    ngx_http_scep_sh_cert_t  *sc;

    sp->caps = pr->caps;

    n = ngx_min(pr->ca.ncerts, NGX_HTTP_SCEP_SH_CERTS);

    for (i = 0; i < n; i++) {
        ci = &pr->ca.certs[i];
        sc = &sp->certs[i];

        (void) ngx_cpystrn(sc->subject, (u_char *) ci->subject,
                           sizeof(sc->subject));
        (void) ngx_cpystrn(sc->serial, (u_char *) ci->serial,
                           sizeof(sc->serial));
        sc->not_after = ci->not_after;
        sc->is_ca = ci->is_ca ? 1 : 0;
    }

    sp->ncerts = n;

    ngx_http_scep_recipient_save(shpool, sp, &pr->ca);
}


/* the length of a warning without its "(in N days)" */

static size_t
ngx_http_scep_warning_len(u_char *warning)
{
    u_char  *p;

    p = (u_char *) ngx_strstr(warning, " (in ");

    return p ? (size_t) (p - warning) : ngx_strlen(warning);
}


static void
ngx_http_scep_dummy_handler(ngx_event_t *ev)
{
}
