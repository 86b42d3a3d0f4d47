//! Where a command's ledger lives: a data directory (the segment engine) or
//! a ledger in PostgreSQL (`--store URL --ledger NAME`). Every command that
//! opens a ledger takes these; segment-only concerns stay behind `Dir`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};

use crate::ledger::{Ledger, OpenReport, Options};
use crate::log::postgres::{PgLog, PgOptions, PgReader, PgStore};
use crate::reader::LogView;

/// `--data DIR`, or `--store URL --ledger NAME`.
#[derive(clap::Args, Clone, Debug, Default)]
pub(super) struct Place {
    /// The ledger's data directory (or set PARLEY_DATA). With --store on
    /// `serve`: where the node caches each ledger's derived state.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A PostgreSQL connection string holding the ledger instead of a
    /// directory, e.g. postgres://parley@db1,db2/shop?target_session_attrs=read-write
    /// (or set PARLEY_STORE; its password is never printed).
    #[arg(long)]
    store: Option<String>,
    /// The ledger's name in the store (or set PARLEY_LEDGER); `serve`
    /// takes it more than once to serve several ledgers.
    #[arg(long)]
    ledger: Vec<String>,
}

/// A resolved place.
pub(super) enum At {
    Dir(PathBuf),
    Pg { store: Box<PgStore>, ledger: String },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Place {
    /// The place named on the command line, else by the environment
    /// (PARLEY_DATA, or PARLEY_STORE with PARLEY_LEDGER); the command line
    /// wins over the environment.
    pub(super) fn at(&self) -> Result<At> {
        let mut all = self.at_all()?;
        if all.len() != 1 {
            bail!("this command works on one ledger: give --ledger once");
        }
        Ok(all.remove(0))
    }

    /// For `serve`: every place named, and with `--store`, a `--data DIR`
    /// given as well is where the node keeps each ledger's derived state
    /// (a cache, rebuilt from the log when it does not match).
    pub(super) fn for_serve(&self) -> Result<(Vec<At>, Option<PathBuf>)> {
        let store =
            self.store.is_some() || (!self.ledger.is_empty() && env("PARLEY_STORE").is_some());
        match (&self.data, store) {
            (Some(cache), true) => {
                let without = Place {
                    data: None,
                    ..self.clone()
                };
                Ok((without.at_all()?, Some(cache.clone())))
            }
            _ => Ok((self.at_all()?, None)),
        }
    }

    /// Every place named (several only for `--store` with `--ledger`
    /// repeated), each ledger once.
    pub(super) fn at_all(&self) -> Result<Vec<At>> {
        if let Some(d) = &self.data {
            if self.store.is_some() || !self.ledger.is_empty() {
                bail!("give --data DIR or --store URL --ledger NAME, not both");
            }
            return Ok(vec![At::Dir(d.clone())]);
        }
        let store = match (&self.store, self.ledger.first()) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(_)) => {
                Some(env("PARLEY_STORE").context("--ledger needs --store URL (or PARLEY_STORE)")?)
            }
            (None, None) => match (env("PARLEY_DATA"), env("PARLEY_STORE")) {
                (Some(_), Some(_)) => bail!(
                    "both PARLEY_DATA and PARLEY_STORE are set: give --data DIR or --store URL"
                ),
                (Some(d), None) => return Ok(vec![At::Dir(PathBuf::from(d))]),
                (None, store) => store,
            },
        };
        let Some(url) = store else {
            bail!("give --data DIR or --store URL --ledger NAME (or set PARLEY_DATA, or PARLEY_STORE and PARLEY_LEDGER)")
        };
        let store = Box::new(PgStore::parse(&url)?);
        let names = match env("PARLEY_LEDGER") {
            Some(name) if self.ledger.is_empty() => vec![name],
            _ => self.ledger.clone(),
        };
        if names.is_empty() {
            bail!(
                "--store needs --ledger NAME (or PARLEY_LEDGER): one database holds many ledgers"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut all = Vec::with_capacity(names.len());
        for ledger in names {
            crate::log::postgres::check_ledger_name(&ledger)?;
            if !seen.insert(ledger.clone()) {
                bail!("--ledger {ledger} is given twice");
            }
            // Clones of one store share its reading threads and connections.
            all.push(At::Pg {
                store: store.clone(),
                ledger,
            });
        }
        Ok(all)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Dir(d) => write!(f, "{}", d.display()),
            At::Pg { store, ledger } => write!(f, "ledger {ledger} at {store}"),
        }
    }
}

impl At {
    /// True when the place already holds a ledger.
    pub(super) fn holds_ledger(&self) -> Result<bool> {
        Ok(match self {
            At::Dir(d) => d.join("log").is_dir(),
            At::Pg { store, ledger } => PgReader::new((**store).clone(), ledger).head()?.is_some(),
        })
    }

    /// Opens the ledger as its one writer, creating it if the place holds none.
    pub(super) fn open(&self, opts: Options) -> Result<(Ledger, OpenReport)> {
        match self {
            At::Dir(d) => Ledger::open(d, opts).with_context(|| format!("open {}", d.display())),
            At::Pg { store, ledger } => {
                let engine = PgLog::open(store, PgOptions::new(ledger))
                    .with_context(|| format!("open {self}"))?;
                let created = engine_is_empty(&engine);
                let l = Ledger::with_engine(Box::new(engine), opts)
                    .with_context(|| format!("open {self}"))?;
                let report = OpenReport {
                    created,
                    ..OpenReport::default()
                };
                Ok((l, report))
            }
        }
    }

    /// A read-only view (no lock, no lease; nothing written).
    pub(super) fn view(&self) -> Result<LogView> {
        match self {
            At::Dir(d) => super::view(d),
            At::Pg { store, ledger } => {
                let reader = PgReader::new((**store).clone(), ledger);
                let head = reader.head().with_context(|| format!("read {self}"))?;
                if head.is_none() {
                    bail!("{self}: no such ledger (it holds no records)");
                }
                Ok(LogView::over(Arc::new(reader), head))
            }
        }
    }
}

fn engine_is_empty(engine: &PgLog) -> bool {
    use crate::log::LogEngine as _;
    engine.head().is_none()
}
