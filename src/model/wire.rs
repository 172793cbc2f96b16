//! Byte-exact IPsec encapsulation sizes, as pure arithmetic [DOMAIN 4]: ESP [RFC 4303] with
//! the campus suites, AH [RFC 4302], transport and tunnel mode, NAT-T [RFC 3948], IPv4 and
//! IPv6, and what happens above the MTU (IP fragmentation, or path-MTU discovery).
//!
//! Units and conventions:
//! - Every length is in bytes and counts whole IP packets (IP header included) unless the
//!   name says otherwise; no link-layer framing is counted.
//! - The inner packet has a plain IP header (IPv4 20 bytes, IPv6 40 bytes: no options and no
//!   extension headers) and the same IP version as the outer packet.
//! - Transport mode protects the inner packet minus its IP header and keeps the original
//!   header as the outer one; tunnel mode protects the whole inner packet and adds a new
//!   outer header.
//! - ESP: `8 (SPI + sequence) + IV + payload + pad + 2 (pad length, next header) + ICV`,
//!   `pad = (-(payload + 2)) mod B`, `B = max(4, cipher block)`: the padding is the least
//!   that aligns the encrypted part (payload, pad, trailer) to `B` [RFC 4303 2.4].
//! - AH: a 12-byte header plus the ICV, rounded up to 32 bits on IPv4 and 64 bits on IPv6
//!   [RFC 4302 2.2]. With HMAC-SHA1-96 that is 12 + 12 = 24 bytes, already a multiple of 8,
//!   so AH adds 24 bytes on both versions (no IPv6 padding).
//! - NAT-T adds an 8-byte UDP header (port 4500) in front of ESP; AH authenticates the IP
//!   addresses and cannot traverse NAT, so AH with NAT-T is [`WireError::AhNatTraversal`].
//!
//! Contracts: nothing here allocates except [`fragment_lens`], [`report`] and
//! [`render_text`]; nothing panics on any input (errors are values). [`encapsulated_len`] is
//! on the per-packet hot path: a table lookup, four comparisons and a handful of adds (about
//! 4 ns a call on the development machine).
//! The byte builder in `model::esp` is an independent implementation of the same layout,
//! and the tests hold the two to the same lengths.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

/// Errors of the size arithmetic. All are caller input problems; none is a panic.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("inner IP packet of {len} bytes is shorter than its {min}-byte IP header")]
    InnerTooShort { len: u32, min: u32 },
    #[error("inner IP packet of {len} bytes exceeds the {max}-byte IP maximum")]
    InnerTooLong { len: u32, max: u32 },
    #[error("encapsulated packet of {len} bytes exceeds the {max}-byte IP maximum")]
    EncapsulatedTooLong { len: u32, max: u32 },
    #[error("AH cannot traverse NAT: NAT-T applies to ESP only (RFC 3948)")]
    AhNatTraversal,
    #[error("MTU {mtu} is outside {min}..={max}")]
    MtuOutOfRange { mtu: u32, min: u32, max: u32 },
    #[error("MTU {mtu} is too small for any {what} packet")]
    MtuTooSmall { mtu: u32, what: String },
    #[error("unknown suite `{0}` (expected one of: {names})", names = Suite::NAMES.join(", "))]
    UnknownSuite(String),
    #[error("unknown mode `{0}` (expected transport or tunnel)")]
    UnknownMode(String),
    #[error("unknown IP version `{0}` (expected ipv4 or ipv6)")]
    UnknownIpVersion(String),
}

/// An IPsec protection suite (protocol + transforms). The names are stable (CLI, scenarios).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Suite {
    /// ESP, NULL encryption [RFC 2410], HMAC-SHA1-96 [RFC 2404]: the campus default.
    #[default]
    #[serde(rename = "esp-null-sha1")]
    EspNullSha1,
    /// ESP, NULL encryption, HMAC-SHA-256-128 [RFC 4868].
    #[serde(rename = "esp-null-sha256")]
    EspNullSha256,
    /// ESP, AES-GMAC-128 (authentication only, 8-byte IV, 16-byte ICV) [RFC 4543].
    #[serde(rename = "esp-null-gmac128")]
    EspNullGmac128,
    /// ESP, AES-GCM-128 (8-byte IV, 16-byte ICV) [RFC 4106].
    #[serde(rename = "esp-aes128gcm")]
    EspAes128Gcm,
    /// ESP, AES-CBC-128 (16-byte IV, 16-byte block) [RFC 3602] with HMAC-SHA1-96.
    #[serde(rename = "esp-aes128cbc-sha1")]
    EspAes128CbcSha1,
    /// AH with HMAC-SHA1-96 [RFC 4302, RFC 2404].
    #[serde(rename = "ah-sha1")]
    AhSha1,
}

