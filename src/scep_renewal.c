
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A renewal's signer certificate, judged before the CA sees it: who
 * issued it, whether it is within its validity, and whether a CRL lists
 * it.  The CA certificates it is judged against are the caller's (the
 * back ends' GetCACert answers, scep_trusted_ca); the CRLs are read from
 * a file at configuration time.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep_certs.h"
#include "scep_renewal.h"


struct scep_signer_s {
    X509                 *x509;
};


struct scep_crl_s {
    STACK_OF(X509_CRL)   *crls;
};


static void scep_renewal_reason(char *buf, size_t size, const char *reason);


scep_signer_t *
scep_signer_new(const unsigned char *der, size_t len, int *nomem)
{
    X509                 *x;
    unsigned long         e;
    scep_signer_t        *s;
    const unsigned char  *p;

    *nomem = 0;

    if (der == NULL || len == 0 || len > (size_t) 0x7fffffff) {
        return NULL;
    }

    p = der;
    x = d2i_X509(NULL, &p, (long) len);

    if (x == NULL || p != der + len) {
        e = ERR_peek_last_error();

        if (x == NULL && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
            *nomem = 1;
        }

        X509_free(x);
        ERR_clear_error();
        return NULL;
    }

    s = malloc(sizeof(scep_signer_t));

    if (s == NULL) {
        X509_free(x);
        *nomem = 1;
        return NULL;
    }

    s->x509 = x;

    return s;
}


void
scep_signer_free(scep_signer_t *s)
{
    if (s == NULL) {
        return;
    }

    X509_free(s->x509);
    free(s);
}


int
scep_signer_self_signed(const scep_signer_t *s)
{
    int  rc;

    /* the name and, unlike a name compared alone, the signature */

    rc = X509_self_signed(s->x509, 1);

    ERR_clear_error();

    return rc;
}


uint32_t
scep_signer_issuer_hash(const scep_signer_t *s, int *ok)
{
    unsigned long  hash;

    *ok = 0;
    hash = X509_NAME_hash_ex(X509_get_issuer_name(s->x509), NULL, NULL, ok);

    ERR_clear_error();

    return *ok ? (uint32_t) hash : 0;
}


int
scep_signer_issued_by(const scep_signer_t *s, const unsigned char *spki,
    size_t len)
{
    int                   rc;
    EVP_PKEY             *pkey;
    const unsigned char  *p;

    if (spki == NULL || len == 0 || len > (size_t) 0x7fffffff) {
        return -1;
    }

    p = spki;
    pkey = d2i_PUBKEY(NULL, &p, (long) len);

    if (pkey == NULL || p != spki + len) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return -1;
    }

    rc = (X509_verify(s->x509, pkey) == 1);

    EVP_PKEY_free(pkey);
    ERR_clear_error();

    return rc;
}


int
scep_signer_valid(const scep_signer_t *s, time_t now, time_t grace)
{
    int     rc;
    time_t  t;

    rc = X509_cmp_time(X509_get0_notBefore(s->x509), &now);

    if (rc == 0 || rc > 0) {
        /* not yet valid, or a date that does not read */
        ERR_clear_error();
        return 0;
    }

    if (grace >= now) {
        /* a grace longer than the epoch: any notAfter will do */
        ERR_clear_error();
        return 1;
    }

    t = (grace > 0) ? now - grace : now;

    /*
     * notAfter itself is still valid: X509_cmp_time() says -1 for a
     * time equal to it, so a second earlier is compared
     */

    t--;

    rc = X509_cmp_time(X509_get0_notAfter(s->x509), &t);

    ERR_clear_error();

    return rc > 0;
}


int
scep_signer_revoked(const scep_signer_t *s, const scep_crl_t *crl)
{
    int            i;
    X509_CRL      *c;
    X509_REVOKED  *rev;

    if (crl == NULL) {
        return 0;
    }

    for (i = 0; i < sk_X509_CRL_num(crl->crls); i++) {
        c = sk_X509_CRL_value(crl->crls, i);

        /* the issuer is compared too, as X509_CRL_get0_by_cert() does */

        if (X509_CRL_get0_by_cert(c, &rev, s->x509) == 1) {
            ERR_clear_error();
            return 1;
        }
    }

    ERR_clear_error();

    return 0;
}


