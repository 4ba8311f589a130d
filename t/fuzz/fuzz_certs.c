
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Fuzz target for scep_certs.c: every input is taken as a GetCACaps
 * and as a GetCACert answer, and what the parsers return is checked
 * for consistency; and as a Content-Type value, whose reason must be
 * printable text whatever the value holds.
 */


#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "scep_certs.h"


#define FUZZ_NOW   1795310000        /* 2026-11-22 */
#define FUZZ_WARN  (30 * 86400)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_string(const char *s, size_t size);
static void fuzz_answer(const scep_ca_answer_t *a, int rc,
    const uint8_t *data, size_t size);
static void fuzz_content_type(const uint8_t *data, size_t size);


static void
fuzz_string(const char *s, size_t size)
{
    if (memchr(s, '\0', size) == NULL) {
        abort();
    }
}


static void
fuzz_answer(const scep_ca_answer_t *a, int rc, const uint8_t *data,
    size_t size)
{
    int   i, level;
    char  msg[128];

    if (rc != 0) {
        if (rc != -1 || a->ncerts != 0 || a->ca != -1) {
            abort();
        }

        return;
    }

    if (a->ncerts < 1 || a->ncerts > SCEP_CERTS_MAX
        || a->ca < -1 || a->ca >= a->ncerts
        || (a->ca == -1 && a->ncerts == 1))
    {
        abort();
    }

    for (i = 0; i < a->ncerts; i++) {
        fuzz_string(a->certs[i].subject, sizeof(a->certs[i].subject));
        fuzz_string(a->certs[i].issuer, sizeof(a->certs[i].issuer));
        fuzz_string(a->certs[i].serial, sizeof(a->certs[i].serial));

        /* the key, if pointed to, is a SEQUENCE inside the body */

        if ((a->certs[i].spki == NULL) != (a->certs[i].spki_len == 0)
            || (a->certs[i].spki != NULL
                && (a->certs[i].spki < data
                    || a->certs[i].spki_len > size
                    || a->certs[i].spki - data
                       > (ptrdiff_t) (size - a->certs[i].spki_len)
                    || a->certs[i].spki[0] != 0x30)))
        {
            abort();
        }
    }

    level = scep_cacert_check(a, FUZZ_NOW, FUZZ_WARN, msg, sizeof(msg));

    if (level < SCEP_CERTS_VALID || level > SCEP_CERTS_EXPIRED
        || (level == SCEP_CERTS_VALID) != (msg[0] == '\0'))
    {
        abort();
    }

    fuzz_string(msg, sizeof(msg));

    (void) scep_cacert_check(a, 0, 0, msg, 16);
    (void) scep_cacert_check(a, FUZZ_NOW, FUZZ_WARN, NULL, 0);
}


static void
fuzz_content_type(const uint8_t *data, size_t size)
{
    int     rc;
    char    err[128];
    size_t  i, n;

    rc = scep_content_type_check(data, size, "GetCACaps", err, sizeof(err));

    if ((rc != 0 && rc != -1) || (rc == 0) != (err[0] == '\0')) {
        abort();
    }

    fuzz_string(err, sizeof(err));

    n = strlen(err);

    for (i = 0; i < n; i++) {
        if (err[i] < 0x20 || err[i] > 0x7e) {
            abort();
        }
    }

    if (scep_content_type_check(data, size, "GetCACert", err, 8) != rc
        || scep_content_type_check(data, size, "GetCACert", NULL, 0) != rc)
    {
        abort();
    }

    fuzz_string(err, 8);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc;
    char              err[128];
    uint32_t          caps;
    scep_ca_answer_t  a;

    rc = scep_caps_parse(data, size, &caps, err, sizeof(err));

    if ((rc != 0 && rc != -1) || (rc == -1 && (caps != 0 || err[0] == '\0'))
        || (caps & ~0x0fffu))
    {
        abort();
    }

    rc = scep_cacert_parse(data, size, NULL, &a, err, sizeof(err));
    fuzz_answer(&a, rc, data, size);

    rc = scep_cacert_parse(data, size, "application/x-x509-ca-ra-cert", &a,
                           err, sizeof(err));
    fuzz_answer(&a, rc, data, size);

    fuzz_content_type(data, size);

    return 0;
}
