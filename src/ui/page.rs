//! The HTTP side of `scale ui`, kept thin: it serves the page (HTML, CSS and JavaScript
//! written by hand and embedded in the binary: there is no CDN or npm behind a learner's
//! laptop), the latest page model as JSON, and a server-sent event stream that pushes each
//! new model. What the model says is decided in `ui_model`; what it is made from is gathered
//! by `cli::live_page`. Served with hyper, which the engine client already brings.
//!
//! Only loopback addresses are served, and only requests whose `Host` names one: the page
//! shows a project's internals and has no login, and a web page from elsewhere must not be
//! able to read it through a DNS name that points at 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// How often an idle event stream sends a comment, so that proxies and browsers keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The page model as JSON text, as the poller last published it.
pub type Model = Arc<str>;

type Body = BoxBody<Bytes, Infallible>;

/// Why the page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(
        "scale ui serves on a loopback address only (127.0.0.1 or ::1), not {0}: the page shows the project's \
         internals and has no login; to see it from another machine, forward the port (`ssh -L 8070:127.0.0.1:8070 HOST`)"
    )]
    NotLoopback(std::net::IpAddr),
    #[error("cannot listen on {addr}: the port is in use; pick another with --port N, or --port 0 for any free one")]
    PortInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A listening socket on a loopback address, and the URL that reaches it.
pub struct PageListener {
    listener: TcpListener,
    pub url: String,
}

/// Binds `addr`, which must be a loopback address (port 0: any free port).
pub async fn bind(addr: SocketAddr) -> Result<PageListener, PageError> {
    if !addr.ip().is_loopback() {
        return Err(PageError::NotLoopback(addr.ip()));
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => PageError::PortInUse { addr },
        _ => PageError::Bind { addr, source },
    })?;
    let local = listener.local_addr().map_err(|source| PageError::Bind { addr, source })?;
    Ok(PageListener { url: format!("http://{local}/"), listener })
}

/// Serves connections until the task is dropped; each one on a task of its own.
pub async fn serve(page: PageListener, models: watch::Receiver<Model>) {
    loop {
        let Ok((stream, _)) = page.listener.accept().await else { continue };
        let models = models.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let models = models.clone();
                async move { Ok::<_, Infallible>(respond(&req, models)) }
            });
            // A browser that goes away mid-stream ends its connection; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The answer to one request.
fn respond(req: &Request<Incoming>, models: watch::Receiver<Model>) -> Response<Body> {
    if !local_host(req) {
        return text(StatusCode::FORBIDDEN, "text/plain", "scale ui answers only to localhost, 127.0.0.1 and [::1]\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "scale ui only serves GET\n");
    }
    match req.uri().path() {
        "/" | "/index.html" => text(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/app.js" => text(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
        "/style.css" => text(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/model.json" => text(StatusCode::OK, "application/json", &models.borrow()),
        "/events" => events(models),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found: try /\n"),
    }
}

/// Whether the `Host` header names a loopback name (or is absent, as from curl --http1.0).
fn local_host(req: &Request<Incoming>) -> bool {
    let Some(host) = req.headers().get(header::HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

fn text(status: StatusCode, content_type: &str, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())).boxed());
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// The event stream: the current model at once, then each new one as it is published, and a
/// comment when nothing changed for a while.
fn events(mut models: watch::Receiver<Model>) -> Response<Body> {
    models.mark_changed();
    let stream = futures_util::stream::unfold(models, |mut models| async move {
        let chunk = match tokio::time::timeout(KEEP_ALIVE, models.changed()).await {
            Ok(Ok(())) => format!("event: model\ndata: {}\n\n", &**models.borrow_and_update()),
            Ok(Err(_)) => return None,
            Err(_) => ": still here\n\n".to_string(),
        };
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), models))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}
