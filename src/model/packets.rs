//! Packets of a session: the sequence of IP packets an application session produces,
//! and their sizes in clear and on the wire under IPsec.
//!
//! The packet model of a TCP session [RFC 793, RFC 1122 delayed ACK]:
//! - handshake SYN (52 bytes: 20 IP + 20 TCP + 12 options), SYN-ACK (52), ACK (40);
//! - then exchanges: the initiator's i-th request message, the responder's i-th response
//!   message (messages of the application's sizes; the last one of each direction carries
//!   what is left). A message is cut into segments of at most the MSS (40 bytes of
//!   headers each). The receiver acknowledges every second segment with a pure ACK (40
//!   bytes); an odd last segment is acknowledged by the receiver's next message when one
//!   follows at once, else by a pure ACK;
//! - teardown FIN, ACK, FIN, ACK (40 bytes each).
//!
//! A UDP session is one datagram (28 bytes of headers) per message, the remainder riding in
//! the last one, IP-fragmented above the MTU.
//!
//! Under IPsec every packet is encapsulated (`wire`). Above the MTU the scenario chooses:
//! path-MTU discovery (the MSS shrinks so encapsulated segments fit) or fragmentation.
//!
//! Contract: [`PacketModel::totals`] (closed form, O(1) in the session size) equals the sum
//! over [`PacketModel::packets`] (one item per packet) byte for byte, and
//! [`PacketModel::packet_runs`] (closed form too) holds the same packets as runs of identical
//! ones; tests check both. Pure.

use super::kinds::Protocol;
use super::wire::{Encap, IpVersion, Mtu, encapsulated_len, fragment_lens, max_inner_len};

const IP_TCP: u32 = 40;
const IP_UDP: u32 = 28;
const SYN: u32 = 52;
const ACK: u32 = 40;

/// What happens to packets that exceed the MTU once encapsulated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OverMtu {
    /// The sender learns the path MTU and shrinks its TCP segments (MSS).
    PathMtu,
    /// The encapsulated packet is IP-fragmented.
    Fragment,
}

/// An application's message sizes, initiator to responder and back.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub protocol: Protocol,
    pub message_up: u64,
    pub message_down: u64,
}

/// Packet counts and bytes (IP level) per direction: index 0 initiator to responder,
/// 1 back.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

impl Totals {
    pub fn packets_total(&self) -> u64 {
        self.packets[0] + self.packets[1]
    }
    pub fn bytes_total(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
    fn add_sized(&mut self, dir: usize, count: u64, sized: Sized) {
        self.packets[dir] += count * sized.packets;
        self.bytes[dir] += count * sized.bytes;
    }
}

/// One packet of a session (before any encapsulation).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// 0: initiator to responder; 1: back.
    pub dir: u8,
    pub kind: PacketKind,
    /// IP packet length in clear.
    pub ip_len: u32,
    /// Application bytes it carries.
    pub payload: u32,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PacketKind {
    Syn,
    SynAck,
    Ack,
    Data,
    Fin,
    Datagram,
}

/// One IP packet's wire size: packets on the wire and their bytes (several when
/// fragmented).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Sized {
    packets: u64,
    bytes: u64,
}

/// Sizing rules of one run: MTU, what happens above it, IP version.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketModel {
    pub mtu: Mtu,
    pub over_mtu: OverMtu,
    pub ip: IpVersion,
}

/// The exchange structure of a session: how many messages each way and their sizes.
#[derive(Copy, Clone, Debug)]
struct Plan {
    n_up: u64,
    n_down: u64,
    full_up: u64,
    last_up: u64,
    full_down: u64,
    last_down: u64,
}

