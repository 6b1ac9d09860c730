//! Bad traffic on the WebSocket: malformed frames, oversize frames, invalid UTF-8, slow readers.

use serde_json::json;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use crate::helpers::{TestApp, eventually};

#[actix_web::test]
async fn malformed_and_unknown_frames_get_an_error_and_the_connection_stays() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let mut ws = app.ws_technician(&t.admin, &sid).await;
    ws.send_text("{not json").await;
    assert_eq!(ws.expect("error").await["code"], "invalid_frame");
    ws.send_json(json!({"type": "chat"})).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_frame");
    ws.send_json(json!({"type": "chat", "text": "   "})).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_frame");
    ws.send_json(json!({"type": "dance"})).await;
    let err = ws.expect("error").await;
    assert_eq!(err["code"], "unknown_type");
    assert!(err["message"].as_str().unwrap().contains("dance"));
    ws.send_binary(vec![9, 1]).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_frame");
    ws.chat("still connected").await;
    assert_eq!(ws.expect("chat").await["text"], "still connected");
}

#[actix_web::test]
async fn the_twentieth_bad_frame_within_a_minute_closes_with_1008_but_forbidden_does_not_count() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let mut ws = app.ws_technician(&t.admin, &sid).await;
    for _ in 0..10 {
        ws.send_binary(vec![1, 0]).await; // technicians may not send screen frames
        assert_eq!(ws.expect("error").await["code"], "forbidden");
    }
    for i in 0..19 {
        ws.send_text("nope").await;
        assert_eq!(
            ws.expect("error").await["code"],
            "invalid_frame",
            "error {i}"
        );
    }
    ws.send_text("nope").await;
    assert_eq!(ws.expect_close().await, Some(1008));
}

#[actix_web::test]
async fn a_text_frame_over_64_kib_closes_with_1009() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let mut ws = app.ws_technician(&t.admin, &sid).await;
    let text = format!(
        "{{\"type\":\"chat\",\"text\":\"{}\"}}",
        "a".repeat(70 * 1024)
    );
    ws.send_text(&text).await;
    assert_eq!(ws.expect_close().await, Some(1009));
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["chat"], json!([]), "nothing of it was relayed");
}

#[actix_web::test]
async fn a_binary_frame_over_1_mib_closes_with_1009() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let mut big = vec![0u8; 1024 * 1024 + 1];
    big[0] = 1;
    customer.send_binary(big).await;
    assert_eq!(customer.expect_close().await, Some(1009));
    let left = owner.expect("participant_left").await;
    assert_eq!(left["participant_id"], customer.id().as_str());
    // Exactly 1 MiB is fine.
    let mut customer = app.ws_customer(&key).await;
    let mut max = vec![7u8; 1024 * 1024];
    max[0] = 1;
    customer.send_binary(max.clone()).await;
    assert_eq!(owner.expect_binary().await.len(), max.len());
}

#[actix_web::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let mut ws = app.ws_technician(&t.admin, &sid).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send_raw(Message::Frame(frame)).await;
    assert_eq!(ws.expect_close().await, Some(1007));
}

