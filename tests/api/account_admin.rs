//! Running an account over the API: mails in the user's language, email changes confirmed by
//! the new address, the audit log in words with filters, paging and CSV, enrollment codes,
//! an admin's device actions, the default invitation policy, deleted users, group visibility.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, outbox_mails};

/// The token of the newest email-confirmation link mailed to `to`.
fn confirm_token(app: &TestApp, to: &str) -> String {
    let mail = outbox_mails(app)
        .into_iter()
        .rev()
        .find(|m| m.contains(&format!("To: {to}")) && m.contains("confirm-email?token="))
        .expect("a confirmation mail");
    let at = mail.find("confirm-email?token=").unwrap() + "confirm-email?token=".len();
    mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn confirm(app: &TestApp, token: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/auth/email-confirm",
        None,
        Some(json!({ "token": token })),
    )
    .await
}

async fn patch_user(app: &TestApp, token: &str, user: &str, body: Value) -> (u16, Value) {
    app.call("PATCH", &format!("/users/{user}"), Some(token), Some(body))
        .await
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[actix_web::test]
async fn a_new_email_address_counts_only_once_the_link_mailed_to_it_is_opened() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob, bob_token) = app.user(&t, "bob", &[]).await;

    let (status, body) = patch_user(
        &app,
        &t.admin,
        &bob,
        json!({"email": "bob.new@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["email"], "bob@example.com",
        "not before it is confirmed"
    );
    assert_eq!(body["email_pending"], "bob.new@example.com");
    let (_, shown) = app.get(&format!("/users/{bob}"), &t.admin).await;
    assert_eq!(
        (shown["email"].as_str(), shown["email_pending"].as_str()),
        (Some("bob@example.com"), Some("bob.new@example.com"))
    );
    let token = confirm_token(&app, "bob.new@example.com");
    assert!(token.starts_with("sbm_"), "{token}");

    let (status, body) = confirm(&app, "sbm_not-a-real-link").await;
    assert_eq!((status, code(&body)), (404, Some("token_not_found")));
    let (status, body) = confirm(&app, &token).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("bob.new@example.com"))
    );
    let (status, body) = confirm(&app, &token).await;
    assert_eq!((status, code(&body)), (410, Some("token_used")));
    let (_, me) = app.get("/me", &bob_token).await;
    assert_eq!(me["user"]["email"], "bob.new@example.com");

    // The old address stays taken for good, like every address ever used.
    let (status, body) = app
        .post(&format!("/accounts/{}/users", t.id), &t.admin,
              json!({"username": "bobby", "first_name": "B", "last_name": "C", "email": "BOB@example.com"}))
        .await;
    assert_eq!((status, code(&body)), (409, Some("email_taken")));
    // An address in use cannot even be asked for.
    let (status, body) = patch_user(
        &app,
        &t.admin,
        &bob,
        json!({"email": "acme-admin@example.com"}),
    )
    .await;
    assert_eq!((status, code(&body)), (409, Some("email_taken")));

    let actions = app.audit_actions(&t).await;
    assert!(
        actions.contains(&"user.email_change_requested".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"user.email_confirmed".to_string()),
        "{actions:?}"
    );
}

/// The attack: two users race for one new address through their links; exactly one gets it.
#[actix_web::test]
async fn two_users_confirming_the_same_new_address_at_once_leave_it_to_one() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (carol, _) = app.user(&t, "carol", &[]).await;
    let (dave, _) = app.user(&t, "dave", &[]).await;
    for user in [&carol, &dave] {
        let (status, body) =
            patch_user(&app, &t.admin, user, json!({"email": "shared@example.com"})).await;
        assert_eq!(status, 200, "{body}");
    }
    let tokens: Vec<String> = outbox_mails(&app)
        .iter()
        .filter(|m| m.contains("To: shared@example.com"))
        .map(|m| {
            let at = m.find("confirm-email?token=").unwrap() + "confirm-email?token=".len();
            m[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        })
        .collect();
    assert_eq!(tokens.len(), 2);
    let answers = futures_util::future::join_all(tokens.iter().map(|t| confirm(&app, t))).await;
    let won = answers.iter().filter(|(s, _)| *s == 200).count();
    let lost = answers
        .iter()
        .filter(|(s, b)| *s == 409 && code(b) == Some("email_taken"))
        .count();
    assert_eq!((won, lost), (1, 1), "{answers:?}");
    let (_, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    let holders = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == "shared@example.com")
        .count();
    assert_eq!(holders, 1);
}

