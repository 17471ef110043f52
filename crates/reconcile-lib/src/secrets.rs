//! Reading values out of Kubernetes Secrets.

use k8s_openapi::api::core::v1::Secret;

/// The value of `key` in `secret` as UTF-8 text: from `data` (what the API server returns),
/// else from `stringData` (objects built locally or by fakes). `None` when the key is
/// missing, empty or not UTF-8.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok());
    from_data
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn data_then_string_data_and_empty_is_none() {
        let mut s = Secret::default();
        assert_eq!(secret_value(&s, "k"), None);
        s.string_data = Some([("k".to_string(), "from-string".to_string())].into());
        assert_eq!(secret_value(&s, "k").as_deref(), Some("from-string"));
        s.data = Some([("k".to_string(), ByteString(b"from-data".to_vec()))].into());
        assert_eq!(secret_value(&s, "k").as_deref(), Some("from-data"));
        s.data = Some([("k".to_string(), ByteString(vec![]))].into());
        s.string_data = None;
        assert_eq!(secret_value(&s, "k"), None);
    }
}
