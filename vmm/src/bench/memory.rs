//! Memory readings from `/proc`: a process's RSS/PSS (`smaps_rollup`), its
//! guest RAM mappings (`smaps`: the `MADV_DONTFORK` mappings adding up to
//! the guest's RAM size, else the anonymous mappings of exactly its RAM
//! region sizes) and the system's `MemAvailable`.

use std::io;

use super::report::{GuestRamReport, MemoryReport};
use crate::arch::x86_64::memory_map::ram_regions;

/// One mapping of `/proc/PID/smaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `start-end` as printed (hex).
    pub range: String,
    /// Anonymous: inode 0 and no path (heap and stack are named).
    pub anonymous: bool,
    /// `Size:` (KiB).
    pub size_kib: u64,
    /// `Rss:` (KiB).
    pub rss_kib: u64,
    /// `Pss:` (KiB).
    pub pss_kib: u64,
    /// `VmFlags:` has `dc` (`MADV_DONTFORK`: the VMM's guest RAM).
    pub dontfork: bool,
}

/// Totals of `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollup {
    /// `Rss:` (KiB).
    pub rss_kib: u64,
    /// `Pss:` (KiB).
    pub pss_kib: u64,
}

/// `Key:   123 kB` → 123 for `key`.
fn field_kib(line: &str, key: &str) -> Option<u64> {
    let rest = line.strip_prefix(key)?.strip_prefix(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Is this line a mapping header (`start-end perms offset dev inode [path]`)?
fn header(line: &str) -> Option<(String, bool)> {
    let mut words = line.split_whitespace();
    let range = words.next()?;
    let (start, end) = range.split_once('-')?;
    u64::from_str_radix(start, 16).ok()?;
    u64::from_str_radix(end, 16).ok()?;
    let _perms = words.next()?;
    let _offset = words.next()?;
    let _dev = words.next()?;
    let inode = words.next()?;
    let path = words.next();
    Some((range.to_string(), inode == "0" && path.is_none()))
}

/// Parses the text of `/proc/PID/smaps`.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some((range, anonymous)) = header(line) {
            out.push(Mapping {
                range,
                anonymous,
                size_kib: 0,
                rss_kib: 0,
                pss_kib: 0,
                dontfork: false,
            });
            continue;
        }
        let Some(m) = out.last_mut() else { continue };
        if let Some(v) = field_kib(line, "Size") {
            m.size_kib = v;
        } else if let Some(v) = field_kib(line, "Rss") {
            m.rss_kib = v;
        } else if let Some(v) = field_kib(line, "Pss") {
            m.pss_kib = v;
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            m.dontfork = flags.split_whitespace().any(|f| f == "dc");
        }
    }
    out
}

/// Parses the text of `/proc/PID/smaps_rollup`.
pub fn parse_rollup(text: &str) -> Rollup {
    let mut r = Rollup::default();
    for line in text.lines() {
        if let Some(v) = field_kib(line, "Rss") {
            r.rss_kib = v;
        } else if let Some(v) = field_kib(line, "Pss") {
            r.pss_kib = v;
        }
    }
    r
}

/// The guest RAM of a VM with `memory_mib`: the `MADV_DONTFORK` mappings
/// (vmrun marks its guest RAM so, including the kernel and initrd pages
/// mapped from their files, see `machine::file_mapping`) when they add up
/// to the RAM's size; failing that, for each of its RAM regions
/// (`arch::x86_64::memory_map::ram_regions`), the anonymous mapping of
/// exactly that size with the most resident pages. `None` unless found.
pub fn find_guest_ram(mappings: &[Mapping], memory_mib: u64) -> Option<GuestRamReport> {
    find_dontfork(mappings, memory_mib).or_else(|| find_by_region_size(mappings, memory_mib))
}

fn find_dontfork(mappings: &[Mapping], memory_mib: u64) -> Option<GuestRamReport> {
    let found = sum_of(mappings.iter().filter(|m| m.dontfork));
    (found.size_kib == memory_mib << 10).then_some(found)
}

/// The report of `mappings` taken together.
fn sum_of<'a>(mappings: impl Iterator<Item = &'a Mapping>) -> GuestRamReport {
    let mut found = GuestRamReport {
        mappings: Vec::new(),
        size_kib: 0,
        rss_kib: 0,
        pss_kib: 0,
    };
    for m in mappings {
        found.mappings.push(m.range.clone());
        found.size_kib += m.size_kib;
        found.rss_kib += m.rss_kib;
        found.pss_kib += m.pss_kib;
    }
    found
}

fn find_by_region_size(mappings: &[Mapping], memory_mib: u64) -> Option<GuestRamReport> {
    let mut used = vec![false; mappings.len()];
    for (_, len) in ram_regions(memory_mib << 20) {
        let want_kib = (len as u64) >> 10;
        let (i, _) = mappings
            .iter()
            .enumerate()
            .filter(|(i, m)| m.anonymous && m.size_kib == want_kib && !used[*i])
            .max_by_key(|(_, m)| m.rss_kib)?;
        used[i] = true;
    }
    Some(sum_of(
        mappings
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(m, _)| m),
    ))
}

/// The memory report of the process `pid` (a VMM with `memory_mib` of
/// guest RAM) from its `smaps_rollup` and `smaps` texts.
pub fn memory_report(
    pid: u32,
    memory_mib: u64,
    settle_ms: u64,
    rollup: &str,
    smaps: &str,
) -> MemoryReport {
    let total = parse_rollup(rollup);
    let guest_ram = find_guest_ram(&parse_smaps(smaps), memory_mib);
    MemoryReport {
        pid,
        guest_memory_mib: memory_mib,
        settle_ms,
        rss_kib: total.rss_kib,
        pss_kib: total.pss_kib,
        vmm_rss_without_guest_kib: guest_ram
            .as_ref()
            .map(|g| total.rss_kib.saturating_sub(g.rss_kib)),
        vmm_pss_without_guest_kib: guest_ram
            .as_ref()
            .map(|g| total.pss_kib.saturating_sub(g.pss_kib)),
        guest_ram,
    }
}

