//! Browser tests: the web console in Debian's Chromium, driven over WebDriver (chromedriver)
//! against the real broker. Each page a test visits is saved as a PNG under
//! `target/screenshots/`.
//!
//! They need `chromium` and `chromedriver` (`scripts/browsers` installs them when missing); without
//! them the tests fail with a message saying so rather than pass unseen.

mod access;
mod account;
mod admin;
mod customer;
mod guest;
mod operator;
mod partner;
mod password;
mod platform;
mod self_service;
mod workspace;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

/// At most this many Chromium instances at once (the CI machine has 2 cores).
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// A browser test that runs longer than this fails (and its browsers are killed) rather than
/// hang the suite.
const TEST_DEADLINE: Duration = Duration::from_secs(240);

pub async fn within_deadline<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .expect("the browser test finished within its deadline")
}

/// How long a page may take to show what a test waits for (generous: on the 2-core CI machine
/// the browser tests share the cores with argon2 logins and the model tests).
const PATIENCE: Duration = Duration::from_secs(30);

fn program(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "browser tests need {path} ({env}): run scripts/browsers, or apt-get install chromium chromium-driver"
    );
    path
}

/// A chromedriver process (its own process group, so Chromium dies with it) that hands out
/// browser windows with separate storage.
pub struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
    _permit: SemaphorePermit<'static>,
}

impl Driver {
    pub async fn start() -> Self {
        let permit = BROWSERS.acquire().await.expect("semaphore open");
        let driver = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts")
        };
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            child,
            url,
            profiles: tempfile::tempdir().expect("temp dir"),
            _permit: permit,
        }
    }

    /// A new browser (its own profile: storage is not shared with other windows).
    pub async fn browser(&self, lang: &str) -> Browser {
        let chromium = program("CHROME_BIN", "/usr/bin/chromium");
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("profile dir");
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,1000".into(),
            format!("--lang={lang}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {"intl.accept_languages": lang},
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session");
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browsers it started.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("page loads");
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Clicks `css`; when the page re-renders under the click (a stale element), finds it
    /// again.
    pub async fn click(&self, css: &str) {
        for attempt in 0.. {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) if is_stale(&e) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Types into the input `css` (after clearing it), again into the new one when the page
    /// re-rendered meanwhile.
    pub async fn fill(&self, css: &str, text: &str) {
        for attempt in 0.. {
            let input = self.find(css).await;
            let typed = match input.clear().await {
                Ok(()) => input.send_keys(text).await,
                Err(e) => Err(e),
            };
            match typed {
                Ok(()) => return,
                Err(e) if is_stale(&e) && attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("typing into {css}: {e}"),
            }
        }
    }

    /// Waits until the text of `css` contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..(PATIENCE.as_millis() / 100) {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never showed {needle:?}; last text: {last:?}")
    }

    /// Waits until `script` (a JS expression) is truthy.
    pub async fn wait_js(&self, script: &str) -> Value {
        let code = format!("return ({script});");
        for _ in 0..(PATIENCE.as_millis() / 100) {
            if let Ok(v) = self.client.execute(&code, vec![]).await
                && !v.is_null()
                && v != json!(false)
                && v != json!(0)
                && v != json!("")
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never true: {script}")
    }

    /// Saves the page as `target/screenshots/{name}.png`, after checking the basics of an
    /// accessible page: every form control has a label, every button a name, every image an
    /// alternative text, and the document a language.
    pub async fn shot(&self, name: &str) {
        let unnamed = self
            .client
            .execute(
                "const missing = [];
                 for (const el of document.querySelectorAll('input, select, textarea')) {
                   if (el.type === 'hidden' || el.hidden || el.closest('[hidden]')) continue;
                   if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) missing.push(el.outerHTML.slice(0, 80));
                 }
                 for (const el of document.querySelectorAll('button, a[href]')) {
                   if (!el.textContent.trim() && !el.getAttribute('aria-label')) missing.push(el.outerHTML.slice(0, 80));
                 }
                 for (const el of document.querySelectorAll('img')) {
                   if (!el.hasAttribute('alt')) missing.push(el.outerHTML.slice(0, 80));
                 }
                 if (!document.documentElement.lang) missing.push('<html> without lang');
                 return missing;",
                vec![],
            )
            .await
            .expect("accessibility check runs");
        assert_eq!(
            unnamed,
            json!([]),
            "{name}: controls without an accessible name"
        );
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }

    /// Signs in on the console's login page.
    pub async fn login(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/")).await;
        self.fill("[data-testid=login-form] input[name=username]", username)
            .await;
        self.fill("[data-testid=login-form] input[name=password]", password)
            .await;
        self.click("[data-testid=login-form] button[type=submit]")
            .await;
    }

    /// Signs in and waits for the console (the user's name in the header).
    pub async fn login_console(&self, base: &str, username: &str, password: &str) {
        self.login(base, username, password).await;
        self.wait_text("[data-testid=who]", username).await;
    }

    /// Confirms the open dialog.
    pub async fn confirm(&self) {
        self.click("dialog[open] [data-confirm]").await;
        self.wait_js("!document.querySelector('dialog[open]')")
            .await;
    }

    /// Picks the option `value` of the select `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} has no option {value}: {e}"));
    }

    /// A signed-in technician opens a session on `subject` from the console, waits until it
    /// is connected, and invites `guest` under the security policy `policy`: the one-time URL.
    pub async fn open_session_and_invite(
        &self,
        subject: &str,
        guest: &str,
        policy: &str,
    ) -> String {
        self.fill("[data-testid=new-session] input[name=subject]", subject)
            .await;
        self.click("[data-testid=new-session] button[type=submit]")
            .await;
        self.find("[data-testid=live-status][data-connected=true]")
            .await;
        self.fill("[data-testid=invite-form] input[name=guest_name]", guest)
            .await;
        self.choose("[data-testid=invite-form] select[name=policy_id]", policy)
            .await;
        self.click("[data-testid=invite-form] button[type=submit]")
            .await;
        self.find("[data-testid=invitation-url]")
            .await
            .prop("value")
            .await
            .unwrap()
            .expect("the one-time URL")
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    e.to_string().contains("stale element")
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}
