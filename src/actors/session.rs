//! `SessionActor`: one per live session and the one place where its rules hold: who owns it,
//! who may send what to whom, who goes when an inviter leaves, and when it ends.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use bytestring::ByteString;
use chrono::Utc;
use metrics::{Counter, Gauge};

use super::{
    connection::{Outbound, Outlet, SendError},
    invitation::InvitationActor,
    messages::*,
    participant::ParticipantActor,
    protocol::{ClientFrame, ParticipantView, ServerFrame, Speaker},
    registry::Registry,
};
use crate::{
    domain::{
        ids::{InvitationId, MessageId, ParticipantId, SessionId, UserId},
        permissions::{Permission, PermissionSet},
        session::{
            self, EndReason, Kind, LeaveReason, Role, Route, check_transfer, close_code,
            permissions_of, receives,
        },
    },
    report::ReportSink,
    store::ReportEvent,
};

/// What every session actor shares: where reports go, the registry, timings and metrics.
pub struct SessionDeps {
    pub reports: ReportSink,
    pub registry: Arc<Registry>,
    pub reconnect_grace: Duration,
    /// The largest file a `file_offer` may announce (`ws.file_max_bytes`).
    pub file_max_bytes: u64,
    /// How long a guest waits in the lobby before it is sent away (4006).
    pub admission_timeout: Duration,
    /// Where recordings go (`<data_dir>/recordings`).
    pub recordings_dir: std::path::PathBuf,
    /// A session without any technician for this long ends (`no_technician`).
    pub empty_end: Duration,
    pub metrics: RelayMetrics,
    /// In a cluster: where chat is journaled before it is relayed.
    pub journal: Option<crate::chat_journal::ChatJournal>,
}

/// Metric handles resolved once, so the relay path does no lookups.
pub struct RelayMetrics {
    pub chat: Counter,
    pub screen: Counter,
    pub input: Counter,
    pub file: Counter,
    pub dropped_forbidden: Counter,
    pub dropped_too_slow: Counter,
    pub technicians: Gauge,
    pub guests: Gauge,
    pub customers: Gauge,
}

impl RelayMetrics {
    pub fn register() -> Self {
        let relayed =
            |kind: &'static str| metrics::counter!("broker_frames_relayed_total", "kind" => kind);
        let dropped = |reason: &'static str| metrics::counter!("broker_frames_dropped_total", "reason" => reason);
        let role = |role: &'static str| metrics::gauge!("broker_participants", "role" => role);
        Self {
            chat: relayed("chat"),
            screen: relayed("screen"),
            input: relayed("input"),
            file: relayed("file"),
            dropped_forbidden: dropped("forbidden"),
            dropped_too_slow: dropped("too_slow"),
            technicians: role("technician"),
            guests: role("guest"),
            customers: role("customer"),
        }
    }

    fn gauge(&self, kind: Kind) -> &Gauge {
        match kind {
            Kind::Technician => &self.technicians,
            Kind::Guest => &self.guests,
            Kind::Customer => &self.customers,
        }
    }
}

struct Conn {
    outlet: Outlet,
    addr: Addr<ParticipantActor>,
    /// A technician's credential (see `Joiner::Technician`).
    credential: Option<std::sync::Arc<str>>,
}

struct Member {
    id: ParticipantId,
    user_id: Option<UserId>,
    name: String,
    kind: Kind,
    perms: PermissionSet,
    invited_by: Option<ParticipantId>,
    /// Join order: the technician with the lowest is the one present longest.
    seq: u64,
    /// `None` while a technician is away within its reconnect grace.
    conn: Option<Conn>,
    grace: Option<SpawnHandle>,
}

pub struct SessionActor {
    id: SessionId,
    owner_user: UserId,
    owner: Option<ParticipantId>,
    members: HashMap<ParticipantId, Member>,
    next_seq: u64,
    chat_seq: i64,
    ownership_seq: i64,
    invitations: HashMap<InvitationId, (ParticipantId, Addr<InvitationActor>)>,
    /// Participants whose queue overflowed while relaying; dropped once the handler is done.
    too_slow: Vec<ParticipantId>,
    ended: bool,
    /// Since when no technician is in the session (connected or within its grace).
    empty_since: Option<std::time::Instant>,
    /// What this session put into the registry's credential and user indexes.
    indexed: (Vec<UserId>, Vec<Arc<str>>),
    /// Files announced with `file_offer` and not yet complete: their sender and the bytes
    /// still to come (chunks beyond the announced size are refused).
    transfers: HashMap<uuid::Uuid, (ParticipantId, u64)>,
    /// The last chat frames, replayed after the welcome to technicians and the customer (a
    /// second tab, a reconnect, a page reload); never to guests, who see only what was said
    /// while they are in.
    recent_chat: std::collections::VecDeque<ByteString>,
    /// The account's rule for the lobby, and whether it is on in this session now.
    admission: session::Admission,
    admission_required: bool,
    /// Guests in the lobby: connected, never members, sent nothing of the session.
    waiting: HashMap<ParticipantId, Waiting>,
    /// Set when the account records sessions: everyone is told in `welcome`.
    recorder: Option<crate::recording::Recorder>,
    /// Guests' addresses proven by a code (for the recording's "who").
    verified_emails: HashMap<ParticipantId, String>,
    /// Guests' resume keys until their `welcome` carries them (a guest in the lobby gets its
    /// welcome when admitted).
    resume_keys: HashMap<ParticipantId, String>,
    /// Technicians whose places a take-over keeps (their reconnect grace starts with the
    /// actor).
    held: Vec<ParticipantId>,
    deps: Arc<SessionDeps>,
}

/// A guest in the lobby.
struct Waiting {
    /// None while its connection dropped: its place in the lobby is kept for the reconnect
    /// grace (`away`), and it comes back with its resume key.
    conn: Option<Conn>,
    away: Option<SpawnHandle>,
    name: String,
    perms: PermissionSet,
    invited_by: ParticipantId,
    invitation_id: InvitationId,
    policy_name: String,
    verified_email: Option<String>,
    timer: SpawnHandle,
}

/// Chat messages a joining technician or customer gets replayed.
const RECENT_CHAT: usize = 100;

/// Announced transfers one session keeps track of at once; an offer beyond that is refused
/// (`too_many_transfers`) until one completes or its sender leaves.
const MAX_OPEN_TRANSFERS: usize = 64;
/// A file chunk: the channel byte, then the transfer id, then data.
const FILE_CHUNK_HEADER: usize = 1 + 16;

impl SessionActor {
    /// A session's actor as it is before anyone joins; starts its recording when `record`.
    fn new(
        id: SessionId,
        owner_user: UserId,
        admission: session::Admission,
        record: Option<chrono::DateTime<Utc>>,
        deps: Arc<SessionDeps>,
    ) -> Self {
        let recorder = if let Some(began) = record {
            // On a take-over this appends to the session's recording when the recordings
            // directory is shared.
            crate::recording::Recorder::start(&deps.recordings_dir, id, began)
                .inspect_err(
                    |err| tracing::error!(session = %id, error = %err, "recording could not start"),
                )
                .ok()
        } else {
            None
        };
        SessionActor {
            id,
            owner_user,
            owner: None,
            members: HashMap::new(),
            next_seq: 0,
            chat_seq: 0,
            ownership_seq: 0,
            invitations: HashMap::new(),
            too_slow: Vec::new(),
            ended: false,
            empty_since: Some(std::time::Instant::now()),
            indexed: (Vec::new(), Vec::new()),
            transfers: HashMap::new(),
            recent_chat: std::collections::VecDeque::new(),
            admission,
            admission_required: admission.starts_on(),
            waiting: HashMap::new(),
            recorder,
            verified_emails: HashMap::new(),
            resume_keys: HashMap::new(),
            held: Vec::new(),
            deps,
        }
    }

