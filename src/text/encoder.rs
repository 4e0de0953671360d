//! Vocabulary and encoder: raw text to the LSTM's token ids plus hashed n-gram feature ids,
//! saved in a model bundle as `tokenizer.json`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::features::{Fnv1aHasher, hashed_feature_ids};
use super::normalize::{MAX_INPUT_CHARS, normalize};
use super::tokenizer::{BorrowedToken, MENTION_TOKEN, NUMBER_TOKEN, TokenIterator, TokenKind, URL_TOKEN};

/// Padding in batches; never emitted by `encode`.
pub const PAD_ID: i64 = 0;
/// Words, CJK chars, punctuation and symbols that are not in the vocabulary.
pub const UNK_ID: i64 = 1;
pub const URL_ID: i64 = 2;
pub const NUMBER_ID: i64 = 3;
/// Cashtags that are not in the vocabulary: a rare ticker is still a ticker, not an unknown word.
pub const CASHTAG_ID: i64 = 4;
pub const MENTION_ID: i64 = 5;
/// The single token of a text that is empty after normalisation.
pub const EMPTY_ID: i64 = 6;

pub const PAD_TOKEN: &str = "<pad>";
pub const UNK_TOKEN: &str = "<unk>";
pub const CASHTAG_TOKEN: &str = "<cashtag>";
pub const EMPTY_TOKEN: &str = "<empty>";

/// The special tokens, each at the index equal to its id. The tokenizer never produces another
/// token spelled `<...>` (`<` is always a token of its own), so these cannot clash with words.
pub const SPECIAL_TOKENS: [&str; 7] =
    [PAD_TOKEN, UNK_TOKEN, URL_TOKEN, NUMBER_TOKEN, CASHTAG_TOKEN, MENTION_TOKEN, EMPTY_TOKEN];

/// Version of the `tokenizer.json` layout; bump it when the layout or the meaning of ids or
/// feature hashes changes, so an old bundle is refused instead of silently misread.
const TOKENIZER_FORMAT_VERSION: u32 = 1;

/// Tweets and headlines are about 15-35 tokens; 64 covers nearly all of them whole, and longer
/// texts (articles pasted into a post) keep their opening, which carries the topic.
const DEFAULT_MAX_TOKENS: usize = 64;
/// 65,536 buckets keep collisions rare for the ~10^5 distinct n-grams of a few hundred thousand
/// messages, while the feature embedding table stays small (64 Ki rows).
const DEFAULT_FEATURE_BUCKETS: u32 = 1 << 16;
/// A 64-token message has at most 127 unigrams and bigrams plus about 12 character n-grams per
/// 5-letter word (~40 words in a tweet-length text): 768 keeps all of them for typical input.
const DEFAULT_MAX_FEATURES: usize = 768;
/// fastText's subword range starts at 3; stopping at 5 rather than its 6 bounds the cost per word
/// while keeping stems and affixes (`infl`, `ation>`).
const DEFAULT_CHAR_NGRAM_MIN: usize = 3;
const DEFAULT_CHAR_NGRAM_MAX: usize = 5;
/// A token seen once is mostly a typo, an id or a name, and its embedding would be trained on a
/// single example; the hashed features still cover it.
const DEFAULT_MIN_TOKEN_COUNT: usize = 2;
/// Enough for the frequent English words and the ~3,500 common Chinese characters of financial
/// text, while keeping the embedding table small.
const DEFAULT_MAX_VOCAB_SIZE: usize = 20_000;
/// Longer character n-grams are nearly whole words, duplicating the unigram at extra cost.
const MAX_CHAR_NGRAM: usize = 10;

/// How text becomes ids. Stored in `tokenizer.json`; a training config may embed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// Tokens kept per text, the first ones (default 64, at most `MAX_INPUT_CHARS`).
    pub max_tokens: usize,
    /// Size of the hashed bag-of-n-grams feature space (default 65,536).
    pub feature_buckets: u32,
    /// Feature ids kept per text (default 768; 0 turns features off).
    pub max_features: usize,
    /// Shortest character n-gram of a word, in chars, counting the `<` `>` marks (default 3).
    pub char_ngram_min: usize,
    /// Longest character n-gram of a word, in chars (default 5, at most 10).
    pub char_ngram_max: usize,
    /// Occurrences a token needs in the training texts to enter the vocabulary (default 2).
    pub min_token_count: usize,
    /// Vocabulary size including the 7 special tokens (default 20,000).
    pub max_vocab_size: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            feature_buckets: DEFAULT_FEATURE_BUCKETS,
            max_features: DEFAULT_MAX_FEATURES,
            char_ngram_min: DEFAULT_CHAR_NGRAM_MIN,
            char_ngram_max: DEFAULT_CHAR_NGRAM_MAX,
            min_token_count: DEFAULT_MIN_TOKEN_COUNT,
            max_vocab_size: DEFAULT_MAX_VOCAB_SIZE,
        }
    }
}

