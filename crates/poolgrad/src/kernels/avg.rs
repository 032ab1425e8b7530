//! Average pooling kernels: sums in the accumulation type, PyTorch's divisors.

use super::buffer::{self, Out, Sink};
use super::separable::{self, Reduction};
use super::stencil::Stencil;
use super::window::{
    chunk_starts, prefetch_cell, split_phases, Covering, LaneTaps, Rows, Tiling, Window, Windows, RUN_CHUNK,
};
use super::{band_outputs, deinterleave_planes, interleave_planes, Path, PLANE_GROUP, TAP_MAJOR_LANES};
use super::{par_blocks, par_blocks_accumulating, par_blocks_in_order, par_blocks_with, par_blocks_with_in_order};
use crate::error::{PoolError, Result};
use crate::simd::{self, Isa};
use crate::tensor::{Blocking, Element};
use num_traits::One;
use std::ops::Range;

/// What each window's sum is divided by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Divisor {
    /// Taps in the input or its padding (`count_include_pad = true`).
    Padded,
    /// Taps in the input only (`count_include_pad = false`; adaptive and global pooling).
    Valid,
    /// A fixed number (`divisor_override`).
    Fixed(usize),
    /// The window size, divided out one dim at a time (`sum / kh / kw`, as PyTorch's
    /// adaptive average pooling rounds it).
    PerAxis,
}

impl Divisor {
    /// `value / divisor` for this window.
    pub fn apply<T: Element>(self, value: T::Acc, window: &Window<'_>) -> T::Acc {
        self.apply_counts::<T>(value, window.cells.len(), window.axis_counts)
    }

    /// `values[i] / divisor` for every `i`, all for the same window: the divisor is
    /// worked out once, so the division vectorises (bitwise the same as [`Self::apply`]
    /// per value).
    #[inline(always)]
    pub fn apply_all<T: Element>(self, values: &mut [T::Acc], valid: usize, axis_counts: &[usize]) {
        let mut divide_by = |(by, multiply): (T::Acc, bool)| match multiply {
            true => values.iter_mut().for_each(|v| *v = *v * by),
            false => values.iter_mut().for_each(|v| *v = *v / by),
        };
        match self.one_count(valid, axis_counts) {
            Some(n) => divide_by(Self::scale::<T>(n)),
            None => axis_counts.iter().for_each(|&c| divide_by(Self::scale::<T>(c))),
        }
    }

    /// What [`Self::apply_all`] divides a window's values by, when one number does it:
    /// `(value, multiply)`, multiplying by an exact reciprocal where there is one.
    #[inline(always)]
    pub fn single_scale<T: Element>(self, valid: usize, axis_counts: &[usize]) -> Option<(T::Acc, bool)> {
        self.one_count(valid, axis_counts).map(Self::scale::<T>)
    }

    /// Dividing by `n` as `(value, multiply)`: by its reciprocal where that is exact.
    #[inline(always)]
    fn scale<T: Element>(n: usize) -> (T::Acc, bool) {
        match exact_reciprocal::<T>(n) {
            Some(r) => (r, true),
            None => (T::count(n), false),
        }
    }

    /// `out[i] = values[i] / divisor` (divided in the accumulation type, rounded to `T`,
    /// and kept widened) for every `i`, all for the same window: one pass (16-bit types:
    /// three, with bulk conversions), bitwise the same as [`Self::apply`] per value.
    #[inline(always)]
    pub fn divide_into<T: Element>(self, values: &[T], out: &mut [T::Acc], valid: usize, axis_counts: &[usize]) {
        if size_of::<T>() < size_of::<T::Acc>() {
            // 16-bit values: in bulk, with the CPU's conversions.
            match self.single_scale::<T>(valid, axis_counts) {
                Some((by, false)) => T::divide_widened(values, by, out),
                _ => {
                    T::widen_slice(values, out);
                    self.apply_all::<T>(out, valid, axis_counts);
                    T::round_slice(out);
                }
            }
            return;
        }
        let pairs = out.iter_mut().zip(values);
        match self.one_count(valid, axis_counts) {
            Some(n) => match exact_reciprocal::<T>(n) {
                Some(r) => pairs.for_each(|(o, &v)| *o = v.to_acc() * r),
                None => {
                    let n = T::count(n);
                    pairs.for_each(|(o, &v)| *o = v.to_acc() / n);
                }
            },
            None => pairs.for_each(|(o, &v)| *o = self.apply_counts::<T>(v.to_acc(), valid, axis_counts)),
        }
    }

    /// The same from counts: `valid` taps, and the padded count per dim.
    #[inline]
    pub fn apply_counts<T: Element>(self, value: T::Acc, valid: usize, axis_counts: &[usize]) -> T::Acc {
        match self.one_count(valid, axis_counts) {
            Some(n) => value / T::count(n),
            None => axis_counts.iter().fold(value, |v, &c| v / T::count(c)),
        }
    }

    /// `sums[i] / divisor`, stored as `T`, for every `i`, all for the same window (or
    /// windows with the same counts): dividing, rounding and storing in one pass, where
    /// [`Self::apply_all`] and a copy take two (SPPF's average 13x13 channels-first
    /// forward, 40-wide rows: 1.19x).
    #[inline(always)]
    pub fn store_means<T: Element>(
        self,
        sums: &mut [T::Acc],
        valid: usize,
        axis_counts: &[usize],
        out: &mut Sink<'_, T>,
    ) {
        match self.one_count(valid, axis_counts).map(|n| (n, exact_reciprocal::<T>(n))) {
            Some((_, Some(r))) => out.extend_map(sums, |sum| T::from_acc(sum * r)),
            Some((n, None)) => {
                let n = T::count(n);
                out.extend_map(sums, |sum| T::from_acc(sum / n));
            }
            None => {
                self.apply_all::<T>(sums, valid, axis_counts);
                out.extend_map(sums, T::from_acc);
            }
        }
    }

    /// `values[i] / divisor`, stored as `T`, for every `i`, after the last tap `last[i]`
    /// is added to each sum: the channels-last forward's last pass over a window.
    #[inline(always)]
    fn add_and_store<T: Element>(
        self,
        sums: &mut [T::Acc],
        last: &[T],
        valid: usize,
        axis_counts: &[usize],
        out: &mut Sink<'_, T>,
    ) {
        match self.one_count(valid, axis_counts).map(|n| (n, exact_reciprocal::<T>(n))) {
            Some((_, Some(r))) => out.extend_zip(sums, last, |sum, v| T::from_acc((sum + v.to_acc()) * r)),
            Some((n, None)) => {
                let n = T::count(n);
                out.extend_zip(sums, last, |sum, v| T::from_acc((sum + v.to_acc()) / n));
            }
            None => {
                for (sum, &v) in sums.iter_mut().zip(last) {
                    *sum = *sum + v.to_acc();
                }
                self.apply_all::<T>(sums, valid, axis_counts);
                out.extend_map(sums, T::from_acc);
            }
        }
    }

    /// The one count a window's values are divided by, or `None` for
    /// [`Divisor::PerAxis`], which divides by each dim's count in turn.
    #[inline(always)]
    fn one_count(self, valid: usize, axis_counts: &[usize]) -> Option<usize> {
        match self {
            Divisor::Padded => Some(axis_counts.iter().product()),
            Divisor::Valid => Some(valid),
            Divisor::Fixed(n) => Some(n),
            Divisor::PerAxis => None,
        }
    }
}

/// `1 / n` in the accumulation type when multiplying by it is dividing by `n`: for `n` a
/// power of two, both give the correctly rounded `v · 2^-k`, so the bits are the same,
/// and a multiplication is several times cheaper than a division (2x2 windows).
#[inline(always)]
fn exact_reciprocal<T: Element>(n: usize) -> Option<T::Acc> {
    // A power of two below 2^64 converts exactly, and its reciprocal (down to 2^-63) is a
    // normal number in every accumulation type (f32 and f64).
    n.is_power_of_two().then(|| T::Acc::one() / T::count(n))
}

