//! Max unpooling (PyTorch `max_unpool{1,2,3}d`, ONNX `MaxUnpool`).

use super::{expect_shape, zeroed};
use crate::error::{PoolError, Result};
use crate::geometry::PerDim;
use crate::kernels;
use crate::kernels::indexed::{ScatterWrite, Sides};
use crate::tensor::{Blocking, Element, Layout, Shape, Tensor, TensorView};

/// Max unpooling: puts each input value at the position its index names in a
/// zero-filled output, the partial inverse of max pooling.
///
/// Indices are PyTorch's (flat spatial index within each (n, c) plane of the output);
/// [`MaxUnpool::forward_onnx`] takes ONNX's whole-tensor indices. The default output
/// size per dim is `(I − 1)·S + K − pad_begin − pad_end`. Where several inputs name the
/// same cell, the last in input order wins (deterministically; PyTorch leaves this
/// undefined). The backward gathers the output gradient at the indices; the double
/// backward scatter-adds (the backward's adjoint).
///
/// ```
/// use poolgrad::{MaxUnpool, Layout, Shape, Tensor};
/// let x = Tensor::new(vec![1.0f32, 2.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst).unwrap();
/// let i = Tensor::new(vec![1i64, 2], Shape::new(1, 1, &[2]), Layout::ChannelsFirst).unwrap();
/// let y = MaxUnpool::new(&[2]).forward(&x.view(), &i.view(), None).unwrap();
/// assert_eq!(y.data(), &[0.0, 1.0, 2.0, 0.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxUnpool {
    /// The pooling's kernel size per spatial dim.
    kernel_size: PerDim,
    /// The pooling's stride (`None`: the kernel).
    stride: Option<PerDim>,
    /// Padding at the begin of each dim (PyTorch's symmetric `padding` sets both).
    pad_begin: PerDim,
    /// Padding at the end of each dim.
    pad_end: PerDim,
}

impl MaxUnpool {
    /// Unpooling for a pooling with this kernel, stride = kernel, no padding.
    pub fn new(kernel_size: &[usize]) -> Self {
        MaxUnpool {
            kernel_size: PerDim::new(kernel_size),
            stride: None,
            pad_begin: PerDim::new(&[0]),
            pad_end: PerDim::new(&[0]),
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = Some(PerDim::new(stride));
        self
    }

    /// Sets symmetric padding (PyTorch `padding`).
    pub fn padding(mut self, padding: &[usize]) -> Self {
        self.pad_begin = PerDim::new(padding);
        self.pad_end = PerDim::new(padding);
        self
    }

    /// Sets ONNX's begin and end pads.
    pub fn pads(mut self, begin: &[usize], end: &[usize]) -> Self {
        self.pad_begin = PerDim::new(begin);
        self.pad_end = PerDim::new(end);
        self
    }

    /// The default output spatial size for an input spatial size.
    pub fn default_output(&self, input_spatial: &[usize]) -> Result<Vec<usize>> {
        let rank = input_spatial.len();
        let kernel = self.kernel_size.expand("kernel_size", rank)?;
        let stride = match &self.stride {
            Some(s) => s.expand("stride", rank)?,
            None => kernel.clone(),
        };
        let (pb, pe) = (self.pad_begin.expand("pads", rank)?, self.pad_end.expand("pads", rank)?);
        (0..rank)
            .map(|d| {
                if kernel[d] == 0 || stride[d] == 0 || input_spatial[d] == 0 {
                    return Err(PoolError::InvalidParameter {
                        name: "kernel_size",
                        reason: format!("kernel, stride and input must be >= 1 (dim {d})"),
                    });
                }
                let full = (input_spatial[d] as u128 - 1) * stride[d] as u128 + kernel[d] as u128;
                let pads = pb[d] as u128 + pe[d] as u128;
                if full <= pads || full - pads > usize::MAX as u128 {
                    return Err(PoolError::InvalidParameter {
                        name: "output_size",
                        reason: format!("default output size {full} - {pads} in dim {d} is not a positive size"),
                    });
                }
                Ok((full - pads) as usize)
            })
            .collect()
    }

    /// Forward with PyTorch-format indices; `output_spatial` (one value for every dim, or
    /// one per dim) overrides the default size (PyTorch requires `default − stride < size < default + stride`; any size that holds
    /// every index is accepted here).
    pub fn forward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        output_spatial: Option<&[usize]>,
    ) -> Result<Tensor<T>> {
        self.scatter(x, indices, output_spatial, ScatterWrite::Assign)
    }

