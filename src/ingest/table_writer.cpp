/*
 * table_writer.cpp — the executor part of the insert path (see table_writer.hpp).
 *
 * The steps and their order follow COPY FROM (commands/copyfrom.c) and INSERT
 * (nodeModifyTable.c): a one-entry range table and a ResultRelInfo for the table, indexes
 * opened, AfterTriggerBeginQuery, BEFORE STATEMENT triggers, then per row: fill the slot
 * (values, jsonb leftovers, defaults), route to a partition, BEFORE ROW triggers (slow
 * path), generated columns, constraints, partition constraint, then either buffer the row
 * (bulk path) or insert it at once; after the last row, flush the buffers, AFTER
 * STATEMENT triggers, AfterTriggerEndQuery (AFTER ROW and RI triggers fire here).
 *
 * C-style code: no object with a destructor is alive across the PostgreSQL calls here,
 * which may raise an ERROR at any point.
 */
#include <cstdarg>
#include <cstring>

#include "protocol/line_protocol.hpp"

extern "C" {
#include "postgres.h"

#include "access/attmap.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "access/genam.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "executor/nodeModifyTable.h"
#include "foreign/fdwapi.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rowsecurity.h"
#include "rewrite/rewriteManip.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#endif
}

#include "core/compat.hpp"
#include "core/settings.hpp"
#include "ingest/citus.hpp"
#include "ingest/conflict.hpp"
#include "ingest/convert.hpp"
#include "ingest/identity.hpp"
#include "ingest/requests.hpp"
#include "ingest/row_mapping.hpp"
#include "core/report.hpp"
#include "ingest/table_writer.hpp"

namespace influx
{

namespace
{

/*
 * Rows buffered per target before table_multi_insert, as COPY does (copyfrom.c
 * MAX_BUFFERED_TUPLES), and the bytes of line text behind them: a target's buffer is
 * written once it holds kMaxBuffered rows or kMaxBufferedBytes, and every target's once
 * all of them together hold kMaxBufferedBytesTotal.  COPY caps a buffer at 64 kB of input
 * and keeps at most 32 partitions' buffers; lines of many tiny fields make rows larger
 * than their text, so the byte caps, not the row cap, bound memory for such lines.
 */
constexpr int kMaxBuffered = 1000;
constexpr size_t kMaxBufferedBytes = 1024 * 1024;
constexpr size_t kMaxBufferedBytesTotal = 8 * 1024 * 1024;

struct Target {
    ResultRelInfo *rri;
    bool multi;           /* bulk path */
    bool foreign_batch;   /* bulk path of a foreign table: ExecForeignBatchInsert */
    bool before_row;      /* has BEFORE ROW (or INSTEAD OF ROW) insert triggers */
    bool has_generated;   /* stored generated columns */
    bool partition_check; /* a partition written directly: check its constraint */
    BulkInsertState bistate;
    TupleTableSlot **slots; /* bulk path: buffered rows */
    int *rows;              /* group row index of each buffered slot */
    int nused;
    size_t bytes;                /* line bytes of the buffered rows */
    TupleTableSlot *single_slot; /* slow path */
    TupleDesc slot_desc;         /* the slots' descriptor (CreateSlot) */

    /* Points that may exist (conflict.hpp): */
    bool upsert_only;         /* its rows go to INSERT ... ON CONFLICT statements */
    List *arbiters;           /* its index of the point key (ExecCheckIndexConstraints) */
    TupleTableSlot *existing; /* the stored row a probe found */
    AttrNumber newer_att;     /* the key leads with this time column: rows after ... */
    int64 newest;             /* ... the newest time stored when the write began need no probe */
};

} // namespace

namespace
{

struct Writer {
    Relation rel;
    TableInfo *info;
    BatchGroup *group;
    volatile WriteProgress *progress;
    ReparseFn reparse;
    EState *estate;
    ModifyTableState *mtstate;
    ResultRelInfo *root;
    PartitionTupleRouting *proute;
    TransitionCaptureState *tcs;
    TupleTableSlot *root_slot; /* partitioned tables: rows are built here, then routed */
    CommandId cid;
    bool single_only; /* slow path for every target */

    Target **targets;      /* [0] is the table itself; leaf partitions follow */
    size_t buffered_bytes; /* line bytes buffered over all targets */
    int ntargets;
    int targets_capacity;

    /* Column defaults: constant ones are evaluated once, others per row. */
    int ndefaults;
    int *default_index; /* column index (attnum - 1) */
    ExprState **default_state;
    Datum *default_value;
    bool *default_null;

    bool *is_set;         /* per row: columns that got a value from the line */
    Oid writer;           /* the role the write is made for (identity.hpp) */
    Reporter *report;     /* where rejected rows are counted and reported */
    Oid acting;           /* the user the table's code runs as */
    const bool *writable; /* per column: the writer may set it; NULL: every column */
    List *checks;         /* the table's row-level security WITH CHECK options, planned */
    int64 inserted;

    /* Points that may exist (conflict.hpp); policy error: none of this. */
    int policy;            /* INFLUX_ON_CONFLICT_* */
    bool conflict;         /* policy is not error and the table has a point key */
    bool probe;            /* conflict: every row is looked up in the point key */
    int64 taken;           /* rows a lookup found the point of */
    bool upsert_all;       /* every row goes through INSERT ... ON CONFLICT */
    bool no_defaults;      /* rows for statements: the statement applies the defaults */
    const bool *updatable; /* merge: per column, the writer may UPDATE it */
    KeySet pending;        /* points of rows taken and not yet written */
    Upserts *upserts;
    RowCounts counts; /* merged and skipped rows, and what the statements inserted */

    ColumnMemo field_memo; /* zeroed by palloc0: no key remembered yet */
    ColumnMemo tag_memo;
};

/* Gives a result relation the WITH CHECK options it evaluates before each row is stored. */
void SetChecks(ResultRelInfo *rri, List *checks)
{
    List *exprs = NIL;
    ListCell *lc;
    foreach (lc, checks) {
        auto *wco = lfirst_node(WithCheckOption, lc);
        exprs = lappend(exprs, ExecInitQual(reinterpret_cast<List *>(wco->qual), nullptr));
    }
    rri->ri_WithCheckOptions = checks;
    rri->ri_WithCheckOptionExprs = exprs;
}

/* The root's checks in a leaf partition's column numbers (as ExecInitPartitionInfo does). */
List *MapToPartition(List *checks, Relation partition, Relation root)
{
    AttrMap *map = InfluxBuildAttrmapByName(RelationGetDescr(partition), RelationGetDescr(root));
    bool whole_row = false;
    return reinterpret_cast<List *>(
        map_variable_attnos(static_cast<Node *>(copyObjectImpl(checks)), 1, 0, map,
                            RelationGetForm(partition)->reltype, &whole_row));
}

/*
 * The WITH CHECK options an INSERT by `writer` would get from the table's row-level
 * security policies (none when they are not in force for it), planned for evaluation.
 * Policies are chosen for the writer; their expressions run as the acting user.
 */
List *RowSecurityChecks(Relation rel, Oid writer)
{
    if (check_enable_rls(RelationGetRelid(rel), writer, false) != RLS_ENABLED)
        return NIL;
    Query *query = makeNode(Query);
    query->commandType = CMD_INSERT;
    query->resultRelation = 1;
    RangeTblEntry *rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = RelationGetRelid(rel);
    rte->relkind = rel->rd_rel->relkind;
    rte->rellockmode = RowExclusiveLock;
#ifdef INFLUX_HAS_RTEPERMINFO
    RTEPermissionInfo *perm = addRTEPermissionInfo(&query->rteperminfos, rte);
    perm->checkAsUser = writer;
    perm->requiredPerms = ACL_INSERT;
#else
    rte->checkAsUser = writer;
    rte->requiredPerms = ACL_INSERT;
#endif
    query->rtable = list_make1(rte);

    List *quals = NIL, *checks = NIL;
    bool has_row_security = false, has_sublinks = false;
    get_row_security_policies(query, rte, 1, &quals, &checks, &has_row_security, &has_sublinks);
    if (has_sublinks) /* IdentityRefusal turns such tables away first */
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("row-level security policies with subqueries are not supported")));
    ListCell *lc;
    foreach (lc, checks) {
        auto *wco = lfirst_node(WithCheckOption, lc);
        Expr *planned = expression_planner(reinterpret_cast<Expr *>(wco->qual));
        wco->qual = reinterpret_cast<Node *>(make_ands_implicit(planned));
    }
    return checks;
}

