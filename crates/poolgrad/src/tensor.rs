//! Shapes, layouts, element types and the tensor types the operators take and return.

use crate::error::{PoolError, Result};
use std::fmt::Debug;
use std::str::FromStr;

/// Where the channel dim sits in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// `ncx`: `(N, C, d1, ..., dk)`, PyTorch's default (NCHW).
    #[default]
    ChannelsFirst,
    /// `nxc`: `(N, d1, ..., dk, C)`, channels last (NHWC).
    ChannelsLast,
}

impl Layout {
    /// The short name used by the CLI (`ncx` or `nxc`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::ChannelsFirst => "ncx",
            Layout::ChannelsLast => "nxc",
        }
    }
}

impl FromStr for Layout {
    type Err = PoolError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ncx" => Ok(Layout::ChannelsFirst),
            "nxc" => Ok(Layout::ChannelsLast),
            other => {
                Err(PoolError::InvalidParameter { name: "layout", reason: format!("'{other}' is not one of ncx, nxc") })
            }
        }
    }
}

/// The logical shape of a pooling tensor: batch, channels and spatial dims, whatever
/// the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    /// N.
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// d1, ..., dk.
    pub spatial: Vec<usize>,
}

impl Shape {
    /// A shape from its parts.
    pub fn new(batch: usize, channels: usize, spatial: &[usize]) -> Self {
        Shape { batch, channels, spatial: spatial.to_vec() }
    }

    /// Reads a shape from dims as stored in `layout` (`(N, C, d..)` or `(N, d.., C)`).
    pub fn from_dims(dims: &[usize], layout: Layout) -> Result<Self> {
        if dims.len() < 3 {
            return Err(PoolError::InvalidShape {
                what: "input",
                reason: format!(
                    "shape {dims:?} has {} dims; pooling needs (N, C, d1, ...) with at least one spatial dim",
                    dims.len()
                ),
            });
        }
        let k = dims.len() - 2;
        Ok(match layout {
            Layout::ChannelsFirst => Shape::new(dims[0], dims[1], &dims[2..]),
            Layout::ChannelsLast => Shape::new(dims[0], dims[k + 1], &dims[1..=k]),
        })
    }

    /// The dims as stored in `layout`.
    pub fn dims(&self, layout: Layout) -> Vec<usize> {
        let mut d = Vec::with_capacity(self.spatial.len() + 2);
        d.push(self.batch);
        match layout {
            Layout::ChannelsFirst => {
                d.push(self.channels);
                d.extend_from_slice(&self.spatial);
            }
            Layout::ChannelsLast => {
                d.extend_from_slice(&self.spatial);
                d.push(self.channels);
            }
        }
        d
    }

    /// Cells in one spatial plane (product of the spatial dims), overflow-checked.
    pub fn spatial_volume(&self) -> Result<usize> {
        checked_product(&self.spatial, "spatial volume")
    }

    /// Elements in the tensor, overflow-checked.
    pub fn numel(&self) -> Result<usize> {
        self.spatial_volume()?
            .checked_mul(self.batch)
            .and_then(|v| v.checked_mul(self.channels))
            .ok_or(PoolError::Overflow { what: "element count" })
    }
}

pub(crate) fn checked_product(values: &[usize], what: &'static str) -> Result<usize> {
    values.iter().try_fold(1usize, |acc, &v| acc.checked_mul(v)).ok_or(PoolError::Overflow { what })
}

/// An element type max pooling can compare: the floats and the integers.
///
/// Comparisons follow PyTorch (`v > m || v.is_nan()`), never `f32::max`, which drops NaN.
pub trait MaxElement: Copy + PartialOrd + Debug + Send + Sync + bytemuck::Zeroable + 'static {
    /// The type's name as `numpy` spells it.
    const NAME: &'static str;
    /// The identity of max: `-inf` for floats, the minimum for integers.
    fn lowest() -> Self;
    /// Whether the value is NaN (never, for integers).
    fn is_nan(self) -> bool;
    /// `self > other` (false when either is NaN), the comparison the max kernels use:
    /// the half types compare through an exact, branch-free widening so that the
    /// kernels' loops vectorise.
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self > other
    }
    /// `if take { a } else { b }`, written so that loops of it vectorise as blends (the
    /// half types select on their bits).
    #[inline(always)]
    fn select(take: bool, a: Self, b: Self) -> Self {
        if take {
            a
        } else {
            b
        }
    }
}

/// `f16` to `f32` exactly as `half` converts it (NaN payload kept, quiet bit set), but
/// branch-free so loops over it vectorise (`half` checks the CPU on every call).
#[inline(always)]
pub(crate) fn f16_to_f32(value: half::f16) -> f32 {
    let h = u32::from(value.to_bits());
    let sign = (h & 0x8000) << 16;
    let magnitude = (h & 0x7fff) << 13;
    // Rebias the exponent by 2^(127 − 15); exact for normal and subnormal halves alike.
    let finite = (f32::from_bits(magnitude) * f32::from_bits(0x7780_0000)).to_bits();
    let special = h & 0x7c00 == 0x7c00;
    let quiet = if h & 0x03ff != 0 { 0x0040_0000 } else { 0 };
    f32::from_bits(sign | if special { magnitude | 0x7f80_0000 | quiet } else { finite })
}

