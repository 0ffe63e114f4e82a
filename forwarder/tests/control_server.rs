//! The control socket for real: a Unix socket in a temporary directory, raw clients that
//! write partial, malformed and oversized lines, and `client::send`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use forwarder::control::client::{self, ClientError};
use forwarder::control::proto::{Request, Response};
use forwarder::control::server::{ControlServer, ServerError, MAX_LINE};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("l4lab-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls until `n` requests arrived (or 5 s passed).
fn poll_until(
    server: &mut ControlServer,
    n: usize,
) -> Vec<(forwarder::control::server::ClientId, Request)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(server.poll_requests());
        thread::sleep(Duration::from_millis(1));
    }
    got
}

/// Polls the server while reading one response line from `reader`.
fn read_response(server: &mut ControlServer, reader: &mut BufReader<UnixStream>) -> Response {
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut line = String::new();
    while Instant::now() < deadline {
        assert!(server.poll_requests().is_empty(), "no request expected");
        match reader.read_line(&mut line) {
            Ok(_) if line.ends_with('\n') => return serde_json::from_str(&line).unwrap(),
            Ok(0) => panic!("connection closed"),
            _ => {}
        }
    }
    panic!("no response; got {line:?}");
}

fn connect(path: &Path) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(path).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

#[test]
fn bind_creates_the_directory_and_a_0600_socket_and_removes_it_on_drop() {
    let tmp = TempDir::new("bind");
    let path = tmp.path().join("run/l4lab/forwarder.sock");
    let server = ControlServer::bind(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(server.path(), path);
    drop(server);
    assert!(!path.exists());
}

#[test]
fn a_stale_socket_is_replaced_but_a_live_one_and_other_files_are_not() {
    let tmp = TempDir::new("stale");
    let path = tmp.path().join("fwd.sock");
    // A socket file whose listener is gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::bind(&path).unwrap();

    let err = ControlServer::bind(&path).unwrap_err();
    assert!(matches!(err, ServerError::InUse { .. }), "{err}");
    drop(server);

    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = ControlServer::bind(&file).unwrap_err();
    assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
    assert!(err.to_string().contains("is not a socket"));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn two_clients_split_writes_and_in_order_answers() {
    let tmp = TempDir::new("two");
    let path = tmp.path().join("fwd.sock");
    let mut server = ControlServer::bind(&path).unwrap();

    let (mut a, mut ra) = connect(&path);
    let (mut b, mut rb) = connect(&path);
    // A request split across three writes, with polls in between.
    a.write_all(b"{\"cmd\":").unwrap();
    assert!(server.poll_requests().is_empty());
    a.write_all(b"\"service_l").unwrap();
    assert!(server.poll_requests().is_empty());
    a.write_all(b"ist\"}\n{\"cmd\":\"stats\"}\n").unwrap();
    b.write_all(b"{\"cmd\":\"laddr_list\",\"port\":\"p0\"}\n")
        .unwrap();

    let got = poll_until(&mut server, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(server.client_count(), 2);
    let from_a: Vec<&Request> = got
        .iter()
        .filter(|(id, _)| *id == got[0].0)
        .map(|(_, r)| r)
        .collect();
    let (id_b, req_b) = got.iter().find(|(id, _)| *id != got[0].0).unwrap();
    assert_eq!(from_a, [&Request::ServiceList, &Request::Stats]);
    assert_eq!(
        req_b,
        &Request::LaddrList {
            port: Some("p0".into())
        }
    );

    // Answer b first, then a's two in order.
    assert!(server.respond(*id_b, &Response::error("no port p0")));
    assert!(server.respond(got[0].0, &Response::Ok));
    assert!(server.respond(got[0].0, &Response::error("second")));
    assert_eq!(
        read_response(&mut server, &mut rb),
        Response::error("no port p0")
    );
    assert_eq!(read_response(&mut server, &mut ra), Response::Ok);
    assert_eq!(
        read_response(&mut server, &mut ra),
        Response::error("second")
    );

    // A client that leaves is forgotten, and answering it says so.
    drop(a);
    drop(ra);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.client_count() > 1 && Instant::now() < deadline {
        server.poll_requests();
    }
    assert_eq!(server.client_count(), 1);
    assert!(!server.respond(got[0].0, &Response::Ok));
}

#[test]
fn malformed_json_gets_an_error_and_the_connection_keeps_working() {
    let tmp = TempDir::new("malformed");
    let path = tmp.path().join("fwd.sock");
    let mut server = ControlServer::bind(&path).unwrap();
    let (mut a, mut ra) = connect(&path);

    a.write_all(b"{\"cmd\": \"stats\"\n").unwrap();
    let r = read_response(&mut server, &mut ra);
    let Response::Error { message } = r else {
        panic!("{r:?}")
    };
    assert!(message.starts_with("malformed request: "), "{message}");

    a.write_all(b"{\"cmd\":\"reboot\"}\n").unwrap();
    let r = read_response(&mut server, &mut ra);
    let Response::Error { message } = r else {
        panic!("{r:?}")
    };
    assert!(message.contains("unknown variant `reboot`"), "{message}");

    // Blank lines are ignored; the next good request goes through.
    a.write_all(b"\n\n{\"cmd\":\"stats\"}\n").unwrap();
    let got = poll_until(&mut server, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, Request::Stats);
    server.respond(got[0].0, &Response::Ok);
    assert_eq!(read_response(&mut server, &mut ra), Response::Ok);
}

#[test]
fn an_oversized_line_is_rejected_and_the_connection_keeps_working() {
    let tmp = TempDir::new("oversized");
    let path = tmp.path().join("fwd.sock");
    let mut server = ControlServer::bind(&path).unwrap();
    let (a, mut ra) = connect(&path);

    // Write from a thread: the server reads while the 200 KiB line goes in.
    let mut writer = a.try_clone().unwrap();
    let t = thread::spawn(move || {
        let mut big = vec![b' '; 200 * 1024];
        big.extend_from_slice(b"\n{\"cmd\":\"service_list\"}\n");
        writer.write_all(&big).unwrap();
    });
    let mut got = Vec::new();
    let mut line = String::new();
    ra.get_ref()
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (got.is_empty() || line.is_empty()) && Instant::now() < deadline {
        got.extend(server.poll_requests());
        if line.is_empty() {
            let _ = ra.read_line(&mut line);
        }
    }
    t.join().unwrap();
    let r: Response = serde_json::from_str(&line).unwrap();
    assert_eq!(
        r,
        Response::error(format!(
            "request line longer than {MAX_LINE} bytes; ignored"
        ))
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, Request::ServiceList);
}

#[test]
fn client_send_round_trips_through_a_polling_server() {
    let tmp = TempDir::new("send");
    let path = tmp.path().join("fwd.sock");
    let mut server = ControlServer::bind(&path).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // The "master loop": answers stats with an error naming the request, others with Ok.
    let master = thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for (id, req) in server.poll_requests() {
                let resp = match req {
                    Request::Stats => Response::error("stats are not ready"),
                    _ => Response::Ok,
                };
                server.respond(id, &resp);
            }
            thread::sleep(Duration::from_millis(1));
        }
    });
    let timeout = Duration::from_secs(5);
    assert_eq!(
        client::send(&path, &Request::ServiceList, timeout).unwrap(),
        Response::Ok
    );
    assert_eq!(
        client::send(&path, &Request::Stats, timeout).unwrap(),
        Response::error("stats are not ready")
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    master.join().unwrap();
}

#[test]
fn client_send_reports_no_server_and_timeouts() {
    let tmp = TempDir::new("noserver");
    let path = tmp.path().join("none.sock");
    let err = client::send(&path, &Request::Stats, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("is the forwarder running"),
        "{err}"
    );

    // A server that never answers.
    let path = tmp.path().join("mute.sock");
    let _server = ControlServer::bind(&path).unwrap();
    let err = client::send(&path, &Request::Stats, Duration::from_millis(100)).unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
}

#[test]
fn run_ctl_prints_answers_and_returns_exit_codes() {
    use forwarder::control::client::{run_ctl, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

    let tmp = TempDir::new("runctl");
    let path = tmp.path().join("fwd.sock");
    let mut server = ControlServer::bind(&path).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let master = thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for (id, req) in server.poll_requests() {
                let resp = match req {
                    Request::RsDel { .. } => Response::error("no such real server"),
                    _ => Response::Ok,
                };
                server.respond(id, &resp);
            }
            thread::sleep(Duration::from_millis(1));
        }
    });
    let run = |line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_ctl(&words, &path, Duration::from_secs(5), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };

    assert_eq!(run("service list"), (EXIT_OK, "ok\n".into(), String::new()));
    let (code, out, err) = run("service list --json");
    assert_eq!((code, err.as_str()), (EXIT_OK, ""));
    assert_eq!(
        serde_json::from_str::<Response>(&out).unwrap(),
        Response::Ok
    );

    let (code, out, err) = run("rs del --vip 10.0.0.1:80 --rs 10.1.0.1:80");
    assert_eq!(code, EXIT_FAILED);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", "error: no such real server\n")
    );
    let (code, out, _) = run("rs del --vip 10.0.0.1:80 --rs 10.1.0.1:80 --json");
    assert_eq!(code, EXIT_FAILED);
    assert_eq!(
        serde_json::from_str::<Response>(&out).unwrap(),
        Response::error("no such real server")
    );

    let (code, out, err) = run("rs del --vip 10.0.0.1 --rs 10.1.0.1:80");
    assert_eq!((code, out.as_str()), (EXIT_USAGE, ""));
    assert!(
        err.starts_with("forwarder ctl: bad value `10.0.0.1` for `--vip`"),
        "{err}"
    );

    let (code, _, err) = run("stats --socket /nonexistent/fwd.sock");
    assert_eq!(code, EXIT_FAILED);
    assert!(err.contains("/nonexistent/fwd.sock"), "{err}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    master.join().unwrap();
}
