//! The network: token embedding -> forward and backward LSTMs -> masked mean+max pooling,
//! concatenated with a hashed bag of word and character n-grams -> topic and sentiment heads.
//!
//! Why two unidirectional LSTMs instead of one bidirectional call: on a right-padded batch a
//! bidirectional LSTM's reverse direction starts on the padding, so its outputs differ from the
//! text run alone. Reversing each text within its own length (`TensorBatch::reverse_index`) and
//! running a second forward LSTM over it is exact for any padding, costs the same, and gives the
//! two directional language models that pretraining needs for free.
//!
//! Why the n-gram bag: word and character n-grams are what makes the classic TF-IDF baseline
//! strong on short financial headlines (tickers, misspellings, rare company names); feeding their
//! mean embedding next to the pooled LSTM states lets the heads use both.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, RNN};
use tch::{Kind, Tensor};

use super::batch::TensorBatch;
use crate::text::UNK_ID;

/// Sizes that define the parameter shapes; recorded in `model.json` so a bundle rebuilds itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub vocab_size: i64,
    pub embedding_dim: i64,
    pub hidden_size: i64,
    pub feature_buckets: i64,
    pub feature_dim: i64,
    pub topic_classes: i64,
    pub sentiment_classes: i64,
    /// Dropout on the embeddings and the pooled representation during training only.
    pub dropout: f64,
    /// Share of tokens replaced by `<unk>` during training only, so the LSTM cannot lean on any
    /// single word and learns what unknown words in context mean.
    pub token_dropout: f64,
}

impl Architecture {
    /// How many parameters the network built from these sizes has (None on overflow), so a
    /// bundle can be checked against its weights file before anything is allocated.
    pub fn parameter_count(&self) -> Option<i64> {
        let lstm = |input: i64, hidden: i64| {
            // w_ih [4H, input], w_hh [4H, H], b_ih and b_hh [4H].
            4_i64.checked_mul(hidden)?.checked_mul(input.checked_add(hidden)?.checked_add(2)?)
        };
        let linear = |input: i64, output: i64| input.checked_add(1)?.checked_mul(output);
        let pooled = pooled_width(self);
        [
            self.vocab_size.checked_mul(self.embedding_dim)?,
            lstm(self.embedding_dim, self.hidden_size)?,
            lstm(self.embedding_dim, self.hidden_size)?,
            self.feature_buckets.checked_mul(self.feature_dim)?,
            linear(pooled, self.topic_classes)?,
            linear(pooled, self.sentiment_classes)?,
        ]
        .into_iter()
        .try_fold(0_i64, i64::checked_add)
    }
}

/// The optimiser parameter group of the token embedding, so training can give pretrained word
/// vectors a smaller learning rate than the rest (or none: frozen). Everything else is group 0.
pub const EMBEDDING_PARAMETER_GROUP: usize = 1;

pub struct Network {
    token_embedding: nn::Embedding,
    forward_lstm: nn::LSTM,
    backward_lstm: nn::LSTM,
    feature_bag: Tensor,
    topic_head: nn::Linear,
    sentiment_head: nn::Linear,
    dropout: f64,
    token_dropout: f64,
}

/// Per-position outputs of both directions, each `[batch, max_len, hidden]`, aligned with the
/// input order (the backward states are already un-reversed).
pub struct SequenceStates {
    pub forward: Tensor,
    pub backward: Tensor,
}

pub struct HeadLogits {
    pub topic: Tensor,
    pub sentiment: Tensor,
}

/// The two halves of the representation the heads read, after dropout: masked mean+max pooling
/// of both LSTM directions `[batch, 4*hidden]`, and the token and character bag means
/// `[batch, 2*feature_dim]`. Training puts an auxiliary head on each half alone.
pub struct PooledFeatures {
    pub sequence: Tensor,
    pub bag: Tensor,
}

impl Network {
    pub fn new(root: &nn::Path, architecture: &Architecture) -> Network {
        // `train: false` keeps the LSTM's own inter-layer dropout off; with one layer it is unused
        // anyway, and our dropout is applied explicitly where `train` says so.
        let lstm_config = nn::RNNConfig { batch_first: true, train: false, ..Default::default() };
        let feature_init = nn::Init::Uniform { lo: -0.05, up: 0.05 };
        Network {
            token_embedding: nn::embedding(
                root.set_group(EMBEDDING_PARAMETER_GROUP) / "token_embedding",
                architecture.vocab_size,
                architecture.embedding_dim,
                Default::default(),
            ),
            forward_lstm: nn::lstm(
                root / "forward_lstm",
                architecture.embedding_dim,
                architecture.hidden_size,
                lstm_config,
            ),
            backward_lstm: nn::lstm(
                root / "backward_lstm",
                architecture.embedding_dim,
                architecture.hidden_size,
                lstm_config,
            ),
            feature_bag: root.var(
                "feature_bag",
                &[architecture.feature_buckets, architecture.feature_dim],
                feature_init,
            ),
            topic_head: nn::linear(
                root / "topic_head",
                pooled_width(architecture),
                architecture.topic_classes,
                Default::default(),
            ),
            sentiment_head: nn::linear(
                root / "sentiment_head",
                pooled_width(architecture),
                architecture.sentiment_classes,
                Default::default(),
            ),
            dropout: architecture.dropout,
            token_dropout: architecture.token_dropout,
        }
    }

