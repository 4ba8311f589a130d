
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Unit tests of scep_certs.c; prints TAP.  The certificates and PKCS#7
 * bundles are made at run time with OpenSSL.
 */


#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep_certs.h"

#include "tap.h"


#define DAY  86400


typedef struct {
    unsigned char  *data;
    size_t          len;
} blob_t;


/* the certificates every test works with */
typedef struct {
    EVP_PKEY       *key;
    X509           *ca;           /* CA:TRUE, 2020-01-01 to 2055-01-01 */
    X509           *ra_old;       /* expired 2026-01-02 */
    X509           *ra;           /* expires 2026-12-01 12:00 */
    X509           *next_ca;      /* from 2027-01-01 */
    X509           *old_ca;       /* CA:TRUE, expires 2026-12-10 */
} certs_t;


static time_t utc(int y, int mo, int d, int h);
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, const char *cn,
    const char *serial, const char *not_before, const char *not_after,
    const char *bc);
static blob_t der_of(X509 *x);
static blob_t p7_of(X509 **x, int n);
static blob_t p7_typed(int nid);
static int parse(blob_t b, const char *ct, scep_ca_answer_t *a, char *err);
static int escapes_whole(const char *s);
static int check(const scep_ca_answer_t *a, time_t now, time_t warn,
    const char *expect, int level);
static void test_caps(void);
static void test_single(certs_t *c);
static void test_bundle(certs_t *c);
static void test_rejects(certs_t *c);
static void test_names(certs_t *c);
static void test_check(certs_t *c);
static void test_ids(certs_t *c);
static int ctype(const char *v, size_t len, const char *expect);
static void test_content_type(void);
static X509 *signed_by(X509 *x, EVP_PKEY *signer);
static const char *pem_file(const char *name, X509 **x, int n,
    const char *extra);
static int trusted(blob_t b, scep_anchors_t *a, const char *expect);
static void test_trust(void);




static time_t
utc(int y, int mo, int d, int h)
{
    struct tm  tm;

    memset(&tm, 0, sizeof(struct tm));

    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;

    return timegm(&tm);
}


/*
 * A certificate for "cn", O=Example, signed by "issuer" (self-signed
 * when NULL) with "key"; times as in ASN1_TIME_set_string_X509(), or
 * a raw GeneralizedTime when starting with "!"; "bc" is the
 * basicConstraints value or NULL.
 */

static X509 *
make_cert(EVP_PKEY *key, X509 *issuer, const char *cn, const char *serial,
    const char *not_before, const char *not_after, const char *bc)
{
    X509             *x;
    BIGNUM           *bn;
    X509_NAME        *name;
    X509_EXTENSION   *ext;

    x = X509_new();
    name = X509_NAME_new();
    bn = NULL;

    if (x == NULL || name == NULL
        || !X509_set_version(x, X509_VERSION_3)
        || !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                       (const unsigned char *) "Example", -1,
                                       -1, 0)
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       (const unsigned char *) cn, -1, -1, 0)
        || !X509_set_subject_name(x, name)
        || !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                           : name)
        || !BN_hex2bn(&bn, serial)
        || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL
        || !X509_set_pubkey(x, key))
    {
        bail("cannot make a certificate");
    }

    BN_free(bn);
    X509_NAME_free(name);

    if (!ASN1_TIME_set_string_X509(X509_getm_notBefore(x), not_before)) {
        bail("bad notBefore");
    }

    if (not_after[0] == '!') {
        if (!ASN1_STRING_set(X509_getm_notAfter(x), not_after + 1, -1)) {
            bail("bad raw notAfter");
        }

        X509_getm_notAfter(x)->type = V_ASN1_GENERALIZEDTIME;

    } else if (!ASN1_TIME_set_string_X509(X509_getm_notAfter(x), not_after))
    {
        bail("bad notAfter");
    }

    if (bc != NULL) {
        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, bc);

        if (ext == NULL || !X509_add_ext(x, ext, -1)) {
            bail("cannot add basicConstraints");
        }

        X509_EXTENSION_free(ext);

    } else {
        /* an RA certificate, as NDES's: Certificate Request Agent */

        ext = X509V3_EXT_conf_nid(NULL, NULL, NID_ext_key_usage,
                                  "1.3.6.1.4.1.311.20.2.1");

        if (ext == NULL || !X509_add_ext(x, ext, -1)) {
            bail("cannot add extendedKeyUsage");
        }

        X509_EXTENSION_free(ext);
    }

    if (!X509_sign(x, key, EVP_sha256())) {
        bail("cannot sign a certificate");
    }

    return x;
}


static blob_t
der_of(X509 *x)
{
    int     n;
    blob_t  b;

    b.data = NULL;
    n = i2d_X509(x, &b.data);

    if (n <= 0) {
        bail("cannot encode a certificate");
    }

    b.len = (size_t) n;

    return b;
}


/* a degenerate certs-only SignedData holding "n" certificates */

static blob_t
p7_of(X509 **x, int n)
{
    int     i, len;
    blob_t  b;
    PKCS7  *p7;

    p7 = PKCS7_new();

    if (p7 == NULL
        || !PKCS7_set_type(p7, NID_pkcs7_signed)
        || !PKCS7_content_new(p7, NID_pkcs7_data))
    {
        bail("cannot make a PKCS#7");
    }

    for (i = 0; i < n; i++) {
        if (!PKCS7_add_certificate(p7, x[i])) {
            bail("cannot add a certificate");
        }
    }

    b.data = NULL;
    len = i2d_PKCS7(p7, &b.data);

    if (len <= 0) {
        bail("cannot encode a PKCS#7");
    }

    b.len = (size_t) len;

    PKCS7_free(p7);

    return b;
}


static blob_t
p7_typed(int nid)
{
    int     len;
    blob_t  b;
    PKCS7  *p7;

    p7 = PKCS7_new();

    if (p7 == NULL || !PKCS7_set_type(p7, nid)) {
        bail("cannot make a PKCS#7");
    }

    b.data = NULL;
    len = i2d_PKCS7(p7, &b.data);

    if (len <= 0) {
        bail("cannot encode a PKCS#7");
    }

    b.len = (size_t) len;

    PKCS7_free(p7);

    return b;
}


static int
parse(blob_t b, const char *ct, scep_ca_answer_t *a, char *err)
{
    return scep_cacert_parse(b.data, b.len, ct, a, err, 256);
}


/*
 * Whether every "\" of an RFC 2253 string starts a whole escape, "\,"
 * or two hex digits.
 */

static int
escapes_whole(const char *s)
{
    size_t  i, n;

    n = strlen(s);

    for (i = 0; i < n; i++) {
        if (s[i] != '\\') {
            continue;
        }

        if (i + 1 == n) {
            return 0;
        }

        if (isxdigit((unsigned char) s[i + 1])
            && (i + 2 == n || !isxdigit((unsigned char) s[i + 2])))
        {
            return 0;
        }

        i += isxdigit((unsigned char) s[i + 1]) ? 2 : 1;
    }

    return 1;
}


