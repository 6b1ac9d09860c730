//! The self-service portal: a user holding a self-service role sees the devices linked to it
//! and, with full access, acts on them (lost mode, locate, wipe, lock, passcode reset).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    accounts::{audit, audit_entries},
    devices::DeviceView,
    state::AppState,
};
use crate::{
    actors::device::Deliver,
    auth::extract::Principal,
    config::Secret,
    domain::{
        device::{Action, CommandStatus, supports},
        ids::{CommandId, DeviceId, UserId},
        rights::SelfService,
        validate,
    },
    error::{AppError, AppResult, Code},
    store::{CommandRecord, DeviceRecord},
};

/// The caller's self-service access, or 403.
fn portal_access(who: &Principal) -> AppResult<SelfService> {
    who.rights().self_service().ok_or_else(|| {
        AppError::new(
            Code::SelfServiceDenied,
            "the self-service portal needs a self-service role",
        )
    })
}

/// One of the caller's own devices, else 404 (another user's device is never revealed).
async fn own_device(state: &AppState, who: &Principal, id: DeviceId) -> AppResult<DeviceRecord> {
    state
        .store
        .device(id)
        .await?
        .filter(|d| d.user_id == Some(who.user.id) && d.account_id == who.account())
        .ok_or_else(|| AppError::new(Code::DeviceNotFound, "no such device"))
}

#[utoipa::path(get, path = "/api/v1/me/devices", tag = "self-service",
    responses((status = 200, body = Vec<DeviceView>), (status = 401), (status = 403)))]
pub async fn my_devices(state: web::Data<AppState>, who: Principal) -> AppResult<HttpResponse> {
    portal_access(&who)?;
    let devices: Vec<DeviceView> = state
        .store
        .devices_of_user(who.user.id)
        .await?
        .into_iter()
        .filter(|d| d.account_id == who.account())
        .map(|d| DeviceView::of(&state, d))
        .collect();
    Ok(HttpResponse::Ok().json(devices))
}

#[utoipa::path(get, path = "/api/v1/me/devices/{id}", tag = "self-service",
    responses((status = 200, body = DeviceView), (status = 403), (status = 404)))]
