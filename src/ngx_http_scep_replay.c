
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The replay window (scep_replay_window, scep_replay_zone): a
 * PKIOperation whose (transactionID, senderNonce) pair was passed on
 * within the window, signed by the same key, is answered 400
 * replayed_message.  The pairs live in a shared zone, an rbtree keyed by
 * a hash of the pair and a queue from newest to oldest, as limit_req
 * keeps its states; when the zone is full, the oldest pairs are
 * forgotten first, counted and logged at most once a minute, and the
 * request passes.
 *
 * A pair is kept only once the message's signature has verified, in the
 * precontent phase, so that a forged message cannot block a device's
 * real one.  It is bound to the signer's public key (the SHA-256 that
 * the checks make of it): a PKCSReq is signed with a key its sender
 * makes up, so anyone who learnt a device's pair (from a log of request
 * lines, say) could otherwise sign it first with a key of their own and
 * have the device's real message refused.  And a pair is forgotten again
 * when the request reached no back end (none healthy, connect errors and
 * timeouts), so that a device may send the same message again after such
 * a 502, 503 or 504.
 */


#include "ngx_http_scep_module.h"


/* what one pair takes at least, for the "too small" check */
#define NGX_HTTP_SCEP_REPLAY_MIN_ZONE  (8 * ngx_pagesize)

/* expired pairs removed per request, and oldest evicted for room */
#define NGX_HTTP_SCEP_REPLAY_EXPIRE    4
#define NGX_HTTP_SCEP_REPLAY_EVICT     64

/* a full zone is logged at most this often, in seconds */
#define NGX_HTTP_SCEP_REPLAY_LOG_EVERY 60

/* transactionID, senderNonce and the signer's key hash */
#define NGX_HTTP_SCEP_REPLAY_KEY_MAX                                          \
    (SCEP_TRANSACTION_ID_MAX + 16 + SCEP_KEY_HASH_LEN)


typedef struct {
    ngx_rbtree_node_t          node;         /* node.key: crc32 of pair */
    ngx_queue_t                queue;
    ngx_msec_t                 expires;
    u_short                    len;
    u_char                     data[1];      /* ngx_http_scep_replay_key() */
} ngx_http_scep_replay_node_t;


typedef struct {
    ngx_rbtree_t               rbtree;
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                queue;        /* newest first */
    ngx_uint_t                 entries;
    time_t                     full_logged;  /* the last "full" line */
} ngx_http_scep_replay_sh_t;


static ngx_int_t ngx_http_scep_replay_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_scep_replay_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_scep_replay_node_t *ngx_http_scep_replay_find(
    ngx_http_scep_replay_sh_t *sh, uint32_t hash, u_char *key, size_t len);
static size_t ngx_http_scep_replay_key(ngx_http_scep_ctx_t *ctx,
    u_char *key, uint32_t *hash);
static void ngx_http_scep_replay_remove(ngx_slab_pool_t *shpool,
    ngx_http_scep_replay_sh_t *sh, ngx_http_scep_replay_node_t *rn);


static ngx_str_t  ngx_http_scep_replay_zone_name =
    ngx_string("ngx_http_scep_replay");


char *
ngx_http_scep_replay_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_main_conf_t *smcf = conf;

    ssize_t          size;
    ngx_str_t       *value;
    ngx_shm_zone_t  *shm_zone;

    if (smcf->replay_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"scep_replay_zone\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) NGX_HTTP_SCEP_REPLAY_MIN_ZONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scep_replay_zone\" of \"%V\" is too small:"
                           " make it at least %uzk",
                           &value[1],
                           (size_t) NGX_HTTP_SCEP_REPLAY_MIN_ZONE / 1024);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_scep_replay_zone_name,
                                     size, &ngx_http_scep_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_scep_replay_init_zone;
    shm_zone->data = smcf;

    smcf->replay_size = size;
    smcf->replay_zone = shm_zone;

    return NGX_CONF_OK;
}


