//! The Stripe API, as Spawnpoint uses it: async-stripe's request types, wrapped in what the billing service
//! needs (a customer per user, the price of a plan, Checkout, cancelling, the customer portal, and syncing the
//! catalog's prices).

use std::collections::HashMap;
use std::time::Duration;

use catalog::{Catalog, Game, Plan};
use secrecy::{ExposeSecret as _, SecretString};
use stripe::{ApiErrorsCode, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest as _};
use stripe_billing::billing_portal_configuration::{
    CreateBillingPortalConfiguration, CreateBillingPortalConfigurationFeatures,
    CreateBillingPortalConfigurationFeaturesSubscriptionCancel,
    CreateBillingPortalConfigurationFeaturesSubscriptionUpdate, InvoiceListParam, ListBillingPortalConfiguration,
    PaymentMethodUpdateParam,
};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::{CancelSubscription, RetrieveSubscription};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    ExpireCheckoutSession, RetrieveCheckoutSession,
};
use stripe_core::customer::CreateCustomer;
use stripe_product::price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, UpdatePrice};
use stripe_product::product::{CreateProduct, RetrieveProduct, UpdateProduct};
use stripe_shared::{CheckoutSessionMode, CheckoutSessionStatus, Price, RecurringInterval, SubscriptionStatus};
use stripe_types::Currency;

use super::Checkout;

/// How long one request to Stripe may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A Stripe request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum StripeApiError {
    /// Stripe answered, and refused (4xx): `code` is Stripe's error code, when it gave one.
    #[error("Stripe refused ({status}): {message}")]
    Refused { status: u16, code: Option<String>, message: String },
    /// Stripe could not be reached, failed (5xx) or answered something unreadable.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

impl StripeApiError {
    fn is(&self, wanted: &str) -> bool {
        matches!(self, StripeApiError::Refused { code: Some(code), .. } if code == wanted)
    }

    /// The object named does not exist (anymore).
    pub fn is_missing(&self) -> bool {
        self.is(ApiErrorsCode::ResourceMissing.as_str())
    }
}

impl From<StripeError> for StripeApiError {
    fn from(error: StripeError) -> Self {
        match error {
            StripeError::Stripe(error, status) if (400..500).contains(&status) => StripeApiError::Refused {
                status,
                code: error.code.as_ref().map(|code| code.as_str().to_owned()),
                message: error.message.unwrap_or_else(|| "no message".into()),
            },
            StripeError::Stripe(error, status) => StripeApiError::Unavailable(format!(
                "status {status}: {}",
                error.message.unwrap_or_else(|| "no message".into())
            )),
            StripeError::Timeout => StripeApiError::Unavailable("the request timed out".into()),
            other => StripeApiError::Unavailable(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, StripeApiError>;

/// Where a Checkout Session ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutState {
    Open,
    Expired,
    /// Paid: the subscription it created.
    Complete {
        subscription: Option<String>,
    },
}

/// What a checkout is for.
pub struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub price: &'a str,
    pub server_id: &'a str,
    pub user_id: &'a str,
    pub success_url: String,
    pub cancel_url: String,
}

/// What `spawnpoint stripe sync` did to one product or price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    Created,
    Updated,
    Unchanged,
}

pub use catalog::billing::{lookup_key, product_id};

pub struct StripeApi {
    client: Client,
    /// The Customer Portal configuration sessions use, once found or made.
    portal_configuration: tokio::sync::OnceCell<String>,
}

/// The metadata that marks Spawnpoint's Customer Portal configuration, so every replica and restart finds the
/// one already made.
const PORTAL_MARK: (&str, &str) = ("spawnpoint", "portal-v1");

impl StripeApi {
    /// A client for `api_base` (Stripe's own, or a stand-in in tests).
    pub fn new(secret: &SecretString, api_base: &str) -> Result<Self> {
        // async-stripe appends `v1/…` to the base as given.
        let base = format!("{}/", api_base.trim_end_matches('/'));
        let client = ClientBuilder::new(secret.expose_secret())
            .url(base)
            .timeout(REQUEST_TIMEOUT)
            .app_info("spawnpoint", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|error| StripeApiError::Unavailable(error.to_string()))?;
        Ok(Self { client, portal_configuration: tokio::sync::OnceCell::new() })
    }

    /// Creates the user's Stripe customer. The idempotency key makes two concurrent first checkouts of one user
    /// get the same customer, not two.
    pub async fn create_customer(&self, user_id: &str, email: &str) -> Result<String> {
        let request = CreateCustomer::new().email(email).metadata(metadata(&[("user_id", user_id)]));
        let customer = request
            .customize()
            .request_strategy(once_for(&format!("spawnpoint-customer-{user_id}")))
            .send(&self.client)
            .await?;
        Ok(customer.id.as_str().to_owned())
    }

