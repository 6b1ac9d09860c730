//! WebSocket upgrades. Every refusal happens before the upgrade, as an HTTP answer; after it,
//! one `ParticipantActor` per connection takes over.

use actix::{Actor, Addr, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

use super::{
    sessions::{usable_invitation, visible_session},
    state::AppState,
};
use crate::{
    actors::{
        connection,
        messages::{Joiner, Redeem, RedeemError},
        participant::{ParticipantActor, Recheck},
        session::SessionActor,
    },
    auth::{
        extract::{Principal, bearer, principal_from_credential, principal_from_token},
        token,
    },
    domain::ids::SessionId,
    error::{AppError, AppResult, Code},
};

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    pub ticket: Option<String>,
    /// A technician coming back names its participant id: it takes that place over, even
    /// while the server still holds the old connection (a network that dropped silently).
    pub resume: Option<uuid::Uuid>,
}

fn session_ended() -> AppError {
    AppError::new(Code::SessionEnded, "this session has ended")
}

/// Upgrades and starts the participant's actor and writer.
fn start(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    session: Addr<SessionActor>,
    joiner: Joiner,
    recheck: Option<Recheck>,
) -> AppResult<HttpResponse> {
    let (response, ws, stream) = actix_ws::handle(req, body).map_err(|e| {
        AppError::new(
            Code::NotWebsocket,
            format!("expected a WebSocket upgrade: {e}"),
        )
    })?;
    let limits = state.ws_limits.clone();
    let outlet = connection::open(ws, limits.outbound_queue, &state.connections);
    let stream = configured(stream, &limits);
    ParticipantActor::create(move |ctx| {
        ctx.add_stream(stream);
        let actor = ParticipantActor::new(session, joiner, outlet, limits);
        match recheck {
            Some(recheck) => actor.with_recheck(recheck),
            None => actor,
        }
    });
    Ok(response)
}

/// The message stream with the production limits: frames and reassembled messages up to the
/// larger of the text and binary limits (each kind is checked against its own afterwards).
fn configured(
    stream: actix_ws::MessageStream,
    limits: &crate::actors::participant::WsLimits,
) -> actix_ws::AggregatedMessageStream {
    stream
        .max_frame_size(limits.max_binary_bytes.max(limits.max_text_bytes))
        .aggregate_continuations()
        .max_continuation_size(limits.max_binary_bytes.max(limits.max_text_bytes))
}

/// An echo socket with the production settings, for the Autobahn conformance cases
/// (`scripts/ws-conformance`); compiled only with the `ws-echo` feature.
#[cfg(feature = "ws-echo")]
pub async fn echo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let (response, ws, stream) = actix_ws::handle(&req, body).map_err(|e| {
        AppError::new(
            Code::NotWebsocket,
            format!("expected a WebSocket upgrade: {e}"),
        )
    })?;
    let limits = state.ws_limits.clone();
    let outlet = connection::open(ws, limits.outbound_queue, &state.connections);
    crate::actors::echo::spawn(configured(stream, &limits), outlet, limits);
    Ok(response)
}

/// Only a complete WebSocket handshake (method, Upgrade, Connection, version and key, as the
/// upgrade itself checks them) may use up a one-time credential.
fn require_handshake(req: &HttpRequest) -> AppResult<()> {
    actix_http::ws::verify_handshake(req.head()).map_err(|e| {
        AppError::new(
            Code::NotWebsocket,
            format!("expected a WebSocket upgrade: {e}"),
        )
    })
}

