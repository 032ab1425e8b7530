"""Pictures of where every gradient goes, for notebooks (the CLI's ``poolgrad explain``)."""

from __future__ import annotations

import html
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from . import _native

_KINDS = {
    "max": "max pooling",
    "avg": "average pooling",
    "lp": "LP pooling",
    "adaptive-max": "adaptive max pooling",
    "adaptive-avg": "adaptive average pooling",
    "global-max": "global max pooling",
    "global-avg": "global average pooling",
}


class Explanation:
    """The forward and backward of one (n, c) plane, drawn.

    Jupyter shows it inline (``_repr_html_``: forward and backward side by side;
    ``_repr_svg_``: the backward). ``text`` is what the terminal shows; ``forward_svg``
    and ``backward_svg`` are the SVG documents; :meth:`save` writes SVG or PNG.
    """

    def __init__(self, title: str, text: str, forward_svg: str, backward_svg: str):
        self.title = title
        self.text = text
        self.forward_svg = forward_svg
        self.backward_svg = backward_svg

    def __repr__(self) -> str:
        return f"== {self.title} ==\n{self.text}"

    def _repr_svg_(self) -> str:
        return self.backward_svg

    def _repr_html_(self) -> str:
        return (
            f"<div><p><b>{html.escape(self.title)}</b></p>"
            f"<div>{self.forward_svg}</div><div>{self.backward_svg}</div></div>"
        )

    def png(self, part: str = "backward") -> bytes:
        """The ``"forward"`` or ``"backward"`` picture as PNG bytes (2x the SVG size)."""
        return _native.svg_to_png(self._svg(part))

    def _svg(self, part: str) -> str:
        if part not in ("forward", "backward"):
            raise ValueError(f"part must be 'forward' or 'backward', got {part!r}")
        return self.forward_svg if part == "forward" else self.backward_svg

    def save(self, path, part: str = "backward") -> None:
        """Writes the ``part`` picture to ``path``: PNG if it ends in ``.png``, else SVG.
        Nothing is written if rendering fails."""
        path = os.fspath(path)
        data = self.png(part) if path.lower().endswith(".png") else self._svg(part).encode()
        with open(path, "wb") as f:
            f.write(data)


def _title(op: str, spatial, params) -> str:
    parts = [f"{_KINDS[op]} of a {'x'.join(str(d) for d in spatial)} input"]
    for label, value in params:
        if value is None or value is False:
            continue
        if value is True:
            parts.append(label)
        elif isinstance(value, (list, tuple)):
            parts.append(f"{label} {','.join(str(v) for v in value)}")
        else:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def explain(
    x=None,
    *,
    op: str = "max",
    kernel_size=None,
    stride=None,
    padding=None,
    pads=None,
    auto_pad: Optional[str] = None,
    dilation=None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
    norm_type: Optional[float] = None,
    formula: str = "auto",
    output_size=None,
    shape: Optional[Sequence[int]] = None,
    values: Optional[Sequence[float]] = None,
    seed: Optional[int] = None,
    grad_output=None,
    plane: Tuple[int, int] = (0, 0),
    layout: str = "ncx",
) -> Explanation:
    """Draws where every gradient of a pooling layer goes, on one (n, c) plane.

    The options are ``poolgrad explain``'s: ``op`` is ``"max"``, ``"avg"``, ``"lp"``,
    ``"adaptive-max"``, ``"adaptive-avg"``, ``"global-max"`` or ``"global-avg"``; the
    input is ``x`` (a NumPy array or a torch tensor), or ``shape`` with ``values`` or
    ``seed`` (the same generated input as the CLI's ``--seed``); ``grad_output`` defaults
    to all ones. 1-D to 3-D inputs, at most 16 cells a side, 8 slices and 64 outputs.

    >>> import poolgrad
    >>> ex = poolgrad.explain(op="max", kernel_size=3, stride=2, padding=1, shape=(1, 1, 5, 5), seed=7)
    >>> ex.forward_svg.startswith("<svg"), ex.png()[:4] == b"\\x89PNG"
    (True, True)
    """
    if op not in _KINDS:
        raise ValueError(f"op must be one of {', '.join(_KINDS)}, got {op!r}")
    if x is not None:
        if values is not None or seed is not None:
            raise ValueError("give x, or shape with values or seed, not both")
        if hasattr(x, "detach"):  # a torch tensor
            x = x.detach().to("cpu").double().numpy()
        x = np.asarray(x, dtype=np.float64)
    else:
        if values is not None and seed is not None:
            raise ValueError("give values or seed, not both")
        if values is not None:
            v = np.asarray(values, dtype=np.float64).ravel()
            dims = tuple(shape) if shape is not None else (1, 1, v.size)
            if int(np.prod(dims)) != v.size:
                raise ValueError(f"{v.size} values do not fill shape {dims}")
            x = v.reshape(dims)
        else:
            if shape is None:
                raise ValueError("give x, or shape with values or seed")
            dims = tuple(int(d) for d in shape)
            x = np.asarray(_native.seeded_values(int(np.prod(dims)), 1 if seed is None else int(seed)))
            x = x.reshape(dims)
    if x.ndim < 3:
        raise ValueError(f"x: needs at least 3 dims (N, C and spatial), got shape {x.shape}")
    x = np.ascontiguousarray(x)
    kind = op.replace("-", "_")
    if kind in ("adaptive_max", "adaptive_avg"):
        sizes = output_size if isinstance(output_size, (list, tuple)) else [output_size]
        operator = _native.Operator(kind, output_size=[int(s) for s in sizes] if output_size is not None else None)
    elif kind.startswith("global"):
        operator = _native.Operator(kind)
    else:
        from . import _sizes

        operator = _native.Operator(
            kind,
            kernel_size=_sizes("kernel_size", kernel_size),
            stride=_sizes("stride", stride),
            padding=_sizes("padding", padding),
            pads=_sizes("pads", pads),
            auto_pad=auto_pad,
            dilation=_sizes("dilation", dilation),
            ceil_mode=bool(ceil_mode),
            count_include_pad=bool(count_include_pad),
            divisor_override=divisor_override,
            norm_type=None if norm_type is None else float(norm_type),
            lp_formula=formula,
            output_size=None,
        )
    spatial = x.shape[2:] if layout == "ncx" else x.shape[1:-1]
    title = _title(
        op,
        spatial,
        [
            ("kernel", kernel_size),
            ("stride", stride),
            ("padding", padding),
            ("pads", pads),
            ("dilation", dilation),
            ("output size", output_size),
            ("p", norm_type),
            ("divisor", divisor_override),
            # In the order and words of `poolgrad explain`'s titles.
            ("auto_pad", auto_pad.lower() if auto_pad else None),
            ("ceil mode", bool(ceil_mode)),
            (f"{formula} formula", op == "lp" and formula != "auto"),
            ("count_include_pad false", count_include_pad is False and op == "avg"),
        ],
    )
    g = None
    if grad_output is not None:
        if hasattr(grad_output, "detach"):
            grad_output = grad_output.detach().to("cpu").double().numpy()
        g = np.ascontiguousarray(np.asarray(grad_output, dtype=np.float64))
    text, forward_svg, backward_svg = _native.explain(operator, x, layout, title, tuple(plane), g)
    return Explanation(title, text, forward_svg, backward_svg)
