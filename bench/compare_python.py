#!/usr/bin/env python3
"""poolgrad's Python package against torch.nn.functional, and against its own CLI.

Usage (needs torch, numpy, the package installed, and a release build of the CLI):

    pip install ./crates/poolgrad-py && cargo build --release -p poolgrad-cli
    python3 bench/compare_python.py [--rounds 3] [--min-time 0.3] [--workloads W1,W3]

Three tables, all from one run, the measurements of each row interleaved round by round:
1. `poolgrad.torch` against `torch.nn.functional` on the workloads W1-W8 of
   bench/compare_torch.py, both layouts (channels_last tensors for nxc), 1 and 2 threads:
   the training forward (input requiring grad) and forward + backward through autograd.
   Ratio = torch time / poolgrad time (> 1: poolgrad faster); medians of the rounds'
   medians, with the rounds' lowest and highest ratio.
2. The binding's own cost: the NumPy API (`poolgrad.max_pool(..., return_indices=True)`,
   `poolgrad.max_pool_backward`, ...) and `poolgrad.torch` against `poolgrad bench`
   (the library called from Rust) for the same work, 2 threads, channels-first.
3. Per-call overhead on a tiny input (1x1x4x4, 2x2 max pooling), in microseconds.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import poolgrad
import poolgrad.torch as pt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_torch import BINARY, WORKLOADS, median_time, poolgrad_bench  # noqa: E402


def functions(module, op, rank, flags):
    """The forward of workload `op` in `module` (torch.nn.functional or poolgrad.torch)."""
    if op == "max":
        f = getattr(module, f"max_pool{rank}d")
        return lambda t: f(t, flags["kernel"], flags["stride"], flags["padding"])
    if op == "avg":
        f = getattr(module, f"avg_pool{rank}d")
        return lambda t: f(t, flags["kernel"], flags["stride"], flags["padding"], False, flags.get("count_include_pad", True))
    f = getattr(module, f"adaptive_avg_pool{rank}d")
    return lambda t: f(t, 1)


def make_input(shape, layout, dtype):
    x = torch.randn(shape, dtype=torch.float32 if dtype == "f32" else torch.float64)
    rank = len(shape) - 2
    if layout == "nxc":
        if rank == 1:
            return None
        x = x.contiguous(memory_format=torch.channels_last if rank == 2 else torch.channels_last_3d)
    return x.requires_grad_(True)


def train_step(f, x, g):
    def step():
        y = f(x)
        (gx,) = torch.autograd.grad(y, x, g)
        return gx

    return step


def set_threads(t):
    torch.set_num_threads(t)
    poolgrad.set_num_threads(t)


def table_torch(args):
    print("\n## 1. poolgrad.torch vs torch.nn.functional (ratio = torch / poolgrad; medians, [lowest, highest] round)")
    print(f"{'wl':<3} {'layout':<6} {'thr':>3} {'pass':<9} {'poolgrad ms':>11} {'torch ms':>9} {'ratio':>6} {'spread':>13}")
    for name in args.workloads.split(","):
        op, shape, flags, dtype = WORKLOADS[name]
        rank = len(shape) - 2
        for layout in ("ncx", "nxc"):
            x = make_input(shape, layout, dtype)
            if x is None:
                continue
            ours, theirs = functions(pt, op, rank, flags), functions(F, op, rank, flags)
            g = torch.randn_like(theirs(x).detach())
            for t in args.threads:
                set_threads(t)
                rows = {"forward": ([], []), "fwd+bwd": ([], [])}
                for _ in range(args.rounds):
                    for label, (a, b) in (
                        ("forward", (lambda: ours(x), lambda: theirs(x))),
                        ("fwd+bwd", (train_step(ours, x, g), train_step(theirs, x, g))),
                    ):
                        rows[label][0].append(median_time(a, args.min_time))
                        rows[label][1].append(median_time(b, args.min_time))
                for label, (pg, th) in rows.items():
                    ratios = [b / a for a, b in zip(pg, th)]
                    print(
                        f"{name:<3} {layout:<6} {t:>3} {label:<9} {np.median(pg) * 1e3:>11.2f} {np.median(th) * 1e3:>9.2f} "
                        f"{np.median(th) / np.median(pg):>6.2f} [{min(ratios):.2f}, {max(ratios):.2f}]"
                    )
                sys.stdout.flush()
            del x


def numpy_calls(op, flags, x):
    """The NumPy API's forward (the training forward for max) and backward, as the CLI times them."""
    if op == "max":
        args = (flags["kernel"], flags["stride"], flags["padding"])
        y, idx = poolgrad.max_pool(x, *args, return_indices=True)
        g = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
        return (lambda: poolgrad.max_pool(x, *args, return_indices=True),
                lambda: poolgrad.max_pool_backward(g, idx, x.shape, *args))
    if op == "avg":
        kw = dict(count_include_pad=flags.get("count_include_pad", True))
        args = (flags["kernel"], flags["stride"], flags["padding"])
        g = np.random.default_rng(1).standard_normal(poolgrad.avg_pool(x, *args, **kw).shape).astype(x.dtype)
        return (lambda: poolgrad.avg_pool(x, *args, **kw), lambda: poolgrad.avg_pool_backward(g, x.shape, *args, **kw))
    g = np.random.default_rng(1).standard_normal(poolgrad.global_avg_pool(x).shape).astype(x.dtype)
    return (lambda: poolgrad.global_avg_pool(x), lambda: poolgrad.global_avg_pool_backward(g, x.shape))


