//! Accounts, users and rights: the part the live sessions need (the full user management
//! grows here).

use crate::http::authz::{InAccount, Staff, area, level, platform};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{state::AppState, views::UserView};
use crate::{
    auth::extract::Principal,
    config::Secret,
    domain::{
        ids::{AccountId, UserId},
        rights::{PlatformRight, Rights},
        validate,
    },
    error::{AppError, AppResult, Code},
    i18n::Lang,
    store::{AuditEntry, NewAccount, NewUser},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// `en` or `de`: the language of the user's mails (default: the caller's
    /// `Accept-Language`, else English).
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub certified: bool,
    pub admin: NewUserBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountCreated {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub certified: bool,
    pub admin_user_id: Uuid,
    pub service_user_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    pub user: UserView,
    #[schema(value_type = Object)]
    pub rights: Rights,
    #[schema(value_type = Vec<String>)]
    pub platform: Vec<PlatformRight>,
    /// The account the caller acts in: its id, name and kind (extension). A partner's support
    /// login names the customer account and `partner` the partner it came from.
    pub account: MeAccount,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeAccount {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    /// Set while a partner user acts inside a customer account through a grant.
    pub partner: Option<String>,
}

/// Checks a new user's fields and hashes its password.
pub async fn build_user(
    state: &AppState,
    body: &NewUserBody,
    kind: &'static str,
    rights: Rights,
    fallback: Lang,
) -> AppResult<NewUser> {
    let language = match body.language.as_deref() {
        Some(code) => Lang::parse(code)
            .ok_or_else(|| AppError::new(Code::InvalidLanguage, "language: \"en\" or \"de\""))?,
        None => fallback,
    };
    let username = validate::parse_username(&body.username).ok_or_else(|| {
        AppError::new(
            Code::InvalidUsername,
            "username: 1 to 64 letters, digits, '.', '_', '-', '@'",
        )
    })?;
    let first_name = validate::bounded_text(&body.first_name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidFirstName, "first_name: 1 to 100 characters"))?;
    let last_name = validate::bounded_text(&body.last_name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidLastName, "last_name: 1 to 100 characters"))?;
    let email = validate::parse_email(&body.email)
        .ok_or_else(|| AppError::new(Code::InvalidEmail, "email is not a valid address"))?;
    let phone = match body.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => Some(validate::parse_phone(p).ok_or_else(|| {
            AppError::new(
                Code::InvalidPhone,
                "phone must be in E.164 form, e.g. +4930123456",
            )
        })?),
        None => None,
    };
    let password_hash = match &body.password {
        Some(pw) if !crate::auth::password::acceptable(pw.expose()) => {
            return Err(AppError::new(
                Code::WeakPassword,
                "password: 8 to 256 characters",
            ));
        }
        Some(pw) => Some(
            state
                .passwords
                .hash(pw)
                .await
                .map_err(AppError::from_hashing)?,
        ),
        None => None,
    };
    if state.store.username_taken(&username).await? {
        return Err(AppError::new(Code::UsernameTaken, "this username is taken"));
    }
    if state.store.email_taken(&email).await? {
        return Err(AppError::new(
            Code::EmailTaken,
            "this email address is taken",
        ));
    }
    Ok(NewUser {
        id: UserId::new(),
        kind,
        username,
        first_name,
        last_name,
        email: Some(email),
        phone,
        password_hash,
        rights,
        platform_rights: Vec::new(),
        language: language.code(),
    })
}

/// The audit entries that record `action` done by `who` in `account`: one in the account, and
/// a copy in the partner's own account when a partner user acted inside a customer account.
/// Hand them to [`crate::store::Store::audited`] so that they commit with the action.
pub fn audit_entries(
    who: &Principal,
    account: AccountId,
    action: &'static str,
    target: Option<String>,
    details: serde_json::Value,
) -> Vec<AuditEntry> {
    let mut details = details;
    if let (Some(p), Some(map)) = (&who.partner, details.as_object_mut()) {
        map.insert("grant_id".into(), serde_json::json!(p.grant));
    }
    let entry = AuditEntry {
        account_id: account,
        actor_user_id: Some(who.user.id),
        actor_name: who.actor_name(),
        via: who.via.clone(),
        action,
        target,
        details,
    };
    let mut entries = vec![entry.clone()];
    // What a partner user does inside a customer account lands in its partner's log too.
    if let Some(p) = &who.partner
        && p.home_account != account
    {
        let mut copy = entry;
        if let Some(map) = copy.details.as_object_mut() {
            map.insert("customer_account_id".into(), serde_json::json!(account));
        }
        copy.account_id = p.home_account;
        entries.push(copy);
    }
    entries
}

