//! The operators' generic entry points, compiled once, here, for every element type.
//!
//! rustc compiles a generic function in the crate that calls it with concrete types, and
//! every kernel of this crate is generic over the element type: each test binary, front
//! end and example compiled the kernels again. Where rustc shares generics (opt-level 0
//! and 1, such as the test profile), a crate links the instance a dependency already
//! compiled instead, so [`compile_entry_points`] makes this crate compile them all.
//! Measured with `cargo test --no-run --timings` (2 cores): the 14 crates and test
//! binaries that compiled the kernels took 1485 CPU seconds of the build's 2310; now this
//! crate takes 199 and all the others 101. Optimised builds (opt-level 2 and 3) do not share generics, so there it
//! would only add work and is left out; `debug_assertions` stands for the profiles that
//! share them. The crate's own unit tests, which compile it again, leave it out too.

use crate::{
    bf16, f16, AvgPool, Element, FractionalMaxPool, LpPool, MaxElement, MaxPool, MaxUnpool, Operator, Pooling, Shape,
    TensorView,
};
use std::hint::black_box;

/// Calls every public generic operator method for each element type, behind a condition
/// the compiler cannot see through and that never holds: it exists so that this crate
/// compiles those methods (see the module's documentation). Calling it does nothing.
#[doc(hidden)]
pub fn compile_entry_points() {
    every_element::<f32>();
    every_element::<f64>();
    every_element::<f16>();
    every_element::<bf16>();
    max_forwards::<u8>();
    max_forwards::<i8>();
    max_forwards::<i32>();
    max_forwards::<i64>();
}

/// A value of `T` that the compiler cannot prove absent; always `None`.
#[inline(always)]
fn unknown<T>() -> Option<T> {
    black_box(None)
}

/// The max forwards, which take any [`MaxElement`].
fn max_forwards<T: MaxElement>() -> Option<()> {
    let (max, x) = (unknown::<&MaxPool>()?, unknown::<&TensorView<'_, T>>()?);
    let (out, indices, taps) = (unknown::<&mut [T]>()?, unknown::<&mut [i64]>()?, unknown::<&mut [u8]>()?);
    black_box(max.forward_with_indices(x).ok());
    black_box(max.forward_with_indices_into(x, out, indices).ok());
    black_box(max.forward_compact(x).ok());
    black_box(max.forward_compact_into(x, out, taps).ok());
    None
}

/// Every generic method of the operators for one [`Element`] type.
fn every_element<T: Element>() -> Option<()> {
    max_forwards::<T>();
    let (x, g, gg) =
        (unknown::<&TensorView<'_, T>>()?, unknown::<&TensorView<'_, T>>()?, unknown::<&TensorView<'_, T>>()?);
    let (indices, taps) = (unknown::<&TensorView<'_, i64>>()?, unknown::<&TensorView<'_, u8>>()?);
    let (shape, out, spatial) = (unknown::<&Shape>()?, unknown::<&mut [T]>()?, unknown::<Option<&[usize]>>()?);
    let (max, avg, lp) = (unknown::<&MaxPool>()?, unknown::<&AvgPool>()?, unknown::<&LpPool>()?);
    let (op, fractional, unpool) =
        (unknown::<&Operator>()?, unknown::<&FractionalMaxPool>()?, unknown::<&MaxUnpool>()?);
    let samples = unknown::<&[T]>()?;
    // `Operator` calls the max, average and LP pools' own `Pooling` methods.
    black_box(op.forward(x).ok());
    black_box(op.backward(x, g).ok());
    black_box(op.double_backward(x, gg).ok());
    black_box(op.double_backward_input(x, g, gg).ok());
    black_box(max.backward_with_indices(shape, g, indices).ok());
    black_box(max.backward_with_indices_into(shape, g, indices, out).ok());
    black_box(max.backward_compact(shape, g, taps).ok());
    black_box(max.backward_compact_into(shape, g, taps, out).ok());
    black_box(max.double_backward_with_indices(gg, indices).ok());
    black_box(avg.forward_values(x).ok());
    black_box(avg.forward_into(x, out).ok());
    black_box(avg.backward_from_shape(shape, g).ok());
    black_box(avg.backward_into(shape, g, out).ok());
    black_box(lp.forward_into(x, out).ok());
    black_box(lp.backward_into(x, g, out).ok());
    black_box(fractional.forward_with_indices(x, samples).ok());
    black_box(fractional.backward_with_indices(shape, g, indices).ok());
    black_box(fractional.double_backward_with_indices(gg, indices).ok());
    black_box(unpool.forward(x, indices, spatial).ok());
    black_box(unpool.double_backward(gg, indices, spatial).ok());
    black_box(unpool.forward_onnx(x, indices, spatial).ok());
    black_box(unpool.backward(g, indices).ok());
    None
}
