/*
 * compat.hpp — the few PostgreSQL API differences between 15 (the target), 16 and 17.
 *
 * Include after postgres.h.  Every version check in pg_influx lives here so that the rest
 * of the code reads as plain PostgreSQL 15.
 */
#pragma once

#if PG_VERSION_NUM < 150000
#error "pg_influx needs PostgreSQL 15 or later"
#endif

/*
 * pg_influx is built with -fvisibility=hidden: only what PostgreSQL looks up by name
 * (the module magic, _PG_init, the bgworker mains, the SQL functions and their pg_finfo_*)
 * is exported.  From 16 on PGDLLEXPORT says so itself; in 15 it is empty outside Windows.
 */
#if PG_VERSION_NUM < 160000 && !defined(WIN32)
#undef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

/* ExecInsertIndexTuples gained "onlySummarizing" in 16. */
#if PG_VERSION_NUM >= 160000
#define InfluxExecInsertIndexTuples(rri, slot, estate)                                             \
    ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#else
#define InfluxExecInsertIndexTuples(rri, slot, estate)                                             \
    ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#endif

/* CheckValidResultRel gained a MERGE action list in 17. */
#if PG_VERSION_NUM >= 170000
#define InfluxCheckValidResultRel(rri) CheckValidResultRel((rri), CMD_INSERT, NIL)
#else
#define InfluxCheckValidResultRel(rri) CheckValidResultRel((rri), CMD_INSERT)
#endif

/* Root-to-leaf tuple conversion map of a routed partition. */
#if PG_VERSION_NUM >= 160000
#define InfluxRootToChildMap(rri, estate) ExecGetRootToChildMap((rri), (estate))
#else
#define InfluxRootToChildMap(rri, estate) ((rri)->ri_RootToPartitionMap)
#endif

/* WaitEventSets are owned by a resource owner (NULL = session) from 17 on. */
#if PG_VERSION_NUM >= 170000
#define InfluxCreateWaitEventSet(n) CreateWaitEventSet(NULL, (n))
#else
#define InfluxCreateWaitEventSet(n) CreateWaitEventSet(TopMemoryContext, (n))
#endif

/* Rounding a timestamp to a column's precision (timestamp(p)); false if it cannot be. */
#if PG_VERSION_NUM >= 160000
#define InfluxAdjustTimestampForTypmod(ts, typmod) AdjustTimestampForTypmod((ts), (typmod), NULL)
#else
extern "C" {
#include "utils/datetime.h"
}
static inline bool InfluxAdjustTimestampForTypmod(Timestamp *ts, int32 typmod)
{
    bool error = false;
    return AdjustTimestampForTypmodError(ts, typmod, &error) && !error;
}
#endif

/* build_attrmap_by_name gained "missing_ok" in 16. */
#if PG_VERSION_NUM >= 160000
#define InfluxBuildAttrmapByName(in, out) build_attrmap_by_name((in), (out), false)
#else
#define InfluxBuildAttrmapByName(in, out) build_attrmap_by_name((in), (out))
#endif

/* Range tables carry separate permission info from 16 on. */
#if PG_VERSION_NUM >= 160000
#define INFLUX_HAS_RTEPERMINFO 1
#endif

/* Ownership checks became object_ownercheck in 16. */
#if PG_VERSION_NUM >= 160000
#define InfluxTableOwnerCheck(relid, role) object_ownercheck(RelationRelationId, (relid), (role))
#else
#define InfluxTableOwnerCheck(relid, role) pg_class_ownercheck((relid), (role))
#endif

/* Every setting's state (utils/guc_tables.h): the count became an out-parameter in 16. */
#if PG_VERSION_NUM >= 160000
#define InfluxGucVariables(n) get_guc_variables(n)
#else
#define InfluxGucVariables(n) (*(n) = GetNumConfigOptions(), get_guc_variables())
#endif

/* The catalog-specific ACL checks became object_aclcheck in 16. */
#if PG_VERSION_NUM >= 160000
#define InfluxNamespaceAclcheck(nspid, role, mode)                                                 \
    object_aclcheck(NamespaceRelationId, (nspid), (role), (mode))
#define InfluxProcAclcheck(funcid, role, mode)                                                     \
    object_aclcheck(ProcedureRelationId, (funcid), (role), (mode))
#else
#define InfluxNamespaceAclcheck(nspid, role, mode) pg_namespace_aclcheck((nspid), (role), (mode))
#define InfluxProcAclcheck(funcid, role, mode) pg_proc_aclcheck((funcid), (role), (mode))
#endif
