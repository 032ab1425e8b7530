"""poolgrad: exact pooling layers for NumPy and PyTorch.

Max, average, LP, adaptive, global and fractional max pooling and max unpooling, in any
number of spatial dims, channels-first (``layout="ncx"``, PyTorch's ``(N, C, d1, ...)``)
or channels-last (``layout="nxc"``, ``(N, d1, ..., C)``), float16 / bfloat16 / float32 /
float64 (and uint8 / int8 / int32 / int64 for the max forward), with forward, backward
and double backward that match PyTorch bit for bit where PyTorch accepts the
configuration, and the ONNX operator spec where only ONNX defines it.

Parameter names and defaults are ``torch.nn.functional``'s; every size parameter takes
one number (every spatial dim) or one per dim. ONNX's ``pads`` (begins then ends) and
``auto_pad`` are keywords too. Arrays may be any NumPy array: strided views, Fortran
order and non-native byte order are read correctly (without a copy where the memory is
already C-contiguous and native). Every computation releases the GIL.

>>> import numpy as np, poolgrad
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> y, idx = poolgrad.max_pool(x, 2, return_indices=True)
>>> y[0, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
>>> g = poolgrad.max_pool_backward(np.ones_like(y), idx, x.shape, 2)
>>> int(g.sum())
4

The PyTorch drop-in is :mod:`poolgrad.torch` (needs ``torch``); pictures of where every
gradient goes are :func:`poolgrad.explain`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import get_num_threads, set_num_threads

__version__ = _native.__version__

__all__ = [
    "max_pool",
    "max_pool_backward",
    "max_pool_double_backward",
    "avg_pool",
    "avg_pool_backward",
    "avg_pool_double_backward",
    "lp_pool",
    "lp_pool_backward",
    "lp_pool_double_backward",
    "lp_pool_double_backward_input",
    "adaptive_max_pool",
    "adaptive_max_pool_backward",
    "adaptive_max_pool_double_backward",
    "adaptive_avg_pool",
    "adaptive_avg_pool_backward",
    "adaptive_avg_pool_double_backward",
    "global_max_pool",
    "global_max_pool_backward",
    "global_max_pool_double_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_avg_pool_double_backward",
    "fractional_max_pool",
    "fractional_max_pool_backward",
    "fractional_max_pool_double_backward",
    "max_unpool",
    "max_unpool_backward",
    "max_unpool_double_backward",
    "max_unpool_onnx",
    "explain",
    "Explanation",
    "set_num_threads",
    "get_num_threads",
]

Size = Union[int, Sequence[int]]


def _sizes(name: str, value: Optional[Size]) -> Optional[list]:
    """One number or a sequence of numbers, as a list (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {type(value).__name__}")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = [int(value)]
    else:
        try:
            values = [int(v) for v in value]
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of ints, got {type(value).__name__}") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{name} must not be negative, got {values}")
    return values


def _layout(layout: str) -> str:
    if layout not in ("ncx", "nxc"):
        raise ValueError(f"layout must be 'ncx' or 'nxc', got {layout!r}")
    return layout


def _array(x, name: str = "x") -> np.ndarray:
    """Any array-like as an ndarray in native byte order (no copy when it already is)."""
    a = np.asarray(x)
    if a.dtype.byteorder not in ("=", "|") and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.ndim < 3:
        raise ValueError(f"{name}: needs at least 3 dims (N, C and one spatial dim), got shape {a.shape}")
    return a


def _wire(a: np.ndarray) -> Tuple[np.ndarray, bool]:
    """bfloat16 (ml_dtypes) travels as its bits in a uint16 array."""
    if a.dtype.name == "bfloat16":
        return a.view(np.uint16), True
    return a, False


