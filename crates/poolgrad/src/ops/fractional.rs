//! Fractional max pooling (PyTorch's `fractional_max_pool2d/3d`).

use super::max::MaxPoolOutput;
use super::{expect_shape, zeroed};
use crate::error::{PoolError, Result};
use crate::geometry::{fractional_starts, PerDim};
use crate::kernels;
use crate::kernels::indexed::{ScatterWrite, Sides};
use crate::kernels::window::{AxisWindows, Windows};
use crate::tensor::{Blocking, Element, Layout, Shape, Tensor, TensorView};

/// Fractional max pooling with pseudo-random overlapping windows (Graham's
/// "pseudorandom overlapping" variant, as PyTorch implements it), 2-D and 3-D.
///
/// The randomness is an explicit input, so results are reproducible and comparable with
/// PyTorch's `_random_samples`: one sample `u` in [0, 1) per (n, c, dim), given as an
/// (N, C, k) array in PyTorch's order — for 2-D `[u_w, u_h]`, for 3-D `[u_t, u_h, u_w]`.
/// Along a dim with input `I`, kernel `K` and output `O`, window `i` starts at
/// `⌊(i + u)·α⌋ − ⌊u·α⌋`, `α = (I − K)/(O − 1)`, the last one at `I − K`
/// ([`fractional_starts`]). The max rule is max pooling's (first maximum, NaN last).
///
/// ```
/// use poolgrad::{FractionalMaxPool, Layout, Shape, Tensor};
/// let x = Tensor::new((0..25).map(|v| v as f32).collect(), Shape::new(1, 1, &[5, 5]), Layout::ChannelsFirst).unwrap();
/// let pool = FractionalMaxPool::new(&[2, 2], &[3, 3]);
/// let y = pool.forward_with_indices(&x.view(), &[0.5, 0.5]).unwrap();
/// assert_eq!(y.output.dims(), vec![1, 1, 3, 3]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FractionalMaxPool {
    /// Window size per spatial dim (one value applies to every dim).
    kernel_size: PerDim,
    /// Output size per spatial dim (one value applies to every dim).
    output_size: PerDim,
}

impl FractionalMaxPool {
    /// Fractional max pooling with the given kernel and output sizes.
    pub fn new(kernel_size: &[usize], output_size: &[usize]) -> Self {
        FractionalMaxPool { kernel_size: PerDim::new(kernel_size), output_size: PerDim::new(output_size) }
    }

