//! Micro-benchmarks of the relay's hot paths (criterion): parsing and checking a client frame,
//! the permission and routing checks, the fan-out of one chat frame to a session's outlets,
//! and persisting report events. `cargo bench --bench micro`; criterion prints the figures and
//! writes them (JSON included) under target/criterion/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use support_broker::{
    actors::{
        connection::{Outbound, Outlet},
        protocol::{ServerFrame, Speaker, parse_client_frame},
    },
    domain::{
        ids::{AccountId, MessageId, ParticipantId, SessionId},
        permissions::{Permission, PermissionSet},
        session::{Channel, Kind, Role, receives, route},
    },
    store::{ChatChunk, ChatLine, NewAccount, NewUser, SessionRecord, Store},
};

fn frames(c: &mut Criterion) {
    let chat = r#"{"type":"chat","text":"The printer on the second floor shows error 0x7E again"}"#;
    c.bench_function("parse_client_frame/chat", |b| {
        b.iter(|| parse_client_frame(black_box(chat)).unwrap())
    });
    c.bench_function("parse_client_frame/unknown_type", |b| {
        b.iter(|| parse_client_frame(black_box(r#"{"type":"dance","x":1}"#)).unwrap_err())
    });
}

fn permissions(c: &mut Criterion) {
    let guest = PermissionSet::only(Permission::Chat).with(Permission::View);
    c.bench_function("route+receives/screen_to_4", |b| {
        b.iter(|| {
            let r = route(
                Kind::Customer,
                black_box(PermissionSet::only(Permission::Chat)),
                Channel::Screen,
            );
            let members = [
                (Kind::Technician, PermissionSet::only(Permission::View)),
                (Kind::Technician, PermissionSet::only(Permission::View)),
                (Kind::Guest, guest),
                (Kind::Customer, PermissionSet::only(Permission::Chat)),
            ];
            match r {
                support_broker::domain::session::Route::ToHolders(p) => members
                    .iter()
                    .filter(|(k, perms)| receives(*k, *perms, p))
                    .count(),
                _ => 0,
            }
        })
    });
}

fn fan_out(c: &mut Criterion) {
    // What the session actor does per chat message: encode the frame once, queue the shared
    // bytes to every participant's outlet (the writers' dequeue is included).
    let mut outlets: Vec<_> = (0..4).map(|_| Outlet::channel(256)).collect();
    let from = ParticipantId::new();
    c.bench_function("fan_out/encode_chat_queue_to_4", |b| {
        b.iter(|| {
            let frame = ServerFrame::Chat {
                id: MessageId::new().0,
                from: Speaker {
                    id: from.0,
                    name: "Ada Lovelace",
                    role: Role::Owner,
                },
                text: "The printer on the second floor shows error 0x7E again",
                at: Utc::now(),
            }
            .encode();
            for (outlet, _) in &outlets {
                outlet.send(Outbound::Text(frame.clone())).unwrap();
            }
            for (_, rx) in &mut outlets {
                black_box(rx.try_recv().unwrap());
            }
        })
    });
}

/// Sessions the persisted chat is spread over: the writer stores one chunk per live session
/// and interval, so a write holds several chunks of a few dozen lines (1,000 sessions with
/// ~29,000 chat messages/s make ~29 lines per 1 s chunk).
const BENCH_SESSIONS: usize = 16;

fn persistence(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, sessions) = rt.block_on(async {
        let store = Store::open(dir.path()).await.unwrap();
        let account = AccountId::new();
        let service = NewUser::service(account);
        let owner = service.id;
        store
            .create_account(&NewAccount {
                id: account,
                name: "bench".into(),
                kind: "customer",
                certified: false,
                users: vec![service],
            })
            .await
            .unwrap();
        let mut sessions = Vec::new();
        for _ in 0..BENCH_SESSIONS {
            let session = SessionRecord {
                id: SessionId::new(),
                account_id: account,
                subject: "bench".into(),
                device_id: None,
                owner_user_id: owner,
                open: true,
                started_at: Utc::now(),
                ended_at: None,
                end_reason: None,
                recorded: false,
            };
            let key = session.id.to_string();
            store
                .insert_session(&session, &key, "", u32::MAX, None)
                .await
                .unwrap();
            sessions.push(session.id);
        }
        (store, sessions)
    });
    let participant = ParticipantId::new();
    let mut seq = 0i64;
    let mut group = c.benchmark_group("report_events");
    group.throughput(criterion::Throughput::Elements(512));
    group.bench_function("512_chats_as_16_chunks", |b| {
        b.iter_batched(
            || {
                seq += 1;
                sessions
                    .iter()
                    .map(|&session| ChatChunk {
                        session,
                        lines: (0..512 / BENCH_SESSIONS as i64)
                            .map(|i| ChatLine {
                                seq: seq * 1000 + i,
                                frame: ServerFrame::Chat {
                                    id: MessageId::new().0,
                                    from: Speaker {
                                        id: participant.0,
                                        name: "Ada Lovelace",
                                        role: Role::Owner,
                                    },
                                    text: "The printer on the second floor shows error 0x7E again",
                                    at: Utc::now(),
                                }
                                .encode(),
                            })
                            .collect(),
                    })
                    .collect::<Vec<_>>()
            },
            |chunks| rt.block_on(store.apply_report(&chunks, &[])).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = frames, permissions, fan_out, persistence
}
criterion_main!(micro);
