
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * What the unit tests that make CMS messages with OpenSSL share: DER
 * buffers, certificates, signed attributes.  Each bails out (tap.h)
 * when OpenSSL fails.
 */


#ifndef _CMS_H_INCLUDED_
#define _CMS_H_INCLUDED_


#include <stddef.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>


/* make_cert() flags */
#define CERT_SKI   1            /* a subjectKeyIdentifier, the key's hash */
#define CERT_CA    2            /* basicConstraints CA:TRUE, critical */


typedef struct {
    unsigned char   *p;         /* OPENSSL_malloc()ed */
    size_t           n;
} buf_t;


/*
 * A certificate for "key" named "cn", issuer and subject alike, valid
 * from an hour ago for a day, signed by "signer" with SHA-256
 */
X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer, const char *cn,
    long serial, int flags);

buf_t der_of(CMS_ContentInfo *cms);

/* a signed attribute of one value, its OID in dotted form */
void add_attr(CMS_SignerInfo *si, const char *oid, int type,
    const void *data, int len);

/* the first "needle" in "hay", or NULL */
unsigned char *find(const buf_t *hay, const void *needle, size_t n);


#endif /* _CMS_H_INCLUDED_ */
