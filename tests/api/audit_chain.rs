//! The tamper-evident audit log: every entry of an account is chained to the one before it by
//! SHA-256; `verify` names the first broken link, the chain export checks offline with the
//! documented script, and rows edited, removed or slipped in by hand are caught.

use serde_json::{Value, json};

use crate::helpers::*;

async fn verify(app: &TestApp, t: &Tenant) -> Value {
    let (status, body) = app
        .get(&format!("/accounts/{}/audit/verify", t.id), &t.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The chain export saved to a file, checked by `scripts/verify-audit-export`.
async fn offline_check(app: &TestApp, t: &Tenant, extra: &[&str]) -> (bool, String) {
    let res = app
        .http
        .get(app.url(&format!("/accounts/{}/audit/chain", t.id)))
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit-chain.jsonl");
    std::fs::write(&file, text).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify-audit-export");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .args(extra)
        .output()
        .expect("python3 runs the offline check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[actix_web::test]
async fn the_audit_chain_holds_verifies_offline_and_catches_every_edit() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    // Entries of several kinds, some in parallel (the chain must not fork).
    let path = format!("/accounts/{}/policies", t.id);
    let creates = (0..20).map(|i| {
        app.post(
            &path,
            &t.admin,
            json!({"name": format!("Policy {i}"), "permissions": ["chat"], "description": "Zeile 1\nZeile \"2\" – ü"}),
        )
    });
    for (status, body) in futures_util::future::join_all(creates).await {
        assert_eq!(status, 201, "{body}");
    }
    app.user(&t, "tess", &["sessions"]).await;
    app.session(&t.admin).await;

    let check = verify(&app, &t).await;
    assert_eq!(check["intact"], true, "{check}");
    assert_eq!(check["outside_chain"], 0);
    let n = check["entries"].as_u64().unwrap();
    assert!(n >= 23, "{check}");
    // The list shows each entry's place and hashes; the newest carries the head.
    let (_, log) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert_eq!(log[0]["seq"], n);
    assert_eq!(log[0]["hash"], check["head"]);
    assert_eq!(log[1]["hash"], log[0]["prev_hash"]);
    let head = check["head"].as_str().unwrap().to_string();
    let (ok, said) = offline_check(&app, &t, &["--head", &head]).await;
    assert!(ok, "{said}");
    assert!(said.contains(&format!("intact: {n} entries")), "{said}");
    // The other account's chain is its own.
    assert_eq!(verify(&app, &other).await["intact"], true);
    let (status, _) = app
        .get(&format!("/accounts/{}/audit/verify", t.id), &other.admin)
        .await;
    assert_eq!(status, 404);

    let db = app.db().await;
    // A row changed by hand: caught at its place, online and offline.
    support_broker::store::db::query(
        "UPDATE audit_log SET details = '{\"name\":\"Harmless\"}' WHERE account_id = ? AND seq = 5",
    )
    .bind(&t.id)
    .execute(&db)
    .await
    .unwrap();
    let check = verify(&app, &t).await;
    assert_eq!(check["intact"], false);
    assert_eq!(check["first_broken"]["seq"], 5, "{check}");
    assert_eq!(check["first_broken"]["reason"], "hash_mismatch");
    let (ok, said) = offline_check(&app, &t, &[]).await;
    assert!(!ok);
    assert!(
        said.contains("seq 5") && said.contains("hash_mismatch"),
        "{said}"
    );

    // Even with its hash recomputed, the next link breaks.
    let rows: Vec<(i64, String)> = support_broker::store::db::query_as(
        "SELECT seq, hash FROM audit_log WHERE account_id = ? ORDER BY seq",
    )
    .bind(&t.id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len() as u64, n);
    support_broker::store::db::query(
        "UPDATE audit_log SET hash = ? WHERE account_id = ? AND seq = 5",
    )
    .bind("f".repeat(64))
    .bind(&t.id)
    .execute(&db)
    .await
    .unwrap();
    let check = verify(&app, &t).await;
    assert_eq!(
        check["first_broken"]["seq"], 5,
        "the changed hash no longer matches: {check}"
    );

    // A removed entry and a row slipped in without a place.
    app.policy(&other, "One", &["chat"]).await;
    app.policy(&other, "Two", &["chat"]).await;
    let other_check = verify(&app, &other).await;
    assert_eq!(other_check["intact"], true);
    support_broker::store::db::query("DELETE FROM audit_log WHERE account_id = ? AND seq = 2")
        .bind(&other.id)
        .execute(&db)
        .await
        .unwrap();
    let check = verify(&app, &other).await;
    assert_eq!(check["first_broken"]["reason"], "gap", "{check}");
    let (ok, said) = offline_check(&app, &other, &[]).await;
    assert!(!ok && said.contains("gap"), "{said}");
    support_broker::store::db::query(
        "INSERT INTO audit_log (id, account_id, actor_name, via, action, details, at)
         VALUES ('0190a0a0-0000-7000-8000-000000000001', ?, 'mallory', 'login', 'user.created', '{}', '2026-01-01 00:00:00+00:00')",
    )
    .bind(&other.id)
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(verify(&app, &other).await["outside_chain"], 1);
    // Deleting the newest entries cannot be seen in the rest: the head noted earlier can.
    let (ok, said) = offline_check(&app, &t, &["--head", &"e".repeat(64)]).await;
    assert!(!ok, "{said}");
}

/// The number of entries of `action` in the account's log.
async fn entries_of(app: &TestApp, t: &Tenant, action: &str) -> usize {
    let (status, log) = app
        .get(
            &format!("/accounts/{}/audit?action={action}&limit=500", t.id),
            &t.admin,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    log.as_array().unwrap().len()
}

#[actix_web::test]
async fn an_action_and_its_audit_entry_are_written_together_or_not_at_all() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let db = app.db().await;
    // The log refuses every new entry (a full disk, a broken chain, a failing database would
    // too): an action whose record cannot be written must not happen either.
    let (refuse, allow): (&[&'static str], &[&'static str]) = if app.on_postgres() {
        (
            &[
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$",
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            ],
            &["DROP TRIGGER refuse_audit ON audit_log"],
        )
    } else {
        (
            &["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
               BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
            &["DROP TRIGGER refuse_audit"],
        )
    };
    for sql in refuse {
        support_broker::store::db::query(*sql)
            .execute(&db)
            .await
            .unwrap();
    }
    let (status, _) = app
        .post(
            &format!("/accounts/{}/users", t.id),
            &t.admin,
            json!({"username": "ghost", "first_name": "G", "last_name": "Host",
                   "email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(status, 500, "the user cannot be created without its record");
    let (status, _) = app
        .post(
            &format!("/accounts/{}/policies", t.id),
            &t.admin,
            json!({"name": "Unrecorded", "permissions": ["chat"]}),
        )
        .await;
    assert_eq!(status, 500);
    let (status, _) = app
        .post(
            &format!("/accounts/{}/groups", t.id),
            &t.admin,
            json!({"name": "Unrecorded"}),
        )
        .await;
    assert_eq!(status, 500);
    for sql in allow {
        support_broker::store::db::query(*sql)
            .execute(&db)
            .await
            .unwrap();
    }

    // Nothing of it happened: the username is free, no policy or group is there.
    let (status, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    assert_eq!(status, 200);
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "ghost"),
        "{users}"
    );
    let (_, policies) = app
        .get(&format!("/accounts/{}/policies", t.id), &t.admin)
        .await;
    assert!(!policies.to_string().contains("Unrecorded"), "{policies}");
    let (_, groups) = app
        .get(&format!("/accounts/{}/groups", t.id), &t.admin)
        .await;
    assert!(!groups.to_string().contains("Unrecorded"), "{groups}");
    let (status, body) = app
        .post(
            &format!("/accounts/{}/users", t.id),
            &t.admin,
            json!({"username": "ghost", "first_name": "G", "last_name": "Host",
                   "email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(status, 201, "the name was never taken: {body}");
    assert_eq!(entries_of(&app, &t, "user.created").await, 1);

    // A write that finds nothing to do records nothing: a second delete of one policy.
    let policy = app.policy(&t, "Once", &["chat"]).await;
    for _ in 0..2 {
        app.call(
            "DELETE",
            &format!("/policies/{policy}"),
            Some(&t.admin),
            None,
        )
        .await;
    }
    assert_eq!(entries_of(&app, &t, "policy.deleted").await, 1);
    let check = verify(&app, &t).await;
    assert_eq!(check["intact"], true, "{check}");
}
