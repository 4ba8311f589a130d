/*
 * scep-msg - write SCEP pkiMessages (RFC 8894) for tests and benchmarks.
 *
 * The message is a CMS SignedData whose encapsulated "data" content is a
 * DER CMS EnvelopedData holding the request (PKCS#10 CSR, IssuerAndSubject
 * or IssuerAndSerialNumber) encrypted to the CA/RA certificate.  It is
 * signed with the requester key; the signer certificate is a self-signed
 * certificate for that key, as SCEP clients do before they are enrolled.
 *
 * It can produce the message in the query-string encodings seen in the
 * wild, and it can grow a message so that the complete query string
 * "operation=PKIOperation&message=..." has an exact length.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o build/scep-msg \
 *            t/tools/scep-msg.c -lcrypto
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define PROG "scep-msg"

#define QUERY_PREFIX     "operation=PKIOperation&message="
#define QUERY_PREFIX_LEN (sizeof(QUERY_PREFIX) - 1)

/* SCEP attribute OIDs (RFC 8894 section 3.2.1) */
#define OID_MESSAGE_TYPE   "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS     "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO      "2.16.840.1.113733.1.9.4"
#define OID_SENDER_NONCE   "2.16.840.1.113733.1.9.5"
#define OID_RECIP_NONCE    "2.16.840.1.113733.1.9.6"
#define OID_TRANSACTION_ID "2.16.840.1.113733.1.9.7"

#define NONCE_LEN 16

/*
 * The subjectKeyIdentifier of the self-signed signer certificate is the
 * byte-exact fine adjustment used by --query-size: its length may be
 * anything from SKI_MIN to SKI_MAX octets (20, the SHA-1 of the key, is the
 * default).  It lies outside the encrypted part, so it moves the message
 * size one byte at a time, unlike the CSR which is padded to cipher blocks.
 */
#define SKI_MIN     1
#define SKI_MAX     64
#define SKI_MID     32
#define SKI_DEFAULT 20

#define MAX_SANS        999999L
#define MAX_QUERY_SIZE  (64L * 1024 * 1024)
#define MAX_TRIES       4000
#define MAX_CSRS        60      /* a normal search needs about 3 */

/* fine-tuning SAN: "fill" + x... + ".example.test" */
#define TUNE_PREFIX "fill"
#define TUNE_SUFFIX ".example.test"
#define TUNE_MIN    17
#define TUNE_MAX    253

enum dialect { D_DER, D_STD, D_RAW, D_SPACE, D_URLSAFE, D_NOPAD, D_LINES };

static const char *const dialect_names[] = {
    "der", "std", "raw", "space", "urlsafe", "nopad", "lines", NULL
};

struct buf {
    unsigned char *p;
    size_t n;
};

struct cfg {
    const char *ca_file;
    long ca_index;              /* -1: last certificate in the file */
    long type;
    const char *challenge;
    const char *cn;
    long sans;
    const char *key_file;
    long key_bits;
    const char *tid;
    const char *nonce;          /* senderNonce as 32 hex digits, or NULL */
    const char *digest;
    const char *cipher;
    const char *serial;
    const char *status;         /* pkiStatus; default "0" for CertRep */
    const char *fail_info;
    enum dialect dialect;
    int dialect_set;
    int query;
    long query_size;            /* 0: off */
    const char *out;
    long san_len;
    long ber_chunk;             /* 0: DER */
    int keyid;                  /* recipient by subjectKeyIdentifier */
    const char *signer_cert;    /* certificate of --key, or NULL */
    const char *recipient_nonce;   /* CertRep recipientNonce, or NULL */
    const char *reply_to;       /* the request a CertRep answers */
    int verbose;
};

struct ctx {
    const struct cfg *c;
    EVP_PKEY *key;
    X509 *ca;                   /* recipient */
    X509_NAME *subject;         /* requester subject */
    const EVP_MD *md;
    const EVP_CIPHER *cipher;
    ASN1_OBJECT *o_type, *o_status, *o_fail, *o_snonce, *o_rnonce, *o_tid;
    char *tid;
    char type_str[24];
    X509 *signer[SKI_MAX + 1];  /* self-signed certificates by SKI length */
    X509 *signer_cert;          /* --signer-cert, or NULL */
    X509 *requester;            /* signer of --reply-to, or NULL */
    unsigned char rnonce[NONCE_LEN];    /* from --reply-to */
    int has_rnonce;
};

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " --ca CA.pem [options]\n"
"       " PROG " --type 3 --reply-to REQ.der --key RA.key\n"
"               --signer-cert RA.pem [--status S] [--fail-info N] [options]\n"
"\n"
"Write a SCEP pkiMessage (CMS SignedData over an EnvelopedData encrypted to\n"
"the CA/RA certificate) to stdout or --out.  With --type 3, a CertRep as a\n"
"back end answers: signed with --key (the RA key) and --signer-cert, its\n"
"envelope for --ca (or the requester of --reply-to); a FAILURE or PENDING\n"
"has no content, as RFC 8894 has it.\n"
"\n"
"  --ca FILE            recipient certificate(s), PEM (or DER); the last one\n"
"                       in the file is used unless --ca-index is given;\n"
"                       optional with --reply-to\n"
"  --ca-index K         use the K-th certificate of --ca (0 = first)\n"
"  --type N             messageType: 19 PKCSReq (default), 17 RenewalReq,\n"
"                       20 CertPoll, 21 GetCert, 22 GetCRL, 3 CertRep;\n"
"                       any other number gets a CSR as content\n"
"  --challenge S        challengePassword in the CSR (omitted by default)\n"
"  --cn NAME            subject CN (default: scep-msg)\n"
"  --sans N             N DNS subjectAltNames in the CSR (default 0)\n"
"  --seed-sans-len L    length of each generated SAN name, 12..253 (default 24,\n"
"                       e.g. host-000123.example.test)\n"
"  --key FILE           signer private key (PEM) instead of a new one: the\n"
"                       requester's, or the RA's for a CertRep\n"
"  --signer-cert FILE   certificate of --key (PEM or DER) named as the signer\n"
"                       and included, e.g. the RA certificate (default: a\n"
"                       self-signed certificate for --key)\n"
"  --key-bits N         RSA size of a generated key (default 2048)\n"
"  --tid STR            transactionID (default: hex SHA-256 of the public key)\n"
"  --nonce HEX          senderNonce, 32 hex digits (default: random)\n"
"  --digest ALG         sha1|sha256|sha512|md5 (default sha256)\n"
"  --cipher ALG         des3|aes128|aes256 (default aes256)\n"
"  --keyid              name the recipient by its subjectKeyIdentifier, not\n"
"                       by issuer and serial number\n"
"  --serial N           serial for GetCert/GetCRL (default 1; 0x.. for hex)\n"
"  --status S           add pkiStatus S (CertRep gets \"0\" by default):\n"
"                       0 SUCCESS, 2 FAILURE, 3 PENDING\n"
"  --fail-info S        add failInfo S: 0 badAlg, 1 badMessageCheck,\n"
"                       2 badRequest, 3 badTime, 4 badCertId (any string\n"
"                       goes, to test readers)\n"
"  --recipient-nonce HEX  CertRep recipientNonce, 32 hex digits (default:\n"
"                       the senderNonce of --reply-to, else random)\n"
"  --reply-to FILE      the DER pkiMessage a CertRep answers: its\n"
"                       transactionID and senderNonce become the CertRep's\n"
"                       transactionID and recipientNonce, its signer\n"
"                       certificate the envelope's recipient (unless --ca)\n"
"  --dialect D          der|std|raw|space|urlsafe|nopad|lines (default der,\n"
"                       or std with --query/--query-size)\n"
"                         der      raw DER bytes\n"
"                         std      base64, %%2B %%2F %%3D escaped\n"
"                         raw      base64, + and / raw, = as %%3D\n"
"                         space    as raw but + as %%20 (form-decoded '+')\n"
"                         urlsafe  base64url without padding\n"
"                         nopad    as std without trailing padding\n"
"                         lines    as std with %%0A between 64-char lines\n"
"  --query              print operation=PKIOperation&message=VALUE\n"
"  --query-size N       grow the CSR (DNS SANs) until the query string is\n"
"                       exactly N bytes; implies --query.  With --dialect der\n"
"                       the DER message itself is made exactly N bytes.\n"
"                       Exit status 2 when N cannot be reached.\n"
"  --ber CHUNK          streaming BER, as iOS and BouncyCastle write it:\n"
"                       indefinite lengths down to the signed content, and\n"
"                       that content as a constructed OCTET STRING of\n"
"                       CHUNK-byte pieces (signed attributes stay DER)\n"
"  --out FILE           write to FILE instead of stdout\n"
"  -v, --verbose        report sizes and tries on stderr\n"
"  -h, --help           this text\n"
"\n"
"Nothing but the message is written to stdout (no trailing newline).\n"
"Exit status: 0 success, 1 error, 2 usage error or unreachable size.\n");
}

