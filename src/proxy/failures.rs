//! Failures reported inside the answers a `read` token gets (review 16): shard failures in a
//! 200 search answer, failed `_msearch` items, a 4xx error body's shard failures. Their reasons
//! describe the node as often as the request (circuit breakers' memory, thread pools' counters,
//! node addresses), the same statistics a backend 429 or 5xx body carries, which a `read`
//! token never sees (`backend_failure`): `es::answers::failures` says which details stay.
//!
//! Cost: an answer of the search family is judged from its beginning (`failures::peek`: the
//! `_shards` header precedes the hits), usually its first frame, and then streams as before;
//! only an answer that reports a failure (or may, as an `_msearch` answer may in any item) is
//! read whole, capped and within the body budget, and rewritten. A 4xx answer is read whole.
//! A compressed answer (the client asked for gzip or deflate, and the backend compressed) is
//! judged from its beginning decoded only as far as judging needs, and streams as it came; one
//! read whole is decoded and sent uncompressed. An `_msearch` answer, always read whole, is
//! asked for uncompressed (`upstream_request::from_permit`, perf23c).

use std::collections::VecDeque;
#[cfg(test)]
use std::io::Read;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Response};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;

use super::replayed::{self, Replayed};
use super::{answer, inflate, ProxyError, MAX_SEALED_RESPONSE};
use crate::app::App;
use crate::body::{Body, BodyBudget, BoxError, ReadError};
use crate::es::answers::failures::{self, Peek};
use crate::upstream::{AnswerBody, UpstreamError};

/// The most of an answer's beginning judged before it is read whole instead.
const PEEK_LIMIT: usize = 64 * 1024;

/// What [`at_once`] decided.
// Returned once per answer and moved once: copying the large variant costs less than the
// allocation a `Box` would add (the point of `at_once`).
#[allow(clippy::large_enum_variant)]
pub(super) enum AtOnce {
    /// The answer: read whole and judged, or streaming (of stated length).
    Sent(Response<Body>),
    /// The answer's head and body of no stated length, its first frame judged clean: it
    /// streams, once [`Replayed::ending`] has looked for its end.
    Streams { headers: HeaderMap, body: Replayed },
    /// The backend's answer broke.
    Broken(ProxyError),
    /// For [`respond`]: the answer's head and body, and the frames already read.
    Judge {
        headers: HeaderMap,
        body: AnswerBody,
        held: VecDeque<Frame<Bytes>>,
    },
}

/// The common cases of [`respond`], without its future: an answer whose first frame, there
/// with its head, shows a header without failures (the hot path allocates no future for this:
/// review 16's count, about 400 instructions a small search; a gzip or deflate one is judged
/// from as much of it decoded as judging needs, perf23c), and a plain answer that reports
/// failures (or may: every `_msearch` answer) and is there whole with its head ([`whole_at_once`]).
/// Anything else goes to [`respond`] with the frames read.
pub(super) fn at_once(
    budget: &BodyBudget,
    status: http::StatusCode,
    headers: HeaderMap,
    mut body: AnswerBody,
    header_first: bool,
) -> AtOnce {
    let encoding = Encoding::of(&headers);
    if !status.is_success() || !header_first || encoding.is_none() {
        return AtOnce::Judge {
            headers,
            body,
            held: VecDeque::new(),
        };
    }
    let first = match futures_util::FutureExt::now_or_never(body.frame()) {
        Some(Some(Ok(frame))) => frame,
        Some(Some(Err(e))) => return AtOnce::Broken(frame_error(&e)),
        // Not there yet, or the end (read again by `respond`, which answers it as it does).
        Some(None) | None => {
            return AtOnce::Judge {
                headers,
                body,
                held: VecDeque::new(),
            }
        }
    };
    let identity = encoding == Some(Encoding::Identity);
    let verdict = first
        .data_ref()
        .map_or(Peek::Undecided, |d| match encoding {
            Some(Encoding::Identity) | None => failures::peek(d, true),
            // A compressed answer's beginning, decoded as far as judging needs (perf23c: it went
            // to `respond`'s future, which decoded up to 64 KiB of it).
            // Judged as the whole answer as `peek` judges the plain one above (a search answer
            // decides on its header, before its end).
            Some(encoding) => encoding.judge_beginning(d, true, false),
        });
    if verdict == Peek::Reports && identity {
        return whole_at_once(budget, status, headers, body, first);
    }
    if verdict != Peek::Clean {
        return AtOnce::Judge {
            headers,
            body,
            held: VecDeque::from([first]),
        };
    }
    // An answer of no stated length may have its end there too (`Replayed::ending`, an await
    // the caller makes); one of stated length goes as it is, its body boxed here.
    if replayed::unbounded(&body) {
        return AtOnce::Streams {
            headers,
            body: Replayed::new(Some(first), VecDeque::new(), body),
        };
    }
    AtOnce::Sent(answer(
        status,
        headers,
        Replayed::new(Some(first), VecDeque::new(), body).boxed(),
    ))
}

