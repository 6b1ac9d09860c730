//! A user's rights inside its account (admin areas, object rights, device groups) and the
//! platform rights of the vendor's own staff.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An admin area of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Users,
    Devices,
    Sessions,
    Policies,
    Access,
    Settings,
    Reports,
}

impl Area {
    pub const ALL: [Area; 7] = [
        Area::Users,
        Area::Devices,
        Area::Sessions,
        Area::Policies,
        Area::Access,
        Area::Settings,
        Area::Reports,
    ];
}

/// What a user may do to objects in the areas it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRights {
    pub create: bool,
    pub edit: bool,
    pub delete: bool,
}

/// One kind of write on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Create,
    Edit,
    Delete,
}

/// Which device groups a user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Groups {
    All(AllGroups),
    Some(Vec<Uuid>),
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllGroups {
    All,
}

impl Default for Groups {
    fn default() -> Self {
        Groups::Some(Vec::new())
    }
}

/// The rights of one user, in the shape of `PUT /users/{id}/rights`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    pub areas: BTreeSet<Area>,
    pub objects: ObjectRights,
    #[serde(default)]
    pub groups: Groups,
    #[serde(default)]
    pub edit_group_settings: bool,
    #[serde(default)]
    pub support_access: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Set only for a partner's support login whose grant the customer narrowed to single
    /// devices: those alone (never part of `PUT /users/{id}/rights`).
    #[serde(skip)]
    pub only_devices: Option<Vec<uuid::Uuid>>,
}

impl Rights {
    /// Everything an account's first admin holds.
    pub fn account_admin() -> Self {
        Rights {
            areas: Area::ALL.into_iter().collect(),
            objects: ObjectRights {
                create: true,
                edit: true,
                delete: true,
            },
            groups: Groups::All(AllGroups::All),
            edit_group_settings: true,
            support_access: true,
            roles: Vec::new(),
            only_devices: None,
        }
    }

    /// No area at all (a new user until an admin grants rights).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn has_area(&self, area: Area) -> bool {
        self.areas.contains(&area)
    }

    /// Reading in an area needs the area.
    pub fn can_read(&self, area: Area) -> bool {
        self.has_area(area)
    }

    /// Listing the security policies: their admins, and technicians, who pick one when they
    /// invite a guest. Changing them still needs the `policies` area.
    pub fn can_list_policies(&self) -> bool {
        self.can_read(Area::Policies) || self.can_read(Area::Sessions)
    }

    /// Writing in an area needs the area and the matching object right.
    pub fn can_write(&self, area: Area, write: Write) -> bool {
        self.has_area(area)
            && match write {
                Write::Create => self.objects.create,
                Write::Edit => self.objects.edit,
                Write::Delete => self.objects.delete,
            }
    }

    /// Whether these rights show the device group `group`.
    pub fn sees_group(&self, group: uuid::Uuid) -> bool {
        match &self.groups {
            Groups::All(_) => true,
            Groups::Some(ids) => ids.contains(&group),
        }
    }

    /// Whether these rights show a device in `group` (a device in no group only with `all`).
    /// Whether these rights reach the device `id` in `group`: its group, and for a partner
    /// login narrowed to single devices, the device itself.
    pub fn sees(&self, id: uuid::Uuid, group: Option<uuid::Uuid>) -> bool {
        self.only_devices.as_ref().is_none_or(|d| d.contains(&id)) && self.sees_device(group)
    }

    pub fn sees_device(&self, group: Option<uuid::Uuid>) -> bool {
        match group {
            Some(g) => self.sees_group(g),
            None => matches!(self.groups, Groups::All(_)),
        }
    }

    /// The self-service portal access these rights' roles give (full wins over read).
    pub fn self_service(&self) -> Option<SelfService> {
        if self.roles.iter().any(|r| r == SELF_SERVICE_FULL) {
            Some(SelfService::Full)
        } else if self.roles.iter().any(|r| r == SELF_SERVICE_READ) {
            Some(SelfService::Read)
        } else {
            None
        }
    }

    /// Whether these rights can manage users (change rights needs `users` + `objects.edit`).
    pub fn manages_users(&self) -> bool {
        self.can_write(Area::Users, Write::Edit)
    }
}

/// The built-in role that lets a user see its own devices and act on them.
pub const SELF_SERVICE_FULL: &str = "self-service-full";
/// The built-in role that lets a user see its own devices.
pub const SELF_SERVICE_READ: &str = "self-service-read";

/// What the self-service portal allows a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfService {
    Full,
    Read,
}

/// A right of the vendor's own staff, valid across all accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformRight {
    PlatformAdmin,
    PlatformSupport,
}

impl Rights {
    /// Whether `self` holds a power that `holder` lacks: an area, an object right, a device
    /// group (or all groups) or `edit_group_settings`. Roles and `support_access` are not
    /// powers over the account and stay outside this comparison.
    pub fn exceeds(&self, holder: &Rights) -> bool {
        let objects = (self.objects.create && !holder.objects.create)
            || (self.objects.edit && !holder.objects.edit)
            || (self.objects.delete && !holder.objects.delete);
        let groups = match (&holder.groups, &self.groups) {
            (Groups::All(_), _) => false,
            (Groups::Some(_), Groups::All(_)) => true,
            (Groups::Some(held), Groups::Some(wanted)) => wanted.iter().any(|g| !held.contains(g)),
        };
        !self.areas.is_subset(&holder.areas)
            || objects
            || groups
            || (self.edit_group_settings && !holder.edit_group_settings)
    }
}

