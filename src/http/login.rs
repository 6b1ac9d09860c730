//! Login and logout with username and password.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{accounts::audit, state::AppState, views::UserView};
use crate::{
    auth::{extract::Principal, token},
    config::Secret,
    error::{AppError, AppResult},
    store::AuditEntry,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    #[schema(value_type = String)]
    pub password: Secret,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    pub token: String,
    pub user: UserView,
}

fn bad_credentials() -> AppError {
    AppError::Unauthorized {
        code: "invalid_credentials",
        message: "unknown user or wrong password".into(),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginAnswer), (status = 401, description = "invalid_credentials"),
              (status = 429, description = "too_many_attempts")))]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> AppResult<HttpResponse> {
    state.check_login_rate(&body.username)?;
    let user = state.store.user_by_username(&body.username).await?;
    // Unknown, deleted and password-less users cost one argon2 verification like everyone
    // else and get the same answer as a wrong password.
    let usable = user.as_ref().filter(|u| !u.deleted && u.kind == "user");
    let hash = usable.and_then(|u| u.password_hash.as_deref());
    let ok = state
        .passwords
        .verify(&body.password, hash)
        .await
        .map_err(AppError::internal)?;
    let Some(user) = usable.filter(|_| ok) else {
        if let Some(u) = &user {
            let entry = AuditEntry {
                account_id: u.account_id,
                actor_user_id: Some(u.id),
                actor_name: u.username.clone(),
                via: "login".into(),
                action: "login.failed",
                target: None,
                details: serde_json::json!({}),
            };
            let _ = state.store.audit(&entry).await;
        }
        return Err(bad_credentials());
    };
    let secret = token::generate(token::prefix::LOGIN).map_err(AppError::internal)?;
    let expires_at = Utc::now() + Duration::seconds(state.settings.auth.token_ttl_secs as i64);
    state
        .store
        .insert_token(&token::hash(&secret), user.id, "login", None, expires_at)
        .await?;
    state.store.touch_last_login(user.id, Utc::now()).await?;
    let principal = Principal {
        user: user.clone(),
        via: "login".into(),
        token_hash: String::new(),
        on_behalf_of: None,
    };
    audit(
        &state,
        &principal,
        user.account_id,
        "login.succeeded",
        None,
        serde_json::json!({}),
    )
    .await;
    tracing::info!(user = %user.id, "login");
    let mut answer = HttpResponse::Ok();
    super::secret_headers(&mut answer);
    Ok(answer.json(LoginAnswer {
        token: secret,
        user: UserView::from(user),
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401)))]
pub async fn logout(state: web::Data<AppState>, who: Principal) -> AppResult<HttpResponse> {
    state.store.revoke_token(&who.token_hash).await?;
    Ok(HttpResponse::NoContent().finish())
}
