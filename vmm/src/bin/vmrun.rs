//! The `vmrun` command.

fn main() {}