void
scep_signer_text(const scep_signer_t *s, char *issuer, size_t issuer_size,
    char *serial, size_t serial_size)
{
    int                   n;
    unsigned char        *name;
    const ASN1_INTEGER   *sn;

    name = NULL;
    n = i2d_X509_NAME(X509_get_issuer_name(s->x509), &name);
    sn = X509_get0_serialNumber(s->x509);

    scep_issuer_serial_text(name, (n > 0) ? (size_t) n : 0,
                            ASN1_STRING_get0_data(sn),
                            (size_t) ASN1_STRING_length(sn),
                            issuer, issuer_size, serial, serial_size);

    OPENSSL_free(name);
    ERR_clear_error();
}


scep_crl_t *
scep_crl_read(const char *path, char *err, size_t errlen)
{
    int            n;
    BIO           *bio;
    X509_CRL      *c;
    scep_crl_t    *crl;
    unsigned long  e;
    char           reason[64];

    scep_renewal_reason(err, errlen, "");

    ERR_clear_error();

    errno = 0;
    bio = BIO_new_file(path, "rb");

    if (bio == NULL) {
        n = errno;
        ERR_clear_error();

        snprintf(reason, sizeof(reason), "cannot open the file (%s)",
                 n ? strerror(n) : "BIO_new_file() failed");
        scep_renewal_reason(err, errlen, reason);
        return NULL;
    }

    crl = calloc(1, sizeof(scep_crl_t));

    if (crl == NULL || (crl->crls = sk_X509_CRL_new_null()) == NULL) {
        scep_renewal_reason(err, errlen, "out of memory");
        goto failed;
    }

    for (n = 1; /* void */; n++) {
        c = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);

        if (c == NULL) {
            /*
             * only "no start line" is the end of the file: a CRL that
             * does not parse would drop it and all after it
             */

            e = ERR_peek_last_error();

            if (e == 0
                || (ERR_GET_LIB(e) == ERR_LIB_PEM
                    && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
            {
                break;
            }

            snprintf(reason, sizeof(reason),
                     (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
                     ? "out of memory at CRL %d" : "CRL %d does not parse",
                     n);
            scep_renewal_reason(err, errlen, reason);
            goto failed;
        }

        if (!sk_X509_CRL_push(crl->crls, c)) {
            X509_CRL_free(c);
            scep_renewal_reason(err, errlen, "out of memory");
            goto failed;
        }
    }

    ERR_clear_error();

    if (sk_X509_CRL_num(crl->crls) == 0) {
        /* no PEM block: one DER CRL, as "openssl ca -gencrl" can write */

        (void) BIO_reset(bio);

        c = d2i_X509_CRL_bio(bio, NULL);

        if (c == NULL || !sk_X509_CRL_push(crl->crls, c)) {
            X509_CRL_free(c);
            scep_renewal_reason(err, errlen,
                                "no CRL in the file (PEM or DER)");
            goto failed;
        }
    }

    BIO_free(bio);
    ERR_clear_error();

    return crl;

failed:

    BIO_free(bio);
    scep_crl_free(crl);
    ERR_clear_error();

    return NULL;
}


void
scep_crl_free(scep_crl_t *crl)
{
    if (crl == NULL) {
        return;
    }

    sk_X509_CRL_pop_free(crl->crls, X509_CRL_free);
    free(crl);
}


int
scep_crl_count(const scep_crl_t *crl)
{
    return crl ? sk_X509_CRL_num(crl->crls) : 0;
}


static void
scep_renewal_reason(char *buf, size_t size, const char *reason)
{
    if (buf == NULL || size == 0) {
        return;
    }

    snprintf(buf, size, "%s", reason);
}
