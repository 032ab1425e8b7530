//! Moves values along saved argmax indices: the max ops' backward (scatter-add), their
//! double backward and max unpooling's backward (gather), and max unpooling (scatter).
//!
//! Indices are flat spatial indices within each (n, c) plane; -1 (a window with no
//! input cell) moves nothing. Each block is handled serially in index order, so the
//! result does not depend on the thread count.

use super::buffer::{self, Out, Sink};
#[cfg(target_arch = "x86_64")]
use super::tap_gather::TapGather;
use super::window::{AxisWindows, Window, Windows};
use super::{par_blocks, par_blocks_accumulating, par_blocks_accumulating_with, par_blocks_in_order};
use crate::error::{PoolError, Result};
use crate::simd;
use crate::tensor::{Blocking, Element};
use std::ops::Range;

/// The sizes of the two sides: the indexed ("wide") planes and the index-carrying
/// ("narrow") planes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sides {
    pub blocking: Blocking,
    /// Cells in a wide plane (the pooling input, the unpooling output).
    pub wide: usize,
    /// Cells in a narrow plane (the pooling output, the unpooling input).
    pub narrow: usize,
}

fn check(i: i64, wide: usize, position: usize) -> Result<Option<usize>> {
    match i {
        -1 => Ok(None),
        i if i >= 0 && (i as u64) < wide as u64 => Ok(Some(i as usize)),
        i => Err(PoolError::InvalidIndex { index: i, position, plane_size: wide }),
    }
}

/// How [`scatter`] writes each value into its cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScatterWrite {
    /// `cell = value`, the last write winning (max unpooling).
    Assign,
    /// `cell += value` (the max backward, its double backward through unpooling).
    Add,
    /// `cell += value` where most cells get at most one addition (windows that hardly
    /// overlap), through [`Element::accumulate`], which skips the arithmetic for a cell
    /// still at zero.
    AddMostlyOnce,
    /// `cell += value` where consecutive outputs along a row often name the same cell
    /// ([`Windows::repeat_along_rows`]): channels-first planes take their outputs two at
    /// a time ([`add_in_step`]).
    AddAlongRuns,
}

/// `wide[index[p]] (+)= narrow[p]` as `write` says. `wide` must start zero-filled.
/// [`ScatterWrite::AddMostlyOnce`]: W2 (2x2 stride 2, 1 thread, 3 rounds) 3.8x faster in
/// `f16` and 2.1x in `bf16` channels-first, 3.0x and 1.9x channels-last, than adding.
/// Where cells take several additions, its branch costs more than it saves (16x256x40x40,
/// 5x5 stride 1, `f16`: 0.88x). There `f16` adds with the CPU's conversions where it has
/// them ([`add_f16_f16c`]) instead of converting in software: W1 (3x3 stride 2) 2.2x
/// faster channels-first and 2.8x channels-last, that 5x5 stride-1 pool 2.2x and 3.1x
/// (1 thread, 3 rounds). The same bits every way.
pub(crate) fn scatter<T: Element>(
    sides: Sides,
    narrow: &[T],
    indices: &[i64],
    wide: Out<'_, T>,
    write: ScatterWrite,
) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    let isa = simd::current();
    let f16_in_hardware = converts_f16_in_hardware::<T>(isa);
    if lanes == 1 && write != ScatterWrite::Assign {
        let plane = sides.wide;
        let step = planes_in_step();
        return par_blocks_accumulating(wide, plane * step, |g, block| {
            let first = g * step * narrow_block;
            let how = (isa, f16_in_hardware, write);
            in_plane_steps(
                block,
                plane,
                first,
                narrow_block,
                &mut (),
                |(), planes, start| add_along_indices_by(how, planes, &narrow[start..], &indices[start..], start),
                |(), planes, start| add_along_indices_by(how, planes, &narrow[start..], &indices[start..], start),
            )
        });
    }
    par_blocks_accumulating(wide, sides.wide * lanes, |b, wide_block| {
        let values = &narrow[b * narrow_block..][..narrow_block];
        let idx = &indices[b * narrow_block..][..narrow_block];
        let first = b * narrow_block;
        match (lanes, write) {
            // Channels-first unpooling: the same order without a chunk per position (the
            // channels-first max backward took the planes in step above).
            (1, _) => scatter_plane(wide_block, values, idx, first, |cell, v| *cell = v),
            (_, ScatterWrite::AddMostlyOnce) => {
                // `accumulate` is `add` for `f32` and `f64`.
                #[cfg(target_arch = "x86_64")]
                if let Some(done) = gather_scatter::add(isa, wide_block, lanes, values, idx, first) {
                    return done;
                }
                scatter_positions(wide_block, lanes, values, idx, first, |cell, v| *cell = cell.accumulate(v))
            }
            #[cfg(target_arch = "x86_64")]
            (_, ScatterWrite::Add | ScatterWrite::AddAlongRuns) if f16_in_hardware => isa.run(
                #[inline(always)]
                || {
                    // SAFETY: as in `add_along_indices_by`.
                    scatter_positions(wide_block, lanes, values, idx, first, |cell, v| {
                        *cell = unsafe { add_f16_f16c(*cell, v) }
                    })
                },
            ),
            (_, ScatterWrite::Add | ScatterWrite::AddAlongRuns) => {
                #[cfg(target_arch = "x86_64")]
                if let Some(done) = gather_scatter::add(isa, wide_block, lanes, values, idx, first) {
                    return done;
                }
                scatter_positions(wide_block, lanes, values, idx, first, |cell, v| *cell = cell.add(v))
            }
            (_, ScatterWrite::Assign) => scatter_positions(wide_block, lanes, values, idx, first, |cell, v| *cell = v),
        }
    })
}

/// `narrow[p] = wide[index[p]]` (0 where the index is -1).
pub(crate) fn gather<T: Element>(sides: Sides, wide: &[T], indices: &[i64], narrow: &mut [T]) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let wide_block = sides.wide * lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks(narrow, narrow_block, |b, out| {
        let source = &wide[b * wide_block..][..wide_block];
        let idx = &indices[b * narrow_block..][..narrow_block];
        for (o, (out, idx)) in out.chunks_exact_mut(lanes).zip(idx.chunks_exact(lanes)).enumerate() {
            for (lane, (out, &i)) in out.iter_mut().zip(idx).enumerate() {
                *out = match check(i, sides.wide, b * narrow_block + o * lanes + lane)? {
                    Some(i) => source[i * lanes + lane],
                    None => T::zero(),
                };
            }
        }
        Ok(())
    })
}

/// [`scatter`] of one channels-first plane: `put(&mut cells[i], value)` for each value and
/// its index `i`, in order; -1 skips the value, any other index outside the plane is an
/// error (`first`: the position of `values[0]` in the whole array, for the message).
/// One loop per `put` and one range test per index keep the loop, which runs once per
/// output, short.
#[inline(always)]
fn scatter_plane<T: Copy>(
    cells: &mut [T],
    values: &[T],
    indices: &[i64],
    first: usize,
    put: impl Fn(&mut T, T),
) -> Result<()> {
    for (p, (&v, &i)) in values.iter().zip(indices).enumerate() {
        match usize::try_from(i).ok().and_then(|i| cells.get_mut(i)) {
            Some(cell) => put(cell, v),
            None if i == -1 => {}
            None => return Err(PoolError::InvalidIndex { index: i, position: first + p, plane_size: cells.len() }),
        }
    }
    Ok(())
}

/// Channels-first planes whose additions [`add_in_step`] interleaves. Max backward
/// against one plane at a time (1 / 2 threads, Xeon, medians of 3 alternating rounds):
/// from indices, stride 1 (16x256x40x40, 5x5 to 13x13) 1.29–2.15x, W1 1.49 / 1.10x, W5
/// and W8 1.19–1.24x, W2 1.02 / 0.96x; from the compact state, stride 1 0.95–1.37x, W1
/// 0.97 / 0.95x (5 rounds), W2, W5 and W8 0.94–1.05x. Eight planes lost on W5 (1-D rows of
/// 4096, 0.78x) and W2 (0.88x).
const PLANES_IN_STEP: usize = 4;

/// How many channels-first planes the max backward takes at a time: [`PLANES_IN_STEP`]
/// on CPUs like the one that measured the gain (an Emerald Rapids Xeon, which
/// [`simd::full_width_avx512`] stands for), else 1. On AMD Zen 4 (session fourteen) the
/// same interleaving measured 0.64x on S5 and 0.99x on W1, with the four index streams
/// waiting on memory (presumably: a 32 MiB L3 there, 300 MiB on the Xeon). One plane
/// at a time, measured on the Xeon against the loop before the steps: from indices
/// 0.98–1.07x (S5, W1, W2), compact W1 0.86x and S5 0.95x (that loop took four outputs
/// per step); the block pointer of [`add_in_step`] then gained 1.01–1.07x from indices
/// and 1.00x (W1), 1.05x (S5) from the compact state.
fn planes_in_step() -> usize {
    match simd::full_width_avx512() {
        true => PLANES_IN_STEP,
        false => 1,
    }
}

/// `G` consecutive channels-first planes of a block (`block`, `G` planes of `wide`
/// cells), each with `narrow` outputs.
struct PlaneStep<'p, T, const G: usize> {
    block: &'p mut [T],
    wide: usize,
    narrow: usize,
}

impl<T, const G: usize> PlaneStep<'_, T, G> {
    /// The planes' parts of a per-output array that starts at the first plane's output 0.
    fn map_slices<'s, U>(&self, all: &'s [U]) -> [&'s [U]; G] {
        std::array::from_fn(|p| &all[p * self.narrow..][..self.narrow])
    }
}

