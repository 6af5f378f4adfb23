//! Progress of a long operation on a terminal: one line on stderr, rewritten in place at
//! most every few hundred milliseconds, cleared at the end. Nothing is written when stderr
//! is not a terminal, so piped output and scripts see only the command's results.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW_EVERY: Duration = Duration::from_millis(250);

pub struct Progress {
    on_terminal: bool,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            on_terminal: std::io::stderr().is_terminal(),
            last_draw: None,
            drawn: false,
        }
    }

    /// Shows `line` unless the last one was drawn moments ago.
    pub fn show(&mut self, line: impl FnOnce() -> String) {
        if !self.on_terminal || self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        self.last_draw = Some(Instant::now());
        self.drawn = true;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", line());
        let _ = err.flush();
    }

    /// Clears the line (the command's own output follows on a clean line).
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `done/total` with a percentage, or just `done` when the total is unknown.
pub fn fraction(done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => format!("{done}/{t} ({}%)", done * 100 / t),
        _ => done.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fractions_show_a_percentage_when_the_total_is_known() {
        assert_eq!(super::fraction(5, Some(20)), "5/20 (25%)");
        assert_eq!(super::fraction(5, None), "5");
        assert_eq!(super::fraction(0, Some(0)), "0");
    }
}
