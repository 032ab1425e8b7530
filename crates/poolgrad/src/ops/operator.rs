//! One operator description for every front end.

use super::avg::AvgPool;
use super::lp::LpPool;
use super::max::MaxPool;
use super::{Pooling, WindowSpec};
use crate::error::Result;
use crate::geometry::PoolGeometry;
use crate::tensor::{Element, Shape, Tensor, TensorView};

/// A pooling operator chosen at run time: which reduction (max, average, LP) over which
/// windows (regular, adaptive, global), with all its options.
///
/// Every front end builds one from its own parameters (the CLI's flags, candle's
/// builder, burn's configs, Python's keywords) and calls it; none keeps a dispatch of
/// its own. Fractional max pooling and max unpooling take extra inputs (samples,
/// indices) and are called directly.
///
/// ```
/// use poolgrad::{MaxPool, Operator, Layout, PoolGeometry, Pooling, Shape, Tensor};
/// let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[2])));
/// let x = Tensor::new(vec![1.0f32, 5.0, 2.0, 3.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst)?;
/// assert_eq!(op.forward(&x.view())?.data(), &[5.0, 3.0]);
/// let g = Tensor::new(vec![1.0f32, 1.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst)?;
/// assert_eq!(op.backward(&x.view(), &g.view())?.data(), &[0.0, 1.0, 0.0, 1.0]);
/// # Ok::<(), poolgrad::PoolError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// Max pooling (regular, adaptive or global windows).
    Max(MaxPool),
    /// Average pooling (regular, adaptive or global windows).
    Avg(AvgPool),
    /// LP pooling (regular windows).
    Lp(LpPool),
}

impl Operator {
    /// Where the operator's windows are.
    pub fn windows(&self) -> WindowSpec {
        match self {
            Operator::Max(p) => p.windows.clone(),
            Operator::Avg(p) => p.windows.clone(),
            Operator::Lp(p) => WindowSpec::Regular(p.geometry.clone()),
        }
    }

    /// The operator with its regular-window geometry changed by `edit` (unchanged for
    /// adaptive and global windows, which have none).
    ///
    /// ```
    /// use poolgrad::{MaxPool, Operator, PoolGeometry, Pooling, Shape};
    /// let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[3]))).with_geometry(|g| g.stride(&[1]));
    /// assert_eq!(op.output_shape(&Shape::new(1, 1, &[5]))?, Shape::new(1, 1, &[3]));
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn with_geometry(mut self, edit: impl FnOnce(PoolGeometry) -> PoolGeometry) -> Self {
        let geometry = match &mut self {
            Operator::Max(MaxPool { windows: WindowSpec::Regular(g) }) => Some(g),
            Operator::Avg(AvgPool { windows: WindowSpec::Regular(g), .. }) => Some(g),
            Operator::Lp(p) => Some(&mut p.geometry),
            _ => None,
        };
        if let Some(g) = geometry {
            *g = edit(g.clone());
        }
        self
    }

    /// Double backward, the input part: the derivative of the backward w.r.t. the input
    /// along `grad_grad_input` (`H·v`). `None` where the backward does not depend on the
    /// input's values (max and average pooling: piecewise linear or linear, so the
    /// derivative is zero, as PyTorch's `zeros_like`); LP's Hessian-vector product
    /// otherwise ([`LpPool::double_backward_input`]).
    pub fn double_backward_input<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_output: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Option<Tensor<T>>> {
        match self {
            Operator::Lp(p) => p.double_backward_input(x, grad_output, grad_grad_input).map(Some),
            Operator::Max(_) | Operator::Avg(_) => Ok(None),
        }
    }
}

impl Pooling for Operator {
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        match self {
            Operator::Max(p) => p.output_shape(input),
            Operator::Avg(p) => p.output_shape(input),
            Operator::Lp(p) => p.output_shape(input),
        }
    }

    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        match self {
            Operator::Max(p) => p.forward(x),
            Operator::Avg(p) => p.forward(x),
            Operator::Lp(p) => p.forward(x),
        }
    }

    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>> {
        match self {
            Operator::Max(p) => p.backward(x, grad_output),
            Operator::Avg(p) => p.backward(x, grad_output),
            Operator::Lp(p) => p.backward(x, grad_output),
        }
    }

    fn double_backward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        match self {
            Operator::Max(p) => p.double_backward(x, grad_grad_input),
            Operator::Avg(p) => p.double_backward(x, grad_grad_input),
            Operator::Lp(p) => p.double_backward(x, grad_grad_input),
        }
    }
}

impl From<MaxPool> for Operator {
    fn from(p: MaxPool) -> Self {
        Operator::Max(p)
    }
}

impl From<AvgPool> for Operator {
    fn from(p: AvgPool) -> Self {
        Operator::Avg(p)
    }
}

impl From<LpPool> for Operator {
    fn from(p: LpPool) -> Self {
        Operator::Lp(p)
    }
}
