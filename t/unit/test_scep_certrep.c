
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Unit tests of scep_certrep.c, and of the SubjectPublicKeyInfo that
 * scep_cacert_parse() points to; prints TAP.  The answers are made here
 * with OpenSSL, as a back end signs them.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep_certrep.h"

#include "cms.h"
#include "tap.h"


#define OID_MESSAGE_TYPE     "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS       "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO        "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE     "2.16.840.1.113733.1.9.5"
#define OID_RECIPIENT_NONCE  "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID   "2.16.840.1.113733.1.9.7"

#define TID                  "7D3C1A9B2E5F4A60"


/* what a test answer is made of; spec_init() sets a SUCCESS CertRep */
typedef struct {
    const char        *type;          /* NULL: no messageType */
    const char        *status;        /* NULL: no pkiStatus */
    const char        *fail_info;     /* NULL: no failInfo */
    const char        *tid;
    int                sender_nonce;
    int                recipient_nonce;   /* its length, 0: none */
    int                tid_twice;
    int                content;       /* an envelope as eContent */
    int                signers;
    int                keyid;
    int                pss;
    const EVP_MD      *md;
    EVP_PKEY          *key;
    X509              *cert;
} spec_t;


static EVP_PKEY       *ra_key, *ec_key, *device_key, *other_key;
static X509           *ra_cert, *ec_cert, *device_cert, *ca_cert;
static scep_crypto_t  *test_crypto;

static const unsigned char  sender_bytes[16] = "0123456789abcdef";
static const unsigned char  recipient_bytes[16] = "fedcba9876543210";


static void spec_init(spec_t *s);
static buf_t make_certrep(const spec_t *s);
static buf_t make_pkcsreq(void);
static scep_response_t parse_spec(const spec_t *s, scep_certrep_t *rep);
static scep_response_t verify_spec(const spec_t *s, EVP_PKEY *key);
static scep_response_t verify_buf(const buf_t *b, EVP_PKEY *key);
static buf_t spki_of(EVP_PKEY *key);
static unsigned char *skip_header(unsigned char *p, size_t *len);
static void test_parse(void);
static void test_not_certrep(void);
static void test_match(void);
static void test_verify(void);
static void test_tampered(void);
static void test_names(void);
static void test_cacert_spki(void);


static void
spec_init(spec_t *s)
{
    memset(s, 0, sizeof(spec_t));

    s->type = "3";
    s->status = "0";
    s->tid = TID;
    s->sender_nonce = 1;
    s->recipient_nonce = 16;
    s->content = 1;
    s->signers = 1;
    s->md = EVP_sha256();
    s->key = ra_key;
    s->cert = ra_cert;
}


/*
 * A CertRep as a back end makes it: its content an envelope for the
 * device (what it holds does not matter here), or none at all
 */

