//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::{
    access, accounts, api_keys, devices, groups, login, password, policies, self_service, sessions,
    support, users,
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
        accounts::create_account,
        accounts::me,
        accounts::list_users,
        accounts::create_user,
        users::get,
        users::patch,
        users::put_rights,
        users::delete,
        users::restore,
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
        accounts::audit_log,
        policies::list,
        policies::create,
        policies::update,
        policies::delete,
        sessions::create,
        sessions::list,
        sessions::get,
        sessions::report,
        sessions::invite,
        sessions::revoke_invitation,
        sessions::join_info,
        sessions::ws_ticket,
        devices::list,
        devices::create,
        devices::get,
        devices::patch,
        devices::delete,
        devices::link_user,
        devices::import,
        devices::preassign,
        devices::enrollment_code,
        devices::enroll,
        self_service::my_devices,
        self_service::my_device,
        self_service::act,
        self_service::action_status,
        access::request_access,
        access::access_list,
        access::approve,
        access::reject,
        access::revoke,
        access::partner_grants,
        access::grant_login,
        access::assign,
        access::unassign,
    )
)]
pub struct ApiDoc;
