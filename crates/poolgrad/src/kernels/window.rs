//! Enumeration of N-D pooling windows from per-dim geometry.

use crate::error::{PoolError, Result};
use crate::geometry::AxisGeometry;
use crate::tensor::checked_product;

/// The windows of one spatial dim: for every output index, the flat offsets (coordinate ×
/// the dim's row-major stride) of its valid taps, and its padded tap count.
#[derive(Debug, Clone)]
struct AxisWindows {
    /// `offsets[bounds[o]..bounds[o + 1]]` are window `o`'s valid taps.
    bounds: Vec<usize>,
    offsets: Vec<usize>,
    padded_counts: Vec<usize>,
}

/// All windows of an N-D pooling: the product of the per-dim windows, visited in
/// row-major output order with taps in row-major window order (PyTorch's scan order).
#[derive(Debug, Clone)]
pub(crate) struct Windows {
    axes: Vec<AxisWindows>,
    /// Cells in one input plane.
    pub input_volume: usize,
    /// Cells in one output plane.
    pub output_volume: usize,
}

/// One window as the kernels see it.
pub(crate) struct Window<'a> {
    /// Flat spatial indices of the valid taps, in row-major window order.
    pub cells: &'a [usize],
    /// Taps inside the input or its padding (not the ceil overhang): the
    /// `count_include_pad` divisor.
    pub padded_count: usize,
}

impl Windows {
    pub fn new(axes: &[AxisGeometry]) -> Result<Self> {
        let input_spatial: Vec<usize> = axes.iter().map(|a| a.input).collect();
        let output_spatial: Vec<usize> = axes.iter().map(|a| a.output).collect();
        let input_volume = checked_product(&input_spatial, "input plane size")?;
        let output_volume = checked_product(&output_spatial, "output plane size")?;
        // Row-major strides of the input plane; cannot overflow since the volume did not.
        let mut stride = input_volume;
        let mut tables = Vec::with_capacity(axes.len());
        for axis in axes {
            stride /= axis.input;
            let mut bounds = Vec::with_capacity(axis.output + 1);
            let mut offsets = Vec::new();
            let mut padded_counts = Vec::with_capacity(axis.output);
            bounds.push(0);
            for o in 0..axis.output {
                offsets.extend(axis.valid_taps(o).map(|(_, i)| i * stride));
                bounds.push(offsets.len());
                padded_counts.push(axis.padded_tap_count(o));
            }
            tables.push(AxisWindows { bounds, offsets, padded_counts });
        }
        Ok(Windows { axes: tables, input_volume, output_volume })
    }

    /// The largest number of valid taps of any window (bounds scratch sizes).
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
        let rank = self.axes.len();
        let cap = self.max_cells()?;
        let mut cells = Vec::with_capacity(cap);
        let mut scratch = Vec::with_capacity(cap);
        let mut index = vec![0usize; rank];
        for out in 0..self.output_volume {
            // Cartesian product of the per-dim tap lists, first dim outermost.
            cells.clear();
            cells.push(0);
            let mut padded_count = 1usize;
            for (axis, &o) in self.axes.iter().zip(&index) {
                let taps = &axis.offsets[axis.bounds[o]..axis.bounds[o + 1]];
                padded_count = padded_count.saturating_mul(axis.padded_counts[o]);
                scratch.clear();
                for &base in &cells {
                    scratch.extend(taps.iter().map(|&t| base + t));
                }
                std::mem::swap(&mut cells, &mut scratch);
            }
            f(out, &Window { cells: &cells, padded_count })?;
            // Advance the row-major odometer.
            for d in (0..rank).rev() {
                index[d] += 1;
                if index[d] < self.axes[d].padded_counts.len() {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(())
    }
}
