//! virtio-net throughput through a real tap: 100 MB of 1500-byte-MTU
//! Ethernet frames per iteration, guest → tap (TX) and tap → guest (RX),
//! through the device's queue code (`Transmitter`/`Receiver`, what its
//! worker runs) and the device's tap setup (`Tap::open`, `FrameFd`)
//! (`cargo bench -p vmrun-virtio --bench net_throughput`; root).
//!
//! The tap lives in a network namespace of its own, made on a helper
//! thread (`unshare(CLONE_NEWNET)`), up and without an address: the host
//! stack drops what the guest sends (an experimental ethertype to a MAC
//! nobody has), and a packet socket on the tap plays the host for RX. The
//! namespace and the tap go away with their last fd, at the end of the
//! run. Without root or `/dev/net/tun` the bench prints SKIPPED and
//! measures nothing.
// criterion_group!/criterion_main! expand to undocumented items.
#![allow(missing_docs)]

mod common;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::{memory, Ring, F_WRITE, QUEUE_SIZE};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmrun_virtio::net::backend::FrameFd;
use vmrun_virtio::net::header::{NetHeader, ETH_HLEN, NET_HDR_LEN, VLAN_HLEN};
use vmrun_virtio::net::rx::{Receiver, RxStop};
use vmrun_virtio::net::tap::{Tap, TapError};
use vmrun_virtio::net::tx::Transmitter;
use vmrun_virtio::net::NetStats;

const TAP_NAME: &str = "vmrbench0";
const MTU: usize = 1500;
/// One full frame: Ethernet header and an MTU of payload.
const FRAME: usize = ETH_HLEN + MTU;
/// Bytes moved per iteration (whole frames, at least 100 MB).
const TOTAL: u64 = 100_000_000;
/// Frames per iteration.
const FRAMES: u64 = TOTAL.div_ceil(FRAME as u64);
/// One buffer per frame, virtio header included; slots are 2 KiB apart.
const SLOT: u64 = 0x800;
const RX_BUFS: u64 = 0x10_0000;
const TX_BUFS: u64 = 0x20_0000;
/// How long RX waits for a frame the host sent before counting it lost.
const RX_WAIT_MS: i32 = 200;
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// IEEE 802 "local experimental 1": nothing in the host stack takes it.
const ETHERTYPE: u16 = 0x88b5;

/// The tap and the host's packet socket on it, in their own namespace.
struct Link {
    tap: Tap,
    host: OwnedFd,
    ifindex: libc::c_int,
}

/// Makes the namespace, tap and socket on a thread of its own (the
/// bench's threads stay in the host's namespace). `Err`: cannot run here.
fn link() -> Result<Link, String> {
    std::thread::spawn(|| {
        // SAFETY: unshare on this thread only; no memory is passed.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET) needs root: {}",
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
        let ifindex = bring_up(tap.name())?;
        let host = packet_socket(ifindex)?;
        Ok(Link { tap, host, ifindex })
    })
    .join()
    .expect("the namespace thread panicked")
}

/// An AF_INET datagram socket for interface ioctls.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket call; the fd is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets `name` up (no address); returns its index.
fn bring_up(name: &str) -> Result<libc::c_int, String> {
    let sock = ioctl_socket().map_err(|e| format!("socket: {e}"))?;
    // SAFETY: an all-zero ifreq is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let ioctl = |op, req: &mut libc::ifreq, what: &str| {
        // SAFETY: SIOCGIFINDEX / SIOCGIFFLAGS / SIOCSIFFLAGS read and write
        // one ifreq, which outlives the call.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), op, req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(format!("{what}: {}", io::Error::last_os_error()));
        }
        Ok(())
    };
    ioctl(libc::SIOCGIFINDEX, &mut req, "SIOCGIFINDEX")?;
    // SAFETY: SIOCGIFINDEX filled the index member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    ioctl(libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS")?;
    Ok(index)
}

/// A send-only packet socket bound to interface `ifindex` (protocol 0:
/// it receives nothing).
fn packet_socket(ifindex: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: a plain socket call; the fd is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("packet socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: `fd` is fresh and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr = link_addr(ifindex);
    addr.sll_protocol = 0;
    // SAFETY: `addr` is a valid sockaddr_ll of the given size for the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("bind: {}", io::Error::last_os_error()));
    }
    Ok(fd)
}

/// The tap's link-layer address towards the guest.
fn link_addr(ifindex: libc::c_int) -> libc::sockaddr_ll {
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETHERTYPE.to_be();
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&GUEST_MAC);
    addr
}

/// A full-size frame from `src` to `dst`.
fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.resize(FRAME, 0x5a);
    f
}

/// The fake guest driver and the device's queue code over one tap.
struct Driver {
    mem: GuestMemoryMmap,
    rx: Ring,
    tx: Ring,
    rxq: Queue,
    txq: Queue,
    rx_seen: u16,
    backend: FrameFd,
    stats: NetStats,
    receiver: Receiver,
    transmitter: Transmitter,
    host: OwnedFd,
    host_addr: libc::sockaddr_ll,
    to_guest: Vec<u8>,
    /// RX frames the host sent that never arrived.
    rx_lost: u64,
}

