//! Tokeniser for normalised English and Chinese financial text: words, cashtags, URLs, numbers, CJK.
//!
//! Rules, in the order they are tried at each token start (whitespace separates and is dropped):
//! - URL: `http://`, `https://` or `www.` not preceded by an ASCII letter or digit, up to
//!   whitespace or the first non-ASCII char (Chinese runs straight on after a link), minus trailing
//!   `.,;:!?'")]}`. One `Url` token, text `<url>`.
//! - `$` + ASCII letter: a `Cashtag` (`$aapl`, `$brk.b`, `$btc-usd`) of up to
//!   `MAX_TICKER_CHARS` letters/digits plus an optional `.`/`-` suffix of up to
//!   `MAX_TICKER_SUFFIX_CHARS`; otherwise `$` is a `Symbol` (`$5` is `$`, `<num>`).
//! - `@` + ASCII letter/digit/`_`, not preceded by an ASCII letter or digit (so e-mail addresses
//!   stay apart): a `Mention`, text `<user>`.
//! - ASCII digit: a `Number` (`<num>`) of digits with inner `,`/`.` between digits (`1,234.5`).
//!   A following `%` is its own token; letters right after start a new word (`5g` is `<num>`, `g`),
//!   which keeps magnitudes such as `10k`, `1.5bn` from each becoming a vocabulary entry.
//! - CJK ideograph, kana, hangul or bopomofo: one `Cjk` token per char (Chinese has no spaces).
//! - Other letters and digits: a `Word`, the run of alphanumeric chars and combining marks with
//!   - inner apostrophes kept (`don't`, `o'neil`; `’` is written as `'`), except a possessive
//!     `'s`, which becomes its own word (`apple's` is `apple`, `'s`);
//!   - inner `&` between ASCII letters kept (`s&p`, `at&t`, `m&a`);
//!   - hyphens split (`rate-cut` is `rate`, `-`, `cut`) so compounds share ids with their parts;
//!   - single letters joined by dots, ending in a dot, kept whole (`u.s.`, `e.g.`, `a.m.`).
//! - Punctuation (ASCII punctuation except `$+<=>^`|~`, and the Latin-1, General, Supplemental,
//!   CJK and common Arabic/Hebrew/Devanagari punctuation): one `Punctuation` token per char, a run
//!   of the same char collapsed (`!!!` is `!`, `...` is `.`).
//! - Anything else (emoji, currency and math signs, stray marks): a `Symbol` per char, with its
//!   combining marks; a skin-tone modifier after an emoji is dropped, a regional-indicator pair
//!   (a flag) stays one token.

use std::borrow::Cow;

use unicode_normalization::char::is_combining_mark;

/// The text of every `Url` token.
pub const URL_TOKEN: &str = "<url>";
/// The text of every `Number` token.
pub const NUMBER_TOKEN: &str = "<num>";
/// The text of every `Mention` token.
pub const MENTION_TOKEN: &str = "<user>";

/// US tickers have at most 5 letters and crypto symbols rarely more than 6 (`$matic`); 10 leaves
/// room for longer venue symbols while `$` glued to a long word stays a `$` and a word.
const MAX_TICKER_CHARS: usize = 10;
/// Share-class and venue suffixes are 1-2 chars (`$brk.b`, `$shop.to`), crypto quote currencies
/// up to 4 (`$btc-usdt`).
const MAX_TICKER_SUFFIX_CHARS: usize = 4;

/// Prefixes that start a URL, matched ASCII-case-insensitively.
const URL_PREFIXES: [&str; 3] = ["http://", "https://", "www."];
/// Sentence punctuation that follows a link far more often than it ends one.
const URL_TRAILING_PUNCTUATION: &[u8] = b".,;:!?'\")]}";

/// Emoji skin-tone modifiers U+1F3FB..U+1F3FF: they do not change sentiment, so dropping them
/// keeps one vocabulary entry per emoji.
const SKIN_TONE_MODIFIERS: std::ops::RangeInclusive<char> = '\u{1f3fb}'..='\u{1f3ff}';
/// Two of these spell a flag.
const REGIONAL_INDICATORS: std::ops::RangeInclusive<char> = '\u{1f1e6}'..='\u{1f1ff}';

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Word,
    Cashtag,
    Url,
    Number,
    Mention,
    Cjk,
    Punctuation,
    /// Emoji, currency and math signs and any other char that is not a letter, digit or punctuation.
    Symbol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub kind: TokenKind,
}

