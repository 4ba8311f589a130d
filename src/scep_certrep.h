
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A back end's answer to a PKIOperation, read as a CertRep without
 * decrypting anything: its outcome (pkiStatus, failInfo), how it answers
 * the request (transactionID, recipientNonce) and its signature.  Plain
 * C over OpenSSL, no nginx types, so that it can be unit-tested and
 * fuzzed on its own.
 */


#ifndef _SCEP_CERTREP_H_INCLUDED_
#define _SCEP_CERTREP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "scep_message.h"
#include "scep_certs.h"


/* pkiStatus (RFC 8894 3.2.1.3) */
#define SCEP_PKI_NONE              -1
#define SCEP_PKI_SUCCESS            0
#define SCEP_PKI_FAILURE            2
#define SCEP_PKI_PENDING            3

/* failInfo (RFC 8894 3.2.1.4) */
#define SCEP_FAIL_NONE             -1
#define SCEP_FAIL_BAD_ALG           0
#define SCEP_FAIL_BAD_MESSAGE_CHECK 1
#define SCEP_FAIL_BAD_REQUEST       2
#define SCEP_FAIL_BAD_TIME          3
#define SCEP_FAIL_BAD_CERT_ID       4
#define SCEP_FAIL_N                 5


/* what a check of an answer found, as $scep_response_check names it */
typedef enum {
    SCEP_RESPONSE_OK = 0,
    SCEP_RESPONSE_NOT_CERTREP,
    SCEP_RESPONSE_BAD_SIGNATURE,
    SCEP_RESPONSE_UNKNOWN_SIGNER,
    SCEP_RESPONSE_TRANSACTION_MISMATCH,
    SCEP_RESPONSE_NONCE_MISMATCH,
    SCEP_RESPONSE_INTERNAL            /* out of memory and the like */
} scep_response_t;

#define SCEP_RESPONSE_N  (SCEP_RESPONSE_INTERNAL + 1)


typedef struct {
    int                   pki_status;      /* SCEP_PKI_* */
    int                   fail_info;       /* SCEP_FAIL_*; NONE unless
                                              FAILURE */

    size_t                transaction_id_len;
    char                  transaction_id[SCEP_TRANSACTION_ID_MAX + 1];

    int                   has_sender_nonce;
    int                   has_recipient_nonce;
    unsigned char         sender_nonce[16];
    unsigned char         recipient_nonce[16];

    /*
     * the signer as its SignerInfo names it: SCEP_RECIPIENT_ISSUER_SERIAL
     * (issuer Name DER as sent, serialNumber contents) or
     * SCEP_RECIPIENT_KEY_ID (subjectKeyIdentifier octets); the pointers
     * point into the answer; signer_id is scep_cert_id() (not canonical)
     * or scep_key_id() of them, has_signer_id 0 when OpenSSL failed
     */
    int                   signer_kind;
    const unsigned char  *signer_issuer;
    size_t                signer_issuer_len;
    const unsigned char  *signer_serial;
    size_t                signer_serial_len;
    const unsigned char  *signer_key_id;
    size_t                signer_key_id_len;
    int                   has_signer_id;
    unsigned char         signer_id[SCEP_CERT_ID_LEN];
} scep_certrep_t;


/*
 * Reads a DER answer to a PKIOperation as a CertRep: a ContentInfo of
 * SignedData of "data" with exactly one SignerInfo whose signed
 * attributes hold messageType "3", a pkiStatus of "0", "2" or "3", a
 * failInfo "0" to "4" with FAILURE (a failInfo is NONE when missing or
 * unknown), a transactionID, a senderNonce and a recipientNonce
 * (16-byte OCTET STRINGs; a missing nonce leaves its has_ flag 0, and
 * scep_certrep_match() refuses a missing recipientNonce); each SCEP
 * attribute at most once; the encapsulated content may be absent
 * (FAILURE, PENDING), not with SUCCESS.
 * Checks no signature.  Returns SCEP_RESPONSE_OK with "rep" filled, or
 * SCEP_RESPONSE_NOT_CERTREP (anything else: HTML, a request, BER
 * errors, trailing bytes), or SCEP_RESPONSE_INTERNAL.
 */
scep_response_t scep_certrep_parse(const unsigned char *der, size_t len,
    scep_certrep_t *rep);

/*
 * Whether a parsed CertRep answers the request "req" (a pkiMessage that
 * scep_message_check() passed): SCEP_RESPONSE_TRANSACTION_MISMATCH when
 * the transactionIDs differ, SCEP_RESPONSE_NONCE_MISMATCH when the
 * recipientNonce is not the request's senderNonce, else
 * SCEP_RESPONSE_OK.
 */
scep_response_t scep_certrep_match(const scep_certrep_t *rep,
    const scep_result_t *req);

/*
 * Verifies the CertRep's signature (the messageDigest of the content
 * when there is one, and the signature over the signed attributes) with
 * the public key "spki" (a SubjectPublicKeyInfo in DER, as taken from a
 * certificate of the back end's GetCACert answer).  The digest may be
 * any of scep_message.h's SCEP_ALG_* digests the SignedData lists, the
 * signature RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA, as for requests.
 * "crypto" may be NULL; the RSA keys it keeps make a key met before
 * cheap.  Returns SCEP_RESPONSE_OK, SCEP_RESPONSE_BAD_SIGNATURE,
 * SCEP_RESPONSE_NOT_CERTREP (not a CertRep) or SCEP_RESPONSE_INTERNAL.
 */
scep_response_t scep_certrep_verify(const unsigned char *der, size_t len,
    const unsigned char *spki, size_t spki_len, scep_crypto_t *crypto);

/* "ok", "not_certrep", "bad_signature", ...; "internal_error" */
const char *scep_response_token(scep_response_t check);

/* "SUCCESS", "FAILURE", "PENDING"; NULL for others */
const char *scep_pki_status_name(int status);

/* "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId"; NULL */
const char *scep_fail_info_name(int info);


#endif /* _SCEP_CERTREP_H_INCLUDED_ */
