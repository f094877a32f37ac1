/*
 * line_protocol.hpp — the InfluxDB line protocol parser (pure C++, no PostgreSQL headers).
 *
 * Vocabulary:
 *   line         one record of text, ended by '\n' (a '\n' inside a quoted string field
 *                value belongs to the value, as in InfluxDB 1.x); a trailing '\r' is ignored.
 *   point        what a valid line describes: measurement, tag set, field set, timestamp.
 *   measurement  the name before the first unescaped ',' or ' '; one table per measurement.
 *   tag          key=value pair of the series key (strings only).
 *   field        key=value pair with a typed value: float, integer (i), unsigned (u),
 *                boolean, string ("...").
 *
 * Zero-copy: every name and string value of a parsed Point is a slice of the input buffer
 * (Text).  A slice that contained escape sequences is flagged, and Unescape() produces the
 * real bytes on demand.  The parser keeps its tag and field arrays between lines, so a
 * steady stream of lines allocates nothing.
 *
 * A bad line is rejected alone: ParseLine() reports what was wrong and at which column
 * (1-based byte offset into the line), and the next line is parsed independently.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace influx
{

/* Unit of the timestamps in incoming lines. */
enum class Precision : uint8_t { Nanoseconds, Microseconds, Milliseconds, Seconds, Minutes, Hours };

/* Parses "ns", "us", "ms", "s", "m", "h" (also "n", "u" as InfluxDB 1.x spells them). */
bool ParsePrecision(std::string_view text, Precision *out) noexcept;
const char *PrecisionName(Precision p) noexcept;

enum class FieldType : uint8_t { Float, Integer, Unsigned, Boolean, String };

/* "float", "integer", "unsigned", "boolean", "string" */
const char *FieldTypeName(FieldType t) noexcept;

/*
 * Which escape rules apply to a slice (those of InfluxDB 1.x, see docs/line-protocol.md).
 * Measurement: "\," and "\ ".  Tag keys and tag values (Key): "\,", "\=", "\ ".  Field keys:
 * "\,", "\=", "\ " and also "\"" (InfluxDB 1.x's field iterator unescapes it).  String field
 * values: "\"" and "\\".  A backslash before any other character stays literal, and outside
 * string values a backslash never escapes another backslash: the tag value "a\\,b" is "a\,b".
 */
enum class TextKind : uint8_t { Measurement, Key, StringValue, FieldKey };

/* A slice of the input.  `escaped` is true when it contains at least one backslash. */
struct Text {
    const char *data = nullptr;
    uint32_t size = 0;
    bool escaped = false;
    TextKind kind = TextKind::Key;

    std::string_view raw() const noexcept { return {data, size}; }
};