/// A floating-point element type: everything the differentiable operators compute in.
///
/// Implemented for `f32`, `f64`, and `half`'s `f16` and `bf16`. Sums run in the
/// accumulation type [`Element::Acc`] (`f32` for the half types, as PyTorch's `opmath`);
/// gradient scatters round to `Self` after each addition, as PyTorch's CPU kernels do.
pub trait Element: MaxElement {
    /// The type sums and powers are computed in (itself an element type that accumulates
    /// in itself: `f32` or `f64`).
    type Acc: Element<Acc = Self::Acc> + num_traits::Float + bytemuck::Pod + Debug + Send + Sync + 'static;
    /// Whether this CPU widens to the accumulation type cheaply enough for a kernel that
    /// reads each value once to widen it as it reads ([`Element::add_widened_slice`]),
    /// rather than widening its input in bulk first: `bf16` (a shift) everywhere, `f16`
    /// where the CPU has conversion instructions (F16C on x86-64).
    ///
    /// ```
    /// use poolgrad::tensor::Element;
    /// assert!(half::bf16::widens_cheaply());
    /// ```
    fn widens_cheaply() -> bool {
        false
    }
    /// Widens to the accumulation type.
    fn to_acc(self) -> Self::Acc;
    /// Rounds from the accumulation type.
    fn from_acc(value: Self::Acc) -> Self;
    /// Zero.
    fn zero() -> Self {
        Self::from_acc(num_traits::Zero::zero())
    }
    /// `self + other`, rounded to `Self`.
    fn add(self, other: Self) -> Self {
        Self::from_acc(self.to_acc() + other.to_acc())
    }
    /// `0 + self`, rounded to `Self`: the bits of `Self::zero().add(self)` (`-0` becomes
    /// `+0`, a NaN comes out quiet), the first addition into a cleared gradient cell.
    /// The 16-bit types compute it on their bits, which vectorises.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// assert_eq!(f16::NEG_ZERO.added_to_zero().to_bits(), 0);
    /// assert_eq!(f16::from_f32(1.5).added_to_zero(), f16::from_f32(1.5));
    /// ```
    #[inline(always)]
    fn added_to_zero(self) -> Self {
        Self::zero().add(self)
    }
    /// `self + value` into a cell of a gradient scatter: the bits of [`Element::add`].
    /// `f16` and `bf16` take a cell still at `+0` from the bits
    /// ([`Element::added_to_zero`]), skipping the conversions around an `f32` addition.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let cell = f16::ZERO.accumulate(f16::from_f32(1.5));
    /// assert_eq!(cell.accumulate(f16::from_f32(0.25)), f16::from_f32(1.75));
    /// ```
    #[inline(always)]
    fn accumulate(self, value: Self) -> Self {
        self.add(value)
    }
    /// Converts from `f64`, rounding.
    fn from_f64(value: f64) -> Self {
        Self::from_acc(<Self::Acc as num_traits::NumCast>::from(value).unwrap_or_else(num_traits::Float::nan))
    }
    /// Converts to `f64` (exact for every type here).
    fn to_f64(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self.to_acc()).unwrap_or(f64::NAN)
    }
    /// Widens every value of `values` into `wide`, in bulk: the same bits as
    /// [`Element::to_acc`] on each (`f16` uses the CPU's conversion instructions where it
    /// has them).
    ///
    /// # Panics
    /// If the slices differ in length.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let halves = [f16::ONE, f16::from_f32(-0.5), f16::INFINITY];
    /// let mut wide = [0.0f32; 3];
    /// f16::widen_slice(&halves, &mut wide);
    /// assert_eq!(wide, [1.0, -0.5, f32::INFINITY]);
    /// ```
    #[inline(always)]
    fn widen_slice(values: &[Self], wide: &mut [Self::Acc]) {
        widen_each(values, wide);
    }
    /// `sums[i] = sums[i] + values[i]` with each value widened as by [`Element::to_acc`],
    /// in bulk (`f16` widens with the CPU's conversion instructions where it has them).
    ///
    /// # Panics
    /// If the slices differ in length.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let mut sums = [1.0f32, 2.0];
    /// f16::add_widened_slice(&mut sums, &[f16::from_f32(0.5), f16::NEG_INFINITY]);
    /// assert_eq!(sums, [1.5, f32::NEG_INFINITY]);
    /// ```
    #[inline(always)]
    fn add_widened_slice(sums: &mut [Self::Acc], values: &[Self]) {
        add_widened_each(sums, values);
    }
    /// Rounds every value of `wide` into `values`, in bulk: the same bits as
    /// [`Element::from_acc`] on each (`f16` uses the CPU's conversion instructions where
    /// it has them).
    ///
    /// # Panics
    /// If the slices differ in length.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let mut halves = [f16::ZERO; 2];
    /// f16::narrow_slice(&[1.0 / 3.0, 1e6], &mut halves);
    /// assert_eq!(halves, [f16::from_f32(1.0 / 3.0), f16::INFINITY]);
    /// ```
    #[inline(always)]
    fn narrow_slice(wide: &[Self::Acc], values: &mut [Self]) {
        narrow_each(wide, values);
    }
    /// Rounds every value of `wide` to `Self` and widens it back, in place: what storing
    /// it as `Self` keeps, in bulk (`f16` uses the CPU's conversion instructions where it
    /// has them). Nothing changes for `f32` and `f64`.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let mut wide = [1.0f32 + 1.0 / 4096.0, 2.5];
    /// f16::round_slice(&mut wide);
    /// assert_eq!(wide, [1.0, 2.5]);
    /// ```
    #[inline(always)]
    fn round_slice(wide: &mut [Self::Acc]) {
        round_each::<Self>(wide);
    }
    /// `wide[i] = values[i] / divisor`, the division in the accumulation type, rounded to
    /// `Self` and kept widened, for every `i`: [`Element::widen_slice`], the division,
    /// then [`Element::round_slice`]. `bf16` does all three in one pass, and multiplies
    /// by the reciprocal instead of dividing where that rounds to the same `bf16` value,
    /// which it checks for every 16 values.
    ///
    /// # Panics
    /// If the slices differ in length.
    ///
    /// ```
    /// use half::bf16;
    /// use poolgrad::tensor::Element;
    /// let mut wide = [0.0f32; 2];
    /// bf16::divide_widened(&[bf16::ONE, bf16::from_f32(-7.5)], 3.0, &mut wide);
    /// assert_eq!(wide, [0.333984375, -2.5]);
    /// ```
    #[inline(always)]
    fn divide_widened(values: &[Self], divisor: Self::Acc, wide: &mut [Self::Acc]) {
        Self::widen_slice(values, wide);
        wide.iter_mut().for_each(|w| *w = *w / divisor);
        Self::round_slice(wide);
    }
    /// `sums[i] = sums[i] + values[i]`, rounded to `Self` and kept widened, for every `i`:
    /// an addition of `Self` values on their widened form, in bulk (`f16` rounds with the
    /// CPU's conversion instructions where it has them). Plain addition for `f32` and
    /// `f64`.
    ///
    /// # Panics
    /// If the slices differ in length.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let mut sums = [1.0f32, 2.0];
    /// f16::add_rounded_slice(&mut sums, &[1.0 / 4096.0, 0.5]);
    /// assert_eq!(sums, [1.0, 2.5]);
    /// ```
    #[inline(always)]
    fn add_rounded_slice(sums: &mut [Self::Acc], values: &[Self::Acc]) {
        add_rounded_each::<Self>(sums, values);
    }
    /// `0 + row(0) + row(1) + ... + row(count - 1)`, lane by lane in that order, each
    /// addition rounded to `Self` as by [`Element::add_rounded_slice`], into `sums`: a run
    /// of additions in bulk, with the running sums kept in vector registers where the CPU
    /// has them (`f16` and `bf16` with AVX-512, up to 192 lanes).
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let rows = [[1.0f32, 2.0], [1.0 / 4096.0, 0.5], [1.0, 0.25]];
    /// let mut sums = [f16::ZERO; 2];
    /// f16::sum_rounded_rows(rows.len(), |o| &rows[o], &mut sums);
    /// assert_eq!(sums, [f16::from_f32(2.0), f16::from_f32(2.75)]);
    /// ```
    #[inline(always)]
    fn sum_rounded_rows<'r, const W: usize>(
        count: usize,
        row: impl Fn(usize) -> &'r [Self::Acc; W],
        sums: &mut [Self; W],
    ) {
        sum_rounded_rows_each(count, row, sums);
    }
    /// `0 + tap(0) + tap(1) + ... + tap(count - 1)`, lane by lane in that order, each
    /// value widened as by [`Element::to_acc`] and each addition in the accumulation
    /// type: the sums of one channels-last window, `W` channels of it, with the running
    /// sums in vector registers (`f16` widens with AVX-512 there, where the CPU has it).
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let taps = [[f16::from_f32(1.0), f16::from_f32(2.0)], [f16::from_f32(0.5), f16::from_f32(-4.0)]];
    /// assert_eq!(f16::sum_widened_taps(taps.len(), |t| &taps[t]), [1.5f32, -2.0]);
    /// ```
    #[inline(always)]
    fn sum_widened_taps<'t, const W: usize>(count: usize, tap: impl Fn(usize) -> &'t [Self; W]) -> [Self::Acc; W] {
        sum_widened_taps_each(count, tap)
    }
    /// The means of [`Element::sum_widened_taps`]'s sums, each divided by `divisor` (or
    /// multiplied by it, where `multiply`) and rounded to `Self`, into `means`, the sums
    /// kept in registers throughout (`f16` and `bf16` with AVX-512); `false`, with `means` untouched,
    /// where this type or CPU has no such path. The bits are those of the sums, divided
    /// and rounded one by one.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let taps = [[f16::from_f32(1.0); 16], [f16::from_f32(2.0); 16]];
    /// let mut means = [f16::ZERO; 16];
    /// if f16::mean_widened_taps(taps.len(), |t| &taps[t], 2.0, false, &mut means) {
    ///     assert_eq!(means, [f16::from_f32(1.5); 16]);
    /// }
    /// assert!(!f32::mean_widened_taps(1, |_| &[1.0f32; 16], 2.0, false, &mut [0.0; 16]));
    /// ```
    #[inline(always)]
    fn mean_widened_taps<'t, const W: usize>(
        count: usize,
        tap: impl Fn(usize) -> &'t [Self; W],
        divisor: Self::Acc,
        multiply: bool,
        means: &mut [Self; W],
    ) -> bool {
        let _ = (count, tap, divisor, multiply, means);
        false
    }
    /// Whether [`Element::sum_rows_natively`] adds in this type's own arithmetic on this
    /// CPU, under the instruction set the calling thread runs ([`crate::simd::current`]):
    /// `f16` with AVX-512 FP16.
    ///
    /// ```
    /// use poolgrad::tensor::Element;
    /// assert!(!f32::adds_natively());
    /// ```
    fn adds_natively() -> bool {
        false
    }
    /// `0 + row(0) + row(1) + ... + row(count - 1)`, lane by lane in that order, each
    /// addition rounded to `Self` (the bits of [`Element::add`]), in this type's own
    /// arithmetic, into `sums`; `false` (nothing written) where the CPU lacks it (see
    /// [`Element::adds_natively`]) or `W` is not a multiple of 32. For `f16`, an addition
    /// in `f32` rounded to `f16` is the `f16` addition: `f32` holds every sum of two
    /// `f16` values to more than twice `f16`'s precision plus two bits, so rounding twice
    /// is rounding once.
    ///
    /// ```
    /// use half::f16;
    /// use poolgrad::tensor::Element;
    /// let rows = [[f16::from_f32(1.0); 32], [f16::from_f32(1.0 / 4096.0); 32]];
    /// let mut sums = [f16::ZERO; 32];
    /// if f16::sum_rows_natively(rows.len(), |o| &rows[o], &mut sums) {
    ///     assert_eq!(sums, [f16::from_f32(1.0); 32]);
    /// }
    /// ```
    #[inline(always)]
    fn sum_rows_natively<'r, const W: usize>(
        count: usize,
        row: impl Fn(usize) -> &'r [Self; W],
        sums: &mut [Self; W],
    ) -> bool {
        let _ = (count, row, sums);
        false
    }
    /// A count (a window size) in the accumulation type.
    fn count(count: usize) -> Self::Acc {
        <Self::Acc as num_traits::NumCast>::from(count).unwrap_or_else(num_traits::Float::infinity)
    }
}

