//! The set-password link a new user is mailed, and setting the password through it.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::{accounts::write_audit, state::AppState};
use crate::{
    auth::{password::acceptable, token},
    config::Secret,
    error::{AppError, AppResult, Code},
    store::{AuditEntry, UserRecord},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordBody {
    pub token: String,
    #[schema(value_type = String)]
    pub password: Secret,
}

/// Mails a new user its login name and a single-use set-password link (through the outbox, so
/// a failed send is retried).
pub async fn mail_set_password_link(state: &AppState, user: &UserRecord) {
    let Some(email) = user.email.as_deref() else {
        return;
    };
    let secret = match token::generate("sbp_") {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "no set-password token");
            return;
        }
    };
    let ttl = state.settings.auth.set_password_ttl_secs as i64;
    let expires_at = Utc::now() + Duration::seconds(ttl);
    if let Err(err) = state
        .store
        .insert_password_token(&token::hash(&secret), user.id, expires_at)
        .await
    {
        tracing::error!(error = %err, "set-password token not stored");
        return;
    }
    let link = format!("{}/set-password?token={secret}", state.public_url);
    let body = format!(
        "Hello {},\n\nan account was created for you.\n\nLogin name: {}\n\nSet your password with this link (valid until {}, usable once):\n{link}\n",
        user.display_name(),
        user.username,
        expires_at.format("%Y-%m-%d %H:%M UTC"),
    );
    if let Err(err) = state
        .outbox
        .mail(email, "Your support-broker account", body)
        .await
    {
        tracing::error!(user = %user.id, error = %err, "set-password mail not stored");
    }
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
    if !state
        .store
        .set_password_with_token(&hash, user.id, &phc)
        .await?
    {
        return Err(AppError::new(Code::TokenUsed, "this link was used already"));
    }
    let entry = AuditEntry {
        account_id: user.account_id,
        actor_user_id: Some(user.id),
        actor_name: user.username.clone(),
        via: "set_password_link".into(),
        action: "user.password_set",
        target: Some(user.id.to_string()),
        details: serde_json::json!({}),
    };
    write_audit(&state, &entry).await;
    Ok(HttpResponse::NoContent().finish())
}
