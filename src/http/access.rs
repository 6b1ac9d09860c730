//! Partner access: a certified partner asks a customer account for access; the customer
//! approves (optionally until a time), rejects, and revokes at any moment. A grant lets the
//! partner assign its own devices to the account; with `support_user` it also lets partner
//! users log in to the account (devices and sessions only).

use crate::http::authz::{Authorized, InAccount, area, level};
use std::time::Duration as StdDuration;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    accounts::audit_entries, devices::DeviceView, login::LoginAnswer, secret_headers,
    state::AppState, views::UserView,
};
use crate::{
    auth::{extract::Principal, token},
    domain::{
        access::{MAX_MESSAGE_CHARS, support_rights},
        ids::{AccessRequestId, AccountId, DeviceId, GrantId},
        rights::{Area, Write},
        session::EndReason,
        validate,
    },
    error::{AppError, AppResult, Code},
    store::{
        AccessRequestRecord, Assignment, AuditEntry, Direction, GrantRecord, is_unique_violation,
    },
};

/// How often lapsed grants are looked for and ended.
const EXPIRY_SWEEP: StdDuration = StdDuration::from_secs(1);

/// Longest life of a partner support token (shorter when the grant expires sooner).
const SUPPORT_TOKEN_HOURS: i64 = 8;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: Uuid,
    pub state: String,
    pub account_id: Uuid,
    pub partner: Named,
    pub requested_by: Named,
    pub requested_at: DateTime<Utc>,
    pub support_user: bool,
    pub message: Option<String>,
    /// The customer account asked (in the partner's own list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Named>,
}

