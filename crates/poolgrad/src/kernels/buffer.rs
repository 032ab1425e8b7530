//! Output buffers.
//!
//! The hot operators (max and average forward and backward) write into a [`Fresh`]
//! allocation: memory nobody has written yet, handed to the kernels as an [`Out`] and
//! reached block by block in the parallel workers. A kernel that writes each element of
//! its block once, front to back (the channels-last forward, the interleaved
//! channels-first paths, the average backward's gather), does so through a [`Sink`] and
//! needs no clearing at all; any other kernel gets its block cleared right before it
//! runs, by the thread that runs it, in cache. Either way there is no serial clearing
//! pass over the whole buffer, which `calloc` pays whenever it reuses freed heap memory
//! (16 % of a channels-last average forward). The kernels' first writes fault the pages
//! in, each thread the pages it writes. Buffers from [`FRESH_PAGES_THRESHOLD`] bytes on,
//! and the other operators' outputs, start [`zeroed`]. On Linux, buffers of at least
//! [`HUGE_PAGE_THRESHOLD`] bytes are advised to use transparent huge pages: one fault per
//! 2 MiB instead of per 4 KiB. Measured on a 102 MB gradient (ResNet stem): 66 ms to
//! allocate and write with 4 KiB pages, 14 ms with huge pages.

use crate::error::{PoolError, Result};
use bytemuck::Zeroable;
use rayon::iter::Either;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffers at least this large are advised to use transparent huge pages.
pub(crate) const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// `n` zeros, untouched until the caller writes them.
pub(crate) fn zeroed<T: Zeroable + Clone>(n: usize) -> Result<Vec<T>> {
    let bytes = n.checked_mul(std::mem::size_of::<T>()).filter(|&b| b <= isize::MAX as usize);
    let Some(bytes) = bytes else {
        return Err(PoolError::Overflow { what: "output size in bytes" });
    };
    let buffer: Vec<T> = bytemuck::allocation::try_zeroed_vec(n)
        .map_err(|()| PoolError::OutOfMemory { what: "an output buffer", bytes })?;
    if bytes >= HUGE_PAGE_THRESHOLD {
        advise_huge_pages(buffer.as_ptr().cast(), bytes);
    }
    Ok(buffer)
}

/// Buffers of at least this many bytes are taken zeroed from the allocator: they come
/// straight from the OS as zero pages (glibc maps every allocation over 32 MiB), so
/// clearing them again would be a wasted pass.
pub(crate) const FRESH_PAGES_THRESHOLD: usize = 32 << 20;

/// A buffer of `len` elements that one kernel call writes through [`Fresh::out`]
/// before [`Fresh::finish`] hands it over as a `Vec`.
pub(crate) struct Fresh<T> {
    /// Empty with room for `len` elements, or (from [`FRESH_PAGES_THRESHOLD`] bytes on)
    /// `len` zeros.
    cells: Vec<T>,
    len: usize,
    /// Elements of the latest [`Out`] whose blocks were made ready (so initialised).
    ready: AtomicUsize,
}

impl<T: Zeroable + Copy + Send> Fresh<T> {
    /// Room for `n` elements; [`PoolError::OutOfMemory`] if it cannot be had. Below
    /// [`FRESH_PAGES_THRESHOLD`] bytes nothing is written yet; from there on the buffer
    /// is a [`zeroed`] one, whose zero pages the OS provides as they are first written.
    pub fn new(n: usize) -> Result<Self> {
        let bytes = n.checked_mul(std::mem::size_of::<T>()).filter(|&b| b <= isize::MAX as usize);
        let Some(bytes) = bytes else {
            return Err(PoolError::Overflow { what: "output size in bytes" });
        };
        if bytes >= FRESH_PAGES_THRESHOLD {
            return Ok(Fresh { cells: zeroed(n)?, len: n, ready: AtomicUsize::new(0) });
        }
        let mut cells: Vec<T> = Vec::new();
        cells.try_reserve_exact(n).map_err(|_| PoolError::OutOfMemory { what: "an output buffer", bytes })?;
        if bytes >= HUGE_PAGE_THRESHOLD {
            advise_huge_pages(cells.as_ptr().cast(), bytes);
        }
        Ok(Fresh { cells, len: n, ready: AtomicUsize::new(0) })
    }

