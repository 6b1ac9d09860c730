//! Account settings and the vendor's support access: as an account's service user (allowed by
//! the account's `support_access`) or as one user (allowed by that user's `support_access` right).

use crate::http::authz::{Staff, platform};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    accounts::audit_entries, login::LoginAnswer, secret_headers, state::AppState, views::UserView,
};
use crate::{
    auth::{extract::Principal, token},
    domain::{
        ids::{AccountId, UserId},
        rights::{Area, PlatformRight, Write},
        validate,
    },
    error::{AppError, AppResult, Code},
    store::{AccountRecord, UserRecord},
};

/// How long a vendor-support token lives.
const SUPPORT_TOKEN_HOURS: i64 = 1;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub certified: bool,
    pub support_access: bool,
    pub created_at: DateTime<Utc>,
    /// The security policy the console offers first for invitations (`null`: the first by
    /// name).
    pub default_policy_id: Option<Uuid>,
    /// A customer account's number (nine digits) that its admins hand to a partner, who asks
    /// for access with it; shown to the account's own users and platform staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_number: Option<String>,
    /// Whether guests wait until the customer admits them: `off`, `technician` (the owner of a
    /// session switches it), `always`.
    pub guest_admission: String,
    /// Whether the account's sessions are recorded (shown to every participant).
    pub record_sessions: bool,
}

impl From<&AccountRecord> for AccountView {
    fn from(a: &AccountRecord) -> Self {
        Self {
            id: a.id.0,
            name: a.name.clone(),
            kind: a.kind.clone(),
            default_policy_id: a.default_policy_id,
            certified: a.certified,
            support_access: a.support_access,
            created_at: a.created_at,
            customer_number: a.customer_number.clone(),
            guest_admission: a.guest_admission.clone(),
            record_sessions: a.record_sessions,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub certified: Option<bool>,
    pub support_access: Option<bool>,
    /// A live policy of the account, or `null` for none (`settings` + `objects.edit`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub default_policy_id: Option<Option<Uuid>>,
    /// `off`, `technician` or `always` (`settings` + `objects.edit`, the account itself).
    #[serde(default)]
    pub guest_admission: Option<String>,
    /// Record the account's sessions (`settings` + `objects.edit`, the account itself).
    #[serde(default)]
    pub record_sessions: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(d).map(Some)
}

/// An account the caller belongs to, or any account for platform staff; else 404.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    /// `customer`, `partner` or `platform`.
    pub kind: Option<String>,
    /// Part of the name (any case).
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(AccountsQuery),
    responses((status = 200, body = Vec<AccountView>), (status = 400), (status = 401), (status = 403, description = "platform_only")))]
/// Every account, for platform staff (either platform right), by name.
pub async fn list_accounts(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<AccountsQuery>,
) -> AppResult<HttpResponse> {
    if !who.has_platform(PlatformRight::PlatformAdmin)
        && !who.has_platform(PlatformRight::PlatformSupport)
    {
        who.require_platform(PlatformRight::PlatformSupport)?;
    }
    let kind = query.kind.as_deref().filter(|k| !k.is_empty());
    if kind.is_some_and(|k| !["customer", "partner", "platform"].contains(&k)) {
        return Err(AppError::new(
            Code::InvalidQuery,
            "kind is customer, partner or platform",
        ));
    }
    let q: Option<String> = query
        .q
        .as_deref()
        .map(|q| q.trim().chars().take(200).collect())
        .filter(|q: &String| !q.is_empty());
    let accounts = state.store.list_accounts(kind, q.as_deref()).await?;
    Ok(HttpResponse::Ok().json(accounts.iter().map(AccountView::from).collect::<Vec<_>>()))
}

async fn visible_account(
    state: &AppState,
    who: &Principal,
    id: AccountId,
) -> AppResult<AccountRecord> {
    let account = state
        .store
        .account(id)
        .await?
        .ok_or_else(|| AppError::new(Code::AccountNotFound, "no such account"))?;
    let staff = who.has_platform(PlatformRight::PlatformAdmin)
        || who.has_platform(PlatformRight::PlatformSupport);
    if !staff {
        who.require_own_account(account.id, Code::AccountNotFound)?;
    }
    Ok(account)
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "accounts", responses((status = 200, body = AccountView), (status = 404)))]
pub async fn get_account(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let mut account = visible_account(&state, &who, path.into_inner()).await?;
    if account.kind == "customer" && account.customer_number.is_none() {
        account.customer_number = Some(state.store.ensure_customer_number(account.id).await?);
    }
    Ok(HttpResponse::Ok().json(AccountView::from(&account)))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{id}", tag = "accounts", request_body = AccountPatch,
    responses((status = 200, body = AccountView), (status = 403), (status = 404), (status = 422)))]
