// loadgen — deterministic InfluxDB line-protocol load generator for pg_influx benchmarks.
//
// Datasets (Telegraf-shaped, seeded PRNG, explicit nanosecond timestamps):
//   cpu       measurement cpu, tags cpu + host, 10 float fields (usage_user ... usage_guest_nice)
//   mixed     cpu, mem, disk, net, system, docker_container_status: floats, integers (i),
//             strings and booleans
//   cpu-hc    cpu with many distinct hosts (high cardinality; --hosts, default 100000)
//
// Modes:
//   lp        write line protocol to --out
//   csv       write the same rows as CSV for a typed (or --shape jsonb) twin table
//   binary    write the same rows as PostgreSQL binary COPY
//   ddl       print CREATE TABLE statements of the twin tables (--schema, --shape, --index)
//   tcp       send over --connections TCP connections (lines split into contiguous ranges)
//   udp       send datagrams of at most --datagram-size bytes, paced at --rate lines/s
//
// Line i of a dataset is a pure function of (dataset, seed, value seed, hosts, cpus, start,
// interval, i), so every mode and every generator thread produces exactly the same rows.
// --value-seed (default: --seed) draws the field values only: two datasets that differ in it
// have the same points (measurement, tags, timestamp) with other values, as a client that
// rewrites its points would send (bench/idempotent.py).  Generator
// threads hand formatted blocks to the writer/sender thread through Boost.Lockfree
// spsc_queues of compile-time capacity (one "full" and one "free" queue per generator, so
// blocks are recycled and nothing is allocated in steady state).
//
// Build: g++ -std=c++17 -O2 -pthread -o bench/loadgen bench/loadgen.cpp  (see bench/Makefile)

