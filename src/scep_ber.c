
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The BER reader of the pkiMessage checks: elements, a cursor over the
 * contents of a constructed one, and the validators of what OpenSSL
 * checks in every element (INTEGERs, OIDs, BIT STRINGs, times, strings,
 * names, attributes).
 */


#include <stdio.h>
#include <string.h>

#include "scep_message_int.h"


/* deepest nesting of BER elements accepted, and of constructed strings */
#define SCEP_BER_MAX_DEPTH     32
#define SCEP_BER_MAX_PIECES    5


static int scep_ber_universal_ok(const scep_ber_t *el);
static int scep_unicode_ok(const unsigned char *p, size_t n, size_t width);
static int scep_ber_integer_ok(const scep_ber_t *el, size_t max);
static int scep_ber_string_ok(const scep_ber_t *el);


/*
 * Reads the identifier and length octets at *pos and leaves *pos at the
 * contents.  *tag is the first identifier octet; a definite length must
 * fit before "end"; an indefinite one is for constructed elements only.
 */

int
scep_ber_header(const unsigned char **pos, const unsigned char *end,
    unsigned int *tag, size_t *vlen, int *indef)
{
    size_t                n, l;
    const unsigned char  *p;

    p = *pos;

    if (end - p < 2) {
        return 0;
    }

    *tag = *p++;

    if ((*tag & SCEP_BER_HIGH_TAG) == SCEP_BER_HIGH_TAG) {

        /* a high tag number: base-128 octets, the last without bit 8 */

        do {
            if (p == end) {
                return 0;
            }

        } while (*p++ & 0x80);

        if (p == end) {
            return 0;
        }
    }

    *indef = 0;

    if (*p < 0x80) {
        l = *p++;

    } else if (*p == 0x80) {
        p++;

        if ((*tag & SCEP_BER_CONSTRUCTED) == 0) {
            return 0;
        }

        *indef = 1;
        l = 0;

    } else {
        n = *p++ & 0x7f;

        if (n > (size_t) (end - p)) {
            return 0;
        }

        l = 0;

        while (n--) {
            if (l > ((size_t) -1 >> 8)) {
                return 0;
            }

            l = l << 8 | *p++;
        }
    }

    if (l > (size_t) (end - p)) {
        return 0;
    }

    *vlen = l;
    *pos = p;

    return 1;
}


/*
 * Reads the element at "p", which must end before "end".  With "deep",
 * every element nested in a constructed one is checked as well;
 * otherwise only as far as an indefinite length needs to find its end.
 */

int
scep_ber_read(const unsigned char *p, const unsigned char *end,
    scep_ber_t *el, int deep, unsigned int depth)
{
    int                   indef;
    size_t                vlen;
    unsigned int          tag;
    scep_ber_t            child;
    const unsigned char  *q;

    if (depth > SCEP_BER_MAX_DEPTH) {
        return 0;
    }

    el->hdr = p;

    if (!scep_ber_header(&p, end, &tag, &vlen, &indef)) {
        return 0;
    }

    if (tag == 0) {
        /* end-of-contents where no indefinite length is open */
        return 0;
    }

    el->tag = tag;
    el->val = p;

    if (!indef) {
        el->vend = p + vlen;
        el->next = el->vend;

        if (deep && !scep_ber_universal_ok(el)) {
            return 0;
        }

        if (deep && (tag & SCEP_BER_CONSTRUCTED)) {
            for (q = el->val; q != el->vend; q = child.next) {
                if (!scep_ber_read(q, el->vend, &child, 1, depth + 1)) {
                    return 0;
                }
            }
        }

        return 1;
    }

    for (q = p; ; q = child.next) {
        if (end - q >= 2 && q[0] == 0 && q[1] == 0) {
            el->vend = q;
            el->next = q + 2;
            return !deep || scep_ber_universal_ok(el);
        }

        if (!scep_ber_read(q, end, &child, deep, depth + 1)) {
            return 0;
        }
    }
}


