"""poolgrad's pooling modules, with ``torch.nn``'s constructor arguments.

Each class subclasses its ``torch.nn`` namesake (same arguments, attributes, ``repr``
and ``state_dict``) and runs :mod:`poolgrad.torch` in ``forward``. :func:`convert`
returns a model with every torch pooling module replaced by poolgrad's, the way
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` works.

>>> import torch, poolgrad.torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.MaxPool2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(1))
>>> net = poolgrad.torch.convert(net)
>>> type(net[1]).__module__, type(net[1]).__name__
('poolgrad.torch.nn', 'MaxPool2d')
"""

from __future__ import annotations

import torch

from .. import torch as _F

__all__ = ["convert"]

_TORCH_NN = torch.nn


def _max_pool(self, input):
    f = getattr(_F, f"max_pool{self._rank}d")
    return f(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices)


def _avg_pool(self, input):
    f = getattr(_F, f"avg_pool{self._rank}d")
    extra = () if self._rank == 1 else (self.divisor_override,)
    return f(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad, *extra)


def _lp_pool(self, input):
    return getattr(_F, f"lp_pool{self._rank}d")(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


def _adaptive_max_pool(self, input):
    return getattr(_F, f"adaptive_max_pool{self._rank}d")(input, self.output_size, self.return_indices)


def _adaptive_avg_pool(self, input):
    return getattr(_F, f"adaptive_avg_pool{self._rank}d")(input, self.output_size)


def _fractional_max_pool(self, input):
    f = getattr(_F, f"fractional_max_pool{self._rank}d")
    return f(
        input,
        self.kernel_size,
        self.output_size,
        self.output_ratio,
        self.return_indices,
        _random_samples=self._random_samples,
    )


def _max_unpool(self, input, indices, output_size=None):
    f = getattr(_F, f"max_unpool{self._rank}d")
    return f(input, indices, self.kernel_size, self.stride, self.padding, output_size)


_FORWARDS = {
    "MaxPool": (_max_pool, (1, 2, 3)),
    "AvgPool": (_avg_pool, (1, 2, 3)),
    "LPPool": (_lp_pool, (1, 2, 3)),
    "AdaptiveMaxPool": (_adaptive_max_pool, (1, 2, 3)),
    "AdaptiveAvgPool": (_adaptive_avg_pool, (1, 2, 3)),
    "FractionalMaxPool": (_fractional_max_pool, (2, 3)),
    "MaxUnpool": (_max_unpool, (1, 2, 3)),
}

#: torch.nn's pooling classes and poolgrad's replacement for each.
REPLACEMENTS = {}

for _base, (_forward, _ranks) in _FORWARDS.items():
    for _rank in _ranks:
        _name = f"{_base}{_rank}d"
        _torch_cls = getattr(_TORCH_NN, _name, None)
        if _torch_cls is None:  # LPPool3d arrived in torch 2.2
            continue
        _cls = type(
            _name,
            (_torch_cls,),
            {
                "forward": _forward,
                "_rank": _rank,
                "__module__": __name__,
                "__doc__": f"``torch.nn.{_name}`` computed by poolgrad (same constructor arguments).",
            },
        )
        globals()[_name] = _cls
        __all__.append(_name)
        REPLACEMENTS[_torch_cls] = _cls
del _base, _forward, _ranks, _rank, _name, _torch_cls, _cls


def _swap(module: torch.nn.Module) -> torch.nn.Module:
    cls = REPLACEMENTS[type(module)]
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    return new


def convert(module: torch.nn.Module) -> torch.nn.Module:
    """Returns ``module`` with every torch pooling module (``MaxPool2d``, ``AvgPool2d``,
    ``LPPool2d``, ``AdaptiveAvgPool2d``, ``FractionalMaxPool2d``, ``MaxUnpool2d``, ...
    of any rank) replaced, in place, by poolgrad's; the module itself is replaced when it
    is one. Parameters, buffers and hooks of other modules are untouched."""
    if type(module) in REPLACEMENTS:
        return _swap(module)
    for name, child in module.named_children():
        if type(child) in REPLACEMENTS:
            setattr(module, name, _swap(child))
        else:
            convert(child)
    return module
