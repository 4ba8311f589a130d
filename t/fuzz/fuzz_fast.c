
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Differential fuzzing of the fast paths against reference ones:
 *
 *   - scep_base64_decode(), with its 16-character steps where the CPU
 *     allows, against the same decoder built without them (every
 *     result, every byte, the canonical flag, several output limits);
 *     what it decodes, OpenSSL's EVP_DecodeBlock() must decode alike
 *     once the dialect is undone; and "canonical" must mean that
 *     scep_base64_encode_query() gives the input back;
 *   - scep_query_scan(), with its 16-position count of "%u" escapes
 *     where the CPU allows, against the same scan built without it;
 *   - scep_message_check() with a scep_crypto_t (digests fetched once,
 *     RSA keys made from their numbers and kept) against the check
 *     without one, on the input as DER and on what it decodes to; and
 *     what both pass, CMS_verify() must pass.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "scep_message.h"


/* the reference decoder: the same source without the SIMD steps */

#define SCEP_B64_NO_SIMD
#define scep_base64_decode        scep_ref_base64_decode
#define scep_base64_encode_query  scep_ref_base64_encode_query
#define scep_base64_first_byte    scep_ref_base64_first_byte
#define scep_percent              scep_ref_percent

#include "scep_base64.c"

/* the reference query scan: the same source without the SIMD count */

#define SCEP_QUERY_NO_SIMD
#define scep_query_scan           scep_ref_query_scan
#define scep_ca_ident_ok          scep_ref_ca_ident_ok

#include "scep_query.c"

#undef scep_base64_decode
#undef scep_base64_encode_query
#undef scep_base64_first_byte
#undef scep_percent
#undef scep_query_scan
#undef scep_ca_ident_ok


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int scep_ref_base64_decode(const unsigned char *in, size_t len,
    unsigned char *out, size_t max, size_t *outlen, int *canonical);

void scep_ref_query_scan(const unsigned char *args, size_t len,
    scep_query_t *q);

static void scep_fuzz_query(const uint8_t *data, size_t size);
static void scep_fuzz_base64(const uint8_t *data, size_t size, size_t max);
static int scep_fuzz_canonical_tail(const unsigned char *enc, size_t elen,
    size_t n, const uint8_t *data, size_t size);
static void scep_fuzz_openssl(const uint8_t *data, size_t size,
    const unsigned char *out, size_t n);
static void scep_fuzz_check(const unsigned char *der, size_t len);


/* kept across inputs, as the module keeps it across requests */
static scep_crypto_t  *scep_fuzz_crypto;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    size_t          n, max;
    unsigned char  *out;

    if (scep_fuzz_crypto == NULL) {
        scep_fuzz_crypto = scep_crypto_new();
        if (scep_fuzz_crypto == NULL) {
            abort();
        }
    }

    scep_fuzz_query(data, size);

    max = scep_base64_decoded_max(size);

    scep_fuzz_base64(data, size, max);

    for (n = 0; n < 20; n++) {
        scep_fuzz_base64(data, size, n);
    }

    scep_fuzz_base64(data, size, max / 2);

    scep_fuzz_check(data, size);

    out = malloc(max ? max : 1);
    if (out == NULL) {
        abort();
    }

    rc = scep_base64_decode(data, size, out, max, &n, NULL);

    if (rc == SCEP_OK) {
        scep_fuzz_openssl(data, size, out, n);
        scep_fuzz_check(out, n);
    }

    free(out);

    return 0;
}


/* both decoders, into buffers of exactly "max" bytes */

static void
scep_fuzz_query(const uint8_t *data, size_t size)
{
    size_t        i;
    scep_query_t  q, ref;

    /* every suffix start of the first 16 bytes: every lane alignment */

    for (i = 0; i <= size && i < 17; i++) {
        scep_query_scan(data + i, size - i, &q);
        scep_ref_query_scan(data + i, size - i, &ref);

        if (memcmp(&q, &ref, sizeof(scep_query_t)) != 0) {
            abort();
        }
    }
}