/*
 * The universal types whose contents OpenSSL checks wherever they are,
 * even as ANY: INTEGER, ENUMERATED, OID, BOOLEAN and NULL primitive and
 * well-formed, SEQUENCE and SET constructed, BIT STRING with its unused
 * bits, BMPString and UniversalString of whole characters, times not too
 * short; constructed strings of pieces it can gather.
 */

static int
scep_ber_universal_ok(const scep_ber_t *el)
{
    int         first;
    size_t      n;
    scep_ber_t  v;

    n = el->vend - el->val;

    if ((el->tag & 0xc0) == 0
        && (el->tag & SCEP_BER_CONSTRUCTED)
        && el->tag != SCEP_BER_SEQUENCE
        && el->tag != SCEP_BER_SET)
    {
        /* a constructed string: its pieces gathered, then as primitive */

        n = 0;
        first = -1;

        if (!scep_ber_pieces(el, 0, 0, NULL, &n, &first)) {
            return 0;
        }

        switch (el->tag & ~SCEP_BER_CONSTRUCTED) {

        case SCEP_BER_BIT_STRING:
            return first >= 0 && first <= 7;

        case SCEP_BER_UNIVERSAL_STRING:
            return n % 4 == 0;

        case SCEP_BER_BMP_STRING:
            return n % 2 == 0;

        case SCEP_BER_UTC_TIME:
            return n >= 13;

        case SCEP_BER_GEN_TIME:
            return n >= 15;

        case SCEP_BER_BOOLEAN:
        case SCEP_BER_INTEGER:
        case SCEP_BER_ENUMERATED:
        case SCEP_BER_NULL:
        case SCEP_BER_OID:
            return 0;

        default:
            return 1;
        }
    }

    switch (el->tag) {

    case SCEP_BER_BOOLEAN:
        return n == 1;

    case SCEP_BER_INTEGER:
    case SCEP_BER_ENUMERATED:
        v = *el;
        v.tag = SCEP_BER_INTEGER;
        return scep_ber_integer_ok(&v, (size_t) -1);

    case SCEP_BER_BIT_STRING:
        return n > 0 && el->val[0] <= 7;

    case SCEP_BER_NULL:
        return n == 0;

    case SCEP_BER_OID:
        return scep_ber_oid_ok(el);

    case SCEP_BER_UNIVERSAL_STRING:
        return n % 4 == 0;

    case SCEP_BER_BMP_STRING:
        return n % 2 == 0;

    case SCEP_BER_UTC_TIME:
        return n >= 13;

    case SCEP_BER_GEN_TIME:
        return n >= 15;

    case SCEP_BER_SEQUENCE & ~SCEP_BER_CONSTRUCTED:
    case SCEP_BER_SET & ~SCEP_BER_CONSTRUCTED:
        return 0;

    default:
        return 1;
    }
}


/* a BIT STRING under any tag: its unused bits, 0 to 7, come first */

int
scep_ber_bits_ok(const scep_ber_t *el)
{
    int     first;
    size_t  n;

    if (!(el->tag & SCEP_BER_CONSTRUCTED)) {
        return el->val != el->vend && el->val[0] <= 7;
    }

    n = 0;
    first = -1;

    return scep_ber_pieces(el, 0, 0, NULL, &n, &first)
           && first >= 0 && first <= 7;
}


/*
 * The pieces of a constructed string, as OpenSSL gathers them: at most
 * SCEP_BER_MAX_PIECES levels of constructed pieces, each piece of the tag
 * "tag" (primitive or constructed) unless "tag" is 0.  Adds their
 * length to *len, copies them to "out" unless it is NULL, and sets
 * *first to the first octet if it is still -1.
 */

