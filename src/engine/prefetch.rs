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
    prefetch_address(r as *const T as *const u8);
}

/// Prefetches every cache line `r` spans (a 48-byte value straddling a line boundary
/// spans two, an 88-byte one up to three).
#[inline(always)]
pub fn prefetch_span<T>(r: &T) {
    let start = r as *const T as *const u8;
    let offset = start as usize % LINE;
    let lines = lines_spanned(start as usize, std::mem::size_of::<T>());
    prefetch_address(start);
    for i in 1..lines {
        // The start of the i-th line the value spans: a byte of the value.
        prefetch_address(start.wrapping_add(i * LINE - offset));
    }
}

const LINE: usize = 64;

/// Cache lines that `size` bytes from `addr` touch (at least one).
#[inline(always)]
fn lines_spanned(addr: usize, size: usize) -> usize {
    ((addr % LINE) + size.max(1)).div_ceil(LINE)
}

#[inline(always)]
fn prefetch_address(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults and changes no memory; callers
        // pass addresses inside live values anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_spans_the_lines_its_bytes_fall_in() {
        assert_eq!(lines_spanned(0, 48), 1);
        assert_eq!(lines_spanned(16, 48), 1, "bytes 16..64");
        assert_eq!(lines_spanned(48, 48), 2, "bytes 48..96");
        assert_eq!(lines_spanned(64 + 56, 88), 3, "bytes 56..144 of a line pair and a third");
        assert_eq!(lines_spanned(128, 128), 2);
        assert_eq!(lines_spanned(5, 0), 1, "a zero-sized value still names its line");
        // Prefetching is a hint: any value, any alignment, no effect.
        let v = [7u8; 200];
        prefetch_span(&v);
        prefetch_span(&v[3]);
        assert_eq!(v[199], 7);
    }
}
