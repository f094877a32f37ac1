/*
 * batch.hpp — the pending batch: parsed rows waiting to be inserted, grouped by measurement.
 *
 * Vocabulary:
 *   chunk   a block of complete lines handed to the insert path; its bytes are copied into
 *           the batch, and every row points into that copy (no per-value copies).
 *   row     one parsed point kept for insertion: its tag and field arrays (copied out of the
 *           parser, whose arrays are reused for the next line) and its timestamp; or, for a
 *           built row, the column values themselves (see below).
 *   built   a row converted while it was parsed, against the cached description of its
 *           table (row_builder.hpp BuildRow): the flush copies its values into a slot
 *           instead of mapping and converting every tag and field of a line that is no
 *           longer in the CPU cache.  Valid only while that description is the table's
 *           current one; otherwise the flush parses the line again, row by row, when it
 *           writes it (intake.cpp ReparseRow).
 *   group   the rows of one measurement, in arrival order; one group becomes one target
 *           table at flush time (the name → table lookup needs a transaction, parsing
 *           does not).
 *   batch   all groups collected since the last flush; it lives in one memory context that
 *           is reset after each flush.
 *
 * PostgreSQL-facing (palloc), C-style: no objects with destructors.  Include
 * line_protocol.hpp (C++ headers) before postgres.h, and this header after it.
 */
#pragma once

#include "protocol/line_protocol.hpp"

namespace influx
{

struct BatchRow {
    const Tag *tags; /* NULL (and ntags, nfields 0) for a built row */
    const Field *fields;
    uint32_t ntags;
    uint32_t nfields;
    const Datum *values; /* built row: nvalues Datums, then their nvalues column indexes
                          * (int16, attnum - 1); else NULL */
    int64_t time_ns;     /* Unix time in nanoseconds (server time when the line had none) */
    const char *line;    /* the line: for error messages, and to parse a built row again */
    uint32_t line_len;
    uint32_t request;  /* its request's tally (requests.hpp), 0 if none */
    uint16_t nvalues;  /* built row: columns it gives a value */
    bool rejected;     /* a value did not convert; never retried, counted once */
    uint8_t precision; /* of its line's timestamp (Precision): a handed-back line keeps it */
};

struct BatchGroup {
    char measurement[NAMEDATALEN]; /* unescaped, NUL-terminated */
    uint32_t hash;
    BatchRow *rows;
    int nrows;
    int capacity;
    BatchGroup *next_in_bucket;
    Oid schema_relid;   /* the table a worker's schema pass gave all columns (tables.cpp) */
    bool build_checked; /* build_info was looked up for this batch */
    const struct TableInfo *build_info; /* what built rows were converted against, or NULL */
    struct BuildMemo *build_memo;       /* BuildRow's lookups from the previous row */
    int build_refusals;                 /* lines BuildRow refused in a row */
    int unbuilt;                        /* rows added as parsed keys and values (BatchAddRow) */
    bool parked;      /* this flush attempt hands its rows back: the table was locked (tables.cpp
                         OpenTable) */
    int isolate_span; /* > 0: isolated attempts write at most this many rows per
                         subtransaction (a range left one half begun: insert.cpp) */
    int half_begun_attempts; /* attempts that narrowed or rejected a range of this group after
                                a half-begun subtransaction (insert.cpp) */
};

struct Batch {
    MemoryContext cxt;
    BatchGroup **groups; /* in order of first appearance */
    int ngroups;
    int groups_capacity;
    BatchGroup **buckets; /* hash of groups by measurement */
    int nbuckets;
    BatchGroup *last; /* the group of the previous row: consecutive lines usually share it */
    size_t nrows;
    uint32_t request;  /* the tally rows being added belong to (BatchRow.request) */
    uint8_t precision; /* the precision of the lines being added (BatchRow.precision) */
};

/* Creates an empty batch whose memory lives in a new child of `parent`. */
void BatchInit(Batch *batch, MemoryContext parent);

/* Forgets all rows and frees their memory (the context is reset, not deleted). */
void BatchReset(Batch *batch);

/* Copies `size` bytes into the batch and returns the copy (rows may point into it). */
char *BatchCopyBytes(Batch *batch, const char *data, size_t size);

/* The group of `measurement` (unescaped, at most NAMEDATALEN-1 bytes), created if new. */
BatchGroup *BatchFindGroup(Batch *batch, const char *measurement, size_t measurement_len);

/* The group of `measurement` if the batch has one, else NULL. */
BatchGroup *BatchLookupGroup(Batch *batch, const char *measurement, size_t measurement_len);

/*
 * Appends a parsed point to a group.  The point's tag and field arrays are copied; their
 * slices must already point into memory owned by the batch.
 */
void BatchAddRow(Batch *batch, BatchGroup *g, const Point &point, int64_t time_ns, const char *line,
                 size_t line_len);

/* Appends a built row (values allocated in the batch's context) to a group. */
void BatchAddBuiltRow(Batch *batch, BatchGroup *g, const Datum *values, int nvalues,
                      int64_t time_ns, const char *line, size_t line_len);

/*
 * Whether every row of the group was built against `info` (not NULL): then each of their
 * keys has a column in it, and there is no column to add for them.
 */
inline bool BatchGroupBuiltFor(const BatchGroup *g, const struct TableInfo *info)
{
    return info != nullptr && g->build_info == info && g->unbuilt == 0;
}

} // namespace influx
