//! A streaming parser of `multipart/form-data` that hands the bytes of one named part to a
//! sink as they arrive and keeps nothing but a delimiter's length of look-behind.

/// The `boundary` parameter of a `multipart/form-data` content type.
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

enum Stage {
    /// Before the first delimiter.
    Preamble,
    /// Right after a delimiter: `--` (the end) or CRLF (a part follows).
    AfterDelimiter,
    /// In a part's headers.
    Headers,
    /// In a part's body; `true` when it is the wanted part.
    Body(bool),
    /// After the closing delimiter.
    Done,
}

pub(super) struct Parser {
    /// `\r\n--{boundary}`.
    delimiter: Vec<u8>,
    wanted: String,
    buf: Vec<u8>,
    stage: Stage,
    /// Whether the wanted part was seen (and its file name).
    found: Option<Option<String>>,
}

const MAX_HEADERS_LEN: usize = 64 * 1024;

impl Parser {
    pub(super) fn new(boundary: &str, wanted: &str) -> Self {
        Self {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            wanted: wanted.to_owned(),
            // The first delimiter has no CRLF before it.
            buf: b"\r\n".to_vec(),
            stage: Stage::Preamble,
            found: None,
        }
    }

    /// Position of the delimiter in the buffer, from `from`.
    fn find_delimiter(&self) -> Option<usize> {
        let first = self.delimiter[0];
        let mut from = 0;
        while let Some(offset) = self.buf[from..].iter().position(|b| *b == first) {
            let at = from + offset;
            if self.buf[at..].starts_with(&self.delimiter) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }

    /// Bytes that may be handed on: all but a possible delimiter prefix at the end.
    fn safe_len(&self) -> usize {
        self.buf.len().saturating_sub(self.delimiter.len() - 1)
    }

    pub(super) fn feed(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        loop {
            match self.stage {
                Stage::Preamble => match self.find_delimiter() {
                    Some(at) => {
                        self.buf.drain(..at + self.delimiter.len());
                        self.stage = Stage::AfterDelimiter;
                    }
                    None => {
                        let safe = self.safe_len();
                        self.buf.drain(..safe);
                        return Ok(());
                    }
                },
                Stage::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    if self.buf.starts_with(b"--") {
                        self.stage = Stage::Done;
                    } else if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                        self.stage = Stage::Headers;
                    } else {
                        return Err("Multipart stream is incomplete".to_owned());
                    }
                }
                Stage::Headers => {
                    let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n");
                    let Some(end) = end else {
                        if self.buf.len() > MAX_HEADERS_LEN {
                            return Err("Multipart headers are too large".to_owned());
                        }
                        return Ok(());
                    };
                    let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    let (name, file_name) = disposition(&headers);
                    let wanted =
                        name.as_deref() == Some(self.wanted.as_str()) && self.found.is_none();
                    if wanted {
                        self.found = Some(file_name);
                    }
                    self.stage = Stage::Body(wanted);
                }
                Stage::Body(wanted) => match self.find_delimiter() {
                    Some(at) => {
                        if wanted {
                            sink(&self.buf[..at]);
                        }
                        self.buf.drain(..at + self.delimiter.len());
                        self.stage = Stage::AfterDelimiter;
                    }
                    None => {
                        let safe = self.safe_len();
                        if wanted {
                            sink(&self.buf[..safe]);
                        }
                        self.buf.drain(..safe);
                        return Ok(());
                    }
                },
                Stage::Done => {
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// The wanted part's file name, once the body is complete.
    pub(super) fn finish(self) -> Result<Option<String>, String> {
        if !matches!(self.stage, Stage::Done) {
            return Err("Multipart stream is incomplete".to_owned());
        }
        self.found
            .ok_or_else(|| "Field `snapshot` is required".to_owned())
    }
}

/// `name` and `filename` of a part's `Content-Disposition` header.
fn disposition(headers: &str) -> (Option<String>, Option<String>) {
    let Some(value) = headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    }) else {
        return (None, None);
    };
    let (mut name, mut file_name) = (None, None);
    for param in value.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => file_name = Some(value),
            _ => {}
        }
    }
    (name, file_name)
}
