//! Renders a Helm chart without a helm binary, for tests: the operator's chart
//! (`deploy/helm/qdrant-operator`) is checked against the kustomize base here, and no helm
//! binary can be installed on the machines that run the tests.
//!
//! What it does, as `helm template` does:
//! - values: the chart's `values.yaml` with the overrides merged in (maps merge key by key,
//!   anything else replaces, `null` removes the key);
//! - `crds/`: every `.yaml`/`.yml`/`.json` file, as is (Helm never templates them);
//! - `templates/`: every file, recursively, in path order, rendered as a Go text/template by
//!   [gtmpl] with `.Values`, `.Release.Name`, `.Release.Namespace` (and `.Chart.Name`,
//!   `.Chart.Version`, `.Chart.AppVersion`); files whose name starts with `_` only provide
//!   `define`s. Each output is split into its YAML documents; empty ones are dropped.
//!
//! Only the functions of [`ALLOWED_FUNCTIONS`] exist (gtmpl's own builtins such as `eq`,
//! `printf` or `and` are removed), so a template using anything else fails to render here;
//! [`template_violations`] also catches keywords and fields outside the documented set.
//!
//! Stricter than Helm: a missing value printed into the output (Helm prints an empty string)
//! is an error naming the template, and so is ranging over a map (gtmpl's map order is random,
//! Go's is sorted).

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
};

use gtmpl::{Context, FuncError, Template, Value as Tmpl};
use serde_json::{Map, Value};

/// The functions the chart's templates may call, besides the actions `if`, `else`, `end`,
/// `range`, `with` and `define` and the fields `.Values`, `.Release.Name` and
/// `.Release.Namespace`. Each behaves as Helm's (sprig's) function of that name.
pub const ALLOWED_FUNCTIONS: &[&str] =
    &["toYaml", "nindent", "indent", "quote", "default", "include"];

/// The actions (keywords) the chart's templates may use.
pub const ALLOWED_ACTIONS: &[&str] = &["if", "else", "end", "range", "with", "define"];

/// Why a chart could not be rendered.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file (or a template's output) is not valid YAML.
    Yaml {
        /// Where the text came from (chart-relative path).
        source: String,
        /// What the parser said.
        message: String,
    },
    /// A template failed to parse or to execute.
    Template {
        /// The template file (chart-relative path).
        source: String,
        /// What gtmpl said.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Yaml { source, message } => write!(f, "{source}: invalid YAML: {message}"),
            Error::Template { source, message } => write!(f, "{source}: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One rendered Kubernetes object.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The chart-relative file it came from (`crds/qdrantclusters.yaml`,
    /// `templates/cluster-controller/deployment.yaml`).
    pub source: String,
    /// The object.
    pub object: Value,
}

/// `.Release` of the render: what `helm install NAME -n NAMESPACE` would pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `.Release.Name`.
    pub name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
}

impl Default for Release {
    /// The release of the documented install command: `qdrant-operator` in `qdrant-operator`.
    fn default() -> Self {
        Release {
            name: "qdrant-operator".to_owned(),
            namespace: "qdrant-operator".to_owned(),
        }
    }
}

/// A chart read from a directory.
#[derive(Clone, Debug)]
pub struct Chart {
    /// `Chart.yaml`.
    pub metadata: Value,
    /// `values.yaml` (an empty map when absent).
    pub values: Value,
    /// `crds/` files: chart-relative path and content, in path order.
    pub crds: Vec<(String, String)>,
    /// `templates/` files: chart-relative path and content, in path order.
    pub templates: Vec<(String, String)>,
}

