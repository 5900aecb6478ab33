//! Progress bars on stderr (indicatif): for `kvsim run`, requests finished of the known
//! total, else simulated time of the known trace span, else a spinner counting finished
//! requests; for `sweep` and `plan`, points done; for `paging` and `trace stats`, a
//! spinner; for every other command, a [`Delayed`] spinner (with a count of replays for
//! `fit serving` and `fidelity serving`). Nothing is drawn when stderr is not a terminal or
//! with `--quiet`; a run's bar, and a delayed spinner, appear only once the command has
//! run a second.
//!
//! The simulation's hot loop only bumps a counter ([`Ticker::tick`]); the clock is read
//! every [`CHECK_EVERY`] steps, and the bar redrawn at most every [`REDRAW`].

use crate::scenario::Workload;
use crate::workload::Source;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Steps between two looks at the wall clock.
pub const CHECK_EVERY: u32 = 4096;
/// Shortest time between two redraws.
pub const REDRAW: Duration = Duration::from_millis(100);
/// A run's bar appears after this long (shorter runs show none).
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Whether progress may be drawn: stderr is a terminal and `--quiet` was not given.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A spinner with `what` and the time elapsed, for commands whose work has no count to
/// show (`kvsim paging`); it redraws itself every [`REDRAW`] (hidden when not [`enabled`]).
pub fn activity(what: &str, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}, {elapsed}").expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(REDRAW);
    bar
}

/// A spinner that appears only once its command has run [`SHOW_AFTER`], for commands
/// without a bar of their own: it names `what` and, when the work is counted with
/// [`Delayed::bar`]'s `inc`, shows the count followed by `unit`. Dropping it removes it.
pub struct Delayed {
    bar: ProgressBar,
    stop: Option<std::sync::mpsc::Sender<()>>,
    shower: Option<std::thread::JoinHandle<()>>,
}

impl Delayed {
    /// A spinner for `what`, counting `unit` (empty: no count); inert unless
    /// [`enabled`]`(quiet)`.
    pub fn new(what: &str, unit: &str, quiet: bool) -> Delayed {
        if !enabled(quiet) {
            return Delayed {
                bar: ProgressBar::hidden(),
                stop: None,
                shower: None,
            };
        }
        let template = if unit.is_empty() {
            "{spinner} {msg}, {elapsed}".to_string()
        } else {
            format!("{{spinner}} {{msg}}: {{pos}} {unit}, {{elapsed}}")
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
        bar.set_message(what.to_string());
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shown = bar.clone();
        let shower = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(SHOW_AFTER)
            {
                shown.set_draw_target(ProgressDrawTarget::stderr());
                shown.enable_steady_tick(REDRAW);
            }
        });
        Delayed {
            bar,
            stop: Some(stop),
            shower: Some(shower),
        }
    }

    /// The spinner, to count work with `inc` (a clone shares the count).
    pub fn bar(&self) -> ProgressBar {
        self.bar.clone()
    }
}

impl Drop for Delayed {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.shower.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// A bar of `total` points for `sweep` and `plan` (hidden when not [`enabled`]).
pub fn points_bar(total: usize, quiet: bool) -> ProgressBar {
    if !enabled(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points, {elapsed} elapsed, eta {eta}")
            .expect("valid template"),
    );
    bar
}

/// What a run's bar measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Requests finished of this many.
    Requests(u64),
    /// Simulated nanoseconds of this span.
    SimTime(u64),
    /// Requests finished, total unknown.
    Spinner,
}

impl Measure {
    /// The measure for one run of `w`: the request count when the source generates a known
    /// number and no time window cuts it (capped by `limit`); else the window's span
    /// (`end_s` minus `start_s`, scaled) when `end_s` is set; else a spinner.
    pub fn of(w: &Workload) -> Measure {
        let windowed = w.start_s.is_some() || w.end_s.is_some();
        if let (Ok(src), false) = (w.source.resolve(), windowed) {
            if let Some(n) = generated_count(&src) {
                return Measure::Requests(w.limit.map_or(n, |l| l.min(n)));
            }
        }
        if let Some(end) = w.end_s {
            let span_s = (end - w.start_s.unwrap_or(0.0)) * w.time_scale / w.rate_scale;
            if span_s.is_finite() && span_s > 0.0 && span_s < 1e9 {
                return Measure::SimTime((span_s * 1e9) as u64);
            }
        }
        Measure::Spinner
    }
}

/// Requests a generated source makes; `None` for trace files.
fn generated_count(src: &Source) -> Option<u64> {
    match src {
        Source::Synthetic(s) => Some(s.requests),
        Source::SharedPrefix(s) => Some(s.num_groups as u64 * s.num_prompts_per_group as u64),
        Source::SglangGsp(s) => Some(s.num_groups as u64 * s.prompts_per_group as u64),
        Source::VllmRandom(s) => Some(s.num_prompts),
        Source::VllmPrefixRepetition(s) => Some(s.num_prompts),
        _ => None,
    }
}

#[derive(Debug)]
struct Shared {
    measure: Measure,
    /// Runs counted together (`--seeds`).
    runs: u64,
    started: Instant,
    done: AtomicU64,
    /// The bar once shown, and when it was last drawn.
    bar: Mutex<(Option<ProgressBar>, Instant)>,
}

