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
//! Each pass sums a whole plane as one run of entries, line after line: a line holds its
//! cells and then the `kernel - 1` zero entries that pad both its end and the next
//! line's start, so an entry past a line's cells sums a few of the next line's entries
//! and is dropped. Summing runs of [`RUN`] entries keeps eight vectors of sums in flight:
//! a 16-bit sum rounds after each addition, a long chain, and with the two vectors of a
//! 28-cell row in flight (a row at a time) the chains' latency set the pace.
//!
//! Both sum in window order from zero, as the plain loops do, and a zero entry stands
//! for a tap (or window) that is not there: adding `+0` to a sum that started from `+0`
//! changes no bit (the sum is never `-0`, and the rounding of a 16-bit sum keeps a value
//! it already holds). So the bits are the plain loops'.

use std::any::{Any, TypeId};

use half::bf16;

use super::avg::Divisor;
use super::buffer::{self, Out, Sink};
use super::par_blocks_with_in_order;
use super::window::{AxisWindows, Windows};
use crate::convert;
use crate::error::Result;
use crate::simd::Isa;
use crate::tensor::Element;

/// Entries of a plane the stencil sums at a time (see the module docs).
const RUN: usize = 128;

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
        let (kernel, pad) = axis.stride_one_runs()?;
        if kernel > MAX_KERNEL || axis.input() > MAX_OUTPUT_VOLUME {
            return None;
        }
        let before = (kernel - 1).checked_sub(pad)?;
        let (input, output) = (axis.input(), axis.output());
        let none_empty = (0..output).all(|o| !axis.window(o).0.is_empty());
        // Every share lies inside the `input + kernel - 1` entries cell sums read.
        let fits = before + output < input + kernel;
        (none_empty && fits).then_some(StencilAxis { input, output, kernel, before })
    }

    /// Entries per line of a plane from which `cells` cells sum `kernel` entries each:
    /// `kernel - 1` more for the last cell's taps.
    fn entries(self, cells: usize) -> usize {
        cells + self.kernel - 1
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
        let layout = self.layout(rows.input, cols.input, (rows.before + rows.output, cols.before + cols.output));
        par_blocks_with_in_order(
            grad_in,
            iv,
            || {
                // Zeros around the shares, which each plane overwrites in place.
                let zero = num_traits::zero::<T::Acc>();
                let plane_shares = buffer::filled(ov, zero, "shares")?;
                let shares = buffer::filled(layout.entries, zero, "share plane")?;
                Ok((plane_shares, shares, buffer::filled(layout.run, T::zero(), "stencil sums")?))
            },
            |(plane_shares, shares, sums), p, grad_in| {
                let g = &grad_out[p * ov..][..ov];
                isa.run(
                    #[inline(always)]
                    || self.plane(g, &layout, (plane_shares, shares), sums, grad_in),
                );
                Ok(())
            },
        )
    }

    /// One plane: its shares into `shares`, then every cell's sum from them.
    #[inline(always)]
    fn plane(
        &self,
        g: &[T],
        layout: &Layout,
        (plane_shares, shares): (&mut [T::Acc], &mut [T::Acc]),
        sums: &mut [T],
        grad_in: &mut Sink<'_, T>,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let line = layout.line;
        // The plane's shares in one pass of each step (a row at a time left the rows'
        // ends to the conversions' scalar tails), then copied between the zeros.
        T::widen_slice(g, plane_shares);
        // bf16's sums may round by Veltkamp's split where the shares allow it, checked
        // as they are divided (the division's pace leaves room for it; a pass of its own
        // took 14% of W3's time).
        let check_split = TypeId::of::<T>() == TypeId::of::<bf16>() && layout.taps.len() <= convert::MAX_SPLIT_TAPS;
        let mut split = check_split;
        for (s, &d) in plane_shares.iter_mut().zip(&self.divisors) {
            *s = *s / d;
            if check_split {
                split &= convert::in_bf16_split_range(*s);
            }
        }
        T::round_slice(plane_shares);
        for (row_shares, oh) in plane_shares.chunks_exact(cols.output).zip(0..) {
            shares[(oh + rows.before) * line + cols.before..][..cols.output].copy_from_slice(row_shares);
        }
        sum_run(shares, &layout.taps, sums, split);
        for h in 0..rows.input {
            grad_in.extend(&sums[h * line..][..cols.input]);
        }
    }

    /// The padded plane from which `lines` lines of `cells` cells each sum their taps
    /// (the backward's input cells, the forward's outputs). `held` is what the plane
    /// must also hold: that many lines, each with that many entries (the shares or the
    /// input after their leading zeros).
    fn layout(&self, lines: usize, cells: usize, held: (usize, usize)) -> Layout {
        let (rows, cols) = (self.rows, self.cols);
        let line = cols.entries(cells).max(held.1);
        // Entry offsets of a cell's taps from its own entry, in window (and output) order.
        let taps = (0..rows.kernel).flat_map(|dh| (0..cols.kernel).map(move |dw| dh * line + dw)).collect();
        let run = (lines * line).next_multiple_of(RUN);
        // The last sum's last tap lies `kernel - 1` lines and entries past it.
        let last_tap = (rows.kernel - 1) * line + cols.kernel - 1;
        Layout { line, entries: (run + last_tap).max(held.0 * line), run, taps }
    }

    /// The forward: `out` of every plane of `x`, under `isa`. Sums and divisions are in
    /// `T::Acc`; a 16-bit plane is widened whole and its means narrowed whole (a row at a
    /// time would leave each row's end to the conversions' scalar tails).
    pub fn forward(&self, x: &[T], isa: Isa, out: Out<'_, T>) -> Result<()> {
        let (rows, cols) = (self.rows, self.cols);
        let (iv, ov) = (rows.input * cols.input, rows.output * cols.output);
        let layout = self.layout(rows.output, cols.output, (rows.pad() + rows.input, cols.pad() + cols.input));
        let divisors = self.lined_divisors(layout.line)?;
        let widened = if size_of::<T>() < size_of::<T::Acc>() { 1 } else { 0 };
        let zero = num_traits::zero::<T::Acc>();
        par_blocks_with_in_order(
            out,
            ov,
            || {
                // Zeros around the input, which each plane overwrites in place.
                let padded = buffer::filled(layout.entries, zero, "padded plane")?;
                let sums = buffer::filled(layout.run, zero, "stencil sums")?;
                let wide_plane = buffer::filled(widened * iv, zero, "widened plane")?;
                Ok((padded, sums, wide_plane, buffer::filled(widened * divisors.len(), T::zero(), "narrowed means")?))
            },
            |(padded, sums, wide_plane, narrowed), p, out| {
                let x = &x[p * iv..][..iv];
                let scratch = PlaneScratch { padded, sums, wide_plane, narrowed };
                isa.run(
                    #[inline(always)]
                    || self.plane_means(x, &layout, &divisors, scratch, out),
                );
                Ok(())
            },
        )
    }

    /// [`Self::divisors`] laid out as the forward's sums are, in lines of `line` entries
    /// (1 in the entries past a row's outputs), so one flat loop divides a 16-bit
    /// plane's sums. Divided a row at a time, 28-cell rows (W3) went through the
    /// compiler's 4-lane remainder loop: the W3 `f16` forward took 1.16x as long, `bf16`
    /// 1.11x (AMD Zen 4, 1 thread, 5 alternating rounds).
    fn lined_divisors(&self, line: usize) -> Result<Vec<T::Acc>> {
        let (rows, cols) = (self.rows, self.cols);
        let mut lined = buffer::filled(rows.output * line, T::count(1), "divisor table")?;
        for (row, divisors) in lined.chunks_exact_mut(line).zip(self.divisors.chunks_exact(cols.output)) {
            row[..cols.output].copy_from_slice(divisors);
        }
        Ok(lined)
    }

    /// One plane of the forward: the input between the zeros of `padded`, then every
    /// output summed from it and divided (`divisors`: [`Self::lined_divisors`]); 16-bit
    /// means are divided and narrowed for the whole plane at once.
    #[inline(always)]
    fn plane_means(
        &self,
        x: &[T],
        layout: &Layout,
        divisors: &[T::Acc],
        scratch: PlaneScratch<'_, T>,
        out: &mut Sink<'_, T>,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let PlaneScratch { padded, sums, wide_plane, narrowed } = scratch;
        let line = layout.line;
        if size_of::<T>() == size_of::<T::Acc>() {
            // `T` = `T::Acc` (its widened scratch is empty): the rows copied in, the
            // means stored as they are divided, row by row (a flat pass over the sums
            // and then a copy took about 1.13x as long, W3 `f32`).
            self.rows_into(x, line, padded, T::widen_slice);
            sum_run::<T::Acc>(padded, &layout.taps, sums, false);
            for oh in 0..rows.output {
                let (sums, divisors) = (&sums[oh * line..][..cols.output], &divisors[oh * line..][..cols.output]);
                out.extend_zip(sums, divisors, |sum, divisor| T::from_acc(sum / divisor));
            }
            return;
        }
        T::widen_slice(x, wide_plane);
        self.rows_into(wide_plane, line, padded, <T::Acc as Element>::widen_slice);
        sum_run::<T::Acc>(padded, &layout.taps, sums, false);
        let means = &mut sums[..divisors.len()];
        for (sum, &divisor) in means.iter_mut().zip(divisors) {
            *sum = *sum / divisor;
        }
        T::narrow_slice(means, narrowed);
        for oh in 0..rows.output {
            out.extend(&narrowed[oh * line..][..cols.output]);
        }
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

/// The forward's scratch for one plane ([`Stencil::plane_means`]): the padded plane, its
/// sums (then means), and for 16-bit types the widened plane and the means narrowed.
struct PlaneScratch<'s, T: Element> {
    padded: &'s mut [T::Acc],
    sums: &'s mut [T::Acc],
    wide_plane: &'s mut [T::Acc],
    narrowed: &'s mut [T],
}