/// Records an event that is not a write of its own (a refusal, a command handed to an agent, a
/// mail sent): its entries in a transaction of their own.
pub async fn audit(
    state: &AppState,
    who: &Principal,
    account: AccountId,
    action: &'static str,
    target: Option<String>,
    details: serde_json::Value,
) {
    for entry in audit_entries(who, account, action, target, details) {
        write_audit(state, &entry).await;
    }
}

/// Writes an audit entry; a failure is logged, never fails the request that caused it.
pub async fn write_audit(state: &AppState, entry: &AuditEntry) {
    if let Err(err) = state.store.audit(entry).await {
        tracing::error!(error = %err, action = entry.action, "audit entry not written");
    }
}

#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = NewAccountBody,
    responses((status = 201, body = AccountCreated), (status = 403, description = "not platform admin"),
              (status = 409, description = "username_taken / email_taken"), (status = 422, description = "invalid field")))]
pub async fn create_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    staff: Staff<platform::Admin>,
    body: web::Json<NewAccountBody>,
) -> AppResult<HttpResponse> {
    let who = &staff.who;
    let kind: &'static str = match body.kind.as_str() {
        "customer" => "customer",
        "partner" => "partner",
        _ => {
            return Err(AppError::new(
                Code::InvalidKind,
                "kind is \"customer\" or \"partner\"",
            ));
        }
    };
    let name = validate::bounded_text(&body.name, 200)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 200 characters"))?;
    let id = AccountId::new();
    let admin = build_user(
        &state,
        &body.admin,
        "user",
        Rights::account_admin(),
        super::request_lang(&req),
    )
    .await?;
    let service = NewUser::service(id);
    let (admin_id, service_id) = (admin.id, service.id);
    let certified = kind == "partner" && body.certified;
    let account = NewAccount {
        id,
        name: name.clone(),
        kind,
        certified,
        users: vec![admin, service],
    };
    state
        .store
        .audited(audit_entries(
            who,
            id,
            "account.created",
            Some(id.to_string()),
            serde_json::json!({"name": name, "kind": kind}),
        ))
        .create_account(&account)
        .await?;
    if let Some(admin) = state.store.user(admin_id).await? {
        super::password::mail_set_password_link(&state, &admin).await;
    }
    Ok(HttpResponse::Created().json(AccountCreated {
        id: id.0,
        name,
        kind: kind.to_string(),
        certified,
        admin_user_id: admin_id.0,
        service_user_id: service_id.0,
    }))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", responses((status = 200, body = MeView), (status = 401)))]
pub async fn me(state: web::Data<AppState>, who: Principal) -> AppResult<HttpResponse> {
    // Acting through a partner grant, the account is the customer's (its name looked up).
    let account_name = match &who.partner {
        Some(_) => state
            .store
            .account(who.user.account_id)
            .await?
            .map(|a| a.name)
            .unwrap_or_default(),
        None => who.user.account_name.clone(),
    };
    Ok(HttpResponse::Ok().json(MeView {
        user: UserView::from(&who.user),
        rights: who.user.rights.clone(),
        platform: who.user.platform_rights.clone(),
        account: MeAccount {
            id: who.user.account_id.0,
            name: account_name,
            kind: who.user.account_kind.clone(),
            partner: who.partner.as_ref().map(|p| p.home_account_name.clone()),
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/users", tag = "accounts",
    responses((status = 200, body = Vec<UserView>), (status = 403), (status = 404)))]
pub async fn list_users(
    state: web::Data<AppState>,
    scope: InAccount<area::Users, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let aid = scope.account;
    let users = state.store.users_of(aid).await?;
    Ok(HttpResponse::Ok().json(users.iter().map(UserView::from).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/users", tag = "accounts", request_body = NewUserBody,
    responses((status = 201, body = UserView), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn create_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    scope: InAccount<area::Users, level::Create>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: web::Json<NewUserBody>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let user = build_user(
        &state,
        &body,
        "user",
        Rights::none(),
        super::request_lang(&req),
    )
    .await?;
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "user.created",
            Some(user.id.to_string()),
            serde_json::json!({"username": user.username}),
        ))
        .create_user(aid, &user)
        .await?;
    let record = state
        .store
        .user(user.id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("user vanished after insert")))?;
    super::password::mail_set_password_link(&state, &record).await;
    Ok(HttpResponse::Created().json(UserView::from(&record)))
}
