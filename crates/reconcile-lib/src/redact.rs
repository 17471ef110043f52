//! Redaction of what must not reach status, conditions, events or logs: credentials and
//! signatures inside URLs, and bodies of replies that did not come from Qdrant.
//!
//! Qdrant echoes the location of a snapshot recovery in its errors, and that location is a
//! presigned S3 URL whose query (`X-Amz-Credential`, `X-Amz-Signature`,
//! `X-Amz-Security-Token`) lets anyone read the object until it expires. A proxy, a load
//! balancer or a misconfigured endpoint in front of Qdrant may answer with a page of its own,
//! possibly reflecting the request. Both kinds of text go through here before they become an
//! error message.

use url::Url;

/// What replaces a URL's query, user name or password.
pub const REDACTED: &str = "redacted";

/// At most this many characters of a reply that is not Qdrant's own are kept.
pub const SUMMARY_CHARS: usize = 160;

/// `url` without user name, password and query (each replaced by [`REDACTED`] when present);
/// the scheme, host, port and path stay, so the message still says which object or server.
pub fn url(url: &Url) -> String {
    let mut shown = url.clone();
    let had_credentials = !shown.username().is_empty() || shown.password().is_some();
    // Only fails for URLs that cannot have credentials, which then have none to hide.
    if had_credentials {
        let _ = shown.set_username(REDACTED);
        let _ = shown.set_password(None);
    }
    if shown.query().is_some() {
        shown.set_query(Some(REDACTED));
    }
    shown.set_fragment(None);
    shown.to_string()
}

/// `text` with every URL in it passed through [`url`] (found with `linkify`; what does not
/// parse as a URL is left as it is).
pub fn urls_in(text: &str) -> String {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for link in finder.links(text) {
        out.push_str(&text[last..link.start()]);
        match Url::parse(link.as_str()) {
            Ok(parsed) => out.push_str(&url(&parsed)),
            Err(_) => out.push_str(link.as_str()),
        }
        last = link.end();
    }
    out.push_str(&text[last..]);
    out
}

/// A safe summary of a reply body that is not Qdrant's JSON: markup (an HTML error page) is
/// described by its size only; other text is cut to its first line, at most
/// [`SUMMARY_CHARS`] characters, control characters dropped, URLs redacted. A reflected
/// request (headers, API key) therefore never comes through whole.
pub fn foreign_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.starts_with('<') {
        return format!(
            "a reply that is not Qdrant's ({} bytes of markup)",
            body.len()
        );
    }
    let first = trimmed.lines().next().unwrap_or_default();
    let clean: String = first.chars().filter(|c| !c.is_control()).collect();
    let mut summary = urls_in(&clean);
    if let Some((end, _)) = summary.char_indices().nth(SUMMARY_CHARS) {
        summary.truncate(end);
        summary.push('…');
    } else if first.len() < trimmed.len() {
        summary.push('…');
    }
    summary
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_url_in_a_qdrant_error_loses_its_signature() {
        let text = "Service internal error: Failed to download snapshot from https://s3.example:9000/backups/db/x/docs/shard-0.snapshot?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261202&X-Amz-Signature=abc123: connection refused";
        let shown = urls_in(text);
        assert_eq!(
            shown,
            "Service internal error: Failed to download snapshot from https://s3.example:9000/backups/db/x/docs/shard-0.snapshot?redacted: connection refused"
        );
    }

    /// The two shapes Qdrant 1.18.3 answered a recovery from an unreachable and from a missing
    /// presigned URL with (observed with the real server).
    #[test]
    fn qdrant_1_18_recovery_errors_lose_the_signature() {
        assert_eq!(
            urls_in(
                "Service internal error: Http request error: error sending request for url (http://127.0.0.1:1/x.snapshot?X-Amz-Signature=abc123)"
            ),
            "Service internal error: Http request error: error sending request for url (http://127.0.0.1:1/x.snapshot?redacted)"
        );
        assert_eq!(
            urls_in(
                "Wrong input: Failed to download tar from http://127.0.0.1:7499/nope.snapshot?X-Amz-Signature=abc123: status - 404 Not Found"
            ),
            "Wrong input: Failed to download tar from http://127.0.0.1:7499/nope.snapshot?redacted: status - 404 Not Found"
        );
    }

    #[test]
    fn credentials_in_a_url_are_hidden_and_plain_urls_kept() {
        let u =
            Url::parse("https://admin:hunter2@qdrant.example:6333/collections?api-key=k").unwrap();
        assert_eq!(
            url(&u),
            "https://redacted@qdrant.example:6333/collections?redacted"
        );
        assert_eq!(
            urls_in("see http://q:6333/readyz now"),
            "see http://q:6333/readyz now"
        );
    }

    #[test]
    fn a_foreign_body_is_summarised_not_reflected() {
        let page = b"<html><body>502 Bad Gateway ... api-key: secret</body></html>";
        assert_eq!(
            foreign_body(page),
            format!(
                "a reply that is not Qdrant's ({} bytes of markup)",
                page.len()
            )
        );
        let echo = b"GET /collections HTTP/1.1\r\nHost: q\r\napi-key: secret\r\n\r\n";
        let summary = foreign_body(echo);
        assert_eq!(summary, "GET /collections HTTP/1.1…");
        assert!(!summary.contains("secret"));
        let long = "x".repeat(1000);
        assert_eq!(
            foreign_body(long.as_bytes()).chars().count(),
            SUMMARY_CHARS + 1
        );
        assert_eq!(
            foreign_body(b"Invalid API key or JWT"),
            "Invalid API key or JWT"
        );
    }
}
