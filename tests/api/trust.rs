//! Trust boundaries, each written as the attack: device-group limits on sessions, credentials
//! reaching live sockets, and who may withdraw an invitation.

use serde_json::{Value, json};

use crate::helpers::*;

fn limited_to(group: &str) -> Value {
    json!({"areas": ["sessions"], "objects": {"create": true, "edit": true, "delete": true},
           "groups": [group], "roles": []})
}

/// The attack: a technician limited to group A lists, joins (by ticket and by header) and
/// reads the report of a session on a device of group B.
#[actix_web::test]
async fn a_group_limited_technician_never_reaches_sessions_on_other_groups_devices() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let mut groups = Vec::new();
    for name in ["A", "B"] {
        groups.push(app.group(&t, name).await);
    }
    let (_, code) = app
        .post(
            &format!("/accounts/{}/enrollment-codes", t.id),
            &t.admin,
            json!({"group_id": groups[1]}),
        )
        .await;
    let (device, secret) = app
        .enroll(code["code"].as_str().unwrap(), "B-1", "android")
        .await;
    let _agent = app.ws_device(&secret).await.unwrap();
    let (status, body) = app
        .post(
            "/sessions",
            &t.admin,
            json!({"subject": "on B", "device_id": device}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let on_b = body["id"].as_str().unwrap().to_string();
    let (plain, _) = app.session(&t.admin).await;
    let (tech_id, tech) = app.user(&t, "tech", &["sessions"]).await;
    app.set_rights(&t.admin, &tech_id, limited_to(&groups[0]))
        .await;

    let (_, listed) = app.get("/sessions", &tech).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [plain.as_str()], "only the session without a device");
    let (status, _) = app.get(&format!("/sessions/{on_b}"), &tech).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&format!("/sessions/{on_b}/report"), &tech).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post("/ws-tickets", &tech, json!({"session_id": on_b}))
        .await;
    assert_eq!(status, 404);
    let refused = Ws::connect(&format!("{}/ws/sessions/{on_b}", app.ws_base), Some(&tech)).await;
    assert_eq!(refused.err(), Some(404));
    // The admin, who sees every group, still reaches it.
    let (status, _) = app.get(&format!("/sessions/{on_b}"), &t.admin).await;
    assert_eq!(status, 200);
}

/// The list of ended sessions applies a technician's groups in the query, before its limit
/// of 100: a technician limited to group A finds its group's sessions behind a hundred newer
/// ones on group B's device (which the limit used to fill, leaving it an empty list), and
/// never one of those; a technician limited to no group sees only sessions on no device.
#[actix_web::test]
async fn the_ended_list_of_a_group_limited_technician_is_its_groups_whatever_came_after() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let mut groups = Vec::new();
    let mut devices = Vec::new();
    let mut agents = Vec::new();
    for name in ["A", "B"] {
        let group = app.group(&t, name).await;
        let (device, agent) = app.online_device_in(&t, &group, &format!("{name}-1")).await;
        groups.push(group);
        devices.push(device);
        agents.push(agent);
    }
    let on = |device: &str| json!({"subject": "ended", "device_id": device});
    let on_a = app.ended_session(&t.admin, on(&devices[0])).await;
    let plain = app
        .ended_session(&t.admin, json!({"subject": "ended"}))
        .await;
    let mut on_b = Vec::new();
    for _ in 0..100 {
        on_b.push(app.ended_session(&t.admin, on(&devices[1])).await);
    }
    // The admin sees every group: the newest hundred, all of them group B's (once the last
    // end is stored: ends are written by the report writer).
    let mut newest = on_b.clone();
    newest.sort();
    assert!(eventually(|| async { app.ended_ids(&t.admin).await == newest }).await);

    let (tech_id, tech) = app.user(&t, "tech", &["sessions"]).await;
    app.set_rights(&t.admin, &tech_id, limited_to(&groups[0]))
        .await;
    let mut want = vec![on_a.clone(), plain.clone()];
    want.sort();
    assert!(
        eventually(|| async { app.ended_ids(&tech).await == want }).await,
        "group A's session and the one on no device: {:?}",
        app.ended_ids(&tech).await
    );
    let none = json!({"areas": ["sessions"], "objects": {"create": true, "edit": true, "delete": true},
                      "groups": [], "roles": []});
    app.set_rights(&t.admin, &tech_id, none).await;
    assert_eq!(app.ended_ids(&tech).await, vec![plain]);
    drop(agents);
}

