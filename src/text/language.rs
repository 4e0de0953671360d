//! The language gate: which script a message is written in, and whether a model that serves a set of languages can
//! read it. Pure: a text (and the producer's optional `lang` field) in, a verdict out.
//!
//! Why a script test and not a language detector crate (whatlang, lingua): messages are short tweets and headlines
//! full of tickers, cashtags and URLs. On ten words a detector's guess between English and other Latin-script
//! languages is unreliable, and a wrong "unsupported" silently takes an English message out of the windows, which
//! is worse than the model reading a German headline it half understands. A script test cannot be wrong that way:
//! text in Han, Hangul, Cyrillic or Arabic letters is not English whatever its length, and it costs one pass over
//! the characters on the hot path. What it cannot tell apart (English from German, Russian from Ukrainian) the
//! producer can declare in the input's `lang` field, which wins when present.

use thiserror::Error;

/// Writing systems the gate tells apart. Scripts not named here count as [`Script::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    Devanagari,
    Bengali,
    Thai,
    Georgian,
    Hangul,
    /// Hiragana and katakana; a text with any kana counts its Han characters as Japanese too.
    Kana,
    Han,
    Other,
}

impl Script {
    /// In order of preference on a tie of weights: Latin first, so a text balanced between scripts goes to the model
    /// of the shipped (English) kind rather than being refused.
    const ALL: [Script; 14] = [
        Script::Latin,
        Script::Greek,
        Script::Cyrillic,
        Script::Armenian,
        Script::Hebrew,
        Script::Arabic,
        Script::Devanagari,
        Script::Bengali,
        Script::Thai,
        Script::Georgian,
        Script::Hangul,
        Script::Kana,
        Script::Han,
        Script::Other,
    ];

    /// The name a message in this script is reported under when no `lang` field says more: the language for a
    /// script that (in practice) one language writes, else BCP 47's "undetermined language in script X".
    pub fn reported_language(self) -> &'static str {
        match self {
            Script::Latin => "und-Latn",
            Script::Greek => "el",
            Script::Cyrillic => "und-Cyrl",
            Script::Armenian => "hy",
            Script::Hebrew => "und-Hebr",
            Script::Arabic => "und-Arab",
            Script::Devanagari => "und-Deva",
            Script::Bengali => "und-Beng",
            Script::Thai => "th",
            Script::Georgian => "ka",
            Script::Hangul => "ko",
            Script::Kana => "ja",
            Script::Han => "zh",
            Script::Other => "und",
        }
    }

    /// How much one letter of this script weighs against the others. An English word averages about five letters,
    /// a Chinese word one or two characters and a Korean one two or three syllable blocks: weighting each Han, kana
    /// and Hangul character 3 compares roughly words rather than characters, so "Apple 苹果股价大涨" is Chinese.
    fn weight(self) -> usize {
        match self {
            Script::Han | Script::Kana | Script::Hangul => 3,
            _ => 1,
        }
    }
}

