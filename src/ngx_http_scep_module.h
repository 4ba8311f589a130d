
/*
 * Copyright (C) ngx_http_scep_module authors
 */


#ifndef _NGX_HTTP_SCEP_MODULE_H_INCLUDED_
#define _NGX_HTTP_SCEP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "scep_message.h"
#include "scep_certs.h"
#include "scep_certrep.h"
#include "scep_renewal.h"


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
    NGX_HTTP_SCEP_REJECT_BAD_ESCAPE,
    NGX_HTTP_SCEP_REJECT_UNKNOWN_RECIPIENT,
    NGX_HTTP_SCEP_REJECT_REPLAYED,
    NGX_HTTP_SCEP_REJECT_BAD_RESPONSE,   /* scep_check_response on */
    NGX_HTTP_SCEP_REJECT_PENDING_DOWN,   /* a CertPoll's server is down */
    NGX_HTTP_SCEP_REJECT_UNTRUSTED_RENEWAL,  /* scep_check_renewal */
    NGX_HTTP_SCEP_REJECT_EXPIRED_RENEWAL,
    NGX_HTTP_SCEP_REJECT_REVOKED_RENEWAL,
    NGX_HTTP_SCEP_REJECT_BACKEND_BUSY,   /* scep_backend_limit */
    NGX_HTTP_SCEP_REJECT_MESSAGE       /* scep_message_check(): ctx->reason */
} ngx_http_scep_reject_e;


typedef struct {
    ngx_flag_t                 enable;
    size_t                     max_message;
    ngx_uint_t                 log_level;
    time_t                     retry_after;
    ngx_uint_t                 algorithms;    /* SCEP_ALG_* */
    ngx_flag_t                 pass_credentials;
    ngx_flag_t                 body_before_limits;

    /* where "scep on" was set, for the body buffer check */
    u_char                    *file;
    ngx_uint_t                 line;

    ngx_flag_t                 check_recipient;
    ngx_flag_t                 forward_der;
    ngx_uint_t                 forward_method;  /* NGX_HTTP_SCEP_FWD_* */
    ngx_flag_t                 ca_cache;
    time_t                     ca_cache_valid;
    ngx_uint_t                 ca_cache_ident;  /* NGX_HTTP_SCEP_IDENT_* */
    ngx_msec_t                 replay_window;   /* 0: off */
    ngx_uint_t                 check_response;  /* NGX_HTTP_SCEP_RESP_* */
    ngx_flag_t                 check_renewal;
    time_t                     renewal_grace;
    scep_crl_t                *crl;             /* scep_crl, or NULL */
    ngx_http_complex_value_t  *status_page;     /* scep_status_page */
    ngx_flag_t                 browser_test;    /* scep_browser_test */
} ngx_http_scep_loc_conf_t;


/* scep_check_response */
#define NGX_HTTP_SCEP_RESP_OFF       0
#define NGX_HTTP_SCEP_RESP_LOG       1
#define NGX_HTTP_SCEP_RESP_ON        2


/* scep_forward_method */
#define NGX_HTTP_SCEP_FWD_GET        0
#define NGX_HTTP_SCEP_FWD_POST       1
#define NGX_HTTP_SCEP_FWD_AUTO       2


/* scep_ca_cache_ident */
#define NGX_HTTP_SCEP_IDENT_ANY      1
#define NGX_HTTP_SCEP_IDENT_PROBE    2


/* peer states, as the status page names them */
#define NGX_HTTP_SCEP_PEER_UP        0
#define NGX_HTTP_SCEP_PEER_DOWN      1
#define NGX_HTTP_SCEP_PEER_CHECKING  2    /* "mandatory": no pass yet */

#define NGX_HTTP_SCEP_REASON_LEN     256

/* scep_backend_limit: the most of queue=, and the tickets a queue spans */
#define NGX_HTTP_SCEP_QUEUE_MAX      1000
#define NGX_HTTP_SCEP_TICKETS        1024
#define NGX_HTTP_SCEP_HOLDERS        64    /* workers counted apart */
#define NGX_HTTP_SCEP_SH_CERTS       4




