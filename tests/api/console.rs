//! The web console as HTTP sees it (fast, no browser): the pages and assets the broker serves,
//! and the API additions the pages rely on.

use serde_json::json;

use crate::helpers::*;

async fn raw(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("request sent")
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[actix_web::test]
async fn the_console_pages_are_served_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    for path in ["/", "/customer/some-key", "/set-password?token=x"] {
        let res = raw(&app, path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            header(&res, "content-type").starts_with("text/html"),
            "{path}"
        );
        let csp = header(&res, "content-security-policy").to_string();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer", "{path}");
        let body = res.text().await.unwrap();
        assert!(
            body.contains(r#"<script type="module" src="/assets/app.js">"#),
            "{path}"
        );
        assert!(body.contains("<noscript>"), "{path}");
    }
}

#[actix_web::test]
async fn assets_have_their_types_and_unknown_ones_are_404() {
    let app = TestApp::spawn().await;
    for (path, kind, needle) in [
        ("/assets/app.js", "text/javascript", "import"),
        ("/assets/i18n.js", "text/javascript", "Sitzungen"),
        ("/assets/style.css", "text/css", "{"),
        ("/assets/favicon.svg", "image/svg+xml", "<svg"),
        ("/assets/platform.js", "text/javascript", "accountsPage"),
    ] {
        let res = raw(&app, path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(header(&res, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(res.text().await.unwrap().contains(needle), "{path}");
    }
    // Revalidation: the same bytes answer 304 with no body.
    let first = raw(&app, "/assets/app.js").await;
    let etag = header(&first, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let again = app
        .http
        .get(format!("{}/assets/app.js", app.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.text().await.unwrap().is_empty());
    let other = app
        .http
        .get(format!("{}/assets/ui.js", app.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another file's tag does not match");
    for path in [
        "/assets/nope.js",
        "/assets/..%2FCargo.toml",
        "/assets/index.html",
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[actix_web::test]
async fn a_browser_opening_a_bad_link_gets_the_page_with_the_status_that_says_why() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let _owner = app.ws_technician(&t.admin, &sid).await;

    let unknown = raw(&app, "/join/sbi_not_a_real_token").await;
    assert_eq!(unknown.status(), 404);
    assert!(header(&unknown, "content-type").starts_with("text/html"));

    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    // The JSON form names the inviter, for the page to show.
    let (status, info) = app.call("GET", &format!("/join/{join}"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(info["inviter_name"], "Ada Acme");
    assert!(info["expires_at"].is_string());
    let _guest = app.ws_guest(&join).await.unwrap();
    let used = raw(&app, &format!("/join/{join}")).await;
    assert_eq!(used.status(), 410);
    assert!(header(&used, "content-type").starts_with("text/html"));
    assert_eq!(header(&used, "cache-control"), "no-store");
}

#[actix_web::test]
async fn a_session_names_the_customer_page_and_its_socket() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, body) = app
        .post("/sessions", &t.admin, json!({"subject": "Printer offline"}))
        .await;
    assert_eq!(status, 201);
    let key = body["customer_key"].as_str().unwrap();
    assert_eq!(body["customer_url"], format!("{}/customer/{key}", app.base));
    let ws_url = body["customer_ws_url"].as_str().unwrap();
    assert_eq!(ws_url, format!("{}/ws/customer/{key}", app.ws_base));
    let customer = Ws::connect(ws_url, None).await.expect("the socket works");
    assert_eq!(customer.welcome["role"], "customer");
    let page = raw(&app, &format!("/customer/{key}")).await;
    assert_eq!(page.status(), 200);
}

#[actix_web::test]
async fn ended_sessions_are_listed_apart_from_live_ones() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (live, _) = app.session(&t.admin).await;
    let (done, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &done).await;
    owner.send_json(json!({"type": "end_session"})).await;
    owner.expect("session_ended").await;

    let ids = |body: &serde_json::Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        eventually(|| async {
            ids(&app.get("/sessions?state=ended", &t.admin).await.1) == vec![done.clone()]
        })
        .await
    );
    let (status, ended) = app.get("/sessions?state=ended", &t.admin).await;
    assert_eq!(status, 200);
    assert_eq!(ended[0]["state"], "ended");
    assert_eq!(
        ids(&app.get("/sessions", &t.admin).await.1),
        vec![live.clone()]
    );
    assert_eq!(
        ids(&app.get("/sessions?state=open", &t.admin).await.1),
        vec![live]
    );
    // Another account sees none of them.
    assert!(ids(&app.get("/sessions?state=ended", &other.admin).await.1).is_empty());
    let (status, body) = app.get("/sessions?state=closed", &t.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
}

#[actix_web::test]
async fn a_technician_reads_the_policies_it_invites_with_but_cannot_change_them() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    app.policy(&t, "Chat", &["chat"]).await;
    let (_, tech) = app.user(&t, "tech", &["sessions"]).await;
    let (_, clerk) = app.user(&t, "clerk", &["devices"]).await;
    let path = format!("/accounts/{}/policies", t.id);
    let (status, list) = app.get(&path, &tech).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "Chat");
    let (status, body) = app
        .post(
            &path,
            &tech,
            json!({"name": "Mine", "permissions": ["chat"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );
    assert_eq!(app.get(&path, &clerk).await.0, 403);
    assert_eq!(
        app.get(&path, &t.admin).await.1.as_array().unwrap().len(),
        1
    );
}

#[actix_web::test]
async fn a_user_read_by_an_admin_carries_rights_and_login_options() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (id, token) = app.user(&t, "tess", &["sessions"]).await;
    let (status, user) = app.get(&format!("/users/{id}"), &t.admin).await;
    assert_eq!(status, 200);
    assert_eq!(user["username"], "tess");
    assert_eq!(user["rights"]["areas"], json!(["sessions"]));
    assert_eq!(user["two_factor"], "off");
    // The user reads itself; another account's admin gets 404.
    assert_eq!(app.get(&format!("/users/{id}"), &token).await.0, 200);
    assert_eq!(app.get(&format!("/users/{id}"), &other.admin).await.0, 404);
    assert!(user.get("password_hash").is_none());
}
