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

namespace influx {

constexpr uint64 kRingMagic = 0x696e666c75780001ULL; /* "influx" + layout version */

struct RingHeader {
    uint64 magic;
    uint32 generation;           /* listener generation that created the ring */
    int worker_index;            /* index of the worker the ring feeds */
    Size queue_size;             /* bytes of the shm_mq that follows the header */
    pg_atomic_uint32 stopping;   /* set by the worker when it was asked to exit */
};

/* Passed to the worker in bgw_extra. */
struct WorkerArgs {
    int worker_index;
    uint32 generation;
};

inline Size RingSegmentSize(Size queue_size)
{
    return MAXALIGN(sizeof(RingHeader)) + MAXALIGN(queue_size);
}

inline shm_mq *RingQueue(RingHeader *header)
{
    return reinterpret_cast<shm_mq *>(reinterpret_cast<char *>(header) +
                                      MAXALIGN(sizeof(RingHeader)));
}

/* Chunks aim for this size: large enough to amortise per-message costs. */
constexpr Size kChunkTarget = 64 * 1024;

} // namespace influx
