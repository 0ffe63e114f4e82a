//! `harness report`: files written, history appended, exit codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn report(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(path: &Path) -> usize {
    fs::read_to_string(path).unwrap().lines().count()
}

#[test]
fn fixture_run_fails_on_its_failed_check_and_appends_history_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("2026-02-10-abc1234");
    copy_dir(&fixtures().join("runs/2026-02-10-abc1234"), &run);
    let history = tmp.path().join("history.jsonl");
    fs::copy(fixtures().join("history.jsonl"), &history).unwrap();
    let before = lines(&history);

    let run_arg = run.to_str().unwrap();
    let (code, out, err) = report(&["--run", run_arg]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("1 of 3 scenario checks failed"), "{err}");
    for f in [
        "run.json",
        "report.json",
        "report.md",
        "report.html",
        "report.xml",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(lines(&history), before + 1);
    // A second report of the same run replaces its line.
    let (code, ..) = report(&["--run", run_arg, "--history", history.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(lines(&history), before + 1);
    let html = fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("class=\"point regression\""));
}

#[test]
fn first_run_with_only_smoke_passes_and_starts_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("results/2026-03-01-1234567");
    fs::create_dir_all(&run).unwrap();
    fs::copy(
        fixtures().join("runs/2026-02-10-abc1234/smoke.json"),
        run.join("smoke.json"),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let (code, out, err) = report(&[
        "--run",
        run.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--fail-on-regression",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("checks 0 failed 0; metrics 1 regressed 0; runs on this machine 1"));
    assert!(out_dir.join("report.html").is_file());
    assert!(out_dir.join("run.json").is_file());
    assert!(
        !run.join("report.html").exists(),
        "--out is where reports go"
    );
    let history = tmp.path().join("results/history.jsonl");
    assert_eq!(lines(&history), 1);
    let text = fs::read_to_string(history).unwrap();
    assert!(text.contains("\"commit\":\"1234567\""), "{text}");
    assert!(
        text.contains("smoke/ring-loopback/64B/1w/rust_mpps"),
        "{text}"
    );
}

#[test]
fn regression_fails_only_with_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.jsonl");
    // Nine runs at ratio 0.8, then this run at 0.4 on the same machine (identity from
    // run.json so that the fingerprint matches).
    let fp = r#"{"cpu_model":"T","cores":1,"dpdk":"22.11","kernel":"6.1"}"#;
    let run = tmp.path().join("2026-04-10-aaaaaaa");
    fs::create_dir_all(&run).unwrap();
    fs::write(
        run.join("run.json"),
        format!(r#"{{"id":"x","commit":"aaaaaaa","date":"2026-04-10","fingerprint":{fp}}}"#),
    )
    .unwrap();
    let (code, _, err) = report(&[
        "--run",
        run.to_str().unwrap(),
        "--history",
        history.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = fs::read_to_string(&history).unwrap();
    let fid = id
        .split("\"fingerprint\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let mut text = String::new();
    for i in 0..9 {
        let r = 0.8 + 0.004 * f64::from(i % 3);
        text.push_str(&format!(
            r#"{{"run":"2026-04-0{d}-b{i:06}","commit":"b{i:06}","date":"2026-04-0{d}","fingerprint":"{fid}","metrics":{{"m/64B/1w/mrr":{{"value":{v},"ratio":{r}}}}}}}"#,
            d = i + 1,
            v = r * 10.0
        ));
        text.push('\n');
    }
    fs::write(&history, text).unwrap();
    fs::write(
        run.join("bench.json"),
        r#"[{"name":"m/64B/1w/mrr","value":4.0,"unit":"Mpps","ceiling":10.0}]"#,
    )
    .unwrap();
    let h = history.to_str().unwrap();
    let (code, out, err) = report(&["--run", run.to_str().unwrap(), "--history", h]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("regressed 1"), "{out}");
    let (code, _, err) = report(&[
        "--run",
        run.to_str().unwrap(),
        "--history",
        h,
        "--fail-on-regression",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("regression in m/64B/1w/mrr"), "{err}");
    let xml = fs::read_to_string(run.join("report.xml")).unwrap();
    assert!(xml.contains(r#"<failure type="regression""#));
}

#[test]
fn missing_run_dir_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = report(&["--run", tmp.path().join("nope").to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("harness: "), "{err}");
    assert!(err.contains("no such run directory"), "{err}");
}
