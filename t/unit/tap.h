
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * TAP output of the unit tests: one "ok N - what" line a check, the
 * plan at the end, "Bail out!" when a test cannot go on.
 */


#ifndef _TAP_H_INCLUDED_
#define _TAP_H_INCLUDED_


void ok(int cond, const char *what);

/* prints "Bail out! what" and OpenSSL's queued errors, exits 1 */
void bail(const char *what);

/* prints the plan; the exit status: 1 when a check failed */
int tap_done(void);


#endif /* _TAP_H_INCLUDED_ */
