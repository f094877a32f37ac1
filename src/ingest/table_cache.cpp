/*
 * table_cache.cpp — cached table infos and the measurement name map (see table_cache.hpp).
 *
 * Why flags and lazy rebuilds: invalidation callbacks run inside
 * AcceptInvalidationMessages(), which PostgreSQL calls at transaction start, whenever a
 * lock is first acquired, and during catalog cache misses — that is, possibly in the
 * middle of our own lookups.  A callback therefore never frees or looks anything up; it
 * only marks state stale, and the next user rebuilds it.
 */
#include <cstring>

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
}

#include "ingest/citus.hpp"
#include "ingest/conflict.hpp"
#include "ingest/table_cache.hpp"

namespace influx
{

namespace
{

struct InfoEntry {
    Oid relid; /* hash key */
    bool valid;
    TableInfo *info;
    uint64 last_used; /* the batch that last asked for it (TableCacheGet) */
};

/*
 * Table infos a process keeps.  Beyond it, after a batch, the infos used longest ago go,
 * and with them PostgreSQL's own cache entry of their table: the relcache never forgets a
 * relation by itself, and each table a worker wrote costs it about 5 KiB of RssAnon
 * (105-115 MiB after writing 20,000 tables, bench/many_tables.py).  High enough that
 * 20,000 tables written again and again (and the default influx.max_tables, 10,000) never
 * evict: a table evicted and written again is rebuilt, and writes cycling over more tables
 * than the cache holds rebuild every one of them (a third of the speed).  A flush writes at
 * most 4,096 tables (insert.cpp): the infos of the batch are all kept.
 */
constexpr long kMaxCachedInfos = 25000;
constexpr long kCachedInfosAfterEviction = 22500;
uint64 batch_number = 1;

struct NameKey {
    Oid nspid;
    char name[NAMEDATALEN];
};

struct NameEntry {
    NameKey key;
    Oid relid; /* InvalidOid: no such relation (negative entry) */
};

MemoryContext cache_cxt = nullptr;
HTAB *infos = nullptr;
HTAB *names = nullptr;
bool names_stale = false;
List *retired = NIL; /* contexts of replaced infos, freed by TableCacheEndOfBatch */

/* Schema OID cache: the name it was looked up for, and whether a schema change hit it. */
char schema_name[NAMEDATALEN];
Oid schema_oid = InvalidOid;
bool schema_valid = false;
uint64 schema_invalidations = 0; /* tells a lookup that an invalidation came during it */

/*
 * Entries marked stale since the last end of batch (at least: one may have been rebuilt
 * since).  The end of a batch looks for stale entries to drop only when there may be some:
 * a scan of 20,000 entries after every flush cost 2 % of a worker's time.
 */
long stale_entries = 0;

/* Relcache callback: mark one table info (or all, on a cache reset) stale. */
void InvalidateRelation(Datum, Oid relid)
{
    if (infos == nullptr)
        return;
    if (relid == InvalidOid) {
        HASH_SEQ_STATUS seq;
        hash_seq_init(&seq, infos);
        for (auto e = static_cast<InfoEntry *>(hash_seq_search(&seq)); e;
             e = static_cast<InfoEntry *>(hash_seq_search(&seq)))
            e->valid = false;
        stale_entries = hash_get_num_entries(infos);
        return;
    }
    auto e = static_cast<InfoEntry *>(hash_search(infos, &relid, HASH_FIND, nullptr));
    if (e != nullptr && e->valid) {
        e->valid = false;
        stale_entries++;
    }
}

/* Syscache callback (pg_class names, schemas): the name map and schema OID are stale. */
void InvalidateNames(Datum, int, uint32)
{
    names_stale = true;
    schema_valid = false;
    schema_invalidations++;
}

/* Creates (or re-creates, dropping all entries) the name map. */
void CreateNameMap(void)
{
    if (names != nullptr)
        hash_destroy(names);
    HASHCTL ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.keysize = sizeof(NameKey);
    ctl.entrysize = sizeof(NameEntry);
    ctl.hcxt = cache_cxt;
    names =
        hash_create("influx measurement names", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    names_stale = false;
}

/* Sorts a column type into the conversions convert.cpp implements natively. */
ColumnKind Classify(Oid typid, int32 typmod)
{
    switch (typid) {
        case FLOAT8OID:
            return ColumnKind::Float8;
        case FLOAT4OID:
            return ColumnKind::Float4;
        case INT8OID:
            return ColumnKind::Int8;
        case INT4OID:
            return ColumnKind::Int4;
        case INT2OID:
            return ColumnKind::Int2;
        case NUMERICOID:
            /* numeric(p,s) needs the typmod applied: the input function does it. */
            return typmod < 0 ? ColumnKind::Numeric : ColumnKind::Other;
        case BOOLOID:
            return ColumnKind::Bool;
        case TEXTOID:
            return ColumnKind::Text;
        case VARCHAROID:
            return typmod < 0 ? ColumnKind::Text : ColumnKind::Other;
        case JSONBOID:
            return ColumnKind::Jsonb;
        case TIMESTAMPTZOID:
            return ColumnKind::TimestampTz;
        case TIMESTAMPOID:
            return ColumnKind::Timestamp;
        default:
            return ColumnKind::Other;
    }
}

uint32 HashName(const char *name, size_t len)
{
    return hash_bytes(reinterpret_cast<const unsigned char *>(name), static_cast<int>(len));
}

/*
 * Builds the table info of a locked relation from its tuple descriptor.  Catalog access
 * here (type input functions) may process invalidations; the caller marks the entry valid
 * before calling, so one that arrives meanwhile leaves it stale rather than being lost.
 */
TableInfo *BuildInfo(Relation rel)
{
    MemoryContext cxt = AllocSetContextCreate(cache_cxt, "influx table info", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(cxt);

    TupleDesc desc = RelationGetDescr(rel);
    auto info = static_cast<TableInfo *>(palloc0(sizeof(TableInfo)));
    info->relid = RelationGetRelid(rel);
    info->cxt = cxt;
    info->natts = desc->natts;
    info->columns = static_cast<ColumnInfo *>(palloc0(sizeof(ColumnInfo) * Max(desc->natts, 1)));
    info->time_column = info->tags_column = info->fields_column = -1;

    int slots = 8;
    while (slots < desc->natts * 2)
        slots <<= 1;
    info->name_mask = slots - 1;
    info->name_slots = static_cast<int16 *>(palloc(sizeof(int16) * slots));
    for (int i = 0; i < slots; i++)
        info->name_slots[i] = -1;

    info->may_default = static_cast<int16 *>(palloc(sizeof(int16) * Max(desc->natts, 1)));
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        ColumnInfo *col = &info->columns[i];
        col->attnum = att->attnum;
        if (att->attisdropped)
            continue;
        /* What build_column_default may find: the column's, an identity, its type's. */
        if (att->attgenerated == '\0' && (att->atthasdef || att->attidentity != '\0' ||
                                          get_typtype(att->atttypid) == TYPTYPE_DOMAIN ||
                                          get_typdefault(att->atttypid) != nullptr))
            info->may_default[info->nmay_default++] = static_cast<int16>(i);
        const char *name = NameStr(att->attname);
        col->name_len = static_cast<uint8>(strlen(name));
        memcpy(col->name, name, col->name_len + 1);
        col->typid = att->atttypid;
        col->typmod = att->atttypmod;
        col->kind = Classify(att->atttypid, att->atttypmod);
        col->role = ColumnRole::Value;
        col->assignable =
            att->attgenerated == '\0' && att->attidentity != ATTRIBUTE_IDENTITY_ALWAYS;
        if (!col->assignable)
            continue;

        Oid input_fn;
        getTypeInputInfo(att->atttypid, &input_fn, &col->typioparam);
        fmgr_info_cxt(input_fn, &col->input, cxt);

        if (strcmp(name, "_time") == 0) {
            col->role = ColumnRole::Time;
            info->time_column = i;
            info->time_unsupported = col->kind != ColumnKind::TimestampTz &&
                                     col->kind != ColumnKind::Timestamp &&
                                     col->kind != ColumnKind::Int8;
        } else if (strcmp(name, "_tags") == 0 && col->kind == ColumnKind::Jsonb) {
            col->role = ColumnRole::Tags;
            info->tags_column = i;
        } else if (strcmp(name, "_fields") == 0 && col->kind == ColumnKind::Jsonb) {
            col->role = ColumnRole::Fields;
            info->fields_column = i;
        }

        /* Every assignable column is findable by name; the caller checks the role. */
        int slot = HashName(col->name, col->name_len) & info->name_mask;
        while (info->name_slots[slot] >= 0)
            slot = (slot + 1) & info->name_mask;
        info->name_slots[slot] = static_cast<int16>(i);
    }

    MemoryContextSwitchTo(old);
    LoadPointKey(rel, info);
    info->distributed = IsCitusTable(rel);
    return info;
}

} // namespace

void TableCacheInit(void)
{
    if (cache_cxt != nullptr)
        return;
    cache_cxt =
        AllocSetContextCreate(TopMemoryContext, "influx table cache", ALLOCSET_DEFAULT_SIZES);
    HASHCTL ctl;
    memset(&ctl, 0, sizeof(ctl));
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(InfoEntry);
    ctl.hcxt = cache_cxt;
    infos = hash_create("influx table infos", 128, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    CreateNameMap();

    /* Callback slots are few and cannot be released: once per process. */
    CacheRegisterRelcacheCallback(InvalidateRelation, (Datum) 0);
    CacheRegisterSyscacheCallback(RELNAMENSP, InvalidateNames, (Datum) 0);
    CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidateNames, (Datum) 0);
}

Oid TableCacheSchemaOid(const char *schema)
{
    if (!schema_valid || strncmp(schema, schema_name, NAMEDATALEN) != 0) {
        /*
         * Nothing is cached while the lookup runs, so an ERROR in it leaves no stale
         * answer; an invalidation during it leaves the answer uncached.
         */
        schema_valid = false;
        uint64 before = schema_invalidations;
        Oid oid = get_namespace_oid(schema, true);
        strlcpy(schema_name, schema, NAMEDATALEN);
        schema_oid = oid;
        schema_valid = before == schema_invalidations;
        return oid;
    }
    return schema_oid;
}

Oid TableCacheLookup(Oid nspid, const char *name)
{
    if (names_stale)
        CreateNameMap();

    NameKey key;
    memset(&key, 0, sizeof(key));
    key.nspid = nspid;
    strlcpy(key.name, name, NAMEDATALEN);

    auto e = static_cast<NameEntry *>(hash_search(names, &key, HASH_FIND, nullptr));
    if (e != nullptr)
        return e->relid;

    /*
     * The lookup may process invalidations (and mark the map stale); the answer is still
     * the current one, and a stale map is dropped on the next call.
     */
    Oid relid = get_relname_relid(name, nspid);
    if (names_stale)
        return relid;
    e = static_cast<NameEntry *>(hash_search(names, &key, HASH_ENTER, nullptr));
    e->relid = relid;
    return relid;
}

TableInfo *TableCacheGet(Relation rel)
{
    Oid relid = RelationGetRelid(rel);
    bool found;
    auto e = static_cast<InfoEntry *>(hash_search(infos, &relid, HASH_ENTER, &found));
    /* No info on a valid entry: its last build raised an ERROR; build it again. */
    e->last_used = batch_number;
    if (found && e->valid && e->info != nullptr)
        return e->info;
    if (found && e->info != nullptr) {
        /* Still possibly referenced by this batch: free it after the batch. */
        MemoryContext old = MemoryContextSwitchTo(cache_cxt);
        retired = lappend(retired, e->info->cxt);
        MemoryContextSwitchTo(old);
    }
    e->info = nullptr;
    e->valid = true;
    TableInfo *info = BuildInfo(rel);
    /* BuildInfo may have processed invalidations that added entries: look up again. */
    e = static_cast<InfoEntry *>(hash_search(infos, &relid, HASH_FIND, nullptr));
    e->info = info;
    e->last_used = batch_number;
    return info;
}

const TableInfo *TableCachePeek(const char *schema, const char *name)
{
    if (infos == nullptr || names_stale || !schema_valid || !OidIsValid(schema_oid) ||
        strncmp(schema, schema_name, NAMEDATALEN) != 0)
        return nullptr;
    NameKey key;
    memset(&key, 0, sizeof(key));
    key.nspid = schema_oid;
    strlcpy(key.name, name, NAMEDATALEN);
    auto n = static_cast<NameEntry *>(hash_search(names, &key, HASH_FIND, nullptr));
    if (n == nullptr || !OidIsValid(n->relid))
        return nullptr;
    auto e = static_cast<InfoEntry *>(hash_search(infos, &n->relid, HASH_FIND, nullptr));
    return e != nullptr && e->valid ? e->info : nullptr;
}

int TableInfoFindColumn(const TableInfo *info, const char *name, size_t len)
{
    if (len >= NAMEDATALEN)
        return -1;
    int slot = HashName(name, len) & info->name_mask;
    for (;;) {
        int idx = info->name_slots[slot];
        if (idx < 0)
            return -1;
        const ColumnInfo *col = &info->columns[idx];
        if (col->name_len == len && memcmp(col->name, name, len) == 0)
            return idx;
        slot = (slot + 1) & info->name_mask;
    }
}

namespace
{

struct Age {
    uint64 last_used;
    Oid relid;
};

int CompareAge(const void *a, const void *b)
{
    uint64 x = static_cast<const Age *>(a)->last_used, y = static_cast<const Age *>(b)->last_used;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Keeps at most kMaxCachedInfos infos: see there. */
void EvictLeastRecent(void)
{
    long n = hash_get_num_entries(infos);
    if (n <= kMaxCachedInfos)
        return;
    Age *ages = static_cast<Age *>(MemoryContextAlloc(cache_cxt, sizeof(Age) * n));
    long k = 0;
    HASH_SEQ_STATUS seq;
    hash_seq_init(&seq, infos);
    for (auto e = static_cast<InfoEntry *>(hash_seq_search(&seq)); e;
         e = static_cast<InfoEntry *>(hash_seq_search(&seq)))
        ages[k++] = Age{e->last_used, e->relid};
    qsort(ages, k, sizeof(Age), CompareAge);
    for (long i = 0; i < k - kCachedInfosAfterEviction; i++) {
        if (ages[i].last_used >= batch_number)
            break; /* used by this batch: never */
        auto e = static_cast<InfoEntry *>(hash_search(infos, &ages[i].relid, HASH_FIND, nullptr));
        if (e->info != nullptr)
            MemoryContextDelete(e->info->cxt);
        hash_search(infos, &ages[i].relid, HASH_REMOVE, nullptr);
        /* Not open (refcount 0): PostgreSQL frees its entry; open, it only rebuilds it. */
        RelationCacheInvalidateEntry(ages[i].relid);
    }
    pfree(ages);
}

} // namespace

void TableCacheEndOfBatch(void)
{
    if (cache_cxt == nullptr)
        return;
    ListCell *lc;
    foreach (lc, retired)
        MemoryContextDelete(static_cast<MemoryContext>(lfirst(lc)));
    list_free(retired);
    retired = NIL;

    /* Stale entries of tables not used since (e.g. dropped ones) go now. */
    if (stale_entries > 0) {
        HASH_SEQ_STATUS seq;
        hash_seq_init(&seq, infos);
        for (auto e = static_cast<InfoEntry *>(hash_seq_search(&seq)); e;
             e = static_cast<InfoEntry *>(hash_seq_search(&seq))) {
            if (e->valid)
                continue;
            if (e->info != nullptr)
                MemoryContextDelete(e->info->cxt);
            hash_search(infos, &e->relid, HASH_REMOVE, nullptr);
        }
        stale_entries = 0;
    }
    EvictLeastRecent();
    batch_number++;
}

} // namespace influx
