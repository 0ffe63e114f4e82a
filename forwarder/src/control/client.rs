//! The `forwarder ctl` side of the control socket: one request, one response.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::control::proto::{Request, Response};

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
