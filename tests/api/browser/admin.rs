//! An account admin creates a user, gives it rights and sets its 2FA to email codes in the
//! browser; the new user then signs in with password and mailed code, and switches language.

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn an_admin_creates_a_user_and_sets_2fa_which_the_user_then_passes() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let driver = Driver::start().await;
        let admin = driver.browser("en-US").await;

        admin.login_console(&app.base, "acme-admin", PASSWORD).await;
        admin.click("[data-testid=menu-users]").await;
        admin.wait_text("[data-testid=users]", "acme-admin").await;

        // Create the user, with a password so it can sign in at once.
        let form = "[data-testid=new-user]";
        for (name, value) in [
            ("username", "bea"),
            ("first_name", "Bea"),
            ("last_name", "Brandt"),
            ("email", "bea@example.com"),
            ("password", PASSWORD),
        ] {
            admin
                .fill(&format!("{form} input[name={name}]"), value)
                .await;
        }
        admin.click(&format!("{form} button[type=submit]")).await;
        admin
            .wait_text(
                "[data-testid=users] tr[data-username=bea]",
                "bea@example.com",
            )
            .await;
        admin.shot("admin-users").await;
        let (_, users) = app
            .get(&format!("/accounts/{}/users", t.id), &t.admin)
            .await;
        let bea = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "bea")
            .expect("the user exists");
        let bea_id = bea["id"].as_str().unwrap().to_string();

        // The pen: the sessions area.
        admin
            .click("tr[data-username=bea] [data-action=rights]")
            .await;
        admin
            .click("dialog[open] input[name='area:sessions']")
            .await;
        admin.shot("admin-user-rights").await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=users-message]", "Saved.")
            .await;
        let (_, detail) = app.get(&format!("/users/{bea_id}"), &t.admin).await;
        assert_eq!(detail["rights"]["areas"], serde_json::json!(["sessions"]));

        // The door: codes by email.
        admin
            .click("tr[data-username=bea] [data-action=login-options]")
            .await;
        admin
            .choose("dialog[open] select[name=two_factor]", "email")
            .await;
        admin.shot("admin-login-options").await;
        admin.confirm().await;
        // ("Saved." still stands from the rights: the store is what tells this save landed.)
        assert!(
            eventually(|| async {
                let (_, detail) = app.get(&format!("/users/{bea_id}"), &t.admin).await;
                detail["two_factor"] == "email"
            })
            .await,
            "codes by email are saved"
        );
        admin
            .wait_text("[data-testid=users-message]", "Saved.")
            .await;

        // Bea's browser speaks German: password, then the code from her mail.
        let bea = driver.browser("de-DE").await;
        bea.login(&app.base, "bea", PASSWORD).await;
        bea.wait_text("[data-testid=code-form]", "per E-Mail").await;
        bea.shot("login-code").await;
        // A wrong code is refused on the page and she stays there. (The mail may reach the
        // outbox a moment after the page shows the code step.)
        let mailed = || {
            outbox_mails(&app)
                .iter()
                .any(|m| m.contains("To: bea@example.com") && m.contains("login code"))
        };
        assert!(
            eventually(|| async { mailed() }).await,
            "the code is mailed"
        );
        let code = last_mail_code(&app, "bea@example.com");
        let wrong = if code == "00000" { "11111" } else { "00000" };
        bea.fill("[data-testid=code-form] input[name=code]", wrong)
            .await;
        bea.click("[data-testid=code-form] button[type=submit]")
            .await;
        bea.find("[data-testid=code-form] [role=alert]").await;
        bea.fill("[data-testid=code-form] input[name=code]", &code)
            .await;
        bea.click("[data-testid=code-form] button[type=submit]")
            .await;
        bea.wait_text("[data-testid=who]", "bea").await;
        bea.wait_text("[data-testid=menu-sessions]", "Sitzungen")
            .await;
        bea.shot("console-de").await;

        // The language switch, and the choice is kept on the next page.
        bea.click("[data-testid=lang]").await;
        bea.wait_text("[data-testid=menu-sessions]", "Sessions")
            .await;
        bea.goto(&format!("{}/", app.base)).await;
        bea.wait_text("[data-testid=menu-sessions]", "Sessions")
            .await;
        bea.shot("console-en").await;

        // Bob sets up an authenticator app himself (only he may: the answer holds the seed).
        let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
        let (status, body) = app
            .call(
                "PUT",
                &format!("/users/{bob_id}/login-options"),
                Some(&bob),
                Some(serde_json::json!({"two_factor": "totp"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // Switched on by his first code.
        let secret = body["secret"].as_str().unwrap();
        let code = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
            .build()
            .unwrap()
            .generate_current()
            .to_string();
        let (status, body) = app
            .post("/me/totp/confirm", &bob, serde_json::json!({"code": code}))
            .await;
        assert_eq!(status, 200, "{body}");

        // The user list shows her sign-in; the audit log the admin's changes.
        admin.client.refresh().await.expect("reload");
        let row = admin
            .wait_text("[data-testid=users] tr[data-username=bea]", "bea")
            .await;
        assert!(!row.contains("never"), "{row}");
        admin.shot("admin-users-after-login").await;

        // The admin's dialog shows Bob's app, and saving it unchanged keeps it on.
        admin
            .click("tr[data-username=bob] [data-action=login-options]")
            .await;
        admin
            .wait_js(
                "document.querySelector('dialog[open] select[name=two_factor]').value === 'totp'",
            )
            .await;
        admin.confirm().await;
        admin
            .wait_js("document.querySelector('dialog[open]') === null")
            .await;
        let (_, detail) = app.get(&format!("/users/{bob_id}"), &t.admin).await;
        assert_eq!(detail["two_factor"], "totp");
        // The admin may switch him to codes by email (e.g. a lost phone).
        admin
            .click("tr[data-username=bob] [data-action=login-options]")
            .await;
        admin
            .choose("dialog[open] select[name=two_factor]", "email")
            .await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=users-message]", "Saved.")
            .await;
        let (_, detail) = app.get(&format!("/users/{bob_id}"), &t.admin).await;
        assert_eq!(detail["two_factor"], "email");
        admin.click("[data-testid=menu-audit]").await;
        admin
            .wait_text("[data-testid=audit]", "changed the second factor")
            .await;
        admin
            .wait_text("[data-testid=audit]", "changed a user's rights")
            .await;
        admin.shot("admin-audit").await;

        // A security policy for invitations: chat and view.
        admin.click("[data-testid=menu-policies]").await;
        admin
            .fill("[data-testid=new-policy] input[name=name]", "Watch only")
            .await;
        admin
            .click("[data-testid=new-policy] input[name='perm:view']")
            .await;
        admin
            .click("[data-testid=new-policy] button[type=submit]")
            .await;
        admin
            .wait_text("[data-testid=policies]", "Watch only")
            .await;
        admin.shot("admin-policies").await;
        let (_, policies) = app
            .get(&format!("/accounts/{}/policies", t.id), &t.admin)
            .await;
        assert_eq!(
            policies[0]["permissions"],
            serde_json::json!(["chat", "view"])
        );

        // Devices: the CSV import links an enrolled phone to bea and reports every row.
        for (serial, platform) in [("SN-1", "android"), ("SN-2", "ios")] {
            let code = app.enrollment_code(&t).await;
            app.enroll(&code, serial, platform).await;
        }
        admin.click("[data-testid=menu-devices]").await;
        admin.wait_text("[data-testid=devices]", "SN-1").await;
        admin
            .fill(
                "[data-testid=csv-text]",
                "serial,username\nSN-1,bea\nSN-404,bea\nSN-2,nobody\nSN-1,bea\n",
            )
            .await;
        admin
            .click("[data-testid=csv-import] button[type=submit]")
            .await;
        let report = admin
            .wait_text("[data-testid=import-report]", "unknown serial")
            .await;
        assert!(report.contains("linked"), "{report}");
        assert!(report.contains("unknown user"), "{report}");
        assert!(report.contains("duplicate"), "{report}");
        admin.wait_text("[data-testid=devices]", "bea").await;
        admin.shot("admin-devices-import").await;
        let (_, devices) = app
            .get(&format!("/accounts/{}/devices", t.id), &t.admin)
            .await;
        let sn1 = devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["serial"] == "SN-1")
            .unwrap();
        assert_eq!(sn1["user_id"], bea_id.as_str());

        admin.close().await;
        bea.close().await;
    })
    .await;
}

