//! Max pooling forward: the maximum of each window and its flat spatial index.
//!
//! PyTorch's rule: start at the type's lowest value with the index of the first valid
//! tap, and take any tap with `v > max || isnan(v)`; so ties go to the first tap and a
//! NaN to the last NaN. A window with no valid tap gives the lowest value and index -1.

use super::par_blocks2;
use super::window::{Window, Windows};
use crate::error::Result;
use crate::tensor::{Blocking, MaxElement};

/// Reduces one window of one lane; `at(s)` reads spatial cell `s`.
#[inline]
fn reduce<T: MaxElement>(window: &Window<'_>, at: impl Fn(usize) -> T) -> (T, i64) {
    let mut best = T::lowest();
    let mut arg = window.cells.first().map_or(-1, |&s| s as i64);
    for &s in window.cells {
        let v = at(s);
        if v > best || v.is_nan() {
            best = v;
            arg = s as i64;
        }
    }
    (best, arg)
}

/// Forward with the same windows for every plane (regular, adaptive, global).
pub(crate) fn forward<T: MaxElement>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    out: &mut [T],
    indices: &mut [i64],
) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = windows.input_volume * lanes;
    let planar = if lanes == 1 { windows.planar() } else { None };
    par_blocks2(out, indices, windows.output_volume * lanes, |b, out, indices| {
        let x = &x[b * in_block..][..in_block];
        if let Some(p) = &planar {
            // Channels-first 1-D/2-D: direct loops over each window's rows and columns,
            // in the same row-major tap order as the general path.
            let ow = p.out_cols();
            for orow in 0..p.out_rows() {
                let (rows, _) = p.row_window(orow);
                for ocol in 0..ow {
                    let (cols, _) = p.cols.window(ocol);
                    let mut best = T::lowest();
                    let mut arg = match (rows.first(), cols.first()) {
                        (Some(&r), Some(&c)) => (r * p.width + c) as i64,
                        _ => -1,
                    };
                    for &r in rows {
                        let line = &x[r * p.width..][..p.width];
                        for &c in cols {
                            let v = line[c];
                            if v > best || v.is_nan() {
                                best = v;
                                arg = (r * p.width + c) as i64;
                            }
                        }
                    }
                    out[orow * ow + ocol] = best;
                    indices[orow * ow + ocol] = arg;
                }
            }
            return Ok(());
        }
        windows.for_each(|o, window| {
            if lanes == 1 {
                (out[o], indices[o]) = reduce(window, |s| x[s]);
                return Ok(());
            }
            // Channels-last: all lanes of a tap are contiguous, so sweep lanes innermost.
            let best = &mut out[o * lanes..][..lanes];
            let arg = &mut indices[o * lanes..][..lanes];
            best.fill(T::lowest());
            arg.fill(window.cells.first().map_or(-1, |&s| s as i64));
            for &s in window.cells {
                for ((m, i), &v) in best.iter_mut().zip(arg.iter_mut()).zip(&x[s * lanes..][..lanes]) {
                    if v > *m || v.is_nan() {
                        *m = v;
                        *i = s as i64;
                    }
                }
            }
            Ok(())
        })
    })
}

/// Forward with windows that differ per plane (fractional max pooling):
/// `windows_of(block, lane)` gives the windows of that plane.
pub(crate) fn forward_per_plane<T: MaxElement>(
    x: &[T],
    blocking: Blocking,
    input_volume: usize,
    output_volume: usize,
    windows_of: impl Fn(usize, usize) -> Result<Windows> + Sync + Send,
    out: &mut [T],
    indices: &mut [i64],
) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = input_volume * lanes;
    par_blocks2(out, indices, output_volume * lanes, |b, out, indices| {
        let x = &x[b * in_block..][..in_block];
        for lane in 0..lanes {
            windows_of(b, lane)?.for_each(|o, window| {
                (out[o * lanes + lane], indices[o * lanes + lane]) = reduce(window, |s| x[s * lanes + lane]);
                Ok(())
            })?;
        }
        Ok(())
    })
}
