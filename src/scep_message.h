
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * SCEP message handling in plain C: no nginx types, so that it can be
 * unit-tested and fuzzed on its own.
 */


#ifndef _SCEP_MESSAGE_H_INCLUDED_
#define _SCEP_MESSAGE_H_INCLUDED_


#include <stddef.h>


#define SCEP_OK            0
#define SCEP_BAD_BASE64   -1
#define SCEP_TOO_LARGE    -2


/*
 * The most bytes scep_base64_decode() writes for an encoded value of
 * "len" bytes; "out" must have room for that many.
 */
#define scep_base64_decoded_max(len)  (((len) / 4 + 1) * 3)


/*
 * Decodes a "message" value taken raw from a query string, in any of
 * the base64 dialects that SCEP clients send: standard base64
 * percent-encoded, "+" and "/" left raw, "+" turned into a space
 * ("%20" or a raw "+" that an intermediary form-decoded), the URL-safe
 * alphabet ("-" and "_"), missing padding, and line breaks ("%0A",
 * "%0D").  Anything else is SCEP_BAD_BASE64.  Decoding stops with
 * SCEP_TOO_LARGE as soon as more than "max" bytes would be written.
 * On success *outlen is the number of bytes written to "out".
 */
int scep_base64_decode(const unsigned char *in, size_t len,
    unsigned char *out, size_t max, size_t *outlen);


/*
 * Writes "len" bytes of "in" as standard base64, padded and
 * percent-encoded for a query string ("+" as "%2B", "/" as "%2F",
 * "=" as "%3D"): the canonical form forwarded to back ends.  Returns
 * the number of bytes written; "out" must have room for
 * scep_base64_encoded_max(len) bytes.
 */
#define scep_base64_encoded_max(len)  ((((len) + 2) / 3) * 4 * 3)

size_t scep_base64_encode_query(const unsigned char *in, size_t len,
    unsigned char *out);


/*
 * Whether a GetCACert, GetCACaps or GetNextCACert "message" (an optional
 * CA identifier such as "default" or "SCEP%20Authority") is at most
 * "max" bytes long and printable ASCII once percent-decoded.
 */
int scep_ca_ident_ok(const unsigned char *in, size_t len, size_t max);


#endif /* _SCEP_MESSAGE_H_INCLUDED_ */
