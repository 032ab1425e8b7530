//! Max pooling forward: the maximum of each window and its flat spatial index.
//!
//! PyTorch's rule: start at the type's lowest value with the index of the first valid
//! tap, and take any tap with `v > max || isnan(v)`; so ties go to the first tap and a
//! NaN to the last NaN. A window with no valid tap gives the lowest value and index -1.
//!
//! Starting from the first valid tap itself instead gives the same value and index (a
//! first tap that does not beat the lowest value *is* the lowest value), which is what
//! the vectorised paths do. The paths ([`Path`]), each covered by the reference tests:
//! - channels-first rows ([`plane_rows`]): per output row, the complete windows
//!   ([`Interior`](super::window::Interior)) are computed for many outputs at once, one
//!   tap at a time; the windows at the edges go through [`reduce`];
//! - channels-first 1-D/2-D with large contiguous windows ([`sparse`]): range-maximum
//!   tables, whose cost per output does not grow with the window;
//! - channels-first without long runs (global, adaptive, narrow planes): groups of
//!   [`PLANE_GROUP`] planes interleaved into a channels-last copy, then as channels-last;
//! - channels-last ([`lane_chunks`]): per window, blocks of [`LANE_CHUNK`] channels at once;
//! - channels-last and interleaved plane groups with large windows ([`separable`]): one
//!   spatial dim at a time, whose cost per output grows with the sum of the window's
//!   extents, not their product;
//! - planes over 2^32 cells ([`plain`]): [`reduce`] per window and lane.

use super::buffer::{self, Out, Sink};
use super::separable::Reduction;
use super::window::{chunk_starts, split_phases, Rows, Window, Windows, RUN_CHUNK};
use super::{
    band_outputs, deinterleave_planes, interleave_planes, separable, sparse, Path, PLANE_GROUP, TAP_MAJOR_LANES,
};
use super::{par_blocks2, par_blocks2_in_order, par_blocks2_with, par_blocks2_with_in_order};
use crate::error::Result;
use crate::simd::{self, Isa};
use crate::tensor::{Blocking, MaxElement};
use std::ops::Range;

/// What the forward records of each window's argmax: PyTorch's flat spatial index
/// (`i64`, -1 for a window with no valid tap) or the compact window-local tap number
/// (`u8`: the position among the window's valid taps in row-major order, for windows of
/// at most 256 taps; 0 for an empty window, which sends no gradient anyway).
pub(crate) trait Argmax: Copy + Send + Sync + bytemuck::Zeroable + 'static {
    /// Whether this records tap numbers (else flat indices).
    const COMPACT: bool;
    /// The record of a window with no valid tap.
    const EMPTY: Self;
    /// From a vectorised path's `u32`: a tap number if [`Self::COMPACT`], else a flat index.
    fn from_u32(a: u32) -> Self;
    /// From flat index `flat`, tap number `tap` of its window.
    fn pick(flat: usize, tap: usize) -> Self;
}

impl Argmax for i64 {
    const COMPACT: bool = false;
    const EMPTY: Self = -1;
    #[inline(always)]
    fn from_u32(a: u32) -> Self {
        i64::from(a)
    }
    #[inline(always)]
    fn pick(flat: usize, _tap: usize) -> Self {
        flat as i64
    }
}

impl Argmax for u8 {
    const COMPACT: bool = true;
    const EMPTY: Self = 0;
    #[inline(always)]
    fn from_u32(a: u32) -> Self {
        a as u8
    }
    #[inline(always)]
    fn pick(_flat: usize, tap: usize) -> Self {
        tap as u8
    }
}

/// The scan rule: a later tap's value `v` takes the place of the running maximum `best`
/// when it is greater or NaN (PyTorch's rule: ties go to the first tap, NaN to the last
/// NaN). A non-short-circuit `|`, so that loops of it compile to selects, not branches.
#[inline(always)]
pub(crate) fn takes_over<T: MaxElement>(v: T, best: T) -> bool {
    v.gt(best) | v.is_nan()
}

