/*
 * http_test.cpp — unit tests of the HTTP endpoint's pure C++ module (src/http): the
 * incremental request reader, parameters and precision, credentials, the InfluxQL
 * statements writers send, JSON strings and response formatting.
 *
 * Request tests feed bytes the way the listener's event loop does (FeedInPieces): what
 * Feed() did not consume stays in the connection's buffer and is fed again with the next
 * read.  Splitting one input at every offset must always give the same request.
 */
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>
#include <poll.h>
#include <zlib.h>

#include "http/auth.hpp"
#include "http/inflater.hpp"
#include "http/influxql.hpp"
#include "http/params.hpp"
#include "http/request.hpp"
#include "http/response.hpp"
#include "../zlib_reference.hpp"

using namespace influx::http;

namespace influx::http
{
/* Test output names the state instead of printing its bytes. */
void PrintTo(ReadState s, std::ostream *os)
{
    const char *names[] = {"NeedMore", "HeadComplete", "Complete", "Inflate", "Failed"};
    *os << names[static_cast<int>(s)];
}
} // namespace influx::http

namespace
{

std::string Gzip(std::string_view data, int level = Z_DEFAULT_COMPRESSION)
{
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, data.size()), '\0');
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef *>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

/* The body in chunks of at most `size` bytes, ended by the last chunk. */
std::string Chunked(std::string_view body, size_t size, std::string_view trailer = "")
{
    std::string out;
    char hex[32];
    for (size_t i = 0; i < body.size(); i += size) {
        std::string_view piece = body.substr(i, size);
        std::snprintf(hex, sizeof(hex), "%zx\r\n", piece.size());
        out += hex;
        out += piece;
        out += "\r\n";
    }
    out += "0\r\n";
    out += trailer;
    out += "\r\n";
    return out;
}

std::string Post(std::string_view target, std::string_view body, std::string_view headers = "")
{
    return std::string("POST ") + std::string(target) + " HTTP/1.1\r\nHost: db\r\n" +
           std::string(headers) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           std::string(body);
}

std::string PostChunked(std::string_view target, std::string_view chunked_body,
                        std::string_view headers = "")
{
    return std::string("POST ") + std::string(target) +
           " HTTP/1.1\r\nHost: db\r\nTransfer-Encoding: chunked\r\n" + std::string(headers) +
           "\r\n" + std::string(chunked_body);
}

struct FeedResult {
    size_t consumed = 0;
    int head_completes = 0;
    std::string leftover; /* bytes of the input not consumed (the next request) */
};

/*
 * Feeds the reads one after the other, keeping unconsumed bytes in a connection buffer as
 * the event loop does (the next read is appended only when the buffer is empty), until the
 * request is complete or failed or the reads run out.
 */
FeedResult FeedReads(RequestReader &reader, const std::vector<std::string_view> &reads)
{
    FeedResult res;
    std::string buf;
    size_t next = 0;
    while (reader.state() != ReadState::Complete && reader.state() != ReadState::Failed) {
        if (reader.state() == ReadState::Inflate) {
            EXPECT_EQ(reader.Feed(buf.data(), buf.size()), 0u) << "Inflate consumes nothing";
            reader.Inflate();
            EXPECT_NE(reader.state(), ReadState::Inflate);
            continue;
        }
        if (buf.empty()) {
            if (next == reads.size())
                break;
            buf.append(reads[next++]);
        }
        size_t n = reader.Feed(buf.data(), buf.size());
        EXPECT_LE(n, buf.size());
        res.consumed += n;
        buf.erase(0, n);
        if (reader.state() == ReadState::HeadComplete) {
            ++res.head_completes;
        } else if (reader.state() == ReadState::NeedMore) {
            EXPECT_TRUE(buf.empty()) << "NeedMore must consume everything";
        }
    }
    res.leftover = buf;
    for (; next < reads.size(); ++next)
        res.leftover.append(reads[next]);
    return res;
}

/* Feeds `input` as reads of `piece` bytes (the last one shorter). */
FeedResult FeedInPieces(RequestReader &reader, std::string_view input, size_t piece)
{
    std::vector<std::string_view> reads;
    for (size_t pos = 0; pos < input.size(); pos += piece)
        reads.push_back(input.substr(pos, piece));
    return FeedReads(reader, reads);
}

FeedResult FeedAll(RequestReader &reader, std::string_view input)
{
    return FeedReads(reader, {input});
}

/* Feeds `input` as two reads, split at `split`. */
FeedResult FeedSplit(RequestReader &reader, std::string_view input, size_t split)
{
    return FeedReads(reader, {input.substr(0, split), input.substr(split)});
}

RequestLimits Limits(size_t header, size_t body)
{
    RequestLimits l;
    l.max_header_bytes = header;
    l.max_body_bytes = body;
    return l;
}

const std::string kLines = "cpu,host=a usage=1.5 1600000000\nmem,host=a used=42i 1600000000\n";

} // namespace

/* ---- RequestReader: framing ---- */

TEST(RequestReader, ContentLengthRequestInOnePiece)
{
    std::string req = Post("/write?db=telegraf&precision=s", kLines,
                           "Authorization: Token abc\r\nContent-Type: text/plain\r\n"
                           "X-Request-Id: r-1\r\nUser-Agent: Telegraf/1.28\r\n");
    RequestReader reader;
    FeedResult res = FeedAll(reader, req);
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_EQ(res.consumed, req.size());
    EXPECT_EQ(res.head_completes, 1);
    const RequestHead &h = reader.head();
    EXPECT_EQ(h.method, Method::Post);
    EXPECT_EQ(h.method_name, "POST");
    EXPECT_EQ(h.path, "/write");
    EXPECT_EQ(h.target, "/write?db=telegraf&precision=s");
    EXPECT_EQ(h.query.Get("db"), "telegraf");
    EXPECT_EQ(h.query.Get("precision"), "s");
    EXPECT_EQ(h.version, 11);
    EXPECT_TRUE(h.keep_alive);
    ASSERT_TRUE(h.content_length.has_value());
    EXPECT_EQ(*h.content_length, kLines.size());
    EXPECT_FALSE(h.chunked);
    EXPECT_EQ(h.encoding, ContentEncoding::Identity);
    EXPECT_EQ(h.authorization, "Token abc");
    EXPECT_EQ(h.content_type, "text/plain");
    EXPECT_EQ(h.x_request_id, "r-1");
    EXPECT_EQ(reader.body(), kLines);
    EXPECT_EQ(reader.wire_body_bytes(), kLines.size());
}

TEST(RequestReader, ByteByByteGivesTheSameRequest)
{
    struct Case {
        std::string request;
        const char *path;
        const char *authorization;
        bool chunked;
    } cases[] = {
        {Post("/write?db=x", kLines, "Authorization: Basic dTpw\r\n"), "/write", "Basic dTpw",
         false},
        {PostChunked("/api/v2/write?bucket=b", Chunked(kLines, 7), "Authorization: Token t\r\n"),
         "/api/v2/write", "Token t", true},
    };
    for (const Case &c : cases) {
        RequestReader reader;
        FeedResult res = FeedInPieces(reader, c.request, 1);
        ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
        EXPECT_EQ(res.consumed, c.request.size());
        EXPECT_EQ(res.head_completes, 1);
        EXPECT_EQ(reader.body(), kLines);
        EXPECT_EQ(reader.head().method, Method::Post);
        EXPECT_EQ(reader.head().path, c.path);
        EXPECT_EQ(reader.head().authorization, c.authorization);
        EXPECT_EQ(reader.head().chunked, c.chunked);
    }
}

TEST(RequestReader, ChunkedBodyWithExtensionsAndTrailers)
{
    std::string body = "5;name=value\r\nhello\r\n6;a=\"quoted;x\";b\r\n world\r\n"
                       "0;last=1\r\nX-Checksum: abc\r\n\r\n";
    std::string req = PostChunked("/write?db=x", body);
    RequestReader reader;
    FeedResult res = FeedAll(reader, req);
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_EQ(res.consumed, req.size());
    EXPECT_EQ(reader.body(), "hello world");
    EXPECT_TRUE(reader.head().chunked);
    EXPECT_FALSE(reader.head().content_length.has_value());
    EXPECT_EQ(reader.wire_body_bytes(), 11u);
}

TEST(RequestReader, EverySplitPointGivesTheSameRequestAndLeavesTheNextOne)
{
    const std::string next = "GET /ping HTTP/1.1\r\nHost: db\r\n\r\n";
    for (const std::string &first :
         {Post("/write?db=x", kLines, "Expect: 100-continue\r\n"),
          PostChunked("/write?db=x", Chunked(kLines, 10, "T: 1\r\n")),
          PostChunked("/write?db=x", Chunked(Gzip(kLines), 9), "Content-Encoding: gzip\r\n")}) {
        std::string input = first + next;
        for (size_t split = 0; split <= input.size(); ++split) {
            RequestReader reader;
            FeedResult res = FeedSplit(reader, input, split);
            ASSERT_EQ(reader.state(), ReadState::Complete)
                << "split at " << split << ": " << reader.error_message();
            EXPECT_EQ(res.consumed, first.size()) << "split at " << split;
            EXPECT_EQ(res.leftover, next) << "split at " << split;
            EXPECT_EQ(reader.body(), kLines) << "split at " << split;
        }
    }
}

/* A chunked body with no data chunk, in every split and byte by byte (Beast 1.74 asserts
 * on a last chunk given back to it in fewer than 5 bytes). */
