/*
 * line_protocol.cpp — the InfluxDB line protocol parser (pure C++, see line_protocol.hpp).
 *
 * Vocabulary: a *line* is what LineScanner cut out of a buffer; a *point* is what a valid
 * line describes; the *series key* is the measurement plus the tag set (the text before the
 * first unescaped space); the *field block* is the text between the series key and the
 * timestamp.
 *
 * Compatibility is the point of this file.  Users move from InfluxDB 1.x, and a line that
 * InfluxDB accepts must be accepted here with the same values, and a line it rejects must
 * be rejected.  InfluxDB's parser (models/points.go) does not follow one grammar: it checks
 * a line with one set of scanning rules (scanKey, scanFields, scanTime) and later reads the
 * values back with a second, slightly different set (walkFields and the field iterator).
 * The two only disagree on strange input (a backslash before '=' in a field key, text after
 * the closing quote of a string), but there they decide what InfluxDB stores.  So the
 * parser below runs the same two passes, written from a reading of that behaviour:
 *
 *   1. the syntax pass over the whole line: measurement, tags, field block (numbers and
 *      booleans are converted here, as InfluxDB range-checks them here), timestamp;
 *   2. the field pass over the field block only, which cuts it into key=value pairs the way
 *      InfluxDB's field iterator does and takes the values (reusing the numbers converted in
 *      pass 1 when the spans agree, which is always, except on the strange input above).
 *
 * Deliberate differences (docs/line-protocol.md): a trailing '\r' is dropped (CRLF input),
 * NUL bytes and invalid UTF-8 reject the line, unsigned integers are always enabled, NaN and
 * infinities are never accepted, and a line whose fields all have empty keys is rejected.
 *
 * Nothing here allocates once the parser's vectors have grown to the longest line seen.
 */
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <limits>
#include <new>

#include <fast_float/fast_float.h>

#include "protocol/line_protocol.hpp"
#include "core/cpp_only.hpp"

namespace influx
{

namespace
{

/* InfluxDB's limit on measurement + tags (and on that + 4 + a field key). */
constexpr size_t kMaxKeyLength = 65535;
/* InfluxDB keeps the two lowest and the highest int64 nanosecond values for itself. */
constexpr int64_t kMinNanoTime = std::numeric_limits<int64_t>::min() + 2;
constexpr int64_t kMaxNanoTime = std::numeric_limits<int64_t>::max() - 1;
/* Up to this many tags or fields, duplicates are found by comparing every pair. */
constexpr size_t kLinearDedupLimit = 16;

inline bool IsDigitOrDot(char c) noexcept
{
    return (c >= '0' && c <= '9') || c == '.';
}

/* Space, tab and NUL: what InfluxDB skips before the series key, fields and timestamp. */
inline size_t SkipWhitespace(const char *b, size_t n, size_t i) noexcept
{
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\0'))
        ++i;
    return i;
}

inline bool IsEscapable(TextKind kind, char c) noexcept
{
    switch (kind) {
        case TextKind::Measurement:
            return c == ',' || c == ' ';
        case TextKind::FieldKey:
            return c == ',' || c == ' ' || c == '=' || c == '"';
        case TextKind::Key:
            return c == ',' || c == ' ' || c == '=';
        case TextKind::StringValue:
            return c == '"' || c == '\\';
    }
    return false;
}

/* Walks the unescaped bytes of a Text one at a time (for comparing and hashing keys). */
struct UnescapeCursor {
    const char *p;
    const char *end;
    TextKind kind;

    explicit UnescapeCursor(const Text &t) noexcept : p(t.data), end(t.data + t.size), kind(t.kind)
    {
    }

    bool Next(char *c) noexcept
    {
        if (p >= end)
            return false;
        if (*p == '\\' && p + 1 < end && IsEscapable(kind, p[1])) {
            *c = p[1];
            p += 2;
        } else {
            *c = *p++;
        }
        return true;
    }
};

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t HashRaw(const Text &t) noexcept
{
    uint64_t h = kFnvOffset;
    for (uint32_t i = 0; i < t.size; ++i)
        h = (h ^ static_cast<unsigned char>(t.data[i])) * kFnvPrime;
    return h;
}

uint64_t HashUnescaped(const Text &t) noexcept
{
    if (!t.escaped)
        return HashRaw(t);
    uint64_t h = kFnvOffset;
    UnescapeCursor cur(t);
    char c;
    while (cur.Next(&c))
        h = (h ^ static_cast<unsigned char>(c)) * kFnvPrime;
    return h;
}

bool EqualRaw(const Text &a, const Text &b) noexcept
{
    return a.size == b.size && SameBytes(a.data, b.data, a.size);
}

bool EqualUnescapedSlow(const Text &a, const Text &b) noexcept;

inline bool EqualUnescaped(const Text &a, const Text &b) noexcept
{
    /* Keys often share a prefix (usage_user, usage_system): the last byte tells more. */
    if (!a.escaped && !b.escaped)
        return a.size == b.size && (a.size == 0 || a.data[a.size - 1] == b.data[a.size - 1]) &&
               SameBytes(a.data, b.data, a.size);
    return EqualUnescapedSlow(a, b);
}

bool EqualUnescapedSlow(const Text &a, const Text &b) noexcept
{
    UnescapeCursor ca(a), cb(b);
    char x, y;
    for (;;) {
        bool more_a = ca.Next(&x), more_b = cb.Next(&y);
        if (more_a != more_b)
            return false;
        if (!more_a)
            return true;
        if (x != y)
            return false;
    }
}

size_t TableSize(size_t n)
{
    size_t cap = 32;
    while (cap < 2 * n)
        cap <<= 1;
    return cap;
}

/*
 * Index of the first tag whose key (compared byte for byte as written, like InfluxDB) was
 * already used by an earlier tag, or npos.
 */
size_t FindDuplicateTag(const std::vector<Tag> &tags, size_t n, std::vector<uint32_t> &slots)
{
    if (n < 2)
        return std::string_view::npos;
    if (n <= kLinearDedupLimit) {
        for (size_t i = 1; i < n; ++i)
            for (size_t j = 0; j < i; ++j)
                if (EqualRaw(tags[i].key, tags[j].key))
                    return i;
        return std::string_view::npos;
    }
    const size_t cap = TableSize(n), mask = cap - 1;
    slots.assign(cap, 0);
    for (size_t i = 0; i < n; ++i) {
        size_t h = HashRaw(tags[i].key) & mask;
        while (slots[h] != 0) {
            if (EqualRaw(tags[slots[h] - 1].key, tags[i].key))
                return i;
            h = (h + 1) & mask;
        }
        slots[h] = static_cast<uint32_t>(i + 1);
    }
    return std::string_view::npos;
}

/*
 * Removes fields whose (unescaped) key repeats an earlier one; the last value wins and takes
 * the place of the first occurrence.  InfluxDB builds a map from the fields, with the same
 * outcome.
 */
/* 7 bits of a hash of a raw key: its length, first and last eight bytes. */
inline unsigned KeyBits(const char *p, size_t n) noexcept
{
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        std::memcpy(&a, p, 8);
        std::memcpy(&b, p + n - 8, 8);
    } else {
        for (size_t i = 0; i < n; ++i)
            a |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    }
    const uint64_t x = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ n) * 0xFF51AFD7ED558CCDULL;
    return static_cast<unsigned>(x >> 57);
}