/// Languages a bundle may declare, with the scripts the gate accepts for each (ISO 639-1 codes). A language the gate
/// cannot map to a script would make it either refuse or pass everything, so bundles may only declare these.
const KNOWN_LANGUAGES: &[(&str, &[Script])] = &[
    ("af", &[Script::Latin]),
    ("ar", &[Script::Arabic]),
    ("az", &[Script::Latin]),
    ("be", &[Script::Cyrillic]),
    ("bg", &[Script::Cyrillic]),
    ("bn", &[Script::Bengali]),
    ("bs", &[Script::Latin]),
    ("ca", &[Script::Latin]),
    ("cs", &[Script::Latin]),
    ("cy", &[Script::Latin]),
    ("da", &[Script::Latin]),
    ("de", &[Script::Latin]),
    ("el", &[Script::Greek]),
    ("en", &[Script::Latin]),
    ("eo", &[Script::Latin]),
    ("es", &[Script::Latin]),
    ("et", &[Script::Latin]),
    ("eu", &[Script::Latin]),
    ("fa", &[Script::Arabic]),
    ("fi", &[Script::Latin]),
    ("fr", &[Script::Latin]),
    ("ga", &[Script::Latin]),
    ("gl", &[Script::Latin]),
    ("he", &[Script::Hebrew]),
    ("hi", &[Script::Devanagari]),
    ("hr", &[Script::Latin]),
    ("hu", &[Script::Latin]),
    ("hy", &[Script::Armenian]),
    ("id", &[Script::Latin]),
    ("is", &[Script::Latin]),
    ("it", &[Script::Latin]),
    // Japanese writes Han characters too, and a kanji-only headline has no kana to tell it from Chinese.
    ("ja", &[Script::Kana, Script::Han]),
    ("ka", &[Script::Georgian]),
    ("kk", &[Script::Cyrillic]),
    ("ko", &[Script::Hangul]),
    ("lt", &[Script::Latin]),
    ("lv", &[Script::Latin]),
    ("mk", &[Script::Cyrillic]),
    ("mn", &[Script::Cyrillic]),
    ("mr", &[Script::Devanagari]),
    ("ms", &[Script::Latin]),
    ("mt", &[Script::Latin]),
    ("nb", &[Script::Latin]),
    ("ne", &[Script::Devanagari]),
    ("nl", &[Script::Latin]),
    ("nn", &[Script::Latin]),
    ("no", &[Script::Latin]),
    ("pl", &[Script::Latin]),
    ("pt", &[Script::Latin]),
    ("ro", &[Script::Latin]),
    ("ru", &[Script::Cyrillic]),
    ("sk", &[Script::Latin]),
    ("sl", &[Script::Latin]),
    ("sq", &[Script::Latin]),
    ("sr", &[Script::Cyrillic, Script::Latin]),
    ("sv", &[Script::Latin]),
    ("sw", &[Script::Latin]),
    ("th", &[Script::Thai]),
    ("tl", &[Script::Latin]),
    ("tr", &[Script::Latin]),
    ("uk", &[Script::Cyrillic]),
    ("ur", &[Script::Arabic]),
    ("uz", &[Script::Latin]),
    ("vi", &[Script::Latin]),
    ("zh", &[Script::Han]),
];

/// Languages of a bundle that predates the gate's `languages` field: every such bundle was trained on English.
pub const DEFAULT_LANGUAGES: [&str; 1] = ["en"];

/// The metric label of a declared language outside [`KNOWN_LANGUAGES`]: the `lang` field is the producer's, so its
/// values must not become an unbounded set of Prometheus series.
pub const OTHER_LANGUAGE_LABEL: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LanguageListError {
    #[error("no languages given; a model serves at least one (e.g. [\"en\"])")]
    Empty,
    #[error("unknown language code {code:?}: the language gate knows the ISO 639-1 codes {known}")]
    Unknown { code: String, known: String },
}

/// A message the gate refuses: the language it is in, as far as the gate can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedLanguage {
    /// The declared `lang` (its primary subtag, lower-case: `zh-CN` becomes `zh`), else the script's
    /// [`Script::reported_language`]. Goes into output records.
    pub language: String,
    /// `language` when it comes from a closed set, else [`OTHER_LANGUAGE_LABEL`]: bounded, for metrics.
    pub metric_label: &'static str,
}

/// Decides, per message, whether a model serving some languages can read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageGate {
    languages: Vec<String>,
    scripts: Vec<Script>,
}

