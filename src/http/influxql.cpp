/*
 * influxql.cpp — splitting a query into statements and recognising the writers' ones
 * (see influxql.hpp).
 */
#include "http/influxql.hpp"
#include "core/cpp_only.hpp"

namespace influx::http
{

namespace
{

bool IsSpace(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) noexcept
{
    while (!s.empty() && IsSpace(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && IsSpace(s.back()))
        s.remove_suffix(1);
    return s;
}

bool IsIdentStart(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}

bool IsIdentChar(char c) noexcept
{
    return IsIdentStart(c) || (c >= '0' && c <= '9');
}

/* Reads statements left to right; every Take* skips the whitespace before its token. */
class Cursor
{
  public:
    explicit Cursor(std::string_view text) : text_(text) {}

    bool AtEnd()
    {
        SkipSpaces();
        return pos_ == text_.size();
    }

    /* Consumes the keyword (case-insensitive, followed by a non-identifier byte). */
    bool TakeKeyword(std::string_view keyword)
    {
        SkipSpaces();
        if (text_.size() - pos_ < keyword.size())
            return false;
        for (size_t i = 0; i < keyword.size(); ++i) {
            char c = text_[pos_ + i];
            if (c >= 'a' && c <= 'z')
                c = static_cast<char>(c - 'a' + 'A');
            if (c != keyword[i])
                return false;
        }
        if (pos_ + keyword.size() < text_.size() && IsIdentChar(text_[pos_ + keyword.size()]))
            return false;
        pos_ += keyword.size();
        return true;
    }

    /* Consumes a bare or double-quoted identifier into *out; false leaves garbage in *out. */
    bool TakeIdentifier(std::string *out)
    {
        SkipSpaces();
        out->clear();
        if (pos_ < text_.size() && text_[pos_] == '"') {
            for (size_t i = pos_ + 1; i < text_.size(); ++i) {
                char c = text_[i];
                if (c == '"') {
                    pos_ = i + 1;
                    return !out->empty();
                }
                if (c == '\\') {
                    if (i + 1 == text_.size() || (text_[i + 1] != '"' && text_[i + 1] != '\\'))
                        return false;
                    c = text_[++i];
                }
                out->push_back(c);
            }
            return false; /* no closing quote */
        }
        if (pos_ == text_.size() || !IsIdentStart(text_[pos_]))
            return false;
        size_t end = pos_;
        while (end < text_.size() && IsIdentChar(text_[end]))
            ++end;
        out->assign(text_.substr(pos_, end - pos_));
        pos_ = end;
        return true;
    }

  private:
    void SkipSpaces()
    {
        while (pos_ < text_.size() && IsSpace(text_[pos_]))
            ++pos_;
    }

    std::string_view text_;
    size_t pos_ = 0;
};

/* Fills in the kind (and database) of a trimmed, non-empty statement. */
void Classify(Statement *st)
{
    Cursor c(st->text);
    if (c.TakeKeyword("SHOW")) {
        if (c.TakeKeyword("DATABASES") && c.AtEnd())
            st->kind = StatementKind::ShowDatabases;
        return;
    }
    if (!c.TakeKeyword("CREATE") || !c.TakeKeyword("DATABASE"))
        return;
    if (c.TakeKeyword("IF") && !(c.TakeKeyword("NOT") && c.TakeKeyword("EXISTS")))
        return;
    std::string name;
    if (!c.TakeIdentifier(&name))
        return;
    if (!c.AtEnd() && !c.TakeKeyword("WITH"))
        return;
    st->kind = StatementKind::CreateDatabase;
    st->database = std::move(name);
}

} // namespace

std::vector<Statement> ClassifyQuery(std::string_view query)
{
    std::vector<Statement> statements;
    size_t start = 0;
    char quote = 0; /* the quote we are inside, or 0 */
    for (size_t i = 0; i <= query.size(); ++i) {
        if (i < query.size()) {
            char c = query[i];
            if (quote != 0) {
                if (c == '\\' && i + 1 < query.size())
                    ++i; /* the next byte is escaped, whatever it is */
                else if (c == quote)
                    quote = 0;
                continue;
            }
            if (c == '"' || c == '\'') {
                quote = c;
                continue;
            }
            if (c != ';')
                continue;
        }
        std::string_view text = Trim(query.substr(start, i - start));
        start = i + 1;
        if (text.empty())
            continue;
        Statement st;
        st.text = text;
        Classify(&st);
        statements.push_back(std::move(st));
    }
    return statements;
}

} // namespace influx::http
