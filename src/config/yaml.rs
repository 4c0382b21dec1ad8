//! YAML with positions: text in, a [`Node`] tree where every value knows its line and column.
//!
//! serde's YAML front-ends forget positions after the first error; sluice wants every problem of
//! a file at once, each at `file:line:col`, so it reads the event stream itself.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Location, Problem};

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted, or plain and not another type).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order: (key, value).
    Map(Vec<(Node, Node)>),
}

/// A value with its 1-based line and column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Node {
    /// The location of this node in `file`.
    pub(crate) fn at(&self, file: &str) -> Location {
        Location::at(file, self.line, self.col)
    }

    /// A short name of the node's type, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON (map keys that are not strings become their YAML text).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a mapping key.
    pub(crate) fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            _ => "<complex key>".into(),
        }
    }
}

/// Resolve a plain scalar the way YAML 1.2's core schema does.
fn plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    if let Some(h) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(h, 16)
    {
        return Value::Int(i);
    }
    let looks_numeric = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_numeric
        && s.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = s.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

enum Frame {
    /// A sequence being read, its anchor, and how many values it holds so far (itself included).
    Seq(Node, usize, usize),
    /// A mapping being read, its anchor, a key waiting for its value, and its size so far.
    Map(Node, usize, Option<Node>, usize),
}

/// Values a document may hold once its aliases are expanded: an alias copies its anchor's whole
/// value, so a few hundred bytes of nested aliases can stand for billions of values (an alias
/// bomb). Real configs stay far below this.
const MAX_VALUES: usize = 1_000_000;

/// How deep collections may nest.
const MAX_DEPTH: usize = 128;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    documents: usize,
    /// Values built so far, aliases counted by what they expand to.
    values: usize,
    /// Whether any alias was expanded (for the message when the document is too big).
    aliased: bool,
    /// Why the document was refused (too many values, too deep), with where.
    refused: Option<(String, usize, usize)>,
}

impl Builder {
    fn push_value(&mut self, node: Node, size: usize) {
        match self.stack.last_mut() {
            Some(Frame::Seq(n, _, total)) => {
                *total += size;
                if let Value::Seq(items) = &mut n.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(n, _, key, total)) => {
                *total += size;
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => {
                        if let Value::Map(entries) = &mut n.value {
                            entries.push((k, node));
                        }
                    }
                }
            }
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }

    /// Count `size` more values; false (and the document refused) past the limit.
    fn grow(&mut self, size: usize, line: usize, col: usize) -> bool {
        self.values = self.values.saturating_add(size);
        if self.values > MAX_VALUES && self.refused.is_none() {
            self.refused = Some((
                if self.aliased {
                    format!(
                        "the document expands to more than {MAX_VALUES} values (YAML aliases copy their anchor's whole value; nested aliases multiply); write the values out or use fewer aliases"
                    )
                } else {
                    format!(
                        "the document holds more than {MAX_VALUES} values, more than a configuration needs; split it"
                    )
                },
                line,
                col,
            ));
        }
        self.refused.is_none()
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (line, col) = (mark.line(), mark.col() + 1);
        if self.refused.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.grow(1, line, col) {
                    return;
                }
                let value = if style == TScalarStyle::Plain {
                    plain(&text)
                } else {
                    Value::Str(text)
                };
                let node = Node { value, line, col };
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                self.push_value(node, 1);
            }
            Event::Alias(id) => {
                let (node, size) = self.anchors.get(&id).cloned().unwrap_or((
                    Node {
                        value: Value::Null,
                        line,
                        col,
                    },
                    1,
                ));
                // Counted before the copy is made: the copy is what would not fit.
                self.aliased = true;
                if !self.grow(size, line, col) {
                    return;
                }
                self.push_value(node, size);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.refused = Some((
                        format!(
                            "collections nest more than {MAX_DEPTH} levels deep; flatten the file"
                        ),
                        line,
                        col,
                    ));
                    return;
                }
                if !self.grow(1, line, col) {
                    return;
                }
                let map = matches!(ev, Event::MappingStart(..));
                let node = Node {
                    value: if map {
                        Value::Map(Vec::new())
                    } else {
                        Value::Seq(Vec::new())
                    },
                    line,
                    col,
                };
                self.stack.push(if map {
                    Frame::Map(node, anchor, None, 1)
                } else {
                    Frame::Seq(node, anchor, 1)
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Frame::Seq(n, a, size) | Frame::Map(n, a, _, size)) = self.stack.pop() {
                    if a > 0 {
                        self.anchors.insert(a, (n.clone(), size));
                    }
                    self.push_value(n, size);
                }
            }
            _ => {}
        }
    }
}