/*
 * A target's index of the point key: the key itself on the table, on a leaf partition the
 * index attached to it (as ExecInitPartitionInfo finds ON CONFLICT's arbiters).
 */
List *ArbitersOf(Writer *w, ResultRelInfo *rri)
{
    Oid key = w->info->key.index;
    if (rri == w->root)
        return list_make1_oid(key);
    List *arbiters = NIL;
    for (int i = 0; i < rri->ri_NumIndices; i++) {
        Oid indexoid = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
        List *ancestors = get_partition_ancestors(indexoid);
        if (list_member_oid(ancestors, key))
            arbiters = lappend_oid(arbiters, indexoid);
        list_free(ancestors);
    }
    return arbiters;
}

/*
 * Metrics arrive in time order: a point newer than every stored one cannot exist yet.  When
 * the key's first column is the (ascending) time column, the newest time in the index
 * (seen with a dirty snapshot: other writers' uncommitted rows too) is read once per write,
 * and rows after it skip the probe.  A point another writer adds meanwhile is still caught
 * by the unique index itself: the flush then isolates the row and probes it (insert.cpp).
 */
void FindNewest(Target *t)
{
    ResultRelInfo *rri = t->rri;
    Oid arbiter = linitial_oid(t->arbiters);
    Relation index = nullptr;
    for (int i = 0; i < rri->ri_NumIndices; i++)
        if (RelationGetRelid(rri->ri_IndexRelationDescs[i]) == arbiter)
            index = rri->ri_IndexRelationDescs[i];
    if (index == nullptr || (index->rd_indoption[0] & INDOPTION_DESC) != 0)
        return;
    AttrNumber att = index->rd_index->indkey.values[0];
    Form_pg_attribute time_att = TupleDescAttr(RelationGetDescr(rri->ri_RelationDesc), att - 1);
    if (att <= 0 || strcmp(NameStr(time_att->attname), "_time") != 0 ||
        (time_att->atttypid != TIMESTAMPTZOID && time_att->atttypid != TIMESTAMPOID &&
         time_att->atttypid != INT8OID))
        return;
    SnapshotData dirty;
    InitDirtySnapshot(dirty);
    IndexScanDesc scan = index_beginscan(rri->ri_RelationDesc, index, &dirty, 0, 0);
    index_rescan(scan, nullptr, 0, nullptr, 0);
    int64 newest = PG_INT64_MIN; /* an empty table: every row is new */
    bool usable = true;
    if (index_getnext_slot(scan, BackwardScanDirection, t->existing)) {
        bool isnull;
        Datum d = slot_getattr(t->existing, att, &isnull);
        usable = !isnull; /* NULLs sort last: the newest time is not known cheaply */
        newest = isnull ? 0 : DatumGetInt64(d);
    }
    index_endscan(scan);
    ExecClearTuple(t->existing);
    if (usable) {
        t->newer_att = att;
        t->newest = newest;
    }
}

/*
 * Prepares a target for probing its point key before its rows are buffered; a target that
 * the bulk path does not serve, or whose code must see the statement (its own triggers),
 * gets its rows written by statements instead.
 */
void FindNewest(Target *t);

void SetUpProbe(Writer *w, Target *t)
{
    ResultRelInfo *rri = t->rri;
    t->upsert_only = !t->multi || rri->ri_TrigDesc != nullptr;
    if (!t->upsert_only)
        t->arbiters = ArbitersOf(w, rri);
    if (t->arbiters == NIL) {
        t->upsert_only = true;
        return;
    }
    /* What a unique check needs of the index (ExecOpenIndices does it for ON CONFLICT). */
    for (int i = 0; i < rri->ri_NumIndices; i++) {
        IndexInfo *ii = rri->ri_IndexRelationInfo[i];
        if (ii->ii_Unique && ii->ii_UniqueOps == nullptr)
            BuildSpeculativeIndexInfo(rri->ri_IndexRelationDescs[i], ii);
    }
    t->existing = table_slot_create(rri->ri_RelationDesc, &w->estate->es_tupleTable);
    FindNewest(t);
}

/* Sets up a target: decides bulk or slow path as COPY does (copyfrom.c CIM_*). */
Target *AddTarget(Writer *w, ResultRelInfo *rri)
{
    auto t = static_cast<Target *>(palloc0(sizeof(Target)));
    Relation r = rri->ri_RelationDesc;
    TriggerDesc *td = rri->ri_TrigDesc;
    t->rri = rri;
    t->before_row = td != nullptr && (td->trig_insert_before_row || td->trig_insert_instead_row);
    /*
     * A foreign table whose server takes batches (postgres_fdw's batch_size above 1, and
     * no row triggers or RETURNING there) is buffered too, as COPY does.
     */
    if (rri->ri_FdwRoutine != nullptr)
        w->progress->remote = true;
    t->foreign_batch = rri->ri_FdwRoutine != nullptr && rri->ri_BatchSize > 1 &&
                       rri->ri_FdwRoutine->ExecForeignBatchInsert != nullptr;
    t->multi = !w->single_only && !t->before_row &&
               (r->rd_rel->relkind == RELKIND_RELATION || t->foreign_batch);
    t->has_generated = r->rd_att->constr != nullptr && r->rd_att->constr->has_generated_stored;
    t->partition_check = r->rd_rel->relispartition && (w->proute == nullptr || t->before_row);
    if (r->rd_rel->relkind == RELKIND_RELATION)
        t->bistate = GetBulkInsertState();
    if (rri != w->root) {
        /* A leaf's own triggers and defaults run as the partitioned table's acting user. */
        if (ActingUser(r, w->writer) != w->acting)
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("partition \"%s\" has an owner whose code cannot run as \"%s\": "
                                   "rows routed to it are refused",
                                   LogName(RelationGetRelationName(r)),
                                   LogName(GetUserNameFromId(w->acting, false)))));
        if (w->checks != NIL)
            SetChecks(rri, MapToPartition(w->checks, r, w->rel));
    }
    if (w->conflict)
        SetUpProbe(w, t);
    if (t->multi) {
        t->slots = static_cast<TupleTableSlot **>(palloc0(sizeof(TupleTableSlot *) * kMaxBuffered));
        t->rows = static_cast<int *>(palloc(sizeof(int) * kMaxBuffered));
    }
    if (w->ntargets == w->targets_capacity) {
        w->targets_capacity *= 2;
        w->targets =
            static_cast<Target **>(repalloc(w->targets, sizeof(Target *) * w->targets_capacity));
    }
    w->targets[w->ntargets++] = t;
    return t;
}

