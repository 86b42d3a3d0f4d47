//! `POST /v1/webhooks/shopify` and `POST /v1/webhooks/woocommerce`: a store
//! platform's signed deliveries, recorded as `synced` records.
//!
//! In order: the body is read whole (over the limit: 413); its HMAC-SHA256
//! signature is checked against the platform's secret before anything is
//! parsed (bad or missing: 401, nothing appended); the topic is mapped
//! (`crate::integration`; a topic parley does not map: 202 so the platform
//! stops retrying, counted in `/metrics`); the record is appended as the
//! configured integration identity with the platform's delivery id as its
//! idempotency key, so a retried delivery appends nothing and gets the
//! first delivery's seq. The answer says whether the record's version is
//! the one the context holds (`applied`) or an older one (`superseded`).

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;

use super::auth::Caller;
use super::problem::Problem;
use super::App;
use crate::command::{Checked, Command, CommandEnvelope};
use crate::integration::signature::Secret;
use crate::integration::{self, Currency, MapError, Mapped};
use crate::record::{Body, Role, Timeline};
use crate::vocab::{Platform, ProblemCode, Synced};

/// How webhooks are received: who writes, in which currency, with which
/// secrets. Secrets are never logged or written into the ledger.
#[derive(Clone, Debug)]
pub struct Webhooks {
    /// The identity deliveries are written as: an agent of domain
    /// `integration` an admin registered.
    pub identity: String,
    /// The ledger's currency: a delivery in another is refused.
    pub currency: Currency,
    pub shopify: Option<Secret>,
    pub woocommerce: Option<Secret>,
}

/// A delivery's answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WebhookAnswer {
    /// The record's seq (for a retried delivery, the first delivery's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `applied` (the context holds this version), `superseded` (it holds
    /// a newer one, recorded at `held_seq`), `not_mapped` or `ping`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_seq: Option<u64>,
    /// The delivery id had been seen: nothing was appended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Why nothing was recorded (`not_mapped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The headers each platform sends.
struct Headers {
    signature: &'static str,
    topic: &'static str,
    delivery: &'static str,
}

