/*
 * requests.cpp — tallies of what became of HTTP requests' lines (see requests.hpp).
 */
extern "C" {
#include "postgres.h"

#include "utils/memutils.h"
}

#include "ingest/requests.hpp"

namespace influx
{

namespace
{

RequestTally *tallies = nullptr; /* [0] unused: index 0 means "no request" */
uint32 ntallies = 1;
uint32 capacity = 0;

} // namespace

uint32 RequestTallyFor(const RecordMeta &meta)
{
    if (ntallies > 1 && tallies[ntallies - 1].meta.tag == meta.tag)
        return ntallies - 1;
    if (ntallies == capacity || tallies == nullptr) {
        uint32 cap = Max(capacity * 2, 64u);
        tallies = tallies == nullptr
                      ? static_cast<RequestTally *>(
                            MemoryContextAlloc(TopMemoryContext, cap * sizeof(RequestTally)))
                      : static_cast<RequestTally *>(repalloc(tallies, cap * sizeof(RequestTally)));
        capacity = cap;
    }
    RequestTally *t = &tallies[ntallies];
    memset(t, 0, sizeof(*t));
    t->meta = meta;
    t->meta.flags &= ~kMetaHead;
    return ntallies++;
}

RequestTally *RequestTallyAt(uint32 index)
{
    return index == 0 || index >= ntallies ? nullptr : &tallies[index];
}

void RequestUnit(uint32 index)
{
    if (index != 0 && index < ntallies)
        tallies[index].units++;
}

void RequestRejected(uint32 index, const char *reason)
{
    if (index == 0 || index >= ntallies)
        return;
    RequestTally *t = &tallies[index];
    if (t->rejected++ == 0)
        strlcpy(t->reason, reason, sizeof(t->reason));
}

uint32 RequestTallyCount(void)
{
    return ntallies - 1;
}

void RequestTalliesClear(void)
{
    ntallies = 1;
}

void RequestOutcomeFrom(const RequestTally &t, RingPosition pos, RequestOutcome *out)
{
    out->tag = t.meta.tag;
    out->valid_chunks = pos.chunks;
    out->valid_offset = pos.offset;
    out->units = t.units - t.handed_back;
    out->rejected = t.rejected;
    strlcpy(out->reason, t.reason, sizeof(out->reason));
}

} // namespace influx
