//! How the operators are computed: per-block loops over windows, run in parallel.
//!
//! A tensor is seen as `blocks` contiguous blocks of `lanes` interleaved channels
//! ([`Blocking`](crate::tensor::Blocking)): channels-first is one lane per block,
//! channels-last is all channels of one image per block. Every kernel here handles both,
//! and each block is computed serially in a fixed order, so results are bitwise identical
//! for any thread count.

pub(crate) mod avg;
pub(crate) mod buffer;
pub(crate) mod indexed;
pub(crate) mod lp;
pub(crate) mod max;
pub(crate) mod window;

use crate::error::Result;
use rayon::prelude::*;

/// Runs `f(block_index, block)` over the `block_len`-sized blocks of `out`, in parallel.
pub(crate) fn par_blocks<T: Send>(
    out: &mut [T],
    block_len: usize,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    if block_len == 0 || out.is_empty() {
        return Ok(());
    }
    out.par_chunks_mut(block_len).enumerate().try_for_each(|(b, block)| f(b, block))
}

/// Like [`par_blocks`] for kernels that add into their output: each block is written
/// with zeros right before `f` runs on it.
///
/// The outputs come from [`buffer::zeroed`], already zero; but a kernel whose first
/// touch of a fresh page is a read (`cell += v`) maps the shared zero page and then
/// pays a copy-on-write fault with a TLB shootdown across threads on its first write
/// (measured: max backward 2x slower on 2 threads than on 1). Writing first gets the
/// page directly; the block is then still in cache for `f`.
pub(crate) fn par_blocks_accumulating<T: Send + bytemuck::Zeroable + Copy>(
    out: &mut [T],
    block_len: usize,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    par_blocks(out, block_len, |b, block| {
        block.fill(T::zeroed());
        f(b, block)
    })
}

/// Like [`par_blocks`] over two outputs with matching blocks.
pub(crate) fn par_blocks2<T: Send, U: Send>(
    out: &mut [T],
    out2: &mut [U],
    block_len: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) -> Result<()> + Sync + Send,
) -> Result<()> {
    if block_len == 0 || out.is_empty() {
        return Ok(());
    }
    out.par_chunks_mut(block_len)
        .zip(out2.par_chunks_mut(block_len))
        .enumerate()
        .try_for_each(|(b, (block, block2))| f(b, block, block2))
}
