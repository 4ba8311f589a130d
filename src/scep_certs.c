
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * GetCACaps and GetCACert answers of back ends, in plain C over OpenSSL.
 */


#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE               /* timegm(), gmtime_r() */
#endif

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep_certs.h"
#include "scep_message_int.h"


#define SCEP_CAPS_LINE_MAX    64      /* bytes of a GetCACaps line */
#define SCEP_DAY              86400
#define SCEP_TYPE_QUOTE_MAX   64      /* content type bytes in a reason */
#define SCEP_DATE_LEN         32
#define SCEP_CT_QUOTE_MAX     64      /* Content-Type bytes in a reason */

/* what a Content-Type header announces */
#define SCEP_FORM_NONE        0       /* no header, or an empty one */
#define SCEP_FORM_CERT        1       /* one DER certificate */
#define SCEP_FORM_BUNDLE      2       /* PKCS#7 certs-only, or either */
#define SCEP_FORM_HTML        3
#define SCEP_FORM_OTHER       4

/* what scep_der_outer() finds */
#define SCEP_DER_BAD          0
#define SCEP_DER_OK           1
#define SCEP_DER_SHORT        2

/* DER identifier octets */
#define SCEP_TAG_OID          0x06
#define SCEP_TAG_SEQUENCE     0x30

#define scep_is_hex(c)                                                        \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'F')                 \
     || ((c) >= 'a' && (c) <= 'f'))

/* findings of scep_cacert_check() */
#define SCEP_FINDING_EXPIRED  1
#define SCEP_FINDING_EARLY    2
#define SCEP_FINDING_SOON     3


typedef struct {
    const char       *name;
    size_t            len;
    uint32_t          bit;
} scep_cap_t;


struct scep_anchors_s {
    STACK_OF(X509)   *certs;
    unsigned char     digest[SCEP_ANCHORS_DIGEST_LEN];
};


typedef struct {
    const char       *name;
    size_t            len;
    int               form;
} scep_media_type_t;


static void scep_certs_reason(char *buf, size_t size, const char *reason);
static size_t scep_text_start(const unsigned char *p, size_t len);
static int scep_caseeq(const unsigned char *p, size_t len, const char *s,
    size_t slen);
static int scep_caps_token(const unsigned char *p, size_t len);
static uint32_t scep_caps_bit(const unsigned char *p, size_t len);
static int scep_media_form(const char *ct, const char **type, size_t *len);
static int scep_der_outer(const unsigned char *p, size_t len,
    unsigned int *inner, size_t *total);
static const char *scep_cacert_decode(const unsigned char *body, size_t len,
    int *form, scep_ca_answer_t *out);
static const char *scep_cacert_bundle(const unsigned char *body, size_t len,
    scep_ca_answer_t *out);
static int scep_cert_info(const X509 *x, scep_cert_info_t *ci);
static void scep_bundle_spkis(const unsigned char *body, size_t len,
    STACK_OF(X509) *certs, scep_ca_answer_t *out);
static void scep_cert_spki(const X509 *x, const scep_ber_t *el,
    scep_cert_info_t *ci);
static void scep_cert_ids(const X509 *x, scep_cert_info_t *ci);
static int scep_id_digest(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen, unsigned char *id);
static void scep_name_copy(const X509_NAME *name, char *buf, size_t size);
static void scep_text_copy(const char *src, size_t n, char *buf,
    size_t size);
static void scep_serial_copy(const ASN1_INTEGER *serial, char *buf,
    size_t size);
static int scep_asn1_time(const ASN1_TIME *t, time_t *out);
static int scep_is_ca(const X509 *x);
static int scep_is_ra(const X509 *x);
static void scep_date(time_t t, char *buf, size_t size);
static size_t scep_token(const unsigned char *p, const unsigned char *end);
static int scep_media_syntax(const unsigned char *p, size_t len);
static void scep_quote(const unsigned char *p, size_t len, char *buf,
    size_t size);
static STACK_OF(X509) *scep_cacert_x509s(const unsigned char *body,
    size_t len);
static void scep_chains(STACK_OF(X509) *certs, const scep_anchors_t *anchors,
    int *trusted);
static int scep_issued_by(X509 *x, X509 *issuer);


#define scep_cap(s, bit)  { s, sizeof(s) - 1, bit }

static const scep_cap_t  scep_caps[] = {
    scep_cap("AES", SCEP_CAP_AES),
    scep_cap("DES3", SCEP_CAP_DES3),
    scep_cap("GetNextCACert", SCEP_CAP_GETNEXTCACERT),
    scep_cap("POSTPKIOperation", SCEP_CAP_POSTPKIOPERATION),
    scep_cap("Renewal", SCEP_CAP_RENEWAL),
    scep_cap("SHA-1", SCEP_CAP_SHA1),
    scep_cap("SHA-256", SCEP_CAP_SHA256),
    scep_cap("SHA-512", SCEP_CAP_SHA512),
    scep_cap("SCEPStandard", SCEP_CAP_SCEPSTANDARD),
    scep_cap("Update", SCEP_CAP_UPDATE),
    scep_cap("SHA-224", SCEP_CAP_SHA224),
    scep_cap("SHA-384", SCEP_CAP_SHA384)
};


#define scep_media(s, form)  { s, sizeof(s) - 1, form }

static const scep_media_type_t  scep_media_types[] = {
    scep_media("application/x-x509-ca-cert", SCEP_FORM_CERT),
    scep_media("application/pkix-cert", SCEP_FORM_CERT),
    scep_media("application/x-x509-ca-ra-cert", SCEP_FORM_BUNDLE),
    scep_media("application/x-x509-ca-ra-cert-chain", SCEP_FORM_BUNDLE),
    scep_media("application/pkcs7-mime", SCEP_FORM_BUNDLE),
    scep_media("application/x-pkcs7-mime", SCEP_FORM_BUNDLE),
    scep_media("application/x-pkcs7-certificates", SCEP_FORM_BUNDLE),
    scep_media("text/html", SCEP_FORM_HTML),
    scep_media("application/xhtml+xml", SCEP_FORM_HTML)
};


