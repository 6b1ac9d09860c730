//! The partner access list in the customer admin's browser: hidden until a partner asks,
//! requests on top and grants below, approve, reject, and revoke with the cross.

use serde_json::{Value, json};

use super::{Driver, within_deadline};
use crate::helpers::*;

async fn ask(app: &TestApp, partner: &Tenant, customer: &Tenant) -> String {
    let (status, body) = app
        .post(
            "/access-requests",
            &partner.admin,
            json!({"account_id": customer.id, "support_user": true, "message": "We manage your fleet"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn access(app: &TestApp, customer: &Tenant) -> Value {
    app.get(
        &format!("/accounts/{}/access", customer.id),
        &customer.admin,
    )
    .await
    .1
}

#[actix_web::test]
async fn the_customer_approves_rejects_and_revokes_partner_access_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let acme = app.tenant("Acme").await;
        let fleetco = app.partner("Fleetco", true).await;
        let otherco = app.partner("Otherco", true).await;
        let driver = Driver::start().await;
        let admin = driver.browser("en-US").await;

        // No request, no grant: the menu has no access entry.
        admin.login_console(&app.base, "acme-admin", PASSWORD).await;
        admin.find("[data-testid=menu-sessions]").await;
        admin
            .wait_js("!document.querySelector('[data-testid=menu-access]')")
            .await;

        let (_, north) = app
            .post(&format!("/accounts/{}/groups", acme.id), &acme.admin, json!({"name": "North"}))
            .await;
        let north = north["id"].as_str().unwrap().to_string();
        let fleet_request = ask(&app, &fleetco, &acme).await;
        let other_request = ask(&app, &otherco, &acme).await;
        admin.client.refresh().await.expect("reload");
        admin.click("[data-testid=menu-access]").await;
        admin
            .wait_text("[data-testid=access-requests]", "Fleetco")
            .await;
        admin
            .wait_text("[data-testid=access-requests]", "We manage your fleet")
            .await;
        // The actions cell stays a table cell (the row's border is whole).
        let display = admin
            .wait_js("getComputedStyle(document.querySelector('[data-testid=access-requests] td.actions')).display")
            .await;
        assert_eq!(display, "table-cell");
        admin.shot("access-requests").await;

        // Approve one (until a day the customer picks), reject the other.
        admin
            .click(&format!(
                "tr[data-request='{fleet_request}'] [data-action=approve]"
            ))
            .await;
        admin.wait_text("dialog[open]", "Fleetco").await;
        admin
            .client
            .execute(
                "document.querySelector('dialog[open] input[name=until]').value = '2030-01-31';",
                vec![],
            )
            .await
            .unwrap();
        admin.shot("access-approve-until").await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=access-grants]", "Fleetco")
            .await;
        admin
            .click(&format!(
                "tr[data-request='{other_request}'] [data-action=reject]"
            ))
            .await;
        admin
            .wait_js("!document.querySelector('[data-testid=access-requests]')")
            .await;
        admin.shot("access-granted").await;
        let list = access(&app, &acme).await;
        assert_eq!(list["requests"], json!([]), "{list}");
        let grants = list["grants"].as_array().unwrap();
        assert_eq!(grants.len(), 1, "{list}");
        assert_eq!(grants[0]["partner"]["name"], "Fleetco");
        assert!(
            grants[0]["expires_at"]
                .as_str()
                .is_some_and(|e| e.starts_with("2030-01-3") || e.starts_with("2030-02-01")),
            "{list}"
        );
        let grant = grants[0]["id"].as_str().unwrap().to_string();

        // The customer narrows it to one device group (and keeps its end).
        admin
            .click(&format!("tr[data-grant='{grant}'] [data-action=shape]"))
            .await;
        admin
            .click(&format!("dialog[open] input[name='group:{north}']"))
            .await;
        admin.shot("access-shape-grant").await;
        admin.confirm().await;
        admin
            .wait_text(&format!("tr[data-grant='{grant}'] [data-testid=grant-groups]"), "North")
            .await;
        let list = access(&app, &acme).await;
        assert_eq!(list["grants"][0]["groups"], json!([north]));

        // Its activity: what the partner did through it, in words.
        admin
            .click(&format!("tr[data-grant='{grant}'] [data-action=activity]"))
            .await;
        admin
            .wait_text("[data-testid=grant-activity]", "Fleetco")
            .await;
        admin.shot("access-grant-activity").await;

        // The grant works: the partner enters the account through its support user.
        let (status, login) = app
            .post(
                &format!("/access-grants/{grant}/login"),
                &fleetco.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{login}");
        let partner_token = login["token"].as_str().unwrap().to_string();
        assert_eq!(app.get("/me", &partner_token).await.0, 200);

        // The cross revokes it, after a confirmation; the partner is out at once.
        admin
            .click(&format!("tr[data-grant='{grant}'] [data-action=revoke]"))
            .await;
        admin.wait_text("dialog[open]", "Fleetco").await;
        admin.shot("access-revoke-confirm").await;
        admin.confirm().await;
        admin
            .wait_js("!document.querySelector('[data-testid=access-grants]')")
            .await;
        admin.shot("access-revoked").await;
        assert_eq!(access(&app, &acme).await["grants"], json!([]));
        assert_eq!(app.get("/me", &partner_token).await.0, 401);
        let (status, _) = app
            .post(
                &format!("/access-grants/{grant}/login"),
                &fleetco.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 404);

        admin.close().await;
    })
    .await;
}
