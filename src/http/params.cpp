/*
 * params.cpp — query-string and form parameters, precision spellings (see params.hpp).
 */
#include "http/params.hpp"
#include "core/cpp_only.hpp"

namespace influx::http
{

namespace
{

int HexValue(char c) noexcept
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace

void Params::Add(std::string key, std::string value)
{
    entries_.emplace_back(std::move(key), std::move(value));
}

const std::string *Params::Find(std::string_view key) const noexcept
{
    for (const Entry &e : entries_)
        if (e.first == key)
            return &e.second;
    return nullptr;
}

std::string_view Params::Get(std::string_view key) const noexcept
{
    const std::string *v = Find(key);
    return v ? std::string_view(*v) : std::string_view();
}

std::string PercentDecode(std::string_view text, bool plus_as_space)
{
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%' && i + 2 < text.size()) {
            int hi = HexValue(text[i + 1]);
            int lo = HexValue(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(c == '+' && plus_as_space ? ' ' : c);
    }
    return out;
}

Params ParseForm(std::string_view text)
{
    Params params;
    while (!text.empty()) {
        size_t amp = text.find('&');
        std::string_view piece = text.substr(0, amp);
        text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
        if (piece.empty())
            continue;
        size_t eq = piece.find('=');
        std::string_view key = piece.substr(0, eq);
        std::string_view value =
            eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
        params.Add(PercentDecode(key, true), PercentDecode(value, true));
    }
    return params;
}

std::optional<int64_t> ParsePrecision(std::string_view precision) noexcept
{
    /* "\xc2\xb5" is U+00B5 MICRO SIGN and "\xce\xbc" U+03BC GREEK SMALL LETTER MU, in
     * UTF-8: Go's time.ParseDuration takes both for "µs" (the go1 client checks with it). */
    if (precision.empty() || precision == "n" || precision == "ns")
        return 1;
    if (precision == "u" || precision == "us" || precision == "\xc2\xb5" ||
        precision == "\xc2\xb5s" || precision == "\xce\xbc" || precision == "\xce\xbcs")
        return 1000;
    if (precision == "ms")
        return 1000 * 1000;
    if (precision == "s")
        return INT64_C(1000000000);
    if (precision == "m")
        return INT64_C(60) * 1000000000;
    if (precision == "h")
        return INT64_C(3600) * 1000000000;
    return std::nullopt;
}

std::string InvalidPrecisionMessage(std::string_view precision)
{
    std::string msg = "invalid precision \"";
    msg.append(precision);
    msg.append("\" (use n, ns, u, us, ms, s, m or h)");
    return msg;
}

} // namespace influx::http