/// The largest document read (64 MiB): beyond it a file is not a configuration.
const MAX_BYTES: usize = 64 << 20;

/// Parse one YAML document. A syntax error is one problem at its position.
pub(crate) fn parse(file: &str, text: &str) -> Result<Node, Problem> {
    if text.len() > MAX_BYTES {
        return Err(Problem::new(
            Location::file(file),
            format!(
                "is {} MiB; documents over {} MiB are refused (a configuration is far smaller)",
                text.len() >> 20,
                MAX_BYTES >> 20
            ),
        ));
    }
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(Problem::new(
            Location::at(file, m.line(), m.col() + 1),
            format!(
                "YAML syntax error: {}; fix the syntax at this position",
                e.info()
            ),
        ));
    }
    if let Some((why, line, col)) = b.refused {
        return Err(Problem::new(Location::at(file, line, col), why));
    }
    if b.documents > 1 {
        return Err(Problem::new(
            Location::file(file),
            "holds several YAML documents; keep one",
        ));
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Null,
        line: 1,
        col: 1,
    }))
}

/// Replace `${VAR}` and `${VAR:-default}` in every string with the process environment's value;
/// `$$` is a literal `$`. Every undefined variable is a problem at its string.
pub(crate) fn interpolate(
    file: &str,
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => match expand(s, lookup) {
            Ok(v) => *s = v,
            Err(msg) => problems.push(Problem::new(node.at(file), msg)),
        },
        Value::Seq(items) => {
            for n in items {
                interpolate(file, n, lookup, problems);
            }
        }
        Value::Map(entries) => {
            for (_, v) in entries {
                interpolate(file, v, lookup, problems);
            }
        }
        _ => {}
    }
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err("unclosed `${`; write `${NAME}`, or `$${` for a literal".into());
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`${{{inner}}}` is not a variable reference; names are letters, digits and _"
                ));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set; set it, or write ${{{name}:-default}}"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused_quickly() {
        // Each level holds nine copies of the one before: 9^9 values from a few hundred bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(text.len() < 600, "{}", text.len());
        let e = parse("bomb.yaml", &text).unwrap_err();
        assert!(e.message.contains("expands to more than"), "{}", e.message);
        assert!(e.at.line > 1, "{e}");
        // A few aliases are fine.
        let ok = parse("ok.yaml", "base: &b { x: 1 }\none: *b\ntwo: *b\n").unwrap();
        assert!(matches!(ok.value, Value::Map(ref m) if m.len() == 3));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let e = parse("deep.yaml", &deep).unwrap_err();
        assert!(e.message.contains("nest more than"), "{}", e.message);
    }

    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("f", "a:\n  b: [1, x]\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        let Value::Map(inner) = &m[0].1.value else {
            panic!()
        };
        assert_eq!((inner[0].0.line, inner[0].0.col), (2, 3));
        let Value::Seq(s) = &inner[0].1.value else {
            panic!()
        };
        assert_eq!(s[1].value, Value::Str("x".into()));
        assert_eq!((s[1].line, s[1].col), (2, 10));
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        assert_eq!(plain("true"), Value::Bool(true));
        assert_eq!(plain("12"), Value::Int(12));
        assert_eq!(plain("1.5"), Value::Float(1.5));
        assert_eq!(plain("~"), Value::Null);
        assert_eq!(plain("e"), Value::Str("e".into()));
    }

    #[test]
    fn interpolation() {
        let look = |k: &str| (k == "HOME_DIR").then(|| "/h".to_string());
        assert_eq!(expand("${HOME_DIR}/x", &look).unwrap(), "/h/x");
        assert_eq!(expand("${NOPE:-d}", &look).unwrap(), "d");
        assert_eq!(expand("$${HOME_DIR} $5", &look).unwrap(), "${HOME_DIR} $5");
        assert!(
            expand("${NOPE}", &look)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(expand("${", &look).is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("f.yaml", "a: [1,\nb: 2\n").unwrap_err();
        assert_eq!(e.at.file, "f.yaml");
        assert!(e.at.line >= 1);
    }
}
