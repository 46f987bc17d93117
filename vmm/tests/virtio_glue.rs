//! The virtio device manager (`machine::mmio_devices`) on this machine's `/dev/kvm` with a
//! tiny hand-assembled guest: the vsock and virtio-fs transports are
//! mounted where the slots say, answer the virtio-mmio registers, and
//! survive a sweep of hostile writes. Skips loudly without a usable
//! `/dev/kvm`.

use std::sync::Arc;
use std::time::Instant;

use vm_memory::{Bytes, GuestAddress};
use vmrun::arch::x86_64::regs::BootEntry;
use vmrun::devices::console::SharedBuffer;
use vmrun::machine::builder::MachineBuilder;
use vmrun::machine::config::MachineConfig;
use vmrun::machine::CleanExit;
use vmrun::timings::Timings;
use vmrun_virtio::{Fs, Vsock};

const CODE: u64 = 0x1000;

fn imm(v: u64) -> [u8; 4] {
    u32::try_from(v).expect("32-bit address").to_le_bytes()
}

#[test]
fn vsock_and_fs_answer_on_their_slots_and_survive_a_write_sweep() {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        eprintln!("SKIPPED: virtio glue test because /dev/kvm cannot be opened ({e})");
        return;
    }
    let console = SharedBuffer::new();
    let cfg = MachineConfig {
        vcpus: 1,
        memory_mib: 16,
        irqchip: true,
    };
    let shared = tempfile::tempdir().expect("tempdir");
    let vsock = Vsock::new(3).expect("vsock");
    let _host = vsock.host();
    let machine = MachineBuilder::new(cfg)
        .expect("valid config")
        .console(Box::new(console.clone()))
        .timings(Arc::new(Timings::new(Instant::now())))
        .virtio(Box::new(vsock))
        .virtio(Box::new(
            Fs::new("rootfs", shared.path(), true).expect("fs"),
        ))
        .build()
        .expect("machine");
    let [vsock, fs] = machine.virtio_slots() else {
        panic!(
            "expected two attached devices: {:?}",
            machine.virtio_slots()
        );
    };
    let (vsock_base, fs_base) = (vsock.base, fs.base);

    // 32-bit protected mode, flat segments (the PVH entry state).
    let mut code = Vec::new();
    // Sweep: write 0xffffffff to every register of the fs transport.
    code.push(0xb9); // mov ecx, fs_base
    code.extend_from_slice(&imm(fs_base));
    let top = code.len();
    code.extend_from_slice(&[0xc7, 0x01, 0xff, 0xff, 0xff, 0xff]); // mov dword [ecx], -1
    code.extend_from_slice(&[0x83, 0xc1, 0x04]); // add ecx, 4
    code.extend_from_slice(&[0x81, 0xf9]); // cmp ecx, fs_base + 0x200
    code.extend_from_slice(&imm(fs_base + 0x200));
    let rel = i8::try_from(top as i64 - (code.len() as i64 + 2)).expect("short jump");
    code.extend_from_slice(&[0x72, rel as u8]); // jb top
    code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
    for addr in [vsock_base, vsock_base + 8, fs_base, fs_base + 8] {
        code.push(0xa1); // mov eax, [addr]
        code.extend_from_slice(&imm(addr));
        code.push(0xee); // out dx, al
    }
    code.extend_from_slice(&[0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe]); // i8042 reset; jmp $
    machine
        .memory()
        .write_slice(&code, GuestAddress(CODE))
        .expect("code");
    machine
        .set_boot_entry(&BootEntry::Pvh {
            entry: CODE,
            start_info: 0,
        })
        .expect("entry");
    assert_eq!(machine.run(), Ok(CleanExit::Reset));
    // 'v' of the "virt" magic, then device ids 19 (vsock) and 26 (fs).
    assert_eq!(console.bytes(), b"v\x13v\x1a");
}
