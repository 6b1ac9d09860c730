//! Devices of an account: list, create, edit, delete, link to users (one by one, by CSV import,
//! by pre-assignment), enrollment codes, agent enrollment and the agent's WebSocket.

use crate::http::authz::{Authorized, InAccount, Level, area, level};
use std::collections::HashMap;

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{accounts::audit_entries, secret_headers, state::AppState};
use crate::cluster::DeviceNote;
use crate::{
    actors::{connection, device::DeviceActor},
    auth::{extract::Principal, token},
    domain::{
        device::{ImportRow, Location, Platform, parse_serial, plan_import},
        ids::{AccountId, DeviceId, UserId},
        session::close_code,
        validate,
    },
    error::{AppError, AppResult, Code},
    store::{
        DeviceRecord, EnrollRefusal, EnrollingDevice, EnrollmentCodeRecord, UserRecord,
        is_unique_violation,
    },
};

/// A device as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    pub name: String,
    pub serial: String,
    pub platform: Platform,
    pub model: String,
    pub os_version: String,
    /// Percent, as last reported by the agent.
    pub battery: Option<u8>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub location: Option<Location>,
    pub lost_mode: bool,
    pub user_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    /// Whether its agent is connected right now.
    pub online: bool,
}

impl DeviceView {
    pub fn of(state: &AppState, d: DeviceRecord) -> Self {
        Self {
            online: super::cluster::agent_online(state, &d),
            id: d.id.0,
            name: d.name,
            serial: d.serial,
            platform: d.platform,
            model: d.model,
            os_version: d.os_version,
            battery: d.battery,
            last_seen_at: d.last_seen_at,
            location: d.location,
            lost_mode: d.lost_mode,
            user_id: d.user_id.map(|u| u.0),
            group_id: d.group_id,
        }
    }
}

fn device_not_found() -> AppError {
    AppError::new(Code::DeviceNotFound, "no such device")
}

/// A device the caller may see and act on at level `L`: its account's, in a group its rights
/// name, with the `devices` area; another account's device is 404 before any right is looked
/// at, one outside the caller's groups 404 too.
pub async fn visible_device<'a, L: Level>(
    state: &AppState,
    auth: &'a Authorized<area::Devices, L>,
    id: DeviceId,
) -> AppResult<(&'a Principal, DeviceRecord)> {
    let device = state.store.device(id).await?.ok_or_else(device_not_found)?;
    let who = auth.in_account_visible(device.account_id, Code::DeviceNotFound, |who| {
        who.rights().sees(device.id.0, device.group_id)
    })?;
    Ok((who, device))
}

/// A live human user of the account, or `None`.
async fn account_user_named(
    state: &AppState,
    account: AccountId,
    user: UserId,
) -> AppResult<Option<UserRecord>> {
    Ok(state
        .store
        .user(user)
        .await?
        .filter(|u| u.account_id == account && !u.deleted && u.kind == "user"))
}

