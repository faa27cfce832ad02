//! The admin area: every server and every account, for administrators only.

use catalog::account::User;
use leptos::prelude::*;

use crate::auth::RequireUser;
#[cfg(feature = "ssr")]
use crate::context;
use crate::error::AppError;
use crate::servers::AllServers;

/// Every account, for administrators.
#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<User>, AppError> {
    context::with_status(async move {
        let session = context::require_session()?;
        context::authorize(&session.user, catalog::account::Resource::AdminArea, "the admin area")?;
        crate::auth::ssr::accounts()?.list_users().await
    })
    .await
}

#[component]
pub fn AdminPage() -> impl IntoView {
    fn render(_admin: User) -> AnyView {
        view! {
            <AllServers />
            <UserTable />
        }
        .into_any()
    }
    view! { <RequireUser admin=true render /> }
}

#[component]
fn UserTable() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <section class="admin">
            <h1>"Accounts"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(users) => {
                            view! {
                                <table class="users">
                                    <caption>"All accounts"</caption>
                                    <thead>
                                        <tr>
                                            <th scope="col">"Email"</th>
                                            <th scope="col">"Role"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {users
                                            .into_iter()
                                            .map(|user| view! { <tr><td>{user.email}</td><td>{user.role.to_string()}</td></tr> })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}
