
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * scep_status: the gateway, its counters and every back end under
 * health checks, as JSON (libjansson) or in the Prometheus text format;
 * the HTML page over the JSON is in ngx_http_scep_dashboard.c.
 */


#include "ngx_http_scep_module.h"

/* after nginx's headers: ngx_config.h must come first */
#include <jansson.h>


/* a consistent copy of one back end's record, taken under the lock */
typedef struct {
    ngx_str_t                   upstream;
    ngx_str_t                   address;
    ngx_http_scep_sh_peer_t     sh;
    time_t                      warn;
    ngx_http_scep_sh_answer_t   answer;     /* without its data */
    ngx_uint_t                  has_answer;
    ngx_uint_t                  trusted_ca;  /* the upstream has one */
    ngx_uint_t                  intune;      /* scep_health_check intune */
    ngx_uint_t                  down;        /* "down" in the upstream */
    ngx_uint_t                  limit;       /* scep_backend_limit */
    ngx_uint_t                  waiting;     /* its upstream's queue */
} ngx_http_scep_status_peer_t;


typedef struct {
    ngx_http_scep_sh_t         *sh;
    ngx_http_scep_counters_t    counters;
    ngx_array_t                 peers;      /* ngx_http_scep_status_peer_t */
    ngx_uint_t                  workers;
    time_t                      now;
    ngx_uint_t                  replay_entries;
    ngx_uint_t                  pending_entries;
} ngx_http_scep_snapshot_t;


static ngx_int_t ngx_http_scep_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_scep_snapshot(ngx_http_request_t *r,
    ngx_http_scep_snapshot_t *ss);
static ngx_int_t ngx_http_scep_status_json(ngx_http_request_t *r,
    ngx_http_scep_snapshot_t *ss, ngx_buf_t **out);
static json_t *ngx_http_scep_json_classes(ngx_atomic_t *classes);
static json_t *ngx_http_scep_json_peer(ngx_http_scep_snapshot_t *ss,
    ngx_http_scep_status_peer_t *sp);
static json_t *ngx_http_scep_json_str(ngx_str_t *s);
static ngx_int_t ngx_http_scep_status_prometheus(ngx_http_request_t *r,
    ngx_http_scep_snapshot_t *ss, ngx_buf_t **out);
static u_char *ngx_http_scep_prom_label(u_char *p, u_char *last,
    u_char *s, size_t len);
static u_char *ngx_http_scep_prom_peer_labels(u_char *labels, size_t size,
    ngx_http_scep_status_peer_t *sp);
static u_char *ngx_http_scep_prom_peers(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss);
static u_char *ngx_http_scep_prom_disagree(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss);
static u_char *ngx_http_scep_prom_limits(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss);
static json_t *ngx_http_scep_json_outcomes(ngx_http_scep_outcomes_t *o,
    time_t now);
static void ngx_http_scep_outcomes_add(ngx_http_scep_outcomes_t *sum,
    ngx_http_scep_outcomes_t *o, time_t now);
static u_char *ngx_http_scep_prom_outcomes(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss);


/* failInfo names, the last for a FAILURE without a known one */

static const char  *ngx_http_scep_fail_names[SCEP_FAIL_N + 1] = {
    "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId",
    "unknown"
};


static const char  *ngx_http_scep_op_names[NGX_HTTP_SCEP_NOPS] = {
    "GetCACert", "GetCACaps", "GetNextCACert", "PKIOperation", "other"
};

static const char  *ngx_http_scep_type_names[NGX_HTTP_SCEP_NTYPES] = {
    "PKCSReq", "RenewalReq", "CertPoll", "GetCert", "GetCRL"
};

static const char  *ngx_http_scep_class_names[NGX_HTTP_SCEP_NCLASSES] = {
    "1xx", "2xx", "3xx", "4xx", "5xx"
};

static const char  *ngx_http_scep_state_names[] = {
    "up", "down", "checking"
};


