//! The caller of a runtime's `create` playing conmon's part, for tests of
//! what happens to the container when its caller goes: `vmrun-subreaper`
//! (this package's binary) runs `create` with `--log` and `--pid-file` as
//! conmon does, becomes the VMM's parent and reports its exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtimes::Runtime;
use crate::{boot_timeout, wait_until};

/// A running `vmrun-subreaper` that created one container.
#[derive(Debug)]
pub struct Caller {
    /// The subreaper process (the VMM's parent once `create` exited).
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
    log: PathBuf,
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

impl Caller {
    /// Creates container `id` from `bundle` through `subreaper` (the
    /// `vmrun-subreaper` binary) and waits until it is created; panics
    /// with everything printed if `create` fails. Its files (output, VMM
    /// log, pid file) go next to the bundle (`<bundle>.caller/`).
    pub fn create(subreaper: &Path, runtime: &Runtime, bundle: &Path, id: &str) -> Self {
        let dir = bundle.with_extension("caller");
        std::fs::create_dir_all(&dir).expect("caller dir");
        let pid_file = dir.join("pid");
        let (out, err, log) = (dir.join("out"), dir.join("err"), dir.join("vmm.log"));
        let mut argv = vec![s(&pid_file).to_string(), runtime.bin.display().to_string()];
        argv.extend(runtime.argv(
            "create",
            &[
                "--log",
                s(&log),
                "--bundle",
                s(bundle),
                "--pid-file",
                s(&pid_file),
                id,
            ],
        ));
        let child = Command::new(subreaper)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(&err).expect("err"))
            .spawn()
            .expect("start the subreaper");
        let mut caller = Self {
            child,
            out,
            err,
            log,
        };
        caller.vmm_pid();
        caller
    }

    /// Everything the caller, the container and the VMM printed so far.
    pub fn output(&self) -> String {
        format!(
            "{}\n--- caller's stderr ---\n{}\n--- VMM log ---\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default(),
            self.vmm_log()
        )
    }

    /// The VMM's log (`--log`).
    pub fn vmm_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn line_starting(&self, prefix: &str) -> Option<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }

    /// The VMM's pid, once `create` succeeded.
    pub fn vmm_pid(&mut self) -> i32 {
        let deadline = Instant::now() + boot_timeout();
        loop {
            if let Some(line) = self.line_starting("created ") {
                let pid = line.split_whitespace().nth(1).and_then(|p| p.parse().ok());
                return pid.unwrap_or_else(|| panic!("bad line {line:?}"));
            }
            let exited = self.child.try_wait().expect("try_wait").is_some();
            if exited || Instant::now() >= deadline {
                panic!("create did not succeed:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (at most `limit`, a hang guard) for the VMM to end; the
    /// caller's `exited N` / `killed N` line.
    pub fn wait_exit(&mut self, limit: Duration) -> String {
        let status = wait_until(&mut self.child, Instant::now() + limit);
        assert!(
            status.is_some(),
            "the VMM did not exit (hang guard):\n{}",
            self.output()
        );
        ["exited ", "killed ", "other "]
            .iter()
            .find_map(|p| self.line_starting(p))
            .unwrap_or_else(|| panic!("the caller saw no exit:\n{}", self.output()))
    }
}
