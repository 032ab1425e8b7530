//! N-D pooling windows as products of per-dim window lists.
//!
//! Every operator's windows — regular (kernel, stride, padding, dilation), adaptive,
//! global or fractional — are, per spatial dim, a list of valid input coordinates for
//! each output index. [`AxisWindows`] holds one such list; [`Windows`] combines one per
//! dim and visits the N-D windows in row-major output order, taps in row-major window
//! order (PyTorch's scan order).

use super::buffer;
use crate::error::{PoolError, Result};
use crate::geometry::{adaptive_window, AxisGeometry};
use crate::simd;
use crate::tensor::checked_product;

/// The windows along one spatial dim.
#[derive(Debug, Clone)]
pub(crate) struct AxisWindows {
    input: usize,
    /// `coords[bounds[o]..bounds[o + 1]]` are window `o`'s valid input coordinates.
    bounds: Vec<usize>,
    coords: Vec<usize>,
    /// Taps inside the input or its padding (the `count_include_pad` divisor).
    padded_counts: Vec<usize>,
    /// The run of complete, evenly spaced windows, if these windows have one.
    pub interior: Option<Interior>,
}

/// A run of outputs `first..end` along one axis whose windows are complete (every tap
/// inside the input) and evenly spaced: output `o` reads the coordinates
/// `o·stride + offset + j·dilation` for `j` in `0..kernel`, with `first·stride + offset >= 0`.
/// The vectorised kernels compute such a run for many outputs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interior {
    pub first: usize,
    pub end: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub offset: isize,
}

impl Interior {
    /// The input coordinate of tap `j` of the run's first output.
    #[inline]
    pub fn first_coordinate(&self, j: usize) -> usize {
        // In range by construction: first·stride + offset >= 0.
        (self.first as isize * self.stride as isize + self.offset) as usize + j * self.dilation
    }

    /// Number of outputs in the run.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.first
    }
}

impl AxisWindows {
    /// Regular windows: kernel, stride, padding, dilation, ceil mode.
    pub fn regular(axis: &AxisGeometry) -> Result<Self> {
        let mut w = AxisWindows::empty(axis.input, axis.output)?;
        for o in 0..axis.output {
            buffer::reserve(&mut w.coords, axis.kernel.min(axis.input), "window table")?;
            w.coords.extend(axis.valid_taps(o).map(|(_, i)| i));
            w.bounds.push(w.coords.len());
            w.padded_counts.push(axis.padded_tap_count(o));
        }
        let complete = |o: usize| !w.coords.is_empty() && w.bounds[o + 1] - w.bounds[o] == axis.kernel;
        let first = (0..axis.output).find(|&o| complete(o));
        if let (Some(first), Ok(pad)) = (first, isize::try_from(axis.pad_begin)) {
            let end = (first..axis.output).find(|&o| !complete(o)).unwrap_or(axis.output);
            let fits =
                isize::try_from(axis.input).is_ok() && isize::try_from(axis.stride.saturating_mul(axis.output)).is_ok();
            if fits {
                w.interior = Some(Interior {
                    first,
                    end,
                    kernel: axis.kernel,
                    stride: axis.stride,
                    dilation: axis.dilation,
                    offset: -pad,
                });
            }
        }
        Ok(w)
    }

    /// Adaptive windows `[floor(i·I/O), ceil((i+1)·I/O))`; `output = 1` is global pooling.
    pub fn adaptive(input: usize, output: usize) -> Result<Self> {
        let mut w = AxisWindows::empty(input, output)?;
        for o in 0..output {
            let (start, end) = adaptive_window(o, input, output);
            buffer::reserve(&mut w.coords, end - start, "window table")?;
            w.coords.extend(start..end);
            w.bounds.push(w.coords.len());
            w.padded_counts.push(end - start);
        }
        if input.is_multiple_of(output) && isize::try_from(input).is_ok() {
            // Equal windows tiling the input: regular with kernel = stride = input / output.
            let k = input / output;
            w.interior = Some(Interior { first: 0, end: output, kernel: k, stride: k, dilation: 1, offset: 0 });
        }
        Ok(w)
    }

