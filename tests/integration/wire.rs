//! The packet layer: `model::wire` sizes against hand-computed RFC arithmetic, its
//! invariants (proptest), the independent byte builder `model::esp` held to the same lengths
//! for every suite, mode, IP version, NAT-T and inner length up to 9000 bytes, ESP/AH round
//! trips with real ICVs, pcap files round-tripped through `pcap-file`, and (when tshark is
//! installed) Wireshark's own dissection of what we write.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domiso::model::esp::{self, Endpoints, EspError, Flow, L4, Sa, Spi, TcpFlags};
use domiso::model::wire::{
    self, Encap, EncapMode, IMIX_7_4_1, IpVersion, Mtu, Suite, WireError, encapsulated_len, fragment_lens,
    max_inner_len,
};
use domiso::output::pcap::{PcapPacket, read_pcap, write_pcap};
use proptest::prelude::*;

use crate::common::{scratch, tshark_available, tshark_fields};

use EncapMode::{Transport, Tunnel};
use IpVersion::{V4, V6};
use Suite::*;

fn enc(suite: Suite, mode: EncapMode, ip: IpVersion, nat_t: bool) -> Encap {
    Encap { suite, mode, ip, nat_t }
}

/// Every encapsulation that exists (AH with NAT-T does not).
fn valid_encaps() -> Vec<Encap> {
    Encap::all().filter(|e| e.suite.is_esp() || !e.nat_t).collect()
}

fn mtu(bytes: u32) -> Mtu {
    Mtu::new(bytes).unwrap()
}

// ---------------------------------------------------------------------------------------
// Table tests: DOMAIN.md section 4 and hand-computed RFC arithmetic.
// ---------------------------------------------------------------------------------------

#[test]
fn domain_worked_examples() {
    let campus = Encap::CAMPUS;
    // ESP-NULL + HMAC-SHA1-96, transport, IPv4: payload = L - 20, pad = (-(payload + 2)) mod 4,
    // wire = 20 + 8 + payload + pad + 2 + 12.
    // 40:   payload 20,   22 mod 4 = 2 -> pad 2: 20 + 8 + 20 + 2 + 2 + 12     = 64
    // 576:  payload 556, 558 mod 4 = 2 -> pad 2: 20 + 8 + 556 + 2 + 2 + 12    = 600
    // 1500: payload 1480, 1482 mod 4 = 2 -> pad 2: 20 + 8 + 1480 + 2 + 2 + 12 = 1524
    assert_eq!(encapsulated_len(&campus, 40), Ok(64));
    assert_eq!(encapsulated_len(&campus, 576), Ok(600));
    assert_eq!(encapsulated_len(&campus, 1500), Ok(1524));
    // 1524 > 1500: fragments (1480-byte first payload) or PMTU: 1478 -> payload 1458,
    // 1460 mod 4 = 0 -> pad 0: 20 + 8 + 1458 + 0 + 2 + 12 = 1500; 1479 would need pad 3 -> 1504.
    assert_eq!(fragment_lens(V4, 1524, Mtu::ETHERNET), vec![1500, 44]);
    assert_eq!(max_inner_len(&campus, Mtu::ETHERNET), Ok(1478));
    assert_eq!(encapsulated_len(&campus, 1479), Ok(1504));
    // IMIX 7:4:1: clear 7*40 + 4*576 + 1500 = 4084, overhead 12 * 24 = 288 -> 7.052%.
    let m = wire::mix_overhead(&campus, &IMIX_7_4_1).unwrap();
    assert_eq!((m.clear_bytes, m.wire_bytes), (4084, 4372));
    assert!((m.overhead_pct - 7.05).abs() < 0.005, "{}", m.overhead_pct);
}

