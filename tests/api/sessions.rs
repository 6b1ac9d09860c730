//! The rules of a live session, each in its own test.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Event, TestApp, eventually};

#[actix_web::test]
async fn creator_joins_as_owner_with_all_permissions() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let owner = app.ws_technician(&t.admin, &sid).await;
    let w = &owner.welcome;
    assert_eq!(w["role"], "owner");
    assert_eq!(w["session_id"], sid.as_str());
    assert_eq!(w["owner_id"], w["participant_id"]);
    assert_eq!(
        w["permissions"],
        json!(["chat", "view", "control", "files"])
    );
    assert_eq!(w["participants"][0]["user_id"], t.admin_id.as_str());
}

#[actix_web::test]
async fn technician_of_another_account_gets_404_for_the_session() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (sid, _) = app.session(&acme.admin).await;
    let refused = crate::helpers::Ws::connect(
        &format!("{}/ws/sessions/{sid}", app.ws_base),
        Some(&other.admin),
    )
    .await;
    assert_eq!(refused.err(), Some(404));
    let (status, body) = app.get(&format!("/sessions/{sid}"), &other.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let (status, _) = app
        .get(&format!("/sessions/{sid}/report"), &other.admin)
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn websocket_without_credential_is_refused_with_401() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let url = format!("{}/ws/sessions/{sid}", app.ws_base);
    assert_eq!(
        crate::helpers::Ws::connect(&url, None).await.err(),
        Some(401)
    );
    assert_eq!(
        crate::helpers::Ws::connect(&url, Some("sbt_not-a-token"))
            .await
            .err(),
        Some(401)
    );
    let unknown = format!("{}/ws/customer/sbc_unknown", app.ws_base);
    assert_eq!(
        crate::helpers::Ws::connect(&unknown, None).await.err(),
        Some(404)
    );
}

#[actix_web::test]
async fn user_without_the_sessions_area_cannot_create_or_join() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, clerk) = app.user(&t, "clerk", &["reports"]).await;
    let (status, body) = app.post("/sessions", &clerk, json!({"subject": "x"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );
    let (sid, _) = app.session(&t.admin).await;
    let url = format!("{}/ws/sessions/{sid}", app.ws_base);
    assert_eq!(
        crate::helpers::Ws::connect(&url, Some(&clerk)).await.err(),
        Some(403)
    );
}

#[actix_web::test]
async fn chat_reaches_everyone_in_one_order_with_the_sender_echoed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    owner.expect("participant_joined").await;
    owner.chat("hello").await;
    customer.chat("hi there").await;
    let mut transcripts = Vec::new();
    for ws in [&mut owner, &mut customer] {
        let first = ws.expect("chat").await;
        let second = ws.expect("chat").await;
        for m in [&first, &second] {
            assert!(m["id"].is_string() && m["at"].is_string());
            let expected_role = if m["text"] == "hello" {
                "owner"
            } else {
                "customer"
            };
            assert_eq!(m["from"]["role"], expected_role);
        }
        transcripts.push([first, second]);
    }
    // Both see both messages, in the same order, with the same ids (the sender's echo too).
    assert_eq!(transcripts[0], transcripts[1]);
    let mut texts: Vec<&str> = transcripts[0]
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    texts.sort_unstable();
    assert_eq!(texts, vec!["hello", "hi there"]);
}

#[actix_web::test]
async fn ownership_transfers_to_a_technician_but_not_to_a_guest() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app
        .policy(&t, "Full", &["chat", "view", "control", "files"])
        .await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let guest = app.ws_guest(&join).await.unwrap();

    owner
        .send_json(json!({"type": "transfer_ownership", "to": guest.id()}))
        .await;
    let err = owner.expect("error").await;
    assert_eq!(err["code"], "guest_cannot_own");

    owner
        .send_json(json!({"type": "transfer_ownership", "to": tech.id()}))
        .await;
    let changed = tech.expect("owner_changed").await;
    assert_eq!(changed["owner_id"], tech.id().as_str());
    assert_eq!(
        owner.expect("owner_changed").await["owner_id"],
        tech.id().as_str()
    );

    // The former owner can no longer hand over; the new owner's user owns it over HTTP too.
    owner
        .send_json(json!({"type": "transfer_ownership", "to": owner.id()}))
        .await;
    assert_eq!(owner.expect("error").await["code"], "not_owner");
    let (_, view) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
    assert_ne!(view["owner_user_id"], t.admin_id.as_str());
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["ownership"][0]["from"], owner.id().as_str());
    assert_eq!(report["ownership"][0]["to"], tech.id().as_str());
}

