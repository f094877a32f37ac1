/*
 * response.hpp — HTTP responses of the InfluxDB-compatible endpoint, as bytes (pure C++).
 *
 * Vocabulary:
 *   response    status line, headers and body, formatted in one string the caller writes to
 *               the socket.  Always HTTP/1.1 with a Content-Length (never chunked, so that
 *               HTTP/1.0 clients can read it); no Content-Length and no body for 1xx, 204
 *               and 304, which RFC 9110 forbids them.
 *   error body  {"error":"…","code":"…","message":"…"}: "error" is what 1.x clients read,
 *               "code" and "message" what 2.x clients read.
 *   code        the InfluxDB 2.x error code for a status ("invalid", "unauthorized", ...);
 *               also sent in X-Platform-Error-Code.
 *
 * Every response carries X-Influxdb-Version (client libraries refuse a server without it)
 * and X-Influxdb-Build, and echoes the request id in both Request-Id and X-Request-Id.
 * Header values given by the caller are made safe: control bytes (CR and LF included)
 * become spaces, so nothing a client sent can add a header.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace influx::http
{

/* The InfluxDB version pg_influx answers as (X-Influxdb-Version, /ping, /health). */
inline constexpr std::string_view kInfluxdbVersion = "1.8.10";
inline constexpr std::string_view kInfluxdbBuild = "pg_influx";
/* X-Influxdb-Error is cut to this many bytes (as InfluxDB 1.x does). */
inline constexpr size_t kMaxErrorHeaderBytes = 1024;

struct Response {
    int status = 200;
    std::string body;
    /* Sent when non-empty; when empty and there is a body: application/json. */
    std::string content_type;
    /* Echoed in Request-Id and X-Request-Id when non-empty. */
    std::string request_id;
    /* Adds "Connection: close": the caller closes the connection after this response. */
    bool close = false;
    /* The request's HTTP version (10 or 11): an HTTP/1.0 client kept alive needs
     * "Connection: keep-alive" in the answer. */
    int request_version = 11;
    /* The answer to a HEAD request: Content-Length of the body, but no body. */
    bool head = false;
    /* Retry-After: <seconds> (with 503). */
    std::optional<int> retry_after;
    /* WWW-Authenticate: Basic realm="pg_influx" (with 401). */
    bool www_authenticate = false;
    /* X-Influxdb-Error (cut to kMaxErrorHeaderBytes) and X-Platform-Error-Code, when
     * non-empty. */
    std::string influxdb_error;
    std::string platform_error_code;
    /* Anything else (CORS headers, Content-Encoding, ...), sent as given (made safe). */
    std::vector<std::pair<std::string, std::string>> extra_headers;
};

/* The reason phrase of a status ("No Content"), "Unknown" for a status it does not know. */
std::string_view ReasonPhrase(int status) noexcept;

/* The InfluxDB 2.x error code of an error status: 400 "invalid", 401 "unauthorized", 403
 * "forbidden", 404 "not found", 405 "method not allowed", 413 "request too large", 415
 * "unsupported media type", 503 "unavailable"; other 5xx "internal error", other 4xx
 * "invalid". */
std::string_view ErrorCode(int status) noexcept;

/* The response as bytes, ready to be written. */
std::string FormatResponse(const Response &r);

/*
 * A JSON string literal, quotes included: '"' and '\' escaped, \n \r \t as such, the other
 * control characters as \u00XX, and every byte that is not part of valid UTF-8 replaced by
 * U+FFFD, so the result is valid JSON whatever the input.
 */
std::string JsonString(std::string_view text);
/* Appends JsonString(text) to *out. */
void AppendJsonString(std::string *out, std::string_view text);

/* {"error":<message>,"code":<code>,"message":<message>} */
std::string ErrorBody(std::string_view message, std::string_view code);

/*
 * An error response the way InfluxDB shapes it: the error body with ErrorCode(status),
 * X-Influxdb-Error and X-Platform-Error-Code, and for 401 WWW-Authenticate instead of
 * X-Influxdb-Error.  The caller adds request_id, close, retry_after, head.
 */
Response MakeErrorResponse(int status, std::string_view message);

} // namespace influx::http
