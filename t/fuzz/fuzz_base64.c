
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Fuzzes scep_base64_decode() with exact-size buffers and several
 * limits, the round trip through the canonical encoder,
 * scep_base64_first_byte() against the whole decoding, and
 * scep_ca_ident_ok().
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep_message.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int scep_fuzz_decode(const uint8_t *data, size_t size, size_t max,
    unsigned char **out, size_t *n);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             c, rc, canon;
    size_t          n, n2, max, elen;
    unsigned char  *out, *out2, *enc;

    max = scep_base64_decoded_max(size);

    rc = scep_fuzz_decode(data, size, max, &out, &n);

    if (rc == SCEP_TOO_LARGE) {
        /* the documented maximum always has room */
        __builtin_trap();
    }

    if (rc == SCEP_OK) {
        if (n > max) {
            __builtin_trap();
        }

        /* the first byte from the first characters alone is the same */

        c = scep_base64_first_byte(data, size);

        if (c >= 0 && (n == 0 || c != out[0])) {
            __builtin_trap();
        }

        /* exactly n bytes fit, one fewer does not */

        free(out);

        if (scep_fuzz_decode(data, size, n, &out, &n2) != SCEP_OK
            || n2 != n)
        {
            __builtin_trap();
        }

        if (n > 0 && scep_fuzz_decode(data, size, n - 1, &out2, &n2)
                     != SCEP_TOO_LARGE)
        {
            __builtin_trap();
        }

        if (n > 0) {
            free(out2);
        }

        /* the canonical form decodes to the same bytes, and is canonical */

        enc = malloc(scep_base64_encoded_max(n) + 1);
        if (enc == NULL) {
            free(out);
            return 0;
        }

        elen = scep_base64_encode_query(out, n, enc);

        if (elen > scep_base64_encoded_max(n)) {
            __builtin_trap();
        }

        out2 = malloc(n + 1);
        if (out2 == NULL) {
            free(enc);
            free(out);
            return 0;
        }

        canon = 0;

        if (scep_base64_decode(enc, elen, out2, n, &n2, &canon) != SCEP_OK
            || n2 != n || memcmp(out, out2, n) != 0 || !canon)
        {
            __builtin_trap();
        }

        free(out2);
        free(enc);
    }

    free(out);

    /* small limits: never a write past them */

    for (max = 0; max < 8; max++) {
        rc = scep_fuzz_decode(data, size, max, &out, &n);

        if (rc == SCEP_OK && n > max) {
            __builtin_trap();
        }

        free(out);
    }

    (void) scep_ca_ident_ok(data, size, 255);
    (void) scep_ca_ident_ok(data, size, size);
    (void) scep_ca_ident_ok(data, size, 0);

    return 0;
}


/* decodes into a buffer of exactly "max" bytes, so overruns are caught */

static int
scep_fuzz_decode(const uint8_t *data, size_t size, size_t max,
    unsigned char **out, size_t *n)
{
    *out = malloc(max ? max : 1);
    if (*out == NULL) {
        abort();
    }

    return scep_base64_decode(data, size, *out, max, n, NULL);
}
