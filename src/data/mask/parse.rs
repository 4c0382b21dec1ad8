//! The one text form of a transform, both ways: the compact spec users write in sluice.yaml
//! and presets (`email`, `hash:12`, `card:keep_last4`, `date_shift:30`, `keep`) parsed into a
//! [`Transform`], and printed back for plans, proposals and errors.

use crate::data::mask::{FakeKind, Locale, Transform};

/// Parse the compact transform form: `name` or `name:argument`.
pub(crate) fn parse_transform(spec: &str) -> Result<Transform, String> {
    let (name, arg) = match spec.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let number = |default: f64| -> Result<f64, String> {
        match arg {
            None => Ok(default),
            Some(a) => a
                .parse()
                .map_err(|_| format!("`{spec}`: `{a}` is not a number")),
        }
    };
    let no_arg = |t: Transform| match arg {
        None => Ok(t),
        Some(_) => Err(format!("`{spec}`: `{name}` takes no argument")),
    };
    match name {
        "null" => no_arg(Transform::Null),
        "keep" => no_arg(Transform::Keep),
        "redact" => no_arg(Transform::Redact),
        "email" => no_arg(Transform::Email),
        "phone" => no_arg(Transform::Phone),
        "iban" => no_arg(Transform::Iban),
        "uuid" => no_arg(Transform::Uuid),
        "scrub" => no_arg(Transform::Scrub(Default::default())),
        "shape" | "national_id" => no_arg(Transform::Shape),
        n if FakeKind::parse(n).is_some() => {
            let kind = FakeKind::parse(n).unwrap_or(FakeKind::FullName);
            let locale = match arg {
                None => Locale::En,
                Some(a) => Locale::ALL
                    .iter()
                    .find(|(name, _)| *name == a)
                    .map(|(_, l)| *l)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Locale::ALL.iter().map(|(n, _)| *n).collect();
                        format!(
                            "`{spec}`: unknown locale `{a}`; use one of {}",
                            names.join(", ")
                        )
                    })?,
            };
            Ok(Transform::Fake { kind, locale })
        }
        "constant" => Ok(Transform::Constant(arg.unwrap_or("").to_string())),
        "card" => match arg {
            None => Ok(Transform::Card { keep_last4: false }),
            Some("keep_last4") => Ok(Transform::Card { keep_last4: true }),
            Some(a) => Err(format!("`{spec}`: card takes `keep_last4`, not `{a}`")),
        },
        "hash" => {
            // hash, hash:LEN, hash:base64, hash:LEN:base64 (hex is the default).
            let mut len = 16;
            let mut base64 = false;
            for part in arg.into_iter().flat_map(|a| a.split(':')) {
                match part {
                    "base64" => base64 = true,
                    "hex" => base64 = false,
                    n => {
                        len = n.parse().map_err(|_| {
                            format!("`{spec}`: `{n}` is not a length, `hex` or `base64`")
                        })?
                    }
                }
            }
            Ok(Transform::Hash { len, base64 })
        }
        "ip" => Ok(Transform::Ip {
            keep_prefix_bits: number(0.0)? as u8,
        }),
        "date_shift" => Ok(Transform::DateShift {
            max_days: number(30.0)? as u32,
            within: None,
        }),
        "number_noise" => Ok(Transform::NumberNoise {
            percent: number(10.0)?,
        }),
        other => Err(format!(
            "unknown transform `{other}`; use null, keep, redact, constant:TEXT, hash[:LEN], email, phone, iban, card[:keep_last4], ip[:BITS], uuid, date_shift[:DAYS], number_noise[:PERCENT], scrub, shape, first_name|last_name|full_name|street|city|postcode[:LOCALE]"
        )),
    }
}

/// A transform's name as written in sluice.yaml.
pub(crate) fn transform_name(t: &Transform) -> String {
    match t {
        Transform::Null => "null".into(),
        Transform::Constant(_) => "constant".into(),
        Transform::Keep => "keep".into(),
        Transform::Redact => "redact".into(),
        Transform::Hash { len, base64: false } => format!("hash:{len}"),
        Transform::Hash { len, base64: true } => format!("hash:{len}:base64"),
        Transform::Regex { .. } => "regex".into(),
        Transform::Json { paths } => format!(
            "json({})",
            paths
                .iter()
                .map(|p| format!("{}: {}", p.path, transform_name(&p.transform)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Transform::Array { element } => format!("array({})", transform_name(element)),
        Transform::Template(t) => format!("template({t})"),
        Transform::Email => "email".into(),
        Transform::Phone => "phone".into(),
        Transform::Iban => "iban".into(),
        Transform::Card { keep_last4: true } => "card:keep_last4".into(),
        Transform::Card { .. } => "card".into(),
        Transform::Ip { keep_prefix_bits } => format!("ip:{keep_prefix_bits}"),
        Transform::Uuid => "uuid".into(),
        Transform::DateShift { max_days, .. } => format!("date_shift:{max_days}"),
        Transform::NumberNoise { percent } => format!("number_noise:{percent}"),
        Transform::Scrub(_) => "scrub".into(),
        Transform::Shape => "shape".into(),
        Transform::Fake { kind, locale } if *locale == Locale::En => kind.name().into(),
        Transform::Fake { kind, locale } => format!("{}:{}", kind.name(), locale.name()),
    }
}
