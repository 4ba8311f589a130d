
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * A pkiMessage in streaming BER re-encoded as DER, for back ends that
 * cannot read BER; plain C, no nginx types.
 */


#ifndef _SCEP_DER_H_INCLUDED_
#define _SCEP_DER_H_INCLUDED_


#include <stddef.h>


#define SCEP_DER_SAME     0     /* already DER: forward it as it is */
#define SCEP_DER_NEEDED   1     /* re-encode it with scep_der_encode() */
#define SCEP_DER_ERROR   -1     /* not a form this re-encoder writes */


/*
 * Looks at a pkiMessage (a ContentInfo, BER) in one pass that neither
 * allocates nor copies.  SCEP_DER_SAME: every length is definite and in
 * its shortest form and no string is constructed.  SCEP_DER_NEEDED:
 * *outlen is the size of its DER form and *worklen the bytes of scratch
 * that scep_der_encode() needs.  SCEP_DER_ERROR for what it does not
 * re-encode (bad BER, nesting deeper than 48, a constructed BIT STRING or
 * a constructed form of a type that is not a string).
 *
 * The DER form has definite lengths in their shortest form and every
 * constructed universal string (the signed content's OCTET STRING as
 * streaming encoders cut it into pieces) as one primitive string of the
 * same octets.  The signed attributes of each SignerInfo of a
 * SignedData are copied as they were sent, whatever their form: the
 * signature covers them as sent.  Other DER rules (the order of SET OF,
 * BOOLEAN values) are not enforced: streaming encoders keep them.
 */
int scep_der_size(const unsigned char *in, size_t len, size_t *outlen,
    size_t *worklen);

/*
 * Writes the DER form of "in" into "out", which has room for the
 * *outlen bytes that scep_der_size() gave; "work" is scratch of *worklen
 * bytes, aligned for size_t.  Returns 0, or -1 if "in" is not what
 * scep_der_size() measured.
 */
int scep_der_encode(const unsigned char *in, size_t len, unsigned char *out,
    size_t outlen, void *work, size_t worklen);


#endif /* _SCEP_DER_H_INCLUDED_ */
