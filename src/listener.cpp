/*
 * listener.cpp — the influx listener: sockets in, chunks out, workers supervised.
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
#include <cerrno>
#include <cstring>
#include <new>

extern "C" {
#include "postgres.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "utils/snapmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "chunk.hpp"
#include "compat.hpp"
#include "line_protocol.hpp"
#include "listener.hpp"
#include "ring.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "sockets.hpp"
#include "worker.hpp"

namespace influx {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kReadsPerWakeup = 4;       /* per connection, for fairness */
constexpr int kDatagramsPerWakeup = 256; /* per UDP socket */
constexpr int kMaxRings = 2 * INFLUX_MAX_WORKERS;
constexpr int kShutdownDrainSeconds = 20; /* workers wait longer: worker.cpp */

/* A growable byte buffer in TopMemoryContext. */
struct Buffer {
    char *data;
    size_t len;
    size_t cap;
};

struct Connection {
    int fd;
    Buffer buf;        /* bytes of the line being received (and any unscanned bytes) */
    size_t scanned;    /* bytes of buf already fed to scanner */
    LineScanner scanner;
    bool discarding;   /* skipping the rest of an over-long line */
};

struct Ring {
    bool in_use;
    int index;
    bool retiring; /* gets no new chunks */
    bool failed;   /* the worker went away without being asked to (send saw it detached) */
    bool detached; /* listener side detached: the worker drains and exits */
    dsm_segment *seg;
    RingHeader *header;
    shm_mq_handle *mqh;
    BackgroundWorkerHandle *handle;
    Buffer pending; /* chunk offered to the ring and not yet completely written */
    TimestampTz started_at;
};

struct ListenerState {
    ProcessSlot *slot;
    Endpoints endpoints;
    bool endpoints_ok;
    TimestampTz next_bind_attempt;
    bool targets_ok;

    Connection **conns;
    int nconns;

    Ring rings[kMaxRings];
    int next_ring; /* round-robin position */
    TimestampTz next_start[INFLUX_MAX_WORKERS];

    Buffer chunk;  /* chunk being filled */
    bool blocked;  /* every ring is full: sockets are not read */

    WaitEventSet *wes;
    bool wes_dirty;

    char *udp_buf; /* one datagram */
    uint32 udp_drops_seen[kMaxEndpoints];

    /* settings the sockets were bound with, to notice changes on reload */
    char *bound_addresses;
    int bound_udp_port;
    int bound_tcp_port;
    int bound_udp_rcvbuf;
    char *connected_database;
    char *connected_role;

    /* What influx.listener_status() shows, most important first; "" when fine. */
    char target_problem[INFLUX_ERROR_TEXT];
    char bind_problem[INFLUX_ERROR_TEXT];
    char worker_problem[INFLUX_ERROR_TEXT];
};

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
 * Buffers and chunks
 * --------------------------------------------------------------------------------------- */

void BufferReserve(Buffer *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = Max(b->cap * 2, b->len + extra);
    cap = Max(cap, kChunkTarget + kReadSize);
    if (b->data == nullptr)
        b->data = static_cast<char *>(MemoryContextAlloc(TopMemoryContext, cap));
    else
        b->data = static_cast<char *>(repalloc(b->data, cap));
    b->cap = cap;
}

/* Gives memory back after an unusually long line has passed through a buffer. */
void BufferShrink(Buffer *b)
{
    if (b->len == 0 && b->cap > 4 * (kChunkTarget + kReadSize)) {
        pfree(b->data);
        b->data = nullptr;
        b->cap = 0;
    }
}

bool TryPlaceChunk(void);

/* Appends one record (complete lines) to the chunk being filled; sends it when full. */
void EmitRecord(const char *data, size_t len, bool add_newline)
{
    if (len == 0)
        return;
    uint32 reclen = static_cast<uint32>(len + (add_newline ? 1 : 0));
    Buffer *c = &L->chunk;
    BufferReserve(c, kRecordHeader + reclen);
    memcpy(c->data + c->len, &reclen, kRecordHeader);
    memcpy(c->data + c->len + kRecordHeader, data, len);
    c->len += kRecordHeader + len;
    if (add_newline)
        c->data[c->len++] = '\n';
    if (c->len >= kChunkTarget && !L->blocked)
        (void) TryPlaceChunk();
}