/* The target of a routed leaf partition (few per batch: a linear search is fine). */
Target *TargetFor(Writer *w, ResultRelInfo *rri)
{
    for (int i = w->ntargets - 1; i >= 0; i--)
        if (w->targets[i]->rri == rri)
            return w->targets[i];
    MemoryContext old = MemoryContextSwitchTo(w->estate->es_query_cxt);
    Target *t = AddTarget(w, rri);
    MemoryContextSwitchTo(old);
    return t;
}

/*
 * A slot for a target's rows, living as long as the executor state.  The slots share a
 * private copy of the descriptor, which is not reference-counted: on the relcache's own
 * descriptor, each of up to kMaxBuffered slots would be remembered by the resource owner,
 * whose hash puts every reference to one descriptor in the same bucket (quadratic).
 */
TupleTableSlot *CreateSlot(Writer *w, Target *t)
{
    MemoryContext old = MemoryContextSwitchTo(w->estate->es_query_cxt);
    Relation rel = t->rri->ri_RelationDesc;
    if (t->slot_desc == nullptr)
        t->slot_desc = CreateTupleDescCopy(RelationGetDescr(rel));
    TupleTableSlot *slot =
        ExecAllocTableSlot(&w->estate->es_tupleTable, t->slot_desc, table_slot_callbacks(rel));
    MemoryContextSwitchTo(old);
    return slot;
}

/* The slot the next row of a target is built or copied into. */
TupleTableSlot *NextSlot(Writer *w, Target *t)
{
    if (!t->multi) {
        if (t->single_slot == nullptr)
            t->single_slot = CreateSlot(w, t);
        return t->single_slot;
    }
    if (t->slots[t->nused] == nullptr)
        t->slots[t->nused] = CreateSlot(w, t);
    return t->slots[t->nused];
}

/*
 * Writes a foreign target's buffered rows in batches of the server's batch size, then
 * their AFTER ROW triggers (as copyfrom.c's CopyMultiInsertBufferFlush does).
 */
void FlushForeignTarget(Writer *w, Target *t)
{
    EState *estate = w->estate;
    ResultRelInfo *rri = t->rri;
    TriggerDesc *td = rri->ri_TrigDesc;
    Oid relid = RelationGetRelid(rri->ri_RelationDesc);
    /* The FDW keeps what it prepares in the current context: the query's, as in INSERT. */
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
    w->progress->row = -1;
    for (int sent = 0; sent < t->nused;) {
        int size = Min(rri->ri_BatchSize, t->nused - sent);
        int inserted = size;
        TupleTableSlot **done = rri->ri_FdwRoutine->ExecForeignBatchInsert(
            estate, rri, &t->slots[sent], nullptr, &inserted);
        sent += size;
        for (int k = 0; k < inserted && td != nullptr && td->trig_insert_after_row; k++) {
            done[k]->tts_tableOid = relid;
            ExecARInsertTriggers(estate, rri, done[k], NIL, w->tcs);
        }
        w->inserted += Max(inserted, 0);
    }
    MemoryContextSwitchTo(old);
    for (int k = 0; k < t->nused; k++)
        ExecClearTuple(t->slots[k]);
    w->buffered_bytes -= t->bytes;
    t->nused = 0;
    t->bytes = 0;
    ResetPerTupleExprContext(estate);
}

/* Writes a target's buffered rows, then their index entries and AFTER ROW triggers. */
void FlushTarget(Writer *w, Target *t)
{
    if (t->nused == 0)
        return;
    if (t->foreign_batch) {
        FlushForeignTarget(w, t);
        return;
    }
    EState *estate = w->estate;
    ResultRelInfo *rri = t->rri;
    TriggerDesc *td = rri->ri_TrigDesc;
    bool after_row = (td != nullptr && td->trig_insert_after_row) ||
                     (w->tcs != nullptr && w->tcs->tcs_insert_new_table);

    /* heap_multi_insert leaks into the current context: use the per-tuple one. */
    MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
    w->progress->row = -1;
    table_multi_insert(rri->ri_RelationDesc, t->slots, t->nused, w->cid, 0, t->bistate);
    MemoryContextSwitchTo(old);

    for (int k = 0; k < t->nused; k++) {
        TupleTableSlot *slot = t->slots[k];
        w->progress->row = t->rows[k];
        if (rri->ri_NumIndices > 0) {
            List *recheck = InfluxExecInsertIndexTuples(rri, slot, estate);
            if (after_row || recheck != NIL)
                ExecARInsertTriggers(estate, rri, slot, recheck, w->tcs);
            list_free(recheck);
        } else if (after_row) {
            ExecARInsertTriggers(estate, rri, slot, NIL, w->tcs);
        }
        ExecClearTuple(slot);
    }
    w->inserted += t->nused;
    w->buffered_bytes -= t->bytes;
    t->nused = 0;
    t->bytes = 0;
    ResetPerTupleExprContext(estate);
}

void FlushAll(Writer *w)
{
    for (int i = 0; i < w->ntargets; i++)
        FlushTarget(w, w->targets[i]);
}

/* Buffers the row of group row `i` in its target's next slot; flushes what is full. */
void BufferRow(Writer *w, Target *t, TupleTableSlot *slot, int i, size_t line_len)
{
    ExecMaterializeSlot(slot);
    t->rows[t->nused++] = i;
    t->bytes += line_len;
    w->buffered_bytes += line_len;
    if (t->nused == kMaxBuffered || t->bytes >= kMaxBufferedBytes)
        FlushTarget(w, t);
    else if (w->buffered_bytes >= kMaxBufferedBytesTotal)
        FlushAll(w);
}

/* The slow path for one row: INSERT's steps (ExecInsert) in INSERT's order. */
void InsertOne(Writer *w, Target *t, TupleTableSlot *slot)
{
    EState *estate = w->estate;
    ResultRelInfo *rri = t->rri;
    Relation r = rri->ri_RelationDesc;

    /*
     * Triggers and RI checks of this row must see the rows before it.  Flushing resets the
     * per-tuple memory this row's values may live in (a converted partition row, say), so
     * the slot gets its own copy first.
     */
    ExecMaterializeSlot(slot);
    FlushAll(w);

    if (t->before_row && rri->ri_TrigDesc->trig_insert_before_row) {
        if (!ExecBRInsertTriggers(estate, rri, slot))
            return; /* the trigger skipped the row */
    }
    if (t->has_generated)
        ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);

    if (rri->ri_FdwRoutine != nullptr) {
        /* The FDW keeps what it prepares in the current context: the query's, as in INSERT. */
        MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
        slot = rri->ri_FdwRoutine->ExecForeignInsert(estate, rri, slot, nullptr);
        MemoryContextSwitchTo(old);
        if (slot == nullptr)
            return;
        ExecARInsertTriggers(estate, rri, slot, NIL, w->tcs);
    } else {
        if (rri->ri_WithCheckOptions != NIL)
            ExecWithCheckOptions(WCO_RLS_INSERT_CHECK, rri, slot, estate);
        if (r->rd_att->constr != nullptr)
            ExecConstraints(rri, slot, estate);
        if (t->partition_check)
            ExecPartitionCheck(rri, slot, estate, true);
        if (t->bistate == nullptr)
            t->bistate = GetBulkInsertState();
        table_tuple_insert(r, slot, w->cid, 0, t->bistate);
        List *recheck =
            rri->ri_NumIndices > 0 ? InfluxExecInsertIndexTuples(rri, slot, estate) : NIL;
        ExecARInsertTriggers(estate, rri, slot, recheck, w->tcs);
        list_free(recheck);
    }
    w->inserted++;
}

