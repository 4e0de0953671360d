//! Text normalisation and tokenisation for English and Chinese (pure code), the encoder that
//! turns raw text into the model's token ids and hashed n-gram features, and the language gate.

mod encoder;
mod features;
pub mod language;
mod normalize;
mod tokenizer;

pub use encoder::{
    CASHTAG_ID, CASHTAG_TOKEN, EMPTY_ID, EMPTY_TOKEN, EncodedText, EncoderConfig, EncoderConfigError, MENTION_ID,
    NUMBER_ID, PAD_ID, PAD_TOKEN, SPECIAL_TOKENS, TextEncoder, UNK_ID, UNK_TOKEN, URL_ID, Vocab, VocabError,
};
pub use normalize::{MAX_INPUT_CHARS, dedup_key, normalize};
pub use tokenizer::{MENTION_TOKEN, NUMBER_TOKEN, Token, TokenKind, URL_TOKEN, tokenize};
