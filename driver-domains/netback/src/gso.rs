//! TCP segmentation offload for frontends (`feature-gso-tcpv4`, `feature-gso-tcpv6`): a frontend
//! may send one TCP packet of up to 64 KiB (netif's `XEN_NETIF_MAX_TX_SIZE`) with a GSO extra-info
//! slot giving the segment size (the MSS); netback cuts it into frames of at most
//! [`MAX_FRAME`] bytes before they go to the uplink or to another vif (netback offers no GSO on
//! its rx side), as Linux's `tcp_gso_segment` does: the payload split by the MSS; per segment
//! the IPv4 total length, identification (+1 per segment) and header checksum, or the IPv6
//! payload length; the TCP sequence number; FIN and PSH only on the last segment, CWR only on
//! the first; the TCP checksum over each segment.
//!
//! The packet is guest data (already copied into netback's own buffer, so it cannot change
//! under us): [`Segmenter::new`] parses and checks all of it with smoltcp's checked wire types
//! before a single segment is written, and refuses what it cannot cut faithfully: anything but
//! Ethernet + IPv4/IPv6 (no extension headers) + TCP matching the GSO type, IPv4 fragments,
//! SYN/RST/URG, an empty payload, a segment (headers + MSS) larger than [`MAX_FRAME`], or more
//! than [`MAX_SEGMENTS`] segments.
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket};

use crate::switch::ETH_HEADER;
use crate::vif::MAX_FRAME;

/// Segments one packet may be cut into (a 64 KiB packet with an MSS of 536, IPv4's default, is
/// 123): bounds the frames one tx slot group can make netback send.
pub const MAX_SEGMENTS: usize = 128;

/// The GSO type of the extra-info slot (`XEN_NETIF_GSO_TYPE_TCPV4` / `_TCPV6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    TcpV4,
    TcpV6,
}

/// A packet to be segmented: its GSO type and segment size (MSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    pub kind: GsoKind,
    pub mss: u16,
}

/// Why a GSO packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Not Ethernet + IPv4 (TCPV4) or IPv6 (TCPV6).
    NotIp,
    /// Malformed or truncated IP header, an IPv4 fragment, or IPv6 extension headers.
    BadIpHeader,
    /// The IP packet does not carry TCP.
    NotTcp,
    /// Malformed or truncated TCP header.
    BadTcpHeader,
    /// SYN, RST or URG on a packet to segment.
    BadTcpFlags,
    /// No payload to segment.
    Empty,
    /// Headers plus one MSS exceed [`MAX_FRAME`] (or the MSS is 0).
    SegmentTooBig { headers: usize, mss: u16 },
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments(usize),
}

impl core::fmt::Display for GsoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GsoError::NotIp => f.write_str("not IPv4/IPv6 of the GSO type"),
            GsoError::BadIpHeader => f.write_str("bad IP header (or a fragment, or IPv6 extension headers)"),
            GsoError::NotTcp => f.write_str("not TCP"),
            GsoError::BadTcpHeader => f.write_str("bad TCP header"),
            GsoError::BadTcpFlags => f.write_str("SYN, RST or URG set"),
            GsoError::Empty => f.write_str("no payload"),
            GsoError::SegmentTooBig { headers, mss } => {
                write!(f, "{headers} bytes of headers + MSS {mss} exceed {MAX_FRAME}")
            }
            GsoError::TooManySegments(n) => write!(f, "{n} segments (at most {MAX_SEGMENTS})"),
        }
    }
}

/// A checked GSO packet, ready to be cut.
#[derive(Debug)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    kind: GsoKind,
    mss: usize,
    /// Ethernet + IP header bytes (the TCP header starts here).
    ip_end: usize,
    /// All header bytes (the payload starts here).
    headers: usize,
    /// End of the IP packet in `frame` (trailing bytes are ignored).
    end: usize,
    segments: usize,
}

