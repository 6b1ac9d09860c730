//! Operators' endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{HttpResponse, web};

use subtle::ConstantTimeEq;

use super::state::AppState;
use crate::error::AppError;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// How long `/readyz` waits for the database.
const READY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// 200 while the store answers and the broker is not draining; 503 otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "draining"}));
    }
    // A database that does not answer within the probe's patience is as good as gone (a
    // load balancer's probe must not hang on the pool's connect timeout).
    // A node of a cluster that lost NATS cannot reach the sessions of other nodes.
    if let Some(cluster) = &state.cluster
        && !cluster.connected()
    {
        tracing::warn!("readiness: NATS unreachable");
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "nats_unreachable"}));
    }
    let ping = tokio::time::timeout(READY_PATIENCE, state.store.ping()).await;
    match ping {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: store unreachable");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "store_unreachable"}))
        }
        Err(_) => {
            tracing::warn!("readiness: store did not answer in time");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "store_unreachable"}))
        }
    }
}

/// Prometheus text. With `ops.metrics_token` set, only for `Authorization: Bearer <token>`.
pub async fn metrics(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AppError> {
    let wanted = state.settings.ops.metrics_token.expose();
    if !wanted.is_empty() {
        let given = crate::auth::extract::bearer(&req).unwrap_or_default();
        let same: bool = given.as_bytes().ct_eq(wanted.as_bytes()).into();
        if !same {
            return Err(AppError::unauthorized());
        }
    }
    metrics::gauge!("broker_live_sessions").set(state.registry.live_sessions() as f64);
    metrics::gauge!("broker_report_queue_events").set(state.reports.queued() as f64);
    if let Some(cluster) = &state.cluster {
        use std::sync::atomic::Ordering::Relaxed;
        let node = cluster.node_id().to_string();
        let c = &cluster.counters;
        metrics::gauge!("broker_cluster_node", "node" => node).set(1.0);
        metrics::gauge!("broker_cluster_nats_connected")
            .set(f64::from(u8::from(cluster.connected())));
        // Sessions whose home this node is: `broker_live_sessions` above.
        metrics::gauge!("broker_cluster_remote_participants")
            .set(cluster.remote_participants() as f64);
        metrics::gauge!("broker_cluster_edge_connections").set(cluster.edge_connections() as f64);
        metrics::counter!("broker_cluster_frames_up_total").absolute(c.frames_up.load(Relaxed));
        metrics::counter!("broker_cluster_frames_down_total").absolute(c.frames_down.load(Relaxed));
        metrics::counter!("broker_cluster_rpc_total").absolute(c.rpc_calls.load(Relaxed));
        metrics::counter!("broker_cluster_rpc_microseconds_total")
            .absolute(c.rpc_nanos.load(Relaxed) / 1_000);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// `GET /api/docs` (no slash): the interactive page lives at `/api/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/api/docs/"))
        .finish()
}
