//! Devices, enrollment codes, pre-assignments and device commands.

use super::db::{Row, SortableTime, query, query_as, query_scalar};
use chrono::{DateTime, Utc};

use super::{Store, StoreResult, get_opt_uuid, get_uuid, to_json};
use crate::domain::{
    device::{Action, CommandStatus, Effect, Location, Platform, effects},
    ids::{AccountId, CommandId, DeviceId, GrantId, UserId},
};

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub account_id: AccountId,
    pub name: String,
    pub serial: String,
    pub platform: Platform,
    pub model: String,
    pub os_version: String,
    pub battery: Option<u8>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub location: Option<Location>,
    pub lost_mode: bool,
    pub user_id: Option<UserId>,
    pub group_id: Option<uuid::Uuid>,
    pub created_at: DateTime<Utc>,
    /// The node of a cluster its agent is connected to (None: not connected, or one node).
    pub agent_node: Option<String>,
}

/// What an enrolling agent tells about itself.
#[derive(Debug, Clone)]
pub struct EnrollingDevice {
    pub serial: String,
    pub platform: Platform,
    pub model: String,
    pub name: String,
    pub os_version: String,
}

/// Why an enrollment code could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollRefusal {
    Unknown,
    Used,
    Expired,
    /// Its maker was deleted, or the partner grant it was made through has ended.
    Revoked,
    /// The serial belongs to a device that holds a live device secret (anywhere), or to a
    /// device of the account that a partner assigned to it.
    AlreadyEnrolled,
}

