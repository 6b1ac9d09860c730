//! A partner's users in their browser: ask a customer for access by its customer number, see
//! the request and then the grant, assign a device and take it back, and enter the customer
//! account through the grant under a banner that says so.

use serde_json::json;

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn a_partner_asks_by_number_assigns_a_device_and_enters_the_customer_account() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let acme = app.tenant("Acme").await;
        let fleetco = app.partner("Fleetco", true).await;
        app.device(&fleetco, "FL-1", "android").await;
        let driver = Driver::start().await;
        let customer = driver.browser("en-US").await;
        let partner = driver.browser("de-DE").await;

        // The customer's admin finds the number to hand out under Settings.
        customer
            .login_console(&app.base, "acme-admin", PASSWORD)
            .await;
        customer.click("[data-testid=menu-settings]").await;
        let shown = customer
            .wait_text("[data-testid=customer-number]", "partner")
            .await;
        let number: String = customer
            .find("[data-testid=customer-number-value]")
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            number.chars().filter(char::is_ascii_digit).count(),
            9,
            "{shown}"
        );
        customer.shot("customer-number").await;

        // The partner asks with it.
        partner
            .login_console(&app.base, "fleetco-admin", PASSWORD)
            .await;
        partner.click("[data-testid=menu-partner]").await;
        partner
            .fill(
                "[data-testid=ask-access] input[name=customer_number]",
                &number,
            )
            .await;
        partner
            .fill(
                "[data-testid=ask-access] input[name=message]",
                "Wir betreuen Ihre Flotte",
            )
            .await;
        partner
            .click("[data-testid=ask-access] input[name=support_user]")
            .await;
        partner
            .click("[data-testid=ask-access] button[type=submit]")
            .await;
        partner
            .wait_text("[data-testid=partner-message]", "Acme")
            .await;
        partner
            .wait_text("[data-testid=my-requests]", "offen")
            .await;
        partner.shot("partner-request-sent").await;
        assert!(
            outbox_mails(&app)
                .iter()
                .any(|m| m.contains("To: acme-admin@example.com")
                    && m.contains("Fleetco asks for access")),
            "the customer's admin is told"
        );

        // Approved by the customer: the grant appears with the customer's name.
        let (_, list) = app
            .get(&format!("/accounts/{}/access", acme.id), &acme.admin)
            .await;
        let request = list["requests"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = app
            .post(
                &format!("/access-requests/{request}/approve"),
                &acme.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 201);
        partner.client.refresh().await.unwrap();
        let card = "[data-customer=Acme]";
        partner.wait_text(card, "Acme").await;
        partner
            .wait_text("[data-testid=my-requests]", "genehmigt")
            .await;

        // Ask the customer to renew: its admins are told.
        partner.click(&format!("{card} [data-action=renew]")).await;
        partner
            .fill("dialog[open] input[name=message]", "Vertrag läuft weiter")
            .await;
        partner.confirm().await;
        partner
            .wait_text(
                &format!("{card} [data-testid=renewal-asked]"),
                "Verlängerung",
            )
            .await;
        assert!(
            outbox_mails(&app)
                .iter()
                .any(|m| m.contains("To: acme-admin@example.com")
                    && m.contains("Vertrag läuft weiter")),
            "the renewal request reaches the customer's admin"
        );

        // Assign its device to the customer, take it back, assign it again.
        partner
            .click(&format!(
                "{card} [data-testid=assign-form] button[type=submit]"
            ))
            .await;
        partner
            .wait_text(&format!("{card} [data-testid=grant-devices] table"), "FL-1")
            .await;
        let (_, in_acme) = app
            .get(&format!("/accounts/{}/devices", acme.id), &acme.admin)
            .await;
        assert_eq!(in_acme[0]["serial"], "FL-1");
        partner.shot("partner-device-assigned").await;
        partner
            .click(&format!("{card} [data-action=unassign]"))
            .await;
        partner.confirm().await;
        partner
            .wait_text(
                &format!("{card} [data-testid=grant-devices]"),
                "keine Ihrer Geräte",
            )
            .await;
        partner
            .click(&format!(
                "{card} [data-testid=assign-form] button[type=submit]"
            ))
            .await;
        partner
            .wait_text(&format!("{card} [data-testid=grant-devices] table"), "FL-1")
            .await;

        // Into the customer account through the grant: the banner names both, the device is
        // there, and leaving comes back to the partner's page.
        partner.click(&format!("{card} [data-action=enter]")).await;
        partner
            .wait_text("[data-testid=acting-banner]", "Fleetco in Acme")
            .await;
        partner.click("[data-testid=menu-devices]").await;
        partner.wait_text("main", "FL-1").await;
        partner.shot("partner-inside-customer").await;
        partner.click("[data-testid=leave-account]").await;
        partner.find("[data-testid=ask-access]").await;
        partner
            .wait_js("!document.querySelector('[data-testid=acting-banner]')")
            .await;
        let (_, audit) = app
            .get(&format!("/accounts/{}/audit", acme.id), &acme.admin)
            .await;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"access.support_login"), "{actions:?}");
        assert!(actions.contains(&"device.assigned"), "{actions:?}");

        customer.close().await;
        partner.close().await;
    })
    .await;
}
