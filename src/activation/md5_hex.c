/*
 * md5_hex.c
 *		md5 as 32 hex digits, for payload hashes and idempotency keys.
 *
 * The same digest as PostgreSQL's md5() and pg_md5_hash(), at a fraction of
 * the cost per call: those create an OpenSSL context (and, in OpenSSL 3,
 * look the algorithm up in the provider) for every hash, which cost more
 * than hashing a payload of a few hundred bytes, once or twice per row sent.
 * Here the algorithm is fetched and the context made once per backend.
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "activation/activation.h"

static EVP_MD *md5 = NULL;
static EVP_MD_CTX *md5_ctx = NULL;

void
EltMd5Hex(const void *data, size_t len, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	if (md5_ctx == NULL)
	{
		md5 = EVP_MD_fetch(NULL, "MD5", NULL);
		md5_ctx = EVP_MD_CTX_new();
		if (md5 == NULL || md5_ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("md5 is not available from OpenSSL"),
					 errhint("pg_elt hashes payloads with md5; OpenSSL in FIPS mode refuses it.")));
	}
	if (EVP_DigestInit_ex2(md5_ctx, md5, NULL) != 1 ||
		EVP_DigestUpdate(md5_ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(md5_ctx, digest, &digest_len) != 1 || digest_len != 16)
		elog(ERROR, "could not compute md5");
	for (int i = 0; i < 16; i++)
	{
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0x0f];
	}
	hex[32] = '\0';
}
