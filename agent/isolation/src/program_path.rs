//! The program of a container process, found once.
//!
//! libcontainer's default executor looks `process.args[0]` up in the
//! process's `PATH` when the process is created (so that `create` fails
//! for a missing program), and when the container starts, `execvp`
//! searches `PATH` again. runc finds the program once, at create
//! (`exec.LookPath` in its init, before the wait for `start`), and execs
//! the path it found. [`ProgramPath`] does as runc does: its `validate`
//! finds the program and keeps the path, its `exec` runs that path.
//!
//! Searching twice is not free in the guest: every directory of `PATH`
//! before the program's is a lookup of a missing name, which the guest
//! never caches on virtio-fs, so a round trip to the host each time.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

/// An executor that finds the program when the process is created and
/// execs that same path when it starts.
///
/// `validate` and `exec` run in the same process (the container's init or
/// an exec'd process, after its mounts and `cwd`), so the path found by
/// the first is there for the second.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProgramPath {
    found: OnceLock<PathBuf>,
}

impl ProgramPath {
    /// The path found by `validate`, if it found one.
    #[cfg(test)]
    fn found(&self) -> Option<&Path> {
        self.found.get().map(PathBuf::as_path)
    }
}

/// `process.args` of `spec`, if there are any.
fn args(spec: &Spec) -> Option<&Vec<String>> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .filter(|a| !a.is_empty())
}

/// The `PATH` of `process.env` (the first one, as libcontainer reads it).
fn path_var(spec: &Spec) -> Option<&str> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
}

/// Where `name` is found in `path_var`, by libcontainer's rules: a name
/// with a slash is taken as it is when it exists; otherwise the first
/// entry of `path_var` holding it.
fn lookup(name: &str, path_var: &str) -> Option<PathBuf> {
    if name.contains('/') && Path::new(name).exists() {
        return Some(PathBuf::from(name));
    }
    path_var
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.exists())
}

/// Whether `path` is a regular file with its "others may execute" bit
/// (libcontainer's test).
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o001 != 0)
}

impl Executor for ProgramPath {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let (Some(program), Some(args)) = (self.found.get(), args(spec)) else {
            return DefaultExecutor {}.exec(spec);
        };
        let program = CString::new(program.as_os_str().as_encoded_bytes())
            .map_err(|_| ExecutorError::InvalidArg)?;
        let argv: Vec<CString> = args
            .iter()
            .map(|s| CString::new(s.as_bytes()).unwrap_or_default())
            .collect();
        // A path with a slash: execvp runs it without searching PATH (and
        // still hands a script without `#!` to /bin/sh, as before).
        let err = match nix::unistd::execvp(&program, &argv) {
            Err(err) => err,
            Ok(never) => match never {},
        };
        Err(ExecutorError::Execution(
            format!("error '{err}' executing '{program:?}' with args '{argv:?}'").into(),
        ))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let found = args(spec)
            .zip(path_var(spec))
            .and_then(|(args, path_var)| lookup(&args[0], path_var))
            .filter(|path| is_executable(path));
        match found {
            Some(path) => {
                let _ = self.found.set(path);
                Ok(())
            }
            // Not found, not executable or no PATH: libcontainer's own
            // check says why, in its words.
            None => DefaultExecutor {}.validate(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str], env: &[&str]) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": args, "env": env, "cwd": "/", "user": {"uid": 0, "gid": 0}}
        }))
        .unwrap()
    }

    fn write_program(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_first_path_entry_holding_the_name_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let in_b = write_program(&b, "prog", 0o755);
        let path_var = format!("{}:{}", a.display(), b.display());
        assert_eq!(lookup("prog", &path_var), Some(in_b.clone()));
        let in_a = write_program(&a, "prog", 0o755);
        assert_eq!(lookup("prog", &path_var), Some(in_a));
        assert_eq!(lookup("other", &path_var), None);
        // A name with a slash is not searched for.
        assert_eq!(lookup(in_b.to_str().unwrap(), "/nowhere"), Some(in_b));
    }

    #[test]
    fn validate_keeps_the_path_it_found() {
        let tmp = tempfile::tempdir().unwrap();
        let prog = write_program(tmp.path(), "prog", 0o755);
        let path = format!("PATH=/nowhere:{}", tmp.path().display());
        let executor = ProgramPath::default();
        executor.validate(&spec(&["prog", "-x"], &[&path])).unwrap();
        assert_eq!(executor.found(), Some(prog.as_path()));
        // The clone libcontainer hands the process keeps it too.
        let copy = executor.clone();
        assert_eq!(copy.found(), Some(prog.as_path()));
    }

    #[test]
    fn what_cannot_run_fails_validate_in_libcontainer_words() {
        let tmp = tempfile::tempdir().unwrap();
        write_program(tmp.path(), "noexec", 0o644);
        let path = format!("PATH={}", tmp.path().display());
        let cases = [
            (spec(&["missing"], &[&path]), "not found in $PATH"),
            (
                spec(&["noexec"], &[&path]),
                "does not have correct permissions",
            ),
            (
                spec(&["prog"], &["HOME=/"]),
                "PATH environment variable is not set",
            ),
        ];
        for (spec, words) in cases {
            let executor = ProgramPath::default();
            let err = executor.validate(&spec).unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
            assert_eq!(executor.found(), None);
        }
    }
}
