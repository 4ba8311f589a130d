
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * pkiMessage checks in plain C over OpenSSL.
 */


#include <limits.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "scep_message.h"


/* nesting of BER elements the envelope walker follows at most */
#define SCEP_BER_MAX_DEPTH    32

#define SCEP_NONCE_LEN        16

/* BER identifier octets */
#define SCEP_TAG_INTEGER      0x02
#define SCEP_TAG_OID          0x06
#define SCEP_TAG_SEQUENCE     0x30
#define SCEP_TAG_SET          0x31
#define SCEP_TAG_CONTEXT0     0xa0
#define SCEP_TAG_HIGH         0x1f
#define SCEP_TAG_CONSTRUCTED  0x20


/* an algorithm OID: its SCEP_ALG_* bits and its DER contents octets */
typedef struct {
    uint32_t          bits;
    size_t            len;
    unsigned char     oid[9];
} scep_oid_t;


typedef struct {
    const char       *name;
    size_t            len;
    uint32_t          bits;
} scep_alg_name_t;


/* the state of one scep_message_check() call */
typedef struct {
    const unsigned char   *der;
    size_t                 len;
    uint32_t               algorithms;
    scep_result_t         *res;

    CMS_ContentInfo       *cms;
    CMS_ContentInfo       *env;
    CMS_SignerInfo        *si;
    ASN1_OCTET_STRING     *content;

    const unsigned char   *cipher_oid;
    size_t                 cipher_oid_len;
} scep_check_t;


static int scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef);
static int scep_ber_skip(const unsigned char **pos, const unsigned char *end,
    unsigned int depth);
static int scep_ber_enter(const unsigned char **pos, const unsigned char **end,
    unsigned int tag);
static int scep_ber_primitive(const unsigned char **pos,
    const unsigned char *end, unsigned int tag, const unsigned char **val,
    size_t *vlen);
static int scep_outer_length_ok(const unsigned char *der, size_t len);
static int scep_envelope_cipher(const unsigned char *p, size_t len,
    const unsigned char **oid, size_t *oidlen);
static uint32_t scep_oid_bits(const scep_oid_t *table, size_t n,
    const unsigned char *oid, size_t len);
static const EVP_MD *scep_digest_md(uint32_t bits);
static int scep_object_is(const ASN1_OBJECT *obj, const unsigned char *oid,
    size_t len);
static int scep_printable(unsigned char c);
static scep_reason_t scep_openssl_reason(scep_reason_t fallback);
static scep_reason_t scep_check_structure(scep_check_t *ck);
static scep_reason_t scep_check_attributes(scep_check_t *ck);
static scep_reason_t scep_check_message_type(X509_ATTRIBUTE *attr,
    scep_result_t *res);
static scep_reason_t scep_check_transaction_id(X509_ATTRIBUTE *attr,
    scep_result_t *res);
static scep_reason_t scep_check_sender_nonce(X509_ATTRIBUTE *attr,
    scep_result_t *res);
static scep_reason_t scep_check_algorithms(scep_check_t *ck);
static scep_reason_t scep_check_signature(scep_check_t *ck);
static scep_reason_t scep_check_message_digest(scep_check_t *ck);


/* SCEP attributes, 2.16.840.1.113733.1.9.x, contents octets */

static const unsigned char  scep_oid_message_type[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x02
};

static const unsigned char  scep_oid_sender_nonce[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x05
};

static const unsigned char  scep_oid_transaction_id[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09, 0x07
};