/// Reduces one window of one lane: `cells` are its valid taps' flat spatial indices in
/// row-major window order, `at(s)` reads spatial cell `s`.
#[inline(always)]
fn reduce<T: MaxElement, A: Argmax>(cells: impl IntoIterator<Item = usize>, at: impl Fn(usize) -> T) -> (T, A) {
    let mut cells = cells.into_iter().peekable();
    let mut best = T::lowest();
    let mut arg = cells.peek().map_or(A::EMPTY, |&s| A::pick(s, 0));
    for (tap, s) in cells.enumerate() {
        let v = at(s);
        if takes_over(v, best) {
            best = v;
            arg = A::pick(s, tap);
        }
    }
    (best, arg)
}

/// Forward with the same windows for every plane (regular, adaptive, global).
pub(crate) fn forward<T: MaxElement, A: Argmax>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    out: Out<'_, T>,
    indices: Out<'_, A>,
) -> Result<()> {
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    // AVX-512 pays on the range-maximum planes (SPPF 5x5 and 13x13 channels-first forward:
    // 1.4-1.5x AVX2). On the window loops it pays where 512-bit operations run at full
    // width (Intel Xeon, channels-last forward W2 1.34-1.43x, W6 3-D 1.49-1.53x) and
    // slows them down on AMD Zen 4 (0.75-0.9x).
    let widest = simd::current();
    let isa = if simd::full_width_avx512() { widest } else { widest.at_most(Isa::Avx2) };
    if blocking.lanes == 1 && sparse::worthwhile(windows) {
        let rows = windows.rows()?;
        let row_axis = windows.axes().first().filter(|_| windows.axes().len() == 2);
        return par_blocks2_with(
            out,
            indices,
            ov,
            || Ok(sparse::Scratch::new()),
            |scratch, b, out, indices| {
                let x = &x[b * iv..][..iv];
                widest.run(
                    #[inline(always)]
                    || sparse::plane::<T, A>(x, &rows, row_axis, scratch, out, indices),
                )
            },
        );
    }
    match Path::choose(blocking, windows)? {
        Path::Rows(rows) => {
            // On the rows, the full-width AVX-512 paid with 4 taps or more (1-D 5 taps
            // 1.38x, 2x2 1.26x, W1's 3x3 1.39-1.56x) and lost with fewer (1-D 3 taps
            // 0.85x, 2 taps 0.74x).
            let isa = if rows.most_run_taps() >= 4 { isa } else { isa.at_most(Isa::Avx2) };
            par_blocks2(out, indices, ov, |b, out, indices| {
                let x = &x[b * iv..][..iv];
                isa.run(
                    #[inline(always)]
                    || plane_rows(x, &rows, out, indices),
                )
            })
        }
        Path::PlaneGroups => par_blocks2_with_in_order(
            out,
            indices,
            PLANE_GROUP * ov,
            || {
                let best = buffer::filled(PLANE_GROUP * ov, T::lowest(), "scratch")?;
                let arg = buffer::filled(PLANE_GROUP * ov, A::EMPTY, "scratch")?;
                Ok((Vec::new(), best, arg, separable::Scratch::new()))
            },
            |(interleaved, best, arg, stages), g, out, indices| {
                let planes = out.len() / ov;
                let x = &x[g * PLANE_GROUP * iv..][..planes * iv];
                if planes < PLANE_GROUP {
                    let (best, arg) = (&mut best[..planes * ov], &mut arg[..planes * ov]);
                    plain(x, 1, windows, best, arg)?;
                    out.extend(best);
                    indices.extend(arg);
                    return Ok(());
                }
                isa.run(
                    #[inline(always)]
                    || {
                        interleave_planes(x, iv, interleaved)?;
                        if separable::worthwhile(windows, PLANE_GROUP, Reduction::Max) {
                            separable::block(interleaved, PLANE_GROUP, windows, stages, best, arg)?;
                        } else {
                            let (best, arg) = (&mut Sink::over(best), &mut Sink::over(arg));
                            lane_chunks(interleaved, PLANE_GROUP, windows, 0..ov, best, arg)?;
                        }
                        deinterleave_planes(best, ov, out);
                        deinterleave_planes(arg, ov, indices);
                        Ok(())
                    },
                )
            },
        ),
        Path::LaneChunks if separable::worthwhile(windows, blocking.lanes, Reduction::Max) => {
            let lanes = blocking.lanes;
            par_blocks2_with(
                out,
                indices,
                ov * lanes,
                || Ok(separable::Scratch::new()),
                |scratch, b, out, indices| {
                    let x = &x[b * iv * lanes..][..iv * lanes];
                    isa.run(
                        #[inline(always)]
                        || separable::block(x, lanes, windows, scratch, out, indices),
                    )
                },
            )
        }
        Path::LaneChunks => {
            let lanes = blocking.lanes;
            let band = band_outputs(ov, lanes * (size_of::<T>() + size_of::<A>()));
            par_blocks2_in_order(out, indices, band * lanes, |block, out, indices| {
                let (b, first) = (block / (ov / band), block % (ov / band) * band);
                let x = &x[b * iv * lanes..][..iv * lanes];
                isa.run(
                    #[inline(always)]
                    || lane_chunks(x, lanes, windows, first..first + band, out, indices),
                )
            })
        }
        Path::Plain => {
            let lanes = blocking.lanes;
            par_blocks2(out, indices, ov * lanes, |b, out, indices| {
                plain(&x[b * iv * lanes..][..iv * lanes], lanes, windows, out, indices)
            })
        }
    }
}

