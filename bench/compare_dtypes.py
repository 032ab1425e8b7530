#!/usr/bin/env python3
"""poolgrad's average pooling in f16 and bf16 against f32, per element, in one run.

Usage (a release build of the CLI; no other dependency):

    cargo build --release -p poolgrad-cli
    python3 bench/compare_dtypes.py [--rounds 3] [--min-time 0.3] [--threads 1,2]

(POOLGRAD_BIN=path/to/poolgrad to time another build.) For each workload, layout,
thread count and pass it runs `poolgrad bench --json --reuse-outputs` for f32, f16 and
bf16, alternating the three, `--rounds` times, and prints each one's median of the
rounds' medians with their range, and the 16-bit time over the f32 time (#12's target:
at most 1.2).
"""

import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BINARY = os.environ.get("POOLGRAD_BIN", os.path.join(ROOT, "target", "release", "poolgrad"))

# name: (shape N,C,spatial..., bench flags), average pooling unless the flags name an op
WORKLOADS = {
    "W3": ("32,192,28,28", ["--kernel", "3", "--stride", "1", "--padding", "1", "--count-include-pad", "false"]),
    "W4": ("32,2048,7,7", ["--op", "global-avg"]),
    "W7": ("32,128,56,56", ["--kernel", "2", "--stride", "2"]),
    "A13": ("16,256,40,40", ["--kernel", "13", "--stride", "1", "--padding", "6"]),
}
DTYPES = ["f32", "f16", "bf16"]


def bench_ms(shape, flags, layout, threads, pass_, dtype, min_time):
    op = [] if "--op" in flags else ["--op", "avg"]
    args = [BINARY, "bench", *op, "--shape", shape, *flags, "--layout", layout, "--threads", str(threads),
            "--pass", pass_, "--dtype", dtype, "--min-time", str(min_time), "--json", "--reuse-outputs"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_s"] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    print("| workload | layout | threads | pass | f32 ms | f16 ms | bf16 ms | f16/f32 | bf16/f32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.workloads.split(","):
        shape, flags = WORKLOADS[name]
        for layout in ["ncx", "nxc"]:
            for threads in [int(t) for t in args.threads.split(",")]:
                for pass_ in ["forward", "backward"]:
                    times = {d: [] for d in DTYPES}
                    for _ in range(args.rounds):
                        for d in DTYPES:
                            times[d].append(bench_ms(shape, flags, layout, threads, pass_, d, args.min_time))
                    med = {d: statistics.median(t) for d, t in times.items()}
                    cells = [f"{med[d]:.2f} ({min(times[d]):.2f}–{max(times[d]):.2f})" for d in DTYPES]
                    ratios = [f"{med[d] / med['f32']:.2f}" for d in DTYPES[1:]]
                    print(f"| {name} | {layout} | {threads} | {pass_} | " + " | ".join(cells + ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
