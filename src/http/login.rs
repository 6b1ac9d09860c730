//! Login and logout with username and password.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{
    accounts::{audit_entries, write_audit},
    state::AppState,
    views::UserView,
};
use uuid::Uuid;

use crate::{
    auth::{extract::Principal, token},
    config::Secret,
    domain::second_factor::{self, Wrong},
    error::{AppError, AppResult, Code},
    i18n::{self, Lang},
    store::{AuditEntry, ChallengeRecord, CodeCheck, CodeVerdict, TotpState, UserRecord},
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
    AppError::new(Code::InvalidCredentials, "unknown user or wrong password")
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginAnswer), (status = 401, description = "invalid_credentials"),
              (status = 429, description = "too_many_attempts / too_many_codes"), (status = 503, description = "busy")))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> AppResult<HttpResponse> {
    state.check_login_rate(&body.username, req.peer_addr().map(|a| a.ip()))?;
    let user = state.store.user_by_username(&body.username).await?;
    // Unknown, deleted and password-less users cost one argon2 verification like everyone
    // else and get the same answer as a wrong password.
    let usable = user.as_ref().filter(|u| !u.deleted && u.kind == "user");
    let hash = usable.and_then(|u| u.password_hash.as_deref());
    let ok = state
        .passwords
        .verify(&body.password, hash)
        .await
        .map_err(AppError::from_hashing)?;
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
            write_audit(&state, &entry).await;
        }
        return Err(bad_credentials());
    };
    if user.two_factor == "email" || user.two_factor == "sms" || user.two_factor == "totp" {
        return start_second_factor(&state, user).await;
    }
    issue_login_token(&state, user, false, Vec::new()).await
}

