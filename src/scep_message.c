
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * pkiMessage checks in plain C over OpenSSL.
 *
 * The CMS structure is walked here rather than with d2i_CMS_ContentInfo():
 * OpenSSL 3.0 decodes the public key of every certificate it parses with
 * its provider decoders, which costs more than 100 microseconds a
 * certificate, more than the whole budget of a check.  The walk accepts
 * BER as OpenSSL does (indefinite lengths, constructed strings, as
 * streaming toolkits write them) and refuses what OpenSSL would refuse:
 * every length and nesting, the fields of each structure, the encoding of
 * INTEGERs, OIDs, BOOLEANs, BIT STRINGs and times, the string types of
 * names.  It allocates nothing but a copy of content that comes in
 * pieces.  OpenSSL is left the cryptography: the signer's public key, the
 * digests and the signature.
 *
 * Not quite as OpenSSL: the content of a ContentInfo that is not
 * SignedData is only checked as BER; CRLs are refused in SignedData and
 * EnvelopedData (no request carries them); the pieces of a constructed
 * OCTET STRING must be OCTET STRINGs; the signature covers the signed
 * attributes as they were sent, where OpenSSL encodes them anew.
 */


#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "scep_message.h"


/* deepest nesting of BER elements accepted, and of constructed strings */
#define SCEP_BER_MAX_DEPTH     32
#define SCEP_BER_MAX_PIECES    5

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

#define SCEP_NONCE_LEN         16

/* names compared by their canonical encoding at most, a check */
#define SCEP_NAME_COMPARES     4

/* the largest keys worth a signature check (see scep_rsa_key()) */
#define SCEP_RSA_MAX_BITS      8192
#define SCEP_RSA_MAX_E_BYTES   8

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


typedef struct {
    const char            *name;
    size_t                 len;
    uint32_t               bits;
} scep_alg_name_t;


/* what a check needs of a certificate */
typedef struct {
    scep_ber_t             serial;
    scep_ber_t             issuer;
    scep_ber_t             key_alg;       /* its OID */
    scep_ber_t             key_params;    /* tag 0 when absent */
    scep_ber_t             key;           /* the BIT STRING */
    scep_ber_t             ski;           /* keyIdentifier, tag 0 if none */
} scep_cert_t;


/* the state of one scep_message_check() call */
typedef struct {
    uint32_t               algorithms;
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
} scep_check_t;


static int scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef);
static int scep_ber_read(const unsigned char *p, const unsigned char *end,
    scep_ber_t *el, int deep, unsigned int depth);
static int scep_ber_universal_ok(const scep_ber_t *el);
static int scep_ber_pieces(const scep_ber_t *el, unsigned int tag,
    unsigned int depth, unsigned char *out, size_t *len, int *first);
static int scep_ber_bits_ok(const scep_ber_t *el);
static int scep_unicode_ok(const unsigned char *p, size_t n, size_t width);
static void scep_cur_init(scep_cur_t *cur, const scep_ber_t *el);
static int scep_cur_done(const scep_cur_t *cur);
static int scep_cur_peek(const scep_cur_t *cur);
static int scep_cur_next(scep_cur_t *cur, unsigned int tag, scep_ber_t *el);
static int scep_cur_optional(scep_cur_t *cur, unsigned int tag,
    scep_ber_t *el);
static int scep_ber_oid_ok(const scep_ber_t *el);
static int scep_ber_integer_ok(const scep_ber_t *el, size_t max);
static int scep_cur_oid(scep_cur_t *cur, scep_ber_t *el);
static int scep_cur_integer(scep_cur_t *cur, size_t max, scep_ber_t *el);
static int scep_cur_alg(scep_cur_t *cur, scep_ber_t *oid, scep_ber_t *params);
static int scep_cur_octets(scep_cur_t *cur, scep_ber_t *el);
static int scep_ber_name_ok(const scep_ber_t *el);
static int scep_ber_string_ok(const scep_ber_t *el);
static int scep_ber_attributes_ok(const scep_ber_t *el);
static int scep_oid_is(const scep_ber_t *el, const unsigned char *oid,
    size_t len);
static uint32_t scep_oid_bits(const scep_oid_t *table, size_t n,
    const scep_ber_t *el);
static int scep_der_equal(const scep_ber_t *a, const scep_ber_t *b);
static int scep_printable(unsigned char c);
static const char *scep_digest_name(uint32_t bits);
static scep_reason_t scep_openssl_reason(scep_reason_t fallback);

static scep_reason_t scep_parse_content_info(scep_check_t *ck,
    const unsigned char *der, size_t len);
static int scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd);
static int scep_parse_signer_info(scep_check_t *ck, const scep_ber_t *si);
static int scep_parse_certificates(const scep_ber_t *certs);
static int scep_parse_certificate(const scep_ber_t *el, scep_cert_t *cert);
static int scep_parse_extensions(const scep_ber_t *el, scep_cert_t *cert);
static int scep_parse_recipient_info(const scep_ber_t *el);
static int scep_cur_issuer_serial(scep_cur_t *cur, scep_ber_t *el);
static int scep_other_ok(const scep_ber_t *el);
static int scep_key_identifier_ok(const scep_ber_t *el);
static scep_reason_t scep_check_content(scep_check_t *ck);
static scep_reason_t scep_check_envelope(scep_check_t *ck);
static scep_reason_t scep_check_attributes(scep_check_t *ck);
static int scep_attribute_value(const scep_ber_t *values, scep_ber_t *value);
static scep_reason_t scep_check_message_type(const scep_ber_t *values,
    scep_result_t *res);
static scep_reason_t scep_check_transaction_id(const scep_ber_t *values,
    scep_result_t *res);
static scep_reason_t scep_check_sender_nonce(const scep_ber_t *values,
    scep_result_t *res);
static scep_reason_t scep_check_algorithms(scep_check_t *ck);
static scep_reason_t scep_find_signer(scep_check_t *ck);
static int scep_names_equal(scep_check_t *ck, const scep_ber_t *a,
    const scep_ber_t *b);
static scep_reason_t scep_check_message_digest(scep_check_t *ck);
static scep_reason_t scep_check_signature(scep_check_t *ck);
static EVP_PKEY *scep_public_key(const scep_cert_t *cert);
static EVP_PKEY *scep_rsa_key(const scep_ber_t *key);
static EVP_PKEY *scep_ec_key(const scep_ber_t *params, const scep_ber_t *key);
static scep_reason_t scep_pss_params(const scep_ber_t *params,
    uint32_t digest, EVP_PKEY_CTX *pctx);


/* contents octets of the OIDs used */

/* 1.2.840.113549.1.7.1, .2, .3 */
static const unsigned char  scep_oid_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01
};

static const unsigned char  scep_oid_signed_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
};

static const unsigned char  scep_oid_enveloped_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03
};

/* 1.2.840.113549.1.9.4 */
static const unsigned char  scep_oid_message_digest[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04
};

/* 2.16.840.1.113733.1.9.2, .5, .7 */
static const unsigned char  scep_oid_message_type[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x02
};

static const unsigned char  scep_oid_sender_nonce[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x05
};

static const unsigned char  scep_oid_transaction_id[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x07
};

/* 2.5.29.14 */
static const unsigned char  scep_oid_ski[] = { 0x55, 0x1d, 0x0e };

/* 1.2.840.113549.1.1.1, .10, .8 */
static const unsigned char  scep_oid_rsa[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
};

static const unsigned char  scep_oid_rsa_pss[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a
};

static const unsigned char  scep_oid_mgf1[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08
};

/* 1.2.840.10045.2.1 */
static const unsigned char  scep_oid_ec[] = {
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01
};


static const scep_oid_t  scep_digests[] = {

    /* 1.2.840.113549.2.5 */
    { SCEP_ALG_MD5, 8, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05 } },

    /* 1.3.14.3.2.26 */
    { SCEP_ALG_SHA1, 5, { 0x2b, 0x0e, 0x03, 0x02, 0x1a } },

    /* 2.16.840.1.101.3.4.2.4, .1, .2, .3 */
    { SCEP_ALG_SHA224, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04 } },
    { SCEP_ALG_SHA256, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01 } },
    { SCEP_ALG_SHA384, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02 } },
    { SCEP_ALG_SHA512, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03 } }
};


static const scep_oid_t  scep_ciphers[] = {

    /* 1.3.14.3.2.7 */
    { SCEP_ALG_DES, 5, { 0x2b, 0x0e, 0x03, 0x02, 0x07 } },

    /* 1.2.840.113549.3.7 */
    { SCEP_ALG_DES3, 8, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07 } },

    /* 2.16.840.1.101.3.4.1.2, .22, .42: CBC */
    { SCEP_ALG_AES128, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02 } },
    { SCEP_ALG_AES192, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16 } },
    { SCEP_ALG_AES256, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a } },

    /* 2.16.840.1.101.3.4.1.6, .26, .46: GCM */
    { SCEP_ALG_AES128, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x06 } },
    { SCEP_ALG_AES192, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x1a } },
    { SCEP_ALG_AES256, 9,
      { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e } }
};


/* signature algorithms, by kind */

#define SCEP_SIG_RSA     1
#define SCEP_SIG_PSS     2
#define SCEP_SIG_ECDSA   3