/*
 * True when no two keys can be equal: their hashes fill distinct bits of a 128-bit set.
 * Most lines have no duplicate field, and this proves it in one pass; a shared bit (or an
 * escaped key, whose raw bytes are not what is compared) leaves it to the full check.
 */
bool KeysSurelyDistinct(const std::vector<Field> &fields, size_t n) noexcept
{
    uint64_t seen[2] = {0, 0};
    for (size_t i = 0; i < n; ++i) {
        const Text &k = fields[i].key;
        if (k.escaped)
            return false;
        const unsigned h = KeyBits(k.data, k.size);
        const uint64_t bit = 1ULL << (h & 63);
        if (seen[h >> 6] & bit)
            return false;
        seen[h >> 6] |= bit;
    }
    return true;
}

size_t DedupeFields(std::vector<Field> &fields, size_t n, std::vector<uint32_t> &slots)
{
    if (n < 2 || KeysSurelyDistinct(fields, n))
        return n;
    size_t kept = 0;
    if (n <= kLinearDedupLimit) {
        for (size_t i = 0; i < n; ++i) {
            size_t j = 0;
            while (j < kept && !EqualUnescaped(fields[j].key, fields[i].key))
                ++j;
            if (j < kept)
                fields[j] = fields[i];
            else if (kept++ != i)
                fields[kept - 1] = fields[i];
        }
    } else {
        const size_t cap = TableSize(n), mask = cap - 1;
        slots.assign(cap, 0);
        for (size_t i = 0; i < n; ++i) {
            size_t h = HashUnescaped(fields[i].key) & mask;
            bool found = false;
            while (slots[h] != 0) {
                if (EqualUnescaped(fields[slots[h] - 1].key, fields[i].key)) {
                    fields[slots[h] - 1] = fields[i];
                    found = true;
                    break;
                }
                h = (h + 1) & mask;
            }
            if (!found) {
                slots[h] = static_cast<uint32_t>(kept + 1);
                if (kept++ != i)
                    fields[kept - 1] = fields[i];
            }
        }
    }
    return kept;
}

/*
 * Offset of the first NUL byte or invalid UTF-8 sequence (overlong forms, surrogates and
 * code points above U+10FFFF are invalid, as in PostgreSQL), or npos.  Checks eight bytes
 * at a time while they are plain non-NUL ASCII.
 */
size_t FindBadByte(const char *data, size_t n, bool *is_nul) noexcept
{
    const auto *p = reinterpret_cast<const unsigned char *>(data);
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            const uint64_t high = w & 0x8080808080808080ULL;
            const uint64_t zero = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL;
            if (high | zero)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        const unsigned char c = p[i];
        if (c == 0) {
            *is_nul = true;
            return i;
        }
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            *is_nul = false;
            return i;
        }
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) {
            *is_nul = false;
            return i;
        }
        for (size_t k = 2; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) {
                *is_nul = false;
                return i;
            }
        }
        i += len;
    }
    return std::string_view::npos;
}

bool ParseInt64(const char *p, const char *e, int64_t *v) noexcept
{
    auto r = std::from_chars(p, e, *v);
    return r.ec == std::errc() && r.ptr == e;
}

bool ParseUint64(const char *p, const char *e, uint64_t *v) noexcept
{
    auto r = std::from_chars(p, e, *v);
    return r.ec == std::errc() && r.ptr == e;
}

/* Decimal floats only; NaN and infinities are refused (InfluxDB refuses them too). */
bool ParseDouble(const char *p, const char *e, double *v) noexcept
{
    auto r = fast_float::from_chars(p, e, *v);
    return r.ec == std::errc() && r.ptr == e && std::isfinite(*v);
}

/*
 * The finite double at the start of [p, e): where it ends, or nullptr.  Out of line: the
 * fast path's loop stays small.
 */
__attribute__((noinline)) const char *ParseDoublePrefix(const char *p, const char *e,
                                                        double *v) noexcept
{
    auto r = fast_float::from_chars(p, e, *v);
    return r.ec == std::errc() && std::isfinite(*v) ? r.ptr : nullptr;
}

/*
 * The value of 8 decimal digits packed in v, the first one in the lowest byte, each as an
 * ASCII digit or as its value 0-9.
 */
