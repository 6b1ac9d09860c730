//! The whole way in for a new operator, in the browser only: a customer account created by
//! the platform admin, its admin in through the mailed link, a technician with rights, an
//! authenticator app turned on and used, a lost phone, a forgotten password, and every step
//! found again in the audit log, in words.

use super::{Driver, within_deadline};
use crate::helpers::*;

fn totp_of(secret: &str) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret.trim()).unwrap())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn a_new_operator_runs_an_account_from_creation_to_a_lost_phone_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let driver = Driver::start().await;

        // The platform admin creates the customer account with its first admin.
        let operator = driver.browser("en-US").await;
        operator
            .login_console(&app.base, "admin", ADMIN_PASSWORD)
            .await;
        operator.click("[data-testid=menu-accounts]").await;
        let form = "[data-testid=new-account]";
        for (name, value) in [
            ("name", "Bakery Sun"),
            ("username", "sunny"),
            ("first_name", "Sunny"),
            ("last_name", "Baker"),
            ("email", "sunny@bakery.example"),
        ] {
            operator
                .fill(&format!("{form} input[name={name}]"), value)
                .await;
        }
        operator.click(&format!("{form} button[type=submit]")).await;
        operator
            .wait_text("[data-testid=accounts-message]", "Bakery Sun")
            .await;

        operator.close().await;

        // Its admin gets in through the mailed link.
        assert!(
            eventually(|| async {
                outbox_mails(&app)
                    .iter()
                    .any(|m| m.contains("To: sunny@bakery.example"))
            })
            .await
        );
        let mail = outbox_mails(&app)
            .into_iter()
            .find(|m| m.contains("To: sunny@bakery.example"))
            .unwrap();
        assert!(
            mail.contains("\"Bakery Sun\""),
            "the mail names the account: {mail}"
        );
        let link = newest_set_password_token(&app, "sunny@bakery.example");
        let sunny = driver.browser("en-US").await;
        sunny
            .goto(&format!("{}/set-password?token={link}", app.base))
            .await;
        sunny.fill("input[name=password]", "sunny side up 1").await;
        sunny.fill("input[name=repeat]", "sunny side up 1").await;
        sunny.click("button[type=submit]").await;
        sunny.wait_text("main", "Your password is set").await;
        sunny
            .login_console(&app.base, "sunny", "sunny side up 1")
            .await;

        // A technician with rights.
        sunny.click("[data-testid=menu-users]").await;
        let new_user = "[data-testid=new-user]";
        for (name, value) in [
            ("username", "tom"),
            ("first_name", "Tom"),
            ("last_name", "Tech"),
            ("email", "tom@bakery.example"),
        ] {
            sunny
                .fill(&format!("{new_user} input[name={name}]"), value)
                .await;
        }
        sunny
            .click(&format!("{new_user} button[type=submit]"))
            .await;
        sunny.wait_text("[data-testid=users]", "tom").await;
        sunny
            .click("tr[data-username=tom] [data-action=rights]")
            .await;
        sunny
            .click("dialog[open] input[name='area:sessions']")
            .await;
        sunny.click("dialog[open] input[name='area:reports']").await;
        sunny.confirm().await;
        sunny
            .wait_text("[data-testid=users-message]", "Saved")
            .await;
        let token = app.login("sunny", "sunny side up 1").await;
        let (_, me) = app.get("/me", &token).await;
        let (_, users) = app
            .get(
                &format!(
                    "/accounts/{}/users",
                    me["user"]["account_id"].as_str().unwrap()
                ),
                &token,
            )
            .await;
        let tom_id = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "tom")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, tom) = app.get(&format!("/users/{tom_id}"), &token).await;
        assert_eq!(
            tom["rights"]["areas"],
            serde_json::json!(["sessions", "reports"])
        );

        // The admin turns on an authenticator app: QR code and secret, a first code, ten
        // recovery codes.
        sunny.click("[data-testid=who]").await;
        sunny.click("[data-testid=totp-start]").await;
        let secret = sunny.wait_text("[data-testid=totp-secret]", "").await;
        sunny
            .wait_js("document.querySelector('[data-testid=totp-qr]').naturalWidth > 0")
            .await;
        sunny.shot("walk-totp-qr").await;
        let totp = totp_of(&secret);
        sunny
            .fill(
                "[data-testid=totp-confirm] input[name=code]",
                &totp.generate_current().to_string(),
            )
            .await;
        sunny
            .click("[data-testid=totp-confirm] button[type=submit]")
            .await;
        let codes = sunny.wait_text("[data-testid=recovery-codes]", "-").await;
        let codes: Vec<String> = codes.split_whitespace().map(String::from).collect();
        assert_eq!(codes.len(), 10);

        sunny.close().await;

        // Signs in with the app.
        let next = driver.browser("en-US").await;
        next.login(&app.base, "sunny", "sunny side up 1").await;
        next.wait_text("[data-testid=code-form]", "authenticator app")
            .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // The code of the next step: the current one was spent on the confirmation.
        next.fill(
            "[data-testid=code-form] input[name=code]",
            &totp.generate(now + 30).to_string(),
        )
        .await;
        next.click("[data-testid=code-form] button[type=submit]")
            .await;
        next.wait_text("[data-testid=who]", "sunny").await;
        next.close().await;

        // Loses the phone: a recovery code gets her in.
        let lost = driver.browser("en-US").await;
        lost.login(&app.base, "sunny", "sunny side up 1").await;
        lost.click("[data-testid=use-recovery]").await;
        lost.fill("[data-testid=code-form] input[name=code]", &codes[0])
            .await;
        lost.click("[data-testid=code-form] button[type=submit]")
            .await;
        lost.wait_text("[data-testid=who]", "sunny").await;
        lost.close().await;

        // Forgets the password: a reset through the mailed link, then in with another
        // recovery code.
        let forgot = driver.browser("en-US").await;
        forgot.goto(&format!("{}/", app.base)).await;
        forgot.click("[data-testid=forgot]").await;
        forgot
            .fill("[data-testid=forgot-form] input[name=login]", "sunny")
            .await;
        forgot
            .click("[data-testid=forgot-form] button[type=submit]")
            .await;
        forgot
            .wait_text("[data-testid=forgot-form]", "on its way")
            .await;
        assert!(
            eventually(|| async {
                outbox_mails(&app).iter().any(|m| {
                    m.contains("To: sunny@bakery.example")
                        && m.contains("Set a new support-broker password (Bakery Sun)")
                })
            })
            .await
        );
        let reset = newest_set_password_token(&app, "sunny@bakery.example");
        forgot
            .goto(&format!("{}/set-password?token={reset}", app.base))
            .await;
        forgot
            .fill("input[name=password]", "moon rise later 2")
            .await;
        forgot.fill("input[name=repeat]", "moon rise later 2").await;
        forgot.click("button[type=submit]").await;
        forgot.wait_text("main", "Your password is set").await;
        forgot.login(&app.base, "sunny", "moon rise later 2").await;
        forgot.click("[data-testid=use-recovery]").await;
        forgot
            .fill("[data-testid=code-form] input[name=code]", &codes[1])
            .await;
        forgot
            .click("[data-testid=code-form] button[type=submit]")
            .await;
        forgot.wait_text("[data-testid=who]", "sunny").await;

        // Every step is in the audit log, in words.
        forgot.click("[data-testid=menu-audit]").await;
        for words in [
            "created the account",
            "set a password through a link",
            "created a user",
            "changed a user's rights",
            "started setting up an authenticator app",
            "changed the second factor",
            "signed in",
            "signed in with a recovery code",
            "asked for a password reset",
        ] {
            forgot.wait_text("[data-testid=audit]", words).await;
        }
        forgot.shot("walk-audit").await;
        // On a phone the page does not scroll sideways (wide tables scroll in their card).
        forgot
            .client
            .set_window_size(390, 844)
            .await
            .expect("phone size");
        forgot
            .wait_js("document.documentElement.scrollWidth <= window.innerWidth")
            .await;
        forgot.shot("walk-audit-phone").await;
    })
    .await;
}
