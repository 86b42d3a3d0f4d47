//! The stream's seam and its endings, driven by the test: batches committed
//! between subscribing and reading the head are both in the log and on the
//! feed; a subscriber that stops reading overflows the feed; a server that
//! stops closes every stream. No timing: each case commits what it needs
//! before the stream reads (the timeouts only turn a hang into a failure).

use std::sync::Arc;

use super::{EndReason, Follow, Sent};
use crate::command::Command;
use crate::ledger::{Ledger, FEED_BATCHES};
use crate::reader::LedgerRead;
use crate::server::filter::{FilterQuery, RecordFilter};
use crate::server::tests::{serving, Serving};

/// A stream that has not produced its next item by then is stuck.
const STUCK_S: std::time::Duration = std::time::Duration::from_secs(60);

fn broadcast(ledger: &Ledger, n: usize) -> u64 {
    let line = format!(r#"{{"producer":"ops","kind":"broadcast","topic":"t{n}"}}"#);
    ledger.append(Command::parse(&line).unwrap()).unwrap().seq
}

fn follow(s: &Serving, rx: Receiver, from: u64, head: u64) -> Follow {
    let everything = RecordFilter::parse(FilterQuery::default()).unwrap();
    // `Follow::new` counts a subscriber on the runtime's metrics.
    let _entered = s.rt.enter();
    Follow::new(s.app.clone(), rx, everything, None, from, head)
}

type Receiver = tokio::sync::broadcast::Receiver<Arc<crate::sequencer::projector::Committed>>;

fn next(s: &Serving, f: &mut Follow) -> Option<Sent> {
    s.rt.block_on(async { tokio::time::timeout(STUCK_S, f.next()).await })
        .expect("the stream is stuck")
}

fn seq_of(sent: Option<Sent>) -> u64 {
    match sent {
        Some(Sent::Record(r)) => r.record.envelope.seq,
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn the_seam_between_the_log_and_the_feed_has_no_gap_and_no_duplicate() {
    let s = serving();
    let rx = s.ledger.subscribe().unwrap();
    // Committed after subscribing and before the head is read: these
    // batches are in the log (caught up) and on the feed (to be skipped).
    for n in 0..5 {
        broadcast(&s.ledger, n);
    }
    let head = s.ledger.head_seq();
    // Committed after the head was read: only the feed has them.
    let mut last = 0;
    for n in 5..8 {
        last = broadcast(&s.ledger, n);
    }
    assert!(head >= 5 && last == head + 3);
    let mut f = follow(&s, rx, 1, head);
    let seqs: Vec<u64> = (1..=last).map(|_| seq_of(next(&s, &mut f))).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    // Live afterwards: the next commit is the next item.
    let more = broadcast(&s.ledger, 8);
    assert_eq!(seq_of(next(&s, &mut f)), more);
}

#[test]
fn a_subscriber_that_falls_behind_the_feed_gets_resume_from_its_next_seq() {
    let s = serving();
    let rx = s.ledger.subscribe().unwrap();
    let head = s.ledger.head_seq();
    let mut f = follow(&s, rx, head + 1, head);
    let first = broadcast(&s.ledger, 0);
    assert_eq!(seq_of(next(&s, &mut f)), first);
    // More batches than the feed holds while the subscriber reads nothing.
    // The projector feeds a batch just after publishing it as applied, so
    // once the last is applied every batch before it is on the feed: two
    // more than the feed holds makes the overflow certain. Each is applied
    // before the next is written, so the projector's queue always has room
    // and the syncer never merges two into one feed message.
    for n in 0..FEED_BATCHES + 2 {
        let seq = broadcast(&s.ledger, n + 1);
        s.ledger.wait_applied(seq).unwrap();
    }
    assert_eq!(
        next(&s, &mut f),
        Some(Sent::Resume {
            from: first + 1,
            why: EndReason::Lagged
        })
    );
    assert_eq!(next(&s, &mut f), None, "the stream ends after resume");
}

#[test]
// The clock only bounds the wait for the stream to park (a hang becomes a
// failure); nothing asserts on how long anything took.
#[allow(clippy::disallowed_methods)]
fn a_stopping_server_ends_a_waiting_stream_with_resume() {
    let s = serving();
    let rx = s.ledger.subscribe().unwrap();
    let head = s.ledger.head_seq();
    let mut f = follow(&s, rx, 1, head);
    for want in 1..=head {
        assert_eq!(seq_of(next(&s, &mut f)), want);
    }
    // The stream waits on the feed (nothing new) until the server closes:
    // it holds one more receiver of `closing` while it waits.
    let receivers = s.closer.receiver_count();
    let waiting = s.rt.spawn(async move {
        let sent = tokio::time::timeout(STUCK_S, f.next()).await;
        (sent, f)
    });
    let deadline = std::time::Instant::now() + STUCK_S;
    while s.closer.receiver_count() == receivers {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream never waited"
        );
        std::thread::yield_now();
    }
    s.closer.send(true).unwrap();
    let (sent, mut f) = s.rt.block_on(waiting).unwrap();
    let sent = sent.expect("the waiting stream did not see the server stop");
    assert_eq!(
        sent,
        Some(Sent::Resume {
            from: head + 1,
            why: EndReason::ShuttingDown
        })
    );
    assert_eq!(next(&s, &mut f), None);
}
