/*
 * citus.cpp — see citus.hpp.
 *
 * The catalog is read directly (its first column, logicalrelid, is the table's OID), with no
 * dependency on Citus' headers or library: Citus' C internals are no API (their signatures
 * change between releases), its catalog table is (citus_tables reads it the same way).
 */
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"
}

#include <algorithm>
#include <initializer_list>

#include "core/compat.hpp"
#include "ingest/citus.hpp"

namespace influx
{

namespace
{

/* Whether pg_dist_partition has a row for `relid` (an index-less scan: the table is small). */
bool Distributed(Relation catalog, Oid relid)
{
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, nullptr, 1, &key);
    bool found = HeapTupleIsValid(systable_getnext(scan));
    systable_endscan(scan);
    return found;
}

} // namespace

bool CitusInstalled(void)
{
    return OidIsValid(get_extension_oid("citus", true));
}

bool IsCitusTable(Relation rel)
{
    if (!CitusInstalled())
        return false;
    Oid catalog_relid = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
    if (!OidIsValid(catalog_relid))
        return false;
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    bool citus = Distributed(catalog, RelationGetRelid(rel));
    if (!citus && rel->rd_rel->relispartition) {
        List *ancestors = get_partition_ancestors(RelationGetRelid(rel));
        ListCell *lc;
        foreach (lc, ancestors)
            citus = citus || Distributed(catalog, lfirst_oid(lc));
        list_free(ancestors);
    }
    table_close(catalog, AccessShareLock);
    return citus;
}

namespace
{

/* Whether a setting holds its built-in default: nobody set it (server file, role, ...). */
bool SettingIsDefault(const char *name)
{
    int n = 0;
    struct config_generic **vars = InfluxGucVariables(&n);
    for (int i = 0; i < n; i++)
        if (pg_strcasecmp(vars[i]->name, name) == 0)
            return vars[i]->source == PGC_S_DEFAULT;
    return false;
}

} // namespace

void SetCitusSessionDefaults(void)
{
    /* An administrator's own value is kept. */
    if (SettingIsDefault("citus.multi_shard_modify_mode"))
        (void) set_config_option("citus.multi_shard_modify_mode", "sequential", PGC_USERSET,
                                 PGC_S_SESSION, GUC_ACTION_SET, true, WARNING, false);

    if (!SettingIsDefault("citus.max_cached_conns_per_worker"))
        return;
    /* GetConfigOption answers integers in one static buffer: one value at a time. */
    const char *cached = GetConfigOption("citus.max_cached_conns_per_worker", true, false);
    if (cached == nullptr || strcmp(cached, "1") != 0)
        return;
    const char *pool = GetConfigOption("citus.max_adaptive_executor_pool_size", true, false);
    if (pool == nullptr)
        return;
    char value[32];
    strlcpy(value, pool, sizeof(value));
    (void) set_config_option("citus.max_cached_conns_per_worker", value, PGC_USERSET, PGC_S_SESSION,
                             GUC_ACTION_SET, true, WARNING, false);
}

