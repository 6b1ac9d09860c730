//! Devices: admin CRUD within groups, linking (manual, CSV, pre-assignment), enrollment and
//! the agent's WebSocket with its commands and telemetry.

use serde_json::{Value, json};

use crate::helpers::*;

async fn import(app: &TestApp, t: &Tenant, csv: impl Into<reqwest::Body>) -> (u16, Value) {
    let res = app
        .http
        .post(app.url(&format!("/accounts/{}/devices/import", t.id)))
        .bearer_auth(&t.admin)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn device_user(app: &TestApp, t: &Tenant, device: &str) -> Value {
    let (status, body) = app.get(&format!("/devices/{device}"), &t.admin).await;
    assert_eq!(status, 200, "{body}");
    body["user_id"].clone()
}

#[actix_web::test]
async fn admins_manage_devices_and_see_only_their_groups() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, g1) = app
        .post(
            &format!("/accounts/{}/groups", t.id),
            &t.admin,
            json!({"name": "Berlin"}),
        )
        .await;
    let (_, g2) = app
        .post(
            &format!("/accounts/{}/groups", t.id),
            &t.admin,
            json!({"name": "Munich"}),
        )
        .await;
    let mut ids = Vec::new();
    for (serial, group) in [("B-1", &g1), ("M-1", &g2)] {
        let (status, body) = app
            .post(
                &format!("/accounts/{}/devices", t.id),
                &t.admin,
                json!({"name": serial, "serial": serial, "platform": "android",
                       "model": "Pixel 9", "group_id": group["id"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["platform"], "android");
        assert_eq!(body["lost_mode"], false);
        assert_eq!(body["online"], false);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    // The serial is unique in the account.
    let (status, body) = app
        .post(
            &format!("/accounts/{}/devices", t.id),
            &t.admin,
            json!({"name": "again", "serial": "B-1", "platform": "ios"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("serial_taken"))
    );
    // Bad input changes nothing.
    for bad in [
        json!({"name": "x", "serial": "has space", "platform": "ios"}),
        json!({"name": "", "serial": "E-1", "platform": "ios"}),
        json!({"name": "x", "serial": "E-2", "platform": "ios", "group_id": uuid::Uuid::nil()}),
        json!({"name": "x", "serial": "E-4", "platform": "ios", "model": "two\nlines"}),
        json!({"name": "x", "serial": "E-5", "platform": "ios", "os_version": "17\u{0}"}),
    ] {
        let (status, _) = app
            .post(&format!("/accounts/{}/devices", t.id), &t.admin, bad)
            .await;
        assert_eq!(status, 422);
    }
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices", t.id),
            &t.admin,
            json!({"name": "x", "serial": "E-3", "platform": "blackberry"}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, all) = app
        .get(&format!("/accounts/{}/devices", t.id), &t.admin)
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    // A technician limited to Berlin sees Berlin's device only.
    let (tech_id, tech) = app.user(&t, "tech", &["devices"]).await;
    let rights = json!({"areas": ["devices"], "objects": {"create": true, "edit": true, "delete": true},
                        "groups": [g1["id"]], "roles": []});
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{tech_id}/rights"),
            Some(&t.admin),
            Some(rights),
        )
        .await;
    assert_eq!(status, 200);
    let (_, seen) = app.get(&format!("/accounts/{}/devices", t.id), &tech).await;
    let serials: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["B-1"]);
    let (status, _) = app.get(&format!("/devices/{}", ids[1]), &tech).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call("DELETE", &format!("/devices/{}", ids[1]), Some(&tech), None)
        .await;
    assert_eq!(status, 404);

    // Edit, and another account never sees the device.
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/devices/{}", ids[0]),
            Some(&t.admin),
            Some(json!({"name": "Reception phone", "os_version": "15"})),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("Reception phone"))
    );
    let other = app.tenant("Other").await;
    for (method, path) in [
        ("GET", format!("/devices/{}", ids[0])),
        ("PATCH", format!("/devices/{}", ids[0])),
        ("DELETE", format!("/devices/{}", ids[0])),
    ] {
        let (status, _) = app
            .call(method, &path, Some(&other.admin), Some(json!({})))
            .await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (status, _) = app
        .get(&format!("/accounts/{}/devices", t.id), &other.admin)
        .await;
    assert_eq!(status, 404);
    // Pre-assigning the serial of a device in an unseen group is refused; nothing is linked.
    let (status, _) = app
        .post(
            &format!("/accounts/{}/enrollments", t.id),
            &tech,
            json!({"serial": "M-1", "username": "tech"}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, m1) = app.get(&format!("/devices/{}", ids[1]), &t.admin).await;
    assert_eq!(m1["user_id"], Value::Null);
    let (_, no_devices) = app.user(&t, "nodev", &["sessions"]).await;
    let (status, _) = app.get(&format!("/devices/{}", ids[0]), &no_devices).await;
    assert_eq!(status, 403);

    let (status, _) = app
        .call(
            "DELETE",
            &format!("/devices/{}", ids[0]),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.get(&format!("/devices/{}", ids[0]), &t.admin).await;
    assert_eq!(status, 404);
    let audit = app.audit_actions(&t).await;
    for action in ["device.created", "device.changed", "device.deleted"] {
        assert!(audit.iter().any(|a| a == action), "{action} in {audit:?}");
    }
}

#[actix_web::test]
async fn devices_are_linked_by_hand_and_the_link_is_checked() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let device = app.device(&t, "S-1", "ios").await;
    let (ann, _) = app.user(&t, "ann", &[]).await;
    app.link(&t, &device, Some(&ann)).await;
    assert_eq!(device_user(&app, &t, &device).await, json!(ann));
    // Another account's user cannot be linked; nothing changes.
    let other = app.tenant("Other").await;
    let (stranger, _) = app.user(&other, "stranger", &[]).await;
    let (status, body) = app
        .call(
            "PUT",
            &format!("/devices/{device}/user"),
            Some(&t.admin),
            Some(json!({"user_id": stranger})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_user"))
    );
    assert_eq!(device_user(&app, &t, &device).await, json!(ann));
    app.link(&t, &device, None).await;
    assert_eq!(device_user(&app, &t, &device).await, Value::Null);
    assert!(
        app.audit_actions(&t)
            .await
            .iter()
            .any(|a| a == "device.linked")
    );
}

#[actix_web::test]
async fn csv_import_reports_every_row_and_refuses_bad_files_whole() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let s1 = app.device(&t, "S1", "ios").await;
    let s2 = app.device(&t, "S2", "android").await;
    let (ann, _) = app.user(&t, "ann", &[]).await;
    app.user(&t, "bob", &[]).await;

    // A bad header and a malformed row change nothing.
    let (status, body) = import(&app, &t, "serial;username\nS1;ann\n").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_csv_header"))
    );
    let (status, body) = import(&app, &t, "serial,username\nS1,ann\nS2\n").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_csv"))
    );
    assert_eq!(device_user(&app, &t, &s1).await, Value::Null);
    // Over 10 MB: refused whole.
    let mut big = String::from("serial,username\n");
    while big.len() <= 10 * 1024 * 1024 {
        big.push_str("S1,ann\n");
    }
    let (status, body) = import(&app, &t, big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("file_too_large"))
    );
    assert_eq!(device_user(&app, &t, &s1).await, Value::Null);

    let csv = "serial,username\nS1,ann\nS9,ann\nS2,nobody\nS1,bob\n";
    let (status, report) = import(&app, &t, csv).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!([
            {"line": 2, "serial": "S1", "username": "ann", "outcome": "linked"},
            {"line": 3, "serial": "S9", "username": "ann", "outcome": "unknown_serial"},
            {"line": 4, "serial": "S2", "username": "nobody", "outcome": "unknown_user"},
            {"line": 5, "serial": "S1", "username": "bob", "outcome": "duplicate"},
        ])
    );
    assert_eq!(device_user(&app, &t, &s1).await, json!(ann));
    assert_eq!(device_user(&app, &t, &s2).await, Value::Null);
    assert!(
        app.audit_actions(&t)
            .await
            .iter()
            .any(|a| a == "device.imported")
    );
    // Without the devices area: 403, and nothing changes.
    let (_, tech) = app.user(&t, "tech", &["sessions"]).await;
    let (status, _) = import(
        &app,
        &Tenant {
            admin: tech,
            id: t.id.clone(),
            admin_id: t.admin_id.clone(),
        },
        "serial,username\nS2,ann\n",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(device_user(&app, &t, &s2).await, Value::Null);
    // Another account cannot import into this one.
    let other = app.tenant("Other").await;
    let (status, _) = import(
        &app,
        &Tenant {
            admin: other.admin.clone(),
            ..t
        },
        "serial,username\n",
    )
    .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn enrollment_codes_are_single_use_and_preassignment_links_on_enrollment() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (ann, _) = app.user(&t, "ann", &[]).await;
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollments", t.id),
            &t.admin,
            json!({"serial": "P-1", "username": "ann"}),
        )
        .await;
    assert_eq!(
        (status, body["linked_device_id"].clone()),
        (201, Value::Null),
        "{body}"
    );
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollments", t.id),
            &t.admin,
            json!({"serial": "P-2", "username": "nobody"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_user"))
    );

    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "P-1", "android").await;
    assert!(secret.len() >= 22, "a secret of at least 128 bits");
    let (_, d) = app.get(&format!("/devices/{device}"), &t.admin).await;
    assert_eq!(
        (d["user_id"].clone(), d["model"].as_str()),
        (json!(ann), Some("Pixel 9"))
    );

    // Used twice: 410; unknown: 404; bad input: 422 and the code is not used up.
    let enroll = |code: String, serial: &'static str| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/enroll",
                None,
                Some(json!({"code": code, "serial": serial, "platform": "ios", "name": "x"})),
            )
            .await
        }
    };
    let (status, body) = enroll(code.clone(), "P-3").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("enrollment_code_used"))
    );
    let (status, _) = enroll("sbe_nonsense".into(), "P-3").await;
    assert_eq!(status, 404);
    let fresh = app.enrollment_code(&t).await;
    let (status, _) = enroll(fresh.clone(), "bad serial").await;
    assert_eq!(status, 422);
    let (status, _) = enroll(fresh, "P-3").await;
    assert_eq!(status, 201);
    // An expired code: time is moved on in the database itself.
    let stale = app.enrollment_code(&t).await;
    let db = app.db().await;
    support_broker::store::db::query(
        "UPDATE enrollment_codes SET expires_at = '2001-01-01T00:00:00Z' WHERE used_at IS NULL",
    )
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    let (status, body) = enroll(stale, "P-4").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("enrollment_code_expired"))
    );
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollment-codes", t.id),
            &t.admin,
            json!({"expires_in_hours": 0}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_expiry"))
    );

    // A pre-assignment of an enrolled serial links at once.
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollments", t.id),
            &t.admin,
            json!({"serial": "P-3", "username": "ann"}),
        )
        .await;
    assert_eq!(status, 201);
    let linked = body["linked_device_id"].as_str().unwrap().to_string();
    assert_eq!(device_user(&app, &t, &linked).await, json!(ann));
    let audit = app.audit_actions(&t).await;
    for action in [
        "device.preassigned",
        "device.enrolled",
        "device.enrollment_code_created",
    ] {
        assert!(audit.iter().any(|a| a == action), "{action} in {audit:?}");
    }
}

