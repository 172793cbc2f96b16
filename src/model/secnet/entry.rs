//! What the SA table keeps per host pair: its SA state and pending idle check
//! ([`PairEntry`]), and the 48-byte form the table stores it in ([`PackedEntry`]).
//!
//! Contract:
//! - [`PackedEntry::pack`] and [`PackedEntry::unpack`] are inverse for every entry whose
//!   quick-mode SA carried less than 2^56 bytes under its current key (72 PB): always,
//!   since the bytes under a key stay below the byte lifetime, which a scenario caps there
//!   (`limits::MAX_QM_LIFETIME_BYTES`); without a byte lifetime (0), 72 PB under one key
//!   within its time lifetime is out of reach. More would saturate. The proptest below
//!   round-trips arbitrary entries.
//! - Why packed: the table holds every live SA of the campus (1.6 M on the full-traffic
//!   day). `PairState` as Rust lays it out is 56 bytes (each enum pads its tag to 8) and
//!   the entry 64; packed, the tags and flags share one byte of the byte count, and the
//!   table is 56 bytes per slot instead of 72 (a fifth less memory, and fewer bytes per
//!   SA moved by a growth or a shift-back).

use super::super::sa::{MmState, PairState, QmState};
use crate::engine::SimTime;

/// A pair's SA state and its pending idle check, as the IPsec layer works on it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct PairEntry {
    pub state: PairState,
    /// When the pending idle check fires; `SimTime::MAX` when none is scheduled (a check
    /// that far out never fires in a run either).
    idle_check_at: SimTime,
}

impl PairEntry {
    pub const EMPTY: PairEntry = PairEntry { state: PairState::EMPTY, idle_check_at: SimTime::MAX };

    pub fn idle_check(&self) -> Option<SimTime> {
        (self.idle_check_at != SimTime::MAX).then_some(self.idle_check_at)
    }

    pub fn set_idle_check(&mut self, at: Option<SimTime>) {
        self.idle_check_at = at.unwrap_or(SimTime::MAX);
    }
}

/// A [`PairEntry`] in six words: main-mode expiry, the quick mode's three instants, its
/// byte count with the flags in the top byte, and the idle check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct PackedEntry([u64; 6]);

const MM_EXPIRES: usize = 0;
/// `ready` of a negotiating or established SA; `last_used` of a soft one.
const QM_FIRST: usize = 1;
const QM_KEYED: usize = 2;
const QM_LAST_USED: usize = 3;
const BYTES_FLAGS: usize = 4;
const IDLE_CHECK: usize = 5;

const FLAG_SHIFT: u32 = 56;
const BYTES_MASK: u64 = (1 << FLAG_SHIFT) - 1;
/// The quick-mode state's variant, in the flags' low two bits.
const QM_NONE: u64 = 0;
const QM_NEGOTIATING: u64 = 1;
const QM_ESTABLISHED: u64 = 2;
const QM_SOFT: u64 = 3;
const QM_KIND: u64 = 0b11;
const ENCRYPT: u64 = 1 << 2;
const QM_AUTHIP: u64 = 1 << 3;
const MM_ESTABLISHED: u64 = 1 << 4;
const MM_AUTHIP: u64 = 1 << 5;

const _: () = assert!(std::mem::size_of::<PackedEntry>() == 48);

impl Default for PackedEntry {
    fn default() -> Self {
        PackedEntry::pack(&PairEntry::EMPTY)
    }
}

fn bit(on: bool, flag: u64) -> u64 {
    if on { flag } else { 0 }
}

impl PackedEntry {
    pub fn pack(e: &PairEntry) -> PackedEntry {
        let mut w = [0u64; 6];
        let mut flags = 0;
        if let MmState::Established { expires, authip } = e.state.mm {
            w[MM_EXPIRES] = expires.as_nanos();
            flags |= MM_ESTABLISHED | bit(authip, MM_AUTHIP);
        }
        let mut bytes = 0;
        match e.state.qm {
            QmState::None => flags |= QM_NONE,
            QmState::Negotiating { ready, encrypt, authip } => {
                w[QM_FIRST] = ready.as_nanos();
                flags |= QM_NEGOTIATING | bit(encrypt, ENCRYPT) | bit(authip, QM_AUTHIP);
            }
            QmState::Established { ready, keyed, bytes: carried, last_used, encrypt } => {
                w[QM_FIRST] = ready.as_nanos();
                w[QM_KEYED] = keyed.as_nanos();
                w[QM_LAST_USED] = last_used.as_nanos();
                debug_assert!(carried <= BYTES_MASK, "{carried} bytes under one key");
                bytes = carried.min(BYTES_MASK);
                flags |= QM_ESTABLISHED | bit(encrypt, ENCRYPT);
            }
            QmState::Soft { last_used } => {
                w[QM_FIRST] = last_used.as_nanos();
                flags |= QM_SOFT;
            }
        }
        w[BYTES_FLAGS] = bytes | flags << FLAG_SHIFT;
        w[IDLE_CHECK] = e.idle_check_at.as_nanos();
        PackedEntry(w)
    }