static buf_t
make_certrep(const spec_t *s)
{
    int                 i;
    BIO                *in;
    buf_t               b, inner;
    unsigned int        flags, sflags;
    CMS_SignerInfo     *si;
    CMS_ContentInfo    *cms, *env;
    STACK_OF(X509)     *rcpt;
    static const char   payload[] = "a degenerate certs-only, say";

    inner.p = NULL;
    inner.n = 0;

    if (s->content) {
        rcpt = sk_X509_new_null();
        in = BIO_new_mem_buf(payload, sizeof(payload) - 1);

        if (rcpt == NULL || in == NULL || !sk_X509_push(rcpt, device_cert)) {
            bail("an envelope's recipients");
        }

        env = CMS_encrypt(rcpt, in, EVP_aes_256_cbc(), CMS_BINARY);
        if (env == NULL) {
            bail("CMS_encrypt");
        }

        inner = der_of(env);

        CMS_ContentInfo_free(env);
        sk_X509_free(rcpt);
        BIO_free(in);
    }

    in = BIO_new_mem_buf(inner.p ? (void *) inner.p : (void *) "",
                         (int) inner.n);
    if (in == NULL) {
        bail("BIO_new_mem_buf");
    }

    /* no content: detached, the messageDigest of nothing */

    flags = CMS_PARTIAL | CMS_BINARY | (s->content ? 0 : CMS_DETACHED);

    cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (cms == NULL) {
        bail("CMS_sign");
    }

    sflags = CMS_NOSMIMECAP | (s->keyid ? CMS_USE_KEYID : 0)
             | (s->pss ? CMS_KEY_PARAM : 0);

    for (i = 0; i < s->signers; i++) {
        si = CMS_add1_signer(cms, s->cert, s->key, s->md,
                             sflags | (i > 0 ? CMS_NOCERTS : 0));
        if (si == NULL) {
            bail("CMS_add1_signer");
        }

        if (s->pss
            && EVP_PKEY_CTX_set_rsa_padding(CMS_SignerInfo_get0_pkey_ctx(si),
                                            RSA_PKCS1_PSS_PADDING) <= 0)
        {
            bail("PSS padding");
        }

        if (s->type != NULL) {
            add_attr(si, OID_MESSAGE_TYPE, V_ASN1_PRINTABLESTRING, s->type,
                     strlen(s->type));
        }

        if (s->status != NULL) {
            add_attr(si, OID_PKI_STATUS, V_ASN1_PRINTABLESTRING, s->status,
                     strlen(s->status));
        }

        if (s->fail_info != NULL) {
            add_attr(si, OID_FAIL_INFO, V_ASN1_PRINTABLESTRING, s->fail_info,
                     strlen(s->fail_info));
        }

        add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, s->tid,
                 strlen(s->tid));

        if (s->tid_twice) {
            add_attr(si, OID_TRANSACTION_ID, V_ASN1_PRINTABLESTRING, s->tid,
                     strlen(s->tid));
        }

        if (s->sender_nonce) {
            add_attr(si, OID_SENDER_NONCE, V_ASN1_OCTET_STRING, sender_bytes,
                     16);
        }

        if (s->recipient_nonce) {
            add_attr(si, OID_RECIPIENT_NONCE, V_ASN1_OCTET_STRING,
                     recipient_bytes, s->recipient_nonce);
        }
    }

    if (!CMS_final(cms, in, NULL, CMS_BINARY)) {
        bail("CMS_final");
    }

    b = der_of(cms);

    CMS_ContentInfo_free(cms);
    BIO_free(in);
    OPENSSL_free(inner.p);

    return b;
}


/* a PKCSReq of the device, as the gateway forwards it: messageType 19 */

static buf_t
make_pkcsreq(void)
{
    spec_t  s;

    spec_init(&s);
    s.type = "19";
    s.status = NULL;
    s.recipient_nonce = 0;
    s.key = device_key;
    s.cert = device_cert;

    return make_certrep(&s);
}


static scep_response_t
parse_spec(const spec_t *s, scep_certrep_t *rep)
{
    buf_t            b;
    scep_response_t  rc;

    b = make_certrep(s);
    rc = scep_certrep_parse(b.p, b.n, rep);
    OPENSSL_free(b.p);

    return rc;
}


static scep_response_t
verify_spec(const spec_t *s, EVP_PKEY *key)
{
    buf_t            b;
    scep_response_t  rc;

    b = make_certrep(s);
    rc = verify_buf(&b, key);
    OPENSSL_free(b.p);

    return rc;
}


/*
 * The verdict with a scep_crypto_t, twice (its key made, then kept), and
 * without: they must agree
 */

static scep_response_t
verify_buf(const buf_t *b, EVP_PKEY *key)
{
    buf_t            spki;
    scep_response_t  r0, r1, r2;

    spki = spki_of(key);

    r0 = scep_certrep_verify(b->p, b->n, spki.p, spki.n, NULL);
    r1 = scep_certrep_verify(b->p, b->n, spki.p, spki.n, test_crypto);
    r2 = scep_certrep_verify(b->p, b->n, spki.p, spki.n, test_crypto);

    OPENSSL_free(spki.p);

    if (ERR_peek_error() != 0) {
        printf("# OpenSSL errors left queued\n");
        return SCEP_RESPONSE_INTERNAL;
    }

    if (r0 != r1 || r1 != r2) {
        printf("# verdicts differ: %s, %s, %s\n", scep_response_token(r0),
               scep_response_token(r1), scep_response_token(r2));
        return SCEP_RESPONSE_INTERNAL;
    }

    return r0;
}


