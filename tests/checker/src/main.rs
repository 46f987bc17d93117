//! Checks an OCI runtime spec from inside the container it configures.

fn main() {}
