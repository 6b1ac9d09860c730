//! Partner access: request, approve, reject, revoke, expiry; device assignment and the
//! partner's support login.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn ask(app: &TestApp, p: &Tenant, customer: &Tenant, support_user: bool) -> (u16, Value) {
    app.post(
        "/access-requests",
        &p.admin,
        json!({"account_id": customer.id, "support_user": support_user, "message": "We manage your fleet"}),
    )
    .await
}

async fn access_list(app: &TestApp, t: &Tenant) -> Value {
    let (status, body) = app
        .get(&format!("/accounts/{}/access", t.id), &t.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A granted request: returns the grant.
pub(crate) async fn granted(
    app: &TestApp,
    p: &Tenant,
    c: &Tenant,
    support_user: bool,
    expires: Option<String>,
) -> Value {
    let (status, request) = ask(app, p, c, support_user).await;
    assert_eq!(status, 201, "{request}");
    let body = match expires {
        Some(at) => json!({"expires_at": at}),
        None => json!({}),
    };
    let (status, grant) = app
        .post(
            &format!(
                "/access-requests/{}/approve",
                request["id"].as_str().unwrap()
            ),
            &c.admin,
            body,
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    grant
}

pub(crate) async fn support_login(app: &TestApp, p: &Tenant, grant: &Value) -> (u16, Value) {
    app.post(
        &format!("/access-grants/{}/login", grant["id"].as_str().unwrap()),
        &p.admin,
        json!({}),
    )
    .await
}

async fn audit_of(app: &TestApp, token: &str, account: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/accounts/{account}/audit"), token).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

fn has(entries: &[Value], action: &str) -> bool {
    entries.iter().any(|e| e["action"] == action)
}

#[actix_web::test]
async fn a_certified_partner_asks_the_customer_approves_and_the_partner_works_inside() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    assert_eq!(access_list(&app, &c).await["visible"], false);

    let (status, request) = ask(&app, &p, &c, true).await;
    assert_eq!(
        (status, request["state"].as_str()),
        (201, Some("pending")),
        "{request}"
    );
    let list = access_list(&app, &c).await;
    assert_eq!(list["visible"], true);
    let entry = &list["requests"][0];
    assert_eq!(entry["id"], request["id"]);
    assert_eq!(
        (
            entry["partner"]["id"].as_str(),
            entry["partner"]["name"].as_str()
        ),
        (Some(p.id.as_str()), Some("Fixit"))
    );
    assert_eq!(entry["requested_by"]["id"], json!(p.admin_id));
    assert_eq!(
        (entry["support_user"].clone(), entry["message"].as_str()),
        (json!(true), Some("We manage your fleet"))
    );
    assert!(entry["requested_at"].is_string());

    let (status, grant) = app
        .post(
            &format!(
                "/access-requests/{}/approve",
                request["id"].as_str().unwrap()
            ),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(
        (
            grant["partner"]["name"].as_str(),
            grant["support_user"].clone(),
            grant["expires_at"].clone()
        ),
        (Some("Fixit"), json!(true), Value::Null)
    );
    assert!(grant["granted_at"].is_string());
    let list = access_list(&app, &c).await;
    assert_eq!(
        (
            list["requests"].as_array().unwrap().len(),
            list["grants"][0]["id"].clone()
        ),
        (0, grant["id"].clone())
    );
    // A decided request cannot be decided again.
    let (status, _) = app
        .post(
            &format!(
                "/access-requests/{}/reject",
                request["id"].as_str().unwrap()
            ),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = ask(&app, &p, &c, true).await;
    assert_eq!(status, 409, "a partner with a grant has nothing to ask");
    let (_, grants) = app.get("/access-grants", &p.admin).await;
    assert_eq!(grants[0]["id"], grant["id"]);

    // The support login acts in the customer account: devices and sessions, nothing else.
    let (status, login) = support_login(&app, &p, &grant).await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_string();
    let (status, _) = app
        .get(&format!("/accounts/{}/devices", c.id), &token)
        .await;
    assert_eq!(status, 200);
    let (status, session) = app
        .post("/sessions", &token, json!({"subject": "Partner help"}))
        .await;
    assert_eq!(status, 201, "{session}");
    for path in [
        format!("/accounts/{}/users", c.id),
        format!("/accounts/{}/access", c.id),
        format!("/accounts/{}/audit", c.id),
    ] {
        let (status, _) = app.get(&path, &token).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = app
        .get(&format!("/accounts/{}/devices", p.id), &token)
        .await;
    assert_eq!(
        status, 404,
        "the support token acts in the customer account only"
    );
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{}", grant["id"].as_str().unwrap()),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 403, "a partner cannot revoke for the customer");

    // Every step is in both audit logs; the partner user's work is marked as partner access.
    let customer_log = audit_of(&app, &c.admin, &c.id).await;
    let partner_log = audit_of(&app, &p.admin, &p.id).await;
    for action in [
        "access.requested",
        "access.approved",
        "access.support_login",
        "session.created",
    ] {
        assert!(has(&customer_log, action), "customer log: {action}");
        assert!(has(&partner_log, action), "partner log: {action}");
    }
    let created = customer_log
        .iter()
        .find(|e| e["action"] == "session.created")
        .unwrap();
    assert_eq!(
        (created["via"].as_str(), created["actor_user_id"].clone()),
        (Some("partner_support"), json!(p.admin_id))
    );
    assert_eq!(created["details"]["grant_id"], grant["id"]);
}

#[actix_web::test]
async fn only_certified_partners_ask_once_and_only_customers_are_asked() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let uncertified = app.partner("Newbie", false).await;
    let (status, body) = ask(&app, &uncertified, &c, false).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("partner_not_certified"))
    );
    // A customer's user is no partner.
    let other = app.tenant("Other").await;
    let (status, body) = ask(&app, &other, &c, false).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_a_partner"))
    );
    // A partner user without the access area.
    let p = app.partner("Fixit", true).await;
    let (status, body) = app
        .post(&format!("/accounts/{}/users", p.id), &p.admin,
              json!({"username": "pete", "first_name": "P", "last_name": "Q", "email": "pete@partner.example", "password": PASSWORD}))
        .await;
    assert_eq!(status, 201, "{body}");
    let pete = app.login("pete", PASSWORD).await;
    let (status, _) = app
        .post("/access-requests", &pete, json!({"account_id": c.id}))
        .await;
    assert_eq!(status, 403);

    let (status, _) = ask(&app, &p, &c, false).await;
    assert_eq!(status, 201);
    let (status, body) = ask(&app, &p, &c, true).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("request_pending"))
    );
    for target in [uuid::Uuid::nil().to_string(), uncertified.id.clone()] {
        let (status, _) = app
            .post("/access-requests", &p.admin, json!({"account_id": target}))
            .await;
        assert_eq!(status, 404, "{target}");
    }
    let (status, _) = app
        .post(
            "/access-requests",
            &p.admin,
            json!({"account_id": other.id, "message": "x".repeat(1001)}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .post(
            "/access-requests",
            &p.admin,
            json!({"account_id": other.id, "message": "hi\u{7}"}),
        )
        .await;
    assert_eq!(status, 422, "control characters in the message");
    let (status, _) = app
        .post("/access-requests", &p.admin, json!({"account": other.id}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(access_list(&app, &other).await["visible"], false);
}

#[actix_web::test]
async fn the_access_list_puts_new_requests_first_and_only_the_access_area_sees_it() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let first = app.partner("Alpha", true).await;
    let second = app.partner("Beta", true).await;
    let third = app.partner("Gamma", true).await;
    ask(&app, &first, &c, false).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, beta) = ask(&app, &second, &c, true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, gamma) = ask(&app, &third, &c, false).await;
    let list = access_list(&app, &c).await;
    let names: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partner"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Gamma", "Beta", "Alpha"]);

    // Reject one, approve one: the grant moves below, the rejected one is gone.
    let (status, rejected) = app
        .post(
            &format!("/access-requests/{}/reject", gamma["id"].as_str().unwrap()),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, rejected["state"].as_str()),
        (200, Some("rejected"))
    );
    let (status, _) = app
        .post(
            &format!("/access-requests/{}/approve", beta["id"].as_str().unwrap()),
            &c.admin,
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 422, "an expiry in the past");
    let (status, _) = app
        .post(
            &format!("/access-requests/{}/approve", beta["id"].as_str().unwrap()),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    let list = access_list(&app, &c).await;
    let names: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partner"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha"]);
    assert_eq!(list["grants"][0]["partner"]["name"], "Beta");
    let log = audit_of(&app, &third.admin, &third.id).await;
    assert!(
        has(&log, "access.rejected"),
        "the partner sees the rejection"
    );

    // Without the access area: 403; another account: 404, also for deciding.
    let (_, tech) = app.user(&c, "tech", &["sessions"]).await;
    let (status, _) = app.get(&format!("/accounts/{}/access", c.id), &tech).await;
    assert_eq!(status, 403);
    let alpha_request = list["requests"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .post(
            &format!("/access-requests/{alpha_request}/approve"),
            &tech,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let other = app.tenant("Other").await;
    let (status, _) = app
        .get(&format!("/accounts/{}/access", c.id), &other.admin)
        .await;
    assert_eq!(status, 404);
    for verb in ["approve", "reject"] {
        let (status, _) = app
            .post(
                &format!("/access-requests/{alpha_request}/{verb}"),
                &other.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 404, "{verb}");
    }
    let grant = list["grants"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{grant}"),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(access_list(&app, &c).await["grants"][0]["id"], json!(grant));
}

#[actix_web::test]
async fn the_support_login_needs_a_grant_with_the_support_user() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let stranger = app.partner("Stranger", true).await;
    let grant = granted(&app, &p, &c, false, None).await;
    let (status, body) = support_login(&app, &p, &grant).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("support_user_not_granted"))
    );
    let (status, _) = support_login(&app, &stranger, &grant).await;
    assert_eq!(status, 404, "another partner's grant");
    let (status, _) = support_login(&app, &c, &grant).await;
    assert_eq!(status, 404, "the customer itself");
}

