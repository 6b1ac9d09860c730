//! What the nodes of a cluster ask of each other (docs/cluster.md): a node's requests
//! (`<prefix>.node.<id>.rpc`) for what only a session's home can answer, and the broadcasts
//! (`<prefix>.broadcast`) that reach every node, such as revocations.
//!
//! Every function here is also right on one node: it asks the local actor when the session
//! lives here, and NATS only when it lives elsewhere.

use std::{sync::Arc, time::Duration};

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::cluster::Broadcast;

use super::{state::AppState, ws::WsRoute};
use crate::{
    actors::{
        connection,
        device::{DeliverPending, Disconnect, RequestSession},
        invitation::InvitationActor,
        messages::{
            ConnectedTechnician, DisconnectCredential, DisconnectUser, EndSession, Peek, Revoke,
            RevokeCause, SessionSnapshot, Snapshot, TrackInvitation,
        },
        participant::ParticipantActor,
    },
    cluster::{Cluster, DeviceNote, Envelope},
    domain::{
        ids::{AccountId, DeviceId, InvitationId, ParticipantId, PolicyId, SessionId, UserId},
        invitation::{Invitation, Refusal},
        permissions::Permission,
    },
    error::{AppError, AppResult},
    store::AuditEntry,
};

/// A request to the node a session lives on.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Rpc {
    /// A socket on `edge` for a session here: admit it as a local one would be.
    Attach {
        conn: Uuid,
        edge: String,
        route: WsRoute,
    },
    Snapshot {
        session: SessionId,
    },
    ConnectedTechnician {
        session: SessionId,
        user: UserId,
    },
    TrackInvitation(InvitationSpec),
    PeekInvitation {
        invitation: InvitationId,
    },
    RevokeInvitation {
        invitation: InvitationId,
        audit: Vec<WireAudit>,
    },
    /// Whether the node is there (`Cluster::reachable`).
    Ping,
    /// Store what the home's report writer holds of a session (its report is being read).
    FlushReport {
        session: SessionId,
    },
}

/// A new invitation whose actor is to run beside its session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationSpec {
    pub id: InvitationId,
    pub session_id: SessionId,
    pub inviter: ParticipantId,
    pub guest_name: String,
    pub permissions: Vec<Permission>,
    pub policy_id: PolicyId,
    pub expires_at: DateTime<Utc>,
}

/// An audit entry of `invitation.revoked`, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireAudit {
    account_id: AccountId,
    actor_user_id: Option<UserId>,
    actor_name: String,
    via: String,
    target: Option<String>,
    details: serde_json::Value,
}

impl From<AuditEntry> for WireAudit {
    fn from(a: AuditEntry) -> Self {
        Self {
            account_id: a.account_id,
            actor_user_id: a.actor_user_id,
            actor_name: a.actor_name,
            via: a.via,
            target: a.target,
            details: a.details,
        }
    }
}

impl From<WireAudit> for AuditEntry {
    fn from(a: WireAudit) -> Self {
        Self {
            account_id: a.account_id,
            actor_user_id: a.actor_user_id,
            actor_name: a.actor_name,
            via: a.via,
            action: "invitation.revoked",
            target: a.target,
            details: a.details,
        }
    }
}

