/*
 * tables.cpp — the tables a batch's rows go to: the measurement-name lock, creation through
 * influx.create_measurement_table() (bounded by influx.max_tables) and new columns through
 * influx.add_measurement_columns() (the schema pass), opening and locking (with hand-back
 * of tables another session holds), and the checks of the writer's privileges.  See
 * insert_path.hpp for how the insert path is split.
 */
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "catalog/heap.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

#include "core/report.hpp"
#include "core/settings.hpp"
#include "ingest/identity.hpp"
#include "ingest/insert_path.hpp"
#include "ipc/chunk.hpp"

namespace influx
{
namespace insert_path
{

/* objsubid of the measurement-name locks in pg_locks (LockMeasurementName). */
constexpr uint16 kMeasurementLockKind = 0x4848;

/* Keys of a group as text[] arrays for the hooks: tags, fields and field types. */
struct KeySets {
    ArrayBuildState *tags;
    ArrayBuildState *fields;
    ArrayBuildState *types;
    int count;
};

/*
 * Collects the distinct tag and field keys of rows [lo, hi) that have no column in
 * `info` (every key when info is NULL).  A key that is both a tag and a field becomes a
 * field (the field's value wins, see docs/mapping.md).  Keys longer than 63 bytes cannot
 * be columns and are left out.
 */
void CollectKeys(BatchGroup *g, int lo, int hi, const TableInfo *info, KeySets *keys)
{
    HTAB *seen = nullptr; /* made for the first key without a column */
    memset(keys, 0, sizeof(*keys));

    /* Fields first, so that a key used as both is typed by its field. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = lo; i < hi; i++) {
            BatchRow *row = &g->rows[i];
            if (row->rejected)
                continue;
            CHECK_FOR_INTERRUPTS();
            Point point;
            point.tags = row->tags;
            point.ntags = row->ntags;
            point.fields = row->fields;
            point.nfields = row->nfields;
            if (row->values != nullptr) {
                /* Built for `info`: a column for every key.  Built for another: parse. */
                if (info == g->build_info || !ReparseRow(row, &point))
                    continue;
            }
            uint32 n = pass == 0 ? point.nfields : point.ntags;
            for (uint32 k = 0; k < n; k++) {
                const Text &key = pass == 0 ? point.fields[k].key : point.tags[k].key;
                char name[NAMEDATALEN];
                if (UnescapedSize(key) >= NAMEDATALEN || memchr(key.data, '\0', key.size))
                    continue;
                size_t len = Unescape(key, name);
                name[len] = '\0';
                /* Not _time, and no system column (xmin, ctid, ...): no table could have it. */
                if (strcmp(name, "_time") == 0 || SystemAttributeByName(name) != nullptr)
                    continue;
                if (info != nullptr && TableInfoFindColumn(info, name, len) >= 0)
                    continue;
                if (seen == nullptr) {
                    HASHCTL ctl;
                    memset(&ctl, 0, sizeof(ctl));
                    ctl.keysize = NAMEDATALEN;
                    ctl.entrysize = NAMEDATALEN + sizeof(int);
                    ctl.hcxt = CurrentMemoryContext;
                    seen = hash_create("influx keys", 64, &ctl,
                                       HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
                }
                bool found;
                hash_search(seen, name, HASH_ENTER, &found);
                if (found)
                    continue;
                Datum d = CStringGetTextDatum(name);
                if (pass == 0) {
                    keys->fields =
                        accumArrayResult(keys->fields, d, false, TEXTOID, CurrentMemoryContext);
                    Datum t = CStringGetTextDatum(FieldTypeName(point.fields[k].type));
                    keys->types =
                        accumArrayResult(keys->types, t, false, TEXTOID, CurrentMemoryContext);
                } else {
                    keys->tags =
                        accumArrayResult(keys->tags, d, false, TEXTOID, CurrentMemoryContext);
                }
                keys->count++;
            }
        }
    }
}

/*
 * Takes a transaction-level lock on a measurement name in a schema, for creating its
 * table.  It shows in pg_locks as an advisory lock on (schema oid, name hash) with
 * objsubid 18504 ('HH' in hex, apart from pg_advisory_lock's 1 and 2).  Processes
 * invalidations once it is granted, so that a table the previous holder made is seen.
 */