/// A group of the account that the caller sees.
async fn check_group(state: &AppState, who: &Principal, group: Uuid) -> AppResult<()> {
    let known = state
        .store
        .groups_of(who.account())
        .await?
        .iter()
        .any(|g| g.id == group);
    if known && who.rights().sees_group(group) {
        Ok(())
    } else {
        Err(AppError::new(
            Code::UnknownGroup,
            "group_id names no device group you can see",
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/devices", tag = "devices",
    responses((status = 200, body = Vec<DeviceView>), (status = 403), (status = 404)))]
pub async fn list(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let devices: Vec<DeviceView> = state
        .store
        .devices_of(aid)
        .await?
        .into_iter()
        .filter(|d| who.rights().sees(d.id.0, d.group_id))
        .map(|d| DeviceView::of(&state, d))
        .collect();
    Ok(HttpResponse::Ok().json(devices))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub name: String,
    pub serial: String,
    pub platform: Platform,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub os_version: String,
    #[serde(default)]
    pub group_id: Option<Uuid>,
    #[serde(default)]
    pub user_id: Option<Uuid>,
}

fn bounded(value: &str, max: usize, code: Code, what: &str) -> AppResult<String> {
    validate::optional_text(value, max).ok_or_else(|| {
        AppError::new(
            code,
            format!("{what}: one line of at most {max} characters, no control characters"),
        )
    })
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/devices", tag = "devices", request_body = NewDevice,
    responses((status = 201, body = DeviceView), (status = 403), (status = 404), (status = 409, description = "serial_taken"), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Create>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: web::Json<NewDevice>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let body = body.into_inner();
    let name = validate::bounded_text(&body.name, 200)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 200 characters"))?;
    let serial = parse_serial(&body.serial).ok_or_else(|| {
        AppError::new(
            Code::InvalidSerial,
            "serial: 1 to 64 printable characters without spaces",
        )
    })?;
    let model = bounded(&body.model, 200, Code::InvalidModel, "model")?;
    let os_version = bounded(&body.os_version, 100, Code::InvalidOsVersion, "os_version")?;
    match body.group_id {
        Some(g) => check_group(&state, who, g).await?,
        // A user limited to some groups could not see a device in none.
        None if !who.rights().sees_device(None) => {
            return Err(AppError::new(
                Code::GroupRequired,
                "your rights name device groups: put the device in one of them",
            ));
        }
        None => {}
    }
    if let Some(u) = body.user_id
        && account_user_named(&state, aid, UserId(u)).await?.is_none()
    {
        return Err(AppError::new(
            Code::UnknownUser,
            "user_id names no user of this account",
        ));
    }
    let device = DeviceRecord {
        id: DeviceId::new(),
        account_id: aid,
        name,
        serial,
        platform: body.platform,
        model,
        os_version,
        battery: None,
        last_seen_at: None,
        location: None,
        lost_mode: false,
        user_id: body.user_id.map(UserId),
        group_id: body.group_id,
        created_at: Utc::now(),
        agent_node: None,
    };
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "device.created",
            Some(device.id.to_string()),
            serde_json::json!({"serial": device.serial, "platform": device.platform.as_str()}),
        ))
        .insert_device(&device)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::new(
                    Code::SerialTaken,
                    "a device with this serial exists in the account",
                )
            } else {
                e.into()
            }
        })?;
    Ok(HttpResponse::Created().json(DeviceView::of(&state, device)))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    responses((status = 200, body = DeviceView), (status = 403), (status = 404)))]
pub async fn get(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Read>,
    path: web::Path<DeviceId>,
) -> AppResult<HttpResponse> {
    let (_, device) = visible_device(&state, &auth, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DeviceView::of(&state, device)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub name: Option<String>,
    pub model: Option<String>,
    pub os_version: Option<String>,
    /// Moves the device to another group (needs `edit_group_settings`).
    pub group_id: Option<Uuid>,
}

#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", request_body = DevicePatch,
    responses((status = 200, body = DeviceView), (status = 403), (status = 404), (status = 422)))]
pub async fn patch(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Edit>,
    path: web::Path<DeviceId>,
    body: web::Json<DevicePatch>,
) -> AppResult<HttpResponse> {
    let (who, mut device) = visible_device(&state, &auth, path.into_inner()).await?;
    let body = body.into_inner();
    if let Some(name) = &body.name {
        device.name = validate::bounded_text(name, 200)
            .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 200 characters"))?;
    }
    if let Some(model) = &body.model {
        device.model = bounded(model, 200, Code::InvalidModel, "model")?;
    }
    if let Some(v) = &body.os_version {
        device.os_version = bounded(v, 100, Code::InvalidOsVersion, "os_version")?;
    }
    if let Some(group) = body.group_id {
        if !who.rights().edit_group_settings {
            return Err(AppError::new(
                Code::MissingRight,
                "moving a device between groups needs the edit_group_settings right",
            ));
        }
        check_group(&state, who, group).await?;
        device.group_id = Some(group);
    }
    state
        .store
        .audited(audit_entries(
            who,
            device.account_id,
            "device.changed",
            Some(device.id.to_string()),
            serde_json::json!({"name": device.name, "group_id": device.group_id}),
        ))
        .update_device(&device)
        .await?;
    Ok(HttpResponse::Ok().json(DeviceView::of(&state, device)))
}

#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Delete>,
    path: web::Path<DeviceId>,
) -> AppResult<HttpResponse> {
    let (who, device) = visible_device(&state, &auth, path.into_inner()).await?;
    if !state
        .store
        .audited(audit_entries(
            who,
            device.account_id,
            "device.deleted",
            Some(device.id.to_string()),
            serde_json::json!({"serial": device.serial}),
        ))
        .delete_device(device.id)
        .await?
    {
        return Err(device_not_found());
    }
    super::cluster::to_device(
        &state,
        device.id,
        DeviceNote::Disconnect {
            code: close_code::ACCESS_REVOKED,
            reason: "device_deleted".into(),
        },
    );
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/release", tag = "devices",
    responses((status = 200, body = DeviceView), (status = 403), (status = 404)))]
