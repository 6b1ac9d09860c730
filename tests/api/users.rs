//! User management: soft delete, restore, uniqueness forever, last user admin, roles.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

#[actix_web::test]
async fn deleting_a_user_cuts_its_tokens_its_login_and_its_live_sockets() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (sid, _) = app.session(&t.admin).await;
    let mut owner = app.ws_technician(&t.admin, &sid).await;
    let mut bob_ws = app.ws_technician(&bob, &sid).await;
    owner.expect("participant_joined").await;

    let (status, _) = app
        .call("DELETE", &format!("/users/{bob_id}"), Some(&t.admin), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(bob_ws.expect_close().await, Some(4003));
    let left = owner.expect("participant_left").await;
    assert_eq!(left["reason"], "revoked");
    let (status, _) = app.get("/me", &bob).await;
    assert_eq!(status, 401);
    let (status, deleted_login) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "bob", "password": PASSWORD})),
        )
        .await;
    let (_, unknown_login) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "nobody-at-all", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        deleted_login, unknown_login,
        "a deleted user looks like an unknown one"
    );
    let (_, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bob")
    );
    let (status, _) = app.get(&format!("/users/{bob_id}"), &t.admin).await;
    assert_eq!(status, 404);
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.deleted" && e["via"] == "login")
    );
}

#[actix_web::test]
async fn usernames_and_emails_stay_taken_after_deletion() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (jane, _) = app.user(&t, "jane", &[]).await;
    let (status, _) = app
        .call("DELETE", &format!("/users/{jane}"), Some(&t.admin), None)
        .await;
    assert_eq!(status, 204);
    let path = format!("/accounts/{}/users", t.id);
    let (status, body) = app
        .post(&path, &t.admin, json!({"username": "jane", "first_name": "J", "last_name": "D", "email": "new@example.com"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );
    let (status, body) = app
        .post(&path, &t.admin, json!({"username": "jane2", "first_name": "J", "last_name": "D", "email": "JANE@example.com"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("email_taken"))
    );
}

#[actix_web::test]
async fn only_vendor_support_restores_a_deleted_user() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (bob_id, old_token) = app.user(&t, "bob", &["sessions"]).await;
    let (_, key) = app
        .post(
            &format!("/users/{bob_id}/api-keys"),
            &old_token,
            json!({"name": "k"}),
        )
        .await;
    let old_key = key["key"].as_str().unwrap().to_string();
    app.call("DELETE", &format!("/users/{bob_id}"), Some(&t.admin), None)
        .await;
    let (status, body) = app
        .post(&format!("/users/{bob_id}/restore"), &t.admin, json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("platform_only"))
    );
    let (status, body) = app
        .post(&format!("/users/{bob_id}/restore"), &app.admin, json!({}))
        .await;
    assert_eq!((status, body["username"].as_str()), (200, Some("bob")));
    let fresh = app.login("bob", PASSWORD).await;
    let (status, _) = app.get("/me", &fresh).await;
    assert_eq!(status, 200);
    // Credentials from before the deletion stay dead after the restore.
    for old in [&old_token, &old_key] {
        let (status, _) = app.get("/me", old).await;
        assert_eq!(status, 401);
    }
    let (status, _) = app
        .post(&format!("/users/{bob_id}/restore"), &app.admin, json!({}))
        .await;
    assert_eq!(status, 409);
    let (_, audit) = app
        .get(&format!("/accounts/{}/audit", t.id), &t.admin)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.restored")
    );
}

#[actix_web::test]
async fn the_account_keeps_a_user_who_can_manage_users() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/users/{}", t.admin_id),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("last_user_admin"))
    );
    let no_edit =
        json!({"areas": ["users"], "objects": {"create": false, "edit": false, "delete": true}});
    // Nobody changes its own rights.
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{}/rights", t.admin_id),
            Some(&t.admin),
            Some(no_edit.clone()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("own_rights"))
    );
    // Once another full admin manages users, it may narrow the first.
    let (carol, carol_token) = app.user(&t, "carol", &[]).await;
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{carol}/rights"),
            Some(&t.admin),
            Some(full_admin()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{}/rights", t.admin_id),
            Some(&carol_token),
            Some(no_edit),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // ... and changing rights now needs users + edit, which the first admin no longer has.
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{carol}/rights"),
            Some(&t.admin),
            Some(
                json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}}),
            ),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("missing_right"))
    );
}