/// [`Element::widen_slice`] one value at a time: the default, and `f16`'s without F16C.
#[inline(always)]
fn widen_each<T: Element>(values: &[T], wide: &mut [T::Acc]) {
    assert_eq!(values.len(), wide.len(), "widen_slice lengths");
    for (w, &v) in wide.iter_mut().zip(values) {
        *w = v.to_acc();
    }
}

/// [`Element::add_widened_slice`] one value at a time (see [`widen_each`]).
#[inline(always)]
fn add_widened_each<T: Element>(sums: &mut [T::Acc], values: &[T]) {
    assert_eq!(sums.len(), values.len(), "add_widened_slice lengths");
    for (sum, &v) in sums.iter_mut().zip(values) {
        *sum = *sum + v.to_acc();
    }
}

/// [`Element::narrow_slice`] one value at a time (see [`widen_each`]).
#[inline(always)]
fn narrow_each<T: Element>(wide: &[T::Acc], values: &mut [T]) {
    assert_eq!(values.len(), wide.len(), "narrow_slice lengths");
    for (v, &w) in values.iter_mut().zip(wide) {
        *v = T::from_acc(w);
    }
}

/// [`Element::round_slice`] one value at a time (see [`widen_each`]).
#[inline(always)]
fn round_each<T: Element>(wide: &mut [T::Acc]) {
    for w in wide {
        *w = T::from_acc(*w).to_acc();
    }
}

/// [`Element::add_rounded_slice`] one value at a time (see [`widen_each`]).
#[inline(always)]
fn add_rounded_each<T: Element>(sums: &mut [T::Acc], values: &[T::Acc]) {
    assert_eq!(sums.len(), values.len(), "add_rounded_slice lengths");
    for (sum, &v) in sums.iter_mut().zip(values) {
        *sum = T::from_acc(*sum + v).to_acc();
    }
}

/// [`Element::sum_widened_taps`] one value at a time: the default, and `f16`'s without
/// AVX-512.
#[inline(always)]
fn sum_widened_taps_each<'t, T: Element, const W: usize>(
    count: usize,
    tap: impl Fn(usize) -> &'t [T; W],
) -> [T::Acc; W] {
    let mut sums = [num_traits::zero::<T::Acc>(); W];
    for t in 0..count {
        for (sum, &v) in sums.iter_mut().zip(tap(t)) {
            *sum = *sum + v.to_acc();
        }
    }
    sums
}

/// [`Element::sum_rounded_rows`] one row at a time: the default, and the 16-bit types'
/// where their vector form does not apply.
#[inline(always)]
fn sum_rounded_rows_each<'r, T: Element, const W: usize>(
    count: usize,
    row: impl Fn(usize) -> &'r [T::Acc; W],
    sums: &mut [T; W],
) {
    let mut wide = [num_traits::zero(); W];
    for o in 0..count {
        T::add_rounded_slice(&mut wide, row(o));
    }
    T::narrow_slice(&wide, sums);
}

/// The max kernels' comparison per float type (see [`MaxElement::gt`]).
trait Ordered: Copy {
    fn gt(self, other: Self) -> bool;
    #[inline(always)]
    fn select(take: bool, a: Self, b: Self) -> Self {
        if take {
            a
        } else {
            b
        }
    }
}

impl Ordered for f32 {
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self > other
    }
}

impl Ordered for f64 {
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self > other
    }
}

/// IEEE `a > b` on 16-bit floats with sign bit 0x8000 and magnitudes above `nan_above`
/// being NaN, as integer arithmetic: a signed magnitude is monotone in the value and
/// equal for -0 and +0; any NaN compares false.
#[inline(always)]
fn half_gt(a: u16, b: u16, nan_above: i32) -> bool {
    let key = |bits: u16| {
        let magnitude = i32::from(bits & 0x7fff);
        (if bits & 0x8000 != 0 { -magnitude } else { magnitude }, magnitude > nan_above)
    };
    let ((ka, a_nan), (kb, b_nan)) = (key(a), key(b));
    (ka > kb) & !a_nan & !b_nan
}

/// The 16-bit floats' [`Ordered`]: `$nan_above` is the largest non-NaN magnitude.
macro_rules! half_ordered {
    ($t:ty, $nan_above:expr) => {
        impl Ordered for $t {
            #[inline(always)]
            fn select(take: bool, a: Self, b: Self) -> Self {
                let mask = u16::from(take).wrapping_neg();
                Self::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
            }
            #[inline(always)]
            fn gt(self, other: Self) -> bool {
                half_gt(self.to_bits(), other.to_bits(), $nan_above)
            }
        }
    };
}

half_ordered!(half::f16, 0x7c00);
half_ordered!(half::bf16, 0x7f80);

/// `f32` to `f16` rounded to nearest-even exactly as `half` converts it (NaN: quiet,
/// top payload bits kept), branch-free so loops over it vectorise.
#[inline(always)]
pub(crate) fn f32_to_f16(value: f32) -> half::f16 {
    const F16_OVERFLOW: u32 = (127 + 16) << 23;
    const F32_INFINITY: u32 = 255 << 23;
    const SUBNORMAL_MAGIC: u32 = ((127 - 15) + (23 - 10) + 1) << 23;
    let bits = value.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let x = bits & 0x7fff_ffff;
    // Too large: infinity; NaN: quiet NaN with the top payload bits.
    let special = if x > F32_INFINITY { 0x7e00 | ((x >> 13) & 0x03ff) } else { 0x7c00 };
    // Below the smallest normal half: align the 10 mantissa bits at the bottom of a
    // float by adding a magic number (the FPU rounds to nearest-even).
    let subnormal = (f32::from_bits(x) + f32::from_bits(SUBNORMAL_MAGIC)).to_bits().wrapping_sub(SUBNORMAL_MAGIC);
    // Normal: rebias the exponent and round the 13 dropped bits to nearest-even.
    let odd = (x >> 13) & 1;
    let normal = x.wrapping_add(((15u32.wrapping_sub(127)) << 23).wrapping_add(0xfff)).wrapping_add(odd) >> 13;
    let magnitude = if x >= F16_OVERFLOW {
        special
    } else if x < (113 << 23) {
        subnormal
    } else {
        normal
    };
    half::f16::from_bits((magnitude | sign) as u16)
}

