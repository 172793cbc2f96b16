//! Whole runs of the reduced campus: the run directory's files, determinism, and the traffic
//! totals against what the model's rates predict.

use std::collections::BTreeMap;
use std::path::Path;

use domiso::model::traffic::TrafficModel;
use domiso::run::{self, RunRequest};

use crate::common::{domiso, reduced, scratch};

/// Measurement keys that describe the machine, not the model (the determinism contract's
/// only exceptions).
const MEASUREMENTS: [&str; 7] = domiso::output::record::MANIFEST_MEASUREMENT_KEYS;

/// Every file under `dir` (recursively), by path relative to it.
fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn without_measurements(bytes: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    if let Some(obj) = v.as_object_mut() {
        for k in MEASUREMENTS {
            obj.remove(k);
        }
        // The manifest's digest and size of summary.json cover its wall_s.
        for table in ["files", "sizes"] {
            if let Some(files) = obj.get_mut(table).and_then(|f| f.as_object_mut()) {
                files.remove("summary.json");
            }
        }
    }
    v
}

/// Asserts two run directories are byte-identical but for the measurement keys.
pub fn assert_same_run(a: &Path, b: &Path) {
    let (fa, fb) = (read_dir(a), read_dir(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>(), "same files");
    for (name, bytes) in &fa {
        if name == "manifest.json" || name == "summary.json" {
            assert_eq!(without_measurements(bytes), without_measurements(&fb[name]), "{name} differs");
        } else {
            assert!(bytes == &fb[name], "{name} differs between the two runs");
        }
    }
}

#[test]
fn run_writes_the_contracted_files_and_is_deterministic() {
    let dir = scratch("run-determinism");
    // Two run directories that differ in name, depth and how they are given (absolute, and
    // relative to the working directory): no output may depend on where it is written.
    let a = dir.join("a");
    let b_relative = Path::new("target/test-scratch/run-determinism/elsewhere/nested/another-name");
    let b = crate::common::repo().join(b_relative);
    assert!(b.starts_with(&dir));
    for out in [a.as_path(), b_relative] {
        let o = domiso(&["run", "scenarios/reduced-campus.toml", "--out", out.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty(), "--quiet prints nothing");
    }
    assert_same_run(&a, &b);
    for f in ["manifest.json", "summary.json", "timeline.csv", "wan_links.csv", "traffic_by_app.csv", "campus.json"] {
        assert!(a.join(f).exists(), "{f} written");
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("summary.json")).unwrap()).unwrap();
    for key in [
        "hosts_total",
        "clients_total",
        "servers_total",
        "domain_joined_pct_start",
        "domain_joined_pct_end",
        "boundary_pct_of_joined",
        "bandwidth_overhead_mean_pct",
        "bandwidth_overhead_app_min_pct",
        "bandwidth_overhead_app_max_pct",
        "failover_stall_p95_s_by_os",
        "failover_stall_max_s_by_os",
        "helpdesk_ipsec_calls_peak_month",
        "helpdesk_total_calls_peak_month",
        "protected_traffic_pct_end",
        "sa_negotiations_total",
        "blocked_connections_total",
        "events_processed",
        "wall_s",
    ] {
        assert!(summary.get(key).is_some(), "summary.json has {key}");
    }
    assert_eq!(summary["clients_total"], 26_000);
    assert!(summary["events_processed"].as_u64().unwrap() > 1_000_000);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    for f in ["timeline.csv", "summary.json", "wan_links.csv"] {
        let digest = domiso::output::writer::sha256_hex(&std::fs::read(a.join(f)).unwrap());
        assert_eq!(manifest["files"][f], digest, "manifest digest of {f}");
    }
    // A different seed gives a different day.
    let c = dir.join("c");
    let o = domiso(&["run", "scenarios/reduced-campus.toml", "--out", c.to_str().unwrap(), "--quiet", "--seed", "2"]);
    assert!(o.status.success());
    assert_ne!(std::fs::read(a.join("timeline.csv")).unwrap(), std::fs::read(c.join("timeline.csv")).unwrap());
    // The manifest's performance figures (issue 8): the loop's share of the run, the
    // queue's load, memory per host and per live SA.
    let m = &manifest;
    let (wall, sim) = (m["wall_s"].as_f64().unwrap(), m["sim_s"].as_f64().unwrap());
    assert!(sim > 0.0 && sim <= wall, "loop time {sim} within wall time {wall}");
    // The loop thread's CPU time is within the loop's time (Linux tells it).
    let cpu = m["sim_cpu_s"].as_f64().expect("the loop's CPU time");
    assert!(cpu > 0.0 && cpu <= sim, "loop CPU {cpu} within loop time {sim}");
    assert!(m["pending_max"].as_u64().unwrap() >= m["pending_mean"].as_u64().unwrap());
    assert!(m["pending_mean"].as_u64().unwrap() > 0);
    let hosts = m["hosts"].as_u64().unwrap();
    if let Some(rss) = m["peak_rss_bytes"].as_u64() {
        assert_eq!(m["rss_bytes_per_host"].as_u64().unwrap(), rss / hosts);
    }
    let (table, live) = (m["sa_table_bytes"].as_u64().unwrap(), m["sa_live_peak"].as_u64().unwrap());
    assert!(live > 0 && table > 0);
    assert_eq!(m["sa_bytes_per_live_sa"].as_u64().unwrap(), table / live);
}

#[test]
fn run_set_overrides_a_scenario_key_and_counts_in_its_digest() {
    let dir = scratch("run-set");
    let (plain, small) = (dir.join("plain"), dir.join("small"));
    let args = |out: &Path, extra: &[&str]| {
        let mut v = vec!["run", "scenarios/reduced-secure-request-day.toml", "--quiet", "--days", "1"];
        v.extend_from_slice(&["--out", out.to_str().unwrap()]);
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| domiso(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(args(&plain, &["--set", "campus.clients=5000", "--set", "campus.users=2700"])).status.success());
    assert!(run(args(&small, &["--set", "campus.clients=4000", "--set", "campus.users=2700"])).status.success());
    let read = |d: &Path, f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(f)).unwrap()).unwrap()
    };
    assert_eq!(read(&plain, "summary.json")["clients_total"], 5000);
    assert_eq!(read(&small, "summary.json")["clients_total"], 4000);
    assert_ne!(read(&plain, "manifest.json")["scenario_sha256"], read(&small, "manifest.json")["scenario_sha256"]);
    // A bad override is an input error naming the key, and writes nothing.
    let bad = dir.join("bad");
    let o = run(args(&bad, &["--set", "campus.clients=lots"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("campus.clients"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!bad.exists());
    let o = run(args(&bad, &["--set", "=3"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn session_counts_match_the_rates_the_model_was_given() {
    let (sc, campus) = reduced();
    let dir = scratch("run-rates");
    let req = RunRequest {
        scenario: sc,
        seed: 1,
        days: 1,
        out: dir.join("out"),
        granularity: run::Granularity::Sa,
        pcap: None,
        draw_ahead: false,
    };
    run::execute(&req, &mut |_| {}).unwrap();
    let traffic = TrafficModel::new(sc);
    let factor = traffic.day_factor(0);
    let text = std::fs::read_to_string(dir.join("out/traffic_by_app.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    for (i, rec) in rows.records().enumerate() {
        let rec = rec.unwrap();
        let app = &sc.traffic.apps[i];
        assert_eq!(&rec[1], app.name.as_str());
        let got: f64 = rec[2].parse().unwrap();
        let expected: f64 =
            campus.hosts.iter().filter(|h| app.from.contains(&h.kind)).count() as f64 * app.sessions_per_day * factor;
        // Poisson: five standard deviations.
        assert!(
            (got - expected).abs() <= 5.0 * expected.sqrt() + 1.0,
            "{}: {got} sessions, expected {expected:.0}",
            app.name
        );
        // Mean bytes per session: median x exp(sigma^2/2), loose for heavy tails.
        if app.size_sigma <= 1.0 && got > 10_000.0 {
            let bytes: f64 = rec[3].parse().unwrap();
            let mean = (app.bytes_up_median + app.bytes_down_median) as f64 * (app.size_sigma.powi(2) / 2.0).exp();
            let ratio = bytes / got / mean;
            assert!((0.95..1.05).contains(&ratio), "{}: mean session {:.0} B vs {mean:.0}", app.name, bytes / got);
        }
    }
}

#[test]
fn tcp_transfers_are_bounded_by_bottleneck_and_window() {
    use domiso::engine::SimDuration;
    use domiso::model::campus::Endpoint;
    use domiso::model::ids::{AppId, BuildingId, HostId};
    use domiso::model::topology::LinkKind;
    use domiso::model::traffic::Session;
    let (sc, c) = reduced();
    let traffic = TrafficModel::new(sc);
    let t = &c.topology;
    // The thinnest branch WAN link, and a building there.
    let wan = t.links().iter().filter(|l| l.kind == LinkKind::Wan).min_by_key(|l| l.capacity_bps).unwrap();
    let branch_building = c.buildings.iter().position(|b| b.site == wan.site).unwrap();
    let hq_building = c.buildings.iter().position(|b| b.site.index() == 0).unwrap();
    let route = t.route(
        BuildingId::from_index(branch_building),
        wan.site,
        BuildingId::from_index(hq_building),
        c.buildings[hq_building].site,
    );
    let tcp_app = sc.traffic.apps.iter().position(|a| a.protocol == domiso::model::kinds::Protocol::Tcp).unwrap();
    let session = |bytes: u64| Session {
        app: AppId::from_index(tcp_app),
        peer: Endpoint::Host(HostId(0)),
        bytes_up: bytes,
        bytes_down: 1000,
        duration: SimDuration::from_millis(10),
        u_ike: 0.5,
        u_node: 0.5,
    };
    let window_bps = sc.traffic.tcp_window_bytes as f64 * 8.0 / route.rtt().as_secs_f64();
    let rate = window_bps.min(wan.capacity_bps as f64);
    let d = traffic.network_duration(&session(100_000_000), &route);
    let want = 100_000_000.0 * 8.0 / rate;
    assert!((d.as_secs_f64() - want).abs() < 1e-3 * want, "100 MB over the WAN: {d} vs {want:.1} s");
    assert!(d.as_secs_f64() >= 100e6 * 8.0 / wan.capacity_bps as f64, "never faster than the bottleneck");
    // Small transfers keep their drawn duration.
    assert_eq!(traffic.network_duration(&session(100), &route), SimDuration::from_millis(10));
    // Within one building there is no network limit at all.
    let same = t.route(
        BuildingId::from_index(hq_building),
        c.buildings[hq_building].site,
        BuildingId::from_index(hq_building),
        c.buildings[hq_building].site,
    );
    assert_eq!(traffic.network_duration(&session(100_000_000), &same), SimDuration::from_millis(10));
}

#[test]
fn a_capture_path_that_cannot_be_written_is_refused_before_the_run() {
    let dir = scratch("run-pcap-target");
    let scenario = crate::common::scenario_path("reduced-secure-request-day.toml");
    let out = dir.join("out");
    for (pcap, says) in [(dir.join("no-such-dir").join("c.pcap"), "does not exist"), (dir.clone(), "is a directory")] {
        let o = domiso(&[
            "run",
            scenario.to_str().unwrap(),
            "--granularity",
            "packet",
            "--pcap",
            pcap.to_str().unwrap(),
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(pcap.to_str().unwrap()) && err.contains(says), "{err}");
        assert!(!out.exists(), "a refused run wrote its directory");
    }
    // Refused before anything is simulated: the run reports no progress at all.
    let (sc, _) = reduced();
    let req = RunRequest {
        scenario: sc,
        seed: 1,
        days: 1,
        out: out.clone(),
        granularity: run::Granularity::Packet,
        pcap: Some(dir.join("no-such-dir").join("c.pcap")),
        draw_ahead: true,
    };
    let mut reports = 0;
    assert!(matches!(run::execute(&req, &mut |_| reports += 1), Err(run::RunError::Pcap { .. })));
    assert_eq!(reports, 0, "the run was simulated before its capture path was checked");
}