/* 1.2.840.113549.1.9.4 */
static const unsigned char  scep_oid_message_digest[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04
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
    if ((unsigned int) reason
        >= sizeof(scep_reason_tokens) / sizeof(scep_reason_tokens[0]))
    {
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
    size_t  i, k;

    for (i = 0; i < sizeof(scep_alg_names) / sizeof(scep_alg_names[0]); i++) {
        if (scep_alg_names[i].len != len) {
            continue;
        }

        for (k = 0; k < len; k++) {
            if ((name[k] | 0x20) != scep_alg_names[i].name[k]) {
                break;
            }
        }

        if (k == len) {
            return scep_alg_names[i].bits;
        }
    }

    return 0;
}


/*
 * Reads the identifier and length octets of the element at *pos and
 * leaves *pos at its contents.  *tag is the first identifier octet;
 * for a definite length, the contents must fit before "end".
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

    if ((*tag & SCEP_TAG_HIGH) == SCEP_TAG_HIGH) {
        /* high tag number: base-128 octets, the last without bit 8 */

        for ( ;; ) {
            if (p == end) {
                return 0;
            }

            if ((*p++ & 0x80) == 0) {
                break;
            }
        }

        if (p == end) {
            return 0;
        }
    }

    *indef = 0;

    if (*p < 0x80) {
        l = *p++;

    } else if (*p == 0x80) {
        p++;

        if ((*tag & SCEP_TAG_CONSTRUCTED) == 0) {
            return 0;
        }

        *indef = 1;
        l = 0;

    } else {
        n = *p++ & 0x7f;

        if (n > sizeof(size_t) || n > (size_t) (end - p)) {
            return 0;
        }

        l = 0;

        while (n--) {
            if (l >> (sizeof(size_t) * 8 - 8)) {
                return 0;
            }

            l = l << 8 | *p++;
        }
    }

    if (!*indef && l > (size_t) (end - p)) {
        return 0;
    }

    *vlen = l;
    *pos = p;

    return 1;
}


/* moves *pos past the element there, of definite or indefinite length */

static int
scep_ber_skip(const unsigned char **pos, const unsigned char *end,
    unsigned int depth)
{
    int                   indef;
    size_t                vlen;
    unsigned int          tag;
    const unsigned char  *p;

    if (depth > SCEP_BER_MAX_DEPTH) {
        return 0;
    }

    p = *pos;

    if (!scep_ber_header(&p, end, &tag, &vlen, &indef)) {
        return 0;
    }

    if (!indef) {
        *pos = p + vlen;
        return 1;
    }

    for ( ;; ) {
        if (end - p >= 2 && p[0] == 0 && p[1] == 0) {
            *pos = p + 2;
            return 1;
        }

        if (!scep_ber_skip(&p, end, depth + 1)) {
            return 0;
        }
    }
}


/*
 * Steps into the constructed element at *pos, which must have the tag
 * "tag"; *end becomes the end of its contents when the length is known.
 */

static int
scep_ber_enter(const unsigned char **pos, const unsigned char **end,
    unsigned int tag)
{
    int                   indef;
    size_t                vlen;
    unsigned int          t;
    const unsigned char  *p;

    p = *pos;

    if (!scep_ber_header(&p, *end, &t, &vlen, &indef) || t != tag) {
        return 0;
    }

    if (!indef) {
        *end = p + vlen;
    }

    *pos = p;

    return 1;
}


/* reads the primitive element at *pos, which must have the tag "tag" */

static int
scep_ber_primitive(const unsigned char **pos, const unsigned char *end,
    unsigned int tag, const unsigned char **val, size_t *vlen)
{
    int                   indef;
    unsigned int          t;
    const unsigned char  *p;

    p = *pos;

    if (!scep_ber_header(&p, end, &t, vlen, &indef) || t != tag || indef) {
        return 0;
    }

    *val = p;
    *pos = p + *vlen;

    return 1;
}


/*
 * Whether the outer SEQUENCE claims exactly "len" bytes: a cheap test
 * before OpenSSL parses anything.  An indefinite length (BER, as some
 * toolkits stream) is left to the parser.
 */

static int
scep_outer_length_ok(const unsigned char *der, size_t len)
{
    int                   indef;
    size_t                vlen;
    unsigned int          tag;
    const unsigned char  *p;

    p = der;

    if (!scep_ber_header(&p, der + len, &tag, &vlen, &indef)
        || tag != SCEP_TAG_SEQUENCE)
    {
        return 0;
    }

    return indef || vlen == (size_t) (der + len - p);
}


/*
 * Finds the contentEncryptionAlgorithm OID of a ContentInfo holding
 * EnvelopedData (already parsed by OpenSSL, which keeps it private):
 *
 *   ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT EnvelopedData }
 *   EnvelopedData ::= SEQUENCE { version, [0] originatorInfo OPTIONAL,
 *       recipientInfos SET, encryptedContentInfo SEQUENCE {
 *           contentType, contentEncryptionAlgorithm SEQUENCE { OID, ... },
 *           ... }, ... }
 */

