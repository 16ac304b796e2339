/*
 * secret.c
 *		Destination secrets: references to the server's environment or to a
 *		file only the server's OS user can read, and Standard Webhooks
 *		signatures. No function here ever puts a secret into a message.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid.h"
#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"

#include "activation/activation.h"

#define ELT_SECRET_MAX 65536
/* a secret file may end with a few line breaks beyond the secret's limit */
#define ELT_SECRET_FILE_MAX (ELT_SECRET_MAX + 16)

/*
 * A secret goes into an HTTP header or is a signing key: a line break (or a
 * NUL byte, from a file) would cut it or break the request.
 */
static bool
IsOneLine(const char *secret, size_t len)
{
	return strlen(secret) == len && strpbrk(secret, "\r\n") == NULL;
}

static void
NotOneLine(const char *kind, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s \"%s\" is not a single line of text", kind, name),
			 errdetail("A secret is sent in an HTTP header or used as a signing key: it cannot hold a line break or a NUL byte."),
			 errhint("Write the secret on one line, alone.")));
}

/*
 * ReadSecretFile
 *		Reads a secret file, which must be a regular file owned by the server's
 *		OS user with no group or other permissions. Trailing line breaks are
 *		dropped.
 */
static char *
ReadSecretFile(const char *path)
{
	struct stat st;
	int			fd;
	char	   *buf;
	ssize_t		n;
	bool		too_large;

	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret file path must be absolute"),
				 errdetail("The reference names \"%s\".", path),
				 errhint("Write the secret as 'file:/absolute/path'.")));
	/*
	 * O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	 * writer, deaf to cancel and terminate; open returns at once and fstat
	 * below refuses it. Regular files ignore the flag.
	 */
	fd = OpenTransientFile(path, O_RDONLY | O_NONBLOCK | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open secret file \"%s\": %m", path),
				 errdetail("The secret is read by the server's OS user when it is used."),
				 errhint("Create the file readable by the server's OS user only (chmod 600).")));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret file \"%s\" is not a regular file", path),
				 errdetail("A secret reference must name a plain file."),
				 errhint("Point the reference at a file holding only the secret.")));
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("secret file \"%s\" is readable by others", path),
				 errdetail("A secret file must be owned by the server's OS user and have no group or other permissions (mode %04o found).",
						   (unsigned int) (st.st_mode & 07777)),
				 errhint("Run chown and chmod 600 on the file.")));
	}
	/* one byte more than allowed tells a too long file from a full one */
	buf = palloc(ELT_SECRET_FILE_MAX + 2);
	n = 0;
	for (;;)
	{
		ssize_t		got = read(fd, buf + n, ELT_SECRET_FILE_MAX + 1 - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
		{
			int			save_errno = errno;

			CloseTransientFile(fd);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read secret file \"%s\": %m", path)));
		}
		if (got == 0 || (n += got) > ELT_SECRET_FILE_MAX)
			break;
	}
	CloseTransientFile(fd);
	too_large = n > ELT_SECRET_FILE_MAX;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (too_large || n > ELT_SECRET_MAX)
	{
		explicit_bzero(buf, ELT_SECRET_FILE_MAX + 2);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("secret file \"%s\" is too large", path),
				 errdetail("A secret may be at most %d bytes long.", ELT_SECRET_MAX),
				 errhint("Write the secret and nothing else into the file.")));
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret file \"%s\" is empty", path),
				 errdetail("A secret file holds the secret and nothing else."),
				 errhint("Write the secret into the file.")));
	if (!IsOneLine(buf, n))
	{
		explicit_bzero(buf, ELT_SECRET_FILE_MAX + 2);
		NotOneLine("secret file", path);
	}
	return buf;
}

/*
 * EltResolveSecret
 *		The secret a stored value stands for: a literal as is, 'env:NAME' from
 *		the server's environment, 'file:/path' from a protected file.
 */
char *
EltResolveSecret(const char *ref, bool literal)
{
	if (ref == NULL)
		return NULL;
	if (literal)
		return pstrdup(ref);
	if (strncmp(ref, "env:", 4) == 0)
	{
		const char *v = getenv(ref + 4);

		if (v == NULL || v[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("environment variable \"%s\" is not set in the server", ref + 4),
					 errdetail("The destination's secret is given as a reference to it."),
					 errhint("Set it in the environment the server starts with, and restart the server.")));
		if (!IsOneLine(v, strlen(v)))
			NotOneLine("environment variable", ref + 4);
		return pstrdup(v);
	}
	if (strncmp(ref, "file:", 5) == 0)
		return ReadSecretFile(ref + 5);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown kind of secret reference"),
			 errdetail("A reference starts with env: or file:."),
			 errhint("Give 'env:NAME' or 'file:/path'.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * EltCheckSecretRef
 *		Errors out unless role may use references (they read server files and
 *		the server's environment, so it needs pg_read_server_files) and ref
 *		resolves now.
 */
void
EltCheckSecretRef(const char *ref, Oid role)
{
	char	   *secret;

	if (!has_privs_of_role(role, ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use a secret reference"),
				 errdetail("env: and file: references read the server's environment and files."),
				 errhint("Ask a superuser to grant pg_read_server_files, or give the secret itself.")));
	secret = EltResolveSecret(ref, false);
	explicit_bzero(secret, strlen(secret));
	pfree(secret);
}

/*
 * EltWebhookSignature
 *		The Standard Webhooks signature header value: "v1," followed by the
 *		base64 of HMAC-SHA256(key, "<msg_id>.<timestamp>.<body>"). A secret
 *		of the form "whsec_<base64>" is decoded first, as the standard says.
 */
char *
EltWebhookSignature(const char *secret, const char *msg_id, long timestamp,
					const char *body)
{
	const char *key = secret;
	int			keylen = strlen(secret);
	char	   *decoded = NULL;
	char	   *msg;
	uint8		mac[PG_SHA256_DIGEST_LENGTH];
	pg_hmac_ctx *ctx;
	char	   *out;
	int			outlen;

	if (strncmp(secret, "whsec_", 6) == 0)
	{
		int			len = strlen(secret + 6);

		decoded = palloc(pg_b64_dec_len(len) + 1);
		keylen = pg_b64_decode(secret + 6, len, decoded, pg_b64_dec_len(len));
		if (keylen < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("signing secret is not valid base64"),
					 errdetail("A secret starting with whsec_ is followed by base64."),
					 errhint("Set the signing secret again with elt.alter_destination().")));
		key = decoded;
	}
	msg = psprintf("%s.%ld.%s", msg_id, timestamp, body ? body : "");

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL ||
		pg_hmac_init(ctx, (const uint8 *) key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) msg, strlen(msg)) < 0 ||
		pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
	{
		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA256");
	}
	pg_hmac_free(ctx);

	outlen = pg_b64_enc_len(sizeof(mac));
	out = palloc(outlen + 4);
	strcpy(out, "v1,");
	outlen = pg_b64_encode((const char *) mac, sizeof(mac), out + 3, outlen);
	out[3 + outlen] = '\0';
	if (decoded)
		pfree(decoded);
	pfree(msg);
	return out;
}