/// Tokenises ALREADY NORMALISED text (see `normalize`) by the rules in the module documentation.
/// Runs in O(n) and never panics on any input, normalised or not; the caller caps the length.
pub fn tokenize(normalized: &str) -> Vec<Token> {
    TokenIterator::new(normalized).map(|token| Token { text: token.text.into_owned(), kind: token.kind }).collect()
}

/// A token whose text borrows from the tokenised string where it can, so the encoder's hot path
/// allocates nothing per token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BorrowedToken<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) kind: TokenKind,
}

impl<'a> BorrowedToken<'a> {
    fn borrowed(text: &'a str, kind: TokenKind) -> Self {
        Self { text: Cow::Borrowed(text), kind }
    }
}

/// Yields the tokens of a string lazily, so a caller that keeps the first N stops after N.
pub(crate) struct TokenIterator<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> TokenIterator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, position: 0 }
    }

    fn char_at(&self, byte_index: usize) -> Option<char> {
        self.text.get(byte_index..)?.chars().next()
    }

    fn char_before(&self, byte_index: usize) -> Option<char> {
        self.text[..byte_index].chars().next_back()
    }

    /// Returns the token starting at `self.position`, which holds `first`, and moves past it.
    fn scan_token(&mut self, first: char) -> BorrowedToken<'a> {
        let start = self.position;
        if matches!(first, 'h' | 'H' | 'w' | 'W') {
            if let Some(url_length) = url_length_at(self.text, start) {
                self.position = start + url_length;
                return BorrowedToken::borrowed(URL_TOKEN, TokenKind::Url);
            }
        }
        match first {
            '$' => self.scan_dollar(start),
            '@' => self.scan_at_sign(start),
            '\'' | '\u{2019}' => self.scan_apostrophe(start, first),
            '0'..='9' => self.scan_number(start),
            _ if is_cjk(first) => {
                self.position = self.skip_combining_marks(start + first.len_utf8());
                BorrowedToken::borrowed(&self.text[start..self.position], TokenKind::Cjk)
            }
            _ if first.is_alphanumeric() => self.scan_word(start),
            _ if is_punctuation(first) => self.scan_punctuation(start, first),
            _ => self.scan_symbol(start, first),
        }
    }

    fn scan_dollar(&mut self, start: usize) -> BorrowedToken<'a> {
        let after_dollar = start + 1;
        match cashtag_end(self.text, after_dollar) {
            Some(end) => {
                self.position = end;
                BorrowedToken::borrowed(&self.text[start..end], TokenKind::Cashtag)
            }
            None => {
                self.position = after_dollar;
                BorrowedToken::borrowed("$", TokenKind::Symbol)
            }
        }
    }

    fn scan_at_sign(&mut self, start: usize) -> BorrowedToken<'a> {
        let after_at_sign = start + 1;
        let handle_length = self.text.as_bytes()[after_at_sign..]
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
            .count();
        let glued_to_word = self.char_before(start).is_some_and(|previous| previous.is_ascii_alphanumeric());
        if handle_length == 0 || glued_to_word {
            return self.scan_punctuation(start, '@');
        }
        self.position = after_at_sign + handle_length;
        BorrowedToken::borrowed(MENTION_TOKEN, TokenKind::Mention)
    }

    fn scan_apostrophe(&mut self, start: usize, apostrophe: char) -> BorrowedToken<'a> {
        let after_apostrophe = start + apostrophe.len_utf8();
        let follows_word = self.char_before(start).is_some_and(is_word_char);
        if follows_word && is_possessive_suffix(&self.text[after_apostrophe..]) {
            self.position = after_apostrophe + 1;
            return BorrowedToken::borrowed("'s", TokenKind::Word);
        }
        self.scan_punctuation(start, apostrophe)
    }

    fn scan_number(&mut self, start: usize) -> BorrowedToken<'a> {
        let bytes = self.text.as_bytes();
        let mut end = start;
        loop {
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            let separator_then_digit =
                matches!(bytes.get(end), Some(b',' | b'.')) && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
            if !separator_then_digit {
                break;
            }
            end += 1;
        }
        // Marks after digits (the keycap in 1️⃣) belong to the number.
        self.position = self.skip_combining_marks(end);
        BorrowedToken::borrowed(NUMBER_TOKEN, TokenKind::Number)
    }

    fn scan_word(&mut self, start: usize) -> BorrowedToken<'a> {
        if let Some(end) = abbreviation_end(self.text, start) {
            self.position = end;
            return BorrowedToken::borrowed(&self.text[start..end], TokenKind::Word);
        }
        let mut end = start;
        let mut has_typographic_apostrophe = false;
        while let Some(character) = self.char_at(end) {
            let character_length = character.len_utf8();
            if is_word_char(character) || (!character.is_ascii() && is_combining_mark(character)) {
                end += character_length;
                continue;
            }
            let after_joiner = end + character_length;
            let next = self.char_at(after_joiner);
            let joins = match character {
                '\'' | '\u{2019}' => {
                    next.is_some_and(is_word_char) && !is_possessive_suffix(&self.text[after_joiner..])
                }
                '&' => {
                    next.is_some_and(|next| next.is_ascii_alphabetic())
                        && self.char_before(end).is_some_and(|previous| previous.is_ascii_alphabetic())
                }
                _ => false,
            };
            if !joins {
                break;
            }
            has_typographic_apostrophe |= character == '\u{2019}';
            end = after_joiner;
        }
        self.position = end;
        let text = &self.text[start..end];
        let text =
            if has_typographic_apostrophe { Cow::Owned(text.replace('\u{2019}', "'")) } else { Cow::Borrowed(text) };
        BorrowedToken { text, kind: TokenKind::Word }
    }

    fn scan_punctuation(&mut self, start: usize, punctuation: char) -> BorrowedToken<'a> {
        let first_end = start + punctuation.len_utf8();
        let mut end = first_end;
        while let Some(character) = self.char_at(end) {
            let repeats_or_marks = character == punctuation || (!character.is_ascii() && is_combining_mark(character));
            if !repeats_or_marks {
                break;
            }
            end += character.len_utf8();
        }
        self.position = end;
        BorrowedToken::borrowed(&self.text[start..first_end], TokenKind::Punctuation)
    }

    fn scan_symbol(&mut self, start: usize, symbol: char) -> BorrowedToken<'a> {
        let mut end = start + symbol.len_utf8();
        if REGIONAL_INDICATORS.contains(&symbol) {
            if let Some(second) = self.char_at(end).filter(|next| REGIONAL_INDICATORS.contains(next)) {
                end += second.len_utf8();
            }
        }
        end = self.skip_combining_marks(end);
        let text_end = end;
        while let Some(modifier) = self.char_at(end).filter(|next| SKIN_TONE_MODIFIERS.contains(next)) {
            end += modifier.len_utf8();
        }
        self.position = end;
        BorrowedToken::borrowed(&self.text[start..text_end], TokenKind::Symbol)
    }

    fn skip_combining_marks(&self, mut byte_index: usize) -> usize {
        while let Some(mark) = self.char_at(byte_index).filter(|next| !next.is_ascii() && is_combining_mark(*next)) {
            byte_index += mark.len_utf8();
        }
        byte_index
    }
}

