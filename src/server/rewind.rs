//! Which HTTP a plaintext connection speaks, from its first bytes: the HTTP/2 preface or not
//! (`sniff`), and the stream that gives those bytes back to hyper before the socket's
//! (`Rewind`). hyper-util's `auto::Builder` does both, but serves HTTP/1 through a builder
//! without hyper's own head cap (`max_header_size`), so its read buffer had to be the cap
//! (perf19b: request bodies were read 16 KiB at a time).
//!
//! The sniff reads at most the preface's 24 bytes into the stream's own small array (no
//! allocation), and decides at the first byte that differs from the preface. A client that
//! sends the preface a byte at a time costs one wake per byte, never a busy loop; the caller
//! bounds the whole sniff with the connection's watchdog (`header_timeout`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2 (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first reads return the bytes the sniff took from it, then its own.
pub(super) struct Rewind<I> {
    io: I,
    head: [u8; H2_PREFACE.len()],
    /// `head[at..len]` is still to be given back.
    at: usize,
    len: usize,
}

impl<I> Rewind<I> {
    /// A stream with nothing to give back (the protocol was known from the TLS handshake).
    pub(super) fn new(io: I) -> Self {
        Rewind {
            io,
            head: [0; H2_PREFACE.len()],
            at: 0,
            len: 0,
        }
    }
}

impl<I: AsyncRead + Unpin> Rewind<I> {
    /// Reads the client's first bytes until they are the HTTP/2 preface (`true`) or cannot be
    /// (`false`: a byte differs, or the stream ended first); they are given back by the
    /// stream's next reads either way. Only on a fresh stream.
    pub(super) async fn sniff(&mut self) -> io::Result<bool> {
        debug_assert_eq!((self.at, self.len), (0, 0));
        while self.len < H2_PREFACE.len() {
            let n = self.io.read(&mut self.head[self.len..]).await?;
            if n == 0 {
                return Ok(false);
            }
            let was = self.len;
            self.len += n;
            if self.head[was..self.len] != H2_PREFACE[was..self.len] {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.len {
            let n = (this.len - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Sniffs what `pieces` sends (each written on its own), then reads the stream to its end.
    async fn sniffed(pieces: &[&[u8]]) -> (bool, Vec<u8>) {
        let (client, server) = tokio::io::duplex(64);
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            let mut client = client;
            for p in pieces {
                client.write_all(&p).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut io = Rewind::new(server);
        let h2 = io.sniff().await.unwrap();
        writer.await.unwrap();
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        (h2, all)
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_given_back_whole() {
        let mut sent = H2_PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(sniffed(&[&sent]).await, (true, sent.clone()));
        // A byte at a time, and split anywhere.
        let bytes: Vec<&[u8]> = sent.chunks(1).collect();
        assert_eq!(sniffed(&bytes).await, (true, sent.clone()));
        assert_eq!(
            sniffed(&[&sent[..5], &sent[5..23], &sent[23..]]).await,
            (true, sent.clone())
        );
    }

    #[tokio::test]
    async fn anything_else_is_http1_and_given_back_whole() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        assert_eq!(sniffed(&[&get]).await, (false, get.clone()));
        // Decided at the first byte that differs, whatever follows.
        let near = b"PRI * HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(
            sniffed(&[&near[..3], &near[3..]]).await,
            (false, near.clone())
        );
        // A preface cut short by the end of the stream.
        assert_eq!(
            sniffed(&[&H2_PREFACE[..10]]).await,
            (false, H2_PREFACE[..10].to_vec())
        );
        assert_eq!(sniffed(&[]).await, (false, Vec::new()));
    }

    /// Given back through reads of any size, then the stream's own bytes.
    #[tokio::test]
    async fn small_reads_get_the_sniffed_bytes_in_order() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HTTP/1.1 rest").await.unwrap();
        drop(client);
        let mut io = Rewind::new(server);
        assert!(!io.sniff().await.unwrap());
        let mut got = Vec::new();
        let mut two = [0u8; 2];
        loop {
            let n = io.read(&mut two).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&two[..n]);
        }
        assert_eq!(got, b"PRI * HTTP/1.1 rest");
    }

    /// Writes go to the stream untouched, before and after the sniff.
    #[tokio::test]
    async fn writes_pass_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Rewind::new(server);
        io.write_all(b"early").await.unwrap();
        client.write_all(b"GET").await.unwrap();
        assert!(!io.sniff().await.unwrap());
        io.write_all(b" late").await.unwrap();
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"early late");
    }
}
