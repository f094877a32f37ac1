/*
 * worker.cpp — the insertion worker: drains one ring, hands chunks to the insert path and
 * flushes every influx.batch_size rows, influx.flush_interval milliseconds after the first
 * pending row, or once its ring has been empty for influx.flush_idle milliseconds.
 *
 * Lifecycle (see docs/architecture.md):
 *   start    the listener creates the ring's DSM segment, then registers this worker with
 *            the segment handle in bgw_main_arg and its index in bgw_extra.  The worker
 *            connects to influx.database first and attaches to the ring only then: the
 *            listener sends only to rings with a receiver, so a worker that cannot connect
 *            (no CONNECT privilege, a connection limit, ...) is never handed a line;
 *   run      receive chunks without blocking; wait on the latch when the ring is empty,
 *            never longer than the time left until the pending rows are due (the oldest
 *            has waited influx.flush_interval, or nothing new came for influx.flush_idle);
 *   done     after each commit the worker publishes how far through its ring's chunks it
 *            is (ring.hpp RingHeader); the listener keeps a copy of every chunk until then
 *            and sends what a worker that exited had not finished to another worker;
 *   stop     SIGTERM (pg_terminate_backend, server shutdown) does not stop the worker at
 *            once: it marks its ring "stopping" and wakes the listener, which sends what it
 *            still holds for this ring and detaches.  The worker reads the ring to its end
 *            (SHM_MQ_DETACHED), commits, and exits 0.  A flush in progress gets 1 s more
 *            (insert.cpp kStopGraceMs), then the worker exits as a terminated backend does,
 *            its transaction rolled back; what it had not finished the listener sends to
 *            another worker.  If the listener is gone, the ring is already detached; if it
 *            does not detach within 30 s, the worker exits anyway.
 *
 * A worker never dies because of data: the insert path counts and logs bad rows.  It does
 * exit on errors that are not about data (e.g. its role cannot log in); the listener then
 * starts a replacement after influx.restart_delay.
 */
