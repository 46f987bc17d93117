//! `vmrun-checker-run`: plays the agent in tests. Runs one bundle through
//! vmrun-isolation with this process's stdio and exits with the
//! container's status (128+N when killed by signal N), like `runc run`.
//!
//! `vmrun-checker-run [--sealed] [--no-pivot] [--preserve-fds N] [--signal-after-start N] [--external-reap]
//!   [--state-dir DIR] --bundle DIR ID`
//!
//! `--sealed` first re-executes from a sealed memfd, as the agent does off
//! its initramfs.
//! With `VMRUN_CHECKER_ATTACK=1` in its environment the binary instead acts
//! as a hostile container payload that tries to overwrite the runtime's
//! binary through /proc/self/exe (CVE-2019-5736 class).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use vmrun_isolation::{run, RunOptions, Stdio};

fn main() {
    if std::env::var_os("VMRUN_CHECKER_ATTACK").is_some() {
        attack();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VMRUN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(msg) => {
            eprintln!("vmrun-checker-run: {msg}");
            std::process::exit(125);
        }
    }
}

/// `a: b: c` for an error and its sources (anyhow's alternate form).
fn error_chain(e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

fn real_main() -> Result<i32, String> {
    let mut args = std::env::args().skip(1);
    let mut bundle = None;
    let mut id = None;
    let mut sealed = false;
    let mut signal_after_start = None;
    let mut external_reap = false;
    let mut opts = RunOptions::new("");
    opts.state_dir = PathBuf::from("/run/vmrun-checker");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sealed" => sealed = true,
            "--no-pivot" => opts.no_pivot = true,
            "--external-reap" => external_reap = true,
            "--signal-after-start" => {
                let n: i32 = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--signal-after-start needs a signal number")?;
                signal_after_start = Some(
                    nix::sys::signal::Signal::try_from(n)
                        .map_err(|e| format!("signal {n}: {e}"))?,
                );
            }
            "--bundle" => bundle = args.next().map(PathBuf::from),
            "--state-dir" => opts.state_dir = args.next().map(PathBuf::from).unwrap_or_default(),
            "--preserve-fds" => {
                opts.preserve_fds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--preserve-fds needs a number")?
            }
            _ if a.starts_with('-') => return Err(format!("unknown flag {a}")),
            _ => id = Some(a),
        }
    }
    if sealed {
        vmrun_isolation::self_exe::ensure_sealed_self_exe().map_err(error_chain)?;
    }
    let bundle = bundle.ok_or("--bundle DIR is required")?;
    opts.id = id.ok_or("container ID is required")?;
    let spec =
        vmrun_isolation::spec::load_spec(&bundle.join("config.json")).map_err(error_chain)?;
    let root = spec.root().as_ref().ok_or("invalid spec: root: missing")?;
    let rootfs = bundle.join(root.path());
    let dup = |fd: std::os::fd::BorrowedFd<'_>| -> Result<OwnedFd, String> {
        fd.try_clone_to_owned()
            .map_err(|e| format!("dup stdio: {e}"))
    };
    let stdio = Stdio {
        stdin: dup(std::io::stdin().as_fd())?,
        stdout: dup(std::io::stdout().as_fd())?,
        stderr: dup(std::io::stderr().as_fd())?,
    };
    let mut container = run(&spec, &rootfs, stdio, &opts).map_err(error_chain)?;
    for w in container.warnings() {
        eprintln!("vmrun-checker-run: warning: {w}");
    }
    if let Some(sig) = signal_after_start {
        container.signal(sig as i32).map_err(error_chain)?;
    }
    // With process.terminal the container talks to a pty: copy its output
    // to our stdout (EIO once the last slave fd is closed).
    let relay = container.take_pty_master().map(|master| {
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(master);
            let _ = std::io::copy(&mut master, &mut std::io::stdout());
        })
    });
    let status = if external_reap {
        // Like PID 1's reaper: collect the exit ourselves, then report it.
        let pid = nix::unistd::Pid::from_raw(container.pid());
        let status = match nix::sys::wait::waitpid(pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => vmrun_isolation::ExitStatus::Exited(c),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => {
                vmrun_isolation::ExitStatus::Signaled(s as i32)
            }
            other => return Err(format!("waitpid: {other:?}")),
        };
        container.exited(status);
        status
    } else {
        container.wait().map_err(error_chain)?
    };
    if let Some(relay) = relay {
        let _ = relay.join();
    }
    Ok(status.code())
}

/// The hostile payload: try every way to open the runtime binary for writing.
fn attack() -> ! {
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("ATTACK exe={exe}");
    println!(
        "ATTACK exe write-sealed={}",
        vmrun_isolation::self_exe::running_from_sealed_memfd()
    );
    let mut wrote = false;
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/exe")
    {
        Ok(mut f) => match f.write_all(b"PWNED") {
            Ok(()) => {
                println!("ATTACK write via /proc/self/exe SUCCEEDED");
                wrote = true;
            }
            Err(e) => println!("ATTACK write via /proc/self/exe failed: {e}"),
        },
        Err(e) => println!("ATTACK open /proc/self/exe for writing failed: {e}"),
    }
    let _ = std::io::stdout().flush();
    std::process::exit(if wrote { 66 } else { 0 });
}
