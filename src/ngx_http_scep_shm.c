
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The module's shared zone: one health record per back end, the same in
 * every worker, kept across "nginx -s reload" (records are found again
 * by upstream name and address).
 *
 * Workers keep pointers to the records of their configuration (the
 * probes they run, the requests they serve) for as long as they live,
 * and the workers of an older configuration can live long after a
 * reload: a long request, a probe in flight, no worker_shutdown_timeout.
 * So a record is freed, and its memory reused, only when no process
 * that can still reach it is alive.  Each configuration read gets a
 * number, and each record the number of the last one that has it; at a
 * reload the master, which knows its children, notes the configuration
 * each of them runs, and frees the records that only configurations
 * older than all of them have.  Memory stays bounded by the back ends of
 * the configurations that still have workers, where never freeing
 * (as nginx's own upstream zone does, with "noreuse") would grow with
 * every reload that changes addresses.
 */


#include "ngx_http_scep_module.h"


static ngx_int_t ngx_http_scep_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_scep_oldest_config(ngx_http_scep_sh_t *sh);
static ngx_uint_t ngx_http_scep_child(ngx_pid_t pid);
static ngx_http_scep_sh_peer_t *ngx_http_scep_sh_peer(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_t *sh, ngx_http_scep_upstream_t *hc,
    ngx_http_scep_peer_t *peer, ngx_log_t *log);
static ngx_uint_t ngx_http_scep_shm_used(ngx_cycle_t *cycle);


static ngx_str_t  ngx_http_scep_zone_name = ngx_string("ngx_http_scep_module");


/* slab overhead and the zone's own header, as measured on x86_64 */
#define NGX_HTTP_SCEP_ZONE_BASE  (64 * 1024)


ngx_int_t
ngx_http_scep_shm_init(ngx_conf_t *cf, ngx_http_scep_main_conf_t *smcf)
{
    size_t                      need;
    ngx_uint_t                  i, n;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_scep_upstream_t  **hcp;

    hcp = smcf->upstreams.elts;
    n = 0;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        n += hcp[i]->peers.nelts;
    }

    /*
     * a record and its key take up to 2k of slab; during a reload the
     * records of the previous configuration are kept too
     */

    need = NGX_HTTP_SCEP_ZONE_BASE + sizeof(ngx_http_scep_sh_t)
           + 2 * n * ngx_align(sizeof(ngx_http_scep_sh_peer_t) + 256, 2048);

    if (smcf->zone_size == NGX_CONF_UNSET_SIZE) {
        smcf->zone_size = ngx_max(need, 1024 * 1024);

    } else if (smcf->zone_size < need) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep_zone\" of %uzk is too small for the %ui"
                      " back ends under health checks: make it at least"
                      " %uzk", smcf->zone_size / 1024, n,
                      (need + 1023) / 1024);
        return NGX_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_scep_zone_name,
                                     smcf->zone_size, &ngx_http_scep_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_scep_init_zone;
    shm_zone->data = smcf;
    smcf->shm_zone = shm_zone;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        hcp[i]->shm_zone = shm_zone;
    }

    return NGX_OK;
}


/*
 * With "master_process off" nginx reloads in its one process, and there
 * a new configuration never runs: nginx reads it, frees the shared zones
 * whose size changed, and calls no module's init_process for it, so it
 * takes no connection for it and none of its probes start, while the
 * timers and the requests of the running configuration go on over zones
 * that may be gone.  So a reload there of a configuration that has the
 * module's zones, or that replaces one that has them, fails: the running
 * configuration goes on, and a restart reads the new one.  "nginx -t"
 * and the first start read over nginx's init cycle, and are not refused.
 */

ngx_int_t
ngx_http_scep_shm_reload_single(ngx_conf_t *cf,
    ngx_http_scep_main_conf_t *smcf)
{
    ngx_cycle_t  *old;

    old = cf->cycle->old_cycle;

    if (ngx_process != NGX_PROCESS_SINGLE
        || old == NULL
        || ngx_is_init_cycle(old))
    {
        return NGX_OK;
    }

    if (smcf->upstreams.nelts == 0
        && !smcf->any
        && !ngx_http_scep_shm_used(cf->cycle)
        && !ngx_http_scep_shm_used(old))
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "nginx with \"master_process off\" cannot reload a"
                  " configuration that uses the scep module: nginx would"
                  " start none of its health checks and take no connection"
                  " for it; the running configuration stays, stop and start"
                  " nginx to load the new one");

    return NGX_ERROR;
}


