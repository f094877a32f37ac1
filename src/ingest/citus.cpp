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
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

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

} // namespace influx