static const scep_oid_t  scep_signatures[] = {

    /* 1.2.840.113549.1.1.1, and .4, .5, .14, .11, .12, .13 with a hash */
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x01 } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x04 } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x05 } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x0e } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x0b } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x0c } },
    { SCEP_SIG_RSA, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x0d } },

    /* 1.2.840.113549.1.1.10 */
    { SCEP_SIG_PSS, 9, { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                         0x0a } },

    /* 1.2.840.10045.2.1 (the key OID, as some signers write it) */
    { SCEP_SIG_ECDSA, 7, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 } },

    /* 1.2.840.10045.4.1, and 4.3.1 to 4.3.4 */
    { SCEP_SIG_ECDSA, 7, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01 } },
    { SCEP_SIG_ECDSA, 8, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01 } },
    { SCEP_SIG_ECDSA, 8, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 } },
    { SCEP_SIG_ECDSA, 8, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 } },
    { SCEP_SIG_ECDSA, 8, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 } }
};


/* named curves: the index into scep_curve_names */

static const scep_oid_t  scep_curves[] = {

    /* 1.2.840.10045.3.1.7 */
    { 1, 8, { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 } },

    /* 1.3.132.0.34, .35 */
    { 2, 5, { 0x2b, 0x81, 0x04, 0x00, 0x22 } },
    { 3, 5, { 0x2b, 0x81, 0x04, 0x00, 0x23 } }
};

static const char  *scep_curve_names[] = {
    NULL, "P-256", "P-384", "P-521"
};


#define scep_alg_name(s, bits)  { s, sizeof(s) - 1, bits }

static const scep_alg_name_t  scep_alg_names[] = {
    scep_alg_name("md5", SCEP_ALG_MD5),
    scep_alg_name("sha1", SCEP_ALG_SHA1),
    scep_alg_name("sha224", SCEP_ALG_SHA224),
    scep_alg_name("sha256", SCEP_ALG_SHA256),
    scep_alg_name("sha384", SCEP_ALG_SHA384),
    scep_alg_name("sha512", SCEP_ALG_SHA512),
    scep_alg_name("des", SCEP_ALG_DES),
    scep_alg_name("des3", SCEP_ALG_DES3),
    scep_alg_name("aes128", SCEP_ALG_AES128),
    scep_alg_name("aes192", SCEP_ALG_AES192),
    scep_alg_name("aes256", SCEP_ALG_AES256),
    scep_alg_name("aes", SCEP_ALG_AES128|SCEP_ALG_AES192|SCEP_ALG_AES256)
};


static const char  *scep_reason_tokens[] = {
    "",
    "bad_der",
    "not_signed_data",
    "bad_signer_count",
    "bad_content_type",
    "bad_envelope",
    "bad_message_type",
    "bad_transaction_id",
    "bad_sender_nonce",
    "bad_digest_algorithm",
    "bad_cipher_algorithm",
    "no_signer_certificate",
    "bad_signature",
    "internal_error"
};


const char *
scep_reason_token(scep_reason_t reason)
{
    if ((unsigned int) reason >= scep_nelts(scep_reason_tokens)) {
        return "internal_error";
    }

    return scep_reason_tokens[reason];
}


const char *
scep_message_type_name(int message_type)
{
    switch (message_type) {

    case 17:
        return "RenewalReq";

    case 19:
        return "PKCSReq";

    case 20:
        return "CertPoll";

    case 21:
        return "GetCert";

    case 22:
        return "GetCRL";

    default:
        return NULL;
    }
}


uint32_t
scep_algorithm_bits(const char *name, size_t len)
{
    char    c;
    size_t  i, k;

    if (name == NULL) {
        return 0;
    }

    for (i = 0; i < scep_nelts(scep_alg_names); i++) {
        if (scep_alg_names[i].len != len) {
            continue;
        }

        for (k = 0; k < len; k++) {
            c = name[k];

            if (c >= 'A' && c <= 'Z') {
                c |= 0x20;
            }

            if (c != scep_alg_names[i].name[k]) {
                break;
            }
        }

        if (k == len) {
            return scep_alg_names[i].bits;
        }
    }

    return 0;
}


/* the state kept between scep_message_parse() and scep_message_verify() */

struct scep_pending_s {
    scep_check_t           ck;
    int                    parsed;        /* parse returned OK */
};


scep_reason_t
scep_message_check(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res)
{
    scep_reason_t   reason;
    scep_result_t   scratch;
    scep_pending_t  pending;

    if (res == NULL) {
        res = &scratch;
    }

    reason = scep_message_parse(der, len, policy, res, &pending);

    if (reason == SCEP_REASON_OK) {
        reason = scep_message_verify(&pending);
    }

    scep_pending_free(&pending);

    return reason;
}


size_t
scep_pending_size(void)
{
    return sizeof(scep_pending_t);
}


