//! Average pooling of channels-first, stride-1 windows as a stencil.
//!
//! With stride 1 (and dilation 1) every output of a row reads the same taps, shifted by
//! one cell. Put the input in a plane with `pad` zero cells before it (and zeros
//! after), and output `o` sums the `kernel` consecutive entries from `o`, so a vector of
//! outputs sums whole vectors of entries. The backward is the same stencil the other
//! way round: the windows covering input cell `c` are the outputs `c + pad - kernel + 1
//! ..= c + pad`, so with the shares `grad_output / divisor` placed after `kernel - 1 -
//! pad` zero cells, cell `c` sums the `kernel` consecutive shares from `c`.
//!
//! Both sum in window order from zero, as the plain loops do, and a zero entry stands
//! for a tap (or window) that is not there: adding `+0` to a sum that started from `+0`
//! changes no bit (the sum is never `-0`, and the rounding of a 16-bit sum keeps a value
//! it already holds). So the bits are the plain loops'.

use super::avg::Divisor;
use super::buffer::{self, Out, Sink};
use super::par_blocks_with_in_order;
use super::window::{AxisWindows, Windows};
use crate::error::Result;
use crate::simd::Isa;
use crate::tensor::Element;

/// Lanes of a row the stencil sums at a time (or twice as many).
const LANES: usize = 16;

/// Output cells per plane up to which [`Stencil`] keeps a table of divisors (and so
/// takes the plane at all): 1 MiB of `f64`. Also the most input cells along one dim.
const MAX_OUTPUT_VOLUME: usize = 1 << 17;

/// The largest window side the stencil takes; larger windows sum one dim at a time
/// (`separable`) or, where they do not, gather as before.
const MAX_KERNEL: usize = 32;

/// One axis of a [`Stencil`].
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

    /// Entries per line of a plane from which `cells` cells, rounded up to a multiple of
    /// `round_to`, sum `kernel` entries each: `kernel - 1` more for the last cell's taps.
    fn entries(self, cells: usize, round_to: usize) -> usize {
        cells.next_multiple_of(round_to) + self.kernel - 1
    }

    /// Zero entries before the input in the forward's plane: `pad_begin`.
    fn pad(self) -> usize {
        self.kernel - 1 - self.before
    }
}

/// Average pooling of channels-first, stride-1 windows over one or two dims (see the
/// module docs), with every window's divisor worked out once.
pub(crate) struct Stencil<T: Element> {
    rows: StencilAxis,
    cols: StencilAxis,
    /// What each output's gradient is divided by, row-major over the output plane.
    divisors: Vec<T::Acc>,
}

