//! Progress bars on stderr, shown only when stderr is a terminal.

use std::io::{self, IsTerminal, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte progress bar that is silently a no-op when not on a terminal.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar that never draws.
    pub fn hidden() -> Self {
        Progress(None)
    }

    /// A byte-counting bar for `len` bytes (if known), labelled `msg`;
    /// hidden unless stderr is a terminal and `quiet` is false.
    pub fn bytes(len: Option<u64>, msg: String, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = match len {
            Some(l) => ProgressBar::with_draw_target(Some(l), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let style = ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(msg);
        Progress(Some(bar))
    }

    /// Advance by `n` bytes.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Wrap `inner` so that every byte read through it advances this bar.
    pub fn reader<R: Read>(&self, inner: R) -> ProgressReader<'_, R> {
        ProgressReader {
            inner,
            progress: self,
        }
    }

    /// Finish and clear the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that advances a [`Progress`] bar (see [`Progress::reader`]).
pub struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
