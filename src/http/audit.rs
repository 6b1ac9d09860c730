//! The audit log as people read it: actions and access paths in words (in the reader's
//! language), targets by their current names, filters, paging and a CSV export.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::state::AppState;
use crate::{
    domain::ids::{AccountId, UserId},
    error::{AppError, AppResult, Code},
    http::authz::{InAccount, area, level},
    i18n::{self, Lang},
    store::{AuditFilter, AuditRecord},
};

/// Entries in one page unless `limit` says otherwise.
pub const DEFAULT_PAGE: i64 = 500;
/// The largest page.
pub const MAX_PAGE: i64 = 1000;
/// The most entries one export holds (read in pages of `MAX_PAGE`).
pub const MAX_EXPORT: usize = 100_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only what this user did.
    pub actor: Option<Uuid>,
    /// An action (`user.created`) or a family (`user.`).
    pub action: Option<String>,
    /// Only entries made through this access: `login`, `api_key`, `vendor_support`,
    /// `partner_support`, ...
    pub via: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC) or instant (RFC 3339), inclusive.
    pub from: Option<String>,
    /// Up to this day (`YYYY-MM-DD`, inclusive) or instant (RFC 3339, exclusive).
    pub to: Option<String>,
    /// The id of the last entry of the previous page: the next page starts after it.
    pub before: Option<Uuid>,
    /// Only what happened through this partner grant: everything the partner's users did in
    /// the account with it (logins, sessions, device actions), its devices assigned and taken
    /// back, and the grant's own story (requested, approved, changed, revoked).
    pub grant: Option<Uuid>,
    /// 1 to 1000 (default 500).
    pub limit: Option<i64>,
}

/// An entry with the words for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The action in words, in the language the request asked for (`Accept-Language`).
    pub action_text: String,
    /// The access path in words.
    pub via_text: String,
}

fn parse_bound(value: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(day) = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d") {
        let day = if end { day.succ_opt()? } else { day };
        return Some(day.and_hms_opt(0, 0, 0)?.and_utc());
    }
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl AuditQuery {
    fn filter(&self) -> AppResult<AuditFilter> {
        let bad = |what: &str| AppError::new(Code::InvalidFilter, what.to_string());
        let from = match &self.from {
            Some(v) if !v.is_empty() => {
                Some(parse_bound(v, false).ok_or_else(|| bad("from: YYYY-MM-DD or RFC 3339"))?)
            }
            _ => None,
        };
        let to = match &self.to {
            Some(v) if !v.is_empty() => {
                Some(parse_bound(v, true).ok_or_else(|| bad("to: YYYY-MM-DD or RFC 3339"))?)
            }
            _ => None,
        };
        let text = |v: &Option<String>, what: &str| -> AppResult<Option<String>> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v)
                    if v.len() <= 64
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
                {
                    Ok(Some(v.to_string()))
                }
                Some(_) => Err(bad(what)),
            }
        };
        Ok(AuditFilter {
            actor: self.actor.map(UserId),
            action: text(&self.action, "action: letters, digits, '_' and '.'")?,
            via: text(&self.via, "via: letters, digits and '_'")?,
            from,
            to,
            before: self.before,
            grant: self.grant,
        })
    }

    fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(AppError::new(Code::InvalidFilter, "limit: 1 to 1000")),
        }
    }
}

fn view(lang: Lang, record: AuditRecord) -> AuditView {
    AuditView {
        action_text: i18n::audit_action(lang, &record.action).to_string(),
        via_text: i18n::audit_via(lang, &record.via).to_string(),
        record,
    }
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/audit", tag = "accounts", params(AuditQuery),
    responses((status = 200, body = Vec<AuditView>,
               description = "newest first; a full page carries a `Link: <...>; rel=\"next\"` header"),
              (status = 403), (status = 404), (status = 422, description = "invalid_filter")))]
pub async fn audit_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    scope: InAccount<area::Reports, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    query: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let filter = query.filter()?;
    let limit = query.limit()?;
    let lang = super::request_lang(&req);
    let records = state.store.audit_log(scope.account, &filter, limit).await?;
    let mut res = HttpResponse::Ok();
    if records.len() as i64 == limit
        && let Some(last) = records.last()
    {
        // The same query, one page on.
        let mut pairs: Vec<(String, String)> = url_pairs(req.query_string())
            .into_iter()
            .filter(|(k, _)| k != "before")
            .collect();
        pairs.push(("before".into(), last.id.to_string()));
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        res.insert_header((header::LINK, format!("<{}?{qs}>; rel=\"next\"", req.path())));
    }
    Ok(res.json(
        records
            .into_iter()
            .map(|r| view(lang, r))
            .collect::<Vec<_>>(),
    ))
}

fn url_pairs(qs: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(qs).unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/audit/export", tag = "accounts", params(AuditQuery),
    responses((status = 200, content_type = "text/csv",
               description = "every matching entry (at most 100,000), newest first: at, actor, actor_user_id, via, via_text, action, action_text, target_kind, target_id, target_name, details, seq, prev_hash, hash"),
              (status = 403), (status = 404), (status = 422, description = "invalid_filter")))]
pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    scope: InAccount<area::Reports, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
    query: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let mut filter = query.filter()?;
    let lang = super::request_lang(&req);
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| AppError::internal(anyhow::anyhow!(e));
    out.write_record([
        "at",
        "actor",
        "actor_user_id",
        "via",
        "via_text",
        "action",
        "action_text",
        "target_kind",
        "target_id",
        "target_name",
        "details",
        "seq",
        "prev_hash",
        "hash",
    ])
    .map_err(csv_err)?;
    let mut written = 0usize;
    loop {
        let page = state
            .store
            .audit_log(scope.account, &filter, MAX_PAGE)
            .await?;
        let full = page.len() as i64 == MAX_PAGE;
        filter.before = page.last().map(|r| r.id);
        for r in page {
            if written == MAX_EXPORT {
                break;
            }
            let v = view(lang, r);
            out.write_record([
                v.record.at.to_rfc3339(),
                v.record.actor_name.clone(),
                v.record
                    .actor_user_id
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                v.record.via.clone(),
                v.via_text.clone(),
                v.record.action.clone(),
                v.action_text.clone(),
                v.record.target_kind.clone().unwrap_or_default(),
                v.record.target.clone().unwrap_or_default(),
                v.record.target_name.clone().unwrap_or_default(),
                v.record.details.to_string(),
                v.record.seq.map(|n| n.to_string()).unwrap_or_default(),
                v.record.prev_hash.clone().unwrap_or_default(),
                v.record.hash.clone().unwrap_or_default(),
            ])
            .map_err(csv_err)?;
            written += 1;
        }
        if !full || written == MAX_EXPORT {
            break;
        }
    }
    let body = out
        .into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!(e.to_string())))?;
    tracing::info!(account = %scope.account, entries = written, "audit log exported");
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-log.csv\"",
        ))
        .body(body))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainBreak {
    pub id: String,
    pub seq: i64,
    /// `hash_mismatch`, `broken_link` or `gap` (docs/security.md).
    pub reason: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainCheck {
    /// Whether every entry is in the chain and every link holds.
    pub intact: bool,
    /// Entries in the chain.
    pub entries: usize,
    /// The hash of the last entry that holds (hand it to an auditor: a later export must
    /// still contain it at the same place).
    pub head: String,
    /// The first entry at which the chain breaks.
    pub first_broken: Option<ChainBreak>,
    /// Rows without a place in the chain (written to the table by hand).
    pub outside_chain: i64,
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/audit/verify", tag = "accounts",
    responses((status = 200, body = ChainCheck), (status = 403), (status = 404)))]
pub async fn verify_chain(
    state: web::Data<AppState>,
    scope: InAccount<area::Reports, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let (chain, outside) = state.store.audit_chain(scope.account).await?;
    let entries = chain.len();
    let check = match crate::domain::audit_chain::verify(&chain) {
        Ok(head) => ChainCheck {
            intact: outside == 0,
            entries,
            head,
            first_broken: None,
            outside_chain: outside,
        },
        Err(b) => {
            // The head is the last entry before the break.
            let head = chain
                .iter()
                .take_while(|(e, _)| e.seq < b.seq)
                .last()
                .map_or_else(
                    || crate::domain::audit_chain::GENESIS.to_string(),
                    |(_, h)| h.clone(),
                );
            tracing::warn!(account = %scope.account, seq = b.seq, reason = b.reason, "audit chain broken");
            ChainCheck {
                intact: false,
                entries,
                head,
                first_broken: Some(ChainBreak {
                    id: b.id,
                    seq: b.seq,
                    reason: b.reason,
                }),
                outside_chain: outside,
            }
        }
    };
    Ok(HttpResponse::Ok().json(check))
}

#[utoipa::path(get, path = "/api/v1/accounts/{aid}/audit/chain", tag = "accounts",
    responses((status = 200, content_type = "application/x-ndjson",
               description = "the whole chain, oldest first, one JSON object per line: account_id, seq, id, at, actor_user_id, actor_name, via, action, target, details, prev_hash, hash (check it offline with scripts/verify-audit-export)"),
              (status = 403), (status = 404)))]
pub async fn export_chain(
    state: web::Data<AppState>,
    scope: InAccount<area::Reports, level::Read>,
    // Named for the OpenAPI document; InAccount has checked it.
    _path: web::Path<AccountId>,
) -> AppResult<HttpResponse> {
    let (chain, _) = state.store.audit_chain(scope.account).await?;
    let mut body = String::new();
    for (e, hash) in &chain {
        let line = serde_json::json!({
            "account_id": e.account_id, "seq": e.seq, "id": e.id, "at": e.at,
            "actor_user_id": e.actor_user_id, "actor_name": e.actor_name, "via": e.via,
            "action": e.action, "target": e.target, "details": e.details,
            "prev_hash": e.prev_hash, "hash": hash,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    tracing::info!(account = %scope.account, entries = chain.len(), "audit chain exported");
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit-chain.jsonl\"",
        ))
        .body(body))
}

#[utoipa::path(get, path = "/api/v1/access-grants/{id}/activity", tag = "partner access",
    responses((status = 200, body = Vec<AuditView>,
               description = "everything done through the grant or to it, newest first (at most 1000), in words"),
              (status = 403), (status = 404)))]
pub async fn grant_activity(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: crate::http::authz::Authorized<area::Access, level::Read>,
    path: web::Path<crate::domain::ids::GrantId>,
) -> AppResult<HttpResponse> {
    let grant = state
        .store
        .grant(path.into_inner())
        .await?
        .ok_or_else(|| AppError::new(Code::GrantNotFound, "no such grant"))?;
    // The customer's feed: its own users (not the partner's support login) read it.
    let who = auth.in_account(grant.customer_account_id, Code::GrantNotFound)?;
    if who.partner.is_some() {
        return Err(AppError::new(Code::GrantNotFound, "no such grant"));
    }
    let filter = AuditFilter {
        grant: Some(grant.id.0),
        ..AuditFilter::default()
    };
    let lang = super::request_lang(&req);
    let records = state
        .store
        .audit_log(grant.customer_account_id, &filter, MAX_PAGE)
        .await?;
    Ok(HttpResponse::Ok().json(
        records
            .into_iter()
            .map(|r| view(lang, r))
            .collect::<Vec<_>>(),
    ))
}