/* a shared zone of the module in a cycle's, or in one being read */

static ngx_uint_t
ngx_http_scep_shm_used(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *shm_zone;

    part = &cycle->shared_memory.part;
    shm_zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            shm_zone = part->elts;
            i = 0;
        }

        if (shm_zone[i].tag == &ngx_http_scep_module) {
            return 1;
        }
    }
}


static ngx_int_t
ngx_http_scep_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_scep_main_conf_t *smcf = shm_zone->data;

    ngx_uint_t                  i, j, oldest;
    ngx_queue_t                *q, *next;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_sh_t         *sh;
    ngx_http_scep_peer_t       *peer;
    ngx_http_scep_sh_peer_t    *sp;
    ngx_http_scep_upstream_t  **hcp;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload: the zone and its records are still there */
        sh = shpool->data;

    } else {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_scep_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&sh->peers);
        sh->started = ngx_time();
        shpool->data = sh;

        shpool->log_nomem = 0;
    }

    ngx_shmtx_lock(&shpool->mutex);

    /*
     * "generation", the configurations loaded, is counted when the
     * first worker of this one starts: a reload can still fail after
     * this (a listen socket, another module), and its workers never run
     */

    smcf->config = ++sh->configs;

    oldest = ngx_http_scep_oldest_config(sh);

    for (q = ngx_queue_head(&sh->peers);
         q != ngx_queue_sentinel(&sh->peers);
         q = next)
    {
        next = ngx_queue_next(q);
        sp = ngx_queue_data(q, ngx_http_scep_sh_peer_t, queue);

        if (sp->generation < oldest) {
            ngx_queue_remove(q);
            ngx_http_scep_cache_free_locked(shpool, sp);
            ngx_http_scep_recipient_free_locked(shpool, sp);

            if (sp->tickets) {
                ngx_slab_free_locked(shpool, sp->tickets);
            }

            ngx_slab_free_locked(shpool, sp);
        }
    }

    hcp = smcf->upstreams.elts;

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        peer = hcp[i]->peers.elts;

        for (j = 0; j < hcp[i]->peers.nelts; j++) {
            peer[j].sh = ngx_http_scep_sh_peer(shpool, sh, hcp[i], &peer[j],
                                               shm_zone->shm.log);
            if (peer[j].sh == NULL) {
                ngx_shmtx_unlock(&shpool->mutex);

                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "\"scep_zone\" is too small for the back ends"
                              " under health checks, with those of older"
                              " configurations whose workers are still"
                              " finishing requests: make it larger, or"
                              " bound their time with"
                              " \"worker_shutdown_timeout\"");
                return NGX_ERROR;
            }

            peer[j].sh->generation = smcf->config;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/*
 * The oldest configuration that a live process may still run: the
 * master notes each child it has not seen before with the configuration
 * that runs now.  A child is not seen before it is forked, and it is
 * forked for the configuration that runs at the time, so a child is
 * never noted with a configuration newer than its own: at worst with an
 * older one, whose records then live a little longer.  Children that
 * are gone are forgotten.  The zone is locked.
 */

static ngx_uint_t
ngx_http_scep_oldest_config(ngx_http_scep_sh_t *sh)
{
    ngx_int_t                 i;
    ngx_uint_t                j, n, oldest;
    ngx_http_scep_sh_proc_t  *pr;

    oldest = ngx_min(sh->running, sh->configs);

    if (ngx_process != NGX_PROCESS_MASTER) {
        /* nginx -t, the first start, one process (master_process off) */
        return oldest;
    }

    pr = sh->procs;

    /* forget the children that are gone */

    n = 0;

    for (j = 0; j < sh->nprocs; j++) {
        if (ngx_http_scep_child(pr[j].pid)) {
            pr[n++] = pr[j];
        }
    }

    sh->nprocs = n;

    /* note the new ones */

    for (i = 0; i < ngx_last_process; i++) {

        if (!ngx_http_scep_child(ngx_processes[i].pid)) {
            continue;
        }

        for (j = 0; j < n; j++) {
            if (pr[j].pid == ngx_processes[i].pid) {
                break;
            }
        }

        if (j == n && sh->nprocs < NGX_MAX_PROCESSES) {
            pr[sh->nprocs].pid = ngx_processes[i].pid;
            pr[sh->nprocs].config = sh->running;
            sh->nprocs++;
        }
    }

    for (j = 0; j < sh->nprocs; j++) {
        if (pr[j].config < oldest) {
            oldest = pr[j].config;
        }
    }

    return oldest;
}


