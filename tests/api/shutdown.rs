//! Graceful shutdown of the real binary on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestDatabase, Ws, postgres_server};

/// A database of its own when the suite runs on PostgreSQL.
async fn test_database() -> Option<TestDatabase> {
    match postgres_server() {
        Some(server) => Some(TestDatabase::create(&server).await),
        None => None,
    }
}

struct Broker {
    child: std::process::Child,
    base: String,
}

impl Broker {
    fn start(data_dir: &std::path::Path, database: Option<&TestDatabase>) -> Broker {
        Self::start_logging(data_dir, database, "warn", Stdio::null())
    }

    /// Starts the binary with a log filter, its log (stderr) going to `log`.
    fn start_logging(
        data_dir: &std::path::Path,
        database: Option<&TestDatabase>,
        filter: &str,
        log: impl Into<Stdio>,
    ) -> Broker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_support-broker"));
        if let Some(database) = database {
            command.env("BROKER_DATABASE__URL", &database.url);
        }
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("BROKER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("BROKER_LOG__FILTER", filter)
            // The load here is the point (chat flooded while stopping), not the traffic limits.
            .env("BROKER_WS__CHAT_PER_SEC", "1000000")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("broker starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("a line").expect("readable");
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.trim().to_string();
            }
        };
        Broker { child, base }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

impl Broker {
    /// Waits for the process to exit, at most until `deadline`.
    async fn exit_by(&mut self, deadline: Instant) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "exits within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The platform admin's HTTP calls against a started binary.
struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn login(broker: &Broker) -> Admin {
        let http = reqwest::Client::new();
        let res = http
            .post(format!("{}/api/v1/auth/login", broker.base))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        Admin {
            http,
            base: broker.base.clone(),
            token,
        }
    }

    fn ws_base(&self) -> String {
        self.base.replace("http://", "ws://")
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A chat-only policy in the admin's own account; answers its id.
    async fn chat_policy(&self) -> Value {
        let me = self.get("/me").await;
        let account = me["user"]["account_id"].as_str().unwrap();
        let policy = self
            .post(
                &format!("/accounts/{account}/policies"),
                json!({"name": "Chat", "permissions": ["chat"]}),
            )
            .await;
        policy["id"].clone()
    }

    /// Invites a guest into the session; answers the link's token.
    async fn invite(&self, sid: &str, policy: &Value) -> String {
        let inv = self
            .post(
                &format!("/sessions/{sid}/invitations"),
                json!({"policy_id": policy, "guest_name": "G"}),
            )
            .await;
        inv["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }
}

#[actix_web::test]
async fn sigterm_ends_sessions_with_1001_flushes_reports_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database().await;
    let mut broker = Broker::start(dir.path(), database.as_ref());
    let admin = Admin::login(&broker).await;
    let ws_base = admin.ws_base();
    let policy = admin.chat_policy().await;
    let mut sockets = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = admin
            .post("/sessions", json!({"subject": "Shutdown test"}))
            .await;
        let sid = s["id"].as_str().unwrap().to_string();
        let mut owner = Ws::connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&admin.token))
            .await
            .unwrap();
        let customer = Ws::connect(
            &format!(
                "{ws_base}/ws/customer/{}",
                s["customer_key"].as_str().unwrap()
            ),
            None,
        )
        .await
        .unwrap();
        let join = admin.invite(&sid, &policy).await;
        let guest = Ws::connect(&format!("{ws_base}/ws/guest/{join}"), None)
            .await
            .unwrap();
        owner.chat("before shutdown").await;
        owner.expect("chat").await;
        sockets.extend([owner, customer, guest]);
        sessions.push(sid);
    }

    let started = Instant::now();
    broker.sigterm();
    for ws in &mut sockets {
        assert_eq!(ws.expect("session_ended").await["reason"], "shutdown");
        assert_eq!(ws.expect_close().await, Some(1001));
    }
    let status = broker.exit_by(started + Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");

    // Everything is in the reports after a restart.
    let broker = Broker::start(dir.path(), database.as_ref());
    let admin = Admin::login(&broker).await;
    for sid in sessions {
        let report = admin.get(&format!("/sessions/{sid}/report")).await;
        assert_eq!(report["session"]["end_reason"], "shutdown");
        assert_eq!(report["chat"][0]["text"], "before shutdown");
        let parts = report["participants"].as_array().unwrap();
        assert_eq!(parts.len(), 3);
        assert!(
            parts.iter().all(|p| p["leave_reason"] == "shutdown"),
            "{parts:?}"
        );
        assert_eq!(report["invitations"][0]["outcome"], "redeemed");
    }
}

#[actix_web::test]
async fn a_requested_shutdown_tells_clients_and_stops_in_process() {
    let app = crate::helpers::TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let code = app.enrollment_code(&t).await;
    let (_, secret) = app.enroll(&code, "SD-1", "ios").await;
    let mut agent = app.ws_device(&secret).await.unwrap();
    app.shutdown();
    for ws in [&mut owner, &mut customer] {
        assert_eq!(ws.expect("session_ended").await["reason"], "shutdown");
        assert_eq!(ws.expect_close().await, Some(1001));
    }
    assert_eq!(
        agent.expect_close().await,
        Some(1001),
        "device agents are closed too"
    );
    let crate::helpers::TestApp { stopped, .. } = app;
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("stops within 10 s")
        .expect("stopped cleanly");
}

#[actix_web::test]
async fn a_shutdown_under_chat_load_loses_no_report_event() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database().await;
    let mut broker = Broker::start(dir.path(), database.as_ref());
    let admin = Admin::login(&broker).await;
    let ws_base = admin.ws_base();
    let mut owners = Vec::new();
    for _ in 0..4 {
        let s = admin.post("/sessions", json!({"subject": "Load"})).await;
        let sid = s["id"].as_str().unwrap().to_string();
        let ws = Ws::connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&admin.token))
            .await
            .unwrap();
        owners.push((sid, ws));
    }
    // Every owner floods its session; the broker is stopped while chat is still arriving.
    const SENT: usize = 1500;
    for (_, ws) in &mut owners {
        for i in 0..SENT {
            ws.chat(&format!("m{i}")).await;
        }
    }
    broker.sigterm();
    let mut echoed = Vec::new();
    for (sid, ws) in &mut owners {
        let mut texts = Vec::new();
        loop {
            match ws.next().await {
                crate::helpers::Event::Json(v) if v["type"] == "chat" => {
                    texts.push(v["text"].as_str().unwrap().to_string())
                }
                crate::helpers::Event::Closed(_) => break,
                _ => {}
            }
        }
        echoed.push((sid.clone(), texts));
    }
    let status = broker.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");

    // Every chat the broker relayed before it stopped is in the report, in order.
    let broker = Broker::start(dir.path(), database.as_ref());
    let admin = Admin::login(&broker).await;
    let mut total = 0;
    for (sid, texts) in echoed {
        let report = admin.get(&format!("/sessions/{sid}/report")).await;
        let stored: Vec<&str> = report["chat"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        // The broker may have relayed more than reached the owner before its socket closed;
        // what did reach it is in the report, and the report is the sent order without gaps.
        assert!(
            stored.len() >= texts.len(),
            "session {sid}: {} stored, {} relayed",
            stored.len(),
            texts.len()
        );
        assert_eq!(
            stored[..texts.len()],
            texts[..],
            "session {sid}: the report holds what was relayed"
        );
        let expected: Vec<String> = (0..stored.len()).map(|i| format!("m{i}")).collect();
        assert_eq!(
            stored, expected,
            "session {sid}: in the order sent, none missing"
        );
        total += texts.len();
    }
    assert!(total > 0, "chat was relayed before the shutdown");
}

