//! Sessions, invitations, the join page and WebSocket tickets over HTTP.

use crate::http::authz::{Authorized, area, level};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{accounts::audit_entries, secret_headers, state::AppState};
use crate::{
    actors::{protocol::ParticipantView, session::SessionActor},
    auth::{extract::Principal, token},
    domain::{
        ids::{DeviceId, InvitationId, PolicyId, SessionId},
        invitation::{Invitation, Outcome, Refusal},
        rights::{Area, Groups, Rights, Write},
        validate,
    },
    error::{AppError, AppResult, Code},
    i18n::{self, Lang},
    store::{InvitationRecord, NewInvitation, SessionRecord},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub subject: String,
    #[serde(default)]
    pub device_id: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    pub id: Uuid,
    pub subject: String,
    pub state: &'static str,
    pub owner_user_id: Uuid,
    pub customer_key: String,
    /// The customer's page in a browser (`<public_url>/customer/{customer_key}`).
    pub customer_url: String,
    /// The customer's WebSocket (`/ws/customer/{customer_key}`), for agents and scripts.
    pub customer_ws_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub subject: String,
    pub state: &'static str,
    pub owner_user_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub participants: Vec<ParticipantView>,
    /// While the session is open: the customer's page, for every technician who sees the
    /// session (extension; `null` once it ended, and for sessions of earlier versions).
    pub customer_url: Option<String>,
    /// While the session is open: the customer's WebSocket (extension).
    pub customer_ws_url: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    pub policy_id: Uuid,
    pub guest_name: String,
    /// Internal: kept in the report for the technicians, never sent to the guest.
    #[serde(default)]
    pub comment: String,
    /// A few words to the guest, in the mail with the link.
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationCreated {
    pub id: Uuid,
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub policy_id: Uuid,
    pub guest_name: String,
    pub mailto: String,
    /// With `email`: whether the server's mail went out (`null` without `email`).
    pub mailed: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JoinInfo {
    pub session_subject: String,
    /// The display name of the technician who sent the invitation.
    pub inviter_name: String,
    pub guest_name: String,
    pub policy: JoinPolicy,
    pub ws_url: String,
    pub expires_at: DateTime<Utc>,
    /// Bound to a person (extension): the link works only after the code mailed to this
    /// address is entered (`POST /join/{token}/code`, then `/join/{token}/verify`).
    pub email_required: bool,
    /// The address, partly hidden (`g•••@example.com`).
    pub email_hint: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JoinPolicy {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<crate::domain::permissions::Permission>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketBody {
    pub session_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketAnswer {
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

/// Whether `rights` reach `session`: a session without a device always; a session on a
/// device only when the rights see the device's group (a device group limit holds for the
/// sessions on its devices as for the devices themselves).
pub async fn session_in_scope(
    state: &AppState,
    rights: &Rights,
    session: &SessionRecord,
) -> AppResult<bool> {
    let Some(device) = session.device_id else {
        return Ok(true);
    };
    if matches!(rights.groups, Groups::All(_)) && rights.only_devices.is_none() {
        return Ok(true);
    }
    let group = state
        .store
        .device(DeviceId(device))
        .await?
        .and_then(|d| d.group_id);
    Ok(rights.sees(device, group))
}

/// A session of the caller's account that the caller may see (area `sessions`, and its device
/// group when the session is on a device), else 404/403.
pub async fn visible_session(
    state: &AppState,
    who: &Principal,
    id: SessionId,
) -> AppResult<SessionRecord> {
    let session = state
        .store
        .session(id)
        .await?
        .ok_or_else(session_not_found)?;
    who.require_own_account(session.account_id, Code::SessionNotFound)?;
    who.require_area(Area::Sessions)?;
    if !session_in_scope(state, who.rights(), &session).await? {
        return Err(session_not_found());
    }
    Ok(session)
}

fn session_not_found() -> AppError {
    AppError::new(Code::SessionNotFound, "no such session")
}

fn session_ended() -> AppError {
    AppError::new(Code::SessionEnded, "this session has ended")
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses((status = 201, body = SessionCreated), (status = 403), (status = 404, description = "device_not_found"), (status = 409, description = "device_offline"), (status = 422),
              (status = 429, description = "too_many_sessions")))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authorized<area::Sessions, level::Create>,
    body: web::Json<CreateSession>,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let who = auth.own()?;
    let subject = validate::bounded_text(&body.subject, 200)
        .ok_or_else(|| AppError::new(Code::InvalidSubject, "subject: 1 to 200 characters"))?;
    // A session on a device: the device must be one the caller sees, its agent connected.
    let agent = match body.device_id {
        Some(id) => {
            let device = state
                .store
                .device(DeviceId(id))
                .await?
                .filter(|d| d.account_id == who.account() && who.rights().sees(d.id.0, d.group_id))
                .ok_or_else(|| AppError::new(Code::DeviceNotFound, "no such device"))?;
            if !super::cluster::agent_online(&state, &device) {
                return Err(AppError::new(
                    Code::DeviceOffline,
                    "the device's agent is not connected; try again when it is online",
                ));
            }
            Some(device.id)
        }
        None => None,
    };
    let customer_key = token::generate(token::prefix::CUSTOMER).map_err(AppError::internal)?;
    let sealed_key = state
        .secrets
        .seal(&customer_key)
        .map_err(AppError::internal)?;
    // The account's rules as they are now hold for the session's whole life.
    let account = state.store.account(who.account()).await?;
    let record = SessionRecord {
        id: SessionId::new(),
        account_id: who.account(),
        subject,
        device_id: agent.map(|id| id.0),
        owner_user_id: who.user.id,
        open: true,
        started_at: Utc::now(),
        ended_at: None,
        end_reason: None,
        recorded: account.as_ref().is_some_and(|a| a.record_sessions),
    };
    let cap = state.settings.sessions.max_live_per_account;
    if !state
        .store
        .audited(audit_entries(
            who,
            record.account_id,
            "session.created",
            Some(record.id.to_string()),
            serde_json::json!({"subject": record.subject}),
        ))
        .insert_session(
            &record,
            &token::hash(&customer_key),
            &sealed_key,
            cap,
            state.cluster.as_ref().map(|c| c.node_id()),
        )
        .await?
    {
        return Err(AppError::too_many(
            Code::TooManySessions,
            format!("this account holds {cap} live sessions already; end one first"),
            60,
        ));
    }
    let admission = account
        .as_ref()
        .and_then(|a| crate::domain::session::Admission::parse(&a.guest_admission))
        .unwrap_or(crate::domain::session::Admission::Off);
    SessionActor::spawn(
        record.id,
        who.user.id,
        admission,
        record.recorded,
        state.session_deps.clone(),
    );
    if let Some(device) = agent {
        // Its agent, on this node or another one of a cluster, joins as the customer.
        super::cluster::to_device(
            &state,
            device,
            crate::cluster::DeviceNote::Session {
                session_id: record.id,
                customer_key: customer_key.clone(),
            },
        );
    }
    let customer_url = format!("{}/customer/{customer_key}", state.public_url);
    let customer_ws_url = format!("{}/ws/customer/{customer_key}", state.public_ws_url());
    let mut res = HttpResponse::Created();
    secret_headers(&mut res);
    Ok(res.json(SessionCreated {
        id: record.id.0,
        subject: record.subject,
        state: "open",
        owner_user_id: who.user.id.0,
        customer_key,
        customer_url,
        customer_ws_url,
    }))
}

/// The session as its technicians see it: `open` with its participants while its actor runs
/// (here or at its home node), else `ended`. 503 `node_unavailable` when its home did not
/// answer in time.
async fn view_of(state: &AppState, s: SessionRecord) -> AppResult<SessionView> {
    let snapshot = if s.open {
        super::cluster::snapshot(state, s.id).await?
    } else {
        None
    };
    let open = snapshot.is_some();
    // The customer link again, for every technician of the session (and after a reload).
    let key = if open {
        match state.store.customer_key_sealed(s.id).await {
            Ok(Some(sealed)) => state.secrets.open_value(&sealed).ok(),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(session = %s.id, error = %err, "cannot read the customer key");
                None
            }
        }
    } else {
        None
    };
    Ok(SessionView {
        id: s.id.0,
        subject: s.subject,
        state: if open { "open" } else { "ended" },
        owner_user_id: snapshot
            .as_ref()
            .map_or(s.owner_user_id.0, |snap| snap.owner_user_id.0),
        started_at: s.started_at,
        ended_at: s.ended_at,
        end_reason: s.end_reason,
        participants: snapshot.map(|snap| snap.participants).unwrap_or_default(),
        customer_url: key
            .as_ref()
            .map(|k| format!("{}/customer/{k}", state.public_url)),
        customer_ws_url: key.map(|k| format!("{}/ws/customer/{k}", state.public_ws_url())),
    })
}

/// `GET /sessions?state=`: `open` (the default, as in the contract) or `ended`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub state: Option<String>,
    /// Ended sessions started at or after this time (RFC 3339).
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Ended sessions started before this time (RFC 3339).
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// Ended sessions a user of the account took part in as a technician (its user id).
    #[serde(default)]
    pub technician: Option<Uuid>,
    /// Ended sessions whose subject contains this text (case-insensitive).
    #[serde(default)]
    pub q: Option<String>,
}

/// How many ended sessions `GET /sessions?state=ended` returns.
const ENDED_LIST_LIMIT: u32 = 100;

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(ListQuery),
    responses((status = 200, body = Vec<SessionView>), (status = 400), (status = 403),
        (status = 503, description = "node_unavailable: a session's home node did not answer in time")))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authorized<area::Sessions>,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let who = auth.own()?;
    let mut out = Vec::new();
    match query.state.as_deref() {
        None | Some("open") => {
            let mut seen = Vec::new();
            for s in state.store.open_sessions_of(who.account()).await? {
                if session_in_scope(&state, who.rights(), &s).await? {
                    seen.push(s);
                }
            }
            // Asked of their homes at once: a slow node costs the list one wait, not one
            // per session it holds.
            let views =
                futures_util::future::join_all(seen.into_iter().map(|s| view_of(&state, s))).await;
            for view in views {
                let view = view?;
                if view.state == "open" {
                    out.push(view);
                }
            }
        }
        Some("ended") => {
            let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
            if q.is_some_and(|q| q.chars().count() > 200) {
                return Err(AppError::new(
                    Code::InvalidQuery,
                    "q: at most 200 characters",
                ));
            }
            let filter = crate::store::EndedFilter {
                from: query.from,
                to: query.to,
                technician: query.technician,
                subject: q.map(str::to_string),
                groups: match &who.rights().groups {
                    Groups::All(_) => None,
                    Groups::Some(ids) => Some(ids.clone()),
                },
                devices: who.rights().only_devices.clone(),
            };
            for s in state
                .store
                .ended_sessions_of(who.account(), &filter, ENDED_LIST_LIMIT)
                .await?
            {
                out.push(view_of(&state, s).await?);
            }
        }
        Some(_) => {
            return Err(AppError::new(
                Code::InvalidQuery,
                "state must be open or ended",
            ));
        }
    }
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(out))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", responses((status = 200, body = SessionView), (status = 403), (status = 404),
    (status = 503, description = "node_unavailable: the session's home node did not answer in time")))]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<SessionId>,
) -> AppResult<HttpResponse> {
    let session = visible_session(&state, &who, path.into_inner()).await?;
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(view_of(&state, session).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerLinkInfo {
    pub session_subject: String,
    /// `open` (the only answer with 200).
    pub state: &'static str,
}

/// `GET /customer-sessions/{key}`: what the customer's page shows before it connects, and
/// why a link is dead: 404 `session_not_found` for a key that never existed, 410
/// `session_ended` for a session that is over (extension).
#[utoipa::path(get, path = "/api/v1/customer-sessions/{key}", tag = "sessions",
    params(("key" = String, Path, description = "the customer key of the session's link")),
    responses((status = 200, body = CustomerLinkInfo), (status = 404), (status = 410),
        (status = 503, description = "node_unavailable: the session's home node did not answer in time")))]