/// Every window of one block, one lane at a time, with [`reduce`].
fn plain<T: MaxElement, A: Argmax>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    out: &mut [T],
    indices: &mut [A],
) -> Result<()> {
    let planes = out.len() / (windows.output_volume * lanes).max(1);
    for plane in 0..planes {
        let x = &x[plane * windows.input_volume * lanes..][..windows.input_volume * lanes];
        let at = plane * windows.output_volume * lanes;
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let at = at + o * lanes + lane;
                (out[at], indices[at]) = reduce(window.cells.iter().copied(), |s| x[s * lanes + lane]);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// One channels-first plane, row by row of the output.
#[inline(always)]
fn plane_rows<T: MaxElement, A: Argmax>(x: &[T], rows: &Rows, out: &mut [T], indices: &mut [A]) -> Result<()> {
    let (ow, width) = (rows.out_cols, rows.width);
    let mut phases = Vec::new();
    if rows.phased {
        split_phases(x, width, 2, &mut phases)?;
    }
    rows.outer.for_each(
        #[inline(always)]
        |orow, outer| {
            let lines = outer.cells;
            let out = &mut out[orow * ow..][..ow];
            let indices = &mut indices[orow * ow..][..ow];
            let run = rows.run_of(orow);
            let (lo, hi) = run.map_or((ow, ow), |(r, _)| (r.first, r.end));
            for ocol in (0..lo).chain(hi..ow) {
                let (cols, _) = rows.cols.window(ocol);
                let cells = lines.iter().flat_map(|&r| cols.iter().map(move |&c| r * width + c));
                (out[ocol], indices[ocol]) = reduce(cells, |s| x[s]);
            }
            let Some((run, taps)) = run else { return Ok(()) };
            let (out, indices) = (&mut out[run.first..run.end], &mut indices[run.first..run.end]);
            match run.stride {
                1 => run_chunks::<T, A, 1>(x, taps, 1, 1, out, indices),
                2 => run_chunks::<T, A, 1>(&phases, taps, 1, 2, out, indices),
                s => run_chunks::<T, A, 0>(x, taps, s, s, out, indices),
            }
            Ok(())
        },
    )
}

/// Max and argmax of a run of at least [`RUN_CHUNK`] complete windows. Each tap is
/// `(position in source, flat index)` for the run's first output; output `i` reads
/// `source[position + i·source_step]`, whose flat index is `flat + i·flat_step`.
/// `STEP` fixes `source_step` at compile time (0: use the argument), so the
/// contiguous case vectorises. The last chunk overlaps the one before it rather than
/// falling back to scalar code (recomputing an output gives the same value).
#[inline(always)]
fn run_chunks<T: MaxElement, A: Argmax, const STEP: usize>(
    source: &[T],
    taps: &[(usize, u32)],
    source_step: usize,
    flat_step: usize,
    out: &mut [T],
    indices: &mut [A],
) {
    let step = if STEP == 0 { source_step } else { STEP };
    let Some((&(first, first_flat), rest)) = taps.split_first() else { return };
    let n = out.len().min(indices.len());
    if n < RUN_CHUNK {
        return;
    }
    let span = (RUN_CHUNK - 1) * step + 1;
    let mut lanes_flat = [0u32; RUN_CHUNK];
    for (i, f) in lanes_flat.iter_mut().enumerate() {
        *f = (i * flat_step) as u32;
    }
    for start in chunk_starts(n, RUN_CHUNK) {
        let shift = start * step;
        let flat_shift = (start * flat_step) as u32;
        let mut best = [T::lowest(); RUN_CHUNK];
        let mut arg = [0u32; RUN_CHUNK];
        let values = &source[first + shift..][..span];
        for i in 0..RUN_CHUNK {
            best[i] = values[i * step];
            arg[i] = if A::COMPACT { 0 } else { first_flat + flat_shift + lanes_flat[i] };
        }
        for (tap, &(position, flat)) in rest.iter().enumerate() {
            let values = &source[position + shift..][..span];
            let base = flat + flat_shift;
            for i in 0..RUN_CHUNK {
                let v = values[i * step];
                let take = takes_over(v, best[i]);
                best[i] = T::select(take, v, best[i]);
                let here = if A::COMPACT { tap as u32 + 1 } else { base + lanes_flat[i] };
                arg[i] = if take { here } else { arg[i] };
            }
        }
        out[start..start + RUN_CHUNK].copy_from_slice(&best);
        for (index, &a) in indices[start..start + RUN_CHUNK].iter_mut().zip(&arg) {
            *index = A::from_u32(a);
        }
    }
}

/// Channels per block of the channels-last path.
const LANE_CHUNK: usize = 16;

/// The `outputs` of one channels-last block, written in order. Windows that read their
/// input about once ([`Windows::read_input_about_once`]) take one tap at a time over all
/// channels (running maxima and arguments in cache), reading each tap's cell front to
/// back; overlapping windows keep [`LANE_CHUNK`] channels' maxima in registers across
/// the taps (as the average's [`super::avg`] channels-last path). Both take each
/// channel's taps in window order.
#[inline(always)]
fn lane_chunks<T: MaxElement, A: Argmax>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    outputs: Range<usize>,
    out: &mut Sink<'_, T>,
    indices: &mut Sink<'_, A>,
) -> Result<()> {
    let tap_major = lanes >= TAP_MAJOR_LANES && windows.read_input_about_once();
    // Two pairs of running maxima and arguments, for the tap-major order: each tap reads
    // one pair and writes the other. Updated in place, `best = select(take, v, best)`
    // compiles to AVX2 masked stores (`vmaskmovps`), which AMD Zen 4 microcodes: the
    // in-place loop took 3.2x the time of this one on W2 channels-last.
    let scratch_len = if tap_major { lanes } else { 0 };
    let mut best =
        [buffer::filled(scratch_len, T::lowest(), "scratch")?, buffer::filled(scratch_len, T::lowest(), "scratch")?];
    let mut arg = [buffer::filled(scratch_len, 0u32, "scratch")?, buffer::filled(scratch_len, 0u32, "scratch")?];
    windows.for_each_in(
        outputs,
        #[inline(always)]
        |_, window: &Window<'_>| {
            let first = if A::COMPACT { 0 } else { window.cells.first().map_or(0, |&s| s as u32) };
            let empty = window.cells.is_empty();
            let index = |a: u32| if empty { A::EMPTY } else { A::from_u32(a) };
            if tap_major {
                let Some((&s, rest)) = window.cells.split_first() else {
                    out.repeat(T::lowest(), lanes);
                    indices.repeat(A::EMPTY, lanes);
                    return Ok(());
                };
                // The first tap is every lane's running maximum; then taps alternate
                // between the pairs.
                best[0].copy_from_slice(&x[s * lanes..][..lanes]);
                arg[0].fill(first);
                for (tap, &s) in rest.iter().enumerate() {
                    let here = if A::COMPACT { tap as u32 + 1 } else { s as u32 };
                    let values = &x[s * lanes..][..lanes];
                    let ([b0, b1], [a0, a1]) = (&mut best, &mut arg);
                    if tap % 2 == 0 {
                        take_greater_into(values, here, b0, a0, b1, a1);
                    } else {
                        take_greater_into(values, here, b1, a1, b0, a0);
                    }
                }
                let last = rest.len() % 2;
                out.extend(&best[last]);
                indices.extend_map(&arg[last], index);
                return Ok(());
            }
            let mut c0 = 0;
            while c0 + LANE_CHUNK <= lanes {
                let mut chunk_best = [T::lowest(); LANE_CHUNK];
                let mut chunk_arg = [first; LANE_CHUNK];
                for (tap, &s) in window.cells.iter().enumerate() {
                    let taps: &[T; LANE_CHUNK] = x[s * lanes + c0..][..LANE_CHUNK].try_into().expect("chunk length");
                    let here = if A::COMPACT { tap as u32 } else { s as u32 };
                    take_greater(taps, here, &mut chunk_best, &mut chunk_arg);
                }
                out.extend(&chunk_best);
                indices.extend(&chunk_arg.map(index));
                c0 += LANE_CHUNK;
            }
            for lane in c0..lanes {
                let (value, arg) = reduce(window.cells.iter().copied(), |s| x[s * lanes + lane]);
                out.push(value);
                indices.push(arg);
            }
            Ok(())
        },
    )
}

