//! Checks a positioned YAML tree against a JSON Schema (the subset schemars emits) and reports
//! every violation at once, each at its `file:line:col`.
//!
//! The schema is generated from the Rust config types, so the types stay the one source of truth;
//! this walker only turns "the types would reject this" into precise, complete messages.

use serde_json::Value as J;

use super::yaml::{Node, Value};
use crate::error::Problem;

/// Validate `node` against `schema`; push every problem.
pub(crate) fn validate(file: &str, node: &Node, schema: &J, out: &mut Vec<Problem>) {
    check(file, node, schema, schema, "", out);
}

fn resolve<'a>(root: &'a J, schema: &'a J) -> &'a J {
    let mut s = schema;
    for _ in 0..32 {
        let Some(r) = s.get("$ref").and_then(J::as_str) else {
            return s;
        };
        let Some(path) = r.strip_prefix('#') else {
            return s;
        };
        match root.pointer(path) {
            Some(t) => s = t,
            None => return s,
        }
    }
    s
}

fn type_matches(t: &str, node: &Node) -> bool {
    matches!(
        (t, &node.value),
        ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("integer", Value::Int(_))
            | ("number", Value::Int(_) | Value::Float(_))
            | ("string", Value::Str(_))
            | ("array", Value::Seq(_))
            | ("object", Value::Map(_))
    )
}

fn type_name(t: &str) -> &str {
    match t {
        "null" => "null",
        "boolean" => "true or false",
        "integer" => "an integer",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        other => other,
    }
}

