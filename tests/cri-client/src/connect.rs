//! A gRPC channel over a unix socket.

use std::path::Path;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// Connects a channel to the server listening on `socket`.
pub async fn unix_channel(socket: &Path) -> anyhow::Result<Channel> {
    let path = socket.to_path_buf();
    // The endpoint's URI is required by the API but never dialled: the
    // connector opens the socket instead.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("connecting to {}", socket.display()))
}