/// Runs `step` on the planes of a channels-first `block` (planes of `wide` cells, `narrow`
/// outputs each), [`PLANES_IN_STEP`] at a time when the block holds that many, else one
/// at a time; each step gets `scratch`, the planes and the position of their first
/// output (`first`: the block's).
#[inline(always)]
fn in_plane_steps<T, S>(
    block: &mut [T],
    wide: usize,
    first: usize,
    narrow: usize,
    scratch: &mut S,
    mut step4: impl FnMut(&mut S, PlaneStep<'_, T, PLANES_IN_STEP>, usize) -> Result<()>,
    mut step1: impl FnMut(&mut S, PlaneStep<'_, T, 1>, usize) -> Result<()>,
) -> Result<()> {
    if wide == 0 {
        return Ok(());
    }
    if block.len() == PLANES_IN_STEP * wide {
        return step4(scratch, PlaneStep { block, wide, narrow }, first);
    }
    for (p, plane) in block.chunks_exact_mut(wide).enumerate() {
        step1(scratch, PlaneStep { block: plane, wide, narrow }, first + p * narrow)?;
    }
    Ok(())
}

/// [`add_along_indices`] with the addition [`scatter`] picks: a cell still at zero from
/// the bits for [`ScatterWrite::AddMostlyOnce`] (faster there than the CPU's conversions,
/// W2 `f16` 1.12x), else `f16` with the CPU's conversions where `isa` has them
/// (`f16_in_hardware`), else [`Element::add`]; the pairs of
/// [`ScatterWrite::AddAlongRuns`] compiled for `isa`, where they pick their sum with a
/// blend, not a branch (the baseline build branched: 13x13 stride 1 lost 0.55x).
#[inline(always)]
fn add_along_indices_by<T: Element, const G: usize>(
    (isa, f16_in_hardware, write): (simd::Isa, bool, ScatterWrite),
    planes: PlaneStep<'_, T, G>,
    values: &[T],
    indices: &[i64],
    first: usize,
) -> Result<()> {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, f16_in_hardware);
    let in_pairs = write == ScatterWrite::AddAlongRuns && adds_in_one_instruction::<T>();
    match write {
        ScatterWrite::AddMostlyOnce => add_along_indices(planes, values, indices, first, false, T::accumulate),
        #[cfg(target_arch = "x86_64")]
        _ if f16_in_hardware => isa.run(
            #[inline(always)]
            || {
                // SAFETY: `T` is `f16` and the CPU has F16C (`converts_f16_in_hardware`);
                // this closure is compiled with F16C (inlined into `isa.run`, AVX2 or up).
                // No pairs: `f16` is not among `adds_in_one_instruction`.
                add_along_indices(planes, values, indices, first, false, |a, b| unsafe { add_f16_f16c(a, b) })
            },
        ),
        #[cfg(target_arch = "x86_64")]
        _ if in_pairs => isa.run(
            #[inline(always)]
            || add_along_indices(planes, values, indices, first, true, T::add),
        ),
        _ => add_along_indices(planes, values, indices, first, in_pairs, T::add),
    }
}

/// `planes[p][indices[p][o]] += values[p][o]`, the max backward of channels-first
/// planes ([`add_in_step`], `in_pairs` as there); `values` and `indices` start at the
/// first plane's output 0, position `first` of the whole array.
#[inline(always)]
fn add_along_indices<T: Element, const G: usize>(
    planes: PlaneStep<'_, T, G>,
    values: &[T],
    indices: &[i64],
    first: usize,
    in_pairs: bool,
    add: impl Fn(T, T) -> T,
) -> Result<()> {
    let (narrow, wide) = (planes.narrow, planes.wide);
    let (values, indices) = (planes.map_slices(values), planes.map_slices(indices));
    let outside = |p: usize, o: usize| match indices[p][o] {
        -1 => Ok(()),
        index => Err(PoolError::InvalidIndex { index, position: first + p * narrow + o, plane_size: wide }),
    };
    // One unsigned comparison sends -1 and every index outside its plane to `outside`.
    let cell = |p: usize, i: i64| ((i as u64) < wide as u64).then(|| p * wide + i as usize);
    add_in_step(planes.block, values, indices, cell, outside, in_pairs, add)
}

/// `block[cell(p, keys[p][o])] += values[p][o]` for each output `o` in order, the `G`
/// planes of `block` in step: stride-1 windows send runs of consecutive outputs to the
/// same cell, whose additions wait on each other; the other planes' additions fill
/// that wait. Each plane's additions keep their order, so the sums are those of one
/// plane at a time. `cell` names a cell of the block (not of the plane: one pointer and
/// one range test serve all planes, which keeps the loop's state in registers), `None`
/// or one past the block when plane `p` has none for the key; such outputs go to
/// `outside(p, o)`, which skips them or fails. The error returned is the first in plane
/// order, as one plane at a time would meet it. `add(cell, value)` is the addition:
/// [`Element::add`], or another that gives its bits (see [`scatter`]).
///
/// One plane (`G = 1`) `in_pairs` takes its outputs two at a time, for windows whose
/// consecutive outputs often name the same cell ([`ScatterWrite::AddAlongRuns`]): both
/// cells are read first; the second output's sum goes to its cell, then the first
/// cell gets its own sum or, when the two cells are one, that sum plus the second
/// value (a blend). A run of equal cells then waits on memory once per pair, not once
/// per output, and the additions are the sequential ones. The second output's cell
/// does not wait on the first's sum, so runs of one cost no more than before. From an
/// output with no cell (or an invalid one) on, the outputs go one at a time. One
/// plane at a time (16x256x40x40 f32, 1 thread, AMD Zen 4, medians of 3 alternating
/// rounds, against the build before): 13x13 stride 1 1.38x (2 threads 1.34x), 9x9
/// 1.16x, 7x7 1.08x, 5x5 0.98x (which keeps one output at a time); from the compact
/// state 13x13 1.19x, 9x9 1.09x.
/// `f32` and `f64` only ([`adds_in_one_instruction`]).
#[inline(always)]
fn add_in_step<T: Element, K: Copy, const G: usize>(
    block: &mut [T],
    values: [&[T]; G],
    keys: [&[K]; G],
    cell: impl Fn(usize, K) -> Option<usize>,
    outside: impl Fn(usize, usize) -> Result<()>,
    in_pairs: bool,
    add: impl Fn(T, T) -> T,
) -> Result<()> {
    // Every slice cut to the same length: no length test per output but the block's.
    let narrow = values.iter().map(|v| v.len()).chain(keys.iter().map(|k| k.len())).min().unwrap_or(0);
    let (values, keys) = (values.map(|v| &v[..narrow]), keys.map(|k| &k[..narrow]));
    let mut start = 0;
    if G == 1 && in_pairs {
        let len = block.len();
        let (values, keys) = (values[0], keys[0]);
        let valid = |o: usize| cell(0, keys[o]).filter(|&c| c < len);
        while start + 2 <= narrow {
            let (o, next) = (start, start + 1);
            // An output with no cell (or a bad one) sends the rest to the loop below.
            let (Some(c0), Some(c1)) = (valid(o), valid(next)) else { break };
            let (x, y) = (block[c0], block[c1]);
            let sum = add(x, values[o]);
            block[c1] = add(y, values[next]);
            block[c0] = std::hint::select_unpredictable(c0 == c1, add(sum, values[next]), sum);
            start += 2;
        }
    }
    for o in start..narrow {
        for p in 0..G {
            match cell(p, keys[p][o]).and_then(|c| block.get_mut(c)) {
                Some(c) => *c = add(*c, values[p][o]),
                None => {
                    if let Err(error) = outside(p, o) {
                        return Err(first_failure(block.len(), keys, &cell, &outside).unwrap_or(error));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The first `outside` failure of [`add_in_step`] in plane order.
#[cold]
fn first_failure<K: Copy, const G: usize>(
    block_len: usize,
    keys: [&[K]; G],
    cell: impl Fn(usize, K) -> Option<usize>,
    outside: impl Fn(usize, usize) -> Result<()>,
) -> Option<PoolError> {
    (0..G).find_map(|p| {
        keys[p].iter().enumerate().find_map(|(o, &k)| match cell(p, k).is_some_and(|c| c < block_len) {
            true => None,
            false => outside(p, o).err(),
        })
    })
}

/// [`scatter`] of one channels-last block (`lanes` values per position): position by
/// position, each position's lanes in order, with the errors of [`scatter_plane`]. The
/// operation is a closure, not a flag tested per value, as in [`scatter_plane`]. The
/// indices and values are asked for [`PREFETCH_AHEAD`] elements ahead.
#[inline(always)]
fn scatter_positions<T: Copy>(
    cells: &mut [T],
    lanes: usize,
    values: &[T],
    indices: &[i64],
    first: usize,
    put: impl Fn(&mut T, T),
) -> Result<()> {
    let plane = (cells.len() / lanes) as u64;
    let mut fetched = 0;
    for (o, (values_o, idx)) in values.chunks_exact(lanes).zip(indices.chunks_exact(lanes)).enumerate() {
        prefetch_ahead(values, indices, &mut fetched, (o + 1) * lanes);
        for (lane, (&v, &i)) in values_o.iter().zip(idx).enumerate() {
            // One unsigned comparison sends -1 and every index outside the plane to the
            // rare branch.
            if (i as u64) < plane {
                put(&mut cells[i as usize * lanes + lane], v);
            } else if i != -1 {
                let position = first + o * lanes + lane;
                return Err(PoolError::InvalidIndex { index: i, position, plane_size: plane as usize });
            }
        }
    }
    Ok(())
}

/// Whether `T` adds with one instruction (`f32`, `f64`), so [`add_in_step`] may take
/// its outputs in pairs: a pair adds three times for two outputs, and the 16-bit types
/// add through conversions, whose cost that outweighs (13x13 stride 1 on Zen 4: `f16`
/// 0.88x, `bf16` 0.70x).
fn adds_in_one_instruction<T: 'static>() -> bool {
    use std::any::TypeId;
    [TypeId::of::<f32>(), TypeId::of::<f64>()].contains(&TypeId::of::<T>())
}

/// Whether `T` is `f16` and `isa` converts it with the CPU's instructions (F16C, in
/// [`simd::Isa::Avx2`] and up): [`add_f16_f16c`] may then add it.
fn converts_f16_in_hardware<T: 'static>(isa: simd::Isa) -> bool {
    cfg!(target_arch = "x86_64")
        && isa >= simd::Isa::Avx2
        && std::any::TypeId::of::<T>() == std::any::TypeId::of::<half::f16>()
}

/// `a + b` for `T` = `f16` ([`Element::add`]'s bits): both widened and the sum rounded
/// with the CPU's conversions, where the portable code converts in software.
///
/// # Safety
/// `T` must be `f16`, and the CPU must have F16C, the caller compiled with it (inlined
/// into an [`simd::Isa::run`] closure of [`simd::Isa::Avx2`] or up).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn add_f16_f16c<T: Copy>(a: T, b: T) -> T {
    use std::arch::x86_64::{
        _mm_add_ss, _mm_cvtph_ps, _mm_cvtps_ph, _mm_cvtsi128_si32, _mm_cvtsi32_si128, _mm_shuffle_ps,
    };
    // SAFETY: `T` is `f16` (the caller's guarantee), two bytes with any bit pattern
    // valid; the intrinsics need F16C (and SSE2), which the caller's code has.
    unsafe {
        let (a, b) = (std::mem::transmute_copy::<T, u16>(&a), std::mem::transmute_copy::<T, u16>(&b));
        let both = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(a) | (i32::from(b) << 16)));
        let sum = _mm_add_ss(both, _mm_shuffle_ps::<0b01>(both, both));
        // Rounding mode 0: to nearest, ties to even, as `Element::from_acc` rounds.
        let bits = _mm_cvtsi128_si32(_mm_cvtps_ph::<0>(sum)) as u16;
        std::mem::transmute_copy::<u16, T>(&bits)
    }
}

/// [`scatter_positions`] of `f32` and `f64` gradients added along channels-last indices,
/// with AVX-512 gathers and scatters of 8 lanes: each vector's cells are distinct (one
/// per lane), so four vectors gather before any of them scatters. Where the scalar
/// loop's read-add-write of a cell that the prefetcher had not brought in stalled,
/// four gathers wait together: channels-last max backward 1.29–1.32x faster on SPPF's
/// 9x9 stride-1 windows (16x256x40x40 f32, 1 thread, medians of 5 alternating rounds)
/// and 1.15–1.21x on W1 (3x3 stride 2). From compact taps of windows of up to 16 taps
/// (their cells looked up in two registers): W2 1.07x, 3x3 stride-1 windows 1.16–1.21x.
/// The same additions in the same order per cell. Only on CPUs with full-width AVX-512
/// ([`simd::full_width_avx512`]): Zen 4 splits scatters into many operations, and the
/// older Intel cores' gathers are slowed by the microcode against Gather Data Sampling.
#[cfg(target_arch = "x86_64")]
mod gather_scatter {
    use crate::error::{PoolError, Result};
    use crate::simd::{self, Isa};
    use std::any::TypeId;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Vectors of 8 lanes gathered before their scatters.
    const GROUP: usize = 4;

    /// Whether [`add`] and [`add_by_table`] run for `T` under `isa` on a block of
    /// `cells`: `T` is `f32` or `f64`, `isa` is AVX-512 on a full-width CPU, and the
    /// cells are fewer than 2^32.
    #[inline(always)]
    pub(super) fn applies<T: 'static>(isa: Isa, cells: usize) -> bool {
        let float = TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>();
        float && isa >= Isa::Avx512 && simd::full_width_avx512() && u32::try_from(cells).is_ok()
    }

    /// `Some(result)` where [`applies`]; `None` (nothing done) otherwise.
    #[inline(always)]
    pub(super) fn add<T: 'static>(
        isa: Isa,
        cells: &mut [T],
        lanes: usize,
        values: &[T],
        indices: &[i64],
        first: usize,
    ) -> Option<Result<()>> {
        if lanes == 0 || !applies::<T>(isa, cells.len()) {
            return None;
        }
        // SAFETY: `applies` (AVX-512 F on this CPU, and `T` one of the two types).
        unsafe {
            Some(with_floats(
                cells,
                values,
                |c, v| add_lanes(c, lanes, v, indices, first),
                |c, v| add_lanes(c, lanes, v, indices, first),
            ))
        }
    }

    /// Taps a window may have for [`add_by_table`]: its lookup is two registers of
    /// cells. (Gathering from a table of 256 entries instead, for SPPF's 9x9 and 13x13
    /// windows, took 1.03–1.04x the time of the scalar loop.)
    pub(super) const TABLE_TAPS: usize = 16;

    /// One channels-last position of the compact backward: `cells[first_lanes[tap] +
    /// lane] += value` for each lane's tap and value, 8 lanes at a time, four vectors
    /// in flight, the rest one by one.
    ///
    /// # Safety
    /// [`applies`] for `T`, `isa` and `cells.len()`; `values` and `taps` have one entry
    /// per lane of the block (`lanes`); every tap is below [`TABLE_TAPS`] and names an
    /// entry of `first_lanes` that is a cell's first lane (a cell of the plane times
    /// `lanes`).
    #[inline(always)]
    pub(super) unsafe fn add_by_table<T: 'static>(
        cells: &mut [T],
        first_lanes: &[usize; TABLE_TAPS],
        values: &[T],
        taps: &[u8],
    ) {
        // SAFETY: the caller's guarantees.
        unsafe {
            with_floats(
                cells,
                values,
                |c, v| by_table(c, first_lanes, v, taps),
                |c, v| by_table(c, first_lanes, v, taps),
            )
        }
    }

    /// `f32(cells, values)` or `f64(cells, values)`, whichever `T` is.
    ///
    /// # Safety
    /// `T` is `f32` or `f64`.
    #[inline(always)]
    unsafe fn with_floats<T: 'static, R>(
        cells: &mut [T],
        values: &[T],
        f32: impl FnOnce(&mut [f32], &[f32]) -> R,
        f64: impl FnOnce(&mut [f64], &[f64]) -> R,
    ) -> R {
        let (cells_ptr, cells_len, values_ptr, values_len) =
            (cells.as_mut_ptr(), cells.len(), values.as_ptr(), values.len());
        // SAFETY: `T` is the type its id says, so the casts reinterpret the slices as the
        // types they are, same lengths and lifetimes.
        unsafe {
            if TypeId::of::<T>() == TypeId::of::<f32>() {
                f32(
                    std::slice::from_raw_parts_mut(cells_ptr.cast(), cells_len),
                    std::slice::from_raw_parts(values_ptr.cast(), values_len),
                )
            } else {
                f64(
                    std::slice::from_raw_parts_mut(cells_ptr.cast(), cells_len),
                    std::slice::from_raw_parts(values_ptr.cast(), values_len),
                )
            }
        }
    }

    /// A float type whose 8 lanes AVX-512 gathers, adds to and scatters along 64-bit
    /// cell numbers. Always inlined into [`add_lanes`], compiled for AVX-512 F, so the
    /// intrinsics inline with them.
    trait Lanes8: Copy + std::ops::AddAssign + 'static {
        type Vector: Copy;
        /// # Safety
        /// AVX-512 F; each cell number `at` lies inside the slice `base` starts.
        unsafe fn gather(at: __m512i, base: *const Self) -> Self::Vector;
        /// # Safety
        /// AVX-512 F; 8 values readable from `values`.
        unsafe fn add(sums: Self::Vector, values: *const Self) -> Self::Vector;
        /// # Safety
        /// AVX-512 F; each cell number `at` lies inside the slice `base` starts.
        unsafe fn scatter(base: *mut Self, at: __m512i, sums: Self::Vector);
    }

    /// [`Lanes8`] for `$float` with its vector type, its gather and scatter along 64-bit
    /// cell numbers (scale: the float's bytes), and its addition and unaligned load.
    macro_rules! lanes8 {
        ($float:ty, $vector:ty, $bytes:literal, $gather:ident, $scatter:ident, $add:ident, $load:ident) => {
            impl Lanes8 for $float {
                type Vector = $vector;
                #[inline(always)]
                unsafe fn gather(at: __m512i, base: *const $float) -> $vector {
                    // SAFETY: the caller's guarantees.
                    unsafe { $gather::<$bytes>(at, base.cast()) }
                }
                #[inline(always)]
                unsafe fn add(sums: $vector, values: *const $float) -> $vector {
                    // SAFETY: the caller's guarantees (AVX-512 F includes AVX).
                    unsafe { $add(sums, $load(values)) }
                }
                #[inline(always)]
                unsafe fn scatter(base: *mut $float, at: __m512i, sums: $vector) {
                    // SAFETY: the caller's guarantees.
                    unsafe { $scatter::<$bytes>(base.cast(), at, sums) }
                }
            }
        };
    }
    lanes8!(f32, __m256, 4, _mm512_i64gather_ps, _mm512_i64scatter_ps, _mm256_add_ps, _mm256_loadu_ps);
    lanes8!(f64, __m512d, 8, _mm512_i64gather_pd, _mm512_i64scatter_pd, _mm512_add_pd, _mm512_loadu_pd);

    /// One position's gradients and indices, a value and an index per lane.
    struct Position<'a, T> {
        values: &'a [T],
        indices: &'a [i64],
        /// Cells in the plane (the indices' bound).
        plane: u64,
        /// The position's first element in the whole gradient (for errors).
        first: usize,
    }

    /// See [`add`]; `cells` has fewer than 2^32 elements and `lanes` > 0.
    #[target_feature(enable = "avx512f")]
    fn add_lanes<T: Lanes8>(cells: &mut [T], lanes: usize, values: &[T], indices: &[i64], first: usize) -> Result<()> {
        let plane = (cells.len() / lanes) as u64;
        let mut fetched = 0;
        for (o, (values_o, idx)) in values.chunks_exact(lanes).zip(indices.chunks_exact(lanes)).enumerate() {
            super::prefetch_ahead(values, indices, &mut fetched, (o + 1) * lanes);
            let position = Position { values: values_o, indices: idx, plane, first: first + o * lanes };
            let mut lane = 0;
            while lane + 8 * GROUP <= lanes {
                add_group::<T, GROUP>(cells, &position, lane)?;
                lane += 8 * GROUP;
            }
            while lane + 8 <= lanes {
                add_group::<T, 1>(cells, &position, lane)?;
                lane += 8;
            }
            add_each(cells, &position, lane..lanes)?;
        }
        Ok(())
    }

    /// Lanes `lane..lane + 8 * G` of one position: gathered, added to and scattered
    /// where every index names a cell of the plane, else one at a time.
    #[inline(always)]
    fn add_group<T: Lanes8, const G: usize>(cells: &mut [T], position: &Position<'_, T>, lane: usize) -> Result<()> {
        let lanes = position.values.len();
        let indices = &position.indices[lane..][..8 * G];
        // SAFETY (the intrinsics): the caller, compiled for AVX-512 F, inlines this; the
        // loads read 8 of the `8 * G` indices each.
        let index: [__m512i; G] =
            std::array::from_fn(|k| unsafe { _mm512_loadu_si512(indices[8 * k..].as_ptr().cast()) });
        let plane = unsafe { _mm512_set1_epi64(position.plane as i64) };
        let inside = index.iter().fold(0xff, |m, &i| m & unsafe { _mm512_cmplt_epu64_mask(i, plane) });
        if inside != 0xff {
            return add_each(cells, position, lane..lane + 8 * G);
        }
        // Cell numbers `index * lanes + lane`: every index is below `plane` < 2^32, so
        // its low half, multiplied as unsigned 32-bit numbers, is exact.
        let at = std::array::from_fn(|k| unsafe {
            _mm512_add_epi64(_mm512_mul_epu32(index[k], _mm512_set1_epi64(lanes as i64)), lanes_from(lane + 8 * k))
        });
        // SAFETY: each cell number is `index * lanes + l` with `index < plane` and
        // `l < lanes`, so inside `cells`, and one per lane; `8 * G` values follow `lane`.
        unsafe { gather_add_scatter::<T, G>(cells, at, &position.values[lane..][..8 * G]) };
        Ok(())
    }

    /// The 8 lanes from `lane`, as 64-bit numbers.
    ///
    /// # Safety
    /// AVX-512 F (inlined into code compiled for it).
    #[inline(always)]
    unsafe fn lanes_from(lane: usize) -> __m512i {
        // SAFETY: the caller's guarantee.
        unsafe { _mm512_add_epi64(_mm512_set1_epi64(lane as i64), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)) }
    }

    /// `cells[at[k][l]] += values[8 * k + l]` for the `8 * G` lanes: every cell gathered
    /// before any is scattered.
    ///
    /// # Safety
    /// AVX-512 F (inlined into code compiled for it); the cell numbers lie inside
    /// `cells` and are distinct; `values` has `8 * G` values.
    #[inline(always)]
    unsafe fn gather_add_scatter<T: Lanes8, const G: usize>(cells: &mut [T], at: [__m512i; G], values: &[T]) {
        let base = cells.as_mut_ptr();
        // SAFETY: the caller's guarantees: no gather reads a cell a scatter of this group
        // writes, and 8 values per vector lie inside `values`.
        unsafe {
            let sums = at.map(|a| T::gather(a, base.cast_const()));
            for k in 0..G {
                T::scatter(base, at[k], T::add(sums[k], values[8 * k..].as_ptr()));
            }
        }
    }

    /// See [`add_by_table`].
    #[target_feature(enable = "avx512f")]
    unsafe fn by_table<T: Lanes8>(cells: &mut [T], first_lanes: &[usize; TABLE_TAPS], values: &[T], taps: &[u8]) {
        let lanes = values.len().min(taps.len());
        // The table's 16 entries in two registers, looked up by a permutation.
        // SAFETY: 8 entries per load.
        let (low, high) = unsafe {
            (_mm512_loadu_si512(first_lanes.as_ptr().cast()), _mm512_loadu_si512(first_lanes[8..].as_ptr().cast()))
        };
        let cells_of = |lane: usize| {
            // SAFETY: 8 taps lie inside `taps` (`lane + 8 <= lanes` below); each is below
            // 16, so the permutation picks its entry (bit 3 chooses the register).
            unsafe {
                let tap = _mm512_cvtepu8_epi64(_mm_loadl_epi64(taps[lane..][..8].as_ptr().cast()));
                _mm512_add_epi64(_mm512_permutex2var_epi64(low, tap, high), lanes_from(lane))
            }
        };
        let mut lane = 0;
        // SAFETY (each group): each tap's entry is a cell's first lane, so the cell
        // numbers (plus lanes below the lane count) lie inside `cells`, one per lane, and
        // 8 values per vector lie inside `values` (the caller's guarantees).
        unsafe {
            while lane + 8 * GROUP <= lanes {
                let at = std::array::from_fn(|k| cells_of(lane + 8 * k));
                gather_add_scatter::<T, GROUP>(cells, at, &values[lane..]);
                lane += 8 * GROUP;
            }
            while lane + 8 <= lanes {
                gather_add_scatter::<T, 1>(cells, [cells_of(lane)], &values[lane..]);
                lane += 8;
            }
        }
        for l in lane..lanes {
            cells[first_lanes[usize::from(taps[l])] + l] += values[l];
        }
    }

    /// `cells[index * lanes + lane] += value` for the position's lanes in `lanes`, one by
    /// one, skipping -1, with the error of [`super::scatter_positions`] for any other
    /// index outside the plane.
    #[inline(always)]
    fn add_each<T: Lanes8>(cells: &mut [T], position: &Position<'_, T>, lanes: Range<usize>) -> Result<()> {
        let (plane, all_lanes) = (position.plane, position.values.len());
        for l in lanes {
            let (v, i) = (position.values[l], position.indices[l]);
            if (i as u64) < plane {
                cells[i as usize * all_lanes + l] += v;
            } else if i != -1 {
                return Err(PoolError::InvalidIndex {
                    index: i,
                    position: position.first + l,
                    plane_size: plane as usize,
                });
            }
        }
        Ok(())
    }
}