static buf_t
spki_of(EVP_PKEY *key)
{
    int    n;
    buf_t  b;

    b.p = NULL;
    n = i2d_PUBKEY(key, &b.p);

    if (n <= 0) {
        bail("i2d_PUBKEY");
    }

    b.n = n;

    return b;
}


static void
test_parse(void)
{
    int              i, n;
    char             what[80], info[2];
    buf_t            b;
    spec_t           s;
    scep_certrep_t   rep;
    unsigned char   *name, id[SCEP_CERT_ID_LEN];
    scep_response_t  rc;
    const ASN1_OCTET_STRING  *ski;

    /* the answer is kept while "rep" points into it */

    spec_init(&s);
    b = make_certrep(&s);
    rc = scep_certrep_parse(b.p, b.n, &rep);

    ok(rc == SCEP_RESPONSE_OK, "SUCCESS: parsed");
    ok(rep.pki_status == SCEP_PKI_SUCCESS && rep.fail_info == SCEP_FAIL_NONE,
       "SUCCESS: status, no failInfo");
    ok(rep.transaction_id_len == strlen(TID)
       && strcmp(rep.transaction_id, TID) == 0,
       "SUCCESS: transactionID");
    ok(rep.has_sender_nonce && rep.has_recipient_nonce
       && memcmp(rep.sender_nonce, sender_bytes, 16) == 0
       && memcmp(rep.recipient_nonce, recipient_bytes, 16) == 0,
       "SUCCESS: both nonces");

    ok(rep.signer_kind == SCEP_RECIPIENT_ISSUER_SERIAL
       && rep.signer_serial_len == 2
       && rep.signer_serial[0] == 0x13 && rep.signer_serial[1] == 0x88,
       "signer by issuer and serial (5000)");

    name = NULL;
    n = i2d_X509_NAME(X509_get_issuer_name(ra_cert), &name);

    ok(n > 0 && rep.signer_issuer_len == (size_t) n
       && rep.signer_issuer > b.p
       && rep.signer_issuer + n <= b.p + b.n
       && memcmp(rep.signer_issuer, name, n) == 0,
       "signer's issuer: the RA certificate's, in the answer");
    OPENSSL_free(name);

    ok(scep_cert_id(rep.signer_issuer, rep.signer_issuer_len,
                    rep.signer_serial, rep.signer_serial_len, 0, id) == 0
       && rep.has_signer_id
       && memcmp(id, rep.signer_id, SCEP_CERT_ID_LEN) == 0,
       "signer_id is scep_cert_id() of them");
    OPENSSL_free(b.p);

    s.keyid = 1;
    b = make_certrep(&s);
    rc = scep_certrep_parse(b.p, b.n, &rep);
    ski = X509_get0_subject_key_id(ra_cert);

    ok(rc == SCEP_RESPONSE_OK && rep.signer_kind == SCEP_RECIPIENT_KEY_ID
       && ski != NULL
       && rep.signer_key_id_len == (size_t) ASN1_STRING_length(ski)
       && memcmp(rep.signer_key_id, ASN1_STRING_get0_data(ski),
                 rep.signer_key_id_len) == 0,
       "signer by subjectKeyIdentifier");

    ok(scep_key_id(rep.signer_key_id, rep.signer_key_id_len, id) == 0
       && rep.has_signer_id
       && memcmp(id, rep.signer_id, SCEP_CERT_ID_LEN) == 0,
       "signer_id is scep_key_id() of it");
    OPENSSL_free(b.p);

    spec_init(&s);
    s.status = "3";
    s.content = 0;
    rc = parse_spec(&s, &rep);

    ok(rc == SCEP_RESPONSE_OK && rep.pki_status == SCEP_PKI_PENDING
       && rep.fail_info == SCEP_FAIL_NONE,
       "PENDING without content");

    for (i = 0; i < SCEP_FAIL_N; i++) {
        spec_init(&s);
        s.status = "2";
        s.content = 0;
        info[0] = (char) ('0' + i);
        info[1] = '\0';
        s.fail_info = info;
        rc = parse_spec(&s, &rep);

        snprintf(what, sizeof(what), "FAILURE with failInfo %d (%s)", i,
                 scep_fail_info_name(i));
        ok(rc == SCEP_RESPONSE_OK && rep.pki_status == SCEP_PKI_FAILURE
           && rep.fail_info == i, what);
    }

    spec_init(&s);
    s.status = "2";
    s.content = 0;
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && rep.fail_info == SCEP_FAIL_NONE,
       "FAILURE without failInfo: NONE");

    s.fail_info = "7";
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && rep.fail_info == SCEP_FAIL_NONE,
       "FAILURE with an unknown failInfo: NONE");

    s.fail_info = "x";
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && rep.fail_info == SCEP_FAIL_NONE,
       "FAILURE with a failInfo not a number: NONE");

    s.content = 1;
    s.fail_info = "2";
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && rep.fail_info == SCEP_FAIL_BAD_REQUEST,
       "FAILURE with content");

    spec_init(&s);
    s.fail_info = "2";
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && rep.fail_info == SCEP_FAIL_NONE,
       "failInfo of a SUCCESS ignored");

    spec_init(&s);
    s.recipient_nonce = 0;
    s.sender_nonce = 0;
    rc = parse_spec(&s, &rep);
    ok(rc == SCEP_RESPONSE_OK && !rep.has_sender_nonce
       && !rep.has_recipient_nonce,
       "no nonces: parsed, none flagged");

    spec_init(&s);
    s.type = "003";
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_OK,
       "messageType \"003\" is 3");
}


