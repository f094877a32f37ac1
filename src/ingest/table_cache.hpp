/*
 * table_cache.hpp — per-process caches of what the insert path needs to know about target
 * tables, kept across transactions and invalidated by PostgreSQL's invalidation messages.
 *
 * Vocabulary:
 *   measurement table   <schema>.<measurement>, one per measurement.
 *   table info          the derived description of one table (TableInfo): which column
 *                       receives the time, which receive tags and fields by name, how each
 *                       column's values are converted.  Keyed by relation OID.
 *   name map            (schema OID, measurement) → relation OID, with negative entries for
 *                       measurements that have no table, so an unknown measurement costs a
 *                       catalog lookup once, not once per batch.
 *
 * Invalidation: a relcache callback marks a table info stale (every entry on a cache reset,
 * relid == InvalidOid); syscache callbacks on pg_class names (RELNAMENSP) and schemas
 * (NAMESPACEOID) throw the whole name map away.  Callbacks only set flags; rebuilding
 * happens on the next use, after the caller has locked the table (taking the lock is what
 * processes pending invalidations), so an entry used under the lock is current.
 *
 * Entries never hold Relation pointers, slots or anything else owned by a transaction.
 * A table info stays readable until TableCacheEndOfBatch(), even if it was rebuilt
 * meanwhile.
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "fmgr.h"
#include "pg_config_manual.h"
#include "utils/relcache.h"
}

namespace influx
{

/* How values are turned into Datums for a column (see convert.hpp). */
enum class ColumnKind : uint8 {
    Float8,
    Float4,
    Int8,
    Int4,
    Int2,
    Numeric,
    Bool,
    Text, /* text, varchar without length limit */
    Jsonb,
    TimestampTz,
    Timestamp,
    Other /* anything else: the type's input function on the value's text form */
};

/* What a column receives. */
enum class ColumnRole : uint8 {
    Value,  /* the tag or field of the same name */
    Time,   /* "_time": the point's timestamp */
    Tags,   /* "_tags" (jsonb): tags that have no column */
    Fields, /* "_fields" (jsonb): fields that have no column */
};

struct ColumnInfo {
    char name[NAMEDATALEN];
    uint8 name_len;
    bool assignable; /* false: generated, or identity GENERATED ALWAYS (never given a value) */
    ColumnKind kind;
    ColumnRole role;
    AttrNumber attnum;
    Oid typid;
    int32 typmod;
    Oid typioparam;
    FmgrInfo input; /* the type's input function (used for ColumnKind::Other) */
};

/*
 * A table's point key (conflict.hpp): the unique index that identifies a point, on "_time"
 * and other plain columns, immediate, without expressions or predicate.  index is
 * InvalidOid when the table has none.
 */
struct PointKey {
    Oid index;
    int ncols;
    int16 cols[INDEX_MAX_KEYS]; /* column indexes (attnum - 1), in index order */
    bool nulls_not_distinct;
};

struct ConflictPlan; /* conflict.cpp */

struct TableInfo {
    Oid relid;
    MemoryContext cxt;   /* holds this info and nothing else */
    int natts;           /* attributes in the tuple descriptor, dropped ones included */
    ColumnInfo *columns; /* one per attribute: columns[attnum - 1]; dropped ones unused */
    int16 *name_slots;   /* open-addressing hash of assignable columns by name: index or -1 */
    int name_mask;
    int time_column;       /* index of "_time", or -1 */
    int tags_column;       /* index of "_tags" (jsonb), or -1 */
    int fields_column;     /* index of "_fields" (jsonb), or -1 */
    bool time_unsupported; /* "_time" exists but is not timestamptz, timestamp or bigint */
    bool distributed;      /* a Citus table (citus.hpp): rows only through SQL statements */
    PointKey key;
    int on_conflict;     /* influx.set_on_conflict() for this table (INFLUX_ON_CONFLICT_*), or -1 */
    ConflictPlan *plans; /* prepared INSERT ... ON CONFLICT statements (conflict.cpp) */
    int probe_writes;    /* first attempts still to probe every row (table_writer.cpp) */
    int16 *may_default;  /* indexes of the columns that may have a default: their own, an
                          * identity, or their domain's (which can change without notice) */
    int nmay_default;
};

/* Once per process: memory context and invalidation callbacks. */
void TableCacheInit(void);

/* OID of a schema by name (cached); InvalidOid if there is no such schema. */
Oid TableCacheSchemaOid(const char *schema);

/* OID of <nspid>.<name> (any relation kind), InvalidOid if none (cached, negatives too). */
Oid TableCacheLookup(Oid nspid, const char *name);

/* The table info of a relation the caller has opened and locked; rebuilt when stale. */
TableInfo *TableCacheGet(Relation rel);

/*
 * The table info of <schema>.<name> when the caches already hold a valid one, else NULL.
 * Never touches the catalog, so it may be called outside a transaction (while parsing).
 * Valid as of the invalidations processed so far: the flush compares it with
 * TableCacheGet() under the table's lock before relying on it.
 */
const TableInfo *TableCachePeek(const char *schema, const char *name);

/* Index of the assignable column named name[0..len), or -1. */
int TableInfoFindColumn(const TableInfo *info, const char *name, size_t len);

/* After a batch: frees infos that were replaced or invalidated.  Outside any use. */
void TableCacheEndOfBatch(void);

} // namespace influx