/// Reads `/proc/PID/FILE`.
pub fn read_proc(pid: u32, file: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
}

/// The process's whole PSS (KiB).
pub fn pss_kib(pid: u32) -> io::Result<u64> {
    Ok(parse_rollup(&read_proc(pid, "smaps_rollup")?).pss_kib)
}

/// `MemAvailable` of `/proc/meminfo` text (KiB).
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| field_kib(l, "MemAvailable"))
}

/// The system's `MemAvailable` now (KiB).
pub fn mem_available_kib() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse_mem_available(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no MemAvailable in /proc/meminfo",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0200000 r-xp 00000000 08:01 1234 /usr/bin/vmrun
Size:               2048 kB
Rss:                1500 kB
Pss:                 900 kB
7f0000000000-7f0008000000 rw-p 00000000 00:00 0 
Size:             131072 kB
KernelPageSize:        4 kB
Rss:               20480 kB
Pss:               20480 kB
Shared_Clean:          0 kB
7f0010000000-7f0014000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                 132 kB
Pss:                 132 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  40 kB
Pss:                  40 kB
";

    const ROLLUP: &str = "\
55d0c0000000-7ffc00021000 ---p 00000000 00:00 0                          [rollup]
Rss:               25000 kB
Pss:               23000 kB
Pss_Anon:          21000 kB
";

    #[test]
    fn guest_ram_split_by_mapped_kernel_pages_is_found_whole() {
        let smaps = "\
7f0000000000-7f0001000000 rw-p 00000000 00:00 0 
Size:              16384 kB
Rss:                 100 kB
Pss:                 100 kB
VmFlags: rd wr mr mw me dc ac sd 
7f0001000000-7f0002000000 rw-p 00200000 00:1f 77 /var/cache/vmrun/kernel/x/vmlinux
Size:              16384 kB
Rss:                3000 kB
Pss:                1000 kB
VmFlags: rd wr mr mw me dc ac sd 
7f0002000000-7f0008000000 rw-p 00000000 00:00 0 
Size:              98304 kB
Rss:               20000 kB
Pss:               20000 kB
VmFlags: rd wr mr mw me dc ac sd 
7f0010000000-7f0018000000 rw-p 00000000 00:00 0 
Size:             131072 kB
Rss:                   4 kB
Pss:                   4 kB
VmFlags: rd wr mr mw me ac sd 
";
        let ram = find_guest_ram(&parse_smaps(smaps), 128).unwrap();
        assert_eq!(ram.mappings.len(), 3);
        assert_eq!(
            (ram.size_kib, ram.rss_kib, ram.pss_kib),
            (131072, 23100, 21100)
        );
    }

    #[test]
    fn merged_guest_ram_is_found_by_its_dontfork_flag() {
        let smaps = "\
7f0000000000-7f0008400000 rw-p 00000000 00:00 0 
Size:             135168 kB
Rss:               20480 kB
Pss:               20480 kB
VmFlags: rd wr mr mw me ac sd 
7f0010000000-7f0014000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                4096 kB
Pss:                4096 kB
VmFlags: rd wr mr mw me dc ac sd 
7f0014000000-7f0018000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                   4 kB
Pss:                   4 kB
VmFlags: rd wr mr mw me dc ac sd hg 
";
        let m = parse_smaps(smaps);
        assert!(!m[0].dontfork && m[1].dontfork && m[2].dontfork);
        let ram = find_guest_ram(&m, 128).unwrap();
        assert_eq!(ram.mappings.len(), 2);
        assert_eq!(ram.rss_kib, 4100);
        assert!(find_guest_ram(&m, 256).is_none());
    }

    #[test]
    fn smaps_mappings_and_their_sizes() {
        let m = parse_smaps(SMAPS);
        assert_eq!(m.len(), 4);
        assert!(!m[0].anonymous, "a file mapping");
        assert!(m[1].anonymous && m[2].anonymous);
        assert!(!m[3].anonymous, "[stack] is named");
        assert_eq!(
            (m[1].size_kib, m[1].rss_kib, m[1].pss_kib),
            (131072, 20480, 20480)
        );
        assert_eq!(m[1].range, "7f0000000000-7f0008000000");
    }

    #[test]
    fn guest_ram_is_the_anonymous_mapping_of_the_ram_size() {
        let ram = find_guest_ram(&parse_smaps(SMAPS), 128).unwrap();
        assert_eq!(ram.mappings, ["7f0000000000-7f0008000000"]);
        assert_eq!((ram.size_kib, ram.rss_kib), (131072, 20480));
        // A 64 MiB malloc arena is not a 256 MiB guest's RAM.
        assert!(find_guest_ram(&parse_smaps(SMAPS), 256).is_none());
    }

    #[test]
    fn report_subtracts_the_guest_ram() {
        let r = memory_report(42, 128, 1000, ROLLUP, SMAPS);
        assert_eq!((r.rss_kib, r.pss_kib), (25000, 23000));
        assert_eq!(r.vmm_rss_without_guest_kib, Some(25000 - 20480));
        assert_eq!(r.vmm_pss_without_guest_kib, Some(23000 - 20480));
        let r = memory_report(42, 512, 1000, ROLLUP, SMAPS);
        assert_eq!((r.guest_ram, r.vmm_pss_without_guest_kib), (None, None));
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(20_000_000));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }
}