/// Per-suite constants. For AH, `block_mask` is 0 (no padding) and the AH length sits in
/// `ah_len` by IP version; for ESP, `ah_len` is 0.
#[derive(Copy, Clone)]
struct Params {
    /// SPI + sequence number: 8 for ESP, 0 for AH (inside `ah_len`).
    esp_header: u32,
    iv: u32,
    /// `B - 1` where `B = max(4, cipher block)`; a power of two minus one.
    block_mask: u32,
    /// Pad length + next header: 2 for ESP, 0 for AH.
    trailer: u32,
    /// ESP ICV (AH's ICV is counted in `ah_len`).
    icv: u32,
    /// Whole AH (header + ICV + alignment) for [IPv4, IPv6]; 0 for ESP.
    ah_len: [u32; 2],
}

/// AH length: 12-byte header + ICV, rounded up to `align` bytes.
const fn ah_len(icv: u32, align: u32) -> u32 {
    (12 + icv).div_ceil(align) * align
}

const fn esp(iv: u32, block: u32, icv: u32) -> Params {
    let b = if block > 4 { block } else { 4 };
    Params { esp_header: 8, iv, block_mask: b - 1, trailer: 2, icv, ah_len: [0, 0] }
}

/// Indexed by `Suite as usize`.
const PARAMS: [Params; 6] = [
    esp(0, 4, 12),   // esp-null-sha1
    esp(0, 4, 16),   // esp-null-sha256
    esp(8, 4, 16),   // esp-null-gmac128
    esp(8, 4, 16),   // esp-aes128gcm
    esp(16, 16, 12), // esp-aes128cbc-sha1
    Params { esp_header: 0, iv: 0, block_mask: 0, trailer: 0, icv: 0, ah_len: [ah_len(12, 4), ah_len(12, 8)] },
];

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::EspNullSha1,
        Suite::EspNullSha256,
        Suite::EspNullGmac128,
        Suite::EspAes128Gcm,
        Suite::EspAes128CbcSha1,
        Suite::AhSha1,
    ];
    pub const NAMES: [&'static str; 6] =
        ["esp-null-sha1", "esp-null-sha256", "esp-null-gmac128", "esp-aes128gcm", "esp-aes128cbc-sha1", "ah-sha1"];

    /// The stable name (`esp-null-sha1`, ...).
    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    const fn params(self) -> &'static Params {
        &PARAMS[self as usize]
    }

    /// ESP (protocol 50) rather than AH (protocol 51).
    pub const fn is_esp(self) -> bool {
        !matches!(self, Suite::AhSha1)
    }

    /// Does the suite encrypt the payload (confidentiality), rather than only authenticate?
    pub const fn encrypts(self) -> bool {
        matches!(self, Suite::EspAes128Gcm | Suite::EspAes128CbcSha1)
    }

    /// Explicit IV carried in each ESP packet (0 for AH).
    pub const fn iv_len(self) -> u32 {
        self.params().iv
    }

    /// ESP alignment `B = max(4, cipher block)` (1 for AH, which has no padding).
    pub const fn block_len(self) -> u32 {
        self.params().block_mask + 1
    }

    /// Integrity check value length (the truncated MAC or the AEAD tag), both ESP and AH.
    pub const fn icv_len(self) -> u32 {
        match self {
            Suite::AhSha1 => 12,
            _ => self.params().icv,
        }
    }

    /// The whole AH (header, ICV, alignment) for an IP version; 0 for ESP suites.
    pub const fn ah_len(self, ip: IpVersion) -> u32 {
        self.params().ah_len[ip as usize]
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| WireError::UnknownSuite(s.to_string()))
    }
}

