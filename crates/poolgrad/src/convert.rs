//! Bulk `f16` ↔ `f32` conversion with the CPU's conversion instructions (F16C on x86-64),
//! for [`crate::tensor::Element::widen_slice`] and [`crate::tensor::Element::narrow_slice`],
//! and runs of additions rounded to `f16` or `bf16` with AVX-512, for
//! [`crate::tensor::Element::sum_rounded_rows`].
//!
//! One F16C instruction converts 8 values, where the software conversion the kernels
//! inline takes about 20 instructions per vector of them. Both give the same bits: the
//! instructions round to nearest-even (the rounding is fixed in the instruction, not read
//! from MXCSR), keep subnormals, and quiet a NaN keeping its top payload bits, as `half`
//! and [`crate::tensor`]'s software conversions do.

use half::{bf16, f16};

/// Values per F16C instruction.
#[cfg(target_arch = "x86_64")]
const LANES: usize = 8;

/// Whether the CPU runs what the F16C functions of [`x86`] are compiled for.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_f16c() -> bool {
    is_x86_feature_detected!("f16c") && is_x86_feature_detected!("avx")
}

/// Whether the CPU converts between `f16` and `f32` with its own instructions.
pub(crate) fn widens_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_f16c();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `wide[i] = values[i]` as `f32`, or `false` (nothing written) where the CPU lacks F16C.
#[inline(always)]
pub(crate) fn widen_f16(values: &[f16], wide: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::widen_16` is compiled for (checked
        // just above).
        unsafe { x86::widen_16(values, wide) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU supports the features `x86::widen` is compiled for (checked
        // just above).
        unsafe { x86::widen(values, wide) };
        return true;
    }
    let _ = (values, wide);
    false
}

/// `values[i] = wide[i]` rounded to `f16`, or `false` (nothing written) where the CPU
/// lacks F16C.
#[inline(always)]
pub(crate) fn narrow_f16(wide: &[f32], values: &mut [f16]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::narrow_16` is compiled for (checked
        // just above).
        unsafe { x86::narrow_16(wide, values) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU supports the features `x86::narrow` is compiled for (checked
        // just above).
        unsafe { x86::narrow(wide, values) };
        return true;
    }
    let _ = (wide, values);
    false
}

/// `sums[i] = sums[i] + values[i]` widened to `f32`, or `false` (nothing changed) where
/// the CPU lacks F16C.
#[inline(always)]
pub(crate) fn add_widened_f16(sums: &mut [f32], values: &[f16]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::add_widened_16` is compiled for
        // (checked just above).
        unsafe { x86::add_widened_16(sums, values) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU supports the features `x86::add_widened` is compiled for
        // (checked just above).
        unsafe { x86::add_widened(sums, values) };
        return true;
    }
    let _ = (sums, values);
    false
}

/// Rounds every value of `wide` to `f16` and widens it back, in place, or `false`
/// (nothing changed) where the CPU lacks F16C.
#[inline(always)]
pub(crate) fn round_f16(wide: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU supports the features `x86::round` is compiled for (checked
        // just above).
        unsafe { x86::round(wide) };
        return true;
    }
    let _ = wide;
    false
}

/// `sums[i] = sums[i] + values[i]` rounded to `f16` and widened back, or `false`
/// (nothing changed) where the CPU lacks F16C. Inlined into the kernels' loops: the
/// instruction sets [`crate::simd::Isa::Avx2`] and wider compile them with F16C.
#[inline(always)]
pub(crate) fn add_rounded_f16(sums: &mut [f32], values: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && sums.len().is_multiple_of(16) {
        // SAFETY: the CPU supports the features `x86::add_rounded_16` is compiled for
        // (checked just above).
        unsafe { x86::add_rounded_16(sums, values) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if has_f16c() {
        // SAFETY: the CPU supports the features `x86::add_rounded` is compiled for
        // (checked just above).
        unsafe { x86::add_rounded(sums, values) };
        return true;
    }
    let _ = (sums, values);
    false
}

/// `0 + row(0) + ... + row(count - 1)`, each addition rounded to `f16`, into `sums` (the
/// `f16` bits), or `false` (nothing written) where the CPU lacks AVX-512 or `W` is not a
/// multiple of 16 up to 192. The sums stay in registers for the whole run: a loop of
/// [`add_rounded_f16`] calls kept them in memory, a store and a load in every addition's
/// dependency chain (W3's f16 channels-last backward: 1.10–1.17x faster).
#[inline(always)]
pub(crate) fn sum_rounded_rows_f16<'r, const W: usize>(
    count: usize,
    row: &impl Fn(usize) -> &'r [f32; W],
    sums: &mut [u16],
) -> bool {
    sum_rounded_rows::<W, false>(count, row, sums)
}

/// [`sum_rounded_rows_f16`] for `bf16` values widened to `f32`: the rounding is a few
/// integer operations in the 32-bit lanes, the same bits as `half::bf16::from_f32`. Each
/// operand has its 16 low bits clear, so a NaN sum (quiet, as every addition's NaN is)
/// has them clear too, and the rounding's carry never reaches the kept bits: it needs no
/// NaN test.
#[inline(always)]
pub(crate) fn sum_rounded_rows_bf16<'r, const W: usize>(
    count: usize,
    row: &impl Fn(usize) -> &'r [f32; W],
    sums: &mut [u16],
) -> bool {
    sum_rounded_rows::<W, true>(count, row, sums)
}

/// The sums of `count` taps (`tap(0)`, `tap(1)`, ...) of `W` `f16` values, widened,
/// each lane's added in order from zero (see
/// [`crate::tensor::Element::sum_widened_taps`]), or `None` where the CPU lacks AVX-512
/// or `W` is not a multiple of 16. The sums stay in registers across the taps, as in
/// [`sum_rounded_rows_f16`].
#[inline(always)]
pub(crate) fn sum_widened_taps_f16<'t, const W: usize>(
    count: usize,
    tap: &impl Fn(usize) -> &'t [f16; W],
) -> Option<[f32; W]> {
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(16) && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::sum_widened_taps_16` is compiled
        // for (checked just above), and `W` is a multiple of 16.
        return Some(unsafe { x86::sum_widened_taps_16::<W>(count, tap) });
    }
    let _ = (count, tap);
    None
}

/// The `W` means of [`sum_widened_taps_f16`]'s sums, each divided by `divisor` (or
/// multiplied by it, where `multiply`) and rounded to `f16` into `means`, the sums kept
/// in registers up to the store; `false` (nothing written) where the CPU lacks AVX-512
/// or `W` is not a multiple of 16. The sums went through arrays on the stack before, and
/// the kernel's speed then hung on where the thread's stack lay: with the stack 2 KiB
/// lower, W3 channels-last forward f16 took 1.20x as long on 1 thread, while on 2
/// threads one of them ran at half speed (4K aliasing, presumably, between the stack's
/// stores and the image's loads).
#[inline(always)]
pub(crate) fn mean_widened_taps_f16<'t, const W: usize>(
    count: usize,
    tap: &impl Fn(usize) -> &'t [f16; W],
    divisor: f32,
    multiply: bool,
    means: &mut [f16; W],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(16) && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::mean_widened_taps_16` is compiled
        // for (checked just above), and `W` is a multiple of 16.
        unsafe { x86::mean_widened_taps_16::<W>(count, tap, divisor, multiply, means) };
        return true;
    }
    let _ = (count, tap, divisor, multiply, means);
    false
}

/// [`sum_widened_taps_f16`] for `bf16` taps, `W` a multiple of 32: each
/// 32-bit word of a tap holds two lanes, widened by a shift (the even lane) and a mask
/// (the odd one), one operation per 16 lanes where widening each lane apart takes two;
/// the sums are put back in lane order once, after the taps.
#[inline(always)]
pub(crate) fn sum_widened_taps_bf16<'t, const W: usize>(
    count: usize,
    tap: &impl Fn(usize) -> &'t [bf16; W],
) -> Option<[f32; W]> {
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(32) && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::sum_widened_taps_bf16_32` is
        // compiled for (checked just above), and `W` is a multiple of 32.
        return Some(unsafe { x86::sum_widened_taps_bf16_32::<W>(count, tap) });
    }
    let _ = (count, tap);
    None
}

