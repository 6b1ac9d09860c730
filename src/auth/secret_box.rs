//! Encryption at rest for secrets the broker must read back (TOTP seeds cannot be hashed: the
//! code is computed from them). XChaCha20-Poly1305 with a 256-bit server key kept in the data
//! dir (`secret.key`, created on first start, readable by the owner only); every value gets a
//! fresh random nonce, and a value that was changed in the database fails to open.

use std::path::Path;

use anyhow::Context as _;
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};

/// The prefix of an encrypted value (a version, so the scheme can change later).
const PREFIX: &str = "v1:";
/// Bound into every ciphertext, so a value cannot be moved to another purpose.
const CONTEXT: &[u8] = b"support-broker secret v1";

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Loads `<data_dir>/secret.key`, creating it (mode 0600) with a random key if missing.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("secret.key");
        let key = match std::fs::read(&path) {
            Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                write_private(&path, &key)?;
                tracing::info!(path = %path.display(), "created the key for secrets at rest");
                key
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        Ok(Self::from_key(key))
    }

    /// The stored form of `plain`: `v1:` and base64 of nonce and ciphertext.
    pub fn seal(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: CONTEXT,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD_NO_PAD.encode(out)))
    }

    /// The plain value of a stored one. A value stored before encryption existed (no prefix)
    /// is returned as it is; it is sealed the next time it is written.
    pub fn open_value(&self, stored: &str) -> anyhow::Result<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = STANDARD_NO_PAD
            .decode(encoded)
            .context("a sealed secret is not base64")?;
        if bytes.len() < 24 {
            anyhow::bail!("a sealed secret is too short");
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().context("a sealed secret's nonce")?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: CONTEXT,
                },
            )
            .map_err(|_| anyhow::anyhow!("a sealed secret does not open with this key"))?;
        String::from_utf8(plain).context("a sealed secret is not UTF-8")
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_and_differ_each_time() {
        let b = SecretBox::from_key([7; 32]);
        let one = b.seal("JBSWY3DPEHPK3PXP").unwrap();
        let two = b.seal("JBSWY3DPEHPK3PXP").unwrap();
        assert!(one.starts_with("v1:") && !one.contains("JBSWY3DP"));
        assert_ne!(one, two, "a fresh nonce each time");
        assert_eq!(b.open_value(&one).unwrap(), "JBSWY3DPEHPK3PXP");
    }

    #[test]
    fn a_changed_value_or_another_key_does_not_open() {
        let b = SecretBox::from_key([7; 32]);
        let sealed = b.seal("secret").unwrap();
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(b.open_value(&String::from_utf8(tampered).unwrap()).is_err());
        assert!(SecretBox::from_key([8; 32]).open_value(&sealed).is_err());
        assert_eq!(b.open_value("LEGACYPLAIN").unwrap(), "LEGACYPLAIN");
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = SecretBox::open(dir.path()).unwrap().seal("x").unwrap();
        assert_eq!(
            SecretBox::open(dir.path())
                .unwrap()
                .open_value(&sealed)
                .unwrap(),
            "x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
