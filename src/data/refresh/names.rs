//! The person names a refresh masks, read once under the snapshot from every masked name
//! column, so `scrub` finds them in free text and masks each as its column does.

use std::sync::Arc;

use tokio_postgres::Transaction;

use crate::data::mask::scrub::{KnownNames, NameKind};
use crate::data::mask::{FakeKind, Names, Transform};
use crate::data::pg::catalog::sql_ident;
use crate::data::pg::pg_error;
use crate::data::refresh::plan::Plan;
use crate::error::Error;

/// At most this many distinct names are read (memory stays bounded: about 100 bytes each).
pub(crate) const LIMIT: i64 = 2_000_000;

/// Read the distinct values of the plan's masked name columns and hand them to every `scrub`
/// column. Returns how many values were read and whether [`LIMIT`] cut them; nothing is read
/// when no column is scrubbed.
pub(crate) async fn attach(tx: &Transaction<'_>, plan: &mut Plan) -> Result<(usize, bool), Error> {
    let scrubbed = plan
        .tables
        .iter()
        .flat_map(|t| &t.columns)
        .any(|c| matches!(c.transform, Some(Transform::Scrub(_))));
    if !scrubbed {
        return Ok((0, false));
    }
    let mut values: Vec<(String, NameKind, crate::data::mask::Locale, String)> = Vec::new();
    let mut cut = false;
    for t in &plan.tables {
        for c in &t.columns {
            let Some(Transform::Fake { kind, locale }) = &c.transform else {
                continue;
            };
            let kind = match kind {
                FakeKind::FirstName => NameKind::First,
                FakeKind::LastName => NameKind::Last,
                FakeKind::FullName => NameKind::Full,
                _ => continue,
            };
            let left = LIMIT - values.len() as i64;
            if left <= 0 {
                cut = true;
                break;
            }
            let col = sql_ident(&c.name);
            let rows = tx
                .query(
                    &format!(
                        "select distinct {col}::text from only {} where {col} is not null limit {left}",
                        t.name.sql()
                    ),
                    &[],
                )
                .await
                .map_err(|e| pg_error(&format!("reading the names of {}.{}", t.name, c.name), e))?;
            cut |= rows.len() as i64 == left;
            values.extend(
                rows.iter()
                    .map(|r| (r.get::<_, String>(0), kind, *locale, c.domain.clone())),
            );
        }
    }
    let known = Arc::new(KnownNames::new(
        values
            .iter()
            .map(|(v, k, l, d)| (v.as_str(), *k, *l, d.as_str())),
    ));
    for c in plan.tables.iter_mut().flat_map(|t| t.columns.iter_mut()) {
        if let Some(Transform::Scrub(names)) = &mut c.transform {
            *names = Names(Some(Arc::clone(&known)));
        }
    }
    Ok((values.len(), cut))
}
