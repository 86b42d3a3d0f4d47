//! The writer's signed checkpoints (`crate::checkpoint`): a `checkpoint`
//! record signing the record before it, when the writer opens on an
//! unsigned head, every `every` records, and at a clean close.

use std::sync::Arc;

use super::{system_record, Tail, Writer};
use crate::checkpoint::SigningKey;
use crate::record::{Body, Digest};
use crate::sequencer::{AppendError, Batch};

/// A writer's key and how often it signs.
pub(crate) struct Signing {
    pub key: Arc<SigningKey>,
    /// Records between checkpoints (at least 1).
    pub every: u64,
    /// The seq of the last checkpoint record (0: none this writer knows of).
    pub last_record: u64,
}

impl Writer {
    /// Folds a checkpoint of the record at `tail` into `batch`.
    fn sign_tail(&mut self, tail: &mut Tail, batch: &mut Batch) -> Result<(), AppendError> {
        let Some(signing) = &self.signing else {
            return Ok(());
        };
        debug_assert!(tail.0 >= 1, "a checkpoint signs a record");
        let checkpoint = signing
            .key
            .sign(&self.ctx.authority.ledger_id, tail.0, Digest(tail.1));
        let record = system_record(
            tail,
            tail.2,
            (None, None),
            Body::Checkpoint {
                checkpoint: Box::new(checkpoint),
            },
        );
        let seq = record.envelope.seq;
        self.fold_in(record, tail, batch)?;
        if let Some(s) = &mut self.signing {
            s.last_record = seq;
        }
        debug_assert_eq!(tail.0, seq, "the checkpoint is the new tail");
        Ok(())
    }

    /// After a batch's records: a checkpoint once `every` records passed.
    pub(super) fn checkpoint_if_due(
        &mut self,
        tail: &mut Tail,
        batch: &mut Batch,
    ) -> Result<(), AppendError> {
        let due = self
            .signing
            .as_ref()
            .is_some_and(|s| tail.0 >= s.last_record.saturating_add(s.every));
        if due && !batch.stored.is_empty() {
            self.sign_tail(tail, batch)?;
        }
        Ok(())
    }

    /// A batch of one checkpoint when anything since the last is unsigned
    /// (at open and at a clean close).
    pub(super) fn sign_unsigned_head(&mut self) {
        let unsigned = self
            .signing
            .as_ref()
            .is_some_and(|s| self.tail.0 > s.last_record);
        if !unsigned || self.failed.is_some() || self.tail.0 == 0 {
            return;
        }
        let mut tail = self.tail;
        let mut batch = Batch::default();
        match self.sign_tail(&mut tail, &mut batch) {
            Ok(()) => self.write(batch, tail),
            Err(e) => self.fail(e.to_string()),
        }
    }
}
