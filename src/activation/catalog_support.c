/*
 * catalog_support.c
 *		C helpers of the activation catalog functions: who called, what type
 *		an expression over a source row has (checked as a given role), and
 *		whether a secret reference resolves.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "activation/activation.h"

PG_FUNCTION_INFO_V1(elt_invoker);
PG_FUNCTION_INFO_V1(elt_expr_type);
PG_FUNCTION_INFO_V1(elt_check_secret_ref);

/*
 * elt_invoker
 *		The role in effect outside any SECURITY DEFINER function: the session
 *		user, or the role chosen with SET ROLE. SECURITY DEFINER catalog
 *		functions record it as the owner of what they create.
 */
Datum
elt_invoker(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}

/*
 * elt_expr_type
 *		The type of an expression over row r of source, found by planning
 *		SELECT (expr) FROM source AS r LIMIT 0 as role as_role, read-only and
 *		in a restricted security context: the role must be able to read the
 *		source, and nothing is executed.
 */
Datum
elt_expr_type(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			role = PG_GETARG_OID(2);
	char	   *query;
	Oid			saved_user;
	int			saved_sec;
	Oid			result;

	query = psprintf("SELECT (\n%s\n) FROM %s AS r LIMIT 0",
					 expr, EltQualifiedRelation(relid));

	SPI_connect();
	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(role, saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		if (SPI_execute(query, true, 0) != SPI_OK_SELECT)
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("expression is not a single value"),
					 errdetail("The expression was: %s", expr),
					 errhint("Give an expression over the source row r, not a statement.")));
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec);
	}
	PG_END_TRY();
	if (SPI_tuptable->tupdesc->natts != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("expression is not a single value"),
				 errdetail("The expression was: %s", expr),
				 errhint("Give an expression over the source row r, not a list.")));
	result = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	SPI_finish();
	PG_RETURN_OID(result);
}

/*
 * elt_check_secret_ref
 *		Errors out unless an env:/file: reference may be used by role and
 *		resolves now; the secret itself is never returned.
 */
Datum
elt_check_secret_ref(PG_FUNCTION_ARGS)
{
	char	   *ref = text_to_cstring(PG_GETARG_TEXT_PP(0));

	EltCheckSecretRef(ref, PG_GETARG_OID(1));
	PG_RETURN_VOID();
}
