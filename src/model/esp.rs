//! Real IPsec packets, byte for byte: clear IPv4/IPv6 packets with TCP, UDP or opaque
//! payloads, and their ESP [RFC 4303] or AH [RFC 4302] encapsulation in transport or tunnel
//! mode, optionally inside NAT-T UDP [RFC 3948], with real cryptography: HMAC-SHA1-96
//! [RFC 2404], HMAC-SHA-256-128 [RFC 4868], AES-GMAC [RFC 4543], AES-GCM [RFC 4106] and
//! AES-CBC [RFC 3602].
//!
//! This module is an independent implementation of the layout that `model::wire` computes
//! arithmetically: it takes its IV, block and ICV sizes from the transforms themselves and
//! pads by counting, so the tests can hold `wire::encapsulated_len` to the length of real
//! bytes. It also feeds pcap files for Wireshark (`output::pcap`).
//!
//! Contracts:
//! - Pure and deterministic: no I/O, no clock, no OS randomness. Keys come from
//!   [`Sa::from_seed`] (SHA-256 of a label, the seed and the SPI); IVs come from the SA and
//!   the sequence number (the sequence number itself for GCM/GMAC, as RFC 4106 suggests; a
//!   SHA-256 of a per-SA IV seed and the sequence number for CBC). Not a secure IPsec
//!   stack: it exists to make exact, verifiable bytes.
//! - Packets are plain IP: IPv4 without options, IPv6 without extension headers, same IP
//!   version inside and outside. Anything else is an [`EspError`], never a panic.
//! - An [`Sa`] is one direction: its sequence counter starts at 1 and increments per packet;
//!   after 2^32 - 1 packets it refuses ([`EspError::SequenceExhausted`], no ESN).
//! - ESP padding is 1, 2, 3, ... (the RFC 4303 default), checked on decapsulation.
//! - AH covers the IP header with the mutable fields zeroed (IPv4: TOS, flags and fragment
//!   offset, TTL, header checksum; IPv6: traffic class, flow label, hop limit).
//! - Headers built here use TTL / hop limit 128 (Windows), IPv4 DF set on clear packets and
//!   identification 0 (RFC 6864 allows it for atomic datagrams); tunnel outer headers take
//!   the low 16 bits of the sequence number as identification. NAT-T UDP uses ports
//!   4500/4500 with checksum 0 on IPv4 (RFC 3948 3.1) and a real checksum on IPv6.

use std::fmt;
use std::net::IpAddr;

use aes::Aes128;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::wire::{Encap, EncapMode, IpVersion, Suite};

/// IP protocol numbers.
pub mod proto {
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    /// IPv6 "No Next Header", used for opaque test payloads.
    pub const NO_NEXT: u8 = 59;
}

/// The NAT-T UDP port [RFC 3948].
pub const NAT_T_PORT: u16 = 4500;
/// TTL / hop limit of the headers built here (the Windows default).
pub const TTL: u8 = 128;

/// Errors of packet building and parsing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EspError {
    #[error("source and destination addresses are of different IP versions")]
    MixedAddressFamilies,
    #[error("a {len}-byte IP packet cannot hold its {min} bytes of headers")]
    TooShort { len: u32, min: u32 },
    #[error("a {len}-byte IP packet exceeds the {max}-byte maximum")]
    TooLong { len: u32, max: u32 },
    #[error("not a plain {expected} packet: {why}")]
    Malformed { expected: IpVersion, why: &'static str },
    #[error("SPI {0} is reserved (0-255)")]
    ReservedSpi(Spi),
    #[error("AH cannot traverse NAT: NAT-T applies to ESP only")]
    AhNatTraversal,
    #[error("the SA's sequence numbers are exhausted (no extended sequence numbers)")]
    SequenceExhausted,
    #[error("SPI {found} does not belong to this SA ({expected})")]
    WrongSpi { expected: Spi, found: Spi },
    #[error("integrity check failed")]
    IcvMismatch,
    #[error("bad ESP padding")]
    BadPadding,
}

/// Security Parameter Index: names an SA at its destination [RFC 4301 4.1].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Spi(pub u32);

impl fmt::Display for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

/// TCP flag bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const PSH_ACK: TcpFlags = TcpFlags(0x18);
}

/// The transport layer of a clear packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum L4 {
    /// A 20-byte TCP header (no options, window 65535).
    Tcp { src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: TcpFlags },
    /// An 8-byte UDP header.
    Udp { src_port: u16, dst_port: u16 },
    /// No transport header: filler bytes under the given protocol number (for packets
    /// shorter than any TCP/UDP packet).
    Opaque { protocol: u8 },
}

impl L4 {
    /// Header length in bytes.
    pub const fn header_len(&self) -> u32 {
        match self {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } => 8,
            L4::Opaque { .. } => 0,
        }
    }

    const fn protocol(&self) -> u8 {
        match self {
            L4::Tcp { .. } => proto::TCP,
            L4::Udp { .. } => proto::UDP,
            L4::Opaque { protocol } => *protocol,
        }
    }
}

