/*
 * chunk.hpp — the format of a chunk, the message the listener sends on a ring.
 *
 * A chunk is a sequence of *records*: a 4-byte native-endian length word followed by that
 * many bytes of complete lines (the last line of a record may lack its '\n').  One record is
 * what one socket read (TCP) or one datagram (UDP) produced, or a piece of one HTTP
 * request's body, and lines are split within a record only.  Keeping the records apart
 * matters because a '\n' inside a quoted string value belongs to the value: an
 * unterminated quote at the end of a datagram or of a closed connection must not swallow
 * the lines of another sender that happen to follow it in the same chunk.
 *
 * A *request record* (kRecordRequest set in the length word) starts with a RecordMeta and
 * then its lines; the length counts both.  It carries what an HTTP request decided for its
 * lines (precision, server time, database, role) and the request's tag, under which the worker
 * reports what became of them (ring.hpp RequestOutcome).
 *
 * A plain record (TCP, UDP) carries in its length word the precision its lines were
 * received under (influx.precision then), so that lines read again later -- handed back
 * for a locked table, sent to another worker -- keep their meaning after a reload changed
 * the setting.
 *
 * Pure C++ (usable from PostgreSQL-facing code and from tests alike).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace influx
{

constexpr size_t kRecordHeader = sizeof(uint32_t);
constexpr uint32_t kRecordRequest = 0x80000000u; /* in the length word: a request record */
/* In a plain record's length word: its Precision + 1 (0: none, the worker's setting). */
constexpr uint32_t kRecordPrecisionMask = 0x70000000u;
constexpr int kRecordPrecisionShift = 28;
constexpr uint32_t kRecordLengthMask = 0x0FFFFFFFu; /* 256 MiB: lines are at most 64 MiB */
constexpr uint8_t kNoPrecision = 0xFF;

/*
 * RecordMeta.flags: the record carries its request's *head*, a unit of its own besides the
 * lines (so that a request with no line is reported too).  Set on a request's first record;
 * cleared by CutChunk when the cut leaves the record's start out.
 */
constexpr uint32_t kMetaHead = 1;

struct RecordMeta {
    uint64_t tag;      /* the request, as the listener numbers them; never 0 */
    int64_t now_ns;    /* time for lines without a timestamp: one per request */
    uint32_t flags;    /* kMetaHead */
    uint8_t precision; /* Precision of the request's timestamps */
    uint8_t pad[3];
    uint32_t role;     /* the role the request writes as (an Oid); 0: the worker's own */
    char database[64]; /* NUL-terminated; "" for the default */
};

/* One record: its lines, and its meta when it is a request record. */
struct RecordView {
    bool request;
    uint8_t precision; /* a plain record's (Precision), or kNoPrecision */
    RecordMeta meta;   /* valid when request */
    const char *lines;
    size_t size;
};

/*
 * Reads the record that starts at byte `pos` (a length word); false if the chunk is
 * corrupt there.  *next is where the record after it starts.
 */
inline bool ReadRecord(const char *chunk, size_t size, size_t pos, RecordView *out, size_t *next)
{
    if (pos > size || size - pos < kRecordHeader)
        return false;
    uint32_t word;
    memcpy(&word, chunk + pos, kRecordHeader);
    size_t len = word & kRecordLengthMask;
    size_t start = pos + kRecordHeader;
    if (len > size - start)
        return false;
    out->request = (word & kRecordRequest) != 0;
    uint32_t stamped = (word & kRecordPrecisionMask) >> kRecordPrecisionShift;
    out->precision =
        out->request || stamped == 0 ? kNoPrecision : static_cast<uint8_t>(stamped - 1);
    out->lines = chunk + start;
    out->size = len;
    if (out->request) {
        if (len < sizeof(RecordMeta))
            return false;
        memcpy(&out->meta, chunk + start, sizeof(RecordMeta));
        out->lines += sizeof(RecordMeta);
        out->size -= sizeof(RecordMeta);
    }
    *next = start + len;
    return true;
}

/* Bytes a record with `size` bytes of lines takes in a chunk. */
inline size_t RecordBytes(bool request, size_t size)
{
    return kRecordHeader + (request ? sizeof(RecordMeta) : 0) + size;
}

/* A plain record's length word: its length and precision (kNoPrecision: none). */
inline uint32_t PlainRecordWord(size_t size, uint8_t precision)
{
    uint32_t word = static_cast<uint32_t>(size);
    if (precision != kNoPrecision)
        word |= (static_cast<uint32_t>(precision) + 1) << kRecordPrecisionShift;
    return word;
}

/*
 * Writes a record (length word, meta if `meta` is not NULL, lines) at `out` and returns
 * the bytes written; a plain record gets `precision`.  The source may overlap the
 * destination if it lies after it.
 */
inline size_t WriteRecord(char *out, const RecordMeta *meta, const char *lines, size_t size,
                          uint8_t precision = kNoPrecision)
{
    size_t meta_size = meta != nullptr ? sizeof(RecordMeta) : 0;
    uint32_t word = meta != nullptr ? static_cast<uint32_t>(meta_size + size) | kRecordRequest
                                    : PlainRecordWord(size, precision);
    /* Lines first: they may lie where the header and meta go. */
    memmove(out + kRecordHeader + meta_size, lines, size);
    memcpy(out, &word, kRecordHeader);
    if (meta != nullptr)
        memcpy(out + kRecordHeader, meta, sizeof(RecordMeta));
    return kRecordHeader + meta_size + size;
}

/* Calls fn(const RecordView &) for every record; false if the chunk is corrupt. */
template <typename Fn> bool ForEachRecord(const char *chunk, size_t size, Fn &&fn)
{
    size_t pos = 0;
    while (pos < size) {
        RecordView r = {};
        if (!ReadRecord(chunk, size, pos, &r, &pos))
            return false;
        fn(r);
    }
    return true;
}

/*
 * Cuts a chunk in place to what follows byte `offset`, and returns its new length.  The
 * offset is where a worker got to (ring.hpp RingPosition): 0, the start of a record's
 * length word, or the start of a line inside a record (never inside a RecordMeta).
 * Records before it are left out; the record it falls inside keeps its lines from the
 * offset on, under a new length word, and its meta without kMetaHead (its head was done
 * with the lines before the offset).
 */
inline size_t CutChunk(char *data, size_t len, size_t offset)
{
    size_t pos = 0, out = 0;
    while (pos < len) {
        RecordView r = {};
        size_t next;
        if (!ReadRecord(data, len, pos, &r, &next))
            break;
        size_t lines_at = static_cast<size_t>(r.lines - data);
        size_t end = lines_at + r.size;
        bool whole = offset <= pos;
        size_t from = whole ? lines_at : (offset > lines_at ? offset : lines_at);
        if (from < end || (whole && r.request)) {
            if (r.request && !whole)
                r.meta.flags &= ~kMetaHead;
            out += WriteRecord(data + out, r.request ? &r.meta : nullptr, data + from, end - from,
                               r.precision);
        }
        pos = next;
    }
    return out;
}

} // namespace influx
