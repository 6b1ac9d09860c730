//! Test helpers: a real broker on a free port with a fresh data dir, and typed HTTP and
//! WebSocket clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support_broker::{
    agent::{AgentOptions, Enrollment},
    config::{Secret, Settings},
    domain::device::Platform,
    startup::{Application, ShutdownHandle},
    store::db,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

pub const ADMIN_PASSWORD: &str = "platform-admin-pw";
pub const PASSWORD: &str = "correct horse battery";

/// A client of one broker node: its addresses, an HTTP client and the bootstrap admin's
/// token. Every request helper lives here, so the same calls reach an in-process broker
/// (`TestApp` derefs to its `Peer`) or a `serve` process.
pub struct Peer {
    pub base: String,
    pub ws_base: String,
    pub http: reqwest::Client,
    pub admin: String,
}

pub struct TestApp {
    pub peer: Peer,
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL database of this broker, when the suite runs on PostgreSQL.
    pub database: Option<TestDatabase>,
    shutdown: ShutdownHandle,
    pub stopped: tokio::sync::oneshot::Receiver<()>,
}

/// The server the suite runs its databases on: `SB_TEST_POSTGRES_URL` (a database URL of a
/// role that may create databases, e.g. `postgres://postgres@127.0.0.1:5432/postgres`), or
/// SQLite when it is unset.
pub fn postgres_server() -> Option<String> {
    std::env::var("SB_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// The cases a proptest model runs: `default`, or `SB_MODEL_CASES` (the PostgreSQL suite runs
/// the first 64 of the same fixed-seed sequences, to fit CI; `cargo test` runs all).
pub fn model_cases(default: u32) -> u32 {
    std::env::var("SB_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A database of its own for one test's broker on the PostgreSQL server, dropped with it.
pub struct TestDatabase {
    server: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create(server: &str) -> Self {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server)
            .await
            .expect("the PostgreSQL server of SB_TEST_POSTGRES_URL answers");
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("a test database is created");
        // Durability of PostgreSQL itself is not under test: no fsync wait per commit.
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} SET synchronous_commit = off"
            )),
        )
        .await
        .expect("the test database is set up");
        let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
        TestDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name, url) = (self.server.clone(), self.name.clone(), self.url.clone());
        // Dropped from a thread of its own: Drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                forget_chat_journal(&url).await;
                if let Ok(mut conn) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&server).await
                {
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

/// Deletes the chat journal stream of the installation on the database at `url`, if a node of
/// a cluster made one (each test installation has its own NATS prefix, hence its own stream:
/// without this, every run would leave its streams in the shared NATS).
async fn forget_chat_journal(url: &str) {
    let Ok(nats) = std::env::var("SB_TEST_NATS_URL") else {
        return;
    };
    let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await else {
        return;
    };
    let prefix: Option<String> =
        sqlx::query_scalar("SELECT nats_prefix FROM installation WHERE id = 1")
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten();
    let _ = sqlx::Connection::close(conn).await;
    let Some(prefix) = prefix else { return };
    if let Ok(client) = async_nats::connect(&nats).await {
        let js = async_nats::jetstream::new(client);
        let _ = js
            .delete_stream(support_broker::chat_journal::stream_name(&prefix))
            .await;
    }
}

/// An account with its admin logged in.
pub struct Tenant {
    pub id: String,
    pub admin_id: String,
    pub admin: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a broker whose settings `tweak` may change.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let database = match postgres_server() {
            Some(server) => Some(TestDatabase::create(&server).await),
            None => None,
        };
        Self::spawn_at(tempfile::tempdir().expect("temp dir"), database, tweak).await
    }

    /// Starts a broker on SQLite, whatever the suite runs on.
    pub async fn spawn_on_sqlite() -> Self {
        Self::spawn_at(tempfile::tempdir().expect("temp dir"), None, |_| {}).await
    }

    /// Starts a broker on `data_dir` and on `database` (PostgreSQL) or SQLite in the data dir.
    pub async fn spawn_at(
        data_dir: tempfile::TempDir,
        database: Option<TestDatabase>,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = Settings::defaults().expect("defaults");
        settings.http.bind = "127.0.0.1:0".parse().unwrap();
        settings.http.workers = 2;
        settings.storage.data_dir = data_dir.path().to_path_buf();
        settings.admin_password = Some(Secret::new(ADMIN_PASSWORD));
        settings.auth.max_parallel_hashes = 2;
        settings.auth.login_attempts_per_minute = 1000;
        settings.auth.login_attempts_per_minute_per_address = 10_000;
        if let Some(db) = &database {
            settings.database.url = Secret::new(db.url.clone());
        }
        tweak(&mut settings);
        let app = Application::build(settings).await.expect("broker builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let ws_base = format!("ws://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_handle();
        let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
        actix_web::rt::spawn(async move {
            app.run_until_stopped().await.expect("broker runs");
            let _ = stopped_tx.send(());
        });
        let http = reqwest::Client::new();
        let mut peer = Peer {
            base,
            ws_base,
            http,
            admin: String::new(),
        };
        peer.admin = peer.login("admin", ADMIN_PASSWORD).await;
        TestApp {
            peer,
            data_dir,
            database,
            shutdown,
            stopped,
        }
    }

    /// A broker in a thread (and actix system) of its own, for tests that drive it from
    /// outside any async runtime (proptest state machines), with a tokio runtime to do so.
    pub fn in_thread(
        tweak: impl FnOnce(&mut Settings) + Send + 'static,
    ) -> (Self, tokio::runtime::Runtime) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = TestApp::spawn_with(tweak).await;
                tx.send(app).expect("the test waits for the broker");
                std::future::pending::<()>().await;
            });
        });
        let app = rx.recv().expect("the broker starts");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        (app, rt)
    }

    /// A direct connection to the broker's database (to check what is stored at rest, or to
    /// move time on for a stored expiry).
    pub async fn db(&self) -> db::Pool {
        match &self.database {
            Some(database) => db::Pool::Postgres(
                sqlx::PgPool::connect(&database.url)
                    .await
                    .expect("database opens"),
            ),
            None => {
                let path = self.data_dir.path().join("broker.db");
                db::Pool::Sqlite(
                    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .expect("database opens"),
                )
            }
        }
    }

    /// Whether this broker runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.database.is_some()
    }

    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }
}

