//! A cache prefetch hint: ask the CPU for the cache line holding a value without waiting
//! for it.
//!
//! The event loop shows the handler the next event before handling the current one
//! ([`super::Handler::prefetch`]), and the one a few places further on
//! ([`super::Handler::prefetch_ahead`]); a handler that knows which random memory those
//! events will read (an SA table entry, a host's or a user's record, the index that leads
//! to one) fetches it here, so the lines arrive while the current event is handled
//! instead of stalling the later ones.
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
    for at in line_addresses(start as usize, std::mem::size_of::<T>()) {
        prefetch_address(start.wrapping_add(at - start as usize));
    }
}

const LINE: usize = 64;

/// One address in each cache line that `size` bytes from `addr` touch, all of them bytes
/// of the value: `addr` itself, then the start of each further line.
#[inline(always)]
fn line_addresses(addr: usize, size: usize) -> impl Iterator<Item = usize> {
    let first_line = addr / LINE;
    let last_line = (addr + size.max(1) - 1) / LINE;
    std::iter::once(addr).chain((first_line + 1..=last_line).map(|l| l * LINE))
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

    fn lines(addr: usize, size: usize) -> Vec<usize> {
        line_addresses(addr, size).collect()
    }

    #[test]
    fn a_value_is_fetched_by_one_address_in_each_line_it_spans() {
        assert_eq!(lines(0, 48), [0]);
        assert_eq!(lines(16, 48), [16], "bytes 16..64: one line");
        assert_eq!(lines(48, 48), [48, 64], "bytes 48..96");
        assert_eq!(lines(120, 88), [120, 128, 192], "bytes 120..208: three lines");
        assert_eq!(lines(128, 128), [128, 192]);
        assert_eq!(lines(5, 0), [5], "a zero-sized value still names its line");
        // Every address is a byte of the value.
        for addr in 0..130 {
            for size in 1..140 {
                assert!(lines(addr, size).iter().all(|&a| a >= addr && a < addr + size), "{addr} {size}");
                assert_eq!(lines(addr, size).len(), (addr + size - 1) / LINE - addr / LINE + 1);
            }
        }
    }
}
