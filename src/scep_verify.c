
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The signature of the pkiMessage checks: the signer's certificate
 * found by the SignerInfo's sid, the messageDigest attribute checked
 * against the content, the signer's public key built and the signature
 * over the signed attributes verified, by OpenSSL.
 */


#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "scep_message_int.h"


/* names compared by their canonical encoding at most, a check */
#define SCEP_NAME_COMPARES     4

/* the largest keys worth a signature check (see scep_rsa_key()) */
#define SCEP_RSA_MAX_BITS      8192
#define SCEP_RSA_MAX_E_BYTES   8

/* the longest SubjectPublicKeyInfo written for a key hash: RSA, 8192 bits */
#define SCEP_SPKI_MAX          (SCEP_RSA_MAX_BITS / 8 + SCEP_RSA_MAX_E_BYTES \
                                + 48)

/* the longest EC point: P-521, uncompressed */
#define SCEP_EC_POINT_MAX      (1 + 2 * 66)


static scep_reason_t scep_signer_found(scep_check_t *ck,
    const scep_ber_t *el);
static int scep_names_equal(scep_check_t *ck, const scep_ber_t *a,
    const scep_ber_t *b);
static EVP_MD *scep_digest(scep_check_t *ck);
static EVP_PKEY *scep_public_key(scep_check_t *ck, scep_crypto_key_t **key);
static EVP_PKEY *scep_rsa_key(scep_check_t *ck, const scep_ber_t *bits,
    scep_crypto_key_t **key);
static void scep_crypto_key_clear(scep_crypto_key_t *key);
static void scep_native_order(unsigned char *dst, const unsigned char *src,
    size_t n);
static EVP_PKEY *scep_ec_key(const scep_ber_t *params, const scep_ber_t *key);
static scep_reason_t scep_pss_params(const scep_ber_t *params,
    uint32_t digest, EVP_PKEY_CTX *pctx);
static scep_reason_t scep_signer_key_hash(scep_check_t *ck, EVP_PKEY *pkey);
static size_t scep_rsa_spki(const scep_ber_t *bits, unsigned char *out);
static size_t scep_ec_spki(const scep_ber_t *params, const scep_ber_t *key,
    EVP_PKEY *pkey, unsigned char *out);
static size_t scep_spki_header_len(size_t len);
static unsigned char *scep_spki_header(unsigned char *p, unsigned int tag,
    size_t len);
static const char *scep_digest_name(uint32_t bits);
static int scep_digest_index(uint32_t bits);
static scep_reason_t scep_openssl_reason(scep_reason_t fallback);


/* contents octets of the OIDs used */

/* 1.2.840.113549.1.9.4 */
static const unsigned char  scep_oid_message_digest[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04
};

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

/* AlgorithmIdentifier { rsaEncryption, NULL }, as DER */
static const unsigned char  scep_alg_rsa[] = {
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
    0x01, 0x05, 0x00
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


/*
 * The first certificate of the SignedData that the sid names: by issuer
 * and serial number, or by subjectKeyIdentifier.  No chain is built: a
 * PKCSReq is signed with a self-signed certificate.
 */

scep_reason_t
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

            if (eq < 0) {
                return SCEP_REASON_INTERNAL;
            }

            if (eq > 0) {
                return scep_signer_found(ck, &el);
            }

        } else if (ck->cert.ski.tag != 0
                   && ck->cert.ski.vend - ck->cert.ski.val
                      == keyid.vend - keyid.val
                   && memcmp(ck->cert.ski.val, keyid.val,
                             keyid.vend - keyid.val) == 0)
        {
            return scep_signer_found(ck, &el);
        }
    }

    return SCEP_REASON_NO_SIGNER_CERT;
}


/*
 * What a caller needs of the signer's certificate to tell a renewal:
 * where it is, and whether it names itself as its issuer
 */