pub async fn my_device(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<DeviceId>,
) -> AppResult<HttpResponse> {
    portal_access(&who)?;
    let device = own_device(&state, &who, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DeviceView::of(&state, device)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub action: Action,
    /// The user's password again: `wipe` cannot be undone.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
    /// `lost_mode_on` only: what the device shows to whoever finds it (at most 200
    /// characters, may span lines).
    #[serde(default)]
    pub message: Option<String>,
    /// `lost_mode_on` only: a number to call, shown on the device (E.164, `+49…`).
    #[serde(default)]
    pub phone: Option<String>,
}

impl ActionBody {
    /// The command's parameters: lost mode's message and phone, checked; nothing for the
    /// other actions (which refuse them).
    fn params(&self) -> AppResult<serde_json::Value> {
        let message = self.message.as_deref().filter(|m| !m.trim().is_empty());
        let phone = self.phone.as_deref().filter(|p| !p.trim().is_empty());
        if self.action != Action::LostModeOn {
            if message.is_some() || phone.is_some() {
                return Err(AppError::new(
                    Code::ParamsNotAllowed,
                    "message and phone belong to lost_mode_on only",
                ));
            }
            return Ok(serde_json::json!({}));
        }
        let mut params = serde_json::Map::new();
        if let Some(m) = message {
            let m = validate::optional_multiline(m, 200).ok_or_else(|| {
                AppError::new(
                    Code::InvalidMessage,
                    "message: at most 200 characters, no control characters but line breaks",
                )
            })?;
            params.insert("message".into(), m.into());
        }
        if let Some(p) = phone {
            // People write numbers with spaces, dashes and brackets; the device gets E.164.
            let compact: String = p
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '/' | '.'))
                .collect();
            let p = validate::parse_phone(&compact)
                .ok_or_else(|| AppError::new(Code::InvalidPhone, "phone must be in E.164 form"))?;
            params.insert("phone".into(), p.into());
        }
        Ok(serde_json::Value::Object(params))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandQueued {
    pub command_id: Uuid,
    pub status: CommandStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandView {
    pub command_id: Uuid,
    pub action: Action,
    pub status: CommandStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// What the command was sent with (lost mode's message and phone).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

impl From<CommandRecord> for CommandView {
    fn from(c: CommandRecord) -> Self {
        Self {
            command_id: c.id.0,
            action: c.action,
            status: c.status,
            created_at: c.created_at,
            updated_at: c.updated_at,
            sent_at: c.sent_at,
            finished_at: c.finished_at,
            result: c.result,
            params: c.params,
        }
    }
}

/// Stores a command for a device and hands it to the agent when it is connected (otherwise it
/// waits, queued, until the agent connects), with `audit` in the same transaction; under the
/// requester's idempotency key when there is one: a repeat
/// answers the earlier command (nothing is sent or recorded again).
#[allow(clippy::too_many_arguments)]
pub async fn queue_command_once(
    state: &AppState,
    id: CommandId,
    device: &DeviceRecord,
    action: Action,
    params: serde_json::Value,
    requested_by: UserId,
    key: Option<&str>,
    audit: Vec<crate::store::AuditEntry>,
) -> AppResult<CommandRecord> {
    let store = state.store.audited(audit);
    let now = Utc::now();
    let command = CommandRecord {
        id,
        device_id: device.id,
        account_id: device.account_id,
        action,
        params,
        status: CommandStatus::Queued,
        result: None,
        requested_by: Some(requested_by),
        created_at: now,
        sent_at: None,
        finished_at: None,
        updated_at: now,
    };
    if let Some(key) = key {
        if let Some(earlier) = store.insert_command_once(&command, key).await? {
            if earlier.device_id != device.id || earlier.action != action {
                return Err(AppError::new(
                    Code::IdempotencyKeyReused,
                    "this Idempotency-Key was used for another command",
                ));
            }
            return Ok(earlier);
        }
    } else {
        store.insert_command(&command).await?;
    }
    match state.registry.device(device.id) {
        Some(agent) => agent.do_send(Deliver(command.clone())),
        // Connected to another node of a cluster, maybe: it sends what is queued.
        None => super::cluster::to_device(state, device.id, crate::cluster::DeviceNote::Pending),
    }
    Ok(command)
}

/// How long a second factor proven at login stands in for the password.
const STEP_UP_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

/// The request's `Idempotency-Key`: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
fn idempotency_key(req: &HttpRequest) -> AppResult<Option<String>> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty()
        || key.len() > 64
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err(AppError::new(
            Code::InvalidIdempotencyKey,
            "Idempotency-Key: 1 to 64 letters, digits, '.', '_', ':' or '-'",
        ));
    }
    Ok(Some(key.to_string()))
}

#[utoipa::path(post, path = "/api/v1/me/devices/{id}/actions", tag = "self-service", request_body = ActionBody,
    responses((status = 202, body = CommandQueued), (status = 403, description = "read access, or reauth_required"),
              (status = 404), (status = 422, description = "action_not_supported"), (status = 429)))]
pub async fn act(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<DeviceId>,
    body: web::Json<ActionBody>,
) -> AppResult<HttpResponse> {
    let access = portal_access(&who)?;
    let device = own_device(&state, &who, path.into_inner()).await?;
    if access != SelfService::Full {
        return Err(AppError::new(
            Code::ReadOnly,
            "read access may look at devices, not act on them",
        ));
    }
    act_on_device(&state, &who, &req, &device, &body).await
}