/// The `W` means of [`sum_widened_taps_bf16`]'s sums, each divided by `divisor` (or
/// multiplied by it, where `multiply`) and rounded to `bf16` into `means`, as
/// [`mean_widened_taps_f16`] does for `f16`; `false` (nothing written) where the CPU
/// lacks AVX-512 or `W` is not a multiple of 32. The even and odd lanes' sums are divided
/// and rounded apart and their halves put back together in one `or`, with no
/// permutation back into lane order and no array of sums on the stack: W3
/// channels-last bf16 forward 1.21x on 1 thread and on 2 (3 rounds).
#[inline(always)]
pub(crate) fn mean_widened_taps_bf16<'t, const W: usize>(
    count: usize,
    tap: &impl Fn(usize) -> &'t [bf16; W],
    divisor: f32,
    multiply: bool,
    means: &mut [bf16; W],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(32) && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::mean_widened_taps_bf16_32` is
        // compiled for (checked just above), and `W` is a multiple of 32.
        unsafe { x86::mean_widened_taps_bf16_32::<W>(count, tap, divisor, multiply, means) };
        return true;
    }
    let _ = (count, tap, divisor, multiply, means);
    false
}

/// Whether the kernels take the path of [`sum_rows_f16_natively`]: AVX-512 FP16, under
/// AVX-512 ([`crate::simd::current`], so that a test forcing another instruction set
/// runs the other path). Asked once per block: it looks up a thread-local.
pub(crate) fn adds_f16_natively() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::simd::current() == crate::simd::Isa::Avx512 && is_x86_feature_detected!("avx512fp16");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// See [`crate::tensor::Element::sum_rows_natively`] for `f16`: `vaddph`, 32 lanes per
/// instruction, the running sums in registers; `false` (nothing written) where the CPU
/// lacks AVX-512 FP16 or `W` is not a multiple of 32. The CPU's features alone: the
/// kernels choose this path once per block with [`adds_f16_natively`], and the
/// instruction set's thread-local look-up there, a call per cell here, cost W7's
/// channels-last f16 backward up to 1.11x.
#[inline(always)]
pub(crate) fn sum_rows_f16_natively<'r, const W: usize>(
    count: usize,
    row: &impl Fn(usize) -> &'r [f16; W],
    sums: &mut [f16; W],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(32) && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512fp16") {
        // SAFETY: the CPU supports AVX-512 F and FP16 (checked just above), and `W` is a
        // multiple of 32.
        unsafe { x86::sum_rows_ph::<W>(count, row, sums) };
        return true;
    }
    let _ = (count, row, sums);
    false
}

/// Taps up to which [`in_bf16_split_range`] vouches for a run of sums: the most a
/// window of the stencil has (32 by 32).
pub(crate) const MAX_SPLIT_TAPS: usize = 1024;

/// Whether runs of up to [`MAX_SPLIT_TAPS`] rounded `bf16` additions from zero over
/// values like this one (`bf16` values, widened) may round by Veltkamp's split
/// ([`sum_rounded_rows_bf16_split`]): it is zero or of magnitude between 2^-118 and
/// 2^100 (no infinity, no NaN). Also true of a value that rounds to such a `bf16` value
/// (rounding is monotonic, and both ends are `bf16` values).
///
/// Why that suffices: such values are multiples of 2^-125 (their last bit), and so is
/// every sum of them and every rounding of such a sum, so a sum that is not zero is at
/// least 2^-125, a normal number; and no sum exceeds `1024 * 2^100 = 2^110`. The split
/// rounds every normal `f32` below 2^111 as the integer rounding does (checked on every
/// bit pattern, outside the tests, and on every significand at the range's ends by
/// `split_rounding_matches_bf16_on_every_significand`).
#[inline(always)]
pub(crate) fn in_bf16_split_range<F: num_traits::Float>(value: F) -> bool {
    let magnitude = value.abs();
    let (least, greatest) = (F::from(2f64.powi(-118)), F::from(2f64.powi(100)));
    let inside = match (least, greatest) {
        (Some(least), Some(greatest)) => (magnitude >= least) & (magnitude <= greatest),
        _ => false,
    };
    (magnitude == F::zero()) | inside
}

/// [`sum_rounded_rows_bf16`] for rows whose values [`in_bf16_split_range`] vouches for,
/// `count` at most [`MAX_SPLIT_TAPS`]: each sum rounds by Veltkamp's split, `c = s *
/// 65537; s' = c + (s - c)`, three floating-point operations in place of four integer
/// ones. `false` (nothing written) where the CPU lacks AVX-512 or `W` is not a multiple
/// of 16 up to 192.
#[inline(always)]
pub(crate) fn sum_rounded_rows_bf16_split<'r, const W: usize>(
    count: usize,
    row: &impl Fn(usize) -> &'r [f32; W],
    sums: &mut [u16],
) -> bool {
    assert!(sums.len() == W && count <= MAX_SPLIT_TAPS, "sum_rounded_rows_bf16_split width or count");
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(16) && W <= 16 * x86::MAX_VECTORS && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::sum_rounded_rows_16` is compiled
        // for (checked just above), and `W` is a multiple of 16 up to its limit.
        unsafe { x86::sum_rounded_rows_16::<W, true, false, true>(count, row, sums) };
        return true;
    }
    let _ = (count, row);
    false
}

/// `bf16` rounding by Veltkamp's split, as [`sum_rounded_rows_bf16_split`] rounds (see
/// there for where it is exact): for the tests, which check it against `half`.
#[cfg(test)]
fn round_bf16_by_split(value: f32) -> f32 {
    let c = value * 65537.0;
    c + (value - c)
}

/// [`sum_rounded_rows_f16`] (`BF16` false) or [`sum_rounded_rows_bf16`] (true).
#[inline(always)]
fn sum_rounded_rows<'r, const W: usize, const BF16: bool>(
    count: usize,
    row: &impl Fn(usize) -> &'r [f32; W],
    sums: &mut [u16],
) -> bool {
    assert_eq!(sums.len(), W, "sum_rounded_rows width");
    #[cfg(target_arch = "x86_64")]
    // The CPU's features alone, like the path below: this runs once per cell, and the
    // instruction set's thread-local look-up (`adds_f16_natively`) cost W7's channels-first
    // backward (one share per cell) a quarter of its time. A lone share needs no rounded
    // addition: the path below took 0.93x the time there.
    if !BF16
        && count > 1
        && W.is_multiple_of(16)
        && W <= 16 * x86::MAX_VECTORS
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512fp16")
    {
        // SAFETY: the CPU supports AVX-512 F and FP16 (checked just above), and `W` is a
        // multiple of 16 up to the limit.
        unsafe { x86::sum_rounded_rows_16::<W, false, true, false>(count, row, sums) };
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if W.is_multiple_of(16) && W <= 16 * x86::MAX_VECTORS && is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features `x86::sum_rounded_rows_16` is compiled
        // for (checked just above), and `W` is a multiple of 16 up to its limit.
        unsafe { x86::sum_rounded_rows_16::<W, BF16, false, false>(count, row, sums) };
        return true;
    }
    let _ = (count, row);
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::LANES;
    use crate::tensor::{f16_to_f32, f32_to_f16};
    use half::{bf16, f16};
    use std::arch::x86_64::{
        __m128i, __m512, _mm256_add_ps, _mm256_cvtph_ps, _mm256_cvtps_ph, _mm256_loadu_ps, _mm256_storeu_ps,
        _mm_loadu_si128, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT,
    };

    /// See [`super::widen_f16`]; the last `len % 8` values in software.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    pub(super) unsafe fn widen(values: &[f16], wide: &mut [f32]) {
        assert_eq!(values.len(), wide.len(), "widen_slice lengths");
        let mut chunks = values.chunks_exact(LANES).zip(wide.chunks_exact_mut(LANES));
        for (halves, floats) in chunks.by_ref() {
            // SAFETY: both chunks hold exactly 8 values (16 and 32 bytes); the unaligned
            // load and store touch exactly those bytes.
            unsafe {
                let h = _mm_loadu_si128(halves.as_ptr().cast::<__m128i>());
                _mm256_storeu_ps(floats.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        let done = values.len() - values.len() % LANES;
        for (w, &v) in wide[done..].iter_mut().zip(&values[done..]) {
            *w = f16_to_f32(v);
        }
    }

    /// See [`super::add_widened_f16`]; the last `len % 8` values in software.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    pub(super) unsafe fn add_widened(sums: &mut [f32], values: &[f16]) {
        assert_eq!(sums.len(), values.len(), "add_widened_slice lengths");
        let mut chunks = sums.chunks_exact_mut(LANES).zip(values.chunks_exact(LANES));
        for (sum, halves) in chunks.by_ref() {
            // SAFETY: both chunks hold exactly 8 values (32 and 16 bytes); the unaligned
            // loads and the store touch exactly those bytes.
            unsafe {
                let wide = _mm256_cvtph_ps(_mm_loadu_si128(halves.as_ptr().cast::<__m128i>()));
                _mm256_storeu_ps(sum.as_mut_ptr(), _mm256_add_ps(_mm256_loadu_ps(sum.as_ptr()), wide));
            }
        }
        let done = sums.len() - sums.len() % LANES;
        for (sum, &v) in sums[done..].iter_mut().zip(&values[done..]) {
            *sum += f16_to_f32(v);
        }
    }

    /// See [`super::round_f16`]; the last `len % 8` values in software.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    pub(super) unsafe fn round(wide: &mut [f32]) {
        const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT;
        let mut chunks = wide.chunks_exact_mut(LANES);
        for floats in chunks.by_ref() {
            // SAFETY: the chunk holds exactly 8 values (32 bytes); the unaligned load and
            // store touch exactly those bytes.
            unsafe {
                let h = _mm256_cvtps_ph::<ROUND>(_mm256_loadu_ps(floats.as_ptr()));
                _mm256_storeu_ps(floats.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for w in chunks.into_remainder() {
            *w = f16_to_f32(f32_to_f16(*w));
        }
    }

    /// See [`super::add_rounded_f16`]; the last `len % 8` values in software.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    pub(super) unsafe fn add_rounded(sums: &mut [f32], values: &[f32]) {
        assert_eq!(sums.len(), values.len(), "add_rounded_slice lengths");
        const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT;
        let mut chunks = sums.chunks_exact_mut(LANES).zip(values.chunks_exact(LANES));
        for (sum, v) in chunks.by_ref() {
            // SAFETY: both chunks hold exactly 8 values (32 bytes); the unaligned loads
            // and the store touch exactly those bytes.
            unsafe {
                let added = _mm256_add_ps(_mm256_loadu_ps(sum.as_ptr()), _mm256_loadu_ps(v.as_ptr()));
                let h = _mm256_cvtps_ph::<ROUND>(added);
                _mm256_storeu_ps(sum.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        let done = sums.len() - sums.len() % LANES;
        for (sum, &v) in sums[done..].iter_mut().zip(&values[done..]) {
            *sum = f16_to_f32(f32_to_f16(*sum + v));
        }
    }

    /// See [`super::widen_f16`], 16 values at a time; the last `len % 16` as [`widen`]
    /// widens them.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn widen_16(values: &[f16], wide: &mut [f32]) {
        use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_cvtph_ps, _mm512_storeu_ps};
        assert_eq!(values.len(), wide.len(), "widen_slice lengths");
        for (halves, floats) in values.chunks_exact(16).zip(wide.chunks_exact_mut(16)) {
            // SAFETY: both chunks hold exactly 16 values (32 and 64 bytes); the unaligned
            // load and store touch exactly those bytes.
            unsafe {
                let h = _mm256_loadu_si256(halves.as_ptr().cast::<__m256i>());
                _mm512_storeu_ps(floats.as_mut_ptr(), _mm512_cvtph_ps(h));
            }
        }
        let done = values.len() - values.len() % 16;
        // SAFETY: AVX-512 F includes AVX and F16C.
        unsafe { widen(&values[done..], &mut wide[done..]) };
    }

    /// See [`super::narrow_f16`], 16 values at a time; the last `len % 16` as [`narrow`]
    /// rounds them.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn narrow_16(wide: &[f32], values: &mut [f16]) {
        use std::arch::x86_64::{__m256i, _mm256_storeu_si256, _mm512_cvtps_ph, _mm512_loadu_ps};
        assert_eq!(values.len(), wide.len(), "narrow_slice lengths");
        for (floats, halves) in wide.chunks_exact(16).zip(values.chunks_exact_mut(16)) {
            // SAFETY: both chunks hold exactly 16 values (64 and 32 bytes); the unaligned
            // load and store touch exactly those bytes.
            unsafe {
                let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_loadu_ps(floats.as_ptr()));
                _mm256_storeu_si256(halves.as_mut_ptr().cast::<__m256i>(), h);
            }
        }
        let done = wide.len() - wide.len() % 16;
        // SAFETY: AVX-512 F includes AVX and F16C.
        unsafe { narrow(&wide[done..], &mut values[done..]) };
    }

    /// See [`super::add_widened_f16`], 16 values at a time; the last `len % 16` as
    /// [`add_widened`] adds them.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn add_widened_16(sums: &mut [f32], values: &[f16]) {
        use std::arch::x86_64::{
            __m256i, _mm256_loadu_si256, _mm512_add_ps, _mm512_cvtph_ps, _mm512_loadu_ps, _mm512_storeu_ps,
        };
        assert_eq!(sums.len(), values.len(), "add_widened_slice lengths");
        let mut chunks = sums.chunks_exact_mut(16).zip(values.chunks_exact(16));
        for (sum, halves) in chunks.by_ref() {
            // SAFETY: both chunks hold exactly 16 values (64 and 32 bytes); the unaligned
            // loads and the store touch exactly those bytes.
            unsafe {
                let wide = _mm512_cvtph_ps(_mm256_loadu_si256(halves.as_ptr().cast::<__m256i>()));
                _mm512_storeu_ps(sum.as_mut_ptr(), _mm512_add_ps(_mm512_loadu_ps(sum.as_ptr()), wide));
            }
        }
        let done = sums.len() - sums.len() % 16;
        // SAFETY: AVX-512 F includes AVX and F16C.
        unsafe { add_widened(&mut sums[done..], &values[done..]) };
    }

    /// See [`super::add_rounded_f16`], 16 values at a time; `len` a multiple of 16.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn add_rounded_16(sums: &mut [f32], values: &[f32]) {
        use std::arch::x86_64::{_mm512_add_ps, _mm512_cvtph_ps, _mm512_cvtps_ph, _mm512_loadu_ps, _mm512_storeu_ps};
        assert_eq!(sums.len(), values.len(), "add_rounded_slice lengths");
        const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT;
        for (sum, v) in sums.chunks_exact_mut(16).zip(values.chunks_exact(16)) {
            // SAFETY: both chunks hold exactly 16 values (64 bytes); the unaligned loads
            // and the store touch exactly those bytes.
            unsafe {
                let added = _mm512_add_ps(_mm512_loadu_ps(sum.as_ptr()), _mm512_loadu_ps(v.as_ptr()));
                let h = _mm512_cvtps_ph::<ROUND>(added);
                _mm512_storeu_ps(sum.as_mut_ptr(), _mm512_cvtph_ps(h));
            }
        }
    }

    /// Vectors of 16 sums [`sum_rounded_rows_16`] holds in registers.
    pub(super) const MAX_VECTORS: usize = 12;

    /// See [`super::sum_rounded_rows`]; `W` a multiple of 16, at most
    /// `16 * MAX_VECTORS`.
    ///
    /// Not `#[target_feature]`: such a function is only inlined at the compiler's
    /// discretion, and out of line (as it was for some of `W`, `BF16`) its sums went
    /// through memory at each call (W7's bf16 backward 0.88x). Always inlined into the
    /// kernels compiled for AVX-512 ([`crate::simd::Isa::Avx512`]), the intrinsics inline
    /// with it.
    ///
    /// `NATIVE` (`f16` on CPUs with AVX-512 FP16): each share is rounded to `f16`
    /// (exactly: it is an `f16` value, widened) off the sums' chains, and each sum adds
    /// it with `vaddph`, the `f16` addition, which an `f32` addition rounded to `f16`
    /// equals (see [`super::sum_rows_f16_natively`]). A sum's chain is then one 4-cycle
    /// addition per share instead of an addition and two conversions. W3 channels-first
    /// f16 backward (16 planes in step, one vector, so a single chain): 1.15x on 1
    /// thread, 1.13x on 2 (medians of 3 alternating rounds); channels-last with 200
    /// channels (not a multiple of 32, so not [`sum_rows_ph`]) 1.03x.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, and AVX-512 FP16 where `NATIVE`.
    #[inline(always)]
    pub(super) unsafe fn sum_rounded_rows_16<
        'r,
        const W: usize,
        const BF16: bool,
        const NATIVE: bool,
        const SPLIT: bool,
    >(
        count: usize,
        row: &impl Fn(usize) -> &'r [f32; W],
        sums: &mut [u16],
    ) {
        use std::arch::x86_64::{
            __m256i, _mm256_storeu_si256, _mm512_add_ps, _mm512_castps_si512, _mm512_castsi512_ps,
            _mm512_castsi512_si256, _mm512_cvtepi32_epi16, _mm512_cvtps_ph, _mm512_loadu_ps, _mm512_setzero_ps,
            _mm512_srli_epi32, _mm512_zextsi256_si512,
        };
        let vectors = W / 16;
        assert!(W.is_multiple_of(16) && vectors <= MAX_VECTORS && sums.len() == W, "sum_rounded_rows_16 width");
        // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F (and FP16
        // where `NATIVE`). Zero bits are +0 in `f32` and in `f16`; a `NATIVE` sum keeps
        // its `f16` lanes in the low half of the register, the high half +0.
        let mut acc = [unsafe { _mm512_setzero_ps() }; MAX_VECTORS];
        for o in 0..count {
            let values = row(o);
            for (v, acc) in acc.iter_mut().enumerate().take(vectors) {
                // SAFETY: lanes `16 * v..16 * v + 16` lie inside `values` (`v < W / 16`).
                let value = unsafe { _mm512_loadu_ps(values.as_ptr().add(16 * v)) };
                if NATIVE {
                    // SAFETY: AVX-512 F and FP16, as above.
                    *acc = unsafe {
                        let share = _mm512_zextsi256_si512(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(value));
                        _mm512_castsi512_ps(add_ph(_mm512_castps_si512(*acc), share))
                    };
                    continue;
                }
                // SAFETY: AVX-512 F, as above.
                let added = unsafe { _mm512_add_ps(*acc, value) };
                // `0 + value` is exact: the first addition needs no rounding.
                *acc = match (o, BF16) {
                    (0, _) => added,
                    // SAFETY: AVX-512 F, as above.
                    (_, true) if SPLIT => unsafe { round_bf16_16_by_split(added) },
                    // SAFETY: AVX-512 F, as above.
                    (_, true) => unsafe { round_bf16_16(added) },
                    (_, false) => unsafe { round_f16_16(added) },
                };
            }
        }
        for (v, &acc) in acc.iter().enumerate().take(vectors) {
            // Every sum is a value of the type already (rounded, or a lone first value), so
            // narrowing is exact: bf16 keeps the high half of each lane.
            // SAFETY: AVX-512 F; the 16 `u16` lanes stored lie inside `sums` (`W` long).
            unsafe {
                let narrow = match (NATIVE, BF16) {
                    (true, _) => _mm512_castsi512_si256(_mm512_castps_si512(acc)),
                    (false, true) => _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(_mm512_castps_si512(acc))),
                    (false, false) => _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(acc),
                };
                _mm256_storeu_si256(sums.as_mut_ptr().add(16 * v).cast::<__m256i>(), narrow);
            }
        }
    }

    /// See [`super::sum_widened_taps_f16`]; `W` a multiple of 16. Inlined like
    /// [`sum_rounded_rows_16`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(super) unsafe fn sum_widened_taps_16<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [f16; W],
    ) -> [f32; W] {
        let mut sums = [0.0f32; W];
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe { widened_groups(count, tap, &mut StoreSums(&mut sums)) };
        sums
    }

    /// The widened sums of `count` taps of `W` `f16` lanes (`W` a multiple of 16): four
    /// vectors at a time (four chains of additions), then the rest together, each group
    /// handed to `out` as it is done.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    unsafe fn widened_groups<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [f16; W],
        out: &mut impl WidenedGroups,
    ) {
        assert!(W.is_multiple_of(16), "widened_groups width");
        let whole = W - W % 64;
        // SAFETY (each call): the caller guarantees AVX-512 F; every group lies inside `W`.
        unsafe {
            for first in (0..whole).step_by(64) {
                out.put::<4>(first, widened_sums::<W, 4>(count, tap, first));
            }
            match (W - whole) / 16 {
                1 => out.put::<1>(whole, widened_sums::<W, 1>(count, tap, whole)),
                2 => out.put::<2>(whole, widened_sums::<W, 2>(count, tap, whole)),
                3 => out.put::<3>(whole, widened_sums::<W, 3>(count, tap, whole)),
                _ => {}
            }
        }
    }

    /// Where [`widened_groups`] puts its sums.
    trait WidenedGroups {
        /// The sums of lanes `first..first + 16 * V`, `V` vectors.
        ///
        /// # Safety
        /// The CPU must support AVX-512 F; the lanes lie inside the output's `W`.
        unsafe fn put<const V: usize>(&mut self, first: usize, sums: [__m512; V]);
    }

    /// The sums as they are ([`sum_widened_taps_16`]).
    struct StoreSums<'a, const W: usize>(&'a mut [f32; W]);

    impl<const W: usize> WidenedGroups for StoreSums<'_, W> {
        #[inline(always)]
        unsafe fn put<const V: usize>(&mut self, first: usize, sums: [__m512; V]) {
            use std::arch::x86_64::_mm512_storeu_ps;
            assert!(first + 16 * V <= W, "StoreSums lanes");
            for (v, &sum) in sums.iter().enumerate() {
                // SAFETY: lanes `first + 16 * v..` (16 of them) lie inside the sums
                // (checked above); the caller guarantees AVX-512 F.
                unsafe { _mm512_storeu_ps(self.0.as_mut_ptr().add(first + 16 * v), sum) };
            }
        }
    }

    /// The means, divided (or multiplied) and rounded to `f16` as they are stored
    /// ([`mean_widened_taps_16`]).
    struct StoreMeans<'a, const W: usize> {
        means: &'a mut [f16; W],
        by: f32,
        multiply: bool,
    }

    impl<const W: usize> WidenedGroups for StoreMeans<'_, W> {
        #[inline(always)]
        unsafe fn put<const V: usize>(&mut self, first: usize, sums: [__m512; V]) {
            use std::arch::x86_64::{
                __m256i, _mm256_storeu_si256, _mm512_cvtps_ph, _mm512_div_ps, _mm512_mul_ps, _mm512_set1_ps,
            };
            assert!(first + 16 * V <= W, "StoreMeans lanes");
            // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F.
            unsafe {
                let by = _mm512_set1_ps(self.by);
                for (v, &sum) in sums.iter().enumerate() {
                    let mean = if self.multiply { _mm512_mul_ps(sum, by) } else { _mm512_div_ps(sum, by) };
                    let half = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(mean);
                    // SAFETY: lanes `first + 16 * v..` (16 of them, 32 bytes) lie inside
                    // the means (checked above).
                    _mm256_storeu_si256(self.means.as_mut_ptr().add(first + 16 * v).cast::<__m256i>(), half);
                }
            }
        }
    }

    /// The sums of lanes `first..first + 16 * V` of `count` taps, widened, in `V`
    /// registers.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    unsafe fn widened_sums<'t, const W: usize, const V: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [f16; W],
        first: usize,
    ) -> [__m512; V] {
        use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_add_ps, _mm512_cvtph_ps, _mm512_setzero_ps};
        assert!(first + 16 * V <= W, "widened_sums lanes");
        // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F.
        let mut acc = [unsafe { _mm512_setzero_ps() }; V];
        for t in 0..count {
            let values = tap(t);
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lanes `first + 16 * v..` (16 of them, 32 bytes) lie inside
                // `values` (checked above).
                *acc = unsafe {
                    let halves = _mm256_loadu_si256(values.as_ptr().add(first + 16 * v).cast::<__m256i>());
                    _mm512_add_ps(*acc, _mm512_cvtph_ps(halves))
                };
            }
        }
        acc
    }

    /// See [`super::mean_widened_taps_f16`]; `W` a multiple of 16. Inlined like
    /// [`sum_rounded_rows_16`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(super) unsafe fn mean_widened_taps_16<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [f16; W],
        divisor: f32,
        multiply: bool,
        means: &mut [f16; W],
    ) {
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe { widened_groups(count, tap, &mut StoreMeans { means, by: divisor, multiply }) };
    }

    /// See [`super::sum_widened_taps_bf16`]; `W` a multiple of 32. Inlined like
    /// [`sum_rounded_rows_16`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(super) unsafe fn sum_widened_taps_bf16_32<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [bf16; W],
    ) -> [f32; W] {
        let mut sums = [0.0f32; W];
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe { widened_pair_groups(count, tap, &mut StorePairSums(&mut sums)) };
        sums
    }

    /// See [`super::mean_widened_taps_bf16`]; `W` a multiple of 32. Inlined like
    /// [`sum_rounded_rows_16`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    pub(super) unsafe fn mean_widened_taps_bf16_32<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [bf16; W],
        divisor: f32,
        multiply: bool,
        means: &mut [bf16; W],
    ) {
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe { widened_pair_groups(count, tap, &mut StorePairMeans { means, by: divisor, multiply }) };
    }

    /// The widened sums of `count` taps of `W` `bf16` lanes (`W` a multiple of 32): 64
    /// lanes at a time (four chains of additions), then 32, each group handed to `out`
    /// as its even and odd lanes' sums ([`widened_pairs_bf16`]) as it is done.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    unsafe fn widened_pair_groups<'t, const W: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [bf16; W],
        out: &mut impl WidenedPairs,
    ) {
        assert!(W.is_multiple_of(32), "widened_pair_groups width");
        let whole = W - W % 64;
        // SAFETY (each call): the caller guarantees AVX-512 F; every group lies inside `W`.
        unsafe {
            for first in (0..whole).step_by(64) {
                let (even, odd) = widened_pairs_bf16::<W, 2>(count, tap, first);
                out.put::<2>(first, even, odd);
            }
            if whole < W {
                let (even, odd) = widened_pairs_bf16::<W, 1>(count, tap, whole);
                out.put::<1>(whole, even, odd);
            }
        }
    }

    /// Where [`widened_pair_groups`] puts its sums.
    trait WidenedPairs {
        /// The sums of lanes `first..first + 32 * L`: the even lanes' in `even`, the odd
        /// lanes' in `odd`, 16 of each per vector.
        ///
        /// # Safety
        /// The CPU must support AVX-512 F; the lanes lie inside the output's `W`.
        unsafe fn put<const L: usize>(&mut self, first: usize, even: [__m512; L], odd: [__m512; L]);
    }

    /// The sums put back in lane order ([`sum_widened_taps_bf16_32`]).
    struct StorePairSums<'a, const W: usize>(&'a mut [f32; W]);

    impl<const W: usize> WidenedPairs for StorePairSums<'_, W> {
        #[inline(always)]
        unsafe fn put<const L: usize>(&mut self, first: usize, even: [__m512; L], odd: [__m512; L]) {
            use std::arch::x86_64::{_mm512_permutex2var_ps, _mm512_setr_epi32, _mm512_storeu_ps};
            assert!(first + 32 * L <= W, "StorePairSums lanes");
            // SAFETY: the caller guarantees AVX-512 F.
            let (low_lanes, high_lanes) = unsafe {
                (
                    _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
                    _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
                )
            };
            for l in 0..L {
                // SAFETY: AVX-512 F; lanes `first + 32 * l..` (32 of them) lie inside the
                // sums (checked above).
                unsafe {
                    let at = self.0.as_mut_ptr().add(first + 32 * l);
                    _mm512_storeu_ps(at, _mm512_permutex2var_ps(even[l], low_lanes, odd[l]));
                    _mm512_storeu_ps(at.add(16), _mm512_permutex2var_ps(even[l], high_lanes, odd[l]));
                }
            }
        }
    }

    /// The means ([`mean_widened_taps_bf16_32`]): each sum divided (or multiplied) by
    /// `by` and rounded to `bf16` in its lane's high half, then the even lanes shifted
    /// down beside the odd ones, which puts every word back as the lanes lay in the
    /// taps.
    struct StorePairMeans<'a, const W: usize> {
        means: &'a mut [bf16; W],
        by: f32,
        multiply: bool,
    }

    impl<const W: usize> WidenedPairs for StorePairMeans<'_, W> {
        #[inline(always)]
        unsafe fn put<const L: usize>(&mut self, first: usize, even: [__m512; L], odd: [__m512; L]) {
            use std::arch::x86_64::{
                __m512i, _mm512_castps_si512, _mm512_div_ps, _mm512_mul_ps, _mm512_or_si512, _mm512_set1_ps,
                _mm512_srli_epi32, _mm512_storeu_si512,
            };
            assert!(first + 32 * L <= W, "StorePairMeans lanes");
            // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F.
            unsafe {
                let by = _mm512_set1_ps(self.by);
                let mean = |sum| if self.multiply { _mm512_mul_ps(sum, by) } else { _mm512_div_ps(sum, by) };
                for l in 0..L {
                    // Each rounded lane has its low half clear.
                    let even = _mm512_srli_epi32::<16>(_mm512_castps_si512(round_bf16_16(mean(even[l]))));
                    let odd = _mm512_castps_si512(round_bf16_16(mean(odd[l])));
                    // SAFETY: lanes `first + 32 * l..` (32 of them, 64 bytes) lie inside
                    // the means (checked above).
                    let at = self.means.as_mut_ptr().add(first + 32 * l).cast::<__m512i>();
                    _mm512_storeu_si512(at, _mm512_or_si512(even, odd));
                }
            }
        }
    }

    /// The widened sums of lanes `first..first + 32 * L` of `count` taps: `L` loads of
    /// 16 words per tap, each adding its even lanes to one vector of sums and its odd
    /// lanes to another, returned as (even, odd).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[inline(always)]
    unsafe fn widened_pairs_bf16<'t, const W: usize, const L: usize>(
        count: usize,
        tap: &impl Fn(usize) -> &'t [bf16; W],
        first: usize,
    ) -> ([__m512; L], [__m512; L]) {
        use std::arch::x86_64::{
            __m512i, _mm512_add_ps, _mm512_and_si512, _mm512_castsi512_ps, _mm512_loadu_si512, _mm512_set1_epi32,
            _mm512_setzero_ps, _mm512_slli_epi32,
        };
        assert!(first + 32 * L <= W, "widened_pairs_bf16 lanes");
        // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F.
        let (mut even, mut odd) = unsafe { ([_mm512_setzero_ps(); L], [_mm512_setzero_ps(); L]) };
        let high = unsafe { _mm512_set1_epi32(0xffff_0000_u32 as i32) };
        for t in 0..count {
            let values = tap(t);
            for l in 0..L {
                // SAFETY: lanes `first + 32 * l..` (32 of them, 64 bytes) lie inside
                // `values` (checked above). Word `j` holds lane `2j` in its low half and
                // `2j + 1` in its high half; either moved to (or kept in) the high half
                // is that `bf16` as an `f32`.
                unsafe {
                    let words = _mm512_loadu_si512(values.as_ptr().add(first + 32 * l).cast::<__m512i>());
                    even[l] = _mm512_add_ps(even[l], _mm512_castsi512_ps(_mm512_slli_epi32::<16>(words)));
                    odd[l] = _mm512_add_ps(odd[l], _mm512_castsi512_ps(_mm512_and_si512(words, high)));
                }
            }
        }
        (even, odd)
    }

    /// See [`super::sum_rows_f16_natively`]; `W` a multiple of 32, summed up to 6
    /// vectors (6 chains of additions) at a time. Inlined like [`sum_rounded_rows_16`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and AVX-512 FP16.
    #[inline(always)]
    pub(super) unsafe fn sum_rows_ph<'r, const W: usize>(
        count: usize,
        row: &impl Fn(usize) -> &'r [f16; W],
        sums: &mut [f16; W],
    ) {
        assert!(W.is_multiple_of(32), "sum_rows_ph width");
        let whole = W - W % 192;
        // SAFETY (each call): the caller guarantees the features; each group lies inside
        // `W`.
        for first in (0..whole).step_by(192) {
            unsafe { sum_rows_ph_group::<W, 6>(count, row, first, sums) };
        }
        match (W - whole) / 32 {
            1 => unsafe { sum_rows_ph_group::<W, 1>(count, row, whole, sums) },
            2 => unsafe { sum_rows_ph_group::<W, 2>(count, row, whole, sums) },
            3 => unsafe { sum_rows_ph_group::<W, 3>(count, row, whole, sums) },
            4 => unsafe { sum_rows_ph_group::<W, 4>(count, row, whole, sums) },
            5 => unsafe { sum_rows_ph_group::<W, 5>(count, row, whole, sums) },
            _ => {}
        }
    }

    /// Lanes `first..first + 32 * V` of [`sum_rows_ph`].
    ///
    /// # Safety
    /// As [`sum_rows_ph`].
    #[inline(always)]
    unsafe fn sum_rows_ph_group<'r, const W: usize, const V: usize>(
        count: usize,
        row: &impl Fn(usize) -> &'r [f16; W],
        first: usize,
        sums: &mut [f16; W],
    ) {
        use std::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_setzero_si512, _mm512_storeu_si512};
        assert!(first + 32 * V <= W, "sum_rows_ph_group lanes");
        // SAFETY (all the intrinsics below): the caller guarantees AVX-512 F. Zero bits
        // are `f16` +0.
        let mut acc = [unsafe { _mm512_setzero_si512() }; V];
        for o in 0..count {
            let values = row(o);
            for (v, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lanes `first + 32 * v..` (32 of them, 64 bytes) lie inside
                // `values` (checked above); the caller guarantees AVX-512 FP16.
                *acc =
                    unsafe { add_ph(*acc, _mm512_loadu_si512(values.as_ptr().add(first + 32 * v).cast::<__m512i>())) };
            }
        }
        for (v, &acc) in acc.iter().enumerate() {
            // SAFETY: lanes `first + 32 * v..` (32 of them) lie inside `sums`.
            unsafe { _mm512_storeu_si512(sums.as_mut_ptr().add(first + 32 * v).cast::<__m512i>(), acc) };
        }
    }

    /// `a + b`, 32 `f16` lanes each, rounded to `f16` (`vaddph`; stable Rust has no `f16`
    /// vector intrinsics yet). A NaN in `a` is the one kept, as `f32` additions keep
    /// their first operand's.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and AVX-512 FP16.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn add_ph(a: std::arch::x86_64::__m512i, b: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
        let sum;
        // SAFETY: the caller guarantees AVX-512 FP16; the instruction reads and writes
        // these registers only.
        unsafe {
            std::arch::asm!(
                "vaddph {sum}, {a}, {b}",
                a = in(zmm_reg) a,
                b = in(zmm_reg) b,
                sum = lateout(zmm_reg) sum,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        sum
    }

    /// 16 values rounded to `f16` and widened back.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F (inlined like [`sum_rounded_rows_16`]).
    #[inline(always)]
    unsafe fn round_f16_16(values: __m512) -> __m512 {
        use std::arch::x86_64::{_mm512_cvtph_ps, _mm512_cvtps_ph};
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe { _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(values)) }
    }

    /// 16 sums of two widened `bf16` values rounded to `bf16` (nearest-even on the 16
    /// dropped bits), kept widened; see [`super::sum_rounded_rows_bf16`] for why NaNs need
    /// no test.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F (inlined like [`sum_rounded_rows_16`]).
    #[inline(always)]
    unsafe fn round_bf16_16(values: __m512) -> __m512 {
        use std::arch::x86_64::{
            _mm512_add_epi32, _mm512_and_si512, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_mask_add_epi32,
            _mm512_set1_epi32, _mm512_test_epi32_mask,
        };
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe {
            let x = _mm512_castps_si512(values);
            // `x + 0x7fff + (bit 16 of x)`: 0x8000 added where the kept half is odd, as a
            // masked addition (four operations where a shift and a mask for the bit made
            // five): W3 channels-last bf16 backward 1.06x on 1 thread, 1.07x on 2 (5
            // rounds).
            let odd = _mm512_test_epi32_mask(x, _mm512_set1_epi32(0x1_0000));
            let rounded = _mm512_mask_add_epi32(
                _mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)),
                odd,
                x,
                _mm512_set1_epi32(0x8000),
            );
            _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(0xffff_0000_u32 as i32)))
        }
    }

    /// 16 values rounded to `bf16` by Veltkamp's split, kept widened: exact for normal
    /// values below 2^111 in magnitude and zero (see [`super::in_bf16_split_range`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F (inlined like [`sum_rounded_rows_16`]).
    #[inline(always)]
    unsafe fn round_bf16_16_by_split(values: __m512) -> __m512 {
        use std::arch::x86_64::{_mm512_add_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_sub_ps};
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe {
            let c = _mm512_mul_ps(values, _mm512_set1_ps(65537.0));
            _mm512_add_ps(c, _mm512_sub_ps(values, c))
        }
    }

    /// See [`super::narrow_f16`]; the last `len % 8` values in software.
    #[target_feature(enable = "avx,f16c")]
    #[inline]
    pub(super) unsafe fn narrow(wide: &[f32], values: &mut [f16]) {
        assert_eq!(values.len(), wide.len(), "narrow_slice lengths");
        // Round to nearest-even, whatever MXCSR says (bit 2 clear).
        const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT;
        for (floats, halves) in wide.chunks_exact(LANES).zip(values.chunks_exact_mut(LANES)) {
            // SAFETY: both chunks hold exactly 8 values (32 and 16 bytes); the unaligned
            // load and store touch exactly those bytes.
            unsafe {
                let h = _mm256_cvtps_ph::<ROUND>(_mm256_loadu_ps(floats.as_ptr()));
                _mm_storeu_si128(halves.as_mut_ptr().cast::<__m128i>(), h);
            }
        }
        let done = wide.len() - wide.len() % LANES;
        for (v, &w) in values[done..].iter_mut().zip(&wide[done..]) {
            *v = f32_to_f16(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use half::bf16;

    /// Veltkamp's split rounds as `half` does on every significand, both signs, at the
    /// ends of the range [`super::in_bf16_split_range`] vouches for and at 1: its
    /// three operations stay among normal numbers there, so the rounding is the same at
    /// every exponent between.
    #[test]
    fn split_rounding_matches_bf16_on_every_significand() {
        for exponent in [-126i32, -125, 0, 110] {
            let biased = u32::try_from(exponent + 127).expect("normal exponent") << 23;
            for bits in (0..1u32 << 23).flat_map(|m| [biased | m, 0x8000_0000 | biased | m]) {
                let value = f32::from_bits(bits);
                let want = bf16::from_f32(value).to_f32();
                let got = super::round_bf16_by_split(value);
                assert_eq!(got.to_bits(), want.to_bits(), "{value:e} ({bits:#010x})");
            }
        }
        assert_eq!(super::round_bf16_by_split(0.0).to_bits(), 0);
    }

    #[test]
    fn split_rounding_is_vouched_for_inside_its_range_only() {
        let least = 2f32.powi(-118);
        let greatest = 2f32.powi(100);
        let vouched = super::in_bf16_split_range::<f32>;
        for v in [0.0, -0.0, least, -least, greatest, -greatest, 1.0, 3.0e-30] {
            assert!(vouched(v), "{v:e}");
        }
        let below = f32::from_bits(least.to_bits() - (1 << 16));
        let above = f32::from_bits(greatest.to_bits() + (1 << 16));
        for v in [below, -above, above, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0e-40, f32::MAX] {
            assert!(!vouched(v), "{v:e}");
        }
    }
}