pub async fn customer_link(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let session = state
        .store
        .session_by_customer_key(&token::hash(&path.into_inner()))
        .await?
        .ok_or_else(session_not_found)?;
    if !session.open || !super::cluster::is_live(&state, session.id).await? {
        return Err(session_ended());
    }
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(CustomerLinkInfo {
        session_subject: session.subject,
        state: "open",
    }))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/report", tag = "sessions",
    responses((status = 200, body = crate::store::SessionReport), (status = 403), (status = 404)))]
pub async fn report(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<SessionId>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    let session = state
        .store
        .session(id)
        .await?
        .ok_or_else(|| AppError::new(Code::SessionNotFound, "no such session"))?;
    who.require_own_account(session.account_id, Code::SessionNotFound)?;
    if !who.rights().can_read(Area::Sessions) && !who.rights().can_read(Area::Reports) {
        return Err(AppError::new(
            Code::MissingRight,
            "this needs the sessions or reports area",
        ));
    }
    if !session_in_scope(&state, who.rights(), &session).await? {
        return Err(session_not_found());
    }
    // Everything that happened before this request is in the report.
    super::cluster::flush_report(&state, id).await;
    let report = state
        .store
        .session_report(id)
        .await?
        .ok_or_else(|| AppError::new(Code::SessionNotFound, "no such session"))?;
    Ok(HttpResponse::Ok().json(report))
}

