//! One HTTP/1.0 request to a published port on 127.0.0.1, and the few ways tests use it.

use std::time::Duration;

/// A parsed HTTP/1.0 response: the lesson checks' own type, so tests read answers as
/// `scale check` does.
pub use scale::lesson::Answer as HttpResponse;

/// One HTTP/1.0 request to `127.0.0.1:port`, with the client `scale check` uses (connect,
/// read and write bounded at 10 s).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<HttpResponse> {
    scale::probe::http(port, method, path, body)
}

/// GETs `path` until it answers `200` (at most `attempts` tries, 500 ms apart); panics with
/// the last answer otherwise.
pub fn http_get_ok(port: u16, path: &str, attempts: u32) -> HttpResponse {
    let mut last = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
        match http(port, "GET", path, None) {
            Ok(r) if r.status == 200 => return r,
            Ok(r) => last = format!("status {}: {}", r.status, r.body),
            Err(e) => last = e.to_string(),
        }
    }
    panic!("GET 127.0.0.1:{port}{path} did not answer 200 in {attempts} attempts; last: {last}")
}

/// GET `127.0.0.1:port` + `path`; panics if no HTTP answer comes.
pub fn http_get(port: u16, path: &str) -> HttpResponse {
    http(port, "GET", path, None).unwrap_or_else(|e| panic!("GET 127.0.0.1:{port}{path}: {e}"))
}

/// The header `name` of `r`; panics if it has none.
pub fn header<'a>(r: &'a HttpResponse, name: &str) -> &'a str {
    r.header(name).unwrap_or_else(|| panic!("no {name} header in {r:?}"))
}
