//! Max pooling kernels: forward with argmax, backward by scattering at the argmax.

use super::window::Windows;
use super::{par_blocks, par_blocks2};
use crate::error::{PoolError, Result};
use crate::tensor::{Blocking, Element};

/// Forward: the maximum of each window and its flat spatial index (PyTorch's rule:
/// `v > max || isnan(v)`, so ties go to the first tap and NaN to the last NaN; the index
/// starts at the first valid tap; a window with no valid tap gives `-inf` and index -1).
pub(crate) fn forward<T: Element>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    out: &mut [T],
    indices: &mut [i64],
) -> Result<()> {
    let lanes = blocking.lanes;
    let in_block = windows.input_volume * lanes;
    par_blocks2(out, indices, windows.output_volume * lanes, |b, out, indices| {
        let x = &x[b * in_block..][..in_block];
        windows.for_each(|o, window| {
            let best = &mut out[o * lanes..][..lanes];
            let arg = &mut indices[o * lanes..][..lanes];
            best.fill(T::neg_infinity());
            arg.fill(window.cells.first().map_or(-1, |&s| s as i64));
            for &s in window.cells {
                let values = &x[s * lanes..][..lanes];
                for ((m, i), &v) in best.iter_mut().zip(arg.iter_mut()).zip(values) {
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

/// Backward: `grad_input[index] += grad_output` for every output, in output order per
/// block (the order of PyTorch's CPU kernel). Index -1 (an empty window) sends nothing.
pub(crate) fn backward<T: Element>(
    grad_out: &[T],
    indices: &[i64],
    blocking: Blocking,
    input_volume: usize,
    output_volume: usize,
    grad_in: &mut [T],
) -> Result<()> {
    let lanes = blocking.lanes;
    let out_block = output_volume * lanes;
    par_blocks(grad_in, input_volume * lanes, |b, grad_in| {
        let g = &grad_out[b * out_block..][..out_block];
        let idx = &indices[b * out_block..][..out_block];
        for (p, (&gv, &i)) in g.iter().zip(idx).enumerate() {
            if i == -1 {
                continue;
            }
            if i < 0 || i as u64 >= input_volume as u64 {
                return Err(PoolError::InvalidIndex {
                    index: i,
                    position: b * out_block + p,
                    plane_size: input_volume,
                });
            }
            let cell = &mut grad_in[i as usize * lanes + p % lanes];
            *cell = *cell + gv;
        }
        Ok(())
    })
}