#include <boost/lockfree/spsc_queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace
{

// ------------------------------------------------------------------------------------------
// Schemas
// ------------------------------------------------------------------------------------------

enum class FT : char { Float = 'f', Int = 'i', Str = 's', Bool = 'b' };

struct FieldDef {
    const char *name;
    FT type;
};

struct MeasDef {
    const char *name;
    std::vector<const char *> tags; // sorted by key, as Telegraf emits them
    std::vector<FieldDef> fields;
};

const std::vector<MeasDef> &Measurements()
{
    static const std::vector<MeasDef> defs = {
        {"cpu",
         {"cpu", "host"},
         {{"usage_user", FT::Float},
          {"usage_system", FT::Float},
          {"usage_idle", FT::Float},
          {"usage_nice", FT::Float},
          {"usage_iowait", FT::Float},
          {"usage_irq", FT::Float},
          {"usage_softirq", FT::Float},
          {"usage_steal", FT::Float},
          {"usage_guest", FT::Float},
          {"usage_guest_nice", FT::Float}}},
        {"mem",
         {"host"},
         {{"active", FT::Int},
          {"available", FT::Int},
          {"available_percent", FT::Float},
          {"buffered", FT::Int},
          {"cached", FT::Int},
          {"free", FT::Int},
          {"total", FT::Int},
          {"used", FT::Int},
          {"used_percent", FT::Float}}},
        {"disk",
         {"device", "fstype", "host", "mode", "path"},
         {{"free", FT::Int},
          {"inodes_free", FT::Int},
          {"inodes_total", FT::Int},
          {"inodes_used", FT::Int},
          {"total", FT::Int},
          {"used", FT::Int},
          {"used_percent", FT::Float}}},
        {"net",
         {"host", "interface"},
         {{"bytes_recv", FT::Int},
          {"bytes_sent", FT::Int},
          {"drop_in", FT::Int},
          {"drop_out", FT::Int},
          {"err_in", FT::Int},
          {"err_out", FT::Int},
          {"packets_recv", FT::Int},
          {"packets_sent", FT::Int}}},
        {"system",
         {"host"},
         {{"load1", FT::Float},
          {"load5", FT::Float},
          {"load15", FT::Float},
          {"n_cpus", FT::Int},
          {"n_users", FT::Int},
          {"uptime", FT::Int},
          {"uptime_format", FT::Str}}},
        {"docker_container_status",
         {"container_image", "container_name", "container_status", "host"},
         {{"container_id", FT::Str},
          {"exitcode", FT::Int},
          {"oomkilled", FT::Bool},
          {"pid", FT::Int},
          {"running", FT::Bool},
          {"started_at", FT::Int},
          {"uptime_ns", FT::Int}}},
    };
    return defs;
}

enum MeasId { M_CPU = 0, M_MEM, M_DISK, M_NET, M_SYSTEM, M_DOCKER, M_COUNT };

// Column order of the tags in the twin tables: host first, then the others in line order
// (so cpu is _time, host, cpu, usage_user, ...).  Indexes into MeasDef::tags.
const std::vector<size_t> &TagColumns(int meas)
{
    static const std::vector<std::vector<size_t>> cols = [] {
        std::vector<std::vector<size_t>> all;
        for (const MeasDef &m : Measurements()) {
            std::vector<size_t> c;
            for (size_t t = 0; t < m.tags.size(); ++t)
                if (std::string_view(m.tags[t]) == "host")
                    c.push_back(t);
            for (size_t t = 0; t < m.tags.size(); ++t)
                if (std::string_view(m.tags[t]) != "host")
                    c.push_back(t);
            all.push_back(std::move(c));
        }
        return all;
    }();
    return cols[meas];
}

// ------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------

struct Options {
    std::string mode;
    std::string dataset = "cpu";
    uint64_t lines = 1000000;
    uint64_t seed = 42;
    uint64_t value_seed = 0; // field values; set to seed unless --value-seed is given
    bool value_seed_set = false;
    long hosts = -1;                                // -1: dataset default
    int cpus = 4;                                   // per host, plus cpu-total
    int64_t start_ns = 1704067200LL * 1000000000LL; // 2024-01-01T00:00:00Z
    int64_t interval_ns = 10LL * 1000000000LL;
    std::string out;
    std::string in;              // tcp/udp: send this line-protocol file instead of generating
    std::string shape = "typed"; // csv/binary/ddl: typed | jsonb
    std::string schema = "public";
    bool index = false;
    std::string host = "127.0.0.1";
    int port = 0;
    int connections = 1;
    double rate = 0; // udp lines/s, 0 = unpaced
    int datagram_size = 1400;
    int threads = 1; // generator threads for file modes
    int block_lines = 4096;
    double max_seconds = 600; // bound on any send
    bool quiet = false;
};

[[noreturn]] void Die(const std::string &msg)
{
    std::fprintf(stderr, "loadgen: %s\n", msg.c_str());
    std::exit(2);
}

void Usage()
{
    std::fprintf(
        stderr, "usage: loadgen --mode lp|csv|binary|ddl|tcp|udp [options]\n"
                "  --dataset cpu|mixed|cpu-hc   (default cpu)\n"
                "  --lines N          lines to generate (default 1000000)\n"
                "  --seed S           PRNG seed (default 42)\n"
                "  --value-seed V     seed of the field values only (default: --seed)\n"
                "  --hosts H          distinct host tags (default 100; cpu-hc 100000)\n"
                "  --cpus C           per-cpu series per host, plus cpu-total (default 4)\n"
                "  --start-ns T       first timestamp (default 2024-01-01T00:00:00Z)\n"
                "  --interval-ns I    collection interval (default 10 s)\n"
                "  --out PATH         output file (lp/csv/binary); for mixed csv/binary PATH must\n"
                "                     contain %%m, replaced by the measurement name\n"
                "  --shape typed|jsonb  columns of the twin table for csv/binary/ddl\n"
                "  --schema NAME      schema for ddl (default public)\n"
                "  --index            ddl: add a btree index on (host, _time)\n"
                "  --threads N        generator threads (default 1)\n"
                "  --host A --port P  destination for tcp/udp (default 127.0.0.1)\n"
                "  --connections N    tcp connections (default 1)\n"
                "  --rate R           udp lines per second, 0 = unpaced (default 0)\n"
                "  --datagram-size B  largest udp payload (default 1400; e.g. 8192)\n"
                "  --in FILE          tcp/udp: send this line-protocol file (no generation)\n"
                "  --max-seconds S    give up sending after S seconds (default 600)\n"
                "  --quiet            only the final result line\n");
    std::exit(2);
}

Options ParseArgs(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc)
                Die("missing value for " + a);
            return argv[++i];
        };
        if (a == "--mode")
            o.mode = val();
        else if (a == "--dataset")
            o.dataset = val();
        else if (a == "--lines")
            o.lines = std::stoull(val());
        else if (a == "--seed")
            o.seed = std::stoull(val());
        else if (a == "--value-seed") {
            o.value_seed = std::stoull(val());
            o.value_seed_set = true;
        } else if (a == "--hosts")
            o.hosts = std::stol(val());
        else if (a == "--cpus")
            o.cpus = std::stoi(val());
        else if (a == "--start-ns")
            o.start_ns = std::stoll(val());
        else if (a == "--interval-ns")
            o.interval_ns = std::stoll(val());
        else if (a == "--out")
            o.out = val();
        else if (a == "--in")
            o.in = val();
        else if (a == "--shape")
            o.shape = val();
        else if (a == "--schema")
            o.schema = val();
        else if (a == "--index")
            o.index = true;
        else if (a == "--threads")
            o.threads = std::stoi(val());
        else if (a == "--host")
            o.host = val();
        else if (a == "--port")
            o.port = std::stoi(val());
        else if (a == "--connections")
            o.connections = std::stoi(val());
        else if (a == "--rate")
            o.rate = std::stod(val());
        else if (a == "--datagram-size")
            o.datagram_size = std::stoi(val());
        else if (a == "--block-lines")
            o.block_lines = std::stoi(val());
        else if (a == "--max-seconds")
            o.max_seconds = std::stod(val());
        else if (a == "--quiet")
            o.quiet = true;
        else if (a == "-h" || a == "--help")
            Usage();
        else
            Die("unknown option " + a);
    }
    if (o.mode.empty())
        Usage();
    if (!o.value_seed_set)
        o.value_seed = o.seed;
    if (o.dataset != "cpu" && o.dataset != "mixed" && o.dataset != "cpu-hc")
        Die("unknown dataset " + o.dataset);
    if (o.hosts < 0)
        o.hosts = (o.dataset == "cpu-hc") ? 100000 : 100;
    if (o.hosts < 1 || o.cpus < 0 || o.threads < 1 || o.threads > 64 || o.connections < 1 ||
        o.connections > 1024 || o.block_lines < 1 || o.datagram_size < 64 ||
        o.datagram_size > 65507 || o.interval_ns < 1000)
        Die("option out of range");
    if (o.shape != "typed" && o.shape != "jsonb")
        Die("--shape must be typed or jsonb");
    return o;
}

// ------------------------------------------------------------------------------------------
// Deterministic rows
// ------------------------------------------------------------------------------------------

inline uint64_t SplitMix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t Next() { return s = SplitMix(s); }
    double Uniform(double lo, double hi) { return lo + (hi - lo) * ((Next() >> 11) * 0x1.0p-53); }
    int64_t Int(int64_t lo, int64_t hi)
    {
        return lo + static_cast<int64_t>(Next() % uint64_t(hi - lo + 1));
    }
};

