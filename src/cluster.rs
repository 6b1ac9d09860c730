//! Several nodes over NATS (docs/cluster.md): this node's identity, its NATS connection, and
//! the two ends of a WebSocket whose session lives on another node.
//!
//! A session has one home: the node whose `SessionActor` runs it. A client may connect to any
//! node. When its session lives elsewhere, the node it reached (the *edge*) asks the home to
//! admit it (`<prefix>.node.<home>.rpc`, op `attach`); the home runs the very admission and the very
//! `ParticipantActor` a local socket gets, fed from NATS instead of a socket; the edge only
//! carries frames: client → home on `<prefix>.node.<home>.up`, home → client on
//! `<prefix>.node.<edge>.down` (`<prefix>`: the installation's `cluster.nats_prefix`). Every session rule therefore stays in the one session actor.
//!
//! Frames on `up` and `down` are `[16 bytes connection id][1 byte kind][payload]`; NATS keeps
//! the order of one publisher's messages, so each direction of a connection stays in order.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use serde::{Deserialize, Serialize};

use crate::{
    actors::connection::{Outbound, Outlet, RelayEnd, Relayed},
    domain::{
        ids::{DeviceId, SessionId, UserId},
        session::EndReason,
    },
};

/// The version of what nodes say to each other over NATS (subjects, frames, requests,
/// broadcasts, the chat journal's format). Nodes of one cluster must speak the same: raise it
/// with any change to them; a node is refused at start while nodes of another version run.
pub const WIRE: i64 = 1;

/// The installation's NATS subject prefix: `configured`, or a new one when that is empty
/// (`sb.` and 12 random hex digits; the store keeps the first node's). Tokens of ASCII letters,
/// digits and '-' joined by '.', at most 64 characters: no wildcard, and `_` is left out so
/// that the chat journal's stream name (the prefix with '.' as '_') names one prefix only.
pub fn nats_prefix(configured: &str) -> anyhow::Result<String> {
    if configured.is_empty() {
        return Ok(format!("sb.{}", &Uuid::new_v4().simple().to_string()[..12]));
    }
    let fits = configured.len() <= 64
        && configured.split('.').all(|token| {
            !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    anyhow::ensure!(
        fits,
        "cluster.nats_prefix {configured:?}: tokens of letters, digits and '-' joined by '.', at most 64 characters (no wildcards)"
    );
    Ok(configured.to_string())
}

/// What every node hears.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Broadcast {
    /// A credential ended (logout, key deleted, password changed): close its connections.
    Credential { credential: String },
    /// A user lost its access (deleted): close its connections everywhere.
    User { user: UserId },
    /// A user may no longer be in one session (rights narrowed, partner access revoked).
    UserInSession { user: UserId, session: SessionId },
    /// A session ends for everyone (its owner's partner access was revoked).
    End {
        session: SessionId,
        reason: EndReason,
    },
    /// For a device's agent, wherever it is connected.
    Device { device: DeviceId, note: DeviceNote },
}

/// What a device's agent is told through the node holding its connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum DeviceNote {
    /// New commands are queued for it in the store.
    Pending,
    /// Close its connection (device deleted, released or re-enrolled).
    Disconnect { code: u16, reason: String },
    /// Join a session as its customer.
    Session {
        session_id: SessionId,
        customer_key: String,
    },
    /// A newer connection of the same device opened on node `by`: close any other.
    Replaced { by: String },
}

#[derive(Serialize, Deserialize)]
pub struct Envelope {
    pub from: String,
    pub what: Broadcast,
}

/// What a frame on `up` or `down` is.
mod kind {
    pub const TEXT: u8 = b'T';
    pub const BINARY: u8 = b'B';
    pub const PING: u8 = b'I';
    pub const PONG: u8 = b'O';
    /// Close after what was sent before; two bytes of code (none: no code given).
    pub const CLOSE: u8 = b'C';
    /// Close at once, dropping what is queued; two bytes of code.
    pub const KILL: u8 = b'K';
}

