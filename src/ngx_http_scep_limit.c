
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * scep_backend_limit: at most so many PKIOperations in flight to each
 * server of an upstream, counted over all workers in the shared zone,
 * and a queue, first come first served, for those that find every
 * server full.
 *
 * A request waits in the precontent phase, before proxy_pass takes an
 * upstream connection: it holds a ticket of the upstream's queue (in the
 * record of its first server) and a timer on its connection's write
 * event, as limit_req's delay does; the worker serves others meanwhile.
 * When its ticket is the first and a server has a free slot, the phases
 * go on; the balancer wrapper (ngx_http_scep_upstream.c) then takes the
 * slot of the server it picks, skipping full ones as it skips unhealthy
 * ones, and gives it back when nginx frees the peer.
 */


#include "ngx_http_scep_module.h"


/* how often a waiting request looks again: from the first to the last */
#define NGX_HTTP_SCEP_POLL_FIRST   10
#define NGX_HTTP_SCEP_POLL_MAX     50

/*
 * A ticket in the queue for this long past the timeout belongs to a
 * worker that died while it waited, and that no worker replaced yet
 * (or one of an older generation): it is passed over
 */
#define NGX_HTTP_SCEP_HEAD_GRACE   1000


#define ngx_http_scep_gone(q, t)                                              \
    ((q)->tickets->gone[((t) % NGX_HTTP_SCEP_TICKETS) / 8]                    \
     & (1 << ((t) % 8)))


static ngx_http_scep_sh_hold_t *ngx_http_scep_holder(
    ngx_http_scep_sh_peer_t *sp, ngx_uint_t add);
static void ngx_http_scep_reserve(ngx_http_scep_sh_peer_t *q,
    ngx_int_t add);
static ngx_http_scep_sh_peer_t *ngx_http_scep_queue(
    ngx_http_scep_upstream_t *hc);
static ngx_uint_t ngx_http_scep_free_slots(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_peer_t **least);
static ngx_uint_t ngx_http_scep_queue_ahead(ngx_http_scep_sh_peer_t *q,
    ngx_uint_t ticket, ngx_uint_t enough);
static void ngx_http_scep_queue_advance(ngx_http_scep_sh_peer_t *q);
static void ngx_http_scep_queue_drop(ngx_http_scep_sh_peer_t *q,
    ngx_uint_t t);
static void ngx_http_scep_queue_leave(ngx_http_scep_sh_peer_t *q,
    ngx_http_scep_ctx_t *ctx);
static ngx_int_t ngx_http_scep_limit_busy(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_peer_t *least);
static void ngx_http_scep_limit_wait(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_limit_watch(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_upstream_t *hc);
static void ngx_http_scep_limit_cleanup(void *data);


char *
ngx_http_scep_backend_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_srv_conf_t *sscf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_msec_t   ms;
    ngx_uint_t   i;

    if (sscf->limit) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n == 0 || n > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number \"%V\" in \"scep_backend_limit\":"
                           " the PKIOperations in flight to each server,"
                           " from 1 to 65535", &value[1]);
        return NGX_CONF_ERROR;
    }

    sscf->limit = n;
    sscf->limit_queue = 0;
    sscf->limit_timeout = 10000;
    sscf->limit_file = cf->conf_file->file.name.data;
    sscf->limit_line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR || n > NGX_HTTP_SCEP_QUEUE_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in"
                                   " \"scep_backend_limit\": \"queue=\""
                                   " takes from 0 to %d requests",
                                   &value[i], NGX_HTTP_SCEP_QUEUE_MAX);
                return NGX_CONF_ERROR;
            }

            sscf->limit_queue = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0
                || ms > 600 * 1000)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in"
                                   " \"scep_backend_limit\": \"timeout=\""
                                   " takes a time from 1ms to 10m, such as"
                                   " \"timeout=10s\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            sscf->limit_timeout = ms;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The counts live in the records of scep_health_check: an upstream with
 * a limit needs it.  The upstreams are initialized by now.
 */