    /// Starts the actor for a session just created and registers it at once.
    pub fn spawn(
        id: SessionId,
        owner_user: UserId,
        admission: session::Admission,
        record: bool,
        deps: Arc<SessionDeps>,
    ) -> Addr<Self> {
        let registry = deps.registry.clone();
        let addr = Self::new(id, owner_user, admission, record.then(Utc::now), deps).start();
        registry.insert_session(id, addr.clone());
        addr
    }

    /// Starts the actor of a session this node took over from a node that is gone (see
    /// `Store::claim_session`): the technicians who were in it keep their places, their
    /// ownership and their participant ids for the reconnect grace, as if their connections
    /// had just dropped; chat and ownership numbering go on from what is stored.
    ///
    /// `journaled` is the chat the chat journal holds past what the store has (the last
    /// chunk a killed home never wrote): it goes into the report and the replay first.
    pub fn recover(
        id: SessionId,
        recovery: crate::store::Recovery,
        journaled: Vec<crate::store::ChatLine>,
        admission: session::Admission,
        record: Option<chrono::DateTime<Utc>>,
        deps: Arc<SessionDeps>,
    ) -> Addr<Self> {
        let registry = deps.registry.clone();
        let mut actor = Self::new(id, recovery.owner_user, admission, record, deps);
        actor.owner = recovery.owner;
        for (seq, (pid, user, name)) in recovery.technicians.into_iter().enumerate() {
            actor.deps.metrics.gauge(Kind::Technician).increment(1.0);
            actor.held.push(pid);
            actor.members.insert(
                pid,
                Member {
                    id: pid,
                    user_id: Some(user),
                    name,
                    kind: Kind::Technician,
                    perms: PermissionSet::ALL,
                    invited_by: None,
                    seq: seq as u64 + 1,
                    conn: None,
                    grace: None,
                },
            );
        }
        let technicians = actor.members.len() as u64;
        for (seq, guest) in recovery.guests.into_iter().enumerate() {
            actor.deps.metrics.gauge(Kind::Guest).increment(1.0);
            actor.held.push(guest.id);
            actor.members.insert(
                guest.id,
                Member {
                    id: guest.id,
                    user_id: None,
                    name: guest.name,
                    kind: Kind::Guest,
                    perms: guest.permissions,
                    invited_by: Some(guest.inviter),
                    seq: technicians + seq as u64 + 1,
                    conn: None,
                    grace: None,
                },
            );
        }
        // The owner's switch of the lobby goes on, as far as the account's rule allows it.
        if let Some(required) = recovery
            .admission_required
            .filter(|r| admission.owner_may_set(*r))
        {
            actor.admission_required = required;
        }
        for w in recovery.waiting {
            // Its timers start with the actor (`started`): it waits anew, away until back.
            actor.held.push(w.id);
            let inv = w.invitation;
            actor.waiting.insert(
                w.id,
                Waiting {
                    conn: None,
                    away: None,
                    name: inv.guest_name,
                    perms: inv.permissions,
                    invited_by: inv.inviter_participant_id,
                    invitation_id: inv.id,
                    policy_name: inv.policy_name,
                    verified_email: inv.verified_email,
                    timer: SpawnHandle::default(),
                },
            );
        }
        actor.next_seq = actor.members.len() as u64;
        actor.chat_seq = recovery.chat_seq;
        actor.ownership_seq = recovery.ownership_seq;
        if !journaled.is_empty() {
            tracing::warn!(session = %id, messages = journaled.len(), "chat the lost home had not stored, taken from the journal");
        }
        for line in journaled {
            actor.chat_seq = actor.chat_seq.max(line.seq);
            actor.record(ReportEvent::Chat {
                session: id,
                seq: line.seq,
                frame: line.frame.clone(),
            });
            actor.remember_chat(line.frame);
        }
        let addr = actor.start();
        registry.insert_session(id, addr.clone());
        tracing::info!(session = %id, "session taken over from a node that is gone");
        addr
    }

    fn role_of(&self, m: &Member) -> Role {
        Role::of(m.kind, self.owner == Some(m.id))
    }

    fn view(&self, m: &Member) -> ParticipantView {
        ParticipantView {
            id: m.id.0,
            user_id: m.user_id.map(|u| u.0),
            name: m.name.clone(),
            role: self.role_of(m),
            away: m.conn.is_none(),
        }
    }

    /// The owner's participant id while it is connected.
    fn connected_owner(&self) -> Option<ParticipantId> {
        self.owner
            .filter(|o| self.members.get(o).is_some_and(|m| m.conn.is_some()))
    }

    /// Queues a frame for one participant; an overflowing queue marks it too slow.
    fn send_to(&mut self, pid: ParticipantId, frame: Outbound) {
        let Some(conn) = self.members.get(&pid).and_then(|m| m.conn.as_ref()) else {
            return;
        };
        if conn.outlet.send(frame) == Err(SendError::Full) {
            self.too_slow.push(pid);
        }
    }

    fn send_error(&mut self, pid: ParticipantId, code: &str, message: &str) {
        let text = ServerFrame::Error { code, message }.encode();
        self.send_to(pid, Outbound::Text(text));
    }

    /// Sends a text frame to every connected participant but `except`.
    fn broadcast(&mut self, text: &ByteString, except: Option<ParticipantId>) {
        for m in self.members.values() {
            if Some(m.id) == except {
                continue;
            }
            if let Some(conn) = &m.conn
                && conn.outlet.send(Outbound::Text(text.clone())) == Err(SendError::Full)
            {
                self.too_slow.push(m.id);
            }
        }
    }

    /// Drops every participant found too slow during the last handler (close 4008).
    fn settle(&mut self, ctx: &mut Context<Self>) {
        while let Some(pid) = self.too_slow.pop() {
            if let Some(conn) = self.members.get(&pid).and_then(|m| m.conn.as_ref()) {
                tracing::info!(session = %self.id, participant = %pid, "client too slow; closing with 4008");
                self.deps.metrics.dropped_too_slow.increment(1);
                conn.outlet.force_close(close_code::TOO_SLOW);
                conn.addr.do_send(Evicted);
                self.remove_member(pid, LeaveReason::TooSlow, ctx);
            }
        }
    }

    fn record(&self, event: ReportEvent) {
        self.deps.reports.record(event);
    }

