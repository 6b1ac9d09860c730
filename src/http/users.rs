//! One user: read, edit, rights, soft delete and restore; the account's roles.

use crate::http::authz::{Authorized, InAccount, Level, Staff, area, level, platform};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{accounts::audit_entries, state::AppState, views::UserView};
use crate::{
    auth::extract::Principal,
    auth::token,
    domain::{
        ids::{AccountId, UserId},
        rights::{self, Area, Manager, PlatformRight, Rights, Write, leaves_account_unmanaged},
        validate,
    },
    error::{AppError, AppResult, Code},
    i18n::Lang,
    store::{AuditEntry, EmailChangeRefusal, UserRecord},
};
use chrono::Utc;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A new address takes effect only when the link mailed to it is opened
    /// (`POST /auth/email-confirm`); until then the answer's `email_pending` names it.
    pub email: Option<String>,
    /// `""` or `null` removes the phone number.
    pub phone: Option<String>,
    /// `en` or `de`: the language of the user's mails.
    pub language: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

/// The roles every account has from its creation (built in, so no account can lack them).
pub const ROLES: [RoleView; 2] = [
    RoleView {
        id: rights::SELF_SERVICE_FULL,
        name: "Self service portal - full access",
        description: "See own devices and run the device actions of the self-service portal",
    },
    RoleView {
        id: rights::SELF_SERVICE_READ,
        name: "Self service portal - read access",
        description: "See own devices in the self-service portal",
    },
];

/// A user of the caller's account (deleted ones only with `include_deleted`), else 404.
async fn account_user(
    state: &AppState,
    who: &Principal,
    id: UserId,
    include_deleted: bool,
) -> AppResult<UserRecord> {
    let user = state
        .store
        .user(id)
        .await?
        .filter(|u| include_deleted || !u.deleted);
    let user = user.ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    who.require_own_account(user.account_id, Code::UserNotFound)?;
    Ok(user)
}

/// A live user of the caller's account that the caller may manage at level `L` (area
/// `users`): 404 for another account's or a deleted user, 403 without the right.
async fn managed_user<'a, L: Level>(
    state: &AppState,
    auth: &'a Authorized<area::Users, L>,
    id: UserId,
) -> AppResult<(&'a Principal, UserRecord)> {
    let user = state.store.user(id).await?.filter(|u| !u.deleted);
    let user = user.ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    let who = auth.in_account(user.account_id, Code::UserNotFound)?;
    Ok((who, user))
}

/// 403 `rights_exceed_own` when the caller would reach beyond what it holds: rights it hands
/// out (`change`), or a target whose current rights or platform rights exceed its own (a user
/// manager cannot strip or delete the account's admin, nor platform staff).
fn within_own_rights(
    who: &Principal,
    target: &UserRecord,
    change: Option<&Rights>,
) -> AppResult<()> {
    let exceeds = change.is_some_and(|r| r.exceeds(who.rights()))
        || target.rights.exceeds(who.rights())
        || target
            .platform_rights
            .iter()
            .any(|right| !who.has_platform(*right));
    if exceeds {
        return Err(AppError::new(
            Code::RightsExceedOwn,
            "nobody hands out or takes away more than it holds itself",
        ));
    }
    Ok(())
}

/// Applies new rights (`Some`) or a soft delete (`None`) unless it would leave the account
/// without a user able to manage users (or the platform without a `platform_admin`): 409
/// `last_user_admin`. The rule is judged inside the store's write transaction.
async fn change_keeping_a_manager(
    state: &AppState,
    target: &UserRecord,
    change: Option<&Rights>,
    audit: Vec<AuditEntry>,
) -> AppResult<()> {
    let target_id = target.id.0;
    let done = state
        .store
        .audited(audit)
        .change_user_guarded(target.account_id, target.id, change, |users| {
            let managers: Vec<Manager<'_>> = users
                .iter()
                .filter(|u| u.kind == "user")
                .map(|u| Manager {
                    id: u.id.0,
                    rights: &u.rights,
                    platform_admin: u.platform_rights.contains(&PlatformRight::PlatformAdmin),
                })
                .collect();
            !leaves_account_unmanaged(&managers, target_id, change)
        })
        .await?;
    if !done {
        return Err(AppError::new(
            Code::LastUserAdmin,
            "the account would be left without a user able to manage users",
        ));
    }
    Ok(())
}

/// Closes every live connection opened with `credential` in any session (close 4003).
pub fn disconnect_credential(state: &AppState, credential: &str) {
    if credential.is_empty() {
        return;
    }
    super::cluster::announce(
        state,
        super::cluster::Broadcast::Credential {
            credential: credential.to_string(),
        },
    );
}

