//! How the operators are computed: per-block loops over windows, run in parallel.
//!
//! A tensor is seen as `blocks` contiguous blocks of `lanes` interleaved channels
//! ([`Blocking`]): channels-first is one lane per block,
//! channels-last is all channels of one image per block. Every kernel here handles both,
//! and each block is computed serially in a fixed order, so results are bitwise identical
//! for any thread count.

pub(crate) mod avg;
pub(crate) mod buffer;
pub(crate) mod indexed;
pub(crate) mod lp;
pub(crate) mod max;
pub(crate) mod separable;
pub(crate) mod sparse;
pub(crate) mod stencil;
#[cfg(target_arch = "x86_64")]
pub(crate) mod tap_gather;
pub(crate) mod window;

use crate::error::Result;
use crate::tensor::Blocking;
use buffer::{Out, OutBlock, Sink};
use bytemuck::Zeroable;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use window::{Rows, Windows};

/// How a forward kernel walks its blocks (see `max` and `avg`).
pub(crate) enum Path {
    /// Channels-first, rows with runs of complete windows long enough to vectorise.
    Rows(Box<Rows>),
    /// Channels-first without such runs: groups of [`PLANE_GROUP`] planes, interleaved.
    PlaneGroups,
    /// Channels-last: channels in chunks.
    LaneChunks,
    /// Planes over 2^32 cells, whose indices the vectorised paths do not keep.
    Plain,
}

impl Path {
    pub fn choose(blocking: Blocking, windows: &Windows) -> Result<Path> {
        if u32::try_from(windows.input_volume).is_err() {
            return Ok(Path::Plain);
        }
        if blocking.lanes > 1 {
            return Ok(Path::LaneChunks);
        }
        let rows = windows.rows()?;
        Ok(if rows.has_runs() { Path::Rows(Box::new(rows)) } else { Path::PlaneGroups })
    }
}

/// Channels from which a channels-last kernel over windows that read their input about
/// once ([`window::Windows::read_input_about_once`]) takes one tap at a time over all
/// channels: with 32 channels (W6, 3-D) that was 0.84x the chunked loop, with 128 (W2,
/// W7) 1.4-1.7x faster.
pub(crate) const TAP_MAJOR_LANES: usize = 64;

/// Planes per group of the channels-first interleaved path.
pub(crate) const PLANE_GROUP: usize = 16;

/// Interleaves [`PLANE_GROUP`] consecutive planes of `volume` cells into channels-last
/// order: `out[cell · G + p] = planes[p · volume + cell]`.
#[inline(always)]
pub(crate) fn interleave_planes<T: Copy>(planes: &[T], volume: usize, out: &mut Vec<T>) -> Result<()> {
    out.clear();
    let Some(&fill) = planes.first() else { return Ok(()) };
    buffer::resize(out, volume.saturating_mul(PLANE_GROUP), fill, "interleaved planes")?;
    for (p, plane) in planes.chunks_exact(volume.max(1)).take(PLANE_GROUP).enumerate() {
        for (cell, &v) in out.chunks_exact_mut(PLANE_GROUP).zip(plane) {
            cell[p] = v;
        }
    }
    Ok(())
}

/// The inverse of [`interleave_planes`] for a whole group: `out[p · volume + cell] =
/// interleaved[cell · G + p]`, written front to back (so a fresh block needs no clearing
/// first), a short run of cells at a time.
#[inline(always)]
pub(crate) fn deinterleave_planes<T: Copy>(interleaved: &[T], volume: usize, out: &mut Sink<'_, T>) {
    const RUN: usize = 64;
    let Some(&first) = interleaved.first() else { return };
    let mut run = [first; RUN];
    for p in 0..PLANE_GROUP {
        for cells in interleaved[..volume * PLANE_GROUP].chunks(RUN * PLANE_GROUP) {
            let n = cells.len() / PLANE_GROUP;
            for (v, cell) in run.iter_mut().zip(cells.chunks_exact(PLANE_GROUP)) {
                *v = cell[p];
            }
            out.extend(&run[..n]);
        }
    }
}

/// Bytes of output that the channels-last forward paths write per parallel block, at most
/// (when a divisor of the plane's outputs allows): a fresh block is cleared in the
/// worker's cache right before it is written (see [`buffer::Fresh`]), so it should fit
/// in L2 beside the input it reads.
const BAND_BYTES: usize = 256 << 10;

/// Output positions per block of a channels-last forward over planes of `output_volume`
/// positions, each `bytes_per_position` bytes: the largest divisor of `output_volume`
/// within [`BAND_BYTES`], or the whole plane if that divisor would make blocks of under
/// 16 KiB (too small to be worth a parallel job).
pub(crate) fn band_outputs(output_volume: usize, bytes_per_position: usize) -> usize {
    let fits = BAND_BYTES / bytes_per_position.max(1);
    let divisors = (1..).take_while(|d| d * d <= output_volume).filter(|d| output_volume.is_multiple_of(*d));
    let band = divisors.flat_map(|d| [d, output_volume / d]).filter(|&d| d <= fits).max().unwrap_or(output_volume);
    if band.saturating_mul(bytes_per_position) < 16 << 10 {
        output_volume.max(1)
    } else {
        band
    }
}

