//! The boot-timer port (`vmrun_protocol::marker::PORT`, 0x440): the guest
//! agent writes one marker byte per phase; the VMM timestamps it. Any
//! guest code can write the port: its log lines are rate-limited.

use std::sync::Arc;

use vmrun_protocol::marker::Marker;
use vmrun_virtio::log_limited;

use super::bus::BusDevice;
use crate::timings::{Phase, Timings};

/// The boot-timer device.
#[derive(Debug)]
pub struct BootTimer {
    timings: Arc<Timings>,
}

impl BootTimer {
    /// A device recording into `timings`.
    pub fn new(timings: Arc<Timings>) -> Self {
        Self { timings }
    }
}

fn phase_of(marker: Marker) -> Phase {
    match marker {
        Marker::InitReached => Phase::InitReached,
        Marker::AgentReady => Phase::AgentReady,
        Marker::ContainerStarted => Phase::ContainerStarted,
    }
}

impl BusDevice for BootTimer {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (0, [byte]) = (offset, data) else {
            return;
        };
        match Marker::from_byte(*byte) {
            Some(marker) => {
                let phase = phase_of(marker);
                self.timings.record(phase);
                log_limited!(info, phase = phase.name(), "boot-timer marker");
            }
            None => log_limited!(debug, "boot-timer: unknown marker byte {byte:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn markers_become_phases_and_junk_is_ignored() {
        let timings = Arc::new(Timings::new(Instant::now()));
        let mut dev = BootTimer::new(timings.clone());
        dev.write(0, &[0x7f]);
        dev.write(0, &[1, 2]);
        assert!(timings.get(Phase::InitReached).is_none());
        dev.write(0, &[Marker::InitReached as u8]);
        dev.write(0, &[Marker::AgentReady as u8]);
        assert!(timings.get(Phase::InitReached).is_some());
        assert!(timings.get(Phase::AgentReady).is_some());
        assert!(timings.get(Phase::ContainerStarted).is_none());
    }
}
