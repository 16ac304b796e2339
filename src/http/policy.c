/*
 * policy.c
 *		Outbound address policy of the delivery engine, and its GUCs.
 *
 * Every connection the engine opens is checked here after DNS resolution and
 * before connect (engine.c calls EltHttpAddressAllowed from libcurl's
 * open-socket callback), so a host name that resolves to an internal address
 * is refused as surely as a literal one.
 *
 * Built-in refused ranges: loopback, link-local (with the cloud metadata
 * address 169.254.169.254), private and shared (CGNAT) ranges, "this
 * network", multicast, reserved and unspecified addresses, in IPv4 and IPv6;
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 *
 * elt.http_allowed_networks lists CIDRs allowed even inside a refused range;
 * elt.http_denied_networks lists CIDRs always refused. Deny wins over allow.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>

#include "utils/guc.h"

#include "http/http.h"
#include "http/http_internal.h"

/* One network: address in network byte order, prefix length in bits. */
typedef struct EltCidr
{
	int			family;			/* AF_INET or AF_INET6 */
	int			bits;
	uint8		addr[16];
	const char *label;			/* what the range is (built-in ranges only) */
} EltCidr;

/* A parsed GUC value, malloc'd as the GUC machinery requires of "extra". */
typedef struct EltCidrList
{
	int			n;
	EltCidr		cidrs[FLEXIBLE_ARRAY_MEMBER];
} EltCidrList;

/* GUC storage */
static char *elt_http_allowed_networks = NULL;
static char *elt_http_denied_networks = NULL;
int			elt_http_max_response_bytes = 64 * 1024;

/* Parsed forms, set by the assign hooks (NULL = empty). */
static const EltCidrList *allowed_list = NULL;
static const EltCidrList *denied_list = NULL;

/* Built-in refused ranges, as text; parsed once on first use. */
static const struct
{
	const char *cidr;
	const char *label;
}			builtin_refused_text[] =
{
	{"0.0.0.0/8", "\"this network\" range 0.0.0.0/8"},
	{"10.0.0.0/8", "private range 10.0.0.0/8"},
	{"100.64.0.0/10", "shared address range 100.64.0.0/10"},
	{"127.0.0.0/8", "loopback range 127.0.0.0/8"},
	{"169.254.0.0/16", "link-local range 169.254.0.0/16 (cloud metadata)"},
	{"172.16.0.0/12", "private range 172.16.0.0/12"},
	{"192.168.0.0/16", "private range 192.168.0.0/16"},
	{"224.0.0.0/4", "multicast range 224.0.0.0/4"},
	{"240.0.0.0/4", "reserved range 240.0.0.0/4"},
	{"::/128", "unspecified address ::"},
	{"::1/128", "loopback address ::1"},
	{"fe80::/10", "link-local range fe80::/10"},
	{"fec0::/10", "site-local range fec0::/10"},
	{"fc00::/7", "private range fc00::/7"},
	{"ff00::/8", "multicast range ff00::/8"},
};

#define N_BUILTIN lengthof(builtin_refused_text)
static EltCidr builtin_refused[N_BUILTIN];
static bool builtin_parsed = false;

/*
 * ParseCidr
 *		Parses "addr/bits" or a bare address (a host network) into *out.
 *		Host bits beyond the prefix are cleared. Returns false if malformed.
 */
static bool
ParseCidr(const char *text, EltCidr *out)
{
	char		buf[INET6_ADDRSTRLEN + 8];
	char	   *slash;
	int			maxbits;
	int			i;

	if (strlen(text) >= sizeof(buf) || text[0] == '\0')
		return false;
	strcpy(buf, text);
	memset(out, 0, sizeof(*out));

	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';

	if (inet_pton(AF_INET, buf, out->addr) == 1)
	{
		out->family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
	{
		out->family = AF_INET6;
		maxbits = 128;
	}
	else
		return false;

	out->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		bits;

		if (slash[1] < '0' || slash[1] > '9')
			return false;
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || bits < 0 || bits > maxbits)
			return false;
		out->bits = (int) bits;
	}

	/* clear host bits, so that matching is a plain prefix comparison */
	for (i = 0; i < maxbits / 8; i++)
	{
		int			keep = out->bits - i * 8;

		if (keep <= 0)
			out->addr[i] = 0;
		else if (keep < 8)
			out->addr[i] &= (uint8) (0xFF << (8 - keep));
	}
	return true;
}