/// Asks for the cache lines of `values` and `indices` up to [`PREFETCH_AHEAD`] elements
/// past `read` (elements read so far), 16 at a time from `fetched` (those asked for
/// already): two lines of indices, then those of the values (one for 4-byte values).
#[inline(always)]
fn prefetch_ahead<T>(values: &[T], indices: &[i64], fetched: &mut usize, read: usize) {
    let values_per_line = (64 / std::mem::size_of::<T>().max(1)).max(1);
    while *fetched < read + PREFETCH_AHEAD {
        simd::prefetch(indices.as_ptr().wrapping_add(*fetched));
        simd::prefetch(indices.as_ptr().wrapping_add(*fetched + 8));
        for k in (0..16).step_by(values_per_line) {
            simd::prefetch(values.as_ptr().wrapping_add(*fetched + k));
        }
        *fetched += 16;
    }
}

/// How many elements ahead of its reads [`scatter_positions`] asks for the cache lines
/// of its indices and values ([`simd::prefetch`]). While the loop's scattered additions
/// keep the caches busy, the hardware prefetcher brought the streams in too late: on
/// the Xeon, channels-last max backward 1.47x faster on SPPF's 5x5 stride-1 windows
/// (16x256x40x40 f32, 1 thread), 1.40x on 9x9 and 13x13, W1 1.12x, W2 1.18x (medians
/// of 3 alternating rounds; 2 threads 1.07–1.23x). 256 and 1024 elements measured
/// 1.46x and 1.45x on 5x5. Prefetching for the compact state's loop (1-byte taps)
/// measured 0.95x, and lines asked for a few at a time through the loop rather than
/// in bursts 1.20x.
const PREFETCH_AHEAD: usize = 512;

