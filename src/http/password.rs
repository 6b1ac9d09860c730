//! The set-password link a new user is mailed, and setting the password through it.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::state::AppState;
use crate::http::authz::{Authorized, area, level};
use crate::{
    auth::{extract::Principal, password::acceptable, token},
    config::Secret,
    domain::ids::UserId,
    error::{AppError, AppResult, Code},
    i18n::{self, Lang, LinkWhy},
    store::{AuditEntry, UserRecord},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordBody {
    pub token: String,
    #[schema(value_type = String)]
    pub password: Secret,
}

/// Why a set-password link is mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkReason {
    /// A new user.
    NewUser,
    /// The user asked (forgot its password): at most `RESETS_PER_HOUR` an hour.
    Reset,
    /// An admin sent one on the user's behalf.
    Admin,
}

impl LinkReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::NewUser => "new_user",
            Self::Reset => "reset",
            Self::Admin => "admin",
        }
    }
}

/// Set-password mails one user may be sent within an hour by `POST /auth/password-reset`.
pub const RESETS_PER_HOUR: u32 = 3;
/// ... and by admins (`POST /users/{id}/set-password-link`).
pub const ADMIN_LINKS_PER_HOUR: u32 = 10;

/// Mails a new user its login name and a single-use set-password link (through the outbox, so
/// a failed send is retried).
pub async fn mail_set_password_link(state: &AppState, user: &UserRecord) {
    mail_link(state, user, LinkReason::NewUser, Vec::new()).await;
}

/// Mails `user` a fresh set-password link, ending its earlier unused ones. `false` when it has
/// no email, its cap for `reason` is reached, or the link could not be stored.
/// `audit` is written with the link's token, in its transaction.
pub async fn mail_link(
    state: &AppState,
    user: &UserRecord,
    reason: LinkReason,
    audit: Vec<AuditEntry>,
) -> bool {
    let Some(email) = user.email.as_deref() else {
        return false;
    };
    let secret = match token::generate("sbp_") {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "no set-password token");
            return false;
        }
    };
    let ttl = state.settings.auth.set_password_ttl_secs as i64;
    let now = Utc::now();
    let expires_at = now + Duration::seconds(ttl);
    let cap = match reason {
        LinkReason::NewUser => None,
        LinkReason::Reset => Some((RESETS_PER_HOUR, now - Duration::hours(1))),
        LinkReason::Admin => Some((ADMIN_LINKS_PER_HOUR, now - Duration::hours(1))),
    };
    match state
        .store
        .audited(audit)
        .insert_password_token(
            &token::hash(&secret),
            user.id,
            expires_at,
            reason.as_str(),
            cap,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(user = %user.id, ?reason, "set-password link cap reached; no mail");
            return false;
        }
        Err(err) => {
            tracing::error!(error = %err, "set-password token not stored");
            return false;
        }
    }
    let link = format!("{}/set-password?token={secret}", state.public_url);
    let why = match reason {
        LinkReason::NewUser => LinkWhy::NewUser,
        LinkReason::Reset => LinkWhy::Reset,
        LinkReason::Admin => LinkWhy::Admin,
    };
    let mail = i18n::set_password_mail(
        Lang::or_en(&user.language),
        why,
        &user.display_name(),
        &user.account_name,
        &user.username,
        &link,
        expires_at,
    );
    if let Err(err) = state.outbox.mail(email, &mail.subject, mail.body).await {
        tracing::error!(user = %user.id, error = %err, "set-password mail not stored");
        return false;
    }
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    pub token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkState {
    /// Always `usable` (anything else is an error answer).
    pub state: &'static str,
    pub expires_at: chrono::DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/auth/password-link", tag = "auth", request_body = LinkBody,
    responses((status = 200, body = LinkState), (status = 404, description = "token_not_found"),
              (status = 410, description = "token_used / token_expired")))]
/// Whether a set-password link can still be used, without using it (the page checks its link
/// as it loads, so nobody types a password into a dead link).
pub async fn check_link(
    state: web::Data<AppState>,
    body: web::Json<LinkBody>,
) -> AppResult<HttpResponse> {
    let (_, expires_at, used) = state
        .store
        .password_token(&token::hash(&body.token))
        .await?
        .ok_or_else(|| AppError::new(Code::TokenNotFound, "unknown set-password link"))?;
    if used {
        return Err(AppError::new(Code::TokenUsed, "this link was used already"));
    }
    if expires_at <= Utc::now() {
        return Err(AppError::new(Code::TokenExpired, "this link has expired"));
    }
    Ok(HttpResponse::Ok().json(LinkState {
        state: "usable",
        expires_at,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = SetPasswordBody,
    responses((status = 204), (status = 404), (status = 410, description = "token_used / token_expired"), (status = 422)))]
pub async fn set_password(
    state: web::Data<AppState>,
    body: web::Json<SetPasswordBody>,
) -> AppResult<HttpResponse> {
    let hash = token::hash(&body.token);
    let (user_id, expires_at, used) = state
        .store
        .password_token(&hash)
        .await?
        .ok_or_else(|| AppError::new(Code::TokenNotFound, "unknown set-password link"))?;
    if used {
        return Err(AppError::new(Code::TokenUsed, "this link was used already"));
    }
    if expires_at <= Utc::now() {
        return Err(AppError::new(Code::TokenExpired, "this link has expired"));
    }
    if !acceptable(body.password.expose()) {
        return Err(AppError::new(
            Code::WeakPassword,
            "password: 8 to 256 characters",
        ));
    }
    let user = state.store.user(user_id).await?.filter(|u| !u.deleted);
    let user =
        user.ok_or_else(|| AppError::new(Code::TokenUsed, "this link can no longer be used"))?;
    let phc = state
        .passwords
        .hash(&body.password)
        .await
        .map_err(AppError::from_hashing)?;
    let entry = AuditEntry {
        account_id: user.account_id,
        actor_user_id: Some(user.id),
        actor_name: user.username.clone(),
        via: "set_password_link".into(),
        action: "user.password_set",
        target: Some(user.id.to_string()),
        details: serde_json::json!({}),
    };
    let Some(ended) = state
        .store
        .audited(vec![entry])
        .set_password_with_token(&hash, user.id, &phc)
        .await?
    else {
        return Err(AppError::new(Code::TokenUsed, "this link was used already"));
    };
    // Every login made with the old password is over, sockets included.
    for credential in ended {
        super::users::disconnect_credential(&state, &credential);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// A username or an email address.
    pub login: String,
}

/// The one answer of `POST /auth/password-reset`, whether or not the user exists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetAnswer {
    pub message: &'static str,
}

const RESET_ANSWER: ResetAnswer = ResetAnswer {
    message: "If an account with this login exists, a link to set a new password was mailed to it.",
};

#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetBody,
    responses((status = 202, body = ResetAnswer), (status = 400), (status = 429, description = "too_many_attempts")))]
