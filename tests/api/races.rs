//! Rules that must hold once, attacked with many parallel requests. On SQLite the writer is one
//! connection; on PostgreSQL (`SB_TEST_POSTGRES_URL`) these run as truly parallel transactions
//! over a pool, and the database alone must decide.

use serde_json::json;

use crate::helpers::*;

/// The attack: a forwarded link opened from fifty places at once, hoping that two handshakes
/// both read it as unused.
#[actix_web::test]
async fn fifty_parallel_redemptions_of_one_link_admit_exactly_one_guest() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let attempts = futures_util::future::join_all((0..50).map(|_| app.ws_guest(&join))).await;
    let admitted = attempts.iter().filter(|a| a.is_ok()).count();
    let gone = attempts.iter().filter(|a| matches!(a, Err(410))).count();
    assert_eq!(
        (admitted, gone),
        (1, 49),
        "one guest, the rest told the link is used"
    );
    // The report names one guest joining.
    let (_, session) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
    let guests = session["participants"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["role"] == "guest").count());
    assert_eq!(guests, Some(1), "{session}");
}

/// The attack: fifty admins' clicks (or one script) claiming one username at the same moment,
/// and fifty claiming one email address.
#[actix_web::test]
async fn fifty_parallel_claims_of_one_username_or_email_create_exactly_one_user() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let path = format!("/accounts/{}/users", t.id);
    // No password: each creation would mail a set-password link, so a second user would show.
    let claim = |username: String, email: String| {
        let (app, path, token) = (&app, &path, &t.admin);
        async move {
            app.post(
                path,
                token,
                json!({"username": username, "first_name": "J", "last_name": "D", "email": email}),
            )
            .await
        }
    };
    let answers = futures_util::future::join_all(
        (0..50).map(|i| claim("jane".into(), format!("jane{i}@example.com"))),
    )
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let taken = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "username_taken")
        .count();
    assert_eq!((created, taken), (1, 49), "{answers:?}");

    let answers = futures_util::future::join_all(
        (0..50).map(|i| claim(format!("june{i}"), "june@example.com".into())),
    )
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let taken = answers
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "email_taken")
        .count();
    assert_eq!((created, taken), (1, 49), "{answers:?}");

    let (_, users) = app.get(&path, &t.admin).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["username"].as_str())
        .filter(|n| *n == "jane" || n.starts_with("june"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // One set-password mail each, not one per attempt.
    let links = outbox_mails(&app)
        .iter()
        .filter(|m| m.contains("To: jane") || m.contains("To: june"))
        .count();
    assert_eq!(links, 2);
}
