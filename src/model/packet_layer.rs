//! The packet layer of a run (`--granularity packet`): every packet of every session sized
//! in clear and on the wire through the SA state of its flow, bandwidth overhead by
//! application, IPsec CPU per host, and the packet-by-packet replay of a host sample (size
//! histogram, flows for the pcap window).
//!
//! Contract:
//! - Exact: a session's packets come from `packets::PacketModel` (closed form, equal to the
//!   per-packet sum); nothing is scaled or extrapolated. The sample is a subset replayed
//!   packet by packet; its histogram describes the sample only.
//! - Overhead counts only traffic carried under IPsec: (wire - clear) / clear, where clear
//!   is the same session's packets without IPsec (full MSS) and wire is what went on the
//!   wire (ESP, and the smaller MSS under path-MTU discovery).
//! - CPU: both ends of a protected flow pay `per_packet` for every wire packet plus the
//!   suite's cost per byte; servers with offload NICs pay no per-byte cost for encrypting
//!   suites. A session's cost is booked in the hour it starts.
//! - The capture window (day 0) records every session that starts in it, of any host,
//!   until the packet cap; `output::capture` turns them into bytes. Pure.

use super::campus::{Campus, SubnetPurpose};
use super::ids::{AppId, HostId};
use super::packets::{PacketKind, Totals};
use super::wire::{Encap, EncapMode, Suite};
use crate::engine::{SimDuration, SimTime};
use crate::scenario::build::{AppParams, PacketParams};

/// Size buckets of the sample's packet-size histogram (inclusive upper bounds, IP bytes).
pub const SIZE_BUCKETS: [u32; 7] = [40, 64, 128, 576, 1024, 1478, 1500];

/// Per-application packet figures of the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppPackets {
    pub sessions: u64,
    pub sessions_protected: u64,
    /// Carried sessions, in clear IP bytes (as if there were no IPsec).
    pub clear_bytes_all: u64,
    /// Protected sessions: wire packets, clear IP bytes, wire bytes.
    pub packets: u64,
    pub clear_bytes: u64,
    pub wire_bytes: u64,
}

/// One bucket of the sample histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SizeBucket {
    pub packets: u64,
    pub pure_acks: u64,
    pub clear_bytes: u64,
    pub wire_bytes: u64,
}

/// A flow of the pcap window, recorded for `output::pcap` to build byte by byte.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedFlow {
    pub start: SimTime,
    pub duration: SimDuration,
    pub app: AppId,
    pub initiator: HostId,
    pub responder: HostId,
    /// Destination address (a virtual IP for NLB).
    pub responder_addr: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// `Some` when the flow went under IPsec: the encapsulation and the SA identity
    /// (host pair and the time its key was set) from which SPIs and keys derive.
    pub encap: Option<Encap>,
    pub sa: Option<(u64, SimTime)>,
    /// The session's index among the host's sessions of the day (source port, TCP ISN).
    pub seq: u32,
}

pub struct PacketLayer<'a> {
    pub params: &'a PacketParams,
    apps: &'a [AppParams],
    campus: &'a Campus,
    /// Hosts replayed packet by packet.
    sampled: Vec<bool>,
    offload: Vec<bool>,
    pub by_app: Vec<AppPackets>,
    /// Sample histogram: [app][bucket].
    pub sizes: Vec<Vec<SizeBucket>>,
    pub sample_packets: u64,
    /// Per server (by `server_slot`): IPsec CPU ns in each hour of the current day.
    server_slot: Vec<u32>,
    pub server_cpu_ns: Vec<[f64; 24]>,
    pub server_peak_cpu_pct: Vec<f64>,
    pub client_cpu_ns: f64,
    pub captured: Vec<CapturedFlow>,
    captured_packets: u64,
    /// Sessions in the capture window left out because of the packet cap.
    pub capture_skipped: u64,
}