/*
 * Marks a row rejected, counts it and reports "row rejected: table "<t>"" followed by
 * what `fmt` says.  Returns false, for the caller to return.
 */
bool RejectRow(Writer *w, BatchRow *row, Counter counter, const char *fmt, ...)
    pg_attribute_printf(4, 5);

bool RejectRow(Writer *w, BatchRow *row, Counter counter, const char *fmt, ...)
{
    char detail[INFLUX_ERROR_TEXT];
    va_list args;
    va_start(args, fmt);
    pg_vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);
    Problem(w->report, counter, 1, "row rejected: table \"%s\"%s",
            LogName(get_rel_name(w->info->relid)), detail);
    if (!row->rejected)
        RequestRejected(row->request, w->report->last);
    row->rejected = true;
    return false;
}

/* Counts and reports a value that does not convert; the row is marked and skipped. */
void RejectValue(Writer *w, BatchRow *row, const ColumnInfo *col, ValueRef value,
                 const char *reason)
{
    char desc[96];
    DescribeValue(value, desc, sizeof(desc));
    (void) RejectRow(w, row, kRowsRejectedValue, ", column \"%s\", %s: %s", LogName(col->name),
                     desc, reason);
}

/* Assigns one tag or field value to its column; false when the row is rejected. */
bool SetValue(Writer *w, BatchRow *row, int idx, ValueRef value, TupleTableSlot *slot)
{
    const ColumnInfo *col = &w->info->columns[idx];
    char reason[INFLUX_REASON_SIZE];
    w->progress->column = col->name;
    bool ok = ValueToDatum(col, value, &slot->tts_values[idx], reason);
    w->progress->column = nullptr;
    if (!ok) {
        RejectValue(w, row, col, value, reason);
        return false;
    }
    slot->tts_isnull[idx] = false;
    w->is_set[idx] = true;
    return true;
}

/*
 * The values a line gives a row, in the table's (root's) column order: time, fields, tags
 * (a field wins over a tag of the same name), leftovers as jsonb.  False when the row was
 * rejected.  Kept in one function: it applies the mapping rule (row_mapping.hpp) in order.
 */
bool FillFromLine(Writer *w, BatchRow *row, TupleTableSlot *slot)
{
    const TableInfo *info = w->info;
    int natts = info->natts;
    Point line;
    line.tags = row->tags;
    line.ntags = row->ntags;
    line.fields = row->fields;
    line.nfields = row->nfields;
    if (row->values != nullptr && !w->reparse(row, &line)) {
        /* Built for another version of the table, and its line does not parse again. */
        return RejectRow(w, row, kRowsRejectedInsert, ": its line no longer parses");
    }
    for (int i = 0; i < natts; i++)
        slot->tts_isnull[i] = true;
    memset(w->is_set, 0, natts);

    char reason[INFLUX_REASON_SIZE];
    if (info->time_column >= 0) {
        int tc = info->time_column;
        if (!TimeToDatum(&info->columns[tc], row->time_ns, &slot->tts_values[tc], reason)) {
            return RejectRow(w, row, kRowsRejectedValue, ", column \"_time\": %s", reason);
        }
        slot->tts_isnull[tc] = false;
        w->is_set[tc] = true;
    }

    const Tag **left_tags = nullptr;
    const Field **left_fields = nullptr;
    int nleft_tags = 0, nleft_fields = 0;
    if (info->tags_column >= 0 && line.ntags > 0)
        left_tags = static_cast<const Tag **>(palloc(sizeof(Tag *) * line.ntags));
    if (info->fields_column >= 0 && line.nfields > 0)
        left_fields = static_cast<const Field **>(palloc(sizeof(Field *) * line.nfields));

    /* Fields first: a field wins over a tag of the same name, which is then a leftover. */
    for (uint32 i = 0; i < line.nfields; i++) {
        const Field *field = &line.fields[i];
        int idx = MemoValueColumn(&w->field_memo, info, i, field->key);
        if (idx >= 0) {
            if (!SetValue(w, row, idx, ValueRef{nullptr, field}, slot))
                return false;
        } else if (left_fields != nullptr) {
            left_fields[nleft_fields++] = field;
        }
    }
    for (uint32 i = 0; i < line.ntags; i++) {
        const Tag *tag = &line.tags[i];
        int idx = MemoValueColumn(&w->tag_memo, info, i, tag->key);
        if (idx >= 0 && !w->is_set[idx]) {
            if (!SetValue(w, row, idx, ValueRef{&tag->value, nullptr}, slot))
                return false;
        } else if (left_tags != nullptr) {
            left_tags[nleft_tags++] = tag;
        }
    }

    /* Leftovers: only when there are some; otherwise the column gets its default. */
    if (nleft_tags > 0) {
        int c = info->tags_column;
        if (!TagsToJsonb(left_tags, nleft_tags, &slot->tts_values[c], reason)) {
            return RejectRow(w, row, kRowsRejectedValue, ", column \"_tags\": %s", reason);
        }
        slot->tts_isnull[c] = false;
        w->is_set[c] = true;
    }
    if (nleft_fields > 0) {
        int c = info->fields_column;
        if (!FieldsToJsonb(left_fields, nleft_fields, &slot->tts_values[c], reason)) {
            return RejectRow(w, row, kRowsRejectedValue, ", column \"_fields\": %s", reason);
        }
        slot->tts_isnull[c] = false;
        w->is_set[c] = true;
    }
    return true;
}

/* Gives every column the row's line did not set its default (is_set says which it set). */
void FillDefaults(Writer *w, TupleTableSlot *slot)
{
    ExprContext *econtext = GetPerTupleExprContext(w->estate);
    for (int d = 0; d < w->ndefaults; d++) {
        int c = w->default_index[d];
        if (w->is_set[c])
            continue;
        if (w->default_state[d] == nullptr) {
            slot->tts_values[c] = w->default_value[d];
            slot->tts_isnull[c] = w->default_null[d];
        } else {
            slot->tts_values[c] = ExecEvalExpr(w->default_state[d], econtext, &slot->tts_isnull[c]);
        }
    }
}

/*
 * Fills a slot with one row: the values of its line (converted now, or when it was built),
 * then defaults for every column the line did not give a value.  False when the row was
 * rejected.
 */
