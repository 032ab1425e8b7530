//! The channels-first max backward from compact taps of small stride-1 windows, as a
//! gather (x86-64 with AVX-512; elsewhere the scatter of `indexed` runs): each input
//! cell sums, in output order, the gradients of the outputs whose tap names it. The
//! same sums as the scatter (which adds them to a zeroed cell in output order),
//! computed without one: no clearing pass, no cell numbers worked out of the taps, no
//! addition waiting on the one before it, and each cell written once, front to back.
//!
//! Under AVX-512, 64 cells go at a time, in one of two layouts ([`Layout`]):
//! - *Rows:* 64 cells of an input row. For a window `kh`x`kw`, the outputs whose
//!   windows cover them are, candidate by candidate, 64 consecutive outputs of one
//!   output row (`dr`, `dc` back from the cell), so each candidate is a load of 64 taps
//!   compared with the 64 taps that would name the cells (a table per `dc` and row
//!   within the window), and the gradients of the outputs that match added under that
//!   mask. Four input rows (two for `f64`) share each candidate output row's loads.
//!   Rows of at least [`MIN_COLUMNS`].
//! - *Flat:* 64 consecutive cells of a plane whose outputs are the size of its input
//!   ("same" pooling), rows and all: each candidate is then a fixed distance from its
//!   cell, and narrow planes waste no lanes. Rows narrower than [`FLAT_COLUMNS_BELOW`].
//!
//! The work grows with the window's taps, so only windows of up to [`MOST_TAPS`]
//! ([`MOST_TAPS_F64`] for `f64`, whose vectors hold half as many) take this path. AMD
//! Zen 4, `f32`, 1 thread, medians of 5–7 alternating rounds: rows against the
//! scatter, 16x256x40x40 3x3 stride 1 2.14x (its time then that of the backward from
//! int64 indices, 0.99x), 5x5 1.17x (2 threads 1.23x), 8x64x112x112 3x3 1.55x; flat
//! against rows, 5x5 over 32x512x20x20 1.50x, 3x3 over 32x480x14x14 1.83x
//! (as fast as from indices), over 32x192x28x28 1.15x; flat against the scatter, 5x5
//! over 64x512x13x13 1.18x, 3x3 over 32x832x7x7 1.34x.

use super::buffer::{self, Out, Sink};
use super::indexed::Sides;
use super::window::{AxisWindows, Windows};
use super::{par_blocks_in_order, par_blocks_with_in_order};
use crate::error::{PoolError, Result};
use crate::simd;
use crate::tensor::Element;
use std::any::TypeId;

/// The most taps a window may have for [`TapGather`]: each cell looks at that many
/// outputs.
const MOST_TAPS: usize = 25;

/// [`MOST_TAPS`] for `f64`: against the scatter (16x256x40x40, AMD Zen 4, 1 thread, 5
/// alternating rounds) 3x3 stride-1 windows 1.56x faster, 4x4 1.17x, 5x5 0.82x (over
/// 32x512x20x20 0.90x); 3x3 over 32x480x14x14 1.61x, 32x192x28x28 1.81x, 32x832x7x7
/// 1.10x.
const MOST_TAPS_F64: usize = 16;

/// The largest tables (expected taps and window sizes) [`TapGather`] builds.
const MOST_TABLE_BYTES: usize = 64 << 10;

/// The largest table of expected taps [`Layout::Flat`] reads (it reads all of it for
/// each plane, so it should stay in the L1 cache).
const FLAT_TABLE_BYTES: usize = 24 << 10;

/// Rows this wide and wider take [`Layout::Rows`]: 3x3 stride-1 windows over 40x40
/// planes took 1.18x as long flat (their rows fill 40 of 48 lanes, and four rows share
/// their loads), over 28x28 planes 0.80x as long (AMD Zen 4, 5 alternating rounds).
const FLAT_COLUMNS_BELOW: usize = 32;

/// Cells of an input row gathered at once (one vector of byte lanes).
const LANES: usize = 64;

/// The narrowest rows [`Layout::Rows`] takes: a vector's lanes past a row do the same
/// work for nothing, and 3x3 windows over 7x7 planes took 1.5x the scatter's time (over
/// 14x14 planes 0.78x its time).
const MIN_COLUMNS: usize = 14;