/// The tap a compact argmax names (see `max::Argmax`): `None` for an empty window.
#[inline]
fn tap_cell(window: &Window<'_>, tap: u8, position: usize) -> Result<Option<usize>> {
    if window.cells.is_empty() {
        return Ok(None);
    }
    match window.cells.get(usize::from(tap)) {
        Some(&cell) => Ok(Some(cell)),
        None => Err(PoolError::InvalidTap { tap, position, window_taps: window.cells.len() }),
    }
}

/// The max ops' backward from compact argmax taps: `wide[cells_o[tap[o]]] += narrow[o]`
/// in output order, lanes in order (the same additions as [`scatter`] from the
/// equivalent indices). Channels-first planes compute the cells from the taps
/// ([`TapLines`]) unless their window table is small enough to stay in the L1 cache.
pub(crate) fn scatter_taps<T: Element>(
    sides: Sides,
    windows: &Windows,
    narrow: &[T],
    taps: &[u8],
    wide: Out<'_, T>,
) -> Result<()> {
    if sides.blocking.lanes == 1 {
        if let Some(tiles) = TiledWindows::new(windows)? {
            return tiles.write_gradient(sides, narrow, taps, wide);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(gather) = TapGather::new::<T>(windows)? {
            return gather.write_gradient(sides, narrow, taps, wide);
        }
    }
    // A window table that fits in the L1 cache is cheaper to read than cells to compute
    // (W2, 2x2 stride 2 over 56x56: a 31 KiB table, 1.15x faster).
    let table_bytes = windows.table_taps().map(|(bounds, cells)| size_of_val(bounds) + size_of_val(cells));
    let small_table = table_bytes.is_some_and(|bytes| bytes <= SMALL_TABLE_BYTES);
    scatter_taps_by(sides, windows, narrow, taps, wide, !small_table)
}

/// Channels-first windows where every input cell lies in at most one window and the
/// windows tile each input row in runs of `kernel` (2 or 3) columns: 2x2 and 3x3 max
/// pools at their own stride, the commonest kind (2x2x2 in 3-D), and any windows over
/// rows (and depth) that do not overlap. The max backward from compact taps then writes
/// each cell's gradient once, front to back: `0 + δ` (the sum the scatter makes) where
/// its window's tap names it, else 0. No clearing pass and no scatter: W2 (VGG 2x2, 32x128x56x56 f32) 1.18 /
/// 1.09x faster on 1 / 2 threads than the scatter along the window table (medians of 5
/// alternating rounds; the minima 1.18 / 1.20x). Since each row goes straight to the
/// output (see `write_plane`), W2 is 1.11 / 1.18x faster than the backward from indices
/// (5 rounds; it was 1.27x slower on 1 thread). 3-D windows (W6, 2x2x2 stride 2 over
/// 4x32x32x64x64) went through the window table before: 1.46 / 1.50x faster, then 1.15 /
/// 1.17x faster than from indices (5 rounds).
struct TiledWindows {
    /// Per input row (of a 3-D plane: per depth and row): its window's output row and
    /// its row in that window's rows.
    rows: Vec<Option<(usize, usize)>>,
    /// Per output row: its window's number of rows.
    window_rows: Vec<usize>,
    out_cols: usize,
    width: usize,
    kernel: usize,
}

impl TiledWindows {
    /// `None` unless the windows over columns are consecutive runs of 2 or 3 columns
    /// from column 0 on, and the windows over the axes before them (rows, and depth for
    /// 3-D windows) do not overlap. Those axes count as one axis of rows, row-major, as
    /// a window numbers its taps.
    fn new(windows: &Windows) -> Result<Option<Self>> {
        let Some((cols, outer)) = windows.axes().split_last() else { return Ok(None) };
        let (out_cols, width) = (cols.output(), cols.input());
        let Some(kernel) = (out_cols > 0).then(|| cols.window(0).0.len()) else { return Ok(None) };
        let tiles = (0..out_cols).all(|o| cols.window(o).0.iter().copied().eq(o * kernel..(o + 1) * kernel));
        if !matches!(kernel, 2 | 3) || !tiles {
            return Ok(None);
        }
        let rows_of = |count: fn(&AxisWindows) -> usize| outer.iter().try_fold(1usize, |n, a| n.checked_mul(count(a)));
        let (Some(input_rows), Some(output_rows)) = (rows_of(AxisWindows::input), rows_of(AxisWindows::output)) else {
            return Ok(None);
        };
        let mut row_windows = buffer::filled(input_rows, None, "tiled windows")?;
        let mut window_rows = buffer::with_capacity(output_rows, "tiled windows")?;
        let mut coords: Vec<&[usize]> = Vec::with_capacity(outer.len());
        for o in 0..output_rows {
            // The window's coordinates along each outer axis (the last one's outputs
            // run fastest).
            coords.clear();
            let mut rest = o;
            for axis in outer.iter().rev() {
                coords.push(axis.window(rest % axis.output()).0);
                rest /= axis.output();
            }
            coords.reverse();
            let count = coords.iter().try_fold(1usize, |n, c| n.checked_mul(c.len()));
            // Taps are bytes: a window of more than 256 cells is left to the scatter.
            let Some(count) = count.filter(|&n| n.saturating_mul(kernel) <= 256) else { return Ok(None) };
            window_rows.push(count);
            for r in 0..count {
                // The window's row `r` as an input row; a row already taken means the
                // windows overlap (so at most `input_rows` rows are visited).
                let (mut rest, mut row, mut scale) = (r, 0, 1);
                for (axis, c) in outer.iter().zip(&coords).rev() {
                    row += c[rest % c.len()] * scale;
                    rest /= c.len();
                    scale *= axis.input();
                }
                if row_windows[row].replace((o, r)).is_some() {
                    return Ok(None);
                }
            }
        }
        Ok(Some(TiledWindows { rows: row_windows, window_rows, out_cols, width, kernel }))
    }

    /// The max backward of channels-first planes from compact taps (see [`scatter_taps`]),
    /// every plane written front to back.
    fn write_gradient<T: Element>(&self, sides: Sides, narrow: &[T], taps: &[u8], wide: Out<'_, T>) -> Result<()> {
        let isa = simd::current();
        par_blocks_in_order(wide, sides.wide, |b, sink| {
            let first = b * sides.narrow;
            let (values, taps) = (&narrow[first..][..sides.narrow], &taps[first..][..sides.narrow]);
            isa.run(
                #[inline(always)]
                || match self.kernel {
                    2 => self.write_plane::<T, 2>(values, taps, first, sink),
                    _ => self.write_plane::<T, 3>(values, taps, first, sink),
                },
            )
        })
    }

    /// One plane's gradient into `sink`, input row by input row, stored straight from
    /// the registers. Staged in a row buffer and copied, each copy's wide loads waited
    /// for the narrow stores that built the row (a store-forwarding stall; perf put 45 %
    /// of the time on the copy): W2 ran 1.3–1.5x slower (f32, 1 and 2 threads, 5
    /// rounds). `0 + δ` comes from the bits ([`Element::added_to_zero`]): through `f32`
    /// conversions one at a time, W2 took 2.1x as long in `f16`, 1.5x in `bf16`. Each
    /// output row's taps are checked against its window before its first row.
    #[inline(always)]
    fn write_plane<T: Element, const K: usize>(
        &self,
        values: &[T],
        taps: &[u8],
        first: usize,
        sink: &mut Sink<'_, T>,
    ) -> Result<()> {
        let (zero, out_cols) = (T::zero(), self.out_cols);
        for &window in &self.rows {
            let Some((o, r)) = window else {
                sink.repeat(zero, self.width);
                continue;
            };
            let outputs = o * out_cols..(o + 1) * out_cols;
            let (values, taps) = (&values[outputs.clone()], &taps[outputs.clone()]);
            if r == 0 {
                check_taps(taps, self.window_rows[o] * K, first + outputs.start)?;
            }
            // The window's taps of row `r`: `r · K` to `r · K + K - 1` (< 256).
            let row_tap = (r * K) as u8;
            sink.extend_zip_chunks::<_, _, K>(values, taps, |v, tap| {
                let v = v.added_to_zero();
                std::array::from_fn(|c| if tap == row_tap + c as u8 { v } else { zero })
            });
            sink.repeat(zero, self.width - out_cols * K);
        }
        Ok(())
    }
}

/// An error for the first of `taps` past its window's `window_taps` (`first`: the
/// position of `taps[0]`), found with one pass for their largest; a window with no
/// taps has none to check. The taps of one output row of [`TiledWindows`], or of one
/// channels-last position.
#[inline(always)]
fn check_taps(taps: &[u8], window_taps: usize, first: usize) -> Result<()> {
    let largest = taps.iter().fold(0, |m, &t| m.max(t));
    if window_taps == 0 || usize::from(largest) < window_taps {
        return Ok(());
    }
    let p = taps.iter().position(|&t| usize::from(t) >= window_taps).unwrap_or(0);
    Err(PoolError::InvalidTap { tap: taps[p], position: first + p, window_taps })
}

/// [`scatter_taps`], computing the cells of channels-first planes when `compute_cells`
/// and [`TapLines`] can, else through the window table.
fn scatter_taps_by<T: Element>(
    sides: Sides,
    windows: &Windows,
    narrow: &[T],
    taps: &[u8],
    wide: Out<'_, T>,
    compute_cells: bool,
) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    if lanes == 1 && compute_cells {
        if let Some(cells) = TapLines::new(windows)? {
            let isa = simd::current();
            let plane = sides.wide;
            // Cells counted from the start of a block of planes stay below NO_CELL.
            let step = match plane.checked_mul(PLANES_IN_STEP) {
                Some(block) if block < NO_CELL as usize => planes_in_step(),
                _ => 1,
            };
            let scratch = || buffer::filled(TapLines::scratch_len(step), 0u32, "tap lines");
            return par_blocks_accumulating_with(wide, plane * step, scratch, |scratch, g, block| {
                let first = g * step * narrow_block;
                isa.run(
                    #[inline(always)]
                    || {
                        in_plane_steps(
                            block,
                            plane,
                            first,
                            narrow_block,
                            scratch,
                            #[inline(always)]
                            |scratch, planes, start| {
                                cells.scatter_planes(isa, planes, &narrow[start..], &taps[start..], start, scratch)
                            },
                            #[inline(always)]
                            |scratch, planes, start| {
                                cells.scatter_planes(isa, planes, &narrow[start..], &taps[start..], start, scratch)
                            },
                        )
                    },
                )
            });
        }
    }
    #[cfg(target_arch = "x86_64")]
    let isa = simd::current();
    par_blocks_accumulating(wide, sides.wide * lanes, |b, wide_block| {
        let values = &narrow[b * narrow_block..][..narrow_block];
        let taps = &taps[b * narrow_block..][..narrow_block];
        #[cfg(target_arch = "x86_64")]
        let gathers = gather_scatter::applies::<T>(isa, wide_block.len());
        let mut add = |cell: usize, lane: usize, p: usize| {
            let cell = &mut wide_block[cell * lanes + lane];
            *cell = cell.add(values[p]);
        };
        if let Some((bounds, cells)) = windows.table_taps() {
            // Straight from the table: two loads per output.
            if lanes == 1 {
                // Channels-first: the same order without a lane loop per output, `f16`
                // added with the CPU's conversions where it has them.
                let first = b * narrow_block;
                #[cfg(target_arch = "x86_64")]
                if converts_f16_in_hardware::<T>(isa) {
                    return isa.run(
                        #[inline(always)]
                        || {
                            // SAFETY: `T` is `f16` and the CPU has F16C
                            // (`converts_f16_in_hardware`); this closure is compiled
                            // with F16C (inlined into `isa.run`).
                            let add = |a, b| unsafe { add_f16_f16c(a, b) };
                            add_along_table(wide_block, values, taps, (bounds, cells), first, add)
                        },
                    );
                }
                return add_along_table(wide_block, values, taps, (bounds, cells), first, T::add);
            }
            // Channels-last: each position's taps are checked against its window at once;
            // then, where the window has at most 4 taps per lane, a tap names its cell's
            // first lane through a table of 256 entries, which a byte cannot index out
            // of. Against a lookup in the window and a range test per value: SPPF
            // 16x256x40x40 f32 5x5 / 9x9 / 13x13 windows 1.42 / 1.35 / 1.23x faster, W1
            // 1.08x, W2 1.24x, W5 1.06x on 1 thread, 1.15–1.26x on 2 (medians of 3
            // alternating rounds).
            let mut first_lanes = [0usize; 256];
            let positions = values.chunks_exact(lanes).zip(taps.chunks_exact(lanes));
            for (o, ((values, taps), w)) in positions.zip(bounds.windows(2)).enumerate() {
                let window = &cells[w[0]..w[1]];
                if window.is_empty() {
                    continue;
                }
                check_taps(taps, window.len(), b * narrow_block + o * lanes)?;
                if window.len() > 4 * lanes {
                    for (lane, (&v, &tap)) in values.iter().zip(taps).enumerate() {
                        let cell = &mut wide_block[window[usize::from(tap)] * lanes + lane];
                        *cell = cell.add(v);
                    }
                    continue;
                }
                for (first_lane, &cell) in first_lanes.iter_mut().zip(window) {
                    *first_lane = cell * lanes;
                }
                #[cfg(target_arch = "x86_64")]
                if gathers && window.len() <= gather_scatter::TABLE_TAPS {
                    let table = first_lanes[..gather_scatter::TABLE_TAPS].try_into().expect("16 entries");
                    // SAFETY: `applies` said so; every tap is below the window's length
                    // (checked above), at most 16, so it names an entry just set to a
                    // cell's first lane; `values` and `taps` hold one entry per lane.
                    unsafe { gather_scatter::add_by_table(wide_block, table, values, taps) };
                    continue;
                }
                for (lane, (&v, &tap)) in values.iter().zip(taps).enumerate() {
                    let cell = &mut wide_block[first_lanes[usize::from(tap)] + lane];
                    *cell = cell.add(v);
                }
            }
            return Ok(());
        }
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let p = o * lanes + lane;
                if let Some(cell) = tap_cell(window, taps[p], b * narrow_block + p)? {
                    add(cell, lane, p);
                }
            }
            Ok(())
        })
    })
}