static const char  scep_caps_html[] =
    "GetCACaps: HTML page instead of capabilities";
static const char  scep_caps_bad[] = "GetCACaps: not a capability list";

static const char  scep_cacert_html[] =
    "GetCACert: HTML page instead of certificates";
static const char  scep_cacert_bad[] =
    "GetCACert: not a certificate or PKCS#7 certs-only";


int
scep_caps_parse(const unsigned char *body, size_t len, uint32_t *caps,
    char *err, size_t errlen)
{
    size_t                i, n;
    uint32_t              bits;
    unsigned char         c;
    const unsigned char  *p, *end, *line, *eol;

    scep_certs_reason(err, errlen, "");
    *caps = 0;

    if (len == 0) {
        return 0;
    }

    if (body == NULL) {
        scep_certs_reason(err, errlen, scep_caps_bad);
        return -1;
    }

    i = scep_text_start(body, len);

    if (i < len && body[i] == '<') {
        scep_certs_reason(err, errlen, scep_caps_html);
        return -1;
    }

    p = body;
    end = body + len;

    if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
    }

    bits = 0;

    while (p < end) {
        line = p;

        while (p < end && *p != '\n') {
            c = *p;

            if ((c < 0x20 || c > 0x7e) && c != '\t' && c != '\r') {
                scep_certs_reason(err, errlen, scep_caps_bad);
                return -1;
            }

            p++;
        }

        eol = p;

        if (p < end) {
            p++;
        }

        if (eol > line && eol[-1] == '\r') {
            eol--;
        }

        if ((size_t) (eol - line) > SCEP_CAPS_LINE_MAX) {
            scep_certs_reason(err, errlen, scep_caps_bad);
            return -1;
        }

        while (line < eol && (*line == ' ' || *line == '\t')) {
            line++;
        }

        while (eol > line && (eol[-1] == ' ' || eol[-1] == '\t')) {
            eol--;
        }

        n = eol - line;

        if (n == 0) {
            continue;
        }

        if (*line == '<') {
            scep_certs_reason(err, errlen, scep_caps_html);
            return -1;
        }

        if (!scep_caps_token(line, n)) {
            scep_certs_reason(err, errlen, scep_caps_bad);
            return -1;
        }

        bits |= scep_caps_bit(line, n);
    }

    *caps = bits;

    return 0;
}


const char *
scep_cap_name(uint32_t bit)
{
    size_t  i;

    for (i = 0; i < sizeof(scep_caps) / sizeof(scep_caps[0]); i++) {
        if (scep_caps[i].bit == bit) {
            return scep_caps[i].name;
        }
    }

    return NULL;
}


int
scep_cacert_parse(const unsigned char *body, size_t len,
    const char *content_type, scep_ca_answer_t *out, char *err,
    size_t errlen)
{
    int          form, found;
    char         buf[SCEP_TYPE_QUOTE_MAX + 1];
    size_t       i, n, tlen;
    const char  *reason, *type;

    memset(out, 0, sizeof(scep_ca_answer_t));
    out->ca = -1;

    scep_certs_reason(err, errlen, "");

    type = NULL;
    tlen = 0;
    form = scep_media_form(content_type, &type, &tlen);

    if (form == SCEP_FORM_HTML) {
        scep_certs_reason(err, errlen, scep_cacert_html);
        return -1;
    }

    if (body == NULL || len == 0) {
        scep_certs_reason(err, errlen, "GetCACert: empty answer");
        return -1;
    }

    i = scep_text_start(body, len);

    if (i < len && body[i] == '<') {
        scep_certs_reason(err, errlen, scep_cacert_html);
        return -1;
    }

    if (len - i >= 10 && memcmp(body + i, "-----BEGIN", 10) == 0) {
        scep_certs_reason(err, errlen, "GetCACert: PEM text instead of DER");
        return -1;
    }

    reason = scep_cacert_decode(body, len, &found, out);

    ERR_clear_error();

    if (reason != NULL) {
        scep_certs_reason(err, errlen, reason);
        goto failed;
    }

    if (form == SCEP_FORM_CERT && found == SCEP_FORM_BUNDLE) {
        scep_certs_reason(err, errlen, "GetCACert: PKCS#7 certs-only"
                          " labelled as a single certificate");
        goto failed;
    }

    if (form == SCEP_FORM_OTHER) {

        for (n = 0; n < tlen && n < SCEP_TYPE_QUOTE_MAX; n++) {
            buf[n] = (type[n] >= 0x20 && type[n] <= 0x7e && type[n] != '"')
                     ? type[n] : '?';
        }

        buf[n] = '\0';

        if (err != NULL && errlen > 0) {
            snprintf(err, errlen,
                     "GetCACert: unexpected content type \"%s%s\"", buf,
                     tlen > SCEP_TYPE_QUOTE_MAX ? "..." : "");
        }

        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(scep_ca_answer_t));
    out->ca = -1;

    return -1;
}


