//! The customer admits each guest: with the account's setting (or the owner's switch) a guest
//! waits in a lobby, the customer sees who asks, invited by whom, with which policy, and admits
//! or refuses; refused or timed-out guests never receive a frame of the session.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn set_rule(app: &TestApp, t: &Tenant, rule: &str) -> (u16, serde_json::Value) {
    app.call(
        "PATCH",
        &format!("/accounts/{}", t.id),
        Some(&t.admin),
        Some(json!({"guest_admission": rule})),
    )
    .await
}

/// A guest's connection that waits in the lobby (its first frame is `lobby`, not `welcome`).
async fn waiting_guest(app: &TestApp, join: &str) -> Ws {
    let (ws, first) = waiting_guest_told(app, join).await;
    assert!(first["timeout_secs"].as_u64().unwrap() >= 1);
    ws
}

#[actix_web::test]
async fn with_admission_always_the_customer_admits_or_refuses_each_guest() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    // The setting: the account's own admins only, three values.
    let (status, body) = set_rule(&app, &t, "sometimes").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_admission"))
    );
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&other.admin),
            Some(json!({"guest_admission": "off"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, account) = set_rule(&app, &t, "always").await;
    assert_eq!(
        (status, account["guest_admission"].as_str()),
        (200, Some("always"))
    );

    let policy = app.policy(&t, "Watch", &["chat", "view"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    assert_eq!(owner.welcome["guest_admission_required"], true);
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut gina = waiting_guest(&app, &join).await;

    // The customer and the technician hear who asks, invited by whom, with which policy.
    let asked = customer.expect("admission_request").await;
    assert_eq!(asked["name"], "Gina");
    assert_eq!(asked["invited_by"]["name"], "Ada Acme");
    assert_eq!(asked["policy"], "Watch");
    assert_eq!(asked["permissions"], json!(["chat", "view"]));
    let gid = asked["participant_id"].as_str().unwrap().to_string();
    owner.expect("admission_request").await;

    // While it waits it gets nothing of the session and sends nothing into it.
    gina.chat("let me in").await;
    gina.send_binary(vec![1, 2, 3]).await;
    customer.send_binary(vec![1, 0xFF, 0xD8]).await;
    owner.chat("only for the people inside").await;
    customer.expect("chat").await;
    gina.expect_silence(Duration::from_millis(400), &[]).await;
    customer
        .expect_silence(Duration::from_millis(200), &[])
        .await;
    // Only the customer decides.
    owner
        .send_json(json!({"type": "admit", "participant_id": gid}))
        .await;
    assert_eq!(owner.expect("error").await["code"], "forbidden");
    customer
        .send_json(json!({"type": "admit", "participant_id": uuid::Uuid::new_v4()}))
        .await;
    assert_eq!(
        customer.expect("error").await["code"],
        "unknown_participant"
    );

    // Refused: closed with 4005, having seen no frame of the session.
    customer
        .send_json(json!({"type": "refuse", "participant_id": gid}))
        .await;
    match gina.next().await {
        Event::Closed(code) => assert_eq!(code, Some(4005)),
        other => panic!("a refused guest got a frame: {other:?}"),
    }
    assert_eq!(
        owner.expect("admission_decided").await["decision"],
        "refused"
    );

    // Admitted: the usual welcome, and everyone sees it join.
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Vic").await;
    let mut vic = waiting_guest(&app, &join).await;
    let asked = customer.expect("admission_request").await;
    let vid = asked["participant_id"].as_str().unwrap().to_string();
    customer
        .send_json(json!({"type": "admit", "participant_id": vid}))
        .await;
    let welcome = vic.expect("welcome").await;
    assert_eq!(welcome["participant_id"], vid.as_str());
    assert_eq!(welcome["role"], "guest");
    assert_eq!(
        owner.expect("participant_joined").await["participant"]["name"],
        "Vic"
    );
    vic.chat("thanks").await;
    assert_eq!(customer.expect("chat").await["text"], "thanks");

    // In the report: who waited, what was decided, by whom.
    let report = app.report(&t.admin, &sid).await;
    let admissions = report["admissions"].as_array().unwrap();
    let decisions: Vec<(&str, &str)> = admissions
        .iter()
        .map(|a| {
            (
                a["guest_name"].as_str().unwrap(),
                a["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(decisions, [("Gina", "refused"), ("Vic", "admitted")]);
    assert_eq!(admissions[1]["decided_by"], customer.id().as_str());
    assert!(
        !report["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Gina"),
        "a refused guest was never a participant"
    );
}

#[actix_web::test]
async fn a_waiting_guest_times_out_and_goes_with_its_inviter() {
    let app = TestApp::spawn_with(|s| s.sessions.admission_timeout_secs = 1).await;
    let t = app.tenant("Acme").await;
    set_rule(&app, &t, "always").await;
    let (_, second) = app.user(&t, "second", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;

    // Nobody admits: sent away after the timeout with 4006.
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Tim").await;
    let mut tim = waiting_guest(&app, &join).await;
    assert_eq!(tim.expect_close().await, Some(4006));
    assert_eq!(
        owner.expect("admission_decided").await["decision"],
        "timed_out"
    );

    // Its inviter leaves while it waits: 4001, as for a guest inside.
    let mut tech = app.ws_technician(&second, &sid).await;
    let (_, join) = app.invite(&second, &sid, &policy, "Ivy").await;
    let mut ivy = waiting_guest(&app, &join).await;
    tech.send_json(json!({"type": "leave"})).await;
    assert_eq!(ivy.expect_close().await, Some(4001));

    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["admissions"][0]["decision"], "timed_out");
    assert_eq!(report["admissions"][1]["decision"], "inviter_left");
}

#[actix_web::test]
async fn the_owner_switches_the_lobby_within_the_account_setting() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, second) = app.user(&t, "second", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;

    // `off` (the default): guests join at once; the owner cannot turn the lobby on.
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    assert_eq!(owner.welcome["guest_admission_required"], false);
    owner
        .send_json(json!({"type": "guest_admission", "required": true}))
        .await;
    assert_eq!(owner.expect("error").await["code"], "forbidden");
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Direct").await;
    assert!(app.ws_guest(&join).await.is_ok());

    // `technician`: off at the start, the owner (only) turns it on for this session.
    set_rule(&app, &t, "technician").await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut tech = app.ws_technician(&second, &sid).await;
    tech.send_json(json!({"type": "guest_admission", "required": true}))
        .await;
    assert_eq!(tech.expect("error").await["code"], "not_owner");
    owner
        .send_json(json!({"type": "guest_admission", "required": true}))
        .await;
    assert_eq!(tech.expect("guest_admission").await["required"], true);
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Wanda").await;
    let _wanda = waiting_guest(&app, &join).await;
    // The customer arrives after the guest: it is told at once.
    let mut customer = app.ws_customer(&key).await;
    assert_eq!(customer.expect("admission_request").await["name"], "Wanda");

    // `always`: the owner cannot turn it off.
    set_rule(&app, &t, "always").await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    owner
        .send_json(json!({"type": "guest_admission", "required": false}))
        .await;
    assert_eq!(owner.expect("error").await["code"], "forbidden");
}

/// A guest waiting in the lobby, with its `lobby` frame.
async fn waiting_guest_told(app: &TestApp, join: &str) -> (Ws, serde_json::Value) {
    let mut ws = Ws::connect_raw(&format!("{}/ws/guest/{join}", app.ws_base), None)
        .await
        .expect("upgrade");
    let lobby = ws.expect("lobby").await;
    (ws, lobby)
}

#[actix_web::test]
async fn a_waiting_guest_whose_network_drops_comes_back_to_its_place_in_the_lobby() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 30).await;
    let t = app.tenant("Acme").await;
    set_rule(&app, &t, "always").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    owner.expect("participant_joined").await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let (gina, lobby) = waiting_guest_told(&app, &join).await;
    // The lobby names the guest's place and how to come back to it.
    let gid = lobby["participant_id"]
        .as_str()
        .expect("its id")
        .to_string();
    let resume_key = lobby["resume_key"].as_str().expect("its key").to_string();
    assert_eq!(lobby["reconnect_grace_secs"], 30);
    let asked = customer.expect("admission_request").await;
    assert_eq!(asked["participant_id"], gid.as_str());
    owner.expect("admission_request").await;
    // A report read stores the redemption (the key's hash) before the drop.
    app.report(&t.admin, &sid).await;

    // Its network drops: it does not withdraw; whoever decides sees it away, and it cannot
    // be admitted while away.
    gina.drop_connection();
    assert_eq!(
        customer.expect("participant_away").await["participant_id"],
        gid.as_str()
    );
    assert_eq!(
        owner.expect("participant_away").await["participant_id"],
        gid.as_str()
    );
    customer
        .send_json(json!({"type": "admit", "participant_id": gid}))
        .await;
    assert_eq!(customer.expect("error").await["code"], "guest_away");
    owner.expect_silence(Duration::from_millis(200), &[]).await;
    // A customer arriving now hears of the request, marked away.
    let mut second = app.ws_customer(&key).await;
    let told = second.expect("admission_request").await;
    assert_eq!(
        (told["participant_id"].as_str(), told["away"].as_bool()),
        (Some(gid.as_str()), Some(true))
    );
    let mut customer = second;
    // A wrong key gets no place.
    let wrong = format!(
        "{}/ws/guest/{join}?resume={gid}&key=sbg_{}",
        app.ws_base,
        "x".repeat(43)
    );
    assert_eq!(Ws::connect_raw(&wrong, None).await.err(), Some(401));

    // Back with its key: in the lobby again, in the same place, still waiting.
    let back = format!(
        "{}/ws/guest/{join}?resume={gid}&key={resume_key}",
        app.ws_base
    );
    let mut gina = Ws::connect_raw(&back, None).await.expect("the upgrade");
    let again = gina.expect("lobby").await;
    assert_eq!(again["participant_id"], gid.as_str());
    assert!(again.get("resume_key").is_none(), "the key is given once");
    assert_eq!(
        customer.expect("participant_back").await["participant_id"],
        gid.as_str()
    );
    customer
        .send_json(json!({"type": "admit", "participant_id": gid}))
        .await;
    let welcome = gina.expect("welcome").await;
    assert_eq!(welcome["participant_id"], gid.as_str());
    assert_eq!(
        owner.expect("admission_decided").await["decision"],
        "admitted"
    );
    gina.chat("thanks").await;
    assert_eq!(owner.expect("chat").await["text"], "thanks");
    let report = app.report(&t.admin, &sid).await;
    let asked: Vec<&serde_json::Value> = report["admissions"].as_array().unwrap().iter().collect();
    assert_eq!(asked.len(), 1, "one request: {report}");
    assert_eq!(asked[0]["decision"], "admitted");
}

#[actix_web::test]
async fn a_waiting_guest_not_back_within_the_grace_has_withdrawn_and_its_key_opens_nothing() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 1).await;
    let t = app.tenant("Acme").await;
    set_rule(&app, &t, "always").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let (gina, lobby) = waiting_guest_told(&app, &join).await;
    let gid = lobby["participant_id"].as_str().unwrap().to_string();
    let resume_key = lobby["resume_key"].as_str().unwrap().to_string();
    customer.expect("admission_request").await;
    app.report(&t.admin, &sid).await;
    gina.drop_connection();
    let decided = customer.expect("admission_decided").await;
    assert_eq!(
        (
            decided["participant_id"].as_str(),
            decided["decision"].as_str()
        ),
        (Some(gid.as_str()), Some("withdrawn"))
    );
    let back = format!(
        "{}/ws/guest/{join}?resume={gid}&key={resume_key}",
        app.ws_base
    );
    let mut late = Ws::connect_raw(&back, None).await.expect("the upgrade");
    assert_eq!(late.expect_close().await, Some(4010));
}