#[actix_web::test]
async fn a_client_too_slow_to_read_is_closed_with_4008() {
    let app = TestApp::spawn_with(|s| s.ws.outbound_queue = 4).await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut sleepy = app.ws_technician(&t.admin, &sid).await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let mut bob = app.ws_technician(&bob, &sid).await;
    // Bob keeps reading; only the sleepy technician falls behind.
    actix_web::rt::spawn(async move {
        while let Some(event) = bob.next_within(std::time::Duration::from_secs(30)).await {
            if matches!(event, crate::helpers::Event::Closed(_)) {
                break;
            }
        }
    });
    let mut customer = app.ws_customer(&key).await;
    let mut frame = vec![5u8; 256 * 1024];
    frame[0] = 1;
    let sleepy_id = sleepy.id();
    let gone = || async {
        let (_, view) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
        !view["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == sleepy_id.as_str())
    };
    let mut evicted = false;
    for _ in 0..400 {
        customer.send_binary(frame.clone()).await;
        if gone().await {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "the sleepy technician is dropped");
    assert_eq!(sleepy.expect_close().await, Some(4008));
    assert!(
        eventually(|| async {
            let report = app.report(&t.admin, &sid).await;
            report["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["leave_reason"] == "too_slow")
        })
        .await
    );
    // The session is fine for everyone else.
    customer.chat("still here").await;
    assert_eq!(customer.expect("chat").await["text"], "still here");
}

#[actix_web::test]
async fn a_silent_peer_is_dropped_after_the_client_timeout() {
    let app = TestApp::spawn_with(|s| {
        s.ws.ping_interval_secs = 1;
        s.ws.client_timeout_secs = 2;
    })
    .await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let silent = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    // The customer keeps reading (and so answers pings); the technician reads nothing at all.
    let away = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        customer.expect("participant_away"),
    )
    .await
    .expect("the silent technician is dropped within the timeout");
    assert_eq!(away["participant_id"], silent.id().as_str());
    drop(silent);
}

/// The attack: a customer (an untrusted end user) floods chat into every technician's queue
/// and the report. Beyond the limit nothing is relayed or stored, and the 20th refusal within a
/// minute closes the flooder with 1008.
#[actix_web::test]
async fn chat_beyond_the_rate_is_refused_not_relayed_and_the_flooder_is_closed() {
    let app = TestApp::spawn_with(|s| s.ws.chat_per_sec = 5).await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut tech = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    tech.expect("participant_joined").await;
    let mut refused = 0;
    for i in 0..200 {
        customer.chat(&format!("flood {i}")).await;
    }
    let mut echoed = 0;
    let closed = loop {
        match customer.next().await {
            crate::helpers::Event::Json(v) if v["type"] == "chat" => echoed += 1,
            crate::helpers::Event::Json(v) if v["type"] == "error" => {
                assert_eq!(v["code"], "rate_limited");
                refused += 1;
            }
            crate::helpers::Event::Closed(code) => break code,
            _ => {}
        }
    };
    assert_eq!(closed, Some(1008));
    assert_eq!(refused, 19, "19 answered, the 20th closed");
    assert!(
        (10..=15).contains(&echoed),
        "a burst of 10 passed, not the flood: {echoed}"
    );
    // The technician saw exactly what was relayed, and the report holds exactly that.
    let mut seen = 0;
    while let Some(ev) = tech
        .next_within(std::time::Duration::from_millis(300))
        .await
    {
        if matches!(&ev, crate::helpers::Event::Json(v) if v["type"] == "chat") {
            seen += 1;
        }
    }
    assert_eq!(seen, echoed);
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["chat"].as_array().unwrap().len(), echoed);
}

#[actix_web::test]
async fn stream_bytes_beyond_the_rate_are_dropped_with_rate_limited() {
    let app = TestApp::spawn_with(|s| s.ws.binary_bytes_per_sec = 1000).await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut tech = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    tech.expect("participant_joined").await;
    let mut frame = vec![1u8];
    frame.extend(std::iter::repeat_n(7u8, 999));
    // A burst of twice the rate (2000 bytes) passes; the third frame does not.
    for _ in 0..3 {
        customer.send_binary(frame.clone()).await;
    }
    assert_eq!(customer.expect("error").await["code"], "rate_limited");
    assert_eq!(tech.expect_binary().await.len(), 1000);
    assert_eq!(tech.expect_binary().await.len(), 1000);
    tech.expect_silence(std::time::Duration::from_millis(300), &[])
        .await;
}

/// The attack: a device agent streams telemetry as fast as it can to swamp the database.
#[actix_web::test]
async fn an_agent_flooding_frames_is_refused_then_closed_and_its_latest_telemetry_wins() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "T-1", "android").await;
    let mut agent = app.ws_device(&secret).await.unwrap();
    for battery in 1..=30 {
        agent
            .send_json(json!({"type": "telemetry", "battery": battery}))
            .await;
    }
    agent.send_raw(Message::Close(None)).await;
    // Coalesced: the newest value is written, also when the agent goes away at once.
    let admin = t.admin.clone();
    assert!(
        eventually(|| async {
            let (_, d) = app.get(&format!("/devices/{device}"), &admin).await;
            d["battery"] == 30
        })
        .await
    );
    let mut flooder = app.ws_device(&secret).await.unwrap();
    for _ in 0..120 {
        flooder
            .send_json(json!({"type": "telemetry", "battery": 5}))
            .await;
    }
    let mut refused = 0;
    let code = loop {
        match flooder.next().await {
            crate::helpers::Event::Json(v) if v["type"] == "error" => {
                assert_eq!(v["code"], "rate_limited");
                refused += 1;
            }
            crate::helpers::Event::Closed(code) => break code,
            _ => {}
        }
    };
    assert_eq!((code, refused), (Some(1008), 19));
}
