//! Tracing: the W3C trace context carried in message properties ([`TraceContext`], the
//! `traceparent` and `tracestate` properties the Java client's OpenTelemetry support reads and
//! writes), and the names shared by the client's `tracing` spans.
//!
//! The spans (`connect`, `lookup`, `send`, `receive`) carry OpenTelemetry's messaging
//! attribute names as fields; they all have the target [`SPAN_TARGET`], so that a filter can
//! turn them on apart from the client's log events (`pulsar_wire::span=debug`). `send` and
//! `receive` are at DEBUG level (one per message), `connect` and `lookup` at INFO.

use std::collections::BTreeMap;
use std::fmt;

/// The target of every span of the client.
pub const SPAN_TARGET: &str = "pulsar_wire::span";

/// The message property holding the W3C `traceparent` (as the Java client's tracing writes it).
pub const TRACEPARENT: &str = "traceparent";

/// The message property holding the W3C `tracestate`, carried with the `traceparent`.
pub const TRACESTATE: &str = "tracestate";

/// A W3C trace context (<https://www.w3.org/TR/trace-context/>): the trace id, the parent span
/// id and the trace flags of a `traceparent`, and the `tracestate` that goes with it.
///
/// Written to a message's properties by producers with trace-context propagation on
/// ([`ProducerBuilder::propagate_trace_context`](crate::ProducerBuilder::propagate_trace_context)),
/// or when set on the message ([`ProducerMessage::trace_context`](crate::ProducerMessage::trace_context));
/// read back with [`Message::trace_context`](crate::Message::trace_context).
///
/// ```
/// use pulsar_wire::TraceContext;
/// let ctx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// assert!(ctx.is_sampled());
/// assert_eq!(ctx.trace_id_hex().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(ctx.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// # Ok::<(), pulsar_wire::InvalidTraceContext>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<String>,
}

/// Why a `traceparent` was refused by [`TraceContext::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceContext {
    /// Not `version-traceid-parentid-flags` with 2, 32, 16 and 2 lowercase hex digits (or, for
    /// a version above 00, more after a `-`).
    #[error("a traceparent is version-traceid-parentid-flags in lowercase hex")]
    Format,
    /// Version `ff`, which W3C forbids.
    #[error("traceparent version ff is invalid")]
    Version,
    /// The trace id is all zeros.
    #[error("the traceparent's trace id is all zeros")]
    ZeroTraceId,
    /// The parent (span) id is all zeros.
    #[error("the traceparent's parent id is all zeros")]
    ZeroSpanId,
}

/// The value of a lowercase hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes of lowercase hex.
fn decode<const N: usize>(hex: &[u8]) -> Result<[u8; N], InvalidTraceContext> {
    if hex.len() != 2 * N {
        return Err(InvalidTraceContext::Format);
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = hex_digit(pair[0]).ok_or(InvalidTraceContext::Format)?;
        let lo = hex_digit(pair[1]).ok_or(InvalidTraceContext::Format)?;
        *byte = hi << 4 | lo;
    }
    Ok(out)
}

/// Bytes as lowercase hex, formatted when displayed (nothing allocated before).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// 64 random bits: std's randomly keyed hasher over a call counter (no clock read, no extra
/// dependency; random enough for trace ids, not for cryptography).
fn random_u64() -> u64 {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
}

impl TraceContext {
    /// The flag of a sampled trace (the caller may have recorded it).
    pub const SAMPLED: u8 = 0x01;

