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

constexpr uint64 kRingMagic = 0x696e666c75780003ULL; /* "influx" + layout version */

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
    /*
     * Outcomes (RequestOutcome) of request records, a log in the ring's segment: entries
     * [outcome_tail, outcome_head) are unread, slot n % kOutcomeSlots.  The worker writes
     * a flush's entries after outcome_head and publishes the new head before the commit
     * (with commit_*); each entry holds the position it is valid at, as hand-back does.
     * The listener reads entries in order while their position is done (or committed,
     * for a worker that died) and moves outcome_tail; a worker that finds the log full
     * waits for it.  Entries of a flush that is rolled back are written again.
     */
    pg_atomic_uint64 outcome_head;
    pg_atomic_uint64 outcome_tail;
};

/*
 * What became of some of one request's units (its head and its lines) in one flush:
 * `units` were done with -- committed, rejected or skipped (comments, blank lines) -- and
 * `rejected` of them were rejected for a reason about the data, the first of which is
 * `reason`.  Units handed back are not in it: they come again, and are reported then.
 */
constexpr size_t kOutcomeReason = 200;
struct RequestOutcome {
    uint64 tag;
    uint64 valid_chunks; /* RingPosition from which on the entry holds */
    uint64 valid_offset;
    uint32 units;
    uint32 rejected;
    char reason[kOutcomeReason];
};
constexpr uint64 kOutcomeSlots = 4096;

/* Passed to the worker in bgw_extra. */
struct WorkerArgs {
    int worker_index;
    Size queue_size; /* of its ring: where the handback area starts */
};

/* Room for handed-back lines, after the queue in the ring's segment. */
constexpr Size kHandbackBytes = 2 * 1024 * 1024;

inline Size RingSegmentSize(Size queue_size)
{
    return MAXALIGN(sizeof(RingHeader)) + MAXALIGN(queue_size) + kHandbackBytes +
           kOutcomeSlots * sizeof(RequestOutcome);
}

/* The handback area of a ring whose queue has `queue_size` bytes: records (chunk.hpp). */
inline char *RingHandback(RingHeader *header, Size queue_size)
{
    return reinterpret_cast<char *>(header) + MAXALIGN(sizeof(RingHeader)) + MAXALIGN(queue_size);
}

/* The outcome log of a ring whose queue has `queue_size` bytes: kOutcomeSlots entries. */
inline RequestOutcome *RingOutcomes(RingHeader *header, Size queue_size)
{
    return reinterpret_cast<RequestOutcome *>(RingHandback(header, queue_size) + kHandbackBytes);
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
