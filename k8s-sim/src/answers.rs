//! What kube-apiserver answers besides objects: `Status` failure bodies (not found, already exists, conflict,
//! invalid), JSON responses, and the query strings requests carry.

use std::collections::HashMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{Resource, StoreError};

/// A `Status` failure body with its HTTP status, as kube-apiserver sends it.
pub fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code.as_u16(),
    });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub fn not_found(resource: Resource, name: &str) -> Response {
    let details = json!({ "name": name, "group": group(resource), "kind": resource.plural });
    status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", qualified(resource)), details)
}

pub fn store_error(error: StoreError, resource: Resource, name: &str) -> Response {
    let details = json!({ "name": name, "group": group(resource), "kind": resource.plural });
    match error {
        StoreError::NotFound => not_found(resource, name),
        StoreError::AlreadyExists => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(resource)),
            details,
        ),
        StoreError::Conflict => status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your \
                 changes to the latest version and try again",
                qualified(resource)
            ),
            details,
        ),
    }
}

pub fn invalid(resource: Resource, name: &str, causes: Vec<(String, String)>) -> Response {
    let message = format!(
        "{} \"{name}\" is invalid: {}",
        resource.kind,
        causes.iter().map(|(field, why)| format!("{field}: {why}")).collect::<Vec<_>>().join(", ")
    );
    let causes: Vec<Value> = causes
        .into_iter()
        .map(|(field, why)| json!({ "reason": "FieldValueInvalid", "message": why, "field": field }))
        .collect();
    let details = json!({ "name": name, "group": group(resource), "kind": resource.kind, "causes": causes });
    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message, details)
}

fn group(resource: Resource) -> &'static str {
    resource.api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// `gameservers.agones.dev`, or `pods` for the core group.
fn qualified(resource: Resource) -> String {
    match group(resource) {
        "" => resource.plural.to_owned(),
        group => format!("{}.{group}", resource.plural),
    }
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