    fn welcome(&mut self, pid: ParticipantId) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        let mut participants: Vec<(u64, ParticipantView)> = self
            .members
            .values()
            .map(|p| (p.seq, self.view(p)))
            .collect();
        participants.sort_by_key(|(seq, _)| *seq);
        let text = ServerFrame::Welcome {
            participant_id: pid.0,
            session_id: self.id.0,
            role: self.role_of(m),
            permissions: m.perms,
            owner_id: self.connected_owner().map(|o| o.0),
            participants: participants.into_iter().map(|(_, v)| v).collect(),
            file_max_bytes: self.deps.file_max_bytes,
            reconnect_grace_secs: self.deps.reconnect_grace.as_secs(),
            guest_admission_required: self.admission_required,
            guest_admission: self.admission.as_str(),
            recording: self.recorder.is_some(),
            resume_key: self.resume_keys.remove(&pid),
        }
        .encode();
        let replay = m.kind != Kind::Guest;
        self.send_to(pid, Outbound::Text(text));
        if replay {
            let replay: Vec<ByteString> = self.recent_chat.iter().cloned().collect();
            for frame in replay {
                self.send_to(pid, Outbound::Text(frame));
            }
        }
    }

    /// A technician or guest who is away keeps its place for the reconnect grace; still away
    /// then, it leaves as `disconnected`.
    fn start_grace(&mut self, pid: ParticipantId, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(self.deps.reconnect_grace, move |act, ctx| {
            if act.members.get(&pid).is_some_and(|m| m.conn.is_none()) {
                tracing::info!(session = %act.id, participant = %pid, "reconnect grace over");
                act.remove_member(pid, LeaveReason::Disconnected, ctx);
                act.settle(ctx);
            }
        });
        if let Some(m) = self.members.get_mut(&pid) {
            m.grace = Some(handle);
        }
    }

    /// Closes one participant's socket with `code` and tells its actor; the caller removes it.
    fn evict(&self, pid: ParticipantId, code: u16, reason: &'static str) {
        if let Some(conn) = self.members.get(&pid).and_then(|m| m.conn.as_ref()) {
            conn.outlet.close(code, reason);
            conn.addr.do_send(Evicted);
        }
    }

    /// Takes a participant out of the session and applies what follows from it: its guests go
    /// (4001), its pending invitations are revoked, ownership passes on, and with no
    /// technician left the session ends.
    fn remove_member(&mut self, pid: ParticipantId, reason: LeaveReason, ctx: &mut Context<Self>) {
        let Some(m) = self.members.remove(&pid) else {
            return;
        };
        if let Some(handle) = m.grace {
            ctx.cancel_future(handle);
        }
        self.deps.metrics.gauge(m.kind).decrement(1.0);
        self.transfers.retain(|_, (sender, _)| *sender != pid);
        self.record_event(serde_json::json!({"event": "left", "participant": pid.0,
            "name": m.name, "reason": reason.as_str()}));
        self.record(ReportEvent::Left {
            participant: pid,
            reason: reason.as_str(),
            at: Utc::now(),
        });
        let text = ServerFrame::ParticipantLeft {
            participant_id: pid.0,
            reason: reason.as_str(),
        }
        .encode();
        self.broadcast(&text, None);
        if m.kind != Kind::Technician || self.ended {
            return;
        }

        let guests: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|g| g.invited_by == Some(pid))
            .map(|g| g.id)
            .collect();
        for guest in guests {
            self.evict(guest, close_code::INVITER_LEFT, "inviter_left");
            self.remove_member(guest, LeaveReason::InviterLeft, ctx);
        }
        let waiting: Vec<ParticipantId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.invited_by == pid)
            .map(|(id, _)| *id)
            .collect();
        for guest in waiting {
            self.decide(guest, "inviter_left", None, ctx);
        }
        let pending: Vec<InvitationId> = self
            .invitations
            .iter()
            .filter(|(_, (inviter, _))| *inviter == pid)
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            if let Some((_, addr)) = self.invitations.remove(&id) {
                addr.do_send(Revoke {
                    cause: RevokeCause::InviterLeft,
                    audit: Vec::new(),
                });
            }
        }

        let technicians = self.members.values().filter(|t| t.kind == Kind::Technician);
        let next = session::successor(technicians.map(|t| (t.id, t.seq)));
        match next {
            None => self.end(EndReason::NoTechnician, ctx),
            Some(next) if self.owner == Some(pid) => self.set_owner(Some(pid), next),
            Some(_) => {}
        }
    }

    fn set_owner(&mut self, from: Option<ParticipantId>, to: ParticipantId) {
        let Some(user) = self.members.get(&to).and_then(|m| m.user_id) else {
            return;
        };
        self.owner = Some(to);
        self.owner_user = user;
        self.ownership_seq += 1;
        let at = Utc::now();
        self.record(ReportEvent::OwnerChanged {
            session: self.id,
            seq: self.ownership_seq,
            from,
            to,
            owner_user_id: user,
            at,
        });
        if let Some(from) = from.filter(|f| self.members.contains_key(f)) {
            self.record(ReportEvent::RoleChanged {
                participant: from,
                role: Role::Technician.as_str(),
            });
        }
        self.record(ReportEvent::RoleChanged {
            participant: to,
            role: Role::Owner.as_str(),
        });
        let text = ServerFrame::OwnerChanged {
            owner_id: self.connected_owner().map(|o| o.0),
        }
        .encode();
        self.broadcast(&text, None);
    }

    /// Ends the session for everyone: `session_ended`, then close (1001 on shutdown, else 4002).
    fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.ended {
            return;
        }
        self.ended = true;
        tracing::info!(session = %self.id, reason = reason.as_str(), "session ended");
        self.record_event(serde_json::json!({"event": "ended", "reason": reason.as_str()}));
        let text = ServerFrame::SessionEnded {
            reason: reason.as_str(),
        }
        .encode();
        let (code, leave) = match reason {
            EndReason::Shutdown => (close_code::GOING_AWAY, LeaveReason::Shutdown),
            _ => (close_code::SESSION_ENDED, LeaveReason::SessionEnded),
        };
        let at = Utc::now();
        let waiting: Vec<ParticipantId> = self.waiting.keys().copied().collect();
        for guest in waiting {
            self.decide(guest, "session_ended", None, ctx);
        }
        let mut members: Vec<Member> = self.members.drain().map(|(_, m)| m).collect();
        members.sort_by_key(|m| m.seq);
        for m in members {
            if let Some(conn) = &m.conn {
                let _ = conn.outlet.text(text.clone());
                conn.outlet.close(code, reason.as_str());
                conn.addr.do_send(Evicted);
            }
            self.deps.metrics.gauge(m.kind).decrement(1.0);
            self.record(ReportEvent::Left {
                participant: m.id,
                reason: leave.as_str(),
                at,
            });
        }
        for (_, (_, addr)) in self.invitations.drain() {
            addr.do_send(Revoke {
                cause: RevokeCause::SessionEnded,
                audit: Vec::new(),
            });
        }
        self.record(ReportEvent::Ended {
            session: self.id,
            reason: reason.as_str(),
            at,
        });
        self.deps.registry.remove_session(self.id);
        self.deps
            .registry
            .unindex_session(self.id, &self.indexed.0, &self.indexed.1);
        ctx.stop();
    }

    fn on_chat(&mut self, pid: ParticipantId, text: String, ctx: &mut Context<Self>) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if !m.perms.contains(Permission::Chat) {
            self.deps.metrics.dropped_forbidden.increment(1);
            self.send_error(pid, "forbidden", "your policy does not allow chat");
            return;
        }
        #[cfg(feature = "test-hooks")]
        if text == crate::TEST_PANIC_TEXT {
            panic!("session actor panic requested by a test");
        }
        let id = MessageId::new();
        let at = Utc::now();
        let role = self.role_of(m);
        let frame = ServerFrame::Chat {
            id: id.0,
            from: Speaker {
                id: pid.0,
                name: &m.name,
                role,
            },
            text: &text,
            at,
        }
        .encode();
        self.chat_seq += 1;
        let seq = self.chat_seq;
        // In a cluster the message is journaled first (JetStream): a home killed before its
        // report writer stored the chunk loses nothing anyone saw (src/chat_journal.rs).
        if let Some(journal) = &self.deps.journal {
            let addr = ctx.address();
            let session = self.id;
            journal.append(crate::chat_journal::Entry {
                session,
                seq,
                frame: frame.clone(),
                done: Box::new(move |stored| {
                    addr.do_send(ChatJournaled {
                        from: pid,
                        seq,
                        frame,
                        stored,
                    })
                }),
            });
            return;
        }
        self.relay_chat(seq, frame);
    }

    /// Relays a chat message (numbered, and journaled in a cluster) and keeps it.
    fn relay_chat(&mut self, seq: i64, frame: ByteString) {
        self.record(ReportEvent::Chat {
            session: self.id,
            seq,
            frame: frame.clone(),
        });
        let receivers = self.members.values().filter(|m| m.conn.is_some()).count();
        self.deps.metrics.chat.increment(receivers as u64);
        self.broadcast(&frame, None);
        if let Some(r) = &self.recorder {
            r.keep(crate::recording::Kind::Chat, frame.to_string());
        }
        self.remember_chat(frame);
    }

    fn remember_chat(&mut self, frame: ByteString) {
        if self.recent_chat.len() == RECENT_CHAT {
            self.recent_chat.pop_front();
        }
        self.recent_chat.push_back(frame);
    }

    /// `remove_guest`: the owner takes a guest out (4004, reason `removed`, in the report).
    fn on_remove_guest(&mut self, pid: ParticipantId, target: uuid::Uuid, ctx: &mut Context<Self>) {
        let target = ParticipantId(target);
        let kind = self.members.get(&target).map(|m| m.kind);
        match session::check_remove(self.owner == Some(pid), kind) {
            Ok(()) => {
                tracing::info!(session = %self.id, participant = %target, by = %pid, "guest removed by the owner");
                self.evict(target, close_code::REMOVED, "removed");
                self.remove_member(target, LeaveReason::Removed, ctx);
            }
            Err(refusal) => {
                let message = match refusal {
                    session::RemoveRefusal::NotOwner => "only the owner can remove a guest",
                    session::RemoveRefusal::UnknownParticipant => "no such participant",
                    session::RemoveRefusal::NotAGuest => "only guests can be removed",
                };
                self.send_error(pid, refusal.code(), message);
            }
        }
    }

    /// `file_offer`: checks the sender, name and size, records the transfer in the report
    /// and tells the receivers (those the file channel routes to) what is coming.
    fn on_file_offer(&mut self, pid: ParticipantId, transfer: uuid::Uuid, name: String, size: u64) {
        let Some(m) = self.members.get(&pid) else {
            return;
        };
        if let Err(refusal) =
            session::check_file_offer(m.kind, m.perms, &name, size, self.deps.file_max_bytes)
        {
            let message = match refusal {
                session::OfferRefusal::Forbidden => "you may not send files".to_string(),
                session::OfferRefusal::TooLarge => {
                    format!("files may be at most {} bytes", self.deps.file_max_bytes)
                }
                session::OfferRefusal::Invalid => {
                    "a file needs a name (1 to 255 characters, no path) and at least one byte"
                        .to_string()
                }
            };
            if refusal == session::OfferRefusal::Forbidden {
                self.deps.metrics.dropped_forbidden.increment(1);
            }
            self.send_error(pid, refusal.code(), &message);
            return;
        }
        if self.transfers.contains_key(&transfer) {
            self.send_error(pid, "invalid_frame", "this transfer id is in use");
            return;
        }
        if self.transfers.len() >= MAX_OPEN_TRANSFERS {
            self.send_error(
                pid,
                "too_many_transfers",
                "too many files on their way in this session; wait for one to finish",
            );
            return;
        }
        let at = Utc::now();
        let role = self.role_of(m);
        let route = session::route(m.kind, m.perms, session::Channel::File);
        let frame = ServerFrame::FileOffer {
            transfer_id: transfer,
            from: Speaker {
                id: pid.0,
                name: &m.name,
                role,
            },
            name: &name,
            size,
            at,
        }
        .encode();
        self.record(ReportEvent::FileOffered {
            session: self.id,
            transfer,
            participant: pid,
            name: name.clone(),
            size,
            at,
        });
        self.transfers.insert(transfer, (pid, size));
        if let Some(r) = &self.recorder {
            r.keep(crate::recording::Kind::FileOffer, frame.to_string());
        }
        let receivers: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|r| {
                r.id != pid
                    && match route {
                        Route::ToHolders(needed) => receives(r.kind, r.perms, needed),
                        Route::ToCustomer => r.kind == Kind::Customer,
                        Route::Forbidden => false,
                    }
            })
            .map(|r| r.id)
            .collect();
        for r in receivers {
            self.send_to(r, Outbound::Text(frame.clone()));
        }
    }

    /// A chunk of an announced file must come from its sender and stay within its size;
    /// `Err` names the refusal. Frames naming no announced transfer pass unchanged.
    fn check_file_chunk(&mut self, pid: ParticipantId, data: &[u8]) -> Result<(), &'static str> {
        let Some(id) = data
            .get(1..FILE_CHUNK_HEADER)
            .and_then(|b| uuid::Uuid::from_slice(b).ok())
        else {
            return Ok(());
        };
        let Some((sender, remaining)) = self.transfers.get_mut(&id) else {
            return Ok(());
        };
        if *sender != pid {
            return Err("forbidden");
        }
        let len = (data.len() - FILE_CHUNK_HEADER) as u64;
        if len > *remaining {
            return Err("file_too_large");
        }
        *remaining -= len;
        if *remaining == 0 {
            self.transfers.remove(&id);
        }
        Ok(())
    }

    /// An event in the recording (who joined, left, the end), if the session records.
    fn record_event(&self, event: serde_json::Value) {
        if let Some(r) = &self.recorder {
            r.keep(crate::recording::Kind::Event, event.to_string());
        }
    }

    /// Puts a guest in the lobby: it hears only that it waits; the customer (who decides) and
    /// the technicians hear who asks, invited by whom, with which policy.
    fn seat_in_lobby(&mut self, pid: ParticipantId, mut w: Waiting, ctx: &mut Context<Self>) {
        let timeout = self.deps.admission_timeout;
        w.timer = ctx.run_later(timeout, move |act, ctx| {
            act.decide(pid, "timed_out", None, ctx);
        });
        self.record(ReportEvent::AdmissionAsked {
            session: self.id,
            guest: pid,
            invitation: w.invitation_id,
            name: w.name.clone(),
            at: Utc::now(),
        });
        tracing::info!(session = %self.id, guest = %pid, "guest waits for admission");
        self.waiting.insert(pid, w);
        let key = self.resume_keys.get(&pid).cloned();
        self.tell_lobby(pid, key);
        self.announce_waiting(pid, None);
    }

    /// Tells a waiting guest that it waits (again, after it came back), and how to come back.
    fn tell_lobby(&mut self, pid: ParticipantId, resume_key: Option<String>) {
        let Some(conn) = self.waiting.get(&pid).and_then(|w| w.conn.as_ref()) else {
            return;
        };
        let lobby = ServerFrame::Lobby {
            session_id: self.id.0,
            timeout_secs: self.deps.admission_timeout.as_secs(),
            participant_id: pid.0,
            reconnect_grace_secs: self.deps.reconnect_grace.as_secs(),
            resume_key,
        }
        .encode();
        if conn.outlet.send(Outbound::Text(lobby)).is_err() {
            conn.outlet.force_close(close_code::TOO_SLOW);
        }
    }

    /// A waiting guest whose connection dropped keeps its place in the lobby for the
    /// reconnect grace; still away then, it has withdrawn.
    fn start_lobby_grace(&mut self, pid: ParticipantId, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(self.deps.reconnect_grace, move |act, ctx| {
            if act.waiting.get(&pid).is_some_and(|w| w.conn.is_none()) {
                tracing::info!(session = %act.id, guest = %pid, "waiting guest did not come back");
                act.decide(pid, "withdrawn", None, ctx);
            }
        });
        if let Some(old) = self
            .waiting
            .get_mut(&pid)
            .and_then(|w| w.away.replace(handle))
        {
            ctx.cancel_future(old);
        }
    }

    /// Sends one waiting guest's request to the customer and the technicians (all of them, or
    /// only `to`).
    fn announce_waiting(&mut self, pid: ParticipantId, to: Option<ParticipantId>) {
        let Some(w) = self.waiting.get(&pid) else {
            return;
        };
        let inviter_name = self
            .members
            .get(&w.invited_by)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let inviter_role = self
            .members
            .get(&w.invited_by)
            .map_or(Role::Technician, |m| self.role_of(m));
        let frame = ServerFrame::AdmissionRequest {
            participant_id: pid.0,
            name: &w.name,
            invited_by: Speaker {
                id: w.invited_by.0,
                name: &inviter_name,
                role: inviter_role,
            },
            policy: &w.policy_name,
            permissions: w.perms,
            verified_email: w.verified_email.as_deref(),
            away: w.conn.is_none(),
        }
        .encode();
        let receivers: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|m| to.is_none_or(|t| t == m.id))
            .filter(|m| m.kind != Kind::Guest)
            .map(|m| m.id)
            .collect();
        for r in receivers {
            self.send_to(r, Outbound::Text(frame.clone()));
        }
    }

    /// Ends a wait: `admitted` lets the guest in; anything else closes it without a frame of
    /// the session (refused 4005, timed out 4006, inviter left 4001, session ended 4002).
    fn decide(
        &mut self,
        pid: ParticipantId,
        decision: &'static str,
        by: Option<ParticipantId>,
        ctx: &mut Context<Self>,
    ) {
        // Admitted while its connection is down: nothing to admit into (the customer is told
        // so in `on_admission`; it decides again once the guest is back).
        if decision == "admitted" && self.waiting.get(&pid).is_some_and(|w| w.conn.is_none()) {
            return;
        }
        let Some(w) = self.waiting.remove(&pid) else {
            return;
        };
        ctx.cancel_future(w.timer);
        if let Some(away) = w.away {
            ctx.cancel_future(away);
        }
        if decision != "admitted" {
            // Never let in: its key is for nothing (and no place is ever held for it).
            self.resume_keys.remove(&pid);
        }
        self.record(ReportEvent::AdmissionDecided {
            guest: pid,
            decision,
            by,
            at: Utc::now(),
        });
        tracing::info!(session = %self.id, guest = %pid, decision, "admission decided");
        let told = ServerFrame::AdmissionDecided {
            participant_id: pid.0,
            decision,
        }
        .encode();
        self.broadcast_non_guests(&told);
        if decision == "admitted" {
            if let Some(conn) = w.conn {
                self.admit(
                    pid,
                    None,
                    w.name,
                    Kind::Guest,
                    w.perms,
                    Some(w.invited_by),
                    conn,
                    ctx,
                );
            }
            return;
        }
        let code = match decision {
            "refused" => close_code::ADMISSION_REFUSED,
            "timed_out" => close_code::ADMISSION_TIMEOUT,
            "inviter_left" => close_code::INVITER_LEFT,
            "withdrawn" => return,
            _ => close_code::SESSION_ENDED,
        };
        if let Some(conn) = w.conn {
            conn.outlet.close(code, decision);
            conn.addr.do_send(Evicted);
        }
    }

    fn broadcast_non_guests(&mut self, text: &ByteString) {
        let to: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|m| m.kind != Kind::Guest)
            .map(|m| m.id)
            .collect();
        for pid in to {
            self.send_to(pid, Outbound::Text(text.clone()));
        }
    }

    /// `admit` / `refuse`: the customer decides on a waiting guest.
    fn on_admission(
        &mut self,
        pid: ParticipantId,
        guest: uuid::Uuid,
        admit: bool,
        ctx: &mut Context<Self>,
    ) {
        let is_customer = self
            .members
            .get(&pid)
            .is_some_and(|m| m.kind == Kind::Customer);
        if !is_customer {
            self.send_error(
                pid,
                "forbidden",
                "only the customer admits or refuses a guest",
            );
            return;
        }
        let guest = ParticipantId(guest);
        let Some(waiting) = self.waiting.get(&guest) else {
            self.send_error(pid, "unknown_participant", "no such guest is waiting");
            return;
        };
        if admit && waiting.conn.is_none() {
            self.send_error(
                pid,
                "guest_away",
                "this guest's connection dropped: admit it once it is back",
            );
            return;
        }
        self.decide(
            guest,
            if admit { "admitted" } else { "refused" },
            Some(pid),
            ctx,
        );
    }

    /// `guest_admission`: the owner switches the lobby, within the account's setting.
    fn on_guest_admission(&mut self, pid: ParticipantId, required: bool) {
        if self.owner != Some(pid) {
            self.send_error(pid, "not_owner", "only the owner switches the lobby");
            return;
        }
        if !self.admission.owner_may_set(required) {
            self.send_error(
                pid,
                "forbidden",
                "the account's setting decides this: ask an administrator",
            );
            return;
        }
        self.admission_required = required;
        self.record(ReportEvent::AdmissionSwitched {
            session: self.id,
            required,
            by: pid,
            at: Utc::now(),
        });
        let text = ServerFrame::GuestAdmission { required }.encode();
        self.broadcast_non_guests(&text);
    }

    fn on_transfer(&mut self, pid: ParticipantId, to: uuid::Uuid) {
        let to = ParticipantId(to);
        let target = self
            .members
            .get(&to)
            .filter(|m| m.conn.is_some())
            .map(|m| m.kind);
        match check_transfer(self.owner == Some(pid), pid == to, target) {
            Ok(()) => self.set_owner(Some(pid), to),
            Err(refusal) => {
                let message = match refusal {
                    session::TransferRefusal::NotOwner => {
                        "only the owner can hand over the session"
                    }
                    session::TransferRefusal::GuestCannotOwn => "a guest cannot own the session",
                    session::TransferRefusal::CustomerCannotOwn => {
                        "the customer cannot own the session"
                    }
                    session::TransferRefusal::UnknownParticipant => {
                        "no such participant is connected"
                    }
                    session::TransferRefusal::AlreadyOwner => "you own the session already",
                };
                self.send_error(pid, refusal.code(), message);
            }
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(session = %self.id, "session actor started");
        // Taken over: each technician and guest who was in gets its reconnect grace from now,
        // and each guest who was waiting in the lobby waits anew, away until it is back.
        for pid in std::mem::take(&mut self.held) {
            if self.waiting.contains_key(&pid) {
                let timer = ctx.run_later(self.deps.admission_timeout, move |act, ctx| {
                    act.decide(pid, "timed_out", None, ctx);
                });
                if let Some(w) = self.waiting.get_mut(&pid) {
                    w.timer = timer;
                }
                self.start_lobby_grace(pid, ctx);
            } else {
                self.start_grace(pid, ctx);
            }
        }
        // A session nobody joins, or everyone left without ending, does not live forever.
        let tick =
            (self.deps.empty_end / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        ctx.run_interval(tick, |act, ctx| {
            let has_technician = act.members.values().any(|m| m.kind == Kind::Technician);
            if has_technician {
                act.empty_since = None;
                return;
            }
            let since = *act.empty_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= act.deps.empty_end {
                tracing::info!(session = %act.id, "no technician for too long; ending");
                act.end(EndReason::NoTechnician, ctx);
            }
        });
    }
}

/// The drop guard: a session actor that dies without ending (a panic) closes its sockets with
/// 1011, leaves the registry and records the failure, while other sessions run on.
impl Drop for SessionActor {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        tracing::error!(session = %self.id, "session actor died; closing its connections with 1011");
        let at = Utc::now();
        for m in self.members.values() {
            if let Some(conn) = &m.conn {
                conn.outlet
                    .close(close_code::INTERNAL_ERROR, "session_failed");
                conn.addr.do_send(Evicted);
            }
            self.deps.metrics.gauge(m.kind).decrement(1.0);
            self.deps.reports.record(ReportEvent::Left {
                participant: m.id,
                reason: LeaveReason::SessionEnded.as_str(),
                at,
            });
        }
        for (_, (_, addr)) in self.invitations.drain() {
            addr.do_send(Revoke {
                cause: RevokeCause::SessionEnded,
                audit: Vec::new(),
            });
        }
        self.deps.reports.record(ReportEvent::Ended {
            session: self.id,
            reason: EndReason::Failed.as_str(),
            at,
        });
        self.deps.registry.remove_session(self.id);
        self.deps
            .registry
            .unindex_session(self.id, &self.indexed.0, &self.indexed.1);
    }
}