#[actix_web::test]
async fn no_secret_reaches_the_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("broker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let database = test_database().await;
    let mut broker = Broker::start_logging(dir.path(), database.as_ref(), "debug", log);

    // A failed login (its password must not show either), then the real one.
    let wrong_password = "Wr0ng-but-secret-Passw0rd";
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", broker.base))
        .json(&json!({"username": "admin", "password": wrong_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let admin = Admin::login(&broker).await;
    let ws_base = admin.ws_base();
    let policy = admin.chat_policy().await;
    let session = admin
        .post("/sessions", json!({"subject": "Log test"}))
        .await;
    let sid = session["id"].as_str().unwrap().to_string();
    let customer_key = session["customer_key"].as_str().unwrap().to_string();

    // The technician joins by a browser ticket (in the query string), the customer by its key.
    let ticket = admin.post("/ws-tickets", json!({"session_id": sid})).await;
    let ticket = ticket["ticket"].as_str().unwrap().to_string();
    let mut owner = Ws::connect(
        &format!("{ws_base}/ws/sessions/{sid}?ticket={ticket}"),
        None,
    )
    .await
    .unwrap();
    let _customer = Ws::connect(&format!("{ws_base}/ws/customer/{customer_key}"), None)
        .await
        .unwrap();

    // The invitation: looked at, redeemed, and tried again (410).
    let join = admin.invite(&sid, &policy).await;
    let res = admin
        .http
        .get(format!("{}/join/{join}", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _guest = Ws::connect(&format!("{ws_base}/ws/guest/{join}"), None)
        .await
        .unwrap();
    assert!(
        Ws::connect(&format!("{ws_base}/ws/guest/{join}"), None)
            .await
            .is_err()
    );
    owner.chat("hello").await;
    owner.expect("chat").await;

    broker.sigterm();
    broker
        .exit_by(Instant::now() + Duration::from_secs(10))
        .await;

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.lines().count() >= 10 && text.contains("/ws/guest/"),
        "debug logging ran and named the routes:\n{text}"
    );
    for (what, secret) in [
        ("admin password", ADMIN_PASSWORD),
        ("wrong password", wrong_password),
        ("login token", admin.token.as_str()),
        ("customer key", customer_key.as_str()),
        ("ws ticket", ticket.as_str()),
        ("invitation token", join.as_str()),
    ] {
        assert!(!text.contains(secret), "the {what} is in the log:\n{text}");
    }
}

/// The listening line names what is bound and served, not what `http.public_url` says (a
/// broker behind a TLS proxy serves plain HTTP itself).
#[actix_web::test]
async fn the_listening_line_names_the_bound_address_whatever_the_public_url_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_support-broker"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BROKER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("BROKER_LOG__FILTER", "warn")
        .env("BROKER_HTTP__PUBLIC_URL", "https://support.example.com")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker starts");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("listening on "))
        .expect("a listening line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
}

#[actix_web::test]
async fn one_node_whose_secret_key_was_lost_still_starts_and_its_users_sign_in() {
    let app = crate::helpers::TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    app.shutdown();
    let crate::helpers::TestApp {
        data_dir,
        database,
        stopped,
        ..
    } = app;
    let _ = tokio::time::timeout(Duration::from_secs(10), stopped).await;
    // The data dir's key is gone and made anew: what it sealed cannot be opened any more,
    // but the broker must not lock its users out over it.
    std::fs::remove_file(data_dir.path().join("secret.key")).unwrap();
    let again = crate::helpers::TestApp::spawn_at(data_dir, database, |_| {}).await;
    let admin = again.login("acme-admin", crate::helpers::PASSWORD).await;
    let (status, _) = again
        .get(&format!("/accounts/{}/users", t.id), &admin)
        .await;
    assert_eq!(status, 200);
}
