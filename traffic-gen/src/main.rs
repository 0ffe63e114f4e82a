#![forbid(unsafe_code)]

fn main() {
    eprintln!("traffic-gen: not built yet (see issue 5)");
    std::process::exit(2);
}
