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

/// The letters of recovery codes: lower case, without look-alikes (no 0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Recovery codes made at each confirmation.
pub const RECOVERY_CODES: usize = 10;

/// Ten fresh recovery codes, shown as `xxxxx-xxxxx` (10 letters, about 50 bits each, from the
/// operating system's CSPRNG).
pub fn recovery_codes() -> anyhow::Result<Vec<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            // 256 is not a multiple of 31: reject the top sliver so every letter is as likely.
            let mut out = String::with_capacity(11);
            let mut i = 0;
            let mut pool = bytes.to_vec();
            while out.len() < 11 {
                if i == pool.len() {
                    let mut more = [0u8; 10];
                    getrandom::fill(&mut more)
                        .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                    pool.extend_from_slice(&more);
                }
                let b = pool[i];
                i += 1;
                let limit = 256 - 256 % RECOVERY_ALPHABET.len();
                if usize::from(b) >= limit {
                    continue;
                }
                if out.len() == 5 {
                    out.push('-');
                }
                out.push(char::from(
                    RECOVERY_ALPHABET[usize::from(b) % RECOVERY_ALPHABET.len()],
                ));
            }
            Ok(out)
        })
        .collect()
}

/// A typed recovery code in its stored form (letters only, lower case), if it can be one.
pub fn normalize_recovery(code: &str) -> Option<String> {
    let letters: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (letters.len() == 10 && letters.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then_some(letters)
}

/// The stored hash of a user's recovery code (bound to the user).
pub fn recovery_hash(user: &str, normalized: &str) -> String {
    crate::auth::token::hash(&format!("recovery:{user}:{normalized}"))
}

/// The `otpauth://` URL an authenticator app reads (usually from a QR code).
pub fn otpauth_url(secret_base32: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={secret_base32}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30",
        urlencoding::encode(account)
    )
}

/// The otpauth URL as a QR code for the app's camera: an SVG document, dark modules on white,
/// with a quiet zone, scaled by the page.
pub fn qr_svg(url: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_document_without_scripts() {
        let svg = qr_svg(&otpauth_url("JBSWY3DPEHPK3PXP", "ann")).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<path") || svg.contains("<rect"), "{svg}");
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_read_back_however_typed() {
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(&code[5..6], "-");
            let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
            assert_eq!(
                normalize_recovery(&typed).as_deref(),
                Some(code.replace('-', "").as_str())
            );
        }
        assert_eq!(
            normalize_recovery("123456"),
            None,
            "an app code is no recovery code"
        );
        assert_eq!(normalize_recovery("abcde-fghi0"), None, "no look-alikes");
    }
}