    /// The id of the active price with `lookup_key`, if there is one.
    pub async fn price(&self, lookup_key: &str) -> Result<Option<String>> {
        Ok(self.find_price(lookup_key).await?.map(|price| price.id.as_str().to_owned()))
    }

    async fn find_price(&self, lookup_key: &str) -> Result<Option<Price>> {
        let prices = ListPrice::new().active(true).lookup_keys(vec![lookup_key.to_owned()]).send(&self.client).await?;
        Ok(prices.data.into_iter().find(|price| price.lookup_key.as_deref() == Some(lookup_key)))
    }

    /// A subscription Checkout Session for one server. The server and user ids go on the session (for
    /// `checkout.session.*` events) and on the subscription it creates (for subscription and invoice events).
    pub async fn create_checkout(&self, request: &CheckoutRequest<'_>) -> Result<Checkout> {
        let ids = metadata(&[("server_id", request.server_id), ("user_id", request.user_id)]);
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price = Some(request.price.to_owned());
        line.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(ids.clone());
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(request.customer)
            .client_reference_id(request.server_id)
            .metadata(ids)
            .line_items(vec![line])
            .subscription_data(subscription)
            .success_url(request.success_url.clone())
            .cancel_url(request.cancel_url.clone())
            .customize()
            // One session per server, even if the request is sent twice.
            .request_strategy(once_for(&format!("spawnpoint-checkout-{}", request.server_id)))
            .send(&self.client)
            .await?;
        let url = session.url.ok_or_else(|| StripeApiError::Unavailable("the checkout session has no URL".into()))?;
        Ok(Checkout { id: session.id.as_str().to_owned(), url })
    }

    /// Closes an open Checkout Session so it can no longer be paid. Returns where the session ended up: a session
    /// that was paid meanwhile cannot be expired, and then its subscription is returned.
    pub async fn expire_checkout(&self, id: &str) -> Result<CheckoutState> {
        match ExpireCheckoutSession::new(id).send(&self.client).await {
            Ok(_) => Ok(CheckoutState::Expired),
            Err(error) => {
                let error = StripeApiError::from(error);
                if error.is_missing() {
                    return Ok(CheckoutState::Expired);
                }
                // Not open any more: look at how it ended.
                match (&error, self.checkout_state(id).await?) {
                    (
                        StripeApiError::Refused { .. },
                        state @ (CheckoutState::Expired | CheckoutState::Complete { .. }),
                    ) => Ok(state),
                    _ => Err(error),
                }
            }
        }
    }

    async fn checkout_state(&self, id: &str) -> Result<CheckoutState> {
        let session = RetrieveCheckoutSession::new(id).send(&self.client).await?;
        Ok(match session.status {
            Some(CheckoutSessionStatus::Complete) => CheckoutState::Complete {
                subscription: session.subscription.map(|subscription| subscription.id().as_str().to_owned()),
            },
            Some(CheckoutSessionStatus::Expired) => CheckoutState::Expired,
            _ => CheckoutState::Open,
        })
    }

    /// Cancels a subscription at once (no further invoices). One that is already cancelled or gone counts as
    /// cancelled: when Stripe refuses, the subscription's own status decides, not the wording of the refusal.
    pub async fn cancel_subscription(&self, id: &str) -> Result<()> {
        let error = match CancelSubscription::new(id).send(&self.client).await {
            Ok(_) => return Ok(()),
            Err(error) => StripeApiError::from(error),
        };
        if error.is_missing() {
            return Ok(());
        }
        if let StripeApiError::Refused { .. } = error {
            let subscription = RetrieveSubscription::new(id).send(&self.client).await?;
            if subscription.status == SubscriptionStatus::Canceled {
                return Ok(());
            }
        }
        Err(error)
    }

    /// A Customer Portal session for `customer`, which returns to `return_url`.
    pub async fn portal(&self, customer: &str, return_url: &str) -> Result<String> {
        let configuration = self.portal_configuration.get_or_try_init(|| self.find_or_make_portal()).await?;
        let session = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .configuration(configuration)
            .send(&self.client)
            .await?;
        Ok(session.url)
    }

