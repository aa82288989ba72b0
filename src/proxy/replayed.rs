//! A streamed answer's body whose first frames esgate read before sending it (to judge the
//! failures it reports, `failures`, or to find its end): those frames again, then the rest.
//!
//! An answer of no stated length (`Transfer-Encoding: chunked`: Elasticsearch 8's search
//! answers, and a compressed answer from Elasticsearch or nginx) ends with a last chunk that
//! hyper's client connection decodes in its own task, and only once the chunk before was taken
//! from it. Handed to hyper's server as it came, such an answer went out in two writes even
//! when all of it had arrived in one read: the head with the first chunk, then, after that
//! task had run, the last chunk (five bytes, a `writev` and a TCP segment of their own, which
//! may wake the client once more; nginx with `proxy_buffering off` writes it apart too).
//! [`Replayed::ending`] lets the tasks woken so far run first (the request's task queued behind
//! them: no system call, no look at the I/O driver) and takes the end if it came with the
//! first chunk, so hyper writes the answer and its last chunk at once. Nothing waits for an
//! end that is not there: a frame that has not arrived is left for hyper to read as before.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};
use crate::upstream::AnswerBody;

/// An answer body whose first frames were read: those frames again, then the rest.
pub(super) struct Replayed {
    /// The one frame read before (no queue to allocate for it).
    first: Option<Frame<Bytes>>,
    held: VecDeque<Frame<Bytes>>,
    /// Reading the rest failed after the frames held: the error, given after them.
    failed: Option<BoxError>,
    /// The rest ended (read by [`Replayed::ending`]).
    ended: bool,
    rest: AnswerBody,
}

impl Replayed {
    pub(super) fn new(
        first: Option<Frame<Bytes>>,
        held: VecDeque<Frame<Bytes>>,
        rest: AnswerBody,
    ) -> Replayed {
        Replayed {
            first,
            held,
            failed: None,
            ended: false,
            rest,
        }
    }

    /// A streamed answer's body as hyper's server takes it: of no stated length, with the
    /// frame it came with and its end when that came too ([`Replayed::ending`]); otherwise as
    /// it is (its length says where it ends, or nothing of it is there yet).
    /// (Callers look at [`unbounded`] first: an answer of stated length is boxed as it is,
    /// without this future.)
    pub(super) async fn streamed(mut body: AnswerBody) -> Body {
        let Some(frame) = futures_util::FutureExt::now_or_never(body.frame()) else {
            return body.boxed();
        };
        let mut replayed = Replayed::new(None, VecDeque::new(), body);
        replayed.push(frame);
        replayed.ending().await;
        replayed.boxed()
    }

    /// When the rest has no stated length and frames are held: lets the tasks woken so far run
    /// (hyper's client connection, woken when the last frame was taken), then takes the rest's
    /// next frame or its end if it is there.
    pub(super) async fn ending(&mut self) {
        let holds = self.first.is_some() || !self.held.is_empty();
        if !holds || self.ended || self.failed.is_some() || !unbounded(&self.rest) {
            return;
        }
        behind_woken().await;
        if let Some(frame) = futures_util::FutureExt::now_or_never(self.rest.frame()) {
            self.push(frame);
        }
    }

    /// A frame of the rest, read before the body is sent.
    fn push(&mut self, frame: Option<Result<Frame<Bytes>, BoxError>>) {
        match frame {
            None => self.ended = true,
            Some(Err(e)) => self.failed = Some(e),
            Some(Ok(frame)) if self.first.is_none() && self.held.is_empty() => {
                self.first = Some(frame);
            }
            Some(Ok(frame)) => self.held.push_back(frame),
        }
    }
}

/// Whether `body` may go on past what is there: not ended, and of no stated length.
pub(super) fn unbounded(body: &AnswerBody) -> bool {
    !body.is_end_stream() && body.size_hint().exact().is_none()
}

/// Resolves on its second poll, the task having woken itself on the first: on a current-thread
/// runtime the task goes to the back of the run queue, behind the tasks woken before it.
/// (`tokio::task::yield_now` defers the wake until the runtime has looked at its I/O driver:
/// an `epoll_wait` when nothing else is queued.)
async fn behind_woken() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

