//! One-time invitation links, the join page, and browser tickets.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, Ws, code_in, eventually, outbox_mails};

#[actix_web::test]
async fn looking_at_the_join_link_does_not_use_it_up() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "View", &["chat", "view"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;

    let res = app
        .http
        .get(app.url(&format!("/join/{join}")))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!(info["session_subject"], "Printer offline");
    assert_eq!(info["guest_name"], "Gina");
    assert_eq!(info["policy"]["permissions"], json!(["chat", "view"]));
    assert!(
        info["ws_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ws/guest/{join}"))
    );

    // A browser gets a page; a mail scanner opening it twice changes nothing.
    for _ in 0..2 {
        let page = app
            .http
            .get(app.url(&format!("/join/{join}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        // The console's join page, which reads the invitation as JSON (as above).
        assert!(page.text().await.unwrap().contains("/assets/app.js"));
    }
    let guest = Ws::connect(info["ws_url"].as_str().unwrap(), None)
        .await
        .expect("the link still works");
    assert_eq!(guest.welcome["role"], "guest");
}

#[actix_web::test]
async fn a_used_link_is_gone_with_invitation_used() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let _guest = app.ws_guest(&join).await.unwrap();
    assert_eq!(app.ws_guest(&join).await.err(), Some(410));
    let (status, body) = app.call("GET", &format!("/join/{join}"), None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("invitation_used"))
    );
}

#[actix_web::test]
async fn an_expired_link_is_gone_with_invitation_expired() {
    let app = TestApp::spawn_with(|s| s.sessions.invitation_ttl_secs = 1).await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (inv, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = app.call("GET", &format!("/join/{join}"), None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("invitation_expired"))
    );
    assert_eq!(app.ws_guest(&join).await.err(), Some(410));
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["invitations"][0]["id"], inv.as_str());
    assert_eq!(report["invitations"][0]["outcome"], "expired");
}

#[actix_web::test]
async fn a_revoked_link_is_gone_with_invitation_revoked() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (inv, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    // Another account cannot even see it.
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/invitations/{inv}"),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/invitations/{inv}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.call("GET", &format!("/join/{join}"), None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("invitation_revoked"))
    );
    assert_eq!(app.ws_guest(&join).await.err(), Some(410));
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/invitations/{inv}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("invitation_revoked"))
    );
}

#[actix_web::test]
async fn an_unknown_link_is_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .call("GET", "/join/sbi_nothing-like-this", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("invitation_not_found"))
    );
    assert_eq!(app.ws_guest("sbi_nothing-like-this").await.err(), Some(404));
}

#[actix_web::test]
async fn of_two_concurrent_redemptions_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    for round in 0..5 {
        let (_, join) = app
            .invite(&t.admin, &sid, &policy, &format!("Gina {round}"))
            .await;
        let (a, b) = tokio::join!(app.ws_guest(&join), app.ws_guest(&join));
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}");
        let loser = if a.is_ok() { b.err() } else { a.err() };
        assert_eq!(loser, Some(410));
    }
}

#[actix_web::test]
async fn inviting_while_not_connected_is_refused_with_not_in_session() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let (status, body) = app
        .post(
            &format!("/sessions/{sid}/invitations"),
            &t.admin,
            json!({"policy_id": policy, "guest_name": "G", "comment": ""}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_in_session"))
    );
}