    /// The whole buffer as a kernel's destination; every call starts the count of
    /// written elements afresh.
    pub fn out(&mut self) -> Out<'_, T> {
        *self.ready.get_mut() = 0;
        if self.cells.len() == self.len {
            return Out { kind: OutKind::ZeroPages(&mut self.cells) };
        }
        let cells = &mut self.cells.spare_capacity_mut()[..self.len];
        Out { kind: OutKind::Fresh { cells, ready: &self.ready } }
    }

    /// The buffer, once the latest [`Self::out`] had every block made ready; an error
    /// naming the defect otherwise (a kernel that skipped part of its output).
    pub fn finish(mut self) -> Result<Vec<T>> {
        if self.cells.len() == self.len {
            return Ok(self.cells);
        }
        if *self.ready.get_mut() != self.len {
            return Err(PoolError::Internal { what: "a kernel left part of its output unwritten" });
        }
        // SAFETY: `cells` is the empty vector of `new` (a zeroed one has length `len`,
        // returned above), with capacity `len`, and every element of `cells[..len]` is
        // initialised: the latest `Out` split exactly that range into disjoint blocks
        // (`Out::blocks`), each consumed at most once, by `OutBlock::ready`, which writes
        // every element of its block before adding the block's length to `ready`, or by
        // `OutBlock::write_in_order`, whose `Sink` adds it only when its writes (each
        // element at most once, front to back) reached the block's end; the count
        // reaching `len` means every block was written.
        unsafe { self.cells.set_len(self.len) };
        Ok(self.cells)
    }
}

/// Where a kernel writes: a caller's slice (whatever it holds), or a [`Fresh`] buffer.
/// Kernels reach it only block by block, through [`Out::blocks`].
pub(crate) struct Out<'a, T> {
    kind: OutKind<'a, T>,
}

enum OutKind<'a, T> {
    Slice(&'a mut [T]),
    /// Zeros whose pages the OS has not mapped yet (a [`Fresh`] buffer from
    /// [`FRESH_PAGES_THRESHOLD`] bytes on): already zero, but a page first read maps the
    /// shared zero page (see [`OutBlock::ready_zeroed`]).
    ZeroPages(&'a mut [T]),
    Fresh {
        cells: &'a mut [MaybeUninit<T>],
        ready: &'a AtomicUsize,
    },
}

impl<'a, T> From<&'a mut [T]> for Out<'a, T> {
    fn from(slice: &'a mut [T]) -> Self {
        Out { kind: OutKind::Slice(slice) }
    }
}

impl<'a, T> From<&'a mut Vec<T>> for Out<'a, T> {
    fn from(v: &'a mut Vec<T>) -> Self {
        Out { kind: OutKind::Slice(v) }
    }
}

impl<'a, T: Zeroable + Copy + Send + Sync> Out<'a, T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.kind {
            OutKind::Slice(s) | OutKind::ZeroPages(s) => s.len(),
            OutKind::Fresh { cells, .. } => cells.len(),
        }
    }

    /// Consecutive blocks of `block_len` elements (the last may be shorter), in parallel.
    pub fn blocks(self, block_len: usize) -> impl IndexedParallelIterator<Item = OutBlock<'a, T>> {
        match self.kind {
            OutKind::Slice(s) => {
                Either::Left(Either::Left(s.par_chunks_mut(block_len).map(|s| OutBlock { kind: OutKind::Slice(s) })))
            }
            OutKind::ZeroPages(s) => Either::Left(Either::Right(
                s.par_chunks_mut(block_len).map(|s| OutBlock { kind: OutKind::ZeroPages(s) }),
            )),
            OutKind::Fresh { cells, ready } => Either::Right(
                cells.par_chunks_mut(block_len).map(move |cells| OutBlock { kind: OutKind::Fresh { cells, ready } }),
            ),
        }
    }
}