/// A plain answer whose first frame `first` reports a failure (or may: an `_msearch` answer),
/// judged without [`respond`]'s future when the rest is there with it (perf22c: a small
/// `_msearch` answer went through the future, a second look at its beginning and a read that
/// waited for the end of a body already whole). The same outcome as [`respond`]'s: the verdict
/// `Reports` stands however much more of the answer is read (`failures::peek` reports on what
/// it saw), so `respond` would read it whole; here the same frames are read, the same room is
/// claimed (at once, or `respond` waits for it), the same judge rewrites them. When the rest
/// is not all there, its frames more than `PEEK_LIMIT` bytes, or the room not free at once,
/// the frames read so far go to [`respond`], which answers as it always did.
fn whole_at_once(
    budget: &BodyBudget,
    status: http::StatusCode,
    headers: HeaderMap,
    mut body: AnswerBody,
    first: Frame<Bytes>,
) -> AtOnce {
    let mut raw = first.data_ref().map_or(0, Bytes::len);
    let mut held = VecDeque::from([first]);
    let judge = |headers, body, held| AtOnce::Judge {
        headers,
        body,
        held,
    };
    // The rest, as far as it is there: `is_end_stream` says a body of a known length ended
    // with its last frame (no poll for its end, which may not be there yet).
    while !body.is_end_stream() {
        if raw > PEEK_LIMIT {
            return judge(headers, body, held);
        }
        match futures_util::FutureExt::now_or_never(body.frame()) {
            Some(None) => break,
            Some(Some(Err(e))) => return AtOnce::Broken(frame_error(&e)),
            Some(Some(Ok(frame))) => {
                raw += frame.data_ref().map_or(0, Bytes::len);
                held.push_back(frame);
            }
            None => return judge(headers, body, held),
        }
    }
    if raw > PEEK_LIMIT {
        return judge(headers, body, held);
    }
    // The room `respond`'s read claims for the answer (it waits for it; refused at once here,
    // the answer goes to `respond`, which does).
    let mut hold = crate::body::BudgetHold::default();
    if budget.try_cover(&mut hold, raw).is_err() {
        return judge(headers, body, held);
    }
    // Copied into one buffer of its own, as `respond`'s read copies it (the frames are slices
    // of the connection's read buffer); frames other than data are dropped, as there.
    let mut bytes = BytesMut::with_capacity(raw);
    held.iter()
        .filter_map(Frame::data_ref)
        .for_each(|d| bytes.extend_from_slice(d));
    drop(held);
    drop(body);
    match judged(headers, bytes.freeze(), hold) {
        Ok((headers, out, hold)) => {
            AtOnce::Sent(answer(status, headers, crate::body::held(out, hold)))
        }
        Err(e) => AtOnce::Broken(e),
    }
}

/// What an answer's frame that failed to arrive is (as the whole read maps it): a body that
/// stalled past its idle timeout a timeout, anything else a broken answer.
fn frame_error(e: &BoxError) -> ProxyError {
    ProxyError::Upstream(if e.is::<crate::body::Stalled>() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Broken
    })
}

/// A whole identity-encoded answer through the failures judge: its failures reduced (and its
/// `Content-Length` dropped) or it as it came; refused when it cannot be judged.
fn judged(
    mut headers: HeaderMap,
    decoded: Bytes,
    mut hold: crate::body::BudgetHold,
) -> Result<(HeaderMap, Bytes, crate::body::BudgetHold), ProxyError> {
    let withheld = failures::withhold_whole(&decoded).map_err(|e| {
        ProxyError::Upstream(match e {
            failures::Unjudged::CutShort => UpstreamError::Broken,
            failures::Unjudged::Malformed => UpstreamError::Unexpected,
        })
    })?;
    let out = match withheld {
        Some(rewritten) => {
            headers.remove(header::CONTENT_LENGTH);
            Bytes::from(rewritten)
        }
        None => decoded,
    };
    hold.keep(out.len());
    Ok((headers, out, hold))
}

