//! `sluice run --mask-output` (and `run` with `as: file` values): run the command as a child,
//! forward signals to it, and (with masking) replace every secret value in its stdout and
//! stderr with `*****` before it reaches the terminal or log collector.
//!
//! Values split across reads are still masked: the streaming [`Masker`] holds back only the
//! longest tail that could still become a secret. Where sluice's own stdout/stderr is a terminal
//! the child gets a pseudo-terminal of the same size, so it still sees a TTY (colours, line
//! buffering). The exit code is the child's (128 + signal when a signal ended it).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use aho_corasick::{AhoCorasick, MatchKind};

use super::SecretValue;
use crate::error::Error;

/// What replaces a secret in the output.
pub(crate) const MASK: &[u8] = b"*****";
/// Values (and lines of multi-line values) shorter than this are not masked: masking `1` or
/// `on` would garble every line. `run` names the variables it cannot mask.
pub(crate) const MIN_MASKED_LEN: usize = 4;
/// At the end of the output, a tail this long that begins a secret is masked: a secret cut off
/// by the child's exit must not print all but its last bytes.
const MIN_MASKED_TAIL: usize = 3;

/// The byte strings that stand for `value` in output: the value itself; with each `\n` as
/// `\r\n` (a terminal's output processing turns one into the other, so a PEM key printed
/// through a pty no longer matches the value); and each of its lines, so a multi-line secret
/// printed in part, or re-wrapped, is still masked line by line.
fn spellings(value: &str) -> Vec<Vec<u8>> {
    let mut out = vec![value.as_bytes().to_vec()];
    if value.contains('\n') {
        out.push(
            value
                .replace("\r\n", "\n")
                .replace('\n', "\r\n")
                .into_bytes(),
        );
        out.extend(
            value
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).as_bytes().to_vec()),
        );
    }
    out.retain(|n| n.len() >= MIN_MASKED_LEN);
    out
}

/// The names of `values` that `--mask-output` cannot mask (shorter than [`MIN_MASKED_LEN`]).
pub(crate) fn unmaskable(values: &[(String, SecretValue)]) -> Vec<String> {
    values
        .iter()
        .filter(|(_, v)| !v.expose().is_empty() && v.expose().len() < MIN_MASKED_LEN)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Streaming replacement of secret values in a byte stream.
pub(crate) struct Masker {
    needles: Vec<Vec<u8>>,
    ac: Option<AhoCorasick>,
    pending: Vec<u8>,
}

impl Masker {
    /// A masker for `values` (those shorter than [`MIN_MASKED_LEN`] are skipped).
    pub(crate) fn new(values: &[SecretValue]) -> Masker {
        let mut needles: Vec<Vec<u8>> = values.iter().flat_map(|v| spellings(v.expose())).collect();
        needles.sort();
        needles.dedup();
        let ac = (!needles.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&needles)
                    .ok()
            })
            .flatten();
        Masker {
            needles,
            ac,
            pending: Vec::new(),
        }
    }

    /// Feed bytes; returns what can be emitted now, masked.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let Some(ac) = &self.ac else {
            return std::mem::take(&mut self.pending);
        };
        // Hold back the longest tail that is a proper prefix of some secret.
        let buf = &self.pending;
        let mut hold = 0;
        for n in &self.needles {
            for k in (1..n.len().min(buf.len() + 1)).rev() {
                if k <= hold {
                    break;
                }
                if buf.ends_with(&n[..k]) {
                    hold = k;
                    break;
                }
            }
        }
        let mut cut = buf.len() - hold;
        let mut out = Vec::with_capacity(buf.len());
        let mut last = 0;
        for m in ac.find_iter(buf) {
            if m.start() >= cut {
                break;
            }
            out.extend_from_slice(&buf[last..m.start()]);
            out.extend_from_slice(MASK);
            last = m.end();
            cut = cut.max(m.end());
        }
        out.extend_from_slice(&buf[last..cut]);
        self.pending.drain(..cut);
        out
    }

    /// Everything still held, masked (at end of stream). A tail of at least
    /// [`MIN_MASKED_TAIL`] bytes that begins a secret is masked too.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let Some(ac) = &self.ac else {
            return std::mem::take(&mut self.pending);
        };
        let buf = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        let mut last = 0;
        for m in ac.find_iter(&buf) {
            out.extend_from_slice(&buf[last..m.start()]);
            out.extend_from_slice(MASK);
            last = m.end();
        }
        let rest = &buf[last..];
        let tail = self
            .needles
            .iter()
            .filter_map(|n| {
                (MIN_MASKED_TAIL..n.len().min(rest.len() + 1))
                    .rev()
                    .find(|&k| rest.ends_with(&n[..k]))
            })
            .max()
            .unwrap_or(0);
        out.extend_from_slice(&rest[..rest.len() - tail]);
        if tail > 0 {
            out.extend_from_slice(MASK);
        }
        out
    }
}