/// Forward: the window sum (taps in row-major order, starting from zero) over the
/// divisor; 0 for a window with no valid tap.
///
/// Paths ([`Path`]), each covered by the reference tests: channels-first stride-1
/// windows sum a zero-padded plane as a stencil ([`Stencil`]); other channels-first rows
/// ([`plane_rows`]) sum the complete windows of an output row [`RUN_CHUNK`] outputs at a
/// time; channels-first planes without such runs are interleaved [`PLANE_GROUP`] at a
/// time and summed as channels-last, which ([`lane_chunks`]) sums [`REGISTER_CHUNK`] or
/// [`LANE_CHUNK`] channels at a time. All add the taps of each output in the same order
/// as the plain loop, so the results are bitwise the same — except channels-first planes
/// reduced to one value (global pooling), which [`plane_sum`] adds with 16 partial sums:
/// there the bits depend on the plane's size alone, and differ from the plain loop's by
/// rounding.
pub(crate) fn forward<T: Element>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    out: Out<'_, T>,
) -> Result<()> {
    if windows.is_whole_plane() {
        return match blocking.lanes {
            1 => whole_plane_means(x, windows, divisor, out),
            lanes => whole_plane_lane_means(x, lanes, windows, divisor, out),
        };
    }
    let block_bytes = (windows.input_volume.saturating_mul(blocking.lanes)).saturating_mul(size_of::<T::Acc>());
    // Channels-last windows that read each cell about once stream their input; where the
    // CPU widens cheaply, widening it as they read it beats a widened copy (W7 on the
    // Xeon: bf16 1.42-1.50x, f16 with F16C 2.2x). So do 2-D windows summed a row at a
    // time, which widen each input row once (A13: 1.14-1.45x), and, with AVX-512, other
    // overlapping windows over whole register chunks of channels, whose sums stay in
    // registers as they widen each tap (W3, 192 channels: f16 1.5x, bf16 1.3x). Not
    // channels-first planes (bf16 W7 0.58-0.62x).
    let lanes = blocking.lanes;
    let widen_as_read = T::widens_cheaply()
        && lanes > 1
        && (windows.read_input_about_once()
            || sums_by_dim(windows) && separable::sums_by_rows(windows)
            || !sums_by_dim(windows) && lanes >= REGISTER_CHUNK && widening_isa::<T>() == Isa::Avx512);
    if lanes == 1 && !sums_by_dim(windows) {
        if let Some(stencil) = Stencil::<T>::of(windows, divisor)? {
            // 16-bit planes are widened and narrowed a plane at a time, in cache, under
            // AVX-512: W3 f16 1.19x, bf16 1.16x the widened copy of whole jobs below
            // (1 thread, 3 rounds; under AVX2 bf16 lost, 0.89x).
            return stencil.forward(x, widening_isa::<T>(), out);
        }
    }
    if size_of::<T>() < size_of::<T::Acc>() && block_bytes <= WIDENED_BLOCK_LIMIT && !widen_as_read {
        return forward_widened(x, blocking, windows, divisor, out);
    }
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    let isa = match () {
        () if widen_as_read => widening_isa::<T>(),
        () if reads_whole_lines(x, lanes) => simd::current(),
        () => window_loop_isa(),
    };
    if sums_by_dim(windows) {
        return separable_means(x, blocking, windows, divisor, out);
    }
    match Path::choose(blocking, windows)? {
        Path::Rows(rows) => par_blocks_with(
            out,
            ov,
            || Ok(Vec::new()),
            |phases, b, out| {
                let x = &x[b * iv..][..iv];
                isa.run(
                    #[inline(always)]
                    || {
                        if rows.phased {
                            split_phases(x, rows.width, 2, phases)?;
                        }
                        plane_rows(x, phases, &rows, divisor, out)
                    },
                )
            },
        ),
        Path::PlaneGroups => par_blocks_with_in_order(
            out,
            PLANE_GROUP * ov,
            || Ok((Vec::new(), buffer::filled(PLANE_GROUP * ov, T::zero(), "scratch")?)),
            |(interleaved, means), g, out| {
                let planes = out.len() / ov;
                let x = &x[g * PLANE_GROUP * iv..][..planes * iv];
                if planes < PLANE_GROUP {
                    return (0..planes)
                        .try_for_each(|p| lane_chunks(&x[p * iv..][..iv], 1, windows, divisor, 0..ov, false, out));
                }
                isa.run(
                    #[inline(always)]
                    || {
                        interleave_planes(x, iv, interleaved)?;
                        lane_chunks(interleaved, PLANE_GROUP, windows, divisor, 0..ov, false, &mut Sink::over(means))?;
                        deinterleave_planes(means, ov, out);
                        Ok(())
                    },
                )
            },
        ),
        Path::LaneChunks | Path::Plain => {
            let lanes = blocking.lanes;
            let band = band_outputs(ov, lanes * size_of::<T>());
            par_blocks_in_order(out, band * lanes, |block, out| {
                let (b, first) = (block / (ov / band), block % (ov / band) * band);
                let x = &x[b * iv * lanes..][..iv * lanes];
                isa.run(
                    #[inline(always)]
                    || lane_chunks(x, lanes, windows, divisor, first..first + band, true, out),
                )
            })
        }
    }
}

/// Widened input per parallel job of [`forward_widened`], at most (unless one block is
/// larger). When it was chosen, on W3 (32x192x28x28, 3x3) in f16: 256 KiB was 0.92x the
/// 1 MiB then chosen (more jobs to set up), 4 MiB 0.55x channels-last (the job no longer
/// fits in cache). On the Xeon (2 MiB L2) 512 KiB beat 1 MiB on the channels-first
/// forwards: W3 f16 1.08 / 1.17x, bf16 1.03 / 1.11x, W7 f16 1.08 / 1.07x, A13 f16
/// 1.05 / 1.07x (1 / 2 threads, 3 rounds); channels-last images are larger than a job.
const WIDENED_JOB_BYTES: usize = 512 << 10;

/// The largest block [`forward_widened`] widens whole (in bytes widened): larger blocks
/// (one huge image) keep the direct path rather than a scratch copy of that size per
/// thread.
const WIDENED_BLOCK_LIMIT: usize = 16 << 20;

/// The forward of a 16-bit type, through the accumulation type: each job widens whole
/// blocks of the input to `T::Acc` once, runs [`forward`] on them, and rounds the means
/// to `T` as it stores them (with the CPU's conversions, [`Element::widen_slice`]). The
/// kernels widen every tap they read otherwise, in software, a window's worth of
/// conversions per input cell. The sums, their order and the divisions are those of the
/// direct path, so the bits are too. A/B against the direct path (1 thread): W3 (3x3
/// stride 1) 3.1x channels-first, 4.5x channels-last; W7 (2x2 stride 2, each cell read
/// once) 1.2-1.6x. (Channels-first stride-1 windows now take the [`Stencil`], which
/// widens a plane at a time.)
fn forward_widened<T: Element>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    out: Out<'_, T>,
) -> Result<()> {
    let lanes = blocking.lanes;
    let (block_in, block_out) = (windows.input_volume * lanes, windows.output_volume * lanes);
    let mut per_job = (WIDENED_JOB_BYTES / size_of::<T::Acc>() / block_in.max(1)).clamp(1, blocking.blocks.max(1));
    if lanes == 1 && per_job >= PLANE_GROUP {
        // Whole groups of the channels-first interleaving.
        per_job -= per_job % PLANE_GROUP;
    }
    let isa = simd::current();
    par_blocks(out, per_job * block_out, |job, out| {
        let blocks = out.len() / block_out.max(1);
        let x = &x[job * per_job * block_in..][..blocks * block_in];
        buffer::with_spare(x.len(), "widened input", |wide_x: &mut [T::Acc]| {
            buffer::with_spare(out.len(), "widened means", |wide_means: &mut [T::Acc]| {
                isa.run(
                    #[inline(always)]
                    || T::widen_slice(x, wide_x),
                );
                let wide_blocking = Blocking { blocks, lanes };
                forward::<T::Acc>(wide_x, wide_blocking, windows, divisor, Out::from(&mut *wide_means))?;
                isa.run(
                    #[inline(always)]
                    || T::narrow_slice(wide_means, out),
                );
                Ok(())
            })
        })
    })
}

/// Whether the forward sums windows one spatial dim at a time ([`separable::mean_block`]):
/// windows large enough for it to pay. The choice does not depend on the layout or the
/// channel count (channels-first planes are interleaved [`PLANE_GROUP`] at a time), so
/// both layouts give the same bits, as they do for smaller windows.
pub(crate) fn sums_by_dim(windows: &Windows) -> bool {
    separable::worthwhile(windows, PLANE_GROUP, Reduction::Sum)
}

/// Whether the forward adds each window's taps one at a time in row-major window order
/// from zero, and the backward each cell's shares in output order (the plain loops'
/// order and bits): all but whole planes of channels-first inputs ([`plane_sum`]; their
/// backward is a fill, in order) and windows summed one dim at a time ([`sums_by_dim`]).
pub(crate) fn sums_in_window_order(blocking: Blocking, windows: &Windows) -> bool {
    let whole_channels_first_plane = blocking.lanes == 1 && windows.is_whole_plane();
    !whole_channels_first_plane && !sums_by_dim(windows)
}

