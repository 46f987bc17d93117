//! virtio-net tests. A SOCK_SEQPACKET socket pair stands in for the tap
//! (one frame per read/write, 12-byte header in front), so everything but
//! `tap_tests` runs without root.

mod device_tests;
mod harness;
mod random_tests;
mod rx_tests;
mod tap_tests;
mod tx_tests;