    /// Double backward: the adjoint of the backward's gather, a scatter-add of
    /// `grad_grad_input` (shaped like the input) to the indices. It equals the forward
    /// unless indices repeat, where contributions add up (as in PyTorch).
    pub fn double_backward<T: Element>(
        &self,
        grad_grad_input: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        output_spatial: Option<&[usize]>,
    ) -> Result<Tensor<T>> {
        self.scatter(grad_grad_input, indices, output_spatial, ScatterWrite::Add)
    }

    fn scatter<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        output_spatial: Option<&[usize]>,
        write: ScatterWrite,
    ) -> Result<Tensor<T>> {
        let shape = x.shape();
        expect_shape("indices", indices, shape, x.layout())?;
        let spatial = match output_spatial {
            Some(s) => PerDim::new(s).expand("output_size", shape.spatial.len())?,
            None => self.default_output(&shape.spatial)?,
        };
        let out_shape = Shape::new(shape.batch, shape.channels, &spatial);
        let sides = Sides {
            blocking: Blocking::of(shape, x.layout()),
            wide: out_shape.spatial_volume()?,
            narrow: shape.spatial_volume()?,
        };
        let mut out = zeroed::<T>(&out_shape)?;
        kernels::indexed::scatter(sides, x.data(), indices.data(), (&mut out).into(), write)?;
        Tensor::new(out, out_shape, x.layout())
    }

    /// Forward with ONNX `MaxUnpool` semantics: `indices` are flat over the whole
    /// (N, C, d...) tensor of the default (inferred) output; with `output_shape` (full
    /// dims, N and C included), that result is placed at the origin of the larger output.
    /// Channels-first only, as ONNX.
    pub fn forward_onnx<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        output_shape: Option<&[usize]>,
    ) -> Result<Tensor<T>> {
        if x.layout() != Layout::ChannelsFirst {
            return Err(PoolError::InvalidParameter {
                name: "layout",
                reason: "ONNX MaxUnpool is channels-first".into(),
            });
        }
        let shape = x.shape();
        let inferred = self.default_output(&shape.spatial)?;
        let plane = Shape::new(1, 1, &inferred).numel()?;
        let target = match output_shape {
            None => inferred.clone(),
            Some(dims) => {
                let s = Shape::from_dims(dims, Layout::ChannelsFirst)?;
                if s.batch != shape.batch
                    || s.channels != shape.channels
                    || s.spatial.len() != inferred.len()
                    || s.spatial.iter().zip(&inferred).any(|(a, b)| a < b)
                {
                    return Err(PoolError::ShapeMismatch {
                        what: "output_shape",
                        expected: Shape::new(shape.batch, shape.channels, &inferred).dims(Layout::ChannelsFirst),
                        got: dims.to_vec(),
                    });
                }
                s.spatial
            }
        };
        let out_plane = shape.spatial_volume()?;
        // Whole-tensor index → (plane, spatial coordinates in the inferred shape) →
        // per-plane index in the target shape.
        let converted = indices
            .data()
            .iter()
            .enumerate()
            .map(|(p, &i)| {
                let expected_plane = p / out_plane;
                let (lo, hi) = ((expected_plane * plane) as i64, ((expected_plane + 1) * plane) as i64);
                if i < lo || i >= hi {
                    return Err(PoolError::InvalidIndex { index: i, position: p, plane_size: plane });
                }
                let mut flat = (i - lo) as usize;
                let mut index = 0usize;
                let mut scale = 1usize;
                for d in (0..inferred.len()).rev() {
                    index += (flat % inferred[d]) * scale;
                    flat /= inferred[d];
                    scale *= target[d];
                }
                Ok(index as i64)
            })
            .collect::<Result<Vec<i64>>>()?;
        let converted = Tensor::new(converted, shape.clone(), Layout::ChannelsFirst)?;
        self.forward(x, &converted.view(), Some(&target))
    }

    /// Backward: the output gradient gathered at the indices (shaped like the input).
    pub fn backward<T: Element>(
        &self,
        grad_output: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
    ) -> Result<Tensor<T>> {
        let (gs, is) = (grad_output.shape(), indices.shape());
        if gs.batch != is.batch || gs.channels != is.channels || gs.spatial.len() != is.spatial.len() {
            return Err(PoolError::ShapeMismatch {
                what: "grad_output",
                expected: is.dims(indices.layout()),
                got: gs.dims(grad_output.layout()),
            });
        }
        if grad_output.layout() != indices.layout() {
            return Err(PoolError::InvalidParameter {
                name: "layout",
                reason: "grad_output and indices differ in layout".into(),
            });
        }
        let sides = Sides {
            blocking: Blocking::of(is, indices.layout()),
            wide: gs.spatial_volume()?,
            narrow: is.spatial_volume()?,
        };
        let mut out = zeroed::<T>(is)?;
        kernels::indexed::gather(sides, grad_output.data(), indices.data(), &mut out)?;
        Tensor::new(out, is.clone(), indices.layout())
    }
}
