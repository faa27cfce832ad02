//! The live console: one upstream per game server, fanned out to every viewer.
//!
//! The first viewer of a server opens its [`Channel`]: a task that follows the game's output through the
//! orchestrator (the local process's output, or one `pods/log?follow=true` stream on Kubernetes) and its status
//! through the server service's events, keeps the last [`BACKLOG_LINES`] lines as the screen, and broadcasts
//! each line. Viewers subscribe; when the last one leaves, the channel and its upstream end.
//!
//! Bounded everywhere: the broadcast holds at most [`ConsoleLimits::buffer`] items, shared by all viewers, and a
//! viewer that falls further behind (a slow connection) is moved forward with a [`ConsoleEvent::Skipped`] notice
//! instead of holding anyone up. Output beyond [`ConsoleLimits::lines_per_window`] per window is left out and
//! summarised ([`ConsoleEvent::Throttled`]), as Pterodactyl's Wings does, so a game printing in a loop cannot
//! flood browsers.
//!
//! Every line is cleaned ([`sanitize`]) on its way in: viewers' terminals get colours and text, never the
//! control sequences a game might print to rewrite the screen, retitle the window or plant links.
//!
//! The WebSocket route itself is in [`routes`].

pub mod routes;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use catalog::ServerStatus;
use catalog::console::{BACKLOG_LINES, ConsoleEvent};
use catalog::gameserver::{GameServer, ServerEvent};
use catalog::output::sanitize;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::orchestrator::{DriverError, Orchestrator};
use crate::servers::events::EventBus;

/// How often a channel whose game is not running (or whose output cannot be read) tries to follow it again,
/// besides trying at once whenever the server's status changes.
const FOLLOW_RETRY: Duration = Duration::from_secs(1);
/// Most lines in one [`ConsoleEvent::Output`] message.
const MAX_BATCH: usize = 500;

/// The console's bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleLimits {
    /// Most output lines passed on per server per `window`; the rest are counted and summarised.
    pub lines_per_window: usize,
    pub window: Duration,
    /// Items (lines, events) a viewer may fall behind by before it skips forward.
    pub buffer: usize,
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        Self { lines_per_window: 2000, window: Duration::from_millis(100), buffer: 4096 }
    }
}

/// Every open console channel, by server id.
pub struct Consoles {
    driver: Arc<dyn Orchestrator>,
    events: EventBus,
    limits: ConsoleLimits,
    channels: Mutex<HashMap<catalog::ServerId, Weak<Channel>>>,
}

/// What the broadcast carries: lines stay shared (`Arc<str>`) however many viewers there are.
#[derive(Debug, Clone)]
enum Item {
    Line(Arc<str>),
    Event(Arc<ConsoleEvent>),
}

/// One server's console: its screen and the broadcast to its viewers. The upstream task ends with it.
pub struct Channel {
    feed: Arc<Feed>,
    upstream: JoinHandle<()>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.upstream.abort();
    }
}

struct Feed {
    id: catalog::ServerId,
    screen: Mutex<Screen>,
    items: broadcast::Sender<Item>,
}

struct Screen {
    lines: VecDeque<Arc<str>>,
    status: ServerStatus,
    message: Option<String>,
}

impl Consoles {
    pub fn new(driver: Arc<dyn Orchestrator>, events: EventBus, limits: ConsoleLimits) -> Self {
        Self { driver, events, limits, channels: Mutex::default() }
    }

    /// Joins `server`'s console (opening it if nobody watches yet). The caller has checked that the user may.
    pub fn watch(&self, server: &GameServer) -> Viewer {
        let channel = {
            let mut channels = lock(&self.channels);
            match channels.get(&server.id).and_then(Weak::upgrade) {
                Some(channel) => channel,
                None => {
                    channels.retain(|_, channel| channel.strong_count() > 0);
                    let channel = Arc::new(self.open(server));
                    channels.insert(server.id.clone(), Arc::downgrade(&channel));
                    channel
                }
            }
        };
        // Under the screen's lock, which every line is added under: each line is either in this copy or
        // comes through the subscription, never both and never neither.
        let (backlog, items) = {
            let screen = lock(&channel.feed.screen);
            (screen.backlog(), channel.feed.items.subscribe())
        };
        Viewer { channel, backlog: Some(backlog), items, ahead: None }
    }