scep_reason_t
scep_message_parse(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res, scep_pending_t *pending)
{
    scep_reason_t   reason;
    scep_check_t   *ck;

    memset(pending, 0, sizeof(scep_pending_t));
    memset(res, 0, sizeof(scep_result_t));

    ck = &pending->ck;

    ck->algorithms = (policy != NULL) ? policy->algorithms
                                      : SCEP_ALG_DEFAULT;
    ck->res = res;

    /* errors the caller left queued are no business of this check */
    ERR_clear_error();

    reason = scep_parse_content_info(ck, der, len);

    if (reason == SCEP_REASON_OK) {
        reason = (ck->signers == 1) ? scep_check_content(ck)
                                    : SCEP_REASON_BAD_SIGNER_COUNT;
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_envelope(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_attributes(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_algorithms(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_find_signer(ck);
    }

    ERR_clear_error();

    pending->parsed = (reason == SCEP_REASON_OK);

    return reason;
}


scep_reason_t
scep_message_verify(scep_pending_t *pending)
{
    scep_reason_t  reason;

    if (!pending->parsed) {
        /* nothing to verify: a misuse, not a verdict on the message */
        return SCEP_REASON_INTERNAL;
    }

    pending->parsed = 0;

    ERR_clear_error();

    reason = scep_check_message_digest(&pending->ck);

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_signature(&pending->ck);
    }

    ERR_clear_error();

    return reason;
}


void
scep_pending_free(scep_pending_t *pending)
{
    EVP_MD_free(pending->ck.md);
    OPENSSL_free(pending->ck.content_copy);

    pending->ck.md = NULL;
    pending->ck.content_copy = NULL;
    pending->parsed = 0;
}


/* BER */

/*
 * Reads the identifier and length octets at *pos and leaves *pos at the
 * contents.  *tag is the first identifier octet; a definite length must
 * fit before "end"; an indefinite one is for constructed elements only.
 */

static int
scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef)
{
    size_t                n, l;
    const unsigned char  *p;

    p = *pos;

    if (end - p < 2) {
        return 0;
    }

    *tag = *p++;

    if ((*tag & SCEP_BER_HIGH_TAG) == SCEP_BER_HIGH_TAG) {

        /* a high tag number: base-128 octets, the last without bit 8 */

        do {
            if (p == end) {
                return 0;
            }

        } while (*p++ & 0x80);

        if (p == end) {
            return 0;
        }
    }

    *indef = 0;

    if (*p < 0x80) {
        l = *p++;

    } else if (*p == 0x80) {
        p++;

        if ((*tag & SCEP_BER_CONSTRUCTED) == 0) {
            return 0;
        }

        *indef = 1;
        l = 0;

    } else {
        n = *p++ & 0x7f;

        if (n > (size_t) (end - p)) {
            return 0;
        }

        l = 0;

        while (n--) {
            if (l > ((size_t) -1 >> 8)) {
                return 0;
            }

            l = l << 8 | *p++;
        }
    }

    if (l > (size_t) (end - p)) {
        return 0;
    }

    *vlen = l;
    *pos = p;

    return 1;
}


/*
 * Reads the element at "p", which must end before "end".  With "deep",
 * every element nested in a constructed one is checked as well;
 * otherwise only as far as an indefinite length needs to find its end.
 */

static int
scep_ber_read(const unsigned char *p, const unsigned char *end,
    scep_ber_t *el, int deep, unsigned int depth)
{
    int                   indef;
    size_t                vlen;
    unsigned int          tag;
    scep_ber_t            child;
    const unsigned char  *q;

    if (depth > SCEP_BER_MAX_DEPTH) {
        return 0;
    }

    el->hdr = p;

    if (!scep_ber_header(&p, end, &tag, &vlen, &indef)) {
        return 0;
    }

    if (tag == 0) {
        /* end-of-contents where no indefinite length is open */
        return 0;
    }

    el->tag = tag;
    el->val = p;

    if (!indef) {
        el->vend = p + vlen;
        el->next = el->vend;

        if (deep && !scep_ber_universal_ok(el)) {
            return 0;
        }

        if (deep && (tag & SCEP_BER_CONSTRUCTED)) {
            for (q = el->val; q != el->vend; q = child.next) {
                if (!scep_ber_read(q, el->vend, &child, 1, depth + 1)) {
                    return 0;
                }
            }
        }

        return 1;
    }

    for (q = p; ; q = child.next) {
        if (end - q >= 2 && q[0] == 0 && q[1] == 0) {
            el->vend = q;
            el->next = q + 2;
            return !deep || scep_ber_universal_ok(el);
        }

        if (!scep_ber_read(q, end, &child, deep, depth + 1)) {
            return 0;
        }
    }
}


/*
 * The universal types whose contents OpenSSL checks wherever they are,
 * even as ANY: INTEGER, ENUMERATED, OID, BOOLEAN and NULL primitive and
 * well-formed, SEQUENCE and SET constructed, BIT STRING with its unused
 * bits, BMPString and UniversalString of whole characters, times not too
 * short; constructed strings of pieces it can gather.
 */

static int
scep_ber_universal_ok(const scep_ber_t *el)
{
    int         first;
    size_t      n;
    scep_ber_t  v;

    n = el->vend - el->val;

    if ((el->tag & 0xc0) == 0
        && (el->tag & SCEP_BER_CONSTRUCTED)
        && el->tag != SCEP_BER_SEQUENCE
        && el->tag != SCEP_BER_SET)
    {
        /* a constructed string: its pieces gathered, then as primitive */

        n = 0;
        first = -1;

        if (!scep_ber_pieces(el, 0, 0, NULL, &n, &first)) {
            return 0;
        }

        switch (el->tag & ~SCEP_BER_CONSTRUCTED) {

        case SCEP_BER_BIT_STRING:
            return first >= 0 && first <= 7;

        case SCEP_BER_UNIVERSAL_STRING:
            return n % 4 == 0;

        case SCEP_BER_BMP_STRING:
            return n % 2 == 0;

        case SCEP_BER_UTC_TIME:
            return n >= 13;

        case SCEP_BER_GEN_TIME:
            return n >= 15;

        case SCEP_BER_BOOLEAN:
        case SCEP_BER_INTEGER:
        case SCEP_BER_ENUMERATED:
        case SCEP_BER_NULL:
        case SCEP_BER_OID:
            return 0;

        default:
            return 1;
        }
    }

    switch (el->tag) {

    case SCEP_BER_BOOLEAN:
        return n == 1;

    case SCEP_BER_INTEGER:
    case SCEP_BER_ENUMERATED:
        v = *el;
        v.tag = SCEP_BER_INTEGER;
        return scep_ber_integer_ok(&v, (size_t) -1);

    case SCEP_BER_BIT_STRING:
        return n > 0 && el->val[0] <= 7;

    case SCEP_BER_NULL:
        return n == 0;

    case SCEP_BER_OID:
        return scep_ber_oid_ok(el);

    case SCEP_BER_UNIVERSAL_STRING:
        return n % 4 == 0;

    case SCEP_BER_BMP_STRING:
        return n % 2 == 0;

    case SCEP_BER_UTC_TIME:
        return n >= 13;

    case SCEP_BER_GEN_TIME:
        return n >= 15;

    case SCEP_BER_SEQUENCE & ~SCEP_BER_CONSTRUCTED:
    case SCEP_BER_SET & ~SCEP_BER_CONSTRUCTED:
        return 0;

    default:
        return 1;
    }
}


/* a BIT STRING under any tag: its unused bits, 0 to 7, come first */

static int
scep_ber_bits_ok(const scep_ber_t *el)
{
    int     first;
    size_t  n;

    if (!(el->tag & SCEP_BER_CONSTRUCTED)) {
        return el->val != el->vend && el->val[0] <= 7;
    }

    n = 0;
    first = -1;

    return scep_ber_pieces(el, 0, 0, NULL, &n, &first)
           && first >= 0 && first <= 7;
}


/*
 * The pieces of a constructed string, as OpenSSL gathers them: at most
 * SCEP_BER_MAX_PIECES levels of constructed pieces, each piece of the tag
 * "tag" (primitive or constructed) unless "tag" is 0.  Adds their
 * length to *len, copies them to "out" unless it is NULL, and sets
 * *first to the first octet if it is still -1.
 */

static int
scep_ber_pieces(const scep_ber_t *el, unsigned int tag, unsigned int depth,
    unsigned char *out, size_t *len, int *first)
{
    size_t      n;
    scep_ber_t  piece;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, 0, &piece)
            || (tag != 0
                && (piece.tag & ~SCEP_BER_CONSTRUCTED) != tag))
        {
            return 0;
        }

        if (piece.tag & SCEP_BER_CONSTRUCTED) {
            if (depth >= SCEP_BER_MAX_PIECES
                || !scep_ber_pieces(&piece, tag, depth + 1, out, len, first))
            {
                return 0;
            }

            continue;
        }

        n = piece.vend - piece.val;

        if (*first < 0 && n > 0) {
            *first = piece.val[0];
        }

        if (out != NULL) {
            memcpy(out + *len, piece.val, n);
        }

        *len += n;
    }

    return 1;
}


/*
 * Characters of "width" octets (1: UTF-8) that OpenSSL can turn into
 * UTF-8 when it compares names: no surrogates, nothing above U+10FFFF,
 * no overlong forms.
 */