static void die_ossl(const char *call)
{
    fprintf(stderr, PROG ": %s failed\n", call);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void die(int code, const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" PROG " --help'.\n", stderr);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        die(1, "out of memory");
    return p;
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        die_usage("%s: expected a number from %ld to %ld, got '%s'",
                  opt, min, max, s);
    return v;
}

static long round_half_away(double v)
{
    return v < 0 ? -(long) (-v + 0.5) : (long) (v + 0.5);
}

static double sqrt_approx(double v)
{
    double r = v > 1 ? v : 1;
    int i;

    if (v <= 0)
        return 0;
    for (i = 0; i < 60; i++)
        r = 0.5 * (r + v / r);
    return r;
}

static void buf_free(struct buf *b)
{
    OPENSSL_free(b->p);
    b->p = NULL;
    b->n = 0;
}

/* ------------------------------------------------------------------ */
/* DER helpers                                                          */

static size_t der_header(unsigned char *out, int tag, size_t len)
{
    size_t i = 0, k, t;

    out[i++] = (unsigned char) tag;
    if (len < 0x80) {
        out[i++] = (unsigned char) len;
        return i;
    }
    for (k = 0, t = len; t; t >>= 8)
        k++;
    out[i++] = (unsigned char) (0x80 | k);
    while (k--)
        out[i++] = (unsigned char) (len >> (8 * k));
    return i;
}

/* SEQUENCE { a, b } of two DER encodings */
static struct buf der_seq2(const unsigned char *a, size_t an,
                           const unsigned char *b, size_t bn)
{
    struct buf r;
    unsigned char hdr[16];
    size_t hn = der_header(hdr, 0x30, an + bn);

    r.n = hn + an + bn;
    r.p = OPENSSL_malloc(r.n);
    if (r.p == NULL)
        die(1, "out of memory");
    memcpy(r.p, hdr, hn);
    memcpy(r.p + hn, a, an);
    memcpy(r.p + hn + an, b, bn);
    return r;
}

/* the element at p: *val its contents, *len their length; its end */
static const unsigned char *der_read(const unsigned char *p,
                                     const unsigned char *end,
                                     const unsigned char **val, size_t *len)
{
    size_t k, l = 0;

    if (end - p < 2)
        die(1, "--ber: short DER");
    if (p[1] < 0x80) {
        l = p[1];
        p += 2;
    } else {
        k = p[1] & 0x7f;
        p += 2;
        if (k == 0 || k > sizeof(size_t) || (size_t) (end - p) < k)
            die(1, "--ber: bad DER length");
        while (k--)
            l = l << 8 | *p++;
    }
    if ((size_t) (end - p) < l)
        die(1, "--ber: DER length past the end");
    *val = p;
    *len = l;
    return p + l;
}

static unsigned char *put(unsigned char *o, const void *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/*
 * The DER pkiMessage m in streaming BER: ContentInfo, its [0], the
 * SignedData, its encapContentInfo and [0] with indefinite lengths, the
 * content as a constructed OCTET STRING of pieces of "chunk" bytes; the
 * certificates and SignerInfos stay as they are.
 */
static struct buf stream_ber(const struct buf *m, size_t chunk)
{
    static const unsigned char eoc[2] = { 0, 0 };
    static const unsigned char indef_seq[2] = { 0x30, 0x80 };
    static const unsigned char indef_ctx0[2] = { 0xa0, 0x80 };
    static const unsigned char indef_os[2] = { 0x24, 0x80 };
    const unsigned char *end = m->p + m->n, *ci, *w, *sd, *eci, *q, *v,
                        *oid, *p;
    size_t n, ci_n, w_n, sd_n, eci_n, piece;
    unsigned char hdr[16], *o;
    struct buf r;

    r.n = m->n + 6 * (m->n / chunk + 1) + 64;
    r.p = OPENSSL_malloc(r.n);
    if (r.p == NULL)
        die(1, "out of memory");
    o = r.p;

    der_read(m->p, end, &ci, &ci_n);
    o = put(o, indef_seq, 2);
    q = der_read(ci, ci + ci_n, &v, &n);            /* contentType */
    o = put(o, ci, q - ci);
    der_read(q, ci + ci_n, &w, &w_n);               /* [0] */
    o = put(o, indef_ctx0, 2);
    der_read(w, w + w_n, &sd, &sd_n);               /* SignedData */
    o = put(o, indef_seq, 2);
    q = der_read(sd, sd + sd_n, &v, &n);            /* version */
    q = der_read(q, sd + sd_n, &v, &n);             /* digestAlgorithms */
    o = put(o, sd, q - sd);
    p = der_read(q, sd + sd_n, &eci, &eci_n);       /* encapContentInfo */
    o = put(o, indef_seq, 2);
    oid = eci;
    q = der_read(eci, eci + eci_n, &v, &n);         /* eContentType */
    o = put(o, oid, q - oid);
    der_read(q, eci + eci_n, &w, &w_n);             /* [0] */
    der_read(w, w + w_n, &v, &n);                   /* OCTET STRING */
    o = put(o, indef_ctx0, 2);
    o = put(o, indef_os, 2);
    while (n) {
        piece = n < chunk ? n : chunk;
        o = put(o, hdr, der_header(hdr, 0x04, piece));
        o = put(o, v, piece);
        v += piece;
        n -= piece;
    }
    o = put(o, eoc, 2);                             /* OCTET STRING */
    o = put(o, eoc, 2);                             /* [0] */
    o = put(o, eoc, 2);                             /* encapContentInfo */
    o = put(o, p, sd + sd_n - p);                   /* certs, signers */
    o = put(o, eoc, 2);                             /* SignedData */
    o = put(o, eoc, 2);                             /* [0] */
    o = put(o, eoc, 2);                             /* ContentInfo */
    r.n = o - r.p;
    return r;
}

/* ------------------------------------------------------------------ */
/* names                                                                */

/*
 * Write a DNS name of exactly len characters: prefix, filler 'x's and
 * suffix, with labels of at most 63 characters.  The caller makes sure
 * len >= strlen(prefix) + strlen(suffix) and that the prefix is shorter
 * than 63 characters.
 */
static size_t make_dns_name(char *out, const char *prefix,
                            const char *suffix, size_t len)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    size_t need = len - pl - sl, k, r, o;

    memcpy(out, prefix, pl);
    o = pl;
    k = 63 - pl;
    if (k > need)
        k = need;
    r = need - k;
    if (r == 1) {               /* a lone '.' would make an empty label */
        k--;
        r = 2;
    }
    memset(out + o, 'x', k);
    o += k;
    while (r > 0) {
        size_t t = r - 1 > 63 ? 63 : r - 1;

        if (r - 1 - t == 1)
            t--;
        out[o++] = '.';
        memset(out + o, 'x', t);
        o += t;
        r -= t + 1;
    }
    memcpy(out + o, suffix, sl);
    o += sl;
    out[o] = '\0';
    return o;
}

/* the i-th generated SAN, exactly len characters (12..253) */
static size_t make_san(char *out, long i, long len)
{
    char prefix[32];

    if (len >= 24) {
        snprintf(prefix, sizeof(prefix), "host-%06ld", i);
        return make_dns_name(out, prefix, ".example.test", (size_t) len);
    }
    snprintf(prefix, sizeof(prefix), "h%06ld", i);
    return make_dns_name(out, prefix, ".test", (size_t) len);
}

/* DER size of a dNSName GeneralName of n characters */
static long gn_size(long n)
{
    return n + (n < 128 ? 2 : 3);
}

static void push_dns(GENERAL_NAMES *gens, const char *s, size_t n)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

    if (gn == NULL || ia5 == NULL)
        die_ossl("GENERAL_NAME_new");
    if (!ASN1_STRING_set(ia5, s, (int) n))
        die_ossl("ASN1_STRING_set");
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (!sk_GENERAL_NAME_push(gens, gn))
        die_ossl("sk_GENERAL_NAME_push");
}

