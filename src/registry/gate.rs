//! The quality gate: a candidate is promoted only if, on a fixed evaluation set, neither head's
//! macro-F1 is worse than the promoted model's by more than a margin. Pure: figures in, decision out.

use serde::{Deserialize, Serialize};

/// Macro-F1 of each head on the evaluation set; None where the set has no labels for that head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadScores {
    pub topic_macro_f1: Option<f64>,
    pub sentiment_macro_f1: Option<f64>,
}

/// What `gate.json` beside a candidate bundle records, and what the retrain log line says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub candidate_version: String,
    pub promoted_version: Option<String>,
    pub candidate: HeadScores,
    /// Scores of the promoted model on the same set; None when nothing was promoted yet.
    pub promoted: Option<HeadScores>,
    pub max_macro_f1_drop: f64,
    pub evaluation_data: Vec<String>,
    pub passed: bool,
    /// One line per head compared, saying how it went.
    pub reasons: Vec<String>,
    pub decided_at: String,
}

/// Compares the candidate with the promoted model head by head. With nothing promoted, the
/// candidate passes (the first model has nothing to be worse than). A head the evaluation set
/// does not label is not compared; a set that labels neither head fails the gate, because then
/// nothing at all was checked.
pub fn decide(
    candidate_version: &str,
    candidate: HeadScores,
    promoted: Option<(&str, HeadScores)>,
    max_macro_f1_drop: f64,
    evaluation_data: Vec<String>,
) -> GateDecision {
    let mut reasons = Vec::new();
    let mut passed = true;
    if candidate.topic_macro_f1.is_none() && candidate.sentiment_macro_f1.is_none() {
        passed = false;
        reasons.push("the evaluation set labels neither topic nor sentiment: nothing could be compared".to_string());
    } else if let Some((_, promoted_scores)) = promoted {
        let heads = [
            ("topic", candidate.topic_macro_f1, promoted_scores.topic_macro_f1),
            ("sentiment", candidate.sentiment_macro_f1, promoted_scores.sentiment_macro_f1),
        ];
        for (head, candidate_f1, promoted_f1) in heads {
            let (Some(candidate_f1), Some(promoted_f1)) = (candidate_f1, promoted_f1) else {
                continue;
            };
            let drop = promoted_f1 - candidate_f1;
            if drop > max_macro_f1_drop {
                passed = false;
                reasons.push(format!(
                    "{head} macro-F1 {candidate_f1:.4} is {drop:.4} below the promoted {promoted_f1:.4} (allowed drop {max_macro_f1_drop})"
                ));
            } else {
                reasons.push(format!(
                    "{head} macro-F1 {candidate_f1:.4} vs promoted {promoted_f1:.4}: within the allowed drop {max_macro_f1_drop}"
                ));
            }
        }
    } else {
        reasons.push("no promoted model yet: the first candidate passes".to_string());
    }
    GateDecision {
        candidate_version: candidate_version.to_string(),
        promoted_version: promoted.map(|(version, _)| version.to_string()),
        candidate,
        promoted: promoted.map(|(_, scores)| scores),
        max_macro_f1_drop,
        evaluation_data,
        passed,
        reasons,
        decided_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(topic: f64, sentiment: f64) -> HeadScores {
        HeadScores { topic_macro_f1: Some(topic), sentiment_macro_f1: Some(sentiment) }
    }

    #[test]
    fn a_candidate_worse_on_one_head_beyond_the_margin_fails() {
        let decision = decide("new", scores(0.90, 0.70), Some(("old", scores(0.85, 0.75))), 0.01, vec![]);
        assert!(!decision.passed, "{decision:?}");
        assert!(decision.reasons.iter().any(|reason| reason.starts_with("sentiment macro-F1 0.7000 is 0.0500 below")));
    }

    #[test]
    fn a_candidate_within_the_margin_or_better_passes() {
        assert!(decide("new", scores(0.845, 0.76), Some(("old", scores(0.85, 0.75))), 0.01, vec![]).passed);
        assert!(decide("new", scores(0.85, 0.75), Some(("old", scores(0.85, 0.75))), 0.0, vec![]).passed);
    }

    #[test]
    fn the_first_candidate_passes_and_an_unlabelled_set_fails() {
        let first = decide("new", scores(0.1, 0.1), None, 0.01, vec![]);
        assert!(first.passed && first.promoted_version.is_none());
        let nothing = decide("new", HeadScores::default(), Some(("old", scores(0.8, 0.8))), 0.01, vec![]);
        assert!(!nothing.passed);
    }

    #[test]
    fn a_head_the_set_does_not_label_is_not_compared() {
        let candidate = HeadScores { topic_macro_f1: None, sentiment_macro_f1: Some(0.8) };
        let promoted = HeadScores { topic_macro_f1: None, sentiment_macro_f1: Some(0.79) };
        let decision = decide("new", candidate, Some(("old", promoted)), 0.0, vec![]);
        assert!(decision.passed);
        assert_eq!(decision.reasons.len(), 1);
    }
}
