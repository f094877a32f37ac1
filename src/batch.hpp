/*
 * batch.hpp — the pending batch: parsed rows waiting to be inserted, grouped by measurement.
 *
 * Vocabulary:
 *   chunk   a block of complete lines handed to the insert path; its bytes are copied into
 *           the batch, and every row points into that copy (no per-value copies).
 *   row     one parsed point kept for insertion: its tag and field arrays (copied out of the
 *           parser, whose arrays are reused for the next line) and its timestamp.
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

#include "line_protocol.hpp"

namespace influx
{

struct BatchRow {
    const Tag *tags;
    const Field *fields;
    uint32_t ntags;
    uint32_t nfields;
    int64_t time_ns;  /* Unix time in nanoseconds (server time when the line had none) */
    const char *line; /* the line, for error messages */
    uint32_t line_len;
    bool rejected; /* a value did not convert; never retried, counted once */
};

struct BatchGroup {
    char measurement[NAMEDATALEN]; /* unescaped, NUL-terminated */
    uint32_t hash;
    BatchRow *rows;
    int nrows;
    int capacity;
    BatchGroup *next_in_bucket;
    Oid schema_relid; /* the table a worker's schema pass gave all columns (insert.cpp) */
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
};

/* Creates an empty batch whose memory lives in a new child of `parent`. */
void BatchInit(Batch *batch, MemoryContext parent);

/* Forgets all rows and frees their memory (the context is reset, not deleted). */
void BatchReset(Batch *batch);

/* Copies `size` bytes into the batch and returns the copy (rows may point into it). */
char *BatchCopyBytes(Batch *batch, const char *data, size_t size);

/*
 * Appends a parsed point to the group of `measurement` (unescaped, at most NAMEDATALEN-1
 * bytes).  The point's tag and field arrays are copied; their slices must already point
 * into memory owned by the batch.
 */
void BatchAddRow(Batch *batch, const char *measurement, size_t measurement_len, const Point &point,
                 int64_t time_ns, const char *line, size_t line_len);

} // namespace influx
