#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for poolgrad's tests.

Usage (needs torch and numpy; CI never runs this, it reads the committed output):

    python3 tools/gen_fixtures.py   # writes crates/poolgrad/tests/fixtures/torch_pooling.json (max, avg),
                                    # torch_family.json (adaptive, LP, unpool, fractional, halves)
                                    # and torch_one_number.json (every op with one number per list)

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




# --------------------------------------------------------------------------------------
# The rest of the family: adaptive, global, LP, max unpool, fractional max, double
# backward, half precision. Written to torch_family.json.

FAMILY_OUT = os.path.join(os.path.dirname(OUT), "torch_family.json")


def tensor_list(t, layout, dtype):
    return [fmt(v, dtype) for v in to_physical(t.detach(), layout).contiguous().reshape(-1).double().tolist()]


def memory_format(x, layout):
    k = x.dim() - 2
    if layout == "nxc" and k == 2:
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "nxc" and k == 3:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def family_case(name, op, spatial, layout, dtype, rng, fn, extra, positive=False, double=True):
    """Runs fn(x) -> (y, indices or None); records forward, backward and double backward."""
    tdtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    x64 = rng.standard_normal((BATCH, CHANNELS) + spatial)
    if positive:
        x64 = np.abs(x64) + 0.1
    x = memory_format(torch.from_numpy(x64).to(tdtype), layout).requires_grad_(True)
    y, idx = fn(x)
    g = torch.from_numpy(rng.standard_normal(tuple(y.shape))).to(tdtype)
    case = {"name": f"{name}_{layout}_{dtype}", "op": op, "layout": layout, "dtype": dtype}
    case.update(extra)
    if double:
        (gx,) = torch.autograd.grad(y, x, g, create_graph=True)
        ggx = torch.from_numpy(rng.standard_normal(tuple(x.shape))).to(tdtype)
        gg = g.clone().requires_grad_(True)
        (gx2,) = torch.autograd.grad(y, x, gg, create_graph=True)
        if op == "lp" and extra["norm_type"] != "inf":
            # LP's backward depends on x too: record both parts of the double backward.
            ggy, ggx_x = torch.autograd.grad(gx2, (gg, x), ggx)
            case["double_backward_input"] = tensor_list(ggx_x, layout, dtype)
        else:
            (ggy,) = torch.autograd.grad(gx2, gg, ggx)
        case["grad_grad_input"] = tensor_list(ggx, layout, dtype)
        case["grad_grad_output"] = tensor_list(ggy, layout, dtype)
    else:
        (gx,) = torch.autograd.grad(y, x, g)
    case["x_shape"] = list(to_physical(x.detach(), layout).shape)
    case["y_shape"] = list(to_physical(y.detach(), layout).shape)
    case["x"] = tensor_list(x, layout, dtype)
    case["y"] = tensor_list(y, layout, dtype)
    if idx is not None:
        case["indices"] = to_physical(idx, layout).contiguous().reshape(-1).tolist()
    case["grad_output"] = tensor_list(g, layout, dtype)
    case["grad_input"] = tensor_list(gx, layout, dtype)
    return case


