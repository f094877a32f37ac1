/*
 * citus.hpp — tables of Citus, PostgreSQL's distributed engine (docs/scale-out.md).
 *
 * On a Citus node, a distributed table, a reference table, a Citus-local table, a
 * single-shard (schema-based) table and every partition of one of them is a *shell*: an
 * ordinary heap that Citus keeps for its catalogs while the rows live in shards.  Citus
 * routes only what passes through its planner, executor or COPY hooks; a table access
 * method call (the bulk path) would write into the shell, where no query ever sees it.
 * Such tables are therefore written by SQL statements only (conflict.hpp: the prepared
 * INSERT ... SELECT over arrays, which Citus runs with its own COPY-to-shards machinery).
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "utils/relcache.h"
}

namespace influx
{

/*
 * Whether `rel` (or a partitioned table it is a partition of) is a Citus table: a row in
 * pg_catalog.pg_dist_partition, looked up when the citus extension exists in this database.
 */
bool IsCitusTable(Relation rel);

/*
 * For an insertion worker, once after it connects, where Citus is loaded: keeps the
 * connections a write to the shards opened, as many per node as one write may open
 * (citus.max_adaptive_executor_pool_size), unless citus.max_cached_conns_per_worker was
 * set by the administrator (any value, 1 included).  Citus closes all but that many at the
 * end of every transaction; each flush would otherwise open (fork, authenticate, set up
 * TLS) most of its shard connections again.  Kept per node, user and database: with
 * influx.http_auth = password, per writing role.
 */
void KeepCitusConnections(void);

} // namespace influx
