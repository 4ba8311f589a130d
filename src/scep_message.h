
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * SCEP message handling in plain C: no nginx types, so that it can be
 * unit-tested and fuzzed on its own.
 */


#ifndef _SCEP_MESSAGE_H_INCLUDED_
#define _SCEP_MESSAGE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define SCEP_OK            0
#define SCEP_BAD_BASE64   -1
#define SCEP_TOO_LARGE    -2


/*
 * The most bytes scep_base64_decode() writes for an encoded value of
 * "len" bytes; "out" must have room for that many.
 */
#define scep_base64_decoded_max(len)  (((len) / 4 + 1) * 3)


/*
 * Decodes a "message" value taken raw from a query string, in any of
 * the base64 dialects that SCEP clients send: standard base64
 * percent-encoded, "+" and "/" left raw, "+" turned into a space
 * ("%20" or a raw "+" that an intermediary form-decoded), the URL-safe
 * alphabet ("-" and "_"), missing padding, and line breaks ("%0A",
 * "%0D").  Anything else is SCEP_BAD_BASE64.  Decoding stops with
 * SCEP_TOO_LARGE as soon as more than "max" bytes would be written.
 * On success *outlen is the number of bytes written to "out", and
 * *canonical (unless NULL) tells whether "in" was already in the form
 * scep_base64_encode_query() writes.
 */
int scep_base64_decode(const unsigned char *in, size_t len,
    unsigned char *out, size_t max, size_t *outlen, int *canonical);


/*
 * The first byte that a "message" value decodes to, from its first four
 * base64 characters alone (escapes and line breaks read as
 * scep_base64_decode() reads them), or -1 where those do not decode.
 * Looks at a few bytes of "in", whatever "len" is.
 */
int scep_base64_first_byte(const unsigned char *in, size_t len);


/*
 * Writes "len" bytes of "in" as standard base64, padded and
 * percent-encoded for a query string ("+" as "%2B", "/" as "%2F",
 * "=" as "%3D"): the canonical form forwarded to back ends.  Returns
 * the number of bytes written; "out" must have room for
 * scep_base64_encoded_max(len) bytes.
 */
#define scep_base64_encoded_max(len)  ((((len) + 2) / 3) * 4 * 3)

size_t scep_base64_encode_query(const unsigned char *in, size_t len,
    unsigned char *out);


/*
 * Whether a GetCACert, GetCACaps or GetNextCACert "message" (an optional
 * CA identifier such as "default" or "SCEP%20Authority") is at most
 * "max" bytes long and printable ASCII once percent-decoded.
 */
int scep_ca_ident_ok(const unsigned char *in, size_t len, size_t max);


/* the SCEP parameters of a query string, as they appear in it */

typedef struct {
    const unsigned char  *operation;
    size_t                operation_len;
    size_t                operations;      /* how many "operation=" */
    const unsigned char  *message;
    size_t                message_len;
    size_t                messages;        /* how many "message=" */
    size_t                u_escapes;       /* how many "%u" anywhere */
} scep_query_t;


/*
 * Finds "operation" and "message" in a raw query string, with the names
 * read as the back end reads them (percent escapes and "+" decoded, case
 * ignored, a name without "=" has an empty value); values are left
 * encoded; the last of repeated ones is kept, and all are counted.
 * "%u" and "%U" escapes are counted wherever they are: IIS decodes
 * "%uXXXX" as a UTF-16 code unit in names and values alike, which no
 * standard URL has, so the caller can refuse them rather than read a
 * name differently from the back end.  Never fails.
 */
void scep_query_scan(const unsigned char *args, size_t len, scep_query_t *q);


/* pkiMessage checks */