impl From<AccessRequestRecord> for RequestView {
    fn from(r: AccessRequestRecord) -> Self {
        Self {
            id: r.id.0,
            state: r.state,
            account_id: r.customer_account_id.0,
            partner: Named {
                id: r.partner_account_id.0,
                name: r.partner_name,
            },
            requested_by: Named {
                id: r.requested_by.0,
                name: r.requested_by_name,
            },
            requested_at: r.created_at,
            support_user: r.support_user,
            message: r.message,
            customer: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub partner: Named,
    pub support_user: bool,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The customer account that granted it (in the partner's own list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<Named>,
    /// The device groups it is narrowed to (`null`: all of the account's devices).
    pub groups: Option<Vec<Uuid>>,
    /// The single devices it is narrowed to (`null`: not narrowed to devices).
    pub devices: Option<Vec<Uuid>>,
    /// When the partner asked to renew it (and its words), until the customer sets an end.
    pub renewal_requested_at: Option<DateTime<Utc>>,
    pub renewal_message: Option<String>,
}

impl From<GrantRecord> for GrantView {
    fn from(g: GrantRecord) -> Self {
        Self {
            id: g.id.0,
            account_id: g.customer_account_id.0,
            partner: Named {
                id: g.partner_account_id.0,
                name: g.partner_name,
            },
            support_user: g.support_user,
            granted_at: g.granted_at,
            expires_at: g.expires_at,
            customer: None,
            groups: g.scope_groups,
            devices: g.scope_devices,
            renewal_requested_at: g.renewal_requested_at,
            renewal_message: g.renewal_message,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessList {
    /// Whether the console shows the access menu: false while there is no request and no grant.
    pub visible: bool,
    pub requests: Vec<RequestView>,
    pub grants: Vec<GrantView>,
}

/// The entries of one step in both accounts: the customer's log and the partner's.
fn both_entries(
    who: &Principal,
    customer: AccountId,
    partner: AccountId,
    action: &'static str,
    target: String,
    details: serde_json::Value,
) -> Vec<AuditEntry> {
    let mut entries = audit_entries(who, customer, action, Some(target.clone()), details.clone());
    entries.extend(audit_entries(who, partner, action, Some(target), details));
    entries
}

/// The partner's grants in force towards `customer`.
async fn grant_in_force(
    state: &AppState,
    partner: AccountId,
    customer: AccountId,
) -> AppResult<Option<GrantRecord>> {
    let now = Utc::now();
    Ok(state
        .store
        .open_grants(partner, true)
        .await?
        .into_iter()
        .find(|g| g.customer_account_id == customer && g.active(now)))
}

/// Closes every live connection of the partner's users inside the customer account (4003).
/// Ends a grant and everything that lived through it: the partner's support tokens (they
/// resolve only through a grant in force), the sessions its users own in the customer account
/// (ended with `access_revoked`), and its users' other live connections into the account
/// (4003). Enrollment codes minted through it are refused at enrollment (`code_revoked`).
/// False when the grant had ended already.
pub async fn end_grant_with_aftermath(
    state: &AppState,
    grant: &GrantRecord,
    reason: &str,
    audit: Vec<AuditEntry>,
) -> AppResult<bool> {
    if !state
        .store
        .audited(audit)
        .end_grant(grant.id, reason)
        .await?
    {
        return Ok(false);
    }
    disconnect_partner(state, grant.partner_account_id, grant.customer_account_id).await;
    tracing::info!(grant = %grant.id, reason, "partner access ended");
    Ok(true)
}

async fn disconnect_partner(state: &AppState, partner: AccountId, customer: AccountId) {
    let users = match state.store.users_of(partner).await {
        Ok(users) => users,
        Err(err) => {
            tracing::error!(error = %err, "partner users not read; their connections stay");
            return;
        }
    };
    let sessions = match state.store.open_sessions_of(customer).await {
        Ok(sessions) => sessions,
        Err(err) => {
            tracing::error!(error = %err, "open sessions not read; partner connections stay");
            return;
        }
    };
    use super::cluster::{Broadcast, announce};
    for session in sessions {
        // A session a partner user owns dies with the access it was made through.
        if users.iter().any(|u| u.id == session.owner_user_id) {
            announce(
                state,
                Broadcast::End {
                    session: session.id,
                    reason: EndReason::AccessRevoked,
                },
            );
            continue;
        }
        for user in &users {
            announce(
                state,
                Broadcast::UserInSession {
                    user: user.id,
                    session: session.id,
                },
            );
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The customer account: its id, or (extension) its `customer_number`.
    #[serde(default)]
    pub account_id: Option<Uuid>,
    /// The nine digits the customer's admins see in their settings and hand out.
    #[serde(default)]
    pub customer_number: Option<String>,
    #[serde(default)]
    pub support_user: bool,
    #[serde(default)]
    pub message: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/access-requests", tag = "partner access", request_body = NewRequest,
    responses((status = 201, body = RequestView), (status = 403, description = "partner_not_certified / not_a_partner / missing_right"),
              (status = 404, description = "account_not_found"), (status = 409, description = "request_pending / already_granted"), (status = 422)))]
pub async fn request_access(
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<NewRequest>,
) -> AppResult<HttpResponse> {
    if who.partner.is_some() || who.user.account_kind != "partner" {
        return Err(AppError::new(
            Code::NotAPartner,
            "only users of a partner account ask for access",
        ));
    }
    who.require_area(Area::Access)?;
    let partner = state
        .store
        .account(who.account())
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("caller's account missing")))?;
    if !partner.certified {
        return Err(AppError::new(
            Code::PartnerNotCertified,
            "only certified partners may ask for access",
        ));
    }
    let customer = match (body.account_id, body.customer_number.as_deref()) {
        (Some(id), None) => AccountId(id),
        (None, Some(number)) => {
            // People copy numbers with spaces or dashes.
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            let stray = number
                .chars()
                .any(|c| !c.is_ascii_digit() && !matches!(c, ' ' | '-'));
            if digits.len() != 9 || stray {
                return Err(AppError::new(
                    Code::InvalidCustomerNumber,
                    "a customer number has nine digits",
                ));
            }
            state
                .store
                .account_by_customer_number(&digits)
                .await?
                .ok_or_else(|| AppError::new(Code::AccountNotFound, "no such account"))?
        }
        _ => {
            return Err(AppError::new(
                Code::InvalidCustomerNumber,
                "name the customer by account_id or by customer_number, one of them",
            ));
        }
    };
    let target = state
        .store
        .account(customer)
        .await?
        .filter(|a| a.kind == "customer")
        .ok_or_else(|| AppError::new(Code::AccountNotFound, "no such account"))?;
    let message = match body.message.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            validate::bounded_text(text, MAX_MESSAGE_CHARS).ok_or_else(|| {
                AppError::new(
                    Code::InvalidMessage,
                    format!(
                        "message: at most {MAX_MESSAGE_CHARS} characters, no control characters"
                    ),
                )
            })?,
        ),
    };
    if grant_in_force(&state, partner.id, customer)
        .await?
        .is_some()
    {
        return Err(AppError::new(
            Code::AlreadyGranted,
            "this account already grants you access",
        ));
    }
    let request = AccessRequestRecord {
        id: AccessRequestId::new(),
        partner_account_id: partner.id,
        partner_name: partner.name.clone(),
        customer_account_id: target.id,
        customer_name: target.name.clone(),
        requested_by: who.user.id,
        requested_by_name: who.user.display_name(),
        support_user: body.support_user,
        message,
        state: "pending".into(),
        created_at: Utc::now(),
    };
    state
        .store
        .audited(both_entries(
            &who,
            target.id,
            partner.id,
            "access.requested",
            request.id.to_string(),
            serde_json::json!({"partner": partner.name, "customer": target.name,
                               "support_user": request.support_user}),
        ))
        .insert_access_request(&request)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::new(
                    Code::RequestPending,
                    "a request of yours to this account is already pending",
                )
            } else {
                e.into()
            }
        })?;
    notify_customer_admins(&state, &target, &request).await;
    let mut view = RequestView::from(request);
    view.customer = Some(Named {
        id: target.id.0,
        name: target.name,
    });
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/access", tag = "partner access",
    responses((status = 200, body = AccessList), (status = 403), (status = 404)))]
