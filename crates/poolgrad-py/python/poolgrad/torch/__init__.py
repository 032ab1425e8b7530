"""poolgrad as a drop-in for ``torch.nn.functional``'s pooling.

The same names and signatures — ``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d``,
``lp_pool1d/2d/3d``, ``adaptive_max_pool1d/2d/3d``, ``adaptive_avg_pool1d/2d/3d``,
``fractional_max_pool2d/3d`` and ``max_unpool1d/2d/3d`` — as ``torch.autograd.Function``s
whose backward is poolgrad's exact one and whose backward has a backward of its own, so
``torch.autograd.gradcheck`` and ``gradgradcheck`` pass. float16, bfloat16, float32 and
float64 CPU tensors; contiguous and ``channels_last`` tensors are read without a copy
(``channels_last`` runs poolgrad's channels-last kernels and returns ``channels_last``
results, as PyTorch does). Modules are in :mod:`poolgrad.torch.nn`; :func:`convert`
swaps them into a model.

>>> import torch, poolgrad.torch as pt
>>> x = torch.arange(16.).reshape(1, 1, 4, 4).requires_grad_()
>>> pt.max_pool2d(x, 3, 2, 1).sum().backward()
>>> x.grad[0, 0].tolist()
[[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
"""

from __future__ import annotations

import numpy as np
import torch

import poolgrad as _pg
from poolgrad import _native

__all__ = [
    f"{name}{rank}d"
    for name in ("max_pool", "avg_pool", "lp_pool", "adaptive_max_pool", "adaptive_avg_pool", "max_unpool")
    for rank in (1, 2, 3)
] + ["fractional_max_pool2d", "fractional_max_pool3d", "convert", "nn"]


# ------------------------------------------------------------ tensors <-> arrays


class _Call:
    """How one call's tensors travel: batched or not, channels-first or -last."""

    def __init__(self, x: torch.Tensor, rank: int, name: str):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.device.type != "cpu":
            raise ValueError(f"{name}: poolgrad runs on the CPU; the input is on {x.device}")
        if x.dim() not in (rank + 1, rank + 2):
            raise ValueError(
                f"{name}: expected a {rank + 1}-D (unbatched) or {rank + 2}-D (batched) input, got shape {tuple(x.shape)}"
            )
        self.rank = rank
        self.unbatched = x.dim() == rank + 1
        self.dtype = x.dtype
        full = x.unsqueeze(0) if self.unbatched else x
        fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(rank)
        self.channels_last = (
            fmt is not None and not full.is_contiguous() and full.is_contiguous(memory_format=fmt) and full.shape[1] > 1
        )
        self.layout = "nxc" if self.channels_last else "ncx"
        self.bf16 = x.dtype == torch.bfloat16

    def array(self, t: torch.Tensor) -> np.ndarray:
        """The tensor as the array poolgrad reads (no copy where its memory allows)."""
        t = t.detach()
        if self.unbatched:
            t = t.unsqueeze(0)
        if self.channels_last:
            t = t.permute(0, *range(2, self.rank + 2), 1)
        t = t.contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()

    def indices(self, t: torch.Tensor) -> np.ndarray:
        return self.array(t.to(torch.int64))

    def tensor(self, a: np.ndarray, bf16: bool = None) -> torch.Tensor:
        """A result array as a tensor in the input's layout and batching."""
        bf16 = self.bf16 if bf16 is None else bf16
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16) if bf16 and a.dtype == np.uint16 else torch.from_numpy(a)
        if self.channels_last:
            t = t.permute(0, self.rank + 1, *range(1, self.rank + 1))
        return t.squeeze(0) if self.unbatched else t

    def shape(self, x: torch.Tensor) -> list:
        """The input's dims as poolgrad sees them (batched, in its layout)."""
        dims = ([1] if self.unbatched else []) + list(x.shape)
        return [dims[0], *dims[2:], dims[1]] if self.channels_last else dims


# ------------------------------------------------------- autograd functions


class _Pool(torch.autograd.Function):
    """y = op(x), for average and LP pooling (and max without indices saved)."""

    @staticmethod
    def forward(ctx, x, op, call):
        ctx.op, ctx.call = op, call
        ctx.save_for_backward(x)
        return call.tensor(op.forward(call.array(x), call.layout, call.bf16))

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return _PoolBackward.apply(x, grad_output, ctx.op, ctx.call), None, None


