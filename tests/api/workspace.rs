//! What the technician's workspace stands on: removing a guest, files with their metadata in
//! the report, taking one's own place over on a new connection (`?resume=`), the customer link
//! for every technician, the customer link's own status, and the ended-session filters.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, Ws};

/// A file chunk: channel 3, the transfer id, the data.
fn chunk(transfer: &str, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![3u8];
    frame.extend_from_slice(uuid::Uuid::parse_str(transfer).unwrap().as_bytes());
    frame.extend_from_slice(data);
    frame
}

#[actix_web::test]
async fn the_owner_removes_a_guest_and_nobody_else_can() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, second) = app.user(&t, "second", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&second, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();
    let gid = guest.id();

    // A technician who does not own the session, and the guest itself: not_owner.
    for ws in [&mut tech, &mut guest] {
        ws.send_json(json!({"type": "remove_guest", "participant_id": gid}))
            .await;
        assert_eq!(ws.expect("error").await["code"], "not_owner");
    }
    // The owner cannot remove a technician, the customer, or someone who is not there.
    for (target, code) in [
        (tech.id(), "not_a_guest"),
        (customer.id(), "not_a_guest"),
        (uuid::Uuid::new_v4().to_string(), "unknown_participant"),
    ] {
        owner
            .send_json(json!({"type": "remove_guest", "participant_id": target}))
            .await;
        assert_eq!(owner.expect("error").await["code"], code);
    }
    owner
        .send_json(json!({"type": "remove_guest", "participant_id": gid}))
        .await;
    assert_eq!(guest.expect_close().await, Some(4004));
    let left = customer.expect("participant_left").await;
    assert_eq!(left["participant_id"], gid.as_str());
    assert_eq!(left["reason"], "removed");
    // The technician and the customer stay.
    tech.chat("still here").await;
    assert_eq!(customer.expect("chat").await["text"], "still here");

    let report = app.report(&t.admin, &sid).await;
    let row = report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == gid.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["leave_reason"], "removed");
    assert!(row["left_at"].is_string());
}