/// An HTTP refusal as it travels back to the node the client asked.
#[derive(Debug, Serialize, Deserialize)]
struct WireRefusal {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

/// Applies `what` here and tells every other node (after the database commit that caused it:
/// a node that misses it still refuses the credential at its next check).
pub fn announce(state: &AppState, what: Broadcast) {
    apply(state, &what);
    if let Some(cluster) = &state.cluster {
        cluster.publish(what);
    }
}

/// What a broadcast does on one node: close the matching connections it holds.
fn apply(state: &AppState, what: &Broadcast) {
    match what {
        Broadcast::Credential { credential } => {
            if credential.is_empty() {
                return;
            }
            let sessions = state.registry.sessions_with_credential(credential);
            let credential: Arc<str> = credential.as_str().into();
            for session in sessions {
                session.do_send(DisconnectCredential {
                    credential: credential.clone(),
                });
            }
        }
        Broadcast::User { user } => {
            for session in state.registry.sessions_of_user(*user) {
                session.do_send(DisconnectUser { user_id: *user });
            }
        }
        Broadcast::UserInSession { user, session } => {
            if let Some(addr) = state.registry.session(*session) {
                addr.do_send(DisconnectUser { user_id: *user });
            }
        }
        Broadcast::End { session, reason } => {
            if let Some(addr) = state.registry.session(*session) {
                addr.do_send(EndSession { reason: *reason });
            }
        }
        Broadcast::Device { device, note } => {
            let Some(agent) = state.registry.device(*device) else {
                return;
            };
            match note {
                DeviceNote::Pending => agent.do_send(DeliverPending),
                DeviceNote::Disconnect { code, reason } => agent.do_send(Disconnect {
                    code: *code,
                    reason: crate::actors::device::static_reason(reason),
                }),
                DeviceNote::Session {
                    session_id,
                    customer_key,
                } => agent.do_send(RequestSession {
                    session_id: *session_id,
                    customer_key: customer_key.clone(),
                }),
                DeviceNote::Replaced { by } => {
                    let here = state.cluster.as_ref().map(|c| c.node_id());
                    if here != Some(by.as_str()) {
                        agent.do_send(Disconnect {
                            code: crate::domain::session::close_code::REPLACED,
                            reason: "replaced",
                        });
                    }
                }
            }
        }
    }
}

/// Tells a device's agent `note`: through its actor when the agent is connected here, else
/// to every node of a cluster (the one holding the agent acts).
pub fn to_device(state: &AppState, device: DeviceId, note: DeviceNote) {
    if state.registry.device(device).is_some() || state.cluster.is_some() {
        announce(state, Broadcast::Device { device, note });
    }
}

/// Whether a device's agent is connected to this node or, in a cluster, to any node.
pub fn agent_online(state: &AppState, device: &crate::store::DeviceRecord) -> bool {
    state.registry.device(device.id).is_some()
        || (state.cluster.is_some() && device.agent_node.is_some())
}

/// Starts answering this node's requests and hearing the broadcasts.
pub async fn serve(state: web::Data<AppState>) -> anyhow::Result<()> {
    let Some(cluster) = state.cluster.clone() else {
        return Ok(());
    };
    let client = cluster.client().clone();
    let mut requests = client
        .subscribe(cluster.rpc_subject(cluster.node_id()))
        .await?;
    let mut broadcasts = client.subscribe(cluster.broadcast_subject()).await?;
    let weak = Arc::downgrade(&state.clone().into_inner());
    actix_web::rt::spawn(async move {
        while let Some(msg) = requests.next().await {
            let Some(state) = weak.upgrade() else { return };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let client = client.clone();
            actix_web::rt::spawn(async move {
                let answer = match serde_json::from_slice::<Rpc>(&msg.payload) {
                    Ok(rpc) => answer(&web::Data::from(state), rpc).await,
                    Err(err) => serde_json::json!({"error": format!("bad request: {err}")}),
                };
                let payload = Bytes::from(serde_json::to_vec(&answer).unwrap_or_default());
                if let Err(err) = client.publish(reply, payload).await {
                    tracing::warn!(error = %err, "cluster reply not sent");
                }
            });
        }
    });
    let weak = Arc::downgrade(&state.into_inner());
    let me = cluster.node_id().to_string();
    actix_web::rt::spawn(async move {
        while let Some(msg) = broadcasts.next().await {
            let Some(state) = weak.upgrade() else { return };
            match serde_json::from_slice::<Envelope>(&msg.payload) {
                Ok(envelope) if envelope.from != me => apply(&state, &envelope.what),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "unreadable broadcast"),
            }
        }
    });
    Ok(())
}

