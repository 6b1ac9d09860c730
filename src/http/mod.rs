//! The HTTP API: routes, extractor error shapes, and the request log/metrics middleware.

pub mod access;
pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod cluster;
pub mod console;
pub mod devices;
pub mod groups;
pub mod login;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod optional_json;
pub mod password;
pub mod policies;
pub mod self_service;
pub mod sessions;
pub mod state;
pub mod support;
pub mod users;
pub mod views;
pub mod ws;

use actix_web::{HttpResponse, web};

use crate::error::{AppError, Code};

/// Largest JSON body accepted.
const JSON_LIMIT: usize = 64 * 1024;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    #[cfg(feature = "ws-echo")]
    cfg.route("/ws/echo", web::get().to(ws::echo));
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|err, _| AppError::new(Code::InvalidJson, err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| AppError::new(Code::InvalidPath, err.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| AppError::new(Code::InvalidQuery, err.to_string()).into()),
    )
    .route("/healthz", web::get().to(ops::healthz))
    .route("/readyz", web::get().to(ops::readyz))
    .route("/metrics", web::get().to(ops::metrics))
    .route("/api/docs", web::get().to(ops::docs_redirect))
    // The interactive API page at /api/docs/ and the generated document at /api/openapi.json.
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
            .url("/api/openapi.json", openapi::document()),
    )
    .route("/", web::get().to(console::page))
    .route("/customer/{key}", web::get().to(console::page))
    .route("/set-password", web::get().to(console::page))
    .route("/confirm-email", web::get().to(console::page))
    .route("/assets/{name}", web::get().to(console::asset))
    .route("/join/{token}", web::get().to(sessions::join_info))
    .route("/join/{token}/code", web::post().to(sessions::join_code))
    .route(
        "/join/{token}/verify",
        web::post().to(sessions::join_verify),
    )
    .route("/ws/sessions/{id}", web::get().to(ws::technician))
    .route("/ws/customer/{key}", web::get().to(ws::customer))
    .route("/ws/guest/{token}", web::get().to(ws::guest))
    .route("/ws/device", web::get().to(devices::agent_socket))
    .service(
        web::scope("/api/v1")
            .route("/auth/login", web::post().to(login::login))
            .route("/auth/logout", web::post().to(login::logout))
            .route("/auth/verify", web::post().to(login::verify))
            .route("/auth/password", web::post().to(password::set_password))
            .route(
                "/auth/password-reset",
                web::post().to(password::request_reset),
            )
            .route("/auth/password-link", web::post().to(password::check_link))
            .route("/me/password", web::post().to(password::change_own))
            .route("/auth/email-confirm", web::post().to(users::confirm_email))
            .route("/me/totp/confirm", web::post().to(users::confirm_totp))
            .route(
                "/users/{id}/set-password-link",
                web::post().to(password::send_link),
            )
            .route("/me", web::get().to(accounts::me))
            .route("/accounts", web::post().to(accounts::create_account))
            .route("/accounts", web::get().to(support::list_accounts))
            .route("/accounts/{id}", web::get().to(support::get_account))
            .route("/accounts/{id}", web::patch().to(support::patch_account))
            .route(
                "/accounts/{aid}/support-login",
                web::post().to(support::account_support_login),
            )
            .route(
                "/users/{id}/support-login",
                web::post().to(support::user_support_login),
            )
            .route("/accounts/{aid}/users", web::get().to(accounts::list_users))
            .route(
                "/accounts/{aid}/users",
                web::post().to(accounts::create_user),
            )
            .route("/accounts/{aid}/audit", web::get().to(audit::audit_log))
            .route("/accounts/{aid}/audit/export", web::get().to(audit::export))
            .route(
                "/accounts/{aid}/audit/verify",
                web::get().to(audit::verify_chain),
            )
            .route(
                "/accounts/{aid}/audit/chain",
                web::get().to(audit::export_chain),
            )
            .route("/accounts/{aid}/roles", web::get().to(users::roles))
            .route("/accounts/{aid}/groups", web::get().to(groups::list))
            .route("/accounts/{aid}/groups", web::post().to(groups::create))
            .route("/groups/{id}", web::patch().to(groups::rename))
            .route("/groups/{id}", web::delete().to(groups::delete))
            .route("/users/{id}", web::get().to(users::get))
            .route("/users/{id}", web::patch().to(users::patch))
            .route("/users/{id}", web::delete().to(users::delete))
            .route("/users/{id}/rights", web::put().to(users::put_rights))
            .route("/users/{id}/restore", web::post().to(users::restore))
            .route(
                "/accounts/{aid}/deleted-users",
                web::get().to(users::deleted_users),
            )
            .route(
                "/users/{id}/login-options",
                web::put().to(users::login_options),
            )
            .route("/users/{id}/api-keys", web::post().to(api_keys::create))
            .route("/users/{id}/api-keys", web::get().to(api_keys::list))
            .route("/api-keys/{id}", web::delete().to(api_keys::delete))
            .route("/accounts/{aid}/policies", web::get().to(policies::list))
            .route("/accounts/{aid}/policies", web::post().to(policies::create))
            .route("/policies/{id}", web::patch().to(policies::update))
            .route("/policies/{id}", web::delete().to(policies::delete))
            .route("/sessions", web::post().to(sessions::create))
            .route("/sessions", web::get().to(sessions::list))
            .route("/sessions/{id}", web::get().to(sessions::get))
            .route("/sessions/{id}/report", web::get().to(sessions::report))
            .route(
                "/sessions/{id}/recording",
                web::get().to(sessions::recording),
            )
            .route(
                "/customer-sessions/{key}",
                web::get().to(sessions::customer_link),
            )
            .route(
                "/sessions/{id}/invitations",
                web::post().to(sessions::invite),
            )
            .route(
                "/invitations/{id}",
                web::delete().to(sessions::revoke_invitation),
            )
            .route("/ws-tickets", web::post().to(sessions::ws_ticket))
            .route("/access-requests", web::post().to(access::request_access))
            .route("/accounts/{aid}/access", web::get().to(access::access_list))
            .route(
                "/access-requests/{id}/approve",
                web::post().to(access::approve),
            )
            .route(
                "/access-requests/{id}/reject",
                web::post().to(access::reject),
            )
            .route("/access-grants", web::get().to(access::partner_grants))
            .route("/access-requests", web::get().to(access::partner_requests))
            .route(
                "/access-grants/{id}/devices",
                web::get().to(access::assigned_devices),
            )
            .route("/access-grants/{id}", web::delete().to(access::revoke))
            .route("/access-grants/{id}", web::patch().to(access::shape_grant))
            .route(
                "/access-grants/{id}/activity",
                web::get().to(audit::grant_activity),
            )
            .route(
                "/access-grants/{id}/renewal",
                web::post().to(access::request_renewal),
            )
            .route(
                "/access-grants/{id}/login",
                web::post().to(access::grant_login),
            )
            .route(
                "/accounts/{aid}/devices/assign",
                web::post().to(access::assign),
            )
            .route(
                "/accounts/{aid}/devices/{id}/unassign",
                web::post().to(access::unassign),
            )
            .route("/accounts/{aid}/devices", web::get().to(devices::list))
            .route("/accounts/{aid}/devices", web::post().to(devices::create))
            .route(
                "/accounts/{aid}/devices/import",
                web::post().to(devices::import),
            )
            .route(
                "/accounts/{aid}/enrollments",
                web::post().to(devices::preassign),
            )
            .route(
                "/accounts/{aid}/enrollment-codes",
                web::post().to(devices::enrollment_code),
            )
            .route(
                "/accounts/{aid}/enrollment-codes",
                web::get().to(devices::enrollment_codes),
            )
            .route("/enroll", web::post().to(devices::enroll))
            .route("/devices/{id}", web::get().to(devices::get))
            .route("/devices/{id}", web::patch().to(devices::patch))
            .route("/devices/{id}", web::delete().to(devices::delete))
            .route("/devices/{id}/user", web::put().to(devices::link_user))
            .route("/devices/{id}/release", web::post().to(devices::release))
            .route(
                "/devices/{id}/actions",
                web::post().to(devices::admin_action),
            )
            .route(
                "/devices/{id}/actions/{command_id}",
                web::get().to(devices::admin_action_status),
            )
            .route(
                "/accounts/{aid}/enrollment-codes/{id}",
                web::delete().to(devices::revoke_enrollment_code),
            )
            .route("/me/devices", web::get().to(self_service::my_devices))
            .route("/me/devices/{id}", web::get().to(self_service::my_device))
            .route(
                "/me/devices/{id}/actions",
                web::post().to(self_service::act),
            )
            .route(
                "/me/devices/{id}/actions",
                web::get().to(self_service::action_history),
            )
            .route(
                "/me/devices/{id}/actions/{command_id}",
                web::get().to(self_service::action_status),
            )
            .default_service(web::to(not_found)),
    )
    .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&AppError::new(Code::NotFound, "no such endpoint"))
}

/// Headers for responses that carry or take a secret: not cached, not leaked by Referer.
pub fn secret_headers(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
}

/// The language a request's reader asked for (`Accept-Language`; the console sends its own
/// choice), for words the server writes: audit entries, and the default language of users it
/// creates.
pub fn request_lang(req: &actix_web::HttpRequest) -> crate::i18n::Lang {
    crate::i18n::Lang::from_accept(
        req.headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}
