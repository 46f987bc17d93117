//! Protocol v5's shares: `Create.shares` mounted once per VM below the
//! shares directory (here a host directory bind-mounted in place of the
//! virtio-fs share), a rootfs from a directory within a share
//! (`RootfsSource::VirtioFs.path`), and the spec's bind mounts from it.

use std::path::Path;

use serde_json::{json, Value};
use vmrun_protocol::{ExitStatus, Request, Response, RootfsSource};

use crate::fixture::*;

/// The share every case here serves: the scratch directory, which holds
/// the busybox bundle (`bundle/rootfs`) and each case's data.
const SHARE: &str = "vmrun";
const ROOTFS_IN_SHARE: &str = "bundle/rootfs";

fn share_setup(world: &World) -> Setup {
    Setup {
        shares: vec![(SHARE.to_owned(), world.scratch.path().to_path_buf())],
        ..Setup::default()
    }
}

fn create_in_share(id: &str, spec: Value, stdio: &HostStdio, path: &str) -> Request {
    let mut request = create(id, spec, stdio);
    if let Request::Create { rootfs, shares, .. } = &mut request {
        *rootfs = RootfsSource::VirtioFs {
            tag: SHARE.into(),
            path: Some(path.into()),
        };
        *shares = vec![SHARE.into()];
    }
    request
}

/// The mountinfo lines whose mount point is `target`.
fn mounts_at(target: &Path) -> Vec<String> {
    let target = target.to_str().expect("UTF-8 path");
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|line| line.split(' ').nth(4) == Some(target))
        .map(str::to_owned)
        .collect()
}

fn run_to_end(
    client: &vmrun_protocol::ControlClient,
    id: &str,
    stdio: HostStdio,
) -> (ExitStatus, String, String) {
    assert_eq!(client.call(start(id)).unwrap(), started());
    let (out, err) = stdio.collect();
    let Response::Exited { status } = client.call(wait(id)).unwrap() else {
        panic!("wait did not answer Exited");
    };
    println!("  {id}: {status:?} stdout={out:?} stderr={err:?}");
    (status, out, err)
}

pub fn rootfs_and_bind_mounts_come_from_a_share(world: &World) {
    let data = world.scratch.path().join("data-shares");
    std::fs::create_dir_all(data.join("ro")).unwrap();
    std::fs::create_dir_all(data.join("rw")).unwrap();
    std::fs::write(data.join("ro/hello"), "from the host\n").unwrap();
    let mut agent = world.agent_with("shares", share_setup(world));
    let client = agent.client();
    let share = world.shares_base("shares").join(SHARE);
    let bind = |destination: &str, dir: &str, mode: &str| {
        json!({
            "destination": destination,
            "type": "bind",
            "source": share.join("data-shares").join(dir),
            "options": ["rbind", mode],
        })
    };

    // A read-only root: read-only in the container, yet the bind mounts'
    // mount points (no /mnt in the busybox image) could still be made in
    // it first, as under runc.
    let script = "cat /mnt/ro/hello; \
                  (echo no > /mnt/ro/new) 2>/dev/null && echo ro-written; \
                  echo landed > /mnt/rw/new && echo rw-ok; \
                  (touch /root-write) 2>/dev/null && echo root-written; \
                  echo done";
    let mut spec = world.spec(&["sh", "-c", script]);
    spec["root"]["readonly"] = json!(true);
    let mounts = spec["mounts"].as_array_mut().unwrap();
    mounts.push(bind("/mnt/ro", "ro", "ro"));
    mounts.push(bind("/mnt/rw", "rw", "rw"));
    let stdio = HostStdio::listen(world, None);
    assert!(!world.rootfs.join("mnt").exists());
    expect_created(client.call(create_in_share("ro-root", spec, &stdio, ROOTFS_IN_SHARE)));
    assert_eq!(mounts_at(&share).len(), 1, "the share is mounted once");
    let root_mount = world.rootfs_base("shares").join("ro-root/rootfs");
    assert_eq!(mounts_at(&root_mount).len(), 1, "the rootfs is a mount");
    let (status, out, _) = run_to_end(&client, "ro-root", stdio);
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out, "from the host\nrw-ok\ndone\n");
    assert_eq!(
        std::fs::read_to_string(data.join("rw/new")).unwrap(),
        "landed\n"
    );
    assert!(!data.join("ro/new").exists());
    assert!(!world.rootfs.join("root-write").exists());
    // The mount points made in the image (the host sees them, as with runc).
    std::fs::remove_dir_all(world.rootfs.join("mnt")).unwrap();

    // A writable root from the same share (asked for again: mounted once);
    // its writes land in the share's directory.
    let marker = world.rootfs.join("tmp/written-through-the-share");
    let spec = world.spec(&["sh", "-c", "echo yes > /tmp/written-through-the-share"]);
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_in_share("rw-root", spec, &stdio, "./bundle/rootfs")));
    assert_eq!(mounts_at(&share).len(), 1, "the share is mounted once");
    let (status, _, _) = run_to_end(&client, "rw-root", stdio);
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "yes\n");
    std::fs::remove_file(&marker).unwrap();

    // Shutdown unmounts the root filesystems and the share.
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    drop(client);
    assert!(agent.end().is_ok());
    assert!(mounts_at(&share).is_empty(), "share still mounted");
    assert!(mounts_at(&root_mount).is_empty(), "rootfs still mounted");
}