/*
 * The identifier of a pkiMessage's recipient (scep_cert_id(), not
 * canonical, or scep_key_id()), kept with the octets it was made of:
 * devices encrypt to the few certificates of GetCACert, so a worker
 * sees the same few recipients in every request.
 */
#define NGX_HTTP_SCEP_RCP_MEMO       4
#define NGX_HTTP_SCEP_RCP_MEMO_MAX   512     /* larger: not kept */

typedef struct {
    ngx_uint_t                 kind;     /* SCEP_RECIPIENT_*, 0: empty */
    size_t                     a_len;    /* issuer, or subjectKeyId */
    size_t                     b_len;    /* serial, or 0 */
    u_char                     octets[NGX_HTTP_SCEP_RCP_MEMO_MAX];
    u_char                     id[SCEP_CERT_ID_LEN];
} ngx_http_scep_rcp_memo_t;


/*
 * what a pkiMessage's recipient is compared with, of a certificate from
 * GetCACert (scep_cert_id(), scep_key_id())
 */
typedef struct {
    u_char                     id[SCEP_CERT_ID_LEN];
    u_char                     id_canonical[SCEP_CERT_ID_LEN];
    u_char                     key_id[SCEP_CERT_ID_LEN];
    unsigned                   has_key_id:1;

    /*
     * basicConstraints CA:TRUE: when an answer has more certificates
     * than one, only these may have issued a renewal's signer
     */
    unsigned                   is_ca:1;

    /* the subject's hash: a renewal's issuer is compared with it */
    uint32_t                   subject_hash;

    /* its public key, SubjectPublicKeyInfo in DER, in the peer's "keys" */
    size_t                     key_off;
    size_t                     key_len;
} ngx_http_scep_sh_rid_t;


/* what the shared zone keeps of a certificate from GetCACert */
typedef struct {
    u_char                     subject[128];
    u_char                     serial[48];
    time_t                     not_after;
    unsigned                   is_ca:1;
} ngx_http_scep_sh_cert_t;


#define NGX_HTTP_SCEP_NOPS       5    /* four operations and "other" */
#define NGX_HTTP_SCEP_NTYPES     5    /* client message types */
#define NGX_HTTP_SCEP_NCLASSES   5    /* 1xx to 5xx */
#define NGX_HTTP_SCEP_NREJECTS   (NGX_HTTP_SCEP_REJECT_MESSAGE - 1           \
                                  + SCEP_REASON_INTERNAL)


/* counters of the requests of "scep on" locations, over all workers */
typedef struct {
    ngx_atomic_t               total;
    ngx_atomic_t               ops[NGX_HTTP_SCEP_NOPS];
    ngx_atomic_t               types[NGX_HTTP_SCEP_NTYPES];
    ngx_atomic_t               responses[NGX_HTTP_SCEP_NCLASSES];
    ngx_atomic_t               rejects[NGX_HTTP_SCEP_NREJECTS];
    ngx_atomic_t               rate_limited;
    ngx_atomic_t               no_healthy;
    ngx_atomic_t               cache_hits[2];    /* GetCACaps, GetCACert */
    ngx_atomic_t               cache_stale;      /* hits without a healthy
                                                    back end */
    ngx_atomic_t               cache_misses;
    ngx_atomic_t               cache_bypassed;   /* passed on while the
                                                    back ends disagree */
    ngx_atomic_t               replay_evicted;
    ngx_atomic_t               browser_tests;
    ngx_atomic_t               pending_evicted;  /* records forgotten
                                                    before their time */
} ngx_http_scep_counters_t;


/*
 * What back ends answered to PKIOperations, read from their CertReps
 * (ngx_http_scep_response.c): per back end in the shared zone, summed
 * per upstream by the status page
 */
#define NGX_HTTP_SCEP_RECENT         10    /* minutes */

