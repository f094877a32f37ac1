/*
 * conflict.cpp — point keys, policies and the INSERT ... ON CONFLICT statements of
 * idempotent writes (see conflict.hpp).
 *
 * The statements are built from catalog names only (quote_identifier), never from incoming
 * data, prepared once per table, policy and shape (generic plans, kept with the table
 * info and freed with it), and given one array per column:
 *
 *   INSERT INTO s.m AS t (c1, ...)
 *   SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), ...)
 *   ON CONFLICT (key columns) DO UPDATE SET c = EXCLUDED.c, ... | DO NOTHING
 *
 * A Citus table's statement cannot take parameters (Citus plans it again for every
 * execution with the parameters as constants, copying arrays of thousands of values several
 * times over): it reads its rows from the function influx.statement_rows() instead, which
 * returns the rows of the statement this process is running (from 1.3 of the extension;
 * with an older one, the arrays above):
 *
 *   INSERT INTO s.m AS t (c1, ...)
 *   SELECT * FROM influx.statement_rows() AS r(c1 type1, ...) [ON CONFLICT ...]
 *
 * C-style code: everything here may raise an ERROR.
 */
#include <cstring>

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
}

#include "core/compat.hpp"
#include "core/settings.hpp"
#include "ingest/conflict.hpp"

namespace influx
{

/* A prepared statement of one table info (freed with it). */
struct ConflictPlan {
    int policy;
    bool *shape;    /* natts entries: the columns given */
    bool values;    /* one row per execution (a column type has no array type) */
    bool from_rows; /* rows from influx.statement_rows() (a Citus table), no parameters */
    char *sql;      /* the statement's text (kept plans): compared with today's names */
    SPIPlanPtr plan;
    ConflictPlan *next;
};

namespace
{

/*
 * Plans kept per table info, and in the whole process (about 20 kB each: sparse lines
 * into many tables make many shapes); beyond either, a statement is prepared for one use.
 */
constexpr int kMaxPlansPerTable = 64;
constexpr int kMaxPlansPerProcess = 512;
int kept_plans = 0;
/* Rows (or bytes: values, their arrays, per-row overhead) taken before the statements run. */
constexpr int kMaxUpsertRows = 2000;
/*
 * A Citus table's statement takes the rows of its flush up to the byte bound (about 33,000
 * `cpu` rows), not 2,000: Citus runs each statement as one COPY into every shard it touches,
 * and each COPY costs its node a command, a shard opened and set up, whatever its rows.  At
 * 2,000 rows a 10,000-row flush into 8 shards made 40 COPY commands on the nodes instead of 8.
 */
constexpr int kMaxDistributedRows = 1000000;
constexpr size_t kMaxUpsertBytes = 8 * 1024 * 1024;
constexpr size_t kRowOverheadBytes = 32;
/* influx.statement_rows() keeps a statement's rows in memory up to this (kB), then spills. */
constexpr int kRowsStoreKB = 4 * kMaxUpsertBytes / 1024;

/* The override of a table in influx.table_option (1.2), or -1. */
int ReadTableOption(Relation rel)
{
    Oid nspid = get_namespace_oid("influx", true);
    Oid option_relid = OidIsValid(nspid) ? get_relname_relid("table_option", nspid) : InvalidOid;
    if (!OidIsValid(option_relid))
        return -1; /* an extension script older than 1.2 */
    Relation options = table_open(option_relid, AccessShareLock);
    ScanKeyData keys[2];
    NameData schema_name, table_name;
    namestrcpy(&schema_name, get_namespace_name(RelationGetNamespace(rel)));
    namestrcpy(&table_name, RelationGetRelationName(rel));
    ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&schema_name));
    ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&table_name));
    SysScanDesc scan = systable_beginscan(options, InvalidOid, false, nullptr, 2, keys);
    int policy = -1;
    HeapTuple tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup)) {
        bool isnull;
        Datum d = heap_getattr(tup, 3, RelationGetDescr(options), &isnull);
        if (!isnull) {
            char *name = TextDatumGetCString(d);
            for (int p = INFLUX_ON_CONFLICT_ERROR; p <= INFLUX_ON_CONFLICT_REPLACE; p++)
                if (strcmp(name, ConflictPolicyName(p)) == 0)
                    policy = p;
        }
    }
    systable_endscan(scan);
    table_close(options, AccessShareLock);
    return policy;
}

