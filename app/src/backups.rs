//! The backups page (`/servers/:id/backups`): take a backup (with ignore patterns), see each one's state, size
//! and checksum, download, restore, lock and delete; the page follows a backup or restore under way until it
//! is done.

use catalog::ServerId;
use catalog::backups::{Backup, BackupStatus};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::auth::RequireUser;
use crate::error::{AppError, Outcome};

#[server(prefix = "/rpc", endpoint = "list_backups")]
pub async fn list_backups(id: ServerId) -> Result<Vec<Backup>, AppError> {
    ssr::with_backups(move |backups, user| async move { backups.list(&user, &id).await }).await
}

#[server(prefix = "/rpc", endpoint = "create_backup")]
pub async fn create_backup(id: ServerId, name: String, #[server(default)] ignore: String) -> Result<Backup, AppError> {
    ssr::with_backups(move |backups, user| async move { backups.create(&user, &id, name, ignore).await }).await
}

/// `restore`, `lock`, `unlock` or `delete`.
#[server(prefix = "/rpc", endpoint = "backup_action")]
pub async fn backup_action(id: ServerId, backup: String, action: String) -> Result<(), AppError> {
    ssr::with_backups(move |backups, user| async move { backups.act(&user, &id, &backup, &action).await }).await
}

#[component]
pub fn BackupsPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! { <Backups /> }.into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
fn Backups() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| ServerId::new(params.read().get("id").unwrap_or_default()));
    let changed = RwSignal::new(0u32);
    let backups = Resource::new(move || (id.get(), changed.get()), |(id, _)| list_backups(id));
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let (name, ignore) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let create = Action::new(move |_: &()| async move {
        let made = create_backup(id.get_untracked(), name.get_untracked(), ignore.get_untracked()).await;
        outcome.set(Some(made.map(|b| format!("Backup “{}” started", b.name)).map_err(|e| e.to_string())));
        changed.update(|n| *n += 1);
    });
    let act = Action::new(move |(backup, action): &(String, String)| {
        let (backup, action) = (backup.clone(), action.clone());
        async move {
            let done = backup_action(id.get_untracked(), backup, action.clone()).await;
            outcome.set(Some(done.map(|()| format!("{action}: done")).map_err(|e| e.to_string())));
            changed.update(|n| *n += 1);
        }
    });
    // While a backup or restore is under way, look again each second.
    Effect::new(move |_| {
        let busy = backups
            .get()
            .and_then(Result::ok)
            .is_some_and(|list| list.iter().any(|b| b.status == BackupStatus::Pending || b.restoring));
        if busy {
            set_timeout(move || changed.update(|n| *n += 1), std::time::Duration::from_secs(1));
        }
    });
    view! {
        <section class="backups">
            <p class="crumbs">
                <A href="/servers">"My servers"</A>
                " / "
                <a href=move || format!("/servers/{}", id.get())>"Server"</a>
                " / Backups"
            </p>
            <h1>"Backups"</h1>
            <form class="new-backup" on:submit=move |event| {
                event.prevent_default();
                create.dispatch(());
            }>
                <label>"Name " <input name="name" prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e)) /></label>
                <label>
                    "Leave out (one pattern per line, like .gitignore) "
                    <textarea name="ignore" prop:value=move || ignore.get() on:input=move |e| ignore.set(event_target_value(&e))></textarea>
                </label>
                <button type="submit" class="primary">"Back up now"</button>
            </form>
            <Outcome outcome=outcome />
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let list = match backups.await {
                        Ok(list) => list,
                        Err(error) => return view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    };
                    if list.is_empty() {
                        return view! { <p class="hint">"No backups yet."</p> }.into_any();
                    }
                    let rows = list
                        .into_iter()
                        .map(|backup| {
                            let status = if backup.restoring { "restoring".to_owned() } else { backup.status.as_str().to_owned() };
                            let download = format!("/api/servers/{}/backups/{}/download", backup.server_id, backup.id);
                            let ok = backup.status == BackupStatus::Ok;
                            let button = |label: &'static str, action: &'static str, enabled: bool| {
                                let target = backup.id.clone();
                                view! {
                                    <button type="button" disabled=!enabled on:click=move |_| {
                                        act.dispatch((target.clone(), action.to_owned()));
                                    }>{label}</button>
                                }
                            };
                            view! {
                                <tr data-name=backup.name.clone()>
                                    <td class="name">{backup.name.clone()}</td>
                                    <td class="status">{status}</td>
                                    <td class="size">{backup.size.map(catalog::bytes_text)}</td>
                                    <td class="checksum"><code>{backup.sha256.clone().map(|s| s[..12.min(s.len())].to_owned())}</code></td>
                                    <td class="locked">{if backup.locked { "locked" } else { "" }}</td>
                                    <td class="actions">
                                        {ok.then(|| view! { <a href=download download="">"Download"</a> })}
                                        {button("Restore", "restore", ok && !backup.restoring)}
                                        {if backup.locked { button("Unlock", "unlock", true) } else { button("Lock", "lock", true) }}
                                        {button("Delete", "delete", !backup.locked && backup.status != BackupStatus::Pending)}
                                    </td>
                                    <td class="problem">{backup.error.clone().or(backup.restore_error.clone())}</td>
                                </tr>
                            }
                        })
                        .collect_view();
                    view! {
                        <table class="backup-list">
                            <thead>
                                <tr><th>"Name"</th><th>"Status"</th><th>"Size"</th><th>"SHA-256"</th><th>""</th><th>""</th><th>""</th></tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    }
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

/// Server-side: the backup service the server provides.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::future::Future;
    use std::sync::Arc;

    use catalog::ServerId;
    use catalog::account::User;
    use catalog::backups::Backup;

    use crate::context::BoxFuture;
    use crate::error::AppError;

    /// What the backups page's server functions need from the server's backup service, provided as
    /// `Arc<dyn BackupsPage>` in context. Every method checks what `user` may touch.
    pub trait BackupsPage: Send + Sync + 'static {
        fn list<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<Vec<Backup>, AppError>>;
        fn create<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            name: String,
            ignore: String,
        ) -> BoxFuture<'a, Result<Backup, AppError>>;
        /// `restore`, `lock`, `unlock` or `delete`.
        fn act<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            backup: &'a str,
            action: &'a str,
        ) -> BoxFuture<'a, Result<(), AppError>>;
    }

    pub async fn with_backups<T, F, Fut>(body: F) -> Result<T, AppError>
    where
        F: FnOnce(Arc<dyn BackupsPage>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        crate::context::with_service(body).await
    }
}
