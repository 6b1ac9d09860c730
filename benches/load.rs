//! Load test: starts the release broker (or the baseline relay) on loopback with a temporary
//! data dir and drives it with real WebSocket clients. S sessions of one customer, two
//! technicians and one guest (joined through a real invitation) exchange chat and screen
//! frames; the run ramps up, holds, stops by itself, prints a table and writes JSON to
//! target/bench-results/. With `--compare` the same load runs against two baseline relays right
//! after: `baseline` on the broker's own stack (actix-ws, benches/baseline/relay.rs) and
//! `tokio-relay` on tokio + tokio-tungstenite with 4 KiB buffers (benches/baseline/tokio_relay.rs);
//! the ratios broker / each baseline are reported.
//!
//! With `--nodes N` the broker runs as a cluster (issue 16, docs/cluster.md) on PostgreSQL
//! (`SB_BENCH_POSTGRES_URL`, a fresh database per run, dropped after) and NATS
//! (`SB_BENCH_NATS_URL`): first as a cluster of one node (`cluster-1`: every delivery local),
//! then as N nodes (`cluster-n`) where session i lives on node i mod N and its four
//! participants sit on the *other* nodes, so every delivery crosses nodes (in through one
//! edge, out through another). Every node is pinned to the same core as the single server
//! is; CPU is summed over the node processes (NATS's and PostgreSQL's own CPU are reported
//! beside). The ratio cluster-n / cluster-1 is the cost of a cross-node delivery.
//!
//! cargo bench --bench load -- [--sessions N] [--secs S] [--chat-per-sec R|max] [--window W]
//!                             [--screen-bytes B] [--screens-per-sec R]
//!                             [--target broker|baseline|tokio-relay]
//!                             [--compare [--rounds K]] [--nodes N [--rounds K]]
//!                             [--no-pin] [--soak]
//!
//! `--rounds K` repeats the broker/baselines triple K times, alternating, and reports each round's
//! ratios and their median, minimum and maximum: on a shared machine one pair varies by ±15%,
//! which hides changes smaller than that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "baseline/relay.rs"]
mod relay;
#[path = "baseline/tokio_relay.rs"]
mod tokio_relay;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "bench-admin-password";

#[derive(Clone)]
struct Opts {
    sessions: usize,
    secs: u64,
    /// Chat messages per second per participant; `None`: as fast as allowed (closed loop).
    chat_per_sec: Option<f64>,
    /// Chats a participant may have in flight in the closed loop.
    window: usize,
    screen_bytes: usize,
    screens_per_sec: f64,
    targets: Vec<Target>,
    /// Broker/baseline pairs to run with `--compare`.
    rounds: usize,
    pin: bool,
    /// Soak: print the server's RSS every minute of the hold.
    soak: bool,
    /// `--nodes N`: the cluster runs' node count.
    nodes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Broker,
    Baseline,
    TokioRelay,
    /// The broker as a cluster of one node (PostgreSQL, NATS).
    ClusterOne,
    /// The broker as `--nodes N` nodes, every delivery crossing nodes.
    ClusterMany,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Broker => "broker",
            Target::Baseline => "baseline",
            Target::TokioRelay => "tokio-relay",
            Target::ClusterOne => "cluster-1",
            Target::ClusterMany => "cluster-n",
        }
    }
}