char *
ngx_http_scep_replay_window(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_scep_loc_conf_t *slcf = conf;

    ngx_str_t                  *value;
    ngx_msec_t                  ms;
    ngx_http_scep_main_conf_t  *smcf;

    if (slcf->replay_window != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        slcf->replay_window = 0;
        return NGX_CONF_OK;
    }

    ms = ngx_parse_time(&value[1], 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"scep_replay_window\":"
                           " give a time such as \"10m\", or \"off\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ms > 7 * 86400 * 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"scep_replay_window\" of \"%V\" is too long:"
                           " make it at most 7d", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->replay_window = ms;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (smcf->replay_file == NULL) {
        smcf->replay_file = cf->conf_file->file.name.data;
        smcf->replay_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_scep_replay_init(ngx_conf_t *cf)
{
    ngx_http_scep_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);

    if (smcf->replay_file && smcf->replay_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"scep_replay_window\" in %s:%ui needs a zone to"
                      " keep the pairs in: add \"scep_replay_zone 1m;\""
                      " to the http block", smcf->replay_file,
                      smcf->replay_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_replay_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_replay_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {
        /* a reload with the same size: the pairs are kept */
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_scep_replay_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_scep_replay_sh_t));

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_http_scep_replay_insert);
    ngx_queue_init(&sh->queue);

    shpool->data = sh;

    /* a full zone is the normal case: nginx need not log it */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_scep_replay_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t           **p;
    ngx_http_scep_replay_node_t  *rn, *rt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            rn = (ngx_http_scep_replay_node_t *) node;
            rt = (ngx_http_scep_replay_node_t *) temp;

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


static ngx_http_scep_replay_node_t *
ngx_http_scep_replay_find(ngx_http_scep_replay_sh_t *sh, uint32_t hash,
    u_char *key, size_t len)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_scep_replay_node_t  *rn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        rn = (ngx_http_scep_replay_node_t *) node;

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
 * The pair as bytes: transactionID, the 16-byte senderNonce, and the
 * SHA-256 of the signer's public key, there once the signature verified.
 */

static size_t
ngx_http_scep_replay_key(ngx_http_scep_ctx_t *ctx, u_char *key,
    uint32_t *hash)
{
    size_t  len;

    len = ctx->result.transaction_id_len;

    ngx_memcpy(key, ctx->result.transaction_id, len);
    ngx_memcpy(key + len, ctx->result.sender_nonce,
               sizeof(ctx->result.sender_nonce));

    len += sizeof(ctx->result.sender_nonce);

    ngx_memcpy(key + len, ctx->result.signer_key_hash, SCEP_KEY_HASH_LEN);

    len += SCEP_KEY_HASH_LEN;

    *hash = ngx_crc32_short(key, len);

    return len;
}


static void
ngx_http_scep_replay_remove(ngx_slab_pool_t *shpool,
    ngx_http_scep_replay_sh_t *sh, ngx_http_scep_replay_node_t *rn)
{
    ngx_queue_remove(&rn->queue);
    ngx_rbtree_delete(&sh->rbtree, &rn->node);
    ngx_slab_free_locked(shpool, rn);
    sh->entries--;
}


/*
 * The precontent phase, once the signature has verified: NGX_BUSY for a
 * pair passed on within the window with the same signer's key, else
 * NGX_OK (the pair is kept).
 */

ngx_int_t
ngx_http_scep_replay_check(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                        key[NGX_HTTP_SCEP_REPLAY_KEY_MAX];
    size_t                        len, size;
    uint32_t                      hash;
    ngx_msec_t                    now;
    ngx_uint_t                    i, evicted, logged;
    ngx_queue_t                  *q;
    ngx_slab_pool_t              *shpool;
    ngx_http_scep_sh_t           *msh;
    ngx_http_scep_replay_sh_t    *sh;
    ngx_http_scep_loc_conf_t     *slcf;
    ngx_http_scep_main_conf_t    *smcf;
    ngx_http_scep_replay_node_t  *rn;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_scep_module);
    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    if (slcf->replay_window == 0 || smcf->replay_zone == NULL
        || ctx->op != NGX_HTTP_SCEP_OP_PKIOPERATION
        || ctx->result.transaction_id_len == 0)
    {
        return NGX_OK;
    }

    len = ngx_http_scep_replay_key(ctx, key, &hash);

    shpool = (ngx_slab_pool_t *) smcf->replay_zone->shm.addr;
    sh = shpool->data;
    now = ngx_current_msec;
    evicted = 0;
    logged = 1;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_replay_find(sh, hash, key, len);

    if (rn && (ngx_msec_int_t) (rn->expires - now) > 0) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_BUSY;
    }

    if (rn) {
        /* seen before the window: a new window from now */
        rn->expires = now + slcf->replay_window;
        ngx_queue_remove(&rn->queue);
        ngx_queue_insert_head(&sh->queue, &rn->queue);

        ngx_shmtx_unlock(&shpool->mutex);

        ctx->replay_kept = 1;
        return NGX_OK;
    }

    /* a few expired pairs go with every new one */

    for (i = 0; i < NGX_HTTP_SCEP_REPLAY_EXPIRE; i++) {
        if (ngx_queue_empty(&sh->queue)) {
            break;
        }

        q = ngx_queue_last(&sh->queue);
        rn = ngx_queue_data(q, ngx_http_scep_replay_node_t, queue);

        if ((ngx_msec_int_t) (rn->expires - now) > 0) {
            break;
        }

        ngx_http_scep_replay_remove(shpool, sh, rn);
    }

    size = offsetof(ngx_http_scep_replay_node_t, data) + len;

    rn = ngx_slab_alloc_locked(shpool, size);

    /* full: the oldest pairs make room, the request is never refused */

    while (rn == NULL && evicted < NGX_HTTP_SCEP_REPLAY_EVICT
           && !ngx_queue_empty(&sh->queue))
    {
        q = ngx_queue_last(&sh->queue);

        ngx_http_scep_replay_remove(shpool, sh,
                      ngx_queue_data(q, ngx_http_scep_replay_node_t, queue));
        evicted++;

        rn = ngx_slab_alloc_locked(shpool, size);
    }

    /* while pairs are evicted, a line a minute at most, for all workers */

    if (evicted
        && ngx_time() - sh->full_logged >= NGX_HTTP_SCEP_REPLAY_LOG_EVERY)
    {
        sh->full_logged = ngx_time();
        logged = 0;
    }

    if (rn) {
        rn->node.key = hash;
        rn->expires = now + slcf->replay_window;
        rn->len = (u_short) len;
        ngx_memcpy(rn->data, key, len);

        ngx_rbtree_insert(&sh->rbtree, &rn->node);
        ngx_queue_insert_head(&sh->queue, &rn->queue);
        sh->entries++;

        ctx->replay_kept = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (evicted) {
        msh = ngx_http_scep_shared(smcf);

        if (msh) {
            (void) ngx_atomic_fetch_add(&msh->counters.replay_evicted,
                                        evicted);
        }
    }

    if (!logged) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scep_replay_zone of %uzk is full: the oldest pairs"
                      " are forgotten before their window ends; make"
                      " \"scep_replay_zone\" larger",
                      (size_t) smcf->replay_size / 1024);
    }

    return NGX_OK;
}