/* Counts lines in a record the way the workers will split them. */
uint64 CountLines(const char *data, size_t len)
{
    LineScanner scanner;
    uint64_t lines = 0;
    size_t last = scanner.FindLastLineEnd(data, len, &lines);
    /* Bytes after the last line end are one more line (a record's last needs no '\n'). */
    if (last == LineScanner::npos ? len > 0 : last < len)
        lines++;
    return lines;
}

/* ---------------------------------------------------------------------------------------
 * Rings and workers
 * --------------------------------------------------------------------------------------- */

/*
 * Offers the filled chunk to the next ring that has no pending chunk.  Returns false (and
 * sets blocked) if no ring can take it now.
 */
bool TryPlaceChunk(void)
{
    if (L->chunk.len == 0)
        return true;
    for (int k = 0; k < kMaxRings; k++) {
        int i = (L->next_ring + k) % kMaxRings;
        Ring *r = &L->rings[i];
        if (!r->in_use || r->retiring || r->detached || r->pending.len > 0)
            continue;
        shm_mq_result res = shm_mq_send(r->mqh, L->chunk.len, L->chunk.data, true, true);
        if (res == SHM_MQ_DETACHED) {
            /* The worker is gone; supervision will notice and replace it. */
            r->retiring = r->failed = true;
            continue;
        }
        L->next_ring = (i + 1) % kMaxRings;
        if (res == SHM_MQ_WOULD_BLOCK) {
            /* Part of it may be in the ring already: this ring must get the rest later. */
            Buffer tmp = r->pending;
            r->pending = L->chunk;
            L->chunk = tmp;
            Count(L->slot, kQueueFull);
        }
        L->chunk.len = 0;
        BufferShrink(&L->chunk);
        if (L->blocked) {
            L->blocked = false;
            L->wes_dirty = true;
        }
        return true;
    }
    if (!L->blocked) {
        L->blocked = true;
        L->wes_dirty = true;
    }
    return false;
}

/* Offers every ring its pending chunk again; detaches retired rings that are through. */
void RetryPending(void)
{
    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (!r->in_use || r->detached)
            continue;
        if (r->pending.len > 0) {
            shm_mq_result res = shm_mq_send(r->mqh, r->pending.len, r->pending.data, true, true);
            if (res == SHM_MQ_WOULD_BLOCK)
                continue;
            if (res == SHM_MQ_SUCCESS) {
                r->pending.len = 0;
                BufferShrink(&r->pending);
            } else {
                /* detached: supervision re-routes the pending chunk */
                r->retiring = r->failed = true;
                continue;
            }
        }
        if (r->retiring && r->pending.len == 0) {
            shm_mq_detach(r->mqh);
            r->mqh = nullptr;
            r->detached = true;
        }
    }
    if (L->blocked)
        (void) TryPlaceChunk();
}

/* Creates a ring and registers the worker that reads it. */
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
    Size qsize = MAXALIGN(Max((Size) influx_queue_size, shm_mq_minimum_size + 1024));
    dsm_segment *seg = dsm_create(RingSegmentSize(qsize), DSM_CREATE_NULL_IF_MAXSEGMENTS);
    if (seg == nullptr) {
        ReportProblem(L->slot, "could not create a ring for influx worker %d: too many dynamic "
                               "shared memory segments",
                      index);
        L->next_start[index] = TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
        return;
    }
    dsm_pin_mapping(seg);

    auto *header = static_cast<RingHeader *>(dsm_segment_address(seg));
    header->magic = kRingMagic;
    header->generation = shared_state->generation;
    header->worker_index = index;
    header->queue_size = qsize;
    pg_atomic_init_u32(&header->stopping, 0);
    shm_mq *mq = shm_mq_create(RingQueue(header), qsize);
    shm_mq_set_sender(mq, MyProc);

    BackgroundWorker worker;
    DescribeProcess(&worker, "pg_influx_worker_main", "influx worker", BGW_NEVER_RESTART);
    snprintf(worker.bgw_name, BGW_MAXLEN, "influx worker %d", index);
    worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
    WorkerArgs args = {index, shared_state->generation};
    StaticAssertStmt(sizeof(WorkerArgs) <= BGW_EXTRALEN, "worker arguments do not fit");
    memcpy(worker.bgw_extra, &args, sizeof(args));
    worker.bgw_notify_pid = MyProcPid;

    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    BackgroundWorkerHandle *handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        MemoryContextSwitchTo(old);
        dsm_detach(seg);
        ReportProblem(L->slot,
                      "could not start influx worker %d: no free background worker slot "
                      "(raise max_worker_processes)",
                      index);
        snprintf(L->worker_problem, sizeof(L->worker_problem),
                 "could not start influx worker %d: no free background worker slot (raise "
                 "max_worker_processes)",
                 index);
        L->next_start[index] = TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
        return;
    }
    Ring *r = &L->rings[ri];
    r->mqh = shm_mq_attach(mq, seg, handle);
    MemoryContextSwitchTo(old);

    r->in_use = true;
    r->index = index;
    r->retiring = false;
    r->failed = false;
    r->detached = false;
    r->seg = seg;
    r->header = header;
    r->handle = handle;
    r->pending.len = 0;
    r->started_at = now;
}

