//! The HTTP surface: the Kubernetes REST paths the Agones driver uses, answering as kube-apiserver does (object
//! and list bodies, `Status` errors, newline-delimited watch events with bookmarks, 410 for a watch that asks
//! for history that is gone).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::Shared;
use crate::answers::{invalid, json_response, not_found, query_map, status, store_error};
use crate::store::{Change, PODS, RESOURCES, Resource, matches_selector, merge_patch};

/// Where a request points: a resource, maybe a namespace, maybe one object, maybe a subresource.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some((*namespace).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    let resource = RESOURCES.into_iter().find(|r| r.plural == plural && r.api_version == api_version)?;
    Some(Target {
        resource,
        namespace: if resource.namespaced { namespace } else { None },
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// Every request comes here, and is recorded as it arrives and again with its answer's status.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    shared.log_arrival(&parts.method, parts.uri.path());
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let response = match parse_path(parts.uri.path()) {
        // A WebSocket upgrade, which needs the request's parts themselves.
        Some(Target { resource, namespace: Some(namespace), name: Some(name), subresource: Some(sub) })
            if resource == PODS && sub == "attach" && parts.method == Method::GET =>
        {
            crate::streams::attach(&shared, &mut parts, &namespace, &name).await
        }
        _ => answer(&shared, &parts, &body).await,
    };
    shared.log_request(&parts.method, &parts.uri.to_string(), &body, response.status().as_u16());
    response
}

async fn answer(shared: &Arc<Shared>, parts: &axum::http::request::Parts, body: &Bytes) -> Response {
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let query = query_map(parts.uri.query());

    let Some(target) = parse_path(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            json!({}),
        );
    };
    if let Some(code) = shared.take_fault(&method, target.resource.plural) {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The reasons kube-apiserver gives with these codes.
        let reason = match code.as_u16() {
            404 => "NotFound",
            409 if method == Method::POST => "AlreadyExists",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        let message = format!("{reason} (injected) has prevented the request from succeeding");
        return status(code, reason, message, json!({}));
    }
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let namespace = target.namespace.clone().unwrap_or_default();
    match (&method, target.name.as_deref(), target.subresource.as_deref()) {
        (&Method::GET, None, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, &target, &query)
        }
        (&Method::GET, None, None) => list(shared, &target, &query),
        (&Method::POST, None, None) => create(shared, &target, body),
        (&Method::GET, Some(name), None) => match shared.store().get(target.resource, &namespace, name) {
            Some(object) => json_response(StatusCode::OK, &object),
            None => not_found(target.resource, name),
        },
        (&Method::DELETE, Some(name), None) => {
            // DeleteOptions' preconditions: only this very object (uid), or only at this version.
            let options: Value = serde_json::from_slice(body).unwrap_or_default();
            let preconditions = &options["preconditions"];
            if let Some(current) = shared.store().get(target.resource, &namespace, name) {
                for (field, meta) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
                    if let Some(wanted) = preconditions[field].as_str()
                        && current["metadata"][field] != wanted
                    {
                        let found = current["metadata"][field].as_str().unwrap_or_default();
                        let message = format!(
                            "Precondition failed: {meta} in precondition: {wanted}, {meta} in object meta: {found}"
                        );
                        return status(StatusCode::CONFLICT, "Conflict", message, json!({ "name": name }));
                    }
                }
            }
            let deleted = shared.store().delete(target.resource, &namespace, name);
            match deleted {
                Ok(object) => {
                    shared.deleted(target.resource, &namespace, name);
                    json_response(StatusCode::OK, &object)
                }
                Err(error) => store_error(error, target.resource, name),
            }
        }
        (&Method::PATCH, Some(name), None) => patch(shared, &target, name, &parts.headers, body),
        (&Method::GET, Some(name), Some("log")) if target.resource == PODS => {
            crate::streams::log(shared, &namespace, name, &query)
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
            json!({}),
        ),
    }
}

fn list(shared: &Shared, target: &Target, query: &HashMap<String, String>) -> Response {
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or_default();
    let (items, revision) = {
        let store = shared.store();
        (store.list(target.resource, target.namespace.as_deref()), store.revision())
    };
    let mut matching = Vec::new();
    for item in items {
        match matches_selector(&item, selector) {
            Ok(true) => matching.push(item),
            Ok(false) => {}
            Err(why) => return status(StatusCode::BAD_REQUEST, "BadRequest", why, json!({})),
        }
    }
    // Pages: `continue` is the offset of the next item (opaque to clients).
    let start: usize = query.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).filter(|&l| l > 0).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(matching.len());
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if end < matching.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    let items: Vec<Value> = matching.get(start..end).unwrap_or_default().to_vec();
    shared.count_list(target.resource.plural);
    let body = json!({
        "kind": format!("{}List", target.resource.kind),
        "apiVersion": target.resource.api_version,
        "metadata": metadata,
        "items": items,
    });
    json_response(StatusCode::OK, &body)
}