/// `f32` to `bf16` rounded to nearest-even exactly as `half` converts it (NaN: quiet,
/// top payload bits kept), branch-free so loops over it vectorise.
#[inline(always)]
pub(crate) fn f32_to_bf16(value: f32) -> half::bf16 {
    let x = value.to_bits();
    let nan = x & 0x7fff_ffff > 0x7f80_0000;
    // Round up when the dropped half is above a tie, or a tie with an odd kept part.
    let round_up = (x & 0x8000 != 0) & (x & 0x1_7fff != 0);
    let rounded = (x >> 16).wrapping_add(u32::from(round_up)) as u16;
    half::bf16::from_bits(if nan { ((x >> 16) | 0x0040) as u16 } else { rounded })
}

/// [`Element::added_to_zero`] and [`Element::accumulate`] of a 16-bit float type whose
/// infinity has the bits `$infinity` and whose quiet NaNs have `$quiet` set, on its bits.
macro_rules! zero_cells_from_bits {
    ($infinity:expr, $quiet:expr) => {
        #[inline(always)]
        fn added_to_zero(self) -> Self {
            Self::from_bits(added_to_zero_bits(self.to_bits(), $infinity, $quiet))
        }
        #[inline(always)]
        fn accumulate(self, value: Self) -> Self {
            match self.to_bits() {
                0 => value.added_to_zero(),
                _ => self.add(value),
            }
        }
    };
}

/// [`Element::added_to_zero`] on the bits of a 16-bit float whose infinity has the bits
/// `infinity` and whose quiet NaNs have `quiet` set: a NaN gets `quiet`, `-0` becomes
/// `+0`, anything else stays as it is (adding `+0` to it is exact).
#[inline(always)]
fn added_to_zero_bits(bits: u16, infinity: u16, quiet: u16) -> u16 {
    if bits & 0x7fff > infinity {
        bits | quiet
    } else if bits == 0x8000 {
        0
    } else {
        bits
    }
}

/// `f32_to_bf16(value).to_f32()` without leaving the 32-bit lanes: the same rounding
/// (nearest-even on the 16 dropped bits, a carry into the exponent making infinity) and
/// the same quieted NaN, as a few integer operations that vectorise.
#[inline(always)]
fn round_to_bf16(value: f32) -> f32 {
    let x = value.to_bits();
    let nan = value.is_nan();
    let rounded = x.wrapping_add(0x7fff + ((x >> 16) & 1));
    f32::from_bits(if nan { x | 0x0040_0000 } else { rounded } & 0xffff_0000)
}

/// How close (in `f32` bit patterns) to a `bf16` rounding midpoint a quotient taken by
/// the reciprocal may come before [`divide_widened_bf16`] divides instead.
const MIDPOINT_GUARD: u32 = 16;

/// [`Element::divide_widened`] for `bf16`: `round_to_bf16(widened / divisor)` for every
/// value, 16 at a time, in one pass. A division costs several multiplications (AVX-512:
/// one per 10 cycles or so), and dividing by a window's count took a tenth of the
/// average backward's time in `bf16` (W3, 3x3 windows). So each value is multiplied by
/// `r = 1 / divisor` (rounded) instead: `w · r` is within 2^-23 of `w / divisor`
/// relatively (two roundings of 2^-24), so at most a few bit patterns away from the
/// correctly rounded quotient (subnormals: at most two). Rounding to `bf16` changes its
/// result only at a midpoint between two `bf16` values (the 16 dropped bits `0x8000`), so
/// where no product of the 16 lies within [`MIDPOINT_GUARD`] patterns of one, both round
/// to the same `bf16` value; otherwise those 16 are divided. Zeros, infinities and NaNs
/// (quieted by either operation) come out the same both ways. Only for divisors from 1
/// to 2^64, whose reciprocal is a normal number; others are divided.
#[inline(always)]
fn divide_widened_bf16(values: &[half::bf16], divisor: f32, wide: &mut [f32]) {
    const CHUNK: usize = 16;
    assert_eq!(values.len(), wide.len(), "divide_widened lengths");
    // The shift alone: the division or multiplication quiets a NaN as `to_f32` would.
    let widen = |v: half::bf16| f32::from_bits(u32::from(v.to_bits()) << 16);
    if !(1.0..=2f32.powi(64)).contains(&divisor) {
        return divide_each_bf16(values, divisor, wide);
    }
    let reciprocal = 1.0 / divisor;
    let mut chunks = values.chunks_exact(CHUNK).zip(wide.chunks_exact_mut(CHUNK));
    for (values, wide) in chunks.by_ref() {
        let mut quotients = [0.0f32; CHUNK];
        let mut near = 0;
        for (q, &v) in quotients.iter_mut().zip(values) {
            *q = widen(v) * reciprocal;
            // The low 16 bits within the guard of 0x8000: `(low + guard - 0x8000) mod
            // 2^16` below twice the guard.
            let low_past_guard = q.to_bits().wrapping_add(0x8000 + MIDPOINT_GUARD) & 0xffff;
            near |= u32::from(low_past_guard < 2 * MIDPOINT_GUARD);
        }
        if near != 0 {
            divide_each_bf16(values, divisor, wide);
            continue;
        }
        for (w, &q) in wide.iter_mut().zip(&quotients) {
            *w = round_to_bf16(q);
        }
    }
    let done = values.len() - values.len() % CHUNK;
    divide_each_bf16(&values[done..], divisor, &mut wide[done..]);
}

/// The division of [`divide_widened_bf16`], for a tail, other divisors, and the rare
/// chunks that need it.
#[cold]
#[inline(never)]
fn divide_each_bf16(values: &[half::bf16], divisor: f32, wide: &mut [f32]) {
    for (w, v) in wide.iter_mut().zip(values) {
        *w = round_to_bf16(v.to_f32() / divisor);
    }
}

macro_rules! float_element {
    ($t:ty, $name:literal, $acc:ty, $to:expr, $from:expr $(, { $($bulk:item)* })?) => {
        impl MaxElement for $t {
            const NAME: &'static str = $name;
            fn lowest() -> Self {
                <$t as num_traits::Float>::neg_infinity()
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t as num_traits::Float>::is_nan(self)
            }
            #[inline(always)]
            fn gt(self, other: Self) -> bool {
                <$t as Ordered>::gt(self, other)
            }
            #[inline(always)]
            fn select(take: bool, a: Self, b: Self) -> Self {
                <$t as Ordered>::select(take, a, b)
            }
        }
        impl Element for $t {
            type Acc = $acc;
            #[inline(always)]
            fn to_acc(self) -> $acc {
                $to(self)
            }
            #[inline(always)]
            fn from_acc(value: $acc) -> Self {
                $from(value)
            }
            $($($bulk)*)?
        }
    };
}

