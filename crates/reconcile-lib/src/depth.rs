//! An object nested too deep for serde never stalls a controller.
//!
//! serde_json stops at 128 nested arrays and objects. kube decodes a whole list page (and each
//! watch event) through one deserializer, and kube's [`DeserializeGuard`] buffers each item
//! through that same deserializer, so one stored object whose free-form field (a
//! QdrantCluster's `spec.config`, which the CRD schema must leave unbounded:
//! `x-kubernetes-preserve-unknown-fields` takes no depth rule) is nested 130 levels deep fails
//! the list for every object of the kind, and the guard never sees it.
//!
//! [`DepthLimitLayer`] sits between the kube client and the API server. It splits every JSON
//! reply body into its top-level values (a list page, a single object, or one watch event per
//! line) as the bytes arrive, measures each value's nesting without recursion, and passes it
//! through unchanged unless it is deeper than [`MAX_OBJECT_DEPTH`]. In a too-deep value it
//! replaces, in each too-deep object (a list item, a watch event's `object`, or the reply
//! itself), every too-deep top-level field except `metadata` by the string
//! `"<field> is nested deeper than 100 levels; the operator does not decode it"`, and keeps
//! `apiVersion`, `kind` and the shallow fields of `metadata` (name, namespace, uid,
//! resourceVersion: what the guard, the reflector and the event need). The typed decoding of
//! that object then fails on the string, the guard reports it ([`crate::guard`]: a Warning
//! event `InvalidObject` whose note carries the sentence above), and every other object
//! decodes as before.
//!
//! [`DeserializeGuard`]: kube::core::DeserializeGuard

use std::{
    collections::VecDeque,
    ops::Range,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures::{TryFutureExt, future::MapOk};
use http::{Request, Response, header};
use hyper::body::{Body, Frame};

/// The deepest nesting of arrays and objects, counted from the object itself (a list item or a
/// watch event's object), that the operator decodes: 100, which leaves room under serde_json's
/// 128 for the list or event around the object.
pub const MAX_OBJECT_DEPTH: usize = 100;

/// The tower layer for the kube client ([`kube::client::ClientBuilder::with_layer`]) that
/// keeps too-deep objects out of kube's decoding (module docs). Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct DepthLimitLayer;

impl<S> tower::Layer<S> for DepthLimitLayer {
    type Service = DepthLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DepthLimit { inner }
    }
}

/// The service of [`DepthLimitLayer`]: `inner`, with every JSON reply body (a `Content-Type`
/// containing `json`) wrapped in a [`DepthLimitedBody`] and its `Content-Length` dropped (a
/// rewritten body is shorter). Other replies pass through untouched.
#[derive(Clone, Debug)]
pub struct DepthLimit<S> {
    inner: S,
}

impl<S, ReqBody, B> tower::Service<Request<ReqBody>> for DepthLimit<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<B>>,
{
    type Response = Response<DepthLimitedBody<B>>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<B>) -> Response<DepthLimitedBody<B>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        self.inner.call(request).map_ok(limit_reply)
    }
}

fn limit_reply<B>(reply: Response<B>) -> Response<DepthLimitedBody<B>> {
    let json = reply
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let (mut parts, body) = reply.into_parts();
    if json {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    Response::from_parts(parts, DepthLimitedBody::new(body, json))
}

/// A reply body that goes through [`Splitter`] when it is JSON (module docs), or unchanged.
/// Each top-level value is yielded as soon as its last byte arrives, whitespace at once, so a
/// watch event line reaches kube no later than without the layer.
#[derive(Debug)]
pub struct DepthLimitedBody<B> {
    inner: B,
    splitter: Option<Splitter>,
    ready: VecDeque<Bytes>,
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> DepthLimitedBody<B> {
    fn new(inner: B, json: bool) -> Self {
        Self {
            inner,
            splitter: json.then(Splitter::default),
            ready: VecDeque::new(),
            trailers: None,
            done: false,
        }
    }
}

impl<B> Body for DepthLimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(trailers)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match (frame.into_data(), &mut this.splitter) {
                    (Ok(data), Some(splitter)) => splitter.push(data, &mut this.ready),
                    (Ok(data), None) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    (Err(trailers), splitter) => {
                        if let Some(splitter) = splitter {
                            splitter.finish(&mut this.ready);
                        }
                        this.trailers = Some(trailers);
                    }
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    if let Some(splitter) = &mut this.splitter {
                        splitter.finish(&mut this.ready);
                    }
                    this.done = true;
                }
            }
        }
    }
}

