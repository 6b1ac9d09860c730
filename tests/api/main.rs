//! Integration tests: the real broker on a free port, real HTTP and WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_admin;
mod api_keys;
mod browser;
mod console;
mod crash;
mod devices;
mod grant_model;
mod helpers;
mod hostile_frames;
mod http_api;
mod invitations;
mod limits;
mod operator;
mod partner_access;
mod password;
mod rights;
mod self_service;
mod session_model;
mod sessions;
mod shutdown;
mod supply_chain;
mod support;
mod trust;
mod two_factor;
mod users;
