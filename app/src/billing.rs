//! The billing page: each of the user's servers with its plan, price, subscription status and next renewal, and
//! a link to Stripe's Customer Portal for payment methods and invoices.

use catalog::billing::{BillingOverview, Subscription};
use catalog::format_price;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::auth::RequireUser;
use crate::error::AppError;

#[server(prefix = "/rpc", endpoint = "billing")]
pub async fn get_billing() -> Result<BillingOverview, AppError> {
    ssr::with_billing(|billing, user| async move { billing.overview(&user).await }).await
}

/// Opens a Customer Portal session and sends the browser there.
#[server(prefix = "/rpc", endpoint = "billing_portal")]
pub async fn open_billing_portal() -> Result<(), AppError> {
    ssr::with_billing(|billing, user| async move {
        let url = billing.portal(&user).await?;
        leptos_axum::redirect(&url);
        Ok(())
    })
    .await
}

#[component]
pub fn BillingPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! { <BillingDetails /> }.into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
fn BillingDetails() -> impl IntoView {
    let overview = OnceResource::new(get_billing());
    let portal = ServerAction::<OpenBillingPortal>::new();
    let portal_error = Signal::derive(move || portal.value().get().and_then(Result::err));
    view! {
        <section class="billing">
            <h1>"Billing"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let overview = match overview.await {
                        Ok(overview) => overview,
                        Err(error) => return view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    };
                    if !overview.enabled {
                        return view! {
                            <p class="hint">"Billing is off here: servers are free, within your account's limit."</p>
                        }
                            .into_any();
                    }
                    let rows = overview.subscriptions.into_iter().map(|s| view! { <SubscriptionRow s /> }).collect_view();
                    view! {
                        <table class="server-list subscriptions">
                            <thead>
                                <tr>
                                    <th>"Server"</th>
                                    <th>"Plan"</th>
                                    <th>"Price"</th>
                                    <th>"Subscription"</th>
                                    <th>"Next renewal"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                        {overview.has_customer.then(|| view! {
                            <ActionForm action=portal attr:class="portal">
                                <button type="submit">"Payment methods and invoices"</button>
                            </ActionForm>
                        })}
                        {move || portal_error.get().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                    }
                        .into_any()
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn SubscriptionRow(s: Subscription) -> impl IntoView {
    // Unpaid servers say how to pay; expired ones when they go.
    let status = match (&s.status, &s.checkout_url) {
        (_, Some(url)) => view! { <a href=url.clone() class="button">"Pay now"</a> }.into_any(),
        (Some(status), None) => {
            view! { <span class=format!("subscription subscription-{status}")>{status.to_string()}</span> }.into_any()
        }
        (None, None) => view! { <span class="subscription">"—"</span> }.into_any(),
    };
    let deadline =
        s.delete_after.map(|at| view! { <span class="status-message">{format!("deleted after {}", date(at))}</span> });
    view! {
        <tr data-server=s.server_id.to_string()>
            <td><A href=format!("/servers/{}", s.server_id)>{s.server_name.clone()}</A></td>
            <td>{format!("{} · {}", s.game, s.plan)}</td>
            <td>{format_price(s.price_cents)}</td>
            <td>{status} {deadline}</td>
            <td>{s.renews_at.map(date).unwrap_or_else(|| "—".into())}</td>
        </tr>
    }
}

/// `YYYY-MM-DD` (UTC) of Unix seconds: the same on the server and in the browser, so hydration matches.
pub fn date(unix: i64) -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use std::sync::Arc;

    use catalog::account::User;
    use catalog::billing::BillingOverview;

    use crate::context::BoxFuture;
    use crate::error::AppError;

    /// What the billing page needs from the server, provided as `Arc<dyn BillingPages>` in context.
    pub trait BillingPages: Send + Sync + 'static {
        fn overview<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<BillingOverview, AppError>>;
        /// A Customer Portal URL for the user.
        fn portal<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<String, AppError>>;
    }

    pub async fn with_billing<T, F, Fut>(body: F) -> Result<T, AppError>
    where
        F: FnOnce(Arc<dyn BillingPages>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        crate::context::with_service(body).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(951_782_400), "2000-02-29");
        assert_eq!(super::date(1_798_761_599), "2026-12-31");
    }
}