/// The forward through [`separable::mean_block`], or for channels-first 2-D planes whose
/// columns have complete stride-1 windows [`separable::mean_plane`], a plane at a time
/// with no interleaving (the same bits).
fn separable_means<T: Element>(
    x: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    out: Out<'_, T>,
) -> Result<()> {
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    if let (1, Some(plan)) = (blocking.lanes, separable::PlanePlan::of(windows)) {
        // AVX-512 measured 0.93-0.98x the AVX2 build here (f16 1.01x).
        let isa = window_loop_isa();
        return par_blocks_with_in_order(
            out,
            ov,
            || Ok(separable::PlaneScratch::new()),
            |scratch, p, out| {
                let x = &x[p * iv..][..iv];
                isa.run(
                    #[inline(always)]
                    || separable::mean_plane(x, windows, plan, divisor, scratch, out),
                )
            },
        );
    }
    by_lane_blocks(
        x,
        iv,
        out,
        ov,
        blocking,
        separable::SumScratch::new,
        // Inlined into `by_lane_blocks`' instruction-set variants.
        #[inline(always)]
        |x, lanes, scratch, out| separable::mean_block(x, lanes, windows, divisor, scratch, out),
    )
}

/// The backward through [`separable::share_block`].
fn separable_shares<T: Element>(
    grad_out: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    grad_in: Out<'_, T>,
) -> Result<()> {
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    by_lane_blocks(
        grad_out,
        ov,
        grad_in,
        iv,
        blocking,
        separable::ShareScratch::new,
        // Inlined into `by_lane_blocks`' instruction-set variants.
        #[inline(always)]
        |g, lanes, scratch, grad_in| separable::share_block(g, lanes, windows, divisor, scratch, grad_in),
    )
}

/// Runs a channels-last block kernel `f(source block, lanes, scratch, destination block)`
/// over planes of `source_volume` and `destination_volume` cells, in parallel:
/// channels-last blocks as they are; channels-first planes interleaved [`PLANE_GROUP`] at a
/// time, and a last, partial group one plane at a time (the same results for a kernel
/// whose lanes do not depend on each other).
#[inline(always)]
fn by_lane_blocks<T: Element, S>(
    source: &[T],
    source_volume: usize,
    destination: Out<'_, T>,
    destination_volume: usize,
    blocking: Blocking,
    scratch: impl Fn() -> S + Sync + Send,
    f: impl Fn(&[T], usize, &mut S, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<()> {
    // 16-bit values: 1.1-1.4x the AVX2 build on 13x13 windows; f32 gains nothing there
    // and f64 loses 3 %.
    let isa = widening_isa::<T>();
    let (sv, dv) = (source_volume, destination_volume);
    let lanes = blocking.lanes;
    if lanes > 1 {
        return par_blocks_with(
            destination,
            dv * lanes,
            || Ok(scratch()),
            |scratch, b, destination| {
                let source = &source[b * sv * lanes..][..sv * lanes];
                isa.run(
                    #[inline(always)]
                    || f(source, lanes, scratch, destination),
                )
            },
        );
    }
    par_blocks_with_in_order(
        destination,
        PLANE_GROUP * dv,
        || Ok((Vec::new(), buffer::filled(PLANE_GROUP * dv, T::zero(), "scratch")?, scratch())),
        |(interleaved, results, scratch), g, destination| {
            let planes = destination.len() / dv;
            let source = &source[g * PLANE_GROUP * sv..][..planes * sv];
            isa.run(
                #[inline(always)]
                || {
                    if planes < PLANE_GROUP {
                        return (0..planes).try_for_each(|p| {
                            f(&source[p * sv..][..sv], 1, scratch, &mut results[..dv])?;
                            destination.extend(&results[..dv]);
                            Ok(())
                        });
                    }
                    interleave_planes(source, sv, interleaved)?;
                    f(interleaved, PLANE_GROUP, scratch, results)?;
                    deinterleave_planes(results, dv, destination);
                    Ok(())
                },
            )
        },
    )
}

/// Independent partial sums of [`plane_sum`].
const PLANE_SUM_LANES: usize = 16;

/// The sum of a contiguous slice in an order fixed by its length alone:
/// [`PLANE_SUM_LANES`] partial sums (`partial[i % 16] += values[i]`, in order), then
/// added pairwise (16 → 8 → 4 → 2 → 1). Independent partial sums vectorise where one
/// running sum cannot; the order does not depend on the thread count or the
/// instruction set, so neither do the bits. Against the sequential sum it differs only
/// by rounding: the error of either is at most `n · eps · Σ|v|` for `n` values.
#[inline(always)]
fn plane_sum<T: Element>(values: &[T]) -> T::Acc {
    let mut partial = [num_traits::zero::<T::Acc>(); PLANE_SUM_LANES];
    let chunks = values.chunks_exact(PLANE_SUM_LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p = *p + v.to_acc();
        }
    }
    // The tail as one more (partial) chunk, the missing values read as zero: adding +0
    // to a partial sum that started from +0 changes no bit, and a full-width add keeps
    // the partial sums in registers.
    for (i, p) in partial.iter_mut().enumerate() {
        let v = if i < tail.len() { tail[i].to_acc() } else { num_traits::zero::<T::Acc>() };
        *p = *p + v;
    }
    let mut width = PLANE_SUM_LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            partial[i] = partial[i] + partial[i + width];
        }
    }
    partial[0]
}

/// [`plane_sum`] of every `volume`-long plane of `x` into `sums`, with explicit AVX2 code
/// where `T` is `f32`, `f16` or `bf16` (summed in `f32`) and `isa` has AVX2 (else
/// `false`, nothing written): the same additions in the same order, so the same bits.
/// LLVM compiles the generic tail and pairwise steps into a scalar add and a branch per
/// lane (W4, 49-cell planes: 0.8x PyTorch's time), and widens 16-bit values one at a
/// time (W4 channels-first forward with the 16-bit values widened in registers: f16
/// 4.6x, bf16 3.2x on 1 thread).
#[inline(always)]
fn plane_sums_avx2<T: Element>(isa: Isa, x: &[T], volume: usize, sums: &mut [T::Acc]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 && std::any::TypeId::of::<T::Acc>() == std::any::TypeId::of::<f32>() {
        use std::any::TypeId;
        // SAFETY: `T::Acc` is `f32` (its type id says so): the cast reinterprets the
        // slice as the type it already is, same length and lifetime.
        let sums = unsafe { std::slice::from_raw_parts_mut(sums.as_mut_ptr().cast::<f32>(), sums.len()) };
        let (ptr, len) = (x.as_ptr(), x.len());
        // SAFETY (each arm): `T` is the type its id says, so the cast reinterprets `x` as
        // that type (`f16` and `bf16` as their 16-bit patterns), same length and lifetime;
        // the kernels' `isa` comes from `simd::current()`, which never exceeds what the
        // CPU has, and it includes AVX2 (with F16C) here.
        unsafe {
            match TypeId::of::<T>() {
                t if t == TypeId::of::<f32>() => {
                    avx2_sums::plane_sums(std::slice::from_raw_parts(ptr.cast::<f32>(), len), volume, sums)
                }
                t if t == TypeId::of::<half::f16>() => {
                    avx2_sums::plane_sums_16::<false>(std::slice::from_raw_parts(ptr.cast::<u16>(), len), volume, sums)
                }
                t if t == TypeId::of::<half::bf16>() => {
                    avx2_sums::plane_sums_16::<true>(std::slice::from_raw_parts(ptr.cast::<u16>(), len), volume, sums)
                }
                _ => return false,
            }
        }
        return true;
    }
    let _ = (isa, x, volume, sums);
    false
}

#[cfg(target_arch = "x86_64")]
mod avx2_sums {
    use super::PLANE_SUM_LANES;
    use std::arch::x86_64::*;

