//! The size of the microVM a container boots (a pod's sandbox, or a
//! container on its own): vCPUs and guest memory. For each of the two the
//! first source that says something wins:
//!
//! 1. the flag (`--cpus`, `--memory`);
//! 2. Kata's annotations, an exact size:
//!    [`KATA_VCPUS`] (`io.katacontainers.config.hypervisor.default_vcpus`)
//!    and [`KATA_MEMORY`] (`...default_memory`, MiB);
//! 3. containerd CRI's sandbox-size annotations, the pod's limits summed
//!    by the kubelet: [`CRI_CPU_QUOTA`] / [`CRI_CPU_PERIOD`] (µs) and
//!    [`CRI_MEMORY`] (bytes); `0` (or a quota of `-1`) means no limit;
//! 4. the spec's own `linux.resources` (cpu quota/period, memory limit);
//! 5. the default: 1 vCPU and 128 MiB ([`POD_MEMORY_MIB`] for a pod's
//!    sandbox).
//!
//! A limit (3, 4) gives `ceil(quota / period)` vCPUs, at most
//! [`MAX_DEFAULT_VCPUS`], and the memory limit plus [`GUEST_OVERHEAD_MIB`]
//! for the guest kernel and agent, never less than the default. The
//! memory vmrun picks itself (3-5) is capped at the host's RAM (a limit
//! may overcommit, guest memory is demand-paged); a size asked for (1, 2)
//! must fit. Every sizing annotation present is checked, used or not: a
//! value that is not a number or is out of range is refused with an error
//! naming the annotation, before any VM exists.

use serde_json::Value;

use crate::arch::x86_64::mptable::MAX_CPUS;
use crate::machine::config::{DEFAULT_MEMORY_MIB, DEFAULT_VCPUS, MIN_MEMORY_MIB};
use crate::runtime::pod::{pod_role, PodRole, POD_MEMORY_MIB};

/// Kata's guest vCPU count annotation.
pub const KATA_VCPUS: &str = "io.katacontainers.config.hypervisor.default_vcpus";
/// Kata's guest memory annotation (MiB).
pub const KATA_MEMORY: &str = "io.katacontainers.config.hypervisor.default_memory";
/// containerd CRI's pod CPU quota annotation (µs per period).
pub const CRI_CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
/// containerd CRI's pod CPU period annotation (µs).
pub const CRI_CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";
/// containerd CRI's pod memory limit annotation (bytes).
pub const CRI_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";

/// Guest memory the guest kernel and agent need beside a memory limit (MiB).
pub const GUEST_OVERHEAD_MIB: u64 = 64;
/// Most vCPUs a CPU quota gives a VM.
pub const MAX_DEFAULT_VCPUS: u8 = 8;
/// The CFS period when a quota comes without one (µs, the kernel's default).
const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// The CFS period's bounds (µs), as the kernel accepts them.
const CPU_PERIOD_RANGE_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;

/// A sizing annotation the VM cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmSizeError {
    /// Not a number of the kind the annotation holds.
    #[error("annotation {key}: {value} is not {expected}")]
    NotANumber {
        /// The annotation.
        key: &'static str,
        /// Its value (as JSON).
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A number outside what the annotation accepts.
    #[error("annotation {key}: {value} is out of range ({range})")]
    OutOfRange {
        /// The annotation.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        range: String,
    },
}

/// A microVM's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSize {
    /// vCPUs.
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u64,
}

