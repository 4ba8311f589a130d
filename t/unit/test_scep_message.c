
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Unit tests of scep_message.c; prints TAP.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scep_message.h"

#include "tap.h"




static int
decode(const char *in, size_t max, unsigned char *out, size_t *n)
{
    return scep_base64_decode((const unsigned char *) in, strlen(in), out,
                              max, n, NULL);
}


static int
decodes_to(const char *in, const char *expect)
{
    size_t         n;
    unsigned char  out[256];

    if (decode(in, sizeof(out), out, &n) != SCEP_OK) {
        return 0;
    }

    return n == strlen(expect) && memcmp(out, expect, n) == 0;
}


static void
test_dialects(void)
{
    /* bytes whose encoding is "+++/////YWI=" */
    static const char  bin[] = "\xfb\xef\xbf\xff\xff\xff" "ab";

    ok(decodes_to("aGVsbG8gd29ybGQ%3D", "hello world"),
       "standard, percent-encoded padding");
    ok(decodes_to("aGVsbG8gd29ybGQ=", "hello world"),
       "standard, raw padding");
    ok(decodes_to("aGVsbG8gd29ybGQ", "hello world"),
       "missing padding");
    ok(decodes_to("%2B%2B%2B%2F%2F%2F%2F%2FYWI%3D", bin),
       "standard, percent-encoded + and /");
    ok(decodes_to("+++/////YWI%3D", bin), "raw + and / (macOS)");
    ok(decodes_to("%20%20%20/////YWI%3D", bin),
       "+ turned into a space by form decoding");
    ok(decodes_to("---_____YWI", bin), "URL-safe, no padding");
    ok(decodes_to("---_____YWI=", bin), "URL-safe with padding");
    ok(decodes_to("aGVsbG8g%0D%0Ad29y%0AbGQ%3D", "hello world"),
       "line breaks, percent-encoded");
    ok(decodes_to("aGVsbG8g\r\nd29ybGQ=", "hello world"),
       "raw line breaks");
    ok(decodes_to("aGVsbG8gd29ybGQ%3d", "hello world"),
       "lower-case percent escapes");
    ok(decodes_to("YQ%3D%3D", "a"), "two padding characters");
}


static int
canonical(const char *in)
{
    int            canon;
    size_t         n;
    unsigned char  out[256];

    canon = -1;

    if (scep_base64_decode((const unsigned char *) in, strlen(in), out,
                           sizeof(out), &n, &canon)
        != SCEP_OK)
    {
        return -1;
    }

    return canon;
}


static void
test_canonical(void)
{
    ok(canonical("aGVsbG8gd29ybGQ%3D") == 1, "canonical: standard");
    ok(canonical("%2B%2B%2B%2F%2F%2F%2F%2FYWI%3D") == 1,
       "canonical: escaped + and /");
    ok(canonical("YQ%3D%3D") == 1, "canonical: two padding escapes");
    ok(canonical("aGVsbG8gd29ybGQ=") == 0, "not canonical: raw =");
    ok(canonical("aGVsbG8gd29ybGQ") == 0, "not canonical: no padding");
    ok(canonical("+++/////YWI%3D") == 0, "not canonical: raw + and /");
    ok(canonical("---_____YWI") == 0, "not canonical: URL-safe");
    ok(canonical("%20%20%20/////YWI%3D") == 0, "not canonical: spaces");
    ok(canonical("aGVsbG8g%0Ad29ybGQ%3D") == 0,
       "not canonical: line break");
    ok(canonical("aGVsbG8gd29ybGQ%3d") == 0,
       "not canonical: lower-case escape");
    ok(canonical("%61GVsbG8gd29ybGQ%3D") == 0,
       "not canonical: escaped letter");
}