char *
ngx_http_scep_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_scep_main_conf_t  *smcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_scep_status_handler;

    /* the counters need the shared zone even without health checks */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_scep_module);
    smcf->any = 1;

    /* the page's Content-Security-Policy, once per configuration */

    if (ngx_http_scep_dashboard_init(cf, smcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_scep_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  format;
    ngx_buf_t                 *b;
    ngx_chain_t                out;
    ngx_http_scep_snapshot_t   ss;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) != NGX_OK) {
        format.len = 0;
    }

    /* the page for a browser (ngx_http_scep_dashboard.c) reads the JSON */

    if (format.len == 4 && ngx_strncmp(format.data, "html", 4) == 0) {
        return ngx_http_scep_dashboard(r);
    }

    if (ngx_http_scep_snapshot(r, &ss) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format.len == 10
        && ngx_strncmp(format.data, "prometheus", 10) == 0)
    {
        rc = ngx_http_scep_status_prometheus(r, &ss, &b);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        rc = ngx_http_scep_status_json(r, &ss, &b);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_scep_snapshot(ngx_http_request_t *r, ngx_http_scep_snapshot_t *ss)
{
    ngx_uint_t                    i, j;
    ngx_core_conf_t              *ccf;
    ngx_slab_pool_t              *shpool;
    ngx_http_scep_peer_t         *peer;
    ngx_http_scep_upstream_t    **hcp;
    ngx_http_scep_main_conf_t    *smcf;
    ngx_http_scep_status_peer_t  *sp;

    smcf = ngx_http_get_module_main_conf(r, ngx_http_scep_module);
    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    ngx_memzero(ss, sizeof(ngx_http_scep_snapshot_t));

    ss->now = ngx_time();
    ss->workers = ccf->worker_processes;
    ss->sh = ngx_http_scep_shared(smcf);

    if (ngx_array_init(&ss->peers, r->pool, 8,
                       sizeof(ngx_http_scep_status_peer_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ss->sh == NULL) {
        return NGX_OK;
    }

    ss->counters = ss->sh->counters;
    ss->replay_entries = ngx_http_scep_replay_entries(smcf);
    ss->pending_entries = ngx_http_scep_pending_entries(smcf);

    shpool = (ngx_slab_pool_t *) smcf->shm_zone->shm.addr;
    hcp = smcf->upstreams.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < smcf->upstreams.nelts; i++) {
        peer = hcp[i]->peers.elts;

        for (j = 0; j < hcp[i]->peers.nelts; j++) {
            if (peer[j].sh == NULL) {
                continue;
            }

            sp = ngx_array_push(&ss->peers);
            if (sp == NULL) {
                ngx_shmtx_unlock(&shpool->mutex);
                return NGX_ERROR;
            }

            sp->upstream = hcp[i]->uscf->host;
            sp->address = peer[j].name;
            sp->sh = *peer[j].sh;
            sp->warn = hcp[i]->ra_expiry_warn;
            sp->trusted_ca = (hcp[i]->trusted_ca != NULL);
            sp->intune = hcp[i]->intune;
            sp->down = peer[j].down;
            sp->limit = hcp[i]->limit;
            sp->waiting = hcp[i]->limit
                          ? ngx_http_scep_limit_waiting(hcp[i]) : 0;

            sp->has_answer = (peer[j].sh->answer != NULL);

            if (sp->has_answer) {
                ngx_memcpy(&sp->answer, peer[j].sh->answer,
                           offsetof(ngx_http_scep_sh_answer_t, data));
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


static ngx_int_t
ngx_http_scep_status_json(ngx_http_request_t *r, ngx_http_scep_snapshot_t *ss,
    ngx_buf_t **out)
{
    char                         *text, *name;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_str_t                     token;
    ngx_buf_t                    *b;
    ngx_uint_t                    i;
    json_t                       *doc, *o, *gw, *ops, *types, *rej, *ups,
                                 *up, *peers;
    ngx_http_scep_counters_t     *cn;
    ngx_http_scep_outcomes_t      sum;
    ngx_http_scep_status_peer_t  *sp;

    cn = &ss->counters;
    rc = NGX_ERROR;
    text = NULL;

    doc = json_object();
    if (doc == NULL) {
        return NGX_ERROR;
    }

    gw = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}",
                   "module_version", NGX_HTTP_SCEP_MODULE_VERSION,
                   "nginx_version", NGINX_VERSION,
                   "workers", (json_int_t) ss->workers,
                   "started", (json_int_t) (ss->sh ? ss->sh->started : 0),
                   "uptime", (json_int_t) (ss->sh ? ss->now - ss->sh->started
                                                  : 0),
                   "generation",
                   (json_int_t) (ss->sh ? ss->sh->generation : 0));

    ops = json_object();
    types = json_object();
    rej = json_object();
    ups = json_object();

    if (gw == NULL || ops == NULL || types == NULL || rej == NULL
        || ups == NULL)
    {
        json_decref(gw);
        json_decref(ops);
        json_decref(types);
        json_decref(rej);
        json_decref(ups);
        goto done;
    }

    json_object_set_new(doc, "gateway", gw);

    for (i = 0; i < NGX_HTTP_SCEP_NOPS; i++) {
        json_object_set_new(ops, ngx_http_scep_op_names[i],
                            json_integer(cn->ops[i]));
    }

    for (i = 0; i < NGX_HTTP_SCEP_NTYPES; i++) {
        json_object_set_new(types, ngx_http_scep_type_names[i],
                            json_integer(cn->types[i]));
    }

    for (i = 0; i < NGX_HTTP_SCEP_NREJECTS; i++) {
        ngx_http_scep_reject_index_token(i, &token);
        json_object_set_new(rej, (char *) token.data,
                            json_integer(cn->rejects[i]));
    }

    o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:I, s:I, s:I}",
                  "total", (json_int_t) cn->total,
                  "operations", ops,
                  "message_types", types,
                  "responses", ngx_http_scep_json_classes(cn->responses),
                  "rejected", rej,
                  "browser_tests", (json_int_t) cn->browser_tests,
                  "rate_limited", (json_int_t) cn->rate_limited,
                  "no_healthy_backend", (json_int_t) cn->no_healthy);

    if (o == NULL) {
        json_decref(ups);
        goto done;
    }

    json_object_set_new(doc, "requests", o);
    json_object_set_new(doc, "upstreams", ups);

    json_object_set_new(o, "ca_cache",
                        json_pack("{s:{s:I, s:I}, s:I, s:I, s:I}",
                                  "hits",
                                  "GetCACaps", (json_int_t) cn->cache_hits[0],
                                  "GetCACert", (json_int_t) cn->cache_hits[1],
                                  "stale_hits", (json_int_t) cn->cache_stale,
                                  "misses", (json_int_t) cn->cache_misses,
                                  "bypassed",
                                  (json_int_t) cn->cache_bypassed));
    json_object_set_new(doc, "replay",
                        json_pack("{s:I, s:I}",
                                  "entries", (json_int_t) ss->replay_entries,
                                  "evicted",
                                  (json_int_t) cn->replay_evicted));
    json_object_set_new(doc, "pending",
                        json_pack("{s:I, s:I}",
                                  "entries", (json_int_t) ss->pending_entries,
                                  "evicted",
                                  (json_int_t) cn->pending_evicted));

    sp = ss->peers.elts;

    for (i = 0; i < ss->peers.nelts; i++) {
        name = ngx_pnalloc(r->pool, sp[i].upstream.len + 1);
        if (name == NULL) {
            goto done;
        }

        (void) ngx_cpystrn((u_char *) name, sp[i].upstream.data,
                           sp[i].upstream.len + 1);

        up = json_object_get(ups, name);

        if (up == NULL) {
            up = json_object();
            if (up == NULL) {
                goto done;
            }

            json_object_set_new(up, "peers", json_array());
            json_object_set_new(up, "answers_disagree", json_false());
            json_object_set_new(up, "trusted_ca",
                                json_boolean(sp[i].trusted_ca));
            json_object_set_new(up, "intune", json_boolean(sp[i].intune));
            json_object_set_new(ups, name, up);
        }

        if (sp[i].has_answer && sp[i].answer.differs) {
            json_object_set_new(up, "answers_disagree", json_true());
        }

        /* the peers of an upstream are next to each other */

        if (i == 0 || sp[i - 1].upstream.data != sp[i].upstream.data) {
            ngx_memzero(&sum, sizeof(ngx_http_scep_outcomes_t));
        }

        ngx_http_scep_outcomes_add(&sum, &sp[i].sh.outcomes, ss->now);

        json_object_set_new(up, "outcomes",
                            ngx_http_scep_json_outcomes(&sum, ss->now));

        peers = json_object_get(up, "peers");

        o = ngx_http_scep_json_peer(ss, &sp[i]);
        if (o == NULL || peers == NULL) {
            json_decref(o);
            goto done;
        }

        json_array_append_new(peers, o);
    }

    text = json_dumps(doc, JSON_INDENT(2)|JSON_PRESERVE_ORDER);
    if (text == NULL) {
        goto done;
    }

    len = ngx_strlen(text);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        goto done;
    }

    b->last = ngx_cpymem(b->last, text, len);
    *b->last++ = '\n';

    *out = b;
    rc = NGX_OK;

done:

    if (text) {
        free(text);
    }

    json_decref(doc);

    return rc;
}


static json_t *
ngx_http_scep_json_classes(ngx_atomic_t *classes)
{
    ngx_uint_t   i;
    json_t      *o;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_SCEP_NCLASSES; i++) {
        json_object_set_new(o, ngx_http_scep_class_names[i],
                            json_integer(classes[i]));
    }

    return o;
}