/// One live human user of an account, as the "keep it manageable" rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    pub id: uuid::Uuid,
    pub rights: &'a Rights,
    pub platform_admin: bool,
}

/// Whether a change (new rights for `target`, or its deletion with `None`) would leave the
/// account without a user able to manage users, or (on the platform account) without a holder
/// of `platform_admin`: nobody could then restore or re-grant anyone.
pub fn leaves_account_unmanaged(
    users: &[Manager<'_>],
    target: uuid::Uuid,
    change: Option<&Rights>,
) -> bool {
    let managers = users.iter().map(|u| (u.id, u.rights));
    if leaves_no_user_manager(managers, target, change) {
        return true;
    }
    let admins_before = users.iter().filter(|u| u.platform_admin).count();
    let admins_after = users
        .iter()
        .filter(|u| u.platform_admin && (u.id != target || change.is_some()))
        .count();
    admins_before > 0 && admins_after == 0
}

/// Whether a change (new rights for `target`, or its deletion with `None`) would leave an
/// account that had a user able to manage users with none. `users` are the account's live
/// (not deleted) human users with their current rights.
pub fn leaves_no_user_manager<'a, I>(users: I, target: uuid::Uuid, change: Option<&Rights>) -> bool
where
    I: IntoIterator<Item = (uuid::Uuid, &'a Rights)>,
{
    let mut before = 0;
    let mut after = 0;
    for (id, rights) in users {
        before += usize::from(rights.manages_users());
        let now = if id == target { change } else { Some(rights) };
        after += usize::from(now.is_some_and(Rights::manages_users));
    }
    before > 0 && after == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_manager_cannot_be_removed_or_narrowed() {
        let admin = Rights::account_admin();
        let clerk = Rights::none();
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let users = || vec![(a, &admin), (b, &clerk)];
        assert!(leaves_no_user_manager(users(), a, None));
        assert!(leaves_no_user_manager(users(), a, Some(&clerk)));
        assert!(!leaves_no_user_manager(users(), b, None));
        let mut narrowed = admin.clone();
        narrowed.objects.create = false;
        assert!(
            !leaves_no_user_manager(users(), a, Some(&narrowed)),
            "edit alone still manages"
        );
        narrowed.objects.edit = false;
        assert!(leaves_no_user_manager(users(), a, Some(&narrowed)));
    }

    #[test]
    fn rights_beyond_the_holders_exceed_them() {
        let admin = Rights::account_admin();
        let mut clerk = Rights::none();
        clerk.areas.insert(Area::Users);
        clerk.objects.edit = true;
        assert!(admin.exceeds(&clerk));
        assert!(!clerk.exceeds(&admin));
        assert!(!clerk.exceeds(&clerk));
        let mut more = clerk.clone();
        more.objects.delete = true;
        assert!(more.exceeds(&clerk), "an object right");
        let mut more = clerk.clone();
        more.edit_group_settings = true;
        assert!(more.exceeds(&clerk), "edit_group_settings");
        let g = uuid::Uuid::now_v7();
        let mut limited = clerk.clone();
        limited.groups = Groups::Some(vec![g]);
        let mut all = limited.clone();
        all.groups = Groups::All(AllGroups::All);
        assert!(all.exceeds(&limited), "all groups over some");
        let mut other = limited.clone();
        other.groups = Groups::Some(vec![uuid::Uuid::now_v7()]);
        assert!(other.exceeds(&limited), "a group not held");
        let mut roles = clerk.clone();
        roles.roles = vec![SELF_SERVICE_FULL.into()];
        roles.support_access = true;
        assert!(
            !roles.exceeds(&clerk),
            "roles and support_access are not powers"
        );
    }

    #[test]
    fn the_last_platform_admin_cannot_be_deleted() {
        let admin = Rights::account_admin();
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let users = [
            Manager {
                id: a,
                rights: &admin,
                platform_admin: true,
            },
            Manager {
                id: b,
                rights: &admin,
                platform_admin: false,
            },
        ];
        assert!(leaves_account_unmanaged(&users, a, None));
        assert!(!leaves_account_unmanaged(&users, b, None));
        assert!(
            !leaves_account_unmanaged(&users, a, Some(&Rights::none())),
            "b still manages"
        );
    }

    #[test]
    fn writing_needs_area_and_object_right() {
        let mut r = Rights::none();
        r.areas.insert(Area::Policies);
        assert!(r.can_read(Area::Policies));
        assert!(!r.can_write(Area::Policies, Write::Create));
        r.objects.create = true;
        assert!(r.can_write(Area::Policies, Write::Create));
        assert!(!r.can_write(Area::Users, Write::Create));
    }

    #[test]
    fn rights_round_trip_in_the_contract_shape() {
        let json = serde_json::json!({
            "areas": ["sessions", "policies"],
            "objects": {"create": true, "edit": false, "delete": false},
            "groups": "all",
            "edit_group_settings": false,
            "support_access": true,
            "roles": ["self-service-read"]
        });
        let r: Rights = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(r.groups, Groups::All(AllGroups::All));
        assert_eq!(serde_json::to_value(&r).unwrap(), json);
    }

    #[test]
    fn unknown_areas_are_refused() {
        let json = serde_json::json!({"areas": ["root"], "objects": {"create": true, "edit": true, "delete": true}});
        assert!(serde_json::from_value::<Rights>(json).is_err());
    }
}
