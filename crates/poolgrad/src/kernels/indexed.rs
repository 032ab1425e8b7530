//! Moves values along saved argmax indices: the max ops' backward (scatter-add), their
//! double backward and max unpooling's backward (gather), and max unpooling (scatter).
//!
//! Indices are flat spatial indices within each (n, c) plane; -1 (a window with no
//! input cell) moves nothing. Each block is handled serially in index order, so the
//! result does not depend on the thread count.

use super::buffer::Out;
use super::window::{Window, Windows};
use super::{par_blocks, par_blocks_accumulating};
use crate::error::{PoolError, Result};
use crate::tensor::{Blocking, Element};

/// The sizes of the two sides: the indexed ("wide") planes and the index-carrying
/// ("narrow") planes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sides {
    pub blocking: Blocking,
    /// Cells in a wide plane (the pooling input, the unpooling output).
    pub wide: usize,
    /// Cells in a narrow plane (the pooling output, the unpooling input).
    pub narrow: usize,
}

fn check(i: i64, wide: usize, position: usize) -> Result<Option<usize>> {
    match i {
        -1 => Ok(None),
        i if i >= 0 && (i as u64) < wide as u64 => Ok(Some(i as usize)),
        i => Err(PoolError::InvalidIndex { index: i, position, plane_size: wide }),
    }
}

/// `wide[index[p]] (+)= narrow[p]`: adds when `accumulate` (max backward), else assigns,
/// the last write winning (max unpooling). `wide` must start zero-filled.
pub(crate) fn scatter<T: Element>(
    sides: Sides,
    narrow: &[T],
    indices: &[i64],
    wide: Out<'_, T>,
    accumulate: bool,
) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks_accumulating(wide, sides.wide * lanes, |b, wide_block| {
        let values = &narrow[b * narrow_block..][..narrow_block];
        let idx = &indices[b * narrow_block..][..narrow_block];
        if lanes == 1 {
            // Channels-first: the same order without a chunk per position.
            let first = b * narrow_block;
            return match accumulate {
                true => scatter_plane(wide_block, values, idx, first, |cell, v| *cell = cell.add(v)),
                false => scatter_plane(wide_block, values, idx, first, |cell, v| *cell = v),
            };
        }
        // Position by position, each position's lanes in order (the flat order).
        for (o, (values, idx)) in values.chunks_exact(lanes).zip(idx.chunks_exact(lanes)).enumerate() {
            for (lane, (&v, &i)) in values.iter().zip(idx).enumerate() {
                if let Some(i) = check(i, sides.wide, b * narrow_block + o * lanes + lane)? {
                    let cell = &mut wide_block[i * lanes + lane];
                    *cell = if accumulate { cell.add(v) } else { v };
                }
            }
        }
        Ok(())
    })
}

/// `narrow[p] = wide[index[p]]` (0 where the index is -1).
pub(crate) fn gather<T: Element>(sides: Sides, wide: &[T], indices: &[i64], narrow: &mut [T]) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let wide_block = sides.wide * lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks(narrow, narrow_block, |b, out| {
        let source = &wide[b * wide_block..][..wide_block];
        let idx = &indices[b * narrow_block..][..narrow_block];
        for (o, (out, idx)) in out.chunks_exact_mut(lanes).zip(idx.chunks_exact(lanes)).enumerate() {
            for (lane, (out, &i)) in out.iter_mut().zip(idx).enumerate() {
                *out = match check(i, sides.wide, b * narrow_block + o * lanes + lane)? {
                    Some(i) => source[i * lanes + lane],
                    None => T::zero(),
                };
            }
        }
        Ok(())
    })
}

