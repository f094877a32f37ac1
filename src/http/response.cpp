/*
 * response.cpp — formatting responses and JSON strings (see response.hpp).
 */
#include <cstdio>

#include "http/response.hpp"
#include "core/cpp_only.hpp"

namespace influx::http
{

namespace
{

constexpr std::string_view kReplacementCharacter = "\xef\xbf\xbd"; /* U+FFFD */

/*
 * The length of the valid UTF-8 sequence at s[i] (1 to 4), or 0 when the bytes there are
 * not one: a stray continuation byte, an overlong form, a surrogate, a code point above
 * U+10FFFF or a sequence cut short.
 */
size_t Utf8SequenceLength(std::string_view s, size_t i) noexcept
{
    auto byte = [&](size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
    auto cont = [&](size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
    unsigned c = byte(i);
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2))
            return 0;
        unsigned c1 = byte(i + 1);
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F)) /* overlong, surrogate */
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3))
            return 0;
        unsigned c1 = byte(i + 1);
        if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F)) /* overlong, > U+10FFFF */
            return 0;
        return 4;
    }
    return 0;
}

/* A header value with every control byte (CR, LF, TAB, DEL, ...) turned into a space. */
void AppendHeader(std::string *out, std::string_view name, std::string_view value)
{
    out->append(name);
    out->append(": ");
    for (char c : value) {
        unsigned char u = static_cast<unsigned char>(c);
        out->push_back(u < 0x20 || u == 0x7F ? ' ' : c);
    }
    out->append("\r\n");
}

/* At most `limit` bytes of text, not cutting a UTF-8 sequence in two. */
std::string_view CutUtf8(std::string_view text, size_t limit) noexcept
{
    if (text.size() <= limit)
        return text;
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        --cut;
    return text.substr(0, cut);
}

bool StatusHasNoBody(int status) noexcept
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

} // namespace

std::string_view ReasonPhrase(int status) noexcept
{
    static constexpr struct {
        int status;
        std::string_view phrase;
    } kPhrases[] = {
        {100, "Continue"},
        {200, "OK"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Request Entity Too Large"},
        {415, "Unsupported Media Type"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (const auto &p : kPhrases)
        if (p.status == status)
            return p.phrase;
    return "Unknown";
}

std::string_view ErrorCode(int status) noexcept
{
    switch (status) {
        case 400:
            return "invalid";
        case 401:
            return "unauthorized";
        case 403:
            return "forbidden";
        case 404:
            return "not found";
        case 405:
            return "method not allowed";
        case 413:
            return "request too large";
        case 415:
            return "unsupported media type";
        case 503:
            return "unavailable";
        default:
            return status >= 500 ? "internal error" : "invalid";
    }
}

void AppendJsonString(std::string *out, std::string_view text)
{
    out->reserve(out->size() + text.size() + 2);
    out->push_back('"');
    size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            size_t n = Utf8SequenceLength(text, i);
            if (n == 0) {
                out->append(kReplacementCharacter);
                ++i;
            } else {
                out->append(text.substr(i, n));
                i += n;
            }
            continue;
        }
        ++i;
        switch (c) {
            case '"':
                out->append("\\\"");
                break;
            case '\\':
                out->append("\\\\");
                break;
            case '\n':
                out->append("\\n");
                break;
            case '\r':
                out->append("\\r");
                break;
            case '\t':
                out->append("\\t");
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out->append(buf);
                } else {
                    out->push_back(static_cast<char>(c));
                }
        }
    }
    out->push_back('"');
}

std::string JsonString(std::string_view text)
{
    std::string out;
    AppendJsonString(&out, text);
    return out;
}

std::string ErrorBody(std::string_view message, std::string_view code)
{
    std::string out = "{\"error\":";
    AppendJsonString(&out, message);
    out.append(",\"code\":");
    AppendJsonString(&out, code);
    out.append(",\"message\":");
    AppendJsonString(&out, message);
    out.push_back('}');
    return out;
}

Response MakeErrorResponse(int status, std::string_view message)
{
    Response r;
    r.status = status;
    std::string_view code = ErrorCode(status);
    r.body = ErrorBody(message, code);
    r.platform_error_code = code;
    if (status == 401)
        r.www_authenticate = true;
    else
        r.influxdb_error = message;
    return r;
}

std::string FormatResponse(const Response &r)
{
    bool no_body = StatusHasNoBody(r.status);
    std::string out;
    out.reserve(320 + r.influxdb_error.size() + (no_body || r.head ? 0 : r.body.size()));

    char line[64];
    std::snprintf(line, sizeof(line), "HTTP/1.1 %03d ", r.status);
    out.append(line);
    out.append(ReasonPhrase(r.status));
    out.append("\r\n");

    if (!r.content_type.empty())
        AppendHeader(&out, "Content-Type", r.content_type);
    else if (!r.body.empty() && !no_body)
        AppendHeader(&out, "Content-Type", "application/json");
    if (!r.request_id.empty()) {
        AppendHeader(&out, "Request-Id", r.request_id);
        AppendHeader(&out, "X-Request-Id", r.request_id);
    }
    AppendHeader(&out, "X-Influxdb-Build", kInfluxdbBuild);
    AppendHeader(&out, "X-Influxdb-Version", kInfluxdbVersion);
    if (!r.influxdb_error.empty())
        AppendHeader(&out, "X-Influxdb-Error", CutUtf8(r.influxdb_error, kMaxErrorHeaderBytes));
    if (!r.platform_error_code.empty())
        AppendHeader(&out, "X-Platform-Error-Code", r.platform_error_code);
    if (r.retry_after) {
        std::snprintf(line, sizeof(line), "%d", *r.retry_after < 0 ? 0 : *r.retry_after);
        AppendHeader(&out, "Retry-After", line);
    }
    if (r.www_authenticate)
        AppendHeader(&out, "WWW-Authenticate", "Basic realm=\"pg_influx\"");
    for (const auto &[name, value] : r.extra_headers)
        AppendHeader(&out, name, value);
    if (!no_body) {
        std::snprintf(line, sizeof(line), "%zu", r.body.size());
        AppendHeader(&out, "Content-Length", line);
    }
    if (r.close)
        AppendHeader(&out, "Connection", "close");
    else if (r.request_version < 11)
        AppendHeader(&out, "Connection", "keep-alive");
    out.append("\r\n");
    if (!no_body && !r.head)
        out.append(r.body);
    return out;
}

} // namespace influx::http
