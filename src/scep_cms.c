
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * The CMS walk of the pkiMessage checks: ContentInfo, SignedData and its
 * SignerInfos and certificates, the encapsulated content, and the
 * EnvelopedData in it with its RecipientInfos.
 *
 * The CMS structure is walked here rather than with d2i_CMS_ContentInfo():
 * OpenSSL 3.0 decodes the public key of every certificate it parses with
 * its provider decoders, which costs more than 100 microseconds a
 * certificate, more than the whole budget of a check.  The walk accepts
 * BER as OpenSSL does (indefinite lengths, constructed strings, as
 * streaming toolkits write them) and refuses what OpenSSL would refuse:
 * every length and nesting, the fields of each structure, the encoding of
 * INTEGERs, OIDs, BOOLEANs, BIT STRINGs and times, the string types of
 * names.  It allocates nothing but a copy of content that comes in
 * pieces.  OpenSSL is left the cryptography: the signer's public key, the
 * digests and the signature.
 *
 * Not quite as OpenSSL: the content of a ContentInfo that is not
 * SignedData is only checked as BER; CRLs are refused in SignedData and
 * EnvelopedData (no request carries them); the pieces of a constructed
 * OCTET STRING must be OCTET STRINGs; the signature covers the signed
 * attributes as they were sent, where OpenSSL encodes them anew.
 */


#include <string.h>

#include <openssl/crypto.h>

#include "scep_message_int.h"


static int scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd);
static int scep_parse_signer_info(scep_check_t *ck, const scep_ber_t *si);
static int scep_parse_certificates(const scep_ber_t *certs);
static int scep_parse_extensions(const scep_ber_t *el, scep_cert_t *cert);
static int scep_parse_recipient_info(scep_check_t *ck, const scep_ber_t *el);
static void scep_add_recipient(scep_check_t *ck, int kind,
    const scep_ber_t *id);
static int scep_cur_issuer_serial(scep_cur_t *cur, scep_ber_t *el);
static int scep_other_ok(const scep_ber_t *el);
static int scep_key_identifier_ok(const scep_ber_t *el);


/* contents octets of the OIDs used */

/* 1.2.840.113549.1.7.1, .2, .3 */
static const unsigned char  scep_oid_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01
};

static const unsigned char  scep_oid_signed_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
};

static const unsigned char  scep_oid_enveloped_data[] = {
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03
};

/* 2.5.29.14 */
static const unsigned char  scep_oid_ski[] = { 0x55, 0x1d, 0x0e };


/* the structure: ContentInfo, SignedData, SignerInfos, certificates */

scep_reason_t
scep_parse_content_info(scep_check_t *ck, const unsigned char *der,
    size_t len)
{
    int                   indef;
    size_t                vlen;
    scep_ber_t            ci, type, content, sd;
    scep_cur_t            cur;
    unsigned int          tag;
    const unsigned char  *p;

    /* first the outer header alone: a definite length must be the rest */

    p = der;

    if (der == NULL
        || !scep_ber_header(&p, der + len, &tag, &vlen, &indef)
        || tag != SCEP_BER_SEQUENCE
        || (!indef && vlen != (size_t) (der + len - p)))
    {
        return SCEP_REASON_BAD_DER;
    }

    /* then the whole input as one element: every length and nesting */

    if (!scep_ber_read(der, der + len, &ci, 1, 0) || ci.next != der + len) {
        return SCEP_REASON_BAD_DER;
    }

    /* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */

    scep_cur_init(&cur, &ci);

    if (!scep_cur_oid(&cur, &type)
        || !scep_cur_next(&cur, scep_ber_ctx_cons(0), &content)
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_DER;
    }

    if (!scep_oid_is(&type, scep_oid_signed_data,
                     sizeof(scep_oid_signed_data)))
    {
        return SCEP_REASON_NOT_SIGNED_DATA;
    }

    scep_cur_init(&cur, &content);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &sd)
        || !scep_cur_done(&cur)
        || !scep_parse_signed_data(ck, &sd))
    {
        return SCEP_REASON_BAD_DER;
    }

    return SCEP_REASON_OK;
}


