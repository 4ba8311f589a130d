
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Unit tests of scep_renewal.c, and of scep_anchors_issued() and the
 * subject hash of scep_certs.c that it works with; prints TAP.  The
 * certificates and CRLs are made at run time with OpenSSL.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep_certs.h"
#include "scep_renewal.h"

#include "cms.h"
#include "tap.h"


#define DAY  86400


static X509 *issue(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key,
    const char *cn, long serial, time_t from, time_t to);
static scep_signer_t *signer_of(X509 *x);
static void write_pem(const char *path, X509 *x, X509_CRL *crl);
static X509_CRL *make_crl(X509 *ca, EVP_PKEY *ca_key, long serial);
static void test_issuer(void);
static void test_validity(void);
static void test_crl(void);
static void test_anchors(void);


static EVP_PKEY  *ca_key, *other_key, *dev_key;
static X509      *ca, *other_ca, *same_name_ca;
static char       dir[] = "/tmp/test-scep-renewal-XXXXXX";


/* a certificate for "key" issued by "ca" (signed with ca_key) */

static X509 *
issue(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn,
    long serial, time_t from, time_t to)
{
    X509  *x;

    x = make_cert(key, issuer_key, cn, serial, 0);

    if (!X509_set_issuer_name(x, X509_get_subject_name(issuer))
        || X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &from) == NULL
        || X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &to) == NULL
        || !X509_sign(x, issuer_key, EVP_sha256()))
    {
        bail("issuing a certificate");
    }

    return x;
}


static scep_signer_t *
signer_of(X509 *x)
{
    int             nomem;
    buf_t           b;
    scep_signer_t  *s;

    b.p = NULL;
    b.n = (size_t) i2d_X509(x, &b.p);

    s = scep_signer_new(b.p, b.n, &nomem);

    if (s == NULL) {
        bail("scep_signer_new()");
    }

    OPENSSL_free(b.p);

    return s;
}


static void
test_issuer(void)
{
    int                 ok1, nomem;
    X509               *dev, *stranger, *ca_named;
    buf_t               spki, b;
    time_t              now;
    scep_signer_t      *s;
    scep_ca_answer_t    a;
    char                err[128];

    now = time(NULL);

    dev = issue(dev_key, ca, ca_key, "device", 0x4d, now - DAY,
                now + 30 * DAY);

    /* the hash of the CA's subject, as scep_cacert_parse() gives it */

    b.p = NULL;
    b.n = (size_t) i2d_X509(ca, &b.p);

    ok(scep_cacert_parse(b.p, b.n, "application/x-x509-ca-cert", &a, err,
                         sizeof(err))
       == 0 && a.ncerts == 1, "the CA's GetCACert answer parses");

    s = signer_of(dev);

    ok(scep_signer_issuer_hash(s, &ok1) == a.certs[0].subject_hash && ok1,
       "the signer's issuer hash is the CA's subject hash");

    ok(scep_signer_issued_by(s, a.certs[0].spki, a.certs[0].spki_len) == 1,
       "the CA's key signed it");

    OPENSSL_free(b.p);

    spki.p = NULL;
    spki.n = (size_t) i2d_PUBKEY(other_key, &spki.p);

    ok(scep_signer_issued_by(s, spki.p, spki.n) == 0,
       "another key did not");
    ok(scep_signer_issued_by(s, spki.p, spki.n - 1) == -1,
       "a key cut short does not parse");
    ok(scep_signer_issued_by(s, NULL, 0) == -1, "no key");

    OPENSSL_free(spki.p);

    scep_signer_free(s);

    /* the other CA's certificate has another issuer hash */

    stranger = issue(dev_key, other_ca, other_key, "device", 0x4e,
                     now - DAY, now + 30 * DAY);
    s = signer_of(stranger);

    ok(scep_signer_issuer_hash(s, &ok1) != a.certs[0].subject_hash && ok1,
       "another CA's certificate: another issuer hash");

    scep_signer_free(s);

    ok(scep_signer_new((unsigned char *) "\x30\x03\x02\x01\x01", 5,
                       &nomem)
       == NULL && !nomem, "not a certificate: NULL, not for memory");

    b.p = NULL;
    b.n = (size_t) i2d_X509(dev, &b.p);
    ok(scep_signer_new(b.p, b.n - 1, &nomem) == NULL && !nomem,
       "a certificate cut short");
    OPENSSL_free(b.p);

    /* self-signed is the key's word, not the names' */

    s = signer_of(ca);
    ok(scep_signer_self_signed(s) == 1, "the CA's certificate: self-signed");
    scep_signer_free(s);

    s = signer_of(dev);
    ok(scep_signer_self_signed(s) == 0, "a device's: not self-signed");
    scep_signer_free(s);

    ca_named = issue(dev_key, ca, ca_key, "Renewal CA", 0x4f, now - DAY,
                     now + 30 * DAY);
    s = signer_of(ca_named);
    ok(scep_signer_self_signed(s) == 0,
       "issued by the CA to the CA's own name: not self-signed");
    scep_signer_free(s);

    X509_free(ca_named);
    X509_free(dev);
    X509_free(stranger);
}