async fn answer(state: &web::Data<AppState>, rpc: Rpc) -> serde_json::Value {
    match rpc {
        Rpc::Attach { conn, edge, route } => match attach_here(state, conn, &edge, route).await {
            Ok(()) => serde_json::json!({"ok": true}),
            Err(err) => {
                use actix_web::ResponseError;
                let res = err.error_response();
                let status = res.status().as_u16();
                let retry_after = res
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = actix_web::body::to_bytes(res.into_body())
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(serde_json::Value::Null);
                serde_json::json!({"refused": WireRefusal { status, retry_after, body }})
            }
        },
        Rpc::Snapshot { session } => {
            let snapshot = match state.registry.session(session) {
                Some(addr) => addr.send(Snapshot).await.ok(),
                None => None,
            };
            serde_json::json!(snapshot)
        }
        Rpc::ConnectedTechnician { session, user } => {
            let pid = match state.registry.session(session) {
                Some(addr) => addr.send(ConnectedTechnician { user_id: user }).await.ok(),
                None => None,
            };
            serde_json::json!({"live": pid.is_some(), "participant": pid.flatten()})
        }
        Rpc::TrackInvitation(spec) => serde_json::json!(track_here(state, spec).await),
        Rpc::PeekInvitation { invitation } => {
            let peek = match state.registry.invitation(invitation) {
                Some(addr) => addr.send(Peek).await.ok().map(|r| r.map(Refusal::code)),
                None => None,
            };
            serde_json::json!({"live": peek.is_some(), "refusal": peek.flatten()})
        }
        Rpc::Ping => match &state.cluster {
            Some(c) if c.leaving() => serde_json::json!({"leaving": true}),
            _ => serde_json::json!({"ok": true}),
        },
        Rpc::FlushReport { session } => {
            state.reports.flush_session(session).await;
            serde_json::json!({"ok": true})
        }
        Rpc::RevokeInvitation { invitation, audit } => {
            let audit = audit.into_iter().map(AuditEntry::from).collect();
            let done = match state.registry.invitation(invitation) {
                Some(addr) => addr
                    .send(Revoke {
                        cause: RevokeCause::Deleted,
                        audit,
                    })
                    .await
                    .ok(),
                None => None,
            };
            serde_json::json!({"live": done.is_some(), "revoked": done.unwrap_or(false)})
        }
    }
}

// ---- sockets whose session lives elsewhere ----