/* ------------------------------------------------------------------ */
/* keys, certificates and requests                                      */

static X509 *load_ca(const char *file, long index)
{
    BIO *in = BIO_new_file(file, "rb");
    STACK_OF(X509) *all = sk_X509_new_null();
    X509 *x, *pick;
    int n;

    if (in == NULL) {
        fprintf(stderr, PROG ": cannot open %s\n", file);
        die_ossl("BIO_new_file");
    }
    if (all == NULL)
        die_ossl("sk_X509_new_null");
    while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(all, x))
            die_ossl("sk_X509_push");
    if (sk_X509_num(all) == 0) {
        /* not PEM: try a single DER certificate */
        (void) BIO_reset(in);
        x = d2i_X509_bio(in, NULL);
        if (x == NULL) {
            fprintf(stderr, PROG ": no certificate in %s\n", file);
            die_ossl("PEM_read_bio_X509");
        }
        if (!sk_X509_push(all, x))
            die_ossl("sk_X509_push");
    }
    ERR_clear_error();
    BIO_free(in);

    n = sk_X509_num(all);
    if (index >= n)
        die_usage("--ca-index %ld: %s holds %d certificate(s)",
                  index, file, n);
    pick = sk_X509_value(all, index < 0 ? n - 1 : (int) index);
    if (!X509_up_ref(pick))
        die_ossl("X509_up_ref");
    sk_X509_pop_free(all, X509_free);
    return pick;
}

static EVP_PKEY *load_key(const char *file, long bits)
{
    EVP_PKEY *k;

    if (file != NULL) {
        BIO *in = BIO_new_file(file, "rb");

        if (in == NULL) {
            fprintf(stderr, PROG ": cannot open %s\n", file);
            die_ossl("BIO_new_file");
        }
        k = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
        if (k == NULL) {
            fprintf(stderr, PROG ": cannot read a private key from %s\n",
                    file);
            die_ossl("PEM_read_bio_PrivateKey");
        }
        BIO_free(in);
        return k;
    }
    k = EVP_RSA_gen((unsigned int) bits);
    if (k == NULL)
        die_ossl("EVP_RSA_gen");
    return k;
}

static X509_NAME *make_subject(const char *cn)
{
    X509_NAME *n = X509_NAME_new();

    if (n == NULL)
        die_ossl("X509_NAME_new");
    /* explicit UTF8String: no length limits, so odd inputs can be made */
    if (!X509_NAME_add_entry_by_NID(n, NID_commonName, V_ASN1_UTF8STRING,
                                    (const unsigned char *) cn,
                                    (int) strlen(cn), -1, 0))
        die_ossl("X509_NAME_add_entry_by_NID");
    return n;
}

static char *hex(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    char *s = xmalloc(2 * n + 1);
    size_t i;

    for (i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

static char *default_tid(EVP_PKEY *key)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = i2d_PUBKEY(key, &der);
    char *s;

    if (n <= 0)
        die_ossl("i2d_PUBKEY");
    if (!EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL))
        die_ossl("EVP_Digest");
    OPENSSL_free(der);
    s = hex(md, mdlen);
    return s;
}

/*
 * Self-signed signer certificate for the requester key: random 16-byte
 * serial, valid from now-1h to now+1y, keyUsage and a subjectKeyIdentifier
 * of ski_len octets.
 */
static X509 *make_signer(struct ctx *x, int ski_len)
{
    X509 *c = X509_new();
    unsigned char sn[16], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const ASN1_BIT_STRING *pk;
    ASN1_OCTET_STRING *ski;
    X509_EXTENSION *ext;
    BIGNUM *bn;

    if (c == NULL)
        die_ossl("X509_new");
    if (!X509_set_version(c, 2))
        die_ossl("X509_set_version");

    if (RAND_bytes(sn, sizeof(sn)) != 1)
        die_ossl("RAND_bytes");
    sn[0] &= 0x7f;              /* positive, exactly 16 octets */
    if (sn[0] == 0)
        sn[0] = 1;
    bn = BN_bin2bn(sn, sizeof(sn), NULL);
    if (bn == NULL)
        die_ossl("BN_bin2bn");
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) == NULL)
        die_ossl("BN_to_ASN1_INTEGER");
    BN_free(bn);

    if (!X509_set_subject_name(c, x->subject)
        || !X509_set_issuer_name(c, x->subject))
        die_ossl("X509_set_subject_name");
    if (X509_gmtime_adj(X509_getm_notBefore(c), -3600L) == NULL
        || X509_gmtime_adj(X509_getm_notAfter(c), 365L * 24 * 3600) == NULL)
        die_ossl("X509_gmtime_adj");
    if (!X509_set_pubkey(c, x->key))
        die_ossl("X509_set_pubkey");

    ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_key_usage,
                               "critical,digitalSignature,keyEncipherment");
    if (ext == NULL)
        die_ossl("X509V3_EXT_nconf_nid");
    if (!X509_add_ext(c, ext, -1))
        die_ossl("X509_add_ext");
    X509_EXTENSION_free(ext);

    /* RFC 5280 method 1 for the usual 20 octets, else SHA-512 prefix */
    pk = X509_get0_pubkey_bitstr(c);
    if (pk == NULL)
        die_ossl("X509_get0_pubkey_bitstr");
    if (!EVP_Digest(ASN1_STRING_get0_data(pk), (size_t) ASN1_STRING_length(pk),
                    md, &mdlen,
                    ski_len == SKI_DEFAULT ? EVP_sha1() : EVP_sha512(), NULL))
        die_ossl("EVP_Digest");
    ski = ASN1_OCTET_STRING_new();
    if (ski == NULL || !ASN1_OCTET_STRING_set(ski, md, ski_len))
        die_ossl("ASN1_OCTET_STRING_set");
    if (!X509_add1_ext_i2d(c, NID_subject_key_identifier, ski, 0,
                           X509V3_ADD_DEFAULT))
        die_ossl("X509_add1_ext_i2d");
    ASN1_OCTET_STRING_free(ski);

    if (!X509_sign(c, x->key, EVP_sha256()))
        die_ossl("X509_sign");
    return c;
}

