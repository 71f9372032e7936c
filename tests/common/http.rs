//! One HTTP/1.0 request to a published port on 127.0.0.1, and the few ways tests use it.

use std::time::Duration;

/// A parsed HTTP/1.0 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request to `127.0.0.1:port` (connect, read and write bounded at 10 s).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{why}: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(HttpResponse { status, headers, body: body.to_string() })
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
