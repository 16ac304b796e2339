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

#endif							/* ELT_COMPAT_H */
