//! The calls `vmrun-cri` knows: a method name, a JSON request parsed into
//! its message, and the response back as JSON.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use crate::api::image_service_client::ImageServiceClient;
use crate::api::runtime_service_client::RuntimeServiceClient;
use crate::api::*;

/// Parses `json` as the request message of `method`.
fn parse<T: DeserializeOwned>(method: &str, json: &str) -> anyhow::Result<T> {
    serde_json::from_str(json).with_context(|| format!("the request is not a {method}Request"))
}

/// The response as pretty JSON.
fn to_json<T: Serialize>(response: &T) -> anyhow::Result<String> {
    serde_json::to_string_pretty(response).context("printing the response")
}

/// A gRPC failure in the words crictl uses: `Code: message`.
fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// Defines [`METHODS`] and [`call`] from one list per service.
macro_rules! methods {
    (
        runtime: [$($rname:ident => $rfn:ident($rreq:ty)),* $(,)?],
        image: [$($iname:ident => $ifn:ident($ireq:ty)),* $(,)?] $(,)?
    ) => {
        /// Every method `vmrun-cri` can call.
        pub const METHODS: &[&str] = &[$(stringify!($rname),)* $(stringify!($iname),)*];

        /// Calls `method` with the JSON `request` on `channel`; returns the
        /// response as JSON.
        pub async fn call(channel: Channel, method: &str, request: &str) -> anyhow::Result<String> {
            match method {
                $(stringify!($rname) => {
                    let request: $rreq = parse(method, request)?;
                    let response = RuntimeServiceClient::new(channel)
                        .$rfn(request)
                        .await
                        .map_err(status_error)?;
                    to_json(response.get_ref())
                })*
                $(stringify!($iname) => {
                    let request: $ireq = parse(method, request)?;
                    let response = ImageServiceClient::new(channel)
                        .$ifn(request)
                        .await
                        .map_err(status_error)?;
                    to_json(response.get_ref())
                })*
                other => anyhow::bail!("unknown method {other:?}; known: {}", METHODS.join(", ")),
            }
        }
    };
}

methods! {
    runtime: [
        Version => version(VersionRequest),
        Status => status(StatusRequest),
        RunPodSandbox => run_pod_sandbox(RunPodSandboxRequest),
        StopPodSandbox => stop_pod_sandbox(StopPodSandboxRequest),
        RemovePodSandbox => remove_pod_sandbox(RemovePodSandboxRequest),
        PodSandboxStatus => pod_sandbox_status(PodSandboxStatusRequest),
        ListPodSandbox => list_pod_sandbox(ListPodSandboxRequest),
        CreateContainer => create_container(CreateContainerRequest),
        StartContainer => start_container(StartContainerRequest),
        StopContainer => stop_container(StopContainerRequest),
        RemoveContainer => remove_container(RemoveContainerRequest),
        ListContainers => list_containers(ListContainersRequest),
        ContainerStatus => container_status(ContainerStatusRequest),
        ExecSync => exec_sync(ExecSyncRequest),
        ContainerStats => container_stats(ContainerStatsRequest),
    ],
    image: [
        ListImages => list_images(ListImagesRequest),
        ImageStatus => image_status(ImageStatusRequest),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_only_the_fields_it_sets() {
        let request: CreateContainerRequest = parse(
            "CreateContainer",
            r#"{"pod_sandbox_id": "p1", "config": {"metadata": {"name": "c"},
                "image": {"image": "busybox"}, "command": ["sh"]}}"#,
        )
        .expect("parses");
        assert_eq!(request.pod_sandbox_id, "p1");
        let config = request.config.expect("config");
        assert_eq!(config.metadata.expect("metadata").name, "c");
        assert_eq!(config.command, ["sh"]);
        assert!(config.args.is_empty());
        assert!(config.linux.is_none());
    }

    #[test]
    fn a_request_of_the_wrong_shape_is_refused_naming_the_message() {
        let err = parse::<ExecSyncRequest>("ExecSync", r#"{"timeout": "soon"}"#)
            .expect_err("a string is not an i64");
        assert!(
            format!("{err:#}").contains("not a ExecSyncRequest"),
            "{err:#}"
        );
    }

    #[test]
    fn bytes_come_back_as_numbers() {
        let response = ExecSyncResponse {
            stdout: b"hi".to_vec(),
            stderr: Vec::new(),
            exit_code: 3,
        };
        let json: serde_json::Value =
            serde_json::from_str(&to_json(&response).expect("json")).expect("valid");
        assert_eq!(json["stdout"], serde_json::json!([104, 105]));
        assert_eq!(json["exit_code"], 3);
    }

    #[test]
    fn the_method_list_holds_the_calls_the_tests_make() {
        for m in [
            "RunPodSandbox",
            "CreateContainer",
            "StartContainer",
            "ExecSync",
            "ContainerStatus",
            "StopPodSandbox",
            "RemovePodSandbox",
            "ImageStatus",
        ] {
            assert!(METHODS.contains(&m), "{m}");
        }
    }
}
