/*
 * batch.cpp — storing parsed rows until the next flush, grouped by measurement.
 *
 * See batch.hpp for the vocabulary.  Everything is allocated in the batch's own memory
 * context, so a flush frees a whole batch with one MemoryContextReset.
 */
#include <cstring>

extern "C" {
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"
}

#include "ingest/batch.hpp"

namespace influx
{

namespace
{

constexpr int kInitialBuckets = 64;

/* Allocates the (empty) bucket array and group list after a reset. */
void AllocateIndex(Batch *batch)
{
    batch->nbuckets = kInitialBuckets;
    batch->buckets = static_cast<BatchGroup **>(
        MemoryContextAllocZero(batch->cxt, sizeof(BatchGroup *) * batch->nbuckets));
    batch->groups_capacity = 16;
    batch->groups = static_cast<BatchGroup **>(
        MemoryContextAlloc(batch->cxt, sizeof(BatchGroup *) * batch->groups_capacity));
    batch->ngroups = 0;
    batch->last = nullptr;
    batch->nrows = 0;
}

/* Doubles the bucket array when groups outnumber buckets (many measurements per batch). */
void GrowBuckets(Batch *batch)
{
    int n = batch->nbuckets * 2;
    auto buckets =
        static_cast<BatchGroup **>(MemoryContextAllocZero(batch->cxt, sizeof(BatchGroup *) * n));
    for (int i = 0; i < batch->ngroups; i++) {
        BatchGroup *g = batch->groups[i];
        int b = g->hash & (n - 1);
        g->next_in_bucket = buckets[b];
        buckets[b] = g;
    }
    pfree(batch->buckets);
    batch->buckets = buckets;
    batch->nbuckets = n;
}

/* The group of a measurement, or NULL; `hash` gets the name's hash. */
BatchGroup *LookUp(Batch *batch, const char *name, size_t len, uint32_t *hash)
{
    BatchGroup *last = batch->last;
    *hash = 0;
    /* Names hold no NUL (ParseOne refuses those): equal bytes and a NUL after are equality. */
    if (last != nullptr && last->measurement[len] == '\0' &&
        memcmp(last->measurement, name, len) == 0)
        return last;

    *hash = hash_bytes(reinterpret_cast<const unsigned char *>(name), static_cast<int>(len));
    for (BatchGroup *g = batch->buckets[*hash & (batch->nbuckets - 1)]; g; g = g->next_in_bucket) {
        if (g->hash == *hash && strncmp(g->measurement, name, len) == 0 &&
            g->measurement[len] == '\0')
            return batch->last = g;
    }
    return nullptr;
}

} // namespace

BatchGroup *BatchLookupGroup(Batch *batch, const char *name, size_t len)
{
    uint32_t hash;
    return LookUp(batch, name, len, &hash);
}

BatchGroup *BatchFindGroup(Batch *batch, const char *name, size_t len)
{
    uint32_t hash;
    BatchGroup *found = LookUp(batch, name, len, &hash);
    if (found != nullptr)
        return found;

    auto g = static_cast<BatchGroup *>(MemoryContextAllocZero(batch->cxt, sizeof(BatchGroup)));
    memcpy(g->measurement, name, len);
    g->measurement[len] = '\0';
    g->hash = hash;
    g->capacity = 64;
    g->rows =
        static_cast<BatchRow *>(MemoryContextAlloc(batch->cxt, sizeof(BatchRow) * g->capacity));
    if (batch->ngroups == batch->groups_capacity) {
        batch->groups_capacity *= 2;
        batch->groups = static_cast<BatchGroup **>(
            repalloc(batch->groups, sizeof(BatchGroup *) * batch->groups_capacity));
    }
    /* Grow before linking `g`: GrowBuckets re-links every group in batch->groups. */
    if (batch->ngroups + 1 > batch->nbuckets)
        GrowBuckets(batch);
    batch->groups[batch->ngroups++] = g;
    int b = hash & (batch->nbuckets - 1);
    g->next_in_bucket = batch->buckets[b];
    batch->buckets[b] = g;
    return batch->last = g;
}

void BatchInit(Batch *batch, MemoryContext parent)
{
    memset(batch, 0, sizeof(*batch));
    batch->cxt = AllocSetContextCreate(parent, "influx batch", ALLOCSET_DEFAULT_SIZES);
    AllocateIndex(batch);
}

void BatchReset(Batch *batch)
{
    MemoryContextReset(batch->cxt);
    AllocateIndex(batch);
}

char *BatchCopyBytes(Batch *batch, const char *data, size_t size)
{
    auto copy = static_cast<char *>(MemoryContextAllocHuge(batch->cxt, size + 1));
    memcpy(copy, data, size);
    copy[size] = '\0';
    return copy;
}

namespace
{

/* A new row at the end of a group, with everything but its content set. */
BatchRow *AppendRow(Batch *batch, BatchGroup *g, int64_t time_ns, const char *line, size_t line_len)
{
    if (g->nrows == g->capacity) {
        g->capacity *= 2;
        g->rows = static_cast<BatchRow *>(repalloc_huge(g->rows, sizeof(BatchRow) * g->capacity));
    }
    BatchRow *row = &g->rows[g->nrows++];
    row->time_ns = time_ns;
    row->line = line;
    row->line_len = static_cast<uint32_t>(line_len);
    row->rejected = false;
    row->request = batch->request;
    row->precision = batch->precision;
    batch->nrows++;
    return row;
}

/* Gives a row copies of a parsed point's tag and field arrays. */
void SetRowArrays(Batch *batch, BatchRow *row, const Point &point)
{
    /* One allocation for both arrays: the parser reuses its own for the next line. */
    size_t tags_size = sizeof(Tag) * point.ntags;
    size_t fields_size = sizeof(Field) * point.nfields;
    char *mem = static_cast<char *>(MemoryContextAlloc(batch->cxt, tags_size + fields_size + 1));
    if (tags_size > 0)
        memcpy(mem, point.tags, tags_size);
    if (fields_size > 0)
        memcpy(mem + tags_size, point.fields, fields_size);
    row->tags = reinterpret_cast<const Tag *>(mem);
    row->fields = reinterpret_cast<const Field *>(mem + tags_size);
    row->ntags = point.ntags;
    row->nfields = point.nfields;
    row->values = nullptr;
    row->nvalues = 0;
}

} // namespace

void BatchAddRow(Batch *batch, BatchGroup *g, const Point &point, int64_t time_ns, const char *line,
                 size_t line_len)
{
    SetRowArrays(batch, AppendRow(batch, g, time_ns, line, line_len), point);
    g->unbuilt++;
}

void BatchAddBuiltRow(Batch *batch, BatchGroup *g, const Datum *values, int nvalues,
                      int64_t time_ns, const char *line, size_t line_len)
{
    BatchRow *row = AppendRow(batch, g, time_ns, line, line_len);
    row->tags = nullptr;
    row->fields = nullptr;
    row->ntags = row->nfields = 0;
    row->values = values;
    row->nvalues = static_cast<uint16_t>(nvalues);
}

} // namespace influx
