//! The channels-first average backward of stride-1 windows as a stencil.
//!
//! With stride 1 (and dilation 1) the windows covering input cell `c` of an axis are the
//! outputs `c + pad - kernel + 1 ..= c + pad`. Put the shares `grad_output / divisor` in
//! a plane with `kernel - 1 - pad` zero cells before them (and zeros after), and cell `c`
//! sums the `kernel` consecutive entries from `c`: every cell of a row has the same taps,
//! shifted, so a vector of cells sums whole vectors of shares. The sums run in output
//! order from zero, as the plain loop's do, and a zero entry stands for an output that
//! does not cover the cell: adding `+0` to a sum that started from `+0` changes no bit
//! (the sum is never `-0`, and the rounding of a 16-bit sum keeps a value it already
//! holds). So the bits are the plain loop's.

use super::avg::Divisor;
use super::buffer::{self, Out, Sink};
use super::par_blocks_with_in_order;
use super::window::{AxisWindows, Windows};
use crate::error::Result;
use crate::simd::Isa;
use crate::tensor::Element;

/// Lanes of a row the stencil sums at a time (or twice as many).
const LANES: usize = 16;

/// Output cells per plane up to which [`ShareStencil`] keeps a table of divisors (and so
/// takes the plane at all): 1 MiB of `f64`.
const MAX_OUTPUT_VOLUME: usize = 1 << 17;

/// The largest window side the stencil takes; larger windows sum one dim at a time
/// (`separable`) or, where they do not, gather as before.
const MAX_KERNEL: usize = 32;

/// One axis of a [`ShareStencil`].
#[derive(Debug, Clone, Copy)]
struct StencilAxis {
    input: usize,
    output: usize,
    kernel: usize,
    /// Zero entries before the first share: `kernel - 1 - pad_begin`.
    before: usize,
}

impl StencilAxis {
    /// The axis when its windows are stride-1, dilation-1 windows, each the run of
    /// `kernel` coordinates from `o - pad_begin` clipped to the input, none empty, and
    /// the shares fit between the zero entries (`pad_begin < kernel`).
    fn of(axis: &AxisWindows) -> Option<Self> {
        let interior = axis.interior?;
        if interior.stride != 1 || interior.dilation != 1 {
            return None;
        }
        let (kernel, pad) = (interior.kernel, usize::try_from(-interior.offset).ok()?);
        if kernel > MAX_KERNEL || axis.input() > MAX_OUTPUT_VOLUME {
            return None;
        }
        let before = (kernel - 1).checked_sub(pad)?;
        let (input, output) = (axis.input(), axis.output());
        let windows_as_said = (0..output).all(|o| {
            let (start, end) = ((o + before + 1).saturating_sub(kernel), (o + before + 1).min(input));
            let (coords, _) = axis.window(o);
            start < end && coords.len() == end - start && coords.iter().zip(start..).all(|(&c, i)| c == i)
        });
        // Every share lies inside the `input + kernel - 1` entries cell sums read.
        let fits = before + output < input + kernel;
        (windows_as_said && fits).then_some(StencilAxis { input, output, kernel, before })
    }

    /// Entries per line of the share plane: the input, `kernel - 1` more for the last
    /// cell's taps, and room for the last vector of a row.
    fn entries(self, round_to: usize) -> usize {
        self.input.next_multiple_of(round_to) + self.kernel - 1
    }
}

/// The average backward of channels-first, stride-1 windows over one or two dims (see
/// the module docs), with every window's divisor worked out once.
pub(crate) struct ShareStencil<T: Element> {
    rows: StencilAxis,
    cols: StencilAxis,
    /// What each output's gradient is divided by, row-major over the output plane.
    divisors: Vec<T::Acc>,
}

