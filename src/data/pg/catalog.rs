//! The catalog: what a PostgreSQL database holds, read from pg_catalog. A connection in, a
//! [`Catalog`] out (tables with their partitions, columns and types, generated and identity
//! columns, primary, unique and foreign keys, triggers; sequences, views, materialized views and
//! extensions). Plans, subsetting and coverage work on this value, never on the server.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

use crate::error::Error;

/// A schema-qualified name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedName {
    /// The schema.
    pub schema: String,
    /// The object.
    pub name: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

impl QualifiedName {
    /// The name for SQL text: both parts always quoted, so reserved words and odd names are safe.
    pub fn sql(&self) -> String {
        format!("{}.{}", sql_ident(&self.schema), sql_ident(&self.name))
    }
}

/// An identifier for SQL text, always quoted.
pub fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quote an identifier when PostgreSQL would need it (for display; SQL uses [`sql_ident`]).
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// What kind of relation a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// An ordinary table.
    Ordinary,
    /// A partitioned table (rows live in its partitions).
    Partitioned,
}

/// A column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type as `format_type` prints it (`character varying(80)`, `integer[]`).
    pub type_name: String,
    /// NOT NULL.
    pub not_null: bool,
    /// A stored generated column (the target recomputes it).
    pub generated: bool,
    /// Identity column: `Some('a')` always, `Some('d')` by default.
    pub identity: Option<char>,
    /// How it can travel in binary COPY.
    pub wire: crate::data::pg::binary::Wire,
    /// The CHECK constraints on this column alone, as `pg_get_constraintdef` prints them.
    pub checks: Vec<String>,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns, in key order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references: QualifiedName,
    /// Referenced columns, in key order.
    pub referenced_columns: Vec<String>,
    /// DEFERRABLE.
    pub deferrable: bool,
    /// Validated (false for NOT VALID: orphans may exist).
    pub validated: bool,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its name.
    pub name: QualifiedName,
    /// Ordinary or partitioned.
    pub kind: TableKind,
    /// The partitioned table this is a partition of.
    pub partition_of: Option<QualifiedName>,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns (empty: none).
    pub primary_key: Vec<String>,
    /// Unique constraints and unique indexes, as column lists.
    pub unique_keys: Vec<Vec<String>>,
    /// Foreign keys from this table.
    pub foreign_keys: Vec<ForeignKey>,
    /// Names of user triggers.
    pub triggers: Vec<String>,
    /// The planner's row estimate (`reltuples`; -1 if never analyzed).
    pub estimated_rows: i64,
    /// On-disk size of the table's main fork, in bytes.
    pub bytes: i64,
}

/// Everything sluice needs to know about a database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Tables by name.
    pub tables: BTreeMap<QualifiedName, Table>,
    /// Sequences.
    pub sequences: Vec<QualifiedName>,
    /// Views.
    pub views: Vec<QualifiedName>,
    /// Materialized views.
    pub materialized_views: Vec<QualifiedName>,
    /// Installed extensions.
    pub extensions: Vec<String>,
}

impl Catalog {
    /// ` (did you mean "Schema".table?)` when a table of another case or schema exists, for a
    /// message about a name that is not there.
    pub fn did_you_mean(&self, t: &QualifiedName) -> String {
        self.tables
            .keys()
            .find(|k| k.name.eq_ignore_ascii_case(&t.name))
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default()
    }
}

fn db_error(e: tokio_postgres::Error) -> Error {
    crate::data::pg::pg_error("reading the catalog", e)
}

const USER_SCHEMAS: &str = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'";

