//! The read-your-writes promise of current reads, with the projector held
//! still by the test (no timing: the context cannot catch up until the test
//! lets it).

use std::num::NonZeroU32;
use std::sync::{mpsc, Arc};

use super::{App, Closer};
use crate::command::Command;
use crate::ledger::{Ledger, Options};
use crate::vocab::ProblemCode;

/// A serving in-memory ledger (first admin `ops`) and its server state.
pub(super) struct Serving {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) ledger: Arc<Ledger>,
    pub(super) app: App,
    pub(super) closer: Closer,
}

pub(super) fn serving() -> Serving {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = Options {
        serve: true,
        first_admin: "ops".into(),
        ..Options::default()
    };
    let ledger = Arc::new(Ledger::in_memory(opts).unwrap());
    let (app, closer) =
        rt.block_on(async { App::new(ledger.clone(), NonZeroU32::new(1000).unwrap()) });
    Serving {
        rt,
        ledger,
        app,
        closer,
    }
}

fn register(agent: &str) -> Command {
    let line = format!(
        r#"{{"producer":"ops","kind":"agent_registered","profile":{{"agent":"{agent}","domain":"pricing","priority":50}}}}"#
    );
    Command::parse(&line).unwrap()
}

/// Holds the published context's write lock on a thread of its own until
/// told to let go: the projector cannot apply a batch meanwhile.
fn hold(ledger: &Ledger) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let published = ledger.published().unwrap().clone();
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = published.write().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    (release_tx, holder)
}

/// Reads retried while the context is behind (each waits up to 2 s).
const ATTEMPTS_MAX: usize = 30;
/// A read that has not answered by then is blocked, not slow (it answers
/// after its 2 s wait).
const BLOCKED_READ_S: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs one current read on a thread of its own; `None` when it has not
/// answered in `BLOCKED_READ_S` (a read that took the held lock instead of
/// answering would block there: the test fails instead of hanging).
fn read_on_a_thread(
    rt: &tokio::runtime::Runtime,
    app: &App,
    name: &'static str,
) -> Option<Result<bool, super::problem::Problem>> {
    let (tx, rx) = mpsc::channel();
    let (handle, app) = (rt.handle().clone(), app.clone());
    std::thread::spawn(move || {
        let read = handle.block_on(app.current(|ctx| ctx.authority.agents.contains_key(name)));
        let _ = tx.send(read);
    });
    rx.recv_timeout(BLOCKED_READ_S).ok()
}

#[test]
fn a_current_read_includes_the_callers_write_or_answers_503_never_stale() {
    let Serving {
        rt,
        ledger,
        app,
        closer: _closer,
    } = serving();

    // Read your write: acknowledged, then read at once. (A loaded machine
    // may keep the projector past the wait: then the answer is a 503 to
    // retry, never a context without the write.)
    ledger.append(register("pricing")).unwrap();
    let mut seen = None;
    for _ in 0..ATTEMPTS_MAX {
        match read_on_a_thread(&rt, &app, "pricing").expect("the read answers") {
            Ok(found) => {
                seen = Some(found);
                break;
            }
            Err(p) => assert_eq!(p.code, ProblemCode::ContextBehind, "{p:?}"),
        }
    }
    assert_eq!(
        seen,
        Some(true),
        "the acknowledged write is in the context read"
    );

    // The projector held: the write is durable, the context is behind.
    let (release, holder) = hold(&ledger);
    let ack = ledger.append(register("marketing")).unwrap();
    assert!(ledger.applied_seq() < ack.seq);
    let behind = read_on_a_thread(&rt, &app, "marketing")
        .expect("the read blocked on the held context instead of answering")
        .unwrap_err();
    assert_eq!(behind.code, ProblemCode::ContextBehind, "{behind:?}");
    assert_eq!(behind.status, 503);
    assert_eq!(behind.retry_after_s, Some(1));
    let durable = format!("durable seq {}", ack.seq);
    assert!(behind.detail.contains(&durable), "{}", behind.detail);

    // Let go: the same read now includes the write.
    release.send(()).unwrap();
    holder.join().unwrap();
    ledger.wait_applied(ack.seq).unwrap();
    let now = read_on_a_thread(&rt, &app, "marketing").expect("the read answers");
    assert!(now.unwrap());
}
