//! Device groups: a user sees the groups (and so the devices) its rights name.

use crate::http::authz::{Authorized, InAccount, Level, area, level};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{accounts::audit_entries, state::AppState};
use crate::{
    auth::extract::Principal,
    domain::{ids::AccountId, rights::Area, validate},
    error::{AppError, AppResult, Code},
    store::{GroupRecord, is_unique_violation},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    pub name: String,
}

/// A group with the users who see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    #[serde(flatten)]
    pub group: GroupRecord,
    /// The account's users whose rights show them this group (by username), for callers who
    /// may read users; `null` otherwise.
    pub seen_by: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/groups", tag = "devices",
    responses((status = 200, body = Vec<GroupView>), (status = 403), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let users = if who.rights().can_read(Area::Users) {
        Some(state.store.users_of(aid).await?)
    } else {
        None
    };
    let groups: Vec<GroupView> = state
        .store
        .groups_of(aid)
        .await?
        .into_iter()
        .filter(|g| who.rights().sees_group(g.id))
        .map(|group| GroupView {
            seen_by: users.as_ref().map(|users| {
                users
                    .iter()
                    .filter(|u| {
                        u.kind == "user"
                            && u.rights.can_read(Area::Devices)
                            && u.rights.sees_group(group.id)
                    })
                    .map(|u| u.username.clone())
                    .collect()
            }),
            group,
        })
        .collect();
    Ok(HttpResponse::Ok().json(groups))
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/groups", tag = "devices", request_body = GroupBody,
    responses((status = 201, body = GroupRecord), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Create>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: web::Json<GroupBody>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let name = validate::bounded_text(&body.name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 100 characters"))?;
    let group = GroupRecord {
        id: Uuid::now_v7(),
        name,
        created_at: Utc::now(),
    };
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "group.created",
            Some(group.id.to_string()),
            serde_json::json!({"name": group.name}),
        ))
        .insert_group(aid, &group)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::new(Code::GroupNameTaken, "a group of this name exists")
            } else {
                e.into()
            }
        })?;
    Ok(HttpResponse::Created().json(group))
}

/// A group of the caller's account that the caller sees, for `devices` at level `L`.
async fn visible_group<'a, L: Level>(
    state: &AppState,
    auth: &'a Authorized<area::Devices, L>,
    id: Uuid,
) -> AppResult<(&'a Principal, AccountId, GroupRecord)> {
    let (account, group) = state
        .store
        .group(id)
        .await?
        .ok_or_else(|| AppError::new(Code::GroupNotFound, "no such device group"))?;
    let who = auth.in_account_visible(account, Code::GroupNotFound, |who| {
        who.rights().sees_group(group.id)
    })?;
    Ok((who, account, group))
}

#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "devices", request_body = GroupBody,
    responses((status = 200, body = GroupRecord), (status = 403), (status = 404), (status = 409, description = "group_name_taken"), (status = 422)))]
pub async fn rename(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Edit>,
    path: web::Path<Uuid>,
    body: web::Json<GroupBody>,
) -> AppResult<HttpResponse> {
    let (who, account, mut group) = visible_group(&state, &auth, path.into_inner()).await?;
    let name = validate::bounded_text(&body.name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 100 characters"))?;
    state
        .store
        .audited(audit_entries(
            who,
            account,
            "group.renamed",
            Some(group.id.to_string()),
            serde_json::json!({"from": group.name, "to": name}),
        ))
        .rename_group(group.id, &name)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::new(Code::GroupNameTaken, "a group of this name exists")
            } else {
                e.into()
            }
        })?;
    group.name = name;
    Ok(HttpResponse::Ok().json(group))
}

#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "devices",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "group_not_empty")))]
/// Deletes an empty group; while a device (or an unused enrollment code) is in it: 409.
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Delete>,
    path: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let (who, account, group) = visible_group(&state, &auth, path.into_inner()).await?;
    if !state
        .store
        .audited(audit_entries(
            who,
            account,
            "group.deleted",
            Some(group.id.to_string()),
            serde_json::json!({"name": group.name}),
        ))
        .delete_empty_group(group.id)
        .await?
    {
        return Err(AppError::new(
            Code::GroupNotEmpty,
            "move or delete its devices (and revoke its unused enrollment codes) first",
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}
