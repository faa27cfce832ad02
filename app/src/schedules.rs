//! The schedules page (`/servers/:id/schedules`): a server's schedules with their last and next runs, a form
//! to make one (cron, time zone, tasks one per line), and run-now, pause and delete.

use catalog::ServerId;
use catalog::backups::{Schedule, describe_tasks, format_utc};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::auth::RequireUser;
use crate::error::{AppError, Outcome};

#[server(prefix = "/rpc", endpoint = "list_schedules")]
pub async fn list_schedules(id: ServerId) -> Result<Vec<Schedule>, AppError> {
    ssr::with_schedules(move |schedules, user| async move { schedules.list(&user, &id).await }).await
}

/// A new schedule from the form: tasks one per line ([`catalog::backups::parse_tasks`]).
#[server(prefix = "/rpc", endpoint = "create_schedule")]
pub async fn create_schedule(
    id: ServerId,
    name: String,
    cron: String,
    timezone: String,
    tasks: String,
    #[server(default)] keep_last: u32,
    #[server(default)] only_when_online: bool,
) -> Result<Schedule, AppError> {
    ssr::with_schedules(move |schedules, user| async move {
        let tasks = catalog::backups::parse_tasks(&tasks).map_err(|message| AppError::invalid("tasks", message))?;
        let change = catalog::backups::ScheduleChange {
            name: Some(name),
            cron: Some(cron),
            timezone: Some(timezone),
            enabled: Some(true),
            only_when_online: Some(only_when_online),
            tasks: Some(tasks),
            retention: Some(catalog::backups::Retention { keep_last, ..Default::default() }),
        };
        schedules.create(&user, &id, change).await
    })
    .await
}

/// `run`, `pause`, `resume` or `delete`.
#[server(prefix = "/rpc", endpoint = "schedule_action")]
pub async fn schedule_action(id: ServerId, schedule: String, action: String) -> Result<(), AppError> {
    ssr::with_schedules(move |schedules, user| async move { schedules.act(&user, &id, &schedule, &action).await }).await
}

