//! Load test: starts the release broker on loopback with a temporary data dir and drives it
//! with real WebSocket clients. S sessions of one customer, two technicians and one guest
//! (joined through a real invitation) exchange chat and screen frames; the run ramps up,
//! holds, stops by itself, prints a table and writes JSON to target/bench-results/.
//!
//! cargo bench --bench load -- [--sessions N] [--secs S] [--chat-per-sec R] [--screen-bytes B]
//!                             [--screens-per-sec R]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

const PASSWORD: &str = "bench-admin-password";

struct Opts {
    sessions: usize,
    secs: u64,
    chat_per_sec: f64,
    screen_bytes: usize,
    screens_per_sec: f64,
}

fn opts() -> Opts {
    let mut o = Opts {
        sessions: 50,
        secs: 10,
        chat_per_sec: 1.0,
        screen_bytes: 16 * 1024,
        screens_per_sec: 5.0,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sessions" => o.sessions = val().parse().expect("--sessions N"),
            "--secs" => o.secs = val().parse().expect("--secs S"),
            "--chat-per-sec" => o.chat_per_sec = val().parse().expect("--chat-per-sec R"),
            "--screen-bytes" => o.screen_bytes = val().parse().expect("--screen-bytes B"),
            "--screens-per-sec" => o.screens_per_sec = val().parse().expect("--screens-per-sec R"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

#[derive(Default)]
struct Stats {
    chat_sent: AtomicU64,
    chat_delivered: AtomicU64,
    screen_sent: AtomicU64,
    screen_delivered: AtomicU64,
    screen_bytes: AtomicU64,
    errors: AtomicU64,
    disconnects: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn proc_stat(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = 100.0;
    let cpu = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu / ticks, kib("VmRSS:"), kib("VmHWM:"))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, bearer: Option<&str>) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    // Wait for the welcome so the participant is in the session.
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg
            && t.contains("\"welcome\"")
        {
            break;
        }
    }
    ws
}

/// Runs one participant: sends chat (and screen frames for the customer) until `stop`, reads
/// and counts everything it receives.
#[allow(clippy::too_many_arguments)]
fn drive(
    ws: Ws,
    stats: Arc<Stats>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    chat_every: Duration,
    screen: Option<(Duration, usize)>,
) -> tokio::task::JoinHandle<()> {
    let (mut tx, mut rx) = ws.split();
    let reader_stats = stats.clone();
    let reader = tokio::spawn(async move {
        let mut local = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_millis(200), rx.next()).await;
            match next {
                Err(_) if done.load(Ordering::Relaxed) => break,
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["type"] == "chat" {
                        reader_stats.chat_delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent) = v["text"].as_str().and_then(|s| s.parse::<u64>().ok()) {
                            local.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent));
                        }
                    } else if v["type"] == "error" {
                        reader_stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    reader_stats
                        .screen_delivered
                        .fetch_add(1, Ordering::Relaxed);
                    reader_stats
                        .screen_bytes
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    reader_stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        reader_stats.latencies_us.lock().await.extend(local);
    });
    tokio::spawn(async move {
        let mut chat_tick = tokio::time::interval(chat_every);
        let mut screen_tick =
            tokio::time::interval(screen.map_or(Duration::from_secs(3600), |s| s.0));
        chat_tick.tick().await;
        screen_tick.tick().await;
        let frame: Vec<u8> = screen.map_or(Vec::new(), |(_, n)| {
            std::iter::once(1u8)
                .chain(std::iter::repeat_n(7u8, n.saturating_sub(1)))
                .collect()
        });
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                _ = chat_tick.tick() => {
                    let text = json!({"type": "chat", "text": (epoch.elapsed().as_micros() as u64).to_string()}).to_string();
                    if tx.send(Message::text(text)).await.is_err() { stats.errors.fetch_add(1, Ordering::Relaxed); break; }
                    stats.chat_sent.fetch_add(1, Ordering::Relaxed);
                }
                _ = screen_tick.tick(), if screen.is_some() => {
                    if tx.send(Message::binary(frame.clone())).await.is_err() { stats.errors.fetch_add(1, Ordering::Relaxed); break; }
                    stats.screen_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = reader.await;
    })
}