#[derive(Debug, Clone)]
pub struct CommandRecord {
    pub id: CommandId,
    pub device_id: DeviceId,
    pub account_id: AccountId,
    pub action: Action,
    pub params: serde_json::Value,
    pub status: CommandStatus,
    pub result: Option<serde_json::Value>,
    pub requested_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

fn decode<E: std::error::Error + Send + Sync + 'static>(e: E) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {0} `{1}` in the database")]
struct UnknownValue(&'static str, String);

fn device_from_row(row: &Row) -> StoreResult<DeviceRecord> {
    let platform: String = row.try_get("platform")?;
    let location: Option<String> = row.try_get("location")?;
    let battery: Option<i64> = row.try_get("battery")?;
    Ok(DeviceRecord {
        agent_node: row.try_get("agent_node")?,
        id: DeviceId(get_uuid(row, "id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        name: row.try_get("name")?,
        serial: row.try_get("serial")?,
        platform: Platform::parse(&platform)
            .ok_or_else(|| decode(UnknownValue("platform", platform.clone())))?,
        model: row.try_get("model")?,
        os_version: row.try_get("os_version")?,
        battery: battery.and_then(|b| u8::try_from(b).ok()),
        last_seen_at: row.try_get("last_seen_at")?,
        location: location
            .map(|l| serde_json::from_str(&l).map_err(decode))
            .transpose()?,
        lost_mode: row.try_get("lost_mode")?,
        user_id: get_opt_uuid(row, "user_id")?.map(UserId),
        group_id: get_opt_uuid(row, "group_id")?,
        created_at: row.try_get("created_at")?,
    })
}

fn command_from_row(row: &Row) -> StoreResult<CommandRecord> {
    let action: String = row.try_get("action")?;
    let status: String = row.try_get("status")?;
    let params: String = row.try_get("params")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(CommandRecord {
        id: CommandId(get_uuid(row, "id")?),
        device_id: DeviceId(get_uuid(row, "device_id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        action: Action::parse(&action)
            .ok_or_else(|| decode(UnknownValue("action", action.clone())))?,
        params: serde_json::from_str(&params).map_err(decode)?,
        status: CommandStatus::parse(&status)
            .ok_or_else(|| decode(UnknownValue("status", status.clone())))?,
        result: result
            .map(|r| serde_json::from_str(&r).map_err(decode))
            .transpose()?,
        requested_by: get_opt_uuid(row, "requested_by")?.map(UserId),
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
        finished_at: row.try_get("finished_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// A cluster node holds the device's agent connection now.
    pub async fn device_agent_at(&self, device: DeviceId, node: &str) -> StoreResult<()> {
        self.write_one(
            query("UPDATE devices SET agent_node = ? WHERE id = ?")
                .bind(node.to_string())
                .bind(device.to_string()),
        )
        .await?;
        Ok(())
    }

    /// The agent's connection on `node` ended (unless a newer one elsewhere took its place).
    pub async fn device_agent_gone(&self, device: DeviceId, node: &str) -> StoreResult<()> {
        self.write_one(
            query("UPDATE devices SET agent_node = NULL WHERE id = ? AND agent_node = ?")
                .bind(device.to_string())
                .bind(node.to_string()),
        )
        .await?;
        Ok(())
    }

    /// Forgets agent connections of nodes not seen since `alive_since` (and, at a node's
    /// start, its own from before: `restarted`).
    /// The nodes other than `me` that hold agent connections and were not seen since
    /// `alive_since`: dead, by their heartbeat (the caller asks NATS before it believes it).
    pub async fn unseen_agent_nodes(
        &self,
        me: &str,
        alive_since: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        query_scalar::<String>(
            "SELECT DISTINCT agent_node FROM devices
             WHERE agent_node IS NOT NULL AND agent_node <> ?
               AND agent_node NOT IN (SELECT id FROM nodes WHERE seen_at > ?)",
        )
        .bind(me.to_string())
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await
    }

    /// Forgets the agent connections `node` held: all of them (a node that restarted with
    /// the same id), or, with `unseen_since`, only if the node is still not seen since then.
    pub async fn forget_agents_of(
        &self,
        node: &str,
        unseen_since: Option<DateTime<Utc>>,
    ) -> StoreResult<u64> {
        let done = match unseen_since {
            None => {
                self.write_one(
                    query("UPDATE devices SET agent_node = NULL WHERE agent_node = ?")
                        .bind(node.to_string()),
                )
                .await?
            }
            Some(since) => {
                self.write_one(
                    query(
                        "UPDATE devices SET agent_node = NULL WHERE agent_node = ?
                         AND agent_node NOT IN (SELECT id FROM nodes WHERE seen_at > ?)",
                    )
                    .bind(node.to_string())
                    .bind(since),
                )
                .await?
            }
        };
        Ok(done.rows_affected())
    }

    pub async fn insert_device(&self, d: &DeviceRecord) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO devices (id, account_id, name, serial, platform, model, os_version, lost_mode,
                user_id, group_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.id.to_string())
        .bind(d.account_id.to_string())
        .bind(&d.name)
        .bind(&d.serial)
        .bind(d.platform.as_str())
        .bind(&d.model)
        .bind(&d.os_version)
        .bind(d.lost_mode)
        .bind(d.user_id.map(|u| u.to_string()))
        .bind(d.group_id.map(|g| g.to_string()))
        .bind(d.created_at)
        )
        .await
        .map(|_| ())
    }

    pub async fn device(&self, id: DeviceId) -> StoreResult<Option<DeviceRecord>> {
        let row = query("SELECT * FROM devices WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    pub async fn device_by_serial(
        &self,
        account: AccountId,
        serial: &str,
    ) -> StoreResult<Option<DeviceRecord>> {
        let row = query("SELECT * FROM devices WHERE account_id = ? AND serial = ?")
            .bind(account.to_string())
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    pub async fn devices_of(&self, account: AccountId) -> StoreResult<Vec<DeviceRecord>> {
        let rows = query("SELECT * FROM devices WHERE account_id = ? ORDER BY name, serial")
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// The devices linked to a user.
    pub async fn devices_of_user(&self, user: UserId) -> StoreResult<Vec<DeviceRecord>> {
        let rows = query("SELECT * FROM devices WHERE user_id = ? ORDER BY name, serial")
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// Writes the editable fields (name, model, OS version, group).
    pub async fn update_device(&self, d: &DeviceRecord) -> StoreResult<()> {
        self.write_one(
            query(
                "UPDATE devices SET name = ?, model = ?, os_version = ?, group_id = ? WHERE id = ?",
            )
            .bind(&d.name)
            .bind(&d.model)
            .bind(&d.os_version)
            .bind(d.group_id.map(|g| g.to_string()))
            .bind(d.id.to_string()),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a device with its commands; its secret dies with it.
    pub async fn delete_device(&self, id: DeviceId) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        query("DELETE FROM device_commands WHERE device_id = ?")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        let done = query("DELETE FROM devices WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        // Nothing to do commits nothing (and records nothing on an audited handle).
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn link_device(&self, id: DeviceId, user: Option<UserId>) -> StoreResult<()> {
        self.write_one(
            query("UPDATE devices SET user_id = ? WHERE id = ?")
                .bind(user.map(|u| u.to_string()))
                .bind(id.to_string()),
        )
        .await
        .map(|_| ())
    }

    /// Applies the linked rows of a CSV import in one transaction.
    pub async fn link_devices(&self, links: &[(DeviceId, UserId)]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for (device, user) in links {
            query("UPDATE devices SET user_id = ? WHERE id = ?")
                .bind(user.to_string())
                .bind(device.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await
    }

    /// What an agent's telemetry says; always refreshes `last_seen_at`.
    pub async fn record_telemetry(
        &self,
        id: DeviceId,
        battery: Option<u8>,
        location: Option<&Location>,
        seen: DateTime<Utc>,
    ) -> StoreResult<()> {
        let location = location.map(to_json).transpose()?;
        // An older write that lands after a newer one (detached tasks) changes nothing.
        query(
            "UPDATE devices SET last_seen_at = ?, battery = COALESCE(?, battery),
                location = COALESCE(?, location)
             WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at <= ?)",
        )
        .bind(seen)
        .bind(battery.map(i64::from))
        .bind(location)
        .bind(id.to_string())
        .bind(seen)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// The device a secret belongs to.
    pub async fn device_by_secret(&self, secret_hash: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = query("SELECT * FROM devices WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
    }
}

/// An enrollment code as listed (never the code itself: only its hash is stored).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EnrollmentCodeRecord {
    pub id: uuid::Uuid,
    pub group_id: Option<uuid::Uuid>,
    pub group_name: Option<String>,
    /// The name of the user who made it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub device_id: Option<uuid::Uuid>,
    pub device_name: Option<String>,
    /// `open`, `used`, `expired` or `revoked`.
    pub state: &'static str,
}

impl Store {
    #[allow(clippy::too_many_arguments)] // one column each; the handler names them all
    pub async fn insert_enrollment_code(
        &self,
        id: uuid::Uuid,
        code_hash: &str,
        account: AccountId,
        group: Option<uuid::Uuid>,
        created_by: UserId,
        expires_at: DateTime<Utc>,
        grant: Option<GrantId>,
    ) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO enrollment_codes (id, code_hash, account_id, group_id, created_by, created_at, expires_at, grant_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(code_hash)
        .bind(account.to_string())
        .bind(group.map(|g| g.to_string()))
        .bind(created_by.to_string())
        .bind(Utc::now())
        .bind(expires_at)
        .bind(grant.map(|g| g.to_string()))
        )
        .await
        .map(|_| ())
    }

    /// The account's newest enrollment codes (at most 200), with who made them and what
    /// became of them.
    pub async fn enrollment_codes_of(
        &self,
        account: AccountId,
    ) -> StoreResult<Vec<EnrollmentCodeRecord>> {
        let rows = query(
            "SELECT c.id, c.group_id, g.name AS group_name, c.created_at, c.expires_at, c.used_at,
                    c.revoked_at, c.device_id, d.name AS device_name,
                    u.first_name || ' ' || u.last_name AS maker,
                    u.deleted_at IS NOT NULL AS maker_deleted,
                    c.grant_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM access_grants ag
                        WHERE ag.id = c.grant_id AND ag.ended_at IS NULL
                          AND (ag.expires_at IS NULL OR ag.expires_at > ?)) AS grant_ended
             FROM enrollment_codes c
             JOIN users u ON u.id = c.created_by
             LEFT JOIN device_groups g ON g.id = c.group_id
             LEFT JOIN devices d ON d.id = c.device_id
             WHERE c.account_id = ? AND c.id IS NOT NULL
             ORDER BY c.created_at DESC LIMIT 200",
        )
        .bind(SortableTime(Utc::now()))
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await?;
        let now = Utc::now();
        rows.iter()
            .map(|row| {
                let used_at: Option<DateTime<Utc>> = row.try_get("used_at")?;
                let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at")?;
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                let ended = revoked_at.is_some()
                    || row.try_get::<bool, _>("maker_deleted")?
                    || row.try_get::<bool, _>("grant_ended")?;
                let state = if used_at.is_some() {
                    "used"
                } else if ended {
                    "revoked"
                } else if expires_at <= now {
                    "expired"
                } else {
                    "open"
                };
                Ok(EnrollmentCodeRecord {
                    id: get_uuid(row, "id")?,
                    group_id: get_opt_uuid(row, "group_id")?,
                    group_name: row.try_get("group_name")?,
                    created_by: row.try_get::<String, _>("maker")?.trim().to_string(),
                    created_at: row.try_get("created_at")?,
                    expires_at,
                    used_at,
                    device_id: get_opt_uuid(row, "device_id")?,
                    device_name: row.try_get("device_name")?,
                    state,
                })
            })
            .collect()
    }

    /// Ends an unused code of the account for good; `None` when there is no such code,
    /// `Some(false)` when it was used or revoked already.
    pub async fn revoke_enrollment_code(
        &self,
        account: AccountId,
        id: uuid::Uuid,
    ) -> StoreResult<Option<(bool, Option<uuid::Uuid>)>> {
        let group: Option<(Option<String>,)> =
            query_as("SELECT group_id FROM enrollment_codes WHERE id = ? AND account_id = ?")
                .bind(id.to_string())
                .bind(account.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some((group,)) = group else {
            return Ok(None);
        };
        let done = self
            .write_one(
                query(
                    "UPDATE enrollment_codes SET revoked_at = ?
             WHERE id = ? AND account_id = ? AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(Utc::now())
                .bind(id.to_string())
                .bind(account.to_string()),
            )
            .await?;
        let group = group.and_then(|g| uuid::Uuid::parse_str(&g).ok());
        Ok(Some((done.rows_affected() == 1, group)))
    }

    /// Uses an enrollment code up and enrolls the device in one transaction. A code never takes
    /// over an enrolled device: a serial whose device holds a live secret anywhere is refused
    /// (`AlreadyEnrolled`); a device of the code's own account without a secret (created by
    /// hand, released, or wiped) gets a new secret and keeps its links; otherwise a new device
    /// is created, linked at once when a pre-assignment names its serial. A code whose maker
    /// was deleted, or whose partner grant ended, is `Revoked`. Answers the device and whether
    /// it is new.
    pub async fn enroll(
        &self,
        code_hash: &str,
        device: &EnrollingDevice,
        secret_hash: &str,
    ) -> StoreResult<Result<(DeviceRecord, bool), EnrollRefusal>> {
        let now = Utc::now();
        // Refuse unknown, used and expired codes with a plain read: only a usable code takes
        // the database's write lock (this endpoint needs no credential).
        let state: Option<(Option<DateTime<Utc>>, DateTime<Utc>)> =
            query_as("SELECT used_at, expires_at FROM enrollment_codes WHERE code_hash = ?")
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?;
        match state {
            None => return Ok(Err(EnrollRefusal::Unknown)),
            Some((Some(_), _)) => return Ok(Err(EnrollRefusal::Used)),
            Some((None, expires_at)) if expires_at <= now => {
                return Ok(Err(EnrollRefusal::Expired));
            }
            Some(_) => {}
        }
        let mut tx = self.write_tx().await?;
        let code = query(
            "SELECT c.account_id, c.group_id, c.expires_at, c.used_at,
                    u.deleted_at IS NOT NULL OR c.revoked_at IS NOT NULL AS maker_deleted,
                    c.grant_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM access_grants g
                        WHERE g.id = c.grant_id AND g.ended_at IS NULL
                          AND (g.expires_at IS NULL OR g.expires_at > ?)) AS grant_ended
             FROM enrollment_codes c JOIN users u ON u.id = c.created_by
             WHERE c.code_hash = ?",
        )
        .bind(SortableTime(now))
        .bind(code_hash)
        .fetch_optional(&mut tx)
        .await?;
        let Some(code) = code else {
            return Ok(Err(EnrollRefusal::Unknown));
        };
        let used_at: Option<DateTime<Utc>> = code.try_get("used_at")?;
        let expires_at: DateTime<Utc> = code.try_get("expires_at")?;
        if used_at.is_some() {
            return Ok(Err(EnrollRefusal::Used));
        }
        if expires_at <= now {
            return Ok(Err(EnrollRefusal::Expired));
        }
        if code.try_get::<bool, _>("maker_deleted")? || code.try_get::<bool, _>("grant_ended")? {
            return Ok(Err(EnrollRefusal::Revoked));
        }
        let account = AccountId(get_uuid(&code, "account_id")?);
        let group = get_opt_uuid(&code, "group_id")?;
        let enrolled_elsewhere: Option<String> = query_scalar(
            "SELECT id FROM devices WHERE serial = ? AND secret_hash IS NOT NULL LIMIT 1",
        )
        .bind(&device.serial)
        .fetch_optional(&mut tx)
        .await?;
        if enrolled_elsewhere.is_some() {
            return Ok(Err(EnrollRefusal::AlreadyEnrolled));
        }
        let existing =
            query("SELECT id, owner_account_id FROM devices WHERE account_id = ? AND serial = ?")
                .bind(account.to_string())
                .bind(&device.serial)
                .fetch_optional(&mut tx)
                .await?;
        if let Some(row) = &existing
            && get_opt_uuid(row, "owner_account_id")?.is_some()
        {
            // A partner's device assigned to this account: not the account's to re-key.
            return Ok(Err(EnrollRefusal::AlreadyEnrolled));
        }
        let preassigned: Option<String> = query_scalar(
            "SELECT p.user_id FROM device_preassignments p JOIN users u ON u.id = p.user_id
             WHERE p.account_id = ? AND p.serial = ? AND u.deleted_at IS NULL",
        )
        .bind(account.to_string())
        .bind(&device.serial)
        .fetch_optional(&mut tx)
        .await?;
        let (id, new) = match existing {
            Some(row) => {
                let id: String = row.try_get("id")?;
                query(
                    "UPDATE devices SET secret_hash = ?, platform = ?, model = ?, os_version = ?,
                        user_id = COALESCE(?, user_id), last_seen_at = ? WHERE id = ?",
                )
                .bind(secret_hash)
                .bind(device.platform.as_str())
                .bind(&device.model)
                .bind(&device.os_version)
                .bind(&preassigned)
                .bind(now)
                .bind(&id)
                .execute(&mut tx)
                .await?;
                (id, false)
            }
            None => {
                let id = DeviceId::new().to_string();
                query(
                    "INSERT INTO devices (id, account_id, name, serial, platform, model, os_version,
                        lost_mode, user_id, group_id, secret_hash, last_seen_at, created_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, FALSE, ?, ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(account.to_string())
                .bind(&device.name)
                .bind(&device.serial)
                .bind(device.platform.as_str())
                .bind(&device.model)
                .bind(&device.os_version)
                .bind(&preassigned)
                .bind(group.map(|g| g.to_string()))
                .bind(secret_hash)
                .bind(now)
                .bind(now)
                .execute(&mut tx)
                .await?;
                (id, true)
            }
        };
        query("DELETE FROM device_preassignments WHERE account_id = ? AND serial = ?")
            .bind(account.to_string())
            .bind(&device.serial)
            .execute(&mut tx)
            .await?;
        // The code is taken only if nobody took it meanwhile.
        let taken = query(
            "UPDATE enrollment_codes SET used_at = ?, device_id = ? WHERE code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(&id)
        .bind(code_hash)
        .execute(&mut tx)
        .await?;
        if taken.rows_affected() != 1 {
            return Ok(Err(EnrollRefusal::Used));
        }
        let row = query("SELECT * FROM devices WHERE id = ?")
            .bind(&id)
            .fetch_one(&mut tx)
            .await?;
        let record = device_from_row(&row)?;
        // The enrollment's own record, in its transaction: the device is its actor.
        super::audit::append(
            &mut tx.tx,
            &super::AuditEntry {
                account_id: record.account_id,
                actor_user_id: None,
                actor_name: format!("device {}", record.serial),
                via: "enrollment".into(),
                action: "device.enrolled",
                target: Some(record.id.to_string()),
                details: serde_json::json!({
                    "serial": record.serial,
                    "platform": record.platform.as_str(),
                    "new": new,
                    "linked_user_id": record.user_id,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok((record, new)))
    }

    /// Ends a device's secret, so its agent is out and an enrollment code of its account may
    /// enroll the serial again. False when there is no such device.
    pub async fn release_device(&self, id: DeviceId) -> StoreResult<bool> {
        let done = self
            .write_one(
                query("UPDATE devices SET secret_hash = NULL WHERE id = ?").bind(id.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Names the user a serial is linked to when (or if already) its device enrolls. Answers
    /// the device it linked at once, if the serial is already enrolled in the account.
    pub async fn preassign(
        &self,
        account: AccountId,
        serial: &str,
        user: UserId,
    ) -> StoreResult<Option<DeviceId>> {
        let mut tx = self.write_tx().await?;
        let existing: Option<String> =
            query_scalar("SELECT id FROM devices WHERE account_id = ? AND serial = ?")
                .bind(account.to_string())
                .bind(serial)
                .fetch_optional(&mut tx)
                .await?;
        let linked = match existing {
            Some(id) => {
                query("UPDATE devices SET user_id = ? WHERE id = ?")
                    .bind(user.to_string())
                    .bind(&id)
                    .execute(&mut tx)
                    .await?;
                Some(DeviceId(id.parse().map_err(decode)?))
            }
            None => {
                query(
                    "INSERT INTO device_preassignments (account_id, serial, user_id, created_at)
                     VALUES (?, ?, ?, ?)
                     ON CONFLICT (account_id, serial) DO UPDATE SET user_id = excluded.user_id,
                        created_at = excluded.created_at",
                )
                .bind(account.to_string())
                .bind(serial)
                .bind(user.to_string())
                .bind(Utc::now())
                .execute(&mut tx)
                .await?;
                None
            }
        };
        tx.commit().await?;
        Ok(linked)
    }
}

impl Store {
    /// Stores a command under its requester's idempotency key: `Ok(None)` when it was
    /// stored, `Ok(Some(earlier))` when that user sent a command with this key before (the
    /// unique index decides, so parallel repeats store one).
    pub async fn insert_command_once(
        &self,
        c: &CommandRecord,
        key: &str,
    ) -> StoreResult<Option<CommandRecord>> {
        let done = self.write_one(query(
            "INSERT INTO device_commands (id, device_id, account_id, action, params, status,
                requested_by, created_at, updated_at, idempotency_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING",
        )
        .bind(c.id.to_string())
        .bind(c.device_id.to_string())
        .bind(c.account_id.to_string())
        .bind(c.action.as_str())
        .bind(to_json(&c.params)?)
        .bind(c.status.as_str())
        .bind(c.requested_by.map(|u| u.to_string()))
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(key)
        )
        .await?;
        if done.rows_affected() == 1 {
            return Ok(None);
        }
        let row =
            query("SELECT * FROM device_commands WHERE requested_by = ? AND idempotency_key = ?")
                .bind(c.requested_by.map(|u| u.to_string()))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    pub async fn insert_command(&self, c: &CommandRecord) -> StoreResult<()> {
        self.write_one(
            query(
                "INSERT INTO device_commands (id, device_id, account_id, action, params, status,
                requested_by, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(c.id.to_string())
            .bind(c.device_id.to_string())
            .bind(c.account_id.to_string())
            .bind(c.action.as_str())
            .bind(to_json(&c.params)?)
            .bind(c.status.as_str())
            .bind(c.requested_by.map(|u| u.to_string()))
            .bind(c.created_at)
            .bind(c.updated_at),
        )
        .await
        .map(|_| ())
    }

    pub async fn command(&self, id: CommandId) -> StoreResult<Option<CommandRecord>> {
        let row = query("SELECT * FROM device_commands WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    /// The devices `partner` assigned into `customer` (and may take back).
    pub async fn devices_assigned_by(
        &self,
        partner: AccountId,
        customer: AccountId,
    ) -> StoreResult<Vec<DeviceRecord>> {
        let rows = query(
            "SELECT * FROM devices WHERE account_id = ? AND owner_account_id = ? ORDER BY name, id",
        )
        .bind(customer.to_string())
        .bind(partner.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device_from_row).collect()
    }

    /// The newest `limit` commands of a device, newest first.
    pub async fn commands_of(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> StoreResult<Vec<CommandRecord>> {
        let rows = query(
            "SELECT * FROM device_commands WHERE device_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(device.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_from_row).collect()
    }

    /// Commands not yet answered, oldest first: what a connecting agent is sent.
    pub async fn pending_commands(&self, device: DeviceId) -> StoreResult<Vec<CommandRecord>> {
        let rows = query(
            "SELECT * FROM device_commands WHERE device_id = ? AND status IN ('queued', 'sent')
             ORDER BY created_at, id",
        )
        .bind(device.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_from_row).collect()
    }

    /// Marks a command handed to the agent (a resend keeps the first `sent_at`).
    pub async fn mark_command_sent(&self, id: CommandId) -> StoreResult<()> {
        let now = Utc::now();
        query(
            "UPDATE device_commands SET status = 'sent', sent_at = COALESCE(sent_at, ?), updated_at = ?
             WHERE id = ? AND status IN ('queued', 'sent')",
        )
        .bind(now)
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Records the agent's answer and, in the same transaction, what it changes on the device
    /// (lost mode, location, the secret after a wipe), so that a command seen `done` has taken
    /// effect. `None` when the command is not the device's or already answered (a repeated ack
    /// changes nothing).
    pub async fn finish_command(
        &self,
        id: CommandId,
        device: DeviceId,
        status: CommandStatus,
        result: Option<&serde_json::Value>,
    ) -> StoreResult<Option<(CommandRecord, Vec<Effect>)>> {
        let now = Utc::now();
        let result_text = result.map(to_json).transpose()?;
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE device_commands SET status = ?, result = ?, finished_at = ?, updated_at = ?
             WHERE id = ? AND device_id = ? AND status IN ('queued', 'sent')",
        )
        .bind(status.as_str())
        .bind(result_text)
        .bind(now)
        .bind(now)
        .bind(id.to_string())
        .bind(device.to_string())
        .execute(&mut tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = query("SELECT * FROM device_commands WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&mut tx)
            .await?;
        let command = command_from_row(&row)?;
        let changes = effects(command.action, status, command.result.as_ref(), now);
        for effect in &changes {
            let query = match effect {
                Effect::LostMode(on) => {
                    query("UPDATE devices SET lost_mode = ? WHERE id = ?").bind(*on)
                }
                Effect::Location(l) => {
                    query("UPDATE devices SET location = ? WHERE id = ?").bind(to_json(l)?)
                }
                Effect::SecretEnded => query("UPDATE devices SET secret_hash = NULL WHERE id = ?"),
            };
            query.bind(device.to_string()).execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(Some((command, changes)))
    }
}
