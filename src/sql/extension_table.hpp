/*
 * extension_table.hpp — writing the extension's own tables (influx.token,
 * influx.table_option) on behalf of a caller who may not write them directly: the SQL
 * functions check what the caller may do, then write as the table's owner.
 *
 * Include after postgres.h.
 */
#pragma once

namespace influx
{

/* The owner of influx.<name>; an ERROR (with the hint to update) if there is no such table. */
Oid ExtensionTableOwner(const char *name);

/*
 * Runs one statement (SPI, with arguments) as the owner of influx.<table>; returns the
 * rows it processed, or read (the first column of the first row goes to *first when not
 * NULL and a row came back).
 */
uint64 RunAsTableOwner(const char *table, const char *sql, int nargs, Oid *types, Datum *values,
                       const char *nulls, Datum *first = nullptr, bool *found = nullptr);

} // namespace influx
