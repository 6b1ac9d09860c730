//! `InvitationActor`: one per pending invitation. Its mailbox serialises redemption, so of two
//! concurrent redemptions exactly one wins; it expires the invitation on time and revokes it
//! on request. It stops as soon as the invitation is no longer pending.

use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;

use super::{
    messages::{InvitationClosed, Peek, Redeem, RedeemError, RedeemGrant, Revoke},
    registry::Registry,
    session::SessionActor,
};
use crate::{
    domain::{
        ids::{InvitationId, ParticipantId, PolicyId, SessionId},
        invitation::{Invitation, Outcome, Refusal},
        permissions::PermissionSet,
    },
    store::Store,
};

pub struct InvitationActor {
    pub id: InvitationId,
    pub session_id: SessionId,
    pub inviter: ParticipantId,
    pub guest_name: String,
    pub permissions: PermissionSet,
    pub policy_id: PolicyId,
    pub state: Invitation,
    pub store: Store,
    pub registry: Arc<Registry>,
    pub session: Addr<SessionActor>,
}

impl InvitationActor {
    /// Starts the actor and registers it before anyone can look for it.
    pub fn spawn(self) -> Addr<Self> {
        let id = self.id;
        let registry = self.registry.clone();
        let addr = self.start();
        registry.insert_invitation(id, addr.clone());
        addr
    }

    /// Persists a final outcome, tells the session, and stops.
    fn finish(
        &mut self,
        outcome: Outcome,
        audit: Vec<crate::store::AuditEntry>,
    ) -> ResponseActFuture<Self, bool> {
        metrics::counter!("broker_invitations_total", "outcome" => outcome.as_str()).increment(1);
        self.session.do_send(InvitationClosed {
            invitation_id: self.id,
        });
        // The actor stays registered until the outcome is stored: whoever finds neither the
        // actor nor a final outcome in the store would take a finished invitation as pending.
        let store = if audit.is_empty() {
            self.store.clone()
        } else {
            self.store.audited(audit)
        };
        let id = self.id;
        Box::pin(
            async move {
                match store.finish_invitation(id, outcome, Utc::now()).await {
                    Ok(changed) => changed,
                    Err(err) => {
                        tracing::error!(invitation = %id, error = %err, "could not persist invitation outcome");
                        false
                    }
                }
            }
            .into_actor(self)
            .map(|changed, act: &mut Self, ctx: &mut Context<Self>| {
                act.registry.remove_invitation(act.id);
                ctx.stop();
                changed
            }),
        )
    }
}

impl Actor for InvitationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let left = (self.state.expires_at - Utc::now())
            .to_std()
            .unwrap_or_default();
        ctx.run_later(left, |act, ctx| {
            if act.state.expire() {
                tracing::info!(invitation = %act.id, "invitation expired");
                ctx.spawn(act.finish(Outcome::Expired, Vec::new()).map(|_, _, _| ()));
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.registry.remove_invitation(self.id);
    }
}

impl Handler<Redeem> for InvitationActor {
    type Result = ResponseActFuture<Self, Result<RedeemGrant, RedeemError>>;

    fn handle(&mut self, _: Redeem, _: &mut Self::Context) -> Self::Result {
        // The state flips here, synchronously: a second Redeem in the mailbox sees it used.
        if let Err(refusal) = self.state.redeem(Utc::now()) {
            return Box::pin(fut::ready(Err(RedeemError::Refused(refusal))));
        }
        let grant = RedeemGrant {
            session_id: self.session_id,
            inviter: self.inviter,
            guest_name: self.guest_name.clone(),
            permissions: self.permissions,
            policy_id: self.policy_id,
        };
        Box::pin(
            self.finish(Outcome::Redeemed, Vec::new())
                .map(move |changed, _, _| {
                    if changed {
                        Ok(grant)
                    } else {
                        // Someone else finished it in the database first (cannot happen while this
                        // actor is the only writer, but never hand out a second grant).
                        Err(RedeemError::Refused(
                            crate::domain::invitation::Refusal::Used,
                        ))
                    }
                }),
        )
    }
}

impl Handler<Peek> for InvitationActor {
    type Result = Option<Refusal>;

    fn handle(&mut self, _: Peek, _: &mut Self::Context) -> Self::Result {
        self.state.usable(Utc::now()).err()
    }
}

impl Handler<Revoke> for InvitationActor {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) -> Self::Result {
        if self.state.revoke() {
            tracing::info!(invitation = %self.id, cause = ?msg.cause, "invitation revoked");
            self.finish(Outcome::Revoked, msg.audit)
        } else {
            Box::pin(fut::ready(false))
        }
    }
}