/// Runs `f(block_index, block)` over the `block_len`-sized blocks of `out`, in parallel.
pub(crate) fn par_blocks<'a, T: Zeroable + Copy + Send + Sync + 'a>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    par_blocks_with(out, block_len, || Ok(()), |(), b, block| f(b, block))
}

/// Like [`par_blocks`] over two outputs with matching blocks.
pub(crate) fn par_blocks2<'a, T, U>(
    out: impl Into<Out<'a, T>>,
    out2: impl Into<Out<'a, U>>,
    block_len: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) -> Result<()> + Sync + Send,
) -> Result<()>
where
    T: Zeroable + Copy + Send + Sync + 'a,
    U: Zeroable + Copy + Send + Sync + 'a,
{
    par_blocks2_with(out, out2, block_len, || Ok(()), |(), b, block, block2| f(b, block, block2))
}

/// Like [`par_blocks`] for kernels that write each block front to back, every element
/// once, through a [`Sink`]: a fresh block then needs no clearing first (which costs a
/// quarter of a channels-last max forward, measured).
pub(crate) fn par_blocks_in_order<'a, T: Zeroable + Copy + Send + Sync + 'a>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    f: impl Fn(usize, &mut Sink<'a, T>) -> Result<()> + Sync + Send,
) -> Result<()> {
    par_blocks_with_in_order(out, block_len, || Ok(()), |(), b, sink| f(b, sink))
}

/// Like [`par_blocks_in_order`] with a scratch value per parallel job (see
/// [`par_blocks_with`]).
pub(crate) fn par_blocks_with_in_order<'a, T: Zeroable + Copy + Send + Sync + 'a, S>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, &mut Sink<'a, T>) -> Result<()> + Sync + Send,
) -> Result<()> {
    let Some(blocks) = numbered_blocks(out.into(), block_len) else { return Ok(()) };
    first_error(blocks, init, |scratch, b, block| block.write_in_order(|sink| f(scratch, b, sink)))
}

/// Like [`par_blocks_in_order`] over two outputs with matching blocks.
pub(crate) fn par_blocks2_in_order<'a, T, U>(
    out: impl Into<Out<'a, T>>,
    out2: impl Into<Out<'a, U>>,
    block_len: usize,
    f: impl Fn(usize, &mut Sink<'a, T>, &mut Sink<'a, U>) -> Result<()> + Sync + Send,
) -> Result<()>
where
    T: Zeroable + Copy + Send + Sync + 'a,
    U: Zeroable + Copy + Send + Sync + 'a,
{
    par_blocks2_with_in_order(out, out2, block_len, || Ok(()), |(), b, sink, sink2| f(b, sink, sink2))
}

/// Like [`par_blocks2_in_order`] with a scratch value per parallel job (see
/// [`par_blocks_with`]).
pub(crate) fn par_blocks2_with_in_order<'a, T, U, S>(
    out: impl Into<Out<'a, T>>,
    out2: impl Into<Out<'a, U>>,
    block_len: usize,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, &mut Sink<'a, T>, &mut Sink<'a, U>) -> Result<()> + Sync + Send,
) -> Result<()>
where
    T: Zeroable + Copy + Send + Sync + 'a,
    U: Zeroable + Copy + Send + Sync + 'a,
{
    let Some(blocks) = paired_blocks(out.into(), out2.into(), block_len) else { return Ok(()) };
    first_error(blocks, init, |scratch, b, (block, block2)| {
        block.write_in_order(|sink| block2.write_in_order(|sink2| f(scratch, b, sink, sink2)))
    })
}

/// Like [`par_blocks`] for kernels that add into their output: each block is zeroed
/// right before `f` runs on it, by the thread that runs `f`.
///
/// Besides saving a serial clearing pass, this writes every page before reading it: a
/// kernel whose first touch of a fresh page is a read (`cell += v`) maps the shared zero
/// page and then pays a copy-on-write fault with a TLB shootdown across threads on its
/// first write (measured: max backward 2x slower on 2 threads than on 1). The block is
/// then still in cache for `f`.
pub(crate) fn par_blocks_accumulating<'a, T: Zeroable + Copy + Send + Sync + 'a>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    f: impl Fn(usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    par_blocks_accumulating_with(out, block_len, || Ok(()), |(), b, block| f(b, block))
}