int
scep_cacert_check(const scep_ca_answer_t *a, time_t now, time_t warn,
    char *msg, size_t msglen)
{
    int                      i, n, level, worst, finding, picked;
    long                     days;
    char                     date[SCEP_DATE_LEN];
    const char              *role;
    const scep_cert_info_t  *ci, *pick;

    if (msg != NULL && msglen > 0) {
        msg[0] = '\0';
    }

    n = a->ncerts;

    if (n < 0) {
        n = 0;

    } else if (n > SCEP_CERTS_MAX) {
        n = SCEP_CERTS_MAX;
    }

    worst = SCEP_CERTS_VALID;
    picked = 0;
    pick = NULL;

    for (i = 0; i < n; i++) {
        ci = &a->certs[i];

        if (now > ci->not_after) {
            level = SCEP_CERTS_EXPIRED;
            finding = SCEP_FINDING_EXPIRED;

        } else if (now < ci->not_before) {
            level = SCEP_CERTS_EXPIRED;
            finding = SCEP_FINDING_EARLY;

        } else if (warn > 0 && ci->not_after - now <= warn) {
            level = SCEP_CERTS_EXPIRING;
            finding = SCEP_FINDING_SOON;

        } else {
            continue;
        }

        if (level > worst
            || (level == SCEP_CERTS_EXPIRING && worst == SCEP_CERTS_EXPIRING
                && ci->not_after < pick->not_after))
        {
            worst = level;
            picked = finding;
            pick = ci;
        }
    }

    if (pick == NULL || msg == NULL || msglen == 0) {
        return worst;
    }

    role = (n == 1 || pick->is_ca) ? "CA" : "RA";

    switch (picked) {

    case SCEP_FINDING_EXPIRED:
        scep_date(pick->not_after, date, sizeof(date));
        snprintf(msg, msglen, "GetCACert: %s certificate expired %s",
                 role, date);
        break;

    case SCEP_FINDING_EARLY:
        scep_date(pick->not_before, date, sizeof(date));
        snprintf(msg, msglen, "GetCACert: %s certificate not valid before %s",
                 role, date);
        break;

    default: /* SCEP_FINDING_SOON */
        scep_date(pick->not_after, date, sizeof(date));
        days = (long) ((pick->not_after - now) / SCEP_DAY);

        if (days == 0) {
            snprintf(msg, msglen, "GetCACert: %s certificate expires %s"
                     " (in less than a day)", role, date);

        } else {
            snprintf(msg, msglen, "GetCACert: %s certificate expires %s"
                     " (in %ld day%s)", role, date, days,
                     days == 1 ? "" : "s");
        }

        break;
    }

    return worst;
}


int
scep_content_type_check(const unsigned char *value, size_t len,
    const char *op, char *err, size_t errlen)
{
    char           quoted[SCEP_CT_QUOTE_MAX + 4];
    size_t         i;
    unsigned char  c;
    const char    *what;

    scep_certs_reason(err, errlen, "");

    if (value == NULL || len == 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "%s: no Content-Type", op);
        }

        return -1;
    }

    what = NULL;

    for (i = 0; i < len; i++) {
        c = value[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            what = "has a control character";
            break;
        }
    }

    if (what == NULL && !scep_media_syntax(value, len)) {
        what = "is not a media type";
    }

    if (what == NULL) {
        return 0;
    }

    if (err != NULL && errlen > 0) {
        scep_quote(value, len, quoted, sizeof(quoted));
        snprintf(err, errlen, "%s: Content-Type \"%s\" %s", op, quoted,
                 what);
    }

    return -1;
}


