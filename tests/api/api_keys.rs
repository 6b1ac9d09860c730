//! API keys act with their user's rights as they are at request time.

use serde_json::json;

use crate::helpers::TestApp;

async fn new_key(app: &TestApp, token: &str, user: &str) -> (String, String) {
    let (status, body) = app
        .post(
            &format!("/users/{user}/api-keys"),
            token,
            json!({"name": "ci"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().into(),
        body["key"].as_str().unwrap().into(),
    )
}

#[actix_web::test]
async fn a_key_inherits_narrows_with_and_dies_with_its_user() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (_, key) = new_key(&app, &bob, &bob_id).await;
    assert!(key.starts_with("sbk_"));

    // Inherits: the key may do what bob may.
    let (status, _) = app
        .post("/sessions", &key, json!({"subject": "via key"}))
        .await;
    assert_eq!(status, 201);
    let (_, me) = app.get("/me", &key).await;
    assert_eq!(me["user"]["id"], bob_id.as_str());
    assert_eq!(me["user"]["has_api_key"], true);

    // Narrows at once with bob's rights.
    let none = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}});
    app.set_rights(&t.admin, &bob_id, none).await;
    let (status, _) = app
        .post("/sessions", &key, json!({"subject": "via key"}))
        .await;
    assert_eq!(status, 403);

    // Dies with bob.
    app.call("DELETE", &format!("/users/{bob_id}"), Some(&t.admin), None)
        .await;
    let (status, _) = app.get("/me", &key).await;
    assert_eq!(status, 401);
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.created" && e["via"] == "api_key")
    );
}

#[actix_web::test]
async fn keys_are_listed_without_the_secret_and_can_be_deleted() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (key_id, key) = new_key(&app, &t.admin, &t.admin_id).await;
    app.get("/me", &key).await;
    let (status, list) = app
        .get(&format!("/users/{}/api-keys", t.admin_id), &t.admin)
        .await;
    assert_eq!(status, 200);
    let entry = &list[0];
    assert_eq!(entry["id"], key_id.as_str());
    assert!(key.starts_with(entry["prefix"].as_str().unwrap()));
    assert!(entry["last_used_at"].is_string());
    assert!(entry.get("key").is_none() && !list.to_string().contains(&key));
    let (_, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == t.admin_id.as_str() && u["has_api_key"] == true)
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
    let (status, _) = app.get("/me", &key).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn keys_of_others_need_the_users_area_and_stay_in_their_account() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (status, body) = app
        .post(
            &format!("/users/{}/api-keys", t.admin_id),
            &bob,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );
    // Not even the account admin makes a key for someone else: it would act as bob forever.
    let (status, body) = app
        .post(
            &format!("/users/{bob_id}/api-keys"),
            &t.admin,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_own_key"))
    );
    let (key_id, _) = new_key(&app, &bob, &bob_id).await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/api-keys/{key_id}"),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(&format!("/users/{bob_id}/api-keys"), &other.admin)
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn a_mistyped_or_forged_key_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, key) = new_key(&app, &t.admin, &t.admin_id).await;
    let mut typo = key.clone().into_bytes();
    typo[25] = if typo[25] == b'x' { b'y' } else { b'x' };
    let (status, _) = app.get("/me", std::str::from_utf8(&typo).unwrap()).await;
    assert_eq!(status, 401);
    // Right prefix and a valid checksum, wrong secret.
    let body = format!("{}_{}", &key[..12], "A".repeat(43));
    let forged = format!(
        "{body}_{}",
        &{
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        }[..6]
    );
    let (status, _) = app.get("/me", &forged).await;
    assert_eq!(status, 401);
}

/// The attack: a user manager (users + edit) mints a key for the account admin and acts as it
/// forever without its second factor; on the platform account, for `admin` itself.
#[actix_web::test]
async fn a_user_manager_cannot_mint_a_key_for_the_admin() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (clerk_id, clerk) = app.user(&t, "clerk", &["users"]).await;
    let edit =
        json!({"areas": ["users"], "objects": {"create": false, "edit": true, "delete": false}});
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{clerk_id}/rights"),
            Some(&t.admin),
            Some(edit),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            &format!("/users/{}/api-keys", t.admin_id),
            &clerk,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_own_key"))
    );
    let (_, keys) = app
        .get(&format!("/users/{}/api-keys", t.admin_id), &t.admin)
        .await;
    assert_eq!(keys.as_array().unwrap().len(), 0, "no key was made");

    // The platform account: a delegated staff manager against `admin`.
    let edit =
        json!({"areas": ["users"], "objects": {"create": false, "edit": true, "delete": false}});
    let (admin_id, staff) = app.platform_user("staff", edit).await;
    let (status, body) = app
        .post(
            &format!("/users/{admin_id}/api-keys"),
            &staff,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_own_key"))
    );
}
