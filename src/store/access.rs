//! Partner access: requests, grants, partner device assignment and grant-bound tokens.

use super::db::{Row, SortableTime, query, query_scalar};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult, get_uuid};
use crate::domain::ids::{AccessRequestId, AccountId, DeviceId, GrantId, UserId};

/// A request as the customer's access list shows it.
#[derive(Debug, Clone)]
pub struct AccessRequestRecord {
    pub id: AccessRequestId,
    pub partner_account_id: AccountId,
    pub partner_name: String,
    pub customer_account_id: AccountId,
    /// The customer's name, read in the same query (a partner's lists name every customer).
    pub customer_name: String,
    pub requested_by: UserId,
    pub requested_by_name: String,
    pub support_user: bool,
    pub message: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub id: GrantId,
    pub request_id: AccessRequestId,
    pub partner_account_id: AccountId,
    pub partner_name: String,
    pub customer_account_id: AccountId,
    /// The customer's name, read in the same query (a partner's lists name every customer).
    pub customer_name: String,
    pub support_user: bool,
    pub granted_at: DateTime<Utc>,
    pub granted_by: UserId,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// The device groups the grant is narrowed to (`None`: all of the account's devices).
    pub scope_groups: Option<Vec<Uuid>>,
    /// The single devices it is narrowed to (`None`: not narrowed so).
    pub scope_devices: Option<Vec<Uuid>>,
    /// When the partner asked to renew it, and with what words.
    pub renewal_requested_at: Option<DateTime<Utc>>,
    pub renewal_message: Option<String>,
}

impl GrantRecord {
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        crate::domain::access::grant_active(self.expires_at, self.ended_at, now)
    }
}

/// Which way a partner's device moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the partner's inventory into the customer account.
    Assign,
    /// Back from the customer account to the partner.
    Unassign,
}

/// What a device assignment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    Moved,
    /// Not the partner's own device (or, for unassign, not one it assigned to this account).
    NoSuchDevice,
    /// No grant in force between the partner and the account.
    NoGrant,
}

const REQUEST_SELECT: &str = "SELECT r.*, p.name AS partner_name, c.name AS customer_name,
        TRIM(u.first_name || ' ' || u.last_name) AS requester_full_name, u.username AS requester_username
     FROM access_requests r
     JOIN accounts p ON p.id = r.partner_account_id
     JOIN accounts c ON c.id = r.customer_account_id
     JOIN users u ON u.id = r.requested_by";

const GRANT_SELECT: &str = "SELECT g.*, p.name AS partner_name, c.name AS customer_name
     FROM access_grants g
     JOIN accounts p ON p.id = g.partner_account_id
     JOIN accounts c ON c.id = g.customer_account_id";

fn request_from_row(row: &Row) -> StoreResult<AccessRequestRecord> {
    let full: String = row.try_get("requester_full_name")?;
    let username: String = row.try_get("requester_username")?;
    Ok(AccessRequestRecord {
        id: AccessRequestId(get_uuid(row, "id")?),
        partner_account_id: AccountId(get_uuid(row, "partner_account_id")?),
        partner_name: row.try_get("partner_name")?,
        customer_account_id: AccountId(get_uuid(row, "customer_account_id")?),
        customer_name: row.try_get("customer_name")?,
        requested_by: UserId(get_uuid(row, "requested_by")?),
        requested_by_name: if full.is_empty() { username } else { full },
        support_user: row.try_get("support_user")?,
        message: row.try_get("message")?,
        state: row.try_get("state")?,
        created_at: row.try_get("created_at")?,
    })
}

fn grant_from_row(row: &Row) -> StoreResult<GrantRecord> {
    Ok(GrantRecord {
        id: GrantId(get_uuid(row, "id")?),
        request_id: AccessRequestId(get_uuid(row, "request_id")?),
        partner_account_id: AccountId(get_uuid(row, "partner_account_id")?),
        partner_name: row.try_get("partner_name")?,
        customer_account_id: AccountId(get_uuid(row, "customer_account_id")?),
        customer_name: row.try_get("customer_name")?,
        support_user: row.try_get("support_user")?,
        granted_at: row.try_get("granted_at")?,
        granted_by: UserId(get_uuid(row, "granted_by")?),
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        scope_groups: row
            .try_get::<Option<String>, _>("scope_groups")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        scope_devices: row
            .try_get::<Option<String>, _>("scope_devices")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        renewal_requested_at: row.try_get("renewal_requested_at")?,
        renewal_message: row.try_get("renewal_message")?,
    })
}

/// The SQL condition "a grant between partner `?` and customer `?` is in force at `?`".
const GRANT_IN_FORCE: &str = "EXISTS (SELECT 1 FROM access_grants g
     WHERE g.partner_account_id = ? AND g.customer_account_id = ? AND g.ended_at IS NULL
       AND (g.expires_at IS NULL OR g.expires_at > ?))";

