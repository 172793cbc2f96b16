//! The IPsec layer: the SA state machine's transition table, the connection-outcome matrix
//! (initiator OS x responder mode x trust), invariants of the SA table under random
//! connection sequences (proptest), the linter, and an SA-granularity day of the reduced
//! campus against the white paper's expectations.

use std::sync::OnceLock;

use domiso::engine::queue::EventQueue;
use domiso::engine::{SimDuration, SimTime};
use domiso::model::campus::Endpoint;
use domiso::model::ids::HostId;
use domiso::model::kinds::{ClientCategory, HostKind, Os};
use domiso::model::lint::{FindingKind, Severity};
use domiso::model::policy::{
    ActionKind, AuthMethod, BlockReason, ClearReason, Decision, Fallback, Mode, Service, Side, decide,
};
use domiso::model::sa::{self, Effects, MmState, PairState, QmState, SaEvent, SaParams};
use domiso::model::secnet::{Outcome, SaTimer, SecNet};
use domiso::run;
use domiso::scenario::build;
use proptest::prelude::*;

use crate::common::{domiso, reduced, run_into};

// ---------------------------------------------------------------------------------------
// SA state machine: every (state, event) pair, legal or not.
// ---------------------------------------------------------------------------------------

const T0: SimTime = SimTime::from_nanos(3_600_000_000_000); // 01:00

