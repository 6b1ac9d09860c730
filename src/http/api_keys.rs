//! API keys: every user manages its own; keys of others need `users` + `objects.edit`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{accounts::audit_entries, secret_headers, state::AppState};
use crate::{
    auth::{api_key, extract::Principal, token},
    domain::{
        ids::UserId,
        rights::{Area, Write},
        validate,
    },
    error::{AppError, AppResult, Code},
    store::{ApiKeyRecord, UserRecord},
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    /// Shown this once; only its hash is stored.
    pub key: String,
}

/// The user whose keys are meant, if the caller may manage them.
/// A user of the caller's account whose keys the caller may see (itself, or anyone with
/// `users` + `objects.edit`).
async fn key_holder(state: &AppState, who: &Principal, id: UserId) -> AppResult<UserRecord> {
    let user = state.store.user(id).await?.filter(|u| !u.deleted);
    let user = user.ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
    who.require_own_account(user.account_id, Code::UserNotFound)?;
    if user.id != who.user.id {
        who.require_write(Area::Users, Write::Edit)?;
    }
    Ok(user)
}

/// The same, for changing keys: the service user has none and gets none.
async fn key_owner(state: &AppState, who: &Principal, id: UserId) -> AppResult<UserRecord> {
    let user = key_holder(state, who, id).await?;
    if user.kind == "service" {
        return Err(AppError::new(
            Code::ServiceUser,
            "the service user has no API keys",
        ));
    }
    Ok(user)
}

#[utoipa::path(post, path = "/api/v1/users/{id}/api-keys", tag = "users", request_body = NewKeyBody,
    responses((status = 201, body = KeyCreated), (status = 403, description = "not_own_key / missing_right"), (status = 404), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<UserId>,
    body: web::Json<NewKeyBody>,
) -> AppResult<HttpResponse> {
    // A key acts as its user forever and without its second factor: only the user itself,
    // signed in as itself, may make one (not an admin, not vendor support, not a partner).
    let not_own = || {
        AppError::new(
            Code::NotOwnKey,
            "an API key can be created only by its own user, signed in as itself",
        )
    };
    if !who.acts_as_itself() {
        return Err(not_own());
    }
    let user = key_owner(&state, &who, path.into_inner()).await?;
    if user.id != who.user.id {
        return Err(not_own());
    }
    let name = validate::bounded_text(&body.name, 100)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 100 characters"))?;
    let (prefix, key) = api_key::generate().map_err(AppError::internal)?;
    let id = Uuid::now_v7();
    state
        .store
        .audited(audit_entries(
            &who,
            user.account_id,
            "api_key.created",
            Some(id.to_string()),
            serde_json::json!({"user_id": user.id, "name": name, "prefix": prefix}),
        ))
        .insert_api_key(id, user.id, &name, &prefix, &token::hash(&key))
        .await?;
    let mut res = HttpResponse::Created();
    secret_headers(&mut res);
    Ok(res.json(KeyCreated {
        id,
        name,
        prefix,
        key,
    }))
}

#[utoipa::path(get, path = "/api/v1/users/{id}/api-keys", tag = "users", responses((status = 200, body = Vec<ApiKeyRecord>), (status = 403), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<UserId>,
) -> AppResult<HttpResponse> {
    // The service user has no keys: its list is empty, like any user's without keys.
    let user = key_holder(&state, &who, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(state.store.api_keys_of(user.id).await?))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "users", responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let key = state
        .store
        .api_key(path.into_inner())
        .await?
        .ok_or_else(|| AppError::new(Code::ApiKeyNotFound, "no such API key"))?;
    let user = key_owner(&state, &who, UserId(key.user_id))
        .await
        .map_err(|e| match e {
            e if e.is_not_found() => AppError::new(Code::ApiKeyNotFound, "no such API key"),
            other => other,
        })?;
    if let Some(hash) = state
        .store
        .audited(audit_entries(
            &who,
            user.account_id,
            "api_key.deleted",
            Some(key.id.to_string()),
            serde_json::json!({"user_id": user.id, "prefix": key.prefix}),
        ))
        .delete_api_key(key.id)
        .await?
    {
        // Connections opened with the key (or a ticket made with it) close within the second.
        super::users::disconnect_credential(
            &state,
            &format!("{}{hash}", crate::auth::extract::KEY_CREDENTIAL),
        );
    }
    Ok(HttpResponse::NoContent().finish())
}