/// One output stream of the child: the parent's reading end and the child's writing end.
fn channel(
    is_tty: bool,
    size_from: Option<std::os::fd::BorrowedFd<'_>>,
) -> std::io::Result<(OwnedFd, OwnedFd)> {
    if is_tty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let slave: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(std::ffi::OsStr::new(
                std::str::from_utf8(name.as_bytes()).map_err(std::io::Error::other)?,
            ))?
            .into();
        if let Some(fd) = size_from
            && let Ok(ws) = rustix::termios::tcgetwinsize(fd)
        {
            let _ = rustix::termios::tcsetwinsize(&slave, ws);
        }
        Ok((master, slave))
    } else {
        let (r, w) = std::io::pipe()?;
        Ok((r.into(), w.into()))
    }
}

fn pump(from: OwnedFd, mut to: impl Write, values: &[SecretValue]) {
    let mut masker = Masker::new(values);
    let mut src = std::fs::File::from(from);
    let mut buf = vec![0u8; 8192];
    loop {
        match src.read(&mut buf) {
            // EIO is how a pty says its other side is gone.
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let out = masker.feed(&buf[..n]);
                if to.write_all(&out).and_then(|_| to.flush()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.write_all(&masker.finish());
    let _ = to.flush();
}

/// Run `argv` as a supervised child with its environment set by `env`, forwarding signals,
/// and with `mask` masking those values in its output (without it the child writes to
/// sluice's own stdout and stderr), and `leases` renewed while it runs. Returns the exit code
/// to leave with and the leases, for the caller to revoke or keep. The child's pid goes into
/// `pid_slot` (for `--watch` to signal it).
pub(crate) fn supervise(
    argv: &[std::ffi::OsString],
    env: super::inject::ChildEnv,
    mask: Option<Vec<SecretValue>>,
    leases: Vec<super::vault::Lease>,
    pid_slot: Option<&std::sync::atomic::AtomicI32>,
) -> Result<(i32, Vec<super::vault::Lease>), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage(
            "nothing to run; give a command after `--`".into(),
        ));
    };
    let io = |e: std::io::Error| Error::Usage(format!("cannot supervise the command: {e}"));
    let mut signals = signal_hook::iterator::Signals::new([
        SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    ])
    .map_err(io)?;
    let mut command = Command::new(program);
    env.apply(&mut command);
    command.args(args).stdin(Stdio::inherit());
    // With masking, the child writes into pipes (or ptys, where sluice has a terminal) that
    // sluice reads and masks.
    let mut readers = Vec::new();
    if let Some(values) = &mask {
        let stdout_tty = rustix::termios::isatty(std::io::stdout());
        let stderr_tty = rustix::termios::isatty(std::io::stderr());
        let (out_r, out_w) =
            channel(stdout_tty, stdout_tty.then(rustix::stdio::stdout)).map_err(io)?;
        let (err_r, err_w) =
            channel(stderr_tty, stderr_tty.then(rustix::stdio::stderr)).map_err(io)?;
        command
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        readers.push((out_r, true, values.clone()));
        readers.push((err_r, false, values.clone()));
    }
    // The command holds the pipes' write ends: it goes out of scope once the child has them,
    // or the readers below would never see end of file.
    let mut child = { command }.spawn().map_err(|e| Error::spawn(program, &e))?;
    let pid = rustix::process::Pid::from_child(&child);
    if let Some(slot) = pid_slot {
        slot.store(
            pid.as_raw_nonzero().get(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
    let handle = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            if let Some(s) = rustix::process::Signal::from_named_raw(sig) {
                let _ = rustix::process::kill_process(pid, s);
            }
        }
    });
    // Dynamic credentials: renewed at two thirds of each lease while the child runs; a lease
    // that cannot be renewed ends the child when it runs out (its credentials stop working
    // then anyway), with a message that says why.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = (!leases.is_empty()).then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || keep_leases(leases, pid, &stop))
    });
    let pumps: Vec<_> = readers
        .into_iter()
        .map(|(from, stdout, values)| {
            std::thread::spawn(move || {
                if stdout {
                    pump(from, std::io::stdout(), &values);
                } else {
                    pump(from, std::io::stderr(), &values);
                }
            })
        })
        .collect();
    let status = child.wait().map_err(io)?;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let leases = keeper.and_then(|k| k.join().ok()).unwrap_or_default();
    // The pty readers end when the child's side closes; pipes end at EOF.
    for p in pumps {
        let _ = p.join();
    }
    handle.close();
    let _ = forwarder.join();
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    Ok((code, leases))
}

