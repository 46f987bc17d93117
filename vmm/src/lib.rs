//! vmrun: a runc-compatible runtime that runs OCI containers in KVM microVMs
//! (host side: VMM, CLI, runtime).
//!
//! Layout: [`vstate`] (all KVM ioctls), [`arch`] (x86_64 boot structures),
//! [`devices`] (buses, serial, i8042, boot timer), [`machine`] (build, load,
//! run), [`timings`], [`check`] (host capability), [`cli`] (the `vmrun` verbs).

pub mod arch;
pub mod bench;
pub mod check;
pub mod cli;
pub mod cmdline;
pub mod devices;
pub mod exit;
pub mod fatal_log;
pub mod machine;
pub mod panic_report;
pub mod runtime;
pub mod seccomp;
pub mod timings;
pub mod vstate;

/// Formats an error and all its sources as `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