static int
scep_unicode_ok(const unsigned char *p, size_t n, size_t width)
{
    size_t    i, k, more;
    uint32_t  c, min;

    for (i = 0; i < n; /* void */ ) {

        if (width > 1) {
            if (n - i < width) {
                return 0;
            }

            c = 0;

            for (k = 0; k < width; k++) {
                c = c << 8 | p[i++];
            }

        } else {
            c = p[i++];

            if (c < 0x80) {
                continue;
            }

            if ((c & 0xe0) == 0xc0) {
                more = 1;
                c &= 0x1f;
                min = 0x80;

            } else if ((c & 0xf0) == 0xe0) {
                more = 2;
                c &= 0x0f;
                min = 0x800;

            } else if ((c & 0xf8) == 0xf0) {
                more = 3;
                c &= 0x07;
                min = 0x10000;

            } else {
                return 0;
            }

            if (n - i < more) {
                return 0;
            }

            while (more--) {
                if ((p[i] & 0xc0) != 0x80) {
                    return 0;
                }

                c = c << 6 | (p[i++] & 0x3f);
            }

            if (c < min) {
                return 0;
            }
        }

        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


static void
scep_cur_init(scep_cur_t *cur, const scep_ber_t *el)
{
    cur->p = el->val;
    cur->end = el->vend;
}


static int
scep_cur_done(const scep_cur_t *cur)
{
    return cur->p == cur->end;
}


/* the first identifier octet of the next element, -1 at the end */

static int
scep_cur_peek(const scep_cur_t *cur)
{
    return (cur->p != cur->end) ? *cur->p : -1;
}


/* reads the next element, which must have the tag "tag" (0: any) */

static int
scep_cur_next(scep_cur_t *cur, unsigned int tag, scep_ber_t *el)
{
    if (cur->p == cur->end
        || (tag != 0 && *cur->p != tag)
        || !scep_ber_read(cur->p, cur->end, el, 0, 0))
    {
        return 0;
    }

    cur->p = el->next;

    return 1;
}


/* reads the next element if it has the tag "tag"; else el->tag is 0 */

static int
scep_cur_optional(scep_cur_t *cur, unsigned int tag, scep_ber_t *el)
{
    if (scep_cur_peek(cur) != (int) tag) {
        el->tag = 0;
        return 1;
    }

    return scep_cur_next(cur, tag, el);
}


/* as OpenSSL: not empty, no 0x80 leading a sub-identifier, complete */

static int
scep_ber_oid_ok(const scep_ber_t *el)
{
    const unsigned char  *p;

    if (el->tag != SCEP_BER_OID || el->val == el->vend
        || (el->vend[-1] & 0x80))
    {
        return 0;
    }

    for (p = el->val; p != el->vend; p++) {
        if (*p == 0x80 && (p == el->val || !(p[-1] & 0x80))) {
            return 0;
        }
    }

    return 1;
}


/* not empty, minimal, and at most "max" octets */

static int
scep_ber_integer_ok(const scep_ber_t *el, size_t max)
{
    size_t                n;
    const unsigned char  *p;

    p = el->val;
    n = el->vend - el->val;

    if (el->tag != SCEP_BER_INTEGER || n == 0 || n > max) {
        return 0;
    }

    if (n > 1
        && ((p[0] == 0x00 && !(p[1] & 0x80))
            || (p[0] == 0xff && (p[1] & 0x80))))
    {
        return 0;
    }

    return 1;
}


static int
scep_cur_oid(scep_cur_t *cur, scep_ber_t *el)
{
    return scep_cur_next(cur, SCEP_BER_OID, el) && scep_ber_oid_ok(el);
}


static int
scep_cur_integer(scep_cur_t *cur, size_t max, scep_ber_t *el)
{
    return scep_cur_next(cur, SCEP_BER_INTEGER, el)
           && scep_ber_integer_ok(el, max);
}


/* AlgorithmIdentifier ::= SEQUENCE { OID, parameters ANY OPTIONAL } */

static int
scep_cur_alg(scep_cur_t *cur, scep_ber_t *oid, scep_ber_t *params)
{
    scep_ber_t  seq;
    scep_cur_t  in;

    if (!scep_cur_next(cur, SCEP_BER_SEQUENCE, &seq)) {
        return 0;
    }

    scep_cur_init(&in, &seq);

    if (!scep_cur_oid(&in, oid)) {
        return 0;
    }

    params->tag = 0;

    if (!scep_cur_done(&in) && !scep_cur_next(&in, 0, params)) {
        return 0;
    }

    if (params->tag == SCEP_BER_NULL && params->val != params->vend) {
        return 0;
    }

    return scep_cur_done(&in);
}


/* an OCTET STRING, primitive or (BER) constructed */

static int
scep_cur_octets(scep_cur_t *cur, scep_ber_t *el)
{
    int     first;
    size_t  n;

    if (scep_cur_peek(cur) == (SCEP_BER_OCTET_STRING | SCEP_BER_CONSTRUCTED)) {

        /* BER: its pieces are OCTET STRINGs, as OpenSSL requires too */

        n = 0;
        first = -1;

        return scep_cur_next(cur, 0, el)
               && scep_ber_pieces(el, SCEP_BER_OCTET_STRING, 0, NULL, &n,
                                  &first);
    }

    return scep_cur_next(cur, SCEP_BER_OCTET_STRING, el);
}


/* Name ::= SEQUENCE OF SET OF SEQUENCE { OID, ANY } */

static int
scep_ber_name_ok(const scep_ber_t *el)
{
    scep_ber_t  rdn, atv, oid, value;
    scep_cur_t  names, set, in;

    scep_cur_init(&names, el);

    while (!scep_cur_done(&names)) {
        if (!scep_cur_next(&names, SCEP_BER_SET, &rdn)) {
            return 0;
        }

        scep_cur_init(&set, &rdn);

        while (!scep_cur_done(&set)) {
            if (!scep_cur_next(&set, SCEP_BER_SEQUENCE, &atv)) {
                return 0;
            }

            scep_cur_init(&in, &atv);

            if (!scep_cur_oid(&in, &oid)
                || !scep_cur_next(&in, 0, &value)
                || !scep_cur_done(&in)
                || !scep_ber_string_ok(&value))
            {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * A value in a Name: one of the universal types OpenSSL takes there (its
 * ASN1_PRINTABLE), primitive but for SEQUENCE, in characters it can
 * compare as UTF-8.  Constructed strings, which no encoder puts in names,
 * are refused.
 */

static int
scep_ber_string_ok(const scep_ber_t *el)
{
    size_t  n;

    n = el->vend - el->val;

    switch (el->tag) {

    case SCEP_BER_UTF8_STRING:
        return scep_unicode_ok(el->val, n, 1);

    case SCEP_BER_UNIVERSAL_STRING:
        return n % 4 == 0 && scep_unicode_ok(el->val, n, 4);

    case SCEP_BER_BMP_STRING:
        return n % 2 == 0 && scep_unicode_ok(el->val, n, 2);

    case SCEP_BER_SEQUENCE:
    case SCEP_BER_BIT_STRING:
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x0b:
    case 0x0d:
    case 0x0e:
    case 0x0f:
    case 0x12:                              /* NumericString */
    case SCEP_BER_PRINTABLE:
    case 0x14:                              /* T61String */
    case 0x16:                              /* IA5String */
    case 0x1d:
        return 1;

    default:
        return 0;
    }
}


/* SET OF Attribute, Attribute ::= SEQUENCE { OID, SET OF ANY } */

static int
scep_ber_attributes_ok(const scep_ber_t *el)
{
    scep_ber_t  attr, oid, values;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &attr)) {
            return 0;
        }

        scep_cur_init(&in, &attr);

        if (!scep_cur_oid(&in, &oid)
            || !scep_cur_next(&in, SCEP_BER_SET, &values)
            || !scep_cur_done(&in))
        {
            return 0;
        }
    }

    return 1;
}


static int
scep_oid_is(const scep_ber_t *el, const unsigned char *oid, size_t len)
{
    return (size_t) (el->vend - el->val) == len
           && memcmp(el->val, oid, len) == 0;
}


static uint32_t
scep_oid_bits(const scep_oid_t *table, size_t n, const scep_ber_t *el)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (scep_oid_is(el, table[i].oid, table[i].len)) {
            return table[i].bits;
        }
    }

    return 0;
}


/* whether two elements are the same octets, identifier and all */

static int
scep_der_equal(const scep_ber_t *a, const scep_ber_t *b)
{
    return a->next - a->hdr == b->next - b->hdr
           && memcmp(a->hdr, b->hdr, a->next - a->hdr) == 0;
}


/* the PrintableString character set */

static int
scep_printable(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    switch (c) {

    case ' ':
    case '\'':
    case '(':
    case ')':
    case '+':
    case ',':
    case '-':
    case '.':
    case '/':
    case ':':
    case '=':
    case '?':
        return 1;

    default:
        return 0;
    }
}


static const char *
scep_digest_name(uint32_t bits)
{
    switch (bits) {

    case SCEP_ALG_MD5:
        return "MD5";

    case SCEP_ALG_SHA1:
        return "SHA1";

    case SCEP_ALG_SHA224:
        return "SHA224";

    case SCEP_ALG_SHA256:
        return "SHA256";

    case SCEP_ALG_SHA384:
        return "SHA384";

    case SCEP_ALG_SHA512:
        return "SHA512";

    default:
        return NULL;
    }
}


/*
 * After an OpenSSL call failed: "fallback", or SCEP_REASON_INTERNAL when
 * OpenSSL says it ran out of memory or failed in itself.  It does not
 * always say so.
 */

static scep_reason_t
scep_openssl_reason(scep_reason_t fallback)
{
    int            r;
    unsigned long  e;
    scep_reason_t  reason;

    reason = fallback;

    while ((e = ERR_get_error()) != 0) {
        r = ERR_GET_REASON(e);

        if (r == ERR_R_MALLOC_FAILURE || r == ERR_R_INTERNAL_ERROR) {
            reason = SCEP_REASON_INTERNAL;
        }
    }

    return reason;
}


/* the structure: ContentInfo, SignedData, SignerInfos, certificates */

static scep_reason_t
scep_parse_content_info(scep_check_t *ck, const unsigned char *der,
    size_t len)
{
    int                   indef;
    size_t                vlen;
    scep_ber_t            ci, type, content, sd;
    scep_cur_t            cur;
    unsigned int          tag;
    const unsigned char  *p;

    /* first the outer header alone: a definite length must be the rest */

    p = der;

    if (der == NULL
        || !scep_ber_header(&p, der + len, &tag, &vlen, &indef)
        || tag != SCEP_BER_SEQUENCE
        || (!indef && vlen != (size_t) (der + len - p)))
    {
        return SCEP_REASON_BAD_DER;
    }

    /* then the whole input as one element: every length and nesting */

    if (!scep_ber_read(der, der + len, &ci, 1, 0) || ci.next != der + len) {
        return SCEP_REASON_BAD_DER;
    }

    /* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */

    scep_cur_init(&cur, &ci);

    if (!scep_cur_oid(&cur, &type)
        || !scep_cur_next(&cur, scep_ber_ctx_cons(0), &content)
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_DER;
    }

    if (!scep_oid_is(&type, scep_oid_signed_data,
                     sizeof(scep_oid_signed_data)))
    {
        return SCEP_REASON_NOT_SIGNED_DATA;
    }

    scep_cur_init(&cur, &content);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &sd)
        || !scep_cur_done(&cur)
        || !scep_parse_signed_data(ck, &sd))
    {
        return SCEP_REASON_BAD_DER;
    }

    return SCEP_REASON_OK;
}


/*
 * SignedData ::= SEQUENCE { version, digestAlgorithms SET OF
 *     AlgorithmIdentifier, encapContentInfo SEQUENCE { eContentType,
 *     [0] EXPLICIT OCTET STRING OPTIONAL }, [0] IMPLICIT certificates
 *     OPTIONAL, [1] IMPLICIT crls OPTIONAL, signerInfos SET OF SignerInfo }
 *
 * CRLs are refused.
 */

static int
scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd)
{
    scep_ber_t    el, set, alg, params, eci, wrap;
    scep_cur_t    cur, in, sub;
    scep_check_t  other;

    scep_cur_init(&cur, sd);

    if (!scep_cur_integer(&cur, 4, &el)
        || !scep_cur_next(&cur, SCEP_BER_SET, &ck->digest_algs))
    {
        return 0;
    }

    scep_cur_init(&in, &ck->digest_algs);

    while (!scep_cur_done(&in)) {
        if (!scep_cur_alg(&in, &alg, &params)) {
            return 0;
        }
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &eci)) {
        return 0;
    }

    scep_cur_init(&in, &eci);

    if (!scep_cur_oid(&in, &ck->econtent_type)
        || !scep_cur_optional(&in, scep_ber_ctx_cons(0), &wrap)
        || !scep_cur_done(&in))
    {
        return 0;
    }

    ck->econtent.tag = 0;

    if (wrap.tag != 0) {
        scep_cur_init(&sub, &wrap);

        if (!scep_cur_octets(&sub, &ck->econtent) || !scep_cur_done(&sub)) {
            return 0;
        }
    }

    /*
     * Certificates, but no CRLs: a request has no use for them, and
     * OpenSSL would judge them by rules a walk cannot follow.
     */

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &ck->certs)
        || (ck->certs.tag != 0 && !scep_parse_certificates(&ck->certs))
        || scep_cur_peek(&cur) == scep_ber_ctx_cons(1))
    {
        return 0;
    }

    if (!scep_cur_next(&cur, SCEP_BER_SET, &set) || !scep_cur_done(&cur)) {
        return 0;
    }

    scep_cur_init(&in, &set);

    while (!scep_cur_done(&in)) {
        if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &el)) {
            return 0;
        }

        if (ck->signers == 0) {
            if (!scep_parse_signer_info(ck, &el)) {
                return 0;
            }

        } else {
            /* parsed all the same: a broken one is bad DER first */

            memset(&other, 0, sizeof(scep_check_t));

            if (!scep_parse_signer_info(&other, &el)) {
                return 0;
            }
        }

        ck->signers++;
    }

    return 1;
}