/*
 * SignedData ::= SEQUENCE { version, digestAlgorithms SET OF
 *     AlgorithmIdentifier, encapContentInfo SEQUENCE { eContentType,
 *     [0] EXPLICIT OCTET STRING OPTIONAL }, [0] IMPLICIT certificates
 *     OPTIONAL, [1] IMPLICIT crls OPTIONAL, signerInfos SET OF SignerInfo }
 *
 * CRLs are refused.
 */

static int
scep_parse_signed_data(scep_check_t *ck, const scep_ber_t *sd)
{
    scep_ber_t    el, set, alg, params, eci, wrap;
    scep_cur_t    cur, in, sub;
    scep_check_t  other;

    scep_cur_init(&cur, sd);

    if (!scep_cur_integer(&cur, 4, &el)
        || !scep_cur_next(&cur, SCEP_BER_SET, &ck->digest_algs))
    {
        return 0;
    }

    scep_cur_init(&in, &ck->digest_algs);

    while (!scep_cur_done(&in)) {
        if (!scep_cur_alg(&in, &alg, &params)) {
            return 0;
        }
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &eci)) {
        return 0;
    }

    scep_cur_init(&in, &eci);

    if (!scep_cur_oid(&in, &ck->econtent_type)
        || !scep_cur_optional(&in, scep_ber_ctx_cons(0), &wrap)
        || !scep_cur_done(&in))
    {
        return 0;
    }

    ck->econtent.tag = 0;

    if (wrap.tag != 0) {
        scep_cur_init(&sub, &wrap);

        if (!scep_cur_octets(&sub, &ck->econtent) || !scep_cur_done(&sub)) {
            return 0;
        }
    }

    /*
     * Certificates, but no CRLs: a request has no use for them, and
     * OpenSSL would judge them by rules a walk cannot follow.
     */

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &ck->certs)
        || (ck->certs.tag != 0 && !scep_parse_certificates(&ck->certs))
        || scep_cur_peek(&cur) == scep_ber_ctx_cons(1))
    {
        return 0;
    }

    if (!scep_cur_next(&cur, SCEP_BER_SET, &set) || !scep_cur_done(&cur)) {
        return 0;
    }

    scep_cur_init(&in, &set);

    while (!scep_cur_done(&in)) {
        if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &el)) {
            return 0;
        }

        if (ck->signers == 0) {
            if (!scep_parse_signer_info(ck, &el)) {
                return 0;
            }

        } else {
            /* parsed all the same: a broken one is bad DER first */

            memset(&other, 0, sizeof(scep_check_t));

            if (!scep_parse_signer_info(&other, &el)) {
                return 0;
            }
        }

        ck->signers++;
    }

    return 1;
}


/*
 * SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm,
 *     [0] IMPLICIT signedAttrs OPTIONAL, signatureAlgorithm,
 *     signature OCTET STRING, [1] IMPLICIT unsignedAttrs OPTIONAL }
 *
 * sid is IssuerAndSerialNumber ::= SEQUENCE { Name, INTEGER } or
 * [0] IMPLICIT SubjectKeyIdentifier (an OCTET STRING).
 */

static int
scep_parse_signer_info(scep_check_t *ck, const scep_ber_t *si)
{
    scep_ber_t  el, params, unsigned_attrs;
    scep_cur_t  cur;

    scep_cur_init(&cur, si);

    if (!scep_cur_integer(&cur, 4, &el)) {
        return 0;
    }

    if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
        if (!scep_cur_issuer_serial(&cur, &ck->sid)) {
            return 0;
        }

    } else if (!scep_cur_next(&cur, scep_ber_ctx(0), &ck->sid)) {
        return 0;
    }

    if (!scep_cur_alg(&cur, &ck->digest_alg, &params)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(0), &ck->attrs)
        || (ck->attrs.tag != 0 && !scep_ber_attributes_ok(&ck->attrs))
        || !scep_cur_alg(&cur, &ck->sig_alg, &ck->sig_params)
        || !scep_cur_next(&cur, SCEP_BER_OCTET_STRING, &ck->signature)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(1), &unsigned_attrs)
        || (unsigned_attrs.tag != 0
            && !scep_ber_attributes_ok(&unsigned_attrs))
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    return 1;
}


