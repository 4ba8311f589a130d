
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * What the unit tests that make CMS messages share (cms.h).
 */


#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "tap.h"


static void cert_ext(X509 *x, int nid, const char *value);


X509 *
make_cert(EVP_PKEY *key, EVP_PKEY *signer, const char *cn, long serial,
    int flags)
{
    X509       *x;
    X509_NAME  *name;

    x = X509_new();
    name = X509_NAME_new();

    if (x == NULL || name == NULL
        || !X509_set_version(x, 2)
        || !ASN1_INTEGER_set(X509_get_serialNumber(x), serial)
        || !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       (const unsigned char *) cn, -1, -1, 0)
        || !X509_set_subject_name(x, name)
        || !X509_set_issuer_name(x, name)
        || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL
        || X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL
        || !X509_set_pubkey(x, key))
    {
        bail("making a certificate");
    }

    if (flags & CERT_SKI) {
        cert_ext(x, NID_subject_key_identifier, "hash");
    }

    if (flags & CERT_CA) {
        cert_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    }

    if (!X509_sign(x, signer, EVP_sha256())) {
        bail("signing a certificate");
    }

    X509_NAME_free(name);

    return x;
}


static void
cert_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX       ctx;
    X509_EXTENSION  *ext;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);

    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);

    if (ext == NULL || !X509_add_ext(x, ext, -1)) {
        bail("adding a certificate extension");
    }

    X509_EXTENSION_free(ext);
}


buf_t
der_of(CMS_ContentInfo *cms)
{
    int    n;
    buf_t  b;

    b.p = NULL;
    n = i2d_CMS_ContentInfo(cms, &b.p);

    if (n <= 0) {
        bail("i2d_CMS_ContentInfo");
    }

    b.n = n;

    return b;
}


void
add_attr(CMS_SignerInfo *si, const char *oid, int type, const void *data,
    int len)
{
    ASN1_OBJECT  *obj;

    obj = OBJ_txt2obj(oid, 1);

    if (obj == NULL
        || !CMS_signed_add1_attr_by_OBJ(si, obj, type, data, len))
    {
        bail("CMS_signed_add1_attr_by_OBJ");
    }

    ASN1_OBJECT_free(obj);
}


unsigned char *
find(const buf_t *hay, const void *needle, size_t n)
{
    size_t  i;

    for (i = 0; i + n <= hay->n; i++) {
        if (memcmp(hay->p + i, needle, n) == 0) {
            return hay->p + i;
        }
    }

    return NULL;
}
