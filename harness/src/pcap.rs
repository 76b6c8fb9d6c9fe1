//! Writes what the tap forwards as a pcap file of Ethernet/IPv4/TCP frames, so that
//! Wireshark and `tshark -Y mqtt` decode every packet, with the right client per stream.
//!
//! Each tapped connection becomes one TCP stream from the client's own port to port 1883
//! (where dissectors look for MQTT), with a handshake, sequence and acknowledgement
//! numbers that follow the bytes, and a FIN at the end. CONNECT passwords are blanked
//! before they reach the file.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

use crate::trace::Direction;

/// The broker's port in the file, whatever port the run used.
pub const BROKER_PORT: u16 = 1883;
const BROKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Largest TCP payload per frame: an IPv4 packet is at most 65535 bytes.
const MAX_SEGMENT: usize = 65_000;
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A pcap file being written. Every method is safe to call from many connections.
pub struct Capture {
    started: SystemTime,
    clock: std::time::Instant,
    state: Mutex<State>,
}

struct State {
    /// Unbuffered: every frame reaches the OS as it is written.
    writer: PcapWriter<File>,
    streams: HashMap<u64, Stream>,
    ip_id: u16,
    /// The first write error; later writes are skipped and `finish` reports it.
    error: Option<String>,
}

/// One connection's TCP state as the file tells it.
struct Stream {
    client: (Ipv4Addr, u16),
    /// Next sequence number of each side.
    client_seq: u32,
    broker_seq: u32,
}

impl Capture {
    pub fn create(path: &Path) -> io::Result<Capture> {
        let file = File::create(path)?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(file, header).map_err(io::Error::other)?;
        Ok(Capture {
            started: SystemTime::now(),
            clock: std::time::Instant::now(),
            state: Mutex::new(State {
                writer,
                streams: HashMap::new(),
                ip_id: 0,
                error: None,
            }),
        })
    }

    /// A client connected: the three-way handshake.
    pub fn opened(&self, conn: u64, peer: SocketAddr) {
        let client = (ipv4_of(peer.ip()), peer.port());
        // Initial sequence numbers differ per stream, as real ones do.
        let isn = (conn as u32).wrapping_mul(0x9e37_79b9);
        let mut stream = Stream {
            client,
            client_seq: isn,
            broker_seq: isn ^ 0x5555_5555,
        };
        let mut state = self.lock();
        let now = self.now();
        state.segment(now, &stream, Direction::ToBroker, SYN, &[]);
        stream.client_seq = stream.client_seq.wrapping_add(1);
        state.segment(now, &stream, Direction::ToClient, SYN | ACK, &[]);
        stream.broker_seq = stream.broker_seq.wrapping_add(1);
        state.segment(now, &stream, Direction::ToBroker, ACK, &[]);
        state.streams.insert(conn, stream);
    }

    /// Bytes that crossed the tap.
    pub fn data(&self, conn: u64, dir: Direction, bytes: &[u8]) {
        let mut state = self.lock();
        let now = self.now();
        let Some(mut stream) = state.streams.remove(&conn) else {
            return;
        };
        for chunk in bytes.chunks(MAX_SEGMENT) {
            state.segment(now, &stream, dir, PSH | ACK, chunk);
            let len = chunk.len() as u32;
            match dir {
                Direction::ToBroker => stream.client_seq = stream.client_seq.wrapping_add(len),
                Direction::ToClient => stream.broker_seq = stream.broker_seq.wrapping_add(len),
            }
        }
        state.streams.insert(conn, stream);
    }

    /// The connection ended: FIN from both sides.
    pub fn closed(&self, conn: u64) {
        let mut state = self.lock();
        let now = self.now();
        let Some(mut stream) = state.streams.remove(&conn) else {
            return;
        };
        state.segment(now, &stream, Direction::ToBroker, FIN | ACK, &[]);
        stream.client_seq = stream.client_seq.wrapping_add(1);
        state.segment(now, &stream, Direction::ToClient, FIN | ACK, &[]);
        stream.broker_seq = stream.broker_seq.wrapping_add(1);
        state.segment(now, &stream, Direction::ToBroker, ACK, &[]);
    }

    /// Reports the first write error, if any.
    pub fn finish(&self) -> Result<(), String> {
        self.lock().error.clone().map_or(Ok(()), Err)
    }