struct FieldVal {
    double d = 0;
    int64_t i = 0;
    bool b = false;
    std::string s;
};

struct Row {
    int meas = 0;
    int64_t ts_ns = 0;
    std::array<std::string, 6> tags;
    std::array<FieldVal, 12> fields;
};

class Dataset
{
  public:
    explicit Dataset(const Options &o) : o_(o)
    {
        mixed_ = (o.dataset == "mixed");
        per_host_ = uint64_t(o.cpus) + 1 + (mixed_ ? 8 : 0);
        series_ = per_host_ * uint64_t(o.hosts);
    }

    bool Mixed() const { return mixed_; }

    // Measurements present in this dataset (index into Measurements()).
    std::vector<int> Present() const
    {
        if (!mixed_)
            return {M_CPU};
        return {M_CPU, M_MEM, M_DISK, M_NET, M_SYSTEM, M_DOCKER};
    }

    void Generate(uint64_t i, Row &r) const
    {
        uint64_t tick = i / series_;
        uint64_t slot = i % series_;
        uint64_t h = slot / per_host_;
        uint64_t k = slot % per_host_;
        Rng rng(SplitMix(o_.value_seed * 0x100000001b3ULL ^ SplitMix(i)));
        // Every host reports at its own offset within the interval (microsecond aligned, so
        // that a timestamptz holds it exactly and every loader produces the same value).
        uint64_t jitter_us = SplitMix(o_.seed ^ (h * 0x9e37ULL)) %
                             std::max<uint64_t>(1, uint64_t(o_.interval_ns / 2000));
        r.ts_ns = o_.start_ns + int64_t(tick) * o_.interval_ns + int64_t(jitter_us) * 1000;
        HostName(h);
        uint64_t cpu_lines = uint64_t(o_.cpus) + 1;
        if (k < cpu_lines) {
            r.meas = M_CPU;
            // tags: cpu, host
            r.tags[1] = host_;
            if (k == uint64_t(o_.cpus))
                r.tags[0] = "cpu-total";
            else {
                r.tags[0] = "cpu";
                AppendInt(r.tags[0], int64_t(k));
            }
            double idle = rng.Uniform(0, 100);
            double rest = 100 - idle;
            double user = rng.Uniform(0, rest);
            double sys = rng.Uniform(0, rest - user);
            r.fields[0].d = user;
            r.fields[1].d = sys;
            r.fields[2].d = idle;
            for (int f = 3; f < 10; ++f)
                r.fields[f].d = (rng.Next() % 4 == 0) ? 0.0 : rng.Uniform(0, 2);
            return;
        }
        k -= cpu_lines;
        const int64_t GiB = 1LL << 30;
        if (k == 0) { // mem
            r.meas = M_MEM;
            r.tags[0] = host_;
            int64_t total = int64_t(8 << (h % 4)) * GiB;
            int64_t used = rng.Int(0, total);
            int64_t avail = total - used;
            r.fields[0].i = rng.Int(0, used);
            r.fields[1].i = avail;
            r.fields[2].d = 100.0 * double(avail) / double(total);
            r.fields[3].i = rng.Int(0, 512LL << 20);
            r.fields[4].i = rng.Int(0, avail);
            r.fields[5].i = rng.Int(0, avail);
            r.fields[6].i = total;
            r.fields[7].i = used;
            r.fields[8].d = 100.0 * double(used) / double(total);
            return;
        }
        if (k <= 2) { // disk, two devices
            r.meas = M_DISK;
            bool root = (k == 1);
            r.tags[0] = root ? "vda1" : "vdb1";
            r.tags[1] = root ? "ext4" : "xfs";
            r.tags[2] = host_;
            r.tags[3] = "rw";
            r.tags[4] = root ? "/" : "/var/lib/postgresql";
            int64_t total = (root ? 50 : 500) * GiB;
            int64_t used = rng.Int(0, total);
            int64_t inodes = total / 16384;
            int64_t iused = rng.Int(0, inodes);
            r.fields[0].i = total - used;
            r.fields[1].i = inodes - iused;
            r.fields[2].i = inodes;
            r.fields[3].i = iused;
            r.fields[4].i = total;
            r.fields[5].i = used;
            r.fields[6].d = 100.0 * double(used) / double(total);
            return;
        }
        if (k <= 4) { // net, two interfaces
            r.meas = M_NET;
            r.tags[0] = host_;
            r.tags[1] = (k == 3) ? "eth0" : "eth1";
            int64_t base = int64_t(tick + 1) * 1000;
            r.fields[0].i = base * rng.Int(1000, 200000);
            r.fields[1].i = base * rng.Int(1000, 200000);
            r.fields[2].i = rng.Int(0, 100);
            r.fields[3].i = rng.Int(0, 10);
            r.fields[4].i = rng.Int(0, 5);
            r.fields[5].i = 0;
            r.fields[6].i = base * rng.Int(10, 2000);
            r.fields[7].i = base * rng.Int(10, 2000);
            return;
        }
        if (k == 5) { // system
            r.meas = M_SYSTEM;
            r.tags[0] = host_;
            r.fields[0].d = rng.Uniform(0, 8);
            r.fields[1].d = rng.Uniform(0, 6);
            r.fields[2].d = rng.Uniform(0, 4);
            r.fields[3].i = 2 << (h % 4);
            r.fields[4].i = rng.Int(0, 5);
            int64_t up = int64_t(h % 1000) * 3600 + int64_t(tick) * (o_.interval_ns / 1000000000LL);
            r.fields[5].i = up;
            // Telegraf's uptime_format: "3 days,  2:01" (comma and spaces inside the string)
            std::string &s = r.fields[6].s;
            s.clear();
            AppendInt(s, up / 86400);
            s += (up / 86400 == 1) ? " day, " : " days, ";
            int64_t hh = (up % 86400) / 3600, mm = (up % 3600) / 60;
            if (hh < 10)
                s += ' ';
            AppendInt(s, hh);
            s += ':';
            if (mm < 10)
                s += '0';
            AppendInt(s, mm);
            return;
        }
        // docker_container_status, two containers
        r.meas = M_DOCKER;
        bool web = (k == 6);
        bool running = (rng.Next() % 10) != 0;
        r.tags[0] = web ? "nginx:1.25" : "postgres:15";
        r.tags[1] = web ? "web" : "db";
        r.tags[2] = running ? "running" : "exited";
        r.tags[3] = host_;
        std::string &id = r.fields[0].s;
        id.clear();
        static const char hex[] = "0123456789abcdef";
        uint64_t x = SplitMix(h * 2 + (web ? 0 : 1));
        for (int c = 0; c < 12; ++c)
            id += hex[(x >> (c * 4)) & 15];
        r.fields[1].i = running ? 0 : 137;
        r.fields[2].b = !running && (rng.Next() % 2 == 0);
        r.fields[3].i = running ? rng.Int(100, 400000) : 0;
        r.fields[4].b = running;
        r.fields[5].i = o_.start_ns - int64_t(h % 1000) * 1000000000LL;
        r.fields[6].i = r.ts_ns - r.fields[5].i;
    }

