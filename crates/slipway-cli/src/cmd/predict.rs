//! `slipway predict`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use slipway_learn::LearnError;
use slipway_runtime::{ScoreOptions, predict_csv};

use crate::output;

#[derive(Args)]
pub struct PredictArgs {
    /// The package: a folder, or a registry reference (credit@production, credit:3).
    #[arg(long, value_name = "DIR|REF")]
    pub model: String,
    #[command(flatten)]
    pub registry: crate::cmd::registry::RegistryPath,
    /// Rows to score: a CSV with the model's feature columns (others are ignored).
    #[arg(long, value_name = "F.csv")]
    pub data: PathBuf,
    /// The CSV's field delimiter, e.g. ';' or tab (default: read from the header line; a
    /// gzip-compressed file is read as it is).
    #[arg(long, value_parser = crate::cmd::delimiter, value_name = "CHAR")]
    pub delimiter: Option<u8>,
    /// Where to write the scores (`-` for standard output).
    #[arg(long, value_name = "F.csv")]
    pub out: PathBuf,
    /// Copy this column to the output, to join scores back to their rows.
    #[arg(long, value_name = "COL")]
    pub id_column: Option<String>,
    /// Probability at or above which a binary prediction is the positive class (default: the
    /// one the package was trained with, 0.5 unless `train --threshold` said otherwise).
    #[arg(long, value_parser = crate::cmd::threshold)]
    pub threshold: Option<f64>,
    /// Print a JSON summary instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let dir = crate::cmd::registry::package_dir(&args.model, &args.registry)?.dir;
    let options = ScoreOptions {
        output: args.out.clone(),
        id_column: args.id_column.clone(),
        threshold: args.threshold,
        delimiter: args.delimiter,
        ..ScoreOptions::default()
    };
    let start = Instant::now();
    let to_stdout = args.out.as_os_str() == "-";
    let size = slipway_learn::source::text_size(&args.data);
    let bar = output::bytes_bar(!args.json, size);
    let mut progress = |rows: u64, bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows"));
        }
    };
    let summary = if to_stdout {
        let stdout = std::io::stdout();
        predict_csv(&dir, &args.data, stdout.lock(), &options, &mut progress)?
    } else {
        if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(LearnError::Param(format!(
                "--out {}: the folder {} does not exist; create it first (mkdir -p {}) or choose another --out",
                args.out.display(),
                parent.display(),
                parent.display()
            ))
            .into());
        }
        // Write beside the destination and rename, so a failed run never leaves half a file.
        let tmp = args.out.with_extension("partial");
        let file = std::fs::File::create(&tmp).map_err(|e| LearnError::Io {
            path: args.out.clone(),
            source: e,
        })?;
        let result =
            predict_csv(&dir, &args.data, &file, &options, &mut progress).and_then(|summary| {
                (&file)
                    .flush()
                    .and_then(|()| file.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, &args.out))
                    .map_err(|e| LearnError::Io {
                        path: args.out.clone(),
                        source: e,
                    })?;
                Ok(summary)
            });
        match result {
            Ok(summary) => summary,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = summary.rows as f64 / seconds.max(1e-9);
    if args.json {
        let line = json!({
            "rows": summary.rows,
            "seconds": seconds,
            "rows_per_second": rate,
            "unseen_categories": summary.unseen_categories,
            "out": args.out.display().to_string(),
        });
        if to_stdout {
            eprintln!("{line}");
        } else {
            output::print_json(&line);
        }
    } else {
        if summary.unseen_categories > 0 {
            eprintln!(
                "note: {} cells held a category not seen in training; they were encoded as all zeros",
                summary.unseen_categories
            );
        }
        eprintln!(
            "scored {} rows in {seconds:.2} s ({rate:.0} rows/s) → {}",
            summary.rows,
            args.out.display()
        );
    }
    Ok(())
}