static int
scep_envelope_cipher(const unsigned char *p, size_t len,
    const unsigned char **oid, size_t *oidlen)
{
    int                   indef;
    size_t                vlen;
    unsigned int          tag;
    const unsigned char  *end, *q, *val;

    end = p + len;

    if (!scep_ber_enter(&p, &end, SCEP_TAG_SEQUENCE)
        || !scep_ber_primitive(&p, end, SCEP_TAG_OID, &val, &vlen)
        || !scep_ber_enter(&p, &end, SCEP_TAG_CONTEXT0)
        || !scep_ber_enter(&p, &end, SCEP_TAG_SEQUENCE)
        || !scep_ber_primitive(&p, end, SCEP_TAG_INTEGER, &val, &vlen))
    {
        return 0;
    }

    q = p;

    if (!scep_ber_header(&q, end, &tag, &vlen, &indef)) {
        return 0;
    }

    if (tag == SCEP_TAG_CONTEXT0 && !scep_ber_skip(&p, end, 0)) {
        return 0;
    }

    q = p;

    if (!scep_ber_header(&q, end, &tag, &vlen, &indef)
        || tag != SCEP_TAG_SET
        || !scep_ber_skip(&p, end, 0)
        || !scep_ber_enter(&p, &end, SCEP_TAG_SEQUENCE)
        || !scep_ber_primitive(&p, end, SCEP_TAG_OID, &val, &vlen)
        || !scep_ber_enter(&p, &end, SCEP_TAG_SEQUENCE)
        || !scep_ber_primitive(&p, end, SCEP_TAG_OID, oid, oidlen))
    {
        return 0;
    }

    return 1;
}


static uint32_t
scep_oid_bits(const scep_oid_t *table, size_t n, const unsigned char *oid,
    size_t len)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (table[i].len == len && memcmp(table[i].oid, oid, len) == 0) {
            return table[i].bits;
        }
    }

    return 0;
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


