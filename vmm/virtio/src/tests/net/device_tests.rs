use std::os::fd::OwnedFd;

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MRG_RXBUF,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::harness::*;
use crate::defs::{feature, STATUS_DEVICE_NEEDS_RESET, TYPE_NET};
use crate::mmio::MmioTransport;
use crate::net::header::{NetHeader, NET_HDR_LEN};
use crate::net::{Net, NetError};
use crate::testing::*;

fn read_config<const N: usize>(t: &mut MmioTransport, offset: u64) -> [u8; N] {
    let mut b = [0u8; N];
    t.bus_read(0x100 + offset, &mut b);
    b
}

#[test]
fn identity_features_and_config_space() {
    let (dev, _host) = seqpacket_pair();
    let net = Net::new(dev, GUEST_MAC, 1400).unwrap();
    let mut t = MmioTransport::new(memory(), Box::new(net)).unwrap();
    assert_eq!(mmio_read(&mut t, 0x08), TYPE_NET);
    mmio_write(&mut t, 0x14, 0);
    let low = u64::from(mmio_read(&mut t, 0x10));
    mmio_write(&mut t, 0x14, 1);
    let high = u64::from(mmio_read(&mut t, 0x10));
    let offered = low | high << 32;
    assert_eq!(offered, FEATURES | feature(crate::defs::VIRTIO_F_VERSION_1));
    for never in [
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_MRG_RXBUF,
    ] {
        assert_eq!(offered & feature(never), 0, "feature {never} offered");
    }
    assert_eq!(read_config::<6>(&mut t, 0), GUEST_MAC);
    assert_eq!(u16::from_le_bytes(read_config(&mut t, 6)), 1, "link up");
    assert_eq!(u16::from_le_bytes(read_config(&mut t, 8)), 1, "one pair");
    assert_eq!(u16::from_le_bytes(read_config(&mut t, 10)), 1400, "mtu");
    assert_eq!(read_config::<8>(&mut t, 12), [0; 8], "nothing past mtu");
    assert_eq!(read_config::<1>(&mut t, 5), [GUEST_MAC[5]], "byte reads");
}

#[test]
fn the_constructor_rejects_bad_addresses_mtus_and_fds() {
    let net = |fd: OwnedFd, mac, mtu| Net::new(fd, mac, mtu).map(|_| ());
    let fd = || seqpacket_pair().0;
    assert!(matches!(net(fd(), [0; 6], 1500), Err(NetError::Mac(_))));
    let multicast = [0x01, 0, 0x5e, 0, 0, 1];
    let err = net(fd(), multicast, 1500).unwrap_err();
    assert!(err.to_string().contains("01:00:5e:00:00:01"), "{err}");
    assert!(matches!(net(fd(), GUEST_MAC, 67), Err(NetError::Mtu(67))));
    assert!(net(fd(), GUEST_MAC, 68).is_ok());
    assert!(net(fd(), GUEST_MAC, u16::MAX).is_ok());
    // Byte streams lose frame boundaries: refused.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(matches!(
        net(a.into(), GUEST_MAC, 1500),
        Err(NetError::NotFrameFd)
    ));
    let file = tempfile::tempfile().unwrap();
    assert!(matches!(
        net(file.into(), GUEST_MAC, 1500),
        Err(NetError::NotFrameFd)
    ));
    let (d, _e) = std::os::unix::net::UnixDatagram::pair().unwrap();
    assert!(net(d.into(), GUEST_MAC, 1500).is_ok());
}

/// Brings a fresh device over a socket pair up through the transport.
fn running_device(mem: &GuestMemoryMmap) -> (MmioTransport, Vec<Rings>, std::fs::File) {
    let (dev, host) = seqpacket_pair();
    let net = Net::new(dev, GUEST_MAC, 1500).unwrap();
    let mut t = MmioTransport::new(mem.clone(), Box::new(net)).unwrap();
    let rings = bring_up(&mut t, FEATURES, 16);
    (t, rings, host)
}

/// Waits for the used index of `r` to reach `n`, through interrupts.
fn wait_used(t: &MmioTransport, mem: &GuestMemoryMmap, r: &Rings, n: u16) {
    let irq = t.irq_evt().try_clone().unwrap();
    while r.used_idx(mem) < n {
        assert!(wait_evt(&irq), "no interrupt from the net worker");
    }
}

