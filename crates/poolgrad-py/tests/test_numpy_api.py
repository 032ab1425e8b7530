"""The NumPy API beyond PyTorch's reach: any array (strided views, Fortran order, byte
order), 4-D spatial inputs against a plain reference written here, integer inputs, the
errors, threads, and the pictures."""

import itertools
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import poolgrad

RNG = np.random.default_rng(12)


# ------------------------------------------------------------ any array


def test_strided_views_fortran_order_and_byte_order_read_the_logical_values():
    base = RNG.standard_normal((3, 4, 10, 12)).astype(np.float32)
    views = {
        "strided": base[:, 1:, ::2, 1::3],
        "reversed": base[::-1, :, ::-1, :],
        "fortran": np.asfortranarray(base),
        "transposed": base.transpose(0, 1, 3, 2),
        "big-endian": base.astype(">f4"),
    }
    for name, view in views.items():
        want_y, want_i = poolgrad.max_pool(np.ascontiguousarray(view, dtype=np.float32), 3, 2, 1, return_indices=True)
        y, i = poolgrad.max_pool(view, 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(y, want_y, err_msg=name)
        np.testing.assert_array_equal(i, want_i, err_msg=name)
        want_avg = poolgrad.avg_pool(np.ascontiguousarray(view, dtype=np.float32), 2)
        np.testing.assert_array_equal(poolgrad.avg_pool(view, 2), want_avg, err_msg=name)
        gy = np.asfortranarray(np.ones_like(y))
        np.testing.assert_array_equal(
            poolgrad.max_pool_backward(gy, np.asfortranarray(i), view.shape, 3, 2, 1),
            poolgrad.max_pool_backward(np.ones_like(y), i, view.shape, 3, 2, 1),
            err_msg=name,
        )
    assert views["big-endian"].dtype.byteorder == ">"


def test_channels_last_equals_channels_first():
    x = RNG.standard_normal((2, 5, 7, 9))
    nxc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for f in (
        lambda a, l: poolgrad.max_pool(a, 3, 2, 1, layout=l),
        lambda a, l: poolgrad.avg_pool(a, 3, 1, 1, count_include_pad=False, layout=l),
        lambda a, l: poolgrad.lp_pool(a, 2, 2, layout=l),
        lambda a, l: poolgrad.adaptive_avg_pool(a, (3, 4), layout=l),
        lambda a, l: poolgrad.global_max_pool(a, layout=l),
    ):
        np.testing.assert_array_equal(np.moveaxis(f(nxc, "nxc"), -1, 1), f(x, "ncx"))


# ------------------------------------------------ 4-D spatial, plain reference


def plain_pool(x, kernel, stride, padding, reduce):
    """Max or average pooling of an (N, C, d1..d4) array, from the definition: every
    window of the zero-padded input, padding never read for max, counted for average."""
    n, c, *spatial = x.shape
    out = [(s + 2 * p - k) // st + 1 for s, k, st, p in zip(spatial, kernel, stride, padding)]
    y = np.zeros((n, c, *out))
    for b, ch in itertools.product(range(n), range(c)):
        for o in itertools.product(*[range(v) for v in out]):
            cells = []
            for tap in itertools.product(*[range(k) for k in kernel]):
                pos = [oi * st - p + t for oi, st, p, t in zip(o, stride, padding, tap)]
                if all(0 <= q < s for q, s in zip(pos, spatial)):
                    cells.append(x[(b, ch, *pos)])
                elif reduce == "avg":
                    cells.append(0.0)
            y[(b, ch, *o)] = max(cells) if reduce == "max" else sum(cells) / len(cells)
    return y


def test_four_spatial_dims_against_a_plain_reference():
    x = RNG.standard_normal((1, 2, 4, 5, 3, 4))
    kernel, stride, padding = (2, 3, 2, 2), (2, 1, 1, 2), (1, 1, 0, 1)
    y, idx = poolgrad.max_pool(x, kernel, stride, padding, return_indices=True)
    np.testing.assert_array_equal(y, plain_pool(x, kernel, stride, padding, "max"))
    # Every index points at its output's value in the plane.
    planes = x.reshape(1, 2, -1)
    np.testing.assert_array_equal(np.take_along_axis(planes, idx.reshape(1, 2, -1), 2).reshape(y.shape), y)
    avg = poolgrad.avg_pool(x, kernel, stride, padding)
    np.testing.assert_allclose(avg, plain_pool(x, kernel, stride, padding, "avg"), rtol=1e-14)
    # The backward is the adjoint of the forward: <avg(x), g> = <x, avg_backward(g)>.
    g = RNG.standard_normal(avg.shape)
    gx = poolgrad.avg_pool_backward(g, x.shape, kernel, stride, padding)
    assert np.isclose(np.vdot(avg, g), np.vdot(x, gx), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64])
def test_integer_max_pooling(dtype):
    info = np.iinfo(dtype)
    x = RNG.integers(info.min, info.max, size=(2, 3, 7, 6), dtype=dtype, endpoint=True)
    y, idx = poolgrad.max_pool(x, 3, 2, 1, return_indices=True)
    assert y.dtype == dtype
    # Floats hold these integers exactly only below 2**53; compare through the indices.
    planes = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(planes, idx.reshape(2, 3, -1), 2).reshape(y.shape), y)
    if dtype != np.int64:
        y64, idx64 = poolgrad.max_pool(x.astype(np.float64), 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(y.astype(np.float64), y64)
        np.testing.assert_array_equal(idx, idx64)


def test_onnx_padding_keywords():
    x = RNG.standard_normal((1, 1, 5, 6))
    same = poolgrad.max_pool(x, 3, 2, auto_pad="SAME_UPPER")
    assert same.shape == (1, 1, 3, 3)
    explicit = poolgrad.max_pool(x, 3, 2, pads=[1, 1, 1, 1])
    np.testing.assert_array_equal(explicit, poolgrad.max_pool(x, 3, 2, padding=1))
    asym = poolgrad.avg_pool(x, 2, 1, pads=[0, 0, 1, 1], count_include_pad=False)
    assert asym.shape == (1, 1, 5, 6)
    onnx_lp = poolgrad.lp_pool(x, 2, 3, 1, padding=1, formula="onnx")
    want = np.sqrt(poolgrad.avg_pool(x * x, 3, 1, 1, divisor_override=1))
    np.testing.assert_allclose(onnx_lp, want, rtol=1e-12)


def test_bfloat16_arrays_with_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = RNG.standard_normal((1, 2, 6, 6)).astype(ml_dtypes.bfloat16)
    y, idx = poolgrad.max_pool(x, 2, return_indices=True)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.astype(np.float32), poolgrad.max_pool(x.astype(np.float32), 2))
    g = poolgrad.avg_pool_backward(np.ones((1, 2, 3, 3), dtype=x.dtype), x.shape, 2)
    assert g.dtype == x.dtype and np.all(g.astype(np.float32) == 0.25)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call,error,words",
    [
        (lambda x: poolgrad.max_pool(x, 0), ValueError, "kernel_size"),
        (lambda x: poolgrad.max_pool(x, [2, 2, 2]), ValueError, "spatial dims"),
        (lambda x: poolgrad.max_pool(x, 9), ValueError, "empty"),
        (lambda x: poolgrad.max_pool(x, -1), ValueError, "negative"),
        (lambda x: poolgrad.max_pool(x, "3"), TypeError, "kernel_size"),
        (lambda x: poolgrad.max_pool(x, 2, layout="nchw"), ValueError, "layout"),
        (lambda x: poolgrad.max_pool(x, 2, padding=1, pads=[1, 1, 1, 1]), ValueError, "at most one"),
        (lambda x: poolgrad.max_pool(x, 2, auto_pad="SAME"), ValueError, "auto_pad"),
        (lambda x: poolgrad.avg_pool(x, 2, divisor_override=0), ValueError, "divisor"),
        (lambda x: poolgrad.avg_pool(x.astype(np.int32), 2), TypeError, "dtype"),
        (lambda x: poolgrad.avg_pool(x.astype(np.complex64), 2), TypeError, "dtype"),
        (lambda x: poolgrad.max_pool(x.astype(object), 2), TypeError, "dtype"),
        (lambda x: poolgrad.max_pool(x[0, 0], 2), ValueError, "3 dims"),
        (lambda x: poolgrad.lp_pool(x, 2, 2, formula="tf"), ValueError, "lp_formula"),
        (lambda x: poolgrad.lp_pool(x, 2, 3, 1, padding=1, formula="torch"), ValueError, "no padding"),
        (lambda x: poolgrad.adaptive_avg_pool(x, 0), ValueError, "output_size"),
        (lambda x: poolgrad.adaptive_max_pool(x, 10**18), (ValueError, MemoryError), ""),
        (lambda x: poolgrad.max_pool_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), x.shape, 3), ValueError, "shape"),
        (lambda x: poolgrad.max_pool_backward(np.ones((1, 1, 3, 3)), np.full((1, 1, 3, 3), 99), x.shape, 2), ValueError, "index"),
        (lambda x: poolgrad.max_unpool(x, np.full(x.shape, 10**6), 2), ValueError, "index"),
        (lambda x: poolgrad.fractional_max_pool(x, 2, 3, _random_samples=np.full((1, 1, 2), 1.5)), ValueError, "random_samples"),
        (lambda x: poolgrad.fractional_max_pool(x, 2), ValueError, "output_size"),
        (lambda x: poolgrad.lp_pool_backward(np.ones((1, 1, 3, 3), np.float32), x, 2, 2), TypeError, "float32"),
    ],
)
def test_bad_input_raises_a_clear_exception(call, error, words):
    x = RNG.standard_normal((1, 1, 6, 6))
    with pytest.raises(error) as info:
        call(x)
    assert words.lower() in str(info.value).lower()
    assert "panic" not in str(info.value).lower()


