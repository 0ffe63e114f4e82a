//! The control socket: a non-blocking Unix-socket server the master lcore polls.
//!
//! Each client sends newline-terminated JSON [`Request`]s and gets one newline-terminated
//! JSON [`Response`] per request, in order. The server answers by itself what never reaches
//! the runtime: malformed JSON and lines over [`MAX_LINE`] bytes get an error response and
//! the connection stays usable. Everything else is handed out by
//! [`ControlServer::poll_requests`] and answered with [`ControlServer::respond`], possibly
//! on a later poll (after every worker has applied a change).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::control::proto::{Request, Response};

/// Longest request line accepted, in bytes (without the newline).
pub const MAX_LINE: usize = 64 * 1024;
/// Most clients connected at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 64;
/// A client whose unread responses exceed this is disconnected.
pub const MAX_PENDING_OUTPUT: usize = 16 * 1024 * 1024;
/// Permissions of the socket file: owner read/write only.
pub const SOCKET_MODE: u32 = 0o600;

/// The control socket could not be set up.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The parent directory could not be created.
    #[error("cannot create the directory {} for the control socket: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process answers on the socket.
    #[error(
        "another process is listening on {}; stop it or set [control] socket to another path",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("{} exists and is not a socket; remove it or choose another [control] socket", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding, chmod or removing a stale socket failed.
    #[error("cannot set up the control socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// Identifies a connected client until it disconnects (ids are not reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client#{}", self.0)
    }
}

/// The listening control socket and its clients.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: BTreeMap<ClientId, Client>,
    next_id: u64,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    /// Bytes of an incomplete line.
    input: Vec<u8>,
    /// Dropping the rest of an oversized line.
    discarding: bool,
    /// Responses not yet written.
    output: Vec<u8>,
    /// Requests handed out and not yet answered.
    pending: usize,
    /// The peer closed its sending side.
    eof: bool,
    /// An I/O error: drop at the next chance.
    broken: bool,
}

