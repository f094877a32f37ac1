/*
 * listener.cpp — the influx listener: sockets in, chunks out, workers supervised.  This file
 * holds the process (signals, status, reload, shutdown, the main loop); connections.cpp,
 * router.cpp and supervisor.cpp the rest (listener_state.hpp).
 *
 * One static background worker.  It waits on a single WaitEventSet for its latch, the UDP
 * sockets, the TCP listen sockets and every TCP connection, and turns what it reads into
 * chunks (see chunk.hpp) that it hands to the insertion workers' rings (ring.hpp).
 *
 * Routing: chunks go round robin to the rings that can take them now.  A ring that is full
 * keeps the one chunk it was offered as its *pending* chunk (shm_mq requires the same
 * message to be offered again until it is complete) and is skipped until that chunk is
 * through, so one slow worker never stalls the others.  When every ring holds a pending
 * chunk the listener is *blocked*: it stops reading sockets altogether.  TCP senders then
 * feel kernel backpressure and lose nothing; UDP datagrams wait in the socket's receive
 * buffer, and what the kernel drops beyond it is counted (SO_RXQ_OVFL).
 *
 * Supervision: the listener starts influx.workers insertion workers, each with a ring of
 * its own, polls their handles, replaces a worker that exits, retires workers on a reload
 * that lowers the count and replaces all of them on influx.restart_workers().  A retired
 * ring gets no new chunks; once its pending chunk is through the listener detaches, and the
 * worker drains the ring, commits and exits.
 *
 * Shutdown order (SIGTERM, e.g. pg_ctl stop -m fast): stop accepting; read what the
 * kernel already holds for every socket (a connection that the sender closed has its last
 * line completed); hand every chunk to a ring, waiting for room; detach from every ring.
 * The workers — which got SIGTERM too — keep draining until they see the detach, commit and
 * exit.  The listener exits with status 1 so that after pg_terminate_backend() the
 * postmaster starts it again after influx.restart_delay (at server shutdown nothing is
 * restarted).
 */
#include "net/listener_state.hpp"
#include "net/http.hpp"

