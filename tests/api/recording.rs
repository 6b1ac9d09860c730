//! Session recordings: an account that records gets screen frames, input, file offers, chat
//! and who joined (a guest by name and verified address) into a file everyone was told of,
//! readable by who may read the report and nobody else.

use serde_json::{Value, json};
use support_broker::recording;

use crate::helpers::*;

#[actix_web::test]
async fn a_recorded_session_keeps_screen_input_files_chat_and_who_did_what() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (status, account) = app
        .call(
            "PATCH",
            &format!("/accounts/{}", t.id),
            Some(&t.admin),
            Some(json!({"record_sessions": true})),
        )
        .await;
    assert_eq!(
        (status, account["record_sessions"].clone()),
        (200, json!(true))
    );
    let policy = app.policy(&t, "All", &["chat", "view", "files"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut tech = app.ws_technician(&t.admin, &sid).await;
    assert_eq!(tech.welcome["recording"], true, "everyone is told");
    let mut customer = app.ws_customer(&key).await;
    assert_eq!(customer.welcome["recording"], true);

    // A guest bound to its address.
    let (_, inv) = app
        .post(
            &format!("/sessions/{sid}/invitations"),
            &t.admin,
            json!({"policy_id": policy, "guest_name": "Gina", "comment": "", "email": "gina@vendor.example"}),
        )
        .await;
    let token = inv["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, sent) = app
        .call("POST", &format!("/join/{token}/code"), None, None)
        .await;
    let code = code_in(
        &outbox_mails(&app)
            .into_iter()
            .rev()
            .find(|m| m.contains("code to join"))
            .unwrap(),
    );
    let (_, verified) = app
        .call(
            "POST",
            &format!("/join/{token}/verify"),
            None,
            Some(json!({"challenge_id": sent["challenge_id"], "code": code})),
        )
        .await;
    let mut guest = app
        .ws_guest(&format!(
            "{token}?ticket={}",
            verified["ticket"].as_str().unwrap()
        ))
        .await
        .unwrap();
    assert_eq!(guest.welcome["recording"], true);

    customer
        .send_binary([vec![1u8], b"<svg>screen</svg>".to_vec()].concat())
        .await;
    tech.expect_binary().await;
    tech.send_binary(vec![2, 1, 0, 10, 0, 20]).await;
    customer.expect_binary().await;
    let transfer = uuid::Uuid::new_v4();
    tech.send_json(
        json!({"type": "file_offer", "transfer_id": transfer, "name": "fix.ps1", "size": 3}),
    )
    .await;
    customer.expect("file_offer").await;
    guest.chat("Hello from Gina").await;
    customer.expect("chat").await;
    tech.send_json(json!({"type": "end_session"})).await;
    tech.expect_close().await;

    // The recording: readable by the account, in order, with everything above.
    let read = || async {
        let res = app
            .http
            .get(app.url(&format!("/sessions/{sid}/recording")))
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
    };
    let complete = eventually(|| async {
        let (status, bytes) = read().await;
        status == 200
            && recording::read(&bytes).is_some_and(|r| {
                r.iter()
                    .any(|(k, _, p)| *k == 5 && p.windows(5).any(|w| w == b"ended"))
            })
    })
    .await;
    assert!(complete, "the recording ends with the session");
    let (_, bytes) = read().await;
    let records = recording::read(&bytes).expect("a well-formed recording");
    let kinds: Vec<u8> = records.iter().map(|(k, _, _)| *k).collect();
    for kind in [1, 2, 3, 4, 5] {
        assert!(kinds.contains(&kind), "kind {kind} missing: {kinds:?}");
    }
    let times: Vec<u64> = records.iter().map(|(_, at, _)| *at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    let screen = records.iter().find(|(k, _, _)| *k == 1).unwrap();
    assert_eq!(screen.2, b"<svg>screen</svg>");
    let input = records.iter().find(|(k, _, _)| *k == 2).unwrap();
    assert_eq!(input.2, [1, 0, 10, 0, 20]);
    let json_of = |kind: u8| -> Vec<Value> {
        records
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, p)| serde_json::from_slice(p).unwrap())
            .collect()
    };
    assert_eq!(json_of(3)[0]["name"], "fix.ps1");
    assert_eq!(json_of(4)[0]["text"], "Hello from Gina");
    let joined_guest = json_of(5)
        .into_iter()
        .find(|e| e["event"] == "joined" && e["role"] == "guest")
        .unwrap();
    assert_eq!(joined_guest["name"], "Gina");
    assert_eq!(joined_guest["verified_email"], "gina@vendor.example");

    // Nobody else reads it; an unrecorded session has none.
    let (status, _) = app
        .get(&format!("/sessions/{sid}/recording"), &other.admin)
        .await;
    assert_eq!(status, 404);
    app.call(
        "PATCH",
        &format!("/accounts/{}", t.id),
        Some(&t.admin),
        Some(json!({"record_sessions": false})),
    )
    .await;
    let (plain, _) = app.session(&t.admin).await;
    let ws = app.ws_technician(&t.admin, &plain).await;
    assert_eq!(ws.welcome["recording"], false);
    let (status, body) = app
        .get(&format!("/sessions/{plain}/recording"), &t.admin)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("recording_not_found"))
    );
}