/// Every problem of an `EncoderConfig`, so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid encoder config: {}", .problems.join("; "))]
pub struct EncoderConfigError {
    pub problems: Vec<String>,
}

impl EncoderConfig {
    pub fn validate(&self) -> Result<(), EncoderConfigError> {
        let mut problems = Vec::new();
        if !(1..=MAX_INPUT_CHARS).contains(&self.max_tokens) {
            problems.push(format!("max_tokens is {} but must be between 1 and {MAX_INPUT_CHARS}", self.max_tokens));
        }
        if self.feature_buckets == 0 {
            problems.push("feature_buckets is 0 but must be at least 1".to_owned());
        }
        if self.char_ngram_min == 0 {
            problems.push("char_ngram_min is 0 but must be at least 1".to_owned());
        }
        if !(self.char_ngram_min..=MAX_CHAR_NGRAM).contains(&self.char_ngram_max) {
            problems.push(format!(
                "char_ngram_max is {} but must be between char_ngram_min ({}) and {MAX_CHAR_NGRAM}",
                self.char_ngram_max, self.char_ngram_min
            ));
        }
        if self.min_token_count == 0 {
            problems.push("min_token_count is 0 but must be at least 1".to_owned());
        }
        if self.max_vocab_size < SPECIAL_TOKENS.len() {
            problems.push(format!(
                "max_vocab_size is {} but must be at least {} (the special tokens)",
                self.max_vocab_size,
                SPECIAL_TOKENS.len()
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(EncoderConfigError { problems }) }
    }
}

/// Why a token list is not a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VocabError {
    #[error("vocabulary has {found} tokens, fewer than the {expected} special tokens")]
    MissingSpecialTokens { found: usize, expected: usize },
    #[error("vocabulary id {id} is {found:?} but must be the special token {expected:?}")]
    MisplacedSpecialToken { id: usize, found: String, expected: &'static str },
    #[error("vocabulary token {token:?} appears at ids {first_id} and {second_id}")]
    DuplicateToken { token: String, first_id: i64, second_id: i64 },
    #[error("vocabulary id {id} is an empty token")]
    EmptyToken { id: usize },
}

type TokenIndex = HashMap<String, i64, BuildHasherDefault<Fnv1aHasher>>;

/// Token texts by id, the specials first at their fixed ids. Deserialising validates and rebuilds
/// the index, so every `Vocab` in memory is consistent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SerializedVocab")]
pub struct Vocab {
    tokens: Vec<String>,
    #[serde(skip)]
    index: TokenIndex,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerializedVocab {
    tokens: Vec<String>,
}

impl TryFrom<SerializedVocab> for Vocab {
    type Error = VocabError;

    fn try_from(serialized: SerializedVocab) -> Result<Self, VocabError> {
        Self::from_tokens(serialized.tokens)
    }
}

impl Vocab {
    /// Checks that the specials sit at their ids and that tokens are non-empty and distinct.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Self, VocabError> {
        if tokens.len() < SPECIAL_TOKENS.len() {
            return Err(VocabError::MissingSpecialTokens { found: tokens.len(), expected: SPECIAL_TOKENS.len() });
        }
        for (id, (token, expected)) in tokens.iter().zip(SPECIAL_TOKENS).enumerate() {
            if token != expected {
                return Err(VocabError::MisplacedSpecialToken { id, found: token.clone(), expected });
            }
        }
        let mut index = TokenIndex::with_capacity_and_hasher(tokens.len(), Default::default());
        for (id, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(VocabError::EmptyToken { id });
            }
            // A Vec cannot hold more than isize::MAX elements, so every index fits an i64.
            let id = id as i64;
            if let Some(first_id) = index.insert(token.clone(), id) {
                return Err(VocabError::DuplicateToken { token: token.clone(), first_id, second_id: id });
            }
        }
        Ok(Self { tokens, index })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: the special tokens are always there.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> Option<i64> {
        self.index.get(token).copied()
    }

    pub fn token(&self, id: i64) -> Option<&str> {
        let index = usize::try_from(id).ok()?;
        self.tokens.get(index).map(String::as_str)
    }
}

/// Model input for one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// 1..=max_tokens ids, each in `0..vocab.len()`, never `PAD_ID`.
    pub token_ids: Vec<i64>,
    /// At most max_features ids, each in `0..feature_buckets`; may repeat.
    pub feature_ids: Vec<i64>,
    /// The first `token_feature_count` feature ids are token uni/bigrams, the rest character
    /// n-grams: the model pools the two families separately so neither drowns the other.
    pub token_feature_count: usize,
}

/// Whether `word` survives normalisation and tokenisation as one word or cashtag spelt the same,
/// i.e. whether `encode` could ever look it up.
fn is_single_vocabulary_token(word: &str) -> bool {
    let normalized = normalize(word);
    let mut tokens = TokenIterator::new(&normalized);
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => {
            matches!(token.kind, TokenKind::Word | TokenKind::Cashtag) && token.text.as_ref() == word
        }
        _ => false,
    }
}

