//! Rollout schedules and the campaign around them: gates hold and release, rollbacks
//! restore the earlier configuration, a wave's policy reaches hosts only at their Group
//! Policy refresh, and whole rollouts of the reduced campus.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use domiso::engine::{SimDuration, SimTime};
use domiso::model::campaign::{Campaign, CampaignEvent};
use domiso::model::ids::{DomainId, HostId};
use domiso::model::population::{NapMode, Population};
use domiso::model::rollout::{
    Gate, Metric, Order, Rollback, Rollout, Schedule, Selector, Unit, UnitKind, Wave, WaveAction,
};
use domiso::run;
use domiso::scenario::build::Scenario;

use crate::common::{domiso, reduced_rollout as reduced, scratch};

fn selector(kind: UnitKind, count: Option<u32>, named: Vec<Unit>) -> Selector {
    Selector { kind, order: Order::Smallest, count, fraction: None, named, purposes: vec![] }
}

fn wave(name: &str, action: WaveAction, select: Selector) -> Wave {
    Wave {
        name: name.into(),
        phase: "test".into(),
        start: 0,
        after: None,
        gap: 0,
        duration: 1,
        action,
        select,
        gate: None,
        rollback: None,
    }
}

fn list_index(sc: &Scenario, name: &str) -> usize {
    sc.policy.filter_lists.iter().position(|f| f.name == name).unwrap()
}

fn gpo_index(sc: &Scenario, name: &str) -> usize {
    sc.policy.gpos.iter().position(|g| g.name == name).unwrap()
}

#[test]
fn a_gate_holds_a_wave_until_its_metric_stays_low_for_the_days_asked() {
    let (sc, campus) = reduced();
    let pop = Population::new(campus);
    let list = list_index(sc, "Secure Subnets (Phase 1)");
    let mut w = wave("gated", WaveAction::AddFilters { list }, selector(UnitKind::Subnets, Some(3), vec![]));
    w.gate = Some(Gate { metric: Metric::IpsecCallsWeek, below: 10.0, days: 3 });
    let mut rollout = Rollout::new(Schedule { waves: vec![w], announcements: vec![] }, sc.policy.clone());
    // IPsec calls of the last week, as seen at the start of each day.
    let calls = [20.0, 5.0, 5.0, 20.0, 5.0, 5.0, 5.0, 5.0];
    let mut applied_on = None;
    for (day, &c) in calls.iter().enumerate() {
        let changes = rollout.day(day as u32, campus, &pop, &|m| if m == Metric::IpsecCallsWeek { c } else { 0.0 });
        let events: Vec<&str> = changes.log.iter().map(|e| e.event).collect();
        if day == 0 {
            assert_eq!(events, ["held"], "day 0: the metric is high");
        }
        if let Some(set) = changes.policy {
            assert!(applied_on.is_none(), "applied once");
            applied_on = Some(day);
            assert_eq!(events, ["released", "started", "done"]);
            assert_eq!(set.filter_lists[list].filters.len(), sc.policy.filter_lists[list].filters.len() + 3);
        } else if day > 0 {
            assert!(events.is_empty(), "day {day}: nothing new while held: {events:?}");
        }
    }
    // Low on days 1-2, high on 3 (streak reset), low on 4, 5, 6: released on day 6.
    assert_eq!(applied_on, Some(6));
    assert!(rollout.finished());
}

