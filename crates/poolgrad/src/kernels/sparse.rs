//! Max pooling over large contiguous windows by range-maximum tables, so the cost per
//! output does not grow with the window.
//!
//! Max with argmax under PyTorch's rule (ties to the first tap, NaN to the last NaN) is
//! an associative [`combine`], and combining a run with itself changes nothing, so the
//! result over any range `[a, b)` is `combine(T_j[a], T_j[b − 2^j])` where `2^j <= b − a`
//! and `T_j[i]` is the result over `[i, i + 2^j)`: a sparse table, built by doubling.
//! Channels-first 1-D/2-D planes whose windows are contiguous in both dims (dilation 1,
//! or adaptive) go through two such stages: along each row, then across rows, each
//! row-stage result a whole output row wide, so the second stage and the doubling steps
//! vectorise. The result is exactly the plain scan's, value and index.

use super::buffer;
use super::max::{takes_over, Argmax};
use super::window::{self, AxisWindows, Rows, Windows};
use crate::error::Result;
use crate::tensor::MaxElement;

/// The scan rule ([`takes_over`]) on two partial results, `earlier` covering taps before `later`'s.
#[inline(always)]
fn combine<T: MaxElement>(earlier: (T, u32), later: (T, u32)) -> (T, u32) {
    let take = takes_over(later.0, earlier.0);
    (T::select(take, later.0, earlier.0), if take { later.1 } else { earlier.1 })
}

/// Elementwise [`combine`] of two rows into `out`, in register-sized chunks (selecting
/// between loaded values, so the compiler emits blends rather than selecting between
/// addresses).
#[inline(always)]
fn combine_rows<T: MaxElement>(earlier: (&[T], &[u32]), later: (&[T], &[u32]), out: (&mut [T], &mut [u32])) {
    const CHUNK: usize = 16;
    let n =
        out.0.len().min(out.1.len()).min(earlier.0.len()).min(earlier.1.len()).min(later.0.len()).min(later.1.len());
    let whole = n / CHUNK * CHUNK;
    let chunks = out.0[..whole]
        .chunks_exact_mut(CHUNK)
        .zip(out.1[..whole].chunks_exact_mut(CHUNK))
        .zip(earlier.0[..whole].chunks_exact(CHUNK).zip(earlier.1[..whole].chunks_exact(CHUNK)))
        .zip(later.0[..whole].chunks_exact(CHUNK).zip(later.1[..whole].chunks_exact(CHUNK)));
    for (((ov, oi), (ev, ei)), (lv, li)) in chunks {
        let mut v: [T; CHUNK] = ev.try_into().expect("chunk");
        let mut i: [u32; CHUNK] = ei.try_into().expect("chunk");
        let lv: [T; CHUNK] = lv.try_into().expect("chunk");
        let li: [u32; CHUNK] = li.try_into().expect("chunk");
        for k in 0..CHUNK {
            let take = takes_over(lv[k], v[k]);
            v[k] = T::select(take, lv[k], v[k]);
            i[k] = if take { li[k] } else { i[k] };
        }
        ov.copy_from_slice(&v);
        oi.copy_from_slice(&i);
    }
    for k in whole..n {
        (out.0[k], out.1[k]) = combine((earlier.0[k], earlier.1[k]), (later.0[k], later.1[k]));
    }
}

/// `floor(log2(n))` for `n >= 1`.
#[inline(always)]
fn level_of(n: usize) -> usize {
    (usize::BITS - 1 - n.leading_zeros()) as usize
}

/// Windows with at least this many cells (the largest window) take the table path;
/// smaller ones are faster scanned directly.
pub(crate) const MIN_WINDOW: usize = 16;

/// Whether these channels-first windows take the table path: 1-D or 2-D, contiguous in
/// every dim, large enough, and a plane under 2^32 cells.
pub(crate) fn worthwhile(windows: &Windows) -> bool {
    let axes = windows.axes();
    let largest: usize = axes.iter().map(|a| (0..a.output()).map(|o| a.window(o).0.len()).max().unwrap_or(0)).product();
    (1..=2).contains(&axes.len())
        && largest >= MIN_WINDOW
        && u32::try_from(windows.input_volume).is_ok_and(|v| v < u32::MAX)
        && axes.iter().all(|a| (0..a.output()).all(|o| a.window(o).0.windows(2).all(|w| w[1] == w[0] + 1)))
}

/// A window's range `[start, end)` of coordinates (empty: `start == end`).
#[inline(always)]
fn range(cells: &[usize]) -> (usize, usize) {
    match (cells.first(), cells.last()) {
        (Some(&a), Some(&b)) => (a, b + 1),
        _ => (0, 0),
    }
}