/// [`scatter`] of one channels-first plane: `put(&mut cells[i], value)` for each value and
/// its index `i`, in order; -1 skips the value, any other index outside the plane is an
/// error (`first`: the position of `values[0]` in the whole array, for the message).
/// One loop per `put` and one range test per index keep the loop, which runs once per
/// output, short.
#[inline(always)]
fn scatter_plane<T: Copy>(
    cells: &mut [T],
    values: &[T],
    indices: &[i64],
    first: usize,
    put: impl Fn(&mut T, T),
) -> Result<()> {
    for (p, (&v, &i)) in values.iter().zip(indices).enumerate() {
        match usize::try_from(i).ok().and_then(|i| cells.get_mut(i)) {
            Some(cell) => put(cell, v),
            None if i == -1 => {}
            None => return Err(PoolError::InvalidIndex { index: i, position: first + p, plane_size: cells.len() }),
        }
    }
    Ok(())
}

/// The tap a compact argmax names (see `max::Argmax`): `None` for an empty window.
#[inline]
fn tap_cell(window: &Window<'_>, tap: u8, position: usize) -> Result<Option<usize>> {
    if window.cells.is_empty() {
        return Ok(None);
    }
    match window.cells.get(usize::from(tap)) {
        Some(&cell) => Ok(Some(cell)),
        None => Err(PoolError::InvalidTap { tap, position, window_taps: window.cells.len() }),
    }
}

/// The max ops' backward from compact argmax taps: `wide[cells_o[tap[o]]] += narrow[o]`
/// in output order, lanes in order (the same additions as [`scatter`] from the
/// equivalent indices).
pub(crate) fn scatter_taps<T: Element>(
    sides: Sides,
    windows: &Windows,
    narrow: &[T],
    taps: &[u8],
    wide: Out<'_, T>,
) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks_accumulating(wide, sides.wide * lanes, |b, wide_block| {
        let values = &narrow[b * narrow_block..][..narrow_block];
        let taps = &taps[b * narrow_block..][..narrow_block];
        let mut add = |cell: usize, lane: usize, p: usize| {
            let cell = &mut wide_block[cell * lanes + lane];
            *cell = cell.add(values[p]);
        };
        if let Some((bounds, cells)) = windows.table_taps() {
            // Straight from the table: two loads per output.
            let invalid = |p: usize, window: &[usize]| PoolError::InvalidTap {
                tap: taps[p],
                position: b * narrow_block + p,
                window_taps: window.len(),
            };
            if lanes == 1 {
                // Channels-first: the same order without a lane loop per output.
                // The window's slice is only formed for an error: a valid tap costs one
                // range test on the table and one on the plane.
                for (o, ((&v, &tap), w)) in values.iter().zip(taps).zip(bounds.windows(2)).enumerate() {
                    let k = w[0] + usize::from(tap);
                    let cell = cells.get(k).filter(|_| k < w[1]).and_then(|&cell| wide_block.get_mut(cell));
                    match cell {
                        Some(cell) => *cell = cell.add(v),
                        None if w[0] == w[1] => {}
                        None => return Err(invalid(o, &cells[w[0]..w[1]])),
                    }
                }
                return Ok(());
            }
            for (o, w) in bounds.windows(2).enumerate() {
                let window = &cells[w[0]..w[1]];
                for lane in 0..lanes {
                    let p = o * lanes + lane;
                    match window.get(usize::from(taps[p])) {
                        Some(&cell) => add(cell, lane, p),
                        None if window.is_empty() => {}
                        None => return Err(invalid(p, window)),
                    }
                }
            }
            return Ok(());
        }
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let p = o * lanes + lane;
                if let Some(cell) = tap_cell(window, taps[p], b * narrow_block + p)? {
                    add(cell, lane, p);
                }
            }
            Ok(())
        })
    })
}

/// PyTorch-format flat indices from compact argmax taps (-1 for an empty window).
pub(crate) fn taps_to_indices(sides: Sides, windows: &Windows, taps: &[u8], indices: &mut [i64]) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks(indices, narrow_block, |b, out| {
        let taps = &taps[b * narrow_block..][..narrow_block];
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let p = o * lanes + lane;
                out[p] = tap_cell(window, taps[p], b * narrow_block + p)?.map_or(-1, |c| c as i64);
            }
            Ok(())
        })
    })
}
