//! Exec into a created container, as runc allows (and containerd's shim,
//! whose created task takes `Exec`): libcontainer 0.7's tenant builder
//! execs only into a container its state calls running. For one exec into
//! a container that is still created, [`StartedView`] lays out a second
//! state root holding a copy of the container's `state.json` with
//! `"status": "running"` and points the tenant builder at it. The real
//! state is never touched, so `start` later finds the container created.
//! Everything else the builder reads comes from that state: the init's pid
//! (whose namespaces the process joins) and the bundle (the init's spec and
//! its cgroup). The builder's sockets for the exec are made in the view's
//! directory, which is removed when the view is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::IsolationError;

/// The file libcontainer keeps a container's state in.
const STATE_FILE: &str = "state.json";

/// Short names for the views (the builder's socket paths must stay under
/// the 108 bytes of a unix socket path: `<state_dir>/v/<n>/<id>/...` is
/// no longer than the real `<state_dir>/state/<id>/...` for the agent's
/// first 1000 such execs, and one byte longer per further digit of n).
static NEXT_VIEW: AtomicU64 = AtomicU64::new(0);

/// A state root where one created container reads as running (see the
/// module docs); removed on drop.
#[derive(Debug)]
pub(crate) struct StartedView {
    /// `<state_dir>/v/<n>`: pass it as the builder's root path.
    root: PathBuf,
}

impl StartedView {
    /// Makes the view of container `id`, whose real state lives under
    /// `state_root` (`<state_dir>/state`), in `<state_dir>/v/<n>`.
    pub(crate) fn new(
        state_dir: &Path,
        state_root: &Path,
        id: &str,
    ) -> Result<Self, IsolationError> {
        let source = state_root.join(id).join(STATE_FILE);
        let text = std::fs::read(&source)
            .map_err(|e| IsolationError::io(format!("reading {}", source.display()), e))?;
        let state = as_running(&text).map_err(|source| IsolationError::Malformed {
            field: STATE_FILE.into(),
            source,
        })?;
        let n = NEXT_VIEW.fetch_add(1, Ordering::Relaxed);
        let root = state_dir.join("v").join(n.to_string());
        let view = Self { root };
        let dir = view.root.join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| IsolationError::io(format!("creating {}", dir.display()), e))?;
        let target = dir.join(STATE_FILE);
        std::fs::write(&target, state)
            .map_err(|e| IsolationError::io(format!("writing {}", target.display()), e))?;
        Ok(view)
    }

    /// The state root to hand the tenant builder.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for StartedView {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(
                "removing the exec's state view {}: {e}",
                self.root.display()
            );
        }
    }
}

/// libcontainer's `state.json` text with its top-level `status` set to
/// `running`; everything else as it was.
fn as_running(text: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut state: Value = serde_json::from_slice(text)?;
    if let Some(object) = state.as_object_mut() {
        object.insert("status".into(), Value::from("running"));
    }
    serde_json::to_vec(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_says_running_and_keeps_the_rest() {
        let text = br#"{"ociVersion":"1.0.2","id":"c","status":"created","pid":42,"bundle":"/b","annotations":{"status":"x"}}"#;
        let state: Value = serde_json::from_slice(&as_running(text).unwrap()).unwrap();
        assert_eq!(state["status"], "running");
        assert_eq!(state["pid"], 42);
        assert_eq!(state["bundle"], "/b");
        assert_eq!(state["annotations"]["status"], "x");
        assert!(as_running(b"not json").is_err());
    }

    #[test]
    fn the_view_is_made_beside_the_state_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state_root = dir.path().join("state");
        std::fs::create_dir_all(state_root.join("c")).unwrap();
        let real = br#"{"id":"c","status":"created","pid":7}"#;
        std::fs::write(state_root.join("c").join(STATE_FILE), real).unwrap();
        let view = StartedView::new(dir.path(), &state_root, "c").unwrap();
        let root = view.root().to_path_buf();
        assert!(root.starts_with(dir.path().join("v")), "{}", root.display());
        let copy: Value =
            serde_json::from_slice(&std::fs::read(root.join("c").join(STATE_FILE)).unwrap())
                .unwrap();
        assert_eq!(
            (copy["status"].as_str(), copy["pid"].as_i64()),
            (Some("running"), Some(7))
        );
        drop(view);
        assert!(!root.exists());
        // The real state is as it was.
        assert_eq!(
            std::fs::read(state_root.join("c").join(STATE_FILE)).unwrap(),
            real
        );
        // No state to copy: an error, nothing made.
        assert!(StartedView::new(dir.path(), &state_root, "missing").is_err());
    }
}
