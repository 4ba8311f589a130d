
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Streaming BER re-encoded as DER.  iOS and BouncyCastle-based clients
 * write pkiMessages with indefinite lengths and the signed content cut
 * into the pieces of a constructed OCTET STRING; some SCEP servers
 * cannot read that.  The DER form keeps every octet that a signature or
 * a digest covers: the content octets (one primitive OCTET STRING of
 * the same octets) and the signed attributes (copied as they were sent).
 *
 * Two passes over the input: the first measures the DER size of every
 * element that changes and keeps them, in the order the second meets
 * them, in a plan; the second writes.  Elements that are DER already are
 * copied whole.  Both passes are linear in the input.
 */


#include <string.h>

#include "scep_der.h"
#include "scep_message_int.h"


#define SCEP_DER_MAX_DEPTH   48

/* a plan entry for an element copied as it is */
#define SCEP_DER_AS_IS       ((size_t) -1)


/* where an element is: the signed attributes are copied as they came */

#define SCEP_DER_ANY         0
#define SCEP_DER_CI          1      /* ContentInfo */
#define SCEP_DER_CI_CONTENT  2      /* its [0] EXPLICIT content */
#define SCEP_DER_SD          3      /* SignedData */
#define SCEP_DER_SIGNERS     4      /* signerInfos */
#define SCEP_DER_SIGNER      5      /* a SignerInfo */
#define SCEP_DER_AS_SENT     6      /* its signedAttrs */


typedef struct {
    size_t                *plan;      /* NULL while only counting */
    size_t                 nplan;     /* room in it */
    size_t                 slot;      /* next entry */
    size_t                 peak;      /* most entries in use at once */
    int                    changed;
} scep_der_t;


/* what the first pass found of an element */
typedef struct {
    const unsigned char   *next;
    size_t                 size;      /* of its DER form */
    int                    same;      /* DER already */
} scep_der_span_t;


static int scep_der_measure(scep_der_t *st, const unsigned char *p,
    const unsigned char *end, int where, unsigned int depth,
    scep_der_span_t *sp);
static unsigned char *scep_der_write(scep_der_t *st, const unsigned char *p,
    const unsigned char *end, int where, unsigned int depth,
    unsigned char *out, const unsigned char **next);
static int scep_der_child(int where, size_t index, unsigned int tag);
static int scep_der_universal(unsigned int tag);
static int scep_der_string(unsigned int tag);
static size_t scep_der_tag_len(const unsigned char *p);
static size_t scep_der_len_len(size_t len);
static unsigned char *scep_der_header(unsigned char *out,
    const unsigned char *tag, size_t taglen, size_t len);


int
scep_der_size(const unsigned char *in, size_t len, size_t *outlen,
    size_t *worklen)
{
    scep_der_t       st;
    scep_der_span_t  sp;

    memset(&st, 0, sizeof(scep_der_t));

    if (in == NULL || len == 0
        || !scep_der_measure(&st, in, in + len, SCEP_DER_CI, 0, &sp)
        || sp.next != in + len)
    {
        return SCEP_DER_ERROR;
    }

    if (sp.same) {
        return SCEP_DER_SAME;
    }

    *outlen = sp.size;
    *worklen = (st.peak + 1) * sizeof(size_t);

    return SCEP_DER_NEEDED;
}


int
scep_der_encode(const unsigned char *in, size_t len, unsigned char *out,
    size_t outlen, void *work, size_t worklen)
{
    scep_der_t            st;
    unsigned char        *last;
    scep_der_span_t       sp;
    const unsigned char  *next;

    memset(&st, 0, sizeof(scep_der_t));

    st.plan = work;
    st.nplan = worklen / sizeof(size_t);

    if (in == NULL || len == 0
        || !scep_der_measure(&st, in, in + len, SCEP_DER_CI, 0, &sp)
        || sp.next != in + len || sp.same || sp.size != outlen)
    {
        return -1;
    }

    st.slot = 0;

    last = scep_der_write(&st, in, in + len, SCEP_DER_CI, 0, out, &next);

    if (last == NULL || (size_t) (last - out) != outlen) {
        return -1;
    }

    return 0;
}


/*
 * The first pass over the element at "p": its DER size, and whether it
 * is DER already.  A constructed element that is not a string takes an
 * entry of the plan, in the order of the second pass, for its DER
 * contents length; one that turns out to be DER already gives back the
 * entries of its children, since it is copied whole.
 */

