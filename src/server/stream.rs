//! `GET /v1/stream`: Server-Sent Events from any seq. It subscribes to the
//! writer's feed of committed batches first, then catches up from the log in
//! bounded chunks, then follows the feed; records are sent in seq order and a
//! seq already sent is skipped, so the seam has no gap and no duplicate. A
//! subscriber that falls behind the feed's bounded buffer gets a final
//! `resume` event naming the seq to reconnect from.

use crate::vocab::ProblemCode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use super::extract::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::filter::{FilterQuery, RecordFilter};
use super::problem::Problem;
use super::App;
use crate::export::ExportedRecord;
use crate::reader::LedgerRead;
use crate::record::{Body, StoredRecord};
use crate::sequencer::projector::Committed;

/// Records read from the log per catch-up step (bounds memory per stream).
const CATCH_UP_CHUNK: u64 = 1_000;

/// Where a stream starts and what it carries.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The first seq wanted (default: the next one committed).
    /// `Last-Event-ID` (the last seq received) takes precedence.
    #[schemars(range(min = 1, max = u64::MAX))]
    pub from: Option<u64>,
    /// A record kind, e.g. `decision`.
    #[serde(default)]
    #[schemars(with = "super::known::OptionalKind")]
    pub kind: Option<String>,
    /// An entity the record names, e.g. `sku:SKU-1`.
    #[serde(default)]
    #[schemars(with = "Option<crate::entity::EntityRef>")]
    pub entity: Option<String>,
    /// A broadcast's topic.
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub topic: Option<String>,
    /// The producer.
    #[serde(default)]
    #[schemars(with = "crate::bounds::schema::OptionalId")]
    pub producer: Option<String>,
    /// Only decisions on intentions the caller announced.
    #[serde(default)]
    pub mine: bool,
}

/// "Decisions on my intentions": the caller's intentions this stream saw,
/// until a final decision settles them, and for older intentions (before the
/// stream's start) their producer read once from the log.
struct Mine {
    identity: String,
    start: u64,
    open: BTreeSet<u64>,
    older: BTreeMap<u64, bool>,
}

/// How many older intentions a stream remembers the producer of.
const MINE_CACHE: usize = 4_096;

/// What a stream sends next: a record, or the final `resume` naming the seq
/// to reconnect from and why (typed, so the seam can be tested without HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Record(Box<StoredRecord>),
    Resume { from: u64, why: EndReason },
}

/// Why a stream ended with `resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    Lagged,
    ShuttingDown,
    LogUnreadable,
}

impl EndReason {
    fn sentence(self) -> &'static str {
        match self {
            EndReason::Lagged => "the subscriber fell behind",
            EndReason::ShuttingDown => "the server is shutting down",
            EndReason::LogUnreadable => "the log could not be read",
        }
    }
}

enum Phase {
    CatchUp { next: u64, head: u64 },
    Live,
    Done,
}

struct Follow {
    app: App,
    rx: tokio::sync::broadcast::Receiver<Arc<Committed>>,
    filter: RecordFilter,
    mine: Option<Mine>,
    /// The last seq sent (or skipped by the filter).
    last: u64,
    phase: Phase,
    pending: VecDeque<StoredRecord>,
}