scep_anchors_t *
scep_anchors_read(const char *path, char *err, size_t errlen)
{
    int              n;
    BIO             *bio;
    X509            *x;
    EVP_MD_CTX      *md;
    unsigned long    e;
    unsigned char   *der;
    unsigned char    hash[EVP_MAX_MD_SIZE];
    scep_anchors_t  *a;

    scep_certs_reason(err, errlen, "");

    ERR_clear_error();

    bio = BIO_new_file(path, "r");

    if (bio == NULL) {
        ERR_clear_error();
        scep_certs_reason(err, errlen, "cannot open the file");
        return NULL;
    }

    a = calloc(1, sizeof(scep_anchors_t));
    md = EVP_MD_CTX_new();

    if (a == NULL || md == NULL
        || (a->certs = sk_X509_new_null()) == NULL
        || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
    {
        scep_certs_reason(err, errlen, "out of memory");
        goto failed;
    }

    for ( ;; ) {
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

        if (x == NULL) {
            break;
        }

        if (!sk_X509_push(a->certs, x)) {
            X509_free(x);
            scep_certs_reason(err, errlen, "out of memory");
            goto failed;
        }

        der = NULL;
        n = i2d_X509(x, &der);

        if (n <= 0 || EVP_DigestUpdate(md, der, (size_t) n) != 1) {
            OPENSSL_free(der);
            scep_certs_reason(err, errlen, "out of memory");
            goto failed;
        }

        OPENSSL_free(der);
    }

    /* the end of the file is "no start line"; anything else is bad */

    e = ERR_peek_last_error();

    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM
                    && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
    {
        scep_certs_reason(err, errlen, "a certificate that does not parse");
        goto failed;
    }

    if (sk_X509_num(a->certs) == 0) {
        scep_certs_reason(err, errlen, "no certificates");
        goto failed;
    }

    if (EVP_DigestFinal_ex(md, hash, NULL) != 1) {
        scep_certs_reason(err, errlen, "out of memory");
        goto failed;
    }

    memcpy(a->digest, hash, SCEP_ANCHORS_DIGEST_LEN);

    EVP_MD_CTX_free(md);
    BIO_free(bio);
    ERR_clear_error();

    return a;

failed:

    EVP_MD_CTX_free(md);
    BIO_free(bio);
    scep_anchors_free(a);
    ERR_clear_error();

    return NULL;
}


void
scep_anchors_free(scep_anchors_t *a)
{
    if (a == NULL) {
        return;
    }

    sk_X509_pop_free(a->certs, X509_free);
    free(a);
}


int
scep_anchors_count(const scep_anchors_t *a)
{
    return a ? sk_X509_num(a->certs) : 0;
}


/* a renewal's signer certificate against the anchors of scep_trusted_ca */

int
scep_anchors_issued(const scep_anchors_t *anchors, const unsigned char *der,
    size_t len)
{
    int                   i, rc;
    X509                 *x;
    const unsigned char  *p;

    if (anchors == NULL) {
        return 0;
    }

    p = der;
    x = d2i_X509(NULL, &p, (long) len);

    if (x == NULL || p != der + len) {
        X509_free(x);
        ERR_clear_error();
        return -1;
    }

    rc = 0;

    for (i = 0; i < sk_X509_num(anchors->certs); i++) {
        if (scep_issued_by(x, sk_X509_value(anchors->certs, i))) {
            rc = 1;
            break;
        }
    }

    X509_free(x);
    ERR_clear_error();

    return rc;
}


void
scep_anchors_digest(const scep_anchors_t *a, unsigned char *digest)
{
    memcpy(digest, a->digest, SCEP_ANCHORS_DIGEST_LEN);
}


int
scep_cacert_trusted(const unsigned char *body, size_t len,
    const scep_anchors_t *anchors, char *err, size_t errlen)
{
    int              i, n, ca, rc;
    int              trusted[SCEP_CERTS_MAX];
    char             subject[SCEP_CERT_NAME_MAX];
    X509            *x;
    STACK_OF(X509)  *certs;

    scep_certs_reason(err, errlen, "");

    certs = scep_cacert_x509s(body, len);

    if (certs == NULL || sk_X509_num(certs) == 0) {
        sk_X509_pop_free(certs, X509_free);
        ERR_clear_error();
        scep_certs_reason(err, errlen, scep_cacert_bad);
        return -1;
    }

    n = sk_X509_num(certs);

    /* the signatures checked grow with the square of the certificates */

    if (n > SCEP_CERTS_MAX) {
        sk_X509_pop_free(certs, X509_free);

        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "GetCACert: more than %d certificates,"
                     " more than scep_trusted_ca checks", SCEP_CERTS_MAX);
        }

        return -1;
    }

    scep_chains(certs, anchors, trusted);

    /* the CA certificate first: the first with CA:TRUE, or one alone */

    ca = (n == 1) ? 0 : -1;

    for (i = 0; i < n && ca == -1; i++) {
        if (scep_is_ca(sk_X509_value(certs, i))) {
            ca = i;
        }
    }

    x = NULL;

    if (ca >= 0 && !trusted[ca]) {
        x = sk_X509_value(certs, ca);
    }

    for (i = 0; i < n && x == NULL; i++) {
        if (!trusted[i]) {
            x = sk_X509_value(certs, i);
        }
    }

    rc = 0;

    if (x != NULL) {
        rc = -1;

        if (err != NULL && errlen > 0) {
            scep_name_copy(X509_get_subject_name(x), subject,
                           sizeof(subject));
            snprintf(err, errlen, "GetCACert: %s certificate not issued by"
                     " scep_trusted_ca: \"%s\"",
                     (n == 1 || scep_is_ca(x)) ? "CA" : "RA", subject);
        }
    }

    /*
     * The CA issues certificates to devices too, with their keys in the
     * devices' hands: a certificate that is not a CA's is taken for an
     * RA's only with the Certificate Request Agent extended key usage,
     * which NDES's RA templates have
     */

    for (i = 0; rc == 0 && n > 1 && i < n; i++) {
        x = sk_X509_value(certs, i);

        if (i == ca || scep_is_ca(x) || scep_is_ra(x)) {
            continue;
        }

        rc = -1;

        if (err != NULL && errlen > 0) {
            scep_name_copy(X509_get_subject_name(x), subject,
                           sizeof(subject));
            snprintf(err, errlen, "GetCACert: certificate \"%s\" is neither"
                     " a CA's nor an RA's (no Certificate Request Agent"
                     " extended key usage)", subject);
        }
    }

    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();

    return rc;
}


static void
scep_certs_reason(char *buf, size_t size, const char *reason)
{
    size_t  n;

    if (buf == NULL || size == 0) {
        return;
    }

    n = strlen(reason);

    if (n > size - 1) {
        n = size - 1;
    }

    memcpy(buf, reason, n);
    buf[n] = '\0';
}


/* the offset of the first byte past a byte order mark and blanks */

static size_t
scep_text_start(const unsigned char *p, size_t len)
{
    size_t  i;

    i = 0;

    if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        i = 3;
    }

    while (i < len
           && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
    {
        i++;
    }

    return i;
}


/* ASCII case-insensitive comparison of "p" with "s" */