def _back(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    return result.view(like.dtype) if like.dtype.name == "bfloat16" else result


def _regular(kind: str, kernel_size, stride, padding, dilation, ceil_mode, pads, auto_pad, **extra):
    stride = _sizes("stride", stride)
    padding = _sizes("padding", padding)
    if pads is not None or auto_pad not in (None, "NOTSET"):
        # ONNX's padding replaces PyTorch's, whose default (0) is then no padding at all.
        if padding and any(padding):
            raise ValueError("give at most one of padding, pads and auto_pad")
        padding = None
    return _native.Operator(
        kind,
        kernel_size=_sizes("kernel_size", kernel_size),
        stride=stride if stride else None,
        padding=padding,
        pads=_sizes("pads", pads),
        auto_pad=auto_pad,
        dilation=_sizes("dilation", dilation),
        ceil_mode=bool(ceil_mode),
        **extra,
    )


def _forward(op, x, layout, return_indices=False):
    x = _array(x)
    wire, bf16 = _wire(x)
    if return_indices:
        y, idx = op.forward_with_indices(wire, _layout(layout), bf16)
        return _back(y, x), idx
    return _back(op.forward(wire, _layout(layout), bf16), x)


def _with_x(method, x, other, layout, *more):
    x = _array(x)
    wire, bf16 = _wire(x)
    arrays = [_wire(_array(a, "gradient"))[0] for a in (other,) + more]
    return _back(method(wire, *arrays, _layout(layout), bf16), x)


def _indexed(method, a, indices, layout, *leading):
    a = _array(a, "gradient")
    wire, bf16 = _wire(a)
    idx = np.asarray(indices, dtype=np.int64)
    return _back(method(*leading, wire, idx, _layout(layout), bf16), a)


def _shape(input_shape) -> list:
    return [int(d) for d in input_shape]


# ---------------------------------------------------------------- max pooling


def max_pool(
    x,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    layout: str = "ncx",
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
):
    """Max pooling (``torch.nn.functional.max_pool{1,2,3}d`` for any rank).

    Returns the output, or ``(output, indices)`` with ``return_indices=True``: int64
    indices flat within each (n, c) plane, as PyTorch's. Ties go to the first maximum in
    row-major window order; a NaN wins its window. ``pads`` (ONNX: all begins, then all
    ends) and ``auto_pad`` (``"SAME_UPPER"``, ``"SAME_LOWER"``, ``"VALID"``) replace
    ``padding``.

    >>> import numpy as np, poolgrad
    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> poolgrad.max_pool(x, 3, stride=2, padding=1).tolist()
    [[[3.0, 5.0, 5.0]]]
    """
    op = _regular("max", kernel_size, stride, padding, dilation, ceil_mode, pads, auto_pad)
    return _forward(op, x, layout, return_indices)


def max_pool_backward(
    grad_output,
    indices,
    input_shape: Sequence[int],
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
):
    """The gradient of :func:`max_pool` w.r.t. its input, from the saved indices
    (a scatter-add: overlapping windows accumulate, in output order as PyTorch's CPU).

    >>> import numpy as np, poolgrad
    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> y, i = poolgrad.max_pool(x, 3, 2, 1, return_indices=True)
    >>> poolgrad.max_pool_backward(np.ones_like(y), i, x.shape, 3, 2, 1).tolist()
    [[[0.0, 1.0, 0.0, 2.0, 0.0]]]
    """
    op = _regular("max", kernel_size, stride, padding, dilation, ceil_mode, pads, auto_pad)
    return _indexed(op.backward_with_indices, grad_output, indices, layout, _shape(input_shape))


def max_pool_double_backward(
    grad_grad_input,
    indices,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
):
    """Double backward of max pooling: ``grad_grad_input`` (shaped like the input)
    gathered at the argmax (the gradient of the backward w.r.t. ``grad_output``; its
    gradient w.r.t. the input is zero)."""
    op = _regular("max", kernel_size, stride, padding, dilation, ceil_mode, pads, auto_pad)
    return _indexed(op.double_backward_with_indices, grad_grad_input, indices, layout)


# ------------------------------------------------------------ average pooling


def _avg(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, pads, auto_pad):
    return _regular(
        "avg",
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        pads,
        auto_pad,
        count_include_pad=bool(count_include_pad),
        divisor_override=divisor_override,
    )


def avg_pool(
    x,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    *,
    layout: str = "ncx",
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
):
    """Average pooling (``torch.nn.functional.avg_pool{1,2,3}d`` for any rank; ONNX's
    ``dilation``, ``pads`` and ``auto_pad`` as keywords).

    >>> import numpy as np, poolgrad
    >>> x = np.arange(1., 6.).reshape(1, 1, 5)
    >>> poolgrad.avg_pool(x, 3, 2, 1, count_include_pad=False).tolist()
    [[[1.5, 3.0, 4.5]]]
    """
    op = _avg(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, pads, auto_pad)
    return _forward(op, x, layout)


def avg_pool_backward(
    grad_output,
    input_shape: Sequence[int],
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    *,
    layout: str = "ncx",
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
):
    """The gradient of :func:`avg_pool` w.r.t. its input (it needs only the input's
    shape: every cell of a window gets ``δ / divisor``)."""
    op = _avg(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, pads, auto_pad)
    g = _array(grad_output, "grad_output")
    wire, bf16 = _wire(g)
    return _back(op.backward_from_shape(_shape(input_shape), wire, _layout(layout), bf16), g)


def avg_pool_double_backward(grad_grad_input, kernel_size: Size, *args, layout: str = "ncx", **kwargs):
    """Double backward of average pooling: the pooling of ``grad_grad_input`` (it is
    linear); same parameters as :func:`avg_pool`."""
    return avg_pool(grad_grad_input, kernel_size, *args, layout=layout, **kwargs)


# ----------------------------------------------------------------- LP pooling


def _lp(norm_type, kernel_size, stride, ceil_mode, padding, dilation, pads, auto_pad, formula):
    return _regular(
        "lp",
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        pads,
        auto_pad,
        norm_type=float(norm_type),
        lp_formula=formula,
    )


def lp_pool(
    x,
    norm_type: float,
    kernel_size: Size,
    stride: Optional[Size] = None,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    padding: Size = 0,
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
    formula: str = "auto",
):
    """LP pooling (``torch.nn.functional.lp_pool{1,2,3}d``; ONNX ``LpPool``).

    ``formula="torch"`` is PyTorch's ``(K · avg(x^p))^(1/p)``, ``"onnx"`` is ONNX's
    ``(Σ |x|^p)^(1/p)``; ``"auto"`` (default) takes PyTorch's unless the geometry has
    padding or dilation, which only ONNX defines. ``norm_type`` may be ``inf``.

    >>> import numpy as np, poolgrad
    >>> poolgrad.lp_pool(np.array([[[3., 4.]]]), 2, 2).tolist()
    [[[5.0]]]
    """
    op = _lp(norm_type, kernel_size, stride, ceil_mode, padding, dilation, pads, auto_pad, formula)
    return _forward(op, x, layout)


def lp_pool_backward(
    grad_output,
    x,
    norm_type: float,
    kernel_size: Size,
    stride: Optional[Size] = None,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    padding: Size = 0,
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
    formula: str = "auto",
):
    """The gradient of :func:`lp_pool` w.r.t. its input ``x``."""
    op = _lp(norm_type, kernel_size, stride, ceil_mode, padding, dilation, pads, auto_pad, formula)
    return _with_x(op.backward, x, grad_output, layout)


def lp_pool_double_backward(
    x,
    grad_grad_input,
    norm_type: float,
    kernel_size: Size,
    stride: Optional[Size] = None,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    padding: Size = 0,
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
    formula: str = "auto",
):
    """Double backward of LP pooling, the ``grad_output`` part: ``J · v``, the forward's
    directional derivative along ``grad_grad_input``."""
    op = _lp(norm_type, kernel_size, stride, ceil_mode, padding, dilation, pads, auto_pad, formula)
    return _with_x(op.double_backward, x, grad_grad_input, layout)


def lp_pool_double_backward_input(
    x,
    grad_output,
    grad_grad_input,
    norm_type: float,
    kernel_size: Size,
    stride: Optional[Size] = None,
    ceil_mode: bool = False,
    *,
    layout: str = "ncx",
    padding: Size = 0,
    dilation: Size = 1,
    pads: Optional[Size] = None,
    auto_pad: Optional[str] = None,
    formula: str = "auto",
):
    """Double backward of LP pooling, the input part: ``H · v``, the derivative of the
    backward w.r.t. ``x`` along ``grad_grad_input``."""
    op = _lp(norm_type, kernel_size, stride, ceil_mode, padding, dilation, pads, auto_pad, formula)
    x = _array(x)
    wire, bf16 = _wire(x)
    gy = _wire(_array(grad_output, "grad_output"))[0]
    v = _wire(_array(grad_grad_input, "grad_grad_input"))[0]
    return _back(op.double_backward_input(wire, gy, v, _layout(layout), bf16), x)


# ------------------------------------------------------- adaptive and global


def _adaptive(kind: str, output_size, x_shape=None, layout="ncx"):
    sizes = output_size if isinstance(output_size, (list, tuple)) else [output_size]
    if any(s is None for s in sizes):
        # PyTorch: None keeps that dim's input size.
        if x_shape is None:
            raise ValueError("output_size with None needs the input's shape")
        spatial = list(x_shape[2:]) if layout == "ncx" else list(x_shape[1:-1])
        if len(sizes) == 1:
            sizes = sizes * len(spatial)
        if len(sizes) != len(spatial):
            raise ValueError(f"output_size has {len(sizes)} values but the input has {len(spatial)} spatial dims")
        sizes = [d if s is None else s for s, d in zip(sizes, spatial)]
    return _native.Operator(kind, output_size=_sizes("output_size", sizes))


def adaptive_max_pool(x, output_size: Size, return_indices: bool = False, *, layout: str = "ncx"):
    """Adaptive max pooling (``torch.nn.functional.adaptive_max_pool{1,2,3}d``): window
    ``i`` of each dim covers ``[floor(i·I/O), ceil((i+1)·I/O))``; ``None`` in
    ``output_size`` keeps that dim."""
    x = _array(x)
    return _forward(_adaptive("adaptive_max", output_size, x.shape, layout), x, layout, return_indices)


def adaptive_max_pool_backward(grad_output, indices, input_shape, output_size: Size, *, layout: str = "ncx"):
    """The gradient of :func:`adaptive_max_pool` from the saved indices."""
    op = _adaptive("adaptive_max", output_size, input_shape, layout)
    return _indexed(op.backward_with_indices, grad_output, indices, layout, _shape(input_shape))


def adaptive_max_pool_double_backward(grad_grad_input, indices, output_size: Size, *, layout: str = "ncx"):
    """Double backward of adaptive max pooling (a gather at the argmax)."""
    op = _adaptive("adaptive_max", output_size, np.shape(grad_grad_input), layout)
    return _indexed(op.double_backward_with_indices, grad_grad_input, indices, layout)


def adaptive_avg_pool(x, output_size: Size, *, layout: str = "ncx"):
    """Adaptive average pooling (``torch.nn.functional.adaptive_avg_pool{1,2,3}d``)."""
    x = _array(x)
    return _forward(_adaptive("adaptive_avg", output_size, x.shape, layout), x, layout)


def adaptive_avg_pool_backward(grad_output, input_shape, output_size: Size, *, layout: str = "ncx"):
    """The gradient of :func:`adaptive_avg_pool` (needs only the input's shape)."""
    op = _adaptive("adaptive_avg", output_size, input_shape, layout)
    g = _array(grad_output, "grad_output")
    wire, bf16 = _wire(g)
    return _back(op.backward_from_shape(_shape(input_shape), wire, _layout(layout), bf16), g)


def adaptive_avg_pool_double_backward(grad_grad_input, output_size: Size, *, layout: str = "ncx"):
    """Double backward of adaptive average pooling: the pooling of ``grad_grad_input``."""
    return adaptive_avg_pool(grad_grad_input, output_size, layout=layout)


def global_max_pool(x, return_indices: bool = False, *, layout: str = "ncx"):
    """Global max pooling: one window per (n, c) plane; spatial dims kept with size 1."""
    return _forward(_native.Operator("global_max"), x, layout, return_indices)


def global_max_pool_backward(grad_output, indices, input_shape, *, layout: str = "ncx"):
    """The gradient of :func:`global_max_pool` from the saved indices."""
    op = _native.Operator("global_max")
    return _indexed(op.backward_with_indices, grad_output, indices, layout, _shape(input_shape))


def global_max_pool_double_backward(grad_grad_input, indices, *, layout: str = "ncx"):
    """Double backward of global max pooling (a gather at the argmax)."""
    return _indexed(_native.Operator("global_max").double_backward_with_indices, grad_grad_input, indices, layout)


def global_avg_pool(x, *, layout: str = "ncx"):
    """Global average pooling: the mean of each (n, c) plane; spatial dims kept with size 1."""
    return _forward(_native.Operator("global_avg"), x, layout)


def global_avg_pool_backward(grad_output, input_shape, *, layout: str = "ncx"):
    """The gradient of :func:`global_avg_pool`: ``δ / volume`` in every cell."""
    g = _array(grad_output, "grad_output")
    wire, bf16 = _wire(g)
    op = _native.Operator("global_avg")
    return _back(op.backward_from_shape(_shape(input_shape), wire, _layout(layout), bf16), g)


def global_avg_pool_double_backward(grad_grad_input, *, layout: str = "ncx"):
    """Double backward of global average pooling: the pooling of ``grad_grad_input``."""
    return global_avg_pool(grad_grad_input, layout=layout)


# ------------------------------------------------------- fractional max pooling


def _fractional_sizes(x_shape, layout, kernel_size, output_size, output_ratio):
    spatial = list(x_shape[2:]) if layout == "ncx" else list(x_shape[1:-1])
    rank = len(spatial)
    if output_size is None:
        if output_ratio is None:
            raise ValueError("fractional_max_pool needs output_size or output_ratio")
        ratios = list(output_ratio) if isinstance(output_ratio, (list, tuple)) else [output_ratio] * rank
        if len(ratios) != rank:
            raise ValueError(f"output_ratio has {len(ratios)} values but the input has {rank} spatial dims")
        if any(not 0 < r < 1 for r in ratios):
            raise ValueError(f"output_ratio must be in (0, 1), got {ratios}")
        output_size = [int(d * r) for d, r in zip(spatial, ratios)]
    return _sizes("kernel_size", kernel_size), _sizes("output_size", output_size)


def fractional_max_pool(
    x,
    kernel_size: Size,
    output_size: Optional[Size] = None,
    output_ratio=None,
    return_indices: bool = False,
    _random_samples=None,
    *,
    layout: str = "ncx",
    rng: Optional[np.random.Generator] = None,
):
    """Fractional max pooling (``torch.nn.functional.fractional_max_pool{2,3}d``):
    PyTorch's pseudo-random windows from ``_random_samples`` (shape ``(N, C, rank)``,
    values in [0, 1), the input's dtype), drawn from ``rng`` when not given.
    """
    x = _array(x)
    kernel, out = _fractional_sizes(x.shape, _layout(layout), kernel_size, output_size, output_ratio)
    rank = x.ndim - 2
    if _random_samples is None:
        rng = rng if rng is not None else np.random.default_rng()
        n, c = (x.shape[0], x.shape[1]) if layout == "ncx" else (x.shape[0], x.shape[-1])
        _random_samples = rng.random((n, c, rank)).astype(x.dtype)
    wire, bf16 = _wire(x)
    samples = _wire(np.asarray(_random_samples, dtype=x.dtype))[0]
    y, idx = _native.fractional_max_pool(wire, kernel, out, samples, layout, bf16)
    return (_back(y, x), idx) if return_indices else _back(y, x)


def fractional_max_pool_backward(
    grad_output, indices, input_shape, kernel_size: Size, output_size: Size, *, layout: str = "ncx"
):
    """The gradient of :func:`fractional_max_pool` from the saved indices."""
    kernel, out = _sizes("kernel_size", kernel_size), _sizes("output_size", output_size)
    g = _array(grad_output, "grad_output")
    wire, bf16 = _wire(g)
    idx = np.asarray(indices, dtype=np.int64)
    return _back(
        _native.fractional_max_pool_backward(_shape(input_shape), wire, idx, kernel, out, _layout(layout), bf16), g
    )


def fractional_max_pool_double_backward(
    grad_grad_input, indices, kernel_size: Size, output_size: Size, *, layout: str = "ncx"
):
    """Double backward of fractional max pooling (a gather at the argmax)."""
    kernel, out = _sizes("kernel_size", kernel_size), _sizes("output_size", output_size)
    v = _array(grad_grad_input, "grad_grad_input")
    wire, bf16 = _wire(v)
    idx = np.asarray(indices, dtype=np.int64)
    return _back(_native.fractional_max_pool_double_backward(wire, idx, kernel, out, _layout(layout), bf16), v)


# ------------------------------------------------------------ max unpooling


def _unpool_size(output_size, rank):
    if output_size is None:
        return None
    sizes = list(output_size)
    # PyTorch accepts the full size (N, C, spatial...) as well as the spatial one.
    return _sizes("output_size", sizes[-rank:] if len(sizes) == rank + 2 else sizes)


def _unpool(x, indices, kernel_size, stride, padding, output_size, layout, adjoint):
    x = _array(x)
    wire, bf16 = _wire(x)
    idx = np.asarray(indices, dtype=np.int64)
    stride = _sizes("stride", stride)
    y = _native.max_unpool(
        wire,
        idx,
        _sizes("kernel_size", kernel_size),
        stride if stride else None,
        _sizes("padding", padding),
        _unpool_size(output_size, x.ndim - 2),
        _layout(layout),
        bf16,
        adjoint,
    )
    return _back(y, x)


def max_unpool(
    x,
    indices,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    output_size: Optional[Sequence[int]] = None,
    *,
    layout: str = "ncx",
):
    """Max unpooling (``torch.nn.functional.max_unpool{1,2,3}d``): each value goes to its
    index in a zero output; with repeated indices the last value in order wins.

    >>> import numpy as np, poolgrad
    >>> x = np.array([[[1., 3., 2., 5.]]])
    >>> y, i = poolgrad.max_pool(x, 2, return_indices=True)
    >>> poolgrad.max_unpool(y, i, 2).tolist()
    [[[0.0, 3.0, 0.0, 5.0]]]
    """
    return _unpool(x, indices, kernel_size, stride, padding, output_size, layout, False)


def max_unpool_backward(
    grad_output,
    indices,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    *,
    layout: str = "ncx",
):
    """The gradient of :func:`max_unpool` w.r.t. its input: ``grad_output`` gathered at
    the indices."""
    g = _array(grad_output, "grad_output")
    wire, bf16 = _wire(g)
    stride = _sizes("stride", stride)
    idx = np.asarray(indices, dtype=np.int64)
    out = _native.max_unpool_backward(
        wire,
        idx,
        _sizes("kernel_size", kernel_size),
        stride if stride else None,
        _sizes("padding", padding),
        _layout(layout),
        bf16,
    )
    return _back(out, g)


def max_unpool_double_backward(
    grad_grad_input,
    indices,
    kernel_size: Size,
    stride: Optional[Size] = None,
    padding: Size = 0,
    output_size: Optional[Sequence[int]] = None,
    *,
    layout: str = "ncx",
):
    """Double backward of max unpooling: ``grad_grad_input`` scatter-added to the
    indices (equal to :func:`max_unpool` unless indices repeat)."""
    return _unpool(grad_grad_input, indices, kernel_size, stride, padding, output_size, layout, True)


def max_unpool_onnx(x, indices, kernel_shape: Size, strides: Optional[Size] = None, pads=None, output_shape=None):
    """ONNX ``MaxUnpool``: indices flat over the whole ``(N, C, d...)`` tensor, optional
    full ``output_shape`` (channels-first)."""
    x = _array(x)
    wire, bf16 = _wire(x)
    strides = _sizes("strides", strides)
    out = _native.max_unpool_onnx(
        wire,
        np.asarray(indices, dtype=np.int64),
        _sizes("kernel_shape", kernel_shape),
        strides if strides else None,
        _sizes("pads", pads),
        _sizes("output_shape", output_shape),
        bf16,
    )
    return _back(out, x)


from ._explain import Explanation, explain  # noqa: E402
