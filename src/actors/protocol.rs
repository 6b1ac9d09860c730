//! The WebSocket frames of the session protocol (see docs/protocol.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    device::{CommandStatus, ReportedLocation},
    permissions::PermissionSet,
    session::Role,
};

/// A text frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Chat {
        text: String,
    },
    TransferOwnership {
        to: Uuid,
    },
    EndSession,
    Leave,
    /// The owner takes a guest out of the session (closed with 4004, reason `removed`).
    RemoveGuest {
        participant_id: Uuid,
    },
    /// Announces a file on channel 3: its chunks follow as binary frames
    /// `[3][transfer_id: 16 bytes][data]`.
    FileOffer {
        transfer_id: Uuid,
        name: String,
        size: u64,
    },
    /// The customer lets a waiting guest in.
    Admit {
        participant_id: Uuid,
    },
    /// The customer sends a waiting guest away (closed with 4005).
    Refuse {
        participant_id: Uuid,
    },
    /// The owner switches the lobby for this session (within the account's setting).
    GuestAdmission {
        required: bool,
    },
}

const CLIENT_TYPES: [&str; 9] = [
    "admit",
    "refuse",
    "guest_admission",
    "chat",
    "transfer_ownership",
    "end_session",
    "leave",
    "remove_guest",
    "file_offer",
];

/// Why a text frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON, not an object, or a field missing or of the wrong type.
    Invalid(String),
    /// A well-formed frame of a type this server does not know.
    UnknownType(String),
    /// Beyond the connection's traffic limit.
    RateLimited,
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_frame",
            Self::UnknownType(_) => "unknown_type",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::RateLimited => "too much traffic on this connection; slow down".into(),
            Self::Invalid(why) => format!("malformed frame: {why}"),
            Self::UnknownType(t) => format!("unknown frame type {t:?}"),
        }
    }
}

/// Parses a client text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    parse_typed(text, &CLIENT_TYPES)
}

/// Parses a JSON frame tagged by `type`, telling a malformed frame from an unknown type.
fn parse_typed<T: serde::de::DeserializeOwned>(
    text: &str,
    known: &[&str],
) -> Result<T, FrameError> {
    // The common case, a well-formed frame, in one pass; only a refused frame is parsed again
    // to tell a malformed one from an unknown type.
    if let Ok(frame) = serde_json::from_str(text) {
        return Ok(frame);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| FrameError::Invalid(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(FrameError::Invalid(
            "a frame is an object with a string \"type\"".into(),
        ));
    };
    if !known.contains(&kind) {
        let mut shown: String = kind.chars().take(64).collect();
        if shown.len() < kind.len() {
            shown.push('…');
        }
        return Err(FrameError::UnknownType(shown));
    }
    serde_json::from_value(value).map_err(|e| FrameError::Invalid(e.to_string()))
}

/// A frame a device agent sends over `/ws/device`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentFrame {
    Ack {
        command_id: Uuid,
        status: AckStatus,
        #[serde(default)]
        result: Option<serde_json::Value>,
    },
    Telemetry {
        #[serde(default)]
        battery: Option<u8>,
        #[serde(default)]
        location: Option<ReportedLocation>,
    },
}

const AGENT_TYPES: [&str; 2] = ["ack", "telemetry"];

/// How an agent answers a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Done,
    Failed,
}

impl From<AckStatus> for CommandStatus {
    fn from(a: AckStatus) -> Self {
        match a {
            AckStatus::Done => CommandStatus::Done,
            AckStatus::Failed => CommandStatus::Failed,
        }
    }
}

/// Parses and checks one agent frame.
pub fn parse_agent_frame(text: &str) -> Result<AgentFrame, FrameError> {
    let frame: AgentFrame = parse_typed(text, &AGENT_TYPES)?;
    if let AgentFrame::Telemetry { battery, .. } = &frame
        && battery.is_some_and(|b| b > 100)
    {
        return Err(FrameError::Invalid(
            "battery is a percentage, 0 to 100".into(),
        ));
    }
    Ok(frame)
}