    /// A trace context of these ids and flags; `None` when an id is all zeros (W3C's
    /// invalid ids).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceContext {
            trace_id,
            span_id,
            flags,
            state: None,
        })
    }

    /// A new trace: random trace and span ids, sampled.
    pub fn random() -> Self {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        loop {
            trace_id[..8].copy_from_slice(&random_u64().to_be_bytes());
            trace_id[8..].copy_from_slice(&random_u64().to_be_bytes());
            span_id.copy_from_slice(&random_u64().to_be_bytes());
            if let Some(ctx) = TraceContext::new(trace_id, span_id, Self::SAMPLED) {
                return ctx;
            }
        }
    }

    /// Parses a `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), as
    /// W3C says a receiver does: lowercase hex only; version `ff` and all-zero ids refused; a
    /// version above `00` may have more fields after the flags, which are ignored (and not
    /// written back: the context is written as version `00`).
    pub fn parse(traceparent: &str) -> Result<Self, InvalidTraceContext> {
        let s = traceparent.as_bytes();
        if s.len() < 55 {
            return Err(InvalidTraceContext::Format);
        }
        let version: [u8; 1] = decode(&s[0..2])?;
        if version[0] == 0xff {
            return Err(InvalidTraceContext::Version);
        }
        if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return Err(InvalidTraceContext::Format);
        }
        // Version 00 is exactly 55 characters; a later one may go on after a '-'.
        if s.len() > 55 && (version[0] == 0 || s[55] != b'-') {
            return Err(InvalidTraceContext::Format);
        }
        let trace_id: [u8; 16] = decode(&s[3..35])?;
        let span_id: [u8; 8] = decode(&s[36..52])?;
        let flags: [u8; 1] = decode(&s[53..55])?;
        if trace_id == [0; 16] {
            return Err(InvalidTraceContext::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(InvalidTraceContext::ZeroSpanId);
        }
        Ok(TraceContext {
            trace_id,
            span_id,
            flags: flags[0],
            state: None,
        })
    }

    /// The trace context of a message's properties: its valid `traceparent`, with its
    /// `tracestate` if it has one; `None` without a valid `traceparent`.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Option<Self> {
        let ctx = TraceContext::parse(properties.get(TRACEPARENT)?).ok()?;
        Some(match properties.get(TRACESTATE) {
            Some(state) if !state.is_empty() => ctx.with_state(state.clone()),
            _ => ctx,
        })
    }

    /// With this `tracestate` (vendor data carried beside the `traceparent`, as it is).
    pub fn with_state(mut self, tracestate: impl Into<String>) -> Self {
        let state = tracestate.into();
        self.state = (!state.is_empty()).then_some(state);
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The parent span id: the span of the producer that wrote it.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & Self::SAMPLED != 0
    }

    /// The `tracestate`, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The trace id as 32 lowercase hex digits, formatted when displayed.
    pub fn trace_id_hex(&self) -> impl fmt::Display + '_ {
        Hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits, formatted when displayed.
    pub fn span_id_hex(&self) -> impl fmt::Display + '_ {
        Hex(&self.span_id)
    }

    /// The `traceparent` value (version 00); the same as `to_string()`.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }

    /// Writes this context into message properties: `traceparent`, and `tracestate` when it
    /// has one (a `tracestate` already there is removed when it has none: it went with
    /// another `traceparent`).
    pub(crate) fn write_to(&self, properties: &mut BTreeMap<String, String>) {
        properties.insert(TRACEPARENT.to_owned(), self.traceparent());
        match &self.state {
            Some(state) => {
                properties.insert(TRACESTATE.to_owned(), state.clone());
            }
            None => {
                properties.remove(TRACESTATE);
            }
        }
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` form: `00-<trace id>-<span id>-<flags>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            Hex(&self.trace_id),
            Hex(&self.span_id),
            self.flags
        )
    }
}

impl std::str::FromStr for TraceContext {
    type Err = InvalidTraceContext;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceContext::parse(s)
    }
}

/// Records a trace context's ids on `span` as `trace_id` and `field` (the span id), when the
/// span is enabled.
pub(crate) fn record_ids(span: &tracing::Span, ctx: &TraceContext, span_id_field: &str) {
    span.record("trace_id", tracing::field::display(ctx.trace_id_hex()));
    span.record(span_id_field, tracing::field::display(ctx.span_id_hex()));
}

/// Records a failed operation's error on its span (`error`, and OpenTelemetry's error status).
pub(crate) fn record_error(span: &tracing::Span, error: &crate::error::Error) {
    if !span.is_disabled() {
        span.record("error", tracing::field::display(error));
        span.record("otel.status_code", "ERROR");
    }
}

/// A span's OpenTelemetry name, `<operation> <topic>` (as the Java client names its spans),
/// formatted only when a subscriber records it.
pub(crate) struct OtelName<'a>(pub &'static str, pub &'a str);

