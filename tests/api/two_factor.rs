//! Second factor by a code sent over email or SMS.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Tenant, TestApp, code_in, last_mail_code};

/// The newest SMS in the outbox to `to`.
fn last_sms(app: &TestApp, to: &str) -> String {
    let dir = app.data_dir.path().join("outbox");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .rev()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|t| t.starts_with(&format!("To: {to}\n")))
        .expect("an SMS")
}

async fn password_step(app: &TestApp, username: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await
}

async fn verify(app: &TestApp, challenge: &Value, code: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/auth/verify",
        None,
        Some(json!({"challenge_id": challenge["second_factor"]["challenge_id"], "code": code})),
    )
    .await
}

async fn with_two_factor(app: &TestApp, t: &Tenant, name: &str, mode: &str) -> String {
    let (id, _) = app.user(t, name, &["sessions"]).await;
    if mode == "sms" {
        app.call(
            "PATCH",
            &format!("/users/{id}"),
            Some(&t.admin),
            Some(json!({"phone": "+4915112345678"})),
        )
        .await;
    }
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{id}/login-options"),
            Some(&t.admin),
            Some(json!({"two_factor": mode})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

#[actix_web::test]
async fn a_login_with_two_factor_by_email_needs_the_mailed_code() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let (status, challenge) = password_step(&app, "eve").await;
    assert_eq!(status, 200);
    assert_eq!(challenge["second_factor"]["channel"], "email");
    assert!(challenge.get("token").is_none(), "no token before the code");
    let code = last_mail_code(&app, "eve@example.com");
    assert_eq!(code.len(), 5);
    let (status, body) = verify(&app, &challenge, &code).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/me", body["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // The code is single use.
    let (status, body) = verify(&app, &challenge, &code).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("challenge_expired"))
    );
}

#[actix_web::test]
async fn a_login_with_two_factor_by_sms_needs_the_texted_code() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (no_phone, _) = app.user(&t, "nophone", &[]).await;
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{no_phone}/login-options"),
            Some(&t.admin),
            Some(json!({"two_factor": "sms"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("phone_required"))
    );
    with_two_factor(&app, &t, "sam", "sms").await;
    let (_, challenge) = password_step(&app, "sam").await;
    assert_eq!(challenge["second_factor"]["channel"], "sms");
    let code = code_in(&last_sms(&app, "+4915112345678"));
    let (status, body) = verify(&app, &challenge, &wrong(&code)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );
    let (status, _) = verify(&app, &challenge, &code).await;
    assert_eq!(status, 200);
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.two_factor_changed")
    );
}

#[actix_web::test]
async fn three_wrong_guesses_burn_a_code() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let (_, challenge) = password_step(&app, "eve").await;
    let code = last_mail_code(&app, "eve@example.com");
    for _ in 0..3 {
        let (status, body) = verify(&app, &challenge, &wrong(&code)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_code"))
        );
    }
    let (status, body) = verify(&app, &challenge, &code).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("challenge_expired"))
    );
}

#[actix_web::test]
async fn ten_wrong_guesses_lock_the_code_step_and_new_codes_do_not_reset_the_count() {
    let app = TestApp::spawn_with(|s| s.auth.code_sends_per_10min = 10).await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let mut guesses = 0;
    let mut last = (0, Value::Null);
    while guesses < 10 {
        let (status, challenge) = password_step(&app, "eve").await;
        assert_eq!(
            status, 200,
            "a new code after {guesses} wrong guesses: {challenge}"
        );
        let code = last_mail_code(&app, "eve@example.com");
        for _ in 0..3 {
            if guesses == 10 {
                break;
            }
            last = verify(&app, &challenge, &wrong(&code)).await;
            guesses += 1;
        }
    }
    assert_eq!(
        (last.0, last.1["error"]["code"].as_str()),
        (429, Some("too_many_attempts")),
        "the locking guess"
    );
    // While locked: the password step and any code answer 429 with Retry-After.
    let res = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({"username": "eve", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
}

#[actix_web::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn_with(|s| s.auth.code_ttl_secs = 1).await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let (_, challenge) = password_step(&app, "eve").await;
    let code = last_mail_code(&app, "eve@example.com");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = verify(&app, &challenge, &code).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("challenge_expired"))
    );
}