/* Frees a ring whose worker has exited; a chunk it never took goes to another ring. */
void ReleaseRing(Ring *r)
{
    if (r->pending.len > 0) {
        /* The chunk is already framed as records: append it whole to the chunk being filled. */
        Buffer *c = &L->chunk;
        BufferReserve(c, r->pending.len);
        memcpy(c->data + c->len, r->pending.data, r->pending.len);
        c->len += r->pending.len;
        r->pending.len = 0;
    }
    if (r->mqh != nullptr)
        shm_mq_detach(r->mqh);
    dsm_detach(r->seg);
    if (r->pending.data != nullptr)
        pfree(r->pending.data);
    pfree(r->handle);
    memset(r, 0, sizeof(*r));
}

/* Polls the workers: replaces the ones that exited, retires or starts to match settings. */
void SuperviseWorkers(bool restart_all)
{
    TimestampTz now = GetCurrentTimestamp();
    int wanted = L->targets_ok ? influx_workers : 0;
    bool have[INFLUX_MAX_WORKERS] = {false};
    int running = 0;

    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (!r->in_use)
            continue;
        pid_t pid;
        BgwHandleStatus st = GetBackgroundWorkerPid(r->handle, &pid);
        if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED) {
            if ((!r->retiring && !r->detached) || r->failed) {
                ReportProblem(L->slot, "influx worker %d exited unexpectedly; starting a "
                                       "replacement",
                              r->index);
                /* A worker that dies right after it starts would otherwise spin. */
                if (!TimestampDifferenceExceeds(r->started_at, now, 10000))
                    L->next_start[r->index] =
                        TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
            }
            ReleaseRing(r);
            continue;
        }
        if (!r->retiring && (restart_all || r->index >= wanted ||
                             pg_atomic_read_u32(&r->header->stopping) != 0))
            r->retiring = true;
        if (!r->retiring) {
            have[r->index] = true;
            running++;
        }
    }

    for (int index = 0; index < wanted; index++) {
        if (have[index] || now < L->next_start[index])
            continue;
        StartWorker(index);
    }

    /* Retired rings with nothing pending are detached here, and chunks re-offered. */
    RetryPending();

    int started = 0;
    for (int i = 0; i < kMaxRings; i++)
        if (L->rings[i].in_use && !L->rings[i].retiring)
            started++;
    if (started >= wanted)
        L->worker_problem[0] = '\0';
    RefreshStatus();

    SpinLockAcquire(&shared_state->mutex);
    shared_state->workers_wanted = wanted;
    shared_state->workers_running = running;
    SpinLockRelease(&shared_state->mutex);
}

/* ---------------------------------------------------------------------------------------
 * Sockets
 * --------------------------------------------------------------------------------------- */

/* influx.listener_status().tcp_connections */
void PublishConnectionCount(void)
{
    SpinLockAcquire(&shared_state->mutex);
    shared_state->tcp_connections = L->nconns;
    SpinLockRelease(&shared_state->mutex);
}

void CloseConnection(int i)
{
    Connection *c = L->conns[i];
    close(c->fd);
    if (c->buf.data != nullptr)
        pfree(c->buf.data);
    pfree(c);
    L->conns[i] = L->conns[--L->nconns];
    L->wes_dirty = true;
    PublishConnectionCount();
}

