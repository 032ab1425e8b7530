"""poolgrad against live PyTorch (skipped where torch is not installed): the fixture
cases and random configurations through both APIs, autograd's gradcheck and
gradgradcheck, the modules and ``convert`` on a small CNN, channels_last without copies,
half types."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import cases  # noqa: E402
import poolgrad.torch as pt  # noqa: E402

JSON_CASES = cases.json_cases()
# The committed random cases, and as many again that only this suite runs.
RANDOM_CASES = cases.random_cases()
MORE_CASES = [dict(c, name=c["name"].replace("random/", "live/")) for c in cases.random_cases(200, seed=7)]


def needs_bfloat16(case):
    if case["dtype"] == "bfloat16" and cases.BFLOAT16 is None:
        pytest.skip("bfloat16 arrays need ml_dtypes")


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c["name"])
def test_fixture_case_through_poolgrad_torch(case):
    cases.check(case, cases.torch_api_results(case, case["arrays"]), case["arrays"])


@pytest.mark.parametrize("case", RANDOM_CASES + MORE_CASES, ids=lambda c: c["name"])
def test_random_case_against_live_torch(case):
    want = cases.torch_results(case, cases.inputs(case))
    cases.check(case, cases.torch_api_results(case, want), want)
    needs_bfloat16(case)
    cases.check(case, cases.numpy_results(case, want), want)


def test_the_committed_random_fixtures_are_what_torch_computes_now():
    store = np.load(cases.RANDOM_FIXTURES)
    for case in RANDOM_CASES[:40]:
        want = cases.torch_results(case, cases.inputs(case))
        for key, value in want.items():
            if isinstance(value, np.ndarray):
                stored = store[f"{case['name']}:{key}"]
                np.testing.assert_allclose(stored, value, rtol=1e-5, atol=0, equal_nan=True, err_msg=case["name"])


# ------------------------------------------------------------ gradcheck


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.float64, generator=g).requires_grad_(True)


GRADCHECK = [
    ("max_pool1d", (2, 3, 11), lambda x: pt.max_pool1d(x, 3, 2, 1, 2)),
    ("max_pool2d", (2, 3, 7, 6), lambda x: pt.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("max_pool3d", (1, 2, 4, 5, 4), lambda x: pt.max_pool3d(x, 2, 1, 1)),
    ("avg_pool1d", (2, 3, 9), lambda x: pt.avg_pool1d(x, 3, 2, 1, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 6), lambda x: pt.avg_pool2d(x, 3, 2, 1, True, True, 4)),
    ("avg_pool3d", (1, 2, 4, 5, 4), lambda x: pt.avg_pool3d(x, 2, 1, 1)),
    ("lp_pool1d", (2, 3, 9), lambda x: pt.lp_pool1d(x, 2, 3, 2)),
    ("lp_pool2d", (2, 3, 7, 6), lambda x: pt.lp_pool2d(x.abs() + 0.1, 3.0, 2, ceil_mode=True)),
    ("lp_pool3d", (1, 2, 4, 5, 4), lambda x: pt.lp_pool3d(x, 2, 2)),
    ("adaptive_max_pool1d", (2, 3, 11), lambda x: pt.adaptive_max_pool1d(x, 4)),
    ("adaptive_max_pool2d", (2, 3, 7, 6), lambda x: pt.adaptive_max_pool2d(x, (3, None))),
    ("adaptive_max_pool3d", (1, 2, 4, 5, 4), lambda x: pt.adaptive_max_pool3d(x, 2)),
    ("adaptive_avg_pool1d", (2, 3, 11), lambda x: pt.adaptive_avg_pool1d(x, 4)),
    ("adaptive_avg_pool2d", (2, 3, 7, 6), lambda x: pt.adaptive_avg_pool2d(x, (3, 4))),
    ("adaptive_avg_pool3d", (1, 2, 4, 5, 4), lambda x: pt.adaptive_avg_pool3d(x, 1)),
    (
        "fractional_max_pool2d",
        (2, 3, 9, 8),
        lambda x: pt.fractional_max_pool2d(x, 2, (4, 3), _random_samples=torch.full((2, 3, 2), 0.3, dtype=x.dtype)),
    ),
    (
        "fractional_max_pool3d",
        (1, 2, 6, 7, 6),
        lambda x: pt.fractional_max_pool3d(x, 2, 3, _random_samples=torch.full((1, 2, 3), 0.6, dtype=x.dtype)),
    ),
]


@pytest.mark.parametrize("name,shape,f", GRADCHECK, ids=[g[0] for g in GRADCHECK])
def test_gradcheck_and_gradgradcheck(name, shape, f):
    x = _x(*shape)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    # And channels_last, where torch has it.
    if len(shape) in (4, 5):
        fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
        xc = x.detach().contiguous(memory_format=fmt).requires_grad_(True)
        assert torch.autograd.gradcheck(f, (xc,))
        assert torch.autograd.gradgradcheck(f, (xc,))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_max_unpool_gradcheck(rank):
    x = _x(2, 3, *([6] * rank))
    y, idx = getattr(F, f"max_pool{rank}d")(x.detach(), 2, return_indices=True)
    f = lambda v: getattr(pt, f"max_unpool{rank}d")(v, idx, 2)  # noqa: E731
    y = y.requires_grad_(True)
    assert torch.equal(f(y), getattr(F, f"max_unpool{rank}d")(y, idx, 2))
    assert torch.autograd.gradcheck(f, (y,))
    assert torch.autograd.gradgradcheck(f, (y,))


# ------------------------------------------------- modules and convert


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(3, 2, 1),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.AvgPool2d(2, count_include_pad=False),
            torch.nn.LPPool2d(2, 2),
        )
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def test_convert_replaces_every_pooling_module_and_keeps_results():
    torch.manual_seed(0)
    reference = SmallCNN().double()
    model = SmallCNN().double()
    model.load_state_dict(reference.state_dict())
    pt.convert(model)
    replaced = [type(m) for m in model.modules() if type(m).__module__ == "poolgrad.torch.nn"]
    assert [t.__name__ for t in replaced] == ["MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d"]
    assert not any(type(m) in pt.nn.REPLACEMENTS for m in model.modules())
    assert repr(model) == repr(reference)
    assert model.state_dict().keys() == reference.state_dict().keys()
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64)
    y, y_ref = model(x), reference(x)
    # poolgrad's LP double-rounds nothing PyTorch does not, but LP agrees to rounding only.
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    y.sum().backward()
    y_ref.sum().backward()
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    # One optimiser step trains the same way.
    assert torch.isfinite(torch.stack([p.grad.abs().sum() for p in model.parameters()])).all()


def test_convert_swaps_a_pooling_module_itself_and_every_rank():
    m = pt.convert(torch.nn.MaxPool3d(2, return_indices=True))
    assert isinstance(m, pt.nn.MaxPool3d) and isinstance(m, torch.nn.MaxPool3d)
    x = torch.randn(1, 2, 4, 4, 4)
    y, idx = m(x)
    y_ref, idx_ref = F.max_pool3d(x, 2, return_indices=True)
    assert torch.equal(y, y_ref) and torch.equal(idx, idx_ref)
    assert torch.equal(pt.nn.MaxUnpool3d(2)(y, idx), F.max_unpool3d(y, idx, 2))
    frac = pt.nn.FractionalMaxPool2d(2, output_size=3, _random_samples=torch.full((1, 2, 2), 0.5))
    assert torch.equal(
        frac(x[:, :, 0]), F.fractional_max_pool2d(x[:, :, 0], 2, 3, _random_samples=torch.full((1, 2, 2), 0.5))
    )
    assert set(pt.nn.REPLACEMENTS) >= {
        torch.nn.MaxPool1d,
        torch.nn.AvgPool3d,
        torch.nn.AdaptiveMaxPool2d,
        torch.nn.FractionalMaxPool3d,
        torch.nn.MaxUnpool1d,
        torch.nn.LPPool1d,
    }


# ------------------------------------------ layouts, copies, dtypes, errors


def test_contiguous_and_channels_last_inputs_are_read_without_a_copy():
    x = torch.randn(2, 8, 6, 6)
    call = pt._Call(x, 2, "test")
    assert call.layout == "ncx" and call.array(x).ctypes.data == x.data_ptr()
    xc = x.contiguous(memory_format=torch.channels_last)
    call = pt._Call(xc, 2, "test")
    assert call.layout == "nxc" and call.array(xc).ctypes.data == xc.data_ptr()
    x3 = torch.randn(1, 4, 3, 4, 5).contiguous(memory_format=torch.channels_last_3d)
    call = pt._Call(x3, 3, "test")
    assert call.layout == "nxc" and call.array(x3).ctypes.data == x3.data_ptr()
    y = pt.max_pool2d(xc, 3, 2, 1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, F.max_pool2d(x, 3, 2, 1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_half_types_match_torch(dtype):
    x = torch.randn(2, 4, 9, 9).to(dtype).requires_grad_(True)
    for ours, theirs in [
        (lambda t: pt.max_pool2d(t, 3, 2, 1), lambda t: F.max_pool2d(t, 3, 2, 1)),
        (lambda t: pt.avg_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2)),
        (lambda t: pt.adaptive_max_pool2d(t, 4), lambda t: F.adaptive_max_pool2d(t, 4)),
    ]:
        y, y_ref = ours(x), theirs(x)
        assert y.dtype == dtype and torch.equal(y, y_ref)
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, g)
        (gx_ref,) = torch.autograd.grad(y_ref, x, g)
        assert torch.equal(gx, gx_ref)


def test_unbatched_inputs_and_integer_max():
    x = torch.randn(3, 8, 8)
    assert torch.equal(pt.max_pool2d(x, 2), F.max_pool2d(x, 2))
    assert torch.equal(pt.avg_pool1d(x, 3), F.avg_pool1d(x, 3))
    xi = torch.randint(-100, 100, (2, 3, 8, 8), dtype=torch.int64)
    y, idx = pt.max_pool2d(xi, 2, return_indices=True)
    y_ref, idx_ref = F.max_pool2d(xi.double(), 2, return_indices=True)
    assert y.dtype == torch.int64 and torch.equal(y.double(), y_ref) and torch.equal(idx, idx_ref)


def test_errors_are_python_exceptions():
    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="kernel_size"):
        pt.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="expected a 3-D"):
        pt.max_pool2d(torch.randn(5, 5), 2)
    with pytest.raises(ValueError):
        pt.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError):
        pt.avg_pool2d(x.to(torch.int32), 2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        pt.max_pool2d(np.zeros((1, 1, 4, 4)), 2)