/// Cuts a byte stream into its top-level JSON values as the bytes arrive and limits each
/// ([`limit_value`]). Anything that does not start like an object or an array switches it to
/// passing bytes through unchanged (kube then reports what it cannot read).
#[derive(Debug, Default)]
pub struct Splitter {
    value: Vec<u8>,
    scan: Option<Scan>,
    passthrough: bool,
}

impl Splitter {
    /// Feeds `data`; appends to `out` whitespace between values at once and each value whose
    /// last byte is in `data`.
    pub fn push(&mut self, data: Bytes, out: &mut VecDeque<Bytes>) {
        let mut at = 0;
        while at < data.len() {
            if self.passthrough {
                out.push_back(data.slice(at..));
                return;
            }
            let Some(scan) = &mut self.scan else {
                let blank = data[at..]
                    .iter()
                    .take_while(|b| b.is_ascii_whitespace())
                    .count();
                if blank > 0 {
                    out.push_back(data.slice(at..at + blank));
                    at += blank;
                    continue;
                }
                self.passthrough = !matches!(data[at], b'{' | b'[');
                if !self.passthrough {
                    self.scan = Some(Scan::default());
                }
                continue;
            };
            match scan.feed(&data[at..]) {
                Some(used) => {
                    self.value.extend_from_slice(&data[at..at + used]);
                    at += used;
                    let value = std::mem::take(&mut self.value);
                    let deepest = scan.deepest;
                    self.scan = None;
                    out.push_back(if deepest > MAX_OBJECT_DEPTH {
                        Bytes::from(limit_value(&value))
                    } else {
                        Bytes::from(value)
                    });
                }
                None => {
                    self.value.extend_from_slice(&data[at..]);
                    return;
                }
            }
        }
    }

    /// The end of the stream: an unfinished value is passed on as it is.
    pub fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        if !self.value.is_empty() {
            out.push_back(Bytes::from(std::mem::take(&mut self.value)));
        }
        self.scan = None;
    }
}

/// The running state of one value's bytes: nesting now and at its deepest, inside a string or
/// not, after a backslash or not.
#[derive(Debug, Default)]
struct Scan {
    depth: usize,
    deepest: usize,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Reads `bytes`; `Some(n)` when the value ends at `bytes[n - 1]`.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Strings are most of the bytes: jump to the next quote or backslash.
                match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                    Some(at) => {
                        i += at;
                        if bytes[i] == b'"' {
                            self.in_string = false;
                        } else {
                            self.escaped = true;
                        }
                        i += 1;
                        continue;
                    }
                    None => return None,
                }
            }
            match bytes[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.deepest = self.deepest.max(self.depth);
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }
}

/// One complete top-level value with every too-deep object in it limited: the items of a list
/// (`{"items": [...]}`), the `object` of a watch event (`{"type": ..., "object": ...}`), or
/// the value itself. A value that is not well-formed JSON is returned unchanged.
pub fn limit_value(value: &[u8]) -> Vec<u8> {
    let whole = 0..value.len();
    let Some(members) = members(value, whole.clone()) else {
        return value.to_vec();
    };
    let field = |name: &str| members.iter().find(|m| m.key(value) == name);
    if let Some(items) = field("items").filter(|m| value[m.value.start] == b'[') {
        let Some(elements) = elements(value, items.value.clone()) else {
            return value.to_vec();
        };
        let mut out = value[..items.value.start].to_vec();
        out.push(b'[');
        for (i, element) in elements.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend(limit_object(value, element));
        }
        out.push(b']');
        out.extend_from_slice(&value[items.value.end..]);
        return out;
    }
    if let (Some(object), Some(_)) = (field("object"), field("type")) {
        let mut out = value[..object.value.start].to_vec();
        out.extend(limit_object(
            value,
            &Spanned::of(value, object.value.clone()),
        ));
        out.extend_from_slice(&value[object.value.end..]);
        return out;
    }
    limit_object(value, &Spanned::of(value, whole))
}