/// Sends `body.action` to `device` for `who` (the caller checked that it may): refused when
/// the platform lacks the action, a wipe needs `who`'s password (counted like a login
/// attempt), then queued, audited and answered 202.
pub async fn act_on_device(
    state: &AppState,
    who: &Principal,
    req: &HttpRequest,
    device: &DeviceRecord,
    body: &ActionBody,
) -> AppResult<HttpResponse> {
    let action = body.action;
    let params = body.params()?;
    if !supports(device.platform, action) {
        return Err(AppError::new(
            Code::ActionNotSupported,
            format!(
                "{} is not available on {} devices",
                action.as_str(),
                device.platform.as_str()
            ),
        ));
    }
    let key = idempotency_key(req)?;
    let mut stepped_up = None;
    if action.needs_reauth() {
        // Counted like a login attempt: the password check must not become a guessing oracle.
        state.check_login_rate(&who.user.username, req.peer_addr().map(|a| a.ip()))?;
        let given = body.password.as_ref().is_some_and(|p| !p.is_empty());
        let ok = match &body.password {
            Some(pw) if !pw.is_empty() => state
                .passwords
                .verify(pw, who.user.password_hash.as_deref())
                .await
                .map_err(AppError::internal)?,
            _ => false,
        };
        // Without a password: a second factor proven at this login in the last five minutes.
        let fresh = !given
            && !who.token_hash.is_empty()
            && state
                .store
                .second_factor_at(&who.token_hash)
                .await?
                .is_some_and(|at| Utc::now() - at <= STEP_UP_WINDOW);
        if !ok && !fresh {
            let reason = if given {
                "wrong_password"
            } else {
                "no_password"
            };
            audit(
                state,
                who,
                device.account_id,
                "device.action_refused",
                Some(device.id.to_string()),
                serde_json::json!({"action": action.as_str(), "reason": reason,
                                   "serial": device.serial}),
            )
            .await;
            let message = if given {
                "the password is wrong; this action cannot be undone, so it needs your password"
            } else {
                "this action cannot be undone: confirm it with your password"
            };
            return Err(AppError::new(Code::ReauthRequired, message));
        }
        stepped_up = Some(if ok { "password" } else { "second_factor" });
    }
    let id = CommandId::new();
    let entries = audit_entries(
        who,
        device.account_id,
        "device.action",
        Some(device.id.to_string()),
        serde_json::json!({
            "action": action.as_str(),
            "command_id": id,
            "serial": device.serial,
            "step_up": stepped_up,
        }),
    );
    // A repeat of the same click answers the same command: nothing sent or audited twice.
    let command = queue_command_once(
        state,
        id,
        device,
        action,
        params,
        who.user.id,
        key.as_deref(),
        entries,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(CommandQueued {
        command_id: command.id.0,
        status: command.status,
    }))
}

#[utoipa::path(get, path = "/api/v1/me/devices/{id}/actions/{command_id}", tag = "self-service",
    responses((status = 200, body = CommandView), (status = 403), (status = 404)))]
pub async fn action_status(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> AppResult<HttpResponse> {
    portal_access(&who)?;
    let (device, command) = path.into_inner();
    let device = own_device(&state, &who, DeviceId(device)).await?;
    let command = state
        .store
        .command(CommandId(command))
        .await?
        .filter(|c| c.device_id == device.id)
        .ok_or_else(|| AppError::new(Code::CommandNotFound, "no such command"))?;
    Ok(HttpResponse::Ok().json(CommandView::from(command)))
}

/// How many commands `GET /me/devices/{id}/actions` lists.
const HISTORY: u32 = 50;

#[utoipa::path(get, path = "/api/v1/me/devices/{id}/actions", tag = "self-service",
    responses((status = 200, body = Vec<CommandView>), (status = 403), (status = 404)))]
pub async fn action_history(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<DeviceId>,
) -> AppResult<HttpResponse> {
    portal_access(&who)?;
    let device = own_device(&state, &who, path.into_inner()).await?;
    let commands = state.store.commands_of(device.id, HISTORY).await?;
    Ok(HttpResponse::Ok().json(
        commands
            .into_iter()
            .map(CommandView::from)
            .collect::<Vec<_>>(),
    ))
}
