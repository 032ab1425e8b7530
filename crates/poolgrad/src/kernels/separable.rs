//! Max and average pooling one spatial dim at a time: the cost per output grows with the
//! sum of the window's extents instead of their product (a 13x13 window: 26 comparisons
//! or additions, not 169). Average pooling's sums are covered at [`mean_block`].
//!
//! Every window is the product of its per-dim tap lists, so its maximum is the maximum
//! over the first dim's taps of the maxima over the rest. Reducing the last dim first,
//! then the one before it, and so on, with the rule of [`super::max`] (`v > max ||
//! isnan(v)`, taps in order) at every step picks the same tap as the row-major scan:
//! - without NaN, a later slab wins only with a strictly larger maximum, and inside the
//!   winning slab the first maximum won already: the first maximum in row-major order;
//! - with NaN, the last slab holding a NaN wins, and inside it the last NaN: the last
//!   NaN in row-major order.
//!
//! So values and indices are bitwise those of the direct loop. Channels are processed
//! [`WIDE_MAX_CHUNK`] (or [`CHUNK`]) at a time; each chunk's intermediate maxima stay in a
//! per-job scratch.
//!
//! Average pooling of 2-D planes goes a row at a time instead ([`mean_block_by_rows`],
//! [`share_block_by_rows`], and [`mean_plane`] for channels-first planes), through a ring
//! of row sums: every input row is read once, front to back, and the additions are those
//! of the chunked stages, in the same order, so the bits are too.

use super::avg::Divisor;
use super::buffer;
use super::buffer::Sink;
use super::max::{takes_over, Argmax};
use super::window::{AxisWindows, Interior, Windows};
use crate::error::{PoolError, Result};
use crate::tensor::{Element, MaxElement};
use std::ops::Range;

/// Channels reduced together: the inner loops run over this many lanes.
const CHUNK: usize = 16;

/// Channels per pass of the max [`block`] when there are that many: twice [`CHUNK`]
/// halves the passes over the block (SPPF 13x13 channels-last forward 1.13x, f16 1.4x);
/// four times is slower (0.88x), its running maxima no longer fit in registers.
const WIDE_MAX_CHUNK: usize = 2 * CHUNK;

/// The argmax record of a window with no valid tap, while reducing.
const EMPTY: u32 = u32::MAX;

/// What a separable pass reduces: the maximum (with its argument) or the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduction {
    /// Max pooling: each direct tap costs a comparison and two selects.
    Max,
    /// Average pooling: each direct tap costs one addition.
    Sum,
}

/// Whether the separable path pays for these windows with `lanes` interleaved channels:
/// at least two spatial dims, enough channels to fill the chunks, stages of at most
/// [`STAGE_LIMIT`] cells, and a count of taps well below the direct scan's.
///
/// The direct scan visits every tap of every window: the product over the dims of their
/// total taps. Reducing dim `d` visits, for each of its windows' taps, every position of
/// the dims before it (still input) and after it (already output); copying the chunks in
/// and out adds a visit per input and output cell. Measured on 16x256x40x40 at stride 1,
/// where 5x5 windows take about 2x the separable count directly (2.01x): the sums'
/// direct loop is cheap enough that 5x5 is faster direct (2x), 7x7 and larger separable,
/// hence the factor 2.5 for [`Reduction::Sum`]; the maxima's direct loop does more per
/// tap, and 5x5 is 1.3x faster separable, hence the factor 2 for [`Reduction::Max`].
pub(crate) fn worthwhile(windows: &Windows, lanes: usize, reduction: Reduction) -> bool {
    let axes = windows.axes();
    let direct = axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.total_taps()));
    let separable = (0..axes.len()).try_fold(windows.input_volume.saturating_add(windows.output_volume), |acc, d| {
        let before = axes[..d].iter().try_fold(1usize, |p, a| p.checked_mul(a.input()))?;
        let after = axes[d + 1..].iter().try_fold(1usize, |p, a| p.checked_mul(a.output()))?;
        acc.checked_add(before.checked_mul(after)?.checked_mul(axes[d].total_taps())?)
    });
    axes.len() >= 2
        && lanes >= CHUNK / 2
        && largest_stage(axes, AxisWindows::input, AxisWindows::output).is_some_and(|cells| cells <= STAGE_LIMIT)
        && largest_stage(axes, AxisWindows::output, AxisWindows::input).is_some_and(|cells| cells <= STAGE_LIMIT)
        && matches!((direct, separable), (Some(d), Some(s)) if match reduction {
            Reduction::Max => s.saturating_mul(2) < d,
            Reduction::Sum => s.saturating_mul(5) < d.saturating_mul(2),
        })
}

/// The most cells a stage may hold: its scratch takes up to 32 values and 32 `u32`
/// records a cell, twice (32 MiB for f32), so very large planes keep the direct scan,
/// which needs no scratch. This also keeps flat indices and [`EMPTY`] apart in a `u32`.
const STAGE_LIMIT: usize = 1 << 16;

/// The cells of the largest stage when a plane goes, last dim first, from the extents
/// `from` gives to those `to` gives: input to output (the forwards), output to input
/// (the average backward). Partly converted planes can be larger than either end when
/// windows overhang the input. `None` when that overflows.
fn largest_stage(
    axes: &[AxisWindows],
    from: fn(&AxisWindows) -> usize,
    to: fn(&AxisWindows) -> usize,
) -> Option<usize> {
    let mut extents: Vec<usize> = axes.iter().map(from).collect();
    let mut largest = extents.iter().try_fold(1usize, |p, &e| p.checked_mul(e))?;
    for d in (0..axes.len()).rev() {
        extents[d] = to(&axes[d]);
        largest = largest.max(extents.iter().try_fold(1usize, |p, &e| p.checked_mul(e))?);
    }
    Some(largest)
}

/// Per-job buffers: two stages of chunk values and their argmax records.
pub(crate) struct Scratch<T> {
    values: [Vec<T>; 2],
    args: [Vec<u32>; 2],
    /// Compact records, per dim: window taps behind one position of the dims after it.
    taps_after: Vec<Vec<u32>>,
}

impl<T> Scratch<T> {
    pub fn new() -> Self {
        Scratch { values: [Vec::new(), Vec::new()], args: [Vec::new(), Vec::new()], taps_after: Vec::new() }
    }
}

/// Max pooling of one channels-last block of `lanes` interleaved channels: `x` holds
/// `input_volume · lanes` values, `out` and `indices` `output_volume · lanes`.
///
/// Per chunk of channels, the block is copied into the scratch, reduced there one dim at
/// a time, and copied out.
#[inline(always)]
pub(crate) fn block<T: MaxElement, A: Argmax>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    indices: &mut [A],
) -> Result<()> {
    let by_rows = match windows.axes() {
        [rows, cols] => ring_rows(rows).filter(|&ring| ring <= MAX_RING_ROWS).map(|ring| ([rows, cols], ring)),
        _ => None,
    };
    match (by_rows, lanes >= WIDE_MAX_CHUNK) {
        (Some((axes, ring)), true) => {
            block_by_rows::<T, A, WIDE_MAX_CHUNK>(x, lanes, axes, ring, scratch, out, indices)
        }
        (Some((axes, ring)), false) => block_by_rows::<T, A, CHUNK>(x, lanes, axes, ring, scratch, out, indices),
        (None, true) => block_in_chunks::<T, A, WIDE_MAX_CHUNK>(x, lanes, windows, scratch, out, indices),
        (None, false) => block_in_chunks::<T, A, CHUNK>(x, lanes, windows, scratch, out, indices),
    }
}

