/*
 * line_protocol_test.cpp — unit tests of the line-protocol parser (src/protocol/line_protocol.cpp).
 *
 * Each test states one rule of InfluxDB 1.x line protocol as pg_influx implements it
 * (docs/line-protocol.md), including the deliberate differences.
 */
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/line_protocol.hpp"

using namespace influx;

namespace
{

/* A parsed line as plain strings and values, easy to compare. */
struct Parsed {
    ParseStatus status = ParseStatus::Invalid;
    std::string error;
    ErrorClass cls = ErrorClass::None;
    uint32_t column = 0;
    std::string measurement;
    std::map<std::string, std::string> tags;
    std::vector<std::string> tag_order;
    std::map<std::string, Field> fields;
    std::map<std::string, std::string> strings;
    uint32_t nfields = 0;
    bool has_time = false;
    int64_t time_ns = 0;

    bool ok() const { return status == ParseStatus::Ok; }
    const Field &field(const std::string &key) const { return fields.at(key); }
};

Parsed Parse(std::string_view line, Precision precision = Precision::Nanoseconds,
             size_t max_len = 64 * 1024 * 1024)
{
    ParserOptions options;
    options.precision = precision;
    options.max_line_length = max_len;
    LineParser parser(options);
    Point pt;
    Parsed r;
    r.status = parser.ParseLine(line, &pt);
    r.error = parser.error().message;
    r.cls = parser.error().cls;
    r.column = parser.error().column;
    if (r.status != ParseStatus::Ok)
        return r;
    r.measurement = UnescapeToString(pt.measurement);
    for (uint32_t i = 0; i < pt.ntags; ++i) {
        r.tags[UnescapeToString(pt.tags[i].key)] = UnescapeToString(pt.tags[i].value);
        r.tag_order.push_back(UnescapeToString(pt.tags[i].key));
    }
    for (uint32_t i = 0; i < pt.nfields; ++i) {
        std::string key = UnescapeToString(pt.fields[i].key);
        r.fields[key] = pt.fields[i];
        if (pt.fields[i].type == FieldType::String)
            r.strings[key] = UnescapeToString(pt.fields[i].str);
    }
    r.nfields = pt.nfields;
    r.has_time = pt.has_time;
    r.time_ns = pt.time_ns;
    return r;
}

bool Valid(std::string_view line)
{
    return Parse(line).ok();
}

double F(const Parsed &p, const char *key)
{
    return p.field(key).value.f;
}

} // namespace

/* ---- structure ---- */

TEST(LineProtocol, FullLine)
{
    Parsed p =
        Parse("cpu,host=a,region=eu usage=1.5,idle=2i,up=t,name=\"x y\" 1700000000000000000");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.measurement, "cpu");
    EXPECT_EQ(p.tags.size(), 2u);
    EXPECT_EQ(p.tags["host"], "a");
    EXPECT_EQ(p.tags["region"], "eu");
    EXPECT_EQ((std::vector<std::string>{"host", "region"}), p.tag_order);
    EXPECT_EQ(p.nfields, 4u);
    EXPECT_EQ(p.field("usage").type, FieldType::Float);
    EXPECT_EQ(F(p, "usage"), 1.5);
    EXPECT_EQ(p.field("idle").type, FieldType::Integer);
    EXPECT_EQ(p.field("idle").value.i, 2);
    EXPECT_EQ(p.field("up").type, FieldType::Boolean);
    EXPECT_TRUE(p.field("up").value.b);
    EXPECT_EQ(p.strings["name"], "x y");
    EXPECT_TRUE(p.has_time);
    EXPECT_EQ(p.time_ns, 1700000000000000000);
}

TEST(LineProtocol, TagsAreOptionalFieldsAreNot)
{
    EXPECT_TRUE(Valid("cpu value=1"));
    EXPECT_FALSE(Valid("cpu"));
    EXPECT_FALSE(Valid("cpu "));
    EXPECT_FALSE(Valid("cpu,host=a"));
    EXPECT_FALSE(Valid("cpu,host=a "));
    EXPECT_NE(Parse("cpu").error.find("missing fields"), std::string::npos);
}

TEST(LineProtocol, MissingMeasurement)
{
    EXPECT_FALSE(Valid(",host=a value=1"));
    EXPECT_NE(Parse(",host=a value=1").error.find("missing measurement"), std::string::npos);
}

TEST(LineProtocol, TrailingCommas)
{
    EXPECT_FALSE(Valid("cpu, value=1"));        /* comma after measurement needs a tag */
    EXPECT_FALSE(Valid("cpu,host=a, value=1")); /* trailing comma in the tag set */
    EXPECT_FALSE(Valid("cpu value=1,"));        /* trailing comma in the field set */
    EXPECT_FALSE(Valid("cpu value=1, 123"));
    EXPECT_FALSE(Valid("cpu ,value=1"));
    EXPECT_FALSE(Valid("cpu,,host=a value=1"));
}

TEST(LineProtocol, TagErrors)
{
    EXPECT_NE(Parse("cpu,=a value=1").error.find("missing tag key"), std::string::npos);
    EXPECT_NE(Parse("cpu,host value=1").error.find("missing tag value"), std::string::npos);
    EXPECT_NE(Parse("cpu,host= value=1").error.find("missing tag value"), std::string::npos);
    EXPECT_NE(Parse("cpu,host=,zone=a value=1").error.find("missing tag value"), std::string::npos);
    EXPECT_NE(Parse("cpu,host=f=o value=1").error.find("invalid tag format"), std::string::npos);
    /* InfluxDB only looks for '=' after the first byte of a tag value */
    Parsed p = Parse("cpu,t==x value=1");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["t"], "=x");
}

TEST(LineProtocol, EmptyTagValueRejected)
{
    Parsed p = Parse("cpu,host= value=1");
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.cls, ErrorClass::Syntax);
}

TEST(LineProtocol, DuplicateTagsRejected)
{
    Parsed p = Parse("cpu,host=a,host=b value=1");
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.error, "duplicate tags at column 12");
    EXPECT_FALSE(Valid("cpu,b=1,a=2,b=3 value=1"));  /* not adjacent, not sorted */
    EXPECT_TRUE(Valid("cpu,host=a,Host=b value=1")); /* keys are case sensitive */
    /* many tags take the hashed path */
    std::string line = "cpu";
    for (int i = 0; i < 40; ++i)
        line += ",k" + std::to_string(i) + "=v";
    EXPECT_TRUE(Valid(line + " value=1"));
    EXPECT_FALSE(Valid(line + ",k17=w value=1"));
}

TEST(LineProtocol, DuplicateFieldsLastWins)
{
    Parsed p = Parse("cpu a=1,b=2,a=3i");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.nfields, 2u);
    EXPECT_EQ(p.field("a").type, FieldType::Integer);
    EXPECT_EQ(p.field("a").value.i, 3);
    EXPECT_EQ(F(p, "b"), 2.0);

    /* keys are compared unescaped: a\"b and a"b are the same field key */
    p = Parse("cpu a\\\"b=1,a\"b=2");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.nfields, 1u);
    EXPECT_EQ(F(p, "a\"b"), 2.0);

    std::string line = "cpu ";
    for (int i = 0; i < 50; ++i)
        line += "f" + std::to_string(i) + "=" + std::to_string(i) + ",";
    line += "f7=\"last\",f7=99i";
    p = Parse(line);
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.nfields, 50u);
    EXPECT_EQ(p.field("f7").type, FieldType::Integer);
    EXPECT_EQ(p.field("f7").value.i, 99);
}

TEST(LineProtocol, FieldErrors)
{
    EXPECT_NE(Parse("cpu =1").error.find("missing field key"), std::string::npos);
    EXPECT_NE(Parse("cpu a=1,=2").error.find("missing field key"), std::string::npos);
    EXPECT_NE(Parse("cpu a=").error.find("missing field value"), std::string::npos);
    EXPECT_NE(Parse("cpu a=,b=1").error.find("missing field value"), std::string::npos);
    EXPECT_NE(Parse("cpu a= 1").error.find("missing field value"), std::string::npos);
    EXPECT_EQ(Parse("cpu a=1,b").error, "invalid field format at column 9");
    EXPECT_NE(Parse("cpu 123").error.find("invalid field format"), std::string::npos);
}

