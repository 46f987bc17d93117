//! The agent protocol's frame decoder on both ends: the input is read as a
//! stream of length-prefixed frames, once as the agent reads the host's
//! `Envelope<Request>`s and once as the host reads the (hostile) guest's
//! `Envelope<Response>`s; the whole input is also decoded as one frame
//! payload.
//!
//! Asserted besides "no panic": a decoded message encodes into one frame
//! that decodes back to the same message (what one side sends is what
//! the other reads), and a stream never yields more frames than it has
//! 5-byte minimal frames' room for.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use vmrun_protocol::frame::{decode, encode, read_frame, FrameError};
use vmrun_protocol::{Envelope, Request, Response};

/// Frames read from one input at most (a frame is at least 5 bytes).
const MAX_FRAMES: usize = 4096;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(msg: &T) {
    let frame = match encode(msg) {
        Ok(frame) => frame,
        Err(e) => panic!("decoded message does not encode: {e}"),
    };
    let again: T = match read_frame(&mut &frame[..]) {
        Ok(again) => again,
        Err(e) => panic!("encoded message does not decode: {e}; {msg:?}"),
    };
    assert_eq!(&again, msg, "message changed in a round trip");
}

fn read_stream<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let mut stream = data;
    let mut frames = 0usize;
    loop {
        match read_frame::<_, T>(&mut stream) {
            Ok(msg) => round_trip(&msg),
            // The payload was consumed: the next frame follows.
            Err(FrameError::Malformed(_)) => {}
            Err(_) => break,
        }
        frames += 1;
        assert!(frames <= data.len() / 5, "more frames than the input holds");
        if frames >= MAX_FRAMES {
            break;
        }
    }
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    read_stream::<Envelope<Request>>(data);
    read_stream::<Envelope<Response>>(data);
    if let Ok(msg) = decode::<Envelope<Request>>(data) {
        round_trip(&msg);
    }
    if let Ok(msg) = decode::<Envelope<Response>>(data) {
        round_trip(&msg);
    }
});
