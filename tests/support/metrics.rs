//! Reading the gateway's Prometheus metrics.

use super::turnstile::FakeTurnstile;
use super::upstream::Upstream;
use super::{client, route, user, TestGateway, UsersFile};

/// A gateway for counting known traffic: route `app` to an echo upstream at `/`, route `dead` to a refusing
/// upstream at `/dead`, and login against user `jdoe` (password `password`) with a fake siteverify.
pub struct MetricsScene {
    pub gw: TestGateway,
    pub up: Upstream,
    pub fake: FakeTurnstile,
    pub users: UsersFile,
}

impl MetricsScene {
    /// Starts the scene.
    pub async fn start(password: &str) -> MetricsScene {
        let up = Upstream::echo().await;
        let dead = Upstream::refusing().await;
        let users = UsersFile::new(&user("jdoe", &super::fixtures::argon2(password), true));
        let fake = FakeTurnstile::start().await;
        let routes =
            route("/", &up.url(), "name = \"app\"") + &route("/dead", &dead, "name = \"dead\"");
        let gw = TestGateway::start(&[&users.login_toml(&fake.url()), &routes]).await;
        MetricsScene {
            gw,
            up,
            fake,
            users,
        }
    }
}

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
