/*
 * insert_path.hpp — what the three files of the insert path share (not for other areas:
 * they use insert.hpp).
 *
 *   intake.cpp   lines into the batch: parsing, the built-row and shape fast paths
 *   tables.cpp   the tables rows go to: lookup, creation and new columns (the schema pass),
 *                opening and locking, the writer's privileges, the table-count limit
 *   insert.cpp   flushes: transactions, retries of transient errors, isolation of bad rows
 *                in subtransactions, hand-back of locked tables; the worker's API and
 *                influx.insert()'s
 *
 * Process-wide state lives in insert.cpp; everything here is in namespace
 * influx::insert_path.  Include after postgres.h.
 */
#pragma once

extern "C" {
#include "access/xact.h"
#include "storage/lockdefs.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
}

#include <string_view>

#include "core/report.hpp"
#include "ingest/batch.hpp"
#include "ingest/insert.hpp"
#include "ingest/table_cache.hpp"
#include "ingest/table_writer.hpp"
#include "protocol/line_protocol.hpp"

namespace influx
{
namespace insert_path
{

/* What a flush needs to know besides the batch: from the settings, or influx.insert(). */
struct FlushOptions {
    const char *schema;
    bool create_tables;
    bool add_columns;
    bool worker; /* report activity, own transactions, may hand rows back */
};

/* ---- state (insert.cpp) ---- */

extern ProcessSlot *my_slot;
/* Where the insert path counts and reports (core/report.hpp): the worker's slot, or during
 * influx.insert() its caller. */
extern Reporter *reporter;
extern LineParser *parser;
extern Batch batch;
/*
 * The group of the last line that was read against a layout or gave its group one
 * (RowShape; NULL again if a later line of that group had none), tried first for the next
 * line.  NULL while no group of the batch has had a layout.
 */
extern BatchGroup *shaped_group;
/* What MatchShape read from the current line (kept here: too big to clear for every line). */
extern ShapeValues shape_values;
extern MemoryContext work_cxt;    /* per flush: lookups, error data */
extern MemoryContext attempt_cxt; /* per write attempt: executor state */
/* The worker's hooks (NULL in a backend running influx.insert()). */
extern const WorkerHooks *hooks;
/*
 * Handing back (insert.hpp WorkerHooks): in this flush attempt, whether groups whose table
 * is locked by another session may be parked, and the handback bytes they need.
 */
extern bool may_park;
extern size_t park_bytes;
/* Set while a flush isolates transient errors too (see ErrorAlwaysRetried). */
extern bool isolate_transient;

/*
 * Set when InSubtransaction could not roll its subtransaction back where it failed: code
 * inside began a subtransaction of its own that failed to start (a subtransaction callback
 * raised: Citus does when it cannot send SAVEPOINT to a node busy with its COPY, as when a
 * Citus table's default opens a PL/pgSQL exception block) and left it half begun, which
 * only an abort of the whole transaction cleans up.  InSubtransaction then raises the
 * error again, for the transaction to be aborted.
 */
extern bool subxact_left_half_begun;

/* Refused builds in a row after which a group's lines take the ordinary path (batch.hpp). */
constexpr int kBuildRefusalsToStop = 16;

/* ---- intake.cpp ---- */

size_t ParseChunk(const char *data, size_t size, Precision precision, const char *schema,
                  int max_groups, bool worker, int64 now_ns = 0);
bool ReparseRow(const BatchRow *row, Point *point);

/* ---- tables.cpp ---- */

Relation OpenTable(const FlushOptions *opts, Oid nspid, BatchGroup *g, int lo, int hi);
const char *Refusal(Relation rel, TableInfo **info);
bool AddColumns(Oid relid, const TableInfo *info, BatchGroup *g, int lo, int hi);
size_t GroupLineBytes(BatchGroup *g, int lo, int hi);
void PrepareSchema(const FlushOptions *opts);

/* ---- insert.cpp: errors, rows, timeouts ---- */

int TakeError(char *message, size_t message_size);
[[noreturn]] void RaiseAgain(int sqlstate, const char *message);
bool ErrorIsTransient(int sqlstate);
int64 PendingRows(BatchGroup *g, int lo, int hi);
void MarkRejected(BatchRow *row, const char *reason = nullptr);
void RejectRange(BatchGroup *g, int lo, int hi, Counter counter, const char *reason);
void ArmFlushTimeout(void);
void DisarmFlushTimeout(void);
size_t WriteHandback(void);

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
    const int level = GetCurrentTransactionNestLevel();
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
        if (GetCurrentTransactionNestLevel() != level) {
            subxact_left_half_begun = true;
            PG_RE_THROW();
        }
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

} // namespace insert_path
} // namespace influx
