//! The one rate limiter for log lines a guest can trigger.
//!
//! A guest can make the VMM hit a log line as often as it likes (a bad
//! status write, a config write, a notify on a broken queue, an unclaimed
//! port access, ...). Every such line goes through a [`LogLimit`]: the first
//! [`LogLimit::burst`] lines of each interval pass, the rest are counted,
//! and the next line that passes reports how many were suppressed. A flood
//! therefore costs at most `burst` lines per interval per limiter.
//!
//! A limiter is a few atomics, needs no allocation per call and is `const`
//! constructible: use one per log site through [`log_limited!`](crate::log_limited) (a static
//! at the call site), or keep one in a struct field when the budget belongs
//! to one device. Accounting under concurrent callers is approximate (a
//! line may pass or be counted twice at a window edge), never unbounded.
//!
//! ```
//! use vmrun_virtio::log_limit::LogLimit;
//! static BAD_WRITES: LogLimit = LogLimit::new();
//! if let Some(suppressed) = BAD_WRITES.admit() {
//!     tracing::warn!(suppressed, "guest wrote something odd");
//! }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Lines passed per interval by [`LogLimit::new`].
pub const DEFAULT_BURST: u64 = 10;
/// The interval of [`LogLimit::new`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// A log-line budget: a burst per interval, counting what it suppresses
/// (see the module docs).
#[derive(Debug)]
pub struct LogLimit {
    burst: u64,
    interval_nanos: u64,
    /// Start of the current interval, in nanoseconds since [`epoch`].
    window_start: AtomicU64,
    /// Lines asked for in the current interval (passed or not).
    in_window: AtomicU64,
    /// Lines suppressed since the last one that passed.
    suppressed: AtomicU64,
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimit {
    /// [`DEFAULT_BURST`] lines per [`DEFAULT_INTERVAL`].
    pub const fn new() -> Self {
        Self::with_budget(DEFAULT_BURST, DEFAULT_INTERVAL)
    }

    /// `burst` lines per `interval` (an interval longer than ~584 years is
    /// taken as that long).
    pub const fn with_budget(burst: u64, interval: Duration) -> Self {
        let nanos = interval.as_nanos();
        Self {
            burst,
            interval_nanos: if nanos > u64::MAX as u128 {
                u64::MAX
            } else {
                nanos as u64
            },
            window_start: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Lines passed per interval.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Asks to log one line now. `Some(n)`: log it, reporting `n` lines
    /// suppressed since the last one logged; `None`: skip it (it is counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(since_epoch())
    }

    /// [`LogLimit::admit`] at time `now`, measured from any fixed origin
    /// that never goes backwards for this limiter (for tests and callers
    /// with their own clock).
    pub fn admit_at(&self, now: Duration) -> Option<u64> {
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let start = self.window_start.load(Ordering::Acquire);
        if now.saturating_sub(start) >= self.interval_nanos
            && self
                .window_start
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.in_window.store(0, Ordering::Release);
        }
        if self.in_window.fetch_add(1, Ordering::AcqRel) < self.burst {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

/// Time since the first use of any limiter in this process.
fn since_epoch() -> Duration {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed()
}

/// A `tracing` event through a [`LogLimit`] of its own (a static at the
/// call site, default budget), with an added `suppressed` field: the lines
/// this site skipped since it last logged. The first argument is the
/// `tracing` macro to use (`warn`, `info`, `debug`, ...), the rest is what
/// that macro takes (fields, then the message). The calling crate must
/// depend on `tracing`.
///
/// ```
/// # let e = "boom";
/// vmrun_virtio::log_limited!(warn, error = %e, "device: request failed");
/// ```
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new();
        if let Some(suppressed) = LIMIT.admit() {
            ::tracing::$level!(suppressed, $($arg)+);
        }
    }};
}
