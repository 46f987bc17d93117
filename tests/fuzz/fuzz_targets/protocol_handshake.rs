//! The agent protocol's handshake and blocking call, both ends, with the
//! peer's bytes from the fuzzer: the agent's `server_handshake` reading a
//! (hostile) host, the host's `client_handshake` and `call` reading a
//! (hostile) guest agent.
//!
//! Asserted besides "no panic":
//! - `server_handshake` succeeds only on a `Hello` of our version, and then
//!   answered exactly one `Hello` of our version with the request's id; on
//!   another version it answers one `Error`;
//! - `client_handshake` always sends exactly our `Hello`, and succeeds only
//!   on a `Hello` answer of our version;
//! - `call` returns a response only when its id matches the request's.

#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use vmrun_protocol::frame::read_frame;
use vmrun_protocol::{
    call, client_handshake, server_handshake, Envelope, ProtocolError, Request, Response,
    PROTOCOL_VERSION,
};

/// A connection whose peer sends `input` and records what we send.
struct Peer<'a> {
    input: &'a [u8],
    sent: Vec<u8>,
}

impl Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every frame in `bytes` (which we wrote, so all must decode).
fn frames<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Vec<T> {
    let mut r = bytes;
    let mut out = Vec::new();
    while !r.is_empty() {
        match read_frame(&mut r) {
            Ok(m) => out.push(m),
            Err(e) => panic!("we sent an undecodable frame: {e}"),
        }
    }
    out
}

fn server_side(input: &[u8]) {
    let first: Option<Envelope<Request>> = read_frame(&mut &input[..]).ok();
    let mut peer = Peer {
        input,
        sent: Vec::new(),
    };
    let result = server_handshake(&mut peer);
    let answers: Vec<Envelope<Response>> = frames(&peer.sent);
    match (&result, first) {
        (Ok(()), Some(hello)) => {
            assert_eq!(
                hello.body,
                Request::Hello {
                    version: PROTOCOL_VERSION
                }
            );
            let expect = Envelope {
                id: hello.id,
                body: Response::Hello {
                    version: PROTOCOL_VERSION,
                },
            };
            assert_eq!(answers, vec![expect]);
        }
        (Ok(()), None) => panic!("handshake accepted without a Hello"),
        (Err(ProtocolError::VersionMismatch { theirs, .. }), Some(hello)) => {
            assert_eq!(hello.body, Request::Hello { version: *theirs });
            assert_ne!(*theirs, PROTOCOL_VERSION);
            assert!(matches!(
                answers.as_slice(),
                [Envelope { body: Response::Error { .. }, id }] if *id == hello.id
            ));
        }
        (Err(_), _) => assert!(answers.is_empty(), "answered a bad handshake"),
    }
}

fn client_side(input: &[u8]) {
    let first: Option<Envelope<Response>> = read_frame(&mut &input[..]).ok();
    let mut peer = Peer {
        input,
        sent: Vec::new(),
    };
    let result = client_handshake(&mut peer);
    let sent: Vec<Envelope<Request>> = frames(&peer.sent);
    let hello = Envelope {
        id: 0,
        body: Request::Hello {
            version: PROTOCOL_VERSION,
        },
    };
    assert_eq!(sent, vec![hello]);
    if result.is_ok() {
        let answer = first.map(|e| e.body);
        assert_eq!(
            answer,
            Some(Response::Hello {
                version: PROTOCOL_VERSION
            })
        );
    }
    // The rest of the stream answers one call.
    let id = 7;
    let request = Request::State {
        id: "container".into(),
    };
    if let Ok(response) = call(&mut peer, id, request) {
        assert!(!matches!(response, Response::Error { .. }));
        let mut rest = input;
        let _ = read_frame::<_, Envelope<Response>>(&mut rest);
        let answer: Option<Envelope<Response>> = read_frame(&mut rest).ok();
        assert_eq!(answer.map(|a| a.id), Some(id), "call accepted another id");
    }
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    server_side(data);
    client_side(data);
});