/*
 * The log phase: a pair kept for a request that reached no back end
 * (none healthy, connect errors and timeouts) is forgotten, so that the
 * device may send the same message again.  Once a back end took the
 * connection, it may have the message, whatever became of the answer.
 */

void
ngx_http_scep_replay_log(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx)
{
    u_char                        key[NGX_HTTP_SCEP_REPLAY_KEY_MAX];
    size_t                        len;
    uint32_t                      hash;
    ngx_uint_t                    i;
    ngx_slab_pool_t              *shpool;
    ngx_http_scep_replay_sh_t    *sh;
    ngx_http_upstream_state_t    *state;
    ngx_http_scep_main_conf_t    *smcf;
    ngx_http_scep_replay_node_t  *rn;

    if (!ctx->replay_kept) {
        return;
    }

    if (r->upstream_states) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer && state[i].connect_time != (ngx_msec_t) -1) {
                return;
            }
        }
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);

    len = ngx_http_scep_replay_key(ctx, key, &hash);

    shpool = (ngx_slab_pool_t *) smcf->replay_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);

    rn = ngx_http_scep_replay_find(sh, hash, key, len);

    if (rn) {
        ngx_http_scep_replay_remove(shpool, sh, rn);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ctx->replay_kept = 0;
}


ngx_uint_t
ngx_http_scep_replay_entries(ngx_http_scep_main_conf_t *smcf)
{
    ngx_uint_t                  n;
    ngx_slab_pool_t            *shpool;
    ngx_http_scep_replay_sh_t  *sh;

    if (smcf->replay_zone == NULL) {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) smcf->replay_zone->shm.addr;
    sh = shpool->data;

    ngx_shmtx_lock(&shpool->mutex);
    n = sh->entries;
    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}
