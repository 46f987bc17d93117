//! A CMOS/RTC placeholder at ports 0x70-0x71 that reads as all zeros.
//!
//! The microVM has no RTC (the guest takes its time from kvmclock). Without
//! anything at these ports, reads would float to 0xff, which a guest RTC
//! driver sees as "update in progress" forever and spins on (a Debian
//! kernel's rtc_cmos soft-locks for tens of seconds). Zeros end that at once.

use super::bus::BusDevice;

/// I/O port of the CMOS index register.
pub const CMOS_PORT_BASE: u16 = 0x70;
/// Index + data ports.
pub const CMOS_PORT_SIZE: u16 = 2;

/// The placeholder device.
#[derive(Debug, Default)]
pub struct CmosPlaceholder {
    index: u8,
}

impl BusDevice for CmosPlaceholder {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (0, [index]) = (offset, data) {
            // Bit 7 is the NMI-disable bit, not part of the index.
            self.index = index & 0x7f;
            tracing::trace!(index = self.index, "CMOS index selected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_registers_never_show_update_in_progress() {
        let mut dev = CmosPlaceholder::default();
        dev.write(0, &[0x8a]); // status A, NMI disabled
        assert_eq!(dev.index, 0x0a);
        let mut b = [0xffu8];
        dev.read(1, &mut b);
        assert_eq!(b[0] & 0x80, 0, "UIP clear");
    }
}