#[test]
fn every_suite_transport_ipv4_40_576_1500() {
    // Payloads 20, 556, 1480 are all 0 mod 4, so + 2 is 2 mod 4: pad 2 under B = 4.
    // Under B = 16 (CBC): 22 mod 16 = 6 -> pad 10; 558 mod 16 = 14 -> pad 2; 1482 mod 16 = 10 -> pad 6.
    let table: [(Suite, [u32; 3], &str); 6] = [
        (EspNullSha1, [64, 600, 1524], "8 + 2 + 2 + 12 = 24"),
        (EspNullSha256, [68, 604, 1528], "8 + 2 + 2 + 16 = 28"),
        (EspNullGmac128, [76, 612, 1536], "8 + IV 8 + 2 + 2 + 16 = 36"),
        (EspAes128Gcm, [76, 612, 1536], "8 + IV 8 + 2 + 2 + 16 = 36"),
        (EspAes128CbcSha1, [88, 616, 1544], "8 + IV 16 + pad {10, 2, 6} + 2 + 12 = 48, 40, 44"),
        (AhSha1, [64, 600, 1524], "AH 12 + ICV 12 = 24, already 32-bit aligned"),
    ];
    for (suite, want, why) in table {
        let e = enc(suite, Transport, V4, false);
        let got: Vec<u32> = [40, 576, 1500].iter().map(|&l| encapsulated_len(&e, l).unwrap()).collect();
        assert_eq!(got, want, "{suite}: {why}");
    }
    // IMIX overheads, byte-weighted over 4084 clear bytes.
    let imix: Vec<String> = Suite::ALL
        .iter()
        .map(|&s| {
            format!("{:.2}", wire::mix_overhead(&enc(s, Transport, V4, false), &IMIX_7_4_1).unwrap().overhead_pct)
        })
        .collect();
    // 24*12 = 288 -> 7.05; 28*12 = 336 -> 8.23; 36*12 = 432 -> 10.58;
    // CBC 7*48 + 4*40 + 44 = 540 -> 13.22; AH 288 -> 7.05.
    assert_eq!(imix, ["7.05", "8.23", "10.58", "10.58", "13.22", "7.05"]);
}

#[test]
fn tunnel_nat_t_ipv6_ah_gcm_cbc() {
    let cases: [(Encap, u32, u32, &str); 14] = [
        // Tunnel: payload = whole inner packet, plus a new 20-byte header.
        (enc(EspNullSha1, Tunnel, V4, false), 40, 84, "20 + 8 + 40 + pad 2 + 2 + 12"),
        (enc(EspNullSha1, Tunnel, V4, false), 1500, 1544, "20 + 8 + 1500 + pad 2 + 2 + 12"),
        // NAT-T: + 8 bytes of UDP.
        (enc(EspNullSha1, Transport, V4, true), 40, 72, "20 + 8 UDP + 8 + 20 + 2 + 2 + 12"),
        (enc(EspNullSha1, Tunnel, V4, true), 1500, 1552, "20 + 8 UDP + 8 + 1500 + 2 + 2 + 12"),
        // IPv6: 40-byte header; a TCP ACK is 60 bytes.
        (enc(EspNullSha1, Transport, V6, false), 60, 84, "40 + 8 + 20 + 2 + 2 + 12"),
        (enc(EspNullSha1, Tunnel, V6, false), 60, 124, "40 + 8 + 60 + pad 2 + 2 + 12"),
        // AH: 24 bytes on both IP versions (12 + 12 is a multiple of 8).
        (enc(AhSha1, Transport, V4, false), 40, 64, "40 + 24"),
        (enc(AhSha1, Transport, V6, false), 60, 84, "60 + 24"),
        (enc(AhSha1, Tunnel, V4, false), 40, 84, "20 + 24 + 40"),
        (enc(AhSha1, Tunnel, V6, false), 60, 124, "40 + 24 + 60"),
        // GCM: 8-byte IV, 16-byte tag, 4-byte alignment.
        (enc(EspAes128Gcm, Tunnel, V6, true), 1280, 1364, "40 + 8 + 8 + 8 + 1280 + pad 2 + 2 + 16"),
        (
            enc(EspAes128Gcm, Transport, V4, false),
            41,
            76,
            "payload 21, 23 mod 4 = 3 -> pad 1: 20 + 8 + 8 + 21 + 1 + 2 + 16",
        ),
        // CBC: 16-byte IV, 16-byte blocks.
        (
            enc(EspAes128CbcSha1, Tunnel, V4, false),
            100,
            168,
            "102 mod 16 = 6 -> pad 10: 20 + 8 + 16 + 100 + 10 + 2 + 12",
        ),
        (enc(EspAes128CbcSha1, Transport, V6, true), 41, 100, "payload 1, pad 13: 40 + 8 + 8 + 16 + 1 + 13 + 2 + 12"),
    ];
    for (e, inner, want, why) in cases {
        assert_eq!(encapsulated_len(&e, inner), Ok(want), "{e} {inner}: {why}");
    }
    // AH cannot traverse NAT: an error value, not a panic.
    assert_eq!(encapsulated_len(&enc(AhSha1, Transport, V4, true), 40), Err(WireError::AhNatTraversal));
    assert_eq!(
        encapsulated_len(&enc(EspNullSha1, Transport, V6, false), 39),
        Err(WireError::InnerTooShort { len: 39, min: 40 })
    );
}