void AcceptConnections(int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                ReportProblem(L->slot, "could not accept a TCP connection: %m");
            return;
        }
        if (L->nconns >= influx_max_connections) {
            close(fd);
            Count(L->slot, kConnectionsRefused);
            ReportProblem(L->slot, "refused a TCP connection: influx.max_connections (%d) "
                                   "connections are open",
                          influx_max_connections);
            continue;
        }
        auto *c = static_cast<Connection *>(MemoryContextAllocZero(TopMemoryContext,
                                                                  sizeof(Connection)));
        c->fd = fd;
        new (&c->scanner) LineScanner();
        L->conns[L->nconns++] = c;
        Count(L->slot, kConnectionsAccepted);
        L->wes_dirty = true;
        PublishConnectionCount();
    }
}

/*
 * Moves the complete lines of a connection's buffer into the chunk.  What remains is the
 * start of a line; if it has grown past influx.max_line_length the line is rejected and
 * skipped up to its end.
 */
void ProcessConnectionBytes(Connection *c)
{
    for (;;) {
        if (c->discarding) {
            /* The scanner goes on from where the line was cut: a '\n' in quotes is no end. */
            size_t skip = c->scanner.FindLineEnd(c->buf.data, c->buf.len);
            if (skip == LineScanner::npos) {
                c->buf.len = 0;
                c->scanned = 0;
                return;
            }
            memmove(c->buf.data, c->buf.data + skip, c->buf.len - skip);
            c->buf.len -= skip;
            c->scanned = 0;
            c->discarding = false;
            continue;
        }

        size_t pos = c->scanned;
        uint64_t lines = 0;
        size_t end = c->scanner.FindLastLineEnd(c->buf.data + pos, c->buf.len - pos, &lines);
        size_t last_end = end == LineScanner::npos ? 0 : pos + end;
        if (last_end > 0) {
            Count(L->slot, kLinesReceived, lines);
            EmitRecord(c->buf.data, last_end, false);
            memmove(c->buf.data, c->buf.data + last_end, c->buf.len - last_end);
            c->buf.len -= last_end;
        }
        c->scanned = c->buf.len;

        if (c->buf.len > (size_t) influx_max_line_length) {
            Count(L->slot, kLinesReceived);
            Count(L->slot, kLinesRejectedTooLong);
            ReportProblem(L->slot, "rejected a line longer than influx.max_line_length (%d "
                                   "bytes) on a TCP connection",
                          influx_max_line_length);
            /*
             * The scanner has seen the whole buffer, which is all of this line so far:
             * drop it, and keep the scanner's state for finding where the line ends.
             */
            c->discarding = true;
            c->buf.len = 0;
            c->scanned = 0;
            continue;
        }
        if (c->buf.len == 0)
            BufferShrink(&c->buf);
        return;
    }
}

/* The sender closed its side: its last line is complete even without a '\n'. */
void FinishConnection(Connection *c)
{
    if (c->buf.len > 0 && !c->discarding) {
        Count(L->slot, kLinesReceived);
        EmitRecord(c->buf.data, c->buf.len, true);
    }
    c->buf.len = 0;
}

/* What ReadConnection saw last. */
enum class ReadResult { Closed, Drained, More };

/*
 * Reads from connection i at most max_reads times.  Closed: the connection is gone (and
 * removed); Drained: the kernel has nothing more for now; More: stopped early (budget spent
 * or the listener is blocked).
 */