/// A `mailto:` link with the same words as the mail the server sends (the technician's own
/// mail client sends it).
fn mailto(email: Option<&str>, mail: &i18n::Mail) -> String {
    format!(
        "mailto:{}?subject={}&body={}",
        email.map(urlencoding::encode).unwrap_or_default(),
        urlencoding::encode(&mail.subject),
        urlencoding::encode(&mail.body)
    )
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/invitations", tag = "sessions", request_body = InviteBody,
    responses((status = 201, body = InvitationCreated), (status = 403, description = "not_in_session"), (status = 404), (status = 410), (status = 422),
              (status = 429, description = "too_many_invitations / too_many_mails")))]
pub async fn invite(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<SessionId>,
    body: web::Json<InviteBody>,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let session = visible_session(&state, &who, path.into_inner()).await?;
    let policy = state
        .store
        .policy(PolicyId(body.policy_id))
        .await?
        .filter(|p| p.account_id == session.account_id);
    let policy = policy.ok_or_else(|| AppError::new(Code::PolicyNotFound, "no such policy"))?;
    let guest_name = validate::bounded_text(&body.guest_name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidGuestName, "guest_name: 1 to 100 characters"))?;
    let comment = validate::optional_multiline(&body.comment, 1000).ok_or_else(|| {
        AppError::new(
            Code::InvalidComment,
            "comment: at most 1000 characters, no control characters but line breaks and tabs",
        )
    })?;
    let message = validate::optional_multiline(&body.message, 1000).ok_or_else(|| {
        AppError::new(
            Code::InvalidMessage,
            "message: at most 1000 characters, no control characters but line breaks and tabs",
        )
    })?;
    let email = match body.email.as_deref().filter(|e| !e.trim().is_empty()) {
        Some(e) => Some(
            validate::parse_email(e)
                .ok_or_else(|| AppError::new(Code::InvalidEmail, "email is not a valid address"))?,
        ),
        None => None,
    };
    if email.is_some() {
        // The broker's mail is no free relay: a per-user cap on invitation mails.
        let cap = state.settings.sessions.invitation_mails_per_hour;
        let sent = state
            .store
            .invitation_mails_since(who.user.id, Utc::now() - Duration::hours(1))
            .await?;
        if sent >= i64::from(cap) {
            return Err(AppError::too_many(
                Code::TooManyMails,
                format!("at most {cap} invitation mails per hour; send the link yourself"),
                600,
            ));
        }
    }
    if !session.open {
        return Err(session_ended());
    }
    // Asked of the session's actor, on this node or on its home node.
    let inviter = super::cluster::connected_technician(&state, session.id, who.user.id)
        .await?
        .ok_or_else(session_ended)?
        .ok_or_else(|| {
            AppError::new(Code::NotInSession, "connect to the session before inviting")
        })?;

    let secret = token::generate(token::prefix::INVITATION).map_err(AppError::internal)?;
    let now = Utc::now();
    let expires_at = now + Duration::seconds(state.settings.sessions.invitation_ttl_secs as i64);
    let invitation = NewInvitation {
        id: InvitationId::new(),
        session_id: session.id,
        inviter_participant_id: inviter,
        inviter_user_id: who.user.id,
        token_hash: token::hash(&secret),
        policy_id: policy.id,
        policy_name: policy.name.clone(),
        permissions: policy.permissions,
        guest_name: guest_name.clone(),
        comment: comment.clone(),
        email: email.clone(),
        created_at: now,
        expires_at,
    };
    let cap = state.settings.sessions.max_pending_invitations;
    if !state
        .store
        .audited(audit_entries(
            &who,
            session.account_id,
            "invitation.created",
            Some(invitation.id.to_string()),
            serde_json::json!({"session_id": session.id, "guest_name": guest_name, "policy": policy.name}),
        ))
        .insert_invitation(&invitation, cap)
        .await?
    {
        return Err(AppError::too_many(
            Code::TooManyInvitations,
            format!("this session holds {cap} pending invitations already; revoke one first"),
            60,
        ));
    }
    // Its actor runs beside the session's; when the inviter left (or the session ended) in
    // the meantime, the link is revoked at once and must not work.
    let tracked = super::cluster::track_invitation(
        &state,
        super::cluster::InvitationSpec {
            id: invitation.id,
            session_id: session.id,
            inviter,
            guest_name: guest_name.clone(),
            permissions: policy.permissions.to_vec(),
            policy_id: policy.id,
            expires_at,
        },
    )
    .await;
    if !tracked {
        return Err(AppError::new(
            Code::NotInSession,
            "you are no longer in the session",
        ));
    }
    tracing::info!(session = %session.id, invitation = %invitation.id, token = %token::log_tag(&secret), "invitation created");

    let url = format!("{}/join/{secret}", state.public_url);
    // In the inviter's language, with its message to the guest; the comment stays internal.
    let mut mail = i18n::invitation_mail(
        Lang::or_en(&who.user.language),
        &guest_name,
        &who.user.display_name(),
        &who.user.account_name,
        &session.subject,
        &url,
        expires_at,
    );
    if !message.is_empty() {
        mail.body.push_str(&format!("\n{message}\n"));
    }
    let mailed = match &email {
        Some(to) => {
            match state
                .outbox
                .mail(to, &mail.subject, mail.body.clone())
                .await
            {
                Ok(sent) => Some(sent),
                Err(err) => {
                    tracing::error!(invitation = %invitation.id, error = %err, "invitation mail not stored");
                    Some(false)
                }
            }
        }
        None => None,
    };
    let mut res = HttpResponse::Created();
    secret_headers(&mut res);
    Ok(res.json(InvitationCreated {
        id: invitation.id.0,
        mailto: mailto(email.as_deref(), &mail),
        url,
        expires_at,
        policy_id: policy.id.0,
        guest_name,
        mailed,
    }))
}

