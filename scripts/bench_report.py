#!/usr/bin/env python3
"""Medians and ratios of a `make bench` run; CSV, Markdown and a PNG chart.

Usage: bench_report.py OUTDIR CLOCK=DATA [CLOCK=DATA]
where CLOCK is "icount" or "wall" and DATA the boot's console.log.data.
"""
import csv
import os
import statistics
import sys
from collections import defaultdict

# Units where a smaller number is better.
LOWER_IS_BETTER = {"us", "ns", "bytes/page"}


def parse(path):
    runs = defaultdict(list)
    notifier = defaultdict(list)
    leaves = {}
    thp = {}
    for line in open(path, errors="replace"):
        f = line.split()
        if len(f) == 6 and f[1] == "result":
            runs[(f[2], int(f[3]), f[5], f[0])].append(float(f[4]))
        elif len(f) == 6 and f[1] == "notifier":
            notifier[(f[2], int(f[3]), f[0])].append(float(f[4]))
        elif len(f) == 6 and f[1] == "leaves":
            leaves[(f[2], int(f[3]), f[0])] = (int(f[4]), int(f[5]))
        elif len(f) == 5 and f[1] == "thp":
            thp[(int(f[2]), f[0])] = (int(f[3]), int(f[4]))
    return runs, notifier, leaves, thp


def size(w, s):
    """A workload's size label: the DMA workloads count pages, the
    invalidation workloads the mapped ranges."""
    if w.startswith("dma_"):
        return f"{s}pages"
    if "inval_ranges" in w:
        return f"{s}ranges"
    return f"{s}MiB"


def better(u, ours, theirs):
    """Ratio > 1 when ours is better."""
    if not ours or not theirs:
        return float("nan")
    return theirs / ours if u in LOWER_IS_BETTER else ours / theirs


def report(clock, path):
    """Prints one clock's lines; returns {name: (rust, c, unit, ratio, runs)}."""
    runs, notifier, leaves, thp = parse(path)
    tag = f"clock={clock}"
    rows = {}
    for w, s, u in sorted({(w, s, u) for (w, s, u, _) in runs}):
        rust = runs.get((w, s, u, "rust"))
        c = runs.get((w, s, u, "c"))
        if rust and not c:
            print(f"bench: {w}_{size(w, s)} rust={statistics.median(rust):.4g} unit={u} "
                  f"{tag} (rust only, no C counterpart)")
            continue
        if not rust or not c:
            continue
        r, cc = statistics.median(rust), statistics.median(c)
        ratio = better(u, r, cc)
        name = f"{w}_{size(w, s)}"
        rows[name] = (r, cc, u, ratio, len(rust))
        print(f"bench: {name} rust={r:.4g} c={cc:.4g} unit={u} ratio={ratio:.2f} {tag}")
    for (w, s, d), v in sorted(notifier.items()):
        if d == "rust":
            print(f"bench: {w}_{size(w, s)}_notifier_time rust={statistics.median(v):.4g} "
                  f"unit=us {tag} (time in our invalidate callback; no C counterpart)")
    # Huge leaves: each NAME_thp workload against NAME on small pages, per
    # driver (test_hmm keeps 4 KiB entries whatever the CPU maps), with the
    # two medians behind our ratio.
    for w, s, u in sorted({k[:3] for k in runs if k[0].endswith("_thp")}):
        ratios = {}
        medians = {}
        for d in ("rust", "c"):
            big = runs.get((w, s, u, d))
            small = runs.get((w[:-4], s, u, d))
            if big and small:
                b, sm = statistics.median(big), statistics.median(small)
                ratios[d] = better(u, b, sm)
                medians[d] = (b, sm)
        if ratios:
            detail = ""
            if "rust" in medians:
                b, sm = medians["rust"]
                detail = f"; rust thp={b:.4g} small={sm:.4g} {u}"
            print(f"bench: {w[:-4]}_thp_vs_small_{s}MiB "
                  + " ".join(f"{d}={r:.2f}" for d, r in ratios.items())
                  + f" unit=ratio {tag} (> 1: THP-backed faster{detail})")
    for (w, s, d), v in sorted(notifier.items()):
        small = notifier.get((w[:-4], s, d))
        if d == "rust" and w.endswith("_thp") and small:
            r = statistics.median(small) / statistics.median(v)
            print(f"bench: {w[:-4]}_thp_vs_small_{s}MiB_notifier_time rust={r:.2f} "
                  f"unit=ratio {tag} (> 1: THP-backed faster)")
    for (s, d), (pmd, total) in sorted(thp.items()):
        if d == "rust":
            print(f"bench: thp_{s}MiB_cpu_pmd_pages {pmd}/{total} {tag} (last run)")
    for (w, s, d), (huge, small) in sorted(leaves.items()):
        print(f"bench: {w}_{s}MiB_leaves {d} huge={huge} small={small} {tag}")
    return rows


def main():
    outdir = sys.argv[1]
    results = {}
    for arg in sys.argv[2:]:
        clock, path = arg.split("=", 1)
        results[clock] = report(clock, path)
    clocks = list(results)
    def order(name):
        w, size = name.rsplit("_", 1)
        return w, int(size.rstrip("abcdefghijklmnopqrstuvwxyzMKiB"))

    names = sorted({n for rows in results.values() for n in rows}, key=order)

    def cell(clock, name, i):
        row = results[clock].get(name)
        return row[i] if row else ""

    with open(os.path.join(outdir, "bench.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "unit"]
                    + [f"{x}_{c}" for c in clocks for x in ("rust", "c", "ratio", "runs")])
        for n in names:
            unit = next(results[c][n][2] for c in clocks if n in results[c])
            wr.writerow([n, unit] + [cell(c, n, i) for c in clocks for i in (0, 1, 3, 4)])
    # Markdown for the README: ratios of every clock, then the figures of
    # the last one (wall time when both ran: the icount unit is arbitrary).
    last = clocks[-1]
    with open(os.path.join(outdir, "bench.md"), "w") as f:
        f.write("| workload | " + " | ".join(f"ratio ({c})" for c in clocks)
                + f" | rust_hmm ({last}) | test_hmm ({last}) | unit |\n")
        f.write("|---" * (len(clocks) + 4) + "|\n")
        for n in names:
            ratios = [f"{cell(c, n, 3):.2f}" if n in results[c] else "–" for c in clocks]
            row = results[last].get(n)
            figures = [f"{row[0]:.4g}", f"{row[1]:.4g}", row[2]] if row else ["–", "–", "–"]
            f.write(f"| {n} | " + " | ".join(ratios + figures) + " |\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(10, 0.36 * len(names) * len(clocks) + 1.5))
    height = 0.8 / len(clocks)
    styles = {"icount": ("tab:green", "tab:red"), "wall": ("#9bd89b", "#f0a0a0")}
    for k, c in enumerate(clocks):
        ratios = [cell(c, n, 3) or float("nan") for n in names]
        good, bad = styles.get(c, ("tab:green", "tab:red"))
        ax.barh([i + k * height for i in range(len(names))], ratios, height=height,
                color=[good if x >= 1 else bad for x in ratios], label=c,
                edgecolor="black", linewidth=0.3)
    ax.set_yticks([i + height * (len(clocks) - 1) / 2 for i in range(len(names))])
    ax.set_yticklabels(names)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("ratio, rust_hmm vs test_hmm (> 1: rust_hmm better; log scale)")
    ax.set_title("make bench: medians, one VM boot per clock (TCG); "
                 "upper bar " + clocks[0] + (", lower bar " + clocks[1] if len(clocks) > 1 else ""))
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench.png"), dpi=90)


if __name__ == "__main__":
    main()
