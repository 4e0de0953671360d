//! Turns encoded texts into the padded tensors the network consumes (one place, used by
//! training and inference alike, so both see exactly the same layout).

use tch::{Kind, Tensor};

use crate::text::{EncodedText, PAD_ID, UNK_ID};

/// Marks a position that a language-model loss must skip (torch's `ignore_index` default).
pub const IGNORED_TARGET: i64 = -100;

/// A right-padded batch: `tokens` is `[batch, max_len]`, real tokens first, `PAD_ID` after.
pub struct TensorBatch {
    pub tokens: Tensor,
    /// True lengths, `[batch]`, int64; every length is at least 1 (the encoder never emits an empty text).
    pub lengths: Tensor,
    /// `[batch, max_len]`: position of each step in the per-sequence reversed order (pads stay in
    /// place), so the backward LSTM sees each text reversed within its own length and its outputs
    /// at real positions are exactly those of the text run alone.
    pub reverse_index: Tensor,
    /// `[batch, max_len]` bool, true at real tokens.
    pub mask: Tensor,
    /// Concatenated hashed token uni/bigram ids of every text, with `token_feature_offsets[i]`
    /// where text i starts (the input `embedding_bag` takes).
    pub token_feature_ids: Tensor,
    pub token_feature_offsets: Tensor,
    /// The same for character n-grams.
    pub char_feature_ids: Tensor,
    pub char_feature_offsets: Tensor,
    pub batch_size: i64,
    pub max_len: i64,
}

impl TensorBatch {
    pub fn new(encoded_texts: &[&EncodedText]) -> TensorBatch {
        let batch_size = encoded_texts.len();
        debug_assert!(batch_size > 0, "a batch holds at least one text");
        let max_len = encoded_texts.iter().map(|encoded| encoded.token_ids.len()).max().unwrap_or(1);
        let mut tokens = Vec::with_capacity(batch_size * max_len);
        let mut reverse_index = Vec::with_capacity(batch_size * max_len);
        let mut mask = Vec::with_capacity(batch_size * max_len);
        let mut lengths = Vec::with_capacity(batch_size);
        let mut token_feature_ids = Vec::new();
        let mut token_feature_offsets = Vec::with_capacity(batch_size);
        let mut char_feature_ids = Vec::new();
        let mut char_feature_offsets = Vec::with_capacity(batch_size);
        for encoded in encoded_texts {
            let length = encoded.token_ids.len();
            debug_assert!(length >= 1);
            lengths.push(length as i64);
            tokens.extend_from_slice(&encoded.token_ids);
            tokens.extend(std::iter::repeat_n(PAD_ID, max_len - length));
            reverse_index.extend((0..length).rev().map(|position| position as i64));
            reverse_index.extend((length..max_len).map(|position| position as i64));
            mask.extend(std::iter::repeat_n(true, length));
            mask.extend(std::iter::repeat_n(false, max_len - length));
            let (token_features, char_features) = encoded.feature_ids.split_at(encoded.token_feature_count);
            token_feature_offsets.push(token_feature_ids.len() as i64);
            token_feature_ids.extend_from_slice(token_features);
            char_feature_offsets.push(char_feature_ids.len() as i64);
            char_feature_ids.extend_from_slice(char_features);
        }
        let shape = [batch_size as i64, max_len as i64];
        TensorBatch {
            tokens: Tensor::from_slice(&tokens).view(shape),
            lengths: Tensor::from_slice(&lengths),
            reverse_index: Tensor::from_slice(&reverse_index).view(shape),
            mask: Tensor::from_slice(&mask).view(shape),
            token_feature_ids: Tensor::from_slice(&token_feature_ids),
            token_feature_offsets: Tensor::from_slice(&token_feature_offsets),
            char_feature_ids: Tensor::from_slice(&char_feature_ids),
            char_feature_offsets: Tensor::from_slice(&char_feature_offsets),
            batch_size: shape[0],
            max_len: shape[1],
        }
    }
}

/// Next-token (forward) and previous-token (backward) targets for language-model pretraining,
/// both `[batch, max_len]`. Tokens at or beyond `output_vocab_size` become `UNK_ID`: the
/// vocabulary is sorted by frequency, so this keeps the softmax small and covers most tokens.
pub fn language_model_targets(encoded_texts: &[&EncodedText], output_vocab_size: i64) -> (Tensor, Tensor) {
    let max_len = encoded_texts.iter().map(|encoded| encoded.token_ids.len()).max().unwrap_or(1);
    let clamp = |token_id: i64| if token_id < output_vocab_size { token_id } else { UNK_ID };
    let mut next_tokens = Vec::with_capacity(encoded_texts.len() * max_len);
    let mut previous_tokens = Vec::with_capacity(encoded_texts.len() * max_len);
    for encoded in encoded_texts {
        let ids = &encoded.token_ids;
        for position in 0..max_len {
            next_tokens.push(ids.get(position + 1).map_or(IGNORED_TARGET, |&id| clamp(id)));
            let previous =
                if position >= 1 && position < ids.len() { clamp(ids[position - 1]) } else { IGNORED_TARGET };
            previous_tokens.push(previous);
        }
    }
    let shape = [encoded_texts.len() as i64, max_len as i64];
    (
        Tensor::from_slice(&next_tokens).view(shape).to_kind(Kind::Int64),
        Tensor::from_slice(&previous_tokens).view(shape).to_kind(Kind::Int64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(token_ids: &[i64]) -> EncodedText {
        EncodedText { token_ids: token_ids.to_vec(), feature_ids: vec![7, 8, 9], token_feature_count: 2 }
    }

    #[test]
    fn pads_and_reverses_each_text_within_its_own_length() {
        let first = encoded(&[5, 6, 7]);
        let second = encoded(&[9]);
        let batch = TensorBatch::new(&[&first, &second]);
        assert_eq!(Vec::<i64>::try_from(batch.tokens.view([-1])).unwrap(), vec![5, 6, 7, 9, PAD_ID, PAD_ID]);
        assert_eq!(Vec::<i64>::try_from(batch.reverse_index.view([-1])).unwrap(), vec![2, 1, 0, 0, 1, 2]);
        assert_eq!(Vec::<i64>::try_from(&batch.lengths).unwrap(), vec![3, 1]);
        assert_eq!(Vec::<i64>::try_from(&batch.token_feature_offsets).unwrap(), vec![0, 2]);
        assert_eq!(Vec::<i64>::try_from(&batch.char_feature_ids).unwrap(), vec![9, 9]);
        assert_eq!(Vec::<i64>::try_from(&batch.char_feature_offsets).unwrap(), vec![0, 1]);
    }

    #[test]
    fn language_model_targets_skip_padding_and_clamp_rare_tokens() {
        let first = encoded(&[5, 60, 7]);
        let second = encoded(&[9]);
        let (next, previous) = language_model_targets(&[&first, &second], 50);
        let ignored = IGNORED_TARGET;
        assert_eq!(Vec::<i64>::try_from(next.view([-1])).unwrap(), vec![UNK_ID, 7, ignored, ignored, ignored, ignored]);
        assert_eq!(
            Vec::<i64>::try_from(previous.view([-1])).unwrap(),
            vec![ignored, 5, UNK_ID, ignored, ignored, ignored]
        );
    }
}
