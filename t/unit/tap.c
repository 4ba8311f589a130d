
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * TAP output of the unit tests (tap.h).
 */


#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>

#include "tap.h"


/* one test program a process: its counts */
static int  tap_n;
static int  tap_failed;


void
ok(int cond, const char *what)
{
    tap_n++;

    if (!cond) {
        tap_failed++;
    }

    printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, what);
}


void
bail(const char *what)
{
    printf("Bail out! %s\n", what);
    ERR_print_errors_fp(stdout);
    exit(1);
}


int
tap_done(void)
{
    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}