pub async fn access_list(
    state: web::Data<AppState>,
    scope: InAccount<area::Access, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let aid = scope.account;
    let requests: Vec<RequestView> = state
        .store
        .pending_requests_of(aid)
        .await?
        .into_iter()
        .map(RequestView::from)
        .collect();
    let now = Utc::now();
    let grants: Vec<GrantView> = state
        .store
        .open_grants(aid, false)
        .await?
        .into_iter()
        .filter(|g| g.active(now))
        .map(GrantView::from)
        .collect();
    Ok(HttpResponse::Ok().json(AccessList {
        visible: !requests.is_empty() || !grants.is_empty(),
        requests,
        grants,
    }))
}

/// A request addressed to the caller's account, for a user with `access` + `objects.edit`
/// signed in as itself (a partner's support login never decides on access).
async fn own_request<'a>(
    state: &AppState,
    auth: &'a Authorized<area::Access, level::Edit>,
    id: AccessRequestId,
) -> AppResult<(&'a Principal, AccessRequestRecord)> {
    let request = state
        .store
        .access_request(id)
        .await?
        .ok_or_else(|| AppError::new(Code::RequestNotFound, "no such request"))?;
    let who = auth.in_account(request.customer_account_id, Code::RequestNotFound)?;
    if who.partner.is_some() {
        return Err(AppError::new(
            Code::MissingRight,
            "a partner support login cannot decide on access",
        ));
    }
    Ok((who, request))
}

fn not_pending() -> AppError {
    AppError::new(Code::RequestNotPending, "this request was decided already")
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// When the grant ends by itself; none: until revoked.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/access-requests/{id}/approve", tag = "partner access", request_body = ApproveBody,
    responses((status = 201, body = GrantView), (status = 403), (status = 404), (status = 409, description = "request_not_pending"),
              (status = 422, description = "invalid_expiry")))]