pub fn refusal(r: Refusal) -> AppError {
    let code = match r {
        Refusal::Used => Code::InvitationUsed,
        Refusal::Expired => Code::InvitationExpired,
        Refusal::Revoked => Code::InvitationRevoked,
    };
    AppError::new(code, r.message())
}

/// The refusal that a finished invitation answers with.
pub fn refusal_of(inv: &InvitationRecord) -> Option<Refusal> {
    Invitation {
        outcome: inv.outcome,
        expires_at: inv.expires_at,
    }
    .usable(Utc::now())
    .err()
}

#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "sessions",
    responses((status = 204), (status = 403, description = "missing_right / not_inviter"), (status = 404), (status = 410)))]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    auth: Authorized<area::Sessions>,
    path: web::Path<InvitationId>,
) -> AppResult<HttpResponse> {
    let inv = state.store.invitation(path.into_inner()).await?;
    let inv = inv.ok_or_else(|| AppError::new(Code::InvitationNotFound, "no such invitation"))?;
    let who = auth.in_account(inv.account_id, Code::InvitationNotFound)?;
    // A session on a device outside the caller's groups hides its invitations too.
    let session = visible_session(&state, who, inv.session_id)
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => AppError::new(Code::InvitationNotFound, "no such invitation"),
            other => other,
        })?;
    // Only its inviter, the session's owner, or an admin with sessions + objects.delete.
    let may_revoke = inv.inviter_user_id == who.user.id
        || session.owner_user_id == who.user.id
        || who.rights().can_write(Area::Sessions, Write::Delete);
    if !may_revoke {
        return Err(AppError::new(
            Code::NotInviter,
            "only the inviter, the session's owner or an admin with the delete right may revoke this invitation",
        ));
    }
    let entries = audit_entries(
        who,
        inv.account_id,
        "invitation.revoked",
        Some(inv.id.to_string()),
        serde_json::json!({}),
    );
    if super::cluster::revoke_invitation(&state, inv.id, inv.session_id, entries.clone()).await
        == Some(true)
    {
        return Ok(HttpResponse::NoContent().finish());
    }
    // No live actor: answer with what became of it.
    let now = state.store.invitation(inv.id).await?.unwrap_or(inv);
    match refusal_of(&now) {
        Some(r) => Err(refusal(r)),
        None => {
            state
                .store
                .audited(entries)
                .finish_invitation(now.id, Outcome::Revoked, Utc::now())
                .await?;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// Looks an invitation token up: 404 unknown, 410 used/expired/revoked.
pub async fn usable_invitation(state: &AppState, secret: &str) -> AppResult<InvitationRecord> {
    let inv = state
        .store
        .invitation_by_token_hash(&token::hash(secret))
        .await?;
    let inv = inv.ok_or_else(|| AppError::new(Code::InvitationNotFound, "no such invitation"))?;
    if let Some(r) = refusal_of(&inv) {
        return Err(refusal(r));
    }
    // Stored as pending, but its actor may have just used it up, revoked or expired it.
    if let Some(r) = super::cluster::peek_invitation(state, inv.id, inv.session_id).await {
        return Err(refusal(r));
    }
    Ok(inv)
}

#[utoipa::path(get, path = "/join/{token}", tag = "sessions",
    responses((status = 200, body = JoinInfo), (status = 404), (status = 410, description = "invitation_used / invitation_expired / invitation_revoked")))]
