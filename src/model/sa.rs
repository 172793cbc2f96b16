//! Security associations between two hosts, as a pure state machine: IKEv1 main mode
//! (6 messages) and quick mode (3), AuthIP (4 + 2, optional extended mode 4) between
//! Vista/Server 2008 peers, main-mode lifetime, quick-mode lifetime by time and by bytes,
//! the 5-minute quick-mode idle timeout, rekeys, soft SAs (remembered fallback to clear)
//! and negotiation failures [DOMAIN 3, WP Table 1, RFC 2409].
//!
//! Contract:
//! - [`step`] maps (state, event, now) to the next state and the counted [`Effects`], or to
//!   [`Illegal`]; it has no side effects and draws nothing. The simulation drives it.
//! - A quick-mode SA never carries traffic past its lifetime: traffic reaching beyond
//!   `keyed + lifetime` (or the byte limit) rekeys at the boundary, counted as a quick-mode
//!   negotiation, plus a main mode when the main-mode SA has expired by then.
//! - A quick-mode or soft SA is deleted by `Expire` once `last_used + idle <= now`; the
//!   caller schedules `Expire` at that instant so no SA survives its idle time.
//! - Main-mode SAs are not idled out: they live for their lifetime (which is why the paper
//!   cut it from 8 h to 2 h to save memory on busy servers).

use crate::engine::{SimDuration, SimTime};

/// SA lifetimes and costs.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SaParams {
    pub main_mode_lifetime: SimDuration,
    pub quick_mode_lifetime: SimDuration,
    pub quick_mode_lifetime_bytes: u64,
    pub quick_mode_idle: SimDuration,
    /// CPU time of one Diffie-Hellman computation (each side of an IKEv1 main mode).
    pub dh_cpu: SimDuration,
    /// AuthIP extended mode (user or health authentication) after main mode.
    pub authip_extended_mode: bool,
}