pub async fn approve(
    state: web::Data<AppState>,
    auth: Authorized<area::Access, level::Edit>,
    path: web::Path<AccessRequestId>,
    body: super::optional_json::OptionalJson<ApproveBody>,
) -> AppResult<HttpResponse> {
    let (who, request) = own_request(&state, &auth, path.into_inner()).await?;
    let expires_at = body.into_inner().and_then(|b| b.expires_at);
    if expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(AppError::new(
            Code::InvalidExpiry,
            "expires_at must be in the future",
        ));
    }
    if request.state != "pending" {
        return Err(not_pending());
    }
    let grant_id = GrantId::new();
    let grant = state
        .store
        .audited(both_entries(
            who,
            request.customer_account_id,
            request.partner_account_id,
            "access.approved",
            grant_id.to_string(),
            serde_json::json!({"request_id": request.id, "partner": request.partner_name,
                               "support_user": request.support_user, "expires_at": expires_at}),
        ))
        .approve_request(&request, grant_id, who.user.id, expires_at)
        .await?
        .ok_or_else(not_pending)?;
    notify_requester(&state, &request, "approved", grant.expires_at).await;
    Ok(HttpResponse::Created().json(GrantView::from(grant)))
}

#[utoipa::path(post, path = "/api/v1/access-requests/{id}/reject", tag = "partner access",
    responses((status = 200, body = RequestView), (status = 403), (status = 404), (status = 409, description = "request_not_pending")))]
pub async fn reject(
    state: web::Data<AppState>,
    auth: Authorized<area::Access, level::Edit>,
    path: web::Path<AccessRequestId>,
) -> AppResult<HttpResponse> {
    let (who, mut request) = own_request(&state, &auth, path.into_inner()).await?;
    if !state
        .store
        .audited(both_entries(
            who,
            request.customer_account_id,
            request.partner_account_id,
            "access.rejected",
            request.id.to_string(),
            serde_json::json!({"partner": request.partner_name}),
        ))
        .reject_request(request.id, who.user.id)
        .await?
    {
        return Err(not_pending());
    }
    request.state = "rejected".into();
    notify_requester(&state, &request, "rejected", None).await;
    Ok(HttpResponse::Ok().json(RequestView::from(request)))
}

#[utoipa::path(delete, path = "/api/v1/access-grants/{id}", tag = "partner access",
    responses((status = 204, description = "revoked: support tokens dead, live connections closed with 4003"),
              (status = 403), (status = 404)))]
pub async fn revoke(
    state: web::Data<AppState>,
    auth: Authorized<area::Access, level::Edit>,
    path: web::Path<GrantId>,
) -> AppResult<HttpResponse> {
    let grant = state
        .store
        .grant(path.into_inner())
        .await?
        .filter(|g| g.active(Utc::now()))
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    let who = auth.in_account(grant.customer_account_id, Code::GrantNotFound)?;
    if who.partner.is_some() {
        return Err(AppError::new(
            Code::MissingRight,
            "a partner support login cannot revoke access",
        ));
    }
    let entries = both_entries(
        who,
        grant.customer_account_id,
        grant.partner_account_id,
        "access.revoked",
        grant.id.to_string(),
        serde_json::json!({"partner": grant.partner_name}),
    );
    if !end_grant_with_aftermath(&state, &grant, "revoked", entries).await? {
        return Err(AppError::new(Code::GrantNotFound, "no such grant"));
    }
    if let Some(request) = state.store.access_request(grant.request_id).await? {
        notify_requester(&state, &request, "revoked", None).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/access-grants", tag = "partner access",
    responses((status = 200, body = Vec<GrantView>), (status = 403)))]
pub async fn partner_grants(
    state: web::Data<AppState>,
    auth: Authorized<area::Access>,
) -> AppResult<HttpResponse> {
    let who = auth.own()?;
    let now = Utc::now();
    let mut grants = Vec::new();
    for g in state.store.open_grants(who.account(), true).await? {
        if !g.active(now) {
            continue;
        }
        let customer = Named {
            id: g.customer_account_id.0,
            name: g.customer_name.clone(),
        };
        let mut view = GrantView::from(g);
        view.customer = Some(customer);
        grants.push(view);
    }
    Ok(HttpResponse::Ok().json(grants))
}

/// How many of its requests a partner's list shows.
const PARTNER_REQUESTS: u32 = 100;

