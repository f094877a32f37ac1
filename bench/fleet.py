#!/usr/bin/python3
"""fleet.py — line protocol shaped like what a fleet of Telegraf agents sends.

    /usr/bin/python3 bench/fleet.py --hosts 120 --intervals 3 --prometheus-families 300 \\
        --seed 1 -o out.lp                    # prints {"lines": ..., "counts": {...}}

    import fleet
    lines, expected = fleet.generate(hosts=40, intervals=2, seed=1, prometheus_families=300)
    points = fleet.generate_points(...)       # the same points, with typed values

Standard library only (Debian's /usr/bin/python3). The output is a pure function of the
arguments: the same arguments give the same bytes on any machine (random.Random seeded with
strings; its algorithms have not changed since Python 3.2, though Python does not promise
that).

What it models
==============

Every host runs one Telegraf agent (InfluxDB line-protocol output, `precision = "ns"`) with
the inputs below, gathers them all at the same tick of each interval and flushes them as
one batch. Tags are sorted by key (Telegraf keeps a metric's tags sorted), fields are in
the plugin's order, every line carries Telegraf's `host` tag and the agent's global tags
(`dc`, `env`, and `rack` on some hosts).

| measurement | Telegraf plugin | tags (besides host, dc, env, rack) | fields |
|---|---|---|---|
| `cpu` | inputs.cpu (percpu + totalcpu) | `cpu` = cpu0..cpuN-1, cpu-total | usage_user, usage_system, usage_idle, usage_nice, usage_iowait, usage_irq, usage_softirq, usage_steal, usage_guest, usage_guest_nice: float |
| `mem` | inputs.mem (Linux) | | total, available, used, free, cached, buffered, active, inactive, slab, shared, dirty, write_back, swap_cached, commit_limit, committed_as, huge_pages_total, huge_pages_free, page_tables, vmalloc_used: unsigned; available_percent, used_percent: float. huge_pages_*, dirty, write_back sometimes absent |
| `swap` | inputs.swap | | two lines per gather, as the plugin adds a gauge and a counter metric: total, used, free: unsigned, used_percent: float; then in, out: unsigned |
| `disk` | inputs.disk | `path`, `device`, `fstype`, `mode` (paths with spaces and `=`, escaped) | total, free, used: unsigned; used_percent: float; inodes_total, inodes_free, inodes_used: unsigned; inodes_used_percent: float (only from agents ≥ 1.28) |
| `diskio` | inputs.diskio | `name` | reads, writes, read_bytes, write_bytes, read_time, write_time, io_time, weighted_io_time, iops_in_progress, merged_reads, merged_writes: unsigned (merged_* absent on some kernels) |
| `net` | inputs.net | `interface` = eth0, ens5, docker0, …, and `all` | per interface: bytes_sent, bytes_recv, packets_sent, packets_recv, err_in, err_out, drop_in, drop_out: unsigned. `interface=all`: protocol counters icmp_*, tcp_*, udp_*: integer (a different field set in the same table) |
| `netstat` | inputs.netstat | | tcp_established, tcp_syn_sent, tcp_syn_recv, tcp_fin_wait1, tcp_fin_wait2, tcp_time_wait, tcp_close, tcp_close_wait, tcp_last_ack, tcp_listen, tcp_closing, tcp_none, udp_socket: integer |
| `processes` | inputs.processes | | blocked, zombies, stopped, running, sleeping, total, unknown, total_threads, dead, paging, idle: integer (dead, paging, idle, unknown only on some kernels) |
| `system` | inputs.system | | three lines per gather, as the plugin adds three metrics: load1, load5, load15: float, n_cpus, n_users, n_unique_users: integer; then uptime: unsigned; then uptime_format: string (`"12 days,  3:04"`) |
| `kernel` | inputs.kernel | | boot_time, context_switches, entropy_avail, interrupts, processes_forked: integer |
| `chrony` | inputs.chrony | `reference_id`, `leap_status`, `stratum` | system_time, last_offset, rms_offset (negative, exponents like `-1.234e-05`), frequency (negative ppm), residual_freq, skew, root_delay, root_dispersion, update_interval: float |
| `docker` | inputs.docker (engine) | `engine_host`, `server_version` | n_containers, n_containers_running, n_containers_stopped, n_containers_paused, n_images, n_cpus, n_goroutines, n_listener_events, n_used_file_descriptors, memory_total: integer |
| `docker_container_cpu` | inputs.docker | `container_name`, `container_image`, `container_version`, `container_status`, `cpu` = cpu-total, `engine_host`, `server_version`, and container labels as tags (`com.docker.compose.*`, `maintainer`, …: values with escaped spaces, commas and `=`, a key with an escaped space, a Windows path with backslashes, non-ASCII) | usage_total, usage_in_usermode, usage_in_kernelmode, usage_system, throttling_periods, throttling_throttled_periods, throttling_throttled_time: unsigned; usage_percent: float; container_id: string |
| `docker_container_mem` | inputs.docker | as above, without `cpu` | usage, max_usage, limit, rss, cache, active_anon, inactive_anon, active_file, inactive_file, mapped_file, pgfault, pgmajfault, unevictable: unsigned (cgroup v2 hosts lack cache, mapped_file, max_usage); usage_percent: float; container_id: string |
| `docker_container_status` | inputs.docker | as above | container_id: string; exitcode, pid, started_at, finished_at, uptime_ns: integer; oomkilled: boolean |
| `nginx` | inputs.nginx | `server`, `port` | accepts, active, handled, reading, requests, waiting, writing: integer |
| `postgresql` | inputs.postgresql | `db`, `server` (a libpq connection string: spaces and `=`, escaped) | xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, conflicts, temp_files, temp_bytes, deadlocks, numbackends, datid: integer; blk_read_time, blk_write_time: float; datname: string; stats_reset: string (absent when never reset) |
| `http_response` | inputs.http_response | `server` (a URL, some with `?a=b&c=d`: `=` escaped), `method`, `status_code`, `result` | response_time: float, http_response_code, result_code, content_length: integer, result_type: string; a timeout has no http_response_code, status_code or content_length |
| `x509_cert` | inputs.x509_cert | `source`, `common_name`, `issuer_common_name`, `serial_number`, `verification` | age, expiry (negative once expired), startdate, enddate, verification_code: integer; verification_error: string (only when invalid) |
| `syslog` | inputs.syslog (RFC 5424) | `appname`, `facility`, `severity`, `hostname`, `source` | version, severity_code, facility_code, timestamp: integer; procid, msgid (sometimes absent), message: string with `\\"`, `\\\\`, commas, spaces, `=`, raw newlines inside the quotes, non-ASCII (é, 日本語, emoji), a string ending in a backslash; structured data as `sdid`: boolean plus `exampleSDID@32473_iut`-style string fields (mixed-case keys) |
| every prometheus family | inputs.prometheus, `metric_version = 1` (one measurement per family) | `url` (of the exporter; some with a query string, `=` escaped) and the sample's labels (`code`, `method`, `handler`, `device`, `mode`, `le`, `quantile`, …; values with spaces, commas, `=`, backslashes) | counter: `counter`; gauge: `gauge`; untyped: `value`; summary: one float field per quantile (`0`, `0.25`, `0.5`, `0.75`, `1`; a NaN quantile is dropped, as Telegraf does) plus `sum`, `count`; histogram: one float field per bucket bound (`0.005` … `+Inf`) plus `sum`, `count`. Families an exporter exposes without `# TYPE` are untyped sample by sample, exactly as Telegraf reads them: `x{quantile="0.5"}` → measurement `x`, tag `quantile`, field `value`; `x_bucket{le="0.1"}` → `x_bucket` with tag `le`; `x_sum`, `x_count` → measurements of their own |
| `site_check` | not Telegraf: a site script writing line protocol straight to the listener (fleets have them) | `check` (values with escaped spaces and commas) | booleans spelled `t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False`, `FALSE`; field keys with escaped space, comma and `=` (`last\\ error`, `runtime\\,ms`, `exit\\=code`); integer, float with exponent, negative values |

Host roles (by host index): every host has cpu, mem, swap, disk, diskio, net, netstat,
processes, system, kernel, chrony, syslog and the prometheus families; two thirds run
docker (2–4 containers), every 4th nginx, every 5th PostgreSQL (2–3 databases), every 10th
probes HTTP endpoints and certificates, every 2nd runs the site script. Host 0 has every
role, so `hosts=1` yields every measurement.

Values and types:
- Floats are written as Telegraf writes them (shortest round-trip form, `42` for an
  integral value, exponents for very small or large values: `3.2e-05`, `1.5e+18`).
  Never NaN or infinite.
- Telegraf writes uint64 fields with `u` only with `influx_uint_support = true`; otherwise
  as `i`. `uint_support="mixed"` (the default) gives every 4th host (3, 7, 11, …) the
  default (`i`) and the others `u`, so one column receives both; `"all"` / `"none"` make
  every host the same. Values stay below 2^63, so either type fits either column.
- Booleans are `true`/`false` except in `site_check`.
- Fields are sparse where the plugins are: fields that only some kernels, cgroup versions,
  agent versions or outcomes produce, and the multi-metric plugins (system, swap, net's
  `all`) whose lines in one table have different field sets.

Timestamps: nanoseconds, whole microseconds (so `timestamptz` keeps them exactly). Host h's
gather of interval k is at `start_ns + k * interval_ns + h * 1 ms`, so every (host,
interval) has its own time; syslog messages are 1 µs, 2 µs, … after it. Counters grow from
one interval to the next.

`prometheus_families` is the number of metric families each host's exporters expose (the
same catalogue on every host: the first N of a fixed list that starts with real exporter
families — go_*, process_*, node_*, http_*, grpc_*, etcd_*, apiserver_*, kube_*, … — and
continues with generated `<app>_<subsystem>_<thing>_<unit>` families). An untyped summary or
histogram family is three measurements, so the measurement count is larger than N.

`name_prefix` is put before every measurement name (Telegraf's per-input `name_prefix`);
all names are lowercase ASCII with underscores (and digits), at most 63 bytes.
"""

