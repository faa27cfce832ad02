//! The dashboard: "My servers" with live status, the create form, each server's page, and the administrators'
//! view of everyone's servers.
//!
//! Pages render complete on the server; once hydrated they follow `GET /api/servers/events` (server-sent
//! events), so a status change shows without reloading. Power buttons are enabled exactly when the shared state
//! machine ([`ServerStatus::allows`]) allows the action, the same rule the server enforces.

use std::collections::BTreeMap;

use catalog::gameserver::{GameServer, ServerEvent, ServerVariables};
use catalog::variables::{Rule, Variable};
use catalog::{Action, PublicGame, ServerId, ServerStatus, format_price};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::auth::RequireUser;
use crate::console::Console;
use crate::error::AppError;

/// The signed-in user's servers, or with `all` (administrators only) everyone's.
#[server(prefix = "/rpc", endpoint = "list_servers")]
pub async fn list_servers(all: bool) -> Result<Vec<GameServer>, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.list(&user, all).await }).await
}

/// The game catalog as the server has it configured, as the public may see it, each game saying whether this
/// host can run it.
#[server(prefix = "/rpc", endpoint = "games")]
pub async fn list_games() -> Result<Vec<PublicGame>, AppError> {
    use std::sync::Arc;
    let servers = use_context::<Arc<dyn ssr::Servers>>().ok_or(AppError::Internal)?;
    Ok(servers.games())
}

/// Creates a server and goes to its page (with billing on, to its checkout). `accept_eula` is the form's
/// checkbox (present when ticked).
#[server(prefix = "/rpc", endpoint = "create_server")]
pub async fn create_server(
    name: String,
    game: String,
    plan: String,
    #[server(default)] variables: BTreeMap<String, String>,
    #[server(default)] accept_eula: Option<String>,
) -> Result<GameServer, AppError> {
    ssr::with_servers(move |servers, user| async move {
        let new = catalog::gameserver::NewServer { name, game, plan, variables, accept_eula: accept_eula.is_some() };
        let server = servers.create(&user, &new).await?;
        // With billing on, to Stripe's checkout first; it sends the customer back to the server's page.
        match &server.checkout_url {
            Some(checkout) => leptos_axum::redirect(checkout),
            None => leptos_axum::redirect(&format!("/servers/{}", server.id)),
        }
        Ok(server)
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "get_server")]
pub async fn get_server(id: ServerId) -> Result<GameServer, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.get(&user, &id).await }).await
}

#[server(prefix = "/rpc", endpoint = "server_variables")]
pub async fn get_server_variables(id: ServerId) -> Result<ServerVariables, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.variables(&user, &id).await }).await
}

/// How much of its plan's storage the server's files take (`None` where the host cannot tell).
#[server(prefix = "/rpc", endpoint = "server_disk")]
pub async fn get_server_disk(id: ServerId) -> Result<Option<catalog::gameserver::DiskUsage>, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.disk(&user, &id).await }).await
}

/// Saves the settings page's variables (a running server restarts with them).
#[server(prefix = "/rpc", endpoint = "set_server_variables")]
pub async fn set_server_variables(
    id: ServerId,
    #[server(default)] values: BTreeMap<String, String>,
) -> Result<ServerVariables, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.set_variables(&user, &id, &values).await }).await
}

/// A power action (start, stop, restart, reinstall) or delete.
#[server(prefix = "/rpc", endpoint = "power")]
pub async fn power(id: ServerId, action: Action) -> Result<GameServer, AppError> {
    ssr::with_servers(move |servers, user| async move { servers.act(&user, &id, action).await }).await
}

#[component]
pub fn ServersPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! {
            <section class="servers">
                <h1>"My servers"</h1>
                <ServerList all=false />
                <NewServerForm />
            </section>
        }
        .into_any()
    }
    view! { <RequireUser render /> }
}