impl SaParams {
    /// Windows defaults except the campus's 2-hour main mode [WP Table 1].
    pub fn campus() -> SaParams {
        SaParams {
            main_mode_lifetime: SimDuration::from_hours(2),
            quick_mode_lifetime: SimDuration::from_hours(1),
            quick_mode_lifetime_bytes: 100_000_000,
            quick_mode_idle: SimDuration::from_mins(5),
            dh_cpu: SimDuration::from_millis(4),
            authip_extended_mode: false,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MmState {
    None,
    Established { expires: SimTime, authip: bool },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QmState {
    None,
    /// IKE under way; completes at `ready`.
    Negotiating {
        ready: SimTime,
        encrypt: bool,
        authip: bool,
    },
    /// A quick-mode SA pair, usable from `ready`; current key since `keyed`, `bytes` carried
    /// under it.
    Established {
        ready: SimTime,
        keyed: SimTime,
        bytes: u64,
        last_used: SimTime,
        encrypt: bool,
    },
    /// Fallback to clear remembered: later connections go clear at once.
    Soft {
        last_used: SimTime,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PairState {
    pub mm: MmState,
    pub qm: QmState,
}

impl PairState {
    pub const EMPTY: PairState = PairState { mm: MmState::None, qm: QmState::None };

    pub fn is_empty(&self) -> bool {
        *self == PairState::EMPTY
    }

    /// The main-mode SA is alive at `now`.
    pub fn mm_alive(&self, now: SimTime) -> bool {
        matches!(self.mm, MmState::Established { expires, .. } if now < expires)
    }

    /// When the quick-mode or soft SA idles out, if one exists.
    pub fn idle_deadline(&self, p: &SaParams) -> Option<SimTime> {
        match self.qm {
            QmState::Established { last_used, .. } | QmState::Soft { last_used } => Some(last_used + p.quick_mode_idle),
            _ => None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SaEvent {
    /// Start IKE for a new connection: a main mode unless one is alive, then a quick mode.
    Negotiate { ready: SimTime, encrypt: bool, authip: bool },
    /// The negotiation under way completed.
    Succeeded,
    /// It failed; `fallback` when the initiator falls back to clear (soft SA).
    Failed { fallback: bool },
    /// A connection uses the SA (or soft SA) from `now` until `until`, carrying `bytes`.
    Traffic { until: SimTime, bytes: u64 },
    /// Idle check at `now`.
    Expire,
    /// Main-mode lifetime check at `now`.
    MmExpire,
    /// Policy changed: every SA of the pair is deleted.
    Flush,
}

/// What a transition did, as counts (all zero for a no-op).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub main_modes: u32,
    pub quick_modes: u32,
    /// Quick modes that were rekeys of a live SA (included in `quick_modes`).
    pub rekeys: u32,
    pub failures: u32,
    /// Change in live main-mode SAs, quick-mode SA pairs and soft SAs.
    pub mm_delta: i32,
    pub qm_delta: i32,
    pub soft_delta: i32,
    /// A main-mode SA was (re)established and expires then: schedule its `MmExpire`.
    pub mm_expires: Option<SimTime>,
}

/// A transition the machine does not have.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Illegal {
    pub state: PairState,
    pub event: SaEvent,
}

impl std::fmt::Display for Illegal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "illegal SA transition: {:?} on {:?}", self.event, self.state)
    }
}

/// The next state after `event` at `now`.
pub fn step(state: PairState, event: SaEvent, now: SimTime, p: &SaParams) -> Result<(PairState, Effects), Illegal> {
    let illegal = Err(Illegal { state, event });
    let mut fx = Effects::default();
    let mut next = state;
    match (state.qm, event) {
        // Every SA can be flushed, whatever its state.
        (_, SaEvent::Flush) => {
            if let MmState::Established { .. } = state.mm {
                fx.mm_delta = -1;
            }
            match state.qm {
                QmState::Established { .. } => fx.qm_delta = -1,
                QmState::Soft { .. } => fx.soft_delta = -1,
                _ => {}
            }
            next = PairState::EMPTY;
        }
        (_, SaEvent::MmExpire) => match state.mm {
            MmState::Established { expires, .. } if expires <= now => {
                next.mm = MmState::None;
                fx.mm_delta = -1;
            }
            // Re-established since the check was scheduled: nothing to do.
            MmState::Established { .. } => {}
            MmState::None => return illegal,
        },
        // A new negotiation only where no usable SA exists.
        (QmState::None, SaEvent::Negotiate { ready, encrypt, authip }) => {
            next.qm = QmState::Negotiating { ready, encrypt, authip };
        }
        (QmState::Established { last_used, .. }, SaEvent::Negotiate { ready, encrypt, authip })
        | (QmState::Soft { last_used }, SaEvent::Negotiate { ready, encrypt, authip })
            if last_used + p.quick_mode_idle <= now =>
        {
            // The old SA idled out unnoticed (no check ran yet): delete it, then negotiate.
            match state.qm {
                QmState::Established { .. } => fx.qm_delta = -1,
                _ => fx.soft_delta = -1,
            }
            next.qm = QmState::Negotiating { ready, encrypt, authip };
        }
        (QmState::Negotiating { ready, encrypt, authip }, SaEvent::Succeeded) => {
            if !state.mm_alive(now) {
                fx.main_modes = 1;
                let expires = ready + p.main_mode_lifetime;
                if state.mm == MmState::None {
                    fx.mm_delta = 1;
                }
                next.mm = MmState::Established { expires, authip };
                fx.mm_expires = Some(expires);
            }
            fx.quick_modes = 1;
            fx.qm_delta = 1;
            next.qm = QmState::Established { ready, keyed: ready, bytes: 0, last_used: ready, encrypt };
        }
        (QmState::Negotiating { ready, .. }, SaEvent::Failed { fallback }) => {
            fx.failures = 1;
            if fallback {
                fx.soft_delta = 1;
                next.qm = QmState::Soft { last_used: ready.max(now) };
            } else {
                next.qm = QmState::None;
            }
        }
        (QmState::Established { ready, keyed, bytes, last_used, encrypt }, SaEvent::Traffic { until, bytes: b }) => {
            if last_used + p.quick_mode_idle <= now {
                return illegal;
            }
            let mut keyed = keyed;
            let mut carried = bytes;
            let mut mm = state.mm;
            // Time-based rekeys at each lifetime boundary the traffic reaches.
            while keyed + p.quick_mode_lifetime <= until {
                keyed += p.quick_mode_lifetime;
                carried = 0;
                fx.quick_modes += 1;
                fx.rekeys += 1;
                let alive = matches!(mm, MmState::Established { expires, .. } if keyed < expires);
                if !alive {
                    let authip = matches!(mm, MmState::Established { authip: true, .. });
                    let expires = keyed + p.main_mode_lifetime;
                    if mm == MmState::None {
                        fx.mm_delta += 1;
                    }
                    mm = MmState::Established { expires, authip };
                    fx.main_modes += 1;
                    fx.mm_expires = Some(expires);
                }
            }
            // Byte-based rekeys.
            carried += b;
            if let Some(n) = carried.checked_div(p.quick_mode_lifetime_bytes) {
                fx.quick_modes += n as u32;
                fx.rekeys += n as u32;
                carried %= p.quick_mode_lifetime_bytes;
            }
            next.mm = mm;
            next.qm = QmState::Established { ready, keyed, bytes: carried, last_used: last_used.max(until), encrypt };
        }
        (QmState::Soft { last_used }, SaEvent::Traffic { until, .. }) => {
            if last_used + p.quick_mode_idle <= now {
                return illegal;
            }
            next.qm = QmState::Soft { last_used: last_used.max(until) };
        }
        (QmState::Established { last_used, .. }, SaEvent::Expire) => {
            if last_used + p.quick_mode_idle <= now {
                next.qm = QmState::None;
                fx.qm_delta = -1;
            }
        }
        (QmState::Soft { last_used }, SaEvent::Expire) => {
            if last_used + p.quick_mode_idle <= now {
                next.qm = QmState::None;
                fx.soft_delta = -1;
            }
        }
        _ => return illegal,
    }
    Ok((next, fx))
}

/// Time from the first IKE message to a usable SA: message flights times the one-way
/// latency, plus both sides' Diffie-Hellman for an IKEv1 main mode (AuthIP main mode does
/// no Diffie-Hellman by default [DOMAIN 3]).
pub fn negotiation_latency(one_way: SimDuration, new_main_mode: bool, authip: bool, p: &SaParams) -> SimDuration {
    let messages: u64 = match (new_main_mode, authip) {
        (true, false) => 6 + 3,
        (false, false) => 3,
        (true, true) => 4 + 2 + if p.authip_extended_mode { 4 } else { 0 },
        (false, true) => 2,
    };
    let cpu = if new_main_mode && !authip { p.dh_cpu.saturating_mul(2) } else { SimDuration::ZERO };
    one_way.saturating_mul(messages) + cpu
}

/// Main-mode messages of a negotiation (IKEv1 6, AuthIP 4, plus extended mode 4).
pub fn main_mode_messages(authip: bool, extended: bool) -> u32 {
    match (authip, extended) {
        (false, _) => 6,
        (true, false) => 4,
        (true, true) => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_messages_and_dh() {
        let p = SaParams::campus();
        let ow = SimDuration::from_millis(10);
        assert_eq!(negotiation_latency(ow, true, false, &p), SimDuration::from_millis(90 + 8));
        assert_eq!(negotiation_latency(ow, false, false, &p), SimDuration::from_millis(30));
        assert_eq!(negotiation_latency(ow, true, true, &p), SimDuration::from_millis(60));
        assert_eq!(negotiation_latency(ow, false, true, &p), SimDuration::from_millis(20));
        let em = SaParams { authip_extended_mode: true, ..p };
        assert_eq!(negotiation_latency(ow, true, true, &em), SimDuration::from_millis(100));
    }
}