#[actix_web::test]
async fn agents_get_waiting_commands_on_connect_and_report_telemetry() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "A-1", "ios").await;
    let (ann, user) = app.self_service_user(&t, "ann", "self-service-full").await;
    app.link(&t, &device, Some(&ann)).await;

    // Queued while the agent is offline.
    let (status, queued) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "lost_mode_on"}),
        )
        .await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")));
    let command = queued["command_id"].as_str().unwrap().to_string();
    let progress = format!("/me/devices/{device}/actions/{command}");
    let (_, c) = app.get(&progress, &user).await;
    assert_eq!(c["status"], "queued");

    // A wrong secret is refused before the upgrade.
    assert_eq!(app.ws_device("sbd_wrong").await.err(), Some(401));
    let mut agent = app.ws_device(&secret).await.unwrap();
    let frame = agent.expect("command").await;
    assert_eq!(
        (frame["id"].as_str(), frame["action"].as_str()),
        (Some(command.as_str()), Some("lost_mode_on"))
    );
    assert!(eventually(|| async { app.get(&progress, &user).await.1["status"] == "sent" }).await);
    agent
        .send_json(json!({"type": "ack", "command_id": command, "status": "done"}))
        .await;
    assert!(eventually(|| async { app.get(&progress, &user).await.1["status"] == "done" }).await);
    let (_, c) = app.get(&progress, &user).await;
    assert!(
        c["created_at"].is_string() && c["updated_at"].is_string() && c["finished_at"].is_string()
    );
    let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
    assert_eq!(
        (d["lost_mode"].clone(), d["online"].clone()),
        (json!(true), json!(true))
    );

    // A command for a connected agent goes out at once; locate updates the location.
    let (_, queued) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "locate"}),
        )
        .await;
    let frame = agent.expect("command").await;
    assert_eq!(frame["action"], "locate");
    agent
        .send_json(
            json!({"type": "ack", "command_id": queued["command_id"], "status": "done",
                          "result": {"lat": 48.137, "lon": 11.575, "accuracy_m": 12.0}}),
        )
        .await;
    assert!(
        eventually(|| async {
            app.get(&format!("/me/devices/{device}"), &user).await.1["location"]["lat"] == 48.137
        })
        .await
    );
    let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
    assert_eq!(d["location"]["accuracy_m"], 12.0);
    assert!(d["location"]["at"].is_string(), "{d}");
    let located = format!(
        "/me/devices/{device}/actions/{}",
        queued["command_id"].as_str().unwrap()
    );
    let (_, c) = app.get(&located, &user).await;
    assert_eq!(
        (c["status"].as_str(), c["action"].as_str()),
        (Some("done"), Some("locate"))
    );
    assert_eq!(c["result"]["lon"], 11.575);

    // A failed command ends `failed` and changes nothing on the device.
    let (_, queued) = app
        .post(
            &format!("/me/devices/{device}/actions"),
            &user,
            json!({"action": "lost_mode_off"}),
        )
        .await;
    agent.expect("command").await;
    agent
        .send_json(
            json!({"type": "ack", "command_id": queued["command_id"], "status": "failed",
                          "result": {"reason": "user declined"}}),
        )
        .await;
    let failed = format!(
        "/me/devices/{device}/actions/{}",
        queued["command_id"].as_str().unwrap()
    );
    assert!(eventually(|| async { app.get(&failed, &user).await.1["status"] == "failed" }).await);
    let (_, d) = app.get(&format!("/me/devices/{device}"), &user).await;
    assert_eq!(
        d["lost_mode"], true,
        "a failed lost_mode_off leaves lost mode on"
    );

    // Telemetry updates battery, location and last seen; bad frames get an error, not a close.
    agent
        .send_json(json!({"type": "telemetry", "battery": 42, "location": {"lat": 1.5, "lon": 2.5, "accuracy_m": 3.0}}))
        .await;
    assert!(
        eventually(|| async {
            let d = app.get(&format!("/devices/{device}"), &t.admin).await.1;
            d["battery"] == 42 && d["location"]["lon"] == 2.5 && d["last_seen_at"].is_string()
        })
        .await
    );
    agent.send_text("{not json").await;
    assert_eq!(agent.expect("error").await["code"], "invalid_frame");
    agent.send_json(json!({"type": "dance"})).await;
    assert_eq!(agent.expect("error").await["code"], "unknown_type");
    agent
        .send_json(json!({"type": "telemetry", "battery": 250}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "invalid_frame");
    // An ack for an unknown command changes nothing.
    agent
        .send_json(json!({"type": "ack", "command_id": uuid::Uuid::nil(), "status": "done"}))
        .await;

    // A second connection with the same secret replaces the first.
    let mut second = app.ws_device(&secret).await.unwrap();
    assert_eq!(agent.expect_close().await, Some(4009));
    second
        .expect_silence(std::time::Duration::from_millis(300), &[])
        .await;
    let (_, d) = app.get(&format!("/devices/{device}"), &t.admin).await;
    assert_eq!(d["online"], true);
    // Deleting the device ends its connection.
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/devices/{device}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(second.expect_close().await, Some(4003));
    assert_eq!(app.ws_device(&secret).await.err(), Some(401));
}