/// Read the catalog of the connected database (user schemas only).
pub async fn load(client: &impl GenericClient) -> Result<Catalog, Error> {
    let mut cat = Catalog::default();
    let rows = client
        .query(
            &format!(
                "select c.oid, n.nspname, c.relname, c.relkind::text, pn.nspname, pc.relname,
                        c.reltuples::int8, pg_relation_size(c.oid)
                   from pg_class c
                   join pg_namespace n on n.oid = c.relnamespace
                   left join pg_inherits i on i.inhrelid = c.oid and c.relispartition
                   left join pg_class pc on pc.oid = i.inhparent
                   left join pg_namespace pn on pn.oid = pc.relnamespace
                  where c.relkind in ('r', 'p', 'S', 'v', 'm') and {USER_SCHEMAS}
                  order by 2, 3"
            ),
            &[],
        )
        .await
        .map_err(db_error)?;
    let mut by_oid: BTreeMap<u32, QualifiedName> = BTreeMap::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        let name = QualifiedName {
            schema: r.get(1),
            name: r.get(2),
        };
        let kind: String = r.get(3);
        match kind.as_str() {
            "S" => cat.sequences.push(name),
            "v" => cat.views.push(name),
            "m" => cat.materialized_views.push(name),
            k => {
                let parent = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
                    (Some(schema), Some(name)) => Some(QualifiedName { schema, name }),
                    _ => None,
                };
                by_oid.insert(oid, name.clone());
                cat.tables.insert(
                    name.clone(),
                    Table {
                        name,
                        kind: if k == "p" {
                            TableKind::Partitioned
                        } else {
                            TableKind::Ordinary
                        },
                        partition_of: parent,
                        columns: Vec::new(),
                        primary_key: Vec::new(),
                        unique_keys: Vec::new(),
                        foreign_keys: Vec::new(),
                        triggers: Vec::new(),
                        estimated_rows: r.get(6),
                        bytes: r.get(7),
                    },
                );
            }
        }
    }
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    fn table<'a>(
        tables: &'a mut BTreeMap<QualifiedName, Table>,
        by_oid: &BTreeMap<u32, QualifiedName>,
        oid: u32,
    ) -> Option<&'a mut Table> {
        by_oid.get(&oid).and_then(|n| tables.get_mut(n))
    }

    for r in client
        .query(
            "select a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    a.attgenerated::text, a.attidentity::text,
                    -- Built-in types (below FirstNormalObjectId) with binary I/O, their elements
                    -- too, can move as binary COPY; the rest (enums, domains, composites,
                    -- extension types embed or are database-specific OIDs) only as text.
                    case
                      when a.atttypid in (25, 1043, 1042, 19) then 'string'
                      when a.atttypid = 21 then 'int2'
                      when a.atttypid = 23 then 'int4'
                      when a.atttypid = 20 then 'int8'
                      when a.atttypid < 16384 and t.typsend::oid <> 0 and t.typreceive::oid <> 0
                       and (t.typelem = 0 or exists (
                             select 1 from pg_type e where e.oid = t.typelem and e.oid < 16384
                                and e.typsend::oid <> 0 and e.typreceive::oid <> 0))
                        then 'builtin'
                      else 'text'
                    end
               from pg_attribute a
               join pg_type t on t.oid = a.atttypid
              where a.attrelid = any($1) and a.attnum > 0 and not a.attisdropped
              order by a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(db_error)?
    {
        if let Some(t) = table(&mut cat.tables, &by_oid, r.get(0)) {
            let generated: String = r.get(4);
            let identity: String = r.get(5);
            t.columns.push(Column {
                name: r.get(1),
                type_name: r.get(2),
                not_null: r.get(3),
                generated: !generated.is_empty(),
                identity: identity.chars().next(),
                wire: crate::data::pg::binary::Wire::from_class(r.get(6)),
                checks: Vec::new(),
            });
        }
    }

    // Keys: primary, unique (constraints and unique indexes), foreign.
    for r in client
        .query(
            "select c.conrelid, c.contype::text, c.conname,
                    array(select a.attname from unnest(c.conkey) with ordinality k(n, i)
                          join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i),
                    rn.nspname, rc.relname,
                    array(select a.attname from unnest(c.confkey) with ordinality k(n, i)
                          join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.i),
                    c.condeferrable, c.convalidated
               from pg_constraint c
               left join pg_class rc on rc.oid = c.confrelid
               left join pg_namespace rn on rn.oid = rc.relnamespace
              where c.conrelid = any($1) and c.contype in ('p', 'u', 'f') and c.conparentid = 0
              order by c.conrelid, c.conname",
            &[&oids],
        )
        .await
        .map_err(db_error)?
    {
        let Some(t) = table(&mut cat.tables, &by_oid, r.get(0)) else { continue };
        let kind: String = r.get(1);
        let columns: Vec<String> = r.get(3);
        match kind.as_str() {
            "p" => t.primary_key = columns,
            "u" => t.unique_keys.push(columns),
            _ => t.foreign_keys.push(ForeignKey {
                name: r.get(2),
                columns,
                references: QualifiedName { schema: r.get(4), name: r.get(5) },
                referenced_columns: r.get(6),
                deferrable: r.get(7),
                validated: r.get(8),
            }),
        }
    }
    // CHECK constraints on one column (a masked value must still pass them).
    for r in client
        .query(
            "select c.conrelid, a.attname, pg_get_constraintdef(c.oid)
               from pg_constraint c
               join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
              where c.conrelid = any($1) and c.contype = 'c' and cardinality(c.conkey) = 1
              order by c.conrelid, c.conname",
            &[&oids],
        )
        .await
        .map_err(db_error)?
    {
        if let Some(t) = table(&mut cat.tables, &by_oid, r.get(0)) {
            let name: String = r.get(1);
            if let Some(c) = t.columns.iter_mut().find(|c| c.name == name) {
                c.checks.push(r.get(2));
            }
        }
    }
    for r in client
        .query(
            "select i.indrelid,
                    array(select a.attname from unnest(i.indkey::int2[]) with ordinality k(n, o)
                          join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n order by k.o)
               from pg_index i
              where i.indrelid = any($1) and i.indisunique and not i.indisprimary
                and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
                and i.indexprs is null",
            &[&oids],
        )
        .await
        .map_err(db_error)?
    {
        if let Some(t) = table(&mut cat.tables, &by_oid, r.get(0)) {
            t.unique_keys.push(r.get(1));
        }
    }
    for r in client
        .query(
            "select tgrelid, tgname from pg_trigger where tgrelid = any($1) and not tgisinternal order by 1, 2",
            &[&oids],
        )
        .await
        .map_err(db_error)?
    {
        if let Some(t) = table(&mut cat.tables, &by_oid, r.get(0)) {
            t.triggers.push(r.get(1));
        }
    }
    cat.extensions = client
        .query("select extname from pg_extension order by 1", &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(cat)
}

// Table and column names as sluice.yaml writes them.

/// Split a dotted path of identifiers; `"double quoted"` parts keep case, dots and `""`.
pub fn split_path(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("`{s}`: unterminated quoted identifier")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c);
                chars.next();
            }
            // Unquoted identifiers fold to lower case, as in SQL.
            part = part.trim().to_lowercase();
        }
        if part.is_empty() {
            return Err(format!("`{s}`: empty name part"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("`{s}`: unexpected `{c}` after a quoted identifier")),
        }
    }
}

