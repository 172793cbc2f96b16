//! NLB clusters under node failures: per-OS stall bounds from the SA and TCP mechanics, the
//! VIP exemption, no stalls without failures, affinity and SA pinning, SA accounting when
//! a node dies.

use std::path::{Path, PathBuf};

use domiso::engine::{SimDuration, SimTime};
use domiso::model::campus::Endpoint;
use domiso::model::ids::{ClusterId, HostId};
use domiso::model::kinds::{Affinity, HostKind, Os};
use domiso::model::policy::Service;
use domiso::model::population::Population;
use domiso::model::secnet::Outcome;
use domiso::run::{self, RunRequest};
use domiso::scenario::build;

use crate::common::{reduced, scenario_path, scratch};

/// Writes a scenario extending the reduced end-state day with `body`, runs it for a day
/// (seed 1) and returns the run directory.
fn run_variant(name: &str, body: &str) -> PathBuf {
    let dir = scratch(name);
    let file = dir.join(format!("{name}.toml"));
    let base = scenario_path("reduced-secure-request-day.toml");
    std::fs::write(&file, format!("extends = {:?}\nname = {name:?}\n{body}", base.display().to_string())).unwrap();
    let sc = build::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("out");
    let req = RunRequest {
        scenario: &sc,
        seed: 1,
        days: 1,
        out: out.clone(),
        granularity: run::Granularity::Sa,
        pcap: None,
        draw_ahead: false,
    };
    run::execute(&req, &mut |_| {}).unwrap();
    out
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    client_os: String,
    in_progress: bool,
    cluster_down: bool,
    ipsec: bool,
    detection: String,
    stall_s: f64,
    app_failed: bool,
}