/// The addresses and transport of a clear packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
}

/// A pair of IP addresses (tunnel endpoints).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    pub src: IpAddr,
    pub dst: IpAddr,
}

fn version_of(a: IpAddr) -> IpVersion {
    match a {
        IpAddr::V4(_) => IpVersion::V4,
        IpAddr::V6(_) => IpVersion::V6,
    }
}

fn hdr_len(v: IpVersion) -> usize {
    match v {
        IpVersion::V4 => 20,
        IpVersion::V6 => 40,
    }
}

fn max_len(v: IpVersion) -> usize {
    match v {
        IpVersion::V4 => 65_535,
        IpVersion::V6 => 40 + 65_535,
    }
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The Internet checksum [RFC 1071] of the concatenation of `parts` (each of even length
/// except possibly the last).
fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                None => odd = Some(b),
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes a fresh IP header for a packet of `total_len` bytes.
fn ip_header(src: &IpAddr, dst: &IpAddr, protocol: u8, total_len: usize, ident: u16, dont_fragment: bool) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
            h[4..6].copy_from_slice(&ident.to_be_bytes());
            if dont_fragment {
                h[6] = 0x40;
            }
            h[8] = TTL;
            h[9] = protocol;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = inet_checksum(&[&h]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&((total_len - 40) as u16).to_be_bytes());
            h[6] = protocol;
            h[7] = TTL;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
            h
        }
        _ => unreachable!("callers check the address families"),
    }
}

/// The TCP/UDP checksum over the pseudo-header [RFC 793, RFC 768, RFC 8200 8.1].
fn l4_checksum(src: &IpAddr, dst: &IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let (s, d) = (addr_bytes(src), addr_bytes(dst));
    let pseudo: Vec<u8> = match src {
        IpAddr::V4(_) => {
            let mut p = vec![0, protocol];
            p.extend_from_slice(&(segment.len() as u16).to_be_bytes());
            p
        }
        IpAddr::V6(_) => {
            let mut p = (segment.len() as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&[0, 0, 0, protocol]);
            p
        }
    };
    inet_checksum(&[&s, &d, &pseudo, segment])
}

/// UDP checksum, with 0 sent as 0xffff [RFC 768].
fn udp_checksum(src: &IpAddr, dst: &IpAddr, datagram: &[u8]) -> u16 {
    match l4_checksum(src, dst, proto::UDP, datagram) {
        0 => 0xffff,
        c => c,
    }
}

/// Deterministic filler: byte `i` of a payload is `i mod 256`.
fn filler(len: usize) -> impl Iterator<Item = u8> {
    (0..len).map(|i| i as u8)
}

/// A clear IP packet of exactly `ip_len` bytes (IP header included) for `flow`: headers with
/// correct lengths and checksums, then filler bytes.
pub fn build_inner(flow: &Flow, ip_len: u32) -> Result<Vec<u8>, EspError> {
    let v = version_of(flow.src);
    if v != version_of(flow.dst) {
        return Err(EspError::MixedAddressFamilies);
    }
    let min = hdr_len(v) as u32 + flow.l4.header_len();
    if ip_len < min {
        return Err(EspError::TooShort { len: ip_len, min });
    }
    if ip_len as usize > max_len(v) {
        return Err(EspError::TooLong { len: ip_len, max: max_len(v) as u32 });
    }
    let payload: Vec<u8> = filler(ip_len as usize - min as usize).collect();
    build_inner_with(flow, &[], &payload)
}

