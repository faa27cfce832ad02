//! Accounts in the app: sign-up, sign-in and sign-out pages, the signed-in user in the navigation, and the
//! guard that sends a signed-out visitor to sign in and back.
//!
//! The server functions here are thin: they reach the server's account service through the [`ssr::Accounts`]
//! trait in context and its authenticated session through the request, and do nothing else.

use catalog::account::User;
use leptos::prelude::*;
use leptos_router::components::{A, Redirect};
use leptos_router::hooks::{use_location, use_query_map};

#[cfg(feature = "ssr")]
use crate::context;
use crate::error::AppError;

/// The signed-in user, or `None`.
#[server(prefix = "/rpc", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<User>, AppError> {
    Ok(context::session().map(|session| session.user))
}

/// Creates an account and signs it in.
#[server(prefix = "/rpc", endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String, next: Option<String>) -> Result<User, AppError> {
    context::with_status(async move {
        let (accounts, request) = (ssr::accounts()?, context::request()?);
        accounts.register(&request, &email, &password).await?;
        let signed_in = accounts.sign_in(&request, &email, &password).await?;
        context::set_cookie(&signed_in.cookie);
        // A new account has no servers yet: straight to where one is made.
        leptos_axum::redirect(&safe_next(next.as_deref(), "/servers"));
        Ok(signed_in.user)
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<User, AppError> {
    context::with_status(async move {
        let signed_in = ssr::accounts()?.sign_in(&context::request()?, &email, &password).await?;
        context::set_cookie(&signed_in.cookie);
        leptos_axum::redirect(&safe_next(next.as_deref(), "/account"));
        Ok(signed_in.user)
    })
    .await
}

#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    context::with_status(async move {
        let session = context::require_session()?;
        let cookie = ssr::accounts()?.sign_out(&session).await?;
        context::set_cookie(&cookie);
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}

/// Where to go after signing in: `next` when it is a path on this site, else `fallback`. Anything else
/// (`https://evil.example`, `//evil.example`) would make the sign-in page an open redirect. Browsers drop tabs
/// and newlines from URLs and read `\` as `/`, so `/\t/evil.example` is `//evil.example` to them: a path
/// with any control character or backslash is refused, not cleaned.
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    let local = |path: &str| {
        path.starts_with('/') && !path.starts_with("//") && !path.chars().any(|c| c.is_control() || c == '\\')
    };
    match next {
        Some(path) if local(path) => path.to_owned(),
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

pub(crate) fn use_auth() -> Auth {
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

/// Where a form sends the visitor once signed in: the `next` they came with, else `fallback`.
fn next_from_query(fallback: &str) -> String {
    safe_next(use_query_map().read_untracked().get("next").as_deref(), fallback)
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let auth = use_auth();
    let next = next_from_query("/account");
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
    // A new account has no servers yet: straight to where one is made.
    let next = next_from_query("/servers");
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

/// Server-side: the account service the server provides.
#[cfg(feature = "ssr")]
pub mod ssr {
    use catalog::account::{SshKey, User};
    use http::request::Parts;

    use crate::context::{BoxFuture, Session};
    use crate::error::AppError;

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
        fn ssh_keys<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<Vec<SshKey>, AppError>>;
        fn add_ssh_key<'a>(
            &'a self,
            user: &'a User,
            name: &'a str,
            public_key: &'a str,
        ) -> BoxFuture<'a, Result<SshKey, AppError>>;
        fn remove_ssh_key<'a>(&'a self, user: &'a User, id: &'a str) -> BoxFuture<'a, Result<(), AppError>>;
    }

    /// The account service, from context.
    pub fn accounts() -> Result<std::sync::Arc<dyn Accounts>, AppError> {
        leptos::prelude::use_context::<std::sync::Arc<dyn Accounts>>().ok_or(AppError::Internal)
    }

    /// A new session: the user, its token, and the `Set-Cookie` value carrying it to a browser.
    pub struct SignedIn {
        pub user: User,
        pub token: String,
        pub cookie: String,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/account?tab=2"), "/"), "/account?tab=2");
        let hostile = [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r//evil.example",
            "/%09/ok-but-\u{7f}",
            "/a\\b",
            "javascript:alert(1)",
            "",
        ];
        for hostile in hostile {
            assert_eq!(safe_next(Some(hostile), "/account"), "/account", "{hostile}");
        }
        assert_eq!(safe_next(None, "/account"), "/account");
    }
}