def family(rng):
    cases = []
    both = [("ncx", "float32"), ("nxc", "float32"), ("ncx", "float64"), ("nxc", "float64")]
    adaptive = [
        ((11,), (4,)), ((7, 9), (3, 4)), ((5, 4), (7, 6)), ((6, 5), (1, 1)), ((5, 6, 7), (2, 4, 3)),
    ]
    for spatial, out in adaptive:
        k = len(spatial)
        mx = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[k]
        av = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[k]
        tag = "x".join(map(str, spatial)) + "_to_" + "x".join(map(str, out))
        for layout, dtype in both:
            cases.append(family_case(f"adaptive_max_{tag}", "adaptive_max", spatial, layout, dtype, rng,
                                     lambda x: mx(x, out, return_indices=True), {"output_size": list(out)}))
            cases.append(family_case(f"adaptive_avg_{tag}", "adaptive_avg", spatial, layout, dtype, rng,
                                     lambda x: (av(x, out), None), {"output_size": list(out)}))
    # LP: PyTorch's formula, p in {1, 2, 3, 1.5, inf}; 1-D, 2-D, 3-D; ceil mode.
    lp = [
        ("lp1d_k3s2", (11,), (3,), (2,), False), ("lp2d_k2s2", (6, 6), (2, 2), (2, 2), False),
        ("lp2d_k3s2_ceil", (8, 7), (3, 3), (2, 2), True), ("lp3d_k2s1", (4, 5, 4), (2, 2, 2), (1, 1, 1), False),
    ]
    for name, spatial, kernel, stride, ceil in lp:
        k = len(spatial)
        fn = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}[k]
        for p in (1.0, 2.0, 3.0, 1.5, float("inf")):
            kk = kernel[0] if k == 1 else kernel
            ss = stride[0] if k == 1 else stride
            for layout, dtype in both[:1] + both[2:3]:
                cases.append(family_case(f"{name}_p{p}", "lp", spatial, layout, dtype, rng,
                                         lambda x: (fn(x, p, kk, ss, ceil_mode=ceil), None),
                                         {"norm_type": "inf" if p == float("inf") else p, "kernel": list(kernel),
                                          "stride": list(stride), "ceil_mode": ceil},
                                         positive=(p == 1.5)))
    # Max unpool of a max pool's indices, with default and explicit output sizes.
    unpool = [
        ("unpool1d_k2s2", (8,), (2,), (2,), (0,), None), ("unpool2d_k2s2", (6, 6), (2, 2), (2, 2), (0, 0), None),
        ("unpool2d_k3s2p1_size", (7, 7), (3, 3), (2, 2), (1, 1), (7, 7)), ("unpool3d_k2s2", (4, 4, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), None),
    ]
    for name, spatial, kernel, stride, padding, size in unpool:
        k = len(spatial)
        mp = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[k]
        mu = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}[k]
        for layout, dtype in both[:1] + both[2:3]:
            x0 = torch.from_numpy(rng.standard_normal((BATCH, CHANNELS) + spatial)).to(torch.float32 if dtype == "float32" else torch.float64)
            pooled, idx = mp(x0, kernel, stride, padding, return_indices=True)
            def fn(x, idx=idx, kernel=kernel, stride=stride, padding=padding, size=size, mu=mu):
                return mu(x, idx, kernel, stride, padding, output_size=size), None
            case = family_case(name, "unpool", tuple(pooled.shape[2:]), layout, dtype, rng, fn,
                               {"kernel": list(kernel), "stride": list(stride), "padding": list(padding),
                                "output_size": list(size) if size else None})
            case["unpool_indices"] = idx.reshape(-1).tolist()
            cases.append(case)
    # Fractional max pooling with explicit samples.
    frac = [("frac2d", (9, 8), (2, 2), (5, 4)), ("frac2d_k3", (10, 10), (3, 3), (4, 6)), ("frac3d", (7, 6, 8), (2, 2, 3), (4, 3, 5))]
    for name, spatial, kernel, out in frac:
        k = len(spatial)
        fn = {2: F.fractional_max_pool2d, 3: F.fractional_max_pool3d}[k]
        for layout, dtype in both:
            tdtype = torch.float32 if dtype == "float32" else torch.float64
            samples = torch.from_numpy(rng.uniform(0, 1, (BATCH, CHANNELS, k))).to(tdtype)
            case = family_case(name, "fractional_max", spatial, layout, dtype, rng,
                               lambda x: fn(x, kernel, output_size=out, return_indices=True, _random_samples=samples),
                               {"kernel": list(kernel), "output_size": list(out)})
            case["samples"] = [fmt(v, dtype) for v in samples.reshape(-1).double().tolist()]
            cases.append(case)
    # Half precision: max, avg, adaptive avg, LP, against PyTorch's own half results.
    for dtype in ("float16", "bfloat16"):
        for layout in ("ncx", "nxc"):
            cases.append(family_case("half_max2d_k3s2p1", "max", (7, 6), layout, dtype, rng,
                                     lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True),
                                     {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": False}, double=False))
            cases.append(family_case("half_avg2d_k3s2p1", "avg", (7, 6), layout, dtype, rng,
                                     lambda x: (F.avg_pool2d(x, 3, 2, 1), None),
                                     {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": False,
                                      "count_include_pad": True, "divisor_override": None}, double=False))
            cases.append(family_case("half_adaptive_avg", "adaptive_avg", (7, 9), layout, dtype, rng,
                                     lambda x: (F.adaptive_avg_pool2d(x, (3, 4)), None), {"output_size": [3, 4]}, double=False))
    return cases


def main_family():
    rng = np.random.default_rng(20261129)
    cases = family(rng)
    with open(FAMILY_OUT, "w") as f:
        json.dump({"generator": "tools/gen_fixtures.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(FAMILY_OUT)} ({os.path.getsize(FAMILY_OUT)} bytes)")


# --------------------------------------------------------------------------------------
# One number for every dim, as PyTorch users write it (lp_pool2d(x, 2, 2), max_pool2d(x,
# 3, 2, 1), adaptive_avg_pool3d(x, 2), ...). The lists are recorded as written (one
# element), so the tests pass them to poolgrad as written. Written to torch_one_number.json.

ONE_NUMBER_OUT = os.path.join(os.path.dirname(OUT), "torch_one_number.json")


def one_number(rng):
    cases = []
    both = [("ncx", "float32"), ("nxc", "float32"), ("ncx", "float64"), ("nxc", "float64")]
    geometry = lambda k, s, p=0, d=1, ceil=False: {
        "kernel": [k], "stride": [s], "padding": [p], "dilation": [d], "ceil_mode": ceil}
    lp = lambda k, s, p, ceil=False: {"norm_type": p, "kernel": [k], "stride": [s], "ceil_mode": ceil}
    avg = lambda include: {"count_include_pad": include, "divisor_override": None}
    # (name, op, spatial, fn, recorded parameters, positive inputs)
    specs = [
        ("lp2d_p2_k2", "lp", (4, 6), lambda x: (F.lp_pool2d(x, 2, 2), None), lp(2, 2, 2.0), False),
        ("lp2d_p2_k2_s2x3", "lp", (4, 6), lambda x: (F.lp_pool2d(x, 2, 2, stride=(2, 3)), None),
         {"norm_type": 2.0, "kernel": [2], "stride": [2, 3], "ceil_mode": False}, False),
        ("lp2d_p3_k3s2_ceil", "lp", (8, 7), lambda x: (F.lp_pool2d(x, 3, 3, 2, ceil_mode=True), None),
         lp(3, 2, 3.0, True), True),
        ("lp3d_p2_k2", "lp", (4, 5, 6), lambda x: (F.lp_pool3d(x, 2, 2), None), lp(2, 2, 2.0), False),
        ("lp3d_p1.5_k2s1", "lp", (4, 4, 5), lambda x: (F.lp_pool3d(x, 1.5, 2, 1), None), lp(2, 1, 1.5), True),
        ("max2d_k3s2p1", "max", (7, 6), lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True), geometry(3, 2, 1), False),
        ("max3d_k2s1_dil2", "max", (5, 6, 5), lambda x: F.max_pool3d(x, 2, 1, 0, 2, return_indices=True),
         geometry(2, 1, 0, 2), False),
        ("avg2d_k3s2p1_excl", "avg", (7, 6), lambda x: (F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), None),
         {**geometry(3, 2, 1), **avg(False)}, False),
        ("avg3d_k3s2p1_ceil", "avg", (5, 6, 4), lambda x: (F.avg_pool3d(x, 3, 2, 1, ceil_mode=True), None),
         {**geometry(3, 2, 1, 1, True), **avg(True)}, False),
        ("adaptive_max2d_3", "adaptive_max", (7, 5), lambda x: F.adaptive_max_pool2d(x, 3, return_indices=True),
         {"output_size": [3]}, False),
        ("adaptive_avg3d_2", "adaptive_avg", (5, 4, 7), lambda x: (F.adaptive_avg_pool3d(x, 2), None),
         {"output_size": [2]}, False),
    ]
    for name, op, spatial, fn, extra, positive in specs:
        for layout, dtype in both:
            cases.append(family_case(name, op, spatial, layout, dtype, rng, fn, extra, positive=positive))
    # Fractional max pooling and max unpooling, each with one number.
    for layout, dtype in both:
        tdtype = torch.float32 if dtype == "float32" else torch.float64
        samples = torch.from_numpy(rng.uniform(0, 1, (BATCH, CHANNELS, 2))).to(tdtype)
        case = family_case("frac2d_k2_o3", "fractional_max", (7, 8), layout, dtype, rng,
                           lambda x: F.fractional_max_pool2d(x, 2, output_size=3, return_indices=True,
                                                             _random_samples=samples),
                           {"kernel": [2], "output_size": [3]})
        case["samples"] = [fmt(v, dtype) for v in samples.reshape(-1).double().tolist()]
        cases.append(case)
    for layout, dtype in both[:1] + both[2:3]:
        x0 = torch.from_numpy(rng.standard_normal((BATCH, CHANNELS, 6, 8))).to(
            torch.float32 if dtype == "float32" else torch.float64)
        pooled, idx = F.max_pool2d(x0, 2, return_indices=True)
        case = family_case("unpool2d_k2", "unpool", tuple(pooled.shape[2:]), layout, dtype, rng,
                           lambda x, idx=idx: (F.max_unpool2d(x, idx, 2), None),
                           {"kernel": [2], "stride": [2], "padding": [0], "output_size": None})
        case["unpool_indices"] = idx.reshape(-1).tolist()
        cases.append(case)
    return cases


def main_one_number():
    rng = np.random.default_rng(20261201)
    cases = one_number(rng)
    with open(ONE_NUMBER_OUT, "w") as f:
        json.dump({"generator": "tools/gen_fixtures.py", "torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(ONE_NUMBER_OUT)} ({os.path.getsize(ONE_NUMBER_OUT)} bytes)")


if __name__ == "__main__":
    main()
    main_family()
    main_one_number()