/* a live child of the master: a worker, a cache manager or loader */

static ngx_uint_t
ngx_http_scep_child(ngx_pid_t pid)
{
    ngx_int_t  i;

    if (pid == -1) {
        return 0;
    }

    for (i = 0; i < ngx_last_process; i++) {
        if (ngx_processes[i].pid == pid) {
            return !ngx_processes[i].exited && !ngx_processes[i].detached;
        }
    }

    return 0;
}


/* finds the record of a back end, or makes one; the zone is locked */

static ngx_http_scep_sh_peer_t *
ngx_http_scep_sh_peer(ngx_slab_pool_t *shpool, ngx_http_scep_sh_t *sh,
    ngx_http_scep_upstream_t *hc, ngx_http_scep_peer_t *peer, ngx_log_t *log)
{
    u_char                   *p;
    size_t                    len;
    ngx_queue_t              *q;
    ngx_http_scep_sh_peer_t  *sp;

    len = hc->uscf->host.len + 1 + peer->name.len + 1 + hc->answers_key.len;

    for (q = ngx_queue_head(&sh->peers);
         q != ngx_queue_sentinel(&sh->peers);
         q = ngx_queue_next(q))
    {
        sp = ngx_queue_data(q, ngx_http_scep_sh_peer_t, queue);

        p = sp->key.data;

        if (sp->key.len == len
            && ngx_strncmp(p, hc->uscf->host.data, hc->uscf->host.len) == 0
            && ngx_strncmp(p + hc->uscf->host.len + 1, peer->name.data,
                           peer->name.len)
               == 0
            && ngx_memcmp(p + len - hc->answers_key.len,
                          hc->answers_key.data, hc->answers_key.len)
               == 0)
        {
            return sp;
        }
    }

    sp = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_scep_sh_peer_t) + len);
    if (sp == NULL) {
        return NULL;
    }

    p = (u_char *) sp + sizeof(ngx_http_scep_sh_peer_t);

    sp->key.data = p;
    sp->key.len = len;

    p = ngx_cpymem(p, hc->uscf->host.data, hc->uscf->host.len);
    *p++ = ' ';
    p = ngx_cpymem(p, peer->name.data, peer->name.len);
    *p++ = ' ';
    ngx_memcpy(p, hc->answers_key.data, hc->answers_key.len);

    sp->state = hc->mandatory ? NGX_HTTP_SCEP_PEER_CHECKING
                              : NGX_HTTP_SCEP_PEER_UP;
    sp->last_change = ngx_time();

    ngx_queue_insert_tail(&sh->peers, &sp->queue);

    return sp;
}


ngx_http_scep_sh_t *
ngx_http_scep_shared(ngx_http_scep_main_conf_t *smcf)
{
    if (smcf->shm_zone == NULL) {
        return NULL;
    }

    return ((ngx_slab_pool_t *) smcf->shm_zone->shm.addr)->data;
}


ngx_int_t
ngx_http_scep_peer_healthy(ngx_http_scep_peer_t *peer)
{
    if (peer->sh == NULL) {
        return 1;
    }

    return peer->sh->state == NGX_HTTP_SCEP_PEER_UP;
}


/* a worker of this configuration starts: it is the one that runs now */

void
ngx_http_scep_shm_running(ngx_http_scep_main_conf_t *smcf)
{
    ngx_slab_pool_t     *shpool;
    ngx_http_scep_sh_t  *sh;

    sh = ngx_http_scep_shared(smcf);

    if (sh == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) smcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->running < smcf->config) {
        sh->running = smcf->config;
        sh->generation++;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}