/// One tap of a window for every lane: where `values` is greater than the running
/// maximum `best` or NaN ([`takes_over`]), it takes its place and `here`
/// becomes the lane's argument.
#[inline(always)]
fn take_greater<T: MaxElement>(values: &[T], here: u32, best: &mut [T], arg: &mut [u32]) {
    for ((b, a), &v) in best.iter_mut().zip(arg.iter_mut()).zip(values) {
        let take = takes_over(v, *b);
        *b = T::select(take, v, *b);
        *a = if take { here } else { *a };
    }
}

/// [`take_greater`] from one pair of running maxima and arguments into another (so the
/// loop stores whole vectors, never masked ones).
#[inline(always)]
fn take_greater_into<T: MaxElement>(
    values: &[T],
    here: u32,
    best: &[T],
    arg: &[u32],
    best_to: &mut [T],
    arg_to: &mut [u32],
) {
    let n = values.len();
    let (best, arg, best_to, arg_to) = (&best[..n], &arg[..n], &mut best_to[..n], &mut arg_to[..n]);
    for i in 0..n {
        let (v, b) = (values[i], best[i]);
        let take = takes_over(v, b);
        best_to[i] = T::select(take, v, b);
        arg_to[i] = if take { here } else { arg[i] };
    }
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
                (out[o * lanes + lane], indices[o * lanes + lane]) =
                    reduce(window.cells.iter().copied(), |s| x[s * lanes + lane]);
                Ok(())
            })?;
        }
        Ok(())
    })
}