#[utoipa::path(get, path = "/api/v1/access-requests", tag = "partner access",
    responses((status = 200, body = Vec<RequestView>), (status = 403)))]
pub async fn partner_requests(
    state: web::Data<AppState>,
    auth: Authorized<area::Access>,
) -> AppResult<HttpResponse> {
    let who = auth.own()?;
    if who.partner.is_some() || who.user.account_kind != "partner" {
        return Err(AppError::new(
            Code::NotAPartner,
            "only users of a partner account ask for access",
        ));
    }
    let mut out = Vec::new();
    for r in state
        .store
        .requests_of_partner(who.account(), PARTNER_REQUESTS)
        .await?
    {
        let customer = Named {
            id: r.customer_account_id.0,
            name: r.customer_name.clone(),
        };
        let mut view = RequestView::from(r);
        view.customer = Some(customer);
        out.push(view);
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/v1/access-grants/{id}/devices", tag = "partner access",
    responses((status = 200, body = Vec<DeviceView>), (status = 403), (status = 404)))]
pub async fn assigned_devices(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<GrantId>,
) -> AppResult<HttpResponse> {
    if who.partner.is_some() || who.user.account_kind != "partner" {
        return Err(AppError::new(
            Code::NotAPartner,
            "devices are assigned with the partner user's own login",
        ));
    }
    let grant = partner_grant(&state, &who, path.into_inner()).await?;
    who.require_area(Area::Devices)?;
    let devices = state
        .store
        .devices_assigned_by(grant.partner_account_id, grant.customer_account_id)
        .await?;
    Ok(HttpResponse::Ok().json(
        devices
            .into_iter()
            .map(|d| DeviceView::of(&state, d))
            .collect::<Vec<_>>(),
    ))
}

/// Mails the customer's admins who decide on access (area `access`) that a partner asks.
async fn notify_customer_admins(
    state: &AppState,
    customer: &crate::store::AccountRecord,
    request: &AccessRequestRecord,
) {
    let users = match state.store.users_of(customer.id).await {
        Ok(users) => users,
        Err(err) => {
            tracing::warn!(error = %err, "access request: admins not read for the mail");
            return;
        }
    };
    let link = format!("{}/#/access", state.public_url);
    for user in users {
        if user.kind == "service" || !user.rights.has_area(Area::Access) {
            continue;
        }
        let Some(email) = &user.email else { continue };
        let mail = crate::i18n::access_request_mail(
            crate::i18n::Lang::or_en(&user.language),
            &customer.name,
            &request.partner_name,
            &request.requested_by_name,
            request.support_user,
            request.message.as_deref(),
            &link,
        );
        if let Err(err) = state.outbox.mail(email, &mail.subject, mail.body).await {
            tracing::warn!(user = %user.id, error = %err, "access request mail not stored");
        }
    }
}

/// Mails the partner user who asked what became of its request or grant.
async fn notify_requester(
    state: &AppState,
    request: &AccessRequestRecord,
    decision: &str,
    until: Option<DateTime<Utc>>,
) {
    let user = match state.store.user(request.requested_by).await {
        Ok(Some(user)) if !user.deleted => user,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(error = %err, "access decision: requester not read for the mail");
            return;
        }
    };
    let Some(email) = &user.email else { return };
    let customer = match state.store.account(request.customer_account_id).await {
        Ok(Some(a)) => a.name,
        _ => String::new(),
    };
    let mail = crate::i18n::access_decision_mail(
        crate::i18n::Lang::or_en(&user.language),
        &customer,
        decision,
        until,
        &format!("{}/#/partner", state.public_url),
    );
    if let Err(err) = state.outbox.mail(email, &mail.subject, mail.body).await {
        tracing::warn!(user = %user.id, error = %err, "access decision mail not stored");
    }
}

/// A grant in force given to the caller's partner account.
async fn partner_grant(state: &AppState, who: &Principal, id: GrantId) -> AppResult<GrantRecord> {
    let grant = state
        .store
        .grant(id)
        .await?
        .filter(|g| g.active(Utc::now()) && g.partner_account_id == who.account())
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    Ok(grant)
}