    static void AppendInt(std::string &s, int64_t v)
    {
        char buf[24];
        auto res = std::to_chars(buf, buf + sizeof buf, v);
        s.append(buf, res.ptr);
    }

  private:
    void HostName(uint64_t h) const
    {
        if (h == last_host_)
            return;
        last_host_ = h;
        host_ = "host-";
        AppendInt(host_, int64_t(h));
    }

    const Options &o_;
    bool mixed_ = false;
    uint64_t per_host_ = 1, series_ = 1;
    mutable uint64_t last_host_ = ~0ULL;
    mutable std::string host_;
};

// ------------------------------------------------------------------------------------------
// Formatting
// ------------------------------------------------------------------------------------------

inline void AppendDouble(std::string &s, double d)
{
    // Shortest representation that round-trips: line protocol, CSV, JSON and binary COPY all
    // carry exactly the same double.
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    s.append(buf, res.ptr);
}

void AppendLineProtocol(std::string &out, const Row &r)
{
    const MeasDef &m = Measurements()[r.meas];
    out += m.name;
    for (size_t t = 0; t < m.tags.size(); ++t) {
        out += ',';
        out += m.tags[t];
        out += '=';
        for (char c : r.tags[t]) { // tag values: escape comma, equals, space
            if (c == ',' || c == '=' || c == ' ')
                out += '\\';
            out += c;
        }
    }
    for (size_t f = 0; f < m.fields.size(); ++f) {
        out += (f == 0) ? ' ' : ',';
        out += m.fields[f].name;
        out += '=';
        const FieldVal &v = r.fields[f];
        switch (m.fields[f].type) {
            case FT::Float:
                AppendDouble(out, v.d);
                break;
            case FT::Int:
                Dataset::AppendInt(out, v.i);
                out += 'i';
                break;
            case FT::Bool:
                out += v.b ? "true" : "false";
                break;
            case FT::Str:
                out += '"';
                for (char c : v.s) {
                    if (c == '"' || c == '\\')
                        out += '\\';
                    out += c;
                }
                out += '"';
                break;
        }
    }
    out += ' ';
    Dataset::AppendInt(out, r.ts_ns);
    out += '\n';
}

// Microseconds since 1970 -> "YYYY-MM-DD HH:MM:SS.ffffff+00"
void AppendTimestamp(std::string &out, int64_t us)
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    // civil_from_days (H. Hinnant)
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t mo = mp < 10 ? mp + 3 : mp - 9;
    if (mo <= 2)
        y += 1;
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%06lld+00",
                          (long long) y, (long long) mo, (long long) d, (long long) (sod / 3600),
                          (long long) (sod % 3600 / 60), (long long) (sod % 60), (long long) frac);
    out.append(buf, n);
}

void AppendJsonString(std::string &out, const std::string &s)
{
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else
            out += char(c);
    }
    out += '"';
}

void AppendJsonTags(std::string &out, const Row &r)
{
    const MeasDef &m = Measurements()[r.meas];
    out += '{';
    for (size_t t = 0; t < m.tags.size(); ++t) {
        if (t)
            out += ", ";
        out += '"';
        out += m.tags[t];
        out += "\": ";
        AppendJsonString(out, r.tags[t]);
    }
    out += '}';
}

void AppendJsonFields(std::string &out, const Row &r)
{
    const MeasDef &m = Measurements()[r.meas];
    out += '{';
    for (size_t f = 0; f < m.fields.size(); ++f) {
        if (f)
            out += ", ";
        out += '"';
        out += m.fields[f].name;
        out += "\": ";
        const FieldVal &v = r.fields[f];
        switch (m.fields[f].type) {
            case FT::Float:
                AppendDouble(out, v.d);
                break;
            case FT::Int:
                Dataset::AppendInt(out, v.i);
                break;
            case FT::Bool:
                out += v.b ? "true" : "false";
                break;
            case FT::Str:
                AppendJsonString(out, v.s);
                break;
        }
    }
    out += '}';
}