/// `span` of `value` unchanged when it is at most [`MAX_OBJECT_DEPTH`] deep, else the object
/// with its too-deep fields replaced (module docs).
fn limit_object(value: &[u8], span: &Spanned) -> Vec<u8> {
    if span.depth <= MAX_OBJECT_DEPTH {
        return value[span.range.clone()].to_vec();
    }
    let Some(members) = members(value, span.range.clone()) else {
        return value[span.range.clone()].to_vec();
    };
    let limit = MAX_OBJECT_DEPTH - 1;
    let mut out = vec![b'{'];
    for member in &members {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&value[member.key.clone()]);
        out.push(b':');
        if member.depth <= limit {
            out.extend_from_slice(&value[member.value.clone()]);
        } else if member.key(value) == "metadata" {
            let kept = members_of(value, member.value.clone())
                .into_iter()
                .filter(|m| m.depth < limit);
            out.push(b'{');
            for (i, m) in kept.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&value[m.key.start..m.value.end]);
            }
            out.push(b'}');
        } else {
            let note = format!(
                "{} is nested deeper than {MAX_OBJECT_DEPTH} levels; the operator does not decode it",
                member.key(value)
            );
            out.extend(serde_json::to_vec(&note).unwrap_or_default());
        }
    }
    out.push(b'}');
    out
}

/// A value's byte range and its nesting (0 for a scalar).
struct Spanned {
    range: Range<usize>,
    depth: usize,
}

impl Spanned {
    fn of(value: &[u8], range: Range<usize>) -> Self {
        let depth = value_end(value, range.start).map_or(0, |(_, depth)| depth);
        Self { range, depth }
    }
}

/// One `"key": value` of an object: the key's range (quotes included), the value's range and
/// nesting.
struct Member {
    key: Range<usize>,
    value: Range<usize>,
    depth: usize,
}

impl Member {
    /// The key without its quotes, as written.
    fn key<'v>(&self, value: &'v [u8]) -> &'v str {
        std::str::from_utf8(&value[self.key.start + 1..self.key.end - 1]).unwrap_or("")
    }
}

fn members_of(value: &[u8], object: Range<usize>) -> Vec<Member> {
    members(value, object).unwrap_or_default()
}

/// The members of the object at `object`; `None` when it is not a well-formed object.
fn members(value: &[u8], object: Range<usize>) -> Option<Vec<Member>> {
    let mut at = skip_blank(value, object.start);
    if value.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_blank(value, at + 1);
    let mut members = Vec::new();
    if value.get(at) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if value.get(at) != Some(&b'"') {
            return None;
        }
        let (key_end, _) = value_end(value, at)?;
        let key = at..key_end;
        at = skip_blank(value, key_end);
        if value.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_blank(value, at + 1);
        let (end, depth) = value_end(value, start)?;
        members.push(Member {
            key,
            value: start..end,
            depth,
        });
        at = skip_blank(value, end);
        match value.get(at) {
            Some(b',') => at = skip_blank(value, at + 1),
            Some(b'}') if at < object.end => return Some(members),
            _ => return None,
        }
    }
}

/// The elements of the array at `array`; `None` when it is not a well-formed array.
fn elements(value: &[u8], array: Range<usize>) -> Option<Vec<Spanned>> {
    let mut at = skip_blank(value, array.start);
    if value.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_blank(value, at + 1);
    let mut elements = Vec::new();
    if value.get(at) == Some(&b']') {
        return Some(elements);
    }
    loop {
        let (end, depth) = value_end(value, at)?;
        elements.push(Spanned {
            range: at..end,
            depth,
        });
        at = skip_blank(value, end);
        match value.get(at) {
            Some(b',') => at = skip_blank(value, at + 1),
            Some(b']') if at < array.end => return Some(elements),
            _ => return None,
        }
    }
}