fn headers_of(p: Platform) -> Headers {
    match p {
        Platform::Shopify => Headers {
            signature: "x-shopify-hmac-sha256",
            topic: "x-shopify-topic",
            delivery: "x-shopify-webhook-id",
        },
        Platform::Woocommerce => Headers {
            signature: "x-wc-webhook-signature",
            topic: "x-wc-webhook-topic",
            delivery: "x-wc-webhook-delivery-id",
        },
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /v1/webhooks/{platform}`.
pub async fn receive(
    State(app): State<App>,
    Path(platform): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookAnswer>), Problem> {
    let platform = Platform::ALL
        .iter()
        .copied()
        .find(|p| p.name() == platform)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no webhook receiver for `{platform}`: parley receives shopify and woocommerce"
            ))
        })?;
    let (config, secret) = configured(&app, platform)?;
    let body = super::writes::body_bytes(body)?;
    let h = headers_of(platform);
    let topic = header(&headers, h.topic);
    if platform == Platform::Woocommerce && topic.is_none() && is_ping(&body) {
        // WooCommerce's unsigned ping when a webhook is saved: nothing to record.
        return Ok((StatusCode::OK, Json(answer("ping"))));
    }
    secret
        .verify(h.signature, header(&headers, h.signature), &body)
        .map_err(|e| {
            app.metrics.webhook(platform.name(), "any", "bad_signature");
            Problem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::BadSignature,
                "Bad signature",
                e.to_string(),
            )
        })?;
    let topic = topic.ok_or_else(|| {
        Problem::bad_request(
            ProblemCode::BadPayload,
            format!("the delivery carries no `{}` header", h.topic),
        )
    })?;
    let label = topic_label(platform, topic);
    let synced = match integration::map(platform, topic, &body, config.currency) {
        Ok(Mapped::Object(s)) => s,
        Ok(Mapped::NotMapped(why)) => {
            app.metrics.webhook(platform.name(), label, "not_mapped");
            let mut a = answer("not_mapped");
            a.note = Some(why);
            return Ok((StatusCode::ACCEPTED, Json(a)));
        }
        Err(e) => return Err(map_problem(&e)),
    };
    let key = delivery_key(platform, header(&headers, h.delivery), &body);
    let a = append(&app, &config, *synced, key).await?;
    app.metrics.webhook(
        platform.name(),
        label,
        if a.duplicate { "duplicate" } else { a.result },
    );
    Ok((StatusCode::OK, Json(a)))
}

fn answer(result: &'static str) -> WebhookAnswer {
    WebhookAnswer {
        seq: None,
        result,
        held_seq: None,
        duplicate: false,
        note: None,
    }
}

/// The receiver's configuration and `platform`'s secret, or 404 when the
/// server was started without them.
fn configured(app: &App, platform: Platform) -> Result<(Webhooks, Secret), Problem> {
    let off = |why: String| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::WebhooksOff,
            "Webhooks not enabled",
            why,
        )
    };
    let config = app.webhooks.as_deref().ok_or_else(|| {
        off("this server receives no webhooks: start it with --webhooks-as IDENTITY".into())
    })?;
    let secret = match platform {
        Platform::Shopify => config.shopify.clone(),
        Platform::Woocommerce => config.woocommerce.clone(),
    };
    let secret = secret.ok_or_else(|| {
        off(format!(
            "this server has no {} secret: set PARLEY_{}_SECRET or --{}-secret-file",
            platform.name(),
            platform.name().to_ascii_uppercase(),
            platform.name()
        ))
    })?;
    Ok((config.clone(), secret))
}

/// `webhook_id=<digits>`: the form body of WooCommerce's ping.
fn is_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit))
}

/// The topic as a metrics label: a mapped one, or `other`.
fn topic_label(platform: Platform, topic: &str) -> &'static str {
    let topics = match platform {
        Platform::Shopify => integration::shopify::TOPICS,
        Platform::Woocommerce => integration::woocommerce::TOPICS,
    };
    topics
        .iter()
        .find(|t| **t == topic)
        .copied()
        .unwrap_or("other")
}

/// The idempotency key: the platform's delivery id, or (when a delivery
/// carries none) the body's digest, which names the same object version.
fn delivery_key(platform: Platform, id: Option<&str>, body: &[u8]) -> String {
    let id = id
        .map(str::trim)
        .filter(|i| !i.is_empty() && i.len() <= 128 && !i.chars().any(char::is_control));
    match id {
        Some(id) => format!("{}:{id}", platform.name()),
        None => format!(
            "{}:body:{}",
            platform.name(),
            crate::record::to_hex(blake3::hash(body).as_bytes())
        ),
    }
}

fn map_problem(e: &MapError) -> Problem {
    match e {
        MapError::Currency { .. } => {
            Problem::unprocessable(ProblemCode::WrongCurrency, e.to_string())
        }
        _ => Problem::bad_request(ProblemCode::BadPayload, e.to_string()),
    }
}

/// Appends `synced` as the integration identity and says whether the
/// context holds its version.
async fn append(
    app: &App,
    config: &Webhooks,
    synced: Synced,
    key: String,
) -> Result<WebhookAnswer, Problem> {
    let register = crate::context::synced::key_of(&synced);
    // A scripted ledger (the demo's) records at its own time.
    let at_ms = app.with_context(|ctx| {
        (ctx.authority.timeline == Some(Timeline::Scripted)).then_some(ctx.now_ms)
    })?;
    let command = Command {
        envelope: CommandEnvelope {
            producer: config.identity.clone(),
            at_ms,
            idempotency_key: Some(key),
            ..CommandEnvelope::default()
        },
        body: Body::Synced {
            synced: Box::new(synced),
        },
    };
    let checked = Checked::new(command)
        .map_err(|e| Problem::bad_request(ProblemCode::BadPayload, e.to_string()))?;
    let caller = Caller {
        grant: 0,
        identity: config.identity.clone(),
        role: Role::Integration,
    };
    super::writes::quota(app, &caller, 1)?;
    let ack = super::writes::append_without_credential(app, &caller, checked).await?;
    let held = app
        .current(|ctx| ctx.synced.held(&register).map(|h| h.seq))
        .await?;
    let mut a = answer(if held == Some(ack.seq) {
        "applied"
    } else {
        "superseded"
    });
    a.seq = Some(ack.seq);
    a.held_seq = held;
    a.duplicate = ack.duplicate;
    Ok(a)
}
