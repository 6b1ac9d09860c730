//! The vendored, patched actix-http: really in use, on the version the patch was made for, and
//! the smaller resting buffers still take requests whose headers are larger than them.

use std::path::Path;

use crate::helpers::TestApp;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `[[package]]` entry of `name` in Cargo.lock (all of them, for several versions).
fn locked(lock: &str, name: &str) -> Vec<String> {
    lock.split("[[package]]")
        .filter(|p| p.contains(&format!("\nname = \"{name}\"\n")))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_lock_file_builds_the_vendored_actix_http_and_nothing_else() {
    let lock = read("Cargo.lock");
    let http = locked(&lock, "actix-http");
    assert_eq!(http.len(), 1, "one actix-http in the build: {http:?}");
    assert!(
        !http[0].contains("source = "),
        "actix-http comes from vendor/ (a path), not from the registry: an actix-web upgrade \
         that needs another actix-http must bring a new vendored copy\n{}",
        http[0]
    );
    let vendored = read("vendor/actix-http/Cargo.toml");
    let version = http[0]
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert!(
        vendored.contains(&format!("\nversion = \"{version}\"")),
        "vendor/actix-http is {version}"
    );
    assert_eq!(version, "3.20.0", "the patch file was made against 3.20.0");
    let web = locked(&lock, "actix-web");
    assert!(
        web.len() == 1 && web[0].contains("version = \"4.18.1\""),
        "{web:?}"
    );
    assert!(
        read("Cargo.toml").contains("actix-web = { version = \"=4.18.1\""),
        "actix-web is pinned exactly"
    );
}

#[test]
fn the_vendored_copy_is_upstream_with_the_patch_file_applied() {
    let patch = read("vendor/actix-http.patch");
    let dispatcher = read("vendor/actix-http/src/h1/dispatcher.rs");
    let added: Vec<&str> = patch
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| &l[1..])
        .collect();
    let removed: Vec<&str> = patch
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .map(|l| &l[1..])
        .collect();
    assert!(!added.is_empty() && !removed.is_empty());
    for line in &added {
        assert!(dispatcher.contains(line), "patched in: {line}");
    }
    for line in &removed {
        assert!(!dispatcher.contains(line), "patched out: {line}");
    }
}

/// The resting read buffer is 4 KiB; headers larger than that (big cookies, long bearer
/// tokens behind a proxy) must still parse, up to actix's own limit.
#[actix_web::test]
async fn a_request_with_headers_larger_than_the_buffer_still_parses() {
    let app = TestApp::spawn().await;
    for size in [5 * 1024, 12 * 1024, 24 * 1024] {
        let filler = "x".repeat(1000);
        let mut req = app.http.get(app.url("/healthz"));
        for i in 0..size / 1000 {
            req = req.header(format!("x-filler-{i}"), &filler);
        }
        let res = req.send().await.expect("request sent");
        assert_eq!(res.status(), 200, "{size} bytes of headers");
    }
    // And an authenticated call with one long header.
    let (status, _) = {
        let res = app
            .http
            .get(app.url("/me"))
            .header("x-long", "y".repeat(6000))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), ())
    };
    assert_eq!(status, 200);
}
