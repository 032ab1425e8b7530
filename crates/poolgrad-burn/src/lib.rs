//! # poolgrad-burn
//!
//! [poolgrad]'s exact pooling for [burn](https://burn.dev)'s CPU backends (`Flex` and
//! `NdArray`, and `Autodiff` over either): max (with indices), average, LP, adaptive max
//! and average, global, fractional max pooling and max unpooling, in 1-D, 2-D, 3-D and any
//! higher rank, with every geometry option (stride, padding — symmetric, per side, SAME —,
//! dilation, ceil mode, `count_include_pad`, `divisor_override`), channels-first or
//! channels-last, in f32, f64, f16 and bf16.
//!
//! - [`backend`]: the backend extension ([`PoolBackend`]), burn's way of adding
//!   operations to its backends.
//! - [`autodiff`]: the same operations for `Autodiff<B>`, whose backward steps are
//!   poolgrad's exact backward (and whose backward functions are differentiable again).
//! - [`functional`]: checked functions on `burn::tensor::Tensor`.
//! - [`modules`]: burn-style layers with configs (`MaxPool2dConfig::new([3, 3])...init()`).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use poolgrad_burn::modules::{MaxPool2dConfig, PoolPadding};
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<4>::from_data(burn::tensor::TensorData::new((0..25).map(|v| v as f32).collect(), [1, 1, 5, 5]), &device)
//!     .require_grad();
//! // ResNet's stem pool: 3x3 windows, stride 2, padding 1 (overlapping windows).
//! let pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PoolPadding::Explicit([1, 1])).init();
//! let y = pool.forward(x.clone())?;
//! assert_eq!(y.dims(), [1, 1, 3, 3]);
//! let grads = y.sum().backward();
//! let gx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
//! // Each of the 9 outputs sends its gradient to exactly one input cell.
//! assert_eq!(gx.iter().sum::<f32>(), 9.0);
//! # Ok::<(), poolgrad::PoolError>(())
//! ```
//!
//! ## Which derivatives
//! First derivatives of every operator through burn's autodiff (`loss.backward()`). burn's
//! autodiff is first-order (its devices refuse to nest `Autodiff`), so the second order
//! is reached the other way round: the backward functions of [`functional`]
//! ([`functional::pool_backward`], [`functional::scatter_add`], [`functional::gather`])
//! are differentiable operations, and a loss built from a gradient (a gradient penalty,
//! a Hessian-vector product) gets exact second derivatives, from poolgrad's double
//! backward, with one `backward()`. Third derivatives are not provided.

#![warn(missing_docs)]

pub mod autodiff;
pub mod backend;
pub mod functional;
pub mod modules;

pub use backend::{FractionalSpec, IndexSpec, PoolBackend, PoolSpec};
pub use poolgrad::{Layout, PoolError};