/// `block[cell] = add(block[cell], value)` for each output of a channels-first plane, in
/// order, its cell looked up in the window table (`bounds`, `cells`: output `o`'s
/// window is `cells[bounds[o]..bounds[o + 1]]`) at its tap; an empty window adds
/// nothing, a tap past its window is an error (`first`: the position of output 0). The
/// window's slice is only formed for an error: a valid tap costs one range test on the
/// table and one on the plane.
#[inline(always)]
fn add_along_table<T: Copy>(
    block: &mut [T],
    values: &[T],
    taps: &[u8],
    (bounds, cells): (&[usize], &[usize]),
    first: usize,
    add: impl Fn(T, T) -> T,
) -> Result<()> {
    for (o, ((&v, &tap), w)) in values.iter().zip(taps).zip(bounds.windows(2)).enumerate() {
        let k = w[0] + usize::from(tap);
        match cells.get(k).filter(|_| k < w[1]).and_then(|&cell| block.get_mut(cell)) {
            Some(cell) => *cell = add(*cell, v),
            None if w[0] == w[1] => {}
            None => return Err(PoolError::InvalidTap { tap, position: first + o, window_taps: w[1] - w[0] }),
        }
    }
    Ok(())
}

/// The cells that compact taps name in a channels-first plane of one or two spatial
/// dims, computed from the taps a batch of outputs at a time with integer vector
/// arithmetic; the backward then adds along them as it does along indices. (A lookup
/// per output in the window table costs more: it is a second dependent load, and for
/// large windows the table falls out of cache.)
///
/// Along each axis, every window kind's valid coordinates are evenly spaced (the
/// dilation apart, consecutive for adaptive and fractional windows). A window of `nr`
/// rows and `nc` columns numbers its taps row-major, so tap `t` is row `q = t / nc`,
/// column `t - q · nc`: cell `first_row · width + first_column + (t - q · nc) ·
/// column_step + q · row_step`, valid when `t < nr · nc`. The cell is computed as
/// `first_cell + t · column_step + q · (row_step - nc · column_step)`.
///
/// A batch is a run of consecutive outputs (whole output rows, or part of one long
/// row), computed in one flat loop: the per-column values are stored repeated for a
/// batch's rows, the per-row ones are spread over the batch once for all its planes.
/// (Row by row, the vector loop's remainder on rows of 28 to 56 outputs cost more than
/// its body.)
struct TapLines {
    /// Per output row: its window's first row's first cell and its number of rows.
    rows: Vec<(u32, u32)>,
    /// Output columns.
    out_cols: usize,
    /// Output rows per batch ([`TAP_BATCH`] outputs at most, at least one row).
    rows_per_batch: usize,
    /// Per output column: its window's first column and its number of columns `nc`.
    column_starts: Vec<u32>,
    column_taps: Vec<u32>,
    /// Per output column, repeated `rows_per_batch` times (the flat loop of
    /// [`Self::compute_cells`] reads them per output): the multiplier `m` with
    /// `(t · m) >> 16 = t / nc` for every tap (see [`tap_divisor`]), and `row_step - nc ·
    /// column_step`.
    column_divisors: Vec<u32>,
    column_row_steps: Vec<u32>,
    /// Cells between a window's consecutive columns.
    column_step: u32,
    /// Whether one plane's additions go in pairs ([`add_in_step`]).
    in_pairs: bool,
}