import argparse
import collections
import json
import random
import re
import sys

DEFAULT_START_NS = 1_704_067_200_000_000_000  # 2024-01-01 00:00:00 UTC
DEFAULT_INTERVAL_NS = 10_000_000_000           # Telegraf's default interval, 10 s
HOST_STEP_NS = 1_000_000                       # host h gathers h ms after the tick
MAX_NAME_BYTES = 63                            # PostgreSQL's NAMEDATALEN - 1

Field = collections.namedtuple("Field", "key kind value text")
"""One field: key (unescaped), kind (float, integer, unsigned, boolean, string), the Python
value a table column should hold, and the value as written on the line."""


class Point:
    """One line: measurement, tags (dict, unescaped), fields (list of Field), ts (ns)."""

    __slots__ = ("measurement", "tags", "fields", "ts", "host_index")

    def __init__(self, measurement, tags, fields, ts, host_index):
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.ts = ts
        self.host_index = host_index

    def line(self):
        return to_line(self)

    def __repr__(self):
        return f"Point({self.line()!r})"


# ---------------------------------------------------------------------------------------
# Line protocol, written the way Telegraf's influx serializer writes it
# ---------------------------------------------------------------------------------------

_KEY_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_NAME_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def escape_key(s):
    """A tag key, tag value or field key: `,`, ` ` and `=` escaped with a backslash."""
    return s.translate(_KEY_ESCAPES)


def escape_string(s):
    """The inside of a string field value: `\\` and `"` escaped; newlines stay raw."""
    return s.replace("\\", "\\\\").replace('"', '\\"')


def format_float(v):
    """Shortest round-trip form; integral values without a decimal point ('42'), as
    Telegraf writes them; exponents for very small and very large values."""
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError("line protocol has no NaN or infinity")
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def to_line(p):
    tags = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(p.tags.items()))
    fields = ",".join(f"{escape_key(f.key)}={f.text}" for f in p.fields)
    return f"{p.measurement.translate(_NAME_ESCAPES)}{tags} {fields} {p.ts}"


def _check_key(s):
    # What no Telegraf plugin emits and the protocol cannot carry as written.
    if not s or s.endswith("\\") or "\n" in s:
        raise ValueError(f"bad key or tag value {s!r}")


def ffloat(key, v):
    return Field(key, "float", float(v), format_float(float(v)))


def fint(key, v):
    return Field(key, "integer", int(v), f"{int(v)}i")


def fuint(key, v, uint_ok=True):
    if v < 0 or v >= 2**63:
        raise ValueError(f"{key}: unsigned value {v} out of the range the fleet uses")
    return Field(key, "unsigned", int(v), f"{int(v)}u") if uint_ok else fint(key, v)


def fbool(key, v, spelling=None):
    text = spelling or ("true" if v else "false")
    return Field(key, "boolean", bool(v), text)


def fstr(key, v):
    return Field(key, "string", v, f'"{escape_string(v)}"')


# ---------------------------------------------------------------------------------------
# The prometheus family catalogue
# ---------------------------------------------------------------------------------------

# (name, kind, labels, typed, url index); kind: counter, gauge, untyped, summary, histogram.
# labels: tuple of (label, (values...)).
_URLS = [
    "http://localhost:9100/metrics",                                 # node_exporter
    "http://localhost:9090/metrics",                                 # prometheus
    "http://localhost:8080/metrics",                                 # an app
    "http://127.0.0.1:2379/metrics",                                 # etcd
    "https://kube-apiserver.kube-system.svc:6443/metrics",           # apiserver
    "http://kube-state-metrics:8080/metrics",
    "http://localhost:10255/metrics/cadvisor",
    "http://ingress-nginx-controller:10254/metrics?format=prometheus&x=1",
    "http://localhost:9121/metrics",                                 # redis_exporter
    "http://localhost:9187/metrics?collect[]=database&collect[]=locks",  # postgres_exporter
    "http://localhost:8405/metrics",                                 # haproxy
    "http://localhost:9404/metrics",                                 # jmx_exporter
    "http://localhost:15692/metrics",                                # rabbitmq
]

_METHODS = ("get", "post", "put", "delete")
_CODES = ("200", "201", "204", "301", "400", "404", "500", "503")

