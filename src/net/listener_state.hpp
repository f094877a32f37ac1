/*
 * listener_state.hpp — what the files of the influx listener share (net/ only):
 *
 *   listener.cpp     the process: signals, status, reload, the shutdown order, main loop
 *   connections.cpp  sockets: binding, TCP connections (lines cut at '\n', limits, idle
 *                    and keepalive), UDP datagrams and their drop accounting
 *   router.cpp       chunks: buffers, packing lines into chunks, sending them to the
 *                    rings, keeping each until its worker is done, requeueing what a
 *                    worker that exited left, hand-back, backpressure, memory
 *   supervisor.cpp   the workers: rings created, workers started, replaced and retired;
 *                    influx.database and influx.role checked
 *
 * The listener's state is one ListenerState, L, defined in listener.cpp.  Everything here
 * is in namespace influx::net.  Include after postgres.h.
 */
#pragma once

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
namespace net
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
    int bound_http_port;
    bool bound_http_tls;
    int bound_udp_rcvbuf;
    char *connected_database;
    char *connected_role;

    /* What influx.listener_status() shows, most important first; "" when fine. */
    char target_problem[INFLUX_ERROR_TEXT];
    char bind_problem[INFLUX_ERROR_TEXT];
    char worker_problem[INFLUX_ERROR_TEXT];
};

/* What ReadConnection saw last. */
enum class ReadResult { Closed, Drained, More };

extern ListenerState *L;
/* SIGTERM arrived: the main loop shuts down (listener.cpp). */
extern volatile sig_atomic_t shutdown_requested;

char *TakeBuffer(size_t *cap);
void GiveBuffer(char *data, size_t cap);
void EmptyPool(void);
void BufferReserve(Buffer *b, size_t extra);
void BufferShrink(Buffer *b);
void EmitRecord(const char *data, size_t len, bool add_newline);
void EmitRequestRecord(const RecordMeta *meta, const char *data, size_t len);
uint64 CountLines(const char *data, size_t len);
SentChunk *SentAt(Ring *r, int k);
uint64 ChunkLines(const char *data, size_t len);
SentChunk *KeepSent(Ring *r, const SentChunk *chunk);
void DropOldestSent(Ring *r);
RingPosition DonePosition(Ring *r);
void ForgetDone(Ring *r);
bool CanTake(Ring *r);
bool SomeRingTakesNewChunks(void);
bool PlaceChunk(const SentChunk *chunk);
bool TryPlaceChunk(void);
void RetryPending(void);
void Requeue(const SentChunk *chunk);
void TakeHandback(Ring *r, RingPosition done);
void RequeueHandedBack(bool all);
void ReleaseRing(Ring *r);
void GiveBackMemory(TimestampTz now);
void PublishConnectionCount(void);
void CloseConnection(int i);
void SetKeepalive(int fd);
/* The next connection waiting on a listen socket, non-blocking; -1 when there is none (an
 * error other than "none now" is reported, naming `what`). */
int AcceptSocket(int listen_fd, const char *what);
/* At start: the soft limit on open files raised as far as the hard limit allows (a WARNING
 * if the connection limits could need more), and a descriptor held in reserve. */
void RaiseDescriptorLimit(void);
void AcceptConnections(int listen_fd, int max_accepts);
void ProcessConnectionBytes(Connection *c);
void FinishConnection(Connection *c);
ReadResult ReadConnection(int i, int max_reads);
void CloseIdleConnections(TimestampTz now);
void AccountUdpDrops(int e, uint32 drops);
void PollUdpDrops(void);
bool ReadDatagrams(int e, int max_datagrams);
void RebuildWaitEventSet(void);
void BindSockets(bool rebind);
dsm_segment *CreateRing(int index, Size qsize, char *problem, size_t size);
void WorkerNotStarted(int index, const char *problem, TimestampTz retry_at);
void StartWorker(int index);
void SuperviseWorkers(bool restart_all);
void CheckRole(char *problem, size_t size, bool *privileged);
bool CheckTargets(void);
void ListenerSigterm(SIGNAL_ARGS);
void RefreshStatus(void);
void DescribeProcess(BackgroundWorker *worker, const char *function, const char *type,
                     int restart_time);
bool StringsDiffer(const char *a, const char *b);
void ApplyReload(void);
void DropUndeliverable(const char *why);
void ReleaseExitedRings(void);
bool MakeRoom(TimestampTz deadline);
void DrainSockets(TimestampTz deadline);
void Shutdown(void);
void ClearListenerState(int, Datum);
void StartListener(void);
bool HandleEvents(const WaitEvent *events, int n);
long NextWaitMs(void);
void ListenerMain(void);

} // namespace net
} // namespace influx