/// `GET /ws/sessions/{id}`: a technician of the account, by Bearer header or `?ticket=`.
pub async fn technician(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<SessionId>,
    query: web::Query<TicketQuery>,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let session_id = path.into_inner();
    let who: Principal = match (bearer(&req), &query.ticket) {
        (Some(token), _) => principal_from_token(&state.store, token).await?,
        (None, Some(ticket)) => {
            require_handshake(&req)?;
            let used = state.store.consume_ws_ticket(&token::hash(ticket)).await?;
            let used = used.ok_or_else(AppError::unauthorized)?;
            if used.expires_at <= Utc::now() || used.session != session_id {
                return Err(AppError::unauthorized());
            }
            match used.token_hash {
                // Acts as the credential it came from: revoked or partner-bound alike.
                Some(credential) => principal_from_credential(&state.store, &credential).await?,
                None => {
                    let user = state
                        .store
                        .user(used.user)
                        .await?
                        .filter(|u| !u.deleted)
                        .ok_or_else(AppError::unauthorized)?;
                    Principal::own(user, &used.via)
                }
            }
        }
        (None, None) => return Err(AppError::unauthorized()),
    };
    let session = visible_session(&state, &who, session_id).await?;
    let addr = state
        .registry
        .session(session.id)
        .filter(|_| session.open)
        .ok_or_else(session_ended)?;
    let credential: std::sync::Arc<str> = if who.credential.is_empty() {
        format!("user:{}", who.user.id).into()
    } else {
        who.credential.clone().into()
    };
    let joiner = Joiner::Technician {
        resume: query.resume.map(crate::domain::ids::ParticipantId),
        user_id: who.user.id,
        name: who.user.display_name(),
        credential: credential.clone(),
    };
    // Once joined, the credential is checked again: a logout, key deletion, user deletion,
    // revoke or rights change that landed during the upgrade closes the connection with 4003.
    let recheck_state = state.clone();
    let user = who.user.id;
    let recheck: Recheck = Box::new(move || {
        Box::pin(async move {
            let who = match credential.strip_prefix("user:") {
                Some(_) => match recheck_state.store.user(user).await {
                    Ok(Some(u)) if !u.deleted => Principal::own(u, "ticket"),
                    _ => return false,
                },
                None => match principal_from_credential(&recheck_state.store, &credential).await {
                    Ok(who) => who,
                    Err(_) => return false,
                },
            };
            visible_session(&recheck_state, &who, session_id)
                .await
                .is_ok()
        })
    });
    start(&state, &req, body, addr, joiner, Some(recheck))
}

/// `GET /ws/customer/{key}`: the customer side of a session.
pub async fn customer(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let key = path.into_inner();
    let session = state
        .store
        .session_by_customer_key(&token::hash(&key))
        .await?;
    let session = session.ok_or_else(|| AppError::new(Code::SessionNotFound, "no such session"))?;
    let addr = state
        .registry
        .session(session.id)
        .filter(|_| session.open)
        .ok_or_else(session_ended)?;
    start(&state, &req, body, addr, Joiner::Customer, None)
}

/// `GET /ws/guest/{token}`: an invited external technician; this uses the invitation up.
pub async fn guest(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    query: web::Query<TicketQuery>,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let secret = path.into_inner();
    let inv = usable_invitation(&state, &secret).await?;
    // Bound to a person: only with the ticket that the code mailed to its address gave.
    if inv.email.is_some() {
        let ticket = query.ticket.as_deref().unwrap_or_default();
        let held = state.store.join_ticket(inv.id).await?;
        let valid = held.is_some_and(|(hash, until)| {
            until > Utc::now()
                && !ticket.is_empty()
                && token::hashes_equal(&hash, &token::hash(ticket))
        });
        if !valid {
            return Err(AppError::new(
                Code::EmailNotVerified,
                "this invitation is bound to an email address: enter the code mailed to it first",
            ));
        }
    }
    require_handshake(&req)?;
    let session = state
        .registry
        .session(inv.session_id)
        .ok_or_else(session_ended)?;
    let actor = state.registry.invitation(inv.id).ok_or_else(|| {
        // A pending invitation without its actor was finished a moment ago.
        AppError::new(
            Code::InvitationUsed,
            "this invitation link has already been used",
        )
    })?;
    let grant = match actor.send(Redeem).await {
        Ok(Ok(grant)) => grant,
        Ok(Err(RedeemError::Refused(r))) => return Err(super::sessions::refusal(r)),
        Ok(Err(RedeemError::Store(e))) => return Err(e.into()),
        Err(_) => {
            return Err(AppError::new(
                Code::InvitationUsed,
                "this invitation link has already been used",
            ));
        }
    };
    tracing::info!(invitation = %inv.id, token = %token::log_tag(&secret), "invitation redeemed");
    let joiner = Joiner::Guest {
        invitation_id: inv.id,
        inviter: grant.inviter,
        name: grant.guest_name,
        permissions: grant.permissions,
        policy_name: inv.policy_name.clone(),
        verified_email: inv.verified_email.clone(),
    };
    start(&state, &req, body, session, joiner, None)
}