pub async fn join_info(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let secret = path.into_inner();
    let wants_json = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let result = usable_invitation(&state, &secret).await;
    let mut res = match (result, wants_json) {
        (Ok(inv), true) => {
            // The page can do without the name; the invitation itself is what matters.
            let inviter_name = match state.store.user(inv.inviter_user_id).await {
                Ok(Some(user)) => user.display_name(),
                Ok(None) => String::new(),
                Err(err) => {
                    tracing::warn!(invitation = %inv.id, error = %err, "inviter not read");
                    String::new()
                }
            };
            HttpResponse::Ok().json(JoinInfo {
                session_subject: inv.session_subject.clone(),
                inviter_name,
                guest_name: inv.guest_name.clone(),
                policy: JoinPolicy {
                    id: inv.policy_id.0,
                    name: inv.policy_name.clone(),
                    permissions: inv.permissions.to_vec(),
                },
                ws_url: format!("{}/ws/guest/{secret}", state.public_ws_url()),
                expires_at: inv.expires_at,
                email_required: inv.email.is_some(),
                email_hint: inv.email.as_deref().map(email_hint),
            })
        }
        (Err(err), true) => actix_web::ResponseError::error_response(&err),
        // A browser gets the console, which asks for the JSON form and shows the invitation or
        // why it cannot be used; the status still says which.
        (Ok(_), false) => super::console::shell(actix_web::http::StatusCode::OK),
        (Err(err), false) => super::console::shell(actix_web::ResponseError::status_code(&err)),
    };
    for (name, value) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(name),
            actix_web::http::header::HeaderValue::from_static(value),
        );
    }
    res
}

