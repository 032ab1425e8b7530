//! Average pooling — regular, adaptive and global.

use super::{expect_buffer, fresh, Pooling, WindowSpec};
use crate::error::{PoolError, Result};
use crate::geometry::{PerDim, PoolGeometry};
use crate::kernels;
use crate::kernels::avg::Divisor;
use crate::kernels::buffer::Out;
use crate::tensor::{Blocking, Element, Layout, Shape, Tensor, TensorView};

/// Average pooling (PyTorch `avg_pool{1,2,3}d`, `adaptive_avg_pool{1,2,3}d`, ONNX
/// `AveragePool`, `GlobalAveragePool`), in any number of spatial dims.
///
/// The divisor of each window follows PyTorch: with `count_include_pad` (the default,
/// as in PyTorch; ONNX's default is off) it counts the taps inside the input or its
/// padding, but not the ceil-mode overhang past the end padding; without it, only the
/// taps inside the input; `divisor_override` replaces both. Adaptive and global windows
/// divide by the window size. A window with no input cell outputs 0. The backward gives
/// each valid tap `grad_output / divisor`; padding gets nothing. Dilation (ONNX only)
/// counts taps, not the span. Sums run in `f32` for the half types.
///
/// ```
/// use poolgrad::{AvgPool, PoolGeometry, Padding, Layout, Shape, Tensor};
/// let x = Tensor::new(vec![1.0f64, 2.0, 3.0, 4.0, 5.0], Shape::new(1, 1, &[5]), Layout::ChannelsFirst).unwrap();
/// let pool = AvgPool::new(PoolGeometry::new(&[2]).ceil_mode(true));
/// let y = pool.forward_values(&x.view()).unwrap();
/// assert_eq!(y.data(), &[1.5, 3.5, 5.0]); // the last window holds only x4
/// let pool = AvgPool::new(PoolGeometry::new(&[3]).stride(&[1]).padding(Padding::Symmetric(vec![1])))
///     .count_include_pad(false);
/// assert_eq!(pool.forward_values(&x.view()).unwrap().data()[0], 1.5);
/// assert_eq!(AvgPool::adaptive(&[2]).forward_values(&x.view()).unwrap().data(), &[2.0, 4.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvgPool {
    /// Where the windows are.
    pub windows: WindowSpec,
    /// Count padding taps in the divisor (PyTorch default `true`).
    pub count_include_pad: bool,
    /// Divide every window sum by this instead (PyTorch `divisor_override`).
    pub divisor_override: Option<usize>,
}

impl AvgPool {
    /// Average pooling over regular windows, with PyTorch's defaults.
    pub fn new(geometry: PoolGeometry) -> Self {
        AvgPool { windows: WindowSpec::Regular(geometry), count_include_pad: true, divisor_override: None }
    }

    /// Adaptive average pooling to `output_size` (one value, or one per spatial dim).
    pub fn adaptive(output_size: &[usize]) -> Self {
        AvgPool {
            windows: WindowSpec::Adaptive(PerDim::new(output_size)),
            count_include_pad: true,
            divisor_override: None,
        }
    }

    /// Global average pooling: the mean of each plane.
    pub fn global() -> Self {
        AvgPool { windows: WindowSpec::Global, count_include_pad: true, divisor_override: None }
    }

    /// Sets `count_include_pad`.
    pub fn count_include_pad(mut self, yes: bool) -> Self {
        self.count_include_pad = yes;
        self
    }

    /// Sets `divisor_override`.
    pub fn divisor_override(mut self, divisor: Option<usize>) -> Self {
        self.divisor_override = divisor;
        self
    }

    /// Whether, for an input of this shape and layout, the forward adds each window's
    /// taps one at a time in row-major window order from zero, and the backward each
    /// input cell's shares in output order: PyTorch's CPU order, so the same bits as a
    /// plain loop. Where it does not — channels-first global pooling (16 partial sums in
    /// the forward) and windows large enough to be summed one spatial dim at a time (7x7
    /// and up at stride 1; forward and backward) — each sum of `n` terms is within
    /// `(n - 1) · ε · Σ|terms|` of the exact one, as a plain loop's is, and the bits are
    /// still the same for every thread count and instruction set.
    ///
    /// ```
    /// use poolgrad::{AvgPool, Layout, Padding, PoolGeometry, Shape};
    /// let small = AvgPool::new(PoolGeometry::new(&[3, 3]));
    /// let large = AvgPool::new(PoolGeometry::new(&[13, 13]).stride(&[1, 1]).padding(Padding::Symmetric(vec![6, 6])));
    /// let shape = Shape::new(1, 64, &[40, 40]);
    /// assert!(small.sums_in_window_order(&shape, Layout::ChannelsLast)?);
    /// assert!(!large.sums_in_window_order(&shape, Layout::ChannelsLast)?);
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn sums_in_window_order(&self, input: &Shape, layout: Layout) -> Result<bool> {
        self.divisor()?;
        let plan = self.windows.plan(input)?;
        Ok(kernels::avg::sums_in_window_order(Blocking::of(input, layout), &plan.windows))
    }

