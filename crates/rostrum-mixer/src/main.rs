//! Placeholder: the GStreamer mixer lands here (see docs/compositor-plan.md).
fn main() {
    eprintln!("rostrum-mixer: not built yet");
    std::process::exit(2);
}
