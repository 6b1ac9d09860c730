//! The 2FA guard as a state machine, checked with proptest against the live broker: random
//! sequences of password steps (each sends a code by email), right and wrong guesses on any
//! code sent so far, and the clock moving on (every stored time of the user shifted back), for
//! a user with codes by email. After every step the answer must be the one the contract's
//! table gives: 3 wrong guesses burn a code, the 10th consecutive wrong guess locks the code
//! step for 15 minutes (every attempt meanwhile 429), at most 3 codes in 10 minutes, a code
//! lives 5 minutes and works once, and only a success resets the count.
//!
//! 256 cases of 40 steps, a fixed seed, shrunk on failure; each case a fresh user.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::helpers::model_cases;
use crate::helpers::{PASSWORD, Tenant, TestApp, last_mail_code};

const CASES: u32 = 256;
const STEPS: usize = 40;
const CODE_TTL: i64 = 5; // minutes
const SEND_CAP: usize = 3;
const SEND_WINDOW: i64 = 10; // minutes
const LOCK_AFTER: u32 = 10;
const BURN_AFTER: u32 = 3;
const LOCK_FOR: i64 = 15; // minutes

#[derive(Debug, Clone)]
enum Op {
    Login,
    /// A guess on the code picked by `n` among those sent so far.
    Guess {
        n: usize,
        right: bool,
    },
    /// The clock moves on by this many minutes.
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Login),
        2 => (0..4usize).prop_map(|n| Op::Guess { n, right: true }),
        7 => (0..4usize).prop_map(|n| Op::Guess { n, right: false }),
        1 => prop_oneof![Just(1i64), Just(4), Just(6), Just(11), Just(16)].prop_map(Op::Wait),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Used,
    Burned,
}

struct Code {
    challenge: String,
    code: String,
    wrong: u32,
    state: State,
    /// Model minutes since the case began.
    expires: i64,
}

#[derive(Default)]
struct Model {
    now: i64,
    codes: Vec<Code>,
    sent: Vec<i64>,
    failures: u32,
    locked_until: Option<i64>,
}

impl Model {
    fn locked(&self) -> bool {
        self.locked_until.is_some_and(|until| until > self.now)
    }
}

struct World {
    app: TestApp,
    tenant: Tenant,
}

