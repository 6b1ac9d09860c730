//! Operators' endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{HttpResponse, web};

use super::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// 200 while the store answers and the broker is not draining; 503 otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "draining"}));
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: store unreachable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "store_unreachable"}))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!("broker_live_sessions").set(state.registry.live_sessions() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
