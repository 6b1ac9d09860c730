//! The second baseline: the same room relay as `relay.rs`, on the smallest common Rust stack:
//! tokio and tokio-tungstenite, 4 KiB read and write buffers, one reader task and one writer
//! task per connection, the writer fed by a bounded queue. No actix, no auth, no policy, no
//! persistence. `/room/{id}`: a text frame goes to everyone in the room (sender included, as
//! the broker echoes chat), a binary frame to everyone but the sender.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{Request, Response},
    protocol::WebSocketConfig,
};

type Room = Arc<Mutex<Vec<(u64, mpsc::Sender<Message>)>>>;

#[derive(Default)]
struct Rooms {
    rooms: DashMap<String, Room>,
    next: AtomicU64,
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(2 << 20)
        .max_message_size(Some(2 << 20))
        .max_frame_size(Some(2 << 20))
}

#[allow(clippy::result_large_err)] // the callback's type is tungstenite's
async fn connection(stream: tokio::net::TcpStream, rooms: Arc<Rooms>) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, res: Response| {
            path = req.uri().path().to_string();
            Ok(res)
        },
        Some(config()),
    )
    .await;
    let Ok(ws) = accepted else { return };
    let Some(room_id) = path.strip_prefix("/room/") else {
        return;
    };
    let room = rooms.rooms.entry(room_id.to_string()).or_default().clone();
    let id = rooms.next.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(256);
    let _ = tx.try_send(Message::text(r#"{"type":"welcome"}"#));
    room.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, tx.clone()));
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Everything queued goes out with one flush.
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(next) = rx.try_recv() {
                if sink.feed(next).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(_) => {
                for (_, peer) in room.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    let _ = peer.try_send(msg.clone());
                }
            }
            Message::Binary(_) => {
                for (pid, peer) in room.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    if *pid != id {
                        let _ = peer.try_send(msg.clone());
                    }
                }
            }
            Message::Ping(b) => {
                let _ = tx.try_send(Message::Pong(b));
            }
            Message::Close(_) => break,
            Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    room.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(pid, _)| *pid != id);
    drop(tx);
    let _ = writer.await;
}

/// Serves the relay on `bind` with `workers` runtime threads and prints
/// `listening on http://ADDR`.
pub fn serve(bind: &str, workers: usize) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(bind).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let rooms = Arc::new(Rooms::default());
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(connection(stream, rooms.clone()));
        }
    })
}
