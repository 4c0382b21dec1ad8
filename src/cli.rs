//! The command line, as clap types only. `commands` turns them into the plain settings the
//! capabilities take (a scan's [`crate::scan::settings::Request`]) before any work starts.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scan::report::Format;
use crate::secrets::inject::ExportFormat;

/// sluice keeps production where it belongs: it finds leaked credentials in code and history.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Use this sluice.yaml instead of searching the working directory and its parents.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find leaked credentials in files, stdin, git history, a diff or staged changes.
    ///
    /// Exit codes: 0 nothing found, 1 findings, 2 usage or config error, 3 git failed.
    Scan(Box<ScanArgs>),
    /// Validate and test rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Validate sluice.yaml (every problem at once, with file:line:col).
    Check,
    /// Run a command with an environment's secrets in its environment (replaces this process).
    ///
    /// Example: sluice run --env staging -- ./app --port 8080
    Run(RunArgs),
    /// Print an environment's secrets for a pipeline (values included: this is what it is for).
    Export(ExportArgs),
    /// Render a template with an environment's secrets: `{{ secret "NAME" }}`.
    ///
    /// The output is written with mode 0600 through a temporary file and a rename: never partial.
    Render {
        /// The environment.
        #[arg(long, short = 'e')]
        env: String,
        /// The template file.
        template: PathBuf,
        /// Write to FILE (default: stdout).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Watch the secrets and write FILE again when they change.
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Inspect and manage secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Copy a plan's source database into its target, masking PII on the way.
    ///
    /// Fail-closed: a column nobody classified stops the refresh before any row moves. Atomic:
    /// rows load into a fresh database that is renamed into place only when complete; the
    /// previous target is kept as `<name>_prev`.
    ///
    /// Example: sluice refresh nightly --jobs 4 --report refresh.json
    Refresh(RefreshArgs),
    /// Check a refreshed target against its source: no sampled source value of a masked column
    /// appears in the target, every foreign key holds; row counts are shown.
    ///
    /// Exit codes: 0 verified, 1 a leak or a broken key, 2 config error, 3 a database failed.
    Verify {
        /// The plan, a key under `refresh:` in sluice.yaml.
        plan: String,
        /// Source values sampled per masked column.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Also check a signed refresh report (`refresh --report FILE` with `signing:` in the
        /// plan) against the plan's `signing.public_key`: exit 1 if it was changed or signed
        /// with another key.
        #[arg(long, value_name = "FILE")]
        report: Option<std::path::PathBuf>,
    },
    /// Propose how to mask a database's columns, from their names (PII presets) and a bounded
    /// sample of their values, printed as paste-ready `masking.columns` YAML.
    ///
    /// Examples: sluice classify nightly (the plan's source; columns it already decides are
    /// left out), sluice classify --env prod --var DATABASE_URL
    Classify {
        /// A refresh plan: classify its source with its presets.
        #[arg(conflicts_with_all = ["env", "url"], required_unless_present_any = ["env", "url"])]
        plan: Option<String>,
        /// The environment whose variable holds the connection URL.
        #[arg(long, short = 'e', requires = "var", conflicts_with = "url")]
        env: Option<String>,
        /// The variable (under `secrets:`) holding the connection URL in that environment.
        #[arg(long, requires = "env")]
        var: Option<String>,
        /// A connection URL given directly (visible in process listings; prefer --env/--var).
        #[arg(long)]
        url: Option<String>,
        /// Values sampled per column (0: names only).
        #[arg(long, default_value_t = 200)]
        sample: usize,
    },
    /// Ephemeral environments: databases filled by a plan (subset and masking) with an owner and
    /// an expiry, for a pull request or a feature branch.
    ///
    /// Example: sluice env up pr-1234 --plan pr --ttl 48h
    #[command(subcommand)]
    Env(EnvCommand),
    /// Export a snapshot of a plan's source and hold it open, so shards of one refresh
    /// (`sluice refresh PLAN --shard i/N --snapshot ID`) on several machines read the same data.
    ///
    /// Without CMD: prints the snapshot ID and holds it until stdin closes or sluice is
    /// stopped. With `-- CMD ARGS…`: runs CMD with `SLUICE_SNAPSHOT` set and holds the snapshot
    /// until CMD ends; sluice exits with CMD's code.
    Snapshot {
        /// The plan, a key under `refresh:` in sluice.yaml.
        plan: String,
        /// The command to run while the snapshot is held, after `--`.
        #[arg(trailing_var_arg = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Print a JSON Schema (for editors and CI validation).
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value_t = SchemaKind::Config)]
        kind: SchemaKind,
    },
}