static void
test_validity(void)
{
    X509           *x;
    time_t          now;
    scep_signer_t  *s;

    now = time(NULL);

    x = issue(dev_key, ca, ca_key, "expired", 2, now - 10 * DAY,
              now - 2 * DAY);
    s = signer_of(x);

    ok(!scep_signer_valid(s, now, 0), "expired two days ago: not valid");
    ok(!scep_signer_valid(s, now, DAY), "with a day of grace: not valid");
    ok(scep_signer_valid(s, now, 3 * DAY), "with three days of grace: valid");
    ok(scep_signer_valid(s, now - 2 * DAY, 0), "at notAfter itself: valid");
    ok(scep_signer_valid(s, now, now), "a grace as long as the epoch: valid");
    ok(scep_signer_valid(s, now, (time_t) 100 * 365 * DAY),
       "a grace of a hundred years: valid");

    scep_signer_free(s);
    X509_free(x);

    x = issue(dev_key, ca, ca_key, "future", 3, now + DAY, now + 30 * DAY);
    s = signer_of(x);

    ok(!scep_signer_valid(s, now, 365 * DAY),
       "not yet valid: not valid, whatever the grace");

    scep_signer_free(s);
    X509_free(x);

    x = issue(dev_key, ca, ca_key, "valid", 4, now - DAY, now + DAY);
    s = signer_of(x);

    ok(scep_signer_valid(s, now, 0), "within its validity: valid");

    scep_signer_free(s);
    X509_free(x);
}


static X509_CRL *
make_crl(X509 *issuer, EVP_PKEY *issuer_key, long serial)
{
    X509_CRL      *crl;
    ASN1_TIME     *t;
    ASN1_INTEGER  *sn;
    X509_REVOKED  *rev;

    crl = X509_CRL_new();
    rev = X509_REVOKED_new();
    sn = ASN1_INTEGER_new();
    t = ASN1_TIME_set(NULL, time(NULL));

    if (crl == NULL || rev == NULL || sn == NULL || t == NULL
        || !X509_CRL_set_version(crl, 1)
        || !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer))
        || !X509_CRL_set1_lastUpdate(crl, t)
        || !ASN1_INTEGER_set(sn, serial)
        || !X509_REVOKED_set_serialNumber(rev, sn)
        || !X509_REVOKED_set_revocationDate(rev, t)
        || !X509_CRL_add0_revoked(crl, rev)
        || !X509_CRL_sort(crl)
        || !X509_CRL_sign(crl, issuer_key, EVP_sha256()))
    {
        bail("making a CRL");
    }

    ASN1_INTEGER_free(sn);
    ASN1_TIME_free(t);

    return crl;
}


static void
write_pem(const char *path, X509 *x, X509_CRL *crl)
{
    FILE  *f;

    f = fopen(path, "w");

    if (f == NULL
        || (x && !PEM_write_X509(f, x))
        || (crl && !PEM_write_X509_CRL(f, crl)))
    {
        bail("writing a PEM file");
    }

    fclose(f);
}


