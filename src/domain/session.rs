//! The rules of a live session as pure functions: roles, permissions, stream routing, succession.

use serde::{Deserialize, Serialize};

use super::permissions::{Permission, PermissionSet};

/// What a participant is, independent of ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Technician,
    Guest,
    Customer,
}

/// The role shown to clients: a technician who owns the session is the `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Technician,
    Guest,
    Customer,
}

impl Role {
    pub fn of(kind: Kind, is_owner: bool) -> Self {
        match kind {
            Kind::Technician if is_owner => Role::Owner,
            Kind::Technician => Role::Technician,
            Kind::Guest => Role::Guest,
            Kind::Customer => Role::Customer,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Technician => "technician",
            Role::Guest => "guest",
            Role::Customer => "customer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Owner, Role::Technician, Role::Guest, Role::Customer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// The permissions a participant holds: technicians all four, the customer `chat` (it sends
/// screen and file frames and receives input by its role), a guest its policy's.
pub fn permissions_of(kind: Kind, policy: PermissionSet) -> PermissionSet {
    match kind {
        Kind::Technician => PermissionSet::ALL,
        Kind::Customer => PermissionSet::only(Permission::Chat),
        Kind::Guest => policy,
    }
}

/// The stream a binary frame belongs to (its first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Screen = 1,
    Input = 2,
    File = 3,
}

impl Channel {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Channel::Screen),
            2 => Some(Channel::Input),
            3 => Some(Channel::File),
            _ => None,
        }
    }
}

/// Where a binary frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To every other participant (never a customer) holding this permission.
    ToHolders(Permission),
    /// To the customer only.
    ToCustomer,
    /// The sender may not send this: drop it and answer `forbidden`.
    Forbidden,
}

/// Routes a binary frame by channel and the sender's kind and permissions.
pub fn route(sender: Kind, perms: PermissionSet, channel: Channel) -> Route {
    match (channel, sender) {
        (Channel::Screen, Kind::Customer) => Route::ToHolders(Permission::View),
        (Channel::Screen, _) => Route::Forbidden,
        (Channel::Input, Kind::Customer) => Route::Forbidden,
        (Channel::Input, _) if perms.contains(Permission::Control) => Route::ToCustomer,
        (Channel::Input, _) => Route::Forbidden,
        (Channel::File, Kind::Customer) => Route::ToHolders(Permission::Files),
        (Channel::File, _) if perms.contains(Permission::Files) => Route::ToCustomer,
        (Channel::File, _) => Route::Forbidden,
    }
}

/// Whether `kind` with `perms` may receive a frame routed to holders of `needed`.
pub fn receives(kind: Kind, perms: PermissionSet, needed: Permission) -> bool {
    kind != Kind::Customer && perms.contains(needed)
}

/// Why ownership cannot go to someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefusal {
    NotOwner,
    UnknownParticipant,
    GuestCannotOwn,
    CustomerCannotOwn,
    AlreadyOwner,
}

impl TransferRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotOwner => "not_owner",
            Self::UnknownParticipant => "unknown_participant",
            Self::GuestCannotOwn => "guest_cannot_own",
            Self::CustomerCannotOwn => "customer_cannot_own",
            Self::AlreadyOwner => "already_owner",
        }
    }
}

/// Checks a `transfer_ownership` request: only the owner may hand over, and only to a
/// technician (`target` is `None` when no such participant is connected).
pub fn check_transfer(
    requester_is_owner: bool,
    requester_is_target: bool,
    target: Option<Kind>,
) -> Result<(), TransferRefusal> {
    if !requester_is_owner {
        return Err(TransferRefusal::NotOwner);
    }
    match target {
        None => Err(TransferRefusal::UnknownParticipant),
        Some(Kind::Guest) => Err(TransferRefusal::GuestCannotOwn),
        Some(Kind::Customer) => Err(TransferRefusal::CustomerCannotOwn),
        Some(Kind::Technician) if requester_is_target => Err(TransferRefusal::AlreadyOwner),
        Some(Kind::Technician) => Ok(()),
    }
}