/// Encapsulation of a protected flow.
pub fn encap_for(p: &PacketParams, encrypt: bool, nat_t: bool) -> Encap {
    Encap {
        suite: if encrypt { p.suite_encrypted } else { p.suite },
        mode: EncapMode::Transport,
        ip: p.model.ip,
        nat_t,
    }
}

impl<'a> PacketLayer<'a> {
    /// `draw(host)`: the host's uniform draw for the sample and the offload NIC (two
    /// values from its own stream).
    pub fn new(
        params: &'a PacketParams,
        apps: &'a [AppParams],
        campus: &'a Campus,
        draw: impl Fn(HostId) -> (f64, f64),
    ) -> Self {
        let n = campus.hosts.len();
        let mut sampled = vec![false; n];
        let mut offload = vec![false; n];
        let mut server_slot = vec![u32::MAX; n];
        let mut servers = 0u32;
        for (i, h) in campus.hosts.iter().enumerate() {
            let (u_sample, u_offload) = draw(HostId::from_index(i));
            sampled[i] = u_sample < params.sample_hosts;
            if h.kind.is_server() {
                offload[i] = u_offload < params.offload_fraction;
                server_slot[i] = servers;
                servers += 1;
            }
        }
        PacketLayer {
            params,
            apps,
            campus,
            sampled,
            offload,
            by_app: vec![AppPackets::default(); apps.len()],
            sizes: vec![vec![SizeBucket::default(); SIZE_BUCKETS.len()]; apps.len()],
            sample_packets: 0,
            server_slot,
            server_cpu_ns: vec![[0.0; 24]; servers as usize],
            server_peak_cpu_pct: vec![0.0; servers as usize],
            client_cpu_ns: 0.0,
            captured: Vec::new(),
            captured_packets: 0,
            capture_skipped: 0,
        }
    }

    pub fn sampled_hosts(&self) -> usize {
        self.sampled.iter().filter(|&&s| s).count()
    }

    /// Whether a flow between these hosts crosses NAT (a VPN-pool client).
    pub fn nat_t(&self, a: HostId, b: HostId) -> bool {
        self.params.nat_t_vpn_pools
            && [a, b]
                .iter()
                .any(|h| self.campus.subnets[self.campus.host(*h).subnet.index()].purpose == SubnetPurpose::VpnPool)
    }

    /// Packets of one carried session: clear (as without IPsec) and on the wire.
    pub fn session(&mut self, s: &SessionPackets) -> (Totals, Totals) {
        let app = &self.apps[s.app.index()];
        let model = &self.params.model;
        let clear = model.totals(&app.shape, s.bytes_up, s.bytes_down, None);
        let wire = match &s.encap {
            Some(e) => model.totals(&app.shape, s.bytes_up, s.bytes_down, Some(e)),
            None => clear,
        };
        let a = &mut self.by_app[s.app.index()];
        a.sessions += 1;
        a.clear_bytes_all += clear.bytes_total();
        if let Some(e) = &s.encap {
            a.sessions_protected += 1;
            a.packets += wire.packets_total();
            a.clear_bytes += clear.bytes_total();
            a.wire_bytes += wire.bytes_total();
            self.book_cpu(s.initiator, s.start, e.suite, &wire);
            self.book_cpu(s.responder, s.start, e.suite, &wire);
        }
        if self.sampled[s.initiator.index()] {
            self.replay(s, &clear, &wire);
        }
        self.capture(s, &wire);
        (clear, wire)
    }

    /// Records the session for the pcap if it starts in the capture window of day 0 and
    /// its packets fit under the cap (later sessions are left out whole).
    fn capture(&mut self, s: &SessionPackets, wire: &Totals) {
        let (from, to) = self.params.pcap_window;
        let tod = s.start.time_of_day();
        if s.start.day() != 0 || tod < from || tod >= to {
            return;
        }
        if self.captured_packets + wire.packets_total() > u64::from(self.params.pcap_max_packets) {
            self.capture_skipped += 1;
            return;
        }
        self.captured_packets += wire.packets_total();
        self.captured.push(CapturedFlow {
            start: s.start,
            duration: s.duration,
            app: s.app,
            initiator: s.initiator,
            responder: s.responder,
            responder_addr: s.responder_addr,
            bytes_up: s.bytes_up,
            bytes_down: s.bytes_down,
            encap: s.encap,
            sa: s.sa,
            seq: s.seq,
        });
    }