/// The `tokenizer.json` layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizerFile<'a> {
    format_version: u32,
    config: Cow<'a, EncoderConfig>,
    vocab: Cow<'a, Vocab>,
}

/// Normalises, tokenises and maps text to ids with a fixed vocabulary; pure and cheap to share.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEncoder {
    config: EncoderConfig,
    vocab: Vocab,
}

impl TextEncoder {
    /// Builds the vocabulary from raw (unnormalised) training texts: tokens among the first
    /// `max_tokens` of a text (what the model sees) counted, those with count >= min_token_count
    /// kept, most frequent first, ties by token text, at most max_vocab_size including specials.
    /// URLs, numbers and mentions always map to their special tokens and are not counted.
    ///
    /// # Panics
    /// If `config.validate()` fails: check user-supplied configs first.
    pub fn build<'a>(config: EncoderConfig, raw_texts: impl IntoIterator<Item = &'a str>) -> Self {
        Self::build_with_pretrained_words(config, raw_texts, std::iter::empty())
    }

    /// As `build`, then appends `pretrained_words` (in their order, e.g. a word-vector table's
    /// frequency order) that are not in the vocabulary yet and that the tokenizer reads back as
    /// exactly one word or cashtag of the same spelling (others could never be looked up). The
    /// stored `max_vocab_size` grows by the words added, so the tokenizer stays self-consistent.
    /// This is how words never seen in the labelled sets still get their pretrained vector.
    ///
    /// # Panics
    /// If `config.validate()` fails: check user-supplied configs first.
    pub fn build_with_pretrained_words<'a, 'w>(
        config: EncoderConfig,
        raw_texts: impl IntoIterator<Item = &'a str>,
        pretrained_words: impl IntoIterator<Item = &'w str>,
    ) -> Self {
        let counted = Self::build_counted(config, raw_texts);
        let Self { mut config, vocab } = counted;
        let mut tokens = vocab.tokens;
        let mut seen: std::collections::HashSet<&str> = tokens.iter().map(String::as_str).collect();
        let mut added: Vec<String> = Vec::new();
        for word in pretrained_words {
            if seen.contains(word) || !is_single_vocabulary_token(word) {
                continue;
            }
            seen.insert(word);
            added.push(word.to_owned());
        }
        config.max_vocab_size += added.len();
        tokens.extend(added);
        let vocab = Vocab::from_tokens(tokens)
            .expect("counted and pretrained tokens are distinct, non-empty and never spell a special token");
        Self { config, vocab }
    }

    fn build_counted<'a>(config: EncoderConfig, raw_texts: impl IntoIterator<Item = &'a str>) -> Self {
        if let Err(error) = config.validate() {
            panic!("TextEncoder::build needs a valid config: {error}");
        }
        let mut counts: HashMap<String, usize, BuildHasherDefault<Fnv1aHasher>> = HashMap::default();
        for raw_text in raw_texts {
            let normalized = normalize(raw_text);
            for token in TokenIterator::new(&normalized).take(config.max_tokens) {
                if matches!(token.kind, TokenKind::Url | TokenKind::Number | TokenKind::Mention) {
                    continue;
                }
                match counts.get_mut(token.text.as_ref()) {
                    Some(count) => *count += 1,
                    None => {
                        counts.insert(token.text.into_owned(), 1);
                    }
                }
            }
        }
        let mut frequent_tokens: Vec<(String, usize)> =
            counts.into_iter().filter(|(_, count)| *count >= config.min_token_count).collect();
        frequent_tokens.sort_unstable_by(|(left_token, left_count), (right_token, right_count)| {
            right_count.cmp(left_count).then_with(|| left_token.cmp(right_token))
        });
        let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|&token| token.to_owned()).collect();
        tokens.extend(
            frequent_tokens.into_iter().take(config.max_vocab_size - SPECIAL_TOKENS.len()).map(|(token, _)| token),
        );
        let vocab =
            Vocab::from_tokens(tokens).expect("counted tokens are distinct, non-empty and never spell a special token");
        Self { config, vocab }
    }

    /// An encoder with a vocabulary made elsewhere (a pretrained encoder's), checked against
    /// the config: valid, and no more tokens than `max_vocab_size`.
    pub fn with_vocab(config: EncoderConfig, vocab: Vocab) -> anyhow::Result<Self> {
        config.validate()?;
        if vocab.len() > config.max_vocab_size {
            bail!("the vocabulary has {} tokens, more than max_vocab_size {}", vocab.len(), config.max_vocab_size);
        }
        Ok(Self { config, vocab })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// normalize, tokenize, keep the first max_tokens tokens, map them to ids (unknown cashtags to
    /// `CASHTAG_ID`, other unknown tokens to `UNK_ID`) and hash their n-grams. A text with no
    /// tokens encodes as `[EMPTY_ID]`. Bounded and panic-free for any input.
    pub fn encode(&self, raw: &str) -> EncodedText {
        let normalized = normalize(raw);
        let mut tokens: Vec<BorrowedToken<'_>> = TokenIterator::new(&normalized).take(self.config.max_tokens).collect();
        if tokens.is_empty() {
            // As a symbol it maps to EMPTY_ID through the vocabulary and hashes like any token.
            tokens.push(BorrowedToken { text: Cow::Borrowed(EMPTY_TOKEN), kind: TokenKind::Symbol });
        }
        let token_ids = tokens.iter().map(|token| self.token_id(token)).collect();
        let (feature_ids, token_feature_count) = hashed_feature_ids(&tokens, &self.config);
        EncodedText { token_ids, feature_ids, token_feature_count }
    }

    fn token_id(&self, token: &BorrowedToken<'_>) -> i64 {
        match token.kind {
            TokenKind::Url => URL_ID,
            TokenKind::Number => NUMBER_ID,
            TokenKind::Mention => MENTION_ID,
            TokenKind::Cashtag => self.vocab.id(&token.text).unwrap_or(CASHTAG_ID),
            TokenKind::Word | TokenKind::Cjk | TokenKind::Punctuation | TokenKind::Symbol => {
                self.vocab.id(&token.text).unwrap_or(UNK_ID)
            }
        }
    }

    /// Writes config and vocabulary as JSON (the bundle's `tokenizer.json`), through a temporary
    /// file renamed into place so a crash never leaves a half-written file under `path`.
    pub fn save_json(&self, path: &Path) -> anyhow::Result<()> {
        let file_contents = TokenizerFile {
            format_version: TOKENIZER_FORMAT_VERSION,
            config: Cow::Borrowed(&self.config),
            vocab: Cow::Borrowed(&self.vocab),
        };
        let json = serde_json::to_vec_pretty(&file_contents).context("failed to serialise tokenizer")?;
        let temporary_path = path.with_extension("json.tmp");
        let write_result = File::create(&temporary_path).and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        });
        write_result.with_context(|| format!("failed to write {}", temporary_path.display()))?;
        fs::rename(&temporary_path, path)
            .with_context(|| format!("failed to move {} to {}", temporary_path.display(), path.display()))
    }

    /// Reads a file written by `save_json`, rebuilding the index and validating the format
    /// version, the config, the special tokens and token uniqueness; errors name the bad value.
    pub fn load_json(path: &Path) -> anyhow::Result<Self> {
        let bytes = fs::read(path).with_context(|| format!("failed to read tokenizer {}", path.display()))?;
        let file_contents: TokenizerFile<'static> =
            serde_json::from_slice(&bytes).with_context(|| format!("failed to parse tokenizer {}", path.display()))?;
        if file_contents.format_version != TOKENIZER_FORMAT_VERSION {
            bail!(
                "tokenizer {} has format_version {} but this build reads version {TOKENIZER_FORMAT_VERSION}",
                path.display(),
                file_contents.format_version
            );
        }
        let config = file_contents.config.into_owned();
        let vocab = file_contents.vocab.into_owned();
        config.validate().with_context(|| format!("tokenizer {} has an invalid config", path.display()))?;
        if vocab.len() > config.max_vocab_size {
            bail!(
                "tokenizer {} has {} vocabulary tokens, more than its max_vocab_size {}",
                path.display(),
                vocab.len(),
                config.max_vocab_size
            );
        }
        Ok(Self { config, vocab })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    const TRAINING_TEXTS: [&str; 6] = [
        "Fed cuts rates; $AAPL rallies https://t.co/a",
        "fed holds rates, $aapl flat",
        "央行降息，股市大涨！",
        "央行加息，股市下跌",
        "@trader $TSLA up 5% on earnings",
        "Earnings beat: $TSLA up",
    ];

    fn training_encoder() -> TextEncoder {
        TextEncoder::build(EncoderConfig::default(), TRAINING_TEXTS)
    }

    fn id_of(encoder: &TextEncoder, token: &str) -> i64 {
        encoder.vocab().id(token).unwrap_or_else(|| panic!("{token:?} should be in the vocabulary"))
    }

    #[test]
    fn specials_sit_at_their_ids() {
        let encoder = training_encoder();
        for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(encoder.vocab().id(token), Some(id as i64));
            assert_eq!(encoder.vocab().token(id as i64), Some(*token));
        }
        assert_eq!(encoder.vocab().id("<pad>"), Some(PAD_ID));
        assert_eq!(encoder.vocab().id("<unk>"), Some(UNK_ID));
        assert_eq!(encoder.vocab().token(-1), None);
        assert_eq!(encoder.vocab().token(encoder.vocab().len() as i64), None);
    }

    #[test]
    fn build_orders_by_frequency_then_text_and_is_deterministic() {
        let encoder = training_encoder();
        let learned: Vec<&str> =
            (SPECIAL_TOKENS.len()..encoder.vocab().len()).map(|id| encoder.vocab().token(id as i64).unwrap()).collect();
        // `,` is counted three times, the rest twice (sorted by text, so by code point);
        // singletons such as `cuts` are left out.
        assert_eq!(learned, [",", "$aapl", "$tsla", "earnings", "fed", "rates", "up", "央", "市", "息", "股", "行"]);
        let reversed: Vec<&str> = TRAINING_TEXTS.iter().rev().copied().collect();
        assert_eq!(TextEncoder::build(EncoderConfig::default(), reversed), encoder);
    }

    #[test]
    fn build_respects_max_vocab_size_and_min_token_count() {
        let config =
            EncoderConfig { max_vocab_size: SPECIAL_TOKENS.len() + 2, min_token_count: 1, ..EncoderConfig::default() };
        let encoder = TextEncoder::build(config, TRAINING_TEXTS);
        assert_eq!(encoder.vocab().len(), SPECIAL_TOKENS.len() + 2);
        assert_eq!(encoder.vocab().token(SPECIAL_TOKENS.len() as i64), Some(","));
    }

    #[test]
    fn encodes_known_unknown_and_special_tokens() {
        let encoder = training_encoder();
        let encoded = encoder.encode("FED: $AAPL $ZZZZ @bob www.x.com 3.5% boom");
        assert_eq!(
            encoded.token_ids,
            [
                id_of(&encoder, "fed"),
                UNK_ID,
                id_of(&encoder, "$aapl"),
                CASHTAG_ID,
                MENTION_ID,
                URL_ID,
                NUMBER_ID,
                UNK_ID,
                UNK_ID,
            ]
        );
    }

    #[test]
    fn empty_text_encodes_to_the_empty_token() {
        let encoder = training_encoder();
        for raw in ["", "   ", "\u{200b}\u{feff}", "\0\t"] {
            let encoded = encoder.encode(raw);
            assert_eq!(encoded.token_ids, [EMPTY_ID]);
            assert_eq!(encoded.feature_ids.len(), 1);
        }
    }

    #[test]
    fn long_text_keeps_the_first_max_tokens() {
        let encoder = training_encoder();
        let text = format!("fed {}", "boom ".repeat(500));
        let encoded = encoder.encode(&text);
        assert_eq!(encoded.token_ids.len(), DEFAULT_MAX_TOKENS);
        assert_eq!(encoded.token_ids[0], id_of(&encoder, "fed"));
        assert!(encoded.feature_ids.len() <= DEFAULT_MAX_FEATURES);
    }

    #[test]
    fn out_of_vocabulary_words_still_get_distinct_features() {
        let encoder = training_encoder();
        let first = encoder.encode("bankruptcy");
        let second = encoder.encode("windfall");
        assert_eq!(first.token_ids, second.token_ids);
        assert_ne!(first.feature_ids, second.feature_ids);
    }

    #[test]
    fn feature_ids_are_stable_across_releases() {
        // Trained models depend on these buckets: a change here needs a new
        // TOKENIZER_FORMAT_VERSION, not an updated expectation.
        let encoded = training_encoder().encode("Fed 降息");
        assert_eq!(encoded.feature_ids, GOLDEN_FEATURE_IDS);
    }

    /// Unigrams and bigrams of `fed 降 息`, then the 3-, 4- and 5-grams of `<fed>`.
    const GOLDEN_FEATURE_IDS: [i64; 11] = [37750, 38513, 7840, 23782, 65242, 9237, 33367, 5566, 25649, 34070, 57744];

    #[test]
    fn save_and_load_round_trip() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("tokenizer.json");
        let encoder = training_encoder();
        encoder.save_json(&path).unwrap();
        let loaded = TextEncoder::load_json(&path).unwrap();
        assert_eq!(loaded, encoder);
        let text = "Fed cuts $AAPL 央行 unknownword";
        assert_eq!(loaded.encode(text), encoder.encode(text));
        assert!(!directory.path().join("tokenizer.json.tmp").exists());
    }

    /// Saves the training encoder, rewrites its JSON with `corrupt`, and returns the load error.
    fn load_error_after(corrupt: impl FnOnce(&mut serde_json::Value)) -> String {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("tokenizer.json");
        training_encoder().save_json(&path).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        corrupt(&mut json);
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        format!("{:#}", TextEncoder::load_json(&path).unwrap_err())
    }

    #[test]
    fn load_rejects_truncated_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("tokenizer.json");
        training_encoder().save_json(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let error = format!("{:#}", TextEncoder::load_json(&path).unwrap_err());
        assert!(error.contains("failed to parse tokenizer"), "{error}");
        assert!(error.contains("EOF"), "{error}");
    }

    #[test]
    fn load_rejects_misplaced_special_token() {
        let error = load_error_after(|json| json["vocab"]["tokens"][3] = "fed".into());
        assert!(error.contains(r#"vocabulary id 3 is "fed" but must be the special token "<num>""#), "{error}");
    }

    #[test]
    fn load_rejects_duplicate_token() {
        let error = load_error_after(|json| json["vocab"]["tokens"][8] = "fed".into());
        assert!(error.contains(r#"vocabulary token "fed" appears at ids"#), "{error}");
    }

    #[test]
    fn load_rejects_invalid_config_naming_every_bad_field() {
        let error = load_error_after(|json| {
            json["config"]["max_tokens"] = 0.into();
            json["config"]["char_ngram_max"] = 2.into();
        });
        assert!(error.contains("max_tokens is 0"), "{error}");
        assert!(error.contains("char_ngram_max is 2"), "{error}");
    }

    #[test]
    fn load_rejects_unknown_fields_and_versions() {
        let error = load_error_after(|json| json["config"]["max_token"] = 3.into());
        assert!(error.contains("unknown field `max_token`"), "{error}");
        let error = load_error_after(|json| json["format_version"] = 99.into());
        assert!(error.contains("format_version 99"), "{error}");
        let error = load_error_after(|json| json["config"]["max_vocab_size"] = 8.into());
        assert!(error.contains("more than its max_vocab_size 8"), "{error}");
    }

    #[test]
    fn config_validation_lists_every_problem() {
        let config = EncoderConfig {
            feature_buckets: 0,
            char_ngram_min: 0,
            min_token_count: 0,
            max_vocab_size: 3,
            ..EncoderConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.problems.len(), 4, "{error}");
        assert!(EncoderConfig::default().validate().is_ok());
    }

    #[test]
    fn ten_megabyte_input_encodes_to_bounded_output() {
        let encoder = training_encoder();
        let unit = "$AAPL 上涨 5% https://t.co/x &amp; ÀÉ 🚀 ";
        let huge = unit.repeat(10 * 1024 * 1024 / unit.len());
        let encoded = encoder.encode(&huge);
        assert_eq!(encoded.token_ids.len(), DEFAULT_MAX_TOKENS);
        assert!(encoded.feature_ids.len() <= DEFAULT_MAX_FEATURES);
    }

    fn assert_encode_invariants(encoder: &TextEncoder, raw: &str) {
        let encoded = encoder.encode(raw);
        let config = encoder.config();
        assert!(!encoded.token_ids.is_empty());
        assert!(encoded.token_ids.len() <= config.max_tokens);
        let vocab_size = encoder.vocab().len() as i64;
        assert!(encoded.token_ids.iter().all(|id| (1..vocab_size).contains(id)));
        assert!(encoded.feature_ids.len() <= config.max_features);
        let buckets = i64::from(config.feature_buckets);
        assert!(encoded.feature_ids.iter().all(|id| (0..buckets).contains(id)));
        assert_eq!(encoded, encoder.encode(raw), "encode must be deterministic");
    }

    /// The default encoder and one whose every limit is tiny, built once for all property cases.
    static ENCODERS: LazyLock<[TextEncoder; 2]> = LazyLock::new(|| {
        let tight = EncoderConfig {
            max_tokens: 3,
            feature_buckets: 7,
            max_features: 5,
            char_ngram_min: 1,
            char_ngram_max: 2,
            min_token_count: 1,
            max_vocab_size: 12,
        };
        [training_encoder(), TextEncoder::build(tight, TRAINING_TEXTS)]
    });

    fn cjk_and_ascii_string() -> impl Strategy<Value = String> {
        let characters = prop_oneof![
            prop::char::range('\u{4e00}', '\u{9fff}'),
            prop::char::range('\u{3000}', '\u{30ff}'),
            prop::char::range('\u{ac00}', '\u{d7a3}'),
            prop::char::range('\u{ff00}', '\u{ffef}'),
            prop::char::range(' ', '~'),
        ];
        prop::collection::vec(characters, 0..128).prop_map(String::from_iter)
    }

    fn control_and_mark_string() -> impl Strategy<Value = String> {
        let characters = prop_oneof![
            prop::char::range('\0', '\u{1f}'),
            prop::char::range('\u{300}', '\u{36f}'),
            prop::char::range('\u{200b}', '\u{200f}'),
            prop::char::range('\u{202a}', '\u{202e}'),
            prop::char::range('\u{5d0}', '\u{5ea}'),
            Just('\u{feff}'),
            prop::char::range('a', 'z'),
            Just('$'),
            Just('@'),
        ];
        prop::collection::vec(characters, 0..128).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn encode_invariants_hold_for_any_string(raw in any::<String>()) {
            for encoder in ENCODERS.iter() {
                assert_encode_invariants(encoder, &raw);
            }
        }

        #[test]
        fn encode_invariants_hold_for_printable_text(raw in "\\PC*") {
            for encoder in ENCODERS.iter() {
                assert_encode_invariants(encoder, &raw);
            }
        }

        #[test]
        fn encode_invariants_hold_for_cjk_text(raw in cjk_and_ascii_string()) {
            for encoder in ENCODERS.iter() {
                assert_encode_invariants(encoder, &raw);
            }
        }

        #[test]
        fn encode_invariants_hold_for_controls_and_marks(raw in control_and_mark_string()) {
            for encoder in ENCODERS.iter() {
                assert_encode_invariants(encoder, &raw);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn encode_invariants_hold_for_megabyte_inputs(
            unit in "\\PC{1,64}",
            repetitions in 1usize..20_000,
        ) {
            let raw = unit.repeat(repetitions);
            for encoder in ENCODERS.iter() {
                assert_encode_invariants(encoder, &raw);
            }
        }
    }
}
