//! The set-password link mailed to a new user.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;

/// The set-password token in the newest mail to `to` in the outbox.
fn link_token(app: &TestApp, to: &str) -> String {
    let text = crate::helpers::outbox_mails(app)
        .into_iter()
        .rev()
        .find(|t| t.contains(&format!("To: {to}")))
        .expect("a mail to the user");
    let at = text
        .find("set-password?token=")
        .expect("a set-password link")
        + "set-password?token=".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn create_user(app: &TestApp, token: &str, account: &str, name: &str) {
    let (status, body) = app
        .post(&format!("/accounts/{account}/users"), token,
              json!({"username": name, "first_name": "New", "last_name": "User", "email": format!("{name}@example.com")}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn a_new_user_sets_its_password_from_the_mailed_link_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    create_user(&app, &t.admin, &t.id, "newbie").await;
    let token = link_token(&app, "newbie@example.com");
    let outbox = std::fs::read_dir(app.data_dir.path().join("outbox"))
        .unwrap()
        .count();
    assert!(outbox >= 1);

    let (status, body) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": token, "password": "short"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("weak_password"))
    );
    let (status, _) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": token, "password": "a fine new password"})),
        )
        .await;
    assert_eq!(status, 204);
    app.login("newbie", "a fine new password").await;
    let (status, body) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": token, "password": "another password"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("token_used"))
    );
    let (status, _) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": "sbp_unknown", "password": "another password"})),
        )
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn an_expired_set_password_link_is_gone() {
    let app = TestApp::spawn_with(|s| s.auth.set_password_ttl_secs = 1).await;
    let t = app.tenant("Acme").await;
    create_user(&app, &t.admin, &t.id, "late").await;
    let token = link_token(&app, "late@example.com");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": token, "password": "a fine new password"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("token_expired"))
    );
    let (status, _) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "late", "password": "a fine new password"})),
        )
        .await;
    assert_eq!(status, 401);
}