impl<T: Element> Stencil<T> {
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
        Ok(Some(Stencil { rows: row_axis, cols: col_axis, divisors }))
    }

    /// The backward: `grad_in` of every plane of `grad_out`, under `isa`.
    pub fn backward(&self, grad_out: &[T], isa: Isa, grad_in: Out<'_, T>) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let (iv, ov) = (rows.input * cols.input, rows.output * cols.output);
        let layout = self.layout(rows.input, cols.input);
        par_blocks_with_in_order(
            grad_in,
            iv,
            || {
                // Zeros around the shares, which each plane overwrites in place.
                let zero = num_traits::zero::<T::Acc>();
                let plane_shares = buffer::filled(ov, zero, "shares")?;
                let shares = buffer::filled(layout.entries, zero, "share plane")?;
                Ok((plane_shares, shares, buffer::filled(layout.row, T::zero(), "stencil row")?))
            },
            |(plane_shares, shares, row), p, grad_in| {
                let g = &grad_out[p * ov..][..ov];
                isa.run(
                    #[inline(always)]
                    || self.plane(g, &layout, (plane_shares, shares), row, grad_in),
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
        layout: &Layout,
        (plane_shares, shares): (&mut [T::Acc], &mut [T::Acc]),
        row: &mut [T],
        grad_in: &mut Sink<'_, T>,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let line = layout.line;
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
            sum_row(&shares[h * line..], &layout.taps, cols.input, row);
            grad_in.extend(&row[..cols.input]);
        }
    }

    /// The padded plane from which `lines` lines of `cells` cells each sum their taps
    /// (the backward's input cells, the forward's outputs).
    fn layout(&self, lines: usize, cells: usize) -> Layout {
        let (rows, cols) = (self.rows, self.cols);
        let line = cols.entries(cells, LANES);
        // Entry offsets of a cell's taps from its own entry, in window (and output) order.
        let taps = (0..rows.kernel).flat_map(|dh| (0..cols.kernel).map(move |dw| dh * line + dw)).collect();
        Layout { line, entries: rows.entries(lines, 1) * line, row: cells.next_multiple_of(LANES), taps }
    }

    /// The forward: `out` of every plane of `x`, under `isa`. Sums and divisions are in
    /// `T::Acc`; a 16-bit plane is widened whole and its means narrowed whole (a row at a
    /// time would leave each row's end to the conversions' scalar tails).
    pub fn forward(&self, x: &[T], isa: Isa, out: Out<'_, T>) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let (iv, ov) = (rows.input * cols.input, rows.output * cols.output);
        let layout = self.layout(rows.output, cols.output);
        let widened = if size_of::<T>() < size_of::<T::Acc>() { 1 } else { 0 };
        let zero = num_traits::zero::<T::Acc>();
        par_blocks_with_in_order(
            out,
            ov,
            || {
                // Zeros around the input, which each plane overwrites in place.
                let padded = buffer::filled(layout.entries, zero, "padded plane")?;
                let row = buffer::filled(layout.row, zero, "stencil row")?;
                let wide_plane = buffer::filled(widened * iv, zero, "widened plane")?;
                let means = buffer::filled(widened * ov, zero, "plane means")?;
                Ok((padded, row, wide_plane, means, buffer::filled(widened * ov, T::zero(), "narrowed means")?))
            },
            |(padded, row, wide_plane, means, narrowed), p, out| {
                let x = &x[p * iv..][..iv];
                let scratch = PlaneScratch { padded, row, wide_plane, means, narrowed };
                isa.run(
                    #[inline(always)]
                    || self.plane_means(x, &layout, scratch, out),
                );
                Ok(())
            },
        )
    }

    /// One plane of the forward: the input between the zeros of `padded`, then each row
    /// of outputs summed from it and divided.
    #[inline(always)]
    fn plane_means(&self, x: &[T], layout: &Layout, scratch: PlaneScratch<'_, T>, out: &mut Sink<'_, T>) {
        let cols = self.cols;
        let PlaneScratch { padded, row, wide_plane, means, narrowed } = scratch;
        let line = layout.line;
        if size_of::<T>() == size_of::<T::Acc>() {
            // `T` = `T::Acc` (its widened scratch is empty): the rows copied in, the
            // means stored as they are divided.
            self.rows_into(x, line, padded, T::widen_slice);
            for (divisors, oh) in self.divisors.chunks_exact(cols.output).zip(0..) {
                sum_row::<T::Acc>(&padded[oh * line..], &layout.taps, cols.output, row);
                out.extend_zip(&row[..cols.output], divisors, |sum, divisor| T::from_acc(sum / divisor));
            }
            return;
        }
        T::widen_slice(x, wide_plane);
        self.rows_into(wide_plane, line, padded, <T::Acc as Element>::widen_slice);
        for ((divisors, means), oh) in
            self.divisors.chunks_exact(cols.output).zip(means.chunks_exact_mut(cols.output)).zip(0..)
        {
            sum_row::<T::Acc>(&padded[oh * line..], &layout.taps, cols.output, row);
            for ((mean, &sum), &divisor) in means.iter_mut().zip(&row[..cols.output]).zip(divisors) {
                *mean = sum / divisor;
            }
        }
        T::narrow_slice(means, narrowed);
        out.extend(narrowed);
    }

    /// A plane's rows between the zeros of `padded` (lines of `line` entries), each
    /// through `widen`.
    #[inline(always)]
    fn rows_into<S>(&self, plane: &[S], line: usize, padded: &mut [T::Acc], widen: impl Fn(&[S], &mut [T::Acc])) {
        let (rows, cols) = (self.rows, self.cols);
        for (x, h) in plane.chunks_exact(cols.input).zip(0..) {
            widen(x, &mut padded[(h + rows.pad()) * line + cols.pad()..][..cols.input]);
        }
    }
}

/// The forward's scratch for one plane ([`Stencil::plane_means`]): the padded plane, a
/// row of sums, and for 16-bit types the widened plane, its means and their narrowing.
struct PlaneScratch<'s, T: Element> {
    padded: &'s mut [T::Acc],
    row: &'s mut [T::Acc],
    wide_plane: &'s mut [T::Acc],
    means: &'s mut [T::Acc],
    narrowed: &'s mut [T],
}

/// A padded plane of a [`Stencil`] pass.
struct Layout {
    /// Entries per line.
    line: usize,
    /// Entries in the plane.
    entries: usize,
    /// Cells of a row buffer: the line's cells, rounded up to a multiple of [`LANES`].
    row: usize,
    /// Entry offsets of a cell's taps from its own entry, in window (and output) order.
    taps: Vec<usize>,
}

/// The first `cells` entries of `row` (a multiple of [`LANES`] long), each the sum of the
/// entries at `taps` from its own entry in `first` (the row's first line), in order, from
/// zero; two vectors at a time where the row has more than one left, for two chains of
/// additions in flight (16-bit sums round after each addition, a long chain).
#[inline(always)]
fn sum_row<T: Element>(first: &[T::Acc], taps: &[usize], cells: usize, row: &mut [T]) {
    let mut c0 = 0;
    while c0 < cells {
        if cells - c0 > LANES {
            sum_cells::<T, { 2 * LANES }>(first, taps, c0, row);
            c0 += 2 * LANES;
        } else {
            sum_cells::<T, LANES>(first, taps, c0, row);
            c0 += LANES;
        }
    }
}

/// Cells `c0..c0 + W` of a row into `row` (see [`sum_row`]).
#[inline(always)]
fn sum_cells<T: Element, const W: usize>(first: &[T::Acc], taps: &[usize], c0: usize, row: &mut [T]) {
    let sums: &mut [T; W] = (&mut row[c0..][..W]).try_into().expect("row chunk");
    let tap = |i: usize| -> &[T::Acc; W] { first[taps[i] + c0..][..W].try_into().expect("tap chunk") };
    T::sum_rounded_rows::<W>(taps.len(), tap, sums);
}