/* ---- escaping ---- */

TEST(LineProtocol, MeasurementEscapes)
{
    EXPECT_EQ(Parse("foo\\,bar value=1").measurement, "foo,bar");
    EXPECT_EQ(Parse("cpu\\ load,region=east value=1").measurement, "cpu load");
    /* only comma and space are escapes in a measurement */
    EXPECT_EQ(Parse("cpu\\=load value=1").measurement, "cpu\\=load");
    EXPECT_EQ(Parse("cpu\\\"load value=1").measurement, "cpu\\\"load");
    EXPECT_EQ(Parse("cpu=load value=1").measurement, "cpu=load");
    EXPECT_EQ(Parse("\"cpu\" value=1").measurement, "\"cpu\"");
    EXPECT_EQ(Parse("c\\pu value=1").measurement, "c\\pu");
}

TEST(LineProtocol, KeyEscapes)
{
    Parsed p = Parse(
        "cpu,region\\,zone=a\\,b,x\\ y=c\\ d,e\\=q=f\\=g k\\,1=1,k\\ 2=2,k\\=3=3,k\\\"4=4,k\\a=5");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["region,zone"], "a,b");
    EXPECT_EQ(p.tags["x y"], "c d");
    EXPECT_EQ(p.tags["e=q"], "f=g");
    EXPECT_EQ(F(p, "k,1"), 1);
    EXPECT_EQ(F(p, "k 2"), 2);
    EXPECT_EQ(F(p, "k=3"), 3);
    EXPECT_EQ(F(p, "k\"4"), 4); /* InfluxDB's field iterator unescapes \" in keys */
    EXPECT_EQ(F(p, "k\\a"), 5); /* unknown escape: backslash stays */

    /* \" is not an escape in tags */
    p = Parse("cpu,t\\\"=v\\\" value=1");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["t\\\""], "v\\\"");
}

TEST(LineProtocol, BackslashRuns)
{
    /* Outside strings a backslash is never escaped by another: "\\," is '\' + ',' */
    Parsed p = Parse("cpu,regions=\\\\,\\,\\=east value=1.0");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["regions"], "\\,,=east");
    p = Parse("cpu,regions=eas\\\\ t value=1.0");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["regions"], "eas\\ t");
    p = Parse("cpu,regions=east\\\\  value=1.0");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.tags["regions"], "east\\ ");
    EXPECT_EQ(Parse("a\\\\\\\\b value=1").measurement, "a\\\\\\\\b");
    /* in a string value, "\\" is one backslash, and "\\\"" a backslash and a quote */
    EXPECT_EQ(Parse("cpu v=\"test\\\\\"").strings["v"], "test\\");
    EXPECT_EQ(Parse("cpu v=\"test\\\\\\\"\"").strings["v"], "test\\\"");
    EXPECT_EQ(Parse("cpu v=\"a\\\\\\\\b\"").strings["v"], "a\\\\b");
}

TEST(LineProtocol, UnescapeApi)
{
    Text t{"a\\,b\\=c\\ d\\\"e\\x", 15, true, TextKind::Key};
    EXPECT_EQ(UnescapeToString(t), "a,b=c d\\\"e\\x");
    EXPECT_EQ(UnescapedSize(t), UnescapeToString(t).size());
    t.kind = TextKind::Measurement;
    EXPECT_EQ(UnescapeToString(t), "a,b\\=c d\\\"e\\x");
    t.kind = TextKind::FieldKey;
    EXPECT_EQ(UnescapeToString(t), "a,b=c d\"e\\x");
    Text s{"q\\\"x\\\\y\\n\\", 10, true, TextKind::StringValue};
    EXPECT_EQ(UnescapeToString(s), "q\"x\\y\\n\\");
    Text plain{"abc", 3, false, TextKind::Key};
    char buf[4];
    EXPECT_EQ(Unescape(plain, buf), 3u);
    EXPECT_EQ(std::string(buf, 3), "abc");
}

/* ---- strings ---- */

TEST(LineProtocol, Strings)
{
    Parsed p =
        Parse("cpu a=\"hello, world = x\",b=\"\",c=\"say \\\"hi\\\"\",d=\"c:\\\\dir\",e=\"\\n\"");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.strings["a"], "hello, world = x");
    EXPECT_EQ(p.strings["b"], "");
    EXPECT_EQ(p.strings["c"], "say \"hi\"");
    EXPECT_EQ(p.strings["d"], "c:\\dir");
    EXPECT_EQ(p.strings["e"], "\\n"); /* backslash before other characters stays */
    EXPECT_EQ(p.field("b").type, FieldType::String);
}

TEST(LineProtocol, StringWithNewline)
{
    Parsed p = Parse("cpu msg=\"line one\nline two\" 5");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.strings["msg"], "line one\nline two");
    EXPECT_EQ(p.time_ns, 5);
}

TEST(LineProtocol, UnbalancedQuotes)
{
    Parsed p = Parse("cpu,host=a value=\"test");
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.error, "unbalanced quotes at column 18");
    EXPECT_FALSE(Valid("cpu value=\"test\"\""));
}

TEST(LineProtocol, QuotedBooleanIsString)
{
    Parsed p = Parse("cpu v=\"true\"");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.field("v").type, FieldType::String);
    EXPECT_EQ(p.strings["v"], "true");
}

TEST(LineProtocol, TextAfterClosingQuoteFollowsInfluxDB)
{
    /* InfluxDB 1.x accepts this and keeps everything between the first and last byte */
    Parsed p = Parse("cpu a=\"x\"def,b=1");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.strings["a"], "x\"de");
}

/* ---- numbers ---- */

TEST(LineProtocol, FloatForms)
{
    struct {
        const char *text;
        double value;
    } cases[] = {
        {"1", 1.0},
        {"1.0", 1.0},
        {"-1.5", -1.5},
        {"1e+78", 1e78},
        {"1.E+78", 1e78},
        {".5", 0.5},
        {"5.", 5.0},
        {"1e5", 1e5},
        {"1E5", 1e5},
        {"-1.5e-3", -1.5e-3},
        {"0", 0.0},
        {"-0.0", -0.0},
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"1e-400", 0.0},
        {"007", 7.0},
        {"0.1", 0.1},
    };
    for (const auto &c : cases) {
        Parsed p = Parse(std::string("m v=") + c.text);
        ASSERT_TRUE(p.ok()) << c.text << ": " << p.error;
        EXPECT_EQ(p.field("v").type, FieldType::Float) << c.text;
        EXPECT_EQ(F(p, "v"), c.value) << c.text;
    }
    std::string long_zeros = "1" + std::string(30, '0');
    EXPECT_EQ(F(Parse("m v=" + long_zeros), "v"), 1e30);
}

TEST(LineProtocol, BadFloats)
{
    for (const char *bad :
         {"NaN",   "nan", "-NaN", "Inf",   "-Inf",    "+Inf", "inf",   "1e400", "-1e400",
          "1.1.1", ".",   "-.",   "-",     "1e",      "1e+",  "e5",    "1ee5",  "42+3",
          "1a",    "+1",  "0x10", "1_000", "1.5e5.5", "1ii",  "-e-e-e"}) {
        Parsed p = Parse(std::string("m v=") + bad);
        EXPECT_FALSE(p.ok()) << bad;
    }
    EXPECT_EQ(Parse("m v=1e400").cls, ErrorClass::Range);
    std::string huge = "1" + std::string(400, '0');
    EXPECT_FALSE(Valid("m v=" + huge));
}

