//! Finite-difference gradient checks that anyone can run on any operator.

use crate::error::Result;
use crate::ops::Pooling;
use crate::tensor::{Tensor, TensorView};

/// What [`gradcheck`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Largest `|analytic − numeric|` over all input elements.
    pub max_abs_error: f64,
    /// The input element (flat, memory order) where it occurred.
    pub worst_element: usize,
    /// The analytic gradient there.
    pub analytic: f64,
    /// The central-difference estimate there.
    pub numeric: f64,
    /// How many input elements were checked.
    pub checked: usize,
}

/// Checks `op`'s backward against central finite differences, in f64.
///
/// The loss is `L(x) = Σ r ⊙ op(x)` with a fixed pseudo-random `r`; for every input
/// element the analytic `∂L/∂x` (from [`Pooling::backward`] with `grad_output = r`) is
/// compared with `Σ r ⊙ (op(x + ε·e) − op(x − ε·e)) / 2ε`. It runs two forwards per
/// input element: meant for small inputs. Max pooling is not differentiable at
/// ties, so give it inputs whose values in a window differ by more than `2ε`.
///
/// ```
/// use poolgrad::{gradcheck, AvgPool, PoolGeometry, Padding, Layout, Shape, Tensor};
/// let x = Tensor::new((0..25).map(|v| (v as f64 * 0.37).sin()).collect(), Shape::new(1, 1, &[5, 5]), Layout::ChannelsFirst).unwrap();
/// let pool = AvgPool::new(PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1])));
/// let report = gradcheck(&pool, &x.view(), 1e-6).unwrap();
/// assert!(report.max_abs_error < 1e-8);
/// ```
pub fn gradcheck<P: Pooling>(op: &P, x: &TensorView<'_, f64>, eps: f64) -> Result<GradcheckReport> {
    let out_shape = op.output_shape(x.shape())?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let r: Vec<f64> = (0..out_shape.numel()?).map(|_| next_uniform(&mut seed) * 2.0 - 1.0).collect();
    let r = Tensor::new(r, out_shape, x.layout())?;
    let analytic = op.backward(x, &r.view())?;
    let forward =
        |data: &[f64]| -> Result<Tensor<f64>> { op.forward(&TensorView::new(data, x.shape().clone(), x.layout())?) };
    let mut probe = x.data().to_vec();
    let mut report = GradcheckReport { max_abs_error: 0.0, worst_element: 0, analytic: 0.0, numeric: 0.0, checked: 0 };
    for i in 0..probe.len() {
        let original = probe[i];
        probe[i] = original + eps;
        let up = forward(&probe)?;
        probe[i] = original - eps;
        let down = forward(&probe)?;
        probe[i] = original;
        // Σ r·(y⁺ − y⁻) rather than Σ r·y⁺ − Σ r·y⁻: differences of outputs the probe
        // does not reach are exactly 0, so large losses do not drown the derivative.
        let numeric = up
            .data()
            .iter()
            .zip(down.data())
            .zip(r.data())
            .map(|((u, d), w)| if u == d { 0.0 } else { w * (u - d) })
            .sum::<f64>()
            / (2.0 * eps);
        let error = (analytic.data()[i] - numeric).abs();
        if error > report.max_abs_error || error.is_nan() {
            report = GradcheckReport {
                max_abs_error: error,
                worst_element: i,
                analytic: analytic.data()[i],
                numeric,
                checked: 0,
            };
        }
    }
    report.checked = probe.len();
    Ok(report)
}

/// SplitMix64 mapped to [0, 1): a fixed, dependency-free source of test directions.
fn next_uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
