//! `Application`: builds the whole broker (store, writer, state, HTTP server) and runs it until
//! a signal or a shutdown handle asks it to drain. Used by `main` and by the tests alike.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::ServerHandle, middleware::from_fn, web};
use tokio::sync::watch;

use crate::{
    actors::{
        messages::{HandOver, Shutdown},
        registry::Registry,
        session::{RelayMetrics, SessionDeps},
    },
    auth::{password::PasswordHasherPool, token},
    config::{Secret, Settings},
    domain::{
        ids::{AccountId, UserId},
        rights::{PlatformRight, Rights},
    },
    http::{self, state::AppState},
    mail::Mailer,
    outbox::Outbox,
    report::ReportSink,
    sms::SmsSender,
    store::{NewAccount, NewUser, Store},
    telemetry,
};

/// Asks a running application to shut down gracefully.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

pub struct Application {
    server: actix_web::dev::Server,
    addr: std::net::SocketAddr,
    state: web::Data<AppState>,
    report_task: tokio::task::JoinHandle<()>,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
}

impl Application {
    /// Opens the store (migrating it), bootstraps the platform admin on first start, binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The recorder goes first: metric handles taken before it exists would be no-ops.
        let metrics = telemetry::metrics_handle()?;
        let settings = Arc::new(settings);
        let data_dir = settings.storage.data_dir.clone();
        let store = Store::connect(settings.database.url.expose(), &data_dir).await?;
        // Before this node joins anything: its key must open what the database holds.
        let secrets = crate::auth::secret_box::SecretBox::open(&data_dir)?;
        let clustered = !settings.cluster.nats_url.is_empty();
        check_secret_key(&store, &secrets, &data_dir, clustered).await?;
        // Several nodes: one PostgreSQL database and one NATS (docs/cluster.md).
        let cluster = if settings.cluster.nats_url.is_empty() {
            None
        } else {
            anyhow::ensure!(
                store.backend() == "postgres",
                "cluster.nats_url is set: the nodes of a cluster share one PostgreSQL database; set database.url to postgres://..."
            );
            let node = crate::cluster::node_id(&settings.cluster.node_id)?;
            let prefix = nats_prefix(&store, &settings.cluster.nats_prefix).await?;
            // Nodes of another version would not understand this one (nor it them), and each
            // would take the other's sessions for those of a dead node.
            let alive_since = chrono::Utc::now()
                - chrono::Duration::seconds(settings.cluster.node_dead_after_secs.max(3) as i64);
            let others = store
                .nodes_of_another_wire(&node, alive_since, crate::cluster::WIRE)
                .await?;
            anyhow::ensure!(
                others.is_empty(),
                "nodes of another version of the broker are running ({}): a cluster runs one version; stop them before starting this one (docs/cluster.md, \"Upgrading a cluster\")",
                others.join(", ")
            );
            let cluster = crate::cluster::Cluster::connect(
                settings.cluster.nats_url.expose(),
                prefix,
                node,
                Duration::from_secs(
                    settings.ws.client_timeout_secs.max(1) + settings.ws.ping_interval_secs.max(1),
                ),
            )
            .await?;
            store
                .node_seen(cluster.node_id(), chrono::Utc::now())
                .await?;
            // Agent connections this node held before a restart (same node id) are gone;
            // those of dead nodes are forgotten below.
            store.forget_agents_of(cluster.node_id(), None).await?;
            tracing::info!(
                node = cluster.node_id(),
                nats_prefix = cluster.prefix(),
                "node of a cluster"
            );
            Some(cluster)
        };
        let mut orphaned = store
            .fail_orphaned_sessions(cluster.as_ref().map(|c| c.node_id()))
            .await?;
        if let Some(cluster) = &cluster {
            let dead_after =
                chrono::Duration::seconds(settings.cluster.node_dead_after_secs.max(3) as i64);
            let since = chrono::Utc::now() - dead_after;
            orphaned += http::cluster::fail_sessions_of_dead_nodes(&store, cluster, since).await?;
            http::cluster::forget_agents_of_dead_nodes(&store, cluster, since).await?;
        }
        if orphaned > 0 {
            tracing::warn!(
                sessions = orphaned,
                "sessions left open by an unclean stop were ended as failed"
            );
        }
        let passwords = PasswordHasherPool::new(
            settings.auth.max_parallel_hashes,
            settings.auth.max_queued_hashes,
        )?;
        bootstrap(&store, &passwords, settings.admin_password.as_ref()).await?;

        let listener = TcpListener::bind(settings.http.bind)?;
        let addr = listener.local_addr()?;
        let tls = settings.http.tls.enabled();
        let public_url = settings.http.link_base(addr);