    pub fn sequence_states(&self, batch: &TensorBatch, train: bool) -> SequenceStates {
        let tokens = if train && self.token_dropout > 0.0 {
            let dropped = Tensor::rand([batch.batch_size, batch.max_len], (Kind::Float, batch.tokens.device()))
                .lt(self.token_dropout)
                .logical_and(&batch.mask);
            batch.tokens.masked_fill(&dropped, UNK_ID)
        } else {
            batch.tokens.shallow_clone()
        };
        let embedded = self.token_embedding.forward(&tokens).dropout(self.dropout, train);
        let embedding_dim = embedded.size()[2];
        let reverse_gather =
            batch.reverse_index.unsqueeze(-1).expand([batch.batch_size, batch.max_len, embedding_dim], false);
        let reversed_embedded = embedded.gather(1, &reverse_gather, false);
        let (forward, _) = self.forward_lstm.seq(&embedded);
        let (backward_reversed, _) = self.backward_lstm.seq(&reversed_embedded);
        let hidden = backward_reversed.size()[2];
        let unreverse_gather =
            batch.reverse_index.unsqueeze(-1).expand([batch.batch_size, batch.max_len, hidden], false);
        let backward = backward_reversed.gather(1, &unreverse_gather, false);
        SequenceStates { forward, backward }
    }

    pub fn head_logits(&self, batch: &TensorBatch, train: bool) -> HeadLogits {
        self.heads(&self.pooled_features(batch, train))
    }

    pub fn heads(&self, pooled: &PooledFeatures) -> HeadLogits {
        let both = Tensor::cat(&[&pooled.sequence, &pooled.bag], 1);
        HeadLogits { topic: self.topic_head.forward(&both), sentiment: self.sentiment_head.forward(&both) }
    }

    pub fn pooled_features(&self, batch: &TensorBatch, train: bool) -> PooledFeatures {
        let states = self.sequence_states(batch, train);
        let both_directions = Tensor::cat(&[&states.forward, &states.backward], 2);
        let real_positions = batch.mask.unsqueeze(-1);
        let mean_pooled =
            both_directions.masked_fill(&real_positions.logical_not(), 0.0).sum_dim_intlist(1, false, Kind::Float)
                / batch.lengths.unsqueeze(1).to_kind(Kind::Float);
        let max_pooled = both_directions.masked_fill(&real_positions.logical_not(), f64::NEG_INFINITY).amax(1, false);
        let token_bag = self.bag_mean(&batch.token_feature_ids, &batch.token_feature_offsets);
        let char_bag = self.bag_mean(&batch.char_feature_ids, &batch.char_feature_offsets);
        PooledFeatures {
            sequence: Tensor::cat(&[mean_pooled, max_pooled], 1).dropout(self.dropout, train),
            bag: Tensor::cat(&[token_bag, char_bag], 1).dropout(self.dropout, train),
        }
    }
}

impl Network {
    /// Mean embedding of each text's bag (zeros for an empty bag, e.g. Chinese text has no
    /// character n-grams of words).
    fn bag_mean(&self, feature_ids: &Tensor, offsets: &Tensor) -> Tensor {
        let (mean, _, _, _) = Tensor::embedding_bag(
            &self.feature_bag,
            feature_ids,
            offsets,
            false,
            EMBEDDING_BAG_MEAN,
            false,
            None::<Tensor>,
            false,
        );
        mean
    }
}

/// `mode` argument of `torch.embedding_bag`: 0 sum, 1 mean, 2 max.
const EMBEDDING_BAG_MEAN: i64 = 1;

fn pooled_width(architecture: &Architecture) -> i64 {
    sequence_width(architecture) + bag_width(architecture)
}

/// Mean and max over both directions.
pub fn sequence_width(architecture: &Architecture) -> i64 {
    4 * architecture.hidden_size
}

/// The token and the character n-gram bags.
pub fn bag_width(architecture: &Architecture) -> i64 {
    2 * architecture.feature_dim
}
