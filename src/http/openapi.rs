//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::{
    access, accounts, api_keys, audit, devices, groups, login, password, policies, self_service,
    sessions, support, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "support-broker",
        description = "Real-time support session broker. WebSocket protocol: docs/protocol.md."
    ),
    paths(
        login::login,
        login::logout,
        login::verify,
        users::login_options,
        password::set_password,
        password::request_reset,
        password::check_link,
        password::send_link,
        password::change_own,
        support::list_accounts,
        users::confirm_totp,
        users::confirm_email,
        groups::rename,
        groups::delete,
        accounts::create_account,
        accounts::me,
        accounts::list_users,
        accounts::create_user,
        users::get,
        users::patch,
        users::put_rights,
        users::delete,
        users::restore,
        users::deleted_users,
        users::roles,
        groups::list,
        groups::create,
        api_keys::create,
        api_keys::list,
        api_keys::delete,
        support::get_account,
        support::patch_account,
        support::account_support_login,
        support::user_support_login,
        audit::audit_log,
        audit::export,
        audit::verify_chain,
        audit::export_chain,
        audit::grant_activity,
        policies::list,
        policies::create,
        policies::update,
        policies::delete,
        sessions::create,
        sessions::list,
        sessions::get,
        sessions::report,
        sessions::customer_link,
        sessions::recording,
        sessions::invite,
        sessions::revoke_invitation,
        sessions::join_info,
        sessions::join_code,
        sessions::join_verify,
        sessions::ws_ticket,
        devices::list,
        devices::create,
        devices::get,
        devices::patch,
        devices::delete,
        devices::link_user,
        devices::release,
        devices::admin_action,
        devices::admin_action_status,
        devices::enrollment_codes,
        devices::revoke_enrollment_code,
        devices::import,
        devices::preassign,
        devices::enrollment_code,
        devices::enroll,
        self_service::my_devices,
        self_service::my_device,
        self_service::act,
        self_service::action_history,
        self_service::action_status,
        access::request_access,
        access::access_list,
        access::approve,
        access::reject,
        access::revoke,
        access::partner_grants,
        access::partner_requests,
        access::assigned_devices,
        access::shape_grant,
        access::request_renewal,
        access::grant_login,
        access::assign,
        access::unassign,
    )
)]
pub struct ApiDoc;

/// Operations that take no credential (everything else needs the bearer token).
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/verify"),
    ("post", "/api/v1/auth/password"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-link"),
    ("post", "/api/v1/auth/email-confirm"),
    ("post", "/api/v1/enroll"),
    ("get", "/join/{token}"),
    ("post", "/join/{token}/code"),
    ("post", "/join/{token}/verify"),
    ("get", "/api/v1/customer-sessions/{key}"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Operations whose JSON body may be left out (all its fields have defaults).
const OPTIONAL_BODY: &[(&str, &str)] = &[
    ("post", "/api/v1/accounts/{aid}/enrollment-codes"),
    ("post", "/api/v1/access-requests/{id}/approve"),
    ("post", "/api/v1/access-grants/{id}/renewal"),
];

/// The document served at `/api/openapi.json`: the handlers' annotations, completed with what
/// every operation shares, so that a client (or a contract fuzzer) can rely on it: the bearer
/// security scheme (and which operations need none), every path parameter, and the error
/// answers the common layers give (malformed input, no credential, missing right, unknown id,
/// body too large or not JSON, rate limits, a busy or draining broker), each with the one error
/// shape `{"error": {"code", "message"}}`.
pub fn document() -> utoipa::openapi::OpenApi {
    let doc = ApiDoc::openapi();
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    complete(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

fn complete(doc: &mut serde_json::Value) {
    use serde_json::json;
    doc["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "A login token (`sbt_…`), a WebSocket ticket or an API key (`sbk_…`)."
    });
    doc["components"]["schemas"]["Error"] = json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}
        }}
    });
    doc["security"] = json!([{"bearer": []}]);
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let names: Vec<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
            .map(str::to_string)
            .collect();
        for method in METHODS {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            let public = PUBLIC.contains(&(method, path.as_str()));
            if public {
                op["security"] = json!([]);
            }
            // Every path parameter, declared (ids are UUIDs; tokens are strings).
            let declared: Vec<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            for name in names.iter().filter(|n| !declared.contains(n)) {
                let schema = if name == "token" || name == "key" {
                    json!({"type": "string"})
                } else {
                    json!({"type": "string", "format": "uuid"})
                };
                let parameter =
                    json!({"name": name, "in": "path", "required": true, "schema": schema});
                match op["parameters"].as_array_mut() {
                    Some(ps) => ps.push(parameter),
                    None => op["parameters"] = json!([parameter]),
                }
            }
            let has_body = op.get("requestBody").is_some();
            if has_body && OPTIONAL_BODY.contains(&(method, path.as_str())) {
                op["requestBody"]["required"] = json!(false);
            }
            let mut shared: Vec<(&str, &str)> = vec![
                (
                    "400",
                    "malformed request: invalid JSON, query string or path parameter",
                ),
                ("429", "too many requests (rate limit); see Retry-After"),
                ("503", "the broker is busy or shutting down"),
            ];
            if !public {
                shared.push(("401", "no valid credential"));
                shared.push(("403", "the credential lacks the right for this"));
            }
            if !names.is_empty() {
                shared.push(("404", "no such object, or not visible to the caller"));
            }
            if has_body {
                shared.push(("413", "body too large"));
                shared.push(("415", "the body is not of the declared content type"));
                shared.push(("422", "a field is invalid"));
            }
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for (code, description) in shared {
                responses
                    .entry(code)
                    .or_insert_with(|| json!({"description": description}));
            }
            // Every error answer has the one error shape.
            for (code, response) in responses.iter_mut() {
                if (code.starts_with('4') || code.starts_with('5'))
                    && response.get("content").is_none()
                {
                    response["content"] = error.clone();
                }
            }
            // The join link is also a page: a browser (no `Accept: application/json`) gets
            // HTML for every answer.
            if path == "/join/{token}" {
                for response in responses.values_mut() {
                    response["content"]["text/html"] = json!({"schema": {"type": "string"}});
                }
            }
        }
    }
}