/// Releases a device for a new enrollment: its device secret ends and its agent is
/// disconnected; the device and its links stay, and the next enrollment code of the account
/// may enroll its serial again.
pub async fn release(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Edit>,
    path: web::Path<DeviceId>,
) -> AppResult<HttpResponse> {
    let (who, device) = visible_device(&state, &auth, path.into_inner()).await?;
    if !state
        .store
        .audited(audit_entries(
            who,
            device.account_id,
            "device.released",
            Some(device.id.to_string()),
            serde_json::json!({"serial": device.serial}),
        ))
        .release_device(device.id)
        .await?
    {
        return Err(device_not_found());
    }
    super::cluster::to_device(
        &state,
        device.id,
        DeviceNote::Disconnect {
            code: close_code::ACCESS_REVOKED,
            reason: "device_released".into(),
        },
    );
    let device = state
        .store
        .device(device.id)
        .await?
        .ok_or_else(device_not_found)?;
    Ok(HttpResponse::Ok().json(DeviceView::of(&state, device)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// The user to link, or null to unlink.
    pub user_id: Option<Uuid>,
}

#[utoipa::path(put, path = "/api/v1/devices/{id}/user", tag = "devices", request_body = LinkBody,
    responses((status = 200, body = DeviceView), (status = 403), (status = 404), (status = 422)))]
pub async fn link_user(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Edit>,
    path: web::Path<DeviceId>,
    body: web::Json<LinkBody>,
) -> AppResult<HttpResponse> {
    let (who, mut device) = visible_device(&state, &auth, path.into_inner()).await?;
    let user = match body.user_id {
        Some(u) => Some(
            account_user_named(&state, device.account_id, UserId(u))
                .await?
                .ok_or_else(|| {
                    AppError::new(Code::UnknownUser, "user_id names no user of this account")
                })?,
        ),
        None => None,
    };
    let before = device.user_id;
    device.user_id = user.as_ref().map(|u| u.id);
    state
        .store
        .audited(audit_entries(
            who,
            device.account_id,
            "device.linked",
            Some(device.id.to_string()),
            serde_json::json!({
                "serial": device.serial,
                "from": before,
                "to": user.as_ref().map(|u| &u.username),
            }),
        ))
        .link_device(device.id, device.user_id)
        .await?;
    Ok(HttpResponse::Ok().json(DeviceView::of(&state, device)))
}