    /// Fixed-size windows at the given starts (fractional max pooling).
    pub fn at_starts(input: usize, kernel: usize, starts: &[usize]) -> Result<Self> {
        let mut w = AxisWindows::empty(input, starts.len())?;
        for &s in starts {
            buffer::reserve(&mut w.coords, kernel.min(input), "window table")?;
            w.coords.extend(s..(s + kernel).min(input));
            w.bounds.push(w.coords.len());
            w.padded_counts.push(kernel);
        }
        Ok(w)
    }

    fn empty(input: usize, output: usize) -> Result<Self> {
        let mut bounds = buffer::with_capacity(output.saturating_add(1), "window table")?;
        bounds.push(0);
        let padded_counts = buffer::with_capacity(output, "window table")?;
        Ok(AxisWindows { input, bounds, coords: Vec::new(), padded_counts, interior: None })
    }

    /// Number of input cells along this dim.
    pub fn input(&self) -> usize {
        self.input
    }

    /// The valid taps of all windows along this dim together.
    pub fn total_taps(&self) -> usize {
        self.coords.len()
    }

    /// Number of windows (outputs) along this dim.
    pub fn output(&self) -> usize {
        self.padded_counts.len()
    }

    /// Window `o`'s valid coordinates and padded tap count.
    #[inline]
    pub fn window(&self, o: usize) -> (&[usize], usize) {
        (&self.coords[self.bounds[o]..self.bounds[o + 1]], self.padded_counts[o])
    }

    /// `(kernel, pad)` where the windows are stride-1 and undilated: window `o` is the
    /// run of `kernel` coordinates from `o - pad` (`pad >= 0`), clipped to the input
    /// (empty where it lies wholly outside). `None` for any other windows.
    pub fn stride_one_runs(&self) -> Option<(usize, usize)> {
        let interior = self.interior?;
        if interior.stride != 1 || interior.dilation != 1 {
            return None;
        }
        let (kernel, pad) = (interior.kernel, usize::try_from(-interior.offset).ok()?);
        let exact = (0..self.output()).all(|o| {
            let start = o.saturating_sub(pad).min(self.input);
            let end = (o + kernel).saturating_sub(pad).min(self.input).max(start);
            self.window(o).0.iter().copied().eq(start..end)
        });
        exact.then_some((kernel, pad))
    }
}

/// The windows of a channels-first plane seen as rows: a row is a line along the last
/// spatial dim, and the windows over the dims before it ("outer" windows) say which rows,
/// in order, each output row reads. A 1-D plane is one row. The vectorised
/// channels-first kernels walk these instead of the flattened table.
///
/// The complete, evenly spaced windows of each output row (its run, see [`Interior`])
/// are laid out once per call as tap lists, the same for every plane.
pub(crate) struct Rows {
    /// Windows over the outer dims; their cells are row numbers.
    pub outer: Windows,
    /// Windows along the row.
    pub cols: AxisWindows,
    /// Row length.
    pub width: usize,
    /// Outputs per row.
    pub out_cols: usize,
    /// The run of complete windows along the row, when it is long enough to vectorise.
    pub run: Option<Interior>,
    /// Whether runs read the stride-2 phase-split copy of the plane ([`split_phases`]).
    pub phased: bool,
    /// `run_taps[run_bounds[o]..run_bounds[o + 1]]`: output row `o`'s run taps.
    run_bounds: Vec<usize>,
    run_taps: Vec<(usize, u32)>,
}

impl Rows {
    fn new(outer: Windows, cols: AxisWindows, input_volume: usize) -> Result<Self> {
        let width = cols.input;
        let plane_rows = input_volume / width.max(1);
        let run = cols.interior.filter(|r| r.len() >= RUN_CHUNK && u32::try_from(input_volume).is_ok());
        let phased = run.is_some_and(|r| r.stride == 2);
        let phase_width = width.div_ceil(2);
        let mut run_bounds = vec![0];
        let mut run_taps = Vec::new();
        if let Some(run) = run {
            outer.for_each(|_, window| {
                buffer::reserve(&mut run_taps, window.cells.len().saturating_mul(run.kernel), "row runs")?;
                for &r in window.cells {
                    run_taps.extend((0..run.kernel).map(|j| {
                        let c = run.first_coordinate(j);
                        let flat = r * width + c;
                        // Phase c % 2, row r, column c / 2 of the phase-split copy.
                        let position =
                            if phased { (c % 2) * plane_rows * phase_width + r * phase_width + c / 2 } else { flat };
                        (position, flat as u32)
                    }));
                }
                run_bounds.push(run_taps.len());
                Ok(())
            })?;
        }
        Ok(Rows { outer, out_cols: cols.output(), cols, width, run, phased, run_bounds, run_taps })
    }

