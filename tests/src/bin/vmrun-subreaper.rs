//! `vmrun-subreaper PIDFILE CMD [ARG...]`: plays conmon's part for tests.
//! It becomes a child subreaper, runs CMD (a runtime's `create`) to
//! completion, reads the container's pid from PIDFILE and prints
//! `created PID parent=PPID`, where PPID is that process's parent (this
//! process, once `create` exited and the pid was reparented); then it waits
//! for that pid as its child and prints `exited CODE` or `killed SIGNAL`.

use std::process::Command;

fn fail(message: String) -> ! {
    eprintln!("vmrun-subreaper: {message}");
    std::process::exit(2);
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pid_file, command, rest @ ..] = args.as_slice() else {
        fail("usage: vmrun-subreaper PIDFILE CMD [ARG...]".into());
    };
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) changes no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        fail(format!("prctl: {}", std::io::Error::last_os_error()));
    }
    let status = Command::new(command)
        .args(rest)
        .status()
        .unwrap_or_else(|e| fail(format!("cannot run {command}: {e}")));
    if !status.success() {
        fail(format!("{command} failed: {status}"));
    }
    let text = std::fs::read_to_string(pid_file)
        .unwrap_or_else(|e| fail(format!("cannot read {pid_file}: {e}")));
    let pid: i32 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| fail(format!("{pid_file} holds {text:?}, not a pid")));
    let parent = parent_of(pid).unwrap_or(-1);
    println!("created {pid} parent={parent} me={}", std::process::id());
    let mut wstatus = 0;
    // SAFETY: waitpid writes one int through the pointer we own.
    let got = unsafe { libc::waitpid(pid, &mut wstatus, 0) };
    if got != pid {
        fail(format!(
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    if libc::WIFEXITED(wstatus) {
        println!("exited {}", libc::WEXITSTATUS(wstatus));
    } else if libc::WIFSIGNALED(wstatus) {
        println!("killed {}", libc::WTERMSIG(wstatus));
    } else {
        println!("other {wstatus}");
    }
}
