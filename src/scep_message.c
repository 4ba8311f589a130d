
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * pkiMessage checks in plain C over OpenSSL.
 *
 * The CMS structure is walked here rather than with d2i_CMS_ContentInfo():
 * OpenSSL 3.0 decodes the public key of every certificate it parses with
 * its provider decoders, which costs more than 100 microseconds a
 * certificate, more than the whole budget of a check.  The walk accepts
 * BER as OpenSSL does (indefinite lengths, constructed OCTET STRINGs, as
 * streaming toolkits write them), checks every length, nesting and the
 * encoding of the INTEGERs, OIDs, BOOLEANs and BIT STRINGs of the
 * structure it knows, and allocates nothing.  OpenSSL is left the
 * cryptography: the signer's public key, the digest and the signature.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "scep_message.h"


/* deepest nesting of BER elements accepted */
#define SCEP_BER_MAX_DEPTH     32

/* BER identifier octets */
#define SCEP_BER_BOOLEAN       0x01
#define SCEP_BER_INTEGER       0x02
#define SCEP_BER_BIT_STRING    0x03
#define SCEP_BER_OCTET_STRING  0x04
#define SCEP_BER_NULL          0x05
#define SCEP_BER_OID           0x06
#define SCEP_BER_PRINTABLE     0x13
#define SCEP_BER_UTC_TIME      0x17
#define SCEP_BER_GEN_TIME      0x18
#define SCEP_BER_SEQUENCE      0x30
#define SCEP_BER_SET           0x31
#define SCEP_BER_CONSTRUCTED   0x20
#define SCEP_BER_HIGH_TAG      0x1f
#define SCEP_BER_CONTEXT       0x80

/* [n] primitive and [n] constructed */
#define scep_ber_ctx(n)        (SCEP_BER_CONTEXT | (n))
#define scep_ber_ctx_cons(n)   (SCEP_BER_CONTEXT | SCEP_BER_CONSTRUCTED | (n))

#define SCEP_NONCE_LEN         16

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
} scep_check_t;


static int scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef);
static int scep_ber_read(const unsigned char *p, const unsigned char *end,
    scep_ber_t *el, int deep, unsigned int depth);
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
static int scep_ber_attributes_ok(const scep_ber_t *el);
static int scep_oid_is(const scep_ber_t *el, const unsigned char *oid,
    size_t len);
static uint32_t scep_oid_bits(const scep_oid_t *table, size_t n,
    const scep_ber_t *el);
static int scep_der_equal(const scep_ber_t *a, const scep_ber_t *b);
static int scep_printable(unsigned char c);
static const EVP_MD *scep_digest_md(uint32_t bits);
static scep_reason_t scep_openssl_reason(scep_reason_t fallback);

static scep_reason_t scep_parse_content_info(scep_check_t *ck,
    const unsigned char *der, size_t len);
static int scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd);
static int scep_parse_signer_info(scep_check_t *ck, const scep_ber_t *si);
static int scep_parse_certificates(const scep_ber_t *certs);
static int scep_parse_certificate(const scep_ber_t *el, scep_cert_t *cert);
static int scep_parse_extensions(const scep_ber_t *el, scep_cert_t *cert);
static int scep_parse_recipient_info(const scep_ber_t *el);
static scep_reason_t scep_check_content(scep_check_t *ck);
static int scep_collect_octets(const scep_ber_t *el, unsigned char *out,
    size_t *n, unsigned int depth);
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
static int scep_names_equal(const scep_ber_t *a, const scep_ber_t *b);
static scep_reason_t scep_check_message_digest(scep_check_t *ck);
static scep_reason_t scep_check_signature(scep_check_t *ck);
static EVP_PKEY *scep_public_key(const scep_cert_t *cert);
static EVP_PKEY *scep_rsa_key(const scep_ber_t *key);
static EVP_PKEY *scep_ec_key(const scep_ber_t *params, const scep_ber_t *key);
static int scep_pss_params(const scep_ber_t *params, uint32_t digest,
    EVP_PKEY_CTX *pctx);


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