impl LanguageGate {
    /// A gate for a model serving `languages` (ISO 639-1 codes from [`KNOWN_LANGUAGES`]).
    pub fn new(languages: &[String]) -> Result<LanguageGate, LanguageListError> {
        if languages.is_empty() {
            return Err(LanguageListError::Empty);
        }
        let mut scripts = Vec::new();
        for code in languages {
            let Some((_, language_scripts)) = KNOWN_LANGUAGES.iter().find(|(known, _)| known == code) else {
                let known: Vec<&str> = KNOWN_LANGUAGES.iter().map(|(known, _)| *known).collect();
                return Err(LanguageListError::Unknown { code: code.clone(), known: known.join(", ") });
            };
            scripts.extend_from_slice(language_scripts);
        }
        Ok(LanguageGate { languages: languages.to_vec(), scripts })
    }

    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// `Ok` when the model can read `text`. A usable `declared` language (the input's `lang` field) decides alone;
    /// otherwise the text's dominant script does. A text with no letters outside cashtags, mentions and URLs (only
    /// numbers, emoji, tickers) gives the gate nothing to judge and passes, as it did before the gate existed.
    pub fn check(&self, text: &str, declared: Option<&str>) -> Result<(), UnsupportedLanguage> {
        if let Some(code) = declared.and_then(declared_language) {
            if self.languages.contains(&code) {
                return Ok(());
            }
            let metric_label = KNOWN_LANGUAGES
                .iter()
                .find(|(known, _)| *known == code)
                .map_or(OTHER_LANGUAGE_LABEL, |(known, _)| *known);
            return Err(UnsupportedLanguage { language: code, metric_label });
        }
        match dominant_script(text) {
            Some(script) if !self.scripts.contains(&script) => {
                let language = script.reported_language();
                Err(UnsupportedLanguage { language: language.to_owned(), metric_label: language })
            }
            _ => Ok(()),
        }
    }
}

/// The primary subtag of a declared language tag, lower-cased (`zh-Hans-CN`, `zh_CN` and `ZH` give `zh`), when it
/// is a two-letter ISO 639-1 code. Anything else (`und`, `eng`, `english`, an empty string) is ignored, and the
/// script decides: a BCP 47 tag uses the two-letter code wherever one exists, so a three-letter or free-text value
/// would otherwise refuse English messages that merely spell their language differently.
pub fn declared_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?;
    (primary.len() == 2 && primary.bytes().all(|byte| byte.is_ascii_alphabetic())).then(|| primary.to_ascii_lowercase())
}

/// The script with the most weight among the text's letters, ignoring cashtags (`$AAPL`), mentions (`@trader`) and
/// URLs, which are Latin whatever the language around them. `None` when no letter is left. Digits, punctuation and
/// emoji are not letters and weigh nothing.
pub fn dominant_script(text: &str) -> Option<Script> {
    let mut weights = [0usize; Script::ALL.len()];
    let mut rest = text;
    let mut after_ascii_alphanumeric = false;
    while let Some(character) = rest.chars().next() {
        let markup = if after_ascii_alphanumeric { 0 } else { markup_length(rest) };
        if markup > 0 {
            rest = &rest[markup..];
            after_ascii_alphanumeric = false;
            continue;
        }
        if let Some(script) = letter_script(character) {
            weights[script as usize] += script.weight();
        }
        after_ascii_alphanumeric = character.is_ascii_alphanumeric();
        rest = &rest[character.len_utf8()..];
    }
    // Japanese mixes kanji with kana; Chinese never has kana.
    if weights[Script::Kana as usize] > 0 {
        weights[Script::Kana as usize] += std::mem::take(&mut weights[Script::Han as usize]);
    }
    let mut best: Option<(Script, usize)> = None;
    for script in Script::ALL {
        let weight = weights[script as usize];
        if weight > 0 && best.is_none_or(|(_, best_weight)| weight > best_weight) {
            best = Some((script, weight));
        }
    }
    best.map(|(script, _)| script)
}

