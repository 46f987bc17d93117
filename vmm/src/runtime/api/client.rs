//! The verbs' side of a VMM's control socket.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

use vmrun_protocol::{read_frame, write_frame, FrameError};

use super::messages::{ApiCall, ApiRequest, ApiResponse};

/// Why a call to the VMM failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing listens on the socket: the VMM is gone.
    #[error("the container's VMM is not running")]
    Gone,
    /// The socket could not be used.
    #[error("cannot talk to the container's VMM")]
    Io(#[source] io::Error),
    /// A frame could not be sent or read (the VMM ended mid-call).
    #[error("the container's VMM did not answer")]
    Frame(#[source] FrameError),
    /// The VMM refused the request; its message says why.
    #[error("{0}")]
    Refused(String),
    /// The VMM answered something else than the request calls for.
    #[error("unexpected answer from the container's VMM: {0:?}")]
    Unexpected(ApiResponse),
}

/// A connection to one VMM, for one of its containers.
#[derive(Debug)]
pub struct ApiClient {
    stream: UnixStream,
    container: Option<String>,
}

impl ApiClient {
    /// Connects to the VMM listening on `socket`, for its container
    /// `container` (`None`: the VM's main container).
    pub fn connect(socket: &Path, container: Option<&str>) -> Result<Self, ApiError> {
        match super::socket_path::connect(socket) {
            Ok(stream) => Ok(Self {
                stream,
                container: container.map(str::to_owned),
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Err(ApiError::Gone)
            }
            Err(e) => Err(ApiError::Io(e)),
        }
    }

    /// Sends `request` and reads its answer; an `Error` answer becomes
    /// [`ApiError::Refused`].
    pub fn call(&mut self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        self.send(request)?;
        self.receive()
    }

    /// Sends one frame.
    pub fn send(&mut self, request: &ApiRequest) -> Result<(), ApiError> {
        let call = ApiCall {
            container: self.container.clone(),
            request: request.clone(),
        };
        write_frame(&mut self.stream, &call).map_err(ApiError::Frame)
    }

    /// Reads one answer; an `Error` answer becomes [`ApiError::Refused`].
    pub fn receive(&mut self) -> Result<ApiResponse, ApiError> {
        match read_frame(&mut self.stream).map_err(ApiError::Frame)? {
            ApiResponse::Error { message } => Err(ApiError::Refused(message)),
            other => Ok(other),
        }
    }

    /// The connection (to pass descriptors or clone a writer half).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }
}