/* Frees the kept plans of a table info when its memory goes. */
void FreePlans(void *arg)
{
    auto info = static_cast<TableInfo *>(arg);
    for (ConflictPlan *p = info->plans; p != nullptr; p = p->next) {
        if (p->plan != nullptr) {
            SPI_freeplan(p->plan);
            kept_plans--;
        }
    }
    info->plans = nullptr;
}

uint64 Mix(uint64 h, uint64 v)
{
    return hash_combine64(h, v * UINT64CONST(0x9E3779B97F4A7C15));
}

} // namespace

const char *ConflictPolicyName(int policy)
{
    switch (policy) {
        case INFLUX_ON_CONFLICT_MERGE:
            return "merge";
        case INFLUX_ON_CONFLICT_SKIP:
            return "skip";
        case INFLUX_ON_CONFLICT_REPLACE:
            return "replace";
        default:
            return "error";
    }
}

void LoadPointKey(Relation rel, TableInfo *info)
{
    info->key.index = InvalidOid;
    info->on_conflict = -1;
    info->plans = nullptr;
    if (info->time_column < 0)
        return;

    /* The primary key if it qualifies, else the qualifying index with the fewest columns. */
    List *indexes = RelationGetIndexList(rel);
    ListCell *lc;
    bool best_primary = false;
    foreach (lc, indexes) {
        Oid indexoid = lfirst_oid(lc);
        HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
        if (!HeapTupleIsValid(tup))
            continue;
        auto index = reinterpret_cast<Form_pg_index>(GETSTRUCT(tup));
        bool usable = index->indisunique && index->indimmediate && index->indisvalid &&
                      heap_attisnull(tup, Anum_pg_index_indexprs, nullptr) &&
                      heap_attisnull(tup, Anum_pg_index_indpred, nullptr);
        bool has_time = false;
        int ncols = index->indnkeyatts;
        for (int k = 0; usable && k < ncols; k++) {
            int c = index->indkey.values[k] - 1;
            if (c < 0 || c >= info->natts || !info->columns[c].assignable)
                usable = false;
            else if (c == info->time_column)
                has_time = true;
        }
        bool better = !OidIsValid(info->key.index) || (index->indisprimary && !best_primary) ||
                      (index->indisprimary == best_primary && ncols < info->key.ncols);
        if (usable && has_time && better) {
            info->key.index = indexoid;
            info->key.ncols = ncols;
            for (int k = 0; k < ncols; k++)
                info->key.cols[k] = static_cast<int16>(index->indkey.values[k] - 1);
#if PG_VERSION_NUM >= 150000
            info->key.nulls_not_distinct = index->indnullsnotdistinct;
#else
            info->key.nulls_not_distinct = false;
#endif
            best_primary = index->indisprimary;
        }
        ReleaseSysCache(tup);
    }
    list_free(indexes);
    info->on_conflict = ReadTableOption(rel);

    MemoryContextCallback *cb = static_cast<MemoryContextCallback *>(
        MemoryContextAllocZero(info->cxt, sizeof(MemoryContextCallback)));
    cb->func = FreePlans;
    cb->arg = info;
    MemoryContextRegisterResetCallback(info->cxt, cb);
}

int ConflictPolicyFor(const TableInfo *info)
{
    if (!OidIsValid(info->key.index))
        return INFLUX_ON_CONFLICT_ERROR;
    return info->on_conflict >= 0 ? info->on_conflict : influx_on_conflict;
}

void KeySetInit(KeySet *set, MemoryContext cxt)
{
    set->cxt = cxt;
    set->mask = 1023;
    set->count = 0;
    set->slots = static_cast<uint64 *>(MemoryContextAllocZero(cxt, sizeof(uint64) * 1024));
}