/// Stride-1 windows along one axis: output `o` covers `[o - pad, o - pad + kernel)`,
/// clipped to `[0, input)`.
struct Axis {
    input: usize,
    output: usize,
    pad: usize,
    kernel: usize,
}

impl Axis {
    /// `None` unless the windows along `axis` are stride-1 and undilated
    /// ([`AxisWindows::stride_one_runs`]).
    fn new(axis: &AxisWindows) -> Option<Self> {
        let (kernel, pad) = axis.stride_one_runs()?;
        Some(Axis { input: axis.input(), output: axis.output(), pad, kernel })
    }

    /// One output over one input cell: the whole axis when it is not spatial (1-D planes).
    fn single() -> Self {
        Axis { input: 1, output: 1, pad: 0, kernel: 1 }
    }

    /// The output `back` places before the last one whose window covers `cell`, if it
    /// is one (`back < kernel`).
    fn candidate(&self, cell: usize, back: usize) -> Option<usize> {
        (cell + self.pad).checked_sub(back).filter(|&o| o < self.output)
    }
}

/// The gather of a plane's max backward from compact taps (see the module docs).
pub(crate) struct TapGather {
    rows: Axis,
    cols: Axis,
    /// Per output: its window's number of taps (every tap of the compact state must be
    /// below it).
    window_taps: Vec<u8>,
    layout: Layout,
}

/// How [`TapGather`] lays its vectors over a plane.
enum Layout {
    /// A vector per [`LANES`] columns of an input row, a few rows at a time.
    Rows(RowTables),
    /// A vector per [`LANES`] consecutive cells of the plane, across its rows.
    Flat(FlatTables),
}

/// The tables of [`Layout::Rows`].
struct RowTables {
    /// Per column candidate `dc`, row within the window `r` and input column `w`
    /// (`padded_width` of them): the tap that would name cell `w` of the window's row
    /// `r` in that candidate output, or `u8::MAX` where there is no such output.
    expected: Vec<u8>,
    /// Per output row: its window's first row and number of rows.
    row_windows: Vec<(usize, usize)>,
    /// Per column candidate `dc` and vector of [`LANES`] input columns: the lanes whose
    /// candidate output exists.
    exists: Vec<u64>,
    /// Input columns rounded up to whole [`LANES`].
    padded_width: usize,
}

/// The tables of [`Layout::Flat`], for planes whose outputs are the size of the input
/// ("same" pooling: stride 1, `kernel - 1` padding in all). There output `(oh, ow)` is
/// the plane's flat position `oh · width + ow`, so each candidate (`dr`, `dc` back from
/// the cell) lies a fixed distance from the cell, whatever its row: a vector may run
/// across rows, and a narrow plane's vectors have no lanes to spare (20x20: 400 cells
/// in 7 vectors rather than 20 rows of 32 lanes).
struct FlatTables {
    /// Per candidate, in output order (`dr`, then `dc`, from the largest): its output's
    /// flat position minus the cell's.
    offsets: Vec<isize>,
    /// Per candidate and flat cell (`padded_plane` of them): the tap that would name
    /// the cell in the candidate output, or `u8::MAX` where there is no such output.
    expected: Vec<u8>,
    /// Cells of a plane rounded up to whole [`LANES`].
    padded_plane: usize,
}

