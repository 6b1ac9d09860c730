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
        let (status, g) = app
            .post(
                &format!("/accounts/{}/groups", t.id),
                &t.admin,
                json!({"name": name}),
            )
            .await;
        assert_eq!(status, 201);
        groups.push(g["id"].as_str().unwrap().to_string());
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
    app.call(
        "PUT",
        &format!("/users/{tech_id}/rights"),
        Some(&t.admin),
        Some(limited_to(&groups[0])),
    )
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
    app.call(
        "PUT",
        &format!("/users/{bob_id}/rights"),
        Some(&t.admin),
        Some(none),
    )
    .await;
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
    app.call(
        "PUT",
        &format!("/users/{mallory_id}/rights"),
        Some(&t.admin),
        Some(no_delete.clone()),
    )
    .await;
    app.call(
        "PUT",
        &format!("/users/{inviter_id}/rights"),
        Some(&t.admin),
        Some(no_delete),
    )
    .await;
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
