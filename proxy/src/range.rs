//! Conditional requests and single byte ranges, answered from a cached whole object.

use http::HeaderMap;

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No range, a multi-range or an unparsable one: serve the whole body (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// Nothing satisfiable (416).
    Unsatisfiable,
}

/// Interprets one `Range` header value against a body of `len` bytes.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part { start: len.saturating_sub(n), end: len - 1 },
            None => RangeAnswer::Whole,
        },
        (a, "") => match num(a) {
            Some(s) if s < len => RangeAnswer::Part { start: s, end: len - 1 },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Whole,
        },
        (a, b) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s > e => RangeAnswer::Whole,
            (Some(s), Some(_)) if s >= len => RangeAnswer::Unsatisfiable,
            (Some(s), Some(e)) => RangeAnswer::Part { start: s, end: e.min(len - 1) },
            _ => RangeAnswer::Whole,
        },
    }
}

/// Whether the client's validators match the cached `ETag` / `Last-Modified`, so it gets 304.
/// `If-None-Match` wins when present (weak comparison); `If-Modified-Since` must equal the
/// cached `Last-Modified` exactly (nginx's default `if_modified_since exact`).
pub fn not_modified(req: &HeaderMap, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let inm: Vec<&str> = req
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !inm.is_empty() {
        let weak = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_string();
        return match etag {
            Some(e) => inm.iter().any(|t| *t == "*" || weak(t) == weak(e)),
            None => inm.contains(&"*"),
        };
    }
    match (req.get(http::header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()), last_modified) {
        (Some(ims), Some(lm)) => ims.trim() == lm.trim(),
        _ => false,
    }
}

/// Whether an `If-Range` validator (if any) still matches, so the range may be honoured.
pub fn if_range_holds(req: &HeaderMap, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    match req.get(http::header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) if v.starts_with('"') => etag == Some(v.trim()),
        Some(v) => last_modified == Some(v.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use RangeAnswer::*;

    #[test]
    fn ranges_table() {
        let cases = [
            (None, 10, Whole),
            (Some("bytes=0-4"), 10, Part { start: 0, end: 4 }),
            (Some("bytes=5-"), 10, Part { start: 5, end: 9 }),
            (Some("bytes=-3"), 10, Part { start: 7, end: 9 }),
            (Some("bytes=-30"), 10, Part { start: 0, end: 9 }),
            (Some("bytes=8-100"), 10, Part { start: 8, end: 9 }),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-12"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-1,3-4"), 10, Whole),
            (Some("bytes=4-2"), 10, Whole),
            (Some("items=0-1"), 10, Whole),
            (Some("bytes=x-1"), 10, Whole),
            (Some("bytes=0-"), 0, Unsatisfiable),
        ];
        for (v, len, want) in cases {
            assert_eq!(parse_range(v, len), want, "{v:?}");
        }
    }

    #[test]
    fn conditionals() {
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, Some("\"a\""), None));
        h.insert("if-none-match", HeaderValue::from_static("\"x\", W/\"a\""));
        assert!(not_modified(&h, Some("\"a\""), None));
        assert!(!not_modified(&h, Some("\"b\""), None));
        let mut h = HeaderMap::new();
        h.insert("if-modified-since", HeaderValue::from_static("Sun, 01 Nov 2026 00:00:00 GMT"));
        assert!(not_modified(&h, None, Some("Sun, 01 Nov 2026 00:00:00 GMT")));
        assert!(!not_modified(&h, None, Some("Mon, 02 Nov 2026 00:00:00 GMT")));
        h.insert("if-range", HeaderValue::from_static("\"a\""));
        assert!(if_range_holds(&h, Some("\"a\""), None));
        assert!(!if_range_holds(&h, Some("\"b\""), None));
    }
}
