"""The cases every pytest suite shares, and the two ways of computing them.

A case is a configuration (operator, rank, layout, dtype, parameters) plus its arrays in
poolgrad's physical layout (``ncx``: (N, C, d...), ``nxc``: (N, d..., C)): the inputs
``x``, ``grad_output``, ``grad_grad_input`` (and ``samples`` / ``unpool_indices``), and
PyTorch's results ``y``, ``indices``, ``grad_input``, ``grad_grad_output``,
``double_backward_input``.

Two families:
- the PyTorch fixture cases the Rust tests read (``crates/poolgrad/tests/fixtures``);
- ``random_cases()``: seeded random configurations over every function, whose PyTorch
  results ``gen_fixtures.py`` stores in ``fixtures/random_cases.npz``.

``torch_results`` computes a case with ``torch.nn.functional`` (only the generator and
the torch tests import torch); ``numpy_results`` with poolgrad's NumPy API;
``torch_api_results`` with ``poolgrad.torch`` through autograd. ``check`` compares.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RUST_FIXTURES = os.path.join(HERE, "..", "..", "poolgrad", "tests", "fixtures")
RANDOM_FIXTURES = os.path.join(HERE, "fixtures", "random_cases.npz")

ARRAYS = (
    "x",
    "y",
    "indices",
    "grad_output",
    "grad_input",
    "grad_grad_input",
    "grad_grad_output",
    "double_backward_input",
    "samples",
    "unpool_indices",
)
INTEGER_ARRAYS = ("indices", "unpool_indices")

try:  # bfloat16 for NumPy
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - CI installs it
    BFLOAT16 = None


def np_dtype(name: str):
    if name == "bfloat16":
        return BFLOAT16
    return np.dtype(name)


# ---------------------------------------------------------------- the cases


def _floats(values):
    """JSON numbers, with NaN and infinities written as strings."""
    return np.array([float(v) for v in values], dtype=np.float64)


def json_cases():
    """Every case of the Rust tests' PyTorch fixtures, as dicts with NumPy arrays."""
    cases = []
    for file in ("torch_pooling.json", "torch_family.json", "torch_one_number.json"):
        with open(os.path.join(RUST_FIXTURES, file)) as f:
            data = json.load(f)
        for c in data["cases"]:
            case = {k: v for k, v in c.items() if k not in ARRAYS}
            case["name"] = f"{file.split('.')[0]}/{c['name']}"
            case["rank"] = len(c["x_shape"]) - 2
            if "norm_type" in case and isinstance(case["norm_type"], str):
                case["norm_type"] = float(case["norm_type"])
            arrays = {}
            for key in ARRAYS:
                if key in c and c[key] is not None:
                    if key in INTEGER_ARRAYS:
                        arrays[key] = np.array(c[key], dtype=np.int64)
                    else:
                        arrays[key] = _floats(c[key])
            y_shape = c["y_shape"]
            for key, a in arrays.items():
                if key in ("x", "grad_input", "grad_grad_input", "double_backward_input", "unpool_indices"):
                    arrays[key] = a.reshape(c["x_shape"])
                elif key in ("y", "indices", "grad_output", "grad_grad_output"):
                    arrays[key] = a.reshape(y_shape)
            if "samples" in arrays:
                n, ch = _batch_channels(c["x_shape"], c["layout"])
                arrays["samples"] = arrays["samples"].reshape(n, ch, -1)
            case["arrays"] = arrays
            cases.append(case)
    return cases


def _batch_channels(dims, layout):
    return (dims[0], dims[1]) if layout == "ncx" else (dims[0], dims[-1])


def _spatial(dims, layout):
    return list(dims[2:]) if layout == "ncx" else list(dims[1:-1])