namespace
{

/*
 * Citus' catalogs and their columns are read by name (their column order has changed
 * between releases); the lock tags below are those of Citus' resource_lock.h, which every
 * Citus release since 9 uses.
 */
Oid CitusCatalog(const char *name)
{
    return get_relname_relid(name, PG_CATALOG_NAMESPACE);
}

/*
 * A Citus catalog and the attribute numbers of its columns `names` (in order, into `atts`):
 * its OID, or InvalidOid when it or one of the columns does not exist.
 */
Oid CatalogColumns(const char *catalog, std::initializer_list<const char *> names, AttrNumber *atts)
{
    Oid relid = CitusCatalog(catalog);
    int i = 0;
    for (const char *name : names) {
        atts[i] = OidIsValid(relid) ? get_attnum(relid, name) : InvalidAttrNumber;
        if (atts[i++] == InvalidAttrNumber)
            return InvalidOid;
    }
    return relid;
}

/* The values of columns `atts` of a catalog row; false when one of them is NULL. */
bool RowValues(HeapTuple tuple, TupleDesc desc, const AttrNumber *atts, int n, Datum *values)
{
    for (int i = 0; i < n; i++) {
        bool isnull;
        values[i] = heap_getattr(tuple, atts[i], desc, &isnull);
        if (isnull)
            return false;
    }
    return true;
}

/* Advisory lock classes of Citus' shard distribution metadata (resource_lock.h). */
constexpr uint16 kLockClassShardMetadata = 4;
constexpr uint16 kLockClassColocatedShardsMetadata = 8;

/* What the pg_dist_partition row of a table says, for a hash-distributed table. */
struct Distribution {
    char method;       /* 'h': hash */
    char repmodel;     /* 's': one placement per shard (streaming replication, if any) */
    uint32 colocation; /* 0: none */
    AttrNumber column;
    Oid type;
    Oid collation;
};

bool ReadDistribution(Oid relid, Distribution *out)
{
    AttrNumber atts[4];
    Oid catalog_relid = CatalogColumns("pg_dist_partition",
                                       {"partmethod", "partkey", "colocationid", "repmodel"}, atts);
    if (!OidIsValid(catalog_relid))
        return false;
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    Datum v[4];
    bool ok = false;
    if (HeapTupleIsValid(tuple) && RowValues(tuple, RelationGetDescr(catalog), atts, 4, v)) {
        out->method = DatumGetChar(v[0]);
        out->colocation = DatumGetUInt32(v[2]);
        out->repmodel = DatumGetChar(v[3]);
        /* The distribution column, as Citus keeps it: a Var written by nodeToString. */
        Node *node = out->method == 'h'
                         ? static_cast<Node *>(stringToNode(TextDatumGetCString(v[1])))
                         : nullptr;
        if (node != nullptr && IsA(node, Var)) {
            Var *var = reinterpret_cast<Var *>(node);
            out->column = var->varattno;
            out->type = var->vartype;
            out->collation = var->varcollid;
            ok = true;
        }
    }
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    return ok;
}

/* This node's group in the cluster (pg_dist_local_group), -1 when it has none. */
int32 LocalGroup(void)
{
    AttrNumber att;
    Oid catalog_relid = CatalogColumns("pg_dist_local_group", {"groupid"}, &att);
    if (!OidIsValid(catalog_relid))
        return -1;
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, nullptr, 0, nullptr);
    HeapTuple tuple = systable_getnext(scan);
    Datum v;
    int32 group = -1;
    if (HeapTupleIsValid(tuple) && RowValues(tuple, RelationGetDescr(catalog), &att, 1, &v))
        group = DatumGetInt32(v);
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    return group;
}

/*
 * Whether this node's row in pg_dist_node says it is active with its metadata in sync: a
 * worker node whose metadata is behind may not know yet that a shard moved away.
 */
bool LocalNodeInSync(int32 group)
{
    AttrNumber atts[3];
    Oid catalog_relid =
        CatalogColumns("pg_dist_node", {"groupid", "isactive", "metadatasynced"}, atts);
    if (!OidIsValid(catalog_relid))
        return false;
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, atts[0], BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group));
    SysScanDesc scan = systable_beginscan(catalog, InvalidOid, false, nullptr, 1, &key);
    bool in_sync = false;
    HeapTuple tuple;
    Datum v[3];
    while (HeapTupleIsValid(tuple = systable_getnext(scan)))
        in_sync = in_sync || (RowValues(tuple, RelationGetDescr(catalog), atts, 3, v) &&
                              DatumGetBool(v[1]) && DatumGetBool(v[2]));
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    return in_sync;
}

