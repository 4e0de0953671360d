//! Hashed bag-of-n-grams feature ids, identical across runs, builds and platforms.
//!
//! Three families, each hashed with its own leading byte so they do not collide systematically:
//! token unigrams and bigrams (over token texts, so they carry information for tokens outside the
//! vocabulary; consecutive CJK tokens make character bigrams), then character n-grams of each
//! `Word` token wrapped as `<word>`. Unigrams and bigrams come first so that, when the list hits
//! `max_features`, only the character n-grams of the last words are lost.

use std::hash::Hasher;
use std::iter;

use super::encoder::EncoderConfig;
use super::tokenizer::{BorrowedToken, TokenKind};

/// FNV-1a 64-bit parameters (<http://www.isthe.com/chongo/tech/comp/fnv/>): a fixed, seedless hash,
/// unlike std's `RandomState`, so a saved model sees the same buckets in every process.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// First byte hashed for each feature family.
const UNIGRAM_FAMILY: u8 = b'u';
const BIGRAM_FAMILY: u8 = b'b';
const CHAR_NGRAM_FAMILY: u8 = b'c';

/// Marks around a word for its character n-grams, as in fastText, so prefixes and suffixes
/// (`<un`, `ing>`) are features of their own.
const WORD_START_MARK: char = '<';
const WORD_END_MARK: char = '>';

/// FNV-1a with a MurmurHash3 finaliser on output. Also the vocabulary's map hasher: lookups of
/// short tokens are several times cheaper than with SipHash, and the map is fixed after training,
/// so untrusted input cannot grow a colliding bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1aHasher {
    state: u64,
}

impl Default for Fnv1aHasher {
    fn default() -> Self {
        Self { state: FNV_OFFSET_BASIS }
    }
}

impl Fnv1aHasher {
    fn for_family(family: u8) -> Self {
        let mut hasher = Self::default();
        hasher.write_u8(family);
        hasher
    }

    fn write_char(&mut self, character: char) {
        let mut utf8 = [0; 4];
        self.write(character.encode_utf8(&mut utf8).as_bytes());
    }
}

impl Hasher for Fnv1aHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.state = (self.state ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
    }

    /// FNV's low bits mix poorly on short inputs and buckets are taken modulo the bucket count,
    /// so the state goes through MurmurHash3's 64-bit finaliser (fmix64).
    fn finish(&self) -> u64 {
        let mut mixed = self.state;
        mixed ^= mixed >> 33;
        mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^= mixed >> 33;
        mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        mixed ^ (mixed >> 33)
    }
}

/// Collects bucket ids until `max_features` is reached.
struct FeatureSink {
    feature_ids: Vec<i64>,
    bucket_count: u64,
    max_features: usize,
}

impl FeatureSink {
    /// Adds the bucket of `hash`; returns whether there is room for more.
    fn push(&mut self, hash: u64) -> bool {
        if self.feature_ids.len() >= self.max_features {
            return false;
        }
        let bucket = hash % self.bucket_count;
        // A bucket is below a u32 bucket count, so it always fits an i64.
        self.feature_ids.push(bucket as i64);
        self.feature_ids.len() < self.max_features
    }
}