/* The single-pass fast path must decide every number form exactly as the full parser does. */
TEST(LineProtocol, FastPathAgreesWithFullParserOnNumbers)
{
    for (const char *v : {"1",
                          "1.0",
                          "-1.5",
                          "5.",
                          "1.E+78",
                          ".5",
                          "-.5",
                          "1.e5",
                          "1e5",
                          "1E-5",
                          "1e",
                          "1e+",
                          "-",
                          "-1",
                          "-1i",
                          "1i",
                          "-1u",
                          "1u",
                          "1.5i",
                          "1e5i",
                          "9223372036854775807i",
                          "9223372036854775808i",
                          "-9223372036854775808i",
                          "18446744073709551615u",
                          "18446744073709551616u",
                          "1e400",
                          "-inf",
                          "-nan",
                          "007",
                          "1.5.5",
                          "1=2",
                          "1\t2",
                          "0.0000001",
                          "123456789012345678901234567890",
                          "t",
                          "-t",
                          "true",
                          "1x"}) {
        for (const char *tail : {"", ",w=2", " 1700000000"}) {
            std::string line = std::string("m,t=a v=") + v + tail;
            Point full_point, fast_point;
            ParserOptions full_options;
            full_options.fast_path = false;
            ParserOptions fast_options;
            fast_options.fast_path = true;
            LineParser full(full_options), fast(fast_options);
            ParseStatus a = full.ParseLine(line, &full_point);
            ParseStatus b = fast.ParseLine(line, &fast_point);
            ASSERT_EQ(a, b) << line;
            if (a != ParseStatus::Ok)
                continue;
            ASSERT_EQ(full_point.nfields, fast_point.nfields) << line;
            EXPECT_EQ(full_point.fields[0].type, fast_point.fields[0].type) << line;
            EXPECT_EQ(
                std::string_view(full_point.fields[0].str.data, full_point.fields[0].str.size),
                std::string_view(fast_point.fields[0].str.data, fast_point.fields[0].str.size))
                << line;
            if (full_point.fields[0].type == FieldType::Float) {
                EXPECT_EQ(full_point.fields[0].value.f, fast_point.fields[0].value.f) << line;
            }
            if (full_point.fields[0].type == FieldType::Integer) {
                EXPECT_EQ(full_point.fields[0].value.i, fast_point.fields[0].value.i) << line;
            }
        }
    }
}

TEST(LineProtocol, Integers)
{
    Parsed p = Parse("m a=9223372036854775807i,b=-9223372036854775808i,c=0i,d=-0i,e=007i");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.field("a").value.i, std::numeric_limits<int64_t>::max());
    EXPECT_EQ(p.field("b").value.i, std::numeric_limits<int64_t>::min());
    EXPECT_EQ(p.field("c").value.i, 0);
    EXPECT_EQ(p.field("e").value.i, 7);
    EXPECT_EQ(p.field("a").type, FieldType::Integer);

    Parsed over = Parse("cpu,host=a value=9223372036854775808i");
    EXPECT_FALSE(over.ok());
    EXPECT_EQ(over.error, "integer value out of range at column 18");
    EXPECT_EQ(over.cls, ErrorClass::Range);
    EXPECT_FALSE(Valid("m a=-9223372036854775809i"));
    EXPECT_FALSE(Valid("m a=99999999999999999999999i"));
    for (const char *bad : {"1.0i", "1e5i", "-i", "i", "1i5", "1iu", ".i"})
        EXPECT_FALSE(Valid(std::string("m a=") + bad)) << bad;
}

TEST(LineProtocol, Unsigned)
{
    Parsed p = Parse("m a=0u,b=18446744073709551615u,c=42u");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.field("a").type, FieldType::Unsigned);
    EXPECT_EQ(p.field("a").value.u, 0u);
    EXPECT_EQ(p.field("b").value.u, std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(p.field("c").value.u, 42u);
    EXPECT_EQ(Parse("m a=18446744073709551616u").cls, ErrorClass::Range);
    EXPECT_FALSE(Valid("m a=-1u"));
    EXPECT_FALSE(Valid("m a=-0u"));
    EXPECT_FALSE(Valid("m a=1.5u"));
    EXPECT_FALSE(Valid("m a=1ui"));
}

/* ---- booleans ---- */

TEST(LineProtocol, Booleans)
{
    for (const char *t : {"t", "T", "true", "True", "TRUE"}) {
        Parsed p = Parse(std::string("m v=") + t);
        ASSERT_TRUE(p.ok()) << t;
        EXPECT_EQ(p.field("v").type, FieldType::Boolean);
        EXPECT_TRUE(p.field("v").value.b) << t;
    }
    for (const char *f : {"f", "F", "false", "False", "FALSE"}) {
        Parsed p = Parse(std::string("m v=") + f);
        ASSERT_TRUE(p.ok()) << f;
        EXPECT_EQ(p.field("v").type, FieldType::Boolean);
        EXPECT_FALSE(p.field("v").value.b) << f;
    }
    for (const char *bad :
         {"tRUE", "tru", "truee", "fALSE", "FaLsE", "yes", "on", "x", "t1", "TRue"})
        EXPECT_FALSE(Valid(std::string("m v=") + bad)) << bad;
    EXPECT_NE(Parse("m v=tRUE").error.find("invalid boolean"), std::string::npos);
}

/* ---- timestamps and precision ---- */

TEST(LineProtocol, Timestamps)
{
    Parsed p = Parse("m v=1");
    ASSERT_TRUE(p.ok());
    EXPECT_FALSE(p.has_time);
    p = Parse("m v=1 -5");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.time_ns, -5);
    EXPECT_TRUE(Valid("m v=1 9223372036854775806"));
    EXPECT_TRUE(Valid("m v=1 -9223372036854775806"));
    EXPECT_FALSE(Valid("m v=1 9223372036854775807")); /* InfluxDB reserves the extremes */
    EXPECT_FALSE(Valid("m v=1 -9223372036854775807"));
    EXPECT_FALSE(Valid("m v=1 99999999999999999999"));
    EXPECT_EQ(Parse("m v=1 99999999999999999999").error, "timestamp out of range at column 7");
    EXPECT_EQ(Parse("m v=1 1.5").error, "bad timestamp at column 8");
    EXPECT_FALSE(Valid("m v=1 -"));
    EXPECT_FALSE(Valid("m v=1 12a"));
    EXPECT_FALSE(Valid("m v=1 \"123\""));
    EXPECT_FALSE(Valid("m v=1 123 456"));
    EXPECT_TRUE(Valid("m v=1 123   "));
    EXPECT_TRUE(Valid("m v=1   123"));
    EXPECT_EQ(Parse("m v=1 0").time_ns, 0);
    EXPECT_TRUE(Parse("m v=1 0").has_time);
}

TEST(LineProtocol, PrecisionScaling)
{
    EXPECT_EQ(Parse("m v=1 5", Precision::Microseconds).time_ns, 5000);
    EXPECT_EQ(Parse("m v=1 5", Precision::Milliseconds).time_ns, 5000000);
    EXPECT_EQ(Parse("m v=1 1700000000", Precision::Seconds).time_ns, 1700000000000000000);
    EXPECT_EQ(Parse("m v=1 -2", Precision::Seconds).time_ns, -2000000000);
    EXPECT_EQ(Parse("m v=1 2", Precision::Minutes).time_ns, INT64_C(120000000000));
    EXPECT_EQ(Parse("m v=1 2", Precision::Hours).time_ns, INT64_C(7200000000000));
    EXPECT_FALSE(Parse("m v=1 3000000", Precision::Hours).ok()); /* beyond 2262 */
    /* range checks after scaling */
    EXPECT_TRUE(Parse("m v=1 9223372036", Precision::Seconds).ok());
    Parsed over = Parse("m v=1 9223372037", Precision::Seconds);
    EXPECT_FALSE(over.ok());
    EXPECT_EQ(over.cls, ErrorClass::Range);
    EXPECT_FALSE(Parse("m v=1 9223372036854775", Precision::Milliseconds).ok());
    EXPECT_TRUE(Parse("m v=1 9223372036854", Precision::Milliseconds).ok());
    EXPECT_TRUE(Parse("m v=1 -9223372036854775", Precision::Microseconds).ok());
    EXPECT_FALSE(Parse("m v=1 -9223372036854776", Precision::Microseconds).ok());
    EXPECT_TRUE(Parse("m v=1 9223372036854775", Precision::Microseconds).ok());
    EXPECT_FALSE(Parse("m v=1 9223372036854776", Precision::Microseconds).ok());
}

