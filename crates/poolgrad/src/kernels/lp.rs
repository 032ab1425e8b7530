//! LP pooling kernels (finite, non-zero p), in PyTorch's and ONNX's formulas.
//!
//! PyTorch: `y = (K · avg(x^p))^(1/p)` with `x^p` (not `|x|^p`), `K` the kernel volume
//! and `avg` average pooling without padding (its divisor clipped under ceil mode), each
//! step rounded to the element type as PyTorch's composite does. ONNX:
//! `y = (Σ |x|^p)^(1/p)` over the window's valid taps (pads and dilation allowed). Both
//! define the gradient as 0 where the window's power sum is 0.

use super::avg::{self, Divisor};
use super::window::{Window, Windows};
use super::{buffer, par_blocks, par_blocks_accumulating};
use crate::error::Result;
use crate::tensor::{Blocking, Element};
use num_traits::{Float, One};

/// Which formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Formula {
    /// PyTorch's composite, with the kernel volume.
    Torch { kernel_volume: usize },
    /// ONNX's plain power sum.
    Onnx,
}

impl Formula {
    /// The per-tap power: `x^p` (PyTorch) or `|x|^p` (ONNX).
    fn psi<A: Float>(self, x: A, p: A) -> A {
        match self {
            Formula::Torch { .. } => x.powf(p),
            Formula::Onnx => x.abs().powf(p),
        }
    }

    /// `ψ'(x) / p`. For ONNX's `|x|^p` the sign of `x` is 0 at `x = ±0` (PyTorch's
    /// `sgn`, the subgradient 0 of `|x|` at 0), not the sign of the zero's bit.
    fn phi<A: Float>(self, x: A, p: A) -> A {
        match self {
            Formula::Torch { .. } => x.powf(p - A::one()),
            Formula::Onnx => {
                let sign = if x.is_zero() { A::zero() } else { x.signum() };
                x.abs().powf(p - A::one()) * sign
            }
        }
    }

    /// `φ'(x)`; 0 for `p = 1`, where `φ` is constant (or the sign) and `x^(p−2)` would
    /// make `0 · ∞` at `x = 0`.
    fn dphi<A: Float>(self, x: A, p: A) -> A {
        let two = A::one() + A::one();
        if p == A::one() {
            return A::zero();
        }
        match self {
            Formula::Torch { .. } => (p - A::one()) * x.powf(p - two),
            Formula::Onnx => (p - A::one()) * x.abs().powf(p - two),
        }
    }
}

/// `v` rounded to `T` and widened back.
fn round<T: Element>(v: T::Acc) -> T::Acc {
    T::from_acc(v).to_acc()
}

fn acc<T: Element>(v: f64) -> T::Acc {
    <T::Acc as num_traits::NumCast>::from(v).unwrap_or_else(T::Acc::nan)
}

/// Per-window quantities of PyTorch's composite: `out = avg(x^p)` and `m = K · out`.
fn torch_window<T: Element>(
    window: &Window<'_>,
    p: T::Acc,
    kernel_volume: T::Acc,
    at: impl Fn(usize) -> T,
) -> (T::Acc, T::Acc) {
    let sum = window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &c| s + round::<T>(at(c).to_acc().powf(p)));
    let out = round::<T>(sum / T::count(window.padded_count));
    (out, round::<T>(out * kernel_volume))
}

/// Forward.
pub(crate) fn forward<T: Element>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    p: f64,
    formula: Formula,
    out: &mut [T],
) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = windows.input_volume * lanes;
    let (pa, inv_p) = (acc::<T>(p), acc::<T>(1.0 / p));
    par_blocks(out, windows.output_volume * lanes, |b, out| {
        let x = &x[b * in_block..][..in_block];
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let at = |s: usize| x[s * lanes + lane];
                out[o * lanes + lane] = T::from_acc(match formula {
                    Formula::Torch { kernel_volume } => {
                        torch_window::<T>(window, pa, T::count(kernel_volume), at).1.powf(inv_p)
                    }
                    Formula::Onnx => window
                        .cells
                        .iter()
                        .fold(num_traits::zero::<T::Acc>(), |s, &c| s + at(c).to_acc().abs().powf(pa))
                        .powf(inv_p),
                });
            }
            Ok(())
        })
    })
}

