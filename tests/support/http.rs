//! Request helpers: the login call, authenticated GETs, and what tests read back from responses.

use super::{client, TestGateway};
use serde_json::{json, Value};

/// The JSON body of `POST /api/Auth`.
pub fn login_body(user: &str, password: &str, captcha: &str) -> Value {
    json!({"UserName": user, "Password": password, "CaptchaToken": captcha})
}

/// `POST /api/Auth` with `body` as JSON, on a fresh client.
pub async fn post_login(gw: &TestGateway, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url("/api/Auth"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The status of one login, or 0 when the request failed in transport (floods and fault tests count
/// those instead of panicking).
pub async fn login_status(gw: &TestGateway, user: &str, password: &str, captcha: &str) -> u16 {
    client()
        .post(gw.url("/api/Auth"))
        .json(&login_body(user, password, captcha))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// `GET url` on `c` with the whole `Authorization` header value given (`Bearer …`, or anything a test
/// wants to send there).
pub async fn get_auth(
    c: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    authorization: &str,
) -> reqwest::Response {
    c.get(url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
}

/// The status of `GET url` on `c`, with `Authorization: Bearer <token>` when a token is given.
pub async fn get_status(
    c: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    token: Option<&str>,
) -> u16 {
    let mut req = c.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().status().as_u16()
}

/// The `token` field of a successful login answer.
pub async fn token_of(res: reqwest::Response) -> String {
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .expect("a token in the login answer")
        .to_string()
}

/// A token's claims, decoded without checking the signature (for tests that only read claims).
pub fn unverified_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Status, headers (minus Date and X-Request-Id) and body, for byte-for-byte comparison of failures.
pub async fn snapshot(res: reqwest::Response) -> Snapshot {
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        // Date and X-Request-Id differ per request by design; everything else must be identical.
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

/// A response as `snapshot` records it.
pub type Snapshot = (u16, Vec<(String, String)>, Vec<u8>);

/// Asserts that the first answer is a bare 401 (no body) and every other one is identical to it.
pub fn assert_all_the_same_bare_401<N: std::fmt::Display>(answers: &[(N, Snapshot)]) {
    let (first_name, first) = &answers[0];
    assert_eq!(first.0, 401, "{first_name}");
    assert!(first.2.is_empty(), "no body");
    for (name, a) in answers {
        assert_eq!(a, first, "{name} differs from {first_name}");
    }
}

/// A client that speaks HTTP/2 without TLS (h2c, prior knowledge).
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}
