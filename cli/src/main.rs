//! `cachekit`: the command-line client for cachekitd.
#![forbid(unsafe_code)]

mod args;
mod duration;
mod manage;
mod output;
mod verify;

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use cachekit_client::{Client, ClientOptions, Error, SetOptions};
use clap::Parser;
use serde_json::json;

use args::{Cli, Command};
use output::{exit_code, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(outcome) => outcome.finish(json),
        Err(e) => {
            output::print_error(&e, json);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Reads the value to store from `input` (`what` names it), at most `max + 1` bytes: one byte
/// over the limit is enough to refuse it, without reading (and holding) the rest of an input
/// that may never end (`/dev/zero`).
fn read_value(input: impl Read, what: &str, max: usize) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    input
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Input(format!("cannot read {what}: {e}")))?;
    if buf.len() > max {
        return Err(CliError::Client(Error::TooLarge {
            message: format!(
                "{what} is over max_value_bytes = {max} (stopped reading after {} bytes); store \
                 a smaller value or raise the daemon's limit (cachekitd --max-value-bytes)",
                buf.len()
            ),
        }));
    }
    Ok(buf)
}

fn options(cli: &Cli) -> ClientOptions {
    let mut opts = ClientOptions::new()
        .instance(cli.instance.clone())
        .namespace(cli.namespace.clone())
        .request_timeout(cli.timeout)
        .connect_timeout(cli.timeout.min(std::time::Duration::from_secs(2)))
        .pool_size(1)
        .client_name("cachekit-cli");
    opts.socket = cli.socket.clone();
    opts
}

fn run(cli: Cli) -> Result<Outcome, CliError> {
    let client = Client::connect(options(&cli))?;
    match cli.command {
        Command::Ping => Ok(output::ping(&client, client.ping()?)),
        Command::Stats => Ok(output::stats(&client, &client.stats()?)),
        Command::Get { key, raw } => {
            let key = key.as_bytes();
            match client.get(key)? {
                Some(v) => Ok(output::value(key, &v, raw)),
                None => Ok(Outcome::miss(key)),
            }
        }
        Command::Set {
            key,
            value,
            file,
            ttl,
            grace,
            tags,
            if_absent,
            if_present,
        } => {
            let max = client.max_value_bytes();
            let bytes = match (value, file) {
                (_, Some(path)) => {
                    let what = path.display().to_string();
                    let f = std::fs::File::open(&path)
                        .map_err(|e| CliError::Input(format!("cannot read {what}: {e}")))?;
                    read_value(f, &what, max)?
                }
                (Some(v), None) if v == "-" => read_value(std::io::stdin(), "stdin", max)?,
                (Some(v), None) => v.as_bytes().to_vec(),
                (None, None) => unreachable!("clap requires a value or --file"),
            };
            let opts = SetOptions {
                ttl,
                grace,
                tags: tags.clone(),
            };
            let key = key.as_bytes();
            let stored = if if_absent {
                client.add(key, &bytes, &opts)?
            } else if if_present {
                client.replace(key, &bytes, &opts)?
            } else {
                client.set(key, &bytes, &opts)?;
                true
            };
            if !stored {
                let why = if if_absent {
                    "it exists"
                } else {
                    "it is missing"
                };
                return Ok(Outcome::not_done(
                    json!({"ok": false, "stored": false, "namespace": client.namespace(),
                           "key": output::key_text(key)}),
                    format!("not stored: {why}"),
                ));
            }
            Ok(Outcome::done(
                json!({
                    "ok": true,
                    "stored": true,
                    "namespace": client.namespace(),
                    "key": output::key_text(key),
                    "bytes": bytes.len(),
                    "ttl_ms": ttl.map(|t| t.as_millis() as u64),
                    "grace_ms": grace.as_millis() as u64,
                    "tags": tags,
                }),
                format!(
                    "stored {} ({} byte{}{}{})",
                    output::key_text(key),
                    bytes.len(),
                    if bytes.len() == 1 { "" } else { "s" },
                    ttl.map(|t| format!(", ttl {}", duration::format_duration(t)))
                        .unwrap_or_default(),
                    if tags.is_empty() {
                        String::new()
                    } else {
                        format!(", tags {}", tags.join(" "))
                    }
                ),
            ))
        }
        Command::Del {
            key: None,
            pattern,
            tag,
            exact,
        } => manage::delete_matching(&client, pattern, tag, exact),
        Command::Del { key: Some(key), .. } => {
            let existed = client.delete(key.as_bytes())?;
            Ok(Outcome::done(
                json!({"key": output::key_text(key.as_bytes()), "existed": existed}),
                if existed { "deleted" } else { "not found" }.to_string(),
            ))
        }
        Command::Invalidate { tags, exact } => {
            if exact {
                client.invalidate_exact(&tags)?;
            } else {
                client.invalidate(&tags)?;
            }
            let mode = if exact { "exact" } else { "hierarchical" };
            Ok(Outcome::done(
                json!({"ok": true, "namespace": client.namespace(), "tags": tags, "mode": mode}),
                format!(
                    "invalidated {} ({mode}) in namespace {}",
                    tags.join(" "),
                    client.namespace()
                ),
            ))
        }
        Command::Keys {
            pattern,
            tag,
            exact,
        } => manage::keys(&client, pattern, tag, exact, cli.json),
        Command::Ttl { key } => manage::ttl(&client, key.as_bytes()),
        Command::Touch { key, ttl, persist } => {
            manage::touch(&client, key.as_bytes(), if persist { None } else { ttl })
        }
        Command::Incr(c) => manage::counter(&client, &c, false),
        Command::Decr(c) => manage::counter(&client, &c, true),
        Command::Namespaces => manage::namespaces(&client),
        Command::Verify { repair } => verify::verify(&client, repair),
        Command::Clear => {
            client.clear()?;
            Ok(Outcome::done(
                json!({"ok": true, "namespace": client.namespace()}),
                format!("cleared namespace {}", client.namespace()),
            ))
        }
    }
}

/// Everything `run` can fail with.
#[derive(Debug)]
pub enum CliError {
    /// From the client library.
    Client(Error),
    /// Reading the value to store.
    Input(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Client(e)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Client(e) => write!(f, "{e}"),
            CliError::Input(m) => f.write_str(m),
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`cachekit get k | head -c1`).
fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}
