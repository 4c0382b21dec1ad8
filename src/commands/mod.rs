//! Each command's body, one file per family: clap's arguments in ([`crate::cli`]), resolved
//! into the plain settings the capabilities take, the capability called, its result printed.
//! `main.rs` only parses, calls [`run`] and maps a [`Failure`] to an exit code.

mod env;
mod refresh;
mod scan;
mod secrets;
mod shared;

pub use shared::Failure;

use std::io::{self, Write};

use crate::cli::{Cli, Command, RulesCommand, SchemaKind};
use crate::config;
use crate::error::{EXIT_OK, Error};
use crate::scan::rules::RuleFile;

/// Run the command `cli` names; its exit code.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::Usage(format!("no working directory: {e}")))?;
    let explicit = cli.config.as_deref();
    crate::secrets::trail::set_command(command_name(&cli.command));
    let result = dispatch(cli.command, explicit, &cwd);
    // Dynamic credentials no command claimed (issued by `check`, `diff`, a refresh's
    // `secret:` URL…) are given back now rather than left to expire.
    for l in crate::secrets::vault::take_leases() {
        if let Err(e) = l.revoke() {
            eprintln!(
                "sluice: could not revoke the lease of {} ({e}); the credentials live until it expires",
                l.what
            );
        }
    }
    result
}

fn dispatch(
    command: Command,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let cwd = cwd.to_path_buf();
    match command {
        Command::Scan(args) => scan::scan(*args, explicit, &cwd),
        Command::Rules(RulesCommand::Check { files }) => scan::rules_check(&files),
        Command::Rules(RulesCommand::List { rules }) => scan::rules_list(&rules, explicit, &cwd),
        Command::Check => scan::check(explicit, &cwd),
        Command::Run(args) => secrets::run(args, explicit, &cwd),
        Command::Export(args) => secrets::export(args, explicit, &cwd),
        Command::Render {
            env,
            template,
            output,
            watch,
        } => secrets::render(&env, &template, output.as_deref(), &watch, explicit, &cwd),
        Command::Secrets(cmd) => secrets::secrets_command(cmd, explicit, &cwd),
        Command::Refresh(args) => refresh::refresh_command(args, explicit, &cwd),
        Command::Env(cmd) => env::env_command(cmd, explicit, &cwd),
        Command::Snapshot { plan, command } => {
            refresh::snapshot_command(&plan, command, explicit, &cwd)
        }
        Command::Verify {
            plan,
            sample,
            json,
            report,
        } => refresh::verify_command(&plan, sample, json, report.as_deref(), explicit, &cwd),
        Command::Classify {
            plan,
            env,
            var,
            url,
            sample,
        } => refresh::classify_command(plan, env, var, url, sample, explicit, &cwd),
        Command::Schema { kind } => schema(kind),
    }
}

/// The command's name as typed (`run`, `secrets get`), for the audit trail.
fn command_name(c: &Command) -> String {
    use crate::cli::SecretsCommand as S;
    match c {
        Command::Scan(_) => "scan",
        Command::Rules(_) => "rules",
        Command::Check => "check",
        Command::Run(_) => "run",
        Command::Export(_) => "export",
        Command::Render { .. } => "render",
        Command::Secrets(s) => match s {
            S::List { .. } => "secrets list",
            S::Get { .. } => "secrets get",
            S::Set { .. } => "secrets set",
            S::Diff { .. } => "secrets diff",
            S::Check { .. } => "secrets check",
            S::Init { .. } => "secrets init",
        },
        Command::Refresh(_) => "refresh",
        Command::Env(_) => "env",
        Command::Snapshot { .. } => "snapshot",
        Command::Verify { .. } => "verify",
        Command::Classify { .. } => "classify",
        Command::Schema { .. } => "schema",
    }
    .to_string()
}

/// `sluice schema config|rules`: the JSON Schema of sluice.yaml or of a rules file.
fn schema(kind: SchemaKind) -> Result<i32, Failure> {
    let schema = match kind {
        SchemaKind::Config => config::schema(),
        SchemaKind::Rules => serde_json::to_value(schemars::schema_for!(RuleFile))
            .map_err(|e| Error::Usage(e.to_string()))?,
    };
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &schema).map_err(io::Error::other)?;
    writeln!(out)?;
    Ok(EXIT_OK)
}