static int
check(const scep_ca_answer_t *a, time_t now, time_t warn,
    const char *expect, int level)
{
    int   rc;
    char  msg[256];

    memset(msg, 'x', sizeof(msg));

    rc = scep_cacert_check(a, now, warn, msg, sizeof(msg));

    if (rc != level || strcmp(msg, expect) != 0) {
        printf("# got %d \"%s\", expected %d \"%s\"\n", rc, msg, level,
               expect);
        return 0;
    }

    return 1;
}


static void
test_caps(void)
{
    int          rc;
    char         err[128], line[80], body[512];
    size_t       i, n;
    uint32_t     caps, all, bit;
    const char  *s;

    static const char  lf_only[] = "Renewal\nSHA-1\nSHA-256\nAES\nDES3\n"
                                    "SCEPStandard\nPOSTPKIOperation";
    static const char  crlf[] = "POSTPKIOperation\r\nSHA-256\r\nSHA-512\r\n"
                                "GetNextCACert\r\nDES3\r\n";
    static const char  html[] = "<!DOCTYPE html>\r\n<html><head><title>"
                                "Error</title></head></html>\r\n";

#define caps_of(s)                                                            \
    scep_caps_parse((const unsigned char *) (s), sizeof(s) - 1, &caps, err,   \
                    sizeof(err))

    rc = caps_of(lf_only);
    ok(rc == 0 && caps == (SCEP_CAP_RENEWAL|SCEP_CAP_SHA1|SCEP_CAP_SHA256
                           |SCEP_CAP_AES|SCEP_CAP_DES3
                           |SCEP_CAP_SCEPSTANDARD
                           |SCEP_CAP_POSTPKIOPERATION)
       && err[0] == '\0',
       "caps: \\n separated, no final newline");

    rc = caps_of(crlf);
    ok(rc == 0 && caps == (SCEP_CAP_POSTPKIOPERATION|SCEP_CAP_SHA256
                           |SCEP_CAP_SHA512|SCEP_CAP_GETNEXTCACERT
                           |SCEP_CAP_DES3),
       "caps: \\r\\n separated");

    rc = caps_of("aes\nsha-512\ngetnextcacert\nscepSTANDARD\n");
    ok(rc == 0 && caps == (SCEP_CAP_AES|SCEP_CAP_SHA512
                           |SCEP_CAP_GETNEXTCACERT|SCEP_CAP_SCEPSTANDARD),
       "caps: case-insensitive");

    rc = caps_of("AES\nFooBar\nX-Vendor.Thing_2\nSHA-384\nSHA-224\n");
    ok(rc == 0 && caps == (SCEP_CAP_AES|SCEP_CAP_SHA384|SCEP_CAP_SHA224),
       "caps: unknown keywords ignored");

    rc = caps_of("\n\r\n\nAES\r\n\r\n\n");
    ok(rc == 0 && caps == SCEP_CAP_AES, "caps: empty lines ignored");

    rc = caps_of("  AES \r\n\tDES3\t\n");
    ok(rc == 0 && caps == (SCEP_CAP_AES|SCEP_CAP_DES3),
       "caps: blanks around keywords");

    rc = caps_of("\xef\xbb\xbfUpdate\nRenewal\n");
    ok(rc == 0 && caps == (SCEP_CAP_UPDATE|SCEP_CAP_RENEWAL),
       "caps: leading byte order mark");

    caps = 123;
    rc = scep_caps_parse((const unsigned char *) "", 0, &caps, err,
                         sizeof(err));
    ok(rc == 0 && caps == 0, "caps: empty body is an empty list");

    rc = caps_of(html);
    ok(rc == -1
       && strcmp(err, "GetCACaps: HTML page instead of capabilities") == 0,
       "caps: HTML page");

    rc = caps_of("\r\n  <html><body>Service Unavailable</body></html>");
    ok(rc == -1
       && strcmp(err, "GetCACaps: HTML page instead of capabilities") == 0,
       "caps: HTML page after blank lines");

    rc = caps_of("AES\n<html>\n");
    ok(rc == -1
       && strcmp(err, "GetCACaps: HTML page instead of capabilities") == 0,
       "caps: HTML after a keyword");

    caps = 123;
    rc = caps_of("\x30\x82\x01\x0a\x02\x01\x00");
    ok(rc == -1 && caps == 0
       && strcmp(err, "GetCACaps: not a capability list") == 0,
       "caps: binary");

    rc = caps_of("AES\nDES3\0\n");
    ok(rc == -1 && strcmp(err, "GetCACaps: not a capability list") == 0,
       "caps: NUL byte");

    rc = caps_of("AES\nSHA-256\xc3\xa9\n");
    ok(rc == -1, "caps: non-ASCII byte");

    rc = caps_of("Service Unavailable\n");
    ok(rc == -1 && strcmp(err, "GetCACaps: not a capability list") == 0,
       "caps: plain text sentence");

    rc = caps_of("AES\rDES3\n");
    ok(rc == -1, "caps: lone carriage return inside a line");

    memset(line, 'A', sizeof(line));
    line[64] = '\n';
    rc = scep_caps_parse((const unsigned char *) line, 65, &caps, err,
                         sizeof(err));
    ok(rc == 0 && caps == 0, "caps: a 64-byte line is fine");

    line[64] = 'A';
    line[65] = '\n';
    rc = scep_caps_parse((const unsigned char *) line, 66, &caps, err,
                         sizeof(err));
    ok(rc == -1 && strcmp(err, "GetCACaps: not a capability list") == 0,
       "caps: a 65-byte line is not");

    memcpy(line, "AES", 3);
    line[64] = '\r';
    line[65] = '\n';
    rc = scep_caps_parse((const unsigned char *) line, 66, &caps, err,
                         sizeof(err));
    ok(rc == 0, "caps: 64 bytes and \\r\\n");

    rc = scep_caps_parse((const unsigned char *) html, sizeof(html) - 1,
                         &caps, err, 9);
    ok(rc == -1 && strcmp(err, "GetCACap") == 0, "caps: reason truncated");

    rc = scep_caps_parse((const unsigned char *) html, sizeof(html) - 1,
                         &caps, NULL, 0);
    ok(rc == -1, "caps: no reason buffer");

    /* every keyword back from its bit, and all of them parsed at once */

    n = 0;
    all = 0;
    rc = 0;

    for (bit = 1; bit != 0; bit <<= 1) {
        s = scep_cap_name(bit);

        if (s == NULL) {
            continue;
        }

        i = strlen(s);

        if (n + i + 2 > sizeof(body)) {
            bail("caps body too small");
        }

        memcpy(body + n, s, i);
        n += i;
        body[n++] = '\n';
        all |= bit;
    }

    rc = scep_caps_parse((const unsigned char *) body, n, &caps, err,
                         sizeof(err));

    ok(all == 0x0fff && rc == 0 && caps == all,
       "caps: all twelve keywords round-trip");

    ok(strcmp(scep_cap_name(SCEP_CAP_POSTPKIOPERATION), "POSTPKIOperation")
       == 0 && strcmp(scep_cap_name(SCEP_CAP_SHA256), "SHA-256") == 0
       && strcmp(scep_cap_name(SCEP_CAP_SCEPSTANDARD), "SCEPStandard") == 0
       && strcmp(scep_cap_name(SCEP_CAP_GETNEXTCACERT), "GetNextCACert") == 0,
       "caps: keyword spelling");

    ok(scep_cap_name(0) == NULL
       && scep_cap_name(SCEP_CAP_AES|SCEP_CAP_DES3) == NULL
       && scep_cap_name(0x1000) == NULL,
       "caps: no name for 0, several bits or unknown bits");

#undef caps_of
}


