#![forbid(unsafe_code)]

fn main() {
    eprintln!("forwarder: the runtime is not built yet (see issue 4); the dataplane library is");
    std::process::exit(2);
}