extern "C" {
#include "postgres.h"

#include <malloc.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "access/transam.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "ipc/chunk.hpp"
#include "ingest/citus.hpp"
#include "ingest/insert.hpp"
#include "ingest/requests.hpp"
#include "core/pg_cpp.hpp"
#include "ipc/ring.hpp"
#include "core/settings.hpp"
#include "core/shared_state.hpp"
#include "core/tokens.hpp"
#include "ingest/worker.hpp"

namespace influx
{
namespace
{

volatile sig_atomic_t stop_requested = false;

/* SIGTERM: finish the ring, then exit (see the file comment). */
void WorkerSigterm(SIGNAL_ARGS)
{
    int save_errno = errno;
    stop_requested = true;
    SetLatch(MyLatch);
    errno = save_errno;
}

/* Wakes the listener so that it notices this ring is stopping, or what was done. */
void WakeListener(void)
{
    int pid;
    SpinLockAcquire(&shared_state->mutex);
    pid = shared_state->listener_pid;
    SpinLockRelease(&shared_state->mutex);
    if (pid == 0)
        return;
    PGPROC *proc = BackendPidGetProc(pid);
    if (proc != nullptr)
        SetLatch(&proc->procLatch);
}

/* Milliseconds from `now` until `since` + `ms`, never negative. */
long MillisecondsUntil(TimestampTz now, TimestampTz since, int ms)
{
    TimestampTz due = TimestampTzPlusMilliseconds(since, ms);
    long secs;
    int usecs;
    if (now >= due)
        return 0;
    TimestampDifference(now, due, &secs, &usecs);
    return secs * 1000 + (usecs + 999) / 1000;
}

/*
 * Milliseconds until the pending rows are due: their oldest has waited
 * influx.flush_interval, or the ring has had nothing new for influx.flush_idle (the end of
 * a burst: waiting longer would only delay rows that are complete).
 */
long MillisecondsUntilDue(TimestampTz pending_since, TimestampTz last_data)
{
    TimestampTz now = GetCurrentTimestamp();
    long due = MillisecondsUntil(now, pending_since, influx_flush_interval);
    if (influx_flush_idle > 0)
        due = Min(due, MillisecondsUntil(now, last_data, influx_flush_idle));
    return due;
}

RingHeader *header = nullptr;
int worker_index = -1;
RingPosition flush_position; /* where the pending batch ends */
/*
 * The pending batch holds lines of an HTTP request: a client is waiting for their commit
 * (its answer), and sends nothing more until then.  Once the ring is empty such a batch
 * is committed at once: waiting for influx.flush_idle would stall every client whose
 * request it holds, and with them the data that could have joined the batch.
 */
bool batch_has_request = false;

/* Whether the handback area holds lines of the flush now being written (not committed). */
bool HandbackIsThisFlush(void)
{
    return pg_atomic_read_u64(&header->handback_chunks) == flush_position.chunks &&
           pg_atomic_read_u64(&header->handback_offset) == flush_position.offset;
}

/*
 * The area may be written while it is empty, or while it holds what an earlier attempt of
 * this same flush wrote (not committed, so the listener has not taken it).
 */
bool HandbackWritable(void)
{
    return pg_atomic_read_u32(&header->handback_full) == 0 || HandbackIsThisFlush();
}

/*
 * Lines may be handed back only while the listener will take them: not once the worker
 * stops, its ring is retired, or the listener has detached (then the flush waits for the
 * lock, as any flush did before hand-back).
 */
bool ring_detached = false;

/* The generation of the listener that started this worker (core/shared_state.hpp). */
uint32 listener_generation = 0;

bool HandbackAllowed(void)
{
    return !stop_requested && !ring_detached && pg_atomic_read_u32(&header->retired) == 0;
}

/* A flush attempt failed: what it handed back belongs to no commit. */
void HandbackRolledBack(void)
{
    if (pg_atomic_read_u32(&header->handback_full) != 0 && HandbackIsThisFlush())
        pg_atomic_write_u32(&header->handback_full, 0);
}

/*
 * Outcomes of requests (ipc/ring.hpp RequestOutcome): the ring's log, and where the
 * entries of the flush being written start (everything before is published and done).
 */
RequestOutcome *outcome_log = nullptr;
ProcessSlot *my_slot_for_outcomes = nullptr;
uint64 outcome_start = 0;

/* How long a flush waits for room in the outcome log before it reports nothing. */
constexpr int kOutcomeRoomWaitMs = 5000;

/*
 * Writes the requests' tallies as outcomes valid from `pos` and publishes them (before the
 * flush commits, or before done moves past a chunk that gave no row).  Written again from
 * the same start if the flush is tried again.  The listener reads the log continuously;
 * if it has no room for long (a listener that went away), the outcomes are left out and
 * their requests time out instead of the flush waiting for ever.
 */
void WriteOutcomes(RingPosition pos)
{
    uint32 n = RequestTallyCount();
    if (n == 0)
        return;
    TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kOutcomeRoomWaitMs);
    while (outcome_start + n - pg_atomic_read_u64(&header->outcome_tail) > kOutcomeSlots) {
        if (GetCurrentTimestamp() >= give_up) {
            ReportProblem(my_slot_for_outcomes,
                          "influx worker %d: the listener took no request outcomes for %d ms; "
                          "%u requests will not be answered",
                          worker_index, kOutcomeRoomWaitMs, n);
            return;
        }
        WakeListener();
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    uint64 head = outcome_start;
    for (uint32 k = 1; k <= n; k++, head++)
        RequestOutcomeFrom(*RequestTallyAt(k), pos, &outcome_log[head % kOutcomeSlots]);
    pg_write_barrier();
    pg_atomic_write_u64(&header->outcome_head, head);
}

/* Done has moved past the published outcomes: the next flush's start after them. */
void OutcomesDone(void)
{
    outcome_start = pg_atomic_read_u64(&header->outcome_head);
    if (RequestTallyCount() > 0)
        WakeListener();
    RequestTalliesClear();
}

/*
 * Before a flush commits: the lines it hands back (already in the area), the outcomes of
 * its requests, where it gets to, and its xid (see RingHeader).
 */
void AnnounceCommit(TransactionId xid, size_t handback_len)
{
    WriteOutcomes(flush_position);
    if (handback_len > 0) {
        pg_atomic_write_u64(&header->handback_chunks, flush_position.chunks);
        pg_atomic_write_u64(&header->handback_offset, flush_position.offset);
        pg_atomic_write_u64(&header->handback_len, handback_len);
        pg_write_barrier();
        pg_atomic_write_u32(&header->handback_full, 1);
    } else if (pg_atomic_read_u32(&header->handback_full) != 0 && HandbackIsThisFlush()) {
        /* An earlier attempt of this flush handed lines back; this one writes them. */
        pg_atomic_write_u32(&header->handback_full, 0);
    }
    pg_atomic_write_u64(&header->commit_chunks, flush_position.chunks);
    pg_atomic_write_u64(&header->commit_offset, flush_position.offset);
    pg_write_barrier();
    pg_atomic_write_u32(&header->commit_xid, xid);
}

/* Everything up to `pos` is committed or rejected: the listener may forget it. */
void PublishDone(RingPosition pos)
{
    pg_write_barrier(); /* outcomes and handed-back lines before the position */
    pg_atomic_write_u64(&header->done_chunks, pos.chunks);
    pg_atomic_write_u64(&header->done_offset, pos.offset);
    pg_write_barrier();
    pg_atomic_write_u32(&header->commit_xid, InvalidTransactionId);
}

/*
 * The memory a worker keeps between flushes (KeepFreedMemory) goes back to the kernel once no
 * flush has been large for ten seconds: after a burst, whether or not a trickle of small
 * flushes follows (Telegraf's 10 s interval would keep a worker from ever being idle that
 * long).  Large: at least a quarter of the largest flush since memory was last given back.
 */
size_t largest_flush_rows = 0;
TimestampTz large_flush_at = 0;

void NoteFlushRows(size_t rows)
{
    if (rows == 0)
        return;
    if (rows >= largest_flush_rows / 4)
        large_flush_at = GetCurrentTimestamp();
    largest_flush_rows = Max(largest_flush_rows, rows);
}

void GiveBackMemoryAfterBursts(void)
{
    constexpr int kQuietMs = 10000;
    if (largest_flush_rows == 0 ||
        !TimestampDifferenceExceeds(large_flush_at, GetCurrentTimestamp(), kQuietMs))
        return;
#ifdef __GLIBC__
    (void) malloc_trim(0);
#endif
    largest_flush_rows = 0;
}

/*
 * Flushes the pending batch, which ends at `pos`.  A worker asked to stop while its flush
 * keeps failing for a transient reason gives the batch up and exits: the listener sends
 * its lines to another worker.
 */
void Flush(TimestampTz *pending_since, RingPosition pos)
{
    flush_position = pos;
    batch_has_request = false;
    NoteFlushRows(InsertPendingRows());
    if (InsertPendingRows() > 0 && !InsertFlush()) {
        ereport(LOG, (errmsg("influx worker %d: stopping with a flush that could not commit; "
                             "its lines are left to the listener",
                             worker_index)));
        proc_exit(1);
    }
    /* Again after the commit: the same entries, unless the batch failed as a whole. */
    WriteOutcomes(pos);
    PublishDone(pos);
    OutcomesDone();
    /*
     * Session advisory locks a table's trigger took (pg_advisory_lock) would outlive its
     * flush and block other sessions for as long as the worker lives: nothing of the
     * worker's own is session-level, so all of them go.
     */
    LockReleaseSession(USER_LOCKMETHOD);
    /* Lines handed back are for the listener to take now: this flush is done. */
    if (pg_atomic_read_u32(&header->handback_full) != 0)
        WakeListener();
    *pending_since = 0;
    pgstat_report_activity(STATE_IDLE, nullptr);
}

/*
 * Parses chunk number `seq` into the batch, record by record (chunk.hpp).  A record that
 * fills the batch in its middle (InsertAddRecord stopped early), or that is for another
 * database than the batch's rows, is flushed there and the rest parsed after.  Returns
 * false if the chunk is malformed; sets *full when the batch should be flushed at the
 * chunk's end.
 */
bool AddChunk(const char *data, size_t size, uint64 seq, TimestampTz *pending_since, bool *full)
{
    size_t pos = 0;
    *full = false;
    while (pos < size) {
        RecordView record;
        size_t next;
        if (!ReadRecord(data, size, pos, &record, &next))
            return false;
        size_t lines_at = static_cast<size_t>(record.lines - data);
        bool head = record.request && (record.meta.flags & kMetaHead) != 0;
        size_t used = 0;
        while (head || used < record.size) {
            bool head_before = head;
            used += InsertAddRecord(record, used, &head, full);
            batch_has_request |= record.request;
            bool more = head || used < record.size;
            if (*full && (more || next < size)) {
                /*
                 * Flushed here, the position says what is done: the record whole (from its
                 * length word) if nothing of it was taken, else from the next line on.
                 */
                bool untouched = used == 0 && head_before == head;
                Flush(pending_since, RingPosition{seq - 1, untouched ? pos : lines_at + used});
                *full = false;
            }
        }
        pos = next;
    }
    return true;
}

/*
 * Attaches to the ring the listener made for this worker (its DSM segment) as the
 * receiver, lends the insert path the worker's hooks and tells the listener it may send.
 */
shm_mq_handle *AttachRing(Datum main_arg, const WorkerArgs &args, ProcessSlot *slot)
{
    /* Outside a transaction there is no resource owner: the mapping lasts until exit. */
    dsm_segment *seg = dsm_attach(DatumGetUInt32(main_arg));
    if (seg == nullptr)
        ereport(ERROR, (errmsg("influx worker %d: its ring no longer exists", args.worker_index)));
    header = static_cast<RingHeader *>(dsm_segment_address(seg));
    if (header->magic != kRingMagic)
        ereport(ERROR, (errmsg("influx worker %d: bad ring segment", args.worker_index)));

    static WorkerHooks hooks;
    hooks.announce_commit = AnnounceCommit;
    hooks.handback = RingHandback(header, args.queue_size);
    hooks.handback_capacity = kHandbackBytes;
    hooks.handback_allowed = HandbackAllowed;
    hooks.handback_writable = HandbackWritable;
    hooks.handback_rolled_back = HandbackRolledBack;
    InsertInit(slot, &hooks);
    outcome_log = RingOutcomes(header, args.queue_size);
    outcome_start = pg_atomic_read_u64(&header->outcome_head);
    my_slot_for_outcomes = slot;

    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    shm_mq *mq = RingQueue(header);
    shm_mq_set_receiver(mq, MyProc);
    shm_mq_handle *mqh = shm_mq_attach(mq, seg, nullptr);
    MemoryContextSwitchTo(old);
    WakeListener();
    return mqh;
}

/* What the receive loop knows between chunks. */
struct LoopState {
    TimestampTz pending_since; /* 0: no rows pending */
    TimestampTz last_data;     /* when the last chunk came, while rows are pending */
    TimestampTz stop_since;
    bool announced_stop;
    uint64 received; /* chunks received: the number of the last one */
};

/* One chunk from the ring: into the batch, then a flush if it is due. */
void TakeChunk(LoopState *st, ProcessSlot *slot, int index, const void *data, Size nbytes)
{
    Count(slot, kBytesReceived, nbytes);
    st->received++;
    bool full = false;
    if (!AddChunk(static_cast<const char *>(data), nbytes, st->received, &st->pending_since, &full))
        ReportProblem(slot, "influx worker %d: received a malformed chunk of %zu bytes", index,
                      (size_t) nbytes);
    RingPosition here = {st->received, 0};
    if (full) {
        Flush(&st->pending_since, here);
    } else if (InsertPendingRows() == 0) {
        /* Nothing to commit (comments, rejected lines): done with it already. */
        batch_has_request = false;
        WriteOutcomes(here);
        PublishDone(here);
        OutcomesDone();
        st->pending_since = 0;
    } else if (st->pending_since == 0) {
        st->pending_since = st->last_data = GetCurrentTimestamp();
    } else {
        TimestampTz now = GetCurrentTimestamp();
        if (MillisecondsUntil(now, st->pending_since, influx_flush_interval) == 0)
            Flush(&st->pending_since, here);
        else
            st->last_data = now;
    }
}

/*
 * Receives chunks until the listener detaches from the ring (it sent everything it ever
 * will), flushing when rows are due; a stopping worker that the listener does not release
 * gives up after kWorkerStopDeadlineMs.
 */
void ReceiveLoop(shm_mq_handle *mqh, ProcessSlot *slot, int index)
{
    LoopState st = {};
    for (;;) {
        /*
         * pg_cancel_backend() cancels a flush in progress (it is tried again); between
         * flushes there is nothing to cancel, and an ERROR here would end the worker.
         */
        QueryCancelPending = false;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        /* The listener checks HTTP tokens against a copy that worker 0 keeps fresh. */
        if (index == 0 && !st.announced_stop)
            MaybeLoadTokens();
        if (stop_requested && !st.announced_stop) {
            st.announced_stop = true;
            st.stop_since = GetCurrentTimestamp();
            pg_atomic_write_u32(&header->stopping, 1);
            SetSlotActivity(slot, "stopping");
            WakeListener();
        }

        Size nbytes = 0;
        void *data = nullptr;
        shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, true);
        if (res == SHM_MQ_SUCCESS) {
            TakeChunk(&st, slot, index, data, nbytes);
            continue;
        }

        RingPosition here = {st.received, 0};
        if (res == SHM_MQ_DETACHED) {
            /* The listener sent everything it will ever send on this ring. */
            ring_detached = true;
            Flush(&st.pending_since, here);
            return;
        }

        /* SHM_MQ_WOULD_BLOCK: the ring is empty for now. */
        long timeout = 1000;
        if (st.pending_since != 0) {
            timeout = batch_has_request ? 0 : MillisecondsUntilDue(st.pending_since, st.last_data);
            if (timeout == 0) {
                Flush(&st.pending_since, here);
                WakeListener();
                continue;
            }
        }
        if (st.announced_stop) {
            /*
             * A stopping worker waits for the listener to detach.  If the listener does
             * not (it is stuck or gone without detaching), do not hold up a shutdown.
             */
            Flush(&st.pending_since, here);
            /* Longer than the listener's own shutdown deadline (listener.cpp). */
            if (TimestampDifferenceExceeds(st.stop_since, GetCurrentTimestamp(),
                                           kWorkerStopDeadlineMs)) {
                ereport(LOG, (errmsg("influx worker %d: listener did not release its ring, "
                                     "exiting",
                                     index)));
                return;
            }
            timeout = Min(timeout, 100);
        }
        GiveBackMemoryAfterBursts();
        SetSlotActivity(slot, st.pending_since != 0 ? "waiting to flush" : "idle");
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

/*
 * Keeps the memory a flush frees for the next flush instead of giving it back to the kernel.
 * Each flush allocates and frees the same tens of megabytes (a statement's rows, Citus' COPY
 * buffers per shard, the tuples of a large batch); glibc maps large blocks afresh and trims
 * the heap whenever its top is free, so flush after flush faulted the same pages in again.
 * Measured on 1M-row loads into a Citus table (influx.batch_size 100,000): 34,000-71,000
 * page faults per load in warm workers, 2.3-2.7 CPU s; with this, under 2,000 and 1.7 CPU s.
 * A worker so keeps the memory of its largest flush (glibc trims only free memory at the top
 * of the heap, beyond 64 MB), until no flush has been large for ten seconds
 * (GiveBackMemoryAfterBursts).
 */
void KeepFreedMemory(void)
{
#ifdef __GLIBC__
    (void) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024); /* glibc's largest */
    (void) mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif
}

void WorkerMain(Datum main_arg)
{
    WorkerArgs args;
    memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
    worker_index = args.worker_index;
    SpinLockAcquire(&shared_state->mutex);
    listener_generation = shared_state->generation; /* the listener that registered this one */
    SpinLockRelease(&shared_state->mutex);

    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, WorkerSigterm);
    BackgroundWorkerUnblockSignals();
    KeepFreedMemory();

    ProcessSlot *slot = AcquireProcessSlot(ProcessKind::Worker, args.worker_index);

    /*
     * Connect before taking the ring: the listener sends only to a ring whose receiver is
     * attached, so if this fails (the role may not connect, a connection limit) no line
     * was handed to this worker.
     */
    const char *role = (influx_role != nullptr && influx_role[0] != '\0') ? influx_role : nullptr;
    BackgroundWorkerInitializeConnection(influx_database, role, 0);

    char appname[64];
    snprintf(appname, sizeof(appname), "influx worker %d", args.worker_index);
    pgstat_report_appname(appname);
    pgstat_report_activity(STATE_IDLE, nullptr);
    SetSlotActivity(slot, "idle");
    SetCitusSessionDefaults();

    shm_mq_handle *mqh = AttachRing(main_arg, args, slot);
    ReceiveLoop(mqh, slot, args.worker_index);
    shm_mq_detach(mqh);
    proc_exit(0);
}

} // namespace

bool WorkerStopRequested(void)
{
    return stop_requested;
}

bool WorkerShouldGiveUpRetrying(void)
{
    /* A retired ring's replacement has fresh settings; let it take the batch. */
    return stop_requested || (header != nullptr && pg_atomic_read_u32(&header->retired) != 0);
}

bool WorkerListenerGone(void)
{
    SpinLockAcquire(&shared_state->mutex);
    bool gone = shared_state->listener_pid == 0 || shared_state->generation != listener_generation;
    SpinLockRelease(&shared_state->mutex);
    return gone;
}

} // namespace influx

/*
 * Entry point named in bgw_function_name.  A C++ exception that escapes becomes an ERROR
 * (which ends a background worker as FATAL) rather than std::terminate.
 */
extern "C" void pg_influx_worker_main(Datum main_arg)
{
    INFLUX_CATCH_CPP(influx::WorkerMain(main_arg));
}
