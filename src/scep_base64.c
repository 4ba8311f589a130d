
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * base64 in every dialect SCEP clients send in a query string, decoded;
 * one canonical form encoded.
 */


#include <string.h>

#include "scep_message_int.h"


/*
 * The decoding table: 0..63 a sextet of the standard alphabet; with
 * SCEP_B64_ALT a sextet that is not written that way in the canonical
 * form ("+", "/", "-", "_", " "); SCEP_B64_BAD and above, a character
 * that needs a closer look.
 */

#define SCEP_B64_ALT      0x40
#define SCEP_B64_BAD      0x80
#define SCEP_B64_PERCENT  0x81
#define SCEP_B64_PAD      0x82
#define SCEP_B64_SKIP     0x83    /* line breaks */


static int scep_hex(unsigned char c);


static const unsigned char  scep_b64_table[256] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x83, 0x80, 0x80, 0x83, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x7e, 0x80, 0x80, 0x80, 0x80, 0x81, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x7e, 0x80, 0x7e, 0x80, 0x7f,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b,
    0x3c, 0x3d, 0x80, 0x80, 0x80, 0x82, 0x80, 0x80,
    0x80, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
    0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x80, 0x80, 0x80, 0x80, 0x7f,
    0x80, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
    0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
    0x31, 0x32, 0x33, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80
};


/* the canonical form of each sextet: length, then the bytes */

static const unsigned char  scep_b64_canonical[64][4] = {
    { 1, 'A', 0, 0 }, { 1, 'B', 0, 0 }, { 1, 'C', 0, 0 }, { 1, 'D', 0, 0 },
    { 1, 'E', 0, 0 }, { 1, 'F', 0, 0 }, { 1, 'G', 0, 0 }, { 1, 'H', 0, 0 },
    { 1, 'I', 0, 0 }, { 1, 'J', 0, 0 }, { 1, 'K', 0, 0 }, { 1, 'L', 0, 0 },
    { 1, 'M', 0, 0 }, { 1, 'N', 0, 0 }, { 1, 'O', 0, 0 }, { 1, 'P', 0, 0 },
    { 1, 'Q', 0, 0 }, { 1, 'R', 0, 0 }, { 1, 'S', 0, 0 }, { 1, 'T', 0, 0 },
    { 1, 'U', 0, 0 }, { 1, 'V', 0, 0 }, { 1, 'W', 0, 0 }, { 1, 'X', 0, 0 },
    { 1, 'Y', 0, 0 }, { 1, 'Z', 0, 0 }, { 1, 'a', 0, 0 }, { 1, 'b', 0, 0 },
    { 1, 'c', 0, 0 }, { 1, 'd', 0, 0 }, { 1, 'e', 0, 0 }, { 1, 'f', 0, 0 },
    { 1, 'g', 0, 0 }, { 1, 'h', 0, 0 }, { 1, 'i', 0, 0 }, { 1, 'j', 0, 0 },
    { 1, 'k', 0, 0 }, { 1, 'l', 0, 0 }, { 1, 'm', 0, 0 }, { 1, 'n', 0, 0 },
    { 1, 'o', 0, 0 }, { 1, 'p', 0, 0 }, { 1, 'q', 0, 0 }, { 1, 'r', 0, 0 },
    { 1, 's', 0, 0 }, { 1, 't', 0, 0 }, { 1, 'u', 0, 0 }, { 1, 'v', 0, 0 },
    { 1, 'w', 0, 0 }, { 1, 'x', 0, 0 }, { 1, 'y', 0, 0 }, { 1, 'z', 0, 0 },
    { 1, '0', 0, 0 }, { 1, '1', 0, 0 }, { 1, '2', 0, 0 }, { 1, '3', 0, 0 },
    { 1, '4', 0, 0 }, { 1, '5', 0, 0 }, { 1, '6', 0, 0 }, { 1, '7', 0, 0 },
    { 1, '8', 0, 0 }, { 1, '9', 0, 0 },
    { 3, '%', '2', 'B' }, { 3, '%', '2', 'F' }
};


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


/* the byte a "%XX" escape at p stands for, or -1 */

int
scep_percent(const unsigned char *p, size_t left)
{
    int  hi, lo;

    if (left < 3) {
        return -1;
    }

    hi = scep_hex(p[1]);
    lo = scep_hex(p[2]);

    if (hi < 0 || lo < 0) {
        return -1;
    }

    return hi << 4 | lo;
}