/* A hash range bound as pg_dist_shard keeps it (text); false if it is not an int32. */
bool RangeBound(Datum bound, int32 *out)
{
    char *s = TextDatumGetCString(bound);
    char *end = nullptr;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool ok = errno == 0 && end != s && *end == '\0' && v >= PG_INT32_MIN && v <= PG_INT32_MAX;
    *out = static_cast<int32>(v);
    pfree(s);
    return ok;
}

/* The table's shards, sorted by range (as Citus numbers them for its locks). */
bool ReadShards(Oid relid, int *nshards, CitusShard **shards)
{
    AttrNumber atts[3];
    Oid catalog_relid =
        CatalogColumns("pg_dist_shard", {"shardid", "shardminvalue", "shardmaxvalue"}, atts);
    if (!OidIsValid(catalog_relid))
        return false;
    Oid index = CitusCatalog("pg_dist_shard_logical_relid_index");
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    TupleDesc desc = RelationGetDescr(catalog);
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(catalog, index, OidIsValid(index), nullptr, 1, &key);
    int n = 0, capacity = 16;
    auto *out = static_cast<CitusShard *>(palloc(sizeof(CitusShard) * capacity));
    bool ok = true;
    HeapTuple tuple;
    Datum v[3];
    while (ok && HeapTupleIsValid(tuple = systable_getnext(scan))) {
        if (!RowValues(tuple, desc, atts, 3, v)) {
            ok = false;
            break;
        }
        if (n == capacity) {
            capacity *= 2;
            out = static_cast<CitusShard *>(repalloc(out, sizeof(CitusShard) * capacity));
        }
        CitusShard *shard = &out[n++];
        shard->id = DatumGetInt64(v[0]);
        shard->local_relid = InvalidOid;
        ok = RangeBound(v[1], &shard->min) && RangeBound(v[2], &shard->max) &&
             shard->min <= shard->max;
    }
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    std::sort(out, out + n, [](const CitusShard &a, const CitusShard &b) { return a.min < b.min; });
    for (int i = 1; i < n && ok; i++)
        ok = out[i - 1].max < out[i].min; /* ranges do not overlap */
    *nshards = n;
    *shards = out;
    return ok && n > 0;
}

/*
 * Finds which shards are placed on this node (group `group`) and their relations there.
 * False when a shard has more or fewer than one placement, or a local one whose relation is
 * missing or not named as Citus names it.
 */
bool ReadPlacements(Relation rel, int32 group, CitusShard *shards, int nshards, int *nlocal)
{
    AttrNumber atts[2];
    Oid catalog_relid = CatalogColumns("pg_dist_placement", {"shardid", "groupid"}, atts);
    if (!OidIsValid(catalog_relid))
        return false;
    const AttrNumber shard_att = atts[0], group_att = atts[1];
    Oid index = CitusCatalog("pg_dist_placement_shardid_index");
    Relation catalog = table_open(catalog_relid, AccessShareLock);
    TupleDesc desc = RelationGetDescr(catalog);
    bool ok = true;
    *nlocal = 0;
    for (int i = 0; i < nshards && ok; i++) {
        ScanKeyData key;
        ScanKeyInit(&key, shard_att, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(shards[i].id));
        SysScanDesc scan = systable_beginscan(catalog, index, OidIsValid(index), nullptr, 1, &key);
        int placements = 0;
        bool local = false;
        HeapTuple tuple;
        while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
            bool isnull;
            Datum g = heap_getattr(tuple, group_att, desc, &isnull);
            placements++;
            local = local || (!isnull && DatumGetInt32(g) == group);
        }
        systable_endscan(scan);
        ok = placements == 1;
        if (!ok || !local)
            continue;
        /* Citus' name of a shard: the table's name, '_', the shard id (when that fits). */
        char name[NAMEDATALEN * 2];
        int len = pg_snprintf(name, sizeof(name), "%s_" INT64_FORMAT, RelationGetRelationName(rel),
                              shards[i].id);
        shards[i].local_relid =
            len < NAMEDATALEN ? get_relname_relid(name, RelationGetNamespace(rel)) : InvalidOid;
        ok = OidIsValid(shards[i].local_relid);
        (*nlocal)++;
    }
    table_close(catalog, AccessShareLock);
    return ok;
}