/// The multiplier `m` with `(t · m) >> 16 = t / n` for every `t < 256` (`n >= 1`):
/// `m = ceil(2^16 / n)` overshoots `t / n` by less than `t / 2^16 < 1 / 256`, less than
/// the distance to the next integer (at least `1 / n`, and `n <= 256` where `t >= n`).
fn tap_divisor(n: usize) -> u32 {
    (1u32 << 16).div_ceil(n.clamp(1, 1 << 16) as u32)
}

/// The largest window table (bounds and cells) that [`scatter_taps`] reads rather than
/// computing the cells with [`TapLines`].
const SMALL_TABLE_BYTES: usize = 32 << 10;

/// A batch of [`TapLines`] outputs: its output rows, output columns (of each row), and
/// outputs (counted from the plane's first).
type BatchSpan = (Range<usize>, Range<usize>, Range<usize>);

/// A cell no block of planes has: those handled by [`TapLines`] are smaller.
const NO_CELL: u32 = u32::MAX;

/// Outputs whose cells [`TapLines`] computes at once. With four planes in step, 512
/// keeps the scratch (12 KiB) beside the block in a 48 KiB L1 cache: against 2048,
/// compact max backward 1.08x (S5), 1.02x (S13), 1.00x (W5) faster by the minima of 5
/// alternating rounds on 1 thread.
const TAP_BATCH: usize = 512;

impl TapLines {
    /// `None` for windows over more than two dims, windows whose coordinates are not
    /// evenly spaced, or planes of `u32::MAX` cells or more.
    fn new(windows: &Windows) -> Result<Option<Self>> {
        let Some((cols, rows)) = windows.columns_and_rows() else { return Ok(None) };
        if windows.input_volume >= NO_CELL as usize {
            return Ok(None);
        }
        let (Some(column_step), Some(row_step)) = (even_step(cols), rows.map_or(Some(0), even_step)) else {
            return Ok(None);
        };
        // Cells, coordinates and steps are below the plane size, so they fit in u32.
        // More than 256 rows or columns: every tap (< 256) is in the first 256.
        let width = cols.input();
        let (row_step, column_step) = ((row_step * width) as u32, column_step as u32);
        let out_cols = cols.output();
        let rows_per_batch = (TAP_BATCH / out_cols.max(1)).max(1);
        let tiled = out_cols * rows_per_batch.min(rows.map_or(1, AxisWindows::output)).max(1);
        let mut column_starts = buffer::with_capacity(out_cols, "tap lines")?;
        let mut column_taps = buffer::with_capacity(out_cols, "tap lines")?;
        let mut column_divisors = buffer::with_capacity(tiled, "tap lines")?;
        let mut column_row_steps = buffer::with_capacity(tiled, "tap lines")?;
        for o in 0..out_cols {
            let coords = cols.window(o).0;
            let nc = coords.len().min(256) as u32;
            column_starts.push(coords.first().map_or(0, |&c| c as u32));
            column_taps.push(nc);
            column_divisors.push(tap_divisor(coords.len()));
            column_row_steps.push(row_step.wrapping_sub(nc.wrapping_mul(column_step)));
        }
        while column_divisors.len() < tiled {
            column_divisors.extend_from_within(..out_cols);
            column_row_steps.extend_from_within(..out_cols);
        }
        let rows = match rows {
            None => vec![(0, 1)],
            Some(rows) => {
                let mut starts = buffer::with_capacity(rows.output(), "tap lines")?;
                starts.extend((0..rows.output()).map(|o| {
                    let coords = rows.window(o).0;
                    (coords.first().map_or(0, |&r| (r * width) as u32), coords.len().min(256) as u32)
                }));
                starts
            }
        };
        Ok(Some(TapLines {
            rows,
            out_cols,
            rows_per_batch,
            column_starts,
            column_taps,
            column_divisors,
            column_row_steps,
            column_step,
            in_pairs: windows.repeat_along_rows(),
        }))
    }

    /// Scratch for [`Self::scatter_planes`] of `planes` planes: two stages of
    /// [`TAP_BATCH`] cells per plane, and the two values of [`Self::spread_rows`] per
    /// output of a batch.
    fn scratch_len(planes: usize) -> usize {
        (2 * planes + 2) * TAP_BATCH
    }

    /// `planes[p][cell named by taps[p][o]] += values[p][o]` for each output `o` of `G`
    /// planes, in order ([`add_in_step`]); `values` and `taps` start at the first plane's
    /// output 0, position `first` of the whole array. `scratch`: [`Self::scratch_len`].
    ///
    /// One plane at a time (`G = 1`), each batch's cells are computed before the previous
    /// batch's additions, into the other of two stages, so the additions' loads of the
    /// cells do not follow right on the vector stores that wrote them. Compact max
    /// backward (16x256x40x40, stride 1, 1 thread, AMD Zen 4, 5 alternating rounds) `f16`
    /// 3x3 1.08x, `f64` 5x5 1.12x, `bf16` 3x3 1.04x, `f32` 9x9 1.02x. Planes in step
    /// (`G > 1`, measured on the Xeon with one stage) keep computing each batch right
    /// before its additions.
    #[inline(always)]
    fn scatter_planes<T: Element, const G: usize>(
        &self,
        isa: simd::Isa,
        planes: PlaneStep<'_, T, G>,
        values: &[T],
        taps: &[u8],
        first: usize,
        scratch: &mut [u32],
    ) -> Result<()> {
        let narrow = planes.narrow;
        let (values, taps) = (planes.map_slices(values), planes.map_slices(taps));
        let (out_cols, out_rows) = (self.out_cols, self.rows.len());
        if out_cols == 0 {
            return Ok(());
        }
        let (first_cells, rest) = scratch.split_at_mut(TAP_BATCH);
        let (tap_limits, cells) = rest.split_at_mut(TAP_BATCH);
        let cells_per_batch = (self.rows_per_batch * out_cols).min(TAP_BATCH);
        let column_batches = out_cols.div_ceil(cells_per_batch);
        let batches = out_rows.div_ceil(self.rows_per_batch) * column_batches;
        let batch_at = |k: usize| self.batch_at(k, column_batches, cells_per_batch);
        let stage = G * TAP_BATCH;
        let ahead = G == 1;
        let stage_of = |k: usize| if ahead { k % 2 * stage } else { 0 };
        if ahead && batches > 0 {
            self.prepare_batch(isa, batch_at(0), taps, planes.wide, (first_cells, tap_limits), &mut cells[..stage]);
        }
        for k in 0..batches {
            let next = if ahead { k + 1 } else { k };
            if next < batches {
                let cells = &mut cells[stage_of(next)..][..stage];
                self.prepare_batch(isa, batch_at(next), taps, planes.wide, (first_cells, tap_limits), cells);
            }
            let batch = batch_at(k).2;
            let cells = &cells[stage_of(k)..][..stage];
            let batch_cells = std::array::from_fn(|p| &cells[p * TAP_BATCH..][..batch.len()]);
            let batch_values = values.map(|values| &values[batch.clone()]);
            let outside = |p: usize, o: usize| self.no_cell(batch.start + o, taps[p], first + p * narrow);
            let cell = |_, cell: u32| Some(cell as usize);
            let in_pairs = self.in_pairs && adds_in_one_instruction::<T>();
            #[cfg(target_arch = "x86_64")]
            if converts_f16_in_hardware::<T>(isa) {
                // SAFETY: `T` is `f16` and the CPU has F16C (`converts_f16_in_hardware`);
                // this function is inlined into the caller's `isa.run` closure.
                let add = |a, b| unsafe { add_f16_f16c(a, b) };
                add_in_step(planes.block, batch_values, batch_cells, cell, outside, in_pairs, add)?;
                continue;
            }
            add_in_step(planes.block, batch_values, batch_cells, cell, outside, in_pairs, T::add)?;
        }
        Ok(())
    }

