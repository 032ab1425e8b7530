//! # poolgrad
//!
//! Pooling layers — max, average, LP, adaptive, global, fractional max and max unpooling,
//! in any number of spatial dims, channels-first or channels-last, `f16`/`bf16`/`f32`/`f64`
//! (and integers for the max forward) — with exact forward **and backward** passes that match
//! PyTorch in every configuration PyTorch accepts (and the ONNX spec where only ONNX
//! defines the case).
//!
//! The crate is layered so that each concern lives in one place:
//! - [`geometry`]: where each window sits (output sizes, padding modes, ceil mode, dilation);
//! - [`tensor`]: shapes, layouts and element types;
//! - [`ops`]: what each operator computes, forward and backward;
//! - `kernels`: how it is computed (vectorised per-block loops, in parallel with rayon);
//! - [`aligned`]: 64-byte-aligned buffers for the `*_into` calls;
//! - [`simd`]: which vector instruction set the kernels run (chosen at run time);
//! - [`mod@gradcheck`] and [`mod@reference`]: finite-difference checks and a plain reference.
//!
//! ```
//! use poolgrad::{MaxPool, AvgPool, Pooling, PoolGeometry, Padding, Layout, Shape, Tensor};
//! // A 1x1x5x5 input, 3x3 windows, stride 2, padding 1: overlapping windows.
//! let x = Tensor::new((0..25).map(|v| v as f32).collect(), Shape::new(1, 1, &[5, 5]), Layout::ChannelsFirst)?;
//! let geometry = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
//! let max = MaxPool::new(geometry.clone());
//! let y = max.forward_with_indices(&x.view())?;
//! assert_eq!(y.output.dims(), vec![1, 1, 3, 3]);
//! // Backward: every output sends its gradient to its argmax; overlaps accumulate.
//! let ones = Tensor::new(vec![1.0f32; 9], y.output.shape().clone(), Layout::ChannelsFirst)?;
//! let gx = max.backward_with_indices(x.shape(), &ones.view(), &y.indices.view())?;
//! assert_eq!(gx.data().iter().sum::<f32>(), 9.0);
//! let avg = AvgPool::new(geometry).count_include_pad(false);
//! let gx = avg.backward(&x.view(), &ones.view())?;
//! assert!((gx.data().iter().sum::<f32>() - 9.0).abs() < 1e-5);
//! # Ok::<(), poolgrad::PoolError>(())
//! ```

#![warn(missing_docs)]

pub mod aligned;
mod convert;
pub mod error;
pub mod geometry;
pub mod gradcheck;
#[cfg(all(debug_assertions, not(test)))]
#[doc(hidden)]
pub mod instances;
mod kernels;
pub mod ops;
pub mod reference;
pub mod simd;
pub mod tensor;

pub use error::{PoolError, Result};
pub use geometry::{AxisGeometry, Padding, PoolGeometry};
pub use gradcheck::{gradcheck, GradcheckReport};
/// Half-precision types (re-exported from the `half` crate).
pub use half::{bf16, f16};
pub use ops::avg::AvgPool;
pub use ops::fractional::FractionalMaxPool;
pub use ops::lp::{LpFormula, LpPool};
pub use ops::max::{indices_to_onnx, MaxPool, MaxPoolCompactOutput, MaxPoolOutput, StorageOrder};
pub use ops::operator::Operator;
pub use ops::unpool::MaxUnpool;
pub use ops::{Pooling, WindowSpec};
pub use tensor::{Element, Layout, MaxElement, Shape, Tensor, TensorView};
