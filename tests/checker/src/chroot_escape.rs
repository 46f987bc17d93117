//! Root escapes run from inside the container, which show how the runtime
//! jailed it: `pivot_root` (the default) or `MS_MOVE` + `chroot` (runc's
//! and vmrun's `--no-pivot`).
//!
//! Two probes, each in a forked child (they change the process root), each
//! comparing `/` before and after by `(st_dev, st_ino)` and by the
//! checker's spec file, which only the container's root holds:
//!
//! - **`..` climb** (`CAP_SYS_CHROOT`), the classic chroot escape: make a
//!   directory, chroot into it *without* entering it (the cwd is now
//!   outside the root), `chdir("..")` many times, `chroot(".")`. `..` stops
//!   at the process root (no longer on the way) or at the root of the mount
//!   namespace, and a step onto a directory with a mount on top lands on
//!   that mount. Both ways of jailing put the container's root as a mount
//!   *on top of* the namespace's `/` (`pivot_root` on the hidden initial
//!   rootfs, `MS_MOVE` on the runtime's root), so the climb comes back up
//!   onto it: contained either way. A runtime that merely chroots into a
//!   directory (no mount of its own stacked on `/`) lets it out.
//!   Annotation `vmrun.checker/chroot-escape` = `contained` | `escapes`;
//!   without it a container holding `CAP_SYS_CHROOT` must be `contained`.
//! - **mount-namespace re-entry** (`CAP_SYS_ADMIN` + `CAP_SYS_CHROOT`):
//!   open `/proc/self/ns/mnt`, lazily unmount `/`, `setns` into the same
//!   mount namespace, which moves root and cwd to the namespace's root and
//!   down through whatever is still mounted on it. This is where the two
//!   differ. After `pivot_root` (old root unmounted) only the hidden
//!   initial rootfs is left beneath: in a microVM the agent's emptied
//!   initramfs. After `MS_MOVE` + `chroot` the runtime's whole root is
//!   still mounted beneath the container's: the probe lands in it (in a
//!   microVM the agent's tmpfs root with its `/init`, on a host the host's
//!   `/`). That is why `--no-pivot` is insecure. The probe takes the
//!   container's root off its mount namespace, so it runs only when asked:
//!   annotation `vmrun.checker/mntns-escape` = `contained` | `escapes`; the
//!   PASS line names the root reached (`after the escape DEV:INO`, its
//!   entries) for the tests to compare with the runtime's root.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{umount2, MntFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, chroot, fork, pipe, ForkResult};
use serde_json::Value;

use crate::report::Report;
use crate::status::status_field;

/// Bits in CapEff (linux/capability.h).
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_ADMIN: u32 = 21;

/// Directories to make the `..` probe's directory in (the first writable
/// one wins; the root may be read-only).
const PROBE_PARENTS: [&str; 3] = ["/dev/shm", "/tmp", "/run"];

/// One way out.
#[derive(Clone, Copy)]
enum Method {
    /// chroot into a subdirectory, climb `..`, chroot again.
    DotDot,
    /// Lazily unmount `/`, then setns into our own mount namespace.
    MountNsReentry,
}

impl Method {
    fn check_name(self) -> &'static str {
        match self {
            Self::DotDot => "chroot escape (.. climb)",
            Self::MountNsReentry => "chroot escape (umount / + setns mnt)",
        }
    }

    fn annotation(self) -> &'static str {
        match self {
            Self::DotDot => "vmrun.checker/chroot-escape",
            Self::MountNsReentry => "vmrun.checker/mntns-escape",
        }
    }

    /// Capability bits the method needs.
    fn caps(self) -> &'static [(u32, &'static str)] {
        match self {
            Self::DotDot => &[(CAP_SYS_CHROOT, "CAP_SYS_CHROOT")],
            Self::MountNsReentry => &[
                (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
                (CAP_SYS_CHROOT, "CAP_SYS_CHROOT"),
            ],
        }
    }

    /// Runs by default (expecting `contained`) when the caps are there?
    fn runs_unasked(self) -> bool {
        matches!(self, Self::DotDot)
    }
}