impl Plan {
    fn new(shape: &Shape, bytes_up: u64, bytes_down: u64) -> Plan {
        let udp = shape.protocol == Protocol::Udp;
        let split = |bytes: u64, size: u64| -> (u64, u64) {
            let size = size.max(1);
            if bytes == 0 {
                (0, 0)
            } else if udp && bytes >= size {
                // Datagrams are whole messages: what is left over rides in the last one
                // (a few stray bytes are not a datagram of their own).
                let n = bytes / size;
                (n, size + bytes % size)
            } else {
                let n = bytes.div_ceil(size);
                (n, bytes - (n - 1) * size)
            }
        };
        let (n_up, last_up) = split(bytes_up, shape.message_up);
        let (n_down, last_down) = split(bytes_down, shape.message_down);
        Plan {
            n_up,
            n_down,
            full_up: shape.message_up.max(1),
            last_up,
            full_down: shape.message_down.max(1),
            last_down,
        }
    }
    fn exchanges(&self) -> u64 {
        self.n_up.max(self.n_down)
    }
    /// The exchanges as runs of identical shape, `(first index, count)`: only the last
    /// message each way differs from the full ones, and one side may stop before the
    /// other, so the break points are few whatever the session's size.
    fn identical_runs(&self) -> Vec<(u64, u64)> {
        let n = self.exchanges();
        let mut breaks: Vec<u64> =
            [0, self.n_up.saturating_sub(1), self.n_up, self.n_down.saturating_sub(1), self.n_down, n]
                .into_iter()
                .filter(|&b| b <= n)
                .collect();
        breaks.sort_unstable();
        breaks.dedup();
        breaks.windows(2).filter(|w| w[1] > w[0]).map(|w| (w[0], w[1] - w[0])).collect()
    }
    fn up_size(&self, i: u64) -> Option<u64> {
        (i < self.n_up).then(|| if i + 1 == self.n_up { self.last_up } else { self.full_up })
    }
    fn down_size(&self, i: u64) -> Option<u64> {
        (i < self.n_down).then(|| if i + 1 == self.n_down { self.last_down } else { self.full_down })
    }
}

/// Pure ACKs the receiver of a `segments`-segment message sends: one per two segments,
/// and one for an odd last segment unless the receiver's own message follows at once.
fn pure_acks(segments: u64, reply_follows: bool) -> u64 {
    segments / 2 + u64::from(segments % 2 == 1 && !reply_follows)
}

impl PacketModel {
    /// The MSS a sender uses: MTU minus headers in clear; under IPsec with path-MTU
    /// discovery, what still fits once encapsulated.
    pub fn mss(&self, encap: Option<&Encap>) -> u32 {
        let hdr = match self.ip {
            IpVersion::V4 => IP_TCP,
            IpVersion::V6 => IP_TCP + 20,
        };
        match (encap, self.over_mtu) {
            (Some(e), OverMtu::PathMtu) => {
                max_inner_len(e, self.mtu).map(|m| m.saturating_sub(hdr)).unwrap_or(1).max(1)
            }
            _ => self.mtu.get().saturating_sub(hdr).max(1),
        }
    }

    /// Wire size of one clear IP packet of `ip_len` bytes.
    fn sized(&self, encap: Option<&Encap>, ip_len: u32) -> Sized {
        let len = match encap {
            Some(e) => encapsulated_len(e, ip_len).unwrap_or(ip_len),
            None => ip_len,
        };
        if len <= self.mtu.get() {
            Sized { packets: 1, bytes: u64::from(len) }
        } else {
            let frags = fragment_lens(self.ip, len, self.mtu);
            Sized { packets: frags.len() as u64, bytes: frags.iter().map(|&f| u64::from(f)).sum() }
        }
    }

    fn v6_extra(&self) -> u32 {
        match self.ip {
            IpVersion::V4 => 0,
            IpVersion::V6 => 20,
        }
    }

    /// Totals of one session, in closed form.
    pub fn totals(&self, shape: &Shape, bytes_up: u64, bytes_down: u64, encap: Option<&Encap>) -> Totals {
        let x = self.v6_extra();
        let mut t = Totals::default();
        let plan = Plan::new(shape, bytes_up, bytes_down);
        if shape.protocol == Protocol::Udp {
            for (dir, n, full, last) in
                [(0, plan.n_up, plan.full_up, plan.last_up), (1, plan.n_down, plan.full_down, plan.last_down)]
            {
                if n > 0 {
                    t.add_sized(dir, n - 1, self.sized(encap, IP_UDP + x + full as u32));
                    t.add_sized(dir, 1, self.sized(encap, IP_UDP + x + last as u32));
                }
            }
            return t;
        }
        let mss = u64::from(self.mss(encap));
        let ack = self.sized(encap, ACK + x);
        let syn = self.sized(encap, SYN + x);
        t.add_sized(0, 1, syn);
        t.add_sized(1, 1, syn);
        t.add_sized(0, 1, ack);
        // A message of m bytes from `dir`: segments, and the receiver's pure ACKs.
        let message = |t: &mut Totals, dir: usize, m: u64, count: u64, reply_follows: bool| {
            let (q, r) = (m / mss, m % mss);
            t.add_sized(dir, count * q, self.sized(encap, IP_TCP + x + mss as u32));
            if r > 0 {
                t.add_sized(dir, count, self.sized(encap, IP_TCP + x + r as u32));
            }
            let segments = q + u64::from(r > 0);
            t.add_sized(1 - dir, count * pure_acks(segments, reply_follows), ack);
        };
        for (i, count) in plan.identical_runs() {
            if let Some(m) = plan.up_size(i) {
                message(&mut t, 0, m, count, plan.down_size(i).is_some());
            }
            if let Some(m) = plan.down_size(i) {
                message(&mut t, 1, m, count, plan.up_size(i + 1).is_some());
            }
        }
        t.add_sized(0, 1, ack); // FIN
        t.add_sized(1, 2, ack); // ACK, FIN
        t.add_sized(0, 1, ack); // ACK
        t
    }