impl Chart {
    /// Reads `Chart.yaml`, `values.yaml`, `crds/` and `templates/` of the chart at `dir`.
    ///
    /// Errors: unreadable files, invalid YAML in `Chart.yaml` or `values.yaml`.
    pub fn load(dir: &Path) -> Result<Chart, Error> {
        let metadata = parse_one(&read(&dir.join("Chart.yaml"))?, "Chart.yaml")?;
        let values_path = dir.join("values.yaml");
        let values = if values_path.exists() {
            parse_one(&read(&values_path)?, "values.yaml")?
        } else {
            Value::Object(Map::new())
        };
        let mut crds = vec![];
        let crd_dir = dir.join("crds");
        if crd_dir.exists() {
            for path in files_under(&crd_dir)? {
                let is_manifest = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str())
                });
                if is_manifest {
                    crds.push((relative(dir, &path), read(&path)?));
                }
            }
        }
        let mut templates = vec![];
        let tmpl_dir = dir.join("templates");
        if tmpl_dir.exists() {
            for path in files_under(&tmpl_dir)? {
                templates.push((relative(dir, &path), read(&path)?));
            }
        }
        Ok(Chart {
            metadata,
            values,
            crds,
            templates,
        })
    }

    /// The values a render with `overrides` sees: `values.yaml` with `overrides` merged in.
    pub fn merged_values(&self, overrides: &Value) -> Value {
        let mut values = self.values.clone();
        merge(&mut values, overrides);
        values
    }

    /// Renders the chart with `overrides` (a map, as `-f file` or `--set` would give) for
    /// `release`: the CRDs of `crds/` first, then each template's objects.
    ///
    /// Errors: a template fails to parse or execute, prints a missing value, or its output
    /// is not YAML.
    pub fn render(&self, overrides: &Value, release: &Release) -> Result<Vec<Document>, Error> {
        let mut out = vec![];
        for (source, text) in &self.crds {
            for object in parse_documents(text, source)? {
                out.push(Document {
                    source: source.clone(),
                    object,
                });
            }
        }
        let meta = |k: &str| self.metadata.get(k).cloned().unwrap_or(Value::Null);
        let root = serde_json::json!({
            "Values": self.merged_values(overrides),
            "Release": {"Name": release.name, "Namespace": release.namespace},
            "Chart": {"Name": meta("name"), "Version": meta("version"), "AppVersion": meta("appVersion")},
        });
        let _sources = SourcesGuard::install(self.templates.clone());
        for (source, text) in &self.templates {
            if is_partial(source) || text.trim().is_empty() {
                continue;
            }
            let rendered = render_template(source, text, &self.templates, to_tmpl(&root)).map_err(
                |message| Error::Template {
                    source: source.clone(),
                    message,
                },
            )?;
            if rendered.contains("<no value>") {
                return Err(Error::Template {
                    source: source.clone(),
                    message: format!("prints a missing value (<no value>):\n{rendered}"),
                });
            }
            for object in parse_documents(&rendered, source)? {
                out.push(Document {
                    source: source.clone(),
                    object,
                });
            }
        }
        Ok(out)
    }
}

/// Renders the chart at `dir` with `overrides` for [`Release::default`].
///
/// Errors: see [`Chart::load`] and [`Chart::render`].
pub fn render(dir: &Path, overrides: &Value) -> Result<Vec<Document>, Error> {
    Chart::load(dir)?.render(overrides, &Release::default())
}

