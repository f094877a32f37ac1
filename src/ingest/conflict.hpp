/*
 * conflict.hpp — idempotent writes: a point that already exists in its table (docs/idempotency.md).
 *
 * Vocabulary:
 *   point key   the table's unique index on "_time" and other plain columns (its tags):
 *               immediate, no expressions, no predicate; the primary key when it qualifies,
 *               else the one with the fewest columns (PointKey in table_cache.hpp).
 *   policy      what a row does whose point exists (influx.on_conflict, or the table's own
 *               from influx.set_on_conflict()): error (an INSERT), merge (the columns the
 *               line carries are updated), replace (every column), skip (the row is left out).
 *   upsert      a row written by `INSERT ... ON CONFLICT (key) DO UPDATE / DO NOTHING`, run
 *               as a prepared statement for many rows at once (unnest of one array per
 *               column); PostgreSQL then does everything that statement does: triggers, row
 *               level security, partitions, constraints.
 *   shape       the columns a row's line gives values to; rows are grouped by shape, one
 *               statement per shape.
 *   pending     the points of rows taken but not yet in the table (buffered for the bulk
 *               path or waiting for their statement); a row whose point is pending makes
 *               them all go first, so that two rows of one point are applied in order.
 *
 * The writer (table_writer.cpp) probes the key before buffering a row for the bulk path:
 * rows whose point is new are bulk-inserted; the others become upserts, or are counted as
 * merged without a write when the merge would change nothing, or skipped.  Tables whose own
 * code must see the statement (triggers, foreign tables, row-level security with merge or
 * replace, volatile defaults) get every row as an upsert.
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/relcache.h"
}

#include "ingest/table_cache.hpp"

namespace influx
{

/* What a write did with its rows (the rejected ones are counted where they are rejected). */
struct RowCounts {
    int64 inserted; /* new rows */
    int64 merged;   /* rows written onto an existing point (merge, replace), or found equal */
    int64 skipped;  /* rows whose point existed, left out (skip) */

    RowCounts &operator+=(const RowCounts &o)
    {
        inserted += o.inserted;
        merged += o.merged;
        skipped += o.skipped;
        return *this;
    }
};

/* Reads the point key and the table's policy into a table info being built (table_cache). */
void LoadPointKey(Relation rel, TableInfo *info);

/* The policy for rows of the table (INFLUX_ON_CONFLICT_*); error when it has no point key. */
int ConflictPolicyFor(const TableInfo *info);

/* Name of a policy, for messages. */
const char *ConflictPolicyName(int policy);

/* A set of point hashes (the pending points of a write). */
struct KeySet {
    uint64 *slots; /* 0: empty */
    int mask;
    int count;
    MemoryContext cxt;
};

void KeySetInit(KeySet *set, MemoryContext cxt);
/* Adds a hash; false if it was there already (the caller writes what is pending first). */
bool KeySetAdd(KeySet *set, uint64 hash);
void KeySetClear(KeySet *set);

/*
 * influx.statement_rows(): the rows of the statement this process is running for a Citus
 * table (conflict.cpp), into the caller's tuplestore; an ERROR outside such a statement.
 */
void StatementRows(FunctionCallInfo fcinfo);

/*
 * Installs the planner hook that tells influx.statement_rows() when it is called while a
 * statement is being planned (an IMMUTABLE function in a default, folded by the planner):
 * it then refuses, as for any caller other than the statement's own scan.  Installed by the
 * first statement that serves rows, in the process that runs it (only there can a call be
 * served at all), not from _PG_init: Citus refuses to load after a library that set
 * planner_hook, so shared_preload_libraries = 'pg_influx,citus' would stop the server from
 * starting.  Installed in the middle of a planning, it counts from there: the statement's
 * depth and a call's are counted alike.
 */
void InstallStatementRowsGuard(void);

/* Hash of a row's point: its key columns' values in `slot` (the table's column order). */
uint64 PointHash(const TableInfo *info, TupleDesc desc, TupleTableSlot *slot);

/*
 * Whether every column of the table can be passed as an array (no composite type, an
 * array type for each): its statements then take many rows at once as INSERT ... SELECT
 * (which Citus writes through COPY, in a two-phase commit), not one row per INSERT ...
 * VALUES.
 */
bool UpsertsTakeArrays(const TableInfo *info);

/* Rows written as INSERT ... ON CONFLICT statements. */
struct Upserts;

Upserts *UpsertsCreate(Relation rel, TableInfo *info, int policy, MemoryContext cxt);

/*
 * Takes row `row` (its values in `slot`, in the table's column order; `is_set` says which
 * columns its line gave).  `exists`: an index probe found its point (counted as merged or
 * skipped when the statement does not insert it), false when not probed or not found.
 */
void UpsertsAdd(Upserts *u, int row, TupleTableSlot *slot, const bool *is_set, bool exists);

/*
 * True when rows are taken and the last of them gives other columns than `is_set`: a
 * writer that must keep line order (the table's code sees every row) writes them first.
 */
bool UpsertsOtherShape(const Upserts *u, const bool *is_set);

/* True when the rows taken should be written now (a size bound). */
bool UpsertsFull(const Upserts *u);

/*
 * Runs the statements for every row taken, then forgets them.  Raises the statement's
 * ERROR; *failed_row is then the row when a statement had only one, else -1.  Runs as the
 * current user, inside the caller's transaction and snapshot rules (READ COMMITTED: each
 * statement sees what committed before it).
 */
void UpsertsRun(Upserts *u, RowCounts *counts, volatile int *failed_row);

} // namespace influx