static int
scep_caseeq(const unsigned char *p, size_t len, const char *s, size_t slen)
{
    size_t         i;
    unsigned char  a, b;

    if (len != slen) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        a = p[i];
        b = (unsigned char) s[i];

        if (a >= 'A' && a <= 'Z') {
            a |= 0x20;
        }

        if (b >= 'A' && b <= 'Z') {
            b |= 0x20;
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


static int
scep_caps_token(const unsigned char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


static uint32_t
scep_caps_bit(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(scep_caps) / sizeof(scep_caps[0]); i++) {
        if (scep_caseeq(p, len, scep_caps[i].name, scep_caps[i].len)) {
            return scep_caps[i].bit;
        }
    }

    return 0;
}


/*
 * Classifies the media type of a Content-Type value, parameters and
 * blanks around it left out; *type and *len are set to the media type.
 */

static int
scep_media_form(const char *ct, const char **type, size_t *len)
{
    size_t       i, n;
    const char  *p;

    if (ct == NULL) {
        return SCEP_FORM_NONE;
    }

    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }

    for (p = ct; *p != '\0' && *p != ';'; p++) {
        /* void */
    }

    while (p > ct && (p[-1] == ' ' || p[-1] == '\t')) {
        p--;
    }

    n = p - ct;

    *type = ct;
    *len = n;

    if (n == 0) {
        return SCEP_FORM_NONE;
    }

    for (i = 0;
         i < sizeof(scep_media_types) / sizeof(scep_media_types[0]);
         i++)
    {
        if (scep_caseeq((const unsigned char *) ct, n,
                        scep_media_types[i].name, scep_media_types[i].len))
        {
            return scep_media_types[i].form;
        }
    }

    return SCEP_FORM_OTHER;
}


/*
 * Reads the header of the outer element: it must be a SEQUENCE, with a
 * definite or an indefinite length.  *inner is the tag of its first
 * element (0 when there is none), *total the length of the whole
 * element or 0 when indefinite.  SCEP_DER_SHORT when the element is
 * longer than "len".
 */

static int
scep_der_outer(const unsigned char *p, size_t len, unsigned int *inner,
    size_t *total)
{
    size_t  h, l, n;

    *inner = 0;
    *total = 0;

    if (len < 2 || p[0] != SCEP_TAG_SEQUENCE) {
        return SCEP_DER_BAD;
    }

    h = 2;

    if (p[1] < 0x80) {
        l = p[1];

    } else if (p[1] == 0x80) {
        l = 0;

    } else {
        n = p[1] & 0x7f;

        if (n > 4) {
            return SCEP_DER_BAD;
        }

        if (len < 2 + n) {
            return SCEP_DER_SHORT;
        }

        l = 0;

        while (n--) {
            l = l << 8 | p[h++];
        }
    }

    if (h < len) {
        *inner = p[h];
    }

    if (p[1] == 0x80) {
        return SCEP_DER_OK;
    }

    if (l > len - h) {
        return SCEP_DER_SHORT;
    }

    *total = h + l;

    return SCEP_DER_OK;
}


/*
 * Decodes the answer by its bytes; *form tells which form it was.
 * Returns NULL or the reason of the failure.
 */

static const char *
scep_cacert_decode(const unsigned char *body, size_t len, int *form,
    scep_ca_answer_t *out)
{
    int                   rc;
    X509                 *x;
    size_t                total;
    scep_ber_t            el;
    unsigned int          inner;
    const unsigned char  *p;

    *form = SCEP_FORM_NONE;

    rc = scep_der_outer(body, len, &inner, &total);

    if (rc == SCEP_DER_BAD
        || (inner != SCEP_TAG_SEQUENCE && inner != SCEP_TAG_OID))
    {
        return scep_cacert_bad;
    }

    if (rc == SCEP_DER_SHORT) {
        return "GetCACert: truncated answer";
    }

    if (total != 0 && total < len) {
        return "GetCACert: trailing bytes";
    }

    if (len > LONG_MAX) {
        return scep_cacert_bad;
    }

    if (inner == SCEP_TAG_OID) {
        *form = SCEP_FORM_BUNDLE;
        return scep_cacert_bundle(body, len, out);
    }

    *form = SCEP_FORM_CERT;

    p = body;
    x = d2i_X509(NULL, &p, (long) len);

    if (x == NULL) {
        return scep_cacert_bad;
    }

    if (p != body + len) {
        X509_free(x);
        return "GetCACert: trailing bytes";
    }

    if (!scep_cert_info(x, &out->certs[0])) {
        X509_free(x);
        return "GetCACert: certificate with an invalid validity date";
    }

    if (scep_ber_read(body, body + len, &el, 1, 0)) {
        scep_cert_spki(x, &el, &out->certs[0]);
    }

    X509_free(x);

    out->ncerts = 1;
    out->ca = 0;

    return NULL;
}


static const char *
scep_cacert_bundle(const unsigned char *body, size_t len,
    scep_ca_answer_t *out)
{
    int                   i, n;
    const char           *reason;
    CMS_ContentInfo      *cms;
    STACK_OF(X509)       *certs;
    const unsigned char  *p;

    p = body;
    cms = d2i_CMS_ContentInfo(NULL, &p, (long) len);

    if (cms == NULL) {
        return scep_cacert_bad;
    }

    if (p != body + len) {
        CMS_ContentInfo_free(cms);
        return "GetCACert: trailing bytes";
    }

    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        CMS_ContentInfo_free(cms);
        return "GetCACert: PKCS#7 is not SignedData";
    }

    certs = CMS_get1_certs(cms);

    CMS_ContentInfo_free(cms);

    n = (certs != NULL) ? sk_X509_num(certs) : 0;

    if (n <= 0) {
        sk_X509_pop_free(certs, X509_free);
        return "GetCACert: no certificates";
    }

    if (n > SCEP_CERTS_MAX) {
        n = SCEP_CERTS_MAX;
        out->truncated = 1;
    }

    reason = NULL;

    for (i = 0; i < n; i++) {
        if (!scep_cert_info(sk_X509_value(certs, i), &out->certs[i])) {
            reason = "GetCACert: certificate with an invalid validity date";
            break;
        }
    }

    if (reason == NULL) {
        scep_bundle_spkis(body, len, certs, out);
    }

    sk_X509_pop_free(certs, X509_free);

    if (reason != NULL) {
        return reason;
    }

    out->ncerts = n;

    for (i = 0; i < n; i++) {
        if (out->certs[i].is_ca) {
            out->ca = i;
            break;
        }
    }

    if (out->ca == -1 && n == 1) {
        out->ca = 0;
    }

    return NULL;
}


static int
scep_cert_info(const X509 *x, scep_cert_info_t *ci)
{
    if (!scep_asn1_time(X509_get0_notBefore(x), &ci->not_before)
        || !scep_asn1_time(X509_get0_notAfter(x), &ci->not_after))
    {
        return 0;
    }

    scep_name_copy(X509_get_subject_name(x), ci->subject,
                   sizeof(ci->subject));
    scep_name_copy(X509_get_issuer_name(x), ci->issuer, sizeof(ci->issuer));
    scep_serial_copy(X509_get0_serialNumber(x), ci->serial,
                     sizeof(ci->serial));

    ci->is_ca = scep_is_ca(x);

    scep_cert_ids(x, ci);

    return 1;
}


/*
 * Where the certificates' keys are in a certs-only answer: the CMS walk
 * of the pkiMessage checks finds the certificates in the order OpenSSL
 * lists them, Certificates only (SEQUENCEs), as CMS_get1_certs() does.
 */