fn event(sent: &Sent) -> Event {
    match sent {
        Sent::Record(r) => {
            let data = serde_json::to_string(&ExportedRecord::from(r.as_ref())).unwrap_or_default();
            Event::default()
                .id(r.record.envelope.seq.to_string())
                .event(r.record.body.kind())
                .data(data)
        }
        Sent::Resume { from, why } => {
            let data = serde_json::json!({ "from": from, "reason": why.sentence() });
            Event::default().event("resume").data(data.to_string())
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.app.metrics.subscribers.dec();
    }
}

impl Follow {
    /// A stream from seq `from` (at least 1) that catches up from the log to
    /// `head`, then follows `rx`; `rx` must have been subscribed before
    /// `head` was read, so no batch falls between the two.
    fn new(
        app: App,
        rx: tokio::sync::broadcast::Receiver<Arc<Committed>>,
        filter: RecordFilter,
        mine: Option<Mine>,
        from: u64,
        head: u64,
    ) -> Follow {
        assert!(from >= 1, "seqs start at 1");
        app.metrics.subscribers.inc();
        Follow {
            app,
            rx,
            filter,
            mine,
            last: from - 1,
            phase: Phase::CatchUp { next: from, head },
            pending: VecDeque::new(),
        }
    }

    fn end(&mut self, why: EndReason) -> Option<Sent> {
        self.phase = Phase::Done;
        Some(Sent::Resume {
            from: self.last + 1,
            why,
        })
    }
    /// The next committed batch, unless the server starts shutting down
    /// (reported as `Closed`).
    async fn live(&mut self) -> Result<Arc<Committed>, RecvError> {
        let mut closing = self.app.closing.clone();
        tokio::select! {
            r = self.rx.recv() => r,
            _ = closing.wait_for(|c| *c) => Err(RecvError::Closed),
        }
    }

    /// With `mine`, whether `r` is a decision on the caller's intention.
    /// Every record passes through here (wanted or not), so the caller's
    /// intentions are remembered until a final decision settles them.
    async fn is_mine(&mut self, r: &StoredRecord, wanted: bool) -> bool {
        let Some(m) = self.mine.as_mut() else {
            return true;
        };
        let decision = match &r.record.body {
            Body::Intend { .. } => {
                if r.record.envelope.producer == m.identity {
                    m.open.insert(r.record.envelope.seq);
                }
                return false;
            }
            Body::Decision { decision } => decision,
            _ => return false,
        };
        let i = decision.intention;
        if i >= m.start {
            let yes = m.open.contains(&i);
            if decision.outcome.is_final() {
                m.open.remove(&i);
            }
            return yes;
        }
        if !wanted {
            return false;
        }
        if let Some(yes) = m.older.get(&i) {
            return *yes;
        }
        let ledger = self.app.ledger.clone();
        let read = tokio::task::spawn_blocking(move || ledger.read(&[i])).await;
        let yes = matches!(read, Ok(Ok(rs)) if rs.first().is_some_and(|x| x.record.envelope.producer == m.identity));
        if m.older.len() >= MINE_CACHE {
            m.older.clear();
        }
        m.older.insert(i, yes);
        yes
    }

    /// The next record or `resume`, or `None` when the stream has ended.
    async fn next(&mut self) -> Option<Sent> {
        loop {
            while let Some(r) = self.pending.pop_front() {
                let seq = r.record.envelope.seq;
                if seq <= self.last {
                    continue;
                }
                debug_assert_eq!(seq, self.last + 1, "records reach a stream in order");
                self.last = seq;
                let wanted = self.filter.wants(&r);
                if self.is_mine(&r, wanted).await && wanted {
                    return Some(Sent::Record(Box::new(r)));
                }
            }
            match self.phase {
                Phase::Done => return None,
                Phase::CatchUp { next, head } if next > head => self.phase = Phase::Live,
                Phase::CatchUp { next, head } => {
                    let to = head.min(next + CATCH_UP_CHUNK - 1);
                    let ledger = self.app.ledger.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let mut out = Vec::new();
                        ledger
                            .scan(next, to, &mut |r| {
                                out.push(r);
                                Ok(())
                            })
                            .map(|()| out)
                    })
                    .await;
                    match read {
                        Ok(Ok(records)) => self.pending.extend(records),
                        _ => return self.end(EndReason::LogUnreadable),
                    }
                    self.phase = Phase::CatchUp { next: to + 1, head };
                }
                _ if *self.app.closing.borrow() => return self.end(EndReason::ShuttingDown),
                Phase::Live => match self.live().await {
                    Ok(batch) => self.pending.extend(batch.records.iter().cloned()),
                    Err(RecvError::Lagged(_)) => return self.end(EndReason::Lagged),
                    Err(RecvError::Closed) => return self.end(EndReason::ShuttingDown),
                },
            }
        }
    }
}

/// The SSE handler.
pub async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let caller = app.caller(&headers).await?;
    let rx = app
        .ledger
        .subscribe()
        .ok_or_else(|| Problem::internal("this ledger was not opened to serve".into()))?;
    let head = app.ledger.head_seq();
    let resume_from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>())
        .transpose()
        .map_err(|_| {
            Problem::bad_request(ProblemCode::BadLastEventId, "Last-Event-ID is a seq".into())
        })?
        .map(|id| id.saturating_add(1));
    let from = match resume_from {
        // A client moving between the nodes of a cluster may have seen
        // records this node has not read yet: it waits for them, and gets
        // no record twice.
        Some(next) if app.ledger.membership().is_some() => next.max(1),
        _ => resume_from
            .or(q.from)
            .unwrap_or(head.saturating_add(1))
            .clamp(1, head.saturating_add(1)),
    };
    let filter = RecordFilter::parse(FilterQuery {
        kind: q.kind,
        entity: q.entity,
        topic: q.topic,
        producer: q.producer,
    })?;
    let mine = q.mine.then(|| Mine {
        identity: caller.identity,
        start: from,
        open: BTreeSet::new(),
        older: BTreeMap::new(),
    });
    let follow = Follow::new(app, rx, filter, mine, from, head);
    let events = stream::unfold(follow, |mut f| async move {
        let sent = f.next().await?;
        Some((Ok(event(&sent)), f))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
