/*
 * insert.cpp — the insert path: chunks of lines in, committed rows out (see insert.hpp).
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
 *   resolve   finding a group's table: the name map, the creation hook for an unknown
 *             measurement, the column hook for new tags and fields, lock, privileges.
 *   schema pass  (workers only) before a flush, new tables and columns are made in short
 *             transactions of their own, one table each, so that the flush itself takes
 *             only RowExclusiveLock; see PrepareSchema.
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
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
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
#include "ipc/chunk.hpp"
#include "ingest/convert.hpp"
#include "ingest/identity.hpp"
#include "ingest/insert.hpp"
#include "core/pg_cpp.hpp"
#include "core/report.hpp"
#include "core/settings.hpp"
#include "ingest/table_cache.hpp"
#include "ingest/table_writer.hpp"
#include "ingest/worker.hpp"

namespace influx
{

namespace
{

/* What a flush needs to know besides the batch: from the settings, or influx.insert(). */
struct FlushOptions {
    const char *schema;
    bool create_tables;
    bool add_columns;
    bool worker; /* report activity, own transactions, may hand rows back */
};

bool initialized = false;
ProcessSlot *my_slot = nullptr;
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
bool error_was_timeout = false;    /* a cancel by the flush timeout */
bool error_was_lock_table = false; /* out of shared memory in the lock table */

/* The worker's hooks (NULL in a backend running influx.insert()). */
const WorkerHooks *hooks = nullptr;

/*
 * Handing back (insert.hpp WorkerHooks): in this flush attempt, whether groups whose table
 * is locked by another session may be parked, and the handback bytes they need.
 */
bool may_park = false;
size_t park_bytes = 0;

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

/* Refused builds in a row after which a group's lines take the ordinary path (batch.hpp). */
constexpr int kBuildRefusalsToStop = 16;

/*
 * Tables one worker transaction writes at most: a batch is flushed once it names this many
 * measurements.  Each table takes a lock (and its indexes one each) in the server's shared
 * lock table, which holds max_locks_per_transaction x (max_connections + ...) entries for
 * all sessions together (6,400 and more with the defaults), and a flush that must isolate
 * rows gives each table a subtransaction.  influx.insert() writes in its caller's
 * transaction and has no such cap.
 */
constexpr int kMaxTablesPerFlush = 256;

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

/* objsubid of the measurement-name locks in pg_locks (LockMeasurementName). */
constexpr uint16 kMeasurementLockKind = 0x4848;

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

/* Current time as Unix nanoseconds, for lines without a timestamp. */
int64 NowNs(void)
{
    TimestampTz now = GetCurrentTimestamp();
    return (now + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) * 1000;
}

