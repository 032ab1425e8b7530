//! LP (power-average) pooling.

use super::max::MaxPool;
use super::{expect_buffer, zeroed, Plan, Pooling, WindowSpec};
use crate::error::{PoolError, Result};
use crate::geometry::PoolGeometry;
use crate::kernels;
use crate::kernels::buffer;
use crate::kernels::lp::Formula;
use crate::tensor::{Blocking, Element, Shape, Tensor, TensorView};
use num_traits::{Float, Zero};

/// Which definition of LP pooling applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LpFormula {
    /// PyTorch's where PyTorch accepts the geometry (no padding, no dilation), ONNX's
    /// otherwise.
    #[default]
    Auto,
    /// PyTorch's `lp_pool{1,2,3}d`: `y = (K · avg_pool(x^p))^(1/p)` with `x^p` (not
    /// `|x|^p`: negative inputs with fractional `p` give NaN, as in PyTorch), `K` the
    /// kernel volume; under ceil mode the overhanging window's average is scaled by the
    /// full `K` (PyTorch's result). `p = ∞` is `max(|x|)`, `p = −∞` is `min(|x|)`.
    PyTorch,
    /// ONNX `LpPool`: `y = (Σ |x|^p)^(1/p)` over the window's valid taps, with pads and
    /// dilation.
    Onnx,
}

/// LP pooling: the p-norm of each window.
///
/// The gradient where a window's power sum is zero is defined as zero (as PyTorch's
/// `sign(out)·relu(|out|)` composite makes it, and as ONNX leaves open).
///
/// ```
/// use poolgrad::{LpPool, PoolGeometry, Pooling, Layout, Shape, Tensor};
/// let x = Tensor::new(vec![3.0f64, 4.0, 1.0, 1.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst).unwrap();
/// let y = LpPool::new(PoolGeometry::new(&[2]), 2.0).forward(&x.view()).unwrap();
/// assert_eq!(y.data(), &[5.0, 2f64.sqrt()]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LpPool {
    /// Where the windows are.
    pub geometry: PoolGeometry,
    /// The power `p` (PyTorch `norm_type`, ONNX `p`).
    pub norm_type: f64,
    /// Which definition applies.
    pub formula: LpFormula,
}

/// What one call computes, once the formula is resolved.
enum Resolved {
    Finite(Formula),
    /// `p = ±∞`: max pooling of `±|x|`, negated back for `−∞`.
    Infinite {
        negative: bool,
    },
}

impl LpPool {
    /// LP pooling with power `norm_type` and [`LpFormula::Auto`].
    pub fn new(geometry: PoolGeometry, norm_type: f64) -> Self {
        LpPool { geometry, norm_type, formula: LpFormula::Auto }
    }

    /// Chooses the formula.
    pub fn formula(mut self, formula: LpFormula) -> Self {
        self.formula = formula;
        self
    }

    fn pytorch_accepts(&self) -> bool {
        !self.geometry.is_padded_or_dilated()
    }

    /// The formula for an input of logical shape `input` (PyTorch's scale is the volume
    /// of the kernel resolved per dim: `kernel_size=2` in 2-D is a 2x2 window, `K = 4`).
    fn resolve(&self, input: &Shape) -> Result<Resolved> {
        let p = self.norm_type;
        if p == 0.0 || p.is_nan() {
            return Err(PoolError::InvalidParameter {
                name: "norm_type",
                reason: format!("{p} is not a usable power (non-zero, not NaN)"),
            });
        }
        let torch = match self.formula {
            LpFormula::Auto => self.pytorch_accepts(),
            LpFormula::PyTorch if !self.pytorch_accepts() => {
                return Err(PoolError::InvalidParameter {
                    name: "formula",
                    reason: "PyTorch's LP pooling takes no padding and no dilation; use LpFormula::Onnx".into(),
                })
            }
            LpFormula::PyTorch => true,
            LpFormula::Onnx => false,
        };
        if p.is_infinite() {
            if !torch {
                return Err(PoolError::InvalidParameter {
                    name: "norm_type",
                    reason: "p = ±inf is PyTorch's (no padding, no dilation)".into(),
                });
            }
            return Ok(Resolved::Infinite { negative: p < 0.0 });
        }
        Ok(Resolved::Finite(if torch {
            let axes = self.geometry.resolve(&input.spatial)?;
            let kernel_volume = axes
                .iter()
                .try_fold(1usize, |volume, axis| volume.checked_mul(axis.kernel))
                .ok_or(PoolError::Overflow { what: "kernel volume" })?;
            Formula::Torch { kernel_volume }
        } else {
            Formula::Onnx
        }))
    }