#[actix_web::test]
async fn devices_move_to_the_customer_and_back_only_under_a_grant() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let unrelated = app.tenant("Unrelated").await;
    let own = app.device(&p, "P-1", "android").await;
    let customers_own = app.device(&c, "C-1", "ios").await;
    let assign = |account: String, device: String| {
        let app = &app;
        let token = p.admin.clone();
        async move {
            app.post(
                &format!("/accounts/{account}/devices/assign"),
                &token,
                json!({"device_id": device}),
            )
            .await
        }
    };
    let (status, _) = assign(c.id.clone(), own.clone()).await;
    assert_eq!(status, 404, "no grant yet");
    granted(&app, &p, &c, false, None).await;
    let (status, _) = assign(unrelated.id.clone(), own.clone()).await;
    assert_eq!(status, 404, "an account without a grant");
    let (status, _) = assign(c.id.clone(), customers_own.clone()).await;
    assert_eq!(status, 404, "the customer's own device");

    let (status, moved) = assign(c.id.clone(), own.clone()).await;
    assert_eq!(status, 200, "{moved}");
    let serials = |list: Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| d["serial"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, in_customer) = app
        .get(&format!("/accounts/{}/devices", c.id), &c.admin)
        .await;
    assert_eq!(serials(in_customer), ["C-1", "P-1"]);
    let (_, in_partner) = app
        .get(&format!("/accounts/{}/devices", p.id), &p.admin)
        .await;
    assert!(
        serials(in_partner).is_empty(),
        "the device left the partner's list"
    );
    let (status, _) = assign(c.id.clone(), own.clone()).await;
    assert_eq!(status, 404, "assigned already");

    // The partner cannot take or see the customer's own devices.
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices/{customers_own}/unassign", c.id),
            &p.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(&format!("/devices/{customers_own}"), &p.admin)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices/{own}/unassign", c.id),
            &p.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, in_partner) = app
        .get(&format!("/accounts/{}/devices", p.id), &p.admin)
        .await;
    assert_eq!(serials(in_partner), ["P-1"]);
    let log = audit_of(&app, &c.admin, &c.id).await;
    assert!(has(&log, "device.assigned") && has(&log, "device.unassigned"));
    let log = audit_of(&app, &p.admin, &p.id).await;
    assert!(has(&log, "device.assigned") && has(&log, "device.unassigned"));
}