impl std::ops::Deref for TestApp {
    type Target = Peer;

    fn deref(&self) -> &Peer {
        &self.peer
    }
}

impl Peer {
    /// A client of the node at `base` (`http://host:port`), logged in as the bootstrap admin
    /// with `admin_password`.
    pub async fn at(base: &str, admin_password: &str) -> Peer {
        let mut peer = Peer {
            base: base.to_string(),
            ws_base: base.replacen("http", "ws", 1),
            http: reqwest::Client::new(),
            admin: String::new(),
        };
        peer.admin = peer.login("admin", admin_password).await;
        peer
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/api/")
            || path.starts_with("/join/")
            || path.starts_with("/healthz")
            || path.starts_with("/readyz")
            || path.starts_with("/metrics")
        {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        }
    }

    /// Sends a request and returns status and JSON body (Null when empty).
    /// Changes the account's settings as its admin (`PATCH /accounts/{id}`), expecting 200.
    pub async fn set_account(&self, t: &Tenant, settings: Value) {
        let (status, body) = self
            .call(
                "PATCH",
                &format!("/accounts/{}", t.id),
                Some(&t.admin),
                Some(settings),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Accept", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login of {username}: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// A customer account whose admin is logged in.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let admin_name = format!("{}-admin", name.to_lowercase().replace(' ', "-"));
        let (status, body) = self
            .post(
                "/accounts",
                &self.admin,
                json!({"name": name, "kind": "customer", "admin": {
                    "username": admin_name, "first_name": "Ada", "last_name": name,
                    "email": format!("{admin_name}@example.com"), "password": PASSWORD}}),
            )
            .await;
        assert_eq!(status, 201, "account: {body}");
        let admin = self.login(&admin_name, PASSWORD).await;
        Tenant {
            id: body["id"].as_str().unwrap().into(),
            admin_id: body["admin_user_id"].as_str().unwrap().into(),
            admin,
        }
    }

    /// A partner account (certified or not) whose admin is logged in.
    pub async fn partner(&self, name: &str, certified: bool) -> Tenant {
        let admin_name = format!("{}-admin", name.to_lowercase());
        let (status, body) = self
            .post(
                "/accounts",
                &self.admin,
                json!({"name": name, "kind": "partner", "certified": certified, "admin": {
                    "username": admin_name, "first_name": "Pat", "last_name": name,
                    "email": format!("{admin_name}@partner.example"), "password": PASSWORD}}),
            )
            .await;
        assert_eq!(status, 201, "partner: {body}");
        Tenant {
            id: body["id"].as_str().unwrap().into(),
            admin_id: body["admin_user_id"].as_str().unwrap().into(),
            admin: self.login(&admin_name, PASSWORD).await,
        }
    }

    /// A user of `tenant` with the given areas (and all object rights), logged in.
    pub async fn user(&self, tenant: &Tenant, username: &str, areas: &[&str]) -> (String, String) {
        let (status, body) = self
            .post(
                &format!("/accounts/{}/users", tenant.id),
                &tenant.admin,
                json!({"username": username, "first_name": "Tess", "last_name": username,
                       "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "user: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        let rights = json!({"areas": areas, "objects": {"create": true, "edit": true, "delete": true},
                            "groups": "all", "edit_group_settings": false, "support_access": false, "roles": []});
        let (status, body) = self
            .call(
                "PUT",
                &format!("/users/{id}/rights"),
                Some(&tenant.admin),
                Some(rights),
            )
            .await;
        assert_eq!(status, 200, "rights: {body}");
        (id, self.login(username, PASSWORD).await)
    }

    pub async fn policy(&self, tenant: &Tenant, name: &str, perms: &[&str]) -> String {
        let (status, body) = self
            .post(
                &format!("/accounts/{}/policies", tenant.id),
                &tenant.admin,
                json!({"name": name, "permissions": perms}),
            )
            .await;
        assert_eq!(status, 201, "policy: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Creates a session; returns (session id, customer key).
    pub async fn session(&self, token: &str) -> (String, String) {
        let (status, body) = self
            .post("/sessions", token, json!({"subject": "Printer offline"}))
            .await;
        assert_eq!(status, 201, "session: {body}");
        (
            body["id"].as_str().unwrap().into(),
            body["customer_key"].as_str().unwrap().into(),
        )
    }

    /// A device group of `tenant`; its id.
    pub async fn group(&self, tenant: &Tenant, name: &str) -> String {
        let (status, g) = self
            .post(
                &format!("/accounts/{}/groups", tenant.id),
                &tenant.admin,
                json!({"name": name}),
            )
            .await;
        assert_eq!(status, 201, "group: {g}");
        g["id"].as_str().unwrap().to_string()
    }

    /// A device enrolled into `group` of `tenant` with its agent online; its id and the agent.
    pub async fn online_device_in(
        &self,
        tenant: &Tenant,
        group: &str,
        serial: &str,
    ) -> (String, Ws) {
        let (status, code) = self
            .post(
                &format!("/accounts/{}/enrollment-codes", tenant.id),
                &tenant.admin,
                json!({"group_id": group}),
            )
            .await;
        assert_eq!(status, 201, "enrollment code: {code}");
        let (device, secret) = self
            .enroll(code["code"].as_str().unwrap(), serial, "android")
            .await;
        (device, self.ws_device(&secret).await.unwrap())
    }

    /// The ids of the ended sessions `token` is shown (`GET /sessions?state=ended`), sorted.
    pub async fn ended_ids(&self, token: &str) -> Vec<String> {
        let (status, body) = self.get("/sessions?state=ended", token).await;
        assert_eq!(status, 200, "{body}");
        let mut ids: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// A session made with `body` (`POST /sessions`) and ended by its owner at once; its id.
    pub async fn ended_session(&self, token: &str, body: Value) -> String {
        let (status, body) = self.post("/sessions", token, body).await;
        assert_eq!(status, 201, "session: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        let mut owner = self.ws_technician(token, &id).await;
        owner.send_json(json!({"type": "end_session"})).await;
        owner.expect("session_ended").await;
        id
    }

    /// Invites a guest; returns (invitation id, join token).
    pub async fn invite(
        &self,
        token: &str,
        session: &str,
        policy: &str,
        guest: &str,
    ) -> (String, String) {
        let (status, body) = self
            .post(
                &format!("/sessions/{session}/invitations"),
                token,
                json!({"policy_id": policy, "guest_name": guest, "comment": "please help"}),
            )
            .await;
        assert_eq!(status, 201, "invite: {body}");
        let url = body["url"].as_str().unwrap();
        (
            body["id"].as_str().unwrap().into(),
            url.rsplit('/').next().unwrap().to_string(),
        )
    }

    pub async fn ws_technician(&self, token: &str, session: &str) -> Ws {
        Ws::connect(
            &format!("{}/ws/sessions/{session}", self.ws_base),
            Some(token),
        )
        .await
        .expect("technician joins")
    }

    pub async fn ws_customer(&self, key: &str) -> Ws {
        Ws::connect(&format!("{}/ws/customer/{key}", self.ws_base), None)
            .await
            .expect("customer joins")
    }

    pub async fn ws_guest(&self, join_token: &str) -> Result<Ws, u16> {
        Ws::connect(&format!("{}/ws/guest/{join_token}", self.ws_base), None).await
    }

    /// A user of the platform account (not platform staff itself) with `rights`, signed in;
    /// answers (the platform admin's user id, the new user's token).
    pub async fn platform_user(&self, username: &str, rights: Value) -> (String, String) {
        let (_, me) = self.get("/me", &self.admin).await;
        let platform = me["user"]["account_id"].as_str().unwrap().to_string();
        let admin_id = me["user"]["id"].as_str().unwrap().to_string();
        let (status, user) = self
            .post(
                &format!("/accounts/{platform}/users"),
                &self.admin,
                json!({"username": username, "first_name": "S", "last_name": "T",
                       "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        let id = user["id"].as_str().unwrap().to_string();
        self.set_rights(&self.admin, &id, rights).await;
        (admin_id, self.login(username, PASSWORD).await)
    }

    /// Sets a user's rights as `admin` (the setup of a test: it must succeed).
    pub async fn set_rights(&self, admin: &str, user: &str, rights: Value) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/users/{user}/rights"),
                Some(admin),
                Some(rights),
            )
            .await;
        assert_eq!(status, 200, "rights: {body}");
    }

    /// Creates a device in the tenant; returns its id.
    pub async fn device(&self, tenant: &Tenant, serial: &str, platform: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/accounts/{}/devices", tenant.id),
                &tenant.admin,
                json!({"name": format!("Device {serial}"), "serial": serial, "platform": platform}),
            )
            .await;
        assert_eq!(status, 201, "device: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// A new enrollment code of the tenant.
    pub async fn enrollment_code(&self, tenant: &Tenant) -> String {
        let (status, body) = self
            .post(
                &format!("/accounts/{}/enrollment-codes", tenant.id),
                &tenant.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "enrollment code: {body}");
        body["code"].as_str().unwrap().to_string()
    }

    /// Enrolls a device by code; returns (device id, device secret).
    pub async fn enroll(&self, code: &str, serial: &str, platform: &str) -> (String, String) {
        let (status, body) = self
            .call(
                "POST",
                "/enroll",
                None,
                Some(json!({"code": code, "serial": serial, "platform": platform,
                            "model": "Pixel 9", "name": format!("Phone {serial}"), "os_version": "15"})),
            )
            .await;
        assert_eq!(status, 201, "enroll: {body}");
        (
            body["device_id"].as_str().unwrap().into(),
            body["device_secret"].as_str().unwrap().into(),
        )
    }

    /// The agent connection of a device.
    pub async fn ws_device(&self, secret: &str) -> Result<Ws, u16> {
        Ws::connect_raw(&format!("{}/ws/device", self.ws_base), Some(secret)).await
    }

    /// A user holding a self-service `role`, linked to nothing yet; returns (id, token).
    pub async fn self_service_user(
        &self,
        tenant: &Tenant,
        username: &str,
        role: &str,
    ) -> (String, String) {
        let (id, token) = self.user(tenant, username, &[]).await;
        let rights = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false},
                            "groups": [], "roles": [role]});
        let (status, body) = self
            .call(
                "PUT",
                &format!("/users/{id}/rights"),
                Some(&tenant.admin),
                Some(rights),
            )
            .await;
        assert_eq!(status, 200, "rights: {body}");
        (id, token)
    }

    /// Links a device to a user.
    pub async fn link(&self, tenant: &Tenant, device: &str, user: Option<&str>) {
        let (status, body) = self
            .call(
                "PUT",
                &format!("/devices/{device}/user"),
                Some(&tenant.admin),
                Some(json!({"user_id": user})),
            )
            .await;
        assert_eq!(status, 200, "link: {body}");
    }

    /// The action names in the tenant's audit log, newest first.
    pub async fn audit_actions(&self, tenant: &Tenant) -> Vec<String> {
        let (status, body) = self
            .get(&format!("/accounts/{}/audit", tenant.id), &tenant.admin)
            .await;
        assert_eq!(status, 200, "audit: {body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    /// The report of a session.
    pub async fn report(&self, token: &str, session: &str) -> Value {
        let (status, body) = self
            .get(&format!("/sessions/{session}/report"), token)
            .await;
        assert_eq!(status, 200, "report: {body}");
        body
    }
}

/// A WebSocket client of the session protocol.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    /// The welcome frame received on joining.
    pub welcome: Value,
}

/// What arrived next.
#[derive(Debug)]
pub enum Event {
    Json(Value),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

impl Ws {
    /// Connects; `Err(status)` when the broker refuses the upgrade.
    pub async fn connect(url: &str, bearer: Option<&str>) -> Result<Ws, u16> {
        Ok(Self::connect_raw(url, bearer).await?.welcomed().await)
    }

    /// Takes the first frame, which must be the `welcome`.
    async fn welcomed(mut self) -> Ws {
        match self.next().await {
            Event::Json(v) if v["type"] == "welcome" => self.welcome = v,
            other => panic!("expected welcome, got {other:?}"),
        }
        self
    }

    /// Connects as a client coming back after its node went away: a 503 (the session's home
    /// is between nodes, `Retry-After`) is tried again, as the console does, for up to 10 s.
    pub async fn reconnect(url: &str, bearer: Option<&str>) -> Result<Ws, u16> {
        Ok(Self::reconnect_raw(url, bearer).await?.welcomed().await)
    }

    /// As `reconnect`, without waiting for a welcome (a guest back in the lobby gets `lobby`).
    pub async fn reconnect_raw(url: &str, bearer: Option<&str>) -> Result<Ws, u16> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::connect_raw(url, bearer).await {
                Err(503) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    /// Connects without waiting for a welcome (device agents get none).
    pub async fn connect_raw(url: &str, bearer: Option<&str>) -> Result<Ws, u16> {
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = bearer {
            req.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((stream, _)) => Ok(Ws {
                stream,
                welcome: Value::Null,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    pub fn id(&self) -> String {
        self.welcome["participant_id"].as_str().unwrap().to_string()
    }

    pub async fn send_json(&mut self, v: Value) {
        self.stream
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, t: &str) {
        self.stream
            .send(Message::text(t.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.stream.send(Message::binary(data)).await.expect("send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        let _ = self.stream.send(msg).await;
    }

    pub async fn chat(&mut self, text: &str) {
        self.send_json(serde_json::json!({"type": "chat", "text": text}))
            .await;
    }

    /// The next frame within 5 s (pings skipped).
    pub async fn next(&mut self) -> Event {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        loop {
            let msg = match tokio::time::timeout(wait, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(Event::Closed(None)),
                Ok(Some(Err(_))) => return Some(Event::Closed(None)),
                Ok(Some(Ok(m))) => m,
            };
            return Some(match msg {
                Message::Text(t) => {
                    Event::Json(serde_json::from_str(&t).expect("json from server"))
                }
                Message::Binary(b) => Event::Binary(b.to_vec()),
                Message::Close(frame) => Event::Closed(frame.map(|f| u16::from(f.code))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            });
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            match self.next().await {
                Event::Json(v) if v["type"] == kind => return v,
                Event::Json(_) | Event::Binary(_) => continue,
                Event::Closed(code) => panic!("closed ({code:?}) while waiting for {kind}"),
            }
        }
    }

    /// Skips frames until the close; returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Skips text frames until a binary one arrives.
    pub async fn expect_binary(&mut self) -> Vec<u8> {
        loop {
            match self.next().await {
                Event::Binary(b) => return b,
                Event::Json(_) => continue,
                Event::Closed(code) => panic!("closed ({code:?}) while waiting for binary"),
            }
        }
    }

    /// Asserts that nothing but `ignore` types arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration, ignore: &[&str]) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_within(left).await {
                None => return,
                Some(Event::Json(v)) if ignore.iter().any(|t| v["type"] == *t) => continue,
                Some(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Drops the TCP connection without a close handshake (a lost connection).
    pub fn drop_connection(self) {
        drop(self.stream);
    }
}

/// Polls `f` until it returns true or 5 s pass.
pub async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The code in a message ("... login code for acme: 12345 ...", in any language):
/// the digits right after the first ": " that digits follow, after the last "code".
pub fn code_in(text: &str) -> String {
    let from = text.rfind("code").expect("a code");
    let text = &text[from..];
    let at = text
        .match_indices(": ")
        .map(|(at, _)| at + 2)
        .find(|&at| text[at..].starts_with(|c: char| c.is_ascii_digit()))
        .expect("a code");
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The code of the newest login-code mail to `to`.
pub fn last_mail_code(app: &TestApp, to: &str) -> String {
    // Newest first, reading only as far as the mail sought: a model test sends thousands.
    let mail = outbox_paths(app)
        .iter()
        .rev()
        .map(|p| decode_quoted_printable(&std::fs::read_to_string(p).unwrap()))
        .find(|m| m.contains(&format!("To: {to}")) && m.contains("login code"))
        .expect("a code mail");
    code_in(&mail)
}

/// The mails in the broker's outbox (decoded from quoted-printable), oldest first.
pub fn outbox_mails(app: &TestApp) -> Vec<String> {
    outbox_paths(app)
        .iter()
        .map(|p| decode_quoted_printable(&std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// The files of the broker's outbox, oldest first.
fn outbox_paths(app: &TestApp) -> Vec<std::path::PathBuf> {
    let Ok(dir) = std::fs::read_dir(app.data_dir.path().join("outbox")) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
}

/// The token of the set-password link in `text`.
pub fn set_password_token_in(text: &str) -> String {
    let at = text
        .find("set-password?token=")
        .expect("a set-password link")
        + "set-password?token=".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The set-password token in the newest mail to `to` that carries one.
pub fn newest_set_password_token(app: &TestApp, to: &str) -> String {
    let text = outbox_mails(app)
        .into_iter()
        .rev()
        .find(|t| t.contains(&format!("To: {to}")) && t.contains("set-password?token="))
        .expect("a mail with a set-password link");
    set_password_token_in(&text)
}

/// Undoes quoted-printable: soft line breaks and =XX escapes.
pub fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'='
            && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Options of the reference agent against `app`, its identity kept in `dir`: a phone at
/// 47.37, 8.54 with 64 % battery, reporting every 200 ms.
pub fn agent_options(
    app: &TestApp,
    dir: &std::path::Path,
    enroll: Option<Enrollment>,
) -> AgentOptions {
    AgentOptions {
        server: app.base.clone(),
        identity_file: dir.join("identity.json"),
        enroll,
        position: (47.37, 8.54),
        battery: 64,
        telemetry_every: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
    }
}

/// "Ann's phone" (iOS, serial REF-1), pre-assigned to `username` so that it is the user's from
/// its enrollment on; returns what the reference agent enrolls with.
pub async fn preassigned_phone(app: &TestApp, tenant: &Tenant, username: &str) -> Enrollment {
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollments", tenant.id),
            &tenant.admin,
            json!({"serial": "REF-1", "username": username}),
        )
        .await;
    assert_eq!(status, 201, "pre-assignment: {body}");
    Enrollment {
        code: app.enrollment_code(tenant).await,
        serial: "REF-1".into(),
        platform: Platform::Ios,
        model: "iPhone 16".into(),
        name: "Ann's phone".into(),
        os_version: "18.1".into(),
    }
}