/* A short, printable excerpt of a line for messages (at most 60 bytes). */
void Excerpt(std::string_view line, bool ascii_only, char *buf, size_t size)
{
    size_t n = Min(line.size(), static_cast<size_t>(60));
    while (n > 0 && n < line.size() && (static_cast<unsigned char>(line[n]) & 0xC0) == 0x80)
        n--;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < size; i++) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        buf[o++] = c < 0x20 || c == 0x7F || (ascii_only && c >= 0x80) ? '?' : static_cast<char>(c);
    }
    if (n < line.size() && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/*
 * ParseOne for a plain line (IsPlain; `plain`: its whole chunk is) with the layout of the
 * last line of its measurement that was converted in this batch: reads and converts it
 * against that layout.  False (nothing done) otherwise.
 */
bool ReadShapedLine(std::string_view line, int64 now_ns, bool plain)
{
    BatchGroup *g = shaped_group;
    const LineShape *shape = RowShape(g->build_memo); /* NULL if its last line had none */
    /* Another measurement than the last line's: its own group's layout, if it has one. */
    if (shape == nullptr || line.size() <= shape->measurement.size ||
        (line[shape->measurement.size] != ',' && line[shape->measurement.size] != ' ') ||
        !SameBytes(line.data(), shape->measurement.data, shape->measurement.size)) {
        size_t len = PlainMeasurementLength(line);
        if (len >= NAMEDATALEN || len >= line.size())
            return false;
        g = BatchLookupGroup(&batch, line.data(), len);
        if (g == nullptr || g->build_memo == nullptr ||
            (shape = RowShape(g->build_memo)) == nullptr)
            return false;
    }
    ShapeValues &sv = shape_values;
    if (!(plain || IsPlain(line.data(), line.size())) || !parser->MatchShape(*shape, line, &sv))
        return false;
    const Datum *values;
    int nvalues;
    int64 time_ns = sv.has_time ? sv.time_ns : now_ns;
    MemoryContext old = MemoryContextSwitchTo(batch.cxt);
    bool built = BuildShapedRow(g->build_info, g->build_memo, sv, time_ns, &values, &nvalues);
    MemoryContextSwitchTo(old);
    if (!built)
        return false;
    Note(kLinesReceived);
    BatchAddBuiltRow(&batch, g, values, nvalues, time_ns, line.data(), line.size());
    shaped_group = g;
    return true;
}

/*
 * Whether names must be ASCII: the database encoding is neither UTF-8 (names go to the
 * catalog as they came) nor SQL_ASCII (bytes stored as they are).  In LATIN1, say, a
 * non-ASCII measurement or key would otherwise name a table or column in mis-decoded
 * bytes; such lines are rejected with the reason instead.
 */
bool names_need_ascii = false;

bool IsAscii(const Text &t)
{
    for (uint32 i = 0; i < t.size; i++)
        if (static_cast<unsigned char>(t.data[i]) >= 0x80)
            return false;
    return true;
}

bool NamesAreAscii(const Point &point)
{
    if (!IsAscii(point.measurement))
        return false;
    for (uint32 i = 0; i < point.ntags; i++)
        if (!IsAscii(point.tags[i].key))
            return false;
    for (uint32 i = 0; i < point.nfields; i++)
        if (!IsAscii(point.fields[i].key))
            return false;
    return true;
}

/*
 * Parses one line into the batch.  Rejected lines are counted and reported; points whose
 * measurement cannot name a table (longer than 63 bytes, NUL byte) are rejected here
 * rather than truncated into some other table's name.
 */
void ParseOne(std::string_view line, int64 now_ns, const char *schema, bool plain)
{
    /* The usual line has the layout of the last line of its measurement: read it so. */
    if (shaped_group != nullptr && ReadShapedLine(line, now_ns, plain))
        return;

    Point point;
    ParseStatus status = parser->ParseLine(line, &point, plain);
    if (status == ParseStatus::Skip)
        return;
    Note(kLinesReceived);
    if (status == ParseStatus::Invalid) {
        const ParseError &e = parser->error();
        char excerpt[80];
        Excerpt(line, e.cls == ErrorClass::Encoding, excerpt, sizeof(excerpt));
        Counter reason = e.cls == ErrorClass::TooLong       ? kLinesRejectedTooLong
                         : e.cls == ErrorClass::OutOfMemory ? kLinesRejectedMemory
                                                            : kLinesRejectedSyntax;
        Problem(reason, 1, "line rejected: %s: \"%s\"", e.message, excerpt);
        return;
    }

    char name[NAMEDATALEN];
    size_t len = UnescapedSize(point.measurement);
    if (len >= NAMEDATALEN || memchr(point.measurement.data, '\0', point.measurement.size)) {
        char excerpt[80];
        Excerpt(line, false, excerpt, sizeof(excerpt));
        Problem(kRowsRejectedTable, 1,
                len >= NAMEDATALEN ? "row rejected: measurement name longer than 63 bytes: \"%s\""
                                   : "row rejected: measurement name contains a NUL byte: \"%s\"",
                excerpt);
        return;
    }
    if (!plain && names_need_ascii && !NamesAreAscii(point)) {
        char excerpt[80];
        Excerpt(line, false, excerpt, sizeof(excerpt));
        Problem(kRowsRejectedValue, 1,
                "row rejected: names must be ASCII in a database with encoding %s: \"%s\"",
                GetDatabaseEncodingName(), excerpt);
        return;
    }
    len = Unescape(point.measurement, name);
    name[len] = '\0';
    BatchGroup *g = BatchFindGroup(&batch, name, len);
    int64 time_ns = point.has_time ? point.time_ns : now_ns;

    /* A table the cache already knows: convert the row now, while the line is hot. */
    if (!g->build_checked) {
        g->build_checked = true;
        g->build_info = TableCachePeek(schema, g->measurement);
        if (g->build_info != nullptr) {
            MemoryContext old = MemoryContextSwitchTo(batch.cxt);
            g->build_memo = BuildMemoCreate(g->build_info);
            MemoryContextSwitchTo(old);
        }
    }
    /* Lines that need the ordinary path (leftover keys, say) usually keep needing it. */
    if (g->build_info != nullptr && g->build_refusals < kBuildRefusalsToStop) {
        const Datum *values;
        int nvalues;
        MemoryContext old = MemoryContextSwitchTo(batch.cxt);
        bool built = BuildRow(g->build_info, g->build_memo, point, time_ns, &values, &nvalues);
        MemoryContextSwitchTo(old);
        if (built) {
            g->build_refusals = 0;
            BatchAddBuiltRow(&batch, g, values, nvalues, time_ns, line.data(), line.size());
            if (LearnRowShape(g->build_memo, point, values, nvalues))
                shaped_group = g;
            return;
        }
        g->build_refusals++;
    }
    BatchAddRow(&batch, g, point, time_ns, line.data(), line.size());
}

/*
 * The tag and field arrays of a built row that goes to a table other than the one it was
 * built for (its table changed, or influx.schema): its line parsed again, into the
 * parser's own arrays, valid until the parser's next use.  Row by row, when needed, so a
 * changed table costs no batch's worth of arrays.  The line parsed before, so it parses
 * again; the row keeps its time, so any precision would do (nanoseconds never overflow),
 * and the length limit, which may have been lowered since, is lifted.
 */
bool ReparseRow(const BatchRow *row, Point *point)
{
    ParserOptions saved = parser->options();
    ParserOptions options = saved;
    options.max_line_length = SIZE_MAX;
    options.precision = Precision::Nanoseconds;
    parser->set_options(options);
    bool ok =
        parser->ParseLine(std::string_view(row->line, row->line_len), point) == ParseStatus::Ok;
    parser->set_options(saved);
    return ok;
}

/*
 * Between lines: a worker honours a pending die (ProcDiePending: the postmaster's death
 * handling, or the flush watchdog's) but not a cancel, which is for flushes (worker.cpp);
 * influx.insert() honours both, as any statement does.
 */
void ParseInterrupts(bool worker)
{
    if (worker)
        QueryCancelPending = false;
    CHECK_FOR_INTERRUPTS();
}

/*
 * Copies a block of lines into the batch and parses them (tables are looked for in
 * `schema`).  Stops after the line that gives the batch its `max_groups`th measurement and
 * returns the bytes it consumed (all of them unless it stopped): the rest starts with a
 * whole line.
 */
size_t ParseChunk(const char *data, size_t size, Precision precision, const char *schema,
                  int max_groups, bool worker)
{
    ParserOptions options;
    options.precision = precision;
    options.max_line_length = static_cast<size_t>(influx_max_line_length);
    parser->set_options(options);

    char *copy = BatchCopyBytes(&batch, data, size);
    int64 now_ns = NowNs();
    names_need_ascii = GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII;
    /* One pass over the chunk spares every line its own UTF-8, quote and escape checks. */
    bool plain = IsPlain(copy, size);
    return ForEachLineUntil(
        copy, size,
        [now_ns, schema, plain, max_groups, worker](std::string_view line) {
            if (unlikely(InterruptPending))
                ParseInterrupts(worker);
            ParseOne(line, now_ns, schema, plain);
            return batch.ngroups < max_groups;
        },
        plain);
}

/*
 * In a PG_CATCH block: takes the current error out of the error state (the caller then
 * rolls back), copies its message into `message` and returns its SQLSTATE.  Allocates in
 * the current memory context, which must not be the failed (sub)transaction's.
 */
int TakeError(char *message, size_t message_size)
{
    ErrorData *edata = CopyErrorData();
    FlushErrorState();
    int sqlstate = edata->sqlerrcode;
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
 * Runs fn() in a subtransaction, in memory context `run_cxt`.  True when it was released;
 * false, rolled back, when fn raised an ERROR: then on_error() runs first (while nothing
 * else has happened yet: a timer to disarm, say), and the error's SQLSTATE and message are
 * taken (TakeError) in the caller's memory context.  The caller's memory context and
 * resource owner are current again either way.  The one subtransaction helper of the
 * insert path: fn must not keep C++ objects with destructors alive (an ERROR longjmps).
 */
template <typename Fn, typename OnError>
bool InSubtransaction(MemoryContext run_cxt, const Fn &fn, const OnError &on_error, int *sqlstate,
                      char *message, size_t message_size)
{
    MemoryContext oldcxt = CurrentMemoryContext;
    ResourceOwner oldowner = CurrentResourceOwner;
    volatile bool ok = true;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(run_cxt);
    PG_TRY();
    {
        fn();
        ReleaseCurrentSubTransaction();
    }
    PG_CATCH();
    {
        on_error();
        MemoryContextSwitchTo(oldcxt);
        *sqlstate = TakeError(message, message_size);
        RollbackAndReleaseCurrentSubTransaction();
        ok = false;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(oldcxt);
    CurrentResourceOwner = oldowner;
    return ok;
}

template <typename Fn>
bool InSubtransaction(MemoryContext run_cxt, const Fn &fn, int *sqlstate, char *message,
                      size_t message_size)
{
    return InSubtransaction(
        run_cxt, fn, []() {}, sqlstate, message, message_size);
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

/* Rejects every remaining row of [lo, hi) for one reason (counted once per row). */
void RejectRange(BatchGroup *g, int lo, int hi, Counter counter, const char *reason)
{
    int64 n = PendingRows(g, lo, hi);
    if (n == 0)
        return;
    for (int i = lo; i < hi; i++)
        g->rows[i].rejected = true;
    Problem(counter, n, "%lld row%s for \"%s\" rejected: %s", static_cast<long long>(n),
            n == 1 ? "" : "s", LogName(g->measurement), reason);
}

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
    HASHCTL ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.keysize = NAMEDATALEN;
    ctl.entrysize = NAMEDATALEN + sizeof(int);
    ctl.hcxt = CurrentMemoryContext;
    HTAB *seen = hash_create("influx keys", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
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
                if (strcmp(name, "_time") == 0)
                    continue;
                if (info != nullptr && TableInfoFindColumn(info, name, len) >= 0)
                    continue;
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
 * more.  Workers creating different tables at once may overshoot by one each.  Counting
 * scans pg_class, so a count is reused for a second (counting the tables this process
 * created meanwhile): a sender inventing a measurement per line costs one scan a second,
 * not one per line.
 */
struct TableCount {
    Oid nspid;
    int count;
    TimestampTz at;
};
TableCount table_count = {InvalidOid, 0, 0};

bool TableLimitReached(Oid nspid, char *reason, size_t size)
{
    if (influx_max_tables <= 0)
        return false;
    TimestampTz now = GetCurrentTimestamp();
    if (table_count.nspid != nspid || TimestampDifferenceExceeds(table_count.at, now, 1000)) {
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
        table_count = {nspid, count, now};
    }
    if (table_count.count < influx_max_tables)
        return false;
    pg_snprintf(reason, size,
                "the schema holds %d tables, influx.max_tables allows %d: no table is created",
                table_count.count, influx_max_tables);
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
        Problem(kErrors, 0, "could not add columns to \"%s\": %s", LogName(g->measurement),
                message);
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

/* Handback bytes of rows [lo, hi) of a group: one record of their lines, each with '\n'. */
size_t GroupLineBytes(BatchGroup *g, int lo, int hi)
{
    size_t n = kRecordHeader;
    for (int i = lo; i < hi; i++)
        if (!g->rows[i].rejected)
            n += g->rows[i].line_len + 1;
    return n;
}

/*
 * Before a flush commits: writes the lines of the groups this attempt parked into the
 * handback area, one record per group, and returns the bytes written (0: nothing parked).
 */
size_t WriteHandback(void)
{
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
        size_t start = pos + kRecordHeader;
        size_t end = start;
        for (int i = 0; i < g->nrows; i++) {
            const BatchRow *row = &g->rows[i];
            if (row->rejected)
                continue;
            /* OpenTable reserved room for every row of the group (park_bytes). */
            if (end + row->line_len + 1 > hooks->handback_capacity)
                elog(PANIC, "pg_influx: handback area overrun");
            memcpy(area + end, row->line, row->line_len);
            end += row->line_len;
            area[end++] = '\n';
            rows++;
        }
        uint32 len = static_cast<uint32>(end - start);
        memcpy(area + pos, &len, kRecordHeader);
        pos = end;
        groups++;
    }
    Assert(pos <= park_bytes);
    ReportProblem(my_slot,
                  "%lld rows of %d table%s locked by another session handed back, to "
                  "be sent again",
                  static_cast<long long>(rows), groups, groups == 1 ? "" : "s");
    return pos;
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

/*
 * Resolves the group's table and writes rows [lo, hi) into it.  Raises an ERROR for
 * anything the table refuses; `progress` tells where.  Returns rows written.
 */
int64 InsertGroup(const FlushOptions *opts, BatchGroup *g, int lo, int hi)
{
    progress.stage = WriteStage::Resolve;
    progress.row = -1;
    progress.column = nullptr;
    if (g->parked || PendingRows(g, lo, hi) == 0)
        return 0;

    Oid nspid = TableCacheSchemaOid(opts->schema);
    if (!OidIsValid(nspid)) {
        char reason[NAMEDATALEN + 32];
        pg_snprintf(reason, sizeof(reason), "schema \"%s\" does not exist", opts->schema);
        RejectRange(g, lo, hi, kRowsRejectedTable, reason);
        return 0;
    }
    const char *schema_refusal = SchemaRefusal(nspid, GetUserId());
    if (schema_refusal != nullptr) {
        RejectRange(g, lo, hi, kRowsRejectedTable, schema_refusal);
        return 0;
    }
    Relation rel = OpenTable(opts, nspid, g, lo, hi);
    if (rel == nullptr)
        return 0;

    Oid relid = RelationGetRelid(rel);
    TableInfo *info = nullptr;
    const char *refusal = Refusal(rel, &info);
    if (refusal != nullptr) {
        table_close(rel, RowExclusiveLock);
        RejectRange(g, lo, hi, kRowsRejectedTable, refusal);
        return 0;
    }
    if (opts->add_columns && g->schema_relid != relid) {
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
    int64 n = WriteRows(rel, info, GetUserId(), g, lo, hi, &progress, ReparseRow);
    PopActiveSnapshot();
    table_close(rel, NoLock);
    return n;
}

/* Runs InsertGroup in a subtransaction; on failure, *message and *sqlstate say why. */
bool InsertGroupInSubxact(const FlushOptions *opts, BatchGroup *g, int lo, int hi, int64 *n,
                          char *message, size_t message_size, int *sqlstate)
{
    MemoryContextReset(attempt_cxt);
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
    MemoryContextReset(attempt_cxt);

    /*
     * An error that is not about the rows ends the whole attempt: influx.insert() raises
     * it to its caller (as INSERT would); a worker rolls the flush back and tries it
     * again later (InsertFlushBatch).  Going on with the next range would only reject
     * good rows, and the attempt still holds the locks of the groups before this one.
     */
    if (!ok && EndsAttempt(*sqlstate))
        RaiseAgain(*sqlstate, message);
    return ok;
}

/*
 * Writes rows [lo, hi) of a group in subtransactions, narrowing down failures: at the
 * failing row when the error says which one it was, else by halves, down to single rows.
 */
int64 InsertGroupIsolated(const FlushOptions *opts, BatchGroup *g, int lo, int hi)
{
    check_stack_depth();
    int64 total = 0;
    while (lo < hi && PendingRows(g, lo, hi) > 0) {
        CHECK_FOR_INTERRUPTS();
        char message[INFLUX_ERROR_TEXT];
        int sqlstate = 0;
        int64 n = 0;
        if (InsertGroupInSubxact(opts, g, lo, hi, &n, message, sizeof(message), &sqlstate)) {
            total += n;
            break;
        }
        WriteStage stage = progress.stage;
        int row = progress.row;
        bool in_value = progress.column != nullptr;

        if (stage == WriteStage::Resolve || stage == WriteStage::Setup) {
            RejectRange(g, lo, hi, kRowsRejectedTable, message);
            break;
        }
        if (stage == WriteStage::Rows && row >= lo && row < hi) {
            g->rows[row].rejected = true;
            Problem(in_value ? kRowsRejectedValue : kRowsRejectedInsert, 1,
                    "row rejected: table \"%s\"%s%s%s: %s", LogName(g->measurement),
                    in_value ? ", column \"" : "", in_value ? LogName(progress.column) : "",
                    in_value ? "\"" : "", message);
            if (row > lo)
                total += InsertGroupIsolated(opts, g, lo, row);
            lo = row + 1;
            continue;
        }
        if (hi - lo == 1) {
            g->rows[lo].rejected = true;
            Problem(kRowsRejectedInsert, 1, "row rejected: table \"%s\": %s",
                    LogName(g->measurement), message);
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

int64 InsertAll(const FlushOptions *opts, bool isolate)
{
    int64 total = 0;
    if (opts->worker) {
        /*
         * The role may have been made a superuser since the worker started: then nothing
         * is written, and the flush waits (its rows kept) until the role is fixed.
         */
        const char *problem =
            WriterRoleProblem(superuser_arg(GetUserId()), has_bypassrls_privilege(GetUserId()));
        if (problem != nullptr)
            ereport(ERROR, (errcode(ERRCODE_CANNOT_CONNECT_NOW),
                            errmsg("role \"%s\" (influx.role) %s",
                                   GetUserNameFromId(GetUserId(), false), problem)));
    }
    /* Each attempt decides afresh which groups to hand back (a lock may have gone). */
    may_park = opts->worker && hooks != nullptr && hooks->handback_allowed();
    park_bytes = 0;
    for (int i = 0; i < batch.ngroups; i++)
        batch.groups[i]->parked = false;
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
 * Runs fn() in a transaction of its own (with a snapshot, in work_cxt), as a statement
 * would run.  Returns false, rolled back, if anything raised an ERROR, whose code and
 * message are returned for the caller to report.
 */
template <typename Fn>
bool InOwnTransaction(const Fn &fn, int *sqlstate, char *message, size_t message_size,
                      bool announce_commit = false)
{
    MemoryContext oldcxt = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        /*
         * statement_timeout (of the role or database, as ALTER ROLE ... SET gives it)
         * bounds each transaction as it bounds a statement; postgres.c arms it per
         * statement, which a background worker never runs.  Its cancel is a transient
         * error: the flush is tried again (InsertFlushBatch).
         */
        if (!isolate_transient)
            ArmFlushTimeout();
        PushActiveSnapshot(GetTransactionSnapshot());
        MemoryContextSwitchTo(work_cxt);
        fn();
        MemoryContextSwitchTo(oldcxt);
        PopActiveSnapshot();
        if (announce_commit && hooks != nullptr)
            hooks->announce_commit(GetTopTransactionIdIfAny(), WriteHandback());
        CommitTransactionCommand();
        DisarmFlushTimeout();
    }
    PG_CATCH();
    {
        HOLD_INTERRUPTS();
        DisarmFlushTimeout();
        MemoryContextSwitchTo(work_cxt);
        *sqlstate = TakeError(message, message_size);
        AbortOutOfAnyTransaction();
        RESUME_INTERRUPTS();
        ok = false;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(oldcxt);
    return ok;
}

/*
 * A worker's flush attempt as one transaction of its own.  Returns false (rolled back) if
 * anything raised an ERROR, including the commit; *sqlstate and message say what.
 */
bool FlushTransaction(const FlushOptions *opts, bool isolate, int64 *inserted, int *sqlstate,
                      char *message, size_t message_size)
{
    bool ok = InOwnTransaction(
        [&]() {
            if (isolate)
                SetConstraintsImmediate();
            *inserted = InsertAll(opts, isolate);
        },
        sqlstate, message, message_size, true);
    /* Lines this attempt handed back belong to a flush that did not commit: not valid. */
    if (!ok && hooks != nullptr)
        hooks->handback_rolled_back();
    if (!ok && !isolate)
        elog(DEBUG1, "pg_influx: batch failed, retrying table by table: %s", message);
    return ok;
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
    ResetBatch();
    parser->Trim();
    MemoryContextReset(attempt_cxt);
    MemoryContextReset(work_cxt);
    TableCacheEndOfBatch();
}

} // namespace

void InsertInit(ProcessSlot *slot, const WorkerHooks *worker_hooks)
{
    my_slot = slot;
    hooks = worker_hooks;
    EnsureInitialized();
    ReportToSlot(slot);
    watchdog_timeout = RegisterTimeout(USER_TIMEOUT, FlushWatchdog);
    flush_timeout = RegisterTimeout(USER_TIMEOUT, FlushTimeoutHandler);
}

size_t InsertAddRecord(const char *data, size_t size, bool *full)
{
    size_t used = ParseChunk(data, size, static_cast<Precision>(influx_precision), influx_schema,
                             kMaxTablesPerFlush, true);
    /*
     * A record that gave no row (only rejected lines or comments) leaves nothing to flush,
     * so nothing would ever free its copy: free it now, or such input grows the batch
     * memory without bound.
     */
    if (batch.nrows == 0)
        ResetBatch();
    *full = batch.nrows >= static_cast<size_t>(influx_batch_size) ||
            batch.ngroups >= kMaxTablesPerFlush ||
            MemoryContextMemAllocated(batch.cxt, false) >= kMaxBatchMemory;
    return used;
}

size_t InsertPendingRows(void)
{
    return initialized ? batch.nrows : 0;
}

bool InsertFlushBatch(void);

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
    FlushOptions opts = {influx_schema, influx_create_tables, influx_add_columns, true};
    int wait_ms = kRetryFirstWaitMs;
    int64 inserted = 0;
    int sqlstate = 0;
    char message[INFLUX_ERROR_TEXT];
    bool ok;
    int suspect_failures = 0; /* transient failures in a row that a row could cause */
    for (;;) {
        ApplySynchronousCommit();
        PrepareSchema(&opts);
        isolate_transient = suspect_failures >= kTransientFailuresBeforeIsolating;
        ok = !isolate_transient &&
             FlushTransaction(&opts, false, &inserted, &sqlstate, message, sizeof(message));
        if (!ok && (isolate_transient || !ErrorIsTransient(sqlstate)))
            ok = FlushTransaction(&opts, true, &inserted, &sqlstate, message, sizeof(message));
        isolate_transient = false;
        if (ok || !ErrorIsTransient(sqlstate))
            break;
        suspect_failures = ErrorAlwaysRetried(sqlstate) ? 0 : suspect_failures + 1;
        Problem(kFlushRetries, 1,
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
    if (!ok)
        Problem(kRowsRejectedInsert, AllPendingRows(), "batch of %lld rows lost: %s",
                static_cast<long long>(AllPendingRows()), message);
    if (ok) {
        Note(kRowsInserted, inserted);
        Note(kBatches);
    }
    EndBatch();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
    SetSlotActivity(my_slot, "idle");
    return true;
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
    ReportToSqlCall();
    volatile int64 inserted = 0;
    MemoryContext oldcxt = CurrentMemoryContext;
    PG_TRY();
    {
        ResetBatch();
        /* The parser reads UTF-8; values go back to the database encoding as stored. */
        const char *utf8 = ServerToUtf8(data, &size);
        (void) ParseChunk(utf8, size, options->precision, opts.schema, INT_MAX, false);

        /* First attempt: everything in one subtransaction; on failure, isolate. */
        int64 n = 0;
        char message[INFLUX_ERROR_TEXT];
        int sqlstate = 0;
        bool ok = InSubtransaction(
            work_cxt, [&]() { n = InsertAll(&opts, false); }, &sqlstate, message, sizeof(message));
        MemoryContextSwitchTo(work_cxt);
        /* Not about the rows (a cancel, a lock timeout, ...): the caller's to handle. */
        if (!ok && ErrorIsTransient(sqlstate))
            ereport(ERROR, (errcode(sqlstate), errmsg("%s", message)));
        if (!ok)
            n = InsertAll(&opts, true);
        inserted = n;
        Note(kRowsInserted, inserted);
    }
    PG_FINALLY();
    {
        MemoryContextSwitchTo(oldcxt);
        EndBatch();
        sql_call_active = false;
        ReportToSlot(my_slot);
    }
    PG_END_TRY();
    return inserted;
}

} // namespace influx