/// IPsec mode [RFC 4301 4.1].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncapMode {
    /// Host to host: the original IP header stays in front.
    #[default]
    Transport,
    /// The whole inner packet is protected behind a new outer IP header.
    Tunnel,
}

impl EncapMode {
    pub const ALL: [EncapMode; 2] = [EncapMode::Transport, EncapMode::Tunnel];
    pub const fn name(self) -> &'static str {
        match self {
            EncapMode::Transport => "transport",
            EncapMode::Tunnel => "tunnel",
        }
    }
}

impl fmt::Display for EncapMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncapMode {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EncapMode::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| WireError::UnknownMode(s.to_string()))
    }
}

/// IP version of the (inner and outer) packets.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum IpVersion {
    #[default]
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl IpVersion {
    pub const ALL: [IpVersion; 2] = [IpVersion::V4, IpVersion::V6];

    /// `ipv4` / `ipv6`.
    pub const fn name(self) -> &'static str {
        match self {
            IpVersion::V4 => "ipv4",
            IpVersion::V6 => "ipv6",
        }
    }

    /// The fixed IP header: 20 (IPv4 without options) or 40 (IPv6 base header).
    pub const fn header_len(self) -> u32 {
        [20, 40][self as usize]
    }

    /// Per-fragment header bytes: the IPv4 header (20), or the IPv6 base header plus the
    /// 8-byte Fragment extension header (48) [RFC 791, RFC 8200 4.5].
    pub const fn fragment_header_len(self) -> u32 {
        [20, 48][self as usize]
    }

    /// The largest IP packet without jumbograms: IPv4 total length 65535; IPv6 payload
    /// length 65535 plus the 40-byte base header.
    pub const fn max_packet_len(self) -> u32 {
        [65_535, 65_575][self as usize]
    }
}

impl fmt::Display for IpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        })
    }
}

impl FromStr for IpVersion {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" | "v4" | "4" => Ok(IpVersion::V4),
            "ipv6" | "v6" | "6" => Ok(IpVersion::V6),
            _ => Err(WireError::UnknownIpVersion(s.to_string())),
        }
    }
}

/// How packets are encapsulated: the suite, the mode, the IP version, NAT traversal.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Encap {
    pub suite: Suite,
    pub mode: EncapMode,
    pub ip: IpVersion,
    /// UDP encapsulation on port 4500 [RFC 3948]; ESP only.
    pub nat_t: bool,
}

impl Encap {
    /// The campus default: ESP-NULL + HMAC-SHA1-96, transport mode, IPv4, no NAT.
    pub const CAMPUS: Encap =
        Encap { suite: Suite::EspNullSha1, mode: EncapMode::Transport, ip: IpVersion::V4, nat_t: false };

    /// Every combination of suite, mode, IP version and NAT-T (including the invalid AH
    /// with NAT-T), in a fixed order.
    pub fn all() -> impl Iterator<Item = Encap> {
        Suite::ALL.into_iter().flat_map(|suite| {
            EncapMode::ALL.into_iter().flat_map(move |mode| {
                IpVersion::ALL
                    .into_iter()
                    .flat_map(move |ip| [false, true].into_iter().map(move |nat_t| Encap { suite, mode, ip, nat_t }))
            })
        })
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.suite, self.mode, self.ip)?;
        if self.nat_t {
            f.write_str(" NAT-T")?;
        }
        Ok(())
    }
}

/// A link MTU in bytes: the largest IP packet the link carries unfragmented.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Mtu(u32);

impl Mtu {
    /// The smallest MTU every IPv4 host must accept [RFC 791]; it also leaves room for an
    /// IPv6 fragment (48-byte headers + 8). IPv6 links have at least 1280 [RFC 8200], which
    /// is not enforced here.
    pub const MIN: u32 = 68;
    pub const MAX: u32 = 65_535;
    /// Ethernet II.
    pub const ETHERNET: Mtu = Mtu(1500);