/// Merges `over` into `base` as Helm merges values: maps key by key, `null` deletes the key,
/// anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(slot) = b.get_mut(k) {
                    merge(slot, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Every use of something outside the documented template features in `text` (a template
/// file): functions not in [`ALLOWED_FUNCTIONS`], actions not in [`ALLOWED_ACTIONS`],
/// variables other than `$`, and root fields other than `.Values`, `.Release.Name` and
/// `.Release.Namespace`. Each entry says what was found. Comments and string literals are
/// ignored.
pub fn template_violations(text: &str) -> Vec<String> {
    let mut out = vec![];
    for action in actions(text) {
        let code = strip_strings(&action);
        let chars: Vec<char> = code.chars().collect();
        let mut i = 0;
        let mut first_word = true;
        while i < chars.len() {
            let c = chars[i];
            if c == '$' {
                let start = i;
                i += 1;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let var: String = chars[start..i].iter().collect();
                if var != "$" {
                    out.push(format!("variable {var} in {{{{{action}}}}}"));
                }
                continue;
            }
            if c == ':' && chars.get(i + 1) == Some(&'=') {
                out.push(format!("assignment := in {{{{{action}}}}}"));
            }
            if c == '.' {
                // A field chain: `.Values.a.b`, `$.Values`, `.` or `.x` (relative to dot).
                let root_of_data = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ')';
                let start = i;
                while i < chars.len() && (chars[i] == '.' || is_ident(chars[i])) {
                    i += 1;
                }
                let chain: String = chars[start..i].iter().collect();
                let preceded_by_dollar = start > 0 && chars[start - 1] == '$';
                if (root_of_data || preceded_by_dollar)
                    && let Some(v) = root_field_violation(&chain)
                {
                    out.push(format!("{v} in {{{{{action}}}}}"));
                }
                first_word = false;
                continue;
            }
            if c.is_ascii_digit() || c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                first_word = false;
                continue;
            }
            if is_ident(c) {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let is_action = first_word && ALLOWED_ACTIONS.contains(&word.as_str());
                if !is_action && !ALLOWED_FUNCTIONS.contains(&word.as_str()) {
                    if first_word && KEYWORDS.contains(&word.as_str()) {
                        out.push(format!("action {word} in {{{{{action}}}}}"));
                    } else {
                        out.push(format!("function {word} in {{{{{action}}}}}"));
                    }
                }
                // `else if` / `else with`: the word after `else` is an action too.
                first_word = word == "else";
                continue;
            }
            if !c.is_whitespace() {
                first_word = false;
            }
            i += 1;
        }
    }
    out
}

/// Go template keywords (everything the parser treats as an action).
const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    "nil", "true", "false",
];

fn root_field_violation(chain: &str) -> Option<String> {
    let parts: Vec<&str> = chain.trim_start_matches('.').split('.').collect();
    let first = parts.first().copied().unwrap_or("");
    if first.is_empty() || first.starts_with(|c: char| c.is_ascii_lowercase()) {
        // `.` itself or a field of dot (inside `with`/`range`, or `include`'s argument).
        return None;
    }
    match (first, parts.get(1).copied()) {
        ("Values", _) => None,
        ("Release", Some("Name" | "Namespace")) => None,
        _ => Some(format!("field {chain}")),
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The inside of every `{{ ... }}` of `text` (trim markers and comments removed).
fn actions(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = find_close(after) else {
            out.push(after.to_owned());
            break;
        };
        let mut inner = after[..close].trim();
        inner = inner.strip_prefix('-').unwrap_or(inner);
        inner = inner.strip_suffix('-').unwrap_or(inner);
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            out.push(inner.to_owned());
        }
        rest = &after[close + 2..];
    }
    out
}