ngx_int_t
ngx_http_scep_limit_postconf(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_scep_upstream_t       *hc;
    ngx_http_scep_srv_conf_t       *sscf;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);

    if (umcf == NULL) {
        return NGX_OK;
    }

    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        if (uscfp[i]->srv_conf == NULL) {
            /* an implicit upstream of proxy_pass with an address */
            continue;
        }

        sscf = ngx_http_conf_upstream_srv_conf(uscfp[i], ngx_http_scep_module);

        if (sscf == NULL || sscf->limit == 0) {
            continue;
        }

        hc = sscf->health;

        if (hc == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"scep_backend_limit\" in %s:%ui needs"
                          " \"scep_health_check\" in upstream \"%V\" too:"
                          " the requests in flight are counted in its"
                          " records of the servers",
                          sscf->limit_file, sscf->limit_line,
                          &uscfp[i]->host);
            return NGX_ERROR;
        }

        hc->limit = sscf->limit;
        hc->limit_queue = sscf->limit_queue;
        hc->limit_timeout = sscf->limit_timeout;
    }

    return NGX_OK;
}


/*
 * A worker starts in the process slot of one that died: what that one
 * held in flight would be held forever.  The master gives a slot to a
 * new process only once its last one has exited.
 */

void
ngx_http_scep_limit_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i, j, t, n;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_sh_peer_t    *sp;
    ngx_http_scep_sh_hold_t    *h;
    ngx_http_scep_upstream_t  **hcp;
    ngx_http_scep_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_scep_module);

    if (smcf == NULL || smcf->shm_zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) smcf->shm_zone->shm.addr;
    hcp = smcf->upstreams.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        peer = hcp[i]->peers.elts;

        for (j = 0; j < hcp[i]->peers.nelts; j++) {
            if (peer[j].sh == NULL) {
                continue;
            }

            sp = peer[j].sh;
            h = ngx_http_scep_holder(sp, 0);

            if (h == NULL) {
                continue;
            }

            if (h->n) {
                ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                              "scep: %ui PKIOperations of a worker that"
                              " exited were still in flight to %V: their"
                              " slots of scep_backend_limit are given back",
                              (ngx_uint_t) h->n, &peer[j].name);
            }

            sp->in_flight -= ngx_min(sp->in_flight, h->n);
            h->n = 0;

            /* the first server's record holds the queue */

            if (j == 0) {
                sp->q_reserved -= ngx_min(sp->q_reserved, h->reserved);
            }

            h->reserved = 0;
        }

        /* and its requests that waited, lest they hold up the others */

        sp = ngx_http_scep_queue(hcp[i]);

        if (sp == NULL) {
            continue;
        }

        n = 0;

        for (t = sp->q_head; t != sp->q_next; t++) {

            if ((ngx_int_t) (t - sp->q_head) < 0) {
                /* passed over with the first, gone before it */
                continue;
            }

            if (sp->tickets->owner[t % NGX_HTTP_SCEP_TICKETS]
                    == (uint16_t) ngx_process_slot
                && !ngx_http_scep_gone(sp, t))
            {
                ngx_http_scep_queue_drop(sp, t);
                n++;
            }
        }

        if (n) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "scep: %ui PKIOperations of a worker that exited"
                          " waited in the queue of upstream \"%V\": their"
                          " places are given back", n, &hcp[i]->uscf->host);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The precontent phase, once a PKIOperation is to go on: NGX_DECLINED
 * lets it through, NGX_AGAIN has it wait, an HTTP status refuses it.
 */

