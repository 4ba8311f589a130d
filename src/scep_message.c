
/*
 * Copyright (C) ngx_http_scep_module authors
 */


#include "scep_message.h"


/* values of the decode table besides 0..63 */
#define SCEP_B64_BAD    0xff
#define SCEP_B64_SKIP   0xfe    /* line breaks */
#define SCEP_B64_PAD    0xfd


static unsigned char scep_b64_value(unsigned char c);
static int scep_hex(unsigned char c);


static const char  scep_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


static unsigned char
scep_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    switch (c) {

    case '+':
    case '-':
    case ' ':    /* "+" after form decoding */
        return 62;

    case '/':
    case '_':
        return 63;

    case '=':
        return SCEP_B64_PAD;

    case '\r':
    case '\n':
        return SCEP_B64_SKIP;

    default:
        return SCEP_B64_BAD;
    }
}


static int
scep_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
scep_base64_decode(const unsigned char *in, size_t len, unsigned char *out,
    size_t max, size_t *outlen)
{
    int            hi, lo;
    size_t         i, n, pad;
    unsigned int   acc, quad;
    unsigned char  c, v;

    n = 0;
    acc = 0;
    quad = 0;
    pad = 0;

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c == '%') {
            if (len - i < 3) {
                return SCEP_BAD_BASE64;
            }

            hi = scep_hex(in[i + 1]);
            lo = scep_hex(in[i + 2]);

            if (hi < 0 || lo < 0) {
                return SCEP_BAD_BASE64;
            }

            c = (unsigned char) (hi << 4 | lo);
            i += 2;
        }

        v = scep_b64_value(c);

        if (v == SCEP_B64_SKIP) {
            continue;
        }

        if (v == SCEP_B64_BAD) {
            return SCEP_BAD_BASE64;
        }

        if (v == SCEP_B64_PAD) {
            pad++;
            continue;
        }

        if (pad) {
            /* data after padding */
            return SCEP_BAD_BASE64;
        }

        acc = acc << 6 | v;

        if (++quad == 4) {
            if (max - n < 3) {
                return SCEP_TOO_LARGE;
            }

            out[n++] = (unsigned char) (acc >> 16);
            out[n++] = (unsigned char) (acc >> 8);
            out[n++] = (unsigned char) acc;

            acc = 0;
            quad = 0;
        }
    }

    switch (quad) {

    case 0:
        if (pad) {
            return SCEP_BAD_BASE64;
        }
        break;

    case 2:
        if (pad != 0 && pad != 2) {
            return SCEP_BAD_BASE64;
        }

        if (max - n < 1) {
            return SCEP_TOO_LARGE;
        }

        out[n++] = (unsigned char) (acc >> 4);
        break;

    case 3:
        if (pad != 0 && pad != 1) {
            return SCEP_BAD_BASE64;
        }

        if (max - n < 2) {
            return SCEP_TOO_LARGE;
        }

        out[n++] = (unsigned char) (acc >> 10);
        out[n++] = (unsigned char) (acc >> 2);
        break;

    default: /* 1: a lone sextet is never valid */
        return SCEP_BAD_BASE64;
    }

    *outlen = n;

    return SCEP_OK;
}


int
scep_ca_ident_ok(const unsigned char *in, size_t len, size_t max)
{
    int            hi, lo;
    size_t         i;
    unsigned char  c;

    if (len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c == '%') {
            if (len - i < 3) {
                return 0;
            }

            hi = scep_hex(in[i + 1]);
            lo = scep_hex(in[i + 2]);

            if (hi < 0 || lo < 0) {
                return 0;
            }

            c = (unsigned char) (hi << 4 | lo);
            i += 2;
        }

        if (c < 0x20 || c > 0x7e) {
            return 0;
        }
    }

    return 1;
}


size_t
scep_base64_encode_query(const unsigned char *in, size_t len,
    unsigned char *out)
{
    size_t          i, n, k;
    unsigned int    acc;
    unsigned char   sextet[4];

    n = 0;

    for (i = 0; i < len; i += 3) {
        acc = (unsigned int) in[i] << 16;

        if (i + 1 < len) {
            acc |= (unsigned int) in[i + 1] << 8;
        }

        if (i + 2 < len) {
            acc |= in[i + 2];
        }

        sextet[0] = scep_b64_alphabet[(acc >> 18) & 0x3f];
        sextet[1] = scep_b64_alphabet[(acc >> 12) & 0x3f];
        sextet[2] = (i + 1 < len) ? scep_b64_alphabet[(acc >> 6) & 0x3f] : '=';
        sextet[3] = (i + 2 < len) ? scep_b64_alphabet[acc & 0x3f] : '=';

        for (k = 0; k < 4; k++) {
            switch (sextet[k]) {

            case '+':
                out[n++] = '%'; out[n++] = '2'; out[n++] = 'B';
                break;

            case '/':
                out[n++] = '%'; out[n++] = '2'; out[n++] = 'F';
                break;

            case '=':
                out[n++] = '%'; out[n++] = '3'; out[n++] = 'D';
                break;

            default:
                out[n++] = sextet[k];
            }
        }
    }

    return n;
}