float_element!(f32, "float32", f32, |v| v, |v| v);
float_element!(f64, "float64", f64, |v| v, |v| v);
float_element!(half::f16, "float16", f32, f16_to_f32, f32_to_f16, {
    zero_cells_from_bits!(0x7c00, 0x0200);
    #[inline(always)]
    fn widen_slice(values: &[Self], wide: &mut [f32]) {
        if !crate::convert::widen_f16(values, wide) {
            widen_each(values, wide);
        }
    }
    fn widens_cheaply() -> bool {
        crate::convert::widens_in_hardware()
    }
    #[inline(always)]
    fn add_widened_slice(sums: &mut [f32], values: &[Self]) {
        if !crate::convert::add_widened_f16(sums, values) {
            add_widened_each(sums, values);
        }
    }
    #[inline(always)]
    fn round_slice(wide: &mut [f32]) {
        if !crate::convert::round_f16(wide) {
            round_each::<Self>(wide);
        }
    }
    #[inline(always)]
    fn add_rounded_slice(sums: &mut [f32], values: &[f32]) {
        if !crate::convert::add_rounded_f16(sums, values) {
            add_rounded_each::<Self>(sums, values);
        }
    }
    #[inline(always)]
    fn sum_widened_taps<'t, const W: usize>(count: usize, tap: impl Fn(usize) -> &'t [Self; W]) -> [f32; W] {
        crate::convert::sum_widened_taps_f16(count, &tap).unwrap_or_else(|| sum_widened_taps_each(count, tap))
    }
    #[inline(always)]
    fn mean_widened_taps<'t, const W: usize>(
        count: usize,
        tap: impl Fn(usize) -> &'t [Self; W],
        divisor: f32,
        multiply: bool,
        means: &mut [Self; W],
    ) -> bool {
        crate::convert::mean_widened_taps_f16(count, &tap, divisor, multiply, means)
    }
    #[inline(always)]
    fn adds_natively() -> bool {
        crate::convert::adds_f16_natively()
    }
    #[inline(always)]
    fn sum_rows_natively<'r, const W: usize>(
        count: usize,
        row: impl Fn(usize) -> &'r [Self; W],
        sums: &mut [Self; W],
    ) -> bool {
        crate::convert::sum_rows_f16_natively(count, &row, sums)
    }
    #[inline(always)]
    fn sum_rounded_rows<'r, const W: usize>(count: usize, row: impl Fn(usize) -> &'r [f32; W], sums: &mut [Self; W]) {
        if !crate::convert::sum_rounded_rows_f16(count, &row, bytemuck::cast_slice_mut(sums)) {
            sum_rounded_rows_each(count, row, sums);
        }
    }
    #[inline(always)]
    fn narrow_slice(wide: &[f32], values: &mut [Self]) {
        if !crate::convert::narrow_f16(wide, values) {
            narrow_each(wide, values);
        }
    }
});
float_element!(half::bf16, "bfloat16", f32, half::bf16::to_f32, f32_to_bf16, {
    zero_cells_from_bits!(0x7f80, 0x0040);
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        // Widened by the shift alone, as in `add_widened_slice` (the addition quiets a
        // NaN as `to_f32` would), and rounded on the bits with a branch for NaN, which
        // the CPU predicts: scatters whose additions wait on each other had waited on
        // `to_f32`'s NaN test in vector registers and a branch-free rounding. Max
        // backward of 16x256x40x40, 3x3 stride 1 (AMD Zen 4, 1 thread, 3 rounds): from
        // indices 1.75x, from compact taps 2.05x; 32x64x112x112 3x3 stride 2 1.50x and
        // 1.36x. The same bits (a test against `half` on every pattern).
        let wide = |v: Self| f32::from_bits(u32::from(v.to_bits()) << 16);
        let x = (wide(self) + wide(other)).to_bits();
        if x & 0x7fff_ffff > 0x7f80_0000 {
            return f32_to_bf16(f32::from_bits(x));
        }
        Self::from_bits((x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16)
    }
    fn widens_cheaply() -> bool {
        true
    }
    #[inline(always)]
    fn add_widened_slice(sums: &mut [f32], values: &[Self]) {
        assert_eq!(sums.len(), values.len(), "add_widened_slice lengths");
        // The shift alone, without `to_f32`'s quieting of a NaN: the addition quiets it
        // the same way (W7 channels-last forward 1.10-1.29x on 1 thread).
        for (sum, &v) in sums.iter_mut().zip(values) {
            *sum += f32::from_bits(u32::from(v.to_bits()) << 16);
        }
    }
    #[inline(always)]
    fn round_slice(wide: &mut [f32]) {
        for w in wide {
            *w = round_to_bf16(*w);
        }
    }
    #[inline(always)]
    fn add_rounded_slice(sums: &mut [f32], values: &[f32]) {
        assert_eq!(sums.len(), values.len(), "add_rounded_slice lengths");
        for (sum, &v) in sums.iter_mut().zip(values) {
            *sum = round_to_bf16(*sum + v);
        }
    }
    #[inline(always)]
    fn divide_widened(values: &[Self], divisor: f32, wide: &mut [f32]) {
        divide_widened_bf16(values, divisor, wide);
    }
    #[inline(always)]
    fn sum_widened_taps<'t, const W: usize>(count: usize, tap: impl Fn(usize) -> &'t [Self; W]) -> [f32; W] {
        if let Some(sums) = crate::convert::sum_widened_taps_bf16(count, &tap) {
            return sums;
        }
        // The shift alone, as in `add_widened_slice`.
        let mut sums = [0.0f32; W];
        for t in 0..count {
            for (sum, &v) in sums.iter_mut().zip(tap(t)) {
                *sum += f32::from_bits(u32::from(v.to_bits()) << 16);
            }
        }
        sums
    }
    #[inline(always)]
    fn mean_widened_taps<'t, const W: usize>(
        count: usize,
        tap: impl Fn(usize) -> &'t [Self; W],
        divisor: f32,
        multiply: bool,
        means: &mut [Self; W],
    ) -> bool {
        crate::convert::mean_widened_taps_bf16(count, &tap, divisor, multiply, means)
    }
    #[inline(always)]
    fn sum_rounded_rows<'r, const W: usize>(count: usize, row: impl Fn(usize) -> &'r [f32; W], sums: &mut [Self; W]) {
        if !crate::convert::sum_rounded_rows_bf16(count, &row, bytemuck::cast_slice_mut(sums)) {
            sum_rounded_rows_each(count, row, sums);
        }
    }
});