impl TapGather {
    /// `None` unless `T` is `f32` or `f64`, this CPU runs AVX-512, and the windows are
    /// stride-1 over one or two dims with at most [`MOST_TAPS`] taps ([`MOST_TAPS_F64`])
    /// and tables of at most [`MOST_TABLE_BYTES`] ([`FLAT_TABLE_BYTES`] for
    /// [`Layout::Flat`], which "same" planes take where they can).
    pub(crate) fn new<T: 'static>(windows: &Windows) -> Result<Option<Self>> {
        if !gathers::<T>() {
            return Ok(None);
        }
        let Some((col_windows, row_windows)) = windows.columns_and_rows() else { return Ok(None) };
        let (Some(cols), Some(rows)) = (Axis::new(col_windows), row_windows.map_or(Some(Axis::single()), Axis::new))
        else {
            return Ok(None);
        };
        let taps = cols.kernel * rows.kernel;
        let outputs = rows.output.saturating_mul(cols.output);
        let most_taps = match TypeId::of::<T>() == TypeId::of::<f64>() {
            true => MOST_TAPS_F64,
            false => MOST_TAPS,
        };
        if taps > most_taps || outputs > MOST_TABLE_BYTES {
            return Ok(None);
        }
        // Window `o`'s first cell and number of cells, along the columns and the rows.
        let first_and_len = |coords: &[usize]| (coords.first().copied().unwrap_or(0), coords.len());
        let col_window = |o: usize| first_and_len(col_windows.window(o).0);
        let row_window = |o: usize| row_windows.map_or((0, 1), |axis| first_and_len(axis.window(o).0));
        // The tap that names column `w` of row `r` of the windows of output column `ow`
        // (which holds it).
        let tap = |r: usize, w: usize, ow: usize| {
            let (first_col, width) = col_window(ow);
            (r * width + w - first_col) as u8
        };
        let mut window_taps = buffer::with_capacity(outputs, "tap gather")?;
        for oh in 0..rows.output {
            let rows_of_window = row_window(oh).1;
            window_taps.extend((0..cols.output).map(|ow| (rows_of_window * col_window(ow).1) as u8));
        }
        let same = rows.output == rows.input && cols.output == cols.input;
        let padded_plane = outputs.div_ceil(LANES) * LANES;
        let flat = same && cols.input < FLAT_COLUMNS_BELOW && taps.saturating_mul(padded_plane) <= FLAT_TABLE_BYTES;
        let layout = if flat {
            let mut offsets = buffer::with_capacity(taps, "tap gather")?;
            let mut expected = buffer::with_capacity(taps * padded_plane, "tap gather")?;
            // Below the plane's size, so these fit in `isize`.
            let back = |pad: usize, d: usize| pad as isize - d as isize;
            for dr in (0..rows.kernel).rev() {
                for dc in (0..cols.kernel).rev() {
                    offsets.push(back(rows.pad, dr) * cols.input as isize + back(cols.pad, dc));
                    expected.extend((0..padded_plane).map(|p| {
                        let (h, w) = (p / cols.input, p % cols.input);
                        let candidate = (p < outputs).then(|| rows.candidate(h, dr).zip(cols.candidate(w, dc)));
                        candidate.flatten().map_or(u8::MAX, |(oh, ow)| tap(h - row_window(oh).0, w, ow))
                    }));
                }
            }
            Layout::Flat(FlatTables { offsets, expected, padded_plane })
        } else {
            let padded_width = cols.input.div_ceil(LANES) * LANES;
            let expected_len = taps.saturating_mul(padded_width);
            if cols.input < MIN_COLUMNS || expected_len.saturating_add(outputs) > MOST_TABLE_BYTES {
                return Ok(None);
            }
            let mut expected = buffer::with_capacity(expected_len, "tap gather")?;
            for dc in 0..cols.kernel {
                for r in 0..rows.kernel {
                    expected.extend((0..padded_width).map(|w| {
                        let candidate = (w < cols.input).then(|| cols.candidate(w, dc)).flatten();
                        candidate.map_or(u8::MAX, |ow| tap(r, w, ow))
                    }));
                }
            }
            let row_windows = buffer::collect((0..rows.output).map(row_window), "tap gather")?;
            let mut exists = buffer::with_capacity(cols.kernel * padded_width / LANES, "tap gather")?;
            for dc in 0..cols.kernel {
                let table = &expected[dc * rows.kernel * padded_width..][..padded_width];
                exists.extend(table.chunks_exact(LANES).map(|lanes| {
                    lanes.iter().enumerate().fold(0u64, |mask, (l, &e)| mask | (u64::from(e != u8::MAX) << l))
                }));
            }
            Layout::Rows(RowTables { expected, row_windows, exists, padded_width })
        };
        Ok(Some(TapGather { rows, cols, window_taps, layout }))
    }

    /// The max backward of channels-first planes from compact taps, every plane written
    /// front to back. For the `T` and CPU that [`Self::new`] accepted (an internal
    /// error otherwise).
    pub(crate) fn write_gradient<T: Element>(
        &self,
        sides: Sides,
        narrow: &[T],
        taps: &[u8],
        wide: Out<'_, T>,
    ) -> Result<()> {
        match TypeId::of::<T>() == TypeId::of::<f32>() {
            true => self.write_gradient_as::<T, f32>(sides, narrow, taps, wide),
            false => self.write_gradient_as::<T, f64>(sides, narrow, taps, wide),
        }
    }

    /// [`Self::write_gradient`] for `T`, which must be `V` (an internal error otherwise).
    fn write_gradient_as<T: Element, V: x86::GatherKernels>(
        &self,
        sides: Sides,
        narrow: &[T],
        taps: &[u8],
        wide: Out<'_, T>,
    ) -> Result<()> {
        if TypeId::of::<T>() != TypeId::of::<V>() || !gathers::<T>() {
            return Err(PoolError::Internal { what: "the tap gather for a type or CPU it does not support" });
        }
        let plane = |b: usize| {
            let first = b * sides.narrow;
            let (values, taps) = (&narrow[first..][..sides.narrow], &taps[first..][..sides.narrow]);
            self.check_taps(taps, first)?;
            Ok((values.as_ptr().cast::<V>(), taps))
        };
        match &self.layout {
            Layout::Rows(tables) => {
                let rows = || buffer::filled(V::ROWS_AT_ONCE * tables.padded_width, V::default(), "tap gather rows");
                par_blocks_with_in_order(wide, sides.wide, rows, |rows, b, sink| {
                    let (values, taps) = plane(b)?;
                    // SAFETY: `T` is `V`, so its values read as `V`; the CPU runs AVX-512
                    // F, BW and VL (`simd::Isa::Avx512`, checked by `gathers` above); the
                    // plane's taps were checked; `rows` holds `V::ROWS_AT_ONCE` padded
                    // rows.
                    unsafe { x86::gather_plane::<T, V>(self, tables, values, taps, rows, sink) };
                    Ok(())
                })
            }
            Layout::Flat(tables) => par_blocks_in_order(wide, sides.wide, |b, sink| {
                let (values, taps) = plane(b)?;
                // SAFETY: as above; the plane's outputs are its cells (`Layout::Flat`).
                unsafe { x86::gather_flat_plane::<T, V>(tables, values, taps, sink) };
                Ok(())
            }),
        }
    }

    /// An error for the first tap of a plane (`first`: the position of `taps[0]`) that
    /// is not below its window's taps (a window with none has none to check).
    fn check_taps(&self, taps: &[u8], first: usize) -> Result<()> {
        let bad = |t: u8, n: u8| n != 0 && t >= n;
        // One pass without a branch per tap (it vectorises); the position only on failure.
        if !taps.iter().zip(&self.window_taps).fold(false, |any, (&t, &n)| any | bad(t, n)) {
            return Ok(());
        }
        let p = taps.iter().zip(&self.window_taps).position(|(&t, &n)| bad(t, n)).unwrap_or(0);
        Err(PoolError::InvalidTap { tap: taps[p], position: first + p, window_taps: usize::from(self.window_taps[p]) })
    }
}