#[utoipa::path(post, path = "/api/v1/ws-tickets", tag = "sessions", request_body = TicketBody,
    responses((status = 200, body = TicketAnswer), (status = 401), (status = 403), (status = 404)))]
pub async fn ws_ticket(
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<TicketBody>,
) -> AppResult<HttpResponse> {
    let session = visible_session(&state, &who, SessionId(body.session_id)).await?;
    let secret = token::generate(token::prefix::WS_TICKET).map_err(AppError::internal)?;
    let expires_at =
        Utc::now() + Duration::seconds(state.settings.sessions.ws_ticket_ttl_secs as i64);
    state
        .store
        .insert_ws_ticket(
            &token::hash(&secret),
            who.user.id,
            session.id,
            &who.via,
            // The ticket acts as the credential it came from (login token or API key).
            Some(who.credential.as_str()).filter(|h| !h.is_empty()),
            expires_at,
        )
        .await?;
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(TicketAnswer {
        ticket: secret,
        expires_at,
    }))
}

/// An address with most of its local part hidden: `g•••@example.com`.
fn email_hint(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_string(),
    }
}

/// How long a join ticket (what a right invitation code gives) opens the WebSocket.
const JOIN_TICKET_SECS: i64 = 600;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JoinCodeSent {
    pub challenge_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// Where it went, partly hidden.
    pub sent_to: String,
}

