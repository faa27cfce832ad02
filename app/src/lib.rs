//! The Spawnpoint web app: rendered on the server for the first load, then hydrated into a single-page app.
//!
//! Server-only code lives behind the `ssr` feature; the browser build (`hydrate`) never sees it.

pub mod account;
pub mod admin;
pub mod auth;
pub mod backups;
pub mod billing;
pub mod catalog_page;
pub mod console;
#[cfg(feature = "ssr")]
pub mod context;
pub mod error;
pub mod files;
pub mod schedules;
pub mod servers;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::account::AccountPage;
use crate::admin::AdminPage;
use crate::auth::{AccountNav, Auth, SignInPage, SignUpPage};
use crate::backups::BackupsPage;
use crate::billing::BillingPage;
use crate::catalog_page::CatalogPage;
use crate::files::FilesPage;
use crate::schedules::SchedulesPage;
use crate::servers::{ServerPage, ServersPage};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                // xterm.js for the live console, from npm at build time (see scripts/setup.sh), served from here.
                <link rel="stylesheet" href="/vendor/xterm/xterm.css" />
                <script src="/vendor/xterm/xterm.js"></script>
                // CodeMirror for the file editor, bundled from npm at build time the same way.
                <script src="/vendor/codemirror/code-editor.js" defer></script>
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    Auth::provide();
    // Effects only run in the browser, so this flips once hydration is done; end-to-end tests wait for it
    // before they click, because a click before hydration does nothing.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Stylesheet id="leptos" href="/pkg/spawnpoint.css" />
        <Title text="Spawnpoint" />
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    "Spawnpoint"
                </A>
                <nav>
                    <A href="/">"Games"</A>
                </nav>
                <AccountNav />
            </header>
            <main data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=NotFound>
                    // Async: the first load is complete HTML, readable before (or without) the WASM.
                    <Route path=path!("/") view=CatalogPage ssr=SsrMode::Async />
                    <Route path=path!("/games/:game") view=CatalogPage ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=SignInPage />
                    <Route path=path!("/signup") view=SignUpPage />
                    // Async so that a signed-out visitor gets a real redirect response, not a page.
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=AdminPage ssr=SsrMode::Async />
                    <Route path=path!("/servers") view=ServersPage ssr=SsrMode::Async />
                    <Route path=path!("/servers/:id") view=ServerPage ssr=SsrMode::Async />
                    <Route path=path!("/servers/:id/files") view=FilesPage ssr=SsrMode::Async />
                    <Route path=path!("/servers/:id/backups") view=BackupsPage ssr=SsrMode::Async />
                    <Route path=path!("/servers/:id/schedules") view=SchedulesPage ssr=SsrMode::Async />
                    <Route path=path!("/billing") view=BillingPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="empty">
            <h1>"Page not found"</h1>
            <p>
                <A href="/">"Back to the games"</A>
            </p>
        </section>
    }
}