bool FillSlot(Writer *w, BatchRow *row, TupleTableSlot *slot)
{
    int natts = w->info->natts;
    ExecClearTuple(slot);
    if (row->values != nullptr && w->group->build_info == w->info) {
        const int16 *columns = reinterpret_cast<const int16 *>(row->values + row->nvalues);
        for (int i = 0; i < natts; i++)
            slot->tts_isnull[i] = true;
        memset(w->is_set, 0, natts);
        for (int k = 0; k < row->nvalues; k++) {
            int c = columns[k];
            slot->tts_values[c] = row->values[k];
            slot->tts_isnull[c] = false;
            w->is_set[c] = true;
        }
    } else if (!FillFromLine(w, row, slot)) {
        return false;
    }
    if (w->writable != nullptr) {
        /* INSERT with column privileges: every column the row sets must be granted. */
        for (int c = 0; c < natts; c++) {
            if (w->is_set[c] && !w->writable[c]) {
                return RejectRow(w, row, kRowsRejectedTable,
                                 ": permission denied for column \"%s\"",
                                 LogName(w->info->columns[c].name));
            }
        }
    }

    if (w->updatable != nullptr) {
        /* merge: ON CONFLICT DO UPDATE needs UPDATE on every column it sets. */
        for (int c = 0; c < natts; c++) {
            if (w->is_set[c] && !w->updatable[c]) {
                return RejectRow(w, row, kRowsRejectedTable,
                                 ": permission denied for column \"%s\" (influx.on_conflict "
                                 "merge updates it)",
                                 LogName(w->info->columns[c].name));
            }
        }
    }

    if (!w->no_defaults)
        FillDefaults(w, slot);
    ExecStoreVirtualTuple(slot);
    return true;
}

/*
 * Prepares the defaults of every column that may be left out: planned once per write,
 * constants evaluated once.  Returns true if one of them is volatile (nextval() excepted,
 * as in COPY), which sends every row down the slow path.
 */
bool PrepareDefaults(Writer *w)
{
    TupleDesc desc = RelationGetDescr(w->rel);
    int n = w->info->nmay_default;
    w->default_index = static_cast<int *>(palloc(sizeof(int) * Max(n, 1)));
    w->default_state = static_cast<ExprState **>(palloc(sizeof(ExprState *) * Max(n, 1)));
    w->default_value = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    w->default_null = static_cast<bool *>(palloc(sizeof(bool) * Max(n, 1)));
    bool is_volatile = false;
    /* Not every column: a wide table's descriptor is not walked on every write. */
    for (int k = 0; k < w->info->nmay_default; k++) {
        int i = w->info->may_default[k];
        Node *def = build_column_default(w->rel, TupleDescAttr(desc, i)->attnum);
        if (def == nullptr)
            continue;
        Expr *expr = expression_planner(reinterpret_cast<Expr *>(def));
        int d = w->ndefaults++;
        w->default_index[d] = i;
        w->default_state[d] = nullptr;
        if (IsA(expr, Const)) {
            Const *c = reinterpret_cast<Const *>(expr);
            w->default_value[d] = c->constvalue;
            w->default_null[d] = c->constisnull;
        } else {
            w->default_state[d] = ExecInitExpr(expr, nullptr);
            if (contain_volatile_functions_not_nextval(reinterpret_cast<Node *>(expr)))
                is_volatile = true;
        }
    }
    return is_volatile;
}

/* Executor state for the table: range table, result relation, indexes, triggers. */
void SetUp(Writer *w)
{
    Relation rel = w->rel;
    EState *estate = CreateExecutorState();
    w->estate = estate;
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

    RangeTblEntry *rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = RelationGetRelid(rel);
    rte->relkind = rel->rd_rel->relkind;
    rte->rellockmode = RowExclusiveLock;
#ifdef INFLUX_HAS_RTEPERMINFO
    List *perminfos = NIL;
    addRTEPermissionInfo(&perminfos, rte);
    ExecInitRangeTable(estate, list_make1(rte), perminfos);
#else
    ExecInitRangeTable(estate, list_make1(rte));
#endif

    ResultRelInfo *rri = makeNode(ResultRelInfo);
    InitResultRelInfo(rri, rel, 1, nullptr, 0);
    estate->es_opened_result_relations = lappend(estate->es_opened_result_relations, rri);
    estate->es_output_cid = w->cid = GetCurrentCommandId(true);
    w->root = rri;
    InfluxCheckValidResultRel(rri);
    ExecOpenIndices(rri, w->conflict);

    /* A dummy ModifyTableState: FDWs and partition routing want one. */
    ModifyTableState *mtstate = makeNode(ModifyTableState);
    mtstate->ps.plan = nullptr;
    mtstate->ps.state = estate;
    mtstate->operation = CMD_INSERT;
    mtstate->mt_nrels = 1;
    mtstate->resultRelInfo = rri;
    mtstate->rootResultRelInfo = rri;
    w->mtstate = mtstate;

    if (rri->ri_FdwRoutine != nullptr && rri->ri_FdwRoutine->BeginForeignInsert != nullptr)
        rri->ri_FdwRoutine->BeginForeignInsert(mtstate, rri);
    /*
     * The batch size the server takes, as copyfrom.c sets it (partitions get theirs from
     * ExecInitRoutingInfo): the FDW asks for ri_BatchSize still 0.
     */
    if (rri->ri_FdwRoutine != nullptr && rri->ri_FdwRoutine->GetForeignModifyBatchSize != nullptr &&
        rri->ri_FdwRoutine->ExecForeignBatchInsert != nullptr)
        rri->ri_BatchSize = rri->ri_FdwRoutine->GetForeignModifyBatchSize(rri);
    else
        rri->ri_BatchSize = 1;

    w->tcs = mtstate->mt_transition_capture =
        MakeTransitionCaptureState(rel->trigdesc, RelationGetRelid(rel), CMD_INSERT);

    bool partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
    if (partitioned)
        w->proute = ExecSetupPartitionTupleRouting(estate, rel);

    bool volatile_defaults = PrepareDefaults(w);
    w->single_only = volatile_defaults || (partitioned && w->tcs != nullptr);

    w->checks = RowSecurityChecks(rel, w->writer);
    if (w->checks != NIL)
        SetChecks(rri, w->checks);

    w->targets_capacity = 4;
    w->targets = static_cast<Target **>(palloc(sizeof(Target *) * w->targets_capacity));
    AddTarget(w, rri);
    if (partitioned)
        w->root_slot = table_slot_create(rel, &estate->es_tupleTable);
    w->is_set = static_cast<bool *>(palloc(Max(w->info->natts, 1)));

    MemoryContextSwitchTo(old);

    AfterTriggerBeginQuery();
    ExecBSInsertTriggers(estate, rri);
}

/*
 * Writes every row taken: the bulk buffers, then the statements (their points are all
 * different, so the order between the two does not matter).
 */
void WritePending(Writer *w)
{
    FlushAll(w);
    if (w->upserts != nullptr) {
        UpsertsRun(w->upserts, &w->counts, &w->progress->row);
        KeySetClear(&w->pending);
    }
}

/* Flushes, fires statement-level and queued AFTER triggers, releases everything. */
void Finish(Writer *w)
{
    EState *estate = w->estate;
    WritePending(w);
    w->progress->stage = WriteStage::Finish;
    w->progress->row = -1;

    ExecASInsertTriggers(estate, w->root, w->tcs);
    AfterTriggerEndQuery(estate);

    for (int i = 0; i < w->ntargets; i++) {
        Target *t = w->targets[i];
        if (t->bistate != nullptr) {
            FreeBulkInsertState(t->bistate);
            table_finish_bulk_insert(t->rri->ri_RelationDesc, 0);
        }
    }
    if (w->proute != nullptr)
        ExecCleanupTupleRouting(w->mtstate, w->proute);
    if (w->root->ri_FdwRoutine != nullptr && w->root->ri_FdwRoutine->EndForeignInsert != nullptr)
        w->root->ri_FdwRoutine->EndForeignInsert(estate, w->root);
    /* The root's indexes, and the relations AFTER ROW triggers of leaves opened. */
    ExecCloseResultRelations(estate);
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
}