typedef struct {
    ngx_atomic_t               issued;     /* SUCCESS to PKCSReq,
                                              RenewalReq, CertPoll */
    ngx_atomic_t               success;    /* SUCCESS to GetCert, GetCRL */
    ngx_atomic_t               pending;
    ngx_atomic_t               refused[SCEP_FAIL_N + 1];  /* by failInfo,
                                              the last: none or unknown */
    ngx_atomic_t               checks[SCEP_RESPONSE_N];   /* by
                                              $scep_response_check */

    /* issued and refused, a slot a minute, for the last 10 minutes */
    time_t                     minute[NGX_HTTP_SCEP_RECENT];
    ngx_uint_t                 recent_issued[NGX_HTTP_SCEP_RECENT];
    ngx_uint_t                 recent_refused[NGX_HTTP_SCEP_RECENT];
} ngx_http_scep_outcomes_t;


/* the last good GetCACaps and GetCACert answers of a back end */
typedef struct {
    time_t                     last_good;    /* last passing probe */
    time_t                     ra_not_before;
    time_t                     ra_not_after;
    size_t                     len[4];       /* see ngx_http_scep_answers_t */
    u_char                     digest[32];   /* SHA-256 of the data, to
                                                compare back ends' */
    unsigned                   differs:1;    /* not the answer served */
    u_char                     data[1];
} ngx_http_scep_sh_answer_t;


/* what a probe got: the Content-Type and body of each answer */
typedef struct {
    ngx_str_t                  part[4];      /* caps type, caps, cacert
                                                type, cacert */
} ngx_http_scep_answers_t;


/*
 * What a worker, by its process slot, holds on a server: PKIOperations
 * in flight, and in the queue's record requests let through that its
 * balancer has not placed yet; both 0: a free entry
 */
typedef struct {
    uint16_t                   slot;
    uint16_t                   n;
    uint16_t                   reserved;
} ngx_http_scep_sh_hold_t;


/*
 * What each ticket of an upstream's queue (scep_backend_limit) keeps, in
 * a block of its own: only upstreams where requests wait pay for it
 */
typedef struct {
    u_char                     gone[NGX_HTTP_SCEP_TICKETS / 8];
    uint16_t                   owner[NGX_HTTP_SCEP_TICKETS];
    uint32_t                   joined[NGX_HTTP_SCEP_TICKETS];  /* low bits
                                                of ngx_current_msec */
} ngx_http_scep_sh_tickets_t;


/* one back end's health, in the shared zone, found again after reload */
typedef struct {
    ngx_queue_t                queue;
    ngx_str_t                  key;          /* "upstream name" SP addr
                                                SP answers_key */
    ngx_uint_t                 generation;   /* last configuration read
                                                with it: sh->configs */

    ngx_uint_t                 state;
    ngx_uint_t                 passes;       /* consecutive */
    ngx_uint_t                 fails;        /* consecutive */
    ngx_uint_t                 checks;       /* probes run */

    ngx_msec_t                 next_check;   /* ngx_current_msec */
    ngx_msec_t                 lease;        /* probe running until */
    ngx_pid_t                  owner;

    time_t                     last_check;
    time_t                     last_change;
    ngx_msec_t                 latency;
    ngx_uint_t                 last_ok;
    u_char                     reason[NGX_HTTP_SCEP_REASON_LEN];
    u_char                     warning[NGX_HTTP_SCEP_REASON_LEN];

    uint32_t                   caps;
    ngx_uint_t                 ncerts;
    ngx_http_scep_sh_cert_t    certs[NGX_HTTP_SCEP_SH_CERTS];

    /* all the certificates of the last GetCACert; 0: none, or unknown */
    ngx_uint_t                 nrids;
    ngx_http_scep_sh_rid_t     rids[SCEP_CERTS_MAX];
    u_char                    *keys;         /* slab: the rids' keys, for
                                                checking CertReps */

    ngx_atomic_t               requests;
    ngx_atomic_t               responses[NGX_HTTP_SCEP_NCLASSES];
    ngx_atomic_t               failovers;

    ngx_http_scep_outcomes_t   outcomes;

    /* scep_health_check refusals=: FAILUREs in a row, under the mutex */
    ngx_uint_t                 refusals;
    time_t                     refusals_since;   /* the first of them */
    ngx_int_t                  refusal_info;     /* failInfo of the last */
    uint32_t                   refused_tids[8];  /* CRC32s of the last
                                                    refused transactionIDs:
                                                    a device's retries
                                                    count once */
    time_t                     last_issued;
    time_t                     refused_until;    /* down until, or 0 */

    ngx_http_scep_sh_answer_t *answer;       /* for scep_ca_cache */

    /*
     * scep_backend_limit, under the mutex: PKIOperations in flight to the
     * server, those of each worker by its process slot (a worker that
     * starts in the slot of one that died gives its back; beyond 64
     * workers at once, the others' are not told apart), and those
     * refused because every server was full
     */
    ngx_uint_t                 in_flight;
    ngx_atomic_t               busy;
    ngx_http_scep_sh_hold_t    held[NGX_HTTP_SCEP_HOLDERS];

    /*
     * The upstream's queue, kept in the record of its first server:
     * tickets from q_head to q_next wait, first come first served, but
     * those marked gone (timed out, or their client left); each ticket
     * keeps the process slot of its worker, so that the worker started
     * in the slot of one that died drops them, and when it joined, so
     * that those left over anyway are passed over once surely dead
     */
    ngx_uint_t                 q_head;
    ngx_uint_t                 q_next;
    ngx_uint_t                 q_gone;
    ngx_uint_t                 q_reserved;   /* let through, not yet at
                                                the balancer */
    ngx_http_scep_sh_tickets_t *tickets;     /* slab, made by the first
                                                request that waits */
} ngx_http_scep_sh_peer_t;


