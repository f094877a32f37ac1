/*
 * router.cpp — chunks from the listener to the workers' rings: pooled buffers, records
 * packed into chunks, chunks kept until their worker is done and requeued when it exits,
 * hand-back of locked tables' lines, backpressure, memory given back (listener_state.hpp).
 */
#include "net/listener_state.hpp"
#include "net/http.hpp"

namespace influx
{
namespace net
{

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
    /* Stamped with the precision the lines were received under (chunk.hpp). */
    uint32 word = PlainRecordWord(reclen, static_cast<uint8>(influx_precision));
    Buffer *c = &L->chunk;
    BufferReserve(c, kRecordHeader + reclen);
    memcpy(c->data + c->len, &word, kRecordHeader);
    memcpy(c->data + c->len + kRecordHeader, data, len);
    c->len += kRecordHeader + len;
    if (add_newline)
        c->data[c->len++] = '\n';
    if (c->len >= kChunkTarget && !L->blocked)
        (void) TryPlaceChunk();
}

/*
 * Appends a request record (chunk.hpp: its meta, then complete lines; an HTTP request's
 * body in pieces) to the chunk being filled; sends the chunk when full.
 */
void EmitRequestRecord(const RecordMeta *meta, const char *data, size_t len)
{
    Buffer *c = &L->chunk;
    BufferReserve(c, RecordBytes(true, len));
    c->len += WriteRecord(c->data + c->len, meta, data, len);
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
                         [&lines](const RecordView &r) { lines += CountLines(r.lines, r.size); });
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
    /* The ring's own size: it may have been made before a reload changed influx.queue_size. */
    return r->sent_bytes < r->queue_size + kSentBeyondQueue;
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

/* Whether a ring that is not being retired has a worker attached to take chunks. */
bool SomeRingTakesNewChunks(void)
{
    for (int i = 0; i < kMaxRings; i++) {
        Ring *r = &L->rings[i];
        if (r->in_use && !r->retiring && !r->detached && !r->failed &&
            (r->ready || shm_mq_get_receiver(RingQueue(r->header)) != nullptr))
            return true;
    }
    return false;
}

/*
 * Reads the outcomes of requests (ring.hpp RequestOutcome) that hold at `done` -- the
 * worker's done position, or for a worker that exited the position its last commit
 * reached -- hands them to the HTTP endpoint, and frees their slots.
 */
void TakeOutcomes(Ring *r, RingPosition done)
{
    RingHeader *h = r->header;
    pg_read_barrier(); /* `done` was read before the log */
    uint64 tail = pg_atomic_read_u64(&h->outcome_tail);
    uint64 head = pg_atomic_read_u64(&h->outcome_head);
    if (tail == head)
        return;
    pg_read_barrier();
    RequestOutcome *log = RingOutcomes(h, r->queue_size);
    uint64 taken = tail;
    for (; taken < head; taken++) {
        RequestOutcome o = log[taken % kOutcomeSlots];
        if (!PositionReached(done.chunks, done.offset, o.valid_chunks, o.valid_offset))
            break; /* not done (yet): the worker may still write it again */
        HttpTakeOutcome(o);
    }
    if (taken != tail) {
        pg_memory_barrier(); /* the entries are read before the worker may reuse them */
        pg_atomic_write_u64(&h->outcome_tail, taken);
    }
}

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
        RingPosition done = DonePosition(r);
        TakeHandback(r, done);
        TakeOutcomes(r, done);
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
        /*
         * A retired ring is let go once its pending chunk is through -- but not while it
         * is the only way out for lines the listener holds: with no other ring taking
         * chunks (replacements that cannot connect), a shutdown must still be able to hand
         * them to the old worker, which drains until it is let go (CanTake).
         */
        bool holding = L->chunk.len > 0 || L->nrequeued > 0 || L->nhanded_back > 0;
        if (r->retiring && !r->pending && !L->stopping && (!holding || SomeRingTakesNewChunks())) {
            shm_mq_detach(r->mqh);
            r->mqh = nullptr;
            r->detached = true;
        }
    }
    RequeueHandedBack(L->stopping);
    if (L->blocked || L->nrequeued > 0)
        (void) TryPlaceChunk();
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
    TakeOutcomes(r, done);
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

} // namespace net
} // namespace influx
