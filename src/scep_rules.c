
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The SCEP rules of the pkiMessage checks: the messageType,
 * transactionID and senderNonce attributes, and the digest and cipher
 * algorithms against the policy.
 */


#include <string.h>

#include "scep_message_int.h"


typedef struct {
    const char            *name;
    size_t                 len;
    uint32_t               bits;
} scep_alg_name_t;


static int scep_printable(unsigned char c);
static void scep_algorithm_used(const scep_oid_t *table,
    const char **names, size_t n, const scep_ber_t *alg, uint32_t *bits,
    const char **name, char *oid, size_t size);


/* contents octets of the OIDs used */

/* 2.16.840.1.113733.1.9: the SCEP attributes, less their last octet */
static const unsigned char  scep_oid_scep_attr[] = {
    0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09
};


const scep_oid_t  scep_digests[6] = {

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


/* the names of scep_digests, in its order */
static const char  *scep_digest_names[] = {
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512"
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


/* the names of scep_ciphers, in its order */
static const char  *scep_cipher_names[] = {
    "des-cbc", "des-ede3-cbc",
    "aes-128-cbc", "aes-192-cbc", "aes-256-cbc",
    "aes-128-gcm", "aes-192-gcm", "aes-256-gcm"
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


/*
 * The SCEP attributes among the signed attributes, by kind: their values
 * (tag 0 when absent), and which came more than once.  Other attributes
 * are left alone.
 */

scep_reason_t
scep_find_attributes(const scep_check_t *ck, scep_attrs_t *found)
{
    size_t      len;
    scep_ber_t  oid, values;
    scep_cur_t  cur;

    memset(found, 0, sizeof(scep_attrs_t));

    if (ck->attrs.tag == 0) {
        return SCEP_REASON_OK;
    }

    len = sizeof(scep_oid_scep_attr);

    scep_cur_init(&cur, &ck->attrs);

    while (!scep_cur_done(&cur)) {

        /* the structure is known to be right by now */

        if (!scep_cur_attribute(&cur, &oid, &values)) {
            return SCEP_REASON_BAD_DER;
        }

        /* 2.16.840.1.113733.1.9.2 to .7: all but the last octet shared */

        if ((size_t) (oid.vend - oid.val) != len + 1
            || memcmp(oid.val, scep_oid_scep_attr, len) != 0
            || oid.val[len] < 2
            || oid.val[len] - 2 >= SCEP_ATTR_N)
        {
            continue;
        }

        found->dup |= (found->values[oid.val[len] - 2].tag != 0)
                      << (oid.val[len] - 2);
        found->values[oid.val[len] - 2] = values;
    }

    return SCEP_REASON_OK;
}


/* messageType, transactionID and senderNonce, each exactly once */

scep_reason_t
scep_check_attributes(scep_check_t *ck)
{
    scep_attrs_t   a;
    scep_reason_t  reason;

    reason = scep_find_attributes(ck, &a);
    if (reason != SCEP_REASON_OK) {
        return reason;
    }

    if (!scep_attribute_once(&a, SCEP_ATTR_MESSAGE_TYPE)
        || !scep_attribute_number(&a.values[SCEP_ATTR_MESSAGE_TYPE],
                                  &ck->res->message_type)
        || scep_message_type_name(ck->res->message_type) == NULL)
    {
        ck->res->message_type = 0;
        return SCEP_REASON_BAD_MESSAGE_TYPE;
    }

    if (!scep_attribute_once(&a, SCEP_ATTR_TRANSACTION_ID)
        || !scep_attribute_transaction_id(&a.values[SCEP_ATTR_TRANSACTION_ID],
                                          ck->res->transaction_id,
                                          &ck->res->transaction_id_len))
    {
        return SCEP_REASON_BAD_TRANSACTION_ID;
    }

    if (!scep_attribute_once(&a, SCEP_ATTR_SENDER_NONCE)
        || !scep_attribute_nonce(&a.values[SCEP_ATTR_SENDER_NONCE],
                                 ck->res->sender_nonce))
    {
        return SCEP_REASON_BAD_SENDER_NONCE;
    }

    return SCEP_REASON_OK;
}


/* the only value of an attribute */

int
scep_attribute_value(const scep_ber_t *values, scep_ber_t *value)
{
    scep_cur_t  cur;

    scep_cur_init(&cur, values);

    return scep_cur_next(&cur, 0, value) && scep_cur_done(&cur);
}


/* an attribute of the kind there, and there once */

int
scep_attribute_once(const scep_attrs_t *found, unsigned int kind)
{
    return found->values[kind].tag != 0 && !(found->dup & (1u << kind));
}


/*
 * A PrintableString of decimal digits, as messageType, pkiStatus and
 * failInfo are; leading zeros do no harm, the value is what counts
 */

int
scep_attribute_number(const scep_ber_t *values, int *number)
{
    int                   n;
    size_t                len;
    scep_ber_t            value;
    const unsigned char  *p;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_PRINTABLE)
    {
        return 0;
    }

    len = value.vend - value.val;

    if (len < 1 || len > 8) {
        return 0;
    }

    n = 0;

    for (p = value.val; p != value.vend; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }

        n = n * 10 + (*p - '0');
    }

    *number = n;

    return 1;
}


/*
 * A transactionID: a PrintableString of 1 to SCEP_TRANSACTION_ID_MAX
 * characters, copied NUL-terminated to "out" (room for
 * SCEP_TRANSACTION_ID_MAX + 1)
 */

int
scep_attribute_transaction_id(const scep_ber_t *values, char *out,
    size_t *out_len)
{
    size_t                len;
    scep_ber_t            value;
    const unsigned char  *p;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_PRINTABLE)
    {
        return 0;
    }

    len = value.vend - value.val;

    if (len < 1 || len > SCEP_TRANSACTION_ID_MAX) {
        return 0;
    }

    for (p = value.val; p != value.vend; p++) {
        if (!scep_printable(*p)) {
            return 0;
        }
    }

    memcpy(out, value.val, len);
    out[len] = '\0';
    *out_len = len;

    return 1;
}


