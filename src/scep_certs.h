
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * GetCACaps and GetCACert answers of back ends, judged by the health
 * probes; plain C over OpenSSL, no nginx types, so that it can be
 * unit-tested and fuzzed on its own.
 */


#ifndef _SCEP_CERTS_H_INCLUDED_
#define _SCEP_CERTS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define SCEP_CERTS_MAX        8
#define SCEP_CERT_NAME_MAX    256
#define SCEP_CERT_SERIAL_MAX  80
#define SCEP_CERT_ID_LEN      16    /* of the SHA-256, 128 bits */


typedef struct {
    /* RFC 2253 one-line form, truncated safely, NUL-terminated */
    char      subject[SCEP_CERT_NAME_MAX];
    char      issuer[SCEP_CERT_NAME_MAX];

    /* upper-case hex, no separators */
    char      serial[SCEP_CERT_SERIAL_MAX];

    time_t    not_before;
    time_t    not_after;

    int       is_ca;                  /* basicConstraints CA:TRUE */

    /* what a pkiMessage's recipient is compared with: scep_cert_id() */
    unsigned char  id[SCEP_CERT_ID_LEN];          /* issuer as encoded */
    unsigned char  id_canonical[SCEP_CERT_ID_LEN];
    unsigned char  key_id[SCEP_CERT_ID_LEN];      /* scep_key_id() */
    int            has_id;            /* 0 if OpenSSL failed to make them */
    int            has_key_id;        /* subjectKeyIdentifier present */

    /*
     * OpenSSL's hash of the subject in canonical form
     * (X509_NAME_hash_ex()), as scep_signer_issuer_hash() makes of a
     * renewal's issuer: which CA certificate may have issued it
     */
    uint32_t       subject_hash;

    /*
     * the certificate's SubjectPublicKeyInfo, DER, as in the body given
     * to scep_cacert_parse(): a pointer into that body, valid while the
     * body is; NULL (and spki_len 0) where the body encodes it otherwise
     * than in DER, or where the answer's PKIX structure is one the walk
     * of scep_message.h refuses (a certs-only with CRLs, say)
     */
    const unsigned char  *spki;
    size_t                spki_len;
} scep_cert_info_t;


typedef struct {
    int               ncerts;

    /* as in the answer, CA(s) and RA(s) */
    scep_cert_info_t  certs[SCEP_CERTS_MAX];

    int               ca;             /* index of the CA certificate, -1
                                         if none found */
    int               truncated;      /* more than SCEP_CERTS_MAX */
} scep_ca_answer_t;


/* capability bits */
#define SCEP_CAP_AES               0x0001
#define SCEP_CAP_DES3              0x0002
#define SCEP_CAP_GETNEXTCACERT     0x0004
#define SCEP_CAP_POSTPKIOPERATION  0x0008
#define SCEP_CAP_RENEWAL           0x0010
#define SCEP_CAP_SHA1              0x0020
#define SCEP_CAP_SHA256            0x0040
#define SCEP_CAP_SHA512            0x0080
#define SCEP_CAP_SCEPSTANDARD      0x0100
#define SCEP_CAP_UPDATE            0x0200
#define SCEP_CAP_SHA224            0x0400
#define SCEP_CAP_SHA384            0x0800


/*
 * Parses a GetCACaps answer body: one keyword a line, "\n" or "\r\n",
 * case-insensitive, empty lines and unknown keywords ignored.  Returns 0
 * and sets *caps, or -1 with a reason in err (e.g. "GetCACaps: HTML page
 * instead of capabilities", "GetCACaps: not a capability list") when the
 * body is not a capability list (HTML, binary, a line over 64 bytes, ...).
 *
 * A line is a keyword when it is made of letters, digits, "-", "_" and
 * "." only; spaces and tabs around it and a leading UTF-8 byte order
 * mark are ignored.  An empty body is an empty list: 0 with *caps 0.
 * err may be NULL; a reason longer than errlen is truncated.
 */