#[test]
fn pmtu_and_fragments_table() {
    let e = Mtu::ETHERNET;
    // CBC transport IPv4: fixed 20 + 8 + 16 + 12 = 56; 1444 rounded down to 16 = 1440 = payload + 2
    // -> payload 1438, inner 1458 (-> 1496 on the wire); 1459 needs pad 15 -> 1512.
    assert_eq!(max_inner_len(&enc(EspAes128CbcSha1, Transport, V4, false), e), Ok(1458));
    assert_eq!(encapsulated_len(&enc(EspAes128CbcSha1, Transport, V4, false), 1458), Ok(1496));
    // Tunnel + NAT-T IPv4: fixed 20 + 8 + 8 + 12 = 48 -> 1452 = payload + 2 -> inner 1450 (wire 1500).
    assert_eq!(max_inner_len(&enc(EspNullSha1, Tunnel, V4, true), e), Ok(1450));
    // AH IPv6 transport: 1500 - 24.
    assert_eq!(max_inner_len(&enc(AhSha1, Transport, V6, false), e), Ok(1476));
    let r = wire::report(&Encap::CAMPUS, 1500, e).unwrap();
    assert_eq!((r.pmtu_inner_len, r.pmtu_tcp_mss), (Some(1478), Some(1438)));
    // IPv6 fragments carry 40 + 8 (Fragment header); chunk (1500 - 48) & !7 = 1448.
    // 1544-byte packet: payload 1504 = 1448 + 56.
    assert_eq!(fragment_lens(V6, 1544, e), vec![1496, 104]);
    // 9000-byte jumbo under the campus suite at 1500: 9024 -> payload 9004 = 6 * 1480 + 124.
    assert_eq!(fragment_lens(V4, 9024, e), vec![1500, 1500, 1500, 1500, 1500, 1500, 144]);
}

// ---------------------------------------------------------------------------------------
// Invariants of the size arithmetic.
// ---------------------------------------------------------------------------------------

