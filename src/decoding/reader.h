/*
 * reader.h
 *		The streaming worker's slot reader (reader.c).
 */
#ifndef ELT_DECODING_READER_H
#define ELT_DECODING_READER_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "access/xlogdefs.h"
#include "utils/tuplestore.h"

extern Tuplestorestate *EltReaderRead(const char *slot, const char *spec, int64 max_lines,
									  TupleDesc line_desc, XLogRecPtr *end);
extern void EltReaderConfirm(XLogRecPtr lsn);
extern void EltReaderClose(void);

#endif							/* ELT_DECODING_READER_H */