    /// See [`super::plane_sums_avx2`]: lanes 0-7 of the 16 partial sums in one register,
    /// 8-15 in another; the tail through masked loads (masked-off lanes read +0).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn plane_sums(x: &[f32], volume: usize, sums: &mut [f32]) {
        let chunks = volume / PLANE_SUM_LANES;
        // SAFETY: compiled for AVX2, which the caller guarantees.
        let (mask_lo, mask_hi) = unsafe { tail_masks(volume % PLANE_SUM_LANES) };
        for (sum, plane) in sums.iter_mut().zip(x.chunks_exact(volume.max(1))) {
            let p = plane.as_ptr();
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in 0..chunks {
                // SAFETY: chunk `c` is 16 values of `plane` (c < volume / 16).
                unsafe {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(p.add(c * PLANE_SUM_LANES)));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(p.add(c * PLANE_SUM_LANES + 8)));
                }
            }
            // SAFETY: `t` is at most one past the end of `plane`; the masked loads read
            // only the `tail` values left in it (masked-off lanes neither read nor
            // fault, so `t + 8` may lie past the end when `tail <= 8`).
            unsafe {
                let t = p.add(chunks * PLANE_SUM_LANES);
                lo = _mm256_add_ps(lo, _mm256_maskload_ps(t, mask_lo));
                hi = _mm256_add_ps(hi, _mm256_maskload_ps(t.wrapping_add(8), mask_hi));
            }
            // SAFETY: compiled for AVX2, which the caller guarantees.
            *sum = unsafe { reduce(lo, hi) };
        }
    }

    /// [`plane_sums`] of `f16` values (`BF16` false) or `bf16` values, given as their
    /// bit patterns, each widened to `f32` in registers (F16C's conversion, or a shift
    /// for bf16) and added in `f32` as there. AVX2 has no 16-bit masked loads: the tail
    /// reads the 16 values from its start (the next plane's first ones past it) and
    /// clears the lanes past the plane to +0, or, where those 16 would run past `x`,
    /// reads a copy padded with zero patterns (+0 in both types).
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn plane_sums_16<const BF16: bool>(x: &[u16], volume: usize, sums: &mut [f32]) {
        let chunks = volume / PLANE_SUM_LANES;
        let tail = volume % PLANE_SUM_LANES;
        // SAFETY: compiled for AVX2, which the caller guarantees.
        let (mask_lo, mask_hi) = unsafe { tail_masks(tail) };
        let (mask_lo, mask_hi) = (_mm256_castsi256_ps(mask_lo), _mm256_castsi256_ps(mask_hi));
        for (k, (sum, plane)) in sums.iter_mut().zip(x.chunks_exact(volume.max(1))).enumerate() {
            let p = plane.as_ptr();
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in 0..chunks {
                // SAFETY: chunk `c` is 16 values of `plane` (c < volume / 16).
                unsafe {
                    lo = _mm256_add_ps(lo, widen::<BF16>(p.add(c * PLANE_SUM_LANES)));
                    hi = _mm256_add_ps(hi, widen::<BF16>(p.add(c * PLANE_SUM_LANES + 8)));
                }
            }
            let tail_start = k * volume + chunks * PLANE_SUM_LANES;
            let mut rest = [0u16; PLANE_SUM_LANES];
            let t = if tail_start + PLANE_SUM_LANES <= x.len() {
                // SAFETY: the 16 values from `tail_start` lie inside `x` (checked).
                unsafe { x.as_ptr().add(tail_start) }
            } else {
                rest[..tail].copy_from_slice(&plane[chunks * PLANE_SUM_LANES..]);
                rest.as_ptr()
            };
            // SAFETY: `t` points to 16 readable values (above).
            unsafe {
                lo = _mm256_add_ps(lo, _mm256_and_ps(widen::<BF16>(t), mask_lo));
                hi = _mm256_add_ps(hi, _mm256_and_ps(widen::<BF16>(t.add(8)), mask_hi));
                *sum = reduce(lo, hi);
            }
        }
    }

    /// Masks of a plane's last `tail` values (fewer than 16) among 16 lanes: all ones in
    /// lanes 0-7 (first) and 8-15 (second) below `tail`, zero above.
    ///
    /// # Safety
    /// The CPU must support AVX (always inlined into the AVX2 functions above).
    #[inline(always)]
    unsafe fn tail_masks(tail: usize) -> (__m256i, __m256i) {
        let lane = |i: usize| if i < tail { -1 } else { 0 };
        // SAFETY: the caller guarantees AVX.
        unsafe {
            (
                _mm256_setr_epi32(lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7)),
                _mm256_setr_epi32(lane(8), lane(9), lane(10), lane(11), lane(12), lane(13), lane(14), lane(15)),
            )
        }
    }

    /// The 8 values at `p` widened to `f32`: `bf16` by a shift into the high half of
    /// each lane, `f16` by F16C's conversion (exact).
    ///
    /// # Safety
    /// `p` must point to 8 readable values; the CPU must support AVX2 and F16C (always
    /// inlined into [`plane_sums_16`], which is compiled for them).
    #[inline(always)]
    unsafe fn widen<const BF16: bool>(p: *const u16) -> __m256 {
        // SAFETY: the caller guarantees the 16 bytes and the features.
        unsafe {
            let halves = _mm_loadu_si128(p.cast::<__m128i>());
            match BF16 {
                true => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves))),
                false => _mm256_cvtph_ps(halves),
            }
        }
    }

    /// `plane_sum`'s pairwise steps over its 16 partial sums, lanes 0-7 in `lo` and 8-15
    /// in `hi`: 16 → 8 → 4 → 2 → 1, adding lane `i + width` to lane `i`.
    ///
    /// # Safety
    /// The CPU must support AVX (always inlined into the AVX2 functions above).
    #[inline(always)]
    unsafe fn reduce(lo: __m256, hi: __m256) -> f32 {
        // SAFETY: the caller guarantees AVX.
        unsafe {
            let eight = _mm256_add_ps(lo, hi);
            let four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps::<1>(eight));
            let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
            let one = _mm_add_ss(two, _mm_movehdup_ps(two));
            _mm_cvtss_f32(one)
        }
    }
}

/// Planes per parallel job of the whole-plane paths: about 16 Ki cells, at least one plane.
fn planes_per_job(volume: usize) -> usize {
    (16 * 1024 / volume.max(1)).max(1)
}

/// The divisor of the one window of whole-plane windows: its valid tap count and its
/// padded count per dim.
fn whole_plane_counts(windows: &Windows) -> Result<(usize, Vec<usize>)> {
    let (mut valid, mut axis_counts) = (0, Vec::new());
    windows.for_each(|_, window| {
        valid = window.cells.len();
        axis_counts.extend_from_slice(window.axis_counts);
        Ok(())
    })?;
    Ok((valid, axis_counts))
}

/// Channels-first forward when the one window is the whole plane (global pooling): each
/// plane is a contiguous slice, summed by [`plane_sum`].
fn whole_plane_means<T: Element>(x: &[T], windows: &Windows, divisor: Divisor, out: Out<'_, T>) -> Result<()> {
    let iv = windows.input_volume;
    let (valid, axis_counts) = whole_plane_counts(windows)?;
    let planes = planes_per_job(iv);
    let isa = window_loop_isa();
    par_blocks_with(
        out,
        planes,
        || buffer::filled(planes, num_traits::zero::<T::Acc>(), "scratch"),
        |sums, b, out| {
            let x = &x[b * planes * iv..][..out.len() * iv];
            let sums = &mut sums[..out.len()];
            isa.run(
                #[inline(always)]
                || {
                    if !plane_sums_avx2(isa, x, iv, sums) {
                        for (sum, plane) in sums.iter_mut().zip(x.chunks_exact(iv)) {
                            *sum = plane_sum(plane);
                        }
                    }
                    // Which NaN an addition of two keeps depends on the operand order the
                    // compiler picks for each path (an infinity minus itself gives the
                    // negative default NaN, an input NaN is positive): a 16-bit NaN sum
                    // is the canonical quiet NaN, the same bits on every path.
                    if size_of::<T>() < size_of::<T::Acc>() {
                        for sum in sums.iter_mut().filter(|sum| num_traits::Float::is_nan(**sum)) {
                            *sum = num_traits::Float::nan();
                        }
                    }
                    // All planes' divisions at once, and their rounding (the same bits
                    // as one by one).
                    divisor.apply_all::<T>(sums, valid, &axis_counts);
                    T::narrow_slice(sums, out);
                    Ok(())
                },
            )
        },
    )
}

/// Channels-last forward when the one window is the whole plane (global pooling): every
/// channel's sum runs over the cells in order, as in [`lane_chunks`] (so the same bits),
/// but all channels advance together, reading the block front to back in one stream.
fn whole_plane_lane_means<T: Element>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    out: Out<'_, T>,
) -> Result<()> {
    let iv = windows.input_volume;
    let (valid, axis_counts) = whole_plane_counts(windows)?;
    let isa = window_loop_isa();
    par_blocks_with(
        out,
        lanes,
        || buffer::filled(lanes, num_traits::zero::<T::Acc>(), "scratch"),
        |sums, b, out| {
            let x = &x[b * iv * lanes..][..iv * lanes];
            isa.run(
                #[inline(always)]
                || {
                    // 16-bit values widened as read and the means rounded in bulk, with
                    // the CPU's conversions where it has them (one at a time in software,
                    // W4's f16 forward took 1.9x the f32 time).
                    sums.fill(num_traits::zero::<T::Acc>());
                    for cell in x.chunks_exact(lanes) {
                        T::add_widened_slice(sums, cell);
                    }
                    divisor.apply_all::<T>(sums, valid, &axis_counts);
                    T::narrow_slice(sums, out);
                    Ok(())
                },
            )
        },
    )
}

