
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * SCEP query strings: their "operation" and "message" parameters found as
 * the back end reads them, and the CA identifier of GetCACert, GetCACaps
 * and GetNextCACert checked.
 */


#include <string.h>

#include "scep_message_int.h"


/*
 * On x86-64, where SSE2 is part of the architecture, "%u" escapes are
 * counted 16 positions at a time: a GET PKIOperation query of 60 KB has
 * a "%2B" or "%2F" every few dozen characters, too many for memchr().
 */

#if (defined __x86_64__ && defined __GNUC__ && !defined SCEP_QUERY_NO_SIMD)
#define SCEP_QUERY_SIMD  1
#include <emmintrin.h>
#else
#define SCEP_QUERY_SIMD  0
#endif


static size_t scep_query_u_escapes(const unsigned char *p, size_t len);
static int scep_query_name_is(const unsigned char *p,
    const unsigned char *last, const char *name);


/* how many "%" are followed by "u" or "U" */

static size_t
scep_query_u_escapes(const unsigned char *p, size_t len)
{
    size_t        i, n;
#if (SCEP_QUERY_SIMD)
    unsigned int  m;
    __m128i       a, b, hit;
#endif

    i = 0;
    n = 0;

#if (SCEP_QUERY_SIMD)

    /* positions i .. i + 15, each with the byte after it */

    for ( ; i + 17 <= len; i += 16) {
        a = _mm_loadu_si128((const __m128i *) (p + i));
        b = _mm_loadu_si128((const __m128i *) (p + i + 1));

        hit = _mm_and_si128(_mm_cmpeq_epi8(a, _mm_set1_epi8('%')),
                            _mm_cmpeq_epi8(_mm_or_si128(b,
                                                        _mm_set1_epi8(0x20)),
                                           _mm_set1_epi8('u')));

        for (m = (unsigned int) _mm_movemask_epi8(hit); m; m &= m - 1) {
            n++;
        }
    }

#endif

    for ( ; i + 1 < len; i++) {
        if (p[i] == '%' && (p[i + 1] | 0x20) == 'u') {
            n++;
        }
    }

    return n;
}


/*
 * A name matches as the back end would read it: NDES (ASP.NET) decodes
 * percent escapes and "+" in names and compares them case-insensitively,
 * so "op%65ration", "OPERATION" and "operation" are the same parameter,
 * and a name without "=" is that parameter with an empty value.
 */

static int
scep_query_name_is(const unsigned char *p, const unsigned char *last,
    const char *name)
{
    int     c;
    size_t  k;

    for (k = 0; p < last; k++) {
        c = *p;

        if (c == '%') {
            c = scep_percent(p, last - p);

            if (c < 0) {
                return 0;
            }

            p += 3;

        } else {
            if (c == '+') {
                c = ' ';
            }

            p++;
        }

        if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        if (name[k] == '\0' || c != name[k]) {
            return 0;
        }
    }

    return name[k] == '\0';
}


void
scep_query_scan(const unsigned char *args, size_t len, scep_query_t *q)
{
    const unsigned char  *p, *last, *name, *eq, *amp, *value;

    memset(q, 0, sizeof(scep_query_t));

    if (len == 0) {
        return;
    }

    q->u_escapes = scep_query_u_escapes(args, len);

    p = args;
    last = args + len;

    while (p < last) {
        name = p;

        amp = memchr(p, '&', last - p);
        if (amp == NULL) {
            amp = last;
        }

        eq = memchr(p, '=', amp - p);

        if (eq == NULL) {
            eq = amp;
            value = amp;

        } else {
            value = eq + 1;
        }

        if (scep_query_name_is(name, eq, "operation")) {
            q->operations++;
            q->operation = value;
            q->operation_len = amp - value;

        } else if (scep_query_name_is(name, eq, "message")) {
            q->messages++;
            q->message = value;
            q->message_len = amp - value;
        }

        p = amp + 1;
    }
}


int
scep_ca_ident_ok(const unsigned char *in, size_t len, size_t max)
{
    int     c;
    size_t  i;

    if (len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = in[i];

        if (c == '%') {
            c = scep_percent(&in[i], len - i);
            i += 2;
        }

        if (c < 0x20 || c > 0x7e) {
            return 0;
        }
    }

    return 1;
}
