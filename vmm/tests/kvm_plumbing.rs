//! KVM plumbing tests with tiny hand-assembled guests, run on this machine's
//! `/dev/kvm` through the real machine code (vstate, buses, devices, vCPU
//! threads, exit handling). They skip loudly when `/dev/kvm` is unusable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};
use vmrun::arch::x86_64::regs::BootEntry;
use vmrun::devices::bus::BusDevice;
use vmrun::devices::console::SharedBuffer;
use vmrun::exit::VmExit;
use vmrun::machine::builder::MachineBuilder;
use vmrun::machine::config::MachineConfig;
use vmrun::machine::{CleanExit, Machine, RunError};
use vmrun::timings::{Phase, Timings};
use vmrun_virtio::mmio::MMIO_WINDOW_SIZE;
use vmrun_virtio::Vsock;

/// Where the tiny guests' code goes.
const CODE: u64 = 0x1000;
/// Where their data goes.
const DATA: u64 = 0x1100;
/// A guest that hangs is stopped after this (a hang guard, not an assertion).
const WATCHDOG: Duration = Duration::from_secs(20);

fn kvm_usable() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: KVM plumbing test because /dev/kvm cannot be opened ({e})");
            false
        }
    }
}

struct Outcome {
    result: Result<CleanExit, RunError>,
    console: SharedBuffer,
    timings: Arc<Timings>,
}

impl Outcome {
    fn text(&self) -> String {
        self.console.contents()
    }
}

fn config(vcpus: u8, irqchip: bool) -> MachineConfig {
    MachineConfig {
        vcpus,
        memory_mib: 16,
        irqchip,
    }
}

/// Builds a machine, lets `setup` place code/data and mount devices, runs it.
fn run_guest(cfg: MachineConfig, entry: BootEntry, setup: impl FnOnce(&Machine)) -> Outcome {
    let console = SharedBuffer::new();
    let timings = Arc::new(Timings::new(Instant::now()));
    let machine = MachineBuilder::new(cfg)
        .expect("valid machine config")
        .console(Box::new(console.clone()))
        .timings(timings.clone())
        .build()
        .expect("machine builds on /dev/kvm");
    setup(&machine);
    machine.set_boot_entry(&entry).expect("boot entry");
    let exit_state = machine.exit_state().clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < WATCHDOG && !exit_state.should_stop() {
            std::thread::sleep(Duration::from_millis(10));
        }
        exit_state.report(VmExit::VcpuFailed {
            cpu: 0,
            error: "test watchdog: guest hung".into(),
        });
    });
    let result = machine.run();
    watchdog.join().unwrap();
    Outcome {
        result,
        console,
        timings,
    }
}

fn real_mode(ip: u64) -> BootEntry {
    BootEntry::RealMode {
        cs: 0,
        ip: ip as u16,
    }
}

fn put(machine: &Machine, addr: u64, bytes: &[u8]) {
    machine
        .memory()
        .write_slice(bytes, GuestAddress(addr))
        .unwrap();
}

/// 16-bit: prints the NUL-terminated string at DATA to COM1.
fn print_string_16() -> Vec<u8> {
    let [lo, hi] = (DATA as u16).to_le_bytes();
    vec![
        0xbe, lo, hi, // mov si, DATA
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xac, // next: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz done
        0xee, // out dx, al
        0xeb, 0xf8, // jmp next
              // done:
    ]
}

const HLT: u8 = 0xf4;
/// 16-bit: write 0xFE to the i8042 command port, then spin.
const I8042_RESET_16: [u8; 6] = [0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe];

#[test]
fn real_mode_serial_output_and_hlt() {
    if !kvm_usable() {
        return;
    }
    let mut code = print_string_16();
    code.push(HLT);
    let out = run_guest(config(1, false), real_mode(CODE), |m| {
        put(m, CODE, &code);
        put(m, DATA, b"hello from a tiny guest\n\0");
    });
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    assert_eq!(out.text(), "hello from a tiny guest\n");
    assert!(out.timings.get(Phase::FirstKvmRun).is_some());
    assert!(out.timings.get(Phase::Exit).is_some());
}

#[test]
fn i8042_reset_ends_the_run_cleanly_with_irqchip() {
    if !kvm_usable() {
        return;
    }
    let mut code = print_string_16();
    code.extend_from_slice(&I8042_RESET_16);
    let out = run_guest(config(1, true), real_mode(CODE), |m| {
        put(m, CODE, &code);
        put(m, DATA, b"rebooting\n\0");
    });
    assert_eq!(out.result, Ok(CleanExit::Reset));
    assert_eq!(out.text(), "rebooting\n");
}