impl ControlServer {
    /// Creates the parent directory if needed, removes a stale socket left by a dead
    /// process, binds, and restricts the socket to its owner (mode 0600).
    pub fn bind(path: &Path) -> Result<ControlServer, ServerError> {
        let io_err = |source| ServerError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ServerError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(ServerError::InUse {
                        path: path.to_owned(),
                    });
                }
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Ok(_) => {
                return Err(ServerError::NotASocket {
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(io_err)?;
        listener.set_nonblocking(true).map_err(io_err)?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
            clients: BTreeMap::new(),
            next_id: 0,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Accepts new clients, reads what they sent, answers malformed and oversized lines
    /// itself, flushes pending output, and returns the well-formed requests in arrival
    /// order. Never blocks.
    pub fn poll_requests(&mut self) -> Vec<(ClientId, Request)> {
        self.accept();
        let mut requests = Vec::new();
        for (&id, client) in &mut self.clients {
            client.read_available();
            for line in client.take_lines() {
                match line {
                    Line::TooLong => client.queue(&Response::error(format!(
                        "request line longer than {MAX_LINE} bytes; ignored"
                    ))),
                    Line::Complete(bytes) => {
                        if bytes.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        match serde_json::from_slice::<Request>(&bytes) {
                            Ok(r) => {
                                client.pending += 1;
                                requests.push((id, r));
                            }
                            Err(e) => client.queue(&Response::error(format!(
                                "malformed request: {e}; send one JSON object per line, \
                                 e.g. {{\"cmd\":\"stats\"}}"
                            ))),
                        }
                    }
                }
            }
            client.flush();
        }
        self.clients.retain(|_, c| !c.finished());
        requests
    }

    /// Queues `response` for `client` and writes what the socket takes now; the rest goes
    /// out on later polls. Returns false if the client has gone away.
    pub fn respond(&mut self, client: ClientId, response: &Response) -> bool {
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        c.pending = c.pending.saturating_sub(1);
        c.queue(response);
        c.flush();
        let alive = !c.broken;
        if c.finished() {
            self.clients.remove(&client);
        }
        alive
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut client = Client {
                        stream,
                        input: Vec::new(),
                        discarding: false,
                        output: Vec::new(),
                        pending: 0,
                        eof: false,
                        broken: false,
                    };
                    if self.clients.len() >= MAX_CLIENTS {
                        client.queue(&Response::error(format!(
                            "too many control clients (at most {MAX_CLIENTS}); try again"
                        )));
                        client.flush();
                        continue; // dropped: closed
                    }
                    let id = ClientId(self.next_id);
                    self.next_id += 1;
                    self.clients.insert(id, client);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock, or a transient error such as EMFILE: try again next poll.
                Err(_) => break,
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Best effort: a socket file left behind is removed by the next bind anyway.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One unit of client input.
enum Line {
    /// A complete line, without its newline.
    Complete(Vec<u8>),
    /// A line that passed [`MAX_LINE`] (its bytes are dropped up to the next newline).
    TooLong,
}

impl Client {
    fn read_available(&mut self) {
        let mut buf = [0u8; 4096];
        while !self.eof && !self.broken {
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
            // Stop reading a client that floods without newlines: its lines are checked
            // below and the rest is read on the next poll.
            if self.input.len() > 4 * MAX_LINE {
                break;
            }
        }
    }

    fn take_lines(&mut self) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.input[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            if self.discarding {
                self.discarding = false;
            } else if end - start > MAX_LINE {
                lines.push(Line::TooLong);
            } else {
                lines.push(Line::Complete(self.input[start..end].to_vec()));
            }
            start = end + 1;
        }
        self.input.drain(..start);
        if self.input.len() > MAX_LINE {
            if !self.discarding {
                lines.push(Line::TooLong);
                self.discarding = true;
            }
            self.input.clear();
        } else if self.discarding {
            self.input.clear();
        }
        lines
    }

    fn queue(&mut self, response: &Response) {
        match serde_json::to_vec(response) {
            Ok(mut bytes) => {
                bytes.push(b'\n');
                self.output.extend_from_slice(&bytes);
            }
            Err(_) => self.output.extend_from_slice(
                b"{\"result\":\"error\",\"message\":\"cannot encode the response\"}\n",
            ),
        }
        if self.output.len() > MAX_PENDING_OUTPUT {
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        while !self.output.is_empty() && !self.broken {
            match self.stream.write(&self.output) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
    }

    /// Nothing more will happen on this connection.
    fn finished(&self) -> bool {
        self.broken || (self.eof && self.pending == 0 && self.output.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_with(input: &[u8]) -> Client {
        let (a, _b) = UnixStream::pair().unwrap();
        Client {
            stream: a,
            input: input.to_vec(),
            discarding: false,
            output: Vec::new(),
            pending: 0,
            eof: false,
            broken: false,
        }
    }

    #[test]
    fn lines_are_split_and_partial_lines_kept() {
        let mut c = client_with(b"{\"a\":1}\n{\"b\"");
        let lines = c.take_lines();
        assert_eq!(lines.len(), 1);
        assert!(matches!(&lines[0], Line::Complete(b) if b == b"{\"a\":1}"));
        assert_eq!(c.input, b"{\"b\"");
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_skipped() {
        let mut c = client_with(&vec![b'x'; MAX_LINE + 1]);
        let lines = c.take_lines();
        assert!(matches!(lines.as_slice(), [Line::TooLong]));
        assert!(c.discarding);
        c.input.extend_from_slice(b"xxxx\n{}\n");
        let lines = c.take_lines();
        assert!(matches!(lines.as_slice(), [Line::Complete(b)] if b == b"{}"));
        assert!(!c.discarding);
    }

    #[test]
    fn an_oversized_complete_line_is_rejected() {
        let mut input = vec![b'x'; MAX_LINE + 1];
        input.extend_from_slice(b"\n{}\n");
        let mut c = client_with(&input);
        let lines = c.take_lines();
        assert!(matches!(lines.as_slice(), [Line::TooLong, Line::Complete(b)] if b == b"{}"));
    }
}