inline uint64_t PackedDigitsValue(uint64_t v) noexcept
{
    v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
    return ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

/* The value of the 8 ASCII digits at p (all known to be digits). */
inline uint64_t EightDigits(const char *p) noexcept
{
    uint64_t v;
    std::memcpy(&v, p, 8);
    return PackedDigitsValue(v);
}

/*
 * Reads the ASCII digits at *q (up to e) into *w, as w * 10^k + their value, and moves *q
 * past them.  Eight bytes at a time while eight lie before e: the digits among them are
 * found and combined without a loop.  *w wraps past 19 digits; callers count digits.
 */
inline void ReadDigits(const char **q, const char *e, uint64_t *w) noexcept
{
    static constexpr uint64_t kPow10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
    const char *p = *q;
    uint64_t acc = *w;
    while (e - p >= 8) {
        uint64_t v;
        std::memcpy(&v, p, 8);
        /*
         * Digits become 0-9.  A byte is no digit if its high nibble is set now or after
         * adding 6; a carry out of a byte only reaches bytes after a non-digit.
         */
        const uint64_t x = v ^ 0x3030303030303030ULL;
        const uint64_t other = (x | (x + 0x0606060606060606ULL)) & 0xF0F0F0F0F0F0F0F0ULL;
        if (other == 0) {
            acc = acc * 100000000 + PackedDigitsValue(x);
            p += 8;
            continue;
        }
        const unsigned k = static_cast<unsigned>(__builtin_ctzll(other)) / 8;
        if (k > 0) {
            /* The k digits, moved up behind 8 - k leading zeros. */
            acc = acc * kPow10[k] + PackedDigitsValue(x << (8 * (8 - k)));
            p += k;
        }
        *q = p;
        *w = acc;
        return;
    }
    while (p < e && static_cast<unsigned char>(*p - '0') < 10)
        acc = acc * 10 + static_cast<uint64_t>(*p++ - '0');
    *q = p;
    *w = acc;
}

/*
 * The common float of metrics, -?D+[.D+] with at most 19 significant digits, followed by ',' or
 * ' ' or the end: where it ends, or nullptr for anything else (ParseDoublePrefix then
 * decides).  The digits are read 8 at a time into one integer, and fast_float's own
 * decimal-to-binary step (Eisel-Lemire) rounds it, so the value is exactly what
 * fast_float::from_chars gives; the rare input that step cannot round on its own also
 * goes back to from_chars.  compute_float and to_float are fast_float's internals, not
 * its API: the unit test FastPathFloatsAreBitForBitFastFloats compares the two paths bit
 * for bit, so a fast_float upgrade that changed them would fail the build's tests.
 */
__attribute__((always_inline)) inline const char *ParseSimpleDouble(const char *p, const char *e,
                                                                    double *v) noexcept
{
    const bool negative = *p == '-';
    const char *q = p + (negative ? 1 : 0);
    const char *digits = q;
    /* Leading zeros are no significant digits: "0.000123" has 3. */
    while (q < e && *q == '0')
        ++q;
    size_t zeros = static_cast<size_t>(q - digits);
    uint64_t w = 0;
    ReadDigits(&q, e, &w);
    size_t count = static_cast<size_t>(q - digits);
    if (count == 0)
        return nullptr;
    int64_t exponent = 0;
    if (q < e && *q == '.') {
        const char *fraction = ++q;
        if (zeros == count) {
            while (q < e && *q == '0')
                ++q;
            zeros += static_cast<size_t>(q - fraction);
        }
        ReadDigits(&q, e, &w);
        if (q == fraction)
            return nullptr;
        count += static_cast<size_t>(q - fraction);
        exponent = -static_cast<int64_t>(q - fraction);
    }
    if (count - zeros > 19 || (q < e && *q != ',' && *q != ' '))
        return nullptr;
    fast_float::adjusted_mantissa am =
        fast_float::compute_float<fast_float::binary_format<double>>(exponent, w);
    if (am.power2 < 0)
        return nullptr;
    fast_float::to_float(negative, am, *v);
    return q;
}

/* The 10 spellings InfluxDB accepts. */
bool ParseBool(const char *p, size_t len, bool *v) noexcept
{
    std::string_view s(p, len);
    if (s == "t" || s == "T" || s == "true" || s == "True" || s == "TRUE") {
        *v = true;
        return true;
    }
    if (s == "f" || s == "F" || s == "false" || s == "False" || s == "FALSE") {
        *v = false;
        return true;
    }
    return false;
}

/* Scales a timestamp to nanoseconds; false when it leaves InfluxDB's time range. */
bool ScaleTime(int64_t ts, Precision precision, int64_t *out) noexcept
{
    int64_t mult = 1;
    switch (precision) {
        case Precision::Nanoseconds:
            mult = 1;
            break;
        case Precision::Microseconds:
            mult = 1000;
            break;
        case Precision::Milliseconds:
            mult = 1000 * 1000;
            break;
        case Precision::Seconds:
            mult = 1000 * 1000 * 1000;
            break;
        case Precision::Minutes:
            mult = INT64_C(60) * 1000 * 1000 * 1000;
            break;
        case Precision::Hours:
            mult = INT64_C(3600) * 1000 * 1000 * 1000;
            break;
    }
    int64_t t;
    if (__builtin_mul_overflow(ts, mult, &t))
        return false;
    if (t < kMinNanoTime || t > kMaxNanoTime)
        return false;
    *out = t;
    return true;
}

/* The state of one ParseLine call. */
struct Scan {
    const char *b; /* the line, after leading whitespace */
    size_t n;
    size_t base; /* offset of b in the line given to ParseLine, for columns */
    ParseError *err;
    std::vector<Tag> *tags;
    std::vector<Field> *fields;
    std::vector<Field> *values;
    std::vector<uint32_t> *slots;
    size_t ntags = 0; /* entries in use; the vectors only grow, so no entry is ever re-zeroed */
    size_t nfields = 0;
    size_t nvalues = 0;
};

/* Grows a scratch vector by one entry (out of line: it happens only while warming up). */
template <typename T> __attribute__((noinline)) void GrowSlots(std::vector<T> &v)
{
    v.emplace_back();
}

/* The next entry of a scratch vector, grown only while the parser warms up. */
template <typename T> inline T &NextSlot(std::vector<T> &v, size_t *count)
{
    if (__builtin_expect(*count == v.size(), 0))
        GrowSlots(v);
    return v[(*count)++];
}

bool FailF(Scan &s, ErrorClass cls, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

bool FailF(Scan &s, ErrorClass cls, size_t pos, const char *fmt, ...)
{
    s.err->cls = cls;
    s.err->column = static_cast<uint32_t>(s.base + pos + 1);
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(s.err->message, sizeof(s.err->message), fmt, ap);
    va_end(ap);
    return false;
}

/* "<what> at column N" */
bool Fail(Scan &s, ErrorClass cls, size_t pos, const char *what)
{
    return FailF(s, cls, pos, "%s at column %zu", what, s.base + pos + 1);
}

/*
 * A numeric field value starting at b[start] (a digit, '.', '-', 'N' or 'n'), following
 * InfluxDB's scanNumber: which characters may appear where, the 'i' and 'u' suffixes, and
 * the range checks.  On success *end is the ',' or ' ' (or n) after the value, and the
 * converted value is remembered in s.values.
 */
bool ScanNumber(Scan &s, size_t start, size_t *end)
{
    const char *b = s.b;
    const size_t n = s.n;
    size_t i = start;
    bool is_int = false, is_unsigned = false, decimal = false, scientific = false;

    if (i < n && b[i] == '-') {
        ++i;
        if (i == n)
            return Fail(s, ErrorClass::Syntax, i, "invalid number");
    }
    for (; i < n; ++i) {
        const char c = b[i];
        if (c == ',' || c == ' ')
            break;
        if ((c == 'i' || c == 'u') && i > start && !(is_int || is_unsigned)) {
            (c == 'i' ? is_int : is_unsigned) = true;
            continue;
        }
        if (c == '.') {
            if (decimal)
                return Fail(s, ErrorClass::Syntax, i, "invalid number");
            decimal = true;
        }
        if (i > start && (c == 'e' || c == 'E')) {
            scientific = true;
            continue;
        }
        if ((c == '+' || c == '-') && (b[i - 1] == 'e' || b[i - 1] == 'E'))
            continue;
        if (!IsDigitOrDot(c))
            return Fail(s, ErrorClass::Syntax, i, "invalid number");
    }
    if ((is_int || is_unsigned) && (decimal || scientific))
        return Fail(s, ErrorClass::Syntax, start, "invalid number");

    size_t digits = i - start;
    digits -= is_int ? 1 : 0;
    digits -= decimal ? 1 : 0;
    digits -= b[start] == '-' ? 1 : 0;
    if (digits == 0)
        return Fail(s, ErrorClass::Syntax, start, "invalid number");

    Field &v = NextSlot(*s.values, &s.nvalues);
    v.str = Text{b + start, static_cast<uint32_t>(i - start), false, TextKind::StringValue};
    if (is_int) {
        if (b[i - 1] != 'i')
            return Fail(s, ErrorClass::Syntax, start, "invalid number");
        v.type = FieldType::Integer;
        if (!ParseInt64(b + start, b + i - 1, &v.value.i))
            return Fail(s, ErrorClass::Range, start, "integer value out of range");
    } else if (is_unsigned) {
        if (b[i - 1] != 'u')
            return Fail(s, ErrorClass::Syntax, start, "invalid number");
        if (b[start] == '-')
            return Fail(s, ErrorClass::Range, start, "unsigned value cannot be negative");
        v.type = FieldType::Unsigned;
        if (!ParseUint64(b + start, b + i - 1, &v.value.u))
            return Fail(s, ErrorClass::Range, start, "unsigned value out of range");
    } else {
        v.type = FieldType::Float;
        auto r = fast_float::from_chars(b + start, b + i, v.value.f);
        if (r.ec != std::errc() || r.ptr != b + i)
            return Fail(s, ErrorClass::Syntax, start, "invalid float");
        if (!std::isfinite(v.value.f))
            return Fail(s, ErrorClass::Range, start, "float value out of range");
    }
    *end = i;
    return true;
}

/* A boolean field value starting at b[start], following InfluxDB's scanBoolean. */
bool ScanBoolean(Scan &s, size_t start, size_t *end)
{
    const char *b = s.b;
    size_t i = start + 1;
    while (i < s.n && b[i] != ',' && b[i] != ' ')
        ++i;
    bool value;
    if (!ParseBool(b + start, i - start, &value))
        return Fail(s, ErrorClass::Syntax, start, "invalid boolean");
    Field &v = NextSlot(*s.values, &s.nvalues);
    v.type = FieldType::Boolean;
    v.value.b = value;
    v.str = Text{b + start, static_cast<uint32_t>(i - start), false, TextKind::StringValue};
    *end = i;
    return true;
}

/*
 * Pass 1 over the field block starting at `start` (InfluxDB's scanFields): balanced quotes,
 * every '=' with a key before and a value after, numbers and booleans well formed, as many
 * '=' as commas + 1.  *end is the unquoted space (or n) that ends the block.
 */
bool ScanFields(Scan &s, size_t start, size_t *end)
{
    const char *b = s.b;
    const size_t n = s.n;
    size_t i = start, quote_at = 0, field_start = start;
    bool quoted = false;
    size_t equals = 0, commas = 0;

    while (i < n) {
        const char c = b[i];
        if (c == '\\' && i + 1 < n) {
            i += 2;
            continue;
        }
        if (c == '"' && equals > commas) {
            quoted = !quoted;
            quote_at = i;
            ++i;
            continue;
        }
        if (c == '=' && !quoted) {
            ++equals;
            /* "m =1" and "a=1,=2" lack a key; "a\ =1" and "a\,=1" do not */
            if ((b[i - 1] == ' ' || b[i - 1] == ',') && b[i - 2] != '\\')
                return Fail(s, ErrorClass::Syntax, i, "missing field key");
            if (i + 1 >= n || b[i + 1] == ',' || b[i + 1] == ' ')
                return Fail(s, ErrorClass::Syntax, i + 1, "missing field value");
            const char v = b[i + 1];
            if (IsDigitOrDot(v) || v == '-' || v == 'N' || v == 'n') {
                if (!ScanNumber(s, i + 1, &i))
                    return false;
                continue;
            }
            if (v != '"') {
                if (!ScanBoolean(s, i + 1, &i))
                    return false;
                continue;
            }
        }
        if (c == ',' && !quoted) {
            ++commas;
            field_start = i + 1;
        }
        if (c == ' ' && !quoted)
            break;
        ++i;
    }
    if (quoted)
        return Fail(s, ErrorClass::Syntax, quote_at, "unbalanced quotes");
    if (equals == 0 || commas != equals - 1)
        return Fail(s, ErrorClass::Syntax, field_start, "invalid field format");
    *end = i;
    return true;
}

/*
 * Pass 2 over the field block b[fs..fe) (InfluxDB's walkFields and field iterator): a key
 * runs to the first '=' not preceded by a backslash, a value to the first ',' outside
 * double quotes (where only \" and \\ are escapes).  The value's first and last characters
 * give its type.  Fields with an empty key or value are dropped, as InfluxDB drops them.
 * Long on purpose: one loop per field with InfluxDB's quote and escape states inline.
 */
bool WalkFields(Scan &s, size_t fs, size_t fe, size_t series_key_len)
{
    const char *f = s.b + fs;
    const size_t len = fe - fs;
    const std::vector<Field> &values = *s.values;
    size_t cursor = 0; /* next candidate in values (ordered by position) */
    size_t pos = 0;

    while (pos < len) {
        size_t k = pos;
        for (;;) {
            const void *eq = std::memchr(f + k, '=', len - k);
            if (eq == nullptr) {
                k = len;
                break;
            }
            k = static_cast<size_t>(static_cast<const char *>(eq) - f);
            if (k == 0 || f[k - 1] != '\\')
                break;
            ++k;
        }
        if (k + 2 > len)
            return Fail(s, ErrorClass::Syntax, fs + k, "missing field value");
        if (series_key_len + 4 + (k - pos) > kMaxKeyLength)
            return FailF(s, ErrorClass::Range, fs + pos,
                         "series key too long (%zu bytes, limit %zu)",
                         series_key_len + 4 + (k - pos), kMaxKeyLength);
        const bool key_bs = std::memchr(f + pos, '\\', k - pos) != nullptr;

        /* A number or boolean of pass 1 starting here has no quote, backslash or comma: the
         * value ends where pass 1 ended it. */
        const size_t v = k + 1;
        const char *vp = f + v;
        while (cursor < s.nvalues && values[cursor].str.data < vp)
            ++cursor;
        size_t j = v;
        bool value_bs = false;
        if (cursor < s.nvalues && values[cursor].str.data == vp &&
            (v + values[cursor].str.size == len || f[v + values[cursor].str.size] == ',')) {
            j = v + values[cursor].str.size;
        } else {
            bool quoted = false;
            while (j < len) {
                const char c = f[j];
                if (c == '\\') {
                    value_bs = true;
                    if (j + 1 < len && (f[j + 1] == '"' || f[j + 1] == '\\')) {
                        j += 2;
                        continue;
                    }
                } else if (c == '"') {
                    quoted = !quoted;
                } else if (c == ',' && !quoted) {
                    break;
                }
                ++j;
            }
        }
        const size_t next = j + 1;
        if (k == pos || j == v) { /* empty key or empty value: InfluxDB skips the field */
            pos = next;
            continue;
        }

        Field &field = NextSlot(*s.fields, &s.nfields);
        field.key = Text{f + pos, static_cast<uint32_t>(k - pos), key_bs, TextKind::FieldKey};
        const char first = f[v], last = f[j - 1];
        if (first == '"') {
            if (j - v < 2)
                return Fail(s, ErrorClass::Syntax, fs + v, "unbalanced quotes");
            field.type = FieldType::String;
            field.str =
                Text{f + v + 1, static_cast<uint32_t>(j - v - 2), false, TextKind::StringValue};
            field.str.escaped =
                value_bs && std::memchr(field.str.data, '\\', field.str.size) != nullptr;
        } else {
            const bool numeric = (first >= '0' && first <= '9') || first == '-' || first == '.' ||
                                 first == 'n' || first == 'N' || first == 'i' || first == 'I' ||
                                 first == 'u';
            field.str = Text{vp, static_cast<uint32_t>(j - v), false, TextKind::StringValue};
            FieldType type = !numeric      ? FieldType::Boolean
                             : last == 'i' ? FieldType::Integer
                             : last == 'u' ? FieldType::Unsigned
                                           : FieldType::Float;
            if (cursor < s.nvalues && values[cursor].str.data == vp &&
                values[cursor].str.size == j - v && values[cursor].type == type) {
                field.type = type;
                field.value = values[cursor].value;
            } else {
                /* The two passes cut this value differently: convert it as pass 2 sees it. */
                bool ok = false;
                field.type = type;
                switch (type) {
                    case FieldType::Integer:
                        ok = ParseInt64(vp, f + j - 1, &field.value.i);
                        break;
                    case FieldType::Unsigned:
                        ok = ParseUint64(vp, f + j - 1, &field.value.u);
                        break;
                    case FieldType::Float:
                        ok = ParseDouble(vp, f + j, &field.value.f);
                        break;
                    default:
                        ok = ParseBool(vp, j - v, &field.value.b);
                        break;
                }
                if (!ok)
                    return Fail(s, ErrorClass::Syntax, fs + v, "invalid field value");
            }
        }
        pos = next;
    }
    if (s.nfields == 0)
        return Fail(s, ErrorClass::Syntax, fs, "missing fields");
    s.nfields = DedupeFields(*s.fields, s.nfields, *s.slots);
    return true;
}

/*
 * Fast path: one pass over a line of the common shape — no backslash and no double quote
 * anywhere, every field value a plain number (-?D+[.D+][(e|E)[+|-]D+], or -?D+i, D+u) or
 * one of the ten boolean spellings.  For such lines the two passes below reach the same
 * result; this path gets there touching each byte about once.  It gives up (returns false,
 * leaving no trace) on anything else — empty keys or values, odd number forms, duplicate
 * tags, out-of-range values, limits — and the full parser decides and explains.
 */
inline bool IsDigit(char c) noexcept
{
    return c >= '0' && c <= '9';
}

/*
 * Offset of the first '=', ',' or ' ' in b[i..n), or n: where a key or a tag value ends
 * in a line without escapes.  Sixteen bytes at a time while they lie inside the line.
 */
inline size_t FindKeyEnd(const char *b, size_t i, size_t n) noexcept
{
#ifdef __SSE2__
    const __m128i eq = _mm_set1_epi8('='), comma = _mm_set1_epi8(','), space = _mm_set1_epi8(' ');
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b + i));
        int m = _mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, eq), _mm_cmpeq_epi8(v, comma)),
                         _mm_cmpeq_epi8(v, space)));
        if (m != 0)
            return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(m)));
    }