/// What a probe saw.
#[derive(Debug)]
struct Outcome {
    before: (u64, u64),
    after: (u64, u64),
    /// The spec file is still at its path after the escape.
    marker_after: bool,
    /// Steps of the escape that failed (e.g. `umount /: EINVAL`).
    notes: String,
    /// Names in the root the escape ended in (sorted, at most 16).
    entries: Vec<String>,
}

impl Outcome {
    fn contained(&self) -> bool {
        self.before == self.after && self.marker_after
    }

    fn describe(&self) -> String {
        format!(
            "/ was {}:{}, after the escape {}:{}, spec file {}, {}root entries {:?}",
            self.before.0,
            self.before.1,
            self.after.0,
            self.after.1,
            if self.marker_after { "present" } else { "gone" },
            if self.notes.is_empty() {
                String::new()
            } else {
                format!("{}, ", self.notes)
            },
            self.entries
        )
    }
}

/// Runs the probes asked for (see the module docs). Call it last: the
/// mount-namespace probe detaches the container's root.
pub fn check(spec: &Value, spec_path: &str, r: &mut Report) {
    for method in [Method::DotDot, Method::MountNsReentry] {
        check_one(method, spec, spec_path, r);
    }
}

fn check_one(method: Method, spec: &Value, spec_path: &str, r: &mut Report) {
    let name = method.check_name();
    let missing: Vec<&str> = method
        .caps()
        .iter()
        .filter(|(bit, _)| !has_effective_cap(*bit))
        .map(|(_, n)| *n)
        .collect();
    let want_escape = match spec["annotations"][method.annotation()].as_str() {
        Some("contained") => false,
        Some("escapes") => true,
        Some(other) => {
            return r.fail(
                name,
                format!(
                    "annotation {}={other:?}: want contained or escapes",
                    method.annotation()
                ),
            )
        }
        None if missing.is_empty() && method.runs_unasked() => false,
        None => {
            return r.skip(
                name,
                format!("not asked for (annotation {})", method.annotation()),
            )
        }
    };
    if !missing.is_empty() {
        return r.fail(name, format!("asked for, but {missing:?} not effective"));
    }
    if !Path::new(spec_path).exists() {
        return r.fail(
            name,
            format!("the marker {spec_path} is missing before the escape"),
        );
    }
    let outcome = match run_in_child(method, spec_path) {
        Ok(o) => o,
        Err(e) => return r.fail(name, e),
    };
    match (want_escape, outcome.contained()) {
        (false, true) => r.pass(name, format!("contained: {}", outcome.describe())),
        (true, false) => r.pass(
            name,
            format!(
                "left the container's root as expected: {}",
                outcome.describe()
            ),
        ),
        (false, false) => r.fail(
            name,
            format!("ESCAPED the container's root: {}", outcome.describe()),
        ),
        (true, true) => r.fail(
            name,
            format!(
                "expected the escape to reach the runtime's root, but it stayed inside: {}",
                outcome.describe()
            ),
        ),
    }
}

fn has_effective_cap(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field(&s, "CapEff"))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|eff| eff & (1 << bit) != 0)
}

fn root_id() -> Result<(u64, u64), String> {
    std::fs::metadata("/")
        .map(|m| (m.dev(), m.ino()))
        .map_err(|e| format!("stat /: {e}"))
}

