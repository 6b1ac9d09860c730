//! Getting back in, in the browser: a forgotten password reset through the mailed link, and
//! a password changed on the user's own page.

use super::{Driver, within_deadline};
use crate::helpers::*;

/// The set-password token in the newest mail to `to`.
fn newest_link(app: &TestApp, to: &str) -> String {
    let text = outbox_mails(app)
        .into_iter()
        .rev()
        .find(|t| t.contains(&format!("To: {to}")) && t.contains("set-password?token="))
        .expect("a mail with a link");
    let at = text.find("set-password?token=").unwrap() + "set-password?token=".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

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
        let link = newest_link(&app, "hanna@example.com");
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