/// The edge of a socket: upgrades here once the home has admitted it, then carries frames.
pub async fn connect_remote(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    route: WsRoute,
    home: &str,
) -> AppResult<HttpResponse> {
    let Some(cluster) = state.cluster.clone() else {
        return Err(AppError::Unavailable);
    };
    let (response, ws, stream) = actix_ws::handle(req, body).map_err(|e| {
        AppError::new(
            crate::error::Code::NotWebsocket,
            format!("expected a WebSocket upgrade: {e}"),
        )
    })?;
    let limits = state.ws_limits.clone();
    let outlet = connection::open(ws, limits.outbound_queue, &state.connections);
    let conn = Uuid::new_v4();
    // Registered before asking: the home's `welcome` may arrive before its answer.
    cluster.open_edge(conn, outlet.clone(), home);
    let asked = Rpc::Attach {
        conn,
        edge: cluster.node_id().to_string(),
        route,
    };
    let answer: serde_json::Value = match cluster.request(home, &asked).await {
        Ok(answer) => answer,
        Err(err) => {
            cluster.close_edge(conn);
            tracing::warn!(%home, error = %err, "session home unreachable");
            return Err(AppError::node_unavailable());
        }
    };
    if let Some(refused) = answer.get("refused") {
        cluster.close_edge(conn);
        let refused: WireRefusal = serde_json::from_value(refused.clone())
            .map_err(|e| AppError::internal(anyhow::anyhow!("bad refusal from {home}: {e}")))?;
        let status = actix_web::http::StatusCode::from_u16(refused.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
        let mut res = HttpResponse::build(status);
        if let Some(wait) = refused.retry_after {
            res.insert_header(("Retry-After", wait));
        }
        return Ok(res.json(refused.body));
    }
    let stream = super::ws::configured(stream, &limits);
    actix_web::rt::spawn(cluster.pump_up(conn, home.to_string(), outlet, stream));
    Ok(response)
}

/// The home of a socket on `edge`: the admission a local socket gets, then a participant
/// actor fed from NATS.
async fn attach_here(
    state: &web::Data<AppState>,
    conn: Uuid,
    edge: &str,
    route: WsRoute,
) -> AppResult<()> {
    let Some(cluster) = state.cluster.clone() else {
        return Err(AppError::Unavailable);
    };
    state.refuse_if_draining()?;
    // The edge checked the handshake before asking.
    let admitted = super::ws::admit(state, route, &|| Ok(())).await?;
    let limits = state.ws_limits.clone();
    let (outlet, relay) = connection::open_relay(limits.outbound_queue, &state.connections);
    let feed = cluster.open_home(conn, edge, relay, limits.outbound_queue);
    ParticipantActor::create(move |ctx| {
        ctx.add_stream(feed);
        let actor = ParticipantActor::new(admitted.session, admitted.joiner, outlet, limits);
        match admitted.recheck {
            Some(recheck) => actor.with_recheck(recheck),
            None => actor,
        }
    });
    Ok(())
}

/// Takes a session over from `from`, a node that is gone (the database decides who gets it):
/// its actor starts here from the stored state. `false` when it is not open any more or
/// another node took it first.
pub async fn take_over(state: &AppState, session: SessionId, from: &str) -> AppResult<bool> {
    let Some(cluster) = &state.cluster else {
        return Ok(false);
    };
    // One take-over of a session at a time here; those who waited find it done.
    let turn = cluster.take_over_turn(session);
    let _turn = turn.lock().await;
    if state.registry.session(session).is_some() {
        return Ok(true);
    }
    let taken = take_over_now(state, cluster, session, from).await;
    cluster.take_over_done(session);
    taken
}

async fn take_over_now(
    state: &AppState,
    cluster: &Cluster,
    session: SessionId,
    from: &str,
) -> AppResult<bool> {
    // The chat the lost home relayed but had not stored yet (its last chunk) is read before
    // the claim: a node that cannot read the journal does not take the session (it would
    // number the next chat from a stale place and the report would miss lines). The client
    // gets 503 and comes back; the journal is read again then, here or on another node.
    let reading = std::time::Instant::now();
    let journaled = match &state.session_deps.journal {
        Some(journal) => read_journal(journal, session).await?,
        None => Vec::new(),
    };
    let read_ms = reading.elapsed().as_millis() as u64;
    let Some(mut recovery) = state
        .store
        .claim_session(session, from, cluster.node_id())
        .await?
    else {
        return Ok(false);
    };
    let journaled: Vec<_> = journaled
        .into_iter()
        .filter(|line| line.seq > recovery.chat_seq)
        .collect();
    let invitations = std::mem::take(&mut recovery.invitations);
    let record = state.store.session(session).await?;
    let account = match &record {
        Some(r) => state.store.account(r.account_id).await?,
        None => None,
    };
    let admission = account
        .as_ref()
        .and_then(|a| crate::domain::session::Admission::parse(&a.guest_admission))
        .unwrap_or(crate::domain::session::Admission::Off);
    // Recorded from its start (whatever the account says now): the recording goes on from
    // the session's start (in the same file when the recordings directory is shared).
    let recorded = record.as_ref().filter(|r| r.recorded).map(|r| r.started_at);
    tracing::warn!(%session, %from, journaled = journaled.len(), read_ms, "taking over a session whose node is gone");
    crate::actors::session::SessionActor::recover(
        session,
        recovery,
        journaled,
        admission,
        recorded,
        state.session_deps.clone(),
    );
    // The links the technicians who were in had sent out work on, here.
    for inv in invitations {
        let spec = InvitationSpec {
            id: inv.id,
            session_id: session,
            inviter: inv.inviter_participant_id,
            guest_name: inv.guest_name,
            permissions: inv.permissions.to_vec(),
            policy_id: inv.policy_id,
            expires_at: inv.expires_at,
        };
        if !track_here(state, spec).await {
            tracing::warn!(%session, invitation = %inv.id, "a pending invitation could not be kept after the take-over");
        }
    }
    Ok(true)
}

/// The session's whole chat journal. A read that fails (JetStream refused it) is tried again
/// while within 5 s of the first; 503 `node_unavailable` when none gave it within them.
async fn read_journal(
    journal: &crate::chat_journal::ChatJournal,
    session: SessionId,
) -> AppResult<Vec<crate::store::ChatLine>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut pause = Duration::from_millis(200);
    let failure = loop {
        match tokio::time::timeout_at(deadline, journal.read(session, 0)).await {
            Ok(Ok(lines)) => return Ok(lines),
            Ok(Err(err)) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(%session, error = %err, "chat journal not readable, trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Ok(Err(err)) => break err.to_string(),
            Err(_) => break "no answer within 5 s".to_string(),
        }
    };
    tracing::error!(%session, error = %failure, "chat journal not readable: the session is not taken over (its clients are told to come back)");
    Err(AppError::node_unavailable())
}

// ---- what HTTP handlers ask of a live session, wherever it lives ----

/// The node a session lives on when that is another node of this cluster.
async fn remote_home(state: &AppState, session: SessionId) -> AppResult<Option<String>> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    if state.registry.session(session).is_some() {
        return Ok(None);
    }
    Ok(state
        .store
        .session_home(session)
        .await?
        .filter(|home| home != cluster.node_id()))
}

