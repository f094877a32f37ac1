/*
 * supervisor.cpp — the insertion workers as the listener sees them: a ring created
 * and a worker registered for each, replaced when it exits, retired when influx.workers
 * shrinks or a restart is asked for; influx.database and influx.role checked before any
 * starts (listener_state.hpp).
 */
#include "net/listener_state.hpp"

namespace influx
{
namespace net
{

/*
 * A new ring's DSM segment, its header initialised and its queue created with the listener
 * as sender; NULL, with the reason in problem[size], when no segment can be had (the
 * segment limit, or ENOSPC on a small /dev/shm, which raises an ERROR: reported, never a
 * reason to exit).
 */
dsm_segment *CreateRing(int index, Size qsize, char *problem, size_t size)
{
    dsm_segment *seg = nullptr;
    MemoryContext cxt = CurrentMemoryContext;
    PG_TRY();
    {
        seg = dsm_create(RingSegmentSize(qsize), DSM_CREATE_NULL_IF_MAXSEGMENTS);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(cxt);
        ErrorData *edata = CopyErrorData();
        FlushErrorState();
        snprintf(problem, size, "could not create a ring for influx worker %d: %s", index,
                 edata->message);
        FreeErrorData(edata);
        seg = nullptr;
    }
    PG_END_TRY();
    if (seg == nullptr) {
        if (problem[0] == '\0')
            snprintf(problem, size,
                     "could not create a ring for influx worker %d: too many dynamic shared "
                     "memory segments",
                     index);
        return nullptr;
    }
    dsm_pin_mapping(seg);

    auto *header = static_cast<RingHeader *>(dsm_segment_address(seg));
    memset(header, 0, sizeof(*header));
    header->magic = kRingMagic;
    pg_atomic_init_u32(&header->stopping, 0);
    pg_atomic_init_u32(&header->retired, 0);
    pg_atomic_init_u32(&header->commit_xid, InvalidTransactionId);
    pg_atomic_init_u64(&header->done_chunks, 0);
    pg_atomic_init_u64(&header->done_offset, 0);
    pg_atomic_init_u64(&header->commit_chunks, 0);
    pg_atomic_init_u64(&header->commit_offset, 0);
    pg_atomic_init_u32(&header->handback_full, 0);
    pg_atomic_init_u64(&header->handback_chunks, 0);
    pg_atomic_init_u64(&header->handback_offset, 0);
    pg_atomic_init_u64(&header->handback_len, 0);
    pg_atomic_init_u64(&header->outcome_head, 0);
    pg_atomic_init_u64(&header->outcome_tail, 0);
    shm_mq *mq = shm_mq_create(RingQueue(header), qsize);
    shm_mq_set_sender(mq, MyProc);
    return seg;
}

/* A worker that could not be started: the reason in the status, a retry later. */
void WorkerNotStarted(int index, const char *problem, TimestampTz retry_at)
{
    ReportProblem(L->slot, "%s", problem);
    strlcpy(L->worker_problem, problem, sizeof(L->worker_problem));
    L->next_start[index] = retry_at;
}

/*
 * Creates a ring and registers the worker that reads it.  A failure (no DSM segment, no
 * background worker slot) is reported in the status and tried again after
 * influx.restart_delay.
 */
void StartWorker(int index)
{
    int ri = -1;
    for (int i = 0; i < kMaxRings; i++)
        if (!L->rings[i].in_use) {
            ri = i;
            break;
        }
    if (ri < 0)
        return;

    TimestampTz now = GetCurrentTimestamp();
    TimestampTz retry_at = TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
    Size qsize = MAXALIGN(Max((Size) influx_queue_size, shm_mq_minimum_size + 1024));
    char problem[INFLUX_ERROR_TEXT] = "";
    dsm_segment *seg = CreateRing(index, qsize, problem, sizeof(problem));
    if (seg == nullptr) {
        WorkerNotStarted(index, problem, retry_at);
        return;
    }
    auto *header = static_cast<RingHeader *>(dsm_segment_address(seg));

    BackgroundWorker worker;
    DescribeProcess(&worker, "pg_influx_worker_main", "influx worker", BGW_NEVER_RESTART);
    snprintf(worker.bgw_name, BGW_MAXLEN, "influx worker %d", index);
    worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
    WorkerArgs args = {index, qsize};
    StaticAssertStmt(sizeof(WorkerArgs) <= BGW_EXTRALEN, "worker arguments do not fit");
    memcpy(worker.bgw_extra, &args, sizeof(args));
    worker.bgw_notify_pid = MyProcPid;

    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    BackgroundWorkerHandle *handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        MemoryContextSwitchTo(old);
        dsm_detach(seg);
        snprintf(problem, sizeof(problem),
                 "could not start influx worker %d: no free background worker slot (raise "
                 "max_worker_processes)",
                 index);
        WorkerNotStarted(index, problem, retry_at);
        return;
    }
    Ring *r = &L->rings[ri];
    memset(r, 0, sizeof(*r));
    r->mqh = shm_mq_attach(RingQueue(header), seg, handle);
    MemoryContextSwitchTo(old);