    /// Whether any output row has a run to vectorise.
    pub fn has_runs(&self) -> bool {
        !self.run_taps.is_empty()
    }

    /// The most taps of any output row's run windows (0 without runs).
    pub fn most_run_taps(&self) -> usize {
        self.run_bounds.windows(2).map(|b| b[1] - b[0]).max().unwrap_or(0)
    }

    /// Output row `o`'s run, if it has one, and its taps in row-major tap order as
    /// `(position in the source, flat index in the plane)` for the run's first output:
    /// output `run.first + i` reads `source[position + i·step]`, flat index
    /// `flat + i·stride`, where the source is the phase-split copy (step 1) when
    /// [`Self::phased`], else the plane (step = stride).
    #[inline]
    pub fn run_of(&self, o: usize) -> Option<(Interior, &[(usize, u32)])> {
        let run = self.run?;
        let taps = &self.run_taps[self.run_bounds[o]..self.run_bounds[o + 1]];
        (!taps.is_empty()).then_some((run, taps))
    }
}

/// How many rows ahead the channels-last average loop over overlapping windows asks for
/// its input ([`prefetch_cell`]): each window asks for the lines of its last tap's
/// cell this many rows down, which the outputs of a later row read first. The rows in
/// between stay in cache, but each new row came from memory as the windows reached it,
/// with the loads of its first taps waiting on it. AMD Zen 4, 3-5 rounds, 1 / 2 threads,
/// average forward: W3 (192 channels, 3x3 stride 1) 1.14x / 1.26x (one row ahead
/// 1.13x / 1.19x), f16 1.07x; 64 channels over 56x56 1.07x (3 rows 1.14x); SPPF's 5x5
/// average over 256 channels 1.26x. Interleaved channels-first planes, a copy in cache,
/// ask for nothing (0.90x there). The max loops, bound by their comparisons, gained
/// nothing (W1 channels-last 1.01x).
pub(crate) const ROWS_AHEAD: usize = 2;

/// How many times on average the windows along a row cover each of its cells for
/// [`Windows::repeat_along_rows`]: 5x5 stride-1 windows (about 4.9) lost with the max
/// backward's pairs (0.98x), 7x7 (6.7) gained 1.08x.
pub(crate) const RUN_COVER: usize = 6;

/// Asks for the cache lines of the `lanes` values of cell `cell` in a channels-last
/// block `x`, which may lie past the block (never read through).
#[inline(always)]
pub(crate) fn prefetch_cell<T>(x: &[T], lanes: usize, cell: usize) {
    let at = x.as_ptr().wrapping_add(cell.wrapping_mul(lanes));
    for lane in (0..lanes).step_by((64 / size_of::<T>()).max(1)) {
        simd::prefetch(at.wrapping_add(lane));
    }
}

/// Windows that cover each input cell at most once (non-overlapping windows such as 2x2
/// stride 2, adaptive windows that tile the plane), channels-first, seen as rows as in
/// [`Rows`]: each row of the plane belongs to at most one output row, each column to at
/// most one window along the row. A backward then writes each cell once, from its one
/// window, with no sums.
#[derive(Debug, Clone)]
pub(crate) struct Tiling {
    /// Windows over the outer dims; their cells are row numbers.
    pub outer: Windows,
    /// Windows along the row.
    pub cols: AxisWindows,
    /// For each row of the plane, the output row whose windows cover it, or
    /// [`Tiling::NONE`].
    pub row_owner: Vec<u32>,
    /// For each column, the window along the row that covers it, or [`Tiling::NONE`].
    pub col_owner: Vec<u32>,
}

impl Tiling {
    /// No window covers this row or column.
    pub const NONE: u32 = u32::MAX;

