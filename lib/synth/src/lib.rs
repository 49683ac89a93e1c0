//! A challenge-format synthetic dataset: the same directory layout, file names and FITS encoding as the LSST
//! Strong Lensing Data Challenge release, with images from `scene` (the physics of a cutout).

// The library reports through its callers (errors, events, progress callbacks); only the tools print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod difficulty;
mod lookalike;
mod scene;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use difficulty::Difficulty;
use difficulty::Domain;
use lensfind_core::progress::Progress;
use lensfind_core::rng::Rng;
use lensfind_data::fits;
use lensfind_data::naming::BANDS;
use scene::{Instrument, Scene, DP0, HSC};

/// Why a dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("images of {0} pixels a side are too small (at least 8)")]
    Size(usize),
    #[error("output directory {} is not empty; remove it or choose another", path.display())]
    NotEmpty { path: PathBuf },
    #[error("{corrupt} damaged files are more than the {files} files to write")]
    Corrupt { corrupt: usize, files: usize },
    #[error("reading {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("creating {}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("writing {}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("writing {}", path.display())]
    Fits { path: PathBuf, source: fitsio::errors::Error },
}

/// The four kinds of training object, one directory each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    SlsimLens,
    SlsimNonlens,
    HscLens,
    HscNonlens,
}

impl Category {
    pub(crate) const ALL: [Category; 4] =
        [Category::SlsimLens, Category::SlsimNonlens, Category::HscLens, Category::HscNonlens];

    pub(crate) fn dir(self) -> &'static str {
        match self {
            Category::SlsimLens => "slsim_lenses",
            Category::SlsimNonlens => "slsim_nonlenses",
            Category::HscLens => "hsc_lenses",
            Category::HscNonlens => "hsc_nonlenses",
        }
    }

    pub(crate) fn source(self) -> u8 {
        match self {
            Category::SlsimLens | Category::SlsimNonlens => 1,
            Category::HscLens | Category::HscNonlens => 2,
        }
    }

    pub(crate) fn label(self) -> u8 {
        match self {
            Category::SlsimLens | Category::HscLens => 1,
            Category::SlsimNonlens | Category::HscNonlens => 0,
        }
    }

    fn instrument(source: u8) -> &'static Instrument {
        if source == 1 {
            &DP0
        } else {
            &HSC
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub out: PathBuf,
    /// Objects per class: per training directory, or per label in the blind layout.
    pub objects: usize,
    pub seed: u64,
    /// The blind test layout (`object_<n>_<band>.fits`, image in the primary HDU) plus `labels.csv`.
    pub blind: bool,
    /// How many files to damage after writing.
    pub corrupt: usize,
    /// Cutout side in pixels.
    pub size: usize,
    /// Easy (the default, bytes unchanged) or the hard benchmark.
    pub difficulty: Difficulty,
    pub quiet: bool,
}

/// One object to write: where, what, and the random stream that makes it.
struct Job {
    id: String,
    dir: PathBuf,
    label: u8,
    source: u8,
    stream: u64,
    blind: bool,
}

/// What was written.
#[derive(Debug, Default)]
pub struct SynthReport {
    pub objects: usize,
    pub files: usize,
    pub lenses: usize,
    /// (path, what was done to it).
    pub corrupted: Vec<(PathBuf, String)>,
}

fn jobs(opts: &SynthOptions) -> Vec<Job> {
    let n = opts.objects;
    if !opts.blind {
        let mut jobs = Vec::with_capacity(4 * n);
        for (k, cat) in Category::ALL.iter().enumerate() {
            let letter = if cat.label() == 1 { 'L' } else { 'N' };
            for i in 0..n {
                jobs.push(Job {
                    id: format!("D{}_{letter}_{i:08}", cat.source()),
                    dir: opts.out.join(cat.dir()),
                    label: cat.label(),
                    source: cat.source(),
                    stream: ((k as u64) << 40) | i as u64,
                    blind: false,
                });
            }
        }
        return jobs;
    }
    // Blind: N lenses and N non-lenses under shuffled numbers, so that the id says nothing about the label.
    let mut order: Vec<usize> = (0..2 * n).collect();
    let mut rng = Rng::new(opts.seed, u64::MAX);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let width = (2 * n).to_string().len().max(6);
    order
        .iter()
        .enumerate()
        .map(|(number, &k)| {
            let source = if rng.chance(0.5) { 1 } else { 2 };
            Job {
                id: format!("object_{number:0width$}"),
                dir: opts.out.clone(),
                label: u8::from(k < n),
                source,
                stream: (4u64 << 40) | k as u64,
                blind: true,
            }
        })
        .collect()
}