/* a child of the master process, and the configuration it runs */
typedef struct {
    ngx_pid_t                  pid;
    ngx_uint_t                 config;
} ngx_http_scep_sh_proc_t;


typedef struct {
    ngx_queue_t                peers;
    ngx_uint_t                 generation;   /* configurations loaded */
    ngx_uint_t                 configs;      /* read, failed ones too */
    ngx_uint_t                 running;      /* the last one with workers */
    time_t                     started;
    ngx_uint_t                 answer_nomem;  /* logged once */
    ngx_atomic_t               body_late_logged;  /* ngx_time() */
    ngx_http_scep_counters_t   counters;
    ngx_uint_t                 nprocs;
    ngx_http_scep_sh_proc_t    procs[NGX_MAX_PROCESSES];
} ngx_http_scep_sh_t;


typedef struct ngx_http_scep_upstream_s  ngx_http_scep_upstream_t;


/* a back end under health checks, in every worker's configuration */
typedef struct {
    ngx_str_t                  name;         /* address as nginx prints it */
    u_char                    *rr_name;      /* its round-robin name data */
    struct sockaddr           *sockaddr;
    socklen_t                  socklen;
    ngx_http_scep_sh_peer_t   *sh;
    ngx_http_scep_upstream_t  *upstream;
    ngx_event_t               *timer;
    unsigned                   down:1;       /* "server ... down" */
} ngx_http_scep_peer_t;


struct ngx_http_scep_upstream_s {
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_array_t                        peers;      /* ngx_http_scep_peer_t */

    ngx_msec_t                         interval;
    ngx_msec_t                         jitter;
    ngx_msec_t                         timeout;
    ngx_uint_t                         fails;
    ngx_uint_t                         passes;
    ngx_str_t                          uri;
    ngx_str_t                          ca_ident;      /* as configured */
    ngx_str_t                          ca_ident_arg;  /* "&message=..." */
    ngx_str_t                          answers_key;   /* what the answers
                                                         kept depend on */
    time_t                             ra_expiry_warn;
    ngx_uint_t                         refusals;      /* 0: off */
    time_t                             refusal_hold;
    unsigned                           mandatory:1;
    unsigned                           initialized:1;
    unsigned                           cache:1;     /* keep the answers */
    unsigned                           intune:1;    /* the bare GET too */