async fn try_enroll(app: &TestApp, code: &str, serial: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/enroll",
        None,
        Some(json!({"code": code, "serial": serial, "platform": "android", "name": "x"})),
    )
    .await
}

/// The attack: any enrollment code of any account, sent with the serial printed on a victim's
/// device, used to re-key that device and take its commands and customer keys.
#[actix_web::test]
async fn an_enrollment_code_never_takes_over_an_enrolled_device() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let code = app.enrollment_code(&t).await;
    let (device, secret) = app.enroll(&code, "V-1", "android").await;
    let mut agent = app.ws_device(&secret).await.expect("the agent connects");

    for attacker_code in [
        app.enrollment_code(&t).await,
        app.enrollment_code(&other).await,
    ] {
        let (status, body) = try_enroll(&app, &attacker_code, "V-1").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("device_already_enrolled")),
            "{body}"
        );
    }
    // Nothing changed: the real agent is still connected and its secret still works.
    agent
        .expect_silence(std::time::Duration::from_millis(300), &["command"])
        .await;
    let (_, listed) = app.get(&format!("/devices/{device}"), &t.admin).await;
    assert_eq!(listed["online"], true);

    // Released by the admin: the agent is out, its secret ends, and a code of the account may
    // enroll the serial again (the same device, links kept).
    let (status, _) = app
        .post(&format!("/devices/{device}/release"), &t.admin, json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(agent.expect_close().await, Some(4003));
    assert_eq!(app.ws_device(&secret).await.err(), Some(401));
    let (status, body) = try_enroll(&app, &app.enrollment_code(&other).await, "V-1").await;
    assert_eq!(
        status, 201,
        "a released serial is free for a new enrollment: {body}"
    );
    assert_ne!(
        body["device_id"],
        device.as_str(),
        "another account gets its own device"
    );
    // Now enrolled in Other: Acme's own code is refused again.
    let (status, _) = try_enroll(&app, &app.enrollment_code(&t).await, "V-1").await;
    assert_eq!(status, 409);
    assert!(
        app.audit_actions(&t)
            .await
            .iter()
            .any(|a| a == "device.released")
    );
}

