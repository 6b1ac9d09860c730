//! Security policies: what an invited external technician may do.

use crate::http::authz::{Authorized, InAccount, Level, area, level};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

use super::{accounts::audit_entries, state::AppState, views::PolicyView};
use crate::{
    auth::extract::Principal,
    domain::{
        ids::{AccountId, PolicyId},
        permissions::{
            PolicyError, parse_permissions, parse_policy_description, parse_policy_name,
        },
        rights::Area,
    },
    error::{AppError, AppResult, Code},
    store::{PolicyRecord, is_unique_violation},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

fn invalid(err: PolicyError) -> AppError {
    let code = match err {
        PolicyError::EmptyName | PolicyError::NameTooLong => Code::InvalidName,
        PolicyError::DescriptionTooLong => Code::InvalidDescription,
        PolicyError::UnknownPermission(_) | PolicyError::DuplicatePermission(_) => {
            Code::InvalidPermissions
        }
    };
    AppError::new(code, err.to_string())
}

fn name_taken(err: sqlx::Error) -> AppError {
    if is_unique_violation(&err) {
        AppError::new(Code::PolicyNameTaken, "a policy of this name exists")
    } else {
        err.into()
    }
}

/// A policy of the caller's account, else 404.
async fn own_policy<'a, L: Level>(
    state: &AppState,
    auth: &'a Authorized<area::Policies, L>,
    id: PolicyId,
) -> AppResult<(&'a Principal, PolicyRecord)> {
    let policy = state
        .store
        .policy(id)
        .await?
        .ok_or_else(|| AppError::new(Code::PolicyNotFound, "no such policy"))?;
    let who = auth.in_account(policy.account_id, Code::PolicyNotFound)?;
    Ok((who, policy))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/policies", tag = "policies",
    responses((status = 200, body = Vec<PolicyView>), (status = 403), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let aid = path.into_inner();
    who.require_own_account(aid, Code::AccountNotFound)?;
    if !who.rights().can_list_policies() {
        who.require_area(Area::Policies)?;
    }
    let policies = state.store.policies_of(aid).await?;
    Ok(HttpResponse::Ok().json(policies.iter().map(PolicyView::from).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/policies", tag = "policies", request_body = PolicyBody,
    responses((status = 201, body = PolicyView), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    scope: InAccount<area::Policies, level::Create>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: web::Json<PolicyBody>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let now = Utc::now();
    let policy = PolicyRecord {
        id: PolicyId::new(),
        account_id: aid,
        name: parse_policy_name(&body.name).map_err(invalid)?,
        description: parse_policy_description(&body.description).map_err(invalid)?,
        permissions: parse_permissions(&body.permissions).map_err(invalid)?,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "policy.created",
            Some(policy.id.to_string()),
            serde_json::json!({"name": policy.name}),
        ))
        .insert_policy(&policy)
        .await
        .map_err(name_taken)?;
    Ok(HttpResponse::Created().json(PolicyView::from(&policy)))
}

#[utoipa::path(patch, path = "/api/v1/policies/{id}", tag = "policies", request_body = PolicyPatch,
    responses((status = 200, body = PolicyView), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authorized<area::Policies, level::Edit>,
    path: web::Path<PolicyId>,
    body: web::Json<PolicyPatch>,
) -> AppResult<HttpResponse> {
    let (who, mut policy) = own_policy(&state, &auth, path.into_inner()).await?;
    if let Some(name) = &body.name {
        policy.name = parse_policy_name(name).map_err(invalid)?;
    }
    if let Some(description) = &body.description {
        policy.description = parse_policy_description(description).map_err(invalid)?;
    }
    if let Some(perms) = &body.permissions {
        policy.permissions = parse_permissions(perms).map_err(invalid)?;
    }
    policy.updated_at = Utc::now();
    state
        .store
        .audited(audit_entries(
            who,
            policy.account_id,
            "policy.changed",
            Some(policy.id.to_string()),
            serde_json::json!({"name": policy.name}),
        ))
        .update_policy(&policy)
        .await
        .map_err(name_taken)?;
    Ok(HttpResponse::Ok().json(PolicyView::from(&policy)))
}

#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policies",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authorized<area::Policies, level::Delete>,
    path: web::Path<PolicyId>,
) -> AppResult<HttpResponse> {
    let (who, policy) = own_policy(&state, &auth, path.into_inner()).await?;
    state
        .store
        .audited(audit_entries(
            who,
            policy.account_id,
            "policy.deleted",
            Some(policy.id.to_string()),
            serde_json::json!({"name": policy.name}),
        ))
        .delete_policy(policy.id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