    fn open(&self, server: &GameServer) -> Channel {
        let feed = Arc::new(Feed {
            id: server.id.clone(),
            screen: Mutex::new(Screen {
                lines: VecDeque::new(),
                status: server.status,
                message: server.status_message.clone(),
            }),
            items: broadcast::channel(self.limits.buffer).0,
        });
        // Subscribed before the task starts, so no status change after `server` was read is missed.
        let events = self.events.subscribe();
        let upstream = tokio::spawn(upstream(feed.clone(), self.driver.clone(), events, self.limits));
        Channel { feed, upstream }
    }
}

/// One viewer's place in a channel.
pub struct Viewer {
    channel: Arc<Channel>,
    backlog: Option<ConsoleEvent>,
    items: broadcast::Receiver<Item>,
    /// An event read while gathering lines into a batch, sent next.
    ahead: Option<ConsoleEvent>,
}

impl Viewer {
    pub fn server_id(&self) -> &catalog::ServerId {
        &self.channel.feed.id
    }

    /// The next message for this viewer: the backlog first, then output (batched: the lines already waiting go
    /// in one message), status changes and notices. Cancel-safe.
    pub async fn next(&mut self) -> ConsoleEvent {
        if let Some(event) = self.backlog.take().or_else(|| self.ahead.take()) {
            return event;
        }
        let first = loop {
            match self.items.recv().await {
                Ok(item) => break item,
                Err(RecvError::Lagged(lines)) => return ConsoleEvent::Skipped { lines },
                // The channel owns the sender and this viewer owns the channel.
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        };
        let mut lines = match first {
            Item::Event(event) => return (*event).clone(),
            Item::Line(line) => vec![line.to_string()],
        };
        while lines.len() < MAX_BATCH {
            match self.items.try_recv() {
                Ok(Item::Line(line)) => lines.push(line.to_string()),
                Ok(Item::Event(event)) => {
                    self.ahead = Some((*event).clone());
                    break;
                }
                Err(TryRecvError::Lagged(skipped)) => {
                    self.ahead = Some(ConsoleEvent::Skipped { lines: skipped });
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        ConsoleEvent::Output { lines }
    }
}

impl Screen {
    fn backlog(&self) -> ConsoleEvent {
        ConsoleEvent::Backlog { lines: self.lines.iter().map(|line| line.to_string()).collect(), status: self.status }
    }
}

impl Feed {
    fn push(&self, line: &str) {
        let line: Arc<str> = sanitize(line).into();
        let mut screen = lock(&self.screen);
        if screen.lines.len() == BACKLOG_LINES {
            screen.lines.pop_front();
        }
        screen.lines.push_back(line.clone());
        let _ = self.items.send(Item::Line(line));
    }

    /// Replaces the whole screen, for every viewer.
    fn replace(&self, lines: Vec<String>) {
        let mut screen = lock(&self.screen);
        let kept = lines.len().saturating_sub(BACKLOG_LINES);
        screen.lines = lines[kept..].iter().map(|line| Arc::from(sanitize(line))).collect();
        let _ = self.items.send(Item::Event(Arc::new(screen.backlog())));
    }

    /// Records the server's status; tells viewers only when it (or its message) changed.
    fn status(&self, status: ServerStatus, message: Option<String>) -> bool {
        let mut screen = lock(&self.screen);
        if screen.status == status && screen.message == message {
            return false;
        }
        (screen.status, screen.message) = (status, message.clone());
        let _ = self.items.send(Item::Event(Arc::new(ConsoleEvent::Status { status, message })));
        true
    }

    fn notice(&self, event: ConsoleEvent) {
        let _guard = lock(&self.screen); // in order with lines
        let _ = self.items.send(Item::Event(Arc::new(event)));
    }
}

/// Output lines passed on per window, and how many were left out.
struct Throttle {
    limits: ConsoleLimits,
    window_start: Instant,
    passed: usize,
    left_out: u64,
}

impl Throttle {
    fn new(limits: ConsoleLimits) -> Self {
        Self { limits, window_start: Instant::now(), passed: 0, left_out: 0 }
    }

    fn admit(&mut self, now: Instant) -> bool {
        if now >= self.window_end() {
            (self.window_start, self.passed) = (now, 0);
        }
        if self.passed < self.limits.lines_per_window {
            self.passed += 1;
            true
        } else {
            self.left_out += 1;
            false
        }
    }

    fn window_end(&self) -> Instant {
        self.window_start + self.limits.window
    }
}

/// Follows one server's output and status for as long as its channel lives.
async fn upstream(
    feed: Arc<Feed>,
    driver: Arc<dyn Orchestrator>,
    mut events: broadcast::Receiver<ServerEvent>,
    limits: ConsoleLimits,
) {
    let mut throttle = Throttle::new(limits);
    let mut output: Option<BoxStream<'static, String>> = None;
    let mut last_run: Option<String> = None;
    let mut retry_at = Instant::now();
    let mut first_look = true;
    loop {
        if output.is_none() && Instant::now() >= retry_at {
            match driver.follow(&feed.id, BACKLOG_LINES).await {
                Ok(followed) => {
                    // The same run followed again (its stream broke): it starts with lines already shown.
                    if last_run.as_ref() == Some(&followed.run) {
                        feed.replace(Vec::new());
                    }
                    last_run = Some(followed.run);
                    output = Some(followed.lines);
                }
                Err(error) => {
                    if first_look {
                        // Not running: what it printed last time, where the orchestrator kept it.
                        feed.replace(driver.logs(&feed.id, BACKLOG_LINES).await.unwrap_or_default());
                    }
                    if !matches!(error, DriverError::NotRunning(_)) {
                        tracing::warn!(server = %feed.id, %error, "cannot follow the game's output; retrying");
                    }
                    retry_at = Instant::now() + FOLLOW_RETRY;
                }
            }
            first_look = false;
        }
        let following = output.is_some();
        let next_line = async {
            match output.as_mut() {
                Some(lines) => lines.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = next_line => match line {
                Some(line) => {
                    if throttle.admit(Instant::now()) {
                        feed.push(&line);
                    }
                }
                // The game ended (its status follows as an event), or the stream broke: follow again.
                None => {
                    output = None;
                    retry_at = Instant::now() + Duration::from_millis(100);
                }
            },
            event = events.recv() => match event {
                Ok(ServerEvent::Changed { server }) if server.id == feed.id => {
                    if feed.status(server.status, server.status_message) {
                        retry_at = Instant::now();
                    }
                }
                Ok(ServerEvent::Removed { id, .. }) if id == feed.id => {
                    feed.status(ServerStatus::Deleted, None);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            () = tokio::time::sleep_until(retry_at), if !following => {}
            () = tokio::time::sleep_until(throttle.window_end()), if throttle.left_out > 0 => {
                feed.notice(ConsoleEvent::Throttled { lines: std::mem::take(&mut throttle.left_out) });
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_passes_a_window_s_worth_and_counts_the_rest() {
        let limits = ConsoleLimits { lines_per_window: 3, window: Duration::from_millis(100), buffer: 16 };
        let mut throttle = Throttle::new(limits);
        let start = throttle.window_start;
        let passed = (0..5).filter(|_| throttle.admit(start)).count();
        assert_eq!((passed, throttle.left_out), (3, 2));
        // A new window passes lines again; what was left out stays counted until summarised.
        assert!(throttle.admit(start + Duration::from_millis(100)));
        assert_eq!(throttle.left_out, 2);
    }
}