/*
 * SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm,
 *     [0] IMPLICIT signedAttrs OPTIONAL, signatureAlgorithm,
 *     signature OCTET STRING, [1] IMPLICIT unsignedAttrs OPTIONAL }
 *
 * sid is IssuerAndSerialNumber ::= SEQUENCE { Name, INTEGER } or
 * [0] IMPLICIT SubjectKeyIdentifier (an OCTET STRING).
 */

static int
scep_parse_signer_info(scep_check_t *ck, const scep_ber_t *si)
{
    scep_ber_t  el, params, unsigned_attrs;
    scep_cur_t  cur;

    scep_cur_init(&cur, si);

    if (!scep_cur_integer(&cur, 4, &el)) {
        return 0;
    }

    if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
        if (!scep_cur_issuer_serial(&cur, &ck->sid)) {
            return 0;
        }

    } else if (!scep_cur_next(&cur, scep_ber_ctx(0), &ck->sid)) {
        return 0;
    }

    if (!scep_cur_alg(&cur, &ck->digest_alg, &params)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(0), &ck->attrs)
        || (ck->attrs.tag != 0 && !scep_ber_attributes_ok(&ck->attrs))
        || !scep_cur_alg(&cur, &ck->sig_alg, &ck->sig_params)
        || !scep_cur_next(&cur, SCEP_BER_OCTET_STRING, &ck->signature)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(1), &unsigned_attrs)
        || (unsigned_attrs.tag != 0
            && !scep_ber_attributes_ok(&unsigned_attrs))
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    return 1;
}


/*
 * CertificateChoices: a Certificate (SEQUENCE), one of the obsolete forms
 * [0] to [2], which are only checked as BER (OpenSSL keeps them as they
 * are), or [3] another format.
 */

static int
scep_parse_certificates(const scep_ber_t *certs)
{
    int          tag;
    scep_ber_t   el;
    scep_cur_t   cur;
    scep_cert_t  cert;

    scep_cur_init(&cur, certs);

    while (!scep_cur_done(&cur)) {
        tag = scep_cur_peek(&cur);

        if (!scep_cur_next(&cur, 0, &el)) {
            return 0;
        }

        if (tag == SCEP_BER_SEQUENCE) {
            if (!scep_parse_certificate(&el, &cert)) {
                return 0;
            }

        } else if (tag == scep_ber_ctx_cons(3)) {
            /* OtherCertificateFormat ::= SEQUENCE { OID, ANY OPTIONAL } */

            if (!scep_other_ok(&el)) {
                return 0;
            }

        } else if (tag < scep_ber_ctx_cons(0) || tag > scep_ber_ctx_cons(2)) {
            return 0;
        }
    }

    return 1;
}


/*
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 *     signature BIT STRING }
 * TBSCertificate ::= SEQUENCE { [0] EXPLICIT version OPTIONAL, serial,
 *     signature, issuer, validity, subject, subjectPublicKeyInfo,
 *     [1] issuerUniqueID, [2] subjectUniqueID, [3] EXPLICIT extensions }
 */

static int
scep_parse_certificate(const scep_ber_t *el, scep_cert_t *cert)
{
    unsigned int  n;
    scep_ber_t    tbs, v, alg, params, validity, t, subject, spki, uid, ext;
    scep_cur_t    cur, in;

    scep_cur_init(&cur, el);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &tbs)
        || !scep_cur_alg(&cur, &alg, &params)
        || !scep_cur_next(&cur, SCEP_BER_BIT_STRING, &v)
        || v.val == v.vend || v.val[0] > 7
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    scep_cur_init(&cur, &tbs);

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &v)) {
        return 0;
    }

    if (v.tag != 0) {
        scep_cur_init(&in, &v);

        if (!scep_cur_integer(&in, 8, &t) || !scep_cur_done(&in)) {
            return 0;
        }
    }

    if (!scep_cur_integer(&cur, (size_t) -1, &cert->serial)
        || !scep_cur_alg(&cur, &alg, &params)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &cert->issuer)
        || !scep_ber_name_ok(&cert->issuer)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &validity))
    {
        return 0;
    }

    scep_cur_init(&in, &validity);

    if (scep_cur_peek(&in) != SCEP_BER_UTC_TIME
        && scep_cur_peek(&in) != SCEP_BER_GEN_TIME)
    {
        return 0;
    }

    if (!scep_cur_next(&in, 0, &t)
        || (scep_cur_peek(&in) != SCEP_BER_UTC_TIME
            && scep_cur_peek(&in) != SCEP_BER_GEN_TIME)
        || !scep_cur_next(&in, 0, &t)
        || !scep_cur_done(&in))
    {
        return 0;
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &subject)
        || !scep_ber_name_ok(&subject)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &spki))
    {
        return 0;
    }

    scep_cur_init(&in, &spki);

    if (!scep_cur_alg(&in, &cert->key_alg, &cert->key_params)
        || !scep_cur_next(&in, SCEP_BER_BIT_STRING, &cert->key)
        || cert->key.val == cert->key.vend || cert->key.val[0] > 7
        || !scep_cur_done(&in))
    {
        return 0;
    }

    /* the unique identifiers: [1] and [2] IMPLICIT BIT STRING */

    for (n = 1; n <= 2; n++) {
        if (scep_cur_peek(&cur) == (int) scep_ber_ctx(n)
            || scep_cur_peek(&cur) == (int) scep_ber_ctx_cons(n))
        {
            if (!scep_cur_next(&cur, 0, &uid) || !scep_ber_bits_ok(&uid)) {
                return 0;
            }
        }
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(3), &ext)
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    cert->ski.tag = 0;

    if (ext.tag == 0) {
        return 1;
    }

    scep_cur_init(&in, &ext);

    if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &v) || !scep_cur_done(&in)) {
        return 0;
    }

    return scep_parse_extensions(&v, cert);
}


/*
 * Extensions ::= SEQUENCE OF SEQUENCE { extnID, critical BOOLEAN
 *     DEFAULT FALSE, extnValue OCTET STRING }; the subjectKeyIdentifier
 * is an OCTET STRING in extnValue.
 */

static int
scep_parse_extensions(const scep_ber_t *el, scep_cert_t *cert)
{
    scep_ber_t  ext, oid, critical, value, ski;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &ext)) {
            return 0;
        }

        scep_cur_init(&in, &ext);

        if (!scep_cur_oid(&in, &oid)
            || !scep_cur_optional(&in, SCEP_BER_BOOLEAN, &critical)
            || (critical.tag != 0 && critical.vend - critical.val != 1)
            || !scep_cur_next(&in, SCEP_BER_OCTET_STRING, &value)
            || !scep_cur_done(&in))
        {
            return 0;
        }

        if (cert->ski.tag == 0
            && scep_oid_is(&oid, scep_oid_ski, sizeof(scep_oid_ski))
            && scep_ber_read(value.val, value.vend, &ski, 0, 0)
            && ski.tag == SCEP_BER_OCTET_STRING
            && ski.next == value.vend)
        {
            cert->ski = ski;
        }
    }

    return 1;
}


/* the encapsulated content: "data", present, its octets gathered */

