//! The version handshake that opens every control connection, and blocking
//! request/response helpers for both ends.

use std::io::{Read, Write};

use crate::frame::{read_frame, write_frame, FrameError};
use crate::messages::{Envelope, Request, Response, PROTOCOL_VERSION};

/// Errors of the protocol layer above framing.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Framing or transport error.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, peer {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer sent something other than what the protocol expects here.
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The agent answered with an error.
    #[error("agent error: {0}")]
    Agent(String),
}

/// Host side: sends `Hello` and checks the agent's answer.
pub fn client_handshake<S: Read + Write>(stream: &mut S) -> Result<(), ProtocolError> {
    let hello = Envelope {
        id: 0,
        body: Request::Hello {
            version: PROTOCOL_VERSION,
        },
    };
    write_frame(stream, &hello)?;
    let answer: Envelope<Response> = read_frame(stream)?;
    match answer.body {
        Response::Hello { version } if version == PROTOCOL_VERSION => Ok(()),
        Response::Hello { version } => Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        }),
        Response::Error { message } => Err(ProtocolError::Agent(message)),
        other => Err(ProtocolError::Unexpected(format!("{other:?}"))),
    }
}

/// Agent side: expects `Hello` first and answers it. On a version mismatch
/// the agent answers with an `Error` naming both versions and fails.
pub fn server_handshake<S: Read + Write>(stream: &mut S) -> Result<(), ProtocolError> {
    let hello: Envelope<Request> = read_frame(stream)?;
    match hello.body {
        Request::Hello { version } if version == PROTOCOL_VERSION => {
            let answer = Envelope {
                id: hello.id,
                body: Response::Hello {
                    version: PROTOCOL_VERSION,
                },
            };
            write_frame(stream, &answer)?;
            Ok(())
        }
        Request::Hello { version } => {
            let answer = Envelope {
                id: hello.id,
                body: Response::Error {
                    message: format!(
                        "protocol version mismatch: agent {PROTOCOL_VERSION}, host {version}"
                    ),
                },
            };
            write_frame(stream, &answer)?;
            Err(ProtocolError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            })
        }
        other => Err(ProtocolError::Unexpected(format!(
            "expected hello, got {other:?}"
        ))),
    }
}

/// Host side: sends one request and blocks for its response. Only for
/// strictly sequential use; with concurrent `Wait`s, match ids yourself.
pub fn call<S: Read + Write>(
    stream: &mut S,
    id: u64,
    request: Request,
) -> Result<Response, ProtocolError> {
    write_frame(stream, &Envelope { id, body: request })?;
    let answer: Envelope<Response> = read_frame(stream)?;
    if answer.id != id {
        return Err(ProtocolError::Unexpected(format!(
            "response id {} for request {id}",
            answer.id
        )));
    }
    match answer.body {
        Response::Error { message } => Err(ProtocolError::Agent(message)),
        other => Ok(other),
    }
}
