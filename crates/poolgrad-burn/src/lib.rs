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
//! use burn::tensor::{Device, Distribution, Tensor};
//! use poolgrad_burn::modules::{AvgPool3dConfig, MaxPool2dConfig, PoolPadding};
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<4>::random([8, 16, 32, 32], Distribution::Default, &device).require_grad();
//! // ResNet's stem pool: overlapping windows, burn-nn's names and defaults.
//! let pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PoolPadding::Explicit([1, 1])).init();
//! let y = pool.forward(x.clone())?; // a PoolError, never a panic, for a bad request
//! assert_eq!(y.dims(), [8, 16, 16, 16]);
//! let grads = y.sum().backward(); // poolgrad's exact backward
//! let gx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
//! // Each of the 8·16·16·16 outputs sends its gradient to exactly one input cell.
//! assert_eq!(gx.iter().sum::<f32>(), (8 * 16 * 16 * 16) as f32);
//! // 3-D, count_include_pad = false with asymmetric padding, channels-last: all there.
//! let avg3 = AvgPool3dConfig::new([2, 2, 2])
//!     .with_padding(PoolPadding::Pads { begin: [1, 0, 0], end: [0, 0, 0] })
//!     .with_count_include_pad(false)
//!     .with_layout(poolgrad_burn::Layout::ChannelsLast)
//!     .init();
//! let v = avg3.forward(Tensor::<5>::ones([1, 3, 3, 3, 2], &device))?;
//! assert_eq!(v.dims(), [1, 2, 1, 1, 2]);
//! assert!(v.into_data().to_vec::<f32>().unwrap().iter().all(|&m| m == 1.0)); // padding not counted
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
