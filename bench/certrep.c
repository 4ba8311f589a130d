
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * CPU cost of checking a back end's CertRep as the module does, against
 * its crypto floor measured in the same process.
 *
 *   certrep-bench [-n CHECKS] CERTREP REQUEST RA-CERT RA-KEY
 *
 * CERTREP is the answer (DER) to REQUEST (a DER pkiMessage), signed with
 * the key RA-KEY (PEM) of RA-CERT (PEM).  A check is
 * scep_certrep_parse(), scep_certrep_match() and scep_certrep_verify()
 * with the RA's SubjectPublicKeyInfo as scep_cacert_parse() points to it
 * in the DER certificate, one scep_crypto_t for all checks, as the module
 * keeps one.  The floor is one RSA verification with the RA key (its
 * context made once, as OpenSSL's cheapest path) plus one SHA-256 of the
 * answer.
 *
 * Prints one line: the answer's size, CPU microseconds a check, CPU
 * microseconds of the floor, their ratio and the check's result ("ok"
 * or the token of its outcome).  Exits 1 when the answer does not pass.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scep_certrep.h"


#define SCEP_BENCH_MAX_FILE  (1024 * 1024)


typedef struct {
    unsigned char  *p;
    size_t          n;
} scep_bench_buf_t;


static double scep_bench_now(void);
static int scep_bench_read(const char *path, scep_bench_buf_t *b);
static scep_response_t scep_bench_check(const scep_bench_buf_t *rep,
    const scep_result_t *req, const unsigned char *spki, size_t spki_len,
    scep_crypto_t *crypto);
static double scep_bench_floor(const scep_bench_buf_t *rep, EVP_PKEY *key,
    long n);


static double
scep_bench_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        return 0;
    }

    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}


static int
scep_bench_read(const char *path, scep_bench_buf_t *b)
{
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }

    b->p = malloc(SCEP_BENCH_MAX_FILE + 1);
    if (b->p == NULL) {
        fclose(f);
        return -1;
    }

    b->n = fread(b->p, 1, SCEP_BENCH_MAX_FILE + 1, f);

    if (ferror(f) || b->n > SCEP_BENCH_MAX_FILE) {
        fprintf(stderr, "%s: unreadable or too large\n", path);
        fclose(f);
        return -1;
    }

    fclose(f);

    return 0;
}


/* one answer checked as the module checks it */

static scep_response_t
scep_bench_check(const scep_bench_buf_t *rep, const scep_result_t *req,
    const unsigned char *spki, size_t spki_len, scep_crypto_t *crypto)
{
    scep_certrep_t   cr;
    scep_response_t  rc;

    rc = scep_certrep_parse(rep->p, rep->n, &cr);

    if (rc == SCEP_RESPONSE_OK) {
        rc = scep_certrep_match(&cr, req);
    }

    if (rc == SCEP_RESPONSE_OK) {
        rc = scep_certrep_verify(rep->p, rep->n, spki, spki_len, crypto);
    }

    return rc;
}


/* microseconds of one RSA verify and one SHA-256 of the answer */

static double
scep_bench_floor(const scep_bench_buf_t *rep, EVP_PKEY *key, long n)
{
    long            i;
    size_t          siglen;
    double          t0, us;
    EVP_MD         *md;
    unsigned int    mdlen;
    EVP_PKEY_CTX   *sctx, *vctx;
    unsigned char   dgst[EVP_MAX_MD_SIZE], sig[1024];

    md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    vctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    siglen = sizeof(sig);

    if (md == NULL || sctx == NULL || vctx == NULL
        || !EVP_Digest(rep->p, rep->n, dgst, &mdlen, md, NULL)
        || EVP_PKEY_sign_init(sctx) <= 0
        || EVP_PKEY_CTX_set_signature_md(sctx, md) <= 0
        || EVP_PKEY_sign(sctx, sig, &siglen, dgst, mdlen) <= 0
        || EVP_PKEY_verify_init(vctx) <= 0
        || EVP_PKEY_CTX_set_signature_md(vctx, md) <= 0
        || EVP_PKEY_verify(vctx, sig, siglen, dgst, mdlen) != 1)
    {
        ERR_print_errors_fp(stderr);
        us = -1;
        goto done;
    }

    t0 = scep_bench_now();

    for (i = 0; i < n; i++) {
        if (!EVP_Digest(rep->p, rep->n, dgst, &mdlen, md, NULL)
            || EVP_PKEY_verify(vctx, sig, siglen, dgst, mdlen) != 1)
        {
            us = -1;
            goto done;
        }
    }

    us = (scep_bench_now() - t0) / n;

done:

    EVP_PKEY_CTX_free(sctx);
    EVP_PKEY_CTX_free(vctx);
    EVP_MD_free(md);

    return us;
}


int
main(int argc, char **argv)
{
    int                i, len;
    FILE              *f;
    X509              *x;
    long               n;
    double             t0, us, floor_us;
    EVP_PKEY          *key;
    scep_crypto_t     *crypto;
    scep_result_t      req;
    scep_reason_t      reason;
    scep_response_t    rc;
    scep_ca_answer_t   ca;
    scep_bench_buf_t   rep, msg, cert;

    n = 2000;
    i = 1;

    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        n = strtol(argv[2], NULL, 10);
        i = 3;
    }

    if (argc - i != 4 || n <= 0) {
        fprintf(stderr, "usage: %s [-n CHECKS] CERTREP REQUEST RA-CERT"
                " RA-KEY\n", argv[0]);
        return 2;
    }

    if (scep_bench_read(argv[i], &rep) != 0
        || scep_bench_read(argv[i + 1], &msg) != 0)
    {
        return 1;
    }

    /* the RA certificate, as DER, as GetCACert has it */

    f = fopen(argv[i + 2], "r");
    x = (f != NULL) ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f != NULL) {
        fclose(f);
    }

    f = fopen(argv[i + 3], "r");
    key = (f != NULL) ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

    if (f != NULL) {
        fclose(f);
    }

    cert.p = NULL;

    if (x == NULL || key == NULL
        || (len = i2d_X509(x, &cert.p)) <= 0
        || scep_cacert_parse(cert.p, len, NULL, &ca, NULL, 0) != 0
        || ca.certs[0].spki == NULL)
    {
        fprintf(stderr, "cannot read the RA certificate or key\n");
        return 1;
    }

    reason = scep_message_check(msg.p, msg.n, NULL, &req);
    if (reason != SCEP_REASON_OK) {
        fprintf(stderr, "the request does not pass: %s\n",
                scep_reason_token(reason));
        return 1;
    }

    crypto = scep_crypto_new();
    if (crypto == NULL) {
        return 1;
    }

    /* once outside the clock: the verdict, the RA key made and kept */

    rc = scep_bench_check(&rep, &req, ca.certs[0].spki, ca.certs[0].spki_len,
                          crypto);

    t0 = scep_bench_now();

    for (i = 0; i < n; i++) {
        (void) scep_bench_check(&rep, &req, ca.certs[0].spki,
                                ca.certs[0].spki_len, crypto);
    }

    us = (scep_bench_now() - t0) / n;

    floor_us = scep_bench_floor(&rep, key, n);

    printf("%zu %.2f %.2f %.2f %s\n", rep.n, us, floor_us,
           floor_us > 0 ? us / floor_us : 0, scep_response_token(rc));

    scep_crypto_free(crypto);
    EVP_PKEY_free(key);
    X509_free(x);
    OPENSSL_free(cert.p);
    free(rep.p);
    free(msg.p);

    return (rc == SCEP_RESPONSE_OK && floor_us > 0) ? 0 : 1;
}
