//! The report writer: one task that persists session report events in order and in batches,
//! off the relay path. Actors hand events over without waiting; `flush` waits until everything
//! handed over before it is in the database (used by report reads and by shutdown).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{ReportEvent, Store};

enum WriterMsg {
    Event(ReportEvent),
    Flush(oneshot::Sender<()>),
}

/// Where actors drop report events. Cheap to clone.
#[derive(Clone)]
pub struct ReportSink {
    tx: mpsc::UnboundedSender<WriterMsg>,
}

/// Largest batch written in one transaction.
const BATCH: usize = 512;

impl ReportSink {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        // Unbounded on purpose: an event must never be dropped and an actor must never wait.
        // The producers are rate-bounded (frame limits per connection), and the writer drains
        // batches of up to 512 events per transaction, far faster than chat arrives.
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(store, rx));
        (Self { tx }, handle)
    }

    /// Hands an event to the writer; never blocks.
    pub fn record(&self, event: ReportEvent) {
        if self.tx.send(WriterMsg::Event(event)).is_err() {
            tracing::error!("report writer is gone; a report event was not persisted");
        }
    }

    /// Waits until every event recorded before this call is persisted.
    pub async fn flush(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(WriterMsg::Flush(done_tx)).is_ok() {
            let _ = done_rx.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<WriterMsg>) {
    let mut inbox = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while rx.recv_many(&mut inbox, BATCH).await > 0 {
        for msg in inbox.drain(..) {
            match msg {
                WriterMsg::Event(e) => batch.push(e),
                WriterMsg::Flush(w) => waiters.push(w),
            }
        }
        if !batch.is_empty() {
            write_with_retry(&store, &batch).await;
            metrics::counter!("broker_report_events_total").increment(batch.len() as u64);
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        // Let events gather for a moment before the next batch: the channel does not wake this
        // task (nor the database thread) per event while it sleeps, which cuts context switches
        // on a busy core (docs/performance.md). A flush waits at most this long more.
        tokio::time::sleep(GATHER).await;
    }
}

/// How long the writer lets events gather between batches.
const GATHER: Duration = Duration::from_millis(5);

/// Writes a batch, retrying with backoff: a database hiccup must not lose report events.
async fn write_with_retry(store: &Store, batch: &[ReportEvent]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        match store.apply_report_events(batch).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(attempt, events = batch.len(), error = %err, "report batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    // A batch may hold one bad event: write one by one so the others still land.
    for event in batch {
        if let Err(err) = store.apply_report_events(std::slice::from_ref(event)).await {
            tracing::error!(error = %err, ?event, "report event could not be persisted");
        }
    }
}