/// Like [`par_blocks_accumulating`] with a scratch value per parallel job (see
/// [`par_blocks_with`]).
pub(crate) fn par_blocks_accumulating_with<'a, T: Zeroable + Copy + Send + Sync + 'a, S>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    let Some(blocks) = numbered_blocks(out.into(), block_len) else { return Ok(()) };
    first_error(blocks, init, |scratch, b, block| f(scratch, b, block.ready_zeroed()))
}

/// Like [`par_blocks`] with a scratch value per parallel job (made by `init`, which may
/// fail, e.g. out of memory), reused across the blocks that job runs.
pub(crate) fn par_blocks_with<'a, T: Zeroable + Copy + Send + Sync + 'a, S>(
    out: impl Into<Out<'a, T>>,
    block_len: usize,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    let Some(blocks) = numbered_blocks(out.into(), block_len) else { return Ok(()) };
    first_error(blocks, init, |scratch, b, block| f(scratch, b, block.ready()))
}

/// Like [`par_blocks_with`] over two outputs with matching blocks.
pub(crate) fn par_blocks2_with<'a, T, U, S>(
    out: impl Into<Out<'a, T>>,
    out2: impl Into<Out<'a, U>>,
    block_len: usize,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T], &mut [U]) -> Result<()> + Sync + Send,
) -> Result<()>
where
    T: Zeroable + Copy + Send + Sync + 'a,
    U: Zeroable + Copy + Send + Sync + 'a,
{
    let Some(blocks) = paired_blocks(out.into(), out2.into(), block_len) else { return Ok(()) };
    first_error(blocks, init, |scratch, b, (block, block2)| f(scratch, b, block.ready(), block2.ready()))
}

/// Runs `f(scratch, number, item)` on numbered items in parallel, a scratch per job from
/// `init`, and returns the error of the lowest-numbered item that failed (or whose
/// job's scratch failed), so the error does not depend on the thread count or on
/// timing: with two bad planes in two jobs, either could fail first. Items numbered
/// past a failure already met are skipped; those before it still run.
fn first_error<I: Send, S>(
    items: impl IndexedParallelIterator<Item = (usize, I)>,
    init: impl Fn() -> Result<S> + Sync + Send,
    f: impl Fn(&mut S, usize, I) -> Result<()> + Sync + Send,
) -> Result<()> {
    let lowest_failed = AtomicUsize::new(usize::MAX);
    let failure = items
        .map_init(init, |scratch, (b, item)| {
            if b > lowest_failed.load(Ordering::Relaxed) {
                return None;
            }
            let result = match scratch {
                Ok(scratch) => f(scratch, b, item),
                Err(error) => Err(error.clone()),
            };
            let error = result.err()?;
            lowest_failed.fetch_min(b, Ordering::Relaxed);
            Some((b, error))
        })
        .reduce(|| None, |x, y| [x, y].into_iter().flatten().min_by_key(|(b, _)| *b));
    failure.map_or(Ok(()), |(_, error)| Err(error))
}

/// The `block_len`-sized blocks of `out` with their numbers, in parallel; `None` when
/// there are none.
fn numbered_blocks<'a, T: Zeroable + Copy + Send + Sync + 'a>(
    out: Out<'a, T>,
    block_len: usize,
) -> Option<impl IndexedParallelIterator<Item = (usize, OutBlock<'a, T>)>> {
    (block_len > 0 && out.len() > 0).then(|| out.blocks(block_len).enumerate())
}

/// A block number with the two outputs' blocks of that number.
type NumberedPair<'a, T, U> = (usize, (OutBlock<'a, T>, OutBlock<'a, U>));

/// The matching blocks of two outputs, numbered (see [`numbered_blocks`]).
fn paired_blocks<'a, T, U>(
    out: Out<'a, T>,
    out2: Out<'a, U>,
    block_len: usize,
) -> Option<impl IndexedParallelIterator<Item = NumberedPair<'a, T, U>>>
where
    T: Zeroable + Copy + Send + Sync + 'a,
    U: Zeroable + Copy + Send + Sync + 'a,
{
    (block_len > 0 && out.len() > 0).then(|| out.blocks(block_len).zip(out2.blocks(block_len)).enumerate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_divide_the_plane_and_fit() {
        // W2 channels-last (28x28 outputs, 128 lanes of f32 + i64): 112 positions, 168 KiB.
        assert_eq!(band_outputs(784, 128 * 12), 112);
        for (volume, bytes) in [(784usize, 1536usize), (16384, 384), (1009, 1536), (7, 4), (0, 8), (1 << 20, 1)] {
            let band = band_outputs(volume, bytes);
            assert!(band >= 1 && volume % band == 0, "{volume} {bytes}: {band}");
            assert!(band == volume || band * bytes <= BAND_BYTES, "{volume} {bytes}: {band}");
            assert!(band == volume.max(1) || band * bytes >= 16 << 10, "{volume} {bytes}: {band}");
        }
        // A prime plane cannot be split into blocks worth a job: it stays whole.
        assert_eq!(band_outputs(1009, 1536), 1009);
    }
}