void LockMeasurementName(Oid nspid, const char *name)
{
    LOCKTAG tag;
    uint32 hash = hash_bytes(reinterpret_cast<const unsigned char *>(name), strlen(name));
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, nspid, hash, kMeasurementLockKind);
    (void) LockAcquire(&tag, ExclusiveLock, false, false);
    AcceptInvalidationMessages();
}

/* A text[] Datum of collected keys ('{}' when there were none). */
Datum KeyArray(ArrayBuildState *state)
{
    if (state == nullptr)
        return PointerGetDatum(construct_empty_array(TEXTOID));
    return makeArrayResult(state, CurrentMemoryContext);
}

/*
 * influx.max_tables: whether the schema holds that many tables (ordinary, partitioned and
 * foreign, partitions included) already, so that lines naming new measurements create no
 * more.  Counting scans pg_class, so far below the limit (under half of it) a count up to
 * a second old, plus the tables this process created since, is enough.  From half the
 * limit on, creators take turns (a transaction-level lock per schema, held until the
 * creation commits) and count afresh each time, so the limit is exact.  A "reached" answer
 * is reused for a second: a sender inventing a name per line costs one scan a second.
 */
struct TableCount {
    Oid nspid;
    int count;
    TimestampTz at;
};
TableCount table_count = {InvalidOid, 0, 0};

/* objsubid of the lock creators near influx.max_tables take turns on (pg_locks). */
constexpr uint16 kTableCountLockKind = 0x4849;

int CountTables(Oid nspid)
{
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_class_relnamespace, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(nspid));
    Relation pg_class = table_open(RelationRelationId, AccessShareLock);
    SysScanDesc scan = systable_beginscan(pg_class, InvalidOid, false, nullptr, 1, &key);
    int count = 0;
    HeapTuple tup;
    while ((tup = systable_getnext(scan)) != nullptr) {
        char kind = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relkind;
        if (kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE ||
            kind == RELKIND_FOREIGN_TABLE)
            count++;
    }
    systable_endscan(scan);
    table_close(pg_class, AccessShareLock);
    return count;
}

bool TableLimitReached(Oid nspid, char *reason, size_t size)
{
    int limit = influx_max_tables;
    if (limit <= 0)
        return false;
    TimestampTz now = GetCurrentTimestamp();
    bool fresh =
        table_count.nspid == nspid && !TimestampDifferenceExceeds(table_count.at, now, 1000);
    int half = limit / 2;
    if (!fresh || (table_count.count >= half && table_count.count < limit)) {
        bool near = table_count.nspid == nspid && table_count.count >= half;
        LOCKTAG tag;
        SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, nspid, 0, kTableCountLockKind);
        if (near)
            (void) LockAcquire(&tag, ExclusiveLock, false, false);
        int count = CountTables(nspid);
        if (!near && count >= half) {
            (void) LockAcquire(&tag, ExclusiveLock, false, false);
            count = CountTables(nspid);
        }
        table_count = {nspid, count, now};
    }
    if (table_count.count < limit)
        return false;
    pg_snprintf(reason, size,
                "the schema holds %d tables, influx.max_tables allows %d: no table is created",
                table_count.count, limit);
    return true;
}

/* A table this process created counts at once, before the next scan. */
void CountCreatedTable(Oid nspid)
{
    if (table_count.nspid == nspid)
        table_count.count++;
}

/*
 * Calls influx.create_measurement_table(schema, measurement, tags, fields, types) through
 * SPI with parameters (no SQL text is built from incoming data) and returns the table it
 * reports.  Errors propagate: the caller's isolation turns them into rejected rows.
 */
Oid CreateTable(const char *schema, Oid nspid, BatchGroup *g, int lo, int hi)
{
    /*
     * Two processes creating the same table would both pass IF NOT EXISTS and one would
     * fail on the catalog's unique index.  Creators of one name take turns instead; the
     * one that waited finds the table made by the other.
     */
    LockMeasurementName(nspid, g->measurement);
    Oid existing = TableCacheLookup(nspid, g->measurement);
    if (OidIsValid(existing))
        return existing;

    KeySets keys;
    CollectKeys(g, lo, hi, nullptr, &keys);
    Oid argtypes[5] = {NAMEOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
    Datum args[5] = {
        DirectFunctionCall1(namein, CStringGetDatum(schema)),
        CStringGetTextDatum(g->measurement),
        KeyArray(keys.tags),
        KeyArray(keys.fields),
        KeyArray(keys.types),
    };
    SPI_connect();
    int rc = SPI_execute_with_args("SELECT influx.create_measurement_table($1, $2, $3, $4, $5)", 5,
                                   argtypes, args, nullptr, false, 1);
    Oid relid = InvalidOid;
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull)
            relid = DatumGetObjectId(d);
    }
    SPI_finish();
    CommandCounterIncrement();
    if (OidIsValid(relid))
        CountCreatedTable(nspid);
    return relid;
}