/* Reads the shards of a table and where they are placed. */
bool ReadShardMap(Relation rel, int32 group, int *nshards, CitusShard **shards, int *nlocal)
{
    return ReadShards(RelationGetRelid(rel), nshards, shards) &&
           ReadPlacements(rel, group, *shards, *nshards, nlocal);
}

} // namespace

bool CitusLocalShards(Relation rel, CitusShardMap *map)
{
    Distribution dist;
    if (rel->rd_rel->relkind != RELKIND_RELATION || !CitusInstalled() ||
        !ReadDistribution(RelationGetRelid(rel), &dist) || dist.method != 'h' ||
        dist.repmodel != 's' || dist.column <= 0 ||
        dist.column > RelationGetNumberOfAttributes(rel))
        return false;
    Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), dist.column - 1);
    if (att->attisdropped || att->atttypid != dist.type)
        return false;
    int32 group = LocalGroup();
    if (group < 0 || !LocalNodeInSync(group))
        return false;
    int nshards = 0, nlocal = 0;
    CitusShard *shards = nullptr;
    if (!ReadShardMap(rel, group, &nshards, &shards, &nlocal) || nlocal == 0)
        return false;

    /*
     * As Citus' executor does before it writes a shard (AcquireMetadataLocks): a share lock
     * on the shard's distribution metadata, which a shard move, split or rebalance takes
     * exclusively before it switches the shard's placement.  Then the shards are read again
     * with a new catalog snapshot: a placement switched before the lock was granted is seen.
     */
    /* In the order of shard ids, as Citus takes them (LockShardListMetadata). */
    int *order = static_cast<int *>(palloc(sizeof(int) * nshards));
    for (int k = 0; k < nshards; k++)
        order[k] = k;
    std::sort(order, order + nshards,
              [shards](int a, int b) { return shards[a].id < shards[b].id; });
    for (int k = 0; k < nshards; k++) {
        int i = order[k];
        if (!OidIsValid(shards[i].local_relid))
            continue;
        LOCKTAG tag;
        if (dist.colocation == 0)
            SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(shards[i].id >> 32),
                                 static_cast<uint32>(shards[i].id), kLockClassShardMetadata);
        else
            SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(i), dist.colocation,
                                 kLockClassColocatedShardsMetadata);
        (void) LockAcquire(&tag, ShareLock, false, false);
    }
    InvalidateCatalogSnapshot();
    int nagain = 0, nlocal_again = 0;
    CitusShard *again = nullptr;
    if (!ReadShardMap(rel, group, &nagain, &again, &nlocal_again) || nagain != nshards)
        return false;
    for (int i = 0; i < nshards; i++)
        if (again[i].id != shards[i].id || again[i].min != shards[i].min ||
            again[i].max != shards[i].max || again[i].local_relid != shards[i].local_relid)
            return false;
    pfree(again);

    TypeCacheEntry *type = lookup_type_cache(dist.type, TYPECACHE_HASH_PROC_FINFO);
    if (!OidIsValid(type->hash_proc))
        return false;
    fmgr_info_copy(&map->hash, &type->hash_proc_finfo, CurrentMemoryContext);
    map->column = dist.column;
    map->collation = dist.collation;
    map->nshards = nshards;
    map->shards = shards;
    map->nlocal = nlocal;
    return true;
}

int CitusShardOf(const CitusShardMap *map, Datum value)
{
    int32 hash =
        DatumGetInt32(FunctionCall1Coll(const_cast<FmgrInfo *>(&map->hash), map->collation, value));
    int lo = 0, hi = map->nshards - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const CitusShard *s = &map->shards[mid];
        if (hash < s->min)
            hi = mid - 1;
        else if (hash > s->max)
            lo = mid + 1;
        else
            return mid;
    }
    return -1;
}

} // namespace influx