static void
test_rejects(void)
{
    size_t         n;
    unsigned char  out[64];

    ok(decode("aGVs*G8=", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "character outside every alphabet");
    ok(decode("aGVsbG8%", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "truncated percent escape");
    ok(decode("aGVsbG8%zz", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "invalid percent escape");
    ok(decode("aGVsb%00G8", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "NUL byte");
    ok(decode("aGVs=bG8", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "data after padding");
    ok(decode("YQ===", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "too much padding");
    ok(decode("YQ==YWJj", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "a full quantum after padding");
    ok(decode("YQ%3D%3DYWJj", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "a full quantum after escaped padding");
    ok(decode("YW%25Jj", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "an escaped percent sign");
    ok(decode("YWJj=", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "padding after a full quantum");
    ok(decode("YWJjZ", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "a lone trailing character");
    ok(decode("YWJ\tj", sizeof(out), out, &n) == SCEP_BAD_BASE64,
       "tab");
    ok(decode("", sizeof(out), out, &n) == SCEP_OK && n == 0,
       "empty input decodes to nothing");
}


static void
test_sizes(void)
{
    int             canon;
    size_t          i, n, len, elen;
    unsigned char  *in, *enc, *out;

    ok(decode("YWJj", 3, (unsigned char [3]) { 0 }, &n) == SCEP_OK && n == 3,
       "exactly the maximum");
    ok(decode("YWJjZA", 3, (unsigned char [4]) { 0 }, &n) == SCEP_TOO_LARGE,
       "one byte over the maximum");
    ok(decode("YWJjZGVm", 5, (unsigned char [6]) { 0 }, &n)
       == SCEP_TOO_LARGE, "a full quantum over the maximum");

    /* round trips through the canonical encoder at every length */

    len = 65536;
    in = malloc(len);
    enc = malloc(scep_base64_encoded_max(len));
    out = malloc(scep_base64_decoded_max(scep_base64_encoded_max(len)));

    if (in == NULL || enc == NULL || out == NULL) {
        printf("Bail out! no memory\n");
        exit(1);
    }

    for (i = 0; i < len; i++) {
        in[i] = (unsigned char) (i * 7 + (i >> 8));
    }

    for (i = 0; i < 70; i++) {
        elen = scep_base64_encode_query(in, i, enc);
        if (scep_base64_decode(enc, elen, out, i, &n, NULL) != SCEP_OK
            || n != i || memcmp(in, out, n) != 0)
        {
            break;
        }
    }

    ok(i == 70, "canonical encoding round-trips for lengths 0 to 69");

    elen = scep_base64_encode_query(in, len, enc);
    ok(scep_base64_decode(enc, elen, out, len, &n, &canon) == SCEP_OK
       && canon && n == len
       && memcmp(in, out, len) == 0, "64 KiB round trip");
    ok(scep_base64_decode(enc, elen, out, len - 1, &n, NULL)
       == SCEP_TOO_LARGE,
       "64 KiB against a maximum one byte smaller");

    for (i = 0; i < elen; i++) {
        if (enc[i] == '=') {
            break;
        }
    }

    ok(i == elen, "canonical encoding has no raw '='");

    free(in);
    free(enc);
    free(out);
}


static void
test_ca_ident(void)
{
    char  buf[300];

#define ident(s, max)                                                         \
    scep_ca_ident_ok((const unsigned char *) (s), strlen(s), max)

    ok(ident("", 255), "CA identifier may be empty");
    ok(ident("default", 255), "CA identifier \"default\"");
    ok(ident("SCEP%20Authority", 255), "CA identifier with %20");
    ok(ident("SCEP+Authority", 255), "CA identifier with +");
    ok(!ident("a%01b", 255), "percent-encoded control byte");
    ok(!ident("a%7Fb", 255), "percent-encoded DEL");
    ok(!ident("a%C3%A9", 255), "percent-encoded non-ASCII");
    ok(!ident("ab%2", 255), "truncated escape");
    ok(!ident("a\tb", 255), "raw tab");

    memset(buf, 'x', 255);
    buf[255] = '\0';
    ok(ident(buf, 255), "255 bytes is the limit");
    buf[255] = 'x';
    buf[256] = '\0';
    ok(!ident(buf, 255), "256 bytes is over it");

#undef ident
}


static void
test_query(void)
{
    scep_query_t  q;

#define scan(s)  scep_query_scan((const unsigned char *) (s), strlen(s), &q)
#define is(v, s) ((v) && strlen(s) == v##_len && memcmp(v, s, v##_len) == 0)

    scan("operation=GetCACaps&message=ca");
    ok(q.operations == 1 && is(q.operation, "GetCACaps"), "query: operation");
    ok(q.messages == 1 && is(q.message, "ca"), "query: message");

    scan("message=abc&x=1&operation=PKIOperation");
    ok(is(q.operation, "PKIOperation") && is(q.message, "abc"),
       "query: any order, other parameters ignored");

    scan("operation=A&operation=B");
    ok(q.operations == 2 && is(q.operation, "B"), "query: repeated counted");

    scan("operationx=1&xoperation=2&operatio=3&messages=4");
    ok(q.operations == 0 && q.messages == 0, "query: other names");

    scan("Operation=GetCACaps");
    ok(q.operations == 1 && is(q.operation, "GetCACaps"),
       "query: names are case-insensitive, as NDES reads them");

    scan("op%65ration=PKIOperation&m%45ssage=abc&operation=GetCACaps");
    ok(q.operations == 2 && q.messages == 1,
       "query: percent-encoded names count");

    scan("operation&operation=GetCACaps");
    ok(q.operations == 2, "query: a name without '=' counts");

    scan("operation");
    ok(q.operations == 1 && q.operation_len == 0,
       "query: a name without '=' has an empty value");

    scan("op%2=x&operation%=y&%6Fperation=GetCACert");
    ok(q.operations == 1 && is(q.operation, "GetCACert"),
       "query: bad escapes in names match nothing");

    scan("operation=&message=");
    ok(q.operations == 1 && q.operation_len == 0 && q.messages == 1
       && q.message_len == 0, "query: empty values");

    scan("");
    ok(q.operations == 0 && q.messages == 0, "query: empty");

    scan("&&&operation=GetCACert&&");
    ok(is(q.operation, "GetCACert"), "query: stray ampersands");

    scan("operation=PKIOperation&message=abc%2B");
    ok(q.u_escapes == 0, "query: no %u escape in a standard query");

    scan("op%u0065ration=GetCACaps");
    ok(q.u_escapes == 1 && q.operations == 0,
       "query: %u in a name is counted");

    scan("operation=PKIOper%U0061tion&x=%u&y=%");
    ok(q.u_escapes == 2, "query: %u and %U in values, even without digits");

    scan("operation=GetCACert%");
    ok(q.u_escapes == 0, "query: a '%' at the end");

#undef scan
#undef is
}


/*
 * Long canonical values take the 16-character steps (SSSE3, where the CPU
 * has it): every length and escape position around a block's end, a bad
 * character at every position, and every output limit near the end.
 */

static void
test_long(void)
{
    int             canon, bad_ok, len_ok, limit_ok;
    size_t          len, i, n, qlen, max;
    unsigned char   in[600], *q, out[600], c;
    unsigned int    seed;

    q = malloc(scep_base64_encoded_max(sizeof(in)));
    if (q == NULL) {
        exit(1);
    }

    seed = 1;
    len_ok = 1;
    bad_ok = 1;
    limit_ok = 1;

    for (len = 1; len <= sizeof(in); len++) {
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            in[i] = (unsigned char) (seed >> 16);

            /* runs of 0xff and 0xfb: "/" and "+", escapes side by side */
            if (len % 5 == 0 && i % 7 < 3) {
                in[i] = (i % 2) ? 0xff : 0xfb;
            }
        }

        qlen = scep_base64_encode_query(in, len, q);

        canon = 0;

        if (scep_base64_decode(q, qlen, out, sizeof(out), &n, &canon)
            != SCEP_OK
            || n != len || memcmp(out, in, len) != 0 || !canon)
        {
            len_ok = 0;
        }

        if (len % 37 == 0) {
            for (i = 0; i < qlen; i++) {
                c = q[i];
                q[i] = '*';

                if (scep_base64_decode(q, qlen, out, sizeof(out), &n, NULL)
                    != SCEP_BAD_BASE64)
                {
                    bad_ok = 0;
                }

                q[i] = c;
            }

            for (max = len - 3; max < len; max++) {
                if (scep_base64_decode(q, qlen, out, max, &n, NULL)
                    != SCEP_TOO_LARGE)
                {
                    limit_ok = 0;
                }
            }
        }
    }

    free(q);

    ok(len_ok, "long: canonical values of 1 to 600 bytes decode back");
    ok(bad_ok, "long: a bad character anywhere in them is bad_base64");
    ok(limit_ok, "long: an output limit short of them is too large");
}


static void
test_first_byte(void)
{
#define first(s)  scep_base64_first_byte((const unsigned char *) (s),        \
                                         strlen(s))

    ok(first("MIIB") == 0x30, "first byte: a SEQUENCE");
    ok(first("MIIBxyz") == 0x30, "first byte: the rest is not read");
    ok(first("MIIB%00") == 0x30, "first byte: nor a bad escape after it");
    ok(first("%0D%0AMI%0AIB") == 0x30, "first byte: line breaks are none");
    ok(first("M%49IB") == 0x30, "first byte: an escaped letter is one");
    ok(first("MQ%3D%3D") == 0x31, "first byte: a padded quad");
    ok(first("MQ") == -1, "first byte: fewer than four characters");
    ok(first("MI*B") == -1, "first byte: a bad character");
    ok(first("MII%2") == -1, "first byte: a cut escape");
    ok(first("MII%G0") == -1, "first byte: a bad escape");
    ok(first("MC0t") == 0x30 && first("_-__") == 0xff,
       "first byte: the URL-safe alphabet");

#undef first
}


int
main(void)
{
    test_dialects();
    test_canonical();
    test_rejects();
    test_sizes();
    test_long();
    test_ca_ident();
    test_query();
    test_first_byte();

    return tap_done();
}
