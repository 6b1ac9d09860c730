//! The baseline: a minimal WebSocket room relay on the broker's own stack (actix-web, actix-ws,
//! one writer task per connection fed by a bounded queue), with no auth, no policy, no
//! permissions and no persistence. `/room/{id}`: a text frame goes to everyone in the room
//! (sender included, as the broker echoes chat), a binary frame to everyone but the sender.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, rt, web};
use actix_ws::AggregatedMessage;
use bytes::Bytes;
use bytestring::ByteString;
use dashmap::DashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;

enum Out {
    Text(ByteString),
    Binary(Bytes),
}

type Room = Arc<Mutex<Vec<(u64, mpsc::Sender<Out>)>>>;

#[derive(Default)]
struct Rooms {
    rooms: DashMap<String, Room>,
    next: AtomicU64,
}

async fn join(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    rooms: web::Data<Rooms>,
) -> actix_web::Result<HttpResponse> {
    let (res, mut session, stream) = actix_ws::handle(&req, body)?;
    let room = rooms.rooms.entry(path.into_inner()).or_default().clone();
    let id = rooms.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let _ = session.text(r#"{"type":"welcome"}"#).await;
    room.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, tx));
    let mut writer = session.clone();
    rt::spawn(async move {
        while let Some(out) = rx.recv().await {
            let sent = match out {
                Out::Text(t) => writer.text(t).await,
                Out::Binary(b) => writer.binary(b).await,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    rt::spawn(async move {
        let mut stream = stream
            .max_frame_size(2 << 20)
            .aggregate_continuations()
            .max_continuation_size(2 << 20);
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                AggregatedMessage::Text(t) => {
                    for (_, peer) in room.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                        let _ = peer.try_send(Out::Text(t.clone()));
                    }
                }
                AggregatedMessage::Binary(b) => {
                    for (pid, peer) in room.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                        if *pid != id {
                            let _ = peer.try_send(Out::Binary(b.clone()));
                        }
                    }
                }
                AggregatedMessage::Ping(b) => {
                    let _ = session.pong(&b).await;
                }
                AggregatedMessage::Close(_) => break,
                AggregatedMessage::Pong(_) => {}
            }
        }
        room.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(pid, _)| *pid != id);
        let _ = session.close(None).await;
    });
    Ok(res)
}

/// Serves the relay on `bind` with `workers` threads and prints `listening on http://ADDR`.
pub fn serve(bind: &str, workers: usize) -> std::io::Result<()> {
    rt::System::new().block_on(async move {
        let rooms = web::Data::new(Rooms::default());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(rooms.clone())
                .route("/room/{id}", web::get().to(join))
        })
        .workers(workers.max(1))
        .bind(bind)?;
        println!("listening on http://{}", server.addrs()[0]);
        server.run().await
    })
}
