//! The `forwarder ctl` side of the control socket: one request, one response.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::control::proto::{parse_cli, render_json, render_table, Output, Request, Response};

/// Longest response accepted, in bytes (a `conn list` of many connections is large).
pub const MAX_RESPONSE: u64 = 256 * 1024 * 1024;

/// A request that got no usable answer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nobody listens on the socket.
    #[error(
        "cannot connect to the control socket {}: {source}; is the forwarder running, and is \
         this its socket (--socket PATH)?",
        path.display()
    )]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// No complete answer within the timeout.
    #[error("no answer from the forwarder within {0:?}")]
    Timeout(Duration),
    /// The forwarder closed the connection without answering.
    #[error("the forwarder closed the connection without answering")]
    Closed,
    /// Reading or writing failed.
    #[error("control socket I/O failed: {0}")]
    Io(#[source] io::Error),
    /// The answer is not a valid response.
    #[error("the forwarder's answer is not a valid response: {0}")]
    Decode(String),
    /// The answer exceeded [`MAX_RESPONSE`].
    #[error("the forwarder's answer is larger than {MAX_RESPONSE} bytes")]
    TooLarge,
}

/// Sends `request` to the forwarder listening on `path` and waits at most `timeout` in all
/// for its response.
pub fn send(path: &Path, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    let timed = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
        _ => ClientError::Io(e),
    };
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ClientError::Timeout(timeout))
    };

    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
    line.push(b'\n');
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(ClientError::Io)?;
    (&stream).write_all(&line).map_err(timed)?;

    let mut reader = BufReader::new((&stream).take(MAX_RESPONSE));
    let mut answer = Vec::new();
    loop {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(ClientError::Io)?;
        match reader.read_until(b'\n', &mut answer) {
            Ok(0) if answer.is_empty() => return Err(ClientError::Closed),
            Ok(_) if answer.ends_with(b"\n") => break,
            Ok(0) => {
                if answer.len() as u64 >= MAX_RESPONSE {
                    return Err(ClientError::TooLarge);
                }
                return Err(ClientError::Closed);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timed(e)),
        }
    }
    serde_json::from_slice(&answer).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Default time `forwarder ctl` waits for an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit status of `forwarder ctl`: the forwarder applied or answered the request.
pub const EXIT_OK: i32 = 0;
/// Exit status of `forwarder ctl`: the forwarder refused the request, or could not be reached.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of `forwarder ctl`: the command line is wrong; nothing was sent.
pub const EXIT_USAGE: i32 = 2;

/// `forwarder ctl WORDS…`: parses the words, sends the request to `--socket` or
/// `default_socket`, prints the answer to `out` (table or `--json`) and problems to `err`,
/// and returns the exit status ([`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_USAGE`]).
pub fn run_ctl<S: AsRef<str>>(
    words: &[S],
    default_socket: &Path,
    timeout: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let cmd = match parse_cli(words) {
        Ok(cmd) => cmd,
        Err(e) => {
            let _ = writeln!(err, "forwarder ctl: {e}");
            return EXIT_USAGE;
        }
    };
    let socket = cmd.socket.as_deref().unwrap_or(default_socket);
    let response = match send(socket, &cmd.request, timeout) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "forwarder ctl: {e}");
            return EXIT_FAILED;
        }
    };
    let text = match cmd.output {
        Output::Json => render_json(&response),
        Output::Table => render_table(&response),
    };
    // An error answer goes to stderr in table form, to stdout (parseable) with --json.
    let sink: &mut dyn Write = if response.is_error() && cmd.output == Output::Table {
        err
    } else {
        out
    };
    let _ = sink.write_all(text.as_bytes());
    if response.is_error() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
