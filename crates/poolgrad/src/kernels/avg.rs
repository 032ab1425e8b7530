//! Average pooling kernels: sums in the accumulation type, PyTorch's divisors.

use super::par_blocks;
use super::window::{Window, Windows};
use crate::error::Result;
use crate::tensor::{Blocking, Element};
use num_traits::Zero;

/// What each window's sum is divided by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Divisor {
    /// Taps in the input or its padding (`count_include_pad = true`).
    Padded,
    /// Taps in the input only (`count_include_pad = false`; adaptive and global pooling).
    Valid,
    /// A fixed number (`divisor_override`).
    Fixed(usize),
    /// The window size, divided out one dim at a time (`sum / kh / kw`, as PyTorch's
    /// adaptive average pooling rounds it).
    PerAxis,
}

impl Divisor {
    /// `value / divisor` for this window.
    pub fn apply<T: Element>(self, value: T::Acc, window: &Window<'_>) -> T::Acc {
        self.apply_counts::<T>(value, window.cells.len(), window.axis_counts)
    }

    /// The same from counts: `valid` taps, and the padded count per dim.
    #[inline]
    pub fn apply_counts<T: Element>(self, value: T::Acc, valid: usize, axis_counts: &[usize]) -> T::Acc {
        match self {
            Divisor::Padded => value / T::count(axis_counts.iter().product()),
            Divisor::Valid => value / T::count(valid),
            Divisor::Fixed(n) => value / T::count(n),
            Divisor::PerAxis => axis_counts.iter().fold(value, |v, &c| v / T::count(c)),
        }
    }
}

/// Forward: the window sum (taps in row-major order) over the divisor; 0 for a window
/// with no valid tap.
pub(crate) fn forward<T: Element>(x: &[T], blocking: Blocking, windows: &Windows, divisor: Divisor, out: &mut [T]) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = windows.input_volume * lanes;
    let planar = if lanes == 1 { windows.planar() } else { None };
    par_blocks(out, windows.output_volume * lanes, |b, out| {
        let x = &x[b * in_block..][..in_block];
        if let Some(p) = &planar {
            // Channels-first 1-D/2-D: direct loops, taps summed in row-major order.
            let ow = p.out_cols();
            for orow in 0..p.out_rows() {
                let (rows, row_count) = p.row_window(orow);
                for ocol in 0..ow {
                    let (cols, col_count) = p.cols.window(ocol);
                    let valid = rows.len() * cols.len();
                    out[orow * ow + ocol] = if valid == 0 {
                        T::zero()
                    } else {
                        let mut sum = T::Acc::zero();
                        for &r in rows {
                            let line = &x[r * p.width..][..p.width];
                            for &c in cols {
                                sum = sum + line[c].to_acc();
                            }
                        }
                        let counts = [row_count, col_count];
                        let counts = if p.rows.is_some() { &counts[..] } else { &counts[1..] };
                        T::from_acc(divisor.apply_counts::<T>(sum, valid, counts))
                    };
                }
            }
            return Ok(());
        }
        let mut sums = vec![T::Acc::zero(); lanes];
        windows.for_each(|o, window| {
            if lanes == 1 {
                // Channels-first: one plane, a plain gather-sum.
                out[o] = if window.cells.is_empty() {
                    T::zero()
                } else {
                    let sum = window.cells.iter().fold(T::Acc::zero(), |acc, &s| acc + x[s].to_acc());
                    T::from_acc(divisor.apply::<T>(sum, window))
                };
                return Ok(());
            }
            let out = &mut out[o * lanes..][..lanes];
            if window.cells.is_empty() {
                out.fill(T::zero());
                return Ok(());
            }
            sums.fill(T::Acc::zero());
            for &s in window.cells {
                for (acc, &v) in sums.iter_mut().zip(&x[s * lanes..][..lanes]) {
                    *acc = *acc + v.to_acc();
                }
            }
            for (o, &sum) in out.iter_mut().zip(&sums) {
                *o = T::from_acc(divisor.apply::<T>(sum, window));
            }
            Ok(())
        })
    })
}

/// Backward: every valid tap of a window receives `grad_output / divisor`, in output
/// order then tap order per block (PyTorch's CPU order). `grad_in` starts zero-filled.
pub(crate) fn backward<T: Element>(grad_out: &[T], blocking: Blocking, windows: &Windows, divisor: Divisor, grad_in: &mut [T]) -> Result<()> {
    let lanes = blocking.lanes;
    let out_block = windows.output_volume * lanes;
    par_blocks(grad_in, windows.input_volume * lanes, |b, grad_in| {
        let g = &grad_out[b * out_block..][..out_block];
        let mut shares = vec![T::zero(); lanes];
        windows.for_each(|o, window| {
            if window.cells.is_empty() {
                return Ok(());
            }
            if lanes == 1 {
                let share = T::from_acc(divisor.apply::<T>(g[o].to_acc(), window));
                for &s in window.cells {
                    grad_in[s] = grad_in[s].add(share);
                }
                return Ok(());
            }
            // Channels-last: the shares of all lanes, then one contiguous sweep per tap.
            for (share, &gv) in shares.iter_mut().zip(&g[o * lanes..][..lanes]) {
                *share = T::from_acc(divisor.apply::<T>(gv.to_acc(), window));
            }
            for &s in window.cells {
                for (cell, &share) in grad_in[s * lanes..][..lanes].iter_mut().zip(&shares) {
                    *cell = cell.add(share);
                }
            }
            Ok(())
        })
    })
}
