
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * CPU cost of scep_message_check() on DER pkiMessages, and of decoding
 * their canonical query form.
 *
 *   validate-bench [-f] [-n CHECKS] [-d DECODES] FILE...
 *
 * The checks use one scep_crypto_t, as the module does; with -f, none:
 * each check fetches its digest and makes its keys on its own.
 *
 * Prints one line per file: its path, size, the number of checks, CPU
 * microseconds per check, the number of decodes, CPU microseconds per
 * decode and the check's result ("ok" or its reason token).  Exits 1
 * when a file does not pass the check.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scep_message.h"


#define SCEP_BENCH_MAX_FILE  (16 * 1024 * 1024)


static double scep_bench_now(void);
static unsigned char *scep_bench_read(const char *path, size_t *len);
static long scep_bench_count(const char *arg);
static int scep_bench_file(const char *path, long checks, long decodes,
    scep_crypto_t *crypto);


static double
scep_bench_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        return 0;
    }

    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}


static unsigned char *
scep_bench_read(const char *path, size_t *len)
{
    FILE           *f;
    size_t          n;
    unsigned char  *buf;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }

    buf = malloc(SCEP_BENCH_MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        fprintf(stderr, "no memory\n");
        return NULL;
    }

    n = fread(buf, 1, SCEP_BENCH_MAX_FILE + 1, f);

    if (ferror(f) || n > SCEP_BENCH_MAX_FILE) {
        fprintf(stderr, "%s: unreadable or too large\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }

    fclose(f);
    *len = n;

    return buf;
}


static long
scep_bench_count(const char *arg)
{
    long   n;
    char  *end;

    errno = 0;
    n = strtol(arg, &end, 10);

    if (errno != 0 || *end != '\0' || end == arg || n < 0) {
        return -1;
    }

    return n;
}


static int
scep_bench_file(const char *path, long checks, long decodes,
    scep_crypto_t *crypto)
{
    long            i;
    size_t          len, qlen, n;
    double          t0, check_us, decode_us;
    scep_policy_t   policy;
    scep_reason_t   reason;
    scep_result_t   res;
    unsigned char  *der, *query, *out;

    der = scep_bench_read(path, &len);
    if (der == NULL) {
        return -1;
    }

    query = malloc(scep_base64_encoded_max(len) + 1);
    out = malloc(len + 1);

    if (query == NULL || out == NULL) {
        fprintf(stderr, "no memory\n");
        free(der);
        free(query);
        free(out);
        return -1;
    }

    qlen = scep_base64_encode_query(der, len, query);

    policy.algorithms = SCEP_ALG_DEFAULT;
    policy.crypto = crypto;

    /* once outside the clock: the verdict, and lazy library set-up */
    reason = scep_message_check(der, len, &policy, &res);

    t0 = scep_bench_now();

    for (i = 0; i < checks; i++) {
        (void) scep_message_check(der, len, &policy, &res);
    }

    check_us = checks ? (scep_bench_now() - t0) / checks : 0;

    t0 = scep_bench_now();

    for (i = 0; i < decodes; i++) {
        if (scep_base64_decode(query, qlen, out, len, &n, NULL) != SCEP_OK
            || n != len)
        {
            fprintf(stderr, "%s: canonical form does not decode\n", path);
            break;
        }
    }

    decode_us = decodes ? (scep_bench_now() - t0) / decodes : 0;

    printf("%s %zu %ld %.2f %ld %.2f %s\n", path, len, checks, check_us,
           decodes, decode_us,
           reason == SCEP_REASON_OK ? "ok" : scep_reason_token(reason));

    free(der);
    free(query);
    free(out);

    return reason == SCEP_REASON_OK ? 0 : 1;
}


int
main(int argc, char **argv)
{
    int             i, rc, failed, usage, decodes_set, fetch;
    long            checks, decodes;
    scep_crypto_t  *crypto;

    checks = 2000;
    decodes = 0;
    decodes_set = 0;
    usage = 0;
    fetch = 0;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            checks = scep_bench_count(argv[++i]);
            usage |= (checks < 0);

        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            decodes = scep_bench_count(argv[++i]);
            usage |= (decodes < 0);
            decodes_set = 1;

        } else if (strcmp(argv[i], "-f") == 0) {
            fetch = 1;

        } else {
            usage = 1;
        }
    }

    if (usage || i == argc) {
        fprintf(stderr, "usage: %s [-f] [-n CHECKS] [-d DECODES] FILE...\n",
                argv[0]);
        return 2;
    }

    if (!decodes_set) {
        decodes = checks;
    }

    crypto = NULL;

    if (!fetch) {
        crypto = scep_crypto_new();
        if (crypto == NULL) {
            fprintf(stderr, "scep_crypto_new() failed\n");
            return 1;
        }
    }

    failed = 0;

    for ( /* void */ ; i < argc; i++) {
        rc = scep_bench_file(argv[i], checks, decodes, crypto);

        if (rc != 0) {
            failed = 1;
        }
    }

    scep_crypto_free(crypto);

    return failed;
}
