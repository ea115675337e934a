//! Logging: `tracing` to stdout, as text or JSON lines (`log.format`), with this node's id
//! on every line.
//!
//! The node id is stamped by the formatter rather than carried by a root span, because
//! spawned tasks (hyper's connections, the history writer) do not inherit spans.

use std::fmt;
use synctv_core::config::{LogConfig, LogFormat};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Only the first call in a process takes effect (tests
/// build many applications in one process); later calls are ignored.
pub fn init(log: &LogConfig, node_id: &str) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|e| {
        eprintln!("invalid log.level {:?} ({e}); using info", log.level);
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let result = match log.format {
        LogFormat::Text => builder
            .event_format(WithNodeId::text(tracing_subscriber::fmt::format(), node_id))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .event_format(WithNodeId::json(
                tracing_subscriber::fmt::format()
                    .json()
                    .with_current_span(true),
                node_id,
            ))
            .try_init(),
    };
    // Already set: an earlier application in this process installed one.
    let _ = result;
}

/// Wraps a formatter and adds `node_id` to each line it writes.
struct WithNodeId<F> {
    inner: F,
    json: bool,
    /// Pre-rendered: ` node_id=…` for text, `"node_id":"…",` for JSON.
    stamp: String,
}

impl<F> WithNodeId<F> {
    fn text(inner: F, node_id: &str) -> Self {
        Self {
            inner,
            json: false,
            stamp: format!(" node_id={node_id}"),
        }
    }

    fn json(inner: F, node_id: &str) -> Self {
        let quoted = serde_json::to_string(node_id).unwrap_or_else(|_| "\"?\"".into());
        Self {
            inner,
            json: true,
            stamp: format!("\"node_id\":{quoted},"),
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithNodeId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        if self.json {
            // The inner formatter writes one JSON object: open it, stamp, then the rest.
            match body.strip_prefix('{') {
                Some(rest) => writeln!(writer, "{{{}{rest}", self.stamp),
                None => writeln!(writer, "{body}"),
            }
        } else {
            writeln!(writer, "{body}{}", self.stamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn captured(json: bool) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(out.clone());
        let dispatch: tracing::Dispatch = if json {
            builder
                .json()
                .event_format(WithNodeId::json(
                    tracing_subscriber::fmt::format().json(),
                    "n-1",
                ))
                .into()
        } else {
            builder
                .event_format(WithNodeId::text(tracing_subscriber::fmt::format(), "n-1"))
                .into()
        };
        tracing::dispatcher::with_default(&dispatch, || tracing::info!(answer = 42, "hello"));
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_lines_carry_the_node_id() {
        let line = captured(false);
        assert!(
            line.contains("hello") && line.trim_end().ends_with("node_id=n-1"),
            "{line}"
        );
    }

    #[test]
    fn json_lines_carry_the_node_id() {
        let line = captured(true);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["node_id"], "n-1");
        assert_eq!(value["fields"]["message"], "hello");
    }
}