macro_rules! int_element {
    ($t:ty, $name:literal) => {
        impl MaxElement for $t {
            const NAME: &'static str = $name;
            fn lowest() -> Self {
                <$t>::MIN
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}

int_element!(u8, "uint8");
int_element!(i8, "int8");
int_element!(i32, "int32");
int_element!(i64, "int64");

/// A borrowed tensor: a contiguous buffer, its logical shape and its layout.
///
/// ```
/// use poolgrad::{Layout, Shape, TensorView};
/// let data = [1.0f32, 2.0, 3.0, 4.0];
/// let x = TensorView::new(&data, Shape::new(1, 1, &[2, 2]), Layout::ChannelsFirst).unwrap();
/// assert_eq!(x.shape().spatial, vec![2, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct TensorView<'a, T> {
    data: &'a [T],
    shape: Shape,
    layout: Layout,
}

impl<'a, T> TensorView<'a, T> {
    /// Wraps `data`, checking that its length matches `shape`.
    pub fn new(data: &'a [T], shape: Shape, layout: Layout) -> Result<Self> {
        let expected = shape.numel()?;
        if data.len() != expected {
            return Err(PoolError::DataLength { what: "tensor", shape: shape.dims(layout), expected, got: data.len() });
        }
        Ok(TensorView { data, shape, layout })
    }

    /// The elements in memory order.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// The logical shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The memory layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// An owned tensor, as the operators return it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    data: Vec<T>,
    shape: Shape,
    layout: Layout,
}

impl<T> Tensor<T> {
    /// Wraps `data`, checking that its length matches `shape`.
    pub fn new(data: Vec<T>, shape: Shape, layout: Layout) -> Result<Self> {
        let expected = shape.numel()?;
        if data.len() != expected {
            return Err(PoolError::DataLength { what: "tensor", shape: shape.dims(layout), expected, got: data.len() });
        }
        Ok(Tensor { data, shape, layout })
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_, T> {
        TensorView { data: &self.data, shape: self.shape.clone(), layout: self.layout }
    }

    /// The elements in memory order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The logical shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dims as stored (`(N, C, d..)` or `(N, d.., C)`).
    pub fn dims(&self) -> Vec<usize> {
        self.shape.dims(self.layout)
    }

    /// The memory layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// How a tensor's elements are grouped for the kernels: `blocks` contiguous blocks, each
/// holding `spatial` cells of `lanes` interleaved channels.
///
/// Channels-first is `N·C` blocks of 1 lane; channels-last is `N` blocks of `C` lanes.
/// Element (block `b`, spatial cell `s`, lane `l`) sits at `(b·spatial + s)·lanes + l`,
/// so one kernel serves both layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocking {
    pub blocks: usize,
    pub lanes: usize,
}

impl Blocking {
    pub fn of(shape: &Shape, layout: Layout) -> Self {
        match layout {
            Layout::ChannelsFirst => Blocking { blocks: shape.batch * shape.channels, lanes: 1 },
            Layout::ChannelsLast => Blocking { blocks: shape.batch, lanes: shape.channels },
        }
    }
}

#[cfg(test)]
mod conversion_tests {
    #[test]
    fn half_comparisons_match_ieee_on_every_pair_of_a_sample() {
        use super::MaxElement;
        // Every bit pattern against a spread of others (zeros, subnormals, extremes, NaN).
        let probes: Vec<u16> = (0..=u16::MAX)
            .step_by(97)
            .chain([0, 0x8000, 1, 0x8001, 0x7c00, 0xfc00, 0x7c01, 0xfe00, 0x7bff, 0x7f80, 0xff80, 0x7f81])
            .collect();
        for a in 0..=u16::MAX {
            for &b in &probes {
                let (x, y) = (half::f16::from_bits(a), half::f16::from_bits(b));
                assert_eq!(x.gt(y), x.to_f32() > y.to_f32(), "f16 {a:#06x} > {b:#06x}");
                let (x, y) = (half::bf16::from_bits(a), half::bf16::from_bits(b));
                assert_eq!(x.gt(y), x.to_f32() > y.to_f32(), "bf16 {a:#06x} > {b:#06x}");
            }
        }
    }

    /// Checks a conversion of ours against `half`'s on the f32 bit patterns `bits`.
    fn check_conversion(bits: impl Iterator<Item = u32>, ours: fn(f32) -> u16, halfs: fn(f32) -> u16) {
        for b in bits {
            let v = f32::from_bits(b);
            assert_eq!(ours(v), halfs(v), "{b:#010x} ({v:e})");
        }
    }

    fn check_f32_to_f16(bits: impl Iterator<Item = u32>) {
        check_conversion(bits, |v| super::f32_to_f16(v).to_bits(), |v| half::f16::from_f32(v).to_bits());
    }

    fn check_f32_to_bf16(bits: impl Iterator<Item = u32>) {
        check_conversion(bits, |v| super::f32_to_bf16(v).to_bits(), |v| half::bf16::from_f32(v).to_bits());
    }

    #[test]
    fn f32_to_f16_matches_half_on_a_sample_and_every_boundary() {
        // Every 257th pattern, plus the neighbourhood of every half value (the rounding
        // boundaries, ties included) for both signs.
        check_f32_to_f16((0..=u32::MAX).step_by(257));
        check_f32_to_f16((0..=u16::MAX).flat_map(|h| {
            let center = half::f16::from_bits(h).to_f32().to_bits();
            (0..64u32).flat_map(move |d| {
                [
                    center.wrapping_add(d),
                    center.wrapping_sub(d),
                    center.wrapping_add(d << 12),
                    center.wrapping_sub(d << 12),
                ]
            })
        }));
    }

    /// All 2^32 patterns, both conversions (about 30 s in release; passed on
    /// 2026-11-28): `cargo test --release -- --ignored`.
    #[test]
    #[ignore]
    fn f32_to_f16_matches_half_on_every_bit_pattern() {
        check_f32_to_f16(0..=u32::MAX);
        check_f32_to_bf16(0..=u32::MAX);
    }

    #[test]
    fn added_to_zero_and_accumulate_match_adding_for_every_half() {
        use super::Element;
        // Every 16-bit pattern, signalling NaNs and -0 included: the bit operations give
        // the bits of `add` and of half's own conversions around an `f32` addition
        // (`by_half`), and `accumulate` those of `add` for any cell.
        fn check<T: Element + std::fmt::Display>(
            name: &str,
            from_bits: fn(u16) -> T,
            to_bits: fn(T) -> u16,
            by_half: fn(T) -> u16,
        ) {
            let (zero, one) = (T::zero(), T::from_f64(1.0));
            for bits in 0..=u16::MAX {
                let h = from_bits(bits);
                let want = by_half(h);
                assert_eq!(to_bits(h.added_to_zero()), want, "{name} {bits:#06x}");
                assert_eq!(to_bits(zero.add(h)), want, "{name} add {bits:#06x}");
                assert_eq!(to_bits(zero.accumulate(h)), want, "{name} accumulate {bits:#06x}");
                for cell in [from_bits(0x8000), one, h] {
                    assert_eq!(to_bits(cell.accumulate(h)), to_bits(cell.add(h)), "{name} {cell} + {bits:#06x}");
                }
            }
        }
        check("f16", half::f16::from_bits, half::f16::to_bits, |h| half::f16::from_f32(0.0 + h.to_f32()).to_bits());
        check("bf16", half::bf16::from_bits, half::bf16::to_bits, |h| half::bf16::from_f32(0.0 + h.to_f32()).to_bits());
        for v in [0.0f32, -0.0, 1.5, -f32::MIN_POSITIVE / 4.0, f32::NEG_INFINITY, f32::NAN] {
            assert_eq!(v.added_to_zero().to_bits(), (0.0 + v).to_bits());
            assert_eq!(f64::from(v).added_to_zero().to_bits(), (0.0 + f64::from(v)).to_bits());
        }
    }

    #[test]
    fn add_widened_matches_adding_to_acc_for_every_half() {
        // Every 16-bit pattern (signalling NaNs included) added to a few sums, in bulk and
        // one `to_acc` at a time: the same bits.
        fn check<T: super::Element<Acc = f32>>(from_bits: impl Fn(u16) -> T) {
            for start in [0.0f32, -0.0, 1.5, f32::INFINITY, f32::NAN] {
                let values: Vec<T> = (0..=u16::MAX).map(&from_bits).collect();
                let mut bulk = vec![start; values.len()];
                T::add_widened_slice(&mut bulk, &values);
                for (b, v) in bulk.iter().zip(&values) {
                    let want = start + v.to_acc();
                    // Which of two NaNs an addition keeps is the compiler's choice of
                    // operand order; a lone NaN's bits are the point of the check.
                    if !(start.is_nan() && v.to_acc().is_nan()) {
                        assert_eq!(b.to_bits(), want.to_bits(), "{start} + {:?}", v.to_acc());
                    }
                    assert_eq!(b.is_nan(), want.is_nan());
                }
            }
        }
        check(half::f16::from_bits);
        check(half::bf16::from_bits);
    }

    #[test]
    fn sum_widened_taps_matches_adding_each_to_acc() {
        // Five taps cut from every 16-bit pattern (shifted copies, so sums of neighbours
        // and of unrelated values), summed in bulk at several widths (the vector paths
        // and their remainders) and one `to_acc` at a time from zero.
        fn check<T: super::Element<Acc = f32>, const W: usize>(from_bits: impl Fn(u16) -> T) {
            const SHIFTS: [usize; 5] = [0, 1, 7919, 2, 40_503];
            let patterns: Vec<T> = (0..=u16::MAX).map(&from_bits).collect();
            for block in (0..patterns.len()).step_by(W) {
                let taps: Vec<[T; W]> = SHIFTS
                    .iter()
                    .map(|shift| std::array::from_fn(|i| patterns[(block + i + shift) % patterns.len()]))
                    .collect();
                let bulk = T::sum_widened_taps(taps.len(), |t| &taps[t]);
                for (lane, got) in bulk.iter().enumerate() {
                    let want = taps.iter().fold(0.0f32, |sum, tap| sum + tap[lane].to_acc());
                    // Which of two NaNs an addition keeps is the compiler's choice of
                    // operand order (see above): NaN-ness only, there.
                    assert_eq!(got.is_nan(), want.is_nan(), "block {block} lane {lane}");
                    if !want.is_nan() {
                        assert_eq!(got.to_bits(), want.to_bits(), "block {block} lane {lane}");
                    }
                }
            }
        }
        check::<half::f16, 16>(half::f16::from_bits);
        check::<half::f16, 64>(half::f16::from_bits);
        check::<half::f16, 112>(half::f16::from_bits);
        check::<half::bf16, 16>(half::bf16::from_bits);
        check::<half::bf16, 32>(half::bf16::from_bits);
        check::<half::bf16, 64>(half::bf16::from_bits);
        check::<half::bf16, 96>(half::bf16::from_bits);
    }

    #[test]
    fn mean_widened_taps_matches_dividing_each_sum_and_rounding() {
        // Taps cut from every 16-bit pattern as in `sum_widened_taps`'s test; each mean
        // against its lane summed from zero, divided (or multiplied) in f32 and rounded
        // by `half`. Small divisors and patterns near the range's ends give subnormal,
        // tied, overflowing and NaN means.
        fn check<T: super::Element<Acc = f32>, const W: usize>(from_bits: impl Fn(u16) -> T, round: fn(f32) -> T) {
            const SHIFTS: [usize; 3] = [0, 1, 7919];
            let patterns: Vec<T> = (0..=u16::MAX).map(&from_bits).collect();
            for (by, multiply) in [(3.0f32, false), (9.0, false), (0.25, true), (1.0, true)] {
                for block in (0..patterns.len()).step_by(W) {
                    let taps: Vec<[T; W]> = SHIFTS
                        .iter()
                        .map(|shift| std::array::from_fn(|i| patterns[(block + i + shift) % patterns.len()]))
                        .collect();
                    let mut means = [T::zero(); W];
                    if !T::mean_widened_taps(taps.len(), |t| &taps[t], by, multiply, &mut means) {
                        return;
                    }
                    for (lane, got) in means.iter().enumerate() {
                        let sum = taps.iter().fold(0.0f32, |sum, tap| sum + tap[lane].to_acc());
                        let want = round(if multiply { sum * by } else { sum / by });
                        assert_eq!(got.is_nan(), want.is_nan(), "by {by} block {block} lane {lane}");
                        if !want.is_nan() {
                            assert_eq!(
                                got.to_f64().to_bits(),
                                want.to_f64().to_bits(),
                                "by {by} block {block} lane {lane}"
                            );
                        }
                    }
                }
            }
        }
        check::<half::f16, 16>(half::f16::from_bits, half::f16::from_f32);
        check::<half::f16, 48>(half::f16::from_bits, half::f16::from_f32);
        check::<half::bf16, 32>(half::bf16::from_bits, half::bf16::from_f32);
        check::<half::bf16, 64>(half::bf16::from_bits, half::bf16::from_f32);
        check::<half::bf16, 96>(half::bf16::from_bits, half::bf16::from_f32);
    }

    #[test]
    fn sum_rows_natively_matches_adding_in_f32_and_rounding() {
        // Five rows cut from every f16 pattern (as in `sum_widened_taps`'s test), added
        // in f16's own arithmetic where the CPU has it, against `add` (an f32 addition
        // rounded to f16) one value at a time from zero.
        fn check<const W: usize>() {
            const SHIFTS: [usize; 5] = [0, 1, 7919, 2, 40_503];
            let patterns: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).collect();
            for block in (0..patterns.len()).step_by(W) {
                let rows: Vec<[half::f16; W]> = SHIFTS
                    .iter()
                    .map(|shift| std::array::from_fn(|i| patterns[(block + i + shift) % patterns.len()]))
                    .collect();
                let mut sums = [half::f16::ZERO; W];
                if !<half::f16 as super::Element>::sum_rows_natively(rows.len(), |o| &rows[o], &mut sums) {
                    return;
                }
                for (lane, got) in sums.iter().enumerate() {
                    let want = rows.iter().fold(half::f16::ZERO, |sum, row| super::Element::add(sum, row[lane]));
                    // NaN-ness only where two NaNs meet (see above).
                    assert_eq!(got.is_nan(), want.is_nan(), "block {block} lane {lane}");
                    if !want.is_nan() {
                        assert_eq!(got.to_bits(), want.to_bits(), "block {block} lane {lane}");
                    }
                }
            }
        }
        crate::simd::with_isa(crate::simd::Isa::Avx512, || {
            check::<32>();
            check::<192>();
            check::<256>();
        });
    }

    #[test]
    fn sum_rounded_rows_matches_adding_one_value_at_a_time() {
        // Rows of widened 16-bit values cut from every pattern, summed from zero with a
        // rounding after each addition (`vaddph` for f16 where the CPU has AVX-512 FP16,
        // `f32` additions and conversions elsewhere), against `add` one value at a time.
        fn check<T: super::Element<Acc = f32>, const W: usize>(from_bits: fn(u16) -> T) {
            const SHIFTS: [usize; 4] = [0, 1, 7919, 40_503];
            let patterns: Vec<T> = (0..=u16::MAX).map(from_bits).collect();
            for block in (0..patterns.len()).step_by(W) {
                let rows: Vec<[T; W]> = SHIFTS
                    .iter()
                    .map(|shift| std::array::from_fn(|i| patterns[(block + i + shift) % patterns.len()]))
                    .collect();
                let wide: Vec<[f32; W]> = rows.iter().map(|row| row.map(|v| v.to_acc())).collect();
                // One row (`0 + -0` is +0), and all of them.
                for count in [1, rows.len()] {
                    let mut sums = [T::zero(); W];
                    T::sum_rounded_rows::<W>(count, |o| &wide[o], &mut sums);
                    for (lane, got) in sums.iter().enumerate() {
                        let want = rows[..count].iter().fold(T::zero(), |sum, row| sum.add(row[lane]));
                        // NaN-ness only where two NaNs meet (see above).
                        assert_eq!(got.is_nan(), want.is_nan(), "block {block} lane {lane} of {count}");
                        if !want.is_nan() {
                            let (got, want) = (got.to_acc().to_bits(), want.to_acc().to_bits());
                            assert_eq!(got, want, "block {block} lane {lane} of {count}");
                        }
                    }
                }
            }
        }
        for isa in crate::simd::available() {
            crate::simd::with_isa(isa, || {
                check::<half::f16, 16>(half::f16::from_bits);
                check::<half::f16, 48>(half::f16::from_bits);
                check::<half::f16, 192>(half::f16::from_bits);
                check::<half::bf16, 16>(half::bf16::from_bits);
                check::<half::bf16, 64>(half::bf16::from_bits);
            });
        }
    }

    #[test]
    fn f32_to_bf16_matches_half_on_a_sample_and_every_boundary() {
        check_f32_to_bf16((0..=u32::MAX).step_by(257));
        check_f32_to_bf16((0..=u16::MAX).flat_map(|h| {
            let center = u32::from(h) << 16;
            (0..64u32).flat_map(move |d| {
                [
                    center ^ 0x8000,
                    (center ^ 0x8000).wrapping_add(d),
                    (center ^ 0x8000).wrapping_sub(d),
                    center.wrapping_add(d),
                ]
            })
        }));
    }

    /// f32 patterns near every f16 value and its rounding boundaries, both signs, with a
    /// spread of others (overflow, subnormals, NaN payloads).
    fn near_every_half() -> Vec<f32> {
        let near = (0..=u16::MAX).flat_map(|h| {
            let center = half::f16::from_bits(h).to_f32_const().to_bits();
            [0u32, 1, 0xfff, 0x1000, 0x1001]
                .into_iter()
                .flat_map(move |d| [center.wrapping_add(d), center.wrapping_sub(d)])
        });
        near.chain((0..=u32::MAX).step_by(65_537)).map(f32::from_bits).collect()
    }

    /// `divide_widened` against dividing and rounding one value at a time with `half`'s
    /// conversions: every 16-bit value, and an odd-length run of them (16-value chunks and
    /// a tail), by the counts of windows that are not powers of two, and by divisors
    /// outside the reciprocal's range.
    #[test]
    fn divide_widened_matches_dividing() {
        use super::Element;
        use half::{bf16, f16};
        /// `half`'s own conversions, the oracle.
        trait Half: Element<Acc = f32> {
            fn from_bits(bits: u16) -> Self;
            fn bits(self) -> u16;
            fn rounded(value: f32) -> f32;
            fn widened(self) -> f32;
        }
        macro_rules! half {
            ($t:ty) => {
                impl Half for $t {
                    fn from_bits(bits: u16) -> Self {
                        <$t>::from_bits(bits)
                    }
                    fn bits(self) -> u16 {
                        self.to_bits()
                    }
                    fn rounded(value: f32) -> f32 {
                        <$t>::from_f32(value).to_f32()
                    }
                    fn widened(self) -> f32 {
                        self.to_f32()
                    }
                }
            };
        }
        half!(f16);
        half!(bf16);
        fn check<T: Half>(divisor: f32) {
            let every: Vec<T> = (0..=u16::MAX).map(T::from_bits).collect();
            for values in [&every[..], &every[0x3f70..][..29]] {
                let mut wide = vec![0.0f32; values.len()];
                T::divide_widened(values, divisor, &mut wide);
                for (&v, w) in values.iter().zip(&wide) {
                    let expected = T::rounded(v.widened() / divisor);
                    assert_eq!(w.to_bits(), expected.to_bits(), "{} {:#06x} / {divisor}", T::NAME, v.bits());
                }
            }
        }
        let counts = (3..=200u16).filter(|n| !n.is_power_of_two()).map(f32::from);
        for divisor in counts.chain([1e3, 12_345.0, 16_777_215.0, 2e9, 2f32.powi(64), 2f32.powi(65), 0.75]) {
            check::<bf16>(divisor);
            check::<f16>(divisor);
        }
    }

    /// The bulk conversions (AVX-512 or F16C where the CPU has them, any length: 16- and
    /// 8-value chunks and a software tail) against `half`'s software conversions.
    #[test]
    fn bulk_conversions_match_half() {
        use super::Element;
        use half::{bf16, f16};
        let every: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        // Whole 16-value chunks, and 16-, 8-value chunks and a software tail.
        for halves in [&every[..], &every[0x7bf0..][..29]] {
            let mut wide = vec![0.0f32; halves.len()];
            f16::widen_slice(halves, &mut wide);
            for (h, w) in halves.iter().zip(&wide) {
                assert_eq!(w.to_bits(), h.to_f32_const().to_bits(), "widen {:#06x}", h.to_bits());
            }
        }
        let floats = near_every_half();
        for len in [floats.len(), 13, 29] {
            let floats = &floats[..len];
            let mut narrowed = vec![f16::ZERO; len];
            f16::narrow_slice(floats, &mut narrowed);
            for (f, h) in floats.iter().zip(&narrowed) {
                assert_eq!(h.to_bits(), f16::from_f32_const(*f).to_bits(), "narrow {:#010x}", f.to_bits());
            }
            let (mut rounded, mut brounded) = (floats.to_vec(), floats.to_vec());
            f16::round_slice(&mut rounded);
            bf16::round_slice(&mut brounded);
            for ((f, r), b) in floats.iter().zip(&rounded).zip(&brounded) {
                assert_eq!(
                    r.to_bits(),
                    f16::from_f32_const(*f).to_f32_const().to_bits(),
                    "round {:#010x}",
                    f.to_bits()
                );
                assert_eq!(
                    b.to_bits(),
                    bf16::from_f32_const(*f).to_f32_const().to_bits(),
                    "bf16 round {:#010x}",
                    f.to_bits()
                );
            }
            // Sums of two values, each rounded: x + 0 is x itself, and pairs of neighbours.
            for (shift, name) in [(0, "x + 0"), (1, "x + next")] {
                let mut sums = floats.to_vec();
                let values: Vec<f32> = (0..len).map(|i| if shift == 0 { 0.0 } else { floats[(i + 1) % len] }).collect();
                f16::add_rounded_slice(&mut sums, &values);
                let mut bsums = floats.to_vec();
                bf16::add_rounded_slice(&mut bsums, &values);
                for i in 0..len {
                    if floats[i].is_nan() && values[i].is_nan() {
                        // Which operand's payload an addition of two NaNs keeps is up to
                        // the compiler (IEEE leaves it open): only that a NaN comes out.
                        assert!(sums[i].is_nan() && bsums[i].is_nan(), "NaN + NaN {:#010x}", floats[i].to_bits());
                        continue;
                    }
                    let exact = floats[i] + values[i];
                    let want16 = f16::from_f32_const(exact).to_f32_const();
                    let want_b = bf16::from_f32_const(exact).to_f32_const();
                    assert_eq!(sums[i].to_bits(), want16.to_bits(), "f16 {name} {:#010x}", floats[i].to_bits());
                    assert_eq!(bsums[i].to_bits(), want_b.to_bits(), "bf16 {name} {:#010x}", floats[i].to_bits());
                }
            }
        }
    }

    /// Runs of rounded additions (`sum_rounded_rows`: AVX-512 registers where the CPU has
    /// them) against `half`'s scalar rounding after each `f32` addition, `W` lanes wide,
    /// on rows that hold every 16-bit pattern of the type (zeros, subnormals, infinities,
    /// NaNs) against shifted copies of themselves.
    fn check_sum_rounded_rows<T: super::Element<Acc = f32>, const W: usize>(
        from_bits: fn(u16) -> f32,
        round: fn(f32) -> f32,
    ) {
        const ROWS: usize = 5;
        let patterns: Vec<f32> = (0..=u16::MAX).map(from_bits).collect();
        for block in (0..patterns.len()).step_by(W) {
            // Row `r`, lane `i`: pattern `block + i` moved by `SHIFTS[r]`: neighbours (sums
            // of close magnitudes, with ties to round) and unrelated values.
            const SHIFTS: [usize; ROWS] = [0, 1, 7919, 2, 40_503];
            let rows: Vec<[f32; W]> = SHIFTS
                .iter()
                .map(|shift| std::array::from_fn(|i| patterns[(block + i + shift) % patterns.len()]))
                .collect();
            let mut sums = [T::zero(); W];
            T::sum_rounded_rows(ROWS, |o| &rows[o], &mut sums);
            for i in 0..W {
                let (mut want, mut nans) = (0.0f32, 0);
                for row in &rows {
                    nans += usize::from(row[i].is_nan());
                    want = round(want + row[i]);
                }
                let context =
                    format!("{} lane {i} of {:#x?}", T::NAME, rows.iter().map(|r| r[i].to_bits()).collect::<Vec<_>>());
                let got = sums[i].to_acc();
                if nans > 1 {
                    // Which NaN's payload a sum of two keeps is up to the compiler.
                    assert!(got.is_nan(), "{context}");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "{context}");
                }
            }
        }
    }

    #[test]
    fn sum_rounded_rows_match_half_on_every_pattern() {
        use half::{bf16, f16};
        let f16_bits = |b: u16| f16::from_bits(b).to_f32_const();
        let f16_round = |v: f32| f16::from_f32_const(v).to_f32_const();
        let bf16_bits = |b: u16| bf16::from_bits(b).to_f32_const();
        let bf16_round = |v: f32| bf16::from_f32_const(v).to_f32_const();
        check_sum_rounded_rows::<f16, 16>(f16_bits, f16_round);
        check_sum_rounded_rows::<f16, 96>(f16_bits, f16_round);
        check_sum_rounded_rows::<f16, 128>(f16_bits, f16_round);
        check_sum_rounded_rows::<f16, 192>(f16_bits, f16_round);
        check_sum_rounded_rows::<f16, 13>(f16_bits, f16_round);
        check_sum_rounded_rows::<bf16, 16>(bf16_bits, bf16_round);
        check_sum_rounded_rows::<bf16, 64>(bf16_bits, bf16_round);
        check_sum_rounded_rows::<bf16, 192>(bf16_bits, bf16_round);
        check_sum_rounded_rows::<bf16, 144>(bf16_bits, bf16_round);
    }

    /// `bf16`'s [`Element::add`] (widened by a shift, rounded on the bits) against
    /// `half`'s conversions around an `f32` addition: every pattern plus a spread of
    /// others (zeros, subnormals, ties, infinities, NaNs among them). A NaN sum need
    /// only be NaN: which payload wins may depend on the CPU.
    #[test]
    fn bf16_add_matches_half_on_every_pattern() {
        use half::bf16;
        let others: Vec<u16> =
            (0..=u16::MAX).step_by(251).chain([0, 0x8000, 1, 0x8001, 0x7f80, 0xff80, 0x7fc1, 0x7f81]).collect();
        for a in 0..=u16::MAX {
            for &b in &others {
                let (a, b) = (bf16::from_bits(a), bf16::from_bits(b));
                let (got, want) = (super::Element::add(a, b), bf16::from_f32(a.to_f32() + b.to_f32()));
                let same = got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
                assert!(
                    same,
                    "{:#06x} + {:#06x}: {:#06x}, not {:#06x}",
                    a.to_bits(),
                    b.to_bits(),
                    got.to_bits(),
                    want.to_bits()
                );
            }
        }
    }

    #[test]
    fn f16_to_f32_matches_half_on_every_bit_pattern() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            assert_eq!(super::f16_to_f32(h).to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
        }
    }
}
