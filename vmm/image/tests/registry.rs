//! Pull from a real registry (Debian's docker-registry on loopback) after
//! pushing the test image with skopeo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use common::image::build_test_layout;
use common::registry::Registry;
use common::tree::assert_same_tree;
use vmrun_image::cli::{run_images, run_pull, run_rmi, ImagesArgs, PullArgs, RmiArgs};
use vmrun_image::{prepare_bundle, BundleOptions, ImageSource, PullPolicy, Store};

#[derive(Parser)]
struct PullCli {
    #[command(flatten)]
    a: PullArgs,
}

fn pull_args(args: &[&str]) -> PullArgs {
    let mut v = vec!["pull", "-q"];
    v.extend_from_slice(args);
    PullCli::parse_from(v).a
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    let reg = common::tool("docker-registry", "docker-registry");
    let skopeo = common::tool("skopeo", "skopeo");
    match (reg, skopeo) {
        (Some(r), Some(s)) => Some((r, s)),
        _ => None,
    }
}

fn skopeo_push(skopeo: &Path, src: String, dest: String, extra: &[&str]) {
    let mut cmd = Command::new(skopeo);
    cmd.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(dest);
    common::run(&mut cmd);
}

fn unpack_layout(store: &Store, layout: &Path, tag: &str, bundle: &Path) {
    let src: ImageSource = format!("oci:{}:{tag}", layout.display()).parse().unwrap();
    prepare_bundle(store, &src, bundle, None, &BundleOptions::default()).unwrap();
}