    /// Every packet of one session, in order (clear sizes; MSS as under `encap`).
    pub fn packets(&self, shape: &Shape, bytes_up: u64, bytes_down: u64, encap: Option<&Encap>) -> Vec<Packet> {
        let x = self.v6_extra();
        let plan = Plan::new(shape, bytes_up, bytes_down);
        let mut out = Vec::new();
        let push = |out: &mut Vec<Packet>, dir: u8, kind: PacketKind, ip_len: u32, payload: u32| {
            out.push(Packet { dir, kind, ip_len, payload })
        };
        if shape.protocol == Protocol::Udp {
            for i in 0..plan.exchanges() {
                if let Some(m) = plan.up_size(i) {
                    push(&mut out, 0, PacketKind::Datagram, IP_UDP + x + m as u32, m as u32);
                }
                if let Some(m) = plan.down_size(i) {
                    push(&mut out, 1, PacketKind::Datagram, IP_UDP + x + m as u32, m as u32);
                }
            }
            return out;
        }
        let mss = u64::from(self.mss(encap));
        push(&mut out, 0, PacketKind::Syn, SYN + x, 0);
        push(&mut out, 1, PacketKind::SynAck, SYN + x, 0);
        push(&mut out, 0, PacketKind::Ack, ACK + x, 0);
        let message = |out: &mut Vec<Packet>, dir: u8, m: u64, reply_follows: bool| {
            let mut left = m;
            let mut since_ack = 0;
            while left > 0 {
                let seg = left.min(mss);
                push(out, dir, PacketKind::Data, IP_TCP + x + seg as u32, seg as u32);
                left -= seg;
                since_ack += 1;
                if since_ack == 2 {
                    push(out, 1 - dir, PacketKind::Ack, ACK + x, 0);
                    since_ack = 0;
                }
            }
            if since_ack == 1 && !reply_follows {
                push(out, 1 - dir, PacketKind::Ack, ACK + x, 0);
            }
        };
        for i in 0..plan.exchanges() {
            if let Some(m) = plan.up_size(i) {
                message(&mut out, 0, m, plan.down_size(i).is_some());
            }
            if let Some(m) = plan.down_size(i) {
                message(&mut out, 1, m, plan.up_size(i + 1).is_some());
            }
        }
        push(&mut out, 0, PacketKind::Fin, ACK + x, 0);
        push(&mut out, 1, PacketKind::Ack, ACK + x, 0);
        push(&mut out, 1, PacketKind::Fin, ACK + x, 0);
        push(&mut out, 0, PacketKind::Ack, ACK + x, 0);
        out
    }

