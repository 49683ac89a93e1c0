//! What lens-train says on stderr about training's events: a progress bar (a terminal) or a line every few seconds
//! (a log), one summary line per epoch, and the set-up, resume, early-stopping and signal messages.

use std::path::Path;

use lensfind_core::progress::Progress;
use lensfind_nn::config::TrainConfig;
use lensfind_nn::run_dir::MetricsRow;
use lensfind_nn::train::Event;

pub(crate) struct Reporter<'a> {
    out: &'a Path,
    quiet: bool,
    progress: Option<Progress>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(out: &'a Path, quiet: bool) -> Self {
        Reporter { out, quiet, progress: None }
    }

    pub(crate) fn event(&mut self, event: Event) {
        match event {
            Event::Processes { world, launcher, backend, batch } if !self.quiet => eprintln!(
                "lens-train: {world} processes ({launcher}, {backend}); batch {batch} per process, {} per step",
                batch * world
            ),
            Event::Autotune { notes, summary } => {
                // Notes about the cache are said even with -q: a cache that cannot be written costs every run.
                for note in notes {
                    eprintln!("lens-train: {note}");
                }
                if let (Some(summary), false) = (summary, self.quiet) {
                    eprintln!("lens-train: {summary}");
                }
            }
            Event::Note(note) => eprintln!("lens-train: note: {note}"),
            Event::Recipe { cfg } if !self.quiet => recipe(cfg),
            Event::StartingAgain if !self.quiet => {
                eprintln!("lens-train: {} has no checkpoint yet: starting it from the first step", self.out.display())
            }
            Event::Pretrained { path, report } if !self.quiet => {
                let adapted: Vec<String> = report.adapted.iter().map(|(k, w)| format!("{k}: {w}")).collect();
                eprintln!(
                    "lens-train: pretrained {}: {} loaded, {} adapted ({}), {} fresh ({}), {} unused",
                    path.display(),
                    report.loaded.len(),
                    report.adapted.len(),
                    adapted.join("; "),
                    report.missing.len(),
                    report.missing.join(", "),
                    report.unexpected.len()
                );
            }
            Event::Resumed { epoch, batch, step } if !self.quiet => eprintln!(
                "lens-train: resuming {} at epoch {}, batch {batch} (step {step})",
                self.out.display(),
                epoch + 1
            ),
            Event::WorldChanged { from, to, repeated } => eprintln!(
                "lens-train: resuming with {to} processes a checkpoint of {from}: the last {repeated} objects before \
                 it are trained on again"
            ),
            Event::AlreadyComplete => eprintln!("lens-train: {} is already complete", self.out.display()),
            Event::EpochStarted { images, done, .. } => {
                let progress = Progress::new("lens-train", "images", images, self.quiet);
                progress.inc(done);
                self.progress = Some(progress);
            }
            Event::Step { images, loss } => {
                if let Some(p) = &self.progress {
                    p.inc(images);
                    if let Some(loss) = loss {
                        p.set_message(format!("loss {loss:.4}"));
                    }
                }
            }
            Event::EpochTrained => {
                if let Some(p) = self.progress.take() {
                    p.finish();
                }
            }
            Event::Validated { row, epochs, images_per_s } => validated(row, epochs, images_per_s),
            Event::StoppedEarly { patience, best_epoch } => eprintln!(
                "lens-train: no AUC improvement for {patience} epochs; stopping early (best epoch {best_epoch})"
            ),
            Event::Interrupted { epoch, step } => eprintln!(
                "lens-train: stopped by a signal at epoch {epoch}, step {step}; checkpoint saved, resume with --resume"
            ),
            Event::TimeLimit { epoch, epochs, seconds } => eprintln!(
                "lens-train: time limit: stopped after epoch {epoch} of {epochs} ({seconds:.0} s), checkpoint saved; \
                 --resume continues the run"
            ),
            Event::Processes { .. }
            | Event::Recipe { .. }
            | Event::StartingAgain
            | Event::Pretrained { .. }
            | Event::Resumed { .. } => {}
        }
    }
}

/// An epoch's line: its training loss and validation figures, the moving average's beside them.
fn validated(row: &MetricsRow, epochs: usize, images_per_s: f64) {
    let ema = match (row.ema_val_auc, row.ema_val_tpr_at_fpr_1e2) {
        (Some(auc), Some(tpr)) => format!(" (moving average: AUC {auc:.4}, TPR@FPR1e-2 {tpr:.3})"),
        _ => String::new(),
    };
    eprintln!(
        "lens-train: epoch {}/{epochs}: train loss {:.4}, val loss {:.4}, val AUC {:.4}, acc {:.4}, TPR@FPR1e-2 \
         {:.3}{ema}; {images_per_s:.0} images/s",
        row.epoch, row.train_loss, row.val_loss, row.val_auc, row.val_accuracy, row.val_tpr_at_fpr_1e2
    );
}

/// The recipe of a new run and the values it resolved to.
fn recipe(cfg: &TrainConfig) {
    let Some(r) = cfg.recipe.as_ref() else { return };
    let overridden = if r.overridden.is_empty() {
        String::new()
    } else {
        format!("; given on the command line: --{}", r.overridden.join(", --"))
    };
    eprintln!(
        "lens-train: recipe {} (lr {}, global batch {}): lr {:e}, warm-up {} steps, weight decay {:e}{}, drop path \
         {}, {} epochs{}{}{overridden}",
        r.name,
        r.lr_rule,
        r.global_batch,
        cfg.lr,
        cfg.warmup_steps,
        cfg.weight_decay,
        if cfg.no_decay_norm_bias { " except norms and biases" } else { "" },
        cfg.model_config.drop_path(),
        cfg.epochs,
        lensfind_nn::recipe::extras_in_words(cfg.ema_half_life, cfg.degrade, cfg.label_smoothing),
        cfg.focal_gamma.map_or(String::new(), |g| format!(", focal loss (gamma {g})")),
    );
}
