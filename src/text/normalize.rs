//! Bounded, idempotent clean-up of raw message text (entities, NFKC, case, invisible chars, spaces).

use std::str::Chars;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc, is_nfkc_quick};

use super::tokenizer::url_length_at;

/// Raw input is cut to this many chars before any other work, so a 1 MB or 10 MB message costs no
/// more than a long post. The encoder keeps the first 64 tokens (`EncoderConfig::max_tokens`
/// default); 64 English tokens take about 400 chars with their spaces, so 4096 leaves a tenfold
/// margin for long URLs, markup and repeated punctuation before truncation could change what the
/// model sees. The normalised output is cut to the same length, which keeps `normalize`
/// idempotent even where NFKC expands text (one char can become up to 18, U+FDFA).
pub const MAX_INPUT_CHARS: usize = 4096;

/// The decoder follows `&amp;amp;` chains in one pass; another pass is needed only when an entity
/// appears through a route the decoder cannot see (a fullwidth `＆ａｍｐ；` that NFKC folds, an
/// entity split by a dropped zero-width char). Feeds double-escape at most twice in practice, so 8
/// passes cover real input while bounding adversarial input to 8 passes over at most
/// 18 x `MAX_INPUT_CHARS` chars.
const MAX_ENTITY_PASSES: usize = 8;

/// Lower-casing can leave text that is not NFKC (U+0130 lower-cases to `i` + U+0307, which must be
/// reordered against a following U+0316), and NFKC can produce upper case (U+1D2C folds to `A`),
/// so the two alternate until stable. One extra round settles every case we know of; 4 bounds the
/// cost, it is not an expected count.
const MAX_CASE_FOLD_PASSES: usize = 4;

/// U+FF01 FULLWIDTH EXCLAMATION MARK minus U+0021 EXCLAMATION MARK.
const FULLWIDTH_ASCII_OFFSET: u32 = 0xFEE0;

/// CJK symbols, kana, ideographs and hangul syllables have no case, so lower-casing them can skip
/// the case table lookup (the bulk of Chinese text); a test checks every char in these ranges.
const UNCASED_CJK: [std::ops::RangeInclusive<char>; 2] = ['\u{3000}'..='\u{9fff}', '\u{ac00}'..='\u{d7a3}'];

/// Named HTML entities seen in scraped news and the Twitter API (which escapes `&`, `<`, `>`),
/// with the terminating `;` so a prefix match is a full match. Matched ASCII-case-insensitively.
const NAMED_ENTITIES: [(&str, char); 6] =
    [("amp;", '&'), ("lt;", '<'), ("gt;", '>'), ("quot;", '"'), ("apos;", '\''), ("nbsp;", '\u{a0}')];

/// `&#1114111;` (U+10FFFF) has 7 decimal digits; longer numbers name no char (feeds do not zero-pad).
const MAX_DECIMAL_ENTITY_DIGITS: usize = 7;
/// `&#x10ffff;` has 6 hex digits.
const MAX_HEX_ENTITY_DIGITS: usize = 6;

/// NFKC, lower-case, HTML entities decoded (`&amp; &lt; &gt; &quot; &apos; &nbsp;`, `&#NNN;`,
/// `&#xHH;`), invisible format chars (zero-width space/joiners, BOM, bidi marks, soft hyphen,
/// variation selectors: Unicode's Default_Ignorable_Code_Point and General_Category=Cf) removed,
/// control chars and all Unicode whitespace turned into spaces, runs of spaces collapsed, trimmed.
///
/// Input is truncated to `MAX_INPUT_CHARS` chars first and the output is cut to the same length,
/// so `normalize(s).chars().count() <= MAX_INPUT_CHARS` and the cost is bounded for any input.
/// `normalize(normalize(s)) == normalize(s)`, except for contrived input that needs more rounds
/// than the bounds above allow (entity escapes nested through NFKC more than 8 deep).
pub fn normalize(raw: &str) -> String {
    let bounded_input = prefix_of_chars(raw, MAX_INPUT_CHARS);
    let mut normalized = normalize_once(bounded_input);
    for _ in 1..MAX_ENTITY_PASSES {
        if !contains_decodable_entity(&normalized) {
            break;
        }
        normalized = normalize_once(&normalized);
    }
    let kept_length = prefix_of_chars(&normalized, MAX_INPUT_CHARS).trim_end_matches(' ').len();
    normalized.truncate(kept_length);
    normalized
}