/// One block of an [`Out`].
pub(crate) struct OutBlock<'a, T> {
    kind: OutKind<'a, T>,
}

impl<'a, T: Zeroable + Copy> OutBlock<'a, T> {
    /// The block as a slice to write: a caller's slice as it is, a fresh block zeroed
    /// (in the cache of the thread about to write it).
    #[inline]
    pub fn ready(self) -> &'a mut [T] {
        match self.kind {
            OutKind::Slice(s) | OutKind::ZeroPages(s) => s,
            OutKind::Fresh { cells, ready } => {
                for cell in cells.iter_mut() {
                    cell.write(T::zeroed());
                }
                ready.fetch_add(cells.len(), Ordering::Relaxed);
                // SAFETY: every element of `cells` was written just above, and
                // `MaybeUninit<T>` has the layout of `T`, so the slice is a valid,
                // initialised `[T]` of the same length, borrowed for the same lifetime.
                unsafe { &mut *(cells as *mut [MaybeUninit<T>] as *mut [T]) }
            }
        }
    }

    /// Runs `write` on the block as a [`Sink`], which must fill it, front to back.
    #[inline(always)]
    pub fn write_in_order<R>(self, write: impl FnOnce(&mut Sink<'a, T>) -> R) -> R {
        let mut sink = match self.kind {
            OutKind::Slice(cells) | OutKind::ZeroPages(cells) => Sink::over(cells),
            OutKind::Fresh { cells, ready } => Sink { cells, ready: Some(ready), filled: 0 },
        };
        let result = write(&mut sink);
        sink.finish();
        result
    }

    /// The block as a slice of zeros (for kernels that add into their output). Every
    /// page of it has been written when this returns: a kernel whose first touch of an
    /// unmapped zero page is a read (`cell += v`) would map the shared zero page and then
    /// pay a copy-on-write fault on its first write. Zero pages fresh from the OS get
    /// one zero written per page, not a full clearing pass.
    #[inline]
    pub fn ready_zeroed(self) -> &'a mut [T] {
        match self.kind {
            OutKind::Slice(s) => {
                s.fill(T::zeroed());
                s
            }
            OutKind::ZeroPages(s) => {
                let per_page = (4096 / std::mem::size_of::<T>().max(1)).max(1);
                for cell in s.iter_mut().step_by(per_page) {
                    *cell = T::zeroed();
                }
                s
            }
            OutKind::Fresh { .. } => self.ready(),
        }
    }
}

/// A block written front to back, every element once, in order (the channels-last
/// forward's way of writing): a fresh block needs no clearing first.
///
/// Every kind of block is held the same way, as cells that may be uninitialised, so the
/// writes compile to one plain store loop, with no branch on the kind.
pub(crate) struct Sink<'a, T> {
    /// The block. Only initialised values of `T` are ever written into it (so a caller's
    /// slice stays a valid `[T]`).
    cells: &'a mut [MaybeUninit<T>],
    /// A fresh block's count of written elements (see [`Fresh::finish`]).
    ready: Option<&'a AtomicUsize>,
    /// Elements written so far.
    filled: usize,
}

impl<'a, T: Copy> Sink<'a, T> {
    /// A sink over a slice the caller owns (or a scratch buffer): it overwrites it.
    pub fn over(slice: &'a mut [T]) -> Self {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`, so the cast slice covers the
        // same memory with the same length and lifetime. The sink writes only
        // initialised `T` values through it (`extend`, `repeat`, `push`), never an
        // uninitialised one, so the slice is still a valid `[T]` when the borrow ends.
        let cells = unsafe { &mut *(slice as *mut [T] as *mut [MaybeUninit<T>]) };
        Sink { cells, ready: None, filled: 0 }
    }