#[actix_web::test]
async fn files_reach_their_receivers_within_the_announced_size_and_land_in_the_report() {
    let app = TestApp::spawn_with(|s| s.ws.file_max_bytes = 1000).await;
    let t = app.tenant("Acme").await;
    let viewer = app.policy(&t, "View", &["chat", "view"]).await;
    let filer = app.policy(&t, "Files", &["files"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut tech = app.ws_technician(&t.admin, &sid).await;
    assert_eq!(tech.welcome["file_max_bytes"], 1000);
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &viewer, "Vic").await;
    let mut guest_viewer = app.ws_guest(&join).await.unwrap();
    let (_, join) = app.invite(&t.admin, &sid, &filer, "Fay").await;
    let mut guest_files = app.ws_guest(&join).await.unwrap();

    // Technician → customer: the offer names the sender, then the chunks follow.
    let transfer = uuid::Uuid::new_v4().to_string();
    tech.send_json(
        json!({"type": "file_offer", "transfer_id": transfer, "name": "fix.ps1", "size": 10}),
    )
    .await;
    let offer = customer.expect("file_offer").await;
    assert_eq!(offer["transfer_id"], transfer.as_str());
    assert_eq!(offer["name"], "fix.ps1");
    assert_eq!(offer["size"], 10);
    assert_eq!(offer["from"]["role"], "owner");
    tech.send_binary(chunk(&transfer, b"0123456")).await;
    assert_eq!(customer.expect_binary().await, chunk(&transfer, b"0123456"));
    // Beyond the announced size: refused, not relayed.
    tech.send_binary(chunk(&transfer, b"789AB")).await;
    assert_eq!(tech.expect("error").await["code"], "file_too_large");
    tech.send_binary(chunk(&transfer, b"789")).await;
    assert_eq!(customer.expect_binary().await, chunk(&transfer, b"789"));
    // Someone else's transfer id: forbidden for the guest that holds files too.
    let other = uuid::Uuid::new_v4().to_string();
    tech.send_json(json!({"type": "file_offer", "transfer_id": other, "name": "b.txt", "size": 5}))
        .await;
    customer.expect("file_offer").await;
    guest_files.send_binary(chunk(&other, b"evil")).await;
    assert_eq!(guest_files.expect("error").await["code"], "forbidden");

    // Customer → everyone holding files: the guest with files, not the viewer.
    let back = uuid::Uuid::new_v4().to_string();
    customer
        .send_json(json!({"type": "file_offer", "transfer_id": back, "name": "log.txt", "size": 4}))
        .await;
    assert_eq!(tech.expect("file_offer").await["from"]["role"], "customer");
    assert_eq!(guest_files.expect("file_offer").await["name"], "log.txt");
    customer.send_binary(chunk(&back, b"logs")).await;
    assert_eq!(guest_files.expect_binary().await, chunk(&back, b"logs"));
    guest_viewer
        .expect_silence(Duration::from_millis(300), &["participant_joined"])
        .await;

    // Refusals: no files permission, too large, a bad name, an empty file.
    guest_viewer
        .send_json(json!({"type": "file_offer", "transfer_id": uuid::Uuid::new_v4(), "name": "x", "size": 1}))
        .await;
    assert_eq!(guest_viewer.expect("error").await["code"], "forbidden");
    for (name, size, code) in [
        ("big.iso", 1001, "file_too_large"),
        ("../../etc/passwd", 5, "invalid_frame"),
        ("", 5, "invalid_frame"),
        ("empty.txt", 0, "invalid_frame"),
    ] {
        tech.send_json(json!({"type": "file_offer", "transfer_id": uuid::Uuid::new_v4(), "name": name, "size": size}))
            .await;
        assert_eq!(tech.expect("error").await["code"], code, "{name} {size}");
    }

    let report = app.report(&t.admin, &sid).await;
    let files = report["files"].as_array().unwrap();
    let names: Vec<_> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fix.ps1", "b.txt", "log.txt"]);
    assert_eq!(files[0]["size"], 10);
    assert_eq!(files[0]["from"]["name"], "Ada Acme");
    assert_eq!(files[2]["from"]["role"], "customer");
    // Metadata only: no content anywhere in the report.
    assert!(!report.to_string().contains("0123456"));
}

#[actix_web::test]
async fn a_technician_takes_its_own_place_over_on_a_new_connection() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, other) = app.user(&t, "other", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut first = app.ws_technician(&t.admin, &sid).await;
    let pid = first.id();
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.unwrap();

    // The old connection is still open here (a network that dropped without a close).
    let url = format!("{}/ws/sessions/{sid}?resume={pid}", app.ws_base);
    let mut second = Ws::connect(&url, Some(&t.admin)).await.unwrap();
    assert_eq!(second.id(), pid, "same participant");
    assert_eq!(second.welcome["role"], "owner");
    assert_eq!(first.expect_close().await, Some(1000));
    // Nobody left: the guest stays, the customer sees the same owner back.
    second.chat("back").await;
    assert_eq!(guest.expect("chat").await["text"], "back");
    customer.expect("chat").await;
    guest
        .expect_silence(
            Duration::from_millis(500),
            &["participant_back", "owner_changed"],
        )
        .await;

    // Another user naming this participant gets a place of its own, never the owner's.
    let url = format!("{}/ws/sessions/{sid}?resume={pid}", app.ws_base);
    let intruder = Ws::connect(&url, Some(&other)).await.unwrap();
    assert_ne!(intruder.id(), pid);
    assert_eq!(intruder.welcome["role"], "technician");
    second.chat("still owner").await;
    assert_eq!(guest.expect("chat").await["text"], "still owner");

    let report = app.report(&t.admin, &sid).await;
    let mine: Vec<_> = report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["user_id"] == t.admin_id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "one place, not two: {report}");
    assert!(mine[0]["left_at"].is_null());
}

