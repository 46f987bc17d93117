//! Parsing `config.json` with errors that name the offending field.

use std::path::Path;

use crate::oci_spec::runtime::Spec;
use crate::IsolationError;

/// Parses a runtime spec from JSON bytes.
///
/// Unlike `Spec::load`, a mistake is reported with the JSON path of the
/// field (`linux.namespaces[1].type: unknown variant ...`).
pub fn parse_spec(json: &[u8]) -> Result<Spec, IsolationError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        IsolationError::Parse {
            field,
            source: err.into_inner(),
        }
    })?;
    de.end().map_err(|source| IsolationError::Parse {
        field: ".".into(),
        source,
    })?;
    Ok(spec)
}

/// Reads and parses `path` (usually `<bundle>/config.json`).
pub fn load_spec(path: &Path) -> Result<Spec, IsolationError> {
    let bytes = std::fs::read(path)
        .map_err(|e| IsolationError::io(format!("reading {}", path.display()), e))?;
    parse_spec(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespace_type_names_the_field() {
        let json = br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"time-travel"}]}}"#;
        let err = parse_spec(json).unwrap_err();
        let IsolationError::Parse { field, source } = err else {
            panic!("wrong error {err:?}")
        };
        assert_eq!(field, "linux.namespaces[1].type");
        assert!(source.to_string().contains("time-travel"), "{source}");
    }

    #[test]
    fn bad_seccomp_action_names_the_field() {
        let json = br#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_EXPLODE"}]}}}"#;
        let err = parse_spec(json).unwrap_err();
        let IsolationError::Parse { field, .. } = err else {
            panic!("wrong error {err:?}")
        };
        assert_eq!(field, "linux.seccomp.syscalls[0].action");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_spec(br#"{"ociVersion":"1.0.2"} x"#).is_err());
    }

    #[test]
    fn minimal_spec_parses() {
        let spec = parse_spec(br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#).unwrap();
        assert_eq!(spec.version(), "1.0.2");
    }
}