/// The answer to a `read` token's request whose answer esgate would stream, of the search family
/// (`header_first` as `failures::peek` takes it) or a client error (4xx, read whole): sent as
/// it came unless it reports a failure. `held`: the frames [`at_once`] already read.
pub(super) async fn respond(
    app: &App,
    status: http::StatusCode,
    headers: HeaderMap,
    mut body: AnswerBody,
    header_first: bool,
    mut held: VecDeque<Frame<Bytes>>,
) -> Result<Response<Body>, ProxyError> {
    // Nothing esgate can read: its failures cannot be judged.
    let encoding = Encoding::of(&headers).ok_or(ProxyError::Upstream(UpstreamError::Broken))?;
    let mut raw: usize = held
        .iter()
        .filter_map(Frame::data_ref)
        .map(Bytes::len)
        .sum();
    let whole = if status.is_client_error() {
        true
    } else {
        // One deadline for the whole beginning: a backend dripping it cannot hold the answer
        // for a timeout per frame.
        // (Taken only once a frame keeps it waiting: the answer usually comes with its head.)
        let mut deadline = None;
        let mut verdict = Peek::Undecided;
        while verdict == Peek::Undecided && raw <= PEEK_LIMIT {
            let frame = match futures_util::FutureExt::now_or_never(body.frame()) {
                Some(frame) => frame,
                None => {
                    let deadline = *deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + app.config.backend.answer_timeout
                    });
                    tokio::time::timeout_at(deadline, body.frame())
                        .await
                        .map_err(|_| ProxyError::Upstream(UpstreamError::Timeout))?
                }
            };
            match frame {
                None => {
                    verdict = encoding.judge_beginning(&joined(&held), header_first, false);
                    // The whole answer is held: still undecided, it is blank or cut short, and
                    // its whole read below says which (review 16e: sent as it came, a failure
                    // it was cut inside went out unjudged).
                    break;
                }
                Some(Err(e)) => return Err(frame_error(&e)),
                Some(Ok(frame)) => {
                    let is_data = frame.is_data();
                    raw += frame.data_ref().map_or(0, Bytes::len);
                    held.push_back(frame);
                    if is_data {
                        verdict = encoding.judge_beginning(&joined(&held), header_first, true);
                    }
                }
            }
        }
        verdict != Peek::Clean
    };
    if !whole {
        let mut body = Replayed::new(None, held, body);
        body.ending().await;
        return Ok(answer(status, headers, body.boxed()));
    }
    let read = crate::body::read_answer_budgeted(
        Replayed::new(None, held, body),
        MAX_SEALED_RESPONSE,
        &app.body_budget,
        app.config.limits.buffered_wait,
    );
    let (bytes, hold) = match tokio::time::timeout(app.config.backend.answer_timeout, read).await {
        Err(_) => return Err(ProxyError::Upstream(UpstreamError::Timeout)),
        Ok(read) => read.map_err(|e| match e {
            ReadError::Busy => ProxyError::Busy,
            ReadError::Stalled => ProxyError::Upstream(UpstreamError::Timeout),
            ReadError::TooLarge | ReadError::Broken => ProxyError::Upstream(UpstreamError::Broken),
        })?,
    };
    let decoded = match encoding {
        Encoding::Identity => bytes,
        _ => Bytes::from(
            encoding
                .decode(&bytes, MAX_SEALED_RESPONSE)
                .ok_or(ProxyError::Upstream(UpstreamError::Broken))?,
        ),
    };
    let (mut headers, out, hold) = judged(headers, decoded, hold)?;
    if encoding != Encoding::Identity {
        headers.remove(header::CONTENT_ENCODING);
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(answer(status, headers, crate::body::held(out, hold)))
}

/// How an answer's bytes are encoded (what esgate forwards of a client's `Accept-Encoding`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// The first step of a compressed answer's judged beginning: a search answer's `_shards`
/// header lies in its first hundred bytes.
const FIRST_STEP: usize = 1024;