ngx_int_t
ngx_http_scep_limit_handler(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    ngx_uint_t                 free;
    ngx_event_t               *wev;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_peer_t      *least;
    ngx_http_scep_sh_peer_t   *q;
    ngx_http_scep_upstream_t  *hc;

    if (ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION || ctx->limited) {
        return NGX_DECLINED;
    }

    hc = ngx_http_scep_location_health(r);

    if (hc == NULL || hc->limit == 0) {
        return NGX_DECLINED;
    }

    q = ngx_http_scep_queue(hc);

    if (q == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_scep_limit_watch(r, ctx, hc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    free = ngx_http_scep_free_slots(hc, ctx, &least);

    if (least == NULL) {
        /* no server to go to: the balancer answers that */
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    if (ctx->pinned) {
        /*
         * A CertPoll pinned to its server waits for that one only, out
         * of the upstream's queue, lest it hold up requests that other
         * servers could take; the reservations of the others may be
         * for any server and are not counted against its own
         */

        if (free) {
            ngx_http_scep_reserve(q, 1);
            ctx->reserved = 1;

            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_DECLINED;
        }

    } else if (q->q_head == q->q_next && free > q->q_reserved) {
        /* nobody waits, and a slot is free */
        ngx_http_scep_reserve(q, 1);
        ctx->reserved = 1;

        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    if (!ctx->pinned
        && (q->q_next - q->q_head - q->q_gone >= hc->limit_queue
            || q->q_next - q->q_head >= NGX_HTTP_SCEP_TICKETS))
    {
        ngx_shmtx_unlock(&shpool->mutex);

        /* at scep_log_level, as the refusal: a storm is not a fault */

        ngx_log_error(ctx->conf->log_level, r->connection->log, 0,
                      "scep: every server of upstream \"%V\" has %ui"
                      " PKIOperations in flight and its queue is full",
                      &hc->uscf->host, hc->limit);

        return ngx_http_scep_limit_busy(r, ctx, least);
    }

    if (!ctx->pinned && q->tickets == NULL) {
        q->tickets = ngx_slab_calloc_locked(shpool,
                                            sizeof(ngx_http_scep_sh_tickets_t));

        if (q->tickets == NULL) {
            ngx_shmtx_unlock(&shpool->mutex);

            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "scep: \"scep_zone\" has no room for the queue"
                          " of upstream \"%V\": make \"scep_zone\" larger",
                          &hc->uscf->host);

            return ngx_http_scep_limit_busy(r, ctx, least);
        }
    }

    if (!ctx->pinned) {
        ctx->ticket = q->q_next++;
        q->tickets->owner[ctx->ticket % NGX_HTTP_SCEP_TICKETS] =
                                                (uint16_t) ngx_process_slot;
        q->tickets->joined[ctx->ticket % NGX_HTTP_SCEP_TICKETS] =
                                                (uint32_t) ngx_current_msec;
        ctx->waiting = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->deadline = ngx_current_msec + hc->limit_timeout;
    ctx->poll = NGX_HTTP_SCEP_POLL_FIRST;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "scep limit: waiting, ticket %ui of \"%V\"",
                   ctx->ticket, &hc->uscf->host);

    /* as limit_req's delay: the client may go meanwhile */

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_scep_limit_wait;

    wev = r->connection->write;
    wev->delayed = 1;
    ngx_add_timer(wev, ctx->poll);

    return NGX_AGAIN;
}


/* the timer of a waiting request: its turn, or the timeout */

static void
ngx_http_scep_limit_wait(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 free, go, n;
    ngx_msec_t                 now;
    ngx_event_t               *wev;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_ctx_t       *ctx;
    ngx_http_scep_peer_t      *least;
    ngx_http_scep_sh_peer_t   *q;
    ngx_http_scep_upstream_t  *hc;

    wev = r->connection->write;

    if (wev->delayed) {
        /* the connection became writable: not the timer yet */

        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    ctx = ngx_http_scep_get_ctx(r);
    hc = ctx->limited;
    q = ngx_http_scep_queue(hc);
    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    /*
     * Tickets first that waited too long: their workers died while they
     * waited; all of them go at once, as none of them may go on
     */

    n = 0;

    while (ctx->waiting
           && q->q_head != q->q_next && q->q_head != ctx->ticket
           && (int32_t) ((uint32_t) now
                         - q->tickets->joined[q->q_head
                                              % NGX_HTTP_SCEP_TICKETS])
              > (int32_t) (hc->limit_timeout + NGX_HTTP_SCEP_HEAD_GRACE))
    {
        ngx_http_scep_queue_advance(q);
        n++;
    }

    if (n) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep: %ui requests of a worker that exited waited"
                      " first in the queue of upstream \"%V\": passed over",
                      n, &hc->uscf->host);
    }

    /*
     * It goes on when fewer wait before it than there are free slots:
     * several slots freed at once let as many go, in their order
     */

    free = ngx_http_scep_free_slots(hc, ctx, &least);

    if (ctx->pinned) {
        /* its own server's slots: see ngx_http_scep_limit_handler() */
        go = (least == NULL || free);

    } else {
        free = (free > q->q_reserved) ? free - q->q_reserved : 0;
        go = (least == NULL
              || (free
                  && ngx_http_scep_queue_ahead(q, ctx->ticket, free) < free));
    }

    if (go) {
        if (ctx->waiting) {
            ngx_http_scep_queue_leave(q, ctx);
        }

        if (least) {
            ngx_http_scep_reserve(q, 1);
            ctx->reserved = 1;
        }

        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "scep limit: ticket %ui goes on", ctx->ticket);

        if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        r->read_event_handler = ngx_http_block_reading;
        r->write_event_handler = ngx_http_core_run_phases;

        ngx_http_core_run_phases(r);
        return;
    }

    if ((ngx_msec_int_t) (ctx->deadline - now) <= 0) {
        if (ctx->waiting) {
            ngx_http_scep_queue_leave(q, ctx);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_error(ctx->conf->log_level, r->connection->log, 0,
                      "scep: a PKIOperation waited %M ms for a server of"
                      " upstream \"%V\" and is refused",
                      hc->limit_timeout, &hc->uscf->host);

        r->read_event_handler = ngx_http_block_reading;
        r->write_event_handler = ngx_http_request_empty_handler;

        rc = ngx_http_scep_limit_busy(r, ctx, least);
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->poll = ngx_min(ctx->poll * 2, NGX_HTTP_SCEP_POLL_MAX);

    wev->delayed = 1;
    ngx_add_timer(wev, ngx_min(ctx->poll,
                               (ngx_msec_t) (ctx->deadline - now) + 1));
}


/* 503 backend_busy, counted on the server that would have been next */

static ngx_int_t
ngx_http_scep_limit_busy(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_http_scep_peer_t *least)
{
    if (least && least->sh) {
        (void) ngx_atomic_fetch_add(&least->sh->busy, 1);
    }

    ctx->reject = NGX_HTTP_SCEP_REJECT_BACKEND_BUSY;

    return ngx_http_scep_send_reject(r, ctx);
}


/*
 * The balancer picked a server for a PKIOperation: takes one of its
 * slots, or says that it is full
 */

ngx_uint_t
ngx_http_scep_limit_take(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_http_scep_peer_t *peer)
{
    ngx_uint_t                 taken;
    ngx_slab_pool_t           *shpool;
    ngx_http_scep_sh_peer_t   *sp, *q;
    ngx_http_scep_sh_hold_t   *h;
    ngx_http_scep_upstream_t  *hc;

    hc = peer->upstream;
    sp = peer->sh;

    if (hc->limit == 0 || sp == NULL
        || ctx == NULL || ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION)
    {
        return 1;
    }

    if (ctx->slot) {
        /* one slot a request, whatever asks again */
        ngx_http_scep_limit_give(ctx);
    }

    if (ctx->limited == NULL
        && ngx_http_scep_limit_watch(r, ctx, hc) != NGX_OK)
    {
        /* without a way to give it back, the slot is not taken */
        return 1;
    }

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;
    q = ngx_http_scep_queue(hc);

    ngx_shmtx_lock(&shpool->mutex);

    taken = (sp->in_flight < hc->limit);

    if (taken) {
        sp->in_flight++;

        h = ngx_http_scep_holder(sp, 1);

        if (h) {
            h->n++;
        }

        ctx->slot = peer;

        if (ctx->reserved && q) {
            ngx_http_scep_reserve(q, -1);
            ctx->reserved = 0;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!taken) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "scep limit: %V is full", &peer->name);
    }

    return taken;
}


/* nginx is done with the server: its slot is given back */

void
ngx_http_scep_limit_give(ngx_http_scep_ctx_t *ctx)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_sh_peer_t  *sp;
    ngx_http_scep_sh_hold_t  *h;

    if (ctx == NULL || ctx->slot == NULL) {
        return;
    }

    sp = ctx->slot->sh;
    shpool = (ngx_slab_pool_t *) ctx->slot->upstream->shm_zone->shm.addr;

    ctx->slot = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    if (sp->in_flight) {
        sp->in_flight--;
    }

    h = ngx_http_scep_holder(sp, 0);

    if (h && h->n) {
        h->n--;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The balancer passed over every server it was offered because each was
 * full (a failover of proxy_next_upstream, which does not wait in the
 * queue, or a race with another worker): 503 backend_busy, not the 503
 * of no healthy back end, and counted as the refusals of the queue
 */

void
ngx_http_scep_limit_full(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_http_scep_upstream_t *hc)
{
    ngx_slab_pool_t       *shpool;
    ngx_http_scep_peer_t  *least;

    shpool = (ngx_slab_pool_t *) hc->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    (void) ngx_http_scep_free_slots(hc, ctx, &least);
    ngx_shmtx_unlock(&shpool->mutex);

    if (least && least->sh) {
        (void) ngx_atomic_fetch_add(&least->sh->busy, 1);
    }

    ctx->backend_full = 1;
    ctx->reject = NGX_HTTP_SCEP_REJECT_BACKEND_BUSY;

    ngx_log_error(ctx->conf->log_level, r->connection->log, 0,
                  "scep: every server of upstream \"%V\" that a"
                  " PKIOperation could go to has %ui in flight",
                  &hc->uscf->host, hc->limit);
}


/* the requests waiting for the servers of an upstream */

ngx_uint_t
ngx_http_scep_limit_waiting(ngx_http_scep_upstream_t *hc)
{
    ngx_http_scep_sh_peer_t  *q;

    /* under the mutex */

    q = ngx_http_scep_queue(hc);

    if (q == NULL) {
        return 0;
    }

    return q->q_next - q->q_head - q->q_gone;
}


static ngx_int_t
ngx_http_scep_limit_watch(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx,
    ngx_http_scep_upstream_t *hc)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_scep_limit_cleanup;
    cln->data = ctx;

    ctx->limited = hc;

    return NGX_OK;
}


/*
 * Whatever way the request ends (the client left while it waited or
 * while its server worked, a timeout, a redirect), nothing stays held
 */

static void
ngx_http_scep_limit_cleanup(void *data)
{
    ngx_http_scep_ctx_t  *ctx = data;

    ngx_slab_pool_t          *shpool;
    ngx_http_scep_sh_peer_t  *q;

    ngx_http_scep_limit_give(ctx);

    if (!ctx->waiting && !ctx->reserved) {
        return;
    }

    q = ngx_http_scep_queue(ctx->limited);
    shpool = (ngx_slab_pool_t *) ctx->limited->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (ctx->waiting) {
        ngx_http_scep_queue_leave(q, ctx);
    }

    if (ctx->reserved) {
        ngx_http_scep_reserve(q, -1);
        ctx->reserved = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Under the mutex: this worker's entry of what it holds on a server, or
 * with "add" a free one for it; NULL when it has none, or when 64 other
 * workers hold requests there (they are not told apart then)
 */

static ngx_http_scep_sh_hold_t *
ngx_http_scep_holder(ngx_http_scep_sh_peer_t *sp, ngx_uint_t add)
{
    ngx_uint_t                i;
    ngx_http_scep_sh_hold_t  *h, *free;

    free = NULL;

    for (i = 0; i < NGX_HTTP_SCEP_HOLDERS; i++) {
        h = &sp->held[i];

        if (h->n == 0 && h->reserved == 0) {
            if (free == NULL) {
                free = h;
            }

            continue;
        }

        if (h->slot == (uint16_t) ngx_process_slot) {
            return h;
        }
    }

    if (!add || free == NULL) {
        return NULL;
    }

    free->slot = (uint16_t) ngx_process_slot;

    return free;
}


/*
 * Under the mutex: a request let through, or placed by its balancer.
 * Both happen in one go of the worker, but a worker that dies between
 * them leaves its count to the worker that starts in its place.
 */

static void
ngx_http_scep_reserve(ngx_http_scep_sh_peer_t *q, ngx_int_t add)
{
    ngx_http_scep_sh_hold_t  *h;

    h = ngx_http_scep_holder(q, add > 0);

    if (add > 0) {
        q->q_reserved++;

        if (h) {
            h->reserved++;
        }

        return;
    }

    if (q->q_reserved) {
        q->q_reserved--;
    }

    if (h && h->reserved) {
        h->reserved--;
    }
}


static ngx_http_scep_sh_peer_t *
ngx_http_scep_queue(ngx_http_scep_upstream_t *hc)
{
    ngx_http_scep_peer_t  *peer;

    if (hc->peers.nelts == 0 || hc->shm_zone == NULL) {
        return NULL;
    }

    peer = hc->peers.elts;

    return peer[0].sh;
}


/*
 * Under the mutex: the free slots of the servers a request may go to
 * (the healthy ones, or the one its CertPoll is pinned to), and the
 * least busy of them, or NULL where none may be used
 */

static ngx_uint_t
ngx_http_scep_free_slots(ngx_http_scep_upstream_t *hc,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_peer_t **least)
{
    ngx_uint_t             i, free;
    ngx_http_scep_peer_t  *peer;

    free = 0;
    *least = NULL;
    peer = hc->peers.elts;

    for (i = 0; i < hc->peers.nelts; i++) {

        if (peer[i].sh == NULL
            || !ngx_http_scep_peer_healthy(&peer[i])
            || (ctx->pinned && ctx->pinned != &peer[i]))
        {
            continue;
        }

        if (peer[i].sh->in_flight < hc->limit) {
            free += hc->limit - peer[i].sh->in_flight;
        }

        if (*least == NULL || peer[i].sh->in_flight < (*least)->sh->in_flight)
        {
            *least = &peer[i];
        }
    }

    return free;
}


/*
 * Under the mutex: the tickets that wait before this one, counted up to
 * "enough"; none for one passed over already
 */

static ngx_uint_t
ngx_http_scep_queue_ahead(ngx_http_scep_sh_peer_t *q, ngx_uint_t ticket,
    ngx_uint_t enough)
{
    ngx_uint_t  t, n;

    if ((ngx_int_t) (ticket - q->q_head) < 0) {
        return 0;
    }

    n = 0;

    for (t = q->q_head; t != ticket && n < enough; t++) {
        if (!ngx_http_scep_gone(q, t)) {
            n++;
        }
    }

    return n;
}


/* under the mutex: the first ticket is done, and those gone after it */

static void
ngx_http_scep_queue_advance(ngx_http_scep_sh_peer_t *q)
{
    ngx_uint_t  t;

    q->q_head++;

    while (q->q_head != q->q_next && ngx_http_scep_gone(q, q->q_head)) {
        t = q->q_head;
        q->tickets->gone[(t % NGX_HTTP_SCEP_TICKETS) / 8] &= ~(1 << (t % 8));
        q->q_gone--;
        q->q_head++;
    }
}


/* under the mutex: a waiting request goes on, or leaves the queue */

static void
ngx_http_scep_queue_leave(ngx_http_scep_sh_peer_t *q,
    ngx_http_scep_ctx_t *ctx)
{
    ctx->waiting = 0;

    if ((ngx_int_t) (ctx->ticket - q->q_head) < 0) {
        /* passed over already */
        return;
    }

    ngx_http_scep_queue_drop(q, ctx->ticket);
}


/* under the mutex: a ticket still in the queue is done */

static void
ngx_http_scep_queue_drop(ngx_http_scep_sh_peer_t *q, ngx_uint_t t)
{
    if (t == q->q_head) {
        ngx_http_scep_queue_advance(q);
        return;
    }

    q->tickets->gone[(t % NGX_HTTP_SCEP_TICKETS) / 8] |=
                                                    (u_char) (1 << (t % 8));
    q->q_gone++;
}
