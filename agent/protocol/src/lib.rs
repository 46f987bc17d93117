//! Host <-> agent protocol types and framing, shared by the VMM and the agent.

pub mod marker;
