
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The signer certificate of a renewal, judged at the edge: issued by a
 * CA the back ends name, within its validity, not on a CRL.  Plain C
 * over OpenSSL, no nginx types, so that it can be unit-tested and
 * fuzzed on its own.
 */


#ifndef _SCEP_RENEWAL_H_INCLUDED_
#define _SCEP_RENEWAL_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


/* a renewal's signer certificate, parsed once for all the checks */
typedef struct scep_signer_s  scep_signer_t;

/* the CRLs of a file, read once at configuration time */
typedef struct scep_crl_s  scep_crl_t;


/*
 * Parses the signer certificate (DER, "len" bytes, nothing after it),
 * as scep_result_t's signer_cert gives it.  NULL when it does not
 * parse or memory is short; *nomem says which (1: memory).
 */
scep_signer_t *scep_signer_new(const unsigned char *der, size_t len,
    int *nomem);

void scep_signer_free(scep_signer_t *s);

/*
 * Whether the certificate names itself as its issuer and its own key
 * verifies its signature: 1 or 0.  A certificate a CA issued to the
 * CA's own name is not.
 */
int scep_signer_self_signed(const scep_signer_t *s);

/*
 * OpenSSL's hash of the issuer Name in canonical form: the
 * subject_hash of scep_cert_info_t of the CA certificate that may have
 * issued it.  0 with *ok 0 when OpenSSL fails.
 */
uint32_t scep_signer_issuer_hash(const scep_signer_t *s, int *ok);

/*
 * Whether the key of a SubjectPublicKeyInfo (DER) signed the
 * certificate: 1, 0 when not, -1 when the key does not parse.
 */
int scep_signer_issued_by(const scep_signer_t *s, const unsigned char *spki,
    size_t len);

/*
 * Whether the certificate is valid at "now", allowing "grace" seconds
 * after its notAfter: 1, or 0 when it is not yet valid, has expired
 * longer than "grace" ago, or its dates do not read.
 */
int scep_signer_valid(const scep_signer_t *s, time_t now, time_t grace);

/* whether a CRL of "crl" from the certificate's issuer lists its serial */
int scep_signer_revoked(const scep_signer_t *s, const scep_crl_t *crl);

/*
 * For a log line: the issuer in RFC 2253 form and the serial number in
 * upper-case hex, truncated safely and NUL-terminated.
 */
void scep_signer_text(const scep_signer_t *s, char *issuer,
    size_t issuer_size, char *serial, size_t serial_size);


/*
 * Reads every CRL of the file "path": PEM ("X509 CRL" blocks, others
 * skipped) or one DER CRL.  Returns them, or NULL with a reason in err:
 * "cannot open the file (strerror)", "CRL N does not parse" (N from 1,
 * in the order of the PEM blocks), "no CRL in the file (PEM or DER)",
 * "out of memory".
 */
scep_crl_t *scep_crl_read(const char *path, char *err, size_t errlen);

void scep_crl_free(scep_crl_t *crl);

int scep_crl_count(const scep_crl_t *crl);


#endif /* _SCEP_RENEWAL_H_INCLUDED_ */
