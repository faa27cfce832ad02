//! The streaming subresources the console uses: `pods/{name}/log` (with `follow=true`, a chunked body that
//! stays open while the container runs) and `pods/{name}/attach` over a WebSocket, speaking Kubernetes' channel
//! protocol (`v5.channel.k8s.io`, or `v4`): each binary frame starts with its stream's number (0 stdin, 1
//! stdout, 2 stderr, 3 the final `Status`, 255 "close stream N" in v5).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts as _;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast::error::RecvError;

use crate::Shared;
use crate::answers::{not_found, query_map, status};
use crate::kubelet::{self, PodProcess};
use crate::store::PODS;

const STDIN: u8 = 0;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

fn bad_request(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

/// The pod's container named by `container`, as kube-apiserver picks it: the only one when none is named. The
/// error is the 400's message.
fn container<'a>(pod: &'a Value, name: &str, query: &HashMap<String, String>) -> Result<&'a Value, String> {
    let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    match query.get("container") {
        Some(wanted) => containers
            .iter()
            .find(|c| c["name"] == wanted.as_str())
            .ok_or_else(|| format!("container {wanted} is not valid for pod {name}")),
        None if containers.len() == 1 => Ok(&containers[0]),
        None => Err(format!("a container name must be specified for pod {name}")),
    }
}

/// `GET …/pods/{name}/log`: the log so far (or its last `tailLines`), and with `follow=true` each new line
/// until the container ends.
pub(crate) fn log(shared: &Shared, namespace: &str, name: &str, query: &HashMap<String, String>) -> Response {
    let Some(pod) = shared.store().get(PODS, namespace, name) else {
        return not_found(PODS, name);
    };
    let container = match container(&pod, name, query) {
        Ok(container) => container["name"].as_str().unwrap_or_default().to_owned(),
        Err(why) => return bad_request(why),
    };
    let tail = query.get("tailLines").and_then(|t| t.parse().ok());
    let Some((lines, live)) = shared.pod_log(name, tail) else {
        return bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        ));
    };
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let follow = query.get("follow").is_some_and(|f| f == "true" || f == "1");
    let Some(live) = live.filter(|_| follow) else {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response();
    };
    let first = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(text)) });
    let then = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            match live.recv().await {
                Ok(line) => return Some((Ok(Bytes::from(format!("{line}\n"))), live)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let body = Body::from_stream(first.chain(then));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// `GET …/pods/{name}/attach?stdin=true` with a WebSocket upgrade: what the client sends on stream 0 goes to
/// the container's standard input. (The simulator attaches stdin only; nothing Spawnpoint does reads output
/// through an attachment.)
pub(crate) async fn attach(shared: &Arc<Shared>, parts: &mut Parts, namespace: &str, name: &str) -> Response {
    let query = query_map(parts.uri.query());
    let Some(pod) = shared.store().get(PODS, namespace, name) else {
        return not_found(PODS, name);
    };
    let container = match container(&pod, name, &query) {
        Ok(container) => container.clone(),
        Err(why) => return bad_request(why),
    };
    let flag = |key: &str| query.get(key).is_some_and(|v| v == "true" || v == "1");
    if !flag("stdin") || flag("stdout") || flag("stderr") || flag("tty") {
        return bad_request("the simulator attaches stdin only: stdin=true, stdout=false, stderr=false".into());
    }
    let container_name = container["name"].as_str().unwrap_or_default();
    if container["stdin"] != true {
        return bad_request(format!("container {container_name} has no stdin: its spec does not set `stdin: true`"));
    }
    let Some(process) = kubelet::process(shared, namespace, name) else {
        return bad_request(format!("container {container_name} is not running"));
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(_) => return bad_request("attach needs a WebSocket upgrade".into()),
    };
    upgrade.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"]).on_upgrade(move |socket| session(socket, process))
}

/// Copies stream 0 to the container's stdin until the client closes it, then answers with a `Success` status
/// as the kubelet does when an attachment ends. The container's stdin stays open for the next attachment.
async fn session(mut socket: WebSocket, process: Arc<PodProcess>) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Binary(frame) => match frame.first() {
                Some(&STDIN) => {
                    if let Some(stdin) = process.stdin.lock().await.as_mut() {
                        let _ = stdin.write_all(&frame[1..]).await;
                        let _ = stdin.flush().await;
                    }
                }
                Some(&CLOSE) if frame.get(1) == Some(&STDIN) => break,
                _ => {}
            },
            Message::Close(_) => return,
            _ => {}
        }
    }
    let mut frame = vec![STATUS];
    frame.extend_from_slice(json!({ "metadata": {}, "status": "Success" }).to_string().as_bytes());
    let _ = socket.send(Message::Binary(frame.into())).await;
    let _ = socket.send(Message::Close(None)).await;
}
