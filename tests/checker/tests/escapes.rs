//! The escape classes of issue 4, each as a test against vmrun-isolation on
//! this host and, where the attack can be expressed through `vmrun run`
//! (a bundle and nothing else), in a real microVM: there the agent applies
//! the spec with vmrun-isolation inside the guest, and the rootfs comes
//! from the host over virtio-fs.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::json;

/// A config running `sh -c script` instead of the checker.
fn shell_config(script: &str) -> serde_json::Value {
    let mut c = base_config();
    c["process"]["args"] = json!(["/bin/sh", "-c", script]);
    c
}

/// CVE-2024-21626: `process.cwd` through /proc/self/fd/N is refused outright.
#[test]
fn cwd_in_proc_self_fd_is_refused() {
    let mut c = shell_config("ls; touch pwned");
    c["process"]["cwd"] = "/proc/self/fd/7".into();
    if let Some(guest) = guest("cwd_in_proc_self_fd_is_refused") {
        let bundle = Bundle::new("cwdfd-vm", &c);
        let out = run_vm(&guest, &bundle, "cwdfd-vm");
        assert!(vm_code(&out).is_some_and(|c| c != 0), "{}", out.describe());
        assert!(out.stderr.contains("process.cwd"), "{}", out.describe());
        assert!(
            !out.stdout.contains("checker-spec.json"),
            "{}",
            out.describe()
        );
    }
    if !can_run("cwd_in_proc_self_fd_is_refused") || !host_halves("cwd_in_proc_self_fd_is_refused")
    {
        return;
    }
    let bundle = Bundle::new("cwdfd", &c);
    let out = run_ours(&bundle, "cwdfd", &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("process.cwd"), "{}", stderr(&out));
    assert!(!bundle.path().join("state/bundles/cwdfd").exists());
}

/// The same attack through a symlink in the image (`/work -> /proc/self/fd/7`)
/// with a host directory leaked to the runtime as fd 7: the container must
/// not start in (or write to) the host directory.
///
/// In the microVM no host fd can reach the guest; the same image (with the
/// symlink) must still not start the container in whatever the agent's or
/// the runtime's fd 7 is.
#[test]
fn cwd_symlink_to_leaked_host_fd_is_confined() {
    if let Some(guest) = guest("cwd_symlink_to_leaked_host_fd_is_confined") {
        let mut c = shell_config("pwd; ls; touch pwned");
        c["process"]["cwd"] = "/work".into();
        c["root"]["readonly"] = false.into();
        let bundle = Bundle::new("cwdlink-vm", &c);
        std::os::unix::fs::symlink("/proc/self/fd/7", bundle.rootfs().join("work")).unwrap();
        let out = run_vm(&guest, &bundle, "cwdlink-vm");
        assert_ne!(vm_code(&out), Some(0), "must not start: {}", out.describe());
        assert!(!out.stdout.contains("checker-spec"), "{}", out.describe());
    }
    if !can_run("cwd_symlink_to_leaked_host_fd_is_confined")
        || !host_halves("cwd_symlink_to_leaked_host_fd_is_confined")
    {
        return;
    }
    let host_dir = scratch("hostsecret");
    std::fs::write(host_dir.path().join("secret"), "HOST-SECRET").unwrap();
    let mut c = shell_config("cat secret; touch pwned; pwd");
    c["process"]["cwd"] = "/work".into();
    let bundle = Bundle::new("cwdlink", &c);
    std::os::unix::fs::symlink("/proc/self/fd/7", bundle.rootfs().join("work")).unwrap();
    let dir = std::fs::File::open(host_dir.path()).unwrap();
    let raw = dir.as_raw_fd();
    let mut cmd = std::process::Command::new(RUNNER);
    cmd.arg("--state-dir")
        .arg(bundle.path().join("state"))
        .arg("--bundle")
        .arg(bundle.path())
        .arg("cwdlink")
        .stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    println!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        !stdout(&out).contains("HOST-SECRET"),
        "container read the host dir"
    );
    assert!(
        !host_dir.path().join("pwned").exists(),
        "container wrote the host dir"
    );
    assert_ne!(out.status.code(), Some(0), "container must not start there");
}

