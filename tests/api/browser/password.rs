//! Getting back in, in the browser: a forgotten password reset through the mailed link, and
//! a password changed on the user's own page.

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn a_user_resets_a_forgotten_password_and_later_changes_it_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        app.user(&t, "hanna", &["sessions"]).await;
        let driver = Driver::start().await;
        let hanna = driver.browser("en-US").await;

        hanna.goto(&format!("{}/", app.base)).await;
        hanna.click("[data-testid=forgot]").await;
        hanna
            .fill(
                "[data-testid=forgot-form] input[name=login]",
                "hanna@example.com",
            )
            .await;
        hanna
            .click("[data-testid=forgot-form] button[type=submit]")
            .await;
        hanna
            .wait_text("[data-testid=forgot-form]", "on its way")
            .await;
        hanna.shot("forgot-password").await;
        assert!(
            eventually(|| async {
                outbox_mails(&app)
                    .iter()
                    .any(|m| m.contains("Set a new support-broker password"))
            })
            .await
        );
        let link = newest_set_password_token(&app, "hanna@example.com");
        hanna
            .goto(&format!("{}/set-password?token={link}", app.base))
            .await;
        hanna
            .fill("input[name=password]", "fresh horse staple")
            .await;
        hanna.fill("input[name=repeat]", "fresh horse staple").await;
        hanna.click("button[type=submit]").await;
        hanna.wait_text("main", "Your password is set").await;

        hanna
            .login_console(&app.base, "hanna", "fresh horse staple")
            .await;
        hanna.click("[data-testid=who]").await;
        let form = "[data-testid=password-form]";
        hanna
            .fill(&format!("{form} input[name=current]"), "wrong one here")
            .await;
        hanna
            .fill(&format!("{form} input[name=new]"), "newer horse staple")
            .await;
        hanna
            .fill(&format!("{form} input[name=repeat]"), "newer horse staple")
            .await;
        hanna.click(&format!("{form} button[type=submit]")).await;
        hanna.wait_text(form, "current password is wrong").await;
        hanna
            .fill(&format!("{form} input[name=current]"), "fresh horse staple")
            .await;
        hanna
            .fill(&format!("{form} input[name=new]"), "newer horse staple")
            .await;
        hanna
            .fill(&format!("{form} input[name=repeat]"), "newer horse staple")
            .await;
        hanna.click(&format!("{form} button[type=submit]")).await;
        hanna.wait_text(form, "Password changed").await;
        hanna.shot("profile-password-changed").await;
        // The same page on a phone.
        hanna
            .client
            .set_window_size(390, 844)
            .await
            .expect("phone size");
        hanna.shot("profile-phone").await;
        app.login("hanna", "newer horse staple").await;
    })
    .await;
}

/// A user turns on an authenticator app in the browser (confirm-first), signs in with its
/// 6-digit code, then loses the phone and gets in with a recovery code.
#[actix_web::test]
async fn a_user_turns_on_an_authenticator_app_and_gets_back_in_with_a_recovery_code() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        app.user(&t, "ivo", &["sessions"]).await;
        let driver = Driver::start().await;
        let ivo = driver.browser("de-DE").await;
        ivo.login_console(&app.base, "ivo", PASSWORD).await;
        ivo.click("[data-testid=who]").await;
        ivo.click("[data-testid=totp-start]").await;
        let secret = ivo.wait_text("[data-testid=totp-secret]", "").await;
        let totp = totp_rs::Builder::new()
            .with_secret(totp_rs::Secret::try_from_base32(secret.trim()).unwrap())
            .build()
            .unwrap();
        ivo.shot("totp-setup-de").await;
        ivo.fill(
            "[data-testid=totp-confirm] input[name=code]",
            &totp.generate_current().to_string(),
        )
        .await;
        ivo.click("[data-testid=totp-confirm] button[type=submit]")
            .await;
        let codes = ivo.wait_text("[data-testid=recovery-codes]", "-").await;
        ivo.shot("totp-recovery-codes-de").await;
        let codes: Vec<&str> = codes.split_whitespace().collect();
        assert_eq!(codes.len(), 10, "{codes:?}");

        // Sign in again: the code page asks for the app's 6 digits and takes them all.
        let again = driver.browser("de-DE").await;
        again.login(&app.base, "ivo", PASSWORD).await;
        again
            .wait_text("[data-testid=code-form]", "Authenticator-App")
            .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        again
            .fill(
                "[data-testid=code-form] input[name=code]",
                &totp.generate(now + 30).to_string(),
            )
            .await;
        again.shot("login-code-app-de").await;
        again
            .click("[data-testid=code-form] button[type=submit]")
            .await;
        again.wait_text("[data-testid=who]", "ivo").await;

        // The phone is gone: a recovery code instead.
        let lost = driver.browser("de-DE").await;
        lost.login(&app.base, "ivo", PASSWORD).await;
        lost.click("[data-testid=use-recovery]").await;
        lost.wait_text("[data-testid=code-form]", "Wiederherstellungscode")
            .await;
        lost.fill("[data-testid=code-form] input[name=code]", codes[3])
            .await;
        lost.shot("login-recovery-de").await;
        lost.click("[data-testid=code-form] button[type=submit]")
            .await;
        lost.wait_text("[data-testid=who]", "ivo").await;
    })
    .await;
}

/// A used set-password link says so as the page loads, before anyone types, and leads to
/// asking for a new one.
#[actix_web::test]
async fn a_dead_set_password_link_says_so_at_once_and_offers_a_new_one() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (status, _) = app
            .post(
                &format!("/accounts/{}/users", t.id),
                &t.admin,
                serde_json::json!({"username": "jana", "first_name": "Jana", "last_name": "J",
                                   "email": "jana@example.com"}),
            )
            .await;
        assert_eq!(status, 201);
        let first = newest_set_password_token(&app, "jana@example.com");
        // A second link (the admin's) ends the first.
        let (_, users) = app
            .get(&format!("/accounts/{}/users", t.id), &t.admin)
            .await;
        let jana = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "jana")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        app.post(
            &format!("/users/{jana}/set-password-link"),
            &t.admin,
            serde_json::json!({}),
        )
        .await;
        let driver = Driver::start().await;
        let b = driver.browser("de-DE").await;
        b.goto(&format!("{}/set-password?token={first}", app.base))
            .await;
        b.wait_text("[data-testid=link-dead]", "bereits verwendet")
            .await;
        b.shot("set-password-link-used-de").await;
        b.click("[data-testid=request-new-link]").await;
        b.fill("[data-testid=forgot-form] input[name=login]", "jana")
            .await;
        b.click("[data-testid=forgot-form] button[type=submit]")
            .await;
        b.wait_text("[data-testid=forgot-form]", "unterwegs").await;
    })
    .await;
}
