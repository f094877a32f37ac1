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

#include <malloc.h>

extern "C" {
#include "postgres.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access/transam.h"
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

#include "ipc/chunk.hpp"
#include "core/compat.hpp"
#include "ingest/identity.hpp"
#include "protocol/line_protocol.hpp"
#include "net/listener.hpp"
#include "core/pg_cpp.hpp"
#include "ipc/ring.hpp"
#include "core/settings.hpp"
#include "core/shared_state.hpp"
#include "net/sockets.hpp"
#include "ingest/worker.hpp"

namespace influx
{
namespace
{

constexpr size_t kReadSize = 64 * 1024;
constexpr int kReadsPerWakeup = 4;       /* per connection, for fairness */
constexpr int kDatagramsPerWakeup = 256; /* per UDP socket */
/* Room for the largest UDP payload (65,507 bytes over IPv4) and then some; +1 for a NUL. */
constexpr size_t kMaxDatagram = 65536;
/* Accepts per listen socket and wakeup: a connect flood must not starve reads. */
constexpr int kAcceptsPerWakeup = 64;
/*
 * TCP keepalive of accepted connections: a peer that vanished (crashed, NAT state gone)
 * is found after kKeepaliveIdleS + kKeepaliveCount x kKeepaliveIntervalS (two minutes)
 * and its slot of influx.max_connections freed.
 */
constexpr int kKeepaliveIdleS = 60;
constexpr int kKeepaliveIntervalS = 10;
constexpr int kKeepaliveCount = 6;
constexpr int kMaxRings = 2 * INFLUX_MAX_WORKERS;
constexpr int kShutdownDrainSeconds = 20; /* workers wait longer: worker.cpp */
/* How long a worker's "stopping" waits for the listener's own SIGTERM (SuperviseWorkers). */
constexpr int kStoppingGraceMs = 500;

/* A growable byte buffer in TopMemoryContext. */
struct Buffer {
    char *data;
    size_t len;
    size_t cap;
};

struct Connection {
    int fd;
    Buffer buf;     /* bytes of the line being received (and any unscanned bytes) */
    size_t scanned; /* bytes of buf already fed to scanner */
    LineScanner scanner;
    bool discarding;       /* skipping the rest of an over-long line */
    TimestampTz last_data; /* when the peer last sent anything (influx.tcp_idle_timeout) */
};

/* A chunk sent on a ring (or being sent), kept until the worker is done with it. */
struct SentChunk {
    char *data;
    size_t len;
    size_t cap; /* bytes allocated at data (a pooled buffer when kPooledSize) */
    uint64 seq; /* its number on the ring, from 1 (RingPosition) */
};

struct Ring {
    bool in_use;
    int index;
    bool ready;    /* the worker connected and attached as the receiver */
    bool retiring; /* gets no new chunks */
    bool failed;   /* the worker went away without being asked to (send saw it detached) */
    bool detached; /* listener side detached: the worker drains and exits */
    dsm_segment *seg;
    RingHeader *header;
    shm_mq_handle *mqh;
    BackgroundWorkerHandle *handle;
    /*
     * Chunks sent and not yet done (RingHeader), oldest first, in a circular array.  The
     * newest may be *pending*: offered, and not yet completely written (shm_mq requires
     * the same message to be offered again until it is).
     */
    SentChunk *sent;
    int sent_first;
    int sent_count;
    int sent_capacity;
    size_t sent_bytes;
    bool pending;
    uint64 last_seq; /* number of the newest chunk sent */
    TimestampTz started_at;
    TimestampTz stopping_seen_at; /* when the worker was first seen stopping, or 0 */
    Size queue_size;              /* of its shm_mq: where the handback area starts */
};

/* Lines a worker handed back (its table was locked), to be sent again after a while. */
struct HandedBack {
    SentChunk chunk;
    TimestampTz due;
};

struct ListenerState {
    ProcessSlot *slot;
    Endpoints endpoints;
    bool endpoints_ok;
    TimestampTz next_bind_attempt;
    bool targets_ok;
    bool superuser_warned; /* the warning about a privileged influx.role was given */

    Connection **conns;
    int nconns;

    Ring rings[kMaxRings];
    int next_ring; /* round-robin position */
    TimestampTz next_start[INFLUX_MAX_WORKERS];

    Buffer chunk; /* chunk being filled */
    /* Chunks to send before `chunk`: what workers that exited had not done. */
    SentChunk *requeued;
    int nrequeued;
    int requeued_capacity;
    HandedBack *handed_back; /* waiting until due, then requeued */
    int nhanded_back;
    int handed_back_capacity;
    Size requeued_bytes; /* in handed_back and requeued together */
    bool blocked;        /* every ring is full: sockets are not read */
    bool stopping;       /* Shutdown has begun: retiring rings take chunks again (see CanTake) */
    Size held_peak;      /* most bytes of sent chunks held since memory was last given back */
    TimestampTz quiet_since; /* since when little has been held (GiveBackMemory), or 0 */

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

/*
 * Buffers of the usual size (a chunk: kChunkTarget plus one read, with room for record
 * headers) are recycled: a chunk's buffer goes to its ring's kept chunks as it is, and
 * comes back here once the worker is done with it.  Allocating and freeing them instead
 * would copy every chunk once more, and on glibc map and unmap them (they are above its
 * mmap threshold), faulting every page in again.
 */
constexpr size_t kPooledSize = kChunkTarget + kReadSize + 1024;
constexpr int kPoolMax = 512; /* 64 MiB of spare buffers at most */

char *pool[kPoolMax];
int npool = 0;

char *TakeBuffer(size_t *cap)
{
    *cap = kPooledSize;
    if (npool > 0)
        return pool[--npool];
    return static_cast<char *>(MemoryContextAlloc(TopMemoryContext, kPooledSize));
}

void GiveBuffer(char *data, size_t cap)
{
    if (data == nullptr)
        return;
    if (cap == kPooledSize && npool < kPoolMax)
        pool[npool++] = data;
    else
        pfree(data);
}

/* Frees the spare buffers (GiveBackMemory). */
void EmptyPool(void)
{
    while (npool > 0)
        pfree(pool[--npool]);
}

void BufferReserve(Buffer *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    if (b->data == nullptr && extra <= kPooledSize) {
        b->data = TakeBuffer(&b->cap);
        return;
    }
    size_t cap = Max(b->cap * 2, b->len + extra);
    cap = Max(cap, kPooledSize);
    if (b->data == nullptr)
        b->data = static_cast<char *>(MemoryContextAlloc(TopMemoryContext, cap));
    else
        b->data = static_cast<char *>(repalloc(b->data, cap));
    b->cap = cap;
}

/* Gives memory back after an unusually long line has passed through a buffer. */
void BufferShrink(Buffer *b)
{
    if (b->len == 0 && b->cap > 4 * kPooledSize) {
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
 * The listener keeps at most this much of a ring's chunks beyond influx.queue_size
 * waiting for the worker to be done with them (RingHeader): room for the lines of the
 * worker's pending batch.  A ring that has more gets no new chunk until the worker
 * commits; its batch is then due within influx.flush_interval (or flush_idle) anyway.
 */
constexpr Size kSentBeyondQueue = 32 * 1024 * 1024;

/* Most bytes of handed-back and re-sent lines the listener holds before it stops reading. */
constexpr Size kMaxRequeued = 64 * 1024 * 1024;

SentChunk *SentAt(Ring *r, int k)
{
    return &r->sent[(r->sent_first + k) % r->sent_capacity];
}

/* Lines in a chunk, counted record by record as the workers will split them. */
uint64 ChunkLines(const char *data, size_t len)
{
    uint64 lines = 0;
    (void) ForEachRecord(data, len,
                         [&lines](const char *rec, size_t n) { lines += CountLines(rec, n); });
    return lines;
}

/* Appends a chunk to a ring's sent chunks, as its newest; the ring owns it from now on. */
SentChunk *KeepSent(Ring *r, const SentChunk *chunk)
{
    if (r->sent_count == r->sent_capacity) {
        int cap = Max(16, r->sent_capacity * 2);
        auto *grown =
            static_cast<SentChunk *>(MemoryContextAlloc(TopMemoryContext, sizeof(SentChunk) * cap));
        for (int k = 0; k < r->sent_count; k++)
            grown[k] = *SentAt(r, k);
        if (r->sent != nullptr)
            pfree(r->sent);
        r->sent = grown;
        r->sent_first = 0;
        r->sent_capacity = cap;
    }
    SentChunk *c = &r->sent[(r->sent_first + r->sent_count) % r->sent_capacity];
    *c = *chunk;
    c->seq = ++r->last_seq;
    r->sent_count++;
    r->sent_bytes += c->len;
    return c;
}

/* Frees the oldest sent chunk. */
void DropOldestSent(Ring *r)
{
    SentChunk *c = SentAt(r, 0);
    r->sent_bytes -= c->len;
    GiveBuffer(c->data, c->cap);
    r->sent_first = (r->sent_first + 1) % r->sent_capacity;
    r->sent_count--;
}

/* What the worker is done with, as far as it said (not counting a commit in flight). */
RingPosition DonePosition(Ring *r)
{
    pg_read_barrier();
    return RingPosition{pg_atomic_read_u64(&r->header->done_chunks),
                        pg_atomic_read_u64(&r->header->done_offset)};
}

/* Frees the sent chunks the worker is done with. */
void ForgetDone(Ring *r)
{
    if (r->sent_count == 0)
        return;
    uint64 done = DonePosition(r).chunks;
    while (r->sent_count > 0 && SentAt(r, 0)->seq <= done && !(r->pending && r->sent_count == 1))
        DropOldestSent(r);
}

/*
 * Whether a ring can be offered a new chunk now.  At shutdown a retiring ring whose worker
 * is still draining takes chunks too: its replacement will not be started any more (the
 * postmaster starts no worker once shutdown has begun), so a shutdown during
 * influx.restart_workers() would otherwise have nowhere to send what it holds.
 */
bool CanTake(Ring *r)
{
    if (!r->in_use || r->detached || r->pending || (r->retiring && !L->stopping) || r->failed)
        return false;
    if (!r->ready) {
        /* Set once the worker has connected and attached (worker.cpp). */
        if (shm_mq_get_receiver(RingQueue(r->header)) == nullptr)
            return false;
        r->ready = true;
    }
    ForgetDone(r);
    return r->sent_bytes < static_cast<Size>(influx_queue_size) + kSentBeyondQueue;
}

/*
 * Offers a chunk to the next ring that can take it; the ring keeps it (takes its buffer)
 * until its worker is done with it.  False, the chunk still the caller's, if no ring can
 * take it now.
 */
bool PlaceChunk(const SentChunk *chunk)
{
    for (int k = 0; k < kMaxRings; k++) {
        int i = (L->next_ring + k) % kMaxRings;
        Ring *r = &L->rings[i];
        if (!CanTake(r))
            continue;
        SentChunk *c = KeepSent(r, chunk);
        shm_mq_result res = shm_mq_send(r->mqh, c->len, c->data, true, true);
        if (res == SHM_MQ_DETACHED) {
            /*
             * The worker is gone; supervision will notice and send its other chunks
             * elsewhere.  This one it never got: take it back, or it would be sent again
             * with the others after going to the next ring now.
             */
            r->sent_count--;
            r->sent_bytes -= c->len;
            r->last_seq--;
            r->retiring = r->failed = true;
            continue;
        }
        L->next_ring = (i + 1) % kMaxRings;
        if (res == SHM_MQ_WOULD_BLOCK) {
            /* Part of it may be in the ring already: this ring must get the rest later. */
            r->pending = true;
            Count(L->slot, kQueueFull);
        }
        return true;
    }
    return false;
}

/*
 * Sends what waits: the chunks of workers that exited first, then the chunk being filled.
 * Returns false (and sets blocked) if no ring can take one now.
 */
bool TryPlaceChunk(void)
{
    bool placed_all = true;
    while (L->nrequeued > 0) {
        if (!PlaceChunk(&L->requeued[0])) {
            placed_all = false;
            break;
        }
        L->requeued_bytes -= L->requeued[0].len;
        memmove(&L->requeued[0], &L->requeued[1], sizeof(SentChunk) * (L->nrequeued - 1));
        L->nrequeued--;
    }
    /*
     * Lines handed back for a table that stays locked go round: worker, listener, worker.
     * Beyond kMaxRequeued of them, take no new lines (backpressure) until some commit.
     */
    if (L->requeued_bytes > kMaxRequeued)
        placed_all = false;
    if (placed_all && L->chunk.len > 0) {
        SentChunk c = {L->chunk.data, L->chunk.len, L->chunk.cap, 0};
        if (PlaceChunk(&c)) {
            /* The ring has the buffer now; the next chunk is filled in another. */
            L->chunk.data = nullptr;
            L->chunk.len = L->chunk.cap = 0;
        } else {
            placed_all = false;
        }
    }
    if (placed_all == L->blocked) {
        L->blocked = !placed_all;
        L->wes_dirty = true;
        /* Idle time counts from when the listener reads again (CloseIdleConnections). */
        if (!L->blocked) {
            TimestampTz now = GetCurrentTimestamp();
            for (int i = 0; i < L->nconns; i++)
                L->conns[i]->last_data = now;
        }
    }
    return placed_all;
}

void TakeHandback(Ring *r, RingPosition done);
void RequeueHandedBack(bool all);

/*
 * Offers every ring its pending chunk again, frees what workers are done with, and
 * detaches retired rings that are through.
 */
void RetryPending(void)
{
    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (!r->in_use)
            continue;
        /* Whatever the ring's state: a worker may wait for its handed-back lines to go. */
        ForgetDone(r);
        TakeHandback(r, DonePosition(r));
        if (r->detached)
            continue;
        if (r->pending) {
            SentChunk *c = SentAt(r, r->sent_count - 1);
            shm_mq_result res = shm_mq_send(r->mqh, c->len, c->data, true, true);
            if (res == SHM_MQ_WOULD_BLOCK)
                continue;
            if (res == SHM_MQ_SUCCESS) {
                r->pending = false;
            } else {
                /* detached: supervision sends its chunks elsewhere */
                r->retiring = r->failed = true;
                continue;
            }
        }
        if (r->retiring && !r->pending && !L->stopping) {
            shm_mq_detach(r->mqh);
            r->mqh = nullptr;
            r->detached = true;
        }
    }
    RequeueHandedBack(L->stopping);
    if (L->blocked || L->nrequeued > 0)
        (void) TryPlaceChunk();
}

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

/* Room for one more entry at the end of a growable array in TopMemoryContext. */
template <typename T> void RoomForOneMore(T **array, int count, int *capacity)
{
    if (count < *capacity)
        return;
    int cap = Max(16, *capacity * 2);
    auto *grown = static_cast<T *>(MemoryContextAlloc(TopMemoryContext, sizeof(T) * cap));
    if (count > 0)
        memcpy(grown, *array, sizeof(T) * count);
    if (*array != nullptr)
        pfree(*array);
    *array = grown;
    *capacity = cap;
}

/* Adds a chunk to the ones to send before new data (they own its buffer). */
void Requeue(const SentChunk *chunk)
{
    RoomForOneMore(&L->requeued, L->nrequeued, &L->requeued_capacity);
    L->requeued[L->nrequeued++] = *chunk;
}

/*
 * Lines a worker hands back wait this long before they are sent again: the table they are
 * for was locked a moment ago, and an immediate resend would only be handed back again.
 */
constexpr int kHandbackDelayMs = 1000;

/*
 * Takes the lines a ring's worker handed back (ring.hpp RingHeader) once the flush that
 * handed them back is done (committed), as `done` says; they are sent again after
 * kHandbackDelayMs, to any worker.
 */
void TakeHandback(Ring *r, RingPosition done)
{
    RingHeader *h = r->header;
    if (pg_atomic_read_u32(&h->handback_full) == 0)
        return;
    pg_read_barrier();
    if (!PositionReached(done.chunks, done.offset, pg_atomic_read_u64(&h->handback_chunks),
                         pg_atomic_read_u64(&h->handback_offset)))
        return; /* not committed (yet): the worker may still rewrite it */
    size_t len = pg_atomic_read_u64(&h->handback_len);
    SentChunk c;
    if (len <= kPooledSize) {
        c.data = TakeBuffer(&c.cap);
    } else {
        c.data = static_cast<char *>(MemoryContextAlloc(TopMemoryContext, len));
        c.cap = len;
    }
    memcpy(c.data, RingHandback(h, r->queue_size), len);
    c.len = len;
    c.seq = 0;
    pg_memory_barrier(); /* the area is read before the worker may write it again */
    pg_atomic_write_u32(&h->handback_full, 0);
    Count(L->slot, kLinesRerouted, ChunkLines(c.data, c.len));
    RoomForOneMore(&L->handed_back, L->nhanded_back, &L->handed_back_capacity);
    L->handed_back[L->nhanded_back++] =
        HandedBack{c, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kHandbackDelayMs)};
    L->requeued_bytes += c.len;
}

/* Moves handed-back lines that are due (all of them if `all`) to the chunks to send. */
void RequeueHandedBack(bool all)
{
    if (L->nhanded_back == 0)
        return;
    TimestampTz now = GetCurrentTimestamp();
    int kept = 0;
    for (int k = 0; k < L->nhanded_back; k++) {
        if (all || L->handed_back[k].due <= now)
            Requeue(&L->handed_back[k].chunk);
        else
            L->handed_back[kept++] = L->handed_back[k];
    }
    L->nhanded_back = kept;
}

/*
 * Frees a ring whose worker has exited.  What the worker was not done with -- chunks it
 * never read, and those of a batch it did not commit -- is sent to another worker: the
 * commit log decides whether a flush the worker announced committed (RingHeader).
 */
void ReleaseRing(Ring *r)
{
    RingPosition done = DonePosition(r);
    TransactionId xid = pg_atomic_read_u32(&r->header->commit_xid);
    if (TransactionIdIsNormal(xid) && TransactionIdDidCommit(xid))
        done = RingPosition{pg_atomic_read_u64(&r->header->commit_chunks),
                            pg_atomic_read_u64(&r->header->commit_offset)};
    TakeHandback(r, done);
    uint64 lines = 0;
    for (int k = 0; k < r->sent_count; k++) {
        SentChunk *c = SentAt(r, k);
        if (c->seq <= done.chunks) {
            GiveBuffer(c->data, c->cap);
            continue;
        }
        if (c->seq == done.chunks + 1 && done.offset > 0)
            c->len = CutChunk(c->data, c->len, done.offset);
        lines += ChunkLines(c->data, c->len);
        Requeue(c);
        L->requeued_bytes += c->len;
    }
    if (lines > 0) {
        Count(L->slot, kLinesRerouted, lines);
        ReportProblem(L->slot,
                      "influx worker %d exited with %llu lines it had not committed; "
                      "they go to another worker",
                      r->index, static_cast<unsigned long long>(lines));
    }
    if (r->mqh != nullptr)
        shm_mq_detach(r->mqh);
    dsm_detach(r->seg);
    if (r->sent != nullptr)
        pfree(r->sent);
    pfree(r->handle);
    memset(r, 0, sizeof(*r));
}

/*
 * After a stall (a locked table, workers that could not connect) the listener held many
 * chunks; once they are done, their memory goes back to the allocator, which keeps it.
 * Hand it back to the kernel, so that the listener's memory comes down after the stall
 * instead of staying at its high-water mark.
 */
void GiveBackMemory(TimestampTz now)
{
    constexpr Size kTrimAbove = 8 * 1024 * 1024;
    /* Only after this long with little held: under load the buffers are needed again. */
    constexpr int kQuietMs = 10000;
    Size held = 0;
    for (int i = 0; i < kMaxRings; i++)
        if (L->rings[i].in_use)
            held += L->rings[i].sent_bytes;
    L->held_peak = Max(L->held_peak, held);
    if (held >= kTrimAbove / 8 || L->nrequeued > 0 || L->nhanded_back > 0) {
        L->quiet_since = 0;
        return;
    }
    /* Worth it after a stall, or when the pool has kept spare buffers from a busy moment. */
    if (L->held_peak < kTrimAbove && static_cast<Size>(npool) * kPooledSize < kTrimAbove / 4)
        return;
    if (L->quiet_since == 0) {
        L->quiet_since = now;
        return;
    }
    if (TimestampDifferenceExceeds(L->quiet_since, now, kQuietMs)) {
        EmptyPool();
        malloc_trim(0);
        L->held_peak = held;
        L->quiet_since = 0;
    }
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
            if (!r->ready && shm_mq_get_receiver(RingQueue(r->header)) == nullptr) {
                snprintf(L->worker_problem, sizeof(L->worker_problem),
                         "influx worker %d exited before it was ready (can role \"%s\" "
                         "connect to database \"%s\"? see the server log); retrying every "
                         "%d s",
                         r->index,
                         influx_role && influx_role[0] ? influx_role : "(bootstrap superuser)",
                         influx_database, influx_restart_delay);
                ReportProblem(L->slot, "%s", L->worker_problem);
                L->next_start[r->index] =
                    TimestampTzPlusMilliseconds(now, influx_restart_delay * 1000);
            } else if ((!r->retiring && !r->detached) || r->failed) {
                ReportProblem(L->slot,
                              "influx worker %d exited unexpectedly; starting a "
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
        /*
         * A worker that says it is stopping is retired -- after kStoppingGraceMs, and not
         * if the listener is shutting down itself by then: at a server shutdown the
         * postmaster may signal the workers a moment before the listener, and their rings
         * must stay attached for what Shutdown still has to send.
         */
        bool stopping = pg_atomic_read_u32(&r->header->stopping) != 0;
        if (stopping && r->stopping_seen_at == 0)
            r->stopping_seen_at = now;
        bool stopped = stopping && !shutdown_requested &&
                       TimestampDifferenceExceeds(r->stopping_seen_at, now, kStoppingGraceMs);
        if (!r->retiring && (restart_all || r->index >= wanted || stopped))
            r->retiring = true;
        if (r->retiring)
            pg_atomic_write_u32(&r->header->retired, 1);
        if (!r->retiring)
            have[r->index] = true;
    }

    for (int index = 0; index < wanted; index++) {
        if (have[index] || now < L->next_start[index])
            continue;
        StartWorker(index);
    }

    /* Retired rings with nothing pending are detached here, and chunks re-offered. */
    RetryPending();

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

    GiveBackMemory(now);
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
    GiveBuffer(c->buf.data, c->buf.cap);
    pfree(c);
    L->conns[i] = L->conns[--L->nconns];
    L->wes_dirty = true;
    PublishConnectionCount();
}

/* Asks the kernel to probe an idle connection, so that a vanished peer is noticed. */
void SetKeepalive(int fd)
{
    int on = 1, idle = kKeepaliveIdleS, interval = kKeepaliveIntervalS, count = kKeepaliveCount;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0)
        ReportProblem(L->slot, "could not set TCP keepalive on a connection: %m");
}

void AcceptConnections(int listen_fd, int max_accepts)
{
    for (int accepted = 0; accepted < max_accepts; accepted++) {
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
            ReportProblem(L->slot,
                          "refused a TCP connection: influx.max_connections (%d) "
                          "connections are open",
                          influx_max_connections);
            continue;
        }
        auto *c =
            static_cast<Connection *>(MemoryContextAllocZero(TopMemoryContext, sizeof(Connection)));
        c->fd = fd;
        c->last_data = GetCurrentTimestamp();
        SetKeepalive(fd);
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
            ReportProblem(L->slot,
                          "rejected a line longer than influx.max_line_length (%d "
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
            c->last_data = GetCurrentTimestamp();
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
 * Closes the connections that have sent nothing for influx.tcp_idle_timeout.  A line the
 * peer had begun and not finished is dropped and counted as rejected (syntax): unlike a
 * peer that closes, a silent one has not said the line is complete.
 */
void CloseIdleConnections(TimestampTz now)
{
    /* While blocked the listener reads nobody: silence is then ours, not the peer's. */
    if (influx_tcp_idle_timeout <= 0 || L->blocked)
        return;
    for (int i = L->nconns - 1; i >= 0; i--) {
        Connection *c = L->conns[i];
        if (!TimestampDifferenceExceeds(c->last_data, now, influx_tcp_idle_timeout * 1000))
            continue;
        /* Bytes the kernel holds for us are not silence (closing would discard them). */
        int unread = 0;
        if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)
            continue;
        if (c->buf.len > 0 && !c->discarding) {
            Count(L->slot, kLinesReceived);
            Count(L->slot, kLinesRejectedSyntax);
        }
        Count(L->slot, kConnectionsClosedIdle);
        ReportProblem(L->slot, "closed a TCP connection idle for influx.tcp_idle_timeout (%d s)%s",
                      influx_tcp_idle_timeout,
                      c->buf.len > 0 && !c->discarding ? "; its unfinished line is dropped" : "");
        CloseConnection(i);
    }
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
        struct iovec iov = {L->udp_buf, kMaxDatagram};
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
                                    influx_udp_receive_buffer, &L->endpoints, error, sizeof(error));
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
    BindSockets();
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
            bool is_listen_socket = tag < 0 && tag >= -kMaxEndpoints;
            if (is_listen_socket != (pass == 1))
                continue;
            if (is_listen_socket) {
                AcceptConnections(L->endpoints.tcp[-tag - 1], kAcceptsPerWakeup);
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
    return latch;
}

/* How long the next wait may be: short while a chunk waits for room, so the retry is prompt. */
long NextWaitMs(void)
{
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
            BindSockets();
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

} // namespace
} // namespace influx

namespace influx
{

void RegisterListener(void)
{
    BackgroundWorker worker;
    DescribeProcess(&worker, "pg_influx_listener_main", "influx listener", influx_restart_delay);
    RegisterBackgroundWorker(&worker);
}

} // namespace influx

/*
 * Entry point named in bgw_function_name.  A C++ exception that escapes becomes an ERROR
 * (which ends a background worker as FATAL) rather than std::terminate.
 */
extern "C" void pg_influx_listener_main(Datum)
{
    INFLUX_CATCH_CPP(influx::ListenerMain());
}
