/*
 * request.cpp — the incremental request reader (see request.hpp).
 *
 * Beast's basic_parser does the HTTP syntax and calls back for each element: request line,
 * header field, end of head, body pieces, chunk headers, end of message.  Two things about
 * it shape the code below:
 *
 *   - It only parses a head element (request line, header field, chunk header, trailer
 *     section) when the whole element is in the buffer it is given; otherwise it consumes
 *     nothing of that element and returns need_more.  The caller's bytes cannot be kept
 *     until the rest arrives (Feed() reports them consumed), so the reader keeps the
 *     incomplete element in `pending_` and parses from there when more bytes arrive.  It
 *     appends at most kPendingStep bytes at a time and, once the parser has moved past the
 *     kept bytes, gives the unparsed rest back to the caller's buffer.  The parser never
 *     stops inside the kept bytes (it needed more than them), so bytes given back are
 *     always the caller's latest, and a request never ends inside `pending_`: what follows
 *     it is still in the caller's buffer, as Feed() promises.
 *   - Its header limit counts from the start of each buffer, not from the start of the
 *     head, so the head's total size is counted here (header_bytes_).
 *   - At a chunk header it must never be given fewer than 5 bytes (the shortest last
 *     chunk, "0\r\n\r\n"): once it has seen "0\r\n" and waits for the trailer section,
 *     Beast 1.74 asserts that its buffer holds at least 5 bytes, which is false when the
 *     body has no data chunk and the rest arrives a byte at a time.  Fewer bytes there
 *     can never complete anything, so they wait in `pending_` (at_chunk_header_).
 *
 * Body bytes are never kept in `pending_` longer than one call: with a Content-Length the
 * parser takes them all; with chunks it takes everything up to an incomplete chunk header.
 * Each piece is copied once, into the body buffer (identity) or the wire buffer (gzip).
 *
 * A gzip body is decompressed once it has all arrived, in one call of libdeflate per member
 * (Decompress): libdeflate inflates two to three times faster than zlib's streaming
 * inflate(), and the listener inflates every body of every connection in one process.  The
 * last member's ISIZE trailer (the uncompressed size mod 2^32) sizes the output buffer; it
 * is a hint only: the output is bounded by the limit whatever it says, and libdeflate
 * checks it (with the CRC-32) against what it inflated.  libdeflate only says *that* a
 * stream is bad or too large, so any stream it does not inflate whole within the limit is
 * inflated again with zlib (InflateWithZlib), which says why, and which decides between
 * 400 and 413 exactly as streaming inflate did: the fast path changes a request's cost, and
 * its outcome in one way only -- libdeflate reads a few codes DEFLATE reserves (a fixed
 * Huffman block's length symbols 286 and 287, as 285) that zlib calls invalid; a member
 * read that way still passed its CRC-32 and ISIZE, so its body is the data that was sent.
 * A failing body costs a second inflate, bounded by the limit; a trailer that claims more
 * than the limit goes to zlib at once.
 */
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <libdeflate.h>
#include <zlib.h>

#include "http/request.hpp"
#include "http/text.hpp"
#include "core/cpp_only.hpp"

