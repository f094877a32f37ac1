/*
 * requests.hpp — what became of each HTTP request's lines in this worker: the tallies
 * behind the outcomes a worker reports to the listener (ipc/ring.hpp RequestOutcome),
 * which answers the request once all of its units are accounted for.
 *
 * Vocabulary: a *request* is what the listener tagged (ipc/chunk.hpp RecordMeta); its
 * *units* are its lines as the workers split them, plus its *head* (one unit, so that a
 * request without lines is reported too).  A *tally* counts one request's units since the
 * worker last published outcomes: units done with, units rejected with the first reason,
 * units handed back (their table was locked: they come again and are counted then).
 *
 * Rows carry the index of their tally (BatchRow.request; 0: not from a request).
 * PostgreSQL-facing (palloc in TopMemoryContext).  Include after postgres.h.
 */
#pragma once

#include "ipc/chunk.hpp"
#include "ipc/ring.hpp"

namespace influx
{

struct RequestTally {
    RecordMeta meta;             /* as the request's records carry it, without kMetaHead */
    uint32 units;                /* head and lines taken in */
    uint32 rejected;             /* of them rejected for a reason about the data */
    uint32 handed_back;          /* of them handed back by the flush attempt about to commit */
    char reason[kOutcomeReason]; /* the first rejection's reason */
};

/* The tally of the request `meta` names (the last one if it has one already): its index. */
uint32 RequestTallyFor(const RecordMeta &meta);

/* The tally at `index` (from 1), or NULL for 0. */
RequestTally *RequestTallyAt(uint32 index);

/* A unit of request `index` was taken in; a rejected one with its reason. */
void RequestUnit(uint32 index);
void RequestRejected(uint32 index, const char *reason);

/* Tallies since the last RequestTalliesClear. */
uint32 RequestTallyCount(void);

/* After the outcomes were published: start again. */
void RequestTalliesClear(void);

/* Fills an outcome from a tally, valid from position `pos`. */
void RequestOutcomeFrom(const RequestTally &t, RingPosition pos, RequestOutcome *out);

} // namespace influx
