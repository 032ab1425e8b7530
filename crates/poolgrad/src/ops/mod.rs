//! The operators: what each pooling computes, forward and backward.
//!
//! Every operator is a window geometry ([`PoolGeometry`]) plus a reduction. The
//! [`Pooling`] trait is what they have in common: forward, and backward from the input
//! alone, which is all [`gradcheck`](crate::gradcheck) and generic code need.

pub mod avg;
pub mod max;

use crate::error::{PoolError, Result};
use crate::geometry::PoolGeometry;
use crate::kernels::window::Windows;
use crate::tensor::{Element, Layout, Shape, Tensor, TensorView};

/// What every pooling operator offers.
pub trait Pooling {
    /// The output's logical shape for an input of logical shape `input`.
    fn output_shape(&self, input: &Shape) -> Result<Shape>;

    /// The forward pass (values only).
    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>>;

    /// The gradient w.r.t. the input, given the input and the gradient w.r.t. the output.
    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>>;
}

/// The resolved plan of one call: output shape and windows.
pub(crate) struct Plan {
    pub output: Shape,
    pub windows: Windows,
}

impl Plan {
    pub fn new(geometry: &PoolGeometry, input: &Shape) -> Result<Self> {
        let axes = geometry.resolve(&input.spatial)?;
        let output = Shape::new(input.batch, input.channels, &axes.iter().map(|a| a.output).collect::<Vec<_>>());
        output.numel()?;
        input.numel()?;
        Ok(Plan { output, windows: Windows::new(&axes)? })
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

/// A zero-filled tensor (the allocation every operator starts from).
pub(crate) fn zeros<T: Clone + num_traits::Zero>(shape: &Shape) -> Result<Vec<T>> {
    Ok(vec![T::zero(); shape.numel()?])
}
