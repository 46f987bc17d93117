//! The virtio-mmio transport (virtio 1.x "modern", version 2 only).
//!
//! One [`MmioTransport`] per device. The VMM maps it at some base address on
//! its MMIO bus and forwards accesses with [`MmioTransport::bus_read`] /
//! [`MmioTransport::bus_write`] (offsets relative to the base). For speed it
//! registers each [`MmioTransport::queue_evts`] entry as a KVM ioeventfd at
//! `base + NOTIFY_REG_OFFSET` (4 bytes, datamatch = queue index) and
//! [`MmioTransport::irq_evt`] as a KVM irqfd for the device's interrupt line.
//! Without ioeventfds, a QueueNotify write still reaches the device: the
//! transport signals the queue's `EventFd` itself.
//!
//! Everything here is driven by the guest and is treated as hostile: unknown
//! offsets, odd widths and out-of-order status writes are ignored or mark
//! the device as needing a reset; nothing panics.

use std::sync::Arc;

use tracing::{debug, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::activation::{ActiveQueue, GuestLink};
use crate::defs::{
    feature, STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_OK,
    STATUS_FAILED, STATUS_FEATURES_OK, VIRTIO_F_VERSION_1,
};
use crate::device::VirtioDevice;
use crate::failure::DeviceFailure;
use crate::interrupt::Interrupt;

/// Size of the MMIO window of one device (use it in `virtio_mmio.device=`).
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;
/// Offset of the QueueNotify register (where ioeventfds are registered).
pub const NOTIFY_REG_OFFSET: u64 = 0x50;
/// Offset where the device-specific configuration space starts.
pub const CONFIG_SPACE_OFFSET: u64 = 0x100;

const MAGIC_VALUE: u32 = 0x7472_6976; // "virt"
const MMIO_VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x554D_5652; // "RVMU"

mod reg {
    pub const MAGIC: u64 = 0x00;
    pub const VERSION: u64 = 0x04;
    pub const DEVICE_ID: u64 = 0x08;
    pub const VENDOR_ID: u64 = 0x0c;
    pub const DEVICE_FEATURES: u64 = 0x10;
    pub const DEVICE_FEATURES_SEL: u64 = 0x14;
    pub const DRIVER_FEATURES: u64 = 0x20;
    pub const DRIVER_FEATURES_SEL: u64 = 0x24;
    pub const QUEUE_SEL: u64 = 0x30;
    pub const QUEUE_NUM_MAX: u64 = 0x34;
    pub const QUEUE_NUM: u64 = 0x38;
    pub const QUEUE_READY: u64 = 0x44;
    pub const QUEUE_NOTIFY: u64 = 0x50;
    pub const INTERRUPT_STATUS: u64 = 0x60;
    pub const INTERRUPT_ACK: u64 = 0x64;
    pub const STATUS: u64 = 0x70;
    pub const QUEUE_DESC_LOW: u64 = 0x80;
    pub const QUEUE_DESC_HIGH: u64 = 0x84;
    pub const QUEUE_AVAIL_LOW: u64 = 0x90;
    pub const QUEUE_AVAIL_HIGH: u64 = 0x94;
    pub const QUEUE_USED_LOW: u64 = 0xa0;
    pub const QUEUE_USED_HIGH: u64 = 0xa4;
    pub const SHM_SEL: u64 = 0xac;
    pub const SHM_LEN_LOW: u64 = 0xb0;
    pub const SHM_LEN_HIGH: u64 = 0xb4;
    pub const SHM_BASE_LOW: u64 = 0xb8;
    pub const SHM_BASE_HIGH: u64 = 0xbc;
    pub const CONFIG_GENERATION: u64 = 0xfc;
}

/// Errors creating a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A queue maximum size is not a power of two in 1..=32768.
    #[error("device queue {index} has invalid maximum size {size}")]
    QueueMaxSize {
        /// Index of the queue.
        index: usize,
        /// The rejected size.
        size: u16,
    },
    /// An `EventFd` could not be created.
    #[error("cannot create eventfd")]
    EventFd(#[source] std::io::Error),
}

/// A virtio-mmio transport around one device (see the module docs).
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    queues: Vec<Queue>,
    /// Per queue: raw values the driver wrote to the queue registers.
    queue_regs: Vec<QueueRegs>,
    queue_evts: Vec<EventFd>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    config_generation: u32,
    active: bool,
    /// Set by the device's worker if it dies (from activation to reset).
    worker_failure: Option<DeviceFailure>,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("device_type", &self.device_type())
            .field("status", &self.status)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl MmioTransport {
    /// Wraps `device`; `mem` is the guest RAM the queues must live in.
    pub fn new(
        mem: GuestMemoryMmap,
        device: Box<dyn VirtioDevice>,
    ) -> Result<Self, TransportError> {
        let mut queues = Vec::new();
        let mut queue_evts = Vec::new();
        for (index, &size) in device.common().queue_max_sizes().iter().enumerate() {
            queues
                .push(Queue::new(size).map_err(|_| TransportError::QueueMaxSize { index, size })?);
            queue_evts.push(EventFd::new(EFD_NONBLOCK).map_err(TransportError::EventFd)?);
        }
        Ok(Self {
            device,
            mem,
            interrupt: Arc::new(Interrupt::new().map_err(TransportError::EventFd)?),
            queue_regs: vec![QueueRegs::default(); queues.len()],
            queues,
            queue_evts,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            config_generation: 0,
            active: false,
            worker_failure: None,
        })
    }

    /// One `EventFd` per queue, in queue order: register entry `i` as a KVM
    /// ioeventfd at `base + NOTIFY_REG_OFFSET`, length 4, datamatch `i`.
    pub fn queue_evts(&self) -> &[EventFd] {
        &self.queue_evts
    }

    /// The `EventFd` to register as a KVM irqfd for this device's interrupt line.
    pub fn irq_evt(&self) -> &EventFd {
        self.interrupt.irq_evt()
    }

    /// The interrupt state shared with the device.
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The virtio device id of the wrapped device.
    pub fn device_type(&self) -> u32 {
        self.device.common().device_type()
    }

    /// Current value of the device status register.
    pub fn status(&self) -> u32 {
        if self.worker_failed() {
            self.status | STATUS_DEVICE_NEEDS_RESET
        } else {
            self.status
        }
    }

    fn worker_failed(&self) -> bool {
        self.worker_failure
            .as_ref()
            .is_some_and(DeviceFailure::is_set)
    }

    /// Folds a worker's failure into the status register, so every status
    /// check below sees DEVICE_NEEDS_RESET.
    fn note_worker_failure(&mut self) {
        self.status = self.status();
    }

    /// Whether the device was activated (DRIVER_OK accepted).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The kernel command-line word declaring this device to Linux.
    pub fn cmdline_entry(base: u64, irq: u32) -> String {
        format!("virtio_mmio.device={MMIO_WINDOW_SIZE:#x}@{base:#x}:{irq}")
    }

    fn offered_features(&self) -> u64 {
        self.device.common().avail_features() | feature(VIRTIO_F_VERSION_1)
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    /// Queue registers are writable only between FEATURES_OK and DRIVER_OK.
    /// Returns the selected queue and its "configuration is bad" flag.
    fn selected_queue_for_setup(&mut self) -> Option<(&mut Queue, &mut QueueRegs)> {
        let setup = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        if self.status != setup {
            debug!(
                status = self.status,
                "virtio-mmio: queue write outside queue setup ignored"
            );
            return None;
        }
        let index = usize::try_from(self.queue_sel).ok()?;
        let queue = self.queues.get_mut(index)?;
        let regs = self.queue_regs.get_mut(index)?;
        Some((queue, regs))
    }

    /// Handles a guest read of `data.len()` bytes at `offset` in the window.
    pub fn bus_read(&mut self, offset: u64, data: &mut [u8]) {
        self.note_worker_failure();
        if offset >= CONFIG_SPACE_OFFSET {
            if let Some(config_offset) = offset.checked_sub(CONFIG_SPACE_OFFSET) {
                self.device.common().read_config(config_offset, data);
            }
            return;
        }
        data.fill(0);
        if data.len() != 4 || !offset.is_multiple_of(4) {
            debug!(
                offset,
                len = data.len(),
                "virtio-mmio: unaligned register read ignored"
            );
            return;
        }
        let value = self.read_register(offset);
        data.copy_from_slice(&value.to_le_bytes());
    }

    fn read_register(&self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            // No shared memory regions: a length of all ones means "absent".
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => {
                debug!(
                    offset,
                    "virtio-mmio: read of unknown or write-only register"
                );
                0
            }
        }
    }

    /// Handles a guest write of `data` at `offset` in the window.
    pub fn bus_write(&mut self, offset: u64, data: &[u8]) {
        self.note_worker_failure();
        if offset >= CONFIG_SPACE_OFFSET {
            self.write_config(offset, data);
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            debug!(
                offset,
                len = data.len(),
                "virtio-mmio: non 32-bit register write ignored"
            );
            return;
        };
        if !offset.is_multiple_of(4) {
            debug!(offset, "virtio-mmio: unaligned register write ignored");
            return;
        }
        let value = u32::from_le_bytes(bytes);
        self.write_register(offset, value);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if self.status & STATUS_DRIVER == 0 || self.status & STATUS_DEVICE_NEEDS_RESET != 0 {
            debug!(
                status = self.status,
                "virtio-mmio: config write without a driver ignored"
            );
            return;
        }
        if let Some(config_offset) = offset.checked_sub(CONFIG_SPACE_OFFSET) {
            self.device.write_config(config_offset, data);
            self.config_generation = self.config_generation.wrapping_add(1);
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => {
                if let Some((q, regs)) = self.selected_queue_for_setup() {
                    let size = u16::try_from(value).ok();
                    // Refused unless a power of two no larger than the maximum.
                    let refused = size.is_none_or(|size| q.try_set_size(size).is_err());
                    regs.size_bad = refused;
                    if refused {
                        debug!(value, "virtio-mmio: invalid queue size");
                    }
                }
            }
            reg::QUEUE_READY => self.write_queue_ready(value),
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            reg::QUEUE_DESC_LOW => self.set_queue_addr(RingPart::Desc, Half::Low, value),
            reg::QUEUE_DESC_HIGH => self.set_queue_addr(RingPart::Desc, Half::High, value),
            reg::QUEUE_AVAIL_LOW => self.set_queue_addr(RingPart::Avail, Half::Low, value),
            reg::QUEUE_AVAIL_HIGH => self.set_queue_addr(RingPart::Avail, Half::High, value),
            reg::QUEUE_USED_LOW => self.set_queue_addr(RingPart::Used, Half::Low, value),
            reg::QUEUE_USED_HIGH => self.set_queue_addr(RingPart::Used, Half::High, value),
            reg::SHM_SEL => {}
            _ => debug!(
                offset,
                value, "virtio-mmio: write to unknown or read-only register ignored"
            ),
        }
    }

    fn set_queue_addr(&mut self, part: RingPart, half: Half, value: u32) {
        let Some((q, regs)) = self.selected_queue_for_setup() else {
            return;
        };
        if q.ready() {
            debug!("virtio-mmio: ring address write on a ready queue ignored");
            return;
        }
        // Raw register value; alignment and range are checked at QueueReady.
        let Some(slot) = regs.addr.get_mut(part as usize) else {
            return;
        };
        *slot = match half {
            Half::Low => (*slot & !0xffff_ffff) | u64::from(value),
            Half::High => (*slot & 0xffff_ffff) | (u64::from(value) << 32),
        };
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status != STATUS_ACKNOWLEDGE | STATUS_DRIVER {
            debug!(
                status = self.status,
                "virtio-mmio: driver features written outside negotiation"
            );
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value),
            1 => {
                self.driver_features =
                    (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
            }
            sel => debug!(
                sel,
                "virtio-mmio: driver features page out of range ignored"
            ),
        }
    }

    fn write_queue_ready(&mut self, value: u32) {
        let mem = self.mem.clone();
        let Some((q, regs)) = self.selected_queue_for_setup() else {
            return;
        };
        match value {
            0 => q.set_ready(false),
            1 => {
                let [desc, avail, used] = regs.addr.map(GuestAddress);
                let aligned = q.try_set_desc_table_address(desc).is_ok()
                    && q.try_set_avail_ring_address(avail).is_ok()
                    && q.try_set_used_ring_address(used).is_ok();
                q.set_ready(true);
                if regs.size_bad || !aligned || !queue_is_sound(q, &mem) {
                    debug!("virtio-mmio: queue configuration rejected (size or rings)");
                    q.set_ready(false);
                }
            }
            _ => debug!(value, "virtio-mmio: bad QueueReady value ignored"),
        }
    }

    fn notify(&mut self, value: u32) {
        let evt = usize::try_from(value)
            .ok()
            .and_then(|i| self.queue_evts.get(i));
        match evt {
            Some(evt) => {
                if let Err(e) = evt.write(1) {
                    if let Some(suppressed) = self.device.common().guest_log().admit() {
                        warn!(error = %e, suppressed, "virtio-mmio: cannot signal queue eventfd");
                    }
                }
            }
            None => debug!(value, "virtio-mmio: notify for nonexistent queue ignored"),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        if self.status & STATUS_DEVICE_NEEDS_RESET != 0 {
            debug!(
                value,
                "virtio-mmio: status write while the device needs a reset ignored"
            );
            return;
        }
        if value & STATUS_FAILED != 0 {
            // The driver gave up on the device: remember it; only a reset helps.
            self.status |= STATUS_FAILED;
            return;
        }
        let current = self.status;
        let new_bit = value & !current;
        let keeps_old_bits = value & current == current;
        let ack_driver = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
        match (current, new_bit, keeps_old_bits) {
            (_, 0, true) if value == current => {}
            (0, STATUS_ACKNOWLEDGE, true) => self.status = value,
            (STATUS_ACKNOWLEDGE, STATUS_DRIVER, true) => self.status = value,
            (s, STATUS_FEATURES_OK, true) if s == ack_driver => self.accept_features(value),
            (s, STATUS_DRIVER_OK, true) if s == ack_driver | STATUS_FEATURES_OK => {
                self.activate(value)
            }
            _ => self.fail(format_args!(
                "invalid status transition {current:#x} -> {value:#x}"
            )),
        }
    }

    fn accept_features(&mut self, value: u32) {
        let offered = self.offered_features();
        let unknown = self.driver_features & !offered;
        if unknown != 0 {
            debug!(
                unknown,
                "virtio-mmio: driver accepted features never offered; FEATURES_OK refused"
            );
            return;
        }
        if self.driver_features & feature(VIRTIO_F_VERSION_1) == 0 {
            debug!("virtio-mmio: legacy driver (no VIRTIO_F_VERSION_1); FEATURES_OK refused");
            return;
        }
        self.device.common_mut().ack_features(self.driver_features);
        self.status = value;
    }

    fn activate(&mut self, value: u32) {
        let mem = &self.mem;
        let bad = self
            .queues
            .iter()
            .zip(&self.queue_regs)
            .position(|(q, regs)| regs.size_bad || !queue_is_sound(q, mem));
        if let Some(index) = bad {
            self.fail(format_args!(
                "queue {index} not ready or invalid at DRIVER_OK"
            ));
            return;
        }
        let mut active = Vec::with_capacity(self.queues.len());
        for (queue, evt) in self.queues.iter().zip(&self.queue_evts) {
            let notify = match evt.try_clone() {
                Ok(evt) => evt,
                Err(e) => {
                    self.fail(format_args!("cannot clone queue eventfd: {e}"));
                    return;
                }
            };
            match copy_queue(queue) {
                Some(queue) => active.push(ActiveQueue { queue, notify }),
                None => {
                    self.fail(format_args!("cannot copy queue state"));
                    return;
                }
            }
        }
        let name = self.device.common().name();
        let link = GuestLink::new(name, self.mem.clone(), self.interrupt.clone());
        let failure = link.failure().clone();
        match self.device.activate(link, active) {
            Ok(()) => {
                self.status = value;
                self.active = true;
                self.worker_failure = Some(failure);
            }
            Err(e) => self.fail(format_args!("device activation failed: {e}")),
        }
    }

    /// Marks the device as needing a reset and tells the driver. The driver
    /// can cause this at will: the log line goes through the device's
    /// [`VirtioCommon::guest_log`](crate::VirtioCommon::guest_log).
    fn fail(&mut self, why: std::fmt::Arguments<'_>) {
        let common = self.device.common();
        if let Some(suppressed) = common.guest_log().admit() {
            warn!(
                device = common.name(),
                suppressed, "virtio-mmio: {why}; device needs reset"
            );
        }
        self.status |= STATUS_DEVICE_NEEDS_RESET;
        if let Err(e) = self.interrupt.signal_config_change() {
            if let Some(suppressed) = self.device.common().guest_log().admit() {
                warn!(error = %e, suppressed, "virtio-mmio: cannot raise config interrupt");
            }
        }
    }

    fn reset(&mut self) {
        if self.active {
            self.device.reset();
            self.active = false;
        }
        for q in &mut self.queues {
            q.reset();
        }
        self.queue_regs.fill(QueueRegs::default());
        for evt in &self.queue_evts {
            // Drop notifications still pending from before the reset.
            let _ = evt.read();
        }
        self.interrupt.clear();
        self.worker_failure = None;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.status = 0;
    }
}

/// What the driver wrote to one queue's registers.
#[derive(Clone, Copy, Debug, Default)]
struct QueueRegs {
    /// QueueNum was not a power of two <= max.
    size_bad: bool,
    /// Descriptor table, avail ring, used ring addresses.
    addr: [u64; 3],
}

#[derive(Clone, Copy)]
enum RingPart {
    Desc = 0,
    Avail = 1,
    Used = 2,
}

#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

/// A queue is usable when it is ready, its size is a power of two no larger
/// than its maximum, and all three rings lie wholly inside guest RAM.
fn queue_is_sound(q: &Queue, mem: &GuestMemoryMmap) -> bool {
    let size = q.size();
    let n = u64::from(size);
    // Descriptor table: 16 bytes each; avail: flags, idx, ring, used_event;
    // used: flags, idx, 8-byte elements, avail_event.
    let rings = [
        (q.desc_table(), 16 * n),
        (q.avail_ring(), 6 + 2 * n),
        (q.used_ring(), 6 + 8 * n),
    ];
    size != 0
        && size <= q.max_size()
        && size.is_power_of_two()
        && q.ready()
        && rings.iter().all(|&(addr, len)| {
            usize::try_from(len).is_ok_and(|len| mem.check_range(GuestAddress(addr), len))
        })
}

/// Copies the driver's configuration of `q` into a new queue for the device.
fn copy_queue(q: &Queue) -> Option<Queue> {
    let mut copy = Queue::new(q.max_size()).ok()?;
    copy.try_set_size(q.size()).ok()?;
    copy.try_set_desc_table_address(GuestAddress(q.desc_table()))
        .ok()?;
    copy.try_set_avail_ring_address(GuestAddress(q.avail_ring()))
        .ok()?;
    copy.try_set_used_ring_address(GuestAddress(q.used_ring()))
        .ok()?;
    copy.set_next_avail(q.next_avail());
    copy.set_next_used(q.next_used());
    copy.set_ready(q.ready());
    Some(copy)
}