namespace influx
{
namespace net
{
ListenerState *L = nullptr;
volatile sig_atomic_t shutdown_requested = false;

void ListenerSigterm(SIGNAL_ARGS)
{
    int save_errno = errno;
    shutdown_requested = true;
    SetLatch(MyLatch);
    errno = save_errno;
}

/* Publishes the most important problem, or "running". */
void RefreshStatus(void)
{
    if (L->target_problem[0] != '\0')
        SetListenerStatus("error: %s", L->target_problem);
    else if (L->bind_problem[0] != '\0')
        SetListenerStatus("error: %s", L->bind_problem);
    else if (L->worker_problem[0] != '\0')
        SetListenerStatus("degraded: %s", L->worker_problem);
    else
        SetListenerStatus("running");
}

/*
 * Fills a background worker registration common to the listener and the workers: both
 * use shared memory and a database connection and start once recovery has finished.
 * `type` is what pg_stat_activity.backend_type shows; the name defaults to it.
 */
void DescribeProcess(BackgroundWorker *worker, const char *function, const char *type,
                     int restart_time)
{
    memset(worker, 0, sizeof(*worker));
    worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker->bgw_restart_time = restart_time;
    strlcpy(worker->bgw_library_name, "pg_influx", sizeof(worker->bgw_library_name));
    strlcpy(worker->bgw_function_name, function, sizeof(worker->bgw_function_name));
    strlcpy(worker->bgw_type, type, sizeof(worker->bgw_type));
    strlcpy(worker->bgw_name, type, sizeof(worker->bgw_name));
}

/* ---------------------------------------------------------------------------------------
 * Reload and shutdown
 * --------------------------------------------------------------------------------------- */

bool StringsDiffer(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

void Shutdown(void);

void ApplyReload(void)
{
    ProcessConfigFile(PGC_SIGHUP);

    if (StringsDiffer(L->connected_database, influx_database) ||
        StringsDiffer(L->connected_role, influx_role)) {
        /* Workers cannot switch databases: start over with fresh workers. */
        ereport(LOG, (errmsg("influx listener restarting to apply influx.database / "
                             "influx.role")));
        Shutdown();
    }
    L->targets_ok = CheckTargets();

    if (StringsDiffer(L->bound_addresses, influx_listen_addresses) ||
        L->bound_udp_port != influx_udp_port || L->bound_tcp_port != influx_tcp_port ||
        L->bound_http_port != influx_http_port || L->bound_http_tls != influx_http_tls ||
        L->bound_udp_rcvbuf != influx_udp_receive_buffer) {
        BindSockets(true);
    } else if (influx_http_tls && L->endpoints.nhttp > 0) {
        /* The certificate files may have been renewed: new connections use them. */
        char error[256];
        if (!HttpConfigureTls(error, sizeof(error)))
            ReportProblem(L->slot, "%s; the previous certificate stays in use", error);
    }
}

/*
 * Counts the lines that wait to be sent (the chunk being filled, and chunks of workers
 * that exited) as lost, reports why, and forgets them: used when no worker is left to
 * take them.
 */
void DropUndeliverable(const char *why)
{
    RequeueHandedBack(true);
    uint64 lines = ChunkLines(L->chunk.data, L->chunk.len);
    for (int k = 0; k < L->nrequeued; k++) {
        lines += ChunkLines(L->requeued[k].data, L->requeued[k].len);
        GiveBuffer(L->requeued[k].data, L->requeued[k].cap);
    }
    L->nrequeued = 0;
    L->requeued_bytes = 0;
    L->chunk.len = 0;
    L->blocked = false;
    if (lines > 0) {
        Count(L->slot, kLinesLost, lines);
        ReportProblem(L->slot, "%llu received lines are lost: %s",
                      static_cast<unsigned long long>(lines), why);
        /* Never left out by ReportProblem's rate limit: a loss must be in the log. */
        ereport(WARNING, (errmsg("influx listener: %llu received lines are lost: %s",
                                 static_cast<unsigned long long>(lines), why)));
    }
}

/* Releases the rings whose worker has exited (their undone chunks are requeued). */
void ReleaseExitedRings(void)
{
    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        pid_t pid;
        if (r->in_use && GetBackgroundWorkerPid(r->handle, &pid) == BGWH_STOPPED)
            ReleaseRing(r);
    }
}

/*
 * Waits until what waits to be sent has a ring (used at shutdown).  Rings whose worker has
 * exited are released so that their chunks go elsewhere; with no worker left the lines
 * cannot be delivered and are counted as lost.  False once the deadline has passed.
 */
bool MakeRoom(TimestampTz deadline)
{
    while (L->blocked) {
        RetryPending();
        if (!L->blocked)
            break;
        ReleaseExitedRings();
        bool receivers = false;
        for (int i = 0; i < kMaxRings; i++) {
            Ring *r = &L->rings[i];
            /* At shutdown the postmaster starts no worker that has not started yet. */
            if (r->in_use && !r->detached && !r->failed && r->ready)
                receivers = true;
        }
        if (!receivers) {
            DropUndeliverable("no influx worker is running at shutdown");
            break;
        }
        if (GetCurrentTimestamp() >= deadline)
            return false;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    return true;
}

/*
 * Reads whatever the kernel already holds for our sockets (used at shutdown): the accept
 * queue, every connection until the kernel has nothing more for it, every UDP socket until
 * it is empty.  Bounded by the deadline.
 */
void DrainSockets(TimestampTz deadline)
{
    /* Connections still waiting in the accept queue may carry data too; then no more. */
    for (int i = 0; i < L->endpoints.ntcp; i++) {
        AcceptConnections(L->endpoints.tcp[i], influx_max_connections);
        close(L->endpoints.tcp[i]);
    }
    L->endpoints.ntcp = 0;

    for (int i = L->nconns - 1; i >= 0; i--) {
        for (;;) {
            if (!MakeRoom(deadline))
                return;
            if (ReadConnection(i, 1) != ReadResult::More)
                break; /* closed by the sender (last line completed), or nothing more now */
        }
    }
    for (int e = 0; e < L->endpoints.nudp; e++) {
        for (;;) {
            if (!MakeRoom(deadline))
                return;
            if (ReadDatagrams(e, kDatagramsPerWakeup))
                break;
        }
    }
}

/*
 * Hands every chunk to a ring (waiting for room, bounded), detaches from every ring, waits
 * for the workers to commit and exit, and exits.  See the file comment for the order.
 */
void Shutdown(void)
{
    SetListenerStatus("stopping");
    pgstat_report_activity(STATE_RUNNING, "stopping: handing received lines to workers");
    L->stopping = true;
    TimestampTz deadline =
        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kShutdownDrainSeconds * 1000);

    DrainSockets(deadline);
    CloseEndpoints(&L->endpoints);
    /* Requests waiting for their commit are not answered: their lines go on as TCP's do. */
    HttpCloseAll();

    bool delivered = true;
    for (;;) {
        if (!MakeRoom(deadline)) {
            delivered = false;
            break;
        }
        if ((L->chunk.len > 0 || L->nrequeued > 0) && !TryPlaceChunk())
            continue; /* blocked: MakeRoom waits for a ring */
        RetryPending();
        ReleaseExitedRings(); /* a worker that died meanwhile: its chunks go elsewhere */
        bool busy = L->chunk.len > 0 || L->nrequeued > 0;
        for (int i = 0; i < kMaxRings; i++)
            busy |= L->rings[i].in_use && !L->rings[i].detached && L->rings[i].pending;
        if (!busy)
            break;
        if (GetCurrentTimestamp() >= deadline) {
            delivered = false;
            break;
        }
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    if (!delivered)
        ereport(WARNING, (errmsg("influx listener: workers did not take the last received "
                                 "lines within %d s; exiting without them",
                                 kShutdownDrainSeconds)));

    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (r->in_use && r->mqh != nullptr) {
            shm_mq_detach(r->mqh);
            r->mqh = nullptr;
            r->detached = true;
        }
    }
    for (int i = L->nconns - 1; i >= 0; i--)
        CloseConnection(i);

    /*
     * The workers now read their rings to the end and commit.  Wait for them, so that
     * what one of them could not commit (it was made to exit, kStopGraceMs) is counted as
     * lost rather than vanishing; they give up after kWorkerStopDeadlineMs themselves.
     */
    pgstat_report_activity(STATE_RUNNING, "stopping: waiting for workers to commit");
    TimestampTz wait_until = TimestampTzPlusMilliseconds(deadline, kWorkerStopDeadlineMs);
    for (;;) {
        ReleaseExitedRings();
        bool any = false;
        for (int i = 0; i < kMaxRings; i++)
            any |= L->rings[i].in_use;
        if (!any || GetCurrentTimestamp() >= wait_until)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    DropUndeliverable(delivered ? "their worker exited without committing them at shutdown"
                                : "no worker took them within the shutdown deadline");

    /* Status 1: the postmaster starts the listener again unless the server is stopping. */
    proc_exit(1);
}

/*
 * on_shmem_exit: whatever way the listener exits (shutdown, an ERROR), its status and pid
 * are cleared, so that nobody signals a pid that may be reused and the status does not say
 * "running" for a listener that is gone.
 */
void ClearListenerState(int, Datum)
{
    SpinLockAcquire(&shared_state->mutex);
    if (shared_state->listener_pid == MyProcPid)
        shared_state->listener_pid = 0;
    shared_state->udp_port_bound = 0;
    shared_state->tcp_port_bound = 0;
    shared_state->tcp_connections = 0;
    shared_state->http_port_bound = 0;
    shared_state->http_connections = 0;
    shared_state->workers_running = 0;
    strlcpy(shared_state->listener_status, "stopped", INFLUX_ERROR_TEXT);
    SpinLockRelease(&shared_state->mutex);
}

/* ---------------------------------------------------------------------------------------
 * Main loop
 * --------------------------------------------------------------------------------------- */

/* The listener's state, its entry in shared memory, and the first look at its targets. */
void StartListener(void)
{
    L = static_cast<ListenerState *>(MemoryContextAllocZero(TopMemoryContext, sizeof(*L)));
    L->slot = AcquireProcessSlot(ProcessKind::Listener, -1);
    L->conns = static_cast<Connection **>(MemoryContextAllocZero(
        TopMemoryContext, sizeof(Connection *) * (INFLUX_MAX_CONNECTIONS + 1)));
    L->udp_buf = static_cast<char *>(MemoryContextAlloc(TopMemoryContext, kMaxDatagram + 1));
    L->connected_database = MemoryContextStrdup(TopMemoryContext, influx_database);
    L->connected_role = MemoryContextStrdup(TopMemoryContext, influx_role ? influx_role : "");

    on_shmem_exit(ClearListenerState, 0);
    SpinLockAcquire(&shared_state->mutex);
    shared_state->listener_pid = MyProcPid;
    shared_state->generation++;
    shared_state->listener_started_at = GetCurrentTimestamp();
    SpinLockRelease(&shared_state->mutex);
    SetListenerStatus("starting");

    L->targets_ok = CheckTargets();
    RaiseDescriptorLimit();
    /*
     * Request bodies (a megabyte or more each) come and go by the thousand: from the heap,
     * not a fresh mmap each (whose every page faults in again, a third of the listener's
     * time under HTTP load), and kept for the next request rather than trimmed after each.
     * GiveBackMemory trims once the listener is quiet.  32 MiB is glibc's largest mmap
     * threshold, above influx.http_max_body_size's default.
     */
    (void) mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    (void) mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
    BindSockets(true);
    SuperviseWorkers(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

/*
 * Handles the events of one wait.  Every event of the batch is handled, even after one of
 * them changed the set (the set is rebuilt before the next wait): a connection closed here
 * is simply not found any more, and a reused pointer at worst reads a socket with nothing
 * to read.  New connections come last, after the closes seen in the same batch, so that a
 * client that just closed does not count against influx.max_connections.  Returns whether
 * the latch was set.
 */
bool HandleEvents(const WaitEvent *events, int n)
{
    bool latch = false;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n; k++) {
            const WaitEvent *ev = &events[k];
            if (ev->events & WL_LATCH_SET) {
                latch = true;
                continue;
            }
            intptr_t tag = reinterpret_cast<intptr_t>(ev->user_data);
            bool is_listen_socket = tag < 0 && tag >= -2 * kMaxEndpoints;
            if (is_listen_socket != (pass == 1))
                continue;
            if (is_listen_socket && tag >= -kMaxEndpoints) {
                AcceptConnections(L->endpoints.tcp[-tag - 1], kAcceptsPerWakeup);
            } else if (is_listen_socket) {
                HttpAccept(L->endpoints.http[-tag - kMaxEndpoints - 1], kAcceptsPerWakeup);
            } else if (tag > 0 && tag <= kMaxEndpoints) {
                (void) ReadDatagrams(tag - 1, kDatagramsPerWakeup);
            } else if (static_cast<uintptr_t>(tag) & kHttpEventBit) {
                HttpHandleEvent(ev->user_data, ev->events);
            } else {
                auto *c = static_cast<Connection *>(ev->user_data);
                for (int i = 0; i < L->nconns; i++)
                    if (L->conns[i] == c) {
                        (void) ReadConnection(i, kReadsPerWakeup);
                        break;
                    }
            }
        }
    }
    return latch;
}

/* How long the next wait may be: short while a chunk waits for room, so the retry is prompt. */
long NextWaitMs(void)
{
    if (HttpHasWork())
        return 0;
    if (L->blocked || L->chunk.len > 0 || L->nrequeued > 0)
        return 10;
    for (int i = 0; i < kMaxRings; i++)
        if (L->rings[i].in_use && (L->rings[i].pending || !L->rings[i].ready))
            return 10;
    return 1000;
}

void ListenerMain(void)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, ListenerSigterm);
    /* pg_cancel_backend() has nothing to cancel here; it must not end the listener. */
    pqsignal(SIGINT, SIG_IGN);
    BackgroundWorkerUnblockSignals();