/// [`block`] of a 2-D block a row at a time: each input row's maxima along the last dim
/// go into a ring of `ring` rows (values and records), in ascending row order as the
/// windows of the output rows need them, and each output reduces its window's rows of
/// the ring. The comparisons are [`block_in_chunks`]'s, in its order, on the same values
/// and records, so the results are too; but the input is read once, row by row, and the
/// intermediate maxima stay in the ring, where the chunked stages copy the whole block
/// through two scratch stages per chunk of channels.
#[inline(always)]
fn block_by_rows<T: MaxElement, A: Argmax, const W: usize>(
    x: &[T],
    lanes: usize,
    [rows, cols]: [&AxisWindows; 2],
    ring: usize,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    indices: &mut [A],
) -> Result<()> {
    let (width, outputs) = (cols.input(), cols.output());
    // Lanes per pass: whole chunks, as many as the ring's bytes allow.
    let (row_cells, group) = ring_lanes::<(T, u32)>(ring, outputs, lanes);
    let group = group.div_ceil(W) * W;
    let ring_len = row_cells.saturating_mul(group);
    buffer::resize(&mut scratch.values[0], ring_len, T::lowest(), "ring of row maxima")?;
    buffer::resize(&mut scratch.args[0], ring_len, 0, "ring of row maxima")?;
    if A::COMPACT {
        scratch.taps_after.resize_with(1, Vec::new);
        taps_after(std::slice::from_ref(cols), &mut scratch.taps_after[0])?;
    }
    let (ring_v, ring_a) = (&mut scratch.values[0], &mut scratch.args[0]);
    for l0 in (0..lanes).step_by(group) {
        let slot = |row: usize| (row % ring) * outputs * group;
        let mut next_row = 0;
        for y in 0..rows.output() {
            let row_taps = rows.window(y).0;
            if let (Some(&first), Some(&last)) = (row_taps.first(), row_taps.last()) {
                for r in next_row.max(first)..=last {
                    let at = slot(r);
                    let (best, record) = (&mut ring_v[at..][..outputs * group], &mut ring_a[at..][..outputs * group]);
                    for o in 0..outputs {
                        for c0 in (0..group.min(lanes - l0)).step_by(W) {
                            let chunk = l0 + c0..lanes.min(l0 + c0 + W);
                            let to = (&mut best[o * group + c0..][..W], &mut record[o * group + c0..][..W]);
                            row_maxima::<T, W>(x, lanes, chunk, r * width, cols.window(o).0, A::COMPACT, to);
                        }
                    }
                }
                next_row = next_row.max(last + 1);
            }
            for o in 0..outputs {
                let cell = y * outputs + o;
                let after = if A::COMPACT { scratch.taps_after[0][o] } else { 0 };
                for c0 in (0..group.min(lanes - l0)).step_by(W) {
                    let chunk = W.min(lanes - l0 - c0);
                    let (b, r) = match row_taps.split_first() {
                        None => ([T::lowest(); W], [EMPTY; W]),
                        Some((&first, rest)) => {
                            let at = |row: usize| slot(row) + o * group + c0;
                            let mut b: [T; W] = ring_v[at(first)..][..W].try_into().expect("chunk length");
                            let mut r: [u32; W] = ring_a[at(first)..][..W].try_into().expect("chunk length");
                            for (t, &row) in rest.iter().enumerate() {
                                let v: &[T; W] = ring_v[at(row)..][..W].try_into().expect("chunk length");
                                let a: &[u32; W] = ring_a[at(row)..][..W].try_into().expect("chunk length");
                                take_over_chunk(v, a, (t as u32 + 1).wrapping_mul(after), &mut b, &mut r);
                            }
                            (b, r)
                        }
                    };
                    let at = cell * lanes + l0 + c0;
                    store::<T, A, W>(&b, &r, &mut out[at..][..chunk], &mut indices[at..][..chunk]);
                }
            }
        }
    }
    Ok(())
}

/// The maxima and records of `W` lanes from `chunk.start` (those in `chunk` real, the
/// rest at the lowest value) over the taps `taps` of the input row whose first cell is
/// `row`:
/// records start as the flat cell (or tap 0 when `compact`), the first stage of
/// [`block_in_chunks`] on the values [`load_chunks`] would copy.
#[inline(always)]
fn row_maxima<T: MaxElement, const W: usize>(
    x: &[T],
    lanes: usize,
    chunk: Range<usize>,
    row: usize,
    taps: &[usize],
    compact: bool,
    (best, record): (&mut [T], &mut [u32]),
) {
    let (l0, width) = (chunk.start, chunk.len());
    let Some((&first, rest)) = taps.split_first() else {
        best.fill(T::lowest());
        record.fill(EMPTY);
        return;
    };
    let record_of = |c: usize| if compact { 0 } else { (row + c) as u32 };
    // Along the last dim a compact record is the tap itself (one tap after it); a flat
    // one the cell.
    let scale = |t: usize| if compact { t as u32 + 1 } else { 0 };
    let at = |c: usize| (row + c) * lanes + l0;
    let mut r = [record_of(first); W];
    if width == W {
        // Whole chunks read in place: no copy for the compiler to keep on the stack.
        let mut b: [T; W] = x[at(first)..][..W].try_into().expect("chunk length");
        for (t, &c) in rest.iter().enumerate() {
            let v: &[T; W] = x[at(c)..][..W].try_into().expect("chunk length");
            take_over_chunk(v, &[record_of(c); W], scale(t), &mut b, &mut r);
        }
        best.copy_from_slice(&b);
        record.copy_from_slice(&r);
        return;
    }
    let load = |c: usize| -> [T; W] { std::array::from_fn(|l| if l < width { x[at(c) + l] } else { T::lowest() }) };
    let mut b = load(first);
    for (t, &c) in rest.iter().enumerate() {
        take_over_chunk(&load(c), &[record_of(c); W], scale(t), &mut b, &mut r);
    }
    best.copy_from_slice(&b);
    record.copy_from_slice(&r);
}

/// One tap of a chunk of running maxima `b` and records `r`: where `v` takes over
/// ([`takes_over`]), its value, and its record `a` plus `scale`.
#[inline(always)]
fn take_over_chunk<T: MaxElement, const W: usize>(
    v: &[T; W],
    a: &[u32; W],
    scale: u32,
    b: &mut [T; W],
    r: &mut [u32; W],
) {
    for l in 0..W {
        let take = takes_over(v[l], b[l]);
        b[l] = T::select(take, v[l], b[l]);
        // A mask rather than `if`, so the record blend vectorises too.
        let mask = u32::from(take).wrapping_neg();
        r[l] = (scale.wrapping_add(a[l]) & mask) | (r[l] & !mask);
    }
}

