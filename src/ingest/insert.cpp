/*
 * insert.cpp — the insert path's flushes, and its API (insert.hpp): the batch's rows written
 * and committed, transient errors retried, bad rows isolated, locked tables handed back.
 * Lines reach the batch through intake.cpp; tables are found, made and checked in
 * tables.cpp (insert_path.hpp).
 *
 * Vocabulary (see also batch.hpp and table_writer.hpp):
 *   flush     inserting the whole pending batch, group by group, in one transaction.
 *   attempt   one try at a flush.  The first attempt writes every group with no
 *             subtransaction at all (the fast, common case).  If it raises an ERROR about
 *             the rows, the attempt is rolled back and a second, *isolated* attempt writes
 *             each group in its own subtransaction; a failing group is split — at the
 *             failing row when it is known, else in halves — down to single rows, so good
 *             rows land and each bad row is counted with its reason.  An error that is not
 *             about the rows (ErrorIsTransient: a lock or statement timeout, a cancel, a
 *             deadlock, ...) rolls the attempt back and the flush starts over after a wait
 *             (InsertFlushBatch): no row is rejected for it.
 *   resolve   (tables.cpp) finding a group's table: the name map, the creation hook for an unknown
 *             measurement, the column hook for new tags and fields, lock, privileges.
 *   schema pass  (tables.cpp; workers only) before a flush, new tables and columns are made in
 * short transactions of their own, one table each, so that the flush itself takes only
 * RowExclusiveLock; see PrepareSchema.
 *
 * The same code serves the insertion workers (InsertInit/InsertAddRecord/InsertFlush, each
 * flush its own transaction) and influx.insert() (one synchronous call inside the
 * caller's transaction, where the first attempt is itself a subtransaction).
 *
 * Error handling is C-style: PG_TRY/PG_CATCH, CopyErrorData + FlushErrorState, and no
 * C++ object with a destructor alive across a call that can raise an ERROR.
 */
#include <cstring>

#include "protocol/line_protocol.hpp"

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "port/pg_bitutils.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "access/twophase.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
}

#include "ingest/batch.hpp"
#include "ingest/citus.hpp"
#include "ipc/chunk.hpp"
#include "ingest/convert.hpp"
#include "ingest/identity.hpp"
#include "ingest/insert.hpp"
#include "ingest/insert_path.hpp"
#include "ingest/requests.hpp"
#include "core/pg_cpp.hpp"
#include "core/report.hpp"
#include "core/clock.hpp"
#include "core/compat.hpp"
#include "core/settings.hpp"
#include "ingest/table_cache.hpp"
#include "ingest/table_writer.hpp"
#include "ingest/worker.hpp"

