//! The recipes in examples/: every file parses, every sluice command in them is one the CLI
//! accepts, and the ones that can run here do, against a real git repository and real
//! PostgreSQL clusters, through the scripts exactly as the recipes hold them.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use yaml_rust2::{Yaml, YamlLoader};

use crate::refresh::{Env, SHOP, SHOP_SUBSET};
use crate::support::{Rng, fake_github_token, git, git_repo, sluice_bin, write};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn load(rel: &str) -> Vec<Yaml> {
    let path = examples().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every string scalar in a YAML tree.
fn strings(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Yaml::Hash(h) => h.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The scripts in a YAML tree: the values of `run`, `args`, `command` and `entry` keys; YAML
/// held in a string (a Job template in a ConfigMap) is searched too.
fn scripts(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::Array(a) => a.iter().for_each(|v| scripts(v, out)),
        Yaml::Hash(h) => {
            for (k, v) in h {
                if matches!(k.as_str(), Some("run" | "args" | "command" | "entry")) {
                    strings(v, out);
                } else {
                    scripts(v, out);
                }
            }
        }
        Yaml::String(s) if s.contains("kind: Job") => {
            for doc in YamlLoader::load_from_str(s).unwrap() {
                scripts(&doc, out);
            }
        }
        _ => {}
    }
}

/// Split a shell command line into words: quotes removed, `$VAR`, `${…}` and `$@` replaced by
/// a placeholder word (what a runner would substitute).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('"' | '\'', None) => {
                quote = Some(c);
                in_word = true;
            }
            (q, Some(open)) if q == open => quote = None,
            ('$', q) if q != Some('\'') => {
                in_word = true;
                if chars.peek() == Some(&'{') {
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                    }
                } else {
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '@')
                    {
                        chars.next();
                    }
                }
                cur.push_str("x1");
            }
            (c, None) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (c, _) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// The sluice invocations in a script: from the word `sluice` to the end of its command
/// (a pipe, `;`, `&&`, `||` or the line's end).
fn invocations(script: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in script.lines() {
        let w = words(line);
        let mut i = 0;
        while i < w.len() {
            let starts_command = i == 0
                || matches!(
                    w[i - 1].as_str(),
                    "|" | ";" | "&&" | "||" | "exec" | "-ec" | "-c"
                );
            if w[i] == "sluice" && starts_command {
                let end = w[i..]
                    .iter()
                    .position(|x| matches!(x.as_str(), "|" | ";" | "&&" | "||"))
                    .map_or(w.len(), |p| i + p);
                found.push(w[i..end].to_vec());
                i = end;
            }
            i += 1;
        }
    }
    found
}

