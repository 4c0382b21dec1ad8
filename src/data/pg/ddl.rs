//! Splitting `pg_dump --section=post-data` output into its entries, so indexes and constraints
//! can be built on several connections at once (as `pg_restore --jobs` does). Plain SQL text in,
//! entries out, each with its `Type:` from pg_dump's header and the session settings in force
//! where it stood. Pure: no server.

/// When an entry may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Indexes and primary/unique/check/exclusion constraints: independent, run in parallel.
    Build,
    /// Partition indexes attached to their partitioned parent's index (`INDEX ATTACH`), in dump
    /// order: a parent's unique index becomes valid only once every partition's is attached, and
    /// a foreign key into a partitioned table needs it valid.
    Attach,
    /// Foreign keys: after every index they may need, one at a time (each locks two tables).
    ForeignKeys,
    /// Everything else (triggers, index attachments, rules, policies…), in dump order.
    Rest,
}

/// One post-data entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// pg_dump's `Type:` (`INDEX`, `CONSTRAINT`, `FK CONSTRAINT`, `TRIGGER`, …).
    pub kind: String,
    /// pg_dump's `Name:` and `Schema:` (`public.orders orders_pkey`), for messages.
    pub name: String,
    /// When it may run.
    pub phase: Phase,
    /// `SET …` statements in force before it.
    pub settings: String,
    /// The SQL.
    pub sql: String,
}

fn phase_of(kind: &str) -> Phase {
    match kind {
        "INDEX" | "CONSTRAINT" => Phase::Build,
        "INDEX ATTACH" => Phase::Attach,
        "FK CONSTRAINT" => Phase::ForeignKeys,
        _ => Phase::Rest,
    }
}

/// Split plain pg_dump output into entries. psql meta-commands (`\restrict` and the like) and
/// comments are dropped; `SET` lines between entries become the settings of those after them.
pub(crate) fn split(script: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut settings = String::new();
    let mut current: Option<Entry> = None;
    for line in script.lines() {
        if let Some(header) = line.strip_prefix("-- Name: ") {
            if let Some(e) = current.take().filter(|e| !e.sql.trim().is_empty()) {
                entries.push(e);
            }
            let kind = header
                .split("; Type: ")
                .nth(1)
                .and_then(|r| r.split("; Schema:").next())
                .unwrap_or("")
                .to_string();
            let object = header.split("; Type: ").next().unwrap_or("");
            let schema = header
                .split("; Schema: ")
                .nth(1)
                .and_then(|r| r.split("; Owner:").next())
                .filter(|s| *s != "-")
                .unwrap_or("");
            current = Some(Entry {
                phase: phase_of(&kind),
                kind,
                name: if schema.is_empty() {
                    object.to_string()
                } else {
                    format!("{schema}.{object}")
                },
                settings: settings.clone(),
                sql: String::new(),
            });
            continue;
        }
        if line.starts_with('\\') || line == "--" || line.starts_with("-- ") {
            continue;
        }
        let between_statements = current
            .as_ref()
            .is_none_or(|e| e.sql.trim_end().is_empty() || e.sql.trim_end().ends_with(';'));
        if between_statements
            && (line.starts_with("SET ") || line.starts_with("SELECT pg_catalog.set_config("))
        {
            settings.push_str(line);
            settings.push('\n');
            continue;
        }
        if let Some(e) = current.as_mut() {
            e.sql.push_str(line);
            e.sql.push('\n');
        }
    }
    if let Some(e) = current.filter(|e| !e.sql.trim().is_empty()) {
        entries.push(e);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"--
-- PostgreSQL database dump
--

\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

SET default_tablespace = '';

--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


--
-- Name: t_email_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX t_email_idx ON public.t USING btree (email);


--
-- Name: u u_t_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.u
    ADD CONSTRAINT u_t_fkey FOREIGN KEY (t_id) REFERENCES public.t(id);


--
-- Name: t no_fire; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER no_fire BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.boom();


\unrestrict abc
"#;

    #[test]
    fn entries_keep_their_type_settings_and_sql() {
        let e = split(DUMP);
        let kinds: Vec<(&str, Phase)> = e.iter().map(|e| (e.kind.as_str(), e.phase)).collect();
        assert_eq!(
            kinds,
            [
                ("CONSTRAINT", Phase::Build),
                ("INDEX", Phase::Build),
                ("FK CONSTRAINT", Phase::ForeignKeys),
                ("TRIGGER", Phase::Rest)
            ]
        );
        assert_eq!(
            e[0].sql.trim(),
            "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);"
        );
        assert!(
            e[0].settings
                .contains("set_config('search_path', '', false)")
        );
        assert!(e[0].settings.contains("default_tablespace"));
        assert!(e.iter().all(|x| !x.sql.contains("restrict")));
    }
}
