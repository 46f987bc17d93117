//! Build script of the `vmrun` crate: how the `vmrun` binary is linked.
//! Both concerns shrink what every VMM process keeps resident of the
//! binary: packed relocations ([`relr`]) and the executed functions placed
//! side by side ([`hot_text`]).

mod hot_text;
mod probe;
mod relr;

fn main() {
    println!("cargo:rerun-if-changed=build");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    relr::configure(&target, &host);
    hot_text::configure();
}