    /// The block's length, written or not.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Writes `values` after what was written so far.
    ///
    /// # Panics
    /// If the block has no room left for them (a kernel bug, not an input problem).
    #[inline(always)]
    pub fn extend(&mut self, values: &[T]) {
        self.extend_map(values, |v| v);
    }

    /// Writes `f(v)` for every `v` of `values` after what was written so far (see
    /// [`Self::extend`]): a last pass that converts as it stores, with no scratch copy.
    #[inline(always)]
    pub fn extend_map<A: Copy>(&mut self, values: &[A], f: impl Fn(A) -> T) {
        for (cell, &v) in self.cells[self.filled..][..values.len()].iter_mut().zip(values) {
            cell.write(f(v));
        }
        self.filled += values.len();
    }

    /// Writes `f(a[i], b[i])` for every `i` after what was written so far (see
    /// [`Self::extend_map`]).
    ///
    /// # Panics
    /// If `a` and `b` differ in length, or the block has no room left (kernel bugs).
    #[inline(always)]
    pub fn extend_zip<A: Copy, B: Copy>(&mut self, a: &[A], b: &[B], f: impl Fn(A, B) -> T) {
        assert_eq!(a.len(), b.len(), "extend_zip lengths");
        for ((cell, &a), &b) in self.cells[self.filled..][..a.len()].iter_mut().zip(a).zip(b) {
            cell.write(f(a, b));
        }
        self.filled += a.len();
    }

    /// Writes the `K` values `f(a[i], b[i])` for every `i` after what was written so far (see
    /// [`Self::extend_zip`]).
    #[inline(always)]
    pub fn extend_zip_chunks<A: Copy, B: Copy, const K: usize>(
        &mut self,
        a: &[A],
        b: &[B],
        f: impl Fn(A, B) -> [T; K],
    ) {
        assert_eq!(a.len(), b.len(), "extend_zip_chunks lengths");
        let n = a.len() * K;
        for ((cells, &a), &b) in self.cells[self.filled..][..n].chunks_exact_mut(K).zip(a).zip(b) {
            for (cell, v) in cells.iter_mut().zip(f(a, b)) {
                cell.write(v);
            }
        }
        self.filled += n;
    }

    /// Writes `n` copies of `value` after what was written so far (see [`Self::extend`]).
    #[inline(always)]
    pub fn repeat(&mut self, value: T, n: usize) {
        for cell in &mut self.cells[self.filled..][..n] {
            cell.write(value);
        }
        self.filled += n;
    }

    /// Writes one value after what was written so far (see [`Self::extend`]).
    #[inline(always)]
    pub fn push(&mut self, value: T) {
        self.cells[self.filled].write(value);
        self.filled += 1;
    }

    /// The next `W` elements after what was written so far, zeroed, for the caller to
    /// overwrite (`None`, nothing written, if fewer are left): a kernel that stores
    /// from registers writes straight into the block, with no array to copy from.
    #[inline(always)]
    pub fn next_chunk<const W: usize>(&mut self) -> Option<&mut [T; W]>
    where
        T: Zeroable,
    {
        let cells = self.cells.get_mut(self.filled..)?.first_chunk_mut::<W>()?;
        for cell in cells.iter_mut() {
            cell.write(T::zeroed());
        }
        self.filled += W;
        // SAFETY: every element of `cells` was written just above, and `MaybeUninit<T>`
        // has the layout of `T`, so the array is a valid, initialised `[T; W]`, borrowed
        // for as long as `cells` is.
        Some(unsafe { &mut *(cells as *mut [MaybeUninit<T>; W]).cast::<[T; W]>() })
    }