/// Scene parameters worth keeping next to the data (for studying what a model misses).
struct Drawn {
    theta_e: f64,
    source_flux_i: f64,
    companion: bool,
    /// Hard datasets: the seeing/noise domain and the look-alike ("none", "ring", "spiral").
    domain: Option<Domain>,
    lookalike: &'static str,
}

fn write_object(job: &Job, opts: &SynthOptions) -> Result<Drawn, SynthError> {
    let mut rng = Rng::new(opts.seed, job.stream);
    // The domain is the first draw of a hard object's stream; easy objects draw none (their stream is unchanged).
    let domain =
        opts.difficulty.poor_domain_chance(job.blind).map(|p| if rng.chance(p) { Domain::Poor } else { Domain::Good });
    let inst = domain.map_or(*Category::instrument(job.source), |d| d.apply(Category::instrument(job.source)));
    let scene = Scene::draw(&mut rng, job.label == 1, &inst, &opts.difficulty.distributions());
    let npix = opts.size * opts.size;
    let mut pixels = vec![0.0; 5 * npix];
    scene.render(&mut rng, &inst, opts.size, &mut pixels);
    for (b, band) in BANDS.iter().enumerate() {
        let path = job.dir.join(format!("{}_{band}.fits", job.id));
        let img = &pixels[b * npix..(b + 1) * npix];
        let written = if job.blind {
            fits::write_image_file(&path, img, opts.size, opts.size)
        } else {
            // Both id-column names and both TDIM conventions of the real release occur.
            let id_column = if job.source == 2 && job.label == 1 { "Lens ID" } else { "Object ID" };
            fits::write_table_file(&path, id_column, &job.id, b, img, (opts.size, opts.size), job.source == 2)
        };
        written.map_err(|source| SynthError::Fits { path, source })?;
    }
    Ok(Drawn {
        theta_e: scene.lens_mass.map_or(0.0, |m| m.theta_e),
        source_flux_i: scene.source.map_or(0.0, |(_, f)| f[2]),
        companion: scene.companion.is_some(),
        domain,
        lookalike: scene.lookalike.map_or("none", |(l, _)| l.kind()),
    })
}

/// Damages `k` of the written files, chosen by the seed: even picks are truncated inside their data, odd picks get
/// a garbage first header card, the two kinds of damage the real release showed.
fn corrupt(jobs: &[Job], opts: &SynthOptions) -> Result<Vec<(PathBuf, String)>, SynthError> {
    let total = jobs.len() * 5;
    let mut rng = Rng::new(opts.seed, u64::MAX - 1);
    let mut picked: Vec<usize> = Vec::with_capacity(opts.corrupt);
    while picked.len() < opts.corrupt {
        let f = rng.below(total as u64) as usize;
        if !picked.contains(&f) {
            picked.push(f);
        }
    }
    let mut out = Vec::new();
    for (n, f) in picked.into_iter().enumerate() {
        let job = &jobs[f / 5];
        let path = job.dir.join(format!("{}_{}.fits", job.id, BANDS[f % 5]));
        let mut bytes = fs::read(&path).map_err(|source| SynthError::Read { path: path.clone(), source })?;
        let what = if n % 2 == 0 {
            // Cut somewhere before the last 2880-byte block, which always holds the end of the image data.
            let cut = rng.below((bytes.len() - 2880) as u64) as usize;
            bytes.truncate(cut);
            format!("truncated to {cut} bytes")
        } else {
            for b in bytes.iter_mut().take(80) {
                *b = (rng.below(256)) as u8;
            }
            "garbage in the first header card".to_string()
        };
        fs::write(&path, &bytes).map_err(|source| SynthError::Write { path: path.clone(), source })?;
        out.push((path, what));
    }
    Ok(out)
}

