//! The client's TLS stream as a connection reads it: `tokio_rustls`'s stream, with a read that
//! returns at once when there is nothing to read (issue 10, goal 7).
//!
//! hyper polls its connection's reader every time the connection's task wakes (the request
//! arrives, the backend's answer arrives, the answer's body ends, ...): four reads per small
//! request, three of which find nothing. On a plain socket such a read is a readiness check;
//! through `tokio_rustls` it is a buffered-reader fill, a `rustls` `read_tls` into its deframer
//! through a `std::io::Read` adapter, a `WouldBlock` error built and matched, and the plaintext
//! reader's lookup: about 400 instructions each. Here a read that rustls would answer by asking
//! the socket (`wants_read`: no plaintext buffered, no `close_notify` received) first asks the
//! socket whether it is readable, and returns `Pending` if not (the socket's readiness then
//! wakes the task, as the full read would have arranged). Every other read is the stream's.
//!
//! A read returns the plaintext rustls holds (one record's, or more while more is held), and
//! never reads the socket again once it has some: `tokio_rustls`'s own read goes on to the
//! socket to fill the caller's buffer, a second fill that finds nothing on nearly every
//! request, and keeps an error met there for the next read. Reading through the stream's
//! `AsyncBufRead` side (`poll_fill_buf`, `consume`) there is no such held error: every error
//! is returned by the read that meets it, and end of stream (`close_notify`, or the socket's
//! end) is the stream's own answer. Writes, flushes and shutdown are the stream's own.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS server stream over TCP with the cheap idle read described in the module comment.
pub(super) struct TlsIo(TlsStream<TcpStream>);

impl TlsIo {
    pub(super) fn new(inner: TlsStream<TcpStream>) -> Self {
        TlsIo(inner)
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &mut self.get_mut().0;
        let mut read_any = false;
        loop {
            let (tcp, tls) = inner.get_ref();
            // `wants_read`: no plaintext held and no `close_notify` received, so rustls would
            // read the socket.
            if tls.wants_read() {
                if read_any {
                    return Poll::Ready(Ok(()));
                }
                // Nothing to do until the socket is readable; this registers the waker as the
                // socket read would.
                if tcp.poll_read_ready(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let chunk = match Pin::new(&mut *inner).poll_fill_buf(cx) {
                Poll::Ready(Ok(chunk)) => chunk,
                // Not reached once `read_any` (no socket read then), kept exact anyway.
                Poll::Ready(Err(_)) | Poll::Pending if read_any => return Poll::Ready(Ok(())),
                other => return other.map_ok(|_| ()),
            };
            // Empty: end of stream (the stream has marked its read side shut).
            if chunk.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            Pin::new(&mut *inner).consume(n);
            read_any = true;
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
