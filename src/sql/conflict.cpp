/*
 * conflict.cpp — influx.set_on_conflict(): a table's own policy for rows whose point exists
 * (ingest/conflict.hpp, docs/idempotency.md).
 *
 * The policy decides whether a retried write overwrites what is stored, so only the
 * table's owner (or a member of the owning role) may set it, as for ALTER TABLE.  The table
 * influx.table_option is written as its owner; the relcache invalidation of the target
 * table makes every process read the new policy before its next write to it.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
}

#include "core/compat.hpp"
#include "core/pg_cpp.hpp"
#include "ingest/conflict.hpp"
#include "sql/extension_table.hpp"

namespace
{

using namespace influx;

Datum set_on_conflict(FunctionCallInfo fcinfo)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("table_name must not be null")));
    Oid relid = PG_GETARG_OID(0);
    char *schema = get_namespace_name(get_rel_namespace(relid));
    char *table = get_rel_name(relid);
    if (schema == nullptr || table == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation %u does not exist", relid)));
    if (!InfluxTableOwnerCheck(relid, GetUserId()))
        aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)), table);

    Oid types[3] = {NAMEOID, NAMEOID, TEXTOID};
    Datum values[3] = {CStringGetDatum(schema), CStringGetDatum(table), (Datum) 0};
    char nulls[3] = {' ', ' ', ' '};
    NameData schema_name, table_name;
    namestrcpy(&schema_name, schema);
    namestrcpy(&table_name, table);
    values[0] = NameGetDatum(&schema_name);
    values[1] = NameGetDatum(&table_name);
    if (PG_ARGISNULL(1)) {
        (void) RunAsTableOwner("table_option",
                               "DELETE FROM influx.table_option "
                               "WHERE schema_name OPERATOR(pg_catalog.=) $1 "
                               "AND table_name OPERATOR(pg_catalog.=) $2",
                               2, types, values, nulls);
    } else {
        char *policy = text_to_cstring(PG_GETARG_TEXT_PP(1));
        if (strcmp(policy, "error") != 0 && strcmp(policy, "merge") != 0 &&
            strcmp(policy, "skip") != 0 && strcmp(policy, "replace") != 0)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("invalid on_conflict policy \"%s\"", policy),
                            errhint("error, merge, skip or replace; NULL to follow "
                                    "influx.on_conflict.")));
        values[2] = CStringGetTextDatum(policy);
        (void) RunAsTableOwner("table_option",
                               "INSERT INTO influx.table_option AS o "
                               "(schema_name, table_name, on_conflict) VALUES ($1, $2, $3) "
                               "ON CONFLICT (schema_name, table_name) "
                               "DO UPDATE SET on_conflict = EXCLUDED.on_conflict",
                               3, types, values, nulls);
    }
    /* Every process rebuilds its description of the table, policy included, at commit. */
    CacheInvalidateRelcacheByRelid(relid);
    PG_RETURN_VOID();
}
INFLUX_SQL_FUNCTION(set_on_conflict)

} // namespace

namespace
{

/* influx.statement_rows(): see ingest/conflict.hpp. */
Datum statement_rows(FunctionCallInfo fcinfo)
{
    influx::StatementRows(fcinfo);
    return (Datum) 0;
}

} // namespace

INFLUX_SQL_FUNCTION(statement_rows)
