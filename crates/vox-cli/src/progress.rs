//! Showing provisioning progress: bars on a terminal, JSON lines otherwise (one object per line on stderr, at most
//! one `progress` line per model per second, plus every file and model completion).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use vox_store::{ProgressEvent, ProgressSink};

/// Terminal bars, one per model.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl ProgressSink for Bars {
    fn event(&self, ev: &ProgressEvent) {
        let mut bars = self.bars.lock().expect("bars");
        match ev {
            ProgressEvent::ModelPlanned {
                model,
                bytes_total,
                bytes_missing,
                ..
            } => {
                let pb = self.multi.add(ProgressBar::new(*bytes_total));
                pb.set_style(
                    ProgressStyle::with_template("{prefix:>18} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}")
                        .expect("template")
                        .progress_chars("=> "),
                );
                pb.set_prefix(model.clone());
                pb.set_position(bytes_total - bytes_missing);
                bars.insert(model.clone(), pb);
            }
            ProgressEvent::Bytes { model, bytes, .. } => {
                if let Some(pb) = bars.get(model) {
                    pb.inc(*bytes);
                }
            }
            ProgressEvent::Retry {
                model,
                file,
                attempt,
                ..
            } => {
                if let Some(pb) = bars.get(model) {
                    pb.set_message(format!("retry {attempt} of {file}"));
                }
            }
            ProgressEvent::FileDone { model, file, .. } => {
                if let Some(pb) = bars.get(model) {
                    pb.set_message(file.clone());
                }
            }
            ProgressEvent::ModelDone { model, commit } => {
                if let Some(pb) = bars.get(model) {
                    pb.finish_with_message(format!("ready @ {}", &commit[..12.min(commit.len())]));
                }
            }
        }
    }
}

/// JSON lines for logs and machines.
pub struct JsonLines {
    state: Mutex<HashMap<String, (u64, u64, Instant)>>,
}

impl JsonLines {
    pub fn new() -> Self {
        JsonLines {
            state: Mutex::new(HashMap::new()),
        }
    }

    fn emit(v: serde_json::Value) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{v}");
    }
}

impl ProgressSink for JsonLines {
    fn event(&self, ev: &ProgressEvent) {
        let mut st = self.state.lock().expect("progress state");
        match ev {
            ProgressEvent::ModelPlanned {
                model,
                bytes_total,
                bytes_missing,
                ..
            } => {
                st.insert(
                    model.clone(),
                    (bytes_total - bytes_missing, *bytes_total, Instant::now()),
                );
                Self::emit(serde_json::to_value(ev).expect("event"));
            }
            ProgressEvent::Bytes { model, bytes, .. } => {
                if let Some((done, total, last)) = st.get_mut(model) {
                    *done += bytes;
                    if last.elapsed() >= Duration::from_secs(1) {
                        *last = Instant::now();
                        Self::emit(
                            serde_json::json!({"event": "progress", "model": model, "bytes_done": *done, "bytes_total": *total}),
                        );
                    }
                }
            }
            _ => Self::emit(serde_json::to_value(ev).expect("event")),
        }
    }
}