scep_reason_t
scep_message_check(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res)
{
    scep_check_t   ck;
    scep_reason_t  reason;
    scep_result_t  scratch;

    if (res == NULL) {
        res = &scratch;
    }

    memset(res, 0, sizeof(scep_result_t));
    memset(&ck, 0, sizeof(scep_check_t));

    ck.algorithms = (policy != NULL) ? policy->algorithms : SCEP_ALG_DEFAULT;
    ck.res = res;

    /* errors the caller left queued are no business of this check */
    ERR_clear_error();

    reason = scep_parse_content_info(&ck, der, len);

    if (reason == SCEP_REASON_OK) {
        reason = (ck.signers == 1) ? scep_check_content(&ck)
                                   : SCEP_REASON_BAD_SIGNER_COUNT;
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_envelope(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_attributes(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_algorithms(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_find_signer(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_message_digest(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_signature(&ck);
    }

    free(ck.content_copy);

    ERR_clear_error();

    return reason;
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

        if (l > (size_t) (end - p)) {
            return 0;
        }
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
            return 1;
        }

        if (!scep_ber_read(q, end, &child, deep, depth + 1)) {
            return 0;
        }
    }
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
    if (scep_cur_peek(cur) == (SCEP_BER_OCTET_STRING | SCEP_BER_CONSTRUCTED)) {
        return scep_cur_next(cur, 0, el);
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
                || !scep_cur_done(&in))
            {
                return 0;
            }
        }
    }

    return 1;
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


static const EVP_MD *
scep_digest_md(uint32_t bits)
{
    switch (bits) {

    case SCEP_ALG_MD5:
        return EVP_md5();

    case SCEP_ALG_SHA1:
        return EVP_sha1();

    case SCEP_ALG_SHA224:
        return EVP_sha224();

    case SCEP_ALG_SHA256:
        return EVP_sha256();

    case SCEP_ALG_SHA384:
        return EVP_sha384();

    case SCEP_ALG_SHA512:
        return EVP_sha512();

    default:
        return NULL;
    }
}


/*
 * After an OpenSSL call failed: "fallback", or SCEP_REASON_INTERNAL when
 * it failed for want of memory.
 */

static scep_reason_t
scep_openssl_reason(scep_reason_t fallback)
{
    unsigned long  e;
    scep_reason_t  reason;

    reason = fallback;

    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
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
    scep_ber_t  ci, type, content, sd;
    scep_cur_t  cur;

    if (der == NULL || len < 2 || der[0] != SCEP_BER_SEQUENCE) {
        return SCEP_REASON_BAD_DER;
    }

    /* the whole input is one element: every length and nesting checked */

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
 */

static int
scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd)
{
    scep_ber_t    el, set, alg, params, eci, wrap, crls;
    scep_cur_t    cur, in, sub;
    scep_check_t  other;

    scep_cur_init(&cur, sd);

    if (!scep_cur_integer(&cur, 4, &el)
        || !scep_cur_next(&cur, SCEP_BER_SET, &set))
    {
        return 0;
    }

    scep_cur_init(&in, &set);

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

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &ck->certs)
        || (ck->certs.tag != 0 && !scep_parse_certificates(&ck->certs))
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(1), &crls))
    {
        return 0;
    }

    if (crls.tag != 0) {
        scep_cur_init(&in, &crls);

        while (!scep_cur_done(&in)) {
            if (scep_cur_peek(&in) != SCEP_BER_SEQUENCE
                && scep_cur_peek(&in) != scep_ber_ctx_cons(1))
            {
                return 0;
            }

            if (!scep_cur_next(&in, 0, &el)) {
                return 0;
            }
        }
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
    scep_ber_t  el, params, name, serial, unsigned_attrs;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, si);

    if (!scep_cur_integer(&cur, 4, &el)) {
        return 0;
    }

    if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &ck->sid)) {
            return 0;
        }

        scep_cur_init(&in, &ck->sid);

        if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
            || !scep_ber_name_ok(&name)
            || !scep_cur_integer(&in, (size_t) -1, &serial)
            || !scep_cur_done(&in))
        {
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
 * CertificateChoices: a Certificate (SEQUENCE), or one of the obsolete
 * or other forms, [0] to [3], which are only checked as BER.
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

        } else if (tag < scep_ber_ctx_cons(0) || tag > scep_ber_ctx_cons(3)) {
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
    scep_ber_t  tbs, v, alg, params, validity, t, subject, spki, uid, ext;
    scep_cur_t  cur, in;

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

    if (!scep_cur_optional(&cur, scep_ber_ctx(1), &uid)
        || !scep_cur_optional(&cur, scep_ber_ctx(2), &uid)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(3), &ext)
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

    ck->content_copy = malloc(ck->econtent.vend - ck->econtent.val + 1);
    if (ck->content_copy == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    n = 0;

    if (!scep_collect_octets(&ck->econtent, ck->content_copy, &n, 0)) {
        return SCEP_REASON_BAD_DER;
    }

    ck->content = ck->content_copy;
    ck->content_len = n;

    return SCEP_REASON_OK;
}


static int
scep_collect_octets(const scep_ber_t *el, unsigned char *out, size_t *n,
    unsigned int depth)
{
    scep_ber_t  piece;
    scep_cur_t  cur;

    if (el->tag == SCEP_BER_OCTET_STRING) {
        memcpy(out + *n, el->val, el->vend - el->val);
        *n += el->vend - el->val;
        return 1;
    }

    if (depth > SCEP_BER_MAX_DEPTH) {
        return 0;
    }

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_octets(&cur, &piece)
            || !scep_collect_octets(&piece, out, n, depth + 1))
        {
            return 0;
        }
    }

    return 1;
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
    int         tag;
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
        /* originatorInfo: [0] certificates, [1] crls, both optional */

        scep_cur_init(&in, &el);

        if (!scep_cur_optional(&in, scep_ber_ctx_cons(0), &attrs)
            || !scep_cur_optional(&in, scep_ber_ctx_cons(1), &attrs)
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
        tag = scep_cur_peek(&in);

        if (!scep_cur_next(&in, 0, &el)) {
            return SCEP_REASON_BAD_ENVELOPE;
        }

        if (tag == SCEP_BER_SEQUENCE) {
            if (!scep_parse_recipient_info(&el)) {
                return SCEP_REASON_BAD_ENVELOPE;
            }

        } else if (tag < scep_ber_ctx_cons(1) || tag > scep_ber_ctx_cons(4)) {
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
        if (!scep_cur_next(&in, 0, &el)) {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    if (!scep_cur_done(&in)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    return SCEP_REASON_OK;
}


/*
 * KeyTransRecipientInfo ::= SEQUENCE { version, rid, keyEncryptionAlgorithm,
 *     encryptedKey OCTET STRING }
 */

static int
scep_parse_recipient_info(const scep_ber_t *el)
{
    scep_ber_t  v, rid, name, serial, alg, params, key;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, el);

    if (!scep_cur_integer(&cur, 4, &v)) {
        return 0;
    }

    if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &rid)) {
            return 0;
        }

        scep_cur_init(&in, &rid);

        if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
            || !scep_ber_name_ok(&name)
            || !scep_cur_integer(&in, (size_t) -1, &serial)
            || !scep_cur_done(&in))
        {
            return 0;
        }

    } else if (!scep_cur_next(&cur, scep_ber_ctx(0), &rid)) {
        return 0;
    }

    return scep_cur_alg(&cur, &alg, &params)
           && scep_cur_octets(&cur, &key)
           && scep_cur_done(&cur);
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


