/*
 * auth.hpp — the credentials of an HTTP request, as InfluxDB clients send them (pure C++).
 *
 * Vocabulary:
 *   credentials  what the request claims: a user and a password, or a token.  Checking
 *                them (against PostgreSQL roles or a configured token) is the endpoint's
 *                business; this file only reads them.
 *   scheme       the first word of the Authorization header: Basic, Token or Bearer
 *                (compared case-insensitively, as RFC 7235 says).
 *
 * Where credentials come from, in InfluxDB 1.x's order (services/httpd/handler.go,
 * parseCredentials):
 *   1. the query parameters u and p, when both are non-empty;
 *   2. "Authorization: Basic base64(user:password)";
 *   3. "Authorization: Token user:password" (a token containing ':', what the 2.x client
 *      libraries send to a 1.x server);
 *   4. "Authorization: Token <token>" or "Authorization: Bearer <token>".
 * An Authorization header with an empty token ("Token ", which Vector sends in 1.x mode)
 * counts as no credentials.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/params.hpp"

namespace influx::http
{

struct Credentials {
    enum class Kind {
        None,         /* no credentials at all */
        UserPassword, /* user and password set */
        Token,        /* token set */
        Malformed,    /* an Authorization header that cannot be read (see error) */
    };
    Kind kind = Kind::None;
    std::string user;
    std::string password;
    std::string token;
    std::string error; /* for Malformed: what was wrong, e.g. "invalid base64 in ..." */
};

/* Reads the credentials of a request from its query parameters and Authorization header. */
Credentials ParseCredentials(const Params &query, std::string_view authorization);

/*
 * Decodes standard base64 (RFC 4648 alphabet "+/"); the '=' padding may be omitted, but
 * where present it must be right.  nullopt on any other byte, including whitespace.
 */
std::optional<std::string> Base64Decode(std::string_view text);

/*
 * a == b, taking the same time for every pair of equal-length inputs whatever their bytes
 * (a password or token compare must not tell an attacker how many leading bytes matched).
 * The length itself is not secret.
 */
bool ConstantTimeEqual(std::string_view a, std::string_view b) noexcept;

} // namespace influx::http