impl<'a> Iterator for TokenIterator<'a> {
    type Item = BorrowedToken<'a>;

    fn next(&mut self) -> Option<BorrowedToken<'a>> {
        loop {
            let first = self.char_at(self.position)?;
            if first.is_whitespace() {
                self.position += first.len_utf8();
                continue;
            }
            return Some(self.scan_token(first));
        }
    }
}

/// Length in bytes of the URL starting at byte `start` of `text`, if one starts there.
pub(crate) fn url_length_at(text: &str, start: usize) -> Option<usize> {
    let rest = text.get(start..)?.as_bytes();
    let prefix_length = URL_PREFIXES
        .iter()
        .find(|prefix| {
            rest.get(..prefix.len()).is_some_and(|candidate| candidate.eq_ignore_ascii_case(prefix.as_bytes()))
        })?
        .len();
    let glued_to_word = text[..start].chars().next_back().is_some_and(|previous| previous.is_ascii_alphanumeric());
    if glued_to_word {
        return None;
    }
    // Only ASCII bytes are taken, so the end is always a char boundary.
    let body_length = rest[prefix_length..]
        .iter()
        .take_while(|byte| byte.is_ascii_graphic() && !matches!(byte, b'<' | b'>' | b'"'))
        .count();
    let mut end = prefix_length + body_length;
    while end > prefix_length && URL_TRAILING_PUNCTUATION.contains(&rest[end - 1]) {
        end -= 1;
    }
    Some(end)
}

