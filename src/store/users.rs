//! Users, login tokens and WebSocket tickets.

use super::db::{Row, query, query_as, query_scalar};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Store, StoreResult,
    accounts::{email_key, username_key},
    get_json, get_opt_uuid, get_uuid, to_json,
};
use crate::domain::{
    ids::{AccountId, GrantId, SessionId, UserId},
    rights::{PlatformRight, Rights},
};

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub account_id: AccountId,
    pub account_kind: String,
    pub kind: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub rights: Rights,
    pub platform_rights: Vec<PlatformRight>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub has_api_key: bool,
    /// `off`, `email` or `sms`.
    pub two_factor: String,
    /// `en` or `de`: the language of the user's mails.
    pub language: String,
    /// The name of the user's account (mails name it).
    pub account_name: String,
}

impl UserRecord {
    /// The name shown to other participants.
    pub fn display_name(&self) -> String {
        let full = format!("{} {}", self.first_name, self.last_name);
        let full = full.trim();
        if full.is_empty() {
            self.username.clone()
        } else {
            full.to_string()
        }
    }
}

/// user id, new address, expiry, use, whether the user is deleted.
type EmailChangeRow = (String, String, DateTime<Utc>, Option<DateTime<Utc>>, bool);

/// Why an email confirmation link did not change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChangeRefusal {
    Unknown,
    Used,
    Expired,
    /// Another user holds or held the address.
    Taken,
}

/// A login token's user and how the token was obtained.
#[derive(Debug, Clone)]
pub struct TokenPrincipal {
    pub user: UserRecord,
    pub via: String,
    /// The platform staff member acting through a vendor-support token.
    pub on_behalf_of: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The partner grant a partner support token acts through.
    pub grant: Option<TokenGrant>,
    /// The name of the user's own account (shown in audit entries of partner access).
    pub account_name: String,
}

/// The grant behind a partner support token, as it stands now.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub id: GrantId,
    pub customer: AccountId,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The device groups the grant is narrowed to (`None`: all).
    pub scope_groups: Option<Vec<Uuid>>,
    /// The single devices it is narrowed to (`None`: not narrowed so).
    pub scope_devices: Option<Vec<Uuid>>,
}

const USER_COLUMNS: &str = "u.id, u.account_id, a.kind AS account_kind, u.kind, u.username,
    u.first_name, u.last_name, u.email, u.phone, u.password_hash, u.rights, u.platform_rights,
    u.last_login_at, u.deleted_at, u.two_factor, u.language, a.name AS account_name,
    EXISTS (SELECT 1 FROM api_keys k WHERE k.user_id = u.id AND k.deleted_at IS NULL) AS has_api_key";