#endif
    while (i < n && b[i] != '=' && b[i] != ',' && b[i] != ' ')
        ++i;
    return i;
}

/*
 * The int64 written as -?D+ in b[from..to) (digits checked by the caller), or false when
 * it has more than 19 digits or does not fit (the full parser then explains).
 */
inline bool DigitsToInt64(const char *b, size_t from, size_t to, int64_t *out) noexcept
{
    bool negative = b[from] == '-';
    size_t p = from + (negative ? 1 : 0);
    if (to - p > 19)
        return false;
    uint64_t acc = 0; /* at most 19 digits: below 2^64 */
    for (; p + 8 <= to; p += 8)
        acc = acc * 100000000 + EightDigits(b + p);
    for (; p < to; ++p)
        acc = acc * 10 + static_cast<uint64_t>(b[p] - '0');
    if (acc > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0))
        return false;
    *out = negative ? static_cast<int64_t>(0 - acc) : static_cast<int64_t>(acc);
    return true;
}

/*
 * The end of a line from b[i] on, after its fields: an optional timestamp -?D+ (scaled to
 * nanoseconds) between spaces, then nothing.  False for anything else or a time out of
 * range (the full parser then explains).
 */
inline bool ReadTimestamp(const char *b, size_t n, size_t i, Precision precision, bool *has_time,
                          int64_t *time_ns) noexcept
{
    i = SkipWhitespace(b, n, i);
    *has_time = i < n;
    *time_ns = 0;
    if (!*has_time)
        return true;
    const size_t ts = i;
    if (b[i] == '-')
        ++i;
    const size_t digits = i;
    while (i < n && IsDigit(b[i]))
        ++i;
    if (i == digits)
        return false;
    for (size_t k = i; k < n; ++k)
        if (b[k] != ' ')
            return false;
    int64_t t;
    return DigitsToInt64(b, ts, i, &t) && ScaleTime(t, precision, time_ns);
}