void AppendCsvQuoted(std::string &out, const std::string &s)
{
    out += '"';
    for (char c : s) {
        if (c == '"')
            out += '"';
        out += c;
    }
    out += '"';
}

void AppendCsv(std::string &out, const Row &r, bool jsonb, std::string &tmp)
{
    const MeasDef &m = Measurements()[r.meas];
    AppendTimestamp(out, r.ts_ns / 1000);
    if (jsonb) {
        out += ',';
        tmp.clear();
        AppendJsonTags(tmp, r);
        AppendCsvQuoted(out, tmp);
        out += ',';
        tmp.clear();
        AppendJsonFields(tmp, r);
        AppendCsvQuoted(out, tmp);
        out += '\n';
        return;
    }
    for (size_t t : TagColumns(r.meas)) {
        out += ',';
        AppendCsvQuoted(out, r.tags[t]);
    }
    for (size_t f = 0; f < m.fields.size(); ++f) {
        out += ',';
        const FieldVal &v = r.fields[f];
        switch (m.fields[f].type) {
            case FT::Float:
                AppendDouble(out, v.d);
                break;
            case FT::Int:
                Dataset::AppendInt(out, v.i);
                break;
            case FT::Bool:
                out += v.b ? "true" : "false";
                break;
            case FT::Str:
                AppendCsvQuoted(out, v.s);
                break;
        }
    }
    out += '\n';
}

inline void Put16(std::string &out, uint16_t v)
{
    v = htons(v);
    out.append(reinterpret_cast<const char *>(&v), 2);
}
inline void Put32(std::string &out, uint32_t v)
{
    v = htonl(v);
    out.append(reinterpret_cast<const char *>(&v), 4);
}
inline void Put64(std::string &out, uint64_t v)
{
    Put32(out, uint32_t(v >> 32));
    Put32(out, uint32_t(v));
}
inline void PutText(std::string &out, const std::string &s)
{
    Put32(out, uint32_t(s.size()));
    out += s;
}

const int64_t kPgEpochUs = 946684800LL * 1000000LL; // 2000-01-01 in Unix microseconds

const char kBinaryHeader[] = "PGCOPY\n\377\r\n\0";

std::string BinaryHeader()
{
    std::string h(kBinaryHeader, 11);
    Put32(h, 0); // flags
    Put32(h, 0); // header extension length
    return h;
}

void AppendBinary(std::string &out, const Row &r, bool jsonb, std::string &tmp)
{
    const MeasDef &m = Measurements()[r.meas];
    if (jsonb) {
        Put16(out, 3);
        Put32(out, 8);
        Put64(out, uint64_t(r.ts_ns / 1000 - kPgEpochUs));
        tmp.assign(1, '\1'); // jsonb binary format version 1, then the JSON text
        AppendJsonTags(tmp, r);
        PutText(out, tmp);
        tmp.assign(1, '\1');
        AppendJsonFields(tmp, r);
        PutText(out, tmp);
        return;
    }
    Put16(out, uint16_t(1 + m.tags.size() + m.fields.size()));
    Put32(out, 8);
    Put64(out, uint64_t(r.ts_ns / 1000 - kPgEpochUs));
    for (size_t t : TagColumns(r.meas))
        PutText(out, r.tags[t]);
    for (size_t f = 0; f < m.fields.size(); ++f) {
        const FieldVal &v = r.fields[f];
        switch (m.fields[f].type) {
            case FT::Float: {
                uint64_t bits;
                std::memcpy(&bits, &v.d, 8);
                Put32(out, 8);
                Put64(out, bits);
                break;
            }
            case FT::Int:
                Put32(out, 8);
                Put64(out, uint64_t(v.i));
                break;
            case FT::Bool:
                Put32(out, 1);
                out += v.b ? '\1' : '\0';
                break;
            case FT::Str:
                PutText(out, v.s);
                break;
        }
    }
}

const char *SqlType(FT t)
{
    switch (t) {
        case FT::Float:
            return "float8";
        case FT::Int:
            return "int8";
        case FT::Str:
            return "text";
        case FT::Bool:
            return "boolean";
    }
    return "text";
}

// ------------------------------------------------------------------------------------------
// Generator -> consumer pipeline (Boost.Lockfree spsc_queue, compile-time capacity)
// ------------------------------------------------------------------------------------------

enum class Format { LineProtocol, Csv, Binary };

struct Block {
    uint64_t first = 0, count = 0; // line range
    std::vector<std::string> bufs; // one per output (per measurement for mixed csv/binary)
};

constexpr size_t kQueueCapacity = 8;
using BlockQueue = boost::lockfree::spsc_queue<Block *, boost::lockfree::capacity<kQueueCapacity>>;