/// The position of the `}}` closing an action, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if s[i..].starts_with("/*") {
                    i += s[i..].find("*/").map_or(b.len(), |e| e + 1);
                } else if s[i..].starts_with("}}") {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// `code` with every string and raw-string literal's content replaced by nothing.
fn strip_strings(code: &str) -> String {
    let mut out = String::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '`' {
            out.push(' ');
            while let Some(d) = chars.next() {
                if d == '\\' && c == '"' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_partial(source: &str) -> bool {
    source
        .rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with('_'))
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn files_under(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = vec![];
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            out.extend(files_under(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_one(text: &str, source: &str) -> Result<Value, Error> {
    serde_saphyr::from_str(text).map_err(|e| Error::Yaml {
        source: source.to_owned(),
        message: e.to_string(),
    })
}

/// Every non-empty YAML document of `text`.
pub fn parse_documents(text: &str, source: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Yaml {
        source: source.to_owned(),
        message: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

// ---- templating -------------------------------------------------------------------------

/// How deep `include` may nest (Helm's limit is 1000; the chart needs 1).
const MAX_INCLUDE_DEPTH: usize = 32;

thread_local! {
    /// The template files of the render under way on this thread, for `include` (gtmpl's
    /// functions are plain `fn`s and see nothing but their arguments).
    static SOURCES: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    static INCLUDE_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Sets [`SOURCES`] for one render and clears it when dropped.
struct SourcesGuard;

impl SourcesGuard {
    fn install(sources: Vec<(String, String)>) -> SourcesGuard {
        SOURCES.with(|s| *s.borrow_mut() = sources);
        SourcesGuard
    }
}

impl Drop for SourcesGuard {
    fn drop(&mut self) {
        SOURCES.with(|s| s.borrow_mut().clear());
    }
}

/// A gtmpl template with exactly the allowed functions (its builtins removed).
fn new_template(name: &str) -> Template {
    let mut t = Template::with_name(name);
    t.funcs.clear();
    let funcs: [(&str, gtmpl::Func); 6] = [
        ("toYaml", to_yaml),
        ("nindent", nindent),
        ("indent", indent),
        ("quote", quote),
        ("default", default),
        ("include", include),
    ];
    debug_assert_eq!(funcs.len(), ALLOWED_FUNCTIONS.len());
    t.add_funcs(&funcs);
    t
}

/// Renders template `name` (text `text`) with every file of `all` loaded, for its `define`s.
fn render_template(
    name: &str,
    text: &str,
    all: &[(String, String)],
    dot: Tmpl,
) -> Result<String, String> {
    let mut t = new_template(name);
    for (file, body) in all {
        if file != name {
            t.add_template(file.clone(), body.clone())
                .map_err(|e| format!("{file}: {e}"))?;
        }
    }
    t.parse(text.to_owned()).map_err(|e| e.to_string())?;
    check_ranges(&dot, text)?;
    t.render(&Context::from(dot)).map_err(|e| e.to_string())
}

/// gtmpl ranges over a map in random order (Go sorts the keys): refuse `range` over a map
/// that `text` reaches directly as `.Values...`, so output stays deterministic.
fn check_ranges(dot: &Tmpl, text: &str) -> Result<(), String> {
    for action in actions(text) {
        let Some(rest) = action.strip_prefix("range") else {
            continue;
        };
        let path = rest.trim();
        if let Some(fields) = path.strip_prefix('.') {
            let mut v = dot;
            for f in fields.split('.').filter(|f| !f.is_empty()) {
                match v {
                    Tmpl::Map(m) | Tmpl::Object(m) => match m.get(f) {
                        Some(next) => v = next,
                        None => break,
                    },
                    _ => break,
                }
            }
            if matches!(v, Tmpl::Map(m) | Tmpl::Object(m) if !m.is_empty()) && !fields.is_empty() {
                return Err(format!("range over a map ({path}): not supported here"));
            }
        }
    }
    Ok(())
}

fn generic(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

/// Helm's `include NAME DATA`: the output of template `NAME` executed with `DATA` as dot.
fn include(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let name = match args.first() {
        Some(Tmpl::String(s)) => s.clone(),
        _ => {
            return Err(generic(
                "include: the first argument must be a template name",
            ));
        }
    };
    let dot = args.get(1).cloned().unwrap_or(Tmpl::Nil);
    let depth = INCLUDE_DEPTH.with(Cell::get);
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(generic(format!("include {name:?}: nested too deep")));
    }
    let sources = SOURCES.with(|s| s.borrow().clone());
    let mut t = new_template("<include>");
    for (file, body) in &sources {
        t.add_template(file.clone(), body.clone())
            .map_err(|e| generic(format!("{file}: {e}")))?;
    }
    if !t.tree_set.contains_key(&name) {
        return Err(generic(format!("include: no template {name:?} is defined")));
    }
    let quoted = serde_json::to_string(&name).map_err(|e| generic(e.to_string()))?;
    t.parse(format!("{{{{- template {quoted} . -}}}}"))
        .map_err(|e| generic(e.to_string()))?;
    INCLUDE_DEPTH.with(|d| d.set(depth + 1));
    let out = t.render(&Context::from(dot));
    INCLUDE_DEPTH.with(|d| d.set(depth));
    out.map(Tmpl::String)
        .map_err(|e| generic(format!("include {name:?}: {e}")))
}

/// Helm's `toYaml`: the value as YAML, keys sorted, without the final newline.
fn to_yaml(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let [v] = args else {
        return Err(FuncError::ExactlyXArgs("toYaml".to_owned(), 1));
    };
    let json = to_json(v).map_err(generic)?;
    let yaml = serde_saphyr::to_string(&json).map_err(|e| generic(format!("toYaml: {e}")))?;
    Ok(Tmpl::String(yaml.trim_end_matches('\n').to_owned()))
}

fn int_arg(name: &str, v: &Tmpl) -> Result<usize, FuncError> {
    match v {
        Tmpl::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| generic(format!("{name}: the width must be a non-negative integer"))),
        _ => Err(generic(format!("{name}: the width must be a number"))),
    }
}

/// Helm's `indent N S`: every line of `S` prefixed by `N` spaces.
fn indent(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let [n, s] = args else {
        return Err(FuncError::ExactlyXArgs("indent".to_owned(), 2));
    };
    let pad = " ".repeat(int_arg("indent", n)?);
    let s = to_str(s);
    Ok(Tmpl::String(format!(
        "{pad}{}",
        s.replace('\n', &format!("\n{pad}"))
    )))
}

/// Helm's `nindent N S`: a newline, then `indent N S`.
fn nindent(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    match indent(args) {
        Ok(Tmpl::String(s)) => Ok(Tmpl::String(format!("\n{s}"))),
        Err(FuncError::ExactlyXArgs(_, n)) => Err(FuncError::ExactlyXArgs("nindent".to_owned(), n)),
        other => other,
    }
}

/// Helm's `quote`: each argument as a double-quoted string, separated by spaces; nil skipped.
fn quote(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    let mut parts = vec![];
    for a in args {
        if matches!(a, Tmpl::Nil | Tmpl::NoValue) {
            continue;
        }
        let s = to_str(a);
        parts.push(serde_json::to_string(&s).map_err(|e| generic(e.to_string()))?);
    }
    Ok(Tmpl::String(parts.join(" ")))
}

/// Helm's `default D V`: `V`, unless it is empty (missing, nil, `""`, `0`, `false`, an empty
/// list or map), then `D`.
fn default(args: &[Tmpl]) -> Result<Tmpl, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, v] => Ok(if is_empty(v) { d.clone() } else { v.clone() }),
        _ => Err(FuncError::AtLeastXArgs("default".to_owned(), 1)),
    }
}

fn is_empty(v: &Tmpl) -> bool {
    match v {
        Tmpl::NoValue | Tmpl::Nil => true,
        Tmpl::Bool(b) => !b,
        Tmpl::String(s) => s.is_empty(),
        Tmpl::Array(a) => a.is_empty(),
        Tmpl::Map(m) | Tmpl::Object(m) => m.is_empty(),
        Tmpl::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        Tmpl::Function(_) => false,
    }
}

fn to_str(v: &Tmpl) -> String {
    match v {
        Tmpl::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn to_json(v: &Tmpl) -> Result<Value, String> {
    Ok(match v {
        Tmpl::NoValue | Tmpl::Nil => Value::Null,
        Tmpl::Bool(b) => Value::Bool(*b),
        Tmpl::String(s) => Value::String(s.clone()),
        Tmpl::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(f) = n.as_f64() {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            } else {
                return Err(format!("toYaml: cannot represent number {n}"));
            }
        }
        Tmpl::Array(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        Tmpl::Map(m) | Tmpl::Object(m) => {
            // Sorted, as Go's YAML encoder writes maps.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), to_json(&m[k])?);
            }
            Value::Object(out)
        }
        Tmpl::Function(_) => return Err("toYaml: cannot represent a function".to_owned()),
    })
}

fn to_tmpl(v: &Value) -> Tmpl {
    match v {
        Value::Null => Tmpl::Nil,
        Value::Bool(b) => Tmpl::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Tmpl::from(u)
            } else if let Some(i) = n.as_i64() {
                Tmpl::from(i)
            } else {
                Tmpl::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Tmpl::String(s.clone()),
        Value::Array(a) => Tmpl::Array(a.iter().map(to_tmpl).collect()),
        Value::Object(o) => Tmpl::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_tmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn run(text: &str, values: Value) -> String {
        let all = vec![
            (
                "templates/_h.tpl".to_owned(),
                r#"{{- define "h.img" -}}{{ .Values.r }}:{{ .Values.t }}{{- end }}"#.to_owned(),
            ),
            ("templates/t.yaml".to_owned(), text.to_owned()),
        ];
        let _g = SourcesGuard::install(all.clone());
        render_template(
            "templates/t.yaml",
            text,
            &all,
            to_tmpl(&json!({"Values": values})),
        )
        .unwrap()
    }

    #[test]
    fn helm_functions_behave_as_helm() {
        let v = json!({"m": {"b": 1, "a": "x"}, "s": "a\"b", "e": "", "r": "repo", "t": "1.0"});
        assert_eq!(
            run("x:{{ toYaml .Values.m | nindent 2 }}", v.clone()),
            "x:\n  a: x\n  b: 1"
        );
        assert_eq!(
            run("{{ toYaml .Values.m | indent 4 }}", v.clone()),
            "    a: x\n    b: 1"
        );
        assert_eq!(run("{{ .Values.s | quote }}", v.clone()), r#""a\"b""#);
        assert_eq!(run("{{ .Values.e | default \"d\" }}", v.clone()), "d");
        assert_eq!(run("{{ .Values.s | default \"d\" }}", v.clone()), "a\"b");
        assert_eq!(run("{{ .Values.nothing | default \"d\" }}", v.clone()), "d");
        assert_eq!(
            run(r#"{{ include "h.img" . | quote }}"#, v.clone()),
            r#""repo:1.0""#
        );
        assert_eq!(run("{{ with .Values.m }}{{ .a }}{{ end }}", v.clone()), "x");
        assert_eq!(run("{{ if .Values.e }}y{{ else }}n{{ end }}", v), "n");
    }

    #[test]
    fn builtins_outside_the_list_do_not_exist() {
        let mut t = new_template("t");
        assert!(t.parse(r#"{{ if eq 1 1 }}x{{ end }}"#.to_owned()).is_err());
    }

    #[test]
    fn violations_name_what_is_outside_the_list() {
        let ok = r#"{{- if .Values.a }}{{ toYaml .Values.b | nindent 4 }}{{ else }}{{ with .Values.c }}{{ . | quote }}{{ end }}{{ end }}
{{/* a comment with printf */}}{{ include "x.y" . }}{{ .Release.Namespace }}{{ $.Values.d | default "e}}f" }}
{{- range .Values.list }}{{ .name }}{{ end }}{{ define "z" }}{{ end }}"#;
        assert_eq!(template_violations(ok), Vec::<String>::new());
        let bad = r#"{{ printf "%s" .Values.a }}{{ template "x" . }}{{ .Chart.Name }}{{ .Release.Service }}{{ $x := 1 }}{{ if eq 1 2 }}{{ end }}{{ .Values.a | upper }}"#;
        let v = template_violations(bad);
        for want in [
            "function printf",
            "action template",
            "field .Chart.Name",
            "field .Release.Service",
            "variable $x",
            "assignment",
            "function eq",
            "function upper",
        ] {
            assert!(v.iter().any(|m| m.starts_with(want)), "{want} not in {v:?}");
        }
    }

    #[test]
    fn merge_is_helms() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 1});
        merge(
            &mut base,
            &json!({"a": {"b": 3}, "d": [2, 3], "e": null, "f": "new"}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 3, "c": 2}, "d": [2, 3], "f": "new"})
        );
    }
}
