//! The operator on the machine: `support-broker admin …` against the database of a running
//! broker, and the platform staff's account list.

use std::process::Command;

use serde_json::json;

use crate::helpers::*;

/// Runs `support-broker admin ARGS` on the app's data dir; answers (success, stdout, stderr).
fn admin(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_support-broker"));
    command
        .arg("admin")
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .args(args)
        .env("BROKER_HTTP__PUBLIC_URL", &app.base);
    if let Some(database) = &app.database {
        command.env("BROKER_DATABASE__URL", &database.url);
    }
    let out = command.output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn a_locked_out_operator_gets_back_in_from_the_machine() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;

    // A forgotten admin password: a link printed on the machine, used in the console's API.
    let (ok, out, err) = admin(&app, &["reset-password", "admin"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{}/set-password?token=", app.base)),
        "{out}"
    );
    let (status, _) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(
                json!({"token": set_password_token_in(&out), "password": "operator's new secret"}),
            ),
        )
        .await;
    assert_eq!(status, 204);
    app.login("admin", "operator's new secret").await;
    let (_, me) = app.get("/me", &app.admin).await;
    assert_eq!(
        me["user"],
        serde_json::Value::Null,
        "the old admin token ended with the new password"
    );

    // A user locked out of the code step is let back in.
    let db = app.db().await;
    support_broker::store::db::query(
        "INSERT INTO code_guards (user_id, consecutive_failures, locked_until)
         VALUES (?, 10, '2999-01-01T00:00:00Z')",
    )
    .bind(&t.admin_id)
    .execute(&db)
    .await
    .unwrap();
    let (ok, out, _) = admin(&app, &["unlock", "acme-admin@example.com"]);
    assert!(ok && out.contains("unlocked"), "{out}");
    let guards: i64 = support_broker::store::db::query_scalar("SELECT COUNT(*) FROM code_guards")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(guards, 0);
    db.close().await;

    // Accounts: listed, and a new one with its admin's link.
    let (ok, out, err) = admin(
        &app,
        &[
            "create-account",
            "--name",
            "Beta GmbH",
            "--kind",
            "partner",
            "--admin-username",
            "beta-admin",
            "--admin-email",
            "beta@example.com",
        ],
    );
    assert!(ok, "{err}");
    let (status, _) = app
        .call(
            "POST",
            "/auth/password",
            None,
            Some(json!({"token": set_password_token_in(&out), "password": "beta admin secret"})),
        )
        .await;
    assert_eq!(status, 204);
    let beta = app.login("beta-admin", "beta admin secret").await;
    let (_, me) = app.get("/me", &beta).await;
    assert_eq!(me["rights"]["areas"].as_array().unwrap().len(), 7);
    let (ok, out, _) = admin(&app, &["list-accounts"]);
    assert!(
        ok && out.contains("Acme") && out.contains("Beta GmbH") && out.contains("Platform"),
        "{out}"
    );
    // Bad input says what is wrong and changes nothing.
    let (ok, _, err) = admin(
        &app,
        &[
            "create-account",
            "--name",
            "Gamma",
            "--admin-username",
            "beta-admin",
            "--admin-email",
            "g@example.com",
        ],
    );
    assert!(!ok && err.contains("username is taken"), "{err}");
    let (ok, _, err) = admin(&app, &["reset-password", "nobody"]);
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, out, _) = admin(&app, &["list-accounts"]);
    assert!(ok && !out.contains("Gamma"));
    let audit = app.audit_actions(&t).await;
    assert!(
        audit.iter().any(|a| a == "user.code_step_unlocked"),
        "{audit:?}"
    );
}

#[actix_web::test]
async fn platform_staff_list_accounts_by_kind_and_name_and_nobody_else_does() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    app.partner("Fixit", true).await;
    let (_, all) = app.get("/accounts", &app.admin).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme", "Fixit", "Platform"]);
    let (_, partners) = app.get("/accounts?kind=partner", &app.admin).await;
    assert_eq!(partners[0]["name"], "Fixit");
    assert_eq!(partners.as_array().unwrap().len(), 1);
    let (_, found) = app.get("/accounts?q=acme", &app.admin).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["support_access"], true);
    let (_, none) = app.get("/accounts?q=%25", &app.admin).await;
    assert_eq!(
        none.as_array().unwrap().len(),
        0,
        "a % in the search is a character, not a wildcard"
    );
    let (status, _) = app.get("/accounts?kind=robot", &app.admin).await;
    assert_eq!(status, 400);
    let (status, body) = app.get("/accounts", &t.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("platform_only"))
    );
}
