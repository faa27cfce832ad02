//! Accounts in the app: sign-up, sign-in and sign-out pages, the signed-in user in the navigation, and the
//! guard that sends a signed-out visitor to sign in and back.
//!
//! The server functions here are thin: they reach the server's account service through the [`ssr::Accounts`]
//! trait in context and its authenticated session through the request, and do nothing else.

use catalog::account::User;
use leptos::prelude::*;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::{use_location, use_query_map};

use crate::error::AppError;

/// The signed-in user, or `None`.
#[server(prefix = "/rpc", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<User>, AppError> {
    Ok(ssr::session().map(|session| session.user))
}

/// Creates an account and signs it in.
#[server(prefix = "/rpc", endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String, next: Option<String>) -> Result<User, AppError> {
    ssr::with_status(async move {
        let (accounts, request) = (ssr::accounts()?, ssr::request()?);
        accounts.register(&request, &email, &password).await?;
        let signed_in = accounts.sign_in(&request, &email, &password).await?;
        ssr::set_cookie(&signed_in.cookie);
        leptos_axum::redirect(&safe_next(next.as_deref(), "/account"));
        Ok(signed_in.user)
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<User, AppError> {
    ssr::with_status(async move {
        let signed_in = ssr::accounts()?.sign_in(&ssr::request()?, &email, &password).await?;
        ssr::set_cookie(&signed_in.cookie);
        leptos_axum::redirect(&safe_next(next.as_deref(), "/account"));
        Ok(signed_in.user)
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    ssr::with_status(async move {
        let session = ssr::require_session()?;
        let cookie = ssr::accounts()?.sign_out(&session).await?;
        ssr::set_cookie(&cookie);
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}

/// Every account, for administrators.
#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<User>, AppError> {
    ssr::with_status(async move {
        let session = ssr::require_session()?;
        ssr::authorize(&session.user, catalog::account::Resource::AdminArea, "the admin area")?;
        ssr::accounts()?.list_users().await
    })
    .await
}

/// Where to go after signing in: `next` when it is a path on this site, else `fallback`. Anything else
/// (`https://evil.example`, `//evil.example`) would make the sign-in page an open redirect.
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") => path.to_owned(),
        _ => fallback.to_owned(),
    }
}

/// Sign-in state shared by the navigation, the forms and the guards.
#[derive(Clone, Copy)]
pub struct Auth {
    pub user: Resource<Result<Option<User>, AppError>>,
    pub sign_in: ServerAction<SignIn>,
    pub sign_up: ServerAction<SignUp>,
    pub sign_out: ServerAction<SignOut>,
}

impl Auth {
    /// Creates the actions and the user resource, refetched whenever one of the actions completes.
    pub fn provide() -> Self {
        let sign_in = ServerAction::<SignIn>::new();
        let sign_up = ServerAction::<SignUp>::new();
        let sign_out = ServerAction::<SignOut>::new();
        let user = Resource::new(
            move || (sign_in.version().get(), sign_up.version().get(), sign_out.version().get()),
            |_| current_user(),
        );
        let auth = Self { user, sign_in, sign_up, sign_out };
        provide_context(auth);
        auth
    }
}

fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// The right-hand side of the top bar: who is signed in, or the way to sign in.
#[component]
pub fn AccountNav() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) => {
                        let admin = user.is_admin();
                        view! {
                            <div class="account-nav">
                                <A href="/servers">"My servers"</A>
                                <A href="/billing">"Billing"</A>
                                {admin.then(|| view! { <A href="/admin">"Admin"</A> })}
                                <A href="/account" attr:class="who">{user.email}</A>
                                <ActionForm action=auth.sign_out attr:class="inline">
                                    <button type="submit">"Sign out"</button>
                                </ActionForm>
                            </div>
                        }
                            .into_any()
                    }
                    _ => {
                        view! {
                            <div class="account-nav">
                                <A href="/signin">"Sign in"</A>
                                <A href="/signup" attr:class="button">"Sign up"</A>
                            </div>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn ErrorNote(error: Signal<Option<AppError>>) -> impl IntoView {
    move || error.get().map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })
}

/// Email and password inputs shared by both forms, with the `next` path carried through.
#[component]
fn CredentialFields(next: String, new_password: bool) -> impl IntoView {
    view! {
        <input type="hidden" name="next" value=next />
        <label>
            "Email" <input type="email" name="email" autocomplete="email" required />
        </label>
        <label>
            "Password"
            <input
                type="password"
                name="password"
                autocomplete=if new_password { "new-password" } else { "current-password" }
                minlength=if new_password { Some(catalog::account::MIN_PASSWORD_LEN.to_string()) } else { None }
                required
            />
        </label>
    }
}

fn next_from_query() -> String {
    safe_next(use_query_map().read_untracked().get("next").as_deref(), "/account")
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let auth = use_auth();
    let next = next_from_query();
    let error = Signal::derive(move || auth.sign_in.value().get().and_then(Result::err));
    let sign_up = format!("/signup?next={}", urlencoding::encode(&next));
    view! {
        <section class="auth">
            <h1>"Sign in"</h1>
            <ActionForm action=auth.sign_in>
                <CredentialFields next new_password=false />
                <ErrorNote error />
                <button type="submit" class="primary">"Sign in"</button>
            </ActionForm>
            <p class="hint">"No account yet? " <A href=sign_up>"Sign up"</A></p>
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let auth = use_auth();
    let next = next_from_query();
    let error = Signal::derive(move || auth.sign_up.value().get().and_then(Result::err));
    let sign_in = format!("/signin?next={}", urlencoding::encode(&next));
    view! {
        <section class="auth">
            <h1>"Create your account"</h1>
            <ActionForm action=auth.sign_up>
                <CredentialFields next new_password=true />
                <p class="hint">{format!("At least {} characters.", catalog::account::MIN_PASSWORD_LEN)}</p>
                <ErrorNote error />
                <button type="submit" class="primary">"Sign up"</button>
            </ActionForm>
            <p class="hint">"Already have an account? " <A href=sign_in>"Sign in"</A></p>
        </section>
    }
}

/// Renders `children` for a signed-in user (an administrator when `admin`); sends anyone else to sign in and
/// back here afterwards.
#[component]
pub fn RequireUser(#[prop(optional)] admin: bool, render: fn(User) -> AnyView) -> impl IntoView {
    let auth = use_auth();
    let location = use_location();
    let here = move || format!("{}{}", location.pathname.get_untracked(), location.search.get_untracked());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) if admin && !user.is_admin() => {
                        #[cfg(feature = "ssr")]
                        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                            response.set_status(http::StatusCode::FORBIDDEN);
                        }
                        view! {
                            <section class="empty">
                                <h1>"Administrators only"</h1>
                                <p>"This page needs an administrator account."</p>
                            </section>
                        }
                            .into_any()
                    }
                    Ok(Some(user)) => render(user),
                    _ => {
                        let path = format!("/signin?next={}", urlencoding::encode(&here()));
                        view! { <Redirect path /> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
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
            </section>
        }
        .into_any()
    }
    view! { <RequireUser render /> }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    fn render(_admin: User) -> AnyView {
        view! {
            <crate::servers::AllServers />
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

/// Server-side plumbing: the account service the server provides, and the request's session.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use catalog::account::{Resource, User, authorize as decide};
    use http::request::Parts;
    use leptos::prelude::*;

    use crate::error::AppError;

    pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// What the app's server functions need from the server's account service. The server implements it
    /// with the same service its REST routes use, and provides it as `Arc<dyn Accounts>` in context.
    pub trait Accounts: Send + Sync + 'static {
        /// Creates a customer account (rate-limited by the request's client address).
        fn register<'a>(
            &'a self,
            request: &'a Parts,
            email: &'a str,
            password: &'a str,
        ) -> BoxFuture<'a, Result<User, AppError>>;
        /// Checks the credentials (rate-limited by the request's client address and the email) and opens a session.
        fn sign_in<'a>(
            &'a self,
            request: &'a Parts,
            email: &'a str,
            password: &'a str,
        ) -> BoxFuture<'a, Result<SignedIn, AppError>>;
        /// Revokes the session; returns the `Set-Cookie` value that clears the browser's cookie.
        fn sign_out<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<String, AppError>>;
        fn list_users(&self) -> BoxFuture<'_, Result<Vec<User>, AppError>>;
    }

    /// A new session: the user, its token, and the `Set-Cookie` value carrying it to a browser.
    pub struct SignedIn {
        pub user: User,
        pub token: String,
        pub cookie: String,
    }

    /// How a request proved who it is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Credential {
        Cookie,
        Bearer,
    }

    /// The authenticated session of a request, put into the request's extensions by the server's
    /// authentication middleware before any handler or server function runs.
    #[derive(Debug, Clone)]
    pub struct Session {
        pub id: String,
        pub user: User,
        pub credential: Credential,
    }

    pub fn accounts() -> Result<Arc<dyn Accounts>, AppError> {
        use_context::<Arc<dyn Accounts>>().ok_or(AppError::Internal)
    }

    /// The request being served (leptos_axum provides it to server functions and to rendering).
    pub fn request() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or(AppError::Internal)
    }

    pub fn session() -> Option<Session> {
        use_context::<Parts>()?.extensions.get::<Session>().cloned()
    }

    pub fn require_session() -> Result<Session, AppError> {
        session().ok_or_else(|| AppError::Unauthorized("sign in first".into()))
    }

    /// The authorization rule, as every server function applies it.
    pub fn authorize(user: &User, resource: Resource<'_>, what: &str) -> Result<(), AppError> {
        decide(user, resource).map_err(|denied| AppError::denied(denied, what))
    }

    /// Runs a server function's body and, when it fails, answers with its error's HTTP status (401, 422, …)
    /// instead of the generic 500, so clients and logs see what happened.
    pub async fn with_status<T>(body: impl Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
        let result = body.await;
        if let (Err(error), Some(response)) = (&result, use_context::<leptos_axum::ResponseOptions>()) {
            response.set_status(
                http::StatusCode::from_u16(error.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        result
    }

    /// Runs a server function's body with the signed-in user and the service `S` from context (with
    /// [`with_status`]'s error statuses).
    pub async fn with_service<S, T, F, Fut>(body: F) -> Result<T, AppError>
    where
        S: ?Sized + Send + Sync + 'static,
        F: FnOnce(std::sync::Arc<S>, User) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        with_status(async move {
            let user = require_session()?.user;
            let service = use_context::<std::sync::Arc<S>>().ok_or(AppError::Internal)?;
            body(service, user).await
        })
        .await
    }

    pub fn set_cookie(cookie: &str) {
        if let (Some(response), Ok(value)) =
            (use_context::<leptos_axum::ResponseOptions>(), http::HeaderValue::from_str(cookie))
        {
            response.append_header(http::header::SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/account?tab=2"), "/"), "/account?tab=2");
        for hostile in ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", ""] {
            assert_eq!(safe_next(Some(hostile), "/account"), "/account", "{hostile}");
        }
        assert_eq!(safe_next(None, "/account"), "/account");
    }
}
