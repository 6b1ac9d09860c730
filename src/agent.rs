//! The reference device agent: how a person tries the broker end to end, and what the tests and
//! load tests drive. It enrolls with a code (or loads a saved identity), holds `/ws/device`
//! with reconnect and backoff, answers commands against a small local device state, sends
//! telemetry, and joins support sessions as the customer when the broker asks.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::{
    self, Message, client::IntoClientRequest, protocol::frame::coding::CloseCode,
};
use tokio_util::sync::CancellationToken;

use crate::domain::{device::Platform, session::close_code};

/// What a first start needs to enroll.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub code: String,
    pub serial: String,
    pub platform: Platform,
    pub model: String,
    pub name: String,
    pub os_version: String,
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The broker's base URL, such as `http://127.0.0.1:8080`.
    pub server: String,
    /// Where the identity (device id and secret) is kept between runs.
    pub identity_file: PathBuf,
    /// Enroll (again) with this code; without it a saved identity is used.
    pub enroll: Option<Enrollment>,
    /// The position `locate` answers and telemetry reports.
    pub position: (f64, f64),
    pub battery: u8,
    pub telemetry_every: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
}

/// The saved identity of an enrolled agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub server: String,
    pub device_id: uuid::Uuid,
    pub device_secret: String,
    pub serial: String,
    pub platform: Platform,
    pub name: String,
}

/// The device's local state, as the commands change it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    pub enrolled: bool,
    pub connected: bool,
    pub lost_mode: bool,
    /// Lost mode's message and phone number, as the lock screen shows them.
    pub lost_message: Option<String>,
    pub lost_phone: Option<String>,
    pub locked: bool,
    pub passcode_resets: u32,
    pub wiped: bool,
    /// Commands answered, in order: (command id, action).
    pub answered: Vec<(uuid::Uuid, String)>,
    /// Sessions joined as the customer.
    pub sessions: Vec<uuid::Uuid>,
    /// How many times the agent connected.
    pub connections: u32,
    /// Remote-control input received in sessions, as read (`pointer_move 100,200`, `key_down
    /// Enter`), newest last; at most the last 1000.
    pub inputs: Vec<String>,
    /// Screen frames sent in sessions.
    pub screens_sent: u32,
}

/// Shared view of the agent's state (the tests watch it).
pub type SharedState = Arc<Mutex<DeviceState>>;

/// Why the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// Wiped: identity forgotten, runs again only with a new enrollment code.
    Wiped,
    /// Another connection with the same secret took over, or the device was deleted.
    Replaced,
    Revoked,
}

fn with_state<T>(state: &SharedState, f: impl FnOnce(&mut DeviceState) -> T) -> T {
    match state.lock() {
        Ok(mut guard) => f(&mut guard),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// The broker's WebSocket base for an http(s) base URL.
fn ws_base(server: &str) -> String {
    let server = server.trim_end_matches('/');
    if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        server.to_string()
    }
}

/// Enrolls with a code and saves the identity (readable by the owner only).
pub async fn enroll(server: &str, e: &Enrollment, file: &Path) -> anyhow::Result<Identity> {
    let url = format!("{}/api/v1/enroll", server.trim_end_matches('/'));
    let res = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({
            "code": e.code,
            "serial": e.serial,
            "platform": e.platform,
            "model": e.model,
            "name": e.name,
            "os_version": e.os_version,
        }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "enrollment refused ({status}): {}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let identity = Identity {
        server: server.to_string(),
        device_id: serde_json::from_value(body["device_id"].clone())
            .context("the broker's answer lacks device_id")?,
        device_secret: body["device_secret"]
            .as_str()
            .context("the broker's answer lacks device_secret")?
            .to_string(),
        serial: e.serial.clone(),
        platform: e.platform,
        name: e.name.clone(),
    };
    save_identity(file, &identity)?;
    tracing::info!(device = %identity.device_id, serial = %identity.serial, "enrolled");
    Ok(identity)
}

fn save_identity(file: &Path, identity: &Identity) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(identity)?;
    let tmp = file.with_extension("tmp");
    // 0600 from the first byte: the file holds the device secret.
    crate::private_fs::write_private(&tmp, text.as_bytes())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

pub fn load_identity(file: &Path) -> anyhow::Result<Identity> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "no identity at {}: enroll first with --enroll CODE",
            file.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an identity", file.display()))
}