#[actix_web::test]
async fn a_revoke_closes_live_sockets_ends_tokens_and_stops_assignments() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let device = app.device(&p, "P-1", "android").await;
    let grant = granted(&app, &p, &c, true, None).await;
    let (_, login) = support_login(&app, &p, &grant).await;
    let token = login["token"].as_str().unwrap().to_string();
    // The customer runs a session; the partner technician joins it through the grant.
    let (session, _) = app.session(&c.admin).await;
    let mut owner = app.ws_technician(&c.admin, &session).await;
    let mut partner_tech = app.ws_technician(&token, &session).await;
    owner.expect("participant_joined").await;
    // A browser joins by ticket: the ticket acts as the support token it came from.
    let ticket = |token: String| {
        let app = &app;
        let session = session.clone();
        async move {
            let (status, body) = app
                .post("/ws-tickets", &token, json!({"session_id": session}))
                .await;
            assert_eq!(status, 200, "{body}");
            format!(
                "{}/ws/sessions/{session}?ticket={}",
                app.ws_base,
                body["ticket"].as_str().unwrap()
            )
        }
    };
    let mut by_ticket = Ws::connect(&ticket(token.clone()).await, None)
        .await
        .unwrap();
    let unused = ticket(token.clone()).await;

    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{}", grant["id"].as_str().unwrap()),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(partner_tech.expect_close().await, Some(4003));
    assert_eq!(by_ticket.expect_close().await, Some(4003));
    assert_eq!(
        Ws::connect(&unused, None).await.err(),
        Some(401),
        "a ticket of a revoked grant"
    );
    for _ in 0..2 {
        let left = owner.expect("participant_left").await;
        assert_eq!(left["reason"], "revoked");
    }
    let (status, _) = app
        .get(&format!("/accounts/{}/devices", c.id), &token)
        .await;
    assert_eq!(status, 401, "the support token died with the grant");
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices/assign", c.id),
            &p.admin,
            json!({"device_id": device}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(access_list(&app, &c).await["visible"], false);
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{}", grant["id"].as_str().unwrap()),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, 404, "revoked already");
    assert!(has(
        &audit_of(&app, &p.admin, &p.id).await,
        "access.revoked"
    ));
    // The partner may ask again.
    let (status, _) = ask(&app, &p, &c, true).await;
    assert_eq!(status, 201);
}