def test_a_request_too_big_for_memory_is_an_exception():
    x = np.ones((1, 1, 1), dtype=np.float32)
    with pytest.raises((MemoryError, ValueError)):
        poolgrad.max_unpool(x, np.zeros((1, 1, 1), dtype=np.int64), 1, output_size=[1 << 40])


# ----------------------------------------------------------------- threads


def test_threads_give_the_same_bits_and_the_gil_is_released():
    x = RNG.standard_normal((8, 32, 64, 64)).astype(np.float32)
    before = poolgrad.get_num_threads()
    try:
        poolgrad.set_num_threads(1)
        assert poolgrad.get_num_threads() == 1
        want = poolgrad.avg_pool(x, 3, 1, 1)
        poolgrad.set_num_threads(2)
        assert poolgrad.get_num_threads() == 2
        np.testing.assert_array_equal(poolgrad.avg_pool(x, 3, 1, 1), want)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: poolgrad.avg_pool(x, 3, 1, 1), range(12)))
        for r in results:
            np.testing.assert_array_equal(r, want)
        # While a long computation runs in another thread, this one keeps running.
        ticks = 0
        worker = threading.Thread(target=lambda: [poolgrad.avg_pool(x, 5, 1, 2) for _ in range(4)])
        worker.start()
        while worker.is_alive():
            ticks += 1
            time.sleep(0.001)
        worker.join()
        assert ticks > 5, f"the main thread ran only {ticks} times during the computation"
    finally:
        poolgrad.set_num_threads(before)
    with pytest.raises(ValueError):
        poolgrad.set_num_threads(0)


