//! Running an account in the browser: a user's new address confirmed by its link, devices
//! added and commanded, enrollment codes made and revoked, the default invitation policy,
//! the audit log filtered and exported; and vendor support entering an account and restoring
//! a deleted user.

use serde_json::json;

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn an_admin_runs_users_devices_settings_and_audit_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (bob, _) = app.user(&t, "bob", &["sessions"]).await;
        let phone = app.device(&t, "P-1", "ios").await;
        let policy = app.policy(&t, "Nur Chat", &["chat"]).await;
        let driver = Driver::start().await;
        let admin = driver.browser("de-DE").await;
        admin.login_console(&app.base, "acme-admin", PASSWORD).await;

        // A new email address: pending until the link mailed to it is opened.
        admin.click("[data-testid=menu-users]").await;
        admin.click("tr[data-username=bob] [data-action=edit]").await;
        admin
            .fill("dialog[open] input[name=email]", "bob.neu@example.com")
            .await;
        admin.shot("user-edit-de").await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=users-message]", "Bestätigungslink")
            .await;
        assert_eq!(
            app.get(&format!("/users/{bob}"), &t.admin).await.1["email"],
            "bob@example.com"
        );
        let mail = outbox_mails(&app)
            .into_iter()
            .find(|m| m.contains("To: bob.neu@example.com"))
            .expect("a confirmation mail");
        let at = mail.find("/confirm-email?token=").unwrap();
        let link: String = mail[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let bobs = driver.browser("de-DE").await;
        bobs.goto(&format!("{}{link}", app.base)).await;
        bobs.wait_text("[data-testid=confirm-email]", "Erledigt")
            .await;
        bobs.shot("confirm-email-de").await;
        // The link works once.
        bobs.goto(&format!("{}{link}", app.base)).await;
        bobs.wait_text("[data-testid=confirm-email]", "bereits verwendet")
            .await;
        bobs.close().await;
        assert_eq!(
            app.get(&format!("/users/{bob}"), &t.admin).await.1["email"],
            "bob.neu@example.com"
        );

        // A device added by hand.
        admin.click("[data-testid=menu-devices]").await;
        let add = "[data-testid=new-device]";
        admin
            .fill(&format!("{add} input[name=name]"), "Kasse 1")
            .await;
        admin
            .fill(&format!("{add} input[name=serial]"), "K-1")
            .await;
        admin
            .choose(&format!("{add} select[name=platform]"), "windows")
            .await;
        admin.click(&format!("{add} button[type=submit]")).await;
        admin.wait_text("[data-testid=devices]", "Kasse 1").await;

        // An enrollment code: shown once, listed, revoked.
        admin
            .click("[data-testid=new-code] button[type=submit]")
            .await;
        let code = admin
            .wait_text("[data-testid=new-code-value]", "")
            .await;
        admin
            .wait_text("[data-testid=enrollment-codes] tr[data-state=open]", "offen")
            .await;
        admin.shot("enrollment-codes-de").await;
        admin
            .click("[data-testid=enrollment-codes] tr[data-state=open] [data-action=revoke]")
            .await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=enrollment-codes]", "widerrufen")
            .await;
        let (status, body) = app
            .call(
                "POST",
                "/enroll",
                None,
                Some(json!({"code": code.trim(), "serial": "X-9", "platform": "ios", "name": "X"})),
            )
            .await;
        assert_eq!((status, body["error"]["code"].as_str()), (410, Some("code_revoked")));

        // A wipe by the admin needs the admin's password; the dialog keeps what was chosen.
        admin
            .click("tr[data-serial=P-1] [data-action=command]")
            .await;
        admin
            .choose("dialog[open] select[name=action]", "wipe")
            .await;
        admin.click("dialog[open] [data-confirm]").await;
        admin
            .wait_text("dialog[open]", "mit Ihrem Passwort bestätigen")
            .await;
        let kept = admin
            .wait_js("document.querySelector('dialog[open] select[name=action]').value")
            .await;
        assert_eq!(kept, "wipe");
        admin
            .fill("dialog[open] input[name=password]", PASSWORD)
            .await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=command-state]", "wartet auf das Gerät")
            .await;
        admin.shot("device-wipe-queued-de").await;
        let (_, audit) = app
            .get(
                &format!("/accounts/{}/audit?action=device.action", t.id),
                &t.admin,
            )
            .await;
        assert_eq!(audit[0]["details"]["action"], "wipe");
        assert_eq!(audit[0]["target"].as_str(), Some(phone.as_str()));
        admin
            .client
            .set_window_size(390, 844)
            .await
            .expect("phone size");
        admin
            .wait_js("document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        admin.shot("devices-phone-de").await;
        admin
            .client
            .set_window_size(1280, 1000)
            .await
            .expect("desktop size");

        // The default policy for invitations.
        admin.click("[data-testid=menu-settings]").await;
        admin
            .choose(
                "[data-testid=default-policy] select[name=default_policy_id]",
                &policy,
            )
            .await;
        admin
            .click("[data-testid=default-policy] button[type=submit]")
            .await;
        admin
            .wait_text("[data-testid=default-policy-message]", "Gespeichert")
            .await;
        admin.shot("settings-default-policy-de").await;
        let (_, account) = app.get(&format!("/accounts/{}", t.id), &t.admin).await;
        assert_eq!(account["default_policy_id"].as_str(), Some(policy.as_str()));

        // The audit log, filtered to devices, in German, and its export.
        admin.click("[data-testid=menu-audit]").await;
        admin
            .wait_text("[data-testid=audit]", "Benutzer angelegt")
            .await;
        admin
            .choose("[data-testid=audit-filter] select[name=action]", "device.")
            .await;
        admin
            .click("[data-testid=audit-filter] button[type=submit]")
            .await;
        admin
            .wait_js("[...document.querySelectorAll('[data-testid=audit] tbody tr')].every((r) => r.dataset.action.startsWith('device.'))")
            .await;
        admin
            .wait_text("[data-testid=audit]", "Aktion: Löschen (Wipe)")
            .await;
        admin.shot("audit-filtered-de").await;
        admin.click("[data-testid=audit-export]").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let errors = admin
            .client
            .execute(
                "return document.querySelectorAll('[data-testid=audit-message] .error').length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(errors, json!(0), "the export downloads without an error");

        // The hash chain checks out in the browser; a row edited in the database is named.
        admin.click("[data-testid=audit-verify]").await;
        admin
            .wait_text("[data-testid=chain-state]", "unverändert")
            .await;
        admin.shot("audit-chain-intact-de").await;
        support_broker::store::db::query("UPDATE audit_log SET actor_name = 'nobody' WHERE account_id = ? AND seq = 3")
            .bind(&t.id)
            .execute(&app.db().await)
            .await
            .unwrap();
        admin.click("[data-testid=audit-verify]").await;
        admin
            .wait_text("[data-testid=chain-state]", "bricht bei Eintrag 3")
            .await;
        admin.shot("audit-chain-broken-de").await;
    })
    .await;
}