fn t(secs: u64) -> SimTime {
    T0 + SimDuration::from_secs(secs)
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum QmKind {
    None,
    Negotiating,
    EstablishedAlive,
    EstablishedIdle,
    SoftAlive,
    SoftIdle,
}

fn state(qm: QmKind, mm: bool) -> PairState {
    let p = SaParams::campus();
    let qm = match qm {
        QmKind::None => QmState::None,
        QmKind::Negotiating => QmState::Negotiating { ready: t(1), encrypt: false, authip: false },
        QmKind::EstablishedAlive => {
            QmState::Established { ready: T0, keyed: T0, bytes: 0, last_used: t(100), encrypt: false }
        }
        QmKind::EstablishedIdle => QmState::Established {
            ready: T0,
            keyed: T0,
            bytes: 0,
            last_used: t(100) - p.quick_mode_idle - SimDuration::from_secs(200),
            encrypt: false,
        },
        QmKind::SoftAlive => QmState::Soft { last_used: t(100) },
        QmKind::SoftIdle => QmState::Soft { last_used: t(100) - p.quick_mode_idle - SimDuration::from_secs(1) },
    };
    PairState { mm: if mm { MmState::Established { expires: t(7000), authip: false } } else { MmState::None }, qm }
}

#[test]
fn sa_transition_table_covers_every_state_and_event() {
    use QmKind::*;
    let p = SaParams::campus();
    let now = t(100); // EstablishedIdle / SoftIdle are past their idle time here
    let negotiate = SaEvent::Negotiate { ready: t(101), encrypt: false, authip: false };
    let traffic = SaEvent::Traffic { until: t(160), bytes: 1000 };
    // (state, event) -> Some(resulting qm kind) for legal, None for illegal.
    let table: &[(QmKind, SaEvent, Option<&str>)] = &[
        (None, negotiate, Some("negotiating")),
        (None, SaEvent::Succeeded, Option::None),
        (None, SaEvent::Failed { fallback: true }, Option::None),
        (None, traffic, Option::None),
        (None, SaEvent::Expire, Option::None),
        (None, SaEvent::Flush, Some("none")),
        (Negotiating, negotiate, Option::None),
        (Negotiating, SaEvent::Succeeded, Some("established")),
        (Negotiating, SaEvent::Failed { fallback: true }, Some("soft")),
        (Negotiating, SaEvent::Failed { fallback: false }, Some("none")),
        (Negotiating, traffic, Option::None),
        (Negotiating, SaEvent::Expire, Option::None),
        (Negotiating, SaEvent::Flush, Some("none")),
        (EstablishedAlive, negotiate, Option::None),
        (EstablishedAlive, SaEvent::Succeeded, Option::None),
        (EstablishedAlive, SaEvent::Failed { fallback: true }, Option::None),
        (EstablishedAlive, traffic, Some("established")),
        (EstablishedAlive, SaEvent::Expire, Some("established")),
        (EstablishedAlive, SaEvent::Flush, Some("none")),
        (EstablishedIdle, negotiate, Some("negotiating")),
        (EstablishedIdle, SaEvent::Succeeded, Option::None),
        (EstablishedIdle, traffic, Option::None),
        (EstablishedIdle, SaEvent::Expire, Some("none")),
        (EstablishedIdle, SaEvent::Flush, Some("none")),
        (SoftAlive, negotiate, Option::None),
        (SoftAlive, SaEvent::Succeeded, Option::None),
        (SoftAlive, SaEvent::Failed { fallback: true }, Option::None),
        (SoftAlive, traffic, Some("soft")),
        (SoftAlive, SaEvent::Expire, Some("soft")),
        (SoftAlive, SaEvent::Flush, Some("none")),
        (SoftIdle, negotiate, Some("negotiating")),
        (SoftIdle, traffic, Option::None),
        (SoftIdle, SaEvent::Expire, Some("none")),
        (SoftIdle, SaEvent::Flush, Some("none")),
    ];
    let kind = |q: &QmState| match q {
        QmState::None => "none",
        QmState::Negotiating { .. } => "negotiating",
        QmState::Established { .. } => "established",
        QmState::Soft { .. } => "soft",
    };
    for &(from, event, expect) in table {
        for mm in [false, true] {
            let got = sa::step(state(from, mm), event, now, &p);
            match (expect, got) {
                (Option::None, Err(_)) => {}
                (Some(k), Ok((next, _))) => assert_eq!(kind(&next.qm), k, "{from:?} mm={mm} on {event:?}"),
                (e, g) => panic!("{from:?} mm={mm} on {event:?}: expected {e:?}, got {g:?}"),
            }
        }
    }
    // Main-mode expiry: illegal without a main mode, a no-op before its time, a deletion at it.
    assert!(sa::step(state(None, false), SaEvent::MmExpire, now, &p).is_err());
    let (next, fx) = sa::step(state(None, true), SaEvent::MmExpire, now, &p).unwrap();
    assert_eq!(next.mm, state(None, true).mm, "not yet expired: no-op");
    assert_eq!(fx, Effects::default());
    let (next, fx) = sa::step(state(SoftAlive, true), SaEvent::MmExpire, t(7000), &p).unwrap();
    assert_eq!(next.mm, MmState::None);
    assert_eq!(fx.mm_delta, -1);
}

#[test]
fn sa_effects_count_negotiations_rekeys_and_lifetimes() {
    let p = SaParams::campus();
    // A new pair: main mode + quick mode, one live SA of each.
    let (s, _) =
        sa::step(PairState::EMPTY, SaEvent::Negotiate { ready: t(1), encrypt: false, authip: false }, T0, &p).unwrap();
    let (s, fx) = sa::step(s, SaEvent::Succeeded, T0, &p).unwrap();
    assert_eq!((fx.main_modes, fx.quick_modes, fx.mm_delta, fx.qm_delta), (1, 1, 1, 1));
    assert_eq!(fx.mm_expires, Some(t(1) + p.main_mode_lifetime));
    // Traffic for 2.5 hours: two time rekeys (at 1 h and 2 h); the main mode (2 h) has
    // expired by the second, so it is renegotiated too.
    let (s2, fx) =
        sa::step(s, SaEvent::Traffic { until: t(1) + SimDuration::from_mins(150), bytes: 10 }, t(2), &p).unwrap();
    assert_eq!((fx.quick_modes, fx.rekeys, fx.main_modes), (2, 2, 1));
    // 250,000 KB in one go: two byte rekeys at 100,000 KB each.
    let (_, fx) = sa::step(s, SaEvent::Traffic { until: t(60), bytes: 250_000 * 1000 }, t(2), &p).unwrap();
    assert_eq!((fx.quick_modes, fx.rekeys), (2, 2));
    // Idle: alive at 4:59 after last use, gone at 5:00.
    let QmState::Established { last_used, .. } = s2.qm else { panic!() };
    let (alive, fx) =
        sa::step(s2, SaEvent::Expire, last_used + p.quick_mode_idle - SimDuration::from_secs(1), &p).unwrap();
    assert!(matches!(alive.qm, QmState::Established { .. }) && fx.qm_delta == 0);
    let (gone, fx) = sa::step(s2, SaEvent::Expire, last_used + p.quick_mode_idle, &p).unwrap();
    assert_eq!((gone.qm, fx.qm_delta), (QmState::None, -1));
    // A reused main mode: a second quick mode needs no main mode.
    let (s3, _) = sa::step(
        gone,
        SaEvent::Negotiate { ready: last_used + SimDuration::from_mins(6), encrypt: false, authip: false },
        last_used + SimDuration::from_mins(6),
        &p,
    )
    .unwrap();
    let (_, fx) = sa::step(s3, SaEvent::Succeeded, last_used + SimDuration::from_mins(6), &p).unwrap();
    assert_eq!((fx.main_modes, fx.quick_modes), (0, 1), "main mode still alive within its 2 h");
}

// ---------------------------------------------------------------------------------------
// The outcome matrix: initiator OS x responder mode x trust.
// ---------------------------------------------------------------------------------------

const KERB: &[AuthMethod] = &[AuthMethod::Kerberos];
const KERB_CERT: &[AuthMethod] = &[AuthMethod::Kerberos, AuthMethod::Certificate];
const CERT: &[AuthMethod] = &[AuthMethod::Certificate];

fn win(os: Os, update: bool, action: Option<ActionKind>, kerberos: bool) -> Side<'static> {
    Side { os, simple_policy: update, action, rule_auth: KERB_CERT, kerberos, certificate: false, psk: &[] }
}

fn neg(m: Mode) -> Option<ActionKind> {
    Some(ActionKind::Negotiate(m))
}