#[test]
fn kernel_panic_line_turns_the_reset_into_an_error() {
    if !kvm_usable() {
        return;
    }
    let mut code = print_string_16();
    code.extend_from_slice(&I8042_RESET_16);
    let out = run_guest(config(1, false), real_mode(CODE), |m| {
        put(m, CODE, &code);
        put(
            m,
            DATA,
            b"[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n\0",
        );
    });
    let err = out.result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "guest kernel panicked: VFS: Unable to mount root fs"
    );
}

#[test]
fn boot_timer_port_records_markers() {
    if !kvm_usable() {
        return;
    }
    let code = [
        0xba, 0x40, 0x04, // mov dx, 0x440
        0xb0, 0x09, 0xee, // out 9 (unknown marker: ignored)
        0xb0, 0x01, 0xee, // out 1 (init reached)
        0xb0, 0x02, 0xee, // out 2 (agent ready)
        0xec, // in al, dx (reads back 0)
        0x04, b'0', // add al, '0'
        0xba, 0xf8, 0x03, 0xee, // out to COM1
        HLT,
    ];
    let out = run_guest(config(1, false), real_mode(CODE), |m| put(m, CODE, &code));
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    assert_eq!(out.text(), "0");
    let init = out.timings.get(Phase::InitReached).expect("init marker");
    let ready = out.timings.get(Phase::AgentReady).expect("ready marker");
    assert!(init <= ready);
    assert!(out.timings.get(Phase::ContainerStarted).is_none());
}

/// An MMIO device answering reads with 'M' and recording writes.
#[derive(Default)]
struct MmioProbe {
    writes: Vec<(u64, Vec<u8>)>,
    reads: Vec<(u64, usize)>,
}

impl BusDevice for MmioProbe {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.reads.push((offset, data.len()));
        data.fill(b'M');
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes.push((offset, data.to_vec()));
    }
}

#[test]
fn pvh_protected_mode_mmio_exits_reach_the_mmio_bus() {
    if !kvm_usable() {
        return;
    }
    let probe = Arc::new(Mutex::new(MmioProbe::default()));
    // 32-bit protected mode (the PVH entry state), flat segments.
    let code = [
        0xb8, 0x00, 0x00, 0x00, 0xd0, // mov eax, 0xd0000000
        0xc7, 0x00, 0x78, 0x56, 0x34, 0x12, // mov dword [eax], 0x12345678
        0x8b, 0x58, 0x04, // mov ebx, [eax+4]
        0x8b, 0x0d, 0x00, 0x00, 0x00, 0xe0, // mov ecx, [0xe0000000] (unclaimed: 0)
        0x80, 0xc1, b'A', // add cl, 'A'
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0x88, 0xd8, 0xee, // mov al, bl; out dx, al
        0x88, 0xc8, 0xee, // mov al, cl; out dx, al
        0xe4, 0x99, // in al, 0x99 (unclaimed port: 0xff)
        0xee, // out dx, al
        // esp-free check of the PVH start-info register: ebx was 0x6000.
        HLT,
    ];
    let entry = BootEntry::Pvh {
        entry: CODE,
        start_info: 0x6000,
    };
    let out = run_guest(config(1, false), entry, |m| {
        put(m, CODE, &code);
        m.mmio_bus()
            .insert(0xd000_0000, 0x1000, probe.clone())
            .unwrap();
    });
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    assert_eq!(out.console.bytes(), b"MA\xff");
    let probe = probe.lock().unwrap();
    assert_eq!(probe.writes, vec![(0, vec![0x78, 0x56, 0x34, 0x12])]);
    assert_eq!(probe.reads, vec![(4, 4)]);
}

#[test]
fn long_mode_entry_runs_with_boot_params_in_rsi() {
    if !kvm_usable() {
        return;
    }
    let code = [
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'L', 0xee, // out 'L'
        0x89, 0xf0, // mov eax, esi
        0xc1, 0xe8, 0x0c, // shr eax, 12
        0x04, b'0', // add al, '0'
        0xee, // out: '7' for a zero page at 0x7000
        HLT,
    ];
    let entry = BootEntry::Linux64 {
        entry: CODE,
        boot_params: 0x7000,
    };
    let out = run_guest(config(1, false), entry, |m| put(m, CODE, &code));
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    assert_eq!(out.text(), "L7");
}

