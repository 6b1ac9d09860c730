//! Device groups: a user sees the groups (and so the devices) its rights name.

use crate::http::authz::{InAccount, area, level};
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::{accounts::audit, state::AppState};
use crate::{
    domain::{ids::AccountId, validate},
    error::{AppError, AppResult, Code},
    store::{GroupRecord, is_unique_violation},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    pub name: String,
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/groups", tag = "devices",
    responses((status = 200, body = Vec<GroupRecord>), (status = 403), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let groups: Vec<GroupRecord> = state
        .store
        .groups_of(aid)
        .await?
        .into_iter()
        .filter(|g| who.rights().sees_group(g.id))
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
    state.store.insert_group(aid, &group).await.map_err(|e| {
        if is_unique_violation(&e) {
            AppError::new(Code::GroupNameTaken, "a group of this name exists")
        } else {
            e.into()
        }
    })?;
    audit(
        &state,
        who,
        aid,
        "group.created",
        Some(group.id.to_string()),
        serde_json::json!({"name": group.name}),
    )
    .await;
    Ok(HttpResponse::Created().json(group))
}