static scep_reason_t
scep_check_content(scep_check_t *ck)
{
    int     first;
    size_t  n;

    if (!scep_oid_is(&ck->econtent_type, scep_oid_data,
                     sizeof(scep_oid_data))
        || ck->econtent.tag == 0)
    {
        return SCEP_REASON_BAD_CONTENT_TYPE;
    }

    if (ck->econtent.tag == SCEP_BER_OCTET_STRING) {
        ck->content = ck->econtent.val;
        ck->content_len = ck->econtent.vend - ck->econtent.val;
        return SCEP_REASON_OK;
    }

    /* BER constructed OCTET STRING: the octets of its pieces, in order */

    ck->content_copy = OPENSSL_malloc(ck->econtent.vend - ck->econtent.val
                                      + 1);
    if (ck->content_copy == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    n = 0;
    first = -1;

    if (!scep_ber_pieces(&ck->econtent, SCEP_BER_OCTET_STRING, 0,
                         ck->content_copy, &n, &first))
    {
        return SCEP_REASON_BAD_DER;
    }

    ck->content = ck->content_copy;
    ck->content_len = n;

    return SCEP_REASON_OK;
}


/*
 * The content octets are a ContentInfo holding EnvelopedData (the
 * pkcsPKIEnvelope), nothing before or after it:
 *
 * EnvelopedData ::= SEQUENCE { version, [0] IMPLICIT originatorInfo
 *     OPTIONAL, recipientInfos SET OF RecipientInfo,
 *     encryptedContentInfo SEQUENCE { contentType,
 *         contentEncryptionAlgorithm, [0] IMPLICIT encryptedContent
 *         OPTIONAL },
 *     [1] IMPLICIT unprotectedAttrs OPTIONAL }
 */

static scep_reason_t
scep_check_envelope(scep_check_t *ck)
{
    int         tag, first;
    size_t      n;
    scep_ber_t  ci, type, content, ed, el, set, eci, params, attrs;
    scep_cur_t  cur, in;

    if (ck->content_len < 2
        || ck->content[0] != SCEP_BER_SEQUENCE
        || !scep_ber_read(ck->content, ck->content + ck->content_len, &ci, 1,
                          0)
        || ci.next != ck->content + ck->content_len)
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &ci);

    if (!scep_cur_oid(&cur, &type)
        || !scep_oid_is(&type, scep_oid_enveloped_data,
                        sizeof(scep_oid_enveloped_data))
        || !scep_cur_next(&cur, scep_ber_ctx_cons(0), &content)
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &content);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &ed) || !scep_cur_done(&cur)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &ed);

    if (!scep_cur_integer(&cur, 4, &el)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(0), &el)
        || !scep_cur_next(&cur, SCEP_BER_SET, &set))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    if (el.tag != 0) {
        /* originatorInfo: [0] certificates as in SignedData, no CRLs */

        scep_cur_init(&in, &el);

        if (!scep_cur_optional(&in, scep_ber_ctx_cons(0), &attrs)
            || (attrs.tag != 0 && !scep_parse_certificates(&attrs))
            || !scep_cur_done(&in))
        {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    /* at least one recipient */

    scep_cur_init(&in, &set);

    if (scep_cur_done(&in)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    while (!scep_cur_done(&in)) {
        if (!scep_cur_next(&in, 0, &el) || !scep_parse_recipient_info(&el)) {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &eci)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(1), &attrs)
        || (attrs.tag != 0 && !scep_ber_attributes_ok(&attrs))
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&in, &eci);

    if (!scep_cur_oid(&in, &type)
        || !scep_cur_alg(&in, &ck->cipher_alg, &params))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    tag = scep_cur_peek(&in);

    if (tag == scep_ber_ctx(0) || tag == scep_ber_ctx_cons(0)) {
        n = 0;
        first = -1;

        if (!scep_cur_next(&in, 0, &el)
            || (tag == scep_ber_ctx_cons(0)
                && !scep_ber_pieces(&el, 0, 0, NULL, &n, &first)))
        {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    if (!scep_cur_done(&in)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    return SCEP_REASON_OK;
}


/*
 * RecipientInfo ::= CHOICE {
 *     ktri KeyTransRecipientInfo (SEQUENCE { version, rid,
 *         keyEncryptionAlgorithm, encryptedKey }),
 *     kari [1] { version, originator [0] EXPLICIT, ukm [1] EXPLICIT
 *         OPTIONAL, keyEncryptionAlgorithm, SEQUENCE OF SEQUENCE { rid,
 *         encryptedKey } },
 *     kekri [2] { version, kekid, keyEncryptionAlgorithm, encryptedKey },
 *     pwri [3] { version, [0] keyDerivationAlgorithm OPTIONAL,
 *         keyEncryptionAlgorithm, encryptedKey },
 *     ori [4] { oriType, oriValue } }
 */

static int
scep_parse_recipient_info(const scep_ber_t *el)
{
    int         tag;
    scep_ber_t  v, id, alg, params, key, keys, rek;
    scep_cur_t  cur, in, sub;

    if (el->tag == scep_ber_ctx_cons(4)) {
        return scep_other_ok(el);
    }

    scep_cur_init(&cur, el);

    if (!scep_cur_integer(&cur, 4, &v)) {
        return 0;
    }

    switch (el->tag) {

    case SCEP_BER_SEQUENCE:

        /* rid: IssuerAndSerialNumber or [0] IMPLICIT SubjectKeyIdentifier */

        if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
            if (!scep_cur_issuer_serial(&cur, &id)) {
                return 0;
            }

        } else if (!scep_cur_next(&cur, scep_ber_ctx(0), &id)) {
            return 0;
        }

        break;

    case scep_ber_ctx_cons(1):

        /*
         * originator: IssuerAndSerialNumber, [0] IMPLICIT
         * SubjectKeyIdentifier or [1] IMPLICIT OriginatorPublicKey
         * (SEQUENCE { AlgorithmIdentifier, BIT STRING })
         */

        if (!scep_cur_next(&cur, scep_ber_ctx_cons(0), &id)) {
            return 0;
        }

        scep_cur_init(&in, &id);
        tag = scep_cur_peek(&in);

        if (tag == SCEP_BER_SEQUENCE) {
            if (!scep_cur_issuer_serial(&in, &id)) {
                return 0;
            }

        } else if (tag == scep_ber_ctx_cons(1)) {
            if (!scep_cur_next(&in, 0, &id)) {
                return 0;
            }

            scep_cur_init(&sub, &id);

            if (!scep_cur_alg(&sub, &alg, &params)
                || !scep_cur_next(&sub, SCEP_BER_BIT_STRING, &key)
                || !scep_cur_done(&sub))
            {
                return 0;
            }

        } else if (!scep_cur_next(&in, scep_ber_ctx(0), &id)) {
            return 0;
        }

        if (!scep_cur_done(&in)) {
            return 0;
        }

        /* ukm */

        if (!scep_cur_optional(&cur, scep_ber_ctx_cons(1), &id)) {
            return 0;
        }

        if (id.tag != 0) {
            scep_cur_init(&in, &id);

            if (!scep_cur_octets(&in, &key) || !scep_cur_done(&in)) {
                return 0;
            }
        }

        /* recipientEncryptedKeys */

        if (!scep_cur_alg(&cur, &alg, &params)
            || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &keys)
            || !scep_cur_done(&cur))
        {
            return 0;
        }

        scep_cur_init(&in, &keys);

        while (!scep_cur_done(&in)) {
            if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &rek)) {
                return 0;
            }

            /* rid: IssuerAndSerialNumber or [0] RecipientKeyIdentifier */

            scep_cur_init(&sub, &rek);

            if (scep_cur_peek(&sub) == SCEP_BER_SEQUENCE) {
                if (!scep_cur_issuer_serial(&sub, &id)) {
                    return 0;
                }

            } else if (!scep_cur_next(&sub, scep_ber_ctx_cons(0), &id)
                       || !scep_key_identifier_ok(&id))
            {
                return 0;
            }

            if (!scep_cur_octets(&sub, &key) || !scep_cur_done(&sub)) {
                return 0;
            }
        }

        return 1;

    case scep_ber_ctx_cons(2):

        /* kekid: KEKIdentifier */

        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &id)
            || !scep_key_identifier_ok(&id))
        {
            return 0;
        }

        break;

    case scep_ber_ctx_cons(3):

        /* keyDerivationAlgorithm: [0] IMPLICIT AlgorithmIdentifier */

        if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &id)) {
            return 0;
        }

        if (id.tag != 0) {
            /* read as the SEQUENCE it stands for */

            scep_cur_init(&sub, &id);

            if (!scep_cur_oid(&sub, &alg)
                || (!scep_cur_done(&sub) && !scep_cur_next(&sub, 0, &params))
                || !scep_cur_done(&sub))
            {
                return 0;
            }
        }

        break;

    default:
        return 0;
    }

    return scep_cur_alg(&cur, &alg, &params)
           && scep_cur_octets(&cur, &key)
           && scep_cur_done(&cur);
}


/* IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber } */

static int
scep_cur_issuer_serial(scep_cur_t *cur, scep_ber_t *el)
{
    scep_ber_t  name, serial;
    scep_cur_t  in;

    if (!scep_cur_next(cur, SCEP_BER_SEQUENCE, el)) {
        return 0;
    }

    scep_cur_init(&in, el);

    return scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
           && scep_ber_name_ok(&name)
           && scep_cur_integer(&in, (size_t) -1, &serial)
           && scep_cur_done(&in);
}


/* SEQUENCE { OID, ANY OPTIONAL }, under any tag */

static int
scep_other_ok(const scep_ber_t *el)
{
    scep_ber_t  oid, value;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    if (!scep_cur_oid(&cur, &oid)) {
        return 0;
    }

    if (!scep_cur_done(&cur) && !scep_cur_next(&cur, 0, &value)) {
        return 0;
    }

    return scep_cur_done(&cur);
}


/*
 * RecipientKeyIdentifier and KEKIdentifier ::= SEQUENCE { OCTET STRING,
 *     date GeneralizedTime OPTIONAL, other OtherKeyAttribute OPTIONAL }
 */

static int
scep_key_identifier_ok(const scep_ber_t *el)
{
    scep_ber_t  id, date, other;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    if (!scep_cur_octets(&cur, &id)
        || !scep_cur_optional(&cur, SCEP_BER_GEN_TIME, &date)
        || !scep_cur_optional(&cur, SCEP_BER_SEQUENCE, &other)
        || (other.tag != 0 && !scep_other_ok(&other)))
    {
        return 0;
    }

    return scep_cur_done(&cur);
}


/* messageType, transactionID and senderNonce, each exactly once */

