//! What the host refuses in a runtime spec before any VM starts: strings
//! the kernel cannot take as given (a NUL byte ends a C string: an argument
//! would run truncated), fields the guest could not parse (wrong types,
//! numbers out of their type's range, unknown enum words: the guest agent
//! parses with the same `oci-spec` types) and values the kernel would
//! reject once the container is being set up.
//!
//! Each problem names the field by its JSON path (`process.args[1]`), as
//! the guest's own parser does.

use oci_spec::runtime::{Process, Spec};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One field of the spec that cannot be run as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldProblem {
    /// JSON path of the field (`process.env[2]`, `annotations.x`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Checks a whole `config.json`.
pub fn check_spec(spec: &Value) -> Result<(), FieldProblem> {
    no_nul_bytes(spec, "")?;
    let typed: Spec = parse_as(spec, "")?;
    if let Some(process) = typed.process() {
        check_process_values(process, "process")?;
    }
    if let Some(hooks) = typed.hooks() {
        check_hooks(hooks)?;
    }
    Ok(())
}

/// Hooks run on the host: an absolute path (the spec's MUST; a relative
/// one would resolve against wherever the caller happens to be) and a
/// positive timeout.
fn check_hooks(hooks: &oci_spec::runtime::Hooks) -> Result<(), FieldProblem> {
    use super::hooks::HookPhase;
    for phase in HookPhase::ALL {
        for (i, hook) in phase.of(hooks).iter().enumerate() {
            let field = |name: &str| format!("hooks.{}[{i}].{name}", phase.name());
            if !hook.path().is_absolute() {
                return Err(FieldProblem {
                    field: field("path"),
                    problem: format!("{:?} is not an absolute path", hook.path()),
                });
            }
            if let Some(timeout) = hook.timeout().filter(|&t| t <= 0) {
                return Err(FieldProblem {
                    field: field("timeout"),
                    problem: format!("{timeout} is not greater than zero"),
                });
            }
        }
    }
    Ok(())
}

/// Checks an exec's `process` object (its fields named `process.…`).
pub fn check_process(process: &Value) -> Result<(), FieldProblem> {
    no_nul_bytes(process, "process")?;
    // An exec's process may leave out `user` (uid 0, as runc reads it).
    let mut complete = process.clone();
    if let Some(object) = complete.as_object_mut() {
        if object.get("user").is_none_or(Value::is_null) {
            object.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
        }
    }
    let typed: Process = parse_as(&complete, "process")?;
    check_process_values(&typed, "process")
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty() || field == ".") {
        (_, true) if !prefix.is_empty() => prefix.to_string(),
        (_, true) => "(top level)".to_string(),
        (true, false) => field.to_string(),
        (false, false) if field.starts_with('[') => format!("{prefix}{field}"),
        (false, false) => format!("{prefix}.{field}"),
    }
}

/// The first string (value or object key) holding a NUL byte.
fn no_nul_bytes(value: &Value, path: &str) -> Result<(), FieldProblem> {
    let nul = |field: String| FieldProblem {
        field,
        problem: "contains a NUL byte (the kernel would see it cut short there)".to_string(),
    };
    match value {
        Value::String(s) if s.contains('\0') => Err(nul(join(path, ""))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| no_nul_bytes(item, &join(path, &format!("[{i}]")))),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let field = join(path, key);
            if key.contains('\0') {
                return Err(nul(field));
            }
            no_nul_bytes(item, &field)
        }),
        _ => Ok(()),
    }
}

fn parse_as<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldProblem> {
    serde_path_to_error::deserialize(value).map_err(|err| FieldProblem {
        field: join(prefix, &err.path().to_string()),
        problem: err.into_inner().to_string(),
    })
}

