//! The request principal: who calls, with which rights, through which access, resolved from a
//! bearer credential by the store alone. The HTTP extractors built on it (`Principal` as a
//! handler argument, `Authorized`, `InAccount`) live in `crate::http::authz`.

use actix_web::HttpRequest;
use chrono::Utc;

use crate::{
    auth::{api_key, token},
    domain::{
        access::{grant_active, support_rights},
        ids::{AccountId, GrantId},
        rights::{Area, PlatformRight, Rights, Write},
    },
    error::{AppError, Code},
    store::{Store, UserRecord},
};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRecord,
    /// How the credential was obtained: `login` (own login) for now; API keys, partner and
    /// vendor support logins add their own.
    pub via: String,
    /// The hash of the bearer token (to end it on logout); empty for an API key.
    pub token_hash: String,
    /// What the request was authenticated with, as live connections remember it: a login
    /// token's hash, or `key:` and an API key's hash (see `principal_from_credential`).
    pub credential: String,
    /// The platform staff member behind a vendor-support token.
    pub on_behalf_of: Option<String>,
    /// Set when a partner user acts inside a customer account through a grant; `user` then
    /// carries the customer account and the support rights.
    pub partner: Option<PartnerAccess>,
}

/// A partner user acting in a customer account through a grant.
#[derive(Debug, Clone)]
pub struct PartnerAccess {
    pub grant: GrantId,
    /// The partner account the user belongs to.
    pub home_account: AccountId,
    pub home_account_name: String,
}

impl Principal {
    /// A user acting by its own credential obtained through `via`.
    pub fn own(user: UserRecord, via: &str) -> Self {
        Self {
            user,
            via: via.to_string(),
            token_hash: String::new(),
            credential: String::new(),
            on_behalf_of: None,
            partner: None,
        }
    }

    /// Whether the caller is the user itself by its own credential (not vendor support acting
    /// as the user, not a partner user through a grant).
    pub fn acts_as_itself(&self) -> bool {
        self.on_behalf_of.is_none() && self.partner.is_none() && self.via != "vendor_support"
    }

    pub fn account(&self) -> AccountId {
        self.user.account_id
    }

    pub fn rights(&self) -> &Rights {
        &self.user.rights
    }

    pub fn has_platform(&self, right: PlatformRight) -> bool {
        self.user.platform_rights.contains(&right)
    }

    /// 403 unless the caller holds `area`.
    pub fn require_area(&self, area: Area) -> Result<(), AppError> {
        if self.rights().can_read(area) {
            Ok(())
        } else {
            Err(AppError::new(
                Code::MissingRight,
                format!("this needs the {area:?} area").to_lowercase(),
            ))
        }
    }

    /// 403 unless the caller holds `area` and the object right for `write`.
    pub fn require_write(&self, area: Area, write: Write) -> Result<(), AppError> {
        if self.rights().can_write(area, write) {
            Ok(())
        } else {
            Err(AppError::new(
                Code::MissingRight,
                format!("this needs the {area:?} area with the {write:?} object right")
                    .to_lowercase(),
            ))
        }
    }

    /// 403 unless the caller is platform staff with `right`.
    pub fn require_platform(&self, right: PlatformRight) -> Result<(), AppError> {
        if self.has_platform(right) {
            Ok(())
        } else {
            Err(AppError::new(
                Code::PlatformOnly,
                "only platform staff may do this",
            ))
        }
    }

    /// 404 for objects of another account: their existence is never revealed.
    pub fn require_own_account(&self, account: AccountId, what: Code) -> Result<(), AppError> {
        if account == self.account() {
            Ok(())
        } else {
            Err(AppError::new(what, what.meaning()))
        }
    }

    /// Display name for audit entries: the user, the staff member acting as it, or the
    /// partner user with its partner account.
    pub fn actor_name(&self) -> String {
        match (&self.on_behalf_of, &self.partner) {
            (Some(staff), _) => format!("{staff} (as {})", self.user.username),
            (None, Some(p)) => format!("{} ({})", self.user.username, p.home_account_name),
            (None, None) => self.user.username.clone(),
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves a bearer token to its principal.
pub async fn principal_from_token(store: &Store, token: &str) -> Result<Principal, AppError> {
    let hash = token::hash(token);
    if token.starts_with(api_key::PREFIX) {
        let prefix = api_key::parse(token).ok_or_else(AppError::unauthorized)?;
        return match store.api_key_principal(prefix).await? {
            Some((stored, p)) if token::hashes_equal(&stored, &hash) => {
                store.touch_api_key(prefix).await?;
                let mut principal = Principal::own(p.user, &p.via);
                principal.credential = format!("{KEY_CREDENTIAL}{stored}");
                Ok(principal)
            }
            _ => Err(AppError::unauthorized()),
        };
    }
    principal_from_token_hash(store, hash).await
}

/// How an API key appears as a credential: this prefix and the key's stored hash.
pub const KEY_CREDENTIAL: &str = "key:";

/// Resolves a credential as `Principal::credential` names it (a login token's hash or an API
/// key's), as it stands now: how a WebSocket ticket acts as what it was issued from, and how a
/// live connection is re-checked.
pub async fn principal_from_credential(
    store: &Store,
    credential: &str,
) -> Result<Principal, AppError> {
    if let Some(key_hash) = credential.strip_prefix(KEY_CREDENTIAL) {
        let Some(p) = store.api_key_principal_by_hash(key_hash).await? else {
            return Err(AppError::unauthorized());
        };
        let mut principal = Principal::own(p.user, &p.via);
        principal.credential = credential.to_string();
        return Ok(principal);
    }
    principal_from_token_hash(store, credential.to_string()).await
}

/// Resolves the stored hash of a login token to its principal (also how a WebSocket ticket
/// acts as the token it was issued from).
pub async fn principal_from_token_hash(store: &Store, hash: String) -> Result<Principal, AppError> {
    let found = store.token_principal(&hash).await?;
    let now = Utc::now();
    let Some(p) = found.filter(|p| p.expires_at > now) else {
        return Err(AppError::unauthorized());
    };
    let mut user = p.user;
    let partner = match p.grant {
        // A partner support token works only while its grant is in force.
        Some(g) if grant_active(g.expires_at, g.ended_at, now) => {
            let home = PartnerAccess {
                grant: g.id,
                home_account: user.account_id,
                home_account_name: p.account_name,
            };
            user.account_id = g.customer;
            user.account_kind = "customer".into();
            user.rights = support_rights(&user.rights);
            // A grant the customer narrowed to device groups: only those devices and the
            // sessions on them.
            if let Some(groups) = g.scope_groups {
                user.rights.groups = crate::domain::rights::Groups::Some(groups);
            }
            user.rights.only_devices = g.scope_devices;
            user.platform_rights.clear();
            Some(home)
        }
        Some(_) => return Err(AppError::unauthorized()),
        None => None,
    };
    Ok(Principal {
        user,
        via: p.via,
        credential: hash.clone(),
        token_hash: hash,
        on_behalf_of: p.on_behalf_of,
        partner,
    })
}