#[actix_web::test]
async fn the_service_user_is_listed_but_cannot_log_in_or_be_changed() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (_, users) = app
        .get(&format!("/accounts/{}/users", t.id), &t.admin)
        .await;
    let service = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["kind"] == "service")
        .unwrap()
        .clone();
    let id = service["id"].as_str().unwrap();
    // It holds no API keys: its list is empty (found by contract fuzzing: it answered 422).
    let (status, keys) = app.get(&format!("/users/{id}/api-keys"), &t.admin).await;
    assert_eq!((status, keys), (200, serde_json::json!([])));
    let (status, body) = app
        .call("DELETE", &format!("/users/{id}"), Some(&t.admin), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("service_user"))
    );
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{id}/rights"),
            Some(&t.admin),
            Some(
                json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}}),
            ),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": service["username"], "password": ""})),
        )
        .await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn users_are_read_and_edited_within_their_account() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let (bob_id, bob) = app.user(&t, "bob", &["sessions"]).await;
    let (status, me) = app.get(&format!("/users/{bob_id}"), &bob).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("bob")),
        "a user reads itself"
    );
    let (status, _) = app.get(&format!("/users/{}", t.admin_id), &bob).await;
    assert_eq!(status, 403, "others need the users area");
    let (status, _) = app.get(&format!("/users/{bob_id}"), &other.admin).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/users/{bob_id}"),
            Some(&other.admin),
            Some(json!({"first_name": "X"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/users/{bob_id}"),
            Some(&t.admin),
            Some(json!({"first_name": "Robert", "phone": "+4930123456"})),
        )
        .await;
    assert_eq!(
        (status, body["first_name"].as_str(), body["phone"].as_str()),
        (200, Some("Robert"), Some("+4930123456"))
    );
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/users/{bob_id}"),
            Some(&t.admin),
            Some(json!({"phone": "0301234"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_phone"))
    );
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/users/{bob_id}"),
            Some(&t.admin),
            Some(json!({"email": "ACME-ADMIN@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("email_taken"))
    );
}

#[actix_web::test]
async fn every_account_has_the_two_self_service_roles() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (status, roles) = app
        .get(&format!("/accounts/{}/roles", t.id), &t.admin)
        .await;
    assert_eq!(status, 200);
    let pairs: Vec<(&str, &str)> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("self-service-full", "Self service portal - full access"),
            ("self-service-read", "Self service portal - read access"),
        ]
    );
    let (bob_id, _) = app.user(&t, "bob", &[]).await;
    let bad = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}, "roles": ["superuser"]});
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/rights"),
            Some(&t.admin),
            Some(bad),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_role"))
    );
}

#[actix_web::test]
async fn a_new_device_group_is_invisible_until_granted() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let other = app.tenant("Other").await;
    let path = format!("/accounts/{}/groups", t.id);
    let (status, first) = app.post(&path, &t.admin, json!({"name": "Berlin"})).await;
    assert_eq!(status, 201);
    let first_id = first["id"].as_str().unwrap().to_string();
    let (status, body) = app.post(&path, &t.admin, json!({"name": "Berlin"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("group_name_taken"))
    );

    // Dana sees only the group her rights name; a group created later stays hidden from her.
    let (dana_id, dana) = app.user(&t, "dana", &["devices"]).await;
    let rights = json!({"areas": ["devices"], "objects": {"create": false, "edit": false, "delete": false}, "groups": [first_id]});
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{dana_id}/rights"),
            Some(&t.admin),
            Some(rights),
        )
        .await;
    assert_eq!(status, 200);
    app.post(&path, &t.admin, json!({"name": "Munich"})).await;
    let (_, seen) = app.get(&path, &dana).await;
    let names: Vec<&str> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Berlin"]);
    let (_, all) = app.get(&path, &t.admin).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "\"all\" sees every group");

    // Rights may only name groups of the account.
    let foreign = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}, "groups": ["0195f3a0-0000-7000-8000-000000000000"]});
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{dana_id}/rights"),
            Some(&t.admin),
            Some(foreign),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_group"))
    );
    let (status, _) = app.get(&path, &other.admin).await;
    assert_eq!(status, 404);
    let (status, _) = app.post(&path, &dana, json!({"name": "Hamburg"})).await;
    assert_eq!(status, 403);
}