/// Whether [`TapGather`] takes `T` on this CPU: `f32` or `f64`, and AVX-512.
fn gathers<T: 'static>() -> bool {
    [TypeId::of::<f32>(), TypeId::of::<f64>()].contains(&TypeId::of::<T>()) && simd::current() >= simd::Isa::Avx512
}

mod x86 {
    use super::{Element, FlatTables, RowTables, Sink, TapGather, LANES};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// [`gather_rows`] for one float type and vector width.
    pub(super) type RowsGather<V> =
        unsafe fn(&TapGather, &RowTables, usize, Range<usize>, usize, *const V, &[u8], &mut [V]);

    /// [`gather_flat`] for one float type and vector width.
    pub(super) type FlatGather<V> = unsafe fn(&FlatTables, usize, *const V, &[u8], *mut V);

    /// A float type the gather sums in AVX-512 vectors: its vector and half vector,
    /// their masked loads and additions (a mask's low bits, one per lane). Always
    /// inlined into the kernels compiled for AVX-512, so the intrinsics inline with them.
    pub(super) trait GatherFloat: Copy + Default + Into<f64> + 'static {
        /// Lanes of a 512-bit vector.
        const LANES: usize;
        /// Input rows [`gather_rows`] takes at once: they share each candidate output
        /// row's loads, and their sums stay in registers.
        const ROWS_AT_ONCE: usize;
        type Vector: Copy;
        type Half: Copy;
        /// # Safety
        /// AVX-512 F.
        unsafe fn zero() -> Self::Vector;
        /// # Safety
        /// AVX-512 F and VL.
        unsafe fn zero_half() -> Self::Half;
        /// The lanes of `mask` read from `from` (the others 0, not read).
        ///
        /// # Safety
        /// AVX-512 F; those lanes readable.
        unsafe fn load(mask: u64, from: *const Self) -> Self::Vector;
        /// # Safety
        /// As for [`Self::load`], with AVX-512 VL.
        unsafe fn load_half(mask: u64, from: *const Self) -> Self::Half;
        /// `x` added to the lanes of `mask` of `sums`.
        ///
        /// # Safety
        /// AVX-512 F.
        unsafe fn add(sums: Self::Vector, mask: u64, x: Self::Vector) -> Self::Vector;
        /// # Safety
        /// AVX-512 F and VL.
        unsafe fn add_half(sums: Self::Half, mask: u64, x: Self::Half) -> Self::Half;
        /// # Safety
        /// AVX-512 F; a whole vector writable at `to`.
        unsafe fn store(to: *mut Self, sums: Self::Vector);
        /// # Safety
        /// AVX-512 F and VL; a half vector writable at `to`.
        unsafe fn store_half(to: *mut Self, sums: Self::Half);
    }

    /// [`GatherFloat`] for `$float`: its vectors, its mask types and intrinsics.
    macro_rules! gather_float {
        ($float:ty, $lanes:literal, $rows:literal, $vector:ty, $half:ty, $mask:ty, $half_mask:ty,
         $zero:ident, $zero_half:ident, $load:ident, $load_half:ident, $add:ident, $add_half:ident,
         $store:ident, $store_half:ident) => {
            impl GatherFloat for $float {
                const LANES: usize = $lanes;
                const ROWS_AT_ONCE: usize = $rows;
                type Vector = $vector;
                type Half = $half;
                #[inline(always)]
                unsafe fn zero() -> $vector {
                    // SAFETY: the caller's guarantees.
                    unsafe { $zero() }
                }
                #[inline(always)]
                unsafe fn zero_half() -> $half {
                    // SAFETY: the caller's guarantees.
                    unsafe { $zero_half() }
                }
                #[inline(always)]
                unsafe fn load(mask: u64, from: *const $float) -> $vector {
                    // SAFETY: the caller's guarantees; the mask keeps its low lanes.
                    unsafe { $load(mask as $mask, from) }
                }
                #[inline(always)]
                unsafe fn load_half(mask: u64, from: *const $float) -> $half {
                    // SAFETY: as for `load`.
                    unsafe { $load_half(mask as $half_mask, from) }
                }
                #[inline(always)]
                unsafe fn add(sums: $vector, mask: u64, x: $vector) -> $vector {
                    // SAFETY: the caller's guarantees.
                    unsafe { $add(sums, mask as $mask, sums, x) }
                }
                #[inline(always)]
                unsafe fn add_half(sums: $half, mask: u64, x: $half) -> $half {
                    // SAFETY: the caller's guarantees.
                    unsafe { $add_half(sums, mask as $half_mask, sums, x) }
                }
                #[inline(always)]
                unsafe fn store(to: *mut $float, sums: $vector) {
                    // SAFETY: the caller's guarantees.
                    unsafe { $store(to, sums) }
                }
                #[inline(always)]
                unsafe fn store_half(to: *mut $float, sums: $half) {
                    // SAFETY: the caller's guarantees.
                    unsafe { $store_half(to, sums) }
                }
            }
        };
    }
    #[rustfmt::skip]
    gather_float!(f32, 16, 4, __m512, __m256, __mmask16, __mmask8, _mm512_setzero_ps, _mm256_setzero_ps,
        _mm512_maskz_loadu_ps, _mm256_maskz_loadu_ps, _mm512_mask_add_ps, _mm256_mask_add_ps, _mm512_storeu_ps,
        _mm256_storeu_ps);
    // Two rows at once: four would take 32 registers for their sums alone.
    #[rustfmt::skip]
    gather_float!(f64, 8, 2, __m512d, __m256d, __mmask8, __mmask8, _mm512_setzero_pd, _mm256_setzero_pd,
        _mm512_maskz_loadu_pd, _mm256_maskz_loadu_pd, _mm512_mask_add_pd, _mm256_mask_add_pd, _mm512_storeu_pd,
        _mm256_storeu_pd);

    /// The gather's kernels for a float type, by the cells of a vector (1 to [`LANES`]):
    /// as many whole vectors as they need, and for `f32` a half vector where that is
    /// enough for the last 8.
    pub(super) trait GatherKernels: GatherFloat {
        fn rows_gather(cells: usize) -> RowsGather<Self>;
        fn flat_gather(cells: usize) -> FlatGather<Self>;
    }

    impl GatherKernels for f32 {
        fn rows_gather(cells: usize) -> RowsGather<f32> {
            match cells.div_ceil(8) {
                1 => gather_rows::<f32, 4, 0, true>,
                2 => gather_rows::<f32, 4, 1, false>,
                3 => gather_rows::<f32, 4, 1, true>,
                4 => gather_rows::<f32, 4, 2, false>,
                5 => gather_rows::<f32, 4, 2, true>,
                6 => gather_rows::<f32, 4, 3, false>,
                7 => gather_rows::<f32, 4, 3, true>,
                _ => gather_rows::<f32, 4, 4, false>,
            }
        }
        fn flat_gather(cells: usize) -> FlatGather<f32> {
            match cells.div_ceil(16) {
                1 => gather_flat::<f32, 1>,
                2 => gather_flat::<f32, 2>,
                3 => gather_flat::<f32, 3>,
                _ => gather_flat::<f32, 4>,
            }
        }
    }

    /// `$kernel` with the const `$c` set to `$vectors` (1 to 8; more takes 8).
    #[rustfmt::skip]
    macro_rules! by_vectors {
        ($vectors:expr, $c:ident => $kernel:expr) => {
            match $vectors {
                1 => { const $c: usize = 1; $kernel }
                2 => { const $c: usize = 2; $kernel }
                3 => { const $c: usize = 3; $kernel }
                4 => { const $c: usize = 4; $kernel }
                5 => { const $c: usize = 5; $kernel }
                6 => { const $c: usize = 6; $kernel }
                7 => { const $c: usize = 7; $kernel }
                _ => { const $c: usize = 8; $kernel }
            }
        };
    }

    impl GatherKernels for f64 {
        fn rows_gather(cells: usize) -> RowsGather<f64> {
            by_vectors!(cells.div_ceil(8), C => gather_rows::<f64, 2, C, false>)
        }
        fn flat_gather(cells: usize) -> FlatGather<f64> {
            by_vectors!(cells.div_ceil(8), C => gather_flat::<f64, C>)
        }
    }

    /// The lanes of `mask` from lane `first` on, shifted down to lane 0 (none past 64).
    #[inline(always)]
    fn lanes_from(mask: u64, first: usize) -> u64 {
        mask.checked_shr(first as u32).unwrap_or(0)
    }

    /// One plane's gradient into `sink` (see the module docs), `V::ROWS_AT_ONCE` input
    /// rows at a time, each gathered into `rows` a vector of [`LANES`] columns at a
    /// time.
    ///
    /// # Safety
    /// The CPU runs AVX-512 F, BW and VL; `values` points to the plane's outputs' gradients
    /// and `taps` holds their taps (the gather's output rows times its output columns),
    /// each below its window's taps; `rows` holds `V::ROWS_AT_ONCE` rows of the padded
    /// width; `T` is `V`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn gather_plane<T: Element, V: GatherKernels>(
        gather: &TapGather,
        tables: &RowTables,
        values: *const V,
        taps: &[u8],
        rows: &mut [V],
        sink: &mut Sink<'_, T>,
    ) {
        let (axis, cols, width, at_once) = (&gather.rows, &gather.cols, tables.padded_width, V::ROWS_AT_ONCE);
        assert!(taps.len() == axis.output * cols.output && rows.len() == at_once * width, "tap gather plane");
        for h0 in (0..axis.input).step_by(at_once) {
            // Output rows covering any of the rows `h0..h0 + at_once`, in order.
            let outputs = (h0 + axis.pad).saturating_sub(axis.kernel - 1)..(h0 + at_once + axis.pad).min(axis.output);
            for w0 in (0..width).step_by(LANES) {
                let gather_rows = V::rows_gather(LANES.min(cols.input - w0));
                // SAFETY: the caller's guarantees; `w0` is a multiple of `LANES` below
                // the padded width.
                unsafe { gather_rows(gather, tables, h0, outputs.clone(), w0, values, taps, rows) };
            }
            for row in rows.chunks_exact(width).take(axis.input - h0) {
                // `T` is `V`: these conversions are exact.
                sink.extend_map(&row[..cols.input], |s| T::from_acc(T::Acc::from_f64(s.into())));
            }
        }
    }

    /// The sums of cells `w0..w0 + C · V::LANES` (and a `HALF` vector more; those past
    /// the row come out 0) of input rows `h0..h0 + R` (those past the plane: whatever
    /// the outputs give) into `rows` (`R` padded rows), from the output rows `outputs`
    /// (those covering any of them, in order). The half vector costs half a whole one
    /// where 512-bit operations run as two halves (AMD Zen 4: 40-column rows 1.04x
    /// faster, 3x3 and 5x5 windows, `f32`).
    ///
    /// # Safety
    /// As for [`gather_plane`], with `R` its rows at once; `w0` is a multiple of
    /// [`LANES`] below the gather's padded width.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn gather_rows<V: GatherFloat, const R: usize, const C: usize, const HALF: bool>(
        gather: &TapGather,
        tables: &RowTables,
        h0: usize,
        outputs: Range<usize>,
        w0: usize,
        values: *const V,
        taps: &[u8],
        rows_out: &mut [V],
    ) {
        let (rows, cols) = (&gather.rows, &gather.cols);
        let vectors = tables.padded_width / LANES;
        // SAFETY (the intrinsics): the caller guarantees AVX-512 F, BW and VL. Each table
        // load reads 64 bytes of a row of `padded_width` (a multiple of 64) at `w0 <
        // padded_width`. The tap and value loads are masked to the lanes whose candidate
        // output exists: an output of the row, inside the plane; masked lanes are not
        // read.
        unsafe {
            let mut acc = [[V::zero(); C]; R];
            let mut acc_half = [V::zero_half(); R];
            for oh in outputs {
                let row = oh * cols.output;
                let (first_row, window_rows) = tables.row_windows[oh];
                for dc in (0..cols.kernel).rev() {
                    let exists = tables.exists[dc * vectors + w0 / LANES];
                    // Candidate output of lane 0: `w0 + pad - dc`, possibly before the
                    // row's start (those lanes are masked).
                    let at = (row + w0 + cols.pad).wrapping_sub(dc);
                    let found = _mm512_maskz_loadu_epi8(exists, taps.as_ptr().wrapping_add(at).cast());
                    let gradients: [V::Vector; C] = std::array::from_fn(|j| {
                        let lanes = lanes_from(exists, V::LANES * j);
                        V::load(lanes, values.wrapping_add(at.wrapping_add(V::LANES * j)))
                    });
                    let half = match HALF {
                        true => V::load_half(
                            lanes_from(exists, V::LANES * C),
                            values.wrapping_add(at.wrapping_add(V::LANES * C)),
                        ),
                        false => V::zero_half(),
                    };
                    for (i, (acc, acc_half)) in acc.iter_mut().zip(&mut acc_half).enumerate() {
                        let r = (h0 + i).wrapping_sub(first_row);
                        if r >= window_rows {
                            continue;
                        }
                        let table = (dc * rows.kernel + r) * tables.padded_width + w0;
                        let expected = _mm512_loadu_si512(tables.expected.as_ptr().add(table).cast());
                        let matched = _mm512_mask_cmpeq_epu8_mask(exists, found, expected);
                        for (j, acc) in acc.iter_mut().enumerate() {
                            *acc = V::add(*acc, lanes_from(matched, V::LANES * j), gradients[j]);
                        }
                        if HALF {
                            *acc_half = V::add_half(*acc_half, lanes_from(matched, V::LANES * C), half);
                        }
                    }
                }
            }
            for (row, (acc, acc_half)) in rows_out.chunks_exact_mut(tables.padded_width).zip(acc.iter().zip(acc_half)) {
                for (j, acc) in acc.iter().enumerate() {
                    V::store(row[w0 + V::LANES * j..][..V::LANES].as_mut_ptr(), *acc);
                }
                if HALF {
                    V::store_half(row[w0 + V::LANES * C..][..V::LANES / 2].as_mut_ptr(), acc_half);
                }
            }
        }
    }

    /// One "same" plane's gradient into `sink` ([`super::Layout::Flat`]), a vector of
    /// [`LANES`] consecutive cells at a time.
    ///
    /// # Safety
    /// The CPU runs AVX-512 F and BW; `values` points to the plane's outputs'
    /// gradients, as many as its cells, and `taps` holds their taps, each below its
    /// window's taps; `tables` were built for this plane's windows; `T` is `V`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn gather_flat_plane<T: Element, V: GatherKernels>(
        tables: &FlatTables,
        values: *const V,
        taps: &[u8],
        sink: &mut Sink<'_, T>,
    ) {
        let plane = taps.len();
        assert!(
            tables.padded_plane == plane.div_ceil(LANES) * LANES
                && tables.expected.len() == tables.offsets.len() * tables.padded_plane,
            "tap gather flat plane"
        );
        let whole = V::flat_gather(LANES);
        let mut sums = [V::default(); LANES];
        for p0 in (0..plane).step_by(LANES) {
            let cells = LANES.min(plane - p0);
            if cells == LANES {
                // A whole vector goes straight into the block: a copy through `sums`
                // called `memmove` for each (9 % of the time, 20x20 5x5).
                let Some(chunk) = sink.next_chunk::<LANES>() else { return };
                // SAFETY: the caller's guarantees; `p0` is a multiple of `LANES` below
                // the plane's size; `T` is `V`, so the chunk holds `LANES` of them.
                unsafe { whole(tables, p0, values, taps, chunk.as_mut_ptr().cast::<V>()) };
                continue;
            }
            // SAFETY: as above; `sums` holds `LANES`.
            unsafe { V::flat_gather(cells)(tables, p0, values, taps, sums.as_mut_ptr()) };
            // `T` is `V`: these conversions are exact.
            sink.extend_map(&sums[..cells], |s| T::from_acc(T::Acc::from_f64(s.into())));
        }
    }

    /// The sums of cells `p0..p0 + C · V::LANES` of a plane (those past it come out
    /// 0) into `out`.
    ///
    /// # Safety
    /// As for [`gather_flat_plane`]; `p0` is a multiple of [`LANES`] below the plane's
    /// size; `out` has room for `C · V::LANES` values.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn gather_flat<V: GatherFloat, const C: usize>(
        tables: &FlatTables,
        p0: usize,
        values: *const V,
        taps: &[u8],
        out: *mut V,
    ) {
        // SAFETY (the intrinsics): the caller guarantees AVX-512 F and BW. Each table
        // load reads 64 bytes of a candidate's row of `padded_plane` (a multiple of 64)
        // at `p0 < padded_plane`. The tap loads are masked to the lanes whose candidate
        // output exists, the value loads to those whose tap matched: outputs of the
        // plane; masked lanes are not read.
        unsafe {
            let none = _mm512_set1_epi8(-1);
            let mut acc = [V::zero(); C];
            for (k, &offset) in tables.offsets.iter().enumerate() {
                let table = tables.expected.as_ptr().add(k * tables.padded_plane + p0);
                let expected = _mm512_loadu_si512(table.cast());
                let exists = _mm512_cmpneq_epu8_mask(expected, none);
                let at = p0.wrapping_add_signed(offset);
                let found = _mm512_maskz_loadu_epi8(exists, taps.as_ptr().wrapping_add(at).cast());
                let matched = _mm512_mask_cmpeq_epu8_mask(exists, found, expected);
                for (j, acc) in acc.iter_mut().enumerate() {
                    let lanes = lanes_from(matched, V::LANES * j);
                    let gradients = V::load(lanes, values.wrapping_add(at.wrapping_add(V::LANES * j)));
                    *acc = V::add(*acc, lanes, gradients);
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                V::store(out.add(V::LANES * j), *acc);
            }
        }
    }
}