#[actix_web::test]
async fn codes_are_capped_at_three_per_ten_minutes() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    for _ in 0..3 {
        let (status, _) = password_step(&app, "eve").await;
        assert_eq!(status, 200);
    }
    let res = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({"username": "eve", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_codes");
    // A wrong password still looks like any wrong password.
    let (status, body) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "eve", "password": "not the password"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
}

#[actix_web::test]
async fn an_authenticator_app_code_logs_in_once_per_time_step() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    // Only bob himself may set it up: the answer carries the shared secret.
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/login-options"),
            Some(&t.admin),
            Some(json!({"two_factor": "totp"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_only"))
    );
    let (status, setup) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/login-options"),
            Some(&bob),
            Some(json!({"two_factor": "totp"})),
        )
        .await;
    assert_eq!(status, 200, "{setup}");
    let secret = setup["totp"]["secret"].as_str().unwrap().to_string();
    // At rest the waiting seed is sealed with the server key, never in the clear.
    let db = app.db().await;
    let stored: String = support_broker::store::db::query_scalar(
        "SELECT totp_pending FROM users WHERE username = 'bob'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    assert!(
        stored.starts_with("v1:") && !stored.contains(&secret),
        "{stored}"
    );
    assert!(
        setup["totp"]["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/support-broker:bob?secret=")
    );
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .build()
        .unwrap();
    let code = totp.generate_current().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The next step's code (one step of skew is accepted).
    let next = totp.generate(now + 30).to_string();

    // Confirm-first: nothing changed yet, the login is still without a second factor.
    assert_eq!(setup["two_factor"], "off");
    assert!(password_step(&app, "bob").await.1["token"].is_string());
    let confirm = |code: String| {
        let app = &app;
        let bob = bob.clone();
        async move {
            app.call(
                "POST",
                "/me/totp/confirm",
                Some(&bob),
                Some(json!({"code": code})),
            )
            .await
        }
    };
    let (status, body) = confirm(wrong(&code)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );
    let (status, body) = confirm(code.clone()).await;
    assert_eq!(status, 200, "{body}");
    let recovery: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (status, body) = confirm(code.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_totp_setup"))
    );

    let (status, challenge) = password_step(&app, "bob").await;
    assert_eq!(
        (status, challenge["second_factor"]["channel"].as_str()),
        (200, Some("totp"))
    );
    // The step the confirmation used is spent: a replay, refused like a wrong code.
    let (status, body) = verify(&app, &challenge, &code).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );
    let (status, body) = verify(&app, &challenge, &next).await;
    assert_eq!(status, 200, "{body}");

    // The same step again is a replay too.
    let (_, challenge) = password_step(&app, "bob").await;
    let (status, body) = verify(&app, &challenge, &next).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );
    let (status, body) = verify(&app, &challenge, "000000x").await;
    assert_eq!(status, 401, "{body}");

    // A lost phone: a recovery code works once, typed however.
    let (_, challenge) = password_step(&app, "bob").await;
    let typed = recovery[0].to_uppercase().replace('-', " ");
    let (status, body) = verify(&app, &challenge, &typed).await;
    assert_eq!(status, 200, "{body}");
    let (_, challenge) = password_step(&app, "bob").await;
    let (status, body) = verify(&app, &challenge, &recovery[0]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_code"))
    );
    let (status, _) = verify(&app, &challenge, &recovery[1]).await;
    assert_eq!(status, 200);
    // Each recovery login is in the account's audit log, the refused reuse is not.
    let used = app
        .audit_actions(&t)
        .await
        .iter()
        .filter(|a| *a == "user.recovery_code_used")
        .count();
    assert_eq!(used, 2);
}

/// An SMS gateway on loopback: answers 200 to every POST and hands over each JSON body.
async fn sms_gateway() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(at) = text.find("\r\n\r\n") {
                        let length: usize = text[..at]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= at + 4 + length {
                            let body: Value = serde_json::from_slice(&buf[at + 4..at + 4 + length])
                                .unwrap_or(Value::Null);
                            let _ = tx.send(body);
                            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

#[actix_web::test]
async fn with_an_sms_gateway_configured_the_code_is_posted_to_it() {
    let (url, mut posted) = sms_gateway().await;
    let app = TestApp::spawn_with(|s| {
        s.sms.transport = support_broker::config::SmsTransportKind::Http;
        s.sms.http.url = url;
    })
    .await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "sam", "sms").await;
    let (_, challenge) = password_step(&app, "sam").await;
    let sms = tokio::time::timeout(Duration::from_secs(5), posted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sms["to"], "+4915112345678");
    let code = code_in(sms["text"].as_str().unwrap());
    let (status, _) = verify(&app, &challenge, &code).await;
    assert_eq!(status, 200);
}

/// The attack: guesses fired at the same moment over many connections, hoping that each one
/// reads the counters before any other writes them back.
#[actix_web::test]
async fn parallel_wrong_guesses_count_one_by_one_and_burn_the_code_after_three() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let id = with_two_factor(&app, &t, "eve", "email").await;
    let (_, challenge) = password_step(&app, "eve").await;
    let code = last_mail_code(&app, "eve@example.com");
    let guesses = (0..200).map(|i| {
        let guess = format!("{:05}", (code.parse::<u32>().unwrap() + 1 + i) % 100_000);
        let app = &app;
        let challenge = &challenge;
        async move { verify(app, challenge, &guess).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let judged = answers
        .iter()
        .filter(|(s, b)| *s == 401 && b["error"]["code"] == "invalid_code")
        .count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 410 && b["error"]["code"] == "challenge_expired")
        .count();
    assert_eq!(judged, 3, "exactly three guesses were judged");
    assert_eq!(refused, 197, "every later guess met a burned code");
    // The burned code is dead even when right, and the user's count is three, not one.
    let (status, _) = verify(&app, &challenge, &code).await;
    assert_eq!(status, 410);
    let failures: i64 = support_broker::store::db::query_scalar(
        "SELECT consecutive_failures FROM code_guards WHERE user_id = ?",
    )
    .bind(&id)
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(failures, 3);
}

#[actix_web::test]
async fn one_right_code_sent_twenty_times_at_once_yields_one_token() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let (_, challenge) = password_step(&app, "eve").await;
    let code = last_mail_code(&app, "eve@example.com");
    let answers =
        futures_util::future::join_all((0..20).map(|_| verify(&app, &challenge, &code))).await;
    let tokens = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(tokens, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 410));
}

#[actix_web::test]
async fn parallel_logins_send_no_more_codes_than_the_cap() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    with_two_factor(&app, &t, "eve", "email").await;
    let answers = futures_util::future::join_all((0..12).map(|_| password_step(&app, "eve"))).await;
    let sent = answers.iter().filter(|(s, _)| *s == 200).count();
    let capped = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b["error"]["code"] == "too_many_codes")
        .count();
    assert_eq!((sent, capped), (3, 9), "{answers:?}");
    let mails = crate::helpers::outbox_mails(&app)
        .iter()
        .filter(|m| m.contains("login code"))
        .count();
    assert_eq!(mails, 3);
}