/// Values of the right type the kernel would still refuse.
fn check_process_values(process: &Process, prefix: &str) -> Result<(), FieldProblem> {
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(FieldProblem {
                field: format!("{prefix}.oomScoreAdj"),
                problem: format!("{adj} is outside -1000..1000"),
            });
        }
    }
    for (i, rlimit) in process.rlimits().iter().flatten().enumerate() {
        if rlimit.soft() > rlimit.hard() {
            return Err(FieldProblem {
                field: format!("{prefix}.rlimits[{i}]"),
                problem: format!(
                    "soft limit {} is above the hard limit {}",
                    rlimit.soft(),
                    rlimit.hard()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh", "-c", "true"], "cwd": "/", "env": ["A=1"],
                        "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "hostname": "box",
            "annotations": {"io.example/x": "y"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
        })
    }

    fn problem(spec: &Value) -> FieldProblem {
        check_spec(spec).unwrap_err()
    }

    #[test]
    fn a_good_spec_passes() {
        assert_eq!(check_spec(&spec()), Ok(()));
    }

    #[test]
    fn nul_bytes_anywhere_are_named_by_their_path() {
        type Spoil = fn(&mut Value);
        let cases: [(&str, Spoil); 7] = [
            ("process.args[1]", |s| {
                s["process"]["args"][1] = json!("-\0c")
            }),
            ("process.env[0]", |s| s["process"]["env"][0] = json!("A=\0")),
            ("process.cwd", |s| s["process"]["cwd"] = json!("/tmp\0/x")),
            ("hostname", |s| s["hostname"] = json!("bo\0x")),
            ("mounts[0].destination", |s| {
                s["mounts"][0]["destination"] = json!("/pr\0oc")
            }),
            ("annotations.io.example/x", |s| {
                s["annotations"]["io.example/x"] = json!("\0")
            }),
            ("annotations.k\0", |s| s["annotations"]["k\0"] = json!("v")),
        ];
        for (field, spoil) in cases {
            let mut s = spec();
            spoil(&mut s);
            let p = problem(&s);
            assert_eq!(p.field, field);
            assert!(p.problem.contains("NUL byte"), "{p}");
        }
    }

    #[test]
    fn types_and_ranges_the_guest_cannot_take_are_named() {
        let mut s = spec();
        s["process"]["user"]["uid"] = json!(4294967296u64);
        assert_eq!(problem(&s).field, "process.user.uid");

        let mut s = spec();
        s["linux"] = json!({"namespaces": [{"type": "pid"}, {"type": "time-travel"}]});
        assert_eq!(problem(&s).field, "linux.namespaces[1].type");

        let mut s = spec();
        s["process"]["oomScoreAdj"] = json!(1001);
        let p = problem(&s);
        assert_eq!(p.field, "process.oomScoreAdj");
        assert!(p.problem.contains("1001"), "{p}");

        let mut s = spec();
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                   {"type": "RLIMIT_NPROC", "soft": 20, "hard": 10}]);
        assert_eq!(problem(&s).field, "process.rlimits[1]");
    }

    #[test]
    fn hooks_need_an_absolute_path_and_a_positive_timeout() {
        let mut s = spec();
        s["hooks"] = json!({"poststop": [{"path": "/bin/true"}, {"path": "bin/true"}]});
        assert_eq!(problem(&s).field, "hooks.poststop[1].path");
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]});
        assert_eq!(
            problem(&s).to_string(),
            "hooks.createRuntime[0].timeout: 0 is not greater than zero"
        );
        s["hooks"] = json!({"prestart": [{"path": 7}]});
        assert_eq!(problem(&s).field, "hooks.prestart[0].path");
        s["hooks"] = json!({"startContainer": [{"path": "/x", "args": ["x"], "env": ["A=1"], "timeout": 5}]});
        check_spec(&s).unwrap();
    }

    #[test]
    fn an_exec_process_is_checked_the_same_way() {
        let process = json!({"args": ["echo", "a\0b"], "cwd": "/"});
        let p = check_process(&process).unwrap_err();
        assert_eq!(p.field, "process.args[1]");
        assert_eq!(
            check_process(&json!({"args": ["true"], "cwd": "/"})),
            Ok(())
        );
        let p =
            check_process(&json!({"args": ["true"], "cwd": "/", "user": {"uid": -1}})).unwrap_err();
        assert_eq!(p.field, "process.user.uid");
    }
}
