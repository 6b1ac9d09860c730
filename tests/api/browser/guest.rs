//! A guest joins from the invitation URL, sees the screen, chats with the technician, and sees
//! its inviter leave; the technician reads the report; the used link shows as used.

use super::{Browser, Driver, within_deadline};
use crate::helpers::*;

/// A 16×16 red PNG: what a customer's screen frame carries.
const RED_PNG: [u8; 79] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 16, 0, 0, 0, 16, 8, 2,
    0, 0, 0, 144, 145, 104, 54, 0, 0, 0, 22, 73, 68, 65, 84, 120, 156, 99, 56, 33, 39, 71, 18, 98,
    24, 213, 48, 170, 97, 248, 106, 0, 0, 228, 98, 4, 16, 235, 71, 200, 198, 0, 0, 0, 0, 73, 69,
    78, 68, 174, 66, 96, 130,
];

#[actix_web::test]
async fn a_guest_joins_from_the_link_chats_and_sees_its_inviter_leave() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let policy = app.policy(&t, "Watch and chat", &["chat", "view"]).await;
        let driver = Driver::start().await;
        let tech = driver.browser("en-US").await;
        let guest = driver.browser("de-DE").await;

        // The technician signs in, opens a session and invites a guest.
        tech.login_console(&app.base, "acme-admin", PASSWORD).await;
        tech.fill(
            "[data-testid=new-session] input[name=subject]",
            "Printer offline",
        )
        .await;
        tech.click("[data-testid=new-session] button[type=submit]")
            .await;
        tech.find("[data-testid=live-status][data-connected=true]")
            .await;
        tech.fill(
            "[data-testid=invite-form] input[name=guest_name]",
            "Gina Guest",
        )
        .await;
        tech.fill(
            "[data-testid=invite-form] input[name=comment]",
            "printer vendor",
        )
        .await;
        // No policy is chosen silently: without an account default the technician picks one.
        tech.wait_js(
            "document.querySelector('[data-testid=invite-form] select[name=policy_id]').value === ''",
        )
        .await;
        tech.choose("[data-testid=invite-form] select[name=policy_id]", &policy)
            .await;
        tech.click("[data-testid=invite-form] button[type=submit]")
            .await;
        let url = tech
            .find("[data-testid=invitation-url]")
            .await
            .prop("value")
            .await
            .unwrap()
            .expect("the one-time URL");
        assert!(url.starts_with(&format!("{}/join/", app.base)), "{url}");
        tech.shot("technician-session-invite").await;

        // The customer side (a real WebSocket peer) is in the session too.
        let customer_link = tech
            .find("[data-testid=customer-link]")
            .await
            .prop("value")
            .await
            .unwrap()
            .expect("customer link");
        let key = customer_link.rsplit('/').next().unwrap().to_string();
        let mut customer = app.ws_customer(&key).await;
        tech.wait_text("[data-testid=participants]", "Customer")
            .await;

        // The guest's browser speaks German: the invitation page shows who invited it to what.
        guest.goto(&url).await;
        guest
            .wait_text(
                "[data-testid=invitation] h1",
                "Sie sind zu einer Support-Sitzung eingeladen",
            )
            .await;
        guest
            .wait_text("[data-testid=subject]", "Printer offline")
            .await;
        guest.wait_text("[data-testid=inviter]", "Ada Acme").await;
        guest
            .wait_text("[data-testid=permissions]", "Bildschirm ansehen")
            .await;
        guest.shot("guest-invitation").await;
        // Looking did not use the link up.
        let (status, _) = app
            .call("GET", &url.replace(&app.base, ""), None, None)
            .await;
        assert_eq!(status, 200);

        guest.click("[data-testid=join]").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        tech.wait_text("[data-testid=participants]", "Gina Guest")
            .await;
        // The link is used up: its box says so and offers no revoke any more.
        tech.wait_text("[data-testid=invitation-state]", "redeemed")
            .await;
        tech.wait_js("document.querySelector('[data-testid=revoke-invitation]') === null")
            .await;

        // The customer's screen reaches the guest, whose policy allows `view`.
        customer.expect("participant_joined").await;
        let mut frame = vec![1u8];
        frame.extend_from_slice(&RED_PNG);
        customer.send_binary(frame).await;
        guest
            .wait_js("document.querySelector('[data-testid=screen]').naturalWidth === 16")
            .await;

        // Chat both ways, in one transcript.
        guest
            .fill("[data-testid=chat-input]", "Hallo, hier ist Gina")
            .await;
        guest.click("[data-testid=chat-send]").await;
        tech.wait_text("[data-testid=chat-log]", "Hallo, hier ist Gina")
            .await;
        tech.fill("[data-testid=chat-input]", "Welcome Gina").await;
        tech.click("[data-testid=chat-send]").await;
        guest
            .wait_text("[data-testid=chat-log]", "Welcome Gina")
            .await;
        customer.expect("chat").await;
        guest.shot("guest-session").await;
        tech.shot("technician-session-chat").await;

        // A second technician joins; the owner hands the session over in the participant list
        // (a guest is never offered), then takes it back when that one leaves.
        let (_, tom_token) = app.user(&t, "tom", &["sessions"]).await;
        let (_, live) = app.get("/sessions", &t.admin).await;
        let session = live[0]["id"].as_str().unwrap().to_string();
        let mut tom = app.ws_technician(&tom_token, &session).await;
        let tom_id = tom.id();
        let tom_row = format!("[data-testid=participants] li[data-participant='{tom_id}']");
        tech.wait_text(&tom_row, "Make owner").await;
        let guest_row = tech
            .wait_text(
                "[data-testid=participants] li[data-role=guest]",
                "Gina Guest",
            )
            .await;
        assert!(!guest_row.contains("Make owner"), "{guest_row}");
        tech.click(&format!("{tom_row} button")).await;
        loop {
            let event = tom.expect("owner_changed").await;
            if event["owner_id"] == tom_id.as_str() {
                break;
            }
        }
        tech.wait_text(&tom_row, "Owner").await;
        tech.shot("technician-ownership-transferred").await;
        // Tom invites someone too; his leaving revokes that link.
        let (_, rita_link) = app.invite(&tom_token, &session, &policy, "Rita").await;
        tom.send_json(serde_json::json!({"type": "leave"})).await;
        tech.find("[data-testid=end-session]").await;

        // The inviter leaves: the guest is told so (close 4001), in its language.
        tech.click("[data-testid=leave]").await;
        guest.find("[data-testid=outcome][data-code='4001']").await;
        guest
            .wait_text("[data-testid=outcome]", "hat die Sitzung verlassen")
            .await;
        // What to do next, and the conversation, stay on the page; the frozen screen does not.
        guest
            .wait_text("[data-testid=what-next]", "neuen Link")
            .await;
        guest
            .wait_text("[data-testid=chat-log]", "Welcome Gina")
            .await;
        guest
            .wait_js("document.querySelector('[data-testid=screen]') === null")
            .await;
        guest.shot("guest-inviter-left").await;

        // The session ended with its last technician; its report holds the conversation.
        tech.click("[data-testid=report-link]").await;
        tech.wait_text("[data-testid=report]", "Welcome Gina").await;
        let report = tech.wait_text("[data-testid=report]", "Gina Guest").await;
        assert!(report.contains("printer vendor"), "{report}");
        // Reasons in words: the guest went because its inviter did; no technician was left.
        assert!(report.contains("inviter left"), "{report}");
        assert!(report.contains("no technician left"), "{report}");
        tech.shot("session-report").await;

        // The link worked once.
        guest.goto(&url).await;
        guest
            .find("[data-testid=join-refused][data-code=invitation_used]")
            .await;
        guest
            .wait_text("[data-testid=join-refused]", "bereits verwendet")
            .await;
        guest.shot("guest-link-used").await;
        guest.goto(&format!("{}/join/{rita_link}", app.base)).await;
        guest
            .find("[data-testid=join-refused][data-code=invitation_revoked]")
            .await;
        guest
            .wait_text("[data-testid=join-refused]", "widerrufen")
            .await;
        guest.shot("guest-link-revoked").await;

        tech.close().await;
        guest.close().await;
    })
    .await;
}