class _PoolBackward(torch.autograd.Function):
    """dx = op.backward(x, dy), differentiable once more: w.r.t. dy it is the forward's
    derivative J·v, w.r.t. x LP's Hessian part H·v (zero for average pooling)."""

    @staticmethod
    def forward(ctx, x, grad_output, op, call):
        ctx.op, ctx.call = op, call
        ctx.save_for_backward(x, grad_output)
        return call.tensor(op.backward(call.array(x), call.array(grad_output), call.layout, call.bf16))

    @staticmethod
    def backward(ctx, grad_grad_input):
        x, grad_output = ctx.saved_tensors
        op, call = ctx.op, ctx.call
        gx = ggy = None
        v = call.array(grad_grad_input)
        if ctx.needs_input_grad[0]:
            h = op.double_backward_input(call.array(x), call.array(grad_output), v, call.layout, call.bf16)
            gx = torch.zeros_like(x) if h is None else call.tensor(h)
        if ctx.needs_input_grad[1]:
            ggy = call.tensor(op.double_backward(call.array(x), v, call.layout, call.bf16))
        return gx, ggy, None, None


class _ArgmaxPool(torch.autograd.Function):
    """(y, indices) = a max pooling; `run(array) -> (y, indices)`, backward a scatter."""

    @staticmethod
    def forward(ctx, x, run, scatter, gather, call):
        y, idx = run(call.array(x))
        indices = call.tensor(idx, bf16=False)
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        ctx.scatter, ctx.gather, ctx.call, ctx.input_shape = scatter, gather, call, call.shape(x)
        return call.tensor(y), indices

    @staticmethod
    def backward(ctx, grad_output, _grad_indices):
        (indices,) = ctx.saved_tensors
        gx = _Scatter.apply(grad_output, indices, ctx.scatter, ctx.gather, ctx.call, ctx.input_shape)
        return gx, None, None, None, None


class _Scatter(torch.autograd.Function):
    """dx = scatter-add of dy to the argmax; its own backward is the gather at the argmax."""

    @staticmethod
    def forward(ctx, grad_output, indices, scatter, gather, call, input_shape):
        ctx.save_for_backward(indices)
        ctx.gather, ctx.call = gather, call
        out = scatter(input_shape, call.array(grad_output), call.indices(indices), call.layout, call.bf16)
        return call.tensor(out)

    @staticmethod
    def backward(ctx, grad_grad_input):
        (indices,) = ctx.saved_tensors
        call = ctx.call
        out = ctx.gather(call.array(grad_grad_input), call.indices(indices), call.layout, call.bf16)
        return call.tensor(out), None, None, None, None, None


def _scatter_to_indices(call, a, indices, params, adjoint):
    """max_unpool of `a` (`adjoint`: its double backward, which adds repeated indices)."""
    kernel, stride, padding, size = params
    out = _native.max_unpool(
        call.array(a), call.indices(indices), kernel, stride, padding, size, call.layout, call.bf16, adjoint
    )
    return call.tensor(out)


class _Unpool(torch.autograd.Function):
    """y = max_unpool(x, indices); backward a gather, whose backward is a scatter-add."""

    @staticmethod
    def forward(ctx, x, indices, params, call):
        ctx.save_for_backward(indices)
        ctx.params, ctx.call = params, call
        return _scatter_to_indices(call, x, indices, params, adjoint=False)

    @staticmethod
    def backward(ctx, grad_output):
        (indices,) = ctx.saved_tensors
        return _UnpoolBackward.apply(grad_output, indices, ctx.params, ctx.call), None, None, None


class _UnpoolBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_output, indices, params, call):
        kernel, stride, padding, _ = params
        ctx.save_for_backward(indices)
        ctx.params, ctx.call = params, call
        g = _native.max_unpool_backward(
            call.array(grad_output), call.indices(indices), kernel, stride, padding, call.layout, call.bf16
        )
        return call.tensor(g)

    @staticmethod
    def backward(ctx, grad_grad_input):
        (indices,) = ctx.saved_tensors
        return _scatter_to_indices(ctx.call, grad_grad_input, indices, ctx.params, adjoint=True), None, None, None


# ------------------------------------------------------------------ functions


def _stride(stride):
    s = _pg._sizes("stride", stride)
    return s if s else None


def _integer_max(x, call, op):
    y, idx = op.forward_with_indices(call.array(x), call.layout, False)
    return call.tensor(y, bf16=False), call.tensor(idx, bf16=False)


def _max(op, x, call, return_indices):
    if not x.is_floating_point():
        y, idx = _integer_max(x, call, op)
    else:
        run = lambda a: op.forward_with_indices(a, call.layout, call.bf16)  # noqa: E731
        y, idx = _ArgmaxPool.apply(x, run, op.backward_with_indices, op.double_backward_with_indices, call)
    return (y, idx) if return_indices else y


def _make_max_pool(rank):
    def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        call = _Call(input, rank, f"max_pool{rank}d")
        op = _pg._regular("max", kernel_size, stride, padding, dilation, ceil_mode, None, None)
        return _max(op, input, call, return_indices)

    max_pool.__doc__ = f"poolgrad's ``torch.nn.functional.max_pool{rank}d`` (same arguments and results)."
    return max_pool


