/*
 * params.hpp — query-string and form parameters of the HTTP endpoint (pure C++).
 *
 * Vocabulary:
 *   parameter  one key=value pair of a URL query string ("/write?db=x&precision=s") or of an
 *              application/x-www-form-urlencoded body ("q=CREATE+DATABASE+%22x%22").
 *   decoded    "%XX" replaced by the byte XX and '+' by a space, as browsers and Go's
 *              url.ParseQuery do.  A '%' not followed by two hex digits is kept as it is.
 *   precision  the unit of the timestamps in a write, given as a multiplier to nanoseconds.
 *
 * Repeated keys are all kept, in order; Find() returns the first, like Go's Values.Get.
 * An empty value ("rp=") is kept as an empty string: whether that means "not given" is the
 * endpoint's decision (InfluxDB clients send empty rp, org and consistency).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace influx::http
{

class Params
{
  public:
    using Entry = std::pair<std::string, std::string>;

    void Add(std::string key, std::string value);
    /* The first value given for key, or nullptr when the key is absent. */
    const std::string *Find(std::string_view key) const noexcept;
    /* The first value given for key, or "" when the key is absent. */
    std::string_view Get(std::string_view key) const noexcept;
    bool Has(std::string_view key) const noexcept { return Find(key) != nullptr; }

    size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }
    void clear() noexcept { entries_.clear(); }
    std::vector<Entry>::const_iterator begin() const noexcept { return entries_.begin(); }
    std::vector<Entry>::const_iterator end() const noexcept { return entries_.end(); }

  private:
    std::vector<Entry> entries_;
};

/*
 * Decodes "%XX" escapes (and '+' as a space when plus_as_space).  Invalid escapes stay as
 * they are: a parameter is never dropped or rejected for its spelling.
 */
std::string PercentDecode(std::string_view text, bool plus_as_space);

/*
 * Splits "a=1&b=2" into decoded parameters: used for URL query strings and for
 * application/x-www-form-urlencoded bodies.  Empty pieces ("a=1&&b=2") are skipped; a piece
 * without '=' is a key with an empty value.  Throws std::bad_alloc only.
 */
Params ParseForm(std::string_view text);

/*
 * The multiplier from a timestamp in `precision` to nanoseconds, accepting what either
 * InfluxDB API accepts: "" (the default), "n", "ns" -> 1; "u", "us", "µ", "µs" -> 1000
 * (µ as U+00B5 or U+03BC, both Go spellings); "ms" -> 1e6; "s" -> 1e9; "m" -> 60e9;
 * "h" -> 3600e9.  Anything else (also other letter cases: InfluxDB compares exactly) is
 * nullopt, and the write must be refused rather than read in a guessed unit.
 */
std::optional<int64_t> ParsePrecision(std::string_view precision) noexcept;

/* The text of the 400 answer for a precision ParsePrecision refused. */
std::string InvalidPrecisionMessage(std::string_view precision);

} // namespace influx::http
