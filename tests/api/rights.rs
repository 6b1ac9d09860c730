//! Every endpoint checks rights: a user lacking the area gets 403, another account's ids 404.

use serde_json::{Value, json};

use crate::helpers::TestApp;

#[actix_web::test]
async fn every_endpoint_refuses_a_missing_area_and_hides_other_accounts() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (_, nobody) = app.user(&t, "nobody", &[]).await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (inv, _) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let (_, key) = app
        .post(
            &format!("/users/{bob_id}/api-keys"),
            &bob,
            json!({"name": "k"}),
        )
        .await;
    let key_id = key["id"].as_str().unwrap().to_string();
    let device = app.device(&t, "R-1", "ios").await;
    let aid = &t.id;
    let no_rights =
        json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}});

    // (method, path, body, whether the path names an object of the account)
    let table: Vec<(&str, String, Option<Value>, bool)> = vec![
        ("GET", format!("/accounts/{aid}/users"), None, true),
        (
            "POST",
            format!("/accounts/{aid}/users"),
            Some(
                json!({"username": "x1", "first_name": "X", "last_name": "Y", "email": "x1@example.com"}),
            ),
            true,
        ),
        ("GET", format!("/accounts/{aid}/audit"), None, true),
        ("GET", format!("/accounts/{aid}/roles"), None, true),
        ("GET", format!("/accounts/{aid}/groups"), None, true),
        (
            "POST",
            format!("/accounts/{aid}/groups"),
            Some(json!({"name": "G1"})),
            true,
        ),
        (
            "PATCH",
            format!("/accounts/{aid}"),
            Some(json!({"name": "Renamed"})),
            true,
        ),
        ("GET", format!("/users/{bob_id}"), None, true),
        (
            "PATCH",
            format!("/users/{bob_id}"),
            Some(json!({"first_name": "Bobby"})),
            true,
        ),
        (
            "PUT",
            format!("/users/{bob_id}/rights"),
            Some(no_rights),
            true,
        ),
        (
            "PUT",
            format!("/users/{bob_id}/login-options"),
            Some(json!({"two_factor": "off"})),
            true,
        ),
        (
            "POST",
            format!("/users/{bob_id}/api-keys"),
            Some(json!({"name": "k2"})),
            true,
        ),
        ("GET", format!("/users/{bob_id}/api-keys"), None, true),
        ("DELETE", format!("/api-keys/{key_id}"), None, true),
        ("DELETE", format!("/users/{bob_id}"), None, true),
        ("GET", format!("/accounts/{aid}/policies"), None, true),
        (
            "POST",
            format!("/accounts/{aid}/policies"),
            Some(json!({"name": "P2", "permissions": ["chat"]})),
            true,
        ),
        (
            "PATCH",
            format!("/policies/{policy}"),
            Some(json!({"name": "P3"})),
            true,
        ),
        ("DELETE", format!("/policies/{policy}"), None, true),
        (
            "POST",
            "/sessions".to_string(),
            Some(json!({"subject": "s"})),
            false,
        ),
        ("GET", "/sessions".to_string(), None, false),
        ("GET", format!("/sessions/{sid}"), None, true),
        ("GET", format!("/sessions/{sid}/report"), None, true),
        (
            "POST",
            format!("/sessions/{sid}/invitations"),
            Some(json!({"policy_id": policy, "guest_name": "G"})),
            true,
        ),
        ("DELETE", format!("/invitations/{inv}"), None, true),
        ("GET", format!("/accounts/{aid}/devices"), None, true),
        (
            "POST",
            format!("/accounts/{aid}/devices"),
            Some(json!({"name": "d", "serial": "D-9", "platform": "ios"})),
            true,
        ),
        ("GET", format!("/devices/{device}"), None, true),
        (
            "PATCH",
            format!("/devices/{device}"),
            Some(json!({"name": "renamed"})),
            true,
        ),
        (
            "PUT",
            format!("/devices/{device}/user"),
            Some(json!({"user_id": bob_id})),
            true,
        ),
        ("DELETE", format!("/devices/{device}"), None, true),
        (
            "POST",
            format!("/accounts/{aid}/enrollments"),
            Some(json!({"serial": "D-8", "username": "bob"})),
            true,
        ),
        (
            "POST",
            format!("/accounts/{aid}/enrollment-codes"),
            Some(json!({})),
            true,
        ),
        (
            "POST",
            "/ws-tickets".to_string(),
            Some(json!({"session_id": sid})),
            true,
        ),
    ];

    for (method, path, body, names_object) in &table {
        let (status, answer) = app.call(method, path, Some(&nobody), body.clone()).await;
        assert_eq!(status, 403, "{method} {path} without the area: {answer}");
        assert_eq!(answer["error"]["code"], "missing_right", "{method} {path}");
        if *names_object {
            let (status, answer) = app
                .call(method, path, Some(&other.admin), body.clone())
                .await;
            assert_eq!(
                status, 404,
                "{method} {path} from another account: {answer}"
            );
        }
    }
    // Nothing of it changed anything.
    let (_, users) = app.get(&format!("/accounts/{aid}/users"), &t.admin).await;
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bob" && u["first_name"] == "Tess")
    );
    let (_, policies) = app
        .get(&format!("/accounts/{aid}/policies"), &t.admin)
        .await;
    assert_eq!(policies[0]["name"], "Chat");
    let (_, devices) = app.get(&format!("/accounts/{aid}/devices"), &t.admin).await;
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(
        (devices[0]["name"].as_str(), devices[0]["user_id"].clone()),
        (Some("Device R-1"), Value::Null)
    );
    let (status, _) = app.call("GET", &format!("/join/{}", "x"), None, None).await;
    assert_eq!(status, 404);
}
