//! Requests hyper refuses before our router sees them (a request line over 64 KiB: 414; a
//! request head over its buffer: 431; a request line or header it cannot parse, e.g. raw
//! non-UTF-8 bytes: 400) are answered by hyper with an empty body. Clients of each surface
//! parse that surface's error format, so the connection is wrapped: the first bytes of each
//! request are remembered, and hyper's automatic answer is replaced by the same status in the
//! format of the surface the request line names. After such an answer the connection closes
//! gracefully (FIN, then the rest of the client's request is read and dropped for a moment),
//! so the client can read the answer instead of a reset.
//!
//! HTTP/2 connections (prior knowledge or ALPN `h2`) are passed through untouched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::http::{StatusCode, header};
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How much of a request's start is kept: enough for the method and the surface's path.
const HEAD_KEEP: usize = 256;
/// After a replaced answer: how long and how much of the client's request is drained.
const DRAIN_FOR: Duration = Duration::from_secs(2);
const DRAIN_MAX: usize = 4 << 20;

/// The client address of a connection (the `ConnectInfo` of every listener).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<SocketAddr> for Peer {
    fn connect_info(addr: SocketAddr) -> Self {
        Peer(addr)
    }
}

impl Connected<IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The plain HTTP listener, handing out guarded connections.
pub struct GuardedListener(pub TcpListener);

impl axum::serve::Listener for GuardedListener {
    type Io = HeadGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (HeadGuard::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Wraps what another `axum_server` acceptor (TLS) produces in a `HeadGuard`.
#[derive(Clone)]
pub struct GuardAcceptor<A>(pub A);

impl<A, I, S> axum_server::accept::Accept<I, S> for GuardAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin,
{
    type Stream = HeadGuard<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (io, svc) = inner.await?;
            Ok((HeadGuard::new(io), svc))
        })
    }
}

enum Replacement {
    None,
    /// Our answer, and how much of it is written.
    Writing(Vec<u8>, usize),
    /// Written: shut down, then drain until EOF, `DRAIN_MAX` or the deadline.
    Closing {
        shut: bool,
        drained: usize,
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
}

pub struct HeadGuard<IO> {
    io: IO,
    head: Vec<u8>,
    /// The next bytes read begin a request (at first, and after each answer is written).
    at_request_start: bool,
    /// No newline read yet since the request began (the request line is still open).
    line_open: bool,
    /// HTTP/2: nothing to replace.
    passive: bool,
    replacement: Replacement,
}

impl<IO> HeadGuard<IO> {
    fn new(io: IO) -> Self {
        Self {
            io,
            head: Vec::new(),
            at_request_start: true,
            line_open: true,
            passive: false,
            replacement: Replacement::None,
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        if self.passive || bytes.is_empty() {
            return;
        }
        if self.at_request_start {
            self.at_request_start = false;
            self.head.clear();
            self.line_open = true;
        }
        let room = HEAD_KEEP.saturating_sub(self.head.len());
        self.head
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        if self.line_open && bytes.contains(&b'\n') {
            self.line_open = false;
        }
        if self.head.starts_with(b"PRI * HTTP/2") {
            self.passive = true;
        }
    }
}

/// The status of hyper's automatic answer to an unparsable request, if `buf` is one: the
/// status line of 400, 414 or 431 followed by a head without a body or a content type (our
/// own answers always carry both).
fn automatic_answer(buf: &[u8]) -> Option<StatusCode> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != buf.len() {
        return None;
    }
    let head = String::from_utf8_lossy(buf.get(..end)?).to_ascii_lowercase();
    let empty = head.lines().any(|l| l.trim() == "content-length: 0");
    (empty && !head.contains("\ncontent-type:")).then_some(status)
}

/// The path of a request line's start (`GET /path?… HTTP/1.1`), lossily.
fn request_path(head: &[u8]) -> String {
    let target = head
        .split(|b| *b == b' ')
        .nth(1)
        .unwrap_or_default()
        .split(|b| *b == b'?' || *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    String::from_utf8_lossy(target).into_owned()
}

/// Our answer, as bytes on the wire.
fn render(status: StatusCode, head: &[u8]) -> Vec<u8> {
    let path = request_path(head);
    tracing::info!(
        status = status.as_u16(),
        "request refused before routing (request line or head unreadable or too large)"
    );
    let response = super::rejection_response(&path, status);
    let (parts, body) = response.into_parts();
    // The surfaces' error bodies are complete buffers: ready at the first poll.
    let mut collect = std::pin::pin!(axum::body::to_bytes(body, 64 * 1024));
    let body = match collect
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(b)) => b,
        _ => axum::body::Bytes::new(),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("Error")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeadGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let new = buf.filled().get(before..).unwrap_or_default();
        this.saw(new);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> HeadGuard<IO> {
    /// Writes our answer in place of hyper's `len` bytes.
    fn poll_replace(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        while let Replacement::Writing(bytes, off) = &mut self.replacement {
            let Some(rest) = bytes.get(*off..).filter(|r| !r.is_empty()) else {
                self.replacement = Replacement::Closing {
                    shut: false,
                    drained: 0,
                    deadline: Box::pin(tokio::time::sleep(DRAIN_FOR)),
                };
                break;
            };
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *off += n;
        }
        Poll::Ready(Ok(len))
    }

    fn start_replacing(&mut self, buf: &[u8]) -> bool {
        if self.passive || !matches!(self.replacement, Replacement::None) {
            return false;
        }
        let Some(mut status) = automatic_answer(buf) else {
            return false;
        };
        // A request line that never ended within hyper's buffer is a URI too long.
        if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE && self.line_open {
            status = StatusCode::URI_TOO_LONG;
        }
        self.replacement = Replacement::Writing(render(status, &self.head), 0);
        true
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.replacement, Replacement::Writing(..)) || this.start_replacing(buf) {
            return this.poll_replace(cx, buf.len());
        }
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.at_request_start = true;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &**b);
        if matches!(this.replacement, Replacement::Writing(..))
            || (first.is_some_and(|f| f.len() == total)
                && this.start_replacing(first.unwrap_or(&[])))
        {
            return this.poll_replace(cx, total);
        }
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        this.at_request_start = true;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Replacement::Closing {
            shut,
            drained,
            deadline,
        } = &mut this.replacement
        else {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        };
        if !*shut {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            *shut = true;
        }
        // Read and drop the rest of the refused request, so that closing does not reset the
        // connection before the client has read our answer.
        let mut scratch = [0u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() || *drained >= DRAIN_MAX {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => *drained += rb.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_hypers_automatic_answers_only() {
        let auto = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Wed, 25 Nov 2026 18:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_answer(auto), Some(StatusCode::URI_TOO_LONG));
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            automatic_answer(auto),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        // Ours carry a content type; a body after the head is not hyper's.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_answer(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert_eq!(automatic_answer(with_body), None);
        assert_eq!(automatic_answer(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(automatic_answer(b"HTTP/1.1 4"), None);
    }

    #[test]
    fn path_of_a_request_start() {
        assert_eq!(request_path(b"GET /sip?filter=a HTTP/1.1\r\n"), "/sip");
        assert_eq!(
            request_path(b"GET /api/rest/public/operator/sip_device_routes?filter[x]=\xff"),
            "/api/rest/public/operator/sip_device_routes"
        );
        assert_eq!(request_path(b"GARBAGE"), "");
    }
}