/// After a rights change: closes the user's connections to every live session of its account
/// that the new rights no longer reach (its area, or its device group).
async fn disconnect_out_of_scope(
    state: &AppState,
    user: &UserRecord,
    rights: &Rights,
) -> AppResult<()> {
    let sessions = state.store.open_sessions_of(user.account_id).await?;
    for session in sessions {
        let reachable = rights.can_read(Area::Sessions)
            && super::sessions::session_in_scope(state, rights, &session).await?;
        if !reachable {
            super::cluster::announce(
                state,
                super::cluster::Broadcast::UserInSession {
                    user: user.id,
                    session: session.id,
                },
            );
        }
    }
    Ok(())
}

/// Closes every live connection of a user in any session (close 4003).
pub fn disconnect_everywhere(state: &AppState, user: UserId) {
    super::cluster::announce(state, super::cluster::Broadcast::User { user });
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", responses((status = 200, body = UserDetail), (status = 403), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    let user = account_user(&state, &who, path.into_inner(), false).await?;
    if user.id != who.user.id {
        who.require_area(Area::Users)?;
    }
    Ok(HttpResponse::Ok().json(user_detail(&state, &user).await?))
}

async fn user_detail(state: &AppState, user: &UserRecord) -> AppResult<UserDetail> {
    Ok(UserDetail {
        user: UserView::from(user),
        rights: user.rights.clone(),
        two_factor: user.two_factor.clone(),
        email_pending: state.store.pending_email(user.id).await?,
    })
}

/// `GET /users/{id}`: the user with what an admin edits (rights, login options).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    #[schema(value_type = Object)]
    pub rights: crate::domain::rights::Rights,
    /// `off`, `email`, `sms` or `totp`.
    pub two_factor: String,
    /// A new address mailed a confirmation link, not yet in effect.
    pub email_pending: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    responses((status = 200, body = UserDetail), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn patch(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<UserId>,
    body: web::Json<UserPatch>,
) -> AppResult<HttpResponse> {
    let user = account_user(&state, &who, path.into_inner(), false).await?;
    // A user edits its own name and language; the address and phone (where login codes go)
    // and everyone else's fields need `users` + `objects.edit`.
    let own_only = user.id == who.user.id && body.email.is_none() && body.phone.is_none();
    if !own_only {
        who.require_write(Area::Users, Write::Edit)?;
    }
    if user.kind == "service" {
        return Err(AppError::new(
            Code::ServiceUser,
            "the service user cannot be changed",
        ));
    }
    let first_name = match &body.first_name {
        Some(v) => validate::bounded_text(v, 100).ok_or_else(|| {
            AppError::new(Code::InvalidFirstName, "first_name: 1 to 100 characters")
        })?,
        None => user.first_name.clone(),
    };
    let last_name = match &body.last_name {
        Some(v) => validate::bounded_text(v, 100).ok_or_else(|| {
            AppError::new(Code::InvalidLastName, "last_name: 1 to 100 characters")
        })?,
        None => user.last_name.clone(),
    };
    let new_email = match &body.email {
        Some(v) => {
            let email = validate::parse_email(v)
                .ok_or_else(|| AppError::new(Code::InvalidEmail, "email is not a valid address"))?;
            let same = user
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email));
            if same {
                None
            } else if state.store.email_taken(&email).await? {
                return Err(AppError::new(
                    Code::EmailTaken,
                    "this email address is taken",
                ));
            } else {
                Some(email)
            }
        }
        None => None,
    };
    let phone = match body.phone.as_deref().map(str::trim) {
        Some("") => None,
        Some(v) => Some(
            validate::parse_phone(v)
                .ok_or_else(|| AppError::new(Code::InvalidPhone, "phone must be in E.164 form"))?,
        ),
        None => user.phone.clone(),
    };
    let language = match body.language.as_deref() {
        Some(code) => Lang::parse(code)
            .ok_or_else(|| AppError::new(Code::InvalidLanguage, "language: \"en\" or \"de\""))?,
        None => Lang::or_en(&user.language),
    };
    if phone.is_none() && user.two_factor == "sms" {
        return Err(AppError::new(
            Code::PhoneRequired,
            "this user gets its login codes by SMS: choose another channel before removing the phone",
        ));
    }
    state
        .store
        .audited(audit_entries(
            &who,
            user.account_id,
            "user.changed",
            Some(user.id.to_string()),
            serde_json::json!({"username": user.username}),
        ))
        .update_user_profile(
            user.id,
            &first_name,
            &last_name,
            phone.as_deref(),
            language.code(),
        )
        .await?;
    let updated = account_user(&state, &who, user.id, false).await?;
    if let Some(email) = new_email {
        let entries = audit_entries(
            &who,
            user.account_id,
            "user.email_change_requested",
            Some(user.id.to_string()),
            serde_json::json!({"username": user.username, "new_email": email}),
        );
        mail_email_confirmation(&state, &updated, &email, entries).await?;
    }
    Ok(HttpResponse::Ok().json(user_detail(&state, &updated).await?))
}