static scep_reason_t
scep_check_attributes(scep_check_t *ck)
{
    int            dup_type, dup_tid, dup_nonce;
    scep_ber_t     attr, oid, values, type, tid, nonce;
    scep_cur_t     cur, in;
    scep_reason_t  reason;

    memset(&type, 0, sizeof(scep_ber_t));
    memset(&tid, 0, sizeof(scep_ber_t));
    memset(&nonce, 0, sizeof(scep_ber_t));
    dup_type = 0;
    dup_tid = 0;
    dup_nonce = 0;

    if (ck->attrs.tag != 0) {
        scep_cur_init(&cur, &ck->attrs);

        while (!scep_cur_done(&cur)) {

            /* the structure is known to be right by now */

            if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &attr)) {
                return SCEP_REASON_BAD_DER;
            }

            scep_cur_init(&in, &attr);

            if (!scep_cur_oid(&in, &oid)
                || !scep_cur_next(&in, SCEP_BER_SET, &values))
            {
                return SCEP_REASON_BAD_DER;
            }

            if (scep_oid_is(&oid, scep_oid_message_type,
                            sizeof(scep_oid_message_type)))
            {
                dup_type |= (type.tag != 0);
                type = values;

            } else if (scep_oid_is(&oid, scep_oid_transaction_id,
                                   sizeof(scep_oid_transaction_id)))
            {
                dup_tid |= (tid.tag != 0);
                tid = values;

            } else if (scep_oid_is(&oid, scep_oid_sender_nonce,
                                   sizeof(scep_oid_sender_nonce)))
            {
                dup_nonce |= (nonce.tag != 0);
                nonce = values;
            }
        }
    }

    if (dup_type || type.tag == 0) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    reason = scep_check_message_type(&type, ck->res);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (dup_tid || tid.tag == 0) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    reason = scep_check_transaction_id(&tid, ck->res);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (dup_nonce || nonce.tag == 0) {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    return scep_check_sender_nonce(&nonce, ck->res);
}


/* the only value of an attribute */

static int
scep_attribute_value(const scep_ber_t *values, scep_ber_t *value)
{
    scep_cur_t  cur;

    scep_cur_init(&cur, values);

    return scep_cur_next(&cur, 0, value) && scep_cur_done(&cur);
}


static scep_reason_t
scep_check_message_type(const scep_ber_t *values, scep_result_t *res)
{
    int                   type;
    size_t                len;
    scep_ber_t            value;
    const unsigned char  *p;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_PRINTABLE)
    {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    /* decimal digits; leading zeros do no harm, the value is what counts */

    len = value.vend - value.val;

    if (len < 1 || len > 8) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    type = 0;

    for (p = value.val; p != value.vend; p++) {
        if (*p < '0' || *p > '9') {
            return SCEP_REASON_BAD_MESSAGE_TYPE;
        }

        type = type * 10 + (*p - '0');
    }

    if (scep_message_type_name(type) == NULL) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    res->message_type = type;

    return SCEP_REASON_OK;
}


static scep_reason_t
scep_check_transaction_id(const scep_ber_t *values, scep_result_t *res)
{
    size_t                len;
    scep_ber_t            value;
    const unsigned char  *p;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_PRINTABLE)
    {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    len = value.vend - value.val;

    if (len < 1 || len > SCEP_TRANSACTION_ID_MAX) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    for (p = value.val; p != value.vend; p++) {
        if (!scep_printable(*p)) {
            return SCEP_REASON_BAD_TRANSACTION_ID;
        }
    }

    memcpy(res->transaction_id, value.val, len);
    res->transaction_id[len] = '\0';
    res->transaction_id_len = len;

    return SCEP_REASON_OK;
}


static scep_reason_t
scep_check_sender_nonce(const scep_ber_t *values, scep_result_t *res)
{
    scep_ber_t  value;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_OCTET_STRING
        || value.vend - value.val != SCEP_NONCE_LEN)
    {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    memcpy(res->sender_nonce, value.val, SCEP_NONCE_LEN);

    return SCEP_REASON_OK;
}


/*
 * The signer's digest and the envelope's cipher, against the policy.  The
 * digest must be one the SignedData lists, as OpenSSL requires too.
 */

static scep_reason_t
scep_check_algorithms(scep_check_t *ck)
{
    int         listed;
    scep_ber_t  oid, params;
    scep_cur_t  cur;

    ck->res->digest = scep_oid_bits(scep_digests, scep_nelts(scep_digests),
                                    &ck->digest_alg);

    if ((ck->res->digest & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    listed = 0;

    scep_cur_init(&cur, &ck->digest_algs);

    while (!listed && scep_cur_alg(&cur, &oid, &params)) {
        listed = scep_oid_is(&oid, ck->digest_alg.val,
                             ck->digest_alg.vend - ck->digest_alg.val);
    }

    if (!listed) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    ck->res->cipher = scep_oid_bits(scep_ciphers, scep_nelts(scep_ciphers),
                                    &ck->cipher_alg);

    if ((ck->res->cipher & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_CIPHER_ALGORITHM;
    }

    return SCEP_REASON_OK;
}


/*
 * The first certificate of the SignedData that the sid names: by issuer
 * and serial number, or by subjectKeyIdentifier.  No chain is built: a
 * PKCSReq is signed with a self-signed certificate.
 */

static scep_reason_t
scep_find_signer(scep_check_t *ck)
{
    int         eq;
    scep_ber_t  el, name, serial, keyid;
    scep_cur_t  cur, in;

    if (ck->certs.tag == 0) {
        return SCEP_REASON_NO_SIGNER_CERT;
    }

    keyid = ck->sid;
    name = ck->sid;
    serial = ck->sid;

    if (ck->sid.tag == SCEP_BER_SEQUENCE) {
        scep_cur_init(&in, &ck->sid);

        if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
            || !scep_cur_next(&in, SCEP_BER_INTEGER, &serial))
        {
            return SCEP_REASON_BAD_DER;
        }
    }

    scep_cur_init(&cur, &ck->certs);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, 0, &el)) {
            return SCEP_REASON_BAD_DER;
        }

        if (el.tag != SCEP_BER_SEQUENCE
            || !scep_parse_certificate(&el, &ck->cert))
        {
            continue;
        }

        if (ck->sid.tag == SCEP_BER_SEQUENCE) {
            if (ck->cert.serial.vend - ck->cert.serial.val
                    != serial.vend - serial.val
                || memcmp(ck->cert.serial.val, serial.val,
                          serial.vend - serial.val) != 0)
            {
                continue;
            }

            eq = scep_names_equal(ck, &ck->cert.issuer, &name);

            if (eq != 0) {
                return (eq > 0) ? SCEP_REASON_OK : SCEP_REASON_INTERNAL;
            }

        } else if (ck->cert.ski.tag != 0
                   && ck->cert.ski.vend - ck->cert.ski.val
                      == keyid.vend - keyid.val
                   && memcmp(ck->cert.ski.val, keyid.val,
                             keyid.vend - keyid.val) == 0)
        {
            return SCEP_REASON_OK;
        }
    }

    return SCEP_REASON_NO_SIGNER_CERT;
}


/*
 * Names are the same octets as a rule; when they are not, they are
 * compared as OpenSSL does, after canonical encoding, a few times at most
 * a check.  1 when equal, 0 when not, -1 when out of memory.
 */

static int
scep_names_equal(scep_check_t *ck, const scep_ber_t *a, const scep_ber_t *b)
{
    int                   eq;
    X509_NAME            *na, *nb;
    const unsigned char  *p;

    if (scep_der_equal(a, b)) {
        return 1;
    }

    if (ck->name_compares == SCEP_NAME_COMPARES) {
        return 0;
    }

    ck->name_compares++;

    p = a->hdr;
    na = d2i_X509_NAME(NULL, &p, a->next - a->hdr);

    p = b->hdr;
    nb = d2i_X509_NAME(NULL, &p, b->next - b->hdr);

    if (na == NULL || nb == NULL) {
        eq = (scep_openssl_reason(SCEP_REASON_NO_SIGNER_CERT)
              == SCEP_REASON_INTERNAL) ? -1 : 0;

    } else {
        eq = (X509_NAME_cmp(na, nb) == 0);
    }

    X509_NAME_free(na);
    X509_NAME_free(nb);

    return eq;
}


/* the messageDigest attribute is the digest of the content octets */