pub fn share_paths_and_tags_are_checked_naming_the_field(world: &World) {
    // A symlink in the share that points out of it.
    let escape = world.scratch.path().join("escape-link");
    std::os::unix::fs::symlink("/", &escape).unwrap();
    let mut agent = world.agent_with("share-errors", share_setup(world));
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let spec = || world.spec(&["true"]);

    for (path, field) in [
        ("/bundle/rootfs", "rootfs.path: "),
        ("bundle/../../etc", "rootfs.path: "),
        ("..", "rootfs.path: "),
        ("", "rootfs.path: "),
        ("escape-link", "rootfs.path: "),
        ("no-such-dir", "rootfs.path: "),
    ] {
        let message = agent_error(client.call(create_in_share("bad", spec(), &stdio, path)));
        assert!(message.starts_with(field), "{path:?}: {message}");
    }
    let mut unknown_rootfs_share = create_in_share("bad", spec(), &stdio, ROOTFS_IN_SHARE);
    if let Request::Create { rootfs, shares, .. } = &mut unknown_rootfs_share {
        *rootfs = RootfsSource::VirtioFs {
            tag: "other".into(),
            path: Some(ROOTFS_IN_SHARE.into()),
        };
        shares.clear();
    }
    let message = agent_error(client.call(unknown_rootfs_share));
    assert!(message.starts_with("rootfs.tag: "), "{message}");
    for (tags, field) in [
        (vec!["../x"], "shares[0]: "),
        (vec![SHARE, "unknown"], "shares[1]: "),
        (vec![""], "shares[0]: "),
    ] {
        let mut request = create_in_share("bad", spec(), &stdio, ROOTFS_IN_SHARE);
        if let Request::Create { shares, .. } = &mut request {
            *shares = tags.iter().map(|t| t.to_string()).collect();
        }
        let message = agent_error(client.call(request));
        assert!(message.starts_with(field), "{tags:?}: {message}");
    }
    // Nothing was left: no container, no rootfs mount point.
    let message = agent_error(client.call(state("bad")));
    assert!(message.starts_with("id: "), "{message}");
    assert!(!world.rootfs_base("share-errors").join("bad").exists());
    drop(stdio);
    drop(client);
    expect_connection_lost(agent);
    assert!(mounts_at(&world.shares_base("share-errors").join(SHARE)).is_empty());
    std::fs::remove_file(&escape).unwrap();
}