fn skip_blank(value: &[u8], mut at: usize) -> usize {
    while value.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Where the value starting at `start` ends (exclusive) and how deep it nests, without
/// recursion. A string, an object or an array is matched to its end; any other scalar runs to
/// the next delimiter. `None` when the bytes end first.
fn value_end(value: &[u8], start: usize) -> Option<(usize, usize)> {
    match value.get(start)? {
        b'"' => {
            let mut escaped = false;
            for (i, &b) in value[start + 1..].iter().enumerate() {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => return Some((start + i + 2, 0)),
                    _ => {}
                }
            }
            None
        }
        b'{' | b'[' => {
            let mut scan = Scan::default();
            let used = scan.feed(&value[start..])?;
            Some((start + used, scan.deepest))
        }
        _ => {
            let len = value[start..]
                .iter()
                .take_while(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                .count();
            (len > 0).then_some((start + len, 0))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn nested(depth: usize) -> String {
        let (open, close) = (r#"{"a":"#.repeat(depth), "}".repeat(depth));
        format!("{open}{{}}{close}")
    }

    fn object(name: &str, config: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"Thing","metadata":{{"name":"{name}","resourceVersion":"7","managedFields":[{{"fieldsV1":{config}}}]}},"spec":{{"replicas":1,"config":{config}}}}}"#
        )
    }

    /// Splits `chunks` as they would arrive and joins what comes out.
    fn through(chunks: &[&str]) -> (Vec<Bytes>, String) {
        let mut splitter = Splitter::default();
        let mut out = VecDeque::new();
        for chunk in chunks {
            splitter.push(Bytes::copy_from_slice(chunk.as_bytes()), &mut out);
        }
        splitter.finish(&mut out);
        let out: Vec<Bytes> = out.into_iter().collect();
        let joined = out
            .iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        (out, joined)
    }

    #[test]
    fn shallow_values_pass_byte_for_byte_in_any_chunking() {
        let body = format!(
            "{}\n{}\n",
            r#"{"type":"ADDED","object":{"s":"a \"}{[ \\"}}"#,
            object("x", &nested(90))
        );
        for cut in [1, 7, 64, body.len()] {
            let chunks: Vec<&str> = (0..body.len())
                .step_by(cut)
                .map(|i| &body[i..(i + cut).min(body.len())])
                .collect();
            assert_eq!(through(&chunks).1, body, "chunks of {cut}");
        }
    }

    #[test]
    fn a_watch_event_is_released_with_its_newline_before_the_next_arrives() {
        let (out, _) = through(&[r#"{"type":"ADDED","object":{}}"#, "\n", r#"{"ty"#]);
        assert_eq!(out[0], r#"{"type":"ADDED","object":{}}"#);
        assert_eq!(out[1], "\n");
    }

    #[test]
    fn a_too_deep_list_item_is_replaced_and_the_others_kept() {
        let body = format!(
            r#"{{"kind":"ThingList","metadata":{{"resourceVersion":"9"}},"items":[{},{}]}}"#,
            object("deep", &nested(130)),
            object("good", &nested(3))
        );
        let (_, out) = through(&[&body]);
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        let deep = &list["items"][0];
        assert_eq!(
            deep["metadata"],
            json!({"name": "deep", "resourceVersion": "7"})
        );
        assert_eq!(
            deep["spec"],
            "spec is nested deeper than 100 levels; the operator does not decode it"
        );
        assert_eq!(deep["kind"], "Thing");
        let good: Value = serde_json::from_str(&object("good", &nested(3))).unwrap();
        assert_eq!(list["items"][1], good);
    }

    #[test]
    fn a_too_deep_watch_event_object_is_replaced() {
        let body = format!(
            r#"{{"type":"MODIFIED","object":{}}}"#,
            object("deep", &nested(500))
        );
        let (_, out) = through(&[&body, "\n"]);
        let event: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(event["type"], "MODIFIED");
        assert_eq!(event["object"]["metadata"]["name"], "deep");
        assert!(
            event["object"]["spec"]
                .as_str()
                .unwrap()
                .starts_with("spec is nested")
        );
    }

    #[test]
    fn depth_is_counted_from_the_object() {
        // The object, `spec`, and `nested(k)` (k + 1 levels): k + 3.
        let plain = |k| {
            format!(
                r#"{{"metadata":{{"name":"x"}},"spec":{{"config":{}}}}}"#,
                nested(k)
            )
        };
        let (at_limit, past) = (plain(97), plain(98));
        assert_eq!(limit_value(at_limit.as_bytes()), at_limit.as_bytes());
        assert_ne!(limit_value(past.as_bytes()), past.as_bytes());
    }

    #[test]
    fn a_million_levels_are_handled_without_recursion() {
        let body = format!(r#"{{"items":[{}]}}"#, object("deep", &nested(1_000_000)));
        let (_, out) = through(&[&body]);
        let list: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list["items"][0]["metadata"]["name"], "deep");
    }

    #[test]
    fn what_is_not_json_passes_unchanged() {
        let (_, out) = through(&["not json {", "[[["]);
        assert_eq!(out, "not json {[[[");
        let (_, out) = through(&[r#"{"unfinished": [[["#]);
        assert_eq!(out, r#"{"unfinished": [[["#);
    }
}