TEST(LineProtocol, PrecisionNames)
{
    Precision p;
    EXPECT_TRUE(ParsePrecision("ns", &p));
    EXPECT_EQ(p, Precision::Nanoseconds);
    EXPECT_TRUE(ParsePrecision("n", &p));
    EXPECT_EQ(p, Precision::Nanoseconds);
    EXPECT_TRUE(ParsePrecision("us", &p));
    EXPECT_EQ(p, Precision::Microseconds);
    EXPECT_TRUE(ParsePrecision("u", &p));
    EXPECT_TRUE(ParsePrecision("ms", &p));
    EXPECT_EQ(p, Precision::Milliseconds);
    EXPECT_TRUE(ParsePrecision("s", &p));
    EXPECT_EQ(p, Precision::Seconds);
    EXPECT_TRUE(ParsePrecision("m", &p));
    EXPECT_EQ(p, Precision::Minutes);
    EXPECT_TRUE(ParsePrecision("h", &p));
    EXPECT_EQ(p, Precision::Hours);
    EXPECT_FALSE(ParsePrecision("d", &p));
    EXPECT_FALSE(ParsePrecision("", &p));
    EXPECT_FALSE(ParsePrecision("NS", &p));
    EXPECT_STREQ(PrecisionName(Precision::Microseconds), "us");
    EXPECT_STREQ(PrecisionName(Precision::Hours), "h");
    EXPECT_STREQ(FieldTypeName(FieldType::Unsigned), "unsigned");
}

/* ---- whitespace, comments, line ends ---- */

TEST(LineProtocol, CommentsAndBlankLines)
{
    EXPECT_EQ(Parse("# comment").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("   # indented comment").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("\t#tab").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("   ").status, ParseStatus::Skip);
    EXPECT_EQ(Parse(" \t ").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("\r").status, ParseStatus::Skip);
    EXPECT_EQ(Parse("# comment\r").status, ParseStatus::Skip);
    /* '#' elsewhere is an ordinary byte */
    Parsed p = Parse("m#1,t=#x f#=1");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.measurement, "m#1");
}

TEST(LineProtocol, Whitespace)
{
    Parsed p = Parse("   cpu value=1 5");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.measurement, "cpu");
    EXPECT_TRUE(Valid("cpu    value=1.0 1257894000000000000"));
    EXPECT_TRUE(Valid("cpu value=1.0     1257894000000000000"));
    EXPECT_TRUE(Valid("cpu value=1.0 1257894000000000000   "));
    EXPECT_TRUE(Valid("cpu value=1 "));
    EXPECT_FALSE(Valid("cpu value=1 1\t"));
}

TEST(LineProtocol, CrLf)
{
    Parsed p = Parse("cpu value=1 5\r");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.time_ns, 5);
    p = Parse("cpu s=\"x\"\r");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.strings["s"], "x");
    EXPECT_TRUE(Valid("cpu value=1\r"));
    EXPECT_FALSE(Valid("cpu value=1\r\r"));
    EXPECT_FALSE(Valid("cpu value=1 5\r 6"));
}

TEST(LineProtocol, MaxLineLength)
{
    std::string line = "cpu value=\"" + std::string(100, 'x') + "\"";
    EXPECT_TRUE(Parse(line, Precision::Nanoseconds, line.size()).ok());
    Parsed p = Parse(line, Precision::Nanoseconds, 64);
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.cls, ErrorClass::TooLong);
    EXPECT_EQ(p.error, "line too long (112 bytes, limit 64)");
}

TEST(LineProtocol, SeriesKeyLimit)
{
    std::string tag(65530, 'x');
    EXPECT_TRUE(Valid("m,t=" + std::string(65530 - 10, 'x') + " v=1"));
    Parsed p = Parse("m,t=" + tag + "xxxxxxx v=1");
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.cls, ErrorClass::Range);
}

TEST(LineProtocol, EncodingRejected)
{
    Parsed p = Parse(std::string("cpu v=\"a\0b\"", 11));
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.cls, ErrorClass::Encoding);
    EXPECT_EQ(p.error, "NUL byte at column 9");
    EXPECT_FALSE(Valid(std::string("\0cpu v=1", 8)));

    p = Parse("cpu,host=\xff v=1");
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.cls, ErrorClass::Encoding);
    EXPECT_EQ(p.error, "invalid UTF-8 at column 10");
    EXPECT_FALSE(Valid("cpu v=\"\xc3\""));             /* truncated */
    EXPECT_FALSE(Valid("cpu v=\"\xc0\xaf\""));         /* overlong */
    EXPECT_FALSE(Valid("cpu v=\"\xed\xa0\x80\""));     /* surrogate */
    EXPECT_FALSE(Valid("cpu v=\"\xf4\x90\x80\x80\"")); /* above U+10FFFF */
    p = Parse("c\xc3\xa9u,h\xc3\xb4te=\xe2\x82\xac v=\"\xf0\x9f\x98\x80\"");
    ASSERT_TRUE(p.ok()) << p.error;
    EXPECT_EQ(p.measurement, "c\xc3\xa9u");
    EXPECT_EQ(p.strings["v"], "\xf0\x9f\x98\x80");
}

TEST(LineProtocol, ErrorColumnsCountLeadingWhitespace)
{
    EXPECT_EQ(Parse("  cpu v=1.1.1").error, "invalid number at column 12");
    EXPECT_EQ(Parse("  cpu v=1.1.1").column, 12u);
}

TEST(LineProtocol, NamesAreNotReserved)
{
    /* InfluxDB 1.x's parser accepts these; only its storage layer drops "time" */
    EXPECT_TRUE(Valid("m,time=1 v=1"));
    EXPECT_TRUE(Valid("m time=1"));
    EXPECT_TRUE(Valid("m,_field=a,_measurement=b _value=1"));
}

TEST(LineProtocol, RawTextOfNonStringValues)
{
    LineParser parser;
    Point pt;
    ASSERT_EQ(parser.ParseLine("m a=0.10,b=42i,c=7u,d=True,e=\"s\"", &pt), ParseStatus::Ok);
    ASSERT_EQ(pt.nfields, 5u);
    EXPECT_EQ(pt.fields[0].str.raw(), "0.10");
    EXPECT_EQ(pt.fields[1].str.raw(), "42i");
    EXPECT_EQ(pt.fields[2].str.raw(), "7u");
    EXPECT_EQ(pt.fields[3].str.raw(), "True");
    EXPECT_EQ(pt.fields[4].str.raw(), "s");
}

TEST(LineProtocol, ParserReuse)
{
    LineParser parser;
    Point pt;
    ASSERT_EQ(parser.ParseLine("a,x=1 v=1,w=2 7", &pt), ParseStatus::Ok);
    EXPECT_EQ(pt.ntags, 1u);
    EXPECT_EQ(pt.nfields, 2u);
    ASSERT_EQ(parser.ParseLine("bad", &pt), ParseStatus::Invalid);
    EXPECT_STRNE(parser.error().message, "");
    ASSERT_EQ(parser.ParseLine("b v=\"s\"", &pt), ParseStatus::Ok);
    EXPECT_EQ(pt.ntags, 0u);
    EXPECT_EQ(pt.nfields, 1u);
    EXPECT_FALSE(pt.has_time);
    EXPECT_EQ(parser.error().cls, ErrorClass::None);
}

/* ---- line scanning ---- */

namespace
{

std::vector<std::string> LinesAtOnce(const std::string &buf)
{
    std::vector<std::string> out;
    ForEachLine(buf.data(), buf.size(), [&](std::string_view l) { out.emplace_back(l); });
    return out;
}

std::vector<std::string> LinesInPieces(const std::string &buf, size_t piece)
{
    std::vector<std::string> out;
    LineScanner scanner;
    std::string pending;
    size_t pos = 0;
    while (pos < buf.size()) {
        size_t n = std::min(piece, buf.size() - pos);
        size_t off = 0;
        while (off < n) {
            size_t end = scanner.FindLineEnd(buf.data() + pos + off, n - off);
            if (end == LineScanner::npos) {
                pending.append(buf, pos + off, n - off);
                break;
            }
            pending.append(buf, pos + off, end - 1);
            out.push_back(pending);
            pending.clear();
            off += end;
        }
        pos += n;
    }
    if (!pending.empty())
        out.push_back(pending);
    return out;
}

} // namespace