#[tokio::main]
async fn main() {
    let o = opts();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_support-broker"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BROKER_ADMIN_PASSWORD", PASSWORD)
        .env("BROKER_LOG__FILTER", "warn")
        .env("BROKER_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("broker starts");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.trim().to_string();
        }
    };
    let ws_base = base.replace("http://", "ws://");
    let http = reqwest::Client::new();
    let login = |user: &'static str, pw: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: Value = http
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"username": user, "password": pw}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let admin = login("admin", PASSWORD).await;
    let me: Value = http
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = me["user"]["account_id"].as_str().unwrap().to_string();
    let post = |path: String, token: String, body: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/api/v1{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let policy = post(
        format!("/accounts/{account}/policies"),
        admin.clone(),
        json!({"name": "bench", "permissions": ["chat", "view"]}),
    )
    .await;
    let bob = post(format!("/accounts/{account}/users"), admin.clone(), json!({"username": "bench-bob", "first_name": "B", "last_name": "B", "email": "bob@bench.example", "password": PASSWORD})).await;
    let rights =
        json!({"areas": ["sessions"], "objects": {"create": true, "edit": true, "delete": true}});
    http.put(format!(
        "{base}/api/v1/users/{}/rights",
        bob["id"].as_str().unwrap()
    ))
    .bearer_auth(&admin)
    .json(&rights)
    .send()
    .await
    .unwrap();
    let bob = login("bench-bob", PASSWORD).await;

    let (_, rss_before, _) = proc_stat(pid);
    let cpu_before = proc_stat(pid).0;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let chat_every = Duration::from_secs_f64(1.0 / o.chat_per_sec.max(0.001));
    let screen_every = Duration::from_secs_f64(1.0 / o.screens_per_sec.max(0.001));

    println!(
        "ramping up {} sessions ({} connections)...",
        o.sessions,
        o.sessions * 4
    );
    let setup_started = Instant::now();
    let mut guest_welcome_us = Vec::new();
    let mut tasks = Vec::new();
    let mut idle_rss_kib = 0;
    for i in 0..o.sessions {
        let s = post(
            "/sessions".into(),
            admin.clone(),
            json!({"subject": format!("bench {i}")}),
        )
        .await;
        let sid = s["id"].as_str().unwrap().to_string();
        let owner = connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&admin)).await;
        let tech = connect(&format!("{ws_base}/ws/sessions/{sid}"), Some(&bob)).await;
        let inv = post(
            format!("/sessions/{sid}/invitations"),
            admin.clone(),
            json!({"policy_id": policy["id"], "guest_name": "bench guest"}),
        )
        .await;
        let join = inv["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let t0 = Instant::now();
        let guest = connect(&format!("{ws_base}/ws/guest/{join}"), None).await;
        guest_welcome_us.push(t0.elapsed().as_micros() as u64);
        let customer = connect(
            &format!(
                "{ws_base}/ws/customer/{}",
                s["customer_key"].as_str().unwrap()
            ),
            None,
        )
        .await;
        for (ws, screen) in [
            (owner, None),
            (tech, None),
            (guest, None),
            (customer, Some((screen_every, o.screen_bytes))),
        ] {
            tasks.push(drive(
                ws,
                stats.clone(),
                epoch,
                stop.clone(),
                done.clone(),
                chat_every,
                screen,
            ));
        }
        if i == o.sessions - 1 {
            idle_rss_kib = proc_stat(pid).1;
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let connections = o.sessions * 4;
    println!("holding for {} s...", o.secs);
    let hold_started = Instant::now();
    let cpu_hold_start = proc_stat(pid).0;
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    stop.store(true, Ordering::Relaxed);
    let hold_secs = hold_started.elapsed().as_secs_f64();
    let cpu_hold = proc_stat(pid).0 - cpu_hold_start;
    // Let in-flight frames arrive, then stop the readers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let (cpu_after, _, peak_rss) = proc_stat(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().await);
    lat.sort_unstable();
    guest_welcome_us.sort_unstable();
    let chat_sent = stats.chat_sent.load(Ordering::Relaxed);
    let chat_expected = chat_sent * 4;
    let chat_delivered = stats.chat_delivered.load(Ordering::Relaxed);
    let screen_expected = stats.screen_sent.load(Ordering::Relaxed) * 3;
    let screen_delivered = stats.screen_delivered.load(Ordering::Relaxed);
    let result = json!({
        "bench": "load",
        "sessions": o.sessions,
        "connections": connections,
        "hold_secs": hold_secs,
        "connections_per_sec": connections as f64 / setup_secs,
        "guest_redeem_to_welcome_ms": {"p50": percentile(&guest_welcome_us, 0.5), "p99": percentile(&guest_welcome_us, 0.99)},
        "chat_latency_ms": {"p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999)},
        "chat_sent": chat_sent,
        "chat_expected_deliveries": chat_expected,
        "chat_delivered": chat_delivered,
        "chat_deliveries_per_sec": chat_delivered as f64 / hold_secs,
        "screen_frames_expected": screen_expected,
        "screen_frames_delivered": screen_delivered,
        "screen_bytes_per_sec": stats.screen_bytes.load(Ordering::Relaxed) as f64 / hold_secs,
        "broker_cpu_secs_total": cpu_after - cpu_before,
        "broker_cpu_secs_hold": cpu_hold,
        "broker_peak_rss_kib": peak_rss,
        "rss_per_connection_kib": (idle_rss_kib.saturating_sub(rss_before)) as f64 / connections as f64,
        "errors": stats.errors.load(Ordering::Relaxed),
        "disconnects": stats.disconnects.load(Ordering::Relaxed),
    });
    println!("\n{:<34} {:>14}", "metric", "value");
    for (k, v) in result.as_object().unwrap() {
        println!("{:<34} {:>14}", k, v.to_string());
    }
    let out_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = out_dir.join(format!("load-{}s.json", o.sessions));
    std::fs::write(&file, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    println!("\nwritten to {}", file.display());
    if chat_delivered != chat_expected || screen_delivered != screen_expected {
        println!(
            "WARNING: delivered != expected (chat {chat_delivered}/{chat_expected}, screen {screen_delivered}/{screen_expected})"
        );
    }
}
