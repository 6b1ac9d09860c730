//! The self-service portal and the reference agent, end to end.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use support_broker::agent::{self, DeviceState, Exit};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const PLATFORMS: [&str; 4] = ["ios", "android", "windows", "macos"];

/// The contract's table: action → supported on ios, android, windows, macos.
const TABLE: [(&str, [bool; 4]); 6] = [
    ("lost_mode_on", [true, true, false, false]),
    ("lost_mode_off", [true, true, false, false]),
    ("locate", [true, true, true, false]),
    ("wipe", [true, true, true, true]),
    ("lock", [true, true, false, true]),
    ("reset_passcode", [true, true, false, false]),
];

#[actix_web::test]
async fn every_action_follows_the_platform_table() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (uid, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    for (i, platform) in PLATFORMS.into_iter().enumerate() {
        let device = app.device(&t, &format!("T-{platform}"), platform).await;
        app.link(&t, &device, Some(&uid)).await;
        for (action, row) in TABLE {
            let (status, body) = app
                .post(
                    &format!("/me/devices/{device}/actions"),
                    &user,
                    json!({"action": action, "password": PASSWORD}),
                )
                .await;
            if row[i] {
                assert_eq!(
                    (status, body["status"].as_str()),
                    (202, Some("queued")),
                    "{action} on {platform}"
                );
            } else {
                assert_eq!(
                    (status, body["error"]["code"].as_str()),
                    (422, Some("action_not_supported")),
                    "{action} on {platform}"
                );
            }
        }
    }
    let (status, _) = app
        .post(
            "/me/devices/00000000-0000-0000-0000-000000000000/actions",
            &user,
            json!({"action": "lock"}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, devices) = app.get("/me/devices", &user).await;
    let device = devices[0]["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "explode"}),
        )
        .await;
    assert_eq!(status, 400);
    let audit = app.audit_actions(&t).await;
    assert!(audit.iter().filter(|a| *a == "device.action").count() >= 14);
}

#[actix_web::test]
async fn read_access_looks_and_only_own_devices_are_seen() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (reader_id, reader) = app.self_service_user(&t, "rita", "self-service-read").await;
    let (full_id, full) = app.self_service_user(&t, "fred", "self-service-full").await;
    let (_, nobody) = app.user(&t, "nora", &["devices"]).await;
    let rita_phone = app.device(&t, "R-1", "ios").await;
    let fred_phone = app.device(&t, "F-1", "android").await;
    app.link(&t, &rita_phone, Some(&reader_id)).await;
    app.link(&t, &fred_phone, Some(&full_id)).await;

    let (status, list) = app.get("/me/devices", &reader).await;
    assert_eq!(status, 200);
    let serials: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["R-1"]);
    assert_eq!(list[0]["model"], "");
    let (status, body) = app
        .post(
            &format!("/me/devices/{rita_phone}/actions"),
            &reader,
            json!({"action": "lock"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("read_only"))
    );
    // Another user's device does not exist for the caller.
    for path in [
        format!("/me/devices/{fred_phone}"),
        format!("/me/devices/{fred_phone}/actions/{}", uuid::Uuid::nil()),
    ] {
        let (status, _) = app.get(&path, &reader).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = app
        .post(
            &format!("/me/devices/{fred_phone}/actions"),
            &reader,
            json!({"action": "lock"}),
        )
        .await;
    assert_eq!(status, 404);
    // A command id of another device is not found either.
    let (_, queued) = app
        .post(
            &format!("/me/devices/{fred_phone}/actions"),
            &full,
            json!({"action": "lock"}),
        )
        .await;
    let (status, _) = app
        .get(
            &format!(
                "/me/devices/{rita_phone}/actions/{}",
                queued["command_id"].as_str().unwrap()
            ),
            &reader,
        )
        .await;
    assert_eq!(status, 404);
    // Without a self-service role: 403, whatever the admin areas.
    let (status, body) = app.get("/me/devices", &nobody).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_service_denied"))
    );
    let (status, _) = app.get("/me/devices", "sbt_not_a_token").await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn wipe_needs_the_password_and_a_refused_wipe_sends_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (uid, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "W-1", "android").await;
    app.link(&t, &device, Some(&uid)).await;
    let mut agent = app.ws_device(&secret).await.unwrap();
    for body in [
        json!({"action": "wipe"}),
        json!({"action": "wipe", "password": "wrong password"}),
        json!({"action": "wipe", "password": ""}),
    ] {
        let (status, answer) = app
            .post(&format!("/me/devices/{device}/actions"), &user, body)
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("reauth_required"))
        );
    }
    agent.expect_silence(Duration::from_millis(300), &[]).await;
    let (status, queued) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "wipe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202);
    let frame = agent.expect("command").await;
    assert_eq!(
        (frame["action"].as_str(), frame["id"].clone()),
        (Some("wipe"), queued["command_id"].clone())
    );
    agent
        .send_json(json!({"type": "ack", "command_id": queued["command_id"], "status": "done"}))
        .await;
    // A wiped device's secret ends: it must enroll again.
    assert_eq!(agent.expect_close().await, Some(4003));
    assert_eq!(app.ws_device(&secret).await.err(), Some(401));
}

