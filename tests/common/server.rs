//! A real `parley serve` on a loopback port, driven by a plain HTTP/1.1
//! client, and the CLI around it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use super::parley_bin;

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    /// A failed test must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(dir, extra, Stdio::inherit(), "error")
    }

    /// A server whose log (at `PARLEY_LOG=debug`) goes to the file `log`.
    pub fn start_logged(dir: &Path, extra: &[&str], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("create the server's log file");
        Server::spawn(dir, extra, Stdio::from(file), "debug")
    }

    fn spawn(dir: &Path, extra: &[&str], stderr: Stdio, level: &str) -> Server {
        let place = ["--data", dir.to_str().unwrap()];
        Server::spawn_at(&place, extra, stderr, level)
    }

    /// A node of a cluster on ledger `ledger` in the PostgreSQL `store`; its
    /// log (at `PARLEY_LOG=info`) goes to the file `log`.
    pub fn start_node(store: &str, ledger: &str, extra: &[&str], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("create the node's log file");
        let place = ["--store", store, "--ledger", ledger];
        Server::spawn_at(&place, extra, Stdio::from(file), "info")
    }

    fn spawn_at(place: &[&str], extra: &[&str], stderr: Stdio, level: &str) -> Server {
        let mut child = Process::new(parley_bin())
            .env("PARLEY_LOG", level)
            .arg("serve")
            .args(place)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start parley serve");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("parley serve: listening on http://")
            .unwrap_or_else(|| panic!("parley serve did not start: {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// One request; returns (status, content type, body); status 0 when the
    /// connection failed (the server is stopping).
    /// One request with the given extra header lines (each ending `\r\n`);
    /// returns (status, the response's head, body).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (
            head[9..12].parse().unwrap(),
            head.to_owned(),
            body.to_owned(),
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String, String) {
        request_at(&self.addr, method, path, token, body)
    }

    pub fn post(&self, token: Option<&str>, body: &str) -> (u16, String, serde_json::Value) {
        let (status, ctype, body) = self.request("POST", "/v1/commands", token, body);
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, ctype, json)
    }

    /// Opens the stream and reads `n` events: (id, event name).
    pub fn events(
        &self,
        token: &str,
        query: &str,
        last_id: Option<u64>,
        n: usize,
    ) -> Vec<(u64, String)> {
        let mut s = self.connect();
        let last = last_id.map_or(String::new(), |i| format!("Last-Event-ID: {i}\r\n"));
        write!(
            s,
            "GET /v1/stream{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{last}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let (mut out, mut id, mut line) = (Vec::new(), None, String::new());
        while out.len() < n {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "stream ended early"
            );
            let l = line.trim_end();
            if let Some(v) = l.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(e) = l.strip_prefix("event: ") {
                out.push((id.take().unwrap_or(0), e.to_owned()));
            }
        }
        out
    }

    pub fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        Process::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        let out = std::process::Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        };
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// Runs `parley args…` through the one runner; it must succeed. Its stdout.
pub fn parley(args: &[&str], stdin: &str) -> String {
    let ran = super::parley(args, stdin);
    assert_eq!(ran.code, Some(0), "parley {args:?} failed: {}", ran.stderr);
    ran.stdout
}

pub fn records(dir: &Path) -> u64 {
    let out = parley(&["verify", "--data", dir.to_str().unwrap(), "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["records"].as_u64().unwrap()
}

pub const SETUP: &str = r#"{"producer":"admin","kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"marketing","domain":"marketing","priority":40}}
{"producer":"admin","kind":"agent_registered","profile":{"agent":"merchandising","domain":"merchandising","priority":45}}
{"producer":"admin","kind":"human_registered","human":"maya"}
{"producer":"merchandising","kind":"catalog","sku":"S1","category":"audio","cost_minor":1000,"price_minor":2000,"stock":5,"lifecycle":"active"}
"#;

/// A ledger with the agents, a human and a sku the tests use.
pub fn ledger(base: &Path) -> std::path::PathBuf {
    let dir = base.join("ledger");
    parley(&["run", "--data", dir.to_str().unwrap(), "-"], SETUP);
    dir
}

/// A new token for `name` in `role` (no server may hold `dir`).
pub fn token(dir: &Path, name: &str, role: &str) -> String {
    let d = dir.to_str().unwrap();
    let args = [
        "token", "create", "--data", d, "--name", name, "--role", role,
    ];
    parley(&args, "").trim().to_owned()
}

/// A token for `name` in `role`, granted over the API by `admin` (while a
/// server holds the ledger).
pub fn token_via(server: &Server, admin: &str, name: &str, role: &str) -> String {
    let body = serde_json::json!({"name": name, "role": role}).to_string();
    let (status, _, text) = server.request("POST", "/v1/tokens", Some(admin), &body);
    assert_eq!(status, 201, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    answer["token"].as_str().unwrap().to_owned()
}

/// One request to the server at `addr`; returns (status, content type,
/// body); status 0 when the connection failed (the server is stopping).
pub fn request_at(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut text = String::new();
    if sent.is_err() || s.read_to_string(&mut text).is_err() {
        return (0, String::new(), String::new());
    }
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, String::new(), String::new());
    };
    let status = head[9..12].parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}
