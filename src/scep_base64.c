
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * base64 in every dialect SCEP clients send in a query string, decoded;
 * one canonical form encoded.
 */


#include <string.h>

#include "scep_message_int.h"


/*
 * On x86-64 the canonical form is decoded 16 characters at a time with
 * SSSE3 where the CPU has it (every one since about 2008), as nginx's
 * compiler flags do not assume it.
 */

#if (defined __x86_64__ && defined __GNUC__ && !defined SCEP_B64_NO_SIMD)
#define SCEP_B64_SIMD  1
#include <tmmintrin.h>
#else
#define SCEP_B64_SIMD  0
#endif


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

#if (SCEP_B64_SIMD)
static int scep_base64_decode_simd(const unsigned char *in, size_t len,
    size_t *pos, unsigned char *out, size_t max, size_t *outlen,
    unsigned int *acc, unsigned int *quad)
    __attribute__((target("ssse3")));
#endif


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
    size_t                i, n, pad;
    unsigned int          k, acc, quad, a, b, d, e, f, g, h, j;
    unsigned char        *q, *qlast;
    const unsigned char  *p, *r, *last;

    n = 0;
    i = 0;
    acc = 0;
    quad = 0;
    pad = 0;
    canon = 1;

    for ( ;; ) {

        /*
         * Eight characters of the standard alphabet at a time, as long as
         * they come and the output has room, and the canonical escapes
         * "%2B" and "%2F" in between, a quad at a time; anything else
         * (other escapes, the URL-safe alphabet, padding, line breaks, a
         * full output) is left to the loop below, a character at a time.
         */

#if (SCEP_B64_SIMD)

        if (quad == 0 && pad == 0 && len - i >= 64
            && __builtin_cpu_supports("ssse3"))
        {
            if (scep_base64_decode_simd(in, len, &i, out, max, &n, &acc,
                                        &quad)
                != SCEP_OK)
            {
                return SCEP_TOO_LARGE;
            }
        }

#endif

        if (quad == 0 && pad == 0) {
            p = in + i;
            last = in + len;
            q = out + n;
            qlast = out + max;

            while (last - p >= 8 && qlast - q >= 6) {
                a = scep_b64_table[p[0]];
                b = scep_b64_table[p[1]];
                d = scep_b64_table[p[2]];
                e = scep_b64_table[p[3]];
                f = scep_b64_table[p[4]];
                g = scep_b64_table[p[5]];
                h = scep_b64_table[p[6]];
                j = scep_b64_table[p[7]];

                if (((a | b | d | e | f | g | h | j)
                     & (SCEP_B64_BAD | SCEP_B64_ALT)) == 0)
                {
                    acc = a << 18 | b << 12 | d << 6 | e;

                    q[0] = (unsigned char) (acc >> 16);
                    q[1] = (unsigned char) (acc >> 8);
                    q[2] = (unsigned char) acc;

                    acc = f << 18 | g << 12 | h << 6 | j;

                    q[3] = (unsigned char) (acc >> 16);
                    q[4] = (unsigned char) (acc >> 8);
                    q[5] = (unsigned char) acc;

                    p += 8;
                    q += 6;

                    continue;
                }

                /* one quad, its sextets one at a time */

                acc = 0;
                r = p;

                for (k = 0; k < 4 && r != last; k++) {
                    a = scep_b64_table[*r];

                    if (a < SCEP_B64_ALT) {
                        r++;

                    } else if (*r == '%' && last - r >= 3 && r[1] == '2'
                               && (r[2] == 'B' || r[2] == 'F'))
                    {
                        a = (r[2] == 'B') ? 62 : 63;
                        r += 3;

                    } else {
                        break;
                    }

                    acc = acc << 6 | a;
                }

                if (k < 4) {
                    break;
                }

                q[0] = (unsigned char) (acc >> 16);
                q[1] = (unsigned char) (acc >> 8);
                q[2] = (unsigned char) acc;

                p = r;
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


int
scep_base64_first_byte(const unsigned char *in, size_t len)
{
    int            c;
    size_t         i, symbols, got;
    unsigned char  out[3];

    /* the end of the first four symbols: "%0A" and "%0D" are none */

    symbols = 0;

    for (i = 0; i < len && symbols < 4; i++) {

        if (in[i] == '%') {
            c = scep_percent(&in[i], len - i);

            if (c < 0) {
                return -1;
            }

            i += 2;

            if (c == '\n' || c == '\r') {
                continue;
            }
        }

        symbols++;
    }

    if (symbols < 4
        || scep_base64_decode(in, i, out, sizeof(out), &got, NULL)
           != SCEP_OK
        || got == 0)
    {
        return -1;
    }

    return out[0];
}


#if (SCEP_B64_SIMD)

/*
 * The canonical form, 16 characters at a time: letters and digits, and
 * the escapes "%2B" and "%2F".  Each block's characters are turned into
 * sextets, an escape's sextet put in place of its "%" and its other two
 * characters taken out; the sextets short of 16 are carried on to the
 * next block's, 16 of them make 12 bytes.  It stops at anything else,
 * less than 18 characters before the end, or an output too full for 16
 * bytes more, and leaves the rest to scep_base64_decode(): *pos and
 * *outlen move on, and the sextets short of a whole quad are left in
 * *acc and *quad.  SCEP_TOO_LARGE if the whole quads do not fit.
 */

static int
scep_base64_decode_simd(const unsigned char *in, size_t len, size_t *pos,
    unsigned char *out, size_t max, size_t *outlen, unsigned int *acc,
    unsigned int *quad)
{
    int                   i;
    size_t                n, t, k;
    __m128i               v, v1, v2, up, lo, dg, pct, esc, ok, off, sx, ge;
    __m128i               carry, w;
    unsigned int          m, a;
    const unsigned char  *p, *last;
    unsigned char         rest[16];

    /* 16 bytes at [16 - k]: lanes k and above set */
    static const unsigned char  ramp[32] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    /* shuffles: at [16 - t], lanes up by t; at [16 + t], down by t */
    static const unsigned char  shift[48] = {
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80
    };

    p = in + *pos;
    last = in + len;
    n = *outlen;
    t = 0;
    carry = _mm_setzero_si128();

    while (last - p >= 18 && max - n >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);

        /* letters and digits, as signed bytes: 0x80 and above fail */

        up = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                           _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1)));
        lo = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
                           _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
        dg = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                           _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));

        off = _mm_or_si128(
                  _mm_or_si128(_mm_and_si128(up, _mm_set1_epi8(-'A')),
                               _mm_and_si128(lo, _mm_set1_epi8(26 - 'a'))),
                  _mm_and_si128(dg, _mm_set1_epi8(52 - '0')));

        sx = _mm_add_epi8(v, off);
        ok = _mm_or_si128(_mm_or_si128(up, lo), dg);

        pct = _mm_cmpeq_epi8(v, _mm_set1_epi8('%'));
        m = (unsigned int) _mm_movemask_epi8(pct);

        if ((unsigned int) _mm_movemask_epi8(_mm_or_si128(ok, pct))
            != 0xffff)
        {
            break;
        }

        k = 16;

        if (m) {
            /* every "%" starts "%2B" or "%2F" */

            v1 = _mm_loadu_si128((const __m128i *) (p + 1));
            v2 = _mm_loadu_si128((const __m128i *) (p + 2));

            esc = _mm_and_si128(
                      _mm_and_si128(pct,
                                    _mm_cmpeq_epi8(v1, _mm_set1_epi8('2'))),
                      _mm_or_si128(_mm_cmpeq_epi8(v2, _mm_set1_epi8('B')),
                                   _mm_cmpeq_epi8(v2, _mm_set1_epi8('F'))));

            if ((unsigned int) _mm_movemask_epi8(esc) != m) {
                break;
            }

            /* "%" becomes 62 ("+") or 63 ("/") */

            w = _mm_sub_epi8(_mm_set1_epi8(62),
                             _mm_cmpeq_epi8(v2, _mm_set1_epi8('F')));
            sx = _mm_or_si128(_mm_andnot_si128(pct, sx),
                              _mm_and_si128(pct, w));

            /* the two characters after each "%" out, the last one first */

            for (a = m; a; a &= ~(1u << i)) {
                i = 31 - __builtin_clz(a);

                ge = _mm_loadu_si128((const __m128i *) &ramp[15 - i]);
                sx = _mm_or_si128(_mm_andnot_si128(ge, sx),
                                  _mm_and_si128(ge, _mm_srli_si128(sx, 2)));
            }

            /*
             * the characters dropped, counted by hand: without -mpopcnt
             * __builtin_popcount() is a library call
             */

            k = 16;

            for (a = ((m << 1) | (m << 2)) & 0xffff; a; a &= a - 1) {
                k--;
            }

            ge = _mm_loadu_si128((const __m128i *) &ramp[16 - k]);
            sx = _mm_andnot_si128(ge, sx);

            /* an escape at the block's end takes characters of the next */

            p += (m & 0x8000) ? 2 : (m & 0x4000) ? 1 : 0;
        }

        p += 16;

        /* the carried sextets, then the block's */

        w = _mm_or_si128(carry,
                         _mm_shuffle_epi8(sx,
                             _mm_loadu_si128((const __m128i *)
                                             &shift[16 - t])));

        if (t + k < 16) {
            carry = w;
            t += k;
            continue;
        }

        carry = _mm_shuffle_epi8(sx,
                    _mm_loadu_si128((const __m128i *) &shift[32 - t]));
        t = t + k - 16;

        w = _mm_maddubs_epi16(w, _mm_set1_epi32(0x01400140));
        w = _mm_madd_epi16(w, _mm_set1_epi32(0x00011000));
        w = _mm_shuffle_epi8(w, _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8,
                                              14, 13, 12, -1, -1, -1, -1));

        _mm_storeu_si128((__m128i *) &out[n], w);
        n += 12;
    }

    *pos = p - in;

    /* the sextets left: whole quads written, the rest handed on */

    _mm_storeu_si128((__m128i *) rest, carry);

    for (k = 0; k + 4 <= t; k += 4) {
        if (max - n < 3) {
            return SCEP_TOO_LARGE;
        }

        a = (unsigned int) rest[k] << 18 | (unsigned int) rest[k + 1] << 12
            | (unsigned int) rest[k + 2] << 6 | rest[k + 3];

        out[n++] = (unsigned char) (a >> 16);
        out[n++] = (unsigned char) (a >> 8);
        out[n++] = (unsigned char) a;
    }

    *outlen = n;
    *acc = 0;
    *quad = 0;

    for ( /* void */ ; k < t; k++) {
        *acc = *acc << 6 | rest[k];
        (*quad)++;
    }

    return SCEP_OK;
}

#endif


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