bool KeySetAdd(KeySet *set, uint64 hash)
{
    if (hash == 0)
        hash = 1;
    if (set->count * 2 > set->mask) {
        uint64 *old = set->slots;
        int old_size = set->mask + 1;
        set->mask = old_size * 2 - 1;
        set->slots = static_cast<uint64 *>(
            MemoryContextAllocZero(set->cxt, sizeof(uint64) * (set->mask + 1)));
        for (int i = 0; i < old_size; i++) {
            if (old[i] == 0)
                continue;
            int s = static_cast<int>(old[i]) & set->mask;
            while (set->slots[s] != 0)
                s = (s + 1) & set->mask;
            set->slots[s] = old[i];
        }
        pfree(old);
    }
    int s = static_cast<int>(hash) & set->mask;
    while (set->slots[s] != 0) {
        if (set->slots[s] == hash)
            return false;
        s = (s + 1) & set->mask;
    }
    set->slots[s] = hash;
    set->count++;
    return true;
}

void KeySetClear(KeySet *set)
{
    if (set->count == 0)
        return;
    memset(set->slots, 0, sizeof(uint64) * (set->mask + 1));
    set->count = 0;
}

/*
 * Equal images hash alike; equal values with different images (numeric 1.0 and 1.00, a
 * case-insensitive collation) do not, and then the unique index itself catches the second
 * row (the flush isolates and retries it: slower, never wrong).
 */
uint64 PointHash(const TableInfo *info, TupleDesc desc, TupleTableSlot *slot)
{
    slot_getallattrs(slot); /* a materialized slot reads its values from its tuple again */
    uint64 h = UINT64CONST(0x5bd1e995);
    for (int k = 0; k < info->key.ncols; k++) {
        int c = info->key.cols[k];
        if (slot->tts_isnull[c]) {
            h = Mix(h, UINT64CONST(0xfeedface) + k);
            continue;
        }
        Form_pg_attribute att = TupleDescAttr(desc, c);
        h = Mix(h, datum_image_hash(slot->tts_values[c], att->attbyval, att->attlen));
    }
    return h;
}

/* Rows of one shape waiting for their statement. */
struct ShapeRows {
    bool *shape;    /* natts */
    int ncols;      /* columns given */
    int16 *cols;    /* their indexes */
    Datum **values; /* per given column, per row */
    bool **nulls;   /* per given column, per row */
    int *rows;      /* batch row index per row */
    int nrows;
    int capacity; /* rows the arrays hold (grown up to the statement's bound) */
    int exists;   /* rows an index probe found the point of */
    ShapeRows *next;
};

struct Upserts {
    Relation rel;
    TableInfo *info;
    int policy;
    MemoryContext cxt;        /* the Upserts and its shapes */
    MemoryContext values_cxt; /* copies of the values; reset after each run */
    ShapeRows *shapes;
    ShapeRows *last; /* the shape of the row taken last */
    int nrows;
    size_t bytes;
};

