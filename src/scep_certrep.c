
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A back end's answer to a PKIOperation read as a CertRep: the CMS walk
 * and the attribute readers of the pkiMessage checks, with the rules of
 * an answer instead of a request, and the signature checked with a key
 * the caller names (the RA's, from GetCACert) rather than one the
 * message carries.  Nothing is decrypted.
 */


#include <string.h>

#include <openssl/err.h>

#include "scep_message_int.h"
#include "scep_certrep.h"


#define SCEP_MESSAGE_CERTREP   3


static scep_response_t scep_certrep_read(scep_check_t *ck,
    const unsigned char *der, size_t len, scep_certrep_t *rep);
static scep_response_t scep_certrep_attributes(scep_check_t *ck,
    scep_certrep_t *rep);
static int scep_certrep_status(const scep_attrs_t *a, scep_certrep_t *rep);
static int scep_certrep_nonces(const scep_attrs_t *a, scep_certrep_t *rep);
static int scep_certrep_nonce(const scep_attrs_t *a, unsigned int kind,
    unsigned char *nonce, int *has);
static int scep_certrep_signer(const scep_check_t *ck, scep_certrep_t *rep);
static void scep_certrep_signer_id(scep_certrep_t *rep);
static scep_response_t scep_certrep_check(scep_check_t *ck,
    const unsigned char *spki, size_t spki_len);


static const char  *scep_response_tokens[] = {
    "ok",
    "not_certrep",
    "bad_signature",
    "unknown_signer",
    "transaction_mismatch",
    "nonce_mismatch",
    "internal_error"
};


static const char  *scep_fail_info_names[] = {
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId"
};


scep_response_t
scep_certrep_parse(const unsigned char *der, size_t len,
    scep_certrep_t *rep)
{
    scep_check_t     ck;
    scep_result_t    res;
    scep_response_t  rc;

    memset(&ck, 0, sizeof(scep_check_t));
    memset(&res, 0, sizeof(scep_result_t));
    ck.res = &res;

    rc = scep_certrep_read(&ck, der, len, rep);

    if (rc == SCEP_RESPONSE_OK) {
        scep_certrep_signer_id(rep);
    }

    scep_check_free(&ck);

    return rc;
}


scep_response_t
scep_certrep_match(const scep_certrep_t *rep, const scep_result_t *req)
{
    if (rep->transaction_id_len != req->transaction_id_len
        || memcmp(rep->transaction_id, req->transaction_id,
                  rep->transaction_id_len) != 0)
    {
        return SCEP_RESPONSE_TRANSACTION_MISMATCH;
    }

    if (!rep->has_recipient_nonce
        || memcmp(rep->recipient_nonce, req->sender_nonce, SCEP_NONCE_LEN)
           != 0)
    {
        return SCEP_RESPONSE_NONCE_MISMATCH;
    }

    return SCEP_RESPONSE_OK;
}


scep_response_t
scep_certrep_verify(const unsigned char *der, size_t len,
    const unsigned char *spki, size_t spki_len, scep_crypto_t *crypto)
{
    scep_check_t     ck;
    scep_result_t    res;
    scep_certrep_t   rep;
    scep_response_t  rc;

    memset(&ck, 0, sizeof(scep_check_t));
    memset(&res, 0, sizeof(scep_result_t));

    ck.res = &res;
    ck.crypto = crypto;

    rc = scep_certrep_read(&ck, der, len, &rep);

    if (rc == SCEP_RESPONSE_OK) {
        rc = scep_certrep_check(&ck, spki, spki_len);
    }

    scep_check_free(&ck);

    return rc;
}


const char *
scep_response_token(scep_response_t check)
{
    if ((unsigned int) check >= scep_nelts(scep_response_tokens)) {
        return "internal_error";
    }

    return scep_response_tokens[check];
}


const char *
scep_pki_status_name(int status)
{
    switch (status) {

    case SCEP_PKI_SUCCESS:
        return "SUCCESS";

    case SCEP_PKI_FAILURE:
        return "FAILURE";

    case SCEP_PKI_PENDING:
        return "PENDING";

    default:
        return NULL;
    }
}


const char *
scep_fail_info_name(int info)
{
    if (info < 0 || info >= SCEP_FAIL_N) {
        return NULL;
    }

    return scep_fail_info_names[info];
}


/*
 * The structure and the attributes, as both parse and verify read them:
 * the CMS walk of the request checks, which takes any SignedData, then
 * the rules of a CertRep.  "rep" is zeroed first and filled as far as
 * the answer is a CertRep.
 */

static scep_response_t
scep_certrep_read(scep_check_t *ck, const unsigned char *der, size_t len,
    scep_certrep_t *rep)
{
    memset(rep, 0, sizeof(scep_certrep_t));
    rep->pki_status = SCEP_PKI_NONE;
    rep->fail_info = SCEP_FAIL_NONE;

    ERR_clear_error();

    if (scep_parse_content_info(ck, der, len) != SCEP_REASON_OK
        || ck->signers != 1
        || !scep_content_is_data(ck))
    {
        return SCEP_RESPONSE_NOT_CERTREP;
    }

    return scep_certrep_attributes(ck, rep);
}


/*
 * messageType "3", pkiStatus and transactionID once each; nonces at
 * most once.  A SUCCESS carries the certificates, so it has content; a
 * FAILURE or PENDING may have none.
 */

static scep_response_t
scep_certrep_attributes(scep_check_t *ck, scep_certrep_t *rep)
{
    int           type;
    scep_attrs_t  a;

    if (scep_find_attributes(ck, &a) != SCEP_REASON_OK
        || !scep_attribute_once(&a, SCEP_ATTR_MESSAGE_TYPE)
        || !scep_attribute_number(&a.values[SCEP_ATTR_MESSAGE_TYPE], &type)
        || type != SCEP_MESSAGE_CERTREP
        || !scep_attribute_once(&a, SCEP_ATTR_TRANSACTION_ID)
        || !scep_attribute_transaction_id(&a.values[SCEP_ATTR_TRANSACTION_ID],
                                          rep->transaction_id,
                                          &rep->transaction_id_len)
        || !scep_certrep_status(&a, rep)
        || (rep->pki_status == SCEP_PKI_SUCCESS && ck->econtent.tag == 0)
        || !scep_certrep_nonces(&a, rep)
        || !scep_certrep_signer(ck, rep))
    {
        return SCEP_RESPONSE_NOT_CERTREP;
    }

    return SCEP_RESPONSE_OK;
}


/*
 * pkiStatus 0, 2 or 3; failInfo 0 to 4 with a FAILURE, NONE when it is
 * missing, repeated, unknown or not a number: the outcome is the
 * pkiStatus, and the reason only a detail of it
 */

static int
scep_certrep_status(const scep_attrs_t *a, scep_certrep_t *rep)
{
    int  status, info;

    if (!scep_attribute_once(a, SCEP_ATTR_PKI_STATUS)
        || !scep_attribute_number(&a->values[SCEP_ATTR_PKI_STATUS], &status)
        || scep_pki_status_name(status) == NULL)
    {
        return 0;
    }

    rep->pki_status = status;

    if (status == SCEP_PKI_FAILURE
        && scep_attribute_once(a, SCEP_ATTR_FAIL_INFO)
        && scep_attribute_number(&a->values[SCEP_ATTR_FAIL_INFO], &info)
        && scep_fail_info_name(info) != NULL)
    {
        rep->fail_info = info;
    }

    return 1;
}


/* each nonce absent, or there once as a 16-byte OCTET STRING */

static int
scep_certrep_nonces(const scep_attrs_t *a, scep_certrep_t *rep)
{
    return scep_certrep_nonce(a, SCEP_ATTR_SENDER_NONCE, rep->sender_nonce,
                              &rep->has_sender_nonce)
           && scep_certrep_nonce(a, SCEP_ATTR_RECIPIENT_NONCE,
                                 rep->recipient_nonce,
                                 &rep->has_recipient_nonce);
}


static int
scep_certrep_nonce(const scep_attrs_t *a, unsigned int kind,
    unsigned char *nonce, int *has)
{
    if (a->values[kind].tag == 0) {
        return 1;
    }

    *has = scep_attribute_once(a, kind)
           && scep_attribute_nonce(&a->values[kind], nonce);

    return *has;
}


/*
 * The signer as the SignerInfo's sid names it: IssuerAndSerialNumber,
 * read already by the walk, or [0] IMPLICIT SubjectKeyIdentifier
 */

static int
scep_certrep_signer(const scep_check_t *ck, scep_certrep_t *rep)
{
    scep_ber_t  name, serial;
    scep_cur_t  in;

    if (ck->sid.tag != SCEP_BER_SEQUENCE) {
        rep->signer_kind = SCEP_RECIPIENT_KEY_ID;
        rep->signer_key_id = ck->sid.val;
        rep->signer_key_id_len = ck->sid.vend - ck->sid.val;
        return 1;
    }

    scep_cur_init(&in, &ck->sid);

    if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
        || !scep_cur_next(&in, SCEP_BER_INTEGER, &serial))
    {
        return 0;
    }

    rep->signer_kind = SCEP_RECIPIENT_ISSUER_SERIAL;
    rep->signer_issuer = name.hdr;
    rep->signer_issuer_len = name.next - name.hdr;
    rep->signer_serial = serial.val;
    rep->signer_serial_len = serial.vend - serial.val;

    return 1;
}


