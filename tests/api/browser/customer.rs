//! The customer's page at a session's `customer_url`: chat with the technician and a screen
//! share from the browser, arriving as screen-channel frames.

use std::time::Duration;

use serde_json::json;

use super::{Driver, within_deadline};
use crate::helpers::*;

#[actix_web::test]
async fn the_customer_chats_and_shares_its_screen_from_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let (status, created) = app
            .post("/sessions", &t.admin, json!({"subject": "Printer offline"}))
            .await;
        assert_eq!(status, 201);
        let session = created["id"].as_str().unwrap().to_string();
        let mut tech = app.ws_technician(&t.admin, &session).await;

        let driver = Driver::start().await;
        let customer = driver.browser("en-US").await;
        customer
            .goto(created["customer_url"].as_str().unwrap())
            .await;
        customer
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        let joined = tech.expect("participant_joined").await;
        assert_eq!(joined["participant"]["role"], "customer", "{joined}");

        customer
            .fill("[data-testid=chat-input]", "My printer says offline")
            .await;
        customer.click("[data-testid=chat-send]").await;
        let chat = tech.expect("chat").await;
        assert_eq!(chat["text"], "My printer says offline");
        tech.chat("Let me have a look").await;
        customer
            .wait_text("[data-testid=chat-log]", "Let me have a look")
            .await;
        customer.shot("customer-session").await;
        customer
            .wait_js("document.querySelector('[data-testid=share]').offsetParent !== null")
            .await;

        // The screen share: JPEG frames on channel 1. Headless Chromium cannot capture a desktop
        // ("Could not start video source"), so the picker's answer is a painted canvas stream;
        // everything after it (video, canvas, JPEG, WebSocket) is the page's own.
        customer
            .client
            .execute(
                "navigator.mediaDevices.getDisplayMedia = async () => {
               const c = document.createElement('canvas');
               c.width = 320; c.height = 200;
               const g = c.getContext('2d');
               setInterval(() => { g.fillStyle = '#c00'; g.fillRect(0, 0, 320, 200); }, 100);
               return c.captureStream(10);
             };",
                vec![],
            )
            .await
            .expect("script runs");
        customer.click("[data-testid=share]").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let frame = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tech.next_within(left).await {
                Some(Event::Binary(data)) => break data,
                Some(Event::Closed(code)) => panic!("technician closed: {code:?}"),
                Some(Event::Json(_)) if !left.is_zero() => continue,
                _ => panic!("no screen frame from the customer's browser"),
            }
        };
        assert_eq!(frame[0], 1, "screen channel");
        assert_eq!(&frame[1..3], &[0xFF, 0xD8], "a JPEG image");
        // While sharing, the page offers to stop, not to share again.
        customer
            .wait_js("document.querySelector('[data-testid=share]').offsetParent === null")
            .await;
        customer.shot("customer-sharing").await;
        customer.close().await;
    })
    .await;
}
