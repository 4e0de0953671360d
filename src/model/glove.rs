//! Pretrained word vectors (GloVe, as `scripts/setup.sh` lays them out in `.glove/`): loading
//! them, and initialising the network's token embedding from them.
//!
//! Why: the labelled sets are 26k tweets, so most words of a full news sentence were never seen
//! in training. With the vocabulary extended by the vectors' most frequent words, such a word
//! still reaches the LSTM as a meaningful vector instead of `<unk>`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::text::Vocab;

/// The vectors' file: float32, `[words, width]`, NumPy format.
pub const VECTORS_FILE: &str = "vectors.npy";
/// One word a line, in the vectors' row order (most frequent first).
pub const WORDS_FILE: &str = "words.txt";

pub struct WordVectors {
    words: Vec<String>,
    /// `[words, width]`, float32.
    vectors: Tensor,
}

impl WordVectors {
    /// Reads `words.txt` and `vectors.npy` from `directory`, checking they agree.
    pub fn load(directory: &Path) -> anyhow::Result<WordVectors> {
        let words_path = directory.join(WORDS_FILE);
        let vectors_path = directory.join(VECTORS_FILE);
        let setup_hint = "scripts/setup.sh lays out GloVe 6B 50d in .glove/ (unless SENTMON_SETUP_GLOVE=0)";
        let words_text = fs::read_to_string(&words_path)
            .with_context(|| format!("cannot read word vectors' words {}: {setup_hint}", words_path.display()))?;
        let words: Vec<String> = words_text.lines().map(str::to_owned).collect();
        let vectors = Tensor::read_npy(&vectors_path)
            .with_context(|| format!("cannot read word vectors {}: {setup_hint}", vectors_path.display()))?;
        let shape = vectors.size();
        ensure!(
            shape.len() == 2 && shape[0] == words.len() as i64 && shape[1] > 0,
            "word vectors {} have shape {shape:?} but {} lists {} words: expected [{}, width]; re-run scripts/setup.sh",
            vectors_path.display(),
            words_path.display(),
            words.len(),
            words.len()
        );
        ensure!(
            vectors.kind() == Kind::Float,
            "word vectors {} are {:?}, expected float32",
            vectors_path.display(),
            vectors.kind()
        );
        Ok(WordVectors { words, vectors })
    }

    pub fn width(&self) -> i64 {
        self.vectors.size()[1]
    }

    /// The words, most frequent first.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().map(String::as_str)
    }

    /// Sets each row of the `token_embedding.weight` variable whose token has a vector to that
    /// vector, and every other row to noise of the vectors' own scale (the default N(0, 1) init
    /// would be several times larger and dominate the LSTM's input). Returns how many tokens got
    /// a pretrained vector.
    pub fn initialise_embedding(&self, variables: &VarStore, vocab: &Vocab) -> anyhow::Result<usize> {
        let mut named = variables.variables();
        let Some(embedding) = named.get_mut(EMBEDDING_VARIABLE) else {
            bail!("the network has no {EMBEDDING_VARIABLE} variable to initialise");
        };
        let shape = embedding.size();
        ensure!(
            shape == [vocab.len() as i64, self.width()],
            "the token embedding is {shape:?} but the vocabulary has {} tokens and the word vectors are {} wide: \
             train with --embedding-dim {}",
            vocab.len(),
            self.width(),
            self.width()
        );
        let row_of_word: HashMap<&str, i64> = self.words().enumerate().map(|(row, word)| (word, row as i64)).collect();
        let (token_ids, vector_rows): (Vec<i64>, Vec<i64>) = (0..vocab.len() as i64)
            .filter_map(|id| vocab.token(id).and_then(|token| row_of_word.get(token)).map(|&row| (id, row)))
            .unzip();
        let scale = self.vectors.std(true).double_value(&[]);
        tch::no_grad(|| {
            let noise = Tensor::randn([vocab.len() as i64, self.width()], (Kind::Float, embedding.device())) * scale;
            embedding.copy_(&noise);
            let rows = self.vectors.index_select(0, &Tensor::from_slice(&vector_rows));
            let _ = embedding.index_copy_(0, &Tensor::from_slice(&token_ids), &rows.to_device(embedding.device()));
        });
        Ok(token_ids.len())
    }
}

