//! The operator console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini): an escalation
//! created over the API appears in the inbox without a reload, a person
//! settles it with the modified-values option and a rationale, the API and
//! the log show it, the audit view names the person and the rationale, and a
//! wrong token is refused. Screenshots go to `target/console-screenshots/`.
//!
//! Needs the browser, so `cargo test` lists it ignored and `.ci/run`
//! installs Chromium and runs it (`cargo test --test console -- --ignored`).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use common::server::{ledger, parley, token, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver; fails loudly if it is not installed or does not listen.
fn chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Process::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (apt-get install chromium chromium-driver; .ci/run does)");
    let driver = Driver(child);
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (driver, port);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ];
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": "/usr/bin/chromium", "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("start headless Chromium through chromedriver")
}

fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sizes the window so the page's viewport is `w`×`h`.
async fn viewport(c: &Client, w: u32, h: u32) {
    c.set_window_size(w, h).await.unwrap();
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (iw, ih) = (
        inner[0].as_u64().unwrap() as u32,
        inner[1].as_u64().unwrap() as u32,
    );
    c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
        .await
        .unwrap();
}

async fn shot(c: &Client, name: &str, (w, h): (u32, u32)) {
    viewport(c, w, h).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// Waits (up to 15 s) for an element, without reloading the page.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// The text of the element `css` names (it must be there).
async fn text(c: &Client, css: &str) -> String {
    let e = c.find(Locator::Css(css)).await;
    let e = e.unwrap_or_else(|err| panic!("{css}: {err}"));
    e.text().await.unwrap()
}

/// Clicks the element `css` names (it must be there).
async fn click(c: &Client, css: &str) {
    let e = c.find(Locator::Css(css)).await;
    let e = e.unwrap_or_else(|err| panic!("{css}: {err}"));
    e.click().await.unwrap();
}

async fn sign_in(c: &Client, token: &str) {
    let input = wait_for(c, "#token-input").await;
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    click(c, "#signin-button").await;
}

const BIG_CUT: &str = r#"{"producer":"pricing","kind":"intend","intention":{"action":{"type":"set_price","sku":"S1","price_minor":1200},"reasoning":"clear the stock before the new model","impact":{"revenue_minor":-900000,"margin_minor":-800000},"objective":"sales-growth"}}"#;
const RATIONALE: &str = "Too deep at once: take the scaled cut and review next week";

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run installs them and runs it"]
fn a_person_settles_an_escalation_in_the_console() {
    let base = tempfile::tempdir().unwrap();
    let dir = ledger(base.path());
    let pricing = token(&dir, "pricing", "agent");
    let maya = token(&dir, "maya", "human");
    let server = Server::start(&dir);
    let url = format!("http://{}/", server.addr);
    let (_driver, port) = chromedriver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let c = browser(port).await;
        c.goto(&url).await.unwrap();
        sign_in(&c, &maya).await;
        wait_for(&c, "#inbox-empty").await;

        // An escalation made over the API appears without a reload.
        let (status, _, answer) = server.post(Some(&pricing), BIG_CUT);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["decision"]["outcome"]["kind"], "escalated",
            "{answer}"
        );
        let id = answer["seq"].as_u64().unwrap();
        let card = wait_for(&c, &format!("#inbox-list li[data-id='{id}']")).await;
        let card_text = card.text().await.unwrap();
        assert!(
            card_text.contains("sku:S1") && card_text.contains("pricing"),
            "{card_text}"
        );
        shot(&c, "inbox-1280x800", (1280, 800)).await;
        shot(&c, "inbox-390x844", (390, 844)).await;
        viewport(&c, 1280, 800).await;

        // Open it, choose the modified values, write why, submit.
        card.find(Locator::Css("a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(&c, "#decide-form").await;
        let sides = text(&c, "#sides").await;
        assert!(
            sides.contains("clear the stock before the new model"),
            "{sides}"
        );
        let context = text(&c, "#context").await;
        assert!(
            context.contains("£20.00") && context.contains("£10.00"),
            "{context}"
        );
        shot(&c, "detail-1280x800", (1280, 800)).await;
        click(&c, "input[data-choice='approve-modified']").await;
        // Without a rationale the page refuses to submit: nothing recorded.
        click(&c, "#decide").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(c.find(Locator::Css("#decision-result")).await.is_err());
        let path = format!("/v1/escalations/{id}");
        let (_, _, still) = server.request("GET", &path, Some(&pricing), "");
        assert!(still.contains("\"status\":\"open\""), "{still}");
        let rationale = c.find(Locator::Css("#rationale")).await.unwrap();
        rationale.send_keys(RATIONALE).await.unwrap();
        click(&c, "#decide").await;
        let result = wait_for(&c, "#decision-result").await.text().await.unwrap();
        assert!(result.contains("Recorded as seq"), "{result}");
        assert!(result.contains("modified"), "{result}");

        // The activity feed and the audit view.
        c.goto(&format!("{url}#/activity")).await.unwrap();
        wait_for(&c, "#feed li.decision").await;
        shot(&c, "activity-1280x800", (1280, 800)).await;
        c.goto(&format!("{url}#/audit?entity=sku:S1&field=price"))
            .await
            .unwrap();
        let audit = wait_for(&c, "#audit .human-name").await;
        assert_eq!(audit.text().await.unwrap(), "maya");
        let chain = text(&c, "#audit").await;
        assert!(chain.contains(RATIONALE), "{chain}");
        shot(&c, "audit-1280x800", (1280, 800)).await;

        // A wrong token is refused on the page.
        click(&c, "#signout").await;
        sign_in(&c, "pk_not-a-real-token").await;
        let error = wait_for(&c, "#signin-error").await;
        c.wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(
                "//*[@id='signin-error' and contains(., 'refused')]",
            ))
            .await
            .unwrap_or_else(|_| panic!("no refusal shown"));
        assert!(error.text().await.unwrap().contains("refused"));
        assert!(c.find(Locator::Css("#nav[hidden]")).await.is_ok());
        c.close().await.unwrap();
        id
    });

    // The API shows it settled, with the rationale; the log holds the resolution.
    let (status, _, text) =
        server.request("GET", &format!("/v1/escalations/{id}"), Some(&pricing), "");
    assert_eq!(status, 200, "{text}");
    let views: Vec<Value> = serde_json::from_str(&text).unwrap();
    let last = views.last().unwrap();
    assert_eq!(last["status"], "resolved", "{last}");
    assert_eq!(last["closed_by"]["resolution"]["human"], "maya");
    assert_eq!(last["closed_by"]["resolution"]["rationale"], RATIONALE);
    assert_eq!(last["closed_by"]["outcome"], "modified");
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
    let log = parley(
        &[
            "log",
            "--data",
            dir.to_str().unwrap(),
            "--kind",
            "human_resolution",
            "--json",
        ],
        "",
    );
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{log}");
    assert_eq!(records[0]["producer"], "maya");
    assert_eq!(records[0]["body"]["rationale"], RATIONALE);
    assert_eq!(records[0]["body"]["intention"], id);
}
