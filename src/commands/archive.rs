//! `sentmon archive export`: a sample of the stream archive as CSV for labelling.

use crate::archive::export::{sample_for_labelling, write_labelling_csv};
use crate::cli::{ArchiveArgs, ArchiveCommand, ArchiveExportArgs};

pub fn run(args: &ArchiveArgs) -> anyhow::Result<()> {
    match &args.command {
        ArchiveCommand::Export(export_args) => export(export_args),
    }
}

fn export(args: &ArchiveExportArgs) -> anyhow::Result<()> {
    let (sample, summary) = sample_for_labelling(&args.from, args.sample, args.seed)?;
    write_labelling_csv(&sample, &args.out)?;
    let distinct: usize = summary.distinct_by_topic.values().sum();
    eprintln!(
        "read {} rows from {} files: {} distinct texts in {} predicted topics, {} duplicates, {} bad rows skipped",
        summary.rows,
        summary.files,
        distinct,
        summary.distinct_by_topic.len(),
        summary.duplicates,
        summary.bad_rows
    );
    eprintln!(
        "wrote {} rows to {}: fill its topic and/or sentiment columns, then pass it to `sentmon train --data`",
        sample.len(),
        args.out.display()
    );
    Ok(())
}
