/*
 * json_read.c
 *		Reads values out of JSON text with jansson: the destination's id in a
 *		create response, and the values of a key. Kept apart from files that
 *		include utils/builtins.h, whose json_* names clash with jansson's.
 */
#include "postgres.h"

#include <jansson.h>

#include "lib/stringinfo.h"

#include "activation/activation.h"

/*
 * Resolve
 *		The value at an RFC 6901 pointer below root, as palloc'd text
 *		(strings unquoted, numbers as written), or NULL if absent or not a
 *		scalar. With index >= 0 and a top-level array (or an object whose only
 *		member holds the records), the pointer applies to element index.
 */
static char *
Resolve(json_t *root, const char *pointer, int index)
{
	json_t	   *cur = root;
	const char *p = pointer;

	if (index >= 0)
	{
		if (json_is_object(cur) && json_object_size(cur) == 1)
		{
			void	   *it = json_object_iter(cur);

			cur = json_object_iter_value(it);
		}
		cur = json_is_array(cur) ? json_array_get(cur, index) : NULL;
	}
	while (cur && *p == '/')
	{
		StringInfoData tok;

		initStringInfo(&tok);
		for (p++; *p && *p != '/'; p++)
		{
			if (p[0] == '~' && p[1] == '0')
				appendStringInfoChar(&tok, '~'), p++;
			else if (p[0] == '~' && p[1] == '1')
				appendStringInfoChar(&tok, '/'), p++;
			else
				appendStringInfoChar(&tok, *p);
		}
		if (json_is_object(cur))
			cur = json_object_get(cur, tok.data);
		else if (json_is_array(cur) && tok.len > 0 && strspn(tok.data, "0123456789") == tok.len)
			cur = json_array_get(cur, strtol(tok.data, NULL, 10));
		else
			cur = NULL;
		pfree(tok.data);
	}
	if (cur && json_is_string(cur))
		return pstrdup(json_string_value(cur));
	if (cur && json_is_integer(cur))
		return psprintf("%lld", (long long) json_integer_value(cur));
	if (cur && json_is_real(cur))
		return psprintf("%.17g", json_real_value(cur));
	return NULL;
}

/*
 * EltJsonPointer
 *		The value at a JSON pointer in a document (see Resolve).
 */
char *
EltJsonPointer(const char *json, const char *pointer, int index)
{
	json_error_t err;
	json_t	   *root;
	char	   *result;

	if (json == NULL || pointer == NULL)
		return NULL;
	root = json_loads(json, JSON_DECODE_ANY, &err);
	if (root == NULL)
		return NULL;
	result = Resolve(root, pointer, index);
	json_decref(root);
	return result;
}

/*
 * EltJsonPointerEach
 *		The value at a JSON pointer for each of the first n records of a
 *		batch response, parsing the response once (a batch of n records
 *		would otherwise parse it n times). Returns n entries, NULL where
 *		absent; all NULL if the response is not JSON.
 */
char **
EltJsonPointerEach(const char *json, const char *pointer, int n)
{
	char	  **values = palloc0(sizeof(char *) * Max(n, 1));
	json_error_t err;
	json_t	   *root;

	if (json == NULL || pointer == NULL)
		return values;
	root = json_loads(json, JSON_DECODE_ANY, &err);
	if (root == NULL)
		return values;
	for (int i = 0; i < n; i++)
		values[i] = Resolve(root, pointer, i);
	json_decref(root);
	return values;
}

/*
 * EltKeyPath
 *		The key values of a key (a JSON array) joined by ',', as {key} in an
 *		endpoint path shows them.
 */
char *
EltKeyPath(const char *key_json)
{
	json_error_t err;
	json_t	   *root = json_loads(key_json, JSON_DECODE_ANY, &err);
	StringInfoData buf;
	size_t		i;
	json_t	   *v;

	initStringInfo(&buf);
	if (root == NULL)
		return buf.data;
	json_array_foreach(root, i, v)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (json_is_string(v))
			appendStringInfoString(&buf, json_string_value(v));
		else if (json_is_integer(v))
			appendStringInfo(&buf, "%lld", (long long) json_integer_value(v));
		else if (json_is_real(v))
			appendStringInfo(&buf, "%.17g", json_real_value(v));
		else if (json_is_true(v) || json_is_false(v))
			appendStringInfoString(&buf, json_is_true(v) ? "true" : "false");
	}
	json_decref(root);
	return buf.data;
}
