use std::time::{Duration, Instant};

use super::log_capture::capture;
use crate::common::VirtioCommon;
use crate::defs::*;
use crate::log_limit::{LogLimit, DEFAULT_BURST, DEFAULT_INTERVAL};
use crate::log_limited;
use crate::mmio::MmioTransport;
use crate::testing::*;
use crate::{ActivateError, ActiveQueue, GuestLink, VirtioDevice};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_burst_passes_then_lines_are_counted_and_reported_next_interval() {
    let limit = LogLimit::with_budget(3, 10 * SECOND);
    let t0 = Duration::ZERO;
    for _ in 0..3 {
        assert_eq!(limit.admit_at(t0), Some(0), "the burst passes");
    }
    for i in 0..5 {
        assert_eq!(limit.admit_at(t0 + i * SECOND), None, "over budget");
    }
    // Still the same interval: suppressed.
    assert_eq!(limit.admit_at(t0 + 9 * SECOND), None);
    // Next interval: the first line reports the 6 suppressed, then a new burst.
    let t1 = t0 + 10 * SECOND;
    assert_eq!(limit.admit_at(t1), Some(6));
    assert_eq!(limit.admit_at(t1), Some(0), "the count is reported once");
    assert_eq!(limit.admit_at(t1), Some(0));
    assert_eq!(limit.admit_at(t1), None);
    // A quiet stretch of many intervals: one new interval, not a backlog.
    let t2 = t1 + 1000 * SECOND;
    assert_eq!(limit.admit_at(t2), Some(1));
    assert_eq!(limit.admit_at(t2), Some(0));
    assert_eq!(limit.admit_at(t2), Some(0));
    assert_eq!(limit.admit_at(t2), None);
}

#[test]
fn a_zero_burst_logs_nothing_and_defaults_are_what_they_say() {
    let mute = LogLimit::with_budget(0, SECOND);
    assert_eq!(mute.admit_at(Duration::ZERO), None);
    assert_eq!(mute.admit_at(100 * SECOND), None);
    static DEFAULT: LogLimit = LogLimit::new();
    assert_eq!(DEFAULT.burst(), DEFAULT_BURST);
    let t = Duration::from_secs(5);
    let passed = (0..1000).filter(|_| DEFAULT.admit_at(t).is_some()).count();
    assert_eq!(passed as u64, DEFAULT_BURST);
    assert_eq!(
        DEFAULT.admit_at(t + DEFAULT_INTERVAL),
        Some(1000 - DEFAULT_BURST)
    );
}

/// Upper bound of the lines a default limiter passes during `elapsed`: one
/// burst per interval the time span can touch.
fn default_bound(elapsed: Duration) -> u64 {
    let intervals = elapsed.as_nanos() / DEFAULT_INTERVAL.as_nanos() + 2;
    DEFAULT_BURST * u64::try_from(intervals).unwrap()
}

fn hostile_site(i: u32) {
    log_limited!(warn, i, "guest did something odd");
}

#[test]
fn the_macro_keeps_a_budget_per_call_site() {
    let start = Instant::now();
    let ((), lines) = capture(|| {
        for i in 0..10_000 {
            hostile_site(i);
        }
    });
    let bound = default_bound(start.elapsed());
    let n = lines.len() as u64;
    assert!(n >= DEFAULT_BURST, "the burst passes: {n}");
    assert!(n <= bound, "{n} lines for 10000 calls (bound {bound})");
    assert_eq!(lines[0].field("suppressed"), Some("0"));
    assert_eq!(lines[0].field("i"), Some("0"));
}

/// A device with a read-only config space and no worker.
struct Inert(VirtioCommon);

impl VirtioDevice for Inert {
    fn common(&self) -> &VirtioCommon {
        &self.0
    }
    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.0
    }
    fn activate(&mut self, _: GuestLink, _: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        Ok(())
    }
}

#[test]
fn a_guest_flooding_bad_status_and_config_writes_gets_a_few_log_lines() {
    let dev = Inert(VirtioCommon::new(42, "inert", &[8], 0, vec![0; 8]));
    let mut t = MmioTransport::new(memory(), Box::new(dev)).unwrap();
    let start = Instant::now();
    let ((), lines) = capture(|| {
        for _ in 0..100_000 {
            // Reset, then an invalid transition: the device needs a reset.
            mmio_write(&mut t, 0x70, 0);
            mmio_write(&mut t, 0x70, STATUS_ACKNOWLEDGE);
            mmio_write(&mut t, 0x70, STATUS_ACKNOWLEDGE | STATUS_DRIVER_OK);
        }
        assert_ne!(t.status() & STATUS_DEVICE_NEEDS_RESET, 0);
        mmio_write(&mut t, 0x70, 0);
        mmio_write(&mut t, 0x70, STATUS_ACKNOWLEDGE);
        mmio_write(&mut t, 0x70, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        for i in 0..100_000u32 {
            // Writes to a read-only config space.
            mmio_write(&mut t, 0x100 + u64::from(i % 8), i);
        }
    });
    // Both floods share the device's budget.
    let bound = default_bound(start.elapsed());
    let n = lines.len() as u64;
    assert!(n >= DEFAULT_BURST, "the first lines are logged: {n}");
    assert!(
        n <= bound,
        "{n} log lines for 200000 bad writes (bound {bound})"
    );
    assert!(lines[0].fields.contains("invalid status transition"));
    assert_eq!(lines[0].field("device"), Some("\"inert\""));
}