static void
test_not_certrep(void)
{
    buf_t            b;
    spec_t           s;
    scep_certrep_t   rep;
    unsigned char   *p;

    static const char  html[] =
        "<html><body><h1>500 Internal Server Error</h1></body></html>";

    ok(scep_certrep_parse((const unsigned char *) html, sizeof(html) - 1,
                          &rep)
       == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: an HTML page");

    ok(scep_certrep_parse(NULL, 0, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: nothing");

    b = make_pkcsreq();
    ok(scep_certrep_parse(b.p, b.n, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: a PKCSReq");
    OPENSSL_free(b.p);

    spec_init(&s);
    b = make_certrep(&s);

    ok(scep_certrep_parse(b.p, b.n - 1, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: truncated by one byte");
    ok(scep_certrep_parse(b.p, b.n / 2, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: truncated by half");

    p = OPENSSL_realloc(b.p, b.n + 1);
    if (p == NULL) {
        bail("no memory");
    }

    b.p = p;
    b.p[b.n] = 0;

    ok(scep_certrep_parse(b.p, b.n + 1, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: a trailing byte");
    ok(scep_certrep_parse(b.p, b.n, &rep) == SCEP_RESPONSE_OK,
       "the same without it: ok");
    OPENSSL_free(b.p);

    spec_init(&s);
    s.type = "19";
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: messageType 19");

    s.type = NULL;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: no messageType");

    spec_init(&s);
    s.status = "1";
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: pkiStatus 1");

    s.status = "SUCCESS";
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: pkiStatus not a number");

    s.status = NULL;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: no pkiStatus");

    spec_init(&s);
    s.signers = 2;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: two signers");

    spec_init(&s);
    s.content = 0;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: SUCCESS without content");

    spec_init(&s);
    s.tid = "bad_id";
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: transactionID not PrintableString characters");

    spec_init(&s);
    s.tid_twice = 1;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: two transactionID attributes");

    spec_init(&s);
    s.recipient_nonce = 8;
    ok(parse_spec(&s, &rep) == SCEP_RESPONSE_NOT_CERTREP,
       "not_certrep: a recipientNonce of 8 bytes");
}


static void
test_match(void)
{
    spec_t          s;
    scep_result_t   req;
    scep_certrep_t  rep;

    spec_init(&s);

    if (parse_spec(&s, &rep) != SCEP_RESPONSE_OK) {
        bail("a CertRep that parses");
    }

    memset(&req, 0, sizeof(scep_result_t));
    req.transaction_id_len = strlen(TID);
    memcpy(req.transaction_id, TID, req.transaction_id_len + 1);
    memcpy(req.sender_nonce, recipient_bytes, 16);

    ok(scep_certrep_match(&rep, &req) == SCEP_RESPONSE_OK, "match: ok");

    req.transaction_id[0] = 'X';
    ok(scep_certrep_match(&rep, &req) == SCEP_RESPONSE_TRANSACTION_MISMATCH,
       "match: another transactionID");

    req.transaction_id[0] = TID[0];
    req.transaction_id_len--;
    ok(scep_certrep_match(&rep, &req) == SCEP_RESPONSE_TRANSACTION_MISMATCH,
       "match: a transactionID one shorter");

    req.transaction_id_len++;
    req.sender_nonce[15] ^= 1;
    ok(scep_certrep_match(&rep, &req) == SCEP_RESPONSE_NONCE_MISMATCH,
       "match: recipientNonce is not the senderNonce");

    req.sender_nonce[15] ^= 1;
    rep.has_recipient_nonce = 0;
    ok(scep_certrep_match(&rep, &req) == SCEP_RESPONSE_NONCE_MISMATCH,
       "match: no recipientNonce");
}


static void
test_verify(void)
{
    spec_t  s;

    spec_init(&s);
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK,
       "verify: SUCCESS, sha256");
    ok(verify_spec(&s, other_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "verify: another key: bad_signature");
    ok(verify_spec(&s, ec_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "verify: an EC key for an RSA signature: bad_signature");

    s.md = EVP_sha1();
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK, "verify: sha1");

    s.md = EVP_sha512();
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK, "verify: sha512");

    s.md = EVP_sha256();
    s.pss = 1;
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK, "verify: RSA-PSS");

    spec_init(&s);
    s.key = ec_key;
    s.cert = ec_cert;
    ok(verify_spec(&s, ec_key) == SCEP_RESPONSE_OK, "verify: ECDSA");
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "verify: ECDSA with an RSA key: bad_signature");

    spec_init(&s);
    s.status = "2";
    s.fail_info = "4";
    s.content = 0;
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK,
       "verify: FAILURE without content");
    ok(verify_spec(&s, other_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "verify: FAILURE with another key: bad_signature");

    s.status = "3";
    s.fail_info = NULL;
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_OK,
       "verify: PENDING without content");

    spec_init(&s);
    s.type = "19";
    ok(verify_spec(&s, ra_key) == SCEP_RESPONSE_NOT_CERTREP,
       "verify: not a CertRep: not_certrep");
}


static void
test_tampered(void)
{
    buf_t           b;
    size_t          len;
    spec_t          s;
    unsigned char  *p;

    /* eContentType data, then [0] EXPLICIT eContent */
    static const unsigned char  data_econtent[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        0xa0
    };

    spec_init(&s);

    /* the transactionID among the signed attributes */

    b = make_certrep(&s);
    p = find(&b, TID, strlen(TID));
    if (p == NULL) {
        bail("no transactionID in the answer");
    }

    p[0] ^= 0x01;
    ok(verify_buf(&b, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "tampered transactionID: bad_signature");
    OPENSSL_free(b.p);

    /* the recipientNonce */

    b = make_certrep(&s);
    p = find(&b, recipient_bytes, 16);
    if (p == NULL) {
        bail("no recipientNonce in the answer");
    }

    p[3] ^= 0x01;
    ok(verify_buf(&b, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "tampered recipientNonce: bad_signature");
    OPENSSL_free(b.p);

    /* pkiStatus "0" to "2": a SUCCESS turned into a FAILURE */

    b = make_certrep(&s);
    p = find(&b, "\x13\x01" "0", 3);
    if (p == NULL) {
        bail("no pkiStatus in the answer");
    }

    p[2] = '2';
    ok(verify_buf(&b, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "tampered pkiStatus: bad_signature");
    OPENSSL_free(b.p);

    /* the last byte of the content: of the encrypted octets */

    b = make_certrep(&s);
    p = find(&b, data_econtent, sizeof(data_econtent));
    if (p == NULL) {
        bail("no eContent in the answer");
    }

    p = skip_header(p + sizeof(data_econtent) - 1, &len);
    p = skip_header(p, &len);

    p[len - 1] ^= 0x01;
    ok(verify_buf(&b, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "tampered content: bad_signature");
    OPENSSL_free(b.p);

    /* the signature */

    b = make_certrep(&s);
    b.p[b.n - 1] ^= 0x01;
    ok(verify_buf(&b, ra_key) == SCEP_RESPONSE_BAD_SIGNATURE,
       "tampered signature: bad_signature");

    ok(scep_certrep_verify(b.p, b.n, (const unsigned char *) "\x30\x00", 2,
                           test_crypto)
       == SCEP_RESPONSE_BAD_SIGNATURE,
       "a key that is not a SubjectPublicKeyInfo: bad_signature");
    OPENSSL_free(b.p);
}


/* the contents of the DER element at "p", and their length */

static unsigned char *
skip_header(unsigned char *p, size_t *len)
{
    size_t  i, n;

    if (p[1] < 0x80) {
        *len = p[1];
        return p + 2;
    }

    n = p[1] & 0x7f;
    *len = 0;

    for (i = 0; i < n; i++) {
        *len = *len << 8 | p[2 + i];
    }

    return p + 2 + n;
}


static void
test_names(void)
{
    ok(strcmp(scep_response_token(SCEP_RESPONSE_OK), "ok") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_NOT_CERTREP),
                 "not_certrep") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_BAD_SIGNATURE),
                 "bad_signature") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_UNKNOWN_SIGNER),
                 "unknown_signer") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_TRANSACTION_MISMATCH),
                 "transaction_mismatch") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_NONCE_MISMATCH),
                 "nonce_mismatch") == 0
       && strcmp(scep_response_token(SCEP_RESPONSE_INTERNAL),
                 "internal_error") == 0
       && strcmp(scep_response_token((scep_response_t) 99),
                 "internal_error") == 0,
       "response tokens");

    ok(strcmp(scep_pki_status_name(0), "SUCCESS") == 0
       && strcmp(scep_pki_status_name(2), "FAILURE") == 0
       && strcmp(scep_pki_status_name(3), "PENDING") == 0
       && scep_pki_status_name(1) == NULL
       && scep_pki_status_name(-1) == NULL,
       "pkiStatus names");

    ok(strcmp(scep_fail_info_name(0), "badAlg") == 0
       && strcmp(scep_fail_info_name(1), "badMessageCheck") == 0
       && strcmp(scep_fail_info_name(2), "badRequest") == 0
       && strcmp(scep_fail_info_name(3), "badTime") == 0
       && strcmp(scep_fail_info_name(4), "badCertId") == 0
       && scep_fail_info_name(5) == NULL
       && scep_fail_info_name(-1) == NULL,
       "failInfo names");
}


/*
 * The SubjectPublicKeyInfo pointers of scep_cacert_parse(): into the
 * body, the DER of i2d_X509_PUBKEY(), for one certificate and for a
 * certs-only; and an answer checked with the RA's from it
 */

static void
test_cacert_spki(void)
{
    int                  i, n, good;
    buf_t                b, one, rep;
    PKCS7               *p7;
    unsigned char       *der;
    scep_ca_answer_t     a;
    X509                *certs[2];
    spec_t               s;
    scep_response_t      rc;

    certs[0] = ca_cert;
    certs[1] = ra_cert;

    one.p = NULL;
    n = i2d_X509(ca_cert, &one.p);
    if (n <= 0) {
        bail("i2d_X509");
    }

    one.n = n;

    ok(scep_cacert_parse(one.p, one.n, NULL, &a, NULL, 0) == 0
       && a.ncerts == 1
       && a.certs[0].spki >= one.p
       && a.certs[0].spki + a.certs[0].spki_len <= one.p + one.n,
       "one certificate: its SubjectPublicKeyInfo points into the body");

    der = NULL;
    n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(ca_cert), &der);
    ok(n > 0 && (size_t) n == a.certs[0].spki_len
       && memcmp(der, a.certs[0].spki, n) == 0,
       "one certificate: SubjectPublicKeyInfo is i2d_X509_PUBKEY()'s");
    OPENSSL_free(der);
    OPENSSL_free(one.p);

    p7 = PKCS7_new();

    if (p7 == NULL
        || !PKCS7_set_type(p7, NID_pkcs7_signed)
        || !PKCS7_content_new(p7, NID_pkcs7_data)
        || !PKCS7_add_certificate(p7, ca_cert)
        || !PKCS7_add_certificate(p7, ra_cert))
    {
        bail("a certs-only");
    }

    b.p = NULL;
    n = i2d_PKCS7(p7, &b.p);
    if (n <= 0) {
        bail("i2d_PKCS7");
    }

    b.n = n;
    PKCS7_free(p7);

    ok(scep_cacert_parse(b.p, b.n, "application/x-x509-ca-ra-cert", &a,
                         NULL, 0) == 0
       && a.ncerts == 2,
       "certs-only: parsed");

    good = 1;

    for (i = 0; i < 2; i++) {
        der = NULL;
        n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certs[i]), &der);

        good &= n > 0 && a.certs[i].spki != NULL
                && a.certs[i].spki >= b.p
                && a.certs[i].spki + a.certs[i].spki_len <= b.p + b.n
                && (size_t) n == a.certs[i].spki_len
                && memcmp(der, a.certs[i].spki, n) == 0;

        OPENSSL_free(der);
    }

    ok(good, "certs-only: each SubjectPublicKeyInfo is i2d_X509_PUBKEY()'s,"
       " in the body");

    spec_init(&s);
    rep = make_certrep(&s);

    rc = scep_certrep_verify(rep.p, rep.n, a.certs[1].spki,
                             a.certs[1].spki_len, test_crypto);
    ok(rc == SCEP_RESPONSE_OK, "verify with the RA's key from GetCACert");

    rc = scep_certrep_verify(rep.p, rep.n, a.certs[0].spki,
                             a.certs[0].spki_len, test_crypto);
    ok(rc == SCEP_RESPONSE_BAD_SIGNATURE,
       "verify with the CA's key from GetCACert: bad_signature");

    OPENSSL_free(rep.p);
    OPENSSL_free(b.p);
}


