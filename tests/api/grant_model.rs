//! Partner access as a state machine, checked with proptest against the live broker: random
//! sequences of requests (with or without a support user), approvals (with or without an
//! expiry), rejections, revocations, expiries (the clock moved on in the database), support
//! logins and re-requests, by a certified partner at one customer. After every step the
//! customer's access list, the partner's grant list and what a support login gets must be what
//! the contract says: one pending request at most, one active grant at most, a support login
//! only through an active grant that includes a support user, and a revoked or expired grant
//! opening nothing.
//!
//! 256 cases of 40 steps, a fixed seed, shrunk on failure; each case a fresh customer.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;

use crate::helpers::model_cases;
use crate::helpers::{Tenant, TestApp};

const CASES: u32 = 256;
const STEPS: usize = 40;

#[derive(Debug, Clone)]
enum Op {
    Request {
        support_user: bool,
    },
    /// Approve the newest request, with an expiry a day ahead or none.
    Approve {
        expiry: bool,
    },
    Reject,
    /// Revoke the grant picked by `n` among all grants made so far (old ones included).
    Revoke(usize),
    /// The clock passes the expiry of the grant picked by `n` (moved on in the database).
    Expire(usize),
    /// A partner user logs in through the grant picked by `n`.
    Login(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|support_user| Op::Request { support_user }),
        3 => any::<bool>().prop_map(|expiry| Op::Approve { expiry }),
        1 => Just(Op::Reject),
        2 => (0..6usize).prop_map(Op::Revoke),
        1 => (0..6usize).prop_map(Op::Expire),
        2 => (0..6usize).prop_map(Op::Login),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    No,
    Revoked,
    Expired,
}

struct Grant {
    id: String,
    support_user: bool,
    ended: Ended,
}

#[derive(Default)]
struct Model {
    /// The newest request: its id, whether it is still pending, and its support-user wish.
    request: Option<(String, bool, bool)>,
    grants: Vec<Grant>,
}

impl Model {
    fn pending(&self) -> Option<&(String, bool, bool)> {
        self.request.as_ref().filter(|r| r.1)
    }
    fn active(&self) -> Option<&Grant> {
        self.grants.iter().find(|g| g.ended == Ended::No)
    }
}

struct World {
    app: TestApp,
    partner: Tenant,
}