/// The size of the VM `spec` boots: `cpus`/`memory_mib` (the flags) where
/// given, else what its annotations, resources or the defaults say (see
/// the module docs); `host_mib` is the host's RAM, if known.
pub fn vm_size(
    cpus: Option<u8>,
    memory_mib: Option<u64>,
    spec: &Value,
    host_mib: Option<u64>,
) -> Result<VmSize, VmSizeError> {
    let asked = Annotated::read(spec, host_mib)?;
    let vcpus = cpus
        .or(asked.vcpus)
        .or(asked.cri_vcpus)
        .or_else(|| resources_vcpus(spec))
        .unwrap_or(DEFAULT_VCPUS);
    let memory_mib = match memory_mib.or(asked.memory_mib) {
        Some(mib) => mib,
        None => {
            let base = match pod_role("", spec) {
                PodRole::Sandbox => POD_MEMORY_MIB,
                _ => DEFAULT_MEMORY_MIB,
            };
            let picked = match asked.cri_limit_mib.or_else(|| resources_limit_mib(spec)) {
                Some(limit) => base.max(limit.saturating_add(GUEST_OVERHEAD_MIB)),
                None => base,
            };
            host_mib.map_or(picked, |host| picked.min(host))
        }
    };
    Ok(VmSize { vcpus, memory_mib })
}

/// What the sizing annotations say (each checked).
#[derive(Debug, Default, PartialEq, Eq)]
struct Annotated {
    /// [`KATA_VCPUS`].
    vcpus: Option<u8>,
    /// [`KATA_MEMORY`].
    memory_mib: Option<u64>,
    /// vCPUs for [`CRI_CPU_QUOTA`] / [`CRI_CPU_PERIOD`].
    cri_vcpus: Option<u8>,
    /// [`CRI_MEMORY`] in MiB (rounded up), when it is a limit.
    cri_limit_mib: Option<u64>,
}

impl Annotated {
    fn read(spec: &Value, host_mib: Option<u64>) -> Result<Self, VmSizeError> {
        let vcpus = match text(spec, KATA_VCPUS)? {
            Some(v) => Some(kata_vcpus(v)?),
            None => None,
        };
        let memory_mib = match text(spec, KATA_MEMORY)? {
            Some(v) => Some(kata_memory(v, host_mib)?),
            None => None,
        };
        let cri_limit_mib = match text(spec, CRI_MEMORY)? {
            Some(v) => {
                let bytes = integer(CRI_MEMORY, v, "a whole number of bytes")?;
                if bytes < 0 {
                    return Err(out_of_range(CRI_MEMORY, v, "0 (no limit) or more bytes"));
                }
                (bytes > 0).then(|| (bytes as u64).div_ceil(1 << 20))
            }
            None => None,
        };
        let quota = match text(spec, CRI_CPU_QUOTA)? {
            Some(v) => {
                let quota = integer(CRI_CPU_QUOTA, v, "a whole number of microseconds")?;
                if quota < -1 {
                    return Err(out_of_range(
                        CRI_CPU_QUOTA,
                        v,
                        "-1 or 0 (no limit), or more microseconds",
                    ));
                }
                u64::try_from(quota).ok().filter(|q| *q > 0)
            }
            None => None,
        };
        let period = match text(spec, CRI_CPU_PERIOD)? {
            Some(v) => {
                let period = integer(CRI_CPU_PERIOD, v, "a whole number of microseconds")?;
                let period = u64::try_from(period)
                    .map_err(|_| out_of_range(CRI_CPU_PERIOD, v, &period_range("0 (unset) or ")))?;
                // A period only matters (and is only checked) with a quota.
                if quota.is_some() && !CPU_PERIOD_RANGE_US.contains(&period) {
                    return Err(out_of_range(CRI_CPU_PERIOD, v, &period_range("")));
                }
                Some(period).filter(|p| *p > 0)
            }
            None => None,
        };
        let cri_vcpus = quota.map(|q| vcpus_for_quota(q, period.unwrap_or(DEFAULT_CPU_PERIOD_US)));
        Ok(Self {
            vcpus,
            memory_mib,
            cri_vcpus,
            cri_limit_mib,
        })
    }
}

/// The text of annotation `key`, if present; an error if it is no string.
fn text<'a>(spec: &'a Value, key: &'static str) -> Result<Option<&'a str>, VmSizeError> {
    match spec.get("annotations").and_then(|a| a.get(key)) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(VmSizeError::NotANumber {
            key,
            value: other.to_string(),
            expected: "a string (annotations are strings)",
        }),
    }
}