impl<'a> Segmenter<'a> {
    /// Parses and checks `frame` (Ethernet, IP, TCP) for segmentation by `gso`.
    pub fn new(frame: &'a [u8], gso: Gso) -> Result<Self, GsoError> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| GsoError::NotIp)?;
        let (ip_header, ip_total, proto) = match (eth.ethertype(), gso.kind) {
            (EthernetProtocol::Ipv4, GsoKind::TcpV4) => {
                let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| GsoError::BadIpHeader)?;
                if ip.version() != 4 || ip.more_frags() || ip.frag_offset() != 0 {
                    return Err(GsoError::BadIpHeader);
                }
                (usize::from(ip.header_len()), usize::from(ip.total_len()), ip.next_header())
            }
            (EthernetProtocol::Ipv6, GsoKind::TcpV6) => {
                let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| GsoError::BadIpHeader)?;
                if ip.version() != 6 {
                    return Err(GsoError::BadIpHeader);
                }
                let header = ip.header_len();
                (header, header + usize::from(ip.payload_len()), ip.next_header())
            }
            _ => return Err(GsoError::NotIp),
        };
        if proto != IpProtocol::Tcp {
            // IPv6 extension headers land here too: refused rather than walked.
            return Err(if gso.kind == GsoKind::TcpV6 && is_ipv6_extension(proto) {
                GsoError::BadIpHeader
            } else {
                GsoError::NotTcp
            });
        }
        let ip_end = ETH_HEADER + ip_header;
        let end = ETH_HEADER + ip_total;
        let tcp_bytes = frame.get(ip_end..end).ok_or(GsoError::BadIpHeader)?;
        let tcp = TcpPacket::new_checked(tcp_bytes).map_err(|_| GsoError::BadTcpHeader)?;
        if tcp.syn() || tcp.rst() || tcp.urg() {
            return Err(GsoError::BadTcpFlags);
        }
        let headers = ip_end + usize::from(tcp.header_len());
        let payload = end.checked_sub(headers).ok_or(GsoError::BadTcpHeader)?;
        if payload == 0 {
            return Err(GsoError::Empty);
        }
        let mss = usize::from(gso.mss);
        if mss == 0 || headers + mss > MAX_FRAME {
            return Err(GsoError::SegmentTooBig { headers, mss: gso.mss });
        }
        let segments = payload.div_ceil(mss);
        if segments > MAX_SEGMENTS {
            return Err(GsoError::TooManySegments(segments));
        }
        Ok(Self { frame, kind: gso.kind, mss, ip_end, headers, end, segments })
    }

    /// How many frames the packet becomes.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Bytes of headers (Ethernet, IP, TCP) each segment starts with.
    pub fn header_len(&self) -> usize {
        self.headers
    }

    /// Bytes of TCP payload the segments carry between them.
    pub fn payload_len(&self) -> usize {
        self.end - self.headers
    }

    /// Writes segment `i` (< [`Self::segments`]) into `out` (at least [`MAX_FRAME`] bytes);
    /// returns its length (`None` for an `i` out of range or an `out` too small).
    pub fn write(&self, i: usize, out: &mut [u8]) -> Option<usize> {
        if i >= self.segments {
            return None;
        }
        let from = self.headers + i * self.mss;
        let to = (from + self.mss).min(self.end);
        let chunk = self.frame.get(from..to)?;
        let len = self.headers + chunk.len();
        let out = out.get_mut(..len)?;
        out[..self.headers].copy_from_slice(self.frame.get(..self.headers)?);
        out[self.headers..].copy_from_slice(chunk);
        let last = i + 1 == self.segments;
        let (ip, tcp_part) = out[ETH_HEADER..].split_at_mut(self.ip_end - ETH_HEADER);
        let (src, dst) = match self.kind {
            GsoKind::TcpV4 => {
                let mut p = Ipv4Packet::new_unchecked(&mut *ip);
                // Sizes are bounded by MAX_FRAME here, so the u16 conversions are exact.
                p.set_total_len((len - ETH_HEADER) as u16);
                p.set_ident(p.ident().wrapping_add(i as u16));
                p.fill_checksum();
                (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()))
            }
            GsoKind::TcpV6 => {
                let mut p = Ipv6Packet::new_unchecked(&mut *ip);
                p.set_payload_len((len - self.ip_end) as u16);
                (IpAddress::Ipv6(p.src_addr()), IpAddress::Ipv6(p.dst_addr()))
            }
        };
        let mut tcp = TcpPacket::new_unchecked(tcp_part);
        tcp.set_seq_number(tcp.seq_number() + i * self.mss);
        if !last {
            tcp.set_fin(false);
            tcp.set_psh(false);
        }
        if i > 0 {
            tcp.set_cwr(false);
        }
        tcp.fill_checksum(&src, &dst);
        Some(len)
    }
}

