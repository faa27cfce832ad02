//! The account page (`/account`): who you are, and the SSH keys that sign in to SFTP, added by pasting a
//! `.pub` file's line and removed one by one.

use catalog::account::{SshKey, User};
use leptos::prelude::*;

use crate::auth::RequireUser;
#[cfg(feature = "ssr")]
use crate::auth::ssr::Accounts;
use crate::error::{AppError, Outcome};

#[server(prefix = "/rpc", endpoint = "list_ssh_keys")]
pub async fn list_ssh_keys() -> Result<Vec<SshKey>, AppError> {
    crate::context::with_service(move |accounts: std::sync::Arc<dyn Accounts>, user| async move {
        accounts.ssh_keys(&user).await
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "add_ssh_key")]
pub async fn add_ssh_key(name: String, public_key: String) -> Result<SshKey, AppError> {
    crate::context::with_service(move |accounts: std::sync::Arc<dyn Accounts>, user| async move {
        accounts.add_ssh_key(&user, &name, &public_key).await
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "remove_ssh_key")]
pub async fn remove_ssh_key(id: String) -> Result<(), AppError> {
    crate::context::with_service(move |accounts: std::sync::Arc<dyn Accounts>, user| async move {
        accounts.remove_ssh_key(&user, &id).await
    })
    .await
}

#[component]
pub fn AccountPage() -> impl IntoView {
    fn render(user: User) -> AnyView {
        view! {
            <section class="account">
                <h1>"Your account"</h1>
                <dl>
                    <dt>"Email"</dt>
                    <dd class="email">{user.email}</dd>
                    <dt>"Role"</dt>
                    <dd>{user.role.to_string()}</dd>
                </dl>
                <SshKeys />
            </section>
        }
        .into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
fn SshKeys() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let keys = Resource::new(move || changed.get(), |_| list_ssh_keys());
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let (name, public_key) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let add = Action::new(move |_: &()| async move {
        let added = add_ssh_key(name.get_untracked(), public_key.get_untracked()).await;
        if added.is_ok() {
            name.set(String::new());
            public_key.set(String::new());
        }
        outcome.set(Some(added.map(|key| format!("Key “{}” added", key.name)).map_err(|e| e.to_string())));
        changed.update(|n| *n += 1);
    });
    let remove = Action::new(move |key: &SshKey| {
        let key = key.clone();
        async move {
            let removed = remove_ssh_key(key.id).await;
            outcome.set(Some(removed.map(|()| format!("Key “{}” removed", key.name)).map_err(|e| e.to_string())));
            changed.update(|n| *n += 1);
        }
    });
    view! {
        <section class="ssh-keys">
            <h2>"SSH keys"</h2>
            <p>
                "Keys that sign in to your servers' files over SFTP, beside your password. "
                "The username and address are on each server's Files page."
            </p>
            <Outcome outcome />
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(keys) if keys.is_empty() => view! { <p class="empty">"No keys yet."</p> }.into_any(),
                        Ok(keys) => {
                            let rows = keys
                                .into_iter()
                                .map(|key| {
                                    let label = format!("Remove {}", key.name);
                                    let shown = key.clone();
                                    let row = key.name.clone();
                                    view! {
                                        <tr data-name=row>
                                            <td class="name">{shown.name}</td>
                                            <td class="algorithm">{shown.algorithm}</td>
                                            <td class="fingerprint"><code>{shown.fingerprint}</code></td>
                                            <td>
                                                <button aria-label=label on:click=move |_| {
                                                    remove.dispatch(key.clone());
                                                }>"Remove"</button>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view();
                            view! {
                                <table>
                                    <thead>
                                        <tr><th>"Name"</th><th>"Type"</th><th>"Fingerprint"</th><th></th></tr>
                                    </thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <form on:submit=move |event| {
                event.prevent_default();
                add.dispatch(());
            }>
                <label>
                    "Name"
                    <input
                        name="name"
                        placeholder="Laptop"
                        prop:value=move || name.get()
                        on:input=move |event| name.set(event_target_value(&event))
                    />
                </label>
                <label>
                    "Public key"
                    <textarea
                        name="public_key"
                        rows="3"
                        placeholder="ssh-ed25519 AAAA… you@laptop"
                        spellcheck="false"
                        prop:value=move || public_key.get()
                        on:input=move |event| public_key.set(event_target_value(&event))
                    ></textarea>
                </label>
                <button type="submit">"Add key"</button>
            </form>
        </section>
    }
}