_REAL_FAMILIES = [
    ("go_gc_duration_seconds", "summary", (), True, 0),
    ("go_goroutines", "gauge", (), True, 0),
    ("go_threads", "gauge", (), True, 0),
    ("go_info", "gauge", (("version", ("go1.21.5", "go1.20.12")),), True, 0),
    ("go_memstats_alloc_bytes", "gauge", (), True, 0),
    ("go_memstats_alloc_bytes_total", "counter", (), True, 0),
    ("go_memstats_heap_objects", "gauge", (), True, 0),
    ("go_memstats_mallocs_total", "counter", (), True, 0),
    ("go_memstats_frees_total", "counter", (), True, 0),
    ("go_memstats_gc_sys_bytes", "gauge", (), True, 0),
    ("go_memstats_heap_alloc_bytes", "gauge", (), True, 0),
    ("go_memstats_heap_idle_bytes", "gauge", (), True, 0),
    ("go_memstats_heap_inuse_bytes", "gauge", (), True, 0),
    ("go_memstats_heap_released_bytes", "gauge", (), True, 0),
    ("go_memstats_heap_sys_bytes", "gauge", (), True, 0),
    ("go_memstats_last_gc_time_seconds", "gauge", (), True, 0),
    ("go_memstats_lookups_total", "counter", (), True, 0),
    ("go_memstats_next_gc_bytes", "gauge", (), True, 0),
    ("go_memstats_stack_inuse_bytes", "gauge", (), True, 0),
    ("go_memstats_sys_bytes", "gauge", (), True, 0),
    ("process_cpu_seconds_total", "counter", (), True, 0),
    ("process_max_fds", "gauge", (), True, 0),
    ("process_open_fds", "gauge", (), True, 0),
    ("process_resident_memory_bytes", "gauge", (), True, 0),
    ("process_start_time_seconds", "gauge", (), True, 0),
    ("process_virtual_memory_bytes", "gauge", (), True, 0),
    ("process_virtual_memory_max_bytes", "gauge", (), True, 0),
    ("promhttp_metric_handler_requests_in_flight", "gauge", (), True, 0),
    ("promhttp_metric_handler_requests_total", "counter", (("code", ("200", "500", "503")),), True, 0),
    ("node_cpu_seconds_total", "counter",
     (("cpu", ("0", "1")), ("mode", ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"))),
     True, 0),
    ("node_load1", "gauge", (), True, 0),
    ("node_load5", "gauge", (), True, 0),
    ("node_load15", "gauge", (), True, 0),
    ("node_filesystem_avail_bytes", "gauge",
     (("device", ("/dev/sda1", "/dev/mapper/vg0-home", "tmpfs")),
      ("fstype", ("ext4", "xfs", "tmpfs")),
      ("mountpoint", ("/", "/home", "/run/user/1000", "/mnt/backup volume"))), True, 0),
    ("node_filesystem_size_bytes", "gauge",
     (("device", ("/dev/sda1", "/dev/nvme0n1p2")), ("fstype", ("ext4",)), ("mountpoint", ("/", "/data"))),
     True, 0),
    ("node_filesystem_files_free", "gauge", (("device", ("/dev/sda1",)), ("mountpoint", ("/",))), True, 0),
    ("node_network_receive_bytes_total", "counter", (("device", ("eth0", "lo", "docker0", "veth1a2b3c")),), True, 0),
    ("node_network_transmit_bytes_total", "counter", (("device", ("eth0", "lo", "docker0")),), True, 0),
    ("node_network_receive_errs_total", "counter", (("device", ("eth0", "lo")),), True, 0),
    ("node_disk_read_bytes_total", "counter", (("device", ("sda", "nvme0n1", "dm-0")),), True, 0),
    ("node_disk_written_bytes_total", "counter", (("device", ("sda", "nvme0n1")),), True, 0),
    ("node_disk_io_time_seconds_total", "counter", (("device", ("sda", "nvme0n1")),), True, 0),
    ("node_boot_time_seconds", "gauge", (), True, 0),
    ("node_context_switches_total", "counter", (), True, 0),
    ("node_forks_total", "counter", (), True, 0),
    ("node_intr_total", "counter", (), True, 0),
    ("node_procs_running", "gauge", (), True, 0),
    ("node_procs_blocked", "gauge", (), True, 0),
    ("node_time_seconds", "gauge", (), True, 0),
    ("node_uname_info", "gauge",
     (("machine", ("x86_64", "aarch64")), ("release", ("6.1.0-13-amd64",)),
      ("version", ("#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",))), True, 0),
    ("node_entropy_available_bits", "gauge", (), True, 0),
    ("node_filefd_allocated", "gauge", (), True, 0),
    ("node_filefd_maximum", "gauge", (), True, 0),
    ("node_vmstat_pgfault", "untyped", (), False, 0),
    ("node_sockstat_tcp_inuse", "gauge", (), True, 0),
    ("node_netstat_tcp_activeopens", "untyped", (), False, 0),
    ("node_scrape_collector_duration_seconds", "gauge",
     (("collector", ("cpu", "diskstats", "filesystem", "netdev", "textfile")),), True, 0),
    ("node_scrape_collector_success", "gauge", (("collector", ("cpu", "diskstats", "filesystem")),), True, 0),
    ("node_textfile_scrape_error", "gauge", (), True, 0),
    ("node_exporter_build_info", "gauge",
     (("branch", ("HEAD",)), ("goversion", ("go1.21.5",)), ("revision", ("ff7f9d69b645cb691dd3e84dc3afc88f5c006962",)),
      ("version", ("1.7.0",))), True, 0),
    ("node_timex_offset_seconds", "gauge", (), True, 0),
    ("node_timex_sync_status", "gauge", (), True, 0),
    ("node_hwmon_temp_celsius", "gauge",
     (("chip", ("platform_coretemp_0", "pci0000:00_0000:00:18_3")), ("sensor", ("temp1", "temp2"))), True, 0),
    ("node_systemd_unit_state", "gauge",
     (("name", ("ssh.service", "systemd-fsck@dev-disk-by\\x2duuid-1f2e.service", "postgresql@15-main.service")),
      ("state", ("active", "failed")), ("type", ("simple", "oneshot"))), True, 0),
    ("prometheus_tsdb_head_series", "gauge", (), True, 1),
    ("prometheus_http_requests_total", "counter",
     (("code", ("200", "400", "503")), ("handler", ("/api/v1/query", "/api/v1/query_range", "/-/ready"))), True, 1),
    ("prometheus_engine_query_duration_seconds", "summary",
     (("slice", ("inner_eval", "prepare_time", "queue_time", "result_sort")),), True, 1),
    ("prometheus_sd_discovered_targets", "gauge", (("config", ("node", "kubernetes-pods")), ("name", ("scrape",))), True, 1),
    ("prometheus_target_interval_length_seconds", "summary", (("interval", ("15s", "1m0s")),), False, 1),
    ("http_requests_total", "counter",
     (("code", _CODES), ("method", _METHODS), ("handler", ("/", "/api/orders", "/healthz"))), True, 2),
    ("http_request_duration_seconds", "histogram",
     (("method", _METHODS), ("handler", ("/", "/api/orders"))), True, 2),
    ("http_request_size_bytes", "summary", (("handler", ("/api/orders",)),), True, 2),
    ("http_response_size_bytes", "summary", (("handler", ("/api/orders", "/")),), False, 2),
    ("grpc_server_handled_total", "counter",
     (("grpc_code", ("OK", "Canceled", "DeadlineExceeded", "Unavailable")),
      ("grpc_method", ("Range", "Put", "Watch")), ("grpc_service", ("etcdserverpb.KV",)),
      ("grpc_type", ("unary",))), True, 3),
    ("grpc_server_started_total", "counter", (("grpc_method", ("Range", "Put")), ("grpc_type", ("unary",))), True, 3),
    ("grpc_server_handling_seconds", "histogram", (("grpc_method", ("Range", "Put")),), False, 3),
    ("etcd_server_has_leader", "gauge", (), True, 3),
    ("etcd_server_leader_changes_seen_total", "counter", (), True, 3),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram", (), True, 3),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge", (), True, 3),
    ("etcd_network_peer_round_trip_time_seconds", "histogram", (("to", ("8e9e05c52164694d", "91bc3c398fb3c146")),),
     True, 3),
    ("apiserver_request_total", "counter",
     (("code", ("200", "201", "404", "409", "500")), ("component", ("apiserver",)),
      ("group", ("apps", "core")), ("resource", ("pods", "deployments", "leases")),
      ("scope", ("namespace", "cluster")), ("verb", ("GET", "LIST", "WATCH", "PATCH"))), True, 4),
    ("apiserver_request_duration_seconds", "histogram",
     (("resource", ("pods", "nodes")), ("verb", ("GET", "LIST"))), True, 4),
    ("apiserver_current_inflight_requests", "gauge", (("request_kind", ("mutating", "readOnly")),), True, 4),
    ("kube_pod_status_phase", "gauge",
     (("namespace", ("default", "kube-system", "shop")),
      ("phase", ("Pending", "Running", "Succeeded", "Failed")),
      ("pod", ("web-7d9c6b6f9-x2x9z", "coredns-5d78c9869d-4kq8n", "checkout-0"))), True, 5),
    ("kube_deployment_status_replicas_available", "gauge",
     (("deployment", ("web", "checkout", "coredns")), ("namespace", ("shop", "kube-system"))), True, 5),
    ("kube_node_status_condition", "gauge",
     (("condition", ("Ready", "MemoryPressure", "DiskPressure")), ("node", ("node-a", "node-b")),
      ("status", ("true", "false", "unknown"))), True, 5),
    ("kube_pod_container_status_restarts_total", "counter",
     (("container", ("web", "sidecar")), ("namespace", ("shop",)), ("pod", ("web-7d9c6b6f9-x2x9z",))), True, 5),
    ("container_cpu_usage_seconds_total", "counter",
     (("container", ("web", "POD")), ("cpu", ("total",)), ("namespace", ("shop",)),
      ("pod", ("web-7d9c6b6f9-x2x9z", "checkout-0"))), True, 6),
    ("container_memory_working_set_bytes", "gauge",
     (("container", ("web", "checkout")), ("namespace", ("shop",)),
      ("image", ("registry.example.com:5000/shop/web@sha256:4a5b", "nginx:1.25.3"))), True, 6),
    ("container_network_receive_bytes_total", "counter", (("interface", ("eth0",)), ("pod", ("checkout-0",))), True, 6),
    ("nginx_ingress_controller_requests", "counter",
     (("ingress", ("shop", "api")), ("method", ("GET", "POST")), ("namespace", ("shop",)),
      ("path", ("/", "/search?q=a,b", "/cart=1")), ("status", ("200", "404", "502"))), True, 7),
    ("nginx_ingress_controller_request_duration_seconds", "histogram",
     (("ingress", ("shop",)), ("status", ("200", "502"))), True, 7),
    ("redis_connected_clients", "gauge", (), True, 8),
    ("redis_commands_processed_total", "counter", (), True, 8),
    ("redis_memory_used_bytes", "gauge", (), True, 8),
    ("redis_keyspace_hits_total", "counter", (), True, 8),
    ("pg_up", "gauge", (), True, 9),
    ("pg_stat_database_xact_commit", "counter", (("datname", ("postgres", "shop", "template1")),), True, 9),
    ("pg_stat_activity_count", "gauge",
     (("datname", ("postgres", "shop")),
      ("state", ("active", "idle", "idle in transaction", "idle in transaction (aborted)"))), True, 9),
    ("pg_locks_count", "gauge",
     (("datname", ("shop",)), ("mode", ("accesssharelock", "rowexclusivelock", "exclusivelock"))), True, 9),
    ("haproxy_backend_http_responses_total", "counter",
     (("backend", ("web", "api")), ("code", ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))), False, 10),
    ("haproxy_backend_up", "untyped", (("backend", ("web", "api")),), False, 10),
    ("jvm_memory_bytes_used", "gauge", (("area", ("heap", "nonheap")),), True, 11),
    ("jvm_gc_collection_seconds", "summary", (("gc", ("G1 Young Generation", "G1 Old Generation")),), True, 11),
    ("jvm_threads_current", "gauge", (), True, 11),
    ("jvm_classes_loaded", "gauge", (), True, 11),
    ("rabbitmq_queue_messages", "gauge", (("queue", ("orders", "emails,bulk", "dead=letters")), ("vhost", ("/",))),
     False, 12),
    ("rabbitmq_connections", "gauge", (), False, 12),
]