#[actix_web::test]
async fn users_edit_their_own_name_and_language_but_not_their_address_without_the_right() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob, bob_token) = app.user(&t, "bob", &["sessions"]).await;
    let (status, body) = patch_user(
        &app,
        &bob_token,
        &bob,
        json!({"first_name": "Robert", "language": "de"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["first_name"].as_str(), body["language"].as_str()),
        (Some("Robert"), Some("de"))
    );
    let (status, body) =
        patch_user(&app, &bob_token, &bob, json!({"email": "me@example.com"})).await;
    assert_eq!((status, code(&body)), (403, Some("missing_right")));
    let (status, body) =
        patch_user(&app, &bob_token, &t.admin_id, json!({"first_name": "X"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = patch_user(&app, &bob_token, &bob, json!({"language": "fr"})).await;
    assert_eq!((status, code(&body)), (422, Some("invalid_language")));
    let (_, me) = app.get("/me", &bob_token).await;
    assert_eq!(
        me["user"]["language"], "de",
        "a refused change changes nothing"
    );
}

#[actix_web::test]
async fn mails_speak_the_users_language_and_name_the_account() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Gärtnerei Huber").await;
    let users = format!("/accounts/{}/users", t.id);

    // A new user told in German, invited by a link to set its password.
    let (status, jonas) = app
        .post(
            &users,
            &t.admin,
            json!({"username": "jonas", "first_name": "Jonas", "last_name": "H",
                                        "email": "jonas@example.com", "language": "de"}),
        )
        .await;
    assert_eq!(
        (status, jonas["language"].as_str()),
        (201, Some("de")),
        "{jonas}"
    );
    let mail = outbox_mails(&app)
        .into_iter()
        .find(|m| m.contains("To: jonas@example.com"))
        .expect("a set-password mail");
    assert!(
        mail.contains("für Sie wurde ein Zugang in \"Gärtnerei Huber\" angelegt"),
        "{mail}"
    );

    // Without a language the admin's browser language is taken.
    let res = app
        .http
        .post(app.url(&users))
        .bearer_auth(&t.admin)
        .header("Accept-Language", "de-CH, de;q=0.9, en;q=0.5")
        .json(&json!({"username": "mia", "first_name": "Mia", "last_name": "H", "email": "mia@example.com"}))
        .send()
        .await
        .unwrap();
    let mia: Value = res.json().await.unwrap();
    assert_eq!(mia["language"], "de", "{mia}");
    let (status, body) = app
        .post(
            &users,
            &t.admin,
            json!({"username": "fred", "first_name": "F", "last_name": "H",
                                        "email": "fred@example.com", "language": "klingon"}),
        )
        .await;
    assert_eq!((status, code(&body)), (422, Some("invalid_language")));

    // An invitation goes out in the inviter's language, with the message but never the comment.
    patch_user(&app, &t.admin, &t.admin_id, json!({"language": "de"})).await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (session, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &session).await;
    let (status, body) = app
        .post(&format!("/sessions/{session}/invitations"), &t.admin,
              json!({"policy_id": policy, "guest_name": "Petra", "email": "petra@example.com",
                     "comment": "internal: customer is grumpy", "message": "Bitte halten Sie die Seriennummer bereit."}))
        .await;
    assert_eq!(status, 201, "{body}");
    let mail = outbox_mails(&app)
        .into_iter()
        .find(|m| m.contains("To: petra@example.com"))
        .expect("an invitation mail");
    assert!(
        mail.contains("(Gärtnerei Huber) lädt Sie zur Support-Sitzung"),
        "{mail}"
    );
    assert!(
        mail.contains("Bitte halten Sie die Seriennummer bereit."),
        "{mail}"
    );
    assert!(!mail.contains("grumpy"), "the comment is internal: {mail}");
    let report = app.report(&t.admin, &session).await;
    assert!(
        report.to_string().contains("customer is grumpy"),
        "the comment stays in the report"
    );
}

#[actix_web::test]
async fn the_audit_log_reads_in_words_filters_pages_and_exports() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let users = format!("/accounts/{}/users", t.id);
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        let (status, _) = app
            .post(&users, &t.admin, json!({"username": name, "first_name": "U", "last_name": name,
                                            "email": format!("{name}@example.com"), "password": PASSWORD}))
            .await;
        assert_eq!(status, 201);
    }
    let (_, listed) = app.get(&users, &t.admin).await;
    let u5 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "u5")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.call("DELETE", &format!("/users/{u5}"), Some(&t.admin), None)
        .await;
    let audit = format!("/accounts/{}/audit", t.id);

    // Words in the reader's language, targets by name.
    let de: Value = app
        .http
        .get(app.url(&audit))
        .bearer_auth(&t.admin)
        .header("Accept-Language", "de")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, en) = app.get(&audit, &t.admin).await;
    let deleted_de = de
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.deleted")
        .unwrap();
    let deleted_en = en
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.deleted")
        .unwrap();
    assert_eq!(deleted_en["action_text"], "deleted a user");
    assert_eq!(deleted_de["action_text"], "Benutzer gelöscht");
    assert_eq!(
        (
            deleted_en["target_kind"].as_str(),
            deleted_en["target_name"].as_str()
        ),
        (Some("user"), Some("u5"))
    );
    assert_eq!(deleted_en["via"], "login");
    assert!(
        deleted_en["via_text"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    // Filters.
    let (_, created) = app
        .get(&format!("{audit}?action=user.created"), &t.admin)
        .await;
    assert_eq!(created.as_array().unwrap().len(), 5, "{created}");
    let (_, family) = app.get(&format!("{audit}?action=user."), &t.admin).await;
    assert!(
        family
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("user."))
    );
    assert_eq!(
        family.as_array().unwrap().len(),
        6,
        "five created, one deleted"
    );
    let (_, by_admin) = app
        .get(&format!("{audit}?actor={}", t.admin_id), &t.admin)
        .await;
    assert!(!by_admin.as_array().unwrap().is_empty());
    let (_, by_nobody) = app.get(&format!("{audit}?actor={u5}"), &t.admin).await;
    assert_eq!(by_nobody, json!([]));
    let (_, by_key) = app.get(&format!("{audit}?via=api_key"), &t.admin).await;
    assert_eq!(by_key, json!([]));
    let (_, future) = app.get(&format!("{audit}?from=2999-01-01"), &t.admin).await;
    assert_eq!(future, json!([]));
    let (_, past) = app.get(&format!("{audit}?to=2000-01-01"), &t.admin).await;
    assert_eq!(past, json!([]));
    for bad in [
        "from=yesterday",
        "limit=0",
        "limit=1001",
        "action=user%20created",
    ] {
        let (status, body) = app.get(&format!("{audit}?{bad}"), &t.admin).await;
        assert_eq!(
            (status, code(&body)),
            (422, Some("invalid_filter")),
            "{bad}: {body}"
        );
    }

    // Paging: a full page names the next one; the pages neither overlap nor miss an entry.
    let res = app
        .http
        .get(app.url(&format!("{audit}?action=user.created&limit=2")))
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    let mut next = res
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_string());
    let mut seen: Vec<String> = res
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut pages = 1;
    while let Some(link) = next {
        let path = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string();
        assert!(link.ends_with("rel=\"next\""), "{link}");
        let res = app
            .http
            .get(app.url(&path))
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap();
        next = res
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let page: Value = res.json().await.unwrap();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        assert!(pages <= 4, "paging ends");
    }
    let ids: Vec<String> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen, ids,
        "pages of 2 give the same entries in the same order"
    );

    // CSV export, in words.
    let res = app
        .http
        .get(app.url(&format!("{audit}/export?action=user.")))
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = res.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "at",
            "actor",
            "actor_user_id",
            "via",
            "via_text",
            "action",
            "action_text",
            "target_kind",
            "target_id",
            "target_name",
            "details",
            "seq",
            "prev_hash",
            "hash"
        ]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .any(|r| &r[5] == "user.deleted" && &r[6] == "deleted a user" && &r[9] == "u5")
    );

    // Another account's admin reads none of it.
    for path in [audit.clone(), format!("{audit}/export")] {
        let (status, _) = app.get(&path, &other.admin).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[actix_web::test]
async fn enrollment_codes_are_listed_and_an_open_one_is_revoked_for_good() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let codes = format!("/accounts/{}/enrollment-codes", t.id);
    let (status, open) = app
        .post(&codes, &t.admin, json!({"expires_in_hours": 2}))
        .await;
    assert_eq!(status, 201, "{open}");
    let (status, body) = app
        .post(&codes, &t.admin, json!({"expires_in_hours": 721}))
        .await;
    assert_eq!((status, code(&body)), (422, Some("invalid_expiry")));
    let (_, used) = app.post(&codes, &t.admin, json!({})).await;
    let (device, _) = app
        .enroll(used["code"].as_str().unwrap(), "S-1", "android")
        .await;

    let (status, list) = app.get(&codes, &t.admin).await;
    assert_eq!(status, 200);
    let state_of = |list: &Value, id: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == *id)
            .map(|c| c["state"].clone())
    };
    assert_eq!(state_of(&list, &open["id"]), Some(json!("open")));
    assert_eq!(state_of(&list, &used["id"]), Some(json!("used")));
    let used_row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == used["id"])
        .unwrap();
    assert_eq!(used_row["device_id"].as_str(), Some(device.as_str()));
    assert!(
        list.to_string()
            .find(open["code"].as_str().unwrap())
            .is_none(),
        "codes are stored hashed and never listed"
    );

    // Another account cannot see or revoke them; a spent code cannot be revoked.
    let (status, _) = app.get(&codes, &other.admin).await;
    assert_eq!(status, 404);
    let open_path = format!("{codes}/{}", open["id"].as_str().unwrap());
    let (status, body) = app
        .call(
            "DELETE",
            &format!(
                "/accounts/{}/enrollment-codes/{}",
                other.id,
                open["id"].as_str().unwrap()
            ),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (404, Some("enrollment_code_not_found"))
    );
    let (status, body) = app
        .call(
            "DELETE",
            &format!("{codes}/{}", used["id"].as_str().unwrap()),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (409, Some("code_spent")));

    // Revoked twice at once: one revocation, then the code admits nobody.
    let answers = futures_util::future::join_all(
        (0..5).map(|_| app.call("DELETE", &open_path, Some(&t.admin), None)),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{answers:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 409),
        "{answers:?}"
    );
    let (status, body) = app
        .call(
            "POST",
            "/enroll",
            None,
            Some(
                json!({"code": open["code"], "serial": "S-2", "platform": "ios", "name": "Phone"}),
            ),
        )
        .await;
    assert_eq!((status, code(&body)), (410, Some("code_revoked")));
    let (_, list) = app.get(&codes, &t.admin).await;
    assert_eq!(state_of(&list, &open["id"]), Some(json!("revoked")));
    let revocations = app
        .audit_actions(&t)
        .await
        .iter()
        .filter(|a| *a == "device.enrollment_code_revoked")
        .count();
    assert_eq!(revocations, 1);
}