int scep_caps_parse(const unsigned char *body, size_t len, uint32_t *caps,
    char *err, size_t errlen);

/*
 * The keyword of one capability bit ("POSTPKIOperation", "SHA-256", ...)
 * or NULL.
 */
const char *scep_cap_name(uint32_t bit);


/*
 * Parses a GetCACert answer: either one DER certificate
 * (application/x-x509-ca-cert) or a degenerate PKCS#7/CMS SignedData
 * "certs-only" (application/x-x509-ca-ra-cert) holding the CA and RA
 * certificates.  content_type may be NULL; when given it must match the
 * form found (a DER cert labelled x-x509-ca-ra-cert is still accepted:
 * decide by the bytes, but an HTML content type or a body starting with
 * '<' is an error "GetCACert: HTML page instead of certificates").
 * Returns 0 and fills *out, or -1 with a reason in err such as
 * "GetCACert: not a certificate or PKCS#7 certs-only", "GetCACert: no
 * certificates", "GetCACert: trailing bytes".
 *
 * content_type is the value of the Content-Type header, parameters
 * allowed; NULL or "" when there was none.  Besides the two types
 * above, application/pkix-cert is taken for a certificate and
 * application/pkcs7-mime, application/x-pkcs7-mime,
 * application/x-pkcs7-certificates and
 * application/x-x509-ca-ra-cert-chain for either form; any other type
 * is an error, as is a PKCS#7 labelled as a single certificate.  Of
 * more than SCEP_CERTS_MAX certificates the first SCEP_CERTS_MAX are
 * kept.  On error *out holds no certificates and out->ca is -1.
 */
int scep_cacert_parse(const unsigned char *body, size_t len,
    const char *content_type, scep_ca_answer_t *out, char *err,
    size_t errlen);


#define SCEP_CERTS_VALID      0
#define SCEP_CERTS_EXPIRING   1   /* some cert expires within "warn"
                                     seconds of now */
#define SCEP_CERTS_EXPIRED    2   /* some cert is expired or not yet
                                     valid */

/*
 * Judges the validity of every certificate of the answer at "now".
 * Writes a human-readable message for the worst finding into msg, naming
 * the role and date, e.g. "GetCACert: RA certificate expired 2026-01-02",
 * "GetCACert: CA certificate not valid before 2027-01-01",
 * "GetCACert: RA certificate expires 2026-12-01 (in 9 days)".
 * Role: "CA" for is_ca certificates, "RA" for the others; when the answer
 * is a single certificate it is the "CA" certificate.  Dates in UTC as
 * YYYY-MM-DD.  Returns one of SCEP_CERTS_*.  msg empty for VALID.
 *
 * A certificate is valid from not_before to not_after, both included.
 * Of several expired or not yet valid certificates the first in the
 * answer is named, of several expiring ones the one that expires
 * first.  warn 0 or less disables SCEP_CERTS_EXPIRING.  msg may be
 * NULL; a message longer than msglen is truncated.
 */
int scep_cacert_check(const scep_ca_answer_t *a, time_t now, time_t warn,
    char *msg, size_t msglen);


/*
 * Judges the Content-Type value of a GetCACaps or GetCACert answer
 * before it is kept and sent on to devices ("op" names the operation
 * in the reason).  It must be there, be a valid header value (no
 * control characters but the tab: no CR, LF or NUL) and be a media
 * type: "type/subtype" tokens, then parameters, each ";" token "="
 * token or quoted-string, with blanks around the ";".  Returns 0, or
 * -1 with a reason in err quoting the value with control characters and
 * quotes as "?", e.g. "GetCACaps: Content-Type \"text/plain?Set-Cookie:
 * x=1\" has a control character", "GetCACert: Content-Type \"x\" is
 * not a media type", "GetCACaps: no Content-Type".  err may be NULL;
 * a reason longer than errlen is truncated.
 */
int scep_content_type_check(const unsigned char *value, size_t len,
    const char *op, char *err, size_t errlen);