    /// Ends the block: a fresh block counts as written (see [`Fresh::finish`]) only if
    /// every element was.
    fn finish(self) {
        if let Some(ready) = self.ready {
            if self.filled == self.cells.len() {
                ready.fetch_add(self.cells.len(), Ordering::Relaxed);
            }
        }
    }
}

/// The error for `n` elements of `T` that could not be allocated.
fn out_of_memory<T>(what: &'static str, n: usize) -> PoolError {
    match n.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) => PoolError::OutOfMemory { what, bytes },
        None => PoolError::Overflow { what },
    }
}

/// Reserves room for `additional` more elements, or fails with
/// [`PoolError::OutOfMemory`] (never aborts). Every scratch, table and buffer whose size
/// a request decides grows through this.
pub(crate) fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &'static str) -> Result<()> {
    v.try_reserve(additional).map_err(|_| out_of_memory::<T>(what, v.len().saturating_add(additional)))
}

/// The largest scratch vector a thread keeps for its next [`with_spare`] call.
const SPARE_BYTES_LIMIT: usize = 2 << 20;

/// How many scratch vectors a thread keeps (nested calls each take one).
const SPARES_PER_THREAD: usize = 4;

std::thread_local! {
    /// Scratch vectors that [`with_spare`] calls on this thread gave back, as 8-byte words.
    static SPARES: std::cell::RefCell<Vec<Vec<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements of `A`, taken from the vectors this
/// thread's earlier calls gave back when one is free, and gives it back afterwards
/// (when at most [`SPARE_BYTES_LIMIT`] bytes). Its contents are whatever the last user
/// left: `f` must write before it reads.
///
/// A kernel that allocates a large scratch per parallel job instead (rayon splits a job
/// per steal) has the allocator map fresh pages and unmap them again each time: page
/// faults, and TLB-shootdown interrupts to the other threads. That set the 2-thread
/// time of the 16-bit average forward through its widened copy (W3 channels-first f16:
/// 3.8 ms on 2 threads against 4.6 on 1).
pub(crate) fn with_spare<A: bytemuck::Pod, R>(
    len: usize,
    what: &'static str,
    f: impl FnOnce(&mut [A]) -> Result<R>,
) -> Result<R> {
    const { assert!(std::mem::align_of::<A>() <= std::mem::align_of::<u64>()) };
    let bytes = len.checked_mul(std::mem::size_of::<A>()).ok_or(PoolError::Overflow { what })?;
    let mut words = SPARES.with(|spares| spares.borrow_mut().pop()).unwrap_or_default();
    resize(&mut words, bytes.div_ceil(8), 0, what)?;
    let slice = bytemuck::try_cast_slice_mut::<u8, A>(&mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes])
        .map_err(|_| PoolError::Overflow { what })?;
    let result = f(slice);
    if words.capacity() * 8 <= SPARE_BYTES_LIMIT {
        SPARES.with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < SPARES_PER_THREAD {
                spares.push(words);
            }
        });
    }
    result
}

/// An empty vector with room for `n` elements, or [`PoolError::OutOfMemory`].
pub(crate) fn with_capacity<T>(n: usize, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, n, what)?;
    Ok(v)
}