/* The first and the last sizeof(Word) bytes of a and b agree (n >= sizeof(Word)). */
template <typename Word> inline bool SameEnds(const char *a, const char *b, size_t n) noexcept
{
    Word a0, b0, a1, b1;
    std::memcpy(&a0, a, sizeof(Word));
    std::memcpy(&b0, b, sizeof(Word));
    std::memcpy(&a1, a + n - sizeof(Word), sizeof(Word));
    std::memcpy(&b1, b + n - sizeof(Word), sizeof(Word));
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

/*
 * a[0..n) == b[0..n).  Keys are mostly 2 to 16 bytes: two overlapping word loads compare
 * them without a call to memcmp.
 */
inline bool SameBytes(const char *a, const char *b, size_t n) noexcept
{
    if (n >= 8 && n <= 16)
        return SameEnds<uint64_t>(a, b, n);
    if (n >= 4 && n < 8)
        return SameEnds<uint32_t>(a, b, n);
    if (n >= 2 && n < 4)
        return SameEnds<uint16_t>(a, b, n);
    if (n < 2)
        return n == 0 || a[0] == b[0];
    return std::memcmp(a, b, n) == 0;
}

/* Unescaped length of a slice (== size when !escaped). */
size_t UnescapedSize(const Text &t) noexcept;
/* Writes the unescaped bytes of t to out (room for UnescapedSize(t) bytes); returns length. */
size_t Unescape(const Text &t, char *out) noexcept;
/* Convenience for tests and cold paths. */
std::string UnescapeToString(const Text &t);

struct Tag {
    Text key;
    Text value;
};

struct Field {
    Text key;
    FieldType type = FieldType::Float;
    union {
        double f;
        int64_t i;
        uint64_t u;
        bool b;
    } value{};
    Text str; /* the string value, for FieldType::String; for the other types the value as
               * written, suffix included ("1.5", "42i", "true"), never escaped */
};

struct Point {
    Text measurement;
    const Tag *tags = nullptr; /* ntags entries, in line order */
    uint32_t ntags = 0;
    const Field *fields = nullptr; /* nfields entries; duplicate keys removed, last one wins */
    uint32_t nfields = 0;
    bool has_time = false; /* false: no timestamp in the line, caller uses its own clock */
    int64_t time_ns = 0;   /* timestamp scaled to nanoseconds (valid when has_time) */
};

/*
 * The layout of a line: measurement, tag keys and field keys in line order, and each
 * field's type.  A stream of one measurement repeats one layout line after line, so a line
 * can be checked against the layout of the one before instead of being parsed from scratch
 * (LineParser::MatchShape).  Learned by LearnShape from a parsed point; its slices point
 * into that point's line, which must outlive the shape.
 */
constexpr uint32_t kShapeMaxKeys = 64;

struct LineShape {
    Text measurement;
    uint32_t ntags = 0;
    uint32_t nfields = 0;
    Text tag_keys[kShapeMaxKeys];
    Text field_keys[kShapeMaxKeys];
    FieldType field_types[kShapeMaxKeys];
};

/*
 * The length of a plain line's measurement: up to the first ',' or ' ' after its first
 * byte (line.size() when there is none).  A plain line's measurement has no escapes.
 */
inline size_t PlainMeasurementLength(std::string_view line) noexcept
{
    size_t i = 1;
    while (i < line.size() && line[i] != ',' && line[i] != ' ')
        ++i;
    return line.empty() ? 0 : i;
}

/*
 * Makes *shape the layout of `point`; false when the point has none MatchShape can use:
 * names with escapes, string fields, more than kShapeMaxKeys tags or fields.
 */
bool LearnShape(const Point &point, LineShape *shape) noexcept;

/* What MatchShape read from a line: its values in the shape's order. */
struct ShapeValues {
    Text tag_values[kShapeMaxKeys];
    union {
        double f;
        int64_t i;
        uint64_t u;
        bool b;
    } fields[kShapeMaxKeys];
    bool has_time = false;
    int64_t time_ns = 0;
};

enum class ParseStatus : uint8_t {
    Ok,      /* a point */
    Skip,    /* blank line or # comment: not a point, not an error */
    Invalid, /* the line is rejected; see LineParser::error() */
};

/* Why a line was rejected (for counters); the text goes to the user. */
enum class ErrorClass : uint8_t { None, Syntax, Range, TooLong, Encoding, OutOfMemory, Internal };

struct ParseError {
    ErrorClass cls = ErrorClass::None;
    uint32_t column = 0;     /* 1-based byte offset in the line where the problem was found */
    char message[160] = {0}; /* e.g. "invalid field value at column 17: missing 'i' ..." */
};

struct ParserOptions {
    Precision precision = Precision::Nanoseconds;
    size_t max_line_length = 64 * 1024 * 1024; /* bytes, excluding the '\n' */
    /* Single-pass parse of common lines; off only to test it against the full parser. */
    bool fast_path = true;
};

class LineParser
{
  public:
    explicit LineParser(ParserOptions options = {}) : options_(options) {}

    void set_options(const ParserOptions &options) noexcept { options_ = options; }
    const ParserOptions &options() const noexcept { return options_; }

    /*
     * Parses one line (without its terminating '\n'; a trailing '\r' is ignored).  On Ok,
     * *out refers to the input buffer and to arrays owned by this parser: both must stay
     * untouched until the next call.  Never throws; never allocates once warmed up.
     * `plain`: the caller has checked the line with IsPlain(), so the parser skips its own
     * UTF-8, quote and escape checks (the result is the same).
     */
    ParseStatus ParseLine(std::string_view line, Point *out, bool plain = false) noexcept;

    /*
     * True when a plain line (see IsPlain) has exactly the layout of `shape`: then
     * ParseLine would accept it, giving the shape's measurement, tag keys and field keys in
     * the same order, with the tag values, field values and time written to *out.  False
     * says nothing about the line (it may be valid or not): the caller parses it.
     */
    bool MatchShape(const LineShape &shape, std::string_view line, ShapeValues *out) const noexcept;

    const ParseError &error() const noexcept { return error_; }

    /*
     * Gives back the scratch memory a line with unusually many keys made the parser keep
     * (its arrays grow with the longest line seen and are reused): call between batches.
     */
    void Trim() noexcept;

    /* Entries the scratch arrays keep across Trim(): a few hundred keys per line. */
    static constexpr size_t kKeptSlots = 1024;

  private:
    ParserOptions options_;
    ParseError error_;
    std::vector<Tag> tags_;
    std::vector<Field> fields_;
    /* Scratch space reused between lines: numbers and booleans checked by the syntax pass
     * (str holds their span), and the open-addressing table for duplicate keys. */
    std::vector<Field> values_;
    std::vector<uint32_t> slots_;
};

/*
 * True when data[0..size) is plain: ASCII without NUL, '"' or '\\'.  In a plain buffer
 * every '\n' ends a line, and no line needs escapes, quoted strings or the UTF-8 check:
 * one pass over a whole chunk answers for all its lines.
 */
bool IsPlain(const char *data, size_t size) noexcept;

/*
 * Finds where lines end, following InfluxDB 1.x: a '\n' ends a line unless it is inside a
 * double-quoted string field value.  State survives between calls, so a stream can be fed
 * in pieces of any size (TCP); Reset() starts a new stream.
 */
class LineScanner
{
  public:
    /*
     * Scans data[0..size) and returns the offset just past the first line end ('\n'), or
     * npos if the bytes contain no complete line yet (then all of them were consumed into
     * the scanner's state and the next call continues after them).  After a line end the
     * state is ready for the next line.
     */
    size_t FindLineEnd(const char *data, size_t size) noexcept;

    /*
     * FindLineEnd over all of data[0..size): the offset just past the last line end (npos
     * if there is none), with the number of lines ending in the buffer added to *lines.
     * The bytes after the last end are consumed into the state, as FindLineEnd does.
     */
    size_t FindLastLineEnd(const char *data, size_t size, uint64_t *lines) noexcept;
    void Reset() noexcept;

    static constexpr size_t npos = static_cast<size_t>(-1);

  private:
    bool in_fields_ = false;
    bool quoted_ = false;
    bool escape_ = false;
    uint32_t equals_ = 0;
    uint32_t commas_ = 0;
};

/*
 * As ForEachLine, but fn returns whether to go on: returns the bytes consumed, up to and
 * including the end of the last line fn was called for (all of them if fn never said
 * stop).  The rest of the buffer starts with a whole line, so a caller can hand it on.
 */
template <typename Fn>
size_t ForEachLineUntil(const char *data, size_t size, Fn &&fn, bool plain = false)
{
    size_t pos = 0;
    if (plain) {
        while (pos < size) {
            const void *nl = std::memchr(data + pos, '\n', size - pos);
            size_t end =
                nl != nullptr ? static_cast<size_t>(static_cast<const char *>(nl) - data) : size;
            bool go_on = fn(std::string_view(data + pos, end - pos));
            pos = end < size ? end + 1 : size;
            if (!go_on)
                break;
        }
        return pos;
    }
    LineScanner scanner;
    while (pos < size) {
        size_t end = scanner.FindLineEnd(data + pos, size - pos);
        if (end == LineScanner::npos) {
            (void) fn(std::string_view(data + pos, size - pos));
            return size;
        }
        bool go_on = fn(std::string_view(data + pos, end - 1));
        pos += end;
        if (!go_on)
            break;
    }
    return pos;
}

/*
 * Calls fn(std::string_view line) for every line of a complete buffer (the last line may
 * lack its '\n'), using LineScanner's rules; returns the number of lines seen.  `plain`:
 * the caller has checked the buffer with IsPlain(), so every '\n' ends a line.
 */
template <typename Fn>
size_t ForEachLine(const char *data, size_t size, Fn &&fn, bool plain = false)
{
    size_t count = 0;
    ForEachLineUntil(
        data, size,
        [&fn, &count](std::string_view line) {
            fn(line);
            ++count;
            return true;
        },
        plain);
    return count;
}

} // namespace influx
