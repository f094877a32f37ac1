/*
 * chunk_test.cpp — the chunk format (chunk.hpp): records, and cutting a chunk at the
 * position a worker got to, as the listener does when it sends what a worker that exited
 * had not finished to another worker.
 */
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/chunk.hpp"

using namespace influx;

namespace
{

std::string Chunk(const std::vector<std::string> &records)
{
    std::string c;
    for (const auto &r : records) {
        uint32_t n = static_cast<uint32_t>(r.size());
        c.append(reinterpret_cast<const char *>(&n), kRecordHeader);
        c += r;
    }
    return c;
}

std::vector<std::string> Records(const std::string &chunk)
{
    std::vector<std::string> out;
    EXPECT_TRUE(ForEachRecord(chunk.data(), chunk.size(),
                              [&](const RecordView &r) { out.emplace_back(r.lines, r.size); }));
    return out;
}

std::vector<std::string> Cut(std::string chunk, size_t offset)
{
    size_t n = CutChunk(chunk.data(), chunk.size(), offset);
    chunk.resize(n);
    return Records(chunk);
}

} // namespace

TEST(CutChunk, AtZeroKeepsEverything)
{
    std::vector<std::string> recs = {"a v=1\nb v=2\n", "c v=3\n"};
    EXPECT_EQ(Cut(Chunk(recs), 0), recs);
}

TEST(CutChunk, InsideARecordKeepsTheRestOfItAndTheRecordsAfter)
{
    std::string c = Chunk({"a v=1\nb v=2\n", "c v=3\n"});
    size_t b_line = kRecordHeader + 6; /* start of "b v=2" */
    EXPECT_EQ(Cut(c, b_line), (std::vector<std::string>{"b v=2\n", "c v=3\n"}));
}

TEST(CutChunk, AtARecordHeaderKeepsThatRecordWhole)
{
    std::string c = Chunk({"a v=1\n", "b v=2\nc v=3\n", "d v=4"});
    size_t second = kRecordHeader + 6;
    EXPECT_EQ(Cut(c, second), (std::vector<std::string>{"b v=2\nc v=3\n", "d v=4"}));
    size_t third = second + kRecordHeader + 12;
    EXPECT_EQ(Cut(c, third), (std::vector<std::string>{"d v=4"}));
}

TEST(CutChunk, AtTheEndLeavesNothing)
{
    std::string c = Chunk({"a v=1\n", "b v=2\n"});
    EXPECT_TRUE(Cut(c, c.size()).empty());
}

TEST(CutChunk, EveryLineStartGivesExactlyTheLinesAfterIt)
{
    /* Whatever line a worker stopped before, the cut chunk holds the lines from it on,
     * once each: the listener must neither lose nor repeat a line. */
    std::vector<std::string> recs = {"m1 v=1\nm2 v=2\n", "m3 s=\"x\ny\"\nm4 v=4\n", "m5 v=5"};
    std::string c = Chunk(recs);
    std::vector<std::string> lines = {"m1 v=1\n", "m2 v=2\n", "m3 s=\"x\ny\"\n", "m4 v=4\n",
                                      "m5 v=5"};
    /* Where each line starts in the chunk: after its record's header, line after line. */
    std::vector<size_t> starts;
    size_t pos = 0, k = 0;
    for (const auto &r : recs) {
        size_t at = pos + kRecordHeader;
        for (size_t used = 0; used < r.size(); k++) {
            starts.push_back(at + used);
            used += lines[k].size();
        }
        pos += kRecordHeader + r.size();
    }
    ASSERT_EQ(starts.size(), lines.size());
    for (size_t k = 0; k < starts.size(); k++) {
        std::string joined;
        for (const auto &r : Cut(c, starts[k]))
            joined += r;
        std::string expected;
        for (size_t j = k; j < lines.size(); j++)
            expected += lines[j];
        EXPECT_EQ(joined, expected) << "cut at line " << k;
    }
}

TEST(CutChunk, ACorruptTailIsDropped)
{
    std::string c = Chunk({"a v=1\n"});
    c += "\x20\x00\x00\x00short";
    EXPECT_EQ(Cut(c, 0), (std::vector<std::string>{"a v=1\n"}));
}

