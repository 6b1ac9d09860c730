//! The HTTP side: operators' endpoints, login, accounts, policies, error shapes.

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

#[actix_web::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = TestApp::spawn().await;
    let (status, body) = app.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, _) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    let t = app.tenant("Acme").await;
    let policy = app.policy(&t, "Chat", &["chat"]).await;
    let (sid, key) = app.session(&t.admin).await;
    let mut ws = app.ws_technician(&t.admin, &sid).await;
    let _customer = app.ws_customer(&key).await;
    let (_, join) = app.invite(&t.admin, &sid, &policy, "Gina").await;
    let _guest = app.ws_guest(&join).await.unwrap();
    ws.chat("hello").await;
    ws.expect("chat").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        // One recorder per process: tests running beside this one count too, so names only.
        "broker_live_sessions",
        "broker_participants{role=\"technician\"}",
        "broker_participants{role=\"guest\"}",
        "broker_participants{role=\"customer\"}",
        "broker_frames_relayed_total{kind=\"chat\"}",
        "broker_frames_dropped_total",
        "broker_invitations_total{outcome=\"created\"}",
        "broker_invitations_total{outcome=\"redeemed\"}",
        "http_request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
    let page = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
    let (status, doc) = app.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/{id}/invitations",
        "/join/{token}",
        "/api/v1/accounts/{aid}/policies",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[actix_web::test]
