//! Request log and latency metric. Logs the route pattern (`/join/{token}`), never the raw
//! path, so no token, ticket or key from a URL reaches a log line.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
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
