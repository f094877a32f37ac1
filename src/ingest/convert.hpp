/*
 * convert.hpp — turning line-protocol values into Datums of a column's type.
 *
 * Vocabulary: a *value* is a tag value (always a string) or a typed field value (float,
 * integer, unsigned, boolean, string); its *text form* is how InfluxDB would print it
 * (shortest round-trip float, decimal integer, true/false, the unescaped string).
 *
 * The common column types are converted natively, without an ERROR for a bad value: the
 * function returns false and writes the reason, and the row is rejected (counted) by the
 * caller.  Conversions follow PostgreSQL's assignment casts: float → integer rounds to
 * nearest (rint), anything out of the column type's range is rejected, never clamped or
 * wrapped.  Other types (including numeric(p,s), varchar(n), domains, timestamps in
 * ordinary columns, inet, …) go through the type's input function on the value's text
 * form; that may raise an ERROR, which the caller isolates in a subtransaction.
 *
 * Datums are allocated in CurrentMemoryContext (the executor's per-tuple context).
 * Include after postgres.h.
 */
#pragma once

#include "ingest/table_cache.hpp"
#include "protocol/line_protocol.hpp"

namespace influx
{

/* Longest reason text a conversion writes. */
#define INFLUX_REASON_SIZE 128

/* A tag or field value to convert: exactly one of tag_value and field is set. */
struct ValueRef {
    const Text *tag_value;
    const Field *field;
};

/* Converts a value to col's type; false (and *reason) when it does not fit. */
bool ValueToDatum(const ColumnInfo *col, ValueRef value, Datum *out, char *reason);

/*
 * The same conversion table in its Simple mode (convert.cpp ConvertValue): only what can
 * neither fail nor need the catalog or a transaction, for rows built while they are
 * parsed: float, integer and unsigned fields into float8; integer fields (and unsigned
 * ones up to 2^63-1) into bigint; booleans into boolean; string fields and tag values
 * without escapes, NUL bytes or encoding conversion into text.
 * Gives the Datum ValueToDatum would give, or returns false for everything else (which
 * then takes ValueToDatum's path, with its checks and messages).
 */
bool SimpleValueToDatum(const ColumnInfo *col, ValueRef value, Datum *out);

/* Converts a Unix timestamp in nanoseconds for the "_time" column. */
bool TimeToDatum(const ColumnInfo *col, int64 time_ns, Datum *out, char *reason);

/* Short description of a value for error messages ("float 1.5", "string \"abc\""). */
void DescribeValue(ValueRef value, char *buf, size_t size);

/*
 * Builds the jsonb object of leftover tags or fields (those that have no column): tags
 * as JSON strings, fields as typed JSON (numbers, booleans, strings; integers exact,
 * floats by their shortest round-trip text, non-finite floats as strings).
 * Returns false (and *reason) if a key or value cannot be stored (e.g. a NUL byte).
 */
bool TagsToJsonb(const Tag *const *tags, int ntags, Datum *out, char *reason);
bool FieldsToJsonb(const Field *const *fields, int nfields, Datum *out, char *reason);

/*
 * Encodings.  Line protocol is UTF-8, and the parser checks it; PostgreSQL text is in the
 * database encoding.  In a database that is not UTF-8 (nor SQL_ASCII, which takes bytes
 * as they come), text arguments are converted to UTF-8 before parsing (ServerToUtf8) and
 * every string value back to the database encoding as it is stored (Utf8ToServer).
 */

/* True when incoming UTF-8 must be converted to the database encoding. */
bool NeedEncodingConversion(void);

/*
 * Text in the database encoding (a SQL argument) as UTF-8 for the parser: `data` itself
 * when no conversion is needed, else a palloc'd copy (*len updated).  Cannot fail.
 */
const char *ServerToUtf8(const char *data, size_t *len);

/*
 * UTF-8 bytes s[0..len) in the database encoding, palloc'd and NUL-terminated; false
 * and *reason (no ERROR) when a character has no equivalent there, e.g. U+20AC (euro)
 * in LATIN1.  Needs a transaction (the conversion function is looked up in the catalog).
 */
bool Utf8ToServer(const char *s, size_t len, char **out, int *out_len, char *reason);

} // namespace influx
