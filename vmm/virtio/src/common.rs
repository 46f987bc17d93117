//! What every device model repeats, written once: its identity (type,
//! queue sizes), feature negotiation, read-only config space, the worker
//! thread started at activation with the queues handed over, its reset,
//! and the link a running worker has to the guest (memory + interrupt).
//!
//! A device embeds a [`VirtioCommon`], returns it from
//! [`VirtioDevice::common`](crate::VirtioDevice::common), and implements
//! only `activate`, usually as one call to [`VirtioCommon::activate`] that
//! builds its [`EventHandler`] from a [`GuestLink`] and its queues.

use crate::activation::{expect_queues, ActivateError, ActiveQueue, GuestLink};
use crate::log_limit::LogLimit;
use crate::worker::{EventHandler, WorkerSlot};

/// The state every device shares (see the module docs).
#[derive(Debug)]
pub struct VirtioCommon {
    device_type: u32,
    name: &'static str,
    queue_max_sizes: Vec<u16>,
    avail_features: u64,
    acked_features: u64,
    config: Vec<u8>,
    worker: WorkerSlot,
    guest_log: LogLimit,
}

impl VirtioCommon {
    /// A device of virtio type `device_type` (e.g. [`crate::defs::TYPE_BLOCK`])
    /// named `name` (its worker thread and log prefix, e.g. `virtio-blk`)
    /// with one queue per entry of `queue_max_sizes`, offering
    /// `avail_features` and exposing `config` as its config space.
    pub fn new(
        device_type: u32,
        name: &'static str,
        queue_max_sizes: &[u16],
        avail_features: u64,
        config: Vec<u8>,
    ) -> Self {
        Self {
            device_type,
            name,
            queue_max_sizes: queue_max_sizes.to_vec(),
            avail_features,
            acked_features: 0,
            config,
            worker: WorkerSlot::default(),
            guest_log: LogLimit::new(),
        }
    }

    /// The virtio device id.
    pub fn device_type(&self) -> u32 {
        self.device_type
    }

    /// The device's name (worker thread name, log prefix).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Maximum size of each of the device's queues (their count is the queue count).
    pub fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_max_sizes
    }

    /// The budget of log lines the driver can cause on this device through
    /// its transport (bad status or config writes, failed notifies).
    pub fn guest_log(&self) -> &LogLimit {
        &self.guest_log
    }

    /// Features the device offers.
    pub fn avail_features(&self) -> u64 {
        self.avail_features
    }

    /// Features the driver accepted (0 until FEATURES_OK, and after a reset).
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Records the features the driver accepted; bits never offered are dropped.
    pub fn ack_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features;
    }

    /// Reads the config space at `offset`; bytes past its end read as 0.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    /// The config space, for a device whose config space the driver may write.
    pub fn config_mut(&mut self) -> &mut [u8] {
        &mut self.config
    }

    /// Activates the device: checks that the driver handed exactly `N`
    /// queues, builds the worker's handler with `handler` and starts it on a
    /// thread named after the device, which reports a panic through the
    /// link's [`GuestLink::failure`].
    pub fn activate<const N: usize, H: EventHandler>(
        &mut self,
        link: GuestLink,
        queues: Vec<ActiveQueue>,
        handler: impl FnOnce(GuestLink, [ActiveQueue; N]) -> Result<H, ActivateError>,
    ) -> Result<(), ActivateError> {
        let queues = expect_queues(queues)?;
        let failure = link.failure().clone();
        self.worker
            .start(self.name, failure, handler(link, queues)?)
    }

    /// Whether the worker runs (between activation and reset).
    pub fn is_active(&self) -> bool {
        self.worker.is_running()
    }

    /// Stops the worker (dropping the queues it owned) and forgets the
    /// negotiated features, so the device can be activated again.
    pub fn reset(&mut self) {
        self.worker.stop();
        self.acked_features = 0;
    }
}

/// Copies `config[offset..]` into `data`, zero-filling whatever lies outside
/// `config`. Never panics, whatever the offset and length.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .map_or(0, |b| *b);
    }
}
