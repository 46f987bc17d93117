//! Compiles `proto/api.proto` (the CRI v1 API, `runtime.v1`, as published
//! by Kubernetes' cri-api under the Apache-2.0 licence) into tonic clients
//! with protox, a protobuf compiler in Rust, so no `protoc` is needed.
//! Every message also gets serde's derives (with `default`, so a request
//! in JSON names only the fields it sets).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let descriptors = protox::compile(["api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .message_attribute(
            ".",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