#[utoipa::path(post, path = "/join/{token}/code", tag = "sessions",
    params(("token" = String, Path, description = "the invitation's one-time token")),
    responses((status = 202, body = JoinCodeSent), (status = 404), (status = 409, description = "no_email_to_verify"),
              (status = 410), (status = 429, description = "too_many_codes")))]
pub async fn join_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.check_code_rate(req.peer_addr().map(|a| a.ip()))?;
    let secret = path.into_inner();
    let (inv, email) = email_bound_invitation(&state, &secret).await?;
    let now = Utc::now();
    let code = crate::domain::second_factor::generate_code(state.settings.auth.code_digits)
        .map_err(AppError::internal)?;
    let id = Uuid::now_v7();
    let expires_at = now + Duration::seconds(state.settings.auth.code_ttl_secs as i64);
    let cap = state.settings.auth.code_sends_per_10min;
    if let Err(wait) = state
        .store
        .open_invitation_challenge(
            id,
            inv.id,
            &invitation_code_hash(id, &code),
            expires_at,
            cap,
            now,
        )
        .await?
    {
        return Err(AppError::too_many(
            Code::TooManyCodes,
            "too many codes sent for this invitation; wait a moment",
            wait,
        ));
    }
    let lang = super::request_lang(&req);
    let minutes = state.settings.auth.code_ttl_secs / 60;
    let (subject, body) = match lang {
        Lang::De => (
            format!("Ihr Code für die Support-Sitzung: {}", inv.session_subject),
            format!("Ihr Code zum Beitreten: {code} (gültig {minutes} Minuten)\n"),
        ),
        Lang::En => (
            format!("Your code for the support session: {}", inv.session_subject),
            format!("Your code to join: {code} (valid {minutes} minutes)\n"),
        ),
    };
    state
        .outbox
        .mail(&email, &subject, body)
        .await
        .map_err(AppError::internal)?;
    let mut res = HttpResponse::Accepted();
    secret_headers(&mut res);
    Ok(res.json(JoinCodeSent {
        challenge_id: id,
        expires_at,
        sent_to: email_hint(&email),
    }))
}

/// A usable invitation that is bound to an email address, with that address (409
/// `no_email_to_verify` for one that is not).
async fn email_bound_invitation(
    state: &AppState,
    secret: &str,
) -> AppResult<(InvitationRecord, String)> {
    let inv = usable_invitation(state, secret).await?;
    let email = inv.email.clone().ok_or_else(|| {
        AppError::new(
            Code::NoEmailToVerify,
            "this invitation is not bound to an email address",
        )
    })?;
    Ok((inv, email))
}