namespace
{

/* A chunk of request records: (tag, flags, lines) each. */
struct Req {
    uint64_t tag;
    uint32_t flags;
    std::string lines;
};

std::string RequestChunk(const std::vector<Req> &records)
{
    std::string c;
    for (const auto &r : records) {
        RecordMeta meta = {};
        meta.tag = r.tag;
        meta.flags = r.flags;
        std::string buf(RecordBytes(true, r.lines.size()), '\0');
        WriteRecord(buf.data(), &meta, r.lines.data(), r.lines.size());
        c += buf;
    }
    return c;
}

std::vector<Req> RequestRecords(const std::string &chunk)
{
    std::vector<Req> out;
    EXPECT_TRUE(ForEachRecord(chunk.data(), chunk.size(), [&](const RecordView &r) {
        EXPECT_TRUE(r.request);
        out.push_back({r.meta.tag, r.meta.flags, std::string(r.lines, r.size)});
    }));
    return out;
}

} // namespace

TEST(RequestRecords, CarryTheirMetaThroughACut)
{
    std::string c = RequestChunk({{7, kMetaHead, "a v=1\nb v=2\n"}, {8, kMetaHead, ""}});
    auto all = RequestRecords(c);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].tag, 7u);
    EXPECT_EQ(all[0].lines, "a v=1\nb v=2\n");
    EXPECT_EQ(all[1].tag, 8u);
    EXPECT_EQ(all[1].lines, "");

    /* At the first record's start: both whole, heads included (an empty one too). */
    std::string whole = c;
    whole.resize(CutChunk(whole.data(), whole.size(), 0));
    auto w = RequestRecords(whole);
    ASSERT_EQ(w.size(), 2u);
    EXPECT_EQ(w[0].flags, kMetaHead);
    EXPECT_EQ(w[1].flags, kMetaHead);

    /* Inside the first record, at "b v=2": its head was done, its tag stays. */
    size_t b_line = kRecordHeader + sizeof(RecordMeta) + 6;
    std::string cut = c;
    cut.resize(CutChunk(cut.data(), cut.size(), b_line));
    auto r = RequestRecords(cut);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].tag, 7u);
    EXPECT_EQ(r[0].flags, 0u);
    EXPECT_EQ(r[0].lines, "b v=2\n");
    EXPECT_EQ(r[1].flags, kMetaHead);

    /* At the second record's length word: the empty request keeps its head. */
    size_t second = RecordBytes(true, 12);
    std::string tail = c;
    tail.resize(CutChunk(tail.data(), tail.size(), second));
    auto t = RequestRecords(tail);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].tag, 8u);
    EXPECT_EQ(t[0].flags, kMetaHead);
}

TEST(RequestRecords, AShortMetaIsCorrupt)
{
    std::string c;
    uint32_t word = kRecordRequest | 4;
    c.append(reinterpret_cast<const char *>(&word), kRecordHeader);
    c += "abcd";
    EXPECT_FALSE(ForEachRecord(c.data(), c.size(), [](const RecordView &) {}));
}

TEST(PlainRecords, KeepThePrecisionTheyWereReceivedUnderThroughACut)
{
    /* Seconds, then none (the worker's setting), then hours. */
    const std::vector<std::pair<std::string, uint8_t>> records = {
        {"a v=1 1\nb v=2 2\n", 3}, {"c v=3\n", kNoPrecision}, {"d v=4 4\n", 5}};
    std::string c;
    for (const auto &[lines, precision] : records) {
        std::string buf(RecordBytes(false, lines.size()), '\0');
        WriteRecord(buf.data(), nullptr, lines.data(), lines.size(), precision);
        c += buf;
    }
    auto read = [](const std::string &chunk) {
        std::vector<std::pair<std::string, uint8_t>> out;
        EXPECT_TRUE(ForEachRecord(chunk.data(), chunk.size(), [&](const RecordView &r) {
            EXPECT_FALSE(r.request);
            out.emplace_back(std::string(r.lines, r.size), r.precision);
        }));
        return out;
    };
    EXPECT_EQ(read(c), records);
    /* Cut at "b v=2": the first record keeps its precision for the rest of its lines. */
    std::string cut = c;
    cut.resize(CutChunk(cut.data(), cut.size(), kRecordHeader + 8));
    EXPECT_EQ(read(cut), (std::vector<std::pair<std::string, uint8_t>>{
                             {"b v=2 2\n", 3}, {"c v=3\n", kNoPrecision}, {"d v=4 4\n", 5}}));
    /* A length word without a precision (as before it was stamped) reads as none. */
    std::string old;
    uint32_t word = 6;
    old.append(reinterpret_cast<const char *>(&word), kRecordHeader);
    old += "e v=5\n";
    EXPECT_EQ(read(old), (std::vector<std::pair<std::string, uint8_t>>{{"e v=5\n", kNoPrecision}}));
}