#[actix_web::test]
async fn lost_mode_carries_a_message_and_a_phone_and_the_history_lists_commands() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (uid, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    let (other_uid, other) = app.self_service_user(&t, "bob", "self-service-full").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "L-1", "ios").await;
    app.link(&t, &device, Some(&uid)).await;
    let bobs = app.device(&t, "L-2", "ios").await;
    app.link(&t, &bobs, Some(&other_uid)).await;
    let mut agent = app.ws_device(&secret).await.unwrap();
    let path = format!("/me/devices/{device}/actions");

    // Bad input is refused and sends nothing.
    for (body, code) in [
        (
            json!({"action": "lost_mode_on", "message": "bell\u{7}"}),
            "invalid_message",
        ),
        (
            json!({"action": "lost_mode_on", "message": "x".repeat(201)}),
            "invalid_message",
        ),
        (
            json!({"action": "lost_mode_on", "phone": "call me"}),
            "invalid_phone",
        ),
        (
            json!({"action": "lock", "message": "hello"}),
            "params_not_allowed",
        ),
        (
            json!({"action": "locate", "phone": "+4930123456"}),
            "params_not_allowed",
        ),
    ] {
        let (status, answer) = app.post(&path, &user, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
    }
    agent.expect_silence(Duration::from_millis(300), &[]).await;

    let (status, queued) = app
        .post(
            &path,
            &user,
            json!({"action": "lost_mode_on", "message": "Please return to the front desk.\nReward!", "phone": "+49 30 1234567"}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let frame = agent.expect("command").await;
    assert_eq!(
        frame["params"]["message"],
        "Please return to the front desk.\nReward!"
    );
    assert_eq!(frame["params"]["phone"], "+49301234567");
    agent
        .send_json(json!({"type": "ack", "command_id": queued["command_id"], "status": "done"}))
        .await;
    let (status, _) = app.post(&path, &user, json!({"action": "locate"})).await;
    assert_eq!(status, 202);
    agent.expect("command").await;

    // The history, newest first, with what each command was sent with.
    assert!(eventually(|| async { app.get(&path, &user).await.1[1]["status"] == "done" }).await);
    let (status, history) = app.get(&path, &user).await;
    assert_eq!(status, 200);
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["locate", "lost_mode_on"]);
    assert_eq!(history[1]["params"]["phone"], "+49301234567");
    // Someone else's device: 404, as for every other call on it.
    let (status, _) = app.get(&path, &other).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&format!("/me/devices/{bobs}/actions"), &user).await;
    assert_eq!(status, 404);
    // A wrong wipe password says that it is wrong.
    let (status, answer) = app
        .post(
            &path,
            &user,
            json!({"action": "wipe", "password": "not it"}),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong"),
        "{answer}"
    );
}

fn watch(state: &agent::SharedState) -> DeviceState {
    state.lock().unwrap().clone()
}