    /// `±|x|` and the max pooling that reduces it (for `p = ±∞`).
    fn infinite<T: Element>(&self, x: &TensorView<'_, T>, negative: bool) -> Result<(Tensor<T>, MaxPool)> {
        let magnitude = buffer::collect(
            x.data().iter().map(|&v| {
                let a = v.to_acc().abs();
                T::from_acc(if negative { -a } else { a })
            }),
            "LP magnitudes",
        )?;
        Ok((Tensor::new(magnitude, x.shape().clone(), x.layout())?, MaxPool::new(self.geometry.clone())))
    }
}

impl LpPool {
    /// [`Pooling::forward`] into a caller-owned buffer of exactly the output's elements
    /// (every element overwritten: no clearing needed between steps); returns the
    /// output's shape. For `p = ±∞` the magnitudes `|x|` still go through scratch
    /// buffers.
    ///
    /// ```
    /// use poolgrad::{Layout, LpPool, PoolGeometry, Shape, Tensor};
    /// let pool = LpPool::new(PoolGeometry::new(&[2]), 2.0);
    /// let x = Tensor::new(vec![3.0f64, 4.0, 1.0, 1.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst)?;
    /// let mut y = vec![f64::NAN; 2];
    /// assert_eq!(pool.forward_into(&x.view(), &mut y)?, Shape::new(1, 1, &[2]));
    /// assert_eq!(y[0], 5.0);
    /// // A buffer of the wrong size is an error, not a panic.
    /// assert!(pool.forward_into(&x.view(), &mut [0.0f64; 3]).is_err());
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn forward_into<T: Element>(&self, x: &TensorView<'_, T>, output: &mut [T]) -> Result<Shape> {
        let resolved = self.resolve(x.shape())?;
        let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
        expect_buffer("output", output, &plan.output, x.layout())?;
        match resolved {
            Resolved::Finite(formula) => self.forward_to(x, &plan, formula, output)?,
            Resolved::Infinite { .. } => output.copy_from_slice(self.forward(x)?.data()),
        }
        Ok(plan.output)
    }

    /// The finite-`p` forward into `output`, which has the plan's output size.
    fn forward_to<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        plan: &Plan,
        formula: Formula,
        output: &mut [T],
    ) -> Result<()> {
        let blocking = Blocking::of(x.shape(), x.layout());
        kernels::lp::forward(x.data(), blocking, &plan.windows, self.norm_type, formula, output)
    }

    /// The finite-`p` backward into `grad_input`, which has the input's size.
    fn backward_to<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_output: &TensorView<'_, T>,
        plan: &Plan,
        formula: Formula,
        grad_input: &mut [T],
    ) -> Result<()> {
        let blocking = Blocking::of(x.shape(), x.layout());
        kernels::lp::backward(
            x.data(),
            grad_output.data(),
            blocking,
            &plan.windows,
            self.norm_type,
            formula,
            grad_input,
        )
    }

    /// [`Pooling::backward`] into a caller-owned buffer of exactly the input's elements
    /// (every element overwritten). For `p = ±∞` the max pooling of the magnitudes
    /// still goes through scratch buffers, and the PyTorch formula's average-pooling
    /// step through one of the output's size.
    ///
    /// ```
    /// use poolgrad::{Layout, LpPool, PoolGeometry, Shape, Tensor};
    /// let pool = LpPool::new(PoolGeometry::new(&[2]), 2.0);
    /// let x = Tensor::new(vec![3.0f64, 4.0, 1.0, 1.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst)?;
    /// let g = Tensor::new(vec![1.0f64, 0.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst)?;
    /// let mut gx = vec![f64::NAN; 4];
    /// pool.backward_into(&x.view(), &g.view(), &mut gx)?;
    /// // d/dx sqrt(x0² + x1²) = x / 5 at (3, 4), up to rounding; the second window's
    /// // gradient is 0.
    /// assert!((gx[0] - 0.6).abs() < 1e-12 && (gx[1] - 0.8).abs() < 1e-12);
    /// assert_eq!(&gx[2..], &[0.0, 0.0]);
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn backward_into<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_output: &TensorView<'_, T>,
        grad_input: &mut [T],
    ) -> Result<()> {
        let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
        plan.expect_output("grad_output", grad_output, x.layout())?;
        expect_buffer("grad_input", grad_input, x.shape(), x.layout())?;
        match self.resolve(x.shape())? {
            Resolved::Finite(formula) => self.backward_to(x, grad_output, &plan, formula, grad_input),
            Resolved::Infinite { .. } => {
                grad_input.copy_from_slice(self.backward(x, grad_output)?.data());
                Ok(())
            }
        }
    }

    /// Double backward, the input part: the derivative of the backward along
    /// `grad_grad_input`, i.e. `H · v` with `H` the Hessian of `Σ grad_output ⊙ y`.
    /// Zero for `p = ±∞` (piecewise linear), as for max pooling.
    pub fn double_backward_input<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_output: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        super::expect_shape("grad_grad_input", grad_grad_input, x.shape(), x.layout())?;
        let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
        plan.expect_output("grad_output", grad_output, x.layout())?;
        let mut out = zeroed::<T>(x.shape())?;
        if let Resolved::Finite(formula) = self.resolve(x.shape())? {
            let blocking = Blocking::of(x.shape(), x.layout());
            kernels::lp::hvp(
                x.data(),
                grad_output.data(),
                grad_grad_input.data(),
                blocking,
                &plan.windows,
                self.norm_type,
                formula,
                &mut out,
            )?;
        }
        Tensor::new(out, x.shape().clone(), x.layout())
    }
}