/// [`block`], `W` channels per pass.
#[inline(always)]
fn block_in_chunks<T: MaxElement, A: Argmax, const W: usize>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    indices: &mut [A],
) -> Result<()> {
    let axes = windows.axes();
    let rank = axes.len();
    let largest = largest_stage(axes, AxisWindows::input, AxisWindows::output)
        .ok_or(PoolError::Overflow { what: "separable stage" })?;
    let len = largest.saturating_mul(W);
    if A::COMPACT {
        // The same for every chunk of channels: worked out once per block.
        scratch.taps_after.resize_with(rank, Vec::new);
        for d in 0..rank {
            taps_after(&axes[d + 1..], &mut scratch.taps_after[d])?;
        }
    }
    for stage in 0..2 {
        buffer::resize(&mut scratch.values[stage], len, T::lowest(), "separable stage")?;
        buffer::resize(&mut scratch.args[stage], len, 0, "separable stage")?;
    }
    for c0 in (0..lanes).step_by(W) {
        let width = W.min(lanes - c0);
        load_chunks::<T, W>(x, lanes, c0, width, A::COMPACT, &mut scratch.values[0], &mut scratch.args[0]);
        let mut extents: Vec<usize> = axes.iter().map(AxisWindows::input).collect();
        let mut from = 0;
        for d in (0..rank).rev() {
            let stage = Stage {
                outer: extents[..d].iter().product(),
                extent: extents[d],
                inner: extents[d + 1..].iter().product(),
                taps_after: if A::COMPACT { &scratch.taps_after[d] } else { &[] },
            };
            let [v0, v1] = &mut scratch.values;
            let [a0, a1] = &mut scratch.args;
            let ((src_v, src_a), (dst_v, dst_a)) =
                if from == 0 { ((&v0[..], &a0[..]), (v1, a1)) } else { ((&v1[..], &a1[..]), (v0, a0)) };
            stage.reduce::<T, W>(&axes[d], src_v, src_a, dst_v, dst_a);
            extents[d] = axes[d].output();
            from = 1 - from;
        }
        let ov = windows.output_volume;
        for (cell, (v, a)) in
            scratch.values[from].chunks_exact(W).zip(scratch.args[from].chunks_exact(W)).take(ov).enumerate()
        {
            store::<T, A, W>(v, a, &mut out[cell * lanes + c0..][..width], &mut indices[cell * lanes + c0..][..width]);
        }
    }
    Ok(())
}

/// Copies channels `c0..c0 + width` of every cell into chunk order, the missing lanes of
/// a last partial chunk at the lowest value; records start as the flat index (or tap 0).
#[inline(always)]
fn load_chunks<T: MaxElement, const W: usize>(
    x: &[T],
    lanes: usize,
    c0: usize,
    width: usize,
    compact: bool,
    values: &mut [T],
    records: &mut [u32],
) {
    let cells = x.len() / lanes;
    for (cell, (v, r)) in values.chunks_exact_mut(W).zip(records.chunks_exact_mut(W)).take(cells).enumerate() {
        let x = &x[cell * lanes + c0..];
        if width == W {
            // A fixed-size copy: inlined, where a copy of run-time length calls memmove.
            v.copy_from_slice(&x[..W]);
        } else {
            for (l, v) in v.iter_mut().enumerate() {
                *v = if l < width { x[l] } else { T::lowest() };
            }
        }
        r.fill(if compact { 0 } else { cell as u32 });
    }
}

/// Writes the first `out.len()` channels of a reduced chunk to the output.
#[inline(always)]
fn store<T: MaxElement, A: Argmax, const W: usize>(values: &[T], records: &[u32], out: &mut [T], indices: &mut [A]) {
    if out.len() == W {
        out.copy_from_slice(&values[..W]);
    } else {
        out.iter_mut().zip(values).for_each(|(out, &v)| *out = v);
    }
    for (index, &record) in indices.iter_mut().zip(records) {
        *index = if record == EMPTY { A::EMPTY } else { A::from_u32(record) };
    }
}

/// For compact records: `taps_after[i]`, the number of valid taps over the dims `axes`
/// (already reduced) at their output position `i` in row-major order. A tap `t` of the
/// dim being reduced becomes record `t · taps_after[i] + record`.
fn taps_after(axes: &[AxisWindows], taps_after: &mut Vec<u32>) -> Result<()> {
    taps_after.clear();
    buffer::reserve(taps_after, 1, "separable stage")?;
    taps_after.push(1);
    for axis in axes {
        let previous = std::mem::take(taps_after);
        buffer::reserve(taps_after, previous.len().saturating_mul(axis.output()), "separable stage")?;
        for &p in &previous {
            // Compact windows hold at most 256 taps, so this cannot overflow.
            taps_after.extend((0..axis.output()).map(|o| p.saturating_mul(axis.window(o).0.len() as u32)));
        }
    }
    Ok(())
}

/// One reduction along a dim of extent `extent`, between `outer` slabs before it and
/// `inner` positions after it (each a chunk of lanes). Compact records scale a tap by
/// `taps_after` (empty for flat-index records, which pass through unchanged).
struct Stage<'a> {
    outer: usize,
    extent: usize,
    inner: usize,
    taps_after: &'a [u32],
}

impl Stage<'_> {
    /// Reduces the chunks of `src_v` (values) and `src_a` (records) along the dim, window
    /// by window, into `dst_v` and `dst_a`; a stage's cells are row-major positions.
    #[inline(always)]
    fn reduce<T: MaxElement, const W: usize>(
        &self,
        axis: &AxisWindows,
        src_v: &[T],
        src_a: &[u32],
        dst_v: &mut [T],
        dst_a: &mut [u32],
    ) {
        let row = self.inner * W;
        let outputs = axis.output();
        for slab in 0..self.outer {
            for o in 0..outputs {
                let (taps, _) = axis.window(o);
                let at = (slab * outputs + o) * row;
                let (best, record) = (&mut dst_v[at..][..row], &mut dst_a[at..][..row]);
                let Some((&first, rest)) = taps.split_first() else {
                    best.fill(T::lowest());
                    record.fill(EMPTY);
                    continue;
                };
                let line = |c: usize| (slab * self.extent + c) * row;
                for i in 0..self.inner {
                    // The running maxima of one position stay in registers over all taps.
                    let at = |c: usize| line(c) + i * W;
                    let mut b: [T; W] = src_v[at(first)..][..W].try_into().expect("chunk length");
                    let mut r: [u32; W] = src_a[at(first)..][..W].try_into().expect("chunk length");
                    let after = self.taps_after.get(i).copied().unwrap_or(0);
                    for (t, &c) in rest.iter().enumerate() {
                        let v: &[T; W] = src_v[at(c)..][..W].try_into().expect("chunk length");
                        let a: &[u32; W] = src_a[at(c)..][..W].try_into().expect("chunk length");
                        take_over_chunk(v, a, (t as u32 + 1).wrapping_mul(after), &mut b, &mut r);
                    }
                    best[i * W..][..W].copy_from_slice(&b);
                    record[i * W..][..W].copy_from_slice(&r);
                }
            }
        }
    }
}