impl Handler<Join> for SessionActor {
    type Result = Result<ParticipantId, JoinRefusal>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.ended {
            return Err(JoinRefusal::SessionEnded);
        }
        let credential = match &msg.joiner {
            Joiner::Technician {
                credential,
                user_id,
                ..
            } => {
                // Findable by its credential and its user (logout, key deletion, rights).
                self.deps
                    .registry
                    .index_connection(self.id, *user_id, credential);
                if !self.indexed.1.contains(credential) {
                    self.indexed.1.push(credential.clone());
                }
                if !self.indexed.0.contains(user_id) {
                    self.indexed.0.push(*user_id);
                }
                Some(credential.clone())
            }
            _ => None,
        };
        let conn = Conn {
            outlet: msg.outlet,
            addr: msg.addr,
            credential,
        };
        let (user_id, name, kind, perms, invited_by) = match msg.joiner {
            Joiner::Technician {
                user_id,
                name,
                resume,
                ..
            } => {
                // Back within the reconnect grace: same place, ownership and guests. With
                // `resume` the participant named (its own), even while its old connection is
                // still open here (a network that dropped without a close): that one goes.
                let away = self.members.values_mut().find(|m| {
                    m.kind == Kind::Technician
                        && m.user_id == Some(user_id)
                        && match resume {
                            Some(r) => m.id == r,
                            None => m.conn.is_none(),
                        }
                });
                if let Some(m) = away {
                    let pid = m.id;
                    if let Some(old) = m.conn.take() {
                        tracing::info!(session = %self.id, participant = %pid, "technician resumed on a new connection");
                        old.outlet.close(close_code::NORMAL, "resumed");
                        old.addr.do_send(Evicted);
                    }
                    m.conn = Some(conn);
                    if let Some(handle) = m.grace.take() {
                        ctx.cancel_future(handle);
                    }
                    tracing::info!(session = %self.id, participant = %pid, "technician reconnected within grace");
                    self.welcome(pid);
                    let waiting: Vec<ParticipantId> = self.waiting.keys().copied().collect();
                    for w in waiting {
                        self.announce_waiting(w, Some(pid));
                    }
                    let text = ServerFrame::ParticipantBack {
                        participant_id: pid.0,
                    }
                    .encode();
                    self.broadcast(&text, Some(pid));
                    if self.owner == Some(pid) {
                        let text = ServerFrame::OwnerChanged {
                            owner_id: Some(pid.0),
                        }
                        .encode();
                        self.broadcast(&text, Some(pid));
                    }
                    self.settle(ctx);
                    return Ok(pid);
                }
                (
                    Some(user_id),
                    name,
                    Kind::Technician,
                    PermissionSet::ALL,
                    None,
                )
            }
            Joiner::Customer => {
                let previous: Vec<ParticipantId> = self
                    .members
                    .values()
                    .filter(|m| m.kind == Kind::Customer)
                    .map(|m| m.id)
                    .collect();
                for old in previous {
                    self.evict(old, close_code::NORMAL, "replaced");
                    self.remove_member(old, LeaveReason::Replaced, ctx);
                }
                (
                    None,
                    "Customer".to_string(),
                    Kind::Customer,
                    permissions_of(Kind::Customer, PermissionSet::NONE),
                    None,
                )
            }
            Joiner::Guest {
                invitation_id,
                inviter,
                name,
                permissions,
                policy_name,
                verified_email,
                resume_key,
            } => {
                if !self.members.contains_key(&inviter) {
                    return Err(JoinRefusal::InviterLeft);
                }
                self.invitations.remove(&invitation_id);
                let pid = ParticipantId::new();
                self.record(ReportEvent::InvitationRedeemed {
                    invitation: invitation_id,
                    guest: pid,
                    resume_hash: crate::auth::token::hash(&resume_key),
                });
                self.resume_keys.insert(pid, resume_key);
                if let Some(email) = &verified_email {
                    self.verified_emails.insert(pid, email.clone());
                }
                if self.admission_required {
                    self.seat_in_lobby(
                        pid,
                        Waiting {
                            conn: Some(conn),
                            away: None,
                            name,
                            perms: permissions,
                            invited_by: inviter,
                            invitation_id,
                            policy_name,
                            verified_email,
                            timer: SpawnHandle::default(),
                        },
                        ctx,
                    );
                    return Ok(pid);
                }
                return Ok(self.admit(
                    pid,
                    None,
                    name,
                    Kind::Guest,
                    permissions,
                    Some(inviter),
                    conn,
                    ctx,
                ));
            }
            Joiner::GuestBack { participant } => {
                // Its key was checked against the store. Back to the lobby when it was
                // waiting there (its connection dropped, or its session moved home).
                if let Some(w) = self.waiting.get_mut(&participant) {
                    if let Some(old) = w.conn.replace(conn) {
                        old.outlet.close(close_code::NORMAL, "resumed");
                        old.addr.do_send(Evicted);
                    }
                    if let Some(away) = w.away.take() {
                        ctx.cancel_future(away);
                    }
                    tracing::info!(session = %self.id, guest = %participant, "waiting guest back in the lobby");
                    self.tell_lobby(participant, None);
                    let text = ServerFrame::ParticipantBack {
                        participant_id: participant.0,
                    }
                    .encode();
                    self.broadcast_non_guests(&text);
                    return Ok(participant);
                }
                // Its place is held (taken over, its inviter in), or it is still connected here
                // on a socket that dropped silently.
                let Some(m) = self
                    .members
                    .get_mut(&participant)
                    .filter(|m| m.kind == Kind::Guest)
                else {
                    return Err(JoinRefusal::NoPlace);
                };
                if let Some(old) = m.conn.take() {
                    tracing::info!(session = %self.id, participant = %participant, "guest resumed on a new connection");
                    old.outlet.close(close_code::NORMAL, "resumed");
                    old.addr.do_send(Evicted);
                }
                m.conn = Some(conn);
                if let Some(handle) = m.grace.take() {
                    ctx.cancel_future(handle);
                }
                tracing::info!(session = %self.id, participant = %participant, "guest back in its place");
                self.welcome(participant);
                let text = ServerFrame::ParticipantBack {
                    participant_id: participant.0,
                }
                .encode();
                self.broadcast(&text, Some(participant));
                return Ok(participant);
            }
        };
        let pid = ParticipantId::new();
        Ok(self.admit(pid, user_id, name, kind, perms, invited_by, conn, ctx))
    }
}

