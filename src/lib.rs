//! support-broker: a self-hosted, real-time support session broker.

pub mod actors;
pub mod agent;
pub mod auth;
pub mod chat_journal;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod i18n;
pub mod mail;
pub mod operator;
pub mod outbox;
pub mod private_fs;
pub mod recording;
pub mod report;
pub mod sms;
pub mod startup;
pub mod store;
pub mod telemetry;

/// With the `test-hooks` feature, a chat message of exactly this text makes its session actor
/// panic, so tests can check that a dying session is contained.
#[cfg(feature = "test-hooks")]
pub const TEST_PANIC_TEXT: &str = "__support_broker_test_panic__";
