//! Every message the actors exchange, with what it asks for.

use actix::{Addr, Message};
use bytes::Bytes;

use super::{
    connection::Outlet,
    invitation::InvitationActor,
    participant::ParticipantActor,
    protocol::{ClientFrame, ParticipantView},
};
use crate::domain::{
    ids::{InvitationId, ParticipantId, PolicyId, SessionId, UserId},
    invitation::Refusal,
    permissions::PermissionSet,
    session::{Channel, LeaveReason},
};

/// Who is joining a session.
#[derive(Debug, Clone)]
pub enum Joiner {
    /// A user of the session's account (or acting inside it).
    Technician {
        user_id: UserId,
        name: String,
        /// The credential the connection was opened with (a login token's hash, or `key:`
        /// and an API key's hash): its logout or deletion closes this connection.
        credential: std::sync::Arc<str>,
        /// The participant this connection takes over (the same user's, see `?resume=`).
        resume: Option<ParticipantId>,
    },
    /// The customer side, through the session's customer key.
    Customer,
    /// An external technician who redeemed an invitation.
    Guest {
        invitation_id: InvitationId,
        inviter: ParticipantId,
        name: String,
        permissions: PermissionSet,
        /// Shown to the customer who decides on admission.
        policy_name: String,
        verified_email: Option<String>,
        /// The key its `welcome` carries (its hash goes to the store): with it, the guest
        /// comes back into a place held for it (`GuestBack`).
        resume_key: String,
    },
    /// A guest coming back with its resume key (checked against the store) into the place
    /// the session holds for it.
    GuestBack { participant: ParticipantId },
}

/// Why a session refused a join after the upgrade (answered by closing the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefusal {
    /// The session ended meanwhile (close 4002).
    SessionEnded,
    /// The guest's inviter left meanwhile (close 4001).
    InviterLeft,
    /// A guest coming back finds no place held for it (close 4010).
    NoPlace,
}

/// A new connection asks to join; the session answers with the participant id it gets (a
/// technician back within the reconnect grace gets its old one) and sends `welcome` itself.
#[derive(Message)]
#[rtype(result = "Result<ParticipantId, JoinRefusal>")]
pub struct Join {
    /// Who joins.
    pub joiner: Joiner,
    /// Where the session sends this participant's frames.
    pub outlet: Outlet,
    /// The connection's actor, told when the session drops it.
    pub addr: Addr<ParticipantActor>,
}

/// A parsed text frame from a participant.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromClient {
    /// Who sent it.
    pub participant: ParticipantId,
    /// What it says.
    pub frame: ClientFrame,
}

/// A binary stream frame from a participant (the first byte is the channel; kept in `data`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamFrame {
    /// Who sent it.
    pub participant: ParticipantId,
    /// The channel of its first byte.
    pub channel: Channel,
    /// The whole frame, relayed unchanged.
    pub data: Bytes,
}

/// A participant's connection ended (or it sent `leave`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Departed {
    /// Who left.
    pub participant: ParticipantId,
    /// The connection that ended: a participant taken over by a newer connection
    /// (`?resume=`) ignores what its old one says.
    pub from: Addr<ParticipantActor>,
    /// Why, as it goes into the report.
    pub reason: LeaveReason,
}

/// The session dropped this participant (and already queued its close frame).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evicted;

/// Which participant of `user_id` is connected to the session now, if any (for inviting).
#[derive(Message)]
#[rtype(result = "Option<ParticipantId>")]
pub struct ConnectedTechnician {
    /// The user asking to invite.
    pub user_id: UserId,
}

/// A new pending invitation by `inviter`; `false` when the inviter is gone already.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct TrackInvitation {
    /// The invitation.
    pub invitation_id: InvitationId,
    /// The participant who created it.
    pub inviter: ParticipantId,
    /// Its actor, told to revoke when the inviter leaves or the session ends.
    pub addr: Addr<InvitationActor>,
}

/// An invitation is no longer pending (redeemed, expired or revoked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InvitationClosed {
    /// The invitation.
    pub invitation_id: InvitationId,
}

/// The participants connected now, for `GET /sessions/{id}`.
#[derive(Message)]
#[rtype(result = "SessionSnapshot")]
pub struct Snapshot;

/// What `Snapshot` answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionSnapshot {
    /// Connected participants (and technicians within their reconnect grace).
    pub participants: Vec<ParticipantView>,
    /// The user owning the session.
    pub owner_user_id: UserId,
}

/// The broker is shutting down: end with reason `shutdown` and close every socket with 1001.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// This node of a cluster stops while others run: the session does not end but moves. Every
/// socket gets Close 1001 (its client reconnects, through another node, which takes the
/// session over from the store); the technicians stay in the report as present, so their
/// places are kept there; the customer and guests leave as `disconnected`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver;

/// Another node of the cluster holds this session now (it claimed it while this node was
/// cut off from NATS and taken for dead): the actor stops without a word to the report,
/// which is the other node's now, and closes its sockets with 1012 so that their clients
/// reconnect to the session's one home.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GiveUp;

/// Uses an invitation up, once.
#[derive(Message)]
#[rtype(result = "Result<RedeemGrant, RedeemError>")]
pub struct Redeem;

/// What a redemption grants.
#[derive(Debug, Clone)]
pub struct RedeemGrant {
    /// The session to join.
    pub session_id: SessionId,
    /// The participant who invited.
    pub inviter: ParticipantId,
    /// The guest's display name.
    pub guest_name: String,
    /// The policy's permissions.
    pub permissions: PermissionSet,
    /// The policy.
    pub policy_id: PolicyId,
}

/// Why a redemption failed.
#[derive(Debug)]
pub enum RedeemError {
    /// The invitation cannot be used.
    Refused(Refusal),
    /// The store failed.
    Store(sqlx::Error),
}

/// Why an invitation is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeCause {
    /// `DELETE /invitations/{id}`.
    Deleted,
    /// Its inviter left the session.
    InviterLeft,
    /// The session ended.
    SessionEnded,
}

/// Asks a pending invitation's actor why it can no longer be used, if so (its state changes
/// before the store's).
#[derive(Message)]
#[rtype(result = "Option<crate::domain::invitation::Refusal>")]
pub struct Peek;

/// Withdraws a pending invitation; answers `false` when it was no longer pending.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Revoke {
    /// Why.
    pub cause: RevokeCause,
    /// The audit entries of a revoke someone asked for: written with the outcome, in its
    /// transaction (empty for one the session made).
    pub audit: Vec<crate::store::AuditEntry>,
}

/// A user lost its access (deleted, or a grant was revoked): close its connections with 4003.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectUser {
    /// The user whose connections close.
    pub user_id: UserId,
}

/// A credential ended (logout, API key deleted): close the connections opened with it (4003).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectCredential {
    /// The credential, as in `Joiner::Technician::credential`.
    pub credential: std::sync::Arc<str>,
}

/// Ends the session for everyone with `reason` (e.g. its owner's partner access was revoked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndSession {
    /// Why, as it goes into the report and the `session_ended` frame.
    pub reason: crate::domain::session::EndReason,
}