/// The name `Network` gives its token embedding's weight in the var store.
const EMBEDDING_VARIABLE: &str = "token_embedding.weight";

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::Module;

    use super::*;
    use crate::text::{EncoderConfig, TextEncoder};

    fn write_vectors(directory: &Path, words: &[&str], rows: &[[f32; 3]]) {
        fs::write(directory.join(WORDS_FILE), words.iter().map(|word| format!("{word}\n")).collect::<String>())
            .unwrap();
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 3]).write_npy(directory.join(VECTORS_FILE)).unwrap();
    }

    #[test]
    fn pretrained_words_extend_the_vocabulary_and_set_their_embedding_rows() {
        let directory = tempfile::tempdir().unwrap();
        // "1,192" is a number and "new-york" three tokens for our tokenizer: neither can ever be
        // looked up, so neither may take a vocabulary slot.
        let words = ["rates", "central", "1,192", "new-york", "slump"];
        let rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [0.5, 0.5, 0.5], [-1.0, -2.0, -3.0]];
        write_vectors(directory.path(), &words, &rows);
        let vectors = WordVectors::load(directory.path()).unwrap();

        let config = EncoderConfig { min_token_count: 1, ..EncoderConfig::default() };
        let encoder = TextEncoder::build_with_pretrained_words(config, ["rates rise", "rates fall"], vectors.words());
        let vocab = encoder.vocab();
        for word in ["rates", "rise", "fall", "central", "slump"] {
            assert!(vocab.id(word).is_some(), "{word} should be in the vocabulary");
        }
        assert_eq!(vocab.id("1,192"), None);
        assert_eq!(vocab.id("new-york"), None);
        assert_eq!(encoder.config().max_vocab_size, EncoderConfig::default().max_vocab_size + 2);
        assert_eq!(encoder.encode("slump").token_ids, vec![vocab.id("slump").unwrap()]);

        let variables = VarStore::new(Device::Cpu);
        let embedding =
            tch::nn::embedding(variables.root() / "token_embedding", vocab.len() as i64, 3, Default::default());
        let initialised = vectors.initialise_embedding(&variables, vocab).unwrap();
        assert_eq!(initialised, 3, "rates, central and slump have vectors");
        let row = |word: &str| -> Vec<f32> {
            let id = Tensor::from_slice(&[vocab.id(word).unwrap()]);
            Vec::<f32>::try_from(embedding.forward(&id).view([-1])).unwrap()
        };
        assert_eq!(row("central"), vec![4.0, 5.0, 6.0]);
        assert_eq!(row("slump"), vec![-1.0, -2.0, -3.0]);
        let unseen = row("rise");
        assert!(unseen.iter().all(|value| value.abs() < 20.0), "noise at the vectors' scale, got {unseen:?}");
    }

    #[test]
    fn a_width_mismatch_names_the_flag_that_fixes_it() {
        let directory = tempfile::tempdir().unwrap();
        write_vectors(directory.path(), &["rates"], &[[1.0, 2.0, 3.0]]);
        let vectors = WordVectors::load(directory.path()).unwrap();
        let encoder = TextEncoder::build(EncoderConfig::default(), ["rates"]);
        let variables = VarStore::new(Device::Cpu);
        let _embedding = tch::nn::embedding(
            variables.root() / "token_embedding",
            encoder.vocab().len() as i64,
            4,
            Default::default(),
        );
        let error = vectors.initialise_embedding(&variables, encoder.vocab()).unwrap_err().to_string();
        assert!(error.contains("--embedding-dim 3"), "{error}");
    }

    #[test]
    fn missing_files_say_how_to_get_them() {
        let directory = tempfile::tempdir().unwrap();
        let error = WordVectors::load(directory.path()).err().unwrap().to_string();
        assert!(error.contains("scripts/setup.sh"), "{error}");
        assert!(error.contains(WORDS_FILE), "{error}");
    }
}