inline void Backoff(int &spins)
{
    if (++spins < 64)
        std::this_thread::yield();
    else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Produces the lines [first, last) as blocks of block_lines, in order, using `threads`
// generator threads; the consumer callback runs on the calling thread.
class Pipeline
{
  public:
    Pipeline(const Options &o, Format fmt, bool jsonb, int outputs, int threads)
        : o_(o), fmt_(fmt), jsonb_(jsonb), outputs_(outputs), threads_(threads)
    {
    }

    template <typename Consumer> void Run(uint64_t first, uint64_t last, Consumer &&consume)
    {
        uint64_t nblocks = (last - first + o_.block_lines - 1) / o_.block_lines;
        std::vector<std::unique_ptr<BlockQueue>> full(threads_), free_(threads_);
        std::vector<std::unique_ptr<Block[]>> storage(threads_);
        for (int t = 0; t < threads_; ++t) {
            full[t] = std::make_unique<BlockQueue>();
            free_[t] = std::make_unique<BlockQueue>();
            storage[t] = std::make_unique<Block[]>(kQueueCapacity - 1);
            for (size_t b = 0; b + 1 < kQueueCapacity; ++b) {
                storage[t][b].bufs.resize(outputs_);
                free_[t]->push(&storage[t][b]);
            }
        }
        std::atomic<bool> stop{false};
        std::vector<std::thread> gens;
        for (int t = 0; t < threads_; ++t) {
            gens.emplace_back([&, t] {
                Dataset ds(o_);
                Row row;
                std::string tmp;
                for (uint64_t b = t; b < nblocks && !stop.load(std::memory_order_relaxed);
                     b += threads_) {
                    Block *blk = nullptr;
                    int spins = 0;
                    while (!free_[t]->pop(blk)) {
                        if (stop.load(std::memory_order_relaxed))
                            return;
                        Backoff(spins);
                    }
                    blk->first = first + b * o_.block_lines;
                    blk->count = std::min<uint64_t>(o_.block_lines, last - blk->first);
                    for (auto &s : blk->bufs)
                        s.clear();
                    for (uint64_t i = blk->first; i < blk->first + blk->count; ++i) {
                        ds.Generate(i, row);
                        std::string &out = blk->bufs[outputs_ > 1 ? OutputOf(row.meas) : 0];
                        switch (fmt_) {
                            case Format::LineProtocol:
                                AppendLineProtocol(out, row);
                                break;
                            case Format::Csv:
                                AppendCsv(out, row, jsonb_, tmp);
                                break;
                            case Format::Binary:
                                AppendBinary(out, row, jsonb_, tmp);
                                break;
                        }
                    }
                    full[t]->push(blk); // cannot fail: capacity > blocks in flight
                }
            });
        }
        bool ok = true;
        for (uint64_t b = 0; b < nblocks && ok; ++b) {
            int t = int(b % threads_);
            Block *blk = nullptr;
            int spins = 0;
            while (!full[t]->pop(blk))
                Backoff(spins);
            ok = consume(*blk);
            free_[t]->push(blk);
        }
        stop = true;
        for (auto &g : gens)
            g.join();
    }

    void SetOutputMap(std::vector<int> map) { out_of_meas_ = std::move(map); }

  private:
    int OutputOf(int meas) const { return out_of_meas_[meas]; }

    const Options &o_;
    Format fmt_;
    bool jsonb_;
    int outputs_;
    int threads_;
    std::vector<int> out_of_meas_ = std::vector<int>(M_COUNT, 0);
};

double Now()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void Report(const Options &o, const char *what, uint64_t lines, uint64_t bytes, uint64_t datagrams,
            uint64_t errors, double secs)
{
    if (secs <= 0)
        secs = 1e-9;
    std::printf("loadgen: mode=%s dataset=%s lines=%llu bytes=%llu datagrams=%llu errors=%llu "
                "seconds=%.3f lines_per_s=%.0f MiB_per_s=%.1f\n",
                what, o.dataset.c_str(), (unsigned long long) lines, (unsigned long long) bytes,
                (unsigned long long) datagrams, (unsigned long long) errors, secs, lines / secs,
                bytes / secs / 1048576.0);
    std::fflush(stdout);
}

// ------------------------------------------------------------------------------------------
// File modes
// ------------------------------------------------------------------------------------------

void WriteAll(int fd, const char *p, size_t n, const std::string &path)
{
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            Die("write " + path + ": " + std::strerror(errno));
        }
        p += w;
        n -= size_t(w);
    }
}

int RunFile(const Options &o)
{
    if (o.out.empty())
        Die("--out is required");
    Format fmt = o.mode == "lp"    ? Format::LineProtocol
                 : o.mode == "csv" ? Format::Csv
                                   : Format::Binary;
    Dataset ds(o);
    bool jsonb = (o.shape == "jsonb");
    std::vector<int> present = ds.Present();
    bool per_meas = (fmt != Format::LineProtocol) && present.size() > 1;
    std::vector<std::string> paths;
    std::vector<int> map(M_COUNT, 0);
    if (per_meas) {
        if (o.out.find("%m") == std::string::npos)
            Die("--out must contain %m for a mixed csv/binary dataset");
        for (size_t k = 0; k < present.size(); ++k) {
            std::string p = o.out;
            p.replace(p.find("%m"), 2, Measurements()[present[k]].name);
            paths.push_back(p);
            map[present[k]] = int(k);
        }
    } else {
        std::string p = o.out;
        if (p.find("%m") != std::string::npos)
            p.replace(p.find("%m"), 2, "cpu");
        paths.push_back(p);
    }
    std::vector<int> fds;
    for (auto &p : paths) {
        int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            Die("open " + p + ": " + std::strerror(errno));
        fds.push_back(fd);
        if (fmt == Format::Binary) {
            std::string h = BinaryHeader();
            WriteAll(fd, h.data(), h.size(), p);
        }
    }
    uint64_t bytes = 0;
    double t0 = Now();
    Pipeline pipe(o, fmt, jsonb, int(paths.size()), o.threads);
    pipe.SetOutputMap(map);
    pipe.Run(0, o.lines, [&](Block &b) {
        for (size_t k = 0; k < fds.size(); ++k) {
            WriteAll(fds[k], b.bufs[k].data(), b.bufs[k].size(), paths[k]);
            bytes += b.bufs[k].size();
        }
        return true;
    });
    for (size_t k = 0; k < fds.size(); ++k) {
        if (fmt == Format::Binary) {
            std::string t;
            Put16(t, 0xffff); // trailer: -1
            WriteAll(fds[k], t.data(), t.size(), paths[k]);
        }
        if (::close(fds[k]) != 0)
            Die("close " + paths[k] + ": " + std::strerror(errno));
    }
    Report(o, o.mode.c_str(), o.lines, bytes, 0, 0, Now() - t0);
    return 0;
}