/// IPv6 extension headers (RFC 8200 4.1 and the IANA list).
fn is_ipv6_extension(p: IpProtocol) -> bool {
    matches!(
        p,
        IpProtocol::HopByHop
            | IpProtocol::Ipv6Route
            | IpProtocol::Ipv6Frag
            | IpProtocol::Ipv6Opts
            | IpProtocol::IpSecEsp
            | IpProtocol::IpSecAh
    )
}

/// A TCP packet as a frontend's stack builds it for GSO: Ethernet, IPv4 or IPv6, TCP with a
/// timestamp option, `payload_len` bytes of payload, the TCP checksum blank (a frontend leaves
/// it to the backend) and the IPv4 header checksum correct.
#[cfg(test)]
pub(crate) fn test_packet(
    kind: GsoKind,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    payload_len: usize,
) -> alloc::vec::Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, IpRepr, Ipv4Address, Ipv6Address, TcpControl, TcpRepr, TcpSeqNumber,
        TcpTimestampRepr,
    };
    let payload: alloc::vec::Vec<u8> = (0..payload_len).map(|i| (i * 7 + i / 251) as u8).collect();
    let tcp = TcpRepr {
        src_port: 5201,
        dst_port: 40000,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(0x7fff_f000),
        ack_number: Some(TcpSeqNumber(9)),
        window_len: 1024,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: Some(TcpTimestampRepr { tsval: 1, tsecr: 2 }),
        payload: &payload,
    };
    let ip = match kind {
        GsoKind::TcpV4 => IpRepr::new(
            Ipv4Address::new(10, 0, 2, 15).into(),
            Ipv4Address::new(10, 0, 2, 2).into(),
            IpProtocol::Tcp,
            tcp.buffer_len(),
            64,
        ),
        GsoKind::TcpV6 => IpRepr::new(
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 15).into(),
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
            IpProtocol::Tcp,
            tcp.buffer_len(),
            64,
        ),
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: if kind == GsoKind::TcpV4 { EthernetProtocol::Ipv4 } else { EthernetProtocol::Ipv6 },
    };
    let mut f = alloc::vec![0u8; ETH_HEADER + ip.buffer_len()];
    let mut e = EthernetFrame::new_unchecked(&mut f[..]);
    eth.emit(&mut e);
    ip.emit(e.payload_mut(), &ChecksumCapabilities::default());
    let header = ip.header_len();
    let mut t = TcpPacket::new_unchecked(&mut e.payload_mut()[header..]);
    tcp.emit(&mut t, &ip.src_addr(), &ip.dst_addr(), &ChecksumCapabilities::default());
    if let IpRepr::Ipv4(_) = ip {
        let mut p = Ipv4Packet::new_unchecked(e.payload_mut());
        p.set_ident(0x1234);
        p.set_dont_frag(true);
        p.fill_checksum();
    }
    // Blank checksum (a frontend leaves a partial sum; any value must be replaced).
    t = TcpPacket::new_unchecked(&mut f[ETH_HEADER + header..]);
    t.set_checksum(0xbeef);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const A: [u8; 6] = [0x00, 0x16, 0x3e, 0, 5, 0];
    const B: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn cut(frame: &[u8], gso: Gso) -> Result<Vec<Vec<u8>>, GsoError> {
        let s = Segmenter::new(frame, gso)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_FRAME];
        for i in 0..s.segments() {
            let n = s.write(i, &mut buf).expect("in range");
            out.push(buf[..n].to_vec());
        }
        assert_eq!(s.write(s.segments(), &mut buf), None);
        Ok(out)
    }

    /// What a receiver checks of each segment: IP and TCP checksums, lengths, sequence numbers,
    /// flags; and that the payloads put together are the original payload.
    fn check_segments(kind: GsoKind, big: &[u8], segs: &[Vec<u8>], mss: usize) {
        let eth = EthernetFrame::new_checked(big).unwrap();
        let (src, dst, tcp_at) = match kind {
            GsoKind::TcpV4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()), usize::from(ip.header_len()))
            }
            GsoKind::TcpV6 => {
                let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
                (IpAddress::Ipv6(ip.src_addr()), IpAddress::Ipv6(ip.dst_addr()), ip.header_len())
            }
        };
        let tcp = TcpPacket::new_checked(&eth.payload()[tcp_at..]).unwrap();
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(s.len() <= MAX_FRAME);
            let e = EthernetFrame::new_checked(&s[..]).unwrap();
            assert_eq!(&s[..ETH_HEADER], &big[..ETH_HEADER]);
            let ip_payload = match kind {
                GsoKind::TcpV4 => {
                    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
                    assert!(ip.verify_checksum(), "segment {i}: IPv4 header checksum");
                    assert_eq!(usize::from(ip.total_len()), s.len() - ETH_HEADER);
                    assert_eq!(ip.ident(), 0x1234u16.wrapping_add(i as u16));
                    assert!(ip.dont_frag());
                    &e.payload()[usize::from(ip.header_len())..]
                }
                GsoKind::TcpV6 => {
                    let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
                    assert_eq!(usize::from(ip.payload_len()), s.len() - ETH_HEADER - 40);
                    &e.payload()[40..]
                }
            };
            let t = TcpPacket::new_checked(ip_payload).unwrap();
            assert!(t.verify_checksum(&src, &dst), "segment {i}: TCP checksum");
            assert_eq!(t.seq_number(), tcp.seq_number() + i * mss);
            assert_eq!(t.ack_number(), tcp.ack_number());
            assert_eq!(t.options(), tcp.options());
            let last = i + 1 == segs.len();
            assert_eq!(t.psh(), last && tcp.psh(), "segment {i}: PSH only on the last");
            assert_eq!(t.fin(), last && tcp.fin(), "segment {i}: FIN only on the last");
            assert_eq!(t.cwr(), i == 0 && tcp.cwr(), "segment {i}: CWR only on the first");
            if !last {
                assert_eq!(t.payload().len(), mss);
            }
            payload.extend_from_slice(t.payload());
        }
        assert_eq!(payload, tcp.payload());
    }

    #[test]
    fn a_gso_packet_becomes_mss_sized_segments_with_their_own_headers() {
        for kind in [GsoKind::TcpV4, GsoKind::TcpV6] {
            for (len, mss) in [(5000, 1448), (1448, 1448), (1449, 1448), (65000, 1448), (100, 7), (64000, 536)] {
                // IPv6's header is 20 bytes longer: so is its MSS shorter.
                let mss = if kind == GsoKind::TcpV6 && mss == 1448 { 1428 } else { mss };
                let mut big = test_packet(kind, A, B, len);
                let ip_header = if kind == GsoKind::TcpV4 { 20 } else { 40 };
                // FIN and CWR on the big packet too: only the last keeps FIN, only the first CWR.
                let mut t = TcpPacket::new_unchecked(&mut big[ETH_HEADER + ip_header..]);
                t.set_fin(true);
                t.set_cwr(true);
                let Ok(segs) = cut(&big, Gso { kind, mss }) else {
                    panic!("{kind:?} {len}/{mss}: {:?}", Segmenter::new(&big, Gso { kind, mss }).unwrap_err())
                };
                assert_eq!(segs.len(), len.div_ceil(usize::from(mss)), "{kind:?} {len}/{mss}");
                check_segments(kind, &big, &segs, usize::from(mss));
            }
        }
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut big = test_packet(GsoKind::TcpV4, A, B, 4000);
        TcpPacket::new_unchecked(&mut big[34..]).set_seq_number(smoltcp::wire::TcpSeqNumber(-1000));
        let segs = cut(&big, Gso { kind: GsoKind::TcpV4, mss: 1000 }).unwrap();
        check_segments(GsoKind::TcpV4, &big, &segs, 1000);
    }

    /// Everything a hostile frontend can put in a GSO packet is refused before any segment is
    /// written (and nothing panics on a truncated or garbled packet).
    #[test]
    fn hostile_gso_packets_are_refused() {
        let v4 = Gso { kind: GsoKind::TcpV4, mss: 1448 };
        let good = test_packet(GsoKind::TcpV4, A, B, 4000);
        assert!(Segmenter::new(&good, v4).is_ok());
        let refused = |f: &[u8], g: Gso| Segmenter::new(f, g).unwrap_err();
        // The wrong GSO type for the IP version, and not IP at all.
        assert_eq!(refused(&good, Gso { kind: GsoKind::TcpV6, ..v4 }), GsoError::NotIp);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(refused(&arp, v4), GsoError::NotIp);
        // IP version, fragments, total length beyond the frame, header length beyond it.
        let mut m = good.clone();
        m[14] = 0x65;
        assert_eq!(refused(&m, v4), GsoError::BadIpHeader);
        let mut m = good.clone();
        m[14 + 6] |= 0x20; // more fragments
        assert_eq!(refused(&m, v4), GsoError::BadIpHeader);
        let mut m = good.clone();
        m[14 + 7] = 1; // fragment offset
        assert_eq!(refused(&m, v4), GsoError::BadIpHeader);
        let mut m = good.clone();
        let total = (good.len() - 14 + 1) as u16;
        m[16..18].copy_from_slice(&total.to_be_bytes());
        assert_eq!(refused(&m, v4), GsoError::BadIpHeader);
        let mut m = good.clone();
        m[14] = 0x4f;
        m[16..18].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(refused(&m, v4), GsoError::BadTcpHeader);
        // Not TCP.
        let mut m = good.clone();
        m[14 + 9] = 17;
        assert_eq!(refused(&m, v4), GsoError::NotTcp);
        // TCP data offset past the packet, SYN, RST, URG.
        let mut m = good.clone();
        m[34 + 12] = 0xf0;
        m[16..18].copy_from_slice(&(20u16 + 40).to_be_bytes());
        assert_eq!(refused(&m, v4), GsoError::BadTcpHeader);
        for bit in [0x02, 0x04, 0x20] {
            let mut m = good.clone();
            m[34 + 13] |= bit;
            assert_eq!(refused(&m, v4), GsoError::BadTcpFlags, "flag {bit:#x}");
        }
        // No payload.
        let empty = test_packet(GsoKind::TcpV4, A, B, 0);
        assert_eq!(refused(&empty, v4), GsoError::Empty);
        // An MSS of 0, or one that makes a segment larger than a frame.
        assert!(matches!(refused(&good, Gso { mss: 0, ..v4 }), GsoError::SegmentTooBig { .. }));
        assert!(matches!(refused(&good, Gso { mss: 1449, ..v4 }), GsoError::SegmentTooBig { headers: 66, .. }));
        assert!(Segmenter::new(&good, Gso { mss: 1448, ..v4 }).is_ok());
        // Too many segments: a 64 KiB packet cut by a tiny MSS would flood the uplink.
        let big = test_packet(GsoKind::TcpV4, A, B, 65000);
        assert_eq!(refused(&big, Gso { mss: 500, ..v4 }), GsoError::TooManySegments(130));
        assert!(Segmenter::new(&big, Gso { mss: 508, ..v4 }).is_ok());
        // IPv6 with an extension header.
        let v6 = Gso { kind: GsoKind::TcpV6, mss: 1428 };
        let mut m = test_packet(GsoKind::TcpV6, A, B, 3000);
        assert!(Segmenter::new(&m, v6).is_ok());
        m[14 + 6] = 0; // hop-by-hop
        assert_eq!(refused(&m, v6), GsoError::BadIpHeader);
        // Truncations anywhere never panic, and trailing bytes past the IP packet are ignored.
        for len in 0..good.len() {
            let _ = Segmenter::new(&good[..len], v4);
        }
        let mut long = good.clone();
        long.extend_from_slice(&[0xee; 100]);
        let segs = cut(&long, v4).unwrap();
        check_segments(GsoKind::TcpV4, &good, &segs, 1448);
    }

    #[test]
    fn write_refuses_a_small_buffer() {
        let good = test_packet(GsoKind::TcpV4, A, B, 4000);
        let s = Segmenter::new(&good, Gso { kind: GsoKind::TcpV4, mss: 1448 }).unwrap();
        assert_eq!(s.write(0, &mut [0u8; 100]), None);
    }
}
