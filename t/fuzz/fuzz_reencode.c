
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The DER re-encoding of streaming BER (scep_der.c) against OpenSSL: of
 * any message that scep_message_check() accepts, the re-encoding is DER
 * (measured again, it needs none), OpenSSL parses it into the same
 * content, CMS_verify() passes it with the signer certificate taken as
 * it is, and the check accepts it with the same SCEP attributes.  Any
 * other input only must not upset the re-encoder.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "scep_der.h"
#include "scep_message.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CMS_ContentInfo *scep_fuzz_d2i(const unsigned char *p, size_t len);
static int scep_fuzz_same_content(CMS_ContentInfo *a, CMS_ContentInfo *b);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc;
    void             *work;
    size_t            outlen, worklen, again, againwork;
    scep_policy_t     policy;
    scep_reason_t     r;
    scep_result_t     res, res2;
    unsigned char    *out;
    CMS_ContentInfo  *cms, *der;

    policy.algorithms = 0xffffffff;
    policy.crypto = NULL;

    r = scep_message_check(data, size, &policy, &res);

    rc = scep_der_size(data, size, &outlen, &worklen);

    if (r == SCEP_REASON_OK && rc == SCEP_DER_ERROR) {
        /* only a constructed BIT STRING is refused in what OpenSSL reads */
        return 0;
    }

    if (rc != SCEP_DER_NEEDED) {
        return 0;
    }

    out = malloc(outlen);
    work = malloc(worklen);

    if (out == NULL || work == NULL) {
        __builtin_trap();
    }

    if (scep_der_encode(data, size, out, outlen, work, worklen) != 0) {
        __builtin_trap();
    }

    /* DER now: nothing left to re-encode */

    if (scep_der_size(out, outlen, &again, &againwork) != SCEP_DER_SAME) {
        __builtin_trap();
    }

    if (r == SCEP_REASON_OK) {
        cms = scep_fuzz_d2i(data, size);
        der = scep_fuzz_d2i(out, outlen);

        if (cms == NULL || der == NULL
            || !scep_fuzz_same_content(cms, der)
            || CMS_verify(der, NULL, NULL, NULL, NULL,
                          CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY)
               != 1)
        {
            ERR_print_errors_fp(stderr);
            __builtin_trap();
        }

        if (scep_message_check(out, outlen, &policy, &res2) != SCEP_REASON_OK
            || res.message_type != res2.message_type
            || res.transaction_id_len != res2.transaction_id_len
            || memcmp(res.transaction_id, res2.transaction_id,
                      res.transaction_id_len) != 0
            || memcmp(res.sender_nonce, res2.sender_nonce, 16) != 0
            || res.digest != res2.digest || res.cipher != res2.cipher)
        {
            __builtin_trap();
        }

        CMS_ContentInfo_free(cms);
        CMS_ContentInfo_free(der);
    }

    free(out);
    free(work);
    ERR_clear_error();

    return 0;
}


static CMS_ContentInfo *
scep_fuzz_d2i(const unsigned char *p, size_t len)
{
    CMS_ContentInfo      *cms;
    const unsigned char  *q;

    q = p;
    cms = d2i_CMS_ContentInfo(NULL, &q, (long) len);

    if (cms != NULL && q != p + len) {
        CMS_ContentInfo_free(cms);
        cms = NULL;
    }

    return cms;
}


static int
scep_fuzz_same_content(CMS_ContentInfo *a, CMS_ContentInfo *b)
{
    ASN1_OCTET_STRING  **ca, **cb;

    ca = CMS_get0_content(a);
    cb = CMS_get0_content(b);

    return ca != NULL && cb != NULL && *ca != NULL && *cb != NULL
           && ASN1_STRING_cmp(*ca, *cb) == 0;
}
