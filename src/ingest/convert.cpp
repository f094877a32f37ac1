/*
 * convert.cpp — line-protocol values to Datums (see convert.hpp for the rules).
 *
 * The native conversions mirror PostgreSQL's casts so that a value lands as if it had been
 * written in an INSERT: float8 → int rounds with rint() and checks the range like dtoi4();
 * float8 → float4 rejects overflow and underflow like dtof(); float8 → numeric uses
 * float8_numeric() (the float8::numeric cast).  Nothing is clamped or wrapped silently.
 */
#include <cmath>
#include <cstring>

#include "protocol/line_protocol.hpp"

extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "common/shortest_dec.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
}

#include "core/compat.hpp"
#include "ingest/convert.hpp"

namespace influx
{

namespace
{

/* Text form of a field value into buf (room for 64 bytes); returns its length. */
int NumberText(const Field &f, char *buf)
{
    switch (f.type) {
        case FieldType::Float:
            return double_to_shortest_decimal_buf(f.value.f, buf);
        case FieldType::Integer:
            return pg_snprintf(buf, 64, INT64_FORMAT, static_cast<int64>(f.value.i));
        case FieldType::Unsigned:
            return pg_snprintf(buf, 64, UINT64_FORMAT, static_cast<uint64>(f.value.u));
        case FieldType::Boolean:
            strcpy(buf, f.value.b ? "true" : "false");
            return static_cast<int>(strlen(buf));
        case FieldType::String:
            break;
    }
    buf[0] = '\0';
    return 0;
}

/*
 * Unescaped, NUL-terminated copy of a string value in the database encoding (palloc).
 * False when it contains a NUL byte, which no PostgreSQL text can hold, or a character
 * the database encoding has no equivalent for.
 */
bool StringCopy(const Text &t, char **out, int *len, char *reason)
{
    if (memchr(t.data, '\0', t.size) != nullptr) {
        strlcpy(reason, "string contains a NUL byte", INFLUX_REASON_SIZE);
        return false;
    }
    size_t n = UnescapedSize(t);
    char *s = static_cast<char *>(palloc(n + 1));
    n = t.escaped ? Unescape(t, s) : (memcpy(s, t.data, n), n);
    s[n] = '\0';
    if (NeedEncodingConversion()) {
        char *conv;
        int conv_len;
        bool ok = Utf8ToServer(s, n, &conv, &conv_len, reason);
        pfree(s);
        if (!ok)
            return false;
        s = conv;
        n = static_cast<size_t>(conv_len);
    }
    *out = s;
    *len = static_cast<int>(n);
    return true;
}

/* A text Datum straight from a slice: one palloc, no intermediate copy when possible. */
bool TextDatum(const Text &t, Datum *out, char *reason)
{
    if (!t.escaped && !NeedEncodingConversion()) {
        if (memchr(t.data, '\0', t.size) != nullptr) {
            strlcpy(reason, "string contains a NUL byte", INFLUX_REASON_SIZE);
            return false;
        }
        *out = PointerGetDatum(cstring_to_text_with_len(t.data, t.size));
        return true;
    }
    char *s;
    int len;
    if (!StringCopy(t, &s, &len, reason))
        return false;
    *out = PointerGetDatum(cstring_to_text_with_len(s, len));
    pfree(s);
    return true;
}

/* The value's text form (palloc'd, NUL-terminated), for input functions and text columns. */
bool ValueText(ValueRef v, char **out, int *len, char *reason)
{
    if (v.tag_value != nullptr)
        return StringCopy(*v.tag_value, out, len, reason);
    if (v.field->type == FieldType::String)
        return StringCopy(v.field->str, out, len, reason);
    char *buf = static_cast<char *>(palloc(64));
    *len = NumberText(*v.field, buf);
    *out = buf;
    return true;
}

bool OutOfRange(const ColumnInfo *col, char *reason)
{
    pg_snprintf(reason, INFLUX_REASON_SIZE, "value out of range for type %s",
                format_type_with_typemod(col->typid, col->typmod));
    return false;
}

bool Mismatch(const ColumnInfo *col, const char *what, char *reason)
{
    pg_snprintf(reason, INFLUX_REASON_SIZE, "%s value cannot be stored as %s", what,
                format_type_with_typemod(col->typid, col->typmod));
    return false;
}

/* float8 → int64 as PostgreSQL's dtoi8 does: round to nearest, reject what does not fit. */
bool FloatToInt(double d, int64 lo, int64 hi, int64 *out)
{
    d = rint(d);
    if (std::isnan(d) || !FLOAT8_FITS_IN_INT64(d))
        return false;
    int64 v = static_cast<int64>(d);
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Integer (signed or unsigned) field value as int64 if it has one. */
bool FieldInt64(const Field &f, int64 *out)
{
    if (f.type == FieldType::Integer) {
        *out = f.value.i;
        return true;
    }
    if (f.type == FieldType::Unsigned && f.value.u <= static_cast<uint64>(PG_INT64_MAX)) {
        *out = static_cast<int64>(f.value.u);
        return true;
    }
    return false;
}

/* A float, integer or unsigned field as a float8 Datum (false for a boolean). */
bool NumberAsFloat8(const Field &f, Datum *out)
{
    if (f.type == FieldType::Float)
        *out = Float8GetDatum(f.value.f);
    else if (f.type == FieldType::Integer)
        *out = Float8GetDatum(static_cast<double>(f.value.i));
    else if (f.type == FieldType::Unsigned)
        *out = Float8GetDatum(static_cast<double>(f.value.u));
    else
        return false;
    return true;
}

/* Numeric Datum of a field that is a number: exact for integers, float8::numeric for floats. */
Datum NumericOf(const Field &f)
{
    int64 i;
    if (FieldInt64(f, &i))
        return NumericGetDatum(int64_to_numeric(i));
    if (f.type == FieldType::Float)
        return DirectFunctionCall1(float8_numeric, Float8GetDatum(f.value.f));
    char buf[64];
    NumberText(f, buf);
    return DirectFunctionCall3(numeric_in, CStringGetDatum(buf), ObjectIdGetDatum(InvalidOid),
                               Int32GetDatum(-1));
}

/* Numeric for JSON: floats by their shortest text (as to_jsonb(float8) does). */
bool JsonNumber(const Field &f, JsonbValue *v)
{
    int64 i;
    if (f.type == FieldType::Float && !std::isfinite(f.value.f))
        return false;
    v->type = jbvNumeric;
    if (FieldInt64(f, &i)) {
        v->val.numeric = int64_to_numeric(i);
        return true;
    }
    char buf[64];
    NumberText(f, buf);
    v->val.numeric = DatumGetNumeric(DirectFunctionCall3(
        numeric_in, CStringGetDatum(buf), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    return true;
}

/* A field value as a JSON scalar. */
bool FieldJson(const Field &f, JsonbValue *v, char *reason)
{
    switch (f.type) {
        case FieldType::Boolean:
            v->type = jbvBool;
            v->val.boolean = f.value.b;
            return true;
        case FieldType::String: {
            char *s;
            int len;
            if (!StringCopy(f.str, &s, &len, reason))
                return false;
            v->type = jbvString;
            v->val.string.val = s;
            v->val.string.len = len;
            return true;
        }
        default:
            if (JsonNumber(f, v))
                return true;
            /* Infinity and NaN have no JSON number: a string, as to_jsonb(float8) gives. */
            char *buf = static_cast<char *>(palloc(64));
            v->type = jbvString;
            v->val.string.len = NumberText(f, buf);
            v->val.string.val = buf;
            return true;
    }
}

bool JsonString(const Text &t, JsonbValue *v, char *reason)
{
    char *s;
    int len;
    if (!StringCopy(t, &s, &len, reason))
        return false;
    v->type = jbvString;
    v->val.string.val = s;
    v->val.string.len = len;
    return true;
}

} // namespace

bool NeedEncodingConversion(void)
{
    int enc = GetDatabaseEncoding();
    return enc != PG_UTF8 && enc != PG_SQL_ASCII;
}

const char *ServerToUtf8(const char *data, size_t *len)
{
    if (!NeedEncodingConversion() || *len == 0)
        return data;
    /* Every character of a server encoding has a Unicode equivalent: this cannot fail. */
    char *conv = pg_server_to_any(data, static_cast<int>(*len), PG_UTF8);
    if (conv != data)
        *len = strlen(conv);
    return conv;
}

bool Utf8ToServer(const char *s, size_t len, char **out, int *out_len, char *reason)
{
    /* The conversion function, looked up once: a process stays in one database. */
    static Oid proc = InvalidOid;
    const int enc = GetDatabaseEncoding();
    if (!OidIsValid(proc))
        proc = FindDefaultConversionProc(PG_UTF8, enc);
    if (!OidIsValid(proc)) {
        /* No conversion to call without an ERROR: pg_any_to_server raises the usual one. */
        *out = pg_any_to_server(s, static_cast<int>(len), PG_UTF8);
        *out_len = static_cast<int>(strlen(*out));
        return true;
    }
    const size_t cap = len * MAX_CONVERSION_GROWTH + 1;
    auto *dst = static_cast<unsigned char *>(palloc(cap));
    auto *src = reinterpret_cast<unsigned char *>(const_cast<char *>(s));
    int done = pg_do_encoding_conversion_buf(proc, PG_UTF8, enc, src, static_cast<int>(len), dst,
                                             static_cast<int>(cap), true);
    if (static_cast<size_t>(done) < len) {
        pfree(dst);
        const unsigned char *bad = src + done;
        if (pg_utf8_islegal(bad, Min(pg_utf_mblen(bad), static_cast<int>(len) - done)))
            pg_snprintf(reason, INFLUX_REASON_SIZE,
                        "character U+%04X has no equivalent in encoding \"%s\"",
                        static_cast<unsigned>(utf8_to_unicode(bad)), GetDatabaseEncodingName());
        else
            pg_snprintf(reason, INFLUX_REASON_SIZE, "invalid UTF-8 for encoding \"%s\"",
                        GetDatabaseEncodingName());
        return false;
    }
    *out = reinterpret_cast<char *>(dst);
    *out_len = static_cast<int>(strlen(*out));
    return true;
}

/*
 * The one conversion table (docs/mapping.md's, row by row), in two modes: Full converts
 * whatever the column's type accepts and says why it cannot; Simple, for rows built while
 * they are parsed (outside any transaction), converts only what can neither fail nor need
 * the catalog and declines the rest (false, *reason untouched), which then takes Full's
 * path at flush time.  Long on purpose: one case per column kind, each converting every
 * line-protocol type, kept together so that the table can be checked against it.
 */
enum class ConvertMode { Full, Simple };

template <ConvertMode mode>
bool ConvertValue(const ColumnInfo *col, ValueRef v, Datum *out, char *reason)
{
    constexpr bool simple = mode == ConvertMode::Simple;
    const Field *f = v.field;

    /* Tags are strings: text directly, jsonb as a string, everything else by input. */
    if (v.tag_value != nullptr || f->type == FieldType::String) {
        const Text &t = v.tag_value != nullptr ? *v.tag_value : f->str;
        if (col->kind == ColumnKind::Text) {
            if constexpr (simple) {
                if (t.escaped || NeedEncodingConversion() ||
                    memchr(t.data, '\0', t.size) != nullptr)
                    return false;
                *out = PointerGetDatum(cstring_to_text_with_len(t.data, t.size));
                return true;
            }
            return TextDatum(t, out, reason);
        }
        if constexpr (simple)
            return false;
        if (col->kind == ColumnKind::Jsonb) {
            JsonbValue jv;
            if (!JsonString(t, &jv, reason))
                return false;
            *out = JsonbPGetDatum(JsonbValueToJsonb(&jv));
            return true;
        }
    } else {
        int64 i;
        switch (col->kind) {
            case ColumnKind::Float8:
                if (!NumberAsFloat8(*f, out))
                    return simple ? false : Mismatch(col, "boolean", reason);
                return true;
            case ColumnKind::Float4: {
                if constexpr (simple)
                    return false;
                double d;
                if (f->type == FieldType::Float)
                    d = f->value.f;
                else if (f->type == FieldType::Integer)
                    d = static_cast<double>(f->value.i);
                else if (f->type == FieldType::Unsigned)
                    d = static_cast<double>(f->value.u);
                else
                    return Mismatch(col, "boolean", reason);
                float r = static_cast<float>(d);
                if ((std::isinf(r) && !std::isinf(d)) || (r == 0.0f && d != 0.0))
                    return OutOfRange(col, reason);
                *out = Float4GetDatum(r);
                return true;
            }
            case ColumnKind::Int8:
            case ColumnKind::Int4:
            case ColumnKind::Int2: {
                if constexpr (simple) {
                    /* bigint from integer fields (and unsigned ones up to 2^63-1) only. */
                    if (col->kind != ColumnKind::Int8 || !FieldInt64(*f, &i))
                        return false;
                    *out = Int64GetDatum(i);
                    return true;
                }
                int64 lo = col->kind == ColumnKind::Int8   ? PG_INT64_MIN
                           : col->kind == ColumnKind::Int4 ? PG_INT32_MIN
                                                           : PG_INT16_MIN;
                int64 hi = col->kind == ColumnKind::Int8   ? PG_INT64_MAX
                           : col->kind == ColumnKind::Int4 ? PG_INT32_MAX
                                                           : PG_INT16_MAX;
                if (f->type == FieldType::Boolean)
                    return Mismatch(col, "boolean", reason);
                if (f->type == FieldType::Float) {
                    if (!FloatToInt(f->value.f, lo, hi, &i))
                        return OutOfRange(col, reason);
                } else if (!FieldInt64(*f, &i) || i < lo || i > hi) {
                    return OutOfRange(col, reason);
                }
                *out = col->kind == ColumnKind::Int8   ? Int64GetDatum(i)
                       : col->kind == ColumnKind::Int4 ? Int32GetDatum(static_cast<int32>(i))
                                                       : Int16GetDatum(static_cast<int16>(i));
                return true;
            }
            case ColumnKind::Numeric:
                if constexpr (simple)
                    return false;
                if (f->type == FieldType::Boolean)
                    return Mismatch(col, "boolean", reason);
                *out = NumericOf(*f);
                return true;
            case ColumnKind::Bool:
                if (f->type == FieldType::Boolean) {
                    *out = BoolGetDatum(f->value.b);
                    return true;
                }
                break; /* "0"/"1" are booleans to boolin; other numbers are rejected there */
            case ColumnKind::Text: {
                if constexpr (simple)
                    return false;
                char buf[64];
                int len = NumberText(*f, buf);
                *out = PointerGetDatum(cstring_to_text_with_len(buf, len));
                return true;
            }
            case ColumnKind::Jsonb: {
                if constexpr (simple)
                    return false;
                JsonbValue jv;
                if (!FieldJson(*f, &jv, reason))
                    return false;
                *out = JsonbPGetDatum(JsonbValueToJsonb(&jv));
                return true;
            }
            default:
                break;
        }
    }
    if constexpr (simple)
        return false;

    /* Everything else: the type's input function on the text form (may raise an ERROR). */
    char *s;
    int len;
    if (!ValueText(v, &s, &len, reason))
        return false;
    *out = InputFunctionCall(const_cast<FmgrInfo *>(&col->input), s, col->typioparam, col->typmod);
    return true;
}

bool ValueToDatum(const ColumnInfo *col, ValueRef v, Datum *out, char *reason)
{
    return ConvertValue<ConvertMode::Full>(col, v, out, reason);
}

bool SimpleValueToDatum(const ColumnInfo *col, ValueRef v, Datum *out)
{
    return ConvertValue<ConvertMode::Simple>(col, v, out, nullptr);
}

bool TimeToDatum(const ColumnInfo *col, int64 time_ns, Datum *out, char *reason)
{
    if (col->kind == ColumnKind::Int8) {
        *out = Int64GetDatum(time_ns);
        return true;
    }
    /* Timestamps have microsecond resolution: truncate toward minus infinity. */
    int64 us = time_ns / 1000;
    if (time_ns % 1000 < 0)
        us--;
    Timestamp ts = us - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
    /* timestamptz(p): rounded to the column's precision, as INSERT's assignment cast does. */
    if (!IS_VALID_TIMESTAMP(ts) ||
        (col->typmod >= 0 && !InfluxAdjustTimestampForTypmod(&ts, col->typmod)) ||
        !IS_VALID_TIMESTAMP(ts)) {
        strlcpy(reason, "timestamp out of range", INFLUX_REASON_SIZE);
        return false;
    }
    *out = col->kind == ColumnKind::TimestampTz ? TimestampTzGetDatum(ts) : TimestampGetDatum(ts);
    return true;
}

void DescribeValue(ValueRef v, char *buf, size_t size)
{
    const Text *t = v.tag_value;
    const char *what = "tag";
    if (t == nullptr && v.field->type == FieldType::String) {
        t = &v.field->str;
        what = "string";
    }
    if (t != nullptr) {
        /* At most 40 bytes, cut at a character boundary, control characters masked. */
        char excerpt[48];
        size_t n = Min(static_cast<size_t>(t->size), static_cast<size_t>(40));
        while (n > 0 && n < t->size && (static_cast<unsigned char>(t->data[n]) & 0xC0) == 0x80)
            n--;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = static_cast<unsigned char>(t->data[i]);
            excerpt[i] = c < 0x20 || c == 0x7F ? '?' : static_cast<char>(c);
        }
        excerpt[n] = '\0';
        pg_snprintf(buf, size, "%s \"%s%s\"", what, excerpt, n < t->size ? "..." : "");
        return;
    }
    char text[64];
    NumberText(*v.field, text);
    pg_snprintf(buf, size, "%s %s", FieldTypeName(v.field->type), text);
}

bool TagsToJsonb(const Tag *const *tags, int ntags, Datum *out, char *reason)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int i = 0; i < ntags; i++) {
        JsonbValue k, v;
        if (!JsonString(tags[i]->key, &k, reason) || !JsonString(tags[i]->value, &v, reason))
            return false;
        pushJsonbValue(&state, WJB_KEY, &k);
        pushJsonbValue(&state, WJB_VALUE, &v);
    }
    JsonbValue *res = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    *out = JsonbPGetDatum(JsonbValueToJsonb(res));
    return true;
}

bool FieldsToJsonb(const Field *const *fields, int nfields, Datum *out, char *reason)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int i = 0; i < nfields; i++) {
        JsonbValue k, v;
        if (!JsonString(fields[i]->key, &k, reason) || !FieldJson(*fields[i], &v, reason))
            return false;
        pushJsonbValue(&state, WJB_KEY, &k);
        pushJsonbValue(&state, WJB_VALUE, &v);
    }
    JsonbValue *res = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    *out = JsonbPGetDatum(JsonbValueToJsonb(res));
    return true;
}

} // namespace influx