/// A clear IP packet for `flow` carrying TCP `options` (a multiple of 4 bytes, at most 40;
/// ignored for UDP) and exactly `payload`: headers with correct lengths and checksums.
pub fn build_inner_with(flow: &Flow, options: &[u8], payload: &[u8]) -> Result<Vec<u8>, EspError> {
    let v = version_of(flow.src);
    if v != version_of(flow.dst) {
        return Err(EspError::MixedAddressFamilies);
    }
    let options = if matches!(flow.l4, L4::Tcp { .. }) { options } else { &[] };
    if options.len() % 4 != 0 || options.len() > 40 {
        return Err(EspError::Malformed { expected: v, why: "TCP options must be a multiple of 4 bytes, at most 40" });
    }
    let seg_len = flow.l4.header_len() as usize + options.len() + payload.len();
    let total = hdr_len(v) + seg_len;
    if total > max_len(v) {
        return Err(EspError::TooLong { len: total as u32, max: max_len(v) as u32 });
    }
    let mut seg = Vec::with_capacity(seg_len);
    match flow.l4 {
        L4::Tcp { src_port, dst_port, seq, ack, flags } => {
            seg.extend_from_slice(&src_port.to_be_bytes());
            seg.extend_from_slice(&dst_port.to_be_bytes());
            seg.extend_from_slice(&seq.to_be_bytes());
            seg.extend_from_slice(&ack.to_be_bytes());
            seg.push(((5 + options.len() / 4) as u8) << 4); // data offset in words
            seg.push(flags.0);
            seg.extend_from_slice(&65_535u16.to_be_bytes()); // window
            seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            seg.extend_from_slice(options);
            seg.extend_from_slice(payload);
            let c = l4_checksum(&flow.src, &flow.dst, proto::TCP, &seg);
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        L4::Udp { src_port, dst_port } => {
            seg.extend_from_slice(&src_port.to_be_bytes());
            seg.extend_from_slice(&dst_port.to_be_bytes());
            seg.extend_from_slice(&(seg_len as u16).to_be_bytes());
            seg.extend_from_slice(&[0, 0]);
            seg.extend_from_slice(payload);
            let c = udp_checksum(&flow.src, &flow.dst, &seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
        }
        L4::Opaque { .. } => seg.extend_from_slice(payload),
    }
    let mut pkt = ip_header(&flow.src, &flow.dst, flow.l4.protocol(), total, 0, true);
    pkt.extend_from_slice(&seg);
    Ok(pkt)
}

/// The TCP options of a Windows SYN (12 bytes): MSS, NOP, window scale, NOP, NOP,
/// SACK permitted.
pub fn syn_options(mss: u16) -> [u8; 12] {
    let m = mss.to_be_bytes();
    [2, 4, m[0], m[1], 1, 3, 3, 8, 1, 1, 4, 2]
}

/// A well-formed DNS message of `len` bytes with transaction `id`: one A query for a name made of filler labels
/// sized to fit, and for a response the answer flags. The smallest message is 17 bytes, and
/// 18 cannot be made (a label takes two bytes at least), so those lengths come out larger.
pub fn dns_message(len: usize, response: bool, id: u16) -> Vec<u8> {
    let len = if len == 18 { 19 } else { len.max(17) };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(if response { &[0x81, 0x80] } else { &[0x01, 0x00] });
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    // The name takes len - 12 (header) - 4 (type, class) bytes, root label included.
    let mut name_left = len - 16 - 1;
    while name_left > 0 {
        // Labels of at most 63 bytes; never leave a remainder of 1 (a label needs 2).
        let mut take = name_left.min(64);
        if name_left - take == 1 {
            take -= 1;
        }
        let label = take - 1;
        m.push(label as u8);
        m.extend((0..label).map(|i| b'a' + (i % 26) as u8));
        name_left -= take;
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
    m
}

/// What the IP header of a plain packet says.
struct IpInfo {
    version: IpVersion,
    header_len: usize,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
}

/// Parses a plain IP packet of version `v` (no IPv4 options, no IPv6 extension headers),
/// checking that the length fields match the buffer.
fn parse_ip(pkt: &[u8], v: IpVersion) -> Result<IpInfo, EspError> {
    let bad = |why| EspError::Malformed { expected: v, why };
    let h = hdr_len(v);
    if pkt.len() < h {
        return Err(EspError::TooShort { len: pkt.len() as u32, min: h as u32 });
    }
    match v {
        IpVersion::V4 => {
            if pkt[0] >> 4 != 4 {
                return Err(bad("IP version is not 4"));
            }
            if pkt[0] & 0x0f != 5 {
                return Err(bad("IPv4 options are not supported"));
            }
            if usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) != pkt.len() {
                return Err(bad("IPv4 total length does not match the packet"));
            }
            let src: [u8; 4] = pkt[12..16].try_into().expect("4 bytes");
            let dst: [u8; 4] = pkt[16..20].try_into().expect("4 bytes");
            Ok(IpInfo { version: v, header_len: h, protocol: pkt[9], src: src.into(), dst: dst.into() })
        }
        IpVersion::V6 => {
            if pkt[0] >> 4 != 6 {
                return Err(bad("IP version is not 6"));
            }
            if usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) + 40 != pkt.len() {
                return Err(bad("IPv6 payload length does not match the packet"));
            }
            let src: [u8; 16] = pkt[8..24].try_into().expect("16 bytes");
            let dst: [u8; 16] = pkt[24..40].try_into().expect("16 bytes");
            Ok(IpInfo { version: v, header_len: h, protocol: pkt[6], src: src.into(), dst: dst.into() })
        }
    }
}

/// Rewrites the protocol and length fields of a copied IP header (and the IPv4 checksum).
fn retarget_header(hdr: &mut [u8], v: IpVersion, protocol: u8, total_len: usize) {
    match v {
        IpVersion::V4 => {
            hdr[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
            hdr[9] = protocol;
            hdr[10..12].copy_from_slice(&[0, 0]);
            let c = inet_checksum(&[hdr]);
            hdr[10..12].copy_from_slice(&c.to_be_bytes());
        }
        IpVersion::V6 => {
            hdr[4..6].copy_from_slice(&((total_len - 40) as u16).to_be_bytes());
            hdr[6] = protocol;
        }
    }
}

/// Checks the IPv4 header checksum and the TCP/UDP checksum of a plain IP packet.
pub fn verify_checksums(pkt: &[u8]) -> Result<(), EspError> {
    let v = match pkt.first().map(|b| b >> 4) {
        Some(4) => IpVersion::V4,
        Some(6) => IpVersion::V6,
        _ => return Err(EspError::Malformed { expected: IpVersion::V4, why: "not an IP packet" }),
    };
    let ip = parse_ip(pkt, v)?;
    let bad = |why| EspError::Malformed { expected: v, why };
    if v == IpVersion::V4 && inet_checksum(&[&pkt[..20]]) != 0 {
        return Err(bad("IPv4 header checksum"));
    }
    let seg = &pkt[ip.header_len..];
    match ip.protocol {
        proto::TCP | proto::UDP => {
            let whole = l4_checksum(&ip.src, &ip.dst, ip.protocol, seg);
            let udp_zero = ip.protocol == proto::UDP && v == IpVersion::V4 && seg.get(6..8) == Some(&[0, 0][..]);
            if whole != 0 && !udp_zero {
                return Err(bad("TCP/UDP checksum"));
            }
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Transforms: sizes taken from the algorithms, not from `wire`.
// ---------------------------------------------------------------------------------------

const AES_BLOCK: usize = 16;
const SHA1_96: usize = 96 / 8;
const SHA256_128: usize = 128 / 8;
const GCM_TAG: usize = 16;
const GCM_EXPLICIT_IV: usize = 8;
const GCM_SALT: usize = 4;
const AES128_KEY: usize = 16;
/// RFC 4303 2.4: the ciphertext ends on a 4-byte boundary whatever the cipher.
const ESP_MIN_ALIGN: usize = 4;

struct Transform {
    iv: usize,
    align: usize,
    icv: usize,
}

fn transform(suite: Suite) -> Transform {
    match suite {
        Suite::EspNullSha1 => Transform { iv: 0, align: ESP_MIN_ALIGN, icv: SHA1_96 },
        Suite::EspNullSha256 => Transform { iv: 0, align: ESP_MIN_ALIGN, icv: SHA256_128 },
        // GCM and GMAC are stream-like (CTR): only the 4-byte ESP alignment applies.
        Suite::EspNullGmac128 | Suite::EspAes128Gcm => {
            Transform { iv: GCM_EXPLICIT_IV, align: ESP_MIN_ALIGN, icv: GCM_TAG }
        }
        Suite::EspAes128CbcSha1 => Transform { iv: AES_BLOCK, align: AES_BLOCK.max(ESP_MIN_ALIGN), icv: SHA1_96 },
        Suite::AhSha1 => Transform { iv: 0, align: 1, icv: SHA1_96 },
    }
}

/// Keys of one SA, as IKE would hand them to ESP/AH: `encryption` is the cipher key plus,
/// for GCM/GMAC, the 4-byte salt (RFC 4106 8.1 KEYMAT layout, which Wireshark's ESP SA table
/// also expects); `integrity` is the HMAC key (empty for GCM/GMAC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaKeys {
    pub encryption: Vec<u8>,
    pub integrity: Vec<u8>,
    iv_seed: [u8; 32],
}

/// One direction of an IPsec SA: SPI, encapsulation, keys and the sequence counter.
#[derive(Clone, Debug)]
pub struct Sa {
    spi: Spi,
    encap: Encap,
    tunnel: Option<Endpoints>,
    /// The sequence number of the next packet (1 first); u64 so exhaustion is visible.
    next_seq: u64,
    keys: SaKeys,
}

fn derive(seed: u64, spi: Spi, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"domiso/esp/v1/");
    h.update(label.as_bytes());
    h.update(seed.to_be_bytes());
    h.update(spi.0.to_be_bytes());
    h.finalize().into()
}

impl Sa {
    /// An SA whose keys derive from `seed` and `spi` (SHA-256), so the same inputs give the
    /// same bytes on every run. SPIs 0-255 are reserved [RFC 4303 2.1]; AH with NAT-T is
    /// refused.
    pub fn from_seed(seed: u64, spi: Spi, encap: Encap) -> Result<Sa, EspError> {
        if spi.0 < 256 {
            return Err(EspError::ReservedSpi(spi));
        }
        if encap.nat_t && !encap.suite.is_esp() {
            return Err(EspError::AhNatTraversal);
        }
        let enc = derive(seed, spi, "encryption");
        let auth = derive(seed, spi, "integrity");
        let (encryption, integrity) = match encap.suite {
            Suite::EspNullSha1 | Suite::AhSha1 => (vec![], auth[..20].to_vec()),
            Suite::EspNullSha256 => (vec![], auth.to_vec()),
            Suite::EspNullGmac128 | Suite::EspAes128Gcm => (enc[..AES128_KEY + GCM_SALT].to_vec(), vec![]),
            Suite::EspAes128CbcSha1 => (enc[..AES128_KEY].to_vec(), auth[..20].to_vec()),
        };
        let keys = SaKeys { encryption, integrity, iv_seed: derive(seed, spi, "iv") };
        Ok(Sa { spi, encap, tunnel: None, next_seq: 1, keys })
    }

    /// Tunnel-mode outer addresses (default: the inner packet's own, host-to-host tunnel).
    pub fn with_tunnel_endpoints(mut self, endpoints: Endpoints) -> Sa {
        self.tunnel = Some(endpoints);
        self
    }

    pub fn spi(&self) -> Spi {
        self.spi
    }

    pub fn encap(&self) -> &Encap {
        &self.encap
    }

    pub fn keys(&self) -> &SaKeys {
        &self.keys
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn explicit_iv(&self, seq: u32) -> Vec<u8> {
        match self.encap.suite {
            Suite::EspNullGmac128 | Suite::EspAes128Gcm => u64::from(seq).to_be_bytes().to_vec(),
            Suite::EspAes128CbcSha1 => {
                let mut h = Sha256::new();
                h.update(self.keys.iv_seed);
                h.update(seq.to_be_bytes());
                h.finalize()[..AES_BLOCK].to_vec()
            }
            _ => vec![],
        }
    }

    fn hmac(&self, parts: &[&[u8]], out_len: usize) -> Vec<u8> {
        match self.encap.suite {
            Suite::EspNullSha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(&self.keys.integrity).expect("HMAC takes any key");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes()[..out_len].to_vec()
            }
            _ => {
                let mut m = Hmac::<Sha1>::new_from_slice(&self.keys.integrity).expect("HMAC takes any key");
                parts.iter().for_each(|p| m.update(p));
                m.finalize().into_bytes()[..out_len].to_vec()
            }
        }
    }

    fn gcm(&self) -> (Aes128Gcm, [u8; GCM_SALT]) {
        let k = &self.keys.encryption;
        let cipher = Aes128Gcm::new_from_slice(&k[..AES128_KEY]).expect("16-byte key");
        let salt = k[AES128_KEY..AES128_KEY + GCM_SALT].try_into().expect("4-byte salt");
        (cipher, salt)
    }
}

fn gcm_nonce(salt: &[u8; GCM_SALT], iv: &[u8]) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    n.into()
}

/// Builds the ESP packet body from SPI to ICV around `plaintext` (payload, padding, pad
/// length, next header).
fn esp_body(sa: &Sa, seq: u32, mut plaintext: Vec<u8>) -> Vec<u8> {
    let t = transform(sa.encap.suite);
    let iv = sa.explicit_iv(seq);
    let mut head = sa.spi.0.to_be_bytes().to_vec();
    head.extend_from_slice(&seq.to_be_bytes());
    let mut body = head.clone();
    body.extend_from_slice(&iv);
    match sa.encap.suite {
        Suite::EspNullSha1 | Suite::EspNullSha256 => {
            body.extend_from_slice(&plaintext);
            let icv = sa.hmac(&[&body], t.icv);
            body.extend_from_slice(&icv);
        }
        Suite::EspAes128CbcSha1 => {
            let key: [u8; AES128_KEY] = sa.keys.encryption[..].try_into().expect("16-byte key");
            let iv16: [u8; AES_BLOCK] = iv[..].try_into().expect("16-byte IV");
            let mut enc = cbc::Encryptor::<Aes128>::new(&key.into(), &iv16.into());
            for block in plaintext.chunks_exact_mut(AES_BLOCK) {
                let block: &mut [u8; AES_BLOCK] = block.try_into().expect("whole blocks");
                enc.encrypt_block(block.into());
            }
            body.extend_from_slice(&plaintext);
            let icv = sa.hmac(&[&body], t.icv);
            body.extend_from_slice(&icv);
        }
        Suite::EspAes128Gcm => {
            let (cipher, salt) = sa.gcm();
            let tag = cipher
                .encrypt_inout_detached(&gcm_nonce(&salt, &iv), &head, plaintext.as_mut_slice().into())
                .expect("ESP payloads are far below the GCM limit");
            body.extend_from_slice(&plaintext);
            body.extend_from_slice(&tag);
        }
        Suite::EspNullGmac128 => {
            // RFC 4543 3.3: everything from the SPI to the next header is AAD; no plaintext.
            let (cipher, salt) = sa.gcm();
            body.extend_from_slice(&plaintext);
            let tag = cipher
                .encrypt_inout_detached(&gcm_nonce(&salt, &iv), &body, (&mut [][..]).into())
                .expect("ESP payloads are far below the GCM limit");
            body.extend_from_slice(&tag);
        }
        Suite::AhSha1 => unreachable!("AH has no ESP body"),
    }
    body
}

/// Copy of an outer packet with AH's mutable fields and its ICV zeroed [RFC 4302 3.3.3].
fn ah_icv_input(pkt: &[u8], v: IpVersion, icv_at: std::ops::Range<usize>) -> Vec<u8> {
    let mut m = pkt.to_vec();
    match v {
        IpVersion::V4 => {
            m[1] = 0; // TOS
            m[6] = 0; // flags, fragment offset
            m[7] = 0;
            m[8] = 0; // TTL
            m[10] = 0; // header checksum
            m[11] = 0;
        }
        IpVersion::V6 => {
            m[0] &= 0xf0; // traffic class and flow label
            m[1] = 0;
            m[2] = 0;
            m[3] = 0;
            m[7] = 0; // hop limit
        }
    }
    m[icv_at].fill(0);
    m
}

/// Encapsulates one clear IP packet with `sa` (ESP or AH, the SA's mode and NAT-T), taking
/// the next sequence number. Returns the whole outer IP packet.
pub fn encapsulate(sa: &mut Sa, inner: &[u8]) -> Result<Vec<u8>, EspError> {
    let encap = sa.encap;
    let v = encap.ip;
    let ip = parse_ip(inner, v)?;
    if sa.next_seq > u64::from(u32::MAX) {
        return Err(EspError::SequenceExhausted);
    }
    let seq = sa.next_seq as u32;
    let (src, dst) = match sa.tunnel {
        Some(e) => (e.src, e.dst),
        None => (ip.src, ip.dst),
    };
    if version_of(src) != v || version_of(dst) != v {
        return Err(EspError::MixedAddressFamilies);
    }
    let (payload, next_header) = match encap.mode {
        EncapMode::Transport => (&inner[ip.header_len..], ip.protocol),
        EncapMode::Tunnel => (inner, if ip.version == IpVersion::V4 { proto::IPV4 } else { proto::IPV6 }),
    };
    let t = transform(encap.suite);

    // The IPsec part, from the ESP SPI (or the AH header) to the end.
    let (ipsec, ipsec_proto, ah_icv_offset) = if encap.suite.is_esp() {
        let mut plaintext = payload.to_vec();
        let mut pad: u8 = 0;
        while (plaintext.len() + 2) % t.align != 0 {
            pad += 1;
            plaintext.push(pad); // 1, 2, 3, ... [RFC 4303 2.4]
        }
        plaintext.push(pad);
        plaintext.push(next_header);
        (esp_body(sa, seq, plaintext), proto::ESP, None)
    } else {
        let align = if v == IpVersion::V4 { 4 } else { 8 };
        let mut ah_len = 12 + t.icv;
        while ah_len % align != 0 {
            ah_len += 1;
        }
        let mut ah = vec![0u8; ah_len];
        ah[0] = next_header;
        ah[1] = (ah_len / 4 - 2) as u8; // payload length in 32-bit words, minus 2
        ah[4..8].copy_from_slice(&sa.spi.0.to_be_bytes());
        ah[8..12].copy_from_slice(&seq.to_be_bytes());
        ah.extend_from_slice(payload);
        (ah, proto::AH, Some(12))
    };

    let udp_len = if encap.nat_t { 8 } else { 0 };
    let hlen = hdr_len(v);
    let total = hlen + udp_len + ipsec.len();
    if total > max_len(v) {
        return Err(EspError::TooLong { len: total as u32, max: max_len(v) as u32 });
    }
    let outer_proto = if encap.nat_t { proto::UDP } else { ipsec_proto };
    let mut out = match encap.mode {
        EncapMode::Transport => {
            let mut h = inner[..hlen].to_vec();
            retarget_header(&mut h, v, outer_proto, total);
            h
        }
        EncapMode::Tunnel => ip_header(&src, &dst, outer_proto, total, seq as u16, false),
    };
    if encap.nat_t {
        let mut udp = Vec::with_capacity(udp_len + ipsec.len());
        udp.extend_from_slice(&NAT_T_PORT.to_be_bytes());
        udp.extend_from_slice(&NAT_T_PORT.to_be_bytes());
        udp.extend_from_slice(&((udp_len + ipsec.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&ipsec);
        if v == IpVersion::V6 {
            let c = udp_checksum(&src, &dst, &udp);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
        out.extend_from_slice(&udp);
    } else {
        out.extend_from_slice(&ipsec);
    }
    if let Some(off) = ah_icv_offset {
        let at = hlen + off..hlen + off + t.icv;
        let input = ah_icv_input(&out, v, at.clone());
        let icv = sa.hmac(&[&input], t.icv);
        out[at].copy_from_slice(&icv);
    }
    sa.next_seq += 1;
    Ok(out)
}

/// What [`decapsulate`] recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    pub spi: Spi,
    pub seq: u32,
    /// The protocol the IPsec header announced (TCP, UDP, or IPv4/IPv6 in tunnel mode).
    pub next_header: u8,
    /// The clear inner IP packet.
    pub inner: Vec<u8>,
}

/// Verifies and removes the SA's protection from an outer packet: checks the SPI and the
/// ICV (or AEAD tag), decrypts, checks and strips the padding, and rebuilds the inner IP
/// packet. No anti-replay window (tests only).
pub fn decapsulate(sa: &Sa, outer: &[u8]) -> Result<Decapsulated, EspError> {
    let encap = sa.encap;
    let v = encap.ip;
    let bad = |why| EspError::Malformed { expected: v, why };
    let ip = parse_ip(outer, v)?;
    let hlen = ip.header_len;
    let mut at = hlen;
    if encap.nat_t {
        if ip.protocol != proto::UDP {
            return Err(bad("expected NAT-T UDP"));
        }
        let udp = outer.get(hlen..hlen + 8).ok_or(bad("truncated UDP header"))?;
        if u16::from_be_bytes([udp[2], udp[3]]) != NAT_T_PORT {
            return Err(bad("NAT-T destination port is not 4500"));
        }
        if usize::from(u16::from_be_bytes([udp[4], udp[5]])) != outer.len() - hlen {
            return Err(bad("UDP length does not match the packet"));
        }
        at += 8;
    } else if ip.protocol != if encap.suite.is_esp() { proto::ESP } else { proto::AH } {
        return Err(bad("unexpected IPsec protocol"));
    }
    let t = transform(encap.suite);
    let body = &outer[at..];

    let (spi, seq, next_header, payload) = if encap.suite.is_esp() {
        if body.len() < 8 + t.iv + 2 + t.icv {
            return Err(bad("truncated ESP packet"));
        }
        let spi = Spi(u32::from_be_bytes(body[0..4].try_into().expect("4 bytes")));
        if spi != sa.spi {
            return Err(EspError::WrongSpi { expected: sa.spi, found: spi });
        }
        let seq = u32::from_be_bytes(body[4..8].try_into().expect("4 bytes"));
        let (authed, icv) = body.split_at(body.len() - t.icv);
        let iv = &authed[8..8 + t.iv];
        let mut plaintext = authed[8 + t.iv..].to_vec();
        match encap.suite {
            Suite::EspNullSha1 | Suite::EspNullSha256 | Suite::EspAes128CbcSha1 => {
                if sa.hmac(&[authed], t.icv) != icv {
                    return Err(EspError::IcvMismatch);
                }
                if encap.suite == Suite::EspAes128CbcSha1 {
                    if plaintext.len() % AES_BLOCK != 0 {
                        return Err(bad("ciphertext is not whole AES blocks"));
                    }
                    let key: [u8; AES128_KEY] = sa.keys.encryption[..].try_into().expect("16-byte key");
                    let iv16: [u8; AES_BLOCK] = iv.try_into().expect("16-byte IV");
                    let mut dec = cbc::Decryptor::<Aes128>::new(&key.into(), &iv16.into());
                    for block in plaintext.chunks_exact_mut(AES_BLOCK) {
                        let block: &mut [u8; AES_BLOCK] = block.try_into().expect("whole blocks");
                        dec.decrypt_block(block.into());
                    }
                }
            }
            Suite::EspAes128Gcm => {
                let (cipher, salt) = sa.gcm();
                let tag: [u8; GCM_TAG] = icv.try_into().expect("16-byte tag");
                cipher
                    .decrypt_inout_detached(
                        &gcm_nonce(&salt, iv),
                        &body[..8],
                        plaintext.as_mut_slice().into(),
                        &tag.into(),
                    )
                    .map_err(|_| EspError::IcvMismatch)?;
            }
            Suite::EspNullGmac128 => {
                let (cipher, salt) = sa.gcm();
                let tag: [u8; GCM_TAG] = icv.try_into().expect("16-byte tag");
                cipher
                    .decrypt_inout_detached(&gcm_nonce(&salt, iv), authed, (&mut [][..]).into(), &tag.into())
                    .map_err(|_| EspError::IcvMismatch)?;
            }
            Suite::AhSha1 => unreachable!(),
        }
        let nh = plaintext.pop().ok_or(bad("empty ESP payload"))?;
        let pad = usize::from(plaintext.pop().ok_or(bad("empty ESP payload"))?);
        if pad > plaintext.len() {
            return Err(EspError::BadPadding);
        }
        let pad_start = plaintext.len() - pad;
        if plaintext[pad_start..].iter().enumerate().any(|(i, &b)| usize::from(b) != i + 1) {
            return Err(EspError::BadPadding);
        }
        plaintext.truncate(pad_start);
        (spi, seq, nh, plaintext)
    } else {
        if body.len() < 12 {
            return Err(bad("truncated AH"));
        }
        let ah_len = (usize::from(body[1]) + 2) * 4;
        if body.len() < ah_len || ah_len < 12 + t.icv {
            return Err(bad("bad AH length"));
        }
        let spi = Spi(u32::from_be_bytes(body[4..8].try_into().expect("4 bytes")));
        if spi != sa.spi {
            return Err(EspError::WrongSpi { expected: sa.spi, found: spi });
        }
        let seq = u32::from_be_bytes(body[8..12].try_into().expect("4 bytes"));
        let icv_at = at + 12..at + 12 + t.icv;
        let expect = sa.hmac(&[&ah_icv_input(outer, v, icv_at.clone())], t.icv);
        if expect != outer[icv_at] {
            return Err(EspError::IcvMismatch);
        }
        (spi, seq, body[0], body[ah_len..].to_vec())
    };

    let inner = match encap.mode {
        EncapMode::Transport => {
            let total = hlen + payload.len();
            let mut h = outer[..hlen].to_vec();
            retarget_header(&mut h, v, next_header, total);
            h.extend_from_slice(&payload);
            h
        }
        EncapMode::Tunnel => {
            let expected = if v == IpVersion::V4 { proto::IPV4 } else { proto::IPV6 };
            if next_header != expected {
                return Err(bad("tunnel mode next header is not IP"));
            }
            parse_ip(&payload, v)?;
            payload
        }
    };
    Ok(Decapsulated { spi, seq, next_header, inner })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn tcp_flow() -> Flow {
        Flow {
            src: Ipv4Addr::new(10, 1, 2, 3).into(),
            dst: Ipv4Addr::new(10, 4, 5, 6).into(),
            l4: L4::Tcp { src_port: 49_152, dst_port: 445, seq: 1000, ack: 2000, flags: TcpFlags::ACK },
        }
    }

    #[test]
    fn tcp_ack_is_64_bytes_under_the_campus_suite() {
        let inner = build_inner(&tcp_flow(), 40).unwrap();
        verify_checksums(&inner).unwrap();
        let mut sa = Sa::from_seed(7, Spi(0x1000), Encap::CAMPUS).unwrap();
        let outer = encapsulate(&mut sa, &inner).unwrap();
        assert_eq!(outer.len(), 64);
        assert_eq!(outer[9], proto::ESP);
        assert_eq!(&outer[20..28], &[0, 0, 0x10, 0, 0, 0, 0, 1]); // SPI, seq 1
        assert_eq!(&outer[48..52], &[1, 2, 2, proto::TCP]); // after IP 20 + ESP 8 + TCP 20: padding 1 2, pad length 2, TCP
        verify_checksums(&outer).unwrap();
        let d = decapsulate(&sa, &outer).unwrap();
        assert_eq!((d.seq, d.inner), (1, inner));
        assert_eq!(sa.next_seq(), 2);
    }

    #[test]
    fn hmac_sha1_96_is_real() {
        // The ICV is the first 12 bytes of HMAC-SHA1 over SPI..next header, recomputed here
        // from the public key material.
        let inner = build_inner(&tcp_flow(), 100).unwrap();
        let mut sa = Sa::from_seed(1, Spi(0x2000), Encap::CAMPUS).unwrap();
        let outer = encapsulate(&mut sa, &inner).unwrap();
        let mut m = Hmac::<Sha1>::new_from_slice(&sa.keys().integrity).unwrap();
        m.update(&outer[20..outer.len() - 12]);
        assert_eq!(&m.finalize().into_bytes()[..12], &outer[outer.len() - 12..]);
        assert_eq!(sa.keys().integrity.len(), 20);
    }

    #[test]
    fn flipped_byte_fails() {
        let inner = build_inner(&tcp_flow(), 200).unwrap();
        for suite in Suite::ALL {
            let mut sa = Sa::from_seed(3, Spi(0x3000), Encap { suite, ..Encap::CAMPUS }).unwrap();
            let mut outer = encapsulate(&mut sa, &inner).unwrap();
            assert_eq!(decapsulate(&sa, &outer).unwrap().inner, inner, "{suite}");
            outer[60] ^= 0x01;
            assert_eq!(decapsulate(&sa, &outer), Err(EspError::IcvMismatch), "{suite}");
        }
    }

    #[test]
    fn errors_not_panics() {
        assert_eq!(Sa::from_seed(1, Spi(255), Encap::CAMPUS).unwrap_err(), EspError::ReservedSpi(Spi(255)));
        let ah_nat = Encap { suite: Suite::AhSha1, nat_t: true, ..Encap::CAMPUS };
        assert_eq!(Sa::from_seed(1, Spi(300), ah_nat).unwrap_err(), EspError::AhNatTraversal);
        assert!(matches!(build_inner(&tcp_flow(), 39), Err(EspError::TooShort { .. })));
        let mut sa = Sa::from_seed(1, Spi(300), Encap::CAMPUS).unwrap();
        assert!(encapsulate(&mut sa, &[0x45; 10]).is_err());
        assert!(decapsulate(&sa, &[0x45; 30]).is_err());
    }
}
