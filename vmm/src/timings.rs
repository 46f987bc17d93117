//! Boot phase timestamps on the host monotonic clock, relative to process start.
//!
//! "Process start" is the first call to [`process_start`], which the `vmrun`
//! binary makes as the first thing in `main`.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// The process start instant (set on first call).
pub fn process_start() -> Instant {
    *PROCESS_START.get_or_init(Instant::now)
}

/// A phase of a VM's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The process started.
    ProcessStart,
    /// The KVM VM exists.
    VmCreated,
    /// Kernel, initrd, command line and boot tables are in guest memory.
    KernelLoaded,
    /// The first `KVM_RUN` of the boot vCPU is about to be issued.
    FirstKvmRun,
    /// The guest's init started (boot-timer marker 1).
    InitReached,
    /// The agent finished its set-up (boot-timer marker 2).
    AgentReady,
    /// The agent answered the host's Create: the container exists in the
    /// guest (its rootfs mounted, its init waiting for start).
    ContainerCreated,
    /// The container process was exec'd (boot-timer marker 3).
    ContainerStarted,
    /// The VM stopped.
    Exit,
}

impl Phase {
    /// All phases in order.
    pub const ALL: [Phase; 9] = [
        Phase::ProcessStart,
        Phase::VmCreated,
        Phase::KernelLoaded,
        Phase::FirstKvmRun,
        Phase::InitReached,
        Phase::AgentReady,
        Phase::ContainerCreated,
        Phase::ContainerStarted,
        Phase::Exit,
    ];

    /// The phase's name in reports ("vm_created", ...).
    pub fn name(self) -> &'static str {
        match self {
            Phase::ProcessStart => "process_start",
            Phase::VmCreated => "vm_created",
            Phase::KernelLoaded => "kernel_loaded",
            Phase::FirstKvmRun => "first_kvm_run",
            Phase::InitReached => "init_reached",
            Phase::AgentReady => "agent_ready",
            Phase::ContainerCreated => "container_created",
            Phase::ContainerStarted => "container_started",
            Phase::Exit => "exit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One recorded phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseTime {
    /// Phase name.
    pub name: &'static str,
    /// Milliseconds since process start.
    pub ms: f64,
}

/// The JSON document written by `--timings-json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimingsReport {
    /// Recorded phases in order.
    pub phases: Vec<PhaseTime>,
}

/// Phase timestamps of one VM; each phase keeps its first recording.
#[derive(Debug)]
pub struct Timings {
    origin: Instant,
    marks: Mutex<[Option<Duration>; Phase::ALL.len()]>,
    /// Notified on every new recording ([`Timings::wait_for`]).
    recorded: Condvar,
}

impl Default for Timings {
    fn default() -> Self {
        Self::new(process_start())
    }
}

impl Timings {
    /// Timings relative to `origin`, with `process_start` at 0.
    pub fn new(origin: Instant) -> Self {
        let mut marks = [None; Phase::ALL.len()];
        marks[Phase::ProcessStart.index()] = Some(Duration::ZERO);
        Self {
            origin,
            marks: Mutex::new(marks),
            recorded: Condvar::new(),
        }
    }

    /// Records `phase` now, unless it was recorded before.
    pub fn record(&self, phase: Phase) {
        let now = self.origin.elapsed();
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = marks.get_mut(phase.index()) {
            if slot.is_none() {
                *slot = Some(now);
                self.recorded.notify_all();
            }
        }
    }

    /// Waits up to `timeout` for `phase` to be recorded; whether it is.
    pub fn wait_for(&self, phase: Phase, timeout: Duration) -> bool {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let (marks, _) = self
            .recorded
            .wait_timeout_while(marks, timeout, |m| {
                m.get(phase.index()).copied().flatten().is_none()
            })
            .unwrap_or_else(|p| p.into_inner());
        marks.get(phase.index()).copied().flatten().is_some()
    }

    /// When `phase` was recorded, if it was.
    pub fn get(&self, phase: Phase) -> Option<Duration> {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.get(phase.index()).copied().flatten()
    }

    /// The recorded phases, in phase order.
    pub fn report(&self) -> TimingsReport {
        let phases = Phase::ALL
            .iter()
            .filter_map(|p| {
                self.get(*p).map(|d| PhaseTime {
                    name: p.name(),
                    ms: d.as_secs_f64() * 1000.0,
                })
            })
            .collect();
        TimingsReport { phases }
    }

    /// A human-readable table (one phase per line, ms since process start
    /// and since the previous phase).
    pub fn table(&self) -> String {
        let mut out = format!("{:<18} {:>10} {:>10}\n", "phase", "ms", "+ms");
        let mut prev = 0.0;
        for p in self.report().phases {
            out.push_str(&format!(
                "{:<18} {:>10.2} {:>10.2}\n",
                p.name,
                p.ms,
                p.ms - prev
            ));
            prev = p.ms;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_record_wins_and_report_is_ordered() {
        let t = Timings::new(Instant::now());
        t.record(Phase::Exit);
        t.record(Phase::VmCreated);
        let first = t.get(Phase::VmCreated).unwrap();
        t.record(Phase::VmCreated);
        assert_eq!(t.get(Phase::VmCreated), Some(first));
        let names: Vec<_> = t.report().phases.iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["process_start", "vm_created", "exit"]);
        assert!(t.get(Phase::InitReached).is_none());
    }

    #[test]
    fn wait_for_returns_once_the_phase_is_recorded() {
        let t = std::sync::Arc::new(Timings::new(Instant::now()));
        assert!(!t.wait_for(Phase::AgentReady, Duration::from_millis(10)));
        let recorder = std::sync::Arc::clone(&t);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            recorder.record(Phase::AgentReady);
        });
        assert!(t.wait_for(Phase::AgentReady, Duration::from_secs(30)));
        thread.join().unwrap();
        assert!(t.wait_for(Phase::AgentReady, Duration::ZERO));
    }

    #[test]
    fn json_has_phases_with_names_and_ms() {
        let t = Timings::new(Instant::now());
        t.record(Phase::AgentReady);
        let json = serde_json::to_value(t.report()).unwrap();
        assert_eq!(json["phases"][0]["name"], "process_start");
        assert_eq!(json["phases"][0]["ms"], 0.0);
        assert_eq!(json["phases"][1]["name"], "agent_ready");
        assert!(t.table().contains("agent_ready"));
    }
}