pub async fn patch_account(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<AccountId>,
    body: web::Json<AccountPatch>,
) -> AppResult<HttpResponse> {
    let mut account = visible_account(&state, &who, path.into_inner()).await?;
    let platform_admin = who.has_platform(PlatformRight::PlatformAdmin);
    let own = account.id == who.account();
    if let Some(certified) = body.certified {
        who.require_platform(PlatformRight::PlatformAdmin)?;
        if account.kind != "partner" {
            return Err(AppError::new(
                Code::NotAPartnerAccount,
                "only partner accounts are certified",
            ));
        }
        account.certified = certified;
    }
    if let Some(name) = &body.name {
        if !platform_admin {
            who.require_write(Area::Settings, Write::Edit)?;
        }
        account.name = validate::bounded_text(name, 200)
            .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 200 characters"))?;
    }
    if let Some(support_access) = body.support_access {
        // The account's own decision: only its users with settings + edit make it.
        if !own {
            return Err(AppError::new(
                Code::OwnAccountOnly,
                "only the account itself decides on vendor support access",
            ));
        }
        who.require_write(Area::Settings, Write::Edit)?;
        if !who.acts_as_itself() {
            return Err(AppError::new(
                Code::OwnAccountOnly,
                "vendor support and partners cannot change vendor support access",
            ));
        }
        account.support_access = support_access;
    }
    if let Some(policy) = body.default_policy_id {
        if !own {
            return Err(AppError::new(
                Code::OwnAccountOnly,
                "only the account itself chooses its default policy",
            ));
        }
        who.require_write(Area::Settings, Write::Edit)?;
        if let Some(id) = policy {
            let live = state
                .store
                .policy(crate::domain::ids::PolicyId(id))
                .await?
                .is_some_and(|p| p.account_id == account.id);
            if !live {
                return Err(AppError::new(Code::PolicyNotFound, "no such policy"));
            }
        }
        account.default_policy_id = policy;
    }
    if let Some(rule) = &body.guest_admission {
        if !own {
            return Err(AppError::new(
                Code::OwnAccountOnly,
                "only the account itself decides how guests are admitted",
            ));
        }
        who.require_write(Area::Settings, Write::Edit)?;
        let rule = crate::domain::session::Admission::parse(rule).ok_or_else(|| {
            AppError::new(
                Code::InvalidAdmission,
                "guest_admission is 'off', 'technician' or 'always'",
            )
        })?;
        account.guest_admission = rule.as_str().to_string();
    }
    if let Some(record) = body.record_sessions {
        if !own {
            return Err(AppError::new(
                Code::OwnAccountOnly,
                "only the account itself decides whether its sessions are recorded",
            ));
        }
        who.require_write(Area::Settings, Write::Edit)?;
        account.record_sessions = record;
    }
    let uncertified = body.certified == Some(false);
    state
        .store
        .audited(audit_entries(&who, account.id, "account.changed", Some(account.id.to_string()),
            serde_json::json!({"name": body.name, "certified": body.certified, "support_access": body.support_access,
                "default_policy_id": body.default_policy_id, "guest_admission": body.guest_admission,
                "record_sessions": body.record_sessions})))
        .update_account(&account)
        .await?;
    if body.support_access == Some(false) {
        // Ends every vendor support token into the account at once, and their sockets.
        for hash in state.store.revoke_vendor_tokens(account.id, None).await? {
            super::users::disconnect_credential(&state, &hash);
        }
    }
    if uncertified {
        // An un-certified partner keeps no access: its grants end as if revoked.
        for grant in state.store.open_grants(account.id, true).await? {
            let entries = audit_entries(
                &who,
                grant.customer_account_id,
                "access.revoked",
                Some(grant.id.to_string()),
                serde_json::json!({"partner": grant.partner_name, "cause": "partner_uncertified"}),
            );
            super::access::end_grant_with_aftermath(&state, &grant, "revoked", entries).await?;
        }
    }
    Ok(HttpResponse::Ok().json(AccountView::from(&account)))
}

/// Issues a vendor-support token for `user`, audited on its account.
async fn support_token(
    state: &AppState,
    who: &Principal,
    user: UserRecord,
    action: &'static str,
) -> AppResult<HttpResponse> {
    let secret = token::generate(token::prefix::LOGIN).map_err(AppError::internal)?;
    let expires_at = Utc::now() + Duration::hours(SUPPORT_TOKEN_HOURS);
    let acting = Principal {
        user: user.clone(),
        via: "vendor_support".into(),
        token_hash: String::new(),
        credential: String::new(),
        on_behalf_of: Some(who.user.username.clone()),
        partner: None,
    };
    state
        .store
        .audited(audit_entries(
            &acting,
            user.account_id,
            action,
            Some(user.id.to_string()),
            serde_json::json!({"staff": who.user.username}),
        ))
        .insert_token(
            &token::hash(&secret),
            user.id,
            "vendor_support",
            Some(&who.user.username),
            expires_at,
        )
        .await?;
    tracing::info!(staff = %who.user.id, user = %user.id, "vendor support login");
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(LoginAnswer {
        token: secret,
        user: UserView::from(&user),
    }))
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/support-login", tag = "support",
    responses((status = 200, body = LoginAnswer), (status = 403, description = "platform support only, or support_access_disabled"), (status = 404)))]
pub async fn account_support_login(
    state: web::Data<AppState>,
    staff: Staff<platform::Support>,
    path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let who = &staff.who;
    let account = state
        .store
        .account(path.into_inner())
        .await?
        .ok_or_else(|| AppError::new(Code::AccountNotFound, "no such account"))?;
    if !account.support_access {
        return Err(AppError::new(
            Code::SupportAccessDisabled,
            "this account does not allow vendor support access",
        ));
    }
    let service = state.store.service_user_of(account.id).await?;
    let service = match service {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let service = service.ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "account {} has no service user",
            account.id
        ))
    })?;
    support_token(&state, who, service, "support.account_login").await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/support-login", tag = "support",
    responses((status = 200, body = LoginAnswer), (status = 403, description = "platform support only, or support_access_disabled"), (status = 404)))]
pub async fn user_support_login(
    state: web::Data<AppState>,
    staff: Staff<platform::Support>,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    let who = &staff.who;
    let user = state
        .store
        .user(path.into_inner())
        .await?
        .filter(|u| !u.deleted && u.kind == "user");
    let user = user.ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    if !user.rights.support_access {
        return Err(AppError::new(
            Code::SupportAccessDisabled,
            "this user does not allow vendor support to act as them",
        ));
    }
    support_token(&state, who, user, "support.user_login").await
}