namespace
{

/*
 * The statement influx.statement_rows() serves now (RunShape), its rows and the user it runs
 * as; else NULL.  The rows are handed out once, to the statement's own scan, which runs
 * before any of the table's code (defaults, triggers): code that calls the function later
 * in the statement, or as another user, gets an error, not the rows.
 */
const Upserts *serving = nullptr;
const ShapeRows *serving_rows = nullptr;
Oid serving_user = InvalidOid;

/*
 * How many planner calls this process is inside, and how many it was inside when the
 * statement began to be served: the statement's plan is built inside SPI_execute_plan, after
 * serving is set, and the planner evaluates IMMUTABLE functions (of a default, say) with
 * constant arguments.  The rows go only to a call made at the statement's own depth, which
 * is its scan; a call from inside the planner is refused.
 */
int planning_depth = 0;
int serving_depth = -1;
planner_hook_type prev_planner_hook = nullptr;

PlannedStmt *CountingPlanner(Query *parse, const char *query_string, int cursor_options,
                             ParamListInfo bound_params)
{
    PlannedStmt *volatile result = nullptr;
    planning_depth++;
    PG_TRY();
    {
        result = prev_planner_hook != nullptr
                     ? prev_planner_hook(parse, query_string, cursor_options, bound_params)
                     : standard_planner(parse, query_string, cursor_options, bound_params);
    }
    PG_FINALLY();
    {
        planning_depth--;
    }
    PG_END_TRY();
    return result;
}

/* How a statement gets its rows. */
enum class RowSource { Arrays, Values, Function };

/*
 * Whether a shape's statement can take its rows from influx.statement_rows() as the current
 * user: the function exists (the extension is 1.3 or later), the user may execute it, and
 * may use the schemas of the column types the statement names.  Else the arrays go as
 * parameters, which name no type.
 */
bool StatementRowsUsable(const TableInfo *info, const ShapeRows *s)
{
    /* Looking the function up in a schema the user may not use would raise an error. */
    Oid influx_nspid = get_namespace_oid("influx", true);
    if (!OidIsValid(influx_nspid) ||
        InfluxNamespaceAclcheck(influx_nspid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
        return false;
    List *name = list_make2(makeString(pstrdup("influx")), makeString(pstrdup("statement_rows")));
    Oid fn = LookupFuncName(name, 0, nullptr, true);
    if (!OidIsValid(fn) || InfluxProcAclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
        return false;
    for (int j = 0; j < s->ncols; j++) {
        HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(info->columns[s->cols[j]].typid));
        if (!HeapTupleIsValid(tup))
            return false;
        Oid nspid = reinterpret_cast<Form_pg_type>(GETSTRUCT(tup))->typnamespace;
        ReleaseSysCache(tup);
        if (nspid != PG_CATALOG_NAMESPACE &&
            InfluxNamespaceAclcheck(nspid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
            return false;
    }
    return true;
}

/* Where a plan's rows come from. */
RowSource SourceOf(const ConflictPlan *p)
{
    if (p->from_rows)
        return RowSource::Function;
    return p->values ? RowSource::Values : RowSource::Arrays;
}

/* The statement for a shape: see the file comment. */
char *StatementText(Upserts *u, const ShapeRows *s, RowSource source)
{
    const bool values = source == RowSource::Values;
    TableInfo *info = u->info;
    TupleDesc desc = RelationGetDescr(u->rel);
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "INSERT INTO %s AS t (",
                     quote_qualified_identifier(get_namespace_name(RelationGetNamespace(u->rel)),
                                                RelationGetRelationName(u->rel)));
    for (int j = 0; j < s->ncols; j++)
        appendStringInfo(&sql, "%s%s", j > 0 ? ", " : "",
                         quote_identifier(info->columns[s->cols[j]].name));
    if (source == RowSource::Function) {
        /* Types without their modifiers, as the arrays have them: the INSERT applies those. */
        appendStringInfoString(&sql, ") SELECT * FROM influx.statement_rows() AS r (");
        for (int j = 0; j < s->ncols; j++)
            appendStringInfo(&sql, "%sc%d %s", j > 0 ? ", " : "", j + 1,
                             format_type_extended(info->columns[s->cols[j]].typid, -1,
                                                  FORMAT_TYPE_FORCE_QUALIFY));
    } else {
        appendStringInfoString(&sql, values ? ") VALUES (" : ") SELECT * FROM ROWS FROM (");
        for (int j = 0; j < s->ncols; j++)
            appendStringInfo(&sql, values ? "%s$%d" : "%spg_catalog.unnest($%d)", j > 0 ? ", " : "",
                             j + 1);
    }
    appendStringInfoChar(&sql, ')');
    if (u->policy == INFLUX_ON_CONFLICT_ERROR)
        return sql.data; /* a plain INSERT (a Citus table whose points are not merged) */
    appendStringInfoString(&sql, " ON CONFLICT (");
    bool *in_key = static_cast<bool *>(palloc0(Max(info->natts, 1)));
    for (int k = 0; k < info->key.ncols; k++) {
        in_key[info->key.cols[k]] = true;
        appendStringInfo(&sql, "%s%s", k > 0 ? ", " : "",
                         quote_identifier(info->columns[info->key.cols[k]].name));
    }
    appendStringInfoString(&sql, ") DO ");

    int nset = 0;
    if (u->policy != INFLUX_ON_CONFLICT_SKIP) {
        for (int c = 0; c < info->natts; c++) {
            Form_pg_attribute att = TupleDescAttr(desc, c);
            if (att->attisdropped || !info->columns[c].assignable || in_key[c])
                continue;
            bool set;
            if (u->policy == INFLUX_ON_CONFLICT_REPLACE)
                set = att->attidentity == '\0'; /* the row's identity stays */
            else
                set = s->shape[c];
            if (!set)
                continue;
            const char *name = quote_identifier(info->columns[c].name);
            appendStringInfoString(&sql, nset++ == 0 ? "UPDATE SET " : ", ");
            ColumnRole role = info->columns[c].role;
            if (u->policy == INFLUX_ON_CONFLICT_MERGE &&
                (role == ColumnRole::Tags || role == ColumnRole::Fields))
                /* Leftover tags and fields merge key by key, as the columns do. */
                appendStringInfo(&sql,
                                 "%s = CASE WHEN t.%s IS NULL THEN EXCLUDED.%s "
                                 "ELSE t.%s OPERATOR(pg_catalog.||) EXCLUDED.%s END",
                                 name, name, name, name, name);
            else
                appendStringInfo(&sql, "%s = EXCLUDED.%s", name, name);
        }
    }
    if (nset == 0)
        appendStringInfoString(&sql, "NOTHING");
    pfree(in_key);
    return sql.data;
}

/*
 * Types of a shape's parameters: arrays of the columns' types; false when a column needs
 * one row per execution (its type has no array type, or is composite: unnest() of a
 * composite array expands into the type's attributes).
 */
bool ParamTypes(Upserts *u, const ShapeRows *s, Oid *types)
{
    for (int j = 0; j < s->ncols; j++) {
        Oid typid = u->info->columns[s->cols[j]].typid;
        if (get_typtype(getBaseType(typid)) == TYPTYPE_COMPOSITE)
            return false;
        Oid array = get_array_type(typid);
        if (!OidIsValid(array))
            return false;
        types[j] = array;
    }
    return true;
}

/* The prepared statement of a shape (kept with the table info when there is room). */
ConflictPlan *PlanFor(Upserts *u, const ShapeRows *s, bool *kept)
{
    TableInfo *info = u->info;
    /* Checked at each statement: plans are kept per table, the user differs (HTTP). */
    bool rows_usable = info->distributed && StatementRowsUsable(info, s);
    for (ConflictPlan **link = &info->plans; *link != nullptr; link = &(*link)->next) {
        ConflictPlan *p = *link;
        if (p->policy != u->policy || memcmp(p->shape, s->shape, info->natts) != 0 ||
            (!p->values && p->from_rows != rows_usable))
            continue;
        /*
         * The plan cache parses a kept statement again from its text after any change of
         * schemas (and of the types it names), by name: the text must still name the
         * table's schema and the types (ALTER SCHEMA ... RENAME, ALTER TYPE ... RENAME or
         * SET SCHEMA change neither the table's OID nor its info).  Else it is prepared
         * again.
         */
        char *sql = StatementText(u, s, SourceOf(p));
        bool current = strcmp(sql, p->sql) == 0;
        pfree(sql);
        if (current)
            return p;
        *link = p->next;
        SPI_freeplan(p->plan);
        kept_plans--;
        pfree(p->sql);
        pfree(p->shape);
        pfree(p);
        break;
    }
    int count = 0;
    for (ConflictPlan *p = info->plans; p != nullptr; p = p->next)
        count++;

    Oid *types = static_cast<Oid *>(palloc(sizeof(Oid) * Max(s->ncols, 1)));
    bool values = !ParamTypes(u, s, types);
    if (values)
        for (int j = 0; j < s->ncols; j++)
            types[j] = info->columns[s->cols[j]].typid;
    bool from_rows = rows_usable && !values;
    char *sql = StatementText(
        u, s, from_rows ? RowSource::Function : (values ? RowSource::Values : RowSource::Arrays));
    /*
     * A generic plan: the statement is planned once.  Citus cannot plan a distributed
     * INSERT ... SELECT with parameters ("could not create distributed plan"): for its
     * tables a custom plan, planned per execution with the arrays as constants -- unless the
     * rows come from influx.statement_rows(), with no parameters.
     */
    int options =
        info->distributed && !from_rows ? CURSOR_OPT_CUSTOM_PLAN : CURSOR_OPT_GENERIC_PLAN;
    SPIPlanPtr plan = SPI_prepare_cursor(sql, from_rows ? 0 : s->ncols, types, options);
    if (plan == nullptr)
        elog(ERROR, "pg_influx: could not prepare \"%s\": %s", sql,
             SPI_result_code_string(SPI_result));

    *kept = count < kMaxPlansPerTable && kept_plans < kMaxPlansPerProcess;
    ConflictPlan *p = static_cast<ConflictPlan *>(
        MemoryContextAllocZero(*kept ? info->cxt : CurrentMemoryContext, sizeof(ConflictPlan)));
    p->policy = u->policy;
    p->values = values;
    p->from_rows = from_rows;
    p->plan = plan;
    if (*kept) {
        p->shape = static_cast<bool *>(MemoryContextAlloc(info->cxt, Max(info->natts, 1)));
        memcpy(p->shape, s->shape, info->natts);
        p->sql = MemoryContextStrdup(info->cxt, sql);
        if (SPI_keepplan(plan) != 0)
            elog(ERROR, "pg_influx: SPI_keepplan failed");
        p->next = info->plans;
        info->plans = p;
        kept_plans++;
    }
    return p;
}

/* One column's values as an array of its type. */
Datum MakeArray(Upserts *u, const ShapeRows *s, int j, int from, int n)
{
    Oid typid = u->info->columns[s->cols[j]].typid;
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(typid, &typlen, &typbyval, &typalign);
    int dims[1] = {n};
    int lbs[1] = {1};
    ArrayType *a = construct_md_array(s->values[j] + from, s->nulls[j] + from, 1, dims, lbs, typid,
                                      typlen, typbyval, typalign);
    return PointerGetDatum(a);
}

/* Executes a shape's rows; returns the rows the statements inserted or updated. */
uint64 RunShape(Upserts *u, ShapeRows *s)
{
    SPI_connect();
    bool kept = false;
    ConflictPlan *p = PlanFor(u, s, &kept);
    Datum *args = static_cast<Datum *>(palloc(sizeof(Datum) * Max(s->ncols, 1)));
    char *nulls = static_cast<char *>(palloc(Max(s->ncols, 1)));
    uint64 processed = 0;
    if (p->from_rows) {
        InstallStatementRowsGuard();
        /* Never nested: influx.insert() refuses to run inside a flush (a trigger's). */
        Assert(serving == nullptr);
        serving = u;
        serving_rows = s;
        serving_user = GetUserId();
        serving_depth = planning_depth;
        int rc = 0;
        bool taken = false;
        PG_TRY();
        {
            rc = SPI_execute_plan(p->plan, nullptr, nullptr, false, 0);
            taken = serving_rows == nullptr;
        }
        PG_FINALLY();
        {
            serving = nullptr;
            serving_rows = nullptr;
            serving_user = InvalidOid;
            serving_depth = -1;
        }
        PG_END_TRY();
        if (rc != SPI_OK_INSERT)
            elog(ERROR, "pg_influx: INSERT ... SELECT returned %s", SPI_result_code_string(rc));
        if (!taken && s->nrows > 0)
            elog(ERROR, "pg_influx: the statement did not take its rows from "
                        "influx.statement_rows()");
        processed = SPI_processed;
        SPI_finish();
        return processed;
    }
    int per_call = p->values ? 1 : s->nrows;
    for (int from = 0; from < s->nrows; from += per_call) {
        for (int j = 0; j < s->ncols; j++) {
            if (p->values) {
                args[j] = s->values[j][from];
                nulls[j] = s->nulls[j][from] ? 'n' : ' ';
            } else {
                args[j] = MakeArray(u, s, j, from, per_call);
                nulls[j] = ' ';
            }
        }
        int rc = SPI_execute_plan(p->plan, args, nulls, false, 0);
        if (rc != SPI_OK_INSERT)
            elog(ERROR, "pg_influx: INSERT ... ON CONFLICT returned %s",
                 SPI_result_code_string(rc));
        processed += SPI_processed;
    }
    SPI_finish(); /* frees a plan that was not kept */
    return processed;
}

} // namespace

void StatementRows(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (serving == nullptr || serving_rows == nullptr || GetUserId() != serving_user ||
        planning_depth != serving_depth)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("influx.statement_rows() returns rows only to pg_influx's own "
                               "statements, once")));
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) ||
        (rsinfo->allowedModes & SFRM_Materialize) == 0 || rsinfo->expectedDesc == nullptr)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("influx.statement_rows() must be called in FROM with a column "
                               "definition list")));
    const ShapeRows *s = serving_rows;
    const TableInfo *info = serving->info;
    TupleDesc expected = rsinfo->expectedDesc;
    bool match = expected->natts == s->ncols;
    for (int j = 0; j < s->ncols && match; j++)
        match = TupleDescAttr(expected, j)->atttypid == info->columns[s->cols[j]].typid;
    if (!match)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("influx.statement_rows(): the column definition list does not "
                               "match the statement's rows")));

    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    /* In memory: a statement's rows are bounded (kMaxUpsertBytes), work_mem may be small. */
    Tuplestorestate *store = tuplestore_begin_heap(false, false, Max(work_mem, kRowsStoreKB));
    TupleDesc desc = CreateTupleDescCopy(expected);
    Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * Max(s->ncols, 1)));
    bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * Max(s->ncols, 1)));
    for (int i = 0; i < s->nrows; i++) {
        if ((i & 4095) == 0)
            CHECK_FOR_INTERRUPTS(); /* up to a million rows: a cancel must not wait for them */
        for (int j = 0; j < s->ncols; j++) {
            values[j] = s->values[j][i];
            nulls[j] = s->nulls[j][i];
        }
        tuplestore_putvalues(store, desc, values, nulls);
    }
    MemoryContextSwitchTo(old);
    serving_rows = nullptr; /* handed out */
    rsinfo->returnMode = SFRM_Materialize;
    rsinfo->setResult = store;
    rsinfo->setDesc = desc;
}