namespace influx::http
{

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace
{

/* First size of a body buffer when the final size is unknown. */
constexpr size_t kInitialBodyBytes = 64 * 1024;
/* Beast needs this many bytes at a chunk header (see the file comment). */
constexpr size_t kMinChunkHeaderBytes = 5;
/* Bytes of the caller's buffer appended to an incomplete head element at a time. */
constexpr size_t kPendingStep = 4096;
/* The largest piece handed to inflate() at once (its counters are 32-bit). */
constexpr size_t kMaxInflateInput = size_t{1} << 30;
/* gzip member: ID1 ID2 CM FLG ... (RFC 1952); FHCRC is a CRC-16 of the member header. */
constexpr unsigned char kGzipId1 = 0x1f, kGzipId2 = 0x8b, kGzipFhcrc = 0x02;
/* ISIZE, the trailer's last field, is this many bytes. */
constexpr size_t kGzipIsizeBytes = 4;

std::string_view ToStd(beast::string_view s) noexcept
{
    return {s.data(), s.size()};
}

/* Calls fn(token) for each non-empty, trimmed element of a comma-separated list. */
template <typename Fn> void ForEachToken(std::string_view list, Fn fn)
{
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view token = TrimSpaces(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (!token.empty())
            fn(token);
    }
}

/* Appends a repeated header's value the way HTTP combines them: "a, b". */
void JoinValue(std::string *to, std::string_view value)
{
    if (!to->empty())
        to->append(", ");
    to->append(value);
}

/* A growable byte buffer that neither zero-fills (inflate writes straight into it) nor
 * copies when realloc can grow it in place (large blocks are remapped). */
class BodyBuffer
{
  public:
    BodyBuffer() = default;
    BodyBuffer(const BodyBuffer &) = delete;
    BodyBuffer &operator=(const BodyBuffer &) = delete;
    ~BodyBuffer() { std::free(data_); }

    char *data() const noexcept { return data_; }
    size_t size() const noexcept { return size_; }
    size_t capacity() const noexcept { return capacity_; }
    size_t room() const noexcept { return capacity_ - size_; }
    char *end() const noexcept { return data_ + size_; }

    /* Capacity of at least n bytes; false when out of memory (the buffer is unchanged). */
    bool Reserve(size_t n) noexcept
    {
        if (n <= capacity_)
            return true;
        void *p = std::realloc(data_, n);
        if (p == nullptr)
            return false;
        data_ = static_cast<char *>(p);
        capacity_ = n;
        return true;
    }
    void Append(const char *p, size_t n) noexcept
    {
        std::memcpy(data_ + size_, p, n);
        size_ += n;
    }
    void Grew(size_t n) noexcept { size_ += n; }
    /* Empty; the memory is kept when it is at most `keep` bytes. */
    void Clear(size_t keep) noexcept
    {
        size_ = 0;
        if (capacity_ > keep) {
            std::free(data_);
            data_ = nullptr;
            capacity_ = 0;
        }
    }

  private:
    char *data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
};

} // namespace

class RequestReader::Impl
{
  public:
    /* Beast's parser, forwarding every element to the reader. */
    class Parser final : public bhttp::basic_parser<true>
    {
      public:
        explicit Parser(Impl *owner) : owner_(owner) {}

      private:
        void on_request_impl(bhttp::verb method, beast::string_view method_str,
                             beast::string_view target, int version,
                             beast::error_code &ec) override;
        void on_response_impl(int, beast::string_view, int, beast::error_code &ec) override;
        void on_field_impl(bhttp::field name, beast::string_view name_string,
                           beast::string_view value, beast::error_code &ec) override;
        void on_header_impl(beast::error_code &ec) override;
        void on_body_init_impl(const boost::optional<std::uint64_t> &content_length,
                               beast::error_code &ec) override;
        size_t on_body_impl(beast::string_view body, beast::error_code &ec) override;
        void on_chunk_header_impl(std::uint64_t size, beast::string_view extensions,
                                  beast::error_code &ec) override;
        size_t on_chunk_body_impl(std::uint64_t remain, beast::string_view body,
                                  beast::error_code &ec) override;
        void on_finish_impl(beast::error_code &ec) override;

        /* A callback that returned false has failed the request: stop the parser. */
        static void Check(bool ok, beast::error_code &ec)
        {
            if (!ok)
                ec = bhttp::error::bad_value;
        }

        Impl *owner_;
    };

    explicit Impl(const RequestLimits &limits) : limits_(limits) { Reset(); }
    ~Impl()
    {
        if (zlib_ready_)
            inflateEnd(&zs_);
        libdeflate_free_decompressor(deflate_);
    }

    size_t Feed(const char *data, size_t len) noexcept;
    void Reset() noexcept;

    /* Element callbacks (from Parser); false fails the request. */
    void OnRequest(bhttp::verb method, std::string_view method_name, std::string_view target,
                   int version);
    void OnField(bhttp::field name, std::string_view name_string, std::string_view value);
    bool OnHeader();
    bool OnBodyInit(const boost::optional<std::uint64_t> &content_length);
    bool OnChunkHeader(std::uint64_t size);
    bool OnBodyData(std::string_view piece);
    bool OnFinish();