def _make_avg_pool(rank):
    def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
        call = _Call(input, rank, f"avg_pool{rank}d")
        op = _pg._avg(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 1, None, None)
        return _Pool.apply(input, op, call)

    avg_pool.__doc__ = f"poolgrad's ``torch.nn.functional.avg_pool{rank}d`` (same arguments and results)."
    if rank == 1:
        # PyTorch's avg_pool1d has no divisor_override.
        def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
            return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad)

        avg_pool1d.__doc__ = avg_pool.__doc__
        return avg_pool1d
    return avg_pool


def _make_lp_pool(rank):
    def lp_pool(input, norm_type, kernel_size, stride=None, ceil_mode=False):
        call = _Call(input, rank, f"lp_pool{rank}d")
        op = _pg._lp(norm_type, kernel_size, stride, ceil_mode, 0, 1, None, None, "torch")
        return _Pool.apply(input, op, call)

    lp_pool.__doc__ = f"poolgrad's ``torch.nn.functional.lp_pool{rank}d`` (same arguments and results)."
    return lp_pool


def _make_adaptive_max_pool(rank):
    def adaptive_max_pool(input, output_size, return_indices=False):
        call = _Call(input, rank, f"adaptive_max_pool{rank}d")
        op = _pg._adaptive("adaptive_max", output_size, call.shape(input), call.layout)
        return _max(op, input, call, return_indices)

    adaptive_max_pool.__doc__ = f"poolgrad's ``torch.nn.functional.adaptive_max_pool{rank}d``."
    return adaptive_max_pool


def _make_adaptive_avg_pool(rank):
    def adaptive_avg_pool(input, output_size):
        call = _Call(input, rank, f"adaptive_avg_pool{rank}d")
        op = _pg._adaptive("adaptive_avg", output_size, call.shape(input), call.layout)
        return _Pool.apply(input, op, call)

    adaptive_avg_pool.__doc__ = f"poolgrad's ``torch.nn.functional.adaptive_avg_pool{rank}d``."
    return adaptive_avg_pool


def _make_fractional_max_pool(rank):
    def fractional_max_pool(
        input, kernel_size, output_size=None, output_ratio=None, return_indices=False, _random_samples=None
    ):
        call = _Call(input, rank, f"fractional_max_pool{rank}d")
        dims = call.shape(input)
        kernel, out = _pg._fractional_sizes(dims, call.layout, kernel_size, output_size, output_ratio)
        n, c = dims[0], (dims[-1] if call.channels_last else dims[1])
        if _random_samples is None:
            _random_samples = torch.rand(n, c, rank, dtype=input.dtype)
        samples = _random_samples.detach().to(input.dtype).contiguous()
        samples = samples.view(torch.int16).numpy().view(np.uint16) if call.bf16 else samples.numpy()

        def run(a):
            return _native.fractional_max_pool(a, kernel, out, samples, call.layout, call.bf16)

        def scatter(shape, g, idx, layout, bf16):
            return _native.fractional_max_pool_backward(shape, g, idx, kernel, out, layout, bf16)

        def gather(v, idx, layout, bf16):
            return _native.fractional_max_pool_double_backward(v, idx, kernel, out, layout, bf16)

        y, idx = _ArgmaxPool.apply(input, run, scatter, gather, call)
        return (y, idx) if return_indices else y

    fractional_max_pool.__doc__ = (
        f"poolgrad's ``torch.nn.functional.fractional_max_pool{rank}d``: the same windows for the same "
        "``_random_samples`` (drawn with ``torch.rand`` when not given)."
    )
    return fractional_max_pool


def _make_max_unpool(rank):
    def max_unpool(input, indices, kernel_size, stride=None, padding=0, output_size=None):
        call = _Call(input, rank, f"max_unpool{rank}d")
        size = _pg._unpool_size(output_size, rank)
        params = (_pg._sizes("kernel_size", kernel_size), _stride(stride), _pg._sizes("padding", padding), size)
        return _Unpool.apply(input, indices, params, call)

    max_unpool.__doc__ = f"poolgrad's ``torch.nn.functional.max_unpool{rank}d`` (same arguments and results)."
    return max_unpool


_FACTORIES = {
    "max_pool": (_make_max_pool, (1, 2, 3)),
    "avg_pool": (_make_avg_pool, (1, 2, 3)),
    "lp_pool": (_make_lp_pool, (1, 2, 3)),
    "adaptive_max_pool": (_make_adaptive_max_pool, (1, 2, 3)),
    "adaptive_avg_pool": (_make_adaptive_avg_pool, (1, 2, 3)),
    "fractional_max_pool": (_make_fractional_max_pool, (2, 3)),
    "max_unpool": (_make_max_unpool, (1, 2, 3)),
}

for _name, (_factory, _ranks) in _FACTORIES.items():
    for _rank in _ranks:
        _fn = _factory(_rank)
        _fn.__name__ = _fn.__qualname__ = f"{_name}{_rank}d"
        _fn.__module__ = __name__
        globals()[_fn.__name__] = _fn
del _name, _factory, _ranks, _rank, _fn


from . import nn  # noqa: E402
from .nn import convert  # noqa: E402