/// A socket opened with a token, a key or a ticket closes with 4003 when that credential
/// ends (logout, key deleted) or a rights change takes away what the connection needed; the
/// same user's other connections stay.
#[actix_web::test]
async fn ending_a_credential_closes_the_sockets_opened_with_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let other_login = app.login("bob", PASSWORD).await;
    let (status, key) = app
        .post(
            &format!("/users/{bob_id}/api-keys"),
            &bob,
            json!({"name": "k"}),
        )
        .await;
    assert_eq!(status, 201);
    let (key_id, key) = (
        key["id"].as_str().unwrap().to_string(),
        key["key"].as_str().unwrap().to_string(),
    );
    let (session, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &session).await;
    let mut by_token = app.ws_technician(&bob, &session).await;
    let mut by_key = app.ws_technician(&key, &session).await;
    let mut by_other_login = app.ws_technician(&other_login, &session).await;

    let (status, _) = app.call("POST", "/auth/logout", Some(&bob), None).await;
    assert_eq!(status, 204);
    assert_eq!(by_token.expect_close().await, Some(4003));
    let (status, _) = app
        .call("DELETE", &format!("/api-keys/{key_id}"), Some(&bob), None)
        .await;
    assert_eq!(
        status, 401,
        "bob's token is gone; the admin deletes the key"
    );
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/api-keys/{key_id}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(by_key.expect_close().await, Some(4003));
    // The other login's socket is untouched until a rights change takes the area away.
    by_other_login.chat("still here").await;
    let chat = by_other_login.expect("chat").await;
    assert_eq!(chat["text"], "still here");
    let none = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}});
    app.set_rights(&t.admin, &bob_id, none).await;
    assert_eq!(by_other_login.expect_close().await, Some(4003));
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let left = owner.expect("participant_left").await;
        reasons.push(left["reason"].as_str().unwrap().to_string());
    }
    assert_eq!(reasons, ["revoked", "revoked", "revoked"]);
}

/// The attack: any technician of the account withdraws a colleague's invitation by its id.
#[actix_web::test]
async fn only_the_inviter_the_owner_or_an_admin_with_delete_revokes_an_invitation() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (_, owner_token) = app.user(&t, "olga", &["sessions"]).await;
    let (session, _) = app.session(&owner_token).await;
    let _owner = app.ws_technician(&owner_token, &session).await;
    let (inviter_id, inviter) = app.user(&t, "ivan", &["sessions"]).await;
    let _inviter_ws = app.ws_technician(&inviter, &session).await;
    let (mallory_id, mallory) = app.user(&t, "mallory", &["sessions"]).await;
    let no_delete =
        json!({"areas": ["sessions"], "objects": {"create": true, "edit": true, "delete": false}});
    app.set_rights(&t.admin, &mallory_id, no_delete.clone())
        .await;
    app.set_rights(&t.admin, &inviter_id, no_delete).await;
    let (inv, join) = app.invite(&inviter, &session, &policy, "Gina").await;
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/invitations/{inv}"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_inviter"))
    );
    let (status, _) = app.call("GET", &format!("/join/{join}"), None, None).await;
    assert_eq!(status, 200, "the link still works");
    for who in [&inviter, &owner_token, &t.admin] {
        let (inv, _) = app.invite(&inviter, &session, &policy, "Gina").await;
        let (status, _) = app
            .call("DELETE", &format!("/invitations/{inv}"), Some(who), None)
            .await;
        assert_eq!(status, 204);
    }
}