/*
 * The one-pass reader of the usual line (ParsePoint falls back to the two passes when it
 * declines).  Long on purpose: the whole fast path of one line, left to right, in one
 * place; FastPathAgreesWithFullParser* in test/unit/line_protocol_test.cpp hold it to
 * ParsePoint's results.
 */
bool ParsePointFast(Scan &s, Precision precision, bool plain, Point *out)
{
    const char *b = s.b;
    const size_t n = s.n;
    if (!plain && (std::memchr(b, '\\', n) != nullptr || std::memchr(b, '"', n) != nullptr))
        return false;

    /* measurement: up to the first ',' or ' ' after its first byte */
    if (n == 0 || b[0] == ',')
        return false;
    size_t i = PlainMeasurementLength(std::string_view(b, n));
    if (i >= n)
        return false;
    out->measurement = Text{b, static_cast<uint32_t>(i), false, TextKind::Measurement};

    /* tags */
    bool has_tags = b[i] == ',';
    while (has_tags) {
        const size_t ks = ++i;
        if (i >= n || b[i] == ' ' || b[i] == ',' || b[i] == '=')
            return false;
        i = FindKeyEnd(b, i, n);
        if (i >= n || b[i] != '=')
            return false;
        const size_t ke = i++;
        const size_t vs = i;
        if (i >= n || b[i] == ',' || b[i] == ' ')
            return false;
        i = FindKeyEnd(b, i + 1, n);
        if (i >= n || b[i] == '=')
            return false;
        has_tags = b[i] == ',';
        Tag &tag = NextSlot(*s.tags, &s.ntags);
        tag.key = Text{b + ks, static_cast<uint32_t>(ke - ks), false, TextKind::Key};
        tag.value = Text{b + vs, static_cast<uint32_t>(i - vs), false, TextKind::Key};
    }
    const size_t key_len = i;
    if (key_len > kMaxKeyLength)
        return false;
    if (FindDuplicateTag(*s.tags, s.ntags, *s.slots) != std::string_view::npos)
        return false;

    /* fields */
    i = SkipWhitespace(b, n, i);
    for (;;) {
        const size_t ks = i;
        i = FindKeyEnd(b, i, n);
        if (i == ks || i >= n || b[i] != '=' || key_len + 4 + (i - ks) > kMaxKeyLength)
            return false;
        const size_t ke = i++;
        const size_t vs = i;
        if (vs >= n)
            return false;

        Field &field = NextSlot(*s.fields, &s.nfields);
        field.key = Text{b + ks, static_cast<uint32_t>(ke - ks), false, TextKind::FieldKey};
        const char first = b[vs];
        size_t ve;
        if (IsDigit(first) || (first == '-' && vs + 1 < n && IsDigit(b[vs + 1]))) {
            /*
             * -?D+ then either [iu] or [.D+][(e|E)[+-]D+].  For a float, fast_float finds
             * where the number ends (one pass, instead of scanning for the value's end and
             * then checking its digits); what it accepts beyond that grammar ("1.",
             * "1.e5") is turned away below.
             */
            size_t j = vs + (first == '-' ? 1 : 0);
            while (j < n && IsDigit(b[j]))
                ++j;
            if (j < n && (b[j] == 'i' || b[j] == 'u')) {
                if (b[j] == 'i') {
                    field.type = FieldType::Integer;
                    if (!ParseInt64(b + vs, b + j, &field.value.i))
                        return false;
                } else {
                    field.type = FieldType::Unsigned;
                    if (first == '-' || !ParseUint64(b + vs, b + j, &field.value.u))
                        return false;
                }
                ve = j + 1;
            } else {
                double d;
                const char *end = ParseSimpleDouble(b + vs, b + n, &d);
                if (end == nullptr)
                    end = ParseDoublePrefix(b + vs, b + n, &d);
                if (end == nullptr)
                    return false;
                ve = static_cast<size_t>(end - b);
                /* The integer part ends at j; a '.' there needs a digit after it. */
                if (j < ve && b[j] == '.' && (j + 1 == ve || !IsDigit(b[j + 1])))
                    return false;
                field.type = FieldType::Float;
                field.value.f = d;
            }
            if (ve < n && b[ve] != ',' && b[ve] != ' ')
                return false;
        } else {
            ve = vs;
            while (ve < n && b[ve] != ',' && b[ve] != ' ')
                ++ve;
            field.type = FieldType::Boolean;
            if (!ParseBool(b + vs, ve - vs, &field.value.b))
                return false;
        }
        field.str = Text{b + vs, static_cast<uint32_t>(ve - vs), false, TextKind::StringValue};
        i = ve;
        if (i >= n || b[i] == ' ')
            break;
        ++i; /* ',' */
    }
    s.nfields = DedupeFields(*s.fields, s.nfields, *s.slots);

    if (!ReadTimestamp(b, n, i, precision, &out->has_time, &out->time_ns))
        return false;

    out->tags = s.tags->data();
    out->ntags = static_cast<uint32_t>(s.ntags);
    out->fields = s.fields->data();
    out->nfields = static_cast<uint32_t>(s.nfields);
    return true;
}