/// Key used to split train/validation/test so near-duplicates (the same headline re-posted with a
/// new t.co link or different punctuation) land in the same split: `normalize`, drop URLs (as the
/// tokenizer finds them: `http://`, `https://`, `www.` up to whitespace or a non-ASCII char), then
/// keep only runs of alphanumeric chars joined by single spaces.
pub fn dedup_key(raw: &str) -> String {
    let normalized = normalize(raw);
    let mut key = String::with_capacity(normalized.len());
    let mut run_ended = false;
    let mut position = 0;
    while let Some(character) = normalized[position..].chars().next() {
        if let Some(url_length) = url_length_at(&normalized, position) {
            position += url_length;
            run_ended = true;
            continue;
        }
        position += character.len_utf8();
        if character.is_alphanumeric() {
            if run_ended && !key.is_empty() {
                key.push(' ');
            }
            run_ended = false;
            key.push(character);
        } else {
            run_ended = true;
        }
    }
    key
}

/// One round of decode, clean, NFKC and lower-case; `normalize` repeats it only while decoding
/// could still change the text.
fn normalize_once(input: &str) -> String {
    let mut cleaned = String::with_capacity(input.len());
    let all_ascii = clean_into(EntityDecoder::new(input), &mut cleaned);
    // ASCII is NFKC already, and the quick check spares the NFKC pass for most non-ASCII text
    // (CJK ideographs, accented Latin already composed).
    if all_ascii || is_nfkc_quick(cleaned.chars()) == IsNormalized::Yes {
        return cleaned;
    }
    for _ in 0..MAX_CASE_FOLD_PASSES {
        let mut folded = String::with_capacity(cleaned.len());
        clean_into(cleaned.chars().nfkc(), &mut folded);
        cleaned = folded;
        if is_nfkc(&cleaned) {
            break;
        }
    }
    cleaned
}

/// Appends `characters` to `output` lower-cased, without invisible format chars, with control
/// chars and whitespace as single inner spaces. Returns whether everything appended was ASCII.
fn clean_into(characters: impl Iterator<Item = char>, output: &mut String) -> bool {
    let mut all_ascii = true;
    let mut space_pending = false;
    for character in characters {
        let character = fold_fullwidth_ascii(character);
        if character.is_ascii() {
            if character.is_ascii_whitespace() || character.is_ascii_control() {
                space_pending = true;
                continue;
            }
            push_pending_space(output, &mut space_pending);
            output.push(character.to_ascii_lowercase());
        } else if is_invisible_format_char(character) {
            continue;
        } else if character.is_whitespace() || character.is_control() {
            space_pending = true;
        } else {
            all_ascii = false;
            push_pending_space(output, &mut space_pending);
            if UNCASED_CJK.iter().any(|range| range.contains(&character)) {
                output.push(character);
            } else {
                output.extend(character.to_lowercase());
            }
        }
    }
    all_ascii
}

/// Fullwidth forms of ASCII (U+FF01..U+FF5E) fold to ASCII under NFKC by a fixed offset. Folding
/// them here, before NFKC, gives the same result (NFKC decomposes them to exactly this char first)
/// and lets Chinese text, whose punctuation is mostly fullwidth, pass the NFKC quick check.
fn fold_fullwidth_ascii(character: char) -> char {
    if ('\u{ff01}'..='\u{ff5e}').contains(&character) {
        char::from_u32(u32::from(character) - FULLWIDTH_ASCII_OFFSET).unwrap_or(character)
    } else {
        character
    }
}

fn push_pending_space(output: &mut String, space_pending: &mut bool) {
    // A space is only written between two visible chars, which both collapses runs and trims.
    if *space_pending && !output.is_empty() {
        output.push(' ');
    }
    *space_pending = false;
}

