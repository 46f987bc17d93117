//! Applies the OCI runtime spec (namespaces, cgroups, mounts, caps, rlimits, seccomp, user) and execs the container process.