#[actix_web::test]
async fn live_sessions_pending_invitations_and_invitation_mails_are_capped() {
    let app = TestApp::spawn_with(|s| {
        s.sessions.max_live_per_account = 2;
        s.sessions.max_pending_invitations = 1;
        s.sessions.invitation_mails_per_hour = 1;
    })
    .await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    app.session(&t.admin).await;
    let (status, body) = app
        .post("/sessions", &t.admin, json!({"subject": "third"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_sessions"))
    );
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let path = format!("/sessions/{sid}/invitations");
    let invite = |email: Option<&str>| {
        let mut body = json!({"policy_id": policy, "guest_name": "Gina", "comment": ""});
        if let Some(e) = email {
            body["email"] = json!(e);
        }
        app.post(&path, &t.admin, body)
    };
    let (status, first) = invite(Some("gina@example.com")).await;
    assert_eq!(status, 201);
    let (status, body) = invite(None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_invitations"))
    );
    app.call(
        "DELETE",
        &format!("/invitations/{}", first["id"].as_str().unwrap()),
        Some(&t.admin),
        None,
    )
    .await;
    let (status, body) = invite(Some("gino@example.com")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_mails"))
    );
    let (status, _) = invite(None).await;
    assert_eq!(status, 201, "without a mail the link is still handed out");
}

#[actix_web::test]
async fn a_session_nobody_joins_ends_by_itself() {
    let app = TestApp::spawn_with(|s| s.sessions.empty_end_secs = 1).await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let admin = t.admin.clone();
    assert!(
        eventually(|| async {
            let (_, s) = app.get(&format!("/sessions/{sid}"), &admin).await;
            s["state"] == "ended"
        })
        .await
    );
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["session"]["end_reason"], "no_technician");
}

#[actix_web::test]
async fn metrics_need_the_token_when_one_is_set_and_the_docs_are_guarded() {
    let app = TestApp::spawn_with(|s| {
        s.ops.metrics_token = support_broker::config::Secret::new("m-token-1234567890");
    })
    .await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("m-token-1234567890")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("broker_live_sessions"));
    // /api/docs redirects to the page, and the page carries its own CSP.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirect.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/api/docs/");
    let res = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        res.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
}

/// The attack: a holder of a guest link sends a request with only an `Upgrade` header and no
/// WebSocket key: nothing connects, and the link must still work.
#[actix_web::test]
async fn a_half_handshake_does_not_use_up_a_guest_link() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let res = app
        .http
        .get(format!("{}/ws/guest/{join}", app.base))
        .header("Upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let guest = app.ws_guest(&join).await.expect("the link still works");
    assert_eq!(guest.welcome["role"], "guest");
}

#[cfg(unix)]
#[actix_web::test]
async fn the_data_dir_and_what_the_broker_writes_there_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    app.user(&t, "bob", &[]).await; // mails a set-password link into the outbox
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = app.data_dir.path();
    assert_eq!(mode(dir.to_path_buf()), 0o700);
    assert_eq!(mode(dir.join("outbox")), 0o700);
    // On PostgreSQL the database lives in the server; the key is on disk either way.
    let files: &[&str] = if app.on_postgres() {
        &["secret.key"]
    } else {
        &["broker.db", "secret.key"]
    };
    for name in files {
        assert_eq!(mode(dir.join(name)), 0o600, "{name}");
    }
    let mails: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(!mails.is_empty());
    for mail in mails {
        assert_eq!(mode(mail.clone()), 0o600, "{}", mail.display());
    }
}

/// The attack: a flood of logins queues argon2 work (19 MiB each) without bound. Beyond the
/// queue, a login is answered 503 `busy` at once, with Retry-After.
#[actix_web::test]
async fn logins_beyond_the_hashing_queue_are_answered_busy() {
    let app = TestApp::spawn_with(|s| {
        s.auth.max_parallel_hashes = 1;
        s.auth.max_queued_hashes = 0;
    })
    .await;
    let attempts = (0..12).map(|i| {
        app.call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": format!("nobody{i}"), "password": "wrong password"})),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let busy = answers
        .iter()
        .filter(|(s, b)| *s == 503 && b["error"]["code"] == "busy")
        .count();
    assert!(busy > 0, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 503 || *s == 401));
}
