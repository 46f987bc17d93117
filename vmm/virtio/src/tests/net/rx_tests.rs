use virtio_bindings::virtio_net::{
    VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
};
use vm_memory::{Bytes, GuestAddress};

use super::harness::*;
use crate::chain::ChainError;
use crate::net::header::{NetHeader, NET_HDR_LEN};
use crate::net::rx::{Receiver, RxPass, RxStop};
use crate::net::stats::{NetCounts, NetStats};
use crate::testing::*;

fn rings() -> Rings {
    Rings::for_queue(0, 16)
}

fn pass(used: usize, stop: RxStop) -> Result<RxPass, ChainError> {
    Ok(RxPass { used, stop })
}

#[test]
fn a_tap_frame_lands_in_the_next_rx_buffer_behind_a_plain_header() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    // The tap's header says DATA_VALID and leaves num_buffers as garbage;
    // neither may reach a guest that negotiated no offloads.
    let tap_hdr = NetHeader {
        flags: VIRTIO_NET_HDR_F_DATA_VALID as u8,
        num_buffers: 0x7777,
        ..NetHeader::default()
    };
    let f = frame(b"hello guest");
    host_send(&mut host, tap_hdr, &f);
    // One chain of two buffers: 5 bytes, then the rest.
    r.desc(&mem, 0, rx_buf(0), 5, F_WRITE | F_NEXT, 1);
    r.desc(&mem, 1, rx_buf(0) + 5, 2000, F_WRITE, 0);
    r.push(&mem, 0);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(1, RxStop::NoBuffers)
    );
    let len = (NET_HDR_LEN + f.len()) as u32;
    assert_eq!(r.used_elem(&mem, 0), (0, len));
    let (hdr, got) = rx_contents(&mem, 0, len);
    assert_eq!(hdr, NetHeader::plain_rx());
    assert_eq!(hdr.num_buffers, 1);
    assert_eq!(got, f);
    assert_eq!(
        stats.counts(),
        NetCounts {
            rx_frames: 1,
            ..NetCounts::default()
        }
    );
}

#[test]
fn without_rx_buffers_frames_wait_in_the_tap_in_order() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    let mut rx = Receiver::default();
    let (f1, f2) = (frame(b"first"), frame(b"second"));
    host_send(&mut host, NetHeader::default(), &f1);
    host_send(&mut host, NetHeader::default(), &f2);
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(0, RxStop::NoBuffers)
    );
    post_rx(&mem, &r, 0, 2048);
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(1, RxStop::NoBuffers),
        "one buffer: one frame, the second waits"
    );
    assert_eq!(rx_contents(&mem, 0, r.used_elem(&mem, 0).1).1, f1);
    post_rx(&mem, &r, 1, 2048);
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(1, RxStop::NoBuffers)
    );
    assert_eq!(rx_contents(&mem, 1, r.used_elem(&mem, 1).1).1, f2);
    post_rx(&mem, &r, 2, 2048);
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(0, RxStop::BackendEmpty),
        "the buffer stays posted"
    );
    assert_eq!(r.used_idx(&mem), 2);
    assert_eq!(stats.counts().rx_frames, 2);
}

#[test]
fn a_frame_larger_than_the_buffer_is_dropped_and_the_buffer_reused() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    let big = frame(&[0xaa; 200]);
    let small = frame(&[0xbb; 20]);
    host_send(&mut host, NetHeader::default(), &big);
    host_send(&mut host, NetHeader::default(), &small);
    post_rx(&mem, &r, 0, 100);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(1, RxStop::NoBuffers)
    );
    assert_eq!(
        r.used_elem(&mem, 0),
        (0, (NET_HDR_LEN + small.len()) as u32)
    );
    assert_eq!(rx_contents(&mem, 0, 46).1, small);
    let c = stats.counts();
    assert_eq!((c.rx_frames, c.rx_dropped), (1, 1));
}

#[test]
fn frames_needing_offloads_or_shorter_than_ethernet_are_dropped() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    let f = frame(b"payload");
    let csum = NetHeader {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM as u8,
        ..NetHeader::default()
    };
    let gso = NetHeader {
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4 as u8,
        gso_size: 1448,
        ..NetHeader::default()
    };
    host_send(&mut host, csum, &f);
    host_send(&mut host, gso, &f);
    host_send(&mut host, NetHeader::default(), &f[..13]);
    host_send(&mut host, NetHeader::default(), &[]);
    host_send_raw(&mut host, &[0u8; 5]);
    host_send(&mut host, NetHeader::default(), &f);
    post_rx(&mem, &r, 0, 2048);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(1, RxStop::NoBuffers)
    );
    assert_eq!(rx_contents(&mem, 0, r.used_elem(&mem, 0).1).1, f);
    let c = stats.counts();
    assert_eq!((c.rx_frames, c.rx_dropped), (1, 5));
}

