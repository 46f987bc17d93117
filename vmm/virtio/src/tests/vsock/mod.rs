//! vsock tests. None of them uses epoll: the router's interest changes are
//! applied by a stand-in ([`harness::SocketWatch`]), except in the one
//! end-to-end test through the device's worker thread.

mod connection_tests;
mod harness;
mod protocol_tests;
mod router_tests;
mod stream_tests;