static void
scep_bundle_spkis(const unsigned char *body, size_t len,
    STACK_OF(X509) *certs, scep_ca_answer_t *out)
{
    int            i;
    scep_ber_t     el;
    scep_cur_t     cur;
    scep_check_t   ck;
    scep_result_t  res;

    memset(&ck, 0, sizeof(scep_check_t));
    ck.res = &res;

    if (scep_parse_content_info(&ck, body, len) != SCEP_REASON_OK
        || ck.certs.tag == 0)
    {
        return;
    }

    scep_cur_init(&cur, &ck.certs);

    for (i = 0; i < SCEP_CERTS_MAX && i < sk_X509_num(certs); /* void */) {
        if (!scep_cur_next(&cur, 0, &el)) {
            return;
        }

        if (el.tag == SCEP_BER_SEQUENCE) {
            scep_cert_spki(sk_X509_value(certs, i), &el, &out->certs[i]);
            i++;
        }
    }
}


/*
 * The SubjectPublicKeyInfo of the certificate "el" of the body, kept when
 * it is the DER that OpenSSL writes of the key of "x", the same
 * certificate decoded: a BER one, or one the walk read otherwise than
 * OpenSSL, leaves ci->spki NULL.
 */

static void
scep_cert_spki(const X509 *x, const scep_ber_t *el, scep_cert_info_t *ci)
{
    int             n;
    size_t          len;
    scep_cert_t     cert;
    unsigned char  *der;

    if (!scep_parse_certificate(el, &cert)) {
        return;
    }

    der = NULL;
    n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    len = cert.spki.next - cert.spki.hdr;

    if (n > 0 && (size_t) n == len && memcmp(der, cert.spki.hdr, len) == 0) {
        ci->spki = cert.spki.hdr;
        ci->spki_len = len;
    }

    OPENSSL_free(der);
    ERR_clear_error();
}


/*
 * The identifiers of scep_cert_id() and scep_key_id() of a certificate;
 * ci->has_id stays 0 when OpenSSL fails.
 */

static void
scep_cert_ids(const X509 *x, scep_cert_info_t *ci)
{
    int                        n, slen, ok;
    size_t                     skip;
    unsigned char             *name, *serial;
    unsigned long              hash;
    const ASN1_OCTET_STRING   *ski;
    unsigned char              h[4];

    name = NULL;
    serial = NULL;

    ci->has_id = 0;
    ci->has_key_id = 0;

    n = i2d_X509_NAME(X509_get_issuer_name(x), &name);
    slen = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &serial);

    if (n <= 0 || slen < 3) {
        goto done;
    }

    /* the serial's contents: past its identifier and length octets */

    skip = (serial[1] < 0x80) ? 2 : 2 + (serial[1] & 0x7f);

    if ((size_t) slen <= skip) {
        goto done;
    }

    ok = 0;
    hash = X509_NAME_hash_ex(X509_get_issuer_name(x), NULL, NULL, &ok);

    if (!ok) {
        goto done;
    }

    h[0] = (unsigned char) (hash >> 24);
    h[1] = (unsigned char) (hash >> 16);
    h[2] = (unsigned char) (hash >> 8);
    h[3] = (unsigned char) hash;

    if (scep_id_digest(name, n, serial + skip, slen - skip, ci->id) != 0
        || scep_id_digest(h, 4, serial + skip, slen - skip, ci->id_canonical)
           != 0)
    {
        goto done;
    }

    ok = 0;
    hash = X509_NAME_hash_ex(X509_get_subject_name(x), NULL, NULL, &ok);

    if (!ok) {
        goto done;
    }

    ci->subject_hash = (uint32_t) hash;

    ski = X509_get0_subject_key_id((X509 *) x);

    if (ski != NULL) {
        if (scep_key_id(ASN1_STRING_get0_data(ski), ASN1_STRING_length(ski),
                        ci->key_id)
            != 0)
        {
            goto done;
        }

        ci->has_key_id = 1;
    }

    ci->has_id = 1;

done:

    OPENSSL_free(name);
    OPENSSL_free(serial);
    ERR_clear_error();
}


int
scep_cert_id(const unsigned char *issuer, size_t issuer_len,
    const unsigned char *serial, size_t serial_len, int canonical,
    unsigned char *id)
{
    int                   ok;
    X509_NAME            *name;
    unsigned long         hash;
    unsigned char         h[4];
    const unsigned char  *p;

    if (!canonical) {
        return scep_id_digest(issuer, issuer_len, serial, serial_len, id);
    }

    p = issuer;
    name = d2i_X509_NAME(NULL, &p, (long) issuer_len);

    if (name == NULL) {
        ERR_clear_error();
        return -1;
    }

    ok = 0;
    hash = X509_NAME_hash_ex(name, NULL, NULL, &ok);

    X509_NAME_free(name);
    ERR_clear_error();

    if (!ok) {
        return -1;
    }

    h[0] = (unsigned char) (hash >> 24);
    h[1] = (unsigned char) (hash >> 16);
    h[2] = (unsigned char) (hash >> 8);
    h[3] = (unsigned char) hash;

    return scep_id_digest(h, 4, serial, serial_len, id);
}


int
scep_key_id(const unsigned char *key_id, size_t len, unsigned char *id)
{
    return scep_id_digest(key_id, len, NULL, 0, id);
}


/* SHA-256 of a || b, its first SCEP_CERT_ID_LEN bytes */

