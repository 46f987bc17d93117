//! A `tracing` subscriber for tests that records the events emitted on the
//! current thread (level and fields as text), so a test can count log lines.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// One recorded event: its level and `name=value` fields (message included).
#[derive(Debug, Clone)]
pub struct Line {
    pub level: Level,
    pub fields: String,
}

impl Line {
    /// The value of field `name` as recorded (Debug format), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.split('\t').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

#[derive(Default)]
struct Recorder {
    lines: Arc<Mutex<Vec<Line>>>,
}

struct FieldText(String);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if !self.0.is_empty() {
            self.0.push('\t');
        }
        self.0.push_str(&format!("{}={value:?}", field.name()));
    }
}

impl Subscriber for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = FieldText(String::new());
        event.record(&mut text);
        let line = Line {
            level: *event.metadata().level(),
            fields: text.0,
        };
        self.lines.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `f` with every event emitted on this thread recorded; returns
/// `f`'s result and the events.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Line>) {
    let recorder = Recorder::default();
    let lines = recorder.lines.clone();
    let result = tracing::subscriber::with_default(recorder, f);
    let lines = lines.lock().unwrap().clone();
    (result, lines)
}