#[actix_web::test]
async fn a_guest_cannot_invite_and_bad_invitations_change_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let foreign_policy = app.policy(&other, "Theirs", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let path = format!("/sessions/{sid}/invitations");
    let (status, body) = app
        .post(
            &path,
            &t.admin,
            json!({"policy_id": foreign_policy, "guest_name": "G"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("policy_not_found"))
    );
    let (status, body) = app
        .post(
            &path,
            &t.admin,
            json!({"policy_id": policy, "guest_name": "  "}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_guest_name"))
    );
    let (status, body) = app
        .post(
            &path,
            &t.admin,
            json!({"policy_id": policy, "guest_name": "G", "email": "nope"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_email"))
    );
    // A comment may span lines, but a terminal escape sequence is refused.
    let (status, body) = app
        .post(
            &path,
            &t.admin,
            json!({"policy_id": policy, "guest_name": "G", "comment": "look\u{1b}[2J"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_comment"))
    );
    let (status, body) = app.post(&path, &t.admin, json!({"guest_name": "G"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, _) = app
        .post(
            &path,
            &other.admin,
            json!({"policy_id": foreign_policy, "guest_name": "G"}),
        )
        .await;
    assert_eq!(status, 404);
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(report["invitations"], json!([]));
}

#[actix_web::test]
async fn an_invitation_with_email_is_mailed_and_offers_a_mailto_link() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (status, body) = app
        .post(&format!("/sessions/{sid}/invitations"), &t.admin,
              json!({"policy_id": policy, "guest_name": "Gina", "comment": "Printer 2F:\n\tpaper jam", "email": "gina@partner.example"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mailed"], true);
    let url = body["url"].as_str().unwrap();
    assert!(
        body["mailto"]
            .as_str()
            .unwrap()
            .starts_with("mailto:gina%40partner.example?subject=")
    );
    let mails: Vec<String> = crate::helpers::outbox_mails(&app)
        .into_iter()
        .filter(|m| m.contains("To: gina@partner.example"))
        .collect();
    assert_eq!(mails.len(), 1);
    let text = &mails[0];
    assert!(text.contains(url), "the mail carries the link");
    assert!(
        !text.contains("paper jam"),
        "the comment is internal: {text}"
    );
    // The mailto link says what the server's mail says: the link, never the comment.
    let mailto = urlencoding::decode(body["mailto"].as_str().unwrap())
        .unwrap()
        .into_owned();
    assert!(mailto.contains(url), "{mailto}");
    assert!(mailto.contains("Acme"), "it names the account: {mailto}");
    assert!(!mailto.contains("paper jam"), "{mailto}");
    // A comment of several lines is kept as written.
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(
        report["invitations"][0]["comment"],
        "Printer 2F:\n\tpaper jam"
    );
}

#[actix_web::test]
async fn a_browser_ticket_admits_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (sid, _) = app.session(&t.admin).await;
    let (status, body) = app
        .post("/ws-tickets", &t.admin, json!({"session_id": sid}))
        .await;
    assert_eq!(status, 200);
    let ticket = body["ticket"].as_str().unwrap();
    let url = format!("{}/ws/sessions/{sid}?ticket={ticket}", app.ws_base);
    let ws = Ws::connect(&url, None).await.expect("ticket admits");
    assert_eq!(ws.welcome["role"], "owner");
    assert_eq!(Ws::connect(&url, None).await.err(), Some(401));
    let other = app.tenant("Other").await;
    let (status, _) = app
        .post("/ws-tickets", &other.admin, json!({"session_id": sid}))
        .await;
    assert_eq!(status, 404);
}

/// A minimal SMTP server on loopback: accepts any number of messages on any number of
/// connections and hands over each message's transcript (envelope and data).
async fn smtp_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    smtp_server_on(0).await
}

async fn smtp_server_on(port: u16) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test-smtp ready\r\n").await;
                let mut transcript = String::new();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    transcript.push_str(&line);
                    transcript.push('\n');
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        let _ = tx.send(std::mem::take(&mut transcript));
                        b"250 queued\r\n"
                    } else {
                        match line.get(..4).map(|c| c.to_ascii_uppercase()).as_deref() {
                            Some("EHLO") | Some("HELO") => b"250 test-smtp\r\n",
                            Some("DATA") => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            Some("QUIT") => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[actix_web::test]
async fn with_smtp_configured_the_invitation_goes_to_a_real_smtp_server() {
    let (port, mut received) = smtp_server().await;
    let app = TestApp::spawn_with(|s| {
        s.mail.transport = support_broker::config::MailTransportKind::Smtp;
        s.mail.smtp.host = "127.0.0.1".into();
        s.mail.smtp.port = port;
        s.mail.smtp.security = support_broker::config::SmtpSecurity::None;
    })
    .await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (status, body) = app
        .post(
            &format!("/sessions/{sid}/invitations"),
            &t.admin,
            json!({"policy_id": policy, "guest_name": "Gina", "email": "gina@partner.example"}),
        )
        .await;
    assert_eq!((status, &body["mailed"]), (201, &json!(true)), "{body}");
    let transcript = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let message = received.recv().await.expect("the SMTP server runs");
            if message.contains("RCPT TO:<gina@partner.example>") {
                break crate::helpers::decode_quoted_printable(&message);
            }
        }
    })
    .await
    .expect("the invitation arrives over SMTP");
    assert!(
        transcript.contains("RCPT TO:<gina@partner.example>"),
        "{transcript}"
    );
    assert!(
        transcript.contains(body["url"].as_str().unwrap()),
        "the mail carries the link"
    );
    assert!(
        !app.data_dir.path().join("outbox").exists()
            || std::fs::read_dir(app.data_dir.path().join("outbox"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[actix_web::test]
async fn a_mail_that_fails_is_kept_and_retried_until_it_goes_out() {
    // A port with nobody listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|s| {
        s.mail.transport = support_broker::config::MailTransportKind::Smtp;
        s.mail.smtp.host = "127.0.0.1".into();
        s.mail.smtp.port = port;
        s.mail.smtp.security = support_broker::config::SmtpSecurity::None;
        s.outbox.retry_interval_secs = 1;
    })
    .await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;
    let (status, body) = app
        .post(
            &format!("/sessions/{sid}/invitations"),
            &t.admin,
            json!({"policy_id": policy, "guest_name": "Gina", "email": "gina@partner.example"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["mailed"], false, "the SMTP server is down");

    // The server comes up; the retry delivers the invitation.
    let (_, mut received) = smtp_server_on(port).await;
    let transcript = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let message = received.recv().await.expect("the SMTP server runs");
            if message.contains("RCPT TO:<gina@partner.example>") {
                break crate::helpers::decode_quoted_printable(&message);
            }
        }
    })
    .await
    .expect("the invitation is retried and arrives");
    assert!(transcript.contains(body["url"].as_str().unwrap()));
}

/// The code of the newest join-code mail to `to`.
fn join_code_in_mail(app: &TestApp, to: &str) -> String {
    let mail = outbox_mails(app)
        .into_iter()
        .rev()
        .find(|m| m.contains(&format!("To: {to}")) && m.contains("code to join"))
        .expect("a join code mail");
    code_in(&mail)
}

#[actix_web::test]
async fn an_invitation_with_an_email_works_only_after_the_code_mailed_to_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let (status, inv) = app
        .post(
            &format!("/sessions/{sid}/invitations"),
            &t.admin,
            json!({"policy_id": policy, "guest_name": "Gina", "comment": "", "email": "gina@vendor.example"}),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let token = inv["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (status, info) = app.call("GET", &format!("/join/{token}"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(info["email_required"], true);
    assert_eq!(info["email_hint"], "g•••@vendor.example");

    // A forwarded link alone is worthless: no ticket, a made-up ticket.
    assert_eq!(app.ws_guest(&token).await.err(), Some(403));
    let forged = format!("{token}?ticket=sbj_forged");
    assert_eq!(app.ws_guest(&forged).await.err(), Some(403));

    // Wrong codes count like login codes: 3 burn a code.
    let (status, sent) = app
        .call("POST", &format!("/join/{token}/code"), None, None)
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["sent_to"], "g•••@vendor.example");
    let challenge = sent["challenge_id"].as_str().unwrap().to_string();
    let code = join_code_in_mail(&app, "gina@vendor.example");
    let first = if code.starts_with('0') { '1' } else { '0' };
    let wrong = format!("{first}{}", &code[1..]);
    for _ in 0..3 {
        let (status, body) = app
            .call(
                "POST",
                &format!("/join/{token}/verify"),
                None,
                Some(json!({"challenge_id": challenge, "code": wrong})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_code"))
        );
    }
    let (status, body) = app
        .call(
            "POST",
            &format!("/join/{token}/verify"),
            None,
            Some(json!({"challenge_id": challenge, "code": code})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("challenge_expired")),
        "burned"
    );
    // Malformed and unknown: clear refusals.
    let (status, _) = app
        .call(
            "POST",
            &format!("/join/{token}/verify"),
            None,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.call("POST", "/join/sbi_unknown/code", None, None).await;
    assert_eq!(status, 404);

    // A new code, guessed right by many at once: exactly one ticket.
    let (_, sent) = app
        .call("POST", &format!("/join/{token}/code"), None, None)
        .await;
    let challenge = sent["challenge_id"].as_str().unwrap().to_string();
    let code = join_code_in_mail(&app, "gina@vendor.example");
    let path = format!("/join/{token}/verify");
    let tries = (0..10).map(|_| {
        app.call(
            "POST",
            &path,
            None,
            Some(json!({"challenge_id": challenge, "code": code})),
        )
    });
    let answers = futures_util::future::join_all(tries).await;
    let tickets: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["ticket"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tickets.len(), 1, "one code, one ticket: {answers:?}");
    let mut guest = app
        .ws_guest(&format!("{token}?ticket={}", tickets[0]))
        .await
        .unwrap();
    owner.expect("participant_joined").await;
    guest.chat("verified").await;
    // The verified address is in the report; the link is used up.
    let report = app.report(&t.admin, &sid).await;
    assert_eq!(
        report["invitations"][0]["verified_email"],
        "gina@vendor.example"
    );
    assert_eq!(
        app.ws_guest(&format!("{token}?ticket={}", tickets[0]))
            .await
            .err(),
        Some(410)
    );
    // An invitation without an email needs no code (and has none to send).
    let (_, plain) = app.invite(&t.admin, &sid, &policy, "Paul").await;
    let (status, body) = app
        .call("POST", &format!("/join/{plain}/code"), None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_email_to_verify"))
    );
    assert!(app.ws_guest(&plain).await.is_ok());
}

/// The resume key of a guest's `welcome` as it is stored: its hash only, once the session's
/// report writer stored the redemption.
async fn stored_resume_hash(app: &TestApp) -> Option<String> {
    let db = app.db().await;
    let hash = support_broker::store::db::query_scalar::<Option<String>>(
        "SELECT guest_resume_hash FROM invitations WHERE outcome = 'redeemed'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    db.close().await;
    hash
}

#[actix_web::test]
async fn a_guest_comes_back_only_with_its_own_resume_key_and_only_into_a_held_place() {
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let mut guest = app.ws_guest(&join).await.expect("the guest joins");
    let pid = guest.id();
    let key = guest.welcome["resume_key"]
        .as_str()
        .expect("a guest's welcome carries its resume key")
        .to_string();
    assert!(key.starts_with("sbg_") && key.len() > 40, "{key}");
    assert!(
        owner.expect("participant_joined").await["participant"]
            .get("resume_key")
            .is_none()
    );
    // Stored as its hash only.
    let hex = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    assert!(eventually(|| async { stored_resume_hash(&app).await.is_some() }).await);
    assert_eq!(
        stored_resume_hash(&app).await.as_deref(),
        Some(hex.as_str())
    );

    let url =
        |pid: &str, key: &str| format!("{}/ws/guest/{join}?resume={pid}&key={key}", app.ws_base);
    // A wrong key, or the right key for another participant: refused before the upgrade.
    let wrong = format!("sbg_{}", "A".repeat(43));
    assert_eq!(Ws::connect(&url(&pid, &wrong), None).await.err(), Some(401));
    let someone = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        Ws::connect(&url(&someone, &key), None).await.err(),
        Some(401)
    );
    let unknown = format!("{}/ws/guest/sbi_nope?resume={pid}&key={key}", app.ws_base);
    assert_eq!(Ws::connect(&unknown, None).await.err(), Some(404));
    // The link itself stays used.
    assert_eq!(app.ws_guest(&join).await.err(), Some(410));

    // Its own key while its old connection is still held (a network that dropped without a
    // close): the new connection takes the same place, the old one is closed.
    let mut again = Ws::connect(&url(&pid, &key), None)
        .await
        .expect("the guest is back");
    assert_eq!(again.id(), pid);
    assert!(
        again.welcome.get("resume_key").is_none(),
        "the key is given once"
    );
    assert_eq!(guest.expect_close().await, Some(1000));
    again.chat("still here").await;
    assert_eq!(owner.expect("chat").await["text"], "still here");

    // Once it left, no place is held for it: the key opens nothing.
    again.send_json(json!({"type": "leave"})).await;
    assert_eq!(again.expect_close().await, Some(1000));
    owner.expect("participant_left").await;
    let mut late = Ws::connect_raw(&url(&pid, &key), None)
        .await
        .expect("the upgrade (the session decides on the place)");
    assert_eq!(late.expect_close().await, Some(4010));
}

/// A guest joined through the link `join` (the owner sees it) whose resume key is stored:
/// its socket, its participant id and the URL it comes back with.
async fn joined_guest(app: &TestApp, owner: &mut Ws, join: &str) -> (Ws, String, String) {
    let guest = app.ws_guest(join).await.expect("the guest joins");
    let pid = guest.id();
    let key = guest.welcome["resume_key"].as_str().unwrap().to_string();
    owner.expect("participant_joined").await;
    assert!(eventually(|| async { stored_resume_hash(app).await.is_some() }).await);
    let resume = format!("{}/ws/guest/{join}?resume={pid}&key={key}", app.ws_base);
    (guest, pid, resume)
}

#[actix_web::test]
async fn a_guest_whose_connection_drops_keeps_its_place_for_the_grace_and_comes_back_with_its_key()
{
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 5).await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let (guest, pid, resume) = joined_guest(&app, &mut owner, &join).await;

    // Its network drops (no leave frame): the place is held, shown as away.
    guest.drop_connection();
    assert_eq!(
        owner.expect("participant_away").await["participant_id"],
        pid.as_str()
    );
    let (_, view) = app.get(&format!("/sessions/{sid}"), &t.admin).await;
    let listed = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == pid.as_str())
        .cloned()
        .expect("the guest is still listed");
    assert_eq!(listed["away"], true);

    // Back with its key: the same place, the same permissions; the link stays used.
    let mut back = Ws::connect(&resume, None).await.expect("the guest is back");
    assert_eq!(back.id(), pid);
    assert_eq!(back.welcome["permissions"], json!(["chat"]));
    assert_eq!(
        owner.expect("participant_back").await["participant_id"],
        pid.as_str()
    );
    back.chat("still here").await;
    assert_eq!(owner.expect("chat").await["text"], "still here");
    assert_eq!(app.ws_guest(&join).await.err(), Some(410));
    // One row in the report, still present.
    let report = app.report(&t.admin, &sid).await;
    let rows: Vec<&serde_json::Value> = report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == pid.as_str())
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["left_at"].is_null(), "{}", rows[0]);
}

#[actix_web::test]
async fn a_guest_not_back_within_the_grace_leaves_as_disconnected_and_its_key_opens_nothing() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 1).await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let (guest, pid, resume) = joined_guest(&app, &mut owner, &join).await;
    guest.drop_connection();
    owner.expect("participant_away").await;
    let left = owner.expect("participant_left").await;
    assert_eq!(
        (left["participant_id"].as_str(), left["reason"].as_str()),
        (Some(pid.as_str()), Some("disconnected"))
    );
    let mut late = Ws::connect_raw(&resume, None).await.expect("the upgrade");
    assert_eq!(late.expect_close().await, Some(4010));
}

#[actix_web::test]
async fn a_guest_away_when_its_inviter_leaves_goes_with_it() {
    let app = TestApp::spawn_with(|s| s.sessions.reconnect_grace_secs = 30).await;
    let t = app.tenant("Acme").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut inviter = app.ws_technician(&bob, &sid).await;
    owner.expect("participant_joined").await;
    let (_, join) = app.invite(&bob, &sid, &policy, "Gina").await;
    let (guest, pid, resume) = joined_guest(&app, &mut owner, &join).await;
    guest.drop_connection();
    owner.expect("participant_away").await;
    // Bob leaves while Gina is away: her place goes with him, long before her grace ends.
    inviter.send_json(json!({"type": "leave"})).await;
    let mut gone = std::collections::HashMap::new();
    for _ in 0..2 {
        let left = owner.expect("participant_left").await;
        gone.insert(
            left["participant_id"].as_str().unwrap().to_string(),
            left["reason"].as_str().unwrap().to_string(),
        );
    }
    assert!(
        gone.contains_key(&pid),
        "the guest left with its inviter: {gone:?}"
    );
    let mut late = Ws::connect_raw(&resume, None).await.expect("the upgrade");
    assert_eq!(late.expect_close().await, Some(4010));
}
