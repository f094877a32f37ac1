/*
 * insert.hpp — the insertion worker's write path: lines in, committed rows out.
 *
 * Vocabulary: a *chunk* is a block of complete lines received from the worker's ring; a
 * *batch* is the set of rows collected from chunks until influx.batch_size rows or
 * influx.flush_interval have been reached, then inserted (table_multi_insert per target
 * table) and committed.
 *
 * Called only from the insertion worker's main loop (worker.cpp), outside any transaction.
 * Data problems never escape these functions: a bad line or row is counted in the worker's
 * ProcessSlot, logged (rate-limited), and the rest of the batch lands.
 */
#pragma once

#include <cstddef>

#include "shared_state.hpp"

namespace influx {

/* Once per worker process, after connecting: memory contexts, invalidation callbacks. */
void InsertInit(ProcessSlot *slot);

/*
 * Parses a chunk of complete lines into the pending batch.  The bytes are copied, so the
 * caller may reuse its buffer at once.  Returns true when the batch has reached
 * influx.batch_size rows and should be flushed now.
 */
bool InsertAddChunk(const char *data, size_t size);

/* Rows waiting in the pending batch. */
size_t InsertPendingRows(void);

/* Inserts and commits the pending batch; afterwards the batch is empty. */
void InsertFlush(void);

} // namespace influx
