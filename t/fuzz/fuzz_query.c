
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * libFuzzer entry for the query-string scanner and what the gateway does
 * with its result: the CA identifier check and the base64 decoder.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep_message.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             canonical;
    size_t          n;
    scep_query_t    q;
    unsigned char  *out;

    scep_query_scan(data, size, &q);

    if (q.operation
        && (q.operation < data || q.operation + q.operation_len
                                  > data + size))
    {
        abort();
    }

    if (q.message == NULL) {
        return 0;
    }

    if (q.message < data || q.message + q.message_len > data + size) {
        abort();
    }

    (void) scep_ca_ident_ok(q.message, q.message_len, 255);

    out = malloc(scep_base64_decoded_max(q.message_len));
    if (out == NULL) {
        return 0;
    }

    (void) scep_base64_decode(q.message, q.message_len, out,
                              scep_base64_decoded_max(q.message_len), &n,
                              &canonical);
    free(out);

    return 0;
}
