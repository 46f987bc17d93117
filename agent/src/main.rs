//! The in-guest agent: PID 1 of every vmrun microVM.

fn main() {}