fn code_of(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn password_step(app: &TestApp, username: &str) -> (u16, Value) {
    app.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await
}

/// Moves the user's clock on: every stored time of its code step shifted back by `minutes`.
async fn shift(app: &TestApp, user: &str, minutes: i64) {
    let db = app.db().await;
    let by = Duration::minutes(minutes);
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = support_broker::store::db::query_as(
        "SELECT id, created_at, expires_at FROM login_challenges WHERE user_id = ?",
    )
    .bind(user)
    .fetch_all(&db)
    .await
    .unwrap();
    for (id, created, expires) in rows {
        support_broker::store::db::query(
            "UPDATE login_challenges SET created_at = ?, expires_at = ? WHERE id = ?",
        )
        .bind(created - by)
        .bind(expires - by)
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    }
    let lock: Option<(Option<DateTime<Utc>>,)> = support_broker::store::db::query_as(
        "SELECT locked_until FROM code_guards WHERE user_id = ?",
    )
    .bind(user)
    .fetch_optional(&db)
    .await
    .unwrap();
    if let Some((Some(until),)) = lock {
        support_broker::store::db::query(
            "UPDATE code_guards SET locked_until = ? WHERE user_id = ?",
        )
        .bind(until - by)
        .bind(user)
        .execute(&db)
        .await
        .unwrap();
    }
    db.close().await;
}

async fn run_case(world: &World, case: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let app = &world.app;
    let username = format!("guarded-{case}");
    let email = format!("{username}@example.com");
    let (status, user) = app
        .post(
            &format!("/accounts/{}/users", world.tenant.id),
            &world.tenant.admin,
            json!({"username": username, "first_name": "G", "last_name": "G",
                   "email": email, "password": PASSWORD}),
        )
        .await;
    prop_assert_eq!(status, 201, "{}", user);
    let user_id = user["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .call(
            "PUT",
            &format!("/users/{user_id}/login-options"),
            Some(&world.tenant.admin),
            Some(json!({"two_factor": "email"})),
        )
        .await;
    prop_assert_eq!(status, 200);

    let mut m = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let context = format!("step {step} ({op:?})");
        match *op {
            Op::Login => {
                let (status, body) = password_step(app, &username).await;
                let recent = m.sent.iter().filter(|t| m.now - **t < SEND_WINDOW).count();
                if m.locked() {
                    prop_assert_eq!(
                        (status, code_of(&body)),
                        (429, Some("too_many_attempts")),
                        "{}",
                        context
                    );
                } else if recent >= SEND_CAP {
                    prop_assert_eq!(
                        (status, code_of(&body)),
                        (429, Some("too_many_codes")),
                        "{}",
                        context
                    );
                } else {
                    prop_assert_eq!(status, 200, "{}: {}", context, body);
                    m.sent.push(m.now);
                    m.codes.push(Code {
                        challenge: body["second_factor"]["challenge_id"]
                            .as_str()
                            .unwrap()
                            .into(),
                        code: last_mail_code(app, &email),
                        wrong: 0,
                        state: State::Open,
                        expires: m.now + CODE_TTL,
                    });
                }
            }
            Op::Guess { n, right } => {
                if m.codes.is_empty() {
                    continue;
                }
                let k = n % m.codes.len();
                let guess = if right {
                    m.codes[k].code.clone()
                } else {
                    // A wrong code of the right shape.
                    let c: u32 = m.codes[k].code.parse().unwrap();
                    format!("{:05}", (c + 1) % 100_000)
                };
                let (status, body) = app
                    .call(
                        "POST",
                        "/auth/verify",
                        None,
                        Some(json!({"challenge_id": m.codes[k].challenge, "code": guess})),
                    )
                    .await;
                let now = m.now;
                let locked = m.locked();
                let code = &mut m.codes[k];
                if locked {
                    prop_assert_eq!(
                        (status, code_of(&body)),
                        (429, Some("too_many_attempts")),
                        "{}",
                        context
                    );
                } else if code.state != State::Open || code.expires <= now {
                    prop_assert_eq!(
                        (status, code_of(&body)),
                        (410, Some("challenge_expired")),
                        "{}",
                        context
                    );
                } else if right {
                    prop_assert_eq!(status, 200, "{}: {}", context, body);
                    code.state = State::Used;
                    m.failures = 0;
                    m.locked_until = None;
                } else {
                    code.wrong += 1;
                    if code.wrong >= BURN_AFTER {
                        code.state = State::Burned;
                    }
                    m.failures += 1;
                    if m.failures >= LOCK_AFTER {
                        m.locked_until = Some(now + LOCK_FOR);
                        prop_assert_eq!(
                            (status, code_of(&body)),
                            (429, Some("too_many_attempts")),
                            "{}",
                            context
                        );
                    } else {
                        prop_assert_eq!(
                            (status, code_of(&body)),
                            (401, Some("invalid_code")),
                            "{}",
                            context
                        );
                    }
                }
            }
            Op::Wait(minutes) => {
                shift(app, &user_id, minutes).await;
                m.now += minutes;
            }
        }
    }
    Ok(())
}

#[test]
fn random_sequences_of_codes_guesses_and_waits_keep_the_2fa_caps() {
    let (app, rt) = TestApp::in_thread(|s| {
        s.auth.login_attempts_per_minute = 100_000;
        s.auth.login_attempts_per_minute_per_address = 1_000_000;
    });
    let tenant = rt.block_on(app.tenant("Acme"));
    let world = World { app, tenant };
    let config = Config {
        cases: model_cases(CASES),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[23u8; 32]),
    );
    let started = std::time::Instant::now();
    let case = std::cell::Cell::new(0usize);
    let result = runner.run(&proptest::collection::vec(op(), STEPS), |ops| {
        case.set(case.get() + 1);
        rt.block_on(run_case(&world, case.get(), &ops))
    });
    println!(
        "2fa guard model: {} cases of {STEPS} steps in {:.1} s",
        model_cases(CASES),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    world.app.shutdown();
}