/*
 * measurement[,tag=value...] field=value[,field=value...] [timestamp]
 * Long on purpose: it follows InfluxDB's scanLine step by step (measurement, tags, the
 * field block, the timestamp), each step with its own error, so that the two can be read
 * side by side.
 */
bool ParsePoint(Scan &s, Precision precision, bool fast_path, bool plain, Point *out)
{
    if (fast_path && ParsePointFast(s, precision, plain, out))
        return true;
    s.ntags = s.nfields = s.nvalues = 0;

    const char *b = s.b;
    const size_t n = s.n;

    /* measurement: a backslash escapes whatever follows it */
    if (n == 0 || b[0] == ',')
        return Fail(s, ErrorClass::Syntax, 0, "missing measurement");
    size_t i = 0;
    bool bs = false, has_tags = false;
    for (;;) {
        ++i;
        if (i >= n)
            return Fail(s, ErrorClass::Syntax, i, "missing fields");
        if (b[i - 1] == '\\') {
            bs = true;
            continue;
        }
        if (b[i] == ',') {
            has_tags = true;
            break;
        }
        if (b[i] == ' ')
            break;
    }
    out->measurement = Text{b, static_cast<uint32_t>(i), bs, TextKind::Measurement};

    /* tags: key=value pairs, neither empty, no unescaped '=' in a value after its first byte */
    while (has_tags) {
        ++i;
        const size_t ks = i;
        if (i >= n || b[i] == ' ' || b[i] == ',' || b[i] == '=')
            return Fail(s, ErrorClass::Syntax, i, "missing tag key");
        bool key_bs = false;
        for (;;) {
            key_bs |= b[i] == '\\';
            ++i;
            if (i >= n || ((b[i] == ' ' || b[i] == ',') && b[i - 1] != '\\'))
                return Fail(s, ErrorClass::Syntax, i, "missing tag value");
            if (b[i] == '=' && b[i - 1] != '\\')
                break;
        }
        const size_t ke = i++;
        const size_t vs = i;
        if (i >= n || b[i] == ',' || b[i] == ' ')
            return Fail(s, ErrorClass::Syntax, i, "missing tag value");
        bool value_bs = false;
        for (;;) {
            value_bs |= b[i] == '\\';
            ++i;
            if (i >= n)
                return Fail(s, ErrorClass::Syntax, i, "missing fields");
            if (b[i - 1] == '\\')
                continue;
            if (b[i] == '=')
                return Fail(s, ErrorClass::Syntax, i, "invalid tag format");
            if (b[i] == ',')
                break;
            if (b[i] == ' ') {
                has_tags = false;
                break;
            }
        }
        Tag &tag = NextSlot(*s.tags, &s.ntags);
        tag.key = Text{b + ks, static_cast<uint32_t>(ke - ks), key_bs, TextKind::Key};
        tag.value = Text{b + vs, static_cast<uint32_t>(i - vs), value_bs, TextKind::Key};
    }
    const size_t key_len = i;
    size_t dup = FindDuplicateTag(*s.tags, s.ntags, *s.slots);
    if (dup != std::string_view::npos)
        return Fail(s, ErrorClass::Syntax, static_cast<size_t>((*s.tags)[dup].key.data - b),
                    "duplicate tags");
    if (key_len > kMaxKeyLength)
        return FailF(s, ErrorClass::Range, 0, "series key too long (%zu bytes, limit %zu)", key_len,
                     kMaxKeyLength);

    /* fields */
    const size_t fs = SkipWhitespace(b, n, i);
    if (fs >= n)
        return Fail(s, ErrorClass::Syntax, fs, "missing fields");
    size_t fe = fs;
    if (!ScanFields(s, fs, &fe))
        return false;
    if (!WalkFields(s, fs, fe, key_len))
        return false;

    /* timestamp: optional integer, then nothing but spaces */
    const size_t ts = SkipWhitespace(b, n, fe);
    i = ts;
    while (i < n && b[i] != '\n' && b[i] != ' ') {
        if (!(i == ts && b[i] == '-') && (b[i] < '0' || b[i] > '9'))
            return Fail(s, ErrorClass::Syntax, i, "bad timestamp");
        ++i;
    }
    out->has_time = i > ts;
    out->time_ns = 0;
    if (out->has_time) {
        int64_t t;
        auto r = std::from_chars(b + ts, b + i, t);
        if (r.ec == std::errc::invalid_argument || r.ptr != b + i)
            return Fail(s, ErrorClass::Syntax, ts, "bad timestamp");
        if (r.ec != std::errc() || !ScaleTime(t, precision, &out->time_ns))
            return Fail(s, ErrorClass::Range, ts, "timestamp out of range");
        for (; i < n; ++i)
            if (b[i] != ' ')
                return Fail(s, ErrorClass::Syntax, i, "unexpected text after timestamp");
    }

    out->tags = s.tags->data();
    out->ntags = static_cast<uint32_t>(s.ntags);
    out->fields = s.fields->data();
    out->nfields = static_cast<uint32_t>(s.nfields);
    return true;
}

} // namespace

bool ParsePrecision(std::string_view text, Precision *out) noexcept
{
    if (text == "ns" || text == "n")
        *out = Precision::Nanoseconds;
    else if (text == "us" || text == "u")
        *out = Precision::Microseconds;
    else if (text == "ms")
        *out = Precision::Milliseconds;
    else if (text == "s")
        *out = Precision::Seconds;
    else if (text == "m")
        *out = Precision::Minutes;
    else if (text == "h")
        *out = Precision::Hours;
    else
        return false;
    return true;
}