static void
test_single(certs_t *c)
{
    int               rc;
    char              err[256];
    blob_t            b;
    scep_ca_answer_t  a;

    b = der_of(c->ca);

    rc = parse(b, NULL, &a, err);
    ok(rc == 0 && err[0] == '\0' && a.ncerts == 1 && a.ca == 0,
       "single DER certificate");
    ok(strcmp(a.certs[0].subject, "CN=Test CA,O=Example") == 0
       && strcmp(a.certs[0].issuer, "CN=Test CA,O=Example") == 0,
       "single: subject and issuer");
    ok(strcmp(a.certs[0].serial, "0123456789ABCDEF01") == 0,
       "single: serial");
    ok(a.certs[0].not_before == utc(2020, 1, 1, 0)
       && a.certs[0].not_after == utc(2055, 1, 1, 0),
       "single: UTCTime and GeneralizedTime dates");
    ok(a.certs[0].is_ca == 1, "single: CA:TRUE");

    ok(parse(b, "application/x-x509-ca-cert", &a, err) == 0
       && a.ncerts == 1, "single: application/x-x509-ca-cert");
    ok(parse(b, "application/x-x509-ca-ra-cert", &a, err) == 0
       && a.ncerts == 1, "single: labelled application/x-x509-ca-ra-cert");
    ok(parse(b, " Application/X-X509-CA-Cert ; charset=binary", &a, err)
       == 0, "single: content type case and parameters");
    ok(parse(b, "", &a, err) == 0, "single: empty content type");

    rc = parse(b, "text/html; charset=utf-8", &a, err);
    ok(rc == -1
       && strcmp(err, "GetCACert: HTML page instead of certificates") == 0
       && a.ncerts == 0 && a.ca == -1,
       "single: HTML content type");

    rc = parse(b, "text/plain", &a, err);
    ok(rc == -1
       && strcmp(err, "GetCACert: unexpected content type \"text/plain\"")
          == 0 && a.ncerts == 0,
       "single: text/plain");

    OPENSSL_free(b.data);

    b = der_of(c->ra);
    ok(parse(b, NULL, &a, err) == 0 && a.ncerts == 1 && a.ca == 0
       && a.certs[0].is_ca == 0
       && strcmp(a.certs[0].issuer, "CN=Test CA,O=Example") == 0
       && strcmp(a.certs[0].serial, "80") == 0,
       "single: non-CA certificate is still the CA, serial 0x0080");
    OPENSSL_free(b.data);
}


static void
test_bundle(certs_t *c)
{
    int               i, rc;
    char              err[256];
    X509             *x[10];
    blob_t            b, ber;
    scep_ca_answer_t  a;

    x[0] = c->ra;
    x[1] = c->ca;
    x[2] = c->ra_old;
    b = p7_of(x, 3);

    rc = parse(b, NULL, &a, err);
    ok(rc == 0 && err[0] == '\0' && a.ncerts == 3 && a.ca == 1,
       "bundle: three certificates, CA second");
    ok(strcmp(a.certs[0].subject, "CN=Test RA,O=Example") == 0
       && strcmp(a.certs[1].subject, "CN=Test CA,O=Example") == 0
       && strcmp(a.certs[2].subject, "CN=Test RA old,O=Example") == 0,
       "bundle: order kept");
    ok(a.certs[0].is_ca == 0 && a.certs[1].is_ca == 1
       && a.certs[2].is_ca == 0, "bundle: CA:TRUE, CA:FALSE, none");
    ok(strcmp(a.certs[2].serial, "02") == 0
       && strcmp(a.certs[2].issuer, "CN=Test CA,O=Example") == 0
       && a.certs[2].not_after == utc(2026, 1, 2, 12),
       "bundle: RA serial, issuer and date");

    ok(parse(b, "application/x-x509-ca-ra-cert", &a, err) == 0
       && a.ncerts == 3, "bundle: application/x-x509-ca-ra-cert");

    rc = parse(b, "application/x-x509-ca-cert", &a, err);
    ok(rc == -1 && a.ncerts == 0
       && strcmp(err, "GetCACert: PKCS#7 certs-only labelled as a single"
                      " certificate") == 0,
       "bundle: labelled application/x-x509-ca-cert");

    /* the same with an indefinite outer length, as BER allows */

    ber.len = b.len + 2;
    ber.data = malloc(b.len + 4);

    if (ber.data == NULL) {
        bail("no memory");
    }

    i = (b.data[1] & 0x80) ? 2 + (b.data[1] & 0x7f) : 2;
    ber.data[0] = 0x30;
    ber.data[1] = 0x80;
    memcpy(ber.data + 2, b.data + i, b.len - i);
    ber.len = 2 + (b.len - i);
    ber.data[ber.len++] = 0;
    ber.data[ber.len++] = 0;

    ok(parse(ber, NULL, &a, err) == 0 && a.ncerts == 3 && a.ca == 1,
       "bundle: indefinite length");

    ber.data[ber.len++] = 0;
    ok(parse(ber, NULL, &a, err) == -1
       && strcmp(err, "GetCACert: trailing bytes") == 0,
       "bundle: indefinite length and a trailing byte");

    free(ber.data);
    OPENSSL_free(b.data);

    /* no CA certificate */

    x[0] = c->ra;
    x[1] = c->ra_old;
    b = p7_of(x, 2);
    ok(parse(b, NULL, &a, err) == 0 && a.ncerts == 2 && a.ca == -1,
       "bundle: two RA certificates, no CA");
    OPENSSL_free(b.data);

    b = p7_of(x, 1);
    ok(parse(b, NULL, &a, err) == 0 && a.ncerts == 1 && a.ca == 0,
       "bundle: one non-CA certificate is the CA");
    OPENSSL_free(b.data);

    /* more than SCEP_CERTS_MAX */

    for (i = 0; i < 10; i++) {
        x[i] = (i % 2) ? c->ca : c->ra;
    }

    b = p7_of(x, 10);
    ok(parse(b, NULL, &a, err) == 0 && a.ncerts == SCEP_CERTS_MAX
       && a.ca == 1, "bundle: ten certificates, the first eight kept");
    OPENSSL_free(b.data);

    b = p7_of(x, 0);
    rc = parse(b, NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: no certificates") == 0
       && a.ncerts == 0 && a.ca == -1, "bundle: no certificates");
    OPENSSL_free(b.data);

    b = p7_typed(NID_pkcs7_data);
    rc = parse(b, NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: PKCS#7 is not SignedData") == 0,
       "bundle: PKCS#7 data");
    OPENSSL_free(b.data);
}