    r->in_use = true;
    r->index = index;
    r->seg = seg;
    r->header = header;
    r->handle = handle;
    r->started_at = now;
    r->queue_size = qsize;
}

/* A ring whose worker has exited: why (for the status and log), then released. */
void WorkerExited(Ring *r, TimestampTz now)
{
    if (!r->ready && shm_mq_get_receiver(RingQueue(r->header)) == nullptr) {
        snprintf(L->worker_problem, sizeof(L->worker_problem),
                 "influx worker %d exited before it was ready (can role \"%s\" "
                 "connect to database \"%s\"? see the server log); retrying every "
                 "%d s",
                 r->index, influx_role && influx_role[0] ? influx_role : "(bootstrap superuser)",
                 influx_database, influx_restart_delay);
        ReportProblem(L->slot, "%s", L->worker_problem);
        L->next_start[r->index] = TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
    } else if ((!r->retiring && !r->detached) || r->failed) {
        ReportProblem(L->slot, "influx worker %d exited unexpectedly; starting a replacement",
                      r->index);
        /* A worker that dies right after it starts would otherwise spin. */
        if (!TimestampDifferenceExceeds(r->started_at, now, 10000))
            L->next_start[r->index] = TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
    }
    ReleaseRing(r);
}

/*
 * Whether a live ring is to be retired now: all are on influx.restart_workers(), those
 * beyond influx.workers are, and so is one whose worker says it is stopping -- after
 * kStoppingGraceMs, and not if the listener is shutting down itself by then: at a server
 * shutdown the postmaster may signal the workers a moment before the listener, and their
 * rings must stay attached for what Shutdown still has to send.
 */
bool ToRetire(Ring *r, TimestampTz now, bool restart_all, int wanted)
{
    bool stopping = pg_atomic_read_u32(&r->header->stopping) != 0;
    if (stopping && r->stopping_seen_at == 0)
        r->stopping_seen_at = now;
    bool stopped = stopping && !shutdown_requested &&
                   TimestampDifferenceExceeds(r->stopping_seen_at, now, kStoppingGraceMs);
    return restart_all || r->index >= wanted || stopped;
}

/* Publishes how many workers are wanted and running, and the status that follows. */
void PublishWorkerCounts(int wanted)
{
    /* Running: connected and receiving on a ring that is not being retired. */
    int running = 0;
    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (r->in_use && !r->retiring &&
            (r->ready || shm_mq_get_receiver(RingQueue(r->header)) != nullptr))
            running++;
    }
    if (running >= wanted)
        L->worker_problem[0] = '\0';
    else if (L->worker_problem[0] == '\0' && wanted > 0)
        snprintf(L->worker_problem, sizeof(L->worker_problem), "%d of %d influx workers ready",
                 running, wanted);
    RefreshStatus();

    SpinLockAcquire(&shared_state->mutex);
    shared_state->workers_wanted = wanted;
    shared_state->workers_running = running;
    SpinLockRelease(&shared_state->mutex);
}

/* Polls the workers: replaces the ones that exited, retires or starts to match settings. */
void SuperviseWorkers(bool restart_all)
{
    TimestampTz now = GetCurrentTimestamp();
    int wanted = L->targets_ok ? influx_workers : 0;
    bool have[INFLUX_MAX_WORKERS] = {false};

    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (!r->in_use)
            continue;
        pid_t pid;
        BgwHandleStatus st = GetBackgroundWorkerPid(r->handle, &pid);
        if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED) {
            WorkerExited(r, now);
            continue;
        }
        if (!r->retiring && ToRetire(r, now, restart_all, wanted))
            r->retiring = true;
        if (r->retiring)
            pg_atomic_write_u32(&r->header->retired, 1);
        else
            have[r->index] = true;
    }

    for (int index = 0; index < wanted; index++) {
        if (have[index] || now < L->next_start[index])
            continue;
        StartWorker(index);
    }

    /* Retired rings with nothing pending are detached here, and chunks re-offered. */
    RetryPending();
    PublishWorkerCounts(wanted);
    GiveBackMemory(now);
}

