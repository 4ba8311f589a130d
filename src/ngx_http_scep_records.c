
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Records in a shared zone of their own, each under a key of bytes that
 * the caller makes, with an expiry and a value after the key: what the
 * replay window (scep_replay_zone) and the pending requests
 * (scep_pending_zone) keep.  An rbtree keyed by a hash of the key and a
 * queue from newest to oldest, as limit_req keeps its states; when the
 * zone is full, the oldest records are forgotten first, and the caller
 * counts them and logs that at most once a minute for all workers.
 * Everything but the directive and the count of entries runs under the
 * zone's mutex, which the caller holds.
 */


#include "ngx_http_scep_module.h"


/* what a few records take at least, for the "too small" check */
#define NGX_HTTP_SCEP_RECORDS_MIN_ZONE  (8 * ngx_pagesize)

/* expired records removed per new one, and oldest evicted for room */
#define NGX_HTTP_SCEP_RECORDS_EXPIRE    4
#define NGX_HTTP_SCEP_RECORDS_EVICT     64

/* a full zone is logged at most this often, in seconds */
#define NGX_HTTP_SCEP_RECORDS_LOG_EVERY 60


static ngx_int_t ngx_http_scep_records_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_scep_records_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/*
 * The zone of a "NAME size ..." directive, "value" its size: NULL, said
 * at emerg, when the size is not one or too small.
 */

ngx_shm_zone_t *
ngx_http_scep_records_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, ngx_str_t *name, void *data)
{
    ssize_t          size;
    ngx_shm_zone_t  *shm_zone;

    size = ngx_parse_size(value);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"%V\": give a size"
                           " such as \"1m\"", value, &cmd->name);
        return NULL;
    }

    if (size < (ssize_t) NGX_HTTP_SCEP_RECORDS_MIN_ZONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" of \"%V\" is too small:"
                           " make it at least %uzk",
                           &cmd->name, value,
                           (size_t) NGX_HTTP_SCEP_RECORDS_MIN_ZONE / 1024);
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size, &ngx_http_scep_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_http_scep_records_init_zone;
    shm_zone->data = data;

    return shm_zone;
}