TEST(LineScanner, SplitsAtNewlinesOutsideStrings)
{
    std::string buf = "a v=1\nb s=\"x\ny\" 5\n# c\n\nc,t=\"q v=1\r\nd v=\"a\\\"\nb\"\ne\\\nf v=1";
    std::vector<std::string> expect = {"a v=1",         "b s=\"x\ny\" 5",   "# c",       "",
                                       "c,t=\"q v=1\r", "d v=\"a\\\"\nb\"", "e\\\nf v=1"};
    EXPECT_EQ(LinesAtOnce(buf), expect);
    for (size_t piece : {1, 2, 3, 5, 7, 64})
        EXPECT_EQ(LinesInPieces(buf, piece), expect) << "piece " << piece;
}

TEST(LineScanner, ByteByByteEqualsWhole)
{
    std::string buf;
    for (int i = 0; i < 50; ++i)
        buf += "m,t=v" + std::to_string(i) + " a=1,s=\"x,y=z\n\\\"q\\\\\",b=t " +
               std::to_string(i) + "\n";
    buf += "tail s=\"unterminated\nstill";
    auto whole = LinesAtOnce(buf);
    EXPECT_EQ(whole.size(), 51u);
    EXPECT_EQ(LinesInPieces(buf, 1), whole);
    EXPECT_EQ(LinesInPieces(buf, 13), whole);
}

TEST(LineScanner, ResetForgetsState)
{
    LineScanner s;
    const char *open = "m s=\"abc";
    EXPECT_EQ(s.FindLineEnd(open, std::strlen(open)), LineScanner::npos);
    EXPECT_EQ(s.FindLineEnd("\n", 1), LineScanner::npos); /* inside the string */
    s.Reset();
    EXPECT_EQ(s.FindLineEnd("x\n", 2), 2u);
}

TEST(ForEachLine, CountsAndLastLineWithoutNewline)
{
    std::string buf = "a v=1\nb v=2";
    std::vector<std::string> lines;
    size_t n =
        ForEachLine(buf.data(), buf.size(), [&](std::string_view l) { lines.emplace_back(l); });
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(lines, (std::vector<std::string>{"a v=1", "b v=2"}));
    buf = "a v=1\n";
    lines.clear();
    EXPECT_EQ(
        ForEachLine(buf.data(), buf.size(), [&](std::string_view l) { lines.emplace_back(l); }),
        1u);
    EXPECT_EQ(ForEachLine("", 0, [&](std::string_view) {}), 0u);
}

TEST(ForEachLine, BadLineDoesNotAffectOthers)
{
    std::string buf = "good v=1\nbad v=\nworse\ngood2 v=2i\n";
    LineParser parser;
    int ok = 0, bad = 0;
    ForEachLine(buf.data(), buf.size(), [&](std::string_view l) {
        Point pt;
        auto st = parser.ParseLine(l, &pt);
        ok += st == ParseStatus::Ok;
        bad += st == ParseStatus::Invalid;
    });
    EXPECT_EQ(ok, 2);
    EXPECT_EQ(bad, 2);
}

TEST(ForEachLineUntil, StopsAfterTheLineThatSaysStopAndReturnsItsEnd)
{
    /* The worker flushes a batch in the middle of a record here: the rest must start with a
     * whole line, in plain and scanned buffers alike, and a '\n' in quotes is no end. */
    for (bool plain : {true, false}) {
        std::string buf = plain ? "a v=1\nb v=2\nc v=3" : "a v=1\nb s=\"x\ny\"\nc v=3";
        std::vector<std::string> seen;
        size_t used = ForEachLineUntil(
            buf.data(), buf.size(),
            [&](std::string_view l) {
                seen.emplace_back(l);
                return seen.size() < 2;
            },
            plain);
        ASSERT_EQ(seen.size(), 2u);
        EXPECT_EQ(buf.substr(used), "c v=3");
        /* Going on from there sees the rest, and the whole buffer is consumed. */
        size_t rest = ForEachLineUntil(
            buf.data() + used, buf.size() - used,
            [&](std::string_view l) {
                seen.emplace_back(l);
                return true;
            },
            plain);
        EXPECT_EQ(used + rest, buf.size());
        EXPECT_EQ(seen.size(), 3u);
        EXPECT_EQ(seen.back(), "c v=3");
    }
    /* Stopping at the last line consumes everything, with or without its '\n'. */
    std::string buf = "a v=1\n";
    EXPECT_EQ(ForEachLineUntil(buf.data(), buf.size(), [](std::string_view) { return false; }),
              buf.size());
    buf = "a v=1";
    EXPECT_EQ(ForEachLineUntil(
                  buf.data(), buf.size(), [](std::string_view) { return false; }, true),
              buf.size());
}

TEST(LineParser, TrimGivesBackScratchMemoryAndParsingGoesOn)
{
    std::string wide = "m ";
    for (int i = 0; i < 5000; i++)
        wide += (i ? "," : "") + std::string("f") + std::to_string(i) + "=1i";
    LineParser parser;
    Point pt;
    ASSERT_EQ(parser.ParseLine(wide, &pt), ParseStatus::Ok);
    EXPECT_EQ(pt.nfields, 5000u);
    parser.Trim();
    ASSERT_EQ(parser.ParseLine("m,t=1 a=1,b=2i 5", &pt), ParseStatus::Ok);
    EXPECT_EQ(pt.ntags, 1u);
    EXPECT_EQ(pt.nfields, 2u);
    ASSERT_EQ(parser.ParseLine(wide, &pt), ParseStatus::Ok);
    EXPECT_EQ(pt.nfields, 5000u);
}

/* ---- whole-buffer scanning ---- */

namespace
{

/* Line ends of the pieces of buf, found one line at a time or all at once. */
struct Ends {
    std::vector<size_t> last; /* per piece: offset in buf past its last line end, or npos */
    uint64_t lines = 0;
    size_t final_end; /* what a closing "\n" gives afterwards (state check) */
};

Ends ScanPieces(const std::string &buf, size_t cut, bool at_once)
{
    Ends e;
    LineScanner s;
    for (auto [from, to] : {std::pair<size_t, size_t>{0, cut}, {cut, buf.size()}}) {
        const char *p = buf.data() + from;
        size_t n = to - from, last = LineScanner::npos;
        if (at_once) {
            last = s.FindLastLineEnd(p, n, &e.lines);
        } else {
            size_t pos = 0;
            while (pos < n) {
                size_t end = s.FindLineEnd(p + pos, n - pos);
                if (end == LineScanner::npos)
                    break;
                pos += end;
                last = pos;
                e.lines++;
            }
        }
        e.last.push_back(last == LineScanner::npos ? last : from + last);
    }
    e.final_end = s.FindLineEnd("\n", 1);
    return e;
}

} // namespace

TEST(LineScanner, LastLineEndAgreesWithLineByLine)
{
    std::mt19937 rng(20261121);
    const char alphabet[] = {'a', '=', ',', ' ', '"', '\\', '\n', 'b', 'c', '1'};
    for (int round = 0; round < 20000; round++) {
        /* Now and then a long one: the one-pass count sums its per-byte counters every 4080 bytes.
         */
        std::string buf(round % 50 == 0 ? rng() % 9000 : rng() % 120, 'x');
        /* Mostly plain buffers, some with quotes and escapes. */
        size_t kinds = round % 3 == 0 ? sizeof(alphabet) : 4;
        for (char &c : buf) {
            c = alphabet[rng() % kinds];
            if (kinds == 4 && rng() % 8 == 0)
                c = '\n';
        }
        size_t cut = buf.empty() ? 0 : rng() % (buf.size() + 1);
        Ends a = ScanPieces(buf, cut, false), b = ScanPieces(buf, cut, true);
        ASSERT_EQ(a.last, b.last) << buf << " cut " << cut;
        ASSERT_EQ(a.lines, b.lines) << buf << " cut " << cut;
        ASSERT_EQ(a.final_end, b.final_end) << buf << " cut " << cut;
    }
}