#[actix_web::test]
async fn vendor_support_enters_an_account_with_a_banner_and_restores_a_deleted_user() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (bob, _) = app.user(&t, "bob", &["sessions"]).await;
        let (status, _) = app
            .call("DELETE", &format!("/users/{bob}"), Some(&t.admin), None)
            .await;
        assert_eq!(status, 204);
        let driver = Driver::start().await;
        let staff = driver.browser("en-US").await;
        staff
            .login_console(&app.base, "admin", ADMIN_PASSWORD)
            .await;
        staff.click("[data-testid=menu-accounts]").await;

        staff.wait_text("[data-testid=accounts]", "Acme").await;
        staff.shot("platform-accounts-support").await;

        // The deleted user, restored.
        staff
            .click("tr[data-account=Acme] [data-action=deleted-users]")
            .await;
        staff
            .wait_text("[data-testid=deleted-users]", "bob")
            .await;
        staff.shot("deleted-users").await;
        staff
            .click("[data-testid=deleted-users] tr[data-username=bob] [data-action=restore]")
            .await;
        staff
            .wait_text("[data-testid=deleted-users]", "No deleted users")
            .await;
        staff.click("dialog[open] [data-confirm]").await;
        staff
            .wait_text("[data-testid=accounts-message]", "bob in Acme is restored")
            .await;
        app.login("bob", PASSWORD).await;

        // Entering the account as vendor support: a banner on every page, and a way out.
        staff
            .click("tr[data-account=Acme] [data-action=enter]")
            .await;
        staff
            .wait_text(
                "[data-testid=acting-banner]",
                "Acting as vendor support in Acme",
            )
            .await;
        staff.click("[data-testid=menu-users]").await;
        staff.wait_text("[data-testid=users]", "bob").await;
        staff.wait_text("[data-testid=acting-banner]", "Acme").await;
        staff.shot("vendor-support-in-account").await;
        let (_, audit) = app
            .get(&format!("/accounts/{}/audit?via=vendor_support", t.id), &t.admin)
            .await;
        assert!(!audit.as_array().unwrap().is_empty(), "{audit}");
        staff.click("[data-testid=leave-account]").await;
        staff.wait_text("[data-testid=accounts]", "Acme").await;
        staff
            .wait_js("!document.querySelector('[data-testid=acting-banner]')")
            .await;
        staff.wait_text("[data-testid=who]", "admin").await;

        // An account that does not allow it cannot be entered.
        app.call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&t.admin),
            Some(json!({"support_access": false})),
        )
        .await;
        staff.client.refresh().await.expect("reload");
        staff
            .wait_js("document.querySelector('tr[data-account=Acme] [data-action=enter]')?.disabled === true")
            .await;
    })
    .await;
}