/// The length in bytes of the cashtag, ASCII mention or URL that `text` starts with, else 0. Only the ASCII part
/// counts: Chinese posts put no space after a ticker (`$AAPL苹果大涨`) and name stocks in Chinese between dollar
/// signs (`$浙江广厦(SH600052)$`), and those characters are the message's language.
fn markup_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let starts_with = |prefix: &[u8]| bytes.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix));
    if starts_with(b"http://") || starts_with(b"https://") || starts_with(b"www.") {
        return bytes.iter().position(|byte| !byte.is_ascii_graphic()).unwrap_or(bytes.len());
    }
    if matches!(bytes.first(), Some(b'$' | b'@')) && bytes.get(1).is_some_and(u8::is_ascii_alphanumeric) {
        let name_length =
            bytes[1..].iter().position(|&byte| !(byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.'));
        return 1 + name_length.unwrap_or(bytes.len() - 1);
    }
    0
}

/// The script of a letter; `None` for anything that is not a letter.
fn letter_script(character: char) -> Option<Script> {
    if !character.is_alphabetic() {
        return None;
    }
    let script = match u32::from(character) {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A => Script::Latin,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x0530..=0x058F => Script::Armenian,
        0x0590..=0x05FF | 0xFB1D..=0xFB4F => Script::Hebrew,
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => Script::Arabic,
        0x0900..=0x097F => Script::Devanagari,
        0x0980..=0x09FF => Script::Bengali,
        0x0E00..=0x0E7F => Script::Thai,
        0x10A0..=0x10FF | 0x2D00..=0x2D2F => Script::Georgian,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7FF => Script::Hangul,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F | 0x1B000..=0x1B16F => Script::Kana,
        0x2E80..=0x2FDF
        | 0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3038..=0x303C
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x3FFFF => Script::Han,
        _ => Script::Other,
    };
    Some(script)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn gate(languages: &[&str]) -> LanguageGate {
        LanguageGate::new(&languages.iter().map(|code| code.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn refused(gate: &LanguageGate, text: &str, declared: Option<&str>) -> Option<String> {
        gate.check(text, declared).err().map(|unsupported| unsupported.language)
    }

    #[test]
    fn the_issue_10_example_is_chinese_and_refused_by_the_english_model() {
        assert_eq!(dominant_script("央行降息，股市大涨"), Some(Script::Han));
        assert_eq!(refused(&gate(&["en"]), "央行降息，股市大涨", None).as_deref(), Some("zh"));
    }

    #[test]
    fn latin_text_full_of_tickers_cashtags_and_links_passes() {
        let english = gate(&["en"]);
        for text in [
            "$AAPL $TSLA $NVDA up premarket, AAPL 190c looking good https://t.co/xYz12 @trader",
            "NVDA TSLA AMD SPY QQQ",
            "Fed raises rates by 25bp 📈",
            "Stocks rally 🚀",
            "Nestlé's café unit: €2.1bn, ça monte",
            "$AAPL",
            "1,234.5 +3.2% 📉📉",
        ] {
            assert_eq!(refused(&english, text, None), None, "{text}");
        }
    }

    #[test]
    fn mixed_text_goes_by_the_dominant_script() {
        let english = gate(&["en"]);
        // The cashtag is a name, not English: what is left is Chinese.
        assert_eq!(refused(&english, "$AAPL 苹果股价大涨", None).as_deref(), Some("zh"));
        // A bare ticker weighs 4 against 6 Han characters at 3 each.
        assert_eq!(refused(&english, "AAPL 苹果股价大涨", None).as_deref(), Some("zh"));
        assert_eq!(
            refused(&english, "看好 https://example.com/markets/today/story $TSLA", None).as_deref(),
            Some("zh")
        );
        // Chinese posts run tickers, mentions and links into the text, and name stocks between dollar signs.
        for text in [
            "看好$AAPL",
            "$AAPL苹果大涨",
            "$浙江广厦(SH600052)$关注了他有一段时间",
            "@大牛时代网站",
            "@trader 看好http://t.co/x",
        ] {
            assert_eq!(refused(&english, text, None).as_deref(), Some("zh"), "{text}");
        }
        // An e-mail address is not a mention; a dollar amount is not a cashtag.
        assert_eq!(dominant_script("ir@company.com"), Some(Script::Latin));
        assert_eq!(dominant_script("$5 $AAPL"), None);
        // An English headline quoting one Chinese name stays English.
        assert_eq!(refused(&english, "Alibaba (阿里巴巴) shares jump after earnings beat", None), None);
    }

    #[test]
    fn scripts_map_to_languages_or_to_undetermined() {
        let english = gate(&["en"]);
        let cases = [
            ("Сбербанк повысил прогноз прибыли", "und-Cyrl"),
            ("日経平均株価が大幅に上昇した", "ja"),
            ("東京", "zh"),
            ("코스피 지수가 급등했다", "ko"),
            ("البنك المركزي يرفع أسعار الفائدة", "und-Arab"),
            ("Η κεντρική τράπεζα αύξησε τα επιτόκια", "el"),
            ("ตลาดหุ้นปรับตัวขึ้น", "th"),
            ("शेयर बाजार में तेजी", "und-Deva"),
        ];
        for (text, language) in cases {
            assert_eq!(refused(&english, text, None).as_deref(), Some(language), "{text}");
        }
    }

    #[test]
    fn a_model_serving_a_script_accepts_it_and_refuses_latin() {
        let chinese = gate(&["zh"]);
        assert_eq!(refused(&chinese, "央行降息，股市大涨", None), None);
        assert_eq!(refused(&chinese, "Fed cuts rates", None).as_deref(), Some("und-Latn"));
        let bilingual = gate(&["en", "zh"]);
        assert_eq!(refused(&bilingual, "央行降息", None), None);
        assert_eq!(refused(&bilingual, "Fed cuts rates", None), None);
        assert_eq!(refused(&bilingual, "日経平均株価が上昇", None).as_deref(), Some("ja"));
        assert_eq!(refused(&gate(&["ja"]), "東京株式市場", None), None, "kanji-only Japanese");
    }

    #[test]
    fn a_declared_language_wins_over_the_script() {
        let english = gate(&["en"]);
        assert_eq!(refused(&english, "Die Aktie steigt", Some("de")).as_deref(), Some("de"));
        assert_eq!(refused(&english, "央行降息", Some("en")), None);
        assert_eq!(refused(&english, "Fed cuts", Some("en-US")), None);
        assert_eq!(refused(&english, "Fed cuts", Some("EN_gb")), None);
        assert_eq!(refused(&english, "Fed cuts", Some("zh-Hans-CN")).as_deref(), Some("zh"));
    }

    #[test]
    fn an_unusable_declared_language_leaves_the_decision_to_the_script() {
        let english = gate(&["en"]);
        for declared in ["eng", "english", "", "und", "e1", "中文"] {
            assert_eq!(refused(&english, "Fed cuts rates", Some(declared)), None, "{declared:?}");
            assert_eq!(refused(&english, "央行降息", Some(declared)).as_deref(), Some("zh"), "{declared:?}");
        }
    }

    #[test]
    fn metric_labels_stay_in_a_closed_set() {
        let english = gate(&["en"]);
        let unsupported = english.check("Fed", Some("qq")).unwrap_err();
        assert_eq!((unsupported.language.as_str(), unsupported.metric_label), ("qq", OTHER_LANGUAGE_LABEL));
        assert_eq!(english.check("Fed", Some("de")).unwrap_err().metric_label, "de");
        assert_eq!(english.check("央行降息", None).unwrap_err().metric_label, "zh");
    }

    #[test]
    fn language_lists_are_checked() {
        assert_eq!(LanguageGate::new(&[]), Err(LanguageListError::Empty));
        let error = LanguageGate::new(&["en".to_string(), "english".to_string()]).unwrap_err();
        assert!(matches!(&error, LanguageListError::Unknown { code, .. } if code == "english"), "{error}");
        assert!(error.to_string().contains("en, eo"), "the message lists the known codes: {error}");
        let default: Vec<String> = DEFAULT_LANGUAGES.iter().map(|code| code.to_string()).collect();
        assert_eq!(LanguageGate::new(&default).unwrap().languages(), ["en"]);
    }

    #[test]
    fn every_reported_script_language_is_either_known_or_undetermined() {
        for script in Script::ALL {
            let language = script.reported_language();
            assert!(
                language.starts_with("und") || KNOWN_LANGUAGES.iter().any(|(known, _)| *known == language),
                "{language}"
            );
        }
    }

    proptest! {
        #[test]
        fn the_gate_never_panics_and_ascii_is_always_latin_or_nothing(text in any::<String>(), ascii in "[ -~]{0,80}") {
            let english = gate(&["en"]);
            let _ = english.check(&text, Some(&text));
            prop_assert!(matches!(dominant_script(&ascii), None | Some(Script::Latin)));
            prop_assert!(english.check(&ascii, None).is_ok());
        }
    }
}