/*
 * CertificateChoices: a Certificate (SEQUENCE), one of the obsolete forms
 * [0] to [2], which are only checked as BER (OpenSSL keeps them as they
 * are), or [3] another format.
 */

static int
scep_parse_certificates(const scep_ber_t *certs)
{
    int          tag;
    scep_ber_t   el;
    scep_cur_t   cur;
    scep_cert_t  cert;

    scep_cur_init(&cur, certs);

    while (!scep_cur_done(&cur)) {
        tag = scep_cur_peek(&cur);

        if (!scep_cur_next(&cur, 0, &el)) {
            return 0;
        }

        if (tag == SCEP_BER_SEQUENCE) {
            if (!scep_parse_certificate(&el, &cert)) {
                return 0;
            }

        } else if (tag == scep_ber_ctx_cons(3)) {
            /* OtherCertificateFormat ::= SEQUENCE { OID, ANY OPTIONAL } */

            if (!scep_other_ok(&el)) {
                return 0;
            }

        } else if (tag < scep_ber_ctx_cons(0) || tag > scep_ber_ctx_cons(2)) {
            return 0;
        }
    }

    return 1;
}


/*
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 *     signature BIT STRING }
 * TBSCertificate ::= SEQUENCE { [0] EXPLICIT version OPTIONAL, serial,
 *     signature, issuer, validity, subject, subjectPublicKeyInfo,
 *     [1] issuerUniqueID, [2] subjectUniqueID, [3] EXPLICIT extensions }
 */

int
scep_parse_certificate(const scep_ber_t *el, scep_cert_t *cert)
{
    unsigned int  n;
    scep_ber_t    tbs, v, alg, params, validity, t, uid, ext;
    scep_cur_t    cur, in;

    scep_cur_init(&cur, el);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &tbs)
        || !scep_cur_alg(&cur, &alg, &params)
        || !scep_cur_next(&cur, SCEP_BER_BIT_STRING, &v)
        || v.val == v.vend || v.val[0] > 7
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    scep_cur_init(&cur, &tbs);

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &v)) {
        return 0;
    }

    if (v.tag != 0) {
        scep_cur_init(&in, &v);

        if (!scep_cur_integer(&in, 8, &t) || !scep_cur_done(&in)) {
            return 0;
        }
    }

    if (!scep_cur_integer(&cur, (size_t) -1, &cert->serial)
        || !scep_cur_alg(&cur, &alg, &params)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &cert->issuer)
        || !scep_ber_name_ok(&cert->issuer)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &validity))
    {
        return 0;
    }

    scep_cur_init(&in, &validity);

    if (scep_cur_peek(&in) != SCEP_BER_UTC_TIME
        && scep_cur_peek(&in) != SCEP_BER_GEN_TIME)
    {
        return 0;
    }

    if (!scep_cur_next(&in, 0, &t)
        || (scep_cur_peek(&in) != SCEP_BER_UTC_TIME
            && scep_cur_peek(&in) != SCEP_BER_GEN_TIME)
        || !scep_cur_next(&in, 0, &t)
        || !scep_cur_done(&in))
    {
        return 0;
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &cert->subject)
        || !scep_ber_name_ok(&cert->subject)
        || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &cert->spki)
        || !scep_parse_spki(&cert->spki, cert))
    {
        return 0;
    }

    /* the unique identifiers: [1] and [2] IMPLICIT BIT STRING */

    for (n = 1; n <= 2; n++) {
        if (scep_cur_peek(&cur) == (int) scep_ber_ctx(n)
            || scep_cur_peek(&cur) == (int) scep_ber_ctx_cons(n))
        {
            if (!scep_cur_next(&cur, 0, &uid) || !scep_ber_bits_ok(&uid)) {
                return 0;
            }
        }
    }

    if (!scep_cur_optional(&cur, scep_ber_ctx_cons(3), &ext)
        || !scep_cur_done(&cur))
    {
        return 0;
    }

    cert->ski.tag = 0;

    if (ext.tag == 0) {
        return 1;
    }

    scep_cur_init(&in, &ext);

    if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &v) || !scep_cur_done(&in)) {
        return 0;
    }

    return scep_parse_extensions(&v, cert);
}