/// Runs the agent until it is stopped, wiped, replaced or revoked.
pub async fn run(
    opts: AgentOptions,
    state: SharedState,
    stop: CancellationToken,
) -> anyhow::Result<Exit> {
    let identity = match &opts.enroll {
        Some(e) => enroll(&opts.server, e, &opts.identity_file).await?,
        None => load_identity(&opts.identity_file)?,
    };
    with_state(&state, |s| {
        s.enrolled = true;
        s.wiped = false;
    });
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return Ok(Exit::Stopped),
            outcome = connect_once(&opts, &identity, &state, &stop) => outcome,
        };
        with_state(&state, |s| s.connected = false);
        match outcome {
            Ok(Some(exit)) => {
                if exit == Exit::Wiped {
                    let _ = std::fs::remove_file(&opts.identity_file);
                    with_state(&state, |s| {
                        *s = DeviceState {
                            wiped: true,
                            answered: std::mem::take(&mut s.answered),
                            ..DeviceState::default()
                        }
                    });
                }
                tracing::info!(?exit, "agent stops");
                return Ok(exit);
            }
            Ok(None) => backoff = Duration::from_millis(500),
            Err(err) => {
                if let Some(tungstenite::Error::Http(res)) =
                    err.downcast_ref::<tungstenite::Error>()
                    && res.status() == 401
                {
                    bail!("the broker refused the device secret: enroll again with --enroll CODE");
                }
                tracing::warn!(error = %err, "connection failed");
            }
        }
        // Exponential backoff with jitter, so a broker restart is not met by a stampede.
        let mut jitter = [0u8; 2];
        let _ = getrandom::fill(&mut jitter);
        let wait = backoff + backoff.mul_f64(f64::from(u16::from_le_bytes(jitter)) / 65535.0 / 2.0);
        tracing::info!(wait_ms = wait.as_millis() as u64, "reconnecting");
        tokio::select! {
            _ = stop.cancelled() => return Ok(Exit::Stopped),
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(opts.max_backoff);
    }
}