fn opts(args: &[String]) -> Opts {
    let mut o = Opts {
        sessions: 50,
        secs: 10,
        chat_per_sec: Some(1.0),
        window: 1,
        screen_bytes: 16 * 1024,
        screens_per_sec: 5.0,
        targets: vec![Target::Broker],
        rounds: 1,
        pin: true,
        soak: false,
        nodes: 0,
    };
    let mut i = 1;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_default();
        let mut step = 2;
        match args[i].as_str() {
            "--sessions" => o.sessions = val().parse().expect("--sessions N"),
            "--secs" => o.secs = val().parse().expect("--secs S"),
            "--chat-per-sec" => {
                o.chat_per_sec = match val().as_str() {
                    "max" | "0" => None,
                    v => Some(v.parse().expect("--chat-per-sec R|max")),
                }
            }
            "--window" => o.window = val().parse::<usize>().expect("--window W").max(1),
            "--screen-bytes" => o.screen_bytes = val().parse().expect("--screen-bytes B"),
            "--screens-per-sec" => o.screens_per_sec = val().parse().expect("--screens-per-sec R"),
            "--target" => {
                o.targets = vec![match val().as_str() {
                    "baseline" => Target::Baseline,
                    "tokio-relay" => Target::TokioRelay,
                    _ => Target::Broker,
                }]
            }
            "--compare" => {
                o.targets = vec![Target::Broker, Target::Baseline, Target::TokioRelay];
                step = 1;
            }
            "--nodes" => {
                o.nodes = val().parse::<usize>().expect("--nodes N").max(2);
                o.targets = vec![Target::ClusterMany, Target::ClusterOne];
            }
            "--rounds" => o.rounds = val().parse::<usize>().expect("--rounds K").max(1),
            "--soak" => o.soak = true,
            "--no-pin" => {
                o.pin = false;
                step = 1;
            }
            _ => step = 1,
        }
        i += step;
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

/// Open file descriptors of a process: all of them, and the sockets among them (the database
/// pool opens its files lazily, so only the sockets must come back to the idle figure).
fn fd_count(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    let links: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let sockets = links.iter().filter(|l| l.starts_with("socket:")).count();
    (links.len(), sockets)
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

/// The send time (µs since the run's epoch) and sender of a chat frame, read without a full
/// JSON parse: the text is `"<micros> <connection>"`.
fn chat_stamp(frame: &str) -> Option<(u64, u64)> {
    if !frame.contains(r#""type":"chat""#) {
        return None;
    }
    let start = frame.find(r#""text":""#)? + 8;
    let rest = &frame[start..];
    let text = &rest[..rest.find('"')?];
    let (sent, from) = text.split_once(' ')?;
    Some((sent.parse().ok()?, from.parse().ok()?))
}

/// How one participant sends.
#[derive(Clone, Copy)]
struct Load {
    /// `Some(period)`: one chat per period, the first at a staggered offset; `None`: closed
    /// loop, `window` chats in flight.
    chat_every: Option<Duration>,
    window: usize,
    screen: Option<(Duration, usize)>,
}

/// Runs one participant: sends chat (and screen frames for the customer) until `stop`, reads
/// and counts everything it receives.
fn drive(
    ws: Ws,
    conn: u64,
    stats: Arc<Stats>,
    epoch: Instant,
    stop: CancellationToken,
    done: CancellationToken,
    load: Load,
) -> tokio::task::JoinHandle<()> {
    let (mut tx, mut rx) = ws.split();
    let reader_stats = stats.clone();
    let in_flight = Arc::new(Semaphore::new(load.window));
    let echoes = in_flight.clone();
    let reader = tokio::spawn(async move {
        let mut local = Vec::new();
        loop {
            // No timer per read: the reader waits for a frame or for the end of the run.
            let next = tokio::select! {
                biased;
                msg = rx.next() => msg,
                _ = done.cancelled() => break,
            };
            match next {
                Some(Ok(Message::Text(t))) => {
                    if let Some((sent, from)) = chat_stamp(&t) {
                        reader_stats.chat_delivered.fetch_add(1, Ordering::Relaxed);
                        local.push((epoch.elapsed().as_micros() as u64).saturating_sub(sent));
                        if from == conn {
                            echoes.add_permits(1);
                        }
                    } else if t.contains(r#""type":"error""#) {
                        reader_stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    reader_stats
                        .screen_delivered
                        .fetch_add(1, Ordering::Relaxed);
                    reader_stats
                        .screen_bytes
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    reader_stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
        reader_stats.latencies_us.lock().await.extend(local);
    });
    tokio::spawn(async move {
        // Staggered starts, so that paced senders do not all fire in the same instant.
        let stagger = |period: Duration| {
            let frac = (conn as f64 * 0.618_033_988_75).fract();
            tokio::time::Instant::now() + period.mul_f64(frac)
        };
        let period = load.chat_every.unwrap_or(Duration::from_secs(3600));
        let mut chat_tick = tokio::time::interval_at(stagger(period), period);
        let screen_period = load.screen.map_or(Duration::from_secs(3600), |s| s.0);
        let mut screen_tick = tokio::time::interval_at(stagger(screen_period), screen_period);
        let frame: Vec<u8> = load.screen.map_or(Vec::new(), |(_, n)| {
            std::iter::once(1u8)
                .chain(std::iter::repeat_n(7u8, n.saturating_sub(1)))
                .collect()
        });
        let chat = |epoch: Instant| {
            let text = format!("{} {conn}", epoch.elapsed().as_micros() as u64);
            Message::text(format!(r#"{{"type":"chat","text":"{text}"}}"#))
        };
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = chat_tick.tick(), if load.chat_every.is_some() => {
                    if tx.send(chat(epoch)).await.is_err() { stats.errors.fetch_add(1, Ordering::Relaxed); break; }
                    stats.chat_sent.fetch_add(1, Ordering::Relaxed);
                }
                permit = in_flight.acquire(), if load.chat_every.is_none() => {
                    if let Ok(p) = permit { p.forget(); }
                    if tx.send(chat(epoch)).await.is_err() { stats.errors.fetch_add(1, Ordering::Relaxed); break; }
                    stats.chat_sent.fetch_add(1, Ordering::Relaxed);
                }
                _ = screen_tick.tick(), if load.screen.is_some() => {
                    if tx.send(Message::binary(frame.clone())).await.is_err() { stats.errors.fetch_add(1, Ordering::Relaxed); break; }
                    stats.screen_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = reader.await;
    })
}

/// Pins a process to one core with taskset (no-op when taskset is missing).
fn pin(pid: u32, core: usize) {
    let _ = Command::new("taskset")
        .args(["-cp", &core.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status();
}

/// The broker's `serve` with the load test's settings.
fn broker_command(data_dir: &std::path::Path, pinned: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_support-broker"));
    c.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("BROKER_ADMIN_PASSWORD", PASSWORD)
        .env("BROKER_LOG__FILTER", "warn")
        .env("BROKER_AUTH__LOGIN_ATTEMPTS_PER_MINUTE", "100000")
        // The load generator chats and streams far beyond one person's pace per
        // connection: the per-connection traffic limits are raised by config here
        // (docs/performance.md), so the relay itself is measured.
        .env("BROKER_WS__CHAT_PER_SEC", "1000000")
        .env("BROKER_WS__BINARY_BYTES_PER_SEC", "1000000000000")
        // One account runs every session of the run (up to 10,000).
        .env("BROKER_SESSIONS__MAX_LIVE_PER_ACCOUNT", "1000000");
    if pinned {
        // One core: one HTTP worker.
        c.env("BROKER_HTTP__WORKERS", "1");
    }
    c
}

/// Spawns `cmd`, pins it, and waits for the "listening on" line: (process, base URL).
fn spawn_listening(mut cmd: Command, pinned: bool) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    if pinned {
        pin(child.id(), 1);
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.trim().to_string();
        }
    };
    (child, base)
}

/// Starts the server under test and answers it with its base URL.
fn start_server(target: Target, data_dir: &std::path::Path, pinned: bool) -> (Child, String) {
    let cmd = match target {
        Target::Broker | Target::ClusterOne | Target::ClusterMany => {
            broker_command(data_dir, pinned)
        }
        Target::Baseline | Target::TokioRelay => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args([
                if target == Target::Baseline {
                    "--serve-baseline"
                } else {
                    "--serve-tokio-relay"
                },
                "127.0.0.1:0",
                "--workers",
                if pinned { "1" } else { "2" },
            ]);
            c
        }
    };
    spawn_listening(cmd, pinned)
}

/// A PostgreSQL database of its own for one cluster run, dropped afterwards.
struct BenchDatabase {
    server: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create() -> Self {
        let server = std::env::var("SB_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!(
            "sb_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("PostgreSQL reachable (SB_BENCH_POSTGRES_URL)");
        // The name is made here (letters, digits, underscore), never taken from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("bench database created");
        admin.close().await;
        let (head, _) = server
            .rsplit_once('/')
            .expect("a postgres:// URL with a database");
        let url = format!("{head}/{name}");
        Self { server, name, url }
    }

    async fn drop_it(self) {
        // The run's chat journal stream first (each installation has its own): a bench run
        // leaves nothing behind in the shared NATS.
        if let Ok(db) = sqlx::PgPool::connect(&self.url).await {
            let prefix: Option<String> =
                sqlx::query_scalar("SELECT nats_prefix FROM installation WHERE id = 1")
                    .fetch_optional(&db)
                    .await
                    .ok()
                    .flatten();
            db.close().await;
            let nats = std::env::var("SB_BENCH_NATS_URL")
                .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
            if let (Some(prefix), Ok(client)) = (prefix, async_nats::connect(&nats).await) {
                let _ = async_nats::jetstream::new(client)
                    .delete_stream(support_broker::chat_journal::stream_name(&prefix))
                    .await;
            }
        }
        if let Ok(admin) = sqlx::PgPool::connect(&self.server).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

/// `n` broker nodes on one database and one NATS, each with its own data dir holding the
/// first node's `secret.key`; answered once every node says it is ready.
async fn start_nodes(
    n: usize,
    root: &std::path::Path,
    pinned: bool,
    database: &str,
) -> Vec<(Child, String)> {
    let nats =
        std::env::var("SB_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut nodes = Vec::new();
    for i in 0..n {
        let dir = root.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        if i > 0 {
            std::fs::copy(root.join("node0/secret.key"), dir.join("secret.key"))
                .expect("the first node's secret.key");
        }
        let mut cmd = broker_command(&dir, pinned);
        cmd.env("BROKER_DATABASE__URL", database)
            .env("BROKER_CLUSTER__NATS_URL", &nats)
            .env("BROKER_CLUSTER__NODE_ID", format!("bench-{run}-{i}"));
        let (child, base) = spawn_listening(cmd, pinned);
        let http = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(res) = http.get(format!("{base}/readyz")).send().await
                && res.status() == 200
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "node {i} ready (NATS reachable: SB_BENCH_NATS_URL)");
        nodes.push((child, base));
    }
    nodes
}

/// PIDs of the services a cluster leans on (NATS, PostgreSQL), for their CPU.
fn service_pids(name: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-x", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| proc_stat(*p).0).sum()
}

fn rss_of(pids: &[u32]) -> (u64, u64) {
    pids.iter().fold((0, 0), |(r, h), p| {
        let (_, rss, hwm) = proc_stat(*p);
        (r + rss, h + hwm)
    })
}

fn fds_of(pids: &[u32]) -> (usize, usize) {
    pids.iter().fold((0, 0), |(a, b), p| {
        let (x, y) = fd_count(*p);
        (a + x, b + y)
    })
}

/// What the broker needs to set up sessions: tokens, a policy.
struct BrokerSetup {
    http: reqwest::Client,
    admin: String,
    bob: String,
    policy: String,
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Value {
    let mut req = http.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

impl BrokerSetup {
    async fn new(base: &str) -> Self {
        let http = reqwest::Client::new();
        let post = reqwest::Method::POST;
        let login = |user: &str| {
            api(
                &http,
                post.clone(),
                format!("{base}/api/v1/auth/login"),
                None,
                json!({"username": user, "password": PASSWORD}),
            )
        };
        let admin = login("admin").await["token"].as_str().unwrap().to_string();
        let me = api(
            &http,
            reqwest::Method::GET,
            format!("{base}/api/v1/me"),
            Some(&admin),
            Value::Null,
        )
        .await;
        let account = me["user"]["account_id"].as_str().unwrap().to_string();
        let policy = api(
            &http,
            post.clone(),
            format!("{base}/api/v1/accounts/{account}/policies"),
            Some(&admin),
            json!({"name": "bench", "permissions": ["chat", "view"]}),
        )
        .await;
        let bob = api(&http, post.clone(), format!("{base}/api/v1/accounts/{account}/users"), Some(&admin),
            json!({"username": "bench-bob", "first_name": "B", "last_name": "B", "email": "bob@bench.example", "password": PASSWORD})).await;
        api(&http, reqwest::Method::PUT, format!("{base}/api/v1/users/{}/rights", bob["id"].as_str().unwrap()), Some(&admin),
            json!({"areas": ["sessions"], "objects": {"create": true, "edit": true, "delete": true}})).await;
        let bob = login("bench-bob").await["token"]
            .as_str()
            .unwrap()
            .to_string();
        Self {
            http: http.clone(),
            admin,
            bob,
            policy: policy["id"].as_str().unwrap().to_string(),
        }
    }

    /// A session with its four participants joined: (owner, tech, guest, customer) and the
    /// time from guest redemption to its welcome. With several nodes (`bases`), session i
    /// is made on node i mod N and its participants connect to the other nodes in turn.
    async fn session(&self, i: usize, bases: &[String]) -> ([Ws; 4], u64) {
        let n = bases.len();
        let home = &bases[i % n];
        let at = |k: usize| {
            let node = if n > 1 { (i + 1 + k % (n - 1)) % n } else { 0 };
            bases[node].replace("http://", "ws://")
        };
        let post = reqwest::Method::POST;
        let s = api(
            &self.http,
            post.clone(),
            format!("{home}/api/v1/sessions"),
            Some(&self.admin),
            json!({"subject": format!("bench {i}")}),
        )
        .await;
        let sid = s["id"].as_str().unwrap().to_string();
        let owner = connect(&format!("{}/ws/sessions/{sid}", at(0)), Some(&self.admin)).await;
        let tech = connect(&format!("{}/ws/sessions/{sid}", at(1)), Some(&self.bob)).await;
        let inv = api(
            &self.http,
            post,
            format!("{home}/api/v1/sessions/{sid}/invitations"),
            Some(&self.admin),
            json!({"policy_id": self.policy, "guest_name": "bench guest"}),
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
        let guest = connect(&format!("{}/ws/guest/{join}", at(2)), None).await;
        let welcome = t0.elapsed().as_micros() as u64;
        let customer = connect(
            &format!(
                "{}/ws/customer/{}",
                at(3),
                s["customer_key"].as_str().unwrap()
            ),
            None,
        )
        .await;
        ([owner, tech, guest, customer], welcome)
    }
}

/// One run against one target; answers its figures.
async fn run(o: &Opts, target: Target) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let database = match target {
        Target::ClusterOne | Target::ClusterMany => Some(BenchDatabase::create().await),
        _ => None,
    };
    let mut servers = match (target, &database) {
        (Target::ClusterOne, Some(db)) => start_nodes(1, dir.path(), o.pin, &db.url).await,
        (Target::ClusterMany, Some(db)) => start_nodes(o.nodes, dir.path(), o.pin, &db.url).await,
        _ => vec![start_server(target, dir.path(), o.pin)],
    };
    let pids: Vec<u32> = servers.iter().map(|(c, _)| c.id()).collect();
    let bases: Vec<String> = servers.iter().map(|(_, b)| b.clone()).collect();
    let base = bases[0].clone();
    let clustered = database.is_some();
    let nats_pids = if clustered {
        service_pids("nats-server")
    } else {
        Vec::new()
    };
    let postgres_pids = if clustered {
        service_pids("postgres")
    } else {
        Vec::new()
    };
    let broker = match target {
        Target::Broker | Target::ClusterOne | Target::ClusterMany => {
            Some(BrokerSetup::new(&base).await)
        }
        Target::Baseline | Target::TokioRelay => None,
    };
    let ws_base = base.replace("http://", "ws://");
    let fds_idle = fds_of(&pids);
    let (rss_before, _) = rss_of(&pids);
    let cpu_before = cpu_of(&pids);
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    let done = CancellationToken::new();
    let epoch = Instant::now();
    let load = |screen: bool| Load {
        chat_every: o
            .chat_per_sec
            .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001))),
        window: o.window,
        screen: (screen && o.screens_per_sec > 0.0).then(|| {
            (
                Duration::from_secs_f64(1.0 / o.screens_per_sec),
                o.screen_bytes,
            )
        }),
    };

    println!(
        "[{}] ramping up {} sessions ({} connections)...",
        target.name(),
        o.sessions,
        o.sessions * 4
    );
    let setup_started = Instant::now();
    let mut guest_welcome_us = Vec::new();
    let mut joined = Vec::new();
    for i in 0..o.sessions {
        let (conns, welcome) = match &broker {
            Some(b) => b.session(i, &bases).await,
            None => {
                let url = format!("{ws_base}/room/{i}");
                let owner = connect(&url, None).await;
                let tech = connect(&url, None).await;
                let t0 = Instant::now();
                let guest = connect(&url, None).await;
                let welcome = t0.elapsed().as_micros() as u64;
                ([owner, tech, guest, connect(&url, None).await], welcome)
            }
        };
        guest_welcome_us.push(welcome);
        joined.push(conns);
        if (i + 1) % 500 == 0 {
            println!("  {} sessions up", i + 1);
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    // Idle: everyone connected, nothing sent yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = rss_of(&pids).0;
    let mut tasks = Vec::new();
    for (i, conns) in joined.into_iter().enumerate() {
        for (k, ws) in conns.into_iter().enumerate() {
            tasks.push(drive(
                ws,
                (i * 4 + k) as u64,
                stats.clone(),
                epoch,
                stop.clone(),
                done.clone(),
                load(k == 3),
            ));
        }
    }
    let connections = o.sessions * 4;
    println!("[{}] holding for {} s...", target.name(), o.secs);
    let hold_started = Instant::now();
    let cpu_hold_start = cpu_of(&pids);
    let nats_hold_start = cpu_of(&nats_pids);
    let postgres_hold_start = cpu_of(&postgres_pids);
    let delivered_at_start = stats.chat_delivered.load(Ordering::Relaxed);
    // The hold, with the server's RSS at the end of every minute (and of the hold).
    let mut rss_by_minute: Vec<u64> = Vec::new();
    let hold_end = Instant::now() + Duration::from_secs(o.secs);
    while Instant::now() < hold_end {
        let step = (hold_end - Instant::now()).min(Duration::from_secs(60));
        tokio::time::sleep(step).await;
        rss_by_minute.push(rss_of(&pids).0);
        if o.soak {
            println!(
                "  minute {}: rss {} KiB, errors {}, disconnects {}",
                rss_by_minute.len(),
                rss_by_minute.last().unwrap_or(&0),
                stats.errors.load(Ordering::Relaxed),
                stats.disconnects.load(Ordering::Relaxed)
            );
        }
    }
    let hold_secs = hold_started.elapsed().as_secs_f64();
    let cpu_hold = cpu_of(&pids) - cpu_hold_start;
    let nats_hold = cpu_of(&nats_pids) - nats_hold_start;
    let postgres_hold = cpu_of(&postgres_pids) - postgres_hold_start;
    let delivered_in_hold = stats.chat_delivered.load(Ordering::Relaxed) - delivered_at_start;
    stop.cancel();
    // Let in-flight frames arrive, then stop the readers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let cpu_after = cpu_of(&pids);
    let (_, peak_rss) = rss_of(&pids);
    // Every client socket is closed now: the server's descriptors must be back to idle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fds_after_close = fds_of(&pids);
    // RSS growth from the end of minute 2 to the end of the hold (the soak's leak check).
    let rss_growth_pct = match (rss_by_minute.get(1), rss_by_minute.last()) {
        (Some(&m2), Some(&last)) if m2 > 0 && rss_by_minute.len() > 2 => {
            (last as f64 - m2 as f64) / m2 as f64 * 100.0
        }
        _ => 0.0,
    };
    for (child, _) in servers.iter_mut() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for (child, _) in servers.iter_mut() {
        let _ = child.wait();
    }
    if let Some(db) = database {
        db.drop_it().await;
    }

    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().await);
    lat.sort_unstable();
    guest_welcome_us.sort_unstable();
    let chat_sent = stats.chat_sent.load(Ordering::Relaxed);
    let chat_expected = chat_sent * 4;
    let chat_delivered = stats.chat_delivered.load(Ordering::Relaxed);
    let screen_expected = stats.screen_sent.load(Ordering::Relaxed) * 3;
    let screen_delivered = stats.screen_delivered.load(Ordering::Relaxed);
    let per_sec = delivered_in_hold as f64 / hold_secs;
    let per_delivery = |cpu: f64| {
        if delivered_in_hold > 0 {
            cpu * 1e6 / delivered_in_hold as f64
        } else {
            0.0
        }
    };
    json!({
        "target": target.name(),
        "sessions": o.sessions,
        "connections": connections,
        "pinned": o.pin,
        "chat_mode": o.chat_per_sec.map_or(format!("max, window {}", o.window), |r| format!("{r}/s per participant")),
        "hold_secs": hold_secs,
        "connections_per_sec": connections as f64 / setup_secs,
        "guest_redeem_to_welcome_ms": {"p50": percentile(&guest_welcome_us, 0.5), "p99": percentile(&guest_welcome_us, 0.99)},
        "chat_latency_ms": {"p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "p999": percentile(&lat, 0.999)},
        "chat_sent": chat_sent,
        "chat_expected_deliveries": chat_expected,
        "chat_delivered": chat_delivered,
        "chat_lost": chat_expected.saturating_sub(chat_delivered),
        "chat_deliveries_per_sec": per_sec,
        "screen_frames_expected": screen_expected,
        "screen_frames_delivered": screen_delivered,
        "screen_bytes_per_sec": stats.screen_bytes.load(Ordering::Relaxed) as f64 / hold_secs,
        "server_cpu_secs_total": cpu_after - cpu_before,
        "server_cpu_secs_hold": cpu_hold,
        "server_cpu_us_per_delivery": per_delivery(cpu_hold),
        "nodes": pids.len(),
        "nats_cpu_us_per_delivery": per_delivery(nats_hold),
        "postgres_cpu_us_per_delivery": per_delivery(postgres_hold),
        "server_peak_rss_kib": peak_rss,
        "rss_by_minute_kib": rss_by_minute,
        "rss_growth_minute2_to_end_pct": rss_growth_pct,
        "fds_idle": fds_idle.0,
        "fds_after_close": fds_after_close.0,
        "socket_fds_idle": fds_idle.1,
        "socket_fds_after_close": fds_after_close.1,
        "rss_per_idle_connection_kib": (idle_rss_kib.saturating_sub(rss_before)) as f64 / connections as f64,
        "errors": stats.errors.load(Ordering::Relaxed),
        "disconnects": stats.disconnects.load(Ordering::Relaxed),
    })
}

fn print_table(results: &[Value]) {
    let mut header = format!("\n{:<34}", "metric");
    for r in results {
        header.push_str(&format!(" {:>22}", r["target"].as_str().unwrap_or("")));
    }
    println!("{header}");
    if let Some(first) = results.first().and_then(|r| r.as_object()) {
        for key in first.keys() {
            let mut line = format!("{key:<34}");
            for r in results {
                let v = &r[key];
                let shown = match v.as_f64() {
                    Some(f) if v.is_f64() => format!("{f:.2}"),
                    _ => v.to_string(),
                };
                line.push_str(&format!(" {shown:>22}"));
            }
            println!("{line}");
        }
    }
}

const RATIO_KEYS: [&str; 5] = [
    "deliveries_per_sec",
    "cpu_us_per_delivery",
    "chat_latency_p50",
    "chat_latency_p99",
    "rss_per_idle_connection",
];

/// broker / baseline for throughput, CPU, latency and memory.
fn ratios_of(broker: &Value, baseline: &Value) -> Value {
    let ratio = |a: &Value, b: &Value| {
        let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
        if b > 0.0 { a / b } else { 0.0 }
    };
    let field = |key: &str| ratio(&broker[key], &baseline[key]);
    let lat = |q: &str| {
        ratio(
            &broker["chat_latency_ms"][q],
            &baseline["chat_latency_ms"][q],
        )
    };
    json!({
        "deliveries_per_sec": field("chat_deliveries_per_sec"),
        "cpu_us_per_delivery": field("server_cpu_us_per_delivery"),
        "chat_latency_p50": lat("p50"),
        "chat_latency_p99": lat("p99"),
        "rss_per_idle_connection": field("rss_per_idle_connection_kib"),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args
        .iter()
        .position(|a| a == "--serve-baseline" || a == "--serve-tokio-relay")
    {
        let bind = args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:0".into());
        let workers = args
            .iter()
            .position(|a| a == "--workers")
            .and_then(|w| args.get(w + 1))
            .and_then(|w| w.parse().ok())
            .unwrap_or(1);
        if args[i] == "--serve-tokio-relay" {
            tokio_relay::serve(&bind, workers).expect("tokio relay runs");
        } else {
            relay::serve(&bind, workers).expect("baseline relay runs");
        }
        return;
    }
    let mut o = opts(&args);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    o.pin = o.pin && cores >= 2 && Command::new("taskset").arg("-V").output().is_ok();
    if o.pin {
        // The generator on core 0, the server on core 1: every figure is one server core.
        pin(std::process::id(), 0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if o.pin { 1 } else { 2 })
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let rounds = if o.targets.len() > 1 { o.rounds } else { 1 };
        // Per baseline (actix-ws relay, tokio relay): each round's ratios broker / baseline.
        let mut all_ratios: Vec<(&str, Vec<Value>)> = Vec::new();
        let mut results = Vec::new();
        for round in 1..=rounds {
            if rounds > 1 {
                println!("\n=== round {round} of {rounds} ===");
            }
            results.clear();
            for target in o.targets.clone() {
                results.push(run(&o, target).await);
            }
            print_table(&results);
            if let [broker, baselines @ ..] = &results[..]
                && matches!(o.targets[0], Target::Broker | Target::ClusterMany)
            {
                for (baseline, target) in baselines.iter().zip(&o.targets[1..]) {
                    let ratios = ratios_of(broker, baseline);
                    println!(
                        "\n{} / {}: {}",
                        o.targets[0].name(),
                        target.name(),
                        serde_json::to_string_pretty(&ratios).unwrap()
                    );
                    let entry = json!({"broker": broker, "baseline": baseline, "ratios": ratios});
                    match all_ratios.iter_mut().find(|(n, _)| *n == target.name()) {
                        Some((_, list)) => list.push(entry),
                        None => all_ratios.push((target.name(), vec![entry])),
                    }
                }
            }
        }
        let mut out = json!({"runs": results});
        for (name, list) in &all_ratios {
            let key = format!(
                "{}_over_{}",
                o.targets[0].name().replace('-', "_"),
                name.replace('-', "_")
            );
            out[&key] = list
                .last()
                .map(|l| l["ratios"].clone())
                .unwrap_or(Value::Null);
            if list.len() > 1 {
                let mut summary = serde_json::Map::new();
                for ratio in RATIO_KEYS {
                    let mut values: Vec<f64> = list
                        .iter()
                        .filter_map(|r| r["ratios"][ratio].as_f64())
                        .collect();
                    values.sort_by(f64::total_cmp);
                    summary.insert(
                        ratio.to_string(),
                        json!({
                            "median": values[values.len() / 2],
                            "min": values[0],
                            "max": values[values.len() - 1],
                        }),
                    );
                }
                let summary = Value::Object(summary);
                println!(
                    "\n{} / {name} over {} rounds: {}",
                    o.targets[0].name(),
                    list.len(),
                    serde_json::to_string_pretty(&summary).unwrap()
                );
                out[&key] = summary;
                out[&format!("rounds_{}", name.replace('-', "_"))] = Value::Array(list.clone());
            }
        }
        let out_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
        std::fs::create_dir_all(&out_dir).unwrap();
        let mode = o
            .chat_per_sec
            .map_or("max".to_string(), |r| format!("{r}ps"));
        let names: Vec<&str> = o.targets.iter().map(|t| t.name()).collect();
        let file = out_dir.join(format!(
            "load-{}s-{mode}-{}.json",
            o.sessions,
            names.join("-")
        ));
        std::fs::write(&file, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        println!("\nwritten to {}", file.display());
        for r in &results {
            if r["chat_lost"].as_u64() != Some(0)
                || r["screen_frames_expected"] != r["screen_frames_delivered"]
            {
                println!("WARNING [{}]: delivered != expected", r["target"]);
            }
        }
    });
}
