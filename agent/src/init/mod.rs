//! PID-1 set-up: the guest's base filesystems, `/dev` links, cgroup
//! controllers, the reaper of orphaned children, and the move from the
//! initramfs to a tmpfs root.

pub mod cgroups;
pub mod dev_links;
pub mod mounts;
pub mod reaper;
pub mod switch_root;