int RunDdl(const Options &o)
{
    Dataset ds(o);
    for (int m : ds.Present()) {
        const MeasDef &d = Measurements()[m];
        std::printf("CREATE TABLE %s.%s (_time timestamptz NOT NULL", o.schema.c_str(), d.name);
        if (o.shape == "jsonb") {
            std::printf(", _tags jsonb, _fields jsonb");
        } else {
            for (size_t t : TagColumns(m))
                std::printf(", %s text", d.tags[t]);
            for (auto &f : d.fields)
                std::printf(", %s %s", f.name, SqlType(f.type));
        }
        std::printf(");\n");
        if (o.index) {
            if (o.shape == "jsonb")
                std::printf("CREATE INDEX ON %s.%s ((_tags->>'host'), _time);\n", o.schema.c_str(),
                            d.name);
            else
                std::printf("CREATE INDEX ON %s.%s (host, _time);\n", o.schema.c_str(), d.name);
        }
    }
    return 0;
}

// ------------------------------------------------------------------------------------------
// Network modes
// ------------------------------------------------------------------------------------------

sockaddr_storage Resolve(const Options &o, int socktype, socklen_t &len)
{
    if (o.port <= 0 || o.port > 65535)
        Die("--port is required");
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = socktype;
    std::string port = std::to_string(o.port);
    int rc = getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res)
        Die("cannot resolve " + o.host + ": " + gai_strerror(rc));
    sockaddr_storage ss{};
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    freeaddrinfo(res);
    return ss;
}

