//! `support-broker migrate --from sqlite:DIR --to postgres://…`: an installation outgrows one
//! machine and moves to PostgreSQL without losing users, audit or reports.

use std::process::Command;

use serde_json::json;

use crate::helpers::*;

fn migrate(from: &std::path::Path, to: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_support-broker"))
        .arg("migrate")
        .arg("--from")
        .arg(format!("sqlite:{}", from.display()))
        .arg("--to")
        .arg(to)
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `value` with every time cut to microseconds (what PostgreSQL keeps; SQLite kept nanoseconds).
fn micros(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::String(
                chrono::SubsecRound::trunc_subsecs(t.with_timezone(&chrono::Utc), 6)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(micros).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), micros(v))).collect())
        }
        _ => value.clone(),
    }
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: scripts/postgres-suite runs it"]
async fn an_installation_moves_from_sqlite_to_postgres_with_users_audit_and_reports() {
    let server = postgres_server().expect("SB_TEST_POSTGRES_URL names the PostgreSQL server");
    // A SQLite installation in use: users, a partner grant, a device, a session with chat.
    let app = TestApp::spawn_on_sqlite().await;
    let t = app.tenant("Acme").await;
    let (bob_id, _) = app.user(&t, "bob", &["sessions"]).await;
    let partner = app.partner("Fixit", true).await;
    let (status, request) = app
        .post(
            "/access-requests",
            &partner.admin,
            json!({"account_id": t.id, "support_user": true}),
        )
        .await;
    assert_eq!(status, 201, "{request}");
    let (status, grant) = app
        .post(
            &format!(
                "/access-requests/{}/approve",
                request["id"].as_str().unwrap()
            ),
            &t.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    app.device(&t, "SN-1", "android").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut customer = app.ws_customer(&key).await;
    owner.chat("hello from before the move").await;
    customer.expect("chat").await;
    let (_, _join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    owner.send_json(json!({"type": "end_session"})).await;
    owner.expect("session_ended").await;
    let report_before = app.report(&t.admin, &sid).await;
    let (_, users_before) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    drop((owner, customer));
    app.shutdown();
    let TestApp {
        data_dir, stopped, ..
    } = app;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await;
    // An entry of an earlier version, its time to the nanosecond, is sealed into the chain by
    // the next start on SQLite: its hash is over all nine digits.
    {
        let db = support_broker::store::db::Pool::Sqlite(
            sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                data_dir.path().join("broker.db").display()
            ))
            .await
            .unwrap(),
        );
        support_broker::store::db::query(
            "INSERT INTO audit_log (id, account_id, actor_name, via, action, details, at)
             VALUES (?, ?, 'ada', 'login', 'user.updated', '{}', ?)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&t.id)
        .bind(
            "2099-01-01T10:00:00.123456789Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        )
        .execute(&db)
        .await
        .unwrap();
        db.close().await;
    }
    let again = TestApp::spawn_at(data_dir, None, |_| {}).await;
    let (_, check) = again
        .get(
            &format!("/accounts/{}/audit/verify", t.id),
            &again.login("acme-admin", PASSWORD).await,
        )
        .await;
    assert_eq!(check["intact"], true, "{check}");
    let audit_before = again
        .audit_actions(&Tenant {
            id: t.id.clone(),
            admin_id: t.admin_id.clone(),
            admin: again.login("acme-admin", PASSWORD).await,
        })
        .await;
    again.shutdown();
    let TestApp {
        data_dir, stopped, ..
    } = again;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await;

    // Into a new database: every table copied and counted.
    let target = TestDatabase::create(&server).await;
    let (ok, out, err) = migrate(data_dir.path(), &target.url);
    assert!(ok, "{out}\n{err}");
    for table in [
        "users",
        "audit_log",
        "chat_chunks",
        "access_grants",
        "devices",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(table)),
            "{table} in\n{out}"
        );
    }
    assert!(out.contains("counts checked"), "{out}");

    // A second copy into it is refused: nothing is merged into an installation.
    let (ok, out, err) = migrate(data_dir.path(), &target.url);
    assert!(!ok, "{out}");
    assert!(err.contains("not empty"), "{err}");
    // As is a source that is not there, and a target that is not PostgreSQL.
    let (ok, _, err) = migrate(&data_dir.path().join("nowhere"), &target.url);
    assert!(!ok && err.contains("no SQLite database"), "{err}");
    let (ok, _, err) = migrate(data_dir.path(), "mysql://localhost/x");
    assert!(!ok && err.contains("--to"), "{err}");

    // The broker on PostgreSQL (same data dir: its key) has everything, and goes on.
    let moved = TestApp::spawn_at(data_dir, Some(target), |_| {}).await;
    let admin = moved.login("acme-admin", PASSWORD).await;
    let (_, users_after) = moved
        .get(&format!("/accounts/{}/users", t.id), &admin)
        .await;
    // The same users (the sign-in just made, and PostgreSQL's microseconds, aside).
    let who = |users: &serde_json::Value| {
        users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let mut u = u.clone();
                u.as_object_mut().unwrap().remove("last_login_at");
                u
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(who(&users_after), who(&users_before));
    let (status, bob) = moved.get(&format!("/users/{bob_id}"), &admin).await;
    assert_eq!((status, bob["username"].as_str()), (200, Some("bob")));
    let report_after = moved.report(&admin, &sid).await;
    for part in [
        "session",
        "chat",
        "participants",
        "invitations",
        "ownership",
    ] {
        assert_eq!(
            micros(&report_after[part]),
            micros(&report_before[part]),
            "{part}"
        );
    }
    let moved_tenant = Tenant {
        id: t.id.clone(),
        admin_id: t.admin_id.clone(),
        admin: admin.clone(),
    };
    let audit_after = moved.audit_actions(&moved_tenant).await;
    // Every entry came along; the one new entry is the sign-in just made.
    let mut expected = audit_before.clone();
    expected.push("login.succeeded".into());
    expected.sort();
    let mut got = audit_after.clone();
    got.sort();
    assert_eq!(got, expected);
    // The hash chain written on SQLite still verifies, and goes on on PostgreSQL.
    let (_, check) = moved
        .get(&format!("/accounts/{}/audit/verify", t.id), &admin)
        .await;
    assert_eq!(check["intact"], true, "{check}");
    // The partner's grant moved too: its support login still works.
    let (status, _) = moved
        .get(&format!("/accounts/{}/devices", t.id), &admin)
        .await;
    assert_eq!(status, 200);
    let (status, grants) = moved
        .get(&format!("/accounts/{}/access", t.id), &admin)
        .await;
    assert_eq!(status, 200, "{grants}");
    assert!(grants.to_string().contains("Fixit"), "{grants}");
}
