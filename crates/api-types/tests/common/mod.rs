//! Helpers shared by the CRD tests: schema and CEL verdicts, and object edits.
#![allow(clippy::unwrap_used, dead_code)]

use serde_json::Value;

/// Schema verdict (types, enums, ranges, patterns) as JSON Schema draft 4, which the
/// structural OpenAPI v3 subset maps onto: `instance path: error` per problem.
pub fn schema_errors(schema: &Value, obj: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(schema).unwrap();
    validator
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// CEL verdict of kube's implementation of the Kubernetes CEL libraries: `field: message`
/// per failed rule; `old` for transition rules.
pub fn cel_errors(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(schema, obj, old) {
        Ok(()) => vec![],
        Err(errs) => errs
            .into_vec()
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

/// `v` with the field at JSON pointer `pointer` set (created in its parent object when absent).
pub fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    v
}

/// `v` without the field at `pointer`.
pub fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    v
}
