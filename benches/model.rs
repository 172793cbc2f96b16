//! Criterion benches of the model at the scales issue 8 tracks: campus generation, one SA
//! day of the reduced campus, packet encapsulation (sizes in closed form and real ESP
//! bytes), and a small whole rollout. Each measures a whole piece of work a user waits
//! for, so the figures compare directly with `domiso run` timings (`farm-bench`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domiso::model::campus::Campus;
use domiso::model::esp::{self, Flow, L4, Sa, Spi, TcpFlags};
use domiso::model::wire::{Encap, EncapMode, IpVersion, Suite, encapsulated_len};
use domiso::run::{self, Granularity, RunRequest};
use domiso::scenario::build::{self, Override, Scenario};

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    build::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The white-paper rollout on a 3,000-client campus.
fn small_rollout(days: u32) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/reduced-campus.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let set = |path: &str, value: toml::Value| Override { path: path.into(), value, origin: None };
    build::parse_with(
        &path.display().to_string(),
        &text,
        &[
            set("campus.clients", 3000.into()),
            set("campus.users", 1600.into()),
            set("campus.sites", 12.into()),
            set("campus.regions", 2.into()),
            set("nlb.clusters", 4.into()),
            set("run.days", i64::from(days).into()),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench-scratch").join(name)
}

fn run_once(sc: &Scenario, days: u32, name: &str) -> u64 {
    let req = RunRequest {
        scenario: sc,
        seed: 1,
        days,
        out: out_dir(name),
        granularity: Granularity::Sa,
        pcap: None,
        draw_ahead: true,
    };
    run::execute(&req, &mut |_| {}).unwrap().summary.events_processed
}

fn campus(c: &mut Criterion) {
    let reduced = scenario("reduced-secure-request-day.toml");
    let mut g = c.benchmark_group("campus");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(u64::from(reduced.campus.clients)));
    g.bench_function("generate/reduced-27k-hosts", |b| b.iter(|| black_box(Campus::generate(&reduced, 1).unwrap())));
    g.finish();
}

fn sa_day(c: &mut Criterion) {
    let reduced = scenario("reduced-secure-request-day.toml");
    let events = run_once(&reduced, 1, "sa-day");
    let mut g = c.benchmark_group("sa-day");
    g.sample_size(10).measurement_time(Duration::from_secs(40));
    g.throughput(Throughput::Elements(events));
    g.bench_function("reduced-secure-request-day", |b| b.iter(|| black_box(run_once(&reduced, 1, "sa-day"))));
    g.finish();
}

fn wire(c: &mut Criterion) {
    let encap = Encap { suite: Suite::EspNullSha1, mode: EncapMode::Transport, ip: IpVersion::V4, nat_t: false };
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1461));
    g.bench_function("encapsulated_len/esp-null-sha1/40-1500", |b| {
        b.iter(|| (40..=1500u32).map(|len| encapsulated_len(&encap, black_box(len)).unwrap()).sum::<u32>())
    });
    let flow = Flow {
        src: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 4, 5, 6)),
        l4: L4::Tcp { src_port: 49_731, dst_port: 445, seq: 1, ack: 1, flags: TcpFlags::PSH_ACK },
    };
    let inner = esp::build_inner(&flow, 1500).unwrap();
    g.throughput(Throughput::Bytes(inner.len() as u64));
    for suite in [Suite::EspNullSha1, Suite::EspAes128Gcm] {
        let mut sa = Sa::from_seed(1, Spi(0x1000), Encap { suite, ..encap }).unwrap();
        g.bench_function(format!("encapsulate/{}/1500", suite.name()), |b| {
            b.iter(|| black_box(esp::encapsulate(&mut sa, black_box(&inner)).unwrap()))
        });
    }
    g.finish();
}

fn rollout(c: &mut Criterion) {
    let sc = small_rollout(28);
    let events = run_once(&sc, 28, "rollout");
    let mut g = c.benchmark_group("rollout");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(events));
    g.bench_function("whitepaper-3k-clients-28-days", |b| b.iter(|| black_box(run_once(&sc, 28, "rollout"))));
    g.finish();
}

// No HTML plots: plotters here is built with the embedded-font backend (for domiso's own
// charts), and criterion's plots would look for system fonts that a build machine may lack.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = campus, sa_day, wire, rollout
}
criterion_main!(benches);