static X509 *signer(struct ctx *x, int ski_len)
{
    if (x->signer[ski_len] == NULL)
        x->signer[ski_len] = make_signer(x, ski_len);
    return x->signer[ski_len];
}

/* PKCS#10 request with nsans generated SANs plus a tune_len fill SAN */
static struct buf make_csr(struct ctx *x, long nsans, long tune_len)
{
    const struct cfg *c = x->c;
    X509_REQ *req = X509_REQ_new();
    struct buf r = { NULL, 0 };
    int n;

    if (req == NULL)
        die_ossl("X509_REQ_new");
    if (!X509_REQ_set_version(req, 0L))
        die_ossl("X509_REQ_set_version");
    if (!X509_REQ_set_subject_name(req, x->subject))
        die_ossl("X509_REQ_set_subject_name");
    if (!X509_REQ_set_pubkey(req, x->key))
        die_ossl("X509_REQ_set_pubkey");

    if (c->challenge != NULL
        && !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
                                      V_ASN1_UTF8STRING,
                                      (const unsigned char *) c->challenge,
                                      (int) strlen(c->challenge)))
        die_ossl("X509_REQ_add1_attr_by_NID");

    if (nsans > 0 || tune_len > 0) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext;
        char name[300];
        long i;

        if (gens == NULL || exts == NULL)
            die_ossl("sk_GENERAL_NAME_new_null");
        if (!sk_GENERAL_NAME_reserve(gens, (int) nsans + 1))
            die_ossl("sk_GENERAL_NAME_reserve");
        for (i = 1; i <= nsans; i++)
            push_dns(gens, name, make_san(name, i, c->san_len));
        if (tune_len > 0)
            push_dns(gens, name, make_dns_name(name, TUNE_PREFIX, TUNE_SUFFIX,
                                               (size_t) tune_len));
        ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
        if (ext == NULL)
            die_ossl("X509V3_EXT_i2d");
        if (!sk_X509_EXTENSION_push(exts, ext))
            die_ossl("sk_X509_EXTENSION_push");
        if (!X509_REQ_add_extensions(req, exts))
            die_ossl("X509_REQ_add_extensions");
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        GENERAL_NAMES_free(gens);
    }

    if (!X509_REQ_sign(req, x->key, EVP_sha256()))
        die_ossl("X509_REQ_sign");
    n = i2d_X509_REQ(req, &r.p);
    if (n <= 0)
        die_ossl("i2d_X509_REQ");
    r.n = (size_t) n;
    X509_REQ_free(req);
    return r;
}

/* issuer of the recipient: the CA itself, or the CA above an RA */
static struct buf der_ca_issuer(struct ctx *x)
{
    struct buf r = { NULL, 0 };
    int n = i2d_X509_NAME(X509_get_issuer_name(x->ca), &r.p);

    if (n <= 0)
        die_ossl("i2d_X509_NAME");
    r.n = (size_t) n;
    return r;
}

static struct buf make_issuer_and_subject(struct ctx *x)
{
    struct buf is = der_ca_issuer(x), sj = { NULL, 0 }, r;
    int n = i2d_X509_NAME(x->subject, &sj.p);

    if (n <= 0)
        die_ossl("i2d_X509_NAME");
    sj.n = (size_t) n;
    r = der_seq2(is.p, is.n, sj.p, sj.n);
    buf_free(&is);
    buf_free(&sj);
    return r;
}

static struct buf make_issuer_and_serial(struct ctx *x)
{
    struct buf is = der_ca_issuer(x), sn = { NULL, 0 }, r;
    const char *s = x->c->serial ? x->c->serial : "1";
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai;
    int ok, n;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        ok = BN_hex2bn(&bn, s + 2) == (int) strlen(s + 2);
    else
        ok = BN_dec2bn(&bn, s) == (int) strlen(s);
    if (!ok || bn == NULL)
        die_usage("--serial: not a number: '%s'", s);
    ai = BN_to_ASN1_INTEGER(bn, NULL);
    if (ai == NULL)
        die_ossl("BN_to_ASN1_INTEGER");
    n = i2d_ASN1_INTEGER(ai, &sn.p);
    if (n <= 0)
        die_ossl("i2d_ASN1_INTEGER");
    sn.n = (size_t) n;
    r = der_seq2(is.p, is.n, sn.p, sn.n);
    buf_free(&is);
    buf_free(&sn);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return r;
}

/* degenerate certificates-only SignedData, the payload of a CertRep */
static struct buf make_certs_only(X509 *cert)
{
    PKCS7 *p7 = PKCS7_new();
    struct buf r = { NULL, 0 };
    int n;

    if (p7 == NULL)
        die_ossl("PKCS7_new");
    if (!PKCS7_set_type(p7, NID_pkcs7_signed))
        die_ossl("PKCS7_set_type");
    p7->d.sign->contents->type = OBJ_nid2obj(NID_pkcs7_data);
    if (!PKCS7_add_certificate(p7, cert))
        die_ossl("PKCS7_add_certificate");
    n = i2d_PKCS7(p7, &r.p);
    if (n <= 0)
        die_ossl("i2d_PKCS7");
    r.n = (size_t) n;
    PKCS7_free(p7);
    return r;
}

static int type_has_csr(long t)
{
    return t != 3 && t != 20 && t != 21 && t != 22;
}

static struct buf make_inner(struct ctx *x, long nsans, long tune_len)
{
    switch (x->c->type) {
    case 20:
        return make_issuer_and_subject(x);
    case 21:
    case 22:
        return make_issuer_and_serial(x);
    case 3:
        /* the certificate "issued": the requester's if known */
        return make_certs_only(x->requester ? x->requester
                                            : signer(x, SKI_DEFAULT));
    default:
        return make_csr(x, nsans, tune_len);
    }
}

/* ------------------------------------------------------------------ */
/* CMS                                                                  */

static struct buf make_envelope(struct ctx *x, const struct buf *inner)
{
    STACK_OF(X509) *rcpt = sk_X509_new_null();
    BIO *in = BIO_new_mem_buf(inner->p, (int) inner->n);
    CMS_ContentInfo *cms;
    struct buf r = { NULL, 0 };
    int n;

    if (rcpt == NULL || !sk_X509_push(rcpt, x->ca))
        die_ossl("sk_X509_push");
    if (in == NULL)
        die_ossl("BIO_new_mem_buf");
    cms = CMS_encrypt(rcpt, in, x->cipher,
                      CMS_BINARY | (x->c->keyid ? CMS_USE_KEYID : 0));
    if (cms == NULL)
        die_ossl("CMS_encrypt");
    n = i2d_CMS_ContentInfo(cms, &r.p);
    if (n <= 0)
        die_ossl("i2d_CMS_ContentInfo");
    r.n = (size_t) n;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    sk_X509_free(rcpt);
    return r;
}

