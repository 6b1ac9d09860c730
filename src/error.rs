//! The one error type of the HTTP API: every variant has its status and stable snake_case code.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;

/// An API error. `code` is stable and machine-readable; `message` is for people.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
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
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn unauthorized() -> Self {
        Self::Unauthorized {
            code: "unauthorized",
            message: "missing or invalid credential".into(),
        }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::Gone {
            code,
            message: message.into(),
        }
    }
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::TooLarge {
            code,
            message: message.into(),
        }
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::TooManyRequests {
            code,
            message: message.into(),
            retry_after_secs,
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
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Gone { code, .. }
            | Self::TooLarge { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::TooManyRequests { code, .. } => code,
            Self::Unavailable => "shutting_down",
            Self::Busy => "busy",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
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
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
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
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header(("Retry-After", retry_after_secs.max(&1).to_string()));
        }
        if let Self::Unavailable = self {
            builder.insert_header(("Retry-After", "5"));
        }
        if let Self::Busy = self {
            builder.insert_header(("Retry-After", "1"));
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
