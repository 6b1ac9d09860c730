//! The state every handler shares: cheap clones of handles, built once before the server.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    actors::{
        connection::LiveConnections, participant::WsLimits, registry::Registry,
        session::SessionDeps,
    },
    auth::{password::PasswordHasherPool, secret_box::SecretBox},
    config::Settings,
    error::{AppError, Code},
    outbox::Outbox,
    report::ReportSink,
    store::Store,
};

pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub reports: ReportSink,
    pub session_deps: Arc<SessionDeps>,
    pub ws_limits: Arc<WsLimits>,
    pub passwords: PasswordHasherPool,
    /// Encrypts secrets kept readable at rest (TOTP seeds).
    pub secrets: SecretBox,
    pub outbox: Outbox,
    /// Base of the links the broker hands out, without a trailing slash.
    pub public_url: String,
    pub metrics: PrometheusHandle,
    /// Open WebSocket connections (shutdown waits for them to close).
    pub connections: LiveConnections,
    /// This node in a cluster (`cluster.nats_url` set); None: one node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    draining: AtomicBool,
    login_limiter: DefaultKeyedRateLimiter<String>,
    address_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
}

/// 429 `too_many_attempts` with the wait a limiter names.
fn too_many_attempts(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> AppError {
    let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
    AppError::too_many(
        Code::TooManyAttempts,
        "too many login attempts; try again later",
        wait.as_secs() + 1,
    )
}

/// The limiter key of a client address: an IPv4 address as it is, an IPv6 address by its /64
/// (one host usually holds a whole /64, so per-/128 keys would not limit anyone).
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(_) => ip,
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return std::net::IpAddr::V4(v4);
            }
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// The part of a typed username that keys the login limiter: at most 64 characters, so a
/// 64 KiB username does not make a 64 KiB map key.
fn username_prefix(username: &str) -> String {
    username.chars().take(64).collect()
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        registry: Arc<Registry>,
        reports: ReportSink,
        session_deps: Arc<SessionDeps>,
        passwords: PasswordHasherPool,
        secrets: SecretBox,
        outbox: Outbox,
        public_url: String,
        metrics: PrometheusHandle,
    ) -> Self {
        let per_minute = NonZeroU32::new(settings.auth.login_attempts_per_minute.max(1))
            .unwrap_or(NonZeroU32::MIN);
        let per_address =
            NonZeroU32::new(settings.auth.login_attempts_per_minute_per_address.max(1))
                .unwrap_or(NonZeroU32::MIN);
        Self {
            ws_limits: Arc::new(WsLimits::from(&settings.ws)),
            settings,
            store,
            registry,
            reports,
            session_deps,
            passwords,
            secrets,
            outbox,
            public_url,
            metrics,
            connections: LiveConnections::default(),
            cluster: None,
            draining: AtomicBool::new(false),
            login_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            address_limiter: RateLimiter::keyed(Quota::per_minute(per_address)),
        }
    }

    /// Whether a graceful shutdown has begun (new upgrades refused, readiness 503).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// 503 once draining.
    pub fn refuse_if_draining(&self) -> Result<(), AppError> {
        if self.draining() {
            Err(AppError::Unavailable)
        } else {
            Ok(())
        }
    }

    /// Counts a login attempt for `username` from `address`; 429 with Retry-After when either
    /// is over its limit.
    pub fn check_login_rate(
        &self,
        username: &str,
        address: Option<std::net::IpAddr>,
    ) -> Result<(), AppError> {
        self.check_code_rate(address)?;
        self.login_limiter
            .check_key(&crate::store::username_key(&username_prefix(username)))
            .map_err(too_many_attempts)
    }

    /// Counts a code guess (`POST /auth/verify`), a reset request or the address part of a
    /// login from `address` against the per-address limit; the per-code and per-user caps of
    /// the code step are the store's.
    pub fn check_code_rate(&self, address: Option<std::net::IpAddr>) -> Result<(), AppError> {
        let Some(ip) = address else { return Ok(()) };
        self.address_limiter
            .check_key(&address_key(ip))
            .map_err(too_many_attempts)
    }

    /// Forgets limiter entries whose quota has fully refilled, so the maps hold only clients
    /// seen within the last minute (run periodically).
    pub fn prune_limiters(&self) {
        self.address_limiter.retain_recent();
        self.login_limiter.retain_recent();
        self.address_limiter.shrink_to_fit();
        self.login_limiter.shrink_to_fit();
    }

    /// The WebSocket form of the public URL.
    pub fn public_ws_url(&self) -> String {
        if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_url.clone()
        }
    }
}
