//! The pcap of a run: the flows the packet layer recorded in its capture window, built
//! byte by byte (`model::esp`) and written as a libpcap file (`output::pcap`).
//!
//! Contract:
//! - Every packet of a captured flow, in the packet model's order, spread evenly over the
//!   flow's duration; clear flows as plain TCP/UDP, protected flows as ESP (or AH) with the
//!   flow's suite, mode and NAT-T.
//! - One SA per (host pair, key time, direction): its SPI and keys derive from the run's
//!   seed and that identity, so the same SA keeps its SPI across flows and its sequence
//!   numbers run on consecutively within the capture.
//! - Timestamps: simulated time plus [`CAPTURE_EPOCH`] (so tools show a plausible date).
//! - Deterministic; the file is written atomically.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::engine::{SimDuration, SimTime};
use crate::model::campus::Campus;
use crate::model::esp::{self, L4, Sa, Spi, TcpFlags};
use crate::model::kinds::Protocol;
use crate::model::packet_layer::CapturedFlow;
use crate::model::packets::{PacketKind, PacketModel};
use crate::model::wire::Encap;
use crate::output::pcap::{PcapPacket, write_pcap};
use crate::scenario::build::AppParams;

/// Unix time of simulated time zero: Monday 4 June 2007, 00:00 UTC (the rollout era).
pub const CAPTURE_EPOCH_NS: u64 = 1_180_915_200 * 1_000_000_000;

/// What a capture holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CaptureStats {
    pub flows: usize,
    pub packets: usize,
    pub esp_packets: usize,
    pub security_associations: usize,
}

/// One SA direction of the capture: (host pair, key time in ns, direction).
type SaRef = (u64, u64, u8);

/// A clear packet waiting for its place in time and, if protected, its SA.
struct InnerPacket {
    at: u64,
    flow: usize,
    bytes: Vec<u8>,
    sa: Option<(SaRef, Spi, Encap)>,
}

/// An SPI for one direction of an SA: a hash of its identity, kept clear of the reserved
/// values below 256.
fn spi_for(seed: u64, pair: u64, keyed: SimTime, dir: u8) -> Spi {
    let mut h = Sha256::new();
    h.update(b"domiso-spi");
    h.update(seed.to_le_bytes());
    h.update(pair.to_le_bytes());
    h.update(keyed.as_nanos().to_le_bytes());
    h.update([dir]);
    let d = h.finalize();
    let v = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    Spi(v.max(256))
}

