//! Progress bars on a terminal (indicatif); nothing when stderr is not one or with --quiet.

use crate::image::Progress;
use crate::model::LayerId;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Bar {
    bar: ProgressBar,
    layers: AtomicUsize,
    done: AtomicUsize,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar {
            bar,
            layers: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    fn show_layers(&self) {
        let done = self.done.load(Ordering::Relaxed);
        self.bar.set_message(format!(
            "layer {done}/{}",
            self.layers.load(Ordering::Relaxed)
        ));
    }
}

impl Progress for Bar {
    fn start(&self, layers: usize, bytes: u64) {
        self.layers.store(layers, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.show_layers();
    }
    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }
    fn layer_done(&self, _index: usize, _layer: &LayerId, _reused: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.show_layers();
    }
    fn message(&self, text: &str) {
        if self.bar.is_hidden() {
            tracing::info!("{text}");
        } else {
            self.bar.set_message(text.to_string());
        }
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
