/*
 * compat.h
 *		The one place for PostgreSQL version differences.
 *
 * pg_elt targets PostgreSQL 15; shims for other majors go here and nowhere
 * else, so a port to a newer major touches one file.
 */
#ifndef ELT_COMPAT_H
#define ELT_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#error "pg_elt requires PostgreSQL 15 or later"
#endif

/* parse_analyze() was renamed in 15; 16+ keep the 15 spelling. */
#define EltParseAnalyze(raw, text) \
	parse_analyze_fixedparams((raw), (text), NULL, 0, NULL)

/* ExecInsertIndexTuples() of a plain insert; 16 added onlySummarizing. */
#if PG_VERSION_NUM >= 160000
#define EltInsertIndexTuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#else
#define EltInsertIndexTuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#endif

/*
 * table_tuple_update() that does not wait for a concurrent writer, and the
 * index entries it calls for: 16 turned update_indexes from a bool into an
 * enum (TU_Summarizing: only summarizing indexes) and ExecInsertIndexTuples()
 * got onlySummarizing. The index entries go in as an insert's: the update
 * flag would want the range table of an UPDATE statement, for a hint only.
 */
#if PG_VERSION_NUM >= 160000
typedef TU_UpdateIndexes EltIndexUpdate;
#define EltIndexesNeedUpdate(u) ((u) != TU_None)
#define EltUpdateIndexTuples(rri, slot, estate, u) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, (u) == TU_Summarizing)
#else
typedef bool EltIndexUpdate;
#define EltIndexesNeedUpdate(u) (u)
#define EltUpdateIndexTuples(rri, slot, estate, u) \
	EltInsertIndexTuples((rri), (slot), (estate))
#endif
#define EltTableTupleUpdate(rel, tid, slot, cid, tmfd, lockmode, u) \
	table_tuple_update((rel), (tid), (slot), (cid), InvalidSnapshot, InvalidSnapshot, \
					   false, (tmfd), (lockmode), (u))

#endif							/* ELT_COMPAT_H */