    scep_anchors_t                    *trusted_ca;   /* scep_trusted_ca */

    ngx_uint_t                         limit;         /* scep_backend_limit,
                                                         0: none */
    ngx_uint_t                         limit_queue;
    ngx_msec_t                         limit_timeout;

#if (NGX_HTTP_SSL)
    ngx_ssl_t                         *ssl;          /* probes over TLS */
    ngx_str_t                          ssl_name;     /* SNI and check */
    ngx_str_t                          ssl_trusted;
    ngx_flag_t                         ssl_verify;
#endif

    ngx_shm_zone_t                    *shm_zone;

    ngx_http_upstream_init_pt          original_init_upstream;
    ngx_http_upstream_init_peer_pt     original_init_peer;

    u_char                            *file;
    ngx_uint_t                         line;
};


typedef struct {
    /* "scep on" appears somewhere in this server */
    ngx_uint_t                 used;
    u_char                    *file;
    ngx_uint_t                 line;

    /* in an upstream block: its health checks */
    ngx_http_scep_upstream_t  *health;

    /* in an upstream block: scep_trusted_ca */
    scep_anchors_t            *trusted_ca;
    u_char                    *trusted_file;
    ngx_uint_t                 trusted_line;

    /* in an upstream block: scep_backend_limit */
    ngx_uint_t                 limit;
    ngx_uint_t                 limit_queue;
    ngx_msec_t                 limit_timeout;
    u_char                    *limit_file;
    ngx_uint_t                 limit_line;
} ngx_http_scep_srv_conf_t;


typedef struct {
    /* "scep on" on the http level */
    ngx_uint_t                 used;
    u_char                    *file;
    ngx_uint_t                 line;

    ngx_array_t                upstreams;  /* ngx_http_scep_upstream_t * */
    size_t                     zone_size;
    ngx_shm_zone_t            *shm_zone;
    ngx_uint_t                 config;     /* its number: sh->configs */

    ngx_uint_t                 any;        /* "scep on" anywhere */
    ngx_int_t                  limit_req_status;  /* variable index */
    ngx_uint_t                 proxy_index;  /* ngx_http_proxy_module's */
    ngx_uint_t                 cache_used;   /* "scep_ca_cache on" */

    ssize_t                    replay_size;
    ngx_shm_zone_t            *replay_zone;
    u_char                    *replay_file;  /* a scep_replay_window */
    ngx_uint_t                 replay_line;

    ngx_str_t                  dashboard_csp;  /* with scep_status */

    ssize_t                    pending_size;   /* scep_pending_zone */
    time_t                     pending_timeout;
    ngx_shm_zone_t            *pending_zone;

    scep_crypto_t             *crypto;     /* this cycle's, or NULL */

    /*
     * the worker's own: the last signer certificates found self-signed
     * (ngx_http_scep_renewal.c), allocated at their first use
     */

    /*
     * the worker's own: the last recipients' identifiers, by their
     * octets (ngx_http_scep_recipient.c), allocated at their first use
     */
    ngx_http_scep_rcp_memo_t  *rcp_memo;
    ngx_uint_t                 rcp_memo_next;
} ngx_http_scep_main_conf_t;


/*
 * A record in a zone of keyed records (ngx_http_scep_records.c): the key
 * at data, then value_len bytes of value
 */
typedef struct {
    ngx_rbtree_node_t          node;         /* node.key: hash of key */
    ngx_queue_t                queue;
    ngx_msec_t                 expires;
    u_short                    len;
    u_short                    value_len;
    u_char                     data[1];
} ngx_http_scep_record_t;


typedef struct {
    ngx_rbtree_t               rbtree;
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                queue;        /* newest first */
    ngx_uint_t                 entries;
    time_t                     full_logged;  /* the last "full" line */
} ngx_http_scep_records_t;


/*
 * A request's state, from the rewrite phase to the log phase.  It
 * survives internal redirects: ngx_http_scep_get_ctx() finds it again.
 */