/// Renew `leases` until `stop`; returns them (for revoking) when the child has ended.
fn keep_leases(
    mut leases: Vec<super::vault::Lease>,
    pid: rustix::process::Pid,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<super::vault::Lease> {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let mut failing: Vec<Option<String>> = vec![None; leases.len()];
    let mut retry_at: Vec<Instant> = vec![Instant::now(); leases.len()];
    let mut stopped_child = false;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        for ((l, why), retry) in leases
            .iter_mut()
            .zip(failing.iter_mut())
            .zip(retry_at.iter_mut())
        {
            if (now < l.due() && why.is_none())
                || (why.is_some() && now < *retry && now < l.deadline())
            {
                continue;
            }
            if now >= l.deadline() {
                if !stopped_child {
                    eprintln!(
                        "sluice: the lease of {} ran out and could not be renewed ({}); stopping the command",
                        l.what,
                        why.as_deref()
                            .unwrap_or("the role's maximum lifetime was reached")
                    );
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                    stopped_child = true;
                }
                continue;
            }
            if !l.renewable {
                *why = Some("the lease is not renewable".into());
                continue;
            }
            // A failed renewal is tried again every second until the lease runs out.
            *retry = now + Duration::from_secs(1);
            match l.renew() {
                // Granted less than a tenth of a second: nothing left to extend.
                Ok(g) if g < Duration::from_millis(100) => {
                    *why = Some("the role's maximum lifetime was reached".into());
                }
                Ok(_) => *why = None,
                Err(e) => *why = Some(e),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    leases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(values: &[&str]) -> Masker {
        let v: Vec<SecretValue> = values
            .iter()
            .map(|s| SecretValue::new(s.to_string()))
            .collect();
        Masker::new(&v)
    }

    fn run(m: &mut Masker, chunks: &[&str]) -> String {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(m.feed(c.as_bytes()));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_values_split_across_reads() {
        let mut m = masker(&["hunter2secret", "tok-123456"]);
        let out = run(
            &mut m,
            &[
                "user=alice pw=hun",
                "ter2sec",
                "ret\ntoken tok-12",
                "3456 done\n",
            ],
        );
        assert_eq!(out, "user=alice pw=*****\ntoken ***** done\n");
    }

    #[test]
    fn emits_promptly_what_cannot_become_a_secret() {
        let mut m = masker(&["hunter2secret"]);
        assert_eq!(m.feed(b"Password: "), b"Password: ".to_vec());
        assert_eq!(
            m.feed(b"xx hunt"),
            b"xx ".to_vec(),
            "only the possible prefix is held"
        );
        assert_eq!(m.feed(b"ing\n"), b"hunting\n".to_vec());
    }

    #[test]
    fn multi_line_values_are_masked_through_a_terminal_and_line_by_line() {
        let pem = "-----BEGIN KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+Lh\n-----END KEY-----";
        let mut m = masker(&[pem]);
        let crlf = pem.replace('\n', "\r\n");
        let out = run(&mut m, &[&crlf[..30], &crlf[30..], "\r\n"]);
        assert_eq!(out, "*****\r\n");
        let mut m = masker(&[pem]);
        let out = run(&mut m, &["line: MIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n"]);
        assert_eq!(out, "line: *****\n");
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_masked() {
        let mut m = masker(&["hunter2secret"]);
        assert_eq!(run(&mut m, &["pw=hunter2secre"]), "pw=*****");
        let mut m = masker(&["hunter2secret"]);
        assert_eq!(run(&mut m, &["pw=hu"]), "pw=hu", "two bytes say nothing");
    }

    #[test]
    fn short_values_are_not_masked() {
        let mut m = masker(&["on", "1"]);
        assert_eq!(run(&mut m, &["debug on 1\n"]), "debug on 1\n");
    }
}