/// Everyone's servers, for the admin page.
#[component]
pub fn AllServers() -> impl IntoView {
    view! {
        <section class="servers">
            <h1>"All servers"</h1>
            <ServerList all=true />
        </section>
    }
}

#[component]
fn ServerList(all: bool) -> impl IntoView {
    let initial = Resource::new(|| (), move |_| list_servers(all));
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match initial.await {
                    Ok(list) => view! { <LiveTable list all /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveTable(list: Vec<GameServer>, all: bool) -> impl IntoView {
    let servers = RwSignal::new(list);
    follow(all, move |event| apply(servers, event));
    view! {
        <Show
            when=move || !servers.read().is_empty()
            fallback=|| view! { <p class="hint empty-list">"No servers yet."</p> }
        >
            <table class="server-list">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Game"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Address"</th>
                        {all.then(|| view! { <th scope="col">"Owner"</th> })}
                    </tr>
                </thead>
                <tbody>
                    <For each=move || servers.get() key=|server| server.clone() let:server>
                        <tr data-server=server.id.to_string()>
                            <td>
                                <A href=format!("/servers/{}", server.id)>{server.name.clone()}</A>
                            </td>
                            <td>{server.game.clone()} " · " {server.plan.clone()}</td>
                            <td>
                                <StatusBadge status=server.status />
                            </td>
                            <td class="address">{server.address.clone().unwrap_or_default()}</td>
                            {all.then(|| view! { <td class="owner">{server.user_id.to_string()}</td> })}
                        </tr>
                    </For>
                </tbody>
            </table>
        </Show>
    }
}

#[component]
fn StatusBadge(status: ServerStatus) -> impl IntoView {
    view! { <span class=format!("status status-{status}")>{status.to_string()}</span> }
}

/// Game → plan (with its price) → name → the game's settings (and its licence, where it has one).
#[component]
fn NewServerForm() -> impl IntoView {
    let create = ServerAction::<CreateServer>::new();
    let choices = OnceResource::new(list_games());
    let query = use_query_map();
    let error = Signal::derive(move || create.value().get().and_then(Result::err));
    view! {
        <section class="new-server">
            <h2>"New server"</h2>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let all = match choices.await {
                        Ok(games) => games,
                        Err(error) => return view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    };
                    let games: Vec<PublicGame> = all.iter().filter(|g| g.unavailable.is_none()).cloned().collect();
                    if games.is_empty() {
                        return view! { <p class="hint">"No game can run here yet."</p> }.into_any();
                    }
                    let wanted = query.read_untracked().get("game");
                    let unavailable = wanted.clone().filter(|id| !games.iter().any(|g| &g.id == id)).map(|id| {
                        let why = all.iter().find(|g| g.id == id).and_then(|g| g.unavailable.clone());
                        let text = match why {
                            Some(why) => format!("“{id}” cannot run on this host ({why}); choose one of these games."),
                            None => format!("“{id}” cannot run on this host; choose one of these games."),
                        };
                        view! { <p class="hint">{text}</p> }
                    });
                    let first = wanted.filter(|id| games.iter().any(|g| &g.id == id)).unwrap_or_else(|| games[0].id.clone());
                    let game = RwSignal::new(first);
                    let wanted_plan = query.read_untracked().get("plan");
                    let plan = RwSignal::new(wanted_plan.clone().unwrap_or_default());
                    let games = StoredValue::new(games);
                    let chosen = move || games.with_value(|games| games.iter().find(|g| g.id == game.get()).cloned());
                    let players = move || {
                        let game = chosen()?;
                        let id = plan.get();
                        game.plan(&id).or(game.plans.first()).map(|plan| plan.players.max)
                    };
                    view! {
                        {unavailable}
                        <ActionForm action=create>
                            <label>
                                "Game"
                                <select name="game" on:change:target=move |ev| game.set(ev.target().value())>
                                    {games.with_value(|games| games
                                        .iter()
                                        .map(|g| {
                                            let selected = g.id == game.get_untracked();
                                            view! { <option value=g.id.clone() selected=selected>{g.name.clone()}</option> }
                                        })
                                        .collect_view())}
                                </select>
                            </label>
                            <label>
                                "Plan"
                                <select name="plan" on:change:target=move |ev| plan.set(ev.target().value())>
                                    {move || {
                                        chosen().map(|g| g.plans).unwrap_or_default()
                                            .into_iter()
                                            .map(|plan| {
                                                let selected = wanted_plan.as_deref() == Some(plan.id.as_str());
                                                let label = format!(
                                                    "{} · {} players · {}",
                                                    plan.name,
                                                    plan.players,
                                                    format_price(plan.price_cents),
                                                );
                                                view! { <option value=plan.id selected=selected>{label}</option> }
                                            })
                                            .collect_view()
                                    }}
                                </select>
                            </label>
                            <label>
                                "Name"
                                <input
                                    type="text"
                                    name="name"
                                    required
                                    maxlength=catalog::gameserver::MAX_NAME_LEN.to_string()
                                    placeholder="Friday night"
                                />
                            </label>
                            {move || {
                                let game = chosen()?;
                                let players = players().unwrap_or(1);
                                let fields = game
                                    .variables
                                    .iter()
                                    .map(|v| {
                                        let value = v.default_for(players);
                                        view! { <VariableField variable=v.clone() value players name=format!("variables[{}]", v.key) /> }
                                    })
                                    .collect_view();
                                Some(view! { <fieldset class="variables"><legend>"Settings"</legend>{fields}</fieldset> })
                            }}
                            {move || chosen().and_then(|g| g.eula).map(|eula| view! {
                                <label class="eula">
                                    <input type="checkbox" name="accept_eula" value="yes" required />
                                    "I accept the game's "
                                    <a href=eula target="_blank" rel="noopener">"licence (EULA)"</a>
                                </label>
                            })}
                            {move || error.get().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                            <button type="submit" class="primary">"Create server"</button>
                        </ActionForm>
                    }
                        .into_any()
                })}
            </Suspense>
        </section>
    }
}

/// One startup variable as a form field, by its rule: a number field with its bounds, a choice, a yes/no, or text
/// with its length and pattern (which the browser checks too; the server has the last word).
#[component]
fn VariableField(variable: Variable, value: String, players: u32, name: String) -> impl IntoView {
    let rule = variable.rule.describe(players);
    let input = match &variable.rule {
        Rule::Number { min, max } => view! {
            <input type="number" name=name min=min.to_string() max=max.resolve(players).to_string() value=value required />
        }
        .into_any(),
        Rule::Select { options } => {
            let options = options
                .iter()
                .map(|option| {
                    let selected = *option == value;
                    view! { <option value=option.clone() selected=selected>{option.clone()}</option> }
                })
                .collect_view();
            view! { <select name=name>{options}</select> }.into_any()
        }
        Rule::Bool => {
            let yes = value == "true";
            view! {
                <select name=name>
                    <option value="true" selected=yes>"yes"</option>
                    <option value="false" selected=!yes>"no"</option>
                </select>
            }
            .into_any()
        }
        Rule::Text { max_len, pattern } => view! {
            <input type="text" name=name maxlength=max_len.to_string() pattern=pattern.clone() value=value />
        }
        .into_any(),
    };
    let hint = if variable.description.is_empty() { rule } else { format!("{} ({rule})", variable.description) };
    view! {
        <label class="variable">
            {variable.name.clone()}
            {input}
            <small class="hint">{hint}</small>
        </label>
    }
}

#[component]
pub fn ServerPage() -> impl IntoView {
    fn render(_: catalog::account::User) -> AnyView {
        view! { <ServerDetails /> }.into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
fn ServerDetails() -> impl IntoView {
    let params = use_params_map();
    let id = move || ServerId::new(params.read().get("id").unwrap_or_default());
    let initial = Resource::new(id, get_server);
    let games = OnceResource::new(list_games());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match initial.await {
                    Ok(server) => {
                        let game = games.await.ok().and_then(|games| games.into_iter().find(|g| g.id == server.game));
                        view! { <LiveServer server game /> }.into_any()
                    }
                    Err(error) => {
                        view! {
                            <section class="empty">
                                <h1>"No such server"</h1>
                                <p class="error">{error.to_string()}</p>
                                <A href="/servers">"Back to my servers"</A>
                            </section>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn LiveServer(server: GameServer, game: Option<PublicGame>) -> impl IntoView {
    // Measured on the host (a walk of the server's files): fetched by the browser once the page is up, into a
    // plain signal. Not a resource: one read under the page's Suspense would hold the whole page at "Loading…"
    // while it loads, and it is not worth holding anything up for.
    let disk_text = RwSignal::new(None::<String>);
    {
        let id = server.id.clone();
        Effect::new(move |_| {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                if let Ok(Some(usage)) = get_server_disk(id).await {
                    let (used, limit) = (catalog::bytes_text(usage.used_bytes), catalog::bytes_text(usage.limit_bytes));
                    disk_text.set(Some(format!("{used} of {limit}")));
                }
            });
        });
    }
    let game = StoredValue::new(game);
    // "Minecraft: Java Edition · Starter: 2 vCPU, 2 GiB memory, 10 GiB storage, $3.00/month"
    let describe = move |server: &GameServer| {
        game.with_value(|game| {
            let Some(game) = game else { return format!("{} · {}", server.game, server.plan) };
            match game.plan(&server.plan) {
                Some(plan) => format!(
                    "{} · {}: {}, {} memory, {} storage, {} players, {}",
                    game.name,
                    plan.name,
                    plan.cpu,
                    plan.memory,
                    plan.storage,
                    plan.players,
                    format_price(plan.price_cents)
                ),
                None => format!("{} · {}", game.name, server.plan),
            }
        })
    };
    let id = server.id.clone();
    // `None` once it is deleted for good.
    let current = RwSignal::new(Some(server));
    {
        let id = id.clone();
        follow(false, move |event| {
            if *event.server_id() != id {
                return;
            }
            match event {
                // A view older than the one shown (delivered late) is dropped.
                ServerEvent::Changed { server }
                    if current.with_untracked(|shown| shown.as_ref().is_none_or(|shown| server.supersedes(shown))) =>
                {
                    current.set(Some(*server))
                }
                ServerEvent::Changed { .. } => {}
                ServerEvent::Removed { .. } => current.set(None),
            }
        });
    }
    // An action's answer is not applied here: the same change arrives as an event, in order with the ones
    // after it, where a late answer could overwrite a newer state.
    let power = ServerAction::<Power>::new();
    let error = Signal::derive(move || power.value().get().and_then(Result::err));
    let status = Memo::new(move |_| current.read().as_ref().map(|server| server.status));
    let confirming = RwSignal::new(false);
    let id = StoredValue::new(id);
    // Copy, so every button can have it.
    let act = move |action: Action| {
        power.dispatch(Power { id: id.get_value(), action });
    };
    let button = move |action: Action, label: &'static str| {
        view! {
            <button
                type="button"
                disabled=move || !status.get().is_some_and(|status| status.allows(action))
                on:click=move |_| act(action)
            >
                {label}
            </button>
        }
    };
    // The page then shows the server as deleted, and "Server deleted" once its clean-up is done.
    let delete = move |_| {
        act(Action::Delete);
        confirming.set(false);
    };

    view! {
        {move || match current.get() {
            None => {
                view! {
                    <section class="empty">
                        <h1>"Server deleted"</h1>
                        <p>"This server and its files are gone."</p>
                        <A href="/servers">"Back to my servers"</A>
                    </section>
                }
                    .into_any()
            }
            Some(server) => {
                view! {
                    <section class="server">
                        <p class="crumbs">
                            <A href="/servers">"My servers"</A>
                        </p>
                        <h1>{server.name.clone()}</h1>
                        <dl class="facts">
                            <dt>"Status"</dt>
                            <dd>
                                <StatusBadge status=server.status />
                                {server.status_message.clone().map(|m| view! { <span class="status-message">{m}</span> })}
                                {server.install.clone().map(|install| {
                                    let total = install.total_bytes.map(|t| t.to_string());
                                    view! {
                                        <span class="install" role="status">
                                            "Installing: " {install.describe()}
                                            <progress value=install.done_bytes.to_string() max=total></progress>
                                        </span>
                                    }
                                })}
                                {(server.status == ServerStatus::Pending && server.status_message.is_none())
                                    .then(|| view! { <span class="status-message">"Starting the game…"</span> })}
                                {server.checkout_url.clone().map(|url| view! {
                                    <a href=url class="button primary pay">"Pay now"</a>
                                    <span class="status-message">"It is set up as soon as the payment arrives."</span>
                                })}
                            </dd>
                            <dt>"Address"</dt>
                            <dd class="address">
                                {server.address.clone().unwrap_or_else(|| "— (not running)".into())}
                            </dd>
                            <dt>"Game"</dt>
                            <dd class="game">{describe(&server)}</dd>
                            {move || disk_text.get().map(|text| view! { <dt>"Disk"</dt><dd class="disk">{text}</dd> })}
                            <dt>"Id"</dt>
                            <dd><code>{server.id.to_string()}</code></dd>
                        </dl>
                        <nav class="server-tabs">
                            <a href=format!("/servers/{}/files", server.id)>"Files"</a>
                            <a href=format!("/servers/{}/backups", server.id)>"Backups"</a>
                            <a href=format!("/servers/{}/schedules", server.id)>"Schedules"</a>
                        </nav>
                    </section>
                }
                    .into_any()
            }
        }}
        <Show when=move || current.read().is_some()>
            <div class="power" role="group" aria-label="Power">
                {button(Action::Start, "Start")}
                {button(Action::Stop, "Stop")}
                {button(Action::Restart, "Restart")}
                {button(Action::Reinstall, "Reinstall")}
                <button
                    type="button"
                    class="danger"
                    disabled=move || !status.get().is_some_and(|status| status.allows(Action::Delete))
                    on:click=move |_| confirming.set(true)
                >
                    "Delete"
                </button>
            </div>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Show when=move || confirming.get()>
                <div class="confirm" role="alertdialog" aria-label="Confirm deletion">
                    <p>"Delete this server? Its files are deleted too, and this cannot be undone."</p>
                    <button type="button" class="danger" on:click=delete>
                        "Delete for good"
                    </button>
                    <button type="button" on:click=move |_| confirming.set(false)>
                        "Keep it"
                    </button>
                </div>
            </Show>
            <Console id=id.get_value() />
            <ServerSettings id=id.get_value() />
        </Show>
    }
}

/// The server's startup variables, saved together; a running server restarts with them.
#[component]
fn ServerSettings(id: ServerId) -> impl IntoView {
    let save = ServerAction::<SetServerVariables>::new();
    let loaded = Resource::new(move || save.version().get(), {
        let id = id.clone();
        move |_| get_server_variables(id.clone())
    });
    let outcome = move || {
        save.value().get().map(|result| match result {
            Ok(_) => view! { <p class="saved" role="status">"Saved."</p> }.into_any(),
            Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <section class="settings">
            <h2>"Settings"</h2>
            <Suspense fallback=|| ()>
                {move || {
                    let id = id.clone();
                    Suspend::new(async move {
                        let settings = match loaded.await {
                            Ok(settings) => settings,
                            Err(error) => return view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        };
                        if settings.variables.is_empty() {
                            return view! { <p class="hint">"This game has no settings."</p> }.into_any();
                        }
                        let fields = settings
                            .variables
                            .iter()
                            .map(|v| {
                                let value = settings.values.get(&v.key).cloned().unwrap_or_default();
                                let name = format!("values[{}]", v.key);
                                view! { <VariableField variable=v.clone() value players=settings.plan_players name /> }
                            })
                            .collect_view();
                        view! {
                            <ActionForm action=save>
                                <input type="hidden" name="id" value=id.to_string() />
                                {fields}
                                <p class="hint">"Saving restarts a running server; a new version is installed first."</p>
                                <button type="submit">"Save settings"</button>
                            </ActionForm>
                        }
                        .into_any()
                    })
                }}
            </Suspense>
            {outcome}
        </section>
    }
}

/// Applies one pushed event to a list of servers. A view older than the one shown (a stale event, delivered
/// after a newer one or after the snapshot) is dropped.
fn apply(servers: RwSignal<Vec<GameServer>>, event: ServerEvent) {
    servers.update(|list| match event {
        ServerEvent::Changed { server } => match list.iter_mut().find(|s| s.id == server.id) {
            Some(slot) if server.supersedes(slot) => *slot = *server,
            Some(_) => {}
            None => list.push(*server),
        },
        ServerEvent::Removed { id, .. } => list.retain(|s| s.id != id),
    });
}

/// Calls `on_event` for each server event pushed to this page, from hydration until the page is left. The
/// browser's `EventSource` reconnects by itself after a drop, and the stream then opens with a fresh snapshot.
fn follow(all: bool, on_event: impl Fn(ServerEvent) + 'static) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast as _;
        use wasm_bindgen::closure::Closure;

        let url = if all { "/api/servers/events?all=true" } else { "/api/servers/events" };
        let Ok(source) = web_sys::EventSource::new(url) else { return };
        let on_message = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |message: web_sys::MessageEvent| {
            let event = message.data().as_string().and_then(|text| serde_json::from_str::<ServerEvent>(&text).ok());
            if let Some(event) = event {
                on_event(event);
            }
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let open = StoredValue::new_local(Some((source, on_message)));
        on_cleanup(move || {
            if let Some((source, _)) = open.try_update_value(Option::take).flatten() {
                source.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (all, on_event);
}

/// Server-side: the game-server service the server provides.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::future::Future;
    use std::sync::Arc;

    use std::collections::BTreeMap;

    use catalog::account::User;
    use catalog::gameserver::{DiskUsage, GameServer, NewServer, ServerVariables};
    use catalog::{Action, PublicGame, ServerId};

    use crate::context::BoxFuture;
    use crate::error::AppError;

    /// What the dashboard's server functions and the REST routes need from the server's game-server service,
    /// provided as `Arc<dyn Servers>` in context. Every method checks what `user` may touch.
    pub trait Servers: Send + Sync + 'static {
        fn list<'a>(&'a self, user: &'a User, all: bool) -> BoxFuture<'a, Result<Vec<GameServer>, AppError>>;
        /// Every game in the catalog, each saying why this Spawnpoint cannot run it, if it cannot.
        fn games(&self) -> Vec<PublicGame>;
        fn create<'a>(&'a self, user: &'a User, new: &'a NewServer) -> BoxFuture<'a, Result<GameServer, AppError>>;
        fn get<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<GameServer, AppError>>;
        fn disk<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<Option<DiskUsage>, AppError>>;
        fn variables<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
        ) -> BoxFuture<'a, Result<ServerVariables, AppError>>;
        fn set_variables<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            values: &'a BTreeMap<String, String>,
        ) -> BoxFuture<'a, Result<ServerVariables, AppError>>;
        fn act<'a>(
            &'a self,
            user: &'a User,
            id: &'a ServerId,
            action: Action,
        ) -> BoxFuture<'a, Result<GameServer, AppError>>;
    }

    /// Runs a server function body with the service and the signed-in user, answering with the error's status.
    pub async fn with_servers<T, F, Fut>(body: F) -> Result<T, AppError>
    where
        F: FnOnce(Arc<dyn Servers>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        crate::context::with_service(body).await
    }
}