#[actix_web::test]
async fn a_released_device_reenrolls_in_its_account_and_a_deleted_makers_code_is_revoked() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (device, _) = app
        .enroll(&app.enrollment_code(&t).await, "W-1", "ios")
        .await;
    app.post(&format!("/devices/{device}/release"), &t.admin, json!({}))
        .await;
    let (status, body) = try_enroll(&app, &app.enrollment_code(&t).await, "W-1").await;
    assert_eq!(
        (status, body["device_id"].as_str()),
        (201, Some(device.as_str()))
    );

    let (maker_id, maker) = app.user(&t, "maker", &["devices"]).await;
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollment-codes", t.id),
            &maker,
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    let code = body["code"].as_str().unwrap().to_string();
    app.call(
        "DELETE",
        &format!("/users/{maker_id}"),
        Some(&t.admin),
        None,
    )
    .await;
    let (status, body) = try_enroll(&app, &code, "W-2").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("code_revoked"))
    );
    let (_, devices) = app
        .get(&format!("/accounts/{}/devices", t.id), &t.admin)
        .await;
    assert_eq!(devices.as_array().unwrap().len(), 1, "nothing was enrolled");
}

#[actix_web::test]
async fn groups_are_renamed_and_deleted_only_when_empty_and_only_when_seen() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let mut ids = Vec::new();
    for name in ["Berlin", "Hamburg"] {
        let (status, g) = app
            .post(
                &format!("/accounts/{}/groups", t.id),
                &t.admin,
                json!({"name": name}),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(g["id"].as_str().unwrap().to_string());
    }
    let rename = |id: &str, token: &str, name: &str| {
        let path = format!("/groups/{id}");
        let token = token.to_string();
        let name = name.to_string();
        let app = &app;
        async move {
            app.call("PATCH", &path, Some(&token), Some(json!({"name": name})))
                .await
        }
    };
    let (status, body) = rename(&ids[0], &t.admin, "Berlin-Mitte").await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Berlin-Mitte")));
    let (status, body) = rename(&ids[0], &t.admin, "Hamburg").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("group_name_taken"))
    );
    let (status, _) = rename(&ids[0], &other.admin, "Mine").await;
    assert_eq!(status, 404, "another account's group");
    // A technician limited to Hamburg does not see Berlin at all.
    let (tech_id, tech) = app.user(&t, "tech", &["devices"]).await;
    let limited = json!({"areas": ["devices"], "objects": {"create": true, "edit": true, "delete": true},
                         "groups": [ids[1]]});
    app.set_rights(&t.admin, &tech_id, limited).await;
    let (status, _) = rename(&ids[0], &tech, "Taken over").await;
    assert_eq!(status, 404);

    // Not while a device is in it.
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices", t.id),
            &t.admin,
            json!({"name": "d", "serial": "G-1", "platform": "ios", "group_id": ids[0]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/groups/{}", ids[0]),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("group_not_empty"))
    );
    // An empty one goes, also after a used code of it.
    let (_, code) = app
        .post(
            &format!("/accounts/{}/enrollment-codes", t.id),
            &t.admin,
            json!({"group_id": ids[1]}),
        )
        .await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/groups/{}", ids[1]),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 409, "an unused code still enrolls into it");
    let (device, _) = app
        .enroll(code["code"].as_str().unwrap(), "G-2", "android")
        .await;
    app.call(
        "DELETE",
        &format!("/devices/{device}"),
        Some(&t.admin),
        None,
    )
    .await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/groups/{}", ids[1]),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, groups) = app
        .get(&format!("/accounts/{}/groups", t.id), &t.admin)
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    let audit = app.audit_actions(&t).await;
    assert!(
        audit.iter().any(|a| a == "group.renamed") && audit.iter().any(|a| a == "group.deleted")
    );
}
