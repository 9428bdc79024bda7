//! Training progress through burn-train's metrics: loss, learning rate, gradient norm and
//! throughput kept in `NumericMetricState`s, shown on burn-train's TUI dashboard when
//! stdout is a terminal (feature `tui`), else as a progress bar and a line every
//! `log_every` steps (headless, for CI and logs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry,
};
use burn::train::renderer::{MetricState, MetricsRenderer, TrainingProgress};
use burn::train::Interrupter;
use comet::train::{Observer, StepLog};

/// One numeric metric and its running state over the current log window.
struct Tracked {
    id: MetricId,
    name: String,
    unit: Option<String>,
    precision: usize,
    state: NumericMetricState,
}

impl Tracked {
    fn new(name: &str, unit: Option<&str>, precision: usize) -> Self {
        Self {
            id: MetricId::new(Arc::new(name.to_string())),
            name: name.to_string(),
            unit: unit.map(str::to_string),
            precision,
            state: NumericMetricState::new(),
        }
    }

    fn format(&self) -> FormatOptions {
        let format = FormatOptions::new(Arc::new(self.name.clone())).precision(self.precision);
        match &self.unit {
            Some(unit) => format.unit(unit),
            None => format,
        }
    }

    fn definition(&self, higher_is_better: bool) -> MetricDefinition {
        MetricDefinition {
            metric_id: self.id.clone(),
            name: self.name.clone(),
            description: None,
            attributes: NumericAttributes {
                unit: self.unit.clone(),
                higher_is_better,
            }
            .into(),
        }
    }

    fn update(&mut self, value: f64, weight: usize) -> MetricState {
        let entry = self.state.update(value, weight, self.format());
        MetricState::Numeric(
            MetricEntry::new(self.id.clone(), entry),
            self.state.current_value(),
        )
    }

    fn mean(&self) -> f64 {
        match self.state.running_value() {
            NumericEntry::Aggregated {
                aggregated_value, ..
            } => aggregated_value,
            NumericEntry::Value(v) => v,
        }
    }
}

/// The training [`Observer`] of `comet train`.
pub struct Progress {
    /// Headless progress bar (hidden while the dashboard runs).
    pub bar: indicatif::ProgressBar,
    metrics: [Tracked; 4],
    renderer: Option<Box<dyn MetricsRenderer>>,
    interrupter: Interrupter,
    log_every: usize,
    stop: Arc<AtomicBool>,
    stop_at: Option<usize>,
    step: usize,
}

impl Progress {
    /// Progress from step `first`; `stop` is set by Ctrl-C, `stop_at` ends the run early.
    pub fn new(
        first: usize,
        log_every: usize,
        stop: Arc<AtomicBool>,
        stop_at: Option<usize>,
    ) -> Self {
        let metrics = [
            Tracked::new("Loss", None, 4),
            Tracked::new("Learning rate", None, 6),
            Tracked::new("Gradient norm", None, 3),
            Tracked::new("Throughput", Some("tokens/s"), 0),
        ];
        let interrupter = Interrupter::new();
        let mut renderer = dashboard(&interrupter);
        if let Some(r) = renderer.as_mut() {
            for (metric, higher) in metrics.iter().zip([false, false, false, true]) {
                r.register_metric(metric.definition(higher));
            }
        }
        let bar = if renderer.is_some() {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(0)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "step {pos}/{len} {bar:30} {msg} {elapsed} (eta {eta})",
            )
            .expect("static template"),
        );
        bar.set_position(first as u64);
        Self {
            bar,
            metrics,
            renderer,
            interrupter,
            log_every,
            stop,
            stop_at,
            step: first,
        }
    }

    /// Closes the dashboard, if one is open.
    pub fn finish(&mut self) {
        self.bar.finish_and_clear();
        if let Some(mut r) = self.renderer.take() {
            let _ = r.on_train_end(None);
        }
    }
}

#[cfg(feature = "tui")]
fn dashboard(interrupter: &Interrupter) -> Option<Box<dyn MetricsRenderer>> {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal().then(|| {
        Box::new(burn::train::renderer::tui::TuiMetricsRendererWrapper::new(
            interrupter.clone(),
            None,
        )) as Box<dyn MetricsRenderer>
    })
}

#[cfg(not(feature = "tui"))]
fn dashboard(_: &Interrupter) -> Option<Box<dyn MetricsRenderer>> {
    None
}

impl Observer for Progress {
    fn on_step(&mut self, log: &StepLog, total_steps: usize) {
        self.step = log.step;
        let values = [
            log.loss,
            log.lr,
            log.grad_norm,
            log.tokens as f64 / log.seconds.max(1e-9),
        ];
        let states: Vec<MetricState> = self
            .metrics
            .iter_mut()
            .zip(values)
            .map(|(m, v)| m.update(v, 1))
            .collect();
        if let Some(r) = self.renderer.as_mut() {
            for state in states {
                r.update_train(state);
            }
            let progress = burn::data::dataloader::Progress {
                items_processed: log.step,
                items_total: total_steps,
            };
            let item = TrainingProgress {
                progress: Some(progress.clone()),
                global_progress: progress,
                iteration: Some(log.step),
            };
            r.render_train(item, vec![]);
            return;
        }
        self.bar.set_length(total_steps as u64);
        self.bar.set_position(log.step as u64);
        self.bar.set_message(format!("loss {:.4}", log.loss));
        if log.step.is_multiple_of(self.log_every) || log.step == total_steps {
            let [loss, lr, grad, speed] = self.metrics.each_ref().map(Tracked::mean);
            let line = format!(
                "step {:>6}  loss {loss:.4}  lr {lr:.2e}  grad {grad:.3}  chunk {}  {speed:.0} tokens/s",
                log.step, log.chunk_size,
            );
            // A hidden bar (stderr is not a terminal: CI, logs) swallows println.
            if self.bar.is_hidden() {
                eprintln!("{line}");
            } else {
                self.bar.println(line);
            }
            for m in &mut self.metrics {
                m.state.reset();
            }
        }
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.interrupter.should_stop()
            || self.stop_at.is_some_and(|s| self.step >= s)
    }
}
