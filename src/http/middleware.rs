//! Request log and latency metric. Logs the route pattern (`/join/{token}`), never the raw
//! path, so no token, ticket or key from a URL reaches a log line.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
};

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
    tracing::info!(%method, %route, status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
    Ok(res)
}

/// The Content-Security-Policy of the Swagger UI page (`/api/docs/`): its scripts and styles
/// are files of its own; it styles elements inline and draws icons from data URIs.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'none'";

/// Headers every answer carries: HSTS when the broker serves TLS itself, and the API docs
/// page's own CSP (the console shell sets its own).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let tls = req
        .app_data::<actix_web::web::Data<crate::http::state::AppState>>()
        .is_some_and(|s| s.settings.http.tls.enabled());
    let docs = req.path().starts_with("/api/docs/");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(DOCS_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    Ok(res)
}