/// End of the cashtag whose ticker starts at byte `after_dollar`, if it is one.
fn cashtag_end(text: &str, after_dollar: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.get(after_dollar).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let ticker_length = count_ascii_alphanumeric(&bytes[after_dollar..], MAX_TICKER_CHARS + 1);
    if ticker_length > MAX_TICKER_CHARS {
        return None;
    }
    let mut end = after_dollar + ticker_length;
    if matches!(bytes.get(end), Some(b'.' | b'-')) {
        let suffix_length = count_ascii_alphanumeric(&bytes[end + 1..], MAX_TICKER_SUFFIX_CHARS + 1);
        if (1..=MAX_TICKER_SUFFIX_CHARS).contains(&suffix_length) {
            end += 1 + suffix_length;
        }
    }
    Some(end)
}

fn count_ascii_alphanumeric(bytes: &[u8], limit: usize) -> usize {
    bytes.iter().take(limit).take_while(|byte| byte.is_ascii_alphanumeric()).count()
}

/// End of an abbreviation of two or more single letters each followed by a dot (`u.s.`), if one
/// starts at `start` and is not glued to a following word.
fn abbreviation_end(text: &str, start: usize) -> Option<usize> {
    let mut end = start;
    let mut letter_count = 0;
    loop {
        let mut characters = text[end..].chars();
        let Some(letter) = characters.next() else {
            break;
        };
        let is_non_cjk_letter = letter.is_alphabetic() && !is_cjk(letter);
        if !is_non_cjk_letter || characters.next() != Some('.') {
            break;
        }
        letter_count += 1;
        end += letter.len_utf8() + 1;
    }
    let glued_to_word = text[end..].chars().next().is_some_and(is_word_char);
    (letter_count >= 2 && !glued_to_word).then_some(end)
}

/// Whether the text after an apostrophe is a possessive `s` (`apple's`), split into its own word.
fn is_possessive_suffix(after_apostrophe: &str) -> bool {
    let mut characters = after_apostrophe.chars();
    characters.next() == Some('s') && !characters.next().is_some_and(is_word_char)
}

fn is_word_char(character: char) -> bool {
    if character.is_ascii() {
        character.is_ascii_alphanumeric()
    } else {
        character.is_alphanumeric() && !is_cjk(character)
    }
}

/// CJK ideographs (unified, extensions, compatibility, radicals), kana, hangul and bopomofo.
/// Iteration marks and ideographic numerals (々〆〇) count as ideographs.
fn is_cjk(character: char) -> bool {
    matches!(
        u32::from(character),
        0x1100..=0x11FF
            | 0x2E80..=0x2FDF
            | 0x3005..=0x3007
            | 0x3021..=0x3029
            | 0x3038..=0x303C
            | 0x3041..=0x3096
            | 0x309D..=0x309F
            | 0x30A1..=0x30FA
            | 0x30FC..=0x30FF
            | 0x3105..=0x312F
            | 0x3131..=0x318E
            | 0x31A0..=0x31BF
            | 0x31F0..=0x31FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA960..=0xA97F
            | 0xAC00..=0xD7A3
            | 0xD7B0..=0xD7FF
            | 0xF900..=0xFAFF
            | 0xFF66..=0xFF9F
            | 0x1B000..=0x1B16F
            | 0x20000..=0x3FFFF
    )
}

