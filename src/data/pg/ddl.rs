//! Splitting `pg_dump --section=post-data` output into its entries, so indexes and constraints
//! can be built on several connections at once (as `pg_restore --jobs` does). Plain SQL text in,
//! entries out, each with its `Type:` from pg_dump's header and the session settings in force
//! where it stood; a section made fit to load (grants to roles the target has). Pure but for
//! reading the target's roles.

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

/// The target's roles, for deciding which grants can be copied.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roles {
    /// Every role on the target server.
    pub exists: std::collections::HashSet<String>,
    /// The roles the loading user is a member of (it may set their default privileges).
    pub member_of: std::collections::HashSet<String>,
}

/// A role name as pg_dump writes it (`reader`, `"Odd Role"`), unquoted; `None` for `PUBLIC`.
fn role_name(text: &str) -> Option<String> {
    let t = text.trim();
    if let Some(q) = t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Some(q.replace("\"\"", "\""));
    }
    (t != "PUBLIC").then(|| t.to_string())
}

/// The grantee of one pg_dump ACL statement, and for `ALTER DEFAULT PRIVILEGES FOR ROLE r` the
/// role whose defaults it sets.
fn acl_roles(statement: &str) -> (Option<String>, Option<String>) {
    let st = statement.trim().trim_end_matches(';');
    let st = st.strip_suffix(" WITH GRANT OPTION").unwrap_or(st);
    let grantee = [" TO ", " FROM "]
        .iter()
        .filter_map(|k| st.rfind(k).map(|i| (i, k.len())))
        .max()
        .and_then(|(i, n)| role_name(&st[i + n..]));
    let owner = st
        .strip_prefix("ALTER DEFAULT PRIVILEGES FOR ROLE ")
        .and_then(|rest| {
            if rest.starts_with('"') {
                // A quoted name ends at the first `"` not doubled.
                let bytes = rest.as_bytes();
                let mut i = 1;
                while i < bytes.len() {
                    if bytes[i] == b'"' {
                        if bytes.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        return role_name(&rest[..=i]);
                    }
                    i += 1;
                }
                None
            } else {
                rest.split_whitespace().next().and_then(role_name)
            }
        });
    (grantee, owner)
}

/// Make a pg_dump section fit to load: `COMMENT ON EXTENSION` entries are dropped (the
/// extension brings its own comment, and only its owner may set one), and each GRANT, REVOKE
/// or `ALTER DEFAULT PRIVILEGES` statement naming a role the target lacks (or, for default
/// privileges, a role the loading user cannot act for) is left out. Returns the script and one
/// note per statement left out.
pub(crate) fn prepare(script: &[u8], roles: &Roles) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::with_capacity(script.len());
    let mut notes = Vec::new();
    let mut kind = String::new();
    let mut name = String::new();
    for line in script.split_inclusive(|b| *b == b'\n') {
        if let Some(header) = line.strip_prefix(b"-- Name: ") {
            let header = String::from_utf8_lossy(header);
            name = header.split("; Type: ").next().unwrap_or("").to_string();
            kind = header
                .split("; Type: ")
                .nth(1)
                .and_then(|r| r.split("; Schema:").next())
                .unwrap_or("")
                .to_string();
            out.extend_from_slice(line);
            continue;
        }
        let statement = !(line.trim_ascii().is_empty()
            || line.starts_with(b"--")
            || line.starts_with(b"SET ")
            || line.starts_with(b"SELECT pg_catalog.set_config(")
            || line.starts_with(b"\\"));
        if statement && kind == "COMMENT" && name.starts_with("EXTENSION ") {
            continue;
        }
        if statement && (kind == "ACL" || kind == "DEFAULT ACL") {
            let text = String::from_utf8_lossy(line);
            let (grantee, owner) = acl_roles(&text);
            let missing = [&grantee, &owner]
                .into_iter()
                .flatten()
                .find(|r| !roles.exists.contains(*r));
            let why = match (missing, &owner) {
                (Some(r), _) => Some(format!("role `{r}` does not exist on the target")),
                (None, Some(o)) if !roles.member_of.contains(o) => Some(format!(
                    "the loading user cannot set role `{o}`'s default privileges"
                )),
                _ => None,
            };
            if let Some(why) = why {
                notes.push(format!("{why}: `{}` not copied", text.trim()));
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    (out, notes)
}

/// The target server's roles, as [`prepare`] needs them.
pub(crate) async fn target_roles(
    client: &tokio_postgres::Client,
) -> Result<Roles, crate::error::Error> {
    let mut roles = Roles::default();
    for r in client
        .query(
            "select rolname::text, pg_has_role(current_user, oid, 'MEMBER') from pg_roles",
            &[],
        )
        .await
        .map_err(|e| crate::data::pg::pg_error("reading the target's roles", e))?
    {
        let name: String = r.get(0);
        if r.get::<_, bool>(1) {
            roles.member_of.insert(name.clone());
        }
        roles.exists.insert(name);
    }
    Ok(roles)
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

    #[test]
    fn grants_to_missing_roles_and_extension_comments_are_left_out() {
        let dump = "--\n-- Name: EXTENSION citext; Type: COMMENT; Schema: -; Owner: -\n--\n\nCOMMENT ON EXTENSION citext IS 'ci';\n\n\nSET default_tablespace = '';\n\n--\n-- Name: TABLE t; Type: COMMENT; Schema: public; Owner: -\n--\n\nCOMMENT ON TABLE public.t IS 'the t';\n\n--\n-- Name: TABLE t; Type: ACL; Schema: public; Owner: -\n--\n\nGRANT SELECT ON TABLE public.t TO reader;\nGRANT UPDATE ON TABLE public.t TO ghost;\nGRANT SELECT ON TABLE public.t TO \"Odd \"\"Role\" WITH GRANT OPTION;\nREVOKE ALL ON TABLE public.t FROM PUBLIC;\n\n--\n-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: -; Owner: -\n--\n\nALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON TABLES  TO reader;\nALTER DEFAULT PRIVILEGES FOR ROLE \"app owner\" IN SCHEMA s GRANT SELECT ON TABLES  TO reader;\n";
        let roles = Roles {
            exists: ["reader", "postgres", "Odd \"Role", "app owner"]
                .map(String::from)
                .into(),
            member_of: ["postgres"].map(String::from).into(),
        };
        let (out, notes) = prepare(dump.as_bytes(), &roles);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("COMMENT ON EXTENSION"), "{out}");
        assert!(out.contains("SET default_tablespace"), "{out}");
        assert!(
            out.contains("COMMENT ON TABLE public.t IS 'the t';"),
            "{out}"
        );
        assert!(out.contains("TO reader;"), "{out}");
        assert!(out.contains("WITH GRANT OPTION"), "{out}");
        assert!(
            out.contains("REVOKE ALL ON TABLE public.t FROM PUBLIC;"),
            "{out}"
        );
        assert!(out.contains("FOR ROLE postgres"), "{out}");
        assert!(
            !out.contains("ghost") && !out.contains("app owner"),
            "{out}"
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("role `ghost` does not exist on the target"));
        assert!(notes[1].starts_with("the loading user cannot set role `app owner`'s"));
    }
}