def table_overhead(args):
    print("\n## 2. The binding's cost: the same work through Python and through `poolgrad bench` (2 threads, ncx)")
    print(f"{'wl':<3} {'pass':<9} {'bench ms':>9} {'numpy ms':>9} {'numpy +%':>9} {'torch ms':>9} {'torch +%':>9}")
    set_threads(2)
    for name in args.workloads.split(","):
        op, shape, flags, dtype = WORKLOADS[name]
        rank = len(shape) - 2
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32 if dtype == "f32" else np.float64)
        fwd, bwd = numpy_calls(op, flags, x)
        xt = torch.from_numpy(x).requires_grad_(True)
        ours = functions(pt, op, rank, flags)
        gt = torch.randn_like(ours(xt).detach())
        samples = {"forward": ([], [], []), "backward": ([], [], [])}
        for _ in range(args.rounds):
            cli = {p: r["median_s"] for p, r in poolgrad_bench(op, shape, flags, "ncx", dtype, 2, args.min_time).items()}
            y = ours(xt)
            for label, f, tf in (
                ("forward", fwd, lambda: ours(xt)),
                ("backward", bwd, lambda: torch.autograd.grad(y, xt, gt, retain_graph=True)),
            ):
                samples[label][0].append(cli[label])
                samples[label][1].append(median_time(f, args.min_time))
                samples[label][2].append(median_time(tf, args.min_time))
        for label, (c, n, t) in samples.items():
            c, n, t = np.median(c), np.median(n), np.median(t)
            print(f"{name:<3} {label:<9} {c * 1e3:>9.2f} {n * 1e3:>9.2f} {100 * (n / c - 1):>+8.1f}% "
                  f"{t * 1e3:>9.2f} {100 * (t / c - 1):>+8.1f}%")
        sys.stdout.flush()


def table_tiny(args):
    print("\n## 3. Per-call overhead on a tiny input (1x1x4x4, max 2x2), microseconds (median)")
    set_threads(1)
    x = torch.randn(1, 1, 4, 4)
    xg = x.clone().requires_grad_(True)
    xn = x.numpy()
    rows = {
        "torch F.max_pool2d, forward": lambda: F.max_pool2d(x, 2),
        "poolgrad.torch.max_pool2d, forward": lambda: pt.max_pool2d(x, 2),
        "poolgrad.max_pool (NumPy), forward": lambda: poolgrad.max_pool(xn, 2),
        "torch F.max_pool2d, fwd+bwd": lambda: F.max_pool2d(xg, 2).sum().backward(),
        "poolgrad.torch.max_pool2d, fwd+bwd": lambda: pt.max_pool2d(xg, 2).sum().backward(),
    }
    for label, f in rows.items():
        runs = [median_time(f, args.min_time) for _ in range(args.rounds)]
        print(f"{label:<38} {np.median(runs) * 1e6:>8.1f} us  [{min(runs) * 1e6:.1f}, {max(runs) * 1e6:.1f}]")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--tables", default="1,2,3")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    if not os.path.exists(BINARY):
        sys.exit(f"build first: cargo build --release -p poolgrad-cli ({BINARY} missing)")
    print(f"torch {torch.__version__}, poolgrad {poolgrad.__version__}, numpy {np.__version__}")
    tables = args.tables.split(",")
    if "1" in tables:
        table_torch(args)
    if "2" in tables:
        table_overhead(args)
    if "3" in tables:
        table_tiny(args)


if __name__ == "__main__":
    main()
