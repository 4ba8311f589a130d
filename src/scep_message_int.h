
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * What the files of the pkiMessage checks share: BER elements and the
 * reader of scep_ber.c, the state of a check, and the steps that
 * scep_message.c calls in turn.  Not for callers: scep_message.h is the
 * interface.
 */


#ifndef _SCEP_MESSAGE_INT_H_INCLUDED_
#define _SCEP_MESSAGE_INT_H_INCLUDED_


#include <openssl/evp.h>

#include "scep_message.h"


/* BER identifier octets */
#define SCEP_BER_BOOLEAN          0x01
#define SCEP_BER_INTEGER          0x02
#define SCEP_BER_BIT_STRING       0x03
#define SCEP_BER_OCTET_STRING     0x04
#define SCEP_BER_NULL             0x05
#define SCEP_BER_OID              0x06
#define SCEP_BER_ENUMERATED       0x0a
#define SCEP_BER_UTF8_STRING      0x0c
#define SCEP_BER_PRINTABLE        0x13
#define SCEP_BER_UTC_TIME         0x17
#define SCEP_BER_GEN_TIME         0x18
#define SCEP_BER_UNIVERSAL_STRING 0x1c
#define SCEP_BER_BMP_STRING       0x1e
#define SCEP_BER_SEQUENCE         0x30
#define SCEP_BER_SET              0x31
#define SCEP_BER_CONSTRUCTED      0x20
#define SCEP_BER_HIGH_TAG         0x1f
#define SCEP_BER_CONTEXT          0x80

/* [n] primitive and [n] constructed */
#define scep_ber_ctx(n)        (SCEP_BER_CONTEXT | (n))
#define scep_ber_ctx_cons(n)   (SCEP_BER_CONTEXT | SCEP_BER_CONSTRUCTED | (n))

#define scep_nelts(a)          (sizeof(a) / sizeof((a)[0]))


/* one BER element: contents [val, vend), the next element at "next" */
typedef struct {
    unsigned int           tag;       /* first identifier octet */
    const unsigned char   *hdr;
    const unsigned char   *val;
    const unsigned char   *vend;
    const unsigned char   *next;
} scep_ber_t;


/* the contents of a constructed element, read one element at a time */
typedef struct {
    const unsigned char   *p;
    const unsigned char   *end;
} scep_cur_t;


/* an OID, as its contents octets, and what it stands for */
typedef struct {
    uint32_t               bits;
    size_t                 len;
    unsigned char          oid[9];
} scep_oid_t;


/* the nonces of SCEP: senderNonce and recipientNonce */
#define SCEP_NONCE_LEN            16


/*
 * The SCEP attributes (2.16.840.1.113733.1.9.2 to .7) by kind, the last
 * octet of their OID less 2
 */
#define SCEP_ATTR_MESSAGE_TYPE    0
#define SCEP_ATTR_PKI_STATUS      1
#define SCEP_ATTR_FAIL_INFO       2
#define SCEP_ATTR_SENDER_NONCE    3
#define SCEP_ATTR_RECIPIENT_NONCE 4
#define SCEP_ATTR_TRANSACTION_ID  5
#define SCEP_ATTR_N               6


/* the SCEP attributes of a SignerInfo, as scep_find_attributes() found */
typedef struct {
    scep_ber_t             values[SCEP_ATTR_N];   /* tag 0 when absent */
    unsigned int           dup;           /* bit 1 << kind: more than once */
} scep_attrs_t;


/* what a check needs of a certificate */
typedef struct {
    scep_ber_t             serial;
    scep_ber_t             issuer;
    scep_ber_t             subject;
    scep_ber_t             key_alg;       /* its OID */
    scep_ber_t             key_params;    /* tag 0 when absent */
    scep_ber_t             key;           /* the BIT STRING */
    scep_ber_t             ski;           /* keyIdentifier, tag 0 if none */
    scep_ber_t             spki;          /* SubjectPublicKeyInfo */
} scep_cert_t;


/* RSA public keys met last, and how many */
#define SCEP_CRYPTO_KEYS          8

/* the longest RSAPublicKey kept: a modulus of 8192 bits */
#define SCEP_CRYPTO_KEY_MAX       1100


/* an RSA public key met before */
typedef struct {
    size_t                 len;           /* 0: a free slot */
    unsigned char          der[SCEP_CRYPTO_KEY_MAX];  /* RSAPublicKey */
    EVP_PKEY              *pkey;
    EVP_PKEY_CTX          *pctx;          /* PKCS#1 v1.5 verify, or NULL */
    uint32_t               digest;        /* SCEP_ALG_* of pctx */
} scep_crypto_key_t;


/* what scep_crypto_new() fetches, and the keys met last */
struct scep_crypto_s {
    EVP_MD                *md[6];         /* by scep_digest_index() */
    EVP_PKEY_CTX          *rsa;           /* ready for EVP_PKEY_fromdata() */
    scep_crypto_key_t      keys[SCEP_CRYPTO_KEYS];
    unsigned int           next;          /* the slot to fill next */
};


