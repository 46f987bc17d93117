use crate::chain::{pop_chain, process_queue, read_from, write_to, ChainError};
use crate::testing::*;

const DATA: u64 = 0x10_0000;

fn rings() -> Rings {
    Rings::for_queue(0, 16)
}

#[test]
fn valid_chain_is_split_into_readable_and_writable() {
    let mem = memory();
    let r = rings();
    r.desc(&mem, 0, DATA, 16, F_NEXT, 1);
    r.desc(&mem, 1, DATA + 0x100, 512, F_NEXT | F_WRITE, 2);
    r.desc(&mem, 2, DATA + 0x400, 1, F_WRITE, 0);
    r.push(&mem, 0);
    let mut q = r.queue();
    let (head, chain) = pop_chain(&mem, &mut q).unwrap().unwrap();
    let chain = chain.unwrap();
    assert_eq!(head, 0);
    assert_eq!(chain.readable.len(), 1);
    assert_eq!(chain.writable.len(), 2);
    assert_eq!(chain.writable_len(), 513);
    assert!(pop_chain(&mem, &mut q).unwrap().is_none());
}

fn expect_rejected(setup: impl FnOnce(&vm_memory::GuestMemoryMmap, &Rings)) -> ChainError {
    let mem = memory();
    let r = rings();
    setup(&mem, &r);
    let mut q = r.queue();
    let (_, chain) = pop_chain(&mem, &mut q).unwrap().unwrap();
    let err = chain.unwrap_err();
    // The malformed chain is still returned to the driver.
    let mut handled = 0;
    r.set_avail_idx(&mem, r.used_idx(&mem)); // nothing further pending
    let _ = process_queue(&mem, &mut q, |_, _| {
        handled += 1;
        0
    });
    assert_eq!(handled, 0);
    err
}

#[test]
fn descriptor_loop_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, DATA, 16, F_NEXT, 1);
        r.desc(mem, 1, DATA, 16, F_NEXT, 0);
        r.push(mem, 0);
    });
    assert_eq!(e, ChainError::Malformed(0));
}

#[test]
fn self_loop_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 3, DATA, 16, F_NEXT, 3);
        r.push(mem, 3);
    });
    assert_eq!(e, ChainError::Malformed(3));
}

#[test]
fn next_past_queue_size_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, DATA, 16, F_NEXT, 16);
        r.push(mem, 0);
    });
    assert_eq!(e, ChainError::Malformed(0));
}

#[test]
fn head_past_queue_size_is_rejected() {
    let e = expect_rejected(|mem, r| r.push(mem, 200));
    assert_eq!(e, ChainError::Empty(200));
}

#[test]
fn buffer_past_end_of_memory_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, MEM_SIZE as u64 - 8, 16, 0, 0);
        r.push(mem, 0);
    });
    assert!(matches!(e, ChainError::OutOfMemory { .. }), "{e:?}");
}

#[test]
fn address_near_u64_max_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, u64::MAX - 4, 16, 0, 0);
        r.push(mem, 0);
    });
    assert!(matches!(e, ChainError::OutOfMemory { .. }), "{e:?}");
}

#[test]
fn length_near_u32_max_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, DATA, u32::MAX - 1, 0, 0);
        r.push(mem, 0);
    });
    assert!(matches!(e, ChainError::OutOfMemory { .. }), "{e:?}");
}

#[test]
fn chain_longer_than_4gib_is_rejected() {
    let e = expect_rejected(|mem, r| {
        // Each buffer is in RAM... only if the lengths were small; two
        // near-4GiB lengths overflow the 32-bit total first.
        r.desc(mem, 0, 0, u32::MAX, F_NEXT, 1);
        r.desc(mem, 1, 0, u32::MAX, 0, 0);
        r.push(mem, 0);
    });
    assert!(
        matches!(e, ChainError::OutOfMemory { .. } | ChainError::Malformed(_)),
        "{e:?}"
    );
}

#[test]
fn indirect_inside_indirect_is_rejected() {
    let e = expect_rejected(|mem, r| {
        let table = vm_memory::GuestAddress(DATA);
        // Indirect table with one descriptor that is itself indirect.
        write_desc(mem, table, DATA + 0x1000, 16, F_INDIRECT, 0);
        r.desc(mem, 0, DATA, 16, F_INDIRECT, 0);
        r.push(mem, 0);
    });
    assert!(
        matches!(e, ChainError::Empty(0) | ChainError::Malformed(0)),
        "{e:?}"
    );
}