#[test]
fn a_rollback_restores_the_earlier_policy_and_settings() {
    let (sc, campus) = reduced();
    let pop = Population::new(campus);
    let sr = gpo_index(sc, "IPsec - Secure Request");
    let smallest = selector(UnitKind::Domains, Some(2), vec![]);
    let mut link = wave("link", WaveAction::LinkGpo { gpo: sr }, smallest);
    link.rollback = Some(Rollback { metric: Metric::IpsecCallsWeek, above: 50.0, within: 7 });
    let mut nap = wave("nap", WaveAction::Nap(NapMode::Enforcement), selector(UnitKind::All, None, vec![]));
    nap.rollback = Some(Rollback { metric: Metric::NapCallsWeek, above: 50.0, within: 7 });
    // A later wave that follows the linked one never starts once it is rolled back.
    let mut follow = wave("follow", WaveAction::LinkGpo { gpo: sr }, selector(UnitKind::All, None, vec![]));
    follow.after = Some(0);
    follow.gap = 1;
    let mut rollout =
        Rollout::new(Schedule { waves: vec![link, nap, follow], announcements: vec![] }, sc.policy.clone());
    let quiet = |_: Metric| 0.0;
    let day0 = rollout.day(0, campus, &pop, &quiet);
    let linked = day0.policy.expect("the link changes the policy");
    assert_eq!(linked.gpos[sr].domains.as_ref().map(Vec::len), Some(2), "two domains linked");
    assert_eq!(day0.settings.expect("NAP settings change").nap, vec![(Unit::All, NapMode::Enforcement)]);
    // Day 1: the follower starts (gap 1), calls are still quiet.
    let day1 = rollout.day(1, campus, &pop, &quiet);
    assert_eq!(day1.policy.expect("follower links everywhere").gpos[sr].domains, None);
    // Day 2: calls above the trigger within the window: both guarded waves revert.
    let loud = |m: Metric| if matches!(m, Metric::IpsecCallsWeek | Metric::NapCallsWeek) { 80.0 } else { 0.0 };
    let day2 = rollout.day(2, campus, &pop, &loud);
    let events: Vec<(&str, &str)> = day2.log.iter().map(|e| (e.wave.as_str(), e.event)).collect();
    assert_eq!(events, [("link", "rolled-back"), ("nap", "rolled-back")]);
    // The link wave restores the GPO links it found (none), even though the follower
    // changed them after it; the NAP wave removes its own link.
    assert_eq!(day2.policy.expect("policy reverted").gpos[sr].domains, Some(vec![]));
    assert!(day2.settings.expect("settings reverted").nap.is_empty());
    assert_eq!(rollout.set, sc.policy, "the configuration is the one before the rollout");
    // Outside the window a loud metric no longer reverts anything.
    let mut late = wave("late", WaveAction::LinkGpo { gpo: sr }, selector(UnitKind::All, None, vec![]));
    late.rollback = Some(Rollback { metric: Metric::IpsecCallsWeek, above: 50.0, within: 3 });
    let mut r2 = Rollout::new(Schedule { waves: vec![late], announcements: vec![] }, sc.policy.clone());
    r2.day(0, campus, &pop, &quiet);
    for day in 1..=3 {
        r2.day(day, campus, &pop, &quiet);
    }
    let after = r2.day(4, campus, &pop, &loud);
    assert!(after.policy.is_none() && after.log.is_empty(), "day 4 is outside a 3-day window");
}

#[test]
fn a_domain_wave_spreads_its_units_evenly_over_its_duration() {
    let (sc, campus) = reduced();
    let pop = Population::new(campus);
    let sr = gpo_index(sc, "IPsec - Secure Request");
    let mut w = wave("weekly", WaveAction::LinkGpo { gpo: sr }, selector(UnitKind::Domains, Some(6), vec![]));
    w.duration = 42;
    let mut rollout = Rollout::new(Schedule { waves: vec![w], announcements: vec![] }, sc.policy.clone());
    let mut linked_on = Vec::new();
    let mut sizes = Vec::new();
    for day in 0..42 {
        if let Some(set) = rollout.day(day, campus, &pop, &|_| 0.0).policy {
            let ds = set.gpos[sr].domains.clone().unwrap();
            linked_on.push(day);
            let d: DomainId = *ds.last().unwrap();
            sizes.push((0..pop.hosts()).filter(|&i| pop.domain(HostId::from_index(i)) == Some(d)).count());
        }
    }
    assert_eq!(linked_on, [0, 7, 14, 21, 28, 35], "one domain a week");
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "smallest first: {sizes:?}");
    let main = campus.main_domain().unwrap();
    assert!(
        !rollout.set.gpos[sr].domains.as_ref().unwrap().contains(&main),
        "the main domain is not among the six smallest"
    );
}

