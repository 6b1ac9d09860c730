//! `support-broker admin`: the operator's way in on the machine itself, working on the
//! database directly (the broker may run meanwhile): a set-password link for any user, a new
//! account, the list of accounts, and lifting a user's lock of the code step. Every change is
//! audited as done by `operator` through `admin_cli`.

use chrono::{Duration, Utc};

use crate::{
    auth::token,
    config::Settings,
    domain::{
        ids::{AccountId, UserId},
        rights::Rights,
        validate,
    },
    store::{AuditEntry, NewAccount, NewUser, Store, UserRecord, UserWriteError},
};

/// What the operator asks for.
#[derive(Debug, Clone)]
pub enum OperatorCommand {
    /// Print a set-password link for the user (username or email).
    ResetPassword { user: String },
    /// Lift the user's lock of the code step (too many wrong codes).
    Unlock { user: String },
    /// Print every account.
    ListAccounts,
    /// Create an account with its first admin; prints the admin's set-password link.
    CreateAccount {
        name: String,
        kind: String,
        admin_username: String,
        admin_email: String,
        first_name: String,
        last_name: String,
    },
}

/// Runs one command against the database of `settings`; answers what to print.
pub async fn run(settings: &Settings, command: OperatorCommand) -> anyhow::Result<String> {
    let store = Store::connect(settings.database.url.expose(), &settings.storage.data_dir).await?;
    let out = match command {
        OperatorCommand::ResetPassword { user } => {
            let user = find_user(&store, &user).await?;
            let audited = store.audited(vec![entry(
                user.account_id,
                user.id,
                &user.username,
                "user.password_link_sent",
            )]);
            let link = new_link(&audited, settings, &user).await?;
            format!(
                "Set-password link for {} (valid {} hours, usable once; earlier links end):\n{link}",
                user.username,
                settings.auth.set_password_ttl_secs / 3600
            )
        }
        OperatorCommand::Unlock { user } => {
            let user = find_user(&store, &user).await?;
            let lifted = store
                .audited(vec![entry(
                    user.account_id,
                    user.id,
                    &user.username,
                    "user.code_step_unlocked",
                )])
                .unlock_code_step(user.id)
                .await?;
            if lifted {
                format!("{}: the code step is unlocked", user.username)
            } else {
                format!("{}: the code step was not locked", user.username)
            }
        }
        OperatorCommand::ListAccounts => {
            let accounts = store.list_accounts(None, None).await?;
            let mut out = format!(
                "{:<36}  {:<8}  {:<9}  {:<14}  name\n",
                "id", "kind", "certified", "support_access"
            );
            for a in accounts {
                out.push_str(&format!(
                    "{:<36}  {:<8}  {:<9}  {:<14}  {}\n",
                    a.id, a.kind, a.certified, a.support_access, a.name
                ));
            }
            out.trim_end().to_string()
        }
        OperatorCommand::CreateAccount {
            name,
            kind,
            admin_username,
            admin_email,
            first_name,
            last_name,
        } => {
            let kind: &'static str = match kind.as_str() {
                "customer" => "customer",
                "partner" => "partner",
                _ => anyhow::bail!("--kind is customer or partner"),
            };
            let name = validate::bounded_text(&name, 200)
                .ok_or_else(|| anyhow::anyhow!("the name takes 1 to 200 characters"))?;
            let username = validate::parse_username(&admin_username).ok_or_else(|| {
                anyhow::anyhow!("the username takes 1 to 64 letters, digits, '.', '_', '-', '@'")
            })?;
            let email = validate::parse_email(&admin_email)
                .ok_or_else(|| anyhow::anyhow!("the email is not a valid address"))?;
            let id = AccountId::new();
            let admin_id = UserId::new();
            let created = entry(id, admin_id, &username, "account.created");
            let admin = NewUser {
                id: admin_id,
                kind: "user",
                username,
                first_name: validate::bounded_text(&first_name, 100)
                    .unwrap_or_else(|| "Admin".into()),
                last_name: validate::bounded_text(&last_name, 100).unwrap_or_else(|| name.clone()),
                email: Some(email),
                phone: None,
                password_hash: None,
                rights: Rights::account_admin(),
                platform_rights: Vec::new(),
                language: "en",
            };
            let account = NewAccount {
                id,
                name: name.clone(),
                kind,
                certified: false,
                users: vec![admin, NewUser::service(id)],
            };
            match store.audited(vec![created]).create_account(&account).await {
                Ok(()) => {}
                Err(UserWriteError::Taken(taken)) => {
                    let what = match taken {
                        crate::store::Taken::Username => "username",
                        crate::store::Taken::Email => "email",
                    };
                    anyhow::bail!(
                        "the admin's {what} is taken (usernames and emails are unique forever)"
                    )
                }
                Err(UserWriteError::Db(err)) => return Err(err.into()),
            }
            let user = store
                .user(admin_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the new admin vanished"))?;
            let link = new_link(&store, settings, &user).await?;
            format!(
                "Account {name} ({kind}) created: {id}\nIts admin {} sets a password with this link:\n{link}",
                user.username
            )
        }
    };
    store.close().await;
    Ok(out)
}

async fn find_user(store: &Store, login: &str) -> anyhow::Result<UserRecord> {
    let user = store
        .user_by_login(login)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {login:?}"))?;
    if user.deleted {
        anyhow::bail!(
            "{} is deleted; restore it first (POST /users/{{id}}/restore)",
            user.username
        );
    }
    if user.kind != "user" {
        anyhow::bail!("{} is a service user and does not log in", user.username);
    }
    Ok(user)
}

/// A fresh set-password link (earlier unused ones end).
async fn new_link(store: &Store, settings: &Settings, user: &UserRecord) -> anyhow::Result<String> {
    let secret = token::generate("sbp_")?;
    let expires_at = Utc::now() + Duration::seconds(settings.auth.set_password_ttl_secs as i64);
    store
        .insert_password_token(&token::hash(&secret), user.id, expires_at, "operator", None)
        .await?;
    let base = if settings.http.public_url.trim().is_empty() {
        format!("http://{}", settings.http.bind)
    } else {
        settings
            .http
            .public_url
            .trim()
            .trim_end_matches('/')
            .to_string()
    };
    Ok(format!("{base}/set-password?token={secret}"))
}

/// An entry of the operator's, written with the change it records.
fn entry(account: AccountId, user: UserId, username: &str, action: &'static str) -> AuditEntry {
    AuditEntry {
        account_id: account,
        actor_user_id: None,
        actor_name: "operator".into(),
        via: "admin_cli".into(),
        action,
        target: Some(user.to_string()),
        details: serde_json::json!({"username": username}),
    }
}
