/*
 * extension_lock.c
 *		Keeps DROP EXTENSION from deadlocking with a step of the worker.
 *
 * DROP EXTENSION locks the extension first, then each of its tables as it
 * drops them; a worker step locks the tables it touches in its own order.
 * Each step therefore first takes a shared lock on the extension: a DROP
 * waits for the step to commit before it locks any table, and a step that
 * comes after a DROP waits for it, then finds the extension gone.
 */
#include "postgres.h"

#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/lmgr.h"

#include "worker/worker.h"

/*
 * EltLockExtension
 *		Takes the transaction's shared lock on the pg_elt extension; false
 *		if it is not installed (or was dropped while we waited).
 */
bool
EltLockExtension(void)
{
	Oid			ext = get_extension_oid("pg_elt", true);

	if (!OidIsValid(ext))
		return false;
	LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
	return OidIsValid(get_extension_oid("pg_elt", true));
}