#[test]
fn pull_reuse_offline_corruption_rmi() {
    let Some((registry_bin, skopeo)) = tools() else {
        common::skip(
            "pull_reuse_offline_corruption_rmi",
            "docker-registry or skopeo is not installed",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let mut reg = Registry::start(&registry_bin, &tmp.path().join("reg"), None);
    let host = reg.host();
    skopeo_push(
        &skopeo,
        format!("oci:{}:multi", layout.display()),
        format!("docker://{host}/test/img:multi"),
        &["--all"],
    );
    skopeo_push(
        &skopeo,
        format!("oci:{}:amd64", layout.display()),
        format!("docker://{host}/test/img:v2s2"),
        &["--format", "v2s2"],
    );

    let reference_tree = tmp.path().join("from-layout");
    let layout_store = Store::open(tmp.path().join("layout-store")).unwrap();
    unpack_layout(&layout_store, &layout, "amd64", &reference_tree);

    // First pull downloads, second pull downloads nothing.
    let store = Store::open(tmp.path().join("store")).unwrap();
    let first = run_pull(&pull_args(&[&format!("{host}/test/img:multi")]), &store).unwrap();
    assert!(first.stats.blobs_fetched >= 4, "{:?}", first.stats);
    assert!(first.stats.bytes_fetched > 0);
    let second = run_pull(&pull_args(&[&format!("{host}/test/img:multi")]), &store).unwrap();
    assert_eq!(
        second.stats.blobs_fetched, 0,
        "second pull downloaded: {:?}",
        second.stats
    );
    assert_eq!(second.stats.bytes_fetched, 0);
    assert_eq!(first.image.manifest_digest, second.image.manifest_digest);

    // Docker schema 2 manifest.
    let v2 = run_pull(&pull_args(&[&format!("{host}/test/img:v2s2")]), &store).unwrap();
    assert_eq!(v2.image.layers.len(), 2);

    // arm64 by --platform (own store: a name holds one platform at a time).
    let arm_store = Store::open(tmp.path().join("arm-store")).unwrap();
    let arm = run_pull(
        &pull_args(&[
            "--platform",
            "linux/arm64",
            &format!("{host}/test/img:multi"),
        ]),
        &arm_store,
    )
    .unwrap();
    assert_eq!(arm.image.layers.len(), 1);
    assert_eq!(arm.image.config.architecture().to_string(), "arm64");

    let listing = run_images(&ImagesArgs::default(), &store)
        .unwrap()
        .to_string();
    assert!(
        listing.contains(&format!("{host}/test/img:multi")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{host}/test/img:v2s2")),
        "{listing}"
    );

    // Offline: the registry is gone, unpack from the store.
    reg.stop();
    for (tag, name) in [("multi", "offline-multi"), ("v2s2", "offline-v2s2")] {
        let bundle = tmp.path().join(name);
        let src: ImageSource = format!("{host}/test/img:{tag}").parse().unwrap();
        let opts = BundleOptions {
            policy: PullPolicy::Missing,
            ..Default::default()
        };
        let info = prepare_bundle(&store, &src, &bundle, None, &opts).unwrap();
        assert_eq!(info.fetch.blobs_fetched, 0);
        assert_same_tree(&bundle.join("rootfs"), &reference_tree.join("rootfs"), name);
    }
    let err = prepare_bundle(
        &store,
        &format!("{host}/test/img:absent").parse().unwrap(),
        &tmp.path().join("absent"),
        None,
        &BundleOptions {
            policy: PullPolicy::Never,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in the local store"), "{err}");

    // rmi removes names and unreferenced blobs.
    let rmi = run_rmi(
        &RmiArgs {
            references: vec![
                format!("{host}/test/img:multi"),
                format!("{host}/test/img:v2s2"),
            ],
        },
        &store,
    )
    .unwrap();
    assert_eq!(rmi.untagged.len(), 2);
    assert!(rmi.gc.blobs_removed > 0);
    let left = run_images(
        &ImagesArgs {
            quiet: true,
            ..Default::default()
        },
        &store,
    )
    .unwrap()
    .to_string();
    assert_eq!(left.trim(), "");
    assert!(run_rmi(
        &RmiArgs {
            references: vec!["nothere:1".into()]
        },
        &store
    )
    .is_err());

    // A stored name for another platform is not used for this one.
    let err = prepare_bundle(
        &arm_store,
        &format!("{host}/test/img:multi").parse().unwrap(),
        &tmp.path().join("wrong-platform"),
        None,
        &BundleOptions {
            policy: PullPolicy::Never,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in the local store"), "{err}");
}

fn layout_manifest(layout: &Path, tag: &str) -> (String, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let digest = desc["digest"].as_str().unwrap().to_string();
    let body = std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
    (digest, serde_json::from_slice(&body).unwrap())
}

fn corrupt(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(path, data).unwrap();
}

#[test]
fn corrupted_blobs_in_registry_are_detected() {
    let Some((registry_bin, skopeo)) = tools() else {
        common::skip(
            "corrupted_blobs_in_registry_are_detected",
            "docker-registry or skopeo is not installed",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let reg = Registry::start(&registry_bin, &tmp.path().join("reg"), None);
    let host = reg.host();
    let digest_file = tmp.path().join("pushed-digest");
    skopeo_push(
        &skopeo,
        format!("oci:{}:amd64", layout.display()),
        format!("docker://{host}/test/corrupt:v1"),
        &["--digestfile", digest_file.to_str().unwrap()],
    );
    // skopeo may recompress layers when pushing; the gzip layer stays as is.
    let manifest_digest = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string();
    let (_, manifest) = layout_manifest(&layout, "amd64");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = reg.blob_data(&layer);
    assert!(
        blob.is_file(),
        "layer not found in registry storage at {}",
        blob.display()
    );
    corrupt(&blob);

    let store = Store::open(tmp.path().join("store")).unwrap();
    let err = run_pull(&pull_args(&[&format!("{host}/test/corrupt:v1")]), &store).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(msg.contains(&layer) && msg.contains("refusing"), "{msg}");
    assert!(msg.contains(&format!("{host}/test/corrupt:v1")), "{msg}");
    assert!(
        !store.root().join("blobs/sha256").join(&layer[7..]).exists(),
        "corrupt blob stored"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "temp files left"
    );
    assert!(store
        .lookup(&format!("{host}/test/corrupt:v1"))
        .unwrap()
        .is_none());

    // A manifest pinned by digest whose content changed is refused too.
    corrupt(&reg.blob_data(&manifest_digest));
    let err = run_pull(
        &pull_args(&[&format!("{host}/test/corrupt@{manifest_digest}")]),
        &store,
    )
    .unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(msg.contains(&manifest_digest), "{msg}");
}

fn bcrypt_htpasswd(path: &Path, user: &str, password: &str) -> bool {
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
            user,
            password,
        ])
        .output();
    match out {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).contains(":$2") => {
            std::fs::write(path, o.stdout).unwrap();
            true
        }
        _ => false,
    }
}

#[test]
fn basic_auth_registry() {
    let Some((registry_bin, skopeo)) = tools() else {
        common::skip(
            "basic_auth_registry",
            "docker-registry or skopeo is not installed",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    if !bcrypt_htpasswd(&htpasswd, "vmrun", "s3cret") {
        common::skip(
            "basic_auth_registry",
            "python3 crypt with bcrypt is unavailable to make an htpasswd file",
        );
        return;
    }
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let reg = Registry::start(&registry_bin, &tmp.path().join("reg"), Some(&htpasswd));
    let host = reg.host();
    skopeo_push(
        &skopeo,
        format!("oci:{}:amd64", layout.display()),
        format!("docker://{host}/test/auth:v1"),
        &["--dest-creds", "vmrun:s3cret"],
    );
    let store = Store::open(tmp.path().join("store")).unwrap();
    let r = format!("{host}/test/auth:v1");
    let err = run_pull(&pull_args(&[&r]), &store).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(msg.contains("requires credentials"), "{msg}");
    let err = run_pull(&pull_args(&["--creds", "vmrun:wrong", &r]), &store).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(msg.contains("401"), "{msg}");
    let ok = run_pull(&pull_args(&["--creds", "vmrun:s3cret", &r]), &store).unwrap();
    assert!(ok.stats.blobs_fetched > 0);
    // Credentials from an auth file.
    let auth = tmp.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{host}":{{"auth":"dm1ydW46czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    let store2 = Store::open(tmp.path().join("store2")).unwrap();
    run_pull(
        &pull_args(&["--authfile", auth.to_str().unwrap(), &r]),
        &store2,
    )
    .unwrap();
}

#[test]
fn bearer_token_registry() {
    let name = "bearer_token_registry";
    let Some((registry_bin, skopeo)) = tools() else {
        common::skip(name, "docker-registry or skopeo is not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some((cert, token)) =
        common::token_server::make_token(tmp.path(), "test/tok", &["pull", "push"])
    else {
        common::skip(
            name,
            "the openssl CLI could not make a signing key and token",
        );
        return;
    };
    let creds = vmrun_image::registry::Credentials::parse("vmrun:t0ken-pw").unwrap();
    let realm = common::token_server::serve(token, creds.basic_header());
    let auth = format!(
        "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
        common::token_server::SERVICE,
        common::token_server::ISSUER,
        cert.display()
    );
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let reg = Registry::start_with_auth(&registry_bin, &tmp.path().join("reg"), Some(&auth));
    let host = reg.host();
    skopeo_push(
        &skopeo,
        format!("oci:{}:amd64", layout.display()),
        format!("docker://{host}/test/tok:v1"),
        &["--dest-creds", "vmrun:t0ken-pw"],
    );
    let store = Store::open(tmp.path().join("store")).unwrap();
    let r = format!("{host}/test/tok:v1");
    // Anonymous token request is refused by the token server.
    let err = run_pull(&pull_args(&[&r]), &store).unwrap_err();
    let msg = format!("{:#}", anyhow::Error::new(err));
    assert!(
        msg.contains("token endpoint") && msg.contains("401"),
        "{msg}"
    );
    let ok = run_pull(&pull_args(&["--creds", "vmrun:t0ken-pw", &r]), &store).unwrap();
    assert!(ok.stats.blobs_fetched >= 3, "{:?}", ok.stats);
    let bundle = tmp.path().join("bundle");
    let reference_tree = tmp.path().join("from-layout");
    unpack_layout(
        &Store::open(tmp.path().join("layout-store")).unwrap(),
        &layout,
        "amd64",
        &reference_tree,
    );
    prepare_bundle(
        &store,
        &r.parse().unwrap(),
        &bundle,
        None,
        &BundleOptions::default(),
    )
    .unwrap();
    assert_same_tree(
        &bundle.join("rootfs"),
        &reference_tree.join("rootfs"),
        "bearer pull",
    );
}
