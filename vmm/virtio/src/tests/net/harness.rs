//! A fake guest network driver (rings and buffers in guest memory) and the
//! host end of a socket pair standing in for the tap.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use virtio_bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::net::backend::FrameFd;
use crate::net::header::{NetHeader, NET_HDR_LEN};
use crate::testing::*;

/// The features a Linux guest accepts from the device (VERSION_1 aside).
pub const FEATURES: u64 =
    (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_MTU) | (1 << VIRTIO_NET_F_STATUS);
/// The guest's MAC address in these tests.
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Where RX buffers live (see [`rx_buf`]).
pub const RX_BUFS: u64 = 0x10_0000;
/// Where TX buffers live.
pub const TX_BUFS: u64 = 0x18_0000;
/// An ethertype for local experiments (IEEE 802 "local experimental 1").
pub const TEST_ETHERTYPE: u16 = 0x88b5;

/// Address of RX buffer `i`; buffers are 4 KiB apart.
pub fn rx_buf(i: u16) -> u64 {
    RX_BUFS + 0x1000 * u64::from(i)
}

/// A SOCK_SEQPACKET pair: the device's end (for [`FrameFd`] / `Net`) and
/// the host's end (blocking).
pub fn seqpacket_pair() -> (OwnedFd, File) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into `fds`, valid for the call.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// A backend over a fresh socket pair, with the host's end.
pub fn backend() -> (FrameFd, File) {
    let (dev, host) = seqpacket_pair();
    (FrameFd::new(dev).unwrap(), host)
}

/// An Ethernet frame to the guest from a host MAC with `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = GUEST_MAC.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Sends `hdr` + `frame` from the host end as one message.
pub fn host_send(host: &mut File, hdr: NetHeader, frame: &[u8]) {
    let mut msg = hdr.to_bytes().to_vec();
    msg.extend_from_slice(frame);
    host_send_raw(host, &msg);
}

/// Sends `msg` from the host end as one message, as it is.
pub fn host_send_raw(host: &mut File, msg: &[u8]) {
    assert_eq!(host.write(msg).unwrap(), msg.len());
}

/// The next message on the host end if one is there now.
pub fn host_try_recv(host: &File) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 70_000];
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe {
        libc::recv(
            host.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The next message on the host end, waiting for it (up to a generous
/// bound, only so a broken device cannot hang the suite).
pub fn host_recv(host: &File) -> Vec<u8> {
    let mut pfd = libc::pollfd {
        fd: host.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 20_000) };
    assert_eq!(n, 1, "no frame from the device");
    host_try_recv(host).expect("readable but empty")
}

/// Writes a one-descriptor RX chain `head` over RX buffer `head` of `len` bytes.
pub fn post_rx(mem: &GuestMemoryMmap, r: &Rings, head: u16, len: u32) {
    r.desc(mem, head, rx_buf(head), len, F_WRITE, 0);
    r.push(mem, head);
}

/// Writes a TX chain `head`: the header in one descriptor, `frame` split
/// in two (descriptors `head`, `head + 1`, `head + 2`).
pub fn post_tx(mem: &GuestMemoryMmap, r: &Rings, head: u16, hdr: NetHeader, frame: &[u8]) {
    let base = TX_BUFS + 0x1_0000 * u64::from(head / 3);
    mem.write_slice(&hdr.to_bytes(), GuestAddress(base))
        .unwrap();
    let split = frame.len() / 2;
    let data = base + 0x100;
    mem.write_slice(frame, GuestAddress(data)).unwrap();
    r.desc(mem, head, base, NET_HDR_LEN as u32, F_NEXT, head + 1);
    r.desc(mem, head + 1, data, split as u32, F_NEXT, head + 2);
    let rest = (frame.len() - split) as u32;
    r.desc(mem, head + 2, data + split as u64, rest, 0, 0);
    r.push(mem, head);
}

/// What the device wrote into RX buffer `head`: the header and `len - 12`
/// frame bytes.
pub fn rx_contents(mem: &GuestMemoryMmap, head: u16, len: u32) -> (NetHeader, Vec<u8>) {
    let mut raw = vec![0u8; len as usize];
    mem.read_slice(&mut raw, GuestAddress(rx_buf(head)))
        .unwrap();
    let hdr = NetHeader::from_bytes(raw[..NET_HDR_LEN].try_into().unwrap());
    (hdr, raw[NET_HDR_LEN..].to_vec())
}
