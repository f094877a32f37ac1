/*
 * insert.cpp — influx.insert(lines, precision, schema_name, create_tables,
 * add_columns): the insert path of the workers, synchronously, in the caller's transaction
 * and with the caller as the writer (src/ingest/insert.hpp InsertLines; docs/sql.md).
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
}

#include "core/pg_cpp.hpp"
#include "core/settings.hpp"
#include "ingest/insert.hpp"

namespace influx
{

Datum insert(FunctionCallInfo fcinfo)
{
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    InsertOptions options = {static_cast<Precision>(influx_precision), influx_schema,
                             influx_create_tables, influx_add_columns};
    if (!PG_ARGISNULL(1)) {
        char *p = text_to_cstring(PG_GETARG_TEXT_PP(1));
        if (!ParsePrecision(p, &options.precision))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("invalid precision \"%s\"", p), errhint("Use ns, us, ms or s.")));
    }
    if (!PG_ARGISNULL(2))
        options.schema = pstrdup(NameStr(*PG_GETARG_NAME(2)));
    if (!PG_ARGISNULL(3))
        options.create_tables = PG_GETARG_BOOL(3);
    if (!PG_ARGISNULL(4))
        options.add_columns = PG_GETARG_BOOL(4);
    text *lines = PG_GETARG_TEXT_PP(0);
    PG_RETURN_INT64(InsertLines(VARDATA_ANY(lines), VARSIZE_ANY_EXHDR(lines), &options));
}

} // namespace influx

using influx::insert;
INFLUX_SQL_FUNCTION(insert)