/*
 * Whether writing the row in `slot` onto the stored row at `tid` would change nothing: the
 * columns the policy sets hold the same values (equal images).  Then the row is not
 * written at all (no new row version), as a retried point should cost nothing.
 */
bool Unchanged(Writer *w, Target *t, TupleTableSlot *slot, ItemPointer tid)
{
    Relation r = t->rri->ri_RelationDesc;
    TupleTableSlot *existing = t->existing;
    if (!table_tuple_fetch_row_version(r, tid, SnapshotAny, existing))
        return false;
    slot_getallattrs(existing);
    slot_getallattrs(slot);
    TupleConversionMap *map = t->rri == w->root ? nullptr : InfluxRootToChildMap(t->rri, w->estate);
    TupleDesc desc = RelationGetDescr(r);
    bool same = true;
    for (int i = 0; i < desc->natts && same; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped)
            continue;
        int root = map != nullptr ? map->attrMap->attnums[i] - 1 : i;
        if (root < 0 || root >= w->info->natts)
            continue;
        bool compare = w->policy == INFLUX_ON_CONFLICT_REPLACE
                           ? w->info->columns[root].assignable && att->attidentity == '\0'
                           : w->is_set[root];
        if (!compare)
            continue;
        if (slot->tts_isnull[i] != existing->tts_isnull[i])
            same = false;
        else if (!slot->tts_isnull[i])
            same = datum_image_eq(slot->tts_values[i], existing->tts_values[i], att->attbyval,
                                  att->attlen);
    }
    ExecClearTuple(existing);
    return same;
}

/*
 * The privileges an INSERT ... ON CONFLICT by the writer needs beyond INSERT: SELECT on
 * the key's columns (the conflict target), and UPDATE on what DO UPDATE sets (replace:
 * every column it sets, checked here; merge: the columns a line gives, checked per row).
 */
void CheckConflictPrivileges(Writer *w)
{
    TableInfo *info = w->info;
    const bool *selectable = ColumnsGranted(w->rel, w->writer, ACL_SELECT);
    for (int k = 0; k < info->key.ncols && selectable != nullptr; k++) {
        const ColumnInfo *col = &info->columns[info->key.cols[k]];
        if (!selectable[info->key.cols[k]])
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("permission denied for column \"%s\": influx.on_conflict %s "
                                   "reads the point key",
                                   LogName(col->name), ConflictPolicyName(w->policy))));
    }
    if (w->policy == INFLUX_ON_CONFLICT_SKIP)
        return;
    bool *updatable = ColumnsGranted(w->rel, w->writer, ACL_UPDATE);
    if (updatable == nullptr)
        return;
    TupleDesc desc = RelationGetDescr(w->rel);
    for (int k = 0; k < info->key.ncols; k++)
        updatable[info->key.cols[k]] = true; /* never set */
    for (int c = 0; c < info->natts; c++) {
        Form_pg_attribute att = TupleDescAttr(desc, c);
        if (att->attisdropped || !info->columns[c].assignable || updatable[c])
            continue;
        if (w->policy == INFLUX_ON_CONFLICT_REPLACE && att->attidentity == '\0')
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("permission denied for column \"%s\": influx.on_conflict "
                                   "replace updates it",
                                   LogName(info->columns[c].name))));
    }
    w->updatable = updatable;
}

/*
 * Row i of the write, as each row loop takes it: NULL if it was rejected already; else a
 * cancel is answered, the progress set, and the per-tuple memory reset and made current
 * (*old: the context to switch back to once the row is done).
 */
BatchRow *StartRow(Writer *w, int i, MemoryContext *old)
{
    BatchRow *row = &w->group->rows[i];
    if (row->rejected)
        return nullptr;
    CHECK_FOR_INTERRUPTS();
    w->progress->row = i;
    ResetPerTupleExprContext(w->estate);
    *old = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));
    return row;
}

/*
 * Rows of a table whose own code must see the statement: all of them through INSERT ...
 * ON CONFLICT statements, which apply defaults, triggers, policies and routing themselves.
 */
void WriteAllAsUpserts(Writer *w, int lo, int hi)
{
    EState *estate = CreateExecutorState();
    w->estate = estate;
    w->no_defaults = true;
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
    w->is_set = static_cast<bool *>(palloc(Max(w->info->natts, 1)));
    TupleTableSlot *slot =
        ExecAllocTableSlot(&estate->es_tupleTable, RelationGetDescr(w->rel), &TTSOpsVirtual);
    KeySetInit(&w->pending, estate->es_query_cxt);
    w->upserts = UpsertsCreate(w->rel, w->info, w->policy, estate->es_query_cxt);
    MemoryContextSwitchTo(old);
    TupleDesc desc = RelationGetDescr(w->rel);

    w->progress->stage = WriteStage::Rows;
    for (int i = lo; i < hi; i++) {
        BatchRow *row = StartRow(w, i, &old);
        if (row == nullptr)
            continue;
        if (FillSlot(w, row, slot)) {
            uint64 point = w->conflict ? PointHash(w->info, desc, slot) : 0;
            /*
             * Triggers see the rows in line order: a row of another shape (another
             * statement) than the last one goes after what is pending; a row of a point that
             * is pending too, in any table.
             */
            if (w->rel->trigdesc != nullptr && UpsertsOtherShape(w->upserts, w->is_set)) {
                WritePending(w);
                w->progress->row = i;
            }
            if (w->conflict && !KeySetAdd(&w->pending, point)) {
                WritePending(w);
                w->progress->row = i;
                (void) KeySetAdd(&w->pending, point);
            }
            UpsertsAdd(w->upserts, i, slot, w->is_set, false);
            if (UpsertsFull(w->upserts))
                WritePending(w);
        }
        MemoryContextSwitchTo(old);
    }
    WritePending(w);
    w->progress->stage = WriteStage::Finish;
    w->progress->row = -1;
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
}

/* Whether an INSERT into `rel` runs triggers (of any kind: row, statement, RI checks). */
bool HasInsertTriggers(Relation rel)
{
    const TriggerDesc *td = rel->trigdesc;
    return td != nullptr && (td->trig_insert_before_row || td->trig_insert_after_row ||
                             td->trig_insert_instead_row || td->trig_insert_before_statement ||
                             td->trig_insert_after_statement || td->trig_insert_new_table);
}

/*
 * Opens the relations of a Citus table's shards placed on this node as targets of the bulk
 * path.  False, with nothing left open, when one of them has code of its own to run on a
 * write (an INSERT trigger, a foreign key's check: Citus runs a distributed table's triggers
 * on its shards), another owner
 * than the table, or is not an ordinary table: the table is then written by statements.
 */
