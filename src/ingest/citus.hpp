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
#include "fmgr.h"
#include "utils/relcache.h"
}

namespace influx
{

/*
 * Whether `rel` (or a partitioned table it is a partition of) is a Citus table: a row in
 * pg_catalog.pg_dist_partition, looked up when the citus extension exists in this database.
 */
bool IsCitusTable(Relation rel);

/* Whether the citus extension exists in this database (needs a transaction). */
bool CitusInstalled(void);

/*
 * For an insertion worker, once after it connects, where Citus is loaded, two settings of
 * its own session, each unless the administrator set it (any value is kept):
 *   citus.multi_shard_modify_mode = sequential: a write goes to each node over one
 *     connection, shard after shard, instead of one connection per shard.  Every
 *     connection of a write is a participant of the flush's two-phase commit (a PREPARE
 *     and a COMMIT PREPARED, each flushing WAL on its node): with 8 shards over 2 nodes, 8
 *     participants per flush instead of 2.  The insertion workers write in parallel
 *     already; within a flush, the parallel shard writes cost more than they gained.
 *   citus.max_cached_conns_per_worker = citus.max_adaptive_executor_pool_size: keeps the
 *     connections a write opened (Citus closes all but one per node at the end of every
 *     transaction); each flush would otherwise open (fork, authenticate, set up TLS) them
 *     again.  Kept per node, user and database: with influx.http_auth = password, per
 *     writing role.
 */
void SetCitusSessionDefaults(void);

/*
 * The shards of a hash-distributed table, for writing the rows of shards placed on this
 * node straight into their shard relations (docs/scale-out.md, "Shards on this node").
 */
struct CitusShard {
    int32 min, max;  /* the range of hash values it holds */
    int64 id;        /* pg_dist_shard.shardid */
    Oid local_relid; /* its relation on this node, InvalidOid when placed elsewhere */
};

struct CitusShardMap {
    AttrNumber column; /* the distribution column (1-based, in the distributed table) */
    Oid collation;     /* ... its collation, which the hash function takes */
    FmgrInfo hash;     /* the type's standard hash function, as Citus hashes it */
    int nshards;
    CitusShard *shards; /* sorted by range */
    int nlocal;         /* shards placed on this node */
};

/*
 * For a hash-distributed table whose shards each have one placement (no Citus
 * replication), with at least one of them placed on this node: fills `map` (in
 * CurrentMemoryContext), after taking, as Citus' own writes do, a share lock on the shards'
 * distribution metadata -- until the transaction ends, no shard move, split or rebalance
 * can take a shard away from this node.  False for any other table, or when the table's
 * shards changed while the locks were taken (then the statement path writes it).
 * Needs a transaction.
 */
bool CitusLocalShards(Relation rel, CitusShardMap *map);

/* The index in map->shards of the shard holding a (non-null) distribution value. */
int CitusShardOf(const CitusShardMap *map, Datum value);

} // namespace influx