    pub const fn new(bytes: u32) -> Result<Mtu, WireError> {
        if bytes < Self::MIN || bytes > Self::MAX {
            return Err(WireError::MtuOutOfRange { mtu: bytes, min: Self::MIN, max: Self::MAX });
        }
        Ok(Mtu(bytes))
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Mtu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the bytes of one encapsulated packet go, front to back. ESP fields are 0 under AH
/// and `ah` is 0 under ESP; `total()` is the whole outer IP packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// The outer IP header: the original one (transport) or a new one (tunnel).
    pub ip_header: u32,
    /// NAT-T UDP header (8) or 0.
    pub udp_header: u32,
    /// AH header + ICV + alignment (AH suites).
    pub ah: u32,
    /// ESP SPI + sequence number (8).
    pub esp_header: u32,
    pub iv: u32,
    /// What is protected: the inner packet minus its IP header (transport) or the whole
    /// inner packet (tunnel).
    pub payload: u32,
    pub padding: u32,
    /// ESP pad length + next header (2).
    pub esp_trailer: u32,
    /// ESP ICV.
    pub icv: u32,
}

impl Layout {
    /// The whole outer IP packet.
    #[inline]
    pub const fn total(&self) -> u32 {
        self.ip_header
            + self.udp_header
            + self.ah
            + self.esp_header
            + self.iv
            + self.payload
            + self.padding
            + self.esp_trailer
            + self.icv
    }

    /// The ESP part that `B` aligns: payload + padding + trailer (0 under AH).
    pub const fn esp_aligned_part(&self) -> u32 {
        if self.esp_header == 0 { 0 } else { self.payload + self.padding + self.esp_trailer }
    }
}

/// The byte layout of one inner packet under `encap`.
#[inline]
pub fn layout(encap: &Encap, inner_ip_len: u32) -> Result<Layout, WireError> {
    let p = encap.suite.params();
    let hdr = encap.ip.header_len();
    let max = encap.ip.max_packet_len();
    if inner_ip_len < hdr {
        return Err(WireError::InnerTooShort { len: inner_ip_len, min: hdr });
    }
    if inner_ip_len > max {
        return Err(WireError::InnerTooLong { len: inner_ip_len, max });
    }
    if encap.nat_t && p.esp_header == 0 {
        return Err(WireError::AhNatTraversal);
    }
    let transport = (encap.mode == EncapMode::Transport) as u32;
    let payload = inner_ip_len - hdr * transport;
    let l = Layout {
        ip_header: hdr,
        udp_header: 8 * encap.nat_t as u32,
        ah: p.ah_len[encap.ip as usize],
        esp_header: p.esp_header,
        iv: p.iv,
        payload,
        padding: 0u32.wrapping_sub(payload + p.trailer) & p.block_mask,
        esp_trailer: p.trailer,
        icv: p.icv,
    };
    let total = l.total();
    if total > max {
        return Err(WireError::EncapsulatedTooLong { len: total, max });
    }
    Ok(l)
}

/// The whole outer IP packet length for an inner IP packet of `inner_ip_len` bytes.
#[inline]
pub fn encapsulated_len(encap: &Encap, inner_ip_len: u32) -> Result<u32, WireError> {
    layout(encap, inner_ip_len).map(|l| l.total())
}

/// The IP fragments (their whole lengths, headers included) that one packet of
/// `packet_len` bytes becomes on a link of `mtu`: `[packet_len]` when it fits. Every fragment
/// carries its own IP header (IPv6: base header + Fragment header), every fragment payload
/// but the last is a multiple of 8, and the payloads add up to the packet's payload
/// (`packet_len - ip.header_len()`). A `packet_len` below the IP header size is returned
/// unchanged (it always fits).
pub fn fragment_lens(ip: IpVersion, packet_len: u32, mtu: Mtu) -> Vec<u32> {
    let mtu = mtu.get();
    if packet_len <= mtu {
        return vec![packet_len];
    }
    let frag_hdr = ip.fragment_header_len();
    let chunk = (mtu - frag_hdr) & !7; // >= 16 since MTU >= 68
    let payload = packet_len - ip.header_len();
    let full = payload / chunk;
    let rest = payload % chunk;
    let mut out = Vec::with_capacity(full as usize + 1);
    out.extend(std::iter::repeat_n(frag_hdr + chunk, full as usize));
    if rest > 0 {
        out.push(frag_hdr + rest);
    }
    out
}

/// Path-MTU discovery: the largest inner IP packet whose encapsulation fits `mtu`.
pub fn max_inner_len(encap: &Encap, mtu: Mtu) -> Result<u32, WireError> {
    let p = encap.suite.params();
    if encap.nat_t && p.esp_header == 0 {
        return Err(WireError::AhNatTraversal);
    }
    let hdr = encap.ip.header_len();
    let too_small = || WireError::MtuTooSmall { mtu: mtu.get(), what: encap.to_string() };
    let fixed = hdr + 8 * encap.nat_t as u32 + p.ah_len[encap.ip as usize] + p.esp_header + p.iv + p.icv;
    // payload + padding + trailer must fit the rest, and is a multiple of B.
    let aligned = mtu.get().checked_sub(fixed).ok_or_else(too_small)? & !p.block_mask;
    let payload = aligned.checked_sub(p.trailer).ok_or_else(too_small)?;
    let inner = match encap.mode {
        EncapMode::Transport => payload + hdr,
        EncapMode::Tunnel => payload,
    };
    if inner < hdr {
        return Err(too_small());
    }
    Ok(inner)
}

/// TCP header without options, for the MSS.
const TCP_HEADER: u32 = 20;

/// Everything about one packet size under one encapsulation and MTU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WireReport {
    pub suite: Suite,
    pub mode: EncapMode,
    pub ip: IpVersion,
    pub nat_t: bool,
    /// The inner (clear) IP packet.
    pub inner_len: u32,
    /// The encapsulated IP packet.
    pub wire_len: u32,
    pub overhead_bytes: u32,
    /// `overhead_bytes / inner_len * 100`.
    pub overhead_pct: f64,
    pub layout: Layout,
    pub mtu: Mtu,
    pub fits_mtu: bool,
    /// The encapsulated packet as IP fragments at the MTU (`[wire_len]` when it fits).
    pub fragments: Vec<u32>,
    /// Sum of the fragments: what fragmentation puts on the wire.
    pub fragmented_wire_len: u32,
    /// The largest inner packet that fits the MTU once encapsulated (PMTU discovery);
    /// `None` when none does.
    pub pmtu_inner_len: Option<u32>,
    /// The TCP MSS matching `pmtu_inner_len` (inner IP header and a 20-byte TCP header off).
    pub pmtu_tcp_mss: Option<u32>,
}