typedef struct {
    ngx_http_scep_loc_conf_t  *conf;          /* of the "scep on" location */

    ngx_str_t                  operation;     /* as sent */
    ngx_str_t                  message;       /* raw query value */
    ngx_uint_t                 op;            /* ngx_http_scep_op_e */
    ngx_uint_t                 reject;        /* ngx_http_scep_reject_e */

    u_char                    *der;           /* decoded pkiMessage */
    size_t                     der_len;
    u_char                    *fwd;           /* its DER form, if BER */
    size_t                     fwd_len;

    scep_reason_t              reason;
    scep_result_t              result;
    scep_pending_t            *pending;       /* signature not yet checked */

    ngx_int_t                  status;        /* body handler: NGX_OK or
                                                 an HTTP error status */

    unsigned                   no_healthy:1;  /* balancer found none */
    unsigned                   backend_full:1;  /* found every server
                                                   full: backend_busy */
    unsigned                   replace_body:1;
    unsigned                   parsed:1;      /* rewrite phase done */
    unsigned                   redirected:1;  /* found after a redirect */
    unsigned                   done:1;        /* precontent phase done */
    unsigned                   rejected:1;    /* ctx->reject answered */
    unsigned                   has_message:1;
    unsigned                   checked:1;     /* result is valid */
    unsigned                   body:2;        /* NGX_HTTP_SCEP_BODY_* */
    unsigned                   cache:2;       /* NGX_HTTP_SCEP_CACHE_* */
    unsigned                   replay_kept:1; /* pair in the replay zone */
    unsigned                   der_allocated:1;  /* ctx->der is ours */
    unsigned                   forward_post:1;   /* a GET that goes on as
                                                    a POST: ctx->der kept */
    unsigned                   converted:1;   /* ... and was made one */
    unsigned                   query_allocated:1;  /* r->args is ours */
    unsigned                   stream_logged:1;    /* said once why a GET
                                                      stayed a GET */
    unsigned                   browser:1;     /* a bare GET or HEAD: the
                                                 browser test; answered,
                                                 with ctx->rejected */

    /* what the conversion to a POST replaced, for an internal redirect */
    ngx_array_t               *fwd_saved;     /* of ngx_http_scep_saved_t */
    ngx_table_elt_t           *fwd_pushed;    /* our Content-Type */
    off_t                      fwd_length_n;  /* the device's */

    /* the back end's answer to a PKIOperation (ngx_http_scep_response.c) */
    unsigned                   response:2;    /* NGX_HTTP_SCEP_ANSWER_* */
    unsigned                   response_check:4;  /* scep_response_t + 1,
                                                     0: not checked */
    scep_certrep_t            *certrep;       /* NULL: no CertRep */
    void                      *answer;        /* the answer held */
    ngx_http_scep_peer_t      *peer;          /* the server that answered,
                                                 under health checks */

    /* scep_pending_zone: the server that holds a CertPoll's request */
    ngx_http_scep_peer_t      *pinned;

    /* scep_backend_limit (ngx_http_scep_limit.c) */
    ngx_http_scep_upstream_t  *limited;       /* its upstream, once met */
    ngx_http_scep_peer_t      *slot;          /* the server it holds */
    ngx_uint_t                 ticket;
    ngx_msec_t                 deadline;
    ngx_msec_t                 poll;
    unsigned                   waiting:1;     /* holds ticket */
    unsigned                   reserved:1;    /* let through, no slot yet */
} ngx_http_scep_ctx_t;


/* a request header's value that a GET forwarded as a POST replaced */
typedef struct {
    ngx_table_elt_t           *header;
    ngx_str_t                  value;
} ngx_http_scep_saved_t;


#define NGX_HTTP_SCEP_ANSWER_NONE      0
#define NGX_HTTP_SCEP_ANSWER_BUFFERING 1   /* header held, body read */
#define NGX_HTTP_SCEP_ANSWER_DONE      2
#define NGX_HTTP_SCEP_ANSWER_REFUSED   3   /* 502 sent, the rest dropped */