#[actix_web::test]
async fn an_expired_link_says_so_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn_with(|s| s.sessions.invitation_ttl_secs = 1).await;
        let t = app.tenant("Acme").await;
        let policy = app.policy(&t, "Chat", &["chat"]).await;
        let (session, _) = app.session(&t.admin).await;
        let _owner = app.ws_technician(&t.admin, &session).await;
        let (_, link) = app.invite(&t.admin, &session, &policy, "Gina").await;
        assert!(
            eventually(|| async {
                app.call("GET", &format!("/join/{link}"), None, None)
                    .await
                    .0
                    == 410
            })
            .await
        );
        let driver = Driver::start().await;
        let guest = driver.browser("en-US").await;
        guest.goto(&format!("{}/join/{link}", app.base)).await;
        guest
            .find("[data-testid=join-refused][data-code=invitation_expired]")
            .await;
        guest
            .wait_text("[data-testid=join-refused]", "has expired")
            .await;
        assert!(
            guest
                .client
                .find(fantoccini::Locator::Css("[data-testid=join]"))
                .await
                .is_err(),
            "no Join button for an expired link"
        );
        guest.shot("guest-link-expired").await;
        guest.close().await;
    })
    .await;
}

#[actix_web::test]
async fn a_guest_bound_to_an_email_joins_only_with_the_code_mailed_to_it() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let policy = app.policy(&t, "Chat", &["chat", "view"]).await;
        let (sid, _) = app.session(&t.admin).await;
        let mut owner = app.ws_technician(&t.admin, &sid).await;
        let (status, inv) = app
            .post(
                &format!("/sessions/{sid}/invitations"),
                &t.admin,
                serde_json::json!({"policy_id": policy, "guest_name": "Gina", "comment": "", "email": "gina@vendor.example"}),
            )
            .await;
        assert_eq!(status, 201);
        let driver = Driver::start().await;
        let guest = driver.browser("en-US").await;
        guest.goto(inv["url"].as_str().unwrap()).await;
        guest
            .wait_text("[data-testid=email-step]", "g•••@vendor.example")
            .await;
        // No Join before the code.
        guest
            .wait_js("document.querySelector('[data-testid=join]').offsetParent === null")
            .await;
        guest.shot("guest-email-step").await;
        guest.click("[data-testid=send-code]").await;
        guest
            .wait_text("[data-testid=email-message]", "on its way")
            .await;
        let mail = outbox_mails(&app)
            .into_iter()
            .rev()
            .find(|m| m.contains("To: gina@vendor.example") && m.contains("code to join"))
            .expect("the code mail");
        let code = code_in(&mail);
        guest.fill("[data-testid=code-form] input[name=code]", "00000").await;
        guest
            .click("[data-testid=code-form] button[type=submit]")
            .await;
        guest
            .wait_text("[data-testid=email-message]", "wrong code")
            .await;
        guest.fill("[data-testid=code-form] input[name=code]", &code).await;
        guest
            .click("[data-testid=code-form] button[type=submit]")
            .await;
        guest
            .wait_text("[data-testid=email-step]", "confirmed")
            .await;
        guest.click("[data-testid=join]").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        owner.expect("participant_joined").await;
        guest.shot("guest-email-verified-joined").await;
        let report = app.report(&t.admin, &sid).await;
        assert_eq!(report["invitations"][0]["verified_email"], "gina@vendor.example");
        guest.close().await;
    })
    .await;
}