#[actix_web::test]
async fn the_reference_agent_serves_commands_sessions_and_a_wipe() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (uid, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    let (_, tech) = app.user(&t, "tech", &["sessions", "devices"]).await;
    let enrollment = preassigned_phone(&app, &t, "ann").await;
    let dir = tempfile::tempdir().unwrap();
    let state: agent::SharedState = Arc::default();
    let stop = CancellationToken::new();
    let running = tokio::spawn(agent::run(
        agent_options(&app, dir.path(), Some(enrollment)),
        state.clone(),
        stop.clone(),
    ));
    assert!(eventually(|| async { watch(&state).connected }).await);
    let (_, devices) = app.get("/me/devices", &user).await;
    let device = devices[0]["id"].as_str().unwrap().to_string();
    assert_eq!(devices[0]["user_id"], json!(uid));
    assert!(
        eventually(|| async {
            app.get(&format!("/me/devices/{device}"), &user).await.1["battery"] == 64
        })
        .await
    );

    // Lock and lost mode change the agent's state; the commands end done.
    for action in ["lock", "lost_mode_on"] {
        let (status, queued) = app
            .post(
                &format!("/me/devices/{device}/actions"),
                &user,
                json!({"action": action}),
            )
            .await;
        assert_eq!(status, 202);
        let progress = format!(
            "/me/devices/{device}/actions/{}",
            queued["command_id"].as_str().unwrap()
        );
        assert!(
            eventually(|| async { app.get(&progress, &user).await.1["status"] == "done" }).await,
            "{action}"
        );
    }
    let local = watch(&state);
    assert!(local.locked && local.lost_mode);
    let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
    assert_eq!(d["lost_mode"], true);

    // A technician starts a session on the device: the agent joins as the customer.
    let (status, created) = app
        .post(
            "/sessions",
            &tech,
            json!({"subject": "Phone help", "device_id": device}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let session = created["id"].as_str().unwrap().to_string();
    // The agent may join before the technician's socket is up, so its greeting is read from
    // the session's transcript (the report of a live session).
    let greeted =
        eventually(|| async {
            let report = app.report(&tech, &session).await;
            report["chat"].as_array().unwrap().iter().any(|c| {
                c["from"]["role"] == "customer" && c["text"] == "Ann's phone is connected."
            })
        })
        .await;
    assert!(greeted, "the agent joined as the customer and greeted");
    assert!(
        watch(&state)
            .sessions
            .iter()
            .any(|s| s.to_string() == session)
    );
    let mut ws = app.ws_technician(&tech, &session).await;
    // The agent shares its (simulated) screen as SVG images on the screen channel.
    let screen = ws.expect_binary().await;
    assert_eq!(screen[0], 1, "screen channel");
    assert!(screen[1..].starts_with(b"<svg"), "an SVG image");
    assert!(String::from_utf8_lossy(&screen).contains("Ann&apos;s phone"));
    // Remote control: a click and typed keys reach the agent in the documented format, and
    // its next screen shows them.
    use support_broker::domain::input::{InputEvent, encode};
    for event in [
        InputEvent::ButtonDown {
            button: 0,
            x: 32768,
            y: 16384,
        },
        InputEvent::KeyDown { key: "o".into() },
        InputEvent::KeyDown { key: "k".into() },
        InputEvent::KeyDown { key: "<".into() },
    ] {
        let mut frame = vec![2u8];
        frame.extend_from_slice(&encode(&event));
        ws.send_binary(frame).await;
    }
    assert!(
        eventually(|| async { watch(&state).inputs.len() == 4 }).await,
        "{:?}",
        watch(&state).inputs
    );
    assert_eq!(
        watch(&state).inputs,
        [
            "button_down 0 32768,16384",
            "key_down o",
            "key_down k",
            "key_down <"
        ]
    );
    let typed = loop {
        let frame = String::from_utf8_lossy(&ws.expect_binary().await).into_owned();
        if frame.contains("ok&lt;") {
            break frame;
        }
    };
    assert!(
        typed.contains("cx=\"320\" cy=\"100\""),
        "the pointer moved: {typed}"
    );
    let (_, view) = app.get(&format!("/sessions/{session}"), &tech).await;
    assert!(
        view["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["role"] == "customer"),
        "{view}"
    );

    // Wipe: the agent forgets its identity and stops; it comes back only with a new code.
    let (status, _) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "wipe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202);
    let exit = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, Exit::Wiped);
    assert!(watch(&state).wiped);
    assert!(!dir.path().join("identity.json").exists());
    let again = agent::run(
        agent_options(&app, dir.path(), None),
        state.clone(),
        stop.clone(),
    )
    .await;
    assert!(again.is_err(), "no identity without a new code");
    // The wipe's ack, sent just before the agent hung up, is recorded all the same.
    let settled = eventually(|| async {
        let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
        d["lost_mode"] == false && d["online"] == false
    })
    .await;
    let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
    assert!(settled, "after the wipe: {d}");
    stop.cancel();
}

#[actix_web::test]
async fn a_session_on_an_offline_or_unknown_device_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, tech) = app.user(&t, "tech", &["sessions"]).await;
    let device = app.device(&t, "OFF-1", "windows").await;
    let (status, body) = app
        .post(
            "/sessions",
            &tech,
            json!({"subject": "x", "device_id": device}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("device_offline"))
    );
    let other = app.tenant("Other").await;
    let (status, _) = app
        .post(
            "/sessions",
            &other.admin,
            json!({"subject": "x", "device_id": device}),
        )
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn the_agent_command_of_the_binary_enrolls_and_stays_connected() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let code = app.enrollment_code(&t).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("agent.json");
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_support-broker"))
        .args(["agent", "--server", &app.base, "--enroll", &code])
        .args([
            "--serial",
            "CLI-1",
            "--platform",
            "android",
            "--battery",
            "55",
        ])
        .args(["--telemetry-secs", "1", "--identity"])
        .arg(&identity)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let online = eventually(|| async {
        let (_, devices) = app
            .get(&format!("/accounts/{}/devices", t.id), &t.admin)
            .await;
        devices[0]["online"] == true && devices[0]["battery"] == 55
    })
    .await;
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        online,
        "the agent enrolled, connected and reported telemetry"
    );
    assert!(identity.exists(), "the identity is kept for the next start");
    // Without --enroll and without an identity it refuses to start.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_support-broker"))
        .args(["agent", "--server", &app.base, "--identity"])
        .arg(dir.path().join("missing.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

/// POST with an `Idempotency-Key` header.
async fn post_keyed(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

#[actix_web::test]
async fn destructive_actions_need_a_step_up_and_a_repeated_click_is_one_command() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (uid, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "S-1", "ios").await;
    app.link(&t, &device, Some(&uid)).await;
    let mut agent = app.ws_device(&secret).await.unwrap();
    let path = format!("/me/devices/{device}/actions");

    // A passcode reset needs the password now, like a wipe; refusals are audited too.
    for (body, reason) in [
        (json!({"action": "reset_passcode"}), "no_password"),
        (
            json!({"action": "reset_passcode", "password": "guess"}),
            "wrong_password",
        ),
    ] {
        let (status, answer) = app.post(&path, &user, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("reauth_required"))
        );
        let (_, log) = app
            .get(
                &format!("/accounts/{}/audit?action=device.", t.id),
                &t.admin,
            )
            .await;
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "device.action_refused"
                    && e["details"]["reason"] == reason
                    && e["details"]["action"] == "reset_passcode"),
            "{log}"
        );
    }
    agent.expect_silence(Duration::from_millis(300), &[]).await;
    let (status, _) = app
        .post(
            &path,
            &user,
            json!({"action": "reset_passcode", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(agent.expect("command").await["action"], "reset_passcode");

    // A repeated click (ten at once, the same key) is one command; the agent gets it once.
    let sends = (0..10).map(|_| {
        post_keyed(
            &app,
            &path,
            &user,
            "lock-click-1",
            json!({"action": "lock"}),
        )
    });
    let answers = futures_util::future::join_all(sends).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["command_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one command for one key: {answers:?}");
    assert_eq!(agent.expect("command").await["action"], "lock");
    agent.expect_silence(Duration::from_millis(300), &[]).await;
    // The key of another command, a bad key: refused.
    let (status, body) = post_keyed(
        &app,
        &path,
        &user,
        "lock-click-1",
        json!({"action": "locate"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    for bad in ["", "has space", &"k".repeat(65)] {
        let res = app
            .http
            .post(app.url(&path))
            .bearer_auth(&user)
            .header("Idempotency-Key", bad)
            .json(&json!({"action": "lock"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "{bad:?}");
    }
    // Another key is another command.
    let (status, other) = post_keyed(
        &app,
        &path,
        &user,
        "lock-click-2",
        json!({"action": "lock"}),
    )
    .await;
    assert_eq!(status, 202);
    assert!(!ids.contains(other["command_id"].as_str().unwrap()));

    // A second factor proven at this login in the last five minutes stands in for the password.
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{uid}/login-options"),
            Some(&t.admin),
            Some(json!({"two_factor": "email"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, challenge) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "ann", "password": PASSWORD})),
        )
        .await;
    let code = last_mail_code(&app, "ann@example.com");
    let (status, verified) = app
        .call(
            "POST",
            "/auth/verify",
            None,
            Some(json!({"challenge_id": challenge["second_factor"]["challenge_id"], "code": code})),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    let fresh = verified["token"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(&path, &fresh, json!({"action": "reset_passcode"}))
        .await;
    assert_eq!(status, 202, "{body}");
    // The old token (a login without a second factor) still needs the password.
    let (status, _) = app
        .post(&path, &user, json!({"action": "reset_passcode"}))
        .await;
    assert_eq!(status, 403);
    // Six minutes later the second factor is stale.
    let db = app.db().await;
    let six_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(6);
    support_broker::store::db::query(
        "UPDATE auth_tokens SET second_factor_at = ? WHERE second_factor_at IS NOT NULL",
    )
    .bind(six_minutes_ago)
    .execute(&db)
    .await
    .unwrap();
    let (status, _) = app
        .post(&path, &fresh, json!({"action": "reset_passcode"}))
        .await;
    assert_eq!(status, 403);
}