/// Mails a link to `email` that makes it `user`'s address once opened.
async fn mail_email_confirmation(
    state: &AppState,
    user: &UserRecord,
    email: &str,
    audit: Vec<AuditEntry>,
) -> AppResult<()> {
    let secret = token::generate(token::prefix::EMAIL_CONFIRM).map_err(AppError::internal)?;
    let expires_at =
        Utc::now() + chrono::Duration::seconds(state.settings.auth.set_password_ttl_secs as i64);
    state
        .store
        .audited(audit)
        .insert_email_change(&token::hash(&secret), user.id, email, expires_at)
        .await?;
    let link = format!("{}/confirm-email?token={secret}", state.public_url);
    let mail = crate::i18n::confirm_email_mail(
        Lang::or_en(&user.language),
        &user.display_name(),
        &user.account_name,
        &link,
        expires_at,
    );
    state
        .outbox
        .mail(email, &mail.subject, mail.body)
        .await
        .map_err(AppError::internal)?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfirmBody {
    pub token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailConfirmed {
    pub email: String,
}

#[utoipa::path(post, path = "/api/v1/auth/email-confirm", tag = "auth", request_body = EmailConfirmBody,
    responses((status = 200, body = EmailConfirmed),
              (status = 404, description = "token_not_found"),
              (status = 409, description = "email_taken: another user holds or held the address"),
              (status = 410, description = "token_used / token_expired")))]
pub async fn confirm_email(
    state: web::Data<AppState>,
    body: web::Json<EmailConfirmBody>,
) -> AppResult<HttpResponse> {
    let hash = token::hash(body.token.trim());
    match state.store.confirm_email_change(&hash).await? {
        Ok((_, email)) => Ok(HttpResponse::Ok().json(EmailConfirmed { email })),
        Err(EmailChangeRefusal::Unknown) => {
            Err(AppError::new(Code::TokenNotFound, "this link is not known"))
        }
        Err(EmailChangeRefusal::Used) => {
            Err(AppError::new(Code::TokenUsed, "this link was used already"))
        }
        Err(EmailChangeRefusal::Expired) => {
            Err(AppError::new(Code::TokenExpired, "this link has expired"))
        }
        Err(EmailChangeRefusal::Taken) => Err(AppError::new(
            Code::EmailTaken,
            "this email address is taken",
        )),
    }
}

#[utoipa::path(put, path = "/api/v1/users/{id}/rights", tag = "users", request_body = Object,
    responses((status = 200, body = Object), (status = 403, description = "missing_right / own_rights / rights_exceed_own"), (status = 404), (status = 409, description = "last_user_admin")))]
pub async fn put_rights(
    state: web::Data<AppState>,
    auth: Authorized<area::Users, level::Edit>,
    path: web::Path<UserId>,
    body: web::Json<Rights>,
) -> AppResult<HttpResponse> {
    let (who, target) = managed_user(&state, &auth, path.into_inner()).await?;
    if target.kind == "service" {
        return Err(AppError::new(
            Code::ServiceUser,
            "the service user's rights are fixed",
        ));
    }
    if target.id == who.user.id {
        return Err(AppError::new(
            Code::OwnRights,
            "a user cannot change its own rights",
        ));
    }
    let rights = body.into_inner();
    within_own_rights(who, &target, Some(&rights))?;
    for role in &rights.roles {
        if !ROLES.iter().any(|r| r.id == role) {
            return Err(AppError::new(
                Code::UnknownRole,
                format!("no role {role:?}"),
            ));
        }
    }
    if let crate::domain::rights::Groups::Some(ids) = &rights.groups {
        let known: Vec<uuid::Uuid> = state
            .store
            .groups_of(target.account_id)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect();
        if let Some(unknown) = ids.iter().find(|id| !known.contains(id)) {
            return Err(AppError::new(
                Code::UnknownGroup,
                format!("no device group {unknown} in this account"),
            ));
        }
    }
    let entries = audit_entries(
        who,
        target.account_id,
        "user.rights_changed",
        Some(target.id.to_string()),
        serde_json::to_value(&rights).unwrap_or_default(),
    );
    change_keeping_a_manager(&state, &target, Some(&rights), entries).await?;
    disconnect_out_of_scope(&state, &target, &rights).await?;
    if !rights.support_access {
        // The user's consent to vendor support ends now, not when the token expires.
        for hash in state
            .store
            .revoke_vendor_tokens(target.account_id, Some(target.id))
            .await?
        {
            disconnect_credential(&state, &hash);
        }
    }
    Ok(HttpResponse::Ok().json(rights))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "last_user_admin")))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authorized<area::Users, level::Delete>,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    let (who, target) = managed_user(&state, &auth, path.into_inner()).await?;
    if target.kind == "service" {
        return Err(AppError::new(
            Code::ServiceUser,
            "the service user cannot be deleted",
        ));
    }
    within_own_rights(who, &target, None)?;
    let entries = audit_entries(
        who,
        target.account_id,
        "user.deleted",
        Some(target.id.to_string()),
        serde_json::json!({"username": target.username}),
    );
    change_keeping_a_manager(&state, &target, None, entries).await?;
    // Tokens and keys stop by themselves (they resolve only to live users); sockets are told.
    disconnect_everywhere(&state, target.id);
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/users/{id}/restore", tag = "users",
    responses((status = 200, body = UserView), (status = 403, description = "platform support only"), (status = 404), (status = 409)))]