/// Per-job buffers of [`mean_block`]: two stages of chunk sums and each output's counts,
/// or for 2-D planes a ring of row sums, one output row's sums and the ring slots of a
/// window's rows.
pub(crate) struct SumScratch<S> {
    stages: [Vec<S>; 2],
    counts: Vec<usize>,
    ring: Vec<S>,
    sums: Vec<S>,
    slots: Vec<usize>,
}

impl<S> SumScratch<S> {
    pub fn new() -> Self {
        SumScratch {
            stages: [Vec::new(), Vec::new()],
            counts: Vec::new(),
            ring: Vec::new(),
            sums: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// The most bytes of row sums a 2-D block keeps ([`mean_block_by_rows`],
/// [`share_block_by_rows`]): the L2 cache of the machines measured. More channels go in
/// groups, each reading its share of every cell; on 256 channels of 40x40 with 13x13
/// windows (532 KB of rows) one group was 1.04-1.1x faster than a limit of 512 KiB (240
/// channels, then 16) and 1.2-1.8x faster than 128 KiB (64 at a time).
const RING_BYTES: usize = 1 << 20;

/// The most input rows a window of [`block_by_rows`] may span. On 16x256x40x40 at
/// stride 1 (channels-last, 1 thread) it took 0.69-0.72x the time of the chunked stages
/// for 5x5 windows, about the same for 9x9, and 1.17-1.22x for 13x13: there the chunked
/// stages' compact copy of the block serves the many taps better.
const MAX_RING_ROWS: usize = 5;

/// The cells of a ring of `ring` rows of `row_len` cells, and how many of `lanes`
/// channels a pass fills it with: as many as [`RING_BYTES`] holds, at least [`CHUNK`]
/// (and at least one, so that a block of no channels steps on).
fn ring_lanes<S>(ring: usize, row_len: usize, lanes: usize) -> (usize, usize) {
    let cells = ring.saturating_mul(row_len).max(1);
    let affordable = RING_BYTES / size_of::<S>() / cells / CHUNK * CHUNK;
    (cells, lanes.min(affordable.max(CHUNK)).max(1))
}

/// Whether [`mean_block`] sums these windows a row at a time ([`mean_block_by_rows`]).
pub(crate) fn sums_by_rows(windows: &Windows) -> bool {
    matches!(windows.axes(), [rows, _] if ring_rows(rows).is_some())
}

/// The rows of sums a ring must hold for windows along the first of two dims, rows being
/// summed in ascending order as the windows need them: the largest span of a window's
/// taps, when each window's taps ascend and neither its first nor its last tap comes
/// before the previous window's (true of the windows pooling makes); `None` otherwise.
fn ring_rows(axis: &AxisWindows) -> Option<usize> {
    ring_span(axis.output(), |o| axis.window(o).0)
}

/// The largest span of `lists(0), ..., lists(n - 1)` if each ascends and neither its first
/// nor its last element comes before the previous list's; `None` otherwise.
fn ring_span<'a>(n: usize, lists: impl Fn(usize) -> &'a [usize]) -> Option<usize> {
    let (mut span, mut previous) = (1, (0, 0));
    for o in 0..n {
        let taps = lists(o);
        let (Some(&first), Some(&last)) = (taps.first(), taps.last()) else { continue };
        if !taps.is_sorted() || first < previous.0 || last < previous.1 {
            return None;
        }
        previous = (first, last);
        span = span.max(last - first + 1);
    }
    Some(span)
}

/// Average pooling of one channels-last block of `lanes` interleaved channels, each
/// window summed one spatial dim at a time (last dim first, each dim's taps in order
/// from zero) in the accumulation type, then divided as the direct path divides.
///
/// The order of the additions differs from the direct scan's, so the bits may too: for a
/// window of `n` taps the sum is within `(n - 1) · ε · Σ|x|` of the exact one, as the
/// direct scan's is. It depends on the window alone, never on the lane, the thread
/// count or the instruction set.
#[inline(always)]
pub(crate) fn mean_block<T: Element>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    scratch: &mut SumScratch<T::Acc>,
    out: &mut [T],
) -> Result<()> {
    let axes = windows.axes();
    let rank = axes.len();
    if let ([rows, cols], Some(ring)) = (axes, axes.first().and_then(ring_rows)) {
        return mean_block_by_rows(x, lanes, [rows, cols], ring, divisor, scratch, out);
    }
    let largest = largest_stage(axes, AxisWindows::input, AxisWindows::output)
        .ok_or(PoolError::Overflow { what: "separable stage" })?;
    let len = largest.saturating_mul(CHUNK);
    for stage in &mut scratch.stages {
        buffer::resize(stage, len, num_traits::zero::<T::Acc>(), "separable stage")?;
    }
    // Each output's valid tap count and padded count per dim, `rank + 1` numbers, in
    // row-major output order: worked out once for all chunks of lanes.
    let counts = &mut scratch.counts;
    counts.clear();
    buffer::reserve(counts, windows.output_volume.saturating_mul(rank + 1), "separable stage")?;
    let mut position = vec![0usize; rank];
    for _ in 0..windows.output_volume {
        let valid = axes.iter().zip(&position).map(|(axis, &p)| axis.window(p).0.len()).product();
        counts.push(valid);
        counts.extend(axes.iter().zip(&position).map(|(axis, &p)| axis.window(p).1));
        for d in (0..rank).rev() {
            position[d] += 1;
            if position[d] < axes[d].output() {
                break;
            }
            position[d] = 0;
        }
    }
    for c0 in (0..lanes).step_by(CHUNK) {
        let width = CHUNK.min(lanes - c0);
        let mut extents: Vec<usize> = axes.iter().map(AxisWindows::input).collect();
        let mut from = 0;
        let mut dims = rank;
        if width == CHUNK {
            // A full chunk: the last dim's sums read the block directly.
            let rows = windows.input_volume / axes[rank - 1].input().max(1);
            sum_rows_of_block(x, lanes, c0, &axes[rank - 1], rows, &mut scratch.stages[1]);
            extents[rank - 1] = axes[rank - 1].output();
            (from, dims) = (1, rank - 1);
        } else {
            // A last, partial chunk: copied in first, the missing lanes at zero.
            for (cell, sums) in scratch.stages[0].chunks_exact_mut(CHUNK).take(windows.input_volume).enumerate() {
                let x = &x[cell * lanes + c0..];
                for (l, s) in sums.iter_mut().enumerate() {
                    *s = if l < width { x[l].to_acc() } else { num_traits::zero::<T::Acc>() };
                }
            }
        }
        for d in (0..dims).rev() {
            let [s0, s1] = &mut scratch.stages;
            let (src, dst) = if from == 0 { (&s0[..], s1) } else { (&s1[..], s0) };
            let outer: usize = extents[..d].iter().product();
            let inner: usize = extents[d + 1..].iter().product();
            sum_stage(&axes[d], outer, extents[d], inner, src, dst);
            extents[d] = axes[d].output();
            from = 1 - from;
        }
        // Divide, output by output, with the window's counts.
        let outputs = scratch.stages[from].chunks_exact(CHUNK).zip(scratch.counts.chunks_exact(rank + 1));
        for (o, (sums, counts)) in outputs.take(windows.output_volume).enumerate() {
            let (valid, axis_counts) = (counts[0], &counts[1..]);
            let mut means: [T::Acc; CHUNK] = sums.try_into().expect("chunk length");
            let out = &mut out[o * lanes + c0..][..width];
            if valid == 0 {
                out.fill(T::zero());
            } else {
                divisor.apply_all::<T>(&mut means, valid, axis_counts);
                for (out, &mean) in out.iter_mut().zip(&means) {
                    *out = T::from_acc(mean);
                }
            }
        }
    }
    Ok(())
}

/// [`mean_block`] of a 2-D block, a row at a time: each input row's sums along the last
/// dim go into a ring of `ring` rows, in ascending row order as the windows of the output
/// rows need them, and each output sums its window's rows of the ring. The additions are
/// [`mean_block`]'s, in its order (each from zero, taps in order), so the bits are too;
/// but every input row is read once, front to back, with all (up to [`RING_BYTES`] worth
/// of) channels in the inner loop, where the chunked stages read 16 channels at a time
/// at the stride of a cell.
#[inline(always)]
fn mean_block_by_rows<T: Element>(
    x: &[T],
    lanes: usize,
    [rows, cols]: [&AxisWindows; 2],
    ring: usize,
    divisor: Divisor,
    scratch: &mut SumScratch<T::Acc>,
    out: &mut [T],
) -> Result<()> {
    let (width, outputs) = (cols.input(), cols.output());
    let (row_cells, group) = ring_lanes::<T::Acc>(ring, outputs, lanes);
    buffer::resize(&mut scratch.ring, row_cells.saturating_mul(group), num_traits::zero::<T::Acc>(), "row sums")?;
    buffer::resize(&mut scratch.sums, outputs.saturating_mul(group), num_traits::zero::<T::Acc>(), "row sums")?;
    let widen_rows = size_of::<T>() < size_of::<T::Acc>();
    if widen_rows {
        buffer::resize(&mut scratch.stages[0], width.saturating_mul(group), num_traits::zero::<T::Acc>(), "row")?;
    }
    for l0 in (0..lanes).step_by(group) {
        let group = group.min(lanes - l0);
        let slot = |row: usize| (row % ring) * outputs * group;
        let mut next_row = 0;
        for y in 0..rows.output() {
            let (row_taps, row_padded) = rows.window(y);
            if let (Some(&first), Some(&last)) = (row_taps.first(), row_taps.last()) {
                for r in next_row.max(first)..=last {
                    let input_row = &x[r * width * lanes..][..width * lanes];
                    let sums = &mut scratch.ring[slot(r)..][..outputs * group];
                    if widen_rows {
                        // 16-bit values: the row's lanes of this group widened once, in
                        // bulk, rather than at every tap that reads them.
                        let wide = &mut scratch.stages[0][..width * group];
                        if group == lanes {
                            T::widen_slice(input_row, wide);
                        } else {
                            for (c, wide) in wide.chunks_exact_mut(group).enumerate() {
                                T::widen_slice(&input_row[c * lanes + l0..][..group], wide);
                            }
                        }
                        let wide = &*wide;
                        for (o, sums) in sums.chunks_exact_mut(group).enumerate() {
                            let taps = cols.window(o).0;
                            sum_taps(sums, taps.iter().map(|&c| &wide[c * group..][..group]), |v| v);
                        }
                        continue;
                    }
                    for (o, sums) in sums.chunks_exact_mut(group).enumerate() {
                        let taps = cols.window(o).0;
                        sum_taps(sums, taps.iter().map(|&c| &input_row[c * lanes + l0..][..group]), T::to_acc);
                    }
                }
                next_row = next_row.max(last + 1);
            }
            // Every output of the row at once: the window's rows of the ring added in
            // order, from zero, over the whole row.
            let sums = &mut scratch.sums[..outputs * group];
            scratch.slots.clear();
            scratch.slots.extend(row_taps.iter().map(|&r| slot(r)));
            let ring = &scratch.ring;
            sum_taps(sums, scratch.slots.iter().map(|&at| &ring[at..][..outputs * group]), |v| v);
            for (o, means) in sums.chunks_exact_mut(group).enumerate() {
                let (col_taps, col_padded) = cols.window(o);
                let out = &mut out[(y * outputs + o) * lanes + l0..][..group];
                let valid = row_taps.len() * col_taps.len();
                if valid == 0 {
                    out.fill(T::zero());
                    continue;
                }
                divisor.store_means(means, valid, &[row_padded, col_padded], &mut Sink::over(out));
            }
        }
    }
    Ok(())
}

/// How [`mean_plane`] reads a channels-first 2-D plane: the ring's rows, and the run of
/// complete stride-1 windows along the columns whose row sums it vectorises.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanePlan {
    ring: usize,
    interior: Interior,
}

