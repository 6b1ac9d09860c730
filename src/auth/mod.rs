//! Credentials: password hashing, random tokens and their hashes, and the request principal.

pub mod api_key;
pub mod extract;
pub mod password;
pub mod secret_box;
pub mod token;
pub mod totp;