/// Parse `schema.table` or `table` (schema `public`).
pub fn parse_table(s: &str) -> Result<QualifiedName, String> {
    match split_path(s)?.as_slice() {
        [t] => Ok(QualifiedName {
            schema: "public".into(),
            name: t.clone(),
        }),
        [sc, t] => Ok(QualifiedName {
            schema: sc.clone(),
            name: t.clone(),
        }),
        _ => Err(format!("`{s}`: write `schema.table` or `table`")),
    }
}

/// Parse a column key: `schema.table.column`, `table.column` (schema `public`), or `*` as the
/// column for every column of the table (`None`).
pub fn parse_column_key(s: &str) -> Result<(QualifiedName, Option<String>), String> {
    let parts = split_path(s)?;
    let (schema, table, column) = match parts.as_slice() {
        [t, c] => ("public".to_string(), t.clone(), c.clone()),
        [sc, t, c] => (sc.clone(), t.clone(), c.clone()),
        _ => {
            return Err(format!(
                "`{s}`: write `schema.table.column`, `table.column` or `schema.table.*`"
            ));
        }
    };
    let column = (column != "*").then_some(column);
    Ok((
        QualifiedName {
            schema,
            name: table,
        },
        column,
    ))
}

/// A table name as sluice.yaml takes it (quoted when it needs double-quoted identifiers).
pub fn yaml_table(t: &QualifiedName) -> String {
    yaml_quoted(t.to_string())
}

/// A column key as sluice.yaml takes it (`schema.table.column`, quoted when it needs
/// double-quoted identifiers).
pub fn yaml_column_key(table: &QualifiedName, column: &str) -> String {
    yaml_quoted(format!("{table}.{}", quote_ident(column)))
}

/// `key` as a YAML scalar that reads back as itself: plain when it can be, single-quoted when
/// it holds `"`, double-quoted with escapes when it holds a line break or another control
/// character (a single-quoted scalar would fold a line break into a space).
fn yaml_quoted(key: String) -> String {
    if key.chars().any(char::is_control) {
        let mut out = String::from("\"");
        for c in key.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    } else if key.contains('"') {
        format!("'{}'", key.replace('\'', "''"))
    } else {
        key
    }
}