bool OpenLocalShards(Writer *w, const CitusShardMap *map, Target **targets,
                     TupleConversionMap **conversions)
{
    TupleDesc desc = RelationGetDescr(w->rel);
    bool ok = true;
    for (int i = 0; i < map->nshards && ok; i++) {
        targets[i] = nullptr;
        conversions[i] = nullptr;
        if (!OidIsValid(map->shards[i].local_relid))
            continue;
        Relation shard = table_open(map->shards[i].local_relid, RowExclusiveLock);
        if (shard->rd_rel->relkind != RELKIND_RELATION || HasInsertTriggers(shard) ||
            shard->rd_rules != nullptr || shard->rd_rel->relrowsecurity ||
            shard->rd_rel->relowner != w->rel->rd_rel->relowner) {
            table_close(shard, RowExclusiveLock);
            ok = false;
            break;
        }
        ResultRelInfo *rri = makeNode(ResultRelInfo);
        InitResultRelInfo(rri, shard, 0, nullptr, 0);
        InfluxCheckValidResultRel(rri);
        ExecOpenIndices(rri, false);
        targets[i] = AddTarget(w, rri);
        /* A shard made after a column of the table was dropped has no such column. */
        conversions[i] = convert_tuples_by_name(desc, RelationGetDescr(shard));
    }
    if (ok)
        return true;
    for (int i = 0; i < map->nshards; i++) {
        if (targets[i] == nullptr)
            continue;
        ExecCloseIndices(targets[i]->rri);
        table_close(targets[i]->rri->ri_RelationDesc, RowExclusiveLock);
    }
    w->ntargets = 0;
    return false;
}

/*
 * A Citus table with shards on this node (docs/scale-out.md, "Shards on this node"): the
 * rows of those shards go into the shard relations by the bulk path, as COPY into a local
 * table would (constraints, indexes, generated columns; Citus would write them the same way,
 * through a local COPY of rows it encoded first); the others go to the statement that Citus
 * routes to the other nodes, in the same transaction.  False, having written nothing, when
 * the table must be written by statements only (volatile defaults, a shard with triggers).
 */
bool WriteThroughLocalShards(Writer *w, const CitusShardMap *map, int lo, int hi)
{
    EState *estate = CreateExecutorState();
    w->estate = estate;
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
    estate->es_output_cid = w->cid = GetCurrentCommandId(true);
#ifdef INFLUX_HAS_RTEPERMINFO
    ExecInitRangeTable(estate, NIL, NIL);
#else
    ExecInitRangeTable(estate, NIL);
#endif
    w->targets_capacity = Max(map->nlocal, 1);
    w->targets = static_cast<Target **>(palloc(sizeof(Target *) * w->targets_capacity));
    auto targets = static_cast<Target **>(palloc0(sizeof(Target *) * map->nshards));
    auto conversions =
        static_cast<TupleConversionMap **>(palloc0(sizeof(TupleConversionMap *) * map->nshards));
    if (PrepareDefaults(w) || !OpenLocalShards(w, map, targets, conversions)) {
        MemoryContextSwitchTo(old);
        FreeExecutorState(estate);
        w->estate = nullptr;
        w->ndefaults = 0;
        w->targets = nullptr;
        return false;
    }
    w->is_set = static_cast<bool *>(palloc(Max(w->info->natts, 1)));
    TupleTableSlot *slot =
        ExecAllocTableSlot(&estate->es_tupleTable, RelationGetDescr(w->rel), &TTSOpsVirtual);
    w->upserts = UpsertsCreate(w->rel, w->info, w->policy, estate->es_query_cxt);
    MemoryContextSwitchTo(old);
    /* The shards' metadata locks, and each shard with its indexes. */
    w->progress->relations += map->nlocal;
    for (int i = 0; i < w->ntargets; i++)
        w->progress->relations += 1 + w->targets[i]->rri->ri_NumIndices;
    /* Defaults only for the rows written here: the statement applies them to the others. */
    w->no_defaults = true;

    AfterTriggerBeginQuery();
    w->progress->stage = WriteStage::Rows;
    const int column = map->column - 1;
    for (int i = lo; i < hi; i++) {
        BatchRow *row = StartRow(w, i, &old);
        if (row == nullptr)
            continue;
        if (FillSlot(w, row, slot)) {
            int s = slot->tts_isnull[column] ? -1 : CitusShardOf(map, slot->tts_values[column]);
            Target *t = s >= 0 ? targets[s] : nullptr;
            if (t == nullptr) {
                /* Another node's shard (or no shard: Citus says why). */
                UpsertsAdd(w->upserts, i, slot, w->is_set, false);
                if (UpsertsFull(w->upserts))
                    WritePending(w);
            } else {
                FillDefaults(w, slot);
                TupleTableSlot *dst = NextSlot(w, t);
                if (conversions[s] != nullptr)
                    dst = execute_attr_map_slot(conversions[s]->attrMap, slot, dst);
                else
                    dst = ExecCopySlot(dst, slot);
                dst->tts_tableOid = RelationGetRelid(t->rri->ri_RelationDesc);
                if (t->has_generated)
                    ExecComputeStoredGenerated(t->rri, estate, dst, CMD_INSERT);
                if (t->rri->ri_RelationDesc->rd_att->constr != nullptr)
                    ExecConstraints(t->rri, dst, estate);
                BufferRow(w, t, dst, i, row->line_len);
            }
        }
        MemoryContextSwitchTo(old);
    }
    WritePending(w);
    w->progress->stage = WriteStage::Finish;
    w->progress->row = -1;
    AfterTriggerEndQuery(estate);
    for (int i = 0; i < w->ntargets; i++) {
        Target *t = w->targets[i];
        FreeBulkInsertState(t->bistate);
        table_finish_bulk_insert(t->rri->ri_RelationDesc, 0);
        ExecCloseIndices(t->rri);
        table_close(t->rri->ri_RelationDesc, NoLock);
    }
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
    elog(DEBUG1,
         "pg_influx: %lld rows into the %d shards of \"%s\" on this node, %lld through Citus",
         static_cast<long long>(w->inserted), map->nlocal, LogName(RelationGetRelationName(w->rel)),
         static_cast<long long>(w->counts.inserted));
    w->counts.inserted += w->inserted;
    return true;
}

/* What a row of the bulk path does when its point may exist. */
enum class Probe { Insert, Taken };

/*
 * Probes the point key for a row about to be buffered: a new point is inserted by the
 * bulk path; an existing one is skipped, found unchanged, or left to a statement.
 */
Probe ProbePoint(Writer *w, Target *t, int i, TupleTableSlot *slot, TupleTableSlot *row_slot)
{
    if (t->newer_att > 0) {
        bool isnull;
        Datum time = slot_getattr(slot, t->newer_att, &isnull);
        if (!isnull && DatumGetInt64(time) > t->newest)
            return Probe::Insert;
    }
    ItemPointerData tid;
    if (ExecCheckIndexConstraints(t->rri, slot, w->estate, &tid, t->arbiters))
        return Probe::Insert;
    if (w->policy == INFLUX_ON_CONFLICT_SKIP)
        w->counts.skipped++;
    else if (Unchanged(w, t, slot, &tid))
        w->counts.merged++;
    else
        UpsertsAdd(w->upserts, i, row_slot, w->is_set, true);
    return Probe::Taken;
}

} // namespace

/*
 * After a table's write found existing points, its next kProbeWrites optimistic writes
 * probe too: a resent batch then costs one failed attempt, not one per flush.
 */
constexpr int kProbeWrites = 32;

