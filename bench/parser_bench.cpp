/*
 * parser_bench.cpp — Google Benchmark of the line-protocol parser (src/protocol/line_protocol.cpp).
 *
 * Datasets are shaped like what Telegraf sends:
 *   cpu    — 3 tags, the 10 float fields of inputs.cpu, a nanosecond timestamp;
 *   mixed  — mem/disk/net/system/procstat-like lines with integers, unsigned, booleans and
 *            strings, a few with escapes;
 * 4096 lines each, varied values so that no branch predictor learns a single line.
 *
 * Benchmarks:
 *   BM_ParseLine/<set>  — ParseLine over lines already split (what an insertion worker does);
 *   BM_ScanAndParse/<set> — IsPlain and ForEachLine over the whole buffer, then ParseLine
 *                           (the listener's scan plus the worker's parse);
 *   BM_ScanAndMatch/<set> — as BM_ScanAndParse, but each plain line is first read against
 *                           the layout of the last line of its measurement (MatchShape),
 *                           as a worker does once it knows the table; other lines are
 *                           parsed (and give their measurement its layout);
 *   BM_Scan/<set>        — line splitting alone.
 * Each reports bytes/s (SetBytesProcessed) and lines/s (SetItemsProcessed).
 *
 * Run: make parser-bench   (or ./bench/parser_bench --benchmark_repetitions=5)
 */
#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "protocol/line_protocol.hpp"