# ---------------------------------------------------------------- pictures


def test_explain_draws_the_library_results(tmp_path):
    ex = poolgrad.explain(op="max", kernel_size=3, stride=2, padding=1, shape=(1, 1, 5, 5), seed=7)
    assert ex.title == "max pooling of a 5x5 input, kernel 3, stride 2, padding 1"
    assert "∂L/∂x[1][3] = δ[0][1] + δ[0][2] + δ[1][1] + δ[1][2] = 4" in ex.text
    assert ex.forward_svg.startswith("<svg") and ex.backward_svg.startswith("<svg")
    assert "<svg" in ex._repr_html_() and ex._repr_svg_() == ex.backward_svg
    ex.save(tmp_path / "b.svg")
    ex.save(tmp_path / "f.png", part="forward")
    assert (tmp_path / "b.svg").read_text() == ex.backward_svg
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # An array input: its gradients are the library's backward for all-ones δ.
    x = RNG.integers(0, 5, size=(2, 3, 4, 4)).astype(np.float64)
    ex = poolgrad.explain(x, op="avg", kernel_size=2, plane=(1, 2))
    assert "δ[0][0]/4" in ex.text
    with pytest.raises(ValueError, match="legibly"):
        poolgrad.explain(np.zeros((1, 1, 40, 40)), op="max", kernel_size=2)
    with pytest.raises(ValueError, match="plane"):
        poolgrad.explain(x, op="max", kernel_size=2, plane=(2, 0))


def cli_binary():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    for profile in ("release", "debug"):
        path = os.path.join(root, "target", profile, "poolgrad")
        if os.path.exists(path):
            return path
    return shutil.which("poolgrad")


def test_python_and_the_cli_draw_the_same_pictures(tmp_path):
    cli = cli_binary()
    if cli is None:
        pytest.skip("the poolgrad CLI is not built (cargo build -p poolgrad-cli)")
    subprocess.run(
        [cli, "explain", "--op", "avg", "--kernel", "3", "--stride", "2", "--padding", "1", "--shape", "1,1,6,6"]
        + ["--seed", "7", "--out", str(tmp_path), "--plain"],
        check=True,
        capture_output=True,
    )
    ex = poolgrad.explain(op="avg", kernel_size=3, stride=2, padding=1, shape=(1, 1, 6, 6), seed=7)
    assert (tmp_path / "avg-k3-s2-p1-forward.svg").read_text() == ex.forward_svg
    assert (tmp_path / "avg-k3-s2-p1-backward.svg").read_text() == ex.backward_svg