async fn login_failures_look_alike_and_logout_ends_the_token() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (s1, wrong) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "acme-admin", "password": "wrong password"})),
        )
        .await;
    let (s2, unknown) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "wrong password"})),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
    let (status, me) = app.get("/me", &t.admin).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["username"], "acme-admin");
    assert!(me["user"]["last_login_at"].is_string());
    assert_eq!(me["platform"], json!([]));
    let (status, _) = app.call("POST", "/auth/logout", Some(&t.admin), None).await;
    assert_eq!(status, 204);
    let (status, body) = app.get("/me", &t.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app.call("GET", "/me", None, None).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn login_is_rate_limited_per_username() {
    let app = TestApp::spawn_with(|s| s.auth.login_attempts_per_minute = 3).await;
    let mut last = 0;
    for _ in 0..4 {
        let res = app
            .http
            .post(app.url("/auth/login"))
            .json(&json!({"username": "victim", "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        last = res.status().as_u16();
        if last == 429 {
            assert!(res.headers().contains_key("retry-after"));
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_attempts");
        }
    }
    assert_eq!(last, 429);
}

#[actix_web::test]
async fn the_platform_admin_creates_accounts_with_a_service_user() {
    let app = TestApp::spawn().await;
    let (status, me) = app.get("/me", &app.admin).await;
    assert_eq!(status, 200);
    assert_eq!(
        me["platform"],
        json!(["platform_admin", "platform_support"])
    );
    let t = app.tenant("Acme").await;
    let (status, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"service") && kinds.contains(&"user"));
    // Only the platform admin creates accounts.
    let body = json!({"name": "X", "kind": "customer", "admin": {"username": "x", "first_name": "X", "last_name": "Y", "email": "x@example.com"}});
    let (status, err) = app.post("/accounts", &t.admin, body).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("platform_only"))
    );
}

#[actix_web::test]
async fn usernames_and_emails_are_taken_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let user = |name: &str, email: &str| json!({"username": name, "first_name": "A", "last_name": "B", "email": email, "password": PASSWORD});
    let path = format!("/accounts/{}/users", t.id);
    let (status, _) = app
        .post(&path, &t.admin, user("jane", "jane@example.com"))
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post(&path, &t.admin, user("JANE", "other@example.com"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );
    let (status, body) = app
        .post(&path, &t.admin, user("june", "Jane@Example.com"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("email_taken"))
    );
    let (status, body) = app
        .post(&path, &t.admin, user("bad name", "b@example.com"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_username"))
    );
}

#[actix_web::test]
async fn policies_are_managed_per_account() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let list = format!("/accounts/{}/policies", t.id);
    let (status, created) = app
        .post(
            &list,
            &t.admin,
            json!({"name": "View only", "description": "look", "permissions": ["view", "chat"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["permissions"], json!(["chat", "view"]));
    let id = created["id"].as_str().unwrap();

    let (status, body) = app
        .post(
            &list,
            &t.admin,
            json!({"name": "View only", "permissions": []}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("policy_name_taken"))
    );
    let (status, body) = app
        .post(
            &list,
            &t.admin,
            json!({"name": "Bad", "permissions": ["root"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_permissions"))
    );
    let (status, body) = app
        .post(&list, &t.admin, json!({"name": "", "permissions": []}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_name"))
    );
    let res = app
        .http
        .post(app.url(&list))
        .bearer_auth(&t.admin)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let (status, patched) = app
        .call(
            "PATCH",
            &format!("/policies/{id}"),
            Some(&t.admin),
            Some(json!({"permissions": ["chat", "control"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["permissions"], json!(["chat", "control"]));
    assert_eq!(patched["name"], "View only");

    // Another account sees nothing of it.
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/policies/{id}"),
            Some(&other.admin),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            "DELETE",
            &format!("/policies/{id}"),
            Some(&other.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&list, &other.admin).await;
    assert_eq!(status, 404);

    // Without the object right a policies-area user may look but not write.
    let (_, viewer) = app.user(&t, "viewer", &["policies"]).await;
    let rights = json!({"areas": ["policies"], "objects": {"create": false, "edit": false, "delete": false}});
    let (_, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    let viewer_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{viewer_id}/rights"),
            Some(&t.admin),
            Some(rights),
        )
        .await;
    assert_eq!(status, 200);
    let (status, listed) = app.get(&list, &viewer).await;
    assert_eq!((status, listed.as_array().unwrap().len()), (200, 1));
    let (status, body) = app
        .call("DELETE", &format!("/policies/{id}"), Some(&viewer), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );

    let (status, _) = app
        .call("DELETE", &format!("/policies/{id}"), Some(&t.admin), None)
        .await;
    assert_eq!(status, 204);
    let (_, listed) = app.get(&list, &t.admin).await;
    assert_eq!(listed, json!([]));
}

#[actix_web::test]
async fn unknown_and_malformed_ids_answer_404_and_400() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, body) = app
        .get("/sessions/0195f3a0-0000-7000-8000-000000000000", &t.admin)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let (status, body) = app.get("/sessions/not-a-uuid", &t.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_path"))
    );
    let (status, body) = app.get("/no/such/thing", &t.admin).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app
        .post(
            "/sessions",
            &t.admin,
            json!({"subject": "x", "device_id": "0195f3a0-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("device_not_found"))
    );
    let (status, body) = app
        .post("/sessions", &t.admin, json!({"subject": ""}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_subject"))
    );
}

#[actix_web::test]
async fn creating_a_session_hands_out_the_customer_key_without_caching() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let res = app
        .http
        .post(app.url("/sessions"))
        .bearer_auth(&t.admin)
        .json(&json!({"subject": "VPN"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["owner_user_id"], t.admin_id.as_str());
    let key = body["customer_key"].as_str().unwrap();
    assert!(body["customer_url"].as_str().unwrap().ends_with(key));
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.created")
    );
}

#[actix_web::test]
async fn with_a_certificate_configured_the_broker_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = dir.path().join("ca.pem");
    let ext = dir.path().join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let steps: [Vec<String>; 3] = [
        // A throwaway CA ...
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([p("ca.key"), "-out".into(), p("ca.pem")])
        .collect(),
        // ... a key and request for localhost ...
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([p("key.pem"), "-out".into(), p("leaf.csr")])
        .collect(),
        // ... signed by the CA.
        ["x509", "-req", "-days", "1", "-CAcreateserial", "-in"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                p("leaf.csr"),
                "-CA".into(),
                p("ca.pem"),
                "-CAkey".into(),
                p("ca.key"),
                "-out".into(),
                p("cert.pem"),
                "-extfile".into(),
                p("leaf.ext"),
            ])
            .collect(),
    ];
    for args in steps {
        let status = std::process::Command::new("openssl")
            .args(&args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    }
    let mut settings = support_broker::config::Settings::defaults().unwrap();
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.workers = 1;
    settings.storage.data_dir = dir.path().join("data");
    settings.http.tls.cert_file = cert.to_string_lossy().into_owned();
    settings.http.tls.key_file = key.to_string_lossy().into_owned();
    let app = support_broker::startup::Application::build(settings)
        .await
        .unwrap();
    assert!(app.public_url().starts_with("https://"));
    let port = app.port();
    let stop = app.shutdown_handle();
    actix_web::rt::spawn(async move { app.run_until_stopped().await.unwrap() });
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let res = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Served over TLS by the broker itself: browsers are told to stay on HTTPS.
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    stop.shutdown();
}

#[actix_web::test]
async fn login_is_rate_limited_per_client_address_across_usernames() {
    let app = TestApp::spawn_with(|s| s.auth.login_attempts_per_minute_per_address = 3).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let body = json!({"username": format!("someone-{i}"), "password": "guess-guess"});
        let res = app
            .http
            .post(app.url("/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses,
        vec![401, 401, 429, 429],
        "the admin's own login in spawn used the first attempt"
    );
}

#[actix_web::test]
async fn usernames_are_unique_after_unicode_normalisation() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let path = format!("/accounts/{}/users", t.id);
    let (status, _) = app.post(&path, &t.admin, json!({"username": "jürgen", "first_name": "J", "last_name": "K", "email": "j1@example.com"})).await;
    assert_eq!(status, 201);
    let (status, body) = app.post(&path, &t.admin, json!({"username": "ju\u{308}rgen", "first_name": "J", "last_name": "K", "email": "j2@example.com"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );
}
