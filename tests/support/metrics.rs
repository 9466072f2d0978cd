//! Reading the gateway's Prometheus metrics.

use super::{client, TestGateway};

/// The `/metrics` text of `gw`'s operations listener.
pub async fn scrape(gw: &TestGateway) -> String {
    let addr = gw.running.metrics_addr.expect("metrics listener on");
    client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels exactly as exported).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}
