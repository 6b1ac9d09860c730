//! The platform admin's accounts screen: list, filter, create with a first admin, certify.

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn the_platform_admin_runs_accounts_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        app.tenant("Acme").await;
        app.partner("Fixit", false).await;
        let driver = Driver::start().await;
        let admin = driver.browser("en-US").await;
        admin
            .login_console(&app.base, "admin", ADMIN_PASSWORD)
            .await;
        admin.click("[data-testid=menu-accounts]").await;
        admin.wait_text("[data-testid=accounts]", "Fixit").await;
        // The page names itself, and focus is on its heading.
        admin
            .wait_js("document.title === 'Accounts · Support broker' && document.activeElement.tagName === 'H1'")
            .await;

        // Filter: partners only.
        admin
            .choose("[data-testid=accounts-filter] select[name=kind]", "partner")
            .await;
        admin
            .click("[data-testid=accounts-filter] button[type=submit]")
            .await;
        admin
            .wait_js(
                "!document.querySelector('[data-testid=accounts]').textContent.includes('Acme')",
            )
            .await;

        // Certify the partner.
        admin
            .click("tr[data-account=Fixit] [data-action=certify]")
            .await;
        admin
            .wait_text("[data-testid=accounts-message]", "certified now")
            .await;
        let (_, partners) = app.get("/accounts?kind=partner", &app.admin).await;
        assert_eq!(partners[0]["certified"], true);

        // A new customer account with its first admin, who is mailed a link.
        let form = "[data-testid=new-account]";
        for (name, value) in [
            ("name", "Beta"),
            ("username", "beta-admin"),
            ("first_name", "Bert"),
            ("last_name", "Beta"),
            ("email", "bert@beta.example"),
        ] {
            admin
                .fill(&format!("{form} input[name={name}]"), value)
                .await;
        }
        admin.click(&format!("{form} button[type=submit]")).await;
        admin
            .wait_text("[data-testid=accounts-message]", "Account Beta created")
            .await;
        admin.shot("platform-accounts").await;
        admin
            .client
            .set_window_size(360, 800)
            .await
            .expect("phone size");
        admin.shot("platform-accounts-phone").await;
        admin
            .client
            .set_window_size(1366, 900)
            .await
            .expect("desktop size");
        assert!(
            outbox_mails(&app)
                .iter()
                .any(|m| m.contains("To: bert@beta.example") && m.contains("set-password?token="))
        );
        // A taken username is refused in words, and what was typed stays.
        admin
            .fill(&format!("{form} input[name=name]"), "Gamma")
            .await;
        admin
            .fill(&format!("{form} input[name=username]"), "beta-admin")
            .await;
        admin
            .fill(&format!("{form} input[name=first_name]"), "G")
            .await;
        admin
            .fill(&format!("{form} input[name=last_name]"), "G")
            .await;
        admin
            .fill(&format!("{form} input[name=email]"), "g@gamma.example")
            .await;
        admin.click(&format!("{form} button[type=submit]")).await;
        admin
            .wait_text("[data-testid=accounts-message]", "username")
            .await;
        let kept = admin
            .wait_js(&format!(
                "document.querySelector('{form} input[name=name]').value"
            ))
            .await;
        assert_eq!(kept, "Gamma");
    })
    .await;
}