static json_t *
ngx_http_scep_json_peer(ngx_http_scep_snapshot_t *ss,
    ngx_http_scep_status_peer_t *sp)
{
    uint32_t                  bit;
    ngx_str_t                 s;
    ngx_uint_t                i;
    json_t                   *o, *caps, *certs, *c;
    const char               *name;
    ngx_http_scep_sh_peer_t  *p;
    ngx_http_scep_sh_cert_t  *sc;

    p = &sp->sh;

    caps = json_array();
    certs = json_array();

    if (caps == NULL || certs == NULL) {
        json_decref(caps);
        json_decref(certs);
        return NULL;
    }

    for (bit = 1; bit; bit <<= 1) {
        if (p->caps & bit) {
            name = scep_cap_name(bit);

            if (name) {
                json_array_append_new(caps, json_string(name));
            }
        }
    }

    for (i = 0; i < p->ncerts; i++) {
        sc = &p->certs[i];

        c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}",
                      "role", sc->is_ca || p->ncerts == 1 ? "CA" : "RA",
                      "subject", (char *) sc->subject,
                      "serial", (char *) sc->serial,
                      "not_after", (json_int_t) sc->not_after,
                      "days_left", (json_int_t) ((sc->not_after - ss->now)
                                                 / 86400),
                      "expiring", sc->not_after - ss->now < sp->warn);

        if (c) {
            json_array_append_new(certs, c);
        }
    }

    s.data = p->reason;
    s.len = ngx_strlen(p->reason);

    o = json_pack("{s:o, s:s, s:I, s:I, s:I}",
                  "address", ngx_http_scep_json_str(&sp->address),
                  "state", ngx_http_scep_state_names[p->state],
                  "passes", (json_int_t) p->passes,
                  "fails", (json_int_t) p->fails,
                  "checks", (json_int_t) p->checks);

    if (o == NULL) {
        json_decref(caps);
        json_decref(certs);
        return NULL;
    }

    /*
     * "state" is what the probes found; a server marked "down" in the
     * upstream is probed too, but nginx sends it nothing
     */

    json_object_set_new(o, "down", json_boolean(sp->down));

    if (p->last_check) {
        json_object_set_new(o, "last_check", json_integer(p->last_check));
        json_object_set_new(o, "last_result",
                            json_string(p->last_ok ? "pass" : "fail"));
        json_object_set_new(o, "latency_ms", json_integer(p->latency));

    } else {
        json_object_set_new(o, "last_check", json_null());
        json_object_set_new(o, "last_result", json_null());
        json_object_set_new(o, "latency_ms", json_null());
    }

    json_object_set_new(o, "reason", s.len ? ngx_http_scep_json_str(&s)
                                           : json_null());
    json_object_set_new(o, "last_change", json_integer(p->last_change));
    json_object_set_new(o, "capabilities", caps);
    json_object_set_new(o, "certificates", certs);

    s.data = p->warning;
    s.len = ngx_strlen(p->warning);

    json_object_set_new(o, "warning", s.len ? ngx_http_scep_json_str(&s)
                                            : json_null());
    json_object_set_new(o, "requests", json_integer(p->requests));
    json_object_set_new(o, "responses",
                        ngx_http_scep_json_classes(p->responses));
    json_object_set_new(o, "failovers", json_integer(p->failovers));

    /* scep_backend_limit: "waiting" is the upstream's one queue */

    json_object_set_new(o, "limit", sp->limit
                        ? json_pack("{s:I, s:I, s:I, s:I}",
                                    "max", (json_int_t) sp->limit,
                                    "in_flight", (json_int_t) p->in_flight,
                                    "waiting", (json_int_t) sp->waiting,
                                    "busy", (json_int_t) p->busy)
                        : json_null());
    json_object_set_new(o, "outcomes",
                        ngx_http_scep_json_outcomes(&p->outcomes, ss->now));

    json_object_set_new(o, "ca_answer", sp->has_answer
                        ? json_pack("{s:I, s:I, s:I, s:b}",
                                    "last_good",
                                    (json_int_t) sp->answer.last_good,
                                    "ra_not_before",
                                    (json_int_t) sp->answer.ra_not_before,
                                    "ra_not_after",
                                    (json_int_t) sp->answer.ra_not_after,
                                    "differs", (int) sp->answer.differs)
                        : json_null());

    return o;
}