#define NGX_HTTP_SCEP_CACHE_HIT     1
#define NGX_HTTP_SCEP_CACHE_MISS    2
#define NGX_HTTP_SCEP_CACHE_BYPASS  3    /* the back ends disagree */

#define NGX_HTTP_SCEP_BODY_NONE     0   /* not read yet */
#define NGX_HTTP_SCEP_BODY_READING  1
#define NGX_HTTP_SCEP_BODY_READ     2   /* or nothing to read */


ngx_int_t ngx_http_scep_server_rewrite_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_scep_rewrite_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_scep_precontent_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_scep_log_handler(ngx_http_request_t *r);
ngx_http_scep_ctx_t *ngx_http_scep_get_ctx(ngx_http_request_t *r);
void ngx_http_scep_body_wanted(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);

ngx_int_t ngx_http_scep_parse(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_read_body(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_verify(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_send_reject(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_send_text(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b);
ngx_table_elt_t *ngx_http_scep_add_header(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value);
ngx_int_t ngx_http_scep_strip_headers(ngx_http_request_t *r);
void ngx_http_scep_reject_token(ngx_http_scep_ctx_t *ctx, ngx_str_t *token);
ngx_uint_t ngx_http_scep_reject_text(ngx_http_scep_ctx_t *ctx,
    ngx_str_t *text);
ngx_uint_t ngx_http_scep_reject_index(ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_reject_index_token(ngx_uint_t index, ngx_str_t *token);
ngx_int_t ngx_http_scep_retry_after_init(ngx_conf_t *cf);

ngx_uint_t ngx_http_scep_browser_bare(ngx_http_request_t *r);
ngx_int_t ngx_http_scep_browser_answer(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);

char *ngx_http_scep_health_check(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_scep_health_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_scep_peer_healthy(ngx_http_scep_peer_t *peer);
ngx_int_t ngx_http_scep_shm_init(ngx_conf_t *cf,
    ngx_http_scep_main_conf_t *smcf);
ngx_int_t ngx_http_scep_shm_reload_single(ngx_conf_t *cf,
    ngx_http_scep_main_conf_t *smcf);
ngx_int_t ngx_http_scep_check_init_process(ngx_cycle_t *cycle);
ngx_http_scep_peer_t *ngx_http_scep_find_peer(ngx_http_scep_upstream_t *hc,
    ngx_str_t *name, struct sockaddr *sockaddr, socklen_t socklen);
ngx_http_upstream_rr_peer_t *ngx_http_scep_rr_peer(
    ngx_http_scep_upstream_t *hc, ngx_str_t *name,
    ngx_http_upstream_rr_peers_t **owner);
ngx_http_scep_sh_t *ngx_http_scep_shared(ngx_http_scep_main_conf_t *smcf);
void ngx_http_scep_shm_running(ngx_http_scep_main_conf_t *smcf);

void ngx_http_scep_recipient_init(ngx_conf_t *cf);
ngx_http_scep_srv_conf_t *ngx_http_scep_location_upstream(
    ngx_http_request_t *r);
ngx_http_scep_upstream_t *ngx_http_scep_location_health(
    ngx_http_request_t *r);
ngx_int_t ngx_http_scep_recipient_check(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_recipient_save(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp, scep_ca_answer_t *ca);
void ngx_http_scep_recipient_free_locked(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp);
ngx_int_t ngx_http_scep_forward_der(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_forward_as_post(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_forward_post(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_forward_undo(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_int_t ngx_http_scep_canonical_query(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);

ngx_http_scep_reject_e ngx_http_scep_renewal_check(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
char *ngx_http_scep_crl(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

ngx_int_t ngx_http_scep_stats_init(ngx_conf_t *cf);
void ngx_http_scep_stats_log(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx);

ngx_int_t ngx_http_scep_cache_init(ngx_conf_t *cf);
char *ngx_http_scep_ca_ident(ngx_conf_t *cf, ngx_http_scep_upstream_t *hc,
    ngx_str_t *value);
char *ngx_http_scep_trusted_ca(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_scep_cache_handler(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_cache_probe_done(ngx_http_scep_peer_t *peer,
    ngx_http_scep_answers_t *answers, scep_ca_answer_t *ca);
ngx_int_t ngx_http_scep_answers_keep(ngx_pool_t *pool, ngx_str_t *part,
    ngx_str_t *type, ngx_str_t *body);
void ngx_http_scep_cache_free_locked(ngx_slab_pool_t *shpool,
    ngx_http_scep_sh_peer_t *sp);
ngx_int_t ngx_http_scep_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

char *ngx_http_scep_replay_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_scep_replay_window(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_scep_replay_init(ngx_conf_t *cf);
ngx_int_t ngx_http_scep_replay_check(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_replay_log(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_replay_entries(ngx_http_scep_main_conf_t *smcf);
ngx_shm_zone_t *ngx_http_scep_records_zone(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *value, ngx_str_t *name, void *data);
ngx_http_scep_record_t *ngx_http_scep_records_find(
    ngx_http_scep_records_t *rs, uint32_t hash, u_char *key, size_t len);
ngx_http_scep_record_t *ngx_http_scep_records_add(ngx_slab_pool_t *shpool,
    ngx_http_scep_records_t *rs, uint32_t hash, u_char *key, size_t len,
    size_t value_len, ngx_uint_t *evicted);
void ngx_http_scep_records_touch(ngx_http_scep_records_t *rs,
    ngx_http_scep_record_t *rn);
void ngx_http_scep_records_remove(ngx_slab_pool_t *shpool,
    ngx_http_scep_records_t *rs, ngx_http_scep_record_t *rn);
ngx_uint_t ngx_http_scep_records_log_full(ngx_http_scep_records_t *rs,
    ngx_uint_t evicted);
void ngx_http_scep_records_delete(ngx_shm_zone_t *shm_zone, uint32_t hash,
    u_char *key, size_t len);
void ngx_http_scep_records_evicted(ngx_http_request_t *r, ngx_uint_t evicted,
    ngx_uint_t log, size_t offset, char *name, size_t size, char *cost);
ngx_uint_t ngx_http_scep_records_entries(ngx_shm_zone_t *shm_zone);
#define NGX_HTTP_SCEP_VAR_PKI_STATUS      0
#define NGX_HTTP_SCEP_VAR_FAIL_INFO       1
#define NGX_HTTP_SCEP_VAR_RESPONSE_CHECK  2

/* the most of a back end's answer to a PKIOperation that is read */
#define NGX_HTTP_SCEP_MAX_ANSWER  (256 * 1024)

void ngx_http_scep_response_init(ngx_conf_t *cf);
ngx_int_t ngx_http_scep_response_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
void ngx_http_scep_outcome(ngx_http_request_t *r, ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_recent(ngx_http_scep_outcomes_t *o, time_t now,
    ngx_uint_t issued);

char *ngx_http_scep_pending_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_scep_pending_init(ngx_conf_t *cf);
ngx_int_t ngx_http_scep_pending_route(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
void ngx_http_scep_pending_update(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_pending_entries(ngx_http_scep_main_conf_t *smcf);

char *ngx_http_scep_backend_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_scep_limit_postconf(ngx_conf_t *cf);
void ngx_http_scep_limit_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_scep_limit_handler(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_limit_take(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_peer_t *peer);
void ngx_http_scep_limit_give(ngx_http_scep_ctx_t *ctx);
ngx_uint_t ngx_http_scep_limit_waiting(ngx_http_scep_upstream_t *hc);
void ngx_http_scep_limit_full(ngx_http_request_t *r,
    ngx_http_scep_ctx_t *ctx, ngx_http_scep_upstream_t *hc);
ngx_http_scep_upstream_t *ngx_http_scep_location_health(
    ngx_http_request_t *r);

char *ngx_http_scep_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_scep_dashboard_init(ngx_conf_t *cf,
    ngx_http_scep_main_conf_t *smcf);
ngx_int_t ngx_http_scep_dashboard(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_scep_module;


#endif /* _NGX_HTTP_SCEP_MODULE_H_INCLUDED_ */
