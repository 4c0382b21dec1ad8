//! `sluice scan` over paths and stdin: what is scanned, what is skipped, suppression, formats,
//! exit codes, and that secrets stay redacted.

use base64::Engine as _;

use crate::support::{Rng, fake_github_token, fake_stripe_key, sluice, sluice_with, write};

fn json(r: &crate::support::Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
}

fn paths(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{}:{}", f["path"].as_str().unwrap(), f["line"]))
        .collect()
}

#[test]
fn hidden_files_are_scanned_and_gitignore_only_on_request() {
    let mut rng = Rng::new(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        ".env",
        &format!("GITHUB_TOKEN={}\n", fake_github_token(&mut rng)),
    );
    write(
        d,
        ".github/workflows/ci.yml",
        &format!("env:\n  TOKEN: {}\n", fake_github_token(&mut rng)),
    );
    write(
        d,
        ".aws/credentials",
        &format!("[x]\nstripe = {}\n", fake_stripe_key(&mut rng)),
    );
    write(
        d,
        "ignored/app.env",
        &format!("T={}\n", fake_github_token(&mut rng)),
    );
    write(d, ".gitignore", "ignored/\n");
    std::fs::create_dir_all(d.join(".git")).unwrap();
    write(
        d,
        ".git/config",
        &format!("T={}\n", fake_github_token(&mut rng)),
    );

    let r = sluice(d, &["scan", "--format", "json", "."]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let found = paths(&json(&r));
    assert_eq!(
        found,
        vec![
            "./.aws/credentials:2",
            "./.env:1",
            "./.github/workflows/ci.yml:2",
            "./ignored/app.env:1"
        ],
        ".git/ is never walked; hidden files are"
    );
    let r = sluice(d, &["scan", "--gitignore", "--format", "json", "."]);
    assert!(!paths(&json(&r)).iter().any(|p| p.contains("ignored/")));
}

#[test]
fn exit_codes_clean_findings_and_missing_path() {
    let mut rng = Rng::new(2);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "clean.txt", "nothing to see\n");
    let r = sluice(dir.path(), &["scan", "clean.txt"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("0 findings in 1 file"), "{}", r.stdout);
    write(
        dir.path(),
        "dirty.txt",
        &format!("key {}\n", fake_github_token(&mut rng)),
    );
    assert_eq!(sluice(dir.path(), &["scan", "dirty.txt"]).code, 1);
    let r = sluice(dir.path(), &["scan", "no-such-dir"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no-such-dir: no such file or directory"),
        "{}",
        r.stderr
    );
    assert_eq!(sluice(dir.path(), &["scan", "--format", "nope"]).code, 2);
}

#[test]
fn binary_files_searched_broken_symlinks_reported_scan_goes_on() {
    let mut rng = Rng::new(3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut bin = vec![0u8, 1, 2, 3];
    bin.extend_from_slice(fake_github_token(&mut rng).as_bytes());
    std::fs::write(d.join("blob.bin"), bin).unwrap();
    std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
    write(
        d,
        "real.cfg",
        &format!("token={}\n", fake_github_token(&mut rng)),
    );
    let r = sluice(d, &["scan", "--format", "json", "."]);
    assert_eq!(r.code, 1);
    // The binary file is searched for prefixed tokens (see binary_utf16_pipes_and_devices).
    assert_eq!(paths(&json(&r)), vec!["./blob.bin:1", "./real.cfg:1"]);
    assert!(
        r.stderr.contains("dangling: broken symlink"),
        "{}",
        r.stderr
    );
}

#[test]
fn stdin_is_a_source() {
    let mut rng = Rng::new(4);
    let dir = tempfile::tempdir().unwrap();
    let input = format!("line one\nstripe: {}\n", fake_stripe_key(&mut rng));
    let r = sluice_with(
        dir.path(),
        &[
            "scan",
            "--format",
            "jsonl",
            "--stdin-name",
            "paste.txt",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(f["path"], "paste.txt");
    assert_eq!(f["line"], 2);
}

#[test]
fn kubernetes_secret_data_is_decoded_and_points_at_the_encoded_value() {
    let mut rng = Rng::new(5);
    let dir = tempfile::tempdir().unwrap();
    let token = fake_github_token(&mut rng);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("token={token}"));
    write(
        dir.path(),
        "secret.yaml",
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ndata:\n  config: {b64}\n"),
    );
    let r = sluice(dir.path(), &["scan", "--format", "json", "secret.yaml"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    let f = &v["findings"][0];
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(6), Some(11))
    );
    assert_eq!(f["decoded"], true);
    assert!(!r.stdout.contains(&token));
    assert_eq!(
        sluice(dir.path(), &["scan", "--no-decode", "secret.yaml"]).code,
        0
    );
}

#[test]
fn secrets_are_redacted_everywhere_unless_asked() {
    let mut rng = Rng::new(6);
    let dir = tempfile::tempdir().unwrap();
    let token = fake_github_token(&mut rng);
    write(dir.path(), "a.env", &format!("GITHUB_TOKEN={token}\n"));
    for format in ["human", "json", "jsonl", "sarif", "github"] {
        let r = sluice(dir.path(), &["scan", "--format", format, "."]);
        assert_eq!(r.code, 1, "{format}");
        assert!(
            !r.stdout.contains(&token[4..]) && !r.stderr.contains(&token[4..]),
            "{format} leaks the secret"
        );
    }
    let r = sluice(
        dir.path(),
        &["scan", "--show-secrets", "--format", "json", "."],
    );
    assert!(r.stdout.contains(&token), "--show-secrets shows it");
}

#[test]
fn github_annotations_format() {
    let mut rng = Rng::new(7);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.env",
        &format!("\nSTRIPE={}\n", fake_stripe_key(&mut rng)),
    );
    let r = sluice(dir.path(), &["scan", "--format", "github", "x.env"]);
    assert!(
        r.stdout.starts_with("::error file=x.env,line=2,col=8,"),
        "{}",
        r.stdout
    );
}

#[test]
fn inline_allow_markers_and_config_allow_and_exclude() {
    let mut rng = Rng::new(8);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.py",
        &format!("T = '{}'  # sluice:allow\n", fake_github_token(&mut rng)),
    );
    write(
        d,
        "b.js",
        &format!(
            "const t = '{}' // gitleaks:allow\n",
            fake_github_token(&mut rng)
        ),
    );
    write(
        d,
        "c.yaml",
        &format!(
            "t: {}  # pragma: allowlist secret\n",
            fake_github_token(&mut rng)
        ),
    );
    let known = fake_stripe_key(&mut rng);
    write(d, "d.env", &format!("S={known}\n"));
    write(
        d,
        "fixtures/e.env",
        &format!("S={}\n", fake_stripe_key(&mut rng)),
    );
    assert_eq!(sluice(d, &["scan", "a.py", "b.js", "c.yaml"]).code, 0);
    assert_eq!(sluice(d, &["scan", "."]).code, 1);
    write(
        d,
        "sluice.yaml",
        &format!("version: 1\nscan:\n  allow: ['^{known}$']\n  exclude: ['fixtures/**']\n"),
    );
    let r = sluice(d, &["scan", "."]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn baseline_suppresses_known_findings_even_after_line_moves() {
    let mut rng = Rng::new(9);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = fake_github_token(&mut rng);
    write(d, "app.env", &format!("OLD={old}\n"));
    let r = sluice(d, &["scan", "--write-baseline", "baseline.json", "app.env"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(d.join("baseline.json")).unwrap();
    assert!(
        !text.contains(&old[4..]),
        "the baseline holds fingerprints, not secrets"
    );
    write(d, "app.env", &format!("# moved down\n\nOLD={old}\n"));
    let r = sluice(d, &["scan", "--baseline", "baseline.json", "app.env"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains("1 known from the baseline"),
        "{}",
        r.stdout
    );
    write(
        d,
        "app.env",
        &format!("OLD={old}\nNEW={}\n", fake_github_token(&mut rng)),
    );
    let r = sluice(
        d,
        &[
            "scan",
            "--baseline",
            "baseline.json",
            "--format",
            "json",
            "app.env",
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(paths(&json(&r)), vec!["app.env:2"]);
    write(d, "broken.json", "{\"version\": 1,\n \"findings\": [x]}");
    let r = sluice(d, &["scan", "--baseline", "broken.json", "app.env"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("broken.json:2:"), "{}", r.stderr);
}

#[test]
fn invalid_utf8_and_large_files_are_scanned() {
    let mut rng = Rng::new(10);
    let dir = tempfile::tempdir().unwrap();
    let mut big = Vec::new();
    big.extend_from_slice(b"\xff\xfe latin1 \xe9\xe8\n");
    while big.len() < 3 << 20 {
        big.extend_from_slice(b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n");
    }
    big.extend_from_slice(format!("token: {}\n", fake_github_token(&mut rng)).as_bytes());
    std::fs::write(dir.path().join("big.log"), &big).unwrap();
    let r = sluice(dir.path(), &["scan", "--format", "json", "big.log"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines = big.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(paths(&json(&r)), vec![format!("big.log:{lines}")]);
}

#[test]
fn output_to_a_device_writes_through_instead_of_replacing_it() {
    // Regression: `-o /dev/null` used to rename a temp file over the device.
    let mut rng = Rng::new(11);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.env",
        &format!("T={}\n", fake_github_token(&mut rng)),
    );
    let fifo = dir.path().join("report.fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let r = sluice(
        dir.path(),
        &["scan", "-f", "jsonl", "-o", "report.fifo", "a.env"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let text = reader.join().unwrap();
    assert!(text.contains("github-pat-classic"), "{text}");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO is still a FIFO"
    );
}

#[test]
fn stdin_streams_in_chunks_with_correct_lines_and_no_duplicates() {
    // 20 MiB through stdin: several chunks; secrets near chunk boundaries are found once, with
    // their true line numbers.
    let mut rng = Rng::new(12);
    let dir = tempfile::tempdir().unwrap();
    let filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\n";
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut line = 1;
    while text.len() < 20 << 20 {
        // Every ~1 MiB, and densely around the 8 MiB boundaries, a token.
        let near_boundary = (text.len() % (8 << 20)) > (8 << 20) - (80 << 10);
        if near_boundary || text.len() % (1 << 20) < filler.len() {
            text.push_str(&format!("token {}\n", fake_github_token(&mut rng)));
            expected.push(line);
        } else {
            text.push_str(filler);
        }
        line += 1;
    }
    let r = sluice_with(
        dir.path(),
        &["scan", "--format", "jsonl", "-"],
        Some(text.as_bytes()),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let found: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let expected: Vec<u64> = expected.into_iter().map(|l| l as u64).collect();
    assert_eq!(found.len(), expected.len(), "each secret once");
    assert_eq!(found, expected);
}

/// A file name with a line break and an escape sequence cannot fake a line of the human report
/// or rewrite the terminal: control characters are shown escaped; SARIF `uri`s percent-encode
/// them (and spaces, `#`, non-ASCII) as RFC 3986 asks.
#[test]
fn file_names_with_control_characters_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(808);
    let name = "evil\nfake.rs:1:1  fake-rule \u{1b}[2J é #1.env";
    std::fs::write(
        dir.path().join(name),
        format!("TOKEN={}\n", fake_github_token(&mut rng)),
    )
    .unwrap();
    let r = sluice(dir.path(), &["scan", "."]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(
        r.stdout
            .contains("evil\\nfake.rs:1:1  fake-rule \\u{1b}[2J é #1.env"),
        "{:?}",
        r.stdout
    );
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("fake.rs")),
        "a forged report line: {:?}",
        r.stdout
    );
    let r = sluice(dir.path(), &["scan", ".", "--format", "sarif"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    let uri =
        v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
    assert_eq!(
        uri,
        "evil%0Afake.rs%3A1%3A1%20%20fake-rule%20%1B%5B2J%20%C3%A9%20%231.env"
    );
}

/// Inputs peers read and sluice once passed over: a binary file (one NUL byte hid it from every
/// mode) is searched for self-identifying tokens, not for generic assignments; UTF-16 text in
/// either byte order, with or without a mark, is read as text; a pipe named on the command line
/// is read; a device is refused (exit 2), never reported clean; a pipe inside a directory is a
/// warning.
#[test]
fn binary_utf16_pipes_and_devices() {
    let mut rng = Rng::new(61);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gh = fake_github_token(&mut rng);
    let generic = format!("password = \"{}\"", rng.string(crate::support::ALNUM, 24));
    let mut bin = vec![0u8, 1, 2, 3, 0xFF];
    bin.extend_from_slice(format!("\n{generic}\n\0\0{gh}\0").as_bytes());
    std::fs::write(d.join("blob.bin"), &bin).unwrap();
    let text = format!("# settings\r\ntoken = {}\r\n", fake_github_token(&mut rng));
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = [
        &[0xFE, 0xFF][..],
        &text
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect::<Vec<u8>>(),
    ]
    .concat();
    std::fs::write(d.join("win-le.txt"), &le).unwrap();
    std::fs::write(d.join("win-be.txt"), &be).unwrap();
    let r = sluice(d, &["scan", "--format", "json", "."]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v = json(&r);
    let mut got: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let rules: Vec<&str> = got.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        got.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        vec!["./blob.bin", "./win-be.txt", "./win-le.txt"],
        "{got:?}"
    );
    assert!(rules.iter().all(|r| r.starts_with("github")), "{got:?}");
    assert_eq!(v["summary"]["binary"], 1);
    // A pipe named on the command line is read; a device is refused.
    let fifo = d.join("feed");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let fifo = fifo.clone();
        let line = format!("GH={}\n", fake_github_token(&mut rng));
        std::thread::spawn(move || std::fs::write(fifo, line).unwrap())
    };
    let r = sluice(d, &["scan", "--format", "json", "feed"]);
    writer.join().unwrap();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(paths(&json(&r)), vec!["feed:1"]);
    let r = sluice(d, &["scan", "/dev/null"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("a device"), "{}", r.stderr);
    // Inside a directory, a pipe is skipped with a warning (opening it would block).
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::rename(&fifo, d.join("sub/feed")).unwrap();
    let r = sluice(d, &["scan", "sub"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    // So is a symlink to a pipe or a device (opened without waiting, then asked what it is),
    // and a symlink to a directory is not followed; the file beside them is still read.
    std::fs::create_dir(d.join("links")).unwrap();
    std::os::unix::fs::symlink(d.join("sub/feed"), d.join("links/to-pipe")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("links/to-zero")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("links/to-dir")).unwrap();
    write(
        d,
        "links/real.cfg",
        &format!("token={}\n", fake_github_token(&mut rng)),
    );
    let r = sluice(d, &["scan", "--format", "json", "links"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(paths(&json(&r)), vec!["links/real.cfg:1"]);
    for name in ["to-pipe", "to-zero"] {
        assert!(
            r.stderr.contains(&format!(
                "{name}: links to something that is not a regular file"
            )),
            "{}",
            r.stderr
        );
    }
}