/// Levels `0..=top` of a sparse table over `len` items, each level stored `len` long
/// (the tail of a level past `len − 2^j` is unused).
struct Table<T> {
    values: Vec<T>,
    indices: Vec<u32>,
    len: usize,
}

impl<T: MaxElement> Table<T> {
    #[inline(always)]
    fn level(&self, j: usize) -> (&[T], &[u32]) {
        (&self.values[j * self.len..][..self.len], &self.indices[j * self.len..][..self.len])
    }

    /// Builds levels `1..=top` by doubling from level 0 (already filled), each level's
    /// items being `width` wide (a row of `width` outputs per item in the row stage).
    #[inline(always)]
    fn build(&mut self, top: usize, width: usize) {
        for j in 1..=top {
            let half = 1usize << (j - 1);
            let items = (self.len / width.max(1)).saturating_sub((1 << j) - 1);
            let (done, rest) = self.values.split_at_mut(j * self.len);
            let (done_i, rest_i) = self.indices.split_at_mut(j * self.len);
            let prev = (&done[(j - 1) * self.len..], &done_i[(j - 1) * self.len..]);
            let n = items * width;
            combine_rows(
                (&prev.0[..n], &prev.1[..n]),
                (&prev.0[half * width..][..n], &prev.1[half * width..][..n]),
                (&mut rest[..n], &mut rest_i[..n]),
            );
        }
    }
}

/// Reusable buffers of [`plane`].
pub(crate) struct Scratch<T> {
    line: Table<T>,
    stage: Table<T>,
    best: Vec<T>,
    arg: Vec<u32>,
    /// Per output column: its window's first column and its number of columns.
    window_columns: (Vec<u32>, Vec<u32>),
}

impl<T: MaxElement> Scratch<T> {
    pub fn new() -> Self {
        let empty = || Table { values: Vec::new(), indices: Vec::new(), len: 0 };
        Scratch { line: empty(), stage: empty(), best: Vec::new(), arg: Vec::new(), window_columns: Default::default() }
    }
}

impl<T: MaxElement> Table<T> {
    /// Resizes to `levels` levels of `len` items.
    fn reset(&mut self, levels: usize, len: usize) -> Result<()> {
        self.len = len;
        let n = levels.saturating_mul(len);
        buffer::resize(&mut self.values, n, T::lowest(), "range-maximum table")?;
        buffer::resize(&mut self.indices, n, 0, "range-maximum table")
    }
}