fn user_from_row(row: &Row) -> StoreResult<UserRecord> {
    let deleted_at: Option<DateTime<Utc>> = row.try_get("deleted_at")?;
    Ok(UserRecord {
        id: UserId(get_uuid(row, "id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        account_kind: row.try_get("account_kind")?,
        kind: row.try_get("kind")?,
        username: row.try_get("username")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        password_hash: row.try_get("password_hash")?,
        rights: get_json(row, "rights")?,
        platform_rights: get_json(row, "platform_rights")?,
        last_login_at: row.try_get("last_login_at")?,
        deleted: deleted_at.is_some(),
        has_api_key: row.try_get("has_api_key")?,
        two_factor: row.try_get("two_factor")?,
        language: row.try_get("language")?,
        account_name: row.try_get("account_name")?,
    })
}

impl Store {
    /// A user by login name (deleted ones included; the caller decides).
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.username_key = ?"
        );
        let row = query(sql)
            .bind(username_key(username))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user a login names: its username, or else its email (both compared as stored keys).
    pub async fn user_by_login(&self, login: &str) -> StoreResult<Option<UserRecord>> {
        if let Some(user) = self.user_by_username(login).await? {
            return Ok(Some(user));
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.email_key = ?"
        );
        let row = query(sql)
            .bind(email_key(login))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = ?"
        );
        let row = query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The account's deleted users, newest deletion first, with when they were deleted.
    pub async fn deleted_users_of(
        &self,
        account: AccountId,
    ) -> StoreResult<Vec<(UserRecord, DateTime<Utc>)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.account_id = ? AND u.deleted_at IS NOT NULL ORDER BY u.deleted_at DESC"
        );
        let rows = query(sql)
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((user_from_row(row)?, row.try_get("deleted_at")?)))
            .collect()
    }

    /// The account's users that are not deleted, by username.
    pub async fn users_of(&self, account: AccountId) -> StoreResult<Vec<UserRecord>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.account_id = ? AND u.deleted_at IS NULL ORDER BY u.username_key"
        );
        let rows = query(sql)
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn username_taken(&self, username: &str) -> StoreResult<bool> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM users WHERE username_key = ?")
            .bind(username_key(username))
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub async fn email_taken(&self, email: &str) -> StoreResult<bool> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM email_history WHERE email_key = ?")
            .bind(email_key(email))
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Changes a user's rights (`Some`) or soft-deletes it (`None`) only if `allowed`, judged
    /// on the account's live users as they are inside the same write transaction: two admins
    /// narrowing each other at the same moment cannot both pass the "last user manager" rule.
    /// `Ok(false)` when `allowed` refused or the user is gone.
    pub async fn change_user_guarded(
        &self,
        account: AccountId,
        user: UserId,
        change: Option<&Rights>,
        allowed: impl FnOnce(&[UserRecord]) -> bool,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN accounts a ON a.id = u.account_id
             WHERE u.account_id = ? AND u.deleted_at IS NULL"
        );
        let rows = query(sql)
            .bind(account.to_string())
            .fetch_all(&mut tx)
            .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if !allowed(&users) {
            return Ok(false);
        }
        let now = Utc::now();
        let id = user.to_string();
        let Some(rights) = change else {
            let done = query("UPDATE users SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&mut tx)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            query("UPDATE auth_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&mut tx)
                .await?;
            query("UPDATE api_keys SET deleted_at = ? WHERE user_id = ? AND deleted_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
            return Ok(true);
        };
        let done = query("UPDATE users SET rights = ? WHERE id = ? AND deleted_at IS NULL")
            .bind(to_json(rights)?)
            .bind(&id)
            .execute(&mut tx)
            .await?;
        // Nothing to do commits nothing (and records nothing on an audited handle).
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the live vendor-support tokens into `account` (every user of it), or of one user
    /// when `user` is set; answers their hashes (to close the connections opened with them).
    pub async fn revoke_vendor_tokens(
        &self,
        account: AccountId,
        user: Option<UserId>,
    ) -> StoreResult<Vec<String>> {
        query_scalar(
            "UPDATE auth_tokens SET revoked_at = ?
             WHERE via = 'vendor_support' AND revoked_at IS NULL
               AND user_id IN (SELECT id FROM users WHERE account_id = ? AND (? IS NULL OR id = ?))
             RETURNING token_hash",
        )
        .bind(Utc::now())
        .bind(account.to_string())
        .bind(user.map(|u| u.to_string()))
        .bind(user.map(|u| u.to_string()))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn touch_last_login(&self, user: UserId, at: DateTime<Utc>) -> StoreResult<()> {
        query("UPDATE users SET last_login_at = ? WHERE id = ?")
            .bind(at)
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Stores a login token under its hash.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        user: UserId,
        via: &str,
        on_behalf_of: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write_one(query(
            "INSERT INTO auth_tokens (token_hash, user_id, via, on_behalf_of, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(via)
        .bind(on_behalf_of)
        .bind(Utc::now())
        .bind(expires_at)
        )
        .await
        .map(|_| ())
    }

    /// Marks a token as made by a login that proved a second factor now.
    pub async fn mark_second_factor(&self, token_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.write_one(
            query("UPDATE auth_tokens SET second_factor_at = ? WHERE token_hash = ?")
                .bind(at)
                .bind(token_hash),
        )
        .await
        .map(|_| ())
    }

    /// When the login behind a token last proved a second factor (`None`: never).
    pub async fn second_factor_at(&self, token_hash: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<Option<DateTime<Utc>>> =
            query_scalar("SELECT second_factor_at FROM auth_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.flatten())
    }

    /// The user behind a token that is not revoked and whose user is not deleted. The caller
    /// checks `expires_at`.
    pub async fn token_principal(&self, token_hash: &str) -> StoreResult<Option<TokenPrincipal>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, t.via AS token_via, t.on_behalf_of, t.expires_at AS token_expires_at,
                a.name AS account_name, t.grant_id, g.customer_account_id AS grant_customer,
                g.expires_at AS grant_expires_at,
                g.ended_at AS grant_ended_at, g.scope_groups AS grant_scope_groups,
                g.scope_devices AS grant_scope_devices
             FROM auth_tokens t JOIN users u ON u.id = t.user_id JOIN accounts a ON a.id = u.account_id
             LEFT JOIN access_grants g ON g.id = t.grant_id
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.deleted_at IS NULL"
        );
        let row = query(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenPrincipal {
                user: user_from_row(&row)?,
                via: row.try_get("token_via")?,
                on_behalf_of: row.try_get("on_behalf_of")?,
                expires_at: row.try_get("token_expires_at")?,
                account_name: row.try_get("account_name")?,
                grant: match get_opt_uuid(&row, "grant_id")? {
                    Some(id) => Some(TokenGrant {
                        id: GrantId(id),
                        customer: AccountId(get_uuid(&row, "grant_customer")?),
                        expires_at: row.try_get("grant_expires_at")?,
                        ended_at: row.try_get("grant_ended_at")?,
                        scope_groups: row
                            .try_get::<Option<String>, _>("grant_scope_groups")?
                            .map(|text| serde_json::from_str(&text))
                            .transpose()
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                        scope_devices: row
                            .try_get::<Option<String>, _>("grant_scope_devices")?
                            .map(|text| serde_json::from_str(&text))
                            .transpose()
                            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    }),
                    None => None,
                },
            })
        })
        .transpose()
    }

    pub async fn revoke_token(&self, token_hash: &str) -> StoreResult<bool> {
        let done = self.write_one(query(
            "UPDATE auth_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(Utc::now())
        .bind(token_hash)
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a single-use WebSocket ticket under its hash.
    pub async fn insert_ws_ticket(
        &self,
        ticket_hash: &str,
        user: UserId,
        session: SessionId,
        via: &str,
        token_hash: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO ws_tickets (ticket_hash, user_id, session_id, via, token_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ticket_hash)
        .bind(user.to_string())
        .bind(session.to_string())
        .bind(via)
        .bind(token_hash)
        .bind(Utc::now())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Uses a ticket up atomically: of two concurrent uses exactly one gets it. The caller
    /// checks the expiry.
    pub async fn consume_ws_ticket(&self, ticket_hash: &str) -> StoreResult<Option<UsedTicket>> {
        let row = query(
            "UPDATE ws_tickets SET used_at = ? WHERE ticket_hash = ? AND used_at IS NULL
             RETURNING user_id, session_id, via, token_hash, expires_at",
        )
        .bind(Utc::now())
        .bind(ticket_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UsedTicket {
                user: UserId(get_uuid(&row, "user_id")?),
                session: SessionId(get_uuid(&row, "session_id")?),
                via: row.try_get("via")?,
                token_hash: row.try_get("token_hash")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }
}

/// A WebSocket ticket just used up.
#[derive(Debug, Clone)]
pub struct UsedTicket {
    pub user: UserId,
    pub session: SessionId,
    pub via: String,
    /// The login token it was issued from (none for an API key).
    pub token_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Changes a user's profile fields (the caller validated them). The email changes only
    /// through [`Store::confirm_email_change`].
    pub async fn update_user_profile(
        &self,
        user: UserId,
        first_name: &str,
        last_name: &str,
        phone: Option<&str>,
        language: &str,
    ) -> StoreResult<()> {
        self.write_one(query(
            "UPDATE users SET first_name = ?, last_name = ?, phone = ?, language = ? WHERE id = ?",
        )
        .bind(first_name)
        .bind(last_name)
        .bind(phone)
        .bind(language)
        .bind(user.to_string())
        )
        .await
        .map(|_| ())
    }

    /// Records a new address waiting for its confirmation link; earlier waiting ones of the
    /// user end (one change at a time).
    pub async fn insert_email_change(
        &self,
        token_hash: &str,
        user: UserId,
        new_email: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        query("UPDATE email_changes SET used_at = ? WHERE user_id = ? AND used_at IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        query(
            "INSERT INTO email_changes (token_hash, user_id, new_email, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(new_email)
        .bind(now)
        .bind(expires_at)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    /// The address a user waits to confirm, if any.
    pub async fn pending_email(&self, user: UserId) -> StoreResult<Option<String>> {
        query_scalar(
            "SELECT new_email FROM email_changes
             WHERE user_id = ? AND used_at IS NULL AND expires_at > ?
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(user.to_string())
        .bind(Utc::now())
        .fetch_optional(&self.pool)
        .await
    }

    /// Opens a confirmation link: in one transaction the link is used up (once), the address
    /// is claimed in the history of addresses (once ever, by the primary key; the user's own
    /// earlier address may come back) and becomes the user's.
    pub async fn confirm_email_change(
        &self,
        token_hash: &str,
    ) -> StoreResult<Result<(UserId, String), EmailChangeRefusal>> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        let row: Option<EmailChangeRow> = query_as(
            "SELECT c.user_id, c.new_email, c.expires_at, c.used_at, u.deleted_at IS NOT NULL
                 FROM email_changes c JOIN users u ON u.id = c.user_id WHERE c.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut tx)
        .await?;
        let Some((user, email, expires_at, used_at, deleted)) = row else {
            return Ok(Err(EmailChangeRefusal::Unknown));
        };
        if used_at.is_some() || deleted {
            return Ok(Err(EmailChangeRefusal::Used));
        }
        if expires_at <= now {
            return Ok(Err(EmailChangeRefusal::Expired));
        }
        let used =
            query("UPDATE email_changes SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
                .bind(now)
                .bind(token_hash)
                .execute(&mut tx)
                .await?;
        if used.rows_affected() != 1 {
            return Ok(Err(EmailChangeRefusal::Used));
        }
        let key = email_key(&email);
        let claimed = query(
            "INSERT INTO email_history (email_key, user_id, since) VALUES (?, ?, ?)
             ON CONFLICT (email_key) DO UPDATE SET since = excluded.since
             WHERE email_history.user_id = excluded.user_id",
        )
        .bind(&key)
        .bind(&user)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(Err(EmailChangeRefusal::Taken));
        }
        let updated = query("UPDATE users SET email = ?, email_key = ? WHERE id = ?")
            .bind(&email)
            .bind(&key)
            .bind(&user)
            .execute(&mut tx)
            .await;
        match updated {
            Err(err) if super::is_unique_violation(&err) => {
                return Ok(Err(EmailChangeRefusal::Taken));
            }
            other => other?,
        };
        // The user's own record of it, in the same transaction.
        let (account, username, first, last): (String, String, String, String) =
            query_as("SELECT account_id, username, first_name, last_name FROM users WHERE id = ?")
                .bind(&user)
                .fetch_one(&mut tx)
                .await?;
        let id = Uuid::parse_str(&user).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let account = Uuid::parse_str(&account).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        super::audit::append(
            &mut tx.tx,
            &super::AuditEntry {
                account_id: AccountId(account),
                actor_user_id: Some(UserId(id)),
                actor_name: match format!("{first} {last}").trim() {
                    "" => username.clone(),
                    full => full.to_string(),
                },
                via: "email_link".into(),
                action: "user.email_confirmed",
                target: Some(user.clone()),
                details: serde_json::json!({"username": username, "email": email}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok((UserId(id), email)))
    }

    /// Soft delete: the row (and its username and email) stays; logins, tokens and keys stop.
    /// Marks the user deleted and ends, for good, every login token and API key it holds: a
    /// later restore brings back the user, never credentials issued before the deletion.
    pub async fn restore_user(&self, user: UserId) -> StoreResult<bool> {
        let done = self
            .write_one(
                query("UPDATE users SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL")
                    .bind(user.to_string()),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Stores a new set-password link for `user`, ending its earlier unused ones (they answer
    /// `token_used`), unless `cap` links of the same `reason` were made for it since `since`
    /// (decided in the same transaction): `false` then, and nothing changes.
    pub async fn insert_password_token(
        &self,
        token_hash: &str,
        user: UserId,
        expires_at: DateTime<Utc>,
        reason: &str,
        cap: Option<(u32, DateTime<Utc>)>,
    ) -> StoreResult<bool> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        if let Some((cap, since)) = cap {
            let made: i64 = query_scalar(
                "SELECT COUNT(*) FROM password_tokens
                 WHERE user_id = ? AND reason = ? AND created_at > ?",
            )
            .bind(user.to_string())
            .bind(reason)
            .bind(since)
            .fetch_one(&mut tx)
            .await?;
            if made >= i64::from(cap) {
                return Ok(false);
            }
        }
        query("UPDATE password_tokens SET used_at = ? WHERE user_id = ? AND used_at IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        query("INSERT INTO password_tokens (token_hash, user_id, created_at, expires_at, reason) VALUES (?, ?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user.to_string())
            .bind(now)
            .bind(expires_at)
            .bind(reason)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a user's password and ends its login tokens except `keep` (the caller's own), in
    /// one transaction; answers the hashes of the tokens it ended (their sockets close).
    pub async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        let ended = revoke_tokens_in(&mut tx, user, keep).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// A set-password token: its user, expiry and whether it was used.
    pub async fn password_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(UserId, DateTime<Utc>, bool)>> {
        let row =
            query("SELECT user_id, expires_at, used_at FROM password_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            let used: Option<DateTime<Utc>> = row.try_get("used_at")?;
            Ok((
                UserId(get_uuid(&row, "user_id")?),
                row.try_get("expires_at")?,
                used.is_some(),
            ))
        })
        .transpose()
    }

    /// Uses the token, sets the password and ends the user's login tokens in one transaction;
    /// `None` when the token was used already, else the hashes of the tokens it ended.
    pub async fn set_password_with_token(
        &self,
        token_hash: &str,
        user: UserId,
        password_hash: &str,
    ) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self.write_tx().await?;
        let done = query(
            "UPDATE password_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        )
        .bind(Utc::now())
        .bind(token_hash)
        .execute(&mut tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user.to_string())
            .execute(&mut tx)
            .await?;
        // Whoever held a session with the old password is out.
        let ended = revoke_tokens_in(&mut tx, user, None).await?;
        tx.commit().await?;
        Ok(Some(ended))
    }
}

/// Ends a user's live login tokens (all but `keep`); answers their hashes.
async fn revoke_tokens_in(
    tx: &mut super::WriteTx,
    user: UserId,
    keep: Option<&str>,
) -> StoreResult<Vec<String>> {
    query_scalar(
        "UPDATE auth_tokens SET revoked_at = ?
         WHERE user_id = ? AND revoked_at IS NULL AND token_hash <> ?
         RETURNING token_hash",
    )
    .bind(Utc::now())
    .bind(user.to_string())
    .bind(keep.unwrap_or(""))
    .fetch_all(&mut *tx)
    .await
}