    pub fn unpack(&self) -> PairEntry {
        PairEntry { state: self.state(), idle_check_at: SimTime::from_nanos(self.0[IDLE_CHECK]) }
    }

    /// The pair's SA state (without the idle check).
    pub fn state(&self) -> PairState {
        let w = &self.0;
        let flags = w[BYTES_FLAGS] >> FLAG_SHIFT;
        let at = |i: usize| SimTime::from_nanos(w[i]);
        let mm = if flags & MM_ESTABLISHED != 0 {
            MmState::Established { expires: at(MM_EXPIRES), authip: flags & MM_AUTHIP != 0 }
        } else {
            MmState::None
        };
        let encrypt = flags & ENCRYPT != 0;
        let qm = match flags & QM_KIND {
            QM_NONE => QmState::None,
            QM_NEGOTIATING => QmState::Negotiating { ready: at(QM_FIRST), encrypt, authip: flags & QM_AUTHIP != 0 },
            QM_ESTABLISHED => QmState::Established {
                ready: at(QM_FIRST),
                keyed: at(QM_KEYED),
                bytes: w[BYTES_FLAGS] & BYTES_MASK,
                last_used: at(QM_LAST_USED),
                encrypt,
            },
            _ => QmState::Soft { last_used: at(QM_FIRST) },
        };
        PairState { mm, qm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn time() -> impl Strategy<Value = SimTime> {
        prop_oneof![Just(SimTime::ZERO), Just(SimTime::MAX), any::<u64>().prop_map(SimTime::from_nanos)]
    }

    fn mm() -> impl Strategy<Value = MmState> {
        prop_oneof![
            Just(MmState::None),
            (time(), any::<bool>()).prop_map(|(expires, authip)| MmState::Established { expires, authip }),
        ]
    }

    fn qm() -> impl Strategy<Value = QmState> {
        prop_oneof![
            Just(QmState::None),
            (time(), any::<bool>(), any::<bool>()).prop_map(|(ready, encrypt, authip)| QmState::Negotiating {
                ready,
                encrypt,
                authip
            }),
            (time(), time(), 0..=BYTES_MASK, time(), any::<bool>()).prop_map(
                |(ready, keyed, bytes, last_used, encrypt)| QmState::Established {
                    ready,
                    keyed,
                    bytes,
                    last_used,
                    encrypt
                }
            ),
            time().prop_map(|last_used| QmState::Soft { last_used }),
        ]
    }

    proptest! {
        #[test]
        fn packing_round_trips(mm in mm(), qm in qm(), check in proptest::option::of(time())) {
            let mut e = PairEntry { state: PairState { mm, qm }, idle_check_at: SimTime::MAX };
            e.set_idle_check(check.filter(|&t| t != SimTime::MAX));
            let packed = PackedEntry::pack(&e);
            prop_assert_eq!(packed.unpack(), e);
            prop_assert_eq!(packed.state(), e.state);
        }
    }

    /// (Release builds only: debug builds assert that this never happens.)
    #[test]
    #[cfg(not(debug_assertions))]
    fn byte_counts_beyond_56_bits_saturate_without_touching_the_flags() {
        let state = PairState {
            mm: MmState::Established { expires: SimTime::from_nanos(7), authip: true },
            qm: QmState::Established {
                ready: SimTime::from_nanos(1),
                keyed: SimTime::from_nanos(2),
                bytes: u64::MAX,
                last_used: SimTime::from_nanos(3),
                encrypt: true,
            },
        };
        let back = PackedEntry::pack(&PairEntry { state, idle_check_at: SimTime::MAX }).unpack();
        let QmState::Established { bytes, encrypt, .. } = back.state.qm else { panic!("{back:?}") };
        assert_eq!((bytes, encrypt, back.state.mm), (BYTES_MASK, true, state.mm));
    }

    #[test]
    fn the_default_is_the_empty_entry() {
        assert_eq!(PackedEntry::default().unpack(), PairEntry::EMPTY);
        assert_eq!(PackedEntry::default().state(), PairState::EMPTY);
    }
}