    RequestLimits limits_;
    std::optional<Parser> parser_;
    ReadState state_ = ReadState::NeedMore;
    bool started_ = false;
    RequestHead head_;
    std::string transfer_encoding_;
    unsigned seen_ = 0;         /* header fields seen so far, one bit each (first wins) */
    std::string pending_;       /* an incomplete head element, see the file comment */
    uint64_t header_bytes_ = 0; /* bytes of the head consumed so far */

    BodyBuffer body_;
    size_t body_cap_ = 0;                        /* the body buffer never grows past this */
    BodyBuffer wire_;                            /* a gzip body as received, until Decompress */
    uint64_t wire_bytes_ = 0;                    /* wire body bytes received */
    uint64_t chunked_bytes_ = 0;                 /* wire body bytes announced by chunk headers */
    libdeflate_decompressor *deflate_ = nullptr; /* allocated at the first gzip body, kept */
    z_stream zs_{};
    bool zlib_ready_ = false;      /* zs_ is initialised (kept across requests) */
    bool member_done_ = false;     /* inflate reached the end of a gzip member */
    bool inflate_later_ = false;   /* the complete gzip body waits for Inflate() */
    bool at_chunk_header_ = false; /* the next bytes of a chunked body are a chunk header */

    int error_status_ = 0;
    std::string error_message_;

  private:
    size_t Step(const char *data, size_t len, size_t used);
    void AfterPut(const beast::error_code &ec, bool header_was_done);
    bool Fail(int status, std::string message);
    bool FailTooLarge(const std::string &size);
    bool FailHeadTooLarge(bool in_body);
    bool Append(BodyBuffer *to, size_t cap, std::string_view piece);
    bool Decompress();
    bool InflateWithZlib();

  public:
    void InflateNow() noexcept;
    uint32_t LastIsize() const noexcept;

