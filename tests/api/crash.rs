//! Crash durability: the real binary under chat load is killed with SIGKILL and started again
//! on the same data dir. It must start; the interrupted session's report must be readable and
//! say that the session failed; nothing the HTTP API acknowledged may be lost (users,
//! invitations, grants, audit); and the chat lost is at most what arrived within the last
//! chunk interval (`sessions.chat_chunk_ms`) before the kill.

use std::{
    collections::BTreeSet,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, Event, PASSWORD, TestDatabase, Ws, postgres_server};

const CHUNK_MS: u64 = 1000;

struct Broker {
    child: Child,
    base: String,
    ws_base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// Starts the binary on `data`, and on `database` (PostgreSQL) when the suite runs there.
async fn start(data: &std::path::Path, database: Option<&TestDatabase>) -> Broker {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_support-broker"));
    if let Some(database) = database {
        command.env("BROKER_DATABASE__URL", &database.url);
    }
    let mut child = command
        .arg("serve")
        .env("BROKER_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("BROKER_STORAGE__DATA_DIR", data)
        .env("BROKER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("BROKER_SESSIONS__CHAT_CHUNK_MS", CHUNK_MS.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the broker starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(res) = http.get(format!("{base}/readyz")).send().await
            && res.status() == 200
        {
            return Broker {
                child,
                ws_base: format!("ws://127.0.0.1:{port}"),
                base,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the broker did not become ready");
}

impl Drop for Broker {
    /// A failing test does not leave a broker running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{base}/api/v1{path}"),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn login(base: &str, username: &str, password: &str) -> String {
    let (status, body) = call(
        base,
        "POST",
        "/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "login {username}: {body}");
    body["token"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn a_broker_killed_under_chat_load_restarts_and_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let database = match postgres_server() {
        Some(server) => Some(TestDatabase::create(&server).await),
        None => None,
    };
    let mut broker = start(dir.path(), database.as_ref()).await;
    let b = broker.base.clone();
    let admin = login(&b, "admin", ADMIN_PASSWORD).await;

    // What the HTTP API acknowledges: accounts, users, a grant, a pending invitation.
    let (status, customer) = call(&b, "POST", "/accounts", Some(&admin), Some(json!({"name": "Acme", "kind": "customer",
        "admin": {"username": "acme-admin", "first_name": "A", "last_name": "A", "email": "acme@example.com", "password": PASSWORD}}))).await;
    assert_eq!(status, 201, "{customer}");
    let cid = customer["id"].as_str().unwrap().to_string();
    let (status, partner) = call(&b, "POST", "/accounts", Some(&admin), Some(json!({"name": "Fixit", "kind": "partner", "certified": true,
        "admin": {"username": "fixit-admin", "first_name": "F", "last_name": "F", "email": "fixit@example.com", "password": PASSWORD}}))).await;
    assert_eq!(status, 201, "{partner}");
    let acme = login(&b, "acme-admin", PASSWORD).await;
    let fixit = login(&b, "fixit-admin", PASSWORD).await;
    let (status, tina) = call(
        &b,
        "POST",
        &format!("/accounts/{cid}/users"),
        Some(&acme),
        Some(json!({"username": "tina",
        "first_name": "T", "last_name": "T", "email": "tina@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{tina}");
    let (_, request) = call(
        &b,
        "POST",
        "/access-requests",
        Some(&fixit),
        Some(json!({"account_id": cid, "support_user": true})),
    )
    .await;
    let (status, grant) = call(
        &b,
        "POST",
        &format!(
            "/access-requests/{}/approve",
            request["id"].as_str().unwrap()
        ),
        Some(&acme),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{grant}");
    let (_, policy) = call(
        &b,
        "POST",
        &format!("/accounts/{cid}/policies"),
        Some(&acme),
        Some(json!({"name": "Chat", "permissions": ["chat"]})),
    )
    .await;
    let (_, session) = call(
        &b,
        "POST",
        "/sessions",
        Some(&acme),
        Some(json!({"subject": "Till 3 frozen"})),
    )
    .await;
    let sid = session["id"].as_str().unwrap().to_string();
    let mut tech = Ws::connect(
        &format!("{}/ws/sessions/{sid}", broker.ws_base),
        Some(&acme),
    )
    .await
    .unwrap();
    let mut cust = Ws::connect(
        &format!(
            "{}/ws/customer/{}",
            broker.ws_base,
            session["customer_key"].as_str().unwrap()
        ),
        None,
    )
    .await
    .unwrap();
    let (status, invitation) = call(
        &b,
        "POST",
        &format!("/sessions/{sid}/invitations"),
        Some(&acme),
        Some(
            json!({"policy_id": policy["id"], "guest_name": "Gina", "comment": "before the crash"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{invitation}");

    // Chat load from both sides; a message counts as acknowledged once the other side got it.
    let mut acknowledged: Vec<(String, Instant)> = Vec::new();
    let load_until = Instant::now() + Duration::from_millis(2500);
    let mut n = 0;
    while Instant::now() < load_until {
        n += 1;
        let (sender, receiver) = if n % 2 == 0 {
            (&mut tech, &mut cust)
        } else {
            (&mut cust, &mut tech)
        };
        let text = format!("message {n}");
        sender.chat(&text).await;
        loop {
            match receiver.next().await {
                Event::Json(v) if v["type"] == "chat" && v["text"] == text.as_str() => break,
                Event::Closed(code) => panic!("closed {code:?}"),
                _ => continue,
            }
        }
        acknowledged.push((text, Instant::now()));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    broker.child.kill().expect("SIGKILL");
    let killed = Instant::now();
    broker.child.wait().unwrap();
    drop((tech, cust));

    // Started again on the same data dir.
    let again = start(dir.path(), database.as_ref()).await;
    let b = again.base.clone();
    let acme = login(&b, "acme-admin", PASSWORD).await;
    login(&b, "tina", PASSWORD).await;
    let (_, access) = call(
        &b,
        "GET",
        &format!("/accounts/{cid}/access"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        access["grants"][0]["id"], grant["id"],
        "the grant survived: {access}"
    );
    let (status, report) = call(
        &b,
        "GET",
        &format!("/sessions/{sid}/report"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["session"]["state"], "ended");
    assert_eq!(
        report["session"]["end_reason"], "failed",
        "the report says the session was interrupted"
    );
    assert!(
        report["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == invitation["id"] && i["comment"] == "before the crash"),
        "the invitation survived: {report}"
    );
    let (_, audit) = call(
        &b,
        "GET",
        &format!("/accounts/{cid}/audit?limit=1000"),
        Some(&acme),
        None,
    )
    .await;
    let actions: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.created", "access.approved", "invitation.created"] {
        assert!(
            actions.contains(action),
            "{action} survived in the audit: {actions:?}"
        );
    }

    // The chat: what was lost was sent within the last chunk interval before the kill.
    let stored: BTreeSet<String> = report["chat"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&(String, Instant)> = acknowledged
        .iter()
        .filter(|(t, _)| !stored.contains(t))
        .collect();
    let oldest_lost = lost
        .iter()
        .map(|(_, at)| killed.duration_since(*at))
        .max()
        .unwrap_or_default();
    println!(
        "crash: {} chat messages acknowledged, {} in the report after SIGKILL and restart; {} lost, the oldest {} ms before the kill (chunk interval {CHUNK_MS} ms)",
        acknowledged.len(),
        acknowledged.len() - lost.len(),
        lost.len(),
        oldest_lost.as_millis()
    );
    assert!(
        oldest_lost <= Duration::from_millis(CHUNK_MS + 500),
        "chat older than the chunk interval was lost: {lost:?}"
    );
    drop(again);
}