void InstallStatementRowsGuard(void)
{
    static bool installed = false;
    if (installed)
        return;
    prev_planner_hook = planner_hook;
    planner_hook = CountingPlanner;
    installed = true;
}

bool UpsertsTakeArrays(const TableInfo *info)
{
    for (int c = 0; c < info->natts; c++) {
        const ColumnInfo *col = &info->columns[c];
        if (!OidIsValid(col->typid)) /* a dropped column */
            continue;
        if (get_typtype(getBaseType(col->typid)) == TYPTYPE_COMPOSITE ||
            !OidIsValid(get_array_type(col->typid)))
            return false;
    }
    return true;
}

Upserts *UpsertsCreate(Relation rel, TableInfo *info, int policy, MemoryContext cxt)
{
    Upserts *u = static_cast<Upserts *>(MemoryContextAllocZero(cxt, sizeof(Upserts)));
    u->rel = rel;
    u->info = info;
    u->policy = policy;
    u->cxt = cxt;
    u->values_cxt = AllocSetContextCreate(cxt, "influx upsert values", ALLOCSET_DEFAULT_SIZES);
    return u;
}

void UpsertsAdd(Upserts *u, int row, TupleTableSlot *slot, const bool *is_set, bool exists)
{
    TableInfo *info = u->info;
    int natts = info->natts;
    ShapeRows *s = u->shapes;
    while (s != nullptr && memcmp(s->shape, is_set, natts) != 0)
        s = s->next;
    if (s == nullptr) {
        MemoryContext old = MemoryContextSwitchTo(u->cxt);
        s = static_cast<ShapeRows *>(palloc0(sizeof(ShapeRows)));
        s->shape = static_cast<bool *>(palloc(Max(natts, 1)));
        memcpy(s->shape, is_set, natts);
        s->cols = static_cast<int16 *>(palloc(sizeof(int16) * Max(natts, 1)));
        for (int c = 0; c < natts; c++)
            if (is_set[c])
                s->cols[s->ncols++] = static_cast<int16>(c);
        s->capacity = 16;
        s->values = static_cast<Datum **>(palloc(sizeof(Datum *) * Max(s->ncols, 1)));
        s->nulls = static_cast<bool **>(palloc(sizeof(bool *) * Max(s->ncols, 1)));
        for (int j = 0; j < s->ncols; j++) {
            s->values[j] = static_cast<Datum *>(palloc(sizeof(Datum) * s->capacity));
            s->nulls[j] = static_cast<bool *>(palloc(sizeof(bool) * s->capacity));
        }
        s->rows = static_cast<int *>(palloc(sizeof(int) * s->capacity));
        /* At the tail: the statements run in the order their first rows came. */
        ShapeRows **tail = &u->shapes;
        while (*tail != nullptr)
            tail = &(*tail)->next;
        *tail = s;
        MemoryContextSwitchTo(old);
    }
    if (s->nrows == s->capacity) {
        /* Grown by doubling: a shape of few rows (sparse lines make many) stays small. */
        s->capacity *= 2;
        for (int j = 0; j < s->ncols; j++) {
            s->values[j] =
                static_cast<Datum *>(repalloc(s->values[j], sizeof(Datum) * s->capacity));
            s->nulls[j] = static_cast<bool *>(repalloc(s->nulls[j], sizeof(bool) * s->capacity));
        }
        s->rows = static_cast<int *>(repalloc(s->rows, sizeof(int) * s->capacity));
    }
    TupleDesc desc = RelationGetDescr(u->rel);
    slot_getallattrs(slot);
    MemoryContext old = MemoryContextSwitchTo(u->values_cxt);
    for (int j = 0; j < s->ncols; j++) {
        int c = s->cols[j];
        Form_pg_attribute att = TupleDescAttr(desc, c);
        s->nulls[j][s->nrows] = slot->tts_isnull[c];
        if (slot->tts_isnull[c]) {
            s->values[j][s->nrows] = (Datum) 0;
        } else {
            s->values[j][s->nrows] = datumCopy(slot->tts_values[c], att->attbyval, att->attlen);
            if (att->attlen == -1)
                u->bytes += VARSIZE_ANY(DatumGetPointer(s->values[j][s->nrows]));
            else
                u->bytes += Max(att->attlen, 0);
        }
    }
    MemoryContextSwitchTo(old);
    /* The arrays' own bytes too (a Datum and a null flag per value, the row's index and the
     * tuple header its copy in influx.statement_rows() gets): narrow values cost more there
     * than their data. */
    u->bytes += s->ncols * (sizeof(Datum) + sizeof(bool)) + kRowOverheadBytes;
    s->rows[s->nrows++] = row;
    u->last = s;
    if (exists)
        s->exists++;
    u->nrows++;
}