#[test]
fn two_vcpus_both_run_and_see_their_apic_ids() {
    if !kvm_usable() {
        return;
    }
    // Without the in-kernel LAPIC every vCPU starts at the entry; each
    // prints its initial APIC id from CPUID leaf 1 (set per vCPU).
    let code = [
        0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x0f, 0xa2, // cpuid
        0x66, 0xc1, 0xeb, 0x18, // shr ebx, 24
        0x88, 0xd8, // mov al, bl
        0x04, b'0', // add al, '0'
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee, // out dx, al
        HLT,
    ];
    let out = run_guest(config(2, false), real_mode(CODE), |m| put(m, CODE, &code));
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    let mut ids: Vec<char> = out.text().chars().collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!['0', '1']);
}

#[test]
fn hostile_port_accesses_are_survived() {
    if !kvm_usable() {
        return;
    }
    let code = [
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0x66, 0xb8, 0x41, 0x42, 0x43, 0x44, // mov eax, "ABCD"
        0x66, 0xef, // out dx, eax (4-byte write to the UART: ignored)
        0xef, // out dx, ax (2-byte: ignored)
        0x66, 0xed, // in eax, dx (4-byte read: all ones)
        0xba, 0x64, 0x00, // mov dx, 0x64
        0xef, // out dx, ax (2-byte write to i8042: no reset)
        0xba, 0xfe, 0xff, // mov dx, 0xfffe
        0x66, 0xef, // out dx, eax (crosses the top of port space)
        0xba, 0xf8, 0x03, 0xb0, b'k', 0xee, // out 'k'
        HLT,
    ];
    let out = run_guest(config(1, false), real_mode(CODE), |m| put(m, CODE, &code));
    assert_eq!(out.result, Ok(CleanExit::AllVcpusHalted));
    assert_eq!(out.text(), "k");
}

#[test]
fn triple_fault_is_an_error() {
    if !kvm_usable() {
        return;
    }
    // 32-bit protected mode with an empty IDT: #DE -> #GP -> #DF -> shutdown
    // (int3 would do, but PVM cannot emulate it).
    let code = [
        0x0f, 0x01, 0x1d, 0x00, 0x11, 0x00, 0x00, // lidt [DATA] (limit 0)
        0x31, 0xc9, // xor ecx, ecx
        0xf7, 0xf1, // div ecx (#DE)
        HLT,
    ];
    let entry = BootEntry::Pvh {
        entry: CODE,
        start_info: 0,
    };
    let out = run_guest(config(1, true), entry, |m| {
        put(m, CODE, &code);
        put(m, DATA, &[0u8; 6]);
    });
    match out.result {
        Err(RunError::TripleFault { cpu: 0 }) => {}
        other => panic!("expected a triple fault, got {other:?}"),
    }
}

#[test]
fn machine_config_is_validated_before_touching_kvm() {
    let err = MachineBuilder::new(config(0, false)).unwrap_err();
    assert!(vmrun::error_chain(&err).contains("--cpus"), "{err}");
}

#[test]
fn virtio_devices_get_consecutive_slots_and_answer_there() {
    if !kvm_usable() {
        return;
    }
    let console = SharedBuffer::new();
    let mut machine = MachineBuilder::new(config(1, true))
        .unwrap()
        .console(Box::new(console.clone()))
        .build()
        .unwrap();
    let first = machine
        .attach_virtio(Box::new(Vsock::new(3).unwrap()))
        .unwrap();
    let second = machine
        .attach_virtio(Box::new(Vsock::new(3).unwrap()))
        .unwrap();
    assert_eq!(second.base, first.base + MMIO_WINDOW_SIZE);
    assert_eq!(second.irq, first.irq + 1);
    assert_eq!(machine.virtio_slots(), &[first, second]);
    // A guest load from each slot's first register (the "virt" magic)
    // reaches that slot's transport.
    let mut code = vec![0x66, 0xba, 0xf8, 0x03]; // mov dx, 0x3f8
    for base in [first.base, second.base] {
        code.push(0xa1); // mov eax, [base]
        code.extend_from_slice(&u32::try_from(base).unwrap().to_le_bytes());
        code.push(0xee); // out dx, al
    }
    code.extend_from_slice(&[0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe]); // i8042 reset; jmp $
    put(&machine, CODE, &code);
    machine
        .set_boot_entry(&BootEntry::Pvh {
            entry: CODE,
            start_info: 0,
        })
        .unwrap();
    assert_eq!(machine.run(), Ok(CleanExit::Reset));
    assert_eq!(console.bytes(), b"vv");
}
