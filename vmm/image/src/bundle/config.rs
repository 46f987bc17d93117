//! `config.json` generation from an image config, on top of the defaults
//! `runc spec` uses (mounts, namespaces, capabilities, masked paths).

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Process, Root as SpecRoot, Spec, User};

use crate::error::{ImageError, Result};
use crate::unpack::safe_path::Root;
use crate::user;

/// `PATH` used when the image does not set one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_ID_FILE: u64 = 4 << 20;

/// Build the runtime spec for `image` unpacked at `rootfs`.
///
/// `args_override` replaces the image's `Cmd` (the `Entrypoint` is kept),
/// like `docker run IMAGE ARGS...`.
pub fn generate(
    reference: &str,
    image: &ImageConfiguration,
    rootfs: &Root,
    args_override: Option<&[String]>,
) -> Result<Spec> {
    let err = |field: &'static str, reason: String| ImageError::Config {
        reference: reference.to_string(),
        field,
        reason,
    };
    let cfg = image.config().clone().unwrap_or_default();

    let mut args: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
    match args_override {
        Some(a) if !a.is_empty() => args.extend(a.iter().cloned()),
        _ => args.extend(cfg.cmd().clone().unwrap_or_default()),
    }
    if args.is_empty() {
        return Err(err(
            "Entrypoint/Cmd",
            "the image defines no command; pass one after `--`".into(),
        ));
    }

    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }

    let cwd = match cfg.working_dir().as_deref() {
        None | Some("") => PathBuf::from("/"),
        Some(d) if d.starts_with('/') => PathBuf::from(d),
        Some(d) => PathBuf::from("/").join(d),
    };

    let read = |rel: &str| -> Result<Option<String>> {
        rootfs
            .read_file(rel, MAX_ID_FILE)
            .map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|e| err("User", format!("reading /{rel}: {e}")))
    };
    let user_spec = cfg.user().clone().unwrap_or_default();
    let passwd = read("etc/passwd")?;
    let group = read("etc/group")?;
    let resolved = user::resolve(&user_spec, passwd.as_deref(), group.as_deref())
        .map_err(|reason| err("User", reason))?;
    let mut spec_user = User::default();
    spec_user.set_uid(resolved.uid);
    spec_user.set_gid(resolved.gid);
    if !resolved.additional_gids.is_empty() {
        spec_user.set_additional_gids(Some(resolved.additional_gids));
    }

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd);
    process.set_user(spec_user);

    let mut root = SpecRoot::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(false));

    let annotations: HashMap<String, String> = cfg.labels().clone().unwrap_or_default();

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string());
    spec.set_hostname(Some("vmrun".to_string()));
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_annotations(Some(annotations));
    Ok(spec)
}