/// `n` copies of `value`, or [`PoolError::OutOfMemory`].
pub(crate) fn filled<T: Clone>(n: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = with_capacity(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// Resizes `v` to `n` elements (new ones `value`), or [`PoolError::OutOfMemory`].
pub(crate) fn resize<T: Clone>(v: &mut Vec<T>, n: usize, value: T, what: &'static str) -> Result<()> {
    reserve(v, n.saturating_sub(v.len()), what)?;
    v.resize(n, value);
    Ok(())
}

/// The items of an iterator of known length, collected, or [`PoolError::OutOfMemory`].
pub(crate) fn collect<T>(items: impl ExactSizeIterator<Item = T>, what: &'static str) -> Result<Vec<T>> {
    let mut v = with_capacity(items.len(), what)?;
    v.extend(items);
    Ok(v)
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *const u8, bytes: usize) {
    const PAGE: usize = 4096;
    let first = (start as usize).div_ceil(PAGE) * PAGE;
    let end = (start as usize + bytes) / PAGE * PAGE;
    if end > first {
        // SAFETY: madvise only advises the kernel about the page-aligned range
        // [first, end), which lies inside this live allocation; MADV_HUGEPAGE changes no
        // contents (the pages are still zero), so no Rust-visible state is affected. A
        // failure (THP disabled, old kernel) is harmless and ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *const u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_scratch_is_reused_and_nested_calls_get_their_own() {
        let first = with_spare(1000, "test", |a: &mut [f32]| {
            assert_eq!(a.len(), 1000);
            a.fill(7.0);
            // A nested call (a stolen job) must not get the vector in use.
            with_spare(1000, "test", |b: &mut [f32]| {
                assert_eq!(b.len(), 1000);
                assert_ne!(a.as_ptr(), b.as_ptr());
                b.fill(1.0);
                Ok(())
            })?;
            assert!(a.iter().all(|&v| v == 7.0));
            Ok(a.as_ptr() as usize)
        })
        .unwrap();
        // The next call on this thread gets the outer vector back (the last one given
        // back), as another type of the same size in bytes, aligned for it.
        let again = with_spare(500, "test", |a: &mut [f64]| Ok(a.as_ptr() as usize)).unwrap();
        assert_eq!(again, first);
        assert_eq!(again % std::mem::align_of::<f64>(), 0);
        let lengths: Vec<usize> =
            [0usize, 1, 3, 5000].iter().map(|&n| with_spare(n, "test", |a: &mut [u16]| Ok(a.len())).unwrap()).collect();
        assert_eq!(lengths, [0, 1, 3, 5000]);
        // An error from `f` comes back, and a size that overflows is an error.
        let err = with_spare(10, "test", |_: &mut [f32]| Err::<(), _>(PoolError::Internal { what: "inner" }));
        assert!(matches!(err, Err(PoolError::Internal { what: "inner" })));
        assert!(with_spare(usize::MAX, "test", |_: &mut [f32]| Ok(())).is_err());
    }

    #[test]
    fn zeroed_buffers_are_zero_small_and_huge() {
        for n in [0usize, 1, 1000, (HUGE_PAGE_THRESHOLD / 4) + 17] {
            let b: Vec<f32> = zeroed(n).unwrap();
            assert_eq!(b.len(), n);
            assert!(b.iter().all(|&v| v.to_bits() == 0));
        }
    }

    #[test]
    fn fresh_buffers_hold_what_every_block_wrote() {
        let mut sizes = vec![(0usize, 4usize), (1, 4), (1000, 7)];
        if !cfg!(miri) {
            // Too slow under Miri (which checks the unsafe code on the small ones).
            sizes.extend([(HUGE_PAGE_THRESHOLD / 4 + 17, 4096), (FRESH_PAGES_THRESHOLD / 4 + 3, 1 << 20)]);
        }
        for (n, block_len) in sizes {
            let mut fresh = Fresh::<u32>::new(n).unwrap();
            fresh.out().blocks(block_len).enumerate().for_each(|(b, block)| {
                for (i, v) in block.ready().iter_mut().enumerate() {
                    *v = (b * block_len + i) as u32 + 1;
                }
            });
            let v = fresh.finish().unwrap();
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 + 1));
        }
    }

    #[test]
    fn fresh_buffers_with_a_skipped_block_are_errors() {
        let mut fresh = Fresh::<f32>::new(100).unwrap();
        fresh.out().blocks(10).enumerate().for_each(|(b, block)| {
            if b != 3 {
                block.ready().fill(1.0);
            }
        });
        assert!(matches!(fresh.finish(), Err(PoolError::Internal { .. })));
        // A second pass counts afresh: the blocks written twice do not stand in for the skipped one.
        let mut fresh = Fresh::<f32>::new(100).unwrap();
        fresh.out().blocks(10).for_each(|block| {
            block.ready();
        });
        fresh.out().blocks(50).enumerate().for_each(|(b, block)| {
            if b == 0 {
                block.ready();
            }
        });
        assert!(matches!(fresh.finish(), Err(PoolError::Internal { .. })));
        assert!(matches!(Fresh::<f64>::new(usize::MAX / 4), Err(PoolError::Overflow { .. })));
        if !cfg!(miri) {
            assert!(matches!(Fresh::<u8>::new(isize::MAX as usize), Err(PoolError::OutOfMemory { .. })));
        }
    }

    #[test]
    fn sinks_fill_fresh_blocks_or_leave_them_unclaimed() {
        let mut fresh = Fresh::<u16>::new(10).unwrap();
        fresh.out().blocks(4).enumerate().for_each(|(b, block)| {
            block.write_in_order(|sink| {
                sink.push(b as u16);
                sink.extend(&[7; 2][..if b == 2 { 1 } else { 2 }]);
                sink.repeat(9, if b == 2 { 0 } else { 1 });
            })
        });
        assert_eq!(fresh.finish().unwrap(), [0, 7, 7, 9, 1, 7, 7, 9, 2, 7]);
        let mut fresh = Fresh::<u16>::new(10).unwrap();
        fresh.out().blocks(4).for_each(|block| block.write_in_order(|sink| sink.push(1)));
        assert!(matches!(fresh.finish(), Err(PoolError::Internal { .. })));
        let mut v = [5u8; 6];
        Out::from(&mut v[..]).blocks(3).for_each(|block| block.write_in_order(|sink| sink.extend(&[1, 2])));
        assert_eq!(v, [1, 2, 5, 1, 2, 5]);
        Out::from(&mut v[..]).blocks(3).for_each(|block| block.write_in_order(|sink| sink.repeat(4, 2)));
        assert_eq!(v, [4, 4, 5, 4, 4, 5]);
    }

    #[test]
    fn zero_page_blocks_are_zero_when_ready() {
        if cfg!(miri) {
            return; // 32 MiB: too slow under Miri.
        }
        let n = FRESH_PAGES_THRESHOLD / 4 + 5;
        let mut fresh = Fresh::<f32>::new(n).unwrap();
        fresh.out().blocks(3001).for_each(|block| {
            for cell in block.ready_zeroed() {
                *cell += 1.0;
            }
        });
        let v = fresh.finish().unwrap();
        assert_eq!(v.len(), n);
        assert!(v.iter().all(|&x| x == 1.0));
    }

    #[test]
    fn caller_slices_keep_their_contents_unless_zeroed() {
        let mut v = vec![7u16; 10];
        Out::from(&mut v).blocks(4).enumerate().for_each(|(b, block)| {
            let block = if b == 1 { block.ready_zeroed() } else { block.ready() };
            block[0] += 1;
        });
        assert_eq!(v, [8, 7, 7, 7, 1, 0, 0, 0, 8, 7]);
    }

    #[test]
    fn impossible_sizes_are_errors() {
        assert!(zeroed::<f64>(usize::MAX / 4).is_err());
        assert!(matches!(filled(usize::MAX / 16, 0u64, "t"), Err(PoolError::OutOfMemory { .. })));
        assert!(matches!(with_capacity::<u8>(isize::MAX as usize + 1, "t"), Err(PoolError::OutOfMemory { .. })));
        let mut v = vec![1u32; 3];
        assert!(resize(&mut v, usize::MAX / 8, 0, "t").is_err());
        assert_eq!(v, [1, 1, 1]);
        assert_eq!(collect((0..4).map(|i| i * 2), "t").unwrap(), [0, 2, 4, 6]);
    }
}