  private:
    bool Inflate(std::string_view piece);
};

/* ---- Parser: Beast's callbacks, forwarded ---- */

void RequestReader::Impl::Parser::on_request_impl(bhttp::verb method, beast::string_view method_str,
                                                  beast::string_view target, int version,
                                                  beast::error_code &)
{
    owner_->OnRequest(method, ToStd(method_str), ToStd(target), version);
}

void RequestReader::Impl::Parser::on_response_impl(int, beast::string_view, int,
                                                   beast::error_code &ec)
{
    ec = bhttp::error::bad_version; /* a request parser never sees a status line */
}

void RequestReader::Impl::Parser::on_field_impl(bhttp::field name, beast::string_view name_string,
                                                beast::string_view value, beast::error_code &)
{
    /* After the head, fields are the trailer section of a chunked body: ignored. */
    if (!is_header_done())
        owner_->OnField(name, ToStd(name_string), ToStd(value));
}

void RequestReader::Impl::Parser::on_header_impl(beast::error_code &ec)
{
    Check(owner_->OnHeader(), ec);
}

void RequestReader::Impl::Parser::on_body_init_impl(
    const boost::optional<std::uint64_t> &content_length, beast::error_code &ec)
{
    Check(owner_->OnBodyInit(content_length), ec);
}

size_t RequestReader::Impl::Parser::on_body_impl(beast::string_view body, beast::error_code &ec)
{
    Check(owner_->OnBodyData(ToStd(body)), ec);
    return body.size();
}

void RequestReader::Impl::Parser::on_chunk_header_impl(std::uint64_t size, beast::string_view,
                                                       beast::error_code &ec)
{
    Check(owner_->OnChunkHeader(size), ec);
}

size_t RequestReader::Impl::Parser::on_chunk_body_impl(std::uint64_t remain,
                                                       beast::string_view body,
                                                       beast::error_code &ec)
{
    owner_->at_chunk_header_ = remain == body.size(); /* the chunk's last bytes */
    Check(owner_->OnBodyData(ToStd(body)), ec);
    return body.size();
}

void RequestReader::Impl::Parser::on_finish_impl(beast::error_code &ec)
{
    Check(owner_->OnFinish(), ec);
}

/* ---- the reader ---- */

void RequestReader::Impl::Reset() noexcept
{
    parser_.emplace(this);
    parser_->header_limit(
        static_cast<std::uint32_t>(std::min<size_t>(limits_.max_header_bytes, UINT32_MAX)));
    /* Checked here, with messages that give the sizes.  (Not boost::none: Beast 1.74
     * compares the Content-Length with the optional, and every number is > none.) */
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->eager(false); /* stop after the head: HeadComplete */
    state_ = ReadState::NeedMore;
    started_ = false;
    head_ = RequestHead();
    transfer_encoding_.clear();
    seen_ = 0;
    pending_.clear();
    header_bytes_ = 0;
    body_.Clear(kRetainedBodyBytes);
    body_cap_ = 0;
    wire_.Clear(0);
    wire_bytes_ = 0;
    chunked_bytes_ = 0;
    member_done_ = false;
    inflate_later_ = false;
    at_chunk_header_ = false;
    error_status_ = 0;
    error_message_.clear();
}

bool RequestReader::Impl::Fail(int status, std::string message)
{
    if (error_status_ == 0) {
        error_status_ = status;
        error_message_ = std::move(message);
    }
    state_ = ReadState::Failed;
    return false;
}

/* 413; `size` says how large the body is ("30000000 bytes", "more than ..."). */
bool RequestReader::Impl::FailTooLarge(const std::string &size)
{
    return Fail(413, "request body too large: " + size + ", limit " +
                         std::to_string(limits_.max_body_bytes));
}

/* 431, or 400 for what follows the head: a chunk header or the trailer section. */
bool RequestReader::Impl::FailHeadTooLarge(bool in_body)
{
    std::string limit = std::to_string(limits_.max_header_bytes);
    if (in_body)
        return Fail(400, "chunk header or trailer section too long (limit " + limit + " bytes)");
    return Fail(431, "request header too large (limit " + limit + " bytes)");
}

size_t RequestReader::Impl::Feed(const char *data, size_t len) noexcept
{
    if (state_ == ReadState::Complete || state_ == ReadState::Failed ||
        state_ == ReadState::Inflate)
        return 0;
    state_ = ReadState::NeedMore;
    size_t used = 0;
    try {
        /* RFC 9112 2.2: empty lines before a request line are ignored (some clients send
         * an extra CRLF after a body). */
        if (!started_)
            while (used < len && (data[used] == '\r' || data[used] == '\n'))
                ++used;
        while (used < len && state_ == ReadState::NeedMore)
            used = Step(data, len, used);
    } catch (const std::bad_alloc &) {
        Fail(503, "out of memory while reading the request");
    } catch (...) {
        Fail(500, "internal error while reading the request");
    }
    return used;
}

/* One call of the parser, on the caller's bytes or on pending_; returns the new `used`. */
size_t RequestReader::Impl::Step(const char *data, size_t len, size_t used)
{
    bool header_was_done = parser_->is_header_done();
    /* In the body, parse everything available; in the head, stop at its end. */
    parser_->eager(header_was_done);
    started_ = true;
    beast::error_code ec;
    size_t n;
    if (pending_.empty() && at_chunk_header_ && len - used < kMinChunkHeaderBytes) {
        pending_.assign(data + used, len - used);
        return len;
    }
    if (pending_.empty()) {
        n = parser_->put(boost::asio::const_buffer(data + used, len - used), ec);
        used += n;
        if (ec == bhttp::error::need_more) {
            ec = {};
            pending_.assign(data + used, len - used);
            used = len;
        }
    } else {
        size_t kept = pending_.size();
        size_t add = std::min(len - used, kPendingStep);
        pending_.append(data + used, add);
        used += add;
        if (at_chunk_header_ && pending_.size() < kMinChunkHeaderBytes)
            return used;
        n = parser_->put(boost::asio::const_buffer(pending_.data(), pending_.size()), ec);
        if (n >= kept) {
            used -= pending_.size() - n;
            pending_.clear();
        } else {
            pending_.erase(0, n);
        }
        if (ec == bhttp::error::need_more)
            ec = {};
    }
    if (!header_was_done)
        header_bytes_ += n;
    AfterPut(ec, header_was_done);
    return used;
}

/* The state after a call of the parser. */
void RequestReader::Impl::AfterPut(const beast::error_code &ec, bool header_was_done)
{
    /* A head over the limit is 431 however the reads cut it, even when Beast parsed it
     * (its limit counts from the end of the request line) and OnHeader refused it. */
    if (!header_was_done && header_bytes_ > limits_.max_header_bytes) {
        error_status_ = 0;
        FailHeadTooLarge(false);
        return;
    }
    if (error_status_ != 0) { /* a callback failed the request */
        state_ = ReadState::Failed;
        return;
    }
    if (ec == bhttp::error::header_limit) {
        FailHeadTooLarge(false);
        return;
    }
    if (ec) {
        Fail(400, "malformed HTTP request: " + ec.message());
        return;
    }
    if (!parser_->is_header_done()) {
        /* An unfinished head of max_header_bytes needs more: too large (as Beast says when
         * it sees the bytes in one buffer). */
        if (header_bytes_ + pending_.size() >= limits_.max_header_bytes)
            FailHeadTooLarge(false);
        return;
    }
    if (parser_->is_done()) {
        if (!pending_.empty()) /* cannot happen, see the file comment */
            Fail(500, "internal error: request ended inside buffered bytes");
        else
            state_ = inflate_later_ ? ReadState::Inflate : ReadState::Complete;
        return;
    }
    if (!header_was_done) {
        state_ = ReadState::HeadComplete;
        return;
    }
    if (pending_.size() > limits_.max_header_bytes)
        FailHeadTooLarge(true);
}

void RequestReader::Impl::OnRequest(bhttp::verb method, std::string_view method_name,
                                    std::string_view target, int version)
{
    switch (method) {
        case bhttp::verb::get:
            head_.method = Method::Get;
            break;
        case bhttp::verb::head:
            head_.method = Method::Head;
            break;
        case bhttp::verb::post:
            head_.method = Method::Post;
            break;
        case bhttp::verb::options:
            head_.method = Method::Options;
            break;
        default:
            head_.method = Method::Other;
            break;
    }
    head_.method_name = method_name;
    head_.target = target;
    head_.version = version;

    /* Absolute form ("http://host:8086/write?db=x", from proxies): keep path and query. */
    std::string_view t = target;
    size_t scheme = t.find("://");
    bool absolute = !t.empty() && t[0] != '/' && scheme != std::string_view::npos;
    if (absolute) {
        t.remove_prefix(scheme + 3);
        size_t start = t.find_first_of("/?");
        t = start == std::string_view::npos ? std::string_view() : t.substr(start);
    }
    t = t.substr(0, t.find('#'));
    size_t question = t.find('?');
    std::string_view path = t.substr(0, question);
    head_.path = PercentDecode(path, false);
    if (absolute && head_.path.empty())
        head_.path = "/";
    if (question != std::string_view::npos)
        head_.query = ParseForm(t.substr(question + 1));
}

void RequestReader::Impl::OnField(bhttp::field name, std::string_view name_string,
                                  std::string_view value)
{
    auto first = [&](unsigned bit, std::string *to) {
        if ((seen_ & bit) == 0) {
            seen_ |= bit;
            to->assign(value);
        }
    };
    switch (name) {
        case bhttp::field::authorization:
            first(1u << 0, &head_.authorization);
            return;
        case bhttp::field::content_type:
            first(1u << 1, &head_.content_type);
            return;
        case bhttp::field::origin:
            first(1u << 2, &head_.origin);
            return;
        case bhttp::field::accept_encoding:
            first(1u << 3, &head_.accept_encoding);
            return;
        case bhttp::field::content_encoding:
            JoinValue(&head_.content_encoding, value);
            return;
        case bhttp::field::expect:
            JoinValue(&head_.expect, value);
            return;
        case bhttp::field::transfer_encoding:
            JoinValue(&transfer_encoding_, value);
            return;
        default:
            break;
    }
    if (EqualsIgnoreCase(name_string, "X-Request-Id"))
        first(1u << 4, &head_.x_request_id);
    else if (EqualsIgnoreCase(name_string, "Request-Id"))
        first(1u << 5, &head_.request_id);
}

/* The head is complete: everything that can refuse the request before its body does. */
bool RequestReader::Impl::OnHeader()
{
    head_.keep_alive = parser_->keep_alive();
    head_.chunked = parser_->chunked();
    at_chunk_header_ = head_.chunked;
    if (boost::optional<std::uint64_t> cl = parser_->content_length())
        head_.content_length = *cl;

    if (!transfer_encoding_.empty()) {
        /* Beast takes "gzip, chunked" as chunked and ignores the gzip: refuse instead. */
        int codings = 0;
        bool only_chunked = true;
        ForEachToken(transfer_encoding_, [&](std::string_view t) {
            ++codings;
            only_chunked = only_chunked && EqualsIgnoreCase(t, "chunked");
        });
        if (codings != 1 || !only_chunked)
            return Fail(501, "unsupported Transfer-Encoding \"" + transfer_encoding_ +
                                 "\" (only chunked is supported)");
    }

    int codings = 0;
    bool gzip = true;
    ForEachToken(head_.content_encoding, [&](std::string_view t) {
        if (EqualsIgnoreCase(t, "identity"))
            return;
        ++codings;
        gzip = gzip && (EqualsIgnoreCase(t, "gzip") || EqualsIgnoreCase(t, "x-gzip"));
    });
    if (codings > 1 || !gzip)
        return Fail(415, "unsupported Content-Encoding \"" + head_.content_encoding +
                             "\" (use gzip or identity)");
    head_.encoding = codings == 1 ? ContentEncoding::Gzip : ContentEncoding::Identity;

    head_.expect_continue = EqualsIgnoreCase(TrimSpaces(head_.expect), "100-continue");

    if (head_.content_length && *head_.content_length > limits_.max_body_bytes)
        return FailTooLarge(std::to_string(*head_.content_length) + " bytes");
    return true;
}

bool RequestReader::Impl::OnBodyInit(const boost::optional<std::uint64_t> &content_length)
{
    size_t initial = content_length ? static_cast<size_t>(*content_length) : kInitialBodyBytes;
    if (head_.encoding == ContentEncoding::Identity) {
        body_cap_ = limits_.max_body_bytes;
        if (!body_.Reserve(std::min(initial, body_cap_)))
            return Fail(503, "out of memory while reading the request body");
        return true;
    }
    /* One byte more than the limit, so that inflating past it is seen. */
    body_cap_ = limits_.max_body_bytes + 1;
    /* Only the wire buffer holds memory until the body is complete; Decompress sizes the
     * body buffer.  (So a connection never holds more than the limit between reads.) */
    body_.Clear(0);
    if (!wire_.Reserve(std::min(initial, limits_.max_body_bytes)))
        return Fail(503, "out of memory while reading the request body");
    return true;
}

bool RequestReader::Impl::OnChunkHeader(std::uint64_t size)
{
    at_chunk_header_ = size == 0; /* the last chunk: the trailer section follows */
    chunked_bytes_ += size;
    if (chunked_bytes_ > limits_.max_body_bytes)
        return FailTooLarge("more than " + std::to_string(limits_.max_body_bytes) + " bytes");
    return true;
}

bool RequestReader::Impl::OnBodyData(std::string_view piece)
{
    wire_bytes_ += piece.size();
    if (piece.empty())
        return true;
    if (head_.encoding == ContentEncoding::Gzip)
        return Append(&wire_, limits_.max_body_bytes, piece);
    return Append(&body_, body_cap_, piece);
}

/* Copies a piece of the wire body into `to`, which never grows past `cap` bytes. */
bool RequestReader::Impl::Append(BodyBuffer *to, size_t cap, std::string_view piece)
{
    /* Content-Length and chunk sizes were checked against the limit already; this check
     * keeps the copy below inside the buffer whatever the parser does. */
    if (piece.size() > cap - to->size())
        return FailTooLarge("more than " + std::to_string(limits_.max_body_bytes) + " bytes");
    if (piece.size() > to->room()) {
        size_t want = std::max(to->size() + piece.size(), to->capacity() * 2);
        if (!to->Reserve(std::min(want, cap)))
            return Fail(503, "out of memory while reading the request body");
    }
    to->Append(piece.data(), piece.size());
    return true;
}

/* The last 4 bytes of the gzip wire body as its last member's ISIZE (0 if shorter). */
uint32_t RequestReader::Impl::LastIsize() const noexcept
{
    const auto *in = reinterpret_cast<const unsigned char *>(wire_.data());
    const size_t in_size = wire_.size();
    uint32_t isize = 0;
    if (in_size >= kGzipIsizeBytes)
        for (size_t i = 0; i < kGzipIsizeBytes; ++i)
            isize |= uint32_t{in[in_size - kGzipIsizeBytes + i]} << (8 * i);
    return isize;
}

/*
 * Decompresses the whole gzip wire body into the body buffer with libdeflate, member after
 * member (several gzip members one after the other are one body, as gzip -d reads them).
 * Whatever libdeflate does not inflate whole within the limit goes to InflateWithZlib.
 */
bool RequestReader::Impl::Decompress()
{
    const auto *in = reinterpret_cast<const unsigned char *>(wire_.data());
    const size_t in_size = wire_.size();
    if (deflate_ == nullptr && (deflate_ = libdeflate_alloc_decompressor()) == nullptr)
        return Fail(503, "out of memory while reading the request (libdeflate)");
    /* The last member's ISIZE: the whole body's size for one member (as clients send).
     * More than the limit is a body too large (a gzip bomb) or not a trailer at all (a
     * truncated stream's last bytes): either way an error, which zlib finds and names,
     * stopping one byte past the limit. */
    uint32_t isize = LastIsize();
    if (isize > limits_.max_body_bytes)
        return InflateWithZlib();
    if (!body_.Reserve(std::min<size_t>(std::max<size_t>(isize, 1), body_cap_)))
        return Fail(503, "out of memory while reading the request body");

    size_t pos = 0;
    while (pos < in_size) {
        /* libdeflate skips a member header's CRC-16 without checking it; zlib checks it. */
        if (in_size - pos > 3 && in[pos] == kGzipId1 && in[pos + 1] == kGzipId2 &&
            (in[pos + 3] & kGzipFhcrc) != 0)
            return InflateWithZlib();
        size_t used = 0, out = 0;
        libdeflate_result rc = libdeflate_gzip_decompress_ex(
            deflate_, in + pos, in_size - pos, body_.end(), body_.room(), &used, &out);
        if (rc == LIBDEFLATE_SUCCESS) {
            body_.Grew(out);
            pos += used;
        } else if (rc == LIBDEFLATE_INSUFFICIENT_SPACE && body_.capacity() < body_cap_) {
            /* a later member (or a lying ISIZE): more room, and this member again */
            size_t want = std::max(body_.capacity() * 2, kInitialBodyBytes);
            if (!body_.Reserve(std::min(want, body_cap_)))
                return Fail(503, "out of memory while reading the request body");
        } else {
            /* Corrupt, truncated, trailing bytes, or no room up to the limit + 1: which it
             * is, zlib says.  (No room is not yet 413: libdeflate checks a match's length
             * against the room before its distance, so a corrupt match near the limit says
             * no room where zlib says 400.) */
            return InflateWithZlib();
        }
    }
    /* Every member whole and checked, limit + 1 bytes in all: zlib would stop there too. */
    if (body_.size() > limits_.max_body_bytes)
        return FailTooLarge("more than " + std::to_string(limits_.max_body_bytes) +
                            " bytes after decompression");
    return true;
}

/*
 * The wire body again, streaming through zlib's inflate from its start: for the streams
 * libdeflate refuses (corrupt, truncated, trailing bytes, larger than the limit) and header
 * CRCs, so that the answer and its message are zlib's.
 */
bool RequestReader::Impl::InflateWithZlib()
{
    body_.Clear(body_.capacity()); /* size 0, memory kept */
    int rc = zlib_ready_ ? inflateReset(&zs_) : inflateInit2(&zs_, 16 + MAX_WBITS);
    if (rc != Z_OK)
        return Fail(503, "out of memory while reading the request (zlib)");
    zlib_ready_ = true;
    member_done_ = false;
    if (!Inflate(std::string_view(wire_.data(), wire_.size())))
        return false;
    if (!member_done_)
        return Fail(400, "invalid gzip body: unexpected end of stream");
    return true;
}

/*
 * Inflates a piece of a gzip body into the body buffer with zlib, growing it up to
 * body_cap_.  Several gzip members one after the other are one body.
 */
bool RequestReader::Impl::Inflate(std::string_view piece)
{
    while (!piece.empty()) {
        size_t in = std::min(piece.size(), kMaxInflateInput);
        zs_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(piece.data()));
        zs_.avail_in = static_cast<uInt>(in);
        while (zs_.avail_in > 0) {
            if (member_done_) {
                inflateReset(&zs_);
                member_done_ = false;
            }
            if (body_.room() == 0) {
                size_t want = std::max(body_.capacity() * 2, kInitialBodyBytes);
                if (!body_.Reserve(std::min(want, body_cap_)))
                    return Fail(503, "out of memory while reading the request body");
            }
            size_t room = std::min<size_t>(body_.room(), UINT_MAX);
            zs_.next_out = reinterpret_cast<Bytef *>(body_.end());
            zs_.avail_out = static_cast<uInt>(room);
            int rc = inflate(&zs_, Z_NO_FLUSH);
            body_.Grew(room - zs_.avail_out);
            if (body_.size() > limits_.max_body_bytes)
                return FailTooLarge("more than " + std::to_string(limits_.max_body_bytes) +
                                    " bytes after decompression");
            if (rc == Z_STREAM_END) {
                member_done_ = true;
            } else if (rc == Z_MEM_ERROR) {
                return Fail(503, "out of memory while decompressing the request body");
            } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs_.avail_out == 0)) {
                std::string msg = "invalid gzip body: ";
                msg += zs_.msg != nullptr ? zs_.msg : "inflate error " + std::to_string(rc);
                return Fail(400, std::move(msg));
            }
        }
        piece.remove_prefix(in);
    }
    return true;
}

