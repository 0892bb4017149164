#!/usr/bin/env python3
"""Medians and ratios of a `make bench` run; CSV and a PNG chart."""
import csv
import os
import statistics
import sys
from collections import defaultdict

# Units where a smaller number is better.
LOWER_IS_BETTER = {"us", "ns", "bytes/page"}


def main():
    data, outdir = sys.argv[1], sys.argv[2]
    runs = defaultdict(list)
    notifier = defaultdict(list)
    leaves = {}
    thp = {}
    for line in open(data, errors="replace"):
        f = line.split()
        if len(f) == 6 and f[1] == "result":
            runs[(f[2], int(f[3]), f[5], f[0])].append(float(f[4]))
        elif len(f) == 6 and f[1] == "notifier":
            notifier[(f[2], int(f[3]), f[0])].append(float(f[4]))
        elif len(f) == 6 and f[1] == "leaves":
            leaves[(f[2], int(f[3]), f[0])] = (int(f[4]), int(f[5]))
        elif len(f) == 5 and f[1] == "thp":
            thp[(int(f[2]), f[0])] = (int(f[3]), int(f[4]))
    rows = []
    keys = sorted({(w, s, u) for (w, s, u, _) in runs})
    for w, s, u in keys:
        rust = runs.get((w, s, u, "rust"))
        c = runs.get((w, s, u, "c"))
        if rust and not c:
            print(f"bench: {w}_{s}MiB rust={statistics.median(rust):.4g} unit={u} "
                  f"(rust only, no C counterpart)")
            continue
        if not rust or not c:
            continue
        r, cc = statistics.median(rust), statistics.median(c)
        ratio = (cc / r if u in LOWER_IS_BETTER else r / cc) if r and cc else float("nan")
        name = f"{w}_{s}MiB"
        rows.append((name, r, cc, u, ratio, len(rust)))
        print(f"bench: {name} rust={r:.4g} c={cc:.4g} unit={u} ratio={ratio:.2f}")
    for (w, s, d), v in sorted(notifier.items()):
        if d == "rust":
            print(f"bench: {w}_{s}MiB_notifier_time rust={statistics.median(v):.4g} "
                  f"unit=us (time in our invalidate callback; no C counterpart)")
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
                ratios[d] = sm / b if u in LOWER_IS_BETTER else b / sm
                medians[d] = (b, sm)
        if ratios:
            detail = ""
            if "rust" in medians:
                b, sm = medians["rust"]
                detail = f"; rust thp={b:.4g} small={sm:.4g} {u}"
            print(f"bench: {w[:-4]}_thp_vs_small_{s}MiB "
                  + " ".join(f"{d}={r:.2f}" for d, r in ratios.items())
                  + f" unit=ratio (> 1: THP-backed faster{detail})")
    for (w, s, d), v in sorted(notifier.items()):
        small = notifier.get((w[:-4], s, d))
        if d == "rust" and w.endswith("_thp") and small:
            r = statistics.median(small) / statistics.median(v)
            print(f"bench: {w[:-4]}_thp_vs_small_{s}MiB_notifier_time rust={r:.2f} "
                  f"unit=ratio (> 1: THP-backed faster)")
    for (s, d), (pmd, total) in sorted(thp.items()):
        if d == "rust":
            print(f"bench: thp_{s}MiB_cpu_pmd_pages {pmd}/{total} (last run)")
    for (w, s, d), (huge, small) in sorted(leaves.items()):
        print(f"bench: {w}_{s}MiB_leaves {d} huge={huge} small={small}")
    with open(os.path.join(outdir, "bench.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "rust", "c", "unit", "ratio", "runs"])
        wr.writerows(rows)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    names = [r[0] for r in rows]
    ratios = [r[4] for r in rows]
    colors = ["tab:green" if x >= 1 else "tab:red" for x in ratios]
    ax.barh(names, ratios, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("ratio, rust_hmm vs test_hmm (> 1: rust_hmm better)")
    ax.set_title("make bench: medians, one VM boot (TCG)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "bench.png"), dpi=90)


if __name__ == "__main__":
    main()
