//! What the agent's ready line reports (contract 4):
//! `vmrun-agent: ready cpus=<online cpus> memory_kib=<MemTotal> kernel=<uname -r>`.

use std::fs;

use anyhow::{bail, Context, Result};

/// Online CPUs, as a cpu list (`0-1`, `0,2-3`).
pub const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";
/// Memory statistics with the `MemTotal:` line.
pub const MEMINFO: &str = "/proc/meminfo";
/// The kernel release (`uname -r`).
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// The facts the ready line reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// Number of online CPUs.
    pub cpus: u32,
    /// `MemTotal` in KiB.
    pub memory_kib: u64,
    /// Kernel release string.
    pub kernel_release: String,
}

impl SystemInfo {
    /// Reads the facts from /sys and /proc (which must be mounted).
    pub fn read() -> Result<Self> {
        let read = |path: &str| fs::read_to_string(path).with_context(|| format!("reading {path}"));
        Self::parse(&read(CPU_ONLINE)?, &read(MEMINFO)?, &read(OSRELEASE)?)
    }

    /// Builds the facts from the contents of [`CPU_ONLINE`], [`MEMINFO`] and
    /// [`OSRELEASE`].
    pub fn parse(cpu_online: &str, meminfo: &str, osrelease: &str) -> Result<Self> {
        let kernel_release = osrelease.trim();
        if kernel_release.is_empty() || kernel_release.contains(char::is_whitespace) {
            bail!("unexpected kernel release {osrelease:?} in {OSRELEASE}");
        }
        Ok(Self {
            cpus: count_cpu_list(cpu_online).with_context(|| format!("parsing {CPU_ONLINE}"))?,
            memory_kib: mem_total_kib(meminfo).with_context(|| format!("parsing {MEMINFO}"))?,
            kernel_release: kernel_release.to_string(),
        })
    }

    /// The ready line, exactly as contract 4 fixes it.
    pub fn ready_line(&self) -> String {
        format!("{} {}", crate::console::PREFIX, self.ready_message())
    }

    /// The ready line without the agent's prefix (as an `info` event it
    /// prints as the ready line).
    pub fn ready_message(&self) -> String {
        format!(
            "ready cpus={} memory_kib={} kernel={}",
            self.cpus, self.memory_kib, self.kernel_release
        )
    }
}

/// Counts the CPUs in a kernel cpu list such as `0-3,5,7-8`.
pub fn count_cpu_list(list: &str) -> Result<u32> {
    let list = list.trim();
    if list.is_empty() {
        bail!("empty cpu list");
    }
    let mut count: u32 = 0;
    for part in list.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a)?, parse_cpu(b)?),
            None => {
                let cpu = parse_cpu(part)?;
                (cpu, cpu)
            }
        };
        if last < first {
            bail!("descending cpu range {part:?}");
        }
        count = count
            .checked_add(last - first + 1)
            .with_context(|| format!("cpu count overflows at {part:?}"))?;
    }
    Ok(count)
}

fn parse_cpu(text: &str) -> Result<u32> {
    text.parse()
        .with_context(|| format!("bad cpu number {text:?}"))
}

/// Finds `MemTotal:  <n> kB` in /proc/meminfo contents.
pub fn mem_total_kib(meminfo: &str) -> Result<u64> {
    for line in meminfo.lines() {
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            let mut words = rest.split_whitespace();
            let (Some(value), Some("kB"), None) = (words.next(), words.next(), words.next()) else {
                bail!("unexpected MemTotal line {line:?}");
            };
            return value
                .parse()
                .with_context(|| format!("bad MemTotal value {value:?}"));
        }
    }
    bail!("no MemTotal line")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO_SAMPLE: &str = "MemTotal:         230172 kB\nMemFree:          201360 kB\n\
                                  MemAvailable:     196216 kB\n";

    #[test]
    fn counts_cpu_lists() {
        assert_eq!(count_cpu_list("0\n").unwrap(), 1);
        assert_eq!(count_cpu_list("0-1\n").unwrap(), 2);
        assert_eq!(count_cpu_list("0-3,5,7-8").unwrap(), 7);
        assert_eq!(count_cpu_list("2").unwrap(), 1);
    }

    #[test]
    fn rejects_bad_cpu_lists() {
        for bad in ["", "\n", "a", "3-1", "0-", "-1", "0,,1", "0-1-2"] {
            assert!(count_cpu_list(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn finds_mem_total() {
        assert_eq!(mem_total_kib(MEMINFO_SAMPLE).unwrap(), 230172);
        assert!(mem_total_kib("MemFree: 1 kB\n").is_err());
        assert!(mem_total_kib("MemTotal: 12 MB\n").is_err());
        assert!(mem_total_kib("MemTotal: x kB\n").is_err());
    }

    #[test]
    fn formats_the_ready_line_exactly() {
        let info = SystemInfo::parse("0-1\n", MEMINFO_SAMPLE, "6.1.192\n").unwrap();
        assert_eq!(
            info.ready_line(),
            "vmrun-agent: ready cpus=2 memory_kib=230172 kernel=6.1.192"
        );
    }

    #[test]
    fn rejects_a_blank_kernel_release() {
        assert!(SystemInfo::parse("0", MEMINFO_SAMPLE, "\n").is_err());
    }

    #[test]
    fn reads_this_host() {
        // /proc and /sys are mounted on any Linux test host.
        let info = SystemInfo::read().unwrap();
        assert!(info.cpus >= 1);
        assert!(info.memory_kib > 0);
        let ready = info.ready_line();
        assert!(ready.starts_with("vmrun-agent: ready cpus="), "{ready}");
    }
}
