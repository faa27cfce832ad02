//! The catalog: games, their plans and prices. Works as plain HTML before hydration (every game is a link),
//! and becomes interactive after it (choosing a plan).

use catalog::{PublicGame, format_price};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::servers::list_games;

/// `(game id, plan id)` of the plan the visitor picked.
type Choice = RwSignal<Option<(String, String)>>;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let params = use_params_map();
    let catalog = OnceResource::new(list_games());
    let chosen: Choice = RwSignal::new(None);

    view! {
        <section class="catalog">
            <h1>"Host a game server"</h1>
            <p class="lede">"Pick a game, then a plan. Your server is installed for you and gets its own address, a live console and settings you can change."</p>
            <Suspense fallback=|| view! { <p class="loading">"Loading the catalog…"</p> }>
                {move || Suspend::new(async move {
                    match catalog.await {
                        Ok(games) => {
                            let selected = move || params.read().get("game");
                            view! {
                                <GameList games=games.clone() selected=Signal::derive(selected) />
                                {move || match selected() {
                                    None => view! { <p class="hint">"Choose a game to see its plans."</p> }.into_any(),
                                    Some(id) => match games.iter().find(|g| g.id == id) {
                                        Some(game) => view! { <PlanTable game=game.clone() chosen /> }.into_any(),
                                        None => view! { <p class="error">"There is no game called “" {id} "”."</p> }.into_any(),
                                    },
                                }}
                            }
                                .into_any()
                        }
                        Err(error) => view! { <p class="error">"Could not load the catalog: " {error.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn GameList(games: Vec<PublicGame>, selected: Signal<Option<String>>) -> impl IntoView {
    view! {
        <ul class="games">
            {games
                .into_iter()
                .map(|game| {
                    let cheapest = game.plans.iter().map(|p| p.price_cents).min().unwrap_or_default();
                    let meta = format!("{}/{} · from {}", game.port.port, game.port.protocol, format_price(cheapest));
                    let id = game.id.clone();
                    let is_selected = move || selected.get().as_deref() == Some(id.as_str());
                    view! {
                        <li>
                            <A href=format!("/games/{}", game.id) attr:class=move || if is_selected() { "game selected" } else { "game" }>
                                <span class="game-name">{game.name}</span>
                                <span class="game-meta">{meta}</span>
                            </A>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

#[component]
fn PlanTable(game: PublicGame, chosen: Choice) -> impl IntoView {
    let game_id = game.id.clone();
    let caption = format!("{} plans", game.name);
    let unavailable = game.unavailable.clone().map(|reason| {
        view! { <p class="hint unavailable">"Not offered on this host: " {reason}</p> }
    });
    let rows = game
        .plans
        .iter()
        .map(|plan| {
            let key = (game.id.clone(), plan.id.clone());
            let is_chosen = {
                let key = key.clone();
                move || chosen.read().as_ref() == Some(&key)
            };
            let is_chosen_too = is_chosen.clone();
            view! {
                <tr class=move || if is_chosen() { "plan chosen" } else { "plan" }>
                    <th scope="row">{plan.name.clone()}</th>
                    <td>{plan.players.to_string()}</td>
                    <td>{plan.cpu.to_string()}</td>
                    <td>{plan.memory.to_string()}</td>
                    <td>{plan.storage.to_string()}</td>
                    <td class="price">{plan.price_label()}</td>
                    <td>
                        <button
                            type="button"
                            aria-pressed=move || is_chosen_too().to_string()
                            on:click=move |_| chosen.set(Some(key.clone()))
                        >
                            "Choose " {plan.name.clone()}
                        </button>
                    </td>
                </tr>
            }
        })
        .collect_view();

    let summary = move || {
        let (chosen_game, chosen_plan) = chosen.get()?;
        if chosen_game != game_id {
            return None;
        }
        let plan = game.plan(&chosen_plan)?;
        Some(view! {
            <p class="summary" role="status">
                "You picked " <strong>{plan.name.clone()}</strong> " for " {game.name.clone()} ": "
                <strong class="price">{plan.price_label()}</strong> " "
                <A href=format!("/servers?game={}&plan={}", game.id, plan.id) attr:class="button">
                    "Create this server"
                </A>
            </p>
        })
    };

    view! {
        {unavailable}
        <table class="plans">
            <caption>{caption}</caption>
            <thead>
                <tr>
                    <th scope="col">"Plan"</th>
                    <th scope="col">"Players"</th>
                    <th scope="col">"CPU"</th>
                    <th scope="col">"Memory"</th>
                    <th scope="col">"Storage"</th>
                    <th scope="col">"Price"</th>
                    <th scope="col"></th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        {summary}
    }
}
