//! A cache prefetch hint: ask the CPU for the cache line holding a value without waiting
//! for it.
//!
//! The event loop shows the handler the next event before handling the current one
//! ([`super::Handler::prefetch`]); a handler that knows which random memory that event
//! will read (an SA table entry, a host's or a user's record) fetches it here, so the
//! line arrives while the current event is handled instead of stalling the next one.
//! A hint only: it never faults, writes nothing and changes no result. On targets other
//! than x86_64 it does nothing.

/// Prefetches the cache line holding `r` into every cache level.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults and changes no memory; the
        // pointer comes from a live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(r as *const T as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Prefetches every cache line `r` spans (two for a 48-byte value that straddles a line
/// boundary; values up to 64 bytes span at most two).
#[inline(always)]
pub fn prefetch_span<T>(r: &T) {
    const { assert!(std::mem::size_of::<T>() <= 64) };
    prefetch(r);
    if std::mem::size_of::<T>() > 1 {
        // The value's last byte: the same line unless the value straddles a boundary.
        let last = (r as *const T as *const u8).wrapping_add(std::mem::size_of::<T>() - 1);
        // SAFETY: `last` points into the value `r` refers to.
        prefetch(unsafe { &*last });
    }
}