const char *PrecisionName(Precision p) noexcept
{
    switch (p) {
        case Precision::Nanoseconds:
            return "ns";
        case Precision::Microseconds:
            return "us";
        case Precision::Milliseconds:
            return "ms";
        case Precision::Seconds:
            return "s";
        case Precision::Minutes:
            return "m";
        case Precision::Hours:
            return "h";
    }
    return "ns";
}

const char *FieldTypeName(FieldType t) noexcept
{
    switch (t) {
        case FieldType::Float:
            return "float";
        case FieldType::Integer:
            return "integer";
        case FieldType::Unsigned:
            return "unsigned";
        case FieldType::Boolean:
            return "boolean";
        case FieldType::String:
            return "string";
    }
    return "float";
}

size_t UnescapedSize(const Text &t) noexcept
{
    if (!t.escaped)
        return t.size;
    size_t n = 0;
    for (uint32_t i = 0; i < t.size; ++n)
        i += (t.data[i] == '\\' && i + 1 < t.size && IsEscapable(t.kind, t.data[i + 1])) ? 2 : 1;
    return n;
}

size_t Unescape(const Text &t, char *out) noexcept
{
    if (!t.escaped) {
        if (t.size)
            std::memcpy(out, t.data, t.size);
        return t.size;
    }
    UnescapeCursor cur(t);
    size_t n = 0;
    char c;
    while (cur.Next(&c))
        out[n++] = c;
    return n;
}

std::string UnescapeToString(const Text &t)
{
    std::string s(UnescapedSize(t), '\0');
    s.resize(Unescape(t, s.data()));
    return s;
}

ParseStatus LineParser::ParseLine(std::string_view line, Point *out, bool plain) noexcept
{
    error_.cls = ErrorClass::None;
    error_.column = 0;
    error_.message[0] = '\0';
    *out = Point{};

    const char *data = line.data();
    size_t size = line.size();
    if (size > options_.max_line_length) {
        error_.cls = ErrorClass::TooLong;
        error_.column =
            static_cast<uint32_t>(std::min<size_t>(options_.max_line_length + 1, UINT32_MAX));
        std::snprintf(error_.message, sizeof(error_.message),
                      "line too long (%zu bytes, limit %zu)", size, options_.max_line_length);
        return ParseStatus::Invalid;
    }
    /* A '\n' only ends up here escaped at the very end of a buffer; InfluxDB drops it too. */
    if (size > 0 && data[size - 1] == '\n')
        --size;
    if (size > 0 && data[size - 1] == '\r')
        --size;

    size_t start = 0;
    while (start < size && (data[start] == ' ' || data[start] == '\t'))
        ++start;
    if (start == size || data[start] == '#')
        return ParseStatus::Skip;

    Scan s{data + start, size - start, start, &error_, &tags_, &fields_, &values_, &slots_};
    bool is_nul = false;
    size_t bad = plain ? std::string_view::npos : FindBadByte(s.b, s.n, &is_nul);
    if (bad != std::string_view::npos) {
        Fail(s, ErrorClass::Encoding, bad, is_nul ? "NUL byte" : "invalid UTF-8");
        return ParseStatus::Invalid;
    }

    bool ok;
    try {
        ok = ParsePoint(s, options_.precision, options_.fast_path, plain, out);
    } catch (const std::bad_alloc &) {
        ok = Fail(s, ErrorClass::OutOfMemory, 0, "out of memory");
    } catch (...) {
        /* Nothing else is thrown today; should it be, the line is refused, not the process. */
        ok = Fail(s, ErrorClass::Internal, 0, "internal error in the parser");
    }
    if (!ok) {
        *out = Point{};
        return ParseStatus::Invalid;
    }
    return ParseStatus::Ok;
}

void LineParser::Trim() noexcept
{
    auto trim = [](auto &v) {
        if (v.capacity() > kKeptSlots) {
            std::remove_reference_t<decltype(v)> empty;
            v.swap(empty);
        }
    };
    trim(tags_);
    trim(fields_);
    trim(values_);
    trim(slots_);
}

namespace
{

/*
 * A name a shape can hold: no escapes, and none of the bytes that end a name in a plain
 * line (',' and ' ', and '=' for a key).  A line with quotes or escapes can give the full
 * parser a field key with a bare ',' in it ("m x=\"x\"\\,b,c=1" has the key "b,c"); a
 * plain line cannot.
 */
bool ShapeName(const Text &t, bool key) noexcept
{
    if (t.escaped)
        return false;
    for (uint32_t i = 0; i < t.size; ++i) {
        const char c = t.data[i];
        if (c == ',' || c == ' ' || (key && c == '='))
            return false;
    }
    return true;
}

} // namespace

bool LearnShape(const Point &point, LineShape *shape) noexcept
{
    if (!ShapeName(point.measurement, false) || point.ntags > kShapeMaxKeys ||
        point.nfields > kShapeMaxKeys)
        return false;
    for (uint32_t i = 0; i < point.ntags; ++i)
        if (!ShapeName(point.tags[i].key, true))
            return false;
    for (uint32_t i = 0; i < point.nfields; ++i) {
        const Field &f = point.fields[i];
        if (!ShapeName(f.key, true) || f.type == FieldType::String)
            return false;
    }
    shape->measurement = point.measurement;
    shape->ntags = point.ntags;
    shape->nfields = point.nfields;
    for (uint32_t i = 0; i < point.ntags; ++i)
        shape->tag_keys[i] = point.tags[i].key;
    for (uint32_t i = 0; i < point.nfields; ++i) {
        shape->field_keys[i] = point.fields[i].key;
        shape->field_types[i] = point.fields[i].type;
    }
    return true;
}

/*
 * ParsePointFast's grammar with the keys known in advance: where the fast path scans for
 * a key's end, this compares the key it expects, and it takes only the number forms the
 * fast path reads without help.  The shape's keys are distinct (they came out of a parsed
 * line) and free of '=', ',' and ' ' (LearnShape checks), so a line that matches has no
 * duplicate tags or fields, and each step below ends where the fast path's would.
 */
