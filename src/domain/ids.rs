//! Newtype ids so that a user id can never be passed where a session id is meant.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(/// An account (customer, partner or the platform itself).
    AccountId);
id_type!(/// A user of an account.
    UserId);
id_type!(/// A live support session.
    SessionId);
id_type!(/// One connection's place in a session (kept across a technician's reconnect).
    ParticipantId);
id_type!(/// An invitation of an external technician.
    InvitationId);
id_type!(/// A security policy.
    PolicyId);
id_type!(/// A chat message of a session.
    MessageId);
id_type!(/// A managed device.
    DeviceId);
id_type!(/// A command sent to a device.
    CommandId);
id_type!(/// A partner's request for access to a customer account.
    AccessRequestId);
id_type!(/// A customer's grant of access to a partner.
    GrantId);