static void
test_rejects(certs_t *c)
{
    int               rc;
    char              err[256];
    size_t            i;
    blob_t            b, t;
    uint32_t          r;
    unsigned char     rnd[512];
    scep_ca_answer_t  a;

    static const char  bad[] =
        "GetCACert: not a certificate or PKCS#7 certs-only";

#define body(s)  ((blob_t) { (unsigned char *) (s), sizeof(s) - 1 })

    rc = parse(body("<html><body>404</body></html>"),
               "application/x-x509-ca-ra-cert", &a, err);
    ok(rc == -1
       && strcmp(err, "GetCACert: HTML page instead of certificates") == 0,
       "rejects: HTML body under a certificate type");

    rc = parse(body("\xef\xbb\xbf\r\n <!DOCTYPE html>"), NULL, &a, err);
    ok(rc == -1
       && strcmp(err, "GetCACert: HTML page instead of certificates") == 0,
       "rejects: HTML body after a byte order mark and blanks");

    rc = parse(body("-----BEGIN CERTIFICATE-----\nMIIB\n"), NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: PEM text instead of DER") == 0,
       "rejects: PEM");

    rc = scep_cacert_parse((const unsigned char *) "", 0, NULL, &a, err,
                           sizeof(err));
    ok(rc == -1 && strcmp(err, "GetCACert: empty answer") == 0
       && a.ncerts == 0 && a.ca == -1, "rejects: empty body");

    rc = scep_cacert_parse(NULL, 0, "application/x-x509-ca-cert", &a, err,
                           sizeof(err));
    ok(rc == -1 && strcmp(err, "GetCACert: empty answer") == 0,
       "rejects: no body");

    b = der_of(c->ca);

    t.data = b.data;
    t.len = b.len - 1;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: truncated answer") == 0,
       "rejects: DER short of one byte");

    t.len = b.len / 2;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: truncated answer") == 0,
       "rejects: half a certificate");

    t.len = 3;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: three bytes");

    t.len = 1;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: one byte");

    t.data = malloc(b.len + 1);

    if (t.data == NULL) {
        bail("no memory");
    }

    memcpy(t.data, b.data, b.len);
    t.data[b.len] = 0;
    t.len = b.len + 1;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, "GetCACert: trailing bytes") == 0
       && a.ncerts == 0, "rejects: DER and a trailing byte");

    /* the outer length is right, the inner one is not */

    t.len = b.len;
    t.data[6] = 0x05;
    rc = parse(t, NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: corrupted DER");

    free(t.data);
    OPENSSL_free(b.data);

    rc = parse(body("\x30\x03\x02\x01\x05"), NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: SEQUENCE of INTEGER");

    rc = parse(body("\x30\x03\x30\x01\x05"), NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: bad inner SEQUENCE");

    rc = parse(body("\x30\x85\x01\x00\x00\x00\x00\x30"), NULL, &a, err);
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: five length octets");

    r = 12345;

    for (i = 0; i < sizeof(rnd); i++) {
        r = r * 1103515245 + 12345;
        rnd[i] = (unsigned char) (r >> 16);
    }

    rc = scep_cacert_parse(rnd, sizeof(rnd), NULL, &a, err, sizeof(err));
    ok(rc == -1 && strcmp(err, bad) == 0, "rejects: random bytes");

    rnd[0] = 0x30;
    rnd[1] = 0x82;
    rnd[2] = 0x01;
    rnd[3] = 0xfc;
    rnd[4] = 0x30;
    rc = scep_cacert_parse(rnd, sizeof(rnd), NULL, &a, err, sizeof(err));
    ok(rc == -1 && strcmp(err, bad) == 0,
       "rejects: random bytes in a right-sized SEQUENCE");

    rnd[4] = 0x06;
    rc = scep_cacert_parse(rnd, sizeof(rnd), NULL, &a, err, sizeof(err));
    ok(rc == -1 && strcmp(err, bad) == 0,
       "rejects: random bytes after an OID tag");

    rc = scep_cacert_parse(rnd, sizeof(rnd), NULL, &a, err, 10);
    ok(rc == -1 && strcmp(err, "GetCACert") == 0, "rejects: short buffer");

    rc = scep_cacert_parse(rnd, sizeof(rnd), NULL, &a, NULL, 0);
    ok(rc == -1, "rejects: no reason buffer");

    ok(ERR_peek_error() == 0, "rejects: OpenSSL error queue empty");

#undef body
}


static void
test_names(certs_t *c)
{
    int               i, rc;
    char              err[256], cn[64];
    X509             *x;
    blob_t            b;
    X509_NAME        *name;
    scep_ca_answer_t  a;

    /* non-ASCII is escaped */

    x = make_cert(c->key, c->ca, "Z\xc3\xbcrich RA", "05", "20250101000000Z",
                  "20270101000000Z", "CA:FALSE");
    b = der_of(x);
    rc = parse(b, NULL, &a, err);
    ok(rc == 0 && strcmp(a.certs[0].subject, "CN=Z\\C3\\BCrich RA,O=Example")
       == 0, "names: UTF-8 escaped as RFC 2253 hex");
    OPENSSL_free(b.data);
    X509_free(x);

    /* a subject longer than SCEP_CERT_NAME_MAX: twelve OUs of "\C3\BC" */

    x = make_cert(c->key, c->ca, "Long", "-05", "20250101000000Z",
                  "20270101000000Z", NULL);

    memset(cn, 0, sizeof(cn));

    for (i = 0; i < 10; i++) {
        memcpy(cn + 2 * i, "\xc3\xbc", 2);
    }

    name = X509_get_subject_name(x);

    for (i = 0; i < 12; i++) {
        if (!X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                        (unsigned char *) cn, -1, -1, 0))
        {
            bail("cannot add an OU");
        }
    }

    if (!X509_sign(x, c->key, EVP_sha256())) {
        bail("cannot sign");
    }

    b = der_of(x);
    rc = parse(b, NULL, &a, err);
    ok(rc == 0 && strlen(a.certs[0].subject) <= SCEP_CERT_NAME_MAX - 1
       && strlen(a.certs[0].subject) > SCEP_CERT_NAME_MAX - 10
       && strcmp(a.certs[0].subject + strlen(a.certs[0].subject) - 3, "...")
          == 0,
       "names: long subject truncated with \"...\"");
    ok(escapes_whole(a.certs[0].subject)
       && strncmp(a.certs[0].subject, "OU=\\C3\\BC", 9) == 0,
       "names: truncated between escapes");
    ok(strcmp(a.certs[0].serial, "-05") == 0, "names: negative serial");
    OPENSSL_free(b.data);
    X509_free(x);

    /* a 20-byte serial */

    x = make_cert(c->key, c->ca, "Serial",
                  "7FEDCBA9876543210FEDCBA9876543210ABCDE01",
                  "20250101000000Z", "20270101000000Z", NULL);
    b = der_of(x);
    rc = parse(b, NULL, &a, err);
    ok(rc == 0 && strcmp(a.certs[0].serial,
                         "7FEDCBA9876543210FEDCBA9876543210ABCDE01") == 0,
       "names: 20-byte serial");
    OPENSSL_free(b.data);
    X509_free(x);

    /* a date that is no date */

    x = make_cert(c->key, c->ca, "Bad date", "06", "20250101000000Z",
                  "!20261301000000Z", NULL);
    b = der_of(x);
    rc = parse(b, NULL, &a, err);
    ok(rc == -1
       && strcmp(err, "GetCACert: certificate with an invalid validity date")
          == 0 && a.ncerts == 0,
       "names: month 13");
    OPENSSL_free(b.data);
    X509_free(x);
}


static void
test_check(certs_t *c)
{
    char              err[256], msg[16];
    X509             *x[3];
    time_t            now;
    blob_t            b;
    scep_ca_answer_t  all, good, early, single_ra, two_ca, mixed;

    now = utc(2026, 11, 22, 0);

    x[0] = c->ca;
    x[1] = c->ra_old;
    x[2] = c->ra;
    b = p7_of(x, 3);
    if (parse(b, NULL, &all, err) != 0) {
        bail("bundle of three");
    }
    OPENSSL_free(b.data);

    b = p7_of((X509 *[]) { c->ca, c->ra }, 2);
    if (parse(b, NULL, &good, err) != 0) {
        bail("bundle of two");
    }
    OPENSSL_free(b.data);

    b = der_of(c->next_ca);
    if (parse(b, "application/x-x509-ca-cert", &early, err) != 0) {
        bail("next CA");
    }
    OPENSSL_free(b.data);

    b = der_of(c->ra);
    if (parse(b, NULL, &single_ra, err) != 0) {
        bail("single RA");
    }
    OPENSSL_free(b.data);

    b = p7_of((X509 *[]) { c->old_ca, c->ra }, 2);
    if (parse(b, NULL, &two_ca, err) != 0) {
        bail("old CA and RA");
    }
    OPENSSL_free(b.data);

    b = p7_of((X509 *[]) { c->ra, c->next_ca, c->ra_old }, 3);
    if (parse(b, NULL, &mixed, err) != 0) {
        bail("mixed");
    }
    OPENSSL_free(b.data);

    ok(check(&all, now, 30 * DAY,
             "GetCACert: RA certificate expired 2026-01-02",
             SCEP_CERTS_EXPIRED),
       "check: expired RA");

    ok(check(&good, now, 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01 (in 9 days)",
             SCEP_CERTS_EXPIRING),
       "check: RA expiring within the warning window");

    ok(check(&good, now, 5 * DAY, "", SCEP_CERTS_VALID),
       "check: RA expiring after the warning window");

    ok(check(&good, now, 0, "", SCEP_CERTS_VALID),
       "check: no warning window");

    ok(check(&good, utc(2026, 11, 30, 6), 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01 (in 1 day)",
             SCEP_CERTS_EXPIRING),
       "check: one day");

    ok(check(&good, utc(2026, 12, 1, 0), 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01"
             " (in less than a day)",
             SCEP_CERTS_EXPIRING),
       "check: less than a day");

    ok(check(&good, utc(2026, 12, 1, 12), 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01"
             " (in less than a day)",
             SCEP_CERTS_EXPIRING),
       "check: still valid at the notAfter second");

    ok(check(&good, utc(2026, 12, 1, 12) + 1, 30 * DAY,
             "GetCACert: RA certificate expired 2026-12-01",
             SCEP_CERTS_EXPIRED),
       "check: expired one second after notAfter");

    ok(check(&early, now, 30 * DAY,
             "GetCACert: CA certificate not valid before 2027-01-01",
             SCEP_CERTS_EXPIRED),
       "check: CA not yet valid");

    ok(check(&early, utc(2027, 1, 1, 0), 30 * DAY, "", SCEP_CERTS_VALID),
       "check: valid from the notBefore second");

    ok(check(&single_ra, now, 30 * DAY,
             "GetCACert: CA certificate expires 2026-12-01 (in 9 days)",
             SCEP_CERTS_EXPIRING),
       "check: a single certificate is the CA");

    ok(check(&two_ca, now, 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01 (in 9 days)",
             SCEP_CERTS_EXPIRING),
       "check: of two expiring, the sooner");

    ok(check(&two_ca, now, 5 * DAY, "", SCEP_CERTS_VALID)
       && check(&two_ca, utc(2026, 12, 2, 0), 10 * DAY,
                "GetCACert: RA certificate expired 2026-12-01",
                SCEP_CERTS_EXPIRED)
       && check(&two_ca, utc(2026, 12, 2, 0), 0,
                "GetCACert: RA certificate expired 2026-12-01",
                SCEP_CERTS_EXPIRED),
       "check: expired beats expiring");

    ok(check(&two_ca, utc(2026, 11, 30, 0), 30 * DAY,
             "GetCACert: RA certificate expires 2026-12-01 (in 1 day)",
             SCEP_CERTS_EXPIRING)
       && check(&two_ca, utc(2026, 12, 5, 0), 30 * DAY,
                "GetCACert: RA certificate expired 2026-12-01",
                SCEP_CERTS_EXPIRED)
       && check(&two_ca, utc(2026, 12, 11, 0), 30 * DAY,
                "GetCACert: CA certificate expired 2026-12-10",
                SCEP_CERTS_EXPIRED),
       "check: the first expired in the answer is named");

    ok(check(&mixed, now, 30 * DAY,
             "GetCACert: CA certificate not valid before 2027-01-01",
             SCEP_CERTS_EXPIRED),
       "check: not yet valid CA before an expired RA");

    ok(check(&all, utc(2025, 6, 1, 0), 30 * DAY, "", SCEP_CERTS_VALID),
       "check: all valid in 2025");

    ok(scep_cacert_check(&all, now, 30 * DAY, NULL, 0)
       == SCEP_CERTS_EXPIRED, "check: no message buffer");

    ok(scep_cacert_check(&good, now, 30 * DAY, msg, sizeof(msg))
       == SCEP_CERTS_EXPIRING && strcmp(msg, "GetCACert: RA c") == 0,
       "check: message truncated");

    all.ncerts = 0;
    ok(check(&all, now, 30 * DAY, "", SCEP_CERTS_VALID),
       "check: no certificates");
}


/*
 * The identifiers a pkiMessage's recipient is compared with: what the
 * parser computes of each certificate, and what scep_cert_id() computes
 * of an issuer and serial as a RecipientInfo carries them.
 */

static void
test_ids(certs_t *c)
{
    int                   i, ra;
    char                  err[256], name[256], hex[80];
    X509                 *many[9], *two[2];
    blob_t                b;
    X509_NAME            *xn;
    unsigned char        *issuer;
    scep_ca_answer_t      a;
    unsigned char         id[SCEP_CERT_ID_LEN];
    int                   issuer_len;

    static const unsigned char  serial[] = { 0x00, 0x80 };
    static const unsigned char  bare[] = { 0x80 };

    two[0] = c->ca;
    two[1] = c->ra;
    b = p7_of(two, 2);

    ok(parse(b, "application/x-x509-ca-ra-cert", &a, err) == 0
       && !a.truncated, "ids: a bundle of two, not truncated");
    OPENSSL_free(b.data);

    ra = (a.certs[0].is_ca) ? 1 : 0;

    ok(a.certs[0].has_id && a.certs[1].has_id, "ids: made for each");
    ok(!a.certs[ra].has_key_id, "ids: no subjectKeyIdentifier, no key id");

    /* the RA's issuer (the CA's subject) and serial 0x80, as DER */

    issuer = NULL;
    issuer_len = i2d_X509_NAME(X509_get_subject_name(c->ca), &issuer);

    ok(scep_cert_id(issuer, issuer_len, serial, sizeof(serial), 0, id) == 0
       && memcmp(id, a.certs[ra].id, SCEP_CERT_ID_LEN) == 0,
       "ids: issuer and serial as encoded match");
    ok(scep_cert_id(issuer, issuer_len, serial, sizeof(serial), 1, id) == 0
       && memcmp(id, a.certs[ra].id_canonical, SCEP_CERT_ID_LEN) == 0,
       "ids: and in canonical form");
    ok(scep_cert_id(issuer, issuer_len, bare, sizeof(bare), 0, id) == 0
       && memcmp(id, a.certs[ra].id, SCEP_CERT_ID_LEN) != 0,
       "ids: another serial does not");
    ok(scep_cert_id(issuer, issuer_len, serial, sizeof(serial), 0, id) == 0
       && memcmp(id, a.certs[1 - ra].id, SCEP_CERT_ID_LEN) != 0,
       "ids: nor another certificate");

    scep_issuer_serial_text(issuer, issuer_len, serial, sizeof(serial), name,
                            sizeof(name), hex, sizeof(hex));
    ok(strcmp(name, "CN=Test CA,O=Example") == 0 && strcmp(hex, "80") == 0,
       "ids: issuer and serial as text for the log");

    OPENSSL_free(issuer);

    /* the same name in other string types, case and spaces */

    xn = X509_NAME_new();

    if (xn == NULL
        || !X509_NAME_add_entry_by_txt(xn, "O", V_ASN1_UTF8STRING,
                                       (const unsigned char *) "EXAMPLE", -1,
                                       -1, 0)
        || !X509_NAME_add_entry_by_txt(xn, "CN", V_ASN1_PRINTABLESTRING,
                                       (const unsigned char *) " test  ca",
                                       -1, -1, 0))
    {
        bail("cannot make a name");
    }

    issuer = NULL;
    issuer_len = i2d_X509_NAME(xn, &issuer);
    X509_NAME_free(xn);

    ok(scep_cert_id(issuer, issuer_len, serial, sizeof(serial), 0, id) == 0
       && memcmp(id, a.certs[ra].id, SCEP_CERT_ID_LEN) != 0,
       "ids: a name encoded otherwise differs as encoded");
    ok(scep_cert_id(issuer, issuer_len, serial, sizeof(serial), 1, id) == 0
       && memcmp(id, a.certs[ra].id_canonical, SCEP_CERT_ID_LEN) == 0,
       "ids: but matches in canonical form");

    OPENSSL_free(issuer);

    ok(scep_cert_id((const unsigned char *) "\x30\x03", 2, serial,
                    sizeof(serial), 1, id) == -1,
       "ids: a name that does not parse has no canonical id");

    /* more certificates than kept */

    for (i = 0; i < 9; i++) {
        many[i] = c->ra;
    }

    b = p7_of(many, 9);

    ok(parse(b, "application/x-x509-ca-ra-cert", &a, err) == 0
       && a.truncated && a.ncerts == SCEP_CERTS_MAX,
       "ids: a bundle of nine is truncated");
    OPENSSL_free(b.data);
}


/* scep_content_type_check() of v: 0, or -1 with a reason of "expect" */

static int
ctype(const char *v, size_t len, const char *expect)
{
    int   rc;
    char  err[128];

    rc = scep_content_type_check((const unsigned char *) v, len,
                                 "GetCACaps", err, sizeof(err));

    if (expect == NULL) {
        return rc == 0 && err[0] == '\0';
    }

    return rc == -1 && strcmp(err, expect) == 0;
}


static void
test_content_type(void)
{
    char  big[200];

    ok(ctype("text/plain", 10, NULL), "ctype: text/plain");
    ok(ctype("application/x-x509-ca-ra-cert", 29, NULL),
       "ctype: application/x-x509-ca-ra-cert");
    ok(ctype("text/plain; charset=utf-8", 25, NULL), "ctype: a parameter");
    ok(ctype("text/plain;charset=\"utf-8\" ;\tq=1;", 33, NULL),
       "ctype: quoted, tabs, an empty parameter");
    ok(ctype("text/plain; a=\"x\\\"y;z\"", 22, NULL),
       "ctype: an escaped quote and a \";\" in a quoted-string");
    ok(ctype("Text/Plain", 10, NULL), "ctype: upper case");

    ok(ctype("text/plain\rSet-Cookie: x=1", 26,
             "GetCACaps: Content-Type \"text/plain?Set-Cookie: x=1\" has a"
             " control character"), "ctype: CR refused, quoted as ?");
    ok(ctype("text/plain\nX: 1", 15,
             "GetCACaps: Content-Type \"text/plain?X: 1\" has a control"
             " character"), "ctype: LF refused");
    ok(ctype("text/plain\0x", 12,
             "GetCACaps: Content-Type \"text/plain?x\" has a control"
             " character"), "ctype: NUL refused");
    ok(ctype("text/pl\x7f" "ain", 11,
             "GetCACaps: Content-Type \"text/pl?ain\" has a control"
             " character"), "ctype: DEL refused");
    ok(ctype("text/plain\x1b[0m", 14,
             "GetCACaps: Content-Type \"text/plain?[0m\" has a control"
             " character"), "ctype: ESC refused");
    ok(ctype("", 0, "GetCACaps: no Content-Type"), "ctype: none");
    ok(ctype("text", 4, "GetCACaps: Content-Type \"text\" is not a media"
             " type"), "ctype: no subtype");
    ok(ctype("text/", 5, "GetCACaps: Content-Type \"text/\" is not a media"
             " type"), "ctype: empty subtype");
    ok(ctype("/plain", 6, "GetCACaps: Content-Type \"/plain\" is not a"
             " media type"), "ctype: empty type");
    ok(ctype("text/plain text", 15, "GetCACaps: Content-Type \"text/plain"
             " text\" is not a media type"), "ctype: a word after it");
    ok(ctype("text/pl\"ain", 11, "GetCACaps: Content-Type \"text/pl?ain\""
             " is not a media type"), "ctype: a quote, quoted as ?");
    ok(ctype("text/plain; charset", 19, "GetCACaps: Content-Type"
             " \"text/plain; charset\" is not a media type"),
       "ctype: a parameter without a value");
    ok(ctype("text/plain; a=\"x", 16, "GetCACaps: Content-Type"
             " \"text/plain; a=?x\" is not a media type"),
       "ctype: an open quoted-string");
    ok(ctype("text/pl\xc3\xa4in", 11, "GetCACaps: Content-Type"
             " \"text/pl??in\" is not a media type"),
       "ctype: bytes other than ASCII in a token");

    memset(big, 'a', sizeof(big));
    big[4] = '\r';

    ok(ctype(big, sizeof(big), "GetCACaps: Content-Type"
             " \"aaaa?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaa...\" has a control"
             " character"), "ctype: a long value is cut in the reason");
}


/* x signed again, by another key: an issuer's */

static X509 *
signed_by(X509 *x, EVP_PKEY *signer)
{
    if (!X509_sign(x, signer, EVP_sha256())) {
        bail("cannot sign a certificate");
    }

    return x;
}


/* a PEM file of n certificates, then "extra" text; its path */

static const char *
pem_file(const char *name, X509 **x, int n, const char *extra)
{
    int          i;
    FILE        *f;
    static char  path[256];

    snprintf(path, sizeof(path), "%s/scep-anchors-%ld-%s.pem",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long) getpid(),
             name);

    f = fopen(path, "w");

    if (f == NULL) {
        bail("cannot write a PEM file");
    }

    for (i = 0; i < n; i++) {
        if (!PEM_write_X509(f, x[i])) {
            bail("cannot write a certificate");
        }
    }

    if (extra != NULL) {
        fputs(extra, f);
    }

    fclose(f);

    return path;
}