impl PlanePlan {
    /// The plan for these windows, when they are 2-D, their rows fit a ring and the
    /// columns have a run of complete windows at stride 1.
    pub fn of(windows: &Windows) -> Option<Self> {
        let [rows, cols] = windows.axes() else { return None };
        let interior = cols.interior.filter(|run| run.stride == 1 && run.offset <= 0)?;
        Some(PlanePlan { ring: ring_rows(rows)?, interior })
    }
}

/// Per-job buffers of [`mean_plane`]: the columns' runs of equal counts, the
/// zero-extended input row, the ring of row sums, one output row's sums, and
/// the ring slots of the input rows and of a window's rows.
pub(crate) struct PlaneScratch<T: Element> {
    /// Runs of columns with the same counts: (end, valid taps, padded taps).
    runs: Vec<(usize, usize, usize)>,
    padded: Vec<T::Acc>,
    ring: Vec<T::Acc>,
    sums: Vec<T::Acc>,
    /// Each input row's place in the ring, and those of one window's rows.
    slots: Vec<usize>,
    window_slots: Vec<usize>,
}

impl<T: Element> PlaneScratch<T> {
    pub fn new() -> Self {
        PlaneScratch {
            runs: Vec::new(),
            padded: Vec::new(),
            ring: Vec::new(),
            sums: Vec::new(),
            slots: Vec::new(),
            window_slots: Vec::new(),
        }
    }
}