/* the signer's digest and the envelope's cipher, against the policy */

static scep_reason_t
scep_check_algorithms(scep_check_t *ck)
{
    ck->res->digest = scep_oid_bits(scep_digests, scep_nelts(scep_digests),
                                    &ck->digest_alg);

    if ((ck->res->digest & ck->algorithms) == 0) {
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
                    == serial.vend - serial.val
                && memcmp(ck->cert.serial.val, serial.val,
                          serial.vend - serial.val) == 0
                && scep_names_equal(&ck->cert.issuer, &name))
            {
                return SCEP_REASON_OK;
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
 * compared as OpenSSL does, after canonical encoding.
 */

static int
scep_names_equal(const scep_ber_t *a, const scep_ber_t *b)
{
    int                   eq;
    X509_NAME            *na, *nb;
    const unsigned char  *p;

    if (scep_der_equal(a, b)) {
        return 1;
    }

    p = a->hdr;
    na = d2i_X509_NAME(NULL, &p, a->next - a->hdr);

    p = b->hdr;
    nb = d2i_X509_NAME(NULL, &p, b->next - b->hdr);

    eq = (na != NULL && nb != NULL && X509_NAME_cmp(na, nb) == 0);

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
    const EVP_MD  *md;
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

    md = scep_digest_md(ck->res->digest);
    if (md == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    if (!EVP_Digest(ck->content, ck->content_len, buf, &mdlen, md, NULL)) {
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
 */

static scep_reason_t
scep_check_signature(scep_check_t *ck)
{
    int              rc;
    uint32_t         kind;
    EVP_PKEY        *pkey;
    EVP_MD_CTX      *mctx;
    EVP_PKEY_CTX    *pctx;
    scep_reason_t    reason;
    const EVP_MD    *md;
    unsigned char    tag;

    kind = scep_oid_bits(scep_signatures, scep_nelts(scep_signatures),
                         &ck->sig_alg);
    if (kind == 0) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    pkey = scep_public_key(&ck->cert);
    if (pkey == NULL) {
        return scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
    }

    reason = SCEP_REASON_BAD_SIGNATURE;
    mctx = NULL;

    if ((kind == SCEP_SIG_ECDSA) != (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC))
    {
        goto done;
    }

    md = scep_digest_md(ck->res->digest);

    mctx = EVP_MD_CTX_new();
    if (md == NULL || mctx == NULL) {
        reason = SCEP_REASON_INTERNAL;
        goto done;
    }

    pctx = NULL;

    if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) != 1) {
        reason = scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
        goto done;
    }

    if (kind == SCEP_SIG_PSS
        && !scep_pss_params(&ck->sig_params, ck->res->digest, pctx))
    {
        reason = scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
        goto done;
    }

    tag = SCEP_BER_SET;

    if (EVP_DigestVerifyUpdate(mctx, &tag, 1) != 1
        || EVP_DigestVerifyUpdate(mctx, ck->attrs.hdr + 1,
                                  ck->attrs.next - ck->attrs.hdr - 1)
           != 1)
    {
        reason = scep_openssl_reason(SCEP_REASON_INTERNAL);
        goto done;
    }

    rc = EVP_DigestVerifyFinal(mctx, ck->signature.val,
                               ck->signature.vend - ck->signature.val);

    reason = (rc == 1) ? SCEP_REASON_OK
                       : scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);

done:

    EVP_MD_CTX_free(mctx);
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

static int
scep_pss_params(const scep_ber_t *params, uint32_t digest,
    EVP_PKEY_CTX *pctx)
{
    long                  salt;
    uint32_t              hash, mgf_hash;
    scep_ber_t            el, oid, alg_params, mgf, i;
    scep_cur_t            cur, in, sub;
    const EVP_MD         *mgf_md;
    const unsigned char  *p;

    if (params->tag != SCEP_BER_SEQUENCE) {
        return 0;
    }

    hash = SCEP_ALG_SHA1;
    mgf_hash = SCEP_ALG_SHA1;
    salt = 20;

    scep_cur_init(&cur, params);

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &el)) {
        return 0;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_alg(&in, &oid, &alg_params) || !scep_cur_done(&in)) {
            return 0;
        }

        hash = scep_oid_bits(scep_digests, scep_nelts(scep_digests), &oid);
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(1), &el)) {
        return 0;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_alg(&in, &oid, &mgf)
            || !scep_cur_done(&in)
            || !scep_oid_is(&oid, scep_oid_mgf1, sizeof(scep_oid_mgf1))
            || mgf.tag != SCEP_BER_SEQUENCE)
        {
            return 0;
        }

        /* MGF1's parameter is the AlgorithmIdentifier of its hash */

        sub.p = mgf.hdr;
        sub.end = mgf.next;

        if (!scep_cur_alg(&sub, &oid, &alg_params) || !scep_cur_done(&sub)) {
            return 0;
        }

        mgf_hash = scep_oid_bits(scep_digests, scep_nelts(scep_digests), &oid);
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(2), &el)) {
        return 0;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_integer(&in, 2, &i) || !scep_cur_done(&in)
            || (i.val[0] & 0x80))
        {
            return 0;
        }

        salt = 0;

        for (p = i.val; p != i.vend; p++) {
            salt = salt << 8 | *p;
        }
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(3), &el)) {
        return 0;
    }

    if (el.tag != 0) {
        scep_cur_init(&in, &el);

        if (!scep_cur_integer(&in, 1, &i) || !scep_cur_done(&in)
            || i.val[0] != 1)
        {
            return 0;
        }
    }

    if (!scep_cur_done(&cur) || hash != digest) {
        return 0;
    }

    mgf_md = scep_digest_md(mgf_hash);

    return mgf_md != NULL
           && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
           && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int) salt) > 0
           && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf_md) > 0;
}
