//! `[policies]`: parsed into typed values, defaults when absent, located errors.

use forwarder::control::config::{Config, PoliciesConfig};

const BASE: &str = "[[port]]\nname = \"p0\"\ndevice = \"net_ring0\"\nrx_queues = 1\n";

#[test]
fn policies_default_and_parse() {
    let c = Config::parse(BASE, "t.toml").expect("valid");
    assert_eq!(c.policies, PoliciesConfig::default());
    assert!(c.policies.answer_echo && !c.policies.verify_checksums);

    let text = format!(
        "{BASE}\n[policies]\nverify_checksums = true\nanswer_echo = false\nttl = \"control\"\nfragments = \"drop\"\nexpire_quiescent = true\n"
    );
    let c = Config::parse(&text, "t.toml").expect("valid");
    assert_eq!(
        c.policies,
        PoliciesConfig {
            verify_checksums: true,
            answer_echo: false,
            ttl_to_control: true,
            fragments_to_control: false,
            expire_quiescent: true,
        }
    );
}

#[test]
fn bad_policies_are_located() {
    let text = format!("{BASE}\n[policies]\nttl = \"bounce\"\n");
    let err = Config::parse(&text, "t.toml")
        .expect_err("bad value")
        .to_string();
    assert!(err.starts_with("t.toml:7:"), "{err}");
    assert!(err.contains("policies.ttl"), "{err}");
    let text = format!("{BASE}\n[policies]\nanswer_ping = true\n");
    let err = Config::parse(&text, "t.toml")
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("t.toml:7"), "{err}");
    assert!(err.contains("answer_ping"), "{err}");
}