/// A padded plane of a [`Stencil`] pass.
struct Layout {
    /// Entries per line.
    line: usize,
    /// Entries in the plane: the run of sums and the last one's taps.
    entries: usize,
    /// Sums of a pass over the plane: its lines' entries, rounded up to a multiple of
    /// [`RUN`].
    run: usize,
    /// Entry offsets of a cell's taps from its own entry, in window (and output) order.
    taps: Vec<usize>,
}

/// Every entry of `sums` (a multiple of [`RUN`] long) the sum of the entries at `taps`
/// from its own entry in `entries`, in order, from zero; [`RUN`] at a time, for as many
/// chains of additions in flight (16-bit sums round after each addition, a long chain).
/// `split`: `T` is `bf16` and its sums may round by Veltkamp's split (the shares are in
/// [`convert::in_bf16_split_range`]).
#[inline(always)]
fn sum_run<T: Element>(entries: &[T::Acc], taps: &[usize], sums: &mut [T], split: bool) {
    for (run, c0) in sums.chunks_exact_mut(RUN).zip((0..).step_by(RUN)) {
        let run: &mut [T; RUN] = run.try_into().expect("run of sums");
        if split {
            if let Some(run) = (run as &mut dyn Any).downcast_mut::<[bf16; RUN]>() {
                // `T::Acc` is `f32` for `bf16`, so the cast keeps every value.
                let entries: &[f32] = bytemuck::cast_slice(entries);
                let tap = |i: usize| -> &[f32; RUN] { entries[taps[i] + c0..][..RUN].try_into().expect("tap run") };
                if convert::sum_rounded_rows_bf16_split::<RUN>(taps.len(), &tap, bytemuck::cast_slice_mut(run)) {
                    continue;
                }
            }
        }
        let tap = |i: usize| -> &[T::Acc; RUN] { entries[taps[i] + c0..][..RUN].try_into().expect("tap run") };
        T::sum_rounded_rows::<RUN>(taps.len(), tap, run);
    }
}