/* Nothing but line ends, far past the point where a byte's counter would wrap. */
TEST(LineScanner, CountsEveryLineOfALongBuffer)
{
    for (size_t size : {1, 15, 16, 4079, 4080, 4081, 70000}) {
        std::string buf(size, '\n');
        LineScanner scanner;
        uint64_t lines = 0;
        EXPECT_EQ(scanner.FindLastLineEnd(buf.data(), buf.size(), &lines), size);
        EXPECT_EQ(lines, size);
    }
}

TEST(IsPlain, FindsEveryByteThatIsNotPlain)
{
    EXPECT_TRUE(IsPlain("", 0));
    for (size_t len : {1, 15, 16, 17, 33, 40}) {
        std::string buf(len, 'a');
        EXPECT_TRUE(IsPlain(buf.data(), buf.size()));
        for (size_t at = 0; at < len; at++) {
            for (char bad : {'\0', '"', '\\', '\x80', '\xff', '\xc3'}) {
                std::string b = buf;
                b[at] = bad;
                EXPECT_FALSE(IsPlain(b.data(), b.size())) << "len " << len << " at " << at;
            }
        }
    }
}

TEST(ForEachLine, PlainBuffersSplitAsTheScannerDoes)
{
    std::mt19937 rng(7);
    for (int round = 0; round < 2000; round++) {
        std::string buf(rng() % 80, 'a');
        for (char &c : buf)
            c = rng() % 6 == 0 ? '\n' : static_cast<char>('a' + rng() % 3);
        ASSERT_TRUE(IsPlain(buf.data(), buf.size()));
        std::vector<std::string> scanned, plain;
        size_t n1 = ForEachLine(buf.data(), buf.size(),
                                [&](std::string_view l) { scanned.emplace_back(l); });
        size_t n2 = ForEachLine(
            buf.data(), buf.size(), [&](std::string_view l) { plain.emplace_back(l); }, true);
        ASSERT_EQ(n1, n2) << buf;
        ASSERT_EQ(scanned, plain) << buf;
    }
}

/* The plain hint only skips checks: every plain line parses exactly as without it. */
TEST(LineProtocol, PlainHintGivesTheSameResult)
{
    for (const char *line :
         {"cpu,host=a,cpu=cpu0 usage_user=65.05015951482568,usage_nice=0 1704067200275413000",
          "m v=1i", "m v=1,v=2", "m,t=a,t=b v=1", "m v=", "m", "", "  # comment", "m v=t 12",
          "m,t=a v=1e400", "m v=-1u", "m v=1 1 2", "m=1 v=2\r"}) {
        ASSERT_TRUE(IsPlain(line, std::strlen(line))) << line;
        LineParser a, b;
        Point pa, pb;
        ParseStatus sa = a.ParseLine(line, &pa), sb = b.ParseLine(line, &pb, true);
        ASSERT_EQ(sa, sb) << line;
        EXPECT_STREQ(a.error().message, b.error().message) << line;
        if (sa != ParseStatus::Ok)
            continue;
        ASSERT_EQ(pa.nfields, pb.nfields) << line;
        ASSERT_EQ(pa.ntags, pb.ntags) << line;
        EXPECT_EQ(pa.time_ns, pb.time_ns) << line;
        for (uint32_t i = 0; i < pa.nfields; i++) {
            EXPECT_EQ(pa.fields[i].type, pb.fields[i].type) << line;
            EXPECT_EQ(pa.fields[i].str.raw(), pb.fields[i].str.raw()) << line;
        }
    }
}

/* Timestamps and keys of every length: the fast path's word-at-a-time scans must agree. */
TEST(LineProtocol, FastPathAgreesWithFullParserOnTimestampsAndKeys)
{
    std::vector<std::string> stamps = {"0",
                                       "-0",
                                       "7",
                                       "-7",
                                       "12345678",
                                       "123456789",
                                       "1234567890123456",
                                       "12345678901234567",
                                       "1700000000000000000",
                                       "9223372036854775807",
                                       "-9223372036854775807",
                                       "-9223372036854775808",
                                       "9223372036854775808",
                                       "-9223372036854775809",
                                       "99999999999999999999",
                                       "00000000000000000001",
                                       "0000000000000000000000001",
                                       "1e5",
                                       "12a",
                                       "-",
                                       "--1"};
    std::vector<std::string> keys;
    for (size_t len = 1; len <= 40; len++)
        keys.push_back(std::string(len, 'k'));
    for (const std::string &ts : stamps) {
        for (const std::string &key : keys) {
            for (const std::string &line : {"m," + key + "=" + key + " " + key + "=1 " + ts,
                                            "m " + key + "=1i," + key + "x=2 " + ts}) {
                ParserOptions full_options;
                full_options.fast_path = false;
                LineParser full(full_options), fast;
                Point a, b;
                ParseStatus sa = full.ParseLine(line, &a), sb = fast.ParseLine(line, &b);
                ASSERT_EQ(sa, sb) << line;
                if (sa != ParseStatus::Ok) {
                    EXPECT_STREQ(full.error().message, fast.error().message) << line;
                    continue;
                }
                EXPECT_EQ(a.has_time, b.has_time) << line;
                EXPECT_EQ(a.time_ns, b.time_ns) << line;
                ASSERT_EQ(a.ntags, b.ntags) << line;
                ASSERT_EQ(a.nfields, b.nfields) << line;
                for (uint32_t i = 0; i < a.ntags; i++) {
                    EXPECT_EQ(a.tags[i].key.raw(), b.tags[i].key.raw()) << line;
                    EXPECT_EQ(a.tags[i].value.raw(), b.tags[i].value.raw()) << line;
                }
                for (uint32_t i = 0; i < a.nfields; i++)
                    EXPECT_EQ(a.fields[i].key.raw(), b.fields[i].key.raw()) << line;
            }
        }
    }
}

/* Floats as metrics print them: the fast path's own digit reading must give fast_float's bits. */
TEST(LineProtocol, FastPathFloatsAreBitForBitFastFloats)
{
    std::mt19937_64 rng(4242);
    std::vector<std::string> values = {"0",
                                       "-0",
                                       "0.0",
                                       "-0.0",
                                       "1",
                                       "9007199254740992",
                                       "9007199254740993",
                                       "9007199254740993.5",
                                       "18446744073709551615",
                                       "9999999999999999999",
                                       "99999999999999999999",
                                       "1.0000000000000000001",
                                       "0.1000000000000000055511151231257827",
                                       "123456789012345678.9",
                                       "1234567890123456789.0",
                                       "00000000000000000001.5",
                                       "2.2250738585072014",
                                       "4.9406564584124654",
                                       "1.7976931348623157",
                                       "0.30000000000000004",
                                       "0.00000000000000000001",
                                       "100000000000000000000"};
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        double d;
        switch (i % 4) {
            case 0: /* percentages, as Telegraf's cpu input */
                d = std::uniform_real_distribution<double>(0, 100)(rng);
                break;
            case 1: /* any magnitude */
                d = std::ldexp(std::uniform_real_distribution<double>(0.5, 1)(rng),
                               static_cast<int>(rng() % 140) - 70);
                break;
            case 2: /* integers near 2^53 and 2^63 */
                d = static_cast<double>((rng() % 2 ? (1ULL << 53) : (1ULL << 63)) - rng() % 4096);
                break;
            default: /* random bit patterns */
            {
                uint64_t bits = rng();
                std::memcpy(&d, &bits, sizeof(d));
                if (!std::isfinite(d))
                    d = 1.5;
            }
        }
        if (rng() % 2)
            d = -d;
        int style = static_cast<int>(rng() % 3);
        if (style == 0) {
            std::snprintf(buf, sizeof(buf), "%.*g", 1 + static_cast<int>(rng() % 17), d);
        } else if (style == 1) {
            std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(rng() % 19),
                          std::fmod(d, 1e6));
        } else {
            /* random digits with a point somewhere */
            int n = 1 + static_cast<int>(rng() % 21), dot = static_cast<int>(rng() % (n + 1));
            std::string s;
            for (int k = 0; k < n; k++) {
                if (k == dot && k > 0)
                    s += '.';
                s += static_cast<char>('0' + rng() % 10);
            }
            std::snprintf(buf, sizeof(buf), "%s", s.c_str());
        }
        values.emplace_back(buf);
    }
    ParserOptions full_options;
    full_options.fast_path = false;
    LineParser full(full_options), fast;
    for (const std::string &v : values) {
        for (const char *tail : {"", ",w=1", " 1700000000"}) {
            std::string line = "m,t=a v=" + v + tail;
            Point a, b;
            ParseStatus sa = full.ParseLine(line, &a), sb = fast.ParseLine(line, &b, true);
            ASSERT_EQ(sa, sb) << line;
            if (sa != ParseStatus::Ok)
                continue;
            ASSERT_EQ(a.fields[0].type, b.fields[0].type) << line;
            if (a.fields[0].type == FieldType::Float) {
                ASSERT_EQ(std::memcmp(&a.fields[0].value.f, &b.fields[0].value.f, sizeof(double)),
                          0)
                    << line << ": " << a.fields[0].value.f << " vs " << b.fields[0].value.f;
            }
            ASSERT_EQ(a.fields[0].str.raw(), b.fields[0].str.raw()) << line;
        }
    }
}