/// Builds the packets of the captured flows.
pub fn build(
    flows: &[CapturedFlow],
    campus: &Campus,
    apps: &[AppParams],
    model: &PacketModel,
    seed: u64,
) -> Result<(Vec<PcapPacket>, CaptureStats), esp::EspError> {
    // Inner packets first, with their time and SA; ESP comes after sorting by time, so each
    // SA's sequence numbers follow the capture's order.
    let mut inner_packets: Vec<InnerPacket> = Vec::new();
    let mut sas: BTreeMap<SaRef, Sa> = BTreeMap::new();
    let mut stats = CaptureStats { flows: flows.len(), ..CaptureStats::default() };
    for (fi, f) in flows.iter().enumerate() {
        let app = &apps[f.app.index()];
        let packets = model.packets(&app.shape, f.bytes_up, f.bytes_down, f.encap.as_ref());
        let init = IpAddr::V4(Ipv4Addr::from(campus.host(f.initiator).addr));
        let resp = IpAddr::V4(Ipv4Addr::from(f.responder_addr));
        // Ephemeral source port and initial sequence numbers from the session's identity.
        let src_port = 49_152 + (f.seq % 16_384) as u16;
        let isn = |dir: u8| -> u32 {
            let mut h = Sha256::new();
            h.update(b"domiso-isn");
            h.update(seed.to_le_bytes());
            h.update(f.initiator.0.to_le_bytes());
            h.update(f.seq.to_le_bytes());
            h.update([dir]);
            let d = h.finalize();
            u32::from_le_bytes([d[0], d[1], d[2], d[3]])
        };
        let mut next_seq = [isn(0), isn(1)];
        // DNS transaction ids: the i-th response echoes the i-th query's id.
        let dns_base = (isn(2) & 0xffff) as u16;
        let mut dns_count = [0u16; 2];
        let n = packets.len().max(1) as u64;
        let step = f.duration.as_nanos() / n;
        for (i, p) in packets.iter().enumerate() {
            let (src, dst, sport, dport) =
                if p.dir == 0 { (init, resp, src_port, app.port) } else { (resp, init, app.port, src_port) };
            let l4 = match app.shape.protocol {
                Protocol::Udp => L4::Udp { src_port: sport, dst_port: dport },
                Protocol::Tcp => {
                    let d = p.dir as usize;
                    let flags = match p.kind {
                        PacketKind::Syn => TcpFlags::SYN,
                        PacketKind::SynAck => TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0),
                        PacketKind::Fin => TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0),
                        PacketKind::Data => TcpFlags::PSH_ACK,
                        PacketKind::Ack | PacketKind::Datagram => TcpFlags::ACK,
                    };
                    let seq = next_seq[d];
                    let ack = if p.kind == PacketKind::Syn { 0 } else { next_seq[1 - d] };
                    // SYN and FIN take one sequence number, data its length.
                    let consumed =
                        u32::from(matches!(p.kind, PacketKind::Syn | PacketKind::SynAck | PacketKind::Fin)) + p.payload;
                    next_seq[d] = seq.wrapping_add(consumed);
                    L4::Tcp { src_port: sport, dst_port: dport, seq, ack, flags }
                }
            };
            let flow = esp::Flow { src, dst, l4 };
            let inner = match p.kind {
                // Real SYN options (the packet model counts 12 bytes of them).
                PacketKind::Syn | PacketKind::SynAck => {
                    esp::build_inner_with(&flow, &esp::syn_options(model.mss(f.encap.as_ref()) as u16), &[])?
                }
                // DNS gets well-formed messages, so dissectors read it as DNS.
                PacketKind::Datagram if app.port == 53 => {
                    let id = dns_base.wrapping_add(dns_count[p.dir as usize]);
                    dns_count[p.dir as usize] += 1;
                    esp::build_inner_with(&flow, &[], &esp::dns_message(p.payload as usize, p.dir == 1, id))?
                }
                _ => esp::build_inner(&flow, p.ip_len)?,
            };
            let sa = match (&f.encap, f.sa) {
                (Some(encap), Some((pair, keyed))) => {
                    Some(((pair, keyed.as_nanos(), p.dir), spi_for(seed, pair, keyed, p.dir), *encap))
                }
                _ => None,
            };
            let at = f.start + SimDuration::from_nanos(step * i as u64);
            inner_packets.push(InnerPacket { at: at.as_nanos(), flow: fi, bytes: inner, sa });
        }
    }
    // Time order across flows; within a flow, the model's order (the sort is stable).
    inner_packets.sort_by_key(|p| (p.at, p.flow));
    let mut out = Vec::with_capacity(inner_packets.len());
    for p in inner_packets {
        let ip_packet = match p.sa {
            Some((key, spi, encap)) => {
                let sa = match sas.entry(key) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(Sa::from_seed(seed, spi, encap)?),
                };
                stats.esp_packets += 1;
                esp::encapsulate(sa, &p.bytes)?
            }
            None => p.bytes,
        };
        out.push(PcapPacket { time_ns: CAPTURE_EPOCH_NS + p.at, ip_packet });
    }
    stats.packets = out.len();
    stats.security_associations = sas.len();
    Ok((out, stats))
}

/// Builds and writes the capture.
pub fn write(
    path: &Path,
    flows: &[CapturedFlow],
    campus: &Campus,
    apps: &[AppParams],
    model: &PacketModel,
    seed: u64,
) -> std::io::Result<CaptureStats> {
    let (packets, stats) = build(flows, campus, apps, model, seed).map_err(std::io::Error::other)?;
    write_pcap(path, &packets)?;
    Ok(stats)
}