_APPS = ("billing", "checkout", "search", "auth", "catalog", "inventory", "payments", "shipping",
         "notifier", "gateway", "scheduler", "ledger", "reports", "media", "profile", "session",
         "cart", "pricing", "fraud", "recommender")
_SUBSYSTEMS = ("http", "db", "cache", "queue", "worker", "rpc", "kafka", "s3", "grpc", "pool")
# (thing, kind, labels)
_THINGS = (
    ("requests_total", "counter", (("code", ("200", "404", "500")), ("method", ("get", "post")))),
    ("request_duration_seconds", "histogram", (("method", ("get", "post")),)),
    ("errors_total", "counter", (("reason", ("timeout", "refused", "reset by peer")),)),
    ("inflight", "gauge", ()),
    ("latency_seconds", "summary", ()),
    ("retries_total", "counter", ()),
    ("received_bytes_total", "counter", (("peer", ("10.0.0.1:5432", "10.0.0.2:5432")),)),
    ("sent_bytes_total", "counter", ()),
    ("connections", "gauge", (("state", ("active", "idle")),)),
    ("jobs_processed_total", "counter", (("queue", ("default", "mailers", "low,priority")),)),
    ("messages_pending", "untyped", (("topic", ("orders", "events")),)),
    ("hits_total", "counter", ()),
    ("misses_total", "counter", ()),
    ("evictions_total", "counter", ()),
    ("items", "gauge", (("tier", ("hot", "warm")),)),
    ("batch_size_bytes", "histogram", ()),
)

_SUMMARY_QUANTILES = ("0", "0.25", "0.5", "0.75", "1")
_HIST_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
_HIST_BUCKETS_BYTES = ("100", "1000", "10000", "100000", "1e+06", "+Inf")