ReadResult ReadConnection(int i, int max_reads)
{
    Connection *c = L->conns[i];
    for (int reads = 0; reads < max_reads && !L->blocked; reads++) {
        BufferReserve(&c->buf, kReadSize);
        ssize_t n = recv(c->fd, c->buf.data + c->buf.len, kReadSize, 0);
        if (n > 0) {
            Count(L->slot, kBytesReceived, n);
            c->buf.len += n;
            ProcessConnectionBytes(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return ReadResult::Drained;
        if (n < 0 && errno != ECONNRESET)
            ReportProblem(L->slot, "could not read from a TCP connection: %m");
        FinishConnection(c);
        CloseConnection(i);
        return ReadResult::Closed;
    }
    return ReadResult::More;
}

/*
 * Adds what the kernel dropped on UDP endpoint e since last seen.  `drops` is the socket's
 * cumulative drop counter, reported with each datagram (SO_RXQ_OVFL) and polled once a
 * second (PollUdpDrops), since a burst's last drops are otherwise reported only when the
 * next datagram arrives.  A datagram carries the counter as it was when the datagram was
 * queued, so after a poll, datagrams queued earlier report values behind the one already
 * seen: only a counter ahead of it (modulo 2^32) counts.
 */
void AccountUdpDrops(int e, uint32 drops)
{
    uint32 delta = drops - L->udp_drops_seen[e];
    if (delta == 0 || delta > PG_INT32_MAX)
        return;
    L->udp_drops_seen[e] = drops;
    Count(L->slot, kDatagramsDropped, delta);
    ReportProblem(L->slot, "the kernel dropped %u UDP datagrams: the receive buffer was full",
                  delta);
}

void PollUdpDrops(void)
{
    for (int e = 0; e < L->endpoints.nudp; e++) {
        uint32 meminfo[SK_MEMINFO_VARS];
        socklen_t len = sizeof(meminfo);
        if (getsockopt(L->endpoints.udp[e], SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0 &&
            len > SK_MEMINFO_DROPS * sizeof(uint32))
            AccountUdpDrops(e, meminfo[SK_MEMINFO_DROPS]);
    }
}

/* Reads datagrams, each one a record of its own; true when the socket has no more now. */
bool ReadDatagrams(int e, int max_datagrams)
{
    int fd = L->endpoints.udp[e];
    for (int k = 0; k < max_datagrams && !L->blocked; k++) {
        struct iovec iov = {L->udp_buf, 65536};
        char control[CMSG_SPACE(sizeof(uint32))];
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ReportProblem(L->slot, "could not receive a UDP datagram: %m");
            return true;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
                uint32 drops;
                memcpy(&drops, CMSG_DATA(cm), sizeof(drops));
                AccountUdpDrops(e, drops);
            }
        }
        if (n == 0)
            continue;
        Count(L->slot, kBytesReceived, n);
        Count(L->slot, kLinesReceived, CountLines(L->udp_buf, n));
        EmitRecord(L->udp_buf, n, L->udp_buf[n - 1] != '\n');
    }
    return false;
}

void RebuildWaitEventSet(void)
{
    if (L->wes != nullptr)
        FreeWaitEventSet(L->wes);
    int n = 2 + L->endpoints.nudp + L->endpoints.ntcp + L->nconns;
    L->wes = InfluxCreateWaitEventSet(n);
    AddWaitEventToSet(L->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(L->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    if (!L->blocked) {
        /* user_data: 1..n UDP endpoint, -1..-n TCP listen socket, connection pointer. */
        for (int i = 0; i < L->endpoints.nudp; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->endpoints.udp[i], nullptr,
                              reinterpret_cast<void *>(static_cast<intptr_t>(i + 1)));
        for (int i = 0; i < L->endpoints.ntcp; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->endpoints.tcp[i], nullptr,
                              reinterpret_cast<void *>(static_cast<intptr_t>(-(i + 1))));
        for (int i = 0; i < L->nconns; i++)
            AddWaitEventToSet(L->wes, WL_SOCKET_READABLE, L->conns[i]->fd, nullptr, L->conns[i]);
    }
    L->wes_dirty = false;
}

/* (Re)binds the sockets from the current settings; records the outcome in the status. */
void BindSockets(void)
{
    CloseEndpoints(&L->endpoints);
    L->wes_dirty = true;
    char error[256] = "";
    L->endpoints_ok = BindEndpoints(influx_listen_addresses, influx_udp_port, influx_tcp_port,
                                    influx_udp_receive_buffer, &L->endpoints, error,
                                    sizeof(error));
    memset(L->udp_drops_seen, 0, sizeof(L->udp_drops_seen));

    if (L->bound_addresses != nullptr)
        pfree(L->bound_addresses);
    L->bound_addresses = MemoryContextStrdup(TopMemoryContext, influx_listen_addresses);
    L->bound_udp_port = influx_udp_port;
    L->bound_tcp_port = influx_tcp_port;
    L->bound_udp_rcvbuf = influx_udp_receive_buffer;

    SpinLockAcquire(&shared_state->mutex);
    shared_state->udp_port_bound = L->endpoints_ok && L->endpoints.nudp > 0 ? influx_udp_port : 0;
    shared_state->tcp_port_bound = L->endpoints_ok && L->endpoints.ntcp > 0 ? influx_tcp_port : 0;
    SpinLockRelease(&shared_state->mutex);

    if (!L->endpoints_ok) {
        ReportProblem(L->slot, "%s; retrying in %d s", error, influx_restart_delay);
        strlcpy(L->bind_problem, error, sizeof(L->bind_problem));
        L->next_bind_attempt =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), influx_restart_delay * 1000);
    } else {
        L->bind_problem[0] = '\0';
        ereport(LOG, (errmsg("influx listener receiving line protocol on %s (UDP port %d, TCP "
                             "port %d)",
                             influx_listen_addresses, influx_udp_port, influx_tcp_port)));
    }
    RefreshStatus();
}

/*
 * Checks that influx.database exists and influx.role may log in, so that a mistake there
 * is a status users can query rather than workers failing in a loop.  Only shared catalogs
 * are read: the listener itself is not connected to a database.
 */
bool CheckTargets(void)
{
    char problem[256] = "";
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    (void) GetTransactionSnapshot();

    /*
     * Plain heap scans, as the autovacuum launcher does: without a database the relcache
     * cannot build the catalog index descriptors a syscache lookup would need.
     */
    bool db_found = false;
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
        auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
        if (strcmp(NameStr(db->datname), influx_database) == 0) {
            db_found = true;
            break;
        }
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);

    if (!db_found) {
        snprintf(problem, sizeof(problem), "database \"%s\" (influx.database) does not exist",
                 influx_database);
    } else if (influx_role != nullptr && influx_role[0] != '\0') {
        bool role_found = false, can_login = false;
        rel = table_open(AuthIdRelationId, AccessShareLock);
        scan = table_beginscan_catalog(rel, 0, nullptr);
        while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
            auto *role = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
            if (strcmp(NameStr(role->rolname), influx_role) == 0) {
                role_found = true;
                can_login = role->rolcanlogin;
                break;
            }
        }
        table_endscan(scan);
        table_close(rel, AccessShareLock);
        if (!role_found)
            snprintf(problem, sizeof(problem), "role \"%s\" (influx.role) does not exist",
                     influx_role);
        else if (!can_login)
            snprintf(problem, sizeof(problem),
                     "role \"%s\" (influx.role) is not permitted to log in", influx_role);
    }
    CommitTransactionCommand();

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
        L->bound_udp_rcvbuf != influx_udp_receive_buffer)
        BindSockets();
}

