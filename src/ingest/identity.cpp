/*
 * identity.cpp — who a write is made as, and who runs the table's own code (identity.hpp).
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "access/table.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "rewrite/rowsecurity.h"
#include "utils/rel.h"
#include "utils/rls.h"
}

#include "ingest/identity.hpp"
#include "core/compat.hpp"
#include "core/settings.hpp"

namespace influx
{

namespace
{

/*
 * Triggers that may fire at commit, when the write's user is back in force: deferrable
 * constraint triggers, and the internal ones of deferrable foreign keys and unique or
 * exclusion constraints (PostgreSQL refuses to queue those inside a security-restricted
 * operation anyway).
 */
bool HasDeferrableTriggers(Relation rel)
{
    const TriggerDesc *td = rel->trigdesc;
    if (td == nullptr)
        return false;
    for (int i = 0; i < td->numtriggers; i++)
        if (td->triggers[i].tgdeferrable)
            return true;
    return false;
}

/* Rewrite rules that an INSERT would apply (pg_influx writes the table itself). */
bool HasInsertRules(Relation rel)
{
    if (rel->rd_rules == nullptr)
        return false;
    for (int i = 0; i < rel->rd_rules->numLocks; i++)
        if (rel->rd_rules->rules[i]->event == CMD_INSERT)
            return true;
    return false;
}

/* Policies for INSERT with a subquery: PostgreSQL plans those only as part of a query. */
bool HasInsertPolicyWithSubquery(Relation rel)
{
    if (rel->rd_rsdesc == nullptr)
        return false;
    ListCell *lc;
    foreach (lc, rel->rd_rsdesc->policies) {
        auto *policy = static_cast<RowSecurityPolicy *>(lfirst(lc));
        if ((policy->polcmd == '*' || policy->polcmd == ACL_INSERT_CHR) && policy->hassublinks)
            return true;
    }
    return false;
}

/*
 * Whether every partitioned table below `rel` (not the leaves: AddTarget checks those when
 * a row is routed to one) has the same acting user as `rel`.  Routing evaluates their
 * partition keys before any leaf is known, so this must hold before the first row.
 */
bool SubpartitionsAgree(Relation rel, Oid writer, Oid acting)
{
    PartitionDesc pd = RelationGetPartitionDesc(rel, false);
    for (int i = 0; i < pd->nparts; i++) {
        if (pd->is_leaf[i])
            continue;
        Relation child = table_open(pd->oids[i], RowExclusiveLock);
        bool agree =
            ActingUser(child, writer) == acting && SubpartitionsAgree(child, writer, acting);
        table_close(child, NoLock);
        if (!agree)
            return false;
    }
    return true;
}

} // namespace

Oid ActingUser(Relation rel, Oid writer)
{
    Oid owner = rel->rd_rel->relowner;
    if (has_privs_of_role(owner, writer))
        return writer;
    if (has_privs_of_role(writer, owner))
        return owner;
    return InvalidOid;
}

const char *IdentityRefusal(Relation rel, Oid writer)
{
    Oid relid = RelationGetRelid(rel);
    if (pg_class_aclcheck(relid, writer, ACL_INSERT) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(relid, writer, ACL_INSERT, ACLMASK_ANY) != ACLCHECK_OK)
        return "permission denied: INSERT privilege on the table is required";
    if (HasInsertRules(rel))
        return "the table has rules ON INSERT, which pg_influx does not apply";
    bool rls = check_enable_rls(relid, writer, false) == RLS_ENABLED;
    if (rls && HasInsertPolicyWithSubquery(rel))
        return "a row-level security policy for INSERT has a subquery, which pg_influx cannot "
               "evaluate";
    Oid acting = ActingUser(rel, writer);
    if (!OidIsValid(acting))
        return "neither the table's owner nor the writing role holds the other's privileges: "
               "the table's triggers and defaults would run with rights one of them does not have";
    if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE &&
        !SubpartitionsAgree(rel, writer, acting))
        return "a partitioned table below it has an owner whose code cannot run as this "
               "table's (see docs/security.md)";
    if (acting != writer) {
        if (HasDeferrableTriggers(rel))
            return "the table has deferrable constraints or triggers, which would run at commit "
                   "as the writing role rather than as the table's owner";
        if (rls)
            return "row-level security is in force and the table's code runs as its owner, so "
                   "policies would see the owner as current_user";
    }
    return nullptr;
}

bool *ColumnsWritable(Relation rel, Oid writer)
{
    return ColumnsGranted(rel, writer, ACL_INSERT);
}

bool *ColumnsGranted(Relation rel, Oid writer, AclMode mode)
{
    Oid relid = RelationGetRelid(rel);
    if (pg_class_aclcheck(relid, writer, mode) == ACLCHECK_OK)
        return nullptr;
    TupleDesc desc = RelationGetDescr(rel);
    bool *writable = static_cast<bool *>(palloc0(Max(desc->natts, 1)));
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped)
            writable[i] = pg_attribute_aclcheck(relid, att->attnum, writer, mode) == ACLCHECK_OK;
    }
    return writable;
}

const char *SchemaRefusal(Oid nspid, Oid writer)
{
    if (InfluxNamespaceAclcheck(nspid, writer, ACL_USAGE) != ACLCHECK_OK)
        return "permission denied: USAGE privilege on the schema is required";
    return nullptr;
}

const char *WriterRoleProblem(bool is_superuser, bool bypassrls)
{
    if (influx_allow_superuser)
        return nullptr;
    if (is_superuser)
        return "is a superuser (set influx.allow_superuser to insert as it anyway)";
    if (bypassrls)
        return "bypasses row-level security (set influx.allow_superuser to insert as it "
               "anyway)";
    return nullptr;
}

void BeginActing(Acting *acting, Oid user, bool restricted)
{
    GetUserIdAndSecContext(&acting->saved_user, &acting->saved_context);
    /* No SET ROLE to the session's (the worker's) role either: see InsertFlushBatch. */
    SetUserIdAndSecContext(user, acting->saved_context | SECURITY_LOCAL_USERID_CHANGE |
                                     (restricted ? SECURITY_RESTRICTED_OPERATION : 0));
    acting->guc_level = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                             GUC_ACTION_SAVE, true, 0, false);
}

void EndActing(const Acting *acting)
{
    AtEOXact_GUC(false, acting->guc_level);
    SetUserIdAndSecContext(acting->saved_user, acting->saved_context);
}

} // namespace influx