/*
 * The identifier of a certificate by its issuer and serial number, as a
 * CMS RecipientInfo names it: the first SCEP_CERT_ID_LEN bytes of the
 * SHA-256 over the issuer Name (DER) and the serialNumber's contents
 * octets.  With "canonical", the issuer counts in OpenSSL's canonical
 * form (X509_NAME_hash_ex()), so that a name encoded otherwise (string
 * types, case, spaces) still matches.  Returns
 * 0, or -1 when the name does not parse or OpenSSL fails.
 */
int scep_cert_id(const unsigned char *issuer, size_t issuer_len,
    const unsigned char *serial, size_t serial_len, int canonical,
    unsigned char *id);

/*
 * The hash of a Name (DER) that X509_NAME_hash_ex() makes, as
 * scep_cert_info_t's subject_hash: 0, or -1 when it does not parse or
 * OpenSSL fails.
 */
int scep_name_hash(const unsigned char *der, size_t len, uint32_t *hash);

/* the identifier of a subjectKeyIdentifier: the same over its octets */
int scep_key_id(const unsigned char *key_id, size_t len, unsigned char *id);

/*
 * For a log line: the issuer Name (DER) in RFC 2253 form and the serial
 * number's contents in upper-case hex, each truncated safely and
 * NUL-terminated.
 */
void scep_issuer_serial_text(const unsigned char *issuer, size_t issuer_len,
    const unsigned char *serial, size_t serial_len, char *name,
    size_t name_size, char *hex, size_t hex_size);


/*
 * Trust anchors for GetCACert answers: the CA certificates of a PEM
 * file, read once at configuration time.
 */
typedef struct scep_anchors_s  scep_anchors_t;

#define SCEP_ANCHORS_DIGEST_LEN  8

/*
 * Reads every certificate of the PEM file "path"; other PEM blocks (a
 * key, say) are skipped.  Returns the anchors, or NULL with a reason in
 * err: "cannot open the file", "a certificate that does not parse",
 * "no certificates" (a file without any), "out of memory".
 */
scep_anchors_t *scep_anchors_read(const char *path, char *err,
    size_t errlen);

void scep_anchors_free(scep_anchors_t *a);

int scep_anchors_count(const scep_anchors_t *a);

/*
 * The first SCEP_ANCHORS_DIGEST_LEN bytes of the SHA-256 over the DER
 * of the anchors in file order: what tells one set from another.
 */
void scep_anchors_digest(const scep_anchors_t *a, unsigned char *digest);

/*
 * Whether a GetCACert answer that scep_cacert_parse() accepted may be
 * trusted: every certificate of it is one of the anchors, or is issued
 * by one (its signature checked with the anchor's key), directly or
 * through CA certificates of the answer that are (intermediate CAs; a
 * CA certificate renewed with the same key and name is issued by the
 * old one).  The CA certificate (the answer's "ca") is judged first.
 * Returns 0, or -1 with a reason in err naming the first certificate
 * that fails: "GetCACert: CA certificate not issued by scep_trusted_ca:
 * \"CN=...\"" (RA for the others).  An answer of more than
 * SCEP_CERTS_MAX certificates fails as a whole ("GetCACert: more than 8
 * certificates, more than scep_trusted_ca checks"): each pair of
 * certificates costs a signature check at most.
 */
int scep_cacert_trusted(const unsigned char *body, size_t len,
    const scep_anchors_t *anchors, char *err, size_t errlen);

/*
 * Whether the certificate "der" (DER, "len" bytes) is issued by one of
 * the anchors: its issuer is the anchor's subject and its signature
 * verifies with the anchor's key.  1 when it is, 0 when not, -1 when
 * it does not parse or OpenSSL fails.
 */
int scep_anchors_issued(const scep_anchors_t *anchors,
    const unsigned char *der, size_t len);


#endif /* _SCEP_CERTS_H_INCLUDED_ */