/// A user manager (users + edit) in a German browser: no pen on its own row (nobody changes
/// its own rights), and trying to strip the account's admin is refused in words, changing
/// nothing.
#[actix_web::test]
async fn a_user_manager_meets_the_rights_ceiling_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (clerk_id, _) = app.user(&t, "clerk", &[]).await;
        let clerk_rights = serde_json::json!({"areas": ["users"],
            "objects": {"create": false, "edit": true, "delete": false}, "groups": "all"});
        app.set_rights(&t.admin, &clerk_id, clerk_rights).await;
        let driver = Driver::start().await;
        let clerk = driver.browser("de-DE").await;
        clerk.login_console(&app.base, "clerk", PASSWORD).await;
        clerk.click("[data-testid=menu-users]").await;
        clerk.wait_text("[data-testid=users]", "acme-admin").await;
        let own_pen = clerk
            .wait_js(
                "document.querySelector('tr[data-username=clerk] [data-action=login-options]') \
                 && (document.querySelector('tr[data-username=clerk] [data-action=rights]') === null ? 'none' : 'pen')",
            )
            .await;
        assert_eq!(own_pen, "none", "no pen on the own row");
        clerk
            .click("tr[data-username=acme-admin] [data-action=rights]")
            .await;
        clerk
            .click("dialog[open] input[name='area:devices']")
            .await;
        let before = clerk
            .wait_js("String(document.querySelector(\"dialog[open] input[name='area:devices']\").checked)")
            .await;
        clerk.click("dialog[open] [data-confirm]").await;
        // The refusal shows in the dialog, which keeps what was ticked.
        let text = clerk.wait_text("dialog[open]", "mehr Rechte").await;
        assert!(text.contains("als Sie selbst haben"), "{text}");
        let after = clerk
            .wait_js("String(document.querySelector(\"dialog[open] input[name='area:devices']\").checked)")
            .await;
        assert_eq!(before, after, "the dialog keeps what was ticked");
        clerk.shot("admin-rights-ceiling-de").await;
        clerk.click("dialog[open] button[type=button]").await;
        let (_, admin) = app.get(&format!("/users/{}", t.admin_id), &t.admin).await;
        assert_eq!(admin["rights"]["areas"].as_array().unwrap().len(), 7, "nothing changed");
    })
    .await;
}