/*
 * MatchShape against ParseLine: a line that matches an earlier line's layout must parse to
 * that layout with the values MatchShape read.  Lines are made from a few layouts, then
 * values, spacing and single bytes are varied at random.
 */
namespace
{

/* The parse of `line` as MatchShape describes it; false when they disagree. */
::testing::AssertionResult SameAsParseWith(const LineShape &shape, const ShapeValues &sv,
                                           const std::string &line, const ParserOptions &options)
{
    LineParser parser(options);
    Point pt;
    if (parser.ParseLine(line, &pt, true) != ParseStatus::Ok)
        return ::testing::AssertionFailure()
               << "matched but does not parse: " << parser.error().message;
    if (pt.measurement.raw() != shape.measurement.raw() || pt.ntags != shape.ntags ||
        pt.nfields != shape.nfields)
        return ::testing::AssertionFailure() << "other measurement or key count";
    for (uint32_t i = 0; i < pt.ntags; i++)
        if (pt.tags[i].key.raw() != shape.tag_keys[i].raw() ||
            pt.tags[i].value.raw() != sv.tag_values[i].raw())
            return ::testing::AssertionFailure() << "tag " << i << " differs";
    for (uint32_t i = 0; i < pt.nfields; i++) {
        const Field &f = pt.fields[i];
        if (f.key.raw() != shape.field_keys[i].raw() || f.type != shape.field_types[i])
            return ::testing::AssertionFailure() << "field " << i << " key or type differs";
        bool same = f.type == FieldType::Float
                        ? std::memcmp(&f.value.f, &sv.fields[i].f, sizeof(double)) == 0
                    : f.type == FieldType::Integer  ? f.value.i == sv.fields[i].i
                    : f.type == FieldType::Unsigned ? f.value.u == sv.fields[i].u
                                                    : f.value.b == sv.fields[i].b;
        if (!same)
            return ::testing::AssertionFailure() << "field " << i << " value differs";
    }
    if (pt.has_time != sv.has_time || (pt.has_time && pt.time_ns != sv.time_ns))
        return ::testing::AssertionFailure() << "time differs";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult SameAsParse(const LineShape &shape, const ShapeValues &sv,
                                       const std::string &line, const ParserOptions &options)
{
    /* Both the single pass and the full parser must agree with the match. */
    for (bool fast_path : {true, false}) {
        ParserOptions o = options;
        o.fast_path = fast_path;
        ::testing::AssertionResult r = SameAsParseWith(shape, sv, line, o);
        if (!r)
            return r << (fast_path ? " (single pass)" : " (full parser)");
    }
    return ::testing::AssertionSuccess();
}

bool IsBoolSpelling(const std::string &v)
{
    for (const char *b : {"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})
        if (v == b)
            return true;
    return false;
}

/*
 * The forms a shape reads itself for a field whose value in the layout was `old`: a
 * boolean spelling for a boolean; -?D+i within int64; D+u within uint64; -?D+[.D+] with at
 * most 19 significant digits.
 */
bool IsSimpleValue(const std::string &v, const std::string &old)
{
    if (IsBoolSpelling(old))
        return IsBoolSpelling(v);
    const char suffix = old.back() == 'i' || old.back() == 'u' ? old.back() : '\0';
    size_t i = v.size() > 0 && v[0] == '-' && suffix != 'u' ? 1 : 0, start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
        i++;
    size_t digits = i - start;
    if (digits == 0)
        return false;
    if (suffix != '\0') {
        if (i + 1 != v.size() || v[i] != suffix)
            return false;
        errno = 0;
        if (suffix == 'i')
            std::strtoll(v.c_str(), nullptr, 10);
        else
            std::strtoull(v.c_str(), nullptr, 10);
        return errno == 0;
    }
    /* leading zeros are not significant */
    size_t zeros = 0;
    while (start + zeros < i && v[start + zeros] == '0')
        zeros++;
    if (i < v.size() && v[i] == '.') {
        size_t f = ++i;
        if (zeros == digits)
            while (i < v.size() && v[i] == '0')
                i++, zeros++;
        while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i])))
            i++;
        if (i == f)
            return false;
        digits += i - f;
    }
    return i == v.size() && digits - zeros <= 19;
}

} // namespace

