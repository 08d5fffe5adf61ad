//! Allocation accounting for INFO's `used_memory`: a global allocator wrapper that counts the
//! bytes in use, per thread and without atomics on the executors.
//!
//! Redis reports what its allocator holds for it (`used_memory`), which RSS cannot tell: freed
//! memory the allocator keeps, and pages never touched, blur it. [`Counting`] wraps the real
//! allocator and adds each allocation's size to a counter of the calling thread (a plain
//! thread-local on executors, one shared atomic for every other thread, which allocate rarely).
//! A block freed on another thread than the one that allocated it (a reply that hopped back)
//! makes one counter go up and another down; only the sum, [`used`], means anything.
//! INFO sums the executors' counters (each core reports its own) and [`elsewhere`].

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// A global allocator that counts the bytes in use on top of `A`.
pub struct Counting<A>(pub A);

thread_local! {
    /// Whether this thread is an executor (counts into [`HERE`]).
    static EXECUTOR: Cell<bool> = const { Cell::new(false) };
    /// Bytes allocated minus bytes freed by this executor thread.
    static HERE: Cell<isize> = const { Cell::new(0) };
}

/// Bytes allocated minus bytes freed by every thread that is not an executor.
static ELSEWHERE: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn count(delta: isize) {
    // Neither thread-local needs a destructor, so `try_with` fails only during a thread's final
    // teardown; that thread's bytes then count as elsewhere.
    let mine = EXECUTOR.try_with(Cell::get).unwrap_or(false)
        && HERE.try_with(|h| h.set(h.get().wrapping_add(delta))).is_ok();
    if !mine {
        ELSEWHERE.fetch_add(delta, Ordering::Relaxed);
    }
}

/// mimalloc's `mi_option_purge_delay` (its v2 numbering, the version the build links).
const MI_OPTION_PURGE_DELAY: i32 = 15;
/// mimalloc's default purge delay, in milliseconds.
const PURGE_DELAY_MS: i64 = 10;

/// While `hold`, mimalloc keeps the pages freed blocks leave instead of returning them to the
/// kernel after its purge delay: loading a dataset frees the loader's batches as fast as it
/// allocates the values, and every page returned is faulted in and zeroed again at once (half
/// of the cores' time in `clear_page_erms`). Back to the default once loaded.
pub fn hold_freed_pages(hold: bool) {
    let delay = if hold { -1 } else { PURGE_DELAY_MS };
    // SAFETY: `mi_option_set` takes an option number and a value; mimalloc reads options
    // atomically, from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay as _);
    }
}

/// mimalloc's `mi_option_allow_thp` (v2 numbering, as above).
const MI_OPTION_ALLOW_THP: i32 = 37;

/// Keeps transparent huge pages out of this process (`disable-thp`, as Redis does): mimalloc
/// asks for them (`MADV_HUGEPAGE`) on every region it maps, and with the kernel's common
/// `defrag madvise` setting each first touch of such a region may stop to compact memory for
/// 2 MB. Loading datasets of 1 and 2 GB took 2-2.5x as long with them (BENCHMARKS.md). The
/// kernel checks the flag at every fault, so memory already mapped is covered too.
///
/// # Errors
/// The kernel refused `PR_SET_THP_DISABLE`.
pub fn disable_transparent_huge_pages() -> Result<(), nix::Error> {
    // SAFETY: as in `hold_freed_pages`.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
    nix::sys::prctl::set_thp_disable(true)
}

/// Sizes fit in `isize` (`Layout` guarantees it).
#[inline]
fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `A` unchanged; counting only reads `Layout` sizes and
// touches thread-locals that need no allocation.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { self.0.dealloc(ptr, layout) };
        count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(signed(new_size) - signed(layout.size()));
        }
        p
    }
}

/// Marks the calling thread as an executor: from now on it counts into its own counter, which
/// only [`here`] on this thread reads.
pub fn mark_executor() {
    EXECUTOR.with(|e| e.set(true));
}

/// This executor's counter (0 on other threads).
#[must_use]
pub fn here() -> isize {
    HERE.with(Cell::get)
}

/// The counter of all threads that are not executors.
#[must_use]
pub fn elsewhere() -> isize {
    ELSEWHERE.load(Ordering::Relaxed)
}

/// Bytes in use, from every executor's [`here`] and [`elsewhere`] (never below 0).
#[must_use]
pub fn used(executors: impl IntoIterator<Item = isize>) -> u64 {
    let sum = executors.into_iter().fold(elsewhere(), isize::wrapping_add);
    u64::try_from(sum).unwrap_or(0)
}
