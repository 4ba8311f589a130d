
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * pkiMessage checks in plain C over OpenSSL: the entry points of
 * scep_message.h, which take the steps of a check in turn.  The steps are
 * in scep_ber.c (the BER reader), scep_cms.c (the CMS structure),
 * scep_rules.c (the SCEP attributes and the algorithm policy) and
 * scep_verify.c (the signer and its signature); scep_message_int.h is
 * what they share.
 */


#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "scep_message_int.h"


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
    if ((unsigned int) reason >= scep_nelts(scep_reason_tokens)) {
        return "internal_error";
    }

    return scep_reason_tokens[reason];
}


/* the state kept between scep_message_parse() and scep_message_verify() */

struct scep_pending_s {
    scep_check_t           ck;
    int                    parsed;        /* parse returned OK */
};


scep_reason_t
scep_message_check(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res)
{
    scep_reason_t   reason;
    scep_result_t   scratch;
    scep_pending_t  pending;

    if (res == NULL) {
        res = &scratch;
    }

    reason = scep_message_parse(der, len, policy, res, &pending);

    if (reason == SCEP_REASON_OK) {
        reason = scep_message_verify(&pending);
    }

    scep_pending_free(&pending);

    return reason;
}


size_t
scep_pending_size(void)
{
    return sizeof(scep_pending_t);
}


scep_reason_t
scep_message_parse(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res, scep_pending_t *pending)
{
    scep_reason_t   reason;
    scep_check_t   *ck;

    memset(pending, 0, sizeof(scep_pending_t));
    memset(res, 0, sizeof(scep_result_t));

    ck = &pending->ck;

    ck->algorithms = (policy != NULL) ? policy->algorithms
                                      : SCEP_ALG_DEFAULT;
    ck->crypto = (policy != NULL) ? policy->crypto : NULL;
    ck->res = res;

    /* errors the caller left queued are no business of this check */
    ERR_clear_error();

    reason = scep_parse_content_info(ck, der, len);

    if (reason == SCEP_REASON_OK) {
        reason = (ck->signers == 1) ? scep_check_content(ck)
                                    : SCEP_REASON_BAD_SIGNER_COUNT;
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_envelope(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_attributes(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_algorithms(ck);
    }

    if (reason == SCEP_REASON_OK) {
        reason = scep_find_signer(ck);
    }

    ERR_clear_error();

    pending->parsed = (reason == SCEP_REASON_OK);

    return reason;
}


scep_reason_t
scep_message_verify(scep_pending_t *pending)
{
    scep_reason_t  reason;

    if (!pending->parsed) {
        /* nothing to verify: a misuse, not a verdict on the message */
        return SCEP_REASON_INTERNAL;
    }

    pending->parsed = 0;

    ERR_clear_error();

    reason = scep_check_message_digest(&pending->ck);

    if (reason == SCEP_REASON_OK) {
        reason = scep_check_signature(&pending->ck);
    }

    ERR_clear_error();

    return reason;
}


void
scep_pending_free(scep_pending_t *pending)
{
    scep_check_free(&pending->ck);
    pending->parsed = 0;
}


/* what a check allocated: a digest it fetched, a copy of the content */

void
scep_check_free(scep_check_t *ck)
{
    if (ck->md_fetched) {
        EVP_MD_free(ck->md);
    }

    OPENSSL_free(ck->content_copy);

    ck->md = NULL;
    ck->md_fetched = 0;
    ck->content_copy = NULL;
}