/// The token of a completed login, audited, with the last login time updated.
/// Issues a login token; the login's audit entry (and `also`) is written with it.
async fn issue_login_token(
    state: &AppState,
    user: &UserRecord,
    second_factor: bool,
    also: Vec<AuditEntry>,
) -> AppResult<HttpResponse> {
    let secret = token::generate(token::prefix::LOGIN).map_err(AppError::internal)?;
    let expires_at = Utc::now() + Duration::seconds(state.settings.auth.token_ttl_secs as i64);
    let principal = Principal::own(user.clone(), "login");
    let mut entries = also;
    entries.extend(audit_entries(
        &principal,
        user.account_id,
        "login.succeeded",
        None,
        serde_json::json!({"two_factor": user.two_factor}),
    ));
    state
        .store
        .audited(entries)
        .insert_token(&token::hash(&secret), user.id, "login", None, expires_at)
        .await?;
    if second_factor {
        // A fresh second factor stands in for the password in a step-up (for a while).
        state
            .store
            .mark_second_factor(&token::hash(&secret), Utc::now())
            .await?;
    }
    state.store.touch_last_login(user.id, Utc::now()).await?;
    tracing::info!(user = %user.id, "login");
    let user = state
        .store
        .user(user.id)
        .await?
        .unwrap_or_else(|| user.clone());
    let mut answer = HttpResponse::Ok();
    super::secret_headers(&mut answer);
    Ok(answer.json(LoginAnswer {
        token: secret,
        user: UserView::from(&user),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecondFactorAnswer {
    pub second_factor: Challenge,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Challenge {
    pub challenge_id: Uuid,
    pub channel: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    pub challenge_id: Uuid,
    #[schema(value_type = String)]
    pub code: Secret,
}

fn too_many_attempts(retry_after: u64) -> AppError {
    AppError::too_many(
        Code::TooManyAttempts,
        "too many wrong codes; the code step is locked for a while",
        retry_after,
    )
}

/// After the password: sends a code by the user's channel, unless locked or over the send cap.
async fn start_second_factor(state: &AppState, user: &UserRecord) -> AppResult<HttpResponse> {
    let now = Utc::now();
    if let Some(wait) = state.store.code_guard(user.id).await?.locked(now) {
        return Err(too_many_attempts(wait));
    }
    if user.two_factor == "totp" {
        // Nothing to send: the code comes from the user's authenticator app.
        let challenge = ChallengeRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            channel: "totp".into(),
            code_hash: String::new(),
            expires_at: now + Duration::seconds(state.settings.auth.code_ttl_secs as i64),
            wrong_guesses: 0,
            open: true,
        };
        // TOTP sends nothing, so no send cap applies.
        state
            .store
            .open_challenge_capped(&challenge, 0, now)
            .await?
            .map_err(too_many_attempts)?;
        return Ok(HttpResponse::Ok().json(SecondFactorAnswer {
            second_factor: Challenge {
                challenge_id: challenge.id,
                channel: "totp".into(),
            },
        }));
    }
    let code = second_factor::generate_code(state.settings.auth.code_digits)
        .map_err(AppError::internal)?;
    let challenge = ChallengeRecord {
        id: Uuid::now_v7(),
        user_id: user.id,
        channel: user.two_factor.clone(),
        code_hash: String::new(),
        expires_at: now + Duration::seconds(state.settings.auth.code_ttl_secs as i64),
        wrong_guesses: 0,
        open: true,
    };
    let challenge = ChallengeRecord {
        code_hash: code_hash(challenge.id, &code),
        ..challenge
    };
    // The send cap is counted and the challenge stored in one transaction: logins at the same
    // moment cannot send more codes than the cap.
    let cap = state.settings.auth.code_sends_per_10min;
    if let Err(wait) = state
        .store
        .open_challenge_capped(&challenge, cap, now)
        .await?
    {
        return Err(AppError::too_many(
            Code::TooManyCodes,
            "too many codes sent; wait before logging in again",
            wait,
        ));
    }
    let words = i18n::login_code(
        Lang::or_en(&user.language),
        &user.account_name,
        &code,
        state.settings.auth.code_ttl_secs / 60,
    );
    let sent = match (
        user.two_factor.as_str(),
        user.email.as_deref(),
        user.phone.as_deref(),
    ) {
        ("email", Some(email), _) => {
            state
                .outbox
                .mail(email, &words.subject, format!("{}\n", words.body))
                .await
        }
        ("sms", _, Some(phone)) => state.outbox.sms(phone, words.body).await,
        _ => Err(anyhow::anyhow!(
            "no address for the {} channel",
            user.two_factor
        )),
    };
    // Stored in the outbox: a transport hiccup is retried while the code is still valid.
    if !sent.map_err(AppError::internal)? {
        tracing::warn!(user = %user.id, "login code queued for retry");
    }
    tracing::info!(user = %user.id, channel = %user.two_factor, "login code sent");
    Ok(HttpResponse::Ok().json(SecondFactorAnswer {
        second_factor: Challenge {
            challenge_id: challenge.id,
            channel: user.two_factor.clone(),
        },
    }))
}

/// Whether `code` is the code of `challenge`: the mailed or texted code (compared in constant
/// time), or the current code of the user's authenticator app, whose step must then be newer
/// than the last one accepted (the store marks it, so a step is accepted once).
fn check_code(
    state: &AppState,
    challenge: &ChallengeRecord,
    totp: Option<TotpState>,
    code: &str,
    now: chrono::DateTime<Utc>,
) -> CodeCheck {
    if challenge.channel != "totp" {
        let right =
            token::hashes_equal(&code_hash(challenge.id, code.trim()), &challenge.code_hash);
        return if right {
            CodeCheck::Right { totp_step: None }
        } else {
            CodeCheck::Wrong
        };
    }
    // Not an app code: perhaps one of the user's recovery codes (used up by the store).
    if let Some(recovery) = crate::auth::totp::normalize_recovery(code) {
        return CodeCheck::Recovery {
            code_hash: crate::auth::totp::recovery_hash(&challenge.user_id.to_string(), &recovery),
        };
    }
    let Some(totp) = totp else {
        return CodeCheck::Wrong;
    };
    let secret = match state.secrets.open_value(&totp.sealed_secret) {
        Ok(secret) => secret,
        Err(err) => {
            tracing::error!(error = ?err, "stored authenticator secret unreadable");
            return CodeCheck::Wrong;
        }
    };
    let unix = u64::try_from(now.timestamp()).unwrap_or(0);
    match crate::auth::totp::check(&secret, code, unix) {
        Ok(Some(step)) if totp.last_step.is_none_or(|last| step > last) => CodeCheck::Right {
            totp_step: Some(step),
        },
        Ok(_) => CodeCheck::Wrong,
        Err(err) => {
            tracing::error!(error = ?err, "authenticator code check failed");
            CodeCheck::Wrong
        }
    }
}

/// The stored form of a code: bound to its challenge, so a code answers only its own login.
fn code_hash(challenge: Uuid, code: &str) -> String {
    token::hash(&format!("{challenge}:{code}"))
}

#[utoipa::path(post, path = "/api/v1/auth/verify", tag = "auth", request_body = VerifyBody,
    responses((status = 200, body = LoginAnswer), (status = 401, description = "invalid_code"),
              (status = 404), (status = 410, description = "challenge_expired"), (status = 429, description = "too_many_attempts")))]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyBody>,
) -> AppResult<HttpResponse> {
    state.check_code_rate(req.peer_addr().map(|a| a.ip()))?;
    let now = Utc::now();
    let code = body.code.expose();
    let verdict = state
        .store
        .judge_code(body.challenge_id, now, |challenge, totp| {
            check_code(&state, challenge, totp, code, now)
        })
        .await?;
    let closed = || {
        AppError::new(
            Code::ChallengeExpired,
            "this code can no longer be used; log in again",
        )
    };
    let (user_id, outcome) = match verdict {
        CodeVerdict::Unknown => {
            return Err(AppError::new(
                Code::ChallengeNotFound,
                "no such login attempt",
            ));
        }
        CodeVerdict::Locked(wait) => return Err(too_many_attempts(wait)),
        CodeVerdict::Closed => return Err(closed()),
        CodeVerdict::Accepted(user_id) => {
            let user = state.store.user(user_id).await?.filter(|u| !u.deleted);
            let user = user.ok_or_else(closed)?;
            let mut also = Vec::new();
            if user.two_factor == "totp" && crate::auth::totp::normalize_recovery(code).is_some() {
                // A lost phone is worth knowing about: the account's admins see it in words.
                also.push(AuditEntry {
                    account_id: user.account_id,
                    actor_user_id: Some(user.id),
                    actor_name: user.username.clone(),
                    via: "login".into(),
                    action: "user.recovery_code_used",
                    target: Some(user.id.to_string()),
                    details: serde_json::json!({"username": user.username}),
                });
            }
            return issue_login_token(&state, &user, true, also).await;
        }
        CodeVerdict::Wrong(user_id, outcome) => (user_id, outcome),
    };
    let Some(user) = state.store.user(user_id).await? else {
        return Err(closed());
    };
    let entry = AuditEntry {
        account_id: user.account_id,
        actor_user_id: Some(user.id),
        actor_name: user.username.clone(),
        via: "login".into(),
        action: "login.failed",
        target: None,
        details: serde_json::json!({"step": "code", "outcome": format!("{outcome:?}").to_lowercase()}),
    };
    write_audit(&state, &entry).await;
    match outcome {
        Wrong::Locked => Err(too_many_attempts(
            second_factor::LOCK_FOR.num_seconds() as u64
        )),
        Wrong::Invalid | Wrong::Burned => Err(AppError::new(Code::InvalidCode, "wrong code")),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401)))]
pub async fn logout(state: web::Data<AppState>, who: Principal) -> AppResult<HttpResponse> {
    state.store.revoke_token(&who.token_hash).await?;
    // Sockets opened with this token (or a ticket made from it) close within the second.
    super::users::disconnect_credential(&state, &who.credential);
    Ok(HttpResponse::NoContent().finish())
}