/// The successor of a departing owner: the technician present longest, i.e. with the lowest
/// join sequence number.
pub fn successor<P: Copy>(technicians: impl IntoIterator<Item = (P, u64)>) -> Option<P> {
    technicians
        .into_iter()
        .min_by_key(|(_, seq)| *seq)
        .map(|(p, _)| p)
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    NoTechnician,
    EndedByOwner,
    Shutdown,
    Failed,
    /// The owner's access ended (its partner grant was revoked).
    AccessRevoked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessRevoked => "access_revoked",
            Self::NoTechnician => "no_technician",
            Self::EndedByOwner => "ended_by_owner",
            Self::Shutdown => "shutdown",
            Self::Failed => "failed",
        }
    }
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Disconnected,
    InviterLeft,
    SessionEnded,
    Revoked,
    TooSlow,
    Shutdown,
    /// A newer connection of the same customer took its place.
    Replaced,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Disconnected => "disconnected",
            Self::InviterLeft => "inviter_left",
            Self::SessionEnded => "session_ended",
            Self::Revoked => "revoked",
            Self::TooSlow => "too_slow",
            Self::Shutdown => "shutdown",
            Self::Replaced => "replaced",
        }
    }
}

/// WebSocket close codes of the protocol.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    /// A frame that breaks RFC 6455 itself (a bad opcode, a control frame over 125 bytes, an
    /// invalid close code, a reserved bit set).
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const INVITER_LEFT: u16 = 4001;
    pub const SESSION_ENDED: u16 = 4002;
    pub const ACCESS_REVOKED: u16 = 4003;
    pub const TOO_SLOW: u16 = 4008;
    /// A device agent's connection was replaced by a newer one with the same secret.
    pub const REPLACED: u16 = 4009;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permissions::Permission::*;

    #[test]
    fn screen_goes_from_the_customer_to_viewers_only() {
        let p = permissions_of(Kind::Customer, PermissionSet::NONE);
        assert_eq!(
            route(Kind::Customer, p, Channel::Screen),
            Route::ToHolders(View)
        );
        assert_eq!(
            route(Kind::Technician, PermissionSet::ALL, Channel::Screen),
            Route::Forbidden
        );
    }

    #[test]
    fn input_needs_control_and_goes_to_the_customer() {
        let chat_only = PermissionSet::only(Chat);
        assert_eq!(
            route(Kind::Guest, chat_only, Channel::Input),
            Route::Forbidden
        );
        assert_eq!(
            route(Kind::Guest, chat_only.with(Control), Channel::Input),
            Route::ToCustomer
        );
        assert_eq!(
            route(Kind::Customer, PermissionSet::ALL, Channel::Input),
            Route::Forbidden
        );
    }

    #[test]
    fn files_flow_both_ways_between_file_holders_and_the_customer() {
        assert_eq!(
            route(Kind::Customer, PermissionSet::NONE, Channel::File),
            Route::ToHolders(Files)
        );
        assert_eq!(
            route(Kind::Guest, PermissionSet::only(Files), Channel::File),
            Route::ToCustomer
        );
        assert_eq!(
            route(Kind::Guest, PermissionSet::only(View), Channel::File),
            Route::Forbidden
        );
    }

    #[test]
    fn customers_never_receive_holder_frames() {
        assert!(!receives(Kind::Customer, PermissionSet::ALL, View));
        assert!(receives(Kind::Guest, PermissionSet::only(View), View));
        assert!(!receives(Kind::Guest, PermissionSet::only(Chat), View));
    }

    #[test]
    fn ownership_goes_only_to_technicians() {
        assert_eq!(check_transfer(true, false, Some(Kind::Technician)), Ok(()));
        assert_eq!(
            check_transfer(true, false, Some(Kind::Guest)),
            Err(TransferRefusal::GuestCannotOwn)
        );
        assert_eq!(
            check_transfer(false, false, Some(Kind::Technician)),
            Err(TransferRefusal::NotOwner)
        );
        assert_eq!(
            check_transfer(true, false, None),
            Err(TransferRefusal::UnknownParticipant)
        );
    }

    #[test]
    fn successor_is_the_technician_present_longest() {
        assert_eq!(successor([("b", 7), ("a", 3), ("c", 9)]), Some("a"));
        assert_eq!(successor::<&str>([]), None);
    }
}