impl fmt::Display for OtelName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_a_valid_traceparent() {
        let ctx = TraceContext::parse(VALID).expect("valid");
        assert_eq!(
            ctx.trace_id(),
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            ctx.span_id(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(ctx.flags(), 1);
        assert!(ctx.is_sampled());
        assert_eq!(ctx.state(), None);
        assert_eq!(ctx.to_string(), VALID);
        assert_eq!(ctx.traceparent(), VALID);
        assert_eq!(VALID.parse::<TraceContext>(), Ok(ctx));
        let unsampled =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .expect("valid");
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn refuses_version_ff_and_bad_versions() {
        let ff = VALID.replacen("00", "ff", 1);
        assert_eq!(TraceContext::parse(&ff), Err(InvalidTraceContext::Version));
        let not_hex = VALID.replacen("00", "0g", 1);
        assert_eq!(
            TraceContext::parse(&not_hex),
            Err(InvalidTraceContext::Format)
        );
    }

    #[test]
    fn refuses_all_zero_ids() {
        assert_eq!(
            TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(InvalidTraceContext::ZeroTraceId)
        );
        assert_eq!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Err(InvalidTraceContext::ZeroSpanId)
        );
        assert!(TraceContext::new([0; 16], [1; 8], 1).is_none());
        assert!(TraceContext::new([1; 16], [0; 8], 1).is_none());
        assert!(TraceContext::new([1; 16], [1; 8], 1).is_some());
    }

    #[test]
    fn refuses_wrong_lengths_and_separators() {
        for bad in [
            "",
            "00",
            // Trace id one digit short, parent id one long.
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            // One digit short overall.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            // Version 00 with anything after the flags.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Wrong separators.
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(
                TraceContext::parse(bad),
                Err(InvalidTraceContext::Format),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_uppercase_hex() {
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(
                TraceContext::parse(bad),
                Err(InvalidTraceContext::Format),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_later_version_may_have_more_fields() {
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later";
        let ctx = TraceContext::parse(v1).expect("a later version");
        assert_eq!(ctx.to_string(), VALID, "written back as version 00");
        assert!(TraceContext::parse(&v1[..55]).is_ok(), "exactly 55 is fine");
        assert_eq!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
            Err(InvalidTraceContext::Format),
            "more only after a '-'"
        );
    }

    #[test]
    fn random_contexts_are_valid_sampled_and_distinct() {
        let a = TraceContext::random();
        let b = TraceContext::random();
        assert_ne!(a.trace_id(), b.trace_id());
        assert_ne!(a.span_id(), b.span_id());
        assert!(a.is_sampled());
        assert_eq!(TraceContext::parse(&a.traceparent()), Ok(a.clone()));
        assert_eq!(a.traceparent().len(), 55);
    }

    #[test]
    fn properties_round_trip_with_state() {
        let ctx = TraceContext::parse(VALID)
            .expect("valid")
            .with_state("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        let mut props = BTreeMap::new();
        ctx.write_to(&mut props);
        assert_eq!(props[TRACEPARENT], VALID);
        assert_eq!(props[TRACESTATE], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        assert_eq!(TraceContext::from_properties(&props), Some(ctx));
        // Without a state, a stale tracestate goes.
        TraceContext::random().write_to(&mut props);
        assert!(!props.contains_key(TRACESTATE));
        // An invalid traceparent is no context, never a panic.
        props.insert(TRACEPARENT.into(), "00-xyz".into());
        assert_eq!(TraceContext::from_properties(&props), None);
        props.remove(TRACEPARENT);
        assert_eq!(TraceContext::from_properties(&props), None);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Every prefix and multi-byte characters where the separators go.
        for i in 0..VALID.len() {
            assert!(TraceContext::parse(&VALID[..i]).is_err(), "{i} characters");
        }
        assert!(TraceContext::parse(VALID).is_ok());
        assert!(
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01").is_err()
        );
        assert!(
            TraceContext::parse("ééééééééééééééééééééééééééééééééééééééééééééééééééééééé").is_err()
        );
    }
}