static int
scep_der_measure(scep_der_t *st, const unsigned char *p,
    const unsigned char *end, int where, unsigned int depth,
    scep_der_span_t *sp)
{
    int                   indef, same, first;
    size_t                vlen, taglen, n, slot, index;
    scep_ber_t            el;
    unsigned int          tag;
    scep_der_span_t       child;
    const unsigned char  *q, *cend;

    if (depth > SCEP_DER_MAX_DEPTH) {
        return 0;
    }

    q = p;

    if (!scep_ber_header(&q, end, &tag, &vlen, &indef) || tag == 0) {
        return 0;
    }

    taglen = scep_der_tag_len(p);

    if (where == SCEP_DER_AS_SENT) {
        if (!scep_ber_read(p, end, &el, 0, 0)) {
            return 0;
        }

        sp->next = el.next;
        sp->size = el.next - p;
        sp->same = 1;

        return 1;
    }

    if (!(tag & SCEP_BER_CONSTRUCTED)) {
        sp->next = q + vlen;
        sp->size = taglen + scep_der_len_len(vlen) + vlen;
        sp->same = ((size_t) (q - p) == taglen + scep_der_len_len(vlen));

        return 1;
    }

    if (scep_der_universal(tag)) {

        /* a constructed string: its pieces become one primitive string */

        if (!scep_der_string(tag) || !scep_ber_read(p, end, &el, 0, 0)) {
            return 0;
        }

        n = 0;
        first = -1;

        if (!scep_ber_pieces(&el, tag & ~SCEP_BER_CONSTRUCTED, 0, NULL, &n,
                             &first))
        {
            return 0;
        }

        sp->next = el.next;
        sp->size = taglen + scep_der_len_len(n) + n;
        sp->same = 0;

        return 1;
    }

    slot = st->slot++;

    if (st->slot > st->peak) {
        st->peak = st->slot;
    }

    same = !indef && (size_t) (q - p) == taglen + scep_der_len_len(vlen);
    cend = indef ? end : q + vlen;
    n = 0;

    for (index = 0; /* void */; index++) {

        if (indef) {
            if (cend - q >= 2 && q[0] == 0 && q[1] == 0) {
                sp->next = q + 2;
                break;
            }

            if (q == cend) {
                /* no end-of-contents */
                return 0;
            }

        } else if (q == cend) {
            sp->next = cend;
            break;
        }

        if (!scep_der_measure(st, q, cend, scep_der_child(where, index, *q),
                              depth + 1, &child))
        {
            return 0;
        }

        n += child.size;
        same = same && child.same;
        q = child.next;
    }

    if (same) {
        st->slot = slot + 1;
    }

    if (st->plan != NULL) {
        if (slot >= st->nplan) {
            return 0;
        }

        st->plan[slot] = same ? SCEP_DER_AS_IS : n;
    }

    sp->size = same ? (size_t) (sp->next - p)
                    : taglen + scep_der_len_len(n) + n;
    sp->same = same;

    return 1;
}


/* the second pass: writes the element at "p" and returns the end */

static unsigned char *
scep_der_write(scep_der_t *st, const unsigned char *p,
    const unsigned char *end, int where, unsigned int depth,
    unsigned char *out, const unsigned char **next)
{
    int                   indef, first;
    size_t                vlen, taglen, n, index;
    scep_ber_t            el;
    unsigned int          tag;
    const unsigned char  *q, *cend;

    if (depth > SCEP_DER_MAX_DEPTH) {
        return NULL;
    }

    q = p;

    if (!scep_ber_header(&q, end, &tag, &vlen, &indef) || tag == 0) {
        return NULL;
    }

    taglen = scep_der_tag_len(p);

    if (where == SCEP_DER_AS_SENT) {
        if (!scep_ber_read(p, end, &el, 0, 0)) {
            return NULL;
        }

        *next = el.next;

        return (unsigned char *) memcpy(out, p, el.next - p)
               + (el.next - p);
    }

    if (!(tag & SCEP_BER_CONSTRUCTED)) {
        *next = q + vlen;
        out = scep_der_header(out, p, taglen, vlen);

        return (unsigned char *) memcpy(out, q, vlen) + vlen;
    }

    if (scep_der_universal(tag)) {
        if (!scep_der_string(tag) || !scep_ber_read(p, end, &el, 0, 0)) {
            return NULL;
        }

        n = 0;
        first = -1;

        if (!scep_ber_pieces(&el, tag & ~SCEP_BER_CONSTRUCTED, 0, NULL, &n,
                             &first))
        {
            return NULL;
        }

        /* the primitive form of the same tag */

        out = scep_der_header(out, p, taglen, n);
        out[-(ptrdiff_t) (scep_der_len_len(n) + taglen)] &=
                                                  ~SCEP_BER_CONSTRUCTED;

        n = 0;

        if (!scep_ber_pieces(&el, tag & ~SCEP_BER_CONSTRUCTED, 0, out, &n,
                             &first))
        {
            return NULL;
        }

        *next = el.next;

        return out + n;
    }

    if (st->slot >= st->nplan) {
        return NULL;
    }

    n = st->plan[st->slot++];

    if (n == SCEP_DER_AS_IS) {
        /* DER already, so of definite length */
        *next = q + vlen;

        return (unsigned char *) memcpy(out, p, q + vlen - p)
               + (q + vlen - p);
    }

    out = scep_der_header(out, p, taglen, n);
    cend = indef ? end : q + vlen;

    for (index = 0; /* void */; index++) {

        if (indef) {
            if (cend - q >= 2 && q[0] == 0 && q[1] == 0) {
                *next = q + 2;
                break;
            }

            if (q == cend) {
                return NULL;
            }

        } else if (q == cend) {
            *next = cend;
            break;
        }

        out = scep_der_write(st, q, cend, scep_der_child(where, index, *q),
                             depth + 1, out, &q);
        if (out == NULL) {
            return NULL;
        }
    }

    return out;
}