fn integer(key: &'static str, value: &str, expected: &'static str) -> Result<i64, VmSizeError> {
    value.parse::<i64>().map_err(|_| VmSizeError::NotANumber {
        key,
        value: format!("{value:?}"),
        expected,
    })
}

fn out_of_range(key: &'static str, value: &str, range: &str) -> VmSizeError {
    VmSizeError::OutOfRange {
        key,
        value: value.to_owned(),
        range: range.to_owned(),
    }
}

fn period_range(prefix: &str) -> String {
    format!(
        "{prefix}{}..={} microseconds",
        CPU_PERIOD_RANGE_US.start(),
        CPU_PERIOD_RANGE_US.end()
    )
}

/// [`KATA_VCPUS`]: a whole or fractional count (Kata 3 takes fractions),
/// rounded up, 1..=[`MAX_CPUS`].
fn kata_vcpus(value: &str) -> Result<u8, VmSizeError> {
    let count = value
        .parse::<f64>()
        .ok()
        .filter(|c| c.is_finite())
        .ok_or_else(|| VmSizeError::NotANumber {
            key: KATA_VCPUS,
            value: format!("{value:?}"),
            expected: "a number of vCPUs",
        })?;
    let rounded = count.ceil();
    if count <= 0.0 || rounded > f64::from(MAX_CPUS) {
        return Err(out_of_range(
            KATA_VCPUS,
            value,
            &format!("1..={MAX_CPUS} vCPUs"),
        ));
    }
    // In 1..=MAX_CPUS: fits a u8.
    Ok(rounded as u8)
}

/// [`KATA_MEMORY`]: whole MiB, at least [`MIN_MEMORY_MIB`], at most the
/// host's RAM.
fn kata_memory(value: &str, host_mib: Option<u64>) -> Result<u64, VmSizeError> {
    let mib = value.parse::<u64>().map_err(|_| VmSizeError::NotANumber {
        key: KATA_MEMORY,
        value: format!("{value:?}"),
        expected: "a whole number of MiB",
    })?;
    let too_big = host_mib.is_some_and(|host| mib > host);
    if mib < MIN_MEMORY_MIB || too_big {
        let range = match host_mib {
            Some(host) => format!("{MIN_MEMORY_MIB}..={host} MiB, this host's RAM"),
            None => format!("at least {MIN_MEMORY_MIB} MiB"),
        };
        return Err(out_of_range(KATA_MEMORY, value, &range));
    }
    Ok(mib)
}

/// `ceil(quota / period)`, 1..=[`MAX_DEFAULT_VCPUS`].
fn vcpus_for_quota(quota: u64, period: u64) -> u8 {
    let needed = quota
        .div_ceil(period.max(1))
        .clamp(1, u64::from(MAX_DEFAULT_VCPUS));
    u8::try_from(needed).unwrap_or(MAX_DEFAULT_VCPUS)
}

/// vCPUs for the spec's `linux.resources.cpu` quota, if it has one.
fn resources_vcpus(spec: &Value) -> Option<u8> {
    let cpu = spec.pointer("/linux/resources/cpu")?;
    let quota = cpu.get("quota").and_then(Value::as_i64)?;
    let period = cpu.get("period").and_then(Value::as_u64)?;
    (quota > 0 && period > 0).then(|| vcpus_for_quota(quota as u64, period))
}

