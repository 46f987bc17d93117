//! One test through a real tap, made in a fresh network namespace on a
//! dedicated thread (root only; skipped loudly where `unshare` or
//! `/dev/net/tun` is unusable). A packet socket on the tap plays the host.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use vm_memory::GuestMemoryMmap;

use super::harness::*;
use crate::mmio::MmioTransport;
use crate::net::header::{NetHeader, NET_HDR_LEN};
use crate::net::tap::{Tap, TapError};
use crate::net::Net;
use crate::testing::*;

const TAP_NAME: &str = "vmrtap0";
const RX_BUFFERS: u16 = 8;

#[test]
fn tap_names_are_checked_before_any_syscall() {
    for bad in ["", "a-name-far-too-long", "a/b", "a b", "nul\0"] {
        assert!(
            matches!(Tap::open(bad), Err(TapError::Name { .. })),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn a_real_tap_carries_frames_both_ways() {
    let outcome = std::thread::spawn(tap_round_trip).join().unwrap();
    if let Err(why) = outcome {
        eprintln!("SKIPPED a_real_tap_carries_frames_both_ways: {why}");
    }
}

/// The whole test, on a thread of its own; `Err` = cannot run here.
fn tap_round_trip() -> Result<(), String> {
    // SAFETY: unshare on this thread only; no memory is passed.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            io::Error::last_os_error()
        ));
    }
    let tap = match Tap::open(TAP_NAME) {
        Ok(tap) => tap,
        Err(e @ (TapError::Open(_) | TapError::SetIff { .. })) => {
            return Err(format!("/dev/net/tun unusable: {e:?}"));
        }
        Err(e) => panic!("cannot prepare the tap: {e:?}"),
    };
    assert_eq!(tap.name(), TAP_NAME);
    let ifindex = bring_up_link(TAP_NAME);
    let host = packet_socket(ifindex);

    let mem = memory();
    let net = Net::new(tap.into(), GUEST_MAC, 1500).unwrap();
    let mut t = MmioTransport::new(mem.clone(), Box::new(net)).unwrap();
    let rings = bring_up(&mut t, FEATURES, 16);
    let (rx, tx) = (rings[0], rings[1]);

    // TX: a broadcast frame from the guest reaches the host stack.
    let mut out = vec![0xff; 6];
    out.extend_from_slice(&GUEST_MAC);
    out.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    out.extend_from_slice(b"from the guest");
    post_tx(&mem, &tx, 0, NetHeader::default(), &out);
    mmio_write(&mut t, 0x50, 1);
    assert_eq!(recv_frame(&host), out);

    // RX: a frame the host sends on the tap lands in an RX buffer. The
    // kernel may send frames of its own (IPv6 multicast) first: skip those.
    for head in 0..RX_BUFFERS {
        post_rx(&mem, &rx, head, 2048);
    }
    mmio_write(&mut t, 0x50, 0);
    let to_guest = frame(b"from the host");
    send_frame(&host, ifindex, &to_guest);
    let (len, hdr, got) = wait_for_frame(&t, &mem, &rx, &to_guest);
    assert_eq!(len as usize, NET_HDR_LEN + to_guest.len());
    assert_eq!(hdr, NetHeader::plain_rx());
    assert_eq!(got, to_guest);
    mmio_write(&mut t, 0x70, 0);
    Ok(())
}

/// Waits until an RX buffer holds `want`; returns its used length,
/// header and frame.
fn wait_for_frame(
    t: &MmioTransport,
    mem: &GuestMemoryMmap,
    rx: &Rings,
    want: &[u8],
) -> (u32, NetHeader, Vec<u8>) {
    let irq = t.irq_evt().try_clone().unwrap();
    let mut seen = 0u16;
    loop {
        while rx.used_idx(mem) == seen {
            assert!(wait_evt(&irq), "no interrupt from the net worker");
        }
        while seen < rx.used_idx(mem) {
            let (head, len) = rx.used_elem(mem, seen);
            seen += 1;
            let (hdr, got) = rx_contents(mem, head as u16, len);
            if got == want {
                return (len, hdr, got);
            }
        }
        assert!(seen < RX_BUFFERS, "the frame never arrived");
    }
}

/// Sets `name` up in this thread's namespace; returns its index.
fn bring_up_link(name: &str) -> libc::c_int {
    // SAFETY: a plain socket call; the fd is checked and then owned.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(sock >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `sock` is a fresh fd owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX / SIOCGIFFLAGS / SIOCSIFFLAGS read and write the
    // ifreq, which outlives each call.
    unsafe {
        assert_eq!(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut req),
            0
        );
        let index = req.ifr_ifru.ifru_ifindex;
        assert_eq!(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req),
            0
        );
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let rc = libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req);
        assert_eq!(rc, 0, "SIOCSIFFLAGS: {}", io::Error::last_os_error());
        index
    }
}

/// A packet socket on interface `ifindex` receiving [`TEST_ETHERTYPE`] only.
fn packet_socket(ifindex: libc::c_int) -> OwnedFd {
    let proto = TEST_ETHERTYPE.to_be();
    // SAFETY: a plain socket call; the fd is checked and then owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto),
        )
    };
    assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is fresh and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = link_addr(ifindex, &[0; 6]);
    // SAFETY: `addr` is a valid sockaddr_ll of the given size for the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "bind: {}", io::Error::last_os_error());
    fd
}

fn link_addr(ifindex: libc::c_int, mac: &[u8; 6]) -> libc::sockaddr_ll {
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = TEST_ETHERTYPE.to_be();
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(mac);
    addr
}

/// Sends a whole Ethernet frame out of the tap (towards the guest).
fn send_frame(sock: &OwnedFd, ifindex: libc::c_int, frame: &[u8]) {
    let addr = link_addr(ifindex, &GUEST_MAC);
    // SAFETY: `frame` and `addr` are valid for the call.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    assert_eq!(
        n,
        frame.len() as isize,
        "sendto: {}",
        io::Error::last_os_error()
    );
}

/// The next frame the packet socket receives (bounded wait).
fn recv_frame(sock: &OwnedFd) -> Vec<u8> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 20_000) };
    assert_eq!(n, 1, "no frame from the tap");
    let mut buf = vec![0u8; 2048];
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    buf.truncate(usize::try_from(n).expect("recv failed"));
    buf
}