/// [`mean_block`] of one channels-first 2-D plane, without interleaving planes: each
/// input row's sums along the columns go into a ring of rows, a tap at a time across all
/// windows of a zero-extended copy of the row; each output row
/// sums its window's rows of the ring, and is divided run by run of equal counts and
/// written out in order. The same additions in the same order as [`mean_block`] on
/// interleaved planes, so the same bits.
#[inline(always)]
pub(crate) fn mean_plane<T: Element>(
    x: &[T],
    windows: &Windows,
    plan: PlanePlan,
    divisor: Divisor,
    scratch: &mut PlaneScratch<T>,
    out: &mut Sink<'_, T>,
) -> Result<()> {
    let [rows, cols] = windows.axes() else {
        return Err(PoolError::Internal { what: "a plane plan for other than 2-D" });
    };
    let (width, outputs, ring, run) = (cols.input(), cols.output(), plan.ring, plan.interior);
    buffer::resize(&mut scratch.ring, ring.saturating_mul(outputs), num_traits::zero::<T::Acc>(), "row sums")?;
    buffer::resize(&mut scratch.sums, outputs, num_traits::zero::<T::Acc>(), "row sums")?;
    // Each input row goes into a row of zeros that reaches every tap of every window, at
    // the offset of the padding before it: the taps outside the input add +0, which
    // changes no sum that starts from +0, so each window adds its valid taps in order.
    let begin = run.offset.unsigned_abs();
    let reach =
        (outputs.saturating_sub(1)).saturating_add(run.kernel.saturating_sub(1).saturating_mul(run.dilation)) + 1;
    buffer::resize(
        &mut scratch.padded,
        reach.max(begin.saturating_add(width)),
        num_traits::zero::<T::Acc>(),
        "row sums",
    )?;
    scratch.padded.fill(num_traits::zero::<T::Acc>());
    // Each input row's place in the ring, and the runs of columns whose windows have the
    // same counts (so the same divisor).
    scratch.slots.clear();
    scratch.slots.extend((0..rows.input()).map(|r| (r % ring) * outputs));
    scratch.runs.clear();
    for o in 0..outputs {
        let (taps, padded) = cols.window(o);
        match scratch.runs.last_mut() {
            Some(run) if (run.1, run.2) == (taps.len(), padded) => run.0 = o + 1,
            _ => scratch.runs.push((o + 1, taps.len(), padded)),
        }
    }
    let mut next_row = 0;
    for y in 0..rows.output() {
        let (row_taps, row_padded) = rows.window(y);
        if let (Some(&first), Some(&last)) = (row_taps.first(), row_taps.last()) {
            for r in next_row.max(first)..=last {
                let padded = &mut scratch.padded;
                for (p, v) in padded[begin..][..width].iter_mut().zip(&x[r * width..][..width]) {
                    *p = v.to_acc();
                }
                let sums = &mut scratch.ring[scratch.slots[r]..][..outputs];
                let padded = &scratch.padded;
                sum_taps(sums, (0..run.kernel).map(|j| &padded[j * run.dilation..][..outputs]), |v| v);
            }
            next_row = next_row.max(last + 1);
        }
        scratch.window_slots.clear();
        scratch.window_slots.extend(row_taps.iter().map(|&r| scratch.slots[r]));
        let (ring, sums) = (&scratch.ring, &mut scratch.sums[..outputs]);
        sum_taps(sums, scratch.window_slots.iter().map(|&at| &ring[at..][..outputs]), |v| v);
        // Divided and stored run by run of windows with the same counts (one division
        // each).
        let mut o = 0;
        for &(end, col_len, col_padded) in &scratch.runs {
            let valid = row_taps.len() * col_len;
            let sums = &mut sums[o..end];
            if valid == 0 {
                out.extend_map(sums, |_| T::zero());
            } else {
                divisor.store_means(sums, valid, &[row_padded, col_padded], out);
            }
            o = end;
        }
    }
    Ok(())
}

/// `sums[l] = 0 + taps[0][l] + taps[1][l] + ...` (each converted by `to`), in order, for
/// every lane `l`: [`WIDE_BLOCK`] lanes at a time in registers, then the rest's whole
/// multiple of 8 lanes as one block, then the last 8 lanes once more (fewer than 8
/// lanes in all: one lane at a time). A/B (16x256 planes, average channels-first
/// forward, 1 thread): a 40-lane row as one block of five AVX2 registers, each tap's
/// bounds checked once rather than in blocks of 16, 16 and 8, was 1.12x faster at 13x13
/// and 7x7; the last lanes of a 38-lane row as an overlapping block rather than one at a
/// time, 1.57x.
#[inline(always)]
fn sum_taps<'a, V: Copy + 'a, S: num_traits::Float>(
    sums: &mut [S],
    taps: impl Iterator<Item = &'a [V]> + Clone,
    to: impl Fn(V) -> S + Copy,
) {
    let wide = sums.len() / WIDE_BLOCK * WIDE_BLOCK;
    let blocked = sums.len() / 8 * 8;
    sum_taps_in_blocks::<WIDE_BLOCK, _, _>(&mut sums[..wide], 0, taps.clone(), to);
    let rest = &mut sums[wide..blocked];
    match rest.len() {
        8 => sum_taps_in_blocks::<8, _, _>(rest, wide, taps.clone(), to),
        16 => sum_taps_in_blocks::<16, _, _>(rest, wide, taps.clone(), to),
        24 => sum_taps_in_blocks::<24, _, _>(rest, wide, taps.clone(), to),
        32 => sum_taps_in_blocks::<32, _, _>(rest, wide, taps.clone(), to),
        40 => sum_taps_in_blocks::<40, _, _>(rest, wide, taps.clone(), to),
        48 => sum_taps_in_blocks::<48, _, _>(rest, wide, taps.clone(), to),
        56 => sum_taps_in_blocks::<56, _, _>(rest, wide, taps.clone(), to),
        _ => {}
    }
    if blocked < sums.len() && sums.len() >= 8 {
        // The last 8 lanes as one block, overlapping the block before: its lanes get
        // the same additions again, so the same values.
        let last = sums.len() - 8;
        sum_taps_in_blocks::<8, _, _>(&mut sums[last..], last, taps, to);
        return;
    }
    for (l, s) in sums.iter_mut().enumerate().skip(blocked) {
        *s = taps.clone().fold(S::zero(), |acc, tap| acc + to(tap[l]));
    }
}

/// Lanes [`sum_taps`] adds together in registers: the bounds of each tap's slice are
/// checked once per this many additions.
const WIDE_BLOCK: usize = 4 * CHUNK;

/// [`sum_taps`] of `sums` (a multiple of `W` lanes), which start at lane `offset` of
/// every tap.
#[inline(always)]
fn sum_taps_in_blocks<'a, const W: usize, V: Copy + 'a, S: num_traits::Float>(
    sums: &mut [S],
    offset: usize,
    taps: impl Iterator<Item = &'a [V]> + Clone,
    to: impl Fn(V) -> S,
) {
    for (k, block) in sums.chunks_exact_mut(W).enumerate() {
        let mut acc = [S::zero(); W];
        for tap in taps.clone() {
            let v: &[V; W] = tap[offset + k * W..][..W].try_into().expect("block length");
            for l in 0..W {
                acc[l] = acc[l] + to(v[l]);
            }
        }
        block.copy_from_slice(&acc);
    }
}