RowCounts WriteRows(Relation rel, TableInfo *info, Oid writer, Reporter *report, BatchGroup *group,
                    int lo, int hi, volatile WriteProgress *progress, ReparseFn reparse,
                    ConflictSearch search)
{
    Writer *w = static_cast<Writer *>(palloc0(sizeof(Writer)));
    w->rel = rel;
    w->writer = writer;
    w->report = report;
    w->writable = ColumnsWritable(rel, writer);
    w->info = info;
    w->group = group;
    w->progress = progress;
    w->reparse = reparse;
    progress->stage = WriteStage::Setup;
    progress->row = -1;
    progress->column = nullptr;

    w->policy = ConflictPolicyFor(info);
    w->conflict = w->policy != INFLUX_ON_CONFLICT_ERROR;
    w->probe = w->conflict && (search == ConflictSearch::Probe || info->probe_writes > 0);
    progress->merges = w->conflict;
    progress->optimistic = w->conflict && !w->probe;
    progress->relations = 1 + list_length(RelationGetIndexList(rel));
    /* A Citus table's relation is a shell: only a statement reaches its shards. */
    w->upsert_all = info->distributed;
    if (w->conflict) {
        CheckConflictPrivileges(w);
        /*
         * The table's code (its triggers, a foreign server) must see the statement; with
         * row-level security, ON CONFLICT DO UPDATE checks UPDATE and SELECT policies too.
         */
        w->upsert_all = w->upsert_all || rel->trigdesc != nullptr ||
                        rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE ||
                        (w->policy != INFLUX_ON_CONFLICT_SKIP &&
                         check_enable_rls(RelationGetRelid(rel), writer, false) == RLS_ENABLED);
    }

    /* The table's own code, from its defaults to its AFTER triggers, runs as `acting`. */
    Acting acting;
    w->acting = ActingUser(rel, writer);
    if (!OidIsValid(w->acting)) /* IdentityRefusal turns such tables away first */
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("the table's owner and the writing role do not hold each "
                               "other's privileges")));
    BeginActing(&acting, w->acting, w->acting != writer);
    /* (Citus gives every distributed table a TRUNCATE trigger: only INSERT's count.) */
    if (info->distributed && !w->conflict && !rel->rd_rel->relispartition &&
        !HasInsertTriggers(rel) && rel->rd_rules == nullptr && UpsertsTakeArrays(info) &&
        check_enable_rls(RelationGetRelid(rel), writer, false) != RLS_ENABLED) {
        CitusShardMap map;
        if (CitusLocalShards(rel, &map) && WriteThroughLocalShards(w, &map, lo, hi)) {
            EndActing(&acting);
            return w->counts;
        }
    }
    if (w->upsert_all) {
        WriteAllAsUpserts(w, lo, hi);
        EndActing(&acting);
        return w->counts;
    }
    SetUp(w);
    EState *estate = w->estate;
    TupleDesc desc = RelationGetDescr(rel);
    /* Volatile defaults send every row to the statements, which evaluate them (once). */
    if (w->conflict && w->single_only)
        w->no_defaults = true;
    if (w->conflict) {
        MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
        KeySetInit(&w->pending, estate->es_query_cxt);
        w->upserts = UpsertsCreate(rel, info, w->policy, estate->es_query_cxt);
        MemoryContextSwitchTo(old);
    }
    progress->stage = WriteStage::Rows;

    for (int i = lo; i < hi; i++) {
        BatchRow *row = &group->rows[i];
        if (row->rejected)
            continue;
        /* As COPY FROM does per row: a cancel or terminate stops the flush here. */
        CHECK_FOR_INTERRUPTS();
        progress->row = i;
        ResetPerTupleExprContext(estate);
        MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));

        Target *t = w->targets[0];
        TupleTableSlot *slot = w->root_slot != nullptr ? w->root_slot : NextSlot(w, t);
        if (!FillSlot(w, row, slot)) {
            MemoryContextSwitchTo(old);
            continue;
        }
        bool repeated = false; /* its point is that of a row before it */
        if (w->conflict && !KeySetAdd(&w->pending, PointHash(info, desc, slot))) {
            /* Its point is pending: what is pending goes first, in order. */
            repeated = true;
            ExecMaterializeSlot(slot);
            WritePending(w);
            progress->row = i;
            (void) KeySetAdd(&w->pending, PointHash(info, desc, slot));
            /* The flush emptied the buffer: the row moves to its first slot. */
            if (w->proute == nullptr) {
                TupleTableSlot *first = NextSlot(w, t);
                if (first != slot)
                    slot = ExecCopySlot(first, slot);
            }
        }
        TupleTableSlot *row_slot = slot; /* the row in the table's column order */

        if (w->proute != nullptr) {
            ResultRelInfo *leaf = ExecFindPartition(w->mtstate, w->root, w->proute, slot, estate);
            t = TargetFor(w, leaf);
            if (w->tcs != nullptr)
                w->tcs->tcs_original_insert_tuple = t->before_row ? nullptr : slot;
            TupleTableSlot *dst = NextSlot(w, t);
            TupleConversionMap *map = InfluxRootToChildMap(leaf, estate);
            if (map != nullptr)
                slot = execute_attr_map_slot(map->attrMap, slot, dst);
            else
                slot = ExecCopySlot(dst, slot);
        }
        slot->tts_tableOid = RelationGetRelid(t->rri->ri_RelationDesc);

        if (w->conflict && t->upsert_only) {
            UpsertsAdd(w->upserts, i, row_slot, w->is_set, false);
            ExecClearTuple(slot);
        } else if (!t->multi) {
            InsertOne(w, t, slot);
        } else if (t->foreign_batch) {
            /* As INSERT into a foreign table: its server checks the constraints. */
            if (t->has_generated)
                ExecComputeStoredGenerated(t->rri, estate, slot, CMD_INSERT);
            BufferRow(w, t, slot, i, row->line_len);
        } else {
            if (t->has_generated)
                ExecComputeStoredGenerated(t->rri, estate, slot, CMD_INSERT);
            if (t->rri->ri_WithCheckOptions != NIL)
                ExecWithCheckOptions(WCO_RLS_INSERT_CHECK, t->rri, slot, estate);
            if (t->rri->ri_RelationDesc->rd_att->constr != nullptr)
                ExecConstraints(t->rri, slot, estate);
            if (t->partition_check)
                ExecPartitionCheck(t->rri, slot, estate, true);
            Probe probe = Probe::Insert;
            if (w->conflict && (w->probe || repeated))
                probe = ProbePoint(w, t, i, slot, row_slot);
            if (probe == Probe::Taken) {
                /* A point the batch itself wrote says nothing about the table. */
                if (!repeated)
                    w->taken++;
                ExecClearTuple(slot);
            } else {
                BufferRow(w, t, slot, i, row->line_len);
            }
        }
        if (w->upserts != nullptr && UpsertsFull(w->upserts))
            WritePending(w);
        MemoryContextSwitchTo(old);
    }

    int relations = 0;
    for (int i = 0; i < w->ntargets; i++)
        relations += 1 + w->targets[i]->rri->ri_NumIndices;
    Finish(w);
    EndActing(&acting);
    progress->relations = Max(progress->relations, relations);
    if (w->taken > 0)
        info->probe_writes = kProbeWrites;
    else if (w->probe && search == ConflictSearch::Optimistic)
        info->probe_writes--;
    w->counts.inserted += w->inserted;
    return w->counts;
}

} // namespace influx
