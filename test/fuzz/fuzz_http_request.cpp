/*
 * fuzz_http_request.cpp — libFuzzer target for the HTTP request reader (src/http/request).
 *
 * The first bytes of the input are controls; the rest is what a client sends on one
 * connection (one or more pipelined requests):
 *   byte 0   limits (small header and body limits reach 431 and 413), gzip mode and its
 *            options;
 *   byte 1   the largest read (1..4096 bytes) and, with byte 2, the seed of the read sizes;
 *   byte 3   in gzip mode: where to corrupt the stream, how often to repeat the payload
 *            (to inflate past the body limit);
 *   byte 4   in gzip mode: which share of the rest is the body to compress; what follows
 *            it is sent after the request as is (pipelined).
 * In gzip mode the target builds a POST with Content-Encoding: gzip, a Content-Length or
 * chunked body, and a gzip body (one or two members, valid, corrupted or truncated), so
 * that the inflater is reached with streams the fuzzer could hardly write itself.
 *
 * The bytes are read the way the listener does (src/net/http.cpp, ProcessInput): each read
 * is appended to the connection's buffer, fed, and what Feed() consumed is dropped; after
 * Complete the request is taken, Reset() and the rest is fed; after Failed the connection
 * ends.  Checked:
 *   - reading everything at once and reading in pieces (and, for some inputs, a byte at a
 *     time; when byte 2's top bit is set, in pieces with gzip bodies inflated later, as the
 *     listener's inflate thread does) gives the same requests: the same states, methods,
 *     paths, bodies and error
 *     statuses (or __builtin_trap), but for malformed bytes at the end of the input that
 *     fail at once and wait for more in pieces (see Agree);
 *   - Feed() never takes more than it is given, takes everything in NeedMore and nothing in
 *     Complete or Failed;
 *   - a complete body is never larger than the limit, nor the buffer holding it; a body with
 *     Content-Length and no gzip has that length;
 *   - a failure has a status the listener expects (never 500, "cannot happen") and a
 *     message;
 *   - in gzip mode, the request reads as zlib's streaming inflate reads its body (the
 *     reader decompresses with libdeflate and falls back to zlib for what libdeflate
 *     refuses): the same body when the head was read and both sizes are within the limit,
 *     zlib's message for a 400, more than the limit inflated for a 413.  One exception:
 *     libdeflate reads a few codes zlib calls invalid (a fixed-Huffman block's length
 *     symbols 286 and 287 as 285), and a body it reads whole has passed its CRC-32 and
 *     ISIZE, so the request may complete where zlib fails -- with exactly the data the
 *     target compressed.
 * ASan and UBSan (see `make fuzz`), and Boost's assertions, catch the rest.
 * FUZZ_HTTP_PRINT=1 in the environment prints what each input read as.
 */
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <zlib.h>

#include "http/request.hpp"
#include "../zlib_reference.hpp"

using namespace influx::http;

namespace
{

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* What one request came to; the last one may be unfinished when the input ends. */
struct Outcome {
    ReadState state = ReadState::NeedMore; /* NeedMore: the input ended inside it */
    /* The whole head was read: the method and path are known.  (Before, whether the request
     * line has been parsed depends on where the reads ended: they are left empty.) */
    bool head = false;
    Method method = Method::Other;
    std::string method_name;
    std::string path;
    std::string body;
    int status = 0;
    std::string message; /* not compared: it may name where the parser stopped */

