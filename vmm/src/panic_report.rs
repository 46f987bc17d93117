//! The process-wide panic hook: every panic is reported (thread name,
//! place, message) to the log; one that nothing catches ends the process
//! at once with [`PANIC_EXIT_CODE`].
//!
//! Without it a panic on a helper thread (the API server, a stdio pump,
//! the signal thread) would end only that thread, silently, and leave the
//! VMM running without it: a container that hangs. Threads that run
//! guest-driven code on purpose catch their panics
//! ([`vmrun_virtio::panic_guard::catch`]: device workers, vCPUs) and report
//! them their own way (DEVICE_NEEDS_RESET; the VM stops with an error).

use vmrun_virtio::log_limit::LogLimit;
use vmrun_virtio::panic_guard;

/// The exit status of a VMM ended by a panic nothing caught.
pub const PANIC_EXIT_CODE: i32 = 70;

/// Installs the hook (once per process; later calls replace it).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("an unnamed thread");
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = panic_guard::message(info.payload());
        let line = format!("thread '{name}' panicked{place}: {message}");
        let caught = panic_guard::is_caught_here();
        let line = if caught {
            line
        } else {
            format!("{line}; vmrun stops")
        };
        // A caught panic may be one a guest can repeat at will (reset the
        // device, trigger it again): those lines share one budget.
        static CAUGHT: LogLimit = LogLimit::new();
        let suppressed = if caught {
            match CAUGHT.admit() {
                Some(n) => n,
                None => return,
            }
        } else {
            0
        };
        if tracing::dispatcher::has_been_set() {
            tracing::error!(suppressed, "{line}");
        } else {
            eprintln!("vmrun: error: {line}");
        }
        if !caught {
            crate::fatal_log::append_error(&line);
            std::process::exit(PANIC_EXIT_CODE);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Set in the child the tests below start (this test binary again).
    const CHILD_ENV: &str = "VMRUN_PANIC_REPORT_CHILD";

    /// In the child: install the hook, then panic where the child says.
    fn child_main(how: &str) {
        install();
        match how {
            "helper-thread" => {
                std::thread::Builder::new()
                    .name("api-server".into())
                    .spawn(|| panic!("socket table corrupt"))
                    .unwrap();
                // The hook must end the process; a silently dead thread
                // would leave this one sleeping until the test's limit.
                std::thread::sleep(std::time::Duration::from_secs(60));
                std::process::exit(0);
            }
            "caught" => {
                let caught = std::thread::Builder::new()
                    .name("virtio-blk".into())
                    .spawn(|| panic_guard::catch(|| -> () { panic!("bad descriptor") }))
                    .unwrap()
                    .join()
                    .unwrap();
                assert_eq!(caught, Err("bad descriptor".to_string()));
                std::process::exit(0);
            }
            other => panic!("unknown child mode {other}"),
        }
    }

    fn run_child(test: &str, how: &str) -> std::process::Output {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, how)
            .output()
            .unwrap()
    }

    #[test]
    fn an_uncaught_panic_on_any_thread_ends_the_process_naming_it() {
        if let Ok(how) = std::env::var(CHILD_ENV) {
            return child_main(&how);
        }
        let out = run_child(
            "panic_report::tests::an_uncaught_panic_on_any_thread_ends_the_process_naming_it",
            "helper-thread",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(PANIC_EXIT_CODE), "{stderr}");
        assert!(
            stderr.contains("thread 'api-server' panicked at ")
                && stderr.contains("socket table corrupt; vmrun stops"),
            "{stderr}"
        );
    }

    #[test]
    fn a_caught_panic_is_reported_and_the_process_goes_on() {
        if let Ok(how) = std::env::var(CHILD_ENV) {
            return child_main(&how);
        }
        let out = run_child(
            "panic_report::tests::a_caught_panic_is_reported_and_the_process_goes_on",
            "caught",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("thread 'virtio-blk' panicked at ")
                && stderr.contains("bad descriptor")
                && !stderr.contains("vmrun stops"),
            "{stderr}"
        );
    }
}