#[actix_web::test]
async fn the_customer_lets_one_guest_in_and_refuses_another_in_the_browser() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        // A guest asks: it waits, the customer sees who, from whom, with what.
        let Lobby {
            t,
            sid,
            policy,
            mut owner,
            driver,
            customer,
            guest,
        } = Lobby::waiting(&app, &app.base, &["chat", "view"]).await;
        let card = customer
            .wait_text("[data-testid=admission-request]", "Gina Guest")
            .await;
        assert!(
            card.contains("Ada Acme") && card.contains("Watch and chat"),
            "{card}"
        );
        customer.shot("customer-admission-request-de").await;
        guest.shot("guest-waiting-for-admission").await;
        customer.click("[data-testid=admit]").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        customer
            .wait_text("[data-testid=participants]", "Gina Guest")
            .await;
        owner.expect("participant_joined").await;

        // Another one is refused: told so, with what to do, and it saw nothing of the session.
        let (_, join) = app.invite(&t.admin, &sid, &policy, "Mallory").await;
        let intruder = driver.browser("en-US").await;
        intruder.goto(&format!("{}/join/{join}", app.base)).await;
        intruder.click("[data-testid=join]").await;
        customer
            .wait_text("[data-testid=admission-request]", "Mallory")
            .await;
        customer.click("[data-testid=refuse]").await;
        intruder
            .find("[data-testid=outcome][data-code='4005']")
            .await;
        intruder
            .wait_text("[data-testid=outcome]", "did not let you in")
            .await;
        intruder.shot("guest-refused").await;
        let report = app.report(&t.admin, &sid).await;
        let decisions: Vec<&str> = report["admissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["decision"].as_str().unwrap())
            .collect();
        assert_eq!(decisions, ["admitted", "refused"]);
        customer.close().await;
        guest.close().await;
        intruder.close().await;
    })
    .await;
}