def random_cases(count: int = 160, seed: int = 20261202):
    """Seeded random configurations over every function (no arrays: see ``inputs``)."""
    rng = random.Random(seed)
    ops = [
        "max",
        "avg",
        "lp",
        "adaptive_max",
        "adaptive_avg",
        "global_max",
        "global_avg",
        "fractional_max",
        "unpool",
    ]
    cases = []
    for i in range(count):
        op = ops[i % len(ops)]
        rank = rng.choice([2, 3]) if op == "fractional_max" else rng.choice([1, 2, 2, 3])
        layout = rng.choice(["ncx", "nxc"])
        dtype = rng.choice(["float32", "float32", "float64", "float64"])
        # Half types where PyTorch's CPU kernels have them (not 3-D average pooling).
        if op in ("max", "avg", "adaptive_max", "global_max", "unpool") and rank <= 2 and rng.random() < 0.3:
            dtype = rng.choice(["float16", "bfloat16"])
        values = rng.choice(["normal", "normal", "ties", "special"]) if op not in ("lp", "fractional_max") else "normal"
        if op == "lp":
            values = rng.choice(["normal", "positive"])
        spatial = [rng.randint(3, 9 if rank < 3 else 6) for _ in range(rank)]
        case = {"name": f"random/{i:03d}_{op}{rank}d_{layout}_{dtype}", "op": op, "rank": rank, "layout": layout}
        case.update(dtype=dtype, values=values, seed=seed + i)
        kernel = [rng.randint(1, min(4, s)) for s in spatial]
        if op in ("max", "avg", "lp", "unpool"):
            kernel = [max(k, 2) if s >= 2 else k for k, s in zip(kernel, spatial)]
            stride = [rng.randint(1, 3) for _ in range(rank)]
            padding = [rng.randint(0, k // 2) for k in kernel] if op != "lp" else [0] * rank
            dilation = [rng.choice([1, 1, 2]) for _ in range(rank)] if op == "max" else [1] * rank
            # The (dilated) window must fit the padded input.
            for d in range(rank):
                while dilation[d] * (kernel[d] - 1) + 1 > spatial[d] + 2 * padding[d]:
                    spatial[d] += 1
            case.update(kernel=kernel, stride=stride, padding=padding, dilation=dilation)
            case["ceil_mode"] = rng.random() < 0.3 and op != "unpool"
            if op == "avg":
                case["count_include_pad"] = rng.random() < 0.5
                case["divisor_override"] = rng.choice([None, None, None, 3]) if rank > 1 else None
            if op == "lp":
                case["norm_type"] = rng.choice([1.0, 2.0, 3.0, 1.5])
            if op == "unpool":
                case["stride"] = kernel[:]  # max_unpool inverts non-overlapping max pooling
                case["padding"] = [0] * rank
                case["dilation"] = [1] * rank
        elif op in ("adaptive_max", "adaptive_avg"):
            case["output_size"] = [rng.randint(1, s + 1) for s in spatial]
        elif op == "fractional_max":
            # PyTorch: output + kernel - 1 < input.
            case["kernel"] = [rng.randint(1, min(3, s - 2)) for s in spatial]
            case["output_size"] = [rng.randint(1, max(1, s - k)) for s, k in zip(spatial, case["kernel"])]
        n, c = rng.randint(1, 2), rng.randint(1, 5)
        dims = [n, c, *spatial] if layout == "ncx" else [n, *spatial, c]
        case["x_shape"] = dims
        cases.append(case)
    return cases


def inputs(case):
    """The input arrays of a random case (seeded)."""
    rng = np.random.default_rng(case["seed"])
    shape = case["x_shape"]
    kind = case["values"]
    if kind == "ties":
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif kind == "positive":
        x = rng.random(shape) + 0.1
    else:
        x = rng.standard_normal(shape)
        if kind == "special":
            flat = x.reshape(-1)
            for v in (np.nan, np.inf, -np.inf, -0.0):
                flat[rng.integers(0, flat.size)] = v
    arrays = {"x": x}
    if case["op"] == "fractional_max":
        n, c = _batch_channels(shape, case["layout"])
        arrays["samples"] = rng.random((n, c, case["rank"]))
    return arrays


def to_dtype(a, dtype):
    """A float64 array rounded to `dtype` (bfloat16 through ml_dtypes)."""
    return np.asarray(a, dtype=np.float64).astype(np_dtype(dtype))


def with_layout(a, layout, rank):
    """An (N, C, d...) array in `layout`."""
    return a if layout == "ncx" else np.moveaxis(a, 1, -1)


def from_layout(a, layout):
    return a if layout == "ncx" else np.moveaxis(a, -1, 1)


# ------------------------------------------------------------- PyTorch side

def torch_tensor(a, case, memory_format=None):
    """A case-layout float64 array as a torch (N, C, d...) tensor of the case's dtype."""
    import torch

    dt = getattr(torch, case["dtype"])
    t = torch.from_numpy(np.ascontiguousarray(from_layout(np.asarray(a, dtype=np.float64), case["layout"]))).to(dt)
    return t.contiguous(memory_format=memory_format) if memory_format is not None else t


def from_torch(t, case):
    """A torch (N, C, d...) tensor as a case-layout array (floats as float64)."""
    t = t.detach()
    a = (t.double() if t.is_floating_point() else t).numpy()
    return with_layout(a, case["layout"], case["rank"])



def torch_results(case, arrays):
    """PyTorch's results for a case: forward, indices, backward for a seeded
    grad-output, double backward for a seeded grad-grad-input. Arrays in and out are in
    the case's layout; computation in float64 arrays cast to the case's dtype."""
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, case["dtype"])
    layout, rank, op = case["layout"], case["rank"], case["op"]
    rng = np.random.default_rng(case["seed"] + 1)

    def tensor(a):
        return torch_tensor(a, case)

    def back(t):
        return from_torch(t, case)

    out = dict(arrays)
    x = tensor(arrays["x"]).requires_grad_(True)
    out["x"] = back(x)  # as rounded to the case's dtype
    indices = None
    if op == "max":
        y, indices = getattr(F, f"max_pool{rank}d")(
            x, case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"], True
        )
    elif op == "avg":
        args = [x, case["kernel"], case["stride"], case["padding"], case["ceil_mode"], case["count_include_pad"]]
        if rank > 1:
            args.append(case.get("divisor_override"))
        y = getattr(F, f"avg_pool{rank}d")(*args)
    elif op == "lp":
        # lp_pool1d wants plain ints.
        k, st = (case["kernel"][0], case["stride"][0]) if rank == 1 else (case["kernel"], case["stride"])
        y = getattr(F, f"lp_pool{rank}d")(x, case["norm_type"], k, st, case["ceil_mode"])
    elif op in ("adaptive_max", "global_max"):
        size = case.get("output_size", [1] * rank)
        y, indices = getattr(F, f"adaptive_max_pool{rank}d")(x, size, True)
    elif op in ("adaptive_avg", "global_avg"):
        y = getattr(F, f"adaptive_avg_pool{rank}d")(x, case.get("output_size", [1] * rank))
    elif op == "fractional_max":
        samples = torch.from_numpy(np.asarray(arrays["samples"], dtype=np.float64)).to(dt)
        out["samples"] = samples.double().numpy()
        y, indices = getattr(F, f"fractional_max_pool{rank}d")(
            x, case["kernel"], output_size=case["output_size"], return_indices=True, _random_samples=samples
        )
    elif op == "unpool":
        with torch.no_grad():
            pooled, idx = getattr(F, f"max_pool{rank}d")(x, case["kernel"], case["stride"], 0, 1, False, True)
        out["unpool_input_shape"] = list(out["x"].shape)
        out["x"] = back(pooled)
        out["unpool_indices"] = back(idx)
        x = pooled.detach().clone().requires_grad_(True)
        y = getattr(F, f"max_unpool{rank}d")(
            x, idx, case["kernel"], case["stride"], 0, output_size=list(from_layout(arrays["x"], layout).shape)
        )
    else:  # pragma: no cover
        raise ValueError(op)
    out["y"] = back(y)
    if indices is not None:
        out["indices"] = back(indices)
    gy = tensor(with_layout(rng.standard_normal(from_layout(out["y"], layout).shape), layout, rank))
    (gx,) = torch.autograd.grad(y, x, gy.requires_grad_(True), create_graph=True)
    ggx = tensor(with_layout(rng.standard_normal(x.shape), layout, rank))
    out["grad_output"], out["grad_input"], out["grad_grad_input"] = back(gy), back(gx), back(ggx)
    ggy, hx = torch.autograd.grad(gx, (gy, x), ggx, allow_unused=True)
    out["grad_grad_output"] = back(ggy)
    if op == "lp":
        out["double_backward_input"] = back(hx) if hx is not None else np.zeros_like(out["x"])
    return out


# -------------------------------------------------------------- poolgrad side


def numpy_results(case, arrays):
    """poolgrad's results for a case, through the NumPy API."""
    import poolgrad as pg

    dtype, layout, op = case["dtype"], case["layout"], case["op"]
    if dtype == "bfloat16" and BFLOAT16 is None:
        raise RuntimeError("bfloat16 needs ml_dtypes")
    x = to_dtype(arrays["x"], dtype)
    gy = to_dtype(arrays["grad_output"], dtype)
    has_double = "grad_grad_input" in arrays
    ggx = to_dtype(arrays["grad_grad_input"], dtype) if has_double else None
    kw = {"layout": layout}
    got = {}
    if op == "max":
        geo = dict(
            kernel_size=case["kernel"],
            stride=case["stride"],
            padding=case.get("padding", 0),
            dilation=case.get("dilation", 1),
            ceil_mode=case.get("ceil_mode", False),
        )
        got["y"], got["indices"] = pg.max_pool(x, **geo, return_indices=True, **kw)
        got["grad_input"] = pg.max_pool_backward(gy, got["indices"], x.shape, **geo, **kw)
        if has_double:
            got["grad_grad_output"] = pg.max_pool_double_backward(ggx, got["indices"], **geo, **kw)
    elif op == "avg":
        geo = dict(
            kernel_size=case["kernel"],
            stride=case["stride"],
            padding=case.get("padding", 0),
            ceil_mode=case.get("ceil_mode", False),
            count_include_pad=case.get("count_include_pad", True),
            divisor_override=case.get("divisor_override"),
        )
        got["y"] = pg.avg_pool(x, **geo, **kw)
        got["grad_input"] = pg.avg_pool_backward(gy, x.shape, **geo, **kw)
        if has_double:
            got["grad_grad_output"] = pg.avg_pool_double_backward(ggx, **geo, **kw)
    elif op == "lp":
        args = (case["norm_type"], case["kernel"], case["stride"], case.get("ceil_mode", False))
        got["y"] = pg.lp_pool(x, *args, formula="torch", **kw)
        got["grad_input"] = pg.lp_pool_backward(gy, x, *args, formula="torch", **kw)
        if has_double:
            got["grad_grad_output"] = pg.lp_pool_double_backward(x, ggx, *args, formula="torch", **kw)
            got["double_backward_input"] = pg.lp_pool_double_backward_input(x, gy, ggx, *args, formula="torch", **kw)
    elif op == "adaptive_max":
        size = case["output_size"]
        got["y"], got["indices"] = pg.adaptive_max_pool(x, size, return_indices=True, **kw)
        got["grad_input"] = pg.adaptive_max_pool_backward(gy, got["indices"], x.shape, size, **kw)
        if has_double:
            got["grad_grad_output"] = pg.adaptive_max_pool_double_backward(ggx, got["indices"], size, **kw)
    elif op == "global_max":
        got["y"], got["indices"] = pg.global_max_pool(x, return_indices=True, **kw)
        got["grad_input"] = pg.global_max_pool_backward(gy, got["indices"], x.shape, **kw)
        if has_double:
            got["grad_grad_output"] = pg.global_max_pool_double_backward(ggx, got["indices"], **kw)
    elif op == "adaptive_avg":
        size = case["output_size"]
        got["y"] = pg.adaptive_avg_pool(x, size, **kw)
        got["grad_input"] = pg.adaptive_avg_pool_backward(gy, x.shape, size, **kw)
        if has_double:
            got["grad_grad_output"] = pg.adaptive_avg_pool_double_backward(ggx, size, **kw)
    elif op == "global_avg":
        got["y"] = pg.global_avg_pool(x, **kw)
        got["grad_input"] = pg.global_avg_pool_backward(gy, x.shape, **kw)
        if has_double:
            got["grad_grad_output"] = pg.global_avg_pool_double_backward(ggx, **kw)
    elif op == "fractional_max":
        samples = to_dtype(arrays["samples"], dtype)
        k, size = case["kernel"], case["output_size"]
        got["y"], got["indices"] = pg.fractional_max_pool(
            x, k, size, return_indices=True, _random_samples=samples, **kw
        )
        got["grad_input"] = pg.fractional_max_pool_backward(gy, got["indices"], x.shape, k, size, **kw)
        if has_double:
            got["grad_grad_output"] = pg.fractional_max_pool_double_backward(ggx, got["indices"], k, size, **kw)
    elif op == "unpool":
        idx = arrays["unpool_indices"]
        size = case.get("output_size") or _spatial(arrays["y"].shape, layout)
        geo = dict(kernel_size=case["kernel"], stride=case["stride"], padding=case.get("padding", 0))
        got["y"] = pg.max_unpool(x, idx, **geo, output_size=size, **kw)
        got["grad_input"] = pg.max_unpool_backward(gy, idx, **geo, **kw)
        if has_double:
            got["grad_grad_output"] = pg.max_unpool_double_backward(ggx, idx, **geo, output_size=size, **kw)
    else:  # pragma: no cover
        raise ValueError(op)
    return got


def torch_api_results(case, arrays):
    """poolgrad's results for a case, through ``poolgrad.torch`` and autograd (the
    case's nxc layout as a ``channels_last`` tensor where PyTorch has one)."""
    import torch

    import poolgrad.torch as pt

    dt = getattr(torch, case["dtype"])
    layout, rank, op = case["layout"], case["rank"], case["op"]
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(rank) if layout == "nxc" else None

    def tensor(a):
        return torch_tensor(a, case, fmt)

    def back(t):
        return from_torch(t, case)

    x = tensor(arrays["x"]).requires_grad_(True)
    got = {}
    indices = None
    if op == "max":
        f = getattr(pt, f"max_pool{rank}d")
        y, indices = f(x, case["kernel"], case["stride"], case.get("padding", 0), case.get("dilation", 1),
                       case.get("ceil_mode", False), True)
    elif op == "avg":
        args = [x, case["kernel"], case["stride"], case.get("padding", 0), case.get("ceil_mode", False),
                case.get("count_include_pad", True)]
        if rank > 1:
            args.append(case.get("divisor_override"))
        y = getattr(pt, f"avg_pool{rank}d")(*args)
    elif op == "lp":
        y = getattr(pt, f"lp_pool{rank}d")(x, case["norm_type"], case["kernel"], case["stride"],
                                           case.get("ceil_mode", False))
    elif op in ("adaptive_max", "global_max"):
        y, indices = getattr(pt, f"adaptive_max_pool{rank}d")(x, case.get("output_size", [1] * rank), True)
    elif op in ("adaptive_avg", "global_avg"):
        y = getattr(pt, f"adaptive_avg_pool{rank}d")(x, case.get("output_size", [1] * rank))
    elif op == "fractional_max":
        samples = torch.from_numpy(np.asarray(arrays["samples"], dtype=np.float64)).to(dt)
        y, indices = getattr(pt, f"fractional_max_pool{rank}d")(
            x, case["kernel"], output_size=case["output_size"], return_indices=True, _random_samples=samples
        )
    elif op == "unpool":
        idx = torch.from_numpy(np.ascontiguousarray(from_layout(arrays["unpool_indices"], layout)))
        if fmt is not None:
            idx = idx.contiguous(memory_format=fmt)
        size = case.get("output_size") or _spatial(arrays["y"].shape, layout)
        y = getattr(pt, f"max_unpool{rank}d")(x, idx, case["kernel"], case["stride"], case.get("padding", 0), size)
    else:  # pragma: no cover
        raise ValueError(op)
    got["y"] = back(y)
    # A channels_last input (not one whose two formats coincide) gives a channels_last output.
    if fmt is not None and not x.is_contiguous() and y.dim() == rank + 2 and y.shape[1] > 1:
        got["channels_last_kept"] = np.array(y.is_contiguous(memory_format=fmt))
    if indices is not None:
        got["indices"] = back(indices)
    gy = tensor(arrays["grad_output"]).requires_grad_(True)
    (gx,) = torch.autograd.grad(y, x, gy, create_graph=True)
    got["grad_input"] = back(gx)
    if "grad_grad_input" in arrays:
        ggx = tensor(arrays["grad_grad_input"])
        ggy, hx = torch.autograd.grad(gx, (gy, x), ggx, allow_unused=True)
        got["grad_grad_output"] = back(ggy)
        if op == "lp":
            got["double_backward_input"] = back(hx) if hx is not None else np.zeros_like(got["grad_input"])
    return got


# ------------------------------------------------------------------ compare


def tolerance(case, key):
    """Relative tolerance: 0 (bitwise) where poolgrad promises PyTorch's bits — max
    pooling, unpooling, regular average pooling; rounding where PyTorch's vectorised
    or composite math may order operations differently (LP, adaptive average)."""
    approx = {"float16": 1e-3, "bfloat16": 8e-3, "float32": 2e-6, "float64": 1e-13}[case["dtype"]]
    op = case["op"]
    if op in ("lp",):
        return approx * (10 if key == "double_backward_input" else 1)
    if op in ("adaptive_avg", "global_avg"):
        return approx
    if op == "avg" and case["dtype"] in ("float16", "bfloat16") and key != "y":
        # Half-precision gradients round after each addition in both, in orders that
        # differ when windows overlap across threads' blocks.
        return approx
    return 0.0


def check(case, got, want):
    """Asserts that every result poolgrad computed agrees with PyTorch's."""
    name = case["name"]
    compared = 0
    for key, value in got.items():
        if key == "channels_last_kept":
            assert bool(value), f"{name}: the output is not channels_last"
            continue
        if key not in want:
            continue
        g = np.asarray(value)
        w = np.asarray(want[key])
        assert g.shape == w.shape, f"{name}: {key} shape {g.shape} != {w.shape}"
        if key in INTEGER_ARRAYS:
            np.testing.assert_array_equal(g, w, err_msg=f"{name}: {key}")
        else:
            g64, w64 = g.astype(np.float64), w.astype(np.float64)
            rel = tolerance(case, key)
            both_nan = np.isnan(g64) & np.isnan(w64)
            same = (g64 == w64) | both_nan
            if rel == 0.0:
                bad = ~same
            else:
                scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(w64), w64, 0)), initial=0.0)))
                with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
                    bad = ~same & ~(np.abs(g64 - w64) <= rel * scale)
            if bad.any():
                i = np.flatnonzero(bad)[0]
                raise AssertionError(
                    f"{name}: {key}[{np.unravel_index(i, g.shape)}]: poolgrad {g64.flat[i]!r}, "
                    f"PyTorch {w64.flat[i]!r} (rel tol {rel}; {int(bad.sum())} of {bad.size} differ)"
                )
        compared += 1
    assert compared >= 2, f"{name}: only {compared} results compared"
    return compared