/// Channels-first backward when the one window is the whole plane: every cell of a plane
/// gets its share, `0 + grad_output / divisor` (the bits of the general gather).
fn whole_plane_shares<T: Element>(
    grad_out: &[T],
    windows: &Windows,
    divisor: Divisor,
    grad_in: Out<'_, T>,
) -> Result<()> {
    let iv = windows.input_volume;
    let (valid, axis_counts) = whole_plane_counts(windows)?;
    let planes = planes_per_job(iv);
    if size_of::<T>() == size_of::<T::Acc>() {
        return par_blocks_in_order(grad_in, planes * iv, |b, grad_in| {
            for &gv in &grad_out[b * planes..][..grad_in.len() / iv] {
                let share = T::from_acc(divisor.apply_counts::<T>(gv.to_acc(), valid, &axis_counts));
                grad_in.repeat(T::zero().add(share), iv);
            }
            Ok(())
        });
    }
    let zero = num_traits::zero::<T::Acc>();
    par_blocks_with_in_order(
        grad_in,
        planes * iv,
        || Ok((buffer::filled(planes, zero, "shares")?, buffer::filled(planes, T::zero(), "shares")?)),
        |(wide, shares), b, grad_in| {
            let g = &grad_out[b * planes..][..grad_in.len() / iv];
            let (wide, shares) = (&mut wide[..g.len()], &mut shares[..g.len()]);
            // 16-bit shares widened and rounded in bulk, with the CPU's conversions where
            // it has them (one at a time in software, W4's f16 backward took 1.4x the
            // f32 time).
            T::widen_slice(g, wide);
            for share in wide.iter_mut() {
                *share = divisor.apply_counts::<T>(*share, valid, &axis_counts);
            }
            T::narrow_slice(wide, shares);
            for &share in shares.iter() {
                grad_in.repeat(share.added_to_zero(), iv);
            }
            Ok(())
        },
    )
}

/// The sum of `taps` in order, from zero.
#[inline(always)]
fn window_sum<T: Element>(taps: impl Iterator<Item = T>) -> T::Acc {
    taps.fold(num_traits::zero::<T::Acc>(), |acc, v| acc + v.to_acc())
}

/// One channels-first plane, row by row of the output.
#[inline(always)]
fn plane_rows<T: Element>(x: &[T], phases: &[T], rows: &Rows, divisor: Divisor, out: &mut [T]) -> Result<()> {
    let (ow, width) = (rows.out_cols, rows.width);
    let mut counts = Vec::new();
    rows.outer.for_each(
        #[inline(always)]
        |orow, outer| {
            let lines = outer.cells;
            let out = &mut out[orow * ow..][..ow];
            counts.clear();
            counts.extend_from_slice(outer.axis_counts);
            counts.push(0);
            let last = counts.len() - 1;
            let run = rows.run_of(orow);
            let (lo, hi) = run.map_or((ow, ow), |(r, _)| (r.first, r.end));
            for ocol in (0..lo).chain(hi..ow) {
                let (cols, col_count) = rows.cols.window(ocol);
                let valid = lines.len() * cols.len();
                out[ocol] = if valid == 0 {
                    T::zero()
                } else {
                    let sum = window_sum(lines.iter().flat_map(|&r| cols.iter().map(move |&c| x[r * width + c])));
                    counts[last] = col_count;
                    T::from_acc(divisor.apply_counts::<T>(sum, valid, &counts))
                };
            }
            let Some((run, taps)) = run else { return Ok(()) };
            counts[last] = run.kernel;
            let out = &mut out[run.first..run.end];
            let divide = (divisor, taps.len(), &counts[..]);
            match run.stride {
                1 => run_chunks::<T, 1>(x, taps, 1, divide, out),
                2 => run_chunks::<T, 1>(phases, taps, 1, divide, out),
                s => run_chunks::<T, 0>(x, taps, s, divide, out),
            }
            Ok(())
        },
    )
}

/// Means of a run of at least [`RUN_CHUNK`] complete windows of `valid` taps each, every
/// sum divided by the `divisor` of those counts: output `i` adds
/// `source[position + i·source_step]` for each tap position in order. `STEP` fixes
/// `source_step` at compile time (0: use the argument).
#[inline(always)]
fn run_chunks<T: Element, const STEP: usize>(
    source: &[T],
    taps: &[(usize, u32)],
    source_step: usize,
    (divisor, valid, axis_counts): (Divisor, usize, &[usize]),
    out: &mut [T],
) {
    let step = if STEP == 0 { source_step } else { STEP };
    let span = (RUN_CHUNK - 1) * step + 1;
    for start in chunk_starts(out.len(), RUN_CHUNK) {
        let shift = start * step;
        let mut sums = [num_traits::zero::<T::Acc>(); RUN_CHUNK];
        for &(position, _) in taps {
            let values = &source[position + shift..][..span];
            for i in 0..RUN_CHUNK {
                sums[i] = sums[i] + values[i * step].to_acc();
            }
        }
        divisor.apply_all::<T>(&mut sums, valid, axis_counts);
        for (o, &mean) in out[start..start + RUN_CHUNK].iter_mut().zip(&sums) {
            *o = T::from_acc(mean);
        }
    }
}

/// Channels per block of the channels-last path, after [`REGISTER_CHUNK`]s.
const LANE_CHUNK: usize = 16;

/// Channels whose `f32` sums [`lane_chunks`] keeps in registers across an overlapping
/// window's taps where there are enough: eight AVX2 vectors, eight independent chains
/// of additions where [`LANE_CHUNK`] gave two, each waiting on the latency of the last
/// addition. W3 channels-last forward (f32, 192 channels) on the Xeon, 7–9 rounds:
/// 1.27–1.37x (1 thread), 1.35–1.63x (2 threads) by the minima; 32 channels measured
/// 0.71–0.97x the 16, and 32 `f64` sums (eight vectors too) 0.74–0.76x, so `f64` keeps 16.
const REGISTER_CHUNK: usize = 4 * LANE_CHUNK;

/// The `outputs` of one channels-last block, written in order.
///
/// Windows that read their input about once ([`Windows::read_input_about_once`]) add
/// one tap at a time over all channels (`sums`, in cache), so the input is read front
/// to back within each tap's cell: reading [`LANE_CHUNK`] channels of every tap in turn
/// stalled on the loads there (W7's channels-last forward, 2x slower). Overlapping
/// windows, whose taps are mostly in cache, keep [`REGISTER_CHUNK`] (then
/// [`LANE_CHUNK`]) channels' sums in registers across the taps instead, and ask for
/// the input [`ROWS_AHEAD`](super::window::ROWS_AHEAD) rows ahead where it comes
/// `from_memory` (not an interleaved copy). Both add each channel's taps in the same order.
#[inline(always)]
fn lane_chunks<T: Element>(
    x: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    outputs: Range<usize>,
    from_memory: bool,
    out: &mut Sink<'_, T>,
) -> Result<()> {
    let tap_major = lanes >= TAP_MAJOR_LANES && windows.read_input_about_once();
    let scratch_len = if tap_major { lanes } else { 0 };
    let mut sums = buffer::filled(scratch_len, num_traits::zero::<T::Acc>(), "scratch")?;
    // 16-bit values are added and narrowed in bulk, with the CPU's conversions where it
    // has them (f16 W7 2.2x the per-value software conversions; bf16 the same time).
    let in_bulk = size_of::<T>() < size_of::<T::Acc>();
    let mut narrowed = buffer::filled(if in_bulk { scratch_len } else { 0 }, T::zero(), "scratch")?;
    let ahead = if from_memory { windows.cells_rows_ahead() } else { 0 };
    windows.for_each_in(
        outputs,
        #[inline(always)]
        |_, window: &Window<'_>| {
            if window.cells.is_empty() {
                out.repeat(T::zero(), lanes);
                return Ok(());
            }
            if tap_major && in_bulk {
                // The same additions, from zero in window order, and the same division.
                sums.fill(num_traits::zero::<T::Acc>());
                for &s in window.cells {
                    T::add_widened_slice(&mut sums, &x[s * lanes..][..lanes]);
                }
                divisor.apply_all::<T>(&mut sums, window.cells.len(), window.axis_counts);
                T::narrow_slice(&sums, &mut narrowed);
                out.extend(&narrowed);
                return Ok(());
            }
            if tap_major {
                // The first tap starts the sums (0 + v), the last one is added as the means
                // are stored: the same additions as zeroing the sums first, in two fewer
                // passes over them.
                let tap = |s: usize| &x[s * lanes..][..lanes];
                let (&last, rest) = window.cells.split_last().expect("a window with taps");
                let mut rest = rest.iter();
                match rest.next() {
                    Some(&first) => {
                        for (sum, &v) in sums.iter_mut().zip(tap(first)) {
                            *sum = num_traits::zero::<T::Acc>() + v.to_acc();
                        }
                        for &s in rest {
                            for (sum, &v) in sums.iter_mut().zip(tap(s)) {
                                *sum = *sum + v.to_acc();
                            }
                        }
                    }
                    None => sums.fill(num_traits::zero::<T::Acc>()),
                }
                divisor.add_and_store(&mut sums, tap(last), window.cells.len(), window.axis_counts, out);
                return Ok(());
            }
            if let (Some(&last), true) = (window.cells.last(), ahead > 0) {
                prefetch_cell(x, lanes, last.wrapping_add(ahead));
            }
            let mut c0 = 0;
            if lanes >= LANE_CHUNK {
                // Checked once per window, for the chunks only.
                let taps = window.lane_taps(x, lanes).ok_or(PoolError::Internal { what: "a tap outside the block" })?;
                if size_of::<T::Acc>() == 4 {
                    while c0 + REGISTER_CHUNK <= lanes {
                        window_chunk::<T, REGISTER_CHUNK>(taps, c0, window, divisor, out);
                        c0 += REGISTER_CHUNK;
                    }
                }
                while c0 + LANE_CHUNK <= lanes {
                    window_chunk::<T, LANE_CHUNK>(taps, c0, window, divisor, out);
                    c0 += LANE_CHUNK;
                }
            }
            for lane in c0..lanes {
                let sum = window_sum(window.cells.iter().map(|&s| x[s * lanes + lane]));
                out.push(T::from_acc(divisor.apply::<T>(sum, window)));
            }
            Ok(())
        },
    )
}

