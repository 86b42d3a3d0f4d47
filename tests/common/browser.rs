//! A headless Chromium for the console tests (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini): starting it,
//! screenshots into `target/console-screenshots/`, waiting for elements.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

pub struct Driver(Child);

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
pub fn chromedriver() -> (Driver, u16) {
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

pub async fn browser(port: u16) -> Client {
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

pub fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sizes the window so the page's viewport is `w`×`h`.
pub async fn viewport(c: &Client, w: u32, h: u32) {
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

pub async fn shot(c: &Client, name: &str, (w, h): (u32, u32)) {
    viewport(c, w, h).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// Waits (up to 15 s) for an element, without reloading the page.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// The text of the element `css` names (it must be there).
pub async fn text(c: &Client, css: &str) -> String {
    let e = c.find(Locator::Css(css)).await;
    let e = e.unwrap_or_else(|err| panic!("{css}: {err}"));
    e.text().await.unwrap()
}

/// Clicks the element `css` names (it must be there).
pub async fn click(c: &Client, css: &str) {
    let e = c.find(Locator::Css(css)).await;
    let e = e.unwrap_or_else(|err| panic!("{css}: {err}"));
    e.click().await.unwrap();
}

pub async fn sign_in(c: &Client, token: &str) {
    let input = wait_for(c, "#token-input").await;
    input.clear().await.unwrap();
    input.send_keys(token).await.unwrap();
    click(c, "#signin-button").await;
}