impl Driver {
    fn new(link: Link) -> Self {
        let mem = memory();
        let (rx, tx) = (Ring::new(0), Ring::new(1));
        // Every TX slot holds the same frame behind a plain header; each
        // descriptor points at its slot for good.
        let mut out = NetHeader::default().to_bytes().to_vec();
        out.extend_from_slice(&frame(HOST_MAC, GUEST_MAC));
        for i in 0..QUEUE_SIZE {
            let at = TX_BUFS + SLOT * u64::from(i);
            mem.write_slice(&out, GuestAddress(at)).expect("TX frame");
            tx.desc(&mem, i, at, out.len() as u32, 0, 0);
            rx.desc(
                &mem,
                i,
                RX_BUFS + SLOT * u64::from(i),
                SLOT as u32,
                F_WRITE,
                0,
            );
            rx.push(&mem, i);
        }
        Self {
            rxq: rx.queue(),
            txq: tx.queue(),
            mem,
            rx,
            tx,
            rx_seen: 0,
            backend: FrameFd::new(link.tap.into()).expect("the device takes the tap"),
            stats: NetStats::default(),
            receiver: Receiver::default(),
            transmitter: Transmitter::new(MTU + ETH_HLEN + VLAN_HLEN),
            host: link.host,
            host_addr: link_addr(link.ifindex),
            to_guest: frame(GUEST_MAC, HOST_MAC),
            rx_lost: 0,
        }
    }

    /// Guest → tap: [`FRAMES`] frames, a queue's worth per pass.
    fn transmit_all(&mut self) {
        let mut left = FRAMES;
        while left > 0 {
            let n = left.min(u64::from(QUEUE_SIZE)) as u16;
            for i in 0..n {
                self.tx.push(&self.mem, i);
            }
            let done = self
                .transmitter
                .process(&self.mem, &mut self.txq, &self.backend, &self.stats)
                .expect("TX queue");
            assert_eq!(done, usize::from(n), "the device gave back every chain");
            left -= u64::from(n);
        }
    }

    /// Tap → guest: the host sends a queue's worth, the device fills the
    /// RX buffers, the guest reposts them; until [`FRAMES`] frames arrived.
    fn receive_all(&mut self) {
        let mut got = 0u64;
        while got < FRAMES {
            let sent = (FRAMES - got).min(u64::from(QUEUE_SIZE));
            for _ in 0..sent {
                self.host_send();
            }
            let mut round = 0u64;
            while round < sent {
                let pass = self
                    .receiver
                    .fill(&self.mem, &mut self.rxq, &self.backend, &self.stats)
                    .expect("RX queue");
                round += self.take_used();
                if pass.stop == RxStop::BackendEmpty && round < sent && !self.tap_readable() {
                    self.rx_lost += sent - round;
                    break;
                }
            }
            got += round;
        }
    }

    /// Sends one frame from the host towards the guest.
    fn host_send(&self) {
        let f = &self.to_guest;
        // SAFETY: `f` and the address are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.host.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&self.host_addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "sendto: {}",
            io::Error::last_os_error()
        );
    }

    /// Reposts the RX buffers the device used; returns how many held one
    /// of the host's frames (the kernel may send a few of its own).
    fn take_used(&mut self) -> u64 {
        let mut frames = 0;
        while self.rx_seen != self.rx.used_idx(&self.mem) {
            let (id, len) = self.rx.used_elem(&self.mem, self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            if len as usize == NET_HDR_LEN + FRAME {
                frames += 1;
            }
            self.rx.push(&self.mem, id as u16);
        }
        frames
    }

    /// Whether the tap gets a frame to read within [`RX_WAIT_MS`].
    fn tap_readable(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.backend.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the call.
        unsafe { libc::poll(&mut pfd, 1, RX_WAIT_MS) == 1 }
    }
}

fn net(c: &mut Criterion) {
    let link = match link() {
        Ok(link) => link,
        Err(why) => {
            eprintln!("=== SKIPPED net_throughput: {why} ===");
            return;
        }
    };
    let mut driver = Driver::new(link);
    let mut group = c.benchmark_group("virtio-net tap");
    group.throughput(Throughput::Bytes(FRAMES * FRAME as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function("guest to tap 100MB 1514B frames", |b| {
        b.iter(|| driver.transmit_all())
    });
    group.bench_function("tap to guest 100MB 1514B frames", |b| {
        b.iter(|| driver.receive_all())
    });
    group.finish();
    let counts = driver.stats.counts();
    assert_eq!(counts.tx_dropped, 0, "TX frames dropped: {counts:?}");
    assert_eq!(counts.bad_chains, 0, "chains rejected: {counts:?}");
    if driver.rx_lost > 0 || counts.rx_dropped > 0 {
        eprintln!(
            "net_throughput: {} RX frames lost between the host and the tap, {} dropped by the device",
            driver.rx_lost, counts.rx_dropped
        );
    }
}

criterion_group!(benches, net);
criterion_main!(benches);
