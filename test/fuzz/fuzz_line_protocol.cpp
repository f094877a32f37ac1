/*
 * fuzz_line_protocol.cpp — libFuzzer target for the line-protocol parser.
 *
 * Feeds arbitrary bytes through LineScanner (whole and in pieces cut where the input says),
 * ForEachLine, LineParser::ParseLine and Unescape, and checks what must always hold:
 *   - the scanner finds the same line boundaries whatever the piece sizes, line by line or
 *     a whole piece at once (FindLastLineEnd), and a plain buffer (IsPlain) splits the same
 *     way on its newlines alone;
 *   - the plain hint changes nothing in a parse;
 *   - every slice of a parsed point lies inside its line, and unescaping never grows it;
 *   - a parse is deterministic and does not depend on the parser's previous line;
 *   - errors carry a message and a column within the line (+1);
 *   - field keys are unique after duplicate removal;
 *   - a plain line that matches the layout of an earlier line, plain or not (LearnShape,
 *     MatchShape), gets exactly the values a parse gives it.
 * ASan and UBSan (see `make fuzz`) catch the rest.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/line_protocol.hpp"

using namespace influx;

namespace
{

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

/* Line boundaries as offsets, scanning the whole buffer at once. */
std::vector<size_t> EndsWhole(const uint8_t *data, size_t size)
{
    std::vector<size_t> ends;
    ForEachLine(reinterpret_cast<const char *>(data), size, [&](std::string_view line) {
        ends.push_back(static_cast<size_t>(line.data() - reinterpret_cast<const char *>(data)) +
                       line.size());
    });
    return ends;
}

/* Line ends (with the last line counted) from FindLastLineEnd over pieces cut by `seed`. */
void LastEndsInPieces(const uint8_t *data, size_t size, uint32_t seed, size_t expected_lines,
                      size_t expected_last)
{
    LineScanner scanner;
    uint64_t lines = 0;
    size_t pos = 0, last = 0;
    while (pos < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 300;
        if (piece > size - pos)
            piece = size - pos;
        size_t end =
            scanner.FindLastLineEnd(reinterpret_cast<const char *>(data) + pos, piece, &lines);
        if (end != LineScanner::npos) {
            CHECK(end >= 1 && end <= piece && data[pos + end - 1] == '\n');
            last = pos + end;
        }
        pos += piece;
    }
    CHECK(last == expected_last);
    CHECK(lines + (last < size ? 1 : 0) == expected_lines);
}

/* The same, feeding the scanner pieces whose sizes come from `seed`. */
std::vector<size_t> EndsInPieces(const uint8_t *data, size_t size, uint32_t seed)
{
    std::vector<size_t> ends;
    LineScanner scanner;
    size_t pos = 0;
    size_t line_start = 0;
    while (pos < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 17;
        if (piece > size - pos)
            piece = size - pos;
        size_t off = 0;
        while (off < piece) {
            size_t end =
                scanner.FindLineEnd(reinterpret_cast<const char *>(data) + pos + off, piece - off);
            if (end == LineScanner::npos)
                break;
            CHECK(end >= 1 && end <= piece - off);
            CHECK(data[pos + off + end - 1] == '\n');
            ends.push_back(pos + off + end - 1);
            off += end;
            line_start = pos + off;
        }
        pos += piece;
    }
    if (line_start < size)
        ends.push_back(size);
    return ends;
}

void CheckText(const Text &t, std::string_view line)
{
    CHECK(t.data >= line.data() && t.data + t.size <= line.data() + line.size());
    size_t n = UnescapedSize(t);
    CHECK(n <= t.size);
    if (!t.escaped)
        CHECK(n == t.size && std::memchr(t.data, '\\', t.size) == nullptr);
    std::string out(n + 1, '\x7f');
    CHECK(Unescape(t, out.data()) == n);
    CHECK(out[n] == '\x7f');
    CHECK(UnescapeToString(t).size() == n);
}