static void
test_crl(void)
{
    FILE           *f;
    X509           *revoked, *kept, *stranger;
    time_t          now;
    X509_CRL       *crl, *other_crl;
    scep_crl_t     *c;
    scep_signer_t  *s;
    char            path[sizeof(dir) + 32], err[128];

    now = time(NULL);

    revoked = issue(dev_key, ca, ca_key, "revoked", 0x77, now - DAY,
                    now + DAY);
    kept = issue(dev_key, ca, ca_key, "kept", 0x78, now - DAY, now + DAY);

    /* the other CA's certificate of the same serial */
    stranger = issue(dev_key, other_ca, other_key, "stranger", 0x77,
                     now - DAY, now + DAY);

    crl = make_crl(ca, ca_key, 0x77);
    other_crl = make_crl(other_ca, other_key, 0x78);

    /* PEM: a certificate is skipped, both CRLs are read */

    snprintf(path, sizeof(path), "%s/crl.pem", dir);
    f = fopen(path, "w");

    if (f == NULL || !PEM_write_X509(f, ca) || !PEM_write_X509_CRL(f, crl)
        || !PEM_write_X509_CRL(f, other_crl))
    {
        bail("writing crl.pem");
    }

    fclose(f);

    c = scep_crl_read(path, err, sizeof(err));
    ok(c != NULL && scep_crl_count(c) == 2, "PEM: both CRLs read");

    s = signer_of(revoked);
    ok(scep_signer_revoked(s, c) == 1, "the CA's CRL lists its serial");
    ok(scep_signer_revoked(s, NULL) == 0, "no CRL: not revoked");
    scep_signer_free(s);

    s = signer_of(kept);
    ok(scep_signer_revoked(s, c) == 0,
       "a serial that only another CA's CRL lists: not revoked");
    scep_signer_free(s);

    s = signer_of(stranger);
    ok(scep_signer_revoked(s, c) == 0,
       "another CA's certificate of a listed serial: not revoked");
    scep_signer_free(s);

    scep_crl_free(c);

    /* DER: one CRL */

    snprintf(path, sizeof(path), "%s/crl.der", dir);
    f = fopen(path, "wb");

    if (f == NULL || !i2d_X509_CRL_fp(f, crl)) {
        bail("writing crl.der");
    }

    fclose(f);

    c = scep_crl_read(path, err, sizeof(err));
    ok(c != NULL && scep_crl_count(c) == 1, "DER: one CRL read");

    s = signer_of(revoked);
    ok(scep_signer_revoked(s, c) == 1, "DER: its serial listed");
    scep_signer_free(s);

    scep_crl_free(c);

    /* what is not a CRL file */

    snprintf(path, sizeof(path), "%s/missing.pem", dir);
    ok(scep_crl_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "cannot open the file (No such file or directory)")
          == 0, "a missing file, with the system's reason");

    /* a CRL that does not parse fails the file, not only what follows */

    snprintf(path, sizeof(path), "%s/broken.pem", dir);
    f = fopen(path, "w");

    if (f == NULL || !PEM_write_X509_CRL(f, other_crl)
        || fputs("-----BEGIN X509 CRL-----\nMIIBAAAA\n"
                 "-----END X509 CRL-----\n", f) < 0
        || !PEM_write_X509_CRL(f, crl))
    {
        bail("writing broken.pem");
    }

    fclose(f);

    ok(scep_crl_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "CRL 2 does not parse") == 0,
       "a broken second CRL: \"CRL 2 does not parse\"");

    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    write_pem(path, ca, NULL);
    ok(scep_crl_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "no CRL in the file (PEM or DER)") == 0,
       "a certificate is not a CRL");

    snprintf(path, sizeof(path), "%s/empty.pem", dir);
    write_pem(path, NULL, NULL);
    ok(scep_crl_read(path, err, sizeof(err)) == NULL
       && strcmp(err, "no CRL in the file (PEM or DER)") == 0,
       "an empty file");

    X509_CRL_free(crl);
    X509_CRL_free(other_crl);
    X509_free(revoked);
    X509_free(kept);
    X509_free(stranger);
}


static void
test_anchors(void)
{
    X509            *dev, *forged;
    time_t           now;
    buf_t            b;
    scep_anchors_t  *a;
    char             path[sizeof(dir) + 32], err[128];

    now = time(NULL);

    snprintf(path, sizeof(path), "%s/anchors.pem", dir);
    write_pem(path, ca, NULL);

    a = scep_anchors_read(path, err, sizeof(err));

    if (a == NULL) {
        bail("scep_anchors_read()");
    }

    dev = issue(dev_key, ca, ca_key, "device", 5, now - DAY, now + DAY);

    /* the name of the CA, another key */
    forged = issue(dev_key, same_name_ca, other_key, "forged", 6, now - DAY,
                   now + DAY);

    b.p = NULL;
    b.n = (size_t) i2d_X509(dev, &b.p);
    ok(scep_anchors_issued(a, b.p, b.n) == 1, "issued by an anchor");
    ok(scep_anchors_issued(a, b.p, b.n - 1) == -1,
       "a certificate cut short does not parse");
    ok(scep_anchors_issued(NULL, b.p, b.n) == 0, "no anchors");
    OPENSSL_free(b.p);

    b.p = NULL;
    b.n = (size_t) i2d_X509(forged, &b.p);
    ok(scep_anchors_issued(a, b.p, b.n) == 0,
       "the anchor's name, another key: not issued by it");
    OPENSSL_free(b.p);

    scep_anchors_free(a);
    X509_free(dev);
    X509_free(forged);
}


int
main(void)
{
    char  cmd[sizeof(dir) + 16];

    if (mkdtemp(dir) == NULL) {
        bail("mkdtemp");
    }

    ca_key = EVP_RSA_gen(2048);
    other_key = EVP_RSA_gen(2048);
    dev_key = EVP_EC_gen("P-256");

    if (ca_key == NULL || other_key == NULL || dev_key == NULL) {
        bail("generating keys");
    }

    ca = make_cert(ca_key, ca_key, "Renewal CA", 1, CERT_CA | CERT_SKI);
    other_ca = make_cert(other_key, other_key, "Another CA", 2,
                         CERT_CA | CERT_SKI);
    same_name_ca = make_cert(other_key, other_key, "Renewal CA", 3,
                             CERT_CA | CERT_SKI);

    test_issuer();
    test_validity();
    test_crl();
    test_anchors();

    X509_free(ca);
    X509_free(other_ca);
    X509_free(same_name_ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(dev_key);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);

    if (system(cmd) != 0) {
        printf("# cannot remove %s\n", dir);
    }

    return tap_done();
}
