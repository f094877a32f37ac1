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
 *            it); the owner when the writer holds every privilege of the owner (a superuser
 *            calling influx.insert() on a user's table).  Either way neither gains a right
 *            through the other's code.  When neither holds the other's privileges, the table
 *            is refused: running the code as the writer would give the owner the writer's
 *            rights, running it as the owner would give the writer the owner's.  This is
 *            the rule PostgreSQL 16 applies to logical replication (the apply worker acts
 *            as the table owner, which the subscription owner must be able to SET ROLE to).
 *
 * When the owner acts, its code runs as a security-restricted operation (no SET ROLE, no
 * SET SESSION AUTHORIZATION, no temporary objects or deferred triggers that would outlive
 * it), as VACUUM and CREATE INDEX run index expressions.  Whoever acts, setting changes
 * are undone afterwards and search_path is pg_catalog, pg_temp.  docs/security.md has the
 * threat table.
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
 * The user a table's code runs as when `writer` writes into `rel` (see above); InvalidOid
 * when neither holds the other's privileges (IdentityRefusal then refuses the table).
 */
Oid ActingUser(Relation rel, Oid writer);

/*
 * Why `writer` may not write into `rel`, or NULL.  Checks INSERT on the table or on at
 * least one column (the columns a row sets are checked per row: ColumnsWritable), and
 * refuses what cannot be made equivalent to INSERT or safe: rules ON INSERT, INSERT
 * policies with subqueries, an owner and writer that do not trust each other, and, when
 * the owner acts, deferrable constraints or triggers (they would fire at commit, as the
 * writer) and row-level security (its policies would see the owner as current_user).
 */
const char *IdentityRefusal(Relation rel, Oid writer);

/*
 * NULL if `writer` holds INSERT on the whole table; else a palloc'd array with, per
 * column (attnum - 1), whether the writer may set it.
 */
bool *ColumnsWritable(Relation rel, Oid writer);

/* The same for any privilege (ColumnsWritable is ACL_INSERT): NULL when held on the table. */
bool *ColumnsGranted(Relation rel, Oid writer, AclMode mode);

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

/*
 * Runs what follows as `user` (security-restricted if `restricted`: the owner acting for
 * a writer), with setting changes undone by EndActing and a safe search_path.
 */
void BeginActing(Acting *acting, Oid user, bool restricted);
void EndActing(const Acting *acting);

} // namespace influx