/* A copy of what a point says, to compare two parses. */
std::string Describe(const Point &pt)
{
    std::string d = UnescapeToString(pt.measurement);
    for (uint32_t i = 0; i < pt.ntags; ++i)
        d += "|" + UnescapeToString(pt.tags[i].key) + "=" + UnescapeToString(pt.tags[i].value);
    for (uint32_t i = 0; i < pt.nfields; ++i) {
        const Field &f = pt.fields[i];
        d += "|" + UnescapeToString(f.key) + ":" + FieldTypeName(f.type) + "=";
        char buf[64];
        switch (f.type) {
            case FieldType::Float:
                std::snprintf(buf, sizeof(buf), "%a", f.value.f);
                d += buf;
                break;
            case FieldType::Integer:
                d += std::to_string(f.value.i);
                break;
            case FieldType::Unsigned:
                d += std::to_string(f.value.u);
                break;
            case FieldType::Boolean:
                d += f.value.b ? "t" : "f";
                break;
            case FieldType::String:
                d += UnescapeToString(f.str);
                break;
        }
        if (f.type != FieldType::String) /* the value as written, used for exact numeric */
            d += "(" + std::string(f.str.raw()) + ")";
    }
    if (pt.has_time)
        d += "@" + std::to_string(pt.time_ns);
    return d;
}

void CheckLine(LineParser &parser, LineParser &fresh, std::string_view line, bool plain)
{
    Point pt;
    ParseStatus st = parser.ParseLine(line, &pt, plain);
    const ParseError &err = parser.error();
    if (st == ParseStatus::Invalid) {
        CHECK(err.cls != ErrorClass::None);
        CHECK(err.message[0] != '\0');
        CHECK(std::memchr(err.message, '\0', sizeof(err.message)) != nullptr);
        CHECK(err.column >= 1 && err.column <= line.size() + 1);
    } else {
        CHECK(err.cls == ErrorClass::None);
    }
    std::string first;
    if (st == ParseStatus::Ok) {
        CHECK(pt.nfields >= 1);
        CHECK(pt.measurement.size >= 1);
        CheckText(pt.measurement, line);
        for (uint32_t i = 0; i < pt.ntags; ++i) {
            CheckText(pt.tags[i].key, line);
            CheckText(pt.tags[i].value, line);
            CHECK(pt.tags[i].key.size > 0 && pt.tags[i].value.size > 0);
        }
        for (uint32_t i = 0; i < pt.nfields; ++i) {
            const Field &f = pt.fields[i];
            CheckText(f.key, line);
            CHECK(f.key.size > 0);
            CheckText(f.str, line);
            if (f.type != FieldType::String)
                CHECK(!f.str.escaped && f.str.size > 0);
            if (f.type == FieldType::Float)
                CHECK(f.value.f == f.value.f && f.value.f - f.value.f == 0); /* finite */
            for (uint32_t j = 0; j < i; ++j)
                CHECK(UnescapeToString(pt.fields[j].key) != UnescapeToString(f.key));
        }
        if (pt.has_time)
            CHECK(pt.time_ns >= INT64_MIN + 2 && pt.time_ns <= INT64_MAX - 1);
        first = Describe(pt);
    }
    /* same answer from a parser that has not seen the previous lines and never takes the
     * single-pass fast path: the fast path must agree with the full parser on every line */
    Point again;
    ParseStatus st2 = fresh.ParseLine(line, &again);
    CHECK(st2 == st);
    if (st == ParseStatus::Ok)
        CHECK(Describe(again) == first);
    else if (st == ParseStatus::Invalid)
        CHECK(std::strcmp(fresh.error().message, err.message) == 0);
}

/*
 * When `line` matches `shape`, a parse of it must give the shape's keys in order and the
 * values MatchShape read, bit for bit.
 */