typedef enum {
    SCEP_REASON_OK = 0,
    SCEP_REASON_BAD_DER,              /* not DER, trailing bytes, lengths */
    SCEP_REASON_NOT_SIGNED_DATA,      /* ContentInfo is not SignedData */
    SCEP_REASON_BAD_SIGNER_COUNT,     /* not exactly one SignerInfo */
    SCEP_REASON_BAD_CONTENT_TYPE,     /* encapsulated content is not data */
    SCEP_REASON_BAD_ENVELOPE,         /* its octets are not EnvelopedData */
    SCEP_REASON_BAD_MESSAGE_TYPE,     /* missing, or not 17, 19, 20-22 */
    SCEP_REASON_BAD_TRANSACTION_ID,   /* missing, not PrintableString 1-128 */
    SCEP_REASON_BAD_SENDER_NONCE,     /* missing, not 16-byte OCTET STRING */
    SCEP_REASON_BAD_DIGEST_ALGORITHM, /* digest not allowed by the policy */
    SCEP_REASON_BAD_CIPHER_ALGORITHM, /* cipher not allowed by the policy */
    SCEP_REASON_NO_SIGNER_CERT,       /* signer certificate not included */
    SCEP_REASON_BAD_SIGNATURE,        /* signature does not verify */
    SCEP_REASON_INTERNAL              /* out of memory and the like */
} scep_reason_t;


/* algorithm bits for scep_policy_t */
#define SCEP_ALG_MD5      0x0001
#define SCEP_ALG_SHA1     0x0002
#define SCEP_ALG_SHA224   0x0004
#define SCEP_ALG_SHA256   0x0008
#define SCEP_ALG_SHA384   0x0010
#define SCEP_ALG_SHA512   0x0020

#define SCEP_ALG_DES      0x0100    /* single DES-CBC */
#define SCEP_ALG_DES3     0x0200    /* DES-EDE3-CBC */
#define SCEP_ALG_AES128   0x0400    /* AES-*-CBC and -GCM */
#define SCEP_ALG_AES192   0x0800
#define SCEP_ALG_AES256   0x1000

#define SCEP_ALG_DEFAULT                                                      \
    (SCEP_ALG_SHA1|SCEP_ALG_SHA224|SCEP_ALG_SHA256|SCEP_ALG_SHA384            \
     |SCEP_ALG_SHA512|SCEP_ALG_DES3|SCEP_ALG_AES128|SCEP_ALG_AES192           \
     |SCEP_ALG_AES256)


/*
 * What the checks take from OpenSSL's providers (the digests, the maker
 * of RSA public keys), fetched once for many checks instead of at every
 * check.  A process makes one with scep_crypto_new() and names it in
 * every scep_policy_t; one thread at a time may use it.  NULL when out
 * of memory.  A check without one fetches what it needs itself.
 */

typedef struct scep_crypto_s  scep_crypto_t;

scep_crypto_t *scep_crypto_new(void);

void scep_crypto_free(scep_crypto_t *crypto);


typedef struct {
    uint32_t        algorithms;       /* SCEP_ALG_* allowed */
    scep_crypto_t  *crypto;           /* or NULL */
} scep_policy_t;


#define SCEP_TRANSACTION_ID_MAX  128
#define SCEP_OID_TEXT_MAX        64
#define SCEP_KEY_HASH_LEN        32


/*
 * A recipient of the pkcsPKIEnvelope, as its RecipientInfo names it: a
 * KeyTransRecipientInfo's rid, or each RecipientEncryptedKey's rid of a
 * KeyAgreeRecipientInfo.  The pointers point into the message, or into
 * a copy of its content that scep_pending_free() releases.
 */

#define SCEP_RECIPIENT_ISSUER_SERIAL  1   /* issuer Name (DER as sent),
                                             serialNumber contents */
#define SCEP_RECIPIENT_KEY_ID         2   /* subjectKeyIdentifier */
#define SCEP_RECIPIENT_OTHER          3   /* no certificate named: KEK,
                                             password, other kinds */
#define SCEP_RECIPIENTS_MAX           4

typedef struct {
    int                   kind;
    const unsigned char  *issuer;
    size_t                issuer_len;
    const unsigned char  *serial;
    size_t                serial_len;
    const unsigned char  *key_id;
    size_t                key_id_len;
} scep_recipient_t;