/// `sluice refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// The plan, a key under `refresh:` in sluice.yaml.
    pub plan: String,
    /// Show what would move (tables, estimated rows, each column's transform); move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// For a subset: how many rows of each table would move and why (root, parent of X, child
    /// of Y), from the source; the target is not touched.
    #[arg(long, conflicts_with = "dry_run")]
    pub explain: bool,
    /// Tables copied at once (default: the plan's `jobs`, else the number of cores).
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// Also write per-table rows, bytes, durations and masked-column counts as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Refresh the plan's masked template (`<target>_template` on the target server) instead
    /// of the target; `sluice env up` then clones it in seconds.
    #[arg(long, conflicts_with = "dry_run")]
    pub template: bool,
    /// Read the source under this exported snapshot (from `sluice snapshot`) instead of taking
    /// a new one.
    #[arg(
        long,
        value_name = "ID",
        env = "SLUICE_SNAPSHOT",
        conflicts_with = "dry_run"
    )]
    pub snapshot: Option<String>,
    /// Run shard i of N (0-based): this process copies its share of the tables and key ranges
    /// into the shared loading database; the last shard to finish builds indexes and swaps.
    /// Every shard needs the same --snapshot.
    #[arg(
        long,
        value_name = "i/N",
        requires = "snapshot",
        conflicts_with = "explain"
    )]
    pub shard: Option<String>,
    /// Replace a target database that sluice did not make (the first refresh into a database
    /// made by hand). It is kept, unmarked, as `<target>_prev`, and sluice never drops it; the
    /// next refresh stops until you drop or rename it. Without this flag such a refresh stops
    /// before anything moves.
    #[arg(long, conflicts_with_all = ["dry_run", "explain", "template"])]
    pub adopt: bool,
}

/// `sluice env …`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create environment NAME on the plan's target server, filled by the plan; an existing
    /// environment of that name is refreshed atomically. Prints its connection URL (password
    /// shown as `*****` unless --show-secrets).
    ///
    /// With a template (`sluice refresh PLAN --template`) the database is cloned from it in
    /// seconds; otherwise the plan streams. The output says which path was taken.
    Up(EnvUpArgs),
    /// List the environments and templates on the plans' target servers.
    List {
        /// Only this plan's target server.
        #[arg(long, short = 'p')]
        plan: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop environment NAME (and what a cut-short `up` of it left). Refuses any database
    /// sluice did not create as an environment.
    Down {
        /// The environment.
        name: String,
        /// The plan whose target server holds it (default: every plan's server is searched).
        #[arg(long, short = 'p')]
        plan: Option<String>,
        /// Succeed when there is no such environment (a pull request closed twice).
        #[arg(long)]
        if_exists: bool,
    },
    /// Drop the environments whose expiry has passed.
    Gc {
        /// Only this plan's target server.
        #[arg(long, short = 'p')]
        plan: Option<String>,
        /// List what would be dropped; drop nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How `env up` fills a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvSource {
    /// Clone the plan's template when there is one, else stream.
    Auto,
    /// Clone the plan's template; fail if there is none.
    Template,
    /// Stream the plan (subset and masking) from the source.
    Stream,
}

/// `sluice env up`.
#[derive(Debug, Args)]
pub struct EnvUpArgs {
    /// The environment's name, which is its database's name (e.g. pr-1234).
    pub name: String,
    /// The plan that fills it, a key under `refresh:` in sluice.yaml.
    #[arg(long, short = 'p')]
    pub plan: String,
    /// How long it lives before `sluice env gc` may drop it (30m, 24h, 7d, or `never`).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub ttl: String,
    /// Who it is for, recorded in its metadata (default: $SLUICE_OWNER, $GITHUB_ACTOR, $USER).
    #[arg(long)]
    pub owner: Option<String>,
    /// Clone the template or stream.
    #[arg(long, value_enum, default_value_t = EnvSource::Auto)]
    pub from: EnvSource,
    /// Print the connection URL with its password.
    #[arg(long)]
    pub show_secrets: bool,
    /// Tables copied at once when streaming.
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

/// Which JSON Schema to print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// sluice.yaml.
    Config,
    /// Scanner rule files.
    Rules,
}

/// `sluice rules …`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files: unique ids, regexes compile, every example matches, no negative example
    /// does. With no FILE, checks the built-in rules.
    Check {
        /// Rule files (TOML).
        files: Vec<PathBuf>,
    },
    /// List the rules in force (built-ins plus configured and given files).
    List {
        /// Extra rule files.
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
    },
}

