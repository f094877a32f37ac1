"""
citus_plot.py — the scale curve of a bench/citus.py run: rows per second of each way of
loading (COPY through the coordinator; pg_influx on the coordinator, on the coordinator and a
worker node, on one worker node, on both worker nodes), median of the timed repetitions with
their range, from the text bench/citus.py prints.

    /usr/bin/python3 bench/citus_plot.py bench/results/citus-<run>.txt [out.png]

Needs python3-matplotlib (Debian); prints the table either way.
"""
import re
import statistics
import sys


def parse(path):
    """{way: [(rows/s, CPU s per M rows), ...]} of the timed repetitions (warm-ups left out)."""
    text = open(path).read()
    ways = {}
    for rep in text.split("\nrep ")[1:]:
        m = re.search(r"COPY binary via coordinator ([\d,]+) rows/s, CPU s per M rows: (.*)", rep)
        ways.setdefault("COPY binary via the coordinator", []).append(
            (int(m.group(1).replace(",", "")), cpu(m.group(2))))
        for m in re.finditer(r"pg_influx on ([\w ]+?): [\d.]+x COPY, ([\d,]+) rows/s, "
                             r"CPU s per M rows: (.*)", rep):
            ways.setdefault(f"pg_influx on {m.group(1)}", []).append(
                (int(m.group(2).replace(",", "")), cpu(m.group(3))))
    return ways


def cpu(text):
    return sum(float(x) for x in re.findall(r"[a-z ]+ ([\d.]+)", text))


def main():
    path = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else re.sub(r"\.txt$", "", path) + ".png"
    ways = parse(path)
    names = list(ways)
    med = [statistics.median(r for r, _ in ways[k]) for k in names]
    lo = [min(r for r, _ in ways[k]) for k in names]
    hi = [max(r for r, _ in ways[k]) for k in names]
    for k, m, a, b in zip(names, med, lo, hi):
        c = statistics.median(x for _, x in ways[k])
        print(f"{k:40s} {m:>9,.0f} rows/s ({a:,.0f}-{b:,.0f}), {m / med[0]:.2f}x COPY, "
              f"CPU {c:.2f} s per M rows")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = range(len(names))
    ax.bar(xs, med, color=["#888888"] + ["#3b75af"] * (len(names) - 1))
    ax.errorbar(xs, med, yerr=[[m - a for m, a in zip(med, lo)], [b - m for m, b in zip(med, hi)]],
                fmt="none", ecolor="black", capsize=4)
    ax.axhline(med[0], color="#888888", linestyle="--", linewidth=1)
    ax.set_xticks(list(xs))
    labels = {"pg_influx on 1 node": "pg_influx on\nthe coordinator",
              "pg_influx on 2 nodes": "pg_influx on the\ncoordinator + worker 0",
              "pg_influx on 1 worker node": "pg_influx on\nworker node 0",
              "pg_influx on 2 worker nodes": "pg_influx on\nboth worker nodes",
              "COPY binary via the coordinator": "COPY binary\nthrough the coordinator"}
    ax.set_xticklabels([labels.get(n, n) for n in names], fontsize=8)
    ax.set_ylabel("rows/s (median, range)")
    ax.set_title("1M cpu lines into a distributed table (coordinator + 2 worker nodes, 2 cores)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
