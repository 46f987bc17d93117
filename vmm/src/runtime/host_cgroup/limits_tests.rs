use serde_json::json;

use super::*;

const MIB: i64 = 1 << 20;

fn overhead() -> VmOverhead {
    VmOverhead {
        memory_bytes: 16 * MIB as u64,
        threads: 5,
    }
}

/// (file, value) pairs of a plan.
fn files(resources: Value, version: CgroupVersion) -> Vec<(&'static str, String)> {
    plan(Some(&resources), overhead(), version)
        .unwrap()
        .into_iter()
        .map(|w| (w.file, w.value))
        .collect()
}

fn err(resources: Value, version: CgroupVersion) -> String {
    plan(Some(&resources), overhead(), version)
        .unwrap_err()
        .to_string()
}

fn s(v: i64) -> String {
    v.to_string()
}

#[test]
fn nothing_to_write_without_resources() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        assert!(plan(None, overhead(), version).unwrap().is_empty());
        assert!(plan(Some(&Value::Null), overhead(), version)
            .unwrap()
            .is_empty());
        assert!(files(
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
            version
        )
        .is_empty());
        assert!(files(
            json!({"memory": {"limit": 0}, "pids": {"limit": 0}}),
            version
        )
        .is_empty());
    }
}

#[test]
fn memory_gets_the_vm_overhead_on_v1() {
    let r = json!({"memory": {"limit": 64 * MIB, "swap": 128 * MIB, "reservation": 32 * MIB, "swappiness": 10}});
    assert_eq!(
        files(r, CgroupVersion::V1),
        [
            ("memory.limit_in_bytes", s(80 * MIB)),
            (V1_MEMSW, s(144 * MIB)),
            ("memory.soft_limit_in_bytes", s(48 * MIB)),
            ("memory.swappiness", s(10)),
        ]
    );
    let unlimited = plan(
        Some(&json!({"memory": {"limit": -1}})),
        overhead(),
        CgroupVersion::V1,
    )
    .unwrap();
    assert_eq!(unlimited[0].value, "-1");
    assert_eq!((unlimited[1].file, unlimited[1].optional), (V1_MEMSW, true));
}

#[test]
fn memory_gets_the_vm_overhead_on_v2() {
    let r = json!({"memory": {"limit": 64 * MIB, "swap": 128 * MIB, "reservation": 32 * MIB, "swappiness": 10}});
    assert_eq!(
        files(r, CgroupVersion::V2),
        [
            ("memory.max", s(80 * MIB)),
            // memory+swap 128 MiB − memory 64 MiB: the overhead cancels.
            ("memory.swap.max", s(64 * MIB)),
            ("memory.low", s(48 * MIB)),
        ]
    );
    assert_eq!(
        files(json!({"memory": {"limit": -1}}), CgroupVersion::V2),
        [
            ("memory.max", "max".into()),
            ("memory.swap.max", "max".into())
        ]
    );
    assert_eq!(
        files(
            json!({"memory": {"limit": 64 * MIB, "swap": -1}}),
            CgroupVersion::V2
        ),
        [
            ("memory.max", s(80 * MIB)),
            ("memory.swap.max", "max".into())
        ]
    );
    // Huge limits saturate instead of overflowing.
    assert_eq!(
        files(json!({"memory": {"limit": i64::MAX}}), CgroupVersion::V2),
        [("memory.max", s(i64::MAX))]
    );
}

#[test]
fn bad_memory_values_name_the_field() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let e = err(json!({"memory": {"limit": "1g"}}), version);
        assert!(
            e.contains("linux.resources.memory.limit") && e.contains("integer"),
            "{e}"
        );
        let e = err(json!({"memory": {"limit": -2}}), version);
        assert!(e.contains("linux.resources.memory.limit"), "{e}");
        let e = err(json!({"memory": {"limit": 64 * MIB, "swap": MIB}}), version);
        assert!(e.contains("linux.resources.memory.swap"), "{e}");
        let e = err(json!("not an object"), version);
        assert!(e.contains("linux.resources"), "{e}");
    }
    let e = err(json!({"memory": {"swap": 64 * MIB}}), CgroupVersion::V2);
    assert!(
        e.contains("linux.resources.memory.swap") && e.contains("without memory.limit"),
        "{e}"
    );
    let e = err(json!({"memory": {"swappiness": 101}}), CgroupVersion::V1);
    assert!(e.contains("swappiness"), "{e}");
}

