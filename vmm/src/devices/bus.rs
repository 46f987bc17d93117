//! Address-range buses for port I/O and MMIO.
//!
//! A device is mounted on a `[base, base + len)` range; an access is routed
//! to it only if it lies entirely inside that range. Anything else is
//! unclaimed: the caller logs it and ignores it (reads see all-ones).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// A device on a [`Bus`]. Must never panic on guest-chosen offsets or sizes.
pub trait BusDevice: Send {
    /// Guest read of `data.len()` bytes at `offset` into the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest write of `data` at `offset` into the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else needs it (event loops).
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors mounting a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The range is empty or wraps around.
    #[error("invalid bus range {base:#x}+{len:#x}")]
    InvalidRange {
        /// Start of the range.
        base: u64,
        /// Length of the range.
        len: u64,
    },
    /// The range overlaps a device already mounted.
    #[error("bus range {base:#x}+{len:#x} overlaps a mounted device")]
    Overlap {
        /// Start of the range.
        base: u64,
        /// Length of the range.
        len: u64,
    },
}

struct Mount {
    len: u64,
    device: SharedDevice,
}

/// A bus: non-overlapping ranges, each with one device.
pub struct Bus {
    name: &'static str,
    mounts: RwLock<BTreeMap<u64, Mount>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<(u64, u64)> = self
            .mounts
            .read()
            .map(|m| m.iter().map(|(b, m)| (*b, m.len)).collect())
            .unwrap_or_default();
        f.debug_struct("Bus")
            .field("name", &self.name)
            .field("ranges", &ranges)
            .finish()
    }
}

impl Bus {
    /// An empty bus; `name` appears in logs ("pio", "mmio").
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            mounts: RwLock::new(BTreeMap::new()),
        }
    }

    /// The bus's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Mounts `device` on `[base, base + len)`.
    pub fn insert(&self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        let mut mounts = self.mounts.write().unwrap_or_else(|p| p.into_inner());
        let before_overlaps = mounts
            .range(..=base)
            .next_back()
            .is_some_and(|(b, m)| b + m.len > base);
        let after_overlaps = mounts.range(base..end).next().is_some();
        if before_overlaps || after_overlaps {
            return Err(BusError::Overlap { base, len });
        }
        mounts.insert(base, Mount { len, device });
        Ok(())
    }

    /// The device whose range holds the whole access `[addr, addr + size)`,
    /// with the offset of `addr` inside it.
    fn resolve(&self, addr: u64, size: usize) -> Option<(SharedDevice, u64)> {
        let mounts = self.mounts.read().unwrap_or_else(|p| p.into_inner());
        let (base, mount) = mounts.range(..=addr).next_back()?;
        let offset = addr - base;
        let end = offset.checked_add(size as u64)?;
        (end <= mount.len).then(|| (mount.device.clone(), offset))
    }

    /// Routes a read; returns false (leaving `data` untouched) if no device
    /// claims the whole access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((device, offset)) => {
                device
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Routes a write; returns false if no device claims the whole access.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((device, offset)) => {
                device
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8 + 0x10);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_inside_range_with_offset() {
        let bus = Bus::new("test");
        let dev = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x3f8, 8, dev.clone()).unwrap();
        assert!(bus.write(0x3f9, &[7]));
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b[0], 0x12);
        assert_eq!(dev.lock().unwrap().writes, vec![(1, vec![7])]);
    }

    #[test]
    fn rejects_accesses_crossing_the_end_or_outside() {
        let bus = Bus::new("test");
        bus.insert(0x1000, 0x10, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut four = [0xffu8; 4];
        assert!(!bus.read(0x100e, &mut four), "crosses the end");
        assert_eq!(four, [0xff; 4]);
        assert!(!bus.write(0xfff, &[1]), "below");
        assert!(!bus.write(0x1010, &[1]), "just past");
        assert!(!bus.write(u64::MAX, &[1, 2]), "address wrap");
        assert!(bus.write(0x100c, &[1, 2, 3, 4]), "last four bytes");
    }

    #[test]
    fn rejects_overlaps_and_empty_ranges() {
        let bus = Bus::new("test");
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x100, 0x10, dev()).unwrap();
        assert!(matches!(
            bus.insert(0x108, 0x10, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0xf8, 0x10, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0x100, 1, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0x200, 0, dev()),
            Err(BusError::InvalidRange { .. })
        ));
        assert!(matches!(
            bus.insert(u64::MAX, 2, dev()),
            Err(BusError::InvalidRange { .. })
        ));
        bus.insert(0x110, 0x10, dev()).unwrap();
        bus.insert(0xf0, 0x10, dev()).unwrap();
    }
}