/// CVE-2021-30465 class: mount destinations that are symlinks pointing
/// outside the root land inside the root.
#[test]
fn mount_destination_symlink_lands_inside_root() {
    mount_destination_symlink_in_vm();
    if !can_run("mount_destination_symlink_lands_inside_root")
        || !host_halves("mount_destination_symlink_lands_inside_root")
    {
        return;
    }
    let outside = scratch("outside");
    let source = scratch("mountsrc");
    std::fs::write(source.path().join("MARKER"), "m").unwrap();
    let out_abs = outside.path().join("abs");
    let out_rel = outside.path().join("rel");
    let mut c = shell_config(&format!(
        "cat /proc/self/mountinfo; ls {abs}/MARKER {rel}/MARKER",
        abs = out_abs.display(),
        rel = out_rel.display()
    ));
    c["root"]["readonly"] = false.into();
    let mounts = c["mounts"].as_array_mut().unwrap();
    for dest in ["/evil-abs", "/evil-rel"] {
        mounts.push(json!({"destination": dest, "type": "bind",
                           "source": source.path(), "options": ["rbind", "ro"]}));
    }
    let bundle = Bundle::new("mntlink", &c);
    // Absolute and ../-relative symlinks both aimed at the host directory.
    std::os::unix::fs::symlink(&out_abs, bundle.rootfs().join("evil-abs")).unwrap();
    let ups = "../".repeat(20);
    let rel_target = format!(
        "{ups}{}",
        out_rel.display().to_string().trim_start_matches('/')
    );
    std::os::unix::fs::symlink(&rel_target, bundle.rootfs().join("evil-rel")).unwrap();
    let out = run_ours(&bundle, "mntlink", &[]);
    let text = stdout(&out);
    // Either refused, or the mounts landed inside the root: the container
    // sees MARKER at the symlink targets *inside* its root, and the
    // runtime created those targets under rootfs/, not on the host.
    assert!(
        !out_abs.exists() && !out_rel.exists(),
        "runtime created dirs outside the root"
    );
    if out.status.success() {
        assert!(
            text.contains(&format!("{}/MARKER", out_abs.display())),
            "{text}"
        );
        let inside = bundle.rootfs().join(out_abs.strip_prefix("/").unwrap());
        assert!(inside.is_dir(), "mount target not created inside the root");
    }
}

/// The microVM half: the symlinks point at the guest's own root (the
/// agent's initramfs), outside the container's root. Bind sources are guest
/// paths, so the guest's /tmp (the agent's tmpfs) is bound. Either vmrun
/// refuses the spec, or both mounts landed inside the root: the container
/// sees them at the symlink targets (a mount outside its root would not
/// show in its mountinfo), and the runtime created those targets in the
/// bundle's rootfs (shared over virtio-fs), where the host sees them.
fn mount_destination_symlink_in_vm() {
    let Some(guest) = guest("mount_destination_symlink_lands_inside_root") else {
        return;
    };
    let mut c = shell_config("cat /proc/self/mountinfo");
    c["root"]["readonly"] = false.into();
    let mounts = c["mounts"].as_array_mut().unwrap();
    for dest in ["/evil-abs", "/evil-rel"] {
        mounts.push(json!({"destination": dest, "type": "bind",
                           "source": "/tmp", "options": ["rbind", "ro"]}));
    }
    let bundle = Bundle::new("mntlink-vm", &c);
    let rootfs = bundle.rootfs();
    std::os::unix::fs::symlink("/vmrun-escape-abs", rootfs.join("evil-abs")).unwrap();
    let rel = format!("{}vmrun-escape-rel", "../".repeat(20));
    std::os::unix::fs::symlink(rel, rootfs.join("evil-rel")).unwrap();
    let out = run_vm(&guest, &bundle, "mntlink-vm");
    if vm_code(&out) == Some(0) {
        for target in ["vmrun-escape-abs", "vmrun-escape-rel"] {
            assert!(
                out.stdout.contains(&format!(" /{target} ")),
                "/{target} is not a mount inside the container's root: {}",
                out.describe()
            );
            assert!(
                rootfs.join(target).is_dir(),
                "mount target {target} not created inside the root: {}",
                out.describe()
            );
        }
    } else {
        say(&format!(
            "mount_destination_symlink_lands_inside_root: refused in the microVM: {}",
            out.stderr.trim()
        ));
    }
}