int ConnectTcp(const sockaddr_storage &ss, socklen_t len, double deadline)
{
    for (;;) {
        int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            Die(std::string("socket: ") + std::strerror(errno));
        if (::connect(fd, reinterpret_cast<const sockaddr *>(&ss), len) == 0)
            return fd;
        int err = errno;
        ::close(fd);
        if (Now() > deadline)
            Die(std::string("connect: ") + std::strerror(err));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// Sends everything; false if the deadline passed or the peer went away.
bool SendAll(int fd, const char *p, size_t n, double deadline, std::atomic<uint64_t> &bytes)
{
    while (n > 0) {
        ssize_t w = ::send(fd, p, std::min<size_t>(n, 1 << 20), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            std::fprintf(stderr, "loadgen: send: %s\n", std::strerror(errno));
            return false;
        }
        p += w;
        n -= size_t(w);
        bytes.fetch_add(uint64_t(w), std::memory_order_relaxed);
        if (Now() > deadline) {
            std::fprintf(stderr, "loadgen: --max-seconds reached\n");
            return false;
        }
    }
    return true;
}

struct Mapped {
    const char *data = nullptr;
    size_t size = 0;
};

Mapped MapFile(const std::string &path)
{
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        Die("open " + path + ": " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0)
        Die("stat " + path);
    Mapped m;
    m.size = size_t(st.st_size);
    if (m.size > 0) {
        void *p = mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
            Die("mmap " + path + ": " + std::strerror(errno));
        m.data = static_cast<const char *>(p);
        madvise(p, m.size, MADV_SEQUENTIAL);
    }
    ::close(fd);
    return m;
}

uint64_t CountLines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;
    while (p < end) {
        const char *q = static_cast<const char *>(std::memchr(p, '\n', size_t(end - p)));
        if (!q) {
            ++c;
            break;
        } // last line without '\n'
        ++c;
        p = q + 1;
    }
    return c;
}

int RunTcp(const Options &o)
{
    socklen_t len;
    sockaddr_storage ss = Resolve(o, SOCK_STREAM, len);
    double t_start = Now();
    double deadline = t_start + o.max_seconds;
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> lines{0};
    std::atomic<int> failures{0};
    int C = o.connections;
    std::vector<std::thread> th;
    Mapped file;
    std::vector<size_t> cuts; // --in: byte ranges of each connection, cut at line ends
    if (!o.in.empty()) {
        file = MapFile(o.in);
        cuts.push_back(0);
        for (int c = 1; c < C; ++c) {
            size_t pos = std::max(cuts.back(), file.size * size_t(c) / size_t(C));
            while (pos < file.size && pos > 0 && file.data[pos - 1] != '\n')
                ++pos;
            cuts.push_back(pos);
        }
        cuts.push_back(file.size);
    }
    // Count the file's lines and connect everything first, so that neither is part of the
    // send time; then say on stdout that sending starts (bench/run.py times from there).
    uint64_t file_lines = o.in.empty() ? 0 : CountLines(file.data, file.size);
    std::vector<int> fds;
    for (int c = 0; c < C; ++c)
        fds.push_back(ConnectTcp(ss, len, deadline));
    if (!o.quiet) {
        std::printf("sending: %d connection(s)\n", C);
        std::fflush(stdout);
    }
    double t0 = Now();
    for (int c = 0; c < C; ++c) {
        th.emplace_back([&, c] {
            int fd = fds[c];
            if (!o.in.empty()) {
                const char *p = file.data + cuts[c];
                size_t n = cuts[c + 1] - cuts[c];
                if (c == 0)
                    lines.fetch_add(file_lines);
                if (!SendAll(fd, p, n, deadline, bytes))
                    failures++;
            } else {
                uint64_t first = o.lines * uint64_t(c) / uint64_t(C);
                uint64_t last = o.lines * uint64_t(c + 1) / uint64_t(C);
                Pipeline pipe(o, Format::LineProtocol, false, 1, 1);
                pipe.Run(first, last, [&](Block &b) {
                    if (!SendAll(fd, b.bufs[0].data(), b.bufs[0].size(), deadline, bytes)) {
                        failures++;
                        return false;
                    }
                    lines.fetch_add(b.count);
                    return true;
                });
            }
            ::shutdown(fd, SHUT_WR);
            // Wait (bounded) for the server to close its side, so that "sent" means the
            // listener has read everything.
            char buf[256];
            timeval tv{5, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            while (::recv(fd, buf, sizeof buf, 0) > 0) {
            }
            ::close(fd);
        });
    }
    for (auto &t : th)
        t.join();
    double secs = Now() - t0;
    Report(o, "tcp", lines.load(), bytes.load(), 0, uint64_t(failures.load()), secs);
    return failures.load() ? 1 : 0;
}

class UdpSender
{
  public:
    UdpSender(const Options &o) : o_(o)
    {
        ss_ = Resolve(o, SOCK_DGRAM, len_);
        fd_ = ::socket(ss_.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0)
            Die(std::string("socket: ") + std::strerror(errno));
        if (::connect(fd_, reinterpret_cast<const sockaddr *>(&ss_), len_) != 0)
            Die(std::string("connect udp: ") + std::strerror(errno));
        int sndbuf = 4 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        dgram_.reserve(size_t(o.datagram_size) + 1);
        t0_ = Now();
        deadline_ = t0_ + o.max_seconds;
    }
    ~UdpSender() { ::close(fd_); }

    // Feeds a buffer of complete lines; false once the deadline has passed.
    bool Feed(const char *p, size_t n)
    {
        const char *end = p + n;
        while (p < end) {
            const char *q = static_cast<const char *>(std::memchr(p, '\n', size_t(end - p)));
            const char *line_end = q ? q + 1 : end;
            size_t ln = size_t(line_end - p);
            if (!dgram_.empty() && dgram_.size() + ln > size_t(o_.datagram_size))
                if (!Flush())
                    return false;
            dgram_.append(p, ln);
            ++pending_lines_;
            p = line_end;
        }
        return true;
    }

    bool Flush()
    {
        if (dgram_.empty())
            return true;
        // Pace: the first line of this datagram is due at t0 + lines_sent / rate.
        if (o_.rate > 0) {
            double due = t0_ + double(lines_) / o_.rate;
            double now = Now();
            if (due > now) {
                timespec ts;
                double d = due - now;
                ts.tv_sec = time_t(d);
                ts.tv_nsec = long((d - double(ts.tv_sec)) * 1e9);
                nanosleep(&ts, nullptr);
            }
        }
        for (;;) {
            ssize_t w = ::send(fd_, dgram_.data(), dgram_.size(), 0);
            if (w >= 0)
                break;
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS || errno == EAGAIN) { // local queue full: retry shortly
                std::this_thread::sleep_for(std::chrono::microseconds(50));
                continue;
            }
            ++errors_; // e.g. ECONNREFUSED from a previous datagram, EMSGSIZE
            break;
        }
        bytes_ += dgram_.size();
        lines_ += pending_lines_;
        ++datagrams_;
        pending_lines_ = 0;
        dgram_.clear();
        if (Now() > deadline_) {
            std::fprintf(stderr, "loadgen: --max-seconds reached\n");
            return false;
        }
        return true;
    }

    void Report() { ::Report(o_, "udp", lines_, bytes_, datagrams_, errors_, Now() - t0_); }

  private:
    const Options &o_;
    sockaddr_storage ss_;
    socklen_t len_ = 0;
    int fd_ = -1;
    std::string dgram_;
    uint64_t pending_lines_ = 0, lines_ = 0, bytes_ = 0, datagrams_ = 0, errors_ = 0;
    double t0_ = 0, deadline_ = 0;
};

int RunUdp(const Options &o)
{
    if (!o.in.empty()) {
        Mapped file = MapFile(o.in);
        UdpSender s(o);
        // --lines bounds how many lines of the file are sent.
        const char *p = file.data, *end = file.data + file.size;
        uint64_t n = 0;
        const char *stop = p;
        while (stop < end && n < o.lines) {
            const char *q = static_cast<const char *>(std::memchr(stop, '\n', size_t(end - stop)));
            stop = q ? q + 1 : end;
            ++n;
        }
        bool ok = s.Feed(p, size_t(stop - p)) && s.Flush();
        s.Report();
        return ok ? 0 : 1;
    }
    UdpSender s(o);
    bool ok = true;
    Pipeline pipe(o, Format::LineProtocol, false, 1, o.threads);
    pipe.Run(0, o.lines, [&](Block &b) {
        ok = s.Feed(b.bufs[0].data(), b.bufs[0].size());
        return ok;
    });
    if (ok)
        ok = s.Flush();
    s.Report();
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv)
{
    try {
        Options o = ParseArgs(argc, argv);
        if (o.mode == "lp" || o.mode == "csv" || o.mode == "binary")
            return RunFile(o);
        if (o.mode == "ddl")
            return RunDdl(o);
        if (o.mode == "tcp")
            return RunTcp(o);
        if (o.mode == "udp")
            return RunUdp(o);
        Die("unknown mode " + o.mode);
    } catch (const std::exception &e) {
        Die(e.what());
    }
}