/// Forks, runs the escape in the child and reads its outcome from a pipe.
fn run_in_child(method: Method, spec_path: &str) -> Result<Outcome, String> {
    let before = root_id()?;
    let dir = match method {
        Method::DotDot => Some(make_probe_dir()?),
        Method::MountNsReentry => None,
    };
    let (read_end, write_end) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let _ = std::io::stdout().flush();
    // SAFETY: the checker is single-threaded (nothing here spawns threads),
    // so the child may run ordinary code before it exits.
    let forked = unsafe { fork() }.map_err(|e| format!("fork: {e}"))?;
    match forked {
        ForkResult::Child => {
            drop(read_end);
            let escaped = match (method, &dir) {
                (Method::DotDot, Some(dir)) => escape_dotdot(dir),
                _ => escape_mntns(),
            };
            let line = match escaped.and_then(|notes| look_around(spec_path, notes)) {
                Ok(o) => format!(
                    "ok {} {} {} {}\n{}",
                    o.after.0,
                    o.after.1,
                    u8::from(o.marker_after),
                    o.entries.join("/"),
                    o.notes
                ),
                Err(e) => format!("err {e}"),
            };
            let mut out = std::fs::File::from(write_end);
            let code = i32::from(out.write_all(line.as_bytes()).is_err());
            // SAFETY: _exit ends the forked child without running the
            // parent's atexit handlers or flushing its copied buffers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            let read = std::fs::File::from(read_end).read_to_string(&mut text);
            let status = waitpid(child, None);
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir(dir);
            }
            read.map_err(|e| format!("reading the probe's result: {e}"))?;
            if !matches!(status, Ok(WaitStatus::Exited(_, 0))) {
                return Err(format!("the probe child ended with {status:?}: {text}"));
            }
            parse(before, &text)
        }
    }
}

fn parse(before: (u64, u64), text: &str) -> Result<Outcome, String> {
    if let Some(e) = text.strip_prefix("err ") {
        return Err(e.to_owned());
    }
    let malformed = || format!("malformed probe output {text:?}");
    let (first, notes) = text.split_once('\n').ok_or_else(malformed)?;
    let mut f = first
        .strip_prefix("ok ")
        .ok_or_else(malformed)?
        .splitn(4, ' ');
    let mut num =
        || -> Result<u64, String> { f.next().and_then(|v| v.parse().ok()).ok_or_else(malformed) };
    let after = (num()?, num()?);
    let marker_after = num()? == 1;
    let entries = f
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Outcome {
        before,
        after,
        marker_after,
        notes: notes.to_owned(),
        entries,
    })
}

/// A fresh directory to chroot into, in the first writable parent.
fn make_probe_dir() -> Result<String, String> {
    let mut errors = Vec::new();
    for parent in PROBE_PARENTS {
        let dir = format!("{parent}/.vmrun-chroot-escape-{}", std::process::id());
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => errors.push(format!("{dir}: {e}")),
        }
    }
    Err(format!(
        "no writable place for the probe directory: {}",
        errors.join("; ")
    ))
}

/// In the child: the classic escape. Returns notes (none).
fn escape_dotdot(dir: &str) -> Result<String, String> {
    // Into the directory as the root, but the cwd stays where it was.
    chroot(dir).map_err(|e| format!("chroot {dir}: {e}"))?;
    for _ in 0..128 {
        chdir("..").map_err(|e| format!("chdir ..: {e}"))?;
    }
    chroot(".").map_err(|e| format!("chroot .: {e}"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(String::new())
}

/// In the child: take the container's root off whatever it is mounted on,
/// then re-enter the mount namespace, which moves root and cwd to the
/// namespace's root. A refused unmount is a note, not an error (under
/// pivot_root `/` has no parent to be unmounted from).
fn escape_mntns() -> Result<String, String> {
    // Before the unmount: /proc goes with it.
    let ns = std::fs::File::open("/proc/self/ns/mnt")
        .map_err(|e| format!("open /proc/self/ns/mnt: {e}"))?;
    let notes = match umount2("/", MntFlags::MNT_DETACH) {
        Ok(()) => "umount / ok".to_owned(),
        Err(e) => format!("umount / refused ({e})"),
    };
    setns(&ns, CloneFlags::CLONE_NEWNS).map_err(|e| format!("setns mnt: {e} ({notes})"))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(notes)
}

/// In the child, after an escape: where are we?
fn look_around(spec_path: &str, notes: String) -> Result<Outcome, String> {
    let after = root_id()?;
    let marker_after = Path::new(spec_path).exists();
    let mut entries: Vec<String> = std::fs::read_dir("/")
        .map_err(|e| format!("listing the root after the escape: {e}"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.contains(['/', ' ', '\n']))
        .collect();
    entries.sort();
    entries.truncate(16);
    Ok(Outcome {
        before: (0, 0),
        after,
        marker_after,
        notes: notes.replace('\n', " "),
        entries,
    })
}