/* scep_cacert_trusted() of b: 0, or -1 with the reason "expect" */

static int
trusted(blob_t b, scep_anchors_t *a, const char *expect)
{
    int   rc;
    char  err[256];

    rc = scep_cacert_trusted(b.data, b.len, a, err, sizeof(err));

    OPENSSL_free(b.data);

    if (expect == NULL) {
        return rc == 0 && err[0] == '\0';
    }

    if (rc != -1 || strcmp(err, expect) != 0) {
        printf("# got \"%s\"\n", err);
        return 0;
    }

    return 1;
}


static void
test_trust(void)
{
    int              i;
    char             err[128];
    const char      *path;
    EVP_PKEY        *kr, *ki, *kra, *kx;
    unsigned char    d1[SCEP_ANCHORS_DIGEST_LEN], d2[SCEP_ANCHORS_DIGEST_LEN];
    scep_anchors_t  *a, *b;
    X509            *root, *root2, *inter, *ra, *rogue, *rogue_ra, *fake_ra;
    X509            *plain, *leaf, *sub, *subra, *device, *v[4], *many[9];

    kr = EVP_EC_gen("P-256");
    ki = EVP_EC_gen("P-256");
    kra = EVP_EC_gen("P-256");
    kx = EVP_EC_gen("P-256");

    if (kr == NULL || ki == NULL || kra == NULL || kx == NULL) {
        bail("cannot make a key");
    }

    root = make_cert(kr, NULL, "Root CA", "10", "20200101000000Z",
                     "20500101000000Z", "critical,CA:TRUE");
    /* the same name and key, renewed: issued by the old one */
    root2 = make_cert(kr, NULL, "Root CA", "11", "20250101000000Z",
                      "20550101000000Z", "critical,CA:TRUE");
    inter = signed_by(make_cert(ki, root, "Issuing CA", "12",
                                "20200101000000Z", "20450101000000Z",
                                "critical,CA:TRUE"), kr);
    ra = signed_by(make_cert(kra, inter, "NDES RA", "13", "20250101000000Z",
                             "20300101000000Z", NULL), ki);
    /* another key under the same name */
    rogue = make_cert(kx, NULL, "Root CA", "14", "20200101000000Z",
                      "20500101000000Z", "critical,CA:TRUE");
    rogue_ra = signed_by(make_cert(kra, rogue, "NDES RA", "15",
                                   "20250101000000Z", "20300101000000Z",
                                   NULL), kx);
    /* names the issuing CA, signed by another key */
    fake_ra = signed_by(make_cert(kra, inter, "Spoofed RA", "16",
                                  "20250101000000Z", "20300101000000Z",
                                  NULL), kx);
    /* issued by the root, but no CA: cannot issue in turn */
    plain = signed_by(make_cert(ki, root, "Not a CA", "17",
                                "20200101000000Z", "20450101000000Z",
                                "CA:FALSE"), kr);
    leaf = signed_by(make_cert(kra, plain, "Leaf", "18", "20250101000000Z",
                               "20300101000000Z", NULL), ki);

    /* reading the file */

    ok(scep_anchors_read("/nonexistent/anchors.pem", err, sizeof(err))
       == NULL && strcmp(err, "cannot open the file") == 0,
       "anchors: a file that cannot be opened");

    path = pem_file("none", NULL, 0, "-----BEGIN PRIVATE KEY-----\n"
                    "MC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                    "AAAAAAAAAA\n-----END PRIVATE KEY-----\n");
    ok(scep_anchors_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "no certificates") == 0,
       "anchors: a file without certificates");
    remove(path);

    v[0] = root;
    path = pem_file("bad", v, 1, "-----BEGIN CERTIFICATE-----\n"
                    "MIIBAAAA\n-----END CERTIFICATE-----\n");
    ok(scep_anchors_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "a certificate that does not parse") == 0,
       "anchors: a certificate that does not parse");
    remove(path);

    v[0] = root;
    v[1] = inter;
    path = pem_file("two", v, 2, NULL);
    b = scep_anchors_read(path, err, sizeof(err));
    ok(b != NULL && scep_anchors_count(b) == 2, "anchors: two read");
    remove(path);

    path = pem_file("root", v, 1, "# the root of the CA\n");
    a = scep_anchors_read(path, err, sizeof(err));
    ok(a != NULL && scep_anchors_count(a) == 1 && err[0] == '\0',
       "anchors: one read, text after it ignored");
    remove(path);

    if (a == NULL || b == NULL) {
        bail("cannot read anchors");
    }

    scep_anchors_digest(a, d1);
    scep_anchors_digest(b, d2);
    ok(memcmp(d1, d2, sizeof(d1)) != 0, "anchors: sets told apart");

    /* answers */

    v[0] = inter;
    v[1] = ra;
    ok(trusted(p7_of(v, 2), a, NULL), "trust: an issuing CA under the root");

    v[0] = ra;
    v[1] = inter;
    v[2] = root;
    ok(trusted(p7_of(v, 3), a, NULL), "trust: the whole chain, RA first");

    ok(trusted(der_of(root), a, NULL), "trust: the anchor itself");
    ok(trusted(der_of(inter), a, NULL), "trust: one certificate under it");
    ok(trusted(der_of(root2), a, NULL),
       "trust: a CA renewed with the same key");

    v[0] = root2;
    v[1] = ra;
    v[2] = inter;
    ok(trusted(p7_of(v, 3), a, NULL), "trust: the renewed root beside it");

    v[0] = rogue;
    v[1] = rogue_ra;
    ok(trusted(p7_of(v, 2), a, "GetCACert: CA certificate not issued by"
               " scep_trusted_ca: \"CN=Root CA,O=Example\""),
       "trust: the anchor's name with another key");

    ok(trusted(der_of(rogue), a, "GetCACert: CA certificate not issued by"
               " scep_trusted_ca: \"CN=Root CA,O=Example\""),
       "trust: that one alone");

    v[0] = inter;
    v[1] = fake_ra;
    ok(trusted(p7_of(v, 2), a, "GetCACert: RA certificate not issued by"
               " scep_trusted_ca: \"CN=Spoofed RA,O=Example\""),
       "trust: the right CA beside an RA certificate it did not issue");

    /* a device's certificate from the CA, whose key the device holds */

    device = signed_by(make_cert(kra, inter, "A device", "1F",
                                 "20250101000000Z", "20300101000000Z",
                                 "CA:FALSE"), ki);
    v[0] = inter;
    v[1] = device;
    ok(trusted(p7_of(v, 2), a, "GetCACert: certificate \"CN=A device,"
               "O=Example\" is neither a CA's nor an RA's (no Certificate"
               " Request Agent extended key usage)"),
       "trust: the CA beside a device's certificate it issued");
    X509_free(device);

    v[0] = inter;
    v[1] = ra;
    v[2] = rogue;
    ok(trusted(p7_of(v, 3), a, "GetCACert: CA certificate not issued by"
               " scep_trusted_ca: \"CN=Root CA,O=Example\""),
       "trust: a foreign root beside a good chain");

    v[0] = plain;
    v[1] = leaf;
    ok(trusted(p7_of(v, 2), a, "GetCACert: RA certificate not issued by"
               " scep_trusted_ca: \"CN=Leaf,O=Example\""),
       "trust: no issuing through a certificate without CA:TRUE");

    ok(trusted(der_of(ra), b, NULL), "trust: the issuing CA as an anchor");

    v[0] = ra;
    ok(trusted(p7_of(v, 1), a, "GetCACert: CA certificate not issued by"
               " scep_trusted_ca: \"CN=NDES RA,O=Example\""),
       "trust: an RA certificate without its issuing CA");

    /* two levels under the root, listed from the bottom up */

    sub = signed_by(make_cert(kx, inter, "Sub CA", "19", "20200101000000Z",
                              "20450101000000Z", "critical,CA:TRUE"), ki);
    subra = signed_by(make_cert(kra, sub, "Sub RA", "1A", "20250101000000Z",
                                "20300101000000Z", NULL), kx);
    v[0] = subra;
    v[1] = sub;
    v[2] = inter;
    ok(trusted(p7_of(v, 3), a, NULL), "trust: two CAs deep, bottom up");

    for (i = 0; i < 9; i++) {
        many[i] = inter;
    }

    ok(trusted(p7_of(many, 9), a, "GetCACert: more than 8 certificates,"
               " more than scep_trusted_ca checks"),
       "trust: nine certificates are more than checked");

    scep_anchors_free(a);
    scep_anchors_free(b);
    scep_anchors_free(NULL);

    X509_free(root);
    X509_free(root2);
    X509_free(inter);
    X509_free(ra);
    X509_free(rogue);
    X509_free(rogue_ra);
    X509_free(fake_ra);
    X509_free(plain);
    X509_free(leaf);
    X509_free(sub);
    X509_free(subra);
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(kra);
    EVP_PKEY_free(kx);
}


