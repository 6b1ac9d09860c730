//! The session rules as a state machine, checked with proptest against the live broker: random
//! sequences of joins, leaves, dropped connections, ownership transfers, invitations,
//! redemptions and revocations by random actors, each step compared with a model of what the
//! contract says must follow. After every step the session's participant list must be the
//! model's; throughout: the owner is a technician, a guest's inviter is present, a revoked or
//! used link admits nobody; at the end the report lists everyone who was there.
//!
//! 256 cases of 40 steps, a fixed seed (the same sequences every run), shrunk on failure. The
//! broker runs in its own thread (its actix system); the cases drive it over real HTTP and
//! WebSockets from a tokio runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::helpers::model_cases;
use crate::helpers::{TestApp, Ws};

const CASES: u32 = 256;
const STEPS: usize = 40;
/// Technicians 0 (the session's creator and first owner), 1 and 2.
const TECHS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    TechJoin(usize),
    TechLeave(usize),
    TechDrop(usize),
    /// The technician `from` asks to hand ownership to the participant picked by `to`.
    Transfer {
        from: usize,
        to: usize,
    },
    Invite(usize),
    /// A guest opens the `n`th invitation made so far (modulo).
    Redeem(usize),
    /// The inviter of the `n`th invitation revokes it.
    Revoke(usize),
    GuestLeave(usize),
    GuestDrop(usize),
    CustomerJoin,
    CustomerLeave,
}