#[actix_web::test]
async fn a_grant_with_an_expiry_ends_by_itself() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let grant = granted(&app, &p, &c, true, Some(soon)).await;
    assert!(grant["expires_at"].is_string());
    let (status, login) = support_login(&app, &p, &grant).await;
    assert_eq!(status, 200);
    let token = login["token"].as_str().unwrap().to_string();
    let (status, _) = app
        .get(&format!("/accounts/{}/devices", c.id), &token)
        .await;
    assert_eq!(status, 200);
    assert!(
        eventually(|| async {
            app.get(&format!("/accounts/{}/devices", c.id), &token)
                .await
                .0
                == 401
        })
        .await
    );
    assert!(
        eventually(|| async { has(&audit_of(&app, &c.admin, &c.id).await, "access.expired") })
            .await
    );
    assert!(has(
        &audit_of(&app, &p.admin, &p.id).await,
        "access.expired"
    ));
    assert_eq!(access_list(&app, &c).await["visible"], false);
    let (status, _) = support_login(&app, &p, &grant).await;
    assert_eq!(status, 404);
}

/// The attack: during a grant the partner mints a long-lived enrollment code and owns a
/// session in the customer account; after the revoke it would enroll devices with the code
/// and keep the session (and its customer key) alive.
#[actix_web::test]
async fn what_the_partner_made_through_a_grant_dies_with_it() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let grant = granted(&app, &p, &c, true, None).await;
    let (_, login) = support_login(&app, &p, &grant).await;
    let token = login["token"].as_str().unwrap().to_string();
    let (status, body) = app
        .post(
            &format!("/accounts/{}/enrollment-codes", c.id),
            &token,
            json!({"expires_in_hours": 720}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let code = body["code"].as_str().unwrap().to_string();
    let (session, customer_key) = app.session(&token).await;
    let mut partner_owner = app.ws_technician(&token, &session).await;
    let mut colleague = app.ws_technician(&c.admin, &session).await;
    let mut customer = app.ws_customer(&customer_key).await;

    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{}", grant["id"].as_str().unwrap()),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    // The partner's session ends for everyone with access_revoked.
    for ws in [&mut colleague, &mut customer] {
        let ended = ws.expect("session_ended").await;
        assert_eq!(ended["reason"], "access_revoked");
        assert!(matches!(ws.expect_close().await, Some(4002 | 4003)));
    }
    assert!(matches!(
        partner_owner.expect_close().await,
        Some(4002 | 4003)
    ));
    let report = app.report(&c.admin, &session).await;
    assert_eq!(report["session"]["end_reason"], "access_revoked");
    let late = Ws::connect(&format!("{}/ws/customer/{customer_key}", app.ws_base), None).await;
    assert_eq!(
        late.err(),
        Some(410),
        "the customer key is dead with its session"
    );
    // The code minted through the grant is dead.
    let (status, body) = app
        .call(
            "POST",
            "/enroll",
            None,
            Some(json!({"code": code, "serial": "ROGUE-1", "platform": "android", "name": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("code_revoked"))
    );
}

/// The attack: a read-only user of the customer (area `access`, no object rights) grants a
/// partner a login, or revokes every grant.
#[actix_web::test]
async fn deciding_on_partner_access_needs_the_edit_right() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let (reader_id, reader) = app.user(&c, "reader", &["access"]).await;
    let read_only =
        json!({"areas": ["access"], "objects": {"create": false, "edit": false, "delete": false}});
    app.set_rights(&c.admin, &reader_id, read_only).await;
    let (_, request) = ask(&app, &p, &c, true).await;
    let rid = request["id"].as_str().unwrap();
    for action in ["approve", "reject"] {
        let (status, body) = app
            .post(
                &format!("/access-requests/{rid}/{action}"),
                &reader,
                json!({}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("missing_right")),
            "{action}"
        );
    }
    assert_eq!(
        access_list(&app, &c).await["requests"][0]["id"],
        rid,
        "still pending"
    );
    let (_, grant) = app
        .post(
            &format!("/access-requests/{rid}/approve"),
            &c.admin,
            json!({}),
        )
        .await;
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{}", grant["id"].as_str().unwrap()),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        access_list(&app, &c).await["grants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn un_certifying_a_partner_ends_its_grants() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let grant = granted(&app, &p, &c, true, None).await;
    let (_, login) = support_login(&app, &p, &grant).await;
    let token = login["token"].as_str().unwrap().to_string();
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", p.id),
            Some(&app.admin),
            Some(json!({"certified": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/me", &token).await;
    assert_eq!(status, 401, "the support token died with the grant");
    assert_eq!(access_list(&app, &c).await["visible"], false);
    assert!(has(
        &audit_of(&app, &c.admin, &c.id).await,
        "access.revoked"
    ));
}

/// The attack on an approval: a body that does not parse (a mistyped expiry, an unknown field)
/// must be refused, not taken as "no body", which would grant access with no end at all.
#[actix_web::test]
async fn a_malformed_approval_is_refused_and_grants_nothing() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let (_, request) = ask(&app, &p, &c, true).await;
    let approve = format!(
        "/access-requests/{}/approve",
        request["id"].as_str().unwrap()
    );
    for body in [
        json!({"expires_at": "next tuesday"}),
        json!({"expires_at": "2030-01-01T00:00:00Z", "expires": "typo"}),
        json!("2030-01-01T00:00:00Z"),
    ] {
        let (status, answer) = app.post(&approve, &c.admin, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{body}"
        );
    }
    let res = app
        .http
        .post(app.url(&approve))
        .bearer_auth(&c.admin)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "only JSON is read");
    let list = access_list(&app, &c).await;
    assert_eq!(list["grants"], json!([]), "nothing was granted: {list}");
    assert_eq!(list["requests"].as_array().unwrap().len(), 1);
    // No body at all still approves, without an expiry.
    let res = app
        .http
        .post(app.url(&approve))
        .bearer_auth(&c.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn a_partner_asks_by_customer_number_sees_its_lists_and_everyone_is_told_by_mail() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Mueller Logistik").await;
    let p = app.partner("Fixit", true).await;
    let other = app.tenant("Other").await;
    // The customer's admins see the number (given out once, then the same).
    let (status, account) = app.get(&format!("/accounts/{}", c.id), &c.admin).await;
    assert_eq!(status, 200);
    let number = account["customer_number"].as_str().unwrap().to_string();
    assert_eq!(number.len(), 9);
    assert!(number.chars().all(|ch| ch.is_ascii_digit()));
    let (_, again) = app.get(&format!("/accounts/{}", c.id), &c.admin).await;
    assert_eq!(again["customer_number"], number.as_str());
    let (_, others) = app
        .get(&format!("/accounts/{}", other.id), &other.admin)
        .await;
    assert_ne!(others["customer_number"], number.as_str());
    // Partner accounts have none; the partner cannot read the customer's account.
    let (_, own) = app.get(&format!("/accounts/{}", p.id), &p.admin).await;
    assert!(own.get("customer_number").is_none(), "{own}");
    let (status, _) = app.get(&format!("/accounts/{}", c.id), &p.admin).await;
    assert_eq!(status, 404);

    // Bad numbers: wrong length, letters, both ways at once, one that nobody has.
    for (body, status_code, code) in [
        (
            json!({"customer_number": "12345"}),
            422,
            "invalid_customer_number",
        ),
        (
            json!({"customer_number": "12345678x"}),
            422,
            "invalid_customer_number",
        ),
        (
            json!({"customer_number": number, "account_id": c.id}),
            422,
            "invalid_customer_number",
        ),
        (json!({}), 422, "invalid_customer_number"),
    ] {
        let (status, answer) = app.post("/access-requests", &p.admin, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (status_code, Some(code)),
            "{body}"
        );
    }
    let unused = if number == "999999999" {
        "999999998"
    } else {
        "999999999"
    };
    let (status, _) = app
        .post(
            "/access-requests",
            &p.admin,
            json!({"customer_number": unused}),
        )
        .await;
    assert_eq!(status, 404);

    // Spaces and dashes as people write it.
    let spaced = format!("{} {}-{}", &number[..3], &number[3..6], &number[6..]);
    let (status, request) = app
        .post(
            "/access-requests",
            &p.admin,
            json!({"customer_number": spaced, "support_user": true, "message": "Fleet service"}),
        )
        .await;
    assert_eq!(status, 201, "{request}");
    assert_eq!(request["customer"]["name"], "Mueller Logistik");
    // The customer's admin (area access) is told by mail, with the partner and the message.
    let mails = outbox_mails(&app);
    let asked = mails
        .iter()
        .find(|m| {
            m.contains("To: mueller-logistik-admin@example.com") && m.contains("asks for access")
        })
        .expect("a mail to the customer's admin");
    assert!(asked.contains("Fixit"), "{asked}");
    assert!(asked.contains("Fleet service"), "{asked}");
    assert!(asked.contains("/#/access"), "{asked}");

    // The partner's own list: the request, with the customer's name, pending.
    let (status, mine) = app.get("/access-requests", &p.admin).await;
    assert_eq!(status, 200);
    assert_eq!(mine[0]["state"], "pending");
    assert_eq!(mine[0]["customer"]["name"], "Mueller Logistik");
    // A customer's user is no partner: 403.
    let (status, _) = app.get("/access-requests", &c.admin).await;
    assert_eq!(status, 403);

    let (status, grant) = app
        .post(
            &format!(
                "/access-requests/{}/approve",
                request["id"].as_str().unwrap()
            ),
            &c.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    let decided = outbox_mails(&app);
    let approved = decided
        .iter()
        .find(|m| m.contains("To: fixit-admin@partner.example") && m.contains("approved"))
        .expect("a mail to the partner user who asked");
    assert!(approved.contains("Mueller Logistik"), "{approved}");
    let (_, grants) = app.get("/access-grants", &p.admin).await;
    assert_eq!(grants[0]["customer"]["name"], "Mueller Logistik");
    let (_, mine) = app.get("/access-requests", &p.admin).await;
    assert_eq!(mine[0]["state"], "approved");

    // Devices the partner assigned under the grant, listed per grant.
    let gid = grant["id"].as_str().unwrap().to_string();
    let device = app.device(&p, "P-7", "android").await;
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices/assign", c.id),
            &p.admin,
            json!({"device_id": device}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, assigned) = app
        .get(&format!("/access-grants/{gid}/devices"), &p.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(assigned[0]["serial"], "P-7");
    // Not the customer's, and not another partner's view.
    let (status, _) = app
        .get(&format!("/access-grants/{gid}/devices"), &c.admin)
        .await;
    assert_eq!(status, 403);

    // Revoked: the partner user hears of it too.
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/access-grants/{gid}"),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        outbox_mails(&app)
            .iter()
            .any(|m| m.contains("To: fixit-admin@partner.example") && m.contains("revoked")),
        "a revoke mail"
    );
    let (status, _) = app
        .get(&format!("/access-grants/{gid}/devices"), &p.admin)
        .await;
    assert_eq!(status, 404, "a revoked grant lists nothing");
}

#[actix_web::test]
async fn the_customer_narrows_extends_and_shortens_a_grant_and_the_partner_asks_to_renew() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let other = app.tenant("Other").await;
    let group = |t: &Tenant, name: &str| {
        let app = &app;
        let token = t.admin.clone();
        let path = format!("/accounts/{}/groups", t.id);
        let name = name.to_string();
        async move {
            let (status, g) = app.post(&path, &token, json!({"name": name})).await;
            assert_eq!(status, 201, "{g}");
            g["id"].as_str().unwrap().to_string()
        }
    };
    let north = group(&c, "North").await;
    let south = group(&c, "South").await;
    let foreign = group(&other, "Elsewhere").await;
    let d_north = app.device(&c, "N-1", "android").await;
    let d_south = app.device(&c, "S-1", "android").await;
    for (device, g) in [(&d_north, &north), (&d_south, &south)] {
        let (status, body) = app
            .call(
                "PATCH",
                &format!("/devices/{device}"),
                Some(&c.admin),
                Some(json!({"group_id": g})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let grant = granted(&app, &p, &c, true, None).await;
    let gid = grant["id"].as_str().unwrap().to_string();
    let (_, login) = support_login(&app, &p, &grant).await;
    let support = login["token"].as_str().unwrap().to_string();
    let serials = |list: &Value| -> Vec<String> {
        let mut v: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["serial"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let devices = format!("/accounts/{}/devices", c.id);
    assert_eq!(
        serials(&app.get(&devices, &support).await.1),
        ["N-1", "S-1"]
    );

    // Narrowed to one group: the partner sees and acts on only its devices.
    let shape = |body: Value| {
        let app = &app;
        let token = c.admin.clone();
        let path = format!("/access-grants/{gid}");
        async move { app.call("PATCH", &path, Some(&token), Some(body)).await }
    };
    for (body, code) in [
        (json!([null, null]), "invalid_json"),
        (json!({"groups": [foreign]}), "group_not_found"),
        (json!({"groups": []}), "group_not_found"),
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
    ] {
        let (status, answer) = shape(body.clone()).await;
        assert_eq!(answer["error"]["code"], code, "{body}: {status}");
    }
    let (status, view) = shape(json!({"groups": [north]})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["groups"], json!([north]));
    assert_eq!(serials(&app.get(&devices, &support).await.1), ["N-1"]);
    let (status, _) = app.get(&format!("/devices/{d_south}"), &support).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/devices/{d_south}/actions"),
            &support,
            json!({"action": "locate"}),
        )
        .await;
    assert_eq!(status, 404);
    // Back to all devices.
    let (status, view) = shape(json!({"groups": null})).await;
    assert_eq!((status, view["groups"].clone()), (200, Value::Null));
    assert_eq!(serials(&app.get(&devices, &support).await.1).len(), 2);

    // The partner asks to renew; the customer's admin hears of it and extends.
    let (status, asked) = app
        .post(
            &format!("/access-grants/{gid}/renewal"),
            &p.admin,
            json!({"message": "Contract runs on"}),
        )
        .await;
    assert_eq!(status, 202, "{asked}");
    let list = access_list(&app, &c).await;
    assert!(
        list["grants"][0]["renewal_requested_at"].is_string(),
        "{list}"
    );
    assert_eq!(list["grants"][0]["renewal_message"], "Contract runs on");
    assert!(
        outbox_mails(&app)
            .iter()
            .any(|m| m.contains("To: customer-admin@example.com") && m.contains("Contract runs on")),
        "the customer's admin is told"
    );
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let (status, view) = shape(json!({"expires_at": until})).await;
    assert_eq!(status, 200);
    assert!(view["expires_at"].is_string());
    assert!(view["renewal_requested_at"].is_null(), "answered");
    assert!(
        outbox_mails(&app)
            .iter()
            .any(|m| m.contains("To: fixit-admin@partner.example")
                && m.contains("changed your access")),
        "the partner is told"
    );
    // Who may not: the partner's own support login, the partner, another customer.
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/access-grants/{gid}"),
            Some(&support),
            Some(json!({"expires_at": null})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/access-grants/{gid}"),
            Some(&other.admin),
            Some(json!({"expires_at": null})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/access-grants/{gid}/renewal"),
            &support,
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let log = audit_of(&app, &c.admin, &c.id).await;
    assert!(has(&log, "access.changed") && has(&log, "access.renewal_requested"));
}

#[actix_web::test]
async fn the_customer_reads_everything_a_partner_did_through_one_grant() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let q = app.partner("Quickfix", true).await;
    let grant = granted(&app, &p, &c, true, None).await;
    let gid = grant["id"].as_str().unwrap().to_string();
    let other = granted(&app, &q, &c, true, None).await;
    // Through the grant: a support login, a session, a device action; by the partner's own
    // login: a device assigned.
    let (_, login) = support_login(&app, &p, &grant).await;
    let support = login["token"].as_str().unwrap().to_string();
    let (status, _) = app
        .post("/sessions", &support, json!({"subject": "Fleet check"}))
        .await;
    assert_eq!(status, 201);
    let customers_device = app.device(&c, "C-9", "android").await;
    let (status, _) = app
        .post(
            &format!("/devices/{customers_device}/actions"),
            &support,
            json!({"action": "locate"}),
        )
        .await;
    assert_eq!(status, 202);
    let own = app.device(&p, "P-9", "android").await;
    let (status, _) = app
        .post(
            &format!("/accounts/{}/devices/assign", c.id),
            &p.admin,
            json!({"device_id": own}),
        )
        .await;
    assert_eq!(status, 200);
    // Something through the other grant, and the customer's own doing: not in this feed.
    let (_, other_login) = support_login(&app, &q, &other).await;
    app.post(
        "/sessions",
        other_login["token"].as_str().unwrap(),
        json!({"subject": "Not mine"}),
    )
    .await;
    app.post("/sessions", &c.admin, json!({"subject": "Own work"}))
        .await;

    let (status, feed) = app
        .get(&format!("/access-grants/{gid}/activity"), &c.admin)
        .await;
    assert_eq!(status, 200, "{feed}");
    let actions: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "access.requested",
        "access.approved",
        "access.support_login",
        "session.created",
        "device.action",
        "device.assigned",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let subjects: Vec<String> = feed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["details"]["subject"].as_str().map(str::to_string))
        .collect();
    assert_eq!(subjects, ["Fleet check"], "only this grant's sessions");
    assert!(feed[0]["action_text"].is_string(), "in words");
    // The same through the audit log's filter and its export.
    let (status, filtered) = app
        .get(&format!("/accounts/{}/audit?grant={gid}", c.id), &c.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        filtered.as_array().unwrap().len(),
        feed.as_array().unwrap().len()
    );
    let csv = app
        .http
        .get(app.url(&format!("/accounts/{}/audit/export?grant={gid}", c.id)))
        .bearer_auth(&c.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.contains("Fleet check") && !csv.contains("Not mine"),
        "{csv}"
    );
    // Not for the partner, nor another customer.
    let (status, _) = app
        .get(&format!("/access-grants/{gid}/activity"), &p.admin)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .get(&format!("/access-grants/{gid}/activity"), &support)
        .await;
    assert!(status == 404 || status == 403, "{status}");
}

#[actix_web::test]
async fn a_grant_narrowed_to_single_devices_reaches_only_those() {
    let app = TestApp::spawn().await;
    let c = app.tenant("Customer").await;
    let p = app.partner("Fixit", true).await;
    let other = app.tenant("Other").await;
    // Enrolled, with their agents online: sessions are made on them below.
    let (one, one_secret) = app
        .enroll(&app.enrollment_code(&c).await, "D-1", "android")
        .await;
    let (two, two_secret) = app
        .enroll(&app.enrollment_code(&c).await, "D-2", "android")
        .await;
    let _agents = [
        app.ws_device(&one_secret).await.unwrap(),
        app.ws_device(&two_secret).await.unwrap(),
    ];
    let foreign = app.device(&other, "X-1", "android").await;
    let grant = granted(&app, &p, &c, true, None).await;
    let gid = grant["id"].as_str().unwrap().to_string();
    let (_, login) = support_login(&app, &p, &grant).await;
    let support = login["token"].as_str().unwrap().to_string();
    let path = format!("/access-grants/{gid}");
    for bad in [json!({"devices": [foreign]}), json!({"devices": []})] {
        let (status, body) = app
            .call("PATCH", &path, Some(&c.admin), Some(bad.clone()))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("device_not_found")),
            "{bad}"
        );
    }
    let (status, view) = app
        .call(
            "PATCH",
            &path,
            Some(&c.admin),
            Some(json!({"devices": [one]})),
        )
        .await;
    assert_eq!((status, view["devices"].clone()), (200, json!([one])));
    let (_, list) = app
        .get(&format!("/accounts/{}/devices", c.id), &support)
        .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [one.as_str()]);
    assert_eq!(app.get(&format!("/devices/{two}"), &support).await.0, 404);
    let (status, _) = app
        .post(
            &format!("/devices/{two}/actions"),
            &support,
            json!({"action": "locate"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/devices/{one}/actions"),
            &support,
            json!({"action": "locate"}),
        )
        .await;
    assert_eq!(status, 202);
    // Of the account's ended sessions, the support login lists those on no device and on its
    // device, not the one on the other device (the narrowing applies in the list's query).
    let plain = app
        .ended_session(&c.admin, json!({"subject": "no device"}))
        .await;
    let on_one = app
        .ended_session(&c.admin, json!({"subject": "on one", "device_id": one}))
        .await;
    let on_two = app
        .ended_session(&c.admin, json!({"subject": "on two", "device_id": two}))
        .await;
    let mut all = vec![plain.clone(), on_one.clone(), on_two];
    all.sort();
    assert!(eventually(|| async { app.ended_ids(&c.admin).await == all }).await);
    let mut reachable = vec![plain, on_one];
    reachable.sort();
    assert_eq!(app.ended_ids(&support).await, reachable);
    // A session on the other device is out of reach too (refused before it starts).
    let (status, _) = app
        .post(
            "/sessions",
            &support,
            json!({"subject": "x", "device_id": two}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, view) = app
        .call(
            "PATCH",
            &path,
            Some(&c.admin),
            Some(json!({"devices": null})),
        )
        .await;
    assert_eq!((status, view["devices"].clone()), (200, Value::Null));
    assert_eq!(app.get(&format!("/devices/{two}"), &support).await.0, 200);
}