fn full_admin() -> Value {
    json!({"areas": ["users", "devices", "sessions", "policies", "access", "settings", "reports"],
           "objects": {"create": true, "edit": true, "delete": true}, "groups": "all",
           "edit_group_settings": true, "support_access": false, "roles": []})
}

fn clerk_rights() -> Value {
    json!({"areas": ["users"], "objects": {"create": false, "edit": true, "delete": true},
           "groups": "all", "edit_group_settings": false, "support_access": false, "roles": []})
}

/// The attack: a user manager (users + edit + delete) makes itself full admin, hands another
/// user more than it holds, strips or deletes the account's first admin.
#[actix_web::test]
async fn a_user_manager_cannot_reach_beyond_its_own_rights() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (clerk_id, clerk) = app.user(&t, "clerk", &[]).await;
    app.set_rights(&t.admin, &clerk_id, clerk_rights()).await;
    let (bob_id, _) = app.user(&t, "bob", &[]).await;
    let none = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}});
    app.set_rights(&t.admin, &bob_id, none.clone()).await;

    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{clerk_id}/rights"),
            Some(&clerk),
            Some(full_admin()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("own_rights"))
    );
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/rights"),
            Some(&clerk),
            Some(full_admin()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("rights_exceed_own"))
    );
    let (status, body) = app
        .call(
            "PUT",
            &format!("/users/{}/rights", t.admin_id),
            Some(&clerk),
            Some(none),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("rights_exceed_own"))
    );
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/users/{}", t.admin_id),
            Some(&clerk),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("rights_exceed_own"))
    );
    // Within its own rights it still works: bob gets what clerk holds, and nothing changed above.
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{bob_id}/rights"),
            Some(&clerk),
            Some(clerk_rights()),
        )
        .await;
    assert_eq!(status, 200);
    let (_, admin) = app.get(&format!("/users/{}", t.admin_id), &t.admin).await;
    assert_eq!(
        admin["rights"]["areas"].as_array().unwrap().len(),
        7,
        "{admin}"
    );
    let (_, me) = app.get("/me", &clerk).await;
    assert_eq!(me["rights"]["areas"], json!(["users"]));
}

/// The attack on the platform account: a delegated staff manager deletes `admin`, after which
/// nobody could restore anyone.
#[actix_web::test]
async fn the_platform_admin_cannot_be_deleted_by_a_staff_manager_or_at_all_while_it_is_the_last() {
    let app = TestApp::spawn().await;
    // Even with every account right, staff lacks the platform rights admin holds.
    let (admin_id, staff) = app.platform_user("staff", full_admin()).await;
    let (status, body) = app
        .call("DELETE", &format!("/users/{admin_id}"), Some(&staff), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("rights_exceed_own"))
    );
    // And admin, the last platform_admin, cannot delete itself either.
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/users/{admin_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("last_user_admin"))
    );
    let (status, _) = app.get("/me", &app.admin).await;
    assert_eq!(status, 200);
}

/// Two full admins narrowing each other at the same moment: the rule is judged in the
/// database, so one of them stays a user manager.
#[actix_web::test]
async fn two_admins_narrowing_each_other_at_once_leave_one_manager() {
    let app = TestApp::spawn().await;
    let t = app.tenant("Acme").await;
    let (carol, carol_token) = app.user(&t, "carol", &[]).await;
    app.set_rights(&t.admin, &carol, full_admin()).await;
    let none = json!({"areas": [], "objects": {"create": false, "edit": false, "delete": false}});
    let admin_path = format!("/users/{}/rights", t.admin_id);
    let carol_path = format!("/users/{carol}/rights");
    let (a, b) = tokio::join!(
        app.call("PUT", &admin_path, Some(&carol_token), Some(none.clone())),
        app.call("PUT", &carol_path, Some(&t.admin), Some(none.clone())),
    );
    let ok = [a.0, b.0].iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
}