/*
 * ContentInfo { contentType, [0] content }, SignedData { version,
 * digestAlgorithms SET, encapContentInfo, [0] certificates, [1] crls,
 * signerInfos SET }, SignerInfo { version, sid, digestAlgorithm,
 * [0] signedAttrs, ... }: where the child "index" of an element is.
 */

static int
scep_der_child(int where, size_t index, unsigned int tag)
{
    switch (where) {

    case SCEP_DER_CI:
        return (index == 1 && tag == scep_ber_ctx_cons(0))
               ? SCEP_DER_CI_CONTENT : SCEP_DER_ANY;

    case SCEP_DER_CI_CONTENT:
        return (index == 0 && tag == SCEP_BER_SEQUENCE)
               ? SCEP_DER_SD : SCEP_DER_ANY;

    case SCEP_DER_SD:
        return (index >= 3 && tag == SCEP_BER_SET)
               ? SCEP_DER_SIGNERS : SCEP_DER_ANY;

    case SCEP_DER_SIGNERS:
        return (tag == SCEP_BER_SEQUENCE) ? SCEP_DER_SIGNER : SCEP_DER_ANY;

    case SCEP_DER_SIGNER:
        return (index == 3 && tag == scep_ber_ctx_cons(0))
               ? SCEP_DER_AS_SENT : SCEP_DER_ANY;

    default:
        return SCEP_DER_ANY;
    }
}


/* a constructed universal type other than SEQUENCE and SET */

static int
scep_der_universal(unsigned int tag)
{
    return (tag & 0xc0) == 0
           && (tag & SCEP_BER_HIGH_TAG) != SCEP_BER_HIGH_TAG
           && tag != SCEP_BER_SEQUENCE
           && tag != SCEP_BER_SET;
}


/*
 * Of those, the strings whose constructed form is made one primitive
 * string: OCTET STRING, the character strings and the times.  The
 * others (a BIT STRING, whose pieces each have their unused bits, and
 * types that cannot be constructed) are not re-encoded.
 */

static int
scep_der_string(unsigned int tag)
{
    switch (tag & ~SCEP_BER_CONSTRUCTED) {

    case SCEP_BER_OCTET_STRING:
    case SCEP_BER_UTF8_STRING:
    case 0x12:                              /* NumericString */
    case SCEP_BER_PRINTABLE:
    case 0x14:                              /* T61String */
    case 0x15:                              /* VideotexString */
    case 0x16:                              /* IA5String */
    case SCEP_BER_UTC_TIME:
    case SCEP_BER_GEN_TIME:
    case 0x19:                              /* GraphicString */
    case 0x1a:                              /* VisibleString */
    case 0x1b:                              /* GeneralString */
    case SCEP_BER_UNIVERSAL_STRING:
    case SCEP_BER_BMP_STRING:
        return 1;

    default:
        return 0;
    }
}


/* the identifier octets, read already by scep_ber_header() */

static size_t
scep_der_tag_len(const unsigned char *p)
{
    size_t  n;

    if ((p[0] & SCEP_BER_HIGH_TAG) != SCEP_BER_HIGH_TAG) {
        return 1;
    }

    for (n = 1; p[n] & 0x80; n++) { /* void */ }

    return n + 1;
}


/* the length octets of a definite length in its shortest form */

static size_t
scep_der_len_len(size_t len)
{
    size_t  n;

    if (len < 0x80) {
        return 1;
    }

    for (n = 1; len; len >>= 8) {
        n++;
    }

    return n;
}


static unsigned char *
scep_der_header(unsigned char *out, const unsigned char *tag, size_t taglen,
    size_t len)
{
    size_t  n;

    memcpy(out, tag, taglen);
    out += taglen;

    if (len < 0x80) {
        *out++ = (unsigned char) len;
        return out;
    }

    n = scep_der_len_len(len) - 1;

    *out++ = (unsigned char) (0x80 | n);

    while (n--) {
        *out++ = (unsigned char) (len >> (n * 8));
    }

    return out;
}
