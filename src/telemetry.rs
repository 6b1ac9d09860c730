//! Logs (human by default, JSON by config) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, LogSettings};

/// Installs the global tracing subscriber (once; later calls are no-ops).
pub fn init_logs(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let result = match settings.format {
        LogFormat::Human => fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    let _ = result;
}

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (the `metrics` facade is global by design; several
/// brokers in one test process share it).
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    let handle = RECORDER.get_or_init(|| {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &buckets,
            )
            .and_then(|b| b.install_recorder())
            .map_err(|e| eprintln!("metrics recorder not installed: {e}"))
            .ok()
    });
    handle
        .clone()
        .ok_or_else(|| anyhow::anyhow!("metrics recorder unavailable"))
}
