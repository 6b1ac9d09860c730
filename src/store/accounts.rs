//! Accounts and the users created with them.

use super::db::{query, query_scalar};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Store, StoreResult, Taken, UserWriteError, get_opt_uuid, get_uuid, is_unique_violation, to_json,
};
use crate::domain::{
    ids::{AccountId, UserId},
    rights::{PlatformRight, Rights},
};

#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub kind: String,
    pub certified: bool,
    pub support_access: bool,
    pub created_at: DateTime<Utc>,
    /// The security policy new invitations start with (`None`: the first one by name).
    pub default_policy_id: Option<Uuid>,
    /// Nine digits a customer hands to a partner (`None` until first given out).
    pub customer_number: Option<String>,
    /// Whether guests wait for the customer: `off`, `technician`, `always`.
    pub guest_admission: String,
    /// Whether the account's sessions are recorded.
    pub record_sessions: bool,
}

/// A user to insert (its normalised keys are computed by the store).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub kind: &'static str,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub rights: Rights,
    pub platform_rights: Vec<PlatformRight>,
    /// `en` or `de`: the language of the user's mails.
    pub language: &'static str,
}

impl NewUser {
    /// The built-in service user of an account: how the vendor's support staff enter it. It has
    /// no password (it cannot log in) and no email.
    pub fn service(account: AccountId) -> Self {
        NewUser {
            id: UserId::new(),
            kind: "service",
            username: format!("service-{account}"),
            first_name: "Vendor".into(),
            last_name: "Support".into(),
            email: None,
            phone: None,
            password_hash: None,
            rights: Rights::account_admin(),
            platform_rights: Vec::new(),
            language: "en",
        }
    }
}

/// An account with its first users, written in one transaction.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: AccountId,
    pub name: String,
    pub kind: &'static str,
    pub certified: bool,
    pub users: Vec<NewUser>,
}

/// The form under which a username is unique: trimmed, NFKC-normalised and lower-cased, so
/// that look-alike spellings (composed and decomposed umlauts, full-width letters) collide.
pub fn username_key(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.trim().nfkc().collect::<String>().to_lowercase()
}

