//! Packet granularity: the packet model's closed form against the packet-by-packet sum,
//! the white-paper overhead calibration emerging from packet sizes and the byte rules, and
//! the packet-level outputs of a run.

use std::sync::OnceLock;

use domiso::model::kinds::Protocol;
use domiso::model::packets::{OverMtu, PacketKind, PacketModel, Shape};
use domiso::model::wire::{Encap, EncapMode, IpVersion, Mtu, Suite};
use proptest::prelude::*;

use crate::common::{domiso, run_into, scratch, tshark_available, tshark_fields};

fn encaps() -> Vec<Option<Encap>> {
    let mut v = vec![None];
    for suite in Suite::ALL {
        for mode in [EncapMode::Transport, EncapMode::Tunnel] {
            for nat_t in [false, true] {
                if nat_t && suite == Suite::AhSha1 {
                    continue;
                }
                v.push(Some(Encap { suite, mode, ip: IpVersion::V4, nat_t }));
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn closed_form_equals_the_packet_by_packet_sum(
        udp in any::<bool>(),
        up in 0u64..3_000_000,
        down in 0u64..3_000_000,
        m_up in 1u64..70_000,
        m_down in 1u64..70_000,
        encap in 0usize..23,
        fragment in any::<bool>(),
        mtu in prop::sample::select(vec![576u32, 1280, 1500, 9000]),
    ) {
        let (m_up, m_down) = if udp { (m_up.min(1400), m_down.min(1400)) } else { (m_up, m_down) };
        let shape = Shape { protocol: if udp { Protocol::Udp } else { Protocol::Tcp }, message_up: m_up, message_down: m_down };
        let model = PacketModel { mtu: Mtu::new(mtu).unwrap(), over_mtu: if fragment { OverMtu::Fragment } else { OverMtu::PathMtu }, ip: IpVersion::V4 };
        let all = encaps();
        let e = all[encap % all.len()];
        let packets = model.packets(&shape, up, down, e.as_ref());
        prop_assert_eq!(model.sum(&packets, e.as_ref()), model.totals(&shape, up, down, e.as_ref()));
        // The runs of identical packets are the same packets, counted.
        let mut one_by_one = std::collections::BTreeMap::new();
        for p in &packets {
            *one_by_one.entry(format!("{p:?}")).or_insert(0u64) += 1;
        }
        let mut counted = std::collections::BTreeMap::new();
        for (p, n) in model.packet_runs(&shape, up, down, e.as_ref()) {
            *counted.entry(format!("{p:?}")).or_insert(0u64) += n;
        }
        prop_assert_eq!(one_by_one, counted);
        // Payload adds up to the session's bytes, each way.
        let payload = |dir: u8| packets.iter().filter(|p| p.dir == dir).map(|p| u64::from(p.payload)).sum::<u64>();
        prop_assert_eq!(payload(0), up);
        prop_assert_eq!(payload(1), down);
        // Under path-MTU discovery nothing on the wire exceeds the MTU.
        if !fragment && !udp {
            for p in &packets {
                let (n, bytes) = model.wire_of(e.as_ref(), p.ip_len);
                prop_assert_eq!(n, 1);
                prop_assert!(bytes <= u64::from(mtu));
            }
        }
        // IPsec never shrinks a session.
        if e.is_some() {
            let clear = model.totals(&shape, up, down, None);
            prop_assert!(model.totals(&shape, up, down, e.as_ref()).bytes_total() > clear.bytes_total());
        }
    }
}

#[test]
fn delayed_acks_and_the_ack_share() {
    let model = PacketModel { mtu: Mtu::ETHERNET, over_mtu: OverMtu::PathMtu, ip: IpVersion::V4 };
    // A one-way bulk transfer of 100 full segments: 50 pure ACKs back.
    let shape = Shape { protocol: Protocol::Tcp, message_up: 146_000, message_down: 1 };
    let p = model.packets(&shape, 146_000, 0, None);
    let data = p.iter().filter(|x| x.kind == PacketKind::Data).count();
    let acks = p.iter().filter(|x| x.kind == PacketKind::Ack && x.dir == 1).count();
    assert_eq!(data, 100);
    assert_eq!(acks, 50 + 1, "every second segment, plus the teardown ACK");
    // The worked example of DOMAIN.md: a 40-byte ACK becomes 64 bytes under ESP-null SHA-1.
    let esp = Encap { suite: Suite::EspNullSha1, mode: EncapMode::Transport, ip: IpVersion::V4, nat_t: false };
    assert_eq!(model.wire_of(Some(&esp), 40), (1, 64));
    // Under path-MTU discovery full segments carry 1438 bytes instead of 1460.
    assert_eq!(model.mss(Some(&esp)), 1438);
    let t = model.totals(&shape, 146_000, 0, Some(&esp));
    assert_eq!(t.packets[0], 146_000u64.div_ceil(1438) + 4, "data segments, SYN, handshake ACK, FIN, final ACK");
}

/// A packet-granularity day of the reduced campus (shared by the tests below).
fn packet_run() -> &'static std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_into("packet-day", &["scenarios/reduced-secure-request-day.toml", "--granularity", "packet"])
    })
}

