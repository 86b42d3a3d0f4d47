//! A PostgreSQL cluster run by Patroni (Debian's `patroni`) with one
//! `etcd` member as its store, all on loopback in `target/tmp/patroni`
//! (kept for whoever reads a failure): a primary and a synchronous standby
//! (`synchronous_mode: true`).
//! `tools/pg-failover-test` (and `.ci/run`) install the packages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use super::pg::{free_port, pg_bin};

/// Bound on waiting for a member to lead or to follow in sync.
pub const HA_LIVENESS_S: u64 = 120;
/// The superuser's password (the cluster trusts loopback; it is there to
/// check that no parley message repeats it).
pub const PASSWORD: &str = "pat-s3cret";

/// A child process killed on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One Patroni member and the PostgreSQL it runs.
pub struct Member {
    pub name: String,
    pub pg_port: u16,
    api_port: u16,
    dir: PathBuf,
    patroni: Option<Owned>,
}

pub struct HaCluster {
    pub members: Vec<Member>,
    _etcd: Owned,
    dir: PathBuf,
}

/// The uid and gid of `postgres` when running as root (initdb refuses root).
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Process::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user exists (apt-get install postgresql)")
    };
    Some((id("-u"), id("-g")))
}

fn spawn_owned(mut cmd: Process, log: &Path) -> Owned {
    use std::os::unix::process::CommandExt as _;
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    let file = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdout(Stdio::from(file.try_clone().expect("log file")))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e} (apt-get install patroni etcd-server)"));
    Owned(child)
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

impl Member {
    fn config(&self, etcd_port: u16) -> String {
        let dir = self.dir.display();
        format!(
            "scope: parley
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 200
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
    - local all all trust
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {dir}/data
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    replication: {{username: replicator, password: rep}}
    superuser: {{username: postgres, password: {PASSWORD}}}
    rewind: {{username: postgres, password: {PASSWORD}}}
  parameters:
    unix_socket_directories: '{dir}'
",
            name = self.name,
            api = self.api_port,
            port = self.pg_port,
            bin = pg_bin().display(),
        )
    }

    /// Starts (or restarts) Patroni for this member.
    pub fn start(&mut self, starts: usize) {
        let log = self.dir.join(format!("patroni-{starts}.log"));
        let mut cmd = Process::new("patroni");
        cmd.arg(self.dir.join("patroni.yml"));
        self.patroni = Some(spawn_owned(cmd, &log));
    }

    /// True when this member's Patroni says it leads.
    pub fn leads(&self) -> bool {
        http_get(self.api_port, "/leader").is_some_and(|(s, _)| s == 200)
    }

    /// The machine dies: Patroni and its PostgreSQL killed with SIGKILL.
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        self.patroni = None; // SIGKILL
        if let Some(pid) = pid {
            // SAFETY: signalling a process by pid; at worst it is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl HaCluster {
    /// etcd and two members; returns once one leads and the other follows
    /// it as its synchronous standby.
    pub fn start() -> HaCluster {
        // Kept after the test for whoever reads a failure; emptied first.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("patroni");
        let _ = std::fs::remove_dir_all(&dir);
        let (client, peer) = (free_port(), free_port());
        std::fs::create_dir_all(dir.join("etcd")).expect("etcd dir");
        let mut members: Vec<Member> = ["pg0", "pg1"]
            .iter()
            .map(|name| Member {
                name: (*name).to_owned(),
                pg_port: free_port(),
                api_port: free_port(),
                dir: dir.join(name),
                patroni: None,
            })
            .collect();
        for m in &members {
            std::fs::create_dir_all(&m.dir).expect("member dir");
            // PostgreSQL wants its data directory private.
            std::fs::write(m.dir.join("patroni.yml"), m.config(client)).expect("config");
        }
        if postgres_ids().is_some() {
            let ok = Process::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "chown the scratch dir");
        }
        let mut etcd = Process::new("etcd");
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        etcd.args(["--name", "e0", "--data-dir"])
            .arg(dir.join("etcd/data"))
            .args(["--listen-client-urls", &url(client)])
            .args(["--advertise-client-urls", &url(client)])
            .args(["--listen-peer-urls", &url(peer)])
            .args(["--initial-advertise-peer-urls", &url(peer)])
            .args(["--initial-cluster", &format!("e0={}", url(peer))]);
        let etcd = spawn_owned(etcd, &dir.join("etcd.log"));
        let mut c = HaCluster {
            members: Vec::new(),
            _etcd: etcd,
            dir,
        };
        members[0].start(0);
        c.members = members;
        c.wait(|c| c.leader() == Some(0), "pg0 to lead");
        c.members[1].start(0);
        c.wait_in_sync();
        c
    }

    /// The member that leads, if one does.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|i| self.members[*i].leads())
    }

    /// Waits until a member leads and every other follows it as a running
    /// synchronous standby on the leader's timeline, with no lag.
    pub fn wait_in_sync(&self) {
        self.wait(
            |c| {
                let Some(l) = c.leader() else { return false };
                let Some((200, body)) = http_get(c.members[l].api_port, "/cluster") else {
                    return false;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
                    return false;
                };
                let Some(members) = v["members"].as_array() else {
                    return false;
                };
                let leader = members.iter().find(|m| m["role"] == "leader");
                let timeline = leader.map(|m| m["timeline"].clone());
                members.len() == c.members.len()
                    && members.iter().all(|m| {
                        m["state"] == "running"
                            && Some(m["timeline"].clone()) == timeline
                            && (m["role"] == "leader"
                                || (m["role"] == "sync_standby" && m["lag"] == 0))
                    })
            },
            "a leader with a running synchronous standby on its timeline",
        );
    }

    /// Waits until a member other than `not` leads.
    pub fn wait_promoted(&self, not: usize) {
        self.wait(
            |c| c.leader().is_some_and(|l| l != not),
            "the standby to be promoted",
        );
    }

    fn wait(&self, done: impl Fn(&HaCluster) -> bool, what: &str) {
        for _ in 0..HA_LIVENESS_S * 5 {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "waited {HA_LIVENESS_S} s for {what}; logs in {}",
            self.dir.display()
        );
    }

    /// A multi-host connection string that finds the primary.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.pg_port))
            .collect();
        format!(
            "postgresql://postgres:{PASSWORD}@{}/postgres?target_session_attrs=read-write&connect_timeout=2",
            hosts.join(",")
        )
    }
}