    bool operator==(const Outcome &o) const
    {
        return state == o.state && head == o.head && method == o.method &&
               method_name == o.method_name && path == o.path && body == o.body &&
               status == o.status;
    }
};

void Print(const char *what, const std::vector<Outcome> &v)
{
    std::fprintf(stderr, "%s: %zu requests\n", what, v.size());
    for (const Outcome &o : v)
        std::fprintf(stderr, "  state %d head %d method %s path %s body %zu bytes status %d %s\n",
                     static_cast<int>(o.state), o.head, o.method_name.c_str(), o.path.c_str(),
                     o.body.size(), o.status, o.message.c_str());
}

/*
 * Whether reading in pieces agrees with reading at once.  One exception, at the end of
 * the input: malformed bytes read at once may fail the request (400) where read in pieces
 * they wait for more, so that the request is still unfinished when the input ends (it
 * fails with the next bytes), or, in the head, grows past the header limit (431):
 *   - Beast checks the request line and header fields as it gets them until it first asks
 *     for more bytes, then only looks for the end of the head before it goes on;
 *   - at a chunk header the reader waits for 5 bytes before it hands them to Beast (see
 *     request.cpp), so a malformed chunk header shorter than that fails only with more.
 */
bool Agree(const std::vector<Outcome> &whole, const std::vector<Outcome> &pieces)
{
    if (whole == pieces)
        return true;
    if (whole.size() != pieces.size() || whole.empty() ||
        !std::equal(whole.begin(), whole.end() - 1, pieces.begin()))
        return false;
    const Outcome &w = whole.back(), &p = pieces.back();
    if (w.state != ReadState::Failed || w.status != 400)
        return false;
    if (p.state == ReadState::NeedMore)
        return p.head == w.head && p.method_name == w.method_name && p.path == w.path;
    return p.state == ReadState::Failed && p.status == 431 && !w.head && !p.head;
}

/* The request as far as it was read; `head_seen`: the reader was at HeadComplete. */
Outcome Record(const RequestReader &reader, bool head_seen)
{
    Outcome o;
    o.state = reader.state();
    int s = reader.error_status();
    /* 413, 415 and 501 come after the whole head was read (at its end, or in the body) */
    o.head = head_seen || o.state == ReadState::Complete || s == 413 || s == 415 || s == 501;
    if (o.head) {
        const RequestHead &head = reader.head();
        o.method = head.method;
        o.method_name = head.method_name;
        o.path = head.path;
    }
    return o;
}

/* Checks what must hold of a finished (or failed) request and records it. */
Outcome Finish(const RequestReader &reader, const RequestLimits &limits, bool head_seen)
{
    Outcome o = Record(reader, head_seen);
    const RequestHead &head = reader.head();
    CHECK(reader.body_capacity() <= limits.max_body_bytes + 1);
    if (o.state == ReadState::Complete) {
        CHECK(reader.error_status() == 0);
        std::string_view body = reader.body();
        CHECK(body.size() <= limits.max_body_bytes);
        if (head.encoding == ContentEncoding::Identity) {
            CHECK(body.size() == reader.wire_body_bytes());
            if (head.content_length && !head.chunked)
                CHECK(body.size() == *head.content_length);
        }
        o.body.assign(body);
    } else {
        int s = reader.error_status();
        o.status = s;
        CHECK(s == 400 || s == 413 || s == 415 || s == 431 || s == 501 || s == 503);
        o.message = reader.error_message();
        CHECK(!o.message.empty());
    }
    return o;
}

/*
 * Reads `input` as a connection whose reads have the sizes `sizes` gives (cycled; 0 for
 * one read of everything), as ProcessInput does.
 */
std::vector<Outcome> ReadConnection(std::string_view input, const RequestLimits &limits,
                                    uint32_t seed, size_t max_read)
{
    std::vector<Outcome> out;
    RequestReader reader(limits);
    std::string in;
    size_t pos = 0;
    bool failed = false;
    bool head_seen = false;
    while (pos < input.size() && !failed) {
        size_t n = input.size() - pos;
        if (max_read != 0) {
            seed = seed * 1103515245u + 12345u;
            n = std::min(n, 1 + static_cast<size_t>((seed >> 16) % max_read));
        }
        in.append(input.data() + pos, n);
        pos += n;
        while (!in.empty()) {
            size_t used = reader.Feed(in.data(), in.size());
            CHECK(used <= in.size());
            ReadState st = reader.state();
            if (st == ReadState::NeedMore)
                CHECK(used == in.size());
            in.erase(0, used);
            if (st == ReadState::Inflate) {
                /* As the listener's inflate thread does it: later, then on as Feed() would. */
                CHECK(reader.Feed(in.data(), in.size()) == 0);
                reader.Inflate();
                st = reader.state();
                CHECK(st == ReadState::Complete || st == ReadState::Failed);
            }
            if (st == ReadState::HeadComplete)
                head_seen = true;
            if (st == ReadState::Failed) {
                CHECK(reader.Feed(in.data(), in.size()) == 0);
                out.push_back(Finish(reader, limits, head_seen));
                failed = true;
                break;
            }
            if (st == ReadState::Complete) {
                CHECK(reader.started());
                CHECK(reader.Feed(in.data(), in.size()) == 0);
                CHECK(reader.state() == ReadState::Complete);
                out.push_back(Finish(reader, limits, head_seen));
                reader.Reset();
                head_seen = false;
                CHECK(!reader.started());
                CHECK(reader.state() == ReadState::NeedMore);
                continue;
            }
            if (used == 0)
                break;
        }
    }
    if (!failed && reader.started()) {
        /* The input ended inside a request; HeadComplete and NeedMore are the same here. */
        Outcome o = Record(reader, head_seen);
        o.state = ReadState::NeedMore;
        out.push_back(o);
    }
    return out;
}

std::string Gzip(std::string_view data, int level)
{
    z_stream zs{};
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return {};
    std::string out(deflateBound(&zs, data.size()), '\0');
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef *>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&zs, Z_FINISH);
    out.resize(rc == Z_STREAM_END ? zs.total_out : 0);
    deflateEnd(&zs);
    return out;
}

