//! `sluice render`: a template in, the rendered text out (held in a zeroizing buffer until it is
//! written 0600 through a temporary file and a rename).
//!
//! The language is deliberately small: text is copied as is, and each `{{ … }}` is one of
//! - `{{ secret "NAME" }}` — the value of variable NAME in the environment being rendered;
//! - `{{ "text" }}` — a literal (write `{{ "{{" }}` for literal braces).
//!
//! Every problem is reported at `template:line:col`, all at once.

use zeroize::Zeroizing;

use super::SecretValue;
use crate::error::{Error, Location, Problem};

/// One piece of a parsed template.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Literal(String),
    Secret { name: String, at: Location },
}

fn parse_string(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            c if c == q => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn parse<'a>(name: &str, text: &'a str) -> Result<Vec<Piece<'a>>, Vec<Problem>> {
    let mut pieces = Vec::new();
    let mut problems = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{").map(|i| rest + i) {
        pieces.push(Piece::Text(&text[rest..open]));
        let at = Location::from_offset(name, text, open);
        let Some(close) = text[open + 2..].find("}}").map(|i| open + 2 + i) else {
            problems.push(Problem::new(at, "`{{` is never closed; add `}}`"));
            rest = text.len();
            break;
        };
        let body = text[open + 2..close].trim();
        if let Some(arg) = body
            .strip_prefix("secret")
            .filter(|a| a.starts_with([' ', '\t']))
        {
            match parse_string(arg) {
                Some(n) if !n.is_empty() => pieces.push(Piece::Secret { name: n, at }),
                _ => problems.push(Problem::new(
                    at,
                    format!("`{{{{ {body} }}}}`: write {{{{ secret \"NAME\" }}}}"),
                )),
            }
        } else if let Some(lit) = parse_string(body) {
            pieces.push(Piece::Literal(lit));
        } else {
            problems.push(Problem::new(
                at,
                format!("`{{{{ {body} }}}}` is not understood; use {{{{ secret \"NAME\" }}}} or {{{{ \"text\" }}}}"),
            ));
        }
        rest = close + 2;
    }
    pieces.push(Piece::Text(&text[rest..]));
    if problems.is_empty() {
        Ok(pieces)
    } else {
        Err(problems)
    }
}

/// The variable names a template uses (for resolving only those).
pub(crate) fn names(template_name: &str, text: &str) -> Result<Vec<String>, Error> {
    let pieces = parse(template_name, text).map_err(|problems| Error::Invalid { problems })?;
    let mut out: Vec<String> = pieces
        .into_iter()
        .filter_map(|p| match p {
            Piece::Secret { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Render `text` with `values`. A name without a value is a problem at its position.
pub(crate) fn render(
    template_name: &str,
    text: &str,
    values: &[(String, SecretValue)],
) -> Result<Zeroizing<String>, Error> {
    let pieces = parse(template_name, text).map_err(|problems| Error::Invalid { problems })?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut problems = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Literal(l) => out.push_str(&l),
            Piece::Secret { name, at } => match values.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => out.push_str(v.expose()),
                None => problems.push(Problem::new(
                    at,
                    format!("no variable `{name}` for this environment; add it under `secrets:`"),
                )),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Invalid { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals() -> Vec<(String, SecretValue)> {
        vec![("DB".into(), SecretValue::new("pg://x".into()))]
    }

    #[test]
    fn renders_secrets_and_literals() {
        let t = "url={{ secret \"DB\" }}\nraw={{ \"{{\" }}x}}\n{{secret 'DB'}}";
        assert_eq!(
            *render("t", t, &vals()).unwrap(),
            "url=pg://x\nraw={{x}}\npg://x"
        );
        assert_eq!(names("t", t).unwrap(), ["DB"]);
    }

    #[test]
    fn every_problem_with_its_position() {
        let t = "a {{ secret \"NOPE\" }}\n  {{ env \"X\" }} {{ secret }}\n{{ open";
        let err = render("app.tmpl", t, &vals()).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines[0].starts_with("app.tmpl:2:3: `{{ env \"X\" }}` is not understood"),
            "{err}"
        );
        assert!(lines[1].starts_with("app.tmpl:2:17:"), "{err}");
        assert!(
            lines[2].starts_with("app.tmpl:3:1: `{{` is never closed"),
            "{err}"
        );
        let err = render("app.tmpl", "{{ secret \"NOPE\" }}", &vals())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("app.tmpl:1:1: no variable `NOPE`"), "{err}");
    }
}