static void add_attr(CMS_SignerInfo *si, const ASN1_OBJECT *o, int type,
                     const void *data, size_t len)
{
    if (!CMS_signed_add1_attr_by_OBJ(si, o, type, data, (int) len))
        die_ossl("CMS_signed_add1_attr_by_OBJ");
}

/* NONCE_LEN bytes from 2 * NONCE_LEN hex digits ("opt" for errors) */
static void parse_nonce(const char *opt, const char *hex,
                        unsigned char *nonce)
{
    unsigned int byte;
    size_t i;

    if (strlen(hex) != 2 * NONCE_LEN)
        die_usage("%s: give %d hex digits", opt, 2 * NONCE_LEN);
    for (i = 0; i < NONCE_LEN; i++) {
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            die_usage("%s: give %d hex digits", opt, 2 * NONCE_LEN);
        nonce[i] = (unsigned char) byte;
    }
}

/* a random nonce, or the one of "hex" (NONCE_LEN bytes in hex) */
static void add_nonce(CMS_SignerInfo *si, const ASN1_OBJECT *o,
                      const char *opt, const char *hex)
{
    unsigned char nonce[NONCE_LEN];

    if (hex != NULL)
        parse_nonce(opt, hex, nonce);
    else if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        die_ossl("RAND_bytes");
    add_attr(si, o, V_ASN1_OCTET_STRING, nonce, sizeof(nonce));
}

/* a CertRep's recipientNonce: given, taken from --reply-to, or random */
static void add_recipient_nonce(struct ctx *x, CMS_SignerInfo *si)
{
    if (x->c->recipient_nonce == NULL && x->has_rnonce)
        add_attr(si, x->o_rnonce, V_ASN1_OCTET_STRING, x->rnonce, NONCE_LEN);
    else
        add_nonce(si, x->o_rnonce, "--recipient-nonce",
                  x->c->recipient_nonce);
}

/* a FAILURE or PENDING CertRep carries no content */
static int certrep_without_content(const struct ctx *x)
{
    return x->c->type == 3 && x->c->status != NULL
           && strcmp(x->c->status, "0") != 0;
}

/* the pkiMessage: SignedData over the envelope, fresh nonce(s) */
static struct buf make_message(struct ctx *x, const struct buf *env,
                               X509 *cert)
{
    const struct cfg *c = x->c;
    BIO *in = BIO_new_mem_buf(env->p, (int) env->n);
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si;
    struct buf r = { NULL, 0 };
    const char *status = c->status;
    unsigned int flags = CMS_PARTIAL | CMS_BINARY;
    int n;

    if (in == NULL)
        die_ossl("BIO_new_mem_buf");
    /* detached over nothing: no eContent, as RFC 8894 says */
    if (certrep_without_content(x)) {
        BIO_free(in);
        in = BIO_new_mem_buf("", 0);
        if (in == NULL)
            die_ossl("BIO_new_mem_buf");
        flags |= CMS_DETACHED;
    }
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (cms == NULL)
        die_ossl("CMS_sign");
    if (x->signer_cert != NULL)
        cert = x->signer_cert;
    si = CMS_add1_signer(cms, cert, x->key, x->md, CMS_NOSMIMECAP);
    if (si == NULL)
        die_ossl("CMS_add1_signer");

    add_attr(si, x->o_type, V_ASN1_PRINTABLESTRING,
             x->type_str, strlen(x->type_str));
    add_attr(si, x->o_tid, V_ASN1_PRINTABLESTRING, x->tid, strlen(x->tid));
    add_nonce(si, x->o_snonce, "--nonce", c->nonce);
    if (c->type == 3) {
        if (status == NULL)
            status = "0";
        add_recipient_nonce(x, si);
    }
    if (status != NULL)
        add_attr(si, x->o_status, V_ASN1_PRINTABLESTRING,
                 status, strlen(status));
    if (c->fail_info != NULL)
        add_attr(si, x->o_fail, V_ASN1_PRINTABLESTRING,
                 c->fail_info, strlen(c->fail_info));

    if (!CMS_final(cms, in, NULL, flags & ~CMS_PARTIAL))
        die_ossl("CMS_final");
    n = i2d_CMS_ContentInfo(cms, &r.p);
    if (n <= 0)
        die_ossl("i2d_CMS_ContentInfo");
    r.n = (size_t) n;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return r;
}

/* ------------------------------------------------------------------ */
/* the request a CertRep answers                                        */

static ASN1_STRING *signed_attr(CMS_SignerInfo *si, const ASN1_OBJECT *o,
                                int type, const char *what)
{
    ASN1_STRING *v = CMS_signed_get0_data_by_OBJ(si, o, -3, type);

    if (v == NULL)
        die(1, "--reply-to: the request has no %s", what);
    return v;
}

/*
 * Takes from the request in "file" (DER) what a CertRep repeats: its
 * transactionID, its senderNonce as the recipientNonce, and its signer
 * certificate, the recipient of the CertRep's envelope.
 */
static void read_reply_to(struct ctx *x, const char *file)
{
    BIO *in = BIO_new_file(file, "rb");
    CMS_ContentInfo *cms;
    CMS_SignerInfo *si;
    STACK_OF(X509) *certs;
    ASN1_STRING *v;
    int i;

    if (in == NULL) {
        fprintf(stderr, PROG ": cannot open %s\n", file);
        die_ossl("BIO_new_file");
    }
    cms = d2i_CMS_bio(in, NULL);
    BIO_free(in);
    if (cms == NULL) {
        fprintf(stderr, PROG ": %s is not a DER pkiMessage\n", file);
        die_ossl("d2i_CMS_bio");
    }
    if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1)
        die(1, "--reply-to: the request has no single signer");
    si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);

    v = signed_attr(si, x->o_tid, V_ASN1_PRINTABLESTRING, "transactionID");
    if (x->c->tid == NULL) {
        x->tid = xmalloc((size_t) ASN1_STRING_length(v) + 1);
        memcpy(x->tid, ASN1_STRING_get0_data(v), ASN1_STRING_length(v));
        x->tid[ASN1_STRING_length(v)] = '\0';
    }

    v = signed_attr(si, x->o_snonce, V_ASN1_OCTET_STRING, "senderNonce");
    if (ASN1_STRING_length(v) != NONCE_LEN)
        die(1, "--reply-to: the request's senderNonce is not %d bytes",
            NONCE_LEN);
    memcpy(x->rnonce, ASN1_STRING_get0_data(v), NONCE_LEN);
    x->has_rnonce = 1;

    certs = CMS_get1_certs(cms);
    for (i = 0; certs != NULL && i < sk_X509_num(certs); i++) {
        if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(certs, i)) == 0) {
            x->requester = sk_X509_value(certs, i);
            if (!X509_up_ref(x->requester))
                die_ossl("X509_up_ref");
            break;
        }
    }
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
}

/* ------------------------------------------------------------------ */
/* encodings                                                            */