/// Default_Ignorable_Code_Point (DerivedCoreProperties.txt) plus the remaining
/// General_Category=Cf chars: invisible, so dropping them joins what they split
/// ("a\u{200B}pple" -> "apple"). Dropping ZWJ splits emoji sequences into their parts.
fn is_invisible_format_char(character: char) -> bool {
    matches!(
        u32::from(character),
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1345F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// The longest prefix of `text` with at most `max_chars` chars.
fn prefix_of_chars(text: &str, max_chars: usize) -> &str {
    // A string of at most `max_chars` bytes has at most that many chars: skips the scan for ASCII.
    if text.len() <= max_chars {
        return text;
    }
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => &text[..byte_index],
        None => text,
    }
}

fn contains_decodable_entity(text: &str) -> bool {
    text.match_indices('&').any(|(ampersand_index, _)| decode_entity_body(&text[ampersand_index + 1..]).is_some())
}

/// Decodes the entity whose text follows an `&`: returns the char and how many bytes of
/// `after_ampersand` it used, or `None` when it is not an entity we decode (which then stays text).
fn decode_entity_body(after_ampersand: &str) -> Option<(char, usize)> {
    let bytes = after_ampersand.as_bytes();
    if bytes.first() == Some(&b'#') {
        let (radix, digits_start, max_digits) = match bytes.get(1) {
            Some(b'x' | b'X') => (16, 2, MAX_HEX_ENTITY_DIGITS),
            _ => (10, 1, MAX_DECIMAL_ENTITY_DIGITS),
        };
        let digit_count = bytes[digits_start.min(bytes.len())..]
            .iter()
            .take(max_digits + 1)
            .take_while(|byte| char::from(**byte).is_digit(radix))
            .count();
        let digits_end = digits_start + digit_count;
        if digit_count == 0 || digit_count > max_digits || bytes.get(digits_end) != Some(&b';') {
            return None;
        }
        let code_point = u32::from_str_radix(&after_ampersand[digits_start..digits_end], radix).ok()?;
        return char::from_u32(code_point).map(|character| (character, digits_end + 1));
    }
    NAMED_ENTITIES.iter().find_map(|(name, character)| {
        let name_matches =
            bytes.get(..name.len()).is_some_and(|candidate| candidate.eq_ignore_ascii_case(name.as_bytes()));
        name_matches.then_some((*character, name.len()))
    })
}

/// The chars of a string with HTML entities decoded. A decoded `&` starts a new entity
/// (`&amp;lt;` is `<`), so double- and triple-escaped feeds decode fully in one pass.
struct EntityDecoder<'a> {
    remaining: Chars<'a>,
}

impl<'a> EntityDecoder<'a> {
    fn new(text: &'a str) -> Self {
        Self { remaining: text.chars() }
    }
}

