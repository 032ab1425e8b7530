//! N-D pooling windows as products of per-dim window lists.
//!
//! Every operator's windows — regular (kernel, stride, padding, dilation), adaptive,
//! global or fractional — are, per spatial dim, a list of valid input coordinates for
//! each output index. [`AxisWindows`] holds one such list; [`Windows`] combines one per
//! dim and visits the N-D windows in row-major output order, taps in row-major window
//! order (PyTorch's scan order).

use crate::error::{PoolError, Result};
use crate::geometry::{adaptive_window, AxisGeometry};
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
}

impl AxisWindows {
    /// Regular windows: kernel, stride, padding, dilation, ceil mode.
    pub fn regular(axis: &AxisGeometry) -> Self {
        let mut w = AxisWindows::empty(axis.input, axis.output);
        for o in 0..axis.output {
            w.coords.extend(axis.valid_taps(o).map(|(_, i)| i));
            w.bounds.push(w.coords.len());
            w.padded_counts.push(axis.padded_tap_count(o));
        }
        w
    }

    /// Adaptive windows `[floor(i·I/O), ceil((i+1)·I/O))`; `output = 1` is global pooling.
    pub fn adaptive(input: usize, output: usize) -> Self {
        let mut w = AxisWindows::empty(input, output);
        for o in 0..output {
            let (start, end) = adaptive_window(o, input, output);
            w.coords.extend(start..end);
            w.bounds.push(w.coords.len());
            w.padded_counts.push(end - start);
        }
        w
    }

    /// Fixed-size windows at the given starts (fractional max pooling).
    pub fn at_starts(input: usize, kernel: usize, starts: &[usize]) -> Self {
        let mut w = AxisWindows::empty(input, starts.len());
        for &s in starts {
            w.coords.extend(s..(s + kernel).min(input));
            w.bounds.push(w.coords.len());
            w.padded_counts.push(kernel);
        }
        w
    }

    fn empty(input: usize, output: usize) -> Self {
        let mut bounds = Vec::with_capacity(output + 1);
        bounds.push(0);
        AxisWindows { input, bounds, coords: Vec::new(), padded_counts: Vec::with_capacity(output) }
    }

    fn output(&self) -> usize {
        self.padded_counts.len()
    }

    /// Window `o`'s valid coordinates and padded tap count.
    #[inline]
    pub fn window(&self, o: usize) -> (&[usize], usize) {
        (&self.coords[self.bounds[o]..self.bounds[o + 1]], self.padded_counts[o])
    }
}

/// The windows of a 1-D or 2-D pooling as (rows, cols, row length): the direct loops of
/// the channels-first fast paths walk these instead of the flattened table. A 1-D
/// pooling is one row.
pub(crate) struct Planar<'a> {
    pub rows: Option<&'a AxisWindows>,
    pub cols: &'a AxisWindows,
    pub width: usize,
}

impl Planar<'_> {
    /// Output rows.
    pub fn out_rows(&self) -> usize {
        self.rows.map_or(1, AxisWindows::output)
    }

    /// Output columns.
    pub fn out_cols(&self) -> usize {
        self.cols.output()
    }

    /// Window `o` of the rows (the single row 0 for 1-D).
    #[inline]
    pub fn row_window(&self, o: usize) -> (&[usize], usize) {
        match self.rows {
            Some(r) => r.window(o),
            None => (&[0], 1),
        }
    }
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
        let taps = windows
            .axes
            .iter()
            .map(|a| a.coords.len())
            .try_fold(1usize, |acc, n| acc.checked_mul(n.max(1)));
        if taps.is_some_and(|t| t <= TABLE_LIMIT) {
            let rank = windows.axes.len();
            let mut table = Table {
                bounds: Vec::with_capacity(output_volume + 1),
                cells: Vec::new(),
                padded_counts: Vec::with_capacity(output_volume),
                axis_counts: Vec::with_capacity(output_volume * rank),
            };
            table.bounds.push(0);
            windows.enumerate(|_, w| {
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

    /// The 1-D or 2-D view of these windows, for the direct-loop fast paths.
    pub fn planar(&self) -> Option<Planar<'_>> {
        match self.axes.as_slice() {
            [cols] => Some(Planar { rows: None, cols, width: cols.input }),
            [rows, cols] => Some(Planar { rows: Some(rows), cols, width: cols.input }),
            _ => None,
        }
    }

    /// The output plane's shape.
    pub fn output_spatial(&self) -> Vec<usize> {
        self.axes.iter().map(AxisWindows::output).collect()
    }

    /// The largest number of valid taps of any window.
    fn max_cells(&self) -> Result<usize> {
        self.axes
            .iter()
            .map(|a| a.bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0))
            .try_fold(1usize, |acc, n| acc.checked_mul(n))
            .ok_or(PoolError::Overflow { what: "window size" })
    }

    /// Calls `f(output_index, window)` for every output cell of one plane, in row-major
    /// order.
    pub fn for_each(&self, mut f: impl FnMut(usize, &Window<'_>) -> Result<()>) -> Result<()> {
        let Some(t) = &self.table else { return self.enumerate(f) };
        let rank = self.axes.len();
        for out in 0..self.output_volume {
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
    fn enumerate(&self, mut f: impl FnMut(usize, &Window<'_>) -> Result<()>) -> Result<()> {
        let rank = self.axes.len();
        let cap = self.max_cells()?;
        let mut cells = Vec::with_capacity(cap);
        let mut scratch = Vec::with_capacity(cap);
        let mut index = vec![0usize; rank];
        let mut axis_counts = vec![0usize; rank];
        for out in 0..self.output_volume {
            // Cartesian product of the per-dim tap lists, first dim outermost.
            cells.clear();
            cells.push(0);
            let mut padded_count = 1usize;
            for (((axis, &o), &stride), count) in self.axes.iter().zip(&index).zip(&self.strides).zip(&mut axis_counts) {
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