TEST(RequestReader, ChunkedBodyWithOnlyTheLastChunk)
{
    const std::string next = "GET /ping HTTP/1.1\r\n\r\n";
    for (const char *body : {"0\r\n\r\n", "0\r\nX-T: 1\r\n\r\n", "000;ext=1\r\n\r\n"}) {
        std::string first = PostChunked("/write?db=x", body);
        std::string input = first + next;
        for (size_t split = 0; split <= input.size(); ++split) {
            RequestReader reader;
            FeedResult res = FeedSplit(reader, input, split);
            ASSERT_EQ(reader.state(), ReadState::Complete) << body << " split at " << split;
            EXPECT_EQ(res.consumed, first.size()) << body << " split at " << split;
            EXPECT_EQ(res.leftover, next);
            EXPECT_TRUE(reader.body().empty());
        }
        for (size_t piece = 1; piece <= 6; ++piece) {
            RequestReader reader;
            FeedResult res = FeedInPieces(reader, input, piece);
            ASSERT_EQ(reader.state(), ReadState::Complete) << body << " piece " << piece;
            EXPECT_EQ(res.consumed, first.size());
            EXPECT_EQ(res.leftover, next) << body << " piece " << piece;
        }
    }
}

TEST(RequestReader, PipelinedRequestsAreReadOneAfterTheOther)
{
    std::string a = Post("/write?db=a", "a v=1\n");
    std::string b = PostChunked("/write?db=b", Chunked("b v=2\n", 3));
    std::string c = "GET /ping HTTP/1.1\r\n\r\n";
    std::string input = a + b + c;
    RequestReader reader;
    size_t n = reader.Feed(input.data(), input.size());
    EXPECT_EQ(reader.state(), ReadState::HeadComplete);
    n += reader.Feed(input.data() + n, input.size() - n);
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(n, a.size());
    EXPECT_EQ(reader.head().query.Get("db"), "a");
    EXPECT_EQ(reader.body(), "a v=1\n");
    EXPECT_EQ(reader.Feed(input.data() + n, input.size() - n), 0u) << "Complete consumes nothing";

    reader.Reset();
    EXPECT_FALSE(reader.started());
    FeedResult res = FeedAll(reader, std::string_view(input).substr(n));
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(res.consumed, b.size());
    EXPECT_EQ(reader.head().query.Get("db"), "b");
    EXPECT_EQ(reader.body(), "b v=2\n");
    EXPECT_EQ(res.leftover, c);

    reader.Reset();
    res = FeedAll(reader, res.leftover);
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(res.consumed, c.size());
    EXPECT_EQ(reader.head().method, Method::Get);
    EXPECT_EQ(reader.head().path, "/ping");
    EXPECT_TRUE(reader.body().empty());
}

TEST(RequestReader, ExpectContinueStopsAfterTheHead)
{
    std::string head = "POST /write?db=x HTTP/1.1\r\nHost: db\r\nExpect: 100-Continue\r\n"
                       "Content-Length: " +
                       std::to_string(kLines.size()) + "\r\n\r\n";
    std::string input = head + kLines;
    RequestReader reader;
    EXPECT_FALSE(reader.started());
    size_t n = reader.Feed(input.data(), input.size());
    ASSERT_EQ(reader.state(), ReadState::HeadComplete);
    EXPECT_EQ(n, head.size()) << "the body is not read before the caller says so";
    EXPECT_TRUE(reader.started());
    EXPECT_TRUE(reader.head().expect_continue);
    EXPECT_EQ(reader.head().expect, "100-Continue");
    EXPECT_TRUE(reader.body().empty());
    n += reader.Feed(input.data() + n, input.size() - n);
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(n, input.size());
    EXPECT_EQ(reader.body(), kLines);

    RequestReader plain;
    FeedAll(plain, Post("/write", "x v=1"));
    EXPECT_FALSE(plain.head().expect_continue);
}

TEST(RequestReader, RequestWithoutBodyIsCompleteAtItsHead)
{
    for (std::string req :
         {std::string("GET /ping HTTP/1.1\r\nHost: db\r\n\r\n"),
          std::string("POST /write?db=x HTTP/1.1\r\nHost: db\r\n\r\n"), Post("/write?db=x", "")}) {
        RequestReader reader;
        FeedResult res = FeedAll(reader, req);
        ASSERT_EQ(reader.state(), ReadState::Complete) << req;
        EXPECT_EQ(res.head_completes, 0) << "no HeadComplete without a body: " << req;
        EXPECT_EQ(res.consumed, req.size());
        EXPECT_TRUE(reader.body().empty());
    }
}

