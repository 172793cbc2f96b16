//! The binary's memory allocator: the system allocator, with large blocks marked for
//! transparent huge pages.
//!
//! A campus-sized run keeps hundreds of MB in a few large blocks (the SA table, the event
//! queue's buckets, per-host arrays) and touches them at random, one host or
//! SA pair per event. With 4 KiB pages nearly every such touch also misses the TLB; with
//! 2 MiB pages the page tables of the whole working set fit in it. Linux gives huge pages
//! to a region only when asked (`/sys/kernel/mm/transparent_hugepage/enabled` is usually
//! `madvise`), so blocks of at least [`THRESHOLD`] bytes are advised with
//! `MADV_HUGEPAGE` when they are allocated or grown. Small blocks are left alone: a huge
//! page holding a few small objects would only waste memory.
//!
//! Nothing here changes what a run computes; the advice is a hint the kernel may ignore
//! (no THP support, or `never`), and it is not given on other systems.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks this large or larger are advised.
pub const THRESHOLD: usize = 4 << 20;

/// The system allocator, advising large blocks for huge pages.
pub struct HugePageAlloc;

// SAFETY: every call is forwarded to `System` unchanged; `advise` only passes the kernel a
// hint about whole 2 MiB-aligned pages inside the block just returned.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// Marks the 2 MiB pages wholly inside `[p, p + len)` for huge pages.
#[inline]
fn advise(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    if len >= THRESHOLD && !p.is_null() {
        const HUGE: usize = 2 << 20;
        let start = (p as usize).div_ceil(HUGE) * HUGE;
        let end = (p as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside a live allocation of ours; MADV_HUGEPAGE only
            // changes how the kernel backs it, never its contents. A failure (e.g. no THP
            // support) leaves ordinary pages, which is fine.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}
