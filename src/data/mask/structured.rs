//! Values with structure inside: PostgreSQL array text (`{a,"b c",NULL}`), JSON documents
//! addressed by paths (`$.contact.phone`, `$.items[*].email`), and row templates
//! (`{first_name} {last_name}`). Text in, text out; the masking of the leaves is the caller's.

use serde_json::Value;

/// Split PostgreSQL's text form of a one-dimensional array into its elements (`None`: NULL).
/// Nested arrays are kept whole as elements (their text form is masked by the element transform).
pub(crate) fn parse_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| "not an array (expected `{…}`)".to_string())?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let mut quoted = false;
        let mut depth = 0;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => item.push(chars.next().ok_or("dangling backslash")?),
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err("unterminated quoted element".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => break,
                    _ => {}
                }
                item.push(c);
                chars.next();
            }
        }
        out.push((quoted || !item.eq_ignore_ascii_case("NULL")).then_some(item));
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected `{c}` after an element")),
        }
    }
}

/// Write elements back in PostgreSQL's array text form, quoting where needed.
pub(crate) fn write_array(items: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            None => out.push_str("NULL"),
            Some(s) if s.starts_with('{') => out.push_str(s),
            Some(s) => {
                let plain = !s.is_empty()
                    && !s.eq_ignore_ascii_case("NULL")
                    && !s
                        .chars()
                        .any(|c| matches!(c, ',' | '"' | '\\' | '{' | '}') || c.is_whitespace());
                if plain {
                    out.push_str(s);
                } else {
                    out.push('"');
                    for c in s.chars() {
                        if matches!(c, '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
        }
    }
    out.push('}');
    out
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// Every array element (or every member value of an object).
    All,
}

/// Parse `$.a.b`, `$.a[*].b`, `$.a[0]`, `$["odd key"].c`.
pub(crate) fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("`{path}`: a JSON path starts with `$`"))?;
    let mut steps = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(format!("`{path}`: empty member name"));
                }
                steps.push(if key == "*" {
                    Step::All
                } else {
                    Step::Key(key)
                });
            }
            '[' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                let inner = inner.trim();
                steps.push(if inner == "*" {
                    Step::All
                } else if let Some(q) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    Step::Key(q.to_string())
                } else {
                    Step::Index(
                        inner
                            .parse()
                            .map_err(|_| format!("`{path}`: `[{inner}]` is not an index"))?,
                    )
                });
            }
            c => return Err(format!("`{path}`: unexpected `{c}`")),
        }
    }
    Ok(steps)
}

/// Apply `leaf` to every string or number the path reaches inside `doc`. A number stays a number
/// when the masked text parses as one.
pub(crate) fn apply_path(
    doc: &mut Value,
    steps: &[Step],
    leaf: &mut dyn FnMut(&str) -> Result<Option<String>, String>,
) -> Result<(), String> {
    let Some((first, rest)) = steps.split_first() else {
        let text = match doc {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            // Objects, arrays and null at the end of a path are left alone.
            _ => return Ok(()),
        };
        let was_number = doc.is_number();
        *doc = match leaf(&text)? {
            None => Value::Null,
            Some(m) if was_number => m
                .parse::<serde_json::Number>()
                .map(Value::Number)
                .unwrap_or(Value::String(m)),
            Some(m) => Value::String(m),
        };
        return Ok(());
    };
    match (first, doc) {
        (Step::Key(k), Value::Object(map)) => match map.get_mut(k) {
            Some(v) => apply_path(v, rest, leaf),
            None => Ok(()),
        },
        (Step::Index(i), Value::Array(items)) => match items.get_mut(*i) {
            Some(v) => apply_path(v, rest, leaf),
            None => Ok(()),
        },
        (Step::All, Value::Array(items)) => {
            for v in items {
                apply_path(v, rest, leaf)?;
            }
            Ok(())
        }
        (Step::All, Value::Object(map)) => {
            for v in map.values_mut() {
                apply_path(v, rest, leaf)?;
            }
            Ok(())
        }
        // The document has another shape here: nothing to mask on this branch.
        _ => Ok(()),
    }
}