impl Encoding {
    /// An answer's encoding as its head says, `None` for one esgate cannot decode.
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
            None | Some(b"identity") => Some(Encoding::Identity),
            Some(b"gzip") => Some(Encoding::Gzip),
            Some(b"deflate") => Some(Encoding::Deflate),
            Some(_) => None,
        }
    }

    /// `failures::peek` on the beginning of an answer (`raw`, the frames held so far), decoded
    /// as far as it goes, at most `PEEK_LIMIT` bytes. A compressed one is decoded in steps (1 KiB,
    /// then four times as much) until a step's beginning decides (`failures::peek_beginning`,
    /// whose verdicts are `peek`'s on every longer beginning): the same verdict as `peek` on
    /// all of it (perf23c). The decoder ([`inflate`], this thread's) decodes a step and no more,
    /// and is not made for each answer (perf24d: flate2's cost about 97k instructions to make,
    /// and filled their 32 KiB window whatever was asked).
    ///
    /// `goes_on`: more of the answer may follow `raw` (its end not read yet): an object closed
    /// exactly at the end of what is held is then undecided ([`failures::peek_beginning`]), not
    /// clean, so the next frame is read before anything streams (perf23c's finding, L: on a
    /// route that writes its failures last, a frame ending where an object closed let the
    /// rest stream unjudged).
    fn judge_beginning(self, raw: &[u8], header_first: bool, goes_on: bool) -> Peek {
        let judge = if goes_on {
            failures::peek_beginning
        } else {
            failures::peek
        };
        let Some(format) = self.format() else {
            return judge(raw, header_first);
        };
        let mut out = Vec::new();
        inflate::inflating(format, raw, |decoder| {
            let mut step = FIRST_STEP;
            loop {
                // A stream cut short or corrupt is refused: what was decoded before that is the
                // prefix.
                let filled = decoder.fill(&mut out, step);
                if filled != inflate::Filled::Full || step == PEEK_LIMIT {
                    return judge(&out, header_first);
                }
                let verdict = failures::peek_beginning(&out, header_first);
                if verdict != Peek::Undecided {
                    return verdict;
                }
                step = (step * 4).min(PEEK_LIMIT);
            }
        })
    }

    /// The compressed format, `None` for identity.
    fn format(self) -> Option<inflate::Format> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some(inflate::Format::Gzip),
            Encoding::Deflate => Some(inflate::Format::Zlib),
        }
    }

    /// The beginning of the answer the held frames carry, decoded as far as they go (at most
    /// `PEEK_LIMIT` bytes).
    #[cfg(test)]
    fn decoded_prefix(self, held: &VecDeque<Frame<Bytes>>) -> Bytes {
        let raw = joined(held);
        if self == Encoding::Identity {
            return raw;
        }
        let mut out = Vec::new();
        let _ = self
            .reader(&raw)
            .take(PEEK_LIMIT as u64)
            .read_to_end(&mut out);
        Bytes::from(out)
    }

    /// `raw` decoded whole, at most `limit` bytes; `None` when it is not a whole, sound stream.
    fn decode(self, raw: &[u8], limit: usize) -> Option<Vec<u8>> {
        match self.format() {
            Some(format) => inflate::whole(format, raw, limit),
            None => (raw.len() <= limit).then(|| raw.to_vec()),
        }
    }

    /// flate2's decoder of `raw`, which esgate used before perf24d: the tests' reference.
    #[cfg(test)]
    fn reader<'a>(self, raw: &'a [u8]) -> Box<dyn Read + 'a> {
        match self {
            Encoding::Identity => Box::new(raw),
            Encoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
            Encoding::Deflate => Box::new(flate2::bufread::ZlibDecoder::new(raw)),
        }
    }
}