/// `--watch` and its settings (`run`, `render`).
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Keep watching the secrets: poll them every --interval seconds and act on a change
    /// (run: --on-change; render: write the file again, atomically).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls (±10% jitter).
    #[arg(long, default_value_t = 30.0, value_name = "SECS", requires = "watch")]
    pub interval: f64,
    /// What a change does to the command: `restart` (SIGTERM, SIGKILL after --grace, start
    /// again with the new values) or `signal:NAME` (rewrite its `as: file` files and send it
    /// SIGNAME, e.g. signal:HUP, for apps that reload).
    #[arg(
        long,
        default_value = "restart",
        value_name = "restart|signal:NAME",
        requires = "watch"
    )]
    pub on_change: String,
    /// Seconds a restarted command has to exit after SIGTERM.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", requires = "watch")]
    pub grace: f64,
}

/// `sluice run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The environment whose secrets to inject.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Only these variables (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub only: Vec<String>,
    /// Replace variables that are already set (default: keep them and say so).
    #[arg(long = "override")]
    pub override_existing: bool,
    /// Supervise the command instead of replacing sluice with it: forward signals, and replace
    /// secret values in its stdout and stderr with `*****` (it still gets a TTY where sluice has
    /// one). Multi-line values are masked whole, with CRLF line ends, and line by line; a secret
    /// cut off at the end of the output is masked from its third byte. Not masked: values (and
    /// lines) under 4 characters (they are named on stderr), literals (`{ value: … }`), and
    /// anything the command transforms (encoded, reversed, split with other text between).
    #[arg(long)]
    pub mask_output: bool,
    /// Keep the variables sluice authenticated with (an age key or passphrase, a Vault token or
    /// AppRole secret id) in the command's environment; by default they are taken out.
    #[arg(long)]
    pub keep_credentials: bool,
    /// Start the command with only the resolved secrets and a minimal PATH, HOME, LANG, LC_ALL,
    /// TERM, TZ and USER, nothing else of sluice's environment.
    #[arg(long)]
    pub pristine: bool,
    /// Leave dynamic credentials (`vault-db://`) alive when the command ends; by default their
    /// lease is revoked then, and the engine drops them.
    #[arg(long)]
    pub keep_lease: bool,
    /// Watch the secrets while the command runs.
    #[command(flatten)]
    pub watch: WatchArgs,
    /// The command and its arguments, after `--`.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `sluice export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The environment.
    #[arg(long, short = 'e')]
    pub env: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ExportFormat::Dotenv)]
    pub format: ExportFormat,
    /// Only these variables (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub only: Vec<String>,
    /// Name of the Kubernetes Secret (k8s-secret format; default `<env>-secrets`).
    #[arg(long)]
    pub name: Option<String>,
    /// Write to FILE (mode 0600, atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `sluice secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List an environment's variables and where each comes from (never values).
    List {
        /// The environment.
        #[arg(long, short = 'e')]
        env: String,
    },
    /// Print one value: the one command that shows a secret, for scripts.
    Get {
        /// The environment.
        #[arg(long, short = 'e')]
        env: String,
        /// The variable.
        name: String,
    },
    /// Store a value in the environment's age store, read from stdin (one trailing newline is
    /// dropped). The store is re-encrypted atomically.
    Set {
        /// The environment.
        #[arg(long, short = 'e')]
        env: String,
        /// The key in the store.
        name: String,
    },
    /// Compare two environments: missing names, different references, different values (by keyed
    /// hash; values are never shown). Exit 1 when they differ.
    Diff {
        /// First environment.
        a: String,
        /// Second environment.
        b: String,
    },
    /// Resolve every variable in every environment (or those given with --env) and list every
    /// problem (exit 1 if any); a store that cannot be reached is one problem, not the end.
    Check {
        /// Only this environment (repeatable).
        #[arg(long, short = 'e')]
        env: Vec<String>,
    },
    /// Create an environment's age identity (if missing) and an empty store encrypted to it.
    Init {
        /// The environment.
        #[arg(long, short = 'e')]
        env: String,
        /// Encrypt the store with the passphrase in $SLUICE_AGE_PASSPHRASE instead of a key.
        #[arg(long)]
        passphrase: bool,
    },
}

