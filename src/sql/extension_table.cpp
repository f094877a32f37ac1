/*
 * extension_table.cpp — see extension_table.hpp.
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

#include "ingest/identity.hpp"
#include "sql/extension_table.hpp"

namespace influx
{

Oid ExtensionTableOwner(const char *name)
{
    Oid nspid = get_namespace_oid("influx", false);
    Oid relid = get_relname_relid(name, nspid);
    HeapTuple tup = OidIsValid(relid) ? SearchSysCache1(RELOID, ObjectIdGetDatum(relid)) : nullptr;
    if (!HeapTupleIsValid(tup))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("influx.%s does not exist", name),
                        errhint("ALTER EXTENSION pg_influx UPDATE")));
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    return owner;
}

uint64 RunAsTableOwner(const char *table, const char *sql, int nargs, Oid *types, Datum *values,
                       const char *nulls, Datum *first, bool *found)
{
    /*
     * As the owner, but nothing of the caller's may run: security-restricted, and a
     * search_path of pg_catalog only, so that an operator or function the caller put on
     * its own path is never picked for the statement (identity.hpp BeginActing).
     */
    Acting acting;
    BeginActing(&acting, ExtensionTableOwner(table), true);
    SPI_connect();
    int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
    uint64 processed = rc > 0 ? SPI_processed : 0;
    if (found != nullptr)
        *found = false;
    if (first != nullptr && rc == SPI_OK_SELECT && SPI_processed > 0) {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull) {
            /* By value only (the callers read OIDs): SPI_finish frees the tuple. */
            *first = d;
            if (found != nullptr)
                *found = true;
        }
    }
    SPI_finish();
    EndActing(&acting);
    return processed;
}

} // namespace influx