/// Runs a campaign's events in time order until `until`.
fn drain(
    campaign: &mut Campaign<'_>,
    queue: &mut BinaryHeap<Reverse<(SimTime, u64, CampaignEvent)>>,
    seq: &mut u64,
    until: SimTime,
    pop: &mut Population,
    net: &mut domiso::model::secnet::SecNet<'_>,
    mut each: impl FnMut(SimTime, CampaignEvent, &domiso::model::secnet::SecNet<'_>, &Population),
) {
    while queue.peek().is_some_and(|Reverse((t, _, _))| *t < until) {
        let Reverse((t, _, ev)) = queue.pop().unwrap();
        for (at, next) in campaign.handle(ev, t, pop, Some(&mut *net)) {
            *seq += 1;
            queue.push(Reverse((at, *seq, next)));
        }
        each(t, ev, net, pop);
    }
}

#[test]
fn a_waves_policy_reaches_each_host_only_at_its_group_policy_refresh() {
    let (base, campus) = reduced();
    let mut sc = base.clone();
    let sr = gpo_index(&sc, "IPsec - Secure Request");
    let mut r = sc.rollout.clone().expect("the reduced campus has a rollout");
    let mut w = wave("link all", WaveAction::LinkGpo { gpo: sr }, selector(UnitKind::All, None, vec![]));
    w.start = 1;
    r.schedule = Schedule { waves: vec![w], announcements: vec![] };
    let (interval, jitter) = (r.gp_refresh, r.gp_refresh_jitter);
    sc.rollout = Some(r);
    sc.population = None; // no joins or reimages: only the wave moves policy
    let mut pop = Population::new(campus);
    let mut net = run::build_secnet(&sc, campus, 1, &pop).unwrap();
    let mut campaign = Campaign::new(&sc, campus, 1);
    let mut queue = BinaryHeap::new();
    let mut seq = 0u64;
    for day in 0..2u32 {
        for (at, ev) in campaign.start_day(day, &mut pop, Some(&mut net)) {
            seq += 1;
            queue.push(Reverse((at, seq, ev)));
        }
        if day == 1 {
            break;
        }
        drain(&mut campaign, &mut queue, &mut seq, SimTime::start_of_day(1), &mut pop, &mut net, |_, _, _, _| {});
    }
    let day1 = SimTime::start_of_day(1);
    let managed: Vec<HostId> = (0..pop.hosts()).map(HostId::from_index).filter(|&h| pop.is_managed(h)).collect();
    let before: Vec<Option<u16>> = managed.iter().map(|&h| net.policy_of(h)).collect();
    let sr_policy = sc.policy.policies.iter().position(|p| p.name == "SecureNet - Secure Request").unwrap() as u16;
    assert!(before.iter().all(|p| *p != Some(sr_policy)), "published, but no host has Secure Request yet");
    // Replay the refreshes: each host changes exactly when its bucket fires.
    let mut changed_at: Vec<Option<SimTime>> = vec![None; pop.hosts()];
    let mut last_seen: Vec<Option<u16>> = (0..pop.hosts()).map(|i| net.policy_of(HostId::from_index(i))).collect();
    let mut refreshes = 0;
    drain(&mut campaign, &mut queue, &mut seq, SimTime::start_of_day(2), &mut pop, &mut net, |t, ev, net, _| {
        if let CampaignEvent::Refresh(minute) = ev {
            refreshes += 1;
            assert_eq!(t, SimTime::from_nanos(u64::from(minute) * SimDuration::MINUTE.as_nanos()));
        }
        for (i, seen) in last_seen.iter_mut().enumerate() {
            let now = net.policy_of(HostId::from_index(i));
            if now != *seen {
                assert!(matches!(ev, CampaignEvent::Refresh(_)), "policy changes only at a refresh");
                changed_at[i] = Some(t);
                *seen = now;
            }
        }
    });
    assert!(refreshes > 60, "refreshes spread over many minutes: {refreshes}");
    let window = interval + jitter + SimDuration::MINUTE;
    let mut moved = 0;
    for (k, &h) in managed.iter().enumerate() {
        let now = net.policy_of(h);
        if now == Some(sr_policy) {
            moved += 1;
            let t = changed_at[h.index()].expect("changed during the day");
            assert!(t > day1 && t <= day1 + window, "host {h:?} refreshed at {t} (window {window})");
        } else {
            assert_eq!(now, before[k], "hosts the GPO does not apply to keep their policy");
        }
    }
    assert!(
        moved as f64 > 0.9 * managed.len() as f64,
        "{moved} of {} managed hosts moved to Secure Request",
        managed.len()
    );
    let first = changed_at.iter().flatten().min().unwrap();
    assert!(*first > day1, "nobody changed at the moment of publication");
}

/// One whole rollout of the reduced campus (a tenth of the default), shared by tests.
fn reduced_rollout_run() -> &'static std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("rollout-reduced").join("run");
        let out = domiso(&["run", "scenarios/reduced-campus.toml", "--out", dir.to_str().unwrap(), "--quiet"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

#[test]
fn the_reduced_rollout_writes_its_days_helpdesk_and_events() {
    let dir = reduced_rollout_run();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let days = summary["days"].as_u64().unwrap() as usize;
    let timeline = csv::Reader::from_path(dir.join("timeline.csv")).unwrap().into_records().count();
    let helpdesk = csv::Reader::from_path(dir.join("helpdesk.csv")).unwrap().into_records().count();
    assert_eq!((timeline, helpdesk), (days, days), "one row per day");
    let events = std::fs::read_to_string(dir.join("rollout_events.csv")).unwrap();
    for wave in ["Request pilot", "Secure Request: corp", "NAP enforcement", "Firewall: company-wide"] {
        assert!(events.contains(&format!("{wave},done")), "{wave} finished:\n{events}");
    }
    let start = summary["domain_joined_pct_start"].as_f64().unwrap();
    let end = summary["domain_joined_pct_end"].as_f64().unwrap();
    assert!(end > start, "machines join during the rollout: {start} -> {end}");
    assert!(summary["protected_traffic_pct_end"].as_f64().unwrap() > 90.0);
}

#[test]
fn the_by_subnet_variant_differs_from_the_default_only_in_phase_2() {
    let default = crate::common::load("whitepaper-2008.toml");
    let by_subnet = crate::common::load("secure-request-by-subnet.toml");
    let (a, b) = (&default.rollout.as_ref().unwrap().schedule, &by_subnet.rollout.as_ref().unwrap().schedule);
    assert_eq!(a.announcements, b.announcements);
    let after = |s: &Schedule, w: &Wave| w.after.map(|i| s.waves[i].name.clone());
    let phase2 = |w: &Wave| w.name.starts_with("Secure Request:");
    let shared: Vec<(&Wave, &Wave)> = a
        .waves
        .iter()
        .filter(|w| !phase2(w))
        .map(|w| (w, b.waves.iter().find(|x| x.name == w.name).expect("in both")))
        .collect();
    assert_eq!(shared.len(), b.waves.iter().filter(|w| !phase2(w)).count(), "no extra waves outside Phase 2");
    for (x, y) in shared {
        let mut y2 = y.clone();
        y2.after = x.after;
        if x.name == "Require Encryption servers" {
            // It follows the last Phase 2 wave, which differs by design.
            assert_eq!(after(b, y).as_deref(), Some("Secure Request: whole network"));
            y2.after = x.after;
        } else {
            assert_eq!(after(a, x), after(b, y), "{}", x.name);
        }
        assert_eq!(x, &y2, "{}", x.name);
    }
    assert!(
        b.waves.iter().filter(|w| phase2(w)).all(|w| !matches!(w.select.kind, UnitKind::Domains)),
        "Phase 2 by subnet"
    );
    assert_eq!(default.policy, by_subnet.policy, "the same IPsec configuration to start from");
}

/// Sums a column of a run's CSV over days `from..to`.
fn sum_days(dir: &std::path::Path, file: &str, column: &str, days: std::ops::Range<u32>) -> f64 {
    let mut r = csv::Reader::from_path(dir.join(file)).unwrap();
    let h = r.headers().unwrap().clone();
    let (d, c) = (h.iter().position(|x| x == "day").unwrap(), h.iter().position(|x| x == column).unwrap());
    r.records()
        .map(|x| x.unwrap())
        .filter(|x| days.contains(&x[d].parse::<u32>().unwrap()))
        .map(|x| x[c].parse::<f64>().unwrap_or(0.0))
        .sum()
}

/// The day the first Phase 2 wave after the pilot started.
fn phase2_start(dir: &std::path::Path) -> u32 {
    let events = std::fs::read_to_string(dir.join("rollout_events.csv")).unwrap();
    events
        .lines()
        .find(|l| l.contains(",Secure Request: small") && l.contains(",started,"))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn phase_2_by_subnet_cuts_off_more_users_than_by_domain() {
    // The same campus and rollout; only Phase 2's units differ. Nothing in the model knows
    // which is worse: the difference comes from who shares a subnet with whom.
    let by_domain = reduced_rollout_run();
    let dir = scratch("rollout-by-subnet");
    let file = dir.join("reduced-by-subnet.toml");
    std::fs::write(
        &file,
        "extends = \"../../../scenarios/secure-request-by-subnet.toml\"\nname = \"reduced-by-subnet\"\n\
         [campus]\nclients = 26_000\nusers = 14_000\nsites = 60\nregions = 4\n[nlb]\nclusters = 8\n",
    )
    .unwrap();
    let by_subnet = dir.join("run");
    let out = domiso(&["run", file.to_str().unwrap(), "--out", by_subnet.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = phase2_start(by_domain);
    assert_eq!(start, phase2_start(&by_subnet), "both variants start Phase 2 on the same day");
    // The first four weeks of Phase 2 deployment.
    let window = start..start + 28;
    let cut_off = |d: &std::path::Path| sum_days(d, "helpdesk.csv", "users_ipsec_blocked", window.clone());
    let blocked = |d: &std::path::Path| sum_days(d, "timeline.csv", "blocked_connections", window.clone());
    let (users_domain, users_subnet) = (cut_off(by_domain), cut_off(&by_subnet));
    let (blocked_domain, blocked_subnet) = (blocked(by_domain), blocked(&by_subnet));
    assert!(
        users_subnet > 1.15 * users_domain,
        "user-days cut off: by subnet {users_subnet}, by domain {users_domain}"
    );
    assert!(
        blocked_subnet > 2.0 * blocked_domain,
        "blocked connections: by subnet {blocked_subnet}, by domain {blocked_domain}"
    );
}
