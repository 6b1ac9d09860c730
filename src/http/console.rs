//! The web console: HTML, CSS and JavaScript modules embedded in the binary at build time and
//! served at `/`, `/join/{token}` (browsers), `/customer/{key}` and `/set-password`.
//!
//! One HTML shell serves every page; `web/app.js` picks the view from the path. Pages carry a
//! strict Content-Security-Policy (scripts and styles from this origin only) and never leak
//! the path (which may hold a one-time token) through `Referer`.

use crate::error::Code;
use actix_web::{HttpResponse, http::StatusCode, web};

/// The console's files, compiled into the binary.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", JS, include_bytes!("../../web/app.js")),
    ("api.js", JS, include_bytes!("../../web/api.js")),
    ("i18n.js", JS, include_bytes!("../../web/i18n.js")),
    ("ui.js", JS, include_bytes!("../../web/ui.js")),
    ("live.js", JS, include_bytes!("../../web/live.js")),
    ("admin.js", JS, include_bytes!("../../web/admin.js")),
    (
        "technician.js",
        JS,
        include_bytes!("../../web/technician.js"),
    ),
    ("public.js", JS, include_bytes!("../../web/public.js")),
    ("platform.js", JS, include_bytes!("../../web/platform.js")),
    ("partner.js", JS, include_bytes!("../../web/partner.js")),
    (
        "selfservice.js",
        JS,
        include_bytes!("../../web/selfservice.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";
const SHELL: &str = include_str!("../../web/index.html");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self' ws: wss:; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The HTML shell with the given status (the join page keeps 404/410 for a bad link).
pub fn shell(status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .body(SHELL)
}

/// `GET /`, `/customer/{key}`, `/set-password`: the console shell.
pub async fn page() -> HttpResponse {
    shell(StatusCode::OK)
}

/// `GET /assets/{name}`.
pub async fn asset(req: actix_web::HttpRequest, path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    let Some((i, (_, content_type, body))) =
        ASSETS.iter().enumerate().find(|(_, (n, _, _))| *n == name)
    else {
        return actix_web::ResponseError::error_response(&crate::error::AppError::new(
            Code::NotFound,
            "no such asset",
        ));
    };
    let etag = &etags()[i];
    let unchanged = req
        .headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header(("X-Content-Type-Options", "nosniff"))
        // Revalidated on every load, so an upgraded broker never runs stale scripts; the ETag
        // makes that a 304 while nothing changed.
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("ETag", etag.as_str()));
    if unchanged {
        res.finish()
    } else {
        res.content_type(*content_type).body(*body)
    }
}

/// A strong ETag per asset (in `ASSETS` order): a hash of its bytes, computed once.
fn etags() -> &'static [String] {
    use sha2::{Digest, Sha256};
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| format!("\"{}\"", &hex::encode(Sha256::digest(body))[..32]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_shell_and_scripts_import_is_embedded() {
        let mut sources: Vec<&str> = vec![SHELL];
        for (_, _, body) in ASSETS {
            sources.push(std::str::from_utf8(body).unwrap_or_default());
        }
        for source in sources {
            for (i, _) in source.match_indices("/assets/") {
                let rest = &source[i + "/assets/".len()..];
                let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{name} is referenced but not embedded"
                );
            }
        }
    }

    /// The keys of one language's table in `web/i18n.js` (`    key: 'text',` lines).
    fn language_keys(i18n: &str, start: &str, end: &str) -> std::collections::BTreeSet<String> {
        let from = i18n.find(start).expect("language table") + start.len();
        let to = from + i18n[from..].find(end).expect("table end");
        i18n[from..to]
            .lines()
            .filter_map(|line| line.strip_prefix("    "))
            .filter_map(|line| line.split_once(':'))
            .map(|(key, _)| key.trim().to_string())
            .filter(|key| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect()
    }

    #[test]
    fn every_text_the_console_uses_exists_in_english_and_german() {
        let i18n = include_str!("../../web/i18n.js");
        let en = language_keys(i18n, "\n  en: {\n", "\n  de: {\n");
        let de = language_keys(i18n, "\n  de: {\n", "\n};");
        assert!(en.len() > 100 && de.len() > 100, "tables found");
        // German may add translations of server error codes; otherwise the same keys.
        let only_de: Vec<_> = de
            .difference(&en)
            .filter(|k| !k.starts_with("err_"))
            .collect();
        let only_en: Vec<_> = en.difference(&de).collect();
        assert!(
            only_de.is_empty() && only_en.is_empty(),
            "only German: {only_de:?}, only English: {only_en:?}"
        );
        for (name, _, body) in ASSETS {
            let source = std::str::from_utf8(body).unwrap_or_default();
            for (i, _) in source.match_indices("t('") {
                // `t(` itself, not the end of `split(` or `.at(`.
                let before = source[..i].chars().next_back().unwrap_or(' ');
                if before.is_ascii_alphanumeric() || before == '_' || before == '.' {
                    continue;
                }
                let rest = &source[i + 3..];
                let key = &rest[..rest.find('\'').expect("closing quote")];
                assert!(
                    en.contains(key),
                    "{name} uses t('{key}'), which has no text"
                );
            }
        }
    }
}