fn create(shared: &Shared, target: &Target, body: &Bytes) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into(), json!({}));
    };
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if name.is_empty() {
        return invalid(target.resource, "", vec![("metadata.name".into(), "Required value: name is required".into())]);
    }
    if object["kind"].as_str().is_some_and(|kind| kind != target.resource.kind) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("the body is not a {}", target.resource.kind),
            json!({}),
        );
    }
    if let Err(causes) = shared.admit(target.resource, &mut object) {
        return invalid(target.resource, &name, causes);
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let created = shared.store().create(target.resource, &namespace, object);
    match created {
        Ok(object) => json_response(StatusCode::CREATED, &object),
        Err(error) => store_error(error, target.resource, &name),
    }
}

fn patch(shared: &Shared, target: &Target, name: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !(content_type.starts_with("application/merge-patch+json")
        || content_type.starts_with("application/strategic-merge-patch+json"))
    {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the simulator does not take `{content_type}` patches"),
            json!({}),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the patch is not JSON".into(), json!({}));
    };
    let expected = patch["metadata"]["resourceVersion"].as_str().map(str::to_owned);
    let namespace = target.namespace.clone().unwrap_or_default();
    let updated = shared.store().update(target.resource, &namespace, name, expected.as_deref(), |object| {
        merge_patch(object, &patch);
    });
    match updated {
        Ok(object) => json_response(StatusCode::OK, &object),
        Err(error) => store_error(error, target.resource, name),
    }
}

/// A watch: newline-delimited `{"type", "object"}` events from the requested resourceVersion on, with
/// bookmarks when asked for, ending after `timeoutSeconds` (or when the simulator drops watches).
fn watch(shared: &Arc<Shared>, target: &Target, query: &HashMap<String, String>) -> Response {
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    if let Err(why) = matches_selector(&json!({}), &selector) {
        return status(StatusCode::BAD_REQUEST, "BadRequest", why, json!({}));
    }
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout =
        query.get("timeoutSeconds").and_then(|t| t.parse().ok()).map_or(Duration::from_secs(1800), Duration::from_secs);
    let from = query.get("resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0").map(|rv| rv.parse::<u64>());
    let (resource, namespace) = (target.resource, target.namespace.clone());

    let (first, mut changes, mut dropped) = {
        let store = shared.store();
        let changes = store.subscribe();
        let first: Vec<Value> = match from {
            // No version: the current state as ADDED events, then what follows.
            None => store
                .list(resource, namespace.as_deref())
                .into_iter()
                .filter(|object| matches_selector(object, &selector).unwrap_or(false))
                .map(|object| json!({ "type": "ADDED", "object": object }))
                .collect(),
            Some(Ok(revision)) if revision >= store.oldest_resumable() => store
                .history_after(revision)
                .iter()
                .filter(|change| wanted(change, resource, namespace.as_deref(), &selector))
                .map(|change| event(change))
                .collect(),
            Some(_) => {
                let message = format!(
                    "too old resource version: {} ({})",
                    query["resourceVersion"],
                    store.oldest_resumable() + 1
                );
                let gone = json!({ "type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": "Expired", "code": 410 } });
                return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{gone}\n"))
                    .into_response();
            }
        };
        (first, changes, shared.drops())
    };
    shared.count_watch(resource.plural);
    let bookmark_every = shared.bookmark_interval();
    let shared = shared.clone();
    let stream = async_stream(move |tx| async move {
        for event in first {
            if tx.send(line(&event)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = dropped.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let revision = shared.store().revision();
                    let bookmark = json!({ "type": "BOOKMARK", "object": {
                        "kind": resource.kind, "apiVersion": resource.api_version,
                        "metadata": { "resourceVersion": revision.to_string() } } });
                    if tx.send(line(&bookmark)).await.is_err() { return; }
                }
                change = changes.recv() => match change {
                    Ok(change) if wanted(&change, resource, namespace.as_deref(), &selector) => {
                        if tx.send(line(&event(&change))).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    // Fell behind: end the watch; the client resumes from its last version.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn wanted(change: &Change, resource: Resource, namespace: Option<&str>, selector: &str) -> bool {
    change.resource == resource
        && namespace.is_none_or(|ns| ns == change.namespace)
        && matches_selector(&change.object, selector).unwrap_or(false)
}

fn event(change: &Change) -> Value {
    json!({ "type": change.kind, "object": change.object })
}

fn line(event: &Value) -> Result<Bytes, Infallible> {
    Ok(Bytes::from(format!("{event}\n")))
}

/// A stream fed by a task through a channel (what `async-stream` does, without the macro).
fn async_stream<F, Fut>(body: F) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(body(tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}