/// The feed of a `ParticipantActor` whose socket is on another node.
pub type Feed = mpsc::Sender<Result<AggregatedMessage, ProtocolError>>;

/// A socket here whose session lives on another node.
struct EdgeConn {
    outlet: Outlet,
    home: Arc<str>,
    /// When the home was last heard from for this connection (ms since the Unix epoch).
    heard: AtomicI64,
}

/// Figures for `/metrics`: frames this node sent up (as an edge) and down (as a home).
#[derive(Default)]
pub struct ClusterCounters {
    pub frames_up: AtomicU64,
    pub frames_down: AtomicU64,
    pub rpc_calls: AtomicU64,
    pub rpc_nanos: AtomicU64,
}

/// This node in a cluster.
pub struct Cluster {
    /// The installation's subject prefix: every subject this node uses starts with it.
    prefix: Arc<str>,
    node: Arc<str>,
    client: async_nats::Client,
    edges: DashMap<Uuid, EdgeConn>,
    homes: DashMap<Uuid, Feed>,
    /// How long an edge socket waits for a word from its session's home (which pings every
    /// participant) before it takes the home for dead.
    home_silence: Duration,
    /// Set when this node hands its sessions over and stops: it answers pings as gone.
    leaving: std::sync::atomic::AtomicBool,
    /// When a warning about a node was last logged (late heartbeat, but alive on NATS).
    warned: DashMap<String, std::time::Instant>,
    /// Take-overs under way here, one at a time per session (`take_over_turn`).
    taking: DashMap<SessionId, Arc<tokio::sync::Mutex<()>>>,
    pub counters: ClusterCounters,
}