fn sign<T: Element>(v: T) -> T::Acc {
    let a = v.to_acc();
    if a.is_zero() {
        a
    } else {
        a.signum()
    }
}

impl Pooling for LpPool {
    /// The output's shape; an error for any request the forward would refuse (the power
    /// and the formula included).
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        self.resolve(input)?;
        Ok(WindowSpec::Regular(self.geometry.clone()).plan(input)?.output)
    }

    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        match self.resolve(x.shape())? {
            Resolved::Finite(formula) => {
                let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
                let mut out = zeroed::<T>(&plan.output)?;
                self.forward_to(x, &plan, formula, &mut out)?;
                Tensor::new(out, plan.output, x.layout())
            }
            Resolved::Infinite { negative } => {
                let (m, pool) = self.infinite(x, negative)?;
                let y = pool.forward_with_indices(&m.view())?.output;
                let data = buffer::collect(
                    y.data().iter().map(|&v| if negative { T::from_acc(-v.to_acc()) } else { v }),
                    "an output buffer",
                )?;
                Tensor::new(data, y.shape().clone(), y.layout())
            }
        }
    }

    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
        plan.expect_output("grad_output", grad_output, x.layout())?;
        match self.resolve(x.shape())? {
            Resolved::Finite(formula) => {
                let mut grad_in = zeroed::<T>(x.shape())?;
                self.backward_to(x, grad_output, &plan, formula, &mut grad_in)?;
                Tensor::new(grad_in, x.shape().clone(), x.layout())
            }
            Resolved::Infinite { negative } => {
                // y = ±max(±|x|): the gradient reaches the arg-extremum times sign(x).
                let (m, pool) = self.infinite(x, negative)?;
                let saved = pool.forward_with_indices(&m.view())?;
                let g = pool.backward_with_indices(x.shape(), grad_output, &saved.indices.view())?;
                let data = buffer::collect(
                    g.data().iter().zip(x.data()).map(|(&g, &v)| T::from_acc(g.to_acc() * sign(v))),
                    "an output buffer",
                )?;
                Tensor::new(data, x.shape().clone(), x.layout())
            }
        }
    }

    /// The directional derivative `J · v`. For finite `p` the backward also depends on
    /// the input: that part is [`LpPool::double_backward_input`].
    fn double_backward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        super::expect_shape("grad_grad_input", grad_grad_input, x.shape(), x.layout())?;
        let plan = WindowSpec::Regular(self.geometry.clone()).plan(x.shape())?;
        match self.resolve(x.shape())? {
            Resolved::Finite(formula) => {
                let mut out = zeroed::<T>(&plan.output)?;
                let blocking = Blocking::of(x.shape(), x.layout());
                kernels::lp::jvp(
                    x.data(),
                    grad_grad_input.data(),
                    blocking,
                    &plan.windows,
                    self.norm_type,
                    formula,
                    &mut out,
                )?;
                Tensor::new(out, plan.output, x.layout())
            }
            Resolved::Infinite { negative } => {
                let (m, pool) = self.infinite(x, negative)?;
                let saved = pool.forward_with_indices(&m.view())?;
                let signed = buffer::collect(
                    grad_grad_input.data().iter().zip(x.data()).map(|(&g, &v)| T::from_acc(g.to_acc() * sign(v))),
                    "LP signed directions",
                )?;
                let signed = Tensor::new(signed, x.shape().clone(), x.layout())?;
                pool.double_backward_with_indices(&signed.view(), &saved.indices.view())
            }
        }
    }
}
