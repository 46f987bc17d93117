//! Constants of the virtio 1.x specification used by the transport and devices.

/// Device status bit: the guest noticed the device.
pub const STATUS_ACKNOWLEDGE: u32 = 1;
/// Device status bit: the guest knows how to drive the device.
pub const STATUS_DRIVER: u32 = 2;
/// Device status bit: the driver is set up and ready to drive the device.
pub const STATUS_DRIVER_OK: u32 = 4;
/// Device status bit: feature negotiation is complete.
pub const STATUS_FEATURES_OK: u32 = 8;
/// Device status bit: the device hit an error and needs a reset.
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;
/// Device status bit: the guest gave up on the device.
pub const STATUS_FAILED: u32 = 128;

/// Feature bit: the device complies with virtio 1.0+ (required here).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// Feature bit: indirect descriptors are supported.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// Feature bit: `used_event`/`avail_event` notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;

/// Interrupt status bit: a used ring was updated.
pub const INT_VRING: u32 = 1;
/// Interrupt status bit: the configuration space changed.
pub const INT_CONFIG: u32 = 2;

/// Device id of a network device.
pub const TYPE_NET: u32 = 1;
/// Device id of a block device.
pub const TYPE_BLOCK: u32 = 2;
/// Device id of a vsock device.
pub const TYPE_VSOCK: u32 = 19;
/// Device id of a virtio-fs device.
pub const TYPE_FS: u32 = 26;

/// Returns `1 << bit` as a feature mask.
pub const fn feature(bit: u32) -> u64 {
    1u64 << bit
}
