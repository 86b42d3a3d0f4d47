//! Who may act and under which rules: the ledger's identity (from genesis),
//! agents, humans, admins, credentials, the rule set in force and the
//! resolver version in force. Each entry is stamped with the record that made
//! it, so the log alone proves that every record's producer had the right to
//! write it when it did.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{stamp, Stamped};
use crate::record::{Body, Digest, Role, Timeline};
use crate::rules::{rules_hash, RuleSet};
use crate::vocab::AgentProfile;

/// The rule set in force.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct InstalledRules {
    pub seq: u64,
    pub hash: Digest,
    pub rules: RuleSet,
    /// `rules.custom`, compiled.
    pub guards: crate::guards::Guards,
}

/// A bearer credential (only the hash of its token is known).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Credential {
    pub grant: u64,
    pub identity: String,
    pub role: Role,
    #[serde(skip)]
    pub token_hash: Digest,
    pub revoked: Option<u64>,
    /// From this time on it authenticates no one (`credential_expires`).
    pub expires_at_ms: Option<u64>,
}

/// The role an identity holds, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Agent,
    Human,
    Admin,
    /// `parley` itself.
    System,
}

impl Holder {
    pub fn name(self) -> &'static str {
        match self {
            Holder::Agent => "agent",
            Holder::Human => "human",
            Holder::Admin => "admin",
            Holder::System => "parley itself",
        }
    }
}

/// Who may act, and the rules they act under.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Authority {
    pub ledger_id: String,
    /// `None` before the genesis record.
    pub timeline: Option<Timeline>,
    pub agents: BTreeMap<String, Stamped<AgentProfile>>,
    pub humans: BTreeMap<String, u64>,
    pub admins: BTreeMap<String, u64>,
    /// By the seq of their grant.
    pub credentials: BTreeMap<u64, Credential>,
    /// Token hash → grant seq.
    pub tokens: BTreeMap<Digest, u64>,
    pub rules: Option<InstalledRules>,
    /// The resolver version in force and the record that set it (0: none yet).
    pub resolver: Stamped<u32>,
    /// The seqs of the last [`RULES_HISTORY_MAX`] rule sets installed, oldest
    /// first (`parley rules history`, the console's history; older ones are
    /// in the log, `parley log --kind rules_installed`).
    pub rules_installed: std::collections::VecDeque<u64>,
}

/// Most rule-set installations the context remembers by seq.
pub const RULES_HISTORY_MAX: usize = 256;

impl Authority {
    /// Folds one record in; other kinds change nothing here.
    pub fn apply(&mut self, seq: u64, body: &Body) {
        match body {
            Body::Genesis {
                ledger_id,
                timeline,
                first_admin,
                resolver,
                ..
            } => {
                self.ledger_id = ledger_id.clone();
                self.timeline = Some(*timeline);
                self.admins.insert(first_admin.clone(), seq);
                self.resolver = stamp(*resolver, seq);
            }
            Body::AgentRegistered { profile } => {
                self.agents
                    .insert(profile.agent.clone(), stamp((**profile).clone(), seq));
            }
            Body::HumanRegistered { human } => {
                self.humans.insert(human.clone(), seq);
            }
            Body::AdminRegistered { admin } => {
                self.admins.insert(admin.clone(), seq);
            }
            Body::RulesInstalled { text } => {
                // Admission refuses rule text that does not parse, so a log only
                // holds valid rule sets; a bad one would leave the old in force.
                if let Ok((rules, guards)) = RuleSet::parse_compiled(text) {
                    if self.rules_installed.len() == RULES_HISTORY_MAX {
                        self.rules_installed.pop_front();
                    }
                    self.rules_installed.push_back(seq);
                    debug_assert!(self.rules_installed.len() <= RULES_HISTORY_MAX);
                    self.rules = Some(InstalledRules {
                        seq,
                        hash: rules_hash(text),
                        rules,
                        guards,
                    });
                }
            }
            Body::ResolverAdopted { version } => self.resolver = stamp(*version, seq),
            Body::CredentialGranted {
                identity,
                role,
                token_hash,
            } => {
                self.tokens.insert(*token_hash, seq);
                self.credentials.insert(
                    seq,
                    Credential {
                        grant: seq,
                        identity: identity.clone(),
                        role: *role,
                        token_hash: *token_hash,
                        revoked: None,
                        expires_at_ms: None,
                    },
                );
            }
            Body::CredentialRevoked { grant } => {
                if let Some(c) = self.credentials.get_mut(grant) {
                    c.revoked = Some(seq);
                    self.tokens.remove(&c.token_hash);
                }
            }
            Body::CredentialExpires {
                grant,
                expires_at_ms,
            } => {
                if let Some(c) = self.credentials.get_mut(grant) {
                    c.expires_at_ms = Some(*expires_at_ms);
                }
            }
            _ => {}
        }
    }

    /// The role `identity` holds, if any.
    pub fn holder(&self, identity: &str) -> Option<Holder> {
        if identity == crate::command::SYSTEM_PRODUCER {
            Some(Holder::System)
        } else if self.admins.contains_key(identity) {
            Some(Holder::Admin)
        } else if self.humans.contains_key(identity) {
            Some(Holder::Human)
        } else if self.agents.contains_key(identity) {
            Some(Holder::Agent)
        } else {
            None
        }
    }

    /// The live credential a token hash names.
    pub fn credential(&self, token_hash: &Digest) -> Option<&Credential> {
        self.credentials.get(self.tokens.get(token_hash)?)
    }
}