/// `cluster.node_id` as given, or a random one.
pub fn node_id(configured: &str) -> anyhow::Result<String> {
    if configured.is_empty() {
        return Ok(format!(
            "node-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
    }
    let fits = configured.len() <= 64
        && configured
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    anyhow::ensure!(
        fits,
        "cluster.node_id {configured:?}: 1 to 64 letters, digits, '-' or '_' (it is part of NATS subjects)"
    );
    Ok(configured.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn frame(conn: Uuid, kind: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(17 + payload.len());
    buf.put_slice(conn.as_bytes());
    buf.put_u8(kind);
    buf.put_slice(payload);
    buf.freeze()
}

fn parse(mut data: Bytes) -> Option<(Uuid, u8, Bytes)> {
    if data.len() < 17 {
        return None;
    }
    let head = data.split_to(17);
    let conn = Uuid::from_slice(&head[..16]).ok()?;
    Some((conn, head[16], data))
}

fn code_of(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// The reason text a close code goes out with on the edge (the home's own text stays there).
fn close_reason(code: u16) -> &'static str {
    match code {
        1000 => "bye",
        1001 => "going_away",
        1008 => "policy_violation",
        1009 => "message_too_big",
        4001 => "inviter_left",
        4002 => "session_ended",
        4003 => "access_revoked",
        4008 => "too_slow",
        _ => "closed",
    }
}

/// What a ping says of another node (`Cluster::node_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    There,
    Leaving,
    Gone,
}

impl Cluster {
    /// Connects to NATS (retrying in the background when it is not there yet: `/readyz`
    /// says 503 meanwhile) and starts carrying frames for this node.
    pub async fn connect(
        url: &str,
        prefix: String,
        node: String,
        home_silence: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("support-broker {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(url)
            .await?;
        let cluster = Arc::new(Self {
            prefix: prefix.into(),
            node: node.into(),
            client,
            edges: DashMap::new(),
            homes: DashMap::new(),
            home_silence,
            leaving: std::sync::atomic::AtomicBool::new(false),
            warned: DashMap::new(),
            taking: DashMap::new(),
            counters: ClusterCounters::default(),
        });
        cluster.clone().carry_up().await?;
        cluster.clone().carry_down().await?;
        cluster.clone().watch_homes();
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// The installation's subject prefix (`cluster.nats_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject every node hears.
    pub fn broadcast_subject(&self) -> String {
        format!("{}.broadcast", self.prefix)
    }

    /// A node's subject for `what`: `rpc` (its requests), `up` (frames for the participant
    /// actors at home there), `down` (frames for the sockets it carries).
    fn node_subject(&self, node: &str, what: &str) -> String {
        format!("{}.node.{node}.{what}", self.prefix)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether NATS is connected now.
    pub fn connected(&self) -> bool {
        matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    /// Tells every other node `what` (they act on the connections they hold).
    pub fn publish(&self, what: Broadcast) {
        let client = self.client.clone();
        let subject = self.broadcast_subject();
        let envelope = Envelope {
            from: self.node.to_string(),
            what,
        };
        match serde_json::to_vec(&envelope) {
            Ok(payload) => {
                actix_web::rt::spawn(async move {
                    if let Err(err) = client.publish(subject, Bytes::from(payload)).await {
                        tracing::error!(error = %err, "broadcast not published");
                    }
                });
            }
            Err(err) => tracing::error!(error = %err, "broadcast not encoded"),
        }
    }

    /// The subject of a node's requests.
    pub fn rpc_subject(&self, node: &str) -> String {
        self.node_subject(node, "rpc")
    }

    /// Sockets here whose session lives elsewhere.
    pub fn edge_connections(&self) -> usize {
        self.edges.len()
    }

    /// Participants of sessions here whose socket is on another node.
    pub fn remote_participants(&self) -> usize {
        self.homes.len()
    }

    /// A request to another node, answered as JSON; times the round trip for `/metrics`.
    pub async fn request<T: serde::de::DeserializeOwned>(
        &self,
        node: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let payload = Bytes::from(serde_json::to_vec(body)?);
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            self.client.request(self.rpc_subject(node), payload),
        )
        .await
        .map_err(|_| anyhow::anyhow!("node {node} did not answer within 5 s"))??;
        self.counters.rpc_calls.fetch_add(1, Ordering::Relaxed);
        self.counters
            .rpc_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(serde_json::from_slice(&reply.payload)?)
    }

    /// Whether a failed `request` means that nobody listens for the node (it is gone), as
    /// against a node that was slow or answered nonsense.
    pub fn nobody_listens(err: &anyhow::Error) -> bool {
        err.downcast_ref::<async_nats::RequestError>()
            .is_some_and(|e| matches!(e.kind(), async_nats::client::RequestErrorKind::NoResponders))
    }

    /// Whether `node` is there: false when NATS says that nobody listens for it (its
    /// connection is gone: the process died or lost NATS) or when it says it is leaving (it
    /// handed its sessions over). A node that is slow to answer is taken to be there.
    pub async fn reachable(&self, node: &str) -> bool {
        self.node_state(node).await == NodeState::There
    }

    /// What a ping says of `node`: gone (nobody listens for it), leaving (handing its sessions
    /// over), or there (it answered, or was only slow to).
    pub async fn node_state(&self, node: &str) -> NodeState {
        let asked = self.client.request(
            self.rpc_subject(node),
            Bytes::from_static(br#"{"op":"ping"}"#),
        );
        match tokio::time::timeout(Duration::from_secs(2), asked).await {
            Ok(Err(err))
                if matches!(
                    err.kind(),
                    async_nats::client::RequestErrorKind::NoResponders
                ) =>
            {
                NodeState::Gone
            }
            Ok(Ok(reply))
                if serde_json::from_slice::<serde_json::Value>(&reply.payload)
                    .is_ok_and(|v| v["leaving"] == true) =>
            {
                NodeState::Leaving
            }
            _ => NodeState::There,
        }
    }

    /// The turn of one take-over of `session` on this node: clients of one session that come
    /// back at the same moment wait for the first one's take-over instead of each reading the
    /// chat journal. Hold the guard while taking over; `take_over_done` afterwards.
    pub fn take_over_turn(&self, session: SessionId) -> Arc<tokio::sync::Mutex<()>> {
        self.taking.entry(session).or_default().clone()
    }

    pub fn take_over_done(&self, session: SessionId) {
        self.taking.remove(&session);
    }

    /// Whether nothing was said about `node` in the last minute (and notes that now it is).
    pub fn first_word_in_a_minute(&self, node: &str) -> bool {
        let now = std::time::Instant::now();
        let mut said = true;
        self.warned
            .entry(node.to_string())
            .and_modify(|last| {
                if now.duration_since(*last) < Duration::from_secs(60) {
                    said = false;
                } else {
                    *last = now;
                }
            })
            .or_insert(now);
        said
    }

    /// This node hands its sessions over and stops: from now on it answers pings as gone.
    pub fn start_leaving(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }

    pub fn leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    // ---- the edge: a socket here, its session elsewhere ----

    /// Registers a socket here whose frames the home sends on this node's `down` subject.
    pub fn open_edge(&self, conn: Uuid, outlet: Outlet, home: &str) {
        self.edges.insert(
            conn,
            EdgeConn {
                outlet,
                home: home.into(),
                heard: AtomicI64::new(now_ms()),
            },
        );
    }

    /// The shutdown of this node: every socket here whose session lives elsewhere gets Close
    /// 1001 (its client reconnects, to another node), and its home hears that it left.
    pub async fn close_edges(&self) {
        let conns: Vec<(Uuid, Arc<str>)> = self
            .edges
            .iter()
            .map(|e| (*e.key(), e.home.clone()))
            .collect();
        for (conn, home) in conns {
            if let Some((_, edge)) = self.edges.remove(&conn) {
                edge.outlet
                    .close(crate::domain::session::close_code::GOING_AWAY, "going_away");
                let _ = self
                    .client
                    .publish(
                        self.node_subject(&home, "up"),
                        frame(conn, kind::CLOSE, &1001u16.to_be_bytes()),
                    )
                    .await;
            }
        }
        let _ = self.client.flush().await;
    }

    /// Forgets an edge socket (its client left, or the home refused it).
    pub fn close_edge(&self, conn: Uuid) {
        self.edges.remove(&conn);
    }

    /// Passes what the client sent to the home, until the socket ends; then tells the home.
    pub async fn pump_up(
        self: Arc<Self>,
        conn: Uuid,
        home: String,
        outlet: Outlet,
        mut stream: actix_ws::AggregatedMessageStream,
    ) {
        let subject = self.node_subject(&home, "up");
        let send = |kind: u8, payload: &[u8]| {
            self.counters.frames_up.fetch_add(1, Ordering::Relaxed);
            self.client
                .publish(subject.clone(), frame(conn, kind, payload))
        };
        let mut last_code: Option<u16> = None;
        while let Some(item) = stream.next().await {
            let sent = match item {
                Ok(AggregatedMessage::Text(text)) => send(kind::TEXT, text.as_bytes()).await,
                Ok(AggregatedMessage::Binary(data)) => send(kind::BINARY, &data).await,
                Ok(AggregatedMessage::Ping(data)) => send(kind::PING, &data).await,
                Ok(AggregatedMessage::Pong(data)) => send(kind::PONG, &data).await,
                Ok(AggregatedMessage::Close(reason)) => {
                    // Echoed here at once, as the home would (RFC 6455 5.5.1).
                    let code = reason.map_or(1000, |r| u16::from(r.code));
                    outlet.close(code, "bye");
                    last_code = Some(code);
                    break;
                }
                Err(err) => {
                    let (code, reason) = crate::actors::participant::close_for(&err);
                    outlet.close(code, reason);
                    last_code = Some(code);
                    break;
                }
            };
            if sent.is_err() {
                outlet.force_close(crate::domain::session::close_code::SERVICE_RESTART);
                break;
            }
        }
        let code = last_code.map(u16::to_be_bytes);
        let _ = send(kind::CLOSE, code.as_ref().map_or(&[][..], |c| &c[..])).await;
        self.close_edge(conn);
    }

    /// Receives what homes send to the sockets on this node.
    async fn carry_down(self: Arc<Self>) -> anyhow::Result<()> {
        let mut sub = self
            .client
            .subscribe(self.node_subject(&self.node, "down"))
            .await?;
        actix_web::rt::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some((conn, kind, payload)) = parse(msg.payload) else {
                    continue;
                };
                let Some(edge) = self.edges.get(&conn) else {
                    continue;
                };
                edge.heard.store(now_ms(), Ordering::Relaxed);
                let sent = match kind {
                    kind::TEXT => match ByteString::try_from(payload) {
                        Ok(text) => edge.outlet.text(text),
                        Err(_) => Ok(()),
                    },
                    kind::BINARY => edge.outlet.send(Outbound::Binary(payload)),
                    kind::PING => edge.outlet.send(Outbound::Ping),
                    kind::PONG => edge.outlet.send(Outbound::Pong(payload)),
                    kind::CLOSE => {
                        let code = code_of(&payload).unwrap_or(1000);
                        edge.outlet.close(code, close_reason(code));
                        drop(edge);
                        self.edges.remove(&conn);
                        continue;
                    }
                    kind::KILL => {
                        edge.outlet.force_close(code_of(&payload).unwrap_or(1011));
                        drop(edge);
                        self.edges.remove(&conn);
                        continue;
                    }
                    _ => Ok(()),
                };
                if sent.is_err() {
                    // The client here cannot keep up: as on one node, 4008; the home hears
                    // that the socket is gone.
                    edge.outlet
                        .force_close(crate::domain::session::close_code::TOO_SLOW);
                    let home = edge.home.clone();
                    drop(edge);
                    self.edges.remove(&conn);
                    let _ = self
                        .client
                        .publish(
                            self.node_subject(&home, "up"),
                            frame(conn, kind::CLOSE, &4008u16.to_be_bytes()),
                        )
                        .await;
                }
            }
        });
        Ok(())
    }

    /// A home that went quiet (its node died) leaves its edge sockets open for nothing: every
    /// home pings its participants, so silence for this long closes them with 1012, and their
    /// clients reconnect.
    fn watch_homes(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                // A home whose node is gone (NATS knows at once): its sockets here go now.
                let homes: std::collections::HashSet<Arc<str>> =
                    this.edges.iter().map(|e| e.home.clone()).collect();
                for home in homes {
                    // Only a gone home: a leaving one sends its sockets away itself, with
                    // 1001 once its report holds everything; closing them here first would
                    // send their clients to take the session over from a store it is still
                    // writing. (One that never does falls silent, and the check below acts.)
                    if this.node_state(&home).await == NodeState::Gone {
                        this.edges.retain(|_, e| {
                            if e.home == home {
                                tracing::info!(%home, "session home gone; closing the socket so the client reconnects");
                                e.outlet.force_close(crate::domain::session::close_code::SERVICE_RESTART);
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
                let quiet_since = now_ms() - this.home_silence.as_millis() as i64;
                let gone: Vec<Uuid> = this
                    .edges
                    .iter()
                    .filter(|e| {
                        e.outlet.is_closed() || e.heard.load(Ordering::Relaxed) < quiet_since
                    })
                    .map(|e| *e.key())
                    .collect();
                for conn in gone {
                    if let Some((_, edge)) = this.edges.remove(&conn) {
                        tracing::info!(%conn, home = %edge.home, "session home silent; closing the socket so the client reconnects");
                        edge.outlet
                            .force_close(crate::domain::session::close_code::SERVICE_RESTART);
                    }
                }
            }
        });
    }

    // ---- the home: a session here, a socket elsewhere ----

    /// Registers the feed of a participant whose socket is on `edge`, and starts sending what
    /// its outlet receives there. Returns the stream the `ParticipantActor` reads.
    pub fn open_home(
        self: &Arc<Self>,
        conn: Uuid,
        edge: &str,
        relay: RelayEnd,
        capacity: usize,
    ) -> impl futures_util::Stream<Item = Result<AggregatedMessage, ProtocolError>> + use<> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.homes.insert(conn, tx);
        let this = self.clone();
        let subject = self.node_subject(edge, "down");
        actix_web::rt::spawn(async move {
            this.pump_down(conn, subject, relay).await;
        });
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
    }

    async fn pump_down(&self, conn: Uuid, subject: String, mut relay: RelayEnd) {
        loop {
            let (kind, payload): (u8, Bytes) = match relay.next().await {
                Relayed::Frame(Outbound::Text(text)) => (kind::TEXT, text.into_bytes()),
                Relayed::Frame(Outbound::Binary(data)) => (kind::BINARY, data),
                Relayed::Frame(Outbound::Ping) => (kind::PING, Bytes::new()),
                Relayed::Frame(Outbound::Pong(data)) => (kind::PONG, data),
                Relayed::Frame(Outbound::Close(code, _)) => {
                    (kind::CLOSE, Bytes::copy_from_slice(&code.to_be_bytes()))
                }
                Relayed::Killed(code) => (kind::KILL, Bytes::copy_from_slice(&code.to_be_bytes())),
                Relayed::Ended => (kind::CLOSE, Bytes::copy_from_slice(&1000u16.to_be_bytes())),
            };
            let last = matches!(kind, kind::CLOSE | kind::KILL);
            self.counters.frames_down.fetch_add(1, Ordering::Relaxed);
            let published = self
                .client
                .publish(subject.clone(), frame(conn, kind, &payload))
                .await;
            if last || published.is_err() {
                break;
            }
        }
        // The participant's stream ends: it departs if it had not yet.
        self.homes.remove(&conn);
    }

    /// Receives what edges send for the participants of sessions here.
    async fn carry_up(self: Arc<Self>) -> anyhow::Result<()> {
        let mut sub = self
            .client
            .subscribe(self.node_subject(&self.node, "up"))
            .await?;
        actix_web::rt::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some((conn, kind, payload)) = parse(msg.payload) else {
                    continue;
                };
                let Some(feed) = self.homes.get(&conn).map(|f| f.clone()) else {
                    continue;
                };
                let item = match kind {
                    kind::TEXT => match ByteString::try_from(payload) {
                        Ok(text) => AggregatedMessage::Text(text),
                        Err(_) => continue,
                    },
                    kind::BINARY => AggregatedMessage::Binary(payload),
                    kind::PING => AggregatedMessage::Ping(payload),
                    kind::PONG => AggregatedMessage::Pong(payload),
                    kind::CLOSE => {
                        let reason = code_of(&payload).map(|code| CloseReason {
                            code: CloseCode::from(code),
                            description: None,
                        });
                        let _ = feed.try_send(Ok(AggregatedMessage::Close(reason)));
                        self.homes.remove(&conn);
                        continue;
                    }
                    _ => continue,
                };
                if feed.try_send(Ok(item)).is_err() {
                    // The participant's actor is behind by a whole queue: drop it as a
                    // socket that floods would be dropped.
                    self.homes.remove(&conn);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_prefix_is_plain_subject_tokens_and_a_new_one_is_random() {
        let one = nats_prefix("").unwrap();
        let two = nats_prefix("").unwrap();
        assert!(one.starts_with("sb.") && one.len() == 15, "{one}");
        assert_ne!(one, two, "each installation draws its own");
        for good in ["sb", "acme-eu.support", "A.b-1.c"] {
            assert_eq!(nats_prefix(good).unwrap(), good);
        }
        let long = "a".repeat(65);
        for bad in [
            "sb.*",
            "sb.>",
            "a..b",
            ".a",
            "a.",
            "with space",
            "under_score",
            "tab\t",
            &long,
        ] {
            let err = nats_prefix(bad).unwrap_err().to_string();
            assert!(err.contains("cluster.nats_prefix"), "{bad:?}: {err}");
        }
        // '_' is left out so that stream names stay one per prefix.
        assert_eq!(
            crate::chat_journal::stream_name("acme.eu"),
            "SB_CHAT_acme_eu"
        );
    }
}
