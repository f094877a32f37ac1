/*
 * parse.cpp — influx.parse(lines text, precision text DEFAULT 'ns'): the line-protocol
 * parser as a set-returning SQL function, for users checking what their agents send and
 * for tests comparing the parser with InfluxDB.
 *
 * One row per *line* (comments and blank lines produce none), numbered by the physical line
 * where it starts (a string value may contain newlines, so one line can span several).
 * A valid line gives measurement, tags, fields, field_types and time_ns (NULL without a
 * timestamp); an invalid one gives only its number and the error text.
 *
 * Encoding: the input is text in the database encoding and the parser reads UTF-8, so in
 * a database that is neither UTF-8 nor SQL_ASCII the input is converted to UTF-8 first
 * and every name and string of the result back (error columns count UTF-8 bytes).
 *
 * The parser is pure C++ with vectors inside; it lives in a process-wide static object, so
 * no C++ destructor is ever skipped when a PostgreSQL call below raises an error.  ParseLine
 * itself never throws and never calls PostgreSQL.
 */
#include <charconv>
#include <cstring>
#include <new>
#include <string_view>

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"
}

#include "protocol/line_protocol.hpp" /* before convert.hpp, which uses its types */
#include "ingest/convert.hpp"
#include "core/pg_cpp.hpp"

namespace
{

enum ParseColumn { kLine, kMeasurement, kTags, kFields, kFieldTypes, kTimeNs, kError, kNumColumns };

/*
 * The unescaped bytes of a slice in the database encoding, palloc'd (or the slice itself
 * when there is nothing to unescape or convert).  They came from text in that encoding,
 * so every character converts back.
 */
const char *TextBytes(const influx::Text &t, size_t *len)
{
    const char *bytes = t.data;
    *len = t.size;
    if (t.escaped) {
        char *buf = static_cast<char *>(palloc(influx::UnescapedSize(t) + 1));
        *len = influx::Unescape(t, buf);
        bytes = buf;
    }
    if (influx::NeedEncodingConversion() && *len > 0) {
        char *conv = pg_any_to_server(bytes, static_cast<int>(*len), PG_UTF8);
        if (conv != bytes)
            *len = strlen(conv);
        bytes = conv;
    }
    return bytes;
}

void PushString(JsonbParseState **state, JsonbIteratorToken token, const char *data, size_t len)
{
    JsonbValue v;
    v.type = jbvString;
    v.val.string.len = static_cast<int>(len);
    v.val.string.val = const_cast<char *>(data);
    pushJsonbValue(state, token, &v);
}

void PushText(JsonbParseState **state, JsonbIteratorToken token, const influx::Text &t)
{
    size_t len;
    const char *data = TextBytes(t, &len);
    PushString(state, token, data, len);
}

/* A jsonb number from its decimal text: exact for 64-bit integers, shortest form for floats. */
void PushNumber(JsonbParseState **state, const char *digits)
{
    JsonbValue v;
    v.type = jbvNumeric;
    v.val.numeric = DatumGetNumeric(DirectFunctionCall3(
        numeric_in, CStringGetDatum(digits), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    pushJsonbValue(state, WJB_VALUE, &v);
}

void PushFieldValue(JsonbParseState **state, const influx::Field &f)
{
    char digits[64];
    std::to_chars_result r{};
    JsonbValue v;
    switch (f.type) {
        case influx::FieldType::Float:
            r = std::to_chars(digits, digits + sizeof(digits) - 1, f.value.f);
            break;
        case influx::FieldType::Integer:
            r = std::to_chars(digits, digits + sizeof(digits) - 1, f.value.i);
            break;
        case influx::FieldType::Unsigned:
            r = std::to_chars(digits, digits + sizeof(digits) - 1, f.value.u);
            break;
        case influx::FieldType::Boolean:
            v.type = jbvBool;
            v.val.boolean = f.value.b;
            pushJsonbValue(state, WJB_VALUE, &v);
            return;
        case influx::FieldType::String:
            PushText(state, WJB_VALUE, f.str);
            return;
    }
    *r.ptr = '\0';
    PushNumber(state, digits);
}

Datum TagsJsonb(const influx::Point &pt)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (uint32_t i = 0; i < pt.ntags; ++i) {
        PushText(&state, WJB_KEY, pt.tags[i].key);
        PushText(&state, WJB_VALUE, pt.tags[i].value);
    }
    return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr)));
}