#[test]
fn cpu_limits_follow_runc() {
    let r = json!({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"}});
    assert_eq!(
        files(r.clone(), CgroupVersion::V1),
        [
            ("cpu.shares", s(1024)),
            ("cpu.cfs_period_us", s(100000)),
            ("cpu.cfs_quota_us", s(50000)),
            ("cpuset.cpus", "0-1".into()),
            ("cpuset.mems", "0".into()),
        ]
    );
    assert_eq!(
        files(r, CgroupVersion::V2),
        [
            // runc: 1 + ((1024 - 2) * 9999) / 262142
            ("cpu.weight", s(39)),
            ("cpu.max", "50000 100000".into()),
            ("cpuset.cpus", "0-1".into()),
            ("cpuset.mems", "0".into()),
        ]
    );
    assert_eq!(
        files(json!({"cpu": {"quota": -1}}), CgroupVersion::V2),
        [("cpu.max", "max".into())]
    );
    assert_eq!(
        files(
            json!({"cpu": {"period": 20000, "cpus": ""}}),
            CgroupVersion::V2
        ),
        [("cpu.max", "max 20000".into())]
    );
    assert_eq!(
        files(json!({"cpu": {"shares": 2}}), CgroupVersion::V2),
        [("cpu.weight", s(1))]
    );
    assert_eq!(
        files(json!({"cpu": {"shares": 262144}}), CgroupVersion::V2),
        [("cpu.weight", s(10000))]
    );
    let e = err(json!({"cpu": {"cpus": 3}}), CgroupVersion::V1);
    assert!(e.contains("linux.resources.cpu.cpus"), "{e}");
    let e = err(json!({"cpu": {"quota": -5}}), CgroupVersion::V1);
    assert!(e.contains("linux.resources.cpu.quota"), "{e}");
}

#[test]
fn pids_limit_gets_the_vmm_threads() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        assert_eq!(
            files(json!({"pids": {"limit": 100}}), version),
            [("pids.max", s(105))]
        );
        assert_eq!(
            files(json!({"pids": {"limit": -1}}), version),
            [("pids.max", "max".into())]
        );
    }
}

#[test]
fn v1_memory_and_swap_are_ordered_so_swap_never_drops_below_memory() {
    let mut writes = plan(
        Some(&json!({"memory": {"limit": 64 * MIB, "swap": 128 * MIB}})),
        overhead(),
        CgroupVersion::V1,
    )
    .unwrap();
    let order = |w: &[LimitWrite]| w.iter().map(|w| w.file).collect::<Vec<_>>();
    // Fresh cgroup (memsw unlimited): lower memory first.
    order_v1_memory(&mut writes, Some(i64::MAX as u64));
    assert_eq!(order(&writes), ["memory.limit_in_bytes", V1_MEMSW]);
    // memsw now below the new value: raise it first.
    order_v1_memory(&mut writes, Some(32 * MIB as u64));
    assert_eq!(order(&writes), [V1_MEMSW, "memory.limit_in_bytes"]);
    order_v1_memory(&mut writes, Some(i64::MAX as u64));
    assert_eq!(order(&writes), ["memory.limit_in_bytes", V1_MEMSW]);
    // Unlimited swap always goes first.
    let mut unlimited = plan(
        Some(&json!({"memory": {"limit": 64 * MIB, "swap": -1}})),
        overhead(),
        CgroupVersion::V1,
    )
    .unwrap();
    order_v1_memory(&mut unlimited, Some(i64::MAX as u64));
    assert_eq!(order(&unlimited), [V1_MEMSW, "memory.limit_in_bytes"]);
}
