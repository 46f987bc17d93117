//! Checks an OCI runtime spec from inside the container it configures
//! (the idea of youki's `contest`): run it as the container's process with
//! the container's own `config.json` at `/checker-spec.json` (or the path
//! in argv[1]); it prints one `PASS`/`FAIL`/`SKIP` line per check and
//! exits 1 if any check failed.
//!
//! Annotations: `vmrun.checker/preserved-fds` = N: fds 3..3+N are expected
//! open; `vmrun.checker/chroot-escape` = contained|escapes: see
//! `chroot_escape`; `vmrun.checker/reference-ns-dir` = DIR: see `identity`.

mod chroot_escape;
mod devices;
mod fs_checks;
mod identity;
mod limits;
mod report;
mod seccomp_probe;
mod status;

use report::Report;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/checker-spec.json".to_owned());
    let spec: serde_json::Value = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("vmrun-checker: cannot read spec {path}: {e}");
            std::process::exit(2);
        }
    };
    let preserved = spec["annotations"]["vmrun.checker/preserved-fds"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut r = Report::default();
    // fds first: everything after may open files.
    identity::check(&spec, preserved, &mut r);
    status::check(&spec, &mut r);
    limits::check(&spec, &mut r);
    fs_checks::check(&spec, &mut r);
    devices::check(&spec, &mut r);
    seccomp_probe::check(&spec, &mut r);
    // Last: it forks a child that changes its root.
    chroot_escape::check(&spec, &path, &mut r);
    println!("SUMMARY passed={} failed={}", r.passed, r.failed);
    std::process::exit(i32::from(r.failed > 0));
}