/*
 * influx.add_columns: calls influx.add_measurement_columns(table, tags, fields, types) for
 * the keys of [lo, hi) that have no column yet, in a subtransaction of its own — if it
 * fails (e.g. the role does not own the table), the rows are still inserted without the
 * new columns.  Returns true if columns may have been added.
 */
bool AddColumns(Oid relid, const TableInfo *info, BatchGroup *g, int lo, int hi)
{
    KeySets keys;
    CollectKeys(g, lo, hi, info, &keys);
    if (keys.count == 0)
        return false;

    Oid argtypes[4] = {REGCLASSOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
    Datum args[4] = {ObjectIdGetDatum(relid), KeyArray(keys.tags), KeyArray(keys.fields),
                     KeyArray(keys.types)};
    char message[INFLUX_ERROR_TEXT];
    int sqlstate = 0;
    bool ok = InSubtransaction(
        CurrentMemoryContext,
        [&]() {
            SPI_connect();
            SPI_execute_with_args("SELECT influx.add_measurement_columns($1, $2, $3, $4)", 4,
                                  argtypes, args, nullptr, false, 1);
            SPI_finish();
        },
        &sqlstate, message, sizeof(message));
    if (!ok) {
        /* A lock or statement timeout, a cancel: the whole flush is tried again, columns too. */
        if (ErrorIsTransient(sqlstate))
            RaiseAgain(sqlstate, message);
        Problem(reporter, kErrors, 0, "could not add columns to \"%s\": %s",
                LogName(g->measurement), message);
    }
    if (ok)
        CommandCounterIncrement();
    return ok;
}

/*
 * A table still locked by another session after this long is handed back; a shorter
 * conflict (another worker creating a table, a quick ALTER) is waited out, as any INSERT
 * would.
 */
constexpr int kHandBackAfterMs = 1000;

/* Takes RowExclusiveLock on a table if it can within `ms`; false (not taken) otherwise. */
bool LockWithin(Oid relid, int ms)
{
    constexpr int kStepMs = 10;
    for (int waited = 0;; waited += kStepMs) {
        if (ConditionalLockRelationOid(relid, RowExclusiveLock))
            return true;
        if (waited >= ms)
            return false;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kStepMs,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

/*
 * Handback bytes of rows [lo, hi) of a group: their lines, each with '\n', in one record
 * per run of rows of one request, or of no request and one precision (insert.cpp
 * WriteHandback).
 */
size_t GroupLineBytes(BatchGroup *g, int lo, int hi)
{
    size_t n = 0;
    bool first = true;
    uint32 request = 0;
    uint8 precision = 0;
    for (int i = lo; i < hi; i++) {
        const BatchRow *row = &g->rows[i];
        if (row->rejected)
            continue;
        if (first || row->request != request || (row->request == 0 && row->precision != precision))
            n += RecordBytes(row->request != 0, 0);
        first = false;
        request = row->request;
        precision = row->precision;
        n += row->line_len + 1;
    }
    return n;
}

/*
 * Finds (or creates) and opens the group's table with RowExclusiveLock.  Locking processes
 * pending invalidations, so afterwards the name map is asked again: if the name now leads
 * elsewhere (renamed, dropped and re-created), start over.  NULL when the rows were
 * rejected (counted).
 */
Relation OpenTable(const FlushOptions *opts, Oid nspid, BatchGroup *g, int lo, int hi)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        Oid relid = TableCacheLookup(nspid, g->measurement);
        bool created = false;
        if (!OidIsValid(relid)) {
            if (!opts->create_tables) {
                char reason[NAMEDATALEN * 5 + 64];
                pg_snprintf(reason, sizeof(reason),
                            "no table \"%s.%s\" and influx.create_tables is off", opts->schema,
                            LogName(g->measurement));
                RejectRange(g, lo, hi, kRowsRejectedTable, reason);
                return nullptr;
            }
            char limit[128];
            if (TableLimitReached(nspid, limit, sizeof(limit))) {
                RejectRange(g, lo, hi, kRowsRejectedTable, limit);
                return nullptr;
            }
            relid = CreateTable(opts->schema, nspid, g, lo, hi);
            if (!OidIsValid(relid)) {
                RejectRange(g, lo, hi, kRowsRejectedTable,
                            "influx.create_measurement_table() returned NULL");
                return nullptr;
            }
            created = true;
        }

        char relkind = get_rel_relkind(relid);
        if (relkind == '\0')
            continue; /* dropped since the lookup */
        if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
            relkind != RELKIND_FOREIGN_TABLE) {
            RejectRange(g, lo, hi, kRowsRejectedTable,
                        "not a table (only tables, partitioned and foreign tables receive rows)");
            return nullptr;
        }
        Relation rel;
        if (may_park && !created) {
            /*
             * Another session holding the table (LOCK TABLE, VACUUM FULL, a slow ALTER)
             * must not hold up the other tables' rows: if there is room, this group's
             * lines are handed back to the listener, which sends them again a moment later.
             */
            if (!LockWithin(relid, kHandBackAfterMs)) {
                /* All the group's rows: WriteHandback writes them all, whatever range. */
                size_t need = GroupLineBytes(g, 0, g->nrows);
                if (park_bytes + need > hooks->handback_capacity) {
                    LockRelationOid(relid, RowExclusiveLock); /* too many: wait, as before */
                } else if (!hooks->handback_writable()) {
                    /* The last lines handed back are not taken yet: try again shortly. */
                    ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                                    errmsg("table \"%s\" is locked by another session",
                                           LogName(g->measurement))));
                } else {
                    park_bytes += need;
                    g->parked = true;
                    return nullptr;
                }
            }
            rel = try_table_open(relid, NoLock);
            if (rel == nullptr) {
                UnlockRelationOid(relid, RowExclusiveLock);
                continue;
            }
        } else {
            rel = try_table_open(relid, RowExclusiveLock);
            if (rel == nullptr)
                continue;
        }
        if (created || TableCacheLookup(nspid, g->measurement) == relid)
            return rel;
        table_close(rel, RowExclusiveLock);
    }
    RejectRange(g, lo, hi, kRowsRejectedTable, "the table kept changing while being opened");
    return nullptr;
}