/// When to colour output.
pub use crate::scan::report::Color as ColorChoice;

/// `sluice scan` arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan; `-` reads stdin. Default: the current directory.
    pub paths: Vec<PathBuf>,

    /// Scan every distinct blob in the repository's history once.
    #[arg(long, conflicts_with_all = ["diff", "staged", "paths"])]
    pub git: bool,

    /// Scan only the lines a change adds: `BASE..HEAD`, `BASE...HEAD` (from the merge base) or
    /// `BASE` (meaning BASE..HEAD). Reports file and line in HEAD.
    #[arg(long, value_name = "RANGE", conflicts_with_all = ["staged", "paths"])]
    pub diff: Option<String>,

    /// Scan only the lines staged in the index (for pre-commit hooks).
    #[arg(long, conflicts_with = "paths")]
    pub staged: bool,

    /// The repository for --git, --diff and --staged (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print secrets in full (default: redacted everywhere).
    #[arg(long)]
    pub show_secrets: bool,

    /// Extra rule file (repeatable); same schema as the built-in rules.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,

    /// Do not load the built-in rules (only --rules files).
    #[arg(long)]
    pub no_builtin_rules: bool,

    /// Run only these rule ids (repeatable).
    #[arg(long = "rule", value_name = "ID")]
    pub only_rules: Vec<String>,

    /// Turn off a rule id (repeatable).
    #[arg(long = "disable-rule", value_name = "ID")]
    pub disable_rules: Vec<String>,

    /// Skip paths matching this gitignore-style glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Honour .gitignore and .ignore files (off by default: ignored files are where secrets hide).
    #[arg(long)]
    pub gitignore: bool,

    /// Skip files larger than this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,

    /// Do not decode base64 values.
    #[arg(long)]
    pub no_decode: bool,

    /// Ask each service whether found credentials work (AWS keys, Vault tokens, PostgreSQL and
    /// HTTP basic-auth URLs): valid, invalid or unknown per finding. Off by default.
    #[arg(long)]
    pub validate: bool,

    /// With --validate: also check addresses that are private, loopback or link-local.
    #[arg(long, requires = "validate")]
    pub validate_allow_private: bool,

    /// With --validate: seconds each check may take.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "validate"
    )]
    pub validate_timeout: u64,

    /// With --validate: checks at once.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "validate")]
    pub validate_concurrency: usize,

    /// How deep to enter archives (zip, jar, tar, tar.gz, gz): 0 never; default 3.
    #[arg(long, value_name = "N")]
    pub archive_depth: Option<usize>,

    /// Do not report findings whose fingerprint is in this baseline file.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Write all current findings to FILE as a baseline, then exit 0.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Also find this environment's real secret values, verbatim (never printed: findings name
    /// the variable).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,

    /// Name used for stdin in reports.
    #[arg(long, value_name = "NAME", default_value = "<stdin>")]
    pub stdin_name: String,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    pub threads: usize,

    /// When to use colour in the human format.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print only findings, no summary line or warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl From<ScanArgs> for crate::scan::settings::Request {
    fn from(a: ScanArgs) -> Self {
        crate::scan::settings::Request {
            paths: a.paths,
            git: a.git,
            diff: a.diff,
            staged: a.staged,
            repo: a.repo,
            format: a.format,
            output: a.output,
            show_secrets: a.show_secrets,
            rules: a.rules,
            no_builtin_rules: a.no_builtin_rules,
            only_rules: a.only_rules,
            disable_rules: a.disable_rules,
            exclude: a.exclude,
            gitignore: a.gitignore,
            max_file_size: a.max_file_size,
            no_decode: a.no_decode,
            archive_depth: a.archive_depth,
            validate: a.validate.then(|| crate::scan::validate::Options {
                allow_private: a.validate_allow_private,
                timeout: std::time::Duration::from_secs(a.validate_timeout.max(1)),
                concurrency: a.validate_concurrency.max(1),
            }),
            baseline: a.baseline,
            write_baseline: a.write_baseline,
            stdin_name: a.stdin_name,
            threads: a.threads,
            color: a.color,
            quiet: a.quiet,
        }
    }
}