/* the state of one scep_message_check() call */
typedef struct {
    uint32_t               algorithms;
    scep_crypto_t         *crypto;        /* or NULL */
    scep_result_t         *res;

    /* SignedData */
    scep_ber_t             digest_algs;
    scep_ber_t             econtent_type;
    scep_ber_t             econtent;      /* tag 0 when absent */
    scep_ber_t             certs;         /* tag 0 when absent */
    unsigned int           signers;

    /* its first SignerInfo */
    scep_ber_t             sid;
    scep_ber_t             digest_alg;
    scep_ber_t             attrs;         /* tag 0 when absent */
    scep_ber_t             sig_alg;
    scep_ber_t             sig_params;    /* tag 0 when absent */
    scep_ber_t             signature;

    /* the encapsulated content octets */
    const unsigned char   *content;
    size_t                 content_len;
    unsigned char         *content_copy;

    scep_ber_t             cipher_alg;
    scep_cert_t            cert;
    unsigned int           name_compares;

    EVP_MD                *md;            /* the signer's digest */
    unsigned int           md_fetched;    /* md is ours to free */
} scep_check_t;


/* the digest algorithms by OID (scep_rules.c) */
extern const scep_oid_t  scep_digests[6];


/* scep_message.c: what a check allocated, released */

void scep_check_free(scep_check_t *ck);


/* scep_ber.c: the BER reader and its validators */

int scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef);
int scep_ber_read(const unsigned char *p, const unsigned char *end,
    scep_ber_t *el, int deep, unsigned int depth);
int scep_ber_bits_ok(const scep_ber_t *el);
int scep_ber_pieces(const scep_ber_t *el, unsigned int tag,
    unsigned int depth, unsigned char *out, size_t *len, int *first);
void scep_cur_init(scep_cur_t *cur, const scep_ber_t *el);
int scep_cur_done(const scep_cur_t *cur);
int scep_cur_peek(const scep_cur_t *cur);
int scep_cur_next(scep_cur_t *cur, unsigned int tag, scep_ber_t *el);
int scep_cur_optional(scep_cur_t *cur, unsigned int tag, scep_ber_t *el);
int scep_cur_attribute(scep_cur_t *cur, scep_ber_t *oid,
    scep_ber_t *values);
int scep_ber_oid_ok(const scep_ber_t *el);
int scep_cur_oid(scep_cur_t *cur, scep_ber_t *el);
int scep_cur_integer(scep_cur_t *cur, size_t max, scep_ber_t *el);
int scep_cur_alg(scep_cur_t *cur, scep_ber_t *oid, scep_ber_t *params);
int scep_cur_octets(scep_cur_t *cur, scep_ber_t *el);
int scep_ber_name_ok(const scep_ber_t *el);
int scep_ber_attributes_ok(const scep_ber_t *el);
int scep_oid_is(const scep_ber_t *el, const unsigned char *oid, size_t len);
uint32_t scep_oid_bits(const scep_oid_t *table, size_t n,
    const scep_ber_t *el);
size_t scep_oid_index(const scep_oid_t *table, size_t n,
    const scep_ber_t *el);
void scep_oid_text(const scep_ber_t *el, char *out, size_t size);
int scep_der_equal(const scep_ber_t *a, const scep_ber_t *b);


/* scep_cms.c: ContentInfo, SignedData, certificates, EnvelopedData */

scep_reason_t scep_parse_content_info(scep_check_t *ck,
    const unsigned char *der, size_t len);
int scep_parse_certificate(const scep_ber_t *el, scep_cert_t *cert);
int scep_parse_spki(const scep_ber_t *spki, scep_cert_t *cert);
int scep_content_is_data(const scep_check_t *ck);
scep_reason_t scep_check_content(scep_check_t *ck);
scep_reason_t scep_check_envelope(scep_check_t *ck);


/* scep_rules.c: the SCEP attributes and the algorithm policy */

scep_reason_t scep_find_attributes(const scep_check_t *ck,
    scep_attrs_t *found);
scep_reason_t scep_check_attributes(scep_check_t *ck);
int scep_attribute_value(const scep_ber_t *values, scep_ber_t *value);
int scep_attribute_once(const scep_attrs_t *found, unsigned int kind);
int scep_attribute_number(const scep_ber_t *values, int *number);
int scep_attribute_transaction_id(const scep_ber_t *values, char *out,
    size_t *out_len);
int scep_attribute_nonce(const scep_ber_t *values, unsigned char *out);
scep_reason_t scep_check_algorithms(scep_check_t *ck);
int scep_digest_listed(const scep_check_t *ck);


/* scep_verify.c: the signer, the messageDigest and the signature */

scep_reason_t scep_find_signer(scep_check_t *ck);
scep_reason_t scep_signer_digest(scep_check_t *ck);
scep_reason_t scep_check_message_digest(scep_check_t *ck);
scep_reason_t scep_check_signature(scep_check_t *ck);


/* scep_base64.c: the byte a "%XX" escape at p stands for, or -1 */

int scep_percent(const unsigned char *p, size_t left);


#endif /* _SCEP_MESSAGE_INT_H_INCLUDED_ */