/*
 * Plain heap scans of shared catalogs, as the autovacuum launcher does: without a database
 * the relcache cannot build the catalog index descriptors a syscache lookup would need.
 * Calls fn(tuple) for each row until it returns true.
 */
template <typename Fn> void ScanSharedCatalog(Oid catalog, const Fn &fn)
{
    Relation rel = table_open(catalog, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr)
        if (fn(tup))
            break;
    table_endscan(scan);
    table_close(rel, AccessShareLock);
}

/*
 * Why influx.role cannot be the workers' role, into problem[size] (empty if it can).
 * *privileged: it is a superuser or bypasses row-level security (allowed by the setting
 * when problem stays empty).
 */
void CheckRole(char *problem, size_t size, bool *privileged)
{
    *privileged = false;
    if (influx_role == nullptr || influx_role[0] == '\0') {
        *privileged = true; /* the bootstrap superuser */
        if (!influx_allow_superuser)
            snprintf(problem, size,
                     "influx.role is empty, which means the bootstrap superuser (set "
                     "influx.allow_superuser to insert as it anyway)");
        return;
    }
    bool found = false, can_login = false;
    const char *refused = nullptr;
    ScanSharedCatalog(AuthIdRelationId, [&](HeapTuple tup) {
        auto *role = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
        if (strcmp(NameStr(role->rolname), influx_role) != 0)
            return false;
        found = true;
        can_login = role->rolcanlogin;
        refused = WriterRoleProblem(role->rolsuper, role->rolbypassrls);
        *privileged = role->rolsuper || role->rolbypassrls;
        return true;
    });
    if (!found)
        snprintf(problem, size, "role \"%s\" (influx.role) does not exist", influx_role);
    else if (!can_login)
        snprintf(problem, size, "role \"%s\" (influx.role) is not permitted to log in",
                 influx_role);
    else if (refused != nullptr)
        snprintf(problem, size, "role \"%s\" (influx.role) %s", influx_role, refused);
}

/*
 * Checks that influx.database exists and influx.role may log in and write (not a superuser unless
 * allowed), so that a mistake there is a status users can query rather than workers failing in a
 * loop.  Only shared catalogs are read: the listener itself is not connected to a database.
 */
bool CheckTargets(void)
{
    char problem[256] = "";
    bool privileged = false;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    (void) GetTransactionSnapshot();
    bool db_found = false;
    ScanSharedCatalog(DatabaseRelationId, [&](HeapTuple tup) {
        auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
        db_found = strcmp(NameStr(db->datname), influx_database) == 0;
        return db_found;
    });
    if (!db_found)
        snprintf(problem, sizeof(problem), "database \"%s\" (influx.database) does not exist",
                 influx_database);
    else
        CheckRole(problem, sizeof(problem), &privileged);
    CommitTransactionCommand();

    bool allowed_privileged = privileged && problem[0] == '\0';
    if (allowed_privileged && !L->superuser_warned)
        ereport(WARNING,
                (errmsg("influx workers insert as role \"%s\", which is a superuser or bypasses "
                        "row-level security",
                        influx_role && influx_role[0] ? influx_role : "(bootstrap superuser)"),
                 errdetail("Anyone who can reach the influx ports writes with its privileges; "
                           "influx.allow_superuser is on."),
                 errhint("Set influx.role to a role without these attributes.")));
    L->superuser_warned = allowed_privileged;
    bool was_reported = strcmp(L->target_problem, problem) == 0;
    strlcpy(L->target_problem, problem, sizeof(L->target_problem));
    RefreshStatus();
    if (problem[0] != '\0') {
        if (!was_reported)
            ereport(WARNING, (errmsg("influx listener: %s; no workers are started", problem),
                              errhint("Fix the setting and reload the configuration.")));
        return false;
    }
    return true;
}

} // namespace net
} // namespace influx
