"""Type stubs of the compiled module (crates/poolgrad-py/src)."""

from typing import Optional, Sequence, Tuple

import numpy as np

__version__: str

class Operator:
    def __init__(
        self,
        kind: str,
        kernel_size: Optional[Sequence[int]] = None,
        stride: Optional[Sequence[int]] = None,
        padding: Optional[Sequence[int]] = None,
        pads: Optional[Sequence[int]] = None,
        auto_pad: Optional[str] = None,
        dilation: Optional[Sequence[int]] = None,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
        norm_type: Optional[float] = None,
        lp_formula: Optional[str] = None,
        output_size: Optional[Sequence[int]] = None,
    ) -> None: ...
    def output_shape(self, input_shape: Sequence[int], layout: str) -> list[int]: ...
    def forward(self, x: np.ndarray, layout: str, bf16: bool = False) -> np.ndarray: ...
    def forward_with_indices(self, x: np.ndarray, layout: str, bf16: bool = False) -> Tuple[np.ndarray, np.ndarray]: ...
    def backward(self, x: np.ndarray, grad_output: np.ndarray, layout: str, bf16: bool = False) -> np.ndarray: ...
    def backward_from_shape(
        self, input_shape: Sequence[int], grad_output: np.ndarray, layout: str, bf16: bool = False
    ) -> np.ndarray: ...
    def backward_with_indices(
        self, input_shape: Sequence[int], grad_output: np.ndarray, indices: np.ndarray, layout: str, bf16: bool = False
    ) -> np.ndarray: ...
    def double_backward(self, x: np.ndarray, grad_grad_input: np.ndarray, layout: str, bf16: bool = False) -> np.ndarray: ...
    def double_backward_with_indices(
        self, grad_grad_input: np.ndarray, indices: np.ndarray, layout: str, bf16: bool = False
    ) -> np.ndarray: ...
    def double_backward_input(
        self, x: np.ndarray, grad_output: np.ndarray, grad_grad_input: np.ndarray, layout: str, bf16: bool = False
    ) -> Optional[np.ndarray]: ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def fractional_max_pool(
    x: np.ndarray, kernel_size: Sequence[int], output_size: Sequence[int], samples: np.ndarray, layout: str, bf16: bool = False
) -> Tuple[np.ndarray, np.ndarray]: ...
def fractional_max_pool_backward(
    input_shape: Sequence[int],
    grad_output: np.ndarray,
    indices: np.ndarray,
    kernel_size: Sequence[int],
    output_size: Sequence[int],
    layout: str,
    bf16: bool = False,
) -> np.ndarray: ...
def fractional_max_pool_double_backward(
    grad_grad_input: np.ndarray,
    indices: np.ndarray,
    kernel_size: Sequence[int],
    output_size: Sequence[int],
    layout: str,
    bf16: bool = False,
) -> np.ndarray: ...
def max_unpool(
    x: np.ndarray,
    indices: np.ndarray,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]],
    padding: Sequence[int],
    output_size: Optional[Sequence[int]],
    layout: str,
    bf16: bool = False,
    adjoint: bool = False,
) -> np.ndarray: ...
def max_unpool_onnx(
    x: np.ndarray,
    indices: np.ndarray,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]],
    pads: Optional[Sequence[int]],
    output_shape: Optional[Sequence[int]],
    bf16: bool = False,
) -> np.ndarray: ...
def max_unpool_backward(
    grad_output: np.ndarray,
    indices: np.ndarray,
    kernel_size: Sequence[int],
    stride: Optional[Sequence[int]],
    padding: Sequence[int],
    layout: str,
    bf16: bool = False,
) -> np.ndarray: ...
def explain(
    op: Operator,
    x: np.ndarray,
    layout: str,
    title: str,
    plane: Tuple[int, int],
    grad_output: Optional[np.ndarray] = None,
) -> Tuple[str, str, str]: ...
def svg_to_png(svg: str) -> bytes: ...
def seeded_values(n: int, seed: int) -> list[float]: ...