/// The sums along the last dim of channels `c0..c0 + CHUNK` of a block of `rows` rows,
/// read in place: `dst[row, o] = 0 + x[row, c1] + x[row, c2] + ...` over window `o`'s
/// taps, as [`sum_stage`] would sum a copy of them.
#[inline(always)]
fn sum_rows_of_block<T: Element>(
    x: &[T],
    lanes: usize,
    c0: usize,
    axis: &AxisWindows,
    rows: usize,
    dst: &mut [T::Acc],
) {
    let (width, outputs) = (axis.input(), axis.output());
    for r in 0..rows {
        let row = &x[r * width * lanes..][..width * lanes];
        for o in 0..outputs {
            let mut sums = [num_traits::zero::<T::Acc>(); CHUNK];
            for &c in axis.window(o).0 {
                let v: &[T; CHUNK] = row[c * lanes + c0..][..CHUNK].try_into().expect("chunk length");
                for l in 0..CHUNK {
                    sums[l] = sums[l] + v[l].to_acc();
                }
            }
            dst[(r * outputs + o) * CHUNK..][..CHUNK].copy_from_slice(&sums);
        }
    }
}

/// Sums along one dim: `dst[slab, o, i] = 0 + src[slab, c1, i] + src[slab, c2, i] + ...`
/// over window `o`'s taps `c1, c2, ...` in order, a chunk of lanes per position.
#[inline(always)]
fn sum_stage<S: num_traits::Float>(
    axis: &AxisWindows,
    outer: usize,
    extent: usize,
    inner: usize,
    src: &[S],
    dst: &mut [S],
) {
    let outputs = axis.output();
    for slab in 0..outer {
        for o in 0..outputs {
            let (taps, _) = axis.window(o);
            for i in 0..inner {
                let mut sums = [S::zero(); CHUNK];
                for &c in taps {
                    let v: &[S; CHUNK] =
                        src[((slab * extent + c) * inner + i) * CHUNK..][..CHUNK].try_into().expect("chunk length");
                    for l in 0..CHUNK {
                        sums[l] = sums[l] + v[l];
                    }
                }
                dst[((slab * outputs + o) * inner + i) * CHUNK..][..CHUNK].copy_from_slice(&sums);
            }
        }
    }
}

/// Per-job buffers of [`share_block`]: two stages of chunk sums, and per dim, for each
/// input coordinate, the outputs whose windows cover it; for 2-D planes a ring of rows
/// of gathered shares, one row of shares and one of sums.
pub(crate) struct ShareScratch<S> {
    stages: [Vec<S>; 2],
    covering: Vec<Covering>,
    ring: Vec<S>,
    shares: Vec<S>,
    sums: Vec<S>,
    slots: Vec<usize>,
}

