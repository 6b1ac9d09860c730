//! A self-service user locks its phone in the browser; the reference agent carries the command
//! out and the page follows it to done. A wipe with a wrong password is refused on the page and
//! reaches nothing.

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

        // Lock, confirmed in a dialog; the progress line follows the command to done.
        ann.click(&format!("{card} [data-action=lock]")).await;
        ann.wait_text("dialog[open]", "Ann's phone").await;
        ann.shot("self-service-lock-confirm").await;
        ann.confirm().await;
        ann.find(&format!(
            "{card} [data-testid=command-status][data-status=done]"
        ))
        .await;
        assert!(state.lock().unwrap().locked, "the agent locked the phone");
        ann.shot("self-service-locked").await;

        // A wipe asks for the password; a wrong one is refused and nothing reaches the phone.
        ann.click(&format!("{card} [data-action=wipe]")).await;
        ann.fill("dialog[open] input[name=password]", "not my password")
            .await;
        ann.shot("self-service-wipe-confirm").await;
        ann.confirm().await;
        ann.wait_text(
            &format!("{card} [role=alert]"),
            "mit Ihrem Passwort bestätigen",
        )
        .await;
        ann.shot("self-service-wipe-refused").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let local = state.lock().unwrap().clone();
        assert!(!local.wiped, "no wipe without the password");
        let answered: Vec<&str> = local.answered.iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(answered, ["lock"]);

        ann.close().await;
        stop.cancel();
        let _ = running.await;
    })
    .await;
}
