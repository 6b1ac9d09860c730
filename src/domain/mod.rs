//! Plain types and rules of the product: no actix, no sqlx, no HTTP.

pub mod access;
pub mod audit_chain;
pub mod device;
pub mod ids;
pub mod input;
pub mod invitation;
pub mod permissions;
pub mod rate;
pub mod rights;
pub mod second_factor;
pub mod session;
pub mod validate;