/* a senderNonce or recipientNonce: an OCTET STRING of SCEP_NONCE_LEN */

int
scep_attribute_nonce(const scep_ber_t *values, unsigned char *out)
{
    scep_ber_t  value;

    if (!scep_attribute_value(values, &value)
        || value.tag != SCEP_BER_OCTET_STRING
        || value.vend - value.val != SCEP_NONCE_LEN)
    {
        return 0;
    }

    memcpy(out, value.val, SCEP_NONCE_LEN);

    return 1;
}


/*
 * The signer's digest and the envelope's cipher, against the policy.  The
 * digest must be one the SignedData lists, as OpenSSL requires too.
 */

scep_reason_t
scep_check_algorithms(scep_check_t *ck)
{
    /* what was used, by name and OID, for an answer an admin can act on */

    scep_algorithm_used(scep_digests, scep_digest_names,
                        scep_nelts(scep_digests), &ck->digest_alg,
                        &ck->res->digest, &ck->res->digest_name,
                        ck->res->digest_oid, sizeof(ck->res->digest_oid));

    if ((ck->res->digest & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    if (!scep_digest_listed(ck)) {
        return SCEP_REASON_BAD_DIGEST_ALGORITHM;
    }

    scep_algorithm_used(scep_ciphers, scep_cipher_names,
                        scep_nelts(scep_ciphers), &ck->cipher_alg,
                        &ck->res->cipher, &ck->res->cipher_name,
                        ck->res->cipher_oid, sizeof(ck->res->cipher_oid));

    if ((ck->res->cipher & ck->algorithms) == 0) {
        return SCEP_REASON_BAD_CIPHER_ALGORITHM;
    }

    return SCEP_REASON_OK;
}


/* whether the signer's digest is one the SignedData lists */

int
scep_digest_listed(const scep_check_t *ck)
{
    int         listed;
    scep_ber_t  oid, params;
    scep_cur_t  cur;

    listed = 0;

    scep_cur_init(&cur, &ck->digest_algs);

    while (!listed && scep_cur_alg(&cur, &oid, &params)) {
        listed = scep_oid_is(&oid, ck->digest_alg.val,
                             ck->digest_alg.vend - ck->digest_alg.val);
    }

    return listed;
}


/* an algorithm's policy bit and name where it is known, and its OID as text */

static void
scep_algorithm_used(const scep_oid_t *table, const char **names, size_t n,
    const scep_ber_t *alg, uint32_t *bits, const char **name, char *oid,
    size_t size)
{
    size_t  i;

    i = scep_oid_index(table, n, alg);

    if (i < n) {
        *bits = table[i].bits;
        *name = names[i];
    }

    scep_oid_text(alg, oid, size);
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


size_t
scep_algorithms_text(uint32_t bits, char *out, size_t size)
{
    int        all_aes, full;
    size_t     i, len, n;
    uint32_t   aes, b;

    aes = SCEP_ALG_AES128|SCEP_ALG_AES192|SCEP_ALG_AES256;
    all_aes = ((bits & aes) == aes);

    len = 0;
    full = (size == 0);

    if (size) {
        *out = '\0';
    }

    for (i = 0; i < scep_nelts(scep_alg_names); i++) {
        b = scep_alg_names[i].bits;

        if (b == aes) {
            /* "aes" for all three sizes, and then only */

            if (!all_aes) {
                continue;
            }

        } else if (!(bits & b) || (all_aes && (b & aes))) {
            continue;
        }

        n = scep_alg_names[i].len + (len ? 1 : 0);

        /* written while it fits, so that the text is cut, never holed */

        if (full || len + n >= size) {
            full = 1;

        } else {
            if (len) {
                out[len] = ' ';
            }

            memcpy(out + len + n - scep_alg_names[i].len,
                   scep_alg_names[i].name, scep_alg_names[i].len);
            out[len + n] = '\0';
        }

        len += n;
    }

    return len;
}