static int
scep_object_is(const ASN1_OBJECT *obj, const unsigned char *oid, size_t len)
{
    return obj != NULL
           && (size_t) OBJ_length(obj) == len
           && memcmp(OBJ_get0_data(obj), oid, len) == 0;
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


/*
 * After an OpenSSL call failed: "fallback", or SCEP_REASON_INTERNAL if
 * it failed for want of memory.  Empties the error queue.
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

    ck.der = der;
    ck.len = len;
    ck.algorithms = (policy != NULL) ? policy->algorithms : SCEP_ALG_DEFAULT;
    ck.res = res;

    /* errors queued by the caller are no business of this check */
    ERR_clear_error();

    reason = scep_check_structure(&ck);

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_attributes(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_algorithms(&ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_signature(&ck);
    }

    CMS_ContentInfo_free(ck.env);
    CMS_ContentInfo_free(ck.cms);

    ERR_clear_error();

    return reason;
}


/* DER, SignedData, one signer, data content holding an EnvelopedData */

static scep_reason_t
scep_check_structure(scep_check_t *ck)
{
    const unsigned char         *p;
    ASN1_OCTET_STRING          **pos;
    STACK_OF(CMS_SignerInfo)    *signers;

    if (ck->der == NULL
        || ck->len > (size_t) LONG_MAX
        || !scep_outer_length_ok(ck->der, ck->len))
    {
        return SCEP_REASON_BAD_DER;
    }

    p = ck->der;
    ck->cms = d2i_CMS_ContentInfo(NULL, &p, (long) ck->len);

    if (ck->cms == NULL) {
        return scep_openssl_reason(SCEP_REASON_BAD_DER);
    }

    if (p != ck->der + ck->len) {
        return SCEP_REASON_BAD_DER;
    }

    if (OBJ_obj2nid(CMS_get0_type(ck->cms)) != NID_pkcs7_signed) {
        return SCEP_REASON_NOT_SIGNED_DATA;
    }

    signers = CMS_get0_SignerInfos(ck->cms);

    if (signers == NULL || sk_CMS_SignerInfo_num(signers) != 1) {
        return SCEP_REASON_BAD_SIGNER_COUNT;
    }

    ck->si = sk_CMS_SignerInfo_value(signers, 0);

    if (OBJ_obj2nid(CMS_get0_eContentType(ck->cms)) != NID_pkcs7_data) {
        return SCEP_REASON_BAD_CONTENT_TYPE;
    }

    pos = CMS_get0_content(ck->cms);

    if (pos == NULL || *pos == NULL) {
        return SCEP_REASON_BAD_CONTENT_TYPE;
    }

    ck->content = *pos;

    p = ASN1_STRING_get0_data(ck->content);
    ck->env = d2i_CMS_ContentInfo(NULL, &p, ASN1_STRING_length(ck->content));

    if (ck->env == NULL) {
        return scep_openssl_reason(SCEP_REASON_BAD_ENVELOPE);
    }

    if (p != ASN1_STRING_get0_data(ck->content)
             + ASN1_STRING_length(ck->content)
        || OBJ_obj2nid(CMS_get0_type(ck->env)) != NID_pkcs7_enveloped
        || !scep_envelope_cipher(ASN1_STRING_get0_data(ck->content),
                                 ASN1_STRING_length(ck->content),
                                 &ck->cipher_oid, &ck->cipher_oid_len))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    return SCEP_REASON_OK;
}


/* messageType, transactionID and senderNonce, each exactly once */

static scep_reason_t
scep_check_attributes(scep_check_t *ck)
{
    int                   i, n, dup_type, dup_tid, dup_nonce;
    scep_reason_t         reason;
    X509_ATTRIBUTE       *attr, *type, *tid, *nonce;
    const ASN1_OBJECT    *obj;

    type = NULL;
    tid = NULL;
    nonce = NULL;
    dup_type = 0;
    dup_tid = 0;
    dup_nonce = 0;

    n = CMS_signed_get_attr_count(ck->si);

    for (i = 0; i < n; i++) {
        attr = CMS_signed_get_attr(ck->si, i);
        obj = X509_ATTRIBUTE_get0_object(attr);

        if (scep_object_is(obj, scep_oid_message_type,
                           sizeof(scep_oid_message_type)))
        {
            dup_type |= (type != NULL);
            type = attr;

        } else if (scep_object_is(obj, scep_oid_transaction_id,
                                  sizeof(scep_oid_transaction_id)))
        {
            dup_tid |= (tid != NULL);
            tid = attr;

        } else if (scep_object_is(obj, scep_oid_sender_nonce,
                                  sizeof(scep_oid_sender_nonce)))
        {
            dup_nonce |= (nonce != NULL);
            nonce = attr;
        }
    }

    if (dup_type) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    reason = scep_check_message_type(type, ck->res);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (dup_tid) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    reason = scep_check_transaction_id(tid, ck->res);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (dup_nonce) {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    return scep_check_sender_nonce(nonce, ck->res);
}


static scep_reason_t
scep_check_message_type(X509_ATTRIBUTE *attr, scep_result_t *res)
{
    int                   i, len, value;
    ASN1_TYPE            *t;
    const unsigned char  *s;

    if (attr == NULL || X509_ATTRIBUTE_count(attr) != 1) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    t = X509_ATTRIBUTE_get0_type(attr, 0);

    if (t == NULL || t->type != V_ASN1_PRINTABLESTRING) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    s = ASN1_STRING_get0_data(t->value.printablestring);
    len = ASN1_STRING_length(t->value.printablestring);

    /* a few digits; leading zeros are tolerated, the value is what counts */

    if (len < 1 || len > 8) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    value = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return SCEP_REASON_BAD_MESSAGE_TYPE;
        }

        value = value * 10 + (s[i] - '0');
    }

    if (scep_message_type_name(value) == NULL) {
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    res->message_type = value;

    return SCEP_REASON_OK;
}


static scep_reason_t
scep_check_transaction_id(X509_ATTRIBUTE *attr, scep_result_t *res)
{
    int                   i, len;
    ASN1_TYPE            *t;
    const unsigned char  *s;

    if (attr == NULL || X509_ATTRIBUTE_count(attr) != 1) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    t = X509_ATTRIBUTE_get0_type(attr, 0);

    if (t == NULL || t->type != V_ASN1_PRINTABLESTRING) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    s = ASN1_STRING_get0_data(t->value.printablestring);
    len = ASN1_STRING_length(t->value.printablestring);

    if (len < 1 || len > SCEP_TRANSACTION_ID_MAX) {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    for (i = 0; i < len; i++) {
        if (!scep_printable(s[i])) {
            return SCEP_REASON_BAD_TRANSACTION_ID;
        }
    }

    memcpy(res->transaction_id, s, len);
    res->transaction_id[len] = '\0';
    res->transaction_id_len = len;

    return SCEP_REASON_OK;
}


static scep_reason_t
scep_check_sender_nonce(X509_ATTRIBUTE *attr, scep_result_t *res)
{
    ASN1_TYPE  *t;

    if (attr == NULL || X509_ATTRIBUTE_count(attr) != 1) {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    t = X509_ATTRIBUTE_get0_type(attr, 0);

    if (t == NULL
        || t->type != V_ASN1_OCTET_STRING
        || ASN1_STRING_length(t->value.octet_string) != SCEP_NONCE_LEN)
    {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    memcpy(res->sender_nonce, ASN1_STRING_get0_data(t->value.octet_string),
           SCEP_NONCE_LEN);

    return SCEP_REASON_OK;
}


/* the signer's digest and the envelope's cipher, against the policy */

static scep_reason_t
scep_check_algorithms(scep_check_t *ck)
{
    X509_ALGOR         *digest;
    const ASN1_OBJECT  *obj;

    digest = NULL;
    CMS_SignerInfo_get0_algs(ck->si, NULL, NULL, &digest, NULL);

    if (digest == NULL) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    X509_ALGOR_get0(&obj, NULL, NULL, digest);

    ck->res->digest = scep_oid_bits(scep_digests,
                                    sizeof(scep_digests) / sizeof(scep_oid_t),
                                    OBJ_get0_data(obj), OBJ_length(obj));

    if ((ck->res->digest & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    ck->res->cipher = scep_oid_bits(scep_ciphers,
                                    sizeof(scep_ciphers) / sizeof(scep_oid_t),
                                    ck->cipher_oid, ck->cipher_oid_len);

    if ((ck->res->cipher & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_CIPHER_ALGORITHM;
    }

    return SCEP_REASON_OK;
}


/*
 * The signer certificate must be among those of the SignedData (no chain
 * is built: a PKCSReq is signed with a self-signed certificate); the
 * signature over the signed attributes must verify with its key, and
 * the messageDigest attribute must be the digest of the content.
 */

static scep_reason_t
scep_check_signature(scep_check_t *ck)
{
    int            rc;
    X509          *signer;
    EVP_PKEY      *pkey;
    scep_reason_t  reason;

    rc = CMS_set1_signers_certs(ck->cms, NULL, 0);

    if (rc < 0) {
        return scep_openssl_reason(SCEP_REASON_NO_SIGNER_CERT);
    }

    signer = NULL;
    pkey = NULL;
    CMS_SignerInfo_get0_algs(ck->si, &pkey, &signer, NULL, NULL);

    if (signer == NULL) {
        return scep_openssl_reason(SCEP_REASON_NO_SIGNER_CERT);
    }

    if (pkey == NULL) {
        /* a key type OpenSSL cannot use, or no memory */
        return scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
    }

    reason = scep_check_message_digest(ck);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (CMS_SignerInfo_verify(ck->si) != 1) {
        return scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
    }

    return SCEP_REASON_OK;
}


static scep_reason_t
scep_check_message_digest(scep_check_t *ck)
{
    int                   i, n;
    unsigned int          mdlen;
    ASN1_TYPE            *t;
    const EVP_MD         *md;
    X509_ATTRIBUTE       *attr, *digest;
    ASN1_OCTET_STRING    *value;
    unsigned char         buf[EVP_MAX_MD_SIZE];

    digest = NULL;

    n = CMS_signed_get_attr_count(ck->si);

    for (i = 0; i < n; i++) {
        attr = CMS_signed_get_attr(ck->si, i);

        if (scep_object_is(X509_ATTRIBUTE_get0_object(attr),
                           scep_oid_message_digest,
                           sizeof(scep_oid_message_digest)))
        {
            if (digest != NULL) {
                return SCEP_REASON_BAD_SIGNATURE;
            }

            digest = attr;
        }
    }

    if (digest == NULL || X509_ATTRIBUTE_count(digest) != 1) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    t = X509_ATTRIBUTE_get0_type(digest, 0);

    if (t == NULL || t->type != V_ASN1_OCTET_STRING) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    value = t->value.octet_string;

    md = scep_digest_md(ck->res->digest);
    if (md == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    if (!EVP_Digest(ASN1_STRING_get0_data(ck->content),
                    ASN1_STRING_length(ck->content), buf, &mdlen, md, NULL))
    {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
    }

    if ((unsigned int) ASN1_STRING_length(value) != mdlen
        || CRYPTO_memcmp(ASN1_STRING_get0_data(value), buf, mdlen) != 0)
    {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    return SCEP_REASON_OK;
}