/// A code is stored bound to its challenge, as login codes are.
fn invitation_code_hash(challenge: Uuid, code: &str) -> String {
    token::hash(&format!("invitation:{challenge}:{code}"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinVerifyBody {
    pub challenge_id: Uuid,
    pub code: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JoinVerified {
    /// For `GET /ws/guest/{token}?ticket=`: opens this invitation's WebSocket within 10 minutes.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/join/{token}/verify", tag = "sessions", request_body = JoinVerifyBody,
    params(("token" = String, Path, description = "the invitation's one-time token")),
    responses((status = 200, body = JoinVerified), (status = 401, description = "invalid_code"), (status = 404),
              (status = 409, description = "no_email_to_verify"),
              (status = 410, description = "challenge_expired or the invitation is used, expired or revoked"),
              (status = 429, description = "too_many_attempts")))]
pub async fn join_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    // An object only (`web::Json` would also take `[challenge_id, code]`).
    body: super::optional_json::OptionalJson<JoinVerifyBody>,
) -> AppResult<HttpResponse> {
    use crate::{domain::second_factor::Wrong, store::InvitationCodeVerdict as V};
    let body = body.into_inner().ok_or_else(|| {
        AppError::new(
            Code::InvalidJson,
            "a JSON object with challenge_id and code is needed",
        )
    })?;
    state.check_code_rate(req.peer_addr().map(|a| a.ip()))?;
    let secret = path.into_inner();
    let (inv, email) = email_bound_invitation(&state, &secret).await?;
    let now = Utc::now();
    let ticket = token::generate(token::prefix::JOIN_TICKET).map_err(AppError::internal)?;
    let until = now + Duration::seconds(JOIN_TICKET_SECS);
    let typed: String = body.code.chars().filter(|c| !c.is_whitespace()).collect();
    let verdict = state
        .store
        .judge_invitation_code(
            inv.id,
            body.challenge_id,
            now,
            |stored| token::hashes_equal(stored, &invitation_code_hash(body.challenge_id, &typed)),
            &email,
            &token::hash(&ticket),
            until,
        )
        .await?;
    let locked = |wait: u64| {
        AppError::too_many(
            Code::TooManyAttempts,
            "too many wrong codes for this invitation; wait",
            wait,
        )
    };
    match verdict {
        V::Accepted => {
            tracing::info!(invitation = %inv.id, "invitation email verified");
            let mut res = HttpResponse::Ok();
            secret_headers(&mut res);
            Ok(res.json(JoinVerified {
                ticket,
                expires_at: until,
            }))
        }
        V::Unknown => Err(AppError::new(
            Code::ChallengeNotFound,
            "no such code request",
        )),
        V::Closed => Err(AppError::new(
            Code::ChallengeExpired,
            "this code can no longer be used; ask for a new one",
        )),
        V::Locked(wait) => Err(locked(wait)),
        V::Wrong(Wrong::Locked) => Err(locked(
            crate::domain::second_factor::LOCK_FOR.num_seconds() as u64,
        )),
        V::Wrong(_) => Err(AppError::new(Code::InvalidCode, "wrong code")),
    }
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/recording", tag = "sessions",
    responses((status = 200, content_type = "application/octet-stream",
               description = "the recording (docs/protocol.md, Recordings); grows while the session runs"),
              (status = 403), (status = 404, description = "session_not_found / recording_not_found")))]
pub async fn recording(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<SessionId>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    let session = state
        .store
        .session(id)
        .await?
        .ok_or_else(session_not_found)?;
    who.require_own_account(session.account_id, Code::SessionNotFound)?;
    if !who.rights().can_read(Area::Sessions) && !who.rights().can_read(Area::Reports) {
        return Err(AppError::new(
            Code::MissingRight,
            "this needs the sessions or reports area",
        ));
    }
    if !session_in_scope(&state, who.rights(), &session).await? {
        return Err(session_not_found());
    }
    let file = crate::recording::path_of(&state.session_deps.recordings_dir, id);
    let bytes = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::new(
                Code::RecordingNotFound,
                "this session was not recorded (or its recording is past its retention)",
            ));
        }
        Err(err) => return Err(AppError::internal(anyhow::anyhow!(err))),
    };
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res
        .content_type("application/octet-stream")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"session-{id}.sbrec\""),
        ))
        .body(bytes))
}
