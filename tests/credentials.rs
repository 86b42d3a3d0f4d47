//! Records that come with a credential (the server's writes): the credential
//! must be in force and the producer's own, and its role must allow the
//! record's kind. A refused record leaves the log unchanged, and replay
//! checks the same rule for every record in the log.

use parley::command::{Command, CommandEnvelope};
use parley::ledger::{Ledger, Options};
use parley::reader::LedgerRead;
use parley::record::{Body, Digest, Role, StoredRecord, Timeline};
use parley::replay::Replayer;
use parley::resolver::{Refusal, Resolvers};
use parley::sequencer::AppendError;

const T0: u64 = 1_764_147_600_000;

fn options() -> Options {
    Options {
        ledger_id: Some("ldg-credentials".into()),
        genesis_at_ms: Some(T0),
        timeline: Timeline::Scripted,
        first_admin: "ops".into(),
        ..Options::default()
    }
}

fn command(producer: &str, at: u64, body: Body) -> Command {
    Command {
        envelope: CommandEnvelope {
            producer: producer.into(),
            at_ms: Some(T0 + at),
            ..CommandEnvelope::default()
        },
        body,
    }
}

fn parse(producer: &str, at: u64, json: &str) -> Command {
    let text = format!(
        r#"{{"producer":"{producer}","at_ms":{},{}}}"#,
        T0 + at,
        json.strip_prefix('{')
            .and_then(|j| j.strip_suffix('}'))
            .unwrap()
    );
    Command::parse(&text).unwrap()
}

/// Grants a credential as the first admin; returns its seq.
fn grant(ledger: &Ledger, at: u64, identity: &str, role: Role, token: u8) -> u64 {
    let body = Body::CredentialGranted {
        identity: identity.into(),
        role,
        token_hash: Digest([token; 32]),
    };
    ledger.append(command("ops", at, body)).unwrap().seq
}

fn with(ledger: &Ledger, cmd: Command, credential: u64) -> Result<u64, AppendError> {
    parley::command::Checked::new(cmd)
        .map_err(AppendError::from)
        .and_then(|c| ledger.try_submit(c, Some(credential)))
        .and_then(|t| t.wait())
        .map(|a| a.seq)
}

fn refused(ledger: &Ledger, cmd: Command, credential: u64) -> Refusal {
    let head = ledger.head_seq();
    let err = with(ledger, cmd, credential).expect_err("must be refused");
    assert_eq!(ledger.head_seq(), head, "a refused command changed the log");
    match err {
        AppendError::Refused(r) => r,
        other => panic!("refused otherwise: {other}"),
    }
}

const FACT: &str = r#"{"kind":"fact","entity":"shelf:A","attribute":"stock","value":3}"#;
const INTEND: &str = r#"{"kind":"intend","intention":{"action":{"type":"generic","entity":"shelf:A","attribute":"label","value":"new"},"reasoning":"r","impact":{"revenue_minor":0,"margin_minor":0},"objective":"sales-growth"}}"#;

#[test]
fn a_credential_writes_only_as_its_identity_within_its_role_while_in_force() {
    let ledger = Ledger::in_memory(options()).unwrap();
    ledger
        .append(parse(
            "ops",
            1,
            r#"{"kind":"agent_registered","profile":{"agent":"pricing","domain":"pricing","priority":50}}"#,
        ))
        .unwrap();
    ledger
        .append(parse(
            "ops",
            2,
            r#"{"kind":"human_registered","human":"maya"}"#,
        ))
        .unwrap();
    let pricing = grant(&ledger, 3, "pricing", Role::Agent, 1);
    let maya = grant(&ledger, 4, "maya", Role::Human, 2);
    let reader = grant(&ledger, 5, "dashboard", Role::Reader, 3);
    let admin = grant(&ledger, 6, "ops", Role::Admin, 4);

    // Allowed: an agent's facts and intentions as itself; an admin registering a human.
    with(&ledger, parse("pricing", 10, FACT), pricing).unwrap();
    with(&ledger, parse("pricing", 11, INTEND), pricing).unwrap();
    let lee = Body::HumanRegistered {
        human: "lee".into(),
    };
    with(&ledger, command("ops", 12, lee), admin).unwrap();

    // Another identity, another role's kinds, a reader writing, no such grant.
    let r = refused(&ledger, parse("marketing", 20, FACT), pricing);
    assert!(matches!(r, Refusal::CredentialNotYours { .. }), "{r}");
    assert_eq!(r.code().name(), "not-your-identity");
    let r = refused(
        &ledger,
        parse(
            "pricing",
            21,
            r#"{"kind":"human_registered","human":"pricing"}"#,
        ),
        pricing,
    );
    assert!(matches!(r, Refusal::RoleForbids { .. }), "{r}");
    let r = refused(&ledger, parse("maya", 22, INTEND), maya);
    assert!(matches!(r, Refusal::RoleForbids { .. }), "{r}");
    let r = refused(&ledger, parse("dashboard", 23, FACT), reader);
    assert!(matches!(r, Refusal::RoleForbids { .. }), "{r}");
    assert!(r.is_forbidden());
    let r = refused(&ledger, parse("pricing", 24, FACT), 9_999);
    assert!(matches!(r, Refusal::NoSuchCredential { .. }), "{r}");

    // Revoked: refused from the revocation on.
    let revoke = Body::CredentialRevoked { grant: pricing };
    let revoked_at = ledger.append(command("ops", 30, revoke)).unwrap().seq;
    let r = refused(&ledger, parse("pricing", 31, FACT), pricing);
    assert_eq!(
        r,
        Refusal::CredentialRevoked {
            grant: pricing,
            revoked: revoked_at
        }
    );

    // The log proves it: replay admits every record again, credential and all.
    let mut log: Vec<StoredRecord> = Vec::new();
    ledger
        .scan(1, u64::MAX, &mut |r| {
            log.push(r);
            Ok(())
        })
        .unwrap();
    let with_credential = log
        .iter()
        .filter(|r| r.record.envelope.credential.is_some())
        .count();
    assert_eq!(
        with_credential, 3,
        "the three allowed writes carry their credential"
    );
    let mut replay = Replayer::new(Resolvers::released());
    for r in &log {
        replay.feed(r).unwrap();
    }
}