fn rows(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| h.iter().zip(rec.unwrap().iter()).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect()
}

#[test]
fn overhead_lands_where_the_paper_measured() {
    let dir = packet_run();
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let mean = summary["bandwidth_overhead_mean_pct"].as_f64().unwrap();
    assert!((2.5..=3.5).contains(&mean), "[WP] mean increase about 3%, got {mean}");
    let (lo, hi) = (
        summary["bandwidth_overhead_app_min_pct"].as_f64().unwrap(),
        summary["bandwidth_overhead_app_max_pct"].as_f64().unwrap(),
    );
    assert!((2.5..=3.5).contains(&lo) && (7.0..=9.5).contains(&hi), "[WP] 3-9% by application, got {lo}..{hi}");
    let apps = rows(&dir.join("overhead_by_app.csv"));
    let header: Vec<&str> = ["app", "packets", "clear_bytes", "wire_bytes", "overhead_pct"].to_vec();
    for h in header {
        assert!(apps[0].contains_key(h), "overhead_by_app.csv has {h}");
    }
    for r in &apps {
        let clear: f64 = r["clear_bytes"].parse().unwrap();
        let wire: f64 = r["wire_bytes"].parse().unwrap();
        if clear > 0.0 {
            let pct: f64 = r["overhead_pct"].parse().unwrap();
            assert!((pct - 100.0 * (wire - clear) / clear).abs() < 1e-3, "{} overhead consistent", r["app"]);
        } else {
            assert_eq!(r["overhead_pct"], "", "{}: exempt traffic has no overhead (empty, not 0)", r["app"]);
        }
    }
    // Interactive small-packet traffic pays the most, bulk transfers the least.
    let pct = |app: &str| apps.iter().find(|r| r["app"] == app).unwrap()["overhead_pct"].parse::<f64>().unwrap();
    assert!(pct("rdp") > pct("http-intranet") && pct("http-intranet") > pct("file-replication"));
    // Infrastructure traffic is exempt: no IPsec bytes at all.
    assert_eq!(apps.iter().find(|r| r["app"] == "dns").unwrap()["packets"], "0");
}

#[test]
fn packet_run_reports_wan_before_and_after_and_cpu() {
    let dir = packet_run();
    let links = rows(&dir.join("wan_links.csv"));
    let mut higher = 0;
    for l in &links {
        let wire: f64 = l["bytes_up"].parse::<f64>().unwrap() + l["bytes_down"].parse::<f64>().unwrap();
        let clear: f64 = l["bytes_up_clear"].parse::<f64>().unwrap() + l["bytes_down_clear"].parse::<f64>().unwrap();
        assert!(wire >= clear, "IPsec never removes bytes from a link");
        higher += usize::from(wire > clear);
        assert!(["true", "false"].contains(&l["pushed_over_threshold"].as_str()));
    }
    assert!(higher * 2 > links.len(), "most links carry some protected traffic");
    let tl = rows(&dir.join("timeline.csv"));
    let wire: f64 = tl[0]["ip_bytes_wire"].parse().unwrap();
    let clear: f64 = tl[0]["ip_bytes_clear"].parse().unwrap();
    assert!(wire > clear && wire < clear * 1.05);
    let servers = rows(&dir.join("servers.csv"));
    assert!(servers.iter().any(|s| s["peak_hour_ipsec_cpu_pct"].parse::<f64>().unwrap() > 0.0));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary["client_ipsec_cpu_pct_mean"].as_f64().unwrap() < 1.0, "[WP] ESP-null is negligible on clients");
    assert!(summary["packet_sample_packets"].as_u64().unwrap() > 10_000);
    let sizes = rows(&dir.join("packet_sizes.csv"));
    let acks: u64 = sizes.iter().map(|r| r["pure_acks"].parse::<u64>().unwrap()).sum();
    let all: u64 = sizes.iter().map(|r| r["packets"].parse::<u64>().unwrap()).sum();
    let share = acks as f64 / all as f64;
    assert!((0.15..0.5).contains(&share), "pure ACKs are a large share of packets: {share}");
}

