#!/usr/bin/env python3
"""poolgrad against PyTorch CPU on the workloads users hit, in one interleaved run.

Usage (needs torch and numpy, and a release build of the CLI):

    cargo build --release -p poolgrad-cli
    python3 bench/compare_torch.py [--min-time 0.5] [--workloads W1,W3] [--reuse-outputs]

(POOLGRAD_BIN=path/to/poolgrad to time another build.) W1-W8 are the common layers,
S5/S9/S13/A13 YOLO's SPPF stride-1 pools.

For each workload (W1-W8), layout (ncx, nxc), thread count (1, 2) and pass (forward,
backward) it runs `poolgrad bench --json` and the same PyTorch call with
`torch.set_num_threads(T)`, alternating the two, and prints medians, the ratio
torch/poolgrad (> 1: poolgrad is faster) and each side's share of a STREAM-like triad
bandwidth measured in the same run. "Ideal bytes" are the contract's: forward reads x
and writes y (+ int64 indices for max); backward reads grad-output (+ indices) and
writes grad-input. The PyTorch forward for max is the training forward (with indices).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BINARY = os.environ.get("POOLGRAD_BIN", os.path.join(ROOT, "target", "release", "poolgrad"))

# name: (op, shape N,C,spatial..., flags, dtype)
WORKLOADS = {
    "W1": ("max", (32, 64, 112, 112), dict(kernel=3, stride=2, padding=1), "f32"),
    "W2": ("max", (32, 128, 56, 56), dict(kernel=2, stride=2, padding=0), "f32"),
    "W3": ("avg", (32, 192, 28, 28), dict(kernel=3, stride=1, padding=1, count_include_pad=False), "f32"),
    "W4": ("global-avg", (32, 2048, 7, 7), dict(), "f32"),
    "W5": ("max", (32, 256, 4096), dict(kernel=3, stride=2, padding=1), "f32"),
    "W6": ("max", (4, 32, 32, 64, 64), dict(kernel=2, stride=2, padding=0), "f32"),
    "W7": ("avg", (32, 128, 56, 56), dict(kernel=2, stride=2, padding=0), "f32"),
    "W8": ("max", (32, 64, 112, 112), dict(kernel=3, stride=2, padding=1), "f64"),
    # YOLO's SPPF block (pytorch/pytorch#123047): stride-1 "same" windows.
    "S5": ("max", (16, 256, 40, 40), dict(kernel=5, stride=1, padding=2), "f32"),
    "S9": ("max", (16, 256, 40, 40), dict(kernel=9, stride=1, padding=4), "f32"),
    "S13": ("max", (16, 256, 40, 40), dict(kernel=13, stride=1, padding=6), "f32"),
    "A13": ("avg", (16, 256, 40, 40), dict(kernel=13, stride=1, padding=6), "f32"),
}


def triad_gbps(threads):
    """A STREAM-like triad a = b + 3c over 3 x 64 MB with torch on `threads` threads."""
    torch.set_num_threads(threads)
    n = 16 * 1024 * 1024
    b, c = torch.rand(n), torch.rand(n)
    a = torch.empty(n)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        torch.add(b, c, alpha=3.0, out=a)
        times.append(time.perf_counter() - t)
    # reads b and c, writes a
    return 3 * 4 * n / sorted(times)[len(times) // 2] / 1e9


def torch_call(op, shape, flags, layout, dtype):
    tdtype = torch.float32 if dtype == "f32" else torch.float64
    x = torch.randn(shape, dtype=tdtype)
    k = len(shape) - 2
    if layout == "nxc":
        if k == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        elif k == 3:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        else:
            return None  # PyTorch has no channels-last 1-D layout
    if op == "max":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[k]
        fwd = lambda t: fn(t, flags["kernel"], flags["stride"], flags["padding"], return_indices=True)[0]
    elif op == "avg":
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[k]
        fwd = lambda t: fn(t, flags["kernel"], flags["stride"], flags["padding"], count_include_pad=flags.get("count_include_pad", True))
    else:
        fn = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[k]
        fwd = lambda t: fn(t, 1)
    return x, fwd


def median_time(f, min_time):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def torch_bench(op, shape, flags, layout, dtype, threads, min_time):
    torch.set_num_threads(threads)
    made = torch_call(op, shape, flags, layout, dtype)
    if made is None:
        return None
    x, fwd = made
    forward = median_time(lambda: fwd(x), min_time)
    xg = x.detach().clone().requires_grad_(True)
    y = fwd(xg)
    g = torch.randn_like(y)
    backward = median_time(lambda: torch.autograd.grad(y, xg, g, retain_graph=True), min_time)
    return {"forward": forward, "backward": backward}


def poolgrad_bench(op, shape, flags, layout, dtype, threads, min_time, compact=False, reuse=False):
    args = [BINARY, "bench", "--op", op, "--shape", ",".join(map(str, shape)), "--layout", layout,
            "--dtype", dtype, "--threads", str(threads), "--min-time", str(min_time), "--json"]
    if compact:
        args += ["--argmax", "compact"]
    if reuse:
        args += ["--reuse-outputs"]
    for key in ("kernel", "stride", "padding"):
        if key in flags:
            args += [f"--{key}", str(flags[key])]
    if "count_include_pad" in flags:
        args += ["--count-include-pad", "true" if flags["count_include_pad"] else "false"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["pass"]: r for r in rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--layouts", default="ncx,nxc")
    parser.add_argument("--compact", action="store_true",
                        help="also time max pooling with poolgrad's 1-byte argmax state (rows 'cmp-fwd'/'cmp-bwd'; "
                             "%% of bandwidth from its own, smaller, ideal bytes)")
    parser.add_argument("--reuse-outputs", action="store_true",
                        help="time poolgrad's *_into variants writing into buffers allocated once (bench --reuse-outputs)")
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit(f"build first: cargo build --release -p poolgrad-cli ({BINARY} missing)")
    threads_list = [int(t) for t in args.threads.split(",")]
    triad = {t: None for t in threads_list}
    for t in threads_list:
        triad[t] = triad_gbps(t)
    print(f"triad bandwidth (torch.add): " + ", ".join(f"{t} thread(s) {triad[t]:.1f} GB/s" for t in threads_list))
    print(f"torch {torch.__version__}; medians; ratio = torch / poolgrad (> 1: poolgrad faster); % = ideal bytes / time / triad")
    header = f"{'wl':<3} {'layout':<6} {'thr':>3} {'pass':<8} {'poolgrad ms':>11} {'torch ms':>9} {'ratio':>6} {'pg %bw':>7} {'torch %bw':>9}"
    print(header)
    for name in args.workloads.split(","):
        op, shape, flags, dtype = WORKLOADS[name]
        for layout in args.layouts.split(","):
            for t in threads_list:
                ours = poolgrad_bench(op, shape, flags, layout, dtype, t, args.min_time, reuse=args.reuse_outputs)
                theirs = torch_bench(op, shape, flags, layout, dtype, t, args.min_time)
                for p in ("forward", "backward"):
                    r = ours[p]
                    pg_ms = r["median_s"] * 1e3
                    pg_bw = 100 * r["bytes"] / r["median_s"] / 1e9 / triad[t]
                    if theirs is None:
                        print(f"{name:<3} {layout:<6} {t:>3} {p:<8} {pg_ms:>11.2f} {'-':>9} {'-':>6} {pg_bw:>6.0f}% {'-':>9}")
                        continue
                    th = theirs[p]
                    th_bw = 100 * r["bytes"] / th / 1e9 / triad[t]
                    print(f"{name:<3} {layout:<6} {t:>3} {p:<8} {pg_ms:>11.2f} {th * 1e3:>9.2f} {th / r['median_s']:>6.2f} {pg_bw:>6.0f}% {th_bw:>8.0f}%")
                if args.compact and op == "max":
                    compact = poolgrad_bench(op, shape, flags, layout, dtype, t, args.min_time, compact=True,
                                             reuse=args.reuse_outputs)
                    for p, label in (("forward", "cmp-fwd"), ("backward", "cmp-bwd")):
                        r = compact[p]
                        pg_ms = r["median_s"] * 1e3
                        pg_bw = 100 * r["bytes"] / r["median_s"] / 1e9 / triad[t]
                        th = f"{theirs[p] * 1e3:>9.2f}" if theirs else f"{'-':>9}"
                        ratio = f"{theirs[p] / r['median_s']:>6.2f}" if theirs else f"{'-':>6}"
                        print(f"{name:<3} {layout:<6} {t:>3} {label:<8} {pg_ms:>11.2f} {th} {ratio} {pg_bw:>6.0f}% {'':>9}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