static scep_reason_t
scep_check_message_digest(scep_check_t *ck)
{
    unsigned int   mdlen;
    scep_ber_t     attr, oid, values, value, digest;
    scep_cur_t     cur, in;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    if (ck->attrs.tag == 0) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    digest.tag = 0;

    scep_cur_init(&cur, &ck->attrs);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &attr)) {
            return SCEP_REASON_BAD_DER;
        }

        scep_cur_init(&in, &attr);

        if (!scep_cur_oid(&in, &oid)
            || !scep_cur_next(&in, SCEP_BER_SET, &values))
        {
            return SCEP_REASON_BAD_DER;
        }

        if (scep_oid_is(&oid, scep_oid_message_digest,
                        sizeof(scep_oid_message_digest)))
        {
            if (digest.tag != 0) {
                return SCEP_REASON_BAD_SIGNATURE;
            }

            digest = values;
        }
    }

    if (digest.tag == 0
        || !scep_attribute_value(&digest, &value)
        || value.tag != SCEP_BER_OCTET_STRING)
    {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    /* fetched once for the content, the attributes and the signature */

    ck->md = EVP_MD_fetch(NULL, scep_digest_name(ck->res->digest), NULL);
    if (ck->md == NULL) {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
    }

    if (!EVP_Digest(ck->content, ck->content_len, buf, &mdlen, ck->md,
                    NULL))
    {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
    }

    if ((size_t) (value.vend - value.val) != mdlen
        || CRYPTO_memcmp(value.val, buf, mdlen) != 0)
    {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    return SCEP_REASON_OK;
}


/*
 * The signature over the signed attributes as they were sent, their
 * [0] IMPLICIT tag read as the SET OF tag they were signed with.
 *
 * Failures that only a want of resources explains are internal errors;
 * OpenSSL does not always say it ran out of memory.
 */

static scep_reason_t
scep_check_signature(scep_check_t *ck)
{
    int              rc;
    uint32_t         kind;
    EVP_PKEY        *pkey;
    EVP_MD_CTX      *mctx;
    unsigned int     mdlen;
    EVP_PKEY_CTX    *pctx;
    scep_reason_t    reason;
    unsigned char    tag, md[EVP_MAX_MD_SIZE];

    kind = scep_oid_bits(scep_signatures, scep_nelts(scep_signatures),
                         &ck->sig_alg);
    if (kind == 0) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    if (ck->md == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    /* the digest of the signed attributes */

    mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    tag = SCEP_BER_SET;

    rc = EVP_DigestInit_ex(mctx, ck->md, NULL)
         && EVP_DigestUpdate(mctx, &tag, 1)
         && EVP_DigestUpdate(mctx, ck->attrs.hdr + 1,
                             ck->attrs.next - ck->attrs.hdr - 1)
         && EVP_DigestFinal_ex(mctx, md, &mdlen);

    EVP_MD_CTX_free(mctx);

    if (!rc) {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
    }

    pkey = scep_public_key(&ck->cert);
    if (pkey == NULL) {
        return scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
    }

    if ((kind == SCEP_SIG_ECDSA) != (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC))
    {
        EVP_PKEY_free(pkey);
        return SCEP_REASON_BAD_SIGNATURE;
    }

    reason = SCEP_REASON_BAD_SIGNATURE;

    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (pctx == NULL) {
        reason = SCEP_REASON_INTERNAL;
        goto done;
    }

    if (EVP_PKEY_verify_init(pctx) <= 0) {
        reason = scep_openssl_reason(SCEP_REASON_INTERNAL);
        goto done;
    }

    /* every digest allowed goes with RSA; OpenSSL's ECDSA refuses MD5 */

    if (kind == SCEP_SIG_ECDSA && ck->res->digest == SCEP_ALG_MD5) {
        goto done;
    }

    if (EVP_PKEY_CTX_set_signature_md(pctx, ck->md) <= 0) {
        reason = scep_openssl_reason(SCEP_REASON_INTERNAL);
        goto done;
    }

    if (kind == SCEP_SIG_PSS) {
        reason = scep_pss_params(&ck->sig_params, ck->res->digest, pctx);

        if (reason != SCEP_REASON_OK) {
            goto done;
        }
    }

    rc = EVP_PKEY_verify(pctx, ck->signature.val,
                         ck->signature.vend - ck->signature.val, md, mdlen);

    reason = (rc == 1) ? SCEP_REASON_OK
                       : scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);

done:

    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pkey);

    return reason;
}


/* the signer's key: RSA (rsaEncryption or RSASSA-PSS) or EC, else NULL */

static EVP_PKEY *
scep_public_key(const scep_cert_t *cert)
{
    if (cert->key.val[0] != 0) {
        /* keys are whole octets */
        return NULL;
    }

    if (scep_oid_is(&cert->key_alg, scep_oid_rsa, sizeof(scep_oid_rsa))
        || scep_oid_is(&cert->key_alg, scep_oid_rsa_pss,
                       sizeof(scep_oid_rsa_pss)))
    {
        return scep_rsa_key(&cert->key);
    }

    if (scep_oid_is(&cert->key_alg, scep_oid_ec, sizeof(scep_oid_ec))) {
        return scep_ec_key(&cert->key_params, &cert->key);
    }

    return NULL;
}


/*
 * RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
 *
 * A modulus over SCEP_RSA_MAX_BITS or an exponent over 64 bits would let
 * a client make every check cost milliseconds; no real key is like that.
 */

static EVP_PKEY *
scep_rsa_key(const scep_ber_t *key)
{
    size_t                nlen, elen;
    scep_ber_t            seq, n, e;
    scep_cur_t            cur;
    const unsigned char  *p;

    p = key->val + 1;

    if (!scep_ber_read(p, key->vend, &seq, 1, 0)
        || seq.tag != SCEP_BER_SEQUENCE
        || seq.next != key->vend)
    {
        return NULL;
    }

    scep_cur_init(&cur, &seq);

    if (!scep_cur_integer(&cur, (size_t) -1, &n)
        || !scep_cur_integer(&cur, (size_t) -1, &e)
        || !scep_cur_done(&cur)
        || (n.val[0] & 0x80) || (e.val[0] & 0x80))
    {
        return NULL;
    }

    nlen = n.vend - n.val - (n.val[0] == 0);
    elen = e.vend - e.val - (e.val[0] == 0);

    if (nlen > SCEP_RSA_MAX_BITS / 8 || elen > SCEP_RSA_MAX_E_BYTES) {
        return NULL;
    }

    return d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, key->vend - p);
}


/* an EC point on a named curve: P-256, P-384 or P-521 */

static EVP_PKEY *
scep_ec_key(const scep_ber_t *params, const scep_ber_t *key)
{
    uint32_t       curve;
    EVP_PKEY      *pkey;
    OSSL_PARAM     op[3];
    EVP_PKEY_CTX  *kctx;

    if (params->tag != SCEP_BER_OID || !scep_ber_oid_ok(params)) {
        return NULL;
    }

    curve = scep_oid_bits(scep_curves, scep_nelts(scep_curves), params);
    if (curve == 0) {
        return NULL;
    }

    op[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                             (char *) scep_curve_names[curve],
                                             0);
    op[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                              (void *) (key->val + 1),
                                              key->vend - key->val - 1);
    op[2] = OSSL_PARAM_construct_end();

    pkey = NULL;

    kctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (kctx == NULL) {
        return NULL;
    }

    if (EVP_PKEY_fromdata_init(kctx) != 1
        || EVP_PKEY_fromdata(kctx, &pkey, EVP_PKEY_PUBLIC_KEY, op) != 1)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(kctx);

    return pkey;
}


/*
 * RSASSA-PSS-params ::= SEQUENCE { [0] hashAlgorithm DEFAULT sha1,
 *     [1] maskGenAlgorithm DEFAULT mgf1SHA1, [2] saltLength DEFAULT 20,
 *     [3] trailerField DEFAULT 1 }, all EXPLICIT.  As in OpenSSL, the
 * hash must be the SignerInfo's digest.
 */

static scep_reason_t
scep_pss_params(const scep_ber_t *params, uint32_t digest,
    EVP_PKEY_CTX *pctx)
{
    long                  salt;
    uint32_t              hash, mgf_hash;
    scep_ber_t            el, oid, alg_params, mgf, i;
    scep_cur_t            cur, in, sub;
    const char           *mgf_md;
    const unsigned char  *p;

    if (params->tag != SCEP_BER_SEQUENCE) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    hash = SCEP_ALG_SHA1;
    mgf_hash = SCEP_ALG_SHA1;
    salt = 20;

    scep_cur_init(&cur, params);

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &el)) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_alg(&in, &oid, &alg_params) || !scep_cur_done(&in)) {
            return SCEP_REASON_BAD_SIGNATURE;
        }

        hash = scep_oid_bits(scep_digests, scep_nelts(scep_digests), &oid);
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(1), &el)) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_alg(&in, &oid, &mgf)
            || !scep_cur_done(&in)
            || !scep_oid_is(&oid, scep_oid_mgf1, sizeof(scep_oid_mgf1))
            || mgf.tag != SCEP_BER_SEQUENCE)
        {
            return SCEP_REASON_BAD_SIGNATURE;
        }

        /* MGF1's parameter is the AlgorithmIdentifier of its hash */

        sub.p = mgf.hdr;
        sub.end = mgf.next;

        if (!scep_cur_alg(&sub, &oid, &alg_params) || !scep_cur_done(&sub)) {
            return SCEP_REASON_BAD_SIGNATURE;
        }

        mgf_hash = scep_oid_bits(scep_digests, scep_nelts(scep_digests), &oid);
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(2), &el)) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_integer(&in, 2, &i) || !scep_cur_done(&in)
            || (i.val[0] & 0x80))
        {
            return SCEP_REASON_BAD_SIGNATURE;
        }

        salt = 0;

        for (p = i.val; p != i.vend; p++) {
            salt = salt << 8 | *p;
        }
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(3), &el)) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_integer(&in, 1, &i) || !scep_cur_done(&in)
            || i.val[0] != 1)
        {
            return SCEP_REASON_BAD_SIGNATURE;
        }
    }

    if (!scep_cur_done(&cur) || hash != digest) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    mgf_md = scep_digest_name(mgf_hash);
    if (mgf_md == NULL) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    /* valid parameters: only a want of resources fails these */

    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
        || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int) salt) <= 0
        || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, mgf_md, NULL) <= 0)
    {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
    }

    return SCEP_REASON_OK;
}
