//! A JSON body that may be left out entirely, but when it is sent must be right.
//!
//! actix-web's `Option<web::Json<T>>` turns every failed extraction into `None`: a body with a
//! typo (an expiry that does not parse, an unknown field) would silently act as "no body" and
//! take the defaults, for instance approving a partner grant with no expiry at all. This
//! extractor answers `None` only for an empty body and 400 `invalid_json` for a bad one.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use crate::error::{AppError, Code};

/// The body (a JSON object), or `None` when the request has none.
pub struct OptionalJson<T>(pub Option<T>);

impl<T> OptionalJson<T> {
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        let json_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            if json_type == Some(false) {
                return Err(
                    AppError::new(Code::InvalidJson, "the body must be application/json").into(),
                );
            }
            // An object, not serde's other spellings of a struct (an array of its fields).
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::new(Code::InvalidJson, e.to_string()))?;
            if !value.is_object() {
                return Err(
                    AppError::new(Code::InvalidJson, "the body must be a JSON object").into(),
                );
            }
            serde_json::from_value(value)
                .map(|v| OptionalJson(Some(v)))
                .map_err(|e| AppError::new(Code::InvalidJson, e.to_string()).into())
        })
    }
}