#[test]
fn overhead_follows_the_mechanisms() {
    // Encryption (AES-CBC: 16-byte IV and 16-byte blocks) costs more bytes and more CPU
    // than ESP-null; fragmentation instead of path-MTU discovery changes the bill.
    let dir = scratch("packet-mechanisms");
    let base = "extends = \"../../../scenarios/reduced-secure-request-day.toml\"\nname = \"mech\"\n[campus]\nclients = 4000\nusers = 2200\nsites = 10\nregions = 2\n[nlb]\nclusters = 2\n";
    let run = |name: &str, extra: &str| -> serde_json::Value {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, format!("{base}[packet]\n{extra}\n")).unwrap();
        let out = dir.join(name);
        let o = domiso(&[
            "run",
            file.to_str().unwrap(),
            "--granularity",
            "packet",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
    };
    let null = run("null", "");
    let cbc = run("cbc", "suite = \"esp-aes128cbc-sha1\"");
    let frag = run("frag", "over_mtu = \"fragment\"");
    let m = |v: &serde_json::Value| v["bandwidth_overhead_mean_pct"].as_f64().unwrap();
    assert!(m(&cbc) > m(&null) + 0.5, "CBC pads to 16 bytes and sends a 16-byte IV: {} vs {}", m(&cbc), m(&null));
    assert!(m(&frag) != m(&null));
    let cpu = |v: &serde_json::Value| v["server_ipsec_cpu_pct_max"].as_f64().unwrap();
    assert!(cpu(&cbc) > cpu(&null), "encryption costs CPU");
}

#[test]
fn pcap_of_a_window_opens_cleanly_in_tshark() {
    let dir = scratch("packet-pcap");
    let pcap = dir.join("window.pcap");
    let out = domiso(&[
        "run",
        "scenarios/reduced-secure-request-day.toml",
        "--granularity",
        "packet",
        "--out",
        dir.join("run").to_str().unwrap(),
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let packets = domiso::output::pcap::read_pcap(&pcap).unwrap();
    assert!(packets.len() > 1000, "the window holds a few thousand packets: {}", packets.len());
    assert!(packets.windows(2).all(|w| w[0].time_ns <= w[1].time_ns), "in time order");
    // ESP with real SPIs: every ESP packet of an SA carries its SPI and the next sequence
    // number (the same crate reads back what it wrote).
    let mut seqs: std::collections::BTreeMap<u32, u32> = Default::default();
    let mut esp = 0;
    for p in &packets {
        let ip = &p.ip_packet;
        if ip[9] == 50 {
            esp += 1;
            let spi = u32::from_be_bytes(ip[20..24].try_into().unwrap());
            let seq = u32::from_be_bytes(ip[24..28].try_into().unwrap());
            let last = seqs.insert(spi, seq).unwrap_or(0);
            assert_eq!(seq, last + 1, "SPI {spi:#x}: sequence numbers run on consecutively");
        }
    }
    assert!(esp > packets.len() / 2 && seqs.len() > 10, "{esp} ESP packets on {} SAs", seqs.len());
    if !tshark_available() {
        return;
    }
    let checks = [
        "ip.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
        "esp.enable_null_encryption_decode_heuristic:TRUE",
    ];
    let rows = tshark_fields(
        &pcap,
        &checks,
        &["frame.number", "_ws.malformed", "_ws.expert.severity", "esp.spi", "esp.sequence", "tcp.srcport"],
    );
    assert_eq!(rows.len(), packets.len(), "tshark reads every frame");
    let mut by_spi: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for r in &rows {
        assert!(r[1].is_empty(), "frame {} is malformed", r[0]);
        let worst = r[2].split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().unwrap()).max().unwrap_or(0);
        assert!(worst < 0x0060_0000, "frame {}: expert warning or worse ({worst:#x})", r[0]);
        if !r[3].is_empty() {
            by_spi.entry(r[3].clone()).or_default().push(r[4].parse().unwrap());
            assert!(!r[5].is_empty(), "frame {}: the inner TCP of ESP-null decodes", r[0]);
        }
    }
    for (spi, s) in &by_spi {
        assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "SPI {spi}: consecutive sequence numbers");
    }
    assert_eq!(by_spi.len(), seqs.len(), "tshark sees the same SAs");
}