fn cluster_of(state: &AppState) -> AppResult<&Arc<Cluster>> {
    state.cluster.as_ref().ok_or(AppError::Unavailable)
}

/// The home's answer, `None` when the home is gone (nobody listens on its subject), 503
/// `node_unavailable` when it did not answer in time or answered what this node cannot read.
async fn ask_live<T: serde::de::DeserializeOwned>(
    state: &AppState,
    home: &str,
    rpc: &Rpc,
) -> AppResult<Option<T>> {
    match cluster_of(state)?.request(home, rpc).await {
        Ok(answer) => Ok(Some(answer)),
        Err(err) if Cluster::nobody_listens(&err) => Ok(None),
        Err(err) => {
            tracing::warn!(%home, error = %err, "session home did not answer");
            Err(AppError::node_unavailable())
        }
    }
}

async fn ask<T: serde::de::DeserializeOwned>(
    state: &AppState,
    home: &str,
    rpc: &Rpc,
) -> AppResult<T> {
    cluster_of(state)?.request(home, rpc).await.map_err(|err| {
        tracing::warn!(%home, error = %err, "session home unreachable");
        AppError::node_unavailable()
    })
}

/// The live participants of an open session (None: it is not live anywhere).
/// `Ok(None)` when the session is not live (no actor here, none at its home, or its home is
/// gone); 503 `node_unavailable` when its home is there but did not answer in time (a slow
/// node is not taken to mean an ended session).
pub async fn snapshot(state: &AppState, session: SessionId) -> AppResult<Option<SessionSnapshot>> {
    if let Some(addr) = state.registry.session(session) {
        return Ok(addr.send(Snapshot).await.ok());
    }
    match remote_home(state, session).await? {
        Some(home) => ask_live(state, &home, &Rpc::Snapshot { session })
            .await
            .map(Option::flatten),
        None => Ok(None),
    }
}

/// Whether the session is live somewhere (its actor runs on this or another node).
pub async fn is_live(state: &AppState, session: SessionId) -> AppResult<bool> {
    Ok(snapshot(state, session).await?.is_some())
}

#[derive(Deserialize)]
struct Connected {
    live: bool,
    participant: Option<ParticipantId>,
}

/// The participant of `user` connected to the session now: `Ok(None)` when the session is
/// not live, `Ok(Some(None))` when the user is not in it; 503 `node_unavailable` when the
/// session's home did not answer in time.
pub async fn connected_technician(
    state: &AppState,
    session: SessionId,
    user: UserId,
) -> AppResult<Option<Option<ParticipantId>>> {
    if let Some(addr) = state.registry.session(session) {
        return Ok(addr.send(ConnectedTechnician { user_id: user }).await.ok());
    }
    let Some(home) = remote_home(state, session).await? else {
        return Ok(None);
    };
    let rpc = Rpc::ConnectedTechnician { session, user };
    let asked = ask_live::<Connected>(state, &home, &rpc).await?;
    Ok(asked.filter(|c| c.live).map(|c| c.participant))
}

/// Starts a new invitation's actor beside its session and has the session track it; `false`
/// when the inviter left (or the session ended) meanwhile, and the invitation is then revoked.
pub async fn track_invitation(state: &AppState, spec: InvitationSpec) -> bool {
    // Counted where it is made, once (a take-over starts the actor again elsewhere).
    metrics::counter!("broker_invitations_total", "outcome" => "created").increment(1);
    if state.registry.session(spec.session_id).is_some() {
        return track_here(state, spec).await;
    }
    match remote_home(state, spec.session_id).await {
        Ok(Some(home)) => ask(state, &home, &Rpc::TrackInvitation(spec))
            .await
            .unwrap_or(false),
        _ => false,
    }
}

