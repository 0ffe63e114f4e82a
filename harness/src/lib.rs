//! harness: pcap replay, oracles, throughput search and reports (see issue 6).
#![forbid(unsafe_code)]