    fn now(&self) -> Duration {
        let since_epoch = self.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        since_epoch + self.clock.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Writes one frame straight to the file, so a capture interrupted mid-run stays readable.
    fn segment(
        &mut self,
        at: Duration,
        stream: &Stream,
        dir: Direction,
        flags: u8,
        payload: &[u8],
    ) {
        if self.error.is_some() {
            return;
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        let broker = (BROKER_IP, BROKER_PORT);
        let (from, to, seq, ack) = match dir {
            Direction::ToBroker => (stream.client, broker, stream.client_seq, stream.broker_seq),
            Direction::ToClient => (broker, stream.client, stream.broker_seq, stream.client_seq),
        };
        // The very first SYN acknowledges nothing.
        let ack = if flags == SYN { 0 } else { ack };
        let frame = frame(from, to, seq, ack, flags, self.ip_id, payload);
        let packet = PcapPacket::new(at, frame.len() as u32, &frame);
        if let Err(error) = self.writer.write_packet(&packet) {
            self.error = Some(error.to_string());
        }
    }
}

fn ipv4_of(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(ip) => ip,
        // A pcap of IPv4 frames: loopback ::1 becomes 127.0.0.1, other v6 a mapped v4.
        IpAddr::V6(ip) if ip.is_loopback() => Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::LOCALHOST),
    }
}

/// Ethernet + IPv4 + TCP headers around `payload`.
fn frame(
    from: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    ip_id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(54 + payload.len());
    // Ethernet: locally administered MACs, one per side.
    let (src_mac, dst_mac) = if from.1 == BROKER_PORT {
        ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    } else {
        ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
    };
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4
    let total = (20 + 20 + payload.len()) as u16;
    let ip_start = out.len();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    out.extend_from_slice(&[64, 6, 0, 0]); // TTL, TCP, checksum placeholder
    out.extend_from_slice(&from.0.octets());
    out.extend_from_slice(&to.0.octets());
    let ip_checksum = checksum(&[&out[ip_start..ip_start + 20]]);
    out[ip_start + 10..ip_start + 12].copy_from_slice(&ip_checksum.to_be_bytes());
    // TCP
    let tcp_start = out.len();
    out.extend_from_slice(&from.1.to_be_bytes());
    out.extend_from_slice(&to.1.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.extend_from_slice(&[5 << 4, flags]);
    out.extend_from_slice(&65_535u16.to_be_bytes()); // window
    out.extend_from_slice(&[0, 0, 0, 0]); // checksum placeholder, urgent pointer
    out.extend_from_slice(payload);
    let tcp_len = (20 + payload.len()) as u16;
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&from.0.octets());
    pseudo.extend_from_slice(&to.0.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&tcp_len.to_be_bytes());
    let tcp_checksum = checksum(&[&pseudo, &out[tcp_start..]]);
    out[tcp_start + 16..tcp_start + 18].copy_from_slice(&tcp_checksum.to_be_bytes());
    out
}

/// The Internet checksum (RFC 1071) over several byte runs taken as one.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut pending: Option<u8> = None;
    for byte in parts.iter().flat_map(|part| part.iter().copied()) {
        match pending.take() {
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
            None => pending = Some(byte),
        }
    }
    if let Some(high) = pending {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let frame = frame(
            (Ipv4Addr::LOCALHOST, 40000),
            (BROKER_IP, BROKER_PORT),
            1,
            2,
            PSH | ACK,
            7,
            b"hello",
        );
        let ip = &frame[14..34];
        assert_eq!(
            checksum(&[ip]),
            0,
            "a header with its checksum sums to zero"
        );
        let tcp = &frame[34..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        assert_eq!(checksum(&[&pseudo, tcp]), 0);
    }

    #[test]
    fn sequence_numbers_follow_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let capture = Capture::create(&path).unwrap();
        capture.opened(1, "127.0.0.1:40000".parse().unwrap());
        capture.data(1, Direction::ToBroker, b"abc");
        capture.data(1, Direction::ToBroker, b"de");
        capture.closed(1);
        capture.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        let mut seqs = Vec::new();
        while let Some(packet) = reader.next_packet() {
            let packet = packet.unwrap();
            let tcp = &packet.data[34..];
            if u16::from_be_bytes([tcp[0], tcp[1]]) == 40000 && tcp[13] & PSH != 0 {
                seqs.push(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]));
            }
        }
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[1], seqs[0] + 3);
    }
}
