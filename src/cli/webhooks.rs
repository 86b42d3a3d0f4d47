//! `parley serve`'s webhook flags, and where the secrets come from.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::integration::signature::Secret;
use crate::integration::Currency;
use crate::server::webhooks::Webhooks;

/// Store platforms' webhooks (`POST /v1/webhooks/shopify|woocommerce`).
#[derive(clap::Args, Clone, Debug)]
pub(super) struct WebhookArgs {
    /// Receive store platforms' webhooks, written as IDENTITY: an agent of
    /// domain `integration` an admin registered. Secrets come from
    /// PARLEY_SHOPIFY_SECRET / PARLEY_WOOCOMMERCE_SECRET or the files below.
    #[arg(long, env = "PARLEY_WEBHOOKS_AS")]
    webhooks_as: Option<String>,
    /// The ledger's currency (ISO 4217): a payload in another is refused.
    #[arg(long, env = "PARLEY_CURRENCY", default_value = "GBP")]
    currency: String,
    /// A file holding the Shopify app's webhook secret.
    #[arg(long)]
    shopify_secret_file: Option<PathBuf>,
    /// A file holding the WooCommerce webhooks' secret.
    #[arg(long)]
    woocommerce_secret_file: Option<PathBuf>,
}

/// A secret from `file`, else from the environment variable `var`.
fn secret(file: Option<&PathBuf>, var: &str) -> Result<Option<Secret>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("read the secret in {}", f.display()))?;
        let s = Secret::new(&text)
            .with_context(|| format!("{} holds no secret (it is empty)", f.display()))?;
        return Ok(Some(s));
    }
    Ok(std::env::var(var).ok().and_then(|t| Secret::new(&t)))
}

impl WebhookArgs {
    /// The receiver's configuration (`None`: webhooks are off).
    pub(super) fn config(&self) -> Result<Option<Webhooks>> {
        let Some(identity) = &self.webhooks_as else {
            return Ok(None);
        };
        crate::bounds::check_id("--webhooks-as", identity)?;
        let currency = Currency::parse(&self.currency)?;
        let shopify = secret(self.shopify_secret_file.as_ref(), "PARLEY_SHOPIFY_SECRET")?;
        let woocommerce = secret(
            self.woocommerce_secret_file.as_ref(),
            "PARLEY_WOOCOMMERCE_SECRET",
        )?;
        anyhow::ensure!(
            shopify.is_some() || woocommerce.is_some(),
            "--webhooks-as needs a secret: set PARLEY_SHOPIFY_SECRET or PARLEY_WOOCOMMERCE_SECRET, or give --shopify-secret-file / --woocommerce-secret-file"
        );
        Ok(Some(Webhooks {
            identity: identity.clone(),
            currency,
            shopify,
            woocommerce,
        }))
    }
}