        let (reports, report_task) = ReportSink::start(
            store.clone(),
            Duration::from_millis(settings.sessions.chat_chunk_ms),
            settings.sessions.report_queue_events,
        );
        let registry = Registry::new();
        let session_deps = Arc::new(SessionDeps {
            reports: reports.clone(),
            registry: registry.clone(),
            reconnect_grace: Duration::from_secs(settings.sessions.reconnect_grace_secs),
            file_max_bytes: settings.ws.file_max_bytes,
            admission_timeout: Duration::from_secs(settings.sessions.admission_timeout_secs.max(1)),
            recordings_dir: settings.storage.recordings(),
            empty_end: Duration::from_secs(settings.sessions.empty_end_secs.max(1)),
            metrics: RelayMetrics::register(),
            journal: cluster
                .as_ref()
                .map(|c| crate::chat_journal::ChatJournal::start(c.client().clone(), c.prefix())),
        });
        let mailer = Mailer::new(&settings.mail, data_dir.join("outbox"))?;
        let sms = SmsSender::new(&settings.sms, data_dir.join("outbox"))?;
        let outbox = Outbox::new(store.clone(), mailer, sms, &settings.outbox);
        outbox.clone().start_retries();
        let mut state = AppState::new(
            settings.clone(),
            store,
            registry,
            reports,
            session_deps,
            passwords,
            secrets,
            outbox,
            public_url,
            metrics,
        );
        state.cluster = cluster;
        let state = web::Data::new(state);
        http::cluster::serve(state.clone()).await?;
        http::cluster::start_heartbeat(state.clone());

        http::access::start_expiry_sweeper(state.clone());
        // Recordings older than their retention go, at start and every hour.
        let recordings = settings.storage.recordings();
        let keep = Duration::from_secs(settings.sessions.recording_retention_days.max(1) * 86_400);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let dir = recordings.clone();
                let removed =
                    tokio::task::spawn_blocking(move || crate::recording::sweep(&dir, keep))
                        .await
                        .unwrap_or(0);
                if removed > 0 {
                    tracing::info!(removed, "recordings past their retention deleted");
                }
            }
        });
        start_housekeeping(state.clone());
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(http::middleware::security_headers))
                .wrap(from_fn(http::middleware::observe))
                .configure(http::configure)
        })
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        let server = if tls {
            server.listen_rustls_0_23(listener, tls_config(&settings)?)?
        } else {
            server.listen(listener)?
        }
        .run();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        Ok(Self {
            server,
            addr,
            state,
            report_task,
            shutdown_tx,
            shutdown_rx,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// Whether the broker serves TLS itself (not what `http.public_url` says).
    pub fn serves_tls(&self) -> bool {
        self.state.settings.http.tls.enabled()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown_tx.clone())
    }

    /// Serves until SIGINT/SIGTERM or the shutdown handle, then drains gracefully: new
    /// upgrades refused, sessions ended with `shutdown` and sockets closed with 1001, reports
    /// flushed, the server stopped.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            report_task,
            mut shutdown_rx,
            shutdown_tx,
            ..
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        tokio::select! {
            res = &mut server => { res??; return Ok(()); }
            _ = wait_for_signal() => tracing::info!("signal received; shutting down"),
            _ = shutdown_rx.wait_for(|stop| *stop) => tracing::info!("shutdown requested"),
        }
        drop(shutdown_tx);
        drain(&state, &handle).await;
        server.await??;
        drop(state);
        let _ = tokio::time::timeout(Duration::from_secs(2), report_task).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Periodic upkeep: forgets login-limiter entries whose quota has refilled, so their maps hold
/// only the clients of the last minute.
/// Holds the state weakly: it never keeps the report writer alive at shutdown.
fn start_housekeeping(state: web::Data<AppState>) {
    let state = Arc::downgrade(&state.into_inner());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { return };
            if state.draining() {
                return;
            }
            state.prune_limiters();
        }
    });
}

