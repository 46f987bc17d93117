//! The guest kernel command line.

use linux_loader::cmdline::Cmdline;
use vm_memory::GuestAddress;

use crate::arch::x86_64::layout::CMDLINE_MAX_SIZE;

/// The command line `vmrun boot` uses when none is given (team contract 3).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off nomodule quiet";

/// A virtio-mmio device to announce with `virtio_mmio.device=<size>@<base>:<irq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Size of the device's MMIO window.
    pub size: u64,
    /// Guest physical base of the window.
    pub base: u64,
    /// The device's interrupt line (GSI).
    pub irq: u32,
}

/// Errors building the command line.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    /// The text is not a valid command line (too long, control characters...).
    #[error("invalid kernel command line (at most {} bytes of printable ASCII)", CMDLINE_MAX_SIZE - 1)]
    Invalid(#[source] linux_loader::cmdline::Error),
}

/// Builds the command line: `base`, then one `virtio_mmio.device=` per device.
pub fn build_cmdline(base: &str, devices: &[VirtioMmioDevice]) -> Result<Cmdline, CmdlineError> {
    let mut cmdline = Cmdline::new(CMDLINE_MAX_SIZE).map_err(CmdlineError::Invalid)?;
    let base = base.trim();
    if !base.is_empty() {
        cmdline.insert_str(base).map_err(CmdlineError::Invalid)?;
    }
    for dev in devices {
        cmdline
            .add_virtio_mmio_device(dev.size, GuestAddress(dev.base), dev.irq, None)
            .map_err(CmdlineError::Invalid)?;
    }
    Ok(cmdline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(c: &Cmdline) -> String {
        c.as_cstring().unwrap().into_string().unwrap()
    }

    #[test]
    fn default_then_virtio_devices() {
        let devs = [
            VirtioMmioDevice {
                size: 0x1000,
                base: 0xc000_0000,
                irq: 5,
            },
            VirtioMmioDevice {
                size: 0x1000,
                base: 0xc000_1000,
                irq: 6,
            },
        ];
        let c = build_cmdline(DEFAULT_CMDLINE, &devs).unwrap();
        assert_eq!(
            text(&c),
            format!(
                "{DEFAULT_CMDLINE} virtio_mmio.device=4K@0xc0000000:5 virtio_mmio.device=4K@0xc0001000:6"
            )
        );
    }

    #[test]
    fn contract_words_are_in_the_default() {
        for word in ["console=ttyS0", "reboot=k", "panic=-1", "pci=off"] {
            assert!(DEFAULT_CMDLINE.split(' ').any(|w| w == word), "{word}");
        }
    }

    #[test]
    fn too_long_or_invalid_is_rejected() {
        let long = "a".repeat(CMDLINE_MAX_SIZE);
        assert!(build_cmdline(&long, &[]).is_err());
        assert!(build_cmdline("console=ttyS0\u{7}", &[]).is_err());
        assert_eq!(text(&build_cmdline("  ", &[]).unwrap()), "");
    }
}
