//! Random hostile rings through TX then RX (the same ring plays both
//! roles), checking what must hold whatever the guest wrote.

use std::os::unix::net::UnixDatagram;

use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::net::backend::FrameFd;
use crate::net::header::NET_HDR_LEN;
use crate::net::rx::Receiver;
use crate::net::stats::{NetCounts, NetStats};
use crate::net::tx::Transmitter;
use crate::testing::*;

const MAX_FRAME: usize = 1518;
const DATA: u64 = 0x10_0000;

/// Sixteen random descriptors and avail entries: mostly small lengths and
/// indices so chains get walked, sometimes huge or out-of-RAM ones.
fn random_ring(rng: &mut Rng, mem: &GuestMemoryMmap, r: &Rings) {
    for i in 0..16u16 {
        let addr = match rng.below(4) {
            0 => MEM_SIZE as u64 - rng.below(0x100),
            _ => DATA + rng.below(0x8000),
        };
        let len = match rng.below(5) {
            0 => u32::MAX - rng.below(16) as u32,
            1 => rng.below(30) as u32,
            _ => rng.below(0x800) as u32,
        };
        let flags = rng.below(8) as u16;
        let next = rng.below(20) as u16;
        r.desc(mem, i, addr, len, flags, next);
    }
    for _ in 0..rng.below(20) {
        r.push(mem, rng.below(18) as u16);
    }
    // Random bytes here and there in the data area; zero headers elsewhere.
    for _ in 0..8 {
        let at = DATA + rng.below(0x8000);
        mem.write_slice(&rng.bytes(16), GuestAddress(at)).unwrap();
    }
}

#[test]
fn random_rings_never_panic_and_keep_every_bound() {
    let mut rng = Rng(0x5eed_0f4e_7500);
    let mut total = NetCounts::default();
    for round in 0..300 {
        let mem = memory();
        let r = Rings::for_queue(0, 16);
        random_ring(&mut rng, &mem, &r);
        let (dev, host) = UnixDatagram::pair().unwrap();
        host.set_nonblocking(true).unwrap();
        let backend = FrameFd::new(dev.into()).unwrap();
        let stats = NetStats::default();
        let mut q = r.queue();

        let sent = Transmitter::new(MAX_FRAME).process(&mem, &mut q, &backend, &stats);
        if let Ok(n) = sent {
            assert!(n <= 16, "round {round}: {n} chains in one pass");
        }
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = host.recv(&mut buf) {
            frames.push(buf[..n].to_vec());
        }
        assert_eq!(
            frames.len() as u64,
            stats.counts().tx_frames,
            "round {round}"
        );
        for f in &frames {
            assert!(
                f.len() >= NET_HDR_LEN + 14,
                "round {round}: runt frame sent"
            );
            assert!(
                f.len() <= NET_HDR_LEN + MAX_FRAME,
                "round {round}: giant sent"
            );
            assert_eq!(f[..NET_HDR_LEN], [0; NET_HDR_LEN], "round {round}");
        }

        // Echo the frames back, plus random messages, and run RX over the ring.
        let mut offered = 0u64;
        for f in frames.iter().cloned().chain((0..4).map(|_| {
            let n = rng.below(200) as usize;
            rng.bytes(n)
        })) {
            if host.send(&f).is_ok() {
                offered += 1;
            }
        }
        let used_before = r.used_idx(&mem);
        q.set_next_avail(0);
        let _ = Receiver::default().fill(&mem, &mut q, &backend, &stats);
        let c = stats.counts();
        total.tx_frames += c.tx_frames;
        total.tx_dropped += c.tx_dropped;
        total.rx_frames += c.rx_frames;
        total.rx_dropped += c.rx_dropped;
        total.bad_chains += c.bad_chains;
        assert!(
            c.rx_frames + c.rx_dropped <= offered,
            "round {round}: {c:?}"
        );
        for i in used_before..r.used_idx(&mem) {
            let (head, len) = r.used_elem(&mem, i);
            assert!(head < 16, "round {round}: head {head} given back");
            if len == 0 {
                continue;
            }
            // (Buffers may overlap, so their contents prove nothing; the
            // used length must still be that of a whole, sane frame.)
            let len = len as usize;
            assert!(len >= NET_HDR_LEN + 14, "round {round}: len {len}");
            assert!(len <= NET_HDR_LEN + MAX_FRAME, "round {round}: len {len}");
        }
    } // The rings must have exercised every path, or the bounds above prove little.
    assert!(total.tx_frames > 0 && total.tx_dropped > 0, "{total:?}");
    assert!(total.rx_frames > 0 && total.rx_dropped > 0, "{total:?}");
    assert!(total.bad_chains > 0, "{total:?}");
}
