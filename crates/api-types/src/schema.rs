//! Schema helpers for fields the derive cannot express.

/// Schema of a free-form object kept as the user wrote it
/// (`type: object` + `x-kubernetes-preserve-unknown-fields: true`): structural, as the API
/// server requires, with unknown fields preserved only where we mean it.
pub fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Free-form Qdrant configuration (config.yaml keys), merged over the operator's defaults. Operator-owned keys are refused.",
    })
}

/// Schema of free-form payload index parameters (`is_tenant`, `tokenizer`, ...), passed to
/// Qdrant as written.
pub fn preserve_unknown_params(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Type-specific index parameters as Qdrant spells them (e.g. is_tenant: true, tokenizer: word).",
    })
}

/// Drops the type's own description from an enum's schema. For `Option<Enum>` fields kube's
/// `OptionalEnum` transform hoists the enum schema over the property, and the type's
/// description would replace the field's (what `kubectl explain` shows).
pub fn without_description(schema: &mut schemars::Schema) {
    schema.remove("description");
}