TEST(LineProtocol, ShapeMatchAgreesWithParseLine)
{
    const std::vector<std::string> layouts = {
        "cpu,cpu=cpu0,host=server01 usage_user=1.5,usage_system=2,usage_idle=96.25 1700000000",
        "mem,host=h used=12i,free=-3i,used_percent=41.5",
        "disk total=1i 5",
        "x,a=b y=1",
        "system,host=web-1,region=eu\tw load1=0.5,n_users=3i,uptime=12345i 1700000000",
        "net,host=h,interface=eth0 bytes_recv=12u,up=true,err_in=0i,drop=f 1700000000",
    };
    const std::vector<std::string> values = {
        "0",
        "-0",
        "1",
        "-1",
        "1.5",
        "-2.25",
        "96.123456789012",
        "1234567890123456789",
        "12345678901234567890",
        "1e5",
        "1E-3",
        "1.",
        ".5",
        "-.5",
        "+1",
        "1i",
        "-1i",
        "9223372036854775807i",
        "9223372036854775808i",
        "1u",
        "t",
        "false",
        "\"s\"",
        "",
        "-",
        "nan",
        "inf",
        "0x10",
        "1.5.5",
        "1i5",
        "00012",
        "-0i",
        "0u",
        "-1u",
        "18446744073709551615u",
        "18446744073709551616u",
        "T",
        "FALSE",
        "tru",
        "yes",
        "-t",
        "tRUE",
        "tRue",
        "fALSE",
        "True",
        "F",
        "0.000000000000000000001234",
        "0000000000000000000001.5",
        "1" + std::string(25, '0'),
    };
    const std::vector<std::string> stamps = {"",
                                             " 0",
                                             " -1",
                                             " 1700000000000000000",
                                             " 9223372036854775807",
                                             " 99999999999999999999",
                                             " 1x",
                                             "  7",
                                             " 7 ",
                                             " 7  ",
                                             " -",
                                             " 1.5"};
    const std::string noise = ", =i.-09at\t\r\n#";
    std::mt19937_64 rng(777);
    for (Precision precision : {Precision::Nanoseconds, Precision::Seconds}) {
        ParserOptions options;
        options.precision = precision;
        for (const std::string &layout : layouts) {
            LineParser learner(options);
            Point learned;
            ASSERT_EQ(learner.ParseLine(layout, &learned, true), ParseStatus::Ok) << layout;
            LineShape shape;
            ASSERT_TRUE(LearnShape(learned, &shape)) << layout;
            LineParser matcher(options);
            ShapeValues sv;
            ASSERT_TRUE(matcher.MatchShape(shape, layout, &sv)) << layout;
            ASSERT_TRUE(SameAsParse(shape, sv, layout, options)) << layout;

            int matched = 0, clean = 0;
            for (int round = 0; round < 4000; round++) {
                /* the layout with other values: fields' numbers, tag values, time */
                std::string line;
                bool simple = true;
                size_t i = 0;
                const size_t space = layout.find(' ');
                line.append(layout, 0, space + 1);
                for (i = space + 1; i < layout.size() && layout[i] != ' ';) {
                    size_t eq = layout.find('=', i);
                    size_t end = layout.find_first_of(", ", eq);
                    if (end == std::string::npos)
                        end = layout.size();
                    line.append(layout, i, eq + 1 - i);
                    std::string old = layout.substr(eq + 1, end - eq - 1);
                    if (rng() % 3 == 0) {
                        std::string v = values[rng() % values.size()];
                        simple &= IsSimpleValue(v, old);
                        line += v;
                    } else {
                        line += old;
                    }
                    if (end < layout.size())
                        line += layout[end];
                    i = end + 1;
                    if (end < layout.size() && layout[end] == ' ')
                        break;
                }
                bool had_time = layout.find(' ', space + 1) != std::string::npos;
                if (had_time && line.back() == ' ')
                    line.pop_back();
                if (rng() % 4 == 0) {
                    const std::string &ts = stamps[rng() % stamps.size()];
                    line += ts;
                    simple &= ts.empty() || ts == " 0" || ts == " -1" || ts == " 7 " ||
                              ts == " 7  " ||
                              (ts == " 1700000000000000000" && precision == Precision::Nanoseconds);
                } else if (had_time) {
                    line += layout.substr(layout.rfind(' '));
                }
                /* then, sometimes, one byte changed, inserted or removed */
                if (rng() % 3 == 0 && !line.empty()) {
                    size_t at = rng() % line.size();
                    char c = noise[rng() % noise.size()];
                    switch (rng() % 3) {
                        case 0:
                            line[at] = c;
                            break;
                        case 1:
                            line.insert(line.begin() + at, c);
                            break;
                        default:
                            line.erase(at, 1);
                    }
                    simple = false;
                }
                if (!IsPlain(line.data(), line.size()))
                    continue;
                bool m = matcher.MatchShape(shape, line, &sv);
                if (m) {
                    matched++;
                    ASSERT_TRUE(SameAsParse(shape, sv, line, options)) << line;
                }
                if (simple) {
                    clean++;
                    EXPECT_TRUE(m) << "the layout with plain values must match: " << line;
                }
            }
            EXPECT_GT(clean, 300) << layout;
            EXPECT_GE(matched, clean) << layout;
        }
    }
}

/* Lines that look like the layout but are not it: a matcher must turn each of them away. */
TEST(LineProtocol, ShapeMatchRefusesOtherLayouts)
{
    const std::string layout = "cpu,host=a,cpu=cpu0 user=1.5,idle=2i 1700000000";
    LineParser parser;
    Point pt;
    ASSERT_EQ(parser.ParseLine(layout, &pt, true), ParseStatus::Ok);
    LineShape shape;
    ASSERT_TRUE(LearnShape(pt, &shape));
    ShapeValues sv;
    EXPECT_TRUE(parser.MatchShape(shape, "cpu,host=b,cpu=cpu1 user=-0.25,idle=-7i", &sv));
    EXPECT_EQ(sv.tag_values[0].raw(), "b");
    EXPECT_EQ(sv.tag_values[1].raw(), "cpu1");
    EXPECT_EQ(sv.fields[0].f, -0.25);
    EXPECT_EQ(sv.fields[1].i, -7);
    EXPECT_FALSE(sv.has_time);
    for (const char *other : {
             "cpus,host=a,cpu=cpu0 user=1.5,idle=2i",             /* longer measurement */
             "cpu,host=a user=1.5,idle=2i",                       /* a tag fewer */
             "cpu,host=a,cpu=cpu0,x=y user=1.5,idle=2i",          /* a tag more */
             "cpu,cpu=cpu0,host=a user=1.5,idle=2i",              /* tags in another order */
             "cpu,host=a,cpu=cpu0 user=1.5",                      /* a field fewer */
             "cpu,host=a,cpu=cpu0 user=1.5,idle=2i,x=1",          /* a field more */
             "cpu,host=a,cpu=cpu0 user=1i,idle=2i",               /* another type */
             "cpu,host=a,cpu=cpu0 user=1.5,idle=2",               /* another type */
             "cpu,host=a,cpu=cpu0 user=true,idle=2i",             /* another type */
             "cpu,host=a,cpu=cpu0 user=1.5,idle=2i 1700000000\r", /* left to ParseLine */
             "cpu,host=a=b,cpu=cpu0 user=1.5,idle=2i",            /* '=' in a tag value */
             "cpu,host=,cpu=cpu0 user=1.5,idle=2i",               /* empty tag value */
             "cpu,host=a,cpu=cpu0 user=1.5,idle=2i 17e8",         /* bad time */
             "cpu,host=a,cpu=cpu0 user=1.5,idle=2i 1 2",          /* text after the time */
         })
        EXPECT_FALSE(parser.MatchShape(shape, other, &sv)) << other;

    ParserOptions short_lines;
    short_lines.max_line_length = 20;
    LineParser limited(short_lines);
    EXPECT_FALSE(limited.MatchShape(shape, "cpu,host=b,cpu=cpu1 user=-0.25,idle=-7i", &sv));

    /* Unsigned and boolean fields have a layout; names with escapes and string fields none. */
    ASSERT_EQ(parser.ParseLine("net,host=a recv=5u,up=T", &pt), ParseStatus::Ok);
    ASSERT_TRUE(LearnShape(pt, &shape));
    EXPECT_TRUE(parser.MatchShape(shape, "net,host=b recv=18446744073709551615u,up=false", &sv));
    EXPECT_EQ(sv.fields[0].u, UINT64_MAX);
    EXPECT_FALSE(sv.fields[1].b);
    for (const char *other :
         {"net,host=b recv=-1u,up=t", "net,host=b recv=1i,up=t", "net,host=b recv=1u,up=1",
          "net,host=b recv=1u,up=yes", "net,host=b recv=18446744073709551616u,up=t",
          "net,host=b recv=1u,up=tRUE", "net,host=b recv=1u,up=fALSE", "net,host=b recv=+1u,up=t"})
        EXPECT_FALSE(parser.MatchShape(shape, other, &sv)) << other;
    /*
     * A layout learned from a line with a string and a duplicate key (the last value wins,
     * at the key's first position) serves a plain line with those keys in that order.
     */
    ASSERT_EQ(parser.ParseLine("m a=\"s\",b=1,a=2", &pt), ParseStatus::Ok);
    ASSERT_TRUE(LearnShape(pt, &shape));
    ASSERT_TRUE(parser.MatchShape(shape, "m a=5,b=6", &sv));
    EXPECT_TRUE(SameAsParse(shape, sv, "m a=5,b=6", ParserOptions{}));
    EXPECT_EQ(sv.fields[0].f, 5.0);
    EXPECT_EQ(sv.fields[1].f, 6.0);
    EXPECT_FALSE(parser.MatchShape(shape, "m b=6,a=5", &sv));

    /* Keys with a bare ',' that only the full parser of a line with quotes can give. */
    ASSERT_EQ(parser.ParseLine("m x=\"x\"\\,b,c=1,x=2", &pt), ParseStatus::Ok);
    EXPECT_FALSE(LearnShape(pt, &shape));
    for (const char *line : {"c\\ pu v=1", "cpu v=\"s\"", "cpu,k\\=1=a v=1", "cpu v\\,w=1"}) {
        ASSERT_EQ(parser.ParseLine(line, &pt), ParseStatus::Ok) << line;
        EXPECT_FALSE(LearnShape(pt, &shape)) << line;
    }
}