/// A session whose account lets the customer admit each guest: its owner over the API, the
/// customer's page (German) connected, and Gina Guest's page (English), opened through `via`
/// (the broker, or a proxy in front of it), waiting in the lobby.
struct Lobby {
    t: Tenant,
    sid: String,
    policy: String,
    owner: Ws,
    driver: Driver,
    customer: Browser,
    guest: Browser,
}

impl Lobby {
    async fn waiting(app: &TestApp, via: &str, permissions: &[&str]) -> Self {
        let t = app.tenant("Acme").await;
        app.set_account(&t, serde_json::json!({"guest_admission": "always"}))
            .await;
        let policy = app.policy(&t, "Watch and chat", permissions).await;
        let (sid, key) = app.session(&t.admin).await;
        let owner = app.ws_technician(&t.admin, &sid).await;
        let driver = Driver::start().await;
        let customer = driver.browser("de-DE").await;
        let guest = driver.browser("en-US").await;
        customer.goto(&format!("{}/customer/{key}", app.base)).await;
        customer
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina Guest").await;
        guest.goto(&format!("{via}/join/{join}")).await;
        guest.click("[data-testid=join]").await;
        guest
            .wait_text("[data-testid=live-status]", "Waiting for the customer")
            .await;
        Self {
            t,
            sid,
            policy,
            owner,
            driver,
            customer,
            guest,
        }
    }
}