/*
 * Why rows cannot go into an open table, or NULL (then *info is its descriptor).
 * Nothing bypasses what the role could do with INSERT.
 */
const char *Refusal(Relation rel, TableInfo **info)
{
    *info = nullptr;
    const char *refusal = IdentityRefusal(rel, GetUserId());
    if (refusal != nullptr)
        return refusal;
    *info = TableCacheGet(rel);
    if ((*info)->time_unsupported)
        return "column \"_time\" must be timestamptz, timestamp or bigint";
    return nullptr;
}

/* What the schema pass must do for a group. */
enum class SchemaNeed : uint8 { Nothing, Create, Columns };

/*
 * The schema pass: what a group's table lacks.  Marks the groups that lack nothing (with
 * influx.add_columns on, the flush then skips its own column check).
 */
SchemaNeed CheckGroupSchema(const FlushOptions *opts, Oid nspid, BatchGroup *g)
{
    Oid relid = TableCacheLookup(nspid, g->measurement);
    if (!OidIsValid(relid))
        return opts->create_tables ? SchemaNeed::Create : SchemaNeed::Nothing;
    if (!opts->add_columns)
        return SchemaNeed::Nothing;
    /*
     * Rows built against the table's info, still valid, have a column for every key: the
     * table need not be opened (the flush checks the info again under its lock).
     */
    if (BatchGroupBuiltFor(g, TableCachePeek(opts->schema, g->measurement)))
        return SchemaNeed::Nothing;
    /* Anything odd (dropped, not a table, refused) is the flush's to report. */
    char relkind = get_rel_relkind(relid);
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
        relkind != RELKIND_FOREIGN_TABLE)
        return SchemaNeed::Nothing;
    /* A table another session holds is not waited for here: the flush hands it back. */
    if (!ConditionalLockRelationOid(relid, AccessShareLock))
        return SchemaNeed::Nothing;
    Relation rel = try_table_open(relid, NoLock);
    if (rel == nullptr) {
        UnlockRelationOid(relid, AccessShareLock);
        return SchemaNeed::Nothing;
    }
    TableInfo *info = nullptr;
    bool refused = Refusal(rel, &info) != nullptr;
    table_close(rel, AccessShareLock);
    if (refused)
        return SchemaNeed::Nothing;
    KeySets keys;
    CollectKeys(g, 0, g->nrows, info, &keys);
    if (keys.count > 0)
        return SchemaNeed::Columns;
    g->schema_relid = relid;
    return SchemaNeed::Nothing;
}

