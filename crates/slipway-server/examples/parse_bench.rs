//! Times `oip::parse_request` on a body file: `cargo run --release --example parse_bench -- BODY [N]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("body file");
    let n: usize = args.next().map_or(2000, |s| s.parse().expect("count"));
    let body = std::fs::read(&path).expect("read body");
    let hlen = std::fs::read_to_string(format!("{path}.hlen"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let admit = |_| Ok::<(), slipway_server::oip::BadRequest>(());
    let mut rows = 0;
    for _ in 0..n / 10 {
        rows = slipway_server::oip::parse_request(&body, hlen, admit)
            .expect("parses")
            .inputs[0]
            .shape[0];
    }
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            slipway_server::oip::parse_request(&body, hlen, admit).expect("parses"),
        );
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{path}: {us:.1} µs per request, {rows} rows, {:.0} rows/s",
        rows as f64 / us * 1e6
    );
}