/* the message value (with the query prefix if asked); *olen set */
static char *encode(enum dialect d, int query, const struct buf *der,
                    size_t *olen)
{
    size_t blen, cap, i, j = 0;
    unsigned char *b;
    char *o;

    if (d == D_DER) {
        o = xmalloc(der->n);
        memcpy(o, der->p, der->n);
        *olen = der->n;
        return o;
    }
    if (der->n > (size_t) INT_MAX / 2)
        die(1, "message too large to encode");

    blen = 4 * ((der->n + 2) / 3);
    b = xmalloc(blen + 1);
    if (EVP_EncodeBlock(b, der->p, (int) der->n) != (int) blen)
        die_ossl("EVP_EncodeBlock");

    cap = QUERY_PREFIX_LEN + 3 * blen + 3 * (blen / 64 + 1) + 1;
    o = xmalloc(cap);
    if (query) {
        memcpy(o, QUERY_PREFIX, QUERY_PREFIX_LEN);
        j = QUERY_PREFIX_LEN;
    }

#define PUT3(s) (memcpy(o + j, (s), 3), j += 3)
    for (i = 0; i < blen; i++) {
        unsigned char ch = b[i];

        if (d == D_LINES && i > 0 && i % 64 == 0)
            PUT3("%0A");
        switch (ch) {
        case '+':
            if (d == D_RAW)
                o[j++] = '+';
            else if (d == D_SPACE)
                PUT3("%20");
            else if (d == D_URLSAFE)
                o[j++] = '-';
            else
                PUT3("%2B");
            break;
        case '/':
            if (d == D_RAW || d == D_SPACE)
                o[j++] = '/';
            else if (d == D_URLSAFE)
                o[j++] = '_';
            else
                PUT3("%2F");
            break;
        case '=':
            if (d != D_URLSAFE && d != D_NOPAD)
                PUT3("%3D");
            break;
        default:
            o[j++] = (char) ch;
        }
    }
#undef PUT3
    o[j] = '\0';
    free(b);
    *olen = j;
    return o;
}