    /// The portal configuration customers get: payment methods and invoices only. The account's default one
    /// may let them switch plans or cancel there, which would change what a server is paid for behind
    /// Spawnpoint's back (a cheaper plan's price for a bigger server); servers change plan and end in the panel.
    async fn find_or_make_portal(&self) -> Result<String> {
        // Stripe's largest page; an account has a handful of configurations.
        let listed = ListBillingPortalConfiguration::new().active(true).limit(100).send(&self.client).await?;
        let ours = listed.data.into_iter().find(|configuration| {
            configuration.metadata.as_ref().and_then(|m| m.get(PORTAL_MARK.0)).map(String::as_str)
                == Some(PORTAL_MARK.1)
        });
        if let Some(ours) = ours {
            return Ok(ours.id.as_str().to_owned());
        }
        let features = CreateBillingPortalConfigurationFeatures {
            invoice_history: Some(InvoiceListParam::new(true)),
            payment_method_update: Some(PaymentMethodUpdateParam::new(true)),
            subscription_update: Some(CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(false)),
            subscription_cancel: Some(CreateBillingPortalConfigurationFeaturesSubscriptionCancel::new(false)),
            ..CreateBillingPortalConfigurationFeatures::default()
        };
        let made = CreateBillingPortalConfiguration::new(features)
            .metadata(metadata(&[PORTAL_MARK]))
            .customize()
            .request_strategy(once_for("spawnpoint-portal-configuration-v1"))
            .send(&self.client)
            .await?;
        tracing::info!(configuration = %made.id, "made the Customer Portal configuration (no plan switching)");
        Ok(made.id.as_str().to_owned())
    }

    /// Makes Stripe hold one product per game and one monthly price per plan, as the catalog says. Products are
    /// found by their id ([`product_id`]), prices by their lookup key ([`lookup_key`]); what already matches is
    /// left alone, so running it again sends no change. A plan whose price changed gets a new price that takes
    /// over the lookup key (new checkouts use it; existing subscriptions keep theirs), and the old one is archived.
    pub async fn sync(&self, catalog: &Catalog, mut report: impl FnMut(&str, Synced)) -> Result<()> {
        for game in catalog.games() {
            let product = product_id(&game.id);
            report(&format!("product {product} ({})", game.name), self.sync_product(game, &product).await?);
            for plan in &game.plans {
                let key = lookup_key(&game.id, &plan.id);
                report(
                    &format!("price {key} ({})", catalog::format_price(plan.price_cents)),
                    self.sync_price(&product, &key, plan).await?,
                );
            }
        }
        Ok(())
    }

    async fn sync_product(&self, game: &Game, id: &str) -> Result<Synced> {
        match RetrieveProduct::new(id).send(&self.client).await.map_err(StripeApiError::from) {
            Ok(product) if product.name == game.name && product.active => Ok(Synced::Unchanged),
            Ok(_) => {
                UpdateProduct::new(id).name(game.name.clone()).active(true).send(&self.client).await?;
                Ok(Synced::Updated)
            }
            Err(error) if error.is_missing() => {
                CreateProduct::new(game.name.clone())
                    .id(id)
                    .metadata(metadata(&[("game", &game.id)]))
                    .send(&self.client)
                    .await?;
                Ok(Synced::Created)
            }
            Err(error) => Err(error),
        }
    }

    async fn sync_price(&self, product: &str, key: &str, plan: &Plan) -> Result<Synced> {
        let current = self.find_price(key).await?;
        let matches = |price: &Price| {
            price.unit_amount == Some(i64::from(plan.price_cents))
                && price.currency == Currency::USD
                && price
                    .recurring
                    .as_ref()
                    .is_some_and(|r| r.interval == RecurringInterval::Month && r.interval_count == 1)
                && price.product.id().as_str() == product
        };
        if current.as_ref().is_some_and(matches) {
            return Ok(Synced::Unchanged);
        }
        CreatePrice::new(Currency::USD)
            .product(product)
            .unit_amount(i64::from(plan.price_cents))
            .recurring(CreatePriceRecurring::new(CreatePriceRecurringInterval::Month))
            .lookup_key(key)
            .transfer_lookup_key(true)
            .nickname(plan.name.clone())
            .metadata(metadata(&[("plan", &plan.id)]))
            .send(&self.client)
            .await?;
        let Some(old) = current else { return Ok(Synced::Created) };
        UpdatePrice::new(old.id.as_str()).active(false).send(&self.client).await?;
        Ok(Synced::Updated)
    }
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

/// Sent once with idempotency key `key`: Stripe answers a repeat with the first answer instead of acting
/// twice. (Spawnpoint's keys are short and never empty, which is all a key must be.)
fn once_for(key: &str) -> RequestStrategy {
    IdempotencyKey::new(key).map_or(RequestStrategy::Once, RequestStrategy::Idempotent)
}