    /// The packets of one session as runs of identical packets, `(packet, count)`: the
    /// same multiset as [`packets`](Self::packets) (not in wire order), in closed form like
    /// [`totals`](Self::totals), so that a session of any size costs the same: a sampled
    /// 10 TB session would otherwise be billions of packets held in memory at once.
    pub fn packet_runs(
        &self,
        shape: &Shape,
        bytes_up: u64,
        bytes_down: u64,
        encap: Option<&Encap>,
    ) -> Vec<(Packet, u64)> {
        let x = self.v6_extra();
        let plan = Plan::new(shape, bytes_up, bytes_down);
        let mut out = Vec::new();
        let push = |out: &mut Vec<(Packet, u64)>, dir: u8, kind: PacketKind, ip_len: u32, payload: u32, count: u64| {
            if count > 0 {
                out.push((Packet { dir, kind, ip_len, payload }, count));
            }
        };
        if shape.protocol == Protocol::Udp {
            for (dir, n, full, last) in
                [(0, plan.n_up, plan.full_up, plan.last_up), (1, plan.n_down, plan.full_down, plan.last_down)]
            {
                if n > 0 {
                    push(&mut out, dir, PacketKind::Datagram, IP_UDP + x + full as u32, full as u32, n - 1);
                    push(&mut out, dir, PacketKind::Datagram, IP_UDP + x + last as u32, last as u32, 1);
                }
            }
            return out;
        }
        let mss = u64::from(self.mss(encap));
        push(&mut out, 0, PacketKind::Syn, SYN + x, 0, 1);
        push(&mut out, 1, PacketKind::SynAck, SYN + x, 0, 1);
        push(&mut out, 0, PacketKind::Ack, ACK + x, 0, 1);
        // `count` identical messages of m bytes from `dir`: their segments and the
        // receiver's pure ACKs.
        let message = |out: &mut Vec<(Packet, u64)>, dir: u8, m: u64, count: u64, reply_follows: bool| {
            let (q, r) = (m / mss, m % mss);
            push(out, dir, PacketKind::Data, IP_TCP + x + mss as u32, mss as u32, count * q);
            if r > 0 {
                push(out, dir, PacketKind::Data, IP_TCP + x + r as u32, r as u32, count);
            }
            let segments = q + u64::from(r > 0);
            push(out, 1 - dir, PacketKind::Ack, ACK + x, 0, count * pure_acks(segments, reply_follows));
        };
        for (i, count) in plan.identical_runs() {
            if let Some(m) = plan.up_size(i) {
                message(&mut out, 0, m, count, plan.down_size(i).is_some());
            }
            if let Some(m) = plan.down_size(i) {
                message(&mut out, 1, m, count, plan.up_size(i + 1).is_some());
            }
        }
        push(&mut out, 0, PacketKind::Fin, ACK + x, 0, 1);
        push(&mut out, 1, PacketKind::Ack, ACK + x, 0, 1);
        push(&mut out, 1, PacketKind::Fin, ACK + x, 0, 1);
        push(&mut out, 0, PacketKind::Ack, ACK + x, 0, 1);
        out
    }

    /// Sums runs of packets ([`packet_runs`](Self::packet_runs)) as `totals` does.
    pub fn sum_runs(&self, runs: &[(Packet, u64)], encap: Option<&Encap>) -> Totals {
        let mut t = Totals::default();
        for (p, count) in runs {
            t.add_sized(p.dir as usize, *count, self.sized(encap, p.ip_len));
        }
        t
    }

    /// Sums packets as [`totals`](Self::totals) does, from the per-packet sequence (used
    /// by the sample and the tests).
    pub fn sum(&self, packets: &[Packet], encap: Option<&Encap>) -> Totals {
        let mut t = Totals::default();
        for p in packets {
            t.add_sized(p.dir as usize, 1, self.sized(encap, p.ip_len));
        }
        t
    }

    /// Wire packets and bytes of one clear packet (several packets when fragmented).
    pub fn wire_of(&self, encap: Option<&Encap>, ip_len: u32) -> (u64, u64) {
        let s = self.sized(encap, ip_len);
        (s.packets, s.bytes)
    }

    /// Clear-only convenience: totals without IPsec.
    pub fn clear(&self, shape: &Shape, bytes_up: u64, bytes_down: u64) -> Totals {
        self.totals(shape, bytes_up, bytes_down, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::wire::{EncapMode, Suite};

    fn model() -> PacketModel {
        PacketModel { mtu: Mtu::ETHERNET, over_mtu: OverMtu::PathMtu, ip: IpVersion::V4 }
    }

    #[test]
    fn small_request_response() {
        let shape = Shape { protocol: Protocol::Tcp, message_up: 500, message_down: 3000 };
        let p = model().packets(&shape, 500, 3000, None);
        // SYN, SYN-ACK, ACK, request (1 seg, ACK piggybacked on the response), response
        // (3 segs: ACK after 2, last one acked by a pure ACK), FIN, ACK, FIN, ACK.
        let kinds: Vec<PacketKind> = p.iter().map(|x| x.kind).collect();
        use PacketKind::*;
        assert_eq!(kinds, vec![Syn, SynAck, Ack, Data, Data, Data, Ack, Data, Ack, Fin, Ack, Fin, Ack]);
        assert_eq!(model().sum(&p, None), model().totals(&shape, 500, 3000, None));
    }

    #[test]
    fn pmtu_shrinks_the_mss_under_esp() {
        let e = Encap { suite: Suite::EspNullSha1, mode: EncapMode::Transport, ip: IpVersion::V4, nat_t: false };
        assert_eq!(model().mss(None), 1460);
        assert_eq!(model().mss(Some(&e)), 1438, "inner packets shrink to 1478 bytes [DOMAIN 4]");
    }
}