impl SessionActor {
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        pid: ParticipantId,
        user_id: Option<UserId>,
        name: String,
        kind: Kind,
        perms: PermissionSet,
        invited_by: Option<ParticipantId>,
        conn: Conn,
        ctx: &mut Context<Self>,
    ) -> ParticipantId {
        self.next_seq += 1;
        if kind == Kind::Technician && self.owner.is_none() && user_id == Some(self.owner_user) {
            self.owner = Some(pid);
        }
        let member = Member {
            id: pid,
            user_id,
            name,
            kind,
            perms,
            invited_by,
            seq: self.next_seq,
            conn: Some(conn),
            grace: None,
        };
        let view = self.view(&member);
        self.members.insert(pid, member);
        self.deps.metrics.gauge(kind).increment(1.0);
        self.record(ReportEvent::Joined {
            session: self.id,
            participant: pid,
            user_id,
            name: view.name.clone(),
            role: view.role.as_str(),
            at: Utc::now(),
        });
        tracing::info!(session = %self.id, participant = %pid, role = view.role.as_str(), "participant joined");
        self.record_event(serde_json::json!({"event": "joined", "participant": pid.0,
            "name": view.name, "role": view.role.as_str(), "user_id": user_id.map(|u| u.0),
            "verified_email": self.verified_emails.get(&pid)}));
        self.welcome(pid);
        if kind != Kind::Guest {
            // Whoever decides (or should know) hears of the guests already waiting.
            let waiting: Vec<ParticipantId> = self.waiting.keys().copied().collect();
            for w in waiting {
                self.announce_waiting(w, Some(pid));
            }
        }
        let text = ServerFrame::ParticipantJoined { participant: &view }.encode();
        self.broadcast(&text, Some(pid));
        if self.owner == Some(pid) {
            let text = ServerFrame::OwnerChanged {
                owner_id: Some(pid.0),
            }
            .encode();
            self.broadcast(&text, Some(pid));
        }
        self.settle(ctx);
        pid
    }
}

