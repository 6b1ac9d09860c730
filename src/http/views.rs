//! JSON shapes shared by several handlers.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::store::{PolicyRecord, UserRecord};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub kind: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub has_api_key: bool,
    /// The second factor at sign-in: `off`, `email`, `sms` or `totp`.
    pub two_factor: String,
    /// `en` or `de`: the language of the user's mails.
    pub language: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.0,
            account_id: u.account_id.0,
            username: u.username.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
            phone: u.phone.clone(),
            kind: u.kind.clone(),
            language: u.language.clone(),
            last_login_at: u.last_login_at,
            has_api_key: u.has_api_key,
            two_factor: u.two_factor.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub description: String,
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<crate::domain::permissions::Permission>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&PolicyRecord> for PolicyView {
    fn from(p: &PolicyRecord) -> Self {
        Self {
            id: p.id.0,
            account_id: p.account_id.0,
            name: p.name.clone(),
            description: p.description.clone(),
            permissions: p.permissions.to_vec(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