/// Lanes `c0..c0 + W` of one window in [`lane_chunks`]: its taps added in order, from
/// zero ([`Element::sum_widened_taps`]), divided and stored.
#[inline(always)]
fn window_chunk<T: Element, const W: usize>(
    taps: LaneTaps<'_, T>,
    c0: usize,
    window: &Window<'_>,
    divisor: Divisor,
    out: &mut Sink<'_, T>,
) {
    // Never `None`: `lane_chunks` passes whole chunks of channels. Were it, the outputs
    // would come up short, and the block's check of its writes would report it.
    let Some(tap) = taps.chunk::<W>(c0) else { return };
    // Straight into the block, with no array on the stack to copy from: with one, the
    // f16 forward's speed hung on where the thread's stack lay (see
    // `convert::mean_widened_taps_f16`).
    let Some(means) = out.next_chunk::<W>() else { return };
    let scale = divisor.single_scale::<T>(window.cells.len(), window.axis_counts);
    if scale.is_some_and(|(by, multiply)| T::mean_widened_taps::<W>(taps.count(), &tap, by, multiply, means)) {
        return;
    }
    let mut sums = T::sum_widened_taps::<W>(taps.count(), tap);
    divisor.apply_all::<T>(&mut sums, window.cells.len(), window.axis_counts);
    T::narrow_slice(&sums, means);
}

/// The instruction set of the average kernels: at most AVX2, as AVX-512 measured no faster
/// on their memory-bound loops (f32 forward 0.94-1.06x AVX2, bf16 channels-last forward
/// through a widened copy 0.88x), except the 16-bit gather in [`backward`] and, on CPUs
/// with full-width AVX-512, its channels-last gather of windows that read each cell about
/// once, the 16-bit channels-last forward that widens as it reads (W7 on the Xeon:
/// bf16 1.7x, f16 1.05-1.16x), and the `f32` channels-last forward over whole cache
/// lines ([`reads_whole_lines`]).
fn window_loop_isa() -> Isa {
    simd::current().at_most(Isa::Avx2)
}

/// Whether the channels-last `f32` forward's window loops run under the CPU's widest
/// instruction set: on CPUs with full-width AVX-512, where every pixel's channels start
/// on a cache line (the input on one, whole lines of channels), so that each 64-byte load
/// reads one line: W3 channels-last (192 channels) 1.06–1.12x on 1 thread, 1.05–1.09x
/// on 2; W7 (128) 1.05–1.07x / 1.01–1.02x; A13 and W4 channels-last 1.00–1.04x (3–5
/// rounds). Channels-first W7 measured 0.98–1.01x and stays at AVX2.
fn reads_whole_lines<T>(x: &[T], lanes: usize) -> bool {
    lanes > 1
        && size_of::<T>() == 4
        && (lanes * size_of::<T>()).is_multiple_of(64)
        && (x.as_ptr() as usize).is_multiple_of(64)
        && simd::full_width_avx512()
}

/// The instruction set of the loops that pay AVX-512 for 16-bit values alone, which widen
/// to f32 16 at a time there: the CPU's widest for f16 and bf16, [`window_loop_isa`]
/// otherwise.
fn widening_isa<T: Element>() -> Isa {
    if size_of::<T>() == 2 {
        simd::current()
    } else {
        window_loop_isa()
    }
}

/// Backward: every valid tap of a window receives `grad_output / divisor`, each input
/// cell adding its shares in output order from zero (PyTorch's CPU order).
///
/// Computed as a gather, one write per input cell and no zero-fill pass: each cell sums
/// the shares of the windows that cover it ([`Covering`]), in output order, so the
/// additions are the same as the scatter's. Channels-last sums [`WIDE_CHUNK`] channels at
/// a time; channels-first interleaves [`PLANE_GROUP`] planes to do the same, except
/// stride-1 windows, whose shares a stencil sums ([`Stencil`]). Windows too many to
/// tabulate fall back to the scatter.
pub(crate) fn backward<T: Element>(
    grad_out: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    grad_in: Out<'_, T>,
) -> Result<()> {
    if blocking.lanes == 1 && windows.is_whole_plane() {
        return whole_plane_shares(grad_out, windows, divisor, grad_in);
    }
    if sums_by_dim(windows) {
        return separable_shares(grad_out, blocking, windows, divisor, grad_in);
    }
    if blocking.lanes == 1 {
        if let Some(stencil) = Stencil::<T>::of(windows, divisor)? {
            return stencil.backward(grad_out, widening_isa::<T>(), grad_in);
        }
        // After the stencil: 1x1 windows tile the plane too, but the stencil was 2.3x
        // faster on them (Zen 4).
        if let Some(tiling) = Tiling::of(windows)?.filter(|t| t.cols.input() >= TILED_MIN_WIDTH) {
            return tiled_shares(grad_out, windows, &tiling, divisor, grad_in);
        }
    }
    let Some(covering) = windows.covering()? else {
        return backward_scatter(grad_out, blocking, windows, divisor, grad_in);
    };
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    // 16-bit values: f16 and bf16 channels-last 1.9-2.4x the AVX2 build, channels-first
    // 1.2x; f32 0.86-0.93x.
    let isa = widening_isa::<T>();
    let lanes = blocking.lanes;
    if lanes > 1 {
        // Channels-last windows that read each cell about once are a stream of stores,
        // which AVX-512 at full width speeds up: f32 W4 (global) 1.15 / 1.18x, W7 (2x2
        // stride 2) 1.07 / 1.09x (1 / 2 threads, Xeon, 5 rounds); overlapping windows lost
        // (W3 3x3 stride 1, 0.85x), as did channels-first W7 (0.95 / 0.98x).
        let isa = match simd::full_width_avx512() && windows.read_input_about_once() {
            true => simd::current(),
            false => isa,
        };
        if isa.run(T::adds_natively) && lanes.is_multiple_of(NATIVE_CHUNK) {
            return par_blocks_with_in_order(
                grad_in,
                iv * lanes,
                || {
                    let wide = buffer::filled(lanes, num_traits::zero::<T::Acc>(), "scratch")?;
                    Ok((wide, buffer::filled(ov * lanes, T::zero(), "scratch")?))
                },
                |(wide, shares), b, grad_in| {
                    let g = &grad_out[b * ov * lanes..][..ov * lanes];
                    isa.run(
                        #[inline(always)]
                        || gather_block_natively(g, lanes, windows, divisor, &covering, (wide, shares), grad_in),
                    )
                },
            );
        }
        return par_blocks_with_in_order(
            grad_in,
            iv * lanes,
            || buffer::filled(ov * lanes, num_traits::zero::<T::Acc>(), "scratch"),
            |shares, b, grad_in| {
                let g = &grad_out[b * ov * lanes..][..ov * lanes];
                isa.run(
                    #[inline(always)]
                    || gather_block(g, lanes, windows, divisor, &covering, shares, grad_in),
                )
            },
        );
    }
    par_blocks_with_in_order(
        grad_in,
        PLANE_GROUP * iv,
        || {
            let shares = buffer::filled(PLANE_GROUP * ov, num_traits::zero::<T::Acc>(), "scratch")?;
            Ok((Vec::new(), shares, buffer::filled(PLANE_GROUP * iv, T::zero(), "scratch")?))
        },
        |(interleaved, shares, gathered), g, grad_in| {
            let planes = grad_in.len() / iv;
            let grad_out = &grad_out[g * PLANE_GROUP * ov..][..planes * ov];
            if planes < PLANE_GROUP {
                return (0..planes).try_for_each(|p| {
                    let g = &grad_out[p * ov..][..ov];
                    gather_block(g, 1, windows, divisor, &covering, &mut shares[..ov], grad_in)
                });
            }
            isa.run(
                #[inline(always)]
                || {
                    interleave_planes(grad_out, ov, interleaved)?;
                    let gathered_in_order = &mut Sink::over(gathered);
                    gather_block(interleaved, PLANE_GROUP, windows, divisor, &covering, shares, gathered_in_order)?;
                    deinterleave_planes(gathered, iv, grad_in);
                    Ok(())
                },
            )
        },
    )
}