fn encap_strategy() -> impl Strategy<Value = Encap> {
    prop::sample::select(valid_encaps())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wire_len_never_decreases(e in encap_strategy(), len in 40u32..9000) {
        prop_assert!(encapsulated_len(&e, len + 1)? >= encapsulated_len(&e, len)?);
        prop_assert!(encapsulated_len(&e, len)? > len);
    }

    #[test]
    fn esp_trailer_is_aligned(e in encap_strategy(), len in 40u32..=9000) {
        let l = wire::layout(&e, len)?;
        prop_assert_eq!(l.total(), encapsulated_len(&e, len)?);
        if e.suite.is_esp() {
            let b = if e.suite == EspAes128CbcSha1 { 16 } else { 4 };
            prop_assert_eq!(l.esp_aligned_part() % b, 0);
            prop_assert!(l.padding < b);
        } else {
            prop_assert_eq!((l.padding, l.ah), (0, 24));
        }
    }

    /// Tunnel = transport + the outer header when the alignment B divides the header size
    /// (B = 4 always does; AH has no padding). CBC's B = 16 does not divide 20 or 40, so there
    /// the difference is the header size give or take the change in padding; in every case a
    /// tunnel-mode packet is exactly a transport-mode packet whose inner packet is one header
    /// longer (same protected length).
    #[test]
    fn tunnel_is_transport_plus_outer_header(e in encap_strategy(), len in 40u32..=9000) {
        let tr = Encap { mode: Transport, ..e };
        let tu = Encap { mode: Tunnel, ..e };
        let h = e.ip.header_len();
        let (lt, lu) = (wire::layout(&tr, len)?, wire::layout(&tu, len)?);
        prop_assert_eq!(lu.payload, lt.payload + h);
        prop_assert_eq!(lu.total(), lt.total() + h + lu.padding - lt.padding);
        if h % e.suite.block_len() == 0 {
            prop_assert_eq!(lu.total(), lt.total() + h);
        }
        prop_assert_eq!(lu.total(), encapsulated_len(&tr, len + h)?);
    }

    #[test]
    fn fragments_add_back_up(ip in prop::sample::select(vec![V4, V6]), len in 40u32..=65_535, m in 68u32..=9216) {
        let frags = fragment_lens(ip, len, mtu(m));
        prop_assert!(frags.iter().all(|&f| f <= m));
        if len <= m {
            prop_assert_eq!(frags, vec![len]);
        } else {
            let fh = ip.fragment_header_len();
            let payloads: Vec<u32> = frags.iter().map(|f| f - fh).collect();
            prop_assert_eq!(payloads.iter().sum::<u32>(), len - ip.header_len());
            prop_assert!(payloads[..payloads.len() - 1].iter().all(|p| p % 8 == 0));
            prop_assert!(payloads.iter().all(|&p| p > 0));
            // As few fragments as the 8-byte rule allows.
            let chunk = (m - fh) / 8 * 8;
            prop_assert_eq!(frags.len() as u32, (len - ip.header_len()).div_ceil(chunk));
        }
    }

    #[test]
    fn max_inner_len_is_the_largest_that_fits(e in encap_strategy(), m in 68u32..=9216) {
        match max_inner_len(&e, mtu(m)) {
            Ok(best) => {
                prop_assert!(encapsulated_len(&e, best)? <= m);
                // Monotone, so the next length up is enough to show it is the largest.
                prop_assert!(encapsulated_len(&e, best + 1)? > m);
            }
            Err(WireError::MtuTooSmall { .. }) => {
                prop_assert!(encapsulated_len(&e, e.ip.header_len())? > m);
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Real bytes: esp.rs against wire.rs, round trips, ICVs.
// ---------------------------------------------------------------------------------------

fn addrs(ip: IpVersion) -> (IpAddr, IpAddr) {
    match ip {
        V4 => (Ipv4Addr::new(10, 12, 1, 20).into(), Ipv4Addr::new(10, 40, 3, 7).into()),
        V6 => ("fd00:12::1:20".parse::<Ipv6Addr>().unwrap().into(), "fd00:40::3:7".parse::<Ipv6Addr>().unwrap().into()),
    }
}

/// A clear inner packet of exactly `len` bytes: TCP when it fits, else UDP, else opaque.
fn inner_packet(ip: IpVersion, len: u32) -> Vec<u8> {
    let (src, dst) = addrs(ip);
    let room = len - ip.header_len();
    let l4 = if room >= 20 {
        L4::Tcp { src_port: 49_731, dst_port: 445, seq: 0x1000_0000 + len, ack: 77, flags: TcpFlags::PSH_ACK }
    } else if room >= 8 {
        L4::Udp { src_port: 500, dst_port: 500 }
    } else {
        L4::Opaque { protocol: esp::proto::NO_NEXT }
    };
    esp::build_inner(&Flow { src, dst, l4 }, len).unwrap()
}

fn sa_for(e: Encap, spi: u32) -> Sa {
    Sa::from_seed(0x5eed, Spi(spi), e).unwrap()
}

/// The claim in full: for every valid encapsulation and every inner length from the IP
/// header alone to 9000 bytes, the bytes `esp` builds are as long as `wire` says.
#[test]
fn esp_bytes_match_wire_lengths_exhaustively() {
    for e in valid_encaps() {
        let mut sa = sa_for(e, 0x100);
        for len in e.ip.header_len()..=9000 {
            let inner = inner_packet(e.ip, len);
            let outer = esp::encapsulate(&mut sa, &inner).unwrap();
            assert_eq!(outer.len() as u32, encapsulated_len(&e, len).unwrap(), "{e} inner {len}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn esp_len_equals_wire_len(e in encap_strategy(), extra in 0u32..=8960, seed in any::<u64>(), spi in 256u32..) {
        let len = e.ip.header_len() + extra;
        let mut sa = Sa::from_seed(seed, Spi(spi), e)?;
        let inner = inner_packet(e.ip, len);
        let outer = esp::encapsulate(&mut sa, &inner)?;
        prop_assert_eq!(outer.len() as u32, encapsulated_len(&e, len)?);
        // The outer packet is well-formed IP (IPv4 header checksum; NAT-T UDP checksum).
        esp::verify_checksums(&outer)?;
    }

    #[test]
    fn decapsulation_returns_the_inner_packet(
        e in encap_strategy(),
        extra in 0u32..=3000,
        n in 1usize..4,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let len = e.ip.header_len() + extra;
        let mut sa = sa_for(e, 0x4242);
        let rx = sa.clone();
        let inner = inner_packet(e.ip, len);
        esp::verify_checksums(&inner)?;
        let mut last = Vec::new();
        for i in 1..=n {
            last = esp::encapsulate(&mut sa, &inner)?;
            let d = esp::decapsulate(&rx, &last)?;
            prop_assert_eq!(d.seq, i as u32);
            prop_assert_eq!(d.spi, Spi(0x4242));
            prop_assert_eq!(&d.inner, &inner);
        }
        // Flip one bit anywhere after the SPI (sequence number, IV, payload, padding,
        // trailer, ICV): the ICV or tag no longer verifies.
        let start = e.ip.header_len() as usize + if e.nat_t { 8 } else { 0 } + if e.suite.is_esp() { 4 } else { 8 };
        let i = start + flip.index(last.len() - start);
        last[i] ^= 1 << bit;
        prop_assert_eq!(esp::decapsulate(&rx, &last), Err(EspError::IcvMismatch));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Damaged packets (any bytes rewritten, any truncation) give an error, never a panic.
    #[test]
    fn decapsulating_garbage_is_an_error_not_a_panic(
        e in encap_strategy(),
        extra in 0u32..200,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut sa = sa_for(e, 0x6060);
        let mut p = esp::encapsulate(&mut sa, &inner_packet(e.ip, e.ip.header_len() + extra))?;
        for (at, byte) in edits {
            let i = at.index(p.len());
            p[i] = byte;
        }
        let keep = cut.index(p.len() + 1);
        let _ = esp::decapsulate(&sa, &p);
        let _ = esp::decapsulate(&sa, &p[..keep]);
        let _ = esp::verify_checksums(&p[..keep]);
    }
}

#[test]
fn ah_covers_the_addresses_but_not_the_ttl() {
    for ip in [V4, V6] {
        let e = enc(AhSha1, Transport, ip, false);
        let mut sa = sa_for(e, 0x5151);
        let inner = inner_packet(ip, 300);
        let outer = esp::encapsulate(&mut sa, &inner).unwrap();
        // A router decrements the TTL / hop limit (and fixes the IPv4 checksum): still valid.
        let mut routed = outer.clone();
        match ip {
            V4 => {
                routed[8] -= 1;
                routed[10..12].copy_from_slice(&[0, 0]);
                let c = !routed[..20].chunks(2).fold(0u32, |s, w| {
                    let s = s + u32::from(u16::from_be_bytes([w[0], w[1]]));
                    (s & 0xffff) + (s >> 16)
                }) as u16;
                routed[10..12].copy_from_slice(&c.to_be_bytes());
            }
            V6 => routed[7] -= 1,
        }
        assert!(esp::decapsulate(&sa, &routed).is_ok(), "{ip}: TTL is mutable");
        // A NAT rewriting the source address breaks AH.
        let mut natted = outer.clone();
        let src_at = if ip == V4 { 12 } else { 8 };
        natted[src_at + 1] ^= 0x10;
        assert_eq!(esp::decapsulate(&sa, &natted), Err(EspError::IcvMismatch), "{ip}");
    }
}

#[test]
fn sequence_numbers_and_keys_are_deterministic() {
    let e = Encap::CAMPUS;
    let inner = inner_packet(V4, 576);
    let run = || {
        let mut sa = sa_for(e, 0xa001);
        (0..3).map(|_| esp::encapsulate(&mut sa, &inner).unwrap()).collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "same seed and SPI, same bytes");
    let seqs: Vec<u32> = a.iter().map(|p| u32::from_be_bytes(p[24..28].try_into().unwrap())).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // Another SPI or another seed: other keys, other ICVs.
    let mut other = Sa::from_seed(0x5eed, Spi(0xa002), e).unwrap();
    let mut reseeded = Sa::from_seed(0x5eee, Spi(0xa001), e).unwrap();
    assert_ne!(other.keys(), sa_for(e, 0xa001).keys());
    assert_ne!(reseeded.keys(), sa_for(e, 0xa001).keys());
    assert_ne!(esp::encapsulate(&mut reseeded, &inner).unwrap()[580..], a[0][580..]);
    let o = esp::encapsulate(&mut other, &inner).unwrap();
    assert_eq!(
        esp::decapsulate(&sa_for(e, 0xa001), &o),
        Err(EspError::WrongSpi { expected: Spi(0xa001), found: Spi(0xa002) })
    );
}

#[test]
fn tunnel_endpoints_and_encryption() {
    let e = enc(EspAes128Gcm, Tunnel, V4, true);
    let gw = Endpoints { src: Ipv4Addr::new(192, 0, 2, 1).into(), dst: Ipv4Addr::new(198, 51, 100, 9).into() };
    let mut sa = sa_for(e, 0x7000).with_tunnel_endpoints(gw);
    let inner = inner_packet(V4, 1000);
    let outer = esp::encapsulate(&mut sa, &inner).unwrap();
    assert_eq!(&outer[12..20], &[192, 0, 2, 1, 198, 51, 100, 9]);
    assert_eq!(outer[9], esp::proto::UDP);
    assert_eq!(&outer[20..24], &[0x11, 0x94, 0x11, 0x94]); // 4500 -> 4500
    // Encrypted: the inner packet's bytes do not appear in the clear.
    assert!(!outer.windows(64).any(|w| w == &inner[100..164]));
    assert_eq!(esp::decapsulate(&sa, &outer).unwrap().inner, inner);
    // ESP-NULL leaves them readable.
    let mut null = sa_for(enc(EspNullSha1, Tunnel, V4, false), 0x7001);
    let clear = esp::encapsulate(&mut null, &inner).unwrap();
    assert!(clear.windows(64).any(|w| w == &inner[100..164]));
}

// ---------------------------------------------------------------------------------------
// pcap files.
// ---------------------------------------------------------------------------------------

#[test]
fn pcap_round_trip() {
    let dir = scratch("wire-pcap-round-trip");
    let path = dir.join("round.pcap");
    let mut sa = sa_for(Encap::CAMPUS, 0x900);
    let mut v6 = sa_for(enc(EspNullSha256, Transport, V6, false), 0x901);
    let packets = vec![
        PcapPacket { time_ns: 0, ip_packet: inner_packet(V4, 40) },
        PcapPacket { time_ns: 1_000_000_001, ip_packet: esp::encapsulate(&mut sa, &inner_packet(V4, 1500)).unwrap() },
        PcapPacket { time_ns: 1_000_000_999, ip_packet: esp::encapsulate(&mut v6, &inner_packet(V6, 60)).unwrap() },
        PcapPacket { time_ns: 86_400_123_456_789, ip_packet: inner_packet(V6, 9000) },
    ];
    write_pcap(&path, &packets).unwrap();
    assert!(!dir.join("round.pcap.tmp").exists());
    assert_eq!(read_pcap(&path).unwrap(), packets);
    // Overwriting replaces the file whole.
    write_pcap(&path, &packets[..1]).unwrap();
    assert_eq!(read_pcap(&path).unwrap(), packets[..1]);
    // Not IP: refused, and the old file stays.
    let bad = PcapPacket { time_ns: 5, ip_packet: vec![0x00; 30] };
    assert!(write_pcap(&path, &[bad]).is_err());
    assert_eq!(read_pcap(&path).unwrap(), packets[..1]);
}

// ---------------------------------------------------------------------------------------
// tshark: Wireshark's dissectors as an outside judge.
// ---------------------------------------------------------------------------------------

/// Wireshark's checksum validation (off by default).
const CHECKSUMS: [&str; 3] = ["ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE"];
/// Expert severity PI_WARN: bad checksums, wrong ESP sequence numbers, malformed fields.
const PI_WARN: u32 = 0x0060_0000;

/// The worst expert severity in a `_ws.expert.severity` cell, if any finding.
fn worst_expert(cell: &str) -> Option<u32> {
    cell.split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().unwrap()).max()
}

/// What a frame should show.
struct Expected {
    /// (SPI, sequence number) when the frame is ESP or AH.
    ipsec: Option<(u32, u32)>,
    /// The inner TCP/UDP ports.
    ports: (u16, u16),
}

struct Capture {
    packets: Vec<PcapPacket>,
    expect: Vec<Expected>,
    sas: Vec<Sa>,
}

/// Clear TCP and UDP, two campus SAs (one per direction) with interleaved sequence numbers,
/// and one SA of every other kind.
fn capture() -> Capture {
    let (a, b) = addrs(V4);
    let tcp_seq = |src, dst, sport, dport, len, seq, ack| {
        let l4 = L4::Tcp { src_port: sport, dst_port: dport, seq, ack, flags: TcpFlags::PSH_ACK };
        esp::build_inner(&Flow { src, dst, l4 }, len).unwrap()
    };
    let tcp = |src, dst, sport, dport, len| tcp_seq(src, dst, sport, dport, len, 1000, 5000);
    let udp = |src, dst, sport, dport, len| {
        esp::build_inner(&Flow { src, dst, l4: L4::Udp { src_port: sport, dst_port: dport } }, len).unwrap()
    };
    let mut c = Capture { packets: vec![], expect: vec![], sas: vec![] };
    let mut t = 1_215_000_000_000_000_000u64; // mid-2008
    let mut push = |c: &mut Capture, pkt: Vec<u8>, ipsec: Option<(u32, u32)>, ports: (u16, u16)| {
        t += 1_250_000;
        c.packets.push(PcapPacket { time_ns: t, ip_packet: pkt });
        c.expect.push(Expected { ipsec, ports });
    };
    // Clear traffic.
    push(&mut c, tcp(a, b, 49_200, 445, 40), None, (49_200, 445));
    push(&mut c, udp(a, b, 50_123, 51_234, 70), None, (50_123, 51_234));
    // Two SAs of the campus suite, client -> server and back.
    let mut out_sa = sa_for(Encap::CAMPUS, 0x0000_a001);
    let mut in_sa = sa_for(Encap::CAMPUS, 0x0000_b002);
    // One coherent TCP conversation: each side's sequence number advances by what it sent.
    let (mut client_seq, mut server_seq) = (1_000u32, 9_000u32);
    for i in 1..=3u32 {
        let len = 40 + 500 * i;
        let p = esp::encapsulate(&mut out_sa, &tcp_seq(a, b, 49_201, 445, len, client_seq, server_seq)).unwrap();
        client_seq += len - 40;
        push(&mut c, p, Some((0xa001, i)), (49_201, 445));
        let len = 1500 - 100 * i;
        let p = esp::encapsulate(&mut in_sa, &tcp_seq(b, a, 445, 49_201, len, server_seq, client_seq)).unwrap();
        server_seq += len - 40;
        push(&mut c, p, Some((0xb002, i)), (445, 49_201));
    }
    c.sas.push(out_sa);
    c.sas.push(in_sa);
    // One packet of every other kind (ESP-NULL ones still show their inner ports).
    let (a6, b6) = addrs(V6);
    let others: [(Encap, u32); 9] = [
        (enc(EspNullSha1, Transport, V4, true), 0xc003),
        (enc(EspNullSha1, Transport, V6, false), 0xd004),
        (enc(EspNullSha1, Tunnel, V4, false), 0xe005),
        (enc(EspNullSha256, Transport, V4, false), 0xf006),
        (enc(EspAes128CbcSha1, Transport, V4, false), 0x1_0007),
        (enc(EspAes128Gcm, Transport, V4, false), 0x1_1008),
        (enc(EspNullGmac128, Transport, V4, false), 0x1_2009),
        (enc(AhSha1, Transport, V4, false), 0x1_300a),
        (enc(AhSha1, Transport, V6, false), 0x1_400b),
    ];
    for (e, spi) in others {
        let mut sa = sa_for(e, spi);
        let inner = match e.ip {
            V4 => tcp(a, b, 50_000 + (spi & 0xff) as u16, 80, 300),
            V6 => tcp(a6, b6, 50_000 + (spi & 0xff) as u16, 80, 300),
        };
        let p = esp::encapsulate(&mut sa, &inner).unwrap();
        push(&mut c, p, Some((spi, 1)), (50_000 + (spi & 0xff) as u16, 80));
        c.sas.push(sa);
    }
    c
}

/// Wireshark's `esp_sa` table row for an SA, where Wireshark knows the algorithms.
fn esp_sa_uat(sa: &Sa) -> Option<String> {
    let e = sa.encap();
    let (enc_alg, auth_alg) = match e.suite {
        EspNullSha1 => ("NULL", "HMAC-SHA-1-96 [RFC2404]"),
        EspNullSha256 => ("NULL", "HMAC-SHA-256-128 [RFC4868]"),
        EspAes128CbcSha1 => ("AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"),
        EspAes128Gcm => ("AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
        EspNullGmac128 | AhSha1 => return None,
    };
    let hex = |b: &[u8]| {
        if b.is_empty() {
            String::new()
        } else {
            format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        }
    };
    let proto = if e.ip == V4 { "IPv4" } else { "IPv6" };
    Some(format!(
        "uat:esp_sa:\"{proto}\",\"*\",\"*\",\"0x{:08x}\",\"{enc_alg}\",\"{}\",\"{auth_alg}\",\"{}\"",
        sa.spi().0,
        hex(&sa.keys().encryption),
        hex(&sa.keys().integrity)
    ))
}

#[test]
fn tshark_dissects_what_we_write() {
    if !tshark_available() {
        return;
    }
    let dir = scratch("wire-tshark");
    let file = dir.join("esp.pcap");
    let c = capture();
    write_pcap(&file, &c.packets).unwrap();

    // 1. Plain dissection: no malformed frame, SPIs and sequence numbers as written.
    let rows = tshark_fields(
        &file,
        &CHECKSUMS,
        &["frame.number", "esp.spi", "esp.sequence", "ah.spi", "ah.sequence", "_ws.malformed", "_ws.expert.severity"],
    );
    assert_eq!(rows.len(), c.packets.len());
    for (i, (row, Expected { ipsec, .. })) in rows.iter().zip(&c.expect).enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        assert_eq!(row[5], "", "frame {}: malformed", i + 1);
        // No expert finding at warning level or above: this includes ESP sequence analysis
        // ("Wrong Sequence Number") and bad IP/TCP/UDP checksums.
        assert!(worst_expert(&row[6]).is_none_or(|w| w < PI_WARN), "frame {}: expert finding {row:?}", i + 1);
        let (spi, seq) = if !row[1].is_empty() { (&row[1], &row[2]) } else { (&row[3], &row[4]) };
        match ipsec {
            Some((s, q)) => {
                assert_eq!(u32::from_str_radix(spi.trim_start_matches("0x"), 16).unwrap(), *s, "frame {} SPI", i + 1);
                assert_eq!(seq, &q.to_string(), "frame {} sequence", i + 1);
            }
            None => assert_eq!((spi.as_str(), seq.as_str()), ("", ""), "frame {}", i + 1),
        }
    }

    // 2. With the ESP-NULL heuristic, Wireshark finds the inner TCP/UDP of ESP-NULL frames.
    let mut null_opts = CHECKSUMS.to_vec();
    null_opts.push("esp.enable_null_encryption_decode_heuristic:TRUE");
    let fields = [
        "frame.number",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
        "_ws.malformed",
        "_ws.expert.severity",
    ];
    let rows = tshark_fields(&file, &null_opts, &fields);
    for (i, (row, Expected { ipsec, ports })) in rows.iter().zip(&c.expect).enumerate() {
        let suite = ipsec.and_then(|(spi, _)| c.sas.iter().find(|s| s.spi().0 == spi)).map(|s| s.encap().suite);
        let visible = matches!(suite, None | Some(EspNullSha1 | EspNullSha256 | AhSha1));
        assert_eq!(row[5], "", "frame {}: malformed", i + 1);
        if visible {
            // Inner TCP checksums verify against the outer addresses (transport mode).
            assert!(worst_expert(&row[6]).is_none_or(|w| w < PI_WARN), "frame {}: expert finding {row:?}", i + 1);
            let got = if row[1].is_empty() { (&row[3], &row[4]) } else { (&row[1], &row[2]) };
            // NAT-T frames list the outer UDP 4500 ports first.
            let last = |s: &String| s.rsplit(',').next().unwrap().to_string();
            assert_eq!(
                (last(got.0), last(got.1)),
                (ports.0.to_string(), ports.1.to_string()),
                "frame {} ports: {row:?}",
                i + 1
            );
        }
    }

    // 3. Given our keys, Wireshark verifies every ICV it knows how to and decrypts CBC and GCM.
    let mut opts: Vec<String> = CHECKSUMS.iter().map(|s| s.to_string()).collect();
    opts.extend(["esp.enable_authentication_check:TRUE".into(), "esp.enable_encryption_decode:TRUE".into()]);
    opts.extend(c.sas.iter().filter_map(esp_sa_uat));
    let opt_refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let rows = tshark_fields(
        &file,
        &opt_refs,
        &[
            "frame.number",
            "esp.spi",
            "esp.icv_good",
            "esp.icv_bad",
            "tcp.srcport",
            "tcp.dstport",
            "_ws.malformed",
            "_ws.expert.severity",
        ],
    );
    let mut checked = 0;
    for (i, (row, Expected { ipsec, ports })) in rows.iter().zip(&c.expect).enumerate() {
        let Some((spi, _)) = ipsec else { continue };
        let sa = c.sas.iter().find(|s| s.spi().0 == *spi).unwrap();
        if esp_sa_uat(sa).is_none() {
            continue;
        }
        assert_eq!(row[6], "", "frame {}: malformed", i + 1);
        assert!(worst_expert(&row[7]).is_none_or(|w| w < PI_WARN), "frame {}: expert finding {row:?}", i + 1);
        let truth = |s: &str| s == "1" || s == "True";
        assert!(!truth(&row[3]), "frame {} ({}): ICV bad: {row:?}", i + 1, sa.encap());
        assert!(truth(&row[2]), "frame {} ({}): ICV not verified: {row:?}", i + 1, sa.encap());
        let last = |s: &String| s.rsplit(',').next().unwrap_or("").to_string();
        assert_eq!(
            (last(&row[4]), last(&row[5])),
            (ports.0.to_string(), ports.1.to_string()),
            "frame {} ({}) inner TCP: {row:?}",
            i + 1,
            sa.encap()
        );
        checked += 1;
    }
    // 6 campus frames + NAT-T, IPv6, tunnel, SHA-256, CBC, GCM (Wireshark knows no GMAC).
    assert_eq!(checked, 6 + 6);
}
