//! The committed captures in `pcaps/` are exactly what `harness pcaps gen` builds, their
//! scenario files load, and the oracle agrees with each `.expect` file.

use std::path::{Path, PathBuf};

use harness::capture;
use harness::gen::{self, parse_expect};
use harness::oracle::{Checker, Verdict};
use harness::scenario::Scenario;

fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcaps")
}

#[test]
fn committed_files_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let written = gen::write_all(dir.path()).unwrap();
    assert_eq!(written.len(), 3 * gen::standard().unwrap().len());
    let mut total = 0;
    for path in written {
        let name = path.file_name().unwrap();
        let fresh = std::fs::read(&path).unwrap();
        let committed = std::fs::read(pcaps_dir().join(name)).unwrap_or_else(|e| {
            panic!(
                "pcaps/{}: {e}; run `harness pcaps gen`",
                name.to_string_lossy()
            )
        });
        assert!(
            fresh == committed,
            "pcaps/{} differs from the generator's output; run `harness pcaps gen`",
            name.to_string_lossy()
        );
        total += committed.len();
    }
    assert!(
        total < 1024 * 1024,
        "captures total {total} bytes; keep them under 1 MiB"
    );
}

#[test]
fn oracle_agrees_with_committed_expectations() {
    for c in gen::standard().unwrap() {
        let toml = pcaps_dir().join(format!("{}.toml", c.name));
        let scenario = Scenario::load(&toml).unwrap();
        let frames = capture::read(&scenario.input_path(&toml)).unwrap();
        let expect_path = pcaps_dir().join(format!("{}.expect", c.name));
        let expected = parse_expect(&std::fs::read_to_string(expect_path).unwrap()).unwrap();
        assert_eq!(frames.len(), expected.len(), "{}", c.name);
        let mut checker = Checker::new(&scenario);
        let mut forward = 0;
        for (i, (frame, want)) in frames.iter().zip(&expected).enumerate() {
            let got = match checker.observe_input(&frame.data, 0).1 {
                Verdict::Forward { .. } => None,
                Verdict::Drop(r) => Some(r),
            };
            assert_eq!(got, *want, "{} packet {i}", c.name);
            forward += u64::from(got.is_none());
        }
        let counts = scenario.expect.unwrap();
        assert_eq!(counts.forward, forward, "{}", c.name);
        let report = checker.finish();
        let differ = report.against_expect(&counts);
        assert!(differ.is_empty(), "{}: {differ:#?}", c.name);
        // Nothing was sent to the checker as output: every forward is missing.
        assert_eq!(report.failures.len() as u64, forward);
    }
}
