//! The i8042 keyboard controller, kept for one thing: the guest's reset line
//! (0xFE written to port 0x64, what Linux does with `reboot=k`) ends the VM
//! cleanly.

use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use super::bus::BusDevice;
use crate::exit::{ExitState, VmExit};

/// Turns the i8042 reset into [`VmExit::Reset`].
#[derive(Debug)]
pub struct ResetTrigger(Arc<ExitState>);

impl Trigger for ResetTrigger {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        tracing::debug!("guest reset through the i8042");
        self.0.report(VmExit::Reset);
        Ok(())
    }
}

/// The i8042 on ports 0x60..=0x64.
pub struct I8042 {
    dev: I8042Device<ResetTrigger>,
}

impl I8042 {
    /// An i8042 whose reset line reports to `exit`.
    pub fn new(exit: Arc<ExitState>) -> Self {
        Self {
            dev: I8042Device::new(ResetTrigger(exit)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(off), [byte]) => *byte = self.dev.read(off),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [byte]) = (u8::try_from(offset), data) {
            let _ = self.dev.write(off, *byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_reports_clean_exit_and_others_do_not() {
        let exit = Arc::new(ExitState::new());
        let mut dev = I8042::new(exit.clone());
        dev.write(0, &[0xfe]);
        dev.write(4, &[0xfd]);
        dev.write(4, &[0xfe, 0xfe]);
        assert_eq!(exit.get(), None);
        dev.write(4, &[0xfe]);
        assert_eq!(exit.get(), Some(VmExit::Reset));
    }
}