/* What zlib makes of a gzip body; an empty body is empty in any encoding. */
influx::test::Inflated ZlibInflate(std::string_view gz)
{
    if (gz.empty()) {
        influx::test::Inflated r;
        r.ok = true;
        return r;
    }
    return influx::test::ZlibInflate(gz);
}

/* The first request of a gzip-mode input against zlib's reading of its body `gz`, which
 * was made of `sent` (before any damage). */
void CheckAgainstZlib(const Outcome &o, std::string_view gz, std::string_view sent,
                      const RequestLimits &limits)
{
    if (!o.head || gz.size() > limits.max_body_bytes)
        return; /* refused before its body is inflated (431, 413 for the wire body) */
    influx::test::Inflated z = ZlibInflate(gz);
    if (o.state == ReadState::Complete) {
        CHECK(z.ok ? o.body == z.out : o.body == sent);
    } else if (o.state == ReadState::Failed && o.status == 400 &&
               o.message.rfind("invalid gzip body: ", 0) == 0) {
        CHECK(!z.ok);
        CHECK(o.message == z.message);
        CHECK(z.out.size() <= limits.max_body_bytes);
    } else if (o.state == ReadState::Failed && o.status == 413) {
        CHECK(z.out.size() > limits.max_body_bytes);
    }
    if (z.ok && z.out.size() <= limits.max_body_bytes)
        CHECK(o.state == ReadState::Complete);
}

/* A POST with a gzip body made of `payload`, then `rest` as is; *wire_body is the body,
 * *sent what it was compressed from. */