/// A text frame the broker sends to a device agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceFrame<'a> {
    Command {
        id: Uuid,
        action: &'a str,
        params: &'a serde_json::Value,
    },
    /// Join session `session_id` as its customer through `/ws/customer/{customer_key}`.
    SessionRequest {
        session_id: Uuid,
        customer_key: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl DeviceFrame<'_> {
    pub fn encode(&self) -> bytestring::ByteString {
        serde_json::to_string(self)
            .unwrap_or_else(|_| {
                r#"{"type":"error","code":"internal","message":"encoding failed"}"#.into()
            })
            .into()
    }
}

/// A participant as clients see it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ParticipantView {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: Role,
    /// Its place is held while it is away (extension; only when true): a technician within
    /// its reconnect grace, or anyone whose session just moved to another node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub away: bool,
}

/// The author of a chat message.
#[derive(Debug, Clone, Serialize)]
pub struct Speaker<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub role: Role,
}

/// A text frame from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        participant_id: Uuid,
        session_id: Uuid,
        role: Role,
        permissions: PermissionSet,
        owner_id: Option<Uuid>,
        participants: Vec<ParticipantView>,
        /// The largest file a `file_offer` may announce (extension).
        file_max_bytes: u64,
        /// How long a technician's place is kept after its connection drops (extension).
        reconnect_grace_secs: u64,
        /// Whether new guests wait until the customer admits them (extension).
        guest_admission_required: bool,
        /// The account's rule: `off`, `technician` (the owner switches it), `always`.
        guest_admission: &'a str,
        /// Whether the session is recorded (extension): every participant is told.
        recording: bool,
        /// To a guest, once: the key that brings it back into its place after its session
        /// moved to another node (`/ws/guest/{token}?resume={participant_id}&key=…`).
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_key: Option<String>,
    },
    /// To a guest in the lobby: it waits until the customer admits it.
    Lobby {
        session_id: Uuid,
        timeout_secs: u64,
        /// Its participant id (extension): with `resume_key`, a guest whose connection dropped
        /// (or whose session moved to another node) comes back to its place in the lobby.
        participant_id: Uuid,
        /// How long its place in the lobby is kept after its connection drops (extension).
        reconnect_grace_secs: u64,
        /// The first time only: the key that brings it back (as `welcome.resume_key`).
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_key: Option<String>,
    },
    /// To the customer (who decides) and the technicians: a guest asks to join.
    AdmissionRequest {
        participant_id: Uuid,
        name: &'a str,
        invited_by: Speaker<'a>,
        policy: &'a str,
        permissions: PermissionSet,
        verified_email: Option<&'a str>,
        /// Its connection dropped (or its session just moved node): it cannot be admitted
        /// until it is back (`participant_back`) (extension).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        away: bool,
    },
    /// What became of a request: `admitted`, `refused`, `timed_out`, `withdrawn` (the guest
    /// went), `inviter_left`.
    AdmissionDecided {
        participant_id: Uuid,
        decision: &'a str,
    },
    /// The lobby was switched on or off for this session.
    GuestAdmission {
        required: bool,
    },
    ParticipantJoined {
        participant: &'a ParticipantView,
    },
    ParticipantLeft {
        participant_id: Uuid,
        reason: &'a str,
    },
    /// A technician's connection dropped; it keeps its place for the reconnect grace.
    ParticipantAway {
        participant_id: Uuid,
    },
    /// A technician came back within the grace.
    ParticipantBack {
        participant_id: Uuid,
    },
    Chat {
        id: Uuid,
        from: Speaker<'a>,
        text: &'a str,
        at: DateTime<Utc>,
    },
    OwnerChanged {
        owner_id: Option<Uuid>,
    },
    /// A file on its way to this participant; its chunks follow on channel 3.
    FileOffer {
        transfer_id: Uuid,
        from: Speaker<'a>,
        name: &'a str,
        size: u64,
        at: DateTime<Utc>,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
    SessionEnded {
        reason: &'a str,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text, ready to share between receivers.
    pub fn encode(&self) -> bytestring::ByteString {
        // Serializing these plain structs cannot fail; fall back to an error frame anyway.
        serde_json::to_string(self)
            .unwrap_or_else(|_| {
                r#"{"type":"error","code":"internal","message":"encoding failed"}"#.into()
            })
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_participant_view_crosses_to_another_node_whether_away_or_not() {
        // What a home sends another node (a session view, a welcome) is read back there:
        // `away` is left out when false, so a reader must not require it.
        for away in [false, true] {
            let view = ParticipantView {
                id: Uuid::now_v7(),
                user_id: None,
                name: "Gina".into(),
                role: Role::Guest,
                away,
            };
            let wire = serde_json::to_string(&view).unwrap();
            assert_eq!(wire.contains("away"), away, "{wire}");
            let back: ParticipantView = serde_json::from_str(&wire).unwrap();
            assert_eq!(back, view);
        }
    }

    #[test]
    fn frames_parse_by_type() {
        assert_eq!(
            parse_client_frame(r#"{"type":"chat","text":"hi"}"#),
            Ok(ClientFrame::Chat { text: "hi".into() })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"leave"}"#),
            Ok(ClientFrame::Leave)
        );
        assert_eq!(
            parse_client_frame(
                r#"{"type":"remove_guest","participant_id":"0190a0a0-0000-7000-8000-000000000000"}"#
            ),
            Ok(ClientFrame::RemoveGuest {
                participant_id: Uuid::from_u128(0x0190a0a0_0000_7000_8000_000000000000)
            })
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"file_offer","transfer_id":"0190a0a0-0000-7000-8000-000000000000","name":"a.txt","size":-1}"#)
                .unwrap_err()
                .code(),
            "invalid_frame"
        );
    }

    #[test]
    fn malformed_frames_are_invalid_and_unknown_types_are_named() {
        assert_eq!(
            parse_client_frame("{nope").unwrap_err().code(),
            "invalid_frame"
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"chat"}"#).unwrap_err().code(),
            "invalid_frame"
        );
        assert_eq!(
            parse_client_frame(r#"[1,2]"#).unwrap_err().code(),
            "invalid_frame"
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"dance"}"#),
            Err(FrameError::UnknownType("dance".into()))
        );
    }

    #[test]
    fn agent_frames_are_checked() {
        let ack = parse_agent_frame(
            r#"{"type":"ack","command_id":"0190a0a0-0000-7000-8000-000000000000","status":"done"}"#,
        );
        assert!(matches!(
            ack,
            Ok(AgentFrame::Ack {
                status: AckStatus::Done,
                ..
            })
        ));
        assert_eq!(
            parse_agent_frame(r#"{"type":"hello"}"#),
            Err(FrameError::UnknownType("hello".into()))
        );
        for bad in [
            r#"{"type":"telemetry","battery":101}"#,
            "{",
            r#"{"type":"ack","status":"done"}"#,
            r#"{"type":"telemetry","location":{"lat":1}}"#,
        ] {
            assert_eq!(
                parse_agent_frame(bad).unwrap_err().code(),
                "invalid_frame",
                "{bad}"
            );
        }
    }

    #[test]
    fn server_frames_use_the_contract_names() {
        let text = ServerFrame::SessionEnded { reason: "shutdown" }.encode();
        assert_eq!(&*text, r#"{"type":"session_ended","reason":"shutdown"}"#);
        let text = ServerFrame::OwnerChanged { owner_id: None }.encode();
        assert_eq!(&*text, r#"{"type":"owner_changed","owner_id":null}"#);
    }
}