/// The chat journal's word on a message (cluster only): relayed once stored, refused if not.
#[derive(Message)]
#[rtype(result = "()")]
struct ChatJournaled {
    from: ParticipantId,
    seq: i64,
    frame: ByteString,
    stored: bool,
}

impl Handler<ChatJournaled> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: ChatJournaled, _ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        if msg.stored {
            self.relay_chat(msg.seq, msg.frame);
        } else {
            self.send_error(
                msg.from,
                "busy",
                "the message could not be stored; send again in a moment",
            );
        }
    }
}

impl Handler<FromClient> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: FromClient, ctx: &mut Self::Context) {
        let pid = msg.participant;
        if !self.members.contains_key(&pid) {
            return;
        }
        match msg.frame {
            // A full report queue refuses chat before it is relayed: nothing any participant
            // saw may be missing from the report.
            ClientFrame::Chat { .. }
                if self.deps.reports.full()
                    || self.deps.journal.as_ref().is_some_and(|j| j.full()) =>
            {
                self.send_error(
                    pid,
                    "busy",
                    "the broker is busy writing reports; send again in a moment",
                )
            }
            ClientFrame::Chat { text } => self.on_chat(pid, text, ctx),
            ClientFrame::TransferOwnership { to } => self.on_transfer(pid, to),
            ClientFrame::EndSession => {
                if self.owner == Some(pid) {
                    self.end(EndReason::EndedByOwner, ctx);
                } else {
                    self.send_error(pid, "not_owner", "only the owner can end the session");
                }
            }
            ClientFrame::Leave => {
                self.evict(pid, close_code::NORMAL, "left");
                self.remove_member(pid, LeaveReason::Left, ctx);
            }
            ClientFrame::RemoveGuest { participant_id } => {
                self.on_remove_guest(pid, participant_id, ctx);
            }
            ClientFrame::FileOffer {
                transfer_id,
                name,
                size,
            } => self.on_file_offer(pid, transfer_id, name, size),
            ClientFrame::Admit { participant_id } => {
                self.on_admission(pid, participant_id, true, ctx);
            }
            ClientFrame::Refuse { participant_id } => {
                self.on_admission(pid, participant_id, false, ctx);
            }
            ClientFrame::GuestAdmission { required } => self.on_guest_admission(pid, required),
        }
        self.settle(ctx);
    }
}