#[test]
fn indirect_table_loop_is_rejected() {
    let e = expect_rejected(|mem, r| {
        let t = DATA;
        write_desc(mem, vm_memory::GuestAddress(t), DATA + 0x800, 16, F_NEXT, 1);
        write_desc(
            mem,
            vm_memory::GuestAddress(t + 16),
            DATA + 0x800,
            16,
            F_NEXT,
            0,
        );
        r.desc(mem, 0, t, 32, F_INDIRECT, 0);
        r.push(mem, 0);
    });
    assert_eq!(e, ChainError::Malformed(0));
}

#[test]
fn indirect_table_outside_memory_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, MEM_SIZE as u64 + 0x1000, 64, F_INDIRECT, 0);
        r.push(mem, 0);
    });
    assert_eq!(e, ChainError::Empty(0));
}

#[test]
fn valid_indirect_chain_is_accepted() {
    let mem = memory();
    let r = rings();
    let t = DATA;
    write_desc(
        &mem,
        vm_memory::GuestAddress(t),
        DATA + 0x800,
        16,
        F_NEXT,
        1,
    );
    write_desc(
        &mem,
        vm_memory::GuestAddress(t + 16),
        DATA + 0x900,
        8,
        F_WRITE,
        0,
    );
    r.desc(&mem, 0, t, 32, F_INDIRECT, 0);
    r.push(&mem, 0);
    let mut q = r.queue();
    let chain = pop_chain(&mem, &mut q).unwrap().unwrap().1.unwrap();
    assert_eq!(chain.readable_len(), 16);
    assert_eq!(chain.writable_len(), 8);
}

#[test]
fn readable_after_writable_is_rejected() {
    let e = expect_rejected(|mem, r| {
        r.desc(mem, 0, DATA, 16, F_NEXT | F_WRITE, 1);
        r.desc(mem, 1, DATA, 16, 0, 0);
        r.push(mem, 0);
    });
    assert_eq!(e, ChainError::ReadAfterWrite(0));
}

#[test]
fn avail_index_jump_stops_the_queue() {
    let mem = memory();
    let r = rings();
    r.set_avail_idx(&mem, 1000);
    let mut q = r.queue();
    assert_eq!(
        pop_chain(&mem, &mut q).unwrap_err(),
        ChainError::AvailIndexJump
    );
    assert_eq!(
        process_queue(&mem, &mut q, |_, _| 0).unwrap_err(),
        ChainError::AvailIndexJump
    );
}

#[test]
fn process_queue_returns_every_chain_including_malformed_ones() {
    let mem = memory();
    let r = rings();
    r.desc(&mem, 0, DATA, 16, F_WRITE, 0);
    r.desc(&mem, 1, DATA, 16, F_NEXT, 1); // loop
    r.desc(&mem, 2, DATA, 4, F_WRITE, 0);
    r.push(&mem, 0);
    r.push(&mem, 1);
    r.push(&mem, 2);
    let mut q = r.queue();
    let mut seen = Vec::new();
    let n = process_queue(&mem, &mut q, |_, c| {
        seen.push(c.head);
        7
    })
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(seen, vec![0, 2]);
    assert_eq!(r.used_idx(&mem), 3);
    assert_eq!(r.used_elem(&mem, 0), (0, 7));
    assert_eq!(r.used_elem(&mem, 1), (1, 0));
    assert_eq!(r.used_elem(&mem, 2), (2, 7));
}

#[test]
fn gather_and_scatter_across_buffers() {
    let mem = memory();
    let r = rings();
    r.desc(&mem, 0, DATA, 3, F_NEXT | F_WRITE, 1);
    r.desc(&mem, 1, DATA + 0x100, 5, F_WRITE, 0);
    r.push(&mem, 0);
    let mut q = r.queue();
    let chain = pop_chain(&mem, &mut q).unwrap().unwrap().1.unwrap();
    write_to(&mem, &chain.writable, 1, b"abcdef").unwrap();
    let mut back = [0u8; 6];
    read_from(&mem, &chain.writable, 1, &mut back).unwrap();
    assert_eq!(&back, b"abcdef");
    assert!(matches!(
        write_to(&mem, &chain.writable, 3, b"123456"),
        Err(ChainError::TooShort { .. })
    ));
    assert!(read_from(&mem, &chain.writable, u64::MAX, &mut back).is_err());
}
