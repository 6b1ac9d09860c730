//! Session permissions (what a participant may do) and the security policies that name them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing a participant may do in a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Chat,
    View,
    Control,
    Files,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Permission::Chat,
        Permission::View,
        Permission::Control,
        Permission::Files,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::View => "view",
            Self::Control => "control",
            Self::Files => "files",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of permissions (a bit set; cheap to copy into every participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PermissionSet(u8);

impl PermissionSet {
    pub const NONE: Self = Self(0);
    pub const ALL: Self = Self(0b1111);

    fn bit(p: Permission) -> u8 {
        match p {
            Permission::Chat => 1,
            Permission::View => 2,
            Permission::Control => 4,
            Permission::Files => 8,
        }
    }

    pub fn only(p: Permission) -> Self {
        Self(Self::bit(p))
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | Self::bit(p))
    }

    /// The permissions in their canonical order.
    pub fn to_vec(self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(s)
    }
}

/// Why a policy cannot be saved as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    EmptyName,
    NameTooLong,
    DescriptionTooLong,
    UnknownPermission(String),
    DuplicatePermission(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str("name must not be empty"),
            Self::NameTooLong => f.write_str("name is longer than 100 characters"),
            Self::DescriptionTooLong => f.write_str("description is longer than 1000 characters"),
            Self::UnknownPermission(p) => write!(
                f,
                "unknown permission {p:?}; allowed are chat, view, control, files"
            ),
            Self::DuplicatePermission(p) => write!(f, "permission {p:?} is listed twice"),
        }
    }
}

/// Checks a policy name (trimmed, 1..=100 characters).
pub fn parse_policy_name(name: &str) -> Result<String, PolicyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(PolicyError::EmptyName);
    }
    if name.chars().count() > 100 {
        return Err(PolicyError::NameTooLong);
    }
    Ok(name.to_string())
}

pub fn parse_policy_description(description: &str) -> Result<String, PolicyError> {
    if description.chars().count() > 1000 {
        return Err(PolicyError::DescriptionTooLong);
    }
    Ok(description.to_string())
}

/// Parses a policy's permission list: each of chat, view, control, files at most once.
pub fn parse_permissions(list: &[String]) -> Result<PermissionSet, PolicyError> {
    let mut set = PermissionSet::NONE;
    for raw in list {
        let p =
            Permission::parse(raw).ok_or_else(|| PolicyError::UnknownPermission(raw.clone()))?;
        if set.contains(p) {
            return Err(PolicyError::DuplicatePermission(raw.clone()));
        }
        set = set.with(p);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_parse_as_a_set() {
        let set = parse_permissions(&["view".into(), "chat".into()]).unwrap();
        assert_eq!(set.to_vec(), vec![Permission::Chat, Permission::View]);
        assert!(!set.contains(Permission::Control));
    }

    #[test]
    fn unknown_and_duplicate_permissions_are_refused() {
        assert_eq!(
            parse_permissions(&["admin".into()]),
            Err(PolicyError::UnknownPermission("admin".into()))
        );
        assert_eq!(
            parse_permissions(&["chat".into(), "chat".into()]),
            Err(PolicyError::DuplicatePermission("chat".into()))
        );
    }

    #[test]
    fn policy_names_are_trimmed_and_bounded() {
        assert_eq!(parse_policy_name("  Read only "), Ok("Read only".into()));
        assert_eq!(parse_policy_name("   "), Err(PolicyError::EmptyName));
        assert_eq!(
            parse_policy_name(&"x".repeat(101)),
            Err(PolicyError::NameTooLong)
        );
    }
}
