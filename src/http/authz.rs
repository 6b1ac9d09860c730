//! Authorization as types. A handler states what it needs in its signature, and the caller
//! is reachable only through the check:
//!
//! - `Principal`: any authenticated caller (the handler checks what its object needs itself);
//! - `InAccount<A, L>`: a route with `{aid}` in its path: the account is the caller's own (404
//!   otherwise, whatever the caller's rights) and the caller holds area `A` at level `L` (403);
//! - `Staff<R>`: platform staff holding the platform right `R`;
//! - `Authorized<A, L>`: a route naming an object: the handler loads the object and gets the
//!   caller from `in_account(object's account)`, which checks account (404) then right (403),
//!   or from `own()` for a route without an account (the caller's own account is meant).
//!
//! A handler written with `InAccount` or `Authorized` cannot reach the caller without passing
//! the check, so a forgotten check does not compile. Device-group limits of sessions live in
//! `sessions::visible_session`, which every session route goes through.

use std::{future::Future, marker::PhantomData, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::state::AppState;
use crate::{
    auth::extract::{Principal, bearer, principal_from_token},
    domain::{
        ids::AccountId,
        rights::{Area, PlatformRight, Write},
    },
    error::{AppError, Code},
};

/// An admin area, as a type.
pub trait AreaKind {
    const AREA: Area;
}

/// What is done in the area, as a type: read, or one of the object rights.
pub trait Level {
    const WRITE: Option<Write>;
}

/// The areas.
pub mod area {
    use super::{Area, AreaKind};

    macro_rules! areas {
        ($($name:ident),*) => {$(
            #[doc = concat!("The `", stringify!($name), "` area.")]
            pub struct $name;
            impl AreaKind for $name {
                const AREA: Area = Area::$name;
            }
        )*};
    }
    areas!(
        Users, Devices, Sessions, Policies, Access, Settings, Reports
    );
}

/// The levels.
pub mod level {
    use super::{Level, Write};

    /// Reading: the area alone.
    pub struct Read;
    impl Level for Read {
        const WRITE: Option<Write> = None;
    }
    /// The area and `objects.create`.
    pub struct Create;
    impl Level for Create {
        const WRITE: Option<Write> = Some(Write::Create);
    }
    /// The area and `objects.edit`.
    pub struct Edit;
    impl Level for Edit {
        const WRITE: Option<Write> = Some(Write::Edit);
    }
    /// The area and `objects.delete`.
    pub struct Delete;
    impl Level for Delete {
        const WRITE: Option<Write> = Some(Write::Delete);
    }
}

/// 403 unless `who` holds area `A` at level `L`.
fn check<A: AreaKind, L: Level>(who: &Principal) -> Result<(), AppError> {
    match L::WRITE {
        None => who.require_area(A::AREA),
        Some(write) => who.require_write(A::AREA, write),
    }
}

/// A caller that may act in area `A` at level `L`, once the object's account is known.
pub struct Authorized<A, L = level::Read> {
    who: Principal,
    _needs: PhantomData<fn() -> (A, L)>,
}

impl<A: AreaKind, L: Level> Authorized<A, L> {
    /// The caller, for an object of `account`: 404 (`what`) when that is another account's,
    /// then 403 when the caller lacks the right.
    pub fn in_account(&self, account: AccountId, what: Code) -> Result<&Principal, AppError> {
        self.in_account_visible(account, what, |_| true)
    }

    /// As `in_account`, for an object the caller may not see even in its own account (a device
    /// outside its groups): 404 for another account's, 403 without the area, 404 (`what`) when
    /// `visible` says no, then 403 without the level's object right.
    pub fn in_account_visible(
        &self,
        account: AccountId,
        what: Code,
        visible: impl FnOnce(&Principal) -> bool,
    ) -> Result<&Principal, AppError> {
        self.who.require_own_account(account, what)?;
        self.who.require_area(A::AREA)?;
        if !visible(&self.who) {
            return Err(AppError::new(what, what.meaning()));
        }
        check::<A, L>(&self.who)?;
        Ok(&self.who)
    }

    /// The caller, for a route that acts in the caller's own account: 403 without the right.
    pub fn own(&self) -> Result<&Principal, AppError> {
        check::<A, L>(&self.who)?;
        Ok(&self.who)
    }
}

/// A platform right, as a type.
pub trait PlatformKind {
    const RIGHT: PlatformRight;
}

/// The platform rights of the vendor's own staff.
pub mod platform {
    use super::{PlatformKind, PlatformRight};

    /// `platform_admin`: accounts and certification.
    pub struct Admin;
    impl PlatformKind for Admin {
        const RIGHT: PlatformRight = PlatformRight::PlatformAdmin;
    }
    /// `platform_support`: support logins and restoring deleted users.
    pub struct Support;
    impl PlatformKind for Support {
        const RIGHT: PlatformRight = PlatformRight::PlatformSupport;
    }
}

/// Platform staff holding `R` (everyone else: 403 `platform_only`).
pub struct Staff<R> {
    pub who: Principal,
    _needs: PhantomData<fn() -> R>,
}

impl<R: PlatformKind + 'static> FromRequest for Staff<R> {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let who = principal_of(req);
        Box::pin(async move {
            let who = who.await?;
            who.require_platform(R::RIGHT)?;
            Ok(Self {
                who,
                _needs: PhantomData,
            })
        })
    }
}

/// The caller and the account of the route's `{aid}`: the caller's own, with area `A` at
/// level `L`.
pub struct InAccount<A, L = level::Read> {
    pub who: Principal,
    pub account: AccountId,
    _needs: PhantomData<fn() -> (A, L)>,
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

/// Resolves the bearer credential of a request.
fn principal_of(req: &HttpRequest) -> Extracted<Principal> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = bearer(req).map(str::to_string);
    Box::pin(async move {
        let state =
            state.ok_or_else(|| AppError::internal(anyhow::anyhow!("app state missing")))?;
        let token = token.ok_or_else(AppError::unauthorized)?;
        principal_from_token(&state.store, &token).await
    })
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        principal_of(req)
    }
}

impl<A: AreaKind + 'static, L: Level + 'static> FromRequest for Authorized<A, L> {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let who = principal_of(req);
        Box::pin(async move {
            Ok(Self {
                who: who.await?,
                _needs: PhantomData,
            })
        })
    }
}

impl<A: AreaKind + 'static, L: Level + 'static> FromRequest for InAccount<A, L> {
    type Error = AppError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let aid = req.match_info().get("aid").map(str::parse::<uuid::Uuid>);
        let who = principal_of(req);
        Box::pin(async move {
            let account = match aid {
                Some(Ok(id)) => AccountId(id),
                Some(Err(e)) => {
                    return Err(AppError::new(Code::InvalidPath, format!("aid: {e}")));
                }
                None => {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "InAccount on a route without {{aid}}"
                    )));
                }
            };
            let who = who.await?;
            who.require_own_account(account, Code::AccountNotFound)?;
            check::<A, L>(&who)?;
            Ok(Self {
                who,
                account,
                _needs: PhantomData,
            })
        })
    }
}
