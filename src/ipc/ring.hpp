/*
 * ring.hpp — the shared-memory ring that carries chunks from the listener to one worker.
 *
 * Vocabulary: a *ring* is one shm_mq (single sender: the listener; single receiver: one
 * insertion worker) in a DSM segment of its own; a *chunk* is one shm_mq message holding
 * complete lines, each ended by '\n'.
 *
 * Why one segment per worker rather than one for all: influx.workers can grow and shrink
 * on reload, and a worker being replaced must be able to drain its old ring while its
 * successor already receives on a new one.  Per-worker segments make both plain: a new
 * worker gets a new segment, an old one keeps its own until it has drained it.  The
 * counters users see are not in these segments but in fixed shared memory
 * (shared_state.hpp), so they outlive rings and processes.
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"
}

namespace influx
{

constexpr uint64 kRingMagic = 0x696e666c75780002ULL; /* "influx" + layout version */

/*
 * A position in the stream of chunks a ring carried: every chunk before number `chunks`
 * + 1 (chunks count from 1), and the first `offset` bytes of that one.  `offset` is 0, or
 * falls on a record header or at the start of a line inside a record (chunk.hpp).
 */
struct RingPosition {
    uint64 chunks;
    uint64 offset;
};

/*
 * The ring's header.  Delivery (docs/reliability.md): the listener keeps a copy of every
 * chunk it sent until the worker reports it *done* -- committed, or rejected for a reason
 * about the data.  A worker that exits without reporting leaves the rest to the listener,
 * which sends it to another worker.  A flush that commits publishes where it will have
 * got to and its transaction's xid first (commit_*), then commits, then moves done_*: if
 * the worker dies in between, the commit log says whether commit_* or done_* holds.
 */
struct RingHeader {
    uint64 magic;
    pg_atomic_uint32 stopping;    /* set by the worker when it was asked to exit */
    pg_atomic_uint32 retired;     /* set by the listener: the ring gets no new chunks */
    pg_atomic_uint32 commit_xid;  /* xid of the flush about to commit, or invalid */
    pg_atomic_uint64 done_chunks; /* RingPosition done: written by the worker only */
    pg_atomic_uint64 done_offset;
    pg_atomic_uint64 commit_chunks; /* where the flush of commit_xid gets to */
    pg_atomic_uint64 commit_offset;
    /*
     * Handed back (see RingHandback): the lines of a flush's groups whose table was locked,
     * for the listener to send again.  Written by the worker before the flush commits, with
     * the flush's end position; valid once done (or, if the worker died, the committed
     * position) has reached it.  The listener takes them and sets the state back to empty;
     * the worker writes only while it is empty or holds its own uncommitted flush's lines.
     */
    pg_atomic_uint32 handback_full;
    pg_atomic_uint64 handback_chunks;
    pg_atomic_uint64 handback_offset;
    pg_atomic_uint64 handback_len;
};

/* Passed to the worker in bgw_extra. */
struct WorkerArgs {
    int worker_index;
    Size queue_size; /* of its ring: where the handback area starts */
};

/* Room for handed-back lines, after the queue in the ring's segment. */
constexpr Size kHandbackBytes = 2 * 1024 * 1024;

inline Size RingSegmentSize(Size queue_size)
{
    return MAXALIGN(sizeof(RingHeader)) + MAXALIGN(queue_size) + kHandbackBytes;
}

/* The handback area of a ring whose queue has `queue_size` bytes: records (chunk.hpp). */
inline char *RingHandback(RingHeader *header, Size queue_size)
{
    return reinterpret_cast<char *>(header) + MAXALIGN(sizeof(RingHeader)) + MAXALIGN(queue_size);
}

/* Whether position a is at or after b. */
inline bool PositionReached(uint64 a_chunks, uint64 a_offset, uint64 b_chunks, uint64 b_offset)
{
    return a_chunks > b_chunks || (a_chunks == b_chunks && a_offset >= b_offset);
}

inline shm_mq *RingQueue(RingHeader *header)
{
    return reinterpret_cast<shm_mq *>(reinterpret_cast<char *>(header) +
                                      MAXALIGN(sizeof(RingHeader)));
}

/* Chunks aim for this size: large enough to amortise per-message costs. */
constexpr Size kChunkTarget = 64 * 1024;

} // namespace influx
