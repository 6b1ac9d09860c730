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

/// Whether guests wait in a lobby until the customer admits them (an account setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Guests join at once.
    Off,
    /// The session's owner decides per session (`guest_admission` frame); off at the start.
    Technician,
    /// Every guest waits for the customer.
    Always,
}

impl Admission {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "technician" => Some(Self::Technician),
            "always" => Some(Self::Always),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Technician => "technician",
            Self::Always => "always",
        }
    }

    /// Whether a new session starts with the lobby on.
    pub fn starts_on(self) -> bool {
        self == Self::Always
    }

    /// Whether the owner may switch the lobby to `on` in a session.
    pub fn owner_may_set(self, on: bool) -> bool {
        match self {
            Self::Technician => true,
            Self::Always => on,
            Self::Off => !on,
        }
    }
}

/// Why a `remove_guest` request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveRefusal {
    NotOwner,
    UnknownParticipant,
    NotAGuest,
}

impl RemoveRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotOwner => "not_owner",
            Self::UnknownParticipant => "unknown_participant",
            Self::NotAGuest => "not_a_guest",
        }
    }
}

/// Checks a `remove_guest` request: only the owner removes, and only guests (a technician
/// leaves by itself; the customer's link is the customer's).
pub fn check_remove(requester_is_owner: bool, target: Option<Kind>) -> Result<(), RemoveRefusal> {
    if !requester_is_owner {
        return Err(RemoveRefusal::NotOwner);
    }
    match target {
        None => Err(RemoveRefusal::UnknownParticipant),
        Some(Kind::Guest) => Ok(()),
        Some(_) => Err(RemoveRefusal::NotAGuest),
    }
}

/// Why a `file_offer` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferRefusal {
    /// The sender may not send files (no `files` permission).
    Forbidden,
    /// Larger than `ws.file_max_bytes`.
    TooLarge,
    /// An empty file, or a name that is empty, too long or holds control characters.
    Invalid,
}

impl OfferRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::TooLarge => "file_too_large",
            Self::Invalid => "invalid_frame",
        }
    }
}

/// The longest file name a `file_offer` may carry, in characters.
pub const FILE_NAME_MAX: usize = 255;

/// Checks a `file_offer`: a sender that may send on the file channel, a name of 1 to 255
/// characters without control characters or path separators, and 1 to `max` bytes.
pub fn check_file_offer(
    sender: Kind,
    perms: PermissionSet,
    name: &str,
    size: u64,
    max: u64,
) -> Result<(), OfferRefusal> {
    if route(sender, perms, Channel::File) == Route::Forbidden {
        return Err(OfferRefusal::Forbidden);
    }
    let chars = name.chars().count();
    if chars == 0
        || chars > FILE_NAME_MAX
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        || name.trim().is_empty()
        || size == 0
    {
        return Err(OfferRefusal::Invalid);
    }
    if size > max {
        return Err(OfferRefusal::TooLarge);
    }
    Ok(())
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
    /// The owner removed this guest (`remove_guest`).
    Removed,
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
            Self::Removed => "removed",
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
    /// The node holding the session went away: reconnect (RFC 6455 "service restart").
    pub const SERVICE_RESTART: u16 = 1012;
    pub const INVITER_LEFT: u16 = 4001;
    pub const SESSION_ENDED: u16 = 4002;
    pub const ACCESS_REVOKED: u16 = 4003;
    /// The owner removed this guest from the session.
    pub const REMOVED: u16 = 4004;
    /// The customer refused to let this guest in.
    pub const ADMISSION_REFUSED: u16 = 4005;
    /// Nobody admitted this guest in time (`sessions.admission_timeout_secs`).
    pub const ADMISSION_TIMEOUT: u16 = 4006;
    pub const TOO_SLOW: u16 = 4008;
    /// A device agent's connection was replaced by a newer one with the same secret.
    pub const REPLACED: u16 = 4009;
    /// A guest coming back with its resume key finds no place held for it (its grace ran
    /// out, it left, or it was removed).
    pub const NO_PLACE: u16 = 4010;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permissions::Permission::*;

    #[test]
    fn the_account_setting_bounds_what_the_owner_may_switch() {
        assert!(Admission::Always.starts_on() && !Admission::Technician.starts_on());
        assert!(!Admission::Always.owner_may_set(false));
        assert!(!Admission::Off.owner_may_set(true));
        assert!(
            Admission::Technician.owner_may_set(true) && Admission::Technician.owner_may_set(false)
        );
        for a in [Admission::Off, Admission::Technician, Admission::Always] {
            assert_eq!(Admission::parse(a.as_str()), Some(a));
        }
        assert_eq!(Admission::parse("sometimes"), None);
    }

    #[test]
    fn only_the_owner_removes_and_only_guests() {
        assert_eq!(check_remove(true, Some(Kind::Guest)), Ok(()));
        assert_eq!(
            check_remove(false, Some(Kind::Guest)),
            Err(RemoveRefusal::NotOwner)
        );
        assert_eq!(
            check_remove(true, Some(Kind::Technician)),
            Err(RemoveRefusal::NotAGuest)
        );
        assert_eq!(
            check_remove(true, Some(Kind::Customer)),
            Err(RemoveRefusal::NotAGuest)
        );
        assert_eq!(
            check_remove(true, None),
            Err(RemoveRefusal::UnknownParticipant)
        );
    }

    #[test]
    fn file_offers_need_files_a_sane_name_and_a_size_within_the_limit() {
        let tech = PermissionSet::ALL;
        let viewer = PermissionSet::only(View);
        let customer = permissions_of(Kind::Customer, PermissionSet::NONE);
        assert_eq!(
            check_file_offer(Kind::Technician, tech, "log.txt", 10, 100),
            Ok(())
        );
        assert_eq!(
            check_file_offer(Kind::Customer, customer, "a.png", 100, 100),
            Ok(())
        );
        assert_eq!(
            check_file_offer(Kind::Guest, viewer, "log.txt", 10, 100),
            Err(OfferRefusal::Forbidden)
        );
        assert_eq!(
            check_file_offer(Kind::Technician, tech, "log.txt", 101, 100),
            Err(OfferRefusal::TooLarge)
        );
        for bad in ["", "  ", "../etc/passwd", "a\\b", "a\nb"] {
            assert_eq!(
                check_file_offer(Kind::Technician, tech, bad, 10, 100),
                Err(OfferRefusal::Invalid),
                "{bad:?}"
            );
        }
        let long = "x".repeat(FILE_NAME_MAX + 1);
        assert_eq!(
            check_file_offer(Kind::Technician, tech, &long, 10, 100),
            Err(OfferRefusal::Invalid)
        );
        assert_eq!(
            check_file_offer(Kind::Technician, tech, "empty", 0, 100),
            Err(OfferRefusal::Invalid)
        );
    }

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