int
scep_ber_pieces(const scep_ber_t *el, unsigned int tag, unsigned int depth,
    unsigned char *out, size_t *len, int *first)
{
    size_t      n;
    scep_ber_t  piece;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, 0, &piece)
            || (tag != 0
                && (piece.tag & ~SCEP_BER_CONSTRUCTED) != tag))
        {
            return 0;
        }

        if (piece.tag & SCEP_BER_CONSTRUCTED) {
            if (depth >= SCEP_BER_MAX_PIECES
                || !scep_ber_pieces(&piece, tag, depth + 1, out, len, first))
            {
                return 0;
            }

            continue;
        }

        n = piece.vend - piece.val;

        if (*first < 0 && n > 0) {
            *first = piece.val[0];
        }

        if (out != NULL) {
            memcpy(out + *len, piece.val, n);
        }

        *len += n;
    }

    return 1;
}


/*
 * Characters of "width" octets (1: UTF-8) that OpenSSL can turn into
 * UTF-8 when it compares names: no surrogates, nothing above U+10FFFF,
 * no overlong forms.
 */

static int
scep_unicode_ok(const unsigned char *p, size_t n, size_t width)
{
    size_t    i, k, more;
    uint32_t  c, min;

    for (i = 0; i < n; /* void */ ) {

        if (width > 1) {
            if (n - i < width) {
                return 0;
            }

            c = 0;

            for (k = 0; k < width; k++) {
                c = c << 8 | p[i++];
            }

        } else {
            c = p[i++];

            if (c < 0x80) {
                continue;
            }

            if ((c & 0xe0) == 0xc0) {
                more = 1;
                c &= 0x1f;
                min = 0x80;

            } else if ((c & 0xf0) == 0xe0) {
                more = 2;
                c &= 0x0f;
                min = 0x800;

            } else if ((c & 0xf8) == 0xf0) {
                more = 3;
                c &= 0x07;
                min = 0x10000;

            } else {
                return 0;
            }

            if (n - i < more) {
                return 0;
            }

            while (more--) {
                if ((p[i] & 0xc0) != 0x80) {
                    return 0;
                }

                c = c << 6 | (p[i++] & 0x3f);
            }

            if (c < min) {
                return 0;
            }
        }

        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


void
scep_cur_init(scep_cur_t *cur, const scep_ber_t *el)
{
    cur->p = el->val;
    cur->end = el->vend;
}


int
scep_cur_done(const scep_cur_t *cur)
{
    return cur->p == cur->end;
}


/* the first identifier octet of the next element, -1 at the end */

int
scep_cur_peek(const scep_cur_t *cur)
{
    return (cur->p != cur->end) ? *cur->p : -1;
}


/* reads the next element, which must have the tag "tag" (0: any) */

int
scep_cur_next(scep_cur_t *cur, unsigned int tag, scep_ber_t *el)
{
    if (cur->p == cur->end
        || (tag != 0 && *cur->p != tag)
        || !scep_ber_read(cur->p, cur->end, el, 0, 0))
    {
        return 0;
    }

    cur->p = el->next;

    return 1;
}


/* reads the next element if it has the tag "tag"; else el->tag is 0 */

int
scep_cur_optional(scep_cur_t *cur, unsigned int tag, scep_ber_t *el)
{
    if (scep_cur_peek(cur) != (int) tag) {
        el->tag = 0;
        return 1;
    }

    return scep_cur_next(cur, tag, el);
}


/*
 * reads the next Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER,
 * attrValues SET OF }: its type and its values
 */

int
scep_cur_attribute(scep_cur_t *cur, scep_ber_t *oid, scep_ber_t *values)
{
    scep_ber_t  attr;
    scep_cur_t  in;

    if (!scep_cur_next(cur, SCEP_BER_SEQUENCE, &attr)) {
        return 0;
    }

    scep_cur_init(&in, &attr);

    return scep_cur_oid(&in, oid) && scep_cur_next(&in, SCEP_BER_SET, values);
}


/* as OpenSSL: not empty, no 0x80 leading a sub-identifier, complete */

int
scep_ber_oid_ok(const scep_ber_t *el)
{
    const unsigned char  *p;

    if (el->tag != SCEP_BER_OID || el->val == el->vend
        || (el->vend[-1] & 0x80))
    {
        return 0;
    }

    for (p = el->val; p != el->vend; p++) {
        if (*p == 0x80 && (p == el->val || !(p[-1] & 0x80))) {
            return 0;
        }
    }

    return 1;
}


/* not empty, minimal, and at most "max" octets */

static int
scep_ber_integer_ok(const scep_ber_t *el, size_t max)
{
    size_t                n;
    const unsigned char  *p;

    p = el->val;
    n = el->vend - el->val;

    if (el->tag != SCEP_BER_INTEGER || n == 0 || n > max) {
        return 0;
    }

    if (n > 1
        && ((p[0] == 0x00 && !(p[1] & 0x80))
            || (p[0] == 0xff && (p[1] & 0x80))))
    {
        return 0;
    }

    return 1;
}


int
scep_cur_oid(scep_cur_t *cur, scep_ber_t *el)
{
    return scep_cur_next(cur, SCEP_BER_OID, el) && scep_ber_oid_ok(el);
}


int
scep_cur_integer(scep_cur_t *cur, size_t max, scep_ber_t *el)
{
    return scep_cur_next(cur, SCEP_BER_INTEGER, el)
           && scep_ber_integer_ok(el, max);
}


/* AlgorithmIdentifier ::= SEQUENCE { OID, parameters ANY OPTIONAL } */

int
scep_cur_alg(scep_cur_t *cur, scep_ber_t *oid, scep_ber_t *params)
{
    scep_ber_t  seq;
    scep_cur_t  in;

    if (!scep_cur_next(cur, SCEP_BER_SEQUENCE, &seq)) {
        return 0;
    }

    scep_cur_init(&in, &seq);

    if (!scep_cur_oid(&in, oid)) {
        return 0;
    }

    params->tag = 0;

    if (!scep_cur_done(&in) && !scep_cur_next(&in, 0, params)) {
        return 0;
    }

    if (params->tag == SCEP_BER_NULL && params->val != params->vend) {
        return 0;
    }

    return scep_cur_done(&in);
}


/* an OCTET STRING, primitive or (BER) constructed */

int
scep_cur_octets(scep_cur_t *cur, scep_ber_t *el)
{
    int     first;
    size_t  n;

    if (scep_cur_peek(cur) == (SCEP_BER_OCTET_STRING | SCEP_BER_CONSTRUCTED)) {

        /* BER: its pieces are OCTET STRINGs, as OpenSSL requires too */

        n = 0;
        first = -1;

        return scep_cur_next(cur, 0, el)
               && scep_ber_pieces(el, SCEP_BER_OCTET_STRING, 0, NULL, &n,
                                  &first);
    }

    return scep_cur_next(cur, SCEP_BER_OCTET_STRING, el);
}


/* Name ::= SEQUENCE OF SET OF SEQUENCE { OID, ANY } */

int
scep_ber_name_ok(const scep_ber_t *el)
{
    scep_ber_t  rdn, atv, oid, value;
    scep_cur_t  names, set, in;

    scep_cur_init(&names, el);

    while (!scep_cur_done(&names)) {
        if (!scep_cur_next(&names, SCEP_BER_SET, &rdn)) {
            return 0;
        }

        scep_cur_init(&set, &rdn);

        while (!scep_cur_done(&set)) {
            if (!scep_cur_next(&set, SCEP_BER_SEQUENCE, &atv)) {
                return 0;
            }

            scep_cur_init(&in, &atv);

            if (!scep_cur_oid(&in, &oid)
                || !scep_cur_next(&in, 0, &value)
                || !scep_cur_done(&in)
                || !scep_ber_string_ok(&value))
            {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * A value in a Name: one of the universal types OpenSSL takes there (its
 * ASN1_PRINTABLE), primitive but for SEQUENCE, in characters it can
 * compare as UTF-8.  Constructed strings, which no encoder puts in names,
 * are refused.
 */

static int
scep_ber_string_ok(const scep_ber_t *el)
{
    size_t  n;

    n = el->vend - el->val;

    switch (el->tag) {

    case SCEP_BER_UTF8_STRING:
        return scep_unicode_ok(el->val, n, 1);

    case SCEP_BER_UNIVERSAL_STRING:
        return n % 4 == 0 && scep_unicode_ok(el->val, n, 4);

    case SCEP_BER_BMP_STRING:
        return n % 2 == 0 && scep_unicode_ok(el->val, n, 2);

    case SCEP_BER_SEQUENCE:
    case SCEP_BER_BIT_STRING:
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x0b:
    case 0x0d:
    case 0x0e:
    case 0x0f:
    case 0x12:                              /* NumericString */
    case SCEP_BER_PRINTABLE:
    case 0x14:                              /* T61String */
    case 0x16:                              /* IA5String */
    case 0x1d:
        return 1;

    default:
        return 0;
    }
}


/* SET OF Attribute, Attribute ::= SEQUENCE { OID, SET OF ANY } */

int
scep_ber_attributes_ok(const scep_ber_t *el)
{
    scep_ber_t  attr, oid, values;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &attr)) {
            return 0;
        }

        scep_cur_init(&in, &attr);

        if (!scep_cur_oid(&in, &oid)
            || !scep_cur_next(&in, SCEP_BER_SET, &values)
            || !scep_cur_done(&in))
        {
            return 0;
        }
    }

    return 1;
}


int
scep_oid_is(const scep_ber_t *el, const unsigned char *oid, size_t len)
{
    return (size_t) (el->vend - el->val) == len
           && memcmp(el->val, oid, len) == 0;
}


uint32_t
scep_oid_bits(const scep_oid_t *table, size_t n, const scep_ber_t *el)
{
    size_t  i;

    i = scep_oid_index(table, n, el);

    return (i < n) ? table[i].bits : 0;
}


size_t
scep_oid_index(const scep_oid_t *table, size_t n, const scep_ber_t *el)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (scep_oid_is(el, table[i].oid, table[i].len)) {
            break;
        }
    }

    return i;
}


/*
 * An OID element in dotted form, "1.3.14.3.2.7", always NUL-terminated
 * within "size" bytes (at least 4); one too long for it, or with an arc
 * over 64 bits, ends in "...".
 */

void
scep_oid_text(const scep_ber_t *el, char *out, size_t size)
{
    int                   n;
    char                 *last;
    uint64_t              arc;
    unsigned int          first;
    const unsigned char  *p;

    last = out + size - 4;        /* room for "..." and the NUL */
    *out = '\0';

    arc = 0;
    first = 1;

    for (p = el->val; p < el->vend; p++) {

        if (arc > (UINT64_MAX >> 7)) {
            goto truncated;
        }

        arc = (arc << 7) | (*p & 0x7f);

        if (*p & 0x80) {
            continue;
        }

        if (first) {
            n = snprintf(out, last - out, "%u.%llu",
                         arc < 80 ? (unsigned int) (arc / 40) : 2,
                         (unsigned long long) (arc < 80 ? arc % 40
                                                        : arc - 80));
            first = 0;

        } else {
            n = snprintf(out, last - out, ".%llu", (unsigned long long) arc);
        }

        if (n < 0 || n >= last - out) {
            goto truncated;
        }

        out += n;
        arc = 0;
    }

    return;

truncated:

    memcpy(out, "...", sizeof("..."));
}


/* whether two elements are the same octets, identifier and all */

int
scep_der_equal(const scep_ber_t *a, const scep_ber_t *b)
{
    return a->next - a->hdr == b->next - b->hdr
           && memcmp(a->hdr, b->hdr, a->next - a->hdr) == 0;
}