async fn track_here(state: &AppState, spec: InvitationSpec) -> bool {
    let Some(session) = state.registry.session(spec.session_id) else {
        return false;
    };
    let actor = InvitationActor {
        id: spec.id,
        session_id: spec.session_id,
        inviter: spec.inviter,
        guest_name: spec.guest_name,
        permissions: spec.permissions.into_iter().collect(),
        policy_id: spec.policy_id,
        state: Invitation::new(spec.expires_at),
        store: state.store.clone(),
        registry: state.registry.clone(),
        session: session.clone(),
    }
    .spawn();
    let tracked = session
        .send(TrackInvitation {
            invitation_id: spec.id,
            inviter: spec.inviter,
            addr: actor.clone(),
        })
        .await
        .unwrap_or(false);
    if !tracked {
        // The inviter left (or the session ended) in the meantime: the link must not work.
        let _ = actor
            .send(Revoke {
                cause: RevokeCause::InviterLeft,
                audit: Vec::new(),
            })
            .await;
    }
    tracked
}

fn refusal_from_code(code: &str) -> Option<Refusal> {
    [Refusal::Used, Refusal::Expired, Refusal::Revoked]
        .into_iter()
        .find(|r| r.code() == code)
}

#[derive(Deserialize)]
struct Peeked {
    live: bool,
    refusal: Option<String>,
}