Datum FieldsJsonb(const influx::Point &pt, bool types)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (uint32_t i = 0; i < pt.nfields; ++i) {
        const influx::Field &f = pt.fields[i];
        PushText(&state, WJB_KEY, f.key);
        if (types) {
            const char *name = influx::FieldTypeName(f.type);
            PushString(&state, WJB_VALUE, name, std::strlen(name));
        } else {
            PushFieldValue(&state, f);
        }
    }
    return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr)));
}

/* Lines in data[0..len) from pos: number of '\n' bytes. */
int CountNewlines(const char *data, size_t len)
{
    int n = 0;
    const char *p = data, *end = data + len;
    while (p < end && (p = static_cast<const char *>(std::memchr(p, '\n', end - p))) != nullptr) {
        ++n;
        ++p;
    }
    return n;
}

influx::LineParser *SharedParser()
{
    /* Never destroyed: lives as long as the backend, keeps its vectors warm between calls. */
    static influx::LineParser *parser = nullptr;
    if (parser == nullptr) {
        parser = new (std::nothrow) influx::LineParser();
        if (parser == nullptr)
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    return parser;
}

} // namespace

static Datum parse(FunctionCallInfo fcinfo);
INFLUX_SQL_FUNCTION(parse)

/*
 * Parses every line of the input into the tuplestore set up by InitMaterializedSRF.  Each
 * row's jsonb values are built in a scratch context reset after the row is stored.
 */
static Datum parse(FunctionCallInfo fcinfo)
{
    text *input = PG_GETARG_TEXT_PP(0);
    char *precision_text = text_to_cstring(PG_GETARG_TEXT_PP(1));

    influx::ParserOptions options;
    if (!influx::ParsePrecision(precision_text, &options.precision))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid precision \"%s\"", precision_text),
                        errhint("Valid precisions are \"ns\", \"us\", \"ms\" and \"s\".")));

    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    influx::LineParser *parser = SharedParser();
    parser->set_options(options);

    MemoryContext row_context =
        AllocSetContextCreate(CurrentMemoryContext, "influx.parse row", ALLOCSET_DEFAULT_SIZES);

    size_t size = VARSIZE_ANY_EXHDR(input);
    const char *data = influx::ServerToUtf8(VARDATA_ANY(input), &size);
    influx::LineScanner scanner;
    size_t pos = 0;
    int line_no = 1;

    while (pos < size) {
        CHECK_FOR_INTERRUPTS();

        size_t end = scanner.FindLineEnd(data + pos, size - pos);
        size_t line_len = (end == influx::LineScanner::npos) ? size - pos : end - 1;
        std::string_view line(data + pos, line_len);
        const int this_line = line_no;
        line_no += CountNewlines(line.data(), line.size()) + 1;
        pos = (end == influx::LineScanner::npos) ? size : pos + end;

        influx::Point pt;
        influx::ParseStatus status = parser->ParseLine(line, &pt);
        if (status == influx::ParseStatus::Skip)
            continue;

        MemoryContext old = MemoryContextSwitchTo(row_context);
        Datum values[kNumColumns];
        bool nulls[kNumColumns];
        for (int i = 0; i < kNumColumns; ++i) {
            values[i] = (Datum) 0;
            nulls[i] = true;
        }
        values[kLine] = Int32GetDatum(this_line);
        nulls[kLine] = false;
        if (status == influx::ParseStatus::Ok) {
            size_t len;
            const char *name = TextBytes(pt.measurement, &len);
            values[kMeasurement] =
                PointerGetDatum(cstring_to_text_with_len(name, static_cast<int>(len)));
            values[kTags] = TagsJsonb(pt);
            values[kFields] = FieldsJsonb(pt, false);
            values[kFieldTypes] = FieldsJsonb(pt, true);
            nulls[kMeasurement] = nulls[kTags] = nulls[kFields] = nulls[kFieldTypes] = false;
            if (pt.has_time) {
                values[kTimeNs] = Int64GetDatum(pt.time_ns);
                nulls[kTimeNs] = false;
            }
        } else {
            values[kError] = CStringGetTextDatum(parser->error().message);
            nulls[kError] = false;
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        MemoryContextSwitchTo(old);
        MemoryContextReset(row_context);
    }

    MemoryContextDelete(row_context);
    return (Datum) 0;
}