#[actix_web::test]
async fn an_admin_acts_on_devices_it_sees_and_a_wipe_needs_its_password() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let groups = format!("/accounts/{}/groups", t.id);
    let (_, berlin) = app.post(&groups, &t.admin, json!({"name": "Berlin"})).await;
    let (_, munich) = app.post(&groups, &t.admin, json!({"name": "Munich"})).await;
    let (status, phone) = app
        .post(
            &format!("/accounts/{}/devices", t.id),
            &t.admin,
            json!({"name": "Phone", "serial": "P-1", "platform": "ios", "group_id": munich["id"]}),
        )
        .await;
    assert_eq!(status, 201, "{phone}");
    let phone = phone["id"].as_str().unwrap().to_string();
    let actions = format!("/devices/{phone}/actions");

    let (status, lock) = app
        .post(&actions, &t.admin, json!({"action": "lock"}))
        .await;
    assert_eq!(
        (status, lock["status"].as_str()),
        (202, Some("queued")),
        "{lock}"
    );
    let (status, progress) = app
        .get(
            &format!("{actions}/{}", lock["command_id"].as_str().unwrap()),
            &t.admin,
        )
        .await;
    assert_eq!((status, progress["status"].as_str()), (200, Some("queued")));
    let (status, body) = app
        .post(&actions, &t.admin, json!({"action": "wipe"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("reauth_required")),
        "{body}"
    );
    let (status, body) = app
        .post(
            &actions,
            &t.admin,
            json!({"action": "wipe", "password": "wrong one"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (403, Some("reauth_required")),
        "{body}"
    );
    let (status, _) = app
        .post(
            &actions,
            &t.admin,
            json!({"action": "wipe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202);

    // A reader may not act, a Berlin-only editor does not see the Munich phone, nor does
    // another account.
    let (reader_id, reader) = app.user(&t, "reader", &["devices"]).await;
    app.set_rights(&t.admin, &reader_id, json!({"areas": ["devices"], "objects": {"create": false, "edit": false, "delete": false}, "groups": "all"})).await;
    let (status, body) = app.post(&actions, &reader, json!({"action": "lock"})).await;
    assert_eq!((status, code(&body)), (403, Some("missing_right")));
    let (berliner_id, berliner) = app.user(&t, "berliner", &["devices"]).await;
    app.set_rights(&t.admin, &berliner_id, json!({"areas": ["devices"], "objects": {"create": true, "edit": true, "delete": true}, "groups": [berlin["id"]]})).await;
    let (status, _) = app
        .post(&actions, &berliner, json!({"action": "lock"}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(&actions, &other.admin, json!({"action": "lock"}))
        .await;
    assert_eq!(status, 404);
    let laptop = app.device(&t, "W-1", "windows").await;
    let (status, body) = app
        .post(
            &format!("/devices/{laptop}/actions"),
            &t.admin,
            json!({"action": "lock"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (422, Some("action_not_supported")),
        "{body}"
    );

    let (_, audit) = app
        .get(
            &format!("/accounts/{}/audit?action=device.action", t.id),
            &t.admin,
        )
        .await;
    let done: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        done,
        ["wipe", "lock"],
        "a wipe and a lock read differently in the log"
    );
}

#[actix_web::test]
async fn the_default_invitation_policy_is_one_of_the_account_and_goes_with_its_policy() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let mine = app.policy(&t, "Chat only", &["chat"]).await;
    let theirs = app.policy(&other, "Theirs", &["chat"]).await;
    let account = format!("/accounts/{}", t.id);
    let (status, body) = app
        .call(
            "PATCH",
            &account,
            Some(&t.admin),
            Some(json!({"default_policy_id": theirs})),
        )
        .await;
    assert_eq!((status, code(&body)), (404, Some("policy_not_found")));
    let (status, body) = app
        .call(
            "PATCH",
            &account,
            Some(&t.admin),
            Some(json!({"default_policy_id": mine})),
        )
        .await;
    assert_eq!(
        (status, body["default_policy_id"].as_str()),
        (200, Some(mine.as_str())),
        "{body}"
    );
    let (tech_id, tech) = app.user(&t, "tech", &["sessions"]).await;
    let _ = tech_id;
    let (status, _) = app
        .call(
            "PATCH",
            &account,
            Some(&tech),
            Some(json!({"default_policy_id": null})),
        )
        .await;
    assert_eq!(status, 403);
    let (_, shown) = app.get(&account, &tech).await;
    assert_eq!(
        shown["default_policy_id"].as_str(),
        Some(mine.as_str()),
        "technicians read it to preselect it"
    );

    let (status, _) = app
        .call("DELETE", &format!("/policies/{mine}"), Some(&t.admin), None)
        .await;
    assert_eq!(status, 204);
    let (_, shown) = app.get(&account, &t.admin).await;
    assert_eq!(
        shown["default_policy_id"],
        Value::Null,
        "a deleted policy is no default"
    );
}

#[actix_web::test]
async fn platform_support_lists_an_accounts_deleted_users_to_restore_them() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob, _) = app.user(&t, "bob", &[]).await;
    app.call("DELETE", &format!("/users/{bob}"), Some(&t.admin), None)
        .await;
    let path = format!("/accounts/{}/deleted-users", t.id);
    let (status, body) = app.get(&path, &t.admin).await;
    assert_eq!((status, code(&body)), (403, Some("platform_only")));
    let (status, deleted) = app.get(&path, &app.admin).await;
    assert_eq!(status, 200);
    let deleted = deleted.as_array().unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0]["username"].as_str(), deleted[0]["id"].as_str()),
        (Some("bob"), Some(bob.as_str()))
    );
    assert!(deleted[0]["deleted_at"].is_string());
    let (status, _) = app
        .get(
            "/accounts/0195f3a0-0000-7000-8000-000000000000/deleted-users",
            &app.admin,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(&format!("/users/{bob}/restore"), &app.admin, json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, after) = app.get(&path, &app.admin).await;
    assert_eq!(after, json!([]));
}

#[actix_web::test]
async fn the_group_list_says_who_sees_each_group_to_those_who_may_read_users() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let groups = format!("/accounts/{}/groups", t.id);
    let (_, berlin) = app.post(&groups, &t.admin, json!({"name": "Berlin"})).await;
    app.post(&groups, &t.admin, json!({"name": "Munich"})).await;
    let (dana_id, dana) = app.user(&t, "dana", &["devices"]).await;
    app.set_rights(&t.admin, &dana_id, json!({"areas": ["devices"], "objects": {"create": false, "edit": false, "delete": false}, "groups": [berlin["id"]]})).await;
    let (_, list) = app.get(&groups, &t.admin).await;
    let seen_by = |name: &str| -> Vec<String> {
        let g = list
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap();
        serde_json::from_value(g["seen_by"].clone()).unwrap()
    };
    assert!(seen_by("Berlin").contains(&"dana".to_string()));
    assert!(!seen_by("Munich").contains(&"dana".to_string()));
    assert!(seen_by("Munich").contains(&"acme-admin".to_string()));
    let (_, hers) = app.get(&groups, &dana).await;
    assert_eq!(hers[0]["seen_by"], Value::Null, "dana may not read users");
}

/// A body that does not parse must not mint a code with the defaults.
#[actix_web::test]
async fn a_malformed_enrollment_code_request_mints_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let codes = format!("/accounts/{}/enrollment-codes", t.id);
    for body in [
        json!({"expires_in_hours": "soon"}),
        json!({"expires_in_hours": 2, "group": "typo"}),
        json!([null, null]),
    ] {
        let (status, answer) = app.post(&codes, &t.admin, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (400, Some("invalid_json")),
            "{body}"
        );
    }
    let (status, answer) = app
        .post(&codes, &t.admin, json!({"expires_in_hours": 0}))
        .await;
    assert_eq!((status, code(&answer)), (422, Some("invalid_expiry")));
    let (_, list) = app.get(&codes, &t.admin).await;
    assert_eq!(list, json!([]), "no code was made");
    // Without a body: a code with the defaults.
    let res = app
        .http
        .post(app.url(&codes))
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}