pub async fn restore(
    state: web::Data<AppState>,
    staff: Staff<platform::Support>,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    let who = &staff.who;
    let user = state
        .store
        .user(path.into_inner())
        .await?
        .ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    if !user.deleted {
        return Err(AppError::new(Code::NotDeleted, "this user is not deleted"));
    }
    state
        .store
        .audited(audit_entries(
            who,
            user.account_id,
            "user.restored",
            Some(user.id.to_string()),
            serde_json::json!({"username": user.username}),
        ))
        .restore_user(user.id)
        .await?;
    let user = state
        .store
        .user(user.id)
        .await?
        .ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// A deleted user, as platform support sees it before restoring it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub deleted_at: chrono::DateTime<Utc>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/deleted-users", tag = "users",
    params(("aid" = Uuid, Path)),
    responses((status = 200, body = Vec<DeletedUserView>), (status = 403, description = "platform support only"), (status = 404)))]
pub async fn deleted_users(
    state: web::Data<AppState>,
    _staff: Staff<platform::Support>,
    path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let aid = path.into_inner();
    if state.store.account(aid).await?.is_none() {
        return Err(AppError::new(Code::AccountNotFound, "no such account"));
    }
    let users: Vec<DeletedUserView> = state
        .store
        .deleted_users_of(aid)
        .await?
        .iter()
        .map(|(u, at)| DeletedUserView {
            user: UserView::from(u),
            deleted_at: *at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/roles", tag = "users", responses((status = 200, body = Vec<RoleView>), (status = 403), (status = 404)))]
pub async fn roles(
    _scope: InAccount<area::Users>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(&ROLES))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginOptions {
    /// `off`, `email`, `sms` (needs a phone number) or `totp` (an authenticator app; only a
    /// user itself may switch to it, since the answer carries the shared secret).
    pub two_factor: String,
    /// With `totp`, in the answer only: the secret to put into the authenticator app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpSetup>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    pub secret: String,
    pub otpauth_url: String,
}

/// The answer to `{two_factor: "totp"}`: the secret for the app; `two_factor` is still the
/// user's current mode until `POST /me/totp/confirm`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpSetupAnswer {
    pub two_factor: String,
    pub secret: String,
    pub otpauth_url: String,
    /// The `otpauth_url` as a QR code to scan: an SVG document (black on white, no scripts).
    pub qr_svg: String,
    /// The same two fields, nested (as before the confirm step existed).
    pub totp: TotpSetup,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmBody {
    /// The app's current 6-digit code.
    pub code: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Shown this once; each works once instead of an app code. Stored only hashed.
    pub recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "auth", request_body = TotpConfirmBody,
    responses((status = 200, body = RecoveryCodes), (status = 401, description = "invalid_code"),
              (status = 403, description = "self_only"), (status = 409, description = "no_totp_setup"),
              (status = 429, description = "too_many_attempts")))]
/// Switches the caller to the authenticator app set up last, once a current code proves the
/// app holds its secret; answers ten recovery codes, once.
pub async fn confirm_totp(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    who: Principal,
    body: web::Json<TotpConfirmBody>,
) -> AppResult<HttpResponse> {
    if !who.acts_as_itself() {
        return Err(AppError::new(
            Code::SelfOnly,
            "only the user itself can set up an authenticator app",
        ));
    }
    // Guessing the first code is counted like a login.
    state.check_login_rate(&who.user.username, req.peer_addr().map(|a| a.ip()))?;
    let Some(sealed) = state.store.totp_pending(who.user.id).await? else {
        return Err(AppError::new(
            Code::NoTotpSetup,
            "set up an authenticator app first (login options: totp)",
        ));
    };
    let secret = state
        .secrets
        .open_value(&sealed)
        .map_err(AppError::internal)?;
    let unix = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let step = crate::auth::totp::check(&secret, &body.code, unix).map_err(AppError::internal)?;
    let Some(step) = step else {
        return Err(AppError::new(Code::InvalidCode, "wrong code"));
    };
    let codes = crate::auth::totp::recovery_codes().map_err(AppError::internal)?;
    let user = who.user.id.to_string();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| crate::auth::totp::normalize_recovery(c))
        .map(|c| crate::auth::totp::recovery_hash(&user, &c))
        .collect();
    if !state
        .store
        .audited(audit_entries(
            &who,
            who.user.account_id,
            "user.two_factor_changed",
            Some(who.user.id.to_string()),
            serde_json::json!({"two_factor": "totp"}),
        ))
        .confirm_totp(who.user.id, &sealed, step, &hashes)
        .await?
    {
        return Err(AppError::new(
            Code::NoTotpSetup,
            "the setup changed meanwhile; start again",
        ));
    }
    let mut res = HttpResponse::Ok();
    super::secret_headers(&mut res);
    Ok(res.json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[utoipa::path(put, path = "/api/v1/users/{id}/login-options", tag = "users", request_body = LoginOptions,
    responses((status = 200, body = LoginOptions), (status = 403), (status = 404), (status = 422, description = "phone_required / email_required / invalid_two_factor")))]
pub async fn login_options(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<UserId>,
    body: web::Json<LoginOptions>,
) -> AppResult<HttpResponse> {
    let user = account_user(&state, &who, path.into_inner(), false).await?;
    if user.id != who.user.id {
        who.require_write(Area::Users, Write::Edit)?;
    }
    if user.kind == "service" {
        return Err(AppError::new(
            Code::ServiceUser,
            "the service user does not log in",
        ));
    }
    let mode = match body.two_factor.as_str() {
        "off" => "off",
        "email" if user.email.is_some() => "email",
        "email" => {
            return Err(AppError::new(
                Code::EmailRequired,
                "two-factor by email needs an email address",
            ));
        }
        "sms" if user.phone.is_some() => "sms",
        "sms" => {
            return Err(AppError::new(
                Code::PhoneRequired,
                "two-factor by SMS needs a phone number",
            ));
        }
        // Only the user itself, signed in as itself (not vendor support acting as it): the
        // answer carries the shared secret.
        "totp" if user.id != who.user.id || !who.acts_as_itself() => {
            return Err(AppError::new(
                Code::SelfOnly,
                "only the user itself can set up an authenticator app",
            ));
        }
        "totp" => {
            // Confirm-first: the secret waits until a first code proves the app has it
            // (POST /me/totp/confirm); the login does not change before that.
            let secret = crate::auth::totp::new_secret().map_err(AppError::internal)?;
            let sealed = state.secrets.seal(&secret).map_err(AppError::internal)?;
            state
                .store
                .audited(audit_entries(
                    &who,
                    user.account_id,
                    "user.totp_setup_started",
                    Some(user.id.to_string()),
                    serde_json::json!({}),
                ))
                .set_totp_pending(user.id, &sealed)
                .await?;
            let otpauth_url = crate::auth::totp::otpauth_url(&secret, &user.username);
            let qr_svg = crate::auth::totp::qr_svg(&otpauth_url).map_err(AppError::internal)?;
            let mut res = HttpResponse::Ok();
            super::secret_headers(&mut res);
            return Ok(res.json(TotpSetupAnswer {
                two_factor: user.two_factor.clone(),
                secret: secret.clone(),
                otpauth_url: otpauth_url.clone(),
                qr_svg,
                totp: TotpSetup {
                    secret,
                    otpauth_url,
                },
            }));
        }
        _ => {
            return Err(AppError::new(
                Code::InvalidTwoFactor,
                "two_factor is \"off\", \"email\", \"sms\" or \"totp\"",
            ));
        }
    };
    state
        .store
        .audited(audit_entries(
            &who,
            user.account_id,
            "user.two_factor_changed",
            Some(user.id.to_string()),
            serde_json::json!({"two_factor": mode}),
        ))
        .set_two_factor(user.id, mode)
        .await?;
    Ok(HttpResponse::Ok().json(LoginOptions {
        two_factor: mode.to_string(),
        totp: None,
    }))
}
