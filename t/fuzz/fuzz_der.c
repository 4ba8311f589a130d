
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Differential fuzzing of scep_message_check() against OpenSSL: what the
 * check takes for a well-formed SignedData, d2i_CMS_ContentInfo() must
 * parse too (the message, and its envelope once that is accepted), and
 * what it passes, CMS_verify() must pass with the signer certificate
 * taken as it is.
 */


#include <stdint.h>
#include <stdlib.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "scep_message.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static CMS_ContentInfo *scep_fuzz_d2i(const unsigned char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   good;
    scep_policy_t         policy;
    scep_reason_t         r;
    CMS_ContentInfo      *cms, *env;
    ASN1_OCTET_STRING   **content;

    policy.algorithms = 0xffffffff;
    policy.crypto = NULL;

    r = scep_message_check(data, size, &policy, NULL);

    /*
     * The content of a ContentInfo of another type than SignedData is
     * only checked as BER, not as what its type says.
     */

    if (r == SCEP_REASON_BAD_DER || r == SCEP_REASON_INTERNAL
        || r == SCEP_REASON_NOT_SIGNED_DATA)
    {
        return 0;
    }

    cms = scep_fuzz_d2i(data, size);
    if (cms == NULL) {
        __builtin_trap();
    }

    if (r != SCEP_REASON_BAD_SIGNER_COUNT
        && r != SCEP_REASON_BAD_CONTENT_TYPE
        && r != SCEP_REASON_BAD_ENVELOPE)
    {
        content = CMS_get0_content(cms);

        if (content == NULL || *content == NULL) {
            __builtin_trap();
        }

        env = scep_fuzz_d2i(ASN1_STRING_get0_data(*content),
                            ASN1_STRING_length(*content));
        if (env == NULL) {
            __builtin_trap();
        }

        CMS_ContentInfo_free(env);
    }

    if (r == SCEP_REASON_OK) {
        good = CMS_verify(cms, NULL, NULL, NULL, NULL,
                          CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY);
        if (good != 1) {
            ERR_print_errors_fp(stderr);
            __builtin_trap();
        }
    }

    CMS_ContentInfo_free(cms);
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

    if (cms == NULL) {
        ERR_print_errors_fp(stderr);
    }

    return cms;
}