#[actix_web::test]
async fn a_guest_cannot_transfer_or_end_the_session() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app
        .policy(&t, "Full", &["chat", "view", "control", "files"])
        .await;
    let (sid, _) = app.session(&t.admin).await;
    let owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    assert_eq!(guest.welcome["role"], "guest");
    guest
        .send_json(json!({"type": "transfer_ownership", "to": guest.id()}))
        .await;
    assert_eq!(guest.expect("error").await["code"], "not_owner");
    guest.send_json(json!({"type": "end_session"})).await;
    assert_eq!(guest.expect("error").await["code"], "not_owner");
    drop(owner);
}

#[actix_web::test]
async fn when_the_owner_leaves_the_technician_present_longest_owns_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (_, carl) = app.user(&t, "carl", &["sessions"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut first = app.ws_technician(&bob, &sid).await;
    let mut second = app.ws_technician(&carl, &sid).await;
    owner.send_json(json!({"type": "leave"})).await;
    assert_eq!(owner.expect_close().await, Some(1000));
    let left = second.expect("participant_left").await;
    assert_eq!(
        (left["participant_id"].as_str(), left["reason"].as_str()),
        (Some(owner.id().as_str()), Some("left"))
    );
    assert_eq!(
        second.expect("owner_changed").await["owner_id"],
        first.id().as_str()
    );
    assert_eq!(
        first.expect("owner_changed").await["owner_id"],
        first.id().as_str()
    );
}

#[actix_web::test]
async fn owner_ends_the_session_for_everyone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    tech.send_json(json!({"type": "end_session"})).await;
    assert_eq!(tech.expect("error").await["code"], "not_owner");
    owner.send_json(json!({"type": "end_session"})).await;
    for ws in [&mut owner, &mut tech, &mut customer] {
        assert_eq!(ws.expect("session_ended").await["reason"], "ended_by_owner");
        assert_eq!(ws.expect_close().await, Some(4002));
    }
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["session"]["end_reason"], "ended_by_owner");
    assert!(report["session"]["ended_at"].is_string());
    // An ended session takes no one in.
    let url = format!("{}/ws/sessions/{sid}", app.ws_base);
    assert_eq!(
        crate::helpers::Ws::connect(&url, Some(&t.admin))
            .await
            .err(),
        Some(410)
    );
    let (_, listed) = app.get("/sessions", &t.admin).await;
    assert_eq!(listed, json!([]));
}

#[actix_web::test]
async fn when_the_last_technician_leaves_guests_are_closed_and_the_session_ends() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let (_, join_a) = app.invite(&t.admin, &sid, &policy, "Guest of owner").await;
    let (_, join_b) = app.invite(&bob, &sid, &policy, "Guest of bob").await;
    let mut guest_a = app.ws_guest(&join_a).await.unwrap();
    let mut guest_b = app.ws_guest(&join_b).await.unwrap();
    let mut customer = app.ws_customer(&key).await;

    owner.send_json(json!({"type": "leave"})).await;
    assert_eq!(guest_a.expect_close().await, Some(4001));
    tech.send_json(json!({"type": "leave"})).await;
    // Bob's guest goes with its inviter (4001) even though the session ends at that moment.
    assert_eq!(guest_b.expect_close().await, Some(4001));
    assert_eq!(
        customer.expect("session_ended").await["reason"],
        "no_technician"
    );
    assert_eq!(customer.expect_close().await, Some(4002));
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["session"]["end_reason"], "no_technician");
}

#[actix_web::test]
async fn inviter_leaving_disconnects_exactly_its_guests() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let (_, bobs_join) = app.invite(&bob, &sid, &policy, "Guest of bob").await;
    let (_, owners_join) = app.invite(&t.admin, &sid, &policy, "Guest of owner").await;
    let (pending_id, pending_join) = app.invite(&bob, &sid, &policy, "Not yet there").await;
    let mut bobs_guest = app.ws_guest(&bobs_join).await.unwrap();
    let mut owners_guest = app.ws_guest(&owners_join).await.unwrap();

    tech.send_json(json!({"type": "leave"})).await;
    assert_eq!(bobs_guest.expect_close().await, Some(4001));
    let left = owner.expect("participant_left").await;
    assert_eq!(left["participant_id"], tech.id().as_str());
    let left = owner.expect("participant_left").await;
    assert_eq!(
        (left["participant_id"].as_str(), left["reason"].as_str()),
        (Some(bobs_guest.id().as_str()), Some("inviter_left"))
    );

    // The owner's guest stays and still chats.
    owner.chat("still here?").await;
    assert_eq!(owners_guest.expect("chat").await["text"], "still here?");
    // Bob's pending invitation was revoked.
    let code = app.ws_guest(&pending_join).await.err();
    assert_eq!(code, Some(410));
    let (_, body) = app
        .call("GET", &format!("/join/{pending_join}"), None, None)
        .await;
    assert_eq!(body["error"]["code"], "invitation_revoked");
    let report = app.report(&t.admin, &sid).await;
    let pending = report["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == pending_id.as_str())
        .unwrap();
    assert_eq!(pending["outcome"], "revoked");
}

