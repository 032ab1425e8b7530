//! Moves values along saved argmax indices: the max ops' backward (scatter-add), their
//! double backward and max unpooling's backward (gather), and max unpooling (scatter).
//!
//! Indices are flat spatial indices within each (n, c) plane; -1 (a window with no
//! input cell) moves nothing. Each block is handled serially in index order, so the
//! result does not depend on the thread count.

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
pub(crate) fn scatter<T: Element>(sides: Sides, narrow: &[T], indices: &[i64], wide: &mut [T], accumulate: bool) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks_accumulating(wide, sides.wide * lanes, |b, wide_block| {
        let values = &narrow[b * narrow_block..][..narrow_block];
        let idx = &indices[b * narrow_block..][..narrow_block];
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
