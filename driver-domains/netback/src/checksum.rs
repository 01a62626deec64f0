//! Checksum offload for frontends (`NETTXF_csum_blank`): Xen's netif offers it unless the
//! backend writes `feature-no-csum-offload`, and Linux's netfront uses it for every TCP and UDP
//! packet it sends, leaving the transport checksum blank (a partial pseudo-header sum). The
//! backend completes it before the frame leaves, as Xen's netback does. The frame is guest
//! data: parsed with smoltcp's checked wire types, never trusted.
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// Why a frame marked checksum-blank could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumError {
    /// Not an Ethernet frame carrying IPv4 or IPv6.
    NotIp,
    /// The IP header is malformed or truncated.
    BadIpHeader,
    /// Neither TCP nor UDP (only those carry an offloadable checksum), or an IPv4 fragment.
    NotTcpOrUdp,
    /// The TCP/UDP header is truncated.
    BadTransportHeader,
}

/// Computes the TCP or UDP checksum of an Ethernet frame in place.
pub fn fill(frame: &mut [u8]) -> Result<(), ChecksumError> {
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).map_err(|_| ChecksumError::NotIp)?;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let mut ip = Ipv4Packet::new_checked(eth.payload_mut()).map_err(|_| ChecksumError::BadIpHeader)?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Err(ChecksumError::NotTcpOrUdp);
            }
            let (src, dst, proto) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()), ip.next_header());
            fill_transport(proto, ip.payload_mut(), &src, &dst)
        }
        EthernetProtocol::Ipv6 => {
            let mut ip = Ipv6Packet::new_checked(eth.payload_mut()).map_err(|_| ChecksumError::BadIpHeader)?;
            let (src, dst, proto) = (IpAddress::Ipv6(ip.src_addr()), IpAddress::Ipv6(ip.dst_addr()), ip.next_header());
            fill_transport(proto, ip.payload_mut(), &src, &dst)
        }
        _ => Err(ChecksumError::NotIp),
    }
}

fn fill_transport(
    proto: IpProtocol,
    payload: &mut [u8],
    src: &IpAddress,
    dst: &IpAddress,
) -> Result<(), ChecksumError> {
    match proto {
        IpProtocol::Tcp => {
            let mut tcp = TcpPacket::new_checked(payload).map_err(|_| ChecksumError::BadTransportHeader)?;
            tcp.fill_checksum(src, dst);
            Ok(())
        }
        IpProtocol::Udp => {
            let mut udp = UdpPacket::new_checked(payload).map_err(|_| ChecksumError::BadTransportHeader)?;
            udp.fill_checksum(src, dst);
            Ok(())
        }
        _ => Err(ChecksumError::NotTcpOrUdp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber};

    /// An Ethernet/IPv4/TCP frame with a correct checksum, and the same with it blanked.
    fn tcp_frame() -> (alloc::vec::Vec<u8>, alloc::vec::Vec<u8>) {
        let src = Ipv4Address::new(10, 0, 2, 15);
        let dst = Ipv4Address::new(10, 0, 2, 2);
        let payload = b"hello through netback";
        let tcp = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(7),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 1024,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let mut f = alloc::vec![0u8; 14 + ip.buffer_len() + tcp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut ipp, &smoltcp::phy::ChecksumCapabilities::default());
        let mut t = TcpPacket::new_unchecked(ipp.payload_mut());
        tcp.emit(&mut t, &src.into(), &dst.into(), &smoltcp::phy::ChecksumCapabilities::default());
        let good = f.clone();
        let at = 14 + 20 + 16;
        f[at] = 0x12;
        f[at + 1] = 0x34;
        (good, f)
    }

    #[test]
    fn a_blank_tcp_checksum_is_completed() {
        let (good, mut blank) = tcp_frame();
        assert_ne!(good, blank);
        fill(&mut blank).unwrap();
        assert_eq!(good, blank, "the completed checksum is the one a full stack computes");
    }

    #[test]
    fn hostile_frames_are_refused_not_trusted() {
        let (good, _) = tcp_frame();
        for len in 0..good.len() {
            let mut f = good[..len].to_vec();
            let _ = fill(&mut f); // never panics on a truncated frame
        }
        let mut arp = good.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(fill(&mut arp), Err(ChecksumError::NotIp));
        let mut icmp = good.clone();
        icmp[14 + 9] = 1;
        assert_eq!(fill(&mut icmp), Err(ChecksumError::NotTcpOrUdp));
        let mut big_ihl = good.clone();
        big_ihl[14] = 0x4f;
        assert!(fill(&mut big_ihl).is_err());
    }
}
