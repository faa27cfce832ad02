//! Structural-schema validation and pruning, as kube-apiserver applies a CRD's `openAPIV3Schema` to what it is
//! sent: unknown fields are dropped (unless the schema preserves them), then types, required fields and enums
//! are checked. The schemas are the real Agones CRDs from the reference data.

use serde_json::{Map, Value};

/// The `openAPIV3Schema` of a CRD file in the reference data, e.g. `agones/crds/gameservers.agones.dev.yaml`.
pub fn crd_schema(reference: &std::path::Path, file: &str) -> Value {
    let path = reference.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Prunes `object` to what `schema` knows and checks it; `Err` lists `(field path, why)` like a 422's causes.
pub fn validate(object: &mut Value, schema: &Value) -> Result<(), Vec<(String, String)>> {
    let mut causes = Vec::new();
    // apiVersion, kind and metadata are the API server's own, never pruned by a CRD schema.
    if let Some(fields) = object.as_object_mut() {
        let own: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
            .into_iter()
            .filter_map(|key| fields.remove(key).map(|value| (key.to_owned(), value)))
            .collect();
        check(object, schema, "", &mut causes);
        if let Some(fields) = object.as_object_mut() {
            fields.extend(own);
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

fn check(value: &mut Value, schema: &Value, path: &str, causes: &mut Vec<(String, String)>) {
    let mut fail = |why: String| causes.push((path.trim_start_matches('.').to_owned(), why));
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            fail(format!("Invalid value: {value}: must be an integer or a string"));
        }
        return;
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(fields) = value.as_object_mut() else {
                return fail(format!("Invalid value: \"{}\": must be of type object", kind(value)));
            };
            check_object(fields, schema, path, causes);
        }
        Some("array") => {
            let Some(items) = value.as_array_mut() else {
                return fail(format!("Invalid value: \"{}\": must be of type array", kind(value)));
            };
            for (i, item) in items.iter_mut().enumerate() {
                check(item, &schema["items"], &format!("{path}[{i}]"), causes);
            }
        }
        Some("string") => match value.as_str() {
            None => fail(format!("Invalid value: \"{}\": must be of type string", kind(value))),
            Some(text) => {
                if let Some(allowed) = schema["enum"].as_array()
                    && !allowed.iter().any(|a| a == text)
                {
                    fail(format!("Unsupported value: \"{text}\""));
                }
            }
        },
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                fail(format!("Invalid value: \"{}\": must be of type integer", kind(value)));
            } else if let (Some(n), Some(min)) = (value.as_f64(), schema["minimum"].as_f64())
                && n < min
            {
                fail(format!("Invalid value: {n}: must be greater than or equal to {min}"));
            } else if let (Some(n), Some(max)) = (value.as_f64(), schema["maximum"].as_f64())
                && n > max
            {
                fail(format!("Invalid value: {n}: must be less than or equal to {max}"));
            }
        }
        Some("number") if !value.is_number() => {
            fail(format!("Invalid value: \"{}\": must be of type number", kind(value)));
        }
        Some("boolean") if !value.is_boolean() => {
            fail(format!("Invalid value: \"{}\": must be of type boolean", kind(value)));
        }
        _ => {}
    }
}

fn check_object(fields: &mut Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<(String, String)>) {
    let properties = schema["properties"].as_object();
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    // Nulls in fields that are not nullable are dropped, as the API server does before validating.
    fields.retain(|key, value| {
        !value.is_null() || properties.and_then(|p| p.get(key)).is_some_and(|s| s["nullable"] == true)
    });
    if properties.is_some() || additional.is_some() || !preserve {
        fields.retain(|key, _| preserve || additional.is_some() || properties.is_some_and(|p| p.contains_key(key)));
    }
    for (key, value) in fields.iter_mut() {
        if value.is_null() {
            continue;
        }
        let child = properties.and_then(|p| p.get(key)).or(additional);
        if let Some(child) = child {
            check(value, child, &format!("{path}.{key}"), causes);
        }
    }
    for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !fields.contains_key(required) {
            causes.push((format!("{path}.{required}").trim_start_matches('.').to_owned(), "Required value".into()));
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "ports": { "type": "array", "items": { "type": "object", "required": ["containerPort"], "properties": {
                            "containerPort": { "type": "integer", "minimum": 0, "maximum": 65535 },
                            "portPolicy": { "type": "string", "enum": ["Dynamic", "Static"] },
                        } } },
                        "limits": { "type": "object", "additionalProperties": { "x-kubernetes-int-or-string": true } },
                        "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                    },
                },
            },
        })
    }

    #[test]
    fn unknown_fields_are_pruned_and_known_ones_kept() {
        let mut object = json!({
            "apiVersion": "agones.dev/v1", "kind": "GameServer", "metadata": { "name": "x" },
            "spec": { "ports": [{ "containerPort": 7000, "portPolicy": "Dynamic", "bogus": 1 }],
                      "limits": { "cpu": "2", "memory": 4 }, "free": { "anything": true }, "extra": "gone" },
            "unknownTop": 1,
        });
        validate(&mut object, &schema()).expect("valid");
        assert_eq!(
            object,
            json!({
                "apiVersion": "agones.dev/v1", "kind": "GameServer", "metadata": { "name": "x" },
                "spec": { "ports": [{ "containerPort": 7000, "portPolicy": "Dynamic" }],
                          "limits": { "cpu": "2", "memory": 4 }, "free": { "anything": true } },
            })
        );
    }

    #[test]
    fn types_enums_ranges_and_required_fields_are_checked() {
        let mut object = json!({ "spec": { "ports": [{ "portPolicy": "Sometimes" }, { "containerPort": 70000 }, { "containerPort": "7000" }],
                                           "limits": { "cpu": true } } });
        let causes = validate(&mut object, &schema()).expect_err("invalid");
        let fields: Vec<&str> = causes.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.limits.cpu",
                "spec.ports[0].portPolicy",
                "spec.ports[0].containerPort",
                "spec.ports[1].containerPort",
                "spec.ports[2].containerPort",
            ]
        );
        assert!(
            validate(&mut json!({}), &schema()).is_err_and(|c| c == [("spec".to_owned(), "Required value".to_owned())])
        );
    }
}
