//! The live part of the broker: one actor per session, per connected participant and per
//! pending invitation, and the registry that finds them.

pub mod connection;
pub mod device;
#[cfg(feature = "ws-echo")]
pub mod echo;
pub mod invitation;
pub mod messages;
pub mod participant;
pub mod protocol;
pub mod registry;
pub mod session;