    /// Batch `k` of a plane's outputs (`column_batches` per row of batches, of at most
    /// `cells_per_batch` columns): its output rows, output columns, and outputs.
    #[inline(always)]
    fn batch_at(&self, k: usize, column_batches: usize, cells_per_batch: usize) -> BatchSpan {
        let (out_cols, out_rows) = (self.out_cols, self.rows.len());
        let (r0, c0) = ((k / column_batches) * self.rows_per_batch, (k % column_batches) * cells_per_batch);
        let rows = r0..(r0 + self.rows_per_batch).min(out_rows);
        let columns = c0..(c0 + cells_per_batch).min(out_cols);
        let outputs = rows.start * out_cols + c0..(rows.end - 1) * out_cols + columns.end;
        (rows, columns, outputs)
    }

    /// The cells of a batch's outputs in `G` planes (`taps`: each plane's, from output 0)
    /// into `cells` ([`TAP_BATCH`] per plane), through [`Self::spread_rows`] and
    /// [`Self::compute_cells`].
    #[inline(always)]
    fn prepare_batch<const G: usize>(
        &self,
        isa: simd::Isa,
        (rows, columns, outputs): BatchSpan,
        taps: [&[u8]; G],
        wide: usize,
        (first_cells, tap_limits): (&mut [u32], &mut [u32]),
        cells: &mut [u32],
    ) {
        let (first_cells, tap_limits) = (&mut first_cells[..outputs.len()], &mut tap_limits[..outputs.len()]);
        let c0 = columns.start;
        self.spread_rows(rows, columns, first_cells, tap_limits);
        let batch_taps = taps.map(|taps| &taps[outputs.clone()]);
        self.compute_cells(isa, batch_taps, c0, (first_cells, tap_limits), wide, cells);
    }

    /// Per output of a batch (`rows` × `columns`, row-major), what its row and column
    /// give together, the same for every plane: its window's first cell and its number
    /// of taps.
    #[inline(always)]
    fn spread_rows(&self, rows: Range<usize>, columns: Range<usize>, first_cells: &mut [u32], tap_limits: &mut [u32]) {
        let (starts, counts) = (&self.column_starts[columns.clone()], &self.column_taps[columns.clone()]);
        let row_chunks = first_cells.chunks_mut(columns.len()).zip(tap_limits.chunks_mut(columns.len()));
        for ((first_cells, tap_limits), &(row_start, nr)) in row_chunks.zip(&self.rows[rows]) {
            for (first_cell, &start) in first_cells.iter_mut().zip(starts) {
                *first_cell = row_start.wrapping_add(start);
            }
            for (tap_limit, &nc) in tap_limits.iter_mut().zip(counts) {
                *tap_limit = nr * nc;
            }
        }
    }