#[test]
fn every_sluice_command_in_the_recipes_is_one_the_cli_accepts() {
    let mut found = Vec::new();
    for rel in [
        "github-actions/scan-pull-request.yml",
        "github-actions/pr-database.yml",
        "kubernetes/nightly-refresh.yaml",
        "kubernetes/sharded-refresh.yaml",
        "pre-commit-config.yaml",
        "sluice.yaml",
    ] {
        for doc in load(rel) {
            scripts(&doc, &mut found);
        }
    }
    for rel in ["docker/entrypoint.sh", "docker/Dockerfile"] {
        found.push(std::fs::read_to_string(examples().join(rel)).unwrap());
    }
    let commands: Vec<Vec<String>> = found.iter().flat_map(|s| invocations(s)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for c in &commands {
        if let Err(e) = sluice::cli::Cli::try_parse_from(c) {
            panic!("{c:?} is not a valid sluice command:\n{e}");
        }
        // The subcommand and its first word, past `--config FILE`.
        let mut rest = c.iter().skip(1).map(String::as_str);
        let mut sub = Vec::new();
        while let Some(w) = rest.next() {
            if w == "--config" {
                rest.next();
            } else if !w.starts_with('-') && sub.len() < 2 {
                sub.push(w);
            }
        }
        seen.insert(sub.join(" "));
    }
    for expected in [
        "scan",
        "env up",
        "env down",
        "env gc",
        "refresh nightly",
        "refresh pr",
        "snapshot nightly",
        "run",
    ] {
        assert!(
            seen.iter().any(|s| s.starts_with(expected)),
            "no `sluice {expected}` found in the recipes: {seen:?}"
        );
    }
}

#[test]
fn the_example_config_is_valid_and_the_pre_commit_recipe_names_a_shipped_hook() {
    let dir = examples();
    let check = crate::support::sluice(
        &dir,
        &[
            "--config",
            dir.join("sluice.yaml").to_str().unwrap(),
            "check",
        ],
    );
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);

    let hooks = YamlLoader::load_from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let shipped: Vec<&str> = hooks[0]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    // `stages: [pre-commit]` needs pre-commit 3.2.0; older versions reject the whole file
    // unless the hook says so and they can tell the user to upgrade.
    for h in hooks[0].as_vec().unwrap() {
        assert_eq!(
            h["minimum_pre_commit_version"].as_str(),
            Some("3.2.0"),
            "hook {:?}",
            h["id"]
        );
    }
    // A pull request is scanned from the merge base (`...`): with `..` it would be blamed for
    // lines main removed since it branched.
    let workflow =
        std::fs::read_to_string(dir.join("github-actions/scan-pull-request.yml")).unwrap();
    for line in workflow
        .lines()
        .filter(|l| l.contains("sluice scan --diff"))
    {
        assert!(line.contains("..."), "{line}");
    }
    let config = load("pre-commit-config.yaml");
    let wanted: Vec<&str> = config[0]["repos"][0]["hooks"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert!(!wanted.is_empty());
    for id in wanted {
        assert!(
            shipped.contains(&id),
            "hook `{id}` is not in .pre-commit-hooks.yaml"
        );
    }
}

/// The `run:` script of the step named `name` in a workflow.
fn step_script(workflow: &Yaml, name: &str) -> String {
    for (_, job) in workflow["jobs"].as_hash().unwrap() {
        for step in job["steps"].as_vec().unwrap() {
            if step["name"].as_str() == Some(name) {
                return step["run"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("no step `{name}`")
}

/// Run a recipe's script with bash, sluice on PATH.
fn bash(script: &str, cwd: &Path, vars: &[(&str, String)]) -> (i32, String, String) {
    let bin_dir = sluice_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .env("HOME", cwd)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_pull_request_scan_step_writes_sarif_and_fails_only_on_added_secrets() {
    let workflow = &load("github-actions/scan-pull-request.yml")[0];
    let script = step_script(workflow, "Scan the pull request's changes");
    let repo = git_repo();
    write(repo.path(), "app.py", "print('hello')\n");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "base"]);
    let base = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    write(repo.path(), "app.py", "print('hello, again')\n");
    git(repo.path(), &["commit", "-qam", "harmless"]);
    let clean = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    let token = fake_github_token(&mut Rng::new(41));
    write(
        repo.path(),
        "deploy.sh",
        &format!("export GITHUB_TOKEN={token}\n"),
    );
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "leak"]);
    let leaky = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();

    let sarif = |head: &str| {
        let (code, out, err) = bash(
            &script,
            repo.path(),
            &[("BASE_SHA", base.clone()), ("HEAD_SHA", head.to_string())],
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(repo.path().join("sluice.sarif")).unwrap())
                .unwrap();
        assert!(!out.contains(&token) && !err.contains(&token));
        (code, report)
    };
    let (code, report) = sarif(&clean);
    assert_eq!(code, 0);
    assert_eq!(report["version"], "2.1.0");
    assert_eq!(report["runs"][0]["results"].as_array().unwrap().len(), 0);
    let (code, report) = sarif(&leaky);
    assert_eq!(
        code, 1,
        "findings fail the step (the workflow uploads, then fails)"
    );
    let results = report["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{report}");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "deploy.sh"
    );
}

#[test]
fn the_pull_request_database_steps_create_and_drop_an_environment() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let workflow = &load("github-actions/pr-database.yml")[0];
    let summary = env.dir.path().join("summary.md");
    let mut vars = env.vars();
    vars.extend([
        ("SLUICE_PLAN", "nightly".to_string()),
        ("PR_NUMBER", "42".to_string()),
        ("SLUICE_OWNER", "octocat".to_string()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
    ]);
    let up = step_script(workflow, "Create or refresh the PR database");
    let (code, out, err) = bash(&up, env.dir.path(), &vars);
    assert_eq!(code, 0, "{out}{err}");
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(written.contains("/pr-42"), "{written}");
    assert!(!written.contains(crate::refresh::PASSWORD), "{written}");
    assert_eq!(
        env.dst.psql(
            "postgres",
            "select shobj_description(oid, 'pg_database') like '%\"owner\":\"octocat\"%' from pg_database where datname = 'pr-42'"
        ),
        "t"
    );
    let down = step_script(workflow, "Drop the PR database");
    for _ in 0..2 {
        // The second time there is nothing to drop, and that is fine (a PR closed twice).
        let (code, out, err) = bash(&down, env.dir.path(), &vars);
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(
        env.dst.psql(
            "postgres",
            "select count(*) from pg_database where datname = 'pr-42'"
        ),
        "0"
    );
}

#[test]
fn the_container_entrypoint_starts_the_command_with_the_environments_secrets() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sluice.yaml",
        "version: 1
environments:
  dev: { secrets: { provider: env, prefix: DEV_ } }
secrets:
  GREETING:
    dev: env://GREETING
",
    );
    let value = format!("fake-{}", Rng::new(7).string("abcdef0123456789", 24));
    let entrypoint = examples().join("docker/entrypoint.sh");
    let script = format!(
        "{} sh -c 'printf %s \"$GREETING\"; exit 5'",
        entrypoint.display()
    );
    let config = dir.path().join("sluice.yaml").display().to_string();
    let (code, out, err) = bash(
        &script,
        dir.path(),
        &[
            ("SLUICE_ENV", "dev".into()),
            ("SLUICE_CONFIG", config.clone()),
            ("DEV_GREETING", value.clone()),
        ],
    );
    assert_eq!(code, 5, "the app's exit code is the container's: {err}");
    assert_eq!(out, value);
    let (code, _, err) = bash(&script, dir.path(), &[("SLUICE_CONFIG", config)]);
    assert_ne!(code, 0);
    assert!(err.contains("set SLUICE_ENV"), "{err}");
}