static scep_reason_t
scep_signer_found(scep_check_t *ck, const scep_ber_t *el)
{
    int  eq;

    eq = scep_names_equal(ck, &ck->cert.issuer, &ck->cert.subject);

    if (eq < 0) {
        return SCEP_REASON_INTERNAL;
    }

    ck->res->signer_cert = el->hdr;
    ck->res->signer_cert_len = el->next - el->hdr;
    ck->res->signer_self_issued = eq;
    ck->res->signer_issuer = ck->cert.issuer.hdr;
    ck->res->signer_issuer_len = ck->cert.issuer.next - ck->cert.issuer.hdr;

    return SCEP_REASON_OK;
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

scep_reason_t
scep_check_message_digest(scep_check_t *ck)
{
    unsigned int   mdlen;
    scep_ber_t     oid, values, value, digest;
    scep_cur_t     cur;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    if (ck->attrs.tag == 0) {
        return SCEP_REASON_BAD_SIGNATURE;
    }

    digest.tag = 0;

    scep_cur_init(&cur, &ck->attrs);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_attribute(&cur, &oid, &values)) {
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

    /* one for the content, the attributes and the signature */

    if (scep_signer_digest(ck) != SCEP_REASON_OK) {
        return SCEP_REASON_INTERNAL;
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
 * The signer's digest, fetched for the attributes and the signature,
 * once: scep_check_message_digest() calls it, and the check of a
 * message without content (a CertRep's FAILURE) calls it instead.
 */

scep_reason_t
scep_signer_digest(scep_check_t *ck)
{
    if (ck->md != NULL) {
        return SCEP_REASON_OK;
    }

    ck->md = scep_digest(ck);
    if (ck->md == NULL) {
        return scep_openssl_reason(SCEP_REASON_INTERNAL);
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

scep_reason_t
scep_check_signature(scep_check_t *ck)
{
    int                 rc, owned;
    uint32_t            kind;
    EVP_PKEY           *pkey;
    EVP_MD_CTX         *mctx;
    unsigned int        mdlen;
    EVP_PKEY_CTX       *pctx;
    scep_reason_t       reason;
    scep_crypto_key_t  *key;
    unsigned char       tag, md[EVP_MAX_MD_SIZE];

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

    pkey = scep_public_key(ck, &key);
    if (pkey == NULL) {
        return scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);
    }

    if ((kind == SCEP_SIG_ECDSA) != (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC))
    {
        EVP_PKEY_free(pkey);
        return SCEP_REASON_BAD_SIGNATURE;
    }

    /*
     * A key met before verifies PKCS#1 v1.5 signatures with the same
     * digest through the context made then.
     */

    if (key != NULL && kind == SCEP_SIG_RSA && key->pctx != NULL
        && key->digest == ck->res->digest && !ck->md_fetched)
    {
        pctx = key->pctx;
        owned = 0;
        goto verify;
    }

    reason = SCEP_REASON_BAD_SIGNATURE;
    owned = 1;

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

    if (key != NULL && kind == SCEP_SIG_RSA && !ck->md_fetched) {
        /* kept with the key, for its next signature */
        EVP_PKEY_CTX_free(key->pctx);
        key->pctx = pctx;
        key->digest = ck->res->digest;
        owned = 0;
    }

verify:

    rc = EVP_PKEY_verify(pctx, ck->signature.val,
                         ck->signature.vend - ck->signature.val, md, mdlen);

    reason = (rc == 1) ? SCEP_REASON_OK
                       : scep_openssl_reason(SCEP_REASON_BAD_SIGNATURE);

    if (reason == SCEP_REASON_OK) {
        reason = scep_signer_key_hash(ck, pkey);
    }

done:

    if (owned) {
        EVP_PKEY_CTX_free(pctx);
    }

    EVP_PKEY_free(pkey);

    return reason;
}


/*
 * scep_crypto_new() fetches every digest a check may need, and readies a
 * context that makes RSA public keys from their numbers: fetching them
 * costs more than a check's own SHA-256 over 10 KB, as OpenSSL looks the
 * names up in its providers every time.  What cannot be fetched now (MD5
 * in a FIPS setup) is looked for again by the check that needs it.
 */

scep_crypto_t *
scep_crypto_new(void)
{
    size_t          i;
    scep_crypto_t  *crypto;

    static const uint32_t  digests[] = {
        SCEP_ALG_MD5, SCEP_ALG_SHA1, SCEP_ALG_SHA224, SCEP_ALG_SHA256,
        SCEP_ALG_SHA384, SCEP_ALG_SHA512
    };

    crypto = OPENSSL_zalloc(sizeof(scep_crypto_t));
    if (crypto == NULL) {
        return NULL;
    }

    for (i = 0; i < scep_nelts(digests); i++) {
        crypto->md[scep_digest_index(digests[i])] =
            EVP_MD_fetch(NULL, scep_digest_name(digests[i]), NULL);
    }

    crypto->rsa = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (crypto->rsa != NULL && EVP_PKEY_fromdata_init(crypto->rsa) != 1) {
        EVP_PKEY_CTX_free(crypto->rsa);
        crypto->rsa = NULL;
    }

    ERR_clear_error();

    return crypto;
}


void
scep_crypto_free(scep_crypto_t *crypto)
{
    size_t  i;

    if (crypto == NULL) {
        return;
    }

    for (i = 0; i < scep_nelts(crypto->md); i++) {
        EVP_MD_free(crypto->md[i]);
    }

    for (i = 0; i < SCEP_CRYPTO_KEYS; i++) {
        scep_crypto_key_clear(&crypto->keys[i]);
    }

    EVP_PKEY_CTX_free(crypto->rsa);
    OPENSSL_free(crypto);
}


/* the signer's digest: the one fetched beforehand, or fetched now */

static EVP_MD *
scep_digest(scep_check_t *ck)
{
    int  i;

    i = scep_digest_index(ck->res->digest);

    if (i < 0) {
        return NULL;
    }

    if (ck->crypto != NULL && ck->crypto->md[i] != NULL) {
        return ck->crypto->md[i];
    }

    ck->md_fetched = 1;

    return EVP_MD_fetch(NULL, scep_digest_name(ck->res->digest), NULL);
}


/* the signer's key: RSA (rsaEncryption or RSASSA-PSS) or EC, else NULL */

static EVP_PKEY *
scep_public_key(scep_check_t *ck, scep_crypto_key_t **key)
{
    const scep_cert_t  *cert;

    cert = &ck->cert;
    *key = NULL;

    if (cert->key.val[0] != 0) {
        /* keys are whole octets */
        return NULL;
    }

    if (scep_oid_is(&cert->key_alg, scep_oid_rsa, sizeof(scep_oid_rsa))
        || scep_oid_is(&cert->key_alg, scep_oid_rsa_pss,
                       sizeof(scep_oid_rsa_pss)))
    {
        return scep_rsa_key(ck, &cert->key, key);
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
 *
 * With a scep_crypto_t the key is made from its two numbers by the RSA
 * key manager itself: d2i_PublicKey() makes a legacy key that OpenSSL 3
 * exports to its provider at every use.  The last SCEP_CRYPTO_KEYS keys
 * are kept, found again by their exact octets, with what OpenSSL
 * computes at a key's first use (its Montgomery form): a device signs
 * its PKCSReq and then every CertPoll with the same key.  *key is the
 * slot of the key, or NULL when it is not kept.
 */

static EVP_PKEY *
scep_rsa_key(scep_check_t *ck, const scep_ber_t *bits, scep_crypto_key_t **key)
{
    size_t                nlen, elen, len;
    EVP_PKEY             *pkey;
    scep_ber_t            seq, n, e;
    scep_cur_t            cur;
    OSSL_PARAM            op[3];
    unsigned int          i;
    scep_crypto_t        *crypto;
    scep_crypto_key_t    *slot;
    const unsigned char  *p;
    unsigned char         nbuf[SCEP_RSA_MAX_BITS / 8];
    unsigned char         ebuf[SCEP_RSA_MAX_E_BYTES];

    p = bits->val + 1;

    if (!scep_ber_read(p, bits->vend, &seq, 1, 0)
        || seq.tag != SCEP_BER_SEQUENCE
        || seq.next != bits->vend)
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

    crypto = ck->crypto;

    if (crypto == NULL || crypto->rsa == NULL) {
        return d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, bits->vend - p);
    }

    len = bits->vend - p;

    for (i = 0; i < SCEP_CRYPTO_KEYS; i++) {
        slot = &crypto->keys[i];

        if (slot->len == len && memcmp(slot->der, p, len) == 0) {
            if (!EVP_PKEY_up_ref(slot->pkey)) {
                return NULL;
            }

            *key = slot;
            return slot->pkey;
        }
    }

    /* OSSL_PARAM numbers are unsigned, in the machine's byte order */

    scep_native_order(nbuf, n.vend - nlen, nlen);
    scep_native_order(ebuf, e.vend - elen, elen);

    op[0] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nbuf, nlen);
    op[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, ebuf, elen);
    op[2] = OSSL_PARAM_construct_end();

    pkey = NULL;

    if (EVP_PKEY_fromdata(crypto->rsa, &pkey, EVP_PKEY_PUBLIC_KEY, op) != 1) {
        EVP_PKEY_free(pkey);
        return NULL;
    }

    if (len > SCEP_CRYPTO_KEY_MAX || !EVP_PKEY_up_ref(pkey)) {
        return pkey;
    }

    slot = &crypto->keys[crypto->next];
    crypto->next = (crypto->next + 1) % SCEP_CRYPTO_KEYS;

    scep_crypto_key_clear(slot);

    memcpy(slot->der, p, len);
    slot->len = len;
    slot->pkey = pkey;

    *key = slot;

    return pkey;
}


static void
scep_crypto_key_clear(scep_crypto_key_t *key)
{
    EVP_PKEY_CTX_free(key->pctx);
    EVP_PKEY_free(key->pkey);

    key->pctx = NULL;
    key->pkey = NULL;
    key->len = 0;
    key->digest = 0;
}


/* big-endian "src" as an unsigned number in the machine's byte order */

static void
scep_native_order(unsigned char *dst, const unsigned char *src, size_t n)
{
    size_t  i;
    const union {
        uint16_t       u;
        unsigned char  c;
    } little = { 1 };

    if (!little.c) {
        memcpy(dst, src, n);
        return;
    }

    for (i = 0; i < n; i++) {
        dst[i] = src[n - 1 - i];
    }
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


/*
 * The signer's key hash (scep_result_t), once its signature verified: a
 * SHA-256 over a few hundred bytes, no more than a tenth of what the
 * signature cost.  The SubjectPublicKeyInfo is written afresh, in DER,
 * because the certificate's own octets may be BER and name the same key
 * in several ways (an RSA key under RSASSA-PSS, an EC point compressed):
 * a copy of a message with its certificate encoded otherwise must not
 * count as another signer.
 */

static scep_reason_t
scep_signer_key_hash(scep_check_t *ck, EVP_PKEY *pkey)
{
    int             rc, fetched;
    size_t          len;
    EVP_MD         *md;
    unsigned int    mdlen;
    scep_cert_t    *cert;
    unsigned char   spki[SCEP_SPKI_MAX];

    cert = &ck->cert;

    if (scep_oid_is(&cert->key_alg, scep_oid_ec, sizeof(scep_oid_ec))) {
        len = scep_ec_spki(&cert->key_params, &cert->key, pkey, spki);

    } else {
        len = scep_rsa_spki(&cert->key, spki);
    }

    if (len == 0) {
        return SCEP_REASON_INTERNAL;
    }

    md = NULL;
    fetched = 0;

    if (ck->crypto != NULL) {
        md = ck->crypto->md[scep_digest_index(SCEP_ALG_SHA256)];
    }

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        fetched = 1;

        if (md == NULL) {
            return SCEP_REASON_INTERNAL;
        }
    }

    rc = EVP_Digest(spki, len, ck->res->signer_key_hash, &mdlen, md, NULL);

    if (fetched) {
        EVP_MD_free(md);
    }

    if (!rc || mdlen != SCEP_KEY_HASH_LEN) {
        return SCEP_REASON_INTERNAL;
    }

    ck->res->signer_key_hashed = 1;

    return SCEP_REASON_OK;
}


/*
 * SubjectPublicKeyInfo { rsaEncryption NULL, BIT STRING { RSAPublicKey } }
 * from the modulus and exponent of a key that scep_rsa_key() took, their
 * INTEGERs in their shortest form.  Its length, or 0.
 */

static size_t
scep_rsa_spki(const scep_ber_t *bits, unsigned char *out)
{
    size_t                nlen, elen, npad, epad, seq, bit, all;
    scep_ber_t            el, n, e;
    scep_cur_t            cur;
    unsigned char        *p;
    const unsigned char  *nv, *ev;

    if (!scep_ber_read(bits->val + 1, bits->vend, &el, 1, 0)
        || el.tag != SCEP_BER_SEQUENCE)
    {
        return 0;
    }

    scep_cur_init(&cur, &el);

    if (!scep_cur_integer(&cur, (size_t) -1, &n)
        || !scep_cur_integer(&cur, (size_t) -1, &e))
    {
        return 0;
    }

    nv = n.val;
    ev = e.val;

    while (nv < n.vend - 1 && *nv == 0) {
        nv++;
    }

    while (ev < e.vend - 1 && *ev == 0) {
        ev++;
    }

    nlen = n.vend - nv;
    elen = e.vend - ev;

    if (nlen > SCEP_RSA_MAX_BITS / 8 || elen > SCEP_RSA_MAX_E_BYTES) {
        return 0;
    }

    npad = (*nv & 0x80) != 0;
    epad = (*ev & 0x80) != 0;

    seq = scep_spki_header_len(nlen + npad) + nlen + npad
          + scep_spki_header_len(elen + epad) + elen + epad;
    bit = 1 + scep_spki_header_len(seq) + seq;
    all = sizeof(scep_alg_rsa) + scep_spki_header_len(bit) + bit;

    p = scep_spki_header(out, SCEP_BER_SEQUENCE, all);

    memcpy(p, scep_alg_rsa, sizeof(scep_alg_rsa));
    p += sizeof(scep_alg_rsa);

    p = scep_spki_header(p, SCEP_BER_BIT_STRING, bit);
    *p++ = 0;

    p = scep_spki_header(p, SCEP_BER_SEQUENCE, seq);

    p = scep_spki_header(p, SCEP_BER_INTEGER, nlen + npad);
    if (npad) {
        *p++ = 0;
    }
    memcpy(p, nv, nlen);
    p += nlen;

    p = scep_spki_header(p, SCEP_BER_INTEGER, elen + epad);
    if (epad) {
        *p++ = 0;
    }
    memcpy(p, ev, elen);
    p += elen;

    return p - out;
}


/*
 * SubjectPublicKeyInfo { id-ecPublicKey namedCurve, BIT STRING { point } }
 * with the point uncompressed: as sent if it is, else as OpenSSL read it
 * into "pkey".  Its length, or 0.
 */

static size_t
scep_ec_spki(const scep_ber_t *params, const scep_ber_t *key, EVP_PKEY *pkey,
    unsigned char *out)
{
    int                   ok;
    size_t                plen, clen, half, alg, bit, all;
    BIGNUM               *x, *y;
    unsigned char        *p;
    const unsigned char  *pt;
    unsigned char         point[SCEP_EC_POINT_MAX];

    pt = key->val + 1;
    plen = key->vend - pt;

    if (plen == 0 || plen > SCEP_EC_POINT_MAX) {
        return 0;
    }

    if (pt[0] != 0x04) {

        /* compressed or hybrid */

        half = (EVP_PKEY_get_bits(pkey) + 7) / 8;

        if (half == 0 || 1 + 2 * half > sizeof(point)) {
            return 0;
        }

        x = NULL;
        y = NULL;

        ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x)
             && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y)
             && BN_bn2binpad(x, point + 1, (int) half) == (int) half
             && BN_bn2binpad(y, point + 1 + half, (int) half) == (int) half;

        BN_free(x);
        BN_free(y);

        if (!ok) {
            return 0;
        }

        point[0] = 0x04;
        pt = point;
        plen = 1 + 2 * half;
    }

    /* the curve's OID is one of scep_curves, byte for byte */

    clen = params->vend - params->val;

    alg = 2 + sizeof(scep_oid_ec) + scep_spki_header_len(clen) + clen;
    bit = 1 + plen;
    all = scep_spki_header_len(alg) + alg + scep_spki_header_len(bit) + bit;

    p = scep_spki_header(out, SCEP_BER_SEQUENCE, all);
    p = scep_spki_header(p, SCEP_BER_SEQUENCE, alg);

    p = scep_spki_header(p, SCEP_BER_OID, sizeof(scep_oid_ec));
    memcpy(p, scep_oid_ec, sizeof(scep_oid_ec));
    p += sizeof(scep_oid_ec);

    p = scep_spki_header(p, SCEP_BER_OID, clen);
    memcpy(p, params->val, clen);
    p += clen;

    p = scep_spki_header(p, SCEP_BER_BIT_STRING, bit);
    *p++ = 0;
    memcpy(p, pt, plen);
    p += plen;

    return p - out;
}


/* DER identifier and length octets, for lengths below 65536 */

static size_t
scep_spki_header_len(size_t len)
{
    return (len < 0x80) ? 2 : (len < 0x100) ? 3 : 4;
}


static unsigned char *
scep_spki_header(unsigned char *p, unsigned int tag, size_t len)
{
    *p++ = (unsigned char) tag;

    if (len < 0x80) {
        *p++ = (unsigned char) len;

    } else if (len < 0x100) {
        *p++ = 0x81;
        *p++ = (unsigned char) len;

    } else {
        *p++ = 0x82;
        *p++ = (unsigned char) (len >> 8);
        *p++ = (unsigned char) len;
    }

    return p;
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


/* the index of a digest in scep_crypto_t, or -1 */

static int
scep_digest_index(uint32_t bits)
{
    switch (bits) {

    case SCEP_ALG_MD5:
        return 0;

    case SCEP_ALG_SHA1:
        return 1;

    case SCEP_ALG_SHA224:
        return 2;

    case SCEP_ALG_SHA256:
        return 3;

    case SCEP_ALG_SHA384:
        return 4;

    case SCEP_ALG_SHA512:
        return 5;

    default:
        return -1;
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