static int
scep_id_digest(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen, unsigned char *id)
{
    int            ok;
    EVP_MD_CTX    *mctx;
    unsigned int   n;
    unsigned char  md[EVP_MAX_MD_SIZE];

    mctx = EVP_MD_CTX_new();
    if (mctx == NULL) {
        return -1;
    }

    ok = EVP_DigestInit_ex(mctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(mctx, a, alen)
         && (blen == 0 || EVP_DigestUpdate(mctx, b, blen))
         && EVP_DigestFinal_ex(mctx, md, &n)
         && n >= SCEP_CERT_ID_LEN;

    EVP_MD_CTX_free(mctx);
    ERR_clear_error();

    if (ok) {
        memcpy(id, md, SCEP_CERT_ID_LEN);
    }

    return ok ? 0 : -1;
}


void
scep_issuer_serial_text(const unsigned char *issuer, size_t issuer_len,
    const unsigned char *serial, size_t serial_len, char *name,
    size_t name_size, char *hex, size_t hex_size)
{
    size_t                i, k;
    X509_NAME            *xn;
    const unsigned char  *p;

    static const char     digits[] = "0123456789ABCDEF";

    p = issuer;
    xn = d2i_X509_NAME(NULL, &p, (long) issuer_len);

    scep_name_copy(xn, name, name_size);

    X509_NAME_free(xn);
    ERR_clear_error();

    if (hex_size == 0) {
        return;
    }

    /* a leading zero octet only keeps the number positive */

    if (serial_len > 1 && serial[0] == 0x00) {
        serial++;
        serial_len--;
    }

    for (i = 0, k = 0; i < serial_len && k + 2 < hex_size; i++) {
        hex[k++] = digits[serial[i] >> 4];
        hex[k++] = digits[serial[i] & 0x0f];
    }

    hex[k] = '\0';
}


static void
scep_name_copy(const X509_NAME *name, char *buf, size_t size)
{
    BIO   *bio;
    long   n;
    char  *data;

    buf[0] = '\0';

    if (name == NULL) {
        return;
    }

    bio = BIO_new(BIO_s_mem());

    if (bio == NULL) {
        return;
    }

    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(bio, &data);

        if (n > 0 && data != NULL) {
            scep_text_copy(data, (size_t) n, buf, size);
        }
    }

    BIO_free(bio);
}


/*
 * Copies "n" bytes of an RFC 2253 string to "buf" of "size" bytes,
 * NUL-terminated, with bytes other than printable ASCII as "?".  When
 * it does not fit, it ends with "..." after the last escape sequence
 * ("\," or "\C3") that fits whole.
 */

static void
scep_text_copy(const char *src, size_t n, char *buf, size_t size)
{
    size_t         i, k, unit, room;
    unsigned char  c;

    if (size == 0) {
        return;
    }

    room = size - 1;

    if (n > room) {
        room = (size > 4) ? size - 4 : 0;
    }

    i = 0;
    k = 0;

    while (i < n) {
        unit = 1;

        if (src[i] == '\\' && i + 1 < n) {
            unit = (i + 2 < n && scep_is_hex(src[i + 1])
                    && scep_is_hex(src[i + 2]))
                   ? 3 : 2;
        }

        if (k + unit > room) {
            break;
        }

        while (unit--) {
            c = (unsigned char) src[i++];
            buf[k++] = (c >= 0x20 && c <= 0x7e) ? (char) c : '?';
        }
    }

    if (i < n && size > 4) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }

    buf[k] = '\0';
}


static void
scep_serial_copy(const ASN1_INTEGER *serial, char *buf, size_t size)
{
    int                   i, n;
    size_t                k, room;
    const unsigned char  *d;

    static const char     hex[] = "0123456789ABCDEF";

    buf[0] = '\0';

    if (serial == NULL || size < 8) {
        return;
    }

    d = ASN1_STRING_get0_data(serial);
    n = ASN1_STRING_length(serial);

    k = 0;

    if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) {
        buf[k++] = '-';
    }

    if (d == NULL || n <= 0) {
        memcpy(buf + k, "00", 3);
        return;
    }

    room = size - 1;

    if (k + 2 * (size_t) n > room) {
        room = size - 4;
    }

    for (i = 0; i < n && k + 2 <= room; i++) {
        buf[k++] = hex[d[i] >> 4];
        buf[k++] = hex[d[i] & 0x0f];
    }

    if (i < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }

    buf[k] = '\0';
}


static int
scep_asn1_time(const ASN1_TIME *t, time_t *out)
{
    struct tm  tm;

    /* ASN1_TIME_to_tm() takes NULL for the current time */

    if (t == NULL) {
        return 0;
    }

    memset(&tm, 0, sizeof(struct tm));

    if (!ASN1_TIME_to_tm(t, &tm)) {
        return 0;
    }

    *out = timegm(&tm);

    return 1;
}


static int
scep_is_ca(const X509 *x)
{
    int                 crit, ca;
    BASIC_CONSTRAINTS  *bc;

    bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);

    if (bc == NULL) {
        return 0;
    }

    ca = (bc->ca != 0);

    BASIC_CONSTRAINTS_free(bc);

    return ca;
}


/* the Certificate Request Agent extended key usage of an RA certificate */

static int
scep_is_ra(const X509 *x)
{
    int                  i, ra;
    char                 oid[64];
    EXTENDED_KEY_USAGE  *eku;

    eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);

    if (eku == NULL) {
        return 0;
    }

    ra = 0;

    for (i = 0; i < sk_ASN1_OBJECT_num(eku) && !ra; i++) {
        if (OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, i), 1)
            > 0
            && strcmp(oid, "1.3.6.1.4.1.311.20.2.1") == 0)
        {
            ra = 1;
        }
    }

    EXTENDED_KEY_USAGE_free(eku);

    return ra;
}


static void
scep_date(time_t t, char *buf, size_t size)
{
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "?");
        return;
    }

    snprintf(buf, size, "%04ld-%02d-%02d", (long) tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
}


/* the number of token characters (RFC 9110 tchar) from p on */

static size_t
scep_token(const unsigned char *p, const unsigned char *end)
{
    size_t         n;
    unsigned char  c;

    for (n = 0; p + n < end; n++) {
        c = p[n];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL))
        {
            continue;
        }

        break;
    }

    return n;
}


