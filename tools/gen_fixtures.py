#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for poolgrad's tests.

Usage (needs torch and numpy; CI never runs this, it reads the committed output):

    python3 tools/gen_fixtures.py            # writes crates/poolgrad/tests/fixtures/torch_pooling.json

Each case records the configuration, the input (in poolgrad's physical layout: ncx is
(N, C, d...), nxc is (N, d..., C)), PyTorch's output, argmax indices (max) and the input
gradient for a given grad-output. Floats are written as the exact f64 decimal of their
value (f32 values are exact in f64); NaN and infinities as the strings "nan", "inf", "-inf".
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "poolgrad", "tests", "fixtures", "torch_pooling.json")

# (name, op, spatial shape, kernel, stride, padding, dilation, ceil_mode, extra, input kind)
# extra: avg -> (count_include_pad, divisor_override)
CONFIGS = [
    # ---- max, 1-D
    ("max1d_k3s2p1", "max", (11,), (3,), (2,), (1,), (1,), False, None, "normal"),
    ("max1d_k4s1_dil2", "max", (12,), (4,), (1,), (0,), (2,), False, None, "normal"),
    ("max1d_k3s2p1_ceil", "max", (8,), (3,), (2,), (1,), (1,), True, None, "normal"),
    ("max1d_k2s2_ceil_odd", "max", (9,), (2,), (2,), (0,), (1,), True, None, "normal"),
    # ---- max, 2-D
    ("max2d_seed_k2s2", "max", (4, 4), (2, 2), (2, 2), (0, 0), (1, 1), False, None, "normal"),
    ("max2d_k3s2p1_overlap", "max", (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, None, "normal"),
    ("max2d_k3s1p1", "max", (6, 5), (3, 3), (1, 1), (1, 1), (1, 1), False, None, "normal"),
    ("max2d_rect_dil", "max", (7, 9), (3, 2), (2, 1), (1, 0), (1, 2), False, None, "normal"),
    ("max2d_k3s2_ceil_overhang", "max", (8, 8), (3, 3), (2, 2), (0, 0), (1, 1), True, None, "normal"),
    ("max2d_k2s2p1_ceil_startrule", "max", (5, 5), (2, 2), (2, 2), (1, 1), (1, 1), True, None, "normal"),
    ("max2d_k3_dil2_p1_ceil", "max", (7, 8), (3, 3), (2, 2), (1, 1), (2, 2), True, None, "normal"),
    ("max2d_k1s2_ceil", "max", (6, 6), (1, 1), (2, 2), (0, 0), (1, 1), True, None, "normal"),
    ("max2d_ties_k3s1p1", "max", (6, 6), (3, 3), (1, 1), (1, 1), (1, 1), False, None, "ties"),
    ("max2d_ties_k2s2", "max", (6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False, None, "ties"),
    ("max2d_ties_k3s2p1_ceil", "max", (7, 7), (3, 3), (2, 2), (1, 1), (1, 1), True, None, "ties"),
    ("max2d_nan_inf_k3s2p1", "max", (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, None, "special"),
    ("max2d_nan_inf_k2s1", "max", (5, 5), (2, 2), (1, 1), (0, 0), (1, 1), False, None, "special"),
    # ---- max, 3-D
    ("max3d_k2s2", "max", (4, 4, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), False, None, "normal"),
    ("max3d_k3s2p1", "max", (5, 4, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), False, None, "normal"),
    ("max3d_mixed_dil_ceil", "max", (6, 5, 7), (2, 3, 2), (1, 2, 2), (0, 1, 1), (2, 1, 1), True, None, "normal"),
    ("max3d_ties", "max", (4, 5, 4), (2, 2, 2), (1, 2, 1), (1, 1, 0), (1, 1, 1), False, None, "ties"),
    # ---- avg, 1-D
    ("avg1d_k3s2p1_incl", "avg", (11,), (3,), (2,), (1,), (1,), False, (True, None), "normal"),
    ("avg1d_k3s2p1_excl", "avg", (11,), (3,), (2,), (1,), (1,), False, (False, None), "normal"),
    ("avg1d_k2s2_ceil_odd", "avg", (5,), (2,), (2,), (0,), (1,), True, (True, None), "normal"),
    # ---- avg, 2-D
    ("avg2d_seed_k2s2", "avg", (4, 4), (2, 2), (2, 2), (0, 0), (1, 1), False, (True, None), "normal"),
    ("avg2d_k3s2p1_incl", "avg", (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, (True, None), "normal"),
    ("avg2d_k3s2p1_excl", "avg", (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, (False, None), "normal"),
    ("avg2d_k3s1p1_excl", "avg", (6, 5), (3, 3), (1, 1), (1, 1), (1, 1), False, (False, None), "normal"),
    ("avg2d_k3s2p1_ceil_incl", "avg", (8, 7), (3, 3), (2, 2), (1, 1), (1, 1), True, (True, None), "normal"),
    ("avg2d_k3s2p1_ceil_excl", "avg", (8, 7), (3, 3), (2, 2), (1, 1), (1, 1), True, (False, None), "normal"),
    ("avg2d_k3s2_ceil_overhang", "avg", (8, 8), (3, 3), (2, 2), (0, 0), (1, 1), True, (True, None), "normal"),
    ("avg2d_divisor_override", "avg", (7, 6), (3, 3), (2, 2), (1, 1), (1, 1), False, (True, 5), "normal"),
    ("avg2d_rect_ceil", "avg", (7, 9), (3, 2), (2, 1), (1, 1), (1, 1), True, (False, None), "normal"),
    ("avg2d_nan_inf", "avg", (6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False, (True, None), "special"),
    # ---- avg, 3-D
    ("avg3d_k3s2p1_excl", "avg", (5, 4, 6), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), False, (False, None), "normal"),
    ("avg3d_k2s2_ceil", "avg", (5, 5, 3), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), True, (True, None), "normal"),
    ("avg3d_divisor_override_ceil", "avg", (5, 4, 5), (2, 3, 2), (2, 2, 2), (1, 1, 1), (1, 1, 1), True, (True, 7), "normal"),
]

BATCH, CHANNELS = 2, 3


def fmt(v, dtype):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    # An f32 value is exactly representable as f64: written that way it parses back
    # exactly (no double rounding through a shortest-f32 decimal).
    return float(np.float32(v)) if dtype == "float32" else v


def make_input(kind, shape, rng, dtype):
    if kind == "ties":
        x = rng.integers(0, 4, size=shape).astype(np.float64)
    else:
        x = rng.standard_normal(shape)
    if kind == "special":
        flat = x.reshape(-1)
        n = flat.size
        picks = rng.choice(n, size=max(6, n // 8), replace=False)
        for j, p in enumerate(picks):
            flat[p] = [np.nan, np.inf, -np.inf][j % 3]
        # one channel entirely -inf, so some windows hold nothing but -inf
        x[0, 1] = -np.inf
    return x.astype(dtype)


def to_physical(t, layout):
    """(N, C, d...) -> poolgrad's physical order for the layout."""
    if layout == "ncx":
        return t
    k = t.dim() - 2
    return t.permute(0, *range(2, 2 + k), 1)


def run(cfg, layout, dtype, rng):
    name, op, spatial, kernel, stride, padding, dilation, ceil, extra, kind = cfg
    k = len(spatial)
    x_np = make_input(kind, (BATCH, CHANNELS) + spatial, rng, dtype)
    x = torch.from_numpy(x_np)
    if layout == "nxc" and k == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "nxc" and k == 3:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_(True)
    case = {
        "name": f"{name}_{layout}_{dtype}", "op": op, "layout": layout, "dtype": dtype,
        "kernel": list(kernel), "stride": list(stride), "padding": list(padding),
        "dilation": list(dilation), "ceil_mode": ceil,
    }
    if op == "max":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[k]
        y, idx = fn(x, kernel, stride, padding, dilation, ceil_mode=ceil, return_indices=True)
    else:
        include, override = extra
        case["count_include_pad"] = include
        case["divisor_override"] = override
        if k == 1:
            assert override is None
            y = F.avg_pool1d(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=include)
        else:
            fn = {2: F.avg_pool2d, 3: F.avg_pool3d}[k]
            y = fn(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=include, divisor_override=override)
        idx = None
    g = torch.from_numpy(rng.standard_normal(tuple(y.shape)).astype(dtype))
    y.backward(g)
    phys = lambda t: to_physical(t.detach(), layout).contiguous().reshape(-1).tolist()
    case["x_shape"] = list(to_physical(x.detach(), layout).shape)
    case["y_shape"] = list(to_physical(y.detach(), layout).shape)
    case["x"] = [fmt(v, dtype) for v in phys(x)]
    case["y"] = [fmt(v, dtype) for v in phys(y)]
    if idx is not None:
        case["indices"] = phys(idx)
    case["grad_output"] = [fmt(v, dtype) for v in phys(g)]
    case["grad_input"] = [fmt(v, dtype) for v in phys(x.grad)]
    return case


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20261128)
    cases = []
    for cfg in CONFIGS:
        for layout, dtype in (("ncx", "float32"), ("nxc", "float32"), ("ncx", "float64"), ("nxc", "float64")):
            cases.append(run(cfg, layout, dtype, rng))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/gen_fixtures.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes), torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
