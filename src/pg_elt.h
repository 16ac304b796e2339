/*
 * pg_elt.h
 *		Declarations shared by every component of pg_elt.
 */
#ifndef PG_ELT_H
#define PG_ELT_H

#include "postgres.h"

#define ELT_USER_AGENT "pg_elt/" ELT_VERSION

/*
 * The longest key (its values as a JSON array) a sync keeps: the bookkeeping
 * and the stage index keys, and a btree entry holds at most ~2.7 kB.
 */
#define ELT_KEY_MAX_BYTES 2600

/* True when the library was loaded through shared_preload_libraries. */
extern bool elt_preloaded;

/* GUCs owned by the core */
extern int	elt_history_retention_minutes;

extern void EltRequirePreload(const char *feature);

#endif							/* PG_ELT_H */