#[test]
fn end_to_end_through_mmio_and_worker_thread() {
    let mem = memory();
    let (mut t, rings, mut host) = running_device(&mem);
    let (rx, tx) = (rings[0], rings[1]);
    // A frame arrives before the guest has RX buffers: it waits.
    let early = frame(b"early");
    host_send(&mut host, NetHeader::default(), &early);
    post_rx(&mem, &rx, 0, 2048);
    mmio_write(&mut t, 0x50, 0);
    wait_used(&t, &mem, &rx, 1);
    assert_eq!(
        rx.used_elem(&mem, 0),
        (0, (NET_HDR_LEN + early.len()) as u32)
    );
    assert_eq!(rx_contents(&mem, 0, rx.used_elem(&mem, 0).1).1, early);
    // With a buffer posted, a frame arriving later is delivered by itself.
    post_rx(&mem, &rx, 1, 2048);
    mmio_write(&mut t, 0x50, 0);
    let late = frame(b"late");
    host_send(&mut host, NetHeader::default(), &late);
    wait_used(&t, &mem, &rx, 2);
    assert_eq!(rx_contents(&mem, 1, rx.used_elem(&mem, 1).1).1, late);
    // TX.
    let out = frame(b"to the host");
    post_tx(&mem, &tx, 0, NetHeader::default(), &out);
    mmio_write(&mut t, 0x50, 1);
    let got = host_recv(&host);
    assert_eq!(got[NET_HDR_LEN..], out[..]);
    wait_used(&t, &mem, &tx, 1);
    assert_eq!(tx.used_elem(&mem, 0), (0, 0));
    assert_ne!(
        mmio_read(&mut t, 0x60) & 1,
        0,
        "used-ring interrupt pending"
    );
    mmio_write(&mut t, 0x70, 0);
    assert!(!t.is_active());
}

/// Zeroes the rings of `rings`, as a driver does before reusing them.
fn clear_rings(mem: &GuestMemoryMmap, rings: &[Rings]) {
    for r in rings {
        mem.write_slice(&[0u8; 0x3000], GuestAddress(r.desc))
            .unwrap();
    }
}

#[test]
fn a_hostile_driver_breaks_only_its_own_queue_until_reset() {
    let mem = memory();
    let (mut t, rings, mut host) = running_device(&mem);
    let (rx, tx) = (rings[0], rings[1]);
    // Garbage chains on TX, then a notify flood on every queue index.
    tx.desc(&mem, 0, TX_BUFS, 64, F_NEXT, 0);
    tx.desc(&mem, 1, u64::MAX - 8, 4096, 0, 0);
    tx.desc(&mem, 2, TX_BUFS, u32::MAX, F_WRITE, 0);
    for head in 0..3 {
        tx.push(&mem, head);
    }
    for i in 0..2000u32 {
        mmio_write(&mut t, 0x50, i % 4);
    }
    wait_used(&t, &mem, &tx, 3);
    // Then the TX avail index jumps: TX is broken until a reset.
    tx.set_avail_idx(&mem, 3 + 100);
    mmio_write(&mut t, 0x50, 1);
    // RX keeps working meanwhile (the worker is alive).
    post_rx(&mem, &rx, 0, 2048);
    mmio_write(&mut t, 0x50, 0);
    let f = frame(b"still here");
    host_send(&mut host, NetHeader::default(), &f);
    wait_used(&t, &mem, &rx, 1);
    assert_eq!(rx_contents(&mem, 0, rx.used_elem(&mem, 0).1).1, f);
    assert_eq!(tx.used_idx(&mem), 3, "the broken TX queue is left alone");
    assert_eq!(mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET, 0);
    // Reset, re-initialise, and TX works again.
    mmio_write(&mut t, 0x70, 0);
    clear_rings(&mem, &rings);
    let rings = bring_up(&mut t, FEATURES, 16);
    let out = frame(b"after reset");
    post_tx(&mem, &rings[1], 0, NetHeader::default(), &out);
    mmio_write(&mut t, 0x50, 1);
    assert_eq!(host_recv(&host)[NET_HDR_LEN..], out[..]);
}

#[test]
fn stats_count_across_the_worker_and_survive_a_reset() {
    let mem = memory();
    let (dev, host) = seqpacket_pair();
    let net = Net::new(dev, GUEST_MAC, 1500).unwrap();
    let stats = net.stats();
    let mut t = MmioTransport::new(mem.clone(), Box::new(net)).unwrap();
    let rings = bring_up(&mut t, FEATURES, 16);
    let offload = NetHeader {
        gso_type: 1,
        ..NetHeader::default()
    };
    post_tx(&mem, &rings[1], 0, offload, &frame(b"dropped"));
    post_tx(&mem, &rings[1], 3, NetHeader::default(), &frame(b"sent"));
    mmio_write(&mut t, 0x50, 1);
    wait_used(&t, &mem, &rings[1], 2);
    assert_eq!(host_recv(&host)[NET_HDR_LEN..], frame(b"sent")[..]);
    mmio_write(&mut t, 0x70, 0);
    let c = stats.counts();
    assert_eq!((c.tx_frames, c.tx_dropped), (1, 1));
}