impl<T: Element> ShareStencil<T> {
    /// The stencil of these windows, or `None` where they are not stride-1 windows (see
    /// [`StencilAxis::of`]), the divisor is per axis, or the plane is large.
    pub fn of(windows: &Windows, divisor: Divisor) -> Result<Option<Self>> {
        let (cols, rows) = match windows.columns_and_rows() {
            Some((cols, rows)) => (cols, rows),
            None => return Ok(None),
        };
        let (Some(col_axis), row_axis) = (StencilAxis::of(cols), rows.map(StencilAxis::of)) else {
            return Ok(None);
        };
        let row_axis = match row_axis {
            Some(Some(axis)) => axis,
            Some(None) => return Ok(None),
            None => StencilAxis { input: 1, output: 1, kernel: 1, before: 0 },
        };
        if matches!(divisor, Divisor::PerAxis) || windows.output_volume > MAX_OUTPUT_VOLUME {
            return Ok(None);
        }
        let mut divisors = buffer::with_capacity(windows.output_volume, "divisor table")?;
        let row_window = |o: usize| rows.map_or((1, 1), |rows| (rows.window(o).0.len(), rows.window(o).1));
        for oh in 0..row_axis.output {
            let (valid_h, padded_h) = row_window(oh);
            for ow in 0..col_axis.output {
                let (coords, padded_w) = cols.window(ow);
                let count = match divisor {
                    Divisor::Padded => padded_h * padded_w,
                    Divisor::Valid => valid_h * coords.len(),
                    Divisor::Fixed(n) => n,
                    Divisor::PerAxis => unreachable!("excluded above"),
                };
                divisors.push(T::count(count));
            }
        }
        Ok(Some(ShareStencil { rows: row_axis, cols: col_axis, divisors }))
    }

    /// The backward: `grad_in` of every plane of `grad_out`, under `isa`.
    pub fn backward(&self, grad_out: &[T], isa: Isa, grad_in: Out<'_, T>) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let (iv, ov) = (rows.input * cols.input, rows.output * cols.output);
        let line = cols.entries(LANES);
        let plane = rows.entries(1) * line;
        // Entry offsets of a cell's taps from its own entry, in output order.
        let taps: Vec<usize> = (0..rows.kernel).flat_map(|dh| (0..cols.kernel).map(move |dw| dh * line + dw)).collect();
        par_blocks_with_in_order(
            grad_in,
            iv,
            || {
                // Zeros around the shares, which each plane overwrites in place.
                let zero = num_traits::zero::<T::Acc>();
                let plane_shares = buffer::filled(ov, zero, "shares")?;
                let shares = buffer::filled(plane, zero, "share plane")?;
                Ok((
                    plane_shares,
                    shares,
                    buffer::filled(cols.input.next_multiple_of(LANES), T::zero(), "stencil row")?,
                ))
            },
            |(plane_shares, shares, row), p, grad_in| {
                let g = &grad_out[p * ov..][..ov];
                isa.run(
                    #[inline(always)]
                    || self.plane(g, &taps, (plane_shares, shares), row, grad_in),
                );
                Ok(())
            },
        )
    }

    /// One plane: its shares into `shares`, then each row of cells from them.
    #[inline(always)]
    fn plane(
        &self,
        g: &[T],
        taps: &[usize],
        (plane_shares, shares): (&mut [T::Acc], &mut [T::Acc]),
        row: &mut [T],
        grad_in: &mut Sink<'_, T>,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let line = cols.entries(LANES);
        // The plane's shares in one pass of each step (a row at a time left the rows'
        // ends to the conversions' scalar tails), then copied between the zeros.
        T::widen_slice(g, plane_shares);
        for (s, &d) in plane_shares.iter_mut().zip(&self.divisors) {
            *s = *s / d;
        }
        T::round_slice(plane_shares);
        for (row_shares, oh) in plane_shares.chunks_exact(cols.output).zip(0..) {
            shares[(oh + rows.before) * line + cols.before..][..cols.output].copy_from_slice(row_shares);
        }
        for h in 0..rows.input {
            let first = &shares[h * line..];
            // Two vectors at a time where the row has more than one left: two chains of
            // additions in flight (16-bit sums round after each addition, a long chain).
            let mut c0 = 0;
            while c0 < cols.input {
                if cols.input - c0 > LANES {
                    sum_cells::<T, { 2 * LANES }>(first, taps, c0, row);
                    c0 += 2 * LANES;
                } else {
                    sum_cells::<T, LANES>(first, taps, c0, row);
                    c0 += LANES;
                }
            }
            grad_in.extend(&row[..cols.input]);
        }
    }
}

/// Cells `c0..c0 + W` of a row into `row`, summing the shares at `taps` from each cell's
/// entry in `first` (the row's first line of shares), in order, from zero.
#[inline(always)]
fn sum_cells<T: Element, const W: usize>(first: &[T::Acc], taps: &[usize], c0: usize, row: &mut [T]) {
    let sums: &mut [T; W] = (&mut row[c0..][..W]).try_into().expect("row chunk");
    let tap = |i: usize| -> &[T::Acc; W] { first[taps[i] + c0..][..W].try_into().expect("tap chunk") };
    T::sum_rounded_rows::<W>(taps.len(), tap, sums);
}
