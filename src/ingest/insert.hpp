/*
 * insert.hpp — the insertion worker's write path: lines in, committed rows out.
 *
 * Vocabulary: a *record* is a block of complete lines (what one socket read or one
 * datagram produced, ipc/chunk.hpp) taken from a chunk of the worker's ring; a *batch* is
 * the set of rows collected from records until influx.batch_size rows or
 * influx.flush_interval have been reached, then inserted (table_multi_insert per target
 * table) and committed.
 *
 * Called from the insertion worker's main loop (worker.cpp), outside any transaction, and
 * through InsertLines() from influx.insert(), inside its caller's transaction.
 * Data problems never escape these functions: a bad line or row is counted in the worker's
 * ProcessSlot, logged (rate-limited), and the rest of the batch lands.
 */
#pragma once

#include <cstddef>

#include "core/shared_state.hpp"
#include "ipc/chunk.hpp"
#include "protocol/line_protocol.hpp"

namespace influx
{

/*
 * What a worker lends its insert path (worker.cpp).  announce_commit is called with the
 * flush transaction's xid (invalid if it wrote nothing) and the bytes written to the
 * handback area just before each flush commits.  handback is the area (records, chunk.hpp)
 * for the lines of groups whose table another session had locked: they are handed back
 * to the listener instead of holding up the flush.
 */
struct WorkerHooks {
    void (*announce_commit)(TransactionId xid, size_t handback_len);
    char *handback;
    size_t handback_capacity;
    bool (*handback_allowed)(void);     /* false while stopping: nobody may take lines back */
    bool (*handback_writable)(void);    /* false while the last lines are not taken yet */
    void (*handback_rolled_back)(void); /* a flush attempt failed: forget what it wrote */
};

/* Once per worker process, after connecting: memory contexts, invalidation callbacks. */
void InsertInit(ProcessSlot *slot, const WorkerHooks *hooks);

/*
 * Parses a record's lines from byte `from` on into the pending batch, and its request's
 * head if *head is set (then cleared).  The bytes are copied, so the caller may reuse its
 * buffer at once.  Returns the bytes of lines consumed: fewer than asked when the batch
 * reached its cap of tables first (the rest starts with a whole line and must be given
 * again after the flush), and 0 with nothing done when the record is for another database
 * than the batch's rows (flush them first).  *full is set when the batch should be flushed
 * now (influx.batch_size rows, the table or request cap, its memory budget, or the other
 * database).
 */
size_t InsertAddRecord(const RecordView &record, size_t from, bool *head, bool *full);

/* Rows waiting in the pending batch. */
size_t InsertPendingRows(void);

/*
 * Inserts and commits the pending batch; afterwards the batch is empty.  True when every
 * row was committed or rejected for a reason about the data.  False when the worker was
 * asked to stop while the flush kept failing for a transient reason: nothing of the batch
 * was committed, and its lines are for the listener to hand to another worker.
 */
bool InsertFlush(void);

/* influx.insert()'s arguments, NULLs already replaced by the settings they stand for. */
struct InsertOptions {
    Precision precision;
    const char *schema;
    bool create_tables;
    bool add_columns;
};

/*
 * influx.insert() (src/sql/insert.cpp): the same path in the caller's session and
 * transaction, with the caller as the writer.  `data` is text in the database encoding.
 * Problems are WARNINGs; errors that are not about the rows (a cancel, a lock timeout)
 * are raised.  Returns the rows written: inserted, or merged onto an existing point
 * (influx.on_conflict); skipped rows are not counted.
 */
int64 InsertLines(const char *data, size_t size, const InsertOptions *options);

/* Whether the insert path is running in this process (a flush, or influx.insert()). */
bool InsertIsActive(void);

} // namespace influx
