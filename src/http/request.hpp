/*
 * request.hpp — reads HTTP/1.x requests from a non-blocking socket's bytes (pure C++).
 *
 * Vocabulary:
 *   feed        the caller hands over the bytes it has read so far; the reader takes what
 *               belongs to the current request and says how many bytes it took.
 *   head        request line and header fields.  The head is complete before the body is
 *               read, so that the caller can answer "Expect: 100-continue" or refuse the
 *               request (unknown path, no credentials, too large) before the body is sent.
 *   body        the request's content, decoded: de-chunked (Transfer-Encoding: chunked, what
 *               Telegraf sends) and inflated (Content-Encoding: gzip).  One contiguous buffer
 *               owned by the reader.
 *   wire body   the body as it came over the connection (after de-chunking, before
 *               inflating).  A gzip wire body is kept until it is complete, then
 *               decompressed in one go (libdeflate) and freed: by Feed(), or, for
 *               bodies of inflate_later_bytes or more, by Inflate() when the caller
 *               wants (the listener runs it on a thread of its own).
 *   limits      max_header_bytes bounds the head; max_body_bytes bounds both the wire body
 *               and the decoded body.  A body that exceeds either fails the request with
 *               413 as soon as that is known (at the head when Content-Length says so, at
 *               the end of a gzip body when it decompresses past the limit); it is never
 *               truncated.  Between two Feed() calls the reader holds at most one of the two
 *               (the gzip wire body, or the decoded body).
 *
 * The HTTP syntax is Boost.Beast's parser (boost::beast::http::basic_parser), driven here
 * buffer by buffer; no Beast, libdeflate or zlib type appears in this header, so that it
 * can be included next to PostgreSQL's headers.
 *
 * Connection rules the caller follows:
 *   - Feed() never takes bytes past the end of the request: what it did not consume is the
 *     start of the next (pipelined) request, to be fed again after Reset().
 *   - A request without Content-Length and without chunked encoding has an empty body
 *     (requests are never read to end of stream), so 411 is never needed.
 *   - keep_alive is Beast's rule: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
 *     "Connection: keep-alive".
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/params.hpp"

namespace influx::http
{

enum class Method { Get, Head, Post, Options, Other };

enum class ContentEncoding { Identity, Gzip };

/* Where the reader is in the current request. */
enum class ReadState {
    NeedMore,     /* feed more bytes */
    HeadComplete, /* the head is parsed and a body follows; feed to read the body */
    Complete,     /* the whole request is read; Reset() before the next one */
    Inflate,      /* the whole request is read, its gzip body not yet inflated: Inflate() */
    Failed,       /* answer error_status()/error_message() and close the connection */
};

struct RequestLimits {
    size_t max_header_bytes = 16 * 1024;
    size_t max_body_bytes = 25 * 1000 * 1000;
    /* A gzip wire body of at least this many bytes is not inflated by Feed(): the state
     * is Inflate, and the caller calls Inflate() -- from another thread if it likes. */
    size_t inflate_later_bytes = SIZE_MAX;
};

/* What the head of a request says.  Valid from HeadComplete (or Complete) on. */
struct RequestHead {
    Method method = Method::Other;
    std::string method_name; /* as sent, e.g. "PUT" */
    std::string target;      /* the request-target as sent, e.g. "/write?db=x" */
    std::string path;        /* percent-decoded, without the query ("/write") */
    Params query;            /* decoded query parameters */
    int version = 11;        /* 10 (HTTP/1.0) or 11 (HTTP/1.1) */
    bool keep_alive = false; /* the connection may carry another request after this one */
    std::optional<uint64_t> content_length; /* of the wire body, when the client sent one */
    bool chunked = false;
    ContentEncoding encoding = ContentEncoding::Identity;
    bool expect_continue = false; /* "Expect: 100-continue" */

    /* Header fields the endpoint needs ("" when absent; the first one when repeated, except
     * Content-Encoding and Expect, whose repeated values are joined with ", "). */
    std::string authorization;
    std::string content_type;
    std::string content_encoding;
    std::string expect;
    std::string x_request_id;
    std::string request_id;
    std::string origin;
    std::string accept_encoding;
};

class RequestReader
{
  public:
    explicit RequestReader(const RequestLimits &limits = RequestLimits{});
    ~RequestReader();
    RequestReader(RequestReader &&) noexcept;
    RequestReader &operator=(RequestReader &&) noexcept;
    RequestReader(const RequestReader &) = delete;
    RequestReader &operator=(const RequestReader &) = delete;

    /*
     * Reads data[0..len) and returns how many bytes belong to the current request (the
     * caller drops them and keeps the rest).  Returns on a change of state: at
     * HeadComplete (call again with the bytes not consumed to read the body), Complete
     * (the rest is the next request) or Failed; with NeedMore every byte was consumed.
     * In Complete or Failed it consumes nothing.  Never throws: running out of memory
     * fails the request with 503.
     */
    size_t Feed(const char *data, size_t len) noexcept;

    /*
     * In Inflate: decompresses the gzip body; the state is then Complete or Failed,
     * exactly as Feed() would have left it with inflate_later_bytes unset.  Touches
     * nothing but this reader, so it may run on another thread, as long as no other
     * member is called meanwhile.  Does nothing in other states.  Never throws.
     */
    void Inflate() noexcept;

    /* In Inflate: the size the gzip trailer announces, at most max_body_bytes + 1 -- a
     * hint only (a sender may lie, and a body of several members announces its last). */
    size_t inflated_size_hint() const noexcept;

    ReadState state() const noexcept;
    /* Some byte of a request has been consumed (or the request is complete): closing the
     * connection now would cut a request. */
    bool started() const noexcept;

    const RequestHead &head() const noexcept;
    /* The decoded body; valid in Complete, until Reset() or destruction. */
    std::string_view body() const noexcept;
    /* Bytes of the wire body read so far (compressed size for gzip). */
    uint64_t wire_body_bytes() const noexcept;
    /* Bytes allocated for the body and a gzip wire body (what this connection holds in
     * memory for them). */
    size_t body_capacity() const noexcept;

    /* In Failed: the status to answer (400, 413, 415, 431, 501, 503) and why. */
    int error_status() const noexcept;
    const std::string &error_message() const noexcept;

    /*
     * Forgets the request and starts a new one on the same connection.  A body buffer
     * larger than kRetainedBodyBytes is freed, so idle keep-alive connections stay small.
     */
    void Reset() noexcept;

    static constexpr size_t kRetainedBodyBytes = 64 * 1024;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace influx::http