/*
 * Waits until the chunk being filled has a ring (used at shutdown).  Rings whose worker
 * has exited are released so that their pending chunk goes elsewhere; with no worker left
 * the lines cannot be delivered and are dropped with a report.  False once the deadline
 * has passed.
 */
bool MakeRoom(TimestampTz deadline)
{
    while (L->blocked) {
        RetryPending();
        if (!L->blocked)
            break;
        bool receivers = false;
        for (int i = 0; i < kMaxRings; i++) {
            Ring *r = &L->rings[i];
            pid_t pid;
            if (r->in_use && GetBackgroundWorkerPid(r->handle, &pid) == BGWH_STOPPED)
                ReleaseRing(r);
            else if (r->in_use && !r->detached)
                receivers = true;
        }
        if (!receivers) {
            ReportProblem(L->slot, "no influx worker is running; %zu bytes of received lines "
                                   "are lost at shutdown",
                          L->chunk.len);
            L->chunk.len = 0;
            L->blocked = false;
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
        AcceptConnections(L->endpoints.tcp[i]);
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
 * Hands every chunk to a ring (waiting for room, bounded), detaches from every ring and
 * exits.  See the file comment for the order.
 */
void Shutdown(void)
{
    SetListenerStatus("stopping");
    pgstat_report_activity(STATE_RUNNING, "stopping: handing received lines to workers");
    TimestampTz deadline =
        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kShutdownDrainSeconds * 1000);

    DrainSockets(deadline);
    CloseEndpoints(&L->endpoints);

    bool delivered = true;
    for (;;) {
        if (!MakeRoom(deadline)) {
            delivered = false;
            break;
        }
        if (L->chunk.len > 0 && !TryPlaceChunk())
            continue; /* blocked: MakeRoom waits for a ring */
        RetryPending();
        bool busy = L->chunk.len > 0;
        for (int i = 0; i < kMaxRings; i++) {
            Ring *r = &L->rings[i];
            pid_t pid;
            if (!r->in_use || r->detached || r->pending.len == 0)
                continue;
            /* A worker that died meanwhile: its chunk goes to another ring. */
            if (GetBackgroundWorkerPid(r->handle, &pid) == BGWH_STOPPED)
                ReleaseRing(r);
            busy = true;
        }
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

    SpinLockAcquire(&shared_state->mutex);
    shared_state->listener_pid = 0;
    shared_state->udp_port_bound = 0;
    shared_state->tcp_port_bound = 0;
    shared_state->tcp_connections = 0;
    shared_state->workers_running = 0;
    strlcpy(shared_state->listener_status, "stopped", INFLUX_ERROR_TEXT);
    SpinLockRelease(&shared_state->mutex);

    /* Status 1: the postmaster starts the listener again unless the server is stopping. */
    proc_exit(1);
}

/* ---------------------------------------------------------------------------------------
 * Main loop
 * --------------------------------------------------------------------------------------- */

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

    L = static_cast<ListenerState *>(MemoryContextAllocZero(TopMemoryContext, sizeof(*L)));
    L->slot = AcquireProcessSlot(ProcessKind::Listener, -1);
    L->conns = static_cast<Connection **>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(Connection *) * 10001));
    L->udp_buf = static_cast<char *>(MemoryContextAlloc(TopMemoryContext, 65536 + 1));
    L->connected_database = MemoryContextStrdup(TopMemoryContext, influx_database);
    L->connected_role = MemoryContextStrdup(TopMemoryContext, influx_role ? influx_role : "");

    SpinLockAcquire(&shared_state->mutex);
    shared_state->listener_pid = MyProcPid;
    shared_state->generation++;
    shared_state->listener_started_at = GetCurrentTimestamp();
    SpinLockRelease(&shared_state->mutex);
    SetListenerStatus("starting");

    L->targets_ok = CheckTargets();
    BindSockets();
    SuperviseWorkers(false);
    pgstat_report_activity(STATE_IDLE, nullptr);

    WaitEvent events[64];
    TimestampTz last_supervision = GetCurrentTimestamp();
    for (;;) {
        if (shutdown_requested)
            Shutdown();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ApplyReload();
            SuperviseWorkers(false);
        }
        if (!L->endpoints_ok && GetCurrentTimestamp() >= L->next_bind_attempt)
            BindSockets();
        if (L->wes_dirty || L->wes == nullptr)
            RebuildWaitEventSet();

        /* Short waits while a chunk waits for room, so the retry is prompt. */
        long timeout = (L->blocked || L->chunk.len > 0) ? 10 : 1000;
        for (int i = 0; i < kMaxRings && timeout > 10; i++)
            if (L->rings[i].in_use && L->rings[i].pending.len > 0)
                timeout = 10;
        int n = WaitEventSetWait(L->wes, timeout, events, lengthof(events), PG_WAIT_EXTENSION);

        /*
         * Every event of the batch is handled, even after one of them changed the set (the
         * set is rebuilt before the next wait): a connection closed here is simply not
         * found any more, and a reused pointer at worst reads a socket with nothing to read.
         * New connections come last, after the closes seen in the same batch, so that a
         * client that just closed does not count against influx.max_connections.
         */
        bool latch = false;
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < n; k++) {
                WaitEvent *ev = &events[k];
                if (ev->events & WL_LATCH_SET) {
                    latch = true;
                    continue;
                }
                intptr_t tag = reinterpret_cast<intptr_t>(ev->user_data);
                bool is_listen_socket = tag < 0 && tag >= -kMaxEndpoints;
                if (is_listen_socket != (pass == 1))
                    continue;
                if (is_listen_socket) {
                    AcceptConnections(L->endpoints.tcp[-tag - 1]);
                } else if (tag > 0 && tag <= kMaxEndpoints) {
                    (void) ReadDatagrams(tag - 1, kDatagramsPerWakeup);
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
        if (latch) {
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
        }

        /* Everything readable was read: send what there is, however small. */
        if (!L->blocked)
            (void) TryPlaceChunk();
        RetryPending();

        bool restart = pg_atomic_exchange_u32(&shared_state->restart_workers_requested, 0) != 0;
        TimestampTz now = GetCurrentTimestamp();
        if (latch || restart || TimestampDifferenceExceeds(last_supervision, now, 1000)) {
            SuperviseWorkers(restart);
            PollUdpDrops();
            last_supervision = now;
        }
    }
}

} // namespace
} // namespace influx

namespace influx {

void RegisterListener(void)
{
    BackgroundWorker worker;
    DescribeProcess(&worker, "pg_influx_listener_main", "influx listener", influx_restart_delay);
    RegisterBackgroundWorker(&worker);
}

} // namespace influx

/* Entry point named in bgw_function_name; the code it runs throws no C++ exceptions. */
extern "C" void pg_influx_listener_main(Datum)
{
    influx::ListenerMain();
}
