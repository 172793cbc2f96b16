//! Memory and time budgets for hostile-input cases.
//!
//! - [`Counting`] is the test binary's global allocator: the system allocator plus a count of
//!   the bytes each thread holds. A thread that [`arm`]s a budget gets its peak back from
//!   [`disarm`], and an allocation that would take it past the hard cap is refused (the
//!   process aborts with "memory allocation of N bytes failed"), so an input that asks for
//!   10^12 hosts fails the fuzzer instead of the machine. Threads that never arm (every
//!   other test) are counted but never refused.
//! - [`Watchdog`] aborts the process when one case runs far past its time allowance (a
//!   hang), after saying which input file was running.
//!
//! Counts are per thread: memory freed by another thread than the one that allocated it
//! makes the counts drift, which is harmless here (a case runs on one thread, and the
//! models it calls do not hand allocations across threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

pub struct Counting;

thread_local! {
    /// Bytes held by this thread (may go negative when other threads free our blocks).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Hard cap while armed; `isize::MAX` when not.
    static CAP: Cell<isize> = const { Cell::new(isize::MAX) };
    /// What this thread held when it armed.
    static BASE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `n` bytes to this thread's count unless that passes its cap.
fn charge(n: usize) -> bool {
    let n = n as isize;
    // `try_with`: the counters have no destructor, but stay safe during thread teardown.
    LIVE.try_with(|live| {
        let now = live.get().saturating_add(n);
        if now > CAP.try_with(Cell::get).unwrap_or(isize::MAX) {
            return false;
        }
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        true
    })
    .unwrap_or(true)
}

fn refund(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n as isize)));
}

// SAFETY: every method forwards to `System` with the caller's layout unchanged; the
// bookkeeping only reads and writes thread-local integers and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !charge(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            refund(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !charge(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            refund(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        refund(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !charge(new_size - old) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                refund(new_size - old);
            }
        } else if new_size < old {
            refund(old - new_size);
        }
        p
    }
}

/// Starts counting this thread's peak from what it holds now, and refuses allocations
/// that would take it more than `cap_bytes` above that.
pub fn arm(cap_bytes: usize) {
    let live = LIVE.with(Cell::get);
    BASE.with(|b| b.set(live));
    PEAK.with(|p| p.set(live));
    CAP.with(|c| c.set(live.saturating_add(cap_bytes as isize)));
}

/// Stops refusing; returns the most this thread held since [`arm`], above what it held then.
pub fn disarm() -> usize {
    CAP.with(|c| c.set(isize::MAX));
    let peak = PEAK.with(Cell::get);
    let base = BASE.with(Cell::get);
    peak.saturating_sub(base).max(0) as usize
}

/// Whether this thread is running a case (has armed a budget).
fn armed() -> bool {
    CAP.try_with(|c| c.get() != isize::MAX).unwrap_or(false)
}

/// Installs (once) a panic hook that prints one line for a panic inside a case (the case
/// fails and is reported with its input anyway, and shrinking repeats it many times) and
/// leaves every other panic to the previous hook.
pub fn quiet_panics_in_cases() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if armed() {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| info.payload().downcast_ref::<&str>().copied())
                    .unwrap_or("");
                eprintln!("hostile: a case panicked at {at}: {msg}");
            } else {
                previous(info);
            }
        }));
    });
}

/// Aborts the process when a case runs longer than its allowance.
///
/// Cases are tracked per thread: the scenario and sweep campaigns run at once on the test
/// harness's threads, and with one shared slot a sweep case ending cleared the clock of a
/// scenario case still running, so a hang went unnoticed for as long as it lasted.
pub struct Watchdog {
    /// Per thread running a case: when it started, its allowance and its input.
    running: Mutex<HashMap<ThreadId, (Instant, Duration, PathBuf)>>,
}

impl Watchdog {
    /// A watchdog thread that checks once a second.
    pub fn start() -> &'static Watchdog {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog { running: Mutex::new(HashMap::new()) }));
        std::thread::Builder::new()
            .name("hostile-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Ok(running) = dog.running.lock() else { continue };
                    for (started, allowance, what) in running.values() {
                        let ran = started.elapsed();
                        if ran > *allowance {
                            eprintln!(
                                "hostile: HANG: a case ran {} s, past its allowance; its input: {}",
                                ran.as_secs(),
                                what.display()
                            );
                            std::process::abort();
                        }
                    }
                }
            })
            .expect("spawn the watchdog");
        dog
    }

    /// A case reading `input` starts on this thread and may run for `allowance`.
    pub fn begin(&self, input: PathBuf, allowance: Duration) {
        if let Ok(mut running) = self.running.lock() {
            running.insert(std::thread::current().id(), (Instant::now(), allowance, input));
        }
    }

    /// This thread's case ended.
    pub fn end(&self) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&std::thread::current().id());
        }
    }
}
