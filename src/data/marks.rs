//! What sluice writes into the comment of every database it creates, and reads back before it
//! renames or drops one: `sluice:{json}`. A database without the mark is never touched.
//!
//! Pure: marks in and out of comment text, TTLs in and out of text, ages for people.

use serde::{Deserialize, Serialize};

/// The prefix of every mark.
pub(crate) const PREFIX: &str = "sluice:";

/// What a database sluice created is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Being loaded (`<name>_sluice_new`); removed by the next run if it is left behind.
    Loading,
    /// The plan's target, swapped in by a refresh.
    Current,
    /// The target before the last swap, kept until the next success.
    Previous,
    /// A masked template that `env up` clones.
    Template,
    /// An ephemeral environment made by `env up`.
    Env,
}

/// The mark on a database sluice created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    /// What the database is for.
    pub role: Role,
    /// The plan that filled it.
    pub plan: String,
    /// When it was filled (seconds since the Unix epoch).
    pub at: u64,
    /// Who asked for it (environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When it may be dropped by `env gc` (seconds since the Unix epoch; none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// How it was filled: `stream` (a refresh) or `template` (a clone of the plan's template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// A sharded load: the snapshot every shard reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// A sharded load: how many shards write into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// A sharded load: the shards that began copying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<u32>,
    /// A sharded load: the shards whose rows are in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<u32>,
    /// A loading database that is complete and being swapped in, as what: a swap cut short is
    /// completed by the next run rather than the copy discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Role>,
}

impl Mark {
    /// A mark for `plan` made at `at`.
    pub(crate) fn new(role: Role, plan: &str, at: u64) -> Mark {
        Mark {
            role,
            plan: plan.to_string(),
            at,
            owner: None,
            expires: None,
            via: None,
            snapshot: None,
            shards: None,
            started: Vec::new(),
            done: Vec::new(),
            ready: None,
        }
    }

    /// The same mark in another role.
    pub(crate) fn with_role(&self, role: Role) -> Mark {
        Mark {
            role,
            ..self.clone()
        }
    }

    /// The comment text.
    pub(crate) fn render(&self) -> String {
        format!(
            "{PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The mark in a database comment, if it carries one sluice can read. A comment that starts
    /// with the prefix but does not parse (an older or newer sluice) is still sluice's:
    /// [`is_ours`] says so.
    pub(crate) fn parse(comment: &str) -> Option<Mark> {
        serde_json::from_str(comment.strip_prefix(PREFIX)?).ok()
    }

    /// Whether it has expired at `now`.
    pub(crate) fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// Whether a database comment says sluice created the database.
pub(crate) fn is_ours(comment: Option<&str>) -> bool {
    comment.is_some_and(|c| c.starts_with(PREFIX))
}

/// Seconds since the Unix epoch, now.
pub(crate) fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A duration such as `24h`, `90m`, `7d`, `1d12h` or `3600s` in seconds; `never` is `None`.
pub(crate) fn parse_ttl(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let bad = || {
        format!(
            "`{text}` is not a duration; write e.g. 30m, 24h, 7d, 1d12h (units s, m, h, d, w) or `never`"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        saw_unit = true;
    }
    if !digits.is_empty() || !saw_unit || total == 0 {
        return Err(bad());
    }
    Ok(Some(total))
}

/// A span of seconds for people: `45s`, `12m`, `3h05m`, `2d04h`.
pub(crate) fn human_span(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes for people: `812 kB`, `43 MB`, `1.2 GB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 10_000 => format!("{b} B"),
        b if b < 10_000_000 => format!("{} kB", b / 1000),
        b if b < 10_000_000_000 => format!("{} MB", b / 1_000_000),
        b => format!("{:.1} GB", b as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_old_marks_still_parse() {
        let mut m = Mark::new(Role::Env, "pr", 1_700_000_000);
        m.owner = Some("ci".into());
        m.expires = Some(1_700_086_400);
        m.via = Some("template".into());
        let text = m.render();
        assert!(text.starts_with("sluice:{\"role\":\"env\""), "{text}");
        assert_eq!(Mark::parse(&text), Some(m.clone()));
        assert!(is_ours(Some(&text)));
        assert!(!is_ours(Some("made by hand")) && !is_ours(None));
        // The mark of earlier versions: role, plan, at.
        let old = Mark::parse(r#"sluice:{"role":"current","plan":"nightly","at":5}"#).unwrap();
        assert_eq!(old.role, Role::Current);
        assert_eq!(old.expires, None);
        assert!(!old.expired(u64::MAX));
        assert!(m.expired(1_700_086_400) && !m.expired(1_700_086_399));
        assert_eq!(Mark::parse("sluice:{broken"), None);
    }

    #[test]
    fn ttls_parse_in_units_and_reject_nonsense() {
        assert_eq!(parse_ttl("24h"), Ok(Some(86_400)));
        assert_eq!(parse_ttl("1d12h"), Ok(Some(129_600)));
        assert_eq!(parse_ttl("90m"), Ok(Some(5400)));
        assert_eq!(parse_ttl("2w"), Ok(Some(1_209_600)));
        assert_eq!(parse_ttl("never"), Ok(None));
        for bad in ["", "24", "h", "0h", "1y", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(human_span(59), "59s");
        assert_eq!(human_span(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(human_span(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(human_bytes(43_210_000), "43 MB");
    }
}