/// Largest CSV file an import takes.
pub const IMPORT_LIMIT: usize = 10 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes; a larger one is refused whole (413).
async fn read_limited(mut payload: web::Payload, limit: usize) -> AppResult<web::BytesMut> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::new(Code::InvalidBody, e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::new(
                Code::FileTooLarge,
                format!("the file is over {} MB", limit / (1024 * 1024)),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses `serial,username` rows: `(line, serial, username)`. A wrong header or a malformed
/// row refuses the whole file.
pub(crate) fn parse_import(data: &[u8]) -> AppResult<Vec<(u64, String, String)>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let header = reader
        .headers()
        .map_err(|e| AppError::new(Code::InvalidCsv, e.to_string()))?;
    let names: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    if names != ["serial", "username"] {
        return Err(AppError::new(
            Code::InvalidCsvHeader,
            "the first line must be the header `serial,username`",
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or_default();
            AppError::new(
                Code::InvalidCsv,
                format!("line {line}: every row has a serial and a username ({e})"),
            )
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or_default();
        rows.push((line, record[0].to_string(), record[1].to_string()));
    }
    Ok(rows)
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/devices/import", tag = "devices",
    request_body(content = String, content_type = "text/csv", description = "header `serial,username`"),
    responses((status = 200, body = Vec<ImportRow>), (status = 400, description = "invalid_csv_header / invalid_csv"),
              (status = 403), (status = 404), (status = 413, description = "file_too_large")))]
pub async fn import(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Edit>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let data = read_limited(payload, IMPORT_LIMIT).await?;
    let rows = parse_import(&data)?;
    let devices: HashMap<String, DeviceId> = state
        .store
        .devices_of(aid)
        .await?
        .into_iter()
        .filter(|d| who.rights().sees(d.id.0, d.group_id))
        .map(|d| (d.serial, d.id))
        .collect();
    let users: HashMap<String, UserId> = state
        .store
        .users_of(aid)
        .await?
        .into_iter()
        .filter(|u| u.kind == "user")
        .map(|u| (crate::store::username_key(&u.username), u.id))
        .collect();
    let plan = plan_import(
        &rows,
        |serial| devices.get(serial).copied(),
        |username| users.get(&crate::store::username_key(username)).copied(),
    );
    let links: Vec<(DeviceId, UserId)> = plan.iter().filter_map(|(_, link)| *link).collect();
    let report: Vec<ImportRow> = plan.into_iter().map(|(row, _)| row).collect();
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "device.imported",
            None,
            serde_json::json!({"rows": report.len(), "linked": links.len()}),
        ))
        .link_devices(&links)
        .await?;
    tracing::info!(account = %aid, rows = report.len(), linked = links.len(), "device import");
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreassignBody {
    pub serial: String,
    pub username: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preassigned {
    pub serial: String,
    pub user_id: Uuid,
    /// The device, when its serial was enrolled already and so linked at once.
    pub linked_device_id: Option<Uuid>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/enrollments", tag = "devices", request_body = PreassignBody,
    responses((status = 201, body = Preassigned), (status = 403), (status = 404), (status = 422)))]
pub async fn preassign(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Edit>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: web::Json<PreassignBody>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let serial = parse_serial(&body.serial).ok_or_else(|| {
        AppError::new(
            Code::InvalidSerial,
            "serial: 1 to 64 printable characters without spaces",
        )
    })?;
    let user = state
        .store
        .user_by_username(&body.username)
        .await?
        .filter(|u| u.account_id == aid && !u.deleted && u.kind == "user")
        .ok_or_else(|| {
            AppError::new(Code::UnknownUser, "username names no user of this account")
        })?;
    // An enrolled serial is linked at once: only when the caller sees that device.
    let enrolled = state.store.device_by_serial(aid, &serial).await?;
    if enrolled
        .as_ref()
        .is_some_and(|d| !who.rights().sees(d.id.0, d.group_id))
    {
        return Err(device_not_found());
    }
    let linked = state
        .store
        .audited(audit_entries(
            who,
            aid,
            "device.preassigned",
            enrolled.map(|d| d.id.to_string()),
            serde_json::json!({"serial": serial, "username": user.username}),
        ))
        .preassign(aid, &serial, user.id)
        .await?;
    Ok(HttpResponse::Created().json(Preassigned {
        serial,
        user_id: user.id.0,
        linked_device_id: linked.map(|d| d.0),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// The group new devices enrolled with this code join.
    #[serde(default)]
    pub group_id: Option<Uuid>,
    /// Validity in hours, 1 to 720 (default 72).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollmentCode {
    /// Its id in the list of codes (for revoking it).
    pub id: Uuid,
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/accounts/{aid}/enrollment-codes", tag = "devices", request_body = CodeBody,
    responses((status = 201, body = EnrollmentCode), (status = 403), (status = 404), (status = 422)))]
pub async fn enrollment_code(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Create>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    body: super::optional_json::OptionalJson<CodeBody>,
) -> AppResult<HttpResponse> {
    let (who, aid) = (&scope.who, scope.account);
    let body = body.into_inner().unwrap_or_default();
    let hours = body.expires_in_hours.unwrap_or(72);
    if !(1..=720).contains(&hours) {
        return Err(AppError::new(
            Code::InvalidExpiry,
            "expires_in_hours: 1 to 720",
        ));
    }
    match body.group_id {
        Some(g) => check_group(&state, who, g).await?,
        None if !who.rights().sees_device(None) => {
            return Err(AppError::new(
                Code::GroupRequired,
                "your rights name device groups: enroll into one of them",
            ));
        }
        None => {}
    }
    let code = token::generate(token::prefix::ENROLLMENT).map_err(AppError::internal)?;
    let expires_at = Utc::now() + Duration::hours(hours);
    let id = Uuid::now_v7();
    state
        .store
        .audited(audit_entries(
            who,
            aid,
            "device.enrollment_code_created",
            Some(id.to_string()),
            serde_json::json!({"expires_at": expires_at, "code": token::log_tag(&code)}),
        ))
        .insert_enrollment_code(
            id,
            &token::hash(&code),
            aid,
            body.group_id,
            who.user.id,
            expires_at,
            who.partner.as_ref().map(|p| p.grant),
        )
        .await?;
    let mut res = HttpResponse::Created();
    secret_headers(&mut res);
    Ok(res.json(EnrollmentCode {
        id,
        code,
        expires_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/enrollment-codes", tag = "devices",
    responses((status = 200, body = Vec<EnrollmentCodeRecord>,
               description = "the newest 200 codes of the groups the caller sees, never the codes themselves"),
              (status = 403), (status = 404)))]
pub async fn enrollment_codes(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let rights = scope.who.rights();
    let codes: Vec<EnrollmentCodeRecord> = state
        .store
        .enrollment_codes_of(scope.account)
        .await?
        .into_iter()
        .filter(|c| rights.sees_device(c.group_id))
        .collect();
    Ok(HttpResponse::Ok().json(codes))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{aid}/enrollment-codes/{id}", tag = "devices",
    params(("aid" = Uuid, Path), ("id" = Uuid, Path)),
    responses((status = 204, description = "revoked: enrolling with it answers 410 code_revoked"),
              (status = 403), (status = 404, description = "enrollment_code_not_found"),
              (status = 409, description = "code_spent: it was used or revoked already")))]
pub async fn revoke_enrollment_code(
    state: web::Data<AppState>,
    scope: InAccount<area::Devices, level::Delete>,
    path: web::Path<(AccountId, Uuid)>,
) -> AppResult<HttpResponse> {
    let (_, id) = path.into_inner();
    let not_found = || AppError::new(Code::EnrollmentCodeNotFound, "no such enrollment code");
    // A code of a group the caller does not see is not there for it: decided before writing.
    let listed = state.store.enrollment_codes_of(scope.account).await?;
    let code = listed.iter().find(|c| c.id == id).ok_or_else(not_found)?;
    if !scope.who.rights().sees_device(code.group_id) {
        return Err(not_found());
    }
    match state
        .store
        .audited(audit_entries(
            &scope.who,
            scope.account,
            "device.enrollment_code_revoked",
            Some(id.to_string()),
            serde_json::json!({"group": code.group_name}),
        ))
        .revoke_enrollment_code(scope.account, id)
        .await?
    {
        None => Err(not_found()),
        Some((false, _)) => Err(AppError::new(
            Code::CodeSpent,
            "this code was used or revoked already",
        )),
        Some((true, _)) => Ok(HttpResponse::NoContent().finish()),
    }
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/actions", tag = "devices",
    request_body = super::self_service::ActionBody,
    responses((status = 202, body = super::self_service::CommandQueued),
              (status = 403, description = "missing_right / reauth_required (wipe needs the caller's password)"),
              (status = 404), (status = 422, description = "action_not_supported"),
              (status = 429, description = "too many password attempts")))]
/// An admin's command to a device of its account (area `devices` + `objects.edit`, the
/// device's group among the caller's): the same actions, platform table and wipe password
/// as self-service.
pub async fn admin_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: Authorized<area::Devices, level::Edit>,
    path: web::Path<DeviceId>,
    body: web::Json<super::self_service::ActionBody>,
) -> AppResult<HttpResponse> {
    let (who, device) = visible_device(&state, &auth, path.into_inner()).await?;
    super::self_service::act_on_device(&state, who, &req, &device, &body).await
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/actions/{command_id}", tag = "devices",
    params(("id" = Uuid, Path), ("command_id" = Uuid, Path)),
    responses((status = 200, body = super::self_service::CommandView), (status = 403), (status = 404)))]
pub async fn admin_action_status(
    state: web::Data<AppState>,
    auth: Authorized<area::Devices, level::Read>,
    path: web::Path<(Uuid, Uuid)>,
) -> AppResult<HttpResponse> {
    let (device, command) = path.into_inner();
    let (_, device) = visible_device(&state, &auth, DeviceId(device)).await?;
    let command = state
        .store
        .command(crate::domain::ids::CommandId(command))
        .await?
        .filter(|c| c.device_id == device.id)
        .ok_or_else(|| AppError::new(Code::CommandNotFound, "no such command"))?;
    Ok(HttpResponse::Ok().json(super::self_service::CommandView::from(command)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub code: String,
    pub serial: String,
    pub platform: Platform,
    #[serde(default)]
    pub model: String,
    pub name: String,
    #[serde(default)]
    pub os_version: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    pub device_id: Uuid,
    /// The agent's credential for `/ws/device`; shown once, stored only hashed.
    pub device_secret: String,
}

#[utoipa::path(post, path = "/api/v1/enroll", tag = "devices", request_body = EnrollBody,
    responses((status = 201, body = Enrolled), (status = 404, description = "enrollment_code_not_found"),
              (status = 409, description = "device_already_enrolled"),
              (status = 410, description = "enrollment_code_used / enrollment_code_expired / code_revoked"), (status = 422)))]
pub async fn enroll(
    state: web::Data<AppState>,
    body: web::Json<EnrollBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let serial = parse_serial(&body.serial).ok_or_else(|| {
        AppError::new(
            Code::InvalidSerial,
            "serial: 1 to 64 printable characters without spaces",
        )
    })?;
    let name = validate::bounded_text(&body.name, 200)
        .ok_or_else(|| AppError::new(Code::InvalidName, "name: 1 to 200 characters"))?;
    let device = EnrollingDevice {
        serial,
        platform: body.platform,
        model: bounded(&body.model, 200, Code::InvalidModel, "model")?,
        name,
        os_version: bounded(&body.os_version, 100, Code::InvalidOsVersion, "os_version")?,
    };
    let secret = token::generate(token::prefix::DEVICE).map_err(AppError::internal)?;
    let enrolled = state
        .store
        .enroll(&token::hash(&body.code), &device, &token::hash(&secret))
        .await?;
    let (record, new) = match enrolled {
        Ok(done) => done,
        Err(EnrollRefusal::Unknown) => {
            return Err(AppError::new(
                Code::EnrollmentCodeNotFound,
                "no such enrollment code",
            ));
        }
        Err(EnrollRefusal::Used) => {
            return Err(AppError::new(
                Code::EnrollmentCodeUsed,
                "this enrollment code has been used",
            ));
        }
        Err(EnrollRefusal::Expired) => {
            return Err(AppError::new(
                Code::EnrollmentCodeExpired,
                "this enrollment code has expired",
            ));
        }
        Err(EnrollRefusal::Revoked) => {
            return Err(AppError::new(
                Code::CodeRevoked,
                "this enrollment code was revoked: its maker was deleted or its partner access ended",
            ));
        }
        Err(EnrollRefusal::AlreadyEnrolled) => {
            return Err(AppError::new(
                Code::DeviceAlreadyEnrolled,
                "a device with this serial is enrolled; release it first (POST /devices/{id}/release)",
            ));
        }
    };
    // A re-enrolled device's old connection (if any) holds a secret that just ended.
    super::cluster::to_device(
        &state,
        record.id,
        DeviceNote::Disconnect {
            code: close_code::REPLACED,
            reason: "re_enrolled".into(),
        },
    );
    tracing::info!(device = %record.id, account = %record.account_id, new, "device enrolled");
    let mut res = HttpResponse::Created();
    secret_headers(&mut res);
    Ok(res.json(Enrolled {
        device_id: record.id.0,
        device_secret: secret,
    }))
}

/// `GET /ws/device`: a device agent, by `Authorization: Bearer <device_secret>`.
pub async fn agent_socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    state.refuse_if_draining()?;
    let secret = crate::auth::extract::bearer(&req).ok_or_else(AppError::unauthorized)?;
    let device = state
        .store
        .device_by_secret(&token::hash(secret))
        .await?
        .ok_or_else(AppError::unauthorized)?;
    let (response, ws, stream) = actix_ws::handle(&req, body).map_err(|e| {
        AppError::new(
            Code::NotWebsocket,
            format!("expected a WebSocket upgrade: {e}"),
        )
    })?;
    let limits = state.ws_limits.clone();
    let outlet = connection::open(ws, limits.outbound_queue, &state.connections);
    let stream = stream
        .max_frame_size(limits.max_text_bytes)
        .aggregate_continuations()
        .max_continuation_size(limits.max_text_bytes);
    let store = state.store.clone();
    let registry = state.registry.clone();
    let cluster = state.cluster.clone();
    DeviceActor::create(move |ctx| {
        ctx.add_stream(stream);
        DeviceActor::new(device.id, outlet, limits, store, registry).in_cluster(cluster)
    });
    Ok(response)
}
