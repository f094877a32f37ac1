/*
 * table_writer.hpp — inserting the rows of one group into one table, with the executor
 * machinery an INSERT would use.
 *
 * Vocabulary:
 *   target     a relation rows are physically written to: the table itself, or a leaf
 *              partition reached by tuple routing; each has its own ResultRelInfo, index
 *              set, bulk-insert state and buffer of slots.
 *   bulk path  rows are buffered per target and written with table_multi_insert (as COPY
 *              does), then indexes and AFTER ROW triggers are handled row by row.
 *   slow path  one row at a time (BEFORE ROW triggers, foreign tables, volatile column
 *              defaults, partitioned tables with transition tables): the same steps as
 *              INSERT, in the same order.
 *
 * Everything an INSERT does happens here too: column defaults for columns the line does
 * not mention, stored generated columns, NOT NULL and CHECK constraints, unique and
 * exclusion checks, partition routing and partition constraints, statement and row
 * triggers, foreign keys (RI triggers fire at the end of the "statement").
 *
 * Include after postgres.h.
 */
#pragma once

#include "core/report.hpp"
#include "ingest/batch.hpp"
#include "ingest/conflict.hpp"
#include "ingest/table_cache.hpp"

namespace influx
{

/* How far a write got; read by the caller after catching an ERROR. */
enum class WriteStage : int {
    Resolve, /* finding, creating, opening or checking the table */
    Setup,   /* executor setup, BEFORE STATEMENT triggers */
    Rows,    /* per-row work; `row` says which row when known */
    Finish,  /* AFTER triggers, constraint rechecks: the row is not known */
};

struct WriteProgress {
    WriteStage stage;
    int row;            /* index in the group, -1 when unknown */
    const char *column; /* set while a value is being converted, else NULL */
    bool merges;        /* the table has a conflict policy (merge, replace, skip) */
    bool optimistic;    /* ... and its rows were written without looking points up */
    int relations;      /* relations the write locked: the table, partitions, indexes */
    bool remote;        /* rows go to another server: a Citus table, a foreign table or partition */
    bool citus;         /* ... a Citus table */
    Oid table;          /* the table being written, InvalidOid before it is open */
};

/*
 * Inserts the rows [lo, hi) of a group that are not marked rejected into `rel` (opened and
 * locked with RowExclusiveLock by the caller, IdentityRefusal and SchemaRefusal checked)
 * for `writer` (rows it rejects are counted and reported to `report`): the columns a row
 * sets must be granted to it, row-level security policies
 * are chosen for it, and the table's own code runs as ActingUser (identity.hpp).  Values that do
 * not convert reject their row (counted, marked).  Built rows built for another `info` get their
 * line parsed again with `reparse` (tag and field arrays valid until its next call; false if the
 * line does not parse).  Returns what it did with the rows (conflict.hpp: rows whose point
 * exists are merged, skipped or rejected by the table's policy).  Raises an ERROR for anything the
 * table refuses (constraints, triggers, …); the caller isolates it with a subtransaction.  Must run
 * inside a transaction with an active snapshot; uses and leaves garbage in CurrentMemoryContext.
 */
typedef bool (*ReparseFn)(const BatchRow *row, Point *point);

/*
 * How a write under a merge, replace or skip policy finds the rows whose point exists:
 *   Probe       every row is looked up in the point key before it is buffered;
 *   Optimistic  unless the table's recent writes found existing points, rows are written
 *               with no lookup: a row whose point exists then fails the write with a
 *               unique violation, and the caller writes the rows again with Probe.
 */
enum class ConflictSearch { Probe, Optimistic };

RowCounts WriteRows(Relation rel, TableInfo *info, Oid writer, Reporter *report, BatchGroup *group,
                    int lo, int hi, volatile WriteProgress *progress, ReparseFn reparse,
                    ConflictSearch search);

} // namespace influx