/// Backward. `grad_in` starts zero-filled.
pub(crate) fn backward<T: Element>(
    x: &[T],
    grad_out: &[T],
    blocking: Blocking,
    windows: &Windows,
    p: f64,
    formula: Formula,
    grad_in: &mut [T],
) -> Result<()> {
    let lanes = blocking.lanes;
    let (in_block, out_block) = (windows.input_volume * lanes, windows.output_volume * lanes);
    let (pa, inv_p) = (acc::<T>(p), acc::<T>(1.0 / p));
    match formula {
        Formula::Torch { kernel_volume } => {
            // Chain rule through the composite: y = m^(1/p), m = K·out, out = avg(a), a = x^p.
            let k = T::count(kernel_volume);
            let mut grad_out_avg = buffer::filled(grad_out.len(), T::zero(), "scratch")?;
            par_blocks(&mut grad_out_avg, out_block, |b, gavg| {
                let x = &x[b * in_block..][..in_block];
                let g = &grad_out[b * out_block..][..out_block];
                windows.for_each(|o, window| {
                    for lane in 0..lanes {
                        let (out, m) = torch_window::<T>(window, pa, k, |s| x[s * lanes + lane]);
                        let dm = round::<T>(round::<T>(m.powf(inv_p - T::Acc::one())) * inv_p);
                        let gm = round::<T>(g[o * lanes + lane].to_acc() * dm);
                        let gout = if out == num_traits::zero::<T::Acc>() {
                            num_traits::zero::<T::Acc>()
                        } else {
                            round::<T>(gm * k)
                        };
                        gavg[o * lanes + lane] = T::from_acc(gout);
                    }
                    Ok(())
                })
            })?;
            // The average pooling's backward, then a = x^p's: da/dx = p·x^(p−1).
            avg::backward(&grad_out_avg, blocking, windows, Divisor::Padded, grad_in.into())?;
            let pm1 = pa - T::Acc::one();
            for (gx, &xv) in grad_in.iter_mut().zip(x) {
                let da = round::<T>(round::<T>(xv.to_acc().powf(pm1)) * pa);
                *gx = T::from_acc(gx.to_acc() * da);
            }
            Ok(())
        }
        Formula::Onnx => par_blocks_accumulating(grad_in, in_block, |b, gx| {
            let x = &x[b * in_block..][..in_block];
            let g = &grad_out[b * out_block..][..out_block];
            windows.for_each(|o, window| {
                for lane in 0..lanes {
                    let at = |s: usize| x[s * lanes + lane].to_acc();
                    let sum = window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &c| s + at(c).abs().powf(pa));
                    if sum == num_traits::zero::<T::Acc>() {
                        continue;
                    }
                    // dy/dx_i = S^(1/p − 1) · φ(x_i), φ(x) = |x|^(p−1) · sign(x)
                    let scale = g[o * lanes + lane].to_acc() * sum.powf(inv_p - T::Acc::one());
                    for &c in window.cells {
                        let v = at(c);
                        let cell = &mut gx[c * lanes + lane];
                        *cell = T::from_acc(cell.to_acc() + scale * formula.phi(v, pa));
                    }
                }
                Ok(())
            })
        }),
    }
}

/// Double backward, the grad-output part: the directional derivative `J · v` of the
/// forward along `v` (same shape as the input), in the accumulation type.
pub(crate) fn jvp<T: Element>(
    x: &[T],
    v: &[T],
    blocking: Blocking,
    windows: &Windows,
    p: f64,
    formula: Formula,
    out: &mut [T],
) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = windows.input_volume * lanes;
    let (pa, inv_p) = (acc::<T>(p), acc::<T>(1.0 / p));
    par_blocks(out, windows.output_volume * lanes, |b, out| {
        let x = &x[b * in_block..][..in_block];
        let v = &v[b * in_block..][..in_block];
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let at = |s: usize| x[s * lanes + lane].to_acc();
                let tangent = |s: usize| v[s * lanes + lane].to_acc();
                let one = T::Acc::one();
                out[o * lanes + lane] = T::from_acc(match formula {
                    Formula::Torch { kernel_volume } => {
                        let k = T::count(kernel_volume);
                        let count = T::count(window.padded_count);
                        let sum = window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &c| s + at(c).powf(pa));
                        if sum == num_traits::zero::<T::Acc>() {
                            num_traits::zero::<T::Acc>()
                        } else {
                            let m = k * sum / count;
                            let dsum = window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &c| {
                                s + pa * formula.phi(at(c), pa) * tangent(c)
                            });
                            inv_p * m.powf(inv_p - one) * k * dsum / count
                        }
                    }
                    Formula::Onnx => {
                        let sum =
                            window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &c| s + at(c).abs().powf(pa));
                        if sum == num_traits::zero::<T::Acc>() {
                            num_traits::zero::<T::Acc>()
                        } else {
                            let dsum = window
                                .cells
                                .iter()
                                .fold(num_traits::zero::<T::Acc>(), |s, &c| s + formula.phi(at(c), pa) * tangent(c));
                            sum.powf(inv_p - one) * dsum
                        }
                    }
                });
            }
            Ok(())
        })
    })
}

