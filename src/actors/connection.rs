//! The outbound half of one WebSocket: a bounded queue and the single writer task that owns the
//! `actix_ws::Session`. Whoever holds an [`Outlet`] may queue frames without waiting; a queue
//! that is full means the client cannot keep up, and the connection is then closed with 4008.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU16, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_ws::{CloseCode, CloseReason};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One frame for the writer.
#[derive(Debug)]
pub enum Outbound {
    Text(ByteString),
    Binary(Bytes),
    Ping,
    Pong(Bytes),
    Close(u16, &'static str),
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The queue is full: the client is too slow.
    Full,
    /// The writer is gone: the connection is closed.
    Closed,
}

struct Kill {
    token: CancellationToken,
    code: AtomicU16,
}

/// Sending side of one connection. Cheap to clone.
#[derive(Clone)]
pub struct Outlet {
    tx: mpsc::Sender<Outbound>,
    kill: Arc<Kill>,
}

impl Outlet {
    /// Queues a frame without waiting.
    pub fn send(&self, frame: Outbound) -> Result<(), SendError> {
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    pub fn text(&self, text: ByteString) -> Result<(), SendError> {
        self.send(Outbound::Text(text))
    }

    /// Closes after the frames already queued; when the queue is full, at once.
    pub fn close(&self, code: u16, reason: &'static str) {
        if self.send(Outbound::Close(code, reason)) == Err(SendError::Full) {
            self.force_close(code);
        }
    }

    /// Drops whatever is queued and closes with `code` as soon as the socket takes it.
    pub fn force_close(&self, code: u16) {
        self.kill.code.store(code, Ordering::Relaxed);
        self.kill.token.cancel();
    }

    /// Whether the writer has finished.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Outlet {
    /// An outlet whose frames the caller reads from the returned queue instead of a socket
    /// writer (benchmarks of the fan-out, in-process peers).
    pub fn channel(capacity: usize) -> (Outlet, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kill = Arc::new(Kill {
            token: CancellationToken::new(),
            code: AtomicU16::new(1000),
        });
        (Outlet { tx, kill }, rx)
    }
}

/// What the far end of a relay outlet reads next.
#[derive(Debug)]
pub enum Relayed {
    /// A frame to pass on.
    Frame(Outbound),
    /// `force_close(code)`: drop what is queued, close with `code`.
    Killed(u16),
    /// Every sender dropped: a normal close.
    Ended,
}

/// The reading end of [`open_relay`]: what a writer task would have put on a socket, for a
/// caller that carries it elsewhere (to another node of a cluster). Counted as a live
/// connection until dropped, so a shutdown waits for it like for a socket.
pub struct RelayEnd {
    rx: mpsc::Receiver<Outbound>,
    kill: Arc<Kill>,
    _live: LiveGuard,
}

impl RelayEnd {
    /// The next frame, in queue order; a kill overtakes whatever is queued.
    pub async fn next(&mut self) -> Relayed {
        tokio::select! {
            biased;
            _ = self.kill.token.cancelled() => Relayed::Killed(self.kill.code.load(Ordering::Relaxed)),
            msg = self.rx.recv() => match msg {
                Some(frame) => Relayed::Frame(frame),
                None => Relayed::Ended,
            },
        }
    }
}

/// An outlet whose frames go to the returned [`RelayEnd`] instead of a socket writer.
pub fn open_relay(capacity: usize, live: &LiveConnections) -> (Outlet, RelayEnd) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let kill = Arc::new(Kill {
        token: CancellationToken::new(),
        code: AtomicU16::new(1000),
    });
    live.0.fetch_add(1, Ordering::SeqCst);
    let end = RelayEnd {
        rx,
        kill: kill.clone(),
        _live: LiveGuard(live.clone()),
    };
    (Outlet { tx, kill }, end)
}

/// Counts the open connections of one broker (shutdown waits for it to reach zero).
#[derive(Clone, Default)]
pub struct LiveConnections(Arc<AtomicUsize>);

impl LiveConnections {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Decrements the count when the writer ends.
struct LiveGuard(LiveConnections);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Creates the outlet of a new connection and spawns its writer task on the current runtime.
pub fn open(ws: actix_ws::Session, capacity: usize, live: &LiveConnections) -> Outlet {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let kill = Arc::new(Kill {
        token: CancellationToken::new(),
        code: AtomicU16::new(1000),
    });
    live.0.fetch_add(1, Ordering::SeqCst);
    let guard = LiveGuard(live.clone());
    let writer_kill = kill.clone();
    actix_web::rt::spawn(async move {
        write_loop(ws, rx, writer_kill).await;
        drop(guard);
    });
    Outlet { tx, kill }
}

/// How long a close may wait for a slow socket before the writer gives up on it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

async fn write_loop(mut ws: actix_ws::Session, mut rx: mpsc::Receiver<Outbound>, kill: Arc<Kill>) {
    let close_with = |code: u16, description: Option<&'static str>| {
        Some(CloseReason {
            code: CloseCode::from(code),
            description: description.map(str::to_string),
        })
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = kill.token.cancelled() => None,
            msg = rx.recv() => Some(msg),
        };
        let msg = match next {
            // Killed: drop the queue and close with the code given.
            None => break,
            // Every sender dropped: a normal close.
            Some(None) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(close_with(1000, None))).await;
                return;
            }
            Some(Some(msg)) => msg,
        };
        let sent = tokio::select! {
            biased;
            _ = kill.token.cancelled() => break,
            sent = async {
                match msg {
                    Outbound::Text(t) => ws.text(t).await.map(|_| true),
                    Outbound::Binary(b) => ws.binary(b).await.map(|_| true),
                    Outbound::Ping => ws.ping(b"").await.map(|_| true),
                    Outbound::Pong(b) => ws.pong(&b).await.map(|_| true),
                    Outbound::Close(code, reason) => {
                        let _ = ws.clone().close(close_with(code, Some(reason))).await;
                        Ok(false)
                    }
                }
            } => sent,
        };
        match sent {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
    let code = kill.code.load(Ordering::Relaxed);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(close_with(code, None))).await;
}
