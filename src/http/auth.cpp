/*
 * auth.cpp — reading credentials, base64, constant-time compare (see auth.hpp).
 */
#include <cstdint>

#include "http/auth.hpp"
#include "http/text.hpp"
#include "core/cpp_only.hpp"

namespace influx::http
{

namespace
{

/* The value of a base64 digit, or -1. */
int Base64Value(char c) noexcept
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

Credentials Malformed(std::string error)
{
    Credentials c;
    c.kind = Credentials::Kind::Malformed;
    c.error = std::move(error);
    return c;
}

Credentials UserPassword(std::string_view user, std::string_view password)
{
    Credentials c;
    c.kind = Credentials::Kind::UserPassword;
    c.user = user;
    c.password = password;
    return c;
}

} // namespace

std::optional<std::string> Base64Decode(std::string_view text)
{
    size_t padding = 0;
    while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=')
        ++padding;
    if (padding > 0 && text.size() % 4 != 0)
        return std::nullopt;
    std::string_view digits = text.substr(0, text.size() - padding);
    if (digits.size() % 4 == 1)
        return std::nullopt;

    std::string out;
    out.reserve(digits.size() / 4 * 3 + 2);
    uint32_t bits = 0;
    int nbits = 0;
    for (char c : digits) {
        int v = Base64Value(c);
        if (v < 0)
            return std::nullopt;
        bits = (bits << 6) | static_cast<uint32_t>(v);
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out.push_back(static_cast<char>((bits >> nbits) & 0xff));
        }
    }
    return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    /* No early exit: every byte is looked at whatever the earlier ones were. */
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

Credentials ParseCredentials(const Params &query, std::string_view authorization)
{
    std::string_view u = query.Get("u");
    std::string_view p = query.Get("p");
    if (!u.empty() && !p.empty())
        return UserPassword(u, p);

    authorization = TrimSpaces(authorization);
    if (authorization.empty())
        return Credentials{};
    size_t space = authorization.find(' ');
    std::string_view scheme = authorization.substr(0, space);
    std::string_view value = space == std::string_view::npos
                                 ? std::string_view()
                                 : TrimSpaces(authorization.substr(space + 1));

    if (EqualsIgnoreCase(scheme, "Basic")) {
        std::optional<std::string> decoded = Base64Decode(value);
        if (!decoded)
            return Malformed("invalid base64 in the Basic Authorization header");
        size_t colon = decoded->find(':');
        if (colon == std::string::npos)
            return Malformed("the Basic Authorization header has no ':' between user and "
                             "password");
        return UserPassword(std::string_view(*decoded).substr(0, colon),
                            std::string_view(*decoded).substr(colon + 1));
    }
    bool is_token = EqualsIgnoreCase(scheme, "Token");
    if (is_token || EqualsIgnoreCase(scheme, "Bearer")) {
        if (value.empty())
            return Credentials{};
        size_t colon = value.find(':');
        if (is_token && colon != std::string_view::npos)
            return UserPassword(value.substr(0, colon), value.substr(colon + 1));
        Credentials c;
        c.kind = Credentials::Kind::Token;
        c.token = value;
        return c;
    }
    return Malformed("unsupported Authorization scheme (use Basic, Token or Bearer)");
}

} // namespace influx::http