/// The narrowest rows [`tiled_shares`] takes: below, the work per row outweighs the row
/// (Zen 4: 14-wide rows, 7x7 outputs, 0.77x the interleaved gather; 20-wide 1.27x).
const TILED_MIN_WIDTH: usize = 16;

/// The channels-first backward of windows that cover each cell at most once
/// ([`Tiling`]): a cell's gradient is `0 + share` of its window (the gather's sum of one
/// share, so the same bits), or 0. A plane's shares are worked out at once
/// ([`plane_shares`]); each output row's are spread along a row once ([`spread_row`]),
/// and each input row under those windows copies it; the plane is written front to back.
/// 2x2 stride 2 against the interleaved gather of [`gather_block`] (AMD Zen 4, 1 / 2
/// threads, 3 rounds): W7 (32x128x56x56) f32 3.23 / 2.92x, f64 1.91 / 1.80x, f16
/// 2.93 / 2.79x, bf16 2.77 / 2.77x; 40- and 28-wide rows 3.11x and 2.30x, adaptive
/// 56 -> 28 3.76x (1 thread).
fn tiled_shares<T: Element>(
    grad_out: &[T],
    windows: &Windows,
    tiling: &Tiling,
    divisor: Divisor,
    grad_in: Out<'_, T>,
) -> Result<()> {
    let (iv, ov) = (windows.input_volume, windows.output_volume);
    let width = tiling.cols.input();
    let isa = widening_isa::<T>();
    par_blocks_with_in_order(
        grad_in,
        iv,
        || Ok((Vec::new(), Vec::new(), Vec::new())),
        |(wide, shares, row), p, grad_in| {
            let g = &grad_out[p * ov..][..ov];
            isa.run(
                #[inline(always)]
                || {
                    plane_shares(g, tiling, divisor, wide, shares)?;
                    buffer::resize(row, width, T::zero(), "scratch")?;
                    // The output row whose shares `row` holds.
                    let mut spread = None;
                    for &owner in &tiling.row_owner {
                        if owner == Tiling::NONE {
                            grad_in.repeat(T::zero(), width);
                            continue;
                        }
                        if spread != Some(owner) {
                            let ow = tiling.cols.output();
                            spread_row(&shares[owner as usize * ow..][..ow], tiling, row);
                            spread = Some(owner);
                        }
                        grad_in.extend(row);
                    }
                    Ok(())
                },
            )
        },
    )
}

/// A plane's shares `0 + grad_output / divisor` in `shares` (rounded to `T`, through
/// `wide` in the accumulation type): each output row's run of complete windows divided
/// at once, the other windows one by one. The same arithmetic as
/// [`Divisor::divide_into`] and the gather's sum from zero; -0 becomes +0.
#[inline(always)]
fn plane_shares<T: Element>(
    g: &[T],
    tiling: &Tiling,
    divisor: Divisor,
    wide: &mut Vec<T::Acc>,
    shares: &mut Vec<T>,
) -> Result<()> {
    let cols = &tiling.cols;
    let ow = cols.output();
    buffer::resize(wide, g.len(), num_traits::zero::<T::Acc>(), "scratch")?;
    buffer::resize(shares, g.len(), T::zero(), "scratch")?;
    T::widen_slice(g, wide);
    let mut counts = Vec::new();
    tiling.outer.for_each(
        #[inline(always)]
        |orow, outer| {
            let Some(wide) = wide.get_mut(orow * ow..(orow + 1) * ow) else { return Ok(()) };
            counts.clear();
            counts.extend_from_slice(outer.axis_counts);
            counts.push(0);
            let last = counts.len() - 1;
            let rows = outer.cells.len();
            let run = cols.interior.filter(|r| r.end <= ow);
            let (lo, hi) = run.map_or((ow, ow), |r| (r.first, r.end));
            if let Some(run) = run {
                counts[last] = run.kernel;
                divisor.apply_all::<T>(&mut wide[lo..hi], rows.saturating_mul(run.kernel), &counts);
            }
            for ocol in (0..lo).chain(hi..ow) {
                let (taps, col_count) = cols.window(ocol);
                counts[last] = col_count;
                divisor.apply_all::<T>(&mut wide[ocol..ocol + 1], rows.saturating_mul(taps.len()), &counts);
            }
            Ok(())
        },
    )?;
    // The gather adds each cell's one share to zero.
    for share in wide.iter_mut() {
        *share = num_traits::zero::<T::Acc>() + *share;
    }
    T::narrow_slice(wide, shares);
    Ok(())
}

/// One output row's `shares` spread along an input row, `row` ([`tiled_shares`]): each
/// column its window's share, or 0. A run of windows that tile the row evenly (complete,
/// stride = kernel, no dilation) fills `kernel` columns per share; the other columns
/// look their window up.
#[inline(always)]
fn spread_row<T: Element>(shares: &[T], tiling: &Tiling, row: &mut [T]) {
    let width = row.len();
    let tiles = tiling
        .cols
        .interior
        .filter(|r| r.end <= shares.len() && r.kernel == r.stride && r.dilation == 1 && r.kernel > 0);
    let (start, end) = match tiles {
        // Complete windows: the last one ends inside the row.
        Some(run) => {
            (run.first_coordinate(0).min(width), (run.first_coordinate(0) + run.len() * run.kernel).min(width))
        }
        None => (width, width),
    };
    let (head, rest) = row.split_at_mut(start);
    let (tiled, tail) = rest.split_at_mut(end - start);
    let look_up = |cells: &mut [T], owners: &[u32]| {
        for (cell, &owner) in cells.iter_mut().zip(owners) {
            *cell = shares.get(owner as usize).copied().unwrap_or(T::zero());
        }
    };
    look_up(head, &tiling.col_owner[..start]);
    look_up(tail, &tiling.col_owner[end..]);
    if let Some(run) = tiles {
        let shares = &shares[run.first..run.end];
        match run.kernel {
            // Vectorises as an interleave.
            2 => {
                for (pair, &share) in tiled.chunks_exact_mut(2).zip(shares) {
                    pair[0] = share;
                    pair[1] = share;
                }
            }
            k => {
                for (tile, &share) in tiled.chunks_exact_mut(k).zip(shares) {
                    tile.fill(share);
                }
            }
        }
    }
}

/// Outputs whose shares [`gather_block`] works out at a time.
const SHARE_RUN: usize = 64;

/// One block's backward as a gather: `grad_in[cell] = 0 + share[o1] + share[o2] + ...`
/// over the windows covering each cell, in output order, [`WIDE_CHUNK`] lanes at a time
/// (then [`LANE_CHUNK`], then one), the `lanes` values of each cell written in order.
/// Each window's share of its gradient, `grad_output / divisor`, goes into `shares` (room
/// for the block's outputs) as [`covered_cells`] asks for it.
#[inline(always)]
fn gather_block<T: Element>(
    g: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    covering: &Covering,
    shares: &mut [T::Acc],
    grad_in: &mut Sink<'_, T>,
) -> Result<()> {
    covered_cells(
        covering,
        windows.output_volume,
        shares,
        #[inline(always)]
        |shares: &mut [T::Acc], run| window_shares(g, lanes, windows, divisor, run, shares),
        #[inline(always)]
        |shares: &[T::Acc], outputs: &[usize]| {
            let mut c0 = 0;
            while let Some(vectors) = rounded_chunk_vectors::<T>((lanes - c0) / LANE_CHUNK) {
                match vectors {
                    12 => gather_chunk::<T, { 12 * LANE_CHUNK }>(shares, lanes, c0, outputs, grad_in),
                    8 => gather_chunk::<T, { 8 * LANE_CHUNK }>(shares, lanes, c0, outputs, grad_in),
                    6 => gather_chunk::<T, { 6 * LANE_CHUNK }>(shares, lanes, c0, outputs, grad_in),
                    _ => gather_chunk::<T, { 4 * LANE_CHUNK }>(shares, lanes, c0, outputs, grad_in),
                }
                c0 += vectors * LANE_CHUNK;
            }
            while c0 + WIDE_CHUNK <= lanes {
                gather_chunk::<T, WIDE_CHUNK>(shares, lanes, c0, outputs, grad_in);
                c0 += WIDE_CHUNK;
            }
            while c0 + LANE_CHUNK <= lanes {
                gather_chunk::<T, LANE_CHUNK>(shares, lanes, c0, outputs, grad_in);
                c0 += LANE_CHUNK;
            }
            for lane in c0..lanes {
                let sum = outputs
                    .iter()
                    .fold(num_traits::zero::<T::Acc>(), |sum, &o| T::from_acc(sum + shares[o * lanes + lane]).to_acc());
                grad_in.push(T::from_acc(sum));
            }
        },
    )
}