/// The progress of one or more runs of a scenario, shared by their [`Ticker`]s.
#[derive(Debug, Clone)]
pub struct RunProgress {
    shared: Option<Arc<Shared>>,
}

impl RunProgress {
    /// Progress of `runs` runs measured by `measure`; inert unless [`enabled`]`(quiet)`.
    pub fn new(measure: Measure, runs: u64, quiet: bool) -> RunProgress {
        let shared = enabled(quiet).then(|| {
            Arc::new(Shared {
                measure,
                runs,
                started: Instant::now(),
                done: AtomicU64::new(0),
                bar: Mutex::new((None, Instant::now())),
            })
        });
        RunProgress { shared }
    }

    /// A handle for one run's recorder (`None` when nothing is drawn).
    pub fn ticker(&self) -> Option<Ticker> {
        self.shared.as_ref().map(|s| Ticker {
            shared: s.clone(),
            steps: 0,
            published: 0,
        })
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(s) = &self.shared {
            if let Ok(g) = s.bar.lock() {
                if let Some(b) = &g.0 {
                    b.finish_and_clear();
                }
            }
        }
    }
}

impl Shared {
    fn new_bar(&self) -> ProgressBar {
        let (len, template) = match self.measure {
            Measure::Requests(n) => (
                Some(n.saturating_mul(self.runs)),
                "{bar:40} {pos}/{len} requests, {elapsed} elapsed, eta {eta}",
            ),
            Measure::SimTime(ns) => (
                Some(ns.saturating_mul(self.runs) / 1_000_000),
                "{bar:40} {pos}/{len} simulated ms, {elapsed} elapsed, eta {eta}",
            ),
            Measure::Spinner => (None, "{spinner} {pos} requests finished, {elapsed} elapsed"),
        };
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr())
            .with_elapsed(self.started.elapsed());
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar
    }

    /// Draw if the run has gone a second and the last draw is old enough. Never waits for
    /// another run's draw.
    fn maybe_draw(&self) {
        if self.started.elapsed() < SHOW_AFTER {
            return;
        }
        let Ok(mut g) = self.bar.try_lock() else {
            return;
        };
        if g.0.is_some() && g.1.elapsed() < REDRAW {
            return;
        }
        let bar = g.0.get_or_insert_with(|| self.new_bar());
        let done = self.done.load(Ordering::Relaxed);
        bar.set_position(match self.measure {
            Measure::SimTime(_) => done / 1_000_000,
            _ => done,
        });
        g.1 = Instant::now();
    }
}

/// One run's handle: counts steps, publishes every [`CHECK_EVERY`].
#[derive(Debug)]
pub struct Ticker {
    shared: Arc<Shared>,
    steps: u32,
    /// The run's progress already added to the shared count.
    published: u64,
}

impl Ticker {
    /// A step started at simulated `now_ns` with `completed` requests finished.
    #[inline]
    pub fn tick(&mut self, now_ns: u64, completed: u64) {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(CHECK_EVERY) {
            self.publish(now_ns, completed);
            self.shared.maybe_draw();
        }
    }

    fn publish(&mut self, now_ns: u64, completed: u64) {
        let value = match self.shared.measure {
            Measure::SimTime(span) => now_ns.min(span),
            _ => completed,
        };
        if value > self.published {
            self.shared
                .done
                .fetch_add(value - self.published, Ordering::Relaxed);
            self.published = value;
        }
    }

    /// The run ended with `completed` requests finished: count it whole.
    pub fn flush(&mut self, completed: u64) {
        let end = match self.shared.measure {
            Measure::SimTime(span) => span,
            _ => completed,
        };
        self.publish(end, completed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(measure: Measure) -> Arc<Shared> {
        Arc::new(Shared {
            measure,
            runs: 2,
            started: Instant::now(),
            done: AtomicU64::new(0),
            bar: Mutex::new((None, Instant::now())),
        })
    }

    #[test]
    fn tickers_publish_every_check_and_in_full_at_the_end() {
        let s = shared(Measure::Requests(10));
        let mut a = Ticker {
            shared: s.clone(),
            steps: 0,
            published: 0,
        };
        let mut b = Ticker {
            shared: s.clone(),
            steps: 0,
            published: 0,
        };
        for i in 0..CHECK_EVERY - 1 {
            a.tick(i as u64, 3);
        }
        assert_eq!(s.done.load(Ordering::Relaxed), 0, "not yet looked");
        a.tick(0, 3);
        assert_eq!(s.done.load(Ordering::Relaxed), 3);
        a.flush(10);
        b.flush(7);
        assert_eq!(s.done.load(Ordering::Relaxed), 17);
        // Not a second old: no bar made.
        s.maybe_draw();
        assert!(s.bar.lock().unwrap().0.is_none());
    }

    #[test]
    fn simulated_time_is_capped_at_the_span() {
        let s = shared(Measure::SimTime(5_000));
        let mut t = Ticker {
            shared: s.clone(),
            steps: CHECK_EVERY - 1,
            published: 0,
        };
        t.tick(9_000, 1);
        assert_eq!(s.done.load(Ordering::Relaxed), 5_000);
        t.flush(1);
        assert_eq!(s.done.load(Ordering::Relaxed), 5_000);
    }
}