/// Max pooling of one channels-first plane (see the module docs). `rows` must have
/// contiguous windows in both dims and a plane under 2^32 cells.
#[inline(always)]
pub(crate) fn plane<T: MaxElement, A: Argmax>(
    x: &[T],
    rows: &Rows,
    row_axis: Option<&AxisWindows>,
    scratch: &mut Scratch<T>,
    out: &mut [T],
    indices: &mut [A],
) -> Result<()> {
    let (width, ow) = (rows.width, rows.out_cols);
    let height = x.len() / width.max(1);
    let oh = out.len() / ow.max(1);
    let col_top =
        (0..ow).map(|o| range(rows.cols.window(o).0)).map(|(a, b)| level_of((b - a).max(1))).max().unwrap_or(0);
    let row_ranges: Vec<(usize, usize)> = match row_axis {
        Some(axis) => (0..oh).map(|o| range(axis.window(o).0)).collect(),
        None => vec![(0, 1)],
    };
    let row_top = row_ranges.iter().map(|&(a, b)| level_of((b - a).max(1))).max().unwrap_or(0);

    // Stage 1: each input row's sparse table, queried at every output column.
    let lowest = T::lowest();
    let Scratch { line, stage, best, arg, window_columns } = scratch;
    line.reset(col_top + 1, width)?;
    stage.reset(row_top + 1, height * ow)?;
    buffer::resize(best, ow, lowest, "scratch")?;
    buffer::resize(arg, ow, 0, "scratch")?;
    // A compact tap needs the argmax's row and column: carried as `row << 16 | column`
    // where both fit below 2^16 (so never `u32::MAX`, the empty window's mark), they
    // need no division by the width per output. Else the flat index, as for int64
    // indices.
    let packed = A::COMPACT && width < 1 << 16 && height < 1 << 16;
    if packed {
        let (first_columns, column_counts) = window_columns;
        first_columns.clear();
        column_counts.clear();
        buffer::reserve(first_columns, ow, "scratch")?;
        buffer::reserve(column_counts, ow, "scratch")?;
        for (c0, c1) in (0..ow).map(|oc| range(rows.cols.window(oc).0)) {
            // Both below 2^16 (`packed`).
            first_columns.push(c0 as u32);
            column_counts.push((c1 - c0) as u32);
        }
    }
    for r in 0..height {
        // The input, and below the outputs, asked for 4 KiB ahead, into the next plane:
        // perf put 23 % of the forward's samples on the copies that first touch them.
        // 16x256x40x40 f32 on Zen 4, against no requests: 5x5 stride 1 1.07x (1.05–1.12,
        // 7 alternating rounds; 2 threads 1.11x), 9x9 on 2 threads 1.06x, 13x13 1.06x.
        window::prefetch_row_ahead(&x[r * width..][..width]);
        line.values[..width].copy_from_slice(&x[r * width..][..width]);
        let row_start = if packed { r << 16 } else { r * width };
        for (c, i) in line.indices[..width].iter_mut().enumerate() {
            *i = (row_start + c) as u32;
        }
        line.build(col_top, 1);
        let (row_v, row_i) = (&mut stage.values[r * ow..][..ow], &mut stage.indices[r * ow..][..ow]);
        let run = rows.cols.interior.filter(|run| run.dilation == 1 && run.stride == 1 && run.kernel >= 1);
        let (lo, hi) = run.map_or((ow, ow), |run| (run.first, run.end));
        for oc in (0..lo).chain(hi..ow) {
            let (a, b) = range(rows.cols.window(oc).0);
            (row_v[oc], row_i[oc]) = if a == b {
                (lowest, u32::MAX)
            } else {
                let j = level_of(b - a);
                let (v, i) = line.level(j);
                combine((v[a], i[a]), (v[b - (1 << j)], i[b - (1 << j)]))
            };
        }
        if let Some(run) = run {
            // Equal-length windows one apart: two shifted slices of one level.
            let j = level_of(run.kernel);
            let a = run.first_coordinate(0);
            let b = a + run.kernel - (1 << j);
            let (v, i) = line.level(j);
            let n = run.len();
            combine_rows(
                (&v[a..a + n], &i[a..a + n]),
                (&v[b..b + n], &i[b..b + n]),
                (&mut row_v[lo..hi], &mut row_i[lo..hi]),
            );
        }
    }

    // Stage 2: the row results' sparse table across rows, queried per output row.
    stage.build(row_top, ow);
    for (orow, &(a, b)) in row_ranges.iter().enumerate() {
        let (out, indices) = (&mut out[orow * ow..][..ow], &mut indices[orow * ow..][..ow]);
        window::prefetch_row_ahead(out);
        window::prefetch_row_ahead(indices);
        if a == b {
            out.fill(lowest);
            indices.fill(A::EMPTY);
            continue;
        }
        let j = level_of(b - a);
        let (v, i) = stage.level(j);
        let later = b - (1 << j);
        combine_rows(
            (&v[a * ow..][..ow], &i[a * ow..][..ow]),
            (&v[later * ow..][..ow], &i[later * ow..][..ow]),
            (best, arg),
        );
        out.copy_from_slice(best);
        if packed {
            // The tap number within the window [a, b) x [c0, c0 + n): row-major, in a
            // loop that vectorises. With a division and the window looked up per output,
            // the compact forward took 1.3–1.4x the time of the one with int64 indices;
            // now 1.51x / 1.40x / 1.37x faster (16x256x40x40 f32, 5x5 / 9x9 / 13x13, 1
            // thread; 5x5 on 2 threads 1.50x; Zen 4, medians of 5 alternating rounds).
            let (first_columns, column_counts) = (&window_columns.0[..ow], &window_columns.1[..ow]);
            let columns = first_columns.iter().zip(column_counts);
            for ((index, &flat), (&c0, &n)) in indices.iter_mut().zip(arg.iter()).zip(columns) {
                let (r, c) = (flat >> 16, flat & 0xffff);
                let tap = r.wrapping_sub(a as u32).wrapping_mul(n).wrapping_add(c.wrapping_sub(c0));
                *index = if flat == u32::MAX { A::EMPTY } else { A::from_u32(tap) };
            }
            continue;
        }
        for (oc, (index, &flat)) in indices.iter_mut().zip(arg.iter()).enumerate() {
            *index = if flat == u32::MAX {
                A::EMPTY
            } else if A::COMPACT {
                // As above, the row and column by division.
                let (r, c) = (flat as usize / width, flat as usize % width);
                let (c0, c1) = range(rows.cols.window(oc).0);
                A::pick(0, (r - a) * (c1 - c0) + (c - c0))
            } else {
                A::from_u32(flat)
            };
        }
    }
    Ok(())
}