int
scep_base64_decode(const unsigned char *in, size_t len, unsigned char *out,
    size_t max, size_t *outlen, int *canonical)
{
    int                   c, canon;
    size_t                i, n, pad, blocks, room;
    unsigned int          acc, quad, a, b, d, e;
    unsigned char        *q;
    const unsigned char  *p;

    n = 0;
    i = 0;
    acc = 0;
    quad = 0;
    pad = 0;
    canon = 1;

    for ( ;; ) {

        /*
         * Four characters of the standard alphabet at a time, as long as
         * they come and the output has room; anything else (escapes, the
         * URL-safe alphabet, padding, line breaks, a full output) is left
         * to the loop below.
         */

        blocks = 0;

        if (quad == 0 && pad == 0) {
            blocks = (len - i) / 4;
            room = (max - n) / 3;

            if (blocks > room) {
                blocks = room;
            }
        }

        if (blocks) {
            p = in + i;
            q = out + n;

            while (blocks--) {
                a = scep_b64_table[p[0]];
                b = scep_b64_table[p[1]];
                d = scep_b64_table[p[2]];
                e = scep_b64_table[p[3]];

                if ((a | b | d | e) & (SCEP_B64_BAD | SCEP_B64_ALT)) {
                    break;
                }

                acc = a << 18 | b << 12 | d << 6 | e;

                q[0] = (unsigned char) (acc >> 16);
                q[1] = (unsigned char) (acc >> 8);
                q[2] = (unsigned char) acc;

                p += 4;
                q += 3;
            }

            i = p - in;
            n = q - out;
            acc = 0;
        }

        if (i == len) {
            break;
        }

        /* one character or escape at a time */

        c = in[i];
        a = scep_b64_table[c];

        if (a == SCEP_B64_PERCENT) {
            c = scep_percent(&in[i], len - i);

            if (c < 0) {
                return SCEP_BAD_BASE64;
            }

            if (!(c == '+' || c == '/' || c == '=')
                || in[i + 1] > '9' || in[i + 2] > 'F')
            {
                /* the canonical form escapes these three, upper case */
                canon = 0;
            }

            i += 3;
            a = scep_b64_table[c];

            if (a == SCEP_B64_PERCENT) {
                return SCEP_BAD_BASE64;
            }

            a &= ~SCEP_B64_ALT;

        } else {
            i++;

            if (a == SCEP_B64_PAD) {
                canon = 0;
            }
        }

        if (a == SCEP_B64_SKIP) {
            canon = 0;
            continue;
        }

        if (a == SCEP_B64_BAD) {
            return SCEP_BAD_BASE64;
        }

        if (a == SCEP_B64_PAD) {
            pad++;
            continue;
        }

        if (pad) {
            /* data after padding */
            return SCEP_BAD_BASE64;
        }

        if (a & SCEP_B64_ALT) {
            canon = 0;
        }

        acc = acc << 6 | (a & 0x3f);

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

        if (pad == 0) {
            canon = 0;
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

        if (pad == 0) {
            canon = 0;
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

    if (canonical) {
        *canonical = canon;
    }

    return SCEP_OK;
}


size_t
scep_base64_encode_query(const unsigned char *in, size_t len,
    unsigned char *out)
{
    size_t                i, n;
    unsigned int          acc;
    const unsigned char  *e;

    n = 0;

    for (i = 0; i + 3 <= len; i += 3) {
        acc = (unsigned int) in[i] << 16 | (unsigned int) in[i + 1] << 8
              | in[i + 2];

        e = scep_b64_canonical[(acc >> 18) & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];

        e = scep_b64_canonical[(acc >> 12) & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];

        e = scep_b64_canonical[(acc >> 6) & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];

        e = scep_b64_canonical[acc & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];
    }

    if (i < len) {
        acc = (unsigned int) in[i] << 16;

        if (i + 1 < len) {
            acc |= (unsigned int) in[i + 1] << 8;
        }

        e = scep_b64_canonical[(acc >> 18) & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];

        e = scep_b64_canonical[(acc >> 12) & 0x3f];
        memcpy(&out[n], &e[1], 3);
        n += e[0];

        if (i + 1 < len) {
            e = scep_b64_canonical[(acc >> 6) & 0x3f];
            memcpy(&out[n], &e[1], 3);
            n += e[0];

        } else {
            memcpy(&out[n], "%3D", 3);
            n += 3;
        }

        memcpy(&out[n], "%3D", 3);
        n += 3;
    }

    return n;
}
