//! vmrun: a runc-compatible runtime that runs OCI containers in KVM microVMs (host side: VMM, CLI, runtime).