/// Feature ids of an already capped token sequence, each in `0..config.feature_buckets`, at most
/// `config.max_features` of them, token uni/bigrams first, then character n-grams; returned with
/// the number of token n-grams. Repeats are kept: the list is a bag and counts carry signal.
pub(crate) fn hashed_feature_ids(tokens: &[BorrowedToken<'_>], config: &EncoderConfig) -> (Vec<i64>, usize) {
    let word_char_count: usize =
        tokens.iter().filter(|token| token.kind == TokenKind::Word).map(|token| token.text.len()).sum();
    let expected_features = 2 * tokens.len() + 3 * word_char_count;
    let mut sink = FeatureSink {
        feature_ids: Vec::with_capacity(expected_features.min(config.max_features)),
        bucket_count: u64::from(config.feature_buckets),
        max_features: config.max_features,
    };
    let room_left = push_token_ngrams(tokens, &mut sink);
    let token_feature_count = sink.feature_ids.len();
    if room_left {
        for token in tokens.iter().filter(|token| token.kind == TokenKind::Word) {
            if !push_char_ngrams(&token.text, config, &mut sink) {
                break;
            }
        }
    }
    (sink.feature_ids, token_feature_count)
}

/// Pushes each token's unigram and its bigram with the previous token; returns whether there is
/// room for more.
fn push_token_ngrams(tokens: &[BorrowedToken<'_>], sink: &mut FeatureSink) -> bool {
    let mut previous_unigram: Option<u64> = None;
    for token in tokens {
        let mut unigram_hasher = Fnv1aHasher::for_family(UNIGRAM_FAMILY);
        unigram_hasher.write(token.text.as_bytes());
        let unigram = unigram_hasher.finish();
        if !sink.push(unigram) {
            return false;
        }
        if let Some(previous_unigram) = previous_unigram {
            let mut bigram_hasher = Fnv1aHasher::for_family(BIGRAM_FAMILY);
            // Little-endian bytes, not `write_u64`, whose native byte order differs by platform.
            bigram_hasher.write(&previous_unigram.to_le_bytes());
            bigram_hasher.write(&unigram.to_le_bytes());
            if !sink.push(bigram_hasher.finish()) {
                return false;
            }
        }
        previous_unigram = Some(unigram);
    }
    true
}

/// Pushes the character n-grams of `<word>` hashed straight off the chars, without building
/// strings; returns whether there is room for more.
fn push_char_ngrams(word: &str, config: &EncoderConfig, sink: &mut FeatureSink) -> bool {
    let mut window_starts = iter::once(WORD_START_MARK).chain(word.chars()).chain(iter::once(WORD_END_MARK));
    loop {
        let mut hasher = Fnv1aHasher::for_family(CHAR_NGRAM_FAMILY);
        for (ngram_length, character) in (1..=config.char_ngram_max).zip(window_starts.clone()) {
            hasher.write_char(character);
            if ngram_length >= config.char_ngram_min && !sink.push(hasher.finish()) {
                return false;
            }
        }
        if window_starts.next().is_none() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn word(text: &str) -> BorrowedToken<'_> {
        BorrowedToken { text: Cow::Borrowed(text), kind: TokenKind::Word }
    }

    #[test]
    fn fnv1a_matches_the_published_test_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (reference test suite, before our finaliser).
        let mut hasher = Fnv1aHasher::default();
        hasher.write(b"a");
        assert_eq!(hasher.state, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn counts_unigrams_bigrams_and_char_ngrams() {
        let config = EncoderConfig::default();
        // "<ab>" has 2 3-grams and 1 4-gram; "<c>" has 1 3-gram.
        let feature_ids = hashed_feature_ids(&[word("ab"), word("c")], &config).0;
        assert_eq!(feature_ids.len(), 2 + 1 + 3 + 1);
    }

    #[test]
    fn families_do_not_share_buckets_for_the_same_text() {
        let config = EncoderConfig::default();
        // "<a>" is both the whole-word 3-gram of "a" and, below, a unigram of the token "<a>".
        let char_ngram = hashed_feature_ids(&[word("a")], &config).0[1];
        let unigram = hashed_feature_ids(&[word("<a>")], &config).0[0];
        assert_ne!(char_ngram, unigram);
    }

    #[test]
    fn stops_at_max_features_with_token_ngrams_first() {
        let config = EncoderConfig { max_features: 3, ..EncoderConfig::default() };
        let tokens = [word("alpha"), word("beta")];
        let capped = hashed_feature_ids(&tokens, &config).0;
        let uncapped = hashed_feature_ids(&tokens, &EncoderConfig::default()).0;
        assert_eq!(capped, uncapped[..3]);
        let none = EncoderConfig { max_features: 0, ..EncoderConfig::default() };
        assert!(hashed_feature_ids(&tokens, &none).0.is_empty());
    }
}