bool LineParser::MatchShape(const LineShape &shape, std::string_view line,
                            ShapeValues *out) const noexcept
{
    const char *b = line.data();
    const size_t n = line.size();
    const size_t mlen = shape.measurement.size;
    /* ParseLine would trim these first; such lines are left to it. */
    if (n <= mlen || n > options_.max_line_length || b[n - 1] == '\r' || b[n - 1] == '\n')
        return false;
    if (!SameBytes(b, shape.measurement.data, mlen))
        return false;

    size_t i = mlen;
    for (uint32_t t = 0; t < shape.ntags; ++t) {
        const Text &key = shape.tag_keys[t];
        if (b[i] != ',' || n - i < key.size + 3 || b[i + 1 + key.size] != '=' ||
            !SameBytes(b + i + 1, key.data, key.size))
            return false;
        i += key.size + 2;
        const size_t vs = i;
        if (b[i] == ',' || b[i] == ' ')
            return false;
        i = FindKeyEnd(b, i + 1, n);
        if (i >= n || b[i] == '=')
            return false;
        out->tag_values[t] = Text{b + vs, static_cast<uint32_t>(i - vs), false, TextKind::Key};
    }
    if (b[i] != ' ')
        return false;
    const size_t key_len = i;
    if (key_len > kMaxKeyLength)
        return false;

    i = SkipWhitespace(b, n, i);
    for (uint32_t f = 0; f < shape.nfields; ++f) {
        const Text &key = shape.field_keys[f];
        if (f > 0) {
            if (i >= n || b[i] != ',')
                return false;
            ++i;
        }
        if (n - i < key.size + 2 || b[i + key.size] != '=' ||
            !SameBytes(b + i, key.data, key.size) || key_len + 4 + key.size > kMaxKeyLength)
            return false;
        const size_t vs = i + key.size + 1;
        size_t ve;
        switch (shape.field_types[f]) {
            case FieldType::Float: {
                const char *end = ParseSimpleDouble(b + vs, b + n, &out->fields[f].f);
                if (end == nullptr)
                    return false;
                ve = static_cast<size_t>(end - b);
                break;
            }
            case FieldType::Integer:
            case FieldType::Unsigned: {
                const bool integer = shape.field_types[f] == FieldType::Integer;
                size_t j = vs + (integer && b[vs] == '-' ? 1 : 0);
                const size_t digits = j;
                while (j < n && IsDigit(b[j]))
                    ++j;
                if (j == digits || j >= n || b[j] != (integer ? 'i' : 'u') ||
                    !(integer ? ParseInt64(b + vs, b + j, &out->fields[f].i)
                              : ParseUint64(b + vs, b + j, &out->fields[f].u)))
                    return false;
                ve = j + 1;
                if (ve < n && b[ve] != ',' && b[ve] != ' ')
                    return false;
                break;
            }
            case FieldType::Boolean:
                /* What the fast path takes for a boolean: anything but a number, then the spelling.
                 */
                if (IsDigit(b[vs]) || (b[vs] == '-' && vs + 1 < n && IsDigit(b[vs + 1])))
                    return false;
                ve = vs;
                while (ve < n && b[ve] != ',' && b[ve] != ' ')
                    ++ve;
                if (!ParseBool(b + vs, ve - vs, &out->fields[f].b))
                    return false;
                break;
            default:
                return false;
        }
        i = ve;
    }
    if (i < n && b[i] != ' ')
        return false; /* another field */

    return ReadTimestamp(b, n, i, options_.precision, &out->has_time, &out->time_ns);
}

/*
 * InfluxDB's scanLine as a state machine that can stop anywhere: a backslash hides the next
 * byte; after the first space (the end of the series key, or leading whitespace) '=' and ','
 * outside quotes are counted, and a '"' opens or closes a string when there are more '='
 * than ',' (i.e. in a field value); a '\n' outside a string ends the line.
 */
bool IsPlain(const char *data, size_t size) noexcept
{
    size_t i = 0;
#ifdef __SSE2__
    /* 16 bytes at a time: any byte >= 0x80 sets the mask's sign bits, the rest compare. */
    const __m128i nul = _mm_setzero_si128();
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    for (; i + 16 <= size; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(data + i));
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, nul), _mm_cmpeq_epi8(v, quote)),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, backslash), v));
        if (_mm_movemask_epi8(bad) != 0)
            return false;
    }
#endif
    for (; i < size; i++) {
        unsigned char c = static_cast<unsigned char>(data[i]);
        if (c == 0 || c >= 0x80 || c == '"' || c == '\\')
            return false;
    }
    return true;
}

namespace
{

/*
 * The number of '\n' in data[0..n), or false when the bytes contain a '"' or a '\\' (then
 * a '\n' need not end a line).  One pass, sixteen bytes at a time.
 */
bool CountUnquotedNewlines(const char *data, size_t n, uint64_t *count) noexcept
{
    uint64_t c = 0;
    size_t i = 0;
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n'), quote = _mm_set1_epi8('"'),
                  backslash = _mm_set1_epi8('\\');
    const __m128i zero = _mm_setzero_si128();
    /* Per-byte counts (a match is -1, subtracted), summed into 64 bits before they wrap. */
    __m128i counts = zero, total = zero;
    unsigned rounds = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(data + i));
        if (_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash))) != 0)
            return false;
        counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(v, nl));
        if (++rounds == 255) {
            total = _mm_add_epi64(total, _mm_sad_epu8(counts, zero));
            counts = zero;
            rounds = 0;
        }
    }
    total = _mm_add_epi64(total, _mm_sad_epu8(counts, zero));
    c = static_cast<uint64_t>(_mm_cvtsi128_si64(total)) +
        static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(total, total)));
#endif
    for (; i < n; i++) {
        if (data[i] == '"' || data[i] == '\\')
            return false;
        c += data[i] == '\n' ? 1 : 0;
    }
    *count = c;
    return true;
}

} // namespace

size_t LineScanner::FindLastLineEnd(const char *data, size_t size, uint64_t *lines) noexcept
{
    size_t pos = 0, last = npos;
    /*
     * Fast path: in a clean state, if nothing up to the last '\n' can quote or escape one,
     * every '\n' there ends a line.
     */
    if (!quoted_ && !escape_ && size > 0) {
        const void *nl = memrchr(data, '\n', size);
        if (nl != nullptr) {
            size_t end = static_cast<size_t>(static_cast<const char *>(nl) - data) + 1;
            uint64_t count;
            if (CountUnquotedNewlines(data, end, &count)) {
                *lines += count;
                Reset();
                pos = last = end;
            }
        }
    }
    while (pos < size) {
        size_t end = FindLineEnd(data + pos, size - pos);
        if (end == npos)
            break;
        pos += end;
        last = pos;
        ++*lines;
    }
    return last;
}

size_t LineScanner::FindLineEnd(const char *data, size_t size) noexcept
{
    /*
     * Fast path for the common line: outside a string and an escape, only '"' and '\\'
     * can keep a '\n' from ending the line.  If the bytes before the next '\n' contain
     * neither, that '\n' is the end, whatever the counters say — found with memchr instead
     * of the state machine below.
     */
    if (!quoted_ && !escape_) {
        const void *nl = std::memchr(data, '\n', size);
        if (nl != nullptr) {
            size_t len = static_cast<const char *>(nl) - data;
            if (std::memchr(data, '"', len) == nullptr && std::memchr(data, '\\', len) == nullptr) {
                Reset();
                return len + 1;
            }
        }
    }

    size_t i = 0;
    if (escape_ && size > 0) {
        escape_ = false;
        i = 1;
    }
    for (; i < size; ++i) {
        switch (data[i]) {
            case '\\':
                if (i + 1 < size) {
                    ++i;
                } else {
                    escape_ = true;
                }
                break;
            case ' ':
                in_fields_ = true;
                break;
            case '=':
                if (in_fields_ && !quoted_)
                    ++equals_;
                break;
            case ',':
                if (in_fields_ && !quoted_)
                    ++commas_;
                break;
            case '"':
                if (in_fields_ && equals_ > commas_)
                    quoted_ = !quoted_;
                break;
            case '\n':
                if (!quoted_) {
                    Reset();
                    return i + 1;
                }
                break;
            default:
                break;
        }
    }
    return npos;
}

void LineScanner::Reset() noexcept
{
    in_fields_ = false;
    quoted_ = false;
    escape_ = false;
    equals_ = 0;
    commas_ = 0;
}

} // namespace influx
