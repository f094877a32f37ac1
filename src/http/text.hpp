/*
 * text.hpp — the small text helpers HTTP needs in more than one place (pure C++): header
 * values and credentials are compared without regard to ASCII case and trimmed of
 * spaces and tabs (RFC 9110 "optional whitespace").
 */
#pragma once

#include <cstddef>
#include <string_view>

namespace influx::http
{

/* a == b, ignoring the case of ASCII letters. */
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* s without leading and trailing spaces and tabs. */
inline std::string_view TrimSpaces(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

} // namespace influx::http
