//! Graceful shutdown of the real binary on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, Ws};

struct Broker {
    child: std::process::Child,
    base: String,
}

impl Broker {
    fn start(data_dir: &std::path::Path) -> Broker {
        Self::start_logging(data_dir, "warn", Stdio::null())
    }

    /// Starts the binary with a log filter, its log (stderr) going to `log`.
    fn start_logging(data_dir: &std::path::Path, filter: &str, log: impl Into<Stdio>) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_support-broker"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("BROKER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("BROKER_LOG__FILTER", filter)
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

async fn login(http: &reqwest::Client, base: &str) -> String {
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn sigterm_ends_sessions_with_1001_flushes_reports_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let http = reqwest::Client::new();
    let token = login(&http, &broker.base).await;
    let ws_base = broker.base.replace("http://", "ws://");
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}/api/v1{path}", broker.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let me: serde_json::Value = http
        .get(format!("{}/api/v1/me", broker.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = me["user"]["account_id"].as_str().unwrap().to_string();
    let policy: serde_json::Value = post(
        &format!("/accounts/{account}/policies"),
        json!({"name": "Chat", "permissions": ["chat"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut sockets = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s: serde_json::Value = post("/sessions", json!({"subject": "Shutdown test"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = s["id"].as_str().unwrap().to_string();
        let mut owner = Ws::connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&token))
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
        let inv: serde_json::Value = post(
            &format!("/sessions/{sid}/invitations"),
            json!({"policy_id": policy["id"], "guest_name": "G"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let join = inv["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
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
    let status = loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "exits within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");

    // Everything is in the reports after a restart.
    let broker = Broker::start(dir.path());
    let token = login(&http, &broker.base).await;
    for sid in sessions {
        let report: serde_json::Value = http
            .get(format!("{}/api/v1/sessions/{sid}/report", broker.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let mut broker = Broker::start(dir.path());
    let http = reqwest::Client::new();
    let token = login(&http, &broker.base).await;
    let ws_base = broker.base.replace("http://", "ws://");
    let mut owners = Vec::new();
    for _ in 0..4 {
        let s: serde_json::Value = http
            .post(format!("{}/api/v1/sessions", broker.base))
            .bearer_auth(&token)
            .json(&json!({"subject": "Load"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = s["id"].as_str().unwrap().to_string();
        let ws = Ws::connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&token))
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
    let broker = Broker::start(dir.path());
    let token = login(&http, &broker.base).await;
    let mut total = 0;
    for (sid, texts) in echoed {
        let report: serde_json::Value = http
            .get(format!("{}/api/v1/sessions/{sid}/report", broker.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    let mut broker = Broker::start_logging(dir.path(), "debug", log);
    let http = reqwest::Client::new();
    let base = broker.base.clone();
    let ws_base = base.replace("http://", "ws://");

    // A failed login (its password must not show either), then the real one.
    let wrong_password = "Wr0ng-but-secret-Passw0rd";
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": wrong_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let token = login(&http, &base).await;
    let call = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}/api/v1{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let me: serde_json::Value = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = me["user"]["account_id"].as_str().unwrap().to_string();
    let policy: serde_json::Value = call(
        &format!("/accounts/{account}/policies"),
        json!({"name": "Chat", "permissions": ["chat"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let session: serde_json::Value = call("/sessions", json!({"subject": "Log test"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap().to_string();
    let customer_key = session["customer_key"].as_str().unwrap().to_string();

    // The technician joins by a browser ticket (in the query string), the customer by its key.
    let ticket: serde_json::Value = call("/ws-tickets", json!({"session_id": sid}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let inv: serde_json::Value = call(
        &format!("/sessions/{sid}/invitations"),
        json!({"policy_id": policy["id"], "guest_name": "G"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let join = inv["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let res = http
        .get(format!("{base}/join/{join}"))
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "exits within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.lines().count() >= 10 && text.contains("/ws/guest/"),
        "debug logging ran and named the routes:\n{text}"
    );
    for (what, secret) in [
        ("admin password", ADMIN_PASSWORD),
        ("wrong password", wrong_password),
        ("login token", token.as_str()),
        ("customer key", customer_key.as_str()),
        ("ws ticket", ticket.as_str()),
        ("invitation token", join.as_str()),
    ] {
        assert!(!text.contains(secret), "the {what} is in the log:\n{text}");
    }
}