fn check(file: &str, node: &Node, schema: &J, root: &J, path: &str, out: &mut Vec<Problem>) {
    let schema = resolve(root, schema);
    if schema == &J::Bool(true) {
        return;
    }
    let here = |msg: String| Problem::new(node.at(file), msg);
    let name = if path.is_empty() {
        "the document"
    } else {
        path
    };

    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(J::as_array) {
            union(file, node, branches, root, path, name, out);
        }
    }
    if let Some(all) = schema.get("allOf").and_then(J::as_array) {
        for b in all {
            check(file, node, b, root, path, out);
        }
    }

    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            J::String(s) => vec![s.as_str()],
            J::Array(a) => a.iter().filter_map(J::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, node)) {
            let want: Vec<&str> = types.iter().map(|t| type_name(t)).collect();
            out.push(here(format!(
                "{name}: expected {}, found {}",
                want.join(" or "),
                node.kind()
            )));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(J::as_array) {
        let v = node.to_json();
        if !allowed.contains(&v) {
            let names: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            out.push(here(format!(
                "{name}: {} is not allowed; use one of {}",
                v,
                names.join(", ")
            )));
        }
    }
    if let Some(c) = schema.get("const")
        && &node.to_json() != c
    {
        out.push(here(format!("{name}: must be {c}")));
    }
    if let (Some(min), Some(v)) = (
        schema.get("minimum").and_then(J::as_f64),
        node.to_json().as_f64(),
    ) && v < min
    {
        out.push(here(format!("{name}: must be at least {min}")));
    }
    if let (Some(max), Some(v)) = (
        schema.get("maximum").and_then(J::as_f64),
        node.to_json().as_f64(),
    ) && v > max
    {
        out.push(here(format!("{name}: must be at most {max}")));
    }

    match &node.value {
        Value::Map(entries) => {
            let props = schema.get("properties").and_then(J::as_object);
            let additional = schema.get("additionalProperties");
            // A set: a mapping of 100,000 variables is checked in linear time.
            let mut seen: std::collections::HashSet<String> =
                std::collections::HashSet::with_capacity(entries.len());
            for (k, v) in entries {
                let key = k.key_text();
                if !seen.insert(key.clone()) {
                    out.push(Problem::new(
                        k.at(file),
                        format!("duplicate key `{key}`; keep one"),
                    ));
                }
                let child = join(path, &key);
                if let Some(s) = props.and_then(|p| p.get(&key)) {
                    check(file, v, s, root, &child, out);
                } else {
                    match additional {
                        Some(J::Bool(false)) => {
                            let mut known: Vec<&str> = props
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            known.sort_unstable();
                            let hint = match closest(&key, &known) {
                                Some(c) => format!("did you mean `{c}`?"),
                                None => format!("expected one of: {}", known.join(", ")),
                            };
                            out.push(Problem::new(
                                k.at(file),
                                format!("unknown key `{key}` in {name}; {hint}"),
                            ));
                        }
                        Some(s @ J::Object(_)) => check(file, v, s, root, &child, out),
                        _ => {}
                    }
                }
            }
            if let Some(req) = schema.get("required").and_then(J::as_array) {
                for r in req.iter().filter_map(J::as_str) {
                    if !seen.contains(r) {
                        out.push(here(format!("{name}: missing required key `{r}`")));
                    }
                }
            }
        }
        Value::Seq(items) => {
            if let Some(item) = schema.get("items") {
                for (i, n) in items.iter().enumerate() {
                    check(file, n, item, root, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The key every branch of a union fixes to a constant (serde's `tag`, e.g. `provider`), with
/// each branch's constant.
fn tag_of<'a>(branches: &'a [J], root: &'a J) -> Option<(String, Vec<(&'a str, &'a J)>)> {
    let first = resolve(root, branches.first()?);
    let props = first.get("properties")?.as_object()?;
    props.keys().find_map(|k| {
        let consts: Option<Vec<(&str, &J)>> = branches
            .iter()
            .map(|b| {
                let b = resolve(root, b);
                let c = b.get("properties")?.get(k)?.get("const")?.as_str()?;
                Some((c, b))
            })
            .collect();
        consts.map(|c| (k.clone(), c))
    })
}

/// The branches of `anyOf`/`oneOf`. A tagged union is checked against the branch its tag names
/// (an unknown tag lists the known ones); otherwise the branch that fits best by kind and by
/// the keys written speaks, with its own problems (`missing required key`, `unknown key`), and
/// only a node of a kind no branch takes is answered with the kinds that are.
fn union(
    file: &str,
    node: &Node,
    branches: &[J],
    root: &J,
    path: &str,
    name: &str,
    out: &mut Vec<Problem>,
) {
    if let (Value::Map(entries), Some((tag, consts))) = (&node.value, tag_of(branches, root)) {
        let written = entries.iter().find(|(k, _)| k.key_text() == tag);
        let known: Vec<&str> = consts.iter().map(|(c, _)| *c).collect();
        match written {
            None => out.push(Problem::new(
                node.at(file),
                format!(
                    "{name}: missing required key `{tag}` (one of: {})",
                    known.join(", ")
                ),
            )),
            Some((_, v)) => match consts
                .iter()
                .find(|(c, _)| matches!(&v.value, Value::Str(s) if s == c))
            {
                Some((_, b)) => check(file, node, b, root, path, out),
                None => out.push(Problem::new(
                    v.at(file),
                    format!(
                        "{}: {} is not one of: {}",
                        join(path, &tag),
                        match &v.value {
                            Value::Str(s) => format!("`{}`", s.escape_debug()),
                            _ => v.kind().to_string(),
                        },
                        known.join(", ")
                    ),
                )),
            },
        }
        return;
    }
    let mut best: Option<(usize, Vec<Problem>)> = None;
    let mut kinds: Vec<String> = Vec::new();
    for b in branches {
        let rb = resolve(root, b);
        let fits_kind = match rb.get("type") {
            Some(J::String(t)) => type_matches(t, node),
            Some(J::Array(ts)) => ts
                .iter()
                .filter_map(J::as_str)
                .any(|t| type_matches(t, node)),
            _ => true,
        };
        let kind = describe(rb);
        if !kind.is_empty() && !kinds.contains(&kind) {
            kinds.push(kind);
        }
        let mut p = Vec::new();
        check(file, node, b, root, path, &mut p);
        if p.is_empty() {
            return;
        }
        if !fits_kind {
            continue;
        }
        // How many of the keys written this branch knows: the branch the author meant.
        // A key it knows counts 2, a key close to one of its keys (a typo) 1.
        let shared = match (&node.value, rb.get("properties").and_then(J::as_object)) {
            (Value::Map(entries), Some(props)) => {
                let known: Vec<&str> = props.keys().map(String::as_str).collect();
                entries
                    .iter()
                    .map(|(k, _)| {
                        let k = k.key_text();
                        if props.contains_key(&k) {
                            2
                        } else {
                            usize::from(closest(&k, &known).is_some())
                        }
                    })
                    .sum()
            }
            _ => 0,
        };
        let better = best
            .as_ref()
            .is_none_or(|(s, bp)| shared > *s || (shared == *s && p.len() < bp.len()));
        if better {
            best = Some((shared, p));
        }
    }
    match best {
        Some((_, mut p)) => out.append(&mut p),
        None => out.push(Problem::new(
            node.at(file),
            format!(
                "{name}: expected {}, found {}",
                kinds.join(" or "),
                node.kind()
            ),
        )),
    }
}

/// A short description of what a schema accepts, or "" when it is not simple.
fn describe(schema: &J) -> String {
    if let Some(c) = schema.get("const") {
        return c.to_string();
    }
    if let Some(e) = schema.get("enum").and_then(J::as_array) {
        return e
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
    }
    match schema.get("type") {
        Some(J::String(t)) => type_name(t).to_string(),
        _ => String::new(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        format!("`{key}`")
    } else {
        format!("{}.{key}`", path.trim_end_matches('`'))
    }
}

/// The known key closest to `key` by edit distance, when it is close enough to be a typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    #[test]
    fn reports_every_problem_with_positions() {
        let schema = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["version"],
            "properties": {
                "version": { "type": "integer", "minimum": 1 },
                "scan": { "$ref": "#/$defs/Scan" }
            },
            "$defs": { "Scan": {
                "type": "object", "additionalProperties": false,
                "properties": { "exclude": { "type": "array", "items": { "type": "string" } },
                                "gitignore": { "type": "boolean" } }
            }}
        });
        let doc = "scan:\n  exclud: [a]\n  gitignore: yes-please\n  exclude: [1, b]\nextra: 1\n";
        let node = parse("c.yaml", doc).unwrap();
        let mut p = Vec::new();
        validate("c.yaml", &node, &schema, &mut p);
        let text: Vec<String> = p.iter().map(|x| x.to_string()).collect();
        assert_eq!(p.len(), 5, "{text:#?}");
        assert!(
            text[0].starts_with("c.yaml:2:3: unknown key `exclud`"),
            "{}",
            text[0]
        );
        assert!(text[0].contains("did you mean `exclude`"));
        assert!(text[1].starts_with("c.yaml:3:14:"), "{}", text[1]);
        assert!(
            text[2].starts_with("c.yaml:4:13: `scan.exclude`[0]"),
            "{}",
            text[2]
        );
        assert!(text[3].starts_with("c.yaml:5:1: unknown key `extra`"));
        assert!(text[4].contains("missing required key `version`"));
    }

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("exclud", "exclude"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
