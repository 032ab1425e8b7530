#!/usr/bin/env python3
"""Medians and spreads over several `compare_torch.py` runs saved in one file.

    python3 bench/summarize_runs.py bench/results-YYYY-MM-DD.txt

Reads every table row (`wl layout thr pass poolgrad_ms torch_ms ratio ...`) of the
runs in the file and prints, per row, the median of the runs' medians with the min-max
spread, as the Markdown table the README shows, then two counts: rows where poolgrad is
faster by the median ratio, and 2-thread rows at least 1.5x faster than 1 thread.
"""
import re
import statistics
import sys

ROW = re.compile(r"^(W\d|S\d+|A\d+)\s+(ncx|nxc)\s+(\d)\s+(forward|backward)\s+([\d.]+)\s+([\d.]+|—|-)\s+([\d.]+|—|-)")


def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        m = ROW.match(line.strip())
        if not m:
            continue
        wl, layout, thr, pas, ours, theirs, _ = m.groups()
        entry = rows.setdefault((wl, layout, int(thr), pas), {"ours": [], "theirs": [], "ratio": []})
        entry["ours"].append(float(ours))
        if theirs not in ("—", "-"):
            entry["theirs"].append(float(theirs))
            entry["ratio"].append(float(theirs) / float(ours))
    ms = lambda v: f"{v:.2f}"
    print("| wl | layout | thr | pass | poolgrad ms (median, min–max) | torch ms | ratio median (min–max) | runs |")
    print("|---|---|---|---|---|---|---|---|")
    faster = compared = 0
    for (wl, layout, thr, pas), e in rows.items():
        torch_ms = spread(e["theirs"], ms) if e["theirs"] else "—"
        ratio = spread(e["ratio"], ms) if e["ratio"] else "—"
        if e["ratio"]:
            compared += 1
            faster += statistics.median(e["ratio"]) > 1
        print(f"| {wl} | {layout} | {thr} | {pas} | {spread(e['ours'], ms)} | {torch_ms} | {ratio} | {len(e['ours'])} |")
    scaled = total = 0
    for (wl, layout, thr, pas), e in rows.items():
        one = rows.get((wl, layout, 1, pas))
        if thr == 2 and one:
            total += 1
            scaled += statistics.median(one["ours"]) / statistics.median(e["ours"]) >= 1.5
    print(f"\nfaster than PyTorch by the median ratio: {faster} of {compared} rows")
    print(f"2 threads >= 1.5x 1 thread (medians): {scaled} of {total} rows")


if __name__ == "__main__":
    main(sys.argv[1])