namespace influx
{

namespace insert_path
{

bool initialized = false;
ProcessSlot *my_slot = nullptr;
/* Where counts and problems go: the worker's slot, or influx.insert()'s caller. */
Reporter worker_reporter = {nullptr, false, 0};
Reporter *reporter = &worker_reporter;
LineParser *parser = nullptr;
Batch batch;
/*
 * The group of the last line that was read against a layout or gave its group one
 * (RowShape; NULL again if a later line of that group had none), tried first for the next
 * line.  NULL while no group of the batch has had a layout.
 */
BatchGroup *shaped_group = nullptr;
/* What MatchShape read from the current line (kept here: too big to clear for every line). */
ShapeValues shape_values;
MemoryContext work_cxt = nullptr;    /* per flush: lookups, error data */
MemoryContext attempt_cxt = nullptr; /* per write attempt: executor state */
bool sql_call_active = false;
bool flush_active = false; /* a worker's InsertFlush is running */
int applied_synchronous_commit = -1;

/*
 * A worker's flush timeout: statement_timeout, armed per transaction (and per
 * subtransaction while transient errors are isolated).  Its own timeout rather than
 * STATEMENT_TIMEOUT, so that a cancel it causes can be told from pg_cancel_backend().
 */
TimeoutId flush_timeout = MAX_TIMEOUTS;
volatile sig_atomic_t flush_timed_out = false;

void FlushTimeoutHandler(void)
{
    flush_timed_out = true;
    QueryCancelPending = true;
    InterruptPending = true;
    SetLatch(MyLatch);
}

/* Arms the flush timeout for statement_timeout from now (a no-op when it is 0). */
void ArmFlushTimeout(void)
{
    flush_timed_out = false;
    if (StatementTimeout > 0 && flush_timeout != MAX_TIMEOUTS)
        enable_timeout_after(flush_timeout, StatementTimeout);
}

void DisarmFlushTimeout(void)
{
    if (flush_timeout != MAX_TIMEOUTS)
        disable_timeout(flush_timeout, false);
}

/* About the error TakeError took last (see ErrorIsTransient, ErrorAlwaysRetried). */
bool error_was_timeout = false;      /* a cancel by the flush timeout */
bool error_was_lock_table = false;   /* out of shared memory in the lock table */
bool error_was_citus_commit = false; /* Citus' failed node connection (see TakeError) */

/* The worker's hooks (NULL in a backend running influx.insert()). */
const WorkerHooks *hooks = nullptr;

/*
 * Handing back (insert.hpp WorkerHooks): in this flush attempt, whether groups whose table
 * is locked by another session may be parked, and the handback bytes they need.
 */
bool may_park = false;
size_t park_bytes = 0;
int parked_unreachable = 0; /* groups parked because a remote node is out of reach */

/*
 * Parks a whole group: its lines are handed back, to come again later, and *parked counts
 * it.  False when they cannot be (no room, the last lines not taken yet, a worker
 * stopping).
 */
bool ParkGroup(BatchGroup *g, int *parked)
{
    if (!may_park || g->parked || !hooks->handback_writable())
        return false;
    size_t need = GroupLineBytes(g, 0, g->nrows);
    if (park_bytes + need > hooks->handback_capacity)
        return false;
    park_bytes += need;
    g->parked = true;
    (*parked)++;
    return true;
}

/*
 * Parks a group whose rows could not go because a remote node (a Citus worker, a foreign
 * server) is out of reach.
 */
bool ParkUnreachable(BatchGroup *g)
{
    return ParkGroup(g, &parked_unreachable);
}

/*
 * Errors a table's own code can raise at will that are otherwise retried for as long as
 * they last (ErrorAlwaysRetried): a lock not granted in time, a deadlock, a serialization
 * failure.  Raised again and again, by another session's long lock or by a trigger that
 * raises one for some row, they would hold the whole flush -- every table, every HTTP
 * request in it, whatever role sent it.  After kContendedFailures failures in a row, the
 * attempt writes table by table and hands back the table that fails so (its lines come
 * again, as a locked table's do) while the others commit; a table that failed so in the
 * last kContendedMemoryMs is handed back at its first such failure.
 */
constexpr int kContendedFailures = 3;
constexpr int kContendedMemoryMs = 30000;
bool park_contended = false; /* this attempt hands back a table failing with such an error */
int parked_contended = 0;    /* groups handed back so in this attempt */
struct ContendedTable {
    Oid relid;
    TimestampTz at;
};
ContendedTable contended_tables[8];

bool ErrorContended(int sqlstate)
{
    return sqlstate == ERRCODE_LOCK_NOT_AVAILABLE || sqlstate == ERRCODE_T_R_DEADLOCK_DETECTED ||
           sqlstate == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

void NoteContended(Oid relid)
{
    if (!OidIsValid(relid))
        return;
    int oldest = 0;
    for (int i = 0; i < static_cast<int>(lengthof(contended_tables)); i++) {
        if (contended_tables[i].relid == relid) {
            oldest = i;
            break;
        }
        if (contended_tables[i].at < contended_tables[oldest].at)
            oldest = i;
    }
    contended_tables[oldest] = {relid, GetCurrentTimestamp()};
}

bool RecentlyContended(Oid relid)
{
    if (!OidIsValid(relid))
        return false;
    for (const ContendedTable &t : contended_tables)
        if (t.relid == relid &&
            !TimestampDifferenceExceeds(t.at, GetCurrentTimestamp(), kContendedMemoryMs))
            return true;
    return false;
}

bool ParkContended(BatchGroup *g)
{
    return ParkGroup(g, &parked_contended);
}

/*
 * After a flush of this batch filled the server's lock table: the groups the next attempt
 * writes (0: all); the others are handed back, to come again in later batches.  Halved at
 * each such failure, so a batch of tables that lock more than MaxTablesPerFlush() counted
 * on (many partitions or indexes) gets written instead of failing again and again.  Only
 * as many lines as the handback area holds (2 MiB) can be handed back: the tables beyond
 * are written in every attempt, and a batch whose tables still fill the lock table then
 * waits as before (as does a single table that alone needs more locks than the table
 * holds: raise max_locks_per_transaction).
 */
int lock_table_groups = 0;

/*
 * A stopping worker's flush watchdog (a timeout, so it runs in the SIGALRM handler): once
 * the worker has been asked to stop, a flush gets kStopGraceMs more before the worker is
 * made to exit as pg_terminate_backend() makes a backend exit.  A flush that waits on a
 * lock or a synchronous standby must not hold up a shutdown; what it had not committed is
 * rolled back, and the listener hands it to another worker (docs/reliability.md).
 */
constexpr int kStopGraceMs = 1000;
constexpr int kWatchdogTickMs = 250;
TimeoutId watchdog_timeout = MAX_TIMEOUTS;
volatile int watchdog_stopping_ms = 0;

void FlushWatchdog(void)
{
    if (!WorkerStopRequested()) {
        watchdog_stopping_ms = 0;
        return;
    }
    watchdog_stopping_ms += kWatchdogTickMs;
    if (watchdog_stopping_ms >= kStopGraceMs) {
        InterruptPending = true;
        ProcDiePending = true;
        SetLatch(MyLatch);
    }
}

/*
 * Tables one worker transaction writes at most: a batch is flushed once it names this many
 * measurements.  Each table takes a lock in the server's shared lock table (and each of its
 * indexes and partitions written one more), which holds max_locks_per_transaction x
 * (MaxBackends + max_prepared_xacts) entries for all sessions together (7,808 with the
 * defaults).  The workers together take at most a quarter of it, counting per table the
 * relations the last committed flush locked per table (two before the first): 488 tables
 * with the defaults, two workers and tables with one index; 48 for tables with 20
 * partitions; never fewer than 16 nor more than 4,096.  An estimate (the tables of the
 * next batch may lock more than those of the last): a flush that fills the lock table
 * anyway is written in parts (lock_table_groups).  A Telegraf fleet names a few
 * hundred measurements in every gather: a lower cap would end each flush after one agent's
 * lines (tiny transactions, one commit each).  influx.insert() writes in its caller's
 * transaction and has no such cap.
 */
int learned_relations_per_table = 2;

/* Entries of the server's shared lock table. */
int64 LockTableEntries(void)
{
    return static_cast<int64>(max_locks_per_xact) * (MaxBackends + max_prepared_xacts);
}

int MaxTablesPerFlush(void)
{
    int64 n = LockTableEntries() / 4 / Max(influx_workers, 1) / Max(learned_relations_per_table, 2);
    return static_cast<int>(Min(Max(n, 16), 4096));
}

/*
 * Requests a flush may carry: each is an outcome the worker writes into its ring's log
 * (ipc/ring.hpp), which must hold a flush's outcomes with room to spare.
 */
constexpr uint32 kMaxRequestsPerFlush = kOutcomeSlots / 4;

/*
 * Memory a worker's batch may take before it is flushed, whatever influx.batch_size says:
 * a row costs more than its line (a line of many tiny fields about twelve times), so rows
 * alone do not bound it.
 */
constexpr Size kMaxBatchMemory = 64 * 1024 * 1024;

/* Waits before a worker tries a flush again after a transient error: doubling, capped. */
constexpr int kRetryFirstWaitMs = 100;
constexpr int kRetryMaxWaitMs = 2000;

/* Transient failures in a row after which a flush isolates them (ErrorAlwaysRetried). */
constexpr int kTransientFailuresBeforeIsolating = 3;

/* Where the current write got to; volatile because it is read after a longjmp. */
volatile WriteProgress progress;

/* Once per process: contexts, the parser, the table cache and its callbacks. */
void EnsureInitialized(void)
{
    if (initialized)
        return;
    BatchInit(&batch, TopMemoryContext);
    work_cxt = AllocSetContextCreate(TopMemoryContext, "influx flush", ALLOCSET_DEFAULT_SIZES);
    /* Not a child of work_cxt: resetting that one would delete it. */
    attempt_cxt = AllocSetContextCreate(TopMemoryContext, "influx write", ALLOCSET_DEFAULT_SIZES);
    TableCacheInit();

    CppError err;
    try {
        parser = new LineParser();
    } catch (...) {
        CaptureCppException(&err);
    }
    if (err.raised)
        RaiseCppError(&err);
    initialized = true;
}

/* Empties the batch, and forgets the layout that pointed into it. */
void ResetBatch(void)
{
    BatchReset(&batch);
    shaped_group = nullptr;
}

/*
 * In a PG_CATCH block: takes the current error out of the error state (the caller then
 * rolls back), copies its message into `message` and returns its SQLSTATE.  Allocates in
 * the current memory context, which must not be the failed (sub)transaction's.
 */
/* The start of Citus' message for a failed connection of a distributed transaction. */
constexpr char kCitusConnectionFailed[] = "failure on connection marked as essential";

int TakeError(char *message, size_t message_size)
{
    ErrorData *edata = CopyErrorData();
    FlushErrorState();
    int sqlstate = edata->sqlerrcode;
    /*
     * Citus ends a transaction one of whose node connections failed with an internal error
     * (remote_transaction.c, no SQLSTATE of its own): at the commit of a flush whose write to
     * an unreachable node was rolled back to a savepoint, say.  It says as much about the
     * rows as the connection failure did -- nothing: it is one, and the flush is held while
     * a node is out of reach (CitusCommitFailureHolds).
     */
    const char *file = edata->filename != nullptr ? strrchr(edata->filename, '/') : nullptr;
    file = file != nullptr ? file + 1 : edata->filename;
    error_was_citus_commit =
        sqlstate == ERRCODE_INTERNAL_ERROR && edata->message != nullptr && file != nullptr &&
        strcmp(file, "remote_transaction.c") == 0 &&
        strncmp(edata->message, kCitusConnectionFailed, strlen(kCitusConnectionFailed)) == 0;
    if (error_was_citus_commit)
        sqlstate = ERRCODE_CONNECTION_FAILURE;
    /* What ErrorIsTransient cannot tell from the SQLSTATE alone. */
    error_was_timeout = sqlstate == ERRCODE_QUERY_CANCELED && flush_timed_out;
    flush_timed_out = false;
    error_was_lock_table = sqlstate == ERRCODE_OUT_OF_MEMORY && edata->hint != nullptr &&
                           (strstr(edata->hint, "max_locks_per_transaction") != nullptr ||
                            strstr(edata->hint, "max_pred_locks_per_transaction") != nullptr);
    if (error_was_timeout)
        pg_snprintf(message, message_size, "canceling the flush due to statement_timeout (%d ms)",
                    StatementTimeout);
    else
        strlcpy(message, edata->message ? edata->message : "unknown error", message_size);
    FreeErrorData(edata);
    return sqlstate;
}

/*
 * Raises again an error that TakeError took, keeping what ErrorIsTransient and
 * ErrorAlwaysRetried will want to know about it at the next level.
 */
[[noreturn]] void RaiseAgain(int sqlstate, const char *message)
{
    flush_timed_out = error_was_timeout;
    if (error_was_lock_table)
        ereport(ERROR, (errcode(sqlstate), errmsg("%s", message),
                        errhint("You might need to increase max_locks_per_transaction.")));
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", message)));
    pg_unreachable();
}

/*
 * Whether an error says nothing about the rows, so that the same rows may well go in when
 * tried again: lost connections (class 08), transaction state such as a read-only
 * transaction (25), serialization failures and deadlocks (40), lack of resources other
 * than memory, such as a full disk (53), a lock not granted in time or an object in use
 * (55P03, 55006), cancels, timeouts and shutdowns (57), and I/O errors (58).  Everything
 * else -- data (22), constraints (23), errors raised by triggers (P0001), out of memory --
 * is taken to be about the rows, which are then written one group, range and row at a
 * time so that only the rows that fail are rejected.  See docs/reliability.md.
 */
bool ErrorIsTransient(int sqlstate)
{
    switch (ERRCODE_TO_CATEGORY(sqlstate)) {
        case ERRCODE_CONNECTION_EXCEPTION:
        case ERRCODE_INVALID_TRANSACTION_STATE:
        case ERRCODE_TRANSACTION_ROLLBACK:
        case ERRCODE_OPERATOR_INTERVENTION:
        case ERRCODE_SYSTEM_ERROR:
            return true;
        case ERRCODE_INSUFFICIENT_RESOURCES:
            /*
             * A row can be too big for memory; a disk does not fill up because of one.  But
             * "out of shared memory" with the hint to raise max_locks_per_transaction (or
             * max_pred_locks_per_transaction) is the server's lock table, full because of
             * other sessions, whichever table or partition the flush was opening.
             */
            return sqlstate != ERRCODE_OUT_OF_MEMORY || error_was_lock_table;
        case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:
            return sqlstate == ERRCODE_LOCK_NOT_AVAILABLE || sqlstate == ERRCODE_OBJECT_IN_USE;
        default:
            return false;
    }
}

/*
 * The transient errors that can never be caused by what a row holds, and are tried again
 * for as long as they last: locks (a lock timeout, a deadlock, a serialization failure, the
 * lock table full), a full disk, too many connections, a read-only transaction, a shutdown.
 * The others -- a cancel or statement timeout, a lost connection, an I/O error, an object in
 * use, a resource limit -- can also come from one row every time (a trigger that runs over
 * statement_timeout, a foreign partition whose server is gone): after
 * kTransientFailuresBeforeIsolating failures in a row, the flush isolates them like data
 * errors, so that only the rows that still fail alone are rejected.
 */
bool ErrorAlwaysRetried(int sqlstate)
{
    switch (sqlstate) {
        case ERRCODE_LOCK_NOT_AVAILABLE:
        case ERRCODE_T_R_DEADLOCK_DETECTED:
        case ERRCODE_T_R_SERIALIZATION_FAILURE:
        case ERRCODE_DISK_FULL:
        case ERRCODE_TOO_MANY_CONNECTIONS:
        case ERRCODE_READ_ONLY_SQL_TRANSACTION:
        case ERRCODE_ADMIN_SHUTDOWN:
        case ERRCODE_CRASH_SHUTDOWN:
        case ERRCODE_CANNOT_CONNECT_NOW:
            return true;
        case ERRCODE_OUT_OF_MEMORY:
            return error_was_lock_table; /* see ErrorIsTransient */
        case ERRCODE_QUERY_CANCELED:
            /* pg_cancel_backend(); statement_timeout is a flush that may run over each time */
            return !error_was_timeout;
        default:
            return false;
    }
}

/* Set while a flush isolates transient errors too (see ErrorAlwaysRetried). */
bool isolate_transient = false;

bool subxact_left_half_begun = false;

/*
 * The rows InsertGroupInSubxact tries now: narrowed down, then rejected, if the try leaves a
 * subtransaction half begun (FlushTransaction).
 */
struct {
    BatchGroup *group;
    int lo, hi;
} trying = {nullptr, 0, 0};

/*
 * Attempts that may narrow a range of one group or reject one of its rows after a half-begun
 * subtransaction (each aborts the whole attempt, which is then made again): enough halvings
 * to reach single rows, ceil(log2(rows of the group)), and kHalfBegunNarrowings more (single
 * rows rejected, or ranges narrowed again).  Past that, a range of the group that fails so is
 * rejected whole.  Each group has its own: one table's failures take nothing from another's.
 */
constexpr int kHalfBegunNarrowings = 24;
/* Set when the last attempt narrowed or rejected so: the next one goes at once. */
bool attempt_narrowed = false;

/*
 * Set while a flush writes its groups in subtransactions: then every row of a table with
 * a conflict policy is probed (the first attempt writes optimistically, table_writer.hpp).
 */
bool isolating = false;

/*
 * Set for a first attempt made again because the one before found an existing point
 * while writing without lookups: this one looks every point up, still in one transaction
 * (isolating would give every table a subtransaction, and a point another writer commits
 * meanwhile could then fail a single row).
 */
bool probe_attempt = false;

/* Relations locked and tables written by the attempt so far (MaxTablesPerFlush). */
int64 attempt_relations = 0;
int64 attempt_tables = 0;

/*
 * Whether an error in an isolated attempt ends the attempt rather than a range of rows.
 * While transient errors are isolated too, a statement timeout before any row was written
 * (waiting for the table's lock, say) is still not the rows' doing.
 */
bool EndsAttempt(int sqlstate)
{
    if (!isolate_transient)
        return ErrorIsTransient(sqlstate);
    return ErrorAlwaysRetried(sqlstate) ||
           (error_was_timeout && progress.stage != WriteStage::Rows);
}

/* Rows of [lo, hi) not yet rejected. */
int64 PendingRows(BatchGroup *g, int lo, int hi)
{
    int64 n = 0;
    for (int i = lo; i < hi; i++)
        n += g->rows[i].rejected ? 0 : 1;
    return n;
}

/*
 * Marks a row rejected, after its problem was reported: its request (if any) learns the
 * reason (the problem reported last, unless given).  Rejection is for good: a later attempt of the
 * flush skips the row.
 */
void MarkRejected(BatchRow *row, const char *reason)
{
    if (row->rejected)
        return;
    row->rejected = true;
    RequestRejected(row->request, reason != nullptr ? reason : reporter->last);
}

/*
 * Rejects every remaining row of [lo, hi) for one reason (counted once per row).  The log
 * counts the rows of the whole range; each row's request learns the reason without that
 * count, which may cover other requests' rows of the same flush.
 */
void RejectRange(BatchGroup *g, int lo, int hi, Counter counter, const char *reason)
{
    int64 n = PendingRows(g, lo, hi);
    if (n == 0)
        return;
    Problem(reporter, counter, n, "%lld row%s for \"%s\" rejected: %s", static_cast<long long>(n),
            n == 1 ? "" : "s", LogName(g->measurement), reason);
    char row_reason[INFLUX_ERROR_TEXT];
    snprintf(row_reason, sizeof(row_reason), "table \"%s\": %s", LogName(g->measurement), reason);
    for (int i = lo; i < hi; i++)
        MarkRejected(&g->rows[i], row_reason);
}

/*
 * Before a flush commits: writes the lines of the groups this attempt parked into the
 * handback area and returns the bytes written (0: nothing parked).  A group's lines go in
 * one record, or one per run of rows of one request, which keeps its meta (chunk.hpp) so
 * that the lines come back as part of their request.  Requests' tallies learn how many of
 * their units went back.
 */
size_t WriteHandback(void)
{
    for (uint32 k = 1; k <= RequestTallyCount(); k++)
        RequestTallyAt(k)->handed_back = 0;
    if (!may_park || park_bytes == 0)
        return 0;
    char *area = hooks->handback;
    size_t pos = 0;
    int groups = 0;
    int64 rows = 0;
    for (int k = 0; k < batch.ngroups; k++) {
        BatchGroup *g = batch.groups[k];
        if (!g->parked)
            continue;
        int i = 0;
        while (i < g->nrows) {
            if (g->rows[i].rejected) {
                i++;
                continue;
            }
            /* One record: rows [i, ...) of the same request (or received under one precision). */
            uint32 request = g->rows[i].request;
            uint8 precision = g->rows[i].precision;
            RequestTally *tally = RequestTallyAt(request);
            size_t meta_size = tally != nullptr ? sizeof(RecordMeta) : 0;
            size_t start = pos + kRecordHeader + meta_size;
            size_t end = start;
            for (; i < g->nrows; i++) {
                const BatchRow *row = &g->rows[i];
                if (row->rejected)
                    continue;
                if (row->request != request || (request == 0 && row->precision != precision))
                    break;
                /* OpenTable reserved room for every row of the group (park_bytes). */
                if (end + row->line_len + 1 > hooks->handback_capacity)
                    elog(PANIC, "pg_influx: handback area overrun");
                memcpy(area + end, row->line, row->line_len);
                end += row->line_len;
                area[end++] = '\n';
                rows++;
                if (tally != nullptr)
                    tally->handed_back++;
            }
            pos += WriteRecord(area + pos, tally != nullptr ? &tally->meta : nullptr, area + start,
                               end - start, precision);
        }
        groups++;
    }
    Assert(pos <= park_bytes);
    const char *why = "locked by another session";
    if (parked_unreachable > 0)
        why = "whose remote node or foreign server is out of reach";
    else if (parked_contended > 0)
        why = "whose writes keep failing on a lock, a deadlock or a serialization failure";
    else if (lock_table_groups > 0)
        why = "that need more locks than the server's lock table holds";
    ReportProblem(my_slot, "%lld rows of %d table%s handed back, to be sent again: tables %s",
                  static_cast<long long>(rows), groups, groups == 1 ? "" : "s", why);
    return pos;
}

/*
 * Resolves the group's table and writes rows [lo, hi) into it.  Raises an ERROR for
 * anything the table refuses; `progress` tells where.  Returns rows written.
 */
RowCounts InsertGroup(const FlushOptions *opts, BatchGroup *g, int lo, int hi)
{
    RowCounts none = {0, 0, 0};
    progress.stage = WriteStage::Resolve;
    progress.row = -1;
    progress.merges = progress.optimistic = false;
    progress.relations = 0;
    progress.column = nullptr;
    progress.remote = progress.citus = false;
    progress.table = InvalidOid;
    if (g->parked || PendingRows(g, lo, hi) == 0)
        return none;

    Oid nspid = TableCacheSchemaOid(opts->schema);
    if (!OidIsValid(nspid)) {
        char reason[NAMEDATALEN + 32];
        pg_snprintf(reason, sizeof(reason), "schema \"%s\" does not exist", opts->schema);
        RejectRange(g, lo, hi, kRowsRejectedTable, reason);
        return none;
    }
    const char *schema_refusal = SchemaRefusal(nspid, GetUserId());
    if (schema_refusal != nullptr) {
        RejectRange(g, lo, hi, kRowsRejectedTable, schema_refusal);
        return none;
    }
    Relation rel = OpenTable(opts, nspid, g, lo, hi);
    if (rel == nullptr)
        return none;

    Oid relid = RelationGetRelid(rel);
    progress.table = relid;
    TableInfo *info = nullptr;
    const char *refusal = Refusal(rel, &info);
    if (refusal != nullptr) {
        table_close(rel, RowExclusiveLock);
        RejectRange(g, lo, hi, kRowsRejectedTable, refusal);
        return none;
    }
    progress.citus = info->distributed;
    progress.remote = info->distributed || rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE;
    if (opts->add_columns && g->schema_relid != relid && !BatchGroupBuiltFor(g, info)) {
        /* ALTER TABLE refuses a table this backend has open: close it, keep the lock. */
        table_close(rel, NoLock);
        bool added = AddColumns(relid, info, g, lo, hi);
        rel = table_open(relid, RowExclusiveLock);
        if (added)
            info = TableCacheGet(rel);
    }

    if (opts->worker) {
        char activity[NAMEDATALEN * 2 + 64];
        pg_snprintf(activity, sizeof(activity), "inserting %lld rows into %s.%s",
                    static_cast<long long>(PendingRows(g, lo, hi)), opts->schema,
                    RelationGetRelationName(rel));
        pgstat_report_activity(STATE_RUNNING, activity);
        SetSlotActivity(my_slot, activity);
    }

    /* Each group is a statement: it sees what the previous ones wrote. */
    CommandCounterIncrement();
    PushActiveSnapshot(GetTransactionSnapshot());
    RowCounts n =
        WriteRows(rel, info, GetUserId(), reporter, g, lo, hi, &progress, ReparseRow,
                  isolating || probe_attempt ? ConflictSearch::Probe : ConflictSearch::Optimistic);
    attempt_relations += progress.relations;
    attempt_tables++;
    PopActiveSnapshot();
    table_close(rel, NoLock);
    return n;
}

/* Runs InsertGroup in a subtransaction; on failure, *message and *sqlstate say why. */
bool InsertGroupInSubxact(const FlushOptions *opts, BatchGroup *g, int lo, int hi, RowCounts *n,
                          char *message, size_t message_size, int *sqlstate)
{
    MemoryContextReset(attempt_cxt);
    trying = {g, lo, hi};
    bool ok = InSubtransaction(
        attempt_cxt,
        [&]() {
            /* Each range gets the whole timeout, so that only a range that runs over fails. */
            if (isolate_transient)
                ArmFlushTimeout();
            *n = InsertGroup(opts, g, lo, hi);
            if (isolate_transient)
                DisarmFlushTimeout();
        },
        []() {
            if (isolate_transient)
                DisarmFlushTimeout();
        },
        sqlstate, message, message_size);
    trying.group = nullptr;
    MemoryContextReset(attempt_cxt);

    /*
     * An error that is not about the rows ends the whole attempt: influx.insert() raises
     * it to its caller (as INSERT would); a worker rolls the flush back and tries it
     * again later (InsertFlushBatch).  Going on with the next range would only reject
     * good rows, and the attempt still holds the locks of the groups before this one.
     */
    if (!ok && EndsAttempt(*sqlstate)) {
        if (park_contended && ErrorContended(*sqlstate) && lo == 0 && hi == g->nrows &&
            ParkContended(g)) {
            NoteContended(progress.table);
            *n = {0, 0, 0};
            return true; /* nothing of it was written; it comes again */
        }
        RaiseAgain(*sqlstate, message);
    }
    return ok;
}

/* Whether a partitioned table has a foreign table among its partitions, at any level. */
bool HasForeignPartition(Oid relid)
{
    if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
        return false;
    List *all = find_all_inheritors(relid, NoLock, nullptr);
    bool foreign = false;
    ListCell *lc;
    foreach (lc, all)
        foreign = foreign || get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE;
    list_free(all);
    return foreign;
}

/*
 * After a connection error (class 08): notes that the rows were going to another server when
 * the write did not know it yet -- a row being routed to a foreign partition (postgres_fdw
 * connects as the partition is first routed to, before the writer sees the partition), or
 * the table being created or set up on a Citus node (the creation hook's
 * create_distributed_table connects to every node).  Needs a transaction.
 */
void NoteRemoteTarget(void)
{
    if (progress.remote)
        return;
    if (OidIsValid(progress.table) && HasForeignPartition(progress.table))
        progress.remote = true;
    else if ((progress.stage == WriteStage::Resolve || progress.stage == WriteStage::Setup) &&
             CitusInstalled())
        progress.remote = progress.citus = true;
}

/*
 * Whether a connection error (SQLSTATE class 08) writing a table on another server means
 * that server is out of reach.  For a Citus table, asked of Citus: some active primary node
 * fails Citus' own connection check (a node down, restarting, refusing connections; an
 * error while checking counts as out of reach).  This node's own group is checked too when
 * Citus does not execute locally (citus.enable_local_execution off): then it writes the
 * local shards through connections to itself, which a node out of connections refuses.
 * With local execution (the default) it makes no such connection, and a login to itself,
 * which pg_hba.conf may well refuse the writing role, would prove nothing.  With every node
 * answering, the error came from the table's own code (a trigger on the shards raising class 08, a
 * default that confuses Citus' connection state) and is about its rows.  "Out of reach" holds for
 * the rest of the flush attempt; "every node answers" for a second, as a node may go down
 * meanwhile.  A foreign table's server is taken to be out of reach: there is no such check for it.
 */
int reach_checked = 0; /* this attempt: 0 not asked, 1 every node answers, -1 some does not */
TimestampTz reach_checked_at = 0;

/* Milliseconds Citus may take to connect to a node for the check (its default is 30 s). */
constexpr const char *kReachCheckConnectMs = "2000";

bool RemoteOutOfReach(void)
{
    if (!progress.citus)
        return true;
    if (reach_checked > 0 &&
        TimestampDifferenceExceeds(reach_checked_at, GetCurrentTimestamp(), 1000))
        reach_checked = 0;
    if (reach_checked == 0) {
        bool every_node = false;
        char message[INFLUX_ERROR_TEXT];
        int sqlstate = 0;
        bool ok = InSubtransaction(
            attempt_cxt,
            [&]() {
                /* For the check only: the setting comes back as it was at its end. */
                int guc_level = NewGUCNestLevel();
                (void) set_config_option("citus.node_connection_timeout", kReachCheckConnectMs,
                                         PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                                         false);
                PushActiveSnapshot(GetTransactionSnapshot());
                SPI_connect();
                int rc = SPI_execute(
                    "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node "
                    "WHERE isactive AND noderole = 'primary' "
                    "AND (groupid <> (SELECT groupid FROM pg_catalog.pg_dist_local_group) "
                    "     OR NOT pg_catalog.current_setting('citus.enable_local_execution')::bool) "
                    "AND NOT pg_catalog.citus_check_connection_to_node(nodename, nodeport))",
                    false, 1);
                if (rc == SPI_OK_SELECT && SPI_processed == 1) {
                    bool isnull = true;
                    Datum d =
                        SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
                    every_node = !isnull && DatumGetBool(d);
                }
                SPI_finish();
                PopActiveSnapshot();
                AtEOXact_GUC(true, guc_level);
            },
            &sqlstate, message, sizeof(message));
        MemoryContextReset(attempt_cxt);
        reach_checked = ok && every_node ? 1 : -1;
        reach_checked_at = GetCurrentTimestamp();
        if (reach_checked > 0)
            ReportProblem(my_slot, "a connection error while every Citus node answers: taken to be "
                                   "about the rows");
    }
    return reach_checked < 0;
}

/*
 * After a flush failed with Citus' failed-connection error (TakeError: raised when the
 * flush ends, not by a write one could isolate), whether it is held as a connection error:
 * while some node is out of reach.  With every node answering, the error is taken as what
 * Citus calls it, an internal error, so that a cause that stays (not a node) does not hold
 * the batch for good.  *sqlstate is set accordingly.
 */
void CitusCommitFailureHolds(int *sqlstate)
{
    if (*sqlstate != ERRCODE_CONNECTION_FAILURE || !error_was_citus_commit)
        return;
    bool out_of_reach = true;
    int check_sqlstate = 0;
    char message[INFLUX_ERROR_TEXT];
    bool was_citus = progress.citus;
    progress.citus = true;
    reach_checked = 0;
    (void) InOwnTransaction([&]() { out_of_reach = RemoteOutOfReach(); }, &check_sqlstate, message,
                            sizeof(message));
    progress.citus = was_citus;
    reach_checked = 0;
    if (!out_of_reach)
        *sqlstate = ERRCODE_INTERNAL_ERROR;
}

/*
 * Writes rows [lo, hi) of a group in subtransactions, narrowing down failures: at the
 * failing row when the error says which one it was, else by halves, down to single rows.
 */
RowCounts InsertGroupIsolated(const FlushOptions *opts, BatchGroup *g, int lo, int hi)
{
    check_stack_depth();
    RowCounts total = {0, 0, 0};
    int head_retried = -1; /* the head row tried again after a unique violation */
    while (lo < hi && PendingRows(g, lo, hi) > 0) {
        CHECK_FOR_INTERRUPTS();
        if (g->isolate_span > 0 && hi - lo > g->isolate_span) {
            /* A range of the group left a subtransaction half begun: narrower ones only. */
            int mid = lo + (hi - lo) / 2;
            total += InsertGroupIsolated(opts, g, lo, mid);
            total += InsertGroupIsolated(opts, g, mid, hi);
            break;
        }
        char message[INFLUX_ERROR_TEXT];
        int sqlstate = 0;
        RowCounts n = {0, 0, 0};
        if (InsertGroupInSubxact(opts, g, lo, hi, &n, message, sizeof(message), &sqlstate)) {
            total += n;
            break;
        }
        if (ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_CONNECTION_EXCEPTION)
            NoteRemoteTarget();
        if (ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_CONNECTION_EXCEPTION && progress.remote &&
            RemoteOutOfReach()) {
            /*
             * A shard's node or a foreign server out of reach (transient failures isolated
             * after retries): the rows are good but cannot go now.  Never rejected: the whole
             * group is handed back while nothing of it is written, the rest of the flush
             * commits; otherwise the flush ends and is tried again later, keeping the rows
             * (the ring fills, senders are held back).  Only for a table whose rows go to
             * another server, and for a Citus table only while a node does not answer: a
             * table's own code (a trigger) raising class 08 is about its rows, which are then
             * rejected as for any other error.
             */
            if (lo != 0 || hi != g->nrows || !ParkUnreachable(g))
                RaiseAgain(sqlstate, message);
            break;
        }
        WriteStage stage = progress.stage;
        int row = progress.row;
        bool in_value = progress.column != nullptr;

        if (stage == WriteStage::Resolve || stage == WriteStage::Setup) {
            RejectRange(g, lo, hi, kRowsRejectedTable, message);
            break;
        }
        if (stage == WriteStage::Rows && row > lo && row < hi &&
            sqlstate == ERRCODE_UNIQUE_VIOLATION) {
            /*
             * A unique violation may come from a row before it in the range: two rows of one
             * point whose key values are equal but not alike byte for byte (a numeric scale,
             * a case-insensitive collation), which the pending points did not tell apart.
             * The rows before go first; then the row is tried again at the head of its
             * range, where influx.on_conflict finds its point (or, under error, rejects it).
             */
            total += InsertGroupIsolated(opts, g, lo, row);
            lo = row;
            continue;
        }
        if (stage == WriteStage::Rows && row == lo && sqlstate == ERRCODE_UNIQUE_VIOLATION &&
            progress.merges && head_retried != lo) {
            /*
             * The row's point was looked up and not found, then another writer committed
             * it before this insert: looking it up again finds it, and merges.
             */
            head_retried = lo;
            continue;
        }
        if (stage == WriteStage::Rows && row >= lo && row < hi) {
            Problem(reporter, in_value ? kRowsRejectedValue : kRowsRejectedInsert, 1,
                    "row rejected: table \"%s\"%s%s%s: %s", LogName(g->measurement),
                    in_value ? ", column \"" : "", in_value ? LogName(progress.column) : "",
                    in_value ? "\"" : "", message);
            MarkRejected(&g->rows[row]);
            if (row > lo)
                total += InsertGroupIsolated(opts, g, lo, row);
            lo = row + 1;
            continue;
        }
        if (hi - lo == 1) {
            Problem(reporter, kRowsRejectedInsert, 1, "row rejected: table \"%s\": %s",
                    LogName(g->measurement), message);
            MarkRejected(&g->rows[lo]);
            break;
        }
        int mid = lo + (hi - lo) / 2;
        total += InsertGroupIsolated(opts, g, lo, mid);
        total += InsertGroupIsolated(opts, g, mid, hi);
        break;
    }
    return total;
}

/* One pass over all groups: plain (errors propagate) or isolated. */
void SetConstraintsImmediate(void);

extern Oid batch_role;

RowCounts InsertAll(const FlushOptions *opts, bool isolate)
{
    RowCounts total = {0, 0, 0};
    if (opts->worker) {
        const char *problem =
            WriterRoleProblem(superuser_arg(GetUserId()), has_bypassrls_privilege(GetUserId()));
        if (problem != nullptr && OidIsValid(batch_role)) {
            /*
             * An HTTP request's role made a superuser (or BYPASSRLS) after the listener let
             * it in: its rows are refused, as its next request is (403).  Held instead, they
             * would hold the worker -- and every other role's requests -- until an
             * administrator undid the change, which may be meant to last.
             */
            char reason[INFLUX_ERROR_TEXT];
            snprintf(reason, sizeof(reason),
                     "role \"%s\" is a superuser or has BYPASSRLS: it may not write over HTTP "
                     "unless influx.allow_superuser is on",
                     GetUserNameFromId(GetUserId(), false));
            for (int k = 0; k < batch.ngroups; k++)
                RejectRange(batch.groups[k], 0, batch.groups[k]->nrows, kRowsRejectedTable, reason);
            return total;
        }
        /*
         * influx.role itself made a superuser since the worker started: nothing is written,
         * and the flush waits (its rows kept) until the role is fixed.
         */
        if (problem != nullptr)
            ereport(ERROR, (errcode(ERRCODE_CANNOT_CONNECT_NOW),
                            errmsg("role \"%s\" (influx.role) %s",
                                   GetUserNameFromId(GetUserId(), false), problem)));
    }
    /* Each attempt decides afresh which groups to hand back (a lock may have gone). */
    may_park = opts->worker && hooks != nullptr && hooks->handback_allowed();
    park_bytes = 0;
    parked_unreachable = 0;
    parked_contended = 0;
    reach_checked = 0;
    for (int i = 0; i < batch.ngroups; i++)
        batch.groups[i]->parked = false;
    if (may_park && lock_table_groups > 0 && hooks->handback_writable()) {
        /* As many of the later tables as the handback area holds (it may not hold all). */
        for (int i = lock_table_groups; i < batch.ngroups; i++) {
            BatchGroup *g = batch.groups[i];
            size_t need = GroupLineBytes(g, 0, g->nrows);
            if (park_bytes + need > hooks->handback_capacity)
                continue;
            park_bytes += need;
            g->parked = true;
        }
    }
    isolating = isolate;
    attempt_relations = attempt_tables = 0;
    for (int i = 0; i < batch.ngroups; i++) {
        BatchGroup *g = batch.groups[i];
        if (isolate) {
            /* A trigger of an earlier table may have deferred the constraints again. */
            if (opts->worker)
                SetConstraintsImmediate();
            total += InsertGroupIsolated(opts, g, 0, g->nrows);
        } else {
            MemoryContextReset(attempt_cxt);
            MemoryContext old = MemoryContextSwitchTo(attempt_cxt);
            total += InsertGroup(opts, g, 0, g->nrows);
            MemoryContextSwitchTo(old);
        }
    }
    return total;
}

int64 AllPendingRows(void)
{
    int64 n = 0;
    for (int i = 0; i < batch.ngroups; i++)
        n += PendingRows(batch.groups[i], 0, batch.groups[i]->nrows);
    return n;
}

/* Deferred constraints would fire at commit, out of reach of the isolation: not here. */
void SetConstraintsImmediate(void)
{
    ConstraintsSetStmt *stmt = makeNode(ConstraintsSetStmt);
    stmt->constraints = NIL;
    stmt->deferred = false;
    AfterTriggerSetState(stmt);
}

/*
 * Whether the error of a try that left a subtransaction half begun is about the rows tried,
 * judged as InsertGroupIsolated judges errors (after the attempt's abort: a connection
 * error's check runs in a transaction of its own).  A lock, a timeout, a shutdown, a
 * remote node out of reach are not: the attempt is tried again later, as for any transient
 * error.
 */
bool HalfBegunAboutRows(int sqlstate)
{
    if (error_was_timeout || ErrorAlwaysRetried(sqlstate))
        return false;
    /* As EndsAttempt: a transient error is retried before it is isolated. */
    if (!isolate_transient && ErrorIsTransient(sqlstate))
        return false;
    if (ERRCODE_TO_CATEGORY(sqlstate) != ERRCODE_CONNECTION_EXCEPTION)
        return true;
    bool out_of_reach = true;
    int check_sqlstate = 0;
    char check_message[INFLUX_ERROR_TEXT];
    /* What the caller still wants to know of the attempt's error. */
    const bool was_lock_table = error_was_lock_table;
    bool checked = InOwnTransaction(
        [&]() {
            NoteRemoteTarget();
            out_of_reach = progress.remote && RemoteOutOfReach();
        },
        &check_sqlstate, check_message, sizeof(check_message));
    error_was_timeout = false;
    error_was_lock_table = was_lock_table;
    return checked && !out_of_reach;
}

/*
 * A worker's flush attempt as one transaction of its own.  Returns false (rolled back) if
 * anything raised an ERROR, including the commit; *sqlstate and message say what.
 */
bool FlushTransaction(const FlushOptions *opts, bool isolate, RowCounts *inserted, int *sqlstate,
                      char *message, size_t message_size)
{
    subxact_left_half_begun = false;
    attempt_narrowed = false;
    trying.group = nullptr;
    bool ok = InOwnTransaction(
        [&]() {
            if (isolate)
                SetConstraintsImmediate();
            *inserted = InsertAll(opts, isolate);
        },
        sqlstate, message, message_size, true);
    if (!ok && subxact_left_half_begun && trying.group != nullptr &&
        HalfBegunAboutRows(*sqlstate)) {
        /*
         * The table's own code left a subtransaction half begun (see InSubtransaction),
         * which only an abort of the whole attempt cleans up: the failing rows cannot be
         * found within one attempt.  The next attempt, made at once, writes the range in
         * halves; a single row that still fails so is rejected with the error.  Past the
         * group's budget of such attempts (kHalfBegunNarrowings), the range is rejected whole
         * (and the rest of its table tried whole again), so that a table whose every row
         * fails so costs a few attempts, not one per row.
         */
        BatchGroup *g = trying.group;
        int lo = trying.lo, hi = trying.hi;
        int halvings = g->nrows > 1 ? static_cast<int>(pg_ceil_log2_32(g->nrows)) : 0;
        bool budget = g->half_begun_attempts < halvings + kHalfBegunNarrowings;
        g->half_begun_attempts++;
        attempt_narrowed = true;
        if (hi - lo > 1 && budget) {
            g->isolate_span = (hi - lo + 1) / 2;
        } else {
            char reason[INFLUX_ERROR_TEXT];
            pg_snprintf(reason, sizeof(reason),
                        "%s (a subtransaction the table's code began failed to start)", message);
            RejectRange(g, lo, hi, kRowsRejectedInsert, reason);
            if (!budget)
                g->isolate_span = 0;
        }
    }
    subxact_left_half_begun = false;
    trying.group = nullptr;
    /* Lines this attempt handed back belong to a flush that did not commit: not valid. */
    if (!ok && hooks != nullptr)
        hooks->handback_rolled_back();
    if (!ok && !isolate)
        elog(DEBUG1, "pg_influx: batch failed, retrying table by table: %s", message);
    return ok;
}

/* Sets synchronous_commit for the worker's transactions when influx.synchronous_commit changed. */
void ApplySynchronousCommit(void)
{
    if (applied_synchronous_commit == influx_synchronous_commit)
        return;
    const char *value = "on";
    switch (influx_synchronous_commit) {
        case SYNCHRONOUS_COMMIT_OFF:
            value = "off";
            break;
        case SYNCHRONOUS_COMMIT_LOCAL_FLUSH:
            value = "local";
            break;
        case SYNCHRONOUS_COMMIT_REMOTE_WRITE:
            value = "remote_write";
            break;
        case SYNCHRONOUS_COMMIT_REMOTE_APPLY:
            value = "remote_apply";
            break;
        default:
            break;
    }
    /* Session level, outside any transaction: it stays until changed (through the assign
     * hook, so SyncRepWaitMode follows). */
    SetConfigOption("synchronous_commit", value, PGC_USERSET, PGC_S_SESSION);
    applied_synchronous_commit = influx_synchronous_commit;
}

/* After a flush (or an influx.insert() call): free the batch and per-flush memory. */
void EndBatch(void)
{
    probe_attempt = false;
    lock_table_groups = 0;
    ResetBatch();
    parser->Trim();
    MemoryContextReset(attempt_cxt);
    MemoryContextReset(work_cxt);
    TableCacheEndOfBatch();
}

/*
 * Databases (HTTP db/bucket, RecordMeta.database): the rows of a flush all have one; ""
 * is influx.schema.  A database names the schema of that name when it exists, is no
 * system schema (pg_*, information_schema) nor the extension's own (influx), and the
 * writer may create tables in it; otherwise it is influx.schema
 * (docs/http.md, "Databases").  The last answer is kept for intake's table lookups.
 */
char batch_database[NAMEDATALEN] = "";
/*
 * The role the batch's rows are written as: an HTTP request's authenticated role
 * (influx.http_auth = password), or InvalidOid for the worker's own (influx.role).
 */
Oid batch_role = InvalidOid;
char resolved_database[NAMEDATALEN] = "";
char resolved_schema[NAMEDATALEN] = "";

/* The schema a flush of `database` writes to; looked up in a transaction of its own. */
const char *ResolveDatabase(const char *database)
{
    if (database[0] == '\0')
        return influx_schema;
    bool usable = false;
    if (strncmp(database, "pg_", 3) != 0 && strcmp(database, "information_schema") != 0 &&
        strcmp(database, "influx") != 0) {
        StartTransactionCommand();
        Oid nspid = get_namespace_oid(database, true);
        /* CREATE makes tables there, USAGE finds them: without either, influx.schema. */
        usable = OidIsValid(nspid) &&
                 InfluxNamespaceAclcheck(nspid, GetUserId(), ACL_CREATE) == ACLCHECK_OK &&
                 InfluxNamespaceAclcheck(nspid, GetUserId(), ACL_USAGE) == ACLCHECK_OK;
        CommitTransactionCommand();
    }
    strlcpy(resolved_database, database, sizeof(resolved_database));
    strlcpy(resolved_schema, usable ? database : influx_schema, sizeof(resolved_schema));
    return resolved_schema;
}

/* The schema intake looks tables up in (a guess: the flush resolves it for certain). */
const char *IntakeSchema(const char *database)
{
    if (database[0] == '\0')
        return influx_schema;
    if (strncmp(database, resolved_database, sizeof(resolved_database)) == 0)
        return resolved_schema;
    return database;
}

} // namespace insert_path

using namespace insert_path;

void InsertInit(ProcessSlot *slot, const WorkerHooks *worker_hooks)
{
    my_slot = slot;
    hooks = worker_hooks;
    EnsureInitialized();
    worker_reporter = SlotReporter(slot);
    reporter = &worker_reporter;
    watchdog_timeout = RegisterTimeout(USER_TIMEOUT, FlushWatchdog);
    flush_timeout = RegisterTimeout(USER_TIMEOUT, FlushTimeoutHandler);
}

size_t InsertAddRecord(const RecordView &record, size_t from, bool *head, bool *full)
{
    const char *database = record.request ? record.meta.database : "";
    Oid role = record.request ? record.meta.role : InvalidOid;
    *full = false;
    if (strncmp(database, batch_database, sizeof(batch_database)) != 0 || role != batch_role) {
        /* One database and one role per flush: the rows before go first. */
        if (batch.nrows > 0) {
            *full = true;
            return 0;
        }
        strlcpy(batch_database, database, sizeof(batch_database));
        batch_role = role;
    }
    /* The precision the lines were received under, stamped on them by the listener. */
    Precision precision = static_cast<Precision>(influx_precision);
    if (!record.request && record.precision <= static_cast<uint8>(Precision::Hours))
        precision = static_cast<Precision>(record.precision);
    /*
     * Lines without a timestamp get one server time per record: an HTTP request's (taken by
     * the listener), or a TCP/UDP chunk's, taken when its first line is read and kept while
     * the chunk is read in pieces (docs/idempotency.md).
     */
    static int64 chunk_now_ns = 0;
    if (from == 0 || chunk_now_ns == 0)
        chunk_now_ns = UnixNowNs();
    int64 now_ns = chunk_now_ns;
    batch.request = 0;
    if (record.request) {
        batch.request = RequestTallyFor(record.meta);
        if (record.meta.precision <= static_cast<uint8>(Precision::Hours))
            precision = static_cast<Precision>(record.meta.precision);
        now_ns = record.meta.now_ns;
        if (*head)
            RequestUnit(batch.request);
    }
    *head = false;
    batch.precision = static_cast<uint8_t>(precision);
    size_t used = 0;
    if (from < record.size)
        used = ParseChunk(record.lines + from, record.size - from, precision,
                          IntakeSchema(batch_database), MaxTablesPerFlush(), true, now_ns);
    batch.request = 0;
    /*
     * A record that gave no row (only rejected lines or comments) leaves nothing to flush,
     * so nothing would ever free its copy: free it now, or such input grows the batch
     * memory without bound.
     */
    if (batch.nrows == 0)
        ResetBatch();
    *full = batch.nrows >= static_cast<size_t>(influx_batch_size) ||
            batch.ngroups >= MaxTablesPerFlush() ||
            MemoryContextMemAllocated(batch.cxt, false) >= kMaxBatchMemory ||
            RequestTallyCount() >= kMaxRequestsPerFlush;
    return used;
}

size_t InsertPendingRows(void)
{
    return initialized ? batch.nrows : 0;
}

bool InsertFlushBatch(void);
bool FlushBatchAs(void);
void NoteRowCounts(const RowCounts &n);

bool InsertFlush(void)
{
    /* influx.insert() called by a trigger during this flush must not touch its batch. */
    flush_active = true;
    watchdog_stopping_ms = 0;
    enable_timeout_every(watchdog_timeout,
                         TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kWatchdogTickMs),
                         kWatchdogTickMs);
    bool done = InsertFlushBatch();
    disable_timeout(watchdog_timeout, false);
    flush_active = false;
    return done;
}

/*
 * Waits `ms` before a flush is tried again, answering reloads meanwhile.  False if the
 * worker was asked to stop: then it gives the batch up (see InsertFlush).
 */
bool WaitBeforeRetry(int ms)
{
    TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
    for (;;) {
        if (WorkerShouldGiveUpRetrying())
            return false;
        long secs;
        int usecs;
        TimestampDifference(GetCurrentTimestamp(), until, &secs, &usecs);
        long left = secs * 1000 + usecs / 1000;
        if (left <= 0)
            return true;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        /* Between attempts there is nothing to cancel. */
        QueryCancelPending = false;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
    }
}

/*
 * InsertFlush proper; flush_active is set around it.  The first attempt writes every
 * group with no subtransaction; if it fails for the rows' sake, the isolated attempt
 * rejects just the failing rows.  An error that is not about the rows (ErrorIsTransient)
 * rolls the attempt back and, after a wait that doubles up to kRetryMaxWaitMs, the flush
 * starts over with the same rows -- for as long as it takes: meanwhile the worker reads
 * nothing from its ring, so its senders feel backpressure (TCP) or see drops counted
 * (UDP), and no row is thrown away for a lock, a timeout, a cancel or a full disk.
 */
bool InsertFlushBatch(void)
{
    if (batch.nrows == 0) {
        EndBatch();
        return true;
    }
    /*
     * Rows of an authenticated HTTP request are written as its role: every check of the
     * flush (schema, table, column and row-level security privileges, table creation) is
     * made for it, as for an INSERT of its own.  Transactions started now restore it on
     * abort; the worker's own identity comes back after the flush.
     */
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    /*
     * As in a SECURITY DEFINER function: the session (the worker's login, influx.role) is
     * not the role's, so the code of the role's tables may not SET ROLE or SET SESSION
     * AUTHORIZATION -- which go by the session user -- to take the worker's rights.
     */
    if (OidIsValid(batch_role))
        SetUserIdAndSecContext(batch_role, saved_context | SECURITY_LOCAL_USERID_CHANGE);
    bool done = FlushBatchAs();
    SetUserIdAndSecContext(saved_user, saved_context);
    return done;
}

/*
 * Whether extension pg_influx is installed in the worker's database.  Its functions (the
 * creation hook) and tables (table options) are part of every write: without it, rows would
 * be rejected for the server's state, not for anything about them.
 */
bool ExtensionInstalled(char *database, size_t size)
{
    StartTransactionCommand();
    bool installed = OidIsValid(get_extension_oid("pg_influx", true));
    if (!installed) {
        char *name = get_database_name(MyDatabaseId);
        strlcpy(database, name != nullptr ? name : "?", size);
    }
    CommitTransactionCommand();
    return installed;
}

/* InsertFlushBatch as the batch's role. */
bool FlushBatchAs(void)
{
    /*
     * A copy: influx.schema's string is freed when a reload sets it again, and a reload is
     * answered while the flush waits to retry (WaitBeforeRetry).
     */
    char schema[NAMEDATALEN];
    const char *resolved = ResolveDatabase(batch_database);
    /* Cut as a name is (namein): never inside a character. */
    int len = pg_mbcliplen(resolved, static_cast<int>(strlen(resolved)), NAMEDATALEN - 1);
    memcpy(schema, resolved, len);
    schema[len] = '\0';
    FlushOptions opts = {schema, influx_create_tables, influx_add_columns, true};
    int wait_ms = kRetryFirstWaitMs;
    RowCounts inserted = {0, 0, 0};
    int sqlstate = 0;
    char message[INFLUX_ERROR_TEXT];
    bool ok;
    int suspect_failures = 0;   /* transient failures in a row that a row could cause */
    int contended_failures = 0; /* failures in a row on locks and serialization (above) */
    int hold_ms = kRetryFirstWaitMs;
    for (;;) {
        char database[NAMEDATALEN];
        if (!ExtensionInstalled(database, sizeof(database))) {
            /* Before CREATE EXTENSION, or between a DROP and a CREATE: held, not rejected. */
            Problem(reporter, kFlushRetries, 1,
                    "%lld rows held: extension pg_influx is not installed in database \"%s\" "
                    "(influx.database); they are written once it is",
                    static_cast<long long>(AllPendingRows()), database);
            /* In pg_stat_activity too: influx.stats() is part of the missing extension. */
            pgstat_report_activity(STATE_IDLE, "waiting for CREATE EXTENSION pg_influx");
            SetSlotActivity(my_slot, "waiting for CREATE EXTENSION pg_influx");
            /*
             * Unlike a lock, this may never end here: once the listener that sent the lines
             * is gone (influx.database changed, say), give them up rather than keep the
             * worker forever.
             */
            if (WorkerListenerGone() || !WaitBeforeRetry(hold_ms)) {
                EndBatch();
                return false;
            }
            hold_ms = Min(hold_ms * 2, kRetryMaxWaitMs);
            continue;
        }
        ApplySynchronousCommit();
        PrepareSchema(&opts);
        isolate_transient = suspect_failures >= kTransientFailuresBeforeIsolating;
        park_contended = contended_failures >= kContendedFailures;
        bool whole = !isolate_transient && !park_contended;
        ok =
            whole && FlushTransaction(&opts, false, &inserted, &sqlstate, message, sizeof(message));
        /* A table that failed so in an earlier flush: handed back at once (its lines came again).
         */
        if (!ok && contended_failures == 0 && ErrorContended(sqlstate) &&
            RecentlyContended(progress.table))
            park_contended = true;
        if (!ok && sqlstate == ERRCODE_UNIQUE_VIOLATION && progress.optimistic) {
            probe_attempt = true;
            ok = FlushTransaction(&opts, false, &inserted, &sqlstate, message, sizeof(message));
            probe_attempt = false;
        }
        if (!ok && whole)
            CitusCommitFailureHolds(&sqlstate);
        if (!ok && (isolate_transient || park_contended || !ErrorIsTransient(sqlstate))) {
            ok = FlushTransaction(&opts, true, &inserted, &sqlstate, message, sizeof(message));
            if (!ok)
                CitusCommitFailureHolds(&sqlstate);
        }
        /* Narrowed down after a half-begun subtransaction: again, at once (bounded). */
        while (!ok && attempt_narrowed) {
            CHECK_FOR_INTERRUPTS();
            ok = FlushTransaction(&opts, true, &inserted, &sqlstate, message, sizeof(message));
        }
        isolate_transient = park_contended = false;
        if (ok || !ErrorIsTransient(sqlstate))
            break;
        if (ErrorContended(sqlstate)) {
            NoteContended(progress.table);
            contended_failures++;
        } else {
            contended_failures = 0;
        }
        if (error_was_lock_table && batch.ngroups > 1 &&
            attempt_relations >= LockTableEntries() / 8) {
            /*
             * Full because of this flush (it held an eighth of the table, not just a few
             * locks that other sessions left no room for): fewer tables next time (see
             * lock_table_groups).  Full because of others, the flush waits as before.
             */
            int groups = lock_table_groups > 0 ? lock_table_groups : batch.ngroups;
            lock_table_groups = Max(1, groups / 2);
            if (attempt_tables > 0)
                learned_relations_per_table = static_cast<int>(
                    Max(2, (attempt_relations + attempt_tables - 1) / attempt_tables));
        }
        suspect_failures = ErrorAlwaysRetried(sqlstate) ? 0 : suspect_failures + 1;
        Problem(reporter, kFlushRetries, 1,
                "flush of %lld rows rolled back (SQLSTATE %s), trying again in %d ms: %s",
                static_cast<long long>(AllPendingRows()), unpack_sql_state(sqlstate), wait_ms,
                message);
        pgstat_report_activity(STATE_IDLE, nullptr);
        SetSlotActivity(my_slot, "waiting to retry a flush");
        if (!WaitBeforeRetry(wait_ms)) {
            EndBatch();
            return false;
        }
        wait_ms = Min(wait_ms * 2, kRetryMaxWaitMs);
    }
    if (!ok) {
        Problem(reporter, kRowsRejectedInsert, AllPendingRows(), "batch of %lld rows lost: %s",
                static_cast<long long>(AllPendingRows()), message);
        for (int k = 0; k < batch.ngroups; k++)
            for (int i = 0; i < batch.groups[k]->nrows; i++)
                MarkRejected(&batch.groups[k]->rows[i]);
        /* Nothing was handed back by a flush that committed nothing. */
        for (uint32 k = 1; k <= RequestTallyCount(); k++)
            RequestTallyAt(k)->handed_back = 0;
    }
    if (ok) {
        NoteRowCounts(inserted);
        Note(reporter, kBatches);
        if (attempt_tables > 0)
            learned_relations_per_table =
                static_cast<int>((attempt_relations + attempt_tables - 1) / attempt_tables);
    }
    EndBatch();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
    SetSlotActivity(my_slot, "idle");
    return true;
}

/* Counts what a committed write did with its rows. */
void NoteRowCounts(const RowCounts &n)
{
    Note(reporter, kRowsInserted, n.inserted);
    if (n.merged > 0)
        Note(reporter, kRowsMerged, n.merged);
    if (n.skipped > 0)
        Note(reporter, kRowsSkipped, n.skipped);
}

bool InsertIsActive(void)
{
    return sql_call_active || flush_active;
}

int64 InsertLines(const char *data, size_t size, const InsertOptions *options)
{
    if (InsertIsActive())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("influx.insert() cannot be called while %s is running",
                               flush_active ? "an influx worker's flush" : "it")));
    FlushOptions opts = {options->schema, options->create_tables, options->add_columns, false};

    EnsureInitialized();
    sql_call_active = true;
    Reporter caller = CallerReporter();
    reporter = &caller;
    volatile int64 inserted = 0; /* rows written: new or merged */
    MemoryContext oldcxt = CurrentMemoryContext;
    PG_TRY();
    {
        ResetBatch();
        /* The parser reads UTF-8; values go back to the database encoding as stored. */
        const char *utf8 = ServerToUtf8(data, &size);
        batch.precision = static_cast<uint8_t>(options->precision);
        (void) ParseChunk(utf8, size, options->precision, opts.schema, INT_MAX, false);

        /* First attempt: everything in one subtransaction; on failure, isolate. */
        RowCounts n = {0, 0, 0};
        char message[INFLUX_ERROR_TEXT];
        int sqlstate = 0;
        bool ok = InSubtransaction(
            work_cxt, [&]() { n = InsertAll(&opts, false); }, &sqlstate, message, sizeof(message));
        MemoryContextSwitchTo(work_cxt);
        if (!ok && sqlstate == ERRCODE_UNIQUE_VIOLATION && progress.optimistic) {
            /* A point exists: once more, looking every point up (see probe_attempt). */
            probe_attempt = true;
            ok = InSubtransaction(
                work_cxt, [&]() { n = InsertAll(&opts, false); }, &sqlstate, message,
                sizeof(message));
            probe_attempt = false;
            MemoryContextSwitchTo(work_cxt);
        }
        /* Not about the rows (a cancel, a lock timeout, ...): the caller's to handle. */
        if (!ok && ErrorIsTransient(sqlstate))
            ereport(ERROR, (errcode(sqlstate), errmsg("%s", message)));
        if (!ok)
            n = InsertAll(&opts, true);
        inserted = n.inserted + n.merged;
        NoteRowCounts(n);
    }
    PG_FINALLY();
    {
        MemoryContextSwitchTo(oldcxt);
        EndBatch();
        subxact_left_half_begun = false; /* the error went to the caller */
        trying.group = nullptr;
        sql_call_active = false;
        reporter = &worker_reporter;
    }
    PG_END_TRY();
    return inserted;
}

} // namespace influx