int
main(void)
{
    certs_t  c;

    c.key = EVP_EC_gen("P-256");

    if (c.key == NULL) {
        bail("cannot make a key");
    }

    c.ca = make_cert(c.key, NULL, "Test CA", "0123456789ABCDEF01",
                     "20200101000000Z", "20550101000000Z",
                     "critical,CA:TRUE");
    c.ra_old = make_cert(c.key, c.ca, "Test RA old", "02",
                         "20240101000000Z", "20260102120000Z", "CA:FALSE");
    c.ra = make_cert(c.key, c.ca, "Test RA", "80", "20250101000000Z",
                     "20261201120000Z", NULL);
    c.next_ca = make_cert(c.key, NULL, "Next CA", "03", "20270101000000Z",
                          "20370101000000Z", "critical,CA:TRUE");
    c.old_ca = make_cert(c.key, NULL, "Old CA", "04", "20160101000000Z",
                         "20261210000000Z", "critical,CA:TRUE");

    test_caps();
    test_single(&c);
    test_bundle(&c);
    test_rejects(&c);
    test_names(&c);
    test_check(&c);
    test_ids(&c);
    test_content_type();
    test_trust();

    X509_free(c.ca);
    X509_free(c.ra_old);
    X509_free(c.ra);
    X509_free(c.next_ca);
    X509_free(c.old_ca);
    EVP_PKEY_free(c.key);

    return tap_done();
}