/// Why a pending invitation's live actor says it can no longer be used (None: usable, or no
/// live actor anywhere).
pub async fn peek_invitation(
    state: &AppState,
    invitation: InvitationId,
    session: SessionId,
) -> Option<Refusal> {
    if let Some(actor) = state.registry.invitation(invitation) {
        return actor.send(Peek).await.ok().flatten();
    }
    let Ok(Some(home)) = remote_home(state, session).await else {
        return None;
    };
    match ask::<Peeked>(state, &home, &Rpc::PeekInvitation { invitation }).await {
        Ok(p) if p.live => p.refusal.as_deref().and_then(refusal_from_code),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Revoked {
    live: bool,
    revoked: bool,
}

/// Withdraws a pending invitation through its live actor, wherever it runs: `Some(done)` when
/// an actor answered, None when there is none (the caller then settles it in the store).
pub async fn revoke_invitation(
    state: &AppState,
    invitation: InvitationId,
    session: SessionId,
    audit: Vec<AuditEntry>,
) -> Option<bool> {
    if let Some(actor) = state.registry.invitation(invitation) {
        return actor
            .send(Revoke {
                cause: RevokeCause::Deleted,
                audit,
            })
            .await
            .ok();
    }
    let Ok(Some(home)) = remote_home(state, session).await else {
        return None;
    };
    let audit = audit.into_iter().map(WireAudit::from).collect();
    match ask::<Revoked>(state, &home, &Rpc::RevokeInvitation { invitation, audit }).await {
        Ok(r) if r.live => Some(r.revoked),
        _ => None,
    }
}

/// Stores everything that happened in a session before now, wherever its report writer
/// runs (a report read on one node shows what the session's home relayed a moment ago).
pub async fn flush_report(state: &AppState, session: SessionId) {
    state.reports.flush_session(session).await;
    let Some(cluster) = &state.cluster else {
        return;
    };
    let home = match state.store.session_home(session).await {
        Ok(Some(home)) if home != cluster.node_id() => home,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(%session, error = %err, "session home not read");
            return;
        }
    };
    if let Err(err) = cluster
        .request::<serde_json::Value>(&home, &Rpc::FlushReport { session })
        .await
    {
        // A home that is gone flushed what it could; the report shows what is stored.
        tracing::info!(%session, %home, error = %err, "session home did not flush");
    }
}

/// This node's heartbeat in the database, and the sweep that ends the sessions of nodes that
/// died without a word (until another node takes such sessions over, they end as `failed`).
/// Split brain mended: a session this node runs that the store says is no longer open at
/// home here (another node claimed it, or ended it as `failed`, while this node was cut off
/// and taken for dead) is given up: its sockets get 1012 and reconnect to its one home.
async fn give_up_moved_sessions(state: &AppState, node: &str) {
    // The actors before the query: one that starts after it (a take-over claims the session
    // in the store first) is not judged by a stale answer.
    let running = state.registry.session_ids();
    if running.is_empty() {
        return;
    }
    let homed = match state.store.sessions_homed_at(node).await {
        Ok(ids) => ids.into_iter().collect::<std::collections::HashSet<_>>(),
        Err(err) => {
            tracing::warn!(error = %err, "sessions at home not read");
            return;
        }
    };
    for id in running.into_iter().filter(|id| !homed.contains(id)) {
        if let Some(addr) = state.registry.session(id) {
            tracing::warn!(session = %id, "the store says another node holds this session");
            metrics::counter!("broker_cluster_sessions_given_up_total").increment(1);
            addr.do_send(crate::actors::messages::GiveUp);
        }
    }
}

/// Of `unseen` (nodes whose heartbeat is late in the database), those that NATS says are gone
/// as well: a heartbeat late because a node's database writes stalled, or a clock that
/// jumped, is not a death. A node is taken for dead only when both are gone.
async fn also_gone_on_nats(cluster: &Cluster, unseen: Vec<String>) -> Vec<String> {
    let mut gone = Vec::new();
    for node in unseen {
        if cluster.reachable(&node).await {
            // Said once a minute per node, not on every sweep.
            if cluster.first_word_in_a_minute(&node) {
                tracing::warn!(%node, "a node's heartbeat is late but it answers on NATS: it stays");
            }
        } else {
            gone.push(node);
        }
    }
    gone
}

/// Ends, as `failed`, the open sessions of the other nodes not seen since `alive_since` and
/// gone from NATS.
pub async fn fail_sessions_of_dead_nodes(
    store: &crate::store::Store,
    cluster: &Cluster,
    alive_since: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    let unseen = store.unseen_homes(cluster.node_id(), alive_since).await?;
    let mut failed = 0;
    for home in also_gone_on_nats(cluster, unseen).await {
        failed += store.fail_sessions_of_dead_node(&home, alive_since).await?;
    }
    Ok(failed)
}

/// Forgets the agent connections of the other nodes not seen since `alive_since` and gone
/// from NATS: their devices show offline until their agents connect again.
pub async fn forget_agents_of_dead_nodes(
    store: &crate::store::Store,
    cluster: &Cluster,
    alive_since: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    let unseen = store
        .unseen_agent_nodes(cluster.node_id(), alive_since)
        .await?;
    let mut forgotten = 0;
    for node in also_gone_on_nats(cluster, unseen).await {
        forgotten += store.forget_agents_of(&node, Some(alive_since)).await?;
    }
    Ok(forgotten)
}

pub fn start_heartbeat(state: web::Data<AppState>) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    let dead_after = Duration::from_secs(state.settings.cluster.node_dead_after_secs.max(3));
    let weak = Arc::downgrade(&state.into_inner());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut beats: u64 = 0;
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            if state.draining() {
                return;
            }
            let now = Utc::now();
            if let Err(err) = state.store.node_seen(cluster.node_id(), now).await {
                tracing::warn!(error = %err, "node heartbeat not stored");
                continue;
            }
            give_up_moved_sessions(&state, cluster.node_id()).await;
            beats += 1;
            // Not before this node has been alive as long as a dead one stays unseen.
            if beats * 2 < dead_after.as_secs() {
                continue;
            }
            let since = now - chrono::Duration::from_std(dead_after).unwrap_or_default();
            match fail_sessions_of_dead_nodes(&state.store, &cluster, since).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    sessions = n,
                    "sessions of a node not seen for {}s ended as failed",
                    dead_after.as_secs()
                ),
                Err(err) => tracing::warn!(error = %err, "dead nodes' sessions not swept"),
            }
            if let Err(err) = forget_agents_of_dead_nodes(&state.store, &cluster, since).await {
                tracing::warn!(error = %err, "dead nodes' agents not forgotten");
            }
        }
    });
}