    fn divisor(&self) -> Result<Divisor> {
        match self.divisor_override {
            Some(0) => Err(PoolError::InvalidParameter {
                name: "divisor_override",
                reason: "must be >= 1 (a zero divisor is undefined)".into(),
            }),
            Some(n) => Ok(Divisor::Fixed(n)),
            // Adaptive and global windows have no padding; PyTorch divides per dim.
            None if !matches!(self.windows, WindowSpec::Regular(_)) => Ok(Divisor::PerAxis),
            None if self.count_include_pad => Ok(Divisor::Padded),
            None => Ok(Divisor::Valid),
        }
    }

    /// Forward pass (the same as [`Pooling::forward`], without importing the trait).
    pub fn forward_values<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let divisor = self.divisor()?;
        let plan = self.windows.plan(x.shape())?;
        let mut out = fresh::<T>(&plan.output)?;
        kernels::avg::forward(x.data(), Blocking::of(x.shape(), x.layout()), &plan.windows, divisor, out.out())?;
        Tensor::new(out.finish()?, plan.output, x.layout())
    }

    /// The forward into a caller-owned buffer of exactly the output's elements
    /// ([`Pooling::output_shape`], in `x`'s layout), so that a training loop allocates
    /// nothing per step. Every element is overwritten; returns the output's shape.
    ///
    /// ```
    /// use poolgrad::{AvgPool, Layout, PoolGeometry, Shape, Tensor};
    /// let pool = AvgPool::new(PoolGeometry::new(&[2]));
    /// let x = Tensor::new(vec![1.0f32, 3.0, 2.0, 6.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst)?;
    /// let mut y = vec![0.0f32; 2];
    /// let shape = pool.forward_into(&x.view(), &mut y)?;
    /// assert_eq!((shape, y), (Shape::new(1, 1, &[2]), vec![2.0, 4.0]));
    /// // A buffer of the wrong size is an error, not a panic.
    /// assert!(pool.forward_into(&x.view(), &mut [0.0f32; 3]).is_err());
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn forward_into<T: Element>(&self, x: &TensorView<'_, T>, output: &mut [T]) -> Result<Shape> {
        let divisor = self.divisor()?;
        let plan = self.windows.plan(x.shape())?;
        expect_buffer("output", output, &plan.output, x.layout())?;
        kernels::avg::forward(x.data(), Blocking::of(x.shape(), x.layout()), &plan.windows, divisor, output.into())?;
        Ok(plan.output)
    }

    /// Backward pass: needs only the input's shape (average pooling is linear).
    pub fn backward_from_shape<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        let mut grad_in = fresh::<T>(input_shape)?;
        self.backward_to(input_shape, grad_output, grad_in.out())?;
        Tensor::new(grad_in.finish()?, input_shape.clone(), grad_output.layout())
    }

    /// [`Self::backward_from_shape`] into a caller-owned buffer of exactly the input's
    /// elements (every element overwritten: no clearing needed between steps).
    pub fn backward_into<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        grad_input: &mut [T],
    ) -> Result<()> {
        expect_buffer("grad_input", grad_input, input_shape, grad_output.layout())?;
        self.backward_to(input_shape, grad_output, grad_input.into())
    }

    fn backward_to<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        grad_input: Out<'_, T>,
    ) -> Result<()> {
        let divisor = self.divisor()?;
        let plan = self.windows.plan(input_shape)?;
        let layout = grad_output.layout();
        plan.expect_output("grad_output", grad_output, layout)?;
        kernels::avg::backward(
            grad_output.data(),
            Blocking::of(input_shape, layout),
            &plan.windows,
            divisor,
            grad_input,
        )
    }
}

impl Pooling for AvgPool {
    /// The output's shape; an error for any request the forward would refuse (a zero
    /// `divisor_override` included).
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.divisor()?;
        Ok(self.windows.plan(input)?.output)
    }

    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        self.forward_values(x)
    }

    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>> {
        super::expect_shape("grad_output", grad_output, &self.output_shape(x.shape())?, x.layout())?;
        self.backward_from_shape(x.shape(), grad_output)
    }

    /// Average pooling is linear: its double backward is itself.
    fn double_backward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        super::expect_shape("grad_grad_input", grad_grad_input, x.shape(), x.layout())?;
        self.forward_values(grad_grad_input)
    }
}