/*
 * SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
 *     subjectPublicKey BIT STRING }, its key the key of "cert"
 */

int
scep_parse_spki(const scep_ber_t *spki, scep_cert_t *cert)
{
    scep_cur_t  cur;

    scep_cur_init(&cur, spki);

    return scep_cur_alg(&cur, &cert->key_alg, &cert->key_params)
           && scep_cur_next(&cur, SCEP_BER_BIT_STRING, &cert->key)
           && cert->key.val != cert->key.vend && cert->key.val[0] <= 7
           && scep_cur_done(&cur);
}


/*
 * Extensions ::= SEQUENCE OF SEQUENCE { extnID, critical BOOLEAN
 *     DEFAULT FALSE, extnValue OCTET STRING }; the subjectKeyIdentifier
 * is an OCTET STRING in extnValue.
 */

static int
scep_parse_extensions(const scep_ber_t *el, scep_cert_t *cert)
{
    scep_ber_t  ext, oid, critical, value, ski;
    scep_cur_t  cur, in;

    scep_cur_init(&cur, el);

    while (!scep_cur_done(&cur)) {
        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &ext)) {
            return 0;
        }

        scep_cur_init(&in, &ext);

        if (!scep_cur_oid(&in, &oid)
            || !scep_cur_optional(&in, SCEP_BER_BOOLEAN, &critical)
            || (critical.tag != 0 && critical.vend - critical.val != 1)
            || !scep_cur_next(&in, SCEP_BER_OCTET_STRING, &value)
            || !scep_cur_done(&in))
        {
            return 0;
        }

        if (cert->ski.tag == 0
            && scep_oid_is(&oid, scep_oid_ski, sizeof(scep_oid_ski))
            && scep_ber_read(value.val, value.vend, &ski, 0, 0)
            && ski.tag == SCEP_BER_OCTET_STRING
            && ski.next == value.vend)
        {
            cert->ski = ski;
        }
    }

    return 1;
}


/* whether the encapsulated content's type is "data", as SCEP's is */

int
scep_content_is_data(const scep_check_t *ck)
{
    return scep_oid_is(&ck->econtent_type, scep_oid_data,
                       sizeof(scep_oid_data));
}


/* the encapsulated content: "data", present, its octets gathered */

scep_reason_t
scep_check_content(scep_check_t *ck)
{
    int     first;
    size_t  n;

    if (!scep_content_is_data(ck) || ck->econtent.tag == 0) {
        return SCEP_REASON_BAD_CONTENT_TYPE;
    }

    if (ck->econtent.tag == SCEP_BER_OCTET_STRING) {
        ck->content = ck->econtent.val;
        ck->content_len = ck->econtent.vend - ck->econtent.val;
        return SCEP_REASON_OK;
    }

    /* BER constructed OCTET STRING: the octets of its pieces, in order */

    ck->content_copy = OPENSSL_malloc(ck->econtent.vend - ck->econtent.val
                                      + 1);
    if (ck->content_copy == NULL) {
        return SCEP_REASON_INTERNAL;
    }

    n = 0;
    first = -1;

    if (!scep_ber_pieces(&ck->econtent, SCEP_BER_OCTET_STRING, 0,
                         ck->content_copy, &n, &first))
    {
        return SCEP_REASON_BAD_DER;
    }

    ck->content = ck->content_copy;
    ck->content_len = n;

    return SCEP_REASON_OK;
}


/*
 * The content octets are a ContentInfo holding EnvelopedData (the
 * pkcsPKIEnvelope), nothing before or after it:
 *
 * EnvelopedData ::= SEQUENCE { version, [0] IMPLICIT originatorInfo
 *     OPTIONAL, recipientInfos SET OF RecipientInfo,
 *     encryptedContentInfo SEQUENCE { contentType,
 *         contentEncryptionAlgorithm, [0] IMPLICIT encryptedContent
 *         OPTIONAL },
 *     [1] IMPLICIT unprotectedAttrs OPTIONAL }
 */

