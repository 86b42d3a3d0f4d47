//! Custom guards: the store's own rules, written in the rule set as
//! `[[custom]]` tables whose `when` is a CEL expression (the `cel` crate),
//! checked when the rule set is parsed and evaluated by resolver version 3
//! against a typed view of the context (`view`).
//!
//! Architecture invariant: pure and bounded. An expression is at most
//! [`EXPR_LEN_MAX`] bytes and [`NODES_MAX`] nodes; it has no comprehension
//! (no loop: CEL's `all`, `exists`, `map`, `filter` are refused), no float or
//! unsigned literal, no map literal, calls only [`FUNCTIONS`], and reads only
//! leaves of the view ([`ViewPath`]), each resolved from the context before
//! evaluation together with the seq that wrote it. So evaluation costs at
//! most a constant times the expression's length, reads nothing it did not
//! name, and gives the same answer live and in replay.

mod check;
mod eval;
mod subject;
pub mod view;

use std::sync::Arc;

use bincode::{Decode, Encode};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use eval::{evaluate, Subject, Verdict};

use crate::vocab::guard::{Then, ViewPath};
use crate::vocab::ActionKind;

/// Most custom guards in one rule set.
pub const GUARDS_MAX: usize = 64;
/// Longest `when` expression, in bytes.
pub const EXPR_LEN_MAX: usize = 1024;
/// Most nodes in one parsed expression.
pub const NODES_MAX: usize = 256;
/// Longest guard id, in bytes (`[a-z0-9-_.]`).
pub const ID_LEN_MAX: usize = 64;
/// Longest message, in bytes.
pub const MESSAGE_LEN_MAX: usize = 280;

/// The functions and operators an expression may call.
pub const FUNCTIONS: &[&str] = &[
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_+_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_>=_",
    "_<=_",
    "_>_",
    "_<_",
    "-_",
    "@in",
    "@not_strictly_false",
    "size",
    "contains",
    "startsWith",
    "endsWith",
];

/// One `[[custom]]` table, as written.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardText {
    /// Cited in decisions and traces: `[a-z0-9._-]`, unique in the rule set.
    pub id: String,
    /// The action kinds it checks (`launch-promotion` or `launch_promotion`).
    #[serde(deserialize_with = "action_kinds")]
    pub applies_to: Vec<ActionKind>,
    /// A CEL expression over the view; the guard fires when it is true.
    pub when: String,
    pub then: Then,
    /// Shown to people with the decision (never part of a decision's bytes).
    pub message: String,
}

/// Action kinds by their names, with `_` accepted for `-`.
fn action_kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ActionKind>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| {
            let n = n.replace('_', "-");
            ActionKind::ALL
                .iter()
                .copied()
                .find(|k| k.name() == n)
                .ok_or_else(|| {
                    let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
                    serde::de::Error::custom(format!(
                        "unknown action kind `{n}`; known: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// A guard whose expression passed every check, ready to evaluate.
#[derive(Clone, Debug)]
pub struct Guard {
    pub text: GuardText,
    program: Arc<cel::Program>,
    /// Every leaf the expression reads, sorted, once each.
    pub paths: Vec<ViewPath>,
}

/// What is wrong with a guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardProblem {
    #[error("more than {GUARDS_MAX} custom guards")]
    TooMany,
    #[error("id `{0}`: use 1 to {ID_LEN_MAX} of a-z, 0-9, `.`, `_`, `-`")]
    BadId(String),
    #[error("two guards are named `{0}`")]
    DuplicateId(String),
    #[error("applies_to is empty: name the action kinds it checks")]
    NoKinds,
    #[error("message: write 1 to {MESSAGE_LEN_MAX} bytes")]
    BadMessage,
    #[error("the expression is longer than {EXPR_LEN_MAX} bytes")]
    TooLong,
    #[error("the expression has more than {NODES_MAX} parts, or is nested too deep")]
    TooLarge,
    #[error("{0}")]
    Syntax(String),
    #[error("no floats: write money in minor units and rates in basis points")]
    Float,
    #[error("{0}: only signed integers, text, true, false and null are allowed")]
    Literal(&'static str),
    #[error("{0}: guards have no loops (all, exists, exists_one, map, filter)")]
    Loop(String),
    #[error("`{0}` is not a function guards may call; they may call {1}")]
    Function(String, String),
    #[error("`{0}` is not in the view; it has {1}")]
    UnknownName(String, String),
    #[error("`{0}` has no field `{1}`; it has {2}")]
    UnknownField(String, String, String),
    #[error("`{0}` is not a value: name one of its fields, e.g. {1}")]
    NotALeaf(String, String),
    #[error("`{path}` is not in the view of `{kind}` actions")]
    NotForKind { path: String, kind: ActionKind },
    #[error("{0}")]
    Type(String),
}

/// A problem and where: the guard (by position and id) and the column in
/// its expression (1-based, when it is known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("custom guard `{id}`{}: {problem}", .column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct GuardError {
    pub index: usize,
    pub id: String,
    pub column: Option<usize>,
    pub problem: GuardProblem,
}

/// The compiled custom guards of a rule set, in the order written.
#[derive(Clone, Default)]
pub struct Guards(Arc<[Guard]>);

impl Guards {
    /// Checks and compiles every guard; the first problem is the error, and
    /// nothing is compiled unless all are sound.
    pub fn compile(texts: &[GuardText]) -> Result<Guards, GuardError> {
        let at = |index: usize, problem| GuardError {
            index,
            id: texts.get(index).map(|t| t.id.clone()).unwrap_or_default(),
            column: None,
            problem,
        };
        if texts.len() > GUARDS_MAX {
            return Err(at(GUARDS_MAX, GuardProblem::TooMany));
        }
        let mut guards = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            if texts[..i].iter().any(|o| o.id == t.id) {
                return Err(at(i, GuardProblem::DuplicateId(t.id.clone())));
            }
            let g = check::compile(t).map_err(|(column, problem)| GuardError {
                column,
                ..at(i, problem)
            })?;
            guards.push(g);
        }
        debug_assert_eq!(guards.len(), texts.len());
        Ok(Guards(guards.into()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Guard> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn texts(&self) -> Vec<GuardText> {
        self.0.iter().map(|g| g.text.clone()).collect()
    }
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|g| &g.text.id))
            .finish()
    }
}

impl PartialEq for Guards {
    fn eq(&self, other: &Guards) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|(a, b)| a.text == b.text)
    }
}

impl Eq for Guards {}

impl Serialize for Guards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.texts().serialize(s)
    }
}

/// Encoded as the texts; decoding compiles them again (a snapshot whose
/// guards no longer compile is refused, and rebuilt from the log).
impl Encode for Guards {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.texts().encode(e)
    }
}

impl<C> Decode<C> for Guards {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Guards, bincode::error::DecodeError> {
        let texts = Vec::<GuardText>::decode(d)?;
        Guards::compile(&texts).map_err(|e| bincode::error::DecodeError::OtherString(e.to_string()))
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Guards {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Guards, bincode::error::DecodeError> {
        <Guards as Decode<C>>::decode(d)
    }
}