/// The leaves a path reaches inside `doc` (strings, numbers, booleans, as `apply_path` sees
/// them), each with where it was found (`/contact/email`, `/items/2/email`), so two documents'
/// leaves can be compared place by place.
pub(crate) fn leaves(doc: &Value, steps: &[Step]) -> Vec<(String, Value)> {
    fn walk(doc: &Value, steps: &[Step], at: &mut String, out: &mut Vec<(String, Value)>) {
        let Some((first, rest)) = steps.split_first() else {
            if matches!(doc, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                out.push((at.clone(), doc.clone()));
            }
            return;
        };
        let mut visit = |name: &str, v: &Value, out: &mut Vec<(String, Value)>| {
            let len = at.len();
            at.push('/');
            // JSON Pointer escaping keeps `a/b` and `a`,`b` apart.
            at.push_str(&name.replace('~', "~0").replace('/', "~1"));
            walk(v, rest, at, out);
            at.truncate(len);
        };
        match (first, doc) {
            (Step::Key(k), Value::Object(map)) => {
                if let Some(v) = map.get(k) {
                    visit(k, v, out);
                }
            }
            (Step::Index(i), Value::Array(items)) => {
                if let Some(v) = items.get(*i) {
                    visit(&i.to_string(), v, out);
                }
            }
            (Step::All, Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    visit(&i.to_string(), v, out);
                }
            }
            (Step::All, Value::Object(map)) => {
                for (k, v) in map {
                    visit(k, v, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, steps, &mut String::new(), &mut out);
    out
}

/// A JSON document that contains `leaf` at `steps`, for `@>` containment. An index or `[*]`
/// becomes a one-element array, which matches the leaf at any position; a `*` over an
/// object's members has no containment form and finds nothing.
pub(crate) fn containing(steps: &[Step], leaf: Value) -> Value {
    let mut doc = leaf;
    for step in steps.iter().rev() {
        doc = match step {
            Step::Key(k) => Value::Object([(k.clone(), doc)].into_iter().collect()),
            Step::Index(_) | Step::All => Value::Array(vec![doc]),
        };
    }
    doc
}

/// The column names a template refers to (`{name}`; `{{` is a literal brace).
pub(crate) fn template_columns(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    render_template(template, &mut |name| {
        out.push(name.to_string());
        Some(String::new())
    })?;
    Ok(out)
}

/// Render a template, asking `value` for each `{column}`; a NULL column makes the result NULL.
pub(crate) fn render_template(
    template: &str,
    value: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut null = false;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("template `{template}`: unclosed `{{`")),
                    }
                }
                match value(name.trim()) {
                    Some(v) => out.push_str(&v),
                    None => null = true,
                }
            }
            '}' => return Err(format!("template `{template}`: lone `}}` (write `}}}}`)")),
            c => out.push(c),
        }
    }
    Ok((!null).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_with_quotes_nulls_and_nesting() {
        let items =
            parse_array(r#"{plain,"with space","quo\"te","back\\slash",NULL,"NULL",""}"#).unwrap();
        assert_eq!(
            items,
            [
                Some("plain".into()),
                Some("with space".into()),
                Some("quo\"te".into()),
                Some("back\\slash".into()),
                None,
                Some("NULL".into()),
                Some(String::new())
            ]
        );
        assert_eq!(
            write_array(&items),
            r#"{plain,"with space","quo\"te","back\\slash",NULL,"NULL",""}"#
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(
            parse_array("{{1,2},{3,4}}").unwrap(),
            [Some("{1,2}".into()), Some("{3,4}".into())]
        );
        assert!(parse_array("nope").is_err());
    }

    #[test]
    fn json_paths_reach_nested_leaves_and_keep_numbers() {
        let mut doc: Value = serde_json::from_str(
            r#"{"contact": {"phone": "+49 30 1234567", "age": 41},
                "items": [{"email": "a@x.example"}, {"email": "b@x.example"}, {"other": 1}],
                "odd key": {"v": "s"}}"#,
        )
        .unwrap();
        let mut upper = |s: &str| Ok(Some(s.to_uppercase()));
        apply_path(
            &mut doc,
            &parse_path("$.items[*].email").unwrap(),
            &mut upper,
        )
        .unwrap();
        apply_path(
            &mut doc,
            &parse_path(r#"$["odd key"].v"#).unwrap(),
            &mut upper,
        )
        .unwrap();
        apply_path(
            &mut doc,
            &parse_path("$.missing.deeper").unwrap(),
            &mut upper,
        )
        .unwrap();
        apply_path(
            &mut doc,
            &parse_path("$.contact.age").unwrap(),
            &mut |s: &str| Ok(Some(format!("{}", s.parse::<i64>().unwrap() + 1))),
        )
        .unwrap();
        assert_eq!(doc["items"][1]["email"], "B@X.EXAMPLE");
        assert_eq!(doc["items"][2]["other"], 1);
        assert_eq!(doc["odd key"]["v"], "S");
        assert_eq!(doc["contact"]["age"], 42);
        assert!(parse_path("contact.phone").is_err());
        assert!(parse_path("$.a[x]").is_err());
        assert_eq!(
            parse_path("$.a[0].*").unwrap(),
            [Step::Key("a".into()), Step::Index(0), Step::All]
        );
    }

    #[test]
    fn templates_name_columns_escape_braces_and_propagate_null() {
        assert_eq!(
            template_columns("{first} {last} <{{x}}>").unwrap(),
            ["first", "last"]
        );
        let r = render_template("{first} {last} <{{x}}>", &mut |c| {
            (c == "first")
                .then(|| "Ann".to_string())
                .or(Some("Lee".into()))
        })
        .unwrap();
        assert_eq!(r.as_deref(), Some("Ann Lee <{x}>"));
        assert_eq!(render_template("{a}", &mut |_| None).unwrap(), None);
        assert!(render_template("{a", &mut |_| None).is_err());
    }
}
