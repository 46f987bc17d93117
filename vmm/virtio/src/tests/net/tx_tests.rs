use std::os::fd::AsRawFd;

use virtio_bindings::virtio_net::{
    VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6,
};
use vm_memory::{Bytes, GuestAddress};

use super::harness::*;
use crate::chain::ChainError;
use crate::net::header::{NetHeader, NET_HDR_LEN};
use crate::net::stats::{NetCounts, NetStats};
use crate::net::tx::Transmitter;
use crate::testing::*;

/// Frames of a 1500-byte MTU with a VLAN tag.
const MAX_FRAME: usize = 1518;

fn rings() -> Rings {
    Rings::for_queue(1, 16)
}

#[test]
fn a_guest_frame_reaches_the_tap_behind_an_all_zero_header() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    // Fields that mean nothing without offloads must not reach the host.
    let hdr = NetHeader {
        hdr_len: 54,
        csum_start: 34,
        csum_offset: 16,
        num_buffers: 9,
        ..NetHeader::default()
    };
    let f = frame(b"hello host");
    post_tx(&mem, &r, 0, hdr, &f);
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(1));
    assert_eq!(r.used_elem(&mem, 0), (0, 0));
    let got = host_try_recv(&host).expect("frame on the tap");
    assert_eq!(got[..NET_HDR_LEN], [0; NET_HDR_LEN]);
    assert_eq!(got[NET_HDR_LEN..], f[..]);
    assert_eq!(host_try_recv(&host), None, "exactly one frame");
    assert_eq!(
        stats.counts(),
        NetCounts {
            tx_frames: 1,
            ..NetCounts::default()
        }
    );
}

#[test]
fn headers_asking_for_offloads_drop_their_frame() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    let f = frame(b"no offloads here");
    let asks = [
        VIRTIO_NET_HDR_F_NEEDS_CSUM as u8,
        VIRTIO_NET_HDR_F_DATA_VALID as u8,
    ]
    .map(|flags| NetHeader {
        flags,
        ..NetHeader::default()
    });
    let gso = NetHeader {
        gso_type: VIRTIO_NET_HDR_GSO_TCPV6 as u8,
        gso_size: 1000,
        ..NetHeader::default()
    };
    for (i, hdr) in asks.into_iter().chain([gso]).enumerate() {
        post_tx(&mem, &r, 3 * i as u16, hdr, &f);
    }
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(3));
    assert_eq!(host_try_recv(&host), None);
    assert_eq!(stats.counts().tx_dropped, 3);
}

#[test]
fn frames_past_the_mtu_or_shorter_than_ethernet_are_dropped() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    let payload = MAX_FRAME - 14;
    let fits = frame(&vec![1; payload]);
    let too_long = frame(&vec![2; payload + 1]);
    let too_short = &frame(b"")[..13];
    post_tx(&mem, &r, 0, NetHeader::default(), &too_long);
    post_tx(&mem, &r, 3, NetHeader::default(), too_short);
    post_tx(&mem, &r, 6, NetHeader::default(), &fits);
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(3));
    let got = host_try_recv(&host).expect("the frame that fits");
    assert_eq!(got.len(), NET_HDR_LEN + MAX_FRAME);
    assert_eq!(got[NET_HDR_LEN..], fits[..]);
    assert_eq!(host_try_recv(&host), None);
    let c = stats.counts();
    assert_eq!((c.tx_frames, c.tx_dropped), (1, 2));
}

#[test]
fn malformed_tx_chains_are_given_back_and_counted() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    let f = frame(b"x");
    mem.write_slice(&f, GuestAddress(TX_BUFS + NET_HDR_LEN as u64))
        .unwrap();
    // 0: device-writable buffer; 1: loop; 2: outside guest RAM; 3: huge
    // length; 4: next past the table.
    r.desc(&mem, 0, TX_BUFS, 64, F_WRITE, 0);
    r.desc(&mem, 1, TX_BUFS, 64, F_NEXT, 1);
    r.desc(&mem, 2, MEM_SIZE as u64 - 8, 64, 0, 0);
    r.desc(&mem, 3, TX_BUFS, u32::MAX, 0, 0);
    r.desc(&mem, 4, TX_BUFS, 12, F_NEXT, 99);
    for head in 0..5 {
        r.push(&mem, head);
    }
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(5));
    for i in 0..5 {
        assert_eq!(r.used_elem(&mem, i), (u32::from(i), 0));
    }
    assert_eq!(host_try_recv(&host), None);
    assert_eq!(
        stats.counts(),
        NetCounts {
            bad_chains: 5,
            ..NetCounts::default()
        }
    );
}

#[test]
fn zero_length_descriptors_inside_a_chain_are_harmless() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    let f = frame(b"gaps");
    mem.write_slice(&[0; NET_HDR_LEN], GuestAddress(TX_BUFS))
        .unwrap();
    mem.write_slice(&f, GuestAddress(TX_BUFS + 0x100)).unwrap();
    r.desc(&mem, 0, 0, 0, F_NEXT, 1);
    r.desc(&mem, 1, TX_BUFS, NET_HDR_LEN as u32, F_NEXT, 2);
    r.desc(&mem, 2, u64::MAX - 4, 0, F_NEXT, 3);
    r.desc(&mem, 3, TX_BUFS + 0x100, f.len() as u32, 0, 0);
    r.push(&mem, 0);
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(1));
    assert_eq!(host_try_recv(&host).unwrap()[NET_HDR_LEN..], f[..]);
}

#[test]
fn a_full_tap_drops_frames_without_stalling_the_queue() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (dev, host) = seqpacket_pair();
    // A tiny send buffer: the peer's queue fills after a frame or two.
    let small: libc::c_int = 4096;
    // SAFETY: SO_SNDBUF reads one int through the pointer, valid for the call.
    let rc = unsafe {
        libc::setsockopt(
            dev.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let backend = crate::net::backend::FrameFd::new(dev).unwrap();
    let mut q = r.queue();
    let f = frame(&[7; 1500]);
    mem.write_slice(&[0; NET_HDR_LEN], GuestAddress(TX_BUFS))
        .unwrap();
    mem.write_slice(&f, GuestAddress(TX_BUFS + NET_HDR_LEN as u64))
        .unwrap();
    let len = (NET_HDR_LEN + f.len()) as u32;
    for head in 0..16 {
        r.desc(&mem, head, TX_BUFS, len, 0, 0);
        r.push(&mem, head);
    }
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(tx.process(&mem, &mut q, &backend, &stats), Ok(16));
    assert_eq!(r.used_idx(&mem), 16, "every chain given back");
    let c = stats.counts();
    assert!(c.tx_frames >= 1, "{c:?}");
    assert!(c.tx_dropped >= 1, "{c:?}");
    assert_eq!(c.tx_frames + c.tx_dropped, 16);
    let mut delivered = 0;
    while host_try_recv(&host).is_some() {
        delivered += 1;
    }
    assert_eq!(delivered, c.tx_frames);
}

#[test]
fn an_avail_index_jump_breaks_the_tx_queue() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, _host) = backend();
    let mut q = r.queue();
    r.set_avail_idx(&mem, 17);
    let mut tx = Transmitter::new(MAX_FRAME);
    assert_eq!(
        tx.process(&mem, &mut q, &backend, &stats),
        Err(ChainError::AvailIndexJump)
    );
}