    /// The output's logical shape for an input of logical shape `input`: the output size
    /// per dim, batch and channels kept.
    ///
    /// ```
    /// use poolgrad::{FractionalMaxPool, Shape};
    /// let pool = FractionalMaxPool::new(&[2], &[3]);
    /// assert_eq!(pool.output_shape(&Shape::new(2, 4, &[7, 6])).unwrap(), Shape::new(2, 4, &[3, 3]));
    /// ```
    ///
    /// An error for any geometry the forward would refuse: not 2-D or 3-D, a zero kernel
    /// or output, windows that do not fit the input.
    pub fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let rank = input.spatial.len();
        Self::check_rank(rank)?;
        let kernel = self.kernel_size.expand("kernel_size", rank)?;
        let output = self.output_size.expand("output_size", rank)?;
        for d in 0..rank {
            // The windows' fit does not depend on the sample: check it with u = 0.
            fractional_starts(input.spatial[d], output[d], kernel[d], 0.0f64)?;
        }
        let shape = Shape::new(input.batch, input.channels, &output);
        shape.numel()?;
        Ok(shape)
    }

    fn check_rank(rank: usize) -> Result<()> {
        if rank == 2 || rank == 3 {
            Ok(())
        } else {
            Err(PoolError::InvalidShape {
                what: "input",
                reason: format!("fractional max pooling is 2-D or 3-D, got {rank} spatial dims"),
            })
        }
    }

    /// Checks the request and returns (kernel, output, output shape).
    fn plan<T>(&self, shape: &Shape, samples: &[T]) -> Result<(Vec<usize>, Vec<usize>, Shape)> {
        let rank = shape.spatial.len();
        Self::check_rank(rank)?;
        let kernel = self.kernel_size.expand("kernel_size", rank)?;
        let output = self.output_size.expand("output_size", rank)?;
        let planes = shape.batch.checked_mul(shape.channels).ok_or(PoolError::Overflow { what: "planes" })?;
        if samples.len() != planes * rank {
            return Err(PoolError::DataLength {
                what: "random_samples",
                shape: vec![shape.batch, shape.channels, rank],
                expected: planes * rank,
                got: samples.len(),
            });
        }
        let out_shape = Shape::new(shape.batch, shape.channels, &output);
        out_shape.numel()?;
        Ok((kernel, output, out_shape))
    }

    /// The windows of plane (n, c), from its samples.
    fn windows<T: Element>(shape: &Shape, kernel: &[usize], output: &[usize], samples: &[T]) -> Result<Windows> {
        let rank = shape.spatial.len();
        let axes = (0..rank)
            .map(|d| {
                // PyTorch's sample order: 2-D (w, h); 3-D (t, h, w).
                let u = if rank == 2 { samples[rank - 1 - d] } else { samples[d] };
                let starts = fractional_starts(shape.spatial[d], output[d], kernel[d], u)?;
                AxisWindows::at_starts(shape.spatial[d], kernel[d], &starts)
            })
            .collect::<Result<Vec<_>>>()?;
        Windows::new(axes)
    }

    /// Forward pass: values and PyTorch-format indices. `samples` is the (N, C, k) array
    /// of samples in [0, 1), row-major.
    pub fn forward_with_indices<T: Element>(&self, x: &TensorView<'_, T>, samples: &[T]) -> Result<MaxPoolOutput<T>> {
        let shape = x.shape();
        let (kernel, output, out_shape) = self.plan(shape, samples)?;
        if let Some(bad) =
            samples.iter().find(|u| !(u.to_acc() >= num_traits::Zero::zero() && u.to_acc() < num_traits::One::one()))
        {
            return Err(PoolError::InvalidParameter {
                name: "random_samples",
                reason: format!("{bad:?} is not in [0, 1)"),
            });
        }
        let layout = x.layout();
        let blocking = Blocking::of(shape, layout);
        let rank = shape.spatial.len();
        let plane_of = |block: usize, lane: usize| match layout {
            Layout::ChannelsFirst => block,
            Layout::ChannelsLast => block * shape.channels + lane,
        };
        let mut out = zeroed::<T>(&out_shape)?;
        let mut indices = zeroed::<i64>(&out_shape)?;
        let (in_volume, out_volume) = (shape.spatial_volume()?, out_shape.spatial_volume()?);
        kernels::max::forward_per_plane(
            x.data(),
            blocking,
            in_volume,
            out_volume,
            |b, lane| {
                let p = plane_of(b, lane);
                Self::windows(shape, &kernel, &output, &samples[p * rank..][..rank])
            },
            &mut out,
            &mut indices,
        )?;
        Ok(MaxPoolOutput {
            output: Tensor::new(out, out_shape.clone(), layout)?,
            indices: Tensor::new(indices, out_shape, layout)?,
        })
    }

    fn sides(&self, input_shape: &Shape, layout: Layout) -> Result<(Sides, Shape)> {
        let out_shape = self.output_shape(input_shape)?;
        let sides = Sides {
            blocking: Blocking::of(input_shape, layout),
            wide: input_shape.spatial_volume()?,
            narrow: out_shape.spatial_volume()?,
        };
        Ok((sides, out_shape))
    }

    /// Backward from saved indices (scatter-add, as max pooling).
    pub fn backward_with_indices<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
    ) -> Result<Tensor<T>> {
        let layout = grad_output.layout();
        let (sides, out_shape) = self.sides(input_shape, layout)?;
        expect_shape("grad_output", grad_output, &out_shape, layout)?;
        expect_shape("indices", indices, &out_shape, layout)?;
        let mut grad_in = zeroed::<T>(input_shape)?;
        kernels::indexed::scatter(sides, grad_output.data(), indices.data(), (&mut grad_in).into(), ScatterWrite::Add)?;
        Tensor::new(grad_in, input_shape.clone(), layout)
    }

    /// Double backward from saved indices: gather of the grad-grad at the argmax.
    pub fn double_backward_with_indices<T: Element>(
        &self,
        grad_grad_input: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
    ) -> Result<Tensor<T>> {
        let layout = grad_grad_input.layout();
        let (sides, out_shape) = self.sides(grad_grad_input.shape(), layout)?;
        expect_shape("indices", indices, &out_shape, layout)?;
        let mut out = zeroed::<T>(&out_shape)?;
        kernels::indexed::gather(sides, grad_grad_input.data(), indices.data(), &mut out)?;
        Tensor::new(out, out_shape, layout)
    }
}