/*
 * media-type = type "/" subtype *( OWS ";" OWS [ parameter ] ), where
 * parameter = token "=" ( token / quoted-string ); the value holds no
 * control characters but tabs.
 */

static int
scep_media_syntax(const unsigned char *p, size_t len)
{
    size_t                n;
    const unsigned char  *end;

    end = p + len;

    n = scep_token(p, end);

    if (n == 0 || p + n == end || p[n] != '/') {
        return 0;
    }

    p += n + 1;
    n = scep_token(p, end);

    if (n == 0) {
        return 0;
    }

    p += n;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end) {
            return 1;
        }

        if (*p++ != ';') {
            return 0;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end || *p == ';') {
            /* an empty parameter */
            continue;
        }

        n = scep_token(p, end);

        if (n == 0 || p + n == end || p[n] != '=') {
            return 0;
        }

        p += n + 1;

        if (p < end && *p == '"') {
            p++;

            while (p < end && *p != '"') {
                if (*p == '\\') {
                    p++;

                    if (p == end) {
                        return 0;
                    }
                }

                p++;
            }

            if (p == end) {
                return 0;
            }

            p++;

        } else {
            n = scep_token(p, end);

            if (n == 0) {
                return 0;
            }

            p += n;
        }
    }
}


/*
 * A header value for a reason: up to SCEP_CT_QUOTE_MAX bytes, control
 * characters, bytes other than ASCII and quotes as "?", "..." when cut.
 */

static void
scep_quote(const unsigned char *p, size_t len, char *buf, size_t size)
{
    size_t  i, n;

    n = len < SCEP_CT_QUOTE_MAX ? len : SCEP_CT_QUOTE_MAX;

    if (n > size - 4) {
        n = size - 4;
    }

    for (i = 0; i < n; i++) {
        buf[i] = (p[i] >= 0x20 && p[i] <= 0x7e && p[i] != '"')
                 ? (char) p[i] : '?';
    }

    if (n < len) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }

    buf[i] = '\0';
}


/* the certificates of a GetCACert answer, one or a certs-only bundle */

static STACK_OF(X509) *
scep_cacert_x509s(const unsigned char *body, size_t len)
{
    X509                 *x;
    size_t                total;
    unsigned int          inner;
    CMS_ContentInfo      *cms;
    STACK_OF(X509)       *certs;
    const unsigned char  *p;

    if (body == NULL || len > LONG_MAX
        || scep_der_outer(body, len, &inner, &total) != SCEP_DER_OK)
    {
        return NULL;
    }

    p = body;

    if (inner == SCEP_TAG_OID) {
        cms = d2i_CMS_ContentInfo(NULL, &p, (long) len);

        if (cms == NULL) {
            return NULL;
        }

        certs = CMS_get1_certs(cms);
        CMS_ContentInfo_free(cms);

        return certs;
    }

    x = d2i_X509(NULL, &p, (long) len);

    if (x == NULL) {
        return NULL;
    }

    certs = sk_X509_new_null();

    if (certs == NULL || !sk_X509_push(certs, x)) {
        X509_free(x);
        sk_X509_free(certs);
        return NULL;
    }

    return certs;
}


/*
 * trusted[i]: whether the i-th certificate (of up to SCEP_CERTS_MAX) is
 * an anchor, is issued by one, or is issued by a CA certificate of the
 * answer that is, at any depth.  Each pair of certificates is checked
 * once at most.
 */

static void
scep_chains(STACK_OF(X509) *certs, const scep_anchors_t *anchors,
    int *trusted)
{
    int            i, j, k, n, more;
    X509          *x, *a;
    unsigned char  tried[SCEP_CERTS_MAX][SCEP_CERTS_MAX];

    n = sk_X509_num(certs);

    memset(tried, 0, sizeof(tried));

    for (i = 0; i < n; i++) {
        x = sk_X509_value(certs, i);
        trusted[i] = 0;

        for (k = 0; k < sk_X509_num(anchors->certs) && !trusted[i]; k++) {
            a = sk_X509_value(anchors->certs, k);
            trusted[i] = (X509_cmp(x, a) == 0 || scep_issued_by(x, a));
        }
    }

    do {
        more = 0;

        for (i = 0; i < n; i++) {
            if (trusted[i]) {
                continue;
            }

            for (j = 0; j < n; j++) {
                if (j == i || !trusted[j] || tried[i][j]) {
                    continue;
                }

                tried[i][j] = 1;

                if (scep_is_ca(sk_X509_value(certs, j))
                    && scep_issued_by(sk_X509_value(certs, i),
                                      sk_X509_value(certs, j)))
                {
                    trusted[i] = 1;
                    more = 1;
                    break;
                }
            }
        }

    } while (more);
}


/* the issuer's name and key identifier fit, and its key signed x */

static int
scep_issued_by(X509 *x, X509 *issuer)
{
    EVP_PKEY  *key;

    if (X509_check_issued(issuer, x) != X509_V_OK) {
        return 0;
    }

    key = X509_get0_pubkey(issuer);

    return key != NULL && X509_verify(x, key) == 1;
}


int
scep_name_hash(const unsigned char *der, size_t len, uint32_t *hash)
{
    int                   ok;
    unsigned long         h;
    X509_NAME            *name;
    const unsigned char  *p;

    p = der;
    name = d2i_X509_NAME(NULL, &p, (long) len);

    if (name == NULL || p != der + len) {
        X509_NAME_free(name);
        ERR_clear_error();
        return -1;
    }

    ok = 0;
    h = X509_NAME_hash_ex(name, NULL, NULL, &ok);

    X509_NAME_free(name);
    ERR_clear_error();

    if (!ok) {
        return -1;
    }

    *hash = (uint32_t) h;

    return 0;
}
