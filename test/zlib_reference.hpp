/*
 * zlib_reference.hpp — zlib's streaming reading of a gzip body (members one after the
 * other), the reference the HTTP request reader is checked against by the unit tests and
 * the fuzz target: the reader decompresses with libdeflate and must answer as zlib would.
 */
#pragma once

#include <string>
#include <string_view>

#include <zlib.h>

namespace influx::test
{

struct Inflated {
    bool ok = false;
    std::string out;     /* everything inflated, also before an error */
    std::string message; /* the reader's 400 message for the error */
};

/* An empty body is read as a truncated stream (not ok, "unexpected end of stream"). */
inline Inflated ZlibInflate(std::string_view gz)
{
    Inflated r;
    z_stream zs{};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return r;
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(gz.data()));
    zs.avail_in = static_cast<uInt>(gz.size());
    char buf[4096];
    bool done = false;
    bool full = false; /* the last call filled buf: zlib may hold more output */
    while (zs.avail_in > 0 || full) {
        if (done && zs.avail_in == 0)
            break;
        if (done) {
            inflateReset(&zs);
            done = false;
        }
        zs.next_out = reinterpret_cast<Bytef *>(buf);
        zs.avail_out = sizeof(buf);
        int rc = inflate(&zs, Z_NO_FLUSH);
        full = zs.avail_out == 0;
        r.out.append(buf, sizeof(buf) - zs.avail_out);
        if (rc == Z_STREAM_END) {
            done = true;
        } else if (rc == Z_BUF_ERROR && zs.avail_in == 0 && zs.avail_out != 0) {
            break; /* nothing more to read: a truncated stream */
        } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_out == 0)) {
            r.message = std::string("invalid gzip body: ") + (zs.msg != nullptr ? zs.msg : "?");
            inflateEnd(&zs);
            return r;
        }
    }
    inflateEnd(&zs);
    r.ok = done;
    if (!done)
        r.message = "invalid gzip body: unexpected end of stream";
    return r;
}

} // namespace influx::test