/// The account admin turns vendor support off in its settings (after a confirmation that says
/// what it means); the vendor's login into the account is refused from then on.
#[actix_web::test]
async fn an_account_admin_turns_vendor_support_off_in_the_settings() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let driver = Driver::start().await;
        let admin = driver.browser("de-DE").await;
        admin.login_console(&app.base, "acme-admin", PASSWORD).await;
        admin.click("[data-testid=menu-settings]").await;
        admin
            .wait_text("[data-testid=support-state]", "darf dieses Konto betreten")
            .await;
        admin.click("[data-testid=support-toggle]").await;
        admin.shot("settings-vendor-support-confirm-de").await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=support-state]", "nicht betreten")
            .await;
        admin.shot("settings-vendor-support-off-de").await;
        admin
            .client
            .set_window_size(360, 800)
            .await
            .expect("phone size");
        admin.shot("settings-phone-de").await;
        let (status, body) = app
            .post(
                &format!("/accounts/{}/support-login", t.id),
                &app.admin,
                serde_json::json!({}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("support_access_disabled"))
        );
    })
    .await;
}

/// The users list shows each user's second factor; the admin sees and revokes a user's API
/// key and mails a new password link, all in the browser.
#[actix_web::test]
async fn an_admin_sees_and_revokes_a_users_api_key_and_sends_a_new_link() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (kai_id, kai) = app.user(&t, "kai", &["sessions"]).await;
        let (status, key) = app
            .post(
                &format!("/users/{kai_id}/api-keys"),
                &kai,
                serde_json::json!({"name": "ci-runner"}),
            )
            .await;
        assert_eq!(status, 201);
        let key = key["key"].as_str().unwrap().to_string();
        let driver = Driver::start().await;
        let admin = driver.browser("en-US").await;
        admin.login_console(&app.base, "acme-admin", PASSWORD).await;
        admin.click("[data-testid=menu-users]").await;
        let row = admin.wait_text("tr[data-username=kai]", "kai").await;
        assert!(row.contains("off") && row.contains("yes"), "{row}");
        admin
            .click("tr[data-username=kai] [data-action=api-keys]")
            .await;
        admin.wait_text("dialog[open]", "ci-runner").await;
        admin.shot("admin-user-api-keys").await;
        admin.click("dialog[open] [data-action=revoke-key]").await;
        admin
            .wait_text("[data-testid=users-message]", "ci-runner")
            .await;
        assert_eq!(app.get("/me", &key).await.0, 401, "the key is dead");
        admin.click("dialog[open] button[type=button]").await;

        admin
            .click("tr[data-username=kai] [data-action=send-link]")
            .await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=users-message]", "kai@example.com")
            .await;
        assert!(
            outbox_mails(&app)
                .iter()
                .any(|m| m.contains("To: kai@example.com")
                    && m.contains("sent you a link to set your password"))
        );
    })
    .await;
}

/// Device groups on the devices page: create, rename, and delete only when empty (in words).
#[actix_web::test]
async fn an_admin_manages_device_groups_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let driver = Driver::start().await;
        let admin = driver.browser("en-US").await;
        admin.login_console(&app.base, "acme-admin", PASSWORD).await;
        admin.click("[data-testid=menu-devices]").await;
        admin.fill("[data-testid=new-group] input[name=name]", "Store").await;
        admin
            .click("[data-testid=new-group] button[type=submit]")
            .await;
        admin.wait_text("[data-testid=groups] table", "Store").await;
        admin
            .click("tr[data-group=Store] [data-action=rename]")
            .await;
        admin.fill("dialog[open] input[name=name]", "Store North").await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=groups] table", "Store North")
            .await;
        // A device in it: the delete is refused in words.
        let (_, groups) = app.get(&format!("/accounts/{}/groups", t.id), &t.admin).await;
        let gid = groups[0]["id"].as_str().unwrap().to_string();
        app.post(
            &format!("/accounts/{}/devices", t.id),
            &t.admin,
            serde_json::json!({"name": "Till", "serial": "T-1", "platform": "windows", "group_id": gid}),
        )
        .await;
        admin
            .click("tr[data-group='Store North'] [data-action=delete]")
            .await;
        admin.confirm().await;
        admin
            .wait_text("[data-testid=groups-message]", "move them first")
            .await;
        admin.shot("admin-device-groups").await;
    })
    .await;
}