bool RequestReader::Impl::OnFinish()
{
    /* An empty body is empty in any encoding.  The wire buffer is freed either way: the
     * body (or the error) is all that is left of the request. */
    if (head_.encoding == ContentEncoding::Gzip && wire_bytes_ > 0) {
        if (wire_bytes_ >= limits_.inflate_later_bytes) {
            inflate_later_ = true; /* InflateNow() */
            return true;
        }
        bool ok = Decompress();
        wire_.Clear(0);
        return ok;
    }
    return true;
}

/* Inflate: what OnFinish leaves for later, then the state Feed() would have given. */
void RequestReader::Impl::InflateNow() noexcept
{
    if (state_ != ReadState::Inflate)
        return;
    inflate_later_ = false;
    try {
        if (Decompress())
            state_ = ReadState::Complete;
    } catch (const std::bad_alloc &) {
        Fail(503, "out of memory while reading the request");
    } catch (...) {
        Fail(500, "internal error while reading the request");
    }
    wire_.Clear(0);
}

/* ---- RequestReader: the public face ---- */

RequestReader::RequestReader(const RequestLimits &limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestReader::~RequestReader() = default;
RequestReader::RequestReader(RequestReader &&) noexcept = default;
RequestReader &RequestReader::operator=(RequestReader &&) noexcept = default;

size_t RequestReader::Feed(const char *data, size_t len) noexcept
{
    return impl_->Feed(data, len);
}

void RequestReader::Inflate() noexcept
{
    impl_->InflateNow();
}

size_t RequestReader::inflated_size_hint() const noexcept
{
    if (impl_->state_ != ReadState::Inflate)
        return 0;
    return std::min<size_t>(impl_->LastIsize(), impl_->limits_.max_body_bytes + 1);
}
ReadState RequestReader::state() const noexcept
{
    return impl_->state_;
}
bool RequestReader::started() const noexcept
{
    return impl_->started_ || impl_->state_ != ReadState::NeedMore;
}
const RequestHead &RequestReader::head() const noexcept
{
    return impl_->head_;
}
std::string_view RequestReader::body() const noexcept
{
    return {impl_->body_.data(), impl_->body_.size()};
}
uint64_t RequestReader::wire_body_bytes() const noexcept
{
    return impl_->wire_bytes_;
}
size_t RequestReader::body_capacity() const noexcept
{
    return impl_->body_.capacity() + impl_->wire_.capacity();
}
int RequestReader::error_status() const noexcept
{
    return impl_->error_status_;
}
const std::string &RequestReader::error_message() const noexcept
{
    return impl_->error_message_;
}
void RequestReader::Reset() noexcept
{
    impl_->Reset();
}

} // namespace influx::http