/// The spec's `linux.resources.memory.limit` in MiB (rounded up), if any.
fn resources_limit_mib(spec: &Value) -> Option<u64> {
    spec.pointer("/linux/resources/memory/limit")
        .and_then(Value::as_i64)
        .filter(|l| *l > 0)
        .map(|l| (l as u64).div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::pod::CRI_TYPE;
    use serde_json::json;

    const HOST: Option<u64> = Some(16 * 1024);

    fn annotated(pairs: &[(&str, &str)]) -> Value {
        let mut annotations = serde_json::Map::new();
        annotations.insert(CRI_TYPE.into(), json!("sandbox"));
        for (k, v) in pairs {
            annotations.insert((*k).into(), json!(v));
        }
        json!({"annotations": annotations})
    }

    fn size(spec: &Value) -> VmSize {
        vm_size(None, None, spec, HOST).expect("a size")
    }

    fn refused(spec: &Value) -> String {
        vm_size(None, None, spec, HOST)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn defaults_without_anything() {
        assert_eq!(
            size(&json!({})),
            VmSize {
                vcpus: DEFAULT_VCPUS,
                memory_mib: DEFAULT_MEMORY_MIB
            }
        );
        assert_eq!(
            size(&annotated(&[])),
            VmSize {
                vcpus: DEFAULT_VCPUS,
                memory_mib: POD_MEMORY_MIB
            }
        );
    }

    #[test]
    fn kata_annotations_give_an_exact_size() {
        let spec = annotated(&[(KATA_VCPUS, "3"), (KATA_MEMORY, "300")]);
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 3,
                memory_mib: 300
            }
        );
        // Kata 3 takes fractional vCPUs: rounded up.
        assert_eq!(size(&annotated(&[(KATA_VCPUS, "1.5")])).vcpus, 2);
    }

    #[test]
    fn kata_annotations_out_of_range_or_not_numbers_are_refused() {
        for (key, value) in [
            (KATA_VCPUS, "0"),
            (KATA_VCPUS, "-1"),
            (KATA_VCPUS, "33"),
            (KATA_MEMORY, "1"),
            (KATA_MEMORY, "16385"),
        ] {
            let e = refused(&annotated(&[(key, value)]));
            assert!(e.contains(key) && e.contains("out of range"), "{e}");
        }
        for (key, value) in [
            (KATA_VCPUS, "two"),
            (KATA_VCPUS, "inf"),
            (KATA_VCPUS, ""),
            (KATA_MEMORY, "512Mi"),
            (KATA_MEMORY, "-5"),
            (KATA_MEMORY, "1.5"),
        ] {
            let e = refused(&annotated(&[(key, value)]));
            assert!(e.contains(key) && e.contains("is not"), "{e}");
        }
        // With the host's RAM unknown only the floor is checked.
        assert_eq!(
            vm_size(None, None, &annotated(&[(KATA_MEMORY, "99999")]), None)
                .unwrap()
                .memory_mib,
            99999
        );
    }

    #[test]
    fn cri_sandbox_annotations_size_the_pod_from_its_limits() {
        let spec = annotated(&[
            (CRI_CPU_QUOTA, "250000"),
            (CRI_CPU_PERIOD, "100000"),
            (CRI_MEMORY, &(1u64 << 30).to_string()),
        ]);
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 3,
                memory_mib: 1024 + GUEST_OVERHEAD_MIB
            }
        );
        // containerd's "no limits": quota 0 (or -1), memory 0.
        let none = annotated(&[
            (CRI_CPU_QUOTA, "0"),
            (CRI_CPU_PERIOD, "100000"),
            (CRI_MEMORY, "0"),
        ]);
        assert_eq!(size(&none), size(&annotated(&[])));
        assert_eq!(size(&annotated(&[(CRI_CPU_QUOTA, "-1")])).vcpus, 1);
        // A small limit keeps the pod's default; a period may be absent
        // (the kernel's 100 ms), or unset with no quota.
        assert_eq!(
            size(&annotated(&[(CRI_MEMORY, "1")])).memory_mib,
            POD_MEMORY_MIB
        );
        assert_eq!(size(&annotated(&[(CRI_CPU_QUOTA, "150000")])).vcpus, 2);
        assert_eq!(
            size(&annotated(&[(CRI_CPU_QUOTA, "0"), (CRI_CPU_PERIOD, "0")])).vcpus,
            1
        );
        // A quota of many CPUs is capped; a limit beyond the host's RAM
        // gets the host's RAM (limits may overcommit).
        assert_eq!(
            size(&annotated(&[(CRI_CPU_QUOTA, "6400000")])).vcpus,
            MAX_DEFAULT_VCPUS
        );
        let huge = annotated(&[(CRI_MEMORY, &(64u64 << 30).to_string())]);
        assert_eq!(size(&huge).memory_mib, HOST.unwrap());
    }

    #[test]
    fn cri_annotations_out_of_range_or_not_numbers_are_refused() {
        for pairs in [
            &[(CRI_MEMORY, "-1")][..],
            &[(CRI_CPU_QUOTA, "-2")],
            &[(CRI_CPU_QUOTA, "50000"), (CRI_CPU_PERIOD, "999")],
            &[(CRI_CPU_QUOTA, "50000"), (CRI_CPU_PERIOD, "0")],
            &[(CRI_CPU_QUOTA, "50000"), (CRI_CPU_PERIOD, "1000001")],
            &[(CRI_CPU_PERIOD, "-100000")],
        ] {
            let e = refused(&annotated(pairs));
            let key = pairs.last().unwrap().0;
            assert!(e.contains(key) && e.contains("out of range"), "{e}");
        }
        for (key, value) in [
            (CRI_MEMORY, "1Gi"),
            (CRI_MEMORY, "1e9"),
            (CRI_CPU_QUOTA, "lots"),
            (CRI_CPU_PERIOD, " 100000"),
        ] {
            let e = refused(&annotated(&[(key, value)]));
            assert!(e.contains(key) && e.contains("is not"), "{e}");
        }
        let mut number = annotated(&[]);
        number["annotations"][CRI_MEMORY] = json!(1024);
        let e = refused(&number);
        assert!(e.contains(CRI_MEMORY) && e.contains("a string"), "{e}");
    }

    #[test]
    fn flag_beats_annotation_beats_resources_beats_default() {
        let resources = json!({
            "memory": {"limit": 2i64 << 30},
            "cpu": {"quota": 400000, "period": 100000}
        });
        let mut spec = annotated(&[]);
        spec["linux"] = json!({ "resources": resources });
        // Resources over the default.
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 4,
                memory_mib: 2048 + GUEST_OVERHEAD_MIB
            }
        );
        // CRI's annotations over resources.
        spec["annotations"][CRI_MEMORY] = json!((1u64 << 30).to_string());
        spec["annotations"][CRI_CPU_QUOTA] = json!("200000");
        spec["annotations"][CRI_CPU_PERIOD] = json!("100000");
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 2,
                memory_mib: 1024 + GUEST_OVERHEAD_MIB
            }
        );
        // Kata's over CRI's.
        spec["annotations"][KATA_MEMORY] = json!("768");
        spec["annotations"][KATA_VCPUS] = json!("5");
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 5,
                memory_mib: 768
            }
        );
        // The flags over everything, each on its own.
        let flagged = vm_size(Some(2), None, &spec, HOST).unwrap();
        assert_eq!(
            flagged,
            VmSize {
                vcpus: 2,
                memory_mib: 768
            }
        );
        let flagged = vm_size(None, Some(300), &spec, HOST).unwrap();
        assert_eq!(
            flagged,
            VmSize {
                vcpus: 5,
                memory_mib: 300
            }
        );
    }

    #[test]
    fn a_bad_annotation_is_refused_even_when_a_flag_wins() {
        let spec = annotated(&[(KATA_MEMORY, "lots")]);
        let e = vm_size(Some(1), Some(256), &spec, HOST).unwrap_err();
        assert!(e.to_string().contains(KATA_MEMORY), "{e}");
    }

    #[test]
    fn resources_alone_and_their_cap() {
        let spec = json!({"linux": {"resources": {
            "memory": {"limit": 1i64 << 30},
            "cpu": {"quota": 250000, "period": 100000}
        }}});
        assert_eq!(
            size(&spec),
            VmSize {
                vcpus: 3,
                memory_mib: 1024 + GUEST_OVERHEAD_MIB
            }
        );
        let small = json!({"linux": {"resources": {"memory": {"limit": 16i64 << 20}}}});
        assert_eq!(size(&small).memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(
            vm_size(None, None, &spec, Some(700)).unwrap().memory_mib,
            700
        );
    }
}