impl Handler<StreamFrame> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: StreamFrame, ctx: &mut Self::Context) {
        let Some(sender) = self.members.get(&msg.participant) else {
            return;
        };
        let route = session::route(sender.kind, sender.perms, msg.channel);
        if route != Route::Forbidden
            && msg.channel == session::Channel::File
            && let Err(code) = self.check_file_chunk(msg.participant, &msg.data)
        {
            let message = if code == "forbidden" {
                "this file is someone else's"
            } else {
                "more bytes than the file announced"
            };
            self.send_error(msg.participant, code, message);
            return;
        }
        let counter = match msg.channel {
            session::Channel::Screen => &self.deps.metrics.screen,
            session::Channel::Input => &self.deps.metrics.input,
            session::Channel::File => &self.deps.metrics.file,
        };
        let mut delivered = 0u64;
        match route {
            Route::Forbidden => {
                self.deps.metrics.dropped_forbidden.increment(1);
                self.send_error(
                    msg.participant,
                    "forbidden",
                    "you may not send on this channel",
                );
                return;
            }
            Route::ToHolders(needed) => {
                for m in self.members.values() {
                    if m.id == msg.participant || !receives(m.kind, m.perms, needed) {
                        continue;
                    }
                    if let Some(conn) = &m.conn {
                        match conn.outlet.send(Outbound::Binary(msg.data.clone())) {
                            Ok(()) => delivered += 1,
                            Err(SendError::Full) => self.too_slow.push(m.id),
                            Err(SendError::Closed) => {}
                        }
                    }
                }
            }
            Route::ToCustomer => {
                for m in self.members.values().filter(|m| m.kind == Kind::Customer) {
                    if let Some(conn) = &m.conn {
                        match conn.outlet.send(Outbound::Binary(msg.data.clone())) {
                            Ok(()) => delivered += 1,
                            Err(SendError::Full) => self.too_slow.push(m.id),
                            Err(SendError::Closed) => {}
                        }
                    }
                }
            }
        }
        counter.increment(delivered);
        if let Some(r) = &self.recorder {
            let kind = match msg.channel {
                session::Channel::Screen => Some(crate::recording::Kind::Screen),
                session::Channel::Input => Some(crate::recording::Kind::Input),
                session::Channel::File => None,
            };
            if let Some(kind) = kind {
                r.stream(kind, msg.data.slice(1..));
            }
        }
        self.settle(ctx);
    }
}

