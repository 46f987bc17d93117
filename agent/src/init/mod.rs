//! PID-1 set-up: the guest's base filesystems, `/dev` links, cgroup
//! controllers and the reaper of orphaned children.

pub mod cgroups;
pub mod dev_links;
pub mod mounts;
pub mod reaper;
