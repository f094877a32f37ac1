/*
 * chunk.hpp — the format of a chunk, the message the listener sends on a ring.
 *
 * A chunk is a sequence of *records*: a 4-byte native-endian length followed by that many
 * bytes of complete lines (the last line of a record may lack its '\n').  One record is
 * what one socket read (TCP) or one datagram (UDP) produced, and lines are split within a
 * record only.  Keeping the records apart matters because a '\n' inside a quoted string
 * value belongs to the value: an unterminated quote at the end of a datagram or of a
 * closed connection must not swallow the lines of another sender that happen to follow it
 * in the same chunk.
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

/* Calls fn(const char *data, size_t size) for every record; false if the chunk is corrupt. */
template <typename Fn> bool ForEachRecord(const char *chunk, size_t size, Fn &&fn)
{
    size_t pos = 0;
    while (pos < size) {
        if (size - pos < kRecordHeader)
            return false;
        uint32_t len;
        memcpy(&len, chunk + pos, kRecordHeader);
        pos += kRecordHeader;
        if (len > size - pos)
            return false;
        fn(chunk + pos, static_cast<size_t>(len));
        pos += len;
    }
    return true;
}

/*
 * Cuts a chunk in place to what follows byte `offset`, and returns its new length.  The
 * offset is where a worker got to (ring.hpp RingPosition): 0, the start of a record header,
 * or the start of a line inside a record.  Records before it are left out; the record it
 * falls inside keeps its lines from the offset on, under a new header.
 */
inline size_t CutChunk(char *data, size_t len, size_t offset)
{
    size_t pos = 0, out = 0;
    while (len - pos >= kRecordHeader) {
        uint32_t rlen;
        memcpy(&rlen, data + pos, kRecordHeader);
        size_t start = pos + kRecordHeader;
        if (rlen > len - start)
            break;
        size_t end = start + rlen;
        size_t from = offset <= pos ? start : (offset > start ? offset : start);
        if (from < end) {
            uint32_t n = static_cast<uint32_t>(end - from);
            memmove(data + out, &n, kRecordHeader);
            memmove(data + out + kRecordHeader, data + from, n);
            out += kRecordHeader + n;
        }
        pos = end;
    }
    return out;
}

} // namespace influx
