//! Partner access: when a grant is in force, and what a partner's support login may do.

use chrono::{DateTime, SecondsFormat, Utc};

use super::rights::{AllGroups, Area, Groups, Rights};

/// The areas a partner's support login acts in inside the customer account.
pub const SUPPORT_AREAS: [Area; 2] = [Area::Devices, Area::Sessions];

/// Longest message a partner may attach to its request.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Whether a grant is in force at `now`: not ended, and not past its expiry.
pub fn grant_active(
    expires_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    ended_at.is_none() && expires_at.is_none_or(|e| e > now)
}

/// The rights of a partner user acting in a customer account through a support grant: the
/// devices and sessions areas only, with the partner user's object rights, over all of the
/// customer's device groups; nothing about users, settings, roles or support access.
pub fn support_rights(partner_rights: &Rights) -> Rights {
    Rights {
        areas: SUPPORT_AREAS.into_iter().collect(),
        objects: partner_rights.objects,
        groups: Groups::All(AllGroups::All),
        edit_group_settings: false,
        support_access: false,
        roles: Vec::new(),
        only_devices: None,
    }
}

/// A time in one fixed-width RFC 3339 form (microseconds, `Z`), so that stored times compare
/// correctly as text in SQL on SQLite and PostgreSQL alike.
pub fn sortable_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rights::Write;
    use chrono::Duration;

    #[test]
    fn a_grant_is_active_until_it_ends_or_expires() {
        let now = Utc::now();
        assert!(grant_active(None, None, now));
        assert!(grant_active(Some(now + Duration::seconds(1)), None, now));
        assert!(!grant_active(Some(now), None, now));
        assert!(!grant_active(None, Some(now), now));
    }

    #[test]
    fn support_logins_act_in_devices_and_sessions_only() {
        let r = support_rights(&Rights::account_admin());
        assert!(r.can_write(Area::Sessions, Write::Create));
        assert!(r.can_read(Area::Devices));
        for area in [
            Area::Users,
            Area::Policies,
            Area::Access,
            Area::Settings,
            Area::Reports,
        ] {
            assert!(!r.has_area(area), "{area:?}");
        }
        assert!(!r.support_access && r.roles.is_empty());
    }

    #[test]
    fn sortable_times_compare_as_text() {
        let a = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.5Z")
            .unwrap()
            .to_utc();
        let b = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.45Z")
            .unwrap()
            .to_utc();
        assert!(sortable_time(b) < sortable_time(a));
        assert_eq!(sortable_time(a), "2026-01-01T10:00:00.500000Z");
    }
}
