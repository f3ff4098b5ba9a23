//! W3C trace context (`traceparent` and `tracestate`), validated, for
//! propagating the current trace to the PDP and for audit annotations.
//!
//! The PDP traces requests itself: with the caller's `traceparent` in the
//! gRPC metadata, its spans join the caller's trace, so one trace spans
//! app → PDP. [`ClientBuilder::trace_context`](crate::ClientBuilder::trace_context)
//! takes a provider of the current [`TraceContext`]; the tower layer can
//! also forward an incoming request's headers. A value that is not a valid
//! `traceparent` is never sent.

use std::fmt;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` forwarded (the W3C limit a vendor must
/// propagate is 512 characters).
const MAX_TRACESTATE: usize = 512;
/// The most list members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A validated W3C trace context: a `traceparent` and, optionally, its
/// `tracestate`.
///
/// ```
/// use cerbos_client::TraceContext;
///
/// let context = TraceContext::parse(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///     Some("congo=t61rcWkgMzE"),
/// )
/// .unwrap();
/// assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(context.is_sampled());
///
/// // From the ids of the current span (what a tracing-opentelemetry
/// // recipe gives, see `ClientBuilder::trace_context`):
/// let context = TraceContext::new(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true).unwrap();
/// assert_eq!(context.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// // Malformed values are refused, never forwarded.
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None).is_none());
/// assert!(TraceContext::parse("not a traceparent", None).is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// The context of a span: `trace_id` and `span_id` as numbers (the
    /// big-endian value of OpenTelemetry's 16- and 8-byte ids), version
    /// `00`. `None` if either id is zero (invalid in W3C trace context).
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> Option<Self> {
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        let flags = u8::from(sampled);
        Some(TraceContext {
            traceparent: format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}"),
            tracestate: None,
        })
    }

    /// Parses a `traceparent` header value and an optional `tracestate`.
    /// `None` if the `traceparent` is not valid W3C trace context (version
    /// `00` exactly; a later version's first four fields, as the
    /// specification says to read them; never version `ff`, an all-zero
    /// trace or parent id, or upper-case hex). An invalid `tracestate` is
    /// dropped (the specification's rule), the `traceparent` kept.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        if !valid_traceparent(traceparent) {
            return None;
        }
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .filter(|state| valid_tracestate(state))
                .map(str::to_owned),
        })
    }

    /// Adds a `tracestate` (vendor-specific data); an invalid one is
    /// dropped.
    pub fn with_tracestate(mut self, tracestate: &str) -> Self {
        self.tracestate = valid_tracestate(tracestate).then(|| tracestate.to_owned());
        self
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The parent (span) id: 16 lowercase hex digits.
    pub fn parent_id(&self) -> &str {
        &self.traceparent[36..52]
    }

    /// Whether the caller sampled the trace (flag `01`).
    pub fn is_sampled(&self) -> bool {
        u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|flags| flags & 1 == 1)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent)
            .field("tracestate", &self.tracestate)
            .finish()
    }
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_traceparent(value: &str) -> bool {
    // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
    let bytes = value.as_bytes();
    if bytes.len() < 55 || !value.is_char_boundary(55) {
        return false;
    }
    let (version, trace_id, parent_id, flags) =
        (&value[..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
    let fields = lower_hex(version)
        && lower_hex(trace_id)
        && lower_hex(parent_id)
        && lower_hex(flags)
        && version != "ff"
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    let rest = match version {
        // Version 00 has exactly these fields.
        "00" => bytes.len() == 55,
        // A later version may add fields after a dash; read as visible
        // ASCII, within the size a header of ours may have.
        _ => {
            bytes.len() == 55
                || (bytes[55] == b'-'
                    && bytes.len() <= 512
                    && bytes[56..].iter().all(u8::is_ascii_graphic))
        }
    };
    dashes && fields && rest
}

fn valid_tracestate(value: &str) -> bool {
    if value.is_empty() || value.len() > MAX_TRACESTATE {
        return false;
    }
    let mut members = 0;
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            // Empty list members are allowed and not counted.
            continue;
        }
        members += 1;
        let Some((key, val)) = member.split_once('=') else {
            return false;
        };
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'));
        // Printable ASCII except `,` and `=`, no trailing space.
        let val_ok = !val.is_empty()
            && val.len() <= 256
            && !val.ends_with(' ')
            && val
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
        if !key_ok || !val_ok {
            return false;
        }
    }
    (1..=MAX_TRACESTATE_MEMBERS).contains(&members)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparents_are_kept_as_sent() {
        let context = TraceContext::parse(VALID, None).unwrap();
        assert_eq!(context.traceparent(), VALID);
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.parent_id(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceContext::parse(unsampled, None).unwrap().is_sampled());
        // A later version with an extra field.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(
            TraceContext::parse(future, None).unwrap().traceparent(),
            future
        );
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é1",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
        assert!(TraceContext::new(0, 1, true).is_none());
        assert!(TraceContext::new(1, 0, true).is_none());
    }

    #[test]
    fn tracestate_is_validated_and_dropped_when_invalid() {
        let ok = TraceContext::parse(VALID, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        assert_eq!(
            ok.unwrap().tracestate(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        let tenant = TraceContext::parse(VALID, Some("t@vendor=x"));
        assert_eq!(tenant.unwrap().tracestate(), Some("t@vendor=x"));
        let too_long = format!("a={}", "x".repeat(600));
        let members = (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        for bad in [
            "",
            "novalue",
            "UPPER=x",
            "k=v\n",
            "k=a,b",
            &too_long,
            &members.join(","),
        ] {
            let context = TraceContext::parse(VALID, Some(bad)).unwrap();
            assert_eq!(context.tracestate(), None, "{bad:?}");
        }
    }
}