    /// The sample: every packet into the histogram, checked against the closed form. The
    /// packets come as runs of identical ones (`packet_runs`), so a huge session costs no
    /// more than a small one; the sums are those of replaying them one by one.
    fn replay(&mut self, s: &SessionPackets, clear: &Totals, wire: &Totals) {
        let app = &self.apps[s.app.index()];
        let model = &self.params.model;
        let enc = s.encap.as_ref();
        let runs = model.packet_runs(&app.shape, s.bytes_up, s.bytes_down, enc);
        debug_assert_eq!(model.sum_runs(&runs, enc), *wire, "closed form equals the packet sum");
        debug_assert_eq!(model.sum_runs(&model.packet_runs(&app.shape, s.bytes_up, s.bytes_down, None), None), *clear);
        for (p, count) in &runs {
            let b = SIZE_BUCKETS.iter().position(|&ub| p.ip_len <= ub).unwrap_or(SIZE_BUCKETS.len() - 1);
            let (_, wire_bytes) = model.wire_of(enc, p.ip_len);
            let bucket = &mut self.sizes[s.app.index()][b];
            self.sample_packets += count;
            bucket.packets += count;
            bucket.pure_acks += if p.kind == PacketKind::Ack && p.payload == 0 { *count } else { 0 };
            bucket.clear_bytes += count * u64::from(p.ip_len);
            bucket.wire_bytes += count * wire_bytes;
        }
    }

    fn book_cpu(&mut self, host: HostId, at: SimTime, suite: Suite, wire: &Totals) {
        let per_byte = if self.offload[host.index()] && matches!(suite, Suite::EspAes128Gcm | Suite::EspAes128CbcSha1) {
            0.0
        } else {
            self.params.cpu_ns_per_byte[suite as usize]
        };
        let ns = wire.packets_total() as f64 * self.params.cpu_per_packet.as_nanos() as f64
            + wire.bytes_total() as f64 * per_byte;
        match self.server_slot[host.index()] {
            u32::MAX => self.client_cpu_ns += ns,
            slot => {
                let hour = (at.time_of_day().as_nanos() / SimDuration::HOUR.as_nanos()) as usize;
                self.server_cpu_ns[slot as usize][hour] += ns;
            }
        }
    }

    /// Closes a day: each server's busiest hour of IPsec CPU so far, as % of one core.
    pub fn end_day(&mut self) {
        for (slot, hours) in self.server_cpu_ns.iter_mut().enumerate() {
            let peak = hours.iter().copied().fold(0.0, f64::max);
            let pct = 100.0 * peak / SimDuration::HOUR.as_nanos() as f64;
            if pct > self.server_peak_cpu_pct[slot] {
                self.server_peak_cpu_pct[slot] = pct;
            }
            *hours = [0.0; 24];
        }
    }

    /// A server's peak-hour IPsec CPU (% of one core).
    pub fn server_cpu_pct(&self, host: HostId) -> Option<f64> {
        match self.server_slot[host.index()] {
            u32::MAX => None,
            slot => Some(self.server_peak_cpu_pct[slot as usize]),
        }
    }
}

/// One carried session as the packet layer needs it.
#[derive(Clone, Debug)]
pub struct SessionPackets {
    pub app: AppId,
    pub initiator: HostId,
    pub responder: HostId,
    pub responder_addr: u32,
    pub start: SimTime,
    pub duration: SimDuration,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub encap: Option<Encap>,
    pub sa: Option<(u64, SimTime)>,
    pub seq: u32,
}
