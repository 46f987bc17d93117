//! A blocking rtnetlink socket bound to one network namespace: requests
//! answered by an acknowledgement (or the kernel's error, with its
//! extended-ack text), and dumps.

use std::os::fd::BorrowedFd;

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::Socket;
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};

/// Receive buffer size: a dump datagram is at most 32 KiB (`NLMSG_GOODSIZE`
/// caps it at a page or 8 KiB; 64 KiB leaves room).
const RECV_BUFFER: usize = 64 * 1024;
/// `NLM_F_CAPPED` on an error message: the request's payload was left out.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` on an error message: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's error text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// How often a dump interrupted by a concurrent change is retried.
const DUMP_ATTEMPTS: usize = 5;

/// An rtnetlink socket in one network namespace.
#[derive(Debug)]
pub struct Rtnetlink {
    socket: Socket,
    sequence: u32,
}

impl Rtnetlink {
    /// Opens a socket in the network namespace `netns` (a socket stays in
    /// the namespace it was made in: a short-lived thread enters `netns`,
    /// makes it, and ends, leaving the caller's namespace alone).
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Self> {
        let socket = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<Socket> {
                    setns(netns, CloneFlags::CLONE_NEWNET)
                        .context("entering the network namespace")?;
                    Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")
                })
                .join()
                .map_err(|_| anyhow!("the rtnetlink socket thread panicked"))?
        })?;
        Self::from_socket(socket)
    }

    fn from_socket(mut socket: Socket) -> Result<Self> {
        socket.bind_auto().context("binding the rtnetlink socket")?;
        // Shorter errors (no copy of the request) with the kernel's text.
        socket.set_cap_ack(true).context("NETLINK_CAP_ACK")?;
        socket.set_ext_ack(true).context("NETLINK_EXT_ACK")?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        let sent = self
            .socket
            .send(&buffer, 0)
            .context("sending an rtnetlink request")?;
        if sent != buffer.len() {
            bail!("rtnetlink: sent {sent} of {} bytes", buffer.len());
        }
        Ok(self.sequence)
    }

    /// Receives one datagram and calls `each` on every message in it that
    /// answers `sequence`, until `each` returns `Some`.
    fn receive<T>(
        &mut self,
        sequence: u32,
        mut each: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut buffer = vec![0u8; RECV_BUFFER];
        loop {
            let len = self
                .socket
                .recv(&mut &mut buffer[..], libc::MSG_TRUNC)
                .context("receiving an rtnetlink answer")?;
            if len > buffer.len() {
                bail!("rtnetlink: a {len}-byte answer does not fit the buffer");
            }
            let mut offset = 0;
            while offset < len {
                let bytes = &buffer[offset..len];
                let length = NetlinkBuffer::new_checked(bytes)
                    .map_err(|err| anyhow!("rtnetlink: malformed answer: {err}"))?
                    .length() as usize;
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|err| anyhow!("rtnetlink: malformed answer: {err}"))?;
                offset += length.next_multiple_of(4).max(4);
                if message.header.sequence_number != sequence {
                    continue;
                }
                if let Some(done) = each(message)? {
                    return Ok(done);
                }
            }
        }
    }

    /// Sends `message` with `flags` (plus `NLM_F_REQUEST | NLM_F_ACK`) and
    /// waits for its acknowledgement; the kernel's refusal is the error.
    pub fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<()> {
        let sequence = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.receive(sequence, |answer| match answer.payload {
            NetlinkPayload::Error(error) => match error.code {
                None => Ok(Some(())),
                Some(code) => Err(kernel_error(code.get(), answer.header.flags, &error.header)),
            },
            _ => Ok(None),
        })
    }

    /// Dumps what `message` asks for (e.g. every link); retried when a
    /// concurrent change interrupts it.
    pub fn dump(&mut self, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_ATTEMPTS {
            let sequence = self.send(message.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let mut items = Vec::new();
            let mut interrupted = false;
            self.receive(sequence, |answer| {
                interrupted |= answer.header.flags & NLM_F_DUMP_INTR != 0;
                match answer.payload {
                    NetlinkPayload::InnerMessage(item) => {
                        items.push(item);
                        Ok(None)
                    }
                    NetlinkPayload::Done(_) => Ok(Some(())),
                    NetlinkPayload::Error(error) => Err(kernel_error(
                        error.raw_code(),
                        answer.header.flags,
                        &error.header,
                    )),
                    _ => Ok(None),
                }
            })?;
            if !interrupted {
                return Ok(items);
            }
        }
        bail!("rtnetlink: the dump was interrupted {DUMP_ATTEMPTS} times by concurrent changes")
    }
}

/// The kernel's refusal: the errno, and the extended-ack text when the
/// kernel gave one (`Network is unreachable (Nexthop has invalid gateway)`).
fn kernel_error(code: i32, flags: u16, payload: &[u8]) -> anyhow::Error {
    let errno = Errno::from_raw(code.saturating_abs());
    match extended_ack_message(flags, payload) {
        Some(text) => anyhow!("{errno} ({text})"),
        None => anyhow!("{errno}"),
    }
}

/// The `NLMSGERR_ATTR_MSG` text of an error's payload (after its code: the
/// request's header, its payload unless capped, then attributes).
fn extended_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        len.next_multiple_of(4)
    };
    let mut attrs = payload.get(request_len..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &attrs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    #[test]
    fn extended_ack_text_is_found_after_the_request() {
        let mut capped = vec![0u8; 16];
        capped.extend(attr(2, &7u32.to_ne_bytes()));
        capped.extend(attr(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0"));
        assert_eq!(
            extended_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        // Not capped: the request (its length in its header) comes first.
        let mut whole = 22u32.to_ne_bytes().to_vec();
        whole.resize(24, 0);
        whole.extend(attr(NLMSGERR_ATTR_MSG, b"oops\0"));
        assert_eq!(
            extended_ack_message(NLM_F_ACK_TLVS, &whole).as_deref(),
            Some("oops")
        );
        assert_eq!(extended_ack_message(0, &capped), None);
        // Truncated or lying attributes are ignored, never read past.
        assert_eq!(
            extended_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &capped[..18]),
            None
        );
        let mut lying = vec![0u8; 16];
        lying.extend_from_slice(&[200, 0, 1, 0, b'x', 0, 0, 0]);
        assert_eq!(
            extended_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &lying),
            None
        );
    }

    #[test]
    fn kernel_errors_read_like_errno_text() {
        let err = kernel_error(-libc::ENETUNREACH, 0, &[]).to_string();
        assert!(err.contains("unreachable"), "{err}");
    }
}