impl<S> ShareScratch<S> {
    pub fn new() -> Self {
        ShareScratch {
            stages: [Vec::new(), Vec::new()],
            covering: Vec::new(),
            ring: Vec::new(),
            shares: Vec::new(),
            sums: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// For each input coordinate along one dim, the outputs whose windows hold it, ascending.
struct Covering {
    bounds: Vec<usize>,
    outputs: Vec<usize>,
}

impl Covering {
    fn of(axis: &AxisWindows) -> Result<Self> {
        let mut bounds = buffer::filled(axis.input().saturating_add(1), 0usize, "separable stage")?;
        for o in 0..axis.output() {
            for &c in axis.window(o).0 {
                bounds[c + 1] += 1;
            }
        }
        for c in 0..axis.input() {
            bounds[c + 1] += bounds[c];
        }
        let mut next = bounds.clone();
        let mut outputs = buffer::filled(axis.total_taps(), 0usize, "separable stage")?;
        for o in 0..axis.output() {
            for &c in axis.window(o).0 {
                outputs[next[c]] = o;
                next[c] += 1;
            }
        }
        Ok(Covering { bounds, outputs })
    }

    fn outputs(&self, c: usize) -> &[usize] {
        &self.outputs[self.bounds[c]..self.bounds[c + 1]]
    }
}

/// The average pooling backward of one channels-last block, one spatial dim at a time:
/// each window's share `grad_output / divisor` (rounded to `T`, as the direct path
/// rounds it), then per dim, last dim first, each input coordinate's sum of the shares
/// of the windows covering it, in output order from zero, in the accumulation type.
///
/// The direct path adds a cell's shares in row-major output order; this adds them one
/// dim at a time, so the bits may differ: within `(n - 1) · ε · Σ|share|` for `n` shares,
/// plus one rounding to `T`; the same for every lane, thread count and instruction set.
#[inline(always)]
pub(crate) fn share_block<T: Element>(
    grad_out: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    scratch: &mut ShareScratch<T::Acc>,
    grad_in: &mut [T],
) -> Result<()> {
    let axes = windows.axes();
    let rank = axes.len();
    scratch.covering.clear();
    for axis in axes {
        scratch.covering.push(Covering::of(axis)?);
    }
    if let [rows, cols] = axes {
        let covering = &scratch.covering[0];
        if let Some(ring) = ring_span(rows.input(), |c| covering.outputs(c)) {
            return share_block_by_rows(grad_out, lanes, [rows, cols], ring, divisor, scratch, grad_in);
        }
    }
    let largest = largest_stage(axes, AxisWindows::output, AxisWindows::input)
        .ok_or(PoolError::Overflow { what: "separable stage" })?;
    let len = largest.saturating_mul(CHUNK);
    for stage in &mut scratch.stages {
        buffer::resize(stage, len, num_traits::zero::<T::Acc>(), "separable stage")?;
    }
    // Each output's share, rounded to T: the direct path's terms.
    let mut position = vec![0usize; rank];
    let mut axis_counts = vec![0usize; rank];
    for c0 in (0..lanes).step_by(CHUNK) {
        let width = CHUNK.min(lanes - c0);
        position.fill(0);
        for (o, shares) in scratch.stages[0].chunks_exact_mut(CHUNK).take(windows.output_volume).enumerate() {
            let mut valid = 1usize;
            for ((axis, &p), count) in axes.iter().zip(&position).zip(&mut axis_counts) {
                let (taps, padded) = axis.window(p);
                valid = valid.saturating_mul(taps.len());
                *count = padded;
            }
            let g = &grad_out[o * lanes + c0..];
            let mut values: [T::Acc; CHUNK] =
                std::array::from_fn(|l| if l < width { g[l].to_acc() } else { num_traits::zero::<T::Acc>() });
            if valid > 0 {
                divisor.apply_all::<T>(&mut values, valid, &axis_counts);
            }
            for (share, &v) in shares.iter_mut().zip(&values) {
                *share = T::from_acc(v).to_acc();
            }
            for d in (0..rank).rev() {
                position[d] += 1;
                if position[d] < axes[d].output() {
                    break;
                }
                position[d] = 0;
            }
        }
        let mut extents: Vec<usize> = axes.iter().map(AxisWindows::output).collect();
        let mut from = 0;
        for d in (0..rank).rev() {
            let [s0, s1] = &mut scratch.stages;
            let (src, dst) = if from == 0 { (&s0[..], s1) } else { (&s1[..], s0) };
            let outer: usize = extents[..d].iter().product();
            let inner: usize = extents[d + 1..].iter().product();
            gather_stage(&scratch.covering[d], outer, extents[d], inner, src, dst);
            extents[d] = axes[d].input();
            from = 1 - from;
        }
        for (cell, sums) in scratch.stages[from].chunks_exact(CHUNK).take(windows.input_volume).enumerate() {
            for (g, &s) in grad_in[cell * lanes + c0..][..width].iter_mut().zip(sums) {
                *g = T::from_acc(s);
            }
        }
    }
    Ok(())
}

/// [`share_block`] of a 2-D block, a row at a time: each output row's shares, gathered
/// along the last dim, go into a ring of `ring` rows, in ascending order as the input
/// rows need them, and each input row sums the rows of the windows covering it. The
/// additions are [`share_block`]'s, in its order, so the bits are too; but `grad_out` is
/// read and `grad_in` written once, front to back, with all (up to [`RING_BYTES`] worth
/// of) channels in the inner loop.
#[inline(always)]
fn share_block_by_rows<T: Element>(
    grad_out: &[T],
    lanes: usize,
    [rows, cols]: [&AxisWindows; 2],
    ring: usize,
    divisor: Divisor,
    scratch: &mut ShareScratch<T::Acc>,
    grad_in: &mut [T],
) -> Result<()> {
    let (width, outputs) = (cols.input(), cols.output());
    let (row_cells, group) = ring_lanes::<T::Acc>(ring, width, lanes);
    buffer::resize(&mut scratch.ring, row_cells.saturating_mul(group), num_traits::zero::<T::Acc>(), "row sums")?;
    // Columns with complete stride-1 windows: an input cell's covering windows, in
    // order, are the `kernel` outputs `c + pad - (kernel - 1 - i)·dilation` for `i` in
    // order, so each row's shares go between `lead` cells of zeros and trailing zeros,
    // and every cell sums the same shifted rows (the +0 of the missing outputs changes
    // no sum that starts from +0).
    let shifted = cols.interior.filter(|run| run.stride == 1 && run.offset <= 0);
    let (lead, extent) = match shifted {
        Some(run) => {
            let span = run.kernel.saturating_sub(1).saturating_mul(run.dilation);
            let reach = width.saturating_add(run.offset.unsigned_abs()).saturating_add(span);
            (span, reach.max(span.saturating_add(outputs)))
        }
        None => (0, outputs),
    };
    buffer::resize(&mut scratch.shares, extent.saturating_mul(group), num_traits::zero::<T::Acc>(), "row sums")?;
    buffer::resize(&mut scratch.sums, width.saturating_mul(group), num_traits::zero::<T::Acc>(), "row sums")?;
    let [covering_rows, covering_cols] = &scratch.covering[..] else {
        return Err(PoolError::Internal { what: "a 2-D block without two covering tables" });
    };
    for l0 in (0..lanes).step_by(group) {
        let group = group.min(lanes - l0);
        // The zero margins move with the group's width: cleared for every group.
        scratch.shares.fill(num_traits::zero::<T::Acc>());
        let slot = |row: usize| (row % ring) * width * group;
        let mut next_row = 0;
        for y in 0..rows.input() {
            let covering = covering_rows.outputs(y);
            if let (Some(&first), Some(&last)) = (covering.first(), covering.last()) {
                for r in next_row.max(first)..=last {
                    // Output row r's shares, each rounded to T (the direct path's terms)...
                    let (row_taps, row_padded) = rows.window(r);
                    let shares = &mut scratch.shares[lead * group..][..outputs * group];
                    for (o, shares) in shares.chunks_exact_mut(group).enumerate() {
                        let (col_taps, col_padded) = cols.window(o);
                        let g = &grad_out[(r * outputs + o) * lanes + l0..][..group];
                        let valid = row_taps.len() * col_taps.len();
                        if valid > 0 {
                            // Divided and rounded to T in one pass.
                            divisor.divide_into(g, shares, valid, &[row_padded, col_padded]);
                        } else {
                            for (share, v) in shares.iter_mut().zip(g) {
                                *share = v.to_acc();
                            }
                        }
                    }
                    // ... gathered along the last dim into the ring.
                    let gathered = &mut scratch.ring[slot(r)..][..width * group];
                    let shares = &scratch.shares;
                    if let Some(run) = shifted {
                        let pad = run.offset.unsigned_abs();
                        let rows =
                            (0..run.kernel).map(|i| &shares[(pad + i * run.dilation) * group..][..width * group]);
                        sum_taps(gathered, rows, |v| v);
                    } else {
                        for (c, sums) in gathered.chunks_exact_mut(group).enumerate() {
                            let from = covering_cols.outputs(c);
                            sum_taps(sums, from.iter().map(|&o| &shares[o * group..][..group]), |v| v);
                        }
                    }
                }
                next_row = next_row.max(last + 1);
            }
            scratch.slots.clear();
            scratch.slots.extend(covering.iter().map(|&r| slot(r)));
            let (ring, sums) = (&scratch.ring, &mut scratch.sums[..width * group]);
            sum_taps(sums, scratch.slots.iter().map(|&at| &ring[at..][..width * group]), |v| v);
            for (c, sums) in sums.chunks_exact(group).enumerate() {
                for (g, &s) in grad_in[(y * width + c) * lanes + l0..][..group].iter_mut().zip(sums) {
                    *g = T::from_acc(s);
                }
            }
        }
    }
    Ok(())
}

/// The transpose of [`sum_stage`]: `dst[slab, c, i] = 0 + src[slab, o1, i] + ...` over the
/// outputs `o1, o2, ...` whose windows cover coordinate `c`, in order.
#[inline(always)]
fn gather_stage<S: num_traits::Float>(
    covering: &Covering,
    outer: usize,
    outputs: usize,
    inner: usize,
    src: &[S],
    dst: &mut [S],
) {
    let inputs = covering.bounds.len() - 1;
    for slab in 0..outer {
        for c in 0..inputs {
            let from = covering.outputs(c);
            for i in 0..inner {
                let mut sums = [S::zero(); CHUNK];
                for &o in from {
                    let v: &[S; CHUNK] =
                        src[((slab * outputs + o) * inner + i) * CHUNK..][..CHUNK].try_into().expect("chunk length");
                    for l in 0..CHUNK {
                        sums[l] = sums[l] + v[l];
                    }
                }
                dst[((slab * inputs + c) * inner + i) * CHUNK..][..CHUNK].copy_from_slice(&sums);
            }
        }
    }
}
