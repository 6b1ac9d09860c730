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
    domain::ids::{ParticipantId, SessionId},
    error::{AppError, AppResult, Code},
};

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    pub ticket: Option<String>,
    /// A technician coming back names its participant id: it takes that place over, even
    /// while the server still holds the old connection (a network that dropped silently).
    pub resume: Option<uuid::Uuid>,
    /// A guest coming back names its participant id (`resume`) and shows its resume key.
    pub key: Option<String>,
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
pub fn configured(
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

/// Which WebSocket route a connection came in by, with what it carried: enough to admit it
/// here or, in a cluster, on the session's home node (sent there over NATS).
///
/// It carries credentials (a bearer token, a ticket, a customer key, a guest link's secret):
/// its `Debug` shows that they are there, never what they are.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum WsRoute {
    Technician {
        session_id: SessionId,
        bearer: Option<String>,
        ticket: Option<String>,
        resume: Option<uuid::Uuid>,
    },
    Customer {
        key: String,
    },
    Guest {
        secret: String,
        ticket: Option<String>,
    },
    /// A guest coming back into its place with the resume key its `welcome` carried.
    GuestBack {
        secret: String,
        participant: ParticipantId,
        key: String,
    },
}

impl std::fmt::Debug for WsRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |present: bool| if present { "<redacted>" } else { "none" };
        match self {
            WsRoute::Technician {
                session_id,
                bearer,
                ticket,
                resume,
            } => f
                .debug_struct("Technician")
                .field("session_id", session_id)
                .field("bearer", &hidden(bearer.is_some()))
                .field("ticket", &hidden(ticket.is_some()))
                .field("resume", resume)
                .finish(),
            WsRoute::Customer { .. } => f
                .debug_struct("Customer")
                .field("key", &hidden(true))
                .finish(),
            WsRoute::Guest { ticket, .. } => f
                .debug_struct("Guest")
                .field("secret", &hidden(true))
                .field("ticket", &hidden(ticket.is_some()))
                .finish(),
            WsRoute::GuestBack { participant, .. } => f
                .debug_struct("GuestBack")
                .field("secret", &hidden(true))
                .field("participant", participant)
                .field("key", &hidden(true))
                .finish(),
        }
    }
}

/// A connection the session will take: its actor, who joins, and the check after joining.
pub struct Admitted {
    pub session: Addr<SessionActor>,
    pub joiner: Joiner,
    pub recheck: Option<Recheck>,
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
    let query = query.into_inner();
    let route = WsRoute::Technician {
        session_id,
        bearer: bearer(&req).map(str::to_string),
        ticket: query.ticket,
        resume: query.resume,
    };
    connect(&state, &req, body, route, session_id).await
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
    if !session.open {
        return Err(session_ended());
    }
    connect(&state, &req, body, WsRoute::Customer { key }, session.id).await
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
    let query = query.into_inner();
    if let (Some(participant), Some(key)) = (query.resume, query.key) {
        // Coming back (its session moved home): the used link names the invitation, the
        // key proves the guest (checked where the session lives).
        let inv = state
            .store
            .invitation_by_token_hash(&token::hash(&secret))
            .await?
            .ok_or_else(|| AppError::new(Code::InvitationNotFound, "no such invitation"))?;
        let route = WsRoute::GuestBack {
            secret,
            participant: ParticipantId(participant),
            key,
        };
        return connect(&state, &req, body, route, inv.session_id).await;
    }
    let inv = usable_invitation(&state, &secret).await?;
    let route = WsRoute::Guest {
        secret,
        ticket: query.ticket,
    };
    connect(&state, &req, body, route, inv.session_id).await
}

/// Admits the connection here when the session lives here, else hands it to the session's
/// home node (a cluster): this node then only carries its frames.
async fn connect(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: web::Payload,
    route: WsRoute,
    session_id: SessionId,
) -> AppResult<HttpResponse> {
    if let Some(cluster) = &state.cluster
        && state.registry.session(session_id).is_none()
        && let Some(home) = state.store.open_session_home(session_id).await?
        && home != cluster.node_id()
    {
        // The home may use a one-time credential up: only for a complete handshake.
        require_handshake(req)?;
        let mut home = home;
        if !cluster.reachable(&home).await {
            // Its node is gone: the first node a returning participant reaches takes the
            // session over (the database decides which), and this connection joins here.
            // When another node was first, the connection goes to it; when the session ended
            // meanwhile (nobody came back in time), it is refused here as on any node.
            if !crate::http::cluster::take_over(state, session_id, &home).await? {
                home = state
                    .store
                    .open_session_home(session_id)
                    .await?
                    .unwrap_or_else(|| cluster.node_id().to_string());
            }
        }
        if home != cluster.node_id() && state.registry.session(session_id).is_none() {
            return crate::http::cluster::connect_remote(state, req, body, route, &home).await;
        }
    }
    let handshake = || require_handshake(req);
    let admitted = admit(state, route, &handshake).await?;
    start(
        state,
        req,
        body,
        admitted.session,
        admitted.joiner,
        admitted.recheck,
    )
}