#[component]
pub fn SchedulesPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! { <Schedules /> }.into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
fn Schedules() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| ServerId::new(params.read().get("id").unwrap_or_default()));
    let changed = RwSignal::new(0u32);
    let schedules = Resource::new(move || (id.get(), changed.get()), |(id, _)| list_schedules(id));
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let field = |initial: &str| RwSignal::new(initial.to_owned());
    let (name, cron, timezone) = (field(""), field("0 4 * * *"), field("UTC"));
    let (tasks, keep_last) = (field("say Restarting in 5 minutes\nwait 300\nbackup\nrestart"), field("7"));
    let online = RwSignal::new(false);
    let create = Action::new(move |_: &()| async move {
        let made = create_schedule(
            id.get_untracked(),
            name.get_untracked(),
            cron.get_untracked(),
            timezone.get_untracked(),
            tasks.get_untracked(),
            keep_last.get_untracked().trim().parse().unwrap_or(0),
            online.get_untracked(),
        )
        .await;
        outcome.set(Some(made.map(|s| format!("Schedule “{}” made", s.name)).map_err(|e| e.to_string())));
        changed.update(|n| *n += 1);
    });
    let act = Action::new(move |(schedule, action): &(String, String)| {
        let (schedule, action) = (schedule.clone(), action.clone());
        async move {
            let done = schedule_action(id.get_untracked(), schedule, action.clone()).await;
            outcome.set(Some(done.map(|()| format!("{action}: done")).map_err(|e| e.to_string())));
            changed.update(|n| *n += 1);
        }
    });
    // While a run is under way, look again each second.
    Effect::new(move |_| {
        if schedules.get().and_then(Result::ok).is_some_and(|list| list.iter().any(|s| s.running)) {
            set_timeout(move || changed.update(|n| *n += 1), std::time::Duration::from_secs(1));
        }
    });
    let input = |label: &'static str, name: &'static str, value: RwSignal<String>| {
        view! {
            <label>
                {label} " "
                <input name=name prop:value=move || value.get() on:input=move |e| value.set(event_target_value(&e)) />
            </label>
        }
    };
    view! {
        <section class="schedules">
            <p class="crumbs">
                <A href="/servers">"My servers"</A>
                " / "
                <a href=move || format!("/servers/{}", id.get())>"Server"</a>
                " / Schedules"
            </p>
            <h1>"Schedules"</h1>
            <form class="new-schedule" on:submit=move |event| {
                event.prevent_default();
                create.dispatch(());
            }>
                {input("Name", "name", name)}
                {input("When (cron: minute hour day month weekday)", "cron", cron)}
                {input("Time zone", "timezone", timezone)}
                <label>
                    "Tasks, one per line (say …, command …, wait <seconds>, backup, start, stop, restart) "
                    <textarea name="tasks" prop:value=move || tasks.get() on:input=move |e| tasks.set(event_target_value(&e))></textarea>
                </label>
                {input("Backups it keeps", "keep_last", keep_last)}
                <label>
                    <input type="checkbox" name="only_when_online" prop:checked=move || online.get()
                        on:change=move |e| online.set(event_target_checked(&e)) />
                    " Only while the server is running"
                </label>
                <button type="submit" class="primary">"Make schedule"</button>
            </form>
            <Outcome outcome=outcome />
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let list = match schedules.await {
                        Ok(list) => list,
                        Err(error) => return view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    };
                    if list.is_empty() {
                        return view! { <p class="hint">"No schedules yet."</p> }.into_any();
                    }
                    list.into_iter()
                        .map(|schedule| {
                            let button = |label: &'static str, action: &'static str| {
                                let target = schedule.id.clone();
                                view! {
                                    <button type="button" on:click=move |_| {
                                        act.dispatch((target.clone(), action.to_owned()));
                                    }>{label}</button>
                                }
                            };
                            let next = schedule.next_run_at.map_or_else(|| "paused".to_owned(), format_utc);
                            let last = match (schedule.running, schedule.last_run_at, &schedule.last_result) {
                                (true, _, _) => "running now".to_owned(),
                                (false, Some(at), Some(result)) => format!("{}: {result}", format_utc(at)),
                                _ => "never".to_owned(),
                            };
                            view! {
                                <article class="schedule" data-name=schedule.name.clone()>
                                    <h2>{schedule.name.clone()}</h2>
                                    <p><code>{schedule.cron.clone()}</code> " in " {schedule.timezone.clone()}</p>
                                    <pre class="tasks">{describe_tasks(&schedule.tasks)}</pre>
                                    <p>"Next run: " <span class="next">{next}</span></p>
                                    <p>"Last run: " <span class="last">{last}</span></p>
                                    {button("Run now", "run")}
                                    {if schedule.enabled { button("Pause", "pause") } else { button("Resume", "resume") }}
                                    {button("Delete", "delete")}
                                </article>
                            }
                        })
                        .collect_view()
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

/// Server-side: the schedule service the server provides.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::future::Future;
    use std::sync::Arc;

    use catalog::ServerId;
    use catalog::account::User;
    use catalog::backups::{Schedule, ScheduleChange};

    use crate::context::BoxFuture;
    use crate::error::AppError;

    /// What the schedules page's server functions need, provided as `Arc<dyn SchedulesPage>` in context.
    /// Every method checks what `user` may touch.
    pub trait SchedulesPage: Send + Sync + 'static {
        fn list<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<Vec<Schedule>, AppError>>;
        fn create<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            change: ScheduleChange,
        ) -> BoxFuture<'a, Result<Schedule, AppError>>;
        /// `run`, `pause`, `resume` or `delete`.
        fn act<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            schedule: &'a str,
            action: &'a str,
        ) -> BoxFuture<'a, Result<(), AppError>>;
    }

    pub async fn with_schedules<T, F, Fut>(body: F) -> Result<T, AppError>
    where
        F: FnOnce(Arc<dyn SchedulesPage>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        crate::context::with_service(body).await
    }
}
