/*
 * worker.cpp — the insertion worker: drains one ring, hands chunks to the insert path and
 * flushes every influx.batch_size rows, influx.flush_interval milliseconds after the first
 * pending row, or once its ring has been empty for influx.flush_idle milliseconds.
 *
 * Lifecycle (see docs/architecture.md):
 *   start    the listener creates the ring's DSM segment, then registers this worker with
 *            the segment handle in bgw_main_arg and {index, generation} in bgw_extra;
 *   run      receive chunks without blocking; wait on the latch when the ring is empty,
 *            never longer than the time left until the pending rows are due (the oldest
 *            has waited influx.flush_interval, or nothing new came for influx.flush_idle);
 *   stop     SIGTERM (pg_terminate_backend, server shutdown) does not stop the worker at
 *            once: it marks its ring "stopping" and wakes the listener, which sends what it
 *            still holds for this ring and detaches.  The worker reads the ring to its end
 *            (SHM_MQ_DETACHED), commits, and exits 0.  Nothing the listener handed over is
 *            lost on a clean stop.  If the listener is gone, the ring is already detached;
 *            if it does not detach within 30 s, the worker exits anyway.
 *
 * A worker never dies because of data: the insert path counts and logs bad rows.  It does
 * exit on errors that are not about data (e.g. its role cannot log in); the listener then
 * starts a replacement after influx.restart_delay.
 */
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "chunk.hpp"
#include "insert.hpp"
#include "ring.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "worker.hpp"

namespace influx {
namespace {

volatile sig_atomic_t stop_requested = false;

/* SIGTERM: finish the ring, then exit (see the file comment). */
void WorkerSigterm(SIGNAL_ARGS)
{
    int save_errno = errno;
    stop_requested = true;
    SetLatch(MyLatch);
    errno = save_errno;
}

/* Wakes the listener so that it notices this ring is stopping. */
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

void Flush(TimestampTz *pending_since)
{
    if (InsertPendingRows() > 0)
        InsertFlush();
    *pending_since = 0;
    pgstat_report_activity(STATE_IDLE, nullptr);
}

void WorkerMain(Datum main_arg)
{
    WorkerArgs args;
    memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, WorkerSigterm);
    BackgroundWorkerUnblockSignals();

    ProcessSlot *slot = AcquireProcessSlot(ProcessKind::Worker, args.worker_index);

    /* Outside a transaction there is no resource owner: the mapping lasts until exit. */
    dsm_segment *seg = dsm_attach(DatumGetUInt32(main_arg));
    if (seg == nullptr)
        ereport(ERROR, (errmsg("influx worker %d: its ring no longer exists", args.worker_index)));
    auto *header = static_cast<RingHeader *>(dsm_segment_address(seg));
    if (header->magic != kRingMagic)
        ereport(ERROR, (errmsg("influx worker %d: bad ring segment", args.worker_index)));

    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    shm_mq *mq = RingQueue(header);
    shm_mq_set_receiver(mq, MyProc);
    shm_mq_handle *mqh = shm_mq_attach(mq, seg, nullptr);
    MemoryContextSwitchTo(old);

    const char *role = (influx_role != nullptr && influx_role[0] != '\0') ? influx_role : nullptr;
    BackgroundWorkerInitializeConnection(influx_database, role, 0);

    char appname[64];
    snprintf(appname, sizeof(appname), "influx worker %d", args.worker_index);
    pgstat_report_appname(appname);
    pgstat_report_activity(STATE_IDLE, nullptr);
    SetSlotActivity(slot, "idle");

    InsertInit(slot);

    TimestampTz pending_since = 0;
    TimestampTz last_data = 0; /* when the last chunk came, while rows are pending */
    TimestampTz stop_since = 0;
    bool announced_stop = false;

    for (;;) {
        /*
         * pg_cancel_backend() cancels a flush in progress (its rows are counted as
         * rejected); between flushes there is nothing to cancel, and an ERROR here would end
         * the worker and lose what its ring holds.
         */
        QueryCancelPending = false;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (stop_requested && !announced_stop) {
            announced_stop = true;
            stop_since = GetCurrentTimestamp();
            pg_atomic_write_u32(&header->stopping, 1);
            SetSlotActivity(slot, "stopping");
            WakeListener();
        }

        Size nbytes = 0;
        void *data = nullptr;
        shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, true);

        if (res == SHM_MQ_SUCCESS) {
            Count(slot, kBytesReceived, nbytes);
            bool full = false;
            bool intact = ForEachRecord(static_cast<const char *>(data), nbytes,
                                        [&full](const char *record, size_t size) {
                                            if (InsertAddChunk(record, size))
                                                full = true;
                                        });
            if (!intact)
                ReportProblem(slot, "influx worker %d: received a malformed chunk of %zu bytes",
                              args.worker_index, (size_t) nbytes);
            if (full) {
                Flush(&pending_since);
            } else if (pending_since == 0 && InsertPendingRows() > 0) {
                pending_since = last_data = GetCurrentTimestamp();
            } else if (pending_since != 0) {
                TimestampTz now = GetCurrentTimestamp();
                if (MillisecondsUntil(now, pending_since, influx_flush_interval) == 0)
                    Flush(&pending_since);
                else
                    last_data = now;
            }
            continue;
        }

        if (res == SHM_MQ_DETACHED) {
            /* The listener sent everything it will ever send on this ring. */
            Flush(&pending_since);
            break;
        }

        /* SHM_MQ_WOULD_BLOCK: the ring is empty for now. */
        long timeout = 1000;
        if (pending_since != 0) {
            timeout = MillisecondsUntilDue(pending_since, last_data);
            if (timeout == 0) {
                Flush(&pending_since);
                continue;
            }
        }
        if (announced_stop) {
            /*
             * A stopping worker waits for the listener to detach.  If the listener does
             * not (it is stuck or gone without detaching), do not hold up a shutdown.
             */
            Flush(&pending_since);
            /* Longer than the listener's own shutdown deadline (20 s, listener.cpp). */
            if (TimestampDifferenceExceeds(stop_since, GetCurrentTimestamp(), 30000)) {
                ereport(LOG, (errmsg("influx worker %d: listener did not release its ring, "
                                     "exiting",
                                     args.worker_index)));
                break;
            }
            timeout = Min(timeout, 100);
        }
        SetSlotActivity(slot, pending_since != 0 ? "waiting to flush" : "idle");
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }

    shm_mq_detach(mqh);
    proc_exit(0);
}

} // namespace
} // namespace influx

/*
 * Entry point named in bgw_function_name.  No C++ exception may leave it: the insert path
 * catches its own, and the code above calls only PostgreSQL functions.
 */
extern "C" void pg_influx_worker_main(Datum main_arg)
{
    influx::WorkerMain(main_arg);
}
