//! libpcap capture files of IP packets, written and read with the `pcap-file` crate, for
//! Wireshark/tshark: each packet goes out as an Ethernet II frame (link type ETHERNET).
//!
//! Contracts:
//! - Deterministic bytes: little-endian file, nanosecond timestamps (magic `0xa1b23c4d`),
//!   snaplen 262144, no capture-time metadata. The same packets give the same file.
//! - MAC addresses derive from the IP addresses (locally administered, unicast): IPv4
//!   `02:00:a:b:c:d`; IPv6 `06:` then the last five address bytes. The EtherType follows the
//!   IP version nibble (0x0800 / 0x86dd); anything else is `InvalidInput`.
//! - `time_ns` counts nanoseconds since the Unix epoch as the file shows it; a simulation
//!   passes `SimTime` plus whatever epoch it wants displayed. Seconds must fit 32 bits.
//! - [`write_pcap`] writes a temporary sibling (`NAME.tmp`) and renames it into place, so a
//!   reader sees the old file or the whole new one.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// One captured IP packet and its timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapPacket {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The whole IP packet (IPv4 or IPv6), no link-layer header.
    pub ip_packet: Vec<u8>,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER: usize = 14;
const SNAPLEN: u32 = 262_144;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn pcap_err(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => invalid_data(other.to_string()),
    }
}

/// The MAC address standing for an IPv4 host: `02:00` + the address.
pub fn mac_for_ipv4(a: Ipv4Addr) -> [u8; 6] {
    let o = a.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// The MAC address standing for an IPv6 host: `06` + the last five address bytes.
pub fn mac_for_ipv6(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x06, o[11], o[12], o[13], o[14], o[15]]
}

/// The Ethernet II frame carrying one IP packet.
pub fn ethernet_frame(ip_packet: &[u8]) -> io::Result<Vec<u8>> {
    let (src, dst, ethertype) = match ip_packet.first().map(|b| b >> 4) {
        Some(4) if ip_packet.len() >= 20 => {
            let s: [u8; 4] = ip_packet[12..16].try_into().expect("4 bytes");
            let d: [u8; 4] = ip_packet[16..20].try_into().expect("4 bytes");
            (mac_for_ipv4(s.into()), mac_for_ipv4(d.into()), ETHERTYPE_IPV4)
        }
        Some(6) if ip_packet.len() >= 40 => {
            let s: [u8; 16] = ip_packet[8..24].try_into().expect("16 bytes");
            let d: [u8; 16] = ip_packet[24..40].try_into().expect("16 bytes");
            (mac_for_ipv6(s.into()), mac_for_ipv6(d.into()), ETHERTYPE_IPV6)
        }
        _ => return Err(invalid("not an IPv4 or IPv6 packet")),
    };
    let mut f = Vec::with_capacity(ETHERNET_HEADER + ip_packet.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip_packet);
    Ok(f)
}

fn header() -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    }
}

/// The bytes of a pcap file holding `packets`, in the given order.
pub fn pcap_bytes(packets: &[PcapPacket]) -> io::Result<Vec<u8>> {
    let mut w = PcapWriter::with_header(Vec::new(), header()).map_err(pcap_err)?;
    for (i, p) in packets.iter().enumerate() {
        let frame = ethernet_frame(&p.ip_packet).map_err(|e| invalid(format!("packet {i}: {e}")))?;
        let len = u32::try_from(frame.len()).ok().filter(|&l| l <= SNAPLEN);
        let len = len.ok_or_else(|| invalid(format!("packet {i}: {} bytes exceed the snaplen", frame.len())))?;
        if p.time_ns / 1_000_000_000 > u64::from(u32::MAX) {
            return Err(invalid(format!("packet {i}: timestamp beyond 32-bit seconds")));
        }
        let ts = Duration::from_nanos(p.time_ns);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, len, &frame)).map_err(pcap_err)?;
    }
    Ok(w.into_writer())
}

/// Writes `packets` to a libpcap file at `path`, atomically (temporary sibling + rename).
pub fn write_pcap(path: &Path, packets: &[PcapPacket]) -> io::Result<()> {
    let bytes = pcap_bytes(packets)?;
    let name = path.file_name().ok_or_else(|| invalid(format!("{}: not a file path", path.display())))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a libpcap file of Ethernet frames back into IP packets and timestamps.
pub fn read_pcap(path: &Path) -> io::Result<Vec<PcapPacket>> {
    let file = std::fs::File::open(path)?;
    let mut r = PcapReader::new(io::BufReader::new(file)).map_err(pcap_err)?;
    if r.header().datalink != DataLink::ETHERNET {
        return Err(invalid_data(format!("{}: link type is not Ethernet", path.display())));
    }
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(pcap_err)?;
        if p.data.len() < ETHERNET_HEADER || p.data.len() != p.orig_len as usize {
            return Err(invalid_data(format!("frame {}: truncated", out.len() + 1)));
        }
        let ethertype = u16::from_be_bytes([p.data[12], p.data[13]]);
        if ethertype != ETHERTYPE_IPV4 && ethertype != ETHERTYPE_IPV6 {
            return Err(invalid_data(format!("frame {}: EtherType {ethertype:#06x} is not IP", out.len() + 1)));
        }
        let time_ns = p.timestamp.as_secs() * 1_000_000_000 + u64::from(p.timestamp.subsec_nanos());
        out.push(PcapPacket { time_ns, ip_packet: p.data[ETHERNET_HEADER..].to_vec() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_packet() -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[3] = 20;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p
    }

    #[test]
    fn frame_header() {
        let f = ethernet_frame(&v4_packet()).unwrap();
        assert_eq!(&f[..14], &[2, 0, 10, 0, 0, 2, 2, 0, 10, 0, 0, 1, 0x08, 0x00]);
        assert!(ethernet_frame(&[0x55; 40]).is_err());
    }

    #[test]
    fn file_header_is_nanosecond_little_endian() {
        let b = pcap_bytes(&[PcapPacket { time_ns: 1_500_000_001, ip_packet: v4_packet() }]).unwrap();
        assert_eq!(&b[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&b[20..24], &1u32.to_le_bytes()); // link type Ethernet
        assert_eq!(&b[24..32], &[1, 0, 0, 0, 0x01, 0x65, 0xcd, 0x1d]); // 1 s, 500000001 ns
        assert_eq!(b.len(), 24 + 16 + 14 + 20);
        let late = PcapPacket { time_ns: (u64::from(u32::MAX) + 1) * 1_000_000_000, ip_packet: v4_packet() };
        assert!(pcap_bytes(&[late]).is_err());
    }
}