#[actix_web::test]
async fn chat_only_guest_input_frame_is_forbidden_and_reaches_nobody() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    assert_eq!(guest.welcome["permissions"], json!(["chat"]));

    guest.send_binary(vec![2, 0x41, 0x42]).await;
    let err = guest.expect("error").await;
    assert_eq!(err["code"], "forbidden");
    guest.send_binary(vec![3, 1, 2, 3]).await;
    assert_eq!(guest.expect("error").await["code"], "forbidden");
    // The connection stays and the customer got no input.
    guest.chat("ok").await;
    assert_eq!(guest.expect("chat").await["text"], "ok");
    customer
        .expect_silence(Duration::from_millis(300), &["participant_joined", "chat"])
        .await;
    // A technician's input does reach the customer.
    owner.send_binary(vec![2, 9, 9]).await;
    assert_eq!(customer.expect_binary().await, vec![2, 9, 9]);
}

#[actix_web::test]
async fn view_guest_receives_screen_frames_and_a_chat_only_guest_does_not() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let viewing = app.policy(&t, "View", &["chat", "view"]).await;
    let chatting = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join_view) = app.invite(&t.admin, &sid, &viewing, "Viewer").await;
    let (_, join_chat) = app.invite(&t.admin, &sid, &chatting, "Chatter").await;
    let mut viewer = app.ws_guest(&join_view).await.unwrap();
    let mut chatter = app.ws_guest(&join_chat).await.unwrap();
    let mut customer = app.ws_customer(&key).await;

    let frame: Vec<u8> = std::iter::once(1u8)
        .chain((0..4096).map(|i| (i % 251) as u8))
        .collect();
    customer.send_binary(frame.clone()).await;
    assert_eq!(viewer.expect_binary().await, frame);
    assert_eq!(owner.expect_binary().await, frame);
    chatter
        .expect_silence(Duration::from_millis(300), &["participant_joined"])
        .await;
    // A technician may not send screen frames.
    owner.send_binary(vec![1, 0]).await;
    assert_eq!(owner.expect("error").await["code"], "forbidden");
}

#[actix_web::test]
async fn files_flow_between_file_holders_and_the_customer() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let files = app.policy(&t, "Files", &["files"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &files, "Filer").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    let mut customer = app.ws_customer(&key).await;
    guest.send_binary(vec![3, 7, 7]).await;
    assert_eq!(customer.expect_binary().await, vec![3, 7, 7]);
    customer.send_binary(vec![3, 8]).await;
    assert_eq!(guest.expect_binary().await, vec![3, 8]);
    // A files-only guest cannot chat.
    guest.chat("hi").await;
    assert_eq!(guest.expect("error").await["code"], "forbidden");
}

#[actix_web::test]
async fn a_technician_reconnecting_within_the_grace_keeps_ownership_and_guests() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 5).await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    let owner_pid = owner.id();

    owner.drop_connection();
    assert_eq!(
        tech.expect("participant_away").await["participant_id"],
        owner_pid.as_str()
    );
    let mut back = app.ws_technician(&t.admin, &sid).await;
    assert_eq!(back.id(), owner_pid);
    assert_eq!(back.welcome["role"], "owner");
    assert_eq!(back.welcome["owner_id"], owner_pid.as_str());
    assert_eq!(
        tech.expect("participant_back").await["participant_id"],
        owner_pid.as_str()
    );
    // The guest was never dropped and still talks to its inviter.
    back.chat("welcome back").await;
    assert_eq!(guest.expect("chat").await["text"], "welcome back");
}

#[actix_web::test]
async fn a_technician_not_back_within_the_grace_leaves_and_its_guests_go() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 1).await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&bob, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    let owner_pid = owner.id();
    owner.drop_connection();
    assert_eq!(guest.expect_close().await, Some(4001));
    let left = tech.expect("participant_left").await;
    assert_eq!(
        (left["participant_id"].as_str(), left["reason"].as_str()),
        (Some(owner_pid.as_str()), Some("disconnected"))
    );
    assert_eq!(
        tech.expect("owner_changed").await["owner_id"],
        tech.id().as_str()
    );
}