fn write_csv<P: AsRef<Path>>(
    path: P,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), SynthError> {
    let path = path.as_ref();
    let file = fs::File::create(path).map_err(|source| SynthError::Create { path: path.into(), source })?;
    let mut w = csv::Writer::from_writer(file);
    let write_error = |e| SynthError::Write { path: path.into(), source: lensfind_core::text::csv_io_error(e) };
    w.write_record(header).map_err(write_error)?;
    for r in rows {
        w.write_record(&r).map_err(write_error)?;
    }
    w.flush().map_err(|source| SynthError::Write { path: path.into(), source })
}

/// Writes the dataset. Refuses a non-empty output directory, so that two datasets never mix.
pub fn generate(opts: &SynthOptions) -> Result<SynthReport, SynthError> {
    if opts.size < 8 {
        return Err(SynthError::Size(opts.size));
    }
    if opts.out.exists() {
        let reading = |source| SynthError::Read { path: opts.out.clone(), source };
        if fs::read_dir(&opts.out).map_err(reading)?.next().is_some() {
            return Err(SynthError::NotEmpty { path: opts.out.clone() });
        }
    }
    let jobs = jobs(opts);
    if opts.corrupt > jobs.len() * 5 {
        return Err(SynthError::Corrupt { corrupt: opts.corrupt, files: jobs.len() * 5 });
    }
    let mut dirs: Vec<&PathBuf> = jobs.iter().map(|j| &j.dir).collect();
    dirs.dedup();
    for d in dirs.iter().chain(std::iter::once(&&opts.out)) {
        fs::create_dir_all(d).map_err(|source| SynthError::Create { path: d.to_path_buf(), source })?;
    }
    let progress = Progress::new("lens-synth", "objects", jobs.len() as u64, opts.quiet);
    let drawn: Vec<Drawn> = jobs
        .par_iter()
        .map(|job| {
            let d = write_object(job, opts);
            progress.inc(1);
            d
        })
        .collect::<Result<_, _>>()?;
    progress.finish();

    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[a].id.cmp(&jobs[b].id));
    // A hard dataset's params.csv has two more columns: each object's seeing/noise domain and look-alike kind.
    let hard = opts.difficulty == Difficulty::Hard;
    let mut header = vec!["id", "label", "source", "theta_e_arcsec", "source_flux_i", "companion"];
    if hard {
        header.extend(["domain", "lookalike"]);
    }
    write_csv(
        opts.out.join("params.csv"),
        &header,
        order.iter().map(|&k| {
            let (j, d) = (&jobs[k], &drawn[k]);
            let mut row = vec![
                j.id.clone(),
                j.label.to_string(),
                j.source.to_string(),
                format!("{:.4}", d.theta_e),
                format!("{:.3}", d.source_flux_i),
                u8::from(d.companion).to_string(),
            ];
            if let Some(domain) = d.domain {
                row.extend([domain.name().to_string(), d.lookalike.to_string()]);
            }
            row
        }),
    )?;
    if opts.blind {
        write_csv(
            opts.out.join("labels.csv"),
            &["id", "label", "source"],
            order.iter().map(|&k| vec![jobs[k].id.clone(), jobs[k].label.to_string(), jobs[k].source.to_string()]),
        )?;
    }
    let corrupted = corrupt(&jobs, opts)?;
    if !corrupted.is_empty() {
        write_csv(
            opts.out.join("corrupted.csv"),
            &["path", "damage"],
            corrupted.iter().map(|(p, w)| {
                let rel = p.strip_prefix(&opts.out).unwrap_or(p);
                vec![rel.display().to_string(), w.clone()]
            }),
        )?;
    }
    Ok(SynthReport {
        objects: jobs.len(),
        files: jobs.len() * 5,
        lenses: jobs.iter().filter(|j| j.label == 1).count(),
        corrupted,
    })
}
