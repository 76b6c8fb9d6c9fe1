//! Whose listening sockets these are. rumqttd binds inside its own thread and reports a
//! failed bind only in its log, so the engine asks the kernel: a `NETLINK_SOCK_DIAG`
//! dump of the listening TCP sockets gives each one's inode, and the descriptors in
//! `/proc/self/fd` name the inodes of this process's sockets. (`/proc/net/tcp` says the
//! same, but it lists every socket of the namespace, `TIME_WAIT` ones included: thousands
//! of lines, milliseconds of kernel time per read, on a machine that runs many tests.)

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustix::net::netlink;
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// The addresses among `addrs` whose listening socket is not this process's (or that
/// nothing listens on).
pub fn not_ours(addrs: &[SocketAddr]) -> io::Result<Vec<SocketAddr>> {
    let ours = own_socket_inodes()?;
    let mut listening = Vec::new();
    for family in [AddressFamily::INET, AddressFamily::INET6] {
        if addrs.iter().any(|addr| family_of(addr) == family) {
            listening.extend(listening_sockets(family)?);
        }
    }
    Ok(addrs
        .iter()
        .filter(|addr| {
            !listening
                .iter()
                .any(|(bound, inode)| bound == *addr && ours.contains(inode))
        })
        .copied()
        .collect())
}

fn family_of(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

/// The inodes of the sockets this process holds descriptors of.
fn own_socket_inodes() -> io::Result<HashSet<u32>> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect())
}

// From <linux/netlink.h>, <linux/sock_diag.h>, <linux/inet_diag.h>, <netinet/tcp.h>.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const IPPROTO_TCP: u8 = 6;
const NLMSG_HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, states, then a zeroed
/// `struct inet_diag_sockid` (48 bytes), which a dump ignores.
const REQUEST_LEN: usize = 8 + 48;
/// `struct inet_diag_msg` up to and including `idiag_inode`.
const MESSAGE_LEN: usize = 72;
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every listening TCP socket of `family` in this network namespace: address and inode.
fn listening_sockets(family: AddressFamily) -> io::Result<Vec<(SocketAddr, u32)>> {
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    sockopt::set_socket_timeout(&socket, Timeout::Recv, Some(RECEIVE_TIMEOUT))?;
    let mut request = Vec::with_capacity(NLMSG_HEADER_LEN + REQUEST_LEN);
    request.extend(((NLMSG_HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    request.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend([0u8; 8]); // sequence number and port id: the kernel's to fill
    request.extend([family.as_raw() as u8, IPPROTO_TCP, 0, 0]);
    request.extend((1u32 << TCP_LISTEN).to_ne_bytes());
    request.extend([0u8; 48]);
    rustix::net::send(&socket, &request, SendFlags::empty())?;

    let mut sockets = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let (received, _) = rustix::net::recv(&socket, &mut buffer[..], RecvFlags::empty())?;
        let mut rest = &buffer[..received];
        while rest.len() >= NLMSG_HEADER_LEN {
            let length = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
            if length < NLMSG_HEADER_LEN || length > rest.len() {
                return Err(io::Error::other("a truncated sock_diag message"));
            }
            match kind {
                NLMSG_DONE => return Ok(sockets),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(rest[16..20].try_into().unwrap());
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ => sockets.extend(listener(&rest[NLMSG_HEADER_LEN..length])),
            }
            // Messages are aligned to four bytes.
            rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        }
    }
}

/// The bound address and inode of one `struct inet_diag_msg`.
fn listener(message: &[u8]) -> Option<(SocketAddr, u32)> {
    if message.len() < MESSAGE_LEN {
        return None;
    }
    let port = u16::from_be_bytes(message[4..6].try_into().unwrap());
    let source: [u8; 16] = message[8..24].try_into().unwrap();
    let ip = match message[0] {
        family if u16::from(family) == AddressFamily::INET.as_raw() => {
            IpAddr::from(<[u8; 4]>::try_from(&source[..4]).unwrap())
        }
        _ => IpAddr::from(source),
    };
    let inode = u32::from_ne_bytes(message[68..72].try_into().unwrap());
    Some((SocketAddr::new(ip, port), inode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    #[test]
    fn a_listener_is_told_from_another_processs() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let held6 = TcpListener::bind("[::1]:0").unwrap();
        let ours = [held.local_addr().unwrap(), held6.local_addr().unwrap()];
        assert_eq!(not_ours(&ours).unwrap(), Vec::<SocketAddr>::new());
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(not_ours(&[closed]).unwrap(), [closed], "nothing listens");

        let mut theirs = Command::new("python3")
            .args([
                "-c",
                "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
                 print(s.getsockname()[1], flush=True); sys.stdin.read()",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut port = String::new();
        std::io::BufReader::new(theirs.stdout.take().expect("piped"))
            .read_line(&mut port)
            .unwrap();
        let port: u16 = port.trim().parse().expect("a port number");
        let python = SocketAddr::from(([127, 0, 0, 1], port));
        let answer = not_ours(&[python, ours[0]]);
        drop(theirs.stdin.take());
        theirs.wait().unwrap();
        assert_eq!(
            answer.unwrap(),
            vec![python],
            "python's listener is not ours"
        );
    }
}