#[test]
fn unusable_rx_chains_are_given_back_empty_and_cost_no_frame() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    let f = frame(b"survivor");
    host_send(&mut host, NetHeader::default(), &f);
    // 0: device-readable; 1: too small for any frame; 2: zero length;
    // 3: loop; 4: outside guest RAM; 5: huge length; 6+7: writable then
    // readable; then a good one at 9.
    r.desc(&mem, 0, rx_buf(0), 2048, 0, 0);
    r.desc(&mem, 1, rx_buf(1), 25, F_WRITE, 0);
    r.desc(&mem, 2, rx_buf(2), 0, F_WRITE, 0);
    r.desc(&mem, 3, rx_buf(3), 2048, F_WRITE | F_NEXT, 3);
    r.desc(&mem, 4, MEM_SIZE as u64 - 16, 2048, F_WRITE, 0);
    r.desc(&mem, 5, rx_buf(5), u32::MAX, F_WRITE, 0);
    r.desc(&mem, 6, rx_buf(6), 2048, F_WRITE | F_NEXT, 7);
    r.desc(&mem, 7, rx_buf(7), 16, 0, 0);
    for head in [0, 1, 2, 3, 4, 5, 6] {
        r.push(&mem, head);
    }
    post_rx(&mem, &r, 9, 2048);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(8, RxStop::NoBuffers)
    );
    for i in 0..7 {
        assert_eq!(r.used_elem(&mem, i).1, 0, "bad chain {i} given back empty");
    }
    assert_eq!(r.used_elem(&mem, 7), (9, (NET_HDR_LEN + f.len()) as u32));
    assert_eq!(rx_contents(&mem, 9, r.used_elem(&mem, 7).1).1, f);
    assert_eq!(
        stats.counts(),
        NetCounts {
            rx_frames: 1,
            bad_chains: 7,
            ..NetCounts::default()
        }
    );
}

#[test]
fn a_pass_does_at_most_a_queue_worth_of_work() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, mut host) = backend();
    let mut q = r.queue();
    // One tiny buffer and a flood of frames too big for it: every frame is
    // dropped, the buffer stays, and a pass stops after 16 frames.
    for _ in 0..40 {
        host_send(&mut host, NetHeader::default(), &frame(&[0; 100]));
    }
    post_rx(&mem, &r, 0, 64);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(0, RxStop::Budget)
    );
    assert_eq!(stats.counts().rx_dropped, 16);
    assert_eq!(r.used_idx(&mem), 0);
}

#[test]
fn a_closed_backend_ends_rx_and_keeps_the_buffer() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, host) = backend();
    let mut q = r.queue();
    drop(host);
    post_rx(&mem, &r, 0, 2048);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        pass(0, RxStop::BackendClosed)
    );
    assert_eq!(r.used_idx(&mem), 0);
}

#[test]
fn an_avail_index_jump_breaks_the_rx_queue() {
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, _host) = backend();
    let mut q = r.queue();
    r.set_avail_idx(&mem, 100);
    let mut rx = Receiver::default();
    assert_eq!(
        rx.fill(&mem, &mut q, &backend, &stats),
        Err(ChainError::AvailIndexJump)
    );
    // Nothing was written to the used ring.
    assert_eq!(mem.read_obj::<u16>(GuestAddress(r.used + 2)).unwrap(), 0);
}

#[test]
fn a_head_past_the_queue_size_breaks_the_rx_queue() {
    // The head cannot even be given back (the used ring takes only valid
    // heads): the queue is broken until the driver resets the device.
    let (mem, r, stats) = (memory(), rings(), NetStats::default());
    let (backend, _host) = backend();
    let mut q = r.queue();
    r.push(&mem, 200);
    let mut rx = Receiver::default();
    assert!(matches!(
        rx.fill(&mem, &mut q, &backend, &stats),
        Err(ChainError::Queue(_))
    ));
    assert_eq!(stats.counts().bad_chains, 1);
}