#[utoipa::path(post, path = "/api/v1/access-grants/{id}/login", tag = "partner access",
    responses((status = 200, body = LoginAnswer), (status = 403, description = "support_user_not_granted / missing_right"),
              (status = 404)))]
pub async fn grant_login(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<GrantId>,
) -> AppResult<HttpResponse> {
    if who.partner.is_some() {
        return Err(AppError::new(
            Code::MissingRight,
            "log in with your own partner login",
        ));
    }
    let grant = partner_grant(&state, &who, path.into_inner()).await?;
    who.require_area(Area::Access)?;
    if !grant.support_user {
        return Err(AppError::new(
            Code::SupportUserNotGranted,
            "this grant does not include a support user login",
        ));
    }
    let secret = token::generate(token::prefix::LOGIN).map_err(AppError::internal)?;
    let mut expires_at = Utc::now() + Duration::hours(SUPPORT_TOKEN_HOURS);
    if let Some(end) = grant.expires_at {
        expires_at = expires_at.min(end);
    }
    state
        .store
        .audited(both_entries(
            &who,
            grant.customer_account_id,
            grant.partner_account_id,
            "access.support_login",
            grant.id.to_string(),
            serde_json::json!({"partner_user": who.user.username, "grant_id": grant.id}),
        ))
        .insert_grant_token(&token::hash(&secret), who.user.id, grant.id, expires_at)
        .await?;
    let mut acting = who.user.clone();
    acting.account_id = grant.customer_account_id;
    acting.rights = support_rights(&who.user.rights);
    let mut res = HttpResponse::Ok();
    secret_headers(&mut res);
    Ok(res.json(LoginAnswer {
        token: secret,
        user: UserView::from(&acting),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    pub device_id: Uuid,
}

/// Checks that the caller is a partner user (own login) who may move its devices.
fn require_partner_devices(who: &Principal) -> AppResult<()> {
    if who.partner.is_some() || who.user.account_kind != "partner" {
        return Err(AppError::new(
            Code::NotAPartner,
            "devices are assigned with the partner user's own login",
        ));
    }
    who.require_write(Area::Devices, Write::Edit)
}

fn serial_taken(err: sqlx::Error) -> AppError {
    if is_unique_violation(&err) {
        AppError::new(
            Code::SerialTaken,
            "the account has a device with this serial already",
        )
    } else {
        err.into()
    }
}

/// Moves a device for a partner user and audits it in both accounts.
async fn move_device(
    state: &AppState,
    who: &Principal,
    customer: AccountId,
    device: DeviceId,
    direction: Direction,
) -> AppResult<HttpResponse> {
    require_partner_devices(who)?;
    let partner = who.account();
    let action = match direction {
        Direction::Assign => "device.assigned",
        Direction::Unassign => "device.unassigned",
    };
    // The grant it happens under, for the customer's activity feed of that grant, and the
    // serial for the log (the move itself decides whether either is real).
    let grant = grant_in_force(state, partner, customer)
        .await?
        .map(|g| g.id);
    let serial = state.store.device(device).await?.map(|d| d.serial);
    let result = state
        .store
        .audited(both_entries(
            who,
            customer,
            partner,
            action,
            device.to_string(),
            serde_json::json!({"serial": serial, "grant_id": grant}),
        ))
        .move_device(device, partner, customer, direction)
        .await
        .map_err(serial_taken)?;
    match result {
        Assignment::Moved => {}
        Assignment::NoGrant => {
            return Err(AppError::new(
                Code::AccountNotFound,
                "no access to this account",
            ));
        }
        Assignment::NoSuchDevice => {
            return Err(AppError::new(Code::DeviceNotFound, "no such device"));
        }
    }
    let record = state
        .store
        .device(device)
        .await?
        .ok_or_else(|| AppError::new(Code::DeviceNotFound, "no such device"))?;
    Ok(HttpResponse::Ok().json(DeviceView::of(state, record)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/devices/assign", tag = "partner access", request_body = AssignBody,
    responses((status = 200, body = DeviceView), (status = 403), (status = 404, description = "no grant, or not the partner's device"),
              (status = 409, description = "serial_taken")))]
pub async fn assign(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<AccountId>,
    body: web::Json<AssignBody>,
) -> AppResult<HttpResponse> {
    let device = DeviceId(body.device_id);
    move_device(&state, &who, path.into_inner(), device, Direction::Assign).await
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/devices/{id}/unassign", tag = "partner access",
    responses((status = 200, body = DeviceView), (status = 403), (status = 404), (status = 409, description = "serial_taken")))]
pub async fn unassign(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> AppResult<HttpResponse> {
    let (customer, device) = path.into_inner();
    move_device(
        &state,
        &who,
        AccountId(customer),
        DeviceId(device),
        Direction::Unassign,
    )
    .await
}

/// Ends grants whose expiry has passed: audited in both accounts, connections closed. Their
/// tokens stop at the expiry itself (checked on every request); this makes it visible.
pub fn start_expiry_sweeper(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_SWEEP);
        loop {
            tick.tick().await;
            if state.draining() {
                return;
            }
            let lapsed = match state.store.lapsed_grants(Utc::now()).await {
                Ok(lapsed) => lapsed,
                Err(err) => {
                    tracing::warn!(error = %err, "lapsed grants not read");
                    continue;
                }
            };
            for grant in lapsed {
                // The same aftermath as a revoke: its sessions end, its sockets close.
                let entries = [grant.customer_account_id, grant.partner_account_id]
                    .into_iter()
                    .map(|account| AuditEntry {
                        account_id: account,
                        actor_user_id: None,
                        actor_name: "system".into(),
                        via: "expiry".into(),
                        action: "access.expired",
                        target: Some(grant.id.to_string()),
                        details: serde_json::json!({"partner": grant.partner_name,
                                                    "expires_at": grant.expires_at}),
                    })
                    .collect();
                if let Err(err) = end_grant_with_aftermath(&state, &grant, "expired", entries).await
                {
                    tracing::warn!(grant = %grant.id, error = %err, "lapsed grant not ended");
                }
            }
        }
    });
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantShape {
    /// A new end (later: renewal; sooner: shortened), or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Narrow to these device groups of the account, or `null` for all its devices.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub groups: Option<Option<Vec<Uuid>>>,
    /// Narrow to these devices of the account (with `groups`, both must hold), or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub devices: Option<Option<Vec<Uuid>>>,
}

#[utoipa::path(patch, path = "/api/v1/access-grants/{id}", tag = "partner access", request_body = GrantShape,
    responses((status = 200, body = GrantView), (status = 403),
              (status = 404, description = "grant_not_found / group_not_found"), (status = 422, description = "invalid_expiry")))]
