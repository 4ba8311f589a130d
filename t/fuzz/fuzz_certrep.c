
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Fuzzes scep_certrep_parse(), scep_certrep_match() and
 * scep_certrep_verify() on the input as a back end's answer.  The keys
 * verified with are those of the certificates the input carries (a
 * CertRep carries the RA's), so that a real answer verifies and its
 * mutations reach the digest and signature checks.  Traps when a result
 * breaks the contract of scep_certrep.h.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "scep_message_int.h"
#include "scep_certrep.h"


/* keys of the input tried, at most */
#define FUZZ_KEYS  2


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_inside(const unsigned char *p, size_t len,
    const uint8_t *data, size_t size);
static void fuzz_parsed(const scep_certrep_t *rep, const uint8_t *data,
    size_t size);
static void fuzz_verify(const uint8_t *data, size_t size,
    scep_response_t parsed, const unsigned char *spki, size_t spki_len);


/* one for the whole run, as the module has one a worker */
static scep_crypto_t  *fuzz_crypto;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              keys;
    scep_ber_t       el;
    scep_cur_t       cur;
    scep_cert_t      cert;
    scep_check_t     ck;
    scep_result_t    res, req;
    scep_certrep_t   rep;
    scep_response_t  rc, m;

    if (fuzz_crypto == NULL) {
        fuzz_crypto = scep_crypto_new();
        if (fuzz_crypto == NULL) {
            abort();
        }
    }

    rc = scep_certrep_parse(data, size, &rep);

    if ((rc != SCEP_RESPONSE_OK && rc != SCEP_RESPONSE_NOT_CERTREP
         && rc != SCEP_RESPONSE_INTERNAL)
        || ERR_peek_error() != 0)
    {
        __builtin_trap();
    }

    if (rc == SCEP_RESPONSE_OK) {
        fuzz_parsed(&rep, data, size);

        /* a request the answer matches, then one it does not */

        memset(&req, 0, sizeof(scep_result_t));
        req.transaction_id_len = rep.transaction_id_len;
        memcpy(req.transaction_id, rep.transaction_id,
               rep.transaction_id_len + 1);
        memcpy(req.sender_nonce, rep.recipient_nonce, 16);

        m = scep_certrep_match(&rep, &req);

        if (m != (rep.has_recipient_nonce ? SCEP_RESPONSE_OK
                                          : SCEP_RESPONSE_NONCE_MISMATCH))
        {
            __builtin_trap();
        }

        req.transaction_id_len--;

        if (scep_certrep_match(&rep, &req)
            != SCEP_RESPONSE_TRANSACTION_MISMATCH)
        {
            __builtin_trap();
        }
    }

    fuzz_verify(data, size, rc, NULL, 0);

    /* the keys of the certificates it carries, found as the checks do */

    memset(&ck, 0, sizeof(scep_check_t));
    ck.res = &res;

    if (scep_parse_content_info(&ck, data, size) != SCEP_REASON_OK
        || ck.certs.tag == 0)
    {
        return 0;
    }

    scep_cur_init(&cur, &ck.certs);
    keys = 0;

    while (keys < FUZZ_KEYS && scep_cur_next(&cur, 0, &el)) {
        if (el.tag == SCEP_BER_SEQUENCE && scep_parse_certificate(&el, &cert))
        {
            fuzz_verify(data, size, rc, cert.spki.hdr,
                        cert.spki.next - cert.spki.hdr);
            keys++;
        }
    }

    return 0;
}


static void
fuzz_inside(const unsigned char *p, size_t len, const uint8_t *data,
    size_t size)
{
    if (p == NULL || p < data || len > size
        || (size_t) (p - data) > size - len)
    {
        __builtin_trap();
    }
}


static void
fuzz_parsed(const scep_certrep_t *rep, const uint8_t *data, size_t size)
{
    size_t  i;

    if (scep_pki_status_name(rep->pki_status) == NULL
        || (rep->fail_info != SCEP_FAIL_NONE
            && (rep->pki_status != SCEP_PKI_FAILURE
                || scep_fail_info_name(rep->fail_info) == NULL)))
    {
        __builtin_trap();
    }

    if (rep->transaction_id_len < 1
        || rep->transaction_id_len > SCEP_TRANSACTION_ID_MAX
        || rep->transaction_id[rep->transaction_id_len] != '\0'
        || strlen(rep->transaction_id) != rep->transaction_id_len)
    {
        __builtin_trap();
    }

    for (i = 0; i < rep->transaction_id_len; i++) {
        if (rep->transaction_id[i] < ' ' || rep->transaction_id[i] > 'z') {
            __builtin_trap();
        }
    }

    switch (rep->signer_kind) {

    case SCEP_RECIPIENT_ISSUER_SERIAL:
        fuzz_inside(rep->signer_issuer, rep->signer_issuer_len, data, size);
        fuzz_inside(rep->signer_serial, rep->signer_serial_len, data, size);
        break;

    case SCEP_RECIPIENT_KEY_ID:
        fuzz_inside(rep->signer_key_id, rep->signer_key_id_len, data, size);
        break;

    default:
        __builtin_trap();
    }
}


/*
 * What parse said decides what verify may say; with a scep_crypto_t
 * (its key made or kept) as without one
 */

static void
fuzz_verify(const uint8_t *data, size_t size, scep_response_t parsed,
    const unsigned char *spki, size_t spki_len)
{
    scep_response_t  r0, r1;

    r0 = scep_certrep_verify(data, size, spki, spki_len, NULL);
    r1 = scep_certrep_verify(data, size, spki, spki_len, fuzz_crypto);

    if (ERR_peek_error() != 0 || r0 != r1) {
        __builtin_trap();
    }

    if (r0 == SCEP_RESPONSE_INTERNAL || parsed == SCEP_RESPONSE_INTERNAL) {
        return;
    }

    if (parsed != SCEP_RESPONSE_OK) {
        if (r0 != SCEP_RESPONSE_NOT_CERTREP) {
            __builtin_trap();
        }

        return;
    }

    if (r0 != SCEP_RESPONSE_OK && r0 != SCEP_RESPONSE_BAD_SIGNATURE) {
        __builtin_trap();
    }

    if (spki == NULL && r0 != SCEP_RESPONSE_BAD_SIGNATURE) {
        __builtin_trap();
    }
}