/// A TCP proxy in front of the broker whose connections can all be cut at once, as a network
/// that drops would: no Close frame, the browser sees 1006 and the broker an end of stream.
struct Cutter {
    base: String,
    cuts: tokio::sync::watch::Sender<u64>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Cutter {
    async fn start(backend: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (cuts, watching) = tokio::sync::watch::channel(0u64);
        let backend = backend.trim_start_matches("http://").to_string();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refusing = down.clone();
        actix_web::rt::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if refusing.load(std::sync::atomic::Ordering::SeqCst) {
                    // The network is down: the connection goes at once.
                    continue;
                }
                let mut cut = watching.clone();
                cut.borrow_and_update();
                let backend = backend.clone();
                actix_web::rt::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Both streams are dropped: each side sees its connection go.
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cutter { base, cuts, down }
    }

    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Cuts every connection and lets none through until `restore`.
    fn go_down(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[actix_web::test]
async fn a_guest_whose_network_drops_is_back_in_its_place_by_itself() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        let t = app.tenant("Acme").await;
        let policy = app.policy(&t, "Chat", &["chat"]).await;
        let cutter = Cutter::start(&app.base).await;
        let driver = Driver::start().await;
        let tech = driver.browser("en-US").await;
        let guest = driver.browser("de-DE").await;
        guest.client.set_window_size(360, 800).await.unwrap();

        tech.login_console(&app.base, "acme-admin", PASSWORD).await;
        let url = tech
            .open_session_and_invite("Printer offline", "Gina Guest", &policy)
            .await;
        // The guest's network is the one that drops: it reaches the broker through the proxy.
        let url = url.replacen(&app.base, &cutter.base, 1);
        guest.goto(&url).await;
        guest.click("[data-testid=join]").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        tech.wait_text("[data-testid=participants]", "Gina Guest")
            .await;
        guest
            .fill("[data-testid=chat-input]", "vor dem Abbruch")
            .await;
        guest.click("[data-testid=chat-send]").await;
        tech.wait_text("[data-testid=chat-log]", "vor dem Abbruch")
            .await;

        // The connection drops without a word; the page comes back by itself, in its place
        // (the used link would not let it in again as someone new).
        cutter.cut();
        guest.wait_text(".messages", "Wieder verbunden.").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        guest
            .fill("[data-testid=chat-input]", "nach dem Abbruch")
            .await;
        guest.click("[data-testid=chat-send]").await;
        tech.wait_text("[data-testid=chat-log]", "nach dem Abbruch")
            .await;
        // One Gina, not away, and the guest page kept its transcript.
        let ginas = tech
            .wait_js(
                "[...document.querySelectorAll('[data-testid=participants] li')]
                    .filter(li => li.textContent.includes('Gina Guest') && !li.classList.contains('away')).length === 1",
            )
            .await;
        assert_eq!(ginas, true);
        guest
            .wait_text("[data-testid=chat-log]", "vor dem Abbruch")
            .await;
        tech.shot("technician-guest-back-after-drop").await;
        guest.shot("guest-back-after-drop-phone").await;
        tech.close().await;
        guest.close().await;
    })
    .await;
}

#[actix_web::test]
async fn a_guest_waiting_in_the_lobby_whose_network_drops_is_back_there_by_itself() {
    within_deadline(async {
        let app = TestApp::spawn().await;
        // The guest (on a phone) reaches the broker through the proxy and waits in the lobby.
        let cutter = Cutter::start(&app.base).await;
        let Lobby {
            t,
            sid,
            mut owner,
            driver: _driver,
            customer,
            guest,
            ..
        } = Lobby::waiting(&app, &cutter.base, &["chat"]).await;
        guest.client.set_window_size(360, 800).await.unwrap();
        customer.client.set_window_size(1366, 900).await.unwrap();
        customer
            .wait_text("[data-testid=admission-request]", "Gina Guest")
            .await;
        // Stored before the cut (the key that brings it back is checked against the store).
        app.report(&t.admin, &sid).await;

        // Its network drops: the page tries again by itself and is back in its place in the
        // lobby; the customer's request card stayed, and admitting lets the guest in.
        cutter.go_down();
        guest
            .find("[data-testid=live-status][data-reconnecting=true]")
            .await;
        // While it is down, the customer sees that it is coming back, and cannot let it in yet.
        customer
            .wait_text(
                "[data-testid=guest-reconnecting]",
                "Verbindung ist abgerissen",
            )
            .await;
        customer
            .find("[data-testid=admission-request] [data-testid=admit][disabled]")
            .await;
        customer
            .shot("customer-request-while-guest-reconnects")
            .await;
        cutter.restore();
        guest
            .find("[data-testid=live-status][data-waiting=true]:not([data-reconnecting])")
            .await;
        guest.shot("guest-back-in-the-lobby-phone").await;
        customer
            .find("[data-testid=admission-request] [data-testid=admit]:not([disabled])")
            .await;
        customer.click("[data-testid=admit]").await;
        guest
            .find("[data-testid=live-status][data-connected=true]")
            .await;
        owner.expect("participant_joined").await;
        customer
            .wait_text("[data-testid=participants]", "Gina Guest")
            .await;
        let report = app.report(&t.admin, &sid).await;
        let decisions: Vec<&str> = report["admissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["decision"].as_str().unwrap())
            .collect();
        assert_eq!(decisions, ["admitted"], "one request, admitted");
        guest.shot("guest-admitted-after-drop-phone").await;
        customer.close().await;
        guest.close().await;
    })
    .await;
}
