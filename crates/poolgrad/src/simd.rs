//! Which vector instruction set the kernels are compiled for, chosen at run time.
//!
//! The hot loops are plain Rust written so that the compiler vectorises them; each is
//! compiled three times on x86-64 — for the baseline (SSE2, any x86-64 CPU), for AVX2+FMA+F16C
//! and for AVX-512 (F, BW, VL) — and the widest one the CPU supports runs, except where a
//! kernel caps it ([`Isa::at_most`]) because a benchmark showed the wider set slower.
//! Other targets (aarch64: NEON is baseline) use the portable build. Every instruction
//! set gives bitwise the same results: the loops only compare, select and add in a fixed
//! order.
//!
//! [`with_isa`] forces a narrower set on the calling thread, so tests can check each
//! build and benchmarks can compare them:
//!
//! ```
//! use poolgrad::simd::{available, detected, with_isa, Isa};
//! assert!(available().contains(&Isa::Portable));
//! assert!(available().contains(&detected()));
//! let portable = with_isa(Isa::Portable, || poolgrad::simd::current());
//! assert_eq!(portable, Isa::Portable);
//! ```

use std::cell::Cell;

/// An instruction set the kernels are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 (foundation, byte/word and vector-length extensions) with AVX2 and
    /// FMA: 16 `f32` lanes per register.
    Avx512,
}

impl Isa {
    /// The name used in reports (`portable`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// This set, or `cap` if that is narrower: for kernels that a wider set measurably
    /// does not speed up (AVX-512 slows some memory-bound loops down).
    ///
    /// ```
    /// use poolgrad::simd::Isa;
    /// assert_eq!(Isa::Avx512.at_most(Isa::Avx2), Isa::Avx2);
    /// assert_eq!(Isa::Portable.at_most(Isa::Avx2), Isa::Portable);
    /// ```
    pub fn at_most(self, cap: Isa) -> Isa {
        self.min(cap)
    }

    /// Runs `f` compiled for this instruction set. `f` should be an `#[inline(always)]`
    /// closure that calls `#[inline(always)]` loops, so that they are compiled into the
    /// feature-enabled wrapper.
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                #[target_feature(enable = "avx2,fma,f16c")]
                unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                debug_assert!(has_avx2());
                // SAFETY: an `Isa::Avx2` only comes from `current()`, which never yields
                // a set the CPU lacks (`with_isa` clamps to `detected()`).
                unsafe { avx2(f) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
                unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                debug_assert!(has_avx512());
                // SAFETY: an `Isa::Avx512` only comes from `current()`, which never
                // yields a set the CPU lacks (`with_isa` clamps to `detected()`).
                unsafe { avx512(f) }
            }
            _ => f(),
        }
    }
}

/// The widest instruction set this CPU supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        return if has_avx512() { Isa::Avx512 } else { Isa::Avx2 };
    }
    Isa::Portable
}

/// Whether the CPU runs what [`Isa::Avx2`] is built for: AVX2, FMA and F16C (the half
/// conversions, which every AVX2 CPU has).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// Whether the CPU runs the AVX-512 subsets [`Isa::Avx512`] is built for.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl")
}

/// Whether this CPU executes 512-bit vector operations at full width, each as one
/// operation. Intel's server cores since Sapphire Rapids do; AMD Zen 4 splits each into
/// two 256-bit halves, where some loops measured slower with AVX-512 than with AVX2. No
/// CPUID bit names the width, so AVX512-FP16 stands for it: those Intel cores have it
/// and Zen 4 lacks it. Kernels use this to choose AVX-512 where it paid only on such
/// cores (see [`Isa::at_most`]).
///
/// ```
/// // Only a CPU with AVX-512 can run it at full width.
/// if poolgrad::simd::full_width_avx512() {
///     assert_eq!(poolgrad::simd::detected(), poolgrad::simd::Isa::Avx512);
/// }
/// ```
pub fn full_width_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx512() && is_x86_feature_detected!("avx512fp16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Every instruction set this CPU can run, narrowest first.
pub fn available() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| i <= detected()).collect()
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The instruction set kernels started on this thread use now.
pub fn current() -> Isa {
    let detected = detected();
    FORCED.with(|f| f.get()).map_or(detected, |forced| forced.min(detected))
}

/// Runs `f` with the kernels it starts on this thread using at most `isa` (a set the CPU
/// lacks is narrowed to [`detected`]).
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|f| f.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|forced| forced.replace(Some(isa))));
    f()
}

/// Asks the CPU to bring the cache line holding `*at` into its L1 cache (`prefetcht0`
/// on x86-64; nothing elsewhere). A hint only: nothing is read, and any address is
/// allowed, inside an allocation or not, so callers may point past a slice's end with
/// `wrapping_add`.
#[inline(always)]
pub(crate) fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: `prefetcht0` (SSE, which every x86-64 CPU has) reads nothing the
        // program can observe and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
