/*
 * identity.hpp — who a write is made as, and who runs the table's own code.
 *
 * Vocabulary:
 *   writer   the role a write is made for and checked as: influx.role in a worker, the
 *            calling user in influx.insert().  Its privileges are checked as INSERT checks
 *            them (schema USAGE, INSERT on the table or on each column set), and row-level
 *            security policies are chosen for it.
 *   owner    the table's owner.  Its code — triggers, column defaults, CHECK and domain
 *            constraints, index and partition-key expressions, policy expressions, the
 *            input functions of its column types — runs while rows are written.
 *   acting   the user that code runs as: the writer when the owner already holds every
 *            privilege of the writer (the owner is the writer, a superuser, or a member of
 *            the writer), else the owner.  An owner can therefore never act with rights it
 *            does not already have; this is the rule PostgreSQL 16 applies to logical
 *            replication (the apply worker acts as the table owner unless run_as_owner).
 *
 * Whoever acts, the table's code runs as a security-restricted operation (no SET ROLE, no
 * SET SESSION AUTHORIZATION, no temporary objects that would outlive it), with its setting
 * changes undone afterwards and search_path = pg_catalog, pg_temp — what VACUUM, ANALYZE,
 * CREATE INDEX and REFRESH MATERIALIZED VIEW do for index expressions.  docs/security.md
 * has the threat table.
 *
 * Include after postgres.h.
 */
#pragma once

extern "C" {
#include "utils/relcache.h"
}

namespace influx
{

/* The user a table's code runs as when `writer` writes into `rel` (see above). */
Oid ActingUser(Relation rel, Oid writer);

/*
 * Why `writer` may not write into `rel`, or NULL.  Checks INSERT on the table or on at
 * least one column (the columns a row sets are checked per row: ColumnsWritable), and
 * refuses what cannot be made safe: an owner who does not hold the writer's privileges and
 * has deferrable constraint triggers (they would fire at commit, as the writer).
 */
const char *IdentityRefusal(Relation rel, Oid writer);

/*
 * NULL if `writer` holds INSERT on the whole table; else a palloc'd array with, per
 * column (attnum - 1), whether the writer may set it.
 */
bool *ColumnsWritable(Relation rel, Oid writer);

/* Why `writer` may not use schema `nspid` (USAGE, as INSERT needs it), or NULL. */
const char *SchemaRefusal(Oid nspid, Oid writer);

/*
 * Why a role may not be influx.role, or NULL: it is a superuser or bypasses row-level
 * security while influx.allow_superuser is off.  The listener asks with the catalog
 * row it read; a worker asks about itself before each flush.
 */
const char *WriterRoleProblem(bool superuser, bool bypassrls);

/*
 * The state switched by BeginActing: restored by EndActing, or by the (sub)transaction
 * abort when an error ends the write.
 */
struct Acting {
    Oid saved_user;
    int saved_context;
    int guc_level;
};

/* Runs what follows as `user`, security-restricted, with a safe search_path. */
void BeginActing(Acting *acting, Oid user);
void EndActing(const Acting *acting);

} // namespace influx