#[actix_web::test]
async fn session_state_over_http_lists_participants() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let _customer = app.ws_customer(&key).await;
    let (status, view) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
    assert_eq!(status, 200);
    assert_eq!(view["state"], "open");
    assert_eq!(view["owner_user_id"], t.admin_id.as_str());
    let roles: Vec<&str> = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["owner", "customer"]);
    let (_, list) = app.get("/sessions", &t.admin).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn an_idle_client_receives_a_pushed_event_promptly() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    owner.expect("participant_joined").await;
    for i in 0..20 {
        customer.chat(&format!("m{i}")).await;
        match owner.next_within(Duration::from_secs(1)).await {
            Some(Event::Json(v)) => assert_eq!(v["text"], format!("m{i}")),
            other => panic!("chat {i} not pushed within 1 s: {other:?}"),
        }
        let _ = customer.expect("chat").await;
    }
}

#[actix_web::test]
async fn the_report_holds_participants_invitations_chat_ownership_and_end() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Support view", &["chat", "view"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let tech = app.ws_technician(&bob, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let (inv_id, join) = app.invite(&t.admin, &sid, &policy, "Gina Guest").await;
    let guest = app.ws_guest(&join).await.unwrap();
    owner.chat("hello all").await;
    customer.chat("thanks").await;
    customer.expect("chat").await;
    customer.expect("chat").await;

    // Readable during the session.
    let live = app.report(&t.admin, &sid).await;
    assert_eq!(live["session"]["state"], "open");
    assert_eq!(live["chat"].as_array().unwrap().len(), 2);
    // Chat after a live read lands after what that read saw.
    customer.chat("still there?").await;
    customer.expect("chat").await;

    owner
        .send_json(json!({"type": "transfer_ownership", "to": tech.id()}))
        .await;
    owner.expect("owner_changed").await;
    owner.send_json(json!({"type": "leave"})).await;
    owner.expect_close().await;

    let report = app.report(&t.admin, &sid).await;
    let parts = report["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    let by_id = |id: &str| parts.iter().find(|p| p["id"] == id).unwrap().clone();
    let o = by_id(&owner.id());
    assert_eq!(o["user_id"], t.admin_id.as_str());
    assert_eq!(o["leave_reason"], "left");
    assert!(o["joined_at"].is_string() && o["left_at"].is_string());
    let g = by_id(&guest.id());
    assert_eq!(
        (g["name"].as_str(), g["role"].as_str()),
        (Some("Gina Guest"), Some("guest"))
    );
    assert_eq!(g["leave_reason"], "inviter_left");
    assert_eq!(g["user_id"], json!(null));
    assert_eq!(by_id(&tech.id())["role"], "owner");

    let inv = &report["invitations"][0];
    assert_eq!(inv["id"], inv_id.as_str());
    assert_eq!(inv["inviter_id"], owner.id().as_str());
    assert_eq!(inv["guest_name"], "Gina Guest");
    assert_eq!(inv["policy"]["name"], "Support view");
    assert_eq!(inv["comment"], "please help");
    assert_eq!(inv["outcome"], "redeemed");

    let chat = report["chat"].as_array().unwrap();
    assert_eq!(chat[0]["text"], "hello all");
    assert_eq!(chat[0]["from"]["role"], "owner");
    assert_eq!(chat[1]["from"]["name"], "Customer");
    let texts: Vec<&str> = chat.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hello all", "thanks", "still there?"]);
    assert_eq!(report["ownership"][0]["to"], tech.id().as_str());

    tech_leave_and_check_end(&app, &t.admin, &sid, tech).await;
}

async fn tech_leave_and_check_end(
    app: &TestApp,
    token: &str,
    sid: &str,
    mut tech: crate::helpers::Ws,
) {
    tech.send_json(json!({"type": "leave"})).await;
    tech.expect_close().await;
    assert!(
        eventually(|| async {
            app.report(token, sid).await["session"]["end_reason"] == "no_technician"
        })
        .await,
        "session ends when the last technician leaves"
    );
}

#[cfg(test)]
#[actix_web::test]
async fn a_panicking_session_closes_its_sockets_with_1011_and_others_run_on() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (doomed, key) = app.session(&t.admin).await;
    let (healthy, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &doomed).await;
    let mut customer = app.ws_customer(&key).await;
    let mut other = app.ws_technician(&t.admin, &healthy).await;

    owner.chat(support_broker::TEST_PANIC_TEXT).await;
    assert_eq!(owner.expect_close().await, Some(1011));
    assert_eq!(customer.expect_close().await, Some(1011));
    // The registry forgot it, the report says it failed, and the other session still relays.
    let url = format!("{}/ws/sessions/{doomed}", app.ws_base);
    assert_eq!(
        crate::helpers::Ws::connect(&url, Some(&t.admin))
            .await
            .err(),
        Some(410)
    );
    assert!(
        eventually(|| async {
            app.report(&t.admin, &doomed).await["session"]["end_reason"] == "failed"
        })
        .await
    );
    other.chat("still alive").await;
    assert_eq!(other.expect("chat").await["text"], "still alive");
}