impl Store {
    /// Stores a pending request; a second pending one for the same pair is a unique violation.
    pub async fn insert_access_request(&self, r: &AccessRequestRecord) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO access_requests (id, partner_account_id, customer_account_id, requested_by,
                support_user, message, state, created_at)
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(r.id.to_string())
        .bind(r.partner_account_id.to_string())
        .bind(r.customer_account_id.to_string())
        .bind(r.requested_by.to_string())
        .bind(r.support_user)
        .bind(&r.message)
        .bind(SortableTime(r.created_at))
        )
        .await
        .map(|_| ())
    }

    pub async fn access_request(
        &self,
        id: AccessRequestId,
    ) -> StoreResult<Option<AccessRequestRecord>> {
        let sql = format!("{REQUEST_SELECT} WHERE r.id = ?");
        let row = query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_from_row).transpose()
    }

    /// Changes a grant in force: its end (`Some(None)`: none) and its device groups
    /// (`Some(None)`: all). `false` when it is no longer in force. A new end clears a renewal
    /// request (it was answered).
    pub async fn shape_grant(
        &self,
        id: GrantId,
        expires_at: Option<Option<DateTime<Utc>>>,
        scope_groups: Option<Option<Vec<Uuid>>>,
        scope_devices: Option<Option<Vec<Uuid>>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let live = query_scalar::<i64>(
            "SELECT COUNT(*) FROM access_grants WHERE id = ? AND ended_at IS NULL
               AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(id.to_string())
        .bind(SortableTime(now))
        .fetch_one(&mut tx)
        .await?;
        if live != 1 {
            return Ok(false);
        }
        if let Some(end) = expires_at {
            query(
                "UPDATE access_grants SET expires_at = ?, renewal_requested_at = NULL,
                     renewal_message = NULL WHERE id = ?",
            )
            .bind(end.map(SortableTime))
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        }
        if let Some(groups) = scope_groups {
            let text = groups
                .map(|g| serde_json::to_string(&g))
                .transpose()
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            query("UPDATE access_grants SET scope_groups = ? WHERE id = ?")
                .bind(text)
                .bind(id.to_string())
                .execute(&mut tx)
                .await?;
        }
        if let Some(devices) = scope_devices {
            let text = devices
                .map(|d| serde_json::to_string(&d))
                .transpose()
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            query("UPDATE access_grants SET scope_devices = ? WHERE id = ?")
                .bind(text)
                .bind(id.to_string())
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records the partner's request to renew a grant in force; `false` when it is not.
    pub async fn request_renewal(
        &self,
        id: GrantId,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = self
            .write_one(
                query(
                    "UPDATE access_grants SET renewal_requested_at = ?, renewal_message = ?
             WHERE id = ? AND ended_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                )
                .bind(now)
                .bind(message)
                .bind(id.to_string())
                .bind(SortableTime(now)),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A partner's requests in every state, newest first (at most `limit`).
    pub async fn requests_of_partner(
        &self,
        partner: AccountId,
        limit: u32,
    ) -> StoreResult<Vec<AccessRequestRecord>> {
        let sql = format!(
            "{REQUEST_SELECT} WHERE r.partner_account_id = ?
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?"
        );
        let rows = query(sql)
            .bind(partner.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// The customer's pending requests, newest first.
    pub async fn pending_requests_of(
        &self,
        customer: AccountId,
    ) -> StoreResult<Vec<AccessRequestRecord>> {
        let sql = format!(
            "{REQUEST_SELECT} WHERE r.customer_account_id = ? AND r.state = 'pending'
             ORDER BY r.created_at DESC, r.id DESC"
        );
        let rows = query(sql)
            .bind(customer.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Marks a pending request rejected; `false` when it was not pending.
    pub async fn reject_request(&self, id: AccessRequestId, by: UserId) -> StoreResult<bool> {
        let done = self
            .write_one(
                query(
                    "UPDATE access_requests SET state = 'rejected', decided_at = ?, decided_by = ?
             WHERE id = ? AND state = 'pending'",
                )
                .bind(SortableTime(Utc::now()))
                .bind(by.to_string())
                .bind(id.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Approves a pending request and creates its grant in one transaction; `None` when the
    /// request was no longer pending.
    pub async fn approve_request(
        &self,
        request: &AccessRequestRecord,
        grant: GrantId,
        by: UserId,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<GrantRecord>> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE access_requests SET state = 'approved', decided_at = ?, decided_by = ?
             WHERE id = ? AND state = 'pending'",
        )
        .bind(SortableTime(now))
        .bind(by.to_string())
        .bind(request.id.to_string())
        .execute(&mut tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        query(
            "INSERT INTO access_grants (id, request_id, partner_account_id, customer_account_id,
                support_user, granted_at, granted_by, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(grant.to_string())
        .bind(request.id.to_string())
        .bind(request.partner_account_id.to_string())
        .bind(request.customer_account_id.to_string())
        .bind(request.support_user)
        .bind(SortableTime(now))
        .bind(by.to_string())
        .bind(expires_at.map(SortableTime))
        .execute(&mut tx)
        .await?;
        let sql = format!("{GRANT_SELECT} WHERE g.id = ?");
        let row = query(sql)
            .bind(grant.to_string())
            .fetch_one(&mut tx)
            .await?;
        let record = grant_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(record))
    }

    pub async fn grant(&self, id: GrantId) -> StoreResult<Option<GrantRecord>> {
        let sql = format!("{GRANT_SELECT} WHERE g.id = ?");
        let row = query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// Grants not ended, oldest first, of a customer (or of a partner with `as_partner`); the
    /// caller filters those past their expiry.
    pub async fn open_grants(
        &self,
        account: AccountId,
        as_partner: bool,
    ) -> StoreResult<Vec<GrantRecord>> {
        let column = if as_partner {
            "g.partner_account_id"
        } else {
            "g.customer_account_id"
        };
        let sql = format!(
            "{GRANT_SELECT} WHERE {column} = ? AND g.ended_at IS NULL ORDER BY g.granted_at, g.id"
        );
        let rows = query(sql)
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Grants past their expiry that have not been ended yet.
    pub async fn lapsed_grants(&self, now: DateTime<Utc>) -> StoreResult<Vec<GrantRecord>> {
        let sql = format!(
            "{GRANT_SELECT} WHERE g.ended_at IS NULL AND g.expires_at IS NOT NULL AND g.expires_at <= ?"
        );
        let rows = query(sql)
            .bind(SortableTime(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Ends a grant (`revoked` or `expired`) and the support tokens issued through it, in one
    /// transaction; `false` when it had ended already.
    pub async fn end_grant(&self, id: GrantId, reason: &str) -> StoreResult<bool> {
        let now = SortableTime(Utc::now());
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE access_grants SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        query("UPDATE auth_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a partner support token bound to a grant.
    pub async fn insert_grant_token(
        &self,
        token_hash: &str,
        user: UserId,
        grant: GrantId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO auth_tokens (token_hash, user_id, via, created_at, expires_at, grant_id)
             VALUES (?, ?, 'partner_support', ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(Utc::now())
        .bind(expires_at)
        .bind(grant.to_string())
        )
        .await
        .map(|_| ())
    }

    /// Moves a device between a partner and a customer, only while a grant between them is in
    /// force (checked in the same statement, so a revoke racing it wins cleanly): `Assign`
    /// takes one of the partner's own devices into the customer account, `Unassign` takes a
    /// device the partner assigned back. The user link and group are cleared on each move.
    pub async fn move_device(
        &self,
        device: DeviceId,
        partner: AccountId,
        customer: AccountId,
        direction: Direction,
    ) -> StoreResult<Assignment> {
        // (source account, target account, the owner the device has after the move)
        let (from, to, owner_after) = match direction {
            Direction::Assign => (partner, customer, Some(partner)),
            Direction::Unassign => (customer, partner, None),
        };
        // Assign: the partner's own device (no owner); unassign: one it assigned (owner = it),
        // the one condition that takes a parameter.
        let (owner_is, owner) = match direction {
            Direction::Assign => ("owner_account_id IS NULL", None),
            Direction::Unassign => ("owner_account_id = ?", Some(partner.to_string())),
        };
        let sql = format!(
            "UPDATE devices SET account_id = ?, owner_account_id = ?, user_id = NULL, group_id = NULL
             WHERE id = ? AND account_id = ? AND {owner_is} AND {GRANT_IN_FORCE}"
        );
        let mut update = query(sql)
            .bind(to.to_string())
            .bind(owner_after.map(|a| a.to_string()))
            .bind(device.to_string())
            .bind(from.to_string());
        if let Some(owner) = &owner {
            update = update.bind(owner.clone());
        }
        let done = self
            .write_one(
                update
                    .bind(partner.to_string())
                    .bind(customer.to_string())
                    .bind(SortableTime(Utc::now())),
            )
            .await?;
        if done.rows_affected() == 1 {
            return Ok(Assignment::Moved);
        }
        // Why not: a device that is there to move means the grant is missing.
        let sql = format!("SELECT id FROM devices WHERE id = ? AND account_id = ? AND {owner_is}");
        let mut check = query_scalar(sql)
            .bind(device.to_string())
            .bind(from.to_string());
        if let Some(owner) = owner {
            check = check.bind(owner);
        }
        let movable: Option<String> = check.fetch_optional(&self.pool).await?;
        Ok(if movable.is_some() {
            Assignment::NoGrant
        } else {
            Assignment::NoSuchDevice
        })
    }
}
