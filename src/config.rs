//! Typed settings: built-in defaults, an optional file, then `BROKER_` environment overrides.

use std::{fmt, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// The compiled-in defaults; the same text as `config/default.toml`.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub admin_password: Option<Secret>,
    pub http: HttpSettings,
    pub storage: StorageSettings,
    pub database: DatabaseSettings,
    pub cluster: ClusterSettings,
    pub log: LogSettings,
    pub sessions: SessionSettings,
    pub ws: WsSettings,
    pub auth: AuthSettings,
    pub outbox: OutboxSettings,
    pub mail: MailSettings,
    pub sms: SmsSettings,
    pub ops: OpsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsSettings {
    /// Bearer token for `/metrics`; empty: open.
    pub metrics_token: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    pub retry_interval_secs: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    pub public_url: String,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
}

impl HttpSettings {
    /// The base of the links the broker hands out: `public_url` without a trailing slash, or
    /// `http(s)://` and the address actually bound (`bound`).
    pub fn link_base(&self, bound: SocketAddr) -> String {
        let configured = self.public_url.trim().trim_end_matches('/');
        if configured.is_empty() {
            let scheme = if self.tls.enabled() { "https" } else { "http" };
            format!("{scheme}://{bound}")
        } else {
            configured.to_string()
        }
    }
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty() && !self.key_file.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    /// Where session recordings go; empty: `<data_dir>/recordings`. Nodes of a cluster that
    /// share this directory (a mounted volume) serve every recording from every node, and a
    /// session that moves home goes on in the same file.
    #[serde(default)]
    pub recordings_dir: PathBuf,
}

impl StorageSettings {
    /// The directory recordings are written to and served from.
    pub fn recordings(&self) -> PathBuf {
        if self.recordings_dir.as_os_str().is_empty() {
            self.data_dir.join("recordings")
        } else {
            self.recordings_dir.clone()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Empty: SQLite under `storage.data_dir`; or `postgres://...` (may hold a password).
    pub url: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Empty: one node. Else the NATS server the nodes route through (may hold credentials).
    pub nats_url: Secret,
    /// This node's name; empty: random at start.
    pub node_id: String,
    /// The installation's NATS subject prefix; empty: the one the first node stored (`sb.`
    /// and 12 random hex digits at the very first start). A node whose setting differs from
    /// the stored prefix is refused at start.
    pub nats_prefix: String,
    /// A node not seen for this long is dead: its live sessions end as `failed`.
    pub node_dead_after_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub invitation_ttl_secs: u64,
    pub reconnect_grace_secs: u64,
    pub ws_ticket_ttl_secs: u64,
    pub chat_chunk_ms: u64,
    pub empty_end_secs: u64,
    pub max_live_per_account: u32,
    pub max_pending_invitations: u32,
    pub invitation_mails_per_hour: u32,
    pub report_queue_events: usize,
    pub admission_timeout_secs: u64,
    pub recording_retention_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSettings {
    pub ping_interval_secs: u64,
    pub client_timeout_secs: u64,
    pub outbound_queue: usize,
    pub max_text_bytes: usize,
    pub max_binary_bytes: usize,
    pub max_errors_per_minute: u32,
    pub max_chat_chars: usize,
    pub chat_per_sec: u32,
    pub binary_bytes_per_sec: u64,
    pub agent_frames_per_sec: u32,
    pub file_max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub token_ttl_secs: u64,
    pub set_password_ttl_secs: u64,
    pub code_digits: u32,
    pub code_ttl_secs: u64,
    pub code_sends_per_10min: u32,
    pub max_parallel_hashes: usize,
    pub max_queued_hashes: usize,
    pub login_attempts_per_minute: u32,
    pub login_attempts_per_minute_per_address: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    File,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    pub from: String,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmsTransportKind {
    File,
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    pub transport: SmsTransportKind,
    pub http: SmsHttpSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsHttpSettings {
    pub url: String,
}

/// Where settings come from besides the defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A TOML file layered over the defaults.
    pub file: Option<PathBuf>,
    /// Read `BROKER_*` environment variables.
    pub env: bool,
}

impl Settings {
    /// Defaults, then `sources.file`, then the environment.
    pub fn load(sources: &Sources) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = &sources.file {
            builder = builder.add_source(config::File::from(file.as_path()).required(true));
        }
        if sources.env {
            let vars: std::collections::HashMap<String, String> = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect();
            builder = builder.add_source(environment(broker_vars(vars)?));
        }
        builder.build()?.try_deserialize()
    }

    /// Defaults, then a TOML text, then `BROKER_*` variables from `env` (not the process's):
    /// the same layering as `load`, for the config fuzz target.
    pub fn load_from(
        toml: &str,
        env: std::collections::HashMap<String, String>,
    ) -> Result<Self, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .add_source(environment(broker_vars(env)?))
            .build()?
            .try_deserialize()
    }

    /// The built-in defaults alone (tests start from here).
    pub fn defaults() -> Result<Self, config::ConfigError> {
        Self::load(&Sources::default())
    }
}

/// The `BROKER_*` variables of `vars`, each name checked: only letters, digits and `_`. The config
/// library reads `[n]` in a name as a list index and grows a list to it, so
/// `BROKER_X[5333333333333]=1` would exhaust memory at start (found by the config fuzz target):
/// such a name is refused with an error that names it.
fn broker_vars(
    vars: std::collections::HashMap<String, String>,
) -> Result<std::collections::HashMap<String, String>, config::ConfigError> {
    let mut out = std::collections::HashMap::new();
    for (key, value) in vars {
        if !key.to_ascii_uppercase().starts_with("BROKER_") {
            continue;
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let shown: String = key.chars().take(64).collect();
            return Err(config::ConfigError::Message(format!(
                "environment variable {shown:?}: a BROKER_ name has only letters, digits and _"
            )));
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// `BROKER_HTTP__BIND=...` and the like, from `vars` (already checked by `broker_vars`).
fn environment(vars: std::collections::HashMap<String, String>) -> config::Environment {
    config::Environment::with_prefix("BROKER")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .source(Some(vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::defaults().expect("defaults parse");
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.sessions.invitation_ttl_secs, 7200);
        assert_eq!(s.sessions.reconnect_grace_secs, 15);
        assert_eq!(s.auth.code_ttl_secs, 300);
        assert_eq!(s.auth.code_sends_per_10min, 3);
        assert_eq!(s.storage.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn an_environment_name_with_a_list_index_is_refused_not_grown_into() {
        // What the config fuzz target found: the library grew a list to the index and the
        // allocation aborted the process.
        let env = std::collections::HashMap::from([(
            "BROKER_ECS[5333333333333]".to_string(),
            "4][2$]r".to_string(),
        )]);
        let err = Settings::load_from("", env).expect_err("refused");
        assert!(
            err.to_string().contains("BROKER_ECS[5333333333333]"),
            "{err}"
        );
        // Ordinary names still work; others than BROKER_ are not read.
        let env = std::collections::HashMap::from([
            ("BROKER_WS__CHAT_PER_SEC".to_string(), "7".to_string()),
            ("OTHER[1]".to_string(), "x".to_string()),
        ]);
        assert_eq!(Settings::load_from("", env).unwrap().ws.chat_per_sec, 7);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }
}
