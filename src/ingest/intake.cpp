/*
 * intake.cpp — lines into the pending batch: parsing, grouping by measurement, and the fast
 * paths that convert a line's values while it is hot (built rows, shapes).  See
 * insert_path.hpp for how the insert path is split.
 */
#include <string_view>

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
}

#include "core/clock.hpp"
#include "core/report.hpp"
#include "core/settings.hpp"
#include "ingest/identity.hpp"
#include "ingest/insert_path.hpp"
#include "ingest/requests.hpp"
#include "ingest/row_builder.hpp"
#include "ipc/chunk.hpp"

namespace influx
{
namespace insert_path
{

/* Bytes of a line that a message quotes at most. */
constexpr size_t kExcerptBytes = 60;

/* A short, printable excerpt of a line for messages (at most kExcerptBytes). */
void Excerpt(std::string_view line, bool ascii_only, char *buf, size_t size)
{
    size_t n = Min(line.size(), kExcerptBytes);
    while (n > 0 && n < line.size() && (static_cast<unsigned char>(line[n]) & 0xC0) == 0x80)
        n--;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < size; i++) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        buf[o++] = c < 0x20 || c == 0x7F || (ascii_only && c >= 0x80) ? '?' : static_cast<char>(c);
    }
    if (n < line.size() && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/*
 * ParseOne for a plain line (IsPlain; `plain`: its whole chunk is) with the layout of the
 * last line of its measurement that was converted in this batch: reads and converts it
 * against that layout.  False (nothing done) otherwise.
 */
bool ReadShapedLine(std::string_view line, int64 now_ns, bool plain)
{
    BatchGroup *g = shaped_group;
    const LineShape *shape = RowShape(g->build_memo); /* NULL if its last line had none */
    /* Another measurement than the last line's: its own group's layout, if it has one. */
    if (shape == nullptr || line.size() <= shape->measurement.size ||
        (line[shape->measurement.size] != ',' && line[shape->measurement.size] != ' ') ||
        !SameBytes(line.data(), shape->measurement.data, shape->measurement.size)) {
        size_t len = PlainMeasurementLength(line);
        if (len >= NAMEDATALEN || len >= line.size())
            return false;
        g = BatchLookupGroup(&batch, line.data(), len);
        if (g == nullptr || g->build_memo == nullptr ||
            (shape = RowShape(g->build_memo)) == nullptr)
            return false;
    }
    ShapeValues &sv = shape_values;
    if (!(plain || IsPlain(line.data(), line.size())) || !parser->MatchShape(*shape, line, &sv))
        return false;
    const Datum *values;
    int nvalues;
    int64 time_ns = sv.has_time ? sv.time_ns : now_ns;
    MemoryContext old = MemoryContextSwitchTo(batch.cxt);
    bool built = BuildShapedRow(g->build_info, g->build_memo, sv, time_ns, &values, &nvalues);
    MemoryContextSwitchTo(old);
    if (!built)
        return false;
    Note(reporter, kLinesReceived);
    BatchAddBuiltRow(&batch, g, values, nvalues, time_ns, line.data(), line.size());
    shaped_group = g;
    return true;
}

/*
 * Whether names must be ASCII: the database encoding is neither UTF-8 (names go to the
 * catalog as they came) nor SQL_ASCII (bytes stored as they are).  In LATIN1, say, a
 * non-ASCII measurement or key would otherwise name a table or column in mis-decoded
 * bytes; such lines are rejected with the reason instead.
 */
bool names_need_ascii = false;

bool IsAscii(const Text &t)
{
    for (uint32 i = 0; i < t.size; i++)
        if (static_cast<unsigned char>(t.data[i]) >= 0x80)
            return false;
    return true;
}

bool NamesAreAscii(const Point &point)
{
    if (!IsAscii(point.measurement))
        return false;
    for (uint32 i = 0; i < point.ntags; i++)
        if (!IsAscii(point.tags[i].key))
            return false;
    for (uint32 i = 0; i < point.nfields; i++)
        if (!IsAscii(point.fields[i].key))
            return false;
    return true;
}

/*
 * Parses one line into the batch.  Rejected lines are counted and reported (true is
 * returned for them); points whose measurement cannot name a table (longer than 63 bytes,
 * NUL byte) are rejected here rather than truncated into some other table's name.
 */
bool ParseOne(std::string_view line, int64 now_ns, const char *schema, bool plain)
{
    /* The usual line has the layout of the last line of its measurement: read it so. */
    if (shaped_group != nullptr && ReadShapedLine(line, now_ns, plain))
        return false;

    Point point;
    ParseStatus status = parser->ParseLine(line, &point, plain);
    if (status == ParseStatus::Skip)
        return false;
    Note(reporter, kLinesReceived);
    if (status == ParseStatus::Invalid) {
        const ParseError &e = parser->error();
        char excerpt[80];
        Excerpt(line, e.cls == ErrorClass::Encoding, excerpt, sizeof(excerpt));
        Counter reason = e.cls == ErrorClass::TooLong       ? kLinesRejectedTooLong
                         : e.cls == ErrorClass::OutOfMemory ? kLinesRejectedMemory
                                                            : kLinesRejectedSyntax;
        Problem(reporter, reason, 1, "line rejected: %s: \"%s\"", e.message, excerpt);
        return true;
    }

    char name[NAMEDATALEN];
    size_t len = UnescapedSize(point.measurement);
    if (len >= NAMEDATALEN || memchr(point.measurement.data, '\0', point.measurement.size)) {
        char excerpt[80];
        Excerpt(line, false, excerpt, sizeof(excerpt));
        Problem(reporter, kRowsRejectedTable, 1,
                len >= NAMEDATALEN ? "row rejected: measurement name longer than 63 bytes: \"%s\""
                                   : "row rejected: measurement name contains a NUL byte: \"%s\"",
                excerpt);
        return true;
    }
    if (!plain && names_need_ascii && !NamesAreAscii(point)) {
        char excerpt[80];
        Excerpt(line, false, excerpt, sizeof(excerpt));
        Problem(reporter, kRowsRejectedValue, 1,
                "row rejected: names must be ASCII in a database with encoding %s: \"%s\"",
                GetDatabaseEncodingName(), excerpt);
        return true;
    }
    len = Unescape(point.measurement, name);
    name[len] = '\0';
    BatchGroup *g = BatchFindGroup(&batch, name, len);
    int64 time_ns = point.has_time ? point.time_ns : now_ns;

    /* A table the cache already knows: convert the row now, while the line is hot. */
    if (!g->build_checked) {
        g->build_checked = true;
        g->build_info = TableCachePeek(schema, g->measurement);
        if (g->build_info != nullptr) {
            MemoryContext old = MemoryContextSwitchTo(batch.cxt);
            g->build_memo = BuildMemoCreate(g->build_info);
            MemoryContextSwitchTo(old);
        }
    }
    /* Lines that need the ordinary path (leftover keys, say) usually keep needing it. */
    if (g->build_info != nullptr && g->build_refusals < kBuildRefusalsToStop) {
        const Datum *values;
        int nvalues;
        MemoryContext old = MemoryContextSwitchTo(batch.cxt);
        bool built = BuildRow(g->build_info, g->build_memo, point, time_ns, &values, &nvalues);
        MemoryContextSwitchTo(old);
        if (built) {
            g->build_refusals = 0;
            BatchAddBuiltRow(&batch, g, values, nvalues, time_ns, line.data(), line.size());
            if (LearnRowShape(g->build_memo, point, values, nvalues))
                shaped_group = g;
            return false;
        }
        g->build_refusals++;
    }
    BatchAddRow(&batch, g, point, time_ns, line.data(), line.size());
    return false;
}

/*
 * The tag and field arrays of a built row that goes to a table other than the one it was
 * built for (its table changed, or influx.schema): its line parsed again, into the
 * parser's own arrays, valid until the parser's next use.  Row by row, when needed, so a
 * changed table costs no batch's worth of arrays.  The line parsed before, so it parses
 * again; the row keeps its time, so any precision would do (nanoseconds never overflow),
 * and the length limit, which may have been lowered since, is lifted.
 */
bool ReparseRow(const BatchRow *row, Point *point)
{
    ParserOptions saved = parser->options();
    ParserOptions options = saved;
    options.max_line_length = SIZE_MAX;
    options.precision = Precision::Nanoseconds;
    parser->set_options(options);
    bool ok =
        parser->ParseLine(std::string_view(row->line, row->line_len), point) == ParseStatus::Ok;
    parser->set_options(saved);
    return ok;
}

/*
 * Between lines: a worker honours a pending die (ProcDiePending: the postmaster's death
 * handling, or the flush watchdog's) but not a cancel, which is for flushes (worker.cpp);
 * influx.insert() honours both, as any statement does.
 */
void ParseInterrupts(bool worker)
{
    if (worker)
        QueryCancelPending = false;
    CHECK_FOR_INTERRUPTS();
}

/*
 * Copies a block of lines into the batch and parses them (tables are looked for in
 * `schema`; lines without a timestamp get `now_ns`, or the current time if it is 0).
 * Stops after the line that gives the batch its `max_groups`th measurement and returns the
 * bytes it consumed (all of them unless it stopped): the rest starts with a whole line.
 * Each line is a unit of the request batch.request names, if any (requests.hpp).
 */
size_t ParseChunk(const char *data, size_t size, Precision precision, const char *schema,
                  int max_groups, bool worker, int64 now_ns)
{
    ParserOptions options;
    options.precision = precision;
    options.max_line_length = static_cast<size_t>(influx_max_line_length);
    parser->set_options(options);

    char *copy = BatchCopyBytes(&batch, data, size);
    if (now_ns == 0)
        now_ns = UnixNowNs();
    uint32 request = batch.request;
    names_need_ascii = GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII;
    /* One pass over the chunk spares every line its own UTF-8, quote and escape checks. */
    bool plain = IsPlain(copy, size);
    return ForEachLineUntil(
        copy, size,
        [now_ns, schema, plain, max_groups, worker, request](std::string_view line) {
            if (unlikely(InterruptPending))
                ParseInterrupts(worker);
            bool rejected = ParseOne(line, now_ns, schema, plain);
            if (request != 0) {
                RequestUnit(request);
                if (rejected)
                    RequestRejected(request, reporter->last);
            }
            return batch.ngroups < max_groups;
        },
        plain);
}

} // namespace insert_path
} // namespace influx
