//! The live console on a server's page: an xterm.js terminal fed by the console WebSocket
//! (`/api/servers/{id}/console`, messages in [`catalog::console`]), and a command box with history.
//!
//! xterm.js comes from npm at build time and is served by Spawnpoint itself (`/vendor/xterm/`, loaded by the
//! shell); a few lines of wasm-bindgen below are all the binding it needs. The socket reconnects by itself
//! after a drop; every connection opens with a backlog that replaces the screen, so nothing shows twice.

use leptos::prelude::*;

/// Commands remembered for the up/down keys.
const HISTORY: usize = 100;

/// Whether the console's socket is open, as the indicator beside the terminal shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // changed by the browser's socket only
enum Link {
    Connecting,
    Live,
    Reconnecting,
}

impl Link {
    /// The `data-link` attribute (styles and tests key on it); spelled out rather than formatted, which would pull
    /// Unicode tables into the browser build.
    fn attr(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Live => "live",
            Link::Reconnecting => "reconnecting",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Link::Connecting => "connecting…",
            Link::Live => "live",
            Link::Reconnecting => "reconnecting…",
        }
    }
}

#[component]
pub fn Console(id: catalog::ServerId) -> impl IntoView {
    let screen = NodeRef::<leptos::html::Div>::new();
    let link = RwSignal::new(Link::Connecting);
    let command = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    // Oldest first; `browsing` is the position while stepping through it with the arrow keys.
    let history = StoredValue::new(Vec::<String>::new());
    let browsing = StoredValue::new(None::<usize>);
    let send = browser::connect(id, screen, link, error);

    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let line = command.get_untracked();
        if line.trim().is_empty() {
            return;
        }
        error.set(None);
        if send(&line) {
            history.update_value(|history| {
                if history.last() != Some(&line) {
                    history.push(line.clone());
                }
                if history.len() > HISTORY {
                    history.remove(0);
                }
            });
            browsing.set_value(None);
            command.set(String::new());
        } else {
            error.set(Some("Not connected; the command was not sent.".into()));
        }
    };
    let on_keydown = move |event: leptos::ev::KeyboardEvent| {
        let len = history.with_value(Vec::len);
        let at = browsing.get_value();
        let next = match event.key().as_str() {
            "ArrowUp" if len > 0 => Some(at.map_or(len - 1, |at| at.saturating_sub(1))),
            "ArrowDown" => at.and_then(|at| (at + 1 < len).then_some(at + 1)),
            _ => return,
        };
        event.prevent_default();
        browsing.set_value(next);
        command.set(next.and_then(|at| history.with_value(|h| h.get(at).cloned())).unwrap_or_default());
    };

    view! {
        <section class="console">
            <h2>
                "Console "
                <span class="link" data-link=move || link.get().attr()>
                    {move || link.get().label()}
                </span>
            </h2>
            <div class="screen" node_ref=screen aria-label="Console output"></div>
            <form class="command" on:submit=on_submit>
                <label for="console-command" class="visually-hidden">
                    "Command"
                </label>
                <input
                    id="console-command"
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="Type a command, e.g. say hello"
                    prop:value=move || command.get()
                    on:input=move |event| command.set(event_target_value(&event))
                    on:keydown=on_keydown
                />
                <button type="submit">"Send"</button>
            </form>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use catalog::console::{ConsoleCommand, ConsoleEvent};
    use leptos::prelude::*;
    use wasm_bindgen::JsCast as _;
    use wasm_bindgen::prelude::*;
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::Link;

    #[wasm_bindgen]
    extern "C" {
        /// xterm.js's `Terminal` (the global its script defines).
        type Terminal;
        #[wasm_bindgen(constructor)]
        fn new(options: &JsValue) -> Terminal;
        #[wasm_bindgen(method)]
        fn open(this: &Terminal, parent: &web_sys::HtmlElement);
        #[wasm_bindgen(method)]
        fn write(this: &Terminal, data: &str);
        #[wasm_bindgen(method)]
        fn reset(this: &Terminal);
        #[wasm_bindgen(method)]
        fn dispose(this: &Terminal);
    }

    const OPTIONS: &str = r##"{"convertEol":true,"disableStdin":true,"cols":100,"rows":24,"scrollback":5000,
        "fontSize":13,"theme":{"background":"#0f1115"}}"##;
    /// Reconnect delays grow to this.
    const MAX_BACKOFF: Duration = Duration::from_secs(10);

    /// A line of Spawnpoint's own, set apart from the game's output.
    fn notice(text: &str) -> String {
        // Reset first: whatever style the game's output left on is not the notice's.
        format!("\x1b[0m\x1b[2;36m[console] {text}\x1b[0m\r\n")
    }

    fn draw(terminal: &Terminal, event: ConsoleEvent, error: RwSignal<Option<String>>) {
        let lines = |lines: Vec<String>| lines.into_iter().map(|line| line + "\r\n").collect::<String>();
        match event {
            ConsoleEvent::Backlog { lines: backlog, status } => {
                terminal.reset();
                terminal.write(&lines(backlog));
                if !matches!(status, catalog::ServerStatus::Running) {
                    terminal.write(&notice(&format!("the server is {status}")));
                }
            }
            ConsoleEvent::Output { lines: output } => terminal.write(&lines(output)),
            ConsoleEvent::Status { status, message } => {
                let why = message.map(|m| format!(" ({m})")).unwrap_or_default();
                terminal.write(&notice(&format!("the server is {status}{why}")));
            }
            ConsoleEvent::Skipped { lines } => {
                terminal.write(&notice(&format!("{lines} lines skipped: this connection fell behind")));
            }
            ConsoleEvent::Throttled { lines } => {
                terminal.write(&notice(&format!("{lines} lines left out: the game printed too fast")));
            }
            ConsoleEvent::Error { message } => error.set(Some(message)),
            ConsoleEvent::Unknown => {}
        }
    }

    /// Opens the terminal once the page is hydrated and keeps a socket to the console connected until the
    /// component goes. Returns the command sender: `false` when not connected.
    pub fn connect(
        id: catalog::ServerId,
        screen: NodeRef<leptos::html::Div>,
        link: RwSignal<Link>,
        error: RwSignal<Option<String>>,
    ) -> impl Fn(&str) -> bool + Copy + 'static {
        let socket = StoredValue::new_local(None::<WebSocket>);
        // Shared with the clean-up, which Leptos requires to be `Send`.
        let alive = Arc::new(AtomicBool::new(true));
        let terminal = StoredValue::new_local(None::<Rc<Terminal>>);
        Effect::new({
            let alive = alive.clone();
            move |_| {
                let Some(element) = screen.get() else { return };
                if terminal.with_value(Option::is_some) {
                    return;
                }
                let options = js_sys::JSON::parse(OPTIONS).unwrap_or(JsValue::UNDEFINED);
                let term = Rc::new(Terminal::new(&options));
                term.open(&element);
                terminal.set_value(Some(term.clone()));
                open(Rc::new(Session { id: id.clone(), term, socket, link, error, alive: alive.clone() }), 0);
            }
        });
        on_cleanup(move || {
            alive.store(false, Ordering::Relaxed);
            if let Some(socket) = socket.try_update_value(Option::take).flatten() {
                let _ = socket.close();
            }
            if let Some(term) = terminal.try_update_value(Option::take).flatten() {
                term.dispose();
            }
        });
        move |line: &str| {
            let json = serde_json::to_string(&ConsoleCommand::Command { line: line.to_owned() });
            socket
                .try_with_value(|socket| match (socket, json) {
                    (Some(socket), Ok(json)) if socket.ready_state() == WebSocket::OPEN => {
                        socket.send_with_str(&json).is_ok()
                    }
                    _ => false,
                })
                .unwrap_or(false)
        }
    }

    struct Session {
        id: catalog::ServerId,
        term: Rc<Terminal>,
        socket: StoredValue<Option<WebSocket>, LocalStorage>,
        link: RwSignal<Link>,
        error: RwSignal<Option<String>>,
        alive: Arc<AtomicBool>,
    }

    /// Opens a socket; on close, tries again after a delay that grows with each failed attempt.
    fn open(session: Rc<Session>, failures: u32) {
        if !session.alive.load(Ordering::Relaxed) {
            return;
        }
        let location = window().location();
        let scheme = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
        let host = location.host().unwrap_or_default();
        let Ok(socket) = WebSocket::new(&format!("{scheme}://{host}/api/servers/{}/console", session.id)) else {
            return;
        };
        let opened = Rc::new(RefCell::new(false));
        let on_message = Closure::<dyn Fn(MessageEvent)>::new({
            let (session, opened) = (session.clone(), opened.clone());
            move |message: MessageEvent| {
                let Some(text) = message.data().as_string() else { return };
                let Ok(event) = serde_json::from_str::<ConsoleEvent>(&text) else { return };
                *opened.borrow_mut() = true;
                session.link.set(Link::Live);
                draw(&session.term, event, session.error);
            }
        });
        let on_close = Closure::<dyn Fn(CloseEvent)>::new({
            let session = session.clone();
            move |_: CloseEvent| {
                if !session.alive.load(Ordering::Relaxed) {
                    return;
                }
                session.link.set(Link::Reconnecting);
                // A connection that got as far as its backlog starts the backoff over.
                let failures = if *opened.borrow() { 0 } else { failures + 1 };
                let delay = Duration::from_millis(500 * 2u64.pow(failures.min(5))).min(MAX_BACKOFF);
                let session = session.clone();
                set_timeout(move || open(session, failures), delay);
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        // The handlers live as long as the socket, which outlives this call.
        on_message.forget();
        on_close.forget();
        session.socket.set_value(Some(socket));
    }
}

#[cfg(not(feature = "hydrate"))]
mod browser {
    use leptos::prelude::*;

    use super::Link;

    /// On the server the console renders empty; the browser connects it after hydration.
    pub fn connect(
        _id: catalog::ServerId,
        _screen: NodeRef<leptos::html::Div>,
        _link: RwSignal<Link>,
        _error: RwSignal<Option<String>>,
    ) -> impl Fn(&str) -> bool + Copy + 'static {
        |_: &str| false
    }
}