fn rows(dir: &Path) -> Vec<Row> {
    csv::Reader::from_path(dir.join("failover_stalls.csv")).unwrap().deserialize().map(|r| r.unwrap()).collect()
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Frequent random failures over a working day: enough affected connections per OS.
const STRESS: &str = r#"
[nlb]
mtbf = "90 min"
mttr = "10 min"
xp_sp1_nat_t_update = 0.0
"#;

#[test]
fn stalls_follow_each_client_os_from_its_sa_and_tcp_timers() {
    let dir = run_variant("nlb-stress", STRESS);
    let all: Vec<Row> = rows(&dir).into_iter().filter(|r| !r.cluster_down).collect();
    assert!(all.len() > 200, "{} affected connections", all.len());
    let group = |oses: &[&str]| -> Vec<&Row> {
        all.iter().filter(|r| r.ipsec && oses.contains(&r.client_os.as_str()) && r.detection != "none").collect()
    };
    let mins = |r: &&Row| r.stall_s / 60.0;
    // Windows 2000 / XP SP1 without NAT-T: the 5-minute idle timer. Connections open at
    // the failure wait it out fully (plus the retry cycle); new ones wait what is left of
    // it: "a 2-6 minute interruption" [WP].
    let legacy = group(&["win2000", "xp-sp1"]);
    assert!(legacy.len() >= 10, "{} legacy rows", legacy.len());
    for r in legacy.iter().filter(|r| r.in_progress) {
        assert!((5.0..=6.0).contains(&mins(r)), "{r:?}");
        assert!(r.app_failed, "TCP gives up long before 5 minutes: {r:?}");
    }
    let legacy_min: Vec<f64> = legacy.iter().map(mins).collect();
    assert!(legacy_min.iter().all(|&m| m <= 6.0));
    let p95 = quantile(legacy_min.clone(), 0.95);
    assert!((2.0..=6.0).contains(&p95), "legacy p95 {p95} min");
    // XP SP2/SP3 and Server 2003: the 1-minute timer, "about a minute or two".
    let modern = group(&["xp-sp2", "xp-sp3", "server2003-sp1", "server2003-sp2"]);
    assert!(modern.len() >= 20, "{} XP SP2/2003 rows", modern.len());
    for r in modern.iter().filter(|r| r.in_progress) {
        assert!((1.0..=2.0).contains(&mins(r)), "{r:?}");
    }
    let p95 = quantile(modern.iter().map(mins).collect(), 0.95);
    assert!((1.0..=2.0).contains(&p95), "XP SP2/2003 p95 {p95} min");
    // Vista / 2008 renegotiate at a TCP retransmission: seconds, and the application
    // carries on.
    let vista = group(&["vista", "server2008"]);
    assert!(vista.len() >= 20, "{} Vista rows", vista.len());
    for r in &vista {
        assert!(r.stall_s <= 15.0 && !r.app_failed, "{r:?}");
    }
    // Whatever met a cluster that had not converged yet, or went clear: convergence plus
    // TCP's own retry alignment.
    for r in all.iter().filter(|r| r.detection == "none") {
        assert!(r.stall_s <= 15.0, "{r:?}");
    }
    // The summary reports the same distribution.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let max = &summary["failover_stall_max_s_by_os"];
    // By OS family: XP mixes SP1 (5 minutes) and SP2/SP3 (1 minute).
    assert!(max["win2000"].as_f64().unwrap() >= 5.0 * 60.0 && max["xp"].as_f64().unwrap() >= 5.0 * 60.0);
    assert!(max["vista"].as_f64().unwrap() <= 15.0);
    assert!(dir.join("plots/failover_stalls.svg").exists());
}

#[test]
fn exempting_the_vips_leaves_tcps_own_failover_time_for_everyone() {
    let dir = run_variant("nlb-stress-exempt", &format!("{STRESS}exempt_vips = true\n"));
    let all = rows(&dir);
    assert!(all.len() > 50, "{} affected connections", all.len());
    for r in &all {
        assert!(!r.ipsec && r.detection == "none", "{r:?}");
        // Convergence (5 s) and the next transmission: at most the SYN retry at 9 s,
        // unless the whole cluster was down.
        assert!(r.stall_s <= 10.0 || r.cluster_down, "{r:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for (os, p95) in summary["failover_stall_p95_s_by_os"].as_object().unwrap() {
        assert!(p95.as_f64().unwrap() <= 10.0, "{os}: {p95}");
    }
}

#[test]
fn without_failures_nothing_stalls() {
    let dir = run_variant("nlb-none", "[nlb]\nrandom_failures = false\n");
    assert!(rows(&dir).is_empty());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failover_stall_p95_s_by_os"], serde_json::json!({}));
    let helpdesk = std::fs::read_to_string(dir.join("helpdesk.csv")).unwrap();
    let mut r = csv::Reader::from_reader(helpdesk.as_bytes());
    let col = r.headers().unwrap().iter().position(|h| h == "calls_failover_stall").unwrap();
    assert!(r.records().all(|x| &x.unwrap()[col] == "0"));
}

/// The reduced end-state campus's IPsec layer, a managed Vista client and a cluster of
/// `affinity`.
fn client_and_cluster(affinity: Affinity) -> (Population, domiso::model::secnet::SecNet<'static>, HostId, ClusterId) {
    let (sc, campus) = reduced();
    let pop = Population::new(campus);
    let net = run::build_secnet(sc, campus, 1, &pop).unwrap();
    let client = campus
        .hosts
        .iter()
        .position(|h| h.is_managed() && h.os == Os::Vista && matches!(h.kind, HostKind::Client(_)))
        .map(HostId::from_index)
        .unwrap();
    let cluster = campus.clusters.iter().position(|c| c.affinity == affinity).map(ClusterId::from_index).unwrap();
    (pop, net, client, cluster)
}

#[test]
fn an_sa_pins_a_client_to_one_node_whatever_the_affinity() {
    let (pop, mut net, client, cluster) = client_and_cluster(Affinity::None);
    let web = Service { protocol: 6, port: 80 };
    let t0 = SimTime::start_of_day(0) + SimDuration::from_hours(9);
    let second = SimDuration::SECOND;
    // Within the SA's life: every connection goes to the node of the first, whatever the
    // per-connection draw of a no-affinity cluster.
    let first = net.connect(&pop, client, Endpoint::Vip(cluster), web, 0, t0, second, 10_000, 0.5, 0.1);
    assert!(matches!(first.outcome, Outcome::Protected { .. }), "{:?}", first.outcome);
    for k in 1..40u32 {
        let u = f64::from(k) / 40.0;
        let c = net.connect(
            &pop,
            client,
            Endpoint::Vip(cluster),
            web,
            0,
            t0 + second.saturating_mul(u64::from(k)),
            second,
            1,
            0.5,
            u,
        );
        assert_eq!(c.responder, first.responder, "connection {k}");
    }
    // Once the SA has idled out, a no-affinity cluster spreads the client's connections.
    let mut later = std::collections::BTreeSet::new();
    for k in 0..40u32 {
        let at = t0 + SimDuration::from_hours(u64::from(k + 1));
        let u = f64::from(k) / 40.0;
        later.insert(net.connect(&pop, client, Endpoint::Vip(cluster), web, 0, at, second, 1, 0.5, u).responder);
    }
    assert!(later.len() > 1, "no affinity without an SA: {later:?}");
}

#[test]
fn single_affinity_keeps_a_client_on_one_node_and_a_failure_moves_only_its_clients() {
    let (_, campus) = reduced();
    let (pop, mut net, client, cluster) = client_and_cluster(Affinity::Single);
    let web = Service { protocol: 6, port: 80 };
    let t0 = SimTime::start_of_day(0) + SimDuration::from_hours(9);
    let mut nodes = std::collections::BTreeSet::new();
    for k in 0..20u32 {
        // An hour apart: no SA carries over, the affinity alone decides.
        let at = t0 + SimDuration::from_hours(u64::from(k));
        nodes.insert(
            net.connect(&pop, client, Endpoint::Vip(cluster), web, 0, at, SimDuration::SECOND, 1, 0.5, 0.3).responder,
        );
    }
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = *nodes.iter().next().unwrap();
    let first = campus.clusters[cluster.index()].nodes.start;
    // The node fails while the client holds an SA to it (a connection in progress).
    let t1 = SimTime::start_of_day(1) + SimDuration::from_hours(9);
    let c = net.connect(&pop, client, Endpoint::Vip(cluster), web, 0, t1, SimDuration::from_mins(10), 1, 0.5, 0.3);
    assert_eq!(c.responder, node);
    let fail = t1 + SimDuration::from_mins(1);
    let stalls = net.node_down(cluster, node.0 - first, fail, fail + SimDuration::HOUR);
    net.audit(fail).unwrap();
    let mine: Vec<_> = stalls.iter().filter(|s| s.client == client).collect();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].in_progress && mine[0].ipsec);
    // Vista: renegotiation at a retransmission once the cluster has converged.
    assert!(mine[0].stall.stall <= SimDuration::from_secs(10), "{:?}", mine[0]);
    // After convergence the client goes to another node, with no stall.
    let after = fail + SimDuration::from_secs(30);
    let c = net.connect(&pop, client, Endpoint::Vip(cluster), web, 0, after, SimDuration::SECOND, 1, 0.5, 0.3);
    assert_ne!(c.responder, node);
    assert!(c.stall.is_none(), "{:?}", c.stall);
    net.audit(after).unwrap();
}