/// A rootfs whose /proc is a symlink is refused.
#[test]
fn rootfs_with_proc_symlink_is_refused() {
    if let Some(guest) = guest("rootfs_with_proc_symlink_is_refused") {
        let bundle = Bundle::new("procsym-vm", &shell_config("true"));
        std::fs::remove_dir(bundle.rootfs().join("proc")).unwrap();
        std::os::unix::fs::symlink("/tmp", bundle.rootfs().join("proc")).unwrap();
        let out = run_vm(&guest, &bundle, "procsym-vm");
        assert!(vm_code(&out).is_some_and(|c| c != 0), "{}", out.describe());
        assert!(
            out.stderr.contains("unsafe rootfs: /proc"),
            "{}",
            out.describe()
        );
    }
    if !can_run("rootfs_with_proc_symlink_is_refused")
        || !host_halves("rootfs_with_proc_symlink_is_refused")
    {
        return;
    }
    let bundle = Bundle::new("procsym", &shell_config("true"));
    std::fs::remove_dir(bundle.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", bundle.rootfs().join("proc")).unwrap();
    let out = run_ours(&bundle, "procsym", &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("unsafe rootfs: /proc"),
        "{}",
        stderr(&out)
    );
}

/// A rootfs whose /dev/null is a symlink is refused.
#[test]
fn rootfs_with_dev_null_symlink_is_refused() {
    if let Some(guest) = guest("rootfs_with_dev_null_symlink_is_refused") {
        let bundle = Bundle::new("nullsym-vm", &shell_config("true"));
        std::os::unix::fs::symlink("/etc/passwd", bundle.rootfs().join("dev/null")).unwrap();
        let out = run_vm(&guest, &bundle, "nullsym-vm");
        assert!(vm_code(&out).is_some_and(|c| c != 0), "{}", out.describe());
        assert!(
            out.stderr.contains("unsafe rootfs: /dev/null"),
            "{}",
            out.describe()
        );
    }
    if !can_run("rootfs_with_dev_null_symlink_is_refused")
        || !host_halves("rootfs_with_dev_null_symlink_is_refused")
    {
        return;
    }
    let bundle = Bundle::new("nullsym", &shell_config("true"));
    std::os::unix::fs::symlink("/etc/passwd", bundle.rootfs().join("dev/null")).unwrap();
    let out = run_ours(&bundle, "nullsym", &[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("unsafe rootfs: /dev/null"),
        "{}",
        stderr(&out)
    );
}

fn sha(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// CVE-2019-5736 class: the container's entry point is `#!/proc/self/exe`,
/// so the runtime's own child re-executes the runtime binary inside the
/// container, which then tries to overwrite it through /proc/self/exe.
/// With the runtime running from a sealed memfd (`--sealed`, what the
/// agent does anywhere but on its initramfs) the write fails and the
/// binary on disk is unchanged.
///
/// Host only: through `vmrun run` the `#!/proc/self/exe` entry re-executes
/// the agent, which refuses to run as anything but PID 1, so no payload of
/// ours would run; the microVM form of this class is
/// `agent_binary_cannot_be_written_from_the_guest_container`.
#[test]
fn runtime_binary_cannot_be_overwritten_via_proc_self_exe() {
    if !can_run("runtime_binary_cannot_be_overwritten")
        || !host_halves("runtime_binary_cannot_be_overwritten")
    {
        return;
    }
    // Play the agent with a private copy, so a successful attack could
    // never damage the test binary itself.
    let agent_dir = scratch("agentbin");
    let agent = agent_dir.path().join("agent");
    std::fs::copy(RUNNER, &agent).unwrap();
    let before = sha(&agent);

    let mut c = base_config();
    c["process"]["args"] = json!(["/evil"]);
    c["process"]["env"] = json!(["PATH=/bin", "VMRUN_CHECKER_ATTACK=1"]);
    c["root"]["readonly"] = false.into();
    let bundle = Bundle::new("exe", &c);
    bundle.add_script("evil", "#!/proc/self/exe\n");
    // The runner binary is dynamic in debug builds: give it its libraries.
    let ldd = std::process::Command::new("ldd")
        .arg(&agent)
        .output()
        .unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let target = bundle.rootfs().join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if !target.exists() {
            std::fs::copy(lib, &target).unwrap();
        }
    }

    for sealed in [true, false] {
        let id = format!("exe-{sealed}");
        let mut cmd = std::process::Command::new(&agent);
        if sealed {
            cmd.arg("--sealed");
        }
        let out = cmd
            .arg("--state-dir")
            .arg(bundle.path().join("state"))
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = stdout(&out);
        println!("sealed={sealed}\n{text}\n{}", stderr(&out));
        assert!(
            text.contains("ATTACK exe="),
            "the payload did not run: {text}"
        );
        assert!(
            !text.contains("SUCCEEDED"),
            "the container wrote the runtime binary"
        );
        if sealed {
            assert!(text.contains("ATTACK exe=/memfd:vmrun-agent"), "{text}");
            assert!(text.contains("ATTACK exe write-sealed=true"), "{text}");
        }
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(sha(&agent), before, "the runtime binary changed");
    }
}

/// CVE-2019-5736 class in the microVM: a container sharing the guest's PID
/// namespace, with CAP_SYS_PTRACE (so /proc/1/exe, the agent's binary, is
/// reachable at all) and CAP_DAC_OVERRIDE, tries to write the agent
/// through /proc/1/exe. The agent runs from its initramfs file, unlinked
/// when it moved to the tmpfs root, and the kernel refuses to open a live
/// process's program for writing (ETXTBSY), so the write fails and the
/// agent still serves: vmrun gets the container's exit status.
#[test]
fn agent_binary_cannot_be_written_from_the_guest_container() {
    let Some(guest) = guest("agent_binary_cannot_be_written_from_the_guest_container") else {
        return;
    };
    let mut c = shell_config(
        "ls -l /proc/1/exe; \
         if { echo pwned > /proc/1/exe; } 2>&1; then echo ATTACK SUCCEEDED; else echo ATTACK refused; fi",
    );
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
    let caps = json!([
        "CAP_SYS_PTRACE",
        "CAP_DAC_OVERRIDE",
        "CAP_SYS_ADMIN",
        "CAP_FOWNER"
    ]);
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let bundle = Bundle::new("agentexe-vm", &c);
    let out = run_vm(&guest, &bundle, "agentexe-vm");
    assert_eq!(vm_code(&out), Some(0), "{}", out.describe());
    let exe_line = out
        .stdout
        .lines()
        .find(|line| line.contains("/proc/1/exe -> "))
        .unwrap_or_else(|| panic!("no /proc/1/exe line: {}", out.describe()));
    assert!(
        exe_line.ends_with("init (deleted)"),
        "the agent's binary has a name left in the guest: {}",
        out.describe()
    );
    assert!(out.stdout.contains("Text file busy"), "{}", out.describe());
    assert!(out.stdout.contains("ATTACK refused"), "{}", out.describe());
    assert!(!out.stdout.contains("SUCCEEDED"), "{}", out.describe());
}

/// Root escapes under pivot_root (the default; in the microVM the agent
/// left the initramfs for a tmpfs so that pivot_root works there): the
/// classic chroot `..` climb (CAP_SYS_CHROOT) stays in the container's root
/// (`/` keeps its st_dev/st_ino and the checker's spec file), and even a
/// container with CAP_SYS_ADMIN that lazily unmounts `/` and re-enters its
/// own mount namespace does not reach the runtime's root: in the microVM it
/// finds only the agent's emptied initramfs (none of its directories), on this host
/// something other than the host's `/`. The counter-proof, that the same
/// probe does reach the runtime's root under `--no-pivot`, is matrix.rs's
/// `no_pivot_root`.
#[test]
fn root_escapes_under_pivot_root() {
    let c = root_escape_config();
    if let Some(guest) = guest("root_escapes_under_pivot_root") {
        let bundle = Bundle::new("rootesc-vm", &c);
        let out = run_vm(&guest, &bundle, "rootesc-vm");
        assert_vm_all_pass("vmrun run (microVM) root escapes", &out, 36);
        assert_vm_escapes("vmrun run", &out.stdout, false);
    }
    if !can_run("root_escapes_under_pivot_root") || !host_halves("root_escapes_under_pivot_root") {
        return;
    }
    let bundle = Bundle::new("rootesc", &c);
    let out = run_ours(&bundle, "rootesc", &[]);
    assert_all_pass("vmrun-isolation root escapes", &out, 36);
    assert_host_escapes("vmrun-isolation", &stdout(&out), false);
    if have_runc() {
        let out = run_runc(&bundle, "rootesc-runc");
        assert_all_pass("runc root escapes", &out, 36);
        assert_host_escapes("runc", &stdout(&out), false);
    } else {
        eprintln!(
            "SKIPPED: runc half of root_escapes_under_pivot_root because runc is not installed"
        );
    }
}