    /*
     * No database: the listener reads only shared catalogs (CheckTargets).  Connecting
     * still makes it visible in pg_stat_activity and gives it the SIGUSR1 handling that
     * wakes it when a worker starts or stops.
     */
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("influx listener");
    StartListener();

    WaitEvent events[64];
    TimestampTz last_supervision = GetCurrentTimestamp();
    TimestampTz last_target_check = last_supervision;
    for (;;) {
        if (shutdown_requested)
            Shutdown();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ApplyReload();
            SuperviseWorkers(false);
        }
        if (!L->endpoints_ok && GetCurrentTimestamp() >= L->next_bind_attempt)
            BindSockets(false);
        if (L->wes_dirty || L->wes == nullptr)
            RebuildWaitEventSet();

        int n = WaitEventSetWait(L->wes, NextWaitMs(), events, lengthof(events), PG_WAIT_EXTENSION);
        bool latch = HandleEvents(events, n);
        if (latch) {
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        }

        /* Everything readable was read: send what there is, however small. */
        if (!L->blocked)
            (void) TryPlaceChunk();
        RetryPending();
        HttpTick(GetCurrentTimestamp());

        bool restart = pg_atomic_exchange_u32(&shared_state->restart_workers_requested, 0) != 0;
        TimestampTz now = GetCurrentTimestamp();
        if (latch || restart || TimestampDifferenceExceeds(last_supervision, now, 1000)) {
            SuperviseWorkers(restart);
            PollUdpDrops();
            CloseIdleConnections(now);
            last_supervision = now;
        }
        /*
         * The role or database may be created (CREATE EXTENSION creates the default role),
         * or the role changed (made a superuser), without a reload.
         */
        if (TimestampDifferenceExceeds(last_target_check, now, L->targets_ok ? 10000 : 1000)) {
            bool was_ok = L->targets_ok;
            L->targets_ok = CheckTargets();
            last_target_check = now;
            if (L->targets_ok != was_ok)
                SuperviseWorkers(false);
        }
    }
}

} // namespace net
} // namespace influx

namespace influx
{

void RegisterListener(void)
{
    BackgroundWorker worker;
    net::DescribeProcess(&worker, "pg_influx_listener_main", "influx listener",
                         influx_restart_delay);
    RegisterBackgroundWorker(&worker);
}

} // namespace influx

/*
 * Entry point named in bgw_function_name.  A C++ exception that escapes becomes an ERROR
 * (which ends a background worker as FATAL) rather than std::terminate.
 */
extern "C" void pg_influx_listener_main(Datum)
{
    INFLUX_CATCH_CPP(influx::net::ListenerMain());
}