impl HttpBody for Replayed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.first.take().or_else(|| self.held.pop_front()) {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none()
            && self.held.is_empty()
            && self.failed.is_none()
            && (self.ended || self.rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let held: u64 = self
            .first
            .iter()
            .chain(self.held.iter())
            .filter_map(Frame::data_ref)
            .map(|d| d.len() as u64)
            .sum();
        // An ended rest keeps its hint (no stated length): the client gets the answer framed
        // as the backend's was, chunked, not with a `Content-Length` hyper would take from an
        // exact hint.
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + held);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An answer from a backend at the far end of an in-memory pipe: `sent` is what the backend
    /// writes at once (after the request), `later` what it writes after the answer's head was
    /// taken, as a backend whose next bytes come in a later read. The client connection runs in
    /// a task of its own, as `upstream::pool`'s do.
    async fn answer(sent: &'static [u8], later: Option<&'static [u8]>) -> AnswerBody {
        let (client, mut backend) = tokio::io::duplex(64 * 1024);
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = backend.read(&mut request).await;
            backend.write_all(sent).await.unwrap();
            if let Some(later) = later {
                tokio::time::sleep(Duration::from_millis(50)).await;
                backend.write_all(later).await.unwrap();
            }
            // Kept open: the end of an answer is its framing's, not the pipe's.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let request = http::Request::get("/logs/_search")
            .header(http::header::HOST, "backend")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = tx.send_request(request).await.unwrap();
        AnswerBody::idle_bounded(response.into_body(), Duration::from_secs(5))
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

    /// The frame there now, polled once (as hyper's server does), and whether the body said it
    /// ended with it.
    async fn first_frame(body: &mut Body) -> (Bytes, bool) {
        let frame = futures_util::FutureExt::now_or_never(body.frame())
            .expect("a frame there at once")
            .expect("a frame")
            .expect("not an error");
        (frame.into_data().unwrap(), body.is_end_stream())
    }

    /// A chunked answer that came whole ends with its first chunk: hyper's server writes the
    /// chunk and the last one together. Without `ending`'s turn behind the client connection's
    /// task, the end was not known until that task had run, after the chunk went out alone.
    #[tokio::test]
    async fn a_chunked_answer_that_came_whole_ends_with_its_first_chunk() {
        let mut whole = [CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"].concat();
        let body = answer(whole.leak(), None).await;
        let mut body = Replayed::streamed(body).await;
        assert_eq!(first_frame(&mut body).await, (Bytes::from("hello"), true));
        assert!(body.frame().await.is_none());

        // The same through `failures::at_once`'s path: its first frame read, then `ending`.
        whole = [CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"].concat();
        let mut rest = answer(whole.leak(), None).await;
        let first = futures_util::FutureExt::now_or_never(rest.frame())
            .unwrap()
            .unwrap()
            .unwrap();
        let mut replayed = Replayed::new(Some(first), VecDeque::new(), rest);
        replayed.ending().await;
        let mut body = replayed.boxed();
        assert_eq!(first_frame(&mut body).await, (Bytes::from("hello"), true));
    }

    /// Nothing waits for an end that is not there: the first chunk goes out, the rest follows
    /// when it comes, all of it, in order.
    #[tokio::test]
    async fn a_chunked_answer_whose_end_comes_later_streams_as_it_comes() {
        let first = [CHUNKED, b"5\r\nhello\r\n"].concat();
        let body = answer(first.leak(), Some(b"6\r\n world\r\n0\r\n\r\n")).await;
        let started = std::time::Instant::now();
        let mut body = Replayed::streamed(body).await;
        assert_eq!(first_frame(&mut body).await, (Bytes::from("hello"), false));
        assert!(started.elapsed() < Duration::from_millis(50), "it waited");
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b" world");

        // Two chunks there at once, the end later: both, then the end.
        let first = [CHUNKED, b"1\r\na\r\n1\r\nb\r\n"].concat();
        let body = answer(first.leak(), Some(b"1\r\nc\r\n0\r\n\r\n")).await;
        let body = Replayed::streamed(body).await;
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abc");
    }

    /// An answer of stated length is left as it is (its length says where it ends: the callers
    /// box it without `streamed`), and a chunked
    /// one whose encoding breaks after its first chunk gives that chunk, then the error.
    #[tokio::test]
    async fn answers_of_stated_length_and_broken_ones_keep_their_course() {
        let body = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", None).await;
        assert!(!unbounded(&body));
        let mut body = body.boxed();
        assert_eq!(first_frame(&mut body).await, (Bytes::from("hello"), true));

        let broken = [CHUNKED, b"5\r\nhello\r\nzz\r\n"].concat();
        let body = answer(broken.leak(), None).await;
        let mut body = Replayed::streamed(body).await;
        assert_eq!(first_frame(&mut body).await.0, Bytes::from("hello"));
        assert!(!body.is_end_stream());
        assert!(body.frame().await.expect("a frame").is_err());
    }
}