/*
 * The schema pass for one group, inside its own transaction.  The name lock makes workers
 * take turns on a table: two that add the same column would otherwise each hold ROW
 * EXCLUSIVE while waiting for the other's to upgrade to ACCESS EXCLUSIVE (a deadlock).
 * The one that waited sees the other's columns and has nothing left to add.
 */
void MakeGroupSchema(const FlushOptions *opts, Oid nspid, BatchGroup *g)
{
    LockMeasurementName(nspid, g->measurement);
    Oid relid = TableCacheLookup(nspid, g->measurement);
    if (!OidIsValid(relid)) {
        char limit[128];
        if (TableLimitReached(nspid, limit, sizeof(limit)))
            return; /* the flush rejects the rows, with the reason */
        relid = CreateTable(opts->schema, nspid, g, 0, g->nrows);
        if (!OidIsValid(relid))
            return; /* the flush calls the hook again and rejects the rows */
    }
    if (opts->add_columns) {
        Relation rel = try_table_open(relid, RowExclusiveLock);
        if (rel == nullptr)
            return;
        TableInfo *info = nullptr;
        bool refused = Refusal(rel, &info) != nullptr;
        /* ALTER TABLE refuses a table this backend has open: close it, keep the lock. */
        table_close(rel, NoLock);
        if (refused)
            return;
        (void) AddColumns(relid, info, g, 0, g->nrows);
        g->schema_relid = relid;
    }
}

/*
 * A worker's schema pass, before the flush: the tables of new measurements and (with
 * influx.add_columns) the columns of new keys are made in short transactions, one table
 * each, committed before the rows' transaction starts.  The flush then takes only
 * RowExclusiveLock, which does not conflict with other workers' flushes, so:
 *   - workers whose batches name the same new tables in different orders do not
 *     deadlock (each would otherwise hold one new table and wait for the other's);
 *   - queries on a new or altered table do not wait for a whole batch to commit;
 *   - two workers creating one table take turns instead of failing on the catalog's
 *     unique index (LockMeasurementName).
 * Whatever fails here is tried again by the flush, which counts what it must reject.
 */
void PrepareSchema(const FlushOptions *opts)
{
    if (!opts->create_tables && !opts->add_columns)
        return;
    SchemaNeed *needs = static_cast<SchemaNeed *>(
        MemoryContextAllocZero(work_cxt, sizeof(SchemaNeed) * batch.ngroups));
    bool any = false;
    int sqlstate;
    char message[INFLUX_ERROR_TEXT];
    if (!InOwnTransaction(
            [&]() {
                Oid nspid = TableCacheSchemaOid(opts->schema);
                if (!OidIsValid(nspid))
                    return;
                for (int i = 0; i < batch.ngroups; i++) {
                    needs[i] = CheckGroupSchema(opts, nspid, batch.groups[i]);
                    any |= needs[i] != SchemaNeed::Nothing;
                }
            },
            &sqlstate, message, sizeof(message)))
        elog(DEBUG1, "pg_influx: schema check failed: %s", message);
    if (!any)
        return;
    for (int i = 0; i < batch.ngroups; i++) {
        if (needs[i] == SchemaNeed::Nothing)
            continue;
        BatchGroup *g = batch.groups[i];
        char activity[NAMEDATALEN * 5 + 64];
        pg_snprintf(activity, sizeof(activity), "%s %s.%s",
                    needs[i] == SchemaNeed::Create ? "creating table" : "adding columns to",
                    opts->schema, LogName(g->measurement));
        pgstat_report_activity(STATE_RUNNING, activity);
        SetSlotActivity(my_slot, activity);
        if (!InOwnTransaction(
                [&]() { MakeGroupSchema(opts, TableCacheSchemaOid(opts->schema), g); }, &sqlstate,
                message, sizeof(message))) {
            /* The flush tries again and reports. */
            elog(DEBUG1, "pg_influx: %s failed: %s", activity, message);
            g->schema_relid = InvalidOid;
        }
    }
}

} // namespace insert_path
} // namespace influx
