//! File bodies: `Range` parsing and the streamed body with throttling, cuts and corruption.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

/// Piece size of unthrottled bodies.
const PIECE: u64 = 64 * 1024;
/// Largest piece of a throttled body.
const THROTTLED_PIECE: u64 = 16 * 1024;

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// No (usable) `Range` header: the whole file, `200`.
    Full,
    /// `start..end` (end exclusive), `206`.
    Partial { start: u64, end: u64 },
    /// `416`.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n`. Headers that are not a single byte range are ignored
/// (RFC 9110 lets a server ignore `Range`), which gives the whole file.
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Full;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        // bytes=-n: the last n bytes
        (true, false) => match parse(last) {
            Some(0) => return ByteRange::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size),
            None => return ByteRange::Full,
        },
        (false, true) => match parse(first) {
            Some(a) => (a, size),
            None => return ByteRange::Full,
        },
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => (a, b.saturating_add(1).min(size)),
            _ => return ByteRange::Full,
        },
        (true, true) => return ByteRange::Full,
    };
    if start >= size {
        ByteRange::Unsatisfiable
    } else {
        ByteRange::Partial { start, end }
    }
}

/// How to send `content[start..end]`.
pub(crate) struct BodyPlan {
    pub content: Bytes,
    pub start: u64,
    pub end: u64,
    /// Cut the connection after this many body bytes.
    pub cut_after: Option<u64>,
    /// Flip the byte at this file offset.
    pub corrupt_at: Option<u64>,
    /// Bytes per second for this response.
    pub bandwidth: Option<u64>,
    /// Counts the bytes handed to the connection.
    pub sent: Arc<AtomicU64>,
}

struct Streaming {
    plan: BodyPlan,
    pos: u64,
    piece: u64,
    began: Instant,
    finished: bool,
}

impl BodyPlan {
    /// A body that yields the planned bytes in pieces and, for a cut, ends with an I/O error so the
    /// server aborts the connection instead of finishing the response.
    pub fn into_body(self) -> Body {
        let piece = match self.bandwidth {
            Some(bps) => (bps / 10).clamp(1, THROTTLED_PIECE),
            None => PIECE,
        };
        let state = Streaming {
            pos: self.start,
            plan: self,
            piece,
            began: Instant::now(),
            finished: false,
        };
        Body::from_stream(futures::stream::unfold(state, next_piece))
    }
}

async fn next_piece(mut st: Streaming) -> Option<(io::Result<Bytes>, Streaming)> {
    if st.finished || st.pos >= st.plan.end {
        return None;
    }
    let sent = st.pos - st.plan.start;
    let mut n = st.piece.min(st.plan.end - st.pos);
    if let Some(cut) = st.plan.cut_after {
        if sent >= cut {
            st.finished = true;
            // Let the server flush what was sent before it aborts the connection; otherwise hyper drops its
            // write buffer and the client sees nothing of the body (not what a real cut connection does).
            tokio::time::sleep(Duration::from_millis(50)).await;
            let err = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "hubsim: injected body cut",
            );
            return Some((Err(err), st));
        }
        n = n.min(cut - sent);
    }
    if let Some(bps) = st.plan.bandwidth.filter(|b| *b > 0) {
        // Pace against the response's start, so sleep granularity does not add up.
        let due = st.began + Duration::from_secs_f64((sent + n) as f64 / bps as f64);
        tokio::time::sleep_until(due).await;
    }
    let (from, to) = (st.pos as usize, (st.pos + n) as usize);
    let mut piece = st.plan.content.slice(from..to);
    if let Some(offset) = st
        .plan
        .corrupt_at
        .filter(|o| (st.pos..st.pos + n).contains(o))
    {
        let mut changed = BytesMut::from(&piece[..]);
        changed[(offset - st.pos) as usize] ^= 0xff;
        piece = changed.freeze();
    }
    st.pos += n;
    st.plan.sent.fetch_add(n, Ordering::Relaxed);
    Some((Ok(piece), st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=2-4"), 10),
            Partial { start: 2, end: 5 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-"), 10),
            Partial { start: 2, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-100"), 10),
            Partial { start: 2, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Partial { start: 7, end: 10 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
    }
}
