//! What a node does when its PostgreSQL goes away: `/readyz` says so (a load balancer stops
//! sending it traffic) and says it is back once the database is.

use std::time::Duration;

use crate::helpers::*;

/// Runs `sql` on the server's maintenance database.
async fn on_server(server: &str, sql: String) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server)
        .await
        .expect("the PostgreSQL server answers");
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql))
        .await
        .expect("the statement runs");
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: scripts/postgres-suite runs it"]
async fn readyz_answers_503_while_the_database_is_unreachable_and_200_once_it_is_back() {
    let server = postgres_server().expect("SB_TEST_POSTGRES_URL names the PostgreSQL server");
    let app = TestApp::spawn().await;
    let name = app.database.as_ref().expect("on PostgreSQL").name.clone();
    let ready = || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready().await, 200);

    // The database refuses connections, and the broker's are cut.
    on_server(
        &server,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    )
    .await;
    on_server(
        &server,
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .await;
    let started = std::time::Instant::now();
    assert!(
        eventually(|| async { ready().await == 503 }).await,
        "readyz says the node is not ready"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a probe gets its answer in time, not after the pool's timeout"
    );
    let (status, body) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "store_unreachable");
    // Liveness is another question: the process is alive.
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    on_server(
        &server,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .await;
    assert!(
        eventually(|| async { ready().await == 200 }).await,
        "ready again once the database is back"
    );
    // And it works again: a login reaches the database.
    app.login("admin", ADMIN_PASSWORD).await;
}