/// Double backward, the input part: `H · v` where `H` is the Hessian of `Σ g ⊙ y` w.r.t.
/// the input (the derivative of the backward along `v`), in the accumulation type.
/// `out` starts zero-filled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hvp<T: Element>(
    x: &[T],
    grad_out: &[T],
    v: &[T],
    blocking: Blocking,
    windows: &Windows,
    p: f64,
    formula: Formula,
    out: &mut [T],
) -> Result<()> {
    let lanes = blocking.lanes;
    let (in_block, out_block) = (windows.input_volume * lanes, windows.output_volume * lanes);
    let (pa, a) = (acc::<T>(p), acc::<T>(1.0 / p - 1.0));
    let one = T::Acc::one();
    par_blocks_accumulating(out, in_block, |b, hv| {
        let x = &x[b * in_block..][..in_block];
        let v = &v[b * in_block..][..in_block];
        let g = &grad_out[b * out_block..][..out_block];
        let mut acc_hv = buffer::filled(in_block, num_traits::zero::<T::Acc>(), "scratch")?;
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let at = |s: usize| x[s * lanes + lane].to_acc();
                let gv = g[o * lanes + lane].to_acc();
                // Both formulas: y = (c·S)^(1/p), S = Σ ψ(x_i), with ψ' = p·φ:
                // PyTorch: ψ(x) = x^p, c = K / count; ONNX: ψ(x) = |x|^p, c = 1.
                let c = match formula {
                    Formula::Torch { kernel_volume } => T::count(kernel_volume) / T::count(window.padded_count),
                    Formula::Onnx => one,
                };
                let (psi, phi, dphi) = (|x| formula.psi(x, pa), |x| formula.phi(x, pa), |x| formula.dphi(x, pa));
                let sum = window.cells.iter().fold(num_traits::zero::<T::Acc>(), |s, &cell| s + psi(at(cell)));
                if sum == num_traits::zero::<T::Acc>() {
                    continue;
                }
                let cs = c * sum;
                // gx_i = g·c·(cS)^a·φ(x_i)  ⇒  (H v)_i = g·c·[a·(cS)^(a−1)·c·p·φ(x_i)·Σ_j φ(x_j) v_j + (cS)^a·φ'(x_i)·v_i]
                let dot = window
                    .cells
                    .iter()
                    .fold(num_traits::zero::<T::Acc>(), |s, &cell| s + phi(at(cell)) * v[cell * lanes + lane].to_acc());
                let first = a * cs.powf(a - one) * c * pa * dot;
                let second = cs.powf(a);
                for &cell in window.cells {
                    let xi = at(cell);
                    acc_hv[cell * lanes + lane] = acc_hv[cell * lanes + lane]
                        + gv * c * (first * phi(xi) + second * dphi(xi) * v[cell * lanes + lane].to_acc());
                }
            }
            Ok(())
        })?;
        // PyTorch's composite differentiates `x^p` at every cell, windows or not: where
        // `x^(p−2)` is NaN (a negative `x` with fractional `p`) its `0 · NaN` reaches the
        // cells no window covers too, as in its first-order gradient (see `backward`).
        for (i, (o, a)) in hv.iter_mut().zip(acc_hv).enumerate() {
            let a = match formula {
                Formula::Torch { .. } if !(formula.dphi(x[i].to_acc(), pa) * v[i].to_acc()).is_finite() => {
                    T::Acc::nan()
                }
                _ => a,
            };
            *o = T::from_acc(a);
        }
        Ok(())
    })
}