TEST(RequestReader, KeepAliveRules)
{
    struct Case {
        const char *head;
        bool keep_alive;
        int version;
    } cases[] = {
        {"GET /ping HTTP/1.1\r\n\r\n", true, 11},
        {"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n", false, 11},
        {"GET /ping HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", true, 11},
        {"GET /ping HTTP/1.0\r\n\r\n", false, 10},
        {"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 10},
        {"GET /ping HTTP/1.0\r\nConnection: close\r\n\r\n", false, 10},
    };
    for (const Case &c : cases) {
        RequestReader reader;
        FeedAll(reader, c.head);
        ASSERT_EQ(reader.state(), ReadState::Complete) << c.head;
        EXPECT_EQ(reader.head().keep_alive, c.keep_alive) << c.head;
        EXPECT_EQ(reader.head().version, c.version) << c.head;
    }
    /* HTTP/1.0 with a Content-Length body */
    RequestReader reader;
    std::string req = "POST /write?db=x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n"
                      "\r\nx v=1";
    FeedResult res = FeedAll(reader, req);
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(res.consumed, req.size());
    EXPECT_EQ(reader.body(), "x v=1");
    EXPECT_TRUE(reader.head().keep_alive);
}

TEST(RequestReader, LargeBodyIn64KiBReads)
{
    std::string body;
    for (int i = 0; body.size() < 1200 * 1000; ++i)
        body += "cpu,host=h" + std::to_string(i % 100) + " usage_user=1.25,usage_idle=98i " +
                std::to_string(1600000000000000000LL + i) + "\n";
    for (const std::string &req :
         {Post("/write?db=x", body), PostChunked("/write?db=x", Chunked(body, 4096)),
          PostChunked("/write?db=x", Chunked(Gzip(body), 32768), "Content-Encoding: gzip\r\n")}) {
        RequestReader reader;
        FeedResult res = FeedInPieces(reader, req, 65536);
        ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
        EXPECT_EQ(res.consumed, req.size());
        EXPECT_TRUE(reader.body() == body);
        EXPECT_LE(reader.body_capacity(), 2 * body.size());
        reader.Reset();
        EXPECT_LE(reader.body_capacity(), RequestReader::kRetainedBodyBytes)
            << "Reset gives a large body buffer back";
    }
}

TEST(RequestReader, QueryStringAndPath)
{
    RequestReader reader;
    FeedAll(reader, "GET /query%2Fx?q=SHOW+DATABASES&db=my%20db&db=second&rp=&flag&bad=%zz#frag "
                    "HTTP/1.1\r\n\r\n");
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    const RequestHead &h = reader.head();
    EXPECT_EQ(h.path, "/query/x");
    EXPECT_EQ(h.query.Get("q"), "SHOW DATABASES");
    EXPECT_EQ(h.query.Get("db"), "my db") << "the first of repeated keys wins";
    ASSERT_NE(h.query.Find("rp"), nullptr);
    EXPECT_EQ(*h.query.Find("rp"), "");
    EXPECT_TRUE(h.query.Has("flag"));
    EXPECT_EQ(h.query.Get("bad"), "%zz");
    EXPECT_EQ(h.query.Find("missing"), nullptr);
    EXPECT_EQ(h.method, Method::Get);

    RequestReader absolute;
    FeedAll(absolute, "POST http://db:8086/write?db=x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    ASSERT_EQ(absolute.state(), ReadState::Complete);
    EXPECT_EQ(absolute.head().path, "/write");
    EXPECT_EQ(absolute.head().query.Get("db"), "x");
}

TEST(RequestReader, MethodsAndHeaders)
{
    struct Case {
        const char *name;
        Method method;
    } cases[] = {{"GET", Method::Get},         {"HEAD", Method::Head}, {"POST", Method::Post},
                 {"OPTIONS", Method::Options}, {"PUT", Method::Other}, {"BREW", Method::Other}};
    for (const Case &c : cases) {
        RequestReader reader;
        FeedAll(reader, std::string(c.name) + " /ping HTTP/1.1\r\n\r\n");
        ASSERT_EQ(reader.state(), ReadState::Complete) << c.name;
        EXPECT_EQ(reader.head().method, c.method) << c.name;
        EXPECT_EQ(reader.head().method_name, c.name);
    }

    RequestReader reader;
    FeedAll(reader, "GET /ping HTTP/1.1\r\nauthorization: Token first\r\n"
                    "Authorization: Token second\r\nrequest-id: rid\r\nx-request-id: xrid\r\n"
                    "content-encoding: identity\r\nORIGIN: http://a\r\n\r\n");
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(reader.head().authorization, "Token first");
    EXPECT_EQ(reader.head().request_id, "rid");
    EXPECT_EQ(reader.head().x_request_id, "xrid");
    EXPECT_EQ(reader.head().origin, "http://a");
    EXPECT_EQ(reader.head().content_encoding, "identity");
    EXPECT_EQ(reader.head().encoding, ContentEncoding::Identity);
}

TEST(RequestReader, LeadingEmptyLinesAreSkipped)
{
    RequestReader reader;
    std::string req = "\r\n\r\nGET /ping HTTP/1.1\r\n\r\n";
    FeedResult res = FeedAll(reader, req);
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_EQ(res.consumed, req.size());
    EXPECT_EQ(reader.head().path, "/ping");
}

/* ---- RequestReader: gzip ---- */

TEST(RequestReader, GzipBody)
{
    std::string gz = Gzip(kLines);
    for (const char *enc : {"gzip", "x-gzip", "GZIP", "identity, gzip"}) {
        RequestReader reader;
        std::string req = Post("/write?db=x", gz, "Content-Encoding: " + std::string(enc) + "\r\n");
        FeedResult res = FeedAll(reader, req);
        ASSERT_EQ(reader.state(), ReadState::Complete) << enc << ": " << reader.error_message();
        EXPECT_EQ(res.consumed, req.size());
        EXPECT_EQ(reader.head().encoding, ContentEncoding::Gzip);
        EXPECT_EQ(reader.body(), kLines) << enc;
        EXPECT_EQ(reader.wire_body_bytes(), gz.size());
    }
    /* the same reader, inflating again after Reset */
    RequestReader reader;
    for (int i = 0; i < 3; ++i) {
        reader.Reset();
        FeedAll(reader, PostChunked("/write", Chunked(gz, 5), "Content-Encoding: gzip\r\n"));
        ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
        EXPECT_EQ(reader.body(), kLines);
    }
}

TEST(RequestReader, GzipBodyInflatedLaterStopsAtInflate)
{
    /* A body of inflate_later_bytes or more stops at Inflate with the request read whole
     * (the next one left), consumes nothing more, and Inflate() ends it as Feed() would. */
    RequestLimits limits;
    limits.inflate_later_bytes = 20;
    std::string gz = Gzip(kLines);
    ASSERT_GE(gz.size(), 20u);
    std::string next = "GET /ping HTTP/1.1\r\nHost: db\r\n\r\n";
    std::string input = Post("/write?db=x", gz, "Content-Encoding: gzip\r\n") + next;
    RequestReader reader(limits);
    std::string buf = input;
    size_t n = reader.Feed(buf.data(), buf.size());
    buf.erase(0, n);
    if (reader.state() == ReadState::HeadComplete) {
        n = reader.Feed(buf.data(), buf.size());
        buf.erase(0, n);
    }
    ASSERT_EQ(reader.state(), ReadState::Inflate);
    EXPECT_EQ(buf, next);
    EXPECT_EQ(reader.Feed(buf.data(), buf.size()), 0u);
    EXPECT_EQ(reader.wire_body_bytes(), gz.size());
    reader.Inflate();
    ASSERT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(reader.body(), kLines);
    EXPECT_EQ(reader.head().query.Get("db"), "x");
    reader.Inflate(); /* nothing to do now */
    EXPECT_EQ(reader.state(), ReadState::Complete);
    reader.Reset();
    FeedAll(reader, buf);
    EXPECT_EQ(reader.state(), ReadState::Complete);
    EXPECT_EQ(reader.head().path, "/ping");

    /* Smaller bodies are inflated by Feed(), as always. */
    RequestReader small(limits);
    FeedAll(small, Post("/write", Gzip("a v=1\n"), "Content-Encoding: gzip\r\n"));
    EXPECT_EQ(small.state(), ReadState::Complete);
    EXPECT_EQ(small.body(), "a v=1\n");

    /* A bomb is refused by Inflate() with the same 413. */
    std::string bomb = Gzip(std::string(2 * 1000 * 1000, 'a'));
    RequestReader plain(Limits(16 * 1024, 1000 * 1000));
    FeedAll(plain, Post("/write", bomb, "Content-Encoding: gzip\r\n"));
    RequestLimits bomb_limits = Limits(16 * 1024, 1000 * 1000);
    bomb_limits.inflate_later_bytes = 1;
    RequestReader later(bomb_limits);
    FeedAll(later, Post("/write", bomb, "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(plain.state(), ReadState::Failed);
    ASSERT_EQ(later.state(), ReadState::Failed);
    EXPECT_EQ(later.error_status(), 413);
    EXPECT_EQ(later.error_message(), plain.error_message());
}

TEST(Inflater, InflatesOnItsThreadAndSaysWhenDone)
{
    /* Readers handed over in Inflate come back, each with its own body or error (as a
     * reader that inflates in Feed() gives), and the descriptor says when: the listener's
     * loop waits on it. */
    Inflater inflater;
    std::string why;
    ASSERT_TRUE(inflater.Start(&why)) << why;
    ASSERT_GE(inflater.ready_fd(), 0);
    RequestLimits now_limits = Limits(16 * 1024, 100 * 1000);
    RequestLimits later_limits = now_limits;
    later_limits.inflate_later_bytes = 1;
    constexpr int kReaders = 40;
    std::vector<std::unique_ptr<RequestReader>> now, later;
    for (int i = 0; i < kReaders; ++i) {
        std::string body;
        for (int k = 0; k <= i * 50; ++k)
            body += "cpu,host=h" + std::to_string(i) + " v=" + std::to_string(k) + "\n";
        if (i % 5 == 4) /* too large once inflated: 413 */
            body = std::string(200 * 1000, 'x');
        std::string gz = Gzip(body);
        if (i % 7 == 6) /* corrupt: 400 */
            gz[gz.size() / 2] = static_cast<char>(gz[gz.size() / 2] ^ 0x55);
        std::string input = Post("/write", gz, "Content-Encoding: gzip\r\n");
        now.push_back(std::make_unique<RequestReader>(now_limits));
        FeedAll(*now.back(), input);
        later.push_back(std::make_unique<RequestReader>(later_limits));
        RequestReader &r = *later.back();
        size_t used = 0;
        while (used < input.size() && r.state() != ReadState::Inflate &&
               r.state() != ReadState::Failed)
            used += r.Feed(input.data() + used, input.size() - used);
        ASSERT_EQ(r.state(), ReadState::Inflate) << i;
        inflater.Submit(&r, reinterpret_cast<void *>(static_cast<uintptr_t>(i + 1)));
    }
    EXPECT_EQ(now[4]->error_status(), 413);
    EXPECT_EQ(now[6]->error_status(), 400);
    EXPECT_EQ(now[1]->state(), ReadState::Complete);
    std::vector<bool> seen(kReaders, false);
    int taken = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (taken < kReaders && std::chrono::steady_clock::now() < deadline) {
        pollfd p = {inflater.ready_fd(), POLLIN, 0};
        (void) poll(&p, 1, 1000);
        for (void *key : inflater.TakeDone()) {
            int i = static_cast<int>(reinterpret_cast<uintptr_t>(key)) - 1;
            ASSERT_GE(i, 0);
            ASSERT_LT(i, kReaders);
            EXPECT_FALSE(seen[i]) << "returned twice: " << i;
            seen[i] = true;
            ++taken;
            EXPECT_EQ(later[i]->state(), now[i]->state()) << i;
            EXPECT_EQ(later[i]->error_status(), now[i]->error_status()) << i;
            EXPECT_EQ(later[i]->error_message(), now[i]->error_message()) << i;
            EXPECT_TRUE(later[i]->body() == now[i]->body()) << i;
        }
    }
    EXPECT_EQ(taken, kReaders);
    EXPECT_EQ(inflater.outstanding(), 0u);
}

TEST(Inflater, StopGivesBackEveryReaderAndStartsAgain)
{
    /* Stop() while jobs wait: every key back once, each reader inflated or still in
     * Inflate; after Start() again, the ones left are inflated as usual. */
    Inflater inflater;
    std::string why;
    ASSERT_TRUE(inflater.Start(&why)) << why;
    RequestLimits limits;
    limits.inflate_later_bytes = 1;
    std::string body;
    for (int k = 0; k < 20000; ++k)
        body += "cpu,host=h v=" + std::to_string(k) + "\n";
    std::string input = Post("/write", Gzip(body), "Content-Encoding: gzip\r\n");
    constexpr int kReaders = 30;
    std::vector<std::unique_ptr<RequestReader>> readers;
    for (int i = 0; i < kReaders; ++i) {
        readers.push_back(std::make_unique<RequestReader>(limits));
        size_t used = 0;
        while (used < input.size() && readers[i]->state() != ReadState::Inflate)
            used += readers[i]->Feed(input.data() + used, input.size() - used);
        ASSERT_EQ(readers[i]->state(), ReadState::Inflate);
        EXPECT_EQ(readers[i]->inflated_size_hint(), body.size());
        inflater.Submit(readers[i].get(), readers[i].get());
    }
    std::vector<void *> keys = inflater.Stop();
    EXPECT_FALSE(inflater.started());
    EXPECT_EQ(inflater.outstanding(), 0u);
    ASSERT_EQ(keys.size(), static_cast<size_t>(kReaders));
    std::vector<RequestReader *> left;
    for (int i = 0; i < kReaders; ++i) {
        EXPECT_EQ(std::count(keys.begin(), keys.end(), readers[i].get()), 1) << i;
        if (readers[i]->state() == ReadState::Inflate) {
            left.push_back(readers[i].get());
        } else {
            EXPECT_EQ(readers[i]->state(), ReadState::Complete) << i;
            EXPECT_EQ(readers[i]->body(), body) << i;
        }
    }
    ASSERT_TRUE(inflater.Start(&why)) << why;
    for (RequestReader *r : left)
        inflater.Submit(r, r);
    size_t taken = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (taken < left.size() && std::chrono::steady_clock::now() < deadline) {
        pollfd p = {inflater.ready_fd(), POLLIN, 0};
        (void) poll(&p, 1, 1000);
        taken += inflater.TakeDone().size();
    }
    EXPECT_EQ(taken, left.size());
    for (RequestReader *r : left) {
        EXPECT_EQ(r->state(), ReadState::Complete);
        EXPECT_EQ(r->body(), body);
    }
}

TEST(RequestReader, InflatedSizeHintIsTheTrailersBoundedByTheLimit)
{
    RequestLimits limits = Limits(16 * 1024, 1000);
    limits.inflate_later_bytes = 1;
    auto read_to_inflate = [&limits](size_t size) {
        auto r = std::make_unique<RequestReader>(limits);
        std::string input =
            Post("/write", Gzip(std::string(size, 'a')), "Content-Encoding: gzip\r\n");
        size_t used = 0;
        while (used < input.size() && r->state() != ReadState::Inflate)
            used += r->Feed(input.data() + used, input.size() - used);
        return r;
    };
    auto small = read_to_inflate(600);
    ASSERT_EQ(small->state(), ReadState::Inflate);
    EXPECT_EQ(small->inflated_size_hint(), 600u);
    auto bomb = read_to_inflate(100000);
    ASSERT_EQ(bomb->state(), ReadState::Inflate);
    EXPECT_EQ(bomb->inflated_size_hint(), 1001u);
    RequestReader none;
    EXPECT_EQ(none.inflated_size_hint(), 0u); /* not in Inflate */
}

TEST(RequestReader, GzipWithTwoMembers)
{
    std::string gz = Gzip("cpu v=1\n") + Gzip("mem v=2\n");
    for (size_t piece : {size_t{1}, size_t{3}, gz.size()}) {
        RequestReader reader;
        FeedAll(reader, PostChunked("/write", Chunked(gz, piece), "Content-Encoding: gzip\r\n"));
        ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
        EXPECT_EQ(reader.body(), "cpu v=1\nmem v=2\n");
    }
}

TEST(RequestReader, GzipBombFailsWith413WithoutInflatingIt)
{
    std::string zeros(10 * 1000 * 1000, '\0');
    std::string gz = Gzip(zeros, Z_BEST_COMPRESSION);
    ASSERT_LT(gz.size(), 100 * 1000u);
    const size_t limit = 1000 * 1000;
    for (const std::string &req :
         {Post("/write", gz, "Content-Encoding: gzip\r\n"),
          PostChunked("/write", Chunked(gz, 4096), "Content-Encoding: gzip\r\n")}) {
        RequestReader reader(Limits(16 * 1024, limit));
        FeedInPieces(reader, req, 65536);
        ASSERT_EQ(reader.state(), ReadState::Failed);
        EXPECT_EQ(reader.error_status(), 413);
        EXPECT_EQ(reader.error_message(), "request body too large: more than 1000000 bytes after "
                                          "decompression, limit 1000000");
        EXPECT_LE(reader.body_capacity(), limit + 1) << "never holds more than the limit";
    }
    /* exactly the limit after decompression is fine */
    RequestReader reader(Limits(16 * 1024, limit));
    FeedAll(reader, Post("/write", Gzip(zeros.substr(0, limit)), "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_EQ(reader.body().size(), limit);
}

TEST(RequestReader, CorruptOrTruncatedGzipFailsWith400)
{
    RequestReader corrupt;
    FeedAll(corrupt, Post("/write", "not gzip at all", "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(corrupt.state(), ReadState::Failed);
    EXPECT_EQ(corrupt.error_status(), 400);
    EXPECT_EQ(corrupt.error_message(), "invalid gzip body: incorrect header check");

    std::string gz = Gzip(kLines);
    std::string damaged = gz;
    damaged[damaged.size() - 6] ^= 0x55; /* the CRC-32 in the trailer */
    RequestReader crc;
    FeedAll(crc, Post("/write", damaged, "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(crc.state(), ReadState::Failed);
    EXPECT_EQ(crc.error_status(), 400);
    EXPECT_EQ(crc.error_message(), "invalid gzip body: incorrect data check");

    RequestReader truncated;
    FeedAll(truncated, Post("/write", gz.substr(0, gz.size() - 4), "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(truncated.state(), ReadState::Failed);
    EXPECT_EQ(truncated.error_status(), 400);
    EXPECT_EQ(truncated.error_message(), "invalid gzip body: unexpected end of stream");

    RequestReader trailing;
    FeedAll(trailing, Post("/write", gz + "garbage!!", "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(trailing.state(), ReadState::Failed);
    EXPECT_EQ(trailing.error_status(), 400);

    RequestReader empty;
    FeedAll(empty, PostChunked("/write", Chunked("", 1), "Content-Encoding: gzip\r\n"));
    ASSERT_EQ(empty.state(), ReadState::Complete) << "an empty body is empty in any encoding";
    EXPECT_TRUE(empty.body().empty());
}

/* gzip with a header CRC-16 (FHCRC), which libdeflate skips and zlib checks. */
std::string GzipWithHeaderCrc(std::string_view data)
{
    z_stream zs{};
    EXPECT_EQ(
        deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
        Z_OK);
    gz_header header{};
    header.hcrc = 1;
    EXPECT_EQ(deflateSetHeader(&zs, &header), Z_OK);
    std::string out(deflateBound(&zs, data.size()) + 64, '\0');
    zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef *>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

/* The gzip member with its ISIZE trailer (the last 4 bytes) replaced by `isize`. */
std::string WithIsize(std::string gz, uint32_t isize)
{
    for (int i = 0; i < 4; ++i)
        gz[gz.size() - 4 + i] = static_cast<char>((isize >> (8 * i)) & 0xff);
    return gz;
}

/* Reads one gzip POST (Content-Length, and chunked in 7-byte chunks): both the same. */
void ReadGzip(RequestReader &reader, std::string_view gz, size_t limit = 1000 * 1000)
{
    RequestReader chunked(Limits(16 * 1024, limit));
    FeedAll(chunked, PostChunked("/write", Chunked(gz, 7), "Content-Encoding: gzip\r\n"));
    FeedInPieces(reader, Post("/write", gz, "Content-Encoding: gzip\r\n"), 4096);
    ASSERT_EQ(chunked.state(), reader.state());
    EXPECT_EQ(chunked.error_status(), reader.error_status());
    EXPECT_EQ(chunked.error_message(), reader.error_message());
    EXPECT_TRUE(chunked.body() == reader.body());
    /* Inflated later (as the listener's thread does): the same outcome. */
    RequestLimits later_limits = Limits(16 * 1024, limit);
    later_limits.inflate_later_bytes = 1;
    RequestReader later(later_limits);
    FeedInPieces(later, Post("/write", gz, "Content-Encoding: gzip\r\n"), 4096);
    ASSERT_EQ(later.state(), reader.state());
    EXPECT_EQ(later.error_status(), reader.error_status());
    EXPECT_EQ(later.error_message(), reader.error_message());
    EXPECT_TRUE(later.body() == reader.body());
}

TEST(RequestReader, GzipIsizeIsOnlyAHint)
{
    const size_t limit = 1000 * 1000;
    std::string body;
    while (body.size() < 100 * 1000)
        body += kLines;
    std::string gz = Gzip(body);
    struct Case {
        uint32_t isize;
        const char *why;
    } cases[] = {{0, "zero"},
                 {3, "smaller than the body"},
                 {static_cast<uint32_t>(body.size() - 1), "one byte short"},
                 {static_cast<uint32_t>(body.size() + 1), "one byte more"},
                 {static_cast<uint32_t>(limit), "the limit"},
                 {static_cast<uint32_t>(limit + 1), "past the limit"},
                 {UINT32_MAX, "4 GiB"}};
    for (const Case &c : cases) {
        RequestReader reader(Limits(16 * 1024, limit));
        ReadGzip(reader, WithIsize(gz, c.isize), limit);
        ASSERT_EQ(reader.state(), ReadState::Failed) << c.why;
        EXPECT_EQ(reader.error_status(), 400) << c.why << ": a lying trailer is a bad body";
        EXPECT_EQ(reader.error_message(), "invalid gzip body: incorrect length check") << c.why;
        EXPECT_LE(reader.body_capacity(), limit + 1) << c.why;
    }
    /* the truth, for contrast */
    RequestReader reader(Limits(16 * 1024, limit));
    ReadGzip(reader, gz, limit);
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_TRUE(reader.body() == body);
    EXPECT_EQ(reader.body_capacity(), body.size())
        << "sized by ISIZE, and the compressed bytes are freed";
}

TEST(RequestReader, GzipManyMembersOfEverySize)
{
    /* A large member before small ones (ISIZE, the last member's size, is too small for
     * the first), empty members, and members of several levels. */
    std::string big;
    while (big.size() < 300 * 1000)
        big += "cpu,host=h" + std::to_string(big.size() % 977) +
               " v=" + std::to_string(big.size()) + "\n";
    std::vector<std::string> parts = {big, "", kLines, "x", big.substr(0, 70000), "", "tail\n"};
    std::string gz, body;
    int level = 0;
    for (const std::string &part : parts) {
        gz += Gzip(part, level++ % 10);
        body += part;
    }
    RequestReader reader;
    ReadGzip(reader, gz);
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_TRUE(reader.body() == body);

    /* a hundred small members */
    gz.clear();
    body.clear();
    for (int i = 0; i < 100; ++i) {
        std::string line = "m,i=" + std::to_string(i) + " v=" + std::to_string(i * i) + "\n";
        gz += Gzip(line);
        body += line;
    }
    RequestReader many;
    ReadGzip(many, gz);
    ASSERT_EQ(many.state(), ReadState::Complete) << many.error_message();
    EXPECT_EQ(many.body(), body);
}

TEST(RequestReader, GzipMembersTogetherOverTheLimitFailWith413)
{
    const size_t limit = 100 * 1000;
    std::string half(limit / 2, 'a');
    /* exactly the limit in two members */
    RequestReader exact(Limits(16 * 1024, limit));
    ReadGzip(exact, Gzip(half) + Gzip(half), limit);
    ASSERT_EQ(exact.state(), ReadState::Complete) << exact.error_message();
    EXPECT_EQ(exact.body().size(), limit);
    /* one byte more, in the last member or the first */
    for (const std::string &gz : {Gzip(half) + Gzip(half + "b"), Gzip(half + "b") + Gzip(half),
                                  Gzip(half) + Gzip(half) + Gzip("c")}) {
        RequestReader reader(Limits(16 * 1024, limit));
        ReadGzip(reader, gz, limit);
        ASSERT_EQ(reader.state(), ReadState::Failed);
        EXPECT_EQ(reader.error_status(), 413);
        EXPECT_EQ(reader.error_message(), "request body too large: more than 100000 bytes after "
                                          "decompression, limit 100000");
        EXPECT_LE(reader.body_capacity(), limit + 1);
    }
}

TEST(RequestReader, EveryTruncatedGzipFailsWith400)
{
    std::string first = Gzip(kLines);
    std::string gz = first + Gzip("mem v=2\n");
    for (size_t len = 1; len < gz.size(); ++len) {
        RequestReader reader;
        FeedAll(reader, Post("/write", gz.substr(0, len), "Content-Encoding: gzip\r\n"));
        if (len == first.size()) { /* the first member whole: a body of its own */
            ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
            EXPECT_EQ(reader.body(), kLines);
            continue;
        }
        ASSERT_EQ(reader.state(), ReadState::Failed) << len << " of " << gz.size() << " bytes";
        EXPECT_EQ(reader.error_status(), 400) << len;
    }
}

/* Bytes from hexadecimal digits. */
std::string Unhex(std::string_view hex)
{
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    return out;
}

/* zlib's reading of a gzip body: the body, or "invalid gzip body: <zlib's message>" -- how
 * the reader worked before libdeflate. */
std::pair<bool, std::string> ZlibInflate(std::string_view gz)
{
    influx::test::Inflated r = influx::test::ZlibInflate(gz);
    return r.ok ? std::pair<bool, std::string>{true, r.out}
                : std::pair<bool, std::string>{false, r.message};
}

TEST(RequestReader, CorruptGzipIsReadAsZlibReadsIt)
{
    /* Every bit of every byte flipped, in a body of two members: the reader gives what zlib
     * gives (here always; see GzipReservedLengthCodeWithGoodChecksumsIsTheData for where it
     * may not) (the body when only a bit that does not matter changed -- FTEXT, MTIME, XFL,
     * OS, padding after the last block -- else 400 with zlib's message). */
    std::string gz = Gzip(kLines) + Gzip("mem v=2\n", 1);
    int complete = 0;
    for (size_t at = 0; at < gz.size(); ++at) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string damaged = gz;
            damaged[at] = static_cast<char>(damaged[at] ^ (1 << bit));
            std::pair<bool, std::string> expected = ZlibInflate(damaged);
            RequestReader reader;
            FeedAll(reader, Post("/write", damaged, "Content-Encoding: gzip\r\n"));
            RequestLimits later_limits;
            later_limits.inflate_later_bytes = 1;
            RequestReader later(later_limits);
            FeedAll(later, Post("/write", damaged, "Content-Encoding: gzip\r\n"));
            ASSERT_EQ(later.state(), reader.state()) << "byte " << at << " bit " << bit;
            EXPECT_EQ(later.error_message(), reader.error_message());
            EXPECT_TRUE(later.body() == reader.body()) << "byte " << at << " bit " << bit;
            if (expected.first) {
                ++complete;
                ASSERT_EQ(reader.state(), ReadState::Complete) << "byte " << at << " bit " << bit;
                EXPECT_EQ(reader.body(), expected.second) << "byte " << at << " bit " << bit;
                EXPECT_EQ(reader.body(), kLines + "mem v=2\n") << "byte " << at << " bit " << bit;
            } else {
                ASSERT_EQ(reader.state(), ReadState::Failed) << "byte " << at << " bit " << bit;
                EXPECT_EQ(reader.error_status(), 400) << "byte " << at << " bit " << bit;
                EXPECT_EQ(reader.error_message(), expected.second)
                    << "byte " << at << " bit " << bit;
            }
        }
    }
    EXPECT_GE(complete, 2 * 6 * 8) << "MTIME, XFL and OS of both members";
    EXPECT_LT(complete, static_cast<int>(gz.size()) * 8 / 2);
}

TEST(RequestReader, GzipReservedLengthCodeWithGoodChecksumsIsTheData)
{
    /* One member, a fixed-Huffman block of length-258 matches (symbol 285), found by the
     * fuzzer.  Its byte 67 bit 7 set makes one of them symbol 287, which DEFLATE reserves:
     * zlib calls it invalid, libdeflate reads it as 285.  The data, and so the CRC-32 and
     * ISIZE, are the same: the reader takes it, and its body is exactly the data sent. */
    std::string gz =
        Unhex("1f8b0800000000000203fbffff7f41665eba8247484880bea19e21afd583b949bc5cbc401697477e"
              "71890110701527a6bbe6c567f2fe1f553caa7854f1a8e251c5a38a47158f2a1e553caa78642b0600"
              "94208802400b0000");
    ASSERT_EQ(gz.size(), 88u);
    std::pair<bool, std::string> sent = ZlibInflate(gz);
    ASSERT_TRUE(sent.first) << sent.second;
    ASSERT_EQ(sent.second.size(), 2880u);
    std::string reserved = gz;
    reserved[67] = static_cast<char>(reserved[67] ^ 0x80);
    EXPECT_EQ(ZlibInflate(reserved).second, "invalid gzip body: invalid literal/length code");

    RequestReader reader;
    ReadGzip(reader, reserved + Gzip("mem v=2\n"));
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_EQ(reader.body(), sent.second + "mem v=2\n");
    /* A bit that changes the data is caught by the CRC-32 (zlib then names the error). */
    std::string changed = gz;
    changed[40] = static_cast<char>(changed[40] ^ 0x04);
    RequestReader bad;
    ReadGzip(bad, changed);
    ASSERT_EQ(bad.state(), ReadState::Failed);
    EXPECT_EQ(bad.error_status(), 400);
    EXPECT_EQ(bad.error_message(), ZlibInflate(changed).second);
}

TEST(RequestReader, GzipHeaderCrcIsChecked)
{
    std::string gz = GzipWithHeaderCrc(kLines);
    ASSERT_NE(gz[3] & 0x02, 0) << "FHCRC set";
    RequestReader good;
    ReadGzip(good, gz + Gzip("mem v=3\n"));
    ASSERT_EQ(good.state(), ReadState::Complete) << good.error_message();
    EXPECT_EQ(good.body(), kLines + "mem v=3\n");

    std::string damaged = gz;
    damaged[10] ^= 0x01; /* the CRC-16 right after the 10-byte fixed header */
    for (const std::string &body : {damaged, Gzip("cpu v=1\n") + damaged}) {
        RequestReader reader;
        ReadGzip(reader, body);
        ASSERT_EQ(reader.state(), ReadState::Failed);
        EXPECT_EQ(reader.error_status(), 400);
        EXPECT_EQ(reader.error_message(), "invalid gzip body: header crc mismatch");
    }
}

TEST(RequestReader, UnfinishedGzipBodyHoldsOnlyItsCompressedBytes)
{
    std::string body;
    while (body.size() < 500 * 1000)
        body += kLines;
    std::string gz = Gzip(body);
    std::string req = Post("/write", gz, "Content-Encoding: gzip\r\n");
    RequestReader reader;
    FeedAll(reader, std::string_view(req).substr(0, req.size() - 1));
    ASSERT_EQ(reader.state(), ReadState::NeedMore);
    EXPECT_EQ(reader.body_capacity(), gz.size()) << "the Content-Length, nothing inflated yet";
    FeedAll(reader, std::string_view(req).substr(req.size() - 1));
    ASSERT_EQ(reader.state(), ReadState::Complete) << reader.error_message();
    EXPECT_TRUE(reader.body() == body);
    EXPECT_EQ(reader.body_capacity(), body.size());
    reader.Reset();
    EXPECT_EQ(reader.body_capacity(), 0u);
}

TEST(RequestReader, UnknownContentEncodingFailsWith415AtTheHead)
{
    for (const char *enc : {"br", "deflate", "gzip, gzip", "compress"}) {
        RequestReader reader;
        std::string head = "POST /write HTTP/1.1\r\nContent-Encoding: " + std::string(enc) +
                           "\r\nContent-Length: 3\r\n\r\n";
        size_t n = reader.Feed((head + "abc").data(), head.size() + 3);
        ASSERT_EQ(reader.state(), ReadState::Failed) << enc;
        EXPECT_EQ(reader.error_status(), 415) << enc;
        EXPECT_EQ(n, head.size()) << "refused before the body";
        EXPECT_EQ(reader.error_message(), "unsupported Content-Encoding \"" + std::string(enc) +
                                              "\" (use gzip or identity)");
    }
}

/* ---- RequestReader: limits and errors ---- */

TEST(RequestReader, HeaderTooLarge)
{
    std::string head = "GET /ping HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i)
        head += "X-Filler-" + std::to_string(i) + ": " + std::string(100, 'a') + "\r\n";
    head += "\r\n";
    for (size_t piece : {size_t{1}, size_t{100}, head.size()}) {
        RequestReader reader(Limits(4096, 1000));
        FeedInPieces(reader, head, piece);
        ASSERT_EQ(reader.state(), ReadState::Failed) << "piece " << piece;
        EXPECT_EQ(reader.error_status(), 431);
        EXPECT_EQ(reader.error_message(), "request header too large (limit 4096 bytes)");
    }
    RequestReader big(Limits(64 * 1024, 1000));
    FeedAll(big, head);
    EXPECT_EQ(big.state(), ReadState::Complete) << big.error_message();
}

/* Found by fuzz_http_request: a head over the limit that the reader parsed anyway (Beast
 * counts its limit from the end of the request line, and from the start of each read) was
 * answered by the head's own checks (501, 415, 413) or 431 depending on the reads. */
TEST(RequestReader, HeaderTooLargeComesBeforeTheHeadsOwnChecks)
{
    const std::string pad = "X-Pad: " + std::string(70, 'p') + "\r\n";
    for (std::string field : {"Transfer-Encoding: gzip\r\n", "Content-Encoding: br\r\n",
                              "Content-Length: 999999\r\n"}) {
        std::string head = "POST /write?db=x HTTP/1.1\r\nHost: db\r\n" + field + pad + "\r\n";
        ASSERT_GT(head.size(), 128u);
        ASSERT_LT(head.size(), 128u + 40);
        for (size_t split = 0; split <= head.size(); ++split) {
            RequestReader reader(Limits(128, 1000));
            FeedSplit(reader, head, split);
            ASSERT_EQ(reader.state(), ReadState::Failed) << field << " split " << split;
            EXPECT_EQ(reader.error_status(), 431) << field << " split " << split;
        }
    }
}

/* Found by fuzz_http_request: an unfinished head of exactly the limit failed or waited for
 * more depending on the reads. */
TEST(RequestReader, HeadOfExactlyTheLimit)
{
    std::string head = "GET /ping HTTP/1.1\r\nHost: db\r\nX-Pad: ";
    head += std::string(128 - head.size() - 4, 'p') + "\r\n\r\n";
    ASSERT_EQ(head.size(), 128u);
    for (size_t split = 0; split <= head.size(); ++split) {
        RequestReader reader(Limits(128, 1000));
        FeedSplit(reader, head, split);
        EXPECT_EQ(reader.state(), ReadState::Complete) << "split " << split;
    }
    std::string unfinished = head.substr(0, 126) + "pp"; /* 128 bytes, no end of head */
    for (size_t piece : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, unfinished.size()}) {
        RequestReader reader(Limits(128, 1000));
        FeedInPieces(reader, unfinished, piece);
        ASSERT_EQ(reader.state(), ReadState::Failed) << "piece " << piece;
        EXPECT_EQ(reader.error_status(), 431) << "piece " << piece;
    }
}

TEST(RequestReader, EndlessHeaderFailsSoon)
{
    std::string head = "GET /ping HTTP/1.1\r\n";
    while (head.size() < 100 * 1000)
        head += "X-More: " + std::string(50, 'm') + "\r\n";
    for (size_t piece : {size_t{1}, size_t{7}, size_t{100}, size_t{65536}}) {
        RequestReader reader(Limits(4096, 1000));
        FeedResult res = FeedInPieces(reader, head, piece);
        ASSERT_EQ(reader.state(), ReadState::Failed) << "piece " << piece;
        EXPECT_EQ(reader.error_status(), 431);
        EXPECT_LE(res.consumed, 4096 + piece + 64) << "piece " << piece;
    }
    /* a large first read of complete fields, then small ones: the whole head counts */
    std::vector<std::string_view> reads = {std::string_view(head).substr(0, 4000)};
    for (size_t pos = 4000; pos < head.size(); pos += 10)
        reads.push_back(std::string_view(head).substr(pos, 10));
    RequestReader reader(Limits(4096, 1000));
    FeedResult res = FeedReads(reader, reads);
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(reader.error_status(), 431);
    EXPECT_LE(res.consumed, 4096u + 64);
}

TEST(RequestReader, BodyTooLargeByContentLengthFailsAtTheHead)
{
    std::string head =
        "POST /write HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n";
    std::string input = head + std::string(1001, 'x');
    RequestReader reader(Limits(4096, 1000));
    size_t n = reader.Feed(input.data(), input.size());
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(n, head.size()) << "no byte of the body is read";
    EXPECT_EQ(reader.error_status(), 413);
    EXPECT_EQ(reader.error_message(), "request body too large: 1001 bytes, limit 1000");
    EXPECT_EQ(reader.body_capacity(), 0u);

    RequestReader exact(Limits(4096, 1000));
    FeedAll(exact, Post("/write", std::string(1000, 'x')));
    EXPECT_EQ(exact.state(), ReadState::Complete) << exact.error_message();
}

TEST(RequestReader, ChunkedBodyTooLarge)
{
    RequestReader reader(Limits(4096, 1000));
    FeedInPieces(reader, PostChunked("/write", Chunked(std::string(1500, 'x'), 300)), 64);
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(reader.error_status(), 413);
    EXPECT_EQ(reader.error_message(), "request body too large: more than 1000 bytes, limit 1000");
    EXPECT_LT(reader.wire_body_bytes(), 1000u) << "refused at the chunk header";

    RequestReader exact(Limits(4096, 1000));
    FeedInPieces(exact, PostChunked("/write", Chunked(std::string(1000, 'x'), 300)), 64);
    EXPECT_EQ(exact.state(), ReadState::Complete) << exact.error_message();
    EXPECT_EQ(exact.body().size(), 1000u);
}

TEST(RequestReader, OverlongChunkHeaderFails)
{
    std::string req =
        PostChunked("/write", "5;" + std::string(10000, 'e') + "\r\nhello\r\n0\r\n\r\n");
    RequestReader reader(Limits(4096, 100000));
    FeedInPieces(reader, req, 512);
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(reader.error_status(), 400);
}

TEST(RequestReader, MalformedRequestsFailWith400)
{
    for (const char *bad :
         {"GET\r\n\r\n", "GET /ping HTTP/9.9\r\n\r\n", "GET /ping FOO/1.1\r\n\r\n",
          "POST /w HTTP/1.1\r\nContent-Length: x\r\n\r\n",
          "POST /w HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
          "POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n",
          "POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXYZ\r\n0\r\n\r\n",
          "GET /ping HTTP/1.1\r\nBad Header: x\r\n\r\n"}) {
        RequestReader reader;
        FeedAll(reader, bad);
        ASSERT_EQ(reader.state(), ReadState::Failed) << bad;
        EXPECT_EQ(reader.error_status(), 400) << bad;
        EXPECT_EQ(reader.error_message().rfind("malformed HTTP request: ", 0), 0u)
            << reader.error_message();
    }
}

TEST(RequestReader, OnlyChunkedTransferEncoding)
{
    RequestReader reader;
    FeedAll(reader, "POST /w HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(reader.error_status(), 501);
}

TEST(RequestReader, FailedConsumesNothingMoreUntilReset)
{
    RequestReader reader;
    FeedAll(reader, "BAD\r\n\r\n");
    ASSERT_EQ(reader.state(), ReadState::Failed);
    EXPECT_EQ(reader.Feed("GET / HTTP/1.1\r\n\r\n", 18), 0u);
    reader.Reset();
    EXPECT_EQ(reader.state(), ReadState::NeedMore);
    EXPECT_EQ(reader.error_status(), 0);
    EXPECT_EQ(reader.Feed("GET / HTTP/1.1\r\n\r\n", 18), 18u);
    EXPECT_EQ(reader.state(), ReadState::Complete);
}

/* ---- parameters and precision ---- */

TEST(Params, ParseFormDecodes)
{
    Params p = ParseForm("q=CREATE+DATABASE+%22telegraf%22&db=a%2Bb&&empty=&novalue&q=second&"
                         "pct=100%&x=%4a%4B");
    EXPECT_EQ(p.Get("q"), "CREATE DATABASE \"telegraf\"");
    EXPECT_EQ(p.Get("db"), "a+b");
    EXPECT_TRUE(p.Has("empty"));
    EXPECT_EQ(p.Get("empty"), "");
    EXPECT_TRUE(p.Has("novalue"));
    EXPECT_EQ(p.Get("pct"), "100%");
    EXPECT_EQ(p.Get("x"), "JK");
    EXPECT_EQ(p.size(), 7u);
    EXPECT_TRUE(ParseForm("").empty());
    EXPECT_EQ(PercentDecode("a+b%20c", false), "a+b c");
}

TEST(Precision, EverySpelling)
{
    struct Case {
        const char *text;
        int64_t ns;
    } cases[] = {{"", 1},
                 {"n", 1},
                 {"ns", 1},
                 {"u", 1000},
                 {"us", 1000},
                 {"\xc2\xb5", 1000},
                 {"\xc2\xb5s", 1000},
                 {"\xce\xbc", 1000},
                 {"\xce\xbcs", 1000},
                 {"ms", 1000000},
                 {"s", 1000000000},
                 {"m", 60000000000},
                 {"h", 3600000000000}};
    for (const Case &c : cases) {
        std::optional<int64_t> v = ParsePrecision(c.text);
        ASSERT_TRUE(v.has_value()) << c.text;
        EXPECT_EQ(*v, c.ns) << c.text;
    }
    for (const char *bad : {"x", "nanoseconds", "U", "NS", "Ms", "S", " s", "s ", "mss", "us\n",
                            "\xc2", "\xb5s", "d"})
        EXPECT_FALSE(ParsePrecision(bad).has_value()) << bad;
    EXPECT_EQ(InvalidPrecisionMessage("x"),
              "invalid precision \"x\" (use n, ns, u, us, ms, s, m or h)");
}

/* ---- credentials ---- */

TEST(Credentials, QueryParametersComeFirst)
{
    Credentials c = ParseCredentials(ParseForm("u=alice&p=secret"), "Token tok");
    EXPECT_EQ(c.kind, Credentials::Kind::UserPassword);
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.password, "secret");

    /* u without p (or p empty) does not count: the header is used */
    c = ParseCredentials(ParseForm("u=alice&p="), "Token tok");
    EXPECT_EQ(c.kind, Credentials::Kind::Token);
    EXPECT_EQ(c.token, "tok");
    c = ParseCredentials(ParseForm("u=alice"), "");
    EXPECT_EQ(c.kind, Credentials::Kind::None);
}

TEST(Credentials, AuthorizationHeaderForms)
{
    Params none;
    /* "alice:pa:ss" in base64 */
    Credentials c = ParseCredentials(none, "Basic YWxpY2U6cGE6c3M=");
    EXPECT_EQ(c.kind, Credentials::Kind::UserPassword);
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.password, "pa:ss") << "split at the first ':'";

    c = ParseCredentials(none, "basic cm9vdDpyb290"); /* root:root, what influxdb-python sends */
    EXPECT_EQ(c.kind, Credentials::Kind::UserPassword);
    EXPECT_EQ(c.user, "root");
    EXPECT_EQ(c.password, "root");

    c = ParseCredentials(none, "Token bob:hunter2");
    EXPECT_EQ(c.kind, Credentials::Kind::UserPassword);
    EXPECT_EQ(c.user, "bob");
    EXPECT_EQ(c.password, "hunter2");

    c = ParseCredentials(none, "Token abc==");
    EXPECT_EQ(c.kind, Credentials::Kind::Token);
    EXPECT_EQ(c.token, "abc==");

    c = ParseCredentials(none, "Bearer eyJ.x:y.z");
    EXPECT_EQ(c.kind, Credentials::Kind::Token) << "Bearer tokens are never user:password";
    EXPECT_EQ(c.token, "eyJ.x:y.z");

    EXPECT_EQ(ParseCredentials(none, "").kind, Credentials::Kind::None);
    EXPECT_EQ(ParseCredentials(none, "Token ").kind, Credentials::Kind::None); /* Vector */
    EXPECT_EQ(ParseCredentials(none, "Bearer").kind, Credentials::Kind::None);
}

TEST(Credentials, Malformed)
{
    Params none;
    Credentials c = ParseCredentials(none, "Basic !!!notbase64");
    EXPECT_EQ(c.kind, Credentials::Kind::Malformed);
    EXPECT_FALSE(c.error.empty());
    c = ParseCredentials(none, "Basic YWxpY2U="); /* "alice": no ':' */
    EXPECT_EQ(c.kind, Credentials::Kind::Malformed);
    c = ParseCredentials(none, "Basic");
    EXPECT_EQ(c.kind, Credentials::Kind::Malformed);
    c = ParseCredentials(none, "Digest username=x");
    EXPECT_EQ(c.kind, Credentials::Kind::Malformed);
}

TEST(Base64, DecodesRfc4648Vectors)
{
    struct Case {
        const char *in;
        const char *out;
    } cases[] = {{"", ""},
                 {"Zg==", "f"},
                 {"Zm8=", "fo"},
                 {"Zm9v", "foo"},
                 {"Zm9vYg==", "foob"},
                 {"Zm9vYmE=", "fooba"},
                 {"Zm9vYmFy", "foobar"},
                 {"Zg", "f"},
                 {"Zm8", "fo"}};
    for (const Case &c : cases) {
        std::optional<std::string> v = Base64Decode(c.in);
        ASSERT_TRUE(v.has_value()) << c.in;
        EXPECT_EQ(*v, c.out) << c.in;
    }
    std::optional<std::string> bin = Base64Decode("+/8=");
    ASSERT_TRUE(bin.has_value());
    EXPECT_EQ(*bin, "\xfb\xff");
    for (const char *bad :
         {"Z", "Zg=", "Zg===", "Z===", "Zm9v YmFy", "Zm9v\n", "Zm-_", "=Zm9", "Zg==Zg=="})
        EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
}

TEST(ConstantTimeEqual, ComparesBytes)
{
    EXPECT_TRUE(ConstantTimeEqual("", ""));
    EXPECT_TRUE(ConstantTimeEqual("secret", "secret"));
    EXPECT_FALSE(ConstantTimeEqual("secret", "secreT"));
    EXPECT_FALSE(ConstantTimeEqual("secret", "Secret"));
    EXPECT_FALSE(ConstantTimeEqual("secret", "secret "));
    EXPECT_FALSE(ConstantTimeEqual("", "x"));
    EXPECT_FALSE(ConstantTimeEqual(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

/* ---- InfluxQL ---- */

TEST(ClassifyQuery, CreateDatabase)
{
    struct Case {
        const char *q;
        const char *db;
    } cases[] = {
        {"CREATE DATABASE \"telegraf\"", "telegraf"},
        {"create database telegraf", "telegraf"},
        {"  Create\tDatabase\n  _my_db2  ", "_my_db2"},
        {"CREATE DATABASE IF NOT EXISTS \"telegraf\"", "telegraf"},
        {"CREATE DATABASE \"a\\\"b\\\\c;d\"", "a\"b\\c;d"},
        {"CREATE DATABASE \"my db\" WITH DURATION 1d REPLICATION 1 NAME \"rp\"", "my db"},
        {"CREATE DATABASE x with duration 1d", "x"},
        {"CREATE DATABASE \"d\xc3\xa9j\xc3\xa0\"", "d\xc3\xa9j\xc3\xa0"},
        {"CREATE DATABASE ifx", "ifx"},
    };
    for (const Case &c : cases) {
        std::vector<Statement> st = ClassifyQuery(c.q);
        ASSERT_EQ(st.size(), 1u) << c.q;
        EXPECT_EQ(st[0].kind, StatementKind::CreateDatabase) << c.q;
        EXPECT_EQ(st[0].database, c.db) << c.q;
    }
}

TEST(ClassifyQuery, ShowDatabasesAndUnsupported)
{
    std::vector<Statement> st = ClassifyQuery("show databases");
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].kind, StatementKind::ShowDatabases);

    for (const char *q : {"SELECT * FROM cpu", "CREATE DATABASE", "CREATE DATABASE \"\"",
                          "CREATE DATABASE \"x\" garbage", "CREATE DATABASE \"unterminated",
                          "CREATE DATABASE \"bad\\escape\"", "CREATE DATABASE IF EXISTS x",
                          "CREATE DATABASE 1abc", "CREATE DATABASES x", "SHOW DATABASESX",
                          "SHOW DATABASES ON x", "DROP DATABASE x", "CREATEDATABASE x"}) {
        st = ClassifyQuery(q);
        ASSERT_EQ(st.size(), 1u) << q;
        EXPECT_EQ(st[0].kind, StatementKind::Unsupported) << q;
        EXPECT_EQ(st[0].text, q);
        EXPECT_TRUE(st[0].database.empty());
    }
}

TEST(ClassifyQuery, SeveralStatements)
{
    std::vector<Statement> st =
        ClassifyQuery(" CREATE DATABASE \"a;b\" ;; SHOW DATABASES;SELECT 'x;y' FROM \"m\";  ");
    ASSERT_EQ(st.size(), 3u);
    EXPECT_EQ(st[0].kind, StatementKind::CreateDatabase);
    EXPECT_EQ(st[0].database, "a;b");
    EXPECT_EQ(st[0].text, "CREATE DATABASE \"a;b\"");
    EXPECT_EQ(st[1].kind, StatementKind::ShowDatabases);
    EXPECT_EQ(st[1].text, "SHOW DATABASES");
    EXPECT_EQ(st[2].kind, StatementKind::Unsupported);
    EXPECT_EQ(st[2].text, "SELECT 'x;y' FROM \"m\"");

    EXPECT_TRUE(ClassifyQuery("").empty());
    EXPECT_TRUE(ClassifyQuery(" ; ;").empty());
    st = ClassifyQuery("SELECT '\\"); /* a backslash as the last byte */
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].text, "SELECT '\\");
}

/* ---- JSON ---- */

TEST(Json, EscapesQuotesBackslashesAndControls)
{
    EXPECT_EQ(JsonString(""), "\"\"");
    EXPECT_EQ(JsonString("plain"), "\"plain\"");
    EXPECT_EQ(JsonString("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\"");
    EXPECT_EQ(JsonString("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
    EXPECT_EQ(JsonString(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\x7f\"");
    EXPECT_EQ(JsonString("\x08\x0c"), "\"\\u0008\\u000c\"");
}

TEST(Json, KeepsValidUtf8AndReplacesInvalidBytes)
{
    /* é (2 bytes), € (3), U+10FFFF (4), 😀 (4) */
    const char *valid = "\xc3\xa9 \xe2\x82\xac \xf4\x8f\xbf\xbf \xf0\x9f\x98\x80";
    EXPECT_EQ(JsonString(valid), std::string("\"") + valid + "\"");
    const std::string fffd = "\xef\xbf\xbd";
    struct Case {
        const char *in;
        std::string out;
    } cases[] = {
        {"\xff", fffd},                                  /* never valid */
        {"a\xc3", "a" + fffd},                           /* cut short at the end */
        {"\xc3(", fffd + "("},                           /* missing continuation */
        {"\x80", fffd},                                  /* stray continuation */
        {"\xc0\xaf", fffd + fffd},                       /* overlong '/' */
        {"\xe0\x80\xaf", fffd + fffd + fffd},            /* overlong, 3 bytes */
        {"\xed\xa0\x80", fffd + fffd + fffd},            /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", fffd + fffd + fffd + fffd},
    };
    for (const Case &c : cases)
        EXPECT_EQ(JsonString(c.in), "\"" + c.out + "\"") << c.in;
}

TEST(Json, ErrorBody)
{
    EXPECT_EQ(ErrorBody("unable to parse 'x\"': bad\n", "invalid"),
              "{\"error\":\"unable to parse 'x\\\"': bad\\n\",\"code\":\"invalid\","
              "\"message\":\"unable to parse 'x\\\"': bad\\n\"}");
    std::string out = "[";
    AppendJsonString(&out, "a");
    EXPECT_EQ(out, "[\"a\"");
}

TEST(Json, ErrorCodes)
{
    EXPECT_EQ(ErrorCode(400), "invalid");
    EXPECT_EQ(ErrorCode(401), "unauthorized");
    EXPECT_EQ(ErrorCode(403), "forbidden");
    EXPECT_EQ(ErrorCode(404), "not found");
    EXPECT_EQ(ErrorCode(413), "request too large");
    EXPECT_EQ(ErrorCode(415), "unsupported media type");
    EXPECT_EQ(ErrorCode(500), "internal error");
    EXPECT_EQ(ErrorCode(503), "unavailable");
    EXPECT_EQ(ErrorCode(504), "internal error");
    EXPECT_EQ(ErrorCode(431), "invalid");
}

/* ---- responses ---- */

namespace
{

/* Parses a formatted response with Beast's response parser: proves it is valid HTTP. */
boost::beast::http::response<boost::beast::http::string_body> ParseResponse(const std::string &raw,
                                                                            bool head = false)
{
    boost::beast::http::response_parser<boost::beast::http::string_body> parser;
    parser.skip(head);
    parser.eager(true);
    boost::beast::error_code ec;
    size_t n = parser.put(boost::asio::buffer(raw), ec);
    EXPECT_FALSE(ec) << ec.message() << "\n" << raw;
    EXPECT_TRUE(parser.is_done()) << raw;
    EXPECT_EQ(n, raw.size()) << "nothing after the response: " << raw;
    return parser.release();
}

} // namespace

TEST(Response, NoContent)
{
    Response r;
    r.status = 204;
    r.request_id = "req-1";
    std::string raw = FormatResponse(r);
    EXPECT_EQ(raw, "HTTP/1.1 204 No Content\r\n"
                   "Request-Id: req-1\r\n"
                   "X-Request-Id: req-1\r\n"
                   "X-Influxdb-Build: pg_influx\r\n"
                   "X-Influxdb-Version: 1.8.10\r\n"
                   "\r\n");
    auto msg = ParseResponse(raw);
    EXPECT_EQ(msg.result_int(), 204);
    EXPECT_TRUE(msg.body().empty());
}

TEST(Response, JsonBodyWithContentLength)
{
    Response r;
    r.status = 200;
    r.body = "{\"results\":[{\"statement_id\":0}]}";
    std::string raw = FormatResponse(r);
    EXPECT_NE(raw.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
    EXPECT_NE(raw.find("\r\nContent-Length: 32\r\n"), std::string::npos);
    EXPECT_EQ(raw.find("Connection:"), std::string::npos);
    EXPECT_EQ(raw.find("Request-Id"), std::string::npos);
    EXPECT_EQ(raw.compare(raw.size() - r.body.size(), r.body.size(), r.body), 0);
    auto msg = ParseResponse(raw);
    EXPECT_EQ(msg.body(), r.body);
    EXPECT_EQ(msg["X-Influxdb-Version"], std::string(kInfluxdbVersion));
    EXPECT_TRUE(msg.keep_alive());

    r.content_type = "text/plain; charset=utf-8";
    EXPECT_EQ(ParseResponse(FormatResponse(r))["Content-Type"], "text/plain; charset=utf-8");
}

TEST(Response, HeadHasContentLengthButNoBody)
{
    Response r;
    r.body = "{\"version\":\"1.8.10\"}";
    r.head = true;
    std::string raw = FormatResponse(r);
    EXPECT_NE(raw.find("\r\nContent-Length: 20\r\n"), std::string::npos);
    EXPECT_EQ(raw.substr(raw.size() - 4), "\r\n\r\n") << "ends with the head";
    EXPECT_EQ(raw.find("version\":"), std::string::npos);
    auto msg = ParseResponse(raw, true);
    EXPECT_EQ(msg.result_int(), 200);
}

TEST(Response, ConnectionHeader)
{
    Response r;
    r.status = 204;
    r.close = true;
    std::string raw = FormatResponse(r);
    EXPECT_NE(raw.find("\r\nConnection: close\r\n"), std::string::npos);
    EXPECT_FALSE(ParseResponse(raw).keep_alive());

    r.close = false;
    r.request_version = 10;
    EXPECT_NE(FormatResponse(r).find("\r\nConnection: keep-alive\r\n"), std::string::npos);
    r.request_version = 11;
    EXPECT_EQ(FormatResponse(r).find("Connection"), std::string::npos);
}

TEST(Response, ErrorResponse)
{
    Response r = MakeErrorResponse(503, "queue full, retry");
    r.retry_after = 5;
    r.close = true;
    std::string raw = FormatResponse(r);
    auto msg = ParseResponse(raw);
    EXPECT_EQ(msg.result_int(), 503);
    EXPECT_EQ(msg.reason(), "Service Unavailable");
    EXPECT_EQ(msg["Retry-After"], "5");
    EXPECT_EQ(msg["X-Influxdb-Error"], "queue full, retry");
    EXPECT_EQ(msg["X-Platform-Error-Code"], "unavailable");
    EXPECT_EQ(msg["Content-Type"], "application/json");
    EXPECT_EQ(msg.body(), "{\"error\":\"queue full, retry\",\"code\":\"unavailable\","
                          "\"message\":\"queue full, retry\"}");
    EXPECT_EQ(raw.find("WWW-Authenticate"), std::string::npos);

    Response unauthorized = MakeErrorResponse(401, "authorization failed");
    auto msg401 = ParseResponse(FormatResponse(unauthorized));
    EXPECT_EQ(msg401["WWW-Authenticate"], "Basic realm=\"pg_influx\"");
    EXPECT_EQ(msg401.count("X-Influxdb-Error"), 0u);
    EXPECT_EQ(msg401["X-Platform-Error-Code"], "unauthorized");

    EXPECT_EQ(ParseResponse(FormatResponse(MakeErrorResponse(413, "too big"))).reason(),
              "Request Entity Too Large");
}

TEST(Response, ErrorHeaderIsSanitisedAndCut)
{
    Response r = MakeErrorResponse(400, "");
    r.influxdb_error = "unable to parse 'a b':\r\nInjected: yes\x01\x7f";
    r.request_id = "id\r\nX-Evil: 1";
    r.extra_headers.emplace_back("Access-Control-Allow-Origin", "http://ui\n");
    std::string raw = FormatResponse(r);
    EXPECT_NE(raw.find("\r\nX-Influxdb-Error: unable to parse 'a b':  Injected: yes  \r\n"),
              std::string::npos)
        << raw;
    EXPECT_EQ(raw.find("\r\nInjected"), std::string::npos);
    EXPECT_EQ(raw.find("\r\nX-Evil"), std::string::npos);
    EXPECT_NE(raw.find("\r\nAccess-Control-Allow-Origin: http://ui \r\n"), std::string::npos);
    ParseResponse(raw);

    /* 1023 ASCII bytes and a 2-byte character: cut before the character, not inside it */
    r.influxdb_error = std::string(1023, 'e') + "\xc3\xa9" + std::string(100, 'f');
    auto msg = ParseResponse(FormatResponse(r));
    EXPECT_EQ(std::string(msg["X-Influxdb-Error"]), std::string(1023, 'e'));
    r.influxdb_error = std::string(2000, 'e');
    msg = ParseResponse(FormatResponse(r));
    EXPECT_EQ(msg["X-Influxdb-Error"].size(), kMaxErrorHeaderBytes);
}

TEST(Response, ReasonPhrases)
{
    EXPECT_EQ(ReasonPhrase(100), "Continue");
    EXPECT_EQ(ReasonPhrase(204), "No Content");
    EXPECT_EQ(ReasonPhrase(415), "Unsupported Media Type");
    EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(ReasonPhrase(299), "Unknown");
    Response r;
    r.status = 100;
    r.body = "ignored";
    EXPECT_EQ(FormatResponse(r).substr(0, 25), "HTTP/1.1 100 Continue\r\nX-")
        << "1xx: no Content-Type, no Content-Length, no body";
    EXPECT_EQ(FormatResponse(r).find("ignored"), std::string::npos);
}