namespace
{

constexpr int kLines = 4096;

std::string CpuLines()
{
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> pct(0.0, 100.0);
    const char *fields[] = {"usage_user",   "usage_system",    "usage_idle",    "usage_nice",
                            "usage_iowait", "usage_irq",       "usage_softirq", "usage_steal",
                            "usage_guest",  "usage_guest_nice"};
    std::string out;
    char num[64];
    int64_t ts = 1700000000000000000;
    for (int i = 0; i < kLines; ++i) {
        out += "cpu,cpu=cpu" + std::to_string(i % 16) + ",host=web" + std::to_string(i % 50) +
               ".example.com,region=eu-west-" + std::to_string(1 + i % 3) + " ";
        for (int f = 0; f < 10; ++f) {
            std::snprintf(num, sizeof(num), "%.*f", 1 + static_cast<int>(rng() % 14), pct(rng));
            out += fields[f];
            out += '=';
            out += num;
            out += f < 9 ? ',' : ' ';
        }
        out += std::to_string(ts + i * 10000000LL) + "\n";
    }
    return out;
}

std::string MixedLines()
{
    std::mt19937_64 rng(7);
    std::string out;
    int64_t ts = 1700000000000000000;
    for (int i = 0; i < kLines; ++i) {
        const std::string t = " " + std::to_string(ts + i * 10000000LL) + "\n";
        const std::string host = "host=db" + std::to_string(i % 20);
        switch (i % 5) {
            case 0:
                out += "mem," + host + " total=" + std::to_string(rng() % (1ULL << 36)) +
                       "i,available=" + std::to_string(rng() % (1ULL << 35)) + "i,used_percent=" +
                       std::to_string(static_cast<double>(rng() % 10000) / 100.0) +
                       ",swap_free=" + std::to_string(rng()) + "u" + t;
                break;
            case 1:
                out += "disk," + host + ",device=nvme0n1p" + std::to_string(i % 4) +
                       ",fstype=ext4,mode=rw,path=/var/lib/postgresql free=" +
                       std::to_string(rng() % (1ULL << 40)) +
                       "i,used=" + std::to_string(rng() % (1ULL << 40)) +
                       "i,inodes_free=" + std::to_string(rng() % 100000000) + "u,used_percent=" +
                       std::to_string(static_cast<double>(rng() % 10000) / 100.0) + t;
                break;
            case 2:
                out += "net," + host + ",interface=eth" + std::to_string(i % 2) +
                       " bytes_recv=" + std::to_string(rng() % (1ULL << 50)) +
                       "u,bytes_sent=" + std::to_string(rng() % (1ULL << 50)) +
                       "u,err_in=0i,err_out=" + std::to_string(rng() % 3) +
                       "i,up=" + (rng() % 2 ? "true" : "false") + t;
                break;
            case 3:
                out += "system," + host +
                       " load1=" + std::to_string(static_cast<double>(rng() % 800) / 100.0) +
                       ",n_cpus=16i,uptime=" + std::to_string(rng() % 10000000) +
                       "i,uptime_format=\"" + std::to_string(rng() % 100) + " days, 3:07\"" + t;
                break;
            default:
                out += "procstat," + host +
                       ",process_name=postgres,user=postgres pid=" + std::to_string(rng() % 65536) +
                       "i,cmdline=\"postgres: writer \\\"main\\\" -D /var/lib\"" +
                       ",running=t,cpu_usage=" +
                       std::to_string(static_cast<double>(rng() % 10000) / 100.0) + t;
                break;
        }
    }
    return out;
}

const std::string &Dataset(int which)
{
    static const std::string cpu = CpuLines();
    static const std::string mixed = MixedLines();
    return which == 0 ? cpu : mixed;
}

std::vector<std::string_view> Split(const std::string &buf)
{
    std::vector<std::string_view> lines;
    influx::ForEachLine(buf.data(), buf.size(), [&](std::string_view l) { lines.push_back(l); });
    return lines;
}

void BM_ParseLine(benchmark::State &state)
{
    const std::string &buf = Dataset(static_cast<int>(state.range(0)));
    const std::vector<std::string_view> lines = Split(buf);
    influx::LineParser parser;
    influx::Point pt;
    size_t bad = 0;
    for (auto _ : state) {
        for (std::string_view line : lines) {
            bad += parser.ParseLine(line, &pt) != influx::ParseStatus::Ok;
            benchmark::DoNotOptimize(pt);
        }
    }
    if (bad)
        state.SkipWithError("dataset has invalid lines");
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(buf.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(lines.size()));
    state.SetLabel(state.range(0) == 0 ? "cpu" : "mixed");
}

void BM_ScanAndParse(benchmark::State &state)
{
    const std::string &buf = Dataset(static_cast<int>(state.range(0)));
    influx::LineParser parser;
    influx::Point pt;
    size_t count = 0;
    for (auto _ : state) {
        /* As a worker does with each chunk: one IsPlain pass, then the lines. */
        bool plain = influx::IsPlain(buf.data(), buf.size());
        count = influx::ForEachLine(
            buf.data(), buf.size(),
            [&](std::string_view line) {
                parser.ParseLine(line, &pt, plain);
                benchmark::DoNotOptimize(pt);
            },
            plain);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(buf.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(count));
    state.SetLabel(state.range(0) == 0 ? "cpu" : "mixed");
}

void BM_ScanAndMatch(benchmark::State &state)
{
    const std::string &buf = Dataset(static_cast<int>(state.range(0)));
    influx::LineParser parser;
    influx::Point pt;
    /* One layout per measurement, as a worker keeps them for the tables it knows. */
    std::map<std::string_view, influx::LineShape> shapes;
    const influx::LineShape *last = nullptr;
    static influx::LineShape scratch;
    static influx::ShapeValues sv;
    size_t count = 0, matched = 0;
    for (auto _ : state) {
        bool plain = influx::IsPlain(buf.data(), buf.size());
        count = influx::ForEachLine(
            buf.data(), buf.size(),
            [&](std::string_view line) {
                /* The last line's layout first, then the map (the worker: its batch's hash). */
                const influx::LineShape *shape = last;
                if (shape == nullptr || line.size() <= shape->measurement.size ||
                    (line[shape->measurement.size] != ',' &&
                     line[shape->measurement.size] != ' ') ||
                    line.compare(0, shape->measurement.size, shape->measurement.raw()) != 0) {
                    auto it = shapes.find(line.substr(0, influx::PlainMeasurementLength(line)));
                    shape = it == shapes.end() ? nullptr : &it->second;
                }
                if (shape != nullptr && (plain || influx::IsPlain(line.data(), line.size())) &&
                    parser.MatchShape(*shape, line, &sv)) {
                    matched++;
                    last = shape;
                    benchmark::DoNotOptimize(sv);
                    return;
                }
                if (parser.ParseLine(line, &pt, plain) == influx::ParseStatus::Ok &&
                    influx::LearnShape(pt, &scratch)) {
                    influx::LineShape &slot = shapes[pt.measurement.raw()];
                    slot = scratch;
                    last = &slot;
                }
                benchmark::DoNotOptimize(pt);
            },
            plain);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(buf.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(count));
    state.SetLabel(std::string(state.range(0) == 0 ? "cpu" : "mixed") + ", " +
                   std::to_string(100 * matched / std::max<size_t>(1, count * state.iterations())) +
                   "% matched");
}

void BM_Scan(benchmark::State &state)
{
    const std::string &buf = Dataset(static_cast<int>(state.range(0)));
    size_t count = 0;
    for (auto _ : state) {
        count = influx::ForEachLine(buf.data(), buf.size(),
                                    [](std::string_view line) { benchmark::DoNotOptimize(line); });
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                            static_cast<int64_t>(buf.size()));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(count));
    state.SetLabel(state.range(0) == 0 ? "cpu" : "mixed");
}

} // namespace

BENCHMARK(BM_ParseLine)->Arg(0)->Arg(1);
BENCHMARK(BM_ScanAndParse)->Arg(0)->Arg(1);
BENCHMARK(BM_ScanAndMatch)->Arg(0)->Arg(1);
BENCHMARK(BM_Scan)->Arg(0)->Arg(1);

BENCHMARK_MAIN();
