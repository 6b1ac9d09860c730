//! The set-password link mailed to a new user.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;

/// The set-password token in the newest mail to `to`.
fn link_token(app: &TestApp, to: &str) -> String {
    crate::helpers::newest_set_password_token(app, to)
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

fn mails_to(app: &TestApp, to: &str) -> usize {
    crate::helpers::outbox_mails(app)
        .iter()
        .filter(|t| t.contains(&format!("To: {to}")) && t.contains("set-password?token="))
        .count()
}

async fn reset(app: &TestApp, login: &str) -> (u16, serde_json::Value) {
    app.call(
        "POST",
        "/auth/password-reset",
        None,
        Some(json!({"login": login})),
    )
    .await
}

#[actix_web::test]
async fn a_forgotten_password_is_reset_by_mail_without_telling_who_exists() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, old_token) = app.user(&t, "fred", &["sessions"]).await;
    let (session, _) = app.session(&t.admin).await;
    let mut old_socket = app.ws_technician(&old_token, &session).await;
    let before = mails_to(&app, "fred@example.com");

    let known = reset(&app, "fred").await;
    let unknown = reset(&app, "nobody-here").await;
    assert_eq!(known, unknown, "the same answer either way");
    assert_eq!(known.0, 202);
    let fred_mails = || mails_to(&app, "fred@example.com");
    assert!(crate::helpers::eventually(|| async { fred_mails() == before + 1 }).await);
    // By email too; a new link ends the earlier unused one.
    let first = link_token(&app, "fred@example.com");
    reset(&app, "FRED@example.com").await;
    assert!(crate::helpers::eventually(|| async { fred_mails() == before + 2 }).await);
    let second = link_token(&app, "fred@example.com");
    let (status, body) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": first, "password": "a brand new secret"})),
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
            Some(json!({"token": second, "password": "a brand new secret"})),
        )
        .await;
    assert_eq!(status, 204);
    // The old password is gone, and so is every login made with it, socket included.
    assert_eq!(old_socket.expect_close().await, Some(4003));
    let (status, _) = app.get("/me", &old_token).await;
    assert_eq!(status, 401);
    app.login("fred", "a brand new secret").await;
    let (status, _) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "fred", "password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(status, 401);

    // At most three reset mails an hour; the answer stays the same.
    for _ in 0..3 {
        assert_eq!(reset(&app, "fred").await.0, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fred_mails(),
        before + 3,
        "two resets above, one more here, then the cap"
    );
}

#[actix_web::test]
async fn an_admin_sends_a_new_link_and_a_user_changes_its_own_password() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (gina_id, gina) = app.user(&t, "gina", &["sessions"]).await;
    let before = mails_to(&app, "gina@example.com");
    let (status, _) = app
        .post(
            &format!("/users/{gina_id}/set-password-link"),
            &t.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(mails_to(&app, "gina@example.com"), before + 1);
    // Not for another account's admin, nor without users + edit.
    let other = app.tenant("Other").await;
    let (status, _) = app
        .post(
            &format!("/users/{gina_id}/set-password-link"),
            &other.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/users/{gina_id}/set-password-link"),
            &gina,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);

    let second_login = app.login("gina", crate::helpers::PASSWORD).await;
    let (session, _) = app.session(&t.admin).await;
    let mut other_socket = app.ws_technician(&second_login, &session).await;
    let change = |current: &str, new: &str| {
        app.call(
            "POST",
            "/me/password",
            Some(&gina),
            Some(json!({"current_password": current, "new_password": new})),
        )
    };
    let (status, body) = change("not my password", "another good one").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("reauth_required"))
    );
    let (status, body) = change(crate::helpers::PASSWORD, "short").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("weak_password"))
    );
    let (status, _) = change(crate::helpers::PASSWORD, "another good one").await;
    assert_eq!(status, 204);
    // This token goes on; the other login ends, and its socket closes.
    assert_eq!(app.get("/me", &gina).await.0, 200);
    assert_eq!(app.get("/me", &second_login).await.0, 401);
    assert_eq!(other_socket.expect_close().await, Some(4003));
    app.login("gina", "another good one").await;
    assert!(
        app.audit_actions(&t)
            .await
            .iter()
            .any(|a| a == "user.password_changed")
    );
}

#[actix_web::test]
async fn a_link_is_checked_without_being_used() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    create_user(&app, &t.admin, &t.id, "kim").await;
    let token = link_token(&app, "kim@example.com");
    let check = |token: String| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/auth/password-link",
                None,
                Some(json!({"token": token})),
            )
            .await
        }
    };
    let (status, body) = check(token.clone()).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("usable")),
        "{body}"
    );
    let (status, _) = check(token.clone()).await;
    assert_eq!(status, 200, "looking does not use it up");
    let (status, _) = check("sbp_nonsense".into()).await;
    assert_eq!(status, 404);
    app.call(
        "POST",
        "/auth/password",
        None,
        Some(json!({"token": token, "password": "kim's new secret"})),
    )
    .await;
    let (status, body) = check(token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("token_used"))
    );
}