    /// The tiling of `windows`, or `None` where a cell is covered twice, the windows
    /// have no spatial dim, or their counts do not fit the owner tables.
    pub fn of(windows: &Windows) -> Result<Option<Tiling>> {
        let Some((cols, outer)) = windows.axes.split_last() else { return Ok(None) };
        if u32::try_from(windows.input_volume).is_err() || u32::try_from(windows.output_volume).is_err() {
            return Ok(None);
        }
        let Some(col_owner) = owners(cols.input, cols.output(), |o| cols.window(o).0)? else { return Ok(None) };
        let outer = Windows::new(outer.to_vec())?;
        let rows = windows.input_volume / cols.input.max(1);
        let mut row_owner = buffer::filled(rows, Self::NONE, "tiling table")?;
        let mut overlap = false;
        outer.for_each(|o, window| {
            for &r in window.cells {
                match row_owner.get_mut(r) {
                    // `o < output_volume`, which fits a `u32` (checked above).
                    Some(owner) if *owner == Self::NONE => *owner = o as u32,
                    _ => overlap = true,
                }
            }
            Ok(())
        })?;
        Ok((!overlap).then_some(Tiling { outer, cols: cols.clone(), row_owner, col_owner }))
    }
}

/// For each of `cells` coordinates, the one of `outputs` windows (`taps(o)`: window `o`'s
/// coordinates) that covers it, or [`Tiling::NONE`]; `None` where one is covered twice.
fn owners<'w>(cells: usize, outputs: usize, taps: impl Fn(usize) -> &'w [usize]) -> Result<Option<Vec<u32>>> {
    let mut owner = buffer::filled(cells, Tiling::NONE, "tiling table")?;
    for o in 0..outputs {
        let Some(o32) = u32::try_from(o).ok().filter(|&o| o != Tiling::NONE) else { return Ok(None) };
        for &c in taps(o) {
            match owner.get_mut(c) {
                Some(cell) if *cell == Tiling::NONE => *cell = o32,
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(owner))
}

/// Outputs per chunk of the channels-first vectorised paths: the running state of a
/// chunk stays in registers while all its taps are folded in.
pub(crate) const RUN_CHUNK: usize = 16;

/// The starts of `chunk`-sized chunks covering `0..n` (`n >= chunk`): every `chunk`-th
/// position, the last one moved back to end at `n`, overlapping the one before it
/// (recomputing an output gives the same value), so no output needs scalar code.
pub(crate) fn chunk_starts(n: usize, chunk: usize) -> impl Iterator<Item = usize> {
    let full = if chunk == 0 || n < chunk { 0 } else { n.div_ceil(chunk) };
    (0..full).map(move |c| (c * chunk).min(n - chunk))
}

/// How far ahead of the row it splits [`split_phases`] asks for the input's cache lines:
/// the rows this many bytes on (past the plane's end, the next plane's, which follow it).
/// Between planes the kernels compute from the split rows and read no input, and the
/// hardware prefetcher, which follows the reads, fell behind: perf on W7's channels-first
/// forward (2x2 stride 2, 56-wide rows) put 44 % of the samples on the split's loads.
/// Against no requests (3 rounds, 1 / 2 threads): W7 1.49x / 1.15x, W2's max forward
/// 1.21x, W8's (`f64`) 1.05x, W1's 0.99x. 16, 32 and 64 rows ahead (3.5 to 14 KiB)
/// measured 1.59-1.72x on W7, 8 rows 1.48x.
const PREFETCH_BYTES_AHEAD: usize = 4096;

/// Asks for the cache lines of the row [`PREFETCH_BYTES_AHEAD`] bytes (rounded up to
/// whole rows) past `row`, of a plane whose rows are `row.len()` long: past the plane's
/// end, the next plane's, which follow it.
#[inline(always)]
pub(crate) fn prefetch_row_ahead<T>(row: &[T]) {
    let width = row.len();
    let row_bytes = size_of_val(row).max(1);
    let ahead = PREFETCH_BYTES_AHEAD.div_ceil(row_bytes) * width;
    // Never read through: the address may lie past the plane or the input.
    let next = row.as_ptr().wrapping_add(ahead);
    for cell in (0..width).step_by((64 / size_of::<T>().max(1)).max(1)) {
        simd::prefetch(next.wrapping_add(cell));
    }
}

/// A copy of a plane with each row split into its `phases` interleaved phases: row `r`,
/// phase `q` holds `row[q], row[q + phases], ...`, so taps at stride `phases` become
/// contiguous. Phase rows are `ceil(width / phases)` long. The input's lines are asked
/// for [`PREFETCH_BYTES_AHEAD`] bytes ahead.
#[inline(always)]
pub(crate) fn split_phases<T: Copy>(plane: &[T], width: usize, phases: usize, out: &mut Vec<T>) -> Result<()> {
    let Some(&fill) = plane.first().filter(|_| width > 0 && phases > 0) else {
        out.clear();
        return Ok(());
    };
    let phase_width = width.div_ceil(phases);
    let rows = plane.len() / width;
    // Every cell that is read is written below, so a scratch reused from an earlier plane
    // keeps its old values and only new cells are filled (one pass less per plane).
    let len = rows * phases * phase_width;
    out.truncate(len);
    buffer::resize(out, len, fill, "phase-split plane")?;
    let phase_len = rows * phase_width;
    for (r, row) in plane.chunks_exact(width).enumerate() {
        prefetch_row_ahead(row);
        if phases == 2 {
            // Both phases in one pass over the row (vectorises as a deinterleave).
            let (even, odd) = out.split_at_mut(phase_len);
            let (even, odd) = (&mut even[r * phase_width..][..phase_width], &mut odd[r * phase_width..][..phase_width]);
            for ((pair, e), o) in row.chunks_exact(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
                *e = pair[0];
                *o = pair[1];
            }
            if width % 2 == 1 {
                // The last, unpaired cell; the odd phase is padded with it (never read).
                even[phase_width - 1] = row[width - 1];
                odd[phase_width - 1] = row[width - 1];
            }
        } else {
            for q in 0..phases {
                let dst = &mut out[q * phase_len + r * phase_width..][..phase_width];
                for (d, &v) in dst.iter_mut().zip(row[q..].iter().step_by(phases)) {
                    *d = v;
                }
            }
        }
    }
    Ok(())
}

/// Every window of a plane, enumerated once: `cells[bounds[o]..bounds[o + 1]]` are
/// output `o`'s taps. Shared by all planes, so the enumeration is paid once per call.
#[derive(Debug, Clone)]
struct Table {
    bounds: Vec<usize>,
    cells: Vec<usize>,
    padded_counts: Vec<usize>,
    axis_counts: Vec<usize>,
}

/// For each input cell, the outputs whose windows cover it, in output order: the
/// transpose of the window table, for backward passes computed as gathers.
#[derive(Debug, Clone)]
pub(crate) struct Covering {
    bounds: Vec<usize>,
    outputs: Vec<usize>,
}

impl Covering {
    /// The number of input cells.
    #[inline]
    pub fn input_volume(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// The outputs covering input cell `cell`, ascending.
    #[inline]
    pub fn outputs(&self, cell: usize) -> &[usize] {
        &self.outputs[self.bounds[cell]..self.bounds[cell + 1]]
    }
}

/// Tables larger than this many taps are not kept (the windows are enumerated per plane).
const TABLE_LIMIT: usize = 1 << 24;

/// All windows of an N-D pooling of one plane.
#[derive(Debug, Clone)]
pub(crate) struct Windows {
    axes: Vec<AxisWindows>,
    table: Option<Table>,
    /// Row-major stride of each input dim within the plane.
    strides: Vec<usize>,
    /// Cells in one input plane.
    pub input_volume: usize,
    /// Cells in one output plane.
    pub output_volume: usize,
}

/// One window as the kernels see it.
pub(crate) struct Window<'a> {
    /// Flat spatial indices of the valid taps, in row-major window order.
    pub cells: &'a [usize],
    /// Taps inside the input or its padding, not the ceil overhang.
    pub padded_count: usize,
    /// The same count per dim (its product is `padded_count`).
    pub axis_counts: &'a [usize],
}

impl<'a> Window<'a> {
    /// This window's taps in a channels-last block `x` of `lanes` channels per cell, or
    /// `None` if it has none or one lies outside `x` (never, for a block the windows were
    /// built for).
    #[inline(always)]
    pub fn lane_taps<T>(&self, x: &'a [T], lanes: usize) -> Option<LaneTaps<'a, T>> {
        let cells_in_x = x.len().checked_div(lanes)?;
        let inside = !self.cells.is_empty() && self.cells.iter().all(|&s| s < cells_in_x);
        inside.then_some(LaneTaps { x, lanes, cells: self.cells })
    }
}

/// A window's taps in a channels-last block, checked once to lie inside it
/// ([`Window::lane_taps`]), so that the loops over the taps of a chunk of channels hold
/// no bounds checks: with one there, its panic path (a second exit from the loop) kept
/// the running sums of a register-wide chunk in memory (the f16 average forward on W3,
/// channels-last, 1.36x slower).
#[derive(Clone, Copy)]
pub(crate) struct LaneTaps<'a, T> {
    x: &'a [T],
    lanes: usize,
    cells: &'a [usize],
}

impl<'a, T> LaneTaps<'a, T> {
    /// The number of taps.
    #[inline(always)]
    pub fn count(self) -> usize {
        self.cells.len()
    }

    /// Channels `c0..c0 + W` of tap `t` (`0..count()`, in window order), as a function
    /// that never panics; `None` if they are not all channels of the block.
    #[inline(always)]
    pub fn chunk<const W: usize>(self, c0: usize) -> Option<impl Fn(usize) -> &'a [T; W] + Copy> {
        let Self { x, lanes, cells } = self;
        let inside = c0.checked_add(W).is_some_and(|end| end <= lanes);
        inside.then_some(move |t: usize| {
            // A `t` past the taps reads the first cell of the block: no branch out of the
            // caller's loop.
            let s = cells.get(t).copied().unwrap_or(0);
            // SAFETY: `s` is 0 or a tap, and every tap is `< x.len() / lanes`
            // ([`Window::lane_taps`] checked them, and that there is one, so 0 is too);
            // with `c0 + W <= lanes` (checked above), `s * lanes + c0 + W <= x.len()`:
            // the `W` values lie inside `x`, and `[T; W]` has the alignment of `T`.
            unsafe { &*x.as_ptr().add(s * lanes + c0).cast::<[T; W]>() }
        })
    }
}

impl Windows {
    pub fn new(axes: Vec<AxisWindows>) -> Result<Self> {
        let input_spatial: Vec<usize> = axes.iter().map(|a| a.input).collect();
        let output_spatial: Vec<usize> = axes.iter().map(AxisWindows::output).collect();
        let input_volume = checked_product(&input_spatial, "input plane size")?;
        let output_volume = checked_product(&output_spatial, "output plane size")?;
        let mut strides = vec![1usize; axes.len()];
        for d in (0..axes.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * input_spatial[d + 1];
        }
        let mut windows = Windows { axes, table: None, strides, input_volume, output_volume };
        let taps = windows.axes.iter().map(|a| a.coords.len()).try_fold(1usize, |acc, n| acc.checked_mul(n.max(1)));
        if taps.is_some_and(|t| t <= TABLE_LIMIT) {
            let rank = windows.axes.len();
            let mut table = Table {
                bounds: buffer::with_capacity(output_volume.saturating_add(1), "window table")?,
                cells: Vec::new(),
                padded_counts: buffer::with_capacity(output_volume, "window table")?,
                axis_counts: buffer::with_capacity(output_volume.saturating_mul(rank), "window table")?,
            };
            table.bounds.push(0);
            windows.enumerate(0..output_volume, |_, w| {
                buffer::reserve(&mut table.cells, w.cells.len(), "window table")?;
                table.cells.extend_from_slice(w.cells);
                table.bounds.push(table.cells.len());
                table.padded_counts.push(w.padded_count);
                table.axis_counts.extend_from_slice(w.axis_counts);
                Ok(())
            })?;
            windows.table = Some(table);
        }
        Ok(windows)
    }

    /// The per-dim windows.
    pub fn axes(&self) -> &[AxisWindows] {
        &self.axes
    }

    /// The windows over columns and, over two spatial dims, those over rows; `None` over
    /// three or more.
    pub fn columns_and_rows(&self) -> Option<(&AxisWindows, Option<&AxisWindows>)> {
        match self.axes() {
            [cols] => Some((cols, None)),
            [rows, cols] => Some((cols, Some(rows))),
            _ => None,
        }
    }

    /// Whether consecutive windows along the last dim often share their maximum: they
    /// cover each cell of a row [`RUN_COVER`] times or more on average (stride-1 windows
    /// 7 or more wide), so the max backward meets runs of outputs naming the same cell.
    pub fn repeat_along_rows(&self) -> bool {
        self.axes.last().is_some_and(|row| row.total_taps() >= row.input().saturating_mul(RUN_COVER))
    }

    /// Whether the windows together read each input cell about once (at most twice on
    /// average: non-overlapping windows such as 2x2 stride 2), so the input streams from
    /// memory and the order of the reads decides a channels-last kernel's speed.
    pub fn read_input_about_once(&self) -> bool {
        let taps = self.axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.total_taps()));
        taps.is_some_and(|taps| taps <= self.input_volume.saturating_mul(2))
    }

    /// Cells from a cell to the same column [`ROWS_AHEAD`] rows down (0 over one dim).
    pub fn cells_rows_ahead(&self) -> usize {
        match &self.axes[..] {
            [.., _, row] => row.input.saturating_mul(ROWS_AHEAD),
            _ => 0,
        }
    }

    /// Whether these windows are one window holding every cell of the plane in order
    /// (global pooling, and adaptive or regular windows that reduce a plane to one value):
    /// a kernel may then reduce each plane as one contiguous slice.
    pub fn is_whole_plane(&self) -> bool {
        self.output_volume == 1
            && self.input_volume > 0
            && self.axes.iter().all(|a| a.coords.len() == a.input && a.coords.iter().enumerate().all(|(i, &c)| i == c))
    }

    /// The row view of these windows (see [`Rows`]).
    pub fn rows(&self) -> Result<Rows> {
        let (cols, outer) = self
            .axes
            .split_last()
            .ok_or(PoolError::InvalidShape { what: "input", reason: "needs at least one spatial dim".into() })?;
        Rows::new(Windows::new(outer.to_vec())?, cols.clone(), self.input_volume)
    }

    /// The output plane's shape.
    pub fn output_spatial(&self) -> Vec<usize> {
        self.axes.iter().map(AxisWindows::output).collect()
    }

    /// The window table's taps, when tabulated: `(bounds, cells)` with window `o`'s
    /// taps at `cells[bounds[o]..bounds[o + 1]]`, for kernels that index single taps.
    pub fn table_taps(&self) -> Option<(&[usize], &[usize])> {
        self.table.as_ref().map(|t| (&t.bounds[..], &t.cells[..]))
    }

    /// The transpose of the window table ([`Covering`]); `None` when the windows are too
    /// many to tabulate.
    pub fn covering(&self) -> Result<Option<Covering>> {
        let Some(t) = self.table.as_ref() else { return Ok(None) };
        let mut bounds = buffer::filled(self.input_volume.saturating_add(1), 0usize, "covering table")?;
        for &cell in &t.cells {
            bounds[cell + 1] += 1;
        }
        for i in 0..self.input_volume {
            bounds[i + 1] += bounds[i];
        }
        let mut next = buffer::collect(bounds.iter().copied(), "covering table")?;
        let mut outputs = buffer::filled(t.cells.len(), 0usize, "covering table")?;
        for o in 0..self.output_volume {
            for &cell in &t.cells[t.bounds[o]..t.bounds[o + 1]] {
                outputs[next[cell]] = o;
                next[cell] += 1;
            }
        }
        Ok(Some(Covering { bounds, outputs }))
    }

    /// The largest number of valid taps of any window.
    pub fn max_cells(&self) -> Result<usize> {
        self.axes
            .iter()
            .map(|a| a.bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0))
            .try_fold(1usize, |acc, n| acc.checked_mul(n))
            .ok_or(PoolError::Overflow { what: "window size" })
    }

    /// Calls `f(output_index, window)` for every output cell of one plane, in row-major
    /// order.
    #[inline(always)]
    pub fn for_each(&self, f: impl FnMut(usize, &Window<'_>) -> Result<()>) -> Result<()> {
        self.for_each_in(0..self.output_volume, f)
    }

    /// [`Self::for_each`] over the output cells `outputs` (a range of row-major output
    /// indices) only.
    #[inline(always)]
    pub fn for_each_in(
        &self,
        outputs: std::ops::Range<usize>,
        mut f: impl FnMut(usize, &Window<'_>) -> Result<()>,
    ) -> Result<()> {
        let outputs = outputs.start..outputs.end.min(self.output_volume);
        let Some(t) = &self.table else { return self.enumerate(outputs, f) };
        let rank = self.axes.len();
        for out in outputs {
            let window = Window {
                cells: &t.cells[t.bounds[out]..t.bounds[out + 1]],
                padded_count: t.padded_counts[out],
                axis_counts: &t.axis_counts[out * rank..(out + 1) * rank],
            };
            f(out, &window)?;
        }
        Ok(())
    }

    /// The enumeration itself: the Cartesian product of the per-dim tap lists.
    fn enumerate(
        &self,
        outputs: std::ops::Range<usize>,
        mut f: impl FnMut(usize, &Window<'_>) -> Result<()>,
    ) -> Result<()> {
        let rank = self.axes.len();
        let cap = self.max_cells()?;
        let mut cells = buffer::with_capacity(cap, "window cells")?;
        let mut scratch = buffer::with_capacity(cap, "window cells")?;
        // The odometer starts at the first output's per-dim index.
        let mut index = vec![0usize; rank];
        let mut rest = outputs.start;
        for (i, axis) in index.iter_mut().zip(&self.axes).rev() {
            let n = axis.output().max(1);
            (*i, rest) = (rest % n, rest / n);
        }
        let mut axis_counts = vec![0usize; rank];
        for out in outputs {
            // Cartesian product of the per-dim tap lists, first dim outermost.
            cells.clear();
            cells.push(0);
            let mut padded_count = 1usize;
            for (((axis, &o), &stride), count) in self.axes.iter().zip(&index).zip(&self.strides).zip(&mut axis_counts)
            {
                let taps = &axis.coords[axis.bounds[o]..axis.bounds[o + 1]];
                *count = axis.padded_counts[o];
                padded_count = padded_count.saturating_mul(*count);
                scratch.clear();
                for &base in &cells {
                    scratch.extend(taps.iter().map(|&t| base + t * stride));
                }
                std::mem::swap(&mut cells, &mut scratch);
            }
            f(out, &Window { cells: &cells, padded_count, axis_counts: &axis_counts })?;
            // Advance the row-major odometer.
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < self.axes[d].output() {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Seen = Vec<(usize, Vec<usize>, usize, Vec<usize>)>;

    fn record(seen: &mut Seen) -> impl FnMut(usize, &Window<'_>) -> Result<()> + '_ {
        |o, w| {
            seen.push((o, w.cells.to_vec(), w.padded_count, w.axis_counts.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn output_ranges_visit_the_same_windows_as_the_whole_plane() {
        let axes = vec![
            AxisWindows::adaptive(5, 3).unwrap(),
            AxisWindows::adaptive(7, 4).unwrap(),
            AxisWindows::adaptive(4, 2).unwrap(),
        ];
        let windows = Windows::new(axes).unwrap();
        let n = windows.output_volume;
        assert_eq!(n, 24);
        let mut all = Seen::new();
        windows.for_each(record(&mut all)).unwrap();
        assert_eq!(all.iter().map(|s| s.0).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        for range in [0..0, 0..n, 3..17, 5..6, 7..8, 8..16, n - 1..n, 10..n + 5] {
            let want: Seen = all.iter().filter(|s| range.contains(&s.0)).cloned().collect();
            let (mut table, mut enumerated) = (Seen::new(), Seen::new());
            windows.for_each_in(range.clone(), record(&mut table)).unwrap();
            let clipped = range.start..range.end.min(n);
            windows.enumerate(clipped, record(&mut enumerated)).unwrap();
            assert_eq!(table, want, "table, {range:?}");
            assert_eq!(enumerated, want, "enumerated, {range:?}");
        }
    }
}