fn op() -> impl Strategy<Value = Op> {
    let tech = 0..TECHS;
    prop_oneof![
        3 => tech.clone().prop_map(Op::TechJoin),
        1 => tech.clone().prop_map(Op::TechLeave),
        1 => tech.clone().prop_map(Op::TechDrop),
        2 => (tech.clone(), 0..8usize).prop_map(|(from, to)| Op::Transfer { from, to }),
        3 => tech.prop_map(Op::Invite),
        3 => (0..8usize).prop_map(Op::Redeem),
        1 => (0..8usize).prop_map(Op::Revoke),
        1 => (0..8usize).prop_map(Op::GuestLeave),
        1 => (0..8usize).prop_map(Op::GuestDrop),
        1 => Just(Op::CustomerJoin),
        1 => Just(Op::CustomerLeave),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Pending,
    Used,
    Revoked,
}

struct Invitation {
    id: String,
    token: String,
    /// The technician (index) and participant that made it.
    inviter: usize,
    inviter_pid: String,
    state: LinkState,
}

struct Guest {
    ws: Ws,
    pid: String,
    inviter_pid: String,
}

/// What the contract says the session is now, and the live connections.
struct Model {
    session: String,
    techs: Vec<Option<(Ws, String)>>,
    /// Technicians' participant ids in the order they joined (the successor rule).
    joined_order: Vec<String>,
    owner: Option<String>,
    guests: Vec<Guest>,
    customer: Option<(Ws, String)>,
    invitations: Vec<Invitation>,
    ended: bool,
    /// Everyone who was ever in the session (participant ids).
    ever: BTreeSet<String>,
}

impl Model {
    fn tech_pid(&self, i: usize) -> Option<&str> {
        self.techs[i].as_ref().map(|(_, pid)| pid.as_str())
    }

    /// participant id → role, as `GET /sessions/{id}` must list them.
    fn expected(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (_, pid) in self.techs.iter().flatten() {
            let role = if self.owner.as_deref() == Some(pid) {
                "owner"
            } else {
                "technician"
            };
            out.insert(pid.clone(), role.to_string());
        }
        for g in &self.guests {
            out.insert(g.pid.clone(), "guest".into());
        }
        if let Some((_, pid)) = &self.customer {
            out.insert(pid.clone(), "customer".into());
        }
        out
    }

    /// A technician is gone (leave or dropped connection, no grace): its guests are put out
    /// (4001), its pending links revoked, ownership passes on, or the session ends.
    async fn technician_gone(&mut self, app: &TestApp, pid: String) -> Result<(), TestCaseError> {
        let pending_before: Vec<String> = self
            .invitations
            .iter()
            .filter(|i| i.state == LinkState::Pending)
            .map(|i| i.token.clone())
            .collect();
        self.joined_order.retain(|p| *p != pid);
        let (theirs, others): (Vec<Guest>, Vec<Guest>) = std::mem::take(&mut self.guests)
            .into_iter()
            .partition(|g| g.inviter_pid == pid);
        self.guests = others;
        for mut g in theirs {
            let code = g.ws.expect_close().await;
            prop_assert_eq!(code, Some(4001), "a guest whose inviter left gets 4001");
        }
        for inv in &mut self.invitations {
            if inv.inviter_pid == pid && inv.state == LinkState::Pending {
                inv.state = LinkState::Revoked;
            }
        }
        match self.joined_order.first().cloned() {
            None => {
                self.ended = true;
                self.owner = None;
                for mut g in std::mem::take(&mut self.guests) {
                    prop_assert_eq!(g.ws.expect_close().await, Some(4002));
                }
                if let Some((mut ws, _)) = self.customer.take() {
                    prop_assert_eq!(ws.expect_close().await, Some(4002));
                }
                for inv in &mut self.invitations {
                    if inv.state == LinkState::Pending {
                        inv.state = LinkState::Revoked;
                    }
                }
            }
            Some(next) if self.owner.as_deref() == Some(pid.as_str()) => self.owner = Some(next),
            Some(_) => {}
        }
        // The links revoked by this departure are revoked by the invitation actors, a moment
        // after the session saw the departure: wait for each to answer 410 (a link that never
        // does is a failure), so that the next step meets the state the contract promises.
        for inv in &self.invitations {
            if inv.state == LinkState::Revoked && pending_before.contains(&inv.token) {
                let mut status = 0;
                for _ in 0..100 {
                    status = app
                        .call("GET", &format!("/join/{}", inv.token), None, None)
                        .await
                        .0;
                    if status == 410 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                prop_assert_eq!(status, 410, "the link of a departed inviter is revoked");
            }
        }
        Ok(())
    }
}

struct World {
    app: TestApp,
    tokens: Vec<String>,
    policy: String,
}

async fn run_case(world: &World, ops: &[Op]) -> Result<(), TestCaseError> {
    let app = &world.app;
    let (session, customer_key) = app.session(&world.tokens[0]).await;
    let mut m = Model {
        session: session.clone(),
        techs: (0..TECHS).map(|_| None).collect(),
        joined_order: vec![],
        owner: None,
        guests: vec![],
        customer: None,
        invitations: vec![],
        ended: false,
        ever: BTreeSet::new(),
    };
    // The creator opens the session: it is its owner.
    let ws = app.ws_technician(&world.tokens[0], &session).await;
    let pid = ws.id();
    m.owner = Some(pid.clone());
    m.joined_order.push(pid.clone());
    m.ever.insert(pid.clone());
    m.techs[0] = Some((ws, pid));

    for (step, op) in ops.iter().enumerate() {
        if m.ended {
            break;
        }
        match op.clone() {
            Op::TechJoin(i) => {
                if m.techs[i].is_none() {
                    let ws = app.ws_technician(&world.tokens[i], &session).await;
                    let pid = ws.id();
                    m.joined_order.push(pid.clone());
                    m.ever.insert(pid.clone());
                    m.techs[i] = Some((ws, pid));
                }
            }
            Op::TechLeave(i) => {
                if let Some((mut ws, pid)) = m.techs[i].take() {
                    ws.send_json(json!({"type": "leave"})).await;
                    let _ = ws.expect_close().await;
                    m.technician_gone(app, pid).await?;
                }
            }
            Op::TechDrop(i) => {
                if let Some((ws, pid)) = m.techs[i].take() {
                    ws.drop_connection();
                    m.technician_gone(app, pid).await?;
                }
            }
            Op::Transfer { from, to } => {
                let Some(sender) = m.tech_pid(from).map(str::to_string) else {
                    continue;
                };
                // The target: any participant present (or one that is not).
                let present: Vec<String> = m.expected().into_keys().collect();
                let target = present
                    .get(to)
                    .cloned()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let is_technician = m.techs.iter().flatten().any(|(_, p)| *p == target);
                let ws = &mut m.techs[from].as_mut().unwrap().0;
                ws.send_json(json!({"type": "transfer_ownership", "to": target}))
                    .await;
                if m.owner.as_deref() == Some(sender.as_str()) && is_technician {
                    m.owner = Some(target);
                }
            }
            Op::Invite(i) => {
                let (status, body) = app
                    .post(
                        &format!("/sessions/{session}/invitations"),
                        &world.tokens[i],
                        json!({"policy_id": world.policy, "guest_name": format!("guest {step}")}),
                    )
                    .await;
                match m.tech_pid(i).map(str::to_string) {
                    Some(inviter_pid) => {
                        prop_assert_eq!(status, 201, "{}", body);
                        let url = body["url"].as_str().unwrap();
                        m.invitations.push(Invitation {
                            id: body["id"].as_str().unwrap().into(),
                            token: url.rsplit('/').next().unwrap().into(),
                            inviter: i,
                            inviter_pid,
                            state: LinkState::Pending,
                        });
                    }
                    None => prop_assert_eq!(
                        (status, body["error"]["code"].as_str()),
                        (403, Some("not_in_session"))
                    ),
                }
            }
            Op::Redeem(n) => {
                if m.invitations.is_empty() {
                    continue;
                }
                let k = n % m.invitations.len();
                let joined = app.ws_guest(&m.invitations[k].token).await;
                let inv = &mut m.invitations[k];
                match (inv.state, joined) {
                    (LinkState::Pending, Ok(ws)) => {
                        inv.state = LinkState::Used;
                        let pid = ws.id();
                        m.ever.insert(pid.clone());
                        let inviter_pid = inv.inviter_pid.clone();
                        m.guests.push(Guest {
                            ws,
                            pid,
                            inviter_pid,
                        });
                    }
                    (LinkState::Pending, Err(status)) => {
                        return Err(TestCaseError::fail(format!(
                            "a pending link was refused with {status}"
                        )));
                    }
                    (state, Ok(_)) => {
                        return Err(TestCaseError::fail(format!(
                            "a {state:?} link admitted a guest"
                        )));
                    }
                    (_, Err(status)) => prop_assert_eq!(status, 410),
                }
            }
            Op::Revoke(n) => {
                if m.invitations.is_empty() {
                    continue;
                }
                let k = n % m.invitations.len();
                let inv = &mut m.invitations[k];
                let (status, _) = app
                    .call(
                        "DELETE",
                        &format!("/invitations/{}", inv.id),
                        Some(&world.tokens[inv.inviter]),
                        None,
                    )
                    .await;
                if inv.state == LinkState::Pending {
                    prop_assert_eq!(status, 204);
                    inv.state = LinkState::Revoked;
                } else {
                    prop_assert_eq!(status, 410);
                }
            }
            Op::GuestLeave(n) | Op::GuestDrop(n) => {
                if m.guests.is_empty() {
                    continue;
                }
                let mut g = m.guests.remove(n % m.guests.len());
                if matches!(op, Op::GuestLeave(_)) {
                    g.ws.send_json(json!({"type": "leave"})).await;
                    let _ = g.ws.expect_close().await;
                } else {
                    g.ws.drop_connection();
                }
            }
            Op::CustomerJoin => {
                if m.customer.is_none() {
                    let ws = app.ws_customer(&customer_key).await;
                    let pid = ws.id();
                    m.ever.insert(pid.clone());
                    m.customer = Some((ws, pid));
                }
            }
            Op::CustomerLeave => {
                if let Some((mut ws, _)) = m.customer.take() {
                    ws.send_json(json!({"type": "leave"})).await;
                    let _ = ws.expect_close().await;
                }
            }
        }
        check(world, &m, step, op).await?;
    }

    // The report lists everyone who was there.
    for t in &mut m.techs {
        if let Some((ws, _)) = t.take() {
            ws.drop_connection();
        }
    }
    let report = app.report(&world.tokens[0], &session).await;
    let listed: BTreeSet<String> = report["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    prop_assert!(
        m.ever.is_subset(&listed),
        "the report misses {:?}",
        m.ever.difference(&listed).collect::<Vec<_>>()
    );
    Ok(())
}

/// The broker's participant list must become the model's (the broker handles a frame after
/// the client sent it), and the model's invariants must hold.
async fn check(world: &World, m: &Model, step: usize, op: &Op) -> Result<(), TestCaseError> {
    let want = m.expected();
    // The model: the owner is a technician; every guest's inviter is present.
    if let Some(owner) = &m.owner {
        prop_assert!(m.techs.iter().flatten().any(|(_, p)| p == owner));
    }
    for g in &m.guests {
        prop_assert!(m.techs.iter().flatten().any(|(_, p)| *p == g.inviter_pid));
    }
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, s) = world
            .app
            .get(&format!("/sessions/{}", m.session), &world.tokens[0])
            .await;
        let state = s["state"].as_str().unwrap_or("").to_string();
        let got: BTreeMap<String, String> = s["participants"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["id"].as_str().unwrap().to_string(),
                            p["role"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ended_ok = !m.ended || state == "ended";
        if ended_ok && (m.ended || got == want) {
            // The broker's owner is one of its technicians with a user.
            for p in s["participants"].as_array().into_iter().flatten() {
                if p["role"] == "owner" || p["role"] == "technician" {
                    prop_assert!(!p["user_id"].is_null());
                }
            }
            return Ok(());
        }
        last = s;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(TestCaseError::fail(format!(
        "after step {step} ({op:?}) the session is {last}, the model expects {want:?} (ended: {})",
        m.ended
    )))
}

#[test]
fn random_sequences_of_joins_leaves_transfers_and_invitations_keep_the_session_rules() {
    // The broker in its own thread and actix system, for the whole run.
    let (app, rt) = TestApp::in_thread(|s| {
        // A lost connection is a departure at once: the model has no clock.
        s.sessions.reconnect_grace_secs = 0;
        s.sessions.max_live_per_account = 100_000;
        s.sessions.max_pending_invitations = 1_000;
    });
    let world = rt.block_on(async {
        let tenant = app.tenant("Acme").await;
        let mut tokens = vec![tenant.admin.clone()];
        for name in ["tina", "tom"] {
            tokens.push(app.user(&tenant, name, &["sessions"]).await.1);
        }
        let policy = app.policy(&tenant, "Chat", &["chat"]).await;
        World {
            app,
            tokens,
            policy,
        }
    });

    let config = Config {
        cases: model_cases(CASES),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let seed = [7u8; 32];
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let started = std::time::Instant::now();
    let result = runner.run(&proptest::collection::vec(op(), STEPS), |ops| {
        rt.block_on(run_case(&world, &ops))
    });
    println!(
        "session model: {} cases of {STEPS} steps in {:.1} s",
        model_cases(CASES),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    world.app.shutdown();
}