async fn drain(state: &AppState, handle: &ServerHandle) {
    state.start_draining();
    let sessions = state.registry.all_sessions();
    // A node of a cluster with other nodes running hands its sessions over (their clients
    // reconnect elsewhere and that node takes them over from the store); the last node, or
    // a broker of one node, ends them as `shutdown`.
    let hand_over = match &state.cluster {
        Some(cluster) => {
            let since = chrono::Utc::now()
                - chrono::Duration::seconds(
                    state.settings.cluster.node_dead_after_secs.max(3) as i64
                );
            match state
                .store
                .other_nodes_alive(cluster.node_id(), since)
                .await
            {
                Ok(others) => others,
                Err(err) => {
                    tracing::warn!(error = %err, "other nodes not read; ending sessions");
                    false
                }
            }
        }
        None => false,
    };
    if hand_over {
        if let Some(cluster) = &state.cluster {
            cluster.start_leaving();
        }
        tracing::info!(sessions = sessions.len(), "handing live sessions over");
        for addr in sessions {
            let _ = tokio::time::timeout(Duration::from_secs(2), addr.send(HandOver)).await;
        }
    } else {
        tracing::info!(sessions = sessions.len(), "ending live sessions");
        for addr in sessions {
            let _ = tokio::time::timeout(Duration::from_secs(2), addr.send(Shutdown)).await;
        }
    }
    if let Some(cluster) = &state.cluster {
        cluster.close_edges().await;
    }
    for agent in state.registry.close_devices() {
        agent.do_send(crate::actors::device::Disconnect {
            code: crate::domain::session::close_code::GOING_AWAY,
            reason: "shutdown",
        });
    }
    // Give every writer the moment it needs to put its Close 1001 on the wire.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while state.connections.count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.reports.flush().await;
    if let Some(cluster) = &state.cluster {
        // Ended as `shutdown` above: no other node needs to sweep them. Handed over: the row
        // stays, so that the others give the clients time to come back before any sweep.
        if !hand_over && let Err(err) = state.store.node_gone(cluster.node_id()).await {
            tracing::warn!(error = %err, "node row not removed");
        }
        // Off NATS: whoever asks for this node now hears at once that it is gone.
        let _ = cluster.client().flush().await;
        if let Err(err) = cluster.client().drain().await {
            tracing::warn!(error = %err, "NATS connection not drained");
        }
    }
    handle.stop(true).await;
    state.store.close().await;
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn tls_config(settings: &Settings) -> anyhow::Result<rustls::ServerConfig> {
    // One provider for the whole process (a no-op when main installed it already).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(&settings.http.tls.cert_file)?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&settings.http.tls.key_file)?;
    Ok(rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

/// First start on an empty database: the platform account and its admin `admin`.
async fn bootstrap(
    store: &Store,
    passwords: &PasswordHasherPool,
    password: Option<&Secret>,
) -> anyhow::Result<()> {
    if store.platform_account_exists().await? {
        return Ok(());
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p.clone(), false),
        None => (Secret::new(token::generate("")?), true),
    };
    let id = AccountId::new();
    let admin = NewUser {
        id: UserId::new(),
        kind: "user",
        username: "admin".into(),
        first_name: "Platform".into(),
        last_name: "Admin".into(),
        email: None,
        phone: None,
        password_hash: Some(passwords.hash(&password).await?),
        rights: Rights::account_admin(),
        platform_rights: vec![PlatformRight::PlatformAdmin, PlatformRight::PlatformSupport],
        language: "en",
    };
    let service = NewUser::service(id);
    store
        .create_account(&NewAccount {
            id,
            name: "Platform".into(),
            kind: "platform",
            certified: false,
            users: vec![admin, service],
        })
        .await?;
    if generated {
        // Printed once, on purpose, to stdout (never to the log).
        println!(
            "bootstrap: platform admin 'admin' created with password {}",
            password.expose()
        );
    } else {
        tracing::info!("bootstrap: platform admin 'admin' created with the configured password");
    }
    Ok(())
}

/// The installation's NATS subject prefix: the first node of a cluster stores its own (the
/// configured one, or a new one), every later node uses the stored one. A node configured
/// with another prefix than the stored one would not hear the others (and they would take it
/// for dead): it is refused at start.
async fn nats_prefix(store: &Store, configured: &str) -> anyhow::Result<String> {
    let proposed = crate::cluster::nats_prefix(configured)?;
    let stored = store.nats_prefix(&proposed).await?;
    anyhow::ensure!(
        configured.is_empty() || configured == stored,
        "cluster.nats_prefix is {configured:?} but this installation's nodes use {stored:?}: every node of a cluster uses the same prefix (leave it empty to take the stored one; docs/cluster.md)"
    );
    Ok(stored)
}

/// The text every installation seals with its `secret.key` at its first start.
const KEY_CHECK: &str = "support-broker secret.key check";

/// Whether this node's `secret.key` is the one the database's sealed values (customer links,
/// authenticator secrets) were sealed with. A node of a cluster with another key would answer
/// every customer link made elsewhere with 404: it is refused at start. One node with another
/// key (a data dir lost and made anew) starts, and says loudly what it cannot open.
async fn check_secret_key(
    store: &Store,
    secrets: &crate::auth::secret_box::SecretBox,
    data_dir: &std::path::Path,
    cluster: bool,
) -> anyhow::Result<()> {
    let mine = secrets.seal(KEY_CHECK)?;
    let stored = store.key_check(&mine).await?;
    if secrets
        .open_value(&stored)
        .is_ok_and(|plain| plain == KEY_CHECK)
    {
        return Ok(());
    }
    let key = data_dir.join("secret.key");
    if cluster {
        anyhow::bail!(
            "{} is not the key this database was sealed with: every node of a cluster needs the same secret.key (copy it from the first node; docs/cluster.md)",
            key.display()
        );
    }
    tracing::error!(
        key = %key.display(),
        "secret.key is not the key this database was sealed with: customer links and authenticator secrets stored before cannot be opened (restore the old secret.key to get them back)"
    );
    Ok(())
}
