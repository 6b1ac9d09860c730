//! Session recordings: what a recorded session showed and did (screen frames, input events,
//! file offers, chat, who joined and left), written off the relay path by one task per
//! session into `<data_dir>/recordings/<session_id>.sbrec`, kept `recordings.retention_days`.
//!
//! The file format (docs/protocol.md, "Recordings"): the 8 bytes `SBREC001`, then records of
//! `[length: u32 BE][kind: u8][at_ms: u64 BE since the recording began][payload]`, where
//! `length` counts kind, time and payload. Kinds: 1 screen (the image), 2 input (the channel-2
//! payload), 3 file offer (JSON), 4 chat (the `chat` frame's JSON), 5 event (JSON: who joined
//! or left, with role, name and a guest's verified address).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, oneshot},
};

use crate::domain::ids::SessionId;

pub const MAGIC: &[u8; 8] = b"SBREC001";

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Screen = 1,
    Input = 2,
    FileOffer = 3,
    Chat = 4,
    Event = 5,
}

/// Records waiting for the writer before screen and input frames are skipped (chat, files and
/// events are always kept: they are small and bounded by the connections' own limits).
const QUEUE: usize = 1024;

/// What the writer task is given: a record, or a request to put everything before it on disk.
#[derive(Debug)]
enum Write {
    Record(Kind, u64, Bytes),
    Sync(oneshot::Sender<()>),
}

/// The recorder of one session; cheap to clone. Dropping every clone ends the file.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Write>,
    started: Instant,
}

impl Recorder {
    /// Starts the writer task for `session` under `dir`; record times count from `began`
    /// (the session's start), so that a session taken over by another node goes on in the
    /// same file (a shared directory) with times that go on too.
    pub fn start(
        dir: &Path,
        session: SessionId,
        began: chrono::DateTime<chrono::Utc>,
    ) -> std::io::Result<Self> {
        crate::private_fs::create_private_dir(dir).map_err(std::io::Error::other)?;
        let path = dir.join(format!("{session}.sbrec"));
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_all(path, rx));
        let since = (chrono::Utc::now() - began).to_std().unwrap_or_default();
        let started = Instant::now()
            .checked_sub(since)
            .unwrap_or_else(Instant::now);
        Ok(Self { tx, started })
    }

    fn at(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A screen or input frame: skipped (and counted in the log) while the writer is behind.
    pub fn stream(&self, kind: Kind, data: Bytes) {
        if self
            .tx
            .try_send(Write::Record(kind, self.at(), data))
            .is_err()
        {
            tracing::debug!("recording behind: a stream frame is not recorded");
        }
    }

    /// Chat, a file offer or an event: always kept (the writer catches up).
    pub fn keep(&self, kind: Kind, json: String) {
        let tx = self.tx.clone();
        let at = self.at();
        let record = Write::Record(kind, at, Bytes::from(json));
        if let Err(mpsc::error::TrySendError::Full(record)) = tx.try_send(record) {
            tokio::spawn(async move {
                let _ = tx.send(record).await;
            });
        }
    }
}

impl Recorder {
    /// Waits until everything recorded before this call is written to the file and flushed
    /// (a session that moves home: the next home appends to the same file).
    pub async fn sync(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Write::Sync(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write_all(path: PathBuf, mut rx: mpsc::Receiver<Write>) {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    let mut file = match file {
        Ok(f) => tokio::io::BufWriter::new(f),
        Err(err) => {
            tracing::error!(path = %path.display(), error = %err, "recording not written");
            return;
        }
    };
    let _ = crate::private_fs::restrict_file(&path);
    // A recording another node began (its session moved home) goes on after what it wrote.
    let fresh = file
        .get_ref()
        .metadata()
        .await
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    if fresh && file.write_all(MAGIC).await.is_err() {
        return;
    }
    let mut records = 0u64;
    while let Some(write) = rx.recv().await {
        let (kind, at, data) = match write {
            Write::Record(kind, at, data) => (kind, at, data),
            Write::Sync(done) => {
                let _ = file.flush().await;
                let _ = done.send(());
                continue;
            }
        };
        let len = u32::try_from(1 + 8 + data.len()).unwrap_or(u32::MAX);
        let mut head = [0u8; 13];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = kind as u8;
        head[5..].copy_from_slice(&at.to_be_bytes());
        if file.write_all(&head).await.is_err() || file.write_all(&data).await.is_err() {
            tracing::error!(path = %path.display(), "recording write failed");
            return;
        }
        records += 1;
        // Chat and events reach the disk soon; screen frames may wait for the buffer.
        if kind != Kind::Screen && kind != Kind::Input {
            let _ = file.flush().await;
        }
    }
    let _ = file.flush().await;
    tracing::info!(path = %path.display(), records, "recording closed");
}

/// The recording of a session, if there is one.
pub fn path_of(dir: &Path, session: SessionId) -> PathBuf {
    dir.join(format!("{session}.sbrec"))
}

/// Deletes recordings older than `keep`; returns how many went.
pub fn sweep(dir: &Path, keep: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "sbrec") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > keep);
        if old && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads a recording back (for tests and tools): `(kind, at_ms, payload)` records.
pub fn read(bytes: &[u8]) -> Option<Vec<(u8, u64, Vec<u8>)>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 13 {
            return None;
        }
        let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
        if len < 9 || rest.len() < 4 + len {
            return None;
        }
        let kind = rest[4];
        let at = u64::from_be_bytes(rest[5..13].try_into().ok()?);
        out.push((kind, at, rest[13..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_past_their_retention_are_swept_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.sbrec");
        let new = dir.path().join("new.sbrec");
        let other = dir.path().join("notes.txt");
        for p in [&old, &new, &other] {
            std::fs::write(p, MAGIC).unwrap();
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(sweep(dir.path(), Duration::from_secs(30 * 86_400)), 1);
        assert!(!old.exists() && new.exists() && other.exists());
    }

    #[tokio::test]
    async fn a_synced_recording_is_on_disk_and_the_next_home_appends_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let session = SessionId::new();
        let began = chrono::Utc::now();
        let first = Recorder::start(dir.path(), session, began).unwrap();
        for i in 0..50 {
            first.keep(Kind::Chat, format!(r#"{{"n":{i}}}"#));
        }
        first.sync().await;
        // Read while the first recorder still runs: its part is whole on disk.
        let on_disk = std::fs::read(path_of(dir.path(), session)).unwrap();
        assert_eq!(read(&on_disk).expect("well formed").len(), 50);
        drop(first);
        let next = Recorder::start(dir.path(), session, began).unwrap();
        next.keep(Kind::Chat, r#"{"n":50}"#.into());
        next.sync().await;
        let records = read(&std::fs::read(path_of(dir.path(), session)).unwrap()).unwrap();
        assert_eq!(records.len(), 51, "one header, both parts");
        assert_eq!(records[50].2, br#"{"n":50}"#.to_vec());
    }

    #[test]
    fn a_torn_recording_is_refused_not_misread() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&12u32.to_be_bytes());
        bytes.push(4);
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(b"{}!");
        assert_eq!(read(&bytes).unwrap(), vec![(4, 7, b"{}!".to_vec())]);
        assert!(read(&bytes[..bytes.len() - 1]).is_none());
        assert!(read(b"NOTAREC").is_none());
    }
}