/// A block's cells in order, `gather` given each with the windows that cover it, after
/// `share` has worked out the shares of those windows into `shares`: [`SHARE_RUN`]
/// windows at a time, just before the first cell that needs them, so the shares are read
/// back while they are still in cache.
#[inline(always)]
fn covered_cells<S: ?Sized>(
    covering: &Covering,
    output_volume: usize,
    shares: &mut S,
    mut share: impl FnMut(&mut S, Range<usize>) -> Result<()>,
    mut gather: impl FnMut(&S, &[usize]),
) -> Result<()> {
    let mut shared = 0;
    for cell in 0..covering.input_volume() {
        let outputs = covering.outputs(cell);
        if let Some(&last) = outputs.last().filter(|&&last| last >= shared) {
            let end = last.saturating_add(SHARE_RUN).min(output_volume);
            share(shares, shared..end)?;
            shared = end;
        }
        gather(shares, outputs);
    }
    Ok(())
}

/// Lanes [`gather_block_natively`] sums at a time: one 512-bit vector of `f16`.
const NATIVE_CHUNK: usize = 32;

/// [`gather_block`] for a type the CPU adds natively ([`Element::adds_natively`]: `f16`
/// with AVX-512 FP16), `lanes` a multiple of [`NATIVE_CHUNK`]: the shares are rounded to
/// `T` once, and each cell adds them in `T`'s own arithmetic, 32 lanes per instruction,
/// instead of an `f32` addition and two conversions per 16. The same additions, in the
/// same order, with the same rounding after each, so the same bits (W3 channels-last f16
/// backward, 5 rounds: 1.59x on 1 thread, 1.38x on 2 by the medians, now faster than
/// f32).
#[inline(always)]
fn gather_block_natively<T: Element>(
    g: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    covering: &Covering,
    (wide, shares): (&mut [T::Acc], &mut [T]),
    grad_in: &mut Sink<'_, T>,
) -> Result<()> {
    covered_cells(
        covering,
        windows.output_volume,
        shares,
        #[inline(always)]
        |shares: &mut [T], run| {
            windows.for_each_in(
                run,
                #[inline(always)]
                |o, window: &Window<'_>| {
                    let shares = &mut shares[o * lanes..][..lanes];
                    if window.cells.is_empty() {
                        shares.fill(T::zero());
                        return Ok(());
                    }
                    // Widened, divided, and rounded to `T` once as they are narrowed
                    // (what `divide_into` rounds and keeps widened).
                    T::widen_slice(&g[o * lanes..][..lanes], wide);
                    divisor.apply_all::<T>(wide, window.cells.len(), window.axis_counts);
                    T::narrow_slice(wide, shares);
                    Ok(())
                },
            )
        },
        #[inline(always)]
        |shares: &[T], outputs: &[usize]| {
            let mut c0 = 0;
            while c0 + 6 * NATIVE_CHUNK <= lanes {
                native_chunk::<T, { 6 * NATIVE_CHUNK }>(shares, lanes, c0, outputs, grad_in);
                c0 += 6 * NATIVE_CHUNK;
            }
            while c0 + NATIVE_CHUNK <= lanes {
                native_chunk::<T, NATIVE_CHUNK>(shares, lanes, c0, outputs, grad_in);
                c0 += NATIVE_CHUNK;
            }
        },
    )
}

/// Lanes `c0..c0 + W` of one cell in [`gather_block_natively`]: the shares of `outputs`
/// added in order, from zero, each addition rounded to `T`.
#[inline(always)]
fn native_chunk<T: Element, const W: usize>(
    shares: &[T],
    lanes: usize,
    c0: usize,
    outputs: &[usize],
    grad_in: &mut Sink<'_, T>,
) {
    let share = |i: usize| -> &[T; W] { shares[outputs[i] * lanes + c0..][..W].try_into().expect("chunk length") };
    // Summed straight into the block (see `window_chunk`).
    let Some(sums) = grad_in.next_chunk::<W>() else { return };
    if !T::sum_rows_natively::<W>(outputs.len(), share, sums) {
        // Not reached (the block checked the CPU): the same additions one lane at a time.
        for (lane, sum) in sums.iter_mut().enumerate() {
            *sum = (0..outputs.len()).fold(T::zero(), |sum, i| sum.add(share(i)[lane]));
        }
    }
}

/// Lanes [`gather_block`] sums at a time where there are enough: twice [`LANE_CHUNK`],
/// so the index arithmetic of each covering window serves twice the additions (four
/// times was slower: 0.72x on W3 channels-last).
const WIDE_CHUNK: usize = 2 * LANE_CHUNK;

/// How many vectors of [`LANE_CHUNK`] lanes [`gather_block`] sums at a time for a 16-bit
/// type, with `rest` vectors of the cell left: 12, 8, 6 or 4, or `None` (narrower
/// chunks, and every width for `f32` and `f64`). Each addition of a 16-bit type ends in
/// a rounding, two conversions that make its dependency chain about 15 cycles long, so
/// a chunk needs 8 or more independent sums to run at the conversions' throughput. A
/// chunk is taken only where what it leaves is empty or wide enough to do the same
/// (256 lanes as 8 + 8 vectors, 192 as 12, 224 as 8 + 6). f16, 1 and 2 threads: W3's
/// shape (192 lanes) as 12 against 6 + 6, 1.09–1.11x, and 6 + 6 against 4 + 4 + 4,
/// 1.05–1.09x; 256 lanes as 8 + 8 against 4 x 4, 1.11–1.12x.
fn rounded_chunk_vectors<T: Element>(rest: usize) -> Option<usize> {
    if size_of::<T>() >= size_of::<T::Acc>() {
        return None;
    }
    // (vectors, the least a chunk of them may leave unless it leaves nothing)
    [(12, 6), (8, 4), (6, 4), (4, 0)]
        .into_iter()
        .find(|&(vectors, least_left)| rest == vectors || rest >= vectors + least_left)
        .map(|(vectors, _)| vectors)
}

/// Lanes `c0..c0 + W` of one cell in [`gather_block`]: the shares of `outputs` added in
/// order, from zero.
#[inline(always)]
fn gather_chunk<T: Element, const W: usize>(
    shares: &[T::Acc],
    lanes: usize,
    c0: usize,
    outputs: &[usize],
    grad_in: &mut Sink<'_, T>,
) {
    let share = |i: usize| -> &[T::Acc; W] { shares[outputs[i] * lanes + c0..][..W].try_into().expect("chunk length") };
    // Summed straight into the block (see `window_chunk`).
    let Some(sums) = grad_in.next_chunk::<W>() else { return };
    T::sum_rounded_rows::<W>(outputs.len(), share, sums);
}

/// The shares `grad_output / divisor` of the windows `outputs`, for every lane.
#[inline(always)]
fn window_shares<T: Element>(
    g: &[T],
    lanes: usize,
    windows: &Windows,
    divisor: Divisor,
    outputs: Range<usize>,
    shares: &mut [T::Acc],
) -> Result<()> {
    windows.for_each_in(
        outputs,
        #[inline(always)]
        |o, window: &Window<'_>| {
            let shares = &mut shares[o * lanes..][..lanes];
            if window.cells.is_empty() {
                shares.fill(num_traits::zero::<T::Acc>());
                return Ok(());
            }
            divisor.divide_into(&g[o * lanes..][..lanes], shares, window.cells.len(), window.axis_counts);
            Ok(())
        },
    )
}

/// The backward as a scatter into a zeroed output: for windows too many to tabulate.
fn backward_scatter<T: Element>(
    grad_out: &[T],
    blocking: Blocking,
    windows: &Windows,
    divisor: Divisor,
    grad_in: Out<'_, T>,
) -> Result<()> {
    let lanes = blocking.lanes;
    let out_block = windows.output_volume * lanes;
    par_blocks_accumulating(grad_in, windows.input_volume * lanes, |b, grad_in| {
        let g = &grad_out[b * out_block..][..out_block];
        let mut shares = buffer::filled(lanes, T::zero(), "scratch")?;
        windows.for_each(|o, window| {
            for (share, &gv) in shares.iter_mut().zip(&g[o * lanes..][..lanes]) {
                *share = T::from_acc(divisor.apply::<T>(gv.to_acc(), window));
            }
            for &s in window.cells {
                for (cell, &share) in grad_in[s * lanes..][..lanes].iter_mut().zip(&shares) {
                    *cell = cell.add(share);
                }
            }
            Ok(())
        })
    })
}