scep_reason_t
scep_check_envelope(scep_check_t *ck)
{
    int         tag, first;
    size_t      n;
    scep_ber_t  ci, type, content, ed, el, set, eci, params, attrs;
    scep_cur_t  cur, in;

    if (ck->content_len < 2
        || ck->content[0] != SCEP_BER_SEQUENCE
        || !scep_ber_read(ck->content, ck->content + ck->content_len, &ci, 1,
                          0)
        || ci.next != ck->content + ck->content_len)
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &ci);

    if (!scep_cur_oid(&cur, &type)
        || !scep_oid_is(&type, scep_oid_enveloped_data,
                        sizeof(scep_oid_enveloped_data))
        || !scep_cur_next(&cur, scep_ber_ctx_cons(0), &content)
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &content);

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &ed) || !scep_cur_done(&cur)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&cur, &ed);

    if (!scep_cur_integer(&cur, 4, &el)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(0), &el)
        || !scep_cur_next(&cur, SCEP_BER_SET, &set))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    if (el.tag != 0) {
        /* originatorInfo: [0] certificates as in SignedData, no CRLs */

        scep_cur_init(&in, &el);

        if (!scep_cur_optional(&in, scep_ber_ctx_cons(0), &attrs)
            || (attrs.tag != 0 && !scep_parse_certificates(&attrs))
            || !scep_cur_done(&in))
        {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    /* at least one recipient */

    scep_cur_init(&in, &set);

    if (scep_cur_done(&in)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    while (!scep_cur_done(&in)) {
        if (!scep_cur_next(&in, 0, &el)
            || !scep_parse_recipient_info(ck, &el))
        {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &eci)
        || !scep_cur_optional(&cur, scep_ber_ctx_cons(1), &attrs)
        || (attrs.tag != 0 && !scep_ber_attributes_ok(&attrs))
        || !scep_cur_done(&cur))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    scep_cur_init(&in, &eci);

    if (!scep_cur_oid(&in, &type)
        || !scep_cur_alg(&in, &ck->cipher_alg, &params))
    {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    tag = scep_cur_peek(&in);

    if (tag == scep_ber_ctx(0) || tag == scep_ber_ctx_cons(0)) {
        n = 0;
        first = -1;

        if (!scep_cur_next(&in, 0, &el)
            || (tag == scep_ber_ctx_cons(0)
                && !scep_ber_pieces(&el, 0, 0, NULL, &n, &first)))
        {
            return SCEP_REASON_BAD_ENVELOPE;
        }
    }

    if (!scep_cur_done(&in)) {
        return SCEP_REASON_BAD_ENVELOPE;
    }

    return SCEP_REASON_OK;
}


/*
 * RecipientInfo ::= CHOICE {
 *     ktri KeyTransRecipientInfo (SEQUENCE { version, rid,
 *         keyEncryptionAlgorithm, encryptedKey }),
 *     kari [1] { version, originator [0] EXPLICIT, ukm [1] EXPLICIT
 *         OPTIONAL, keyEncryptionAlgorithm, SEQUENCE OF SEQUENCE { rid,
 *         encryptedKey } },
 *     kekri [2] { version, kekid, keyEncryptionAlgorithm, encryptedKey },
 *     pwri [3] { version, [0] keyDerivationAlgorithm OPTIONAL,
 *         keyEncryptionAlgorithm, encryptedKey },
 *     ori [4] { oriType, oriValue } }
 */

static int
scep_parse_recipient_info(scep_check_t *ck, const scep_ber_t *el)
{
    int         tag;
    scep_ber_t  v, id, alg, params, key, keys, rek;
    scep_cur_t  cur, in, sub, kid;

    if (el->tag == scep_ber_ctx_cons(4)) {
        scep_add_recipient(ck, SCEP_RECIPIENT_OTHER, NULL);
        return scep_other_ok(el);
    }

    scep_cur_init(&cur, el);

    if (!scep_cur_integer(&cur, 4, &v)) {
        return 0;
    }

    switch (el->tag) {

    case SCEP_BER_SEQUENCE:

        /* rid: IssuerAndSerialNumber or [0] IMPLICIT SubjectKeyIdentifier */

        if (scep_cur_peek(&cur) == SCEP_BER_SEQUENCE) {
            if (!scep_cur_issuer_serial(&cur, &id)) {
                return 0;
            }

            scep_add_recipient(ck, SCEP_RECIPIENT_ISSUER_SERIAL, &id);

        } else if (!scep_cur_next(&cur, scep_ber_ctx(0), &id)) {
            return 0;

        } else {
            scep_add_recipient(ck, SCEP_RECIPIENT_KEY_ID, &id);
        }

        break;

    case scep_ber_ctx_cons(1):

        /*
         * originator: IssuerAndSerialNumber, [0] IMPLICIT
         * SubjectKeyIdentifier or [1] IMPLICIT OriginatorPublicKey
         * (SEQUENCE { AlgorithmIdentifier, BIT STRING })
         */

        if (!scep_cur_next(&cur, scep_ber_ctx_cons(0), &id)) {
            return 0;
        }

        scep_cur_init(&in, &id);
        tag = scep_cur_peek(&in);

        if (tag == SCEP_BER_SEQUENCE) {
            if (!scep_cur_issuer_serial(&in, &id)) {
                return 0;
            }

        } else if (tag == scep_ber_ctx_cons(1)) {
            if (!scep_cur_next(&in, 0, &id)) {
                return 0;
            }

            scep_cur_init(&sub, &id);

            if (!scep_cur_alg(&sub, &alg, &params)
                || !scep_cur_next(&sub, SCEP_BER_BIT_STRING, &key)
                || !scep_cur_done(&sub))
            {
                return 0;
            }

        } else if (!scep_cur_next(&in, scep_ber_ctx(0), &id)) {
            return 0;
        }

        if (!scep_cur_done(&in)) {
            return 0;
        }

        /* ukm */

        if (!scep_cur_optional(&cur, scep_ber_ctx_cons(1), &id)) {
            return 0;
        }

        if (id.tag != 0) {
            scep_cur_init(&in, &id);

            if (!scep_cur_octets(&in, &key) || !scep_cur_done(&in)) {
                return 0;
            }
        }

        /* recipientEncryptedKeys */

        if (!scep_cur_alg(&cur, &alg, &params)
            || !scep_cur_next(&cur, SCEP_BER_SEQUENCE, &keys)
            || !scep_cur_done(&cur))
        {
            return 0;
        }

        scep_cur_init(&in, &keys);

        while (!scep_cur_done(&in)) {
            if (!scep_cur_next(&in, SCEP_BER_SEQUENCE, &rek)) {
                return 0;
            }

            /* rid: IssuerAndSerialNumber or [0] RecipientKeyIdentifier */

            scep_cur_init(&sub, &rek);

            if (scep_cur_peek(&sub) == SCEP_BER_SEQUENCE) {
                if (!scep_cur_issuer_serial(&sub, &id)) {
                    return 0;
                }

                scep_add_recipient(ck, SCEP_RECIPIENT_ISSUER_SERIAL, &id);

            } else if (!scep_cur_next(&sub, scep_ber_ctx_cons(0), &id)
                       || !scep_key_identifier_ok(&id))
            {
                return 0;

            } else {
                /* its subjectKeyIdentifier, if sent in one piece */

                scep_cur_init(&kid, &id);

                if (scep_cur_peek(&kid) == SCEP_BER_OCTET_STRING
                    && scep_cur_next(&kid, SCEP_BER_OCTET_STRING, &key))
                {
                    scep_add_recipient(ck, SCEP_RECIPIENT_KEY_ID, &key);

                } else {
                    scep_add_recipient(ck, SCEP_RECIPIENT_OTHER, NULL);
                }
            }

            if (!scep_cur_octets(&sub, &key) || !scep_cur_done(&sub)) {
                return 0;
            }
        }

        return 1;

    case scep_ber_ctx_cons(2):

        /* kekid: KEKIdentifier */

        scep_add_recipient(ck, SCEP_RECIPIENT_OTHER, NULL);

        if (!scep_cur_next(&cur, SCEP_BER_SEQUENCE, &id)
            || !scep_key_identifier_ok(&id))
        {
            return 0;
        }

        break;

    case scep_ber_ctx_cons(3):

        /* keyDerivationAlgorithm: [0] IMPLICIT AlgorithmIdentifier */

        scep_add_recipient(ck, SCEP_RECIPIENT_OTHER, NULL);

        if (!scep_cur_optional(&cur, scep_ber_ctx_cons(0), &id)) {
            return 0;
        }

        if (id.tag != 0) {
            /* read as the SEQUENCE it stands for */

            scep_cur_init(&sub, &id);

            if (!scep_cur_oid(&sub, &alg)
                || (!scep_cur_done(&sub) && !scep_cur_next(&sub, 0, &params))
                || !scep_cur_done(&sub))
            {
                return 0;
            }
        }

        break;

    default:
        return 0;
    }

    return scep_cur_alg(&cur, &alg, &params)
           && scep_cur_octets(&cur, &key)
           && scep_cur_done(&cur);
}


/*
 * Keeps what names a recipient: an IssuerAndSerialNumber's issuer and
 * serial (both read already by scep_cur_issuer_serial()), or the octets
 * of a subjectKeyIdentifier.
 */

static void
scep_add_recipient(scep_check_t *ck, int kind, const scep_ber_t *id)
{
    scep_ber_t         name, serial;
    scep_cur_t         in;
    scep_recipient_t  *rcp;

    if (ck->res->recipients++ >= SCEP_RECIPIENTS_MAX) {
        return;
    }

    rcp = &ck->res->recipient[ck->res->recipients - 1];
    rcp->kind = SCEP_RECIPIENT_OTHER;

    if (kind == SCEP_RECIPIENT_KEY_ID) {
        rcp->kind = kind;
        rcp->key_id = id->val;
        rcp->key_id_len = id->vend - id->val;
        return;
    }

    if (kind != SCEP_RECIPIENT_ISSUER_SERIAL) {
        return;
    }

    scep_cur_init(&in, id);

    if (scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
        && scep_cur_next(&in, SCEP_BER_INTEGER, &serial))
    {
        rcp->kind = kind;
        rcp->issuer = name.hdr;
        rcp->issuer_len = name.next - name.hdr;
        rcp->serial = serial.val;
        rcp->serial_len = serial.vend - serial.val;
    }
}


/* IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber } */

static int
scep_cur_issuer_serial(scep_cur_t *cur, scep_ber_t *el)
{
    scep_ber_t  name, serial;
    scep_cur_t  in;

    if (!scep_cur_next(cur, SCEP_BER_SEQUENCE, el)) {
        return 0;
    }

    scep_cur_init(&in, el);

    return scep_cur_next(&in, SCEP_BER_SEQUENCE, &name)
           && scep_ber_name_ok(&name)
           && scep_cur_integer(&in, (size_t) -1, &serial)
           && scep_cur_done(&in);
}


/* SEQUENCE { OID, ANY OPTIONAL }, under any tag */

static int
scep_other_ok(const scep_ber_t *el)
{
    scep_ber_t  oid, value;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    if (!scep_cur_oid(&cur, &oid)) {
        return 0;
    }

    if (!scep_cur_done(&cur) && !scep_cur_next(&cur, 0, &value)) {
        return 0;
    }

    return scep_cur_done(&cur);
}


/*
 * RecipientKeyIdentifier and KEKIdentifier ::= SEQUENCE { OCTET STRING,
 *     date GeneralizedTime OPTIONAL, other OtherKeyAttribute OPTIONAL }
 */

static int
scep_key_identifier_ok(const scep_ber_t *el)
{
    scep_ber_t  id, date, other;
    scep_cur_t  cur;

    scep_cur_init(&cur, el);

    if (!scep_cur_octets(&cur, &id)
        || !scep_cur_optional(&cur, SCEP_BER_GEN_TIME, &date)
        || !scep_cur_optional(&cur, SCEP_BER_SEQUENCE, &other)
        || (other.tag != 0 && !scep_other_ok(&other)))
    {
        return 0;
    }

    return scep_cur_done(&cur);
}
