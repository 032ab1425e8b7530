//! The operators: what each pooling computes, forward, backward and double backward.
//!
//! Every operator is a choice of windows ([`WindowSpec`]: regular, adaptive or global;
//! fractional windows live with [`FractionalMaxPool`](fractional::FractionalMaxPool))
//! times a reduction (max, average, LP). The [`Pooling`] trait is what they have in
//! common: forward, backward from the input alone, and double backward, which is all
//! [`gradcheck`](crate::gradcheck()) and generic code need.

pub mod avg;
pub mod fractional;
pub mod lp;
pub mod max;
pub mod operator;
pub mod unpool;

use crate::error::{PoolError, Result};
use crate::geometry::{PerDim, PoolGeometry};
use crate::kernels::buffer::Fresh;
use crate::kernels::window::{AxisWindows, Windows};
use crate::tensor::{Element, Layout, Shape, Tensor, TensorView};

/// What every differentiable pooling operator offers.
pub trait Pooling {
    /// The output's logical shape for an input of logical shape `input`.
    fn output_shape(&self, input: &Shape) -> Result<Shape>;

    /// The forward pass (values only).
    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>>;

    /// The gradient w.r.t. the input, given the input and the gradient w.r.t. the output.
    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>>;

    /// Double backward: the gradient of the backward w.r.t. its `grad_output`, given the
    /// incoming `grad_grad_input` (shaped like the input). This is the forward's
    /// directional derivative `J · v`: a gather at the argmax for the max ops, the
    /// operator itself for average pooling (it is linear). The backward's gradient
    /// w.r.t. the input is zero for max and average pooling (PyTorch's `zeros_like`).
    fn double_backward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>>;
}

/// Where an operator's windows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSpec {
    /// Kernel, stride, padding, dilation, ceil mode.
    Regular(PoolGeometry),
    /// PyTorch's adaptive windows for the given output size per spatial dim (one value
    /// applies to every dim).
    Adaptive(PerDim),
    /// One window over each whole plane; the output keeps every spatial dim with size 1.
    Global,
}

/// The resolved plan of one call: output shape and windows.
pub(crate) struct Plan {
    pub output: Shape,
    pub windows: Windows,
}

impl WindowSpec {
    pub(crate) fn plan(&self, input: &Shape) -> Result<Plan> {
        input.numel()?;
        let rank = input.spatial.len();
        // Regular windows check their input in `resolve`; the others need the same.
        if !matches!(self, WindowSpec::Regular(_)) {
            if rank == 0 {
                return Err(PoolError::InvalidShape { what: "input", reason: "needs at least one spatial dim".into() });
            }
            if let Some(d) = input.spatial.iter().position(|&s| s == 0) {
                return Err(PoolError::InvalidShape { what: "input", reason: format!("spatial dim {d} has length 0") });
            }
        }
        let axes: Vec<AxisWindows> = match self {
            WindowSpec::Regular(g) => {
                g.resolve(&input.spatial)?.iter().map(AxisWindows::regular).collect::<Result<_>>()?
            }
            WindowSpec::Adaptive(sizes) => {
                let sizes = sizes.expand("output_size", rank)?;
                if let Some(d) = sizes.iter().position(|&s| s == 0) {
                    return Err(PoolError::InvalidParameter {
                        name: "output_size",
                        reason: format!("value 0 in spatial dim {d}; every value must be >= 1"),
                    });
                }
                input.spatial.iter().zip(&sizes).map(|(&i, &o)| AxisWindows::adaptive(i, o)).collect::<Result<_>>()?
            }
            WindowSpec::Global => input.spatial.iter().map(|&i| AxisWindows::adaptive(i, 1)).collect::<Result<_>>()?,
        };
        let windows = Windows::new(axes)?;
        let output = Shape::new(input.batch, input.channels, &windows.output_spatial());
        output.numel()?;
        Ok(Plan { output, windows })
    }
}

impl Plan {
    /// The two sides of an index-driven kernel (input planes wide, output planes narrow).
    pub fn sides(&self, input: &Shape, layout: Layout) -> crate::kernels::indexed::Sides {
        crate::kernels::indexed::Sides {
            blocking: crate::tensor::Blocking::of(input, layout),
            wide: self.windows.input_volume,
            narrow: self.windows.output_volume,
        }
    }

    /// Checks that `t` has this plan's output shape in `layout`.
    pub fn expect_output<T>(&self, what: &'static str, t: &TensorView<'_, T>, layout: Layout) -> Result<()> {
        expect_shape(what, t, &self.output, layout)
    }
}

/// Checks a tensor's shape and layout.
pub(crate) fn expect_shape<T>(what: &'static str, t: &TensorView<'_, T>, shape: &Shape, layout: Layout) -> Result<()> {
    if t.layout() != layout {
        return Err(PoolError::InvalidParameter {
            name: "layout",
            reason: format!("{what} is {} but the input is {}", t.layout().name(), layout.name()),
        });
    }
    if t.shape() != shape {
        return Err(PoolError::ShapeMismatch { what, expected: shape.dims(layout), got: t.shape().dims(layout) });
    }
    Ok(())
}

/// Checks that a caller-owned output buffer holds exactly the elements of `shape`.
pub(crate) fn expect_buffer<T>(what: &'static str, buffer: &[T], shape: &Shape, layout: Layout) -> Result<()> {
    let expected = shape.numel()?;
    if buffer.len() != expected {
        return Err(PoolError::DataLength { what, shape: shape.dims(layout), expected, got: buffer.len() });
    }
    Ok(())
}

/// An unwritten buffer of `shape`'s size, for one kernel call to fill (see
/// [`crate::kernels::buffer::Fresh`]).
pub(crate) fn fresh<T: bytemuck::Zeroable + Copy + Send>(shape: &Shape) -> Result<Fresh<T>> {
    Fresh::new(shape.numel()?)
}

/// A zeroed buffer of `shape`'s size (the allocation every operator starts from; see
/// [`crate::kernels::buffer`]).
pub(crate) fn zeroed<T: bytemuck::Zeroable + Clone>(shape: &Shape) -> Result<Vec<T>> {
    crate::kernels::buffer::zeroed(shape.numel()?)
}
