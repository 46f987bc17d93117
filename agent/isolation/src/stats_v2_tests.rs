use super::*;

/// A fake cgroup v2 directory with the files of a guest cgroup.
fn cgroup(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn hugepages(sizes: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for size in sizes {
        std::fs::create_dir(dir.path().join(size)).unwrap();
    }
    dir
}

#[test]
fn a_full_cgroup_reads_like_runc() {
    let dir = cgroup(&[
        (
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\n\
             nr_throttled 2\nthrottled_usec 7\n",
        ),
        (
            "cpu.pressure",
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        ),
        ("memory.current", "4096\n"),
        ("memory.max", "1048576\n"),
        ("memory.peak", "8192\n"),
        ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
        ("memory.stat", "anon 1024\nfile 2048\n"),
        ("memory.swap.current", "100\n"),
        ("memory.swap.max", "max\n"),
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        (
            "io.stat",
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        ),
        ("cpuset.cpus.effective", "0-2,5\n"),
        ("cpuset.mems.effective", "0\n"),
        ("hugetlb.2MB.current", "0\n"),
        ("hugetlb.2MB.events", "max 4\n"),
    ]);
    let huge = hugepages(&["hugepages-2048kB", "hugepages-1048576kB"]);
    let stats = read(dir.path(), huge.path());

    assert_eq!(stats.cpu.usage.total, 1_500_000);
    assert_eq!(stats.cpu.usage.user, 1_000_000);
    assert_eq!(stats.cpu.usage.kernel, 500_000);
    assert_eq!(stats.cpu.throttling.periods, 10);
    assert_eq!(stats.cpu.throttling.throttled_periods, 2);
    assert_eq!(stats.cpu.throttling.throttled_time, 7_000);
    let psi = stats.cpu.psi.as_ref().unwrap();
    assert_eq!(psi.some.avg10, 1.5);
    assert_eq!(psi.some.total, 1234);

    assert_eq!(
        stats.memory.usage,
        MemoryEntry {
            limit: 1_048_576,
            usage: 4096,
            max: 8192,
            failcnt: 3
        }
    );
    // Swap as memory + swap; no swap limit stays "no limit".
    assert_eq!(stats.memory.swap.usage, 4196);
    assert_eq!(stats.memory.swap.limit, u64::MAX);
    assert_eq!(stats.memory.cache, 2048);
    assert_eq!(stats.memory.raw.get("anon"), Some(&1024));
    assert!(stats.memory.psi.is_none(), "no memory.pressure file");

    assert_eq!(stats.pids.current, 3);
    assert_eq!(stats.pids.limit, 0, "max is 0 for runc");

    let bytes: Vec<(&str, u64)> = stats
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|e| (e.op.as_str(), e.value))
        .collect();
    assert_eq!(bytes, [("Read", 4096), ("Write", 8192), ("Discard", 0)]);
    assert_eq!(stats.blkio.io_serviced_recursive.len(), 3);
    assert_eq!(stats.blkio.io_serviced_recursive[1].major, 254);

    assert_eq!(stats.cpuset.cpus, [0, 1, 2, 5]);
    assert_eq!(stats.cpuset.mems, [0]);

    // 2MB has files in the cgroup, 1GB does not.
    assert_eq!(stats.hugetlb.len(), 1);
    assert_eq!(stats.hugetlb["2MB"].failcnt, 4);

    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["memory"]["usage"]["limit"], 1_048_576);
    assert_eq!(json["pids"], serde_json::json!({"current": 3}));
}

#[test]
fn missing_controllers_leave_fields_empty() {
    // What a cgroup with no controllers enabled has.
    let dir = cgroup(&[("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n")]);
    let huge = hugepages(&[]);
    let stats = read(dir.path(), huge.path());
    assert_eq!(stats.cpu.usage.total, 10_000);
    assert_eq!(stats.cpu.throttling, Throttling::default());
    assert_eq!(stats.memory, Memory::default());
    assert_eq!(stats.pids, Pids::default());
    assert!(stats.hugetlb.is_empty());
    assert!(stats.blkio.io_service_bytes_recursive.is_empty());
}

#[test]
fn malformed_files_do_not_fail() {
    let dir = cgroup(&[
        ("cpu.stat", "usage_usec lots\n\nnonsense\n"),
        ("memory.current", "not a number"),
        (
            "io.stat",
            "garbage\n1:x rbytes=1\n8:0 rbytes=nope wbytes=5\n",
        ),
        ("cpuset.cpus.effective", "3-1,x,7\n"),
        ("cpu.pressure", "some\nfull avg10=bad\n"),
    ]);
    let huge = hugepages(&["hugepages-weird"]);
    let stats = read(dir.path(), huge.path());
    assert_eq!(stats.cpu.usage.total, 0);
    assert_eq!(stats.memory.usage, MemoryEntry::default());
    assert_eq!(stats.blkio.io_service_bytes_recursive.len(), 1);
    assert_eq!(stats.cpuset.cpus, [7]);
    assert_eq!(stats.cpu.psi.as_ref().unwrap().full.avg10, 0.0);
}

#[test]
fn page_size_names() {
    assert_eq!(page_size_name("hugepages-2048kB").as_deref(), Some("2MB"));
    assert_eq!(
        page_size_name("hugepages-1048576kB").as_deref(),
        Some("1GB")
    );
    assert_eq!(page_size_name("hugepages-64kB").as_deref(), Some("64KB"));
    assert_eq!(page_size_name("other"), None);
}