impl Handler<Departed> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Departed, ctx: &mut Self::Context) {
        let pid = msg.participant;
        let grace = self.deps.reconnect_grace;
        if let Some(w) = self
            .waiting
            .get_mut(&pid)
            .filter(|w| w.conn.as_ref().is_some_and(|c| c.addr == msg.from))
        {
            if msg.reason == LeaveReason::Disconnected && !grace.is_zero() {
                // Its network dropped: the place in the lobby waits for it a moment, and
                // whoever decides sees that it is away.
                w.conn = None;
                self.start_lobby_grace(pid, ctx);
                let text = ServerFrame::ParticipantAway {
                    participant_id: pid.0,
                }
                .encode();
                self.broadcast_non_guests(&text);
            } else {
                self.decide(pid, "withdrawn", None, ctx);
            }
            return;
        }
        let Some(m) = self.members.get_mut(&pid) else {
            return;
        };
        // Only the member's current connection speaks for it: an old one that a resume
        // replaced (or one that is already away) changes nothing.
        if m.conn.as_ref().is_none_or(|c| c.addr != msg.from) {
            return;
        }
        // A technician, or a guest (it comes back with its resume key): the customer comes
        // back through its link as a new participant.
        let held = matches!(m.kind, Kind::Technician | Kind::Guest);
        if held && msg.reason == LeaveReason::Disconnected && !grace.is_zero() {
            // Keep its place for the grace; it comes back with the same participant id.
            m.conn = None;
            self.start_grace(pid, ctx);
            let text = ServerFrame::ParticipantAway {
                participant_id: pid.0,
            }
            .encode();
            self.broadcast(&text, Some(pid));
        } else {
            self.remove_member(pid, msg.reason, ctx);
        }
        self.settle(ctx);
    }
}

impl Handler<ConnectedTechnician> for SessionActor {
    type Result = Option<ParticipantId>;

    fn handle(&mut self, msg: ConnectedTechnician, _: &mut Self::Context) -> Self::Result {
        self.members
            .values()
            .filter(|m| {
                m.kind == Kind::Technician && m.user_id == Some(msg.user_id) && m.conn.is_some()
            })
            .max_by_key(|m| m.seq)
            .map(|m| m.id)
    }
}

impl Handler<TrackInvitation> for SessionActor {
    type Result = bool;

    fn handle(&mut self, msg: TrackInvitation, _: &mut Self::Context) -> bool {
        if self.ended || !self.members.contains_key(&msg.inviter) {
            return false;
        }
        self.invitations
            .insert(msg.invitation_id, (msg.inviter, msg.addr));
        true
    }
}

impl Handler<InvitationClosed> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: InvitationClosed, _: &mut Self::Context) {
        self.invitations.remove(&msg.invitation_id);
    }
}

impl Handler<Snapshot> for SessionActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        MessageResult(SessionSnapshot {
            participants: members.into_iter().map(|m| self.view(m)).collect(),
            owner_user_id: self.owner_user,
        })
    }
}

impl Handler<Shutdown> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.end(EndReason::Shutdown, ctx);
    }
}

impl Handler<HandOver> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: HandOver, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        // Not ended: the Drop guard must not record a failure, and nothing records an end.
        self.ended = true;
        tracing::info!(session = %self.id, "session handed over to another node");
        self.record_event(serde_json::json!({"event": "handed_over"}));
        let at = Utc::now();
        // The sockets are sent away only once the report holds everything: their clients
        // reconnect through another node at once, and it takes the session over from the
        // store (a stale store would give its new chat numbers already used).
        let mut leaving = Vec::new();
        for (_, w) in self.waiting.drain() {
            ctx.cancel_future(w.timer);
            if let Some(away) = w.away {
                ctx.cancel_future(away);
            }
            // Still waiting: the next home keeps its place in the lobby.
            leaving.extend(w.conn);
        }
        for (_, m) in self.members.drain() {
            if let Some(conn) = m.conn {
                leaving.push(conn);
            }
            self.deps.metrics.gauge(m.kind).decrement(1.0);
            // Technicians and guests stay present: the next home holds their places. The
            // customer comes back through its link as a new participant.
            if m.kind == Kind::Customer {
                self.deps.reports.record(ReportEvent::Left {
                    participant: m.id,
                    reason: LeaveReason::Disconnected.as_str(),
                    at,
                });
            }
        }
        self.deps.registry.remove_session(self.id);
        self.deps
            .registry
            .unindex_session(self.id, &self.indexed.0, &self.indexed.1);
        let reports = self.deps.reports.clone();
        let recorder = self.recorder.take();
        let id = self.id;
        // `wait`: no frame is handled meanwhile (the session is no longer here).
        ctx.wait(
            async move {
                // Bounded: a database that does not answer must not keep the sockets here
                // (the chat journal has what the report misses).
                let stored = async {
                    reports.flush_session(id).await;
                    // The next home appends to the same recording: this part comes first.
                    if let Some(recorder) = recorder {
                        recorder.sync().await;
                    }
                };
                if tokio::time::timeout(Duration::from_secs(5), stored)
                    .await
                    .is_err()
                {
                    tracing::warn!(session = %id, "report not stored within 5 s of the hand-over");
                }
            }
            .into_actor(self)
            .map(move |(), _, ctx| {
                for conn in leaving {
                    conn.outlet.close(close_code::GOING_AWAY, "going_away");
                    conn.addr.do_send(Evicted);
                }
                ctx.stop();
            }),
        );
    }
}

impl Handler<GiveUp> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: GiveUp, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        // Not ended here: nothing is recorded, the Drop guard records no failure.
        self.ended = true;
        tracing::warn!(session = %self.id, "another node holds this session now; giving it up");
        for (_, w) in self.waiting.drain() {
            ctx.cancel_future(w.timer);
            if let Some(away) = w.away {
                ctx.cancel_future(away);
            }
            if let Some(conn) = w.conn {
                conn.outlet.force_close(close_code::SERVICE_RESTART);
                conn.addr.do_send(Evicted);
            }
        }
        for (_, m) in self.members.drain() {
            if let Some(conn) = &m.conn {
                conn.outlet.force_close(close_code::SERVICE_RESTART);
                conn.addr.do_send(Evicted);
            }
            self.deps.metrics.gauge(m.kind).decrement(1.0);
        }
        self.recorder = None;
        self.deps.registry.remove_session(self.id);
        self.deps
            .registry
            .unindex_session(self.id, &self.indexed.0, &self.indexed.1);
        ctx.stop();
    }
}

impl Handler<DisconnectUser> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: DisconnectUser, ctx: &mut Self::Context) {
        let gone: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|m| m.user_id == Some(msg.user_id))
            .map(|m| m.id)
            .collect();
        for pid in gone {
            tracing::info!(session = %self.id, participant = %pid, "access revoked; closing with 4003");
            self.evict(pid, close_code::ACCESS_REVOKED, "access_revoked");
            self.remove_member(pid, LeaveReason::Revoked, ctx);
        }
        self.settle(ctx);
    }
}

impl Handler<DisconnectCredential> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: DisconnectCredential, ctx: &mut Self::Context) {
        let gone: Vec<ParticipantId> = self
            .members
            .values()
            .filter(|m| {
                m.conn
                    .as_ref()
                    .and_then(|c| c.credential.as_ref())
                    .is_some_and(|c| *c == msg.credential)
            })
            .map(|m| m.id)
            .collect();
        for pid in gone {
            tracing::info!(session = %self.id, participant = %pid, "credential ended; closing with 4003");
            self.evict(pid, close_code::ACCESS_REVOKED, "access_revoked");
            self.remove_member(pid, LeaveReason::Revoked, ctx);
        }
        self.settle(ctx);
    }
}

impl Handler<EndSession> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: EndSession, ctx: &mut Self::Context) {
        self.end(msg.reason, ctx);
    }
}
