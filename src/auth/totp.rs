//! Authenticator apps (TOTP, RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew).

use totp_rs::{Builder, Secret, Totp};

pub const ISSUER: &str = "support-broker";

/// A new shared secret of 160 bits, base32 as authenticator apps take it.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(Secret::from(bytes.as_slice()).to_base32())
}

fn totp(secret_base32: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| anyhow::anyhow!("bad TOTP secret: {e:?}"))?;
    Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|e| anyhow::anyhow!("TOTP setup failed: {e:?}"))
}

/// The time step a code is valid for at `unix_time`, if it is valid.
pub fn check(secret_base32: &str, code: &str, unix_time: u64) -> anyhow::Result<Option<u64>> {
    Ok(totp(secret_base32)?.check(code.trim(), unix_time))
}

/// The `otpauth://` URL an authenticator app reads (usually from a QR code).
pub fn otpauth_url(secret_base32: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={secret_base32}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30",
        urlencoding::encode(account)
    )
}
