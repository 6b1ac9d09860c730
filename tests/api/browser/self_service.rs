//! A self-service user locks its phone, turns lost mode on with a message and a number, and
//! wipes it, in the browser; the reference agent carries the commands out and each command's
//! own line follows it to done. A wrong wipe password is named as such and reaches nothing;
//! the location opens on a map; the history lists every command.

use std::{sync::Arc, time::Duration};

use support_broker::agent;
use tokio_util::sync::CancellationToken;

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn a_self_service_user_locks_its_phone_served_by_the_reference_agent() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        app.self_service_user(&t, "ann", "self-service-full").await;
        let enrollment = preassigned_phone(&app, &t, "ann").await;
        let dir = tempfile::tempdir().unwrap();
        let state: agent::SharedState = Arc::default();
        let stop = CancellationToken::new();
        let options = agent_options(&app, dir.path(), Some(enrollment));
        let running = tokio::spawn(agent::run(options, state.clone(), stop.clone()));
        assert!(eventually(|| async { state.lock().unwrap().connected }).await);

        let driver = Driver::start().await;
        let ann = driver.browser("de-DE").await;
        ann.login_console(&app.base, "ann", PASSWORD).await;
        // Her only page: her devices, with what the agent reported.
        let card = "[data-testid=my-devices] [data-serial=REF-1]";
        ann.wait_text(card, "Ann's phone").await;
        ann.wait_text(&format!("{card} [data-field=battery]"), "64 %")
            .await;
        ann.wait_text(
            &format!("{card} [data-field=location]"),
            "47.37000, 8.54000",
        )
        .await;
        let text = ann.wait_text(card, "iPhone 16").await;
        assert!(text.contains("Sperren"), "lock is offered on iOS: {text}");
        ann.shot("self-service-devices").await;

        // Lock, confirmed in a dialog; its own progress line follows it to done.
        ann.click(&format!("{card} button[data-action=lock]")).await;
        ann.wait_text("dialog[open]", "Ann's phone").await;
        ann.shot("self-service-lock-confirm").await;
        ann.confirm().await;
        ann.wait_text(
            &format!("{card} [data-testid=command-lines] li[data-action=lock][data-status=done]"),
            "gesperrt",
        )
        .await;
        assert!(state.lock().unwrap().locked, "the agent locked the phone");
        ann.shot("self-service-locked").await;

        // Lost mode with a message and a number: a line of its own, the lock's line unchanged.
        ann.click(&format!("{card} button[data-action=lost_mode_on]"))
            .await;
        ann.fill(
            "dialog[open] textarea[name=message]",
            "Bitte an der Rezeption abgeben.",
        )
        .await;
        ann.fill("dialog[open] input[name=phone]", "+49 30 1234567")
            .await;
        ann.shot("self-service-lost-mode-dialog").await;
        ann.confirm().await;
        ann.wait_text(
            &format!(
                "{card} [data-testid=command-lines] li[data-action=lost_mode_on][data-status=done]"
            ),
            "Nachricht und Telefonnummer",
        )
        .await;
        ann.wait_text(
            &format!("{card} [data-testid=command-lines] li[data-action=lock]"),
            "gesperrt",
        )
        .await;
        {
            let local = state.lock().unwrap().clone();
            assert!(local.lost_mode);
            assert_eq!(
                local.lost_message.as_deref(),
                Some("Bitte an der Rezeption abgeben.")
            );
            assert_eq!(local.lost_phone.as_deref(), Some("+49301234567"));
        }
        // The toggle follows the state: now "off" is offered, "on" is not.
        ann.find(&format!("{card} button[data-action=lost_mode_off]"))
            .await;
        ann.wait_js(&format!(
            "document.querySelector('{card} button[data-action=lost_mode_on]') === null"
        ))
        .await;
        // The location opens on a map.
        let map = ann
            .find(&format!("{card} [data-testid=map-link]"))
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        assert!(map.contains("mlat=47.370000&mlon=8.540000"), "{map}");

        // A wipe with a wrong password says that the password is wrong, in the dialog, and
        // nothing reaches the phone.
        ann.click(&format!("{card} button[data-action=wipe]")).await;
        ann.fill("dialog[open] input[name=password]", "not my password")
            .await;
        ann.shot("self-service-wipe-confirm").await;
        ann.click("dialog[open] [data-confirm]").await;
        ann.wait_text("dialog[open]", "Das Passwort ist falsch")
            .await;
        ann.shot("self-service-wipe-refused").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        {
            let local = state.lock().unwrap().clone();
            assert!(!local.wiped, "no wipe with a wrong password");
            let answered: Vec<&str> = local.answered.iter().map(|(_, a)| a.as_str()).collect();
            assert_eq!(answered, ["lock", "lost_mode_on"]);
        }
        // The right one: the wipe runs and the page says what became of the device.
        ann.fill("dialog[open] input[name=password]", PASSWORD)
            .await;
        ann.confirm().await;
        ann.wait_text(
            &format!("{card} [data-testid=command-lines] li[data-action=wipe][data-status=done]"),
            "gelöscht",
        )
        .await;
        assert!(state.lock().unwrap().wiped);
        // The history lists every command, newest first.
        ann.click(&format!("{card} details summary")).await;
        let history = ann
            .wait_text(&format!("{card} [data-testid=command-history]"), "Löschen")
            .await;
        assert!(
            history.contains("Bitte an der Rezeption abgeben."),
            "{history}"
        );
        let order: Vec<usize> = ["Löschen", "Verloren", "Sperren"]
            .iter()
            .map(|w| history.find(w).unwrap())
            .collect();
        assert!(order[0] < order[1] && order[1] < order[2], "{history}");
        ann.shot("self-service-history").await;

        ann.close().await;
        stop.cancel();
        let _ = running.await;
    })
    .await;
}