#[test]
fn connection_outcome_matrix() {
    use Mode::*;
    let fb = Fallback { legacy: SimDuration::from_secs(3), simple_policy: SimDuration::from_millis(500) };
    let ms = SimDuration::from_millis;
    let clear = |reason, delay| Decision::Clear { reason, delay };
    let blocked = |reason, delay| Decision::Blocked { reason, delay };
    let nego = |encrypt, authip| Decision::Negotiate { encrypt, authip };
    let none = |os| Side::clear(os);
    let cert_client = Side {
        os: Os::XpSp2,
        simple_policy: true,
        action: neg(Request),
        rule_auth: CERT,
        kerberos: false,
        certificate: true,
        psk: &[],
    };
    let cert_server = Side { certificate: true, ..win(Os::Server2003Sp2, true, neg(SecureRequest), true) };
    let kerb_only_server =
        Side { rule_auth: KERB, certificate: true, ..win(Os::Server2003Sp2, true, neg(SecureRequest), true) };
    #[rustfmt::skip]
    let rows: Vec<(&str, Side, Side, bool, Decision)> = vec![
        // Trusted managed peers negotiate; Vista/2008 pairs speak AuthIP.
        ("xp -> 2003 SR", win(Os::XpSp2, false, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(SecureRequest), true), true, nego(false, false)),
        ("vista -> 2008 SR", win(Os::Vista, false, neg(SecureRequest), true), win(Os::Server2008, false, neg(SecureRequest), true), true, nego(false, true)),
        ("vista -> 2003 SR", win(Os::Vista, false, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(SecureRequest), true), true, nego(false, false)),
        ("xp -> 2003 RE", win(Os::XpSp2, true, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(RequireEncryption), true), true, nego(true, false)),
        ("2003 boundary -> xp", win(Os::Server2003Sp1, true, neg(Request), true), win(Os::XpSp2, true, neg(SecureRequest), true), true, nego(false, false)),
        // Initiators asking a host without IPsec: the fallback wait by OS and update level.
        ("win2000 -> no ipsec", win(Os::Win2000, false, neg(SecureRequest), true), none(Os::MacOsX), true, clear(ClearReason::NoIkeResponse, ms(3000))),
        ("xp-sp1 -> no ipsec", win(Os::XpSp1, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(3000))),
        ("xp-sp2 -> no ipsec", win(Os::XpSp2, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(3000))),
        ("xp-sp2+KB914841 -> no ipsec", win(Os::XpSp2, true, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(500))),
        ("xp-sp3 -> no ipsec", win(Os::XpSp3, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(500))),
        ("2003-sp1 -> no ipsec", win(Os::Server2003Sp1, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(3000))),
        ("2003-sp2 -> no ipsec", win(Os::Server2003Sp2, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(500))),
        ("vista -> no ipsec", win(Os::Vista, false, neg(SecureRequest), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(0))),
        ("2008 -> no ipsec", win(Os::Server2008, false, neg(Request), true), none(Os::Linux), true, clear(ClearReason::NoIkeResponse, ms(0))),
        ("xp -> permit rule", win(Os::XpSp2, true, neg(SecureRequest), true), win(Os::Server2003Sp2, true, Some(ActionKind::Permit), true), true, clear(ClearReason::NoIkeResponse, ms(500))),
        // Untrusted initiators (no policy) against each responder mode.
        ("mac -> 2003 SR", none(Os::MacOsX), win(Os::Server2003Sp2, true, neg(SecureRequest), true), true, blocked(BlockReason::ClearRefused, ms(0))),
        ("mac -> xp SR (acts as Request)", none(Os::MacOsX), win(Os::XpSp2, true, neg(SecureRequest), true), true, clear(ClearReason::Exempt, ms(0))),
        ("mac -> win2000 SR (acts as Request)", none(Os::MacOsX), win(Os::Win2000, false, neg(SecureRequest), true), true, clear(ClearReason::Exempt, ms(0))),
        ("mac -> 2003 Request (boundary)", none(Os::MacOsX), win(Os::Server2003Sp2, true, neg(Request), true), true, clear(ClearReason::Exempt, ms(0))),
        ("test box -> 2008 SR", none(Os::Vista), win(Os::Server2008, false, neg(SecureRequest), true), true, blocked(BlockReason::ClearRefused, ms(0))),
        ("mac -> 2003 Require", none(Os::MacOsX), win(Os::Server2003Sp2, true, neg(Require), true), true, blocked(BlockReason::ClearRefused, ms(0))),
        ("mac -> 2003 RE", none(Os::MacOsX), win(Os::Server2003Sp2, true, neg(RequireEncryption), true), true, blocked(BlockReason::ClearRefused, ms(0))),
        ("mac -> no ipsec", none(Os::MacOsX), none(Os::Linux), true, clear(ClearReason::Exempt, ms(0))),
        // Trust failures: no common credential, Kerberos unavailable.
        ("xp -> 2003 SR, responder untrusted", win(Os::XpSp2, false, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(SecureRequest), false), true, blocked(BlockReason::ClearRefused, ms(3000))),
        ("xp -> 2003 Request, responder untrusted", win(Os::XpSp2, false, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(Request), false), true, clear(ClearReason::AuthFailed, ms(3000))),
        ("vista -> xp SR, no kerberos", win(Os::Vista, false, neg(SecureRequest), false), win(Os::XpSp2, true, neg(SecureRequest), true), true, clear(ClearReason::AuthFailed, ms(0))),
        ("cert client -> cert server", cert_client.clone(), cert_server, true, nego(false, false)),
        ("cert client -> kerberos-only rule", cert_client, kerb_only_server, true, blocked(BlockReason::ClearRefused, ms(500))),
        // Require outbound: no fallback.
        ("xp Require -> no ipsec", win(Os::XpSp2, false, neg(Require), true), none(Os::Linux), true, blocked(BlockReason::NegotiationRequired, ms(3000))),
        // Lost negotiations (random IKE failure).
        ("xp -> 2003 SR, IKE lost", win(Os::XpSp2, true, neg(SecureRequest), true), win(Os::Server2003Sp2, true, neg(SecureRequest), true), false, blocked(BlockReason::ClearRefused, ms(500))),
        ("vista -> xp SR, IKE lost", win(Os::Vista, false, neg(SecureRequest), true), win(Os::XpSp2, true, neg(SecureRequest), true), false, clear(ClearReason::NegotiationFailed, ms(0))),
        // Permit and Block rules.
        ("permit -> 2003 SR", win(Os::XpSp2, true, Some(ActionKind::Permit), true), win(Os::Server2003Sp2, true, neg(SecureRequest), true), true, blocked(BlockReason::ClearRefused, ms(0))),
        ("permit -> permit", win(Os::XpSp2, true, Some(ActionKind::Permit), true), win(Os::Server2003Sp2, true, Some(ActionKind::Permit), true), true, clear(ClearReason::Exempt, ms(0))),
        ("block -> anything", win(Os::XpSp2, true, Some(ActionKind::Block), true), win(Os::Server2003Sp2, true, neg(Request), true), true, blocked(BlockReason::BlockRule, ms(0))),
        ("anything -> block", win(Os::Vista, true, neg(Request), true), win(Os::Server2003Sp2, true, Some(ActionKind::Block), true), true, blocked(BlockReason::BlockRule, ms(0))),
    ];
    for (name, init, resp, ok, want) in rows {
        assert_eq!(decide(&init, &resp, &fb, ok), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// SA table invariants under random connection sequences.
// ---------------------------------------------------------------------------------------

/// A mixed cast of hosts from the reduced campus: managed XP and Vista clients, servers of
/// several roles (boundary and infrastructure among them), unmanaged devices.
fn cast() -> &'static Vec<HostId> {
    static CAST: OnceLock<Vec<HostId>> = OnceLock::new();
    CAST.get_or_init(|| {
        let (_, c) = reduced();
        let pick = |f: &dyn Fn(&domiso::model::campus::Host) -> bool, n: usize| -> Vec<HostId> {
            c.hosts.iter().enumerate().filter(|(_, h)| f(h)).take(n).map(|(i, _)| HostId::from_index(i)).collect()
        };
        let mut v = Vec::new();
        v.extend(pick(&|h| h.is_managed() && h.is_client() && h.os == Os::XpSp2, 4));
        v.extend(pick(&|h| h.is_managed() && h.is_client() && h.os == Os::Vista, 4));
        v.extend(pick(&|h| h.is_managed() && h.is_client() && h.os == Os::Win2000, 2));
        v.extend(pick(&|h| h.kind == HostKind::Client(ClientCategory::TestDomain), 2));
        v.extend(pick(&|h| h.kind == HostKind::Client(ClientCategory::Mac), 2));
        v.extend(pick(&|h| h.kind == HostKind::Client(ClientCategory::VpnGuest), 2));
        for role in ["file", "web", "lob", "dc", "dns", "ris", "mail"] {
            v.extend(pick(&|h| h.kind.name() == role, 2));
        }
        v.extend(pick(&|h| !h.groups.is_empty() && h.kind.is_server(), 3));
        v
    })
}

fn drain(net: &mut SecNet, timers: &mut EventQueue<SaTimer>, until: SimTime) {
    while timers.peek_time().is_some_and(|at| at <= until) {
        let s = timers.pop().unwrap();
        if let Some((at, next)) = net.timer(s.event, s.time) {
            timers.push(at, 0, next);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sa_table_invariants_hold(ops in proptest::collection::vec(
        (0usize..64, 0usize..64, 0u64..900_000, 1u64..5_400_000, 0u64..250_000_000, 0.0f64..1.0, 0.0f64..1.0, 0usize..3),
        1..150,
    )) {
        let (sc, c) = reduced();
        let hosts = cast();
        let pop = domiso::model::population::Population::new(c);
        let mut net = run::build_secnet(sc, c, 1, &pop).expect("the reduced campus has IPsec");
        let mut timers: EventQueue<SaTimer> = EventQueue::new();
        let mut now = T0;
        let services = [Service { protocol: 6, port: 445 }, Service { protocol: 17, port: 53 }, Service { protocol: 6, port: 80 }];
        for (a, b, gap_ms, dur_ms, bytes, u_ike, u_node, svc) in ops {
            now += SimDuration::from_millis(gap_ms);
            drain(&mut net, &mut timers, now);
            let init = hosts[a % hosts.len()];
            let resp = hosts[b % hosts.len()];
            if init == resp {
                continue;
            }
            let service = services[svc];
            let conn = net.connect(&pop, init, Endpoint::Host(resp), service, 0, now, SimDuration::from_millis(dur_ms), bytes, u_ike, u_node);
            for (at, t) in conn.timers.into_iter().flatten() {
                prop_assert!(at >= now, "timers never in the past");
                timers.push(at, 0, t);
            }
            // Exempt paths never carry IPsec.
            let (ia, ra) = net.rule_actions(init, resp, service);
            let negotiates = |a: Option<ActionKind>| matches!(a, Some(ActionKind::Negotiate(_)));
            if !negotiates(ia) && !negotiates(ra) {
                prop_assert!(!matches!(conn.outcome, Outcome::Protected { .. }), "exempt path carried IPsec: {:?} {:?}", ia, ra);
            }
            if let Outcome::Protected { .. } = conn.outcome {
                prop_assert!(negotiates(ia) && negotiates(ra));
            }
            if let Err(e) = net.audit(now) {
                prop_assert!(false, "{}", e);
            }
        }
        // Let everything expire: nothing outlives its lifetime or idle time, counts return to zero.
        let end = now + SimDuration::from_hours(13);
        drain(&mut net, &mut timers, end);
        prop_assert!(net.audit(end).is_ok());
        prop_assert_eq!((net.live_mm, net.live_qm, net.live_soft), (0, 0, 0));
    }
}

// ---------------------------------------------------------------------------------------
// Lint.
// ---------------------------------------------------------------------------------------

fn lint_text(name: &str, body: &str) -> Vec<domiso::model::lint::Finding> {
    let text = format!(
        "extends = \"builtin:whitepaper-2008\"\nname = \"{name}\"\nlocal_policy = []\n[campus]\nclients = 3000\nusers = 1600\nsites = 12\nregions = 3\n[nlb]\nclusters = 2\n[rollout]\nwave = []\n{body}"
    );
    let sc = build::parse(&format!("{name}.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    run::lint_scenario(&sc, 1).unwrap()
}

#[test]
fn white_paper_lints_clean_and_broken_policy_lints_everything() {
    let findings = run::lint_scenario(&build::builtin(), 1).unwrap();
    let bad: Vec<_> = findings.iter().filter(|f| f.severity != Severity::Info).collect();
    assert!(bad.is_empty(), "the white-paper policy has no errors or warnings: {bad:#?}");
    let out = domiso(&["lint", "scenarios/broken-policy.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "errors exit 1");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: std::collections::BTreeSet<String> =
        doc["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect();
    for k in FindingKind::ALL {
        assert!(kinds.contains(k.name()), "broken-policy.toml triggers {}", k.name());
    }
    assert_eq!(domiso(&["lint"]).status.code(), Some(0));
}

const SMALL_POLICY: &str = r#"
[[filter_list]]
name = "Secure"
filters = ["any <-> 10.0.0.0/8"]
[[filter_list]]
name = "Infra"
filters = ["me <-> role:dc", "me <-> role:dns", "me <-> role:dhcp", "me <-> role:wins"]
[[filter_list]]
name = "Home"
filters = ["any <-> 192.168.0.0/24", "any <-> 192.168.1.0/24"]
[[filter_list]]
name = "Pools"
filters = ["me <-> subnets:vpn-pool"]
[[filter_action]]
name = "Permit"
action = "permit"
[[filter_action]]
name = "SR"
action = "secure-request"
[[filter_action]]
name = "R"
action = "request"
[[ipsec_policy]]
name = "Default"
rules = [{ filters = "Secure", action = "SR" }, { filters = "Infra", action = "Permit" }, { filters = "Home", action = "Permit" }]
[[ipsec_policy]]
name = "Boundary"
rules = [{ filters = "Secure", action = "R" }, { filters = "Infra", action = "Permit" }, { filters = "Home", action = "Permit" }]
[[ipsec_policy]]
name = "Vpn"
rules = [{ filters = "Secure", action = "SR" }, { filters = "Pools", action = "Permit" }, { filters = "Infra", action = "Permit" }, { filters = "Home", action = "Permit" }]
[[gpo]]
name = "Boundary"
policy = "Boundary"
apply = ["Boundary-RIS", "Boundary-MacFileServers", "Boundary-BusinessNeed"]
deny = ["No-IPsec"]
[[gpo]]
name = "Vpn"
policy = "Vpn"
apply = ["VPN-Servers"]
[[gpo]]
name = "Default"
policy = "Default"
apply = ["Domain Computers"]
deny = ["No-IPsec"]
"#;

fn kinds(f: &[domiso::model::lint::Finding]) -> Vec<(FindingKind, Severity)> {
    f.iter().filter(|x| x.severity != Severity::Info).map(|x| (x.kind, x.severity)).collect()
}

#[test]
fn lint_small_policies() {
    // The small policy is clean.
    assert_eq!(kinds(&lint_text("clean", SMALL_POLICY)), vec![]);
    // A duplicate filter is shadowed.
    let dup = SMALL_POLICY
        .replace(r#"filters = ["any <-> 10.0.0.0/8"]"#, r#"filters = ["any <-> 10.0.0.0/8", "any <-> 10.0.0.0/8"]"#);
    assert!(kinds(&lint_text("dup", &dup)).contains(&(FindingKind::ShadowedFilter, Severity::Warning)));
    // Equal-weight overlap with different actions: two rules name the same /16.
    let conflict = SMALL_POLICY.replace(
        r#"[[filter_action]]
name = "Permit""#,
        r#"[[filter_list]]
name = "LabA"
filters = ["10.9.0.0/16 -> any"]
[[filter_list]]
name = "LabB"
filters = ["any -> 10.9.0.0/16"]
[[filter_action]]
name = "Permit""#,
    )
    .replace(r#"{ filters = "Home", action = "Permit" }]
[[ipsec_policy]]
name = "Boundary""#, r#"{ filters = "Home", action = "Permit" }, { filters = "LabA", action = "Permit" }, { filters = "LabB", action = "SR" }]
[[ipsec_policy]]
name = "Boundary""#);
    let k = kinds(&lint_text("conflict", &conflict));
    assert!(k.contains(&(FindingKind::OverlapConflict, Severity::Error)), "{k:?}");
    // Infrastructure under Secure Request.
    let infra =
        SMALL_POLICY.replace("apply = [\"Domain Computers\"]\ndeny = [\"No-IPsec\"]", "apply = [\"Domain Computers\"]");
    let f = lint_text("infra", &infra);
    // Both sides of the bootstrap deadlock: servers refuse new hosts, and managed hosts
    // cannot fetch a Kerberos ticket from a DC that refuses clear.
    assert!(
        f.iter().any(|x| x.kind == FindingKind::InfrastructureNotExempt && x.message.contains("refuse clear")),
        "{:?}",
        kinds(&f)
    );
    assert!(
        f.iter().any(|x| x.kind == FindingKind::InfrastructureNotExempt && x.message.contains("Kerberos")),
        "{:?}",
        kinds(&f)
    );
    // Clients that negotiate with an exempt DC only wait for the fallback: no deadlock.
    let nokdc = SMALL_POLICY.replace(r#"rules = [{ filters = "Secure", action = "SR" }, { filters = "Infra", action = "Permit" }, { filters = "Home", action = "Permit" }]"#, r#"rules = [{ filters = "Secure", action = "SR" }, { filters = "Home", action = "Permit" }]"#);
    assert!(!kinds(&lint_text("nokdc", &nokdc)).iter().any(|k| k.0 == FindingKind::InfrastructureNotExempt));
    // Boundary machines under Secure Request.
    let boundary =
        SMALL_POLICY.replace("name = \"Boundary\"\npolicy = \"Boundary\"", "name = \"Boundary\"\npolicy = \"Default\"");
    assert!(kinds(&lint_text("boundary", &boundary)).contains(&(FindingKind::BoundaryNotRequest, Severity::Error)));
    // Home range not exempt.
    let home = SMALL_POLICY
        .replace(
            r#"filters = ["any <-> 192.168.0.0/24", "any <-> 192.168.1.0/24"]"#,
            r#"filters = ["any <-> 192.168.1.0/24"]"#,
        )
        .replace(
            r#"filters = ["any <-> 10.0.0.0/8"]"#,
            r#"filters = ["any <-> 10.0.0.0/8", "any <-> 192.168.0.0/16"]"#,
        );
    let f = lint_text("home", &home);
    assert!(
        f.iter().any(|x| x.kind == FindingKind::HomeRangeNotExempt && x.message.contains("192.168.0.0/24")),
        "{:?}",
        kinds(&f)
    );
    assert!(!f.iter().any(|x| x.kind == FindingKind::HomeRangeNotExempt && x.message.contains("192.168.1.0/24")));
    // VPN servers without the pool exemption.
    let vpn = SMALL_POLICY.replace("name = \"Vpn\"\npolicy = \"Vpn\"", "name = \"Vpn\"\npolicy = \"Default\"");
    assert!(kinds(&lint_text("vpn", &vpn)).contains(&(FindingKind::VpnServerPolicy, Severity::Error)));
    // GPO linked to one domain only.
    let orphan = SMALL_POLICY.replace(
        "name = \"Default\"\npolicy = \"Default\"\n",
        "name = \"Default\"\npolicy = \"Default\"\ndomains = [\"corp\"]\n",
    );
    assert!(kinds(&lint_text("orphan", &orphan)).contains(&(FindingKind::HostWithoutPolicy, Severity::Warning)));
    // Gap design: a /16 exemption.
    let gap = SMALL_POLICY.replace(
        r#"filters = ["any <-> 192.168.0.0/24", "any <-> 192.168.1.0/24"]"#,
        r#"filters = ["any <-> 192.168.0.0/24", "any <-> 192.168.1.0/24", "any <-> 10.7.0.0/16"]"#,
    );
    assert!(kinds(&lint_text("gap", &gap)).contains(&(FindingKind::GapDesign, Severity::Warning)));
}

// ---------------------------------------------------------------------------------------
// An SA-granularity day of the reduced campus under Secure Request.
// ---------------------------------------------------------------------------------------

fn run_reduced_sa() -> &'static std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| run_into("ipsec-day", &["scenarios/reduced-secure-request-day.toml", "--granularity", "sa"]))
}

fn csv_rows(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| headers.iter().zip(rec.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

#[test]
fn secure_request_day_protects_managed_traffic_and_blocks_the_untrusted() {
    let dir = run_reduced_sa();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let protected = summary["protected_traffic_pct_end"].as_f64().unwrap();
    assert!(protected > 95.0, "most bytes between managed hosts are protected: {protected}%");
    assert!(summary["sa_negotiations_total"].as_u64().unwrap() > 10_000);
    assert!(summary["blocked_connections_total"].as_u64().unwrap() > 1_000);
    let rows = csv_rows(&dir.join("outcomes_by_os.csv"));
    let get = |who: &str, os: &str| {
        rows.iter()
            .find(|r| r["initiator"] == who && r["initiator_os"] == os)
            .unwrap_or_else(|| panic!("row {who}/{os}"))
    };
    let num = |r: &std::collections::HashMap<String, String>, k: &str| r[k].parse::<f64>().unwrap_or(0.0);
    // Unmanaged hosts are blocked except against boundary machines and exempt servers.
    for (who, os) in [("mac", "mac-os-x"), ("test-domain", "vista"), ("test-domain", "xp-sp2"), ("linux", "linux")] {
        let r = get(who, os);
        // Only test machines that join a domain during the day get IPsec (from then on).
        let joined_share = if who == "test-domain" { 0.02 } else { 0.0 };
        assert!(num(r, "protected") <= joined_share * num(r, "sessions"), "{who}/{os} gets no IPsec unless it joins");
        assert!(num(r, "blocked") > 0.3 * num(r, "sessions"), "{who}/{os}: most sessions to SecureNet are refused");
        assert!(num(r, "clear_exempt") > 0.0, "{who}/{os}: DNS, DHCP and boundary machines still answer");
    }
    // XP initiators pay the fallback wait against hosts without IPsec; Vista never waits.
    let xp = get("managed", "xp-sp2");
    assert!(num(xp, "clear_fallback") > 0.0 && num(xp, "fallback_waits") > 0.0);
    let w = num(xp, "mean_fallback_wait_ms");
    assert!((500.0..=3000.0).contains(&w), "XP SP2 mean fallback wait {w} ms (500 ms with KB914841, 3 s without)");
    assert_eq!(num(get("managed", "win2000"), "mean_fallback_wait_ms"), 3000.0);
    assert_eq!(num(get("managed", "xp-sp3"), "mean_fallback_wait_ms"), 500.0);
    let vista = get("managed", "vista");
    assert!(num(vista, "clear_fallback") > 0.0, "Vista also falls back to clear...");
    assert_eq!(num(vista, "fallback_waits"), 0.0, "...but without waiting");
    assert_eq!(num(vista, "ike_waits"), 0.0);
    // Servers report SA load.
    let servers = csv_rows(&dir.join("servers.csv"));
    assert!(!servers.is_empty());
    assert!(servers.windows(2).all(|w| num(&w[0], "peak_qm_sas") >= num(&w[1], "peak_qm_sas")), "sorted by peak SAs");
    assert!(num(&servers[0], "peak_sa_memory_bytes") > 0.0);
    // Timeline columns are filled.
    let tl = csv_rows(&dir.join("timeline.csv"));
    for col in [
        "hosts_secure_request",
        "active_qm_sas_peak",
        "main_mode_negotiations",
        "quick_mode_negotiations",
        "fallbacks_to_clear",
        "blocked_connections",
        "bytes_protected",
        "bytes_clear",
    ] {
        assert!(num(&tl[0], col) > 0.0, "timeline {col}");
    }
}

// ---------------------------------------------------------------------------------------
// Policy matching: the decision cache keyed by address classes gives what matching every
// filter gives, for hosts, virtual IPs and both directions.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn cached_policy_decisions_equal_uncached_matching(seed in 0u64..u64::MAX) {
        use domiso::model::policy::{Flow, Packet, PolicyEngine};
        use rand::{RngExt, SeedableRng};
        let (sc, campus) = reduced();
        let groups: Vec<_> = campus.hosts.iter().map(|h| h.groups).collect();
        let mut engine = PolicyEngine::new(&sc.policy, campus, &groups);
        prop_assume!(!sc.policy.policies.is_empty());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let ports: Vec<(u8, u16)> = vec![(6, 445), (6, 80), (17, 53), (6, 3389), (17, 500), (6, 1433), (1, 0)];
        for _ in 0..2_000 {
            let policy = rng.random_range(0..sc.policy.policies.len()) as u16;
            let me_host = HostId::from_index(rng.random_range(0..campus.hosts.len()));
            let me = engine.host(me_host);
            let peer = if !campus.clusters.is_empty() && rng.random::<f64>() < 0.1 {
                engine.address(campus.clusters[rng.random_range(0..campus.clusters.len())].vip)
            } else {
                engine.host(HostId::from_index(rng.random_range(0..campus.hosts.len())))
            };
            let outbound = rng.random::<bool>();
            let (protocol, port) = ports[rng.random_range(0..ports.len())];
            let service = Service { protocol, port };
            let packet = if outbound { Packet { src: me.addr, dst: peer.addr } } else { Packet { src: peer.addr, dst: me.addr } };
            let expected = engine.match_uncached(policy, me.addr, packet, service);
            let got = engine.match_flow(policy, Flow { me, peer, outbound, service });
            prop_assert_eq!(got, expected, "policy {} me {:?} peer {:?} outbound {} {:?}", policy, me, peer, outbound, service);
        }
    }
}

/// A policy version is compiled for the whole campus (MBs on a big one); once every host
/// has moved off it, its engine is released, and what hosts decide does not change.
#[test]
fn a_policy_version_no_host_holds_is_released() {
    let (sc, campus) = reduced();
    let pop = domiso::model::population::Population::new(campus);
    let mut net = run::build_secnet(sc, campus, 1, &pop).expect("the reduced campus has IPsec");
    assert_eq!(net.compiled_versions(), 1);
    let pairs: Vec<(HostId, HostId)> = (0..200)
        .map(|i| (HostId::from_index(i * 97 % campus.hosts.len()), HostId::from_index(i * 131 % campus.hosts.len())))
        .collect();
    let smb = Service { protocol: 6, port: 445 };
    let before: Vec<_> = pairs.iter().map(|&(a, b)| net.rule_actions(a, b, smb)).collect();
    // Two versions published before anyone refreshes: the one in between is never held.
    net.publish(sc.policy.clone(), &pop);
    assert_eq!(net.compiled_versions(), 2, "version 0 is held by every host, version 1 is the latest");
    net.publish(sc.policy.clone(), &pop);
    assert_eq!(net.compiled_versions(), 2, "version 1 was never held: released when version 2 came out");
    for i in 0..campus.hosts.len() - 1 {
        net.refresh(HostId::from_index(i), &pop);
    }
    assert_eq!(net.compiled_versions(), 2, "one host still holds version 0");
    net.refresh(HostId::from_index(campus.hosts.len() - 1), &pop);
    assert_eq!(net.compiled_versions(), 1, "only the latest is left");
    let after: Vec<_> = pairs.iter().map(|&(a, b)| net.rule_actions(a, b, smb)).collect();
    assert_eq!(before, after);
}

/// Under a traffic sample a server meets only the sampled share of its clients: its peaks
/// are not reported (they would be a fraction of the real ones), its negotiation totals are
/// scaled like every other count.
#[test]
fn a_traffic_sample_reports_no_server_peaks_and_scales_server_totals() {
    let full = run_reduced_sa();
    let dir = run_into(
        "ipsec-day-sampled",
        &["scenarios/reduced-secure-request-day.toml", "--set", "run.traffic_sample=0.5"],
    );
    let summary = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap()
    };
    let num = |r: &std::collections::HashMap<String, String>, k: &str| r[k].parse::<f64>().unwrap();
    let (whole, half) = (summary(full), summary(&dir));
    assert!(whole["server_qm_sas_peak"].as_u64().unwrap() > 0);
    assert!(whole["server_sa_memory_peak_bytes"].as_u64().unwrap() > 0);
    assert!(half["server_qm_sas_peak"].is_null() && half["server_sa_memory_peak_bytes"].is_null());
    let total = |rows: &[std::collections::HashMap<String, String>], col: &str| -> f64 {
        rows.iter().map(|r| num(r, col)).sum()
    };
    let (sw, sh) = (csv_rows(&full.join("servers.csv")), csv_rows(&dir.join("servers.csv")));
    assert_eq!(sw.len(), sh.len());
    for col in ["peak_qm_sas", "peak_mm_sas", "peak_main_modes_per_s", "peak_dh_cpu_pct", "peak_sa_memory_bytes"] {
        assert!(sw.iter().all(|r| !r[col].is_empty()), "{col} filled in the full run");
        assert!(sh.iter().all(|r| r[col].is_empty()), "{col} empty in the sampled run");
    }
    // The busiest servers' quick modes, scaled from half the clients, land near the full
    // run's (the same servers lead; sampling noise on thousands of negotiations is small).
    let ratio = total(&sh, "quick_modes") / total(&sw, "quick_modes");
    assert!((0.85..1.15).contains(&ratio), "scaled quick modes {ratio:.3} of the full run's");
    assert!(sh.windows(2).all(|w| num(&w[0], "quick_modes") >= num(&w[1], "quick_modes")), "ranked by quick modes");
}