def prometheus_catalogue(n):
    """The first n families of the catalogue: list of (name, kind, labels, typed, url)."""
    out = list(_REAL_FAMILIES[:n])
    i = 0
    limit = len(_APPS) * len(_SUBSYSTEMS) * len(_THINGS)
    while len(out) < n:
        if i >= limit:
            raise ValueError(f"at most {len(_REAL_FAMILIES) + limit} prometheus families")
        # The thing varies fastest, so that any run of 16 families has every kind.
        thing, kind, labels = _THINGS[i % len(_THINGS)]
        app = (i // len(_THINGS)) % len(_APPS)
        sub = i // (len(_THINGS) * len(_APPS))
        name = f"{_APPS[app]}_{_SUBSYSTEMS[sub]}_{thing}"
        # Some apps' exporters omit # TYPE lines: Telegraf reads their samples as untyped.
        typed = app % 5 != 3
        url = f"http://localhost:{8000 + app}/metrics" if app % 7 else \
            f"http://{_APPS[app]}.svc:9102/metrics?name[]={_SUBSYSTEMS[sub]}&x=y"
        out.append((name, kind, labels, typed, url))
        i += 1
    return [(name, kind, labels, typed, _URLS[url] if isinstance(url, int) else url)
            for name, kind, labels, typed, url in out]


def _family_series(fam_index, labels):
    """Deterministic label sets of one family: 1 to 4 series from the label product."""
    if not labels:
        return [{}]
    total = 1
    for _, values in labels:
        total *= len(values)
    r = random.Random(f"series/{fam_index}")
    count = min(total, 1 + r.randrange(4))
    picks = sorted(r.sample(range(total), count))
    series = []
    for pick in picks:
        s = {}
        for key, values in labels:
            s[key] = values[pick % len(values)]
            pick //= len(values)
        series.append(s)
    return series


def _prom_value(r, name, kind, base):
    """A plausible sample value for a family (float)."""
    if kind == "counter":
        return float(base) if "seconds" not in name else base / 1000.0
    if name.endswith("_seconds") or "duration" in name or "latency" in name:
        if "time_seconds" in name:   # a point in time: node_time_seconds, ..._start_time_seconds
            return 1.7e9 + r.randrange(10**6) / 1000.0
        return r.choice((r.uniform(1e-6, 9e-5), -r.uniform(1e-6, 9e-5), r.uniform(0.001, 2.5)))
    if "bytes" in name:
        return r.choice((float(r.randrange(10**6, 10**11)), r.uniform(1e15, 1e19)))
    if "load" in name or "celsius" in name:
        return round(r.uniform(0, 90), 2)
    return float(r.randrange(0, 500))


# ---------------------------------------------------------------------------------------
# Per-host state and the plugins
# ---------------------------------------------------------------------------------------

_DCS = ("eu-west-1", "eu-central-1", "us-east-1")
_SYSLOG_APPS = ("sshd", "kernel", "systemd", "cron", "postgres", "nginx", "dockerd", "sudo")
_FACILITIES = (("kern", 0), ("user", 1), ("daemon", 3), ("auth", 4), ("syslog", 5), ("cron", 9),
               ("authpriv", 10), ("local0", 16))
_SEVERITIES = (("emerg", 0), ("alert", 1), ("crit", 2), ("err", 3), ("warning", 4), ("notice", 5),
               ("info", 6), ("debug", 7))

# Host 0, interval 0: a fixed message the integration tests look for (on the wire:
# message="user \"bob\" logged in from C:\\Users\\bob, cmd=\"ls -la\"\n\tdone ✓ 日本語 é \\").
SPOT_SYSLOG_MESSAGE = 'user "bob" logged in from C:\\Users\\bob, cmd="ls -la"\n\tdone ✓ 日本語 é \\'

_MESSAGES = (
    'Accepted publickey for deploy from 10.0.4.17 port 52814 ssh2: ED25519 SHA256:q1w2e3r4',
    'pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)',
    '(root) CMD (   cd / && run-parts --report /etc/cron.hourly)',
    'Started Session 1234 of User deploy.',
    'ERROR:  duplicate key value violates unique constraint "orders_pkey"\nDETAIL:  Key (id)=(42) already exists.',
    '10.0.0.7 - - [01/Jan/2024:00:00:01 +0000] "GET /api/orders?id=1,2&x=y HTTP/1.1" 200 512 "-" "curl/8.4.0"',
    'EXT4-fs (sda1): mounted filesystem with ordered data mode. Opts: errors=remount-ro',
    'time="2024-01-01T00:00:00Z" level=info msg="ignoring event" module=libcontainerd namespace=moby',
    'Saved to C:\\ProgramData\\agent\\state.json (\\\\fileserver\\share)',
    'Unicode: café, naïve, Größe, 東京, Ωmega, 🚀 launched',
    'trailing backslash \\',
    'tab\tseparated\tvalues, and "quotes" = fine',
    'Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB',
    'multi-line\nstack trace:\n  at com.example.Foo.bar(Foo.java:42)\n  at com.example.Main.main(Main.java:7)',
    '',
)

_CONTAINER_IMAGES = (
    ("nginx", "1.25.3"), ("postgres", "15.5"), ("redis", "7.2.3"),
    ("registry.example.com:5000/shop/checkout", "2024.01.07-3f2a"), ("grafana/grafana", "latest"),
    ("quay.io/prometheus/node-exporter", "v1.7.0"),
)
_LABEL_SETS = (
    {"com.docker.compose.project": "shop", "com.docker.compose.service": "web",
     "maintainer": "Jane Doe <ops@example.com>"},
    {"com.docker.compose.project": "shop", "com.docker.compose.service": "checkout",
     "org.opencontainers.image.title": "checkout, cart = v2"},
    {"com.example.build id": "build=1234,ok", "com.example.path": "C:\\ProgramData\\app"},
    {"com.docker.compose.project": "monitoring", "description": "Grafana – tableaux de bord"},
    {},
)


class _Host:
    def __init__(self, index, seed, uint_support):
        self.index = index
        self.r = random.Random(f"{seed}/host/{index}")
        r = self.r
        self.name = f"{('web', 'db', 'app', 'k8s', 'cache')[index % 5]}-{_DCS[index % 3][:2]}-{index:04d}"
        self.tags = {"dc": _DCS[index % 3], "env": "prod" if index % 6 else "staging"}
        if index % 2 == 0:
            self.tags["rack"] = f"r{index % 17:02d}"
        self.uint = {"all": True, "none": False, "mixed": index % 4 != 3}[uint_support]
        self.n_cpus = (2, 4, 8)[r.randrange(3)] if index else 4
        self.new_agent = index % 3 != 2           # Telegraf >= 1.28: inodes_used_percent
        self.cgroup2 = index % 2 == 1
        every = index == 0
        self.docker = every or index % 3 != 1
        self.nginx = every or index % 4 == 0
        self.postgres = every or index % 5 == 2
        self.prober = every or index % 10 == 3
        self.site_check = every or index % 2 == 0
        self.containers = []
        if self.docker:
            for c in range(2 + r.randrange(3)):
                image, version = _CONTAINER_IMAGES[(index + c) % len(_CONTAINER_IMAGES)]
                labels = _LABEL_SETS[(index + c) % len(_LABEL_SETS)] if not (every and c == 0) else _LABEL_SETS[2]
                self.containers.append({
                    "name": f"{image.rsplit('/', 1)[-1]}-{c + 1}",
                    "image": image, "version": version, "labels": labels,
                    "id": "%064x" % r.getrandbits(256),
                    "status": "running" if c or index % 7 else "exited",
                })
        self.counters = {}
        self.boot = 1_700_000_000 - r.randrange(10**7)

    def counter(self, key, lo=0, hi=10**5):
        """A counter that grows by [lo, hi) at each call (it starts where a few hours of
        growth would have taken it)."""
        step = self.r.randrange(lo, hi) if hi > lo else lo
        if key not in self.counters:
            self.counters[key] = self.r.randrange(0, max(hi, 2) * 2000)
        self.counters[key] += step
        return self.counters[key]

    def big_counter(self, key):
        """A counter already past 2^53 (a double cannot hold it exactly), below 2^63."""
        if key not in self.counters:
            self.counters[key] = 2**53 + self.r.randrange(10**18)
        return self.counter(key, 10**10, 10**11)

    def u(self, key, v):
        return fuint(key, v, self.uint)

    def base_tags(self, **extra):
        t = dict(self.tags)
        t["host"] = self.name
        for k, v in extra.items():
            t[k] = v
        return t


def _maybe(r, p, field):
    """The field, or None with probability p: fields real plugins sometimes leave out."""
    return None if r.random() < p else field


def _fields(*fs):
    return [f for f in fs if f is not None]


def _percentages(r, n):
    parts = [r.random() ** 3 for _ in range(n)]
    s = sum(parts) or 1.0
    return [100.0 * p / s for p in parts]


def _host_points(h, k, ts, families, name):
    """Everything host h sends for interval k (at time ts)."""
    r = h.r
    pts = []

    def add(measurement, tags, fields, t=ts):
        for key in tags:
            _check_key(key)
            _check_key(tags[key])
        pts.append(Point(name(measurement), tags, fields, t, h.index))

    # cpu
    for c in [f"cpu{i}" for i in range(h.n_cpus)] + ["cpu-total"]:
        pct = _percentages(r, 10)
        keys = ("usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait", "usage_irq",
                "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice")
        vals = list(pct)
        vals[7] = 0.0 if r.random() < 0.7 else vals[7]  # steal: mostly 0 off the cloud
        add("cpu", h.base_tags(cpu=c), [ffloat(kk, v) for kk, v in zip(keys, vals)])

    # mem
    total = (4, 8, 16, 32, 64)[h.index % 5] * 1024**3
    free = r.randrange(total // 20, total // 2)
    avail = free + r.randrange(0, total // 4)
    used = total - avail
    add("mem", h.base_tags(), _fields(
        h.u("total", total), h.u("available", avail), h.u("used", used), h.u("free", free),
        h.u("cached", r.randrange(total // 10)), h.u("buffered", r.randrange(total // 50)),
        h.u("active", r.randrange(total // 3)), h.u("inactive", r.randrange(total // 3)),
        h.u("slab", r.randrange(total // 40)), h.u("shared", r.randrange(total // 100)),
        _maybe(r, 0.2, h.u("dirty", r.randrange(10**7))), _maybe(r, 0.2, h.u("write_back", r.randrange(10**4))),
        h.u("swap_cached", r.randrange(10**6)), h.u("commit_limit", total + 2**31),
        h.u("committed_as", r.randrange(total)),
        _maybe(r, 0.3, h.u("huge_pages_total", 0)), _maybe(r, 0.3, h.u("huge_pages_free", 0)),
        h.u("page_tables", r.randrange(10**8)), h.u("vmalloc_used", r.randrange(10**8)),
        ffloat("available_percent", 100.0 * avail / total), ffloat("used_percent", 100.0 * used / total)))

    # swap: the plugin's gauge metric, then its counter metric
    stotal = 2 * 1024**3 if h.index % 3 else 0
    sused = r.randrange(stotal // 10) if stotal else 0
    add("swap", h.base_tags(), [h.u("total", stotal), h.u("used", sused), h.u("free", stotal - sused),
                                ffloat("used_percent", 100.0 * sused / stotal if stotal else 0.0)])
    add("swap", h.base_tags(), [h.u("in", h.counter("swap_in", 0, 4096)), h.u("out", h.counter("swap_out", 0, 4096))])

    # disk
    mounts = [("/", "sda1", "ext4", "rw"), ("/boot/efi", "sda15", "vfat", "rw")]
    if h.index % 2 == 0:
        mounts.append(("/mnt/backup volume", "mapper/vg0-backup", "xfs", "rw"))
    if h.index % 3 == 0:
        mounts.append(("/srv/data=archive,2023", "nvme0n1p1", "ext4", "ro"))
    for path, dev, fstype, mode in mounts:
        dtotal = r.randrange(10**9, 2 * 10**12)
        dused = r.randrange(dtotal)
        itotal = r.randrange(10**5, 10**8)
        iused = r.randrange(itotal)
        add("disk", h.base_tags(path=path, device=dev, fstype=fstype, mode=mode), _fields(
            h.u("total", dtotal), h.u("free", dtotal - dused), h.u("used", dused),
            ffloat("used_percent", 100.0 * dused / dtotal),
            h.u("inodes_total", itotal), h.u("inodes_free", itotal - iused), h.u("inodes_used", iused),
            ffloat("inodes_used_percent", 100.0 * iused / itotal) if h.new_agent else None))

    # diskio
    for dev in ("sda", "nvme0n1") if h.index % 2 else ("sda",):
        merged = h.index % 5 != 4
        add("diskio", h.base_tags(name=dev), _fields(
            h.u("reads", h.counter(dev + "r")), h.u("writes", h.counter(dev + "w")),
            h.u("read_bytes", h.counter(dev + "rb", 0, 10**8)), h.u("write_bytes", h.counter(dev + "wb", 0, 10**8)),
            h.u("read_time", h.counter(dev + "rt")), h.u("write_time", h.counter(dev + "wt")),
            h.u("io_time", h.counter(dev + "it")), h.u("weighted_io_time", h.counter(dev + "wit")),
            h.u("iops_in_progress", r.randrange(8)),
            h.u("merged_reads", h.counter(dev + "mr")) if merged else None,
            h.u("merged_writes", h.counter(dev + "mw")) if merged else None))

    # net: per interface, then the protocol counters under interface=all
    ifaces = ["eth0"] if h.index % 2 else ["ens5"]
    if h.docker:
        ifaces.append("docker0")
    for ifc in ifaces:
        add("net", h.base_tags(interface=ifc), [
            h.u("bytes_sent", h.counter(ifc + "bs", 0, 10**9)), h.u("bytes_recv", h.counter(ifc + "br", 0, 10**9)),
            h.u("packets_sent", h.counter(ifc + "ps")), h.u("packets_recv", h.counter(ifc + "pr")),
            h.u("err_in", h.counter(ifc + "ei", 0, 2)), h.u("err_out", h.counter(ifc + "eo", 0, 2)),
            h.u("drop_in", h.counter(ifc + "di", 0, 3)), h.u("drop_out", h.counter(ifc + "do", 0, 1))])
    add("net", h.base_tags(interface="all"), [
        fint("icmp_inmsgs", h.counter("icmpin", 0, 50)), fint("icmp_outmsgs", h.counter("icmpout", 0, 50)),
        fint("tcp_activeopens", h.counter("tcpao", 0, 500)), fint("tcp_passiveopens", h.counter("tcppo", 0, 500)),
        fint("tcp_currestab", r.randrange(5, 400)), fint("tcp_retranssegs", h.counter("tcprs", 0, 20)),
        fint("udp_indatagrams", h.counter("udpin")), fint("udp_outdatagrams", h.counter("udpout")),
        fint("udp_inerrors", h.counter("udperr", 0, 1))])

    # netstat
    add("netstat", h.base_tags(), [fint(kk, r.randrange(hi)) for kk, hi in (
        ("tcp_established", 400), ("tcp_syn_sent", 5), ("tcp_syn_recv", 5), ("tcp_fin_wait1", 5),
        ("tcp_fin_wait2", 20), ("tcp_time_wait", 2000), ("tcp_close", 1), ("tcp_close_wait", 10),
        ("tcp_last_ack", 3), ("tcp_listen", 40), ("tcp_closing", 1), ("tcp_none", 50), ("udp_socket", 30))])

    # processes
    running, sleeping = r.randrange(1, 6), r.randrange(100, 400)
    old_kernel = h.index % 4 == 1
    add("processes", h.base_tags(), _fields(
        fint("blocked", r.randrange(3)), fint("zombies", r.randrange(2)), fint("stopped", 0),
        fint("running", running), fint("sleeping", sleeping), fint("total", running + sleeping),
        fint("unknown", 0) if old_kernel else None, fint("total_threads", sleeping * 3),
        fint("dead", 0) if not old_kernel else None, fint("paging", 0) if old_kernel else None,
        fint("idle", r.randrange(80)) if not old_kernel else None))

    # system: three metrics
    uptime = ts // 10**9 - h.boot
    days, rest = divmod(uptime, 86400)
    add("system", h.base_tags(), [
        ffloat("load1", round(r.uniform(0, h.n_cpus * 1.5), 2)), ffloat("load5", round(r.uniform(0, h.n_cpus), 2)),
        ffloat("load15", round(r.uniform(0, h.n_cpus), 2)), fint("n_cpus", h.n_cpus),
        fint("n_users", r.randrange(4)), fint("n_unique_users", r.randrange(3))])
    add("system", h.base_tags(), [h.u("uptime", uptime)])
    add("system", h.base_tags(), [fstr("uptime_format", "%d day%s, %2d:%02d" % (
        days, "" if days == 1 else "s", rest // 3600, rest % 3600 // 60))])

    # kernel
    add("kernel", h.base_tags(), [
        fint("boot_time", h.boot), fint("context_switches", h.counter("ctx", 0, 10**7)),
        fint("entropy_avail", 256 if h.index % 2 else r.randrange(2000, 4096)),
        fint("interrupts", h.counter("intr", 0, 10**7)), fint("processes_forked", h.counter("forks", 0, 3000))])

    # chrony
    add("chrony", h.base_tags(leap_status="normal", reference_id=("A9FEA97B", "PHC0", "C0A80101")[h.index % 3],
                              stratum=str(2 + h.index % 3)), [
        ffloat("system_time", r.choice((-1, 1)) * r.uniform(1e-7, 9e-5)),
        ffloat("last_offset", -r.uniform(1e-7, 5e-5)), ffloat("rms_offset", r.uniform(1e-7, 5e-5)),
        ffloat("frequency", -r.uniform(1, 30)), ffloat("residual_freq", r.uniform(-0.01, 0.01)),
        ffloat("skew", r.uniform(0.001, 0.5)), ffloat("root_delay", r.uniform(1e-4, 0.05)),
        ffloat("root_dispersion", r.uniform(1e-4, 0.01)), ffloat("update_interval", float(2 ** r.randrange(6, 11)))])

    # docker
    if h.docker:
        eng = {"engine_host": h.name, "server_version": ("24.0.7", "20.10.24+dfsg1")[h.index % 2]}
        running = sum(c["status"] == "running" for c in h.containers)
        add("docker", h.base_tags(**eng), [
            fint("n_containers", len(h.containers)), fint("n_containers_running", running),
            fint("n_containers_stopped", len(h.containers) - running), fint("n_containers_paused", 0),
            fint("n_images", 5 + h.index % 20), fint("n_cpus", h.n_cpus), fint("n_goroutines", r.randrange(40, 400)),
            fint("n_listener_events", 0), fint("n_used_file_descriptors", r.randrange(20, 200)),
            fint("memory_total", total)])
        for c in h.containers:
            ctags = dict(c["labels"])
            ctags.update(eng)
            ctags.update(container_name=c["name"], container_image=c["image"], container_version=c["version"],
                         container_status=c["status"])
            if c["status"] == "running":
                cid = c["id"]
                add("docker_container_cpu", h.base_tags(cpu="cpu-total", **ctags), [
                    h.u("throttling_periods", h.counter(cid + "tp", 0, 100)),
                    h.u("throttling_throttled_periods", h.counter(cid + "ttp", 0, 3)),
                    h.u("throttling_throttled_time", h.counter(cid + "ttt", 0, 10**6)),
                    h.u("usage_in_kernelmode", h.counter(cid + "k", 0, 10**9)),
                    h.u("usage_in_usermode", h.counter(cid + "u", 0, 10**9)),
                    ffloat("usage_percent", r.uniform(0, 100 * h.n_cpus)),
                    # System-wide CPU time in ns since boot: beyond 2^53 on a big, old host.
                    h.u("usage_system", h.big_counter(cid + "s")),
                    h.u("usage_total", h.counter(cid + "t", 0, 2 * 10**9)), fstr("container_id", cid)])
                limit = total if c["name"].startswith("nginx") else 2 * 1024**3
                usage = r.randrange(10**7, limit // 2)
                v1 = not h.cgroup2
                add("docker_container_mem", h.base_tags(**ctags), _fields(
                    h.u("active_anon", r.randrange(usage)), h.u("active_file", r.randrange(usage)),
                    h.u("cache", r.randrange(usage)) if v1 else None,
                    h.u("inactive_anon", r.randrange(usage)), h.u("inactive_file", r.randrange(usage)),
                    h.u("limit", limit), h.u("mapped_file", r.randrange(10**7)) if v1 else None,
                    h.u("max_usage", usage + r.randrange(10**6)) if v1 else None,
                    h.u("pgfault", h.counter(cid + "pf")), h.u("pgmajfault", h.counter(cid + "pmf", 0, 5)),
                    h.u("rss", r.randrange(usage)), h.u("unevictable", 0), h.u("usage", usage),
                    ffloat("usage_percent", 100.0 * usage / limit), fstr("container_id", cid)))
            started = 1_704_000_000_000_000_000 - 10**12 * (h.index + 1)
            exited = c["status"] != "running"
            add("docker_container_status", h.base_tags(**ctags), [
                fstr("container_id", c["id"]), fint("exitcode", 137 if exited else 0),
                fbool("oomkilled", exited), fint("pid", 0 if exited else 1000 + r.randrange(30000)),
                fint("started_at", started), fint("finished_at", started + 3600 * 10**9 if exited else 0),
                fint("uptime_ns", 0 if exited else ts - started)])

    # nginx
    if h.nginx:
        accepts = h.counter("ngx_acc", 0, 500)
        add("nginx", h.base_tags(port="80", server="localhost"), [
            fint("accepts", accepts), fint("active", r.randrange(1, 100)), fint("handled", accepts),
            fint("reading", r.randrange(3)), fint("requests", h.counter("ngx_req", 0, 5000)),
            fint("waiting", r.randrange(50)), fint("writing", r.randrange(1, 10))])

    # postgresql
    if h.postgres:
        server = f"host=10.0.{h.index % 256}.5 port=5432 user=telegraf dbname=postgres sslmode=prefer"
        for i, db in enumerate(("postgres", "shop", "analytics")[:2 + h.index % 2]):
            key = f"pg{db}"
            add("postgresql", h.base_tags(db=db, server=server), _fields(
                fint("xact_commit", h.counter(key + "xc", 0, 10**5)), fint("xact_rollback", h.counter(key + "xr", 0, 50)),
                fint("blks_read", h.counter(key + "br", 0, 10**4)), fint("blks_hit", h.counter(key + "bh", 0, 10**6)),
                fint("tup_returned", h.counter(key + "tr", 0, 10**7)), fint("tup_fetched", h.counter(key + "tf")),
                fint("tup_inserted", h.counter(key + "ti")), fint("tup_updated", h.counter(key + "tu")),
                fint("tup_deleted", h.counter(key + "td", 0, 100)), fint("conflicts", 0),
                fint("temp_files", h.counter(key + "tmf", 0, 2)), fint("temp_bytes", h.counter(key + "tmb", 0, 10**7)),
                fint("deadlocks", h.counter(key + "dl", 0, 1)),
                ffloat("blk_read_time", round(r.uniform(0, 1e5), 3)), ffloat("blk_write_time", 0.0),
                fint("numbackends", r.randrange(1, 50)), fint("datid", 5 + 16384 * i), fstr("datname", db),
                fstr("stats_reset", "2023-12-01 04:00:00.123456+00") if i == 1 else None))

    # http_response and x509_cert
    if h.prober:
        targets = (
            ("https://shop.example.com/", "GET"),
            ("https://api.example.com/health?probe=1&verbose=true", "GET"),
            ("http://10.0.0.12:8080/login", "POST"),
            ("https://legacy.example.org/status page", "HEAD"),
        )
        for url, method in targets:
            outcome = r.random()
            if outcome < 0.8 or (h.index == 0 and k == 0 and url.startswith("https://api")):
                code = 200
            elif outcome < 0.9:
                code = 503
            else:
                code = None  # timeout
            tags = h.base_tags(server=url, method=method)
            if code is None:
                tags["result"] = "timeout"
                add("http_response", tags, [ffloat("response_time", 5.0), fstr("result_type", "timeout"),
                                             fint("result_code", 4)])
            else:
                tags["result"] = "success"
                tags["status_code"] = str(code)
                add("http_response", tags, [
                    ffloat("response_time", r.uniform(0.002, 1.2)), fint("content_length", r.randrange(100, 50000)),
                    fint("http_response_code", code), fstr("result_type", "success"), fint("result_code", 0)])
        for cn, days_left in (("shop.example.com", 60 + h.index), ("old.example.org", -3)):
            valid = days_left > 0
            t = h.base_tags(source=f"https://{cn}:443", common_name=cn, issuer_common_name="R3",
                            serial_number="3a1b%012x" % (h.index * 7919), verification="valid" if valid else "invalid")
            add("x509_cert", t, _fields(
                fint("age", 90 * 86400 - days_left * 86400), fint("expiry", days_left * 86400),
                fint("startdate", ts // 10**9 - (90 * 86400 - days_left * 86400)),
                fint("enddate", ts // 10**9 + days_left * 86400), fint("verification_code", 0 if valid else 1),
                None if valid else fstr("verification_error", "x509: certificate has expired or is not yet valid: "
                                        "current time 2024-01-01T00:00:00Z is after 2023-12-29T00:00:00Z")))

    # syslog: 0-3 messages, 1 µs apart after the gather time
    n_msgs = 2 if (h.index == 0 and k == 0) else r.randrange(4)
    for m in range(n_msgs):
        if h.index == 0 and k == 0 and m == 0:
            app, msg, (fac, fcode), (sev, scode) = "sshd", SPOT_SYSLOG_MESSAGE, _FACILITIES[3], _SEVERITIES[6]
        else:
            app = _SYSLOG_APPS[r.randrange(len(_SYSLOG_APPS))]
            msg = _MESSAGES[r.randrange(len(_MESSAGES))]
            fac, fcode = _FACILITIES[r.randrange(len(_FACILITIES))]
            sev, scode = _SEVERITIES[r.randrange(len(_SEVERITIES))]
        t = ts + (m + 1) * 1000
        fields = _fields(
            fstr("message", msg), fint("version", 1), fint("severity_code", scode), fint("facility_code", fcode),
            fint("timestamp", t - r.randrange(10**6) * 1000), fstr("procid", str(r.randrange(1, 65536))),
            fstr("msgid", ("ID47", "audit", "-x-")[m % 3]) if r.random() < 0.5 else None)
        if r.random() < 0.3 or (h.index == 0 and k == 0):
            fields += [fbool("sdid", True), fstr("exampleSDID@32473_iut", "3"),
                       fstr("exampleSDID@32473_eventSource", "Application"),
                       fstr("exampleSDID@32473_eventID", "1011")]
        add("syslog", h.base_tags(appname=app, facility=fac, severity=sev, hostname=h.name,
                                  source=f"10.0.{h.index % 256}.{1 + m}"), fields, t)

    # site_check: a script's own line protocol (booleans in every spelling, escaped keys)
    if h.site_check:
        for i, check in enumerate(("backup nightly", "disk,inodes", "tls=expiry")):
            spot = (h.index, k, i) == (0, 0, 0)   # host 0's first check: ok=T,degraded=FALSE
            ok = r.random() < 0.8 or spot
            spellings = (("t", "T", "true", "True", "TRUE"), ("f", "F", "false", "False", "FALSE"))
            fields = [
                fbool("ok", ok, "T" if spot else r.choice(spellings[0 if ok else 1])),
                fbool("degraded", not ok, "FALSE" if spot else r.choice(spellings[1 if ok else 0])),
                fint("runtime,ms", r.randrange(5, 90000)), fint("exit=code", 0 if ok else -2),
                ffloat("score", r.choice((-1.5e-3, 2.5e+20, -r.uniform(0, 100), 0.0))),
            ]
            if not ok:
                fields.append(fstr("last error", 'rsync: "/srv/x" failed: Permission denied (13)\\n'))
            add("site_check", h.base_tags(check=check), fields)

    # prometheus
    for fi, (fam, kind, labels, typed, url) in enumerate(families):
        for si, series in enumerate(_family_series(fi, labels)):
            tags = h.base_tags(url=url, **series)
            ckey = f"{fi}/{si}"
            if kind in ("counter", "gauge", "untyped"):
                field = {"counter": "counter", "gauge": "gauge", "untyped": "value"}[kind] if typed else "value"
                base = h.counter(ckey, 0, 1000) if kind == "counter" else 0
                add(fam, tags, [ffloat(field, _prom_value(r, fam, kind, base))])
                continue
            count = h.counter(ckey, 1, 500)
            total_sum = count * r.uniform(1e-4, 0.3)
            if kind == "summary":
                qs = sorted(r.uniform(1e-6, 0.5) for _ in _SUMMARY_QUANTILES)
                # A quantile with no observations is NaN in the exposition: Telegraf drops it.
                present = [(q, v) for q, v in zip(_SUMMARY_QUANTILES, qs) if not (q == "0" and r.random() < 0.3)]
                if typed:
                    add(fam, tags, [ffloat(q, v) for q, v in present] +
                        [ffloat("sum", total_sum), ffloat("count", float(count))])
                else:
                    for q, v in present:
                        add(fam, dict(tags, quantile=q), [ffloat("value", v)])
                    add(fam + "_sum", tags, [ffloat("value", total_sum)])
                    add(fam + "_count", tags, [ffloat("value", float(count))])
            else:
                bounds = _HIST_BUCKETS_BYTES if "bytes" in fam else _HIST_BUCKETS
                cum, acc = [], 0
                for b in bounds[:-1]:
                    acc += r.randrange(0, max(1, count // len(bounds)))
                    cum.append(min(acc, count))
                cum.append(count)
                if typed:
                    add(fam, tags, [ffloat(b, float(c)) for b, c in zip(bounds, cum)] +
                        [ffloat("sum", total_sum), ffloat("count", float(count))])
                else:
                    for b, c in zip(bounds, cum):
                        add(fam + "_bucket", dict(tags, le=b), [ffloat("value", float(c))])
                    add(fam + "_sum", tags, [ffloat("value", total_sum)])
                    add(fam + "_count", tags, [ffloat("value", float(count))])
    return pts


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")


def generate_points(hosts=40, intervals=2, seed=1, prometheus_families=300, start_ns=DEFAULT_START_NS,
                    interval_ns=DEFAULT_INTERVAL_NS, name_prefix="", uint_support="mixed"):
    """The fleet's points, in the order the agents send them: interval by interval, host
    by host. Deterministic given the arguments."""
    if hosts < 1 or intervals < 1 or prometheus_families < 0:
        raise ValueError("hosts and intervals must be at least 1, prometheus_families at least 0")
    if start_ns % 1000 or interval_ns % 1000:
        raise ValueError("start_ns and interval_ns must be whole microseconds")
    if hosts * HOST_STEP_NS >= interval_ns:
        raise ValueError(f"at most {interval_ns // HOST_STEP_NS - 1} hosts for this interval")
    if uint_support not in ("mixed", "all", "none"):
        raise ValueError("uint_support is one of mixed, all, none")
    if name_prefix and not _NAME_RE.match(name_prefix):
        raise ValueError("name_prefix: lowercase ASCII letters, digits and underscores")
    families = prometheus_catalogue(prometheus_families)
    seen = {}

    def name(m):
        full = name_prefix + m
        n = seen.get(full)
        if n is None:
            if len(full.encode()) > MAX_NAME_BYTES or not _NAME_RE.match(full):
                raise ValueError(f"measurement name {full!r} is not a lowercase identifier of at most 63 bytes")
            seen[full] = full
            n = full
        return n

    host_objs = [_Host(i, seed, uint_support) for i in range(hosts)]
    points = []
    for k in range(intervals):
        for h in host_objs:
            ts = start_ns + k * interval_ns + h.index * HOST_STEP_NS
            points.extend(_host_points(h, k, ts, families, name))
    return points


def generate(hosts=40, intervals=2, seed=1, prometheus_families=300, start_ns=DEFAULT_START_NS,
             interval_ns=DEFAULT_INTERVAL_NS, name_prefix="", uint_support="mixed"):
    """(lines, expected): the fleet's lines (str, no trailing newline; a line may contain a
    raw newline inside a quoted string field), and {measurement: number of lines}."""
    points = generate_points(hosts=hosts, intervals=intervals, seed=seed, prometheus_families=prometheus_families,
                             start_ns=start_ns, interval_ns=interval_ns, name_prefix=name_prefix,
                             uint_support=uint_support)
    lines = [to_line(p) for p in points]
    expected = dict(collections.Counter(p.measurement for p in points))
    return lines, expected


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Line protocol shaped like a Telegraf fleet's (see the top of bench/fleet.py).")
    p.add_argument("--hosts", type=int, default=40, help="agents (default 40)")
    p.add_argument("--intervals", type=int, default=2, help="gathers per agent (default 2)")
    p.add_argument("--prometheus-families", type=int, default=300,
                   help="metric families each host's exporters expose (default 300)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-ns", type=int, default=DEFAULT_START_NS, help="time of the first tick (ns)")
    p.add_argument("--interval-ns", type=int, default=DEFAULT_INTERVAL_NS, help="interval (ns, default 10 s)")
    p.add_argument("--name-prefix", default="", help="put before every measurement name")
    p.add_argument("--uint-support", choices=("mixed", "all", "none"), default="mixed",
                   help="which agents write unsigned fields with 'u' (default: mixed)")
    p.add_argument("-o", "--output", default="-", help="line protocol file (default '-': stdout)")
    p.add_argument("--summary", help="write the JSON summary to this file instead of printing it")
    a = p.parse_args(argv)
    try:
        lines, expected = generate(hosts=a.hosts, intervals=a.intervals, seed=a.seed,
                                   prometheus_families=a.prometheus_families, start_ns=a.start_ns,
                                   interval_ns=a.interval_ns, name_prefix=a.name_prefix,
                                   uint_support=a.uint_support)
    except ValueError as e:
        p.error(str(e))
    data = ("\n".join(lines) + "\n").encode()
    if a.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(a.output, "wb") as f:
            f.write(data)
    summary = json.dumps({"lines": len(lines), "bytes": len(data), "measurements": len(expected),
                          "counts": dict(sorted(expected.items()))}, separators=(",", ":"))
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(summary + "\n")
    elif a.output == "-":
        print(summary, file=sys.stderr)
    else:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
