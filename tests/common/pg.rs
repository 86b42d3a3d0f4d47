//! A real PostgreSQL cluster for tests and benchmarks, started from the
//! distribution's server binaries in a scratch directory on loopback, and
//! stopped on drop. It fails loudly when it cannot start: a test that needs
//! PostgreSQL never passes without it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// A PostgreSQL cluster in a directory of its own.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
    _scratch: Option<tempfile::TempDir>,
}

/// The newest server binaries under /usr/lib/postgresql (or `PG_BIN`).
pub fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().expect(
        "PostgreSQL's server binaries under /usr/lib/postgresql/*/bin \
         (apt-get install -y postgresql, as .ci/run does) or PG_BIN",
    )
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("its address").port()
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> String {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Process::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Process::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// A new cluster in a fresh scratch directory.
    pub fn start_scratch() -> Cluster {
        let scratch = tempfile::Builder::new()
            .prefix("parley-pg-")
            .tempdir()
            .expect("scratch directory");
        let mut c = Cluster::start(scratch.path(), &[]);
        c._scratch = Some(scratch);
        c
    }

    /// A new cluster in `dir` (emptied first), listening on 127.0.0.1 and a
    /// socket in `dir`, with `settings` (`name=value`) added.
    pub fn start(dir: &Path, settings: &[&str]) -> Cluster {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("cluster dir");
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to `postgres`.
            let ok = Process::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status();
            assert!(
                ok.map(|s| s.success()).unwrap_or(false),
                "chown the cluster dir to postgres"
            );
        }
        let c = Cluster {
            bin: pg_bin(),
            dir: dir.to_path_buf(),
            port: free_port(),
            as_postgres,
            _scratch: None,
        };
        let data = c.data_dir();
        let data = data.to_str().expect("utf-8 path");
        c.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on -c max_connections=300",
            c.port,
            c.dir.display()
        );
        for s in settings {
            opts.push_str(" -c ");
            opts.push_str(s);
        }
        let log = c.dir.join("server.log");
        c.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &opts,
                "-w",
                "-t",
                "120",
                "start",
            ],
        );
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A libpq connection string for database `db`, over TCP on loopback.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The same over the server's Unix socket (as `psql` and `pgbench`
    /// here connect).
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.display(),
            self.port
        )
    }

    fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.dir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    /// Runs `sql` in database `postgres` and returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let mut args = self.conn_args();
        args.extend([
            "-X".into(),
            "-q".into(),
            "-t".into(),
            "-A".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-c".into(),
            sql.into(),
            db.into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("psql", &refs)
    }

    /// Runs a server tool (pgbench, …) with the connection arguments first.
    pub fn tool(&self, tool: &str, args: &[String]) -> String {
        let mut all = self.conn_args();
        all.extend(args.iter().cloned());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(tool, &refs)
    }

    /// Stops the server at once (`-m immediate`: as a crash would).
    pub fn kill(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or("."),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap_or("."),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
            );
        });
    }
}
