//! The one error type of the HTTP API, and the one table of its codes: every code has its
//! HTTP status and meaning in `Code`, so a code never answers two statuses.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;

/// Every error code of the HTTP API: its stable snake_case name, its HTTP status and what it
/// means. The status of an error follows from its code alone, so one code never answers two
/// statuses. Generated once from the call sites, kept by hand since (docs/api.md lists them).
macro_rules! codes {
    ($($variant:ident = $name:literal, $status:ident, $meaning:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The stable name clients see in `error.code`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The HTTP status this code answers with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// What it means, for people (docs and the default message).
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    InvalidBody = "invalid_body", BAD_REQUEST, "the body is not what this endpoint takes";
    InvalidCsv = "invalid_csv", BAD_REQUEST, "a CSV row is malformed";
    InvalidCsvHeader = "invalid_csv_header", BAD_REQUEST, "the first line must be the header `serial,username`";
    InvalidJson = "invalid_json", BAD_REQUEST, "the body is not valid JSON of the expected shape";
    InvalidPath = "invalid_path", BAD_REQUEST, "a path segment is not a valid id";
    InvalidQuery = "invalid_query", BAD_REQUEST, "a query parameter is malformed";
    NotWebsocket = "not_websocket", BAD_REQUEST, "a WebSocket route was called without a complete WebSocket handshake";
    InvalidCode = "invalid_code", UNAUTHORIZED, "wrong code";
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, "unknown user or wrong password";
    Unauthorized = "unauthorized", UNAUTHORIZED, "missing or invalid credential";
    MissingRight = "missing_right", FORBIDDEN, "the caller lacks the area or object right this needs";
    NotAPartner = "not_a_partner", FORBIDDEN, "only users of a partner account ask for access";
    NotAPartnerAccount = "not_a_partner_account", UNPROCESSABLE_ENTITY, "only partner accounts are certified";
    RecordingNotFound = "recording_not_found", NOT_FOUND, "this session has no recording";
    GroupNotFound = "group_not_found", NOT_FOUND, "no such device group (or not one the caller sees)";
    GroupNotEmpty = "group_not_empty", CONFLICT, "a device group is deleted only when no device is in it";
    NoTotpSetup = "no_totp_setup", CONFLICT, "no authenticator app is waiting for its first code";
    NotInSession = "not_in_session", FORBIDDEN, "connect to the session before inviting";
    NotInviter = "not_inviter", FORBIDDEN, "only the inviter, the session's owner or an admin with the delete right may revoke this invitation";
    NotOwnKey = "not_own_key", FORBIDDEN, "an API key can be created only by its own user, signed in as itself";
    OwnAccountOnly = "own_account_only", FORBIDDEN, "only the account itself decides on vendor support access";
    OwnRights = "own_rights", FORBIDDEN, "a user cannot change its own rights";
    PartnerNotCertified = "partner_not_certified", FORBIDDEN, "only certified partners may ask for access";
    PlatformOnly = "platform_only", FORBIDDEN, "only platform staff may do this";
    ReadOnly = "read_only", FORBIDDEN, "read access may look at devices, not act on them";
    ReauthRequired = "reauth_required", FORBIDDEN, "wipe cannot be undone: confirm it with your password";
    RightsExceedOwn = "rights_exceed_own", FORBIDDEN, "nobody hands out or takes away more than it holds itself";
    SelfOnly = "self_only", FORBIDDEN, "only the user itself can set up an authenticator app";
    SelfServiceDenied = "self_service_denied", FORBIDDEN, "the self-service portal needs a self-service role";
    SupportAccessDisabled = "support_access_disabled", FORBIDDEN, "this account does not allow vendor support access";
    SupportUserNotGranted = "support_user_not_granted", FORBIDDEN, "this grant does not include a support user login";
    AccountNotFound = "account_not_found", NOT_FOUND, "no such account";
    ApiKeyNotFound = "api_key_not_found", NOT_FOUND, "no such API key";
    ChallengeNotFound = "challenge_not_found", NOT_FOUND, "no such login attempt";
    CommandNotFound = "command_not_found", NOT_FOUND, "no such command";
    DeviceNotFound = "device_not_found", NOT_FOUND, "no such device";
    EnrollmentCodeNotFound = "enrollment_code_not_found", NOT_FOUND, "no such enrollment code";
    GrantNotFound = "grant_not_found", NOT_FOUND, "no such grant";
    InvitationNotFound = "invitation_not_found", NOT_FOUND, "no such invitation";
    NotFound = "not_found", NOT_FOUND, "no such asset";
    PolicyNotFound = "policy_not_found", NOT_FOUND, "no such policy";
    RequestNotFound = "request_not_found", NOT_FOUND, "no such request";
    SessionNotFound = "session_not_found", NOT_FOUND, "no such session";
    TokenNotFound = "token_not_found", NOT_FOUND, "unknown link";
    UserNotFound = "user_not_found", NOT_FOUND, "no such user";
    AlreadyGranted = "already_granted", CONFLICT, "this account already grants you access";
    DeviceAlreadyEnrolled = "device_already_enrolled", CONFLICT, "a device with this serial is enrolled; release it first (POST /devices/…/release)";
    DeviceOffline = "device_offline", CONFLICT, "the device's agent is not connected; try again when it is online";
    EmailTaken = "email_taken", CONFLICT, "this email address is taken";
    GroupNameTaken = "group_name_taken", CONFLICT, "a group of this name exists";
    LastUserAdmin = "last_user_admin", CONFLICT, "the account would be left without a user able to manage users";
    NotDeleted = "not_deleted", CONFLICT, "this user is not deleted";
    PolicyNameTaken = "policy_name_taken", CONFLICT, "a policy of this name exists";
    RequestNotPending = "request_not_pending", CONFLICT, "this request was decided already";
    RequestPending = "request_pending", CONFLICT, "a request of yours to this account is already pending";
    SerialTaken = "serial_taken", CONFLICT, "a device with this serial exists in the account";
    UsernameTaken = "username_taken", CONFLICT, "this username is taken";
    ChallengeExpired = "challenge_expired", GONE, "this code can no longer be used; log in again";
    CodeRevoked = "code_revoked", GONE, "this enrollment code was revoked: by an admin, or its maker was deleted, or its partner access ended";
    EnrollmentCodeExpired = "enrollment_code_expired", GONE, "this enrollment code has expired";
    EnrollmentCodeUsed = "enrollment_code_used", GONE, "this enrollment code has been used";
    CodeSpent = "code_spent", CONFLICT, "this enrollment code was used or revoked already";
    InvitationExpired = "invitation_expired", GONE, "this invitation link has expired";
    InvitationRevoked = "invitation_revoked", GONE, "this invitation link was withdrawn";
    InvitationUsed = "invitation_used", GONE, "this invitation link has already been used";
    SessionEnded = "session_ended", GONE, "this session has ended";
    TokenExpired = "token_expired", GONE, "this link has expired";
    TokenUsed = "token_used", GONE, "this link was used already";
    FileTooLarge = "file_too_large", PAYLOAD_TOO_LARGE, "the file is over … MB";
    ActionNotSupported = "action_not_supported", UNPROCESSABLE_ENTITY, "… is not available on … devices";
    EmailRequired = "email_required", UNPROCESSABLE_ENTITY, "two-factor by email needs an email address";
    GroupRequired = "group_required", UNPROCESSABLE_ENTITY, "your rights name device groups: put the device in one of them";
    InvalidComment = "invalid_comment", UNPROCESSABLE_ENTITY, "comment: at most 1000 characters, no control characters but line breaks and tabs";
    InvalidDescription = "invalid_description", UNPROCESSABLE_ENTITY, "a description is too long";
    InvalidEmail = "invalid_email", UNPROCESSABLE_ENTITY, "email is not a valid address";
    InvalidExpiry = "invalid_expiry", UNPROCESSABLE_ENTITY, "expires_in_hours: 1 to 720";
    InvalidFirstName = "invalid_first_name", UNPROCESSABLE_ENTITY, "first_name: 1 to 100 characters";
    InvalidGuestName = "invalid_guest_name", UNPROCESSABLE_ENTITY, "guest_name: 1 to 100 characters";
    InvalidKind = "invalid_kind", UNPROCESSABLE_ENTITY, "kind is 'customer' or 'partner'";
    InvalidLanguage = "invalid_language", UNPROCESSABLE_ENTITY, "language is 'en' or 'de'";
    InvalidFilter = "invalid_filter", UNPROCESSABLE_ENTITY, "a filter of the list is not valid (date, cursor or limit)";
    InvalidLastName = "invalid_last_name", UNPROCESSABLE_ENTITY, "last_name: 1 to 100 characters";
    InvalidMessage = "invalid_message", UNPROCESSABLE_ENTITY, "message: at most … characters, no control characters";
    InvalidModel = "invalid_model", UNPROCESSABLE_ENTITY, "model: one line, bounded";
    InvalidName = "invalid_name", UNPROCESSABLE_ENTITY, "name: 1 to 200 characters";
    InvalidOsVersion = "invalid_os_version", UNPROCESSABLE_ENTITY, "os_version: one line, bounded";
    InvalidPermissions = "invalid_permissions", UNPROCESSABLE_ENTITY, "permissions unknown or repeated";
    InvalidPhone = "invalid_phone", UNPROCESSABLE_ENTITY, "phone must be in E.164 form";
    InvalidCustomerNumber = "invalid_customer_number", UNPROCESSABLE_ENTITY, "a customer number has nine digits";
    InvalidIdempotencyKey = "invalid_idempotency_key", UNPROCESSABLE_ENTITY, "Idempotency-Key: 1 to 64 letters, digits, '.', '_', ':' or '-'";
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, "this Idempotency-Key was used for another command";
    EmailNotVerified = "email_not_verified", FORBIDDEN, "enter the code mailed to the invitation's address first";
    NoEmailToVerify = "no_email_to_verify", CONFLICT, "this invitation is not bound to an email address";
    InvalidAdmission = "invalid_admission", UNPROCESSABLE_ENTITY, "guest_admission is 'off', 'technician' or 'always'";
    ParamsNotAllowed = "params_not_allowed", UNPROCESSABLE_ENTITY, "message and phone belong to lost_mode_on only";
    InvalidSerial = "invalid_serial", UNPROCESSABLE_ENTITY, "serial: 1 to 64 printable characters without spaces";
    InvalidSubject = "invalid_subject", UNPROCESSABLE_ENTITY, "subject: 1 to 200 characters";
    InvalidTwoFactor = "invalid_two_factor", UNPROCESSABLE_ENTITY, "two_factor is 'off', 'email', 'sms' or 'totp'";
    InvalidUsername = "invalid_username", UNPROCESSABLE_ENTITY, "username: 1 to 64 letters, digits, '.', '_', '-', '@'";
    PhoneRequired = "phone_required", UNPROCESSABLE_ENTITY, "two-factor by SMS needs a phone number";
    ServiceUser = "service_user", UNPROCESSABLE_ENTITY, "the service user cannot be changed";
    UnknownGroup = "unknown_group", UNPROCESSABLE_ENTITY, "no device group … in this account";
    UnknownRole = "unknown_role", UNPROCESSABLE_ENTITY, "no role …";
    UnknownUser = "unknown_user", UNPROCESSABLE_ENTITY, "user_id names no user of this account";
    WeakPassword = "weak_password", UNPROCESSABLE_ENTITY, "password: 8 to 256 characters";
    NodeUnavailable = "node_unavailable", SERVICE_UNAVAILABLE, "the node where the session lives did not answer in time; try again in a moment";
    TooManyAttempts = "too_many_attempts", TOO_MANY_REQUESTS, "too many login attempts; try again later";
    TooManyCodes = "too_many_codes", TOO_MANY_REQUESTS, "too many codes sent; wait before logging in again";
    TooManyInvitations = "too_many_invitations", TOO_MANY_REQUESTS, "this session holds … pending invitations already; revoke one first";
    TooManyMails = "too_many_mails", TOO_MANY_REQUESTS, "at most … invitation mails per hour; send the link yourself";
    TooManySessions = "too_many_sessions", TOO_MANY_REQUESTS, "this account holds … live sessions already; end one first";
}

/// An API error. `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An answer from the code table, with a message for people.
    #[error("{message}")]
    Api {
        code: Code,
        message: String,
        /// `Retry-After` in seconds (429 answers).
        retry_after_secs: Option<u64>,
    },
    #[error("the broker is shutting down")]
    Unavailable,
    /// Too much work queued (password hashing): try again in a moment.
    #[error("the broker is busy; try again in a moment")]
    Busy,
    /// Anything unexpected: logged once with its cause chain, answered as an opaque 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// An error of `code` (its status comes from the table).
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::Api {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 401 without a valid credential.
    pub fn unauthorized() -> Self {
        Self::new(Code::Unauthorized, Code::Unauthorized.meaning())
    }

    /// A 429 code, with how long to wait.
    pub fn too_many(code: Code, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::Api {
            code,
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// 503: another node of the cluster (a session's home) did not answer in time.
    pub fn node_unavailable() -> Self {
        Self::Api {
            code: Code::NodeUnavailable,
            message: Code::NodeUnavailable.meaning().to_string(),
            retry_after_secs: Some(2),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// A password hashing failure: 503 `busy` when its queue is full, else internal.
    pub fn from_hashing(err: anyhow::Error) -> Self {
        if err.is::<crate::auth::password::Busy>() {
            Self::Busy
        } else {
            Self::Internal(err)
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api { code, .. } => code.as_str(),
            Self::Unavailable => "shutting_down",
            Self::Busy => "busy",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Whether this is a 404 (to answer a more specific "not found" in its place).
    pub fn is_not_found(&self) -> bool {
        self.status_code() == StatusCode::NOT_FOUND
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

impl From<crate::store::UserWriteError> for AppError {
    fn from(err: crate::store::UserWriteError) -> Self {
        use crate::store::{Taken, UserWriteError};
        match err {
            UserWriteError::Taken(Taken::Username) => {
                Self::new(Code::UsernameTaken, "this username is taken")
            }
            UserWriteError::Taken(Taken::Email) => {
                Self::new(Code::EmailTaken, "this email address is taken")
            }
            UserWriteError::Db(err) => Self::Internal(err.into()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api { code, .. } => code.status(),
            Self::Unavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(err) = self {
            tracing::error!(error = ?err, "request failed");
        }
        let message = match self {
            Self::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let mut builder = HttpResponse::build(self.status_code());
        match self {
            Self::Api {
                retry_after_secs: Some(secs),
                ..
            } => {
                builder.insert_header(("Retry-After", (*secs).max(1).to_string()));
            }
            Self::Unavailable => {
                builder.insert_header(("Retry-After", "5"));
            }
            Self::Busy => {
                builder.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        builder.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_has_one_name_a_client_error_status_and_a_meaning() {
        let mut names = HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "{} twice", code.as_str());
            // A client error, or "try again" (503) for a node of the cluster that was slow.
            assert!(
                code.status().is_client_error() || *code == Code::NodeUnavailable,
                "{}",
                code.as_str()
            );
            assert!(!code.meaning().is_empty());
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }

    #[test]
    fn a_slow_node_is_a_503_that_says_when_to_try_again() {
        let res = AppError::node_unavailable().error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn a_429_carries_retry_after() {
        let res = AppError::too_many(Code::TooManyAttempts, "slow down", 0).error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