/// Everything a connection must pass before the upgrade; `handshake` is checked right before
/// a one-time credential (ticket, guest link) is used up.
pub async fn admit(
    state: &web::Data<AppState>,
    route: WsRoute,
    handshake: &dyn Fn() -> AppResult<()>,
) -> AppResult<Admitted> {
    match route {
        WsRoute::Technician {
            session_id,
            bearer,
            ticket,
            resume,
        } => admit_technician(state, session_id, bearer, ticket, resume, handshake).await,
        WsRoute::Customer { key } => {
            let session = state
                .store
                .session_by_customer_key(&token::hash(&key))
                .await?;
            let session =
                session.ok_or_else(|| AppError::new(Code::SessionNotFound, "no such session"))?;
            let addr = state
                .registry
                .session(session.id)
                .filter(|_| session.open)
                .ok_or_else(session_ended)?;
            Ok(Admitted {
                session: addr,
                joiner: Joiner::Customer,
                recheck: None,
            })
        }
        WsRoute::Guest { secret, ticket } => admit_guest(state, &secret, ticket, handshake).await,
        WsRoute::GuestBack {
            secret,
            participant,
            key,
        } => admit_guest_back(state, &secret, participant, &key).await,
    }
}

/// A guest back with its resume key: the store must hold that key's hash for that guest of
/// that (used) link, and the session must be live here.
async fn admit_guest_back(
    state: &AppState,
    secret: &str,
    participant: ParticipantId,
    key: &str,
) -> AppResult<Admitted> {
    let inv = state
        .store
        .invitation_by_token_hash(&token::hash(secret))
        .await?
        .ok_or_else(|| AppError::new(Code::InvitationNotFound, "no such invitation"))?;
    let held = state.store.guest_resume(inv.id).await?;
    let valid = held.is_some_and(|(guest, hash)| {
        guest == participant && token::hashes_equal(&hash, &token::hash(key))
    });
    if !valid {
        tracing::warn!(invitation = %inv.id, "guest resume refused: wrong participant or key");
        return Err(AppError::unauthorized());
    }
    let session = state
        .registry
        .session(inv.session_id)
        .ok_or_else(session_ended)?;
    Ok(Admitted {
        session,
        joiner: Joiner::GuestBack { participant },
        recheck: None,
    })
}

async fn admit_technician(
    state: &web::Data<AppState>,
    session_id: SessionId,
    bearer: Option<String>,
    ticket: Option<String>,
    resume: Option<uuid::Uuid>,
    handshake: &dyn Fn() -> AppResult<()>,
) -> AppResult<Admitted> {
    let who: Principal = match (bearer, ticket) {
        (Some(token), _) => principal_from_token(&state.store, &token).await?,
        (None, Some(ticket)) => {
            handshake()?;
            let used = state.store.consume_ws_ticket(&token::hash(&ticket)).await?;
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
    let session = visible_session(state, &who, session_id).await?;
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
        resume: resume.map(ParticipantId),
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
    Ok(Admitted {
        session: addr,
        joiner,
        recheck: Some(recheck),
    })
}

async fn admit_guest(
    state: &AppState,
    secret: &str,
    ticket: Option<String>,
    handshake: &dyn Fn() -> AppResult<()>,
) -> AppResult<Admitted> {
    let inv = usable_invitation(state, secret).await?;
    // Bound to a person: only with the ticket that the code mailed to its address gave.
    if inv.email.is_some() {
        let ticket = ticket.as_deref().unwrap_or_default();
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
    handshake()?;
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
    // Before the link is used up: nothing after the redemption may fail for want of it.
    let resume_key = token::generate("sbg_").map_err(AppError::internal)?;
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
    tracing::info!(invitation = %inv.id, token = %token::log_tag(secret), "invitation redeemed");
    let joiner = Joiner::Guest {
        invitation_id: inv.id,
        inviter: grant.inviter,
        name: grant.guest_name,
        permissions: grant.permissions,
        policy_name: inv.policy_name.clone(),
        verified_email: inv.verified_email.clone(),
        resume_key,
    };
    Ok(Admitted {
        session,
        joiner,
        recheck: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_in_a_log_line_shows_no_credential() {
        let routes = [
            WsRoute::Technician {
                session_id: SessionId(uuid::Uuid::nil()),
                bearer: Some("tok-A1".into()),
                ticket: Some("tik-B2".into()),
                resume: None,
            },
            WsRoute::Customer {
                key: "key-C3".into(),
            },
            WsRoute::Guest {
                secret: "lnk-D4".into(),
                ticket: Some("tik-B2".into()),
            },
            WsRoute::GuestBack {
                secret: "lnk-D4".into(),
                participant: ParticipantId(uuid::Uuid::nil()),
                key: "rsk-E5".into(),
            },
        ];
        for route in routes {
            let shown = format!("{route:?}");
            for credential in ["tok-A1", "tik-B2", "key-C3", "lnk-D4", "rsk-E5"] {
                assert!(!shown.contains(credential), "{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
