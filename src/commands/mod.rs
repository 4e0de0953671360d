//! One module per subcommand: each turns validated CLI arguments into work and output.

pub mod archive;
pub mod backtest;
pub mod broker;
pub mod check_config;
pub mod classify;
pub mod demo;
pub mod eval;
pub mod models;
pub mod pretrain;
pub mod replay;
pub mod retrain;
pub mod run;
pub mod split;
pub mod train;

use crate::cli::{DataArgs, SplitFractionArgs};
use crate::dataset::{self, ColumnNames, LoadedCorpus, SplitFractions};

/// How many bad rows are listed one by one before only the count is given.
const BAD_ROWS_LISTED: usize = 20;

/// Loads the labelled files and reports bad rows (file:line and reason) on stderr.
fn load_corpus(data: &DataArgs) -> anyhow::Result<LoadedCorpus> {
    let columns = ColumnNames {
        text: data.text_column.clone(),
        topic: data.topic_column.clone(),
        sentiment: data.sentiment_column.clone(),
    };
    let corpus = dataset::load_labelled(&data.paths, &columns, data.strict)?;
    report_bad_rows(&corpus.bad_rows);
    Ok(corpus)
}

fn report_bad_rows(bad_rows: &[dataset::BadRow]) {
    if bad_rows.is_empty() {
        return;
    }
    for bad_row in bad_rows.iter().take(BAD_ROWS_LISTED) {
        eprintln!("bad row: {bad_row}");
    }
    if bad_rows.len() > BAD_ROWS_LISTED {
        eprintln!("... and {} more", bad_rows.len() - BAD_ROWS_LISTED);
    }
    eprintln!("{} bad rows skipped (use --strict to stop at the first one)", bad_rows.len());
}

fn split_fractions(split: &SplitFractionArgs) -> SplitFractions {
    SplitFractions { validation: split.validation_fraction, test: split.test_fraction }
}
