//! Boot-progress markers the agent writes to the VMM's boot-timer port.
//!
//! The guest agent (PID 1) writes one byte to [`PORT`] with `outb` when it
//! reaches a phase; the VMM timestamps the write on its host monotonic clock.
//! Any other value is ignored by the VMM (the guest is untrusted).

/// I/O port of the boot-timer device.
pub const PORT: u16 = 0x440;

/// A phase of guest start-up the agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Marker {
    /// The agent's `main` started as PID 1 (the kernel reached init).
    InitReached = 1,
    /// The agent finished its PID-1 set-up and is ready to serve.
    AgentReady = 2,
    /// The container process was exec'd.
    ContainerStarted = 3,
}

impl Marker {
    /// Decodes a byte written by the guest; `None` for anything unknown.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::InitReached),
            2 => Some(Self::AgentReady),
            3 => Some(Self::ContainerStarted),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown() {
        for m in [
            Marker::InitReached,
            Marker::AgentReady,
            Marker::ContainerStarted,
        ] {
            assert_eq!(Marker::from_byte(m as u8), Some(m));
        }
        assert_eq!(Marker::from_byte(0), None);
        assert_eq!(Marker::from_byte(255), None);
    }
}