void CheckShape(const LineShape &shape, const ParserOptions &options, std::string_view line)
{
    LineParser matcher(options);
    ShapeValues sv;
    if (!matcher.MatchShape(shape, line, &sv))
        return;
    LineParser parser(options);
    Point pt;
    CHECK(parser.ParseLine(line, &pt, true) == ParseStatus::Ok);
    CHECK(pt.measurement.raw() == shape.measurement.raw());
    CHECK(pt.ntags == shape.ntags && pt.nfields == shape.nfields);
    for (uint32_t i = 0; i < pt.ntags; ++i) {
        CHECK(pt.tags[i].key.raw() == shape.tag_keys[i].raw());
        CHECK(!pt.tags[i].value.escaped);
        CHECK(pt.tags[i].value.raw() == sv.tag_values[i].raw());
    }
    for (uint32_t i = 0; i < pt.nfields; ++i) {
        const Field &f = pt.fields[i];
        CHECK(f.key.raw() == shape.field_keys[i].raw());
        CHECK(f.type == shape.field_types[i]);
        switch (f.type) {
            case FieldType::Float:
                CHECK(std::memcmp(&f.value.f, &sv.fields[i].f, sizeof(double)) == 0);
                break;
            case FieldType::Integer:
                CHECK(f.value.i == sv.fields[i].i);
                break;
            case FieldType::Unsigned:
                CHECK(f.value.u == sv.fields[i].u);
                break;
            case FieldType::Boolean:
                CHECK(f.value.b == sv.fields[i].b);
                break;
            case FieldType::String:
                CHECK(false); /* a shape has no string fields */
        }
    }
    CHECK(pt.has_time == sv.has_time);
    if (pt.has_time)
        CHECK(pt.time_ns == sv.time_ns);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* first byte picks the precision and the piece sizes; the rest is the stream */
    const uint8_t control = data[0];
    ++data;
    --size;

    std::vector<size_t> whole = EndsWhole(data, size);
    CHECK(EndsInPieces(data, size, control) == whole);
    CHECK(EndsInPieces(data, size, control * 7919u + 1) == whole);
    /* The last complete line's end: the end of the last line ended by a '\n'. */
    size_t last_complete = 0;
    for (size_t e : whole)
        if (e < size)
            last_complete = e + 1;
    LastEndsInPieces(data, size, control, whole.size(), last_complete);
    LastEndsInPieces(data, size, control * 31u + 7, whole.size(), last_complete);

    /* A plain buffer splits on its newlines alone, as the scanner does. */
    const bool plain = IsPlain(reinterpret_cast<const char *>(data), size);
    if (plain) {
        std::vector<size_t> ends;
        ForEachLine(
            reinterpret_cast<const char *>(data), size,
            [&](std::string_view line) {
                ends.push_back(
                    static_cast<size_t>(line.data() - reinterpret_cast<const char *>(data)) +
                    line.size());
            },
            true);
        CHECK(ends == whole);
    }

    ParserOptions options;
    options.precision = static_cast<Precision>(control % 4);
    options.max_line_length = (control & 0x80) ? 64 : 64 * 1024;
    ParserOptions full = options;
    full.fast_path = false;
    LineParser parser(options);
    LineParser fresh(full);
    /* The layout of the last line that parsed, as a worker keeps it; the line stays in `data`. */
    LineShape shape;
    bool have_shape = false;
    size_t count =
        ForEachLine(reinterpret_cast<const char *>(data), size, [&](std::string_view line) {
            CheckLine(parser, fresh, line, plain);
            fresh = LineParser(full);
            const bool line_plain = plain || IsPlain(line.data(), line.size());
            if (have_shape && line_plain)
                CheckShape(shape, options, line);
            LineParser learner(options);
            Point pt;
            if (learner.ParseLine(line, &pt, line_plain) == ParseStatus::Ok)
                have_shape = LearnShape(pt, &shape);
        });
    CHECK(count == whole.size());
    return 0;
}
