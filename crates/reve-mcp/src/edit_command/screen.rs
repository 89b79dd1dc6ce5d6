//! What a person at a terminal sees of `reve-mcp edit` on stderr: a progress line per picture while
//! it runs, fitted to the terminal's width, then a finish line that stays, `✓ cat.png →
//! ~/Pictures/reve/cat-1.png (8.2 s)` or `✗ dog.png: ...`, in colour unless `NO_COLOR` or `--color`
//! says otherwise. Nothing at all when stderr is not a terminal: a script reads stdout and the
//! closing `error:` lines.

use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::edit::{Progress, Stage};

/// When the finish lines are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set (or `TERM` is `dumb`).
    #[default]
    Auto,
    Always,
    Never,
}

impl Color {
    /// Makes this choice the one every styled text on stderr follows.
    pub(super) fn apply(self) {
        match self {
            Color::Auto => {}
            Color::Always => console::set_colors_enabled_stderr(true),
            Color::Never => console::set_colors_enabled_stderr(false),
        }
    }
}

/// How often a running picture's spinner and elapsed time are redrawn.
const TICK: Duration = Duration::from_millis(120);

/// The most of a progress line its picture's name takes, so that what is happening to it fits.
const MAX_LABEL: usize = 32;

/// The progress lines of one run: drawn on stderr when it is a terminal, nowhere otherwise.
#[derive(Clone)]
pub(super) struct Screen {
    bars: MultiProgress,
}

impl Screen {
    pub(super) fn new(terminal: bool) -> Screen {
        Screen {
            bars: MultiProgress::with_draw_target(if terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            }),
        }
    }

    /// Whether anything is shown (stderr is a terminal).
    pub(super) fn shown(&self) -> bool {
        !self.bars.is_hidden()
    }

    /// A progress line for the picture `label`, queued.
    pub(super) fn add(&self, label: &str) -> Line {
        let style = ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {msg}")
            .expect("the template is valid");
        let bar = self.bars.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_prefix(fit(&reve_core::workspace::shorten(label), MAX_LABEL)),
        );
        let line = Line { bar };
        line.say("queued");
        line
    }

    /// A line above the progress lines, kept when they go (nothing when nothing is shown).
    pub(super) fn note(&self, text: &str) {
        // Printing fails only when stderr is gone, and then nobody reads it.
        let _ = self.bars.println(text);
    }

    /// Runs `write` with the progress lines out of the way, so that its output is not drawn over.
    pub(super) fn suspend<T>(&self, write: impl FnOnce() -> T) -> T {
        self.bars.suspend(write)
    }
}

/// One picture's progress line.
pub(super) struct Line {
    bar: ProgressBar,
}

impl Line {
    /// Its turn came: the clock starts, and the spinner turns.
    pub(super) fn start(&self) {
        self.bar.reset_elapsed();
        // Each ticking bar has a thread of its own; a hidden one needs none.
        if !self.bar.is_hidden() {
            self.bar.enable_steady_tick(TICK);
        }
    }

    /// Shows `text` as what is happening, cut in the middle to what the terminal's width leaves
    /// (the end of a stage says whether anything was sent, the part that matters most).
    pub(super) fn say(&self, text: &str) {
        let width = usize::from(console::Term::stderr().size().1);
        let taken = 1 + 1 + 4 + 1 + console::measure_text_width(&self.bar.prefix()) + 1;
        self.bar
            .set_message(fit(text, width.saturating_sub(taken).max(16)));
    }

    /// Takes the progress line away, leaving no finish line.
    pub(super) fn finish_quietly(self) {
        self.bar.finish_and_clear();
    }

    /// Replaces the progress line with its finish line: `✓ LABEL → PATH (8.2 s)` for `Ok(path)`,
    /// `✗ LABEL: MESSAGE` for `Err(message)`; the whole message, wrapped by the terminal rather
    /// than cut.
    pub(super) fn finish(self, screen: &Screen, label: &str, outcome: Result<&str, &str>) {
        let seconds = self.bar.elapsed().as_secs_f64();
        self.bar.finish_and_clear();
        let label = reve_core::workspace::shorten(label);
        let line = match outcome {
            Ok(path) => format!(
                "{} {label} → {} ({seconds:.1} s)",
                style("✓").green().bold().for_stderr(),
                crate::jobs_command::home_as_tilde(path)
            ),
            Err(message) => format!(
                "{} {label}: {message}",
                style("✗").red().bold().for_stderr()
            ),
        };
        screen.note(&line);
    }
}

impl Progress for Line {
    async fn report(&self, stage: Stage) {
        self.say(&stage.describe());
    }
}

/// `text` in at most `width` characters: whole when it fits, else its start and its end around
/// an ellipsis.
fn fit(text: &str, width: usize) -> String {
    let characters: Vec<char> = text.chars().collect();
    if characters.len() <= width {
        return text.to_owned();
    }
    let tail = (width.saturating_sub(1)) / 2;
    let head = width.saturating_sub(1) - tail;
    let mut fitted: String = characters[..head].iter().collect();
    fitted.push('…');
    fitted.extend(&characters[characters.len() - tail..]);
    fitted
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn a_long_stage_keeps_its_start_and_its_end() {
        let stage = "queued behind other edits on this server (3 s so far; nothing sent yet)";
        assert_eq!(fit(stage, 200), stage);
        let fitted = fit(stage, 40);
        assert_eq!(fitted.chars().count(), 40);
        assert!(fitted.starts_with("queued behind"), "{fitted}");
        assert!(fitted.ends_with("nothing sent yet)"), "{fitted}");
        assert_eq!(fit("ünïcödé", 5), "ün…dé");
    }
}