/// The [`WireReport`] of one inner packet.
pub fn report(encap: &Encap, inner_ip_len: u32, mtu: Mtu) -> Result<WireReport, WireError> {
    let layout = layout(encap, inner_ip_len)?;
    let wire_len = layout.total();
    let fragments = fragment_lens(encap.ip, wire_len, mtu);
    let pmtu_inner_len = max_inner_len(encap, mtu).ok();
    let overhead_bytes = wire_len - inner_ip_len;
    Ok(WireReport {
        suite: encap.suite,
        mode: encap.mode,
        ip: encap.ip,
        nat_t: encap.nat_t,
        inner_len: inner_ip_len,
        wire_len,
        overhead_bytes,
        overhead_pct: 100.0 * f64::from(overhead_bytes) / f64::from(inner_ip_len),
        layout,
        mtu,
        fits_mtu: wire_len <= mtu.get(),
        fragmented_wire_len: fragments.iter().sum(),
        fragments,
        pmtu_inner_len,
        pmtu_tcp_mss: pmtu_inner_len.and_then(|l| l.checked_sub(encap.ip.header_len() + TCP_HEADER)),
    })
}

/// A short human-readable table of a [`WireReport`].
pub fn render_text(r: &WireReport) -> String {
    use std::fmt::Write as _;
    let l = &r.layout;
    let mut s = String::new();
    let nat = if r.nat_t { ", NAT-T" } else { "" };
    let _ = writeln!(s, "suite         {} ({}, {}{})", r.suite, r.mode, r.ip, nat);
    let _ = writeln!(s, "inner packet  {} bytes", r.inner_len);
    let _ = writeln!(s, "on the wire   {} bytes (+{} bytes, +{:.2}%)", r.wire_len, r.overhead_bytes, r.overhead_pct);
    let mut parts = vec![format!("IP {}", l.ip_header)];
    if l.udp_header > 0 {
        parts.push(format!("UDP {}", l.udp_header));
    }
    if l.ah > 0 {
        parts.push(format!("AH {}", l.ah));
    }
    if l.esp_header > 0 {
        parts.push(format!("ESP {}", l.esp_header));
        if l.iv > 0 {
            parts.push(format!("IV {}", l.iv));
        }
    }
    parts.push(format!("payload {}", l.payload));
    if l.esp_header > 0 {
        parts.push(format!("pad {}", l.padding));
        parts.push(format!("trailer {}", l.esp_trailer));
        parts.push(format!("ICV {}", l.icv));
    }
    let _ = writeln!(s, "layout        {}", parts.join(" + "));
    if r.fits_mtu {
        let _ = writeln!(s, "MTU {:<9} fits", r.mtu);
    } else {
        let frags: Vec<String> = r.fragments.iter().map(u32::to_string).collect();
        let _ = writeln!(
            s,
            "MTU {:<9} does not fit: {} fragments {} ({} bytes on the wire)",
            r.mtu,
            r.fragments.len(),
            frags.join(" + "),
            r.fragmented_wire_len
        );
    }
    match (r.pmtu_inner_len, r.pmtu_tcp_mss) {
        (Some(len), Some(mss)) => {
            let _ = writeln!(s, "PMTU          largest inner packet {len} bytes (TCP MSS {mss})");
        }
        (Some(len), None) => {
            let _ = writeln!(s, "PMTU          largest inner packet {len} bytes");
        }
        (None, _) => {
            let _ = writeln!(s, "PMTU          no inner packet fits");
        }
    }
    s
}