impl Iterator for EntityDecoder<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let character = self.remaining.next()?;
        if character != '&' {
            return Some(character);
        }
        loop {
            let after_ampersand = self.remaining.as_str();
            let Some((decoded, entity_length)) = decode_entity_body(after_ampersand) else {
                return Some('&');
            };
            self.remaining = after_ampersand[entity_length..].chars();
            if decoded != '&' {
                return Some(decoded);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// NFKC's longest expansion of one char (U+FDFA becomes 18 chars); the output cut makes the
    /// real bound `MAX_INPUT_CHARS`, this documents what it would be without that cut.
    const NFKC_MAX_EXPANSION: usize = 18;

    #[test]
    fn lower_cases_collapses_and_trims_whitespace() {
        assert_eq!(normalize("  Fed \t RAISES\n\nRates  "), "fed raises rates");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize(" \t\r\n\u{3000}\u{a0}"), "");
    }

    #[test]
    fn decodes_html_entities() {
        assert_eq!(normalize("S&amp;P 500 &gt; 5,000"), "s&p 500 > 5,000");
        assert_eq!(normalize("&lt;b&gt;&quot;Buy&quot; &#39;now&apos;&lt;/b&gt;"), "<b>\"buy\" 'now'</b>");
        assert_eq!(normalize("a&nbsp;b&#x41;&#66;&#X43;"), "a babc");
        assert_eq!(normalize("&AMP; &Lt;"), "& <");
    }

    #[test]
    fn decodes_double_escaped_entities_in_one_call() {
        assert_eq!(normalize("AT&amp;amp;T &amp;lt;3"), "at&t <3");
        assert_eq!(normalize("&#38;amp;"), "&");
    }

    #[test]
    fn leaves_text_that_is_not_an_entity() {
        assert_eq!(normalize("R&D &unknown; &#; &#xZZ; & &amp"), "r&d &unknown; &#; &#xzz; & &amp");
        // Surrogates and values past U+10FFFF name no char.
        assert_eq!(normalize("&#xD800; &#1114112; &#99999999;"), "&#xd800; &#1114112; &#99999999;");
    }

    #[test]
    fn folds_fullwidth_and_compatibility_forms_with_nfkc() {
        assert_eq!(normalize("ＡＰＰＬ"), "appl");
        assert_eq!(normalize("１２３％"), "123%");
        assert_eq!(normalize("央行降息，股市大涨！"), "央行降息,股市大涨!");
        assert_eq!(normalize("ﬁnance …"), "finance ...");
    }

    #[test]
    fn fullwidth_escaped_entity_is_decoded_by_a_second_pass() {
        assert_eq!(normalize("＆ａｍｐ；"), "&");
        assert_eq!(normalize("&#xFF06;amp;"), "&");
    }

    #[test]
    fn removes_invisible_chars_and_turns_controls_into_spaces() {
        assert_eq!(normalize("\u{feff}a\u{200b}pp\u{ad}le\u{200d}"), "apple");
        assert_eq!(normalize("buy\0sell\u{7}now\u{85}x"), "buy sell now x");
        assert_eq!(normalize("\u{202e}gnirts\u{202c} \u{200f}rtl"), "gnirts rtl");
        assert_eq!(normalize("❤\u{fe0f}"), "❤");
    }

    #[test]
    fn uncased_cjk_ranges_have_no_lowercase_mapping() {
        for range in UNCASED_CJK {
            for character in range {
                assert!(character.to_lowercase().eq([character]), "{character:?}");
            }
        }
    }

    #[test]
    fn fullwidth_fold_matches_nfkc() {
        for character in '\u{ff01}'..='\u{ff5e}' {
            assert!(character.nfkc().eq([fold_fullwidth_ascii(character)]), "{character:?}");
        }
    }

    #[test]
    fn truncates_long_input_on_a_char_boundary() {
        let long_chinese = "涨".repeat(MAX_INPUT_CHARS * 3);
        let normalized = normalize(&long_chinese);
        assert_eq!(normalized.chars().count(), MAX_INPUT_CHARS);
        // NFKC expansion past the limit is cut too (U+FDFA is 18 chars after NFKC).
        let expanding = "\u{fdfa}".repeat(MAX_INPUT_CHARS);
        assert_eq!(normalize(&expanding).chars().count(), MAX_INPUT_CHARS);
    }

    #[test]
    fn lowercase_that_needs_renormalising_is_stable() {
        // U+0130 lower-cases to i + U+0307, which must then be reordered after U+0316.
        let normalized = normalize("\u{130}\u{316}");
        assert_eq!(normalized, "i\u{316}\u{307}");
        assert_eq!(normalize(&normalized), normalized);
    }

    #[test]
    fn dedup_key_ignores_links_case_and_punctuation() {
        let first = dedup_key("BREAKING: Fed cuts rates by 50bp!! https://t.co/AbC123");
        let second = dedup_key("Breaking - fed cuts rates by 50bp https://t.co/zzz999 ");
        assert_eq!(first, "breaking fed cuts rates by 50bp");
        assert_eq!(first, second);
        assert_eq!(dedup_key("see www.example.com/x?a=1 now"), "see now");
        assert_eq!(dedup_key("详见https://t.co/abc股市大涨"), "详见 股市大涨");
        assert_eq!(dedup_key("$AAPL +5%"), "aapl 5");
    }

    fn assert_normalize_invariants(raw: &str) {
        let normalized = normalize(raw);
        assert!(normalized.chars().count() <= MAX_INPUT_CHARS);
        assert!(normalized.chars().count() <= MAX_INPUT_CHARS * NFKC_MAX_EXPANSION);
        assert_eq!(normalized, normalize(raw), "normalize must be deterministic");
        assert_eq!(normalize(&normalized), normalized, "normalize must be idempotent");
        assert!(!normalized.starts_with(' ') && !normalized.ends_with(' '));
        assert!(!normalized.contains("  "));
        let key = dedup_key(raw);
        assert_eq!(key, dedup_key(raw));
        assert!(key.chars().all(|character| character == ' ' || character.is_alphanumeric()));
    }

    /// Fragments that build entity chains, fullwidth escapes, split entities and invisible chars.
    fn tricky_fragment_string() -> impl Strategy<Value = String> {
        let fragments = prop::sample::select(vec![
            "&",
            "amp;",
            "#38;",
            "#x26;",
            "lt;",
            "gt;",
            ";",
            "#",
            "x",
            "a",
            "A",
            "&#",
            "\u{ff06}",
            "\u{ff41}\u{ff4d}\u{ff50}\u{ff1b}",
            "\u{ad}",
            "\u{200b}",
            "\0",
            "\u{130}",
            "\u{316}",
            "\u{301}",
            "\u{307}",
            "\u{fdfa}",
            " ",
            "\t",
            "\u{3000}",
            "\u{fe0f}",
            "\u{202e}",
            "\u{1d2c}",
            "\u{a8}",
            "\u{3164}",
            "ＡＰＰＬ",
            "涨",
            "http://",
            "www.",
            "\u{391}",
        ]);
        prop::collection::vec(fragments, 0..64).prop_map(|parts| parts.concat())
    }

    fn control_and_mark_string() -> impl Strategy<Value = String> {
        let characters = prop_oneof![
            prop::char::range('\0', '\u{1f}'),
            prop::char::range('\u{7f}', '\u{9f}'),
            prop::char::range('\u{300}', '\u{36f}'),
            prop::char::range('\u{200b}', '\u{200f}'),
            prop::char::range('\u{202a}', '\u{202e}'),
            prop::char::range('\u{2066}', '\u{2069}'),
            prop::char::range('\u{5d0}', '\u{5ea}'),
            prop::char::range('\u{600}', '\u{6ff}'),
            Just('\u{feff}'),
            prop::char::range('a', 'z'),
            prop::char::range('A', 'Z'),
        ];
        prop::collection::vec(characters, 0..128).prop_map(String::from_iter)
    }

    fn cjk_string() -> impl Strategy<Value = String> {
        let characters = prop_oneof![
            prop::char::range('\u{4e00}', '\u{9fff}'),
            prop::char::range('\u{3400}', '\u{4dbf}'),
            prop::char::range('\u{3000}', '\u{303f}'),
            prop::char::range('\u{3040}', '\u{30ff}'),
            prop::char::range('\u{ac00}', '\u{d7a3}'),
            prop::char::range('\u{ff00}', '\u{ffef}'),
            prop::char::range('\u{f900}', '\u{faff}'),
            prop::char::range('\u{20000}', '\u{2a6df}'),
            prop::char::range(' ', '~'),
        ];
        prop::collection::vec(characters, 0..128).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn normalize_invariants_hold_for_any_string(raw in any::<String>()) {
            assert_normalize_invariants(&raw);
        }

        #[test]
        fn normalize_invariants_hold_for_printable_text(raw in "\\PC*") {
            assert_normalize_invariants(&raw);
        }

        #[test]
        fn normalize_invariants_hold_for_cjk_text(raw in cjk_string()) {
            assert_normalize_invariants(&raw);
        }

        #[test]
        fn normalize_invariants_hold_for_controls_and_marks(raw in control_and_mark_string()) {
            assert_normalize_invariants(&raw);
        }

        #[test]
        fn normalize_invariants_hold_for_entity_fragments(raw in tricky_fragment_string()) {
            assert_normalize_invariants(&raw);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn normalize_invariants_hold_for_megabyte_inputs(
            unit in "\\PC{1,64}",
            repetitions in 1usize..20_000,
        ) {
            assert_normalize_invariants(&unit.repeat(repetitions));
        }
    }
}