async fn run_case(world: &World, case: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let app = &world.app;
    let p = &world.partner;
    let c = app.tenant(&format!("Customer {case}")).await;
    let mut m = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Request { support_user } => {
                let (status, body) = app
                    .post(
                        "/access-requests",
                        &p.admin,
                        json!({"account_id": c.id, "support_user": support_user}),
                    )
                    .await;
                if m.pending().is_some() || m.active().is_some() {
                    prop_assert_eq!(status, 409, "{}", body);
                } else {
                    prop_assert_eq!(status, 201, "{}", body);
                    m.request = Some((body["id"].as_str().unwrap().into(), true, *support_user));
                }
            }
            Op::Approve { expiry } => {
                let Some((id, _, support_user)) = m.request.clone() else {
                    continue;
                };
                let body = if *expiry {
                    json!({"expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()})
                } else {
                    json!({})
                };
                let (status, grant) = app
                    .post(&format!("/access-requests/{id}/approve"), &c.admin, body)
                    .await;
                if m.pending().is_some() {
                    prop_assert_eq!(status, 201, "{}", grant);
                    m.request.as_mut().unwrap().1 = false;
                    m.grants.push(Grant {
                        id: grant["id"].as_str().unwrap().into(),
                        support_user,
                        ended: Ended::No,
                    });
                } else {
                    prop_assert_eq!(
                        (status, grant["error"]["code"].as_str()),
                        (409, Some("request_not_pending"))
                    );
                }
            }
            Op::Reject => {
                let Some((id, pending, _)) = m.request.clone() else {
                    continue;
                };
                let (status, body) = app
                    .post(
                        &format!("/access-requests/{id}/reject"),
                        &c.admin,
                        json!({}),
                    )
                    .await;
                if pending {
                    prop_assert_eq!(status, 200, "{}", body);
                    m.request.as_mut().unwrap().1 = false;
                } else {
                    prop_assert_eq!(status, 409, "{}", body);
                }
            }
            Op::Revoke(n) => {
                if m.grants.is_empty() {
                    continue;
                }
                let k = n % m.grants.len();
                let (status, body) = app
                    .call(
                        "DELETE",
                        &format!("/access-grants/{}", m.grants[k].id),
                        Some(&c.admin),
                        None,
                    )
                    .await;
                if m.grants[k].ended == Ended::No {
                    prop_assert_eq!(status, 204, "{}", body);
                    m.grants[k].ended = Ended::Revoked;
                } else {
                    prop_assert_eq!(status, 404, "an ended grant is gone: {}", body);
                }
            }
            Op::Expire(n) => {
                if m.grants.is_empty() {
                    continue;
                }
                let k = n % m.grants.len();
                // Only a grant that is still running can expire.
                if m.grants[k].ended != Ended::No {
                    continue;
                }
                let past = support_broker::store::db::SortableTime(
                    chrono::Utc::now() - chrono::Duration::seconds(1),
                );
                let db = app.db().await;
                support_broker::store::db::query(
                    "UPDATE access_grants SET expires_at = ? WHERE id = ?",
                )
                .bind(past)
                .bind(&m.grants[k].id)
                .execute(&db)
                .await
                .unwrap();
                db.close().await;
                m.grants[k].ended = Ended::Expired;
            }
            Op::Login(n) => {
                if m.grants.is_empty() {
                    continue;
                }
                let k = n % m.grants.len();
                let g = &m.grants[k];
                let (status, body) = app
                    .post(
                        &format!("/access-grants/{}/login", g.id),
                        &p.admin,
                        json!({}),
                    )
                    .await;
                match (g.ended, g.support_user) {
                    (Ended::No, true) => {
                        prop_assert_eq!(status, 200, "{}", body);
                        // The token works inside the customer account.
                        let token = body["token"].as_str().unwrap();
                        let (status, _) =
                            app.get(&format!("/accounts/{}/devices", c.id), token).await;
                        prop_assert_eq!(status, 200);
                    }
                    (Ended::No, false) => prop_assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (403, Some("support_user_not_granted"))
                    ),
                    (_, _) => prop_assert_eq!(status, 404, "{}", body),
                }
            }
        }
        check(world, &c, &m, step, op).await?;
    }
    Ok(())
}

/// The customer's list and the partner's list say what the model says.
async fn check(
    world: &World,
    c: &Tenant,
    m: &Model,
    step: usize,
    op: &Op,
) -> Result<(), TestCaseError> {
    let app = &world.app;
    let (_, access) = app
        .get(&format!("/accounts/{}/access", c.id), &c.admin)
        .await;
    let requests: Vec<&str> = access["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let grants: Vec<&str> = access["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    let want_requests: Vec<&str> = m.pending().map(|r| r.0.as_str()).into_iter().collect();
    let want_grants: Vec<&str> = m.active().map(|g| g.id.as_str()).into_iter().collect();
    prop_assert_eq!(
        &requests,
        &want_requests,
        "pending requests after step {} ({:?})",
        step,
        op
    );
    prop_assert_eq!(
        &grants,
        &want_grants,
        "active grants after step {} ({:?})",
        step,
        op
    );
    prop_assert_eq!(
        access["visible"].as_bool(),
        Some(!want_requests.is_empty() || !want_grants.is_empty())
    );
    let (_, theirs) = app.get("/access-grants", &world.partner.admin).await;
    let partner_sees: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["account_id"] == c.id.as_str())
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    prop_assert_eq!(
        &partner_sees,
        &want_grants,
        "the partner's grants after step {}",
        step
    );
    Ok(())
}

#[test]
fn random_sequences_of_requests_approvals_revocations_and_expiries_keep_the_grant_rules() {
    let (app, rt) = TestApp::in_thread(|_| {});
    let partner = rt.block_on(app.partner("Fixit", true));
    let world = World { app, partner };
    let config = Config {
        cases: model_cases(CASES),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11u8; 32]),
    );
    let started = std::time::Instant::now();
    let case = std::cell::Cell::new(0usize);
    let result = runner.run(&proptest::collection::vec(op(), STEPS), |ops| {
        case.set(case.get() + 1);
        rt.block_on(run_case(&world, case.get(), &ops))
    });
    println!(
        "grant model: {} cases of {STEPS} steps in {:.1} s",
        model_cases(CASES),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    world.app.shutdown();
}