/// One packet size of a traffic mix, with its relative frequency.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MixEntry {
    pub weight: u32,
    pub ip_len: u32,
}

/// The classic simple IMIX: 7 x 40, 4 x 576, 1 x 1500 bytes.
pub const IMIX_7_4_1: [MixEntry; 3] =
    [MixEntry { weight: 7, ip_len: 40 }, MixEntry { weight: 4, ip_len: 576 }, MixEntry { weight: 1, ip_len: 1500 }];

/// Byte totals of a traffic mix, clear and encapsulated.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct MixOverhead {
    pub clear_bytes: u64,
    pub wire_bytes: u64,
    /// Byte-weighted: `(wire - clear) / clear * 100`.
    pub overhead_pct: f64,
}

/// The byte-weighted overhead of a packet-size mix (no fragmentation counted).
pub fn mix_overhead(encap: &Encap, mix: &[MixEntry]) -> Result<MixOverhead, WireError> {
    let (mut clear, mut wire) = (0u64, 0u64);
    for e in mix {
        clear += u64::from(e.weight) * u64::from(e.ip_len);
        wire += u64::from(e.weight) * u64::from(encapsulated_len(encap, e.ip_len)?);
    }
    let pct = if clear == 0 { 0.0 } else { 100.0 * (wire - clear) as f64 / clear as f64 };
    Ok(MixOverhead { clear_bytes: clear, wire_bytes: wire, overhead_pct: pct })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(suite: Suite) -> Encap {
        Encap { suite, ..Encap::CAMPUS }
    }

    #[test]
    fn domain_worked_examples() {
        // 40-byte TCP ACK: payload 20, pad (-(20 + 2)) mod 4 = 2: 20 + 8 + 20 + 2 + 2 + 12 = 64.
        assert_eq!(encapsulated_len(&Encap::CAMPUS, 40), Ok(64));
        assert_eq!(encapsulated_len(&Encap::CAMPUS, 576), Ok(600));
        assert_eq!(encapsulated_len(&Encap::CAMPUS, 1500), Ok(1524));
        assert_eq!(max_inner_len(&Encap::CAMPUS, Mtu::ETHERNET), Ok(1478));
        let m = mix_overhead(&Encap::CAMPUS, &IMIX_7_4_1).unwrap();
        assert_eq!((m.clear_bytes, m.wire_bytes), (4084, 4372));
        assert_eq!(format!("{:.2}", m.overhead_pct), "7.05");
    }

    #[test]
    fn ah_is_24_bytes_on_both_versions() {
        assert_eq!(Suite::AhSha1.ah_len(IpVersion::V4), 24);
        assert_eq!(Suite::AhSha1.ah_len(IpVersion::V6), 24);
        assert_eq!(ah_len(16, 8), 32); // a 16-byte ICV would need 4 bytes of IPv6 alignment
        assert_eq!(ah_len(16, 4), 28);
    }

    #[test]
    fn names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(s.name().parse::<Suite>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("esp-null".parse::<Suite>().is_err());
        assert_eq!(Suite::default(), Suite::EspNullSha1);
        assert_eq!("tunnel".parse::<EncapMode>(), Ok(EncapMode::Tunnel));
        assert_eq!("ipv6".parse::<IpVersion>(), Ok(IpVersion::V6));
    }

    #[test]
    fn errors_are_values() {
        let ah_nat = Encap { suite: Suite::AhSha1, nat_t: true, ..Encap::CAMPUS };
        assert_eq!(encapsulated_len(&ah_nat, 100), Err(WireError::AhNatTraversal));
        assert_eq!(max_inner_len(&ah_nat, Mtu::ETHERNET), Err(WireError::AhNatTraversal));
        assert_eq!(encapsulated_len(&Encap::CAMPUS, 19), Err(WireError::InnerTooShort { len: 19, min: 20 }));
        assert!(matches!(encapsulated_len(&Encap::CAMPUS, 65_535), Err(WireError::EncapsulatedTooLong { .. })));
        assert!(matches!(encapsulated_len(&Encap::CAMPUS, 70_000), Err(WireError::InnerTooLong { .. })));
        assert!(Mtu::new(67).is_err() && Mtu::new(65_536).is_err());
        let v6 = Encap { suite: Suite::EspAes128CbcSha1, mode: EncapMode::Tunnel, ip: IpVersion::V6, nat_t: true };
        assert!(matches!(max_inner_len(&v6, Mtu::new(100).unwrap()), Err(WireError::MtuTooSmall { .. })));
    }

    #[test]
    fn cbc_pads_to_16() {
        // 1500 -> payload 1480, (1480 + 2) mod 16 = 10 -> pad 6; 20 + 8 + 16 + 1488 + 12 = 1544.
        let l = layout(&v4(Suite::EspAes128CbcSha1), 1500).unwrap();
        assert_eq!((l.padding, l.total()), (6, 1544));
    }

    #[test]
    fn fragments_at_ethernet() {
        // 1524 at 1500: payload 1504 = 1480 + 24.
        assert_eq!(fragment_lens(IpVersion::V4, 1524, Mtu::ETHERNET), vec![1500, 44]);
        // IPv6: 1544 -> payload 1504, chunk (1500 - 48) & !7 = 1448: 1496 + (48 + 56).
        assert_eq!(fragment_lens(IpVersion::V6, 1544, Mtu::ETHERNET), vec![1496, 104]);
        assert_eq!(fragment_lens(IpVersion::V4, 1500, Mtu::ETHERNET), vec![1500]);
    }

    #[test]
    fn report_renders() {
        let r = report(&Encap::CAMPUS, 1500, Mtu::ETHERNET).unwrap();
        assert_eq!(r.fragments, vec![1500, 44]);
        assert_eq!(r.pmtu_tcp_mss, Some(1438));
        let t = render_text(&r);
        assert!(t.contains("1524 bytes (+24 bytes, +1.60%)"), "{t}");
        assert!(t.contains("IP 20 + ESP 8 + payload 1480 + pad 2 + trailer 2 + ICV 12"), "{t}");
        assert!(t.contains("2 fragments 1500 + 44 (1544 bytes on the wire)"), "{t}");
        assert!(t.contains("largest inner packet 1478 bytes (TCP MSS 1438)"), "{t}");
    }
}