/// One connection: `Ok(None)` when it dropped and should be retried.
async fn connect_once(
    opts: &AgentOptions,
    identity: &Identity,
    state: &SharedState,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Exit>> {
    let mut request = format!("{}/ws/device", ws_base(&opts.server)).into_client_request()?;
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", identity.device_secret).parse()?,
    );
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    tracing::info!(device = %identity.device_id, "connected");
    with_state(state, |s| {
        s.connected = true;
        s.connections += 1;
    });
    let (mut tx, mut rx) = ws.split();
    let mut telemetry = tokio::time::interval(opts.telemetry_every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tx.send(Message::Close(None)).await;
                return Ok(Some(Exit::Stopped));
            }
            _ = telemetry.tick() => {
                let frame = serde_json::json!({
                    "type": "telemetry",
                    "battery": opts.battery,
                    "location": {"lat": opts.position.0, "lon": opts.position.1, "accuracy_m": 10.0},
                });
                tx.send(Message::text(frame.to_string())).await?;
            }
            msg = rx.next() => {
                let Some(msg) = msg else { return Ok(None) };
                match msg? {
                    Message::Text(text) => {
                        let frame: serde_json::Value = match serde_json::from_str(&text) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        match frame["type"].as_str() {
                            Some("command") => {
                                let (ack, wiped) = answer(&frame, opts, state);
                                tx.send(Message::text(ack.to_string())).await?;
                                if wiped {
                                    // The broker records the wipe and then closes (4003). Hanging
                                    // up first could reset the connection and lose the ack.
                                    let drained = tokio::time::timeout(Duration::from_secs(5), async {
                                        while let Some(Ok(msg)) = rx.next().await {
                                            if matches!(msg, Message::Close(_)) {
                                                break;
                                            }
                                        }
                                    })
                                    .await;
                                    if drained.is_err() {
                                        tracing::warn!("the broker did not close after the wipe");
                                    }
                                    let _ = tx.close().await;
                                    return Ok(Some(Exit::Wiped));
                                }
                            }
                            Some("session_request") => {
                                if let Some(key) = frame["customer_key"].as_str() {
                                    let session = frame["session_id"].as_str().and_then(|s| s.parse().ok());
                                    if let Some(id) = session {
                                        with_state(state, |s| s.sessions.push(id));
                                    }
                                    tokio::spawn(join_session(
                                        ws_base(&opts.server),
                                        key.to_string(),
                                        identity.name.clone(),
                                        state.clone(),
                                        stop.clone(),
                                    ));
                                }
                            }
                            Some("error") => tracing::warn!(frame = %text, "the broker refused a frame"),
                            _ => tracing::debug!(frame = %text, "ignored frame"),
                        }
                    }
                    Message::Close(frame) => {
                        let code = frame.map(|f| u16::from(f.code));
                        tracing::info!(?code, "the broker closed the connection");
                        return Ok(match code {
                            Some(close_code::REPLACED) => Some(Exit::Replaced),
                            Some(close_code::ACCESS_REVOKED) => Some(Exit::Revoked),
                            _ => None,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Carries out one command on the local state; answers the ack and whether it was a wipe.
fn answer(
    frame: &serde_json::Value,
    opts: &AgentOptions,
    state: &SharedState,
) -> (serde_json::Value, bool) {
    let id = frame["id"].clone();
    let action = frame["action"].as_str().unwrap_or_default().to_string();
    let mut result = serde_json::Value::Null;
    let mut status = "done";
    let mut wiped = false;
    with_state(state, |s| {
        match action.as_str() {
            "lost_mode_on" => {
                s.lost_mode = true;
                // What the lock screen shows to whoever finds the device.
                s.lost_message = frame["params"]["message"].as_str().map(str::to_string);
                s.lost_phone = frame["params"]["phone"].as_str().map(str::to_string);
            }
            "lost_mode_off" => {
                s.lost_mode = false;
                s.lost_message = None;
                s.lost_phone = None;
            }
            "lock" => s.locked = true,
            "reset_passcode" => {
                s.passcode_resets += 1;
                s.locked = false;
            }
            "locate" => {
                result = serde_json::json!({
                    "lat": opts.position.0,
                    "lon": opts.position.1,
                    "accuracy_m": 10.0,
                })
            }
            "wipe" => wiped = true,
            _ => status = "failed",
        }
        if let Ok(uuid) = serde_json::from_value(id.clone()) {
            s.answered.push((uuid, action.clone()));
        }
    });
    tracing::info!(command = %id, action = %action, status, "command answered");
    let mut ack = serde_json::json!({"type": "ack", "command_id": id, "status": status});
    if !result.is_null() {
        ack["result"] = result;
    }
    (ack, wiped)
}

/// Joins a session as its customer and stays until the session ends: reads the technicians'
/// remote-control input (channel 2), applies it to a simulated screen (a pointer, a line of
/// typed text) and shares that screen as an SVG image on channel 1, once a second and after
/// each input.
async fn join_session(
    ws_base: String,
    key: String,
    name: String,
    state: SharedState,
    stop: CancellationToken,
) {
    let url = format!("{ws_base}/ws/customer/{key}");
    let (mut ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(error = %err, "could not join the session");
            return;
        }
    };
    tracing::info!("joined a support session as the customer");
    let hello = serde_json::json!({"type": "chat", "text": format!("{name} is connected.")});
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let mut screen = Screen::new(name);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: CloseCode::Away,
                    reason: "agent stopping".into(),
                })).await;
                return;
            }
            _ = tick.tick() => {
                if ws.send(Message::binary(screen.frame())).await.is_err() {
                    return;
                }
                with_state(&state, |s| s.screens_sent += 1);
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Binary(data))) if data.first() == Some(&2) => {
                    match crate::domain::input::decode(&data[1..]) {
                        Ok(event) => {
                            let said = screen.apply(&event);
                            tracing::info!(input = %said, "remote input");
                            with_state(&state, |s| {
                                if s.inputs.len() >= 1000 {
                                    s.inputs.remove(0);
                                }
                                s.inputs.push(said);
                            });
                            if ws.send(Message::binary(screen.frame())).await.is_err() {
                                return;
                            }
                            with_state(&state, |s| s.screens_sent += 1);
                        }
                        Err(err) => tracing::warn!(?err, "unreadable input frame"),
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The agent's simulated screen: where the pointer is, what was typed, what happened last.
struct Screen {
    name: String,
    pointer: (u16, u16),
    typed: String,
    last: String,
}

impl Screen {
    const WIDTH: u32 = 640;
    const HEIGHT: u32 = 400;

    fn new(name: String) -> Self {
        Self {
            name,
            pointer: (32768, 32768),
            typed: String::new(),
            last: String::new(),
        }
    }

    /// Applies one input event; returns it in words for the log.
    fn apply(&mut self, event: &crate::domain::input::InputEvent) -> String {
        use crate::domain::input::InputEvent::*;
        let said = match event {
            PointerMove { x, y } => {
                self.pointer = (*x, *y);
                format!("pointer_move {x},{y}")
            }
            ButtonDown { button, x, y } => {
                self.pointer = (*x, *y);
                format!("button_down {button} {x},{y}")
            }
            ButtonUp { button, x, y } => {
                self.pointer = (*x, *y);
                format!("button_up {button} {x},{y}")
            }
            Wheel { dx, dy } => format!("wheel {dx},{dy}"),
            KeyDown { key } => {
                match key.as_str() {
                    "Backspace" => {
                        self.typed.pop();
                    }
                    k if k.chars().count() == 1 => {
                        if self.typed.chars().count() >= 60 {
                            self.typed.remove(0);
                        }
                        self.typed.push_str(k);
                    }
                    _ => {}
                }
                format!("key_down {key}")
            }
            KeyUp { key } => format!("key_up {key}"),
        };
        self.last = said.clone();
        said
    }

    /// The screen as an SVG image behind the screen channel's byte.
    fn frame(&self) -> Vec<u8> {
        let (w, h) = (Self::WIDTH, Self::HEIGHT);
        let px = u32::from(self.pointer.0) * w / 65535;
        let py = u32::from(self.pointer.1) * h / 65535;
        let now = chrono::Utc::now().format("%H:%M:%S");
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\
             <rect width=\"{w}\" height=\"{h}\" fill=\"#1d3557\"/>\
             <text x=\"20\" y=\"40\" fill=\"#fff\" font-family=\"sans-serif\" font-size=\"22\">{name}</text>\
             <text x=\"20\" y=\"70\" fill=\"#a8dadc\" font-family=\"sans-serif\" font-size=\"16\">{now} UTC</text>\
             <rect x=\"20\" y=\"110\" width=\"600\" height=\"40\" fill=\"#f1faee\"/>\
             <text x=\"30\" y=\"137\" fill=\"#000\" font-family=\"monospace\" font-size=\"18\">{typed}</text>\
             <text x=\"20\" y=\"380\" fill=\"#a8dadc\" font-family=\"monospace\" font-size=\"14\">{last}</text>\
             <circle cx=\"{px}\" cy=\"{py}\" r=\"8\" fill=\"#e63946\" stroke=\"#fff\" stroke-width=\"2\"/>\
             </svg>",
            name = xml_escape(&self.name),
            typed = xml_escape(&self.typed),
            last = xml_escape(&self.last),
        );
        let mut frame = Vec::with_capacity(svg.len() + 1);
        frame.push(1);
        frame.extend_from_slice(svg.as_bytes());
        frame
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