/// See the module documentation; Unicode general categories are not in std, so non-ASCII
/// punctuation is the blocks that financial text in our languages uses.
fn is_punctuation(character: char) -> bool {
    if character.is_ascii() {
        return character.is_ascii_punctuation()
            && !matches!(character, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    matches!(
        u32::from(character),
        0x00A1
            | 0x00A7
            | 0x00AB
            | 0x00B6
            | 0x00B7
            | 0x00BB
            | 0x00BF
            | 0x055A..=0x055F
            | 0x0589
            | 0x05BE
            | 0x05C0
            | 0x05C3
            | 0x05C6
            | 0x05F3..=0x05F4
            | 0x060C..=0x060D
            | 0x061B
            | 0x061D..=0x061F
            | 0x066A..=0x066D
            | 0x06D4
            | 0x0964..=0x0965
            | 0x0970
            | 0x2010..=0x2027
            | 0x2030..=0x2043
            | 0x2045..=0x2051
            | 0x2053..=0x205E
            | 0x2E00..=0x2E7F
            | 0x3001..=0x3003
            | 0x3008..=0x3011
            | 0x3014..=0x301F
            | 0x3030
            | 0x303D
            | 0x30A0
            | 0x30FB
            | 0xFE10..=0xFE19
            | 0xFE30..=0xFE4F
            | 0xFE50..=0xFE6B
            | 0xFF01..=0xFF0F
            | 0xFF1A..=0xFF20
            | 0xFF3B..=0xFF40
            | 0xFF5B..=0xFF65
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize;
    use proptest::prelude::*;

    fn token(text: &str, kind: TokenKind) -> Token {
        Token { text: text.to_owned(), kind }
    }

    fn texts(normalized: &str) -> Vec<String> {
        tokenize(normalized).into_iter().map(|token| token.text).collect()
    }

    #[test]
    fn url_is_one_token_without_trailing_punctuation() {
        assert_eq!(
            tokenize("see https://t.co/abc123. now"),
            vec![
                token("see", TokenKind::Word),
                token("<url>", TokenKind::Url),
                token(".", TokenKind::Punctuation),
                token("now", TokenKind::Word),
            ]
        );
        assert_eq!(texts("(www.sec.gov/x?a=1&b=2)"), ["(", "<url>", ")"]);
        assert_eq!(texts("详见http://t.co/x股市"), ["详", "见", "<url>", "股", "市"]);
        assert_eq!(texts("awww.x"), ["awww", ".", "x"]);
    }

    #[test]
    fn cashtag_versus_dollar_amount() {
        assert_eq!(
            tokenize("$aapl $5 $brk.b"),
            vec![
                token("$aapl", TokenKind::Cashtag),
                token("$", TokenKind::Symbol),
                token("<num>", TokenKind::Number),
                token("$brk.b", TokenKind::Cashtag),
            ]
        );
        assert_eq!(texts("$tsla. $btc-usd涨"), ["$tsla", ".", "$btc-usd", "涨"]);
        assert_eq!(texts("$abcdefghijklmnop"), ["$", "abcdefghijklmnop"]);
        assert_eq!(texts("$"), ["$"]);
    }

    #[test]
    fn number_with_separators_and_percent() {
        assert_eq!(
            tokenize("-1,234.5% 10k"),
            vec![
                token("-", TokenKind::Punctuation),
                token("<num>", TokenKind::Number),
                token("%", TokenKind::Punctuation),
                token("<num>", TokenKind::Number),
                token("k", TokenKind::Word),
            ]
        );
        assert_eq!(texts("1.2. 3,"), ["<num>", ".", "<num>", ","]);
    }

    #[test]
    fn mention_but_not_email() {
        assert_eq!(tokenize("@elonmusk hi"), vec![token("<user>", TokenKind::Mention), token("hi", TokenKind::Word)]);
        assert_eq!(texts("ir@apple.com @ x"), ["ir", "@", "apple", ".", "com", "@", "x"]);
    }

    #[test]
    fn words_keep_apostrophes_and_ampersands_but_split_hyphens_and_possessives() {
        assert_eq!(texts("don't"), ["don't"]);
        assert_eq!(texts("don\u{2019}t"), ["don't"]);
        assert_eq!(texts("apple's s&p rate-cut"), ["apple", "'s", "s&p", "rate", "-", "cut"]);
        assert_eq!(texts("'quoted' rock&"), ["'", "quoted", "'", "rock", "&"]);
        assert_eq!(texts("q3 covid19 café"), ["q3", "covid19", "café"]);
    }

    #[test]
    fn dotted_abbreviations_stay_whole() {
        assert_eq!(texts("the u.s. economy"), ["the", "u.s.", "economy"]);
        assert_eq!(texts("e.g., u.k."), ["e.g.", ",", "u.k."]);
        assert_eq!(texts("u.s.a"), ["u", ".", "s", ".", "a"]);
        assert_eq!(texts("yahoo.com"), ["yahoo", ".", "com"]);
    }

    #[test]
    fn chinese_is_split_per_char() {
        let normalized = normalize("央行降息，股市大涨！");
        assert_eq!(
            tokenize(&normalized),
            vec![
                token("央", TokenKind::Cjk),
                token("行", TokenKind::Cjk),
                token("降", TokenKind::Cjk),
                token("息", TokenKind::Cjk),
                token(",", TokenKind::Punctuation),
                token("股", TokenKind::Cjk),
                token("市", TokenKind::Cjk),
                token("大", TokenKind::Cjk),
                token("涨", TokenKind::Cjk),
                token("!", TokenKind::Punctuation),
            ]
        );
        assert_eq!(texts("「利好」。"), ["「", "利", "好", "」", "。"]);
        assert_eq!(texts("カブ 주식"), ["カ", "ブ", "주", "식"]);
    }

    #[test]
    fn mixed_english_and_chinese() {
        let normalized = normalize("苹果$AAPL股价上涨5%，Apple's iPhone销量creates新高");
        assert_eq!(
            texts(&normalized),
            [
                "苹", "果", "$aapl", "股", "价", "上", "涨", "<num>", "%", ",", "apple", "'s", "iphone", "销", "量",
                "creates", "新", "高"
            ]
        );
    }

    #[test]
    fn repeated_punctuation_collapses_but_symbols_do_not() {
        assert_eq!(texts("wow!!! ... ?!"), ["wow", "!", ".", "?", "!"]);
        assert_eq!(tokenize("🚀🚀"), vec![token("🚀", TokenKind::Symbol), token("🚀", TokenKind::Symbol)]);
    }

    #[test]
    fn emoji_modifiers_and_flags() {
        assert_eq!(texts("👍🏽 🇺🇸"), ["👍", "🇺🇸"]);
        assert_eq!(texts("€5 ±"), ["€", "<num>", "±"]);
        assert_eq!(texts("\u{301}a"), ["\u{301}", "a"]);
    }

    #[test]
    fn empty_and_whitespace_give_no_tokens() {
        assert!(tokenize("").is_empty());
        assert!(tokenize(" \t\n ").is_empty());
    }

    fn assert_tokenize_invariants(text: &str) {
        let tokens = tokenize(text);
        assert_eq!(tokens, tokenize(text), "tokenize must be deterministic");
        assert!(tokens.len() <= text.chars().count());
        for token in &tokens {
            assert!(!token.text.is_empty());
            assert!(!token.text.chars().any(char::is_whitespace));
            match token.kind {
                TokenKind::Url => assert_eq!(token.text, URL_TOKEN),
                TokenKind::Number => assert_eq!(token.text, NUMBER_TOKEN),
                TokenKind::Mention => assert_eq!(token.text, MENTION_TOKEN),
                TokenKind::Cashtag => assert!(token.text.starts_with('$') && token.text.len() > 1),
                // `<` is always a token of its own, so no other token can spell a placeholder.
                _ => assert!(!(token.text.len() > 1 && token.text.starts_with('<') && token.text.ends_with('>'))),
            }
        }
    }

    proptest! {
        #[test]
        fn tokenize_invariants_hold_for_any_string(raw in any::<String>()) {
            assert_tokenize_invariants(&raw);
            assert_tokenize_invariants(&normalize(&raw));
        }

        #[test]
        fn tokenize_invariants_hold_for_printable_text(raw in "\\PC*") {
            assert_tokenize_invariants(&raw);
            assert_tokenize_invariants(&normalize(&raw));
        }

        #[test]
        fn tokenize_invariants_hold_for_token_fragments(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    "$", "@", "'", "\u{2019}", "s", "&", "-", ".", ",", "1", "a", "u", "www.",
                    "http://", "涨", "\u{301}", "🇺", "👍", "\u{1f3fd}", " ", "%", "_", "x",
                ]),
                0..64,
            )
        ) {
            assert_tokenize_invariants(&parts.concat());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn tokenize_is_linear_on_megabyte_inputs(
            unit in "\\PC{1,64}",
            repetitions in 1usize..20_000,
        ) {
            // Raw, unnormalised and untruncated: a quadratic scan would not finish.
            let raw = unit.repeat(repetitions);
            assert!(tokenize(&raw).len() <= raw.chars().count());
        }
    }
}