    /// The cells of a batch's outputs in `G` planes of `wide` cells (`taps[p]`: plane
    /// `p`'s, the batch starting at output column `c0`) into `cells` ([`TAP_BATCH`] per
    /// plane), counted from the first plane's start; [`NO_CELL`] for a tap outside its
    /// window. `first_cells`, `tap_limits`: [`Self::spread_rows`]. Under `isa`'s AVX-512
    /// the planes go in step 16 outputs at a time ([`x86_cells`]); the rest, and every
    /// output under the other sets, one plane at a time.
    #[inline(always)]
    fn compute_cells<const G: usize>(
        &self,
        isa: simd::Isa,
        taps: [&[u8]; G],
        c0: usize,
        (first_cells, tap_limits): (&[u32], &[u32]),
        wide: usize,
        cells: &mut [u32],
    ) {
        let n = first_cells.len();
        let (divisors, row_steps) = (&self.column_divisors[c0..][..n], &self.column_row_steps[c0..][..n]);
        let shared = CellTerms { first_cells, tap_limits, divisors, row_steps, column_step: self.column_step };
        let done = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa::Avx512` only comes from `simd::current()`, which never
            // yields a set the CPU lacks.
            simd::Isa::Avx512 => unsafe { x86_cells::compute_cells(&shared, taps, wide, cells) },
            _ => 0,
        };
        for (p, (taps, cells)) in taps.iter().zip(cells.chunks_exact_mut(TAP_BATCH)).enumerate() {
            // Cells counted from the block's start: one pointer for all planes.
            let plane_start = (p * wide) as u32;
            for o in done..n {
                cells[o] = shared.cell(plane_start, taps[o], o);
            }
        }
    }

    /// Output `p` of a plane (`taps`: the plane's) names no cell: fine for an empty
    /// window, else an error.
    #[cold]
    #[inline(never)]
    fn no_cell(&self, p: usize, taps: &[u8], first: usize) -> Result<()> {
        let out_cols = self.out_cols;
        let window_taps = self.rows[p / out_cols].1 as usize * self.column_taps[p % out_cols] as usize;
        match window_taps {
            0 => Ok(()),
            _ => Err(PoolError::InvalidTap { tap: taps[p], position: first + p, window_taps }),
        }
    }
}

/// What [`TapLines::compute_cells`] reads per output of a batch (all `n` long).
struct CellTerms<'a> {
    first_cells: &'a [u32],
    tap_limits: &'a [u32],
    divisors: &'a [u32],
    row_steps: &'a [u32],
    column_step: u32,
}

impl CellTerms<'_> {
    /// The cell that `tap` names for output `o`, counted from `plane_start`, or
    /// [`NO_CELL`].
    #[inline(always)]
    fn cell(&self, plane_start: u32, tap: u8, o: usize) -> u32 {
        let t = u32::from(tap);
        let q = (t * self.divisors[o]) >> 16;
        let at = plane_start
            .wrapping_add(self.first_cells[o])
            .wrapping_add(t.wrapping_mul(self.column_step))
            .wrapping_add(q.wrapping_mul(self.row_steps[o]));
        if t < self.tap_limits[o] {
            at
        } else {
            NO_CELL
        }
    }
}

/// [`TapLines::compute_cells`] with AVX-512: 16 outputs of every plane in step, so
/// what the outputs share is loaded once for all planes (the compiler's loop, a plane
/// at a time, loads it again for each; it does not vectorise the planes in step on its
/// own), and a column step of 1 skips its multiplication. The backward's additions
/// wait on the loads, so the loads saved count: compact max backward of 16x256x40x40
/// f32 channels-first, 5x5 / 9x9 / 13x13 stride 1, against the loop a plane at a
/// time, 1.05–1.10x on 1 thread and 1.05–1.08x on 2 (medians of 5 alternating rounds),
/// now 1.01–1.16x faster than the backward from int64 indices (0.95–1.05x before); W5
/// and W8 1.03x, W1 1.00x.
#[cfg(target_arch = "x86_64")]
mod x86_cells {
    use super::{CellTerms, NO_CELL, TAP_BATCH};
    use std::arch::x86_64::{
        __m128i, __m512i, _mm512_add_epi32, _mm512_cmplt_epu32_mask, _mm512_cvtepu8_epi32, _mm512_loadu_si512,
        _mm512_mask_blend_epi32, _mm512_mullo_epi32, _mm512_set1_epi32, _mm512_srli_epi32, _mm512_storeu_si512,
        _mm_loadu_si128,
    };

    /// The cells of the first `n - n % 16` outputs (returned), as
    /// [`CellTerms::cell`] gives them, into `cells` ([`TAP_BATCH`] per plane).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F (always inlined into the kernels compiled for it).
    #[inline(always)]
    pub(super) unsafe fn compute_cells<const G: usize>(
        terms: &CellTerms<'_>,
        taps: [&[u8]; G],
        wide: usize,
        cells: &mut [u32],
    ) -> usize {
        let n = terms.first_cells.len();
        let whole = n - n % 16;
        assert!(
            [terms.tap_limits, terms.divisors, terms.row_steps].iter().all(|a| a.len() == n)
                && taps.iter().all(|t| t.len() >= n)
                && n <= TAP_BATCH
                && cells.len() >= G * TAP_BATCH,
            "compute_cells lengths"
        );
        // SAFETY (the intrinsics): the caller guarantees AVX-512 F. Every load and store
        // covers 16 lanes at `o < whole <= n`, inside the slices checked above.
        unsafe {
            let load = |a: &[u32], o: usize| _mm512_loadu_si512(a.as_ptr().add(o).cast::<__m512i>());
            let (no_cell, column_step) =
                (_mm512_set1_epi32(NO_CELL as i32), _mm512_set1_epi32(terms.column_step as i32));
            let plane_starts: [__m512i; G] = std::array::from_fn(|p| _mm512_set1_epi32((p * wide) as i32));
            for o in (0..whole).step_by(16) {
                let (first, limit) = (load(terms.first_cells, o), load(terms.tap_limits, o));
                let (divisor, row_step) = (load(terms.divisors, o), load(terms.row_steps, o));
                for p in 0..G {
                    let t = _mm512_cvtepu8_epi32(_mm_loadu_si128(taps[p].as_ptr().add(o).cast::<__m128i>()));
                    let q = _mm512_srli_epi32::<16>(_mm512_mullo_epi32(t, divisor));
                    let along = match terms.column_step {
                        1 => t,
                        _ => _mm512_mullo_epi32(t, column_step),
                    };
                    let at = _mm512_add_epi32(
                        _mm512_add_epi32(plane_starts[p], first),
                        _mm512_add_epi32(along, _mm512_mullo_epi32(q, row_step)),
                    );
                    let cell = _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(t, limit), no_cell, at);
                    _mm512_storeu_si512(cells.as_mut_ptr().add(p * TAP_BATCH + o).cast::<__m512i>(), cell);
                }
            }
        }
        whole
    }
}

/// The distance between consecutive coordinates of every window along `axis`, when it
/// is the same for all (1 when no window has two coordinates); `None` otherwise.
fn even_step(axis: &AxisWindows) -> Option<usize> {
    let mut step = None;
    for o in 0..axis.output() {
        for pair in axis.window(o).0.windows(2) {
            let d = pair[1] - pair[0];
            if *step.get_or_insert(d) != d {
                return None;
            }
        }
    }
    Some(step.unwrap_or(1))
}

/// PyTorch-format flat indices from compact argmax taps (-1 for an empty window).
pub(crate) fn taps_to_indices(sides: Sides, windows: &Windows, taps: &[u8], indices: &mut [i64]) -> Result<()> {
    let lanes = sides.blocking.lanes;
    let narrow_block = sides.narrow * lanes;
    par_blocks(indices, narrow_block, |b, out| {
        let taps = &taps[b * narrow_block..][..narrow_block];
        windows.for_each(|o, window| {
            for lane in 0..lanes {
                let p = o * lanes + lane;
                out[p] = tap_cell(window, taps[p], b * narrow_block + p)?.map_or(-1, |c| c as i64);
            }
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Padding, PoolGeometry};
    use crate::kernels::window::AxisWindows;

    /// The cells computed from the taps against the window table, the path for small
    /// tables: the same gradients bit for bit, and the same error for an invalid tap,
    /// over 1-D and 2-D windows of every kernel up to 5 with stride, padding, dilation
    /// and ceil mode (the property tests' shapes are small enough for the table).
    #[test]
    fn computed_cells_match_the_table() {
        let mut checked = 0;
        for (rank, k, stride, dilation, ceil) in (1..=2usize).flat_map(|rank| {
            (1..=5usize).flat_map(move |k| {
                (1..=3usize).flat_map(move |s| {
                    (1..=2usize).flat_map(move |d| [false, true].map(move |ceil| (rank, k, s, d, ceil)))
                })
            })
        }) {
            for pad in 0..=k / 2 {
                for size in [k * dilation + 2, 13] {
                    let kernel = if rank == 1 { vec![k] } else { vec![k, k.div_ceil(2)] };
                    let spatial = if rank == 1 { vec![size] } else { vec![size, size + 1] };
                    let geometry = PoolGeometry::new(&kernel)
                        .stride(&[stride])
                        .padding(Padding::Symmetric(vec![pad]))
                        .dilation(&[dilation])
                        .ceil_mode(ceil);
                    let Ok(resolved) = geometry.resolve(&spatial) else { continue };
                    let axes: Result<Vec<_>> = resolved.iter().map(AxisWindows::regular).collect();
                    let windows = Windows::new(axes.unwrap()).unwrap();
                    let case = format!("{spatial:?} {kernel:?} s{stride} p{pad} d{dilation} {ceil}");
                    check_against_table(&windows, &case, computed_cells(&windows));
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked} configurations");
    }

    /// Planes with more outputs than a batch: batches of several whole rows, and parts
    /// of one long row (batches that start past the first column).
    #[test]
    fn computed_cells_match_the_table_across_batches() {
        for (spatial, kernel, pad) in
            [(vec![5000], vec![3], 1), (vec![70, 45], vec![3, 2], 1), (vec![3, 2600], vec![2, 5], 2)]
        {
            let geometry = PoolGeometry::new(&kernel).stride(&[1]).padding(Padding::Symmetric(vec![pad]));
            let resolved = geometry.resolve(&spatial).unwrap();
            let axes: Result<Vec<_>> = resolved.iter().map(AxisWindows::regular).collect();
            let windows = Windows::new(axes.unwrap()).unwrap();
            assert!(windows.output_volume > TAP_BATCH, "{spatial:?}");
            check_against_table(&windows, &format!("{spatial:?} {kernel:?} p{pad}"), computed_cells(&windows));
        }
    }

    /// The gradient written front to back for tiled windows against the scatter along
    /// the window table: the same bits (values with -0.0 and NaN among them), the same
    /// error for an invalid tap; and which windows take that path.
    #[test]
    fn tiled_windows_match_the_scatter() {
        let mut tiled = 0;
        for (rank, k, row_kernel, row_stride, ceil) in (1..=3usize).flat_map(|rank| {
            (1..=4usize).flat_map(move |k| {
                (1..=3usize).flat_map(move |rk| {
                    (1..=4usize).flat_map(move |rs| [false, true].map(move |ceil| (rank, k, rk, rs, ceil)))
                })
            })
        }) {
            for size in [k * 3, k * 4 + 1, 9] {
                let (kernel, stride, spatial) = match rank {
                    1 => (vec![k], vec![k], vec![size]),
                    2 => (vec![row_kernel, k], vec![row_stride, k], vec![size + 2, size]),
                    // 3-D: the depth windows as the rows' (and 5 deep).
                    _ => (vec![row_kernel, row_kernel, k], vec![row_stride, row_stride, k], vec![5, size + 2, size]),
                };
                let geometry = PoolGeometry::new(&kernel).stride(&stride).ceil_mode(ceil);
                let Ok(resolved) = geometry.resolve(&spatial) else { continue };
                let axes: Result<Vec<_>> = resolved.iter().map(AxisWindows::regular).collect();
                let windows = Windows::new(axes.unwrap()).unwrap();
                let case = format!("{spatial:?} {kernel:?} s{stride:?} {ceil}");
                let takes_tiles = TiledWindows::new(&windows).unwrap().is_some();
                let tiles_columns = matches!(k, 2 | 3) && (!ceil || size % k == 0);
                let rows_apart = rank == 1 || row_stride >= row_kernel;
                assert_eq!(takes_tiles, tiles_columns && rows_apart, "{case}");
                if takes_tiles {
                    let tiles = TiledWindows::new(&windows).unwrap().unwrap();
                    let path = |sides, values: &[f32], taps: &[u8], grad: &mut [f32]| {
                        tiles.write_gradient(sides, values, taps, grad.into())
                    };
                    check_against_table(&windows, &case, path);
                    tiled += 1;
                }
            }
        }
        assert!(tiled > 60, "{tiled} configurations");
    }

    /// The computed cells' scatter of compact taps ([`TapLines`]).
    fn computed_cells(windows: &Windows) -> impl Fn(Sides, &[f32], &[u8], &mut [f32]) -> Result<()> + '_ {
        |sides, values, taps, grad| scatter_taps_by(sides, windows, values, taps, grad.into(), true)
    }

    /// `path` (the max backward of five channels-first planes from compact taps: a
    /// block of four in step, then one alone) against the scatter along the window
    /// table: the same bits, values with -0.0 and NaN among them, and the same error for
    /// a tap one past its window's last, in the second plane.
    fn check_against_table(
        windows: &Windows,
        case: &str,
        path: impl Fn(Sides, &[f32], &[u8], &mut [f32]) -> Result<()>,
    ) {
        let planes = 5;
        let (wide, narrow) = (windows.input_volume, windows.output_volume);
        let sides = Sides { blocking: Blocking { blocks: planes, lanes: 1 }, wide, narrow };
        let (bounds, _) = windows.table_taps().unwrap();
        let sizes: Vec<usize> = bounds.windows(2).map(|w| w[1] - w[0]).collect();
        let taps: Vec<u8> = (0..planes * narrow).map(|o| ((o * 7919) % sizes[o % narrow].max(1)) as u8).collect();
        let special = [-0.0, f32::NAN, 0.0, -1.5];
        let values: Vec<f32> = (0..taps.len())
            .map(|o| special.get(o % 11).copied().unwrap_or(((o * 37) % 101) as f32 * 0.25 - 12.0))
            .collect();
        let run = |taps: &[u8], table: Option<simd::Isa>| {
            let mut grad = vec![0.0f32; planes * wide];
            match table {
                None => scatter_taps_by(sides, windows, &values, taps, (&mut grad[..]).into(), false),
                Some(isa) => simd::with_isa(isa, || path(sides, &values, taps, &mut grad)),
            }
            .map(|()| grad)
        };
        let table = run(&taps, None).unwrap();
        let Some(o) = (0..narrow).rev().find(|&o| sizes[o] > 0 && sizes[o] < 256) else { return };
        let mut bad_taps = taps.clone();
        bad_taps[narrow + o] = sizes[o] as u8;
        let table_error = run(&bad_taps, None).unwrap_err();
        for isa in simd::available() {
            let got = run(&taps, Some(isa)).unwrap();
            let same = got.iter().zip(&table).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{case} ({isa:?}): the gradient differs from the table's scatter");
            let got = run(&bad_taps, Some(isa)).unwrap_err();
            assert_eq!(got.to_string(), table_error.to_string(), "{case} ({isa:?})");
            assert!(matches!(got, PoolError::InvalidTap { .. }), "{case} ({isa:?}): {got}");
        }
    }

    #[test]
    fn tap_divisor_divides_every_tap_exactly() {
        for n in 1..=300usize {
            let m = tap_divisor(n);
            for t in 0..256u32 {
                assert_eq!((t * m) >> 16, t / n as u32, "t = {t}, n = {n}");
            }
        }
    }
}