#[actix_web::test]
async fn every_technician_of_the_session_gets_the_customer_link_and_nobody_else() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (_, anna) = app.user(&t, "anna", &["sessions"]).await;
    let (sid, key) = app.session(&t.admin).await;
    for token in [&t.admin, &anna] {
        let (status, body) = app.get(&format!("/sessions/{sid}"), token).await;
        assert_eq!(status, 200);
        assert!(
            body["customer_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/customer/{key}")),
            "{body}"
        );
        assert!(body["customer_ws_url"].as_str().unwrap().contains(&key));
    }
    let (status, list) = app.get("/sessions", &anna).await;
    assert_eq!(status, 200);
    assert!(list[0]["customer_url"].as_str().unwrap().contains(&key));
    let (status, _) = app.get(&format!("/sessions/{sid}"), &other.admin).await;
    assert_eq!(status, 404);

    // The link's own status, for the customer's page: open, unknown, ended.
    let (status, body) = app
        .call("GET", &format!("/customer-sessions/{key}"), None, None)
        .await;
    assert_eq!((status, body["state"].as_str()), (200, Some("open")));
    assert_eq!(body["session_subject"], "Printer offline");
    let (status, body) = app
        .call("GET", "/customer-sessions/sbc_bogus", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    owner.send_json(json!({"type": "end_session"})).await;
    assert_eq!(owner.expect_close().await, Some(4002));
    let gone = crate::helpers::eventually(|| async {
        app.call("GET", &format!("/customer-sessions/{key}"), None, None)
            .await
            .0
            == 410
    })
    .await;
    assert!(gone, "an ended session's link answers 410");
    let (_, body) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
    assert!(body["customer_url"].is_null(), "{body}");
}

#[actix_web::test]
async fn ended_sessions_filter_by_subject_technician_and_date() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (anna_id, anna) = app.user(&t, "anna", &["sessions"]).await;
    let mut ids = Vec::new();
    for (token, subject) in [
        (&t.admin, "Printer offline"),
        (&anna, "VPN for field staff"),
        (&t.admin, "printer jams"),
    ] {
        let (status, body) = app
            .post("/sessions", token, json!({"subject": subject}))
            .await;
        assert_eq!(status, 201);
        let sid = body["id"].as_str().unwrap().to_string();
        let mut ws = app.ws_technician(token, &sid).await;
        ws.send_json(json!({"type": "end_session"})).await;
        ws.expect_close().await;
        ids.push(sid);
    }
    let subjects = |body: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subject"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    crate::helpers::eventually(|| async {
        app.get("/sessions?state=ended", &t.admin)
            .await
            .1
            .as_array()
            .map(Vec::len)
            == Some(3)
    })
    .await;
    let (status, body) = app.get("/sessions?state=ended&q=PRINTER", &t.admin).await;
    assert_eq!(status, 200);
    assert_eq!(subjects(&body), ["Printer offline", "printer jams"]);
    let (_, body) = app
        .get(
            &format!("/sessions?state=ended&technician={anna_id}"),
            &t.admin,
        )
        .await;
    assert_eq!(subjects(&body), ["VPN for field staff"]);
    let (_, body) = app
        .get(
            "/sessions?state=ended&from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z",
            &t.admin,
        )
        .await;
    assert_eq!(body.as_array().unwrap().len(), 0);
    let (_, body) = app
        .get("/sessions?state=ended&from=2000-01-01T00:00:00Z", &t.admin)
        .await;
    assert_eq!(body.as_array().unwrap().len(), 3);
    // Bad input: a date that is not one, an overlong search, an unknown parameter.
    for bad in [
        "/sessions?state=ended&from=yesterday",
        &format!("/sessions?state=ended&q={}", "x".repeat(201)),
        "/sessions?state=ended&technician=anna",
        "/sessions?state=ended&color=red",
    ] {
        let (status, body) = app.get(bad, &t.admin).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
