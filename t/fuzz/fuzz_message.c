
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Fuzzes scep_message_check() on the input as DER, and on the input
 * decoded as the "message" value of a query string, and the renewal
 * checks of scep_renewal.h on the signer certificate it finds.  Traps
 * when a result breaks the contract of scep_message.h.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "scep_message.h"
#include "scep_renewal.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void scep_fuzz_check(const unsigned char *der, size_t len,
    uint32_t algorithms);
static void scep_fuzz_signer(const unsigned char *der, size_t len,
    const scep_result_t *res);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          n, max;
    unsigned char  *out;

    scep_fuzz_check(data, size, SCEP_ALG_DEFAULT);

    /* every algorithm allowed: the input gets further */
    scep_fuzz_check(data, size, 0xffffffff);

    max = scep_base64_decoded_max(size);

    out = malloc(max ? max : 1);
    if (out == NULL) {
        return 0;
    }

    if (scep_base64_decode(data, size, out, max, &n, NULL) == SCEP_OK) {
        scep_fuzz_check(out, n, SCEP_ALG_DEFAULT);
    }

    free(out);

    return 0;
}


static void
scep_fuzz_check(const unsigned char *der, size_t len, uint32_t algorithms)
{
    size_t          i;
    const char     *token;
    scep_policy_t   policy;
    scep_reason_t   r;
    scep_result_t   res;

    policy.algorithms = algorithms;
    policy.crypto = NULL;

    r = scep_message_check(der, len, &policy, &res);

    token = scep_reason_token(r);

    if (token == NULL
        || (r == SCEP_REASON_OK) != (token[0] == '\0')
        || r > SCEP_REASON_INTERNAL
        || ERR_peek_error() != 0)
    {
        __builtin_trap();
    }

    /* fields are filled in the order of the checks, and only then */

    if (r == SCEP_REASON_INTERNAL) {
        return;
    }

    if (r == SCEP_REASON_OK || r >= SCEP_REASON_BAD_TRANSACTION_ID) {
        if (scep_message_type_name(res.message_type) == NULL) {
            __builtin_trap();
        }

    } else if (res.message_type != 0) {
        __builtin_trap();
    }

    if (r == SCEP_REASON_OK || r >= SCEP_REASON_BAD_SENDER_NONCE) {
        if (res.transaction_id_len < 1
            || res.transaction_id_len > SCEP_TRANSACTION_ID_MAX
            || res.transaction_id[res.transaction_id_len] != '\0'
            || strlen(res.transaction_id) != res.transaction_id_len)
        {
            __builtin_trap();
        }

        for (i = 0; i < res.transaction_id_len; i++) {
            if (res.transaction_id[i] < ' ' || res.transaction_id[i] > 'z') {
                __builtin_trap();
            }
        }

    } else if (res.transaction_id_len != 0 || res.transaction_id[0] != '\0')
    {
        __builtin_trap();
    }

    if (r == SCEP_REASON_OK
        && ((res.digest & algorithms) == 0 || (res.cipher & algorithms) == 0
            || (res.digest & (res.digest - 1)) != 0
            || (res.cipher & (res.cipher - 1)) != 0))
    {
        __builtin_trap();
    }

    if (r != SCEP_REASON_OK && r < SCEP_REASON_BAD_DIGEST_ALGORITHM
        && (res.digest != 0 || res.cipher != 0))
    {
        __builtin_trap();
    }

    scep_fuzz_signer(der, len, &res);
}


/* the signer certificate lies in the message; OpenSSL may read it */

static void
scep_fuzz_signer(const unsigned char *der, size_t len,
    const scep_result_t *res)
{
    int             ok, nomem;
    char            issuer[256], serial[80];
    scep_signer_t  *s;

    if (res->signer_cert == NULL) {
        if (res->signer_cert_len != 0 || res->signer_self_issued != 0) {
            __builtin_trap();
        }

        return;
    }

    if (res->signer_cert < der
        || res->signer_cert_len == 0
        || res->signer_cert_len > len
        || res->signer_cert + res->signer_cert_len > der + len
        || (res->signer_self_issued != 0 && res->signer_self_issued != 1))
    {
        __builtin_trap();
    }

    s = scep_signer_new(res->signer_cert, res->signer_cert_len, &nomem);

    if (s == NULL) {
        return;
    }

    (void) scep_signer_self_signed(s);
    (void) scep_signer_issuer_hash(s, &ok);
    (void) scep_signer_valid(s, 1700000000, 86400);
    (void) scep_signer_revoked(s, NULL);
    (void) scep_signer_issued_by(s, res->signer_cert, res->signer_cert_len);

    scep_signer_text(s, issuer, sizeof(issuer), serial, sizeof(serial));

    if (strlen(issuer) >= sizeof(issuer) || strlen(serial) >= sizeof(serial)
        || ERR_peek_error() != 0)
    {
        __builtin_trap();
    }

    scep_signer_free(s);
}