pub async fn shape_grant(
    state: web::Data<AppState>,
    auth: Authorized<area::Access, level::Edit>,
    path: web::Path<GrantId>,
    // An object only: `web::Json` would take `[null, null]` for the two fields.
    body: super::optional_json::OptionalJson<GrantShape>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner().ok_or_else(|| {
        AppError::new(
            Code::InvalidJson,
            "a JSON object with expires_at and/or groups is needed",
        )
    })?;
    let now = Utc::now();
    let grant = state
        .store
        .grant(path.into_inner())
        .await?
        .filter(|g| g.active(now))
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    let who = auth.in_account(grant.customer_account_id, Code::GrantNotFound)?;
    if who.partner.is_some() {
        return Err(AppError::new(
            Code::MissingRight,
            "a partner support login cannot shape access",
        ));
    }
    if body.expires_at.is_some_and(|e| e.is_some_and(|e| e <= now)) {
        return Err(AppError::new(
            Code::InvalidExpiry,
            "expires_at must be in the future (revoke to end it now)",
        ));
    }
    if let Some(Some(groups)) = &body.groups {
        let own: Vec<Uuid> = state
            .store
            .groups_of(grant.customer_account_id)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect();
        if groups.is_empty() || groups.len() > 100 || groups.iter().any(|g| !own.contains(g)) {
            return Err(AppError::new(
                Code::GroupNotFound,
                "groups: 1 to 100 device groups of this account",
            ));
        }
    }
    if let Some(Some(devices)) = &body.devices {
        let own: Vec<Uuid> = state
            .store
            .devices_of(grant.customer_account_id)
            .await?
            .into_iter()
            .map(|d| d.id.0)
            .collect();
        if devices.is_empty() || devices.len() > 1000 || devices.iter().any(|d| !own.contains(d)) {
            return Err(AppError::new(
                Code::DeviceNotFound,
                "devices: 1 to 1000 devices of this account",
            ));
        }
    }
    if !state
        .store
        .audited(both_entries(
            who,
            grant.customer_account_id,
            grant.partner_account_id,
            "access.changed",
            grant.id.to_string(),
            serde_json::json!({"partner": grant.partner_name, "expires_at": body.expires_at,
                               "groups": body.groups, "devices": body.devices}),
        ))
        .shape_grant(
            grant.id,
            body.expires_at,
            body.groups.clone(),
            body.devices.clone(),
            now,
        )
        .await?
    {
        return Err(AppError::new(Code::GrantNotFound, "no such grant"));
    }
    let narrowed = matches!(&body.groups, Some(Some(_))) || matches!(&body.devices, Some(Some(_)));
    if narrowed {
        // What the partner may reach shrank: its live connections go (4003) and come back
        // within the new bounds.
        disconnect_partner(&state, grant.partner_account_id, grant.customer_account_id).await;
    }
    let updated = state
        .store
        .grant(grant.id)
        .await?
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    if let Some(request) = state.store.access_request(updated.request_id).await? {
        notify_requester(&state, &request, "changed", updated.expires_at).await;
    }
    Ok(HttpResponse::Ok().json(GrantView::from(updated)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalBody {
    #[serde(default)]
    pub message: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/access-grants/{id}/renewal", tag = "partner access", request_body = RenewalBody,
    responses((status = 202, body = GrantView), (status = 403), (status = 404), (status = 422)))]
pub async fn request_renewal(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<GrantId>,
    body: super::optional_json::OptionalJson<RenewalBody>,
) -> AppResult<HttpResponse> {
    if who.partner.is_some() || who.user.account_kind != "partner" {
        return Err(AppError::new(
            Code::NotAPartner,
            "a renewal is asked with the partner user's own login",
        ));
    }
    let grant = partner_grant(&state, &who, path.into_inner()).await?;
    who.require_area(Area::Access)?;
    let message = match body.into_inner().and_then(|b| b.message) {
        None => None,
        Some(m) if m.trim().is_empty() => None,
        Some(m) => Some(
            validate::bounded_text(&m, MAX_MESSAGE_CHARS).ok_or_else(|| {
                AppError::new(
                    Code::InvalidMessage,
                    format!(
                        "message: at most {MAX_MESSAGE_CHARS} characters, no control characters"
                    ),
                )
            })?,
        ),
    };
    if !state
        .store
        .audited(both_entries(
            &who,
            grant.customer_account_id,
            grant.partner_account_id,
            "access.renewal_requested",
            grant.id.to_string(),
            serde_json::json!({"partner": grant.partner_name, "message": message}),
        ))
        .request_renewal(grant.id, message.as_deref(), Utc::now())
        .await?
    {
        return Err(AppError::new(Code::GrantNotFound, "no such grant"));
    }
    // The customer's admins hear of it as of a new request.
    if let (Ok(Some(customer)), Ok(Some(request))) = (
        state.store.account(grant.customer_account_id).await,
        state.store.access_request(grant.request_id).await,
    ) {
        let mut asked = request;
        asked.message = message.clone().or(asked.message);
        asked.requested_by_name = who.user.display_name();
        notify_customer_admins(&state, &customer, &asked).await;
    }
    let updated = state
        .store
        .grant(grant.id)
        .await?
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    Ok(HttpResponse::Accepted().json(GrantView::from(updated)))
}