typedef struct {
    int             message_type;     /* 17, 19, 20, 21, 22 */
    size_t          transaction_id_len;
    char            transaction_id[SCEP_TRANSACTION_ID_MAX + 1];
    unsigned char   sender_nonce[16];

    /*
     * the SHA-256 of the signer's public key as a SubjectPublicKeyInfo in
     * DER, written afresh from the key (an RSA key as rsaEncryption, an EC
     * point uncompressed), so that a certificate that encodes the same key
     * otherwise has the same hash; made once the signature verified, and
     * signer_key_hashed is 0 until then
     */
    int             signer_key_hashed;
    unsigned char   signer_key_hash[SCEP_KEY_HASH_LEN];

    /*
     * the algorithms, once the checks reached them: SCEP_ALG_* (0 for one
     * the checks do not know), a name such as "sha256" or "des-cbc" (NULL
     * when unknown), and the OID in dotted form ("" when not reached)
     */
    uint32_t        digest;           /* of the signer */
    uint32_t        cipher;           /* of the envelope */
    const char     *digest_name;
    const char     *cipher_name;
    char            digest_oid[SCEP_OID_TEXT_MAX];
    char            cipher_oid[SCEP_OID_TEXT_MAX];

    /*
     * the signer's certificate, once found: its DER as sent, a pointer
     * into the message (valid while the message is), and whether its
     * issuer is its subject (a self-signed certificate, as a PKCSReq
     * has; one the CA issued makes a PKCSReq a renewal)
     */
    const unsigned char  *signer_cert;
    size_t                signer_cert_len;
    int                   signer_self_issued;

    /* its issuer Name, DER as sent, a pointer into the message too */
    const unsigned char  *signer_issuer;
    size_t                signer_issuer_len;

    /* all the envelope's recipients, the first SCEP_RECIPIENTS_MAX kept */
    unsigned int      recipients;
    scep_recipient_t  recipient[SCEP_RECIPIENTS_MAX];
} scep_result_t;


/*
 * Checks a DER pkiMessage sent by a client, cheapest check first, and
 * fills "res" with what it found along the way (fields not reached are
 * zero).  Returns SCEP_REASON_OK or the first failed check.  No global
 * state; safe to call from any thread.
 */
scep_reason_t scep_message_check(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res);


/*
 * The same check in two steps, so that a caller can answer from the
 * result (rate limits, access control) before it pays for the signature.
 * scep_message_parse() makes every check but the two that need the
 * content's digest and a public-key operation (messageDigest and the
 * signature), and keeps in "pending" (scep_pending_size() bytes, any
 * alignment of malloc()) what scep_message_verify() needs to make them
 * without parsing again.  "der" and "res" must stay in place until then.
 * scep_pending_free() releases what "pending" holds, verified or not; it
 * may be called more than once.  parse then verify returns what
 * scep_message_check() returns.
 */

typedef struct scep_pending_s  scep_pending_t;

size_t scep_pending_size(void);

scep_reason_t scep_message_parse(const unsigned char *der, size_t len,
    const scep_policy_t *policy, scep_result_t *res, scep_pending_t *pending);

scep_reason_t scep_message_verify(scep_pending_t *pending);

void scep_pending_free(scep_pending_t *pending);

/* the stable token of a reason ("bad_signature"), "" for SCEP_REASON_OK */
const char *scep_reason_token(scep_reason_t reason);

/* "PKCSReq", "RenewalReq", "CertPoll", "GetCert", "GetCRL" or NULL */
const char *scep_message_type_name(int message_type);

/*
 * Parses an algorithm name as in the "scep_algorithms" directive ("md5",
 * "sha1", "sha224", "sha256", "sha384", "sha512", "des", "des3",
 * "aes128", "aes192", "aes256", and "aes" for all three AES sizes);
 * returns its SCEP_ALG_* bits or 0 when unknown.
 */
uint32_t scep_algorithm_bits(const char *name, size_t len);

/*
 * The "scep_algorithms" names of the SCEP_ALG_* bits in "bits", in the
 * order above, space-separated, with "aes" for all three AES sizes:
 * "sha1 sha224 sha256 sha384 sha512 des3 aes" for SCEP_ALG_DEFAULT.
 * Writes at most "size" bytes, NUL included; returns the length of the
 * whole text, as snprintf() does.
 */
size_t scep_algorithms_text(uint32_t bits, char *out, size_t size);


#endif /* _SCEP_MESSAGE_H_INCLUDED_ */