/// The held frames' data in one piece (the one frame's without a copy).
fn joined(held: &VecDeque<Frame<Bytes>>) -> Bytes {
    let mut data = held.iter().filter_map(Frame::data_ref);
    if held.len() == 1 {
        return data.next().cloned().unwrap_or_default();
    }
    let mut all = BytesMut::new();
    data.for_each(|d| all.extend_from_slice(d));
    all.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn frames(chunks: &[&[u8]]) -> VecDeque<Frame<Bytes>> {
        chunks
            .iter()
            .map(|c| Frame::data(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[test]
    fn compressed_answers_are_judged_from_their_decoded_beginning() {
        let answer = br#"{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"hits":[]}}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(answer).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zl.write_all(answer).unwrap();
        let zl = zl.finish().unwrap();
        for (encoding, raw) in [(Encoding::Gzip, &gz), (Encoding::Deflate, &zl)] {
            // Whole, and split in two frames.
            let (a, b) = raw.split_at(raw.len() / 2);
            assert_eq!(&encoding.decoded_prefix(&frames(&[a, b]))[..], &answer[..]);
            // A beginning decodes as far as it goes, never fails.
            let cut = encoding.decoded_prefix(&frames(&[&raw[..raw.len() - 12]]));
            assert!(answer.starts_with(&cut));
            assert_eq!(encoding.decode(raw, 1 << 20).as_deref(), Some(&answer[..]));
            // A truncated stream or one decoding past the limit is refused.
            assert_eq!(encoding.decode(&raw[..raw.len() - 4], 1 << 20), None);
            assert_eq!(encoding.decode(raw, 10), None);
        }
        let split = frames(&[&answer[..10], &answer[10..]]);
        assert_eq!(&Encoding::Identity.decoded_prefix(&split)[..], &answer[..]);
    }

    fn compressed(encoding: Encoding, text: &[u8]) -> Vec<u8> {
        match encoding {
            Encoding::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(text).unwrap();
                gz.finish().unwrap()
            }
            Encoding::Deflate => {
                let mut zl =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                zl.write_all(text).unwrap();
                zl.finish().unwrap()
            }
            Encoding::Identity => text.to_vec(),
        }
    }

    /// perf23c: a compressed beginning judged from steps of its decoding gets the verdict
    /// `failures::peek` gives on all of it decoded (at most `PEEK_LIMIT` bytes), whatever
    /// frames it came in and wherever they were cut: a search answer with hits (decided by its
    /// header), one reporting failures, EQL's (failures last), an answer whose object closes at
    /// the end of the first step with bytes after it, and ones longer than `PEEK_LIMIT`.
    #[test]
    fn a_compressed_beginning_is_judged_as_all_of_it_decoded() {
        let hit = r#"{"_index":"logs-a","_id":"1","_source":{"message":"a line of text"}},"#;
        let hits = |n: usize| hit.repeat(n);
        let header = r#"{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"#;
        let search = |n: usize| format!(r#"{header}"hits":{{"hits":[{}{{}}]}}}}"#, hits(n));
        let failing = format!(
            r#"{{"took":1,"_shards":{{"total":2,"failed":1,"failures":[{{"reason":{{"type":"circuit_breaking_exception","reason":"x"}}}}]}},"hits":{{"hits":[{}{{}}]}}}}"#,
            hits(50)
        );
        let eql = |n: usize| {
            format!(
                r#"{{"took":1,"hits":{{"events":[{}{{}}]}},"shard_failures":[{{"reason":{{"type":"x","reason":"y"}}}}]}}"#,
                hits(n)
            )
        };
        // An object closed exactly at the first step's end, then more: reports (attack17d).
        let mut closed = r#"{"took":1,"pad":""#.to_string();
        closed.push_str(&"x".repeat(FIRST_STEP - closed.len() - 2));
        closed.push_str(r#""}"#);
        assert_eq!(closed.len(), FIRST_STEP);
        closed.push_str(r#","shard_failures":[{"reason":{"type":"x"}}]}"#);
        let answers = [
            search(0),
            search(3),
            search(2000),
            failing,
            eql(2),
            eql(2000),
            closed,
            r#"{"took":1,"responses":[{"took":1}]}"#.to_string(),
            "<html>bad gateway</html>".to_string(),
        ];
        for answer in &answers {
            for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Identity] {
                let raw = compressed(encoding, answer.as_bytes());
                let len = raw.len();
                let cuts = [1, 10, len / 3, len / 2, len - 1, len];
                for header_first in [true, false] {
                    for &cut in &cuts {
                        let held = frames(&[&raw[..cut.min(len)]]);
                        let want = failures::peek(&encoding.decoded_prefix(&held), header_first);
                        let got = encoding.judge_beginning(&joined(&held), header_first, false);
                        assert_eq!(got, want, "{:?} {cut}", &answer[..40.min(answer.len())]);
                        // More may follow: undecided, or what all of it decoded says.
                        let going = encoding.judge_beginning(&joined(&held), header_first, true);
                        assert!(
                            going == Peek::Undecided || going == want,
                            "{:?} {cut} {going:?}",
                            &answer[..40.min(answer.len())]
                        );
                    }
                    let (a, b) = raw.split_at(len / 2);
                    let held = frames(&[a, b]);
                    assert_eq!(
                        encoding.judge_beginning(&joined(&held), header_first, false),
                        failures::peek(&encoding.decoded_prefix(&held), header_first)
                    );
                }
            }
        }
        // The closed-early answer is not judged clean from its first step.
        let raw = compressed(Encoding::Gzip, answers[6].as_bytes());
        assert_eq!(
            Encoding::Gzip.judge_beginning(&raw, false, false),
            Peek::Reports
        );
        // Its first step alone, an object closed at its end: clean as the whole answer, not
        // while more may follow (the frames' loop in `respond` reads on).
        let step = &answers[6].as_bytes()[..FIRST_STEP];
        for encoding in [Encoding::Gzip, Encoding::Deflate, Encoding::Identity] {
            let raw = compressed(encoding, step);
            assert_eq!(encoding.judge_beginning(&raw, false, false), Peek::Clean);
            assert_eq!(encoding.judge_beginning(&raw, false, true), Peek::Undecided);
        }
    }
}
