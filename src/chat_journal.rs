//! The chat journal of a cluster (docs/cluster.md, "Node loss"): every chat message of a
//! session whose home is this node is stored in JetStream before any participant gets it.
//!
//! The report writer stores chat in chunks (`sessions.chat_chunk_ms`), so a home killed with
//! SIGKILL takes the last chunk with it. The node that takes such a session over reads the
//! session's subject of the journal and puts every message past the last stored one into the
//! report: no chat message that reached a participant is missing.
//!
//! One task per node publishes what the session actors hand over, in order and pipelined (a
//! batch is published, then its acknowledgements are awaited in order), and calls each entry's
//! `done` with whether JetStream stored it; the session actor relays a message only then.
//!
//! Stream `SB_CHAT_<prefix with '.' as '_'>`, subjects `<prefix>.chat.<session>` (`<prefix>`:
//! the installation's `cluster.nats_prefix`, so installations sharing a NATS keep apart), file
//! storage, kept one hour and at most 4096 messages per session: far more than the writer ever
//! holds back. A message is the chat
//! `seq` (8 bytes, big-endian) followed by the `chat` frame as participants got it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    stream::{Config, DirectGetErrorKind, DiscardPolicy, StorageType},
};
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use tokio::sync::mpsc;

use crate::{domain::ids::SessionId, store::ChatLine};

/// How long the journal keeps a message: the report writer stores chat within seconds.
const KEEP: Duration = Duration::from_secs(3600);
const PER_SESSION: i64 = 4096;
/// Largest batch published before its acknowledgements are awaited.
const BATCH: usize = 256;
/// Entries waiting for JetStream before `full()` refuses new chat (`busy`).
const CAPACITY: usize = 20_000;

/// One chat message to store; `done(true)` once JetStream holds it, `done(false)` if it could
/// not be stored (NATS unreachable): the message must then not be relayed.
pub struct Entry {
    pub session: SessionId,
    pub seq: i64,
    pub frame: ByteString,
    pub done: Box<dyn FnOnce(bool) + Send + Sync>,
}

/// Where session actors hand chat over. Cheap to clone.
#[derive(Clone)]
pub struct ChatJournal {
    tx: mpsc::UnboundedSender<Entry>,
    queued: Arc<AtomicUsize>,
    js: jetstream::Context,
    names: Arc<Names>,
}

/// The installation's stream and subjects.
struct Names {
    prefix: String,
    stream: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            stream: stream_name(prefix),
        }
    }

    fn subject(&self, session: SessionId) -> String {
        format!("{}.chat.{}", self.prefix, session.0)
    }
}

/// The journal's stream for the subject prefix `prefix` (no '_' in a prefix: one name each).
pub fn stream_name(prefix: &str) -> String {
    format!("SB_CHAT_{}", prefix.replace('.', "_"))
}

fn encode(seq: i64, frame: &ByteString) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + frame.len());
    buf.put_i64(seq);
    buf.put_slice(frame.as_bytes());
    buf.freeze()
}

fn decode(mut payload: Bytes) -> Option<ChatLine> {
    if payload.len() < 8 {
        return None;
    }
    let seq = i64::from_be_bytes(payload.split_to(8)[..].try_into().ok()?);
    let frame = ByteString::try_from(payload).ok()?;
    Some(ChatLine { seq, frame })
}

async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
) -> Result<jetstream::stream::Stream, String> {
    js.get_or_create_stream(Config {
        name: names.stream.clone(),
        subjects: vec![format!("{}.chat.>", names.prefix)],
        max_age: KEEP,
        max_messages_per_subject: PER_SESSION,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|err| err.to_string())
}

impl ChatJournal {
    /// Starts the publishing task on the current runtime, for the installation whose subjects
    /// start with `prefix`.
    pub fn start(client: async_nats::Client, prefix: &str) -> Self {
        let js = jetstream::new(client);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Names::new(prefix));
        tokio::spawn(run(js.clone(), names.clone(), rx, queued.clone()));
        Self {
            tx,
            queued,
            js,
            names,
        }
    }

    /// Hands a message over; never blocks.
    pub fn append(&self, entry: Entry) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(entry)) = self.tx.send(entry) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            (entry.done)(false);
        }
    }

    /// Too much waits for JetStream: new chat is refused (`busy`) until it drains.
    pub fn full(&self) -> bool {
        self.queued.load(Ordering::Relaxed) >= CAPACITY
    }

    /// The session's journaled chat with `seq` above `after`, in order.
    pub async fn read(&self, session: SessionId, after: i64) -> anyhow::Result<Vec<ChatLine>> {
        let stream = ensure_stream(&self.js, &self.names)
            .await
            .map_err(|err| anyhow::anyhow!(err))?;
        let subject = self.names.subject(session);
        let mut lines = Vec::new();
        let mut next = 1;
        loop {
            match stream
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(message) => {
                    next = message.sequence + 1;
                    match decode(message.payload) {
                        Some(line) if line.seq > after => lines.push(line),
                        Some(_) => {}
                        None => {
                            tracing::warn!(%session, "a chat journal entry that does not decode")
                        }
                    }
                }
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => break,
                Err(err) => return Err(err.into()),
            }
        }
        lines.sort_by_key(|l| l.seq);
        lines.dedup_by_key(|l| l.seq);
        Ok(lines)
    }
}

async fn run(
    js: jetstream::Context,
    names: Arc<Names>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    queued: Arc<AtomicUsize>,
) {
    let mut ready = false;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if !ready {
            match ensure_stream(&js, &names).await {
                Ok(_) => ready = true,
                Err(err) => tracing::error!(error = %err, "chat journal stream not available"),
            }
        }
        let mut acks = Vec::with_capacity(batch.len());
        for entry in &batch {
            let sent = if ready {
                js.publish(
                    names.subject(entry.session),
                    encode(entry.seq, &entry.frame),
                )
                .await
                .map_err(|err| err.to_string())
            } else {
                Err("no stream".to_string())
            };
            acks.push(sent);
        }
        for (entry, sent) in batch.drain(..).zip(acks) {
            let stored = match sent {
                Ok(ack) => ack.await.map_err(|err| err.to_string()),
                Err(err) => Err(err),
            };
            queued.fetch_sub(1, Ordering::Relaxed);
            if let Err(err) = &stored {
                tracing::error!(session = %entry.session, error = %err, "chat not journaled; not relayed");
                // The stream may have been deleted underneath: look again next time.
                ready = false;
            }
            (entry.done)(stored.is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_it_was_written() {
        let frame = ByteString::from_static(r#"{"type":"chat","text":"grüß dich"}"#);
        let line = decode(encode(42, &frame)).expect("decodes");
        assert_eq!(line.seq, 42);
        assert_eq!(line.frame, frame);
    }

    #[test]
    fn a_short_or_broken_entry_is_refused() {
        assert!(decode(Bytes::from_static(b"1234567")).is_none());
        let mut bad = BytesMut::new();
        bad.put_i64(1);
        bad.put_slice(&[0xff, 0xfe]);
        assert!(decode(bad.freeze()).is_none());
    }
}