static json_t *
ngx_http_scep_json_str(ngx_str_t *s)
{
    json_t  *j;

    j = json_stringn((const char *) s->data, s->len);

    return j ? j : json_string("");
}


#define ngx_http_scep_prom_room  (12 * 1024)

static ngx_int_t
ngx_http_scep_status_prometheus(ngx_http_request_t *r,
    ngx_http_scep_snapshot_t *ss, ngx_buf_t **out)
{
    u_char                       *p, *last;
    size_t                        size;
    ngx_str_t                     token;
    ngx_buf_t                    *b;
    ngx_uint_t                    i;
    ngx_http_scep_counters_t     *cn;

    cn = &ss->counters;
    size = ngx_http_scep_prom_room * (2 + ss->peers.nelts);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = b->last;
    last = b->end;

    p = ngx_slprintf(p, last,
            "# HELP scep_gateway_info The module and nginx versions.\n"
            "# TYPE scep_gateway_info gauge\n"
            "scep_gateway_info{module_version=\"%s\","
            "nginx_version=\"%s\"} 1\n"
            "# HELP scep_gateway_workers nginx worker processes.\n"
            "# TYPE scep_gateway_workers gauge\n"
            "scep_gateway_workers %ui\n"
            "# HELP scep_gateway_uptime_seconds Seconds since nginx "
            "started.\n"
            "# TYPE scep_gateway_uptime_seconds gauge\n"
            "scep_gateway_uptime_seconds %T\n"
            "# HELP scep_gateway_generation Configurations loaded since "
            "start, 1 at start.\n"
            "# TYPE scep_gateway_generation gauge\n"
            "scep_gateway_generation %ui\n",
            NGX_HTTP_SCEP_MODULE_VERSION, NGINX_VERSION, ss->workers,
            (time_t) (ss->sh ? ss->now - ss->sh->started : 0),
            ss->sh ? ss->sh->generation : 0);

    p = ngx_slprintf(p, last,
            "# HELP scep_requests_total Requests of scep on locations, "
            "by operation.\n"
            "# TYPE scep_requests_total counter\n");

    for (i = 0; i < NGX_HTTP_SCEP_NOPS; i++) {
        p = ngx_slprintf(p, last,
                         "scep_requests_total{operation=\"%s\"} %uA\n",
                         ngx_http_scep_op_names[i], cn->ops[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP scep_messages_total PKIOperation messages, by "
            "messageType.\n"
            "# TYPE scep_messages_total counter\n");

    for (i = 0; i < NGX_HTTP_SCEP_NTYPES; i++) {
        p = ngx_slprintf(p, last, "scep_messages_total{type=\"%s\"} %uA\n",
                         ngx_http_scep_type_names[i], cn->types[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP scep_responses_total Responses of scep on locations, "
            "by status class.\n"
            "# TYPE scep_responses_total counter\n");

    for (i = 0; i < NGX_HTTP_SCEP_NCLASSES; i++) {
        p = ngx_slprintf(p, last, "scep_responses_total{class=\"%s\"} %uA\n",
                         ngx_http_scep_class_names[i], cn->responses[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP scep_rejected_total Requests the gateway answered "
            "itself, by reason.\n"
            "# TYPE scep_rejected_total counter\n");

    for (i = 0; i < NGX_HTTP_SCEP_NREJECTS; i++) {
        ngx_http_scep_reject_index_token(i, &token);
        p = ngx_slprintf(p, last, "scep_rejected_total{reason=\"%V\"} %uA\n",
                         &token, cn->rejects[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP scep_browser_tests_total Bare GETs and HEADs of the "
            "SCEP URL (browser_test), answered 403 or 503; not "
            "rejections.\n"
            "# TYPE scep_browser_tests_total counter\n"
            "scep_browser_tests_total %uA\n", cn->browser_tests);

    p = ngx_slprintf(p, last,
            "# HELP scep_rate_limited_total Requests limit_req "
            "rejected.\n"
            "# TYPE scep_rate_limited_total counter\n"
            "scep_rate_limited_total %uA\n"
            "# HELP scep_no_healthy_backend_total 503s given because no "
            "server was healthy.\n"
            "# TYPE scep_no_healthy_backend_total counter\n"
            "scep_no_healthy_backend_total %uA\n",
            cn->rate_limited, cn->no_healthy);

    p = ngx_slprintf(p, last,
            "# HELP scep_ca_cache_hits_total GetCACaps and GetCACert "
            "answered from the edge, by operation.\n"
            "# TYPE scep_ca_cache_hits_total counter\n"
            "scep_ca_cache_hits_total{operation=\"GetCACaps\"} %uA\n"
            "scep_ca_cache_hits_total{operation=\"GetCACert\"} %uA\n"
            "# HELP scep_ca_cache_stale_hits_total Answers from the edge "
            "given while no server was healthy.\n"
            "# TYPE scep_ca_cache_stale_hits_total counter\n"
            "scep_ca_cache_stale_hits_total %uA\n"
            "# HELP scep_ca_cache_misses_total GetCACaps and GetCACert "
            "the cache let through to a server.\n"
            "# TYPE scep_ca_cache_misses_total counter\n"
            "scep_ca_cache_misses_total %uA\n"
            "# HELP scep_ca_cache_bypassed_total GetCACaps and GetCACert "
            "passed to the servers because healthy servers disagreed "
            "(no scep_trusted_ca).\n"
            "# TYPE scep_ca_cache_bypassed_total counter\n"
            "scep_ca_cache_bypassed_total %uA\n"
            "# HELP scep_replay_entries transactionID and senderNonce "
            "pairs kept by the replay window.\n"
            "# TYPE scep_replay_entries gauge\n"
            "scep_replay_entries %ui\n"
            "# HELP scep_replay_evicted_total Pairs forgotten before "
            "their window ended, the zone being full.\n"
            "# TYPE scep_replay_evicted_total counter\n"
            "scep_replay_evicted_total %uA\n",
            cn->cache_hits[0], cn->cache_hits[1], cn->cache_stale,
            cn->cache_misses, cn->cache_bypassed, ss->replay_entries,
            cn->replay_evicted);

    p = ngx_slprintf(p, last,
            "# HELP scep_pending_entries Pending requests whose server "
            "the gateway keeps for their CertPolls.\n"
            "# TYPE scep_pending_entries gauge\n"
            "scep_pending_entries %ui\n"
            "# HELP scep_pending_evicted_total Pending requests forgotten "
            "before their timeout, the zone being full.\n"
            "# TYPE scep_pending_evicted_total counter\n"
            "scep_pending_evicted_total %uA\n",
            ss->pending_entries, cn->pending_evicted);

    p = ngx_http_scep_prom_disagree(p, last, ss);

    p = ngx_http_scep_prom_peers(p, last, ss);

    p = ngx_http_scep_prom_limits(p, last, ss);

    p = ngx_http_scep_prom_outcomes(p, last, ss);

    if (p == last) {
        return NGX_ERROR;
    }

    b->last = p;
    *out = b;

    return NGX_OK;
}


/* writes a label value with Prometheus's escapes */

static u_char *
ngx_http_scep_prom_label(u_char *p, u_char *last, u_char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len && p + 2 < last; i++) {
        switch (s[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s[i];
        }
    }

    return p;
}


/* upstream="...",peer="..." of a back end's samples; returns the end */

static u_char *
ngx_http_scep_prom_peer_labels(u_char *labels, size_t size,
    ngx_http_scep_status_peer_t *sp)
{
    u_char  *l;

    l = ngx_slprintf(labels, labels + size, "upstream=\"");
    l = ngx_http_scep_prom_label(l, labels + size - 16, sp->upstream.data,
                                 sp->upstream.len);
    l = ngx_slprintf(l, labels + size, "\",peer=\"");
    l = ngx_http_scep_prom_label(l, labels + size - 2, sp->address.data,
                                 sp->address.len);
    *l++ = '"';

    return l;
}


/*
 * The samples of a metric family must be one group: each family is
 * written for every peer in turn.
 */

#define NGX_HTTP_SCEP_PROM_PEER_FAMILIES  13

static u_char *
ngx_http_scep_prom_peers(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss)
{
    u_char                       *l, *ll, labels[512], clabels[1024];
    size_t                        n, cn;
    ngx_uint_t                    f, i, k;
    ngx_http_scep_sh_peer_t      *sh;
    ngx_http_scep_sh_cert_t      *sc;
    ngx_http_scep_status_peer_t  *sp;

    static const char  *families[NGX_HTTP_SCEP_PROM_PEER_FAMILIES][3] = {
        { "scep_peer_up", "gauge",
          "1 if the server is up and not marked down, else 0." },
        { "scep_peer_state", "gauge",
          "1 for the server's state: up, down or checking." },
        { "scep_peer_consecutive_passes", "gauge",
          "Probes passed in a row." },
        { "scep_peer_consecutive_fails", "gauge",
          "Probes failed in a row." },
        { "scep_peer_checks_total", "counter", "Health probes." },
        { "scep_peer_last_check_timestamp_seconds", "gauge",
          "When the last probe ended." },
        { "scep_peer_probe_latency_seconds", "gauge",
          "Duration of the last probe." },
        { "scep_peer_requests_total", "counter",
          "Requests sent to the server." },
        { "scep_peer_responses_total", "counter",
          "The server's responses, by status class." },
        { "scep_peer_failovers_total", "counter",
          "Requests that failed on the server and went to another." },
        { "scep_peer_certificate_not_after_timestamp_seconds", "gauge",
          "When a certificate from GetCACert expires." },
        { "scep_peer_certificate_days_left", "gauge",
          "Whole days until a certificate from GetCACert expires." },
        { "scep_peer_certificate_expiring", "gauge",
          "1 if a certificate expires within ra_expiry_warn." }
    };

    sp = ss->peers.elts;

    for (f = 0; f < NGX_HTTP_SCEP_PROM_PEER_FAMILIES; f++) {

        if (ss->peers.nelts == 0) {
            break;
        }

        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                         families[f][0], families[f][2],
                         families[f][0], families[f][1]);

        for (i = 0; i < ss->peers.nelts; i++) {
            sh = &sp[i].sh;

            l = ngx_http_scep_prom_peer_labels(labels, sizeof(labels), &sp[i]);

            n = l - labels;

            switch (f) {

            case 0:
                /* nginx sends a server marked "down" nothing */
                p = ngx_slprintf(p, last, "%s{%*s} %d\n", families[f][0],
                                 n, labels,
                                 sh->state == NGX_HTTP_SCEP_PEER_UP
                                 && !sp[i].down);
                break;

            case 1:
                for (k = 0; k < 3; k++) {
                    p = ngx_slprintf(p, last, "%s{%*s,state=\"%s\"} %d\n",
                                     families[f][0], n, labels,
                                     ngx_http_scep_state_names[k],
                                     sh->state == k);
                }
                break;

            case 2:
            case 3:
            case 4:
                p = ngx_slprintf(p, last, "%s{%*s} %ui\n", families[f][0],
                                 n, labels,
                                 f == 2 ? sh->passes
                                        : (f == 3 ? sh->fails : sh->checks));
                break;

            case 5:
                p = ngx_slprintf(p, last, "%s{%*s} %T\n", families[f][0],
                                 n, labels, sh->last_check);
                break;

            case 6:
                p = ngx_slprintf(p, last, "%s{%*s} %M.%03M\n",
                                 families[f][0], n, labels,
                                 sh->latency / 1000, sh->latency % 1000);
                break;

            case 7:
            case 9:
                p = ngx_slprintf(p, last, "%s{%*s} %uA\n", families[f][0],
                                 n, labels,
                                 f == 7 ? sh->requests : sh->failovers);
                break;

            case 8:
                for (k = 0; k < NGX_HTTP_SCEP_NCLASSES; k++) {
                    p = ngx_slprintf(p, last, "%s{%*s,class=\"%s\"} %uA\n",
                                     families[f][0], n, labels,
                                     ngx_http_scep_class_names[k],
                                     sh->responses[k]);
                }
                break;

            default:
                for (k = 0; k < sh->ncerts; k++) {
                    sc = &sh->certs[k];

                    ll = ngx_slprintf(clabels, clabels + sizeof(clabels),
                                      "%*s,role=\"%s\",subject=\"", n, labels,
                                      sc->is_ca || sh->ncerts == 1
                                      ? "CA" : "RA");
                    ll = ngx_http_scep_prom_label(ll,
                                             clabels + sizeof(clabels) - 64,
                                             sc->subject,
                                             ngx_strlen(sc->subject));
                    ll = ngx_slprintf(ll, clabels + sizeof(clabels),
                                      "\",serial=\"%s\"", sc->serial);
                    cn = ll - clabels;

                    if (f == 10) {
                        p = ngx_slprintf(p, last, "%s{%*s} %T\n",
                                         families[f][0], cn, clabels,
                                         sc->not_after);

                    } else if (f == 11) {
                        p = ngx_slprintf(p, last, "%s{%*s} %T\n",
                                         families[f][0], cn, clabels,
                                         (time_t) ((sc->not_after - ss->now)
                                                   / 86400));

                    } else {
                        p = ngx_slprintf(p, last, "%s{%*s} %d\n",
                                         families[f][0], cn, clabels,
                                         sc->not_after - ss->now
                                         < sp[i].warn);
                    }
                }
            }
        }
    }

    return p;
}


/*
 * scep_backend_limit, for the servers of upstreams that have it:
 * scep_peer_in_flight, scep_peer_waiting (the upstream's queue, the
 * same for each of its servers) and scep_peer_busy_total
 */

static u_char *
ngx_http_scep_prom_limits(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss)
{
    u_char                       *l, labels[512];
    ngx_uint_t                    f, i, any;
    ngx_atomic_uint_t             v;
    ngx_http_scep_status_peer_t  *sp;

    static const char  *families[3][3] = {
        { "scep_peer_in_flight", "gauge",
          "PKIOperations in flight to the server (scep_backend_limit)." },
        { "scep_peer_waiting", "gauge",
          "PKIOperations waiting for a server of the upstream, one queue"
          " an upstream." },
        { "scep_peer_busy_total", "counter",
          "PKIOperations refused with 503 backend_busy, counted on the"
          " least busy server they could have gone to." }
    };

    sp = ss->peers.elts;
    any = 0;

    for (i = 0; i < ss->peers.nelts; i++) {
        any |= (sp[i].limit != 0);
    }

    if (!any) {
        return p;
    }

    for (f = 0; f < 3; f++) {
        p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                         families[f][0], families[f][2],
                         families[f][0], families[f][1]);

        for (i = 0; i < ss->peers.nelts; i++) {
            if (sp[i].limit == 0) {
                continue;
            }

            l = ngx_http_scep_prom_peer_labels(labels, sizeof(labels), &sp[i]);

            v = (f == 0) ? sp[i].sh.in_flight
                         : (f == 1 ? sp[i].waiting : sp[i].sh.busy);

            p = ngx_slprintf(p, last, "%s{%*s} %uA\n", families[f][0],
                             l - labels, labels, v);
        }
    }

    return p;
}


/* one sample an upstream: its healthy back ends' answers differ */

static u_char *
ngx_http_scep_prom_disagree(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss)
{
    ngx_uint_t                    i, differ;
    ngx_http_scep_status_peer_t  *sp;

    if (ss->peers.nelts == 0) {
        return p;
    }

    p = ngx_slprintf(p, last,
            "# HELP scep_upstream_answers_disagree 1 when healthy servers "
            "of the upstream answer GetCACaps or GetCACert differently.\n"
            "# TYPE scep_upstream_answers_disagree gauge\n");

    sp = ss->peers.elts;
    differ = 0;

    /* the peers of an upstream are next to each other */

    for (i = 0; i < ss->peers.nelts; i++) {

        if (sp[i].has_answer && sp[i].answer.differs) {
            differ = 1;
        }

        if (i + 1 < ss->peers.nelts
            && sp[i + 1].upstream.data == sp[i].upstream.data)
        {
            continue;
        }

        p = ngx_slprintf(p, last,
                         "scep_upstream_answers_disagree{upstream=\"");
        p = ngx_http_scep_prom_label(p, last - 32, sp[i].upstream.data,
                                     sp[i].upstream.len);
        p = ngx_slprintf(p, last, "\"} %ui\n", differ);

        differ = 0;
    }

    return p;
}


/*
 * What a back end answered to PKIOperations: counters, and issued and
 * refused of the last NGX_HTTP_SCEP_RECENT minutes
 */

static json_t *
ngx_http_scep_json_outcomes(ngx_http_scep_outcomes_t *o, time_t now)
{
    ngx_uint_t   i, total;
    json_t      *refused, *checks, *recent, *j;

    refused = json_object();
    checks = json_object();

    total = 0;

    for (i = 0; i <= SCEP_FAIL_N; i++) {
        json_object_set_new(refused, ngx_http_scep_fail_names[i],
                            json_integer(o->refused[i]));
        total += o->refused[i];
    }

    json_object_set_new(refused, "total", json_integer(total));

    for (i = SCEP_RESPONSE_NOT_CERTREP; i < SCEP_RESPONSE_N; i++) {
        json_object_set_new(checks, scep_response_token(i),
                            json_integer(o->checks[i]));
    }

    recent = json_pack("{s:I, s:I}",
                       "issued",
                       (json_int_t) ngx_http_scep_recent(o, now, 1),
                       "refused",
                       (json_int_t) ngx_http_scep_recent(o, now, 0));

    j = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o}",
                  "issued", (json_int_t) o->issued,
                  "success_other", (json_int_t) o->success,
                  "pending", (json_int_t) o->pending,
                  "refused", refused,
                  "checks_failed", checks,
                  "last_10m", recent);

    return j ? j : json_null();
}


/* sums a back end's outcomes into its upstream's */

static void
ngx_http_scep_outcomes_add(ngx_http_scep_outcomes_t *sum,
    ngx_http_scep_outcomes_t *o, time_t now)
{
    ngx_uint_t  i;

    sum->issued += o->issued;
    sum->success += o->success;
    sum->pending += o->pending;

    for (i = 0; i <= SCEP_FAIL_N; i++) {
        sum->refused[i] += o->refused[i];
    }

    for (i = 0; i < SCEP_RESPONSE_N; i++) {
        sum->checks[i] += o->checks[i];
    }

    /* slot 0 of the sum holds the last minutes of all */

    sum->minute[0] = now / 60;
    sum->recent_issued[0] += ngx_http_scep_recent(o, now, 1);
    sum->recent_refused[0] += ngx_http_scep_recent(o, now, 0);
}


/*
 * scep_peer_outcomes_total{status, fail_info} and
 * scep_peer_response_check_failures_total{check}
 */

static u_char *
ngx_http_scep_prom_outcomes(u_char *p, u_char *last,
    ngx_http_scep_snapshot_t *ss)
{
    u_char                       *l, labels[512];
    size_t                        n;
    ngx_uint_t                    f, i, k;
    ngx_http_scep_outcomes_t     *o;
    ngx_http_scep_status_peer_t  *sp;

    if (ss->peers.nelts == 0) {
        return p;
    }

    sp = ss->peers.elts;

    for (f = 0; f < 2; f++) {

        if (f == 0) {
            p = ngx_slprintf(p, last,
                    "# HELP scep_peer_outcomes_total What the server "
                    "answered to PKIOperations, by pkiStatus: issued "
                    "(SUCCESS to PKCSReq, RenewalReq, CertPoll), "
                    "success_other, pending, refused by failInfo.\n"
                    "# TYPE scep_peer_outcomes_total counter\n");

        } else {
            p = ngx_slprintf(p, last,
                    "# HELP scep_peer_response_check_failures_total "
                    "Answers to PKIOperations that failed the gateway's "
                    "checks, by $scep_response_check.\n"
                    "# TYPE scep_peer_response_check_failures_total "
                    "counter\n");
        }

        for (i = 0; i < ss->peers.nelts; i++) {
            o = &sp[i].sh.outcomes;

            l = ngx_http_scep_prom_peer_labels(labels, sizeof(labels), &sp[i]);

            n = l - labels;

            if (f == 1) {
                for (k = SCEP_RESPONSE_NOT_CERTREP; k < SCEP_RESPONSE_N; k++) {
                    p = ngx_slprintf(p, last,
                                     "scep_peer_response_check_failures_total"
                                     "{%*s,check=\"%s\"} %uA\n",
                                     n, labels, scep_response_token(k),
                                     o->checks[k]);
                }

                continue;
            }

            p = ngx_slprintf(p, last,
                             "scep_peer_outcomes_total{%*s,status=\"issued\"}"
                             " %uA\n"
                             "scep_peer_outcomes_total{%*s,"
                             "status=\"success_other\"} %uA\n"
                             "scep_peer_outcomes_total{%*s,status=\"pending\"}"
                             " %uA\n",
                             n, labels, o->issued, n, labels, o->success,
                             n, labels, o->pending);

            for (k = 0; k <= SCEP_FAIL_N; k++) {
                p = ngx_slprintf(p, last,
                                 "scep_peer_outcomes_total{%*s,"
                                 "status=\"refused\",fail_info=\"%s\"} %uA\n",
                                 n, labels, ngx_http_scep_fail_names[k],
                                 o->refused[k]);
            }
        }
    }

    return p;
}