/* exit 2 if no message of this dialect can have length n */
static void check_reachable(enum dialect d, long n)
{
    long k = (long) QUERY_PREFIX_LEN;

    switch (d) {
    case D_STD:
    case D_RAW:
    case D_SPACE:
        if (n % 2 == 0)
            die(2, "--query-size %ld cannot be reached with --dialect %s: "
                "its query strings always have an odd length "
                "(%ld + 4k + 2m, m = escaped characters)",
                n, dialect_names[d], k);
        break;
    case D_URLSAFE:
        if ((n - k) % 4 == 1)
            die(2, "--query-size %ld cannot be reached with --dialect "
                "urlsafe: unpadded base64 is never 1 more than a multiple "
                "of 4 characters (length - %ld = %ld)", n, k, n - k);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ */
/* search for an exact size                                             */

/*
 * The length of a text dialect is an exact function of the DER size n and
 * of m, the number of base64 characters that the dialect escapes ('+' and
 * '/' for std, nopad and lines; '+' for space; none otherwise).  For one
 * envelope, only the signatures, nonce and SKI change between tries, so m
 * moves a little around a mean that depends on the ciphertext; a fresh
 * encryption of the same request draws a new mean.  The search moves the
 * CSR size (coarse, whole cipher blocks), then picks the SKI length whose
 * needed m is the most likely, and re-encrypts when none is likely.
 */

struct plan {
    long sans;
    long tune;
};

struct dmodel {
    int c;          /* characters added per escaped char (0 or 2) */
    double p;       /* chance a base64 character is escaped */
    double r;       /* mean output characters per DER byte */
};

static struct dmodel dialect_model(enum dialect d)
{
    struct dmodel m = { 0, 0.0, 4.0 / 3 };

    switch (d) {
    case D_DER:
        m.r = 1.0;
        break;
    case D_STD:
    case D_NOPAD:
        m.c = 2;
        m.p = 2.0 / 64;
        break;
    case D_LINES:
        m.c = 2;
        m.p = 2.0 / 64;
        m.r += 4.0 / 3 * 3 / 64;
        break;
    case D_SPACE:
        m.c = 2;
        m.p = 1.0 / 64;
        break;
    default:
        break;
    }
    m.r *= 1 + m.c * m.p;
    return m;
}

/* exact output length for n DER bytes with m escaped characters */
static long out_len(enum dialect d, long n, long m)
{
    long b = 4 * ((n + 2) / 3), pad = (3 - n % 3) % 3;
    long q = (long) QUERY_PREFIX_LEN;

    switch (d) {
    case D_DER:     return n;
    case D_STD:     return q + b + 2 * pad + 2 * m;
    case D_RAW:     return q + b + 2 * pad;
    case D_SPACE:   return q + b + 2 * pad + 2 * m;
    case D_URLSAFE: return q + b - pad;
    case D_NOPAD:   return q + b - pad + 2 * m;
    case D_LINES:   return q + b + 2 * pad + 2 * m + 3 * ((b - 1) / 64);
    }
    return -1;
}

/* CSR growth of p bytes over the base SAN count: generated SANs + fill */
static struct plan split_payload(const struct cfg *c, long p)
{
    struct plan pl;
    long step = gn_size(c->san_len), rem;

    pl.sans = c->sans;
    pl.tune = 0;
    if (p < gn_size(TUNE_MIN))
        return pl;
    pl.sans += (p - gn_size(TUNE_MIN)) / step;
    rem = p - ((p - gn_size(TUNE_MIN)) / step) * step;
    pl.tune = rem - 2 < 128 ? rem - 2 : rem - 3;
    if (pl.tune < TUNE_MIN)
        pl.tune = TUNE_MIN;
    if (pl.tune > TUNE_MAX)
        pl.tune = TUNE_MAX;
    return pl;
}

static struct buf build_inner(struct ctx *x, struct plan pl)
{
    if (pl.sans > MAX_SANS)
        die(2, "--query-size %ld needs more than %ld SANs; too large",
            x->c->query_size, MAX_SANS);
    return make_inner(x, pl.sans, pl.tune);
}

static unsigned rnd_u(void)
{
    unsigned v = 0;

    if (RAND_bytes((unsigned char *) &v, sizeof(v)) != 1)
        die_ossl("RAND_bytes");
    return v;
}

static char *sized_message(struct ctx *x, size_t *olen)
{
    const struct cfg *c = x->c;
    enum dialect d = c->dialect;
    struct dmodel dm = dialect_model(d);
    int query = d != D_DER;
    long target = c->query_size;
    long p = 0, len = 0, n_ref, envs = 1, encs = 1, on_env = 0;
    long sig = EVP_PKEY_get_size(x->key);
    double m_sum = 0, sd_small, sd_env;
    int k = SKI_DEFAULT, k_ref, tries, bottom_tries = 0;
    struct plan pl = split_payload(c, 0);
    struct buf inner = build_inner(x, pl), env = make_envelope(x, &inner);
    struct buf msg = { NULL, 0 };
    char *out = NULL;

    /* spread of m between tries on one envelope: signatures, nonce, SKI */
    sd_small = sqrt_approx(4.0 / 3 * (2 * sig + 40) * dm.p * (1 - dm.p));

    for (tries = 1;; tries++) {
        long m_obs = 0, best_k = -1, kc;
        double q = 4.0 / 3 * dm.p, best_z = 1e18, m_hat = 0;
        int i, move = 0, reroll = 0;

        msg = make_message(x, &env, signer(x, k));
        out = encode(d, query, &msg, olen);
        len = (long) *olen;
        if (c->verbose > 1)
            fprintf(stderr, PROG ": try %d: sans %ld fill %ld ski %d "
                    "der %zu -> %ld\n", tries, pl.sans, pl.tune, k, msg.n,
                    len);
        if (len == target)
            break;
        if (tries >= MAX_TRIES || envs > MAX_CSRS)
            die(2, "could not reach --query-size %ld (%d tries, %ld CSR "
                "sizes, last %ld bytes); where a DER length field gains a "
                "byte (e.g. at 64 KiB) some sizes do not exist, try %ld or "
                "%ld", target, tries, envs, len, target - 2, target + 2);

        n_ref = (long) msg.n;
        k_ref = k;
        on_env++;
        if (dm.c) {
            m_obs = (len - out_len(d, n_ref, 0)) / dm.c;
            m_sum += (double) m_obs - q * k;
            m_hat = m_sum / (double) on_env;
        }
        sd_env = sqrt_approx(4.0 / 3 * (double) n_ref * dm.p * (1 - dm.p));

        /*
         * SKI length that fits for an average encryption of this CSR; when
         * it is outside the usable range the CSR size has to move, else
         * an unlucky encryption is only redrawn (cheaper: no CSR signing)
         */
        kc = k_ref + round_half_away(
            (double) (target - out_len(d, n_ref, round_half_away(
                q * (double) n_ref))) / dm.r);

        /* the most likely SKI length on this envelope */
        for (i = SKI_MIN; i <= SKI_MAX; i++) {
            long n = n_ref + (i - k_ref), need = target - out_len(d, n, 0);
            double z;

            if (dm.c == 0) {
                if (need != 0)
                    continue;
                z = (double) (i > k_ref ? i - k_ref : k_ref - i);
            } else {
                if (need < 0 || need % dm.c)
                    continue;
                z = (double) need / dm.c - (m_hat + q * i);
                if (z < 0)
                    z = -z;
            }
            z += (double) (rnd_u() % 1000) / 1e6;       /* random ties */
            if (z < best_z) {
                best_z = z;
                best_k = i;
            }
        }

        if (kc < SKI_MIN + 6 || kc > SKI_MAX - 6)
            move = 1;
        if (dm.c == 0) {
            /* exact dialects: repeated misses mean a length field jumped */
            move = best_k < 0 || on_env > 8;
        } else if (best_k < 0 || best_z > 2 * sd_small || on_env > 40) {
            reroll = 1;
        }

        if (move && p == 0 && kc < SKI_MID) {
            /* the CSR cannot shrink: stay at the bottom */
            long lo = out_len(d, n_ref + (SKI_MIN - k_ref), 0);
            double mean = dm.c ? m_hat + q * SKI_MIN : 0;

            if (target < lo || (dm.c == 0 && best_k < 0)
                || target < lo + dm.c * (mean - 4 * sd_env)
                || ++bottom_tries > 400)
                die(2, "--query-size %ld is too small for these options: "
                    "the smallest message is about %ld bytes", target,
                    out_len(d, n_ref + (SKI_MIN - k_ref),
                            (long) (dm.c ? mean : 0)));
            move = 0;
        }

        if (move) {
            long np = p + (kc - SKI_MID);

            if (np - p < 16 && p - np < 16)     /* shift at least a block */
                np = p + (rnd_u() & 1 ? 24 : -24);
            if (np < 0)
                np = 0;
            k = (int) (kc - (np - p));
            if (k < SKI_MIN)
                k = SKI_MIN;
            if (k > SKI_MAX)
                k = SKI_MAX;
            p = np;
            pl = split_payload(c, p);
            buf_free(&inner);
            inner = build_inner(x, pl);
            reroll = 1;
            envs++;
        } else if (best_k >= 0 && !reroll) {
            k = (int) best_k;
        }
        if (reroll) {
            buf_free(&env);
            env = make_envelope(x, &inner);
            encs++;
            on_env = 0;
            m_sum = 0;
        }
        free(out);
        buf_free(&msg);
    }

    if (c->verbose)
        fprintf(stderr, PROG ": %ld bytes after %d tries (%ld CSRs, %ld "
                "encryptions): %ld SANs of %ld + fill %ld, SKI %d, "
                "DER %zu bytes\n", len, tries, envs, encs, pl.sans,
                c->san_len, pl.tune, k, msg.n);
    buf_free(&msg);
    buf_free(&env);
    buf_free(&inner);
    return out;
}

/* ------------------------------------------------------------------ */

static const EVP_MD *pick_digest(const char *s)
{
    const EVP_MD *md = NULL;

    if (strcmp(s, "sha1") == 0)
        md = EVP_sha1();
    else if (strcmp(s, "sha256") == 0)
        md = EVP_sha256();
    else if (strcmp(s, "sha512") == 0)
        md = EVP_sha512();
    else if (strcmp(s, "md5") == 0)
        md = EVP_md5();
    else
        die_usage("--digest: expected sha1, sha256, sha512 or md5, got '%s'",
                  s);
    return md;
}

static const EVP_CIPHER *pick_cipher(const char *s)
{
    const EVP_CIPHER *ci = NULL;

    if (strcmp(s, "des3") == 0)
        ci = EVP_des_ede3_cbc();
    else if (strcmp(s, "aes128") == 0)
        ci = EVP_aes_128_cbc();
    else if (strcmp(s, "aes256") == 0)
        ci = EVP_aes_256_cbc();
    else
        die_usage("--cipher: expected des3, aes128 or aes256, got '%s'", s);
    return ci;
}

static ASN1_OBJECT *oid(const char *txt)
{
    ASN1_OBJECT *o = OBJ_txt2obj(txt, 1);

    if (o == NULL)
        die_ossl("OBJ_txt2obj");
    return o;
}

static void write_out(const char *file, const char *p, size_t n)
{
    FILE *f = stdout;

    if (file != NULL && (f = fopen(file, "wb")) == NULL)
        die(1, "cannot write %s: %s", file, strerror(errno));
    if (fwrite(p, 1, n, f) != n || fflush(f) != 0)
        die(1, "write error: %s", strerror(errno));
    if (f != stdout && fclose(f) != 0)
        die(1, "cannot write %s: %s", file, strerror(errno));
}

enum {
    O_CA = 256, O_CA_INDEX, O_TYPE, O_CHALLENGE, O_CN, O_SANS, O_KEY,
    O_KEY_BITS, O_TID, O_DIGEST, O_CIPHER, O_SERIAL, O_DIALECT, O_QUERY,
    O_QUERY_SIZE, O_OUT, O_SAN_LEN, O_STATUS, O_FAIL_INFO, O_BER, O_KEYID,
    O_NONCE, O_SIGNER_CERT, O_RECIPIENT_NONCE, O_REPLY_TO
};

static const struct option longopts[] = {
    { "ca",            required_argument, NULL, O_CA },
    { "ca-index",      required_argument, NULL, O_CA_INDEX },
    { "type",          required_argument, NULL, O_TYPE },
    { "challenge",     required_argument, NULL, O_CHALLENGE },
    { "cn",            required_argument, NULL, O_CN },
    { "sans",          required_argument, NULL, O_SANS },
    { "key",           required_argument, NULL, O_KEY },
    { "key-bits",      required_argument, NULL, O_KEY_BITS },
    { "tid",           required_argument, NULL, O_TID },
    { "nonce",         required_argument, NULL, O_NONCE },
    { "digest",        required_argument, NULL, O_DIGEST },
    { "cipher",        required_argument, NULL, O_CIPHER },
    { "serial",        required_argument, NULL, O_SERIAL },
    { "dialect",       required_argument, NULL, O_DIALECT },
    { "query",         no_argument,       NULL, O_QUERY },
    { "query-size",    required_argument, NULL, O_QUERY_SIZE },
    { "out",           required_argument, NULL, O_OUT },
    { "seed-sans-len", required_argument, NULL, O_SAN_LEN },
    { "status",        required_argument, NULL, O_STATUS },
    { "fail-info",     required_argument, NULL, O_FAIL_INFO },
    { "ber",           required_argument, NULL, O_BER },
    { "keyid",         no_argument,       NULL, O_KEYID },
    { "signer-cert",   required_argument, NULL, O_SIGNER_CERT },
    { "recipient-nonce", required_argument, NULL, O_RECIPIENT_NONCE },
    { "reply-to",      required_argument, NULL, O_REPLY_TO },
    { "verbose",       no_argument,       NULL, 'v' },
    { "help",          no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

int main(int argc, char **argv)
{
    struct cfg c;
    struct ctx x;
    char *out;
    size_t olen;
    int opt, i;

    memset(&c, 0, sizeof(c));
    c.ca_index = -1;
    c.type = 19;
    c.cn = "scep-msg";
    c.key_bits = 2048;
    c.digest = "sha256";
    c.cipher = "aes256";
    c.dialect = D_DER;
    c.san_len = 24;

    while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (opt) {
        case O_CA:         c.ca_file = optarg; break;
        case O_CA_INDEX:   c.ca_index = parse_long("--ca-index", optarg,
                                                   0, INT_MAX); break;
        case O_TYPE:       c.type = parse_long("--type", optarg,
                                               0, INT_MAX); break;
        case O_CHALLENGE:  c.challenge = optarg; break;
        case O_CN:         c.cn = optarg; break;
        case O_SANS:       c.sans = parse_long("--sans", optarg,
                                               0, MAX_SANS); break;
        case O_KEY:        c.key_file = optarg; break;
        case O_KEY_BITS:   c.key_bits = parse_long("--key-bits", optarg,
                                                   512, 16384); break;
        case O_TID:        c.tid = optarg; break;
        case O_NONCE:      c.nonce = optarg; break;
        case O_DIGEST:     c.digest = optarg; break;
        case O_CIPHER:     c.cipher = optarg; break;
        case O_SERIAL:     c.serial = optarg; break;
        case O_QUERY:      c.query = 1; break;
        case O_QUERY_SIZE: c.query_size = parse_long("--query-size", optarg,
                                                     1, MAX_QUERY_SIZE);
                           break;
        case O_OUT:        c.out = optarg; break;
        case O_SAN_LEN:    c.san_len = parse_long("--seed-sans-len", optarg,
                                                  12, 253); break;
        case O_STATUS:     c.status = optarg; break;
        case O_FAIL_INFO:  c.fail_info = optarg; break;
        case O_KEYID:      c.keyid = 1; break;
        case O_SIGNER_CERT: c.signer_cert = optarg; break;
        case O_RECIPIENT_NONCE: c.recipient_nonce = optarg; break;
        case O_REPLY_TO:   c.reply_to = optarg; break;
        case O_BER:        c.ber_chunk = parse_long("--ber", optarg,
                                                    1, INT_MAX); break;
        case O_DIALECT:
            for (i = 0; dialect_names[i] != NULL; i++)
                if (strcmp(optarg, dialect_names[i]) == 0)
                    break;
            if (dialect_names[i] == NULL)
                die_usage("--dialect: unknown dialect '%s'", optarg);
            c.dialect = (enum dialect) i;
            c.dialect_set = 1;
            break;
        case 'v':
            c.verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fputs("Try '" PROG " --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    if (c.ca_file == NULL && c.reply_to == NULL)
        die_usage("--ca is required");
    if (c.nonce != NULL && strlen(c.nonce) != 2 * NONCE_LEN)
        die_usage("--nonce: give %d hex digits", 2 * NONCE_LEN);
    if ((c.reply_to != NULL || c.recipient_nonce != NULL) && c.type != 3)
        die_usage("--reply-to and --recipient-nonce make a CertRep: "
                  "give --type 3");
    if (c.signer_cert != NULL && c.key_file == NULL)
        die_usage("--signer-cert needs its private key: give --key");
    if (c.recipient_nonce != NULL) {
        unsigned char check[NONCE_LEN];

        parse_nonce("--recipient-nonce", c.recipient_nonce, check);
    }
    if (!c.dialect_set && (c.query || c.query_size))
        c.dialect = D_STD;
    if (c.dialect == D_DER && c.query)
        die_usage("--query needs a text dialect, not der");
    if (c.query_size && c.ber_chunk)
        die_usage("--ber and --query-size do not go together");
    if (c.query_size) {
        if (c.dialect != D_DER)
            c.query = 1;
        if (!type_has_csr(c.type))
            die(2, "--query-size grows the CSR; messageType %ld has none",
                c.type);
        check_reachable(c.dialect, c.query_size);
    }

    memset(&x, 0, sizeof(x));
    x.c = &c;
    x.md = pick_digest(c.digest);
    x.cipher = pick_cipher(c.cipher);
    x.o_type = oid(OID_MESSAGE_TYPE);
    x.o_status = oid(OID_PKI_STATUS);
    x.o_fail = oid(OID_FAIL_INFO);
    x.o_snonce = oid(OID_SENDER_NONCE);
    x.o_rnonce = oid(OID_RECIP_NONCE);
    x.o_tid = oid(OID_TRANSACTION_ID);
    snprintf(x.type_str, sizeof(x.type_str), "%ld", c.type);

    if (c.reply_to != NULL)
        read_reply_to(&x, c.reply_to);
    if (c.ca_file != NULL) {
        x.ca = load_ca(c.ca_file, c.ca_index);
    } else if (x.requester != NULL) {
        x.ca = x.requester;
        if (!X509_up_ref(x.ca))
            die_ossl("X509_up_ref");
    } else {
        die(1, "--reply-to: no signer certificate in the request; give --ca");
    }
    x.key = load_key(c.key_file, c.key_bits);
    if (c.signer_cert != NULL) {
        x.signer_cert = load_ca(c.signer_cert, -1);
        if (X509_check_private_key(x.signer_cert, x.key) != 1)
            die(1, "--signer-cert %s is not the certificate of --key",
                c.signer_cert);
    }
    x.subject = make_subject(c.cn);
    if (x.tid == NULL)
        x.tid = c.tid ? OPENSSL_strdup(c.tid) : default_tid(x.key);
    if (x.tid == NULL)
        die(1, "out of memory");

    if (c.query_size) {
        out = sized_message(&x, &olen);
    } else {
        struct buf inner, env, msg;

        inner = make_inner(&x, c.sans, 0);
        env = make_envelope(&x, &inner);
        buf_free(&inner);
        msg = make_message(&x, &env, signer(&x, SKI_DEFAULT));
        if (c.ber_chunk) {
            struct buf der = msg;

            msg = stream_ber(&der, (size_t) c.ber_chunk);
            buf_free(&der);
        }
        out = encode(c.dialect, c.query, &msg, &olen);
        if (c.verbose)
            fprintf(stderr, PROG ": DER %zu bytes, output %zu bytes\n",
                    msg.n, olen);
        buf_free(&msg);
        buf_free(&env);
    }
    write_out(c.out, out, olen);
    free(out);

    for (i = 0; i <= SKI_MAX; i++)
        X509_free(x.signer[i]);
    X509_free(x.ca);
    X509_free(x.signer_cert);
    X509_free(x.requester);
    EVP_PKEY_free(x.key);
    X509_NAME_free(x.subject);
    if (c.tid)
        OPENSSL_free(x.tid);
    else
        free(x.tid);
    ASN1_OBJECT_free(x.o_type);
    ASN1_OBJECT_free(x.o_status);
    ASN1_OBJECT_free(x.o_fail);
    ASN1_OBJECT_free(x.o_snonce);
    ASN1_OBJECT_free(x.o_rnonce);
    ASN1_OBJECT_free(x.o_tid);
    return 0;
}