/// Mails a fresh set-password link to an active user with a password login, at most
/// `RESETS_PER_HOUR` an hour; the answer is the same whether or not such a user exists, and
/// comes before the lookup is done (its time tells nothing either).
pub async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetBody>,
) -> AppResult<HttpResponse> {
    // Counted like a login attempt from this address: no mass mailing through the form.
    state.check_code_rate(req.peer_addr().map(|a| a.ip()))?;
    let login: String = body.into_inner().login.trim().chars().take(320).collect();
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let user = match state.store.user_by_login(&login).await {
            Ok(user) => user,
            Err(err) => {
                tracing::error!(error = %err, "password reset: user lookup failed");
                return;
            }
        };
        let Some(user) = user.filter(|u| !u.deleted && u.kind == "user") else {
            return;
        };
        let entry = AuditEntry {
            account_id: user.account_id,
            actor_user_id: Some(user.id),
            actor_name: user.username.clone(),
            via: "password_reset".into(),
            action: "user.password_reset_requested",
            target: Some(user.id.to_string()),
            details: serde_json::json!({}),
        };
        mail_link(&state, &user, LinkReason::Reset, vec![entry]).await;
    });
    Ok(HttpResponse::Accepted().json(RESET_ANSWER))
}

#[utoipa::path(post, path = "/api/v1/users/{id}/set-password-link", tag = "users",
    responses((status = 202), (status = 403), (status = 404), (status = 422, description = "email_required"),
              (status = 429, description = "too_many_mails")))]
/// An admin (`users` + `objects.edit`) mails a user a fresh set-password link.
pub async fn send_link(
    state: web::Data<AppState>,
    auth: Authorized<area::Users, level::Edit>,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    let user = state
        .store
        .user(path.into_inner())
        .await?
        .filter(|u| !u.deleted);
    let user = user.ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    let who = auth.in_account(user.account_id, Code::UserNotFound)?;
    if user.kind != "user" || user.email.is_none() {
        return Err(AppError::new(
            Code::EmailRequired,
            "this user has no email address to send a link to",
        ));
    }
    let entries = super::accounts::audit_entries(
        who,
        user.account_id,
        "user.password_link_sent",
        Some(user.id.to_string()),
        serde_json::json!({"username": user.username}),
    );
    if !mail_link(&state, &user, LinkReason::Admin, entries).await {
        return Err(AppError::too_many(
            Code::TooManyMails,
            format!("at most {ADMIN_LINKS_PER_HOUR} links per user and hour"),
            3600,
        ));
    }
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    #[schema(value_type = String)]
    pub current_password: Secret,
    #[schema(value_type = String)]
    pub new_password: Secret,
}

#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = ChangePasswordBody,
    responses((status = 204), (status = 401), (status = 403, description = "reauth_required / missing_right"),
              (status = 422, description = "weak_password"), (status = 429, description = "too_many_attempts")))]
/// The signed-in user changes its own password with its current one; its other login tokens
/// end (401) and their sockets close (4003); the calling token stays.
pub async fn change_own(
    state: web::Data<AppState>,
    req: HttpRequest,
    who: Principal,
    body: web::Json<ChangePasswordBody>,
) -> AppResult<HttpResponse> {
    if !who.acts_as_itself() || who.via == "api_key" {
        return Err(AppError::new(
            Code::MissingRight,
            "only the user itself, signed in with its password, changes its password",
        ));
    }
    // The current password is checked like a login: it must not become a guessing oracle.
    state.check_login_rate(&who.user.username, req.peer_addr().map(|a| a.ip()))?;
    let ok = state
        .passwords
        .verify(&body.current_password, who.user.password_hash.as_deref())
        .await
        .map_err(AppError::from_hashing)?;
    if !ok {
        return Err(AppError::new(
            Code::ReauthRequired,
            "the current password is wrong",
        ));
    }
    if !acceptable(body.new_password.expose()) {
        return Err(AppError::new(
            Code::WeakPassword,
            "password: 8 to 256 characters",
        ));
    }
    let phc = state
        .passwords
        .hash(&body.new_password)
        .await
        .map_err(AppError::from_hashing)?;
    let ended = state
        .store
        .audited(super::accounts::audit_entries(
            &who,
            who.user.account_id,
            "user.password_changed",
            Some(who.user.id.to_string()),
            serde_json::json!({}),
        ))
        .change_password(who.user.id, &phc, Some(&who.token_hash))
        .await?;
    for credential in ended {
        super::users::disconnect_credential(&state, &credential);
    }
    Ok(HttpResponse::NoContent().finish())
}