int
main(void)
{
    EVP_PKEY  *ca_key;

    ca_key = EVP_RSA_gen(2048);
    ra_key = EVP_RSA_gen(2048);
    other_key = EVP_RSA_gen(2048);
    device_key = EVP_RSA_gen(1024);
    ec_key = EVP_EC_gen("P-256");

    if (ca_key == NULL || ra_key == NULL || other_key == NULL
        || device_key == NULL || ec_key == NULL)
    {
        bail("generating keys");
    }

    ca_cert = make_cert(ca_key, ca_key, "test-ca", 1, CERT_SKI|CERT_CA);
    ra_cert = make_cert(ra_key, ca_key, "test-ra", 5000, CERT_SKI);
    ec_cert = make_cert(ec_key, ca_key, "test-ec-ra", 5001, CERT_SKI);
    device_cert = make_cert(device_key, device_key, "device", 7, CERT_SKI);

    test_crypto = scep_crypto_new();
    if (test_crypto == NULL) {
        bail("scep_crypto_new()");
    }

    test_parse();
    test_not_certrep();
    test_match();
    test_verify();
    test_tampered();
    test_names();
    test_cacert_spki();

    scep_crypto_free(test_crypto);

    X509_free(ca_cert);
    X509_free(ra_cert);
    X509_free(ec_cert);
    X509_free(device_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ra_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(device_key);
    EVP_PKEY_free(ec_key);

    return tap_done();
}
