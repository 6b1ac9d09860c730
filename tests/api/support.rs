//! Account settings and the two levels of vendor support access.

use serde_json::json;

use crate::helpers::TestApp;

#[actix_web::test]
async fn vendor_support_enters_as_the_service_user_only_while_the_account_allows_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, account) = app.get(&format!("/accounts/{}", t.id), &t.admin).await;
    assert_eq!(
        (status, &account["support_access"]),
        (200, &json!(true)),
        "allowed by default"
    );

    let (status, body) = app
        .post(
            &format!("/accounts/{}/support-login", t.id),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["kind"], "service");
    let service_token = body["token"].as_str().unwrap().to_string();
    let (status, me) = app.get("/me", &service_token).await;
    assert_eq!(
        (status, me["user"]["account_id"].as_str()),
        (200, Some(t.id.as_str()))
    );
    let (status, _) = app
        .post(
            "/sessions",
            &service_token,
            json!({"subject": "vendor help"}),
        )
        .await;
    assert_eq!(status, 201);

    // The account says no: the next support login is refused.
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&t.admin),
            Some(json!({"support_access": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            &format!("/accounts/{}/support-login", t.id),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("support_access_disabled"))
    );

    // Both steps are in the account's audit log, with the staff member named.
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    let entries = audit.as_array().unwrap();
    let login = entries
        .iter()
        .find(|e| e["action"] == "support.account_login")
        .unwrap();
    assert_eq!(login["via"], "vendor_support");
    assert!(
        login["actor_name"]
            .as_str()
            .unwrap()
            .starts_with("admin (as service-")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "session.created" && e["via"] == "vendor_support")
    );
    assert!(entries.iter().any(|e| e["action"] == "account.changed"));
}

#[actix_web::test]
async fn only_platform_support_may_use_support_login() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, body) = app
        .post(
            &format!("/accounts/{}/support-login", t.id),
            &t.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("platform_only"))
    );
    let (status, _) = app
        .post(
            &format!("/users/{}/support-login", t.admin_id),
            &t.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn vendor_support_acts_as_a_user_only_with_that_users_support_right() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, _) = app.user(&t, "bob", &["sessions"]).await;
    let (status, body) = app
        .post(
            &format!("/users/{bob_id}/support-login"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("support_access_disabled"))
    );
    let rights = json!({"areas": ["sessions"], "objects": {"create": true, "edit": false, "delete": false}, "support_access": true});
    app.set_rights(&t.admin, &bob_id, rights).await;
    let (status, body) = app
        .post(
            &format!("/users/{bob_id}/support-login"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let vendor = body["token"].as_str().unwrap().to_string();
    let (_, me) = app.get("/me", &vendor).await;
    assert_eq!(me["user"]["id"], bob_id.as_str());
    // Acting as bob, staff cannot take over his second factor.
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/login-options"),
            Some(&vendor),
            Some(json!({"two_factor": "totp"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("self_only"))
    );
    // Bob's consent withdrawn: the staff token ends at once, not when it expires.
    let rights = json!({"areas": ["sessions"], "objects": {"create": true, "edit": false, "delete": false}, "support_access": false});
    app.set_rights(&t.admin, &bob_id, rights).await;
    let (status, _) = app.get("/me", &vendor).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn account_settings_need_the_settings_area_and_certification_the_platform_admin() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (_, bob) = app.user(&t, "bob", &["sessions"]).await;
    let path = format!("/accounts/{}", t.id);
    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&bob),
            Some(json!({"support_access": false})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );
    let (status, _) = app
        .call(
            "PATCH",
            &path,
            Some(&other.admin),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&t.admin),
            Some(json!({"certified": true})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("platform_only"))
    );
    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&app.admin),
            Some(json!({"certified": true})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("not_a_partner_account"))
    );
    let (status, body) = app
        .call(
            "PATCH",
            &path,
            Some(&t.admin),
            Some(json!({"name": "Acme GmbH"})),
        )
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Acme GmbH")));
    // A partner is certified by the platform admin.
    let partner = json!({"name": "Partner", "kind": "partner", "admin": {"username": "p-admin", "first_name": "P", "last_name": "A", "email": "p@partner.example"}});
    let (_, created) = app.post("/accounts", &app.admin, partner).await;
    assert_eq!(created["certified"], false);
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", created["id"].as_str().unwrap()),
            Some(&app.admin),
            Some(json!({"certified": true})),
        )
        .await;
    assert_eq!((status, &body["certified"]), (200, &json!(true)));
}

/// The attack: vendor staff keep using a support token after the customer turned vendor
/// support off, and cannot turn it back on themselves.
#[actix_web::test]
async fn turning_support_access_off_ends_vendor_tokens_and_their_sockets_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, body) = app
        .post(
            &format!("/accounts/{}/support-login", t.id),
            &app.admin,
            json!({}),
        )
        .await;
    let vendor = body["token"].as_str().unwrap().to_string();
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&vendor),
            Some(json!({"support_access": true})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("own_account_only"))
    );
    let (session, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &session).await;
    let mut vendor_ws = app.ws_technician(&vendor, &session).await;
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&t.admin),
            Some(json!({"support_access": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/me", &vendor).await;
    assert_eq!(status, 401, "the vendor token ended at once");
    assert_eq!(vendor_ws.expect_close().await, Some(4003));
}