/* Does the address (family, bytes) lie in the network? */
static bool
CidrContains(const EltCidr *cidr, int family, const uint8 *addr)
{
	int			full = cidr->bits / 8;
	int			rest = cidr->bits % 8;

	if (cidr->family != family)
		return false;
	if (memcmp(cidr->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((addr[full] ^ cidr->addr[full]) & (uint8) (0xFF << (8 - rest))) == 0;
}

static const EltCidr *
ListMatch(const EltCidrList *list, int family, const uint8 *addr)
{
	int			i;

	if (list == NULL)
		return NULL;
	for (i = 0; i < list->n; i++)
		if (CidrContains(&list->cidrs[i], family, addr))
			return &list->cidrs[i];
	return NULL;
}

static void
ParseBuiltins(void)
{
	int			i;

	if (builtin_parsed)
		return;
	for (i = 0; i < (int) N_BUILTIN; i++)
	{
		if (!ParseCidr(builtin_refused_text[i].cidr, &builtin_refused[i]))
			elog(ERROR, "bad built-in network \"%s\"", builtin_refused_text[i].cidr);
		builtin_refused[i].label = builtin_refused_text[i].label;
	}
	builtin_parsed = true;
}

/*
 * EltHttpAddressAllowed
 *		Judges a resolved address. On refusal, writes a message naming the
 *		address and the reason into errbuf and returns false.
 *
 * Runs inside a libcurl callback: it must not ereport or palloc.
 */
bool
EltHttpAddressAllowed(const struct sockaddr *addr, socklen_t len,
					  char *errbuf, size_t errlen)
{
	static const uint8 v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	char		text[INET6_ADDRSTRLEN];
	uint8		bytes[16];
	int			family;
	const char *reason = NULL;
	const EltCidr *match;
	int			i;

	ParseBuiltins();

	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
	{
		family = AF_INET;
		memcpy(bytes, &((const struct sockaddr_in *) addr)->sin_addr, 4);
	}
	else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
	{
		family = AF_INET6;
		memcpy(bytes, &((const struct sockaddr_in6 *) addr)->sin6_addr, 16);
		if (memcmp(bytes, v4mapped, 12) == 0)
		{
			/* ::ffff:a.b.c.d is a.b.c.d */
			family = AF_INET;
			memmove(bytes, bytes + 12, 4);
		}
	}
	else
	{
		snprintf(errbuf, errlen, "address family %d refused by the network policy",
				 (int) addr->sa_family);
		return false;
	}

	if ((match = ListMatch(denied_list, family, bytes)) != NULL)
		reason = "listed in elt.http_denied_networks";
	else
	{
		for (i = 0; i < (int) N_BUILTIN; i++)
		{
			if (CidrContains(&builtin_refused[i], family, bytes))
			{
				if (ListMatch(allowed_list, family, bytes) == NULL)
					reason = builtin_refused[i].label;
				break;
			}
		}
	}

	if (reason == NULL)
		return true;

	if (inet_ntop(family, bytes, text, sizeof(text)) == NULL)
		strcpy(text, "?");
	snprintf(errbuf, errlen,
			 "address %s refused by elt.http_allowed_networks/elt.http_denied_networks policy: %s",
			 text, reason);
	return false;
}

/*
 * CheckNetworks
 *		GUC check hook of both network lists: a comma-separated list of CIDRs
 *		(or bare addresses), whitespace allowed around items; '' is empty.
 */
static bool
CheckNetworks(char **newval, void **extra, GucSource source)
{
	const char *p = *newval ? *newval : "";
	EltCidrList *list;
	int			maxitems = 1;
	const char *c;

	for (c = p; *c; c++)
		if (*c == ',')
			maxitems++;

	list = malloc(offsetof(EltCidrList, cidrs) + sizeof(EltCidr) * maxitems);
	if (list == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	list->n = 0;

	while (*p)
	{
		const char *start;
		const char *end;
		char		item[INET6_ADDRSTRLEN + 8];
		size_t		ilen;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
			end--;
		ilen = end - start;

		if (ilen == 0)
		{
			/* tolerate only a completely empty value, not empty items */
			if (*p == ',' || list->n > 0)
			{
				GUC_check_errdetail("The list contains an empty item.");
				GUC_check_errhint("Separate networks with single commas, as in '127.0.0.1/32, 203.0.113.0/24'.");
				free(list);
				return false;
			}
		}
		else if (ilen >= sizeof(item) ||
				 (memcpy(item, start, ilen), item[ilen] = '\0',
				  !ParseCidr(item, &list->cidrs[list->n])))
		{
			GUC_check_errdetail("\"%.*s\" is not a network in CIDR notation.",
								(int) Min(ilen, 64), start);
			GUC_check_errhint("Write networks as address/prefix, as in '127.0.0.1/32' or 'fd00::/8', separated by commas.");
			free(list);
			return false;
		}
		else
			list->n++;

		if (*p == ',')
			p++;
	}

	*extra = list;
	return true;
}

static void
AssignAllowed(const char *newval, void *extra)
{
	const EltCidrList *list = extra;

	allowed_list = (list && list->n > 0) ? list : NULL;
}

static void
AssignDenied(const char *newval, void *extra)
{
	const EltCidrList *list = extra;

	denied_list = (list && list->n > 0) ? list : NULL;
}

/*
 * EltHttpDefineGucs
 *		Defines the GUCs of the delivery engine; called from _PG_init.
 *		The network lists are superuser-only: they decide what the server
 *		may reach on behalf of its users.
 */
void
EltHttpDefineGucs(void)
{
	DefineCustomStringVariable("elt.http_allowed_networks",
							   "Networks that HTTP delivery may reach even though they are internal.",
							   "Comma-separated CIDRs. Loopback, link-local, private, "
							   "multicast and reserved addresses are refused unless "
							   "listed here; elt.http_denied_networks wins over this list.",
							   &elt_http_allowed_networks,
							   "",
							   PGC_SUSET, 0,
							   CheckNetworks, AssignAllowed, NULL);

	DefineCustomStringVariable("elt.http_denied_networks",
							   "Networks that HTTP delivery may never reach.",
							   "Comma-separated CIDRs, refused in addition to the "
							   "built-in internal ranges, even when also listed in "
							   "elt.http_allowed_networks.",
							   &elt_http_denied_networks,
							   "",
							   PGC_SUSET, 0,
							   CheckNetworks, AssignDenied, NULL);

	DefineCustomIntVariable("elt.http_max_response_bytes",
							"Largest part of an HTTP response body that is kept.",
							"Longer bodies are read to the end (so the connection "
							"can be reused) but truncated to this size.",
							&elt_http_max_response_bytes,
							64 * 1024, 0, 16 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}
