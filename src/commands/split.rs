//! `sentmon split`: writes the exact train/validation/test split that `train` uses.

use crate::cli::SplitArgs;
use crate::dataset;

pub fn run(args: &SplitArgs) -> anyhow::Result<()> {
    let corpus = super::load_corpus(&args.data)?;
    let counts = dataset::write_split(&corpus.examples, super::split_fractions(&args.split), &args.out)?;
    println!("{}", serde_json::to_string(&counts)?);
    Ok(())
}
