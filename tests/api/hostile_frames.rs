//! A hostile WebSocket peer, black box: 10,000 random and malformed frames (garbage JSON,
//! unknown types, random binary channels, pings, oversize frames, invalid UTF-8, odd closes)
//! from a technician's connections into a live session. The broker must not fall over, every
//! connection it ends must end with one of the contract's close codes, and a session next
//! door must go on as if nothing happened. Deterministic: a fixed seed, a bounded count.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{
        CloseFrame,
        frame::{
            Frame,
            coding::{CloseCode, Data, OpCode},
        },
    },
};

use crate::helpers::{Event, TestApp};

const FRAMES: usize = 10_000;
const SEED: u64 = 0x5eed_b10c_f00d;

/// xorshift64*: enough randomness for picking frames, and the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn text(&mut self, n: usize) -> String {
        // Printable ASCII, some multi-byte characters, quotes and backslashes.
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", " ", "\"", "\\", "{", "}", "ä", "€", "😀", "\n",
        ];
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// What a frame should make the broker do to the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Stay open (an answer, a relay, or nothing).
    Stay,
    /// Close with this code.
    Close(u16),
    /// The client ended it (a close frame or `leave`).
    ClientEnds,
}

fn hostile(rng: &mut Rng) -> (Message, Expect) {
    let pick = rng.below(1000);
    let json_text = |rng: &mut Rng| -> String {
        match rng.below(12) {
            0 => {
                let n = rng.below(300) as usize;
                json!({"type": "chat", "text": rng.text(n)})
            }
            .to_string(),
            1 => json!({"type": "chat"}).to_string(),
            2 => json!({"type": "chat", "text": rng.next()}).to_string(),
            3 => json!({"type": "transfer_ownership", "to": rng.text(10)}).to_string(),
            4 => json!({"type": "transfer_ownership", "to": uuid::Uuid::new_v4()}).to_string(),
            5 => json!({"type": rng.text(8)}).to_string(),
            6 => format!("{{\"type\":\"chat\",\"text\":\"{}", rng.text(20)),
            7 => "[]".repeat(1 + rng.below(5) as usize),
            8 => "null".into(),
            9 => {
                let n = 1000 + rng.below(3000) as usize;
                "[".repeat(n)
            }
            10 => json!({"type": "end_session"}).to_string(),
            _ => {
                let n = 1 + rng.below(200) as usize;
                rng.text(n)
            }
        }
    };
    match pick {
        // Oversize: a text frame over 64 KiB, a binary frame over 1 MiB.
        0..=4 => (
            Message::text("x".repeat(64 * 1024 + 1)),
            Expect::Close(1009),
        ),
        5..=7 => (
            Message::binary(vec![1u8; 1024 * 1024 + 1]),
            Expect::Close(1009),
        ),
        // A text frame that is not UTF-8.
        8..=14 => {
            let mut bytes = {
                let n = 1 + rng.below(50) as usize;
                rng.bytes(n)
            };
            bytes.push(0xff);
            (
                Message::Frame(Frame::message(bytes, OpCode::Data(Data::Text), true)),
                Expect::Close(1007),
            )
        }
        // The client goes: a close frame (any code) or `leave`.
        15..=19 => (
            Message::Close(Some(CloseFrame {
                code: CloseCode::from(1000 + rng.below(4000) as u16),
                reason: "bye".into(),
            })),
            Expect::ClientEnds,
        ),
        20..=24 => (Message::text(r#"{"type":"leave"}"#), Expect::ClientEnds),
        // Pings and unsolicited pongs.
        25..=99 => {
            let payload = {
                let n = rng.below(126) as usize;
                rng.bytes(n)
            };
            if rng.below(2) == 0 {
                (Message::Ping(payload.into()), Expect::Stay)
            } else {
                (Message::Pong(payload.into()), Expect::Stay)
            }
        }
        // Binary frames on any channel byte, of any small size.
        100..=399 => {
            let mut data = {
                let n = rng.below(4096) as usize;
                rng.bytes(n)
            };
            if data.is_empty() || rng.below(3) == 0 {
                data.insert(0, rng.below(5) as u8);
            }
            (Message::binary(data), Expect::Stay)
        }
        // Text: garbage, half JSON, unknown types, valid chats.
        _ => (Message::text(json_text(rng)), Expect::Stay),
    }
}

/// Reads until the close (its code) or `quiet` without a frame (`None`).
async fn until_close(ws: &mut crate::helpers::Ws, quiet: Duration) -> Option<Option<u16>> {
    loop {
        match ws.next_within(quiet).await {
            None => return None,
            Some(Event::Closed(code)) => return Some(code),
            Some(_) => continue,
        }
    }
}

#[actix_web::test]
async fn ten_thousand_hostile_frames_end_only_in_contract_close_codes_and_harm_no_one_else() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, mallory) = app.user(&t, "mallory", &["sessions"]).await;
    let (_, neighbour) = app.user(&t, "nina", &["sessions"]).await;

    // The attacked session, with its owner and customer listening.
    let (attacked, attacked_key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &attacked).await;
    let mut customer = app.ws_customer(&attacked_key).await;
    // A session next door, chatting throughout.
    let (next_door, next_door_key) = app.session(&neighbour).await;
    let mut nina = app.ws_technician(&neighbour, &next_door).await;
    let mut their_customer = app.ws_customer(&next_door_key).await;

    let mut rng = Rng(SEED);
    let mut sent = 0usize;
    let mut connections = 0usize;
    let mut closes: BTreeMap<String, usize> = BTreeMap::new();
    let allowed_server_closes = [1007u16, 1008, 1009];
    while sent < FRAMES {
        let mut ws = app.ws_technician(&mallory, &attacked).await;
        connections += 1;
        let burst = 20 + rng.below(60) as usize;
        let mut expect = Expect::Stay;
        for _ in 0..burst {
            let (msg, what) = hostile(&mut rng);
            ws.send_raw(msg).await;
            sent += 1;
            if what != Expect::Stay {
                expect = what;
                break;
            }
        }
        let ended = until_close(&mut ws, Duration::from_millis(150)).await;
        let key = match (expect, ended) {
            (Expect::Close(code), Some(got)) => {
                // The frames of a burst go out back to back: the error limit (1008) may end
                // the connection before the fatal frame is read.
                assert!(
                    got == Some(code) || got == Some(1008),
                    "after a frame that must close with {code}: {got:?}"
                );
                format!("server {}", got.unwrap_or(0))
            }
            (Expect::Close(code), None) => panic!("the broker did not close with {code}"),
            (Expect::ClientEnds, Some(got)) => format!("client ended ({got:?})"),
            (Expect::ClientEnds, None) => "client ended".into(),
            (Expect::Stay, Some(got)) => {
                // Only the error limit may end a connection that sent nothing fatal.
                assert!(
                    got.is_some_and(|c| allowed_server_closes.contains(&c)),
                    "closed with {got:?}"
                );
                format!("server {}", got.unwrap_or(0))
            }
            (Expect::Stay, None) => {
                ws.send_raw(Message::Close(None)).await;
                let _ = until_close(&mut ws, Duration::from_secs(2)).await;
                "still open (closed by the client)".into()
            }
        };
        *closes.entry(key).or_default() += 1;

        // Next door goes on: a chat gets through every round.
        if connections.is_multiple_of(10) {
            let text = format!("still here {connections}");
            nina.chat(&text).await;
            loop {
                let v = their_customer.expect("chat").await;
                if v["text"] == text {
                    break;
                }
            }
        }
        // The listeners of the attacked session keep up with what it relays.
        while owner.next_within(Duration::ZERO).await.is_some() {}
        while customer.next_within(Duration::ZERO).await.is_some() {}
    }

    // Everyone who was not the attacker is still there and served.
    owner.chat("after the storm").await;
    loop {
        let v = owner.expect("chat").await;
        if v["text"] == "after the storm" {
            break;
        }
    }
    loop {
        let v = customer.expect("chat").await;
        if v["text"] == "after the storm" {
            break;
        }
    }
    nina.chat("and next door").await;
    loop {
        let v = their_customer.expect("chat").await;
        if v["text"] == "and next door" {
            break;
        }
    }
    let (status, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let (status, session) = app.get(&format!("/sessions/{attacked}"), &t.admin).await;
    assert_eq!((status, session["state"].as_str()), (200, Some("open")));
    println!("hostile frames: {sent} frames over {connections} connections; endings: {closes:?}");
    for code in ["server 1007", "server 1008", "server 1009"] {
        assert!(
            closes.contains_key(code),
            "{code} was exercised: {closes:?}"
        );
    }
}