std::string GzipRequest(uint8_t flags, uint8_t opts, std::string_view payload,
                        std::string_view rest, std::string *wire_body, std::string *sent)
{
    /* Repeated up to 64 times: enough to inflate past a 4 KiB limit. */
    std::string plain;
    unsigned repeat = 1 + (opts & 0x3f);
    for (unsigned i = 0; i < repeat; ++i)
        plain.append(payload);
    std::string gz = Gzip(plain, (opts >> 6) * 3);
    *sent = plain;
    if (flags & 0x80) { /* a second member: the body is both, one after the other */
        gz += Gzip(payload, 1);
        sent->append(payload);
    }
    if (!gz.empty() && (flags & 0x40)) {
        /* corrupt a byte (header, deflate data or trailer), or cut the stream short */
        size_t at = (static_cast<size_t>(opts) * 7919u + payload.size()) % gz.size();
        if (opts & 1)
            gz[at] = static_cast<char>(gz[at] ^ (1 + (opts >> 1)));
        else
            gz.resize(at);
    }
    std::string req = "POST /write?db=fuzz&precision=s HTTP/1.1\r\nHost: db\r\n"
                      "Content-Encoding: gzip\r\n";
    if (flags & 0x20) {
        req += "Transfer-Encoding: chunked\r\n\r\n";
        size_t chunk = 1 + opts % 97;
        char hex[32];
        for (size_t i = 0; i < gz.size(); i += chunk) {
            std::string_view piece = std::string_view(gz).substr(i, chunk);
            std::snprintf(hex, sizeof(hex), "%zx\r\n", piece.size());
            req += hex;
            req.append(piece);
            req += "\r\n";
        }
        req += "0\r\n\r\n";
    } else {
        req += "Content-Length: " + std::to_string(gz.size()) + "\r\n\r\n";
        req += gz;
    }
    req.append(rest);
    *wire_body = gz;
    return req;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const uint8_t flags = data[0];
    const uint8_t reads = data[1];
    const uint8_t seed = data[2];
    data += 3;
    size -= 3;

    RequestLimits limits;
    static const size_t kHeaderLimits[] = {128, 512, 2048, 16 * 1024};
    static const size_t kBodyLimits[] = {4096, 4096, 64 * 1024, 1024 * 1024};
    limits.max_header_bytes = kHeaderLimits[flags & 3];
    limits.max_body_bytes = kBodyLimits[(flags >> 2) & 3];

    std::string input;
    std::string gz, sent;
    const bool gzip_mode = (flags & 0x10) && size >= 2;
    if (gzip_mode) {
        uint8_t opts = data[0];
        size_t share = (size - 2) * data[1] / 255;
        const char *p = reinterpret_cast<const char *>(data + 2);
        input = GzipRequest(flags, opts, std::string_view(p, share),
                            std::string_view(p + share, size - 2 - share), &gz, &sent);
    } else {
        input.assign(reinterpret_cast<const char *>(data), size);
    }

    static const size_t kMaxReads[] = {1, 2, 3, 5, 8, 64, 300, 4096};
    std::vector<Outcome> whole = ReadConnection(input, limits, 0, 0);
    /* Read in pieces, gzip bodies of (seed & 63) + 1 bytes or more inflated later half the
     * time: the same requests either way. */
    RequestLimits split_limits = limits;
    if (seed & 0x80)
        split_limits.inflate_later_bytes = (seed & 63) + 1;
    std::vector<Outcome> split =
        ReadConnection(input, split_limits, (uint32_t{reads} << 8) | seed, kMaxReads[reads & 7]);
    static const bool verbose = std::getenv("FUZZ_HTTP_PRINT") != nullptr;
    if (verbose) /* FUZZ_HTTP_PRINT=1 ./fuzz_http_request FILE...: what the inputs read as */
        Print("read at once", whole);
    if (gzip_mode && !whole.empty())
        CheckAgainstZlib(whole.front(), gz, sent, limits);
    if (!Agree(whole, split)) {
        Print("read at once", whole);
        Print("read in pieces", split);
        CHECK(Agree(whole, split));
    }
    /* One byte at a time, the hardest case for incomplete elements. */
    if ((reads & 0xf8) == 0 && input.size() <= 2048) {
        std::vector<Outcome> bytes = ReadConnection(input, limits, 0, 1);
        if (!Agree(whole, bytes)) {
            Print("read at once", whole);
            Print("read byte by byte", bytes);
            CHECK(Agree(whole, bytes));
        }
    }
    return 0;
}