static void
scep_fuzz_base64(const uint8_t *data, size_t size, size_t max)
{
    int             rc, ref, canon, ref_canon, same;
    size_t          n, ref_n, elen;
    unsigned char  *out, *ref_out, *enc;

    out = malloc(max ? max : 1);
    ref_out = malloc(max ? max : 1);

    if (out == NULL || ref_out == NULL) {
        abort();
    }

    n = (size_t) -1;
    ref_n = (size_t) -2;
    canon = -1;
    ref_canon = -2;

    rc = scep_base64_decode(data, size, out, max, &n, &canon);
    ref = scep_ref_base64_decode(data, size, ref_out, max, &ref_n,
                                 &ref_canon);

    if (rc != ref) {
        __builtin_trap();
    }

    if (rc == SCEP_OK) {
        if (n != ref_n || n > max || canon != ref_canon
            || memcmp(out, ref_out, n) != 0)
        {
            __builtin_trap();
        }

        /*
         * canonical: what the encoder writes for these bytes, but for
         * the unused low bits of the last sextet before the padding,
         * which decoders ignore and the flag does not look at: that
         * sextet may be any of those that differ in them, spelled as
         * the encoder spells sextets
         */

        enc = malloc(scep_base64_encoded_max(n) + 4);
        if (enc == NULL) {
            abort();
        }

        elen = scep_base64_encode_query(out, n, enc);

        same = (elen == size && memcmp(enc, data, size) == 0);

        if (!same && n % 3 != 0) {
            same = scep_fuzz_canonical_tail(enc, elen, n, data, size);
        }

        if (canon != same) {
            __builtin_trap();
        }

        free(enc);
    }

    free(out);
    free(ref_out);
}


/*
 * Whether "data" is the canonical form "enc" of n bytes (n % 3 != 0) with
 * other unused low bits in the sextet before the padding.
 */

static int
scep_fuzz_canonical_tail(const unsigned char *enc, size_t elen, size_t n,
    const uint8_t *data, size_t size)
{
    int            c;
    size_t         pos, len;
    unsigned int   v, base, bits;
    unsigned char  spell[3];

    pos = elen - 1 - 3 * (3 - n % 3);
    bits = (n % 3 == 1) ? 4 : 2;

    c = enc[pos];
    base = (c >= 'a') ? (unsigned int) (c - 'a' + 26)
           : (c >= 'A') ? (unsigned int) (c - 'A')
           : (unsigned int) (c - '0' + 52);

    for (v = base; v < base + (1u << bits); v++) {
        if (v < 62) {
            spell[0] = (v < 26) ? 'A' + v : (v < 52) ? 'a' + v - 26
                                                     : '0' + v - 52;
            len = 1;

        } else {
            memcpy(spell, (v == 62) ? "%2B" : "%2F", 3);
            len = 3;
        }

        if (size == elen - 1 + len
            && memcmp(data, enc, pos) == 0
            && memcmp(data + pos, spell, len) == 0
            && memcmp(data + pos + len, enc + pos + 1, elen - pos - 1) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * OpenSSL's decoder on the input with its dialect undone: escapes
 * decoded, the URL-safe alphabet and a space (a form-decoded "+") turned
 * into the standard one, line breaks and padding dropped, then padded
 * again to whole quads.
 */

static void
scep_fuzz_openssl(const uint8_t *data, size_t size, const unsigned char *out,
    size_t n)
{
    int             c, got;
    size_t          i, k, pad;
    unsigned char  *std, *dec;

    std = malloc(size + 4);
    dec = malloc(size + 4);

    if (std == NULL || dec == NULL) {
        abort();
    }

    k = 0;

    for (i = 0; i < size; i++) {
        c = data[i];

        if (c == '%') {
            if (size - i < 3) {
                __builtin_trap();
            }

            c = scep_ref_percent(&data[i], size - i);
            i += 2;
        }

        switch (c) {

        case '-':
        case ' ':
            c = '+';
            break;

        case '_':
            c = '/';
            break;

        case '\r':
        case '\n':
        case '=':
            continue;
        }

        std[k++] = (unsigned char) c;
    }

    pad = (4 - k % 4) % 4;

    for (i = 0; i < pad; i++) {
        std[k++] = '=';
    }

    got = EVP_DecodeBlock(dec, std, (int) k);

    if (got < 0 || (size_t) got < pad || (size_t) got - pad != n
        || memcmp(dec, out, n) != 0)
    {
        __builtin_trap();
    }

    free(std);
    free(dec);
}


static void
scep_fuzz_check(const unsigned char *der, size_t len)
{
    int                   i, good;
    scep_reason_t         ref, r;
    scep_policy_t         policy;
    CMS_ContentInfo      *cms;
    const unsigned char  *p;

    policy.algorithms = 0xffffffff;
    policy.crypto = NULL;

    ref = scep_message_check(der, len, &policy, NULL);

    /* the key made, then found again */

    policy.crypto = scep_fuzz_crypto;

    for (i = 0; i < 2; i++) {
        r = scep_message_check(der, len, &policy, NULL);

        if (r != ref) {
            __builtin_trap();
        }
    }

    if (r != SCEP_REASON_OK) {
        return;
    }

    p = der;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long) len);

    if (cms == NULL) {
        __builtin_trap();
    }

    good = CMS_verify(cms, NULL, NULL, NULL, NULL,
                      CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY);

    if (good != 1) {
        ERR_print_errors_fp(stderr);
        __builtin_trap();
    }

    CMS_ContentInfo_free(cms);
    ERR_clear_error();
}