/* what the signer is compared with: its scep_cert_id() or scep_key_id() */

static void
scep_certrep_signer_id(scep_certrep_t *rep)
{
    int  rc;

    if (rep->signer_kind == SCEP_RECIPIENT_ISSUER_SERIAL) {
        rc = scep_cert_id(rep->signer_issuer, rep->signer_issuer_len,
                          rep->signer_serial, rep->signer_serial_len, 0,
                          rep->signer_id);

    } else {
        rc = scep_key_id(rep->signer_key_id, rep->signer_key_id_len,
                         rep->signer_id);
    }

    rep->has_signer_id = (rc == 0);
}


/*
 * The messageDigest of the content, when there is one, and the signature
 * over the signed attributes, with "spki" put where the request checks
 * find the signer's certificate: its RSA key is then one that
 * scep_crypto_t keeps, which makes the RA's next answer cheaper.
 */

static scep_response_t
scep_certrep_check(scep_check_t *ck, const unsigned char *spki,
    size_t spki_len)
{
    scep_ber_t     el;
    scep_reason_t  reason;

    if (spki == NULL
        || !scep_ber_read(spki, spki + spki_len, &el, 1, 0)
        || el.tag != SCEP_BER_SEQUENCE
        || el.next != spki + spki_len
        || !scep_parse_spki(&el, &ck->cert))
    {
        return SCEP_RESPONSE_BAD_SIGNATURE;
    }

    /* any digest the request checks know, if the SignedData lists it */

    ck->res->digest = scep_oid_bits(scep_digests, scep_nelts(scep_digests),
                                    &ck->digest_alg);

    if (ck->res->digest == 0 || !scep_digest_listed(ck)) {
        return SCEP_RESPONSE_BAD_SIGNATURE;
    }

    if (ck->econtent.tag != 0) {
        reason = scep_check_content(ck);

        if (reason == SCEP_REASON_OK) {
            reason = scep_check_message_digest(ck);
        }

    } else {
        reason = scep_signer_digest(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_signature(ck);
    }

    ERR_clear_error();

    switch (reason) {

    case SCEP_REASON_OK:
        return SCEP_RESPONSE_OK;

    case SCEP_REASON_INTERNAL:
        return SCEP_RESPONSE_INTERNAL;

    default:
        return SCEP_RESPONSE_BAD_SIGNATURE;
    }
}

