//! virtio-mmio transport and virtio devices as plain functions over guest memory.