static ngx_int_t
ngx_http_scep_records_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_records_t  *rs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload with the same size: the records are kept */
        return NGX_OK;
    }

    rs = ngx_slab_alloc(shpool, sizeof(ngx_http_scep_records_t));
    if (rs == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(rs, sizeof(ngx_http_scep_records_t));

    ngx_rbtree_init(&rs->rbtree, &rs->sentinel,
                    ngx_http_scep_records_insert);
    ngx_queue_init(&rs->queue);

    shpool->data = rs;

    /* a full zone is the normal case: nginx need not log it */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_scep_records_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                 rc;
    ngx_rbtree_node_t       **p;
    ngx_http_scep_record_t   *rn, *rt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            rn = (ngx_http_scep_record_t *) node;
            rt = (ngx_http_scep_record_t *) temp;

            rc = (ngx_int_t) rn->len - (ngx_int_t) rt->len;

            if (rc == 0) {
                rc = ngx_memcmp(rn->data, rt->data, rn->len);
            }

            p = (rc < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_http_scep_record_t *
ngx_http_scep_records_find(ngx_http_scep_records_t *rs, uint32_t hash,
    u_char *key, size_t len)
{
    ngx_int_t                rc;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_http_scep_record_t  *rn;

    node = rs->rbtree.root;
    sentinel = rs->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        rn = (ngx_http_scep_record_t *) node;

        rc = (ngx_int_t) len - (ngx_int_t) rn->len;

        if (rc == 0) {
            rc = ngx_memcmp(key, rn->data, len);
        }

        if (rc == 0) {
            return rn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * A new record of the key, with room for "value_len" bytes after it
 * (at rn->data + rn->len), newest in the queue; the caller sets its
 * expiry and value.  A few expired records go with every new one, and
 * when the zone is full the oldest make room: "*evicted" says how many.
 * NULL when there is no room even so.
 */

ngx_http_scep_record_t *
ngx_http_scep_records_add(ngx_slab_pool_t *shpool,
    ngx_http_scep_records_t *rs, uint32_t hash, u_char *key, size_t len,
    size_t value_len, ngx_uint_t *evicted)
{
    size_t                   size;
    ngx_uint_t               i;
    ngx_msec_t               now;
    ngx_queue_t             *q;
    ngx_http_scep_record_t  *rn;

    now = ngx_current_msec;
    *evicted = 0;

    for (i = 0; i < NGX_HTTP_SCEP_RECORDS_EXPIRE; i++) {
        if (ngx_queue_empty(&rs->queue)) {
            break;
        }

        q = ngx_queue_last(&rs->queue);
        rn = ngx_queue_data(q, ngx_http_scep_record_t, queue);

        if ((ngx_msec_int_t) (rn->expires - now) > 0) {
            break;
        }

        ngx_http_scep_records_remove(shpool, rs, rn);
    }

    size = offsetof(ngx_http_scep_record_t, data) + len + value_len;

    rn = ngx_slab_alloc_locked(shpool, size);

    /* full: the oldest records make room */

    while (rn == NULL && *evicted < NGX_HTTP_SCEP_RECORDS_EVICT
           && !ngx_queue_empty(&rs->queue))
    {
        q = ngx_queue_last(&rs->queue);

        ngx_http_scep_records_remove(shpool, rs,
                           ngx_queue_data(q, ngx_http_scep_record_t, queue));
        (*evicted)++;

        rn = ngx_slab_alloc_locked(shpool, size);
    }

    if (rn == NULL) {
        return NULL;
    }

    rn->node.key = hash;
    rn->len = (u_short) len;
    rn->value_len = (u_short) value_len;
    ngx_memcpy(rn->data, key, len);

    ngx_rbtree_insert(&rs->rbtree, &rn->node);
    ngx_queue_insert_head(&rs->queue, &rn->queue);
    rs->entries++;

    return rn;
}


/* a record used again goes to the head of the queue */

void
ngx_http_scep_records_touch(ngx_http_scep_records_t *rs,
    ngx_http_scep_record_t *rn)
{
    ngx_queue_remove(&rn->queue);
    ngx_queue_insert_head(&rs->queue, &rn->queue);
}


void
ngx_http_scep_records_remove(ngx_slab_pool_t *shpool,
    ngx_http_scep_records_t *rs, ngx_http_scep_record_t *rn)
{
    ngx_queue_remove(&rn->queue);
    ngx_rbtree_delete(&rs->rbtree, &rn->node);
    ngx_slab_free_locked(shpool, rn);
    rs->entries--;
}


/*
 * Whether the caller is the one to log that records were evicted: at
 * most once a minute for all workers.
 */

ngx_uint_t
ngx_http_scep_records_log_full(ngx_http_scep_records_t *rs,
    ngx_uint_t evicted)
{
    if (evicted == 0
        || ngx_time() - rs->full_logged < NGX_HTTP_SCEP_RECORDS_LOG_EVERY)
    {
        return 0;
    }

    rs->full_logged = ngx_time();

    return 1;
}


/* forgets the record of the key, if there is one */

void
ngx_http_scep_records_delete(ngx_shm_zone_t *shm_zone, uint32_t hash,
    u_char *key, size_t len)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_record_t   *rn;
    ngx_http_scep_records_t  *rs;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    rs = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_records_find(rs, hash, key, len);

    if (rn) {
        ngx_http_scep_records_remove(shpool, rs, rn);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * After the mutex: "evicted" records counted in the module's counter at
 * "offset" of ngx_http_scep_counters_t, and, where "log" says this one
 * logs, a warn line of the directive "name", a zone of "size", saying
 * what a full zone costs
 */

void
ngx_http_scep_records_evicted(ngx_http_request_t *r, ngx_uint_t evicted,
    ngx_uint_t log, size_t offset, char *name, size_t size, char *cost)
{
    ngx_http_scep_sh_t         *msh;
    ngx_http_scep_main_conf_t  *smcf;

    if (evicted) {
        smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
        msh = ngx_http_scep_shared(smcf);

        if (msh) {
            (void) ngx_atomic_fetch_add(
                       (ngx_atomic_t *) ((u_char *) &msh->counters + offset),
                       evicted);
        }
    }

    if (log) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "%s of %uzk is full: %s; make \"%s\" larger",
                      name, size / 1024, cost, name);
    }
}


ngx_uint_t
ngx_http_scep_records_entries(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t                n;
    ngx_slab_pool_t          *shpool;
    ngx_http_scep_records_t  *rs;

    if (shm_zone == NULL) {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    rs = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);
    n = rs->entries;
    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}