bool UpsertsOtherShape(const Upserts *u, const bool *is_set)
{
    return u->nrows > 0 && u->last != nullptr &&
           memcmp(u->last->shape, is_set, u->info->natts) != 0;
}

bool UpsertsFull(const Upserts *u)
{
    if (u->bytes >= kMaxUpsertBytes)
        return true;
    int limit = u->info->distributed ? kMaxDistributedRows : kMaxUpsertRows;
    for (const ShapeRows *s = u->shapes; s != nullptr; s = s->next)
        if (s->nrows >= limit)
            return true;
    return false;
}

void UpsertsRun(Upserts *u, RowCounts *counts, volatile int *failed_row)
{
    for (ShapeRows *s = u->shapes; s != nullptr; s = s->next) {
        if (s->nrows == 0)
            continue;
        *failed_row = s->nrows == 1 ? s->rows[0] : -1;
        uint64 processed = RunShape(u, s);
        int64 sent = s->nrows;
        int64 done = static_cast<int64>(Min(processed, static_cast<uint64>(sent)));
        if (u->policy == INFLUX_ON_CONFLICT_SKIP) {
            /* DO NOTHING reports the rows it inserted. */
            counts->inserted += done;
            counts->skipped += sent - done;
        } else {
            /* DO UPDATE reports inserted and updated rows alike: the probe tells them apart. */
            int64 merged = Min(static_cast<int64>(s->exists), done);
            counts->merged += merged;
            counts->inserted += done - merged;
        }
        s->nrows = 0;
        s->exists = 0;
    }
    *failed_row = -1;
    u->nrows = 0;
    u->bytes = 0;
    MemoryContextReset(u->values_cxt);
}

} // namespace influx