/// The form under which an email is unique: trimmed and lower-cased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    /// Inserts an account and its users; a taken username or email fails the whole write and
    /// answers which rule refused it.
    pub async fn create_account(&self, account: &NewAccount) -> Result<(), UserWriteError> {
        let users: Vec<&NewUser> = account.users.iter().collect();
        let written = self.create_account_tx(account).await;
        self.classify(written, &users).await
    }

    async fn create_account_tx(&self, account: &NewAccount) -> StoreResult<()> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        query(
            "INSERT INTO accounts (id, name, kind, certified, support_access, created_at)
             VALUES (?, ?, ?, ?, TRUE, ?)",
        )
        .bind(account.id.to_string())
        .bind(&account.name)
        .bind(account.kind)
        .bind(account.certified)
        .bind(now)
        .execute(&mut tx)
        .await?;
        for user in &account.users {
            insert_user(&mut tx, account.id, user, now).await?;
        }
        tx.commit().await
    }

    /// Inserts one user into an existing account.
    pub async fn create_user(
        &self,
        account: AccountId,
        user: &NewUser,
    ) -> Result<(), UserWriteError> {
        let written = async {
            let mut tx = self.write_tx().await?;
            insert_user(&mut tx, account, user, Utc::now()).await?;
            tx.commit().await
        }
        .await;
        self.classify(written, &[user]).await
    }

    /// Names the rule behind a unique violation by asking the database which key is taken
    /// (not by reading the error's text, which differs between backends).
    async fn classify(
        &self,
        written: StoreResult<()>,
        users: &[&NewUser],
    ) -> Result<(), UserWriteError> {
        match written {
            Err(err) if is_unique_violation(&err) => {
                for user in users {
                    if self.username_taken(&user.username).await? {
                        return Err(UserWriteError::Taken(Taken::Username));
                    }
                }
                Err(UserWriteError::Taken(Taken::Email))
            }
            other => other.map_err(UserWriteError::Db),
        }
    }

    /// Every account, by name, optionally of one `kind` and with `q` in its name (any case).
    pub async fn list_accounts(
        &self,
        kind: Option<&str>,
        q: Option<&str>,
    ) -> StoreResult<Vec<AccountRecord>> {
        let pattern = q.map(|q| {
            let escaped = q
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let rows = query(
            "SELECT * FROM accounts
             WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR lower(name) LIKE ? ESCAPE '\\')
             ORDER BY lower(name), id",
        )
        .bind(kind)
        .bind(kind)
        .bind(&pattern)
        .bind(&pattern)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountRecord {
                    id: AccountId(get_uuid(row, "id")?),
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    certified: row.try_get("certified")?,
                    support_access: row.try_get("support_access")?,
                    created_at: row.try_get("created_at")?,
                    default_policy_id: get_opt_uuid(row, "default_policy_id")?,
                    customer_number: row.try_get("customer_number")?,
                    guest_admission: row.try_get("guest_admission")?,
                    record_sessions: row.try_get("record_sessions")?,
                })
            })
            .collect()
    }

    pub async fn account(&self, id: AccountId) -> StoreResult<Option<AccountRecord>> {
        let row = query("SELECT * FROM accounts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(AccountRecord {
                id: AccountId(get_uuid(&row, "id")?),
                name: row.try_get("name")?,
                kind: row.try_get("kind")?,
                certified: row.try_get("certified")?,
                support_access: row.try_get("support_access")?,
                created_at: row.try_get("created_at")?,
                default_policy_id: get_opt_uuid(&row, "default_policy_id")?,
                customer_number: row.try_get("customer_number")?,
                guest_admission: row.try_get("guest_admission")?,
                record_sessions: row.try_get("record_sessions")?,
            })
        })
        .transpose()
    }

    /// The customer number of `account`, given out now if it has none yet: a random nine-digit
    /// number, kept by the first writer (the statement only fills an empty one) and unique by
    /// index (a collision draws again).
    pub async fn ensure_customer_number(&self, account: AccountId) -> StoreResult<String> {
        for _ in 0..8 {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes)
                .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
            let number = (u32::from_le_bytes(bytes) % 900_000_000 + 100_000_000).to_string();
            let done = self.write_one(query(
                "UPDATE accounts SET customer_number = ? WHERE id = ? AND customer_number IS NULL",
            )
            .bind(&number)
            .bind(account.to_string())
            )
            .await;
            match done {
                Ok(_) => {}
                Err(err) if super::is_unique_violation(&err) => continue,
                Err(err) => return Err(err),
            }
            let current: Option<Option<String>> =
                query_scalar("SELECT customer_number FROM accounts WHERE id = ?")
                    .bind(account.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(Some(n)) = current {
                return Ok(n);
            }
        }
        Err(sqlx::Error::Protocol(
            "no free customer number after 8 draws".into(),
        ))
    }

    /// The customer account with this number.
    pub async fn account_by_customer_number(&self, number: &str) -> StoreResult<Option<AccountId>> {
        let id: Option<String> =
            query_scalar("SELECT id FROM accounts WHERE customer_number = ? AND kind = 'customer'")
                .bind(number)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.and_then(|s| Uuid::parse_str(&s).ok()).map(AccountId))
    }

    /// Whether the platform account exists (i.e. the installation is bootstrapped).
    pub async fn platform_account_exists(&self) -> StoreResult<bool> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM accounts WHERE kind = 'platform'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The id of the service user of an account.
    pub async fn service_user_of(&self, account: AccountId) -> StoreResult<Option<UserId>> {
        let id: Option<String> =
            query_scalar("SELECT id FROM users WHERE account_id = ? AND kind = 'service'")
                .bind(account.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.and_then(|s| Uuid::parse_str(&s).ok()).map(UserId))
    }
}

async fn insert_user(
    tx: &mut super::WriteTx,
    account: AccountId,
    user: &NewUser,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "INSERT INTO users (id, account_id, kind, username, username_key, email, email_key,
            first_name, last_name, phone, password_hash, rights, platform_rights, language, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user.id.to_string())
    .bind(account.to_string())
    .bind(user.kind)
    .bind(&user.username)
    .bind(username_key(&user.username))
    .bind(&user.email)
    .bind(user.email.as_deref().map(email_key))
    .bind(&user.first_name)
    .bind(&user.last_name)
    .bind(&user.phone)
    .bind(&user.password_hash)
    .bind(to_json(&user.rights)?)
    .bind(to_json(&user.platform_rights)?)
    .bind(user.language)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if let Some(email) = &user.email {
        // Usable once ever: the history's primary key refuses an address any user ever held.
        query("INSERT INTO email_history (email_key, user_id, since) VALUES (?, ?, ?)")
            .bind(email_key(email))
            .bind(user.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Store {
    pub async fn update_account(&self, a: &AccountRecord) -> StoreResult<()> {
        self.write_one(query(
            "UPDATE accounts SET name = ?, certified = ?, support_access = ?, default_policy_id = ?,
                guest_admission = ?, record_sessions = ?
             WHERE id = ?",
        )
        .bind(&a.name)
        .bind(a.certified)
        .bind(a.support_access)
        .bind(a.default_policy_id.map(|p| p.to_string()))
        .bind(&a.guest_admission)
        .bind(a.record_sessions)
        .bind(a.id.to_string())
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_collide_after_normalisation() {
        assert_eq!(username_key("Jürgen"), username_key("ju\u{308}rgen"));
        assert_eq!(username_key("ＡＤＡ"), username_key("ada"));
    }
}
